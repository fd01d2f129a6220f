//! `gendr upscale DIR_IN DIR_OUT`: every video in a folder tree, each
//! through the same run as a single file, written at the mirrored path.
//! Outputs appear only when complete, so a finished one is skipped on the
//! next run, and a batch can be stopped and run again.

use std::path::PathBuf;

use crate::error::{bail, Context, Result};

use crate::observer::{BatchObserver, Caller, Cancel, Observer};
use crate::request::{Container, UpscaleRequest};
use crate::upscale::run_one;
use crate::Error;

mod folders;
mod plan;
mod tree;

use folders::{make_folders, remove_made_folders};
use plan::Plan;

/// How a batch went, for the caller to sum up.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// Videos that were to be upscaled this time.
    pub to_do: usize,
    pub written: usize,
    /// Videos whose output was already there (not redone without --overwrite).
    pub done_before: usize,
    /// Files that are no video, passed over.
    pub not_video: usize,
    /// Each file that failed, below the input folder, with the reason.
    pub failures: Vec<(PathBuf, String)>,
    /// Whether the cancel token stopped the batch before its end.
    pub interrupted: bool,
}

/// Upscales every video below `request.input` into the mirrored path below
/// `request.output`, one after another, telling `observer` how it goes.
/// A file's failure is listed in the report and the batch goes on; the
/// request itself refused, or a cancel before any file started, is an error.
pub fn run(
    request: &UpscaleRequest,
    observer: &dyn BatchObserver,
    cancel: &Cancel,
) -> Result<BatchReport> {
    let canon_out = check_request(request)?;
    let plan = Plan::make(request, &canon_out, observer, cancel)?;
    let total_frames = plan.total_frames();
    observer.say(&format!(
        "gendr: {} video(s) to upscale ({total_frames} frames), {} already done, \
         {} other file(s) passed over",
        plan.to_do.len(),
        plan.done_before,
        plan.not_video
    ));
    let mut report = BatchReport {
        to_do: plan.to_do.len(),
        done_before: plan.done_before,
        not_video: plan.not_video,
        failures: plan.failures,
        ..BatchReport::default()
    };
    observer.start(total_frames);
    let mut finished_frames = 0;
    for (index, file) in plan.to_do.iter().enumerate() {
        if cancel.is_cancelled() {
            break;
        }
        let each = UpscaleRequest {
            input: request.input.join(&file.rel),
            output: file.output.clone(),
            container: None,
            ..request.clone()
        };
        let result = {
            let bar = observer.file(index, plan.to_do.len());
            let tracked = Tracked {
                file: bar.as_ref(),
                batch: observer,
                before: finished_frames,
                expected: file.frames,
            };
            upscale_file(
                &each,
                Caller {
                    observer: &tracked,
                    cancel,
                },
            )
        };
        finished_frames += file.frames;
        observer.progress(finished_frames);
        match result {
            Ok(()) => report.written += 1,
            Err(_) if cancel.is_cancelled() => break,
            Err(e) => {
                let reason = format!("{e:#}").replace('\n', " ");
                observer.say(&format!("gendr: failed: {}: {reason}", file.rel.display()));
                report.failures.push((file.rel.clone(), reason));
            }
        }
    }
    observer.finish();
    report.interrupted = cancel.is_cancelled();
    Ok(report)
}

/// Refuses what a folder run cannot do, and makes the output folder;
/// returns its canonical path (passed over when it lies inside the input).
fn check_request(request: &UpscaleRequest) -> Result<PathBuf> {
    if request.resume {
        bail!(Request, "--resume is for one file; a folder run skips the files already done, so running it again continues");
    }
    request.options.sr.validate()?;
    let (root_in, root_out) = (&request.input, &request.output);
    if root_out.exists() && !root_out.is_dir() {
        bail!(
            Request,
            "{}: is a file; a folder input needs an output folder",
            root_out.display()
        );
    }
    // `gendr upscale clips/ out.mp4` is a slip, not a wish for a folder named so.
    if !root_out.exists() && Container::of(root_out).is_some() {
        bail!(
            Request,
            "{}: names a file; a folder input needs an output folder",
            root_out.display()
        );
    }
    std::fs::create_dir_all(root_out)
        .with_context(|| format!("{}: cannot create the output folder", root_out.display()))?;
    let canon_out = std::fs::canonicalize(root_out)?;
    if std::fs::canonicalize(root_in)? == canon_out {
        bail!(
            Request,
            "the output folder is the input folder; choose another"
        );
    }
    Ok(canon_out)
}

/// One file of the batch: its folders made, then the same run as a single
/// file; on failure the folders it made go again (those that were there
/// before are the user's).
fn upscale_file(each: &UpscaleRequest, caller: Caller) -> Result<()> {
    let made = make_folders(&each.output)
        .map_err(Error::from)
        .with_context(|| format!("{}: cannot create its folder", each.output.display()))?;
    let result = run_one(each, caller).map(drop);
    if result.is_err() {
        remove_made_folders(&made);
    }
    result
}

/// A file's observer that also moves the batch's progress: the frames of
/// the files before it and as many of its own as were expected.
struct Tracked<'a> {
    file: &'a dyn Observer,
    batch: &'a dyn BatchObserver,
    before: u64,
    expected: u64,
}

impl Observer for Tracked<'_> {
    fn say(&self, line: &str) {
        self.file.say(line);
    }

    fn start(&self, frames: u64) {
        self.file.start(frames);
    }

    fn progress(&self, frames: u64) {
        self.file.progress(frames);
        self.batch.progress(self.before + frames.min(self.expected));
    }

    fn finish(&self) {
        self.file.finish();
    }
}

#[cfg(test)]
mod tests;
