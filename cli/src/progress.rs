//! The terminal side of a run: indicatif bars for the engine's progress,
//! lines printed above them, and Ctrl-C.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};

/// Draws one run's frames on a bar; each run the engine starts on it
/// (a job's segments, then its join) begins the bar again.
pub struct Bar(ProgressBar);

impl Bar {
    /// A bar of its own, hidden with --quiet (lines are still printed).
    pub fn new(quiet: bool) -> Self {
        Bar(if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        })
    }

    /// Draws on `bar`, e.g. one of a batch's.
    pub fn on(bar: ProgressBar) -> Self {
        Bar(bar)
    }
}

impl gendr_archive::Observer for Bar {
    fn say(&self, line: &str) {
        say(&self.0, line);
    }

    fn start(&self, frames: u64) {
        self.0.reset();
        self.0.set_length(frames);
        self.0.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} frames  {per_sec}  ETA {eta}",
            )
            .expect("static template"),
        );
    }

    fn progress(&self, frames: u64) {
        self.0.set_position(frames);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// Prints a line above `bar` (and the batch display it may belong to).
pub fn say(bar: &ProgressBar, line: &str) {
    bar.suspend(|| eprintln!("{line}"));
}

/// Set by Ctrl-C; one per process, since a second handler cannot be installed.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let set = flag.clone();
        let _ = ctrlc::set_handler(move || set.store(true, Ordering::SeqCst));
        flag
    })
    .clone()
}
