//! What a run tells the one who started it: lines to show, and progress.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
    /// A line that replaces the last one given here, such as a live run's
    /// stats once a second; hidden where progress is.
    fn status(&self, _line: &str) {}
}

/// Receives a batch's lines and its progress over all files (through
/// [`Observer`]: `start` with the frames of every file to do, `progress`
/// with those done so far), and gives each file's run an observer of its own.
pub trait BatchObserver: Observer {
    /// File `index` of `count` starts: the observer of its run, dropped
    /// when the run has ended.
    fn file(&self, index: usize, count: usize) -> Box<dyn Observer + '_>;
}

/// Stops the runs that hold a clone of it, at their next look (a tenth of
/// a second at most); a run stopped so fails with
/// [`Error::Interrupted`](crate::Error::Interrupted).
#[derive(Clone, Default, Debug)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every run holding this token to stop (safe from a signal handler's thread).
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Who a run reports to, and the token that stops it.
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    pub observer: &'a dyn Observer,
    pub cancel: &'a Cancel,
}
