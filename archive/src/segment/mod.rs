//! Segmented, resumable jobs (docs/archival.md): `gendr plan` splits the
//! input at keyframes into a job folder, `gendr run-segment` upscales one
//! segment (anywhere, in any order, again after a crash), `gendr join`
//! copies the segments' video into one file with the input's other
//! streams, and `gendr upscale --resume` does all three in one folder.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::media;
use crate::upscale::{self, UpscaleOptions};

pub mod join;
pub mod manifest;
pub mod plan;
mod resume;
pub mod run;

pub use resume::resume;

/// The containers join writes.
pub const CONTAINERS: [&str; 3] = ["mp4", "mkv", "mov"];

/// Segment length when none is given.
pub const DEFAULT_SEGMENT_SECONDS: f64 = 60.0;

/// The `--segment-seconds` values a plan takes.
pub fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.1 => Ok(v),
        _ => Err("a number of seconds, at least 0.1".to_string()),
    }
}

/// Checks what a plan's options can be checked for before any segment runs;
/// the other streams too when the output (or its container) is known.
pub fn check_options(
    input: &std::path::Path,
    options: &UpscaleOptions,
    output: Option<PathBuf>,
) -> Result<()> {
    let info = media::discover(input)?;
    let output_known = output.is_some();
    let args = upscale::Args {
        container: None,
        input: input.to_path_buf(),
        output: output.unwrap_or_default(),
        options: options.clone(),
        overwrite: false,
        quiet: true,
        stall_timeout: 0,
        resume: false,
        segment_seconds: None,
    };
    upscale::check_job(&info, &args, output_known)
}

/// How often `join --wait` looks for newly committed segments.
const WAIT_POLL: Duration = Duration::from_secs(5);

/// Returns once every segment has a done-record (a run's commit), or fails
/// when `limit` passes first; whether the records are intact is join's
/// check, so a damaged segment fails there, at once.
pub fn wait_for_segments(
    dir: &std::path::Path,
    manifest: &manifest::Manifest,
    limit: Duration,
) -> Result<()> {
    let started = Instant::now();
    let mut reported = None;
    loop {
        let pending: Vec<usize> = (0..manifest.segments.len())
            .filter(|&index| !manifest::record_path(dir, index).exists())
            .collect();
        let Some(first) = pending.first() else {
            return Ok(());
        };
        if started.elapsed() >= limit {
            bail!(
                "{} of {} segment(s) still not made after --wait {} s (segment {first} first); \
                 run them with gendr run-segment {} N, then join again",
                pending.len(),
                manifest.segments.len(),
                limit.as_secs(),
                dir.display()
            );
        }
        if reported != Some(pending.len()) {
            eprintln!(
                "gendr: waiting for {} of {} segment(s) (segment {first} first)",
                pending.len(),
                manifest.segments.len()
            );
            reported = Some(pending.len());
        }
        std::thread::sleep(WAIT_POLL.min(limit.saturating_sub(started.elapsed())));
    }
}
