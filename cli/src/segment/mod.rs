//! Segmented, resumable jobs (docs/archival.md): `gendr plan` splits the
//! input at keyframes into a job folder, `gendr run-segment` upscales one
//! segment (anywhere, in any order, again after a crash), `gendr join`
//! copies the segments' video into one file with the input's other
//! streams, and `gendr upscale --resume` does all three in one folder.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};

use crate::media;
use crate::upscale::{self, UpscaleOptions, DEFAULT_STALL_TIMEOUT_S};

mod join;
mod manifest;
mod plan;
mod resume;
mod run;

pub use resume::resume;

/// The containers join writes.
const CONTAINERS: [&str; 3] = ["mp4", "mkv", "mov"];

/// The longest `join --wait`: a week.
const JOIN_WAIT_S_MAX: u64 = 7 * 24 * 3600;

/// Segment length when none is given.
pub const DEFAULT_SEGMENT_SECONDS: f64 = 60.0;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Writes JOB/manifest.json only: the input's identity, the options, and the segments
(split at keyframes about every --segment-seconds, at an exact frame where keyframes
are rarer). Only the input's packets are read, nothing is decoded but a few frames.

Examples:
  gendr plan film.mkv --job film.job --model default --crf 16
  gendr plan film.mkv --job film.job --segment-seconds 30 --container mkv
  then: gendr run-segment film.job 0 … N-1 (any order, any machine), gendr join film.job out.mkv")]
pub struct PlanArgs {
    /// Input video file.
    pub input: PathBuf,
    /// The job folder (created if missing).
    #[arg(long, value_name = "DIR")]
    pub job: PathBuf,
    /// Segment length aimed at, in seconds of video.
    #[arg(long, value_name = "S", default_value_t = DEFAULT_SEGMENT_SECONDS,
          value_parser = positive_seconds)]
    pub segment_seconds: f64,
    /// The container join will write (default: the one OUT names).
    #[arg(long, value_name = "EXT",
          value_parser = clap::builder::PossibleValuesParser::new(CONTAINERS))]
    pub container: Option<String>,
    #[command(flatten)]
    pub options: UpscaleOptions,
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.1 => Ok(v),
        _ => Err("a number of seconds, at least 0.1".to_string()),
    }
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
INDEX counts from 0 (0 … N-1 for a job of N segments). A segment already done and
intact is skipped (exit 0); a partial, damaged or mismatching one is made again.

Examples:
  gendr run-segment film.job 3
  gendr run-segment film.job --index-from JOB_COMPLETION_INDEX   (Kubernetes indexed Job)
  gendr run-segment film.job --index-from SLURM_ARRAY_TASK_ID    (sbatch --array=0-N-1)")]
pub struct RunSegmentArgs {
    /// The job folder made by gendr plan.
    pub job: PathBuf,
    /// The segment, from 0.
    #[arg(required_unless_present = "index_from", conflicts_with = "index_from")]
    pub index: Option<usize>,
    /// Read INDEX (from 0) from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub index_from: Option<String>,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// As for gendr upscale.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_STALL_TIMEOUT_S)]
    pub stall_timeout: u64,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Every segment's file is checked against its done-record first; a missing or damaged
one is named and nothing is written. The video is copied, not encoded again; the
input's other streams are added as gendr upscale adds them.

Example:
  gendr join film.job film-2x.mkv")]
pub struct JoinArgs {
    /// The job folder whose segments are all done.
    pub job: PathBuf,
    /// Output file; .mp4, .mkv or .mov picks the container.
    pub output: PathBuf,
    /// Replace OUTPUT if it exists.
    #[arg(long, short = 'y')]
    pub overwrite: bool,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// As for gendr upscale.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_STALL_TIMEOUT_S)]
    pub stall_timeout: u64,
    /// Wait up to SECS for segments not made yet (still queued or running
    /// elsewhere) instead of failing at once; a damaged one still fails.
    #[arg(long, value_name = "SECS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=JOIN_WAIT_S_MAX))]
    pub wait: u64,
}

/// Checks what a plan's options can be checked for before any segment runs;
/// the other streams too when the output (or its container) is known.
fn check_options(
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

pub fn plan(args: PlanArgs) -> Result<()> {
    let output = args
        .container
        .as_ref()
        .map(|c| args.job.join(format!("output.{c}")));
    check_options(&args.input, &args.options, output)?;
    let manifest = plan::plan(
        &args.input,
        &args.options,
        args.container,
        args.segment_seconds,
    )?;
    manifest.save(&args.job)?;
    let n = manifest.segments.len();
    println!(
        "{n} segments planned in {} (run-segment 0 to {})",
        manifest::manifest_path(&args.job).display(),
        n - 1
    );
    Ok(())
}

pub fn run_segment(args: RunSegmentArgs) -> Result<()> {
    let index = match (args.index, &args.index_from) {
        (Some(index), _) => index,
        (None, Some(var)) => {
            let value = std::env::var(var)
                .map_err(|_| anyhow!("--index-from {var}: the variable {var} is not set"))?;
            value.trim().parse().map_err(|_| {
                anyhow!("--index-from {var}: {var}={value:?} is not a segment index (0, 1, 2…)")
            })?
        }
        (None, None) => unreachable!("clap requires INDEX or --index-from"),
    };
    let manifest = manifest::Manifest::load(&args.job)?;
    manifest.check_input()?;
    match run::run_segment(&args.job, &manifest, index, args.quiet, args.stall_timeout)? {
        run::Outcome::AlreadyDone => eprintln!("gendr: segment {index} is already done"),
        run::Outcome::Made => {}
    }
    Ok(())
}

pub fn join(args: JoinArgs) -> Result<()> {
    let manifest = manifest::Manifest::load(&args.job)?;
    manifest.check_input()?;
    if args.wait > 0 {
        wait_for_segments(&args.job, &manifest, Duration::from_secs(args.wait))?;
    }
    let claim = media::claim_output(&args.output)?;
    join::join_into(
        &args.job,
        &manifest,
        &args.output,
        args.overwrite,
        args.quiet,
        args.stall_timeout,
    )?;
    drop(claim);
    Ok(())
}

/// How often `join --wait` looks for newly committed segments.
const WAIT_POLL: Duration = Duration::from_secs(5);

/// Returns once every segment has a done-record (a run's commit), or fails
/// when `limit` passes first; whether the records are intact is join's
/// check, so a damaged segment fails there, at once.
fn wait_for_segments(
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
