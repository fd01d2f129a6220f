//! Counting frames and showing it: the stats line and the summary.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gst::prelude::*;

/// The once-a-second stats: rates from counter deltas.
pub struct Stats<'a> {
    counters: &'a Counters,
    at: Instant,
    frames_in: u64,
    frames_out: u64,
}

impl<'a> Stats<'a> {
    pub fn new(counters: &'a Counters) -> Self {
        Stats {
            counters,
            at: Instant::now(),
            frames_in: 0,
            frames_out: 0,
        }
    }

    pub fn tick(&mut self, sr: &gst::Element) -> Option<String> {
        let secs = self.at.elapsed().as_secs_f64();
        if secs < 1.0 {
            return None;
        }
        let (frames_in, frames_out) = (
            self.counters.frames_in.load(Ordering::Relaxed),
            self.counters.frames_out.load(Ordering::Relaxed),
        );
        let fps_in = (frames_in - self.frames_in) as f64 / secs;
        let fps_out = (frames_out - self.frames_out) as f64 / secs;
        (self.frames_in, self.frames_out, self.at) = (frames_in, frames_out, Instant::now());
        let e2e = self.counters.take_window_max_e2e();
        Some(format!(
            "in {fps_in:5.1} fps  out {fps_out:5.1} fps  dropped {}  fallback {}  latency gendrsr {:.0} ms (max {:.0})  encoded {e2e:.0} ms",
            sr.property::<u64>("frames-dropped"),
            sr.property::<u64>("frames-fallback"),
            sr.property::<f64>("latency-mean-ms"),
            sr.property::<f64>("latency-max-ms"),
        ))
    }
}

/// One stats line on stderr, refreshed in place on a terminal; other
/// messages are printed above it.
pub struct StatusLine {
    tty: bool,
    quiet: bool,
    shown: bool,
    last_plain: Option<Instant>,
}

impl StatusLine {
    pub fn new(quiet: bool) -> Self {
        StatusLine {
            tty: std::io::stderr().is_terminal(),
            quiet,
            shown: false,
            last_plain: None,
        }
    }

    pub fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
            self.shown = false;
        }
    }

    pub fn say(&mut self, text: &str) {
        self.clear();
        eprintln!("{text}");
    }

    pub fn show(&mut self, line: &str) {
        if self.quiet {
            return;
        }
        if self.tty {
            eprint!("\r\x1b[K{line}");
            self.shown = true;
        } else if self
            .last_plain
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(5))
        {
            // Logs get a line every few seconds rather than every second.
            eprintln!("{line}");
            self.last_plain = Some(Instant::now());
        }
    }
}

/// Counters shared with the streaming threads.
#[derive(Default)]
pub struct Counters {
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    /// Last frame into the output pipeline, as milliseconds since `start`.
    pub last_in_ms: AtomicU64,
    e2e: Mutex<E2e>,
}

/// Time from a frame's entry into the output pipeline to its encoded form.
#[derive(Default)]
struct E2e {
    sum_ms: f64,
    n: u64,
    max_ms: f64,
    window_max_ms: f64,
}

impl Counters {
    pub fn record_e2e(&self, ms: f64) {
        let mut e2e = self.e2e.lock().unwrap_or_else(|p| p.into_inner());
        e2e.sum_ms += ms;
        e2e.n += 1;
        e2e.max_ms = e2e.max_ms.max(ms);
        e2e.window_max_ms = e2e.window_max_ms.max(ms);
    }

    /// The largest input-to-encoded time since the last call.
    fn take_window_max_e2e(&self) -> f64 {
        let mut e2e = self.e2e.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut e2e.window_max_ms)
    }

    /// The line printed on exit.
    pub fn summary(&self, sr: &gst::Element) -> String {
        let e2e = self.e2e.lock().unwrap_or_else(|p| p.into_inner());
        format!(
            "gendr: {} frames in, {} from the model, {} fallback, {} dropped; latency in gendrsr \
             mean {:.0} ms, max {:.0} ms; input to encoded mean {:.0} ms, max {:.0} ms",
            self.frames_in.load(Ordering::Relaxed),
            sr.property::<u64>("frames-processed"),
            sr.property::<u64>("frames-fallback"),
            sr.property::<u64>("frames-dropped"),
            sr.property::<f64>("latency-mean-ms"),
            sr.property::<f64>("latency-max-ms"),
            e2e.sum_ms / e2e.n.max(1) as f64,
            e2e.max_ms,
        )
    }
}
