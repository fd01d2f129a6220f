//! The terminal side of a run: indicatif bars for the engine's progress,
//! lines printed above them, and Ctrl-C.

use gendr_archive::Cancel;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Draws one run's frames on a bar; each run the engine starts on it
/// (a job's segments, then its join) begins the bar again.
pub struct Bar(ProgressBar, Option<MultiProgress>);

impl Bar {
    /// A bar of its own, hidden with --quiet (lines are still printed).
    pub fn new(quiet: bool) -> Self {
        Bar(
            if quiet {
                ProgressBar::hidden()
            } else {
                ProgressBar::new(0)
            },
            None,
        )
    }

    /// Draws on `bar`, one of `multi`'s (a batch's), and takes it off the
    /// display when dropped.
    pub fn in_display(bar: ProgressBar, multi: &MultiProgress) -> Self {
        Bar(bar, Some(multi.clone()))
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(multi) = &self.1 {
            multi.remove(&self.0);
        }
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

/// Cancelled by Ctrl-C; one per process, since a second handler cannot be installed.
pub fn cancel_on_ctrl_c() -> Cancel {
    static TOKEN: std::sync::OnceLock<Cancel> = std::sync::OnceLock::new();
    TOKEN
        .get_or_init(|| {
            let token = Cancel::new();
            let set = token.clone();
            let _ = ctrlc::set_handler(move || set.cancel());
            token
        })
        .clone()
}
