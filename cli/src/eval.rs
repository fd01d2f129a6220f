//! `gendr eval`: how much better than bicubic a model restores a reference.
//!
//! Each reference frame is cropped to a multiple of the scale, shrunk by
//! bicubic (antialiased, Keys a = −0.5) and rounded to 8 bits, the way a
//! low-resolution video would hold it. The model and bicubic then upscale it
//! back; both results are rounded to 8 bits and compared with the reference
//! (PSNR and SSIM, on RGB and on BT.601 luma) and scored on their own (NIQE).
//! For a video, a run of consecutive frames also gives the temporal score:
//! how far each output's frame-to-frame change strays from the reference's.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use gendr::engine::{ComputePrecision, EngineOptions, Provider};
use gendr::frame::RgbImage;
use gendr::metrics::{quality, shimmer, temporal_difference, Quality};
use gendr::model::DEFAULT_MIN_OVERLAP;
use gendr::niqe::niqe_rgb;
use gendr::presets::DEFAULT_PRESET;
use gendr::resize::bicubic;
use gendr::temporal::{Stabilizer, TemporalConfig};
use gendr::upscaler::{Upscaler, UpscalerConfig};
use serde::Serialize;

use crate::media;

const EXAMPLES: &str = "\
Examples:
  gendr eval tests/data/eval/coffee.png
  gendr eval --model fast --out fast-vs-bicubic.png tests/data/eval/bikes_f120.png
  gendr eval --frames 5 --json clip.mp4 > scores.json
  gendr eval -m default -m fast -m anime samples/bbb_320x180_2s.mp4
  gendr eval --no-reference -m default -m fast low-resolution.mp4
  gendr eval --model path/to/model.onnx --scale 2 --tile 128 photo.jpg

The reference is the ground truth: it is shrunk by the model's scale, upscaled
again by the model and by bicubic, and both are compared with it. The gain in
Y-PSNR over bicubic is the headline number. Y is full-range BT.601 luma, so
Y-PSNR reads about 1.3 dB below papers that use studio-range Y; gains are the
same (docs/eval.md). NIQE needs no reference (lower looks more natural; frames
above 193x193 only); temporal is flicker against the reference's own motion
(lower is steadier).";

/// The largest side of each panel in the side-by-side picture.
const PANEL: usize = 256;
/// Pixels of white between panels.
const GAP: usize = 4;

#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Reference image (PNG, JPEG) or video at full resolution.
    reference: PathBuf,
    /// Model preset (see `gendr models`) or path to an .onnx file; repeat to
    /// compare several in one table.
    #[arg(long, short = 'm', default_value = DEFAULT_PRESET)]
    model: Vec<String>,
    /// Upscale factor to check for; it must equal every model's (default: the model's).
    #[arg(long)]
    scale: Option<usize>,
    /// Frames of a video to evaluate, spread evenly over it; ignored for images.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    frames: u16,
    /// Consecutive frames from the start of a video for the temporal score
    /// (0 = none); ignored for images.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(0..=1000))]
    temporal_frames: u16,
    /// Side-by-side PNG (bicubic | model | reference, centre crop, one row per
    /// frame; with several models one row of the first frame, bicubic | each
    /// model | reference; no reference panel with --no-reference)
    /// [default: <reference stem>-eval.png in the current folder].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the scores as JSON instead of a table (one object; an array of
    /// them, one per model, with several models).
    #[arg(long)]
    json: bool,
    /// Tile edge in low-resolution pixels (0 = the model's preference).
    #[arg(long, default_value_t = 0)]
    tile: usize,
    /// Context around each tile in low-resolution pixels (raised to the model's minimum).
    #[arg(long, default_value_t = DEFAULT_MIN_OVERLAP)]
    overlap: usize,
    /// CPU threads for inference (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// CPU backend: cpu (ONNX Runtime) or openvino; eval stays on the CPU so
    /// that its scores are about the model, not the machine.
    #[arg(long, default_value = "cpu", value_parser = cpu_provider)]
    provider: Provider,
    /// OpenVINO's arithmetic: auto (bf16 where the CPU has it), fp32 or bf16;
    /// compare bf16 with fp32 by running eval once with each.
    #[arg(long, default_value = "auto", value_parser = |s: &str| s.parse::<ComputePrecision>())]
    precision: ComputePrecision,
    /// The input is low-resolution footage with no ground truth: upscale it as
    /// it is and measure only NIQE and, for a video, temporal flicker against
    /// bicubic's frame-to-frame change.
    #[arg(long)]
    no_reference: bool,
    /// Frames of memory (K) of the temporal stage for the stage-on scores
    /// (0 leaves them out) [default: the model's own, as gendrsr runs it]
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=8))]
    temporal_memory: Option<usize>,
    /// Write the temporal run's frames as PNGs into this folder
    /// (reference_NNN, bicubic_NNN, model_NNN, stabilized_NNN), for checking
    /// the scores with another implementation (scripts/temporal).
    #[arg(long)]
    dump_temporal: Option<PathBuf>,
}

/// One frame's scores for one upscaler.
#[derive(Clone, Copy)]
struct Measured {
    /// None without a ground truth.
    quality: Option<Quality>,
    /// None where the frame is too small for NIQE's patches.
    niqe: Option<f64>,
}

/// The model's and bicubic's scores against the reference, and the gain
/// (full-reference scores are null with `--no-reference`).
#[derive(Serialize)]
struct Scores {
    model_psnr_y: Option<f64>,
    bicubic_psnr_y: Option<f64>,
    gain_psnr_y: Option<f64>,
    model_psnr_rgb: Option<f64>,
    bicubic_psnr_rgb: Option<f64>,
    gain_psnr_rgb: Option<f64>,
    model_ssim_y: Option<f64>,
    bicubic_ssim_y: Option<f64>,
    gain_ssim_y: Option<f64>,
    model_ssim_rgb: Option<f64>,
    bicubic_ssim_rgb: Option<f64>,
    gain_ssim_rgb: Option<f64>,
    /// No-reference NIQE (scikit-video's), lower is more natural; null for
    /// frames not above 193×193.
    model_niqe: Option<f64>,
    bicubic_niqe: Option<f64>,
    /// The reference's own NIQE: what natural footage of this size scores.
    reference_niqe: Option<f64>,
}

impl Scores {
    fn new(model: &Measured, bicubic: &Measured, reference_niqe: Option<f64>) -> Scores {
        let (m, b) = (model.quality.as_ref(), bicubic.quality.as_ref());
        let pick = |field: fn(&Quality) -> f64| (m.map(field), b.map(field));
        let gain = |(m, b): (Option<f64>, Option<f64>)| m.zip(b).map(|(m, b)| m - b);
        let (psnr_y, psnr_rgb) = (pick(|q| q.psnr_y), pick(|q| q.psnr_rgb));
        let (ssim_y, ssim_rgb) = (pick(|q| q.ssim_y), pick(|q| q.ssim_rgb));
        Scores {
            model_psnr_y: psnr_y.0,
            bicubic_psnr_y: psnr_y.1,
            gain_psnr_y: gain(psnr_y),
            model_psnr_rgb: psnr_rgb.0,
            bicubic_psnr_rgb: psnr_rgb.1,
            gain_psnr_rgb: gain(psnr_rgb),
            model_ssim_y: ssim_y.0,
            bicubic_ssim_y: ssim_y.1,
            gain_ssim_y: gain(ssim_y),
            model_ssim_rgb: ssim_rgb.0,
            bicubic_ssim_rgb: ssim_rgb.1,
            gain_ssim_rgb: gain(ssim_rgb),
            model_niqe: model.niqe,
            bicubic_niqe: bicubic.niqe,
            reference_niqe,
        }
    }
}

#[derive(Serialize)]
struct FrameReport {
    /// Index of the frame in the video; 0 for an image.
    frame: usize,
    /// The output's size: the reference's after cropping to a multiple of
    /// the scale, or the input's times the scale with `--no-reference`.
    width: usize,
    height: usize,
    /// Wall time of the model alone.
    model_seconds: f64,
    #[serde(flatten)]
    scores: Scores,
}

#[derive(Serialize)]
struct Report {
    reference: PathBuf,
    model: String,
    model_path: PathBuf,
    scale: usize,
    tile: usize,
    overlap: usize,
    /// What ran the model: `cpu`, or `openvino bf16 on <CPU>`.
    runs_on: String,
    frames: Vec<FrameReport>,
    /// Field by field mean over the frames (PSNR averaged in dB).
    mean: Scores,
    /// The input had no ground truth and was upscaled as it is.
    no_reference: bool,
    /// Consecutive frames (from frame 0) behind the temporal scores; 0 for an image.
    temporal_frames: usize,
    /// Mean absolute difference between the output's frame-to-frame change
    /// and the reference's (bicubic's with `--no-reference`), Y in 8-bit
    /// levels; null for an image.
    model_temporal: Option<f64>,
    /// The same for bicubic; null with `--no-reference`, where bicubic is the yardstick.
    bicubic_temporal: Option<f64>,
    /// Scores over the temporal run: the model as it is, with the temporal
    /// stage, and bicubic; null for an image.
    temporal: Option<TemporalReport>,
    side_by_side: PathBuf,
}

/// One upscaler's scores over the consecutive frames of the temporal run.
#[derive(Serialize, Clone, Copy)]
struct RunScores {
    /// Flicker (the temporal score), Y levels.
    flicker: Option<f64>,
    /// Flicker where the reference stands still (|change| < 2 levels).
    shimmer: Option<f64>,
    /// Mean Y-PSNR against the reference over the run; null without one.
    psnr_y: Option<f64>,
    /// Mean NIQE over the run; null for frames not above 193×193.
    niqe: Option<f64>,
}

#[derive(Serialize)]
struct TemporalReport {
    model: RunScores,
    /// The model's output through the temporal stage (`memory` frames).
    stabilized: Option<RunScores>,
    /// Null with `--no-reference`.
    bicubic: Option<RunScores>,
    memory: usize,
    /// Frames between the stage's anchors, where it has them (`TemporalConfig::anchors`).
    anchors: Option<usize>,
    /// Frames where the stage restarted its memory (the first, and each cut).
    restarts: Option<u64>,
    /// Mean |stage on − stage off| on Y, 8-bit levels: how much the stage changed.
    stage_change: Option<f64>,
    /// The same, frame by frame: after a cut it should be (near) 0.
    stage_change_per_frame: Vec<f64>,
    /// Per frame, the mean |Y error| against the reference with the stage on
    /// minus with it off, 8-bit levels: a trail (stale content carried along)
    /// shows as a rise; empty without a reference.
    error_change_per_frame: Vec<f64>,
}

/// A model as gendrsr would build it, on the CPU with one worker: the
/// scores are about the model, not about the machine.
struct Loaded {
    name: String,
    upscaler: Upscaler,
}

/// What eval asks of the assembly point: gendrsr's configuration for the
/// same tile and thread options, pinned to one CPU worker.
fn upscaler_config(name: &str, args: &Args) -> UpscalerConfig {
    let defaults = UpscalerConfig::default();
    UpscalerConfig {
        model: name.to_owned(),
        tile_size: args.tile,
        tile_overlap: args.overlap,
        engine: EngineOptions {
            provider: args.provider,
            precision: args.precision,
            threads: args.threads,
            ..defaults.engine
        },
        streams: 1,
        ..defaults
    }
}

fn cpu_provider(name: &str) -> gendr::Result<Provider> {
    match name.parse()? {
        provider @ (Provider::Cpu | Provider::OpenVino) => Ok(provider),
        other => Err(gendr::Error::InvalidSetting(format!(
            "eval runs on the CPU: --provider {other} is not one of cpu, openvino"
        ))),
    }
}

/// Resolves a preset or path and opens it through the core's assembly point.
fn load_model(name: &str, args: &Args) -> Result<Loaded> {
    let upscaler = Upscaler::open(&upscaler_config(name, args))?;
    let scale = upscaler.scale();
    if let Some(wanted) = args.scale.filter(|&s| s != scale) {
        bail!(
            "--scale {wanted} does not match model {name}, which upscales x{scale}; omit --scale or pick a x{wanted} model (`gendr models`)"
        );
    }
    for note in &upscaler.assembly.notes {
        tracing::info!("{note}");
    }
    Ok(Loaded {
        name: name.to_owned(),
        upscaler,
    })
}

/// The model's input and everything else but the model's output.
struct Degraded {
    /// The ground truth, cut to what the scales divide; None with `--no-reference`.
    reference: Option<RgbImage>,
    /// What the model and bicubic upscale.
    small: RgbImage,
    /// Bicubic's upscale of `small`.
    baseline: RgbImage,
}

/// With a ground truth: the reference cut to a multiple of the scales, its
/// bicubic low-resolution copy, and bicubic's upscale of that. Without: the
/// frame as it is, and bicubic's upscale of it.
fn degrade(
    full: &RgbImage,
    scale: usize,
    multiple: usize,
    no_reference: bool,
    source: &Path,
) -> Result<Degraded> {
    if no_reference {
        return Ok(Degraded {
            reference: None,
            small: full.clone(),
            baseline: rounded(&bicubic(full, full.width * scale, full.height * scale)),
        });
    }
    let (w, h) = (
        full.width - full.width % multiple,
        full.height - full.height % multiple,
    );
    if w == 0 || h == 0 {
        bail!(
            "{}: {}x{} is smaller than the model's scale x{multiple}",
            source.display(),
            full.width,
            full.height
        );
    }
    let reference = crop(full, 0, 0, w, h);
    let small = rounded(&bicubic(&reference, w / scale, h / scale));
    let baseline = rounded(&bicubic(&small, w, h));
    Ok(Degraded {
        reference: Some(reference),
        small,
        baseline,
    })
}

fn measure(img: &RgbImage, reference: Option<&RgbImage>) -> Measured {
    Measured {
        quality: reference.map(|r| quality(img, r)),
        // NIQE's only failure is a frame too small for its patches.
        niqe: niqe_rgb(img).ok(),
    }
}

/// The model's output, rounded to 8 bits, and its wall time.
fn run_model(loaded: &mut Loaded, small: &RgbImage) -> Result<(RgbImage, f64)> {
    let started = Instant::now();
    let restored = loaded.upscaler.upscale_image(small)?;
    Ok((rounded(&restored), started.elapsed().as_secs_f64()))
}

pub fn run(args: Args) -> Result<()> {
    let info = media::discover(&args.reference)?;
    let side_by_side = match &args.out {
        Some(path) => path.clone(),
        None => {
            let stem = args
                .reference
                .file_stem()
                .context("the reference has no file name")?;
            PathBuf::from(format!("{}-eval.png", stem.to_string_lossy()))
        }
    };
    if let Some(dir) = side_by_side.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            bail!("{}: no such folder for the side-by-side PNG", dir.display());
        }
    }
    let mut upscalers = args
        .model
        .iter()
        .map(|name| load_model(name, &args))
        .collect::<Result<Vec<_>>>()?;
    // Every model sees the same reference pixels, cut to what all scales divide.
    let multiple = upscalers.iter().fold(1, |m, u| lcm(m, u.upscaler.scale()));

    // Spread the frames over a video; an image gives one frame whatever is asked.
    let wanted = usize::from(args.frames);
    let every = info
        .frame_count()
        .map_or(1, |count| (count as usize / wanted).max(1));
    let references = media::decode_rgb(&args.reference, wanted, every)?;
    let video = info.frame_count().is_some() || references.len() > 1;
    let consecutive = if video && args.temporal_frames >= 2 {
        media::decode_rgb(&args.reference, usize::from(args.temporal_frames), 1)?
    } else {
        Vec::new()
    };

    let mut reports = Vec::new();
    let mut rows = Vec::new();
    for upscaler in &mut upscalers {
        let scale = upscaler.upscaler.scale();
        let mut frames = Vec::new();
        let mut measured = Vec::new();
        for (k, full) in references.iter().enumerate() {
            let degraded = degrade(full, scale, multiple, args.no_reference, &args.reference)?;
            let (restored, model_seconds) = run_model(upscaler, &degraded.small)?;
            let reference = degraded.reference.as_ref();
            let (model, baseline) = (
                measure(&restored, reference),
                measure(&degraded.baseline, reference),
            );
            let reference_niqe = reference.and_then(|r| niqe_rgb(r).ok());
            frames.push(FrameReport {
                frame: k * every,
                width: restored.width,
                height: restored.height,
                model_seconds,
                scores: Scores::new(&model, &baseline, reference_niqe),
            });
            measured.push((model, baseline, reference_niqe));
            rows.push((degraded, restored));
        }
        let temporal = temporal_scores(upscaler, &consecutive, multiple, &args)?;
        let (model_temporal, bicubic_temporal) = match &temporal {
            Some(t) => (t.model.flicker, t.bicubic.and_then(|b| b.flicker)),
            None => (None, None),
        };
        let model_mean = mean(&measured.iter().map(|m| &m.0).collect::<Vec<_>>());
        let bicubic_mean = mean(&measured.iter().map(|m| &m.1).collect::<Vec<_>>());
        reports.push(Report {
            reference: args.reference.clone(),
            model: upscaler.name.clone(),
            model_path: std::path::absolute(&upscaler.upscaler.assembly.model_path)
                .unwrap_or(upscaler.upscaler.assembly.model_path.clone()),
            scale,
            tile: upscaler.upscaler.assembly.geometry.tile_width,
            overlap: upscaler.upscaler.assembly.geometry.overlap,
            runs_on: upscaler.upscaler.assembly.runs_on(),
            frames,
            mean: Scores::new(
                &model_mean,
                &bicubic_mean,
                average(measured.iter().map(|m| m.2)),
            ),
            no_reference: args.no_reference,
            temporal_frames: consecutive.len(),
            model_temporal,
            bicubic_temporal,
            temporal,
            side_by_side: side_by_side.clone(),
        });
    }

    let panels = side_by_side_panels(rows, references.len());
    write_side_by_side(&side_by_side, &panels).with_context(|| {
        format!(
            "{}: cannot write the side-by-side PNG",
            side_by_side.display()
        )
    })?;

    match (args.json, reports.as_slice()) {
        (true, [report]) => println!("{}", serde_json::to_string_pretty(report)?),
        (true, _) => println!("{}", serde_json::to_string_pretty(&reports)?),
        (false, [report]) if !args.no_reference => print_table(report, video),
        (false, _) => print_comparison(&reports),
    }
    Ok(())
}

/// Flicker, shimmer, Y-PSNR and NIQE over a run of consecutive frames for
/// the model, the model through the temporal stage, and bicubic, each
/// measured against the reference's own frame-to-frame change; without a
/// reference, against bicubic's (and bicubic itself is not scored).
fn temporal_scores(
    upscaler: &mut Loaded,
    consecutive: &[RgbImage],
    multiple: usize,
    args: &Args,
) -> Result<Option<TemporalReport>> {
    if consecutive.len() < 2 {
        return Ok(None);
    }
    let scale = upscaler.upscaler.scale();
    let config = TemporalConfig::for_model(&upscaler.name);
    let memory = args.temporal_memory.unwrap_or(config.memory);
    let config = TemporalConfig { memory, ..config };
    let mut stage = Stabilizer::new(config);
    let (mut references, mut restored, mut baselines, mut stabilized) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for full in consecutive {
        let degraded = degrade(full, scale, multiple, args.no_reference, &args.reference)?;
        let output = run_model(upscaler, &degraded.small)?.0;
        if memory > 0 {
            stabilized.push(rounded(&stage.process(&degraded.small, output.clone())));
        }
        restored.push(output);
        references.extend(degraded.reference);
        baselines.push(degraded.baseline);
    }
    if let Some(dir) = &args.dump_temporal {
        dump_frames(dir, &references, &baselines, &restored, &stabilized)?;
    }
    // Motion is judged against the reference's, or bicubic's without one.
    let truth = if args.no_reference {
        &baselines
    } else {
        &references
    };
    let score = |frames: &[RgbImage]| RunScores {
        flicker: temporal_difference(frames, truth),
        shimmer: shimmer(frames, truth),
        psnr_y: (!args.no_reference).then(|| {
            frames
                .iter()
                .zip(&references)
                .map(|(f, r)| quality(f, r).psnr_y)
                .sum::<f64>()
                / frames.len() as f64
        }),
        niqe: average(frames.iter().map(|f| niqe_rgb(f).ok())),
    };
    let stage_change_per_frame: Vec<f64> = stabilized
        .iter()
        .zip(&restored)
        .map(|(on, off)| mean_abs_luma(on, off))
        .collect();
    let stage_change = (!stage_change_per_frame.is_empty())
        .then(|| stage_change_per_frame.iter().sum::<f64>() / stage_change_per_frame.len() as f64);
    let error_change_per_frame = if args.no_reference {
        Vec::new()
    } else {
        stabilized
            .iter()
            .zip(&restored)
            .zip(&references)
            .map(|((on, off), r)| mean_abs_luma(on, r) - mean_abs_luma(off, r))
            .collect()
    };
    Ok(Some(TemporalReport {
        model: score(&restored),
        stabilized: (!stabilized.is_empty()).then(|| score(&stabilized)),
        bicubic: (!args.no_reference).then(|| score(&baselines)),
        memory,
        anchors: config.anchor_spacing().filter(|_| memory > 0),
        restarts: (memory > 0).then(|| stage.restarts()),
        stage_change,
        stage_change_per_frame,
        error_change_per_frame,
    }))
}

/// Mean absolute difference of two images' BT.601 luma, in 8-bit levels.
fn mean_abs_luma(a: &RgbImage, b: &RgbImage) -> f64 {
    let y = |img: &RgbImage, i: usize| {
        0.299 * img.plane(0)[i] + 0.587 * img.plane(1)[i] + 0.114 * img.plane(2)[i]
    };
    let n = a.width * a.height;
    (0..n)
        .map(|i| (255.0 * (y(a, i) - y(b, i))).abs() as f64)
        .sum::<f64>()
        / n as f64
}

/// Each sequence's frames as `<name>_<index>.png` in `dir`.
fn dump_frames(
    dir: &Path,
    references: &[RgbImage],
    baselines: &[RgbImage],
    restored: &[RgbImage],
    stabilized: &[RgbImage],
) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create the folder", dir.display()))?;
    for (name, frames) in [
        ("reference", references),
        ("bicubic", baselines),
        ("model", restored),
        ("stabilized", stabilized),
    ] {
        for (t, frame) in frames.iter().enumerate() {
            let path = dir.join(format!("{name}_{t:03}.png"));
            write_side_by_side(&path, &[vec![frame.clone()]])
                .with_context(|| format!("{}: cannot write", path.display()))?;
        }
    }
    Ok(())
}

/// The picture's rows: with one model, bicubic | model | reference for every
/// frame; with several, one row of the first frame, bicubic (of the first
/// model's scale) | each model | reference. Without a reference, that panel is
/// left out. `outputs` holds each model's frames in turn.
fn side_by_side_panels(outputs: Vec<(Degraded, RgbImage)>, per_model: usize) -> Vec<Vec<RgbImage>> {
    let centre = |img: &RgbImage| {
        let (pw, ph) = (img.width.min(PANEL), img.height.min(PANEL));
        crop(img, (img.width - pw) / 2, (img.height - ph) / 2, pw, ph)
    };
    if outputs.len() == per_model {
        return outputs
            .iter()
            .map(|(d, restored)| {
                let mut row = vec![centre(&d.baseline), centre(restored)];
                row.extend(d.reference.as_ref().map(centre));
                row
            })
            .collect();
    }
    let firsts: Vec<&(Degraded, RgbImage)> = outputs.iter().step_by(per_model).collect();
    let mut row = vec![centre(&firsts[0].0.baseline)];
    row.extend(firsts.iter().map(|(_, restored)| centre(restored)));
    row.extend(firsts[0].0.reference.as_ref().map(centre));
    vec![row]
}

fn lcm(a: usize, b: usize) -> usize {
    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    a / gcd(a, b) * b
}

/// A score with `decimals` places (and a sign for a gain), or "-" if absent.
fn fmt_score(value: Option<f64>, decimals: usize, signed: bool) -> String {
    match value {
        Some(v) if signed => format!("{v:+.decimals$}"),
        Some(v) => format!("{v:.decimals$}"),
        None => "-".to_owned(),
    }
}

fn print_table(report: &Report, video: bool) {
    println!(
        "model {} ({}), x{}, tile {}, overlap {}, on {}",
        report.model,
        report.model_path.display(),
        report.scale,
        report.tile,
        report.overlap,
        report.runs_on
    );
    let labels: Vec<String> = report
        .frames
        .iter()
        .map(|f| match report.reference.file_name() {
            Some(name) if !video => name.to_string_lossy().into_owned(),
            _ => format!("frame {}", f.frame),
        })
        .collect();
    let lw = labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    println!(
        "{:<lw$}{:>26}{:>18}{:>26}{:>18}{:>10}",
        "", "Y-PSNR (dB)", "Y-SSIM", "RGB-PSNR (dB)", "NIQE", "model"
    );
    println!(
        "{:<lw$}{:>9}{:>9}{:>8}{:>10}{:>8}{:>10}{:>9}{:>7}{:>10}{:>8}{:>10}",
        "",
        "bicubic",
        "model",
        "gain",
        "bicubic",
        "model",
        "bicubic",
        "model",
        "gain",
        "bicubic",
        "model",
        "time"
    );
    let row = |label: &str, s: &Scores, time: &str| {
        let line = format!(
            "{label:<lw$}{:>9}{:>9}{:>8}{:>10}{:>8}{:>10}{:>9}{:>7}{:>10}{:>8}{time:>10}",
            fmt_score(s.bicubic_psnr_y, 2, false),
            fmt_score(s.model_psnr_y, 2, false),
            fmt_score(s.gain_psnr_y, 2, true),
            fmt_score(s.bicubic_ssim_y, 4, false),
            fmt_score(s.model_ssim_y, 4, false),
            fmt_score(s.bicubic_psnr_rgb, 2, false),
            fmt_score(s.model_psnr_rgb, 2, false),
            fmt_score(s.gain_psnr_rgb, 2, true),
            fmt_score(s.bicubic_niqe, 2, false),
            fmt_score(s.model_niqe, 2, false),
        );
        println!("{}", line.trim_end());
    };
    for (label, f) in labels.iter().zip(&report.frames) {
        row(label, &f.scores, &format!("{:.2} s", f.model_seconds));
    }
    if report.frames.len() > 1 {
        row("mean", &report.mean, "");
    }
    if let Some(niqe) = report.mean.reference_niqe {
        println!("NIQE of the reference itself (lower is more natural): {niqe:.2}");
    }
    print_temporal(report);
    let panels = if report.no_reference {
        "bicubic | model"
    } else {
        "bicubic | model | reference"
    };
    println!("side by side ({panels}): {}", report.side_by_side.display());
}

/// The temporal run's scores, one line per upscaler.
fn print_temporal(report: &Report) {
    let Some(t) = &report.temporal else {
        return;
    };
    let against = if report.no_reference {
        "bicubic's motion"
    } else {
        "the reference's motion"
    };
    println!(
        "temporal, frames 0-{} (vs {against}, Y levels; lower is steadier): flicker, shimmer (where the truth is static), Y-PSNR, NIQE",
        report.temporal_frames - 1
    );
    let anchors = t
        .anchors
        .map_or(String::new(), |n| format!(", anchors {n}"));
    let stabilized = format!("{} + temporal (K={}{anchors})", report.model, t.memory);
    let width = 28.max(stabilized.len() + 2);
    let line = |name: String, s: &RunScores| {
        println!(
            "  {name:<width$}{:>9}{:>9}{:>9}{:>8}",
            fmt_score(s.flicker, 3, false),
            fmt_score(s.shimmer, 3, false),
            fmt_score(s.psnr_y, 2, false),
            fmt_score(s.niqe, 2, false)
        )
    };
    if let Some(b) = &t.bicubic {
        line(format!("bicubic x{}", report.scale), b);
    }
    line(report.model.clone(), &t.model);
    if let Some(s) = &t.stabilized {
        line(stabilized, s);
    }
    if !report.no_reference {
        println!("  {:<width$}{:>9}{:>9}", "reference", "0.000", "0.000");
    }
}

/// One row per model and one per bicubic scale, means over the frames.
fn print_comparison(reports: &[Report]) {
    let first = &reports[0];
    println!(
        "{}: {} frame(s), output {}x{}, on cpu",
        first.reference.display(),
        first.frames.len(),
        first.frames[0].width,
        first.frames[0].height
    );
    let temporal_title = if first.temporal_frames >= 2 {
        format!("temporal (frames 0-{})", first.temporal_frames - 1)
    } else {
        "temporal".to_owned()
    };
    let names: Vec<String> = reports
        .iter()
        .map(|r| r.model.clone())
        .chain(reports.iter().map(|r| format!("bicubic x{}", r.scale)))
        .collect();
    let nw = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(6);
    println!(
        "{:<nw$}{:>14}{:>9}{:>9}{:>26}{:>14}",
        "", "Y-PSNR (dB)", "Y-SSIM", "NIQE", temporal_title, "time/frame"
    );
    let row = |name: &str,
               psnr: Option<f64>,
               ssim: Option<f64>,
               niqe: Option<f64>,
               temporal: Option<f64>,
               time: &str| {
        let line = format!(
            "{name:<nw$}{:>14}{:>9}{:>9}{:>26}{time:>14}",
            fmt_score(psnr, 2, false),
            fmt_score(ssim, 4, false),
            fmt_score(niqe, 2, false),
            fmt_score(temporal, 3, false),
        );
        println!("{}", line.trim_end());
    };
    let mut bicubic_scales = Vec::new();
    for r in reports {
        if !bicubic_scales.contains(&r.scale) {
            bicubic_scales.push(r.scale);
            row(
                &format!("bicubic x{}", r.scale),
                r.mean.bicubic_psnr_y,
                r.mean.bicubic_ssim_y,
                r.mean.bicubic_niqe,
                r.bicubic_temporal,
                "",
            );
        }
    }
    for r in reports {
        let seconds = r.frames.iter().map(|f| f.model_seconds).sum::<f64>() / r.frames.len() as f64;
        row(
            &r.model,
            r.mean.model_psnr_y,
            r.mean.model_ssim_y,
            r.mean.model_niqe,
            r.model_temporal,
            &format!("{seconds:.2} s"),
        );
    }
    if let Some(niqe) = first.mean.reference_niqe {
        println!("NIQE of the reference itself (lower is more natural): {niqe:.2}");
    }
    for r in reports {
        print_temporal(r);
    }
    let mut panels = vec!["bicubic"];
    panels.extend(reports.iter().map(|r| r.model.as_str()));
    if !first.no_reference {
        panels.push("reference");
    }
    println!(
        "side by side ({}): {}",
        panels.join(" | "),
        first.side_by_side.display()
    );
}

/// Field by field mean; NIQE only where every frame has one.
fn mean(measured: &[&Measured]) -> Measured {
    let n = measured.len() as f64;
    let qualities: Option<Vec<&Quality>> = measured.iter().map(|m| m.quality.as_ref()).collect();
    let quality = qualities.map(|qualities| {
        let average_of =
            |field: fn(&Quality) -> f64| -> f64 { qualities.iter().map(|q| field(q) / n).sum() };
        Quality {
            psnr_rgb: average_of(|q| q.psnr_rgb),
            psnr_y: average_of(|q| q.psnr_y),
            ssim_rgb: average_of(|q| q.ssim_rgb),
            ssim_y: average_of(|q| q.ssim_y),
        }
    });
    Measured {
        quality,
        niqe: average(measured.iter().map(|m| m.niqe)),
    }
}

/// The mean, or None if any value is missing (a frame too small for NIQE).
fn average(values: impl ExactSizeIterator<Item = Option<f64>>) -> Option<f64> {
    let n = values.len() as f64;
    values.map(|v| v.map(|v| v / n)).sum()
}

/// The image as 8-bit pixels would hold it.
fn rounded(img: &RgbImage) -> RgbImage {
    RgbImage::from_rgb8(img.width, img.height, &img.to_rgb8())
        .expect("to_rgb8 gives the image's own size")
}

fn crop(img: &RgbImage, x: usize, y: usize, width: usize, height: usize) -> RgbImage {
    let mut out = RgbImage::new(width, height);
    for c in 0..3 {
        let src = img.plane(c);
        let dst = out.plane_mut(c);
        for row in 0..height {
            let from = (y + row) * img.width + x;
            dst[row * width..(row + 1) * width].copy_from_slice(&src[from..from + width]);
        }
    }
    out
}

/// Writes each row's panels left to right, rows top to bottom, on white.
fn write_side_by_side(path: &Path, rows: &[Vec<RgbImage>]) -> Result<()> {
    let pw = rows.iter().flatten().map(|p| p.width).max().unwrap_or(0);
    let ph = rows.iter().flatten().map(|p| p.height).max().unwrap_or(0);
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width = columns * pw + (columns - 1) * GAP;
    let height = rows.len() * ph + (rows.len() - 1) * GAP;
    let mut canvas = vec![255u8; 3 * width * height];
    for (r, panels) in rows.iter().enumerate() {
        for (p, panel) in panels.iter().enumerate() {
            let (rgb, w) = (panel.to_rgb8(), panel.width);
            let (x0, y0) = (p * (pw + GAP), r * (ph + GAP));
            for y in 0..panel.height {
                let at = 3 * ((y0 + y) * width + x0);
                canvas[at..at + 3 * w].copy_from_slice(&rgb[3 * y * w..3 * (y + 1) * w]);
            }
        }
    }
    let mut encoder = png::Encoder::new(
        BufWriter::new(File::create(path)?),
        width as u32,
        height as u32,
    );
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&canvas)?;
    writer.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use gst::prelude::*;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        eval: Args,
    }

    #[derive(Parser)]
    struct SrCli {
        #[command(flatten)]
        sr: crate::upscale::SrOptions,
    }

    #[test]
    fn eval_bench_and_the_element_configure_the_same_engines() {
        gst::init().unwrap();
        gstgendrsr::plugin_register_static().unwrap();
        let model = gendr_test_support::model("conv_x2.onnx");
        let eval = Cli::parse_from([
            "eval",
            "ref.png",
            "-m",
            &model,
            "--tile",
            "48",
            "--overlap",
            "4",
            "--threads",
            "1",
        ])
        .eval;
        let sr = SrCli::parse_from([
            "sr",
            "-m",
            &model,
            "--tile",
            "48",
            "--overlap",
            "4",
            "--threads",
            "1",
            "--provider",
            "cpu",
            "--streams",
            "1",
        ])
        .sr;
        // bench builds from the options directly; gendr upscale and live set
        // them on the element, which builds from its properties.
        let bench = sr.upscaler_config();
        let element = sr
            .element()
            .unwrap()
            .downcast::<gstgendrsr::GendrSr>()
            .unwrap();
        assert_eq!(element.upscaler_config(), bench);
        assert_eq!(upscaler_config(&model, &eval), bench);
        // And the engines built agree: the element's own, once started.
        element.set_state(gst::State::Paused).unwrap();
        let started = element.assembly().expect("assembled at start");
        element.set_state(gst::State::Null).unwrap();
        let opened = Upscaler::open(&bench).unwrap().assembly;
        assert_eq!(started, opened);
        assert_eq!(
            (opened.geometry.tile_width, opened.geometry.overlap),
            (48, 4)
        );
    }
}
