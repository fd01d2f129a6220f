//! `gendr bench`, run as the user runs it. Throughput itself is not tested
//! (the machine is shared); the report's shape and sanity are.

use std::process::{Command, Output};

use gendr_test_support::{repo_root, stderr};
use serde_json::Value;

fn gendr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gendr"))
        .args(args)
        .env("GENDR_LOG", "warn")
        .current_dir(repo_root())
        .output()
        .expect("gendr runs")
}

fn number(report: &Value, key: &str) -> f64 {
    let v = report[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is a number in {report}"));
    assert!(v.is_finite() && v > 0.0, "{key} = {v}");
    v
}

#[test]
fn json_report_has_every_rate_and_sane_ratios() {
    let out = gendr(&[
        "bench",
        "--json",
        "--frames",
        "5",
        "--model",
        "fast",
        "--provider",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");

    let a = number(&report, "model_only_fps");
    let b = number(&report, "sequential_fps");
    let c = number(&report, "pipeline_fps");
    let c_over_a = number(&report, "pipeline_over_model_only");
    let c_over_b = number(&report, "pipeline_over_sequential");
    assert!((c_over_a - c / a).abs() < 1e-9 * c_over_a);
    assert!((c_over_b - c / b).abs() < 1e-9 * c_over_b);
    // The pipeline runs the same tiles as the model alone, and more besides:
    // several times faster would mean frames were skipped.
    assert!(c_over_a < 3.0, "pipelined {c} fps vs model only {a} fps");
    for run in ["model_only", "sequential", "pipeline"] {
        number(&report[run], "fps");
        number(&report[run], "mpixels_per_s");
        number(&report[run], "seconds");
    }
    // 640×360 output pixels per frame.
    let mp = report["pipeline"]["mpixels_per_s"].as_f64().unwrap();
    assert!((mp - c * 640.0 * 360.0 / 1e6).abs() < 1e-6 * mp);
    for stage in [
        "decode_convert",
        "tiles_infer_blend",
        "convert_encode",
        "temporal_stage",
    ] {
        number(&report["sequential_stages_s"], stage);
    }
    // The temporal stage's cost, side by side: fast runs it off by default,
    // so the pipelined figure is the stage-off run's.
    assert_eq!(report["temporal"], false);
    let off = number(&report["pipeline_temporal_off"], "fps");
    let on = number(&report["pipeline_temporal_on"], "fps");
    assert_eq!(off, c);
    assert!((number(&report, "temporal_on_over_off") - on / off).abs() < 1e-9);

    assert_eq!(report["frames"], 5);
    assert_eq!(report["input_size"], serde_json::json!([320, 180]));
    assert_eq!(report["output_size"], serde_json::json!([640, 360]));
    assert_eq!(report["provider"], "cpu");
    // ONNX Runtime runs the model's own types: no OpenVINO precision.
    assert!(report["precision"].is_null());
    assert!(report["tiles_per_frame"].as_u64().unwrap() >= 1);
    // On the CPU one tile per run, and no GPU figures.
    assert_eq!(report["tiles_per_run"], 1);
    assert!(report["pipeline_gpu"].is_null());

    let peak = number(&report, "peak_rss_bytes");
    let pipeline_peak = number(&report, "pipeline_peak_rss_bytes");
    assert!(pipeline_peak <= peak);
    assert!(peak < 8e9, "peak RSS {peak} bytes for a 320x180 clip");

    let machine = &report["machine"];
    assert!(machine["logical_cpus"].as_u64().unwrap() >= 1);
    number(machine, "memory_bytes");
    assert!(machine["onnxruntime"]
        .as_str()
        .unwrap()
        .contains("libonnxruntime"));
}

#[test]
fn table_names_the_three_runs() {
    let out = gendr(&[
        "bench",
        "--frames",
        "3",
        "--rounds",
        "2",
        "--model",
        "fast",
        "--provider",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for row in [
        "model only",
        "sequential",
        "pipelined",
        "pipelined / model only",
        "temporal stage off",
        "peak RSS",
    ] {
        assert!(text.contains(row), "{row:?} missing from:\n{text}");
    }
}

#[test]
fn a_missing_clip_is_one_line() {
    let out = gendr(&["bench", "--input", "no-such-clip.mp4", "--model", "fast"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("no-such-clip.mp4: no such file"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn zero_frames_is_refused() {
    let out = gendr(&["bench", "--frames", "0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--frames"), "{}", stderr(&out));
}
