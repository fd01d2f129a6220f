//! The streams beside the video: copied into the output as they are,
//! converted where the container cannot hold them, or refused.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use gst::prelude::*;

use super::job::Progress;

/// Sends a parsed audio stream into the muxer: as it is, or, where the
/// container cannot hold its codec and `transcode` allows, re-encoded as AAC.
pub(super) fn copy_audio(
    pipeline: &gst::Pipeline,
    muxer: &gst::Element,
    pad: &gst::Pad,
    caps: &gst::Caps,
    progress: &Arc<Progress>,
    transcode: bool,
) -> Result<()> {
    let template = muxer
        .pad_template("audio_%u")
        .context("the output container takes no audio")?;
    let codec = caps
        .structure(0)
        .map(|s| s.name().to_string())
        .unwrap_or_default();
    // Elements between the parsed pad and the queue: none for a copy.
    let mut chain = Vec::new();
    if !template.caps().can_intersect(caps) {
        if !transcode {
            bail!(
                "the {codec} audio cannot be copied into this container; use .mkv, or --audio aac \
                 to re-encode it"
            );
        }
        eprintln!(
            "gendr: {codec} audio re-encoded as AAC 256 kbit/s (this container cannot hold it)"
        );
        chain = vec![
            gst::ElementFactory::make("decodebin").build()?,
            gst::ElementFactory::make("audioconvert").build()?,
            gst::ElementFactory::make("audioresample").build()?,
            gst::ElementFactory::make("avenc_aac")
                .property("bitrate", 256_000i32)
                .build()?,
        ];
    }
    // The demuxer feeds audio and video from one thread while the encoder
    // holds back frames for look-ahead: a bounded audio queue would fill and
    // stall the video behind it. Interleaving in the file bounds it instead.
    let queue = gst::ElementFactory::make("queue")
        .property("max-size-buffers", 0u32)
        .property("max-size-bytes", 0u32)
        .property("max-size-time", 0u64)
        .build()?;
    let queue_sink = queue.static_pad("sink").context("queue sink")?;
    let progress = progress.clone();
    queue_sink.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
            progress.saw_buffer(buffer);
        }
        gst::PadProbeReturn::Ok
    });
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
    queue
        .static_pad("src")
        .context("queue src")?
        .link(&mux_pad)?;
    Ok(())
}

/// Streams that are not copied (subtitles, data, extra video) go nowhere.
pub(super) fn discard(pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<()> {
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()?;
    pipeline.add(&sink)?;
    sink.sync_state_with_parent()?;
    pad.link(&sink.static_pad("sink").context("fakesink sink")?)?;
    Ok(())
}
