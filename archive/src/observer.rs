//! What a run tells the one who started it: lines to show, and progress.

use std::sync::atomic::AtomicBool;

/// Receives a run's messages and progress; the command line draws them.
pub trait Observer: Sync {
    /// A line for the user (a start line, a warning, a loss), shown above
    /// any progress display, even when progress is hidden.
    fn say(&self, line: &str);
    /// Frames start to flow; `frames` are expected in all (0: not known).
    fn start(&self, frames: u64);
    /// Frames written so far.
    fn progress(&self, frames: u64);
    /// The run has ended, well or not.
    fn finish(&self);
}

/// Who a run reports to, and the flag that stops it when set (Ctrl-C).
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    pub observer: &'a dyn Observer,
    pub interrupted: &'a AtomicBool,
}
