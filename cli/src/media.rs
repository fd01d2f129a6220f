//! GStreamer helpers shared by the subcommands: probing files, decoding
//! frames for measurement, and bus handling.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use gendr::frame::RgbImage;
use gst::prelude::*;
use gst_video::prelude::*;

/// Removes a file when dropped, unless [`RemoveOnDrop::keep`] was called:
/// partial outputs and scratch files never outlive an early return.
pub struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    pub fn new(path: PathBuf) -> Self {
        RemoveOnDrop(Some(path))
    }

    pub fn path(&self) -> &Path {
        self.0.as_deref().expect("not yet kept")
    }

    pub fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// What the discoverer found in a file.
#[derive(Debug, Clone)]
pub struct MediaInfo {
    pub duration: Option<gst::ClockTime>,
    pub width: u32,
    pub height: u32,
    /// Frames per second; 0/1 when unknown or variable.
    pub framerate: gst::Fraction,
    pub audio_streams: usize,
}

impl MediaInfo {
    /// The number of frames expected, when the duration and rate are known.
    pub fn frame_count(&self) -> Option<u64> {
        let fps = self.framerate;
        let duration = self.duration?;
        (fps.numer() > 0).then(|| {
            let frames = duration.nseconds() as f64 * fps.numer() as f64 / fps.denom() as f64 / 1e9;
            frames.round() as u64
        })
    }
}

pub fn file_uri(path: &Path) -> Result<String> {
    let absolute = std::fs::canonicalize(path).with_context(|| format!("{}", path.display()))?;
    gst::glib::filename_to_uri(&absolute, None)
        .map(|u| u.to_string())
        .map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Probes a media file; fails with one line if it is missing, unreadable,
/// corrupt or has no video.
pub fn discover(path: &Path) -> Result<MediaInfo> {
    if !path.is_file() {
        bail!("{}: no such file", path.display());
    }
    std::fs::File::open(path).with_context(|| format!("{}: cannot be read", path.display()))?;
    let discoverer = gst_pbutils::Discoverer::new(gst::ClockTime::from_seconds(30))?;
    let info = discoverer.discover_uri(&file_uri(path)?).map_err(|e| {
        anyhow!(
            "{}: not a playable media file ({})",
            path.display(),
            first_line(&e.to_string())
        )
    })?;
    let video = info.video_streams();
    let Some(v) = video.first() else {
        bail!("{}: no video stream", path.display());
    };
    if v.width() == 0 || v.height() == 0 {
        bail!(
            "{}: the video stream has no size (corrupt or truncated?)",
            path.display()
        );
    }
    Ok(MediaInfo {
        duration: info.duration(),
        width: v.width(),
        height: v.height(),
        framerate: v.framerate(),
        audio_streams: info.audio_streams().len(),
    })
}

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

pub fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("").trim()
}

/// Turns a bus error message into one line naming the element.
pub fn error_text(err: &gst::message::Error) -> String {
    let source = err
        .src()
        .map(|s| s.name().to_string())
        .unwrap_or_else(|| "pipeline".into());
    format!("{source}: {}", first_line(&err.error().to_string()))
}

/// Decodes a file (image or video) to RGB frames, keeping at most `max`
/// frames spread evenly over the first `max * every` decoded ones.
pub fn decode_rgb(path: &Path, max: usize, every: usize) -> Result<Vec<RgbImage>> {
    discover(path)?;
    let pipeline = gst::parse::launch(&format!(
        "uridecodebin uri=\"{}\" ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false",
        file_uri(path)?
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| anyhow!("not a pipeline"))?;
    let sink = pipeline
        .by_name("sink")
        .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
        .context("appsink")?;
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
                        anyhow!("{}: {}", path.display(), error_text(e))
                    }
                    _ => anyhow!("{}: decoding stalled", path.display()),
                });
            }
        }
    };
    pipeline.set_state(gst::State::Null)?;
    result?;
    if frames.is_empty() {
        bail!("{}: no frames decoded", path.display());
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
