//! `gendr models` and `gendr eval`, run as the user runs them.

use std::path::Path;
use std::process::{Command, Output};

use gendr_test_support::{gendr, repo_root, run};
use serde_json::Value;

/// The eval set: real footage first, then photos (tests/data/eval/README.md).
const BIKES: [&str; 3] = ["bikes_f040", "bikes_f120", "bikes_f200"];
const PHOTOS: [&str; 4] = ["astronaut", "coffee", "chelsea", "rocket"];
/// What the default model must gain over bicubic, in dB of Y-PSNR.
const MIN_GAIN_DB: f64 = 1.5;
/// Pixels between the panels of the side-by-side PNG.
const GAP: u32 = 4;

/// `gendr ARGS`, logging warnings only.
fn gendr_quiet(args: &[&str]) -> Command {
    let mut cmd = gendr();
    cmd.args(args).env("GENDR_LOG", "warn");
    cmd
}

fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

/// Width and height of a PNG, after decoding all of it.
fn png_size(path: &Path) -> (u32, u32) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .expect("a PNG header");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).expect("PNG data");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    (info.width, info.height)
}

fn assert_one_line_error(output: &Output, needle: &str) {
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("gendr: error: "), "{stderr}");
    assert!(stderr.contains(needle), "{stderr}");
}

#[test]
fn models_json_lists_every_preset_with_its_file() {
    let list = json(&run(&mut gendr_quiet(&["models", "--json"])));
    let list = list.as_array().expect("an array");
    assert!(list.iter().any(|m| m["name"] == "default"), "{list:?}");
    for m in list {
        let path = Path::new(m["path"].as_str().expect("path"));
        assert!(path.is_absolute() && path.is_file(), "{m}");
        assert!(m["scale"].as_u64().expect("scale") >= 1, "{m}");
        assert!(!m["license"].as_str().expect("license").is_empty(), "{m}");
        for key in ["params", "speed", "source", "description"] {
            assert!(!m[key].is_null(), "{key} in {m}");
        }
    }
}

#[test]
fn models_table_names_every_preset() {
    let output = run(&mut gendr_quiet(&["models"]));
    assert!(output.status.success());
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.starts_with("NAME"), "{table}");
    for line in ["default ", "fast "] {
        assert!(table.lines().any(|l| l.starts_with(line)), "{table}");
    }
}

#[test]
fn default_model_beats_bicubic_on_the_eval_set() {
    let dir = tempfile::tempdir().unwrap();
    // Every image at once, one inference thread each: the machine's cores
    // are shared between processes rather than within one.
    let runs: Vec<_> = BIKES
        .iter()
        .chain(&PHOTOS)
        .map(|name| {
            let reference = repo_root().join(format!("tests/data/eval/{name}.png"));
            let out = dir.path().join(format!("{name}.png"));
            let child = gendr_quiet(&["eval", "--json", "--threads", "1", "--out"])
                .arg(&out)
                .arg(&reference)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (name, out, child)
        })
        .collect();
    let mut gains = Vec::new();
    for (name, out, child) in runs {
        let report = json(&child.wait_with_output().unwrap());
        let frames = report["frames"].as_array().unwrap();
        assert_eq!(frames.len(), 1, "{name}: an image is one frame");
        let gain = report["mean"]["gain_psnr_y"].as_f64().unwrap();
        let model = report["mean"]["model_psnr_y"].as_f64().unwrap();
        let bicubic = report["mean"]["bicubic_psnr_y"].as_f64().unwrap();
        assert!((gain - (model - bicubic)).abs() < 1e-9, "{name}: {report}");
        assert!(
            report["mean"]["model_ssim_y"].as_f64().unwrap()
                > report["mean"]["bicubic_ssim_y"].as_f64().unwrap(),
            "{name}: {report}"
        );
        if BIKES.contains(name) {
            assert!(gain >= MIN_GAIN_DB, "{name}: +{gain:.2} dB");
        }
        // The eval images are above NIQE's 193×193; one frame is its own mean.
        for key in ["model_niqe", "bicubic_niqe"] {
            let niqe = report["mean"][key]
                .as_f64()
                .unwrap_or_else(|| panic!("{key}: {report}"));
            assert!(niqe.is_finite() && niqe > 0.0, "{name}: {key} {niqe}");
            assert_eq!(frames[0][key], report["mean"][key], "{name}");
        }
        // The reference's own NIQE, through the CLI, is scikit-video's.
        let reference_niqe = report["mean"]["reference_niqe"].as_f64().unwrap();
        let expected = scikit_video_niqe()[&format!("tests/data/eval/{name}.png")];
        assert!(
            (reference_niqe - expected).abs() <= 0.01 * expected,
            "{name}: {reference_niqe} vs {expected}"
        );
        assert!(
            report["model_temporal"].is_null(),
            "an image has no motion: {report}"
        );
        assert_eq!(report["temporal_frames"], 0);
        // Three panels of up to 256×256 (the images are at least that big).
        assert_eq!(png_size(&out), (3 * 256 + 2 * GAP, 256), "{name}");
        eprintln!(
            "{name}: {bicubic:.2} → {model:.2} dB (+{gain:.2}), NIQE {:.2} → {:.2}",
            report["mean"]["bicubic_niqe"].as_f64().unwrap(),
            report["mean"]["model_niqe"].as_f64().unwrap()
        );
        gains.push(gain);
    }
    let mean = gains.iter().sum::<f64>() / gains.len() as f64;
    assert!(mean >= MIN_GAIN_DB, "mean +{mean:.2} dB over {gains:?}");
}

#[test]
fn a_video_is_sampled_and_the_picture_lands_beside_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let clip = repo_root().join("samples/bikes_160x68_2s.mp4");
    let output = run(
        gendr_quiet(&["eval", "--model", "fast", "--frames", "2", "--json"])
            .arg(&clip)
            .current_dir(dir.path()),
    );
    let report = json(&output);
    let frames = report["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 2, "{report}");
    assert!(frames[1]["frame"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(
        (frames[0]["width"].as_u64(), frames[0]["height"].as_u64()),
        (Some(160), Some(68))
    );
    // 160×68 is below NIQE's 193×193: no score rather than a made-up one.
    assert!(frames[0]["model_niqe"].is_null() && report["mean"]["bicubic_niqe"].is_null());
    assert_eq!(
        report["temporal_frames"], 8,
        "the default run of consecutive frames"
    );
    for key in ["model_temporal", "bicubic_temporal"] {
        let flicker = report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: {report}"));
        assert!(flicker > 0.0 && flicker < 10.0, "{key} {flicker}");
    }
    let picture = dir.path().join("bikes_160x68_2s-eval.png");
    assert_eq!(report["side_by_side"], "bikes_160x68_2s-eval.png");
    // One row per frame.
    assert_eq!(png_size(&picture), (3 * 160 + 2 * GAP, 2 * 68 + GAP));
}

/// Flicker is measured: a model that adds fresh noise to every frame
/// (tests/data/noisy_x2.onnx) must score worse than bicubic, and the default
/// model no worse than bicubic, on real footage.
#[test]
fn temporal_score_catches_a_flickering_model_and_passes_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let clip = repo_root().join("samples/bikes_160x68_2s.mp4");
    let noisy = repo_root().join("tests/data/noisy_x2.onnx");
    let output = run(
        gendr_quiet(&["eval", "--json", "--frames", "1", "--temporal-frames", "12"])
            .args(["--model".as_ref(), noisy.as_os_str()])
            .args(["--model", "default"])
            .arg(&clip)
            .current_dir(dir.path()),
    );
    let reports = json(&output);
    let reports = reports.as_array().expect("an array, one report per model");
    assert_eq!(reports.len(), 2);
    let (noisy, default) = (&reports[0], &reports[1]);
    assert_eq!(default["model"], "default");
    let flicker = |r: &Value, key: &str| r[key].as_f64().unwrap_or_else(|| panic!("{key}: {r}"));
    let bicubic = flicker(default, "bicubic_temporal");
    // Both ×2: the same bicubic baseline.
    assert_eq!(flicker(noisy, "bicubic_temporal"), bicubic);
    let (noisy_flicker, default_flicker) = (
        flicker(noisy, "model_temporal"),
        flicker(default, "model_temporal"),
    );
    eprintln!(
        "temporal over frames 0-11 of bikes_160x68_2s (Y levels): bicubic {bicubic:.3}, default {default_flicker:.3}, noisy {noisy_flicker:.3}"
    );
    assert!(
        noisy_flicker > 2.0 * bicubic,
        "noisy {noisy_flicker} vs bicubic {bicubic}"
    );
    assert!(
        default_flicker <= bicubic,
        "default {default_flicker} vs bicubic {bicubic}"
    );
    // One row of the first frame: bicubic | noisy | default | reference.
    assert_eq!(
        png_size(&dir.path().join("bikes_160x68_2s-eval.png")),
        (4 * 160 + 3 * GAP, 68)
    );
}

/// Footage with no ground truth, upscaled as it is: no fidelity scores,
/// NIQE on the 640×360 outputs, and flicker measured against bicubic's motion.
#[test]
fn without_a_reference_niqe_scores_the_outputs_and_flicker_is_against_bicubic() {
    let dir = tempfile::tempdir().unwrap();
    let clip = repo_root().join("samples/bbb_320x180_2s.mp4");
    let noisy = repo_root().join("tests/data/noisy_x2.onnx");
    let output = run(
        gendr_quiet(&["eval", "--no-reference", "--json", "--frames", "1"])
            .args(["--temporal-frames", "4"])
            .args(["--model".as_ref(), noisy.as_os_str()])
            .args(["--model", "default"])
            .arg(&clip)
            .current_dir(dir.path()),
    );
    let reports = json(&output);
    let reports = reports.as_array().expect("one report per model");
    let (noisy, default) = (&reports[0], &reports[1]);
    for report in reports {
        let frame = &report["frames"][0];
        assert_eq!(
            (frame["width"].as_u64(), frame["height"].as_u64()),
            (Some(640), Some(360))
        );
        for key in [
            "model_psnr_y",
            "gain_psnr_y",
            "bicubic_ssim_y",
            "reference_niqe",
        ] {
            assert!(
                frame[key].is_null() && report["mean"][key].is_null(),
                "{key}: {report}"
            );
        }
        assert!(
            report["bicubic_temporal"].is_null(),
            "bicubic is the yardstick: {report}"
        );
        assert_eq!(report["no_reference"], true);
    }
    let score = |r: &Value, key: &str| r[key].as_f64().unwrap_or_else(|| panic!("{key}: {r}"));
    let niqe = |r: &Value, key: &str| score(&r["mean"], key);
    let (noisy_flicker, default_flicker) = (
        score(noisy, "model_temporal"),
        score(default, "model_temporal"),
    );
    let (default_niqe, bicubic_niqe) = (niqe(default, "model_niqe"), niqe(default, "bicubic_niqe"));
    eprintln!(
        "bbb_320x180_2s x2, no reference: NIQE bicubic {bicubic_niqe:.2}, default {default_niqe:.2}, noisy {:.2}; \
         temporal vs bicubic over frames 0-3: default {default_flicker:.3}, noisy {noisy_flicker:.3}",
        niqe(noisy, "model_niqe")
    );
    assert!(
        noisy_flicker > 4.0 * default_flicker,
        "noisy {noisy_flicker} vs default {default_flicker}"
    );
    // On real footage at 640×360 the default model reads as more natural than bicubic.
    assert!(
        default_niqe < bicubic_niqe,
        "default {default_niqe} vs bicubic {bicubic_niqe}"
    );
    // bicubic | noisy | default, no reference panel.
    assert_eq!(
        png_size(&dir.path().join("bbb_320x180_2s-eval.png")),
        (3 * 256 + 2 * GAP, 256)
    );
}

#[test]
fn several_models_print_one_table_with_a_bicubic_row_per_scale() {
    let dir = tempfile::tempdir().unwrap();
    let clip = repo_root().join("samples/bikes_160x68_2s.mp4");
    let output = run(
        gendr_quiet(&["eval", "-m", "fast", "-m", "default-x4", "--frames", "1"])
            .args(["--temporal-frames", "3"])
            .arg(&clip)
            .current_dir(dir.path()),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let table = String::from_utf8(output.stdout).unwrap();
    let header = table.lines().nth(1).unwrap_or_default();
    for column in ["Y-PSNR", "Y-SSIM", "NIQE", "temporal (frames 0-2)"] {
        assert!(header.contains(column), "{table}");
    }
    for row in ["bicubic x2 ", "bicubic x4 ", "fast ", "default-x4 "] {
        let line = table.lines().find(|l| l.starts_with(row));
        // Name, Y-PSNR, Y-SSIM, NIQE ("-": too small), temporal, and a time for models.
        let fields = line
            .unwrap_or_else(|| panic!("{row}in {table}"))
            .split_whitespace()
            .count();
        assert!(fields >= 5, "{row}in {table}");
    }
    assert!(
        table.contains("bicubic | fast | default-x4 | reference"),
        "{table}"
    );
}

#[test]
fn a_missing_reference_is_one_line() {
    let output = run(&mut gendr_quiet(&["eval", "no-such-reference.png"]));
    assert_one_line_error(&output, "no-such-reference.png");
}

#[test]
fn an_unknown_model_is_one_line() {
    let reference = repo_root().join("tests/data/eval/coffee.png");
    let dir = tempfile::tempdir().unwrap();
    let output = run(gendr_quiet(&["eval", "--model", "no-such-model"])
        .arg(&reference)
        .current_dir(dir.path()));
    assert_one_line_error(&output, "no-such-model");
    assert!(!dir.path().join("coffee-eval.png").exists());
}

#[test]
fn a_scale_the_model_lacks_is_one_line() {
    let reference = repo_root().join("tests/data/eval/coffee.png");
    let output = run(gendr_quiet(&["eval", "--scale", "3"]).arg(&reference));
    assert_one_line_error(&output, "--scale 3");
}

/// An 8-bit RGB PNG as gendr holds images.
fn load_png(path: &Path) -> gendr::frame::RgbImage {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .expect("a PNG header");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).expect("PNG data");
    assert_eq!(
        (info.color_type, info.bit_depth),
        (png::ColorType::Rgb, png::BitDepth::Eight),
        "{}",
        path.display()
    );
    pixels.truncate(info.buffer_size());
    gendr::frame::RgbImage::from_rgb8(info.width as usize, info.height as usize, &pixels).unwrap()
}

/// scikit-video's NIQE of each image in tests/data/niqe/expected.tsv, by
/// path from the repository root.
fn scikit_video_niqe() -> std::collections::BTreeMap<String, f64> {
    let expected =
        std::fs::read_to_string(repo_root().join("tests/data/niqe/expected.tsv")).unwrap();
    expected
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (name, score) = l.split_once('\t').expect("name<TAB>score");
            (name.to_owned(), score.parse().expect("a number"))
        })
        .collect()
}

/// gendr's NIQE against scikit-video's own `skvideo.measure.niqe`, whose
/// scores `scripts/niqe/niqe_reference.py expected` wrote to the fixture
/// (`make niqe-reference` recomputes them with live scikit-video and checks
/// the fixture still holds).
#[test]
fn niqe_agrees_with_scikit_video_within_one_percent() {
    let rows = scikit_video_niqe();
    assert!(rows.len() >= 10, "{rows:?}");
    let mut worst = 0.0f64;
    for (name, reference) in rows {
        let ours = gendr::niqe::niqe_rgb(&load_png(&repo_root().join(&name))).unwrap();
        let off = (ours - reference).abs() / reference;
        eprintln!(
            "{name}: gendr {ours:.6}, scikit-video {reference:.6} ({:+.6} %)",
            100.0 * (ours - reference) / reference
        );
        assert!(
            off <= 0.01,
            "{name}: gendr {ours}, scikit-video {reference}"
        );
        worst = worst.max(off);
    }
    eprintln!("worst disagreement {:.6} %", 100.0 * worst);
}

/// Shimmer beside flicker, for the model with and without the temporal
/// stage: a model that adds fresh noise to every frame shimmers, and the
/// stage, averaging its outputs where the motion is trusted, steadies it.
#[test]
fn eval_scores_shimmer_with_and_without_the_temporal_stage() {
    let dir = tempfile::tempdir().unwrap();
    let clip = repo_root().join("samples/bikes_160x68_2s.mp4");
    let noisy = repo_root().join("tests/data/noisy_x2.onnx");
    let run = |memory: Option<&str>| {
        json(&run(gendr_quiet(&[
            "eval",
            "--json",
            "--frames",
            "1",
            "--temporal-frames",
            "8",
        ])
        .args(
            memory
                .map(|k| ["--temporal-memory", k])
                .into_iter()
                .flatten(),
        )
        .args(["--model".as_ref(), noisy.as_os_str()])
        .arg(&clip)
        .current_dir(dir.path())))
    };
    // Without --temporal-memory the stage runs as gendrsr would run it for
    // this model: a model file gets K = 4.
    let report = run(None);
    let t = &report["temporal"];
    let score = |run: &str, key: &str| {
        t[run][key]
            .as_f64()
            .unwrap_or_else(|| panic!("{run}.{key}: {t}"))
    };
    assert_eq!(
        score("model", "flicker"),
        report["model_temporal"].as_f64().unwrap()
    );
    let (off, on, bicubic) = (
        score("model", "shimmer"),
        score("stabilized", "shimmer"),
        score("bicubic", "shimmer"),
    );
    assert!(off > bicubic, "noisy {off} vs bicubic {bicubic}");
    assert!(on < 0.8 * off, "stage on {on} vs off {off}");
    assert!(score("stabilized", "flicker") < score("model", "flicker"));
    assert_eq!(t["memory"], 4);
    // Frame 0 has no past: it is the model's own.
    assert_eq!(t["restarts"], 1);
    assert_eq!(t["stage_change_per_frame"][0], 0.0);
    assert_eq!(t["stage_change_per_frame"].as_array().unwrap().len(), 8);

    // Memory 0 leaves the stage out (the noisy model draws new noise each
    // run, so its own scores are not compared across runs).
    let without = run(Some("0"));
    assert!(without["temporal"]["stabilized"].is_null());
    assert!(without["temporal"]["model"]["shimmer"].as_f64().is_some());
}
