//! What the benchmarks measure the same way, with or without GStreamer:
//! the model-only run, peak host memory and the machine they ran on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::engine::{Batch, Engine};
use crate::frame::RgbImage;
use crate::tiling::TileGeometry;
use crate::{Error, Result};

/// One model-only measurement.
#[derive(Debug, Clone, Copy)]
pub struct ModelOnly {
    /// The first run on each session, before the clock starts: on TensorRT
    /// this is where an engine for the tile shape is built or loaded.
    pub warm_up: Duration,
    /// From the first timed run to the last.
    pub elapsed: Duration,
    /// Inference runs timed.
    pub runs: usize,
}

/// Runs every tile of every frame through the sessions, one thread each,
/// with the tiles cut up front: what the model alone can do, with no
/// colour conversion, blending, decode or encode.
pub fn model_only(
    engines: &mut [Engine],
    geometry: &TileGeometry,
    batch: Batch,
    frames: &[RgbImage],
) -> Result<ModelOnly> {
    let first = frames
        .first()
        .ok_or_else(|| Error::InvalidSetting("no frames to measure".into()))?;
    let plan = geometry.plan(first.width, first.height)?;
    let (tw, th) = plan.tile_size();
    let runs = plan.batches(batch);
    let inputs = frames
        .iter()
        .flat_map(|frame| runs.iter().map(|run| plan.extract_batch(frame, run)))
        .collect::<Result<Vec<Vec<f32>>>>()?;
    let run_size = |input: &[f32]| input.len() / plan.tile_len();
    let warm_started = Instant::now();
    for engine in engines.iter_mut() {
        engine.run(&inputs[0], run_size(&inputs[0]), th, tw)?;
    }
    let warm_up = warm_started.elapsed();
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = engines
            .iter_mut()
            .map(|engine| {
                let (next, inputs) = (&next, &inputs);
                scope.spawn(move || -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(input) = inputs.get(i) else {
                            return Ok(());
                        };
                        engine.run(input, run_size(input), th, tw)?;
                    }
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .map_err(|_| Error::Inference("a model-only worker panicked".into()))?
        })
    })?;
    Ok(ModelOnly {
        warm_up,
        elapsed: started.elapsed(),
        runs: inputs.len(),
    })
}

/// The peak resident memory of this process so far (VmHWM), in bytes.
pub fn peak_rss() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("/proc/self/status: {e}"),
        ))
    })?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| Error::InvalidSetting("no VmHWM in /proc/self/status".into()))
}

/// Starts VmHWM again from the current resident size (Linux `clear_refs` 5),
/// so that the next [`peak_rss`] is the peak of what follows.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The 1-minute load average: other work on the machine.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The machine a measurement ran on.
#[derive(Debug, Clone, Serialize)]
pub struct Host {
    pub cpu: String,
    pub logical_cpus: usize,
    pub memory_bytes: u64,
}

impl Host {
    pub fn read() -> Host {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let field = |text: &str, key: &str| {
            text.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        Host {
            cpu: field(&cpuinfo, "model name"),
            logical_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: field(&meminfo, "MemTotal")
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .map_or(0, |kb| kb * 1024),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_grows_with_touched_memory_and_resets() {
        let before = peak_rss().unwrap();
        assert!(before > 0);
        let block = vec![1u8; 64 << 20];
        std::hint::black_box(&block);
        let with_block = peak_rss().unwrap();
        assert!(with_block >= before + (60 << 20), "{before} → {with_block}");
        drop(block);
        reset_peak_rss();
        let after = peak_rss().unwrap();
        assert!(after < with_block, "reset kept {after} ≥ {with_block}");
    }

    #[test]
    fn host_has_cpus_and_memory() {
        let host = Host::read();
        assert!(host.logical_cpus >= 1);
        assert!(host.memory_bytes > 0);
        assert!(load_average() >= 0.0);
    }
}
