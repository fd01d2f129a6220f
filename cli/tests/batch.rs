//! `gendr upscale DIR_IN DIR_OUT`: a folder tree upscaled file by file,
//! outputs at the mirrored paths, finished ones skipped, other files passed
//! over, failures listed, nothing partial left. Outputs are read by ffprobe.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use gendr_test_support::{
    ffmpeg, ffprobe_frame_times, ffprobe_json, spawn_slow_upscale, stderr, upscale,
};

/// A 64×48 H.264 clip of `frames` frames at 10 fps, with AAC audio when asked.
fn clip(path: &Path, frames: u32, audio: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let seconds = format!("{}", f64::from(frames) / 10.0);
    let mut args = vec!["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10"];
    if audio {
        args.extend(["-f", "lavfi", "-i", "sine=frequency=440", "-c:a", "aac"]);
    }
    // -t, not -frames:v, which would cut the audio short.
    args.extend(["-t", &seconds, "-c:v", "libx264", "-pix_fmt", "yuv420p"]);
    args.push(path.to_str().unwrap());
    ffmpeg(&args);
}

/// Every file below `dir`, relative to it, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn stream<'a>(probe: &'a serde_json::Value, kind: &str) -> Option<&'a serde_json::Value> {
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == kind)
}

fn mtime(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn a_tree_is_mirrored_finished_outputs_skipped_and_every_failure_listed() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in"), dir.path().join("out"));
    clip(&input.join("day1/good.mp4"), 8, true);
    clip(&input.join("done.mp4"), 4, false);
    // A truncated MP4: its index (moov, written last) is cut away.
    clip(&dir.path().join("whole.mp4"), 8, false);
    let whole = std::fs::read(dir.path().join("whole.mp4")).unwrap();
    std::fs::write(input.join("broken.mp4"), &whole[..whole.len() / 2]).unwrap();
    std::fs::write(input.join("notes.txt"), "shot on the first day\n").unwrap();
    // Finished by an earlier run: must be left as it is.
    std::fs::create_dir_all(&output).unwrap();
    std::fs::copy(input.join("done.mp4"), output.join("done.mp4")).unwrap();
    let finished_at = mtime(&output.join("done.mp4"));
    std::thread::sleep(Duration::from_millis(20));

    let out = upscale(&["-m", "fast"], &input, &output);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        tree(&output),
        vec!["day1/good.mp4", "done.mp4"],
        "only finished outputs, no partial or lock files: {err}"
    );
    assert_eq!(mtime(&output.join("done.mp4")), finished_at);
    assert!(
        err.contains("skipping done.mp4") && err.contains("already done"),
        "{err}"
    );
    assert!(
        err.contains("skipping notes.txt: not a video"),
        "the text file is passed over, not failed: {err}"
    );
    let failed: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("gendr: failed:"))
        .collect();
    assert!(
        !failed.is_empty()
            && failed
                .iter()
                .all(|l| l.contains("broken.mp4") && l.contains("not a playable media file")),
        "the truncated file is the one failure, with its reason: {err}"
    );
    assert!(
        err.contains("1 written, 1 already done, 1 not video, 1 failed"),
        "{err}"
    );
    assert!(err.contains("gendr: error: 1 file(s) failed"), "{err}");

    let good = output.join("day1/good.mp4");
    let probe = ffprobe_json(&good);
    let video = stream(&probe, "video").expect("a video stream");
    assert_eq!(
        (&video["width"], &video["height"]),
        (&128.into(), &96.into())
    );
    assert!(stream(&probe, "audio").is_some(), "audio kept");
    assert_eq!(
        ffprobe_frame_times(&good),
        ffprobe_frame_times(&input.join("day1/good.mp4"))
    );

    // Run again: everything finished is skipped, the failure stays one.
    let again = upscale(&["-q", "-m", "fast"], &input, &output);
    let err = stderr(&again);
    assert_eq!(again.status.code(), Some(1), "{err}");
    assert!(
        err.contains("0 written, 2 already done, 1 not video, 1 failed"),
        "{err}"
    );
    assert_eq!(tree(&output), vec!["day1/good.mp4", "done.mp4"]);
}

#[test]
fn outputs_keep_an_mp4_mkv_or_mov_container_and_others_become_mkv_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    clip(&input.join("a.mov"), 3, false);
    std::fs::create_dir_all(&input).unwrap();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=10",
        "-frames:v",
        "3",
        "-c:v",
        "mpeg4",
        input.join("b.avi").to_str().unwrap(),
    ]);

    let output = dir.path().join("out");
    let out = upscale(&["-q", "-m", "fast"], &input, &output);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tree(&output), vec!["a.mov", "b.mkv"]);
    let probe = ffprobe_json(&output.join("b.mkv"));
    assert!(
        probe["format"]["format_name"]
            .as_str()
            .unwrap()
            .contains("matroska"),
        "{probe}"
    );

    let output = dir.path().join("out-mp4");
    let out = upscale(&["-q", "-m", "fast", "--container", "mp4"], &input, &output);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tree(&output), vec!["a.mp4", "b.mp4"]);
    assert_eq!(ffprobe_frame_times(&output.join("b.mp4")).len(), 3);
}

#[test]
fn ctrl_c_stops_the_batch_keeping_what_finished_and_nothing_partial() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in"), dir.path().join("out"));
    clip(&input.join("a.mp4"), 2, false);
    clip(&input.join("b.mp4"), 10, false);
    // A deliberately slow model: b.mp4 is still running when Ctrl-C comes.
    let mut child = spawn_slow_upscale(&["-q"], &input, &output);
    // Read to the end on a thread: a closed pipe would end gendr early.
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = BufReader::new(child.stderr.take().unwrap());
    let lines = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in reader.lines() {
            let line = line.unwrap();
            let _ = tx.send(line.clone());
            all.push(line);
        }
        all.join("\n")
    });
    let first_done = |l: &String| l.contains("wrote") && l.contains("a.mp4");
    let seen: Vec<String> = rx.iter().take_while(|l| !first_done(l)).collect();
    assert!(
        output.join("a.mp4").exists(),
        "a.mp4 written first: {seen:?}"
    );
    let started = Instant::now();
    while !tree(&output).iter().any(|n| n.ends_with(".gendr-partial")) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "b.mp4 never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    let rest = lines.join().unwrap();
    assert_eq!(status.code(), Some(1), "{rest}");
    assert!(rest.contains("interrupted after 1 of 2"), "{rest}");
    assert_eq!(tree(&output), vec!["a.mp4"], "{rest}");
    assert_eq!(ffprobe_frame_times(&output.join("a.mp4")).len(), 2);
}

#[test]
fn a_folder_is_refused_as_its_own_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    clip(&input.join("a.mp4"), 2, false);
    let out = upscale(&["-q", "-m", "fast"], &input, &input);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the output folder is the input folder"),
        "{}",
        stderr(&out)
    );
    assert_eq!(tree(&input), vec!["a.mp4"]);
}
