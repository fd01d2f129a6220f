//! What a live stream does when frames come faster than the model: which
//! frames go to the model, which are dropped or upscaled by the fallback,
//! the latency to report, and the counters. GStreamer-free, so that the
//! policy is tested directly; the element feeds it clock readings.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::{Error, Result};

/// When a live source outpaces the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overload {
    /// Always wait for the model (for files).
    #[default]
    Block,
    /// Drop frames that cannot be upscaled within the latency budget (QoS).
    Drop,
    /// Upscale such frames with the bilinear fallback instead.
    Fallback,
}

impl Overload {
    pub const NAMES: [&'static str; 3] = ["block", "drop", "fallback"];
}

impl fmt::Display for Overload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Overload::Block => "block",
            Overload::Drop => "drop",
            Overload::Fallback => "fallback",
        })
    }
}

impl FromStr for Overload {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "block" => Ok(Overload::Block),
            "drop" => Ok(Overload::Drop),
            "fallback" => Ok(Overload::Fallback),
            other => Err(Error::InvalidSetting(format!(
                "unknown overload policy {other:?}; use block, drop or fallback"
            ))),
        }
    }
}

/// A frame as it arrives, as far as the policy cares.
#[derive(Debug, Clone, Copy, Default)]
pub struct Arrival {
    /// How late the frame already is against the clock (upstream's own
    /// latency taken off), where the pipeline is playing live.
    pub late: Option<Duration>,
    /// How late downstream said frames around this one arrive there (QoS).
    pub late_downstream: Option<Duration>,
    /// Model frames submitted and not yet out of the model: frames that
    /// wait downstream (on a synchronising sink) are not counted here.
    pub in_model: usize,
    /// Whether the pipeline has a free place for a fallback frame.
    pub room: bool,
}

/// Where one frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Model,
    Fallback,
    Drop,
}

/// The admission policy and the running estimate it decides by.
#[derive(Debug, Clone)]
pub struct Admission {
    policy: Overload,
    budget: Duration,
    max_model_frames: usize,
    /// Model time one more queued frame adds, learnt from frames done.
    service: Duration,
}

/// How quickly the per-frame estimate follows new measurements.
const SERVICE_SMOOTHING: f64 = 0.2;

impl Admission {
    pub fn new(policy: Overload, budget: Duration, max_model_frames: usize) -> Self {
        Admission {
            policy,
            budget,
            max_model_frames: max_model_frames.max(1),
            service: Duration::ZERO,
        }
    }

    pub fn policy(&self) -> Overload {
        self.policy
    }

    pub fn set_budget(&mut self, budget: Duration) {
        self.budget = budget;
    }

    /// Starts the estimate afresh, from a timing run (new frame size).
    pub fn set_service(&mut self, per_frame: Duration) {
        self.service = per_frame;
    }

    pub fn service(&self) -> Duration {
        self.service
    }

    /// Decides where a frame goes. Under `block` everything goes to the
    /// model; otherwise a frame goes to the model only while the frames in
    /// the model are expected to be done within the budget, and only if it
    /// is not already later than the budget. A model with nothing to do
    /// always gets the frame, so that its estimate keeps up. Lateness within
    /// the budget never drops a frame: that is what the budget is for.
    pub fn admit(&self, a: &Arrival) -> Admit {
        if self.policy == Overload::Block {
            return Admit::Model;
        }
        let over = |late: Option<Duration>| late.is_some_and(|l| l > self.budget);
        let too_late = over(a.late) || over(a.late_downstream);
        let expected = self
            .service
            .checked_mul(a.in_model as u32 + 1)
            .unwrap_or(Duration::MAX);
        let model_ok =
            a.in_model == 0 || (a.in_model < self.max_model_frames && expected <= self.budget);
        match self.policy {
            _ if model_ok && !too_late => Admit::Model,
            Overload::Fallback if a.room && !over(a.late) => Admit::Fallback,
            _ => Admit::Drop,
        }
    }

    /// A model frame is done after `latency` inside the pipeline, with
    /// `ahead` model frames before it when it went in.
    pub fn learn(&mut self, latency: Duration, ahead: usize) {
        let sample = latency.as_secs_f64() / (ahead + 1) as f64;
        let old = self.service.as_secs_f64();
        let new = old + SERVICE_SMOOTHING * (sample - old);
        self.service = Duration::try_from_secs_f64(new).unwrap_or(self.service);
    }
}

/// The latency the element reports: an estimate from the timing run at
/// caps at first, raised when frames really take notably longer.
#[derive(Debug, Clone, Copy, Default)]
pub struct LatencyEstimate {
    reported: Duration,
}

/// Frames taking this much more than reported raise the report...
const LATENCY_GROWTH: f64 = 1.25;
/// ...to what they took, with this headroom.
const LATENCY_HEADROOM: f64 = 1.5;

impl LatencyEstimate {
    pub fn reported(&self) -> Duration {
        self.reported
    }

    /// The estimate for a new frame size: its tiles' inference time, spread
    /// over the workers. Returns the per-frame model time.
    pub fn at_caps(&mut self, per_tile: Duration, tiles: usize, workers: usize) -> Duration {
        let per_frame = per_tile.as_secs_f64() * tiles as f64 / workers.max(1) as f64;
        let per_frame = Duration::try_from_secs_f64(per_frame).unwrap_or(per_tile);
        self.reported = per_frame;
        per_frame
    }

    /// A frame took `took` inside the element; returns the new latency when
    /// that is notably more than reported.
    pub fn observe(&mut self, took: Duration) -> Option<Duration> {
        if took.as_secs_f64() > self.reported.as_secs_f64() * LATENCY_GROWTH {
            self.reported = took.mul_f64(LATENCY_HEADROOM);
            Some(self.reported)
        } else {
            None
        }
    }
}

/// Counters since the element started. Every frame that came in is in
/// exactly one of processed, fallback, dropped, failed or in flight.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub received: u64,
    pub processed: u64,
    pub dropped: u64,
    pub fallback: u64,
    pub failed: u64,
    pub latency_sum_ms: f64,
    pub latency_max_ms: f64,
}

impl Stats {
    pub fn out(&mut self, took: Duration, fallback: bool) {
        if fallback {
            self.fallback += 1;
        } else {
            self.processed += 1;
        }
        let ms = took.as_secs_f64() * 1e3;
        self.latency_sum_ms += ms;
        self.latency_max_ms = self.latency_max_ms.max(ms);
    }

    pub fn latency_mean_ms(&self) -> f64 {
        let n = self.processed + self.fallback;
        if n == 0 {
            0.0
        } else {
            self.latency_sum_ms / n as f64
        }
    }

    /// Frames received and not yet accounted for.
    pub fn in_flight(&self) -> u64 {
        self.received
            .saturating_sub(self.processed + self.dropped + self.fallback + self.failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn live(policy: Overload) -> Admission {
        let mut a = Admission::new(policy, 500 * MS, 4);
        a.set_service(100 * MS);
        a
    }

    #[test]
    fn block_always_waits_for_the_model() {
        let a = live(Overload::Block);
        let arrival = Arrival {
            late: Some(10_000 * MS),
            in_model: 50,
            ..Arrival::default()
        };
        assert_eq!(a.admit(&arrival), Admit::Model);
    }

    #[test]
    fn lateness_within_the_budget_never_drops() {
        // gendr live dropped frames 40 µs late against a 500 ms budget.
        let a = live(Overload::Drop);
        let arrival = Arrival {
            late: Some(Duration::from_micros(40)),
            late_downstream: Some(Duration::from_micros(40)),
            in_model: 1,
            room: true,
        };
        assert_eq!(a.admit(&arrival), Admit::Model);
        let over = Arrival {
            late_downstream: Some(501 * MS),
            ..arrival
        };
        assert_eq!(a.admit(&over), Admit::Drop);
    }

    #[test]
    fn the_model_takes_frames_while_they_fit_in_the_budget() {
        let a = live(Overload::Drop);
        let at = |in_model| Arrival {
            in_model,
            room: true,
            ..Arrival::default()
        };
        // 100 ms a frame: four in the model and this one make 500 ms.
        assert_eq!(a.admit(&at(0)), Admit::Model);
        assert_eq!(a.admit(&at(3)), Admit::Model);
        // The fifth would also fit the budget but not max-frames-in-flight.
        assert_eq!(a.admit(&at(4)), Admit::Drop);
        let fallback = live(Overload::Fallback);
        assert_eq!(fallback.admit(&at(4)), Admit::Fallback);
        let full = Arrival {
            room: false,
            ..at(4)
        };
        assert_eq!(fallback.admit(&full), Admit::Drop);
    }

    #[test]
    fn an_idle_model_takes_even_a_slow_frame() {
        let mut a = live(Overload::Drop);
        a.set_service(10_000 * MS);
        assert_eq!(a.admit(&Arrival::default()), Admit::Model);
    }

    #[test]
    fn the_estimate_learns_per_frame_time_from_frames_done() {
        let mut a = live(Overload::Drop);
        // Three frames ahead, 800 ms in all: 200 ms each.
        for _ in 0..50 {
            a.learn(800 * MS, 3);
        }
        let service = a.service().as_secs_f64();
        assert!((service - 0.2).abs() < 0.01, "{service}");
    }

    #[test]
    fn latency_rises_only_when_frames_take_notably_longer() {
        let mut l = LatencyEstimate::default();
        assert_eq!(l.at_caps(10 * MS, 8, 2), 40 * MS);
        assert_eq!(l.observe(45 * MS), None);
        assert_eq!(l.observe(60 * MS), Some(90 * MS));
        assert_eq!(l.reported(), 90 * MS);
    }

    #[test]
    fn every_frame_is_counted_once() {
        let mut s = Stats {
            received: 5,
            ..Stats::default()
        };
        s.out(10 * MS, false);
        s.out(30 * MS, true);
        s.dropped += 1;
        assert_eq!(s.in_flight(), 2);
        assert_eq!(s.latency_mean_ms(), 20.0);
        assert_eq!(s.latency_max_ms, 30.0);
    }

    #[test]
    fn names_round_trip() {
        for name in Overload::NAMES {
            assert_eq!(name.parse::<Overload>().unwrap().to_string(), name);
        }
        assert!("sometimes".parse::<Overload>().is_err());
    }
}
