//! `gendr eval`: how much better than bicubic a model restores a reference.
//!
//! Each reference frame is cropped to a multiple of the scale, shrunk by
//! bicubic (antialiased, Keys a = −0.5) and rounded to 8 bits, the way a
//! low-resolution video would hold it. The model and bicubic then upscale it
//! back; both results are rounded to 8 bits and compared with the reference
//! (PSNR and SSIM, on RGB and on BT.601 luma).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use gendr::engine::{EngineOptions, Provider};
use gendr::frame::RgbImage;
use gendr::metrics::{quality, Quality};
use gendr::model::DEFAULT_MIN_OVERLAP;
use gendr::presets::DEFAULT_PRESET;
use gendr::resize::bicubic;
use gendr::upscaler::{Upscaler, UpscalerConfig};
use serde::Serialize;

use crate::media;

const EXAMPLES: &str = "\
Examples:
  gendr eval tests/data/eval/coffee.png
  gendr eval --model fast --out fast-vs-bicubic.png tests/data/eval/bikes_f120.png
  gendr eval --frames 5 --json clip.mp4 > scores.json
  gendr eval --model path/to/model.onnx --scale 2 --tile 128 photo.jpg

The reference is the ground truth: it is shrunk by the model's scale, upscaled
again by the model and by bicubic, and both are compared with it. The gain in
Y-PSNR over bicubic is the headline number. Y is full-range BT.601 luma, so
Y-PSNR reads about 1.3 dB below papers that use studio-range Y; gains are the
same (docs/eval.md).";

/// The largest side of each panel in the side-by-side picture.
const PANEL: usize = 256;
/// Pixels of white between panels.
const GAP: usize = 4;

#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Reference image (PNG, JPEG) or video at full resolution.
    reference: PathBuf,
    /// Model preset (see `gendr models`) or path to an .onnx file.
    #[arg(long, short = 'm', default_value = DEFAULT_PRESET)]
    model: String,
    /// Upscale factor to check for; it must equal the model's (default: the model's).
    #[arg(long)]
    scale: Option<usize>,
    /// Frames of a video to evaluate, spread evenly over it; ignored for images.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    frames: u16,
    /// Side-by-side PNG (bicubic | model | reference, centre crop, one row per
    /// frame) [default: <reference stem>-eval.png in the current folder].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the scores as one JSON object instead of a table.
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
}

/// The model's and bicubic's scores against the reference, and the gain.
#[derive(Serialize)]
struct Scores {
    model_psnr_y: f64,
    bicubic_psnr_y: f64,
    gain_psnr_y: f64,
    model_psnr_rgb: f64,
    bicubic_psnr_rgb: f64,
    gain_psnr_rgb: f64,
    model_ssim_y: f64,
    bicubic_ssim_y: f64,
    gain_ssim_y: f64,
    model_ssim_rgb: f64,
    bicubic_ssim_rgb: f64,
    gain_ssim_rgb: f64,
}

impl Scores {
    fn new(model: &Quality, bicubic: &Quality) -> Scores {
        Scores {
            model_psnr_y: model.psnr_y,
            bicubic_psnr_y: bicubic.psnr_y,
            gain_psnr_y: model.psnr_y - bicubic.psnr_y,
            model_psnr_rgb: model.psnr_rgb,
            bicubic_psnr_rgb: bicubic.psnr_rgb,
            gain_psnr_rgb: model.psnr_rgb - bicubic.psnr_rgb,
            model_ssim_y: model.ssim_y,
            bicubic_ssim_y: bicubic.ssim_y,
            gain_ssim_y: model.ssim_y - bicubic.ssim_y,
            model_ssim_rgb: model.ssim_rgb,
            bicubic_ssim_rgb: bicubic.ssim_rgb,
            gain_ssim_rgb: model.ssim_rgb - bicubic.ssim_rgb,
        }
    }
}

#[derive(Serialize)]
struct FrameReport {
    /// Index of the frame in the video; 0 for an image.
    frame: usize,
    /// The reference as measured, after cropping to a multiple of the scale.
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
    frames: Vec<FrameReport>,
    /// Field by field mean over the frames (PSNR averaged in dB).
    mean: Scores,
    side_by_side: PathBuf,
}

/// The model as gendrsr would build it, on the CPU with one worker: the
/// scores are about the model, not about the machine.
fn load_model(args: &Args) -> Result<Upscaler> {
    let upscaler = Upscaler::open(&UpscalerConfig {
        model: args.model.clone(),
        tile_size: args.tile,
        tile_overlap: args.overlap,
        engine: EngineOptions {
            provider: Provider::Cpu,
            threads: args.threads,
            ..EngineOptions::default()
        },
        streams: 1,
        batch_size: 0,
    })?;
    for note in &upscaler.assembly.notes {
        tracing::info!("{note}");
    }
    Ok(upscaler)
}

pub fn run(args: Args) -> Result<()> {
    let info = media::discover(&args.reference)?;
    let side_by_side = match args.out.clone() {
        Some(path) => path,
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
    let mut upscaler = load_model(&args)?;
    let model_path = upscaler.assembly.model_path.clone();
    let geometry = upscaler.assembly.geometry;
    let scale = upscaler.scale();
    if let Some(wanted) = args.scale.filter(|&s| s != scale) {
        bail!(
            "--scale {wanted} does not match model {}, which upscales x{scale}; omit --scale or pick a x{wanted} model (`gendr models`)",
            args.model
        );
    }

    // Spread the frames over a video; an image gives one frame whatever is asked.
    let wanted = usize::from(args.frames);
    let every = info
        .frame_count()
        .map_or(1, |count| (count as usize / wanted).max(1));
    let references = media::decode_rgb(&args.reference, wanted, every)?;

    let mut frames = Vec::new();
    let mut qualities = Vec::new();
    let mut panels = Vec::new();
    for (k, full) in references.iter().enumerate() {
        let (w, h) = (
            full.width - full.width % scale,
            full.height - full.height % scale,
        );
        if w == 0 || h == 0 {
            bail!(
                "{}: {}x{} is smaller than the model's scale x{scale}",
                args.reference.display(),
                full.width,
                full.height
            );
        }
        let reference = crop(full, 0, 0, w, h);
        let small = rounded(&bicubic(&reference, w / scale, h / scale));
        let started = Instant::now();
        let restored = rounded(&upscaler.upscale_image(&small)?);
        let model_seconds = started.elapsed().as_secs_f64();
        let baseline = rounded(&bicubic(&small, w, h));
        let (model_q, bicubic_q) = (
            quality(&restored, &reference),
            quality(&baseline, &reference),
        );
        frames.push(FrameReport {
            frame: k * every,
            width: w,
            height: h,
            model_seconds,
            scores: Scores::new(&model_q, &bicubic_q),
        });
        qualities.push((model_q, bicubic_q));
        let (pw, ph) = (w.min(PANEL), h.min(PANEL));
        let (x, y) = ((w - pw) / 2, (h - ph) / 2);
        panels.push([&baseline, &restored, &reference].map(|img| crop(img, x, y, pw, ph)));
    }

    write_side_by_side(&side_by_side, &panels).with_context(|| {
        format!(
            "{}: cannot write the side-by-side PNG",
            side_by_side.display()
        )
    })?;

    let model_mean = mean(qualities.iter().map(|q| &q.0));
    let bicubic_mean = mean(qualities.iter().map(|q| &q.1));
    let report = Report {
        reference: args.reference,
        model: args.model,
        model_path: std::path::absolute(&model_path).unwrap_or(model_path),
        scale,
        tile: geometry.tile_width,
        overlap: geometry.overlap,
        frames,
        mean: Scores::new(&model_mean, &bicubic_mean),
        side_by_side,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let video = info.frame_count().is_some() || report.frames.len() > 1;
        print_table(&report, video);
    }
    Ok(())
}

fn print_table(report: &Report, video: bool) {
    println!(
        "model {} ({}), x{}, tile {}, overlap {}, on cpu",
        report.model,
        report.model_path.display(),
        report.scale,
        report.tile,
        report.overlap
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
        "{:<lw$}{:>26}{:>18}{:>26}{:>10}",
        "", "Y-PSNR (dB)", "Y-SSIM", "RGB-PSNR (dB)", "model"
    );
    println!(
        "{:<lw$}{:>9}{:>9}{:>8}{:>10}{:>8}{:>10}{:>9}{:>7}{:>10}",
        "", "bicubic", "model", "gain", "bicubic", "model", "bicubic", "model", "gain", "time"
    );
    let row = |label: &str, s: &Scores, time: &str| {
        let line = format!(
            "{label:<lw$}{:>9.2}{:>9.2}{:>+8.2}{:>10.4}{:>8.4}{:>10.2}{:>9.2}{:>+7.2}{time:>10}",
            s.bicubic_psnr_y,
            s.model_psnr_y,
            s.gain_psnr_y,
            s.bicubic_ssim_y,
            s.model_ssim_y,
            s.bicubic_psnr_rgb,
            s.model_psnr_rgb,
            s.gain_psnr_rgb
        );
        println!("{}", line.trim_end());
    };
    for (label, f) in labels.iter().zip(&report.frames) {
        row(label, &f.scores, &format!("{:.2} s", f.model_seconds));
    }
    if report.frames.len() > 1 {
        row("mean", &report.mean, "");
    }
    println!(
        "side by side (bicubic | model | reference): {}",
        report.side_by_side.display()
    );
}

/// Field by field mean.
fn mean<'a>(qualities: impl ExactSizeIterator<Item = &'a Quality>) -> Quality {
    let n = qualities.len() as f64;
    let mut sum = Quality {
        psnr_rgb: 0.0,
        psnr_y: 0.0,
        ssim_rgb: 0.0,
        ssim_y: 0.0,
    };
    for q in qualities {
        sum.psnr_rgb += q.psnr_rgb / n;
        sum.psnr_y += q.psnr_y / n;
        sum.ssim_rgb += q.ssim_rgb / n;
        sum.ssim_y += q.ssim_y / n;
    }
    sum
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

/// Writes each frame's panels as one row, left to right, on white.
fn write_side_by_side(path: &Path, rows: &[[RgbImage; 3]]) -> Result<()> {
    let pw = rows.iter().map(|r| r[0].width).max().unwrap_or(0);
    let ph = rows.iter().map(|r| r[0].height).max().unwrap_or(0);
    let width = 3 * pw + 2 * GAP;
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
