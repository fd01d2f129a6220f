//! Audio and further video streams, copied into the muxer as they are (audio
//! re-encoded where the container cannot hold it), and streams that go nowhere.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{bail, Context, Result};
use gst::prelude::*;

use super::audio_edges::{say_packets_before_start, time_packets};
use super::post_notice;
use crate::finishing::{EncodedAudio, MATCHED_SAMPLES};
use crate::media::MediaInfo;
use crate::upscale::progress::Progress;

/// What a run did with the input's audio streams, for what follows the muxing.
#[derive(Debug, Default)]
pub(crate) struct AudioLog {
    /// Each stream re-encoded as AAC, as its encoder saw it.
    pub encoded: Vec<EncodedAudio>,
    /// Each stream in the order its muxer pad was asked for (the order of
    /// the output's tracks): its stream ID and its codec.
    pub muxed: Vec<(String, String)>,
}

impl AudioLog {
    /// The line on an output whose audio tracks come in another order
    /// than the input's: parsebin hands on raw PCM, which needs no parser,
    /// before the parsed streams, and the muxers number tracks in the
    /// order they are asked for. The stream IDs end in the container's
    /// own numbering (Matroska and MP4/MOV track numbers), fixed-width.
    pub(crate) fn reordered(&self, output: &str) -> Option<String> {
        let ids: Vec<&String> = self.muxed.iter().map(|(id, _)| id).collect();
        if ids.windows(2).all(|w| w[0] <= w[1]) {
            return None;
        }
        let codecs: Vec<&str> = self.muxed.iter().map(|(_, codec)| codec.as_str()).collect();
        Some(format!(
            "gendr: {output}'s audio tracks come in another order than the input's \
             ({}: GStreamer 1.22 hands on raw PCM before the parsed streams); each keeps \
             its language and flags",
            codecs.join(", ")
        ))
    }
}

/// The run's [`AudioLog`], filled from the streaming threads.
pub(crate) type SharedAudioLog = Arc<Mutex<AudioLog>>;

/// What a user reads of an audio stream's codec ("Raw 16-bit PCM audio",
/// "MPEG-4 AAC"), not the caps name; pbutils describes fixed caps only
/// (unfixed ones, as tsdemux's pads may still have, make it return NULL,
/// which crashed gendr).
fn audio_codec(caps: &gst::Caps) -> String {
    match caps.structure(0) {
        Some(_) if caps.is_fixed() => gst_pbutils::pb_utils_get_codec_description(caps).to_string(),
        Some(s) => format!("{} audio", s.name()),
        None => "this audio".to_string(),
    }
}

/// Whether `muxer` takes audio of `caps` only re-encoded as AAC; an error
/// where it cannot hold it and `transcode` does not allow re-encoding. The
/// one decision made before a run, for the start line, and again when the
/// stream's pad appears.
pub(crate) fn needs_reencoding(
    muxer: &gst::Element,
    caps: &gst::Caps,
    transcode: bool,
) -> Result<bool> {
    let template = muxer
        .pad_template("audio_%u")
        .context("the output container takes no audio")?;
    if template.caps().can_intersect(caps) {
        return Ok(false);
    }
    if !transcode {
        bail!(
            Unsupported,
            "{} cannot be copied into this container; use .mkv, or --audio aac to re-encode it",
            audio_codec(caps)
        );
    }
    Ok(true)
}

/// Refuses, before anything runs, audio streams the output container cannot
/// hold as they are when `transcode` does not allow re-encoding them: a
/// refusal once the pipeline runs races the streams' own end, and on
/// GStreamer 1.22 the teardown then crashed avdec_h264 now and then.
pub(crate) fn check_audio(info: &MediaInfo, muxer: &gst::Element, transcode: bool) -> Result<()> {
    for caps in &info.audio {
        needs_reencoding(muxer, caps, transcode)?;
    }
    Ok(())
}

/// Sends a parsed audio stream into the muxer: as it is, or, where the
/// container cannot hold its codec and `transcode` allows, re-encoded as AAC
/// (noted in `log`, for the output's edit to hide the encoder's priming;
/// every stream is noted there in the order it reaches the muxer).
pub(crate) fn copy_audio(
    pipeline: &gst::Pipeline,
    muxer: &gst::Element,
    pad: &gst::Pad,
    caps: &gst::Caps,
    progress: &Arc<Progress>,
    transcode: bool,
    log: &SharedAudioLog,
) -> Result<()> {
    let codec = audio_codec(caps);
    // Elements between the parsed pad and the queue: none for a copy.
    let mut chain = Vec::new();
    if needs_reencoding(muxer, caps, transcode)? {
        post_notice(
            muxer,
            format!("gendr: {codec} re-encoded as AAC 256 kbit/s (this container cannot hold it)"),
        );
        chain = vec![
            gst::ElementFactory::make("decodebin").build()?,
            gst::ElementFactory::make("audioconvert").build()?,
            gst::ElementFactory::make("audioresample").build()?,
            gst::ElementFactory::make("avenc_aac")
                .property("bitrate", 256_000i32)
                .build()?,
        ];
        watch_encoder(&chain[3], log)?;
    }
    say_packets_before_start(pad);
    if chain.is_empty() && !super::writes_matroska(muxer) {
        time_packets(pad, caps);
    }
    let queue = unbounded_queue(progress)?;
    let queue_sink = queue.static_pad("sink").context("queue sink")?;
    pipeline.add(&queue)?;
    queue.sync_state_with_parent()?;
    match chain.split_first() {
        None => {
            pad.link(&queue_sink)?;
        }
        Some((decode, rest)) => {
            pipeline.add_many(&chain)?;
            let mut tail = rest.to_vec();
            tail.push(queue.clone());
            gst::Element::link_many(&tail)?;
            let convert = rest[0].downgrade();
            decode.connect_pad_added(move |decode, src| {
                let Some(sink) = convert.upgrade().and_then(|c| c.static_pad("sink")) else {
                    return;
                };
                if let Err(e) = src.link(&sink) {
                    gst::element_error!(
                        decode,
                        gst::CoreError::Negotiation,
                        ("the decoded audio cannot be re-encoded ({e:?})")
                    );
                }
            });
            for element in &chain {
                element.sync_state_with_parent()?;
            }
            pad.link(&decode.static_pad("sink").context("decodebin sink")?)?;
        }
    }
    let mux_pad = muxer
        .request_pad_simple("audio_%u")
        .context("the muxer refused an audio stream")?;
    log.lock().unwrap_or_else(|p| p.into_inner()).muxed.push((
        pad.stream_id().map(|id| id.to_string()).unwrap_or_default(),
        codec,
    ));
    queue
        .static_pad("src")
        .context("queue src")?
        .link(&mux_pad)?;
    Ok(())
}

/// Notes what `encoder` is fed and writes into a new entry of `log`: the
/// sample frames and their rate, and its first packets' sizes. Its output
/// keeps no segment stop: the priming moves every packet one frame later
/// than its samples, and the muxer would drop the last one past the stop.
fn watch_encoder(encoder: &gst::Element, log: &SharedAudioLog) -> Result<()> {
    let index = {
        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
        log.encoded.push(EncodedAudio::default());
        log.encoded.len() - 1
    };
    let fed = log.clone();
    // Bytes per sample frame, from the caps the encoder takes.
    let frame_bytes = AtomicU64::new(0);
    encoder
        .static_pad("sink")
        .context("encoder sink")?
        .add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| {
                if let Some(gst::EventView::Caps(caps)) = info.event().map(|e| e.view()) {
                    if let Ok(audio) = gst_audio::AudioInfo::from_caps(caps.caps()) {
                        frame_bytes.store(u64::from(audio.bpf()), Ordering::Relaxed);
                        let mut log = fed.lock().unwrap_or_else(|p| p.into_inner());
                        log.encoded[index].rate = audio.rate();
                    }
                    return gst::PadProbeReturn::Ok;
                }
                let bytes = frame_bytes.load(Ordering::Relaxed);
                if let (Some(buffer), true) = (info.buffer(), bytes > 0) {
                    let mut log = fed.lock().unwrap_or_else(|p| p.into_inner());
                    log.encoded[index].samples += buffer.size() as u64 / bytes;
                }
                gst::PadProbeReturn::Ok
            },
        );
    let written = log.clone();
    encoder.static_pad("src").context("encoder src")?.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            if let Some(buffer) = info.buffer() {
                let mut log = written.lock().unwrap_or_else(|p| p.into_inner());
                let sizes = &mut log.encoded[index].first_sizes;
                if sizes.len() < MATCHED_SAMPLES {
                    sizes.push(u32::try_from(buffer.size()).unwrap_or(u32::MAX));
                }
                return gst::PadProbeReturn::Ok;
            }
            let Some(gst::EventView::Segment(event)) = info.event().map(|e| e.view()) else {
                return gst::PadProbeReturn::Ok;
            };
            let mut segment = event.segment().clone();
            if let Some(time) = segment.downcast_mut::<gst::ClockTime>() {
                if time.stop().is_some() {
                    time.set_stop(gst::ClockTime::NONE);
                    info.data = Some(gst::PadProbeData::Event(gst::event::Segment::new(
                        time.upcast_ref(),
                    )));
                }
            }
            gst::PadProbeReturn::Ok
        },
    );
    Ok(())
}

/// Sends a parsed video stream beyond the first into the muxer as it is
/// (checked up front by [`check_extra_videos`]).
pub(crate) fn copy_video(
    pipeline: &gst::Pipeline,
    muxer: &gst::Element,
    pad: &gst::Pad,
    progress: &Arc<Progress>,
) -> Result<()> {
    let queue = unbounded_queue(progress)?;
    pipeline.add(&queue)?;
    queue.sync_state_with_parent()?;
    pad.link(&queue.static_pad("sink").context("queue sink")?)?;
    let mux_pad = muxer
        .request_pad_simple("video_%u")
        .context("the muxer refused a second video stream")?;
    queue
        .static_pad("src")
        .context("queue src")?
        .link(&mux_pad)?;
    Ok(())
}

/// Refuses, before anything runs, video streams beyond the first that the
/// output container cannot hold as they are; the line that says the others
/// are copied without being upscaled.
pub(crate) fn check_extra_videos(
    info: &MediaInfo,
    muxer: &gst::Element,
    output: &str,
) -> Result<Option<String>> {
    let template = muxer
        .pad_template("video_%u")
        .map(|t| t.caps().clone())
        .unwrap_or_else(gst::Caps::new_empty);
    for caps in &info.extra_videos {
        if !template.can_intersect(caps) {
            let name = caps.structure(0).map_or("unknown", |s| s.name().as_str());
            bail!(
                Unsupported,
                "{output}: this container cannot hold the input's second video stream ({name}) \
                 as it is; use .mkv, or take the first video alone first \
                 (ffmpeg -map 0 -map -0:v:1 -c copy)"
            );
        }
    }
    Ok(match info.extra_videos.len() {
        0 => None,
        n => Some(format!(
            "gendr: {n} more video stream(s) copied as they are (not upscaled)"
        )),
    })
}

/// A queue into the muxer for a stream copied as it is, counting what it
/// sees for the stall watch. Unbounded: the demuxer feeds every stream from
/// one thread while the encoder holds back frames for look-ahead, so a
/// bounded queue would fill and stall the video behind it. Interleaving in
/// the file bounds it instead.
fn unbounded_queue(progress: &Arc<Progress>) -> Result<gst::Element> {
    let queue = gst::ElementFactory::make("queue")
        .property("max-size-buffers", 0u32)
        .property("max-size-bytes", 0u32)
        .property("max-size-time", 0u64)
        .build()?;
    let progress = progress.clone();
    queue.static_pad("sink").context("queue sink")?.add_probe(
        gst::PadProbeType::BUFFER,
        move |pad, info| {
            if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
                progress.saw_buffer(pad, buffer);
            }
            gst::PadProbeReturn::Ok
        },
    );
    Ok(queue)
}
