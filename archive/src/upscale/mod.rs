//! `gendr upscale`: decode → gendrsr → encode → mux, audio copied, written
//! to a temporary name and renamed only when the whole file is done.

use std::time::Instant;

use crate::error::{bail, Result};

use crate::media::{self, partial_for, persist};
use crate::request::UpscaleRequest;
use crate::Caller;

mod check;
mod encode;
mod job;
mod others;
mod progress;
mod streams;
mod timeline;
mod video;

use check::check_options;
pub(crate) use check::{check_job, check_output, timeline_start_note};
pub use encode::{muxer_for, Encoding};
pub(crate) use job::{Job, Video, Window};
pub(crate) use others::OtherStreams;

/// One file, start to finish, telling `bar` how it goes: all of
/// `gendr upscale IN OUT`, and each file of a batch. Returns the frames written.
pub fn run_one(args: &UpscaleRequest, caller: Caller) -> Result<u64> {
    let bar = caller.observer;
    let info = media::discover(&args.input)?;
    let (encoding, video_notes) = check_options(&info, args.target())?;
    check_output(args.target(), args.overwrite)?;
    let muxer = muxer_for(&args.output)?;
    let others = OtherStreams::prepare(args.target(), &info, &muxer)?;
    if let Some((complete, expected)) = media::y4m_incomplete(&args.input)? {
        bail!(
            Input,
            "{}: truncated: frame {expected} is cut short ({complete} complete frames)",
            args.input.display()
        );
    }
    // Claimed before the checks below so that they see what a run that
    // finished meanwhile left, and so that no two runs share a file.
    let claim = media::claim_output(&args.output)?;
    check_output(args.target(), args.overwrite)?;
    let partial = partial_for(&args.output)?;

    let job = Job::build(args.target(), &info, muxer, partial.path(), Video::Whole)?;
    if !args.quiet {
        bar.say(&format!(
            "gendr: {} {}x{} at {}, {}, {}{}, model {} (temporal stage {}), video encoded {}",
            args.input.display(),
            info.width,
            info.height,
            media::rate_text(&info),
            others.audio_summary(),
            others.subtitles_summary(&info),
            others.chapters_summary(),
            args.options.sr.model,
            if args.options.sr.temporal_on() {
                "on"
            } else {
                "off"
            },
            encoding.describe()
        ));
        if let Some(orientation) = &info.orientation {
            bar.say(&format!(
                "gendr: frames turned upright from the source's display orientation {orientation} \
                 (the output container cannot store one)"
            ));
        }
        for note in &video_notes {
            bar.say(&format!("gendr: {note}"));
        }
    }
    others.say_losses(bar);
    let started = Instant::now();
    let report = job.run_saying_engine(
        &info,
        &args.options,
        args.stall_timeout,
        caller,
        !args.quiet,
    )?;
    others.finish(partial.path(), &report.audio, bar)?;
    let (frames, damaged, undecodable, dropped) = (
        report.frames,
        report.decoder_errors,
        report.undecodable,
        report.dropped,
    );
    persist(partial, &args.output, args.overwrite)?;
    drop(claim);
    let secs = started.elapsed().as_secs_f64();
    // Packets and frames differ for some codecs (fields, packed B-frames):
    // the difference is told only when the decoder also saw damage.
    if damaged > 0 {
        bar.say(&format!(
            "gendr: warning: {}: the decoder reported {damaged} error(s); damaged frames were concealed \
             and may show artefacts, {undecodable} could not be decoded at all",
            args.input.display()
        ));
    } else if dropped > 0 {
        bar.say(&format!(
            "gendr: warning: {}: the decoder dropped {dropped} damaged frame(s), which are not in the output",
            args.input.display()
        ));
    }
    bar.say(&format!(
        "gendr: wrote {} ({frames} frames in {secs:.1} s, {:.2} fps)",
        args.output.display(),
        frames as f64 / secs.max(1e-9)
    ));
    Ok(frames)
}
