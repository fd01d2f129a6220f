//! `gendr join`: the segments' video, copied as encoded, into one file
//! with the input's other streams, through the `gendr upscale` pipeline.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{bail, err, Context, Result};
use gst::prelude::*;

use super::manifest::{self, DoneRecord, EncoderSegment, Manifest};
use super::session::Session;
use crate::media;
use crate::request::{Container, Target};
use crate::upscale::{self, Job, Video};
use crate::Observer;

/// A joined frame's times, from the done-records.
#[derive(Clone, Copy)]
struct Times {
    /// In the encoder's timestamps, ns.
    pts: u64,
    dts: u64,
    duration: Option<u64>,
}

pub fn join_into(session: &Session, output: &Path, overwrite: bool) -> Result<()> {
    let (dir, manifest) = (session.dir, session.manifest);
    let muxer = upscale::muxer_for(output)?;
    let written = Container::of(output);
    if let Some(container) = manifest.container.filter(|c| Some(*c) != written) {
        let ext = output
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        bail!(
            Job,
            "the job was planned for a .{container} output, not .{ext}; name the output .{container} or plan again"
        );
    }
    let records = done_records(session)?;
    let caps = &records[0].caps;
    if let Some(other) = records.iter().find(|r| &r.caps != caps) {
        bail!(
            Job,
            "segment {} was encoded with other settings than segment 0 ({} vs {caps}); run it again",
            other.index,
            other.caps
        );
    }
    // The video is timed as segment 0's encoder timed it, which is how a
    // single run's encoder, starting at the same frame, times it; the other
    // segments' encoders shift by their own first frames, and their files'
    // times are not used (the records have them exact).
    let timing = (records[0].encoder_segment, records[0].encoder_shift_ns);
    let caps: gst::Caps = caps.parse().map_err(|_| {
        err!(
            Job,
            "segment 0's done-record has unreadable caps; run it again"
        )
    })?;
    let times = frame_times(&records, timing.1);

    let target = Target {
        input: &manifest.input.path,
        output,
        options: &manifest.options,
    };
    upscale::check_output(target, overwrite)?;
    let info = session.info()?;
    let others = upscale::OtherStreams::prepare(target, info, &muxer)?;
    let partial = media::partial_for(output)?;
    let appsrc = gst_app::AppSrc::builder()
        .caps(&caps)
        .format(gst::Format::Time)
        .block(true)
        .build();
    replace_segment(&appsrc, &timing.0)?;
    // What a plain run carries from the demuxer through the encoder, and
    // the encoder's own name, which x264enc and x265enc tag their stream with.
    let mut tags = info.video_tags.clone().unwrap_or_default();
    let encoder = match caps.structure(0).map(|s| s.name().as_str()) {
        Some("video/x-h264") => Some("x264"),
        Some("video/x-h265") => Some("x265"),
        _ => None,
    };
    if let Some(encoder) = encoder {
        tags.make_mut()
            .add::<gst::tags::Encoder>(&encoder, gst::TagMergeMode::Replace);
    }
    if tags.n_tags() > 0 {
        appsrc.send_event(gst::event::Tag::new(tags));
    }
    let job = Job::build(
        target,
        info,
        muxer,
        partial.path(),
        Video::Encoded(appsrc.clone()),
    )?;
    let files: Vec<_> = records
        .iter()
        .map(|r| manifest::segment_path(dir, r))
        .collect();
    let feeder = std::thread::spawn(move || feed(&appsrc, &files, &times));
    others.say_losses(session.caller.observer);
    let result = job.run(info, target.options, session.stall_timeout, session.caller);
    let fed = feeder
        .join()
        .map_err(|_| err!(Job, "the segment reader failed"))?;
    let report = result?;
    let written = report.frames;
    fed?;
    if written != manifest.frames {
        bail!(
            Job,
            "joined {written} frames where the plan has {}; nothing written",
            manifest.frames
        );
    }
    others.finish(partial.path(), &report.audio, session.caller.observer)?;
    media::persist(partial, output, overwrite)?;
    if !session.quiet {
        session.caller.observer.say(&format!(
            "gendr: wrote {} ({} frames from {} segments, {:.2} s)",
            output.display(),
            manifest.frames,
            records.len(),
            (manifest.end_pts_ns - manifest.first_pts_ns) as f64 / 1e9
        ));
    }
    Ok(())
}

/// Every segment's done-record, each checked against its file; a missing
/// or damaged one is an error naming the run-segment that remakes it.
fn done_records(session: &Session) -> Result<Vec<DoneRecord>> {
    let (dir, manifest) = (session.dir, session.manifest);
    let mut records = Vec::new();
    let mut missing = Vec::new();
    for index in 0..manifest.segments.len() {
        // Partial files and superseded videos go when no run of the segment
        // is going (a live one holds its lock, on this machine or another);
        // a folder this user cannot write is only read.
        let lock = media::FileLock::try_acquire(&manifest::lock_path(dir, index))
            .ok()
            .flatten();
        let done = session.done(index);
        if lock.is_some() {
            manifest::remove_leftovers(dir, index, done.as_ref().ok());
        }
        drop(lock);
        match done {
            Ok(record) => records.push(record),
            Err(why) => missing.push((index, why)),
        }
    }
    if let Some((first, why)) = missing.first() {
        let list: Vec<String> = missing.iter().map(|(i, _)| i.to_string()).collect();
        bail!(
            Job,
            "segment(s) {} of {} not done or damaged (segment {first}: {why}); run `gendr run-segment {} N` \
             for each, then join again",
            list.join(", "),
            manifest.segments.len(),
            dir.display()
        );
    }
    // The records agree with the plan one by one; together they must cover it.
    let frames: u64 = records.iter().map(|r| r.frames).sum();
    let end = records.last().map_or(0, |r| r.end_pts_ns);
    if frames != manifest.frames || end != manifest.end_pts_ns {
        bail!(
            Job,
            "the segments do not add up to the plan's frames and duration; plan again"
        );
    }
    Ok(records)
}

/// Each frame's times in decode order over all segments, in the encoder's
/// timestamps (`shift` after the input's). The segments' files store
/// presentation times only (in milliseconds); decode times are made as x264
/// makes them, from the sorted presentation times shifted by the stream's
/// reordering depth, so they rise across segment boundaries.
fn frame_times(records: &[DoneRecord], shift: u64) -> Vec<Vec<Times>> {
    let order: Vec<u64> = records
        .iter()
        .flat_map(|r| r.decode_order.iter().copied())
        .collect();
    let durations: HashMap<u64, Option<u64>> = records
        .iter()
        .flat_map(|r| r.times.iter().copied())
        .collect();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    let rank = |pts: u64| sorted.binary_search(&pts).unwrap_or(0);
    let depth = order
        .iter()
        .enumerate()
        .map(|(j, &pts)| j.saturating_sub(rank(pts)))
        .max()
        .unwrap_or(0);
    let delay = sorted[depth.min(sorted.len() - 1)] - sorted[0];
    let encoder = |pts: u64, before: u64| (pts + shift).saturating_sub(before);
    let mut all = order.iter().enumerate().map(|(j, &pts)| Times {
        pts: encoder(pts, 0),
        dts: if j >= depth {
            encoder(sorted[j - depth], 0)
        } else {
            encoder(sorted[j], delay)
        },
        duration: durations.get(&pts).copied().flatten(),
    });
    records
        .iter()
        .map(|r| all.by_ref().take(r.decode_order.len()).collect())
        .collect()
}

/// Gives the appsrc's stream the segment the segments' encoder gave its
/// muxer, so that the joined video is timed (edit lists included) as in a
/// single run.
fn replace_segment(appsrc: &gst_app::AppSrc, timing: &EncoderSegment) -> Result<()> {
    let mut segment = gst::FormattedSegment::<gst::ClockTime>::new();
    segment.set_start(gst::ClockTime::from_nseconds(timing.start_ns));
    segment.set_position(gst::ClockTime::from_nseconds(timing.start_ns));
    segment.set_time(gst::ClockTime::from_nseconds(timing.time_ns));
    segment.set_base(gst::ClockTime::from_nseconds(timing.base_ns));
    appsrc.static_pad("src").context("appsrc src")?.add_probe(
        gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            if let Some(gst::PadProbeData::Event(event)) = &mut info.data {
                if event.type_() == gst::EventType::Segment {
                    *event = gst::event::Segment::new(&segment);
                }
            }
            gst::PadProbeReturn::Ok
        },
    );
    Ok(())
}

/// Reads the segments' encoded frames in order and pushes them with their
/// exact times; an unreadable or unexpected segment ends the job with an error.
fn feed(
    appsrc: &gst_app::AppSrc,
    files: &[std::path::PathBuf],
    times: &[Vec<Times>],
) -> Result<()> {
    let result = files
        .iter()
        .zip(times)
        .enumerate()
        .try_for_each(|(index, (file, times))| {
            feed_segment(appsrc, file, times).map_err(|e| {
                err!(
                    Job,
                    "segment {index} ({}): {e:#}; run gendr run-segment again for it",
                    file.display()
                )
            })
        });
    match &result {
        Ok(()) => {
            let _ = appsrc.end_of_stream();
        }
        Err(e) => gst::element_error!(appsrc, gst::StreamError::Failed, ("{e}")),
    }
    result
}

fn feed_segment(appsrc: &gst_app::AppSrc, file: &Path, times: &[Times]) -> Result<()> {
    let (pipeline, sink) = media::file_to_appsink(file, "matroskademux")?;
    let _ = pipeline.set_state(gst::State::Playing);
    let result = (|| {
        let mut frames = times.iter();
        while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(60)) {
            let mut buffer = sample.buffer_owned().context("a sample without a buffer")?;
            // Its file is the one the record's checksum vouches for; the
            // record has the times exact (the .mkv rounds to milliseconds).
            let expected = frames.next().context("more frames than its done-record")?;
            {
                let buffer = buffer.make_mut();
                buffer.set_pts(gst::ClockTime::from_nseconds(expected.pts));
                buffer.set_dts(gst::ClockTime::from_nseconds(expected.dts));
                buffer.set_duration(expected.duration.map(gst::ClockTime::from_nseconds));
            }
            if appsrc.push_buffer(buffer).is_err() {
                // The job stopped; its own error tells why.
                return Ok(());
            }
        }
        if !sink.is_eos() {
            bail!(Job, "reading it stalled or failed");
        }
        if frames.next().is_some() {
            bail!(Job, "fewer frames than its done-record");
        }
        Ok(())
    })();
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// How often `join --wait` looks for newly committed segments.
const WAIT_POLL: Duration = Duration::from_secs(5);

/// Returns once every segment has a done-record (a run's commit), or fails
/// when `limit` passes first; whether the records are intact is join's
/// check, so a damaged segment fails there, at once.
pub fn wait_for_segments(
    dir: &Path,
    manifest: &Manifest,
    limit: Duration,
    observer: &dyn Observer,
) -> Result<()> {
    let started = Instant::now();
    let mut reported = None;
    loop {
        let pending: Vec<usize> = (0..manifest.segments.len())
            .filter(|&index| !manifest::record_path(dir, index).exists())
            .collect();
        let Some(first) = pending.first() else {
            return Ok(());
        };
        if started.elapsed() >= limit {
            bail!(
                Job,
                "{} of {} segment(s) still not made after --wait {} s (segment {first} first); \
                 run them with gendr run-segment {} N, then join again",
                pending.len(),
                manifest.segments.len(),
                limit.as_secs(),
                dir.display()
            );
        }
        if reported != Some(pending.len()) {
            observer.say(&format!(
                "gendr: waiting for {} of {} segment(s) (segment {first} first)",
                pending.len(),
                manifest.segments.len()
            ));
            reported = Some(pending.len());
        }
        std::thread::sleep(WAIT_POLL.min(limit.saturating_sub(started.elapsed())));
    }
}

#[cfg(test)]
mod tests;
