//! Decoding a file to frames, for measurement and for counting a
//! stage's output.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{bail, err, Context, Result};
use gendr::frame::RgbImage;
use gst::prelude::*;
use gst_video::prelude::*;

use super::messages::error_text;
use super::probe::{discover, file_to_appsink};

/// Counts the buffers that leave `element` through its src pad.
pub fn count_output(element: &gst::Element) -> Result<Arc<AtomicU64>> {
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    element.static_pad("src").context("no src pad")?.add_probe(
        gst::PadProbeType::BUFFER,
        move |_, _| {
            counter.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        },
    );
    Ok(count)
}

/// Decodes a file (image or video) to RGB frames, keeping at most `max`
/// frames spread evenly over the first `max * every` decoded ones.
pub fn decode_rgb(path: &Path, max: usize, every: usize) -> Result<Vec<RgbImage>> {
    discover(path)?;
    let (pipeline, sink) =
        file_to_appsink(path, "decodebin ! videoconvert ! video/x-raw,format=RGB")?;
    pipeline.set_state(gst::State::Playing)?;
    let mut frames = Vec::new();
    let mut index = 0usize;
    let result = loop {
        if frames.len() >= max {
            break Ok(());
        }
        match sink.try_pull_sample(gst::ClockTime::from_seconds(30)) {
            Some(sample) => {
                if index % every.max(1) == 0 {
                    frames.push(sample_to_rgb(&sample)?);
                }
                index += 1;
            }
            None if sink.is_eos() => break Ok(()),
            None => {
                let bus = pipeline.bus().context("bus")?;
                let err = bus.timed_pop_filtered(gst::ClockTime::ZERO, &[gst::MessageType::Error]);
                break Err(match err.as_ref().map(|m| m.view()) {
                    Some(gst::MessageView::Error(e)) => {
                        err!(Pipeline, "{}: {}", path.display(), error_text(e))
                    }
                    _ => err!(Pipeline, "{}: decoding stalled", path.display()),
                });
            }
        }
    };
    pipeline.set_state(gst::State::Null)?;
    result?;
    if frames.is_empty() {
        bail!(Input, "{}: no frames decoded", path.display());
    }
    Ok(frames)
}

fn sample_to_rgb(sample: &gst::Sample) -> Result<RgbImage> {
    let caps = sample.caps().context("sample without caps")?;
    let info = gst_video::VideoInfo::from_caps(caps)?;
    let buffer = sample.buffer().context("sample without buffer")?;
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)?;
    let (w, h) = (info.width() as usize, info.height() as usize);
    let stride = frame.plane_stride()[0] as usize;
    let data = frame.plane_data(0)?;
    let mut rgb = Vec::with_capacity(3 * w * h);
    for y in 0..h {
        rgb.extend_from_slice(&data[y * stride..y * stride + 3 * w]);
    }
    Ok(RgbImage::from_rgb8(w, h, &rgb)?)
}
