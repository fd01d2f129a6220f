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
//! start from `base=default` (the generative presets') or `base=detail`;
//! trust levels are in 8-bit levels. It prints flicker, shimmer and Y-PSNR
//! for bicubic, the model as it is and the model through the stage, with the
//! same metrics as `gendr eval`.

use std::path::Path;
use std::process::ExitCode;

use gendr::frame::RgbImage;
use gendr::metrics::{quality, shimmer, temporal_difference};
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

fn setting(config: &mut TemporalConfig, key: &str, value: &str) -> Result<(), String> {
    let bad = || format!("{key}={value}: not a number");
    let number = || value.parse::<f32>().map_err(|_| bad());
    let whole = || value.parse::<usize>().map_err(|_| bad());
    match key {
        "base" if value == "default" => *config = TemporalConfig::default(),
        "base" if value == "detail" => *config = TemporalConfig::detail_only(),
        "memory" => config.memory = whole()?,
        "block" => config.block = whole()?,
        "search" => config.search = whole()? as i32,
        "weight" => config.weight = number()?,
        "trust_below" => config.trust_below = number()? / 255.0,
        "distrust_above" => config.distrust_above = number()? / 255.0,
        "cut_below" => config.cut_below = number()?,
        "low_band" => config.low_band = number()?,
        "subpixel" => config.subpixel = whole()? as i32,
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
    for pair in settings {
        let (key, value) = pair
            .split_once('=')
            .ok_or(format!("{pair}: not key=value"))?;
        setting(&mut config, key, value)?;
    }
    let dir = Path::new(dir);
    let references = frames(&dir.join("reference.rgb"), width, height)?;
    let outputs = frames(&dir.join("model.rgb"), width, height)?;
    let mut stage = Stabilizer::new(config);
    let (mut baselines, mut stabilized) = (Vec::new(), Vec::new());
    for (reference, output) in references.iter().zip(&outputs) {
        let small = rounded(&bicubic(reference, width / scale, height / scale));
        baselines.push(rounded(&bicubic(&small, width, height)));
        stabilized.push(rounded(
            &stage.process(Luma::from_rgb(&small), output.clone()),
        ));
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
        println!(
            "{name:<8} flicker {} shimmer {} Y-PSNR {psnr:.3}",
            score(temporal_difference(run, &references)),
            score(shimmer(run, &references)),
        );
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
