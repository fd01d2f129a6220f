//! One `gendr upscale` pipeline: parse → decode → gendrsr → encode → mux,
//! other streams beside it, watched for stalls, truncation and errors.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{bail, err, Context, Result};
use gst::prelude::*;

use super::encode::Encoding;
use super::progress::Progress;
use super::streams::{
    copy_audio, copy_subtitle, copy_video, drop_toc, is_subtitle, notice, writes_matroska,
    AudioLog, SharedAudioLog, SoundTracks,
};
use super::timeline::{self, HiddenPriming, Timeline};
use super::video;
use crate::media::{self, MediaInfo};
use crate::request::{Audio, KeepOrDrop, Target, UpscaleOptions};
use crate::{Caller, Cancel, Error, Observer};

/// Where the output's video comes from, and what goes with it.
pub(crate) enum Video {
    /// All of the input's video, upscaled, with its other streams.
    Whole,
    /// One window of the input's video, upscaled, alone: a segment of a job.
    Segment(Window),
    /// Already encoded and parsed (a job's joined segments), pushed into this
    /// appsrc by the caller; the input gives the other streams.
    Encoded(gst_app::AppSrc),
}

/// The frames with `first <= pts < end` of the input's video.
pub(crate) struct Window {
    pub first: gst::ClockTime,
    /// None: to the end of the stream.
    pub end: Option<gst::ClockTime>,
    pub expected_frames: u64,
    /// Whether decoding must start by seeking the demuxer (any window that
    /// does not start with the stream).
    pub seek: bool,
    /// With gendrsr's temporal stage on: decode from the keyframe at or
    /// before this time instead of `first`, and pass the frames before
    /// `first` through gendrsr too (dropped after it), so that the stage
    /// has the past frames a plain run gives it.
    pub preroll: Option<gst::ClockTime>,
}

/// What a segment's run noted of its frames, for the done-record.
#[derive(Default)]
pub(crate) struct SegmentNotes {
    /// Each frame let through, in presentation order: (pts, duration) ns.
    pub frames: Vec<(u64, Option<u64>)>,
    /// Each encoded frame's pts as the encoder stamped it, in decode order.
    pub encoded: Vec<u64>,
    /// The encoded video's caps and segment, as the muxer got them.
    pub caps: Option<gst::Caps>,
    pub segment: Option<gst::FormattedSegment<gst::ClockTime>>,
}

/// What a finished run made.
pub(crate) struct Report {
    /// Video frames written.
    pub frames: u64,
    /// Errors the decoder reported (the damaged frames concealed).
    pub decoder_errors: u64,
    /// Packets the decoder turned into no frame (exact for codecs with a
    /// frame per packet, the usual case).
    pub undecodable: u64,
    /// Frames the video decoder dropped as damaged (jpegdec, pngdec and
    /// others that log no libav error but say so in a QoS message).
    pub dropped: u64,
    /// A segment's notes; empty for other runs.
    pub segment: SegmentNotes,
    /// What became of the audio streams, for the output's edits and lines.
    pub audio: AudioLog,
}

type Notes = Arc<Mutex<SegmentNotes>>;

/// Counts buffers through `pad` and notes their times.
fn watch_buffers(pad: &gst::Pad, progress: &Arc<Progress>, count: fn(&Progress) -> &AtomicU64) {
    let progress = progress.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        count(&progress).fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
}

/// The encoded frames' span, for [`cover_reordered_frames`].
#[derive(Default)]
struct EncodedSpan {
    first_dts: Option<gst::ClockTime>,
    first_pts: Option<gst::ClockTime>,
    presented_until: Option<gst::ClockTime>,
}

/// How long a frame without a duration of its own (a still image) is shown:
/// without one, mp4 gets a track of length zero that players skip.
const UNTIMED_FRAME_DURATION: gst::ClockTime = gst::ClockTime::from_mseconds(40);

/// mp4mux makes a track as long as its decode times plus the last sample's
/// duration, and its edit list shows that long a stretch from the first
/// frame. With B-frames and a variable frame rate the frames shown last can
/// lie beyond it, and players cut them. Giving each encoded frame the
/// duration that would make it, as the last, cover every frame presented so
/// far keeps them all; only the last frame's duration is used by the muxers.
fn cover_reordered_frames(buffer: &mut gst::BufferRef, span: &mut EncodedSpan) {
    let (Some(pts), Some(dts)) = (buffer.pts(), buffer.dts()) else {
        return;
    };
    // x264enc stamps 1 ns on frames that came without a duration.
    let duration = buffer
        .duration()
        .filter(|d| *d >= gst::ClockTime::MSECOND)
        .unwrap_or(UNTIMED_FRAME_DURATION);
    let end = pts + duration;
    let first_dts = *span.first_dts.get_or_insert(dts);
    let first_pts = span.first_pts.map_or(pts, |p| p.min(pts));
    let until = span.presented_until.map_or(end, |u| u.max(end));
    (span.first_pts, span.presented_until) = (Some(first_pts), Some(until));
    // Decode span plus this duration = presentation span.
    let needed = (until + first_dts).checked_sub(dts + first_pts);
    if let Some(duration) = needed.filter(|d| !d.is_zero()) {
        buffer.set_duration(duration);
    }
}

/// Notes the decoded frame size from a caps event; a different size than
/// before is an error: encoders and muxers take one size per stream (mp4mux
/// would write a file that decodes wrongly, matroskamux fails obscurely).
fn size_change(event: &gst::Event, progress: &Progress) -> Option<String> {
    let gst::EventView::Caps(caps) = event.view() else {
        return None;
    };
    let s = caps.caps().structure(0)?;
    let size = (s.get::<i32>("width").ok()?, s.get::<i32>("height").ok()?);
    let mut known = progress
        .decoded_size
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    match *known {
        Some(first) if first != size => Some(format!(
            "the video changes frame size after {} frames ({}x{} to {}x{}); an output holds one size: \
             split the input where it changes",
            progress.decoded.load(Ordering::Relaxed),
            first.0,
            first.1,
            size.0,
            size.1
        )),
        _ => {
            *known = Some(size);
            None
        }
    }
}

/// The encoded caps without `mastering-display-info`: matroskamux 1.22
/// writes its luminances divided by 50000 instead of 10000 (1000 cd/m²
/// becomes 200), while x265 writes the values exactly into the stream, where
/// players read them. x264 cannot write them, and is refused such input.
fn without_mastering_display(caps: &gst::CapsRef) -> Option<gst::Caps> {
    if !caps
        .structure(0)
        .is_some_and(|s| s.has_field("mastering-display-info"))
    {
        return None;
    }
    let mut caps = caps.to_owned();
    caps.make_mut()
        .structure_mut(0)?
        .remove_field("mastering-display-info");
    Some(caps)
}

/// `caps` with a pixel aspect ratio that is not a positive fraction (a
/// damaged AVI header gave -16777213/3) set to 1/1, as ffmpeg reads such a
/// file; none when they are sound. Passed on, the muxer wrote it into the
/// output, which ffmpeg then could not decode.
fn with_sound_pixel_aspect(caps: &gst::CapsRef) -> Option<gst::Caps> {
    let par = caps
        .structure(0)?
        .get::<gst::Fraction>("pixel-aspect-ratio")
        .ok()?;
    if par.numer() > 0 && par.denom() > 0 {
        return None;
    }
    let mut caps = caps.to_owned();
    caps.make_mut()
        .structure_mut(0)?
        .set("pixel-aspect-ratio", gst::Fraction::new(1, 1));
    Some(caps)
}

/// Replaces the caps passing through `pad` with what `rewrite` makes of
/// them, where it makes something.
fn rewrite_caps(pad: &gst::Pad, rewrite: fn(&gst::CapsRef) -> Option<gst::Caps>) {
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        if let Some(gst::PadProbeData::Event(event)) = &mut info.data {
            let rewritten = match event.view() {
                gst::EventView::Caps(caps) => rewrite(caps.caps()),
                _ => None,
            };
            if let Some(caps) = rewritten {
                *event = gst::event::Caps::new(&caps);
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// A decoded format deeper than the encoding chosen from what the container
/// said would lose its extra bits silently: an error naming the option.
fn deeper_than_planned(event: &gst::Event, encoding: &Encoding) -> Option<String> {
    let gst::EventView::Caps(caps) = event.view() else {
        return None;
    };
    let info = gst_video::VideoInfo::from_caps(caps.caps()).ok()?;
    let depth = info.format_info().depth().first().copied()?;
    (depth > encoding.bit_depth && depth > encoding.input_depth).then(|| {
        format!(
            "the video decodes to {depth}-bit samples but its container said {} bits; \
             pass --pix-fmt yuv420p10 to keep them, or --pix-fmt yuv420p to reduce them to 8",
            encoding.input_depth
        )
    })
}

/// Turns a failure found in a streaming thread into a bus error, keeping
/// its text as the one the user sees.
fn report(element: &gst::Element, errors: &Mutex<Option<String>>, text: String) {
    tracing::debug!("{text}");
    errors
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert(text.clone());
    element.post_error_message(gst::error_msg!(gst::CoreError::Negotiation, ["{}", text]));
}

/// Counts and times the decoded frames entering the video chain, and
/// refuses a change of frame size or a depth the encoding would cut.
fn watch_decoded(
    chain_sink: &gst::Pad,
    encoding: Encoding,
    progress: &Arc<Progress>,
    errors: &Arc<Mutex<Option<String>>>,
) {
    let (progress, errors) = (progress.clone(), errors.clone());
    chain_sink.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |pad, info| {
            match &info.data {
                Some(gst::PadProbeData::Buffer(buffer)) => {
                    progress.decoded.fetch_add(1, Ordering::Relaxed);
                    progress.saw_buffer(pad, buffer);
                }
                Some(gst::PadProbeData::Event(event)) => {
                    let refusal = size_change(event, &progress)
                        .or_else(|| deeper_than_planned(event, &encoding));
                    if let Some(text) = refusal {
                        if let Some(element) = pad.parent_element() {
                            report(&element, &errors, text);
                        }
                    }
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// Links the decoder's first video pad to the video chain, through the
/// window's filter when there is one.
fn link_decoded(
    decode: &gst::Element,
    chain_sink: gst::Pad,
    window: Option<(&Window, &Notes)>,
    progress: &Arc<Progress>,
    errors: &Arc<Mutex<Option<String>>>,
) {
    // A decoder that drops every frame as damaged leaves decodebin's pad
    // without caps at the end: nothing is linked, and the end of stream
    // would go nowhere, so the job would wait for the stall limit.
    let nothing_decoded = (chain_sink.clone(), errors.clone());
    decode.connect_no_more_pads(move |decode| {
        let (chain_sink, errors) = &nothing_decoded;
        if !chain_sink.is_linked() {
            report(
                decode,
                errors,
                "no video frame could be decoded: the video is damaged or in a form the decoder cannot read".into(),
            );
        }
    });
    let (errors, progress) = (errors.clone(), progress.clone());
    let window = window.map(|(w, notes)| (w.first, w.end, notes.clone(), w.preroll.is_some()));
    decode.connect_pad_added(move |decode, pad| {
        let Some(video) = pad.current_caps().and_then(|c| {
            c.structure(0)
                .filter(|s| s.name().starts_with("video/"))
                .map(|s| s.to_owned())
        }) else {
            return;
        };
        if chain_sink.is_linked() {
            return;
        }
        if let (Ok(w), Ok(h)) = (video.get::<i32>("width"), video.get::<i32>("height")) {
            *progress
                .decoded_size
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some((w, h));
        }
        if let Some((first, end, notes, preroll)) = &window {
            keep_window(
                pad,
                *first,
                *end,
                notes.clone(),
                chain_sink.clone(),
                *preroll,
            );
        }
        if let Err(e) = pad.link(&chain_sink) {
            let caps = pad
                .current_caps()
                .map(|c| c.to_string())
                .unwrap_or_default();
            report(
                decode,
                &errors,
                format!("the decoded video ({caps}) cannot be passed on to gendrsr ({e:?})"),
            );
        }
    });
}

/// Lets through the decoded frames with `first <= pts < end`, noting each,
/// and ends the video chain's stream at the first frame past the window, so
/// that the encoder and muxer finish as at the end of a file. Frames before
/// `first` come from decoding from the keyframe before it; with `preroll`
/// they go on to gendrsr, which drops them after its temporal stage.
fn keep_window(
    decoded: &gst::Pad,
    first: gst::ClockTime,
    end: Option<gst::ClockTime>,
    notes: Notes,
    chain_sink: gst::Pad,
    preroll: bool,
) {
    let ended = AtomicBool::new(false);
    decoded.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(pts) = buffer.pts() else {
            return gst::PadProbeReturn::Drop;
        };
        if pts < first {
            return if preroll {
                gst::PadProbeReturn::Ok
            } else {
                gst::PadProbeReturn::Drop
            };
        }
        if end.is_some_and(|end| pts >= end) {
            if !ended.swap(true, Ordering::SeqCst) {
                chain_sink.send_event(gst::event::Eos::new());
            }
            // Refused by the ended chain, which stops the decoder too.
            return gst::PadProbeReturn::Ok;
        }
        notes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .frames
            .push((pts.nseconds(), buffer.duration().map(|d| d.nseconds())));
        gst::PadProbeReturn::Ok
    });
}

/// Drops what `sr` puts out before `first`: the preroll frames that went
/// through it only for its temporal stage's memory.
fn drop_before(sr: &gst::Element, first: gst::ClockTime) -> Result<()> {
    sr.static_pad("src").context("gendrsr src")?.add_probe(
        gst::PadProbeType::BUFFER,
        move |_, info| match info.buffer().and_then(|b| b.pts()) {
            Some(pts) if pts < first => gst::PadProbeReturn::Drop,
            _ => gst::PadProbeReturn::Ok,
        },
    );
    Ok(())
}

/// Starts the parsed video at the keyframe at or before `first` instead of
/// the file's start: at its first packet, the demuxer is seeked from this
/// pad, and nothing of the seek (the packets before it, its flush) goes on,
/// its new segment replaced by the first. The decoder, encoder and muxer so
/// see one stream that starts at that keyframe, with the input's own
/// timestamps.
fn start_at(
    parse: &gst::Element,
    pad: &gst::Pad,
    first: gst::ClockTime,
    errors: &Arc<Mutex<Option<String>>>,
) {
    const BEFORE: u8 = 0;
    const SEEKING: u8 = 1;
    const STREAMING: u8 = 2;
    let state = Arc::new(std::sync::atomic::AtomicU8::new(BEFORE));
    let original = Mutex::new(None::<gst::Event>);
    // Set when the seek's flush arrives (or the seek failed): until then the
    // first packet's thread waits, so the demuxer cannot run on to its end.
    let flushing = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let (parse, errors) = (parse.downgrade(), errors.clone());
    pad.add_probe(
        gst::PadProbeType::BUFFER
            | gst::PadProbeType::EVENT_DOWNSTREAM
            | gst::PadProbeType::EVENT_FLUSH,
        move |pad, info| {
            let event = match &info.data {
                Some(gst::PadProbeData::Event(event)) => Some(event.clone()),
                _ => None,
            };
            let kind = event.as_ref().map(|e| e.type_());
            // Events are consumed with Handled: with Drop, GStreamer 1.22
            // unrefs the item gstreamer-rs already took (a critical warning).
            match (state.load(Ordering::SeqCst), kind) {
                (BEFORE, Some(gst::EventType::Segment)) => {
                    *original.lock().unwrap_or_else(|p| p.into_inner()) = event;
                    gst::PadProbeReturn::Ok
                }
                (BEFORE, Some(_)) => gst::PadProbeReturn::Ok,
                (BEFORE, None) => {
                    state.store(SEEKING, Ordering::SeqCst);
                    let (pad, parse, errors) = (pad.clone(), parse.clone(), errors.clone());
                    let started = flushing.clone();
                    // A flushing seek cannot be sent from the streaming thread it flushes.
                    std::thread::spawn(move || {
                        let seek = gst::event::Seek::new(
                            1.0,
                            gst::SeekFlags::FLUSH
                                | gst::SeekFlags::KEY_UNIT
                                | gst::SeekFlags::SNAP_BEFORE,
                            gst::SeekType::Set,
                            first,
                            gst::SeekType::None,
                            gst::ClockTime::NONE,
                        );
                        if !pad.send_event(seek) {
                            if let Some(parse) = parse.upgrade() {
                                report(
                                    &parse,
                                    &errors,
                                    format!(
                                        "the input cannot be seeked to {:.3} s, where this segment starts",
                                        first.seconds_f64()
                                    ),
                                );
                            }
                            signal(&started);
                        }
                    });
                    let (lock, flushed) = &*flushing;
                    let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
                    let _ = flushed.wait_timeout_while(guard, Duration::from_secs(60), |f| !*f);
                    gst::PadProbeReturn::Drop
                }
                (SEEKING, Some(gst::EventType::FlushStart)) => {
                    signal(&flushing);
                    gst::PadProbeReturn::Handled
                }
                (SEEKING, Some(gst::EventType::FlushStop)) => {
                    state.store(STREAMING, Ordering::SeqCst);
                    gst::PadProbeReturn::Handled
                }
                (SEEKING, None) => gst::PadProbeReturn::Drop,
                (SEEKING, Some(_)) => gst::PadProbeReturn::Handled,
                (_, Some(gst::EventType::Segment)) => {
                    // Dropping a sticky event would have it sent again before every buffer.
                    if let Some(original) = original.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                        info.data = Some(gst::PadProbeData::Event(original));
                    }
                    gst::PadProbeReturn::Ok
                }
                (_, Some(gst::EventType::FlushStart | gst::EventType::FlushStop)) => {
                    gst::PadProbeReturn::Handled
                }
                _ => gst::PadProbeReturn::Ok,
            }
        },
    );
}

/// Lets encoded video held back until the input's streams are linked go,
/// at the first data out of `pad` (parsebin exposes its pads together).
fn release_held_video(pad: &gst::Pad, held: &HeldVideo) {
    let held = held.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        if let Some((pad, id)) = held.lock().unwrap_or_else(|p| p.into_inner()).take() {
            pad.remove_probe(id);
        }
        gst::PadProbeReturn::Remove
    });
}

fn signal(flag: &(Mutex<bool>, std::sync::Condvar)) {
    *flag.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
    flag.1.notify_all();
}

/// Has `muxer` name gendr as what wrote the file: the input's ENCODER
/// (ffmpeg's `Lavf…`, a camera's firmware) is taken out of the file-wide
/// tags that reach it on any pad, which would otherwise misstate it. A
/// stream's own ENCODER (x264 for the upscaled video, the copied audio's)
/// stays: it names what encoded those very bytes.
fn name_own_encoder(muxer: &gst::Element) {
    if let Some(setter) = muxer.dynamic_cast_ref::<gst::TagSetter>() {
        setter.add_tag::<gst::tags::Encoder>(
            &crate::finishing::ENCODER_NAME,
            gst::TagMergeMode::Replace,
        );
    }
    muxer.connect_pad_added(|_, pad| {
        pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, info| {
            let Some(gst::PadProbeData::Event(event)) = &info.data else {
                return gst::PadProbeReturn::Ok;
            };
            let gst::EventView::Tag(tag) = event.view() else {
                return gst::PadProbeReturn::Ok;
            };
            let tags = tag.tag();
            let names_encoder = tags.get::<gst::tags::Encoder>().is_some()
                || tags.get::<gst::tags::EncoderVersion>().is_some();
            if tags.scope() != gst::TagScope::Global || !names_encoder {
                return gst::PadProbeReturn::Ok;
            }
            let mut kept = tags.to_owned();
            {
                let kept = kept.make_mut();
                kept.remove::<gst::tags::Encoder>();
                kept.remove::<gst::tags::EncoderVersion>();
            }
            info.data = Some(gst::PadProbeData::Event(gst::event::Tag::new(kept)));
            gst::PadProbeReturn::Ok
        });
    });
}

/// Hands the muxer what the input's video stream carries for the whole
/// file (its global tags; its chapters when `chapters`) where that stream
/// itself goes nowhere, as in a join: an input with no other stream would
/// otherwise lose them. The chapters move `lead` later, with the streams.
fn carry_file_events(pad: &gst::Pad, muxer: &gst::Element, chapters: bool, lead: gst::ClockTime) {
    let muxer = muxer.downgrade();
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        let (Some(gst::PadProbeData::Event(event)), Some(muxer)) = (&info.data, muxer.upgrade())
        else {
            return gst::PadProbeReturn::Ok;
        };
        match event.view() {
            gst::EventView::Tag(tag) if tag.tag().scope() == gst::TagScope::Global => {
                if let Some(setter) = muxer.dynamic_cast_ref::<gst::TagSetter>() {
                    let mut tags = tag.tag_owned();
                    {
                        let tags = tags.make_mut();
                        tags.remove::<gst::tags::Encoder>();
                        tags.remove::<gst::tags::EncoderVersion>();
                    }
                    setter.merge_tags(&tags, gst::TagMergeMode::Keep);
                }
            }
            gst::EventView::Toc(toc) if chapters => {
                if let Some(setter) = muxer.dynamic_cast_ref::<gst::TocSetter>() {
                    setter.set_toc(Some(&timeline::toc_later(toc.toc().0, lead)));
                }
            }
            _ => {}
        }
        gst::PadProbeReturn::Ok
    });
}

/// Decoded, upscaled and encoded video: built up front so that errors show
/// before anything runs; linked to the decoder once it knows the stream.
fn upscaled_branch(
    pipeline: &gst::Pipeline,
    target: Target,
    info: &MediaInfo,
    window: Option<(&Window, &Notes)>,
    progress: &Arc<Progress>,
    link_error: &Arc<Mutex<Option<String>>>,
) -> Result<Branch> {
    let decode = gst::ElementFactory::make("decodebin").build()?;
    let video = video::VideoChain::build(target.options, info)?;
    pipeline.add(&decode)?;
    pipeline.add_many(&video.elements)?;
    gst::Element::link_many(&video.elements)?;
    let chain_sink = video.first.static_pad("sink").context("queue sink")?;
    // On the decoded video entering the chain.
    rewrite_caps(&chain_sink, with_sound_pixel_aspect);
    watch_decoded(&chain_sink, video.encoding, progress, link_error);
    link_decoded(&decode, chain_sink, window, progress, link_error);
    if let Some((window, _)) = window.filter(|(w, _)| w.preroll.is_some()) {
        // Added before the count, so that these frames are not counted.
        drop_before(&video.sr, window.first)?;
    }
    Ok(Branch {
        frames: media::count_output(&video.sr)?,
        last: video.last,
        decode: Some(decode),
        sr: Some(video.sr),
    })
}

/// Encoded video from the caller's appsrc, held back until the input's
/// other streams are linked: a muxer takes no new stream once it has
/// started, and they are linked when data leaves parsebin (it exposes its
/// pads at once).
fn encoded_branch(
    pipeline: &gst::Pipeline,
    appsrc: &gst_app::AppSrc,
    held_video: &HeldVideo,
) -> Result<Branch> {
    let queue = gst::ElementFactory::make("queue").build()?;
    pipeline.add_many([appsrc.upcast_ref(), &queue])?;
    appsrc.link(&queue)?;
    let frames = media::count_output(appsrc.upcast_ref())?;
    let src_pad = appsrc.static_pad("src").context("appsrc src")?;
    let blocked = src_pad.add_probe(
        gst::PadProbeType::BLOCK | gst::PadProbeType::BUFFER,
        |_, _| gst::PadProbeReturn::Ok,
    );
    *held_video.lock().unwrap_or_else(|p| p.into_inner()) = blocked.map(|id| (src_pad, id));
    Ok(Branch {
        last: queue,
        decode: None,
        sr: None,
        frames,
    })
}

/// Notes what a segment's encoder gave: each frame's pts in decode order,
/// the caps and the segment.
fn note_encoded(encoded_sink: &gst::Pad, notes: &Notes) {
    let notes = notes.clone();
    encoded_sink.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            let mut notes = notes.lock().unwrap_or_else(|p| p.into_inner());
            match &info.data {
                Some(gst::PadProbeData::Buffer(buffer)) => {
                    if let Some(pts) = buffer.pts() {
                        notes.encoded.push(pts.nseconds());
                    }
                }
                Some(gst::PadProbeData::Event(event)) => match event.view() {
                    gst::EventView::Caps(c) => notes.caps = Some(c.caps_owned()),
                    gst::EventView::Segment(s) => {
                        notes.segment = s.segment().downcast_ref::<gst::ClockTime>().cloned();
                    }
                    _ => {}
                },
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// Counts encoded frames and gives each the duration that keeps reordered
/// frames in the track ([`cover_reordered_frames`]).
fn watch_encoded(encoded_sink: &gst::Pad, progress: &Arc<Progress>, muxer: &gst::Element) {
    let progress = progress.clone();
    let span = Mutex::new(EncodedSpan::default());
    // matroskamux writes every frame's duration (BlockDuration), so there
    // the frames keep their own; only mp4mux needs the cover.
    let cover = !writes_matroska(muxer);
    encoded_sink.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        progress.encoded.fetch_add(1, Ordering::Relaxed);
        if let Some(buffer) = info.buffer_mut().filter(|_| cover) {
            let mut span = span.lock().unwrap_or_else(|p| p.into_inner());
            cover_reordered_frames(buffer.make_mut(), &mut span);
        }
        gst::PadProbeReturn::Ok
    });
}

/// Where each stream parsebin exposes goes: the first video to the
/// decoder (or nowhere when the video comes encoded), audio and subtitles
/// to the muxer as the options say, the rest nowhere.
struct Routing {
    pipeline: gst::glib::WeakRef<gst::Pipeline>,
    muxer: gst::glib::WeakRef<gst::Element>,
    decode: Option<gst::glib::WeakRef<gst::Element>>,
    progress: Arc<Progress>,
    errors: Arc<Mutex<Option<String>>>,
    held_video: HeldVideo,
    /// A segment: the video alone.
    video_only: bool,
    /// Where a segment's decoding starts.
    seek_to: Option<gst::ClockTime>,
    /// How much later the streams run, so that the copied streams' first
    /// packets are kept ([`timeline::timeline`]).
    timeline: Timeline,
    /// An MP4/MOV input's sound tracks, whose last packets qtdemux keeps back.
    sound_tracks: Option<Arc<SoundTracks>>,
    transcode_audio: bool,
    /// Where each audio stream went, and what the ones re-encoded as AAC
    /// fed their encoders and got from them.
    audio: SharedAudioLog,
    keep_subtitles: bool,
    keep_chapters: bool,
    /// The output's name, for messages.
    output: String,
}

/// Fails the job when a demuxer inside `parse` ends its video stream before
/// the video reached `decode`: a parser that refused the stream's caps
/// (damaged codec data) keeps parsebin from ever exposing it, and nothing
/// else would end the job before the stall limit.
fn end_unparsed_video(
    parse: &gst::Element,
    decode: gst::glib::WeakRef<gst::Element>,
    errors: Arc<Mutex<Option<String>>>,
) {
    let Some(bin) = parse.downcast_ref::<gst::Bin>() else {
        return;
    };
    // Posted by parsebin itself: a bin building a chain swallows its
    // children's errors.
    let parse = parse.downgrade();
    bin.connect_deep_element_added(move |_, _, element| {
        // Not a tag demuxer (id3demux): what it hands on is a whole file.
        let demuxer = element.factory().is_some_and(|f| {
            f.has_type(gst::ElementFactoryType::DEMUXER)
                && !f
                    .metadata(gst::ELEMENT_METADATA_KLASS)
                    .is_some_and(|k| k.contains("Metadata"))
        });
        if !demuxer {
            return;
        }
        let (decode, errors, parse) = (decode.clone(), errors.clone(), parse.clone());
        element.connect_pad_added(move |_, pad| {
            let (decode, errors, parse) = (decode.clone(), errors.clone(), parse.clone());
            pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |pad, info| {
                let is_eos = matches!(
                    &info.data,
                    Some(gst::PadProbeData::Event(e)) if e.type_() == gst::EventType::Eos
                );
                if !is_eos {
                    return gst::PadProbeReturn::Ok;
                }
                let video = pad
                    .current_caps()
                    .is_some_and(|caps| media::decodes_to_video(&caps));
                let unlinked = decode
                    .upgrade()
                    .and_then(|d| d.static_pad("sink"))
                    .is_some_and(|sink| !sink.is_linked());
                if let (true, true, Some(parse)) = (video, unlinked, parse.upgrade()) {
                    report(
                        &parse,
                        &errors,
                        "the video stream could not be read: it ended before it could be parsed \
                         (damaged stream headers?)"
                            .into(),
                    );
                }
                gst::PadProbeReturn::Ok
            });
        });
    });
}

impl Routing {
    fn connect(self, parse: &gst::Element) {
        // parsebin would turn ASS/SSA into plain Pango markup (ssaparse):
        // they are exposed as they are, for a container that holds them.
        parse.connect("autoplug-continue", false, |values| {
            let caps = values.get(2).and_then(|v| v.get::<gst::Caps>().ok());
            let styled = caps.as_ref().and_then(|c| c.structure(0)).is_some_and(|s| {
                matches!(s.name().as_str(), "application/x-ass" | "application/x-ssa")
            });
            Some((!styled).to_value())
        });
        if let Some(decode) = &self.decode {
            end_unparsed_video(parse, decode.clone(), self.errors.clone());
        }
        let video_taken = AtomicBool::new(false);
        parse.connect_pad_added(move |parse, pad| {
            let (Some(pipeline), Some(muxer)) = (self.pipeline.upgrade(), self.muxer.upgrade())
            else {
                return;
            };
            release_held_video(pad, &self.held_video);
            if !self.keep_chapters {
                drop_toc(pad);
            }
            let (caps, name) = media::pad_caps(pad);
            let result = if !name.starts_with("audio/")
                && media::decodes_to_video(&caps)
                && !video_taken.swap(true, Ordering::SeqCst)
            {
                match self.decode.as_ref().and_then(|d| d.upgrade()) {
                    // The video comes encoded from elsewhere.
                    None => {
                        carry_file_events(pad, &muxer, self.keep_chapters, self.timeline.lead);
                        media::discard(&pipeline, pad)
                    }
                    Some(decode) => {
                        self.timeline.run_later(pad, self.timeline.lead, false);
                        self.decode_video(parse, pad, &decode, &name)
                    }
                }
            } else if self.video_only {
                // A segment holds the video alone; join adds the rest.
                media::discard(&pipeline, pad)
            } else if name.starts_with("audio/") {
                self.timeline
                    .run_later(pad, self.timeline.audio_lead(pad), true);
                if let Some(tracks) = &self.sound_tracks {
                    tracks.complete(pad);
                }
                copy_audio(
                    &pipeline,
                    &muxer,
                    pad,
                    &caps,
                    &self.progress,
                    self.transcode_audio,
                    &self.audio,
                )
            } else if self.keep_subtitles && is_subtitle(&name) {
                self.timeline.run_later(pad, self.timeline.lead, true);
                copy_subtitle(&pipeline, &muxer, pad, &caps, &self.output)
            } else if !is_subtitle(&name) && media::decodes_to_video(&caps) {
                // Video beyond the first: a second angle, copied as it is.
                self.timeline.run_later(pad, self.timeline.lead, false);
                copy_video(&pipeline, &muxer, pad, &self.progress)
            } else {
                media::discard(&pipeline, pad)
            };
            if let Err(e) = result {
                report(parse, &self.errors, format!("{e:#}"));
            }
        });
    }

    /// Sends the parsed video to the decoder, from the segment's start.
    fn decode_video(
        &self,
        parse: &gst::Element,
        pad: &gst::Pad,
        decode: &gst::Element,
        name: &str,
    ) -> Result<()> {
        watch_buffers(pad, &self.progress, |p| &p.packets);
        if let Some(first) = self.seek_to {
            start_at(parse, pad, first, &self.errors);
        }
        let sink = decode.static_pad("sink").context("decodebin sink")?;
        pad.link(&sink)
            .map(|_| ())
            .map_err(|e| err!(Input, "the {name} video cannot be decoded ({e:?})"))
    }
}

pub(crate) struct Job {
    pipeline: gst::Pipeline,
    log: Arc<media::ErrorLog>,
    /// None when the video comes encoded.
    sr: Option<gst::Element>,
    frames: Arc<AtomicU64>,
    /// Frames a window or joined job must give; the input's otherwise.
    expected_frames: Option<u64>,
    /// The sink whose end ends the job when the rest of the input is not wanted.
    done_sink: Option<gst::Element>,
    progress: Arc<Progress>,
    /// A link or configuration error found in a streaming thread.
    link_error: Arc<Mutex<Option<String>>>,
    /// A segment's notes, filled while it runs.
    notes: Notes,
    audio: SharedAudioLog,
    /// Frames the video decoder dropped as damaged, as its QoS messages
    /// count them (a non-live pipeline posts no other QoS).
    dropped: AtomicU64,
}

/// The video branch as built: the element the muxer takes it from, and,
/// for upscaled video, the decoder and gendrsr.
struct Branch {
    last: gst::Element,
    decode: Option<gst::Element>,
    sr: Option<gst::Element>,
    /// Frames out of gendrsr (or the appsrc).
    frames: Arc<AtomicU64>,
}

/// A segment's video's pad that is waiting for the input's other streams
/// before it flows, and the probe holding it.
type HeldVideo = Arc<Mutex<Option<(gst::Pad, gst::PadProbeId)>>>;

impl Job {
    pub fn build(
        target: Target,
        info: &media::MediaInfo,
        muxer: gst::Element,
        partial: &Path,
        video: Video,
    ) -> Result<Job> {
        let log = Arc::new(media::ErrorLog::watch());
        let pipeline = gst::Pipeline::new();
        let src = gst::ElementFactory::make("filesrc")
            .property("location", target.input)
            .build()?;
        let parse = gst::ElementFactory::make("parsebin").build()?;
        let sink = gst::ElementFactory::make("filesink")
            .property("location", partial)
            .build()?;
        pipeline.add_many([&src, &parse, &muxer, &sink])?;
        gst::Element::link_many([&src, &parse])?;
        gst::Element::link_many([&muxer, &sink])?;
        name_own_encoder(&muxer);
        let mux_video = muxer
            .request_pad_simple("video_%u")
            .context("the muxer takes no video")?;
        // On the video's way into the muxer: no HDR mastering metadata.
        rewrite_caps(&mux_video, without_mastering_display);
        let progress = Arc::new(Progress::new());
        let link_error = Arc::new(Mutex::new(None));
        let held_video = HeldVideo::default();
        let notes = Notes::default();
        let audio = SharedAudioLog::default();

        let window = match &video {
            Video::Segment(window) => Some(window),
            Video::Whole | Video::Encoded(_) => None,
        };
        let branch = match &video {
            Video::Whole | Video::Segment(_) => upscaled_branch(
                &pipeline,
                target,
                info,
                window.map(|w| (w, &notes)),
                &progress,
                &link_error,
            )?,
            Video::Encoded(appsrc) => encoded_branch(&pipeline, appsrc, &held_video)?,
        };
        branch
            .last
            .static_pad("src")
            .context("queue src")?
            .link(&mux_video)?;
        let encoded_sink = branch.last.static_pad("sink").context("queue sink")?;
        if window.is_some() {
            note_encoded(&encoded_sink, &notes);
        }
        watch_encoded(&encoded_sink, &progress, &muxer);
        watch_buffers(
            &sink.static_pad("sink").context("filesink sink")?,
            &progress,
            |p| &p.muxed,
        );
        let video_only = window.is_some();
        let keep_subtitles = target.options.subtitles == KeepOrDrop::Keep;
        // A segment's video is timed as the input's; join moves it with the rest.
        let timeline = if video_only {
            Timeline::default()
        } else {
            // What the output hides of the input's priming (`finishing`):
            // an MP4/MOV output's edit lists that of the audio it copies.
            let hidden_priming = if writes_matroska(&muxer) {
                Some(HiddenPriming::OpusCodecDelay)
            } else {
                muxer
                    .pad_template("audio_%u")
                    .map(|t| HiddenPriming::EditLists(t.caps().clone()))
            };
            timeline::timeline(target.input, keep_subtitles, hidden_priming.as_ref())?
        };
        let lead = timeline.lead;
        // Chapters handed to the muxer up front (an MP4/MOV input's) move
        // with the streams, as those the streams carry do (`run_later`).
        if let Some(setter) = muxer.dynamic_cast_ref::<gst::TocSetter>() {
            if let Some(toc) = setter.toc().filter(|_| !lead.is_zero()) {
                setter.set_toc(Some(&timeline::toc_later(&toc, lead)));
            }
        }
        if let Video::Encoded(appsrc) = &video {
            timeline::run_later(
                &appsrc.static_pad("src").context("appsrc src")?,
                lead,
                false,
            );
        }
        Routing {
            pipeline: pipeline.downgrade(),
            muxer: muxer.downgrade(),
            decode: branch.decode.as_ref().map(|d| d.downgrade()),
            progress: progress.clone(),
            errors: link_error.clone(),
            held_video,
            video_only,
            seek_to: window
                .filter(|w| w.seek)
                .map(|w| w.preroll.unwrap_or(w.first)),
            timeline,
            sound_tracks: if video_only {
                None
            } else {
                SoundTracks::read(target.input)?
            },
            transcode_audio: target.options.audio == Audio::Aac,
            audio: audio.clone(),
            keep_subtitles,
            keep_chapters: target.options.chapters == KeepOrDrop::Keep,
            output: target.output.display().to_string(),
        }
        .connect(&parse);
        // Without the other streams the job ends with the video, not with the
        // input: the demuxer would otherwise read the rest of the file.
        let done_sink = video_only.then(|| {
            pipeline.set_property("message-forward", true);
            sink.clone()
        });
        Ok(Job {
            pipeline,
            log,
            sr: branch.sr,
            frames: branch.frames,
            expected_frames: window.map(|w| w.expected_frames),
            done_sink,
            progress,
            link_error,
            notes,
            audio,
            dropped: AtomicU64::new(0),
        })
    }

    /// Runs to the end, telling `bar` the progress.
    pub fn run(
        &self,
        info: &MediaInfo,
        options: &UpscaleOptions,
        stall_timeout: u64,
        caller: Caller,
    ) -> Result<Report> {
        self.run_saying_engine(info, options, stall_timeout, caller, false)
    }

    /// As [`Job::run`]; with `say_engine`, a line names what runs the model
    /// once gendrsr has started (`--provider auto` decides only then).
    pub fn run_saying_engine(
        &self,
        info: &MediaInfo,
        options: &UpscaleOptions,
        stall_timeout: u64,
        caller: Caller,
        say_engine: bool,
    ) -> Result<Report> {
        let bar = caller.observer;
        let input_frames = self.expected_frames.or(info.frame_count()).unwrap_or(0);
        bar.start(input_frames * video::frames_per_input_frame(options, info));
        let stall_limit = (stall_timeout > 0).then(|| Duration::from_secs(stall_timeout));
        let result = self.drive(
            bar,
            caller.cancel,
            stall_limit,
            say_engine.then_some(options),
        );
        self.say_left_notices(bar);
        bar.finish();
        let _ = self.pipeline.set_state(gst::State::Null);
        result?;
        // Demuxers end quietly at the end of a truncated file; the timeline
        // tells, whatever the frame rate (variable included). A window
        // covers part of it by design, and its frames are counted instead.
        if let (Some(duration), Some(reach), None) =
            (info.duration, self.progress.reach(), self.expected_frames)
        {
            if reach + TRUNCATION_TOLERANCE < duration {
                bail!(
                    Input,
                    "the input ended early: its streams stop at {:.2} s of {:.2} s (truncated or corrupt file?)",
                    reach.seconds_f64(),
                    duration.seconds_f64()
                );
            }
        }
        let notes = std::mem::take(&mut *self.notes.lock().unwrap_or_else(|p| p.into_inner()));
        Ok(Report {
            frames: self.frames.load(Ordering::Relaxed),
            decoder_errors: self.log.decoder_errors(),
            undecodable: self.undecodable(),
            dropped: self.dropped.load(Ordering::Relaxed),
            segment: notes,
            audio: std::mem::take(&mut *self.audio.lock().unwrap_or_else(|p| p.into_inner())),
        })
    }

    fn drive(
        &self,
        bar: &dyn Observer,
        cancel: &Cancel,
        stall_limit: Option<Duration>,
        mut say_engine: Option<&UpscaleOptions>,
    ) -> Result<()> {
        let bus = self.pipeline.bus().context("pipeline bus")?;
        if self.pipeline.set_state(gst::State::Playing).is_err() {
            return Err(self
                .first_error(&bus)
                .unwrap_or_else(|| err!(Pipeline, "the pipeline could not start")));
        }
        let mut watchdog = Watchdog::new(stall_limit, Instant::now());
        loop {
            if cancel.is_cancelled() {
                return Err(Error::Interrupted("interrupted; no output written".into()));
            }
            let upscaled = self.frames.load(Ordering::Relaxed);
            bar.progress(upscaled);
            watchdog.check(&self.progress, upscaled, Instant::now())?;
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
                continue;
            };
            if let Some(line) = notice(&msg) {
                bar.say(&line);
                continue;
            }
            match msg.view() {
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Element(msg) if self.is_done(msg) => break,
                gst::MessageView::Error(err) => return Err(self.explain(err, &bus)),
                gst::MessageView::Warning(warning) => {
                    bar.say(&format!("gendr: warning: {}", media::warning_text(warning)));
                }
                gst::MessageView::Qos(qos)
                    if msg.src().is_some_and(|s| s.is::<gst_video::VideoDecoder>()) =>
                {
                    if let gst::GenericFormattedValue::Buffers(Some(dropped)) = qos.stats().1 {
                        self.dropped.fetch_max(*dropped, Ordering::Relaxed);
                    }
                }
                gst::MessageView::StateChanged(change)
                    if change.current() == gst::State::Paused =>
                {
                    if let (Some(options), Some(sr)) = (say_engine, &self.sr) {
                        if msg.src() == Some(sr.upcast_ref()) {
                            if let Some(runs_on) = sr.property::<Option<String>>("runs-on") {
                                bar.say(&format!(
                                    "gendr: model {} runs on {runs_on}",
                                    options.sr.model
                                ));
                            }
                            say_engine = None;
                        }
                    }
                }
                _ => {}
            }
        }
        if self.frames.load(Ordering::Relaxed) == 0 {
            bail!(
                Input,
                "no video frames were decoded (corrupt or truncated input?)"
            );
        }
        Ok(())
    }

    /// Says the lines the streaming threads posted that the loop did not
    /// reach before it ended (a stream's own end comes just before the job's).
    fn say_left_notices(&self, bar: &dyn Observer) {
        let Some(bus) = self.pipeline.bus() else {
            return;
        };
        while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Application]) {
            if let Some(line) = notice(&msg) {
                bar.say(&line);
            }
        }
    }

    /// Whether `msg` forwards the end of the stream at [`Job::done_sink`].
    fn is_done(&self, msg: &gst::message::Element) -> bool {
        let Some(sink) = &self.done_sink else {
            return false;
        };
        msg.structure()
            .filter(|s| s.name() == "GstBinForwarded")
            .and_then(|s| s.get::<gst::Message>("message").ok())
            .is_some_and(|m| {
                m.type_() == gst::MessageType::Eos && m.src() == Some(sink.upcast_ref())
            })
    }

    /// The user's reason for a pipeline error: a recorded link failure, a
    /// frame size the model refuses (gendrsr posts why on the bus, perhaps
    /// after upstream's "not negotiated"), or the element's own message.
    fn explain(&self, err: &gst::message::Error, bus: &gst::Bus) -> Error {
        if let Some(cause) = self
            .link_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return err!(Pipeline, "{cause}");
        }
        let negotiated = self
            .sr
            .as_ref()
            .and_then(|sr| sr.static_pad("src"))
            .is_none_or(|pad| pad.current_caps().is_some());
        if let (false, Some(sr)) = (negotiated, &self.sr) {
            if let Some(refusal) = refusal_by(sr, err, bus) {
                let decoded = *self
                    .progress
                    .decoded_size
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                return match decoded {
                    Some((w, h)) => {
                        err!(
                            Pipeline,
                            "gendrsr refused the decoded {w}x{h} frames: {refusal}"
                        )
                    }
                    None => err!(Pipeline, "gendrsr: {refusal}"),
                };
            }
        }
        let text = media::error_text(err);
        match Error::from_gst(err, text.clone()) {
            Some(no_space) => no_space,
            None => err!(Pipeline, "{text}"),
        }
    }

    fn undecodable(&self) -> u64 {
        let packets = self.progress.packets.load(Ordering::Relaxed);
        packets.saturating_sub(self.progress.decoded.load(Ordering::Relaxed))
    }

    fn first_error(&self, bus: &gst::Bus) -> Option<Error> {
        media::first_error(bus, |err| self.explain(err, bus))
    }
}

/// Why `sr` refused the stream: `err` if it is the element's, else its
/// error among those that follow on `bus` within a second.
fn refusal_by(sr: &gst::Element, err: &gst::message::Error, bus: &gst::Bus) -> Option<String> {
    let text = |e: &gst::message::Error| media::first_line(&e.error().to_string()).to_string();
    if err.src() == Some(sr.upcast_ref()) {
        return Some(text(err));
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(left.as_nanos() as u64),
            &[gst::MessageType::Error],
        )?;
        if let gst::MessageView::Error(e) = msg.view() {
            if e.src() == Some(sr.upcast_ref()) {
                return Some(text(e));
            }
        }
    }
    None
}

/// How far short of the container's duration the streams may end: a last
/// frame or audio packet without a duration of its own.
const TRUNCATION_TOLERANCE: gst::ClockTime = gst::ClockTime::from_mseconds(500);

/// Turns a pipeline that stopped moving into an error naming the stage.
/// A slow model is not a stall: the limit grows to several times the
/// longest wait seen between two frames out of the model.
struct Watchdog {
    limit: Option<Duration>,
    last: (u64, u64, u64, u64),
    /// Packets into the decoder: they move while a segment decodes from
    /// the keyframe before its first frame, which passes no frame on.
    last_packets: u64,
    last_change: Instant,
    last_upscaled: Option<Instant>,
    longest_model_wait: Duration,
}

impl Watchdog {
    /// Times the longest wait between model outputs is allowed before a stall.
    const MODEL_WAIT_FACTOR: u32 = 5;

    /// A watchdog started at `now`.
    fn new(limit: Option<Duration>, now: Instant) -> Self {
        Watchdog {
            limit,
            last: (0, 0, 0, 0),
            last_packets: 0,
            last_change: now,
            last_upscaled: None,
            longest_model_wait: Duration::ZERO,
        }
    }

    /// Looks at the counters at time `at`: an error once nothing moved for the limit.
    fn check(&mut self, progress: &Progress, upscaled: u64, at: Instant) -> Result<()> {
        let Some(base) = self.limit else {
            return Ok(());
        };
        let now = (
            progress.decoded.load(Ordering::Relaxed),
            upscaled,
            progress.encoded.load(Ordering::Relaxed),
            progress.muxed.load(Ordering::Relaxed),
        );
        if now != self.last {
            if now.1 != self.last.1 {
                if let Some(previous) = self.last_upscaled {
                    self.longest_model_wait = self
                        .longest_model_wait
                        .max(at.saturating_duration_since(previous));
                }
                self.last_upscaled = Some(at);
            }
            self.last = now;
            self.last_change = at;
            return Ok(());
        }
        let packets = progress.packets.load(Ordering::Relaxed);
        if packets != self.last_packets {
            self.last_packets = packets;
            self.last_change = at;
            return Ok(());
        }
        let limit = base.max(self.longest_model_wait * Self::MODEL_WAIT_FACTOR);
        if at.saturating_duration_since(self.last_change) < limit {
            return Ok(());
        }
        let secs = limit.as_secs();
        let (decoded, upscaled, ..) = now;
        let stage = if decoded == 0 {
            format!("no frame was decoded in {secs} s")
        } else if decoded > upscaled {
            format!(
                "gendrsr (the model) made no progress for {secs} s with {} frame(s) waiting",
                decoded - upscaled
            )
        } else {
            format!("decoding made no progress for {secs} s after {decoded} frames")
        };
        Err(Error::stalled(stage))
    }
}

#[cfg(test)]
mod tests;
