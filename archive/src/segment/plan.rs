//! `gendr plan`: split the input's video into segments at keyframes from
//! its packets alone (demuxed, not decoded).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{bail, err, Context, Result};
use gst::prelude::*;

use super::manifest::{InputId, Manifest, Segment, FORMAT, GENDR_VERSION};
use crate::media::{self, MediaInfo};
use crate::request::{Container, Target, UpscaleOptions};
use crate::upscale;

/// A video packet as the demuxer gives it.
#[derive(Clone, Copy)]
struct Packet {
    pts: u64,
    duration: Option<u64>,
    key: bool,
}

/// Frames decoded to check that the decoder gives a frame per packet.
const FRAMES_CHECKED: usize = 100;

pub fn plan(
    input: &Path,
    options: &UpscaleOptions,
    container: Option<Container>,
    segment_seconds: f64,
) -> Result<Manifest> {
    let id = InputId::of(input)?;
    let packets = demux(input)?;
    if packets.is_empty() {
        bail!(Input, "{}: no video packets", input.display());
    }
    check_frames_are_packets(input, &packets)?;
    let mut frames = packets.clone();
    frames.sort_by_key(|p| p.pts);
    if frames.windows(2).any(|w| w[0].pts == w[1].pts) {
        bail!(
            Unsupported,
            "{}: several video packets share a timestamp; gendr cannot segment this stream, use gendr upscale",
            input.display()
        );
    }
    let last = frames[frames.len() - 1];
    let end = last.pts + last.duration.unwrap_or(0);
    let starts = split(&frames, end, (segment_seconds * 1e9) as u64);
    let segments = starts
        .iter()
        .enumerate()
        .map(|(index, &start)| {
            let next = starts.get(index + 1).copied();
            Segment {
                index,
                first_frame: start as u64,
                frames: (next.unwrap_or(frames.len()) - start) as u64,
                first_pts_ns: frames[start].pts,
                end_pts_ns: next.map_or(end, |n| frames[n].pts),
                starts_at_keyframe: frames[start].key,
            }
        })
        .collect();
    Ok(Manifest {
        format: FORMAT,
        gendr_version: GENDR_VERSION.to_string(),
        input: id,
        options: options.clone(),
        container,
        segment_seconds,
        frames: frames.len() as u64,
        first_pts_ns: frames[0].pts,
        end_pts_ns: end,
        segments,
    })
}

/// Where segments start (indices into `frames`, in presentation order): at
/// the keyframe nearest to every `length` ns, or, with no keyframe within
/// half a length of that, at the frame there (decoded from the keyframe
/// before it). A rest shorter than 1.5 lengths stays with the last segment.
fn split(frames: &[Packet], end: u64, length: u64) -> Vec<usize> {
    let length = length.max(1);
    let mut starts = vec![0];
    loop {
        let start = frames[*starts.last().expect("one start")].pts;
        if end.saturating_sub(start) <= length + length / 2 {
            return starts;
        }
        let target = start + length;
        let keyframe = frames
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                f.key && f.pts > start + length / 2 && f.pts <= start + length + length / 2
            })
            .min_by_key(|(_, f)| f.pts.abs_diff(target))
            .map(|(i, _)| i);
        let next = keyframe.or_else(|| frames.iter().position(|f| f.pts >= target));
        match next {
            Some(next) if frames[next].pts > start => starts.push(next),
            _ => return starts,
        }
    }
}

/// Every packet of the input's first video stream, in decode order.
fn demux(input: &Path) -> Result<Vec<Packet>> {
    let (pipeline, parse) = media::file_to_parsebin(input)?;
    let packets = Arc::new(Mutex::new(Vec::new()));
    let missing_pts = Arc::new(Mutex::new(false));
    let taken = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let weak = pipeline.downgrade();
        let (packets, missing_pts) = (packets.clone(), missing_pts.clone());
        parse.connect_pad_added(move |_, pad| {
            let Some(pipeline) = weak.upgrade() else {
                return;
            };
            let (caps, name) = media::pad_caps(pad);
            let video = !name.starts_with("audio/")
                && media::decodes_to_video(&caps)
                && !taken.swap(true, std::sync::atomic::Ordering::SeqCst);
            if video {
                let (packets, missing_pts) = (packets.clone(), missing_pts.clone());
                pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                    if let Some(buffer) = info.buffer() {
                        match buffer.pts() {
                            Some(pts) => {
                                packets
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .push(Packet {
                                        pts: pts.nseconds(),
                                        duration: buffer.duration().map(|d| d.nseconds()),
                                        key: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
                                    })
                            }
                            None => *missing_pts.lock().unwrap_or_else(|p| p.into_inner()) = true,
                        }
                    }
                    gst::PadProbeReturn::Ok
                });
            }
            // A packet list that cannot be read ends in run_to_end's error.
            let _ = media::discard(&pipeline, pad);
        });
    }
    run_to_end(&pipeline).with_context(|| format!("{}: reading its packets", input.display()))?;
    if *missing_pts.lock().unwrap_or_else(|p| p.into_inner()) {
        bail!(
            Unsupported,
            "{}: some video packets have no timestamp; gendr cannot segment this stream, use gendr upscale",
            input.display()
        );
    }
    let packets = std::mem::take(&mut *packets.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(packets)
}

fn run_to_end(pipeline: &gst::Pipeline) -> Result<()> {
    let bus = pipeline.bus().context("bus")?;
    let started = pipeline.set_state(gst::State::Playing);
    let result = match started {
        Err(_) => Err(
            media::first_error(&bus, |e| err!(Pipeline, "{}", media::error_text(e)))
                .unwrap_or_else(|| err!(Pipeline, "the pipeline could not start")),
        ),
        Ok(_) => loop {
            let Some(msg) = bus.timed_pop(gst::ClockTime::NONE) else {
                break Ok(());
            };
            match msg.view() {
                gst::MessageView::Eos(_) => break Ok(()),
                gst::MessageView::Error(e) => {
                    break Err(err!(Pipeline, "{}", media::error_text(e)))
                }
                _ => {}
            }
        },
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// Segments are cut by packet timestamps, run-segment counts decoded
/// frames: decoding the first frames shows whether the two agree (a
/// field-coded stream gives a frame per two packets).
fn check_frames_are_packets(input: &Path, packets: &[Packet]) -> Result<()> {
    let wanted = packets.len().min(FRAMES_CHECKED);
    let (pipeline, sink) = media::file_to_appsink(input, "decodebin ! video/x-raw")?;
    pipeline.set_state(gst::State::Playing)?;
    let mut decoded = Vec::new();
    while decoded.len() < wanted {
        let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(60)) else {
            break;
        };
        if let Some(pts) = sample.buffer().and_then(|b| b.pts()) {
            decoded.push(pts.nseconds());
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    let Some(&last) = decoded.last() else {
        bail!(
            Input,
            "{}: no video frame could be decoded",
            input.display()
        );
    };
    let packet_times: std::collections::HashSet<u64> = packets.iter().map(|p| p.pts).collect();
    let packets_up_to = packets.iter().filter(|p| p.pts <= last).count();
    if decoded.len() != packets_up_to || decoded.iter().any(|pts| !packet_times.contains(pts)) {
        bail!(
            Unsupported,
            "{}: the decoder gives {} frames for the first {packets_up_to} video packets (field-coded or \
             packed video?); gendr cannot segment it by packets, use gendr upscale",
            input.display(),
            decoded.len()
        );
    }
    Ok(())
}

/// Checks what a plan's options can be checked for before any segment runs;
/// the other streams too when the output (or its container) is known.
pub fn check_options(
    info: &MediaInfo,
    input: &Path,
    options: &UpscaleOptions,
    output: Option<PathBuf>,
) -> Result<()> {
    let output_known = output.is_some();
    let output = output.unwrap_or_default();
    let target = Target {
        input,
        output: &output,
        options,
    };
    upscale::check_job(info, target, output_known)
}

#[cfg(test)]
mod tests;
