//! `gendr upscale DIR_IN DIR_OUT` on the terminal: the engine's batch
//! drawn as a bar for all files above one for the running file, and its
//! report summed up.

use std::sync::OnceLock;

use anyhow::{bail, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use gendr_archive::request::UpscaleRequest;
use gendr_archive::{BatchObserver, Observer};

use crate::progress::{cancel_on_ctrl_c, Bar};

pub fn run(args: &UpscaleRequest) -> Result<()> {
    let bars = BatchBars {
        multi: MultiProgress::with_draw_target(if args.quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        }),
        overall: OnceLock::new(),
    };
    let report = gendr_archive::batch::run(args, &bars, &cancel_on_ctrl_c())?;
    eprintln!(
        "gendr: {} written, {} already done, {} not video, {} failed",
        report.written,
        report.done_before,
        report.not_video,
        report.failures.len()
    );
    for (rel, reason) in &report.failures {
        eprintln!("gendr: failed: {}: {reason}", rel.display());
    }
    if report.interrupted {
        bail!(
            "interrupted after {} of {} video(s); finished outputs are kept, \
             the same command again does the rest",
            report.written,
            report.to_do
        );
    }
    if !report.failures.is_empty() {
        bail!("{} file(s) failed (listed above)", report.failures.len());
    }
    Ok(())
}

/// The batch's display: the bar for all files, drawn from the batch's
/// start, with each running file's bar above it.
struct BatchBars {
    multi: MultiProgress,
    overall: OnceLock<ProgressBar>,
}

impl Observer for BatchBars {
    fn say(&self, line: &str) {
        self.multi.suspend(|| eprintln!("{line}"));
    }

    fn start(&self, frames: u64) {
        let bar = ProgressBar::with_draw_target(Some(frames), ProgressDrawTarget::hidden())
            .with_style(
                ProgressStyle::with_template(
                    "all: [{elapsed_precise}] {wide_bar} {pos}/{len} frames  {msg}  ETA {eta}",
                )
                .expect("static template"),
            );
        let _ = self.overall.set(self.multi.add(bar));
    }

    fn progress(&self, frames: u64) {
        if let Some(overall) = self.overall.get() {
            overall.set_position(frames);
        }
    }

    fn finish(&self) {
        if let Some(overall) = self.overall.get() {
            overall.finish_and_clear();
        }
    }
}

impl BatchObserver for BatchBars {
    fn file(&self, index: usize, count: usize) -> Box<dyn Observer + '_> {
        let bar = match self.overall.get() {
            Some(overall) => {
                overall.set_message(format!("{index}/{count} files"));
                self.multi.insert_before(overall, ProgressBar::new(0))
            }
            None => self.multi.add(ProgressBar::new(0)),
        };
        Box::new(Bar::in_display(bar, &self.multi))
    }
}
