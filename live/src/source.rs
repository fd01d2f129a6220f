//! The source pipeline: whatever the input is, decoded to raw video and
//! handed to the output pipeline's appsrc. Rebuilt on every (re)connection.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{Context, Result};
use gst::prelude::*;

use super::access::Access;
use super::endpoint::Source;
use super::output::Output;
use super::status::Counters;
use gendr_archive::media;

/// The source side: rebuilt on every (re)connection.
pub fn build(
    source: &Source,
    access: &Access,
    output: &Output,
    counters: &Arc<Counters>,
) -> Result<gst::Pipeline> {
    let pipeline = gst::Pipeline::with_name("gendr-live-source");
    let convert = gst::ElementFactory::make("videoconvert").build()?;
    let appsink = gst_app::AppSink::builder()
        .caps(
            &gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .build(),
        )
        // A file plays at its own pace; a live stream is taken as it comes.
        .sync(source.is_file())
        .max_buffers(2)
        .drop(true)
        .build();
    pipeline.add_many([&convert, appsink.upcast_ref()])?;
    convert.link(&appsink)?;
    let decode = match source {
        Source::Uri(uri) | Source::File(uri) => {
            let decode = gst::ElementFactory::make("uridecodebin")
                .property("uri", uri)
                .build()?;
            if let Some(key) = access.srt_key.clone() {
                decode.connect("source-setup", false, move |values| {
                    let element = values.get(1).and_then(|v| v.get::<gst::Element>().ok());
                    if let Some(srtsrc) = element.filter(|e| e.has_property("passphrase")) {
                        key.apply(&srtsrc);
                    }
                    None
                });
            }
            decode
        }
        Source::Device(device) => {
            let src = gst::ElementFactory::make("v4l2src")
                .property("device", device)
                .build()?;
            let decode = gst::ElementFactory::make("decodebin").build()?;
            pipeline.add(&src)?;
            pipeline.add(&decode)?;
            src.link(&decode)?;
            decode
        }
    };
    if decode.parent().is_none() {
        pipeline.add(&decode)?;
    }
    let video_sink = convert.static_pad("sink").context("videoconvert sink")?;
    let weak = pipeline.downgrade();
    decode.connect_pad_added(move |_, pad| {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let is_video = caps
            .structure(0)
            .is_some_and(|s| s.name().starts_with("video/"));
        if is_video && !video_sink.is_linked() {
            let _ = pad.link(&video_sink);
        } else if let Some(pipeline) = weak.upgrade() {
            // Audio and extra streams go nowhere.
            if let Ok(sink) = gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .property("async", false)
                .build()
            {
                let _ = pipeline.add(&sink);
                let _ = sink.sync_state_with_parent();
                if let Some(sinkpad) = sink.static_pad("sink") {
                    let _ = pad.link(&sinkpad);
                }
            }
        }
    });
    let appsrc = output.appsrc.clone();
    let counters = counters.clone();
    let mut last_caps: Option<gst::Caps> = None;
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let (Some(buffer), Some(caps)) = (sample.buffer_owned(), sample.caps_owned())
                else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                if last_caps.as_ref() != Some(&caps) {
                    appsrc.set_caps(Some(&caps));
                    last_caps = Some(caps);
                }
                // The output timeline is the output pipeline's: stamped on arrival.
                let mut buffer = buffer;
                {
                    let b = buffer.make_mut();
                    b.set_pts(gst::ClockTime::NONE);
                    b.set_dts(gst::ClockTime::NONE);
                }
                counters.frames_in.fetch_add(1, Ordering::Relaxed);
                counters.last_in_ms.store(
                    counters.started.elapsed().as_millis() as u64,
                    Ordering::Relaxed,
                );
                // Flushing or EOS downstream ends the run elsewhere; keep the source going.
                let _ = appsrc.push_buffer(buffer);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(pipeline)
}

/// Why the source needs rebuilding, if it does.
pub fn trouble(source: &gst::Pipeline) -> Option<String> {
    let bus = source.bus()?;
    while let Some(msg) = bus.pop() {
        match msg.view() {
            gst::MessageView::Eos(_) => return Some("end of stream".into()),
            gst::MessageView::Error(err) => return Some(media::error_text(err)),
            _ => {}
        }
    }
    None
}
