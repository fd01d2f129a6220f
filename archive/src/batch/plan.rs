//! Which files of the tree a batch upscales, and where each goes; the
//! ones passed over, already done or failed before any run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::Result;

use super::tree::{classify, walk, Found};
use crate::observer::{BatchObserver, Cancel};
use crate::request::{Container, UpscaleRequest};
use crate::Error;

/// A video to upscale.
#[derive(Debug, PartialEq)]
pub(super) struct Planned {
    /// Below the input folder.
    pub rel: PathBuf,
    pub output: PathBuf,
    /// Expected, for the progress (0: not known).
    pub frames: u64,
}

/// What a batch does with the files of its tree.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub to_do: Vec<Planned>,
    pub done_before: usize,
    pub not_video: usize,
    pub failures: Vec<(PathBuf, String)>,
}

/// What becomes of one file, decided from what it is and the outputs claimed.
#[derive(Debug, PartialEq)]
enum Step {
    Upscale(Planned),
    Failed(String),
    NotVideo(String),
    /// Its output is there already: the path of it.
    DoneBefore(PathBuf),
}

impl Plan {
    /// Walks the tree and decides for each file, saying each one passed
    /// over or failed as it goes.
    pub fn make(
        request: &UpscaleRequest,
        canon_out: &Path,
        observer: &dyn BatchObserver,
        cancel: &Cancel,
    ) -> Result<Plan> {
        let mut plan = Plan::default();
        let mut files = Vec::new();
        walk(
            &request.input,
            Path::new(""),
            canon_out,
            &mut files,
            &mut plan.failures,
        );
        let mut claimed = HashMap::new();
        for rel in files {
            if cancel.is_cancelled() {
                return Err(Error::Interrupted(
                    "interrupted before any file was started".into(),
                ));
            }
            // `rel` is the path below the input folder, mirrored below the output folder.
            let found = classify(&request.input.join(&rel));
            let step = step_for(rel.clone(), found, request, &mut claimed, |p| p.exists());
            plan.take(rel, step, observer);
        }
        Ok(plan)
    }

    fn take(&mut self, rel: PathBuf, step: Step, observer: &dyn BatchObserver) {
        match step {
            Step::Upscale(planned) => self.to_do.push(planned),
            Step::Failed(why) => {
                observer.say(&format!("gendr: failed: {}: {why}", rel.display()));
                self.failures.push((rel, why));
            }
            Step::NotVideo(why) => {
                observer.say(&format!(
                    "gendr: skipping {}: not a video ({why})",
                    rel.display()
                ));
                self.not_video += 1;
            }
            Step::DoneBefore(output) => {
                observer.say(&format!(
                    "gendr: skipping {}: {} is already done (--overwrite to redo it)",
                    rel.display(),
                    output.display()
                ));
                self.done_before += 1;
            }
        }
    }

    pub fn total_frames(&self) -> u64 {
        self.to_do.iter().map(|p| p.frames).sum()
    }
}

/// The step for the file `rel`, found to be `found`: `claimed` holds the
/// outputs taken by the files before it (each with its file), `exists`
/// tells whether an output is there already.
fn step_for(
    rel: PathBuf,
    found: Found,
    request: &UpscaleRequest,
    claimed: &mut HashMap<PathBuf, PathBuf>,
    exists: impl Fn(&Path) -> bool,
) -> Step {
    let frames = match found {
        Found::Video { frames } => frames,
        Found::Broken(why) => return Step::Failed(why),
        Found::Other(why) => return Step::NotVideo(why),
    };
    let output = request.output.join(output_name(&rel, request.container));
    if let Some(first) = claimed.insert(output.clone(), rel.clone()) {
        return Step::Failed(format!(
            "its output {} is also {}'s; rename one or pass --container",
            output.display(),
            first.display()
        ));
    }
    if exists(&output) && !request.overwrite {
        return Step::DoneBefore(output);
    }
    Step::Upscale(Planned {
        rel,
        output,
        frames: frames.unwrap_or(0),
    })
}

/// `rel` with the output container's extension: `container`, or the
/// input's own when it is one gendr writes, otherwise mkv, which holds any
/// codec the input's audio may have.
fn output_name(rel: &Path, container: Option<Container>) -> PathBuf {
    let container = container
        .or_else(|| Container::of(rel))
        .unwrap_or(Container::Mkv);
    rel.with_extension(container.name())
}

#[cfg(test)]
mod tests;
