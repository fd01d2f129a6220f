//! `gendr plan`, `run-segment` and `join`: the arguments of a segmented
//! job's commands, run by the archival engine (see its `segment` module).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Result};
use clap::builder::TypedValueParser;
use gendr_archive::media;
use gendr_archive::request::{
    positive_seconds, Container, DEFAULT_SEGMENT_SECONDS, DEFAULT_STALL_TIMEOUT_S,
};
use gendr_archive::segment::info::JobInfo;
use gendr_archive::segment::join::wait_for_segments;
use gendr_archive::segment::session::Session;
use gendr_archive::segment::{join, manifest, plan, run};
use gendr_archive::Caller;

use crate::progress::{cancel_on_ctrl_c, Bar};
use crate::upscale::UpscaleOptions;

/// The longest `join --wait`: a week.
const JOIN_WAIT_S_MAX: u64 = 7 * 24 * 3600;

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
          value_parser = clap::builder::PossibleValuesParser::new(Container::NAMES)
              .try_map(|word| word.parse::<Container>()))]
    pub container: Option<Container>,
    #[command(flatten)]
    pub options: UpscaleOptions,
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

pub fn plan(args: PlanArgs) -> Result<()> {
    let output = args
        .container
        .as_ref()
        .map(|c| args.job.join(format!("output.{c}")));
    let options = args.options.into();
    let info = media::discover(&args.input)?;
    plan::check_options(&info, &args.input, &options, output)?;
    let manifest = plan::plan(&args.input, &options, args.container, args.segment_seconds)?;
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
    let (bar, cancel) = (Bar::new(args.quiet), cancel_on_ctrl_c());
    let caller = Caller {
        observer: &bar,
        cancel: &cancel,
    };
    let session = Session::new(&args.job, &manifest, args.quiet, args.stall_timeout, caller);
    match run::run_segment(&session, index)? {
        run::Outcome::AlreadyDone => eprintln!("gendr: segment {index} is already done"),
        run::Outcome::Made => {}
    }
    Ok(())
}

pub fn join(args: JoinArgs) -> Result<()> {
    let manifest = manifest::Manifest::load(&args.job)?;
    manifest.check_input()?;
    let bar = Bar::new(args.quiet);
    if args.wait > 0 {
        wait_for_segments(&args.job, &manifest, Duration::from_secs(args.wait), &bar)?;
    }
    let claim = media::claim_output(&args.output)?;
    let cancel = cancel_on_ctrl_c();
    let caller = Caller {
        observer: &bar,
        cancel: &cancel,
    };
    let session = Session::new(&args.job, &manifest, args.quiet, args.stall_timeout, caller);
    join::join_into(&session, &args.output, args.overwrite)?;
    drop(claim);
    Ok(())
}

#[derive(clap::Subcommand, Debug)]
pub enum JobCommand {
    /// The plan and its segments' state, read from the job folder alone.
    #[command(after_help = "\
Reads JOB/manifest.json (refused as run-segment refuses it) and which segments have a
done-record; no segment file is read. --json is the form launchers read: an object with
input, container, frames, segment_count, committed and segments (index, frames,
first_pts_ns, end_pts_ns, committed); fields may be added, none removed.

Examples:
  gendr job info film.job
  gendr job info film.job --json | jq .segment_count")]
    Info(JobInfoArgs),
}

#[derive(clap::Args, Debug)]
pub struct JobInfoArgs {
    /// The job folder made by gendr plan.
    pub job: PathBuf,
    /// One JSON object on stdout instead of a line of text.
    #[arg(long)]
    pub json: bool,
}

pub fn job(command: JobCommand) -> Result<()> {
    match command {
        JobCommand::Info(args) => {
            let info = JobInfo::read(&args.job)?;
            if args.json {
                println!("{}", serde_json::to_string(&info)?);
            } else {
                println!("{}", info.summary());
            }
            Ok(())
        }
    }
}
