//! What the benchmarks measure the same way, with or without GStreamer:
//! the model-only run, peak host memory and the machine they ran on.

use std::collections::BTreeMap;
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

/// The CPU time (user and system) this process and each of its threads
/// have used so far, from `/proc/self/stat` and `/proc/self/task/*/stat`:
/// what a stage costs when the machine is shared, where wall time says
/// little. Zero and empty where `/proc` cannot be read.
#[derive(Debug, Clone, Default)]
pub struct ThreadTimes {
    /// The whole process, threads that have ended included.
    process: Duration,
    /// By thread id: the thread's name and CPU time.
    threads: BTreeMap<u32, (String, Duration)>,
}

/// The CPU time of the threads that share one name, over an interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThreadCpu {
    /// The thread's name (`comm`, 15 characters at most): unnamed threads
    /// carry the name of the thread that started them.
    pub name: String,
    pub threads: usize,
    pub cpu_s: f64,
}

impl ThreadTimes {
    pub fn read() -> ThreadTimes {
        // SAFETY: sysconf only reads a constant of the system.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
        let process = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|stat| parse_task_stat(&stat, ticks))
            .map_or(Duration::ZERO, |(_, t)| t);
        let mut threads = BTreeMap::new();
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return ThreadTimes { process, threads };
        };
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            // A thread may end between the listing and the read.
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            if let Some(entry) = parse_task_stat(&stat, ticks) {
                threads.insert(tid, entry);
            }
        }
        ThreadTimes { process, threads }
    }

    /// The CPU time the whole process used since `earlier`, threads that
    /// ended meanwhile included.
    pub fn total_since(&self, earlier: &ThreadTimes) -> Duration {
        self.process.saturating_sub(earlier.process)
    }

    /// The CPU time used since `earlier` by the threads alive now, summed
    /// by thread name, the busiest first (a thread started since counts
    /// whole; one that ended is only in [`Self::total_since`]); names that
    /// used nothing are left out.
    pub fn since(&self, earlier: &ThreadTimes) -> Vec<ThreadCpu> {
        let mut by_name: BTreeMap<&str, (usize, Duration)> = BTreeMap::new();
        for (tid, (name, now)) in &self.threads {
            let before = earlier
                .threads
                .get(tid)
                .filter(|(n, _)| n == name)
                .map_or(Duration::ZERO, |(_, t)| *t);
            let used = now.saturating_sub(before);
            if !used.is_zero() {
                let entry = by_name.entry(name).or_default();
                entry.0 += 1;
                entry.1 += used;
            }
        }
        let mut out: Vec<ThreadCpu> = by_name
            .into_iter()
            .map(|(name, (threads, used))| ThreadCpu {
                name: name.to_string(),
                threads,
                cpu_s: used.as_secs_f64(),
            })
            .collect();
        out.sort_by(|a, b| b.cpu_s.total_cmp(&a.cpu_s));
        out
    }
}

/// A thread's name and CPU time from its `stat` line: the name sits in
/// parentheses and may hold spaces or parentheses itself, so the fields
/// are counted from the last `)`; utime and stime are fields 14 and 15.
fn parse_task_stat(stat: &str, ticks_per_s: f64) -> Option<(String, Duration)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let mut fields = stat.get(close + 1..)?.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((
        name,
        Duration::from_secs_f64((utime + stime) as f64 / ticks_per_s),
    ))
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
    fn a_task_stat_line_gives_its_name_and_cpu_time() {
        // Field 3 onwards as the kernel writes them; utime 250, stime 50 ticks.
        let line = "4242 (gendr-in (x)) S 1 2 3 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 5 6 7";
        assert_eq!(
            parse_task_stat(line, 100.0),
            Some(("gendr-in (x)".to_string(), Duration::from_secs(3)))
        );
        assert_eq!(parse_task_stat("4242 (cut", 100.0), None);
    }

    /// This thread's own CPU time, from the kernel's per-thread clock.
    fn own_cpu_time() -> Duration {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `t` is a valid timespec for the call to fill.
        assert_eq!(
            unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) },
            0
        );
        Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
    }

    #[test]
    fn thread_times_count_a_busy_thread_under_its_name() {
        let before = ThreadTimes::read();
        let after = std::thread::Builder::new()
            .name("gendr-spin".into())
            .spawn(|| {
                // Busy for 300 ms of its own CPU time, however loaded the machine.
                let mut x = 0u64;
                while own_cpu_time() < Duration::from_millis(300) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
                // Read while the thread still exists.
                ThreadTimes::read()
            })
            .unwrap()
            .join()
            .unwrap();
        let used = after.since(&before);
        let spin = used.iter().find(|t| t.name == "gendr-spin").unwrap();
        assert_eq!(spin.threads, 1);
        // Ticks are 10 ms here, so allow two of them either way.
        assert!(spin.cpu_s >= 0.28 && spin.cpu_s < 0.4, "{spin:?}");
        assert!(after.total_since(&before).as_secs_f64() >= spin.cpu_s);
        // Once it has ended, the thread counts in the process's total only.
        // `join` returns as the thread exits, a moment before the kernel
        // takes its task out of /proc: give it up to two seconds.
        let gone_by = Instant::now() + Duration::from_secs(2);
        let later = loop {
            let later = ThreadTimes::read();
            let listed = later.since(&before).iter().any(|t| t.name == "gendr-spin");
            if !listed || Instant::now() > gone_by {
                break later;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(later.total_since(&before).as_secs_f64() >= spin.cpu_s);
        assert!(!later.since(&before).iter().any(|t| t.name == "gendr-spin"));
        assert!(before.since(&before).is_empty());
    }

    #[test]
    fn host_has_cpus_and_memory() {
        let host = Host::read();
        assert!(host.logical_cpus >= 1);
        assert!(host.memory_bytes > 0);
        assert!(load_average() >= 0.0);
    }
}
