//! `gendr bench`, run as the user runs it. Throughput itself is not tested
//! (the machine is shared); the report's shape and sanity are.

use std::process::Output;

use gendr_test_support::{gendr, repo_root, run, stderr};
use serde_json::Value;

/// `gendr ARGS` in the checkout (bench's default clip is a path inside it),
/// logging warnings only.
fn gendr_in_checkout(args: &[&str]) -> Output {
    run(gendr()
        .args(args)
        .env("GENDR_LOG", "warn")
        .current_dir(repo_root()))
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
    let out = gendr_in_checkout(&[
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

    // Into fakesink: the same frames with the encoder left out.
    let no_encoder = number(&report["pipeline_no_encoder"], "fps");
    assert!((number(&report, "pipeline_no_encoder_over_model_only") - no_encoder / a).abs() < 1e-9);
    // x264 holds frames back until the end of the stream: that drain lies
    // inside the pipelined run.
    let drain = report["pipeline_encoder_drain_s"].as_f64().unwrap();
    assert!(drain >= 0.0 && drain <= number(&report["pipeline"], "seconds"));
    // CPU time by run and by thread (a few frames of the fast model may
    // take less than a clock tick in a run, so zero is allowed).
    for run in ["model_only_cpu", "pipeline_cpu", "pipeline_no_encoder_cpu"] {
        let cpu = &report[run];
        let per_frame = cpu["cpu_s_per_frame"].as_f64().unwrap();
        assert!(per_frame.is_finite() && per_frame >= 0.0, "{run}: {cpu}");
        let threads = cpu["by_thread"].as_array().unwrap();
        let by_thread: f64 = threads.iter().map(|t| t["cpu_s"].as_f64().unwrap()).sum();
        // The threads alive at the end are part of the process's total.
        assert!(by_thread <= per_frame * 5.0 + 0.02, "{run}: {cpu}");
        for t in threads {
            assert!(!t["name"].as_str().unwrap().is_empty());
            assert!(t["threads"].as_u64().unwrap() >= 1);
        }
    }
    // The model's share of the pipelined run's CPU (null where the run
    // took less than a clock tick).
    if let Some(share) = report["pipeline_model_cpu_share"].as_f64() {
        assert!((0.0..=1.0).contains(&share), "{share}");
    }
    let stages = &report["sequential_stages_s"];
    assert!(stages["convert_encode_cpu"].as_f64().unwrap() >= 0.0);

    assert_eq!(report["x264_preset"], "medium");
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
    let out = gendr_in_checkout(&[
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
    let out = gendr_in_checkout(&["bench", "--input", "no-such-clip.mp4", "--model", "fast"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("no-such-clip.mp4: no such file"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn zero_frames_is_refused() {
    let out = gendr_in_checkout(&["bench", "--frames", "0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--frames"), "{}", stderr(&out));
}
