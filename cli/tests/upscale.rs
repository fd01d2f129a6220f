//! `gendr upscale` end to end: real decode, gendrsr, x264, mux, audio copy;
//! and what a failed run leaves behind (nothing).

use std::path::Path;
use std::process::Command;

use gst::prelude::*;

use gendr_test_support::{discover, error_lines, gendr, pipeline_with_sink, repo, run, stderr};
use gst_pbutils::prelude::*;

struct Probe {
    width: u32,
    height: u32,
    duration: gst::ClockTime,
    audio_codecs: Vec<String>,
}

fn probe(path: &Path) -> Probe {
    let info = discover(path);
    let video = info.video_streams();
    let v = video.first().expect("a video stream");
    Probe {
        width: v.width(),
        height: v.height(),
        duration: info.duration().unwrap(),
        audio_codecs: info
            .audio_streams()
            .iter()
            .map(|a| a.caps().unwrap().structure(0).unwrap().name().to_string())
            .collect(),
    }
}

/// Decodes every video frame and returns their timestamps.
fn frame_times(path: &Path) -> Vec<gst::ClockTime> {
    let (pipeline, sink) = pipeline_with_sink(&format!(
        "filesrc location=\"{}\" ! decodebin ! video/x-raw ! appsink name=sink sync=false",
        path.display()
    ));
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut times = Vec::new();
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(30)) {
        times.push(sample.buffer().unwrap().pts().unwrap());
    }
    assert!(sink.is_eos(), "decoding {} stalled", path.display());
    pipeline.set_state(gst::State::Null).unwrap();
    times
}

fn only_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn upscales_a_clip_with_audio_keeping_frames_timing_and_sound() {
    let dir = tempfile::tempdir().unwrap();
    let input = repo("samples/bbb_320x180_2s.mp4");
    let output = dir.path().join("out.mp4");
    let out = run(gendr()
        .args(["upscale", "--quiet", "--model", "fast"])
        .arg(&input)
        .arg(&output));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        only_files(dir.path()),
        vec!["out.mp4"],
        "no partial file is left"
    );

    let (src, dst) = (probe(&input), probe(&output));
    assert_eq!((dst.width, dst.height), (2 * src.width, 2 * src.height));
    let diff = dst.duration.nseconds().abs_diff(src.duration.nseconds());
    assert!(
        diff <= 40_000_000,
        "durations {} vs {}",
        src.duration,
        dst.duration
    );
    assert_eq!(
        dst.audio_codecs, src.audio_codecs,
        "audio is copied as it was"
    );
    assert!(!dst.audio_codecs.is_empty());

    let (a, b) = (frame_times(&input), frame_times(&output));
    assert_eq!(a.len(), b.len(), "frame count");
    assert_eq!(a, b, "frame timestamps");
}

#[test]
fn mkv_output_and_x265_work() {
    let dir = tempfile::tempdir().unwrap();
    let input = repo("samples/bikes_160x68_2s.mp4");
    let output = dir.path().join("out.mkv");
    let out = run(gendr()
        .args([
            "upscale",
            "-q",
            "--model",
            "fast",
            "--codec",
            "x265",
            "--preset",
            "ultrafast",
        ])
        .arg(&input)
        .arg(&output));
    assert!(out.status.success(), "{}", stderr(&out));
    let p = probe(&output);
    assert_eq!((p.width, p.height), (320, 136));
    assert_eq!(frame_times(&output).len(), frame_times(&input).len());
}

#[test]
fn default_model_runs_with_the_progress_summary() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("o.mp4");
    let out = run(gendr()
        .arg("upscale")
        .arg(repo("samples/bikes_160x68_2s.mp4"))
        .arg(&output));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("wrote"), "{}", stderr(&out));
    assert_eq!(frame_times(&output).len(), 50);
}

#[test]
fn the_start_line_says_whether_the_temporal_stage_runs() {
    let dir = tempfile::tempdir().unwrap();
    let run = |model: &str, temporal: Option<&str>| {
        let mut args = vec!["-m", model];
        if let Some(mode) = temporal {
            args.extend(["--temporal", mode]);
        }
        start_lines(dir.path(), &args)
    };
    // fast is measured no steadier with it: auto leaves it off.
    assert!(run("fast", None).contains("model fast (temporal stage off)"));
    assert!(run("fast", Some("on")).contains("model fast (temporal stage on)"));
    let bad = gendr_test_support::run(
        gendr()
            .args(["upscale", "--temporal", "sometimes"])
            .arg(repo("samples/bikes_160x68_2s.mp4"))
            .arg(dir.path().join("o.mp4")),
    );
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("possible values: auto, on, off"));
}

/// What a successful `gendr upscale --overwrite ARGS` of the bikes sample
/// into `dir` prints.
fn start_lines(dir: &Path, args: &[&str]) -> String {
    let out = run(gendr()
        .args(["upscale", "--overwrite"])
        .args(args)
        .arg(repo("samples/bikes_160x68_2s.mp4"))
        .arg(dir.join("o.mp4")));
    assert!(out.status.success(), "{}", stderr(&out));
    stderr(&out)
}

#[test]
fn a_line_names_what_runs_the_model_once_it_has_started() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| start_lines(dir.path(), &[&["-m", "fast"], extra].concat());
    assert!(run(&["--provider", "cpu"]).contains("gendr: model fast runs on cpu\n"));
    // auto decides when gendrsr starts: whatever it took is named.
    let auto = run(&[]);
    assert!(
        auto.contains("gendr: model fast runs on cpu\n")
            || auto.contains("gendr: model fast runs on openvino "),
        "{auto}"
    );
    assert!(!run(&["-q"]).contains("runs on"));
}

/// Runs a failing upscale into an empty folder: non-zero exit, one line of
/// error naming `expected`, and nothing left in the folder.
fn fails_cleanly(args: &[&str], input: &Path, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.mp4");
    let out = run(gendr().arg("upscale").args(args).arg(input).arg(&output));
    assert!(
        !out.status.success(),
        "{args:?} {}: should fail",
        input.display()
    );
    let err = stderr(&out);
    let lines = error_lines(&out);
    assert_eq!(lines.len(), 1, "one error line: {err}");
    assert!(
        lines[0].contains(expected),
        "expected {expected:?} in {err}"
    );
    assert!(
        only_files(dir.path()).is_empty(),
        "left behind: {:?}",
        only_files(dir.path())
    );
}

#[test]
fn bad_inputs_fail_with_one_line_and_leave_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let sample = std::fs::read(repo("samples/bbb_320x180_2s.mp4")).unwrap();
    let truncated = scratch.path().join("truncated.mp4");
    std::fs::write(&truncated, &sample[..sample.len() / 3]).unwrap();
    let text = scratch.path().join("notes.mp4");
    std::fs::write(&text, "this is not a video\n").unwrap();
    let audio_only = scratch.path().join("tone.mp4");
    let made = Command::new("gst-launch-1.0")
        .args([
            "-q",
            "audiotestsrc",
            "num-buffers=20",
            "!",
            "avenc_aac",
            "!",
            "mp4mux",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", audio_only.display()))
        .status()
        .unwrap();
    assert!(made.success());

    let sample = repo("samples/bbb_320x180_2s.mp4");
    fails_cleanly(
        &["-m", "fast"],
        &scratch.path().join("missing.mp4"),
        "no such file",
    );
    fails_cleanly(&["-m", "fast"], &truncated, "truncated");
    fails_cleanly(&["-m", "fast"], &text, "not a playable media file");
    fails_cleanly(&["-m", "fast"], &audio_only, "no video stream");
    fails_cleanly(&["-m", "no-such-model"], &sample, "not a preset name");
    let wrong = repo("tests/data/wrong_channels.onnx");
    fails_cleanly(&["-m", wrong.to_str().unwrap()], &sample, "channels");
}

#[test]
fn unwritable_output_and_unknown_container_are_refused() {
    let sample = repo("samples/bbb_320x180_2s.mp4");
    let out = run(gendr()
        .args(["upscale", "-m", "fast"])
        .arg(&sample)
        .arg("/nonexistent-dir/out.mp4"));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cannot write"), "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let out = run(gendr()
        .args(["upscale", "-m", "fast"])
        .arg(&sample)
        .arg(dir.path().join("x.avi")));
    assert!(
        stderr(&out).contains("unknown output container"),
        "{}",
        stderr(&out)
    );
    assert!(only_files(dir.path()).is_empty());
}

#[test]
fn missing_runtime_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(gendr()
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .args(["upscale", "-q", "-m", "fast"])
        .arg(repo("samples/bbb_320x180_2s.mp4"))
        .arg(dir.path().join("o.mp4")));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("ONNX Runtime library not found") && err.contains("ORT_DYLIB_PATH"),
        "{err}"
    );
    assert!(only_files(dir.path()).is_empty());
}

#[test]
fn gst_inspect_works_without_the_runtime() {
    // The plugin is the cdylib next to the binary.
    let dir = Path::new(env!("CARGO_BIN_EXE_gendr")).parent().unwrap();
    assert!(
        dir.join("libgstgendrsr.so").is_file(),
        "build the workspace first"
    );
    let registry = tempfile::tempdir().unwrap();
    let out = Command::new("gst-inspect-1.0")
        .arg("gendrsr")
        .env("GST_PLUGIN_PATH", dir)
        .env("GST_REGISTRY", registry.path().join("registry.bin"))
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    for property in [
        "model",
        "tile-size",
        "tile-overlap",
        "provider",
        "precision",
        "device-id",
        "streams",
        "threads",
        "max-frames-in-flight",
        "trt-cache-dir",
    ] {
        assert!(text.contains(property), "{property} documented");
    }
}

#[test]
fn help_shows_examples() {
    let out = run(gendr().arg("--help"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Examples:") && text.contains("gendr upscale"),
        "{text}"
    );
}

#[test]
fn interrupting_a_run_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("o.mp4");
    let child = gendr()
        .args(["upscale", "-q"])
        .arg(repo("samples/bbb_320x180_2s.mp4"))
        .arg(&output)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the partial file is being written, then interrupt.
    let started = std::time::Instant::now();
    while !only_files(dir.path())
        .iter()
        .any(|n| n.ends_with(".gendr-partial"))
        && started.elapsed() < std::time::Duration::from_secs(20)
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // A hidden, unique partial file next to the output, and the output's lock.
    let names = only_files(dir.path());
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.contains(&".o.mp4.gendr-lock".to_string()),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.starts_with(".o.mp4.") && n.ends_with(".gendr-partial")),
        "{names:?}"
    );
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "an interrupted run is not a success");
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert!(
        only_files(dir.path()).is_empty(),
        "left behind: {:?}",
        only_files(dir.path())
    );
}
