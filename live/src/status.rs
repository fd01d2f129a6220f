//! Counting frames and saying it: the stats line and the summary.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

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

    pub fn tick(&mut self, sr: &gst::Element, appsrc: &gst_app::AppSrc) -> Option<String> {
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
            sr.property::<u64>("frames-dropped") + self.counters.dropped_at_input(appsrc),
            sr.property::<u64>("frames-fallback"),
            sr.property::<f64>("latency-mean-ms"),
            sr.property::<f64>("latency-max-ms"),
        ))
    }
}

/// Time from a frame's entry into the output pipeline to its encoded form.
#[derive(Default)]
struct E2e {
    sum_ms: f64,
    n: u64,
    max_ms: f64,
    window_max_ms: f64,
}

/// Counters shared with the streaming threads.
pub struct Counters {
    /// When the run started: the epoch of `last_in_ms`.
    pub started: Instant,
    /// Frames handed to the output pipeline's appsrc.
    pub frames_in: AtomicU64,
    /// Frames that reached gendrsr: the appsrc's bounded queue drops the
    /// oldest while gendrsr is not taking them (e.g. loading its model).
    pub frames_to_sr: AtomicU64,
    /// Frames out of gendrsr, from the model or the fallback.
    pub frames_out: AtomicU64,
    /// Last frame into the output pipeline, as milliseconds since `started`.
    pub last_in_ms: AtomicU64,
    e2e: Mutex<E2e>,
}

impl Counters {
    pub fn new() -> Self {
        Counters {
            started: Instant::now(),
            frames_in: AtomicU64::default(),
            frames_to_sr: AtomicU64::default(),
            frames_out: AtomicU64::default(),
            last_in_ms: AtomicU64::default(),
            e2e: Mutex::default(),
        }
    }

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

    /// Frames the appsrc threw away: those in, less those that reached
    /// gendrsr and those still queued.
    fn dropped_at_input(&self, appsrc: &gst_app::AppSrc) -> u64 {
        let frames_in = self.frames_in.load(Ordering::Relaxed);
        let reached = self.frames_to_sr.load(Ordering::Relaxed);
        frames_in.saturating_sub(reached + appsrc.current_level_buffers())
    }

    /// The line printed on exit, once the output pipeline has drained:
    /// every frame in is accounted for as from the model, fallback or
    /// dropped (by gendrsr, or before it).
    pub fn summary(&self, sr: &gst::Element, appsrc: &gst_app::AppSrc) -> String {
        let processed = sr.property::<u64>("frames-processed");
        let fallback = sr.property::<u64>("frames-fallback");
        let dropped_by_sr = sr.property::<u64>("frames-dropped");
        let dropped_at_input = self.dropped_at_input(appsrc);
        // Whatever reached gendrsr and none of its counters holds.
        let unaccounted = self
            .frames_to_sr
            .load(Ordering::Relaxed)
            .saturating_sub(processed + fallback + dropped_by_sr);
        let unaccounted = if unaccounted > 0 {
            format!(", {unaccounted} unaccounted for in gendrsr")
        } else {
            String::new()
        };
        let e2e = self.e2e.lock().unwrap_or_else(|p| p.into_inner());
        format!(
            "gendr: {} frames in: {processed} from the model, {fallback} fallback, {} dropped \
             ({dropped_by_sr} by gendrsr, {dropped_at_input} from the full queue before it){unaccounted}; \
             latency in gendrsr mean {:.0} ms, max {:.0} ms; input to encoded mean {:.0} ms, max {:.0} ms",
            self.frames_in.load(Ordering::Relaxed),
            dropped_by_sr + dropped_at_input,
            sr.property::<f64>("latency-mean-ms"),
            sr.property::<f64>("latency-max-ms"),
            e2e.sum_ms / e2e.n.max(1) as f64,
            e2e.max_ms,
        )
    }
}
