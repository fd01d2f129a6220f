//! `gendr bench`: the throughput of one model on one clip, measured three
//! ways in one run, on the same tiles:
//!
//! - model only: the frames, decoded and cut into tiles up front, through
//!   ONNX Runtime alone (one thread per `--streams` session);
//! - sequential: one worker, one stage at a time over the clip: decode and
//!   convert, then tiles → inference → blend, then convert and encode (x264);
//! - pipelined: decodebin → gendrsr → x264enc → mp4mux, the `gendr upscale`
//!   video chain, every stage overlapping the others; run twice, with the
//!   temporal stage off and on, so that its cost shows side by side.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use gendr::frame::RgbImage;
use gendr::gpu::{GpuMonitor, GpuUsage};
use gendr::measure::{self, Host};
use gendr::temporal::{Luma, Stabilizer};
use gendr::upscaler::Upscaler;
use gst::prelude::*;
use serde::Serialize;

use crate::media::{self, RemoveOnDrop};
use crate::upscale::{SrOptions, DEFAULT_CRF, DEFAULT_PRESET};

const EXAMPLES: &str = "\
Examples:
  gendr bench
  gendr bench --model fast --frames 20 --json
  gendr bench --input clip.mp4 --streams 2 --threads 1 --rounds 3
  gendr bench --provider cuda --model default-x4

Model only runs ONNX Runtime on tiles cut up front; sequential runs decode,
upscale and encode one after the other; pipelined runs the `gendr upscale`
video chain (x264 at CRF 18, preset medium; no audio) into a temporary file,
once with gendrsr's temporal stage off and once on (pipelined is the one the
options choose; --temporal on|off|auto). Frames per second and megapixels per
second are counted at the output.
With --rounds, each measurement is repeated and the fastest round is kept.";

/// The sample clip measured when none is given (under `samples/`).
const DEFAULT_INPUT: &str = "bbb_320x180_2s.mp4";
/// The x264 settings of `gendr upscale`'s defaults (`--crf 18 --preset medium`).

#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Clip to measure (its first --frames frames) [default: the installed or checkout sample bbb_320x180_2s.mp4].
    #[arg(long, short = 'i')]
    input: Option<PathBuf>,
    /// Frames measured, from the start of the clip.
    #[arg(long, short = 'n', default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    frames: u32,
    /// Repeat the three measurements; the fastest round of each is kept.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sr: SrOptions,
}

/// One way of running the clip.
#[derive(Serialize, Clone, Copy)]
struct Rate {
    fps: f64,
    /// Output megapixels per second.
    mpixels_per_s: f64,
    seconds: f64,
}

/// Where the sequential run spent its time, in seconds.
#[derive(Serialize, Clone, Copy, Default)]
struct Stages {
    decode_convert: f64,
    tiles_infer_blend: f64,
    convert_encode: f64,
    /// The temporal stage alone over the upscaled frames (not in the total).
    temporal_stage: f64,
}

#[derive(Serialize)]
struct Machine {
    #[serde(flatten)]
    host: Host,
    /// 1-minute load average before and after: other work on the machine.
    load_average_start: f64,
    load_average_end: f64,
    onnxruntime: String,
    gstreamer: String,
}

#[derive(Serialize)]
struct Report {
    model: String,
    model_path: String,
    input: String,
    #[serde(flatten)]
    facts: Facts,
    threads: u32,
    max_frames_in_flight: u32,
    rounds: u32,
    model_only_fps: f64,
    sequential_fps: f64,
    pipeline_fps: f64,
    pipeline_over_model_only: f64,
    pipeline_over_sequential: f64,
    model_only: Rate,
    sequential: Rate,
    pipeline: Rate,
    /// Whether `pipeline` ran with the temporal stage (the options' choice).
    temporal: bool,
    pipeline_temporal_off: Rate,
    pipeline_temporal_on: Rate,
    /// Pipelined fps with the stage on over off.
    temporal_on_over_off: f64,
    sequential_stages_s: Stages,
    /// VmHWM: the peak resident memory of this whole process.
    peak_rss_bytes: u64,
    /// VmHWM reset just before the pipelined run: its peak, the model's
    /// sessions, the libraries and the process's baseline included.
    pipeline_peak_rss_bytes: u64,
    /// On a GPU, what it did during the kept pipelined run (`nvidia-smi`);
    /// null on the CPU or without the tool.
    pipeline_gpu: Option<GpuUsage>,
    machine: Machine,
}

pub fn run(args: Args) -> Result<()> {
    let input = input_path(args.input.as_deref())?;
    media::discover(&input)?;
    args.sr.validate()?;
    let config = args.sr.upscaler_config();
    let model_path = gendr::presets::resolve(&config.model)?;
    let load_start = measure::load_average();
    let mut peak = 0u64;

    // Model only, sequential, pipelined with the temporal stage off and on.
    let mut best: [Option<Rate>; 4] = [None; 4];
    let mut stages = Stages::default();
    let mut facts = None;
    let mut gpu = None;
    let mut temporal = false;
    for _ in 0..args.rounds {
        let frames = decode(&input, args.frames as usize)?.0;
        let (w, h) = (frames[0].width, frames[0].height);
        // The sessions, geometry and batch gendrsr builds for these options.
        let mut upscaler = Upscaler::open(&config)?;
        let assembly = upscaler.assembly.clone();
        temporal = assembly.temporal.is_some();
        let (geometry, batch) = (assembly.geometry, assembly.batch);
        let on_gpu = !assembly.provider.on_cpu();
        let plan = geometry.plan(w, h)?;
        let out_px = (w * geometry.scale * h * geometry.scale) as f64;
        let rate = |n: usize, t: Duration| Rate {
            fps: n as f64 / t.as_secs_f64(),
            mpixels_per_s: n as f64 * out_px / t.as_secs_f64() / 1e6,
            seconds: t.as_secs_f64(),
        };
        facts.get_or_insert_with(|| Facts {
            provider: assembly.provider.to_string(),
            precision: assembly.precision.map(|p| p.to_string()),
            runs_on: assembly.runs_on(),
            frames: frames.len(),
            input_size: [w, h],
            output_size: [w * geometry.scale, h * geometry.scale],
            tile_size: [plan.tile_size().0, plan.tile_size().1],
            tile_overlap: geometry.overlap,
            tiles_per_frame: plan.len(),
            tiles_per_run: batch.chunk(plan.len()),
            streams: assembly.streams,
        });

        let model_only = measure::model_only(upscaler.engines_mut(), &geometry, batch, &frames)?;
        keep_best(&mut best[0], rate(frames.len(), model_only.elapsed));

        // One worker: the first session.
        let n = frames.len();
        let (_, decode_time) = decode(&input, n)?;
        let started = Instant::now();
        let upscaled = frames
            .iter()
            .map(|f| upscaler.upscale_image(f))
            .collect::<gendr::Result<Vec<_>>>()?;
        let infer_time = started.elapsed();
        let mut stage = Stabilizer::new(assembly.temporal.unwrap_or_default());
        let started = Instant::now();
        for (frame, output) in frames.iter().zip(&upscaled) {
            stage.process(Luma::from_rgb(frame), output.clone());
        }
        let temporal_time = started.elapsed();
        drop((frames, upscaler));
        let encode_time = encode(&upscaled, &input)?;
        drop(upscaled);
        let total = decode_time + infer_time + encode_time;
        if best[1].is_none_or(|b| total.as_secs_f64() < b.seconds) {
            stages = Stages {
                decode_convert: decode_time.as_secs_f64(),
                tiles_infer_blend: infer_time.as_secs_f64(),
                convert_encode: encode_time.as_secs_f64(),
                temporal_stage: temporal_time.as_secs_f64(),
            };
        }
        keep_best(&mut best[1], rate(n, total));

        peak = peak.max(measure::peak_rss()?);
        measure::reset_peak_rss();
        for (slot, stage_on) in [(2, false), (3, true)] {
            let (piped, count, usage) = pipelined(&input, n, &args.sr, on_gpu, stage_on)?;
            if count != n {
                bail!("the pipelined run put out {count} frames, not {n}");
            }
            if stage_on == temporal && best[slot].is_none_or(|b| piped.as_secs_f64() < b.seconds) {
                gpu = usage;
            }
            keep_best(&mut best[slot], rate(n, piped));
        }
    }
    let pipeline_peak = measure::peak_rss()?;
    peak = peak.max(pipeline_peak);
    let facts = facts.context("no round ran")?;
    let [Some(a), Some(b), Some(off), Some(on)] = best else {
        bail!("no round ran");
    };
    let c = if temporal { on } else { off };
    let report = Report {
        model: args.sr.model.clone(),
        model_path: model_path.display().to_string(),
        input: input.display().to_string(),
        facts,
        threads: args.sr.threads,
        max_frames_in_flight: args.sr.max_frames_in_flight,
        rounds: args.rounds,
        model_only_fps: a.fps,
        sequential_fps: b.fps,
        pipeline_fps: c.fps,
        pipeline_over_model_only: c.fps / a.fps,
        pipeline_over_sequential: c.fps / b.fps,
        model_only: a,
        sequential: b,
        pipeline: c,
        temporal,
        pipeline_temporal_off: off,
        pipeline_temporal_on: on,
        temporal_on_over_off: on.fps / off.fps,
        sequential_stages_s: stages,
        peak_rss_bytes: peak,
        pipeline_peak_rss_bytes: pipeline_peak,
        pipeline_gpu: gpu,
        machine: machine(load_start),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

/// What the first round learnt about the run.
#[derive(Serialize)]
struct Facts {
    /// The provider that really ran (never auto).
    provider: String,
    /// OpenVINO's arithmetic (never auto); null on ONNX Runtime.
    precision: Option<String>,
    /// Provider, precision and CPU in words, for the table.
    #[serde(skip)]
    runs_on: String,
    frames: usize,
    input_size: [usize; 2],
    output_size: [usize; 2],
    tile_size: [usize; 2],
    tile_overlap: usize,
    tiles_per_frame: usize,
    /// Tiles in one inference run (`--batch`, or the model's fixed batch).
    tiles_per_run: usize,
    /// Inference workers (`--streams`, 0 resolved).
    streams: usize,
}

fn keep_best(best: &mut Option<Rate>, rate: Rate) {
    if best.is_none_or(|b| rate.seconds < b.seconds) {
        *best = Some(rate);
    }
}

/// The given clip, or the sample clip: installed with gendr
/// (`…/share/gendr/samples`) or in the checkout's `samples/`.
fn input_path(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    gendr::locate::first_present(&gendr::locate::data(None, "samples", DEFAULT_INPUT))
        .map(|c| c.path.clone())
        .ok_or_else(|| anyhow!("sample {DEFAULT_INPUT} not found; pass --input CLIP"))
}

fn pipeline_of(description: &str) -> Result<gst::Pipeline> {
    gst::parse::launch(description)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow!("not a pipeline"))
}

fn gst_quote(path: &Path) -> String {
    format!("\"{}\"", path.display().to_string().replace('"', "\\\""))
}

/// Decodes the first `max` frames to RGB (as `gendr eval` does, its probe of
/// the file included); returns them and the time taken.
fn decode(path: &Path, max: usize) -> Result<(Vec<RgbImage>, Duration)> {
    let started = Instant::now();
    let frames = media::decode_rgb(path, max, 1)?;
    Ok((frames, started.elapsed()))
}

/// Waits for the end of the stream or the first error.
fn wait_eos(pipeline: &gst::Pipeline, what: &Path) -> Result<()> {
    let bus = pipeline.bus().context("pipeline bus")?;
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::NONE,
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .context("the bus closed")?;
    match msg.view() {
        gst::MessageView::Error(e) => bail!("{}: {}", what.display(), media::error_text(e)),
        _ => Ok(()),
    }
}

/// A temporary output file, removed when dropped.
/// A scratch MP4 for one measurement, removed afterwards.
fn scratch(tag: &str) -> RemoveOnDrop {
    RemoveOnDrop::new(
        std::env::temp_dir().join(format!("gendr-bench-{}-{tag}.mp4", std::process::id())),
    )
}

fn encoder_chain() -> String {
    format!(
        "videoconvert ! x264enc pass=qual quantizer={DEFAULT_CRF} speed-preset={DEFAULT_PRESET} \
         ! h264parse ! mp4mux"
    )
}

/// Converts and encodes the frames into a temporary MP4; returns the time taken.
fn encode(frames: &[RgbImage], input: &Path) -> Result<Duration> {
    let out = scratch("sequential");
    let (w, h) = (frames[0].width, frames[0].height);
    let pipeline = pipeline_of(&format!(
        "appsrc name=src format=time caps=video/x-raw,format=RGB,width={w},height={h},framerate=25/1 \
         ! {} ! filesink location={}",
        encoder_chain(),
        gst_quote(out.path())
    ))?;
    let src = pipeline
        .by_name("src")
        .and_then(|s| s.downcast::<gst_app::AppSrc>().ok())
        .context("appsrc")?;
    let started = Instant::now();
    pipeline.set_state(gst::State::Playing)?;
    let frame_time = gst::ClockTime::from_mseconds(40);
    for (i, frame) in frames.iter().enumerate() {
        let mut buffer = gst::Buffer::from_mut_slice(frame.to_rgb8());
        {
            let b = buffer.get_mut().context("buffer")?;
            b.set_pts(frame_time * i as u64);
            b.set_duration(frame_time);
        }
        src.push_buffer(buffer)
            .map_err(|e| anyhow!("encoding: {e:?}"))?;
    }
    src.end_of_stream()
        .map_err(|e| anyhow!("encoding: {e:?}"))?;
    let result = wait_eos(&pipeline, input);
    let elapsed = started.elapsed();
    pipeline.set_state(gst::State::Null)?;
    result.map(|()| elapsed)
}

/// Runs the first `frames` frames through the `gendr upscale` video chain;
/// returns the time from the first frame into gendrsr to the end of the
/// file, and the number of frames gendrsr put out.
/// The pipelined run: its time from the first frame into gendrsr to the end
/// of the stream, the frames that came out, and on a GPU what it did then.
fn pipelined(
    input: &Path,
    frames: usize,
    sr: &SrOptions,
    on_gpu: bool,
    temporal: bool,
) -> Result<(Duration, usize, Option<GpuUsage>)> {
    let out = scratch("pipelined");
    let pipeline = pipeline_of(&format!(
        "filesrc location={} ! decodebin ! queue name=queue_in ! videoconvert name=convert_in",
        gst_quote(input)
    ))?;
    let tail = gst::parse::bin_from_description(
        &format!(
            "{} ! queue ! filesink location={}",
            encoder_chain(),
            gst_quote(out.path())
        ),
        true,
    )?;
    let element = sr.element()?;
    element.set_property_from_str("temporal", if temporal { "on" } else { "off" });
    pipeline.add_many([&element, tail.upcast_ref()])?;
    let convert_in = pipeline.by_name("convert_in").context("videoconvert")?;
    gst::Element::link_many([&convert_in, &element, tail.upcast_ref()])?;

    // The clip ends after `frames` frames: the next one is dropped and an
    // end of stream goes down instead.
    let passed = AtomicUsize::new(0);
    let queue_in = pipeline.by_name("queue_in").context("queue")?;
    queue_in
        .static_pad("sink")
        .context("queue sink")?
        .add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let n = passed.fetch_add(1, Ordering::Relaxed);
            if n < frames {
                return gst::PadProbeReturn::Ok;
            }
            if n == frames {
                pad.send_event(gst::event::Eos::new());
            }
            info.data.take();
            info.flow_res = Err(gst::FlowError::Eos);
            gst::PadProbeReturn::Handled
        });
    let first_in: Arc<Mutex<Option<Instant>>> = Arc::default();
    let out_count = media::count_output(&element)?;
    {
        let first_in = first_in.clone();
        element
            .static_pad("sink")
            .context("gendrsr sink")?
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                first_in
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert_with(Instant::now);
                gst::PadProbeReturn::Ok
            });
    }
    let monitor = on_gpu
        .then(|| GpuMonitor::start("nvidia-smi", sr.device_id))
        .flatten();
    pipeline.set_state(gst::State::Playing)?;
    let result = wait_eos(&pipeline, input);
    let ended = Instant::now();
    pipeline.set_state(gst::State::Null)?;
    result?;
    let started = first_in
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .context("no frame reached gendrsr")?;
    let gpu = monitor.and_then(|m| m.stop(started, ended));
    Ok((
        ended - started,
        out_count.load(Ordering::Relaxed) as usize,
        gpu,
    ))
}

fn machine(load_average_start: f64) -> Machine {
    Machine {
        host: Host::read(),
        load_average_start,
        load_average_end: measure::load_average(),
        onnxruntime: gendr::runtime::loaded_library()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        gstreamer: gst::version_string().to_string(),
    }
}

fn print_table(r: &Report) {
    let f = &r.facts;
    println!(
        "{} ({}, {}): {} frames {}x{} → {}x{}, {} tiles of {}x{} (overlap {}), {} per run, streams {}, threads {}",
        r.model,
        f.runs_on,
        r.input,
        f.frames,
        f.input_size[0],
        f.input_size[1],
        f.output_size[0],
        f.output_size[1],
        f.tiles_per_frame,
        f.tile_size[0],
        f.tile_size[1],
        f.tile_overlap,
        f.tiles_per_run,
        f.streams,
        if r.threads == 0 { "all".to_string() } else { r.threads.to_string() },
    );
    println!("{:<12} {:>9} {:>9} {:>9}", "run", "fps", "MP/s", "seconds");
    for (name, rate) in [
        ("model only", r.model_only),
        ("sequential", r.sequential),
        ("pipelined", r.pipeline),
    ] {
        println!(
            "{name:<12} {:>9.2} {:>9.2} {:>9.2}",
            rate.fps, rate.mpixels_per_s, rate.seconds
        );
    }
    println!(
        "pipelined, temporal stage off {:.2} fps, on {:.2} fps: on / off {:.3} (pipelined above: {})",
        r.pipeline_temporal_off.fps,
        r.pipeline_temporal_on.fps,
        r.temporal_on_over_off,
        if r.temporal { "on" } else { "off" }
    );
    let s = r.sequential_stages_s;
    println!(
        "sequential stages: decode+convert {:.2} s, tiles+infer+blend {:.2} s, convert+encode {:.2} s; temporal stage alone {:.3} s",
        s.decode_convert, s.tiles_infer_blend, s.convert_encode, s.temporal_stage
    );
    println!(
        "pipelined / model only {:.3}, pipelined / sequential {:.3}",
        r.pipeline_over_model_only, r.pipeline_over_sequential
    );
    println!(
        "peak RSS {:.0} MiB (pipelined run {:.0} MiB); {} ({} CPUs), load {:.2} → {:.2}",
        r.peak_rss_bytes as f64 / 1048576.0,
        r.pipeline_peak_rss_bytes as f64 / 1048576.0,
        r.machine.host.cpu,
        r.machine.host.logical_cpus,
        r.machine.load_average_start,
        r.machine.load_average_end
    );
    if let Some(g) = r.pipeline_gpu {
        println!(
            "GPU during the pipelined run: busy {:.1} % ({} samples), peak memory {:.0} MiB",
            g.busy_percent,
            g.samples,
            g.memory_peak_bytes as f64 / 1048576.0
        );
    }
}
