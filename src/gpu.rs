//! GPU utilisation and memory during a run, sampled with `nvidia-smi`, the
//! driver's own tool, present wherever the CUDA provider can run. Shared by
//! `gendr bench` and the GStreamer-free `gendr-core-bench`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How often the driver is asked.
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(100);

/// What the GPU did during a measured run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GpuUsage {
    /// Mean of the driver's utilisation: the share of each sample period in
    /// which a kernel was running.
    pub busy_percent: f64,
    /// The most device memory in use (all processes) at any sample.
    pub memory_peak_bytes: u64,
    pub samples: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    at: Instant,
    busy_percent: f64,
    memory_mib: f64,
}

/// Which card a run was on, as the driver names it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuInfo {
    pub name: String,
    pub driver: String,
    pub memory_total_bytes: u64,
}

/// Asks `program` (normally `nvidia-smi`) about GPU `device`; `None` when it
/// cannot be run or names no such card.
pub fn describe(program: &str, device: i32) -> Option<GpuInfo> {
    let output = Command::new(program)
        .args([
            "--query-gpu=name,driver_version,memory.total",
            "--format=csv,noheader,nounits",
            &format!("--id={device}"),
        ])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    parse_info(String::from_utf8_lossy(&output.stdout).lines().next()?)
}

/// One `name, driver_version, memory.total` line, e.g. `NVIDIA H200, 580.159.04, 143771`.
fn parse_info(line: &str) -> Option<GpuInfo> {
    let mut fields = line.rsplitn(3, ',').map(str::trim);
    let memory_mib: u64 = fields.next()?.parse().ok()?;
    let driver = fields.next()?.to_string();
    let name = fields.next()?.to_string();
    Some(GpuInfo {
        name,
        driver,
        memory_total_bytes: memory_mib * 1024 * 1024,
    })
}

/// A running `nvidia-smi` that prints one line per sample period.
pub struct GpuMonitor {
    child: Child,
    reader: JoinHandle<Vec<Sample>>,
}

impl GpuMonitor {
    /// Starts sampling GPU `device` with `program` (normally `nvidia-smi`);
    /// `None` when it cannot be started, as on a machine without a GPU.
    pub fn start(program: &str, device: i32) -> Option<Self> {
        let mut child = Command::new(program)
            .args([
                "--query-gpu=utilization.gpu,memory.used",
                "--format=csv,noheader,nounits",
                &format!("--id={device}"),
                &format!("--loop-ms={}", SAMPLE_PERIOD.as_millis()),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| tracing::debug!("{program}: {e}; no GPU figures"))
            .ok()?;
        let stdout = child.stdout.take()?;
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(|line| line.ok())
                .filter_map(|line| parse(&line, Instant::now()))
                .collect()
        });
        Some(GpuMonitor { child, reader })
    }

    /// Stops sampling; the usage over the samples taken between `from` and
    /// `to`, or `None` when there were none.
    pub fn stop(mut self, from: Instant, to: Instant) -> Option<GpuUsage> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let samples = self.reader.join().ok()?;
        usage(&samples, from, to)
    }
}

/// One `utilization.gpu, memory.used` line, e.g. `87, 10240`.
fn parse(line: &str, at: Instant) -> Option<Sample> {
    let (busy, memory) = line.split_once(',')?;
    Some(Sample {
        at,
        busy_percent: busy.trim().parse().ok()?,
        memory_mib: memory.trim().parse().ok()?,
    })
}

fn usage(samples: &[Sample], from: Instant, to: Instant) -> Option<GpuUsage> {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at <= to)
        .collect();
    if inside.is_empty() {
        return None;
    }
    let busy = inside.iter().map(|s| s.busy_percent).sum::<f64>() / inside.len() as f64;
    let memory = inside.iter().map(|s| s.memory_mib).fold(0.0, f64::max);
    Some(GpuUsage {
        busy_percent: busy,
        memory_peak_bytes: (memory * 1024.0 * 1024.0) as u64,
        samples: inside.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_and_garbage_is_skipped() {
        let now = Instant::now();
        let s = parse("87, 10240", now).unwrap();
        assert_eq!((s.busy_percent, s.memory_mib), (87.0, 10240.0));
        assert!(parse("[N/A], 10240", now).is_none());
        assert!(parse("No devices were found", now).is_none());
    }

    #[test]
    fn card_lines_parse_with_commas_in_the_name() {
        let info = parse_info("NVIDIA H200, 580.159.04, 143771").unwrap();
        assert_eq!(info.name, "NVIDIA H200");
        assert_eq!(info.driver, "580.159.04");
        assert_eq!(info.memory_total_bytes, 143771 * 1024 * 1024);
        let odd = parse_info("Card, rev 2, 550.1, 8192").unwrap();
        assert_eq!(
            (odd.name.as_str(), odd.driver.as_str()),
            ("Card, rev 2", "550.1")
        );
        assert!(parse_info("No devices were found").is_none());
        assert!(describe("/nonexistent/nvidia-smi", 0).is_none());
    }

    #[test]
    fn usage_counts_only_the_measured_window() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let samples: Vec<Sample> = [
            (0, 0.0, 500.0),
            (100, 90.0, 900.0),
            (200, 100.0, 1000.0),
            (300, 0.0, 4000.0),
        ]
        .into_iter()
        .map(|(ms, busy_percent, memory_mib)| Sample {
            at: at(ms),
            busy_percent,
            memory_mib,
        })
        .collect();
        let u = usage(&samples, at(50), at(250)).unwrap();
        assert_eq!(u.samples, 2);
        assert!((u.busy_percent - 95.0).abs() < 1e-9);
        assert_eq!(u.memory_peak_bytes, 1000 * 1024 * 1024);
        assert!(usage(&samples, at(310), at(400)).is_none());
    }

    #[test]
    fn a_sampler_program_is_read_line_by_line() {
        // A stand-in for nvidia-smi that prints three samples and stays up.
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("nvidia-smi");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho '50, 100'\necho '70, 300'\necho '60, 200'\nexec sleep 30\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let from = Instant::now();
        let monitor = GpuMonitor::start(fake.to_str().unwrap(), 0).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let u = monitor.stop(from, Instant::now()).unwrap();
        assert_eq!(u.samples, 3);
        assert!((u.busy_percent - 60.0).abs() < 1e-9);
        assert_eq!(u.memory_peak_bytes, 300 * 1024 * 1024);
        assert!(GpuMonitor::start("/nonexistent/nvidia-smi", 0).is_none());
    }
}
