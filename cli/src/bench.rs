//! `gendr bench`: the throughput of one model on one clip, measured three
//! ways in one run, on the same tiles:
//!
//! - model only: the frames, decoded and cut into tiles up front, through
//!   the engine alone (one thread per `--streams` session);
//! - sequential: one worker, one stage at a time over the clip: decode and
//!   convert, then tiles → inference → blend, then convert and encode (x264);
//! - pipelined: decodebin → gendrsr → x264enc → mp4mux, the `gendr upscale`
//!   video chain, every stage overlapping the others; run twice, with the
//!   temporal stage off and on, so that its cost shows side by side, and
//!   once more with the encoder left out (into fakesink), so that the
//!   pipeline's own cost shows apart from x264's.
//!
//! Each run also counts the CPU time its threads used, by thread name:
//! on a shared machine wall time says little about where the time goes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use gendr::frame::RgbImage;
use gendr::gpu::{GpuMonitor, GpuUsage};
use gendr::measure::{self, Host, ThreadCpu, ThreadTimes};
use gendr::temporal::{Stabilizer, TemporalConfig};
use gendr::upscaler::Upscaler;
use gst::prelude::*;
use serde::Serialize;

use crate::media::{self, RemoveOnDrop};
use crate::upscale::{SrOptions, DEFAULT_CRF, DEFAULT_PRESET, PRESETS};

const EXAMPLES: &str = "\
Examples:
  gendr bench
  gendr bench --model fast --frames 20 --json
  gendr bench --input clip.mp4 --streams 2 --threads 1 --rounds 3
  gendr bench --provider cuda --model default-x4
  gendr bench --provider openvino --preset veryfast

Model only runs the engine (ONNX Runtime or OpenVINO) on tiles cut up front;
sequential runs decode, upscale and encode one after the other; pipelined
runs the `gendr upscale` video chain (x264 at CRF 18, preset medium unless
--preset; no audio) into a temporary file, once with gendrsr's temporal
stage off and once on (pipelined is the one the options choose; --temporal
on|off|auto), and once into fakesink instead of the encoder. Frames per
second and megapixels per second are counted at the output; CPU seconds
per frame are summed over the process's threads.
With --rounds, each measurement is repeated and the fastest round is kept.";

/// The sample clip measured when none is given (under `samples/`).
const DEFAULT_INPUT: &str = "bbb_320x180_2s.mp4";

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
    /// x264 speed preset of the sequential and pipelined runs, as `gendr
    /// upscale --preset` (CRF 18 either way).
    #[arg(long, default_value = DEFAULT_PRESET,
          value_parser = clap::builder::PossibleValuesParser::new(PRESETS))]
    preset: String,
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
    /// CPU time of the convert + encode stage, all its threads (x264 runs
    /// several): what the encoder costs the pipelined run.
    convert_encode_cpu: f64,
}

/// Where the CPU went in one run.
#[derive(Serialize, Clone, Default)]
struct CpuUse {
    /// All threads of the process, per output frame.
    cpu_s_per_frame: f64,
    /// By thread name, the busiest first (whole run, not per frame; threads
    /// that ended before the end of the run are only in the total).
    by_thread: Vec<ThreadCpu>,
}

/// Threads that are not the model's: gendrsr's own stages, and GStreamer's
/// streaming threads (`element:pad`) with those they start (x264's).
fn outside_the_model(thread: &str) -> bool {
    thread.contains(':') || thread == "gendr-prepare" || thread == "gendr-stitch"
}

impl CpuUse {
    fn model_share(&self, frames: usize) -> f64 {
        let total = self.cpu_s_per_frame * frames as f64;
        let outside: f64 = self
            .by_thread
            .iter()
            .filter(|t| outside_the_model(&t.name))
            .map(|t| t.cpu_s)
            .sum();
        1.0 - outside / total
    }

    fn between(before: &ThreadTimes, after: &ThreadTimes, frames: usize) -> CpuUse {
        CpuUse {
            cpu_s_per_frame: after.total_since(before).as_secs_f64() / frames as f64,
            by_thread: after.since(before),
        }
    }
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
    /// x264's speed preset in the sequential and pipelined runs.
    x264_preset: String,
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
    /// The pipelined run (temporal stage as chosen) into fakesink: decode,
    /// gendrsr and the colour conversions, no encoder.
    pipeline_no_encoder: Rate,
    pipeline_no_encoder_over_model_only: f64,
    /// From gendrsr's last frame out to the end of the stream in the kept
    /// pipelined run: x264 holds frames back (at preset medium 47 of them:
    /// its 40-frame look-ahead, B-frames and frame threads) and encodes them only
    /// then, with the model done.
    pipeline_encoder_drain_s: f64,
    /// The share of the pipelined run's CPU time spent in the model's
    /// threads: all but gendrsr's prepare and stitch stages and GStreamer's
    /// streaming threads (and those they start, x264's). Where the model
    /// alone keeps every core busy, c/a can be no higher; unlike the
    /// wall-clock ratio, one run's load does not scramble it.
    pipeline_model_cpu_share: f64,
    /// CPU time of the kept model-only and pipelined runs.
    model_only_cpu: CpuUse,
    pipeline_cpu: CpuUse,
    pipeline_no_encoder_cpu: CpuUse,
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

    // Model only, sequential, pipelined with the temporal stage off and on,
    // pipelined into fakesink.
    let mut best: [Option<Rate>; 5] = [None; 5];
    let (mut model_only_cpu, mut pipeline_cpu, mut no_encoder_cpu) = Default::default();
    let mut drain = Duration::ZERO;
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

        let before = ThreadTimes::read();
        let model_only = measure::model_only(upscaler.engines_mut(), &geometry, batch, &frames)?;
        let after = ThreadTimes::read();
        if best[0].is_none_or(|b| model_only.elapsed.as_secs_f64() < b.seconds) {
            model_only_cpu = CpuUse::between(&before, &after, frames.len());
        }
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
        let mut stage = Stabilizer::new(
            assembly
                .temporal
                .unwrap_or_else(|| TemporalConfig::for_model(&config.model)),
        );
        let started = Instant::now();
        for (frame, output) in frames.iter().zip(&upscaled) {
            stage.process(frame, output.clone());
        }
        let temporal_time = started.elapsed();
        drop((frames, upscaler));
        let before = ThreadTimes::read();
        let encode_time = encode(&upscaled, &input, &args.preset)?;
        let encode_cpu = ThreadTimes::read().total_since(&before);
        drop(upscaled);
        let total = decode_time + infer_time + encode_time;
        if best[1].is_none_or(|b| total.as_secs_f64() < b.seconds) {
            stages = Stages {
                decode_convert: decode_time.as_secs_f64(),
                tiles_infer_blend: infer_time.as_secs_f64(),
                convert_encode: encode_time.as_secs_f64(),
                temporal_stage: temporal_time.as_secs_f64(),
                convert_encode_cpu: encode_cpu.as_secs_f64(),
            };
        }
        keep_best(&mut best[1], rate(n, total));

        peak = peak.max(measure::peak_rss()?);
        measure::reset_peak_rss();
        for (slot, stage_on, encoder) in [(2, false, true), (3, true, true), (4, temporal, false)] {
            let encoder = encoder.then_some(args.preset.as_str());
            let run = pipelined(&input, n, &args.sr, on_gpu, stage_on, encoder)?;
            if run.frames != n {
                bail!("the pipelined run put out {} frames, not {n}", run.frames);
            }
            if best[slot].is_none_or(|b| run.elapsed.as_secs_f64() < b.seconds) {
                if encoder.is_none() {
                    no_encoder_cpu = run.cpu;
                } else if stage_on == temporal {
                    gpu = run.gpu;
                    pipeline_cpu = run.cpu;
                    drain = run.drain;
                }
            }
            keep_best(&mut best[slot], rate(n, run.elapsed));
        }
    }
    let pipeline_peak = measure::peak_rss()?;
    peak = peak.max(pipeline_peak);
    let facts = facts.context("no round ran")?;
    let [Some(a), Some(b), Some(off), Some(on), Some(no_encoder)] = best else {
        bail!("no round ran");
    };
    let c = if temporal { on } else { off };
    let n_frames = facts.frames;
    let report = Report {
        model: args.sr.model.clone(),
        model_path: model_path.display().to_string(),
        input: input.display().to_string(),
        facts,
        threads: args.sr.threads,
        max_frames_in_flight: args.sr.max_frames_in_flight,
        rounds: args.rounds,
        x264_preset: args.preset.clone(),
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
        pipeline_no_encoder: no_encoder,
        pipeline_no_encoder_over_model_only: no_encoder.fps / a.fps,
        pipeline_encoder_drain_s: drain.as_secs_f64(),
        pipeline_model_cpu_share: pipeline_cpu.model_share(n_frames),
        model_only_cpu,
        pipeline_cpu,
        pipeline_no_encoder_cpu: no_encoder_cpu,
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

fn encoder_chain(preset: &str) -> String {
    format!(
        "videoconvert ! x264enc pass=qual quantizer={DEFAULT_CRF} speed-preset={preset} \
         ! h264parse ! mp4mux"
    )
}

/// Converts and encodes the frames into a temporary MP4; returns the time taken.
fn encode(frames: &[RgbImage], input: &Path, preset: &str) -> Result<Duration> {
    let out = scratch("sequential");
    let (w, h) = (frames[0].width, frames[0].height);
    let pipeline = pipeline_of(&format!(
        "appsrc name=src format=time caps=video/x-raw,format=RGB,width={w},height={h},framerate=25/1 \
         ! {} ! filesink location={}",
        encoder_chain(preset),
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

/// One pipelined run.
struct Piped {
    /// From the first frame into gendrsr to the end of the stream.
    elapsed: Duration,
    /// Frames gendrsr put out.
    frames: usize,
    /// From gendrsr's last frame out to the end of the stream.
    drain: Duration,
    cpu: CpuUse,
    /// On a GPU, what it did meanwhile.
    gpu: Option<GpuUsage>,
}

/// Runs the first `frames` frames through the `gendr upscale` video chain,
/// x264 at `encoder`'s preset, or with none into fakesink instead of x264
/// and the muxer.
/// Model loading and gendrsr's warm-up run come before the clock starts.
fn pipelined(
    input: &Path,
    frames: usize,
    sr: &SrOptions,
    on_gpu: bool,
    temporal: bool,
    encoder: Option<&str>,
) -> Result<Piped> {
    let out = scratch("pipelined");
    let pipeline = pipeline_of(&format!(
        "filesrc location={} ! decodebin ! queue name=queue_in ! videoconvert name=convert_in",
        gst_quote(input)
    ))?;
    let tail = match encoder {
        Some(preset) => format!(
            "{} ! queue ! filesink location={}",
            encoder_chain(preset),
            gst_quote(out.path())
        ),
        None => "videoconvert ! fakesink".to_string(),
    };
    let tail = gst::parse::bin_from_description(&tail, true)?;
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
    // When the first frame reached gendrsr, and the threads' CPU time then.
    let first_in: Arc<Mutex<Option<(Instant, ThreadTimes)>>> = Arc::default();
    let last_out: Arc<Mutex<Option<Instant>>> = Arc::default();
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
                    .get_or_insert_with(|| (Instant::now(), ThreadTimes::read()));
                gst::PadProbeReturn::Ok
            });
        let last_out = last_out.clone();
        element.static_pad("src").context("gendrsr src")?.add_probe(
            gst::PadProbeType::BUFFER,
            move |_, _| {
                *last_out.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                gst::PadProbeReturn::Ok
            },
        );
    }
    let monitor = on_gpu
        .then(|| GpuMonitor::start("nvidia-smi", sr.device_id))
        .flatten();
    pipeline.set_state(gst::State::Playing)?;
    let result = wait_eos(&pipeline, input);
    let ended = Instant::now();
    // Before the state change ends the streaming and encoder threads.
    let cpu_end = ThreadTimes::read();
    pipeline.set_state(gst::State::Null)?;
    result?;
    let (started, cpu_start) = first_in
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .context("no frame reached gendrsr")?;
    let last_out = last_out
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .unwrap_or(ended);
    let frames = out_count.load(Ordering::Relaxed) as usize;
    Ok(Piped {
        elapsed: ended - started,
        frames,
        drain: ended.saturating_duration_since(last_out),
        cpu: CpuUse::between(&cpu_start, &cpu_end, frames.max(1)),
        gpu: monitor.and_then(|m| m.stop(started, ended)),
    })
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
        "{} ({}, {}): {} frames {}x{} → {}x{}, {} tiles of {}x{} (overlap {}), {} per run, streams {}, threads {}, x264 {}",
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
        r.x264_preset,
    );
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>11}",
        "run", "fps", "MP/s", "seconds", "CPU s/frame"
    );
    for (name, rate, cpu) in [
        ("model only", r.model_only, Some(&r.model_only_cpu)),
        ("sequential", r.sequential, None),
        ("pipelined", r.pipeline, Some(&r.pipeline_cpu)),
        (
            "pipelined, no encoder",
            r.pipeline_no_encoder,
            Some(&r.pipeline_no_encoder_cpu),
        ),
    ] {
        let cpu = cpu.map_or("".to_string(), |c| format!("{:.4}", c.cpu_s_per_frame));
        println!(
            "{name:<22} {:>9.2} {:>9.2} {:>9.2} {cpu:>11}",
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
        "sequential stages: decode+convert {:.2} s, tiles+infer+blend {:.2} s, convert+encode {:.2} s ({:.2} CPU s); temporal stage alone {:.3} s",
        s.decode_convert, s.tiles_infer_blend, s.convert_encode, s.convert_encode_cpu, s.temporal_stage
    );
    let threads = |c: &CpuUse| {
        c.by_thread
            .iter()
            .take(8)
            .map(|t| format!("{} ×{} {:.2}", t.name, t.threads, t.cpu_s))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "CPU s by thread, model only: {}",
        threads(&r.model_only_cpu)
    );
    println!("CPU s by thread, pipelined: {}", threads(&r.pipeline_cpu));
    println!(
        "pipelined / model only {:.3} (the model's share of the pipelined run's CPU, its bound on busy cores: {:.3}), pipelined / sequential {:.3}, no encoder / model only {:.3}; encoder drain after gendrsr's last frame {:.2} s",
        r.pipeline_over_model_only,
        r.pipeline_model_cpu_share,
        r.pipeline_over_sequential,
        r.pipeline_no_encoder_over_model_only,
        r.pipeline_encoder_drain_s
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
