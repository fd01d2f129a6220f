//! `gendr`: upscale video with one-step super-resolution models.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod batch;
mod bench;
mod eval;
mod live;
mod models;
mod progress;
mod segment;
mod upscale;

use gendr_archive::media;

const EXAMPLES: &str = "\
Examples:
  gendr upscale holiday.mp4 holiday-2x.mp4
  gendr upscale --model default-x4 --codec x265 --crf 20 archive.mkv archive-4x.mkv
  gendr upscale --model path/to/model.onnx --tile 192 --overlap 16 in.mp4 out.mp4
  gendr upscale --resume film.mkv film-2x.mkv
  gendr plan film.mkv --job film.job; gendr run-segment film.job 0; …; gendr join film.job out.mkv
  gendr models
  gendr eval tests/data/eval/coffee.png --model default

Set GENDR_LOG (e.g. GENDR_LOG=debug) for detailed logs.";

#[derive(Parser)]
#[command(name = "gendr", version, about = "Tiled one-step super-resolution for video", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Upscale a video file; audio is copied, the output appears only on success.
    Upscale(upscale::Args),
    /// List the shipped model presets.
    Models(models::Args),
    /// Measure a model against bicubic on a reference image or video.
    Eval(eval::Args),
    /// Measure throughput: model alone, sequential, and the full pipeline.
    Bench(bench::Args),
    /// Enhance a live stream with bounded latency.
    Live(live::Args),
    /// Split a video into segments for run-segment and join (a job folder).
    Plan(segment::PlanArgs),
    /// Upscale one segment of a planned job; skipped when already done.
    RunSegment(segment::RunSegmentArgs),
    /// Join a job's finished segments and the input's other streams into one file.
    Join(segment::JoinArgs),
}

fn main() -> ExitCode {
    keep_freed_memory();
    raise_descriptor_limit();
    ignore_file_size_signal();
    let filter = EnvFilter::try_from_env("GENDR_LOG")
        .unwrap_or_else(|_| EnvFilter::new("warn,gendr=info,ort=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
    let cli = Cli::parse();
    let result = init().and_then(|()| match cli.command {
        Command::Upscale(args) => upscale::run(args),
        Command::Models(args) => models::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Live(args) => live::run(args),
        Command::Plan(args) => segment::plan(args),
        Command::RunSegment(args) => segment::run_segment(args),
        Command::Join(args) => segment::join(args),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain of causes, joined.
            let text = format!("{e:#}").replace('\n', " ");
            eprintln!("gendr: error: {text}");
            ExitCode::FAILURE
        }
    }
}

/// Every frame allocates buffers of several MiB (colour planes, tiles, the
/// blend accumulator, ONNX Runtime's outputs). With glibc's defaults each is
/// a fresh mmap, faulted in page by page and unmapped again, which is costly
/// once the page cache is full (as it is after reading and writing large
/// videos): measured side by side here, 100 frames 640×360 → 1280×720 with
/// `fast` took 7.5 s (3.2 s in the kernel) by default and 4.7 s (0.2 s) with
/// freed memory kept in the heap; on an idle machine both took 3.2 s. In
/// `gendr bench` (same clip, side by side) the pipelined run went from
/// 17–19 to 21.4 fps, and peak RSS from 0.7–0.85 to 1.15 GiB.
fn keep_freed_memory() {
    // SAFETY: mallopt only tunes the allocator; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
    }
}

/// The soft limit on open descriptors is often 1024 while the hard limit
/// is far higher: a live server's clients, pipelines and GLib contexts
/// (each holds an eventfd) then run out long before they need to, and GLib
/// aborts the process when it cannot make one. Raised to the hard limit.
fn raise_descriptor_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit read and write the struct passed, nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Over a file size limit (RLIMIT_FSIZE) the kernel sends SIGXFSZ, which
/// kills the process by default, leaving a partial file and no word: with
/// it ignored, the write fails with EFBIG and the run ends with its one
/// line (a full disk, the partial removed), as for ENOSPC.
fn ignore_file_size_signal() {
    // SAFETY: sets a signal disposition; called before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

fn init() -> anyhow::Result<()> {
    gst::init()?;
    gstgendrsr::plugin_register_static()?;
    Ok(())
}
