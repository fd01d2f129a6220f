//! `gendr-core-bench`: the throughput of the gendr core alone, with no
//! GStreamer in the process, on frames decoded beforehand (a YUV4MPEG2 file)
//! or drawn here. Three runs on the same sessions and tiles:
//!
//! - model only: every tile cut up front, through the sessions alone;
//! - sequential: one frame at a time, colour → tiles → inference → blend →
//!   colour, on the first session;
//! - pipelined: the frames through `FramePipeline`, the stages and sessions
//!   overlapping, as gendrsr runs them (no decode or encode around it).
//!
//! One JSON object on stdout. On a GPU, `nvidia-smi` is sampled during the
//! model-only and pipelined runs; without it the report says so.

mod y4m;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use gendr::color::{frame_to_rgb, rgb_to_frame};
use gendr::engine::{default_trt_cache_root, EngineOptions, Provider};
use gendr::frame::{Colorimetry, Frame, PixelFormat, RgbImage};
use gendr::gpu::{self, GpuInfo, GpuMonitor, GpuUsage};
use gendr::measure::{self, Host};
use gendr::pipeline::{FramePipeline, Output};
use gendr::upscaler::{Upscaler, UpscalerConfig};
use serde::Serialize;
use tracing_subscriber::EnvFilter;

const EXAMPLES: &str = "\
Examples:
  ffmpeg -i clip.mp4 -frames:v 20 -pix_fmt yuv420p -f yuv4mpegpipe frames.y4m
  gendr-core-bench --frames frames.y4m --model default --provider cpu
  gendr-core-bench --synthetic 512x512 -n 8 --model gendr-tiny --provider cuda --streams 2
  gendr-core-bench --frames frames.y4m --model tensorrt-model.onnx --provider tensorrt --trt-cache /tmp/trt

Frames per second and megapixels per second are counted at the output. With
--rounds, each run is repeated and the fastest round of each is kept.";

/// No output for this long means the pipeline is stuck.
const STALL: Duration = Duration::from_secs(300);
/// The driver's tool that GPU figures come from.
const NVIDIA_SMI: &str = "nvidia-smi";

#[derive(Parser)]
#[command(version, about, after_help = EXAMPLES)]
struct Args {
    /// Frames decoded beforehand: a YUV4MPEG2 file, 4:2:0 in 8 or 10 bits.
    #[arg(
        long,
        short = 'f',
        conflicts_with = "synthetic",
        required_unless_present = "synthetic"
    )]
    frames: Option<PathBuf>,
    /// Frames drawn here instead, WIDTHxHEIGHT (I420, a fixed textured pattern).
    #[arg(long, value_parser = parse_size)]
    synthetic: Option<(usize, usize)>,
    /// Frames measured: the first N of the file, or N drawn.
    #[arg(long, short = 'n', default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    count: u32,
    /// Preset name or .onnx path.
    #[arg(long, short = 'm', default_value = gendr::presets::DEFAULT_PRESET)]
    model: String,
    /// auto, cpu, cuda or tensorrt.
    #[arg(long, default_value = "auto", value_parser = |s: &str| s.parse::<Provider>())]
    provider: Provider,
    #[arg(long, default_value_t = 0)]
    device_id: i32,
    /// Inference workers, one session each; 0 = 1 on the CPU, 2 on a GPU.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=16))]
    streams: u32,
    /// Intra-op threads per worker; 0 = all cores.
    #[arg(long, default_value_t = 0)]
    threads: u32,
    /// Tile edge in input pixels, context included; 0 = the model's preference.
    #[arg(long, default_value_t = 0)]
    tile: u32,
    /// Context per side in input pixels, raised to the model's minimum.
    #[arg(long, default_value_t = gendr::model::DEFAULT_MIN_OVERLAP as u32)]
    overlap: u32,
    /// Tiles per inference run; 0 = a frame's tiles on a GPU, 1 on the CPU.
    #[arg(long, default_value_t = 0)]
    batch: u32,
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    max_frames_in_flight: u32,
    /// Where TensorRT keeps built engines [default: ~/.cache/gendr/tensorrt].
    #[arg(long)]
    trt_cache: Option<PathBuf>,
    /// Repeat the three runs; the fastest round of each is kept.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
}

fn parse_size(s: &str) -> std::result::Result<(usize, usize), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("{s:?}: expected WIDTHxHEIGHT"))?;
    let side = |v: &str| match v.parse::<usize>() {
        Ok(n) if (2..=8192).contains(&n) => Ok(n),
        _ => Err(format!("{s:?}: each side must be 2 to 8192 pixels")),
    };
    Ok((side(w)?, side(h)?))
}

#[derive(Serialize, Clone, Copy)]
struct Rate {
    fps: f64,
    /// Output megapixels per second.
    mpixels_per_s: f64,
    seconds: f64,
}

/// What the GPU did; absent when the run was on the CPU.
#[derive(Serialize)]
struct Gpu {
    /// Name, driver and memory of the card (`nvidia-smi`); null without it.
    card: Option<GpuInfo>,
    /// Busy share and peak device memory (all processes) during the kept
    /// model-only and pipelined runs; null when nothing was sampled.
    model_only: Option<GpuUsage>,
    pipelined: Option<GpuUsage>,
}

#[derive(Serialize)]
struct Machine {
    #[serde(flatten)]
    host: Host,
    load_average_start: f64,
    load_average_end: f64,
    onnxruntime: String,
}

#[derive(Serialize)]
struct Report {
    tool: &'static str,
    version: &'static str,
    model: String,
    model_path: String,
    precision: &'static str,
    provider_requested: String,
    /// The provider that really ran (never auto).
    provider: String,
    input: String,
    frames: usize,
    format: String,
    input_size: [usize; 2],
    output_size: [usize; 2],
    tile_size: [usize; 2],
    tile_overlap: usize,
    tiles_per_frame: usize,
    tiles_per_run: usize,
    streams: usize,
    threads: u32,
    max_frames_in_flight: u32,
    rounds: u32,
    /// Per round: loading the sessions and their check run (on TensorRT, the
    /// engine build or the cache load for the smallest tile).
    open_seconds: Vec<f64>,
    /// Per round: the first run of the real tile shape on every session,
    /// untimed in the rates (on TensorRT, that shape's engine build or load).
    first_run_seconds: Vec<f64>,
    model_only_fps: f64,
    sequential_fps: f64,
    pipelined_fps: f64,
    pipelined_over_model_only: f64,
    pipelined_over_sequential: f64,
    model_only: Rate,
    sequential: Rate,
    pipelined: Rate,
    /// Largest difference in code values between the pipelined and the
    /// sequential output of the first frame: the two paths must agree.
    pipelined_vs_sequential_max_diff: u16,
    /// VmHWM of the whole process.
    peak_rss_bytes: u64,
    /// VmHWM reset just before the pipelined run (sessions and frames included).
    pipelined_peak_rss_bytes: u64,
    gpu: Option<Gpu>,
    /// Where the GPU figures come from, or why there are none.
    gpu_monitor: String,
    machine: Machine,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("GENDR_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(&args) {
        Ok(report) => match serde_json::to_string_pretty(&report) {
            Ok(json) => {
                println!("{json}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => fail(e.into()),
        },
        Err(e) => fail(e),
    }
}

/// Prints the error and its causes as one line, each cause once (the
/// core's I/O errors repeat their source in their own text).
fn fail(e: anyhow::Error) -> std::process::ExitCode {
    let mut line = String::new();
    for cause in e.chain().map(|c| c.to_string()) {
        if !line.contains(&cause) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&cause);
        }
    }
    eprintln!("gendr-core-bench: {}", line.replace('\n', " "));
    std::process::ExitCode::FAILURE
}

// The rest of EngineOptions stays at its defaults, whatever backends it grows.
#[allow(clippy::needless_update)]
fn config(args: &Args) -> UpscalerConfig {
    UpscalerConfig {
        model: args.model.clone(),
        tile_size: args.tile as usize,
        tile_overlap: args.overlap as usize,
        engine: EngineOptions {
            provider: args.provider,
            device_id: args.device_id,
            threads: args.threads as usize,
            trt_cache: args.trt_cache.clone().or_else(default_trt_cache_root),
            ..EngineOptions::default()
        },
        streams: args.streams as usize,
        batch_size: args.batch as usize,
        temporal: gendr::temporal::TemporalMode::Auto,
    }
}

fn load_frames(args: &Args) -> Result<(Vec<Frame>, String)> {
    let count = args.count as usize;
    match (&args.frames, args.synthetic) {
        (Some(path), _) => Ok((y4m::read(path, count)?, path.display().to_string())),
        (None, Some((w, h))) => Ok((
            (0..count)
                .map(|i| synthetic(w, h, i))
                .collect::<Result<_>>()?,
            format!("synthetic {w}x{h}"),
        )),
        (None, None) => bail!("give --frames FILE.y4m or --synthetic WIDTHxHEIGHT"),
    }
}

/// A textured I420 frame that moves with `index`: gradients, edges and
/// noise, so that a model does its usual work (flat frames can be cheaper).
fn synthetic(width: usize, height: usize, index: usize) -> Result<Frame> {
    let mut frame = Frame::new(PixelFormat::I420, width, height, Colorimetry::default())?;
    let mut state = 0x9E37_79B9u32 ^ index as u32;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state % 24) as usize
    };
    let stride = frame.planes[0].stride;
    for y in 0..height {
        for x in 0..width {
            let ramp = (x + index * 3) * 160 / width + y * 40 / height;
            let edge = if ((x + index) / 16 + y / 16) % 2 == 0 {
                24
            } else {
                0
            };
            frame.planes[0].data[y * stride + x] = (16 + ramp + edge + noise()).min(235) as u8;
        }
    }
    for (p, plane) in frame.planes.iter_mut().enumerate().skip(1) {
        for (i, v) in plane.data.iter_mut().enumerate() {
            *v = (96 + (i * p * 5 / width) % 64) as u8;
        }
    }
    Ok(frame)
}

fn run(args: &Args) -> Result<Report> {
    let config = config(args);
    let (frames, input) = load_frames(args)?;
    let (w, h) = (frames[0].width, frames[0].height);
    if let Some(i) = frames.iter().position(|f| (f.width, f.height) != (w, h)) {
        bail!("frame {i} is not {w}x{h}: one size per run");
    }
    let rgb: Vec<RgbImage> = frames.iter().map(frame_to_rgb).collect();
    let load_start = measure::load_average();
    let mut best: [Option<Rate>; 3] = [None; 3];
    let mut usage: [Option<GpuUsage>; 2] = [None, None];
    let (mut open_seconds, mut first_run_seconds) = (Vec::new(), Vec::new());
    let mut max_diff = 0u16;
    let mut peak = 0u64;
    let mut pipelined_peak = 0u64;
    let mut facts = None;
    let n = frames.len();

    for _ in 0..args.rounds {
        let opened = Instant::now();
        let mut upscaler = Upscaler::open(&config)?;
        open_seconds.push(opened.elapsed().as_secs_f64());
        let assembly = upscaler.assembly.clone();
        let plan = assembly.geometry.plan(w, h)?;
        let s = assembly.scale();
        let out_px = (w * s * h * s) as f64;
        let rate = |t: Duration| Rate {
            fps: n as f64 / t.as_secs_f64(),
            mpixels_per_s: n as f64 * out_px / t.as_secs_f64() / 1e6,
            seconds: t.as_secs_f64(),
        };
        let on_gpu = assembly.provider != Provider::Cpu;
        let monitor = || {
            on_gpu
                .then(|| GpuMonitor::start(NVIDIA_SMI, args.device_id))
                .flatten()
        };
        facts.get_or_insert_with(|| (assembly.clone(), plan.len(), plan.tile_size()));

        let sampler = monitor();
        let started = Instant::now();
        let model_only = measure::model_only(
            upscaler.engines_mut(),
            &assembly.geometry,
            assembly.batch,
            &rgb,
        )?;
        let gpu_model_only = sampler.and_then(|m| m.stop(started, Instant::now()));
        first_run_seconds.push(model_only.warm_up.as_secs_f64());
        if keep_best(&mut best[0], rate(model_only.elapsed)) {
            usage[0] = gpu_model_only;
        }

        let started = Instant::now();
        let mut first_sequential = None;
        for frame in &frames {
            let up = upscaler.upscale_image(&frame_to_rgb(frame))?;
            let out = rgb_to_frame(&up, frame.format, frame.colorimetry)?;
            first_sequential.get_or_insert(out);
        }
        keep_best(&mut best[1], rate(started.elapsed()));

        peak = peak.max(measure::peak_rss()?);
        measure::reset_peak_rss();
        let sampler = monitor();
        let (elapsed, first_piped) = pipelined(upscaler, &frames, args.max_frames_in_flight)?;
        let end = Instant::now();
        let gpu_pipelined = sampler.and_then(|m| m.stop(end - elapsed, end));
        pipelined_peak = pipelined_peak.max(measure::peak_rss()?);
        if keep_best(&mut best[2], rate(elapsed)) {
            usage[1] = gpu_pipelined;
        }
        let first_sequential = first_sequential.context("no frame ran")?;
        max_diff = max_diff.max(max_difference(&first_sequential, &first_piped));
    }
    peak = peak.max(pipelined_peak);
    let (assembly, tiles_per_frame, tile_size) = facts.context("no round ran")?;
    let [Some(a), Some(b), Some(c)] = best else {
        bail!("no round ran");
    };
    let on_gpu = assembly.provider != Provider::Cpu;
    let card = on_gpu
        .then(|| gpu::describe(NVIDIA_SMI, args.device_id))
        .flatten();
    let gpu_monitor = if !on_gpu {
        "not used: the CPU provider ran".to_string()
    } else if card.is_some() {
        format!(
            "{NVIDIA_SMI}, sampled every {} ms",
            gpu::SAMPLE_PERIOD.as_millis()
        )
    } else {
        format!(
            "absent: {NVIDIA_SMI} could not be run or names no GPU {}",
            args.device_id
        )
    };
    let s = assembly.scale();
    Ok(Report {
        tool: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        model: args.model.clone(),
        model_path: assembly.model_path.display().to_string(),
        precision: assembly.info.precision.as_str(),
        provider_requested: args.provider.to_string(),
        provider: assembly.provider.to_string(),
        input,
        frames: n,
        format: format!("{:?}", frames[0].format),
        input_size: [w, h],
        output_size: [w * s, h * s],
        tile_size: [tile_size.0, tile_size.1],
        tile_overlap: assembly.geometry.overlap,
        tiles_per_frame,
        tiles_per_run: assembly.batch.chunk(tiles_per_frame),
        streams: assembly.streams,
        threads: args.threads,
        max_frames_in_flight: args.max_frames_in_flight,
        rounds: args.rounds,
        open_seconds,
        first_run_seconds,
        model_only_fps: a.fps,
        sequential_fps: b.fps,
        pipelined_fps: c.fps,
        pipelined_over_model_only: c.fps / a.fps,
        pipelined_over_sequential: c.fps / b.fps,
        model_only: a,
        sequential: b,
        pipelined: c,
        pipelined_vs_sequential_max_diff: max_diff,
        peak_rss_bytes: peak,
        pipelined_peak_rss_bytes: pipelined_peak,
        gpu: on_gpu.then_some(Gpu {
            card,
            model_only: usage[0],
            pipelined: usage[1],
        }),
        gpu_monitor,
        machine: Machine {
            host: Host::read(),
            load_average_start: load_start,
            load_average_end: measure::load_average(),
            onnxruntime: gendr::runtime::loaded_library()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        },
    })
}

/// Keeps the faster rate; true when `rate` is the new best.
fn keep_best(best: &mut Option<Rate>, rate: Rate) -> bool {
    let better = best.is_none_or(|b| rate.seconds < b.seconds);
    if better {
        *best = Some(rate);
    }
    better
}

/// Runs the frames through the frame pipeline, fed from another thread as a
/// decoder would; returns the time from the first submission to the last
/// frame out, and the first frame out.
fn pipelined(upscaler: Upscaler, frames: &[Frame], in_flight: u32) -> Result<(Duration, Frame)> {
    let pipeline: FramePipeline<usize, ()> = upscaler.start(in_flight as usize)?;
    let started = Instant::now();
    let mut first = None;
    std::thread::scope(|scope| -> Result<()> {
        let feeder = scope.spawn(|| -> gendr::Result<()> {
            for (i, frame) in frames.iter().enumerate() {
                pipeline.submit(frame.clone(), i)?;
            }
            Ok(())
        });
        for expected in 0..frames.len() {
            match pipeline.recv_timeout(STALL)? {
                Some(Output::Frame { frame, meta, .. }) if meta == expected => {
                    first.get_or_insert(frame);
                }
                Some(Output::Frame { meta, .. }) => {
                    bail!("frame {meta} came out where frame {expected} was due")
                }
                Some(Output::Failed { meta, error }) => bail!("frame {meta}: {error}"),
                Some(Output::Marker(())) => bail!("a marker came out that was never sent"),
                None => bail!(
                    "no frame came out of the pipeline for {} s (frame {expected})",
                    STALL.as_secs()
                ),
            }
        }
        feeder
            .join()
            .map_err(|_| anyhow::anyhow!("the feeding thread panicked"))??;
        Ok(())
    })?;
    let elapsed = started.elapsed();
    Ok((elapsed, first.context("no frame came out")?))
}

/// The largest difference between two frames of one format, in code values.
fn max_difference(a: &Frame, b: &Frame) -> u16 {
    let wide = a.format.sample_depth().is_some();
    (0..a.planes.len())
        .flat_map(|p| a.rows(p).zip(b.rows(p)))
        .map(|(ra, rb)| {
            if wide {
                ra.chunks_exact(2)
                    .zip(rb.chunks_exact(2))
                    .map(|(x, y)| {
                        u16::from_le_bytes([x[0], x[1]]).abs_diff(u16::from_le_bytes([y[0], y[1]]))
                    })
                    .max()
                    .unwrap_or(0)
            } else {
                ra.iter()
                    .zip(rb)
                    .map(|(x, y)| u16::from(x.abs_diff(*y)))
                    .max()
                    .unwrap_or(0)
            }
        })
        .max()
        .unwrap_or(0)
}
