//! Replays the temporal stage on model outputs saved earlier, with any
//! setting, in seconds instead of the model's minutes: how the tuning in
//! docs/temporal.md was done.
//!
//!     scripts/temporal/tuning_dumps.sh out/temporal2          # once: model outputs
//!     cargo run --release --example temporal_replay -- \
//!         out/temporal2/bikes_half/anime-video-x4 320 136 4 low_band=0 memory=6
//!
//! The folder holds `reference.rgb` and `model.rgb` (raw rgb24 frames of
//! WIDTH×HEIGHT, the reference and the model's ×SCALE output of its bicubic
//! shrink, as `gendr eval --dump-temporal` writes them as PNGs). Settings
//! start from `base=default` (the whole-frame blend), `base=generative`
//! (the generative presets': back-projected, detail only) or `base=detail`
//! (every other model's); trust levels are in 8-bit levels, and
//! `back_project=1` or `0` switches the back-projection. `model=FILE` reads
//! the outputs from another file in the folder (outputs processed
//! elsewhere), `save=FILE` writes the stage's frames there as raw rgb24
//! (to process further elsewhere), `niqe=1` adds NIQE (slow). It prints flicker, shimmer and Y-PSNR
//! for bicubic, the model as it is and the model through the stage, with the
//! same metrics as `gendr eval`, then flicker split by how fast the
//! reference itself changes there (its luma by < 2, 2–8 or ≥ 8 levels from
//! one frame to the next), over the pairs of frames within a shot, with the
//! mean |error| against the reference on the same pixels.

use std::path::Path;
use std::process::ExitCode;

use gendr::frame::RgbImage;
use gendr::metrics::{quality, shimmer, temporal_difference};
use gendr::niqe::niqe_rgb;
use gendr::resize::bicubic;
use gendr::temporal::{Luma, Stabilizer, TemporalConfig};

fn frames(path: &Path, width: usize, height: usize) -> Result<Vec<RgbImage>, String> {
    let raw = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    raw.chunks_exact(3 * width * height)
        .map(|frame| RgbImage::from_rgb8(width, height, frame).map_err(|e| e.to_string()))
        .collect()
}

fn rounded(img: &RgbImage) -> RgbImage {
    RgbImage::from_rgb8(img.width, img.height, &img.to_rgb8()).expect("its own size")
}

/// The three motion classes: (name, lowest |Δ reference| in levels).
const CLASSES: [(&str, f32); 3] = [("static", 0.0), ("slow", 2.0), ("fast", 8.0)];

/// Per motion class: the share of pixels, the mean |Δ run − Δ reference|
/// and the mean |run − reference| of the later frame, in levels, over the
/// pairs (t − 1, t) for each t in `pairs`.
fn by_motion(run: &[RgbImage], references: &[RgbImage], pairs: &[usize]) -> [(f64, f64, f64); 3] {
    let luma = |img: &RgbImage| Luma::from_rgb(img).data;
    let mut sums = [(0usize, 0.0, 0.0); 3];
    for &t in pairs {
        let (now, before) = (luma(&run[t]), luma(&run[t - 1]));
        let (truth, truth_before) = (luma(&references[t]), luma(&references[t - 1]));
        for i in 0..now.len() {
            let reference_change = 255.0 * (truth[i] - truth_before[i]);
            let class = CLASSES
                .iter()
                .rposition(|&(_, from)| reference_change.abs() >= from)
                .expect("the first class starts at 0");
            let change = 255.0 * (now[i] - before[i]);
            let sum = &mut sums[class];
            sum.0 += 1;
            sum.1 += (change - reference_change).abs() as f64;
            sum.2 += 255.0 * (now[i] - truth[i]).abs() as f64;
        }
    }
    let total = sums.iter().map(|s| s.0).sum::<usize>().max(1) as f64;
    sums.map(|(n, flicker, error)| {
        let n = n.max(1) as f64;
        (n / total, flicker / n, error / n)
    })
}

fn setting(config: &mut TemporalConfig, key: &str, value: &str) -> Result<(), String> {
    let bad = || format!("{key}={value}: not a number");
    let number = || value.parse::<f32>().map_err(|_| bad());
    let whole = || value.parse::<usize>().map_err(|_| bad());
    match key {
        "base" if value == "default" => *config = TemporalConfig::default(),
        "base" if value == "detail" => *config = TemporalConfig::detail_only(),
        "base" if value == "generative" => *config = TemporalConfig::generative(),
        "back_project" => config.back_project = value == "1",
        "memory" => config.memory = whole()?,
        "anchors" => config.anchors = Some(whole()?).filter(|&n| n > 0),
        "anchor_share" => config.anchor_share = number()?,
        "block" => config.block = whole()?,
        "search" => config.search = whole()? as i32,
        "weight" => config.weight = number()?,
        "trust_below" => config.trust_below = number()? / 255.0,
        "distrust_above" => config.distrust_above = number()? / 255.0,
        "cut_below" => config.cut_below = number()?,
        "low_band" => config.low_band = number()?,
        "subpixel" => config.subpixel = whole()? as i32,
        "unsteadied_detail" => config.unsteadied_detail = number()?,
        // Levels; a negative margin goes back to block motion.
        "still_margin" => config.pixel_motion = Some(number()? / 255.0).filter(|&m| m >= 0.0),
        _ => return Err(format!("{key}={value}: unknown setting")),
    }
    Ok(())
}

fn run(args: &[String]) -> Result<(), String> {
    let [dir, width, height, scale, settings @ ..] = args else {
        return Err("usage: temporal_replay DIR WIDTH HEIGHT SCALE [key=value ...]".into());
    };
    let size = |s: &String| s.parse::<usize>().map_err(|_| format!("{s}: not a size"));
    let (width, height, scale) = (size(width)?, size(height)?, size(scale)?);
    let mut config = TemporalConfig::default();
    let (mut model, mut save, mut with_niqe) = ("model.rgb".to_owned(), None, false);
    for pair in settings {
        let (key, value) = pair
            .split_once('=')
            .ok_or(format!("{pair}: not key=value"))?;
        match key {
            "model" => model = value.to_owned(),
            "save" => save = Some(value.to_owned()),
            "niqe" => with_niqe = value == "1",
            _ => setting(&mut config, key, value)?,
        }
    }
    let dir = Path::new(dir);
    let references = frames(&dir.join("reference.rgb"), width, height)?;
    let outputs = frames(&dir.join(model), width, height)?;
    let mut stage = Stabilizer::new(config);
    let (mut baselines, mut stabilized, mut pairs) = (Vec::new(), Vec::new(), Vec::new());
    for (t, (reference, output)) in references.iter().zip(&outputs).enumerate() {
        let small = rounded(&bicubic(reference, width / scale, height / scale));
        baselines.push(rounded(&bicubic(&small, width, height)));
        let restarts = stage.restarts();
        stabilized.push(rounded(&stage.process(&small, output.clone())));
        if stage.restarts() == restarts {
            pairs.push(t);
        }
    }
    if let Some(save) = save {
        let raw: Vec<u8> = stabilized.iter().flat_map(|f| f.to_rgb8()).collect();
        std::fs::write(&save, raw).map_err(|e| format!("{save}: {e}"))?;
    }
    println!(
        "{} frames, x{scale}, {config:?}, restarts {}",
        stabilized.len(),
        stage.restarts()
    );
    for (name, run) in [
        ("bicubic", &baselines),
        ("off", &outputs),
        ("on", &stabilized),
    ] {
        let psnr = run
            .iter()
            .zip(&references)
            .map(|(a, b)| quality(a, b).psnr_y)
            .sum::<f64>()
            / run.len() as f64;
        let score = |s: Option<f64>| s.map_or("-".to_owned(), |s| format!("{s:.3}"));
        let niqe = if with_niqe {
            let scores: Vec<f64> = run.iter().filter_map(|f| niqe_rgb(f).ok()).collect();
            format!(
                " NIQE {:.3}",
                scores.iter().sum::<f64>() / scores.len().max(1) as f64
            )
        } else {
            String::new()
        };
        println!(
            "{name:<8} flicker {} shimmer {} Y-PSNR {psnr:.3}{niqe}",
            score(temporal_difference(run, &references)),
            score(shimmer(run, &references)),
        );
    }
    println!(
        "within shots, by the reference's own change: flicker / mean |error| (share of pixels)"
    );
    for (name, run) in [
        ("bicubic", &baselines),
        ("off", &outputs),
        ("on", &stabilized),
    ] {
        let classes = by_motion(run, &references, &pairs);
        let parts: Vec<String> = CLASSES
            .iter()
            .zip(classes)
            .map(|((class, _), (share, flicker, error))| {
                format!("{class} {flicker:.3} / {error:.3} ({:.0} %)", 100.0 * share)
            })
            .collect();
        println!("{name:<8} {}", parts.join(", "));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("temporal_replay: {message}");
            ExitCode::FAILURE
        }
    }
}
