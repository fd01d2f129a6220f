//! `gendr run-segment`: one segment of a job through the `gendr upscale`
//! pipeline, video only, into segments/NNNNN.mkv with its done-record.

use std::path::Path;
use std::time::Instant;

use crate::error::{bail, err, Context, Result};

use super::manifest::{self, DoneRecord, EncoderSegment};
use super::session::Session;
use crate::media;
use crate::request::Target;
use crate::upscale::{self, Job, Video, Window};
use crate::Error;
use crate::Observer;

/// What became of a segment.
pub enum Outcome {
    AlreadyDone,
    Made,
}

/// Makes segment `index` unless an intact one for this plan is there.
pub fn run_segment(session: &Session, index: usize) -> Result<Outcome> {
    let (dir, manifest) = (session.dir, session.manifest);
    let count = manifest.segments.len();
    let Some(segment) = manifest.segments.get(index) else {
        bail!(
            Request,
            "segment {index} does not exist: the job has {count} segment(s), numbered 0 to {}",
            count.saturating_sub(1)
        );
    };
    let folder = manifest::segments_folder(dir);
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot write in the job folder {}", dir.display()))?;
    let _claim = claim(dir, index, session.caller.observer)?;
    if session.done(index).is_ok() {
        return Ok(Outcome::AlreadyDone);
    }
    // This run holds the segment: what other runs of it left is theirs no more.
    manifest::remove_leftovers(dir, index, None);
    let partial = tempfile::Builder::new()
        .prefix(&manifest::partial_prefix(index, "mkv"))
        .suffix(".gendr-partial")
        .tempfile_in(&folder)
        .with_context(|| format!("cannot write in the job folder {}", folder.display()))?;

    // Names the output for the checks and messages; written is `partial`.
    let output = folder.join(format!("{index:05}.mkv"));
    let target = Target {
        input: &manifest.input.path,
        output: &output,
        options: &manifest.options,
    };
    let info = session.info()?;
    upscale::check_job(info, target, false)?;
    let window = Window {
        first: gst::ClockTime::from_nseconds(segment.first_pts_ns),
        end: (index + 1 < count).then(|| gst::ClockTime::from_nseconds(segment.end_pts_ns)),
        expected_frames: segment.frames,
        seek: index > 0,
        preroll: (index > 0 && target.options.sr.temporal_on()).then(|| {
            preroll_start(
                segment.first_pts_ns,
                info.framerate,
                &target.options.sr.model,
            )
        }),
    };
    let muxer = gst::ElementFactory::make("matroskamux").build()?;
    let started = Instant::now();
    let job = Job::build(target, info, muxer, partial.path(), Video::Segment(window))?;
    let report = job
        .run(info, target.options, session.stall_timeout, session.caller)
        .map_err(|e| failed(index, dir, e))?;
    let notes = report.segment;
    let caps = notes
        .caps
        .as_ref()
        .map(|c| c.to_string())
        .ok_or_else(|| err!(Pipeline, "segment {index}: no video was encoded"))?;
    let times = notes.frames;
    let (decode_order, encoder_shift) =
        check_frames(index, segment, &times, &notes.encoded, report.frames)?;
    let encoder_segment = notes
        .segment
        .as_ref()
        .map(|s| EncoderSegment {
            start_ns: s.start().map_or(0, |t| t.nseconds()),
            time_ns: s.time().map_or(0, |t| t.nseconds()),
            base_ns: s.base().map_or(0, |t| t.nseconds()),
        })
        .ok_or_else(|| err!(Pipeline, "segment {index}: the encoder gave no segment"))?;

    manifest::readable(partial.as_file())
        .and_then(|()| partial.as_file().sync_all())
        .map_err(|e| failed(index, dir, Error::from(e)))?;
    let (sha256, size) =
        manifest::file_checksum(partial.path()).map_err(|e| failed(index, dir, Error::from(e)))?;
    let record = DoneRecord {
        plan: manifest.fingerprint(),
        index,
        frames: segment.frames,
        first_pts_ns: segment.first_pts_ns,
        end_pts_ns: segment.end_pts_ns,
        size,
        sha256,
        caps,
        encoder_segment,
        encoder_shift_ns: encoder_shift,
        times,
        decode_order,
    };
    // The file goes under its own name first, then the record that names
    // it: the record's rename commits the segment in one step.
    partial
        .persist(manifest::segment_path(dir, &record))
        .map_err(|e| failed(index, dir, Error::from(e.error)))?;
    manifest::write_atomically(
        &manifest::record_path(dir, index),
        &serde_json::to_vec(&record)?,
    )
    .map_err(|e| failed(index, dir, e))?;
    manifest::remove_leftovers(dir, index, Some(&record));
    session.made(record);
    if !session.quiet {
        let secs = started.elapsed().as_secs_f64();
        session.caller.observer.say(&format!(
            "gendr: segment {index} of {count} done ({} frames in {secs:.1} s)",
            segment.frames
        ));
    }
    Ok(Outcome::Made)
}

/// Segment `index`'s lock: at most one run makes a segment at a time (a
/// retried pod while the first still runs). A second run waits, then finds
/// the segment done, or makes it if the first failed.
fn claim(dir: &Path, index: usize, observer: &dyn Observer) -> Result<media::FileLock> {
    let path = manifest::lock_path(dir, index);
    let cannot = |e: std::io::Error| {
        Error::from(e).context(format!("cannot write in the job folder {}", dir.display()))
    };
    if let Some(lock) = media::FileLock::try_acquire(&path).map_err(cannot)? {
        return Ok(lock);
    }
    observer.say(&format!(
        "gendr: segment {index} is being made by another run; waiting for it to end"
    ));
    media::FileLock::wait(&path).map_err(cannot)
}

/// A failed segment in one line, naming a full disk as such; the kind is kept.
fn failed(index: usize, dir: &Path, e: Error) -> Error {
    match e {
        Error::Interrupted(_) => err!(
            Interrupted,
            "interrupted in segment {index}; the finished segments in {} are kept",
            dir.display()
        ),
        Error::NoSpace(reason) => err!(
            NoSpace,
            "segment {index}: writing into {} failed (disk full or file size limit: {}); free space and \
             run it again, finished segments are kept",
            dir.display(),
            media::first_line(&reason)
        ),
        e => e.context(format!("segment {index}")),
    }
}

/// Checks the frames let through against the plan; returns their pts in
/// decode order (the encoder's order, its own timestamps shifted back) and
/// that shift.
fn check_frames(
    index: usize,
    segment: &manifest::Segment,
    times: &[(u64, Option<u64>)],
    encoded: &[u64],
    written: u64,
) -> Result<(Vec<u64>, u64)> {
    let planned = segment.frames;
    let first = times.first().map(|t| t.0);
    if times.len() as u64 != planned || written != planned || first != Some(segment.first_pts_ns) {
        bail!(
            Unsupported,
            "segment {index}: decoding gave {} frame(s) from {:.3} s where the plan has {planned} from {:.3} s \
             (the decoder's frames differ from the demuxer's packets); use gendr upscale for this input",
            times.len(),
            first.unwrap_or(0) as f64 / 1e9,
            segment.first_pts_ns as f64 / 1e9
        );
    }
    // Encoders may shift timestamps by a constant (x264enc does, to make room for negative DTS).
    let offset = encoded
        .iter()
        .min()
        .copied()
        .unwrap_or(0)
        .wrapping_sub(segment.first_pts_ns);
    let decode_order: Vec<u64> = encoded.iter().map(|p| p.wrapping_sub(offset)).collect();
    let mut sorted = decode_order.clone();
    sorted.sort_unstable();
    if !sorted.iter().eq(times.iter().map(|t| &t.0)) {
        bail!(
            Pipeline,
            "segment {index}: the encoder's frames do not match the decoded ones"
        );
    }
    Ok((decode_order, offset))
}

/// Where to start decoding so that the temporal stage's memory is full at
/// a segment's first frame: twice `model`'s reach (K frames, or back to
/// the older anchor where it has anchors) of frame durations early, for
/// some slack on uneven timestamps (a second early where the rate is
/// unknown).
fn preroll_start(first_pts_ns: u64, framerate: gst::Fraction, model: &str) -> gst::ClockTime {
    let frames = 2 * gendr::temporal::TemporalConfig::for_model(model).reach() as u64;
    let back = if framerate.numer() > 0 && framerate.denom() > 0 {
        frames * 1_000_000_000 * framerate.denom() as u64 / framerate.numer() as u64
    } else {
        1_000_000_000
    };
    gst::ClockTime::from_nseconds(first_pts_ns.saturating_sub(back))
}

#[cfg(test)]
mod tests;
