//! gendr-core-bench end to end on the CPU provider: the report's facts agree
//! with each other, and bad input is one line and a failure exit.

use std::process::Command;

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gendr-core-bench"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn synthetic_frames_give_a_consistent_report() {
    let out = bench(&[
        "--synthetic",
        "96x64",
        "-n",
        "4",
        "--model",
        "fast",
        "--provider",
        "cpu",
        "--threads",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["provider"], "cpu");
    assert_eq!(r["frames"], 4);
    assert_eq!(r["input_size"], serde_json::json!([96, 64]));
    assert_eq!(r["output_size"], serde_json::json!([192, 128]));
    assert!(r["tiles_per_frame"].as_u64().unwrap() >= 1);
    assert!(r["pipelined_vs_sequential_max_diff"].as_u64().unwrap() <= 1);
    for rate in ["model_only_fps", "sequential_fps", "pipelined_fps"] {
        assert!(r[rate].as_f64().unwrap() > 0.0, "{rate}");
    }
    let ratio = r["pipelined_fps"].as_f64().unwrap() / r["model_only_fps"].as_f64().unwrap();
    assert!((ratio - r["pipelined_over_model_only"].as_f64().unwrap()).abs() < 1e-9);
    assert!(
        r["peak_rss_bytes"].as_u64().unwrap() >= r["pipelined_peak_rss_bytes"].as_u64().unwrap()
    );
    assert!(r["gpu"].is_null());
    assert_eq!(r["gpu_monitor"], "not used: the CPU provider ran");
}

#[test]
fn bad_input_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("cut.y4m");
    std::fs::write(&truncated, b"YUV4MPEG2 W64 H48 C420jpeg\nFRAME\n\x10\x10").unwrap();
    let cases = [
        (
            vec!["--frames", truncated.to_str().unwrap()],
            "frame 0 is truncated",
        ),
        (
            vec!["--synthetic", "64x48", "--model", "/nonexistent.onnx"],
            "does not exist",
        ),
    ];
    for (args, expected) in cases {
        let out = bench(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(out.stdout.is_empty());
    }
    assert_eq!(bench(&["--synthetic", "1x5"]).status.code(), Some(2));
}
