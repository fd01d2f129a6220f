//! The run loop: (re)connects the source with backoff, watches it for
//! errors, end of stream and silence, watches the output for errors, and
//! refreshes the stats line.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use gst::prelude::*;

use super::access::Access;
use super::endpoint::Source;
use super::output::Output;
use super::source;
use super::status::{Counters, Stats};
use super::LiveRequest;
use gendr_archive::{media, Caller};

pub fn drive(
    request: &LiveRequest,
    source: &Source,
    access: &Access,
    output: &Output,
    counters: &Arc<Counters>,
    caller: Caller,
) -> Result<()> {
    let bus = output.pipeline.bus().context("output bus")?;
    let mut input: Option<gst::Pipeline> = None;
    let mut retry = Retry::default();
    let mut connected_at = Instant::now();
    let mut seen_frames = 0u64;
    let mut stats = Stats::new(counters);
    let stall = Duration::from_secs(request.stall_secs as u64);
    while !caller.cancel.is_cancelled() {
        // (Re)connect when due.
        if input.is_none() && Instant::now() >= retry.at {
            let pipeline = source::build(source, access, output, counters)?;
            match pipeline.set_state(gst::State::Playing) {
                Ok(_) => {
                    input = Some(pipeline);
                    connected_at = Instant::now();
                    seen_frames = counters.frames_in.load(Ordering::Relaxed);
                }
                Err(_) => {
                    let why =
                        source::trouble(&pipeline).unwrap_or_else(|| "could not start".into());
                    let _ = pipeline.set_state(gst::State::Null);
                    let (delay, attempt) = retry.schedule();
                    caller.observer.say(&format!(
                        "gendr: source {}: {why}; retrying in {:.1} s (attempt {attempt})",
                        request.input,
                        delay.as_secs_f64()
                    ));
                }
            }
        }
        // The source: errors, end of stream, or silence.
        if let Some(pipeline) = &input {
            let frames = counters.frames_in.load(Ordering::Relaxed);
            if frames > seen_frames {
                seen_frames = frames;
                retry.attempt = 0;
            }
            let last_in = Duration::from_millis(counters.last_in_ms.load(Ordering::Relaxed));
            let started = counters.started;
            let silent = started
                .elapsed()
                .saturating_sub(last_in.max(connected_at - started));
            let trouble = source::trouble(pipeline).or_else(|| {
                (silent >= stall).then(|| format!("no frames for {} s", silent.as_secs()))
            });
            if let Some(why) = trouble {
                let _ = pipeline.set_state(gst::State::Null);
                input = None;
                if source.is_file() && why == "end of stream" {
                    caller
                        .observer
                        .say(&format!("gendr: {} ended", request.input));
                    break;
                }
                let (delay, attempt) = retry.schedule();
                caller.observer.say(&format!(
                    "gendr: source {} lost ({why}); reconnecting in {:.1} s (attempt {attempt})",
                    request.input,
                    delay.as_secs_f64()
                ));
            }
        }
        // The output: errors end the run; latency changes are redistributed.
        while let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) {
            match msg.view() {
                gst::MessageView::Error(err) => {
                    if let Some(pipeline) = input.take() {
                        let _ = pipeline.set_state(gst::State::Null);
                    }
                    bail!("{}", media::error_text(err));
                }
                gst::MessageView::Eos(_) => bail!("the output ended unexpectedly"),
                gst::MessageView::Latency(_) => {
                    let _ = output.pipeline.recalculate_latency();
                }
                _ => {}
            }
        }
        if let Some(line) = stats.tick(&output.sr, &output.appsrc) {
            caller.observer.status(&line);
        }
    }
    if let Some(pipeline) = input.take() {
        let _ = pipeline.set_state(gst::State::Null);
    }
    Ok(())
}

/// When to try the source again, and how many tries in a row failed.
struct Retry {
    attempt: u32,
    at: Instant,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempt: 0,
            at: Instant::now(),
        }
    }
}

impl Retry {
    /// Counts a failed try and sets the next one after the backoff; returns
    /// the wait and the attempt number, for the log.
    fn schedule(&mut self) -> (Duration, u32) {
        self.attempt += 1;
        let delay = backoff(self.attempt);
        self.at = Instant::now() + delay;
        (delay, self.attempt)
    }
}

/// 0.5 s, 1 s, 2 s … up to 10 s between reconnection attempts.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((500u64 << attempt.saturating_sub(1).min(5)).min(10_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(30), Duration::from_secs(10));
    }
}
