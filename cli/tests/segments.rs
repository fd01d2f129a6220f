//! Segmented, resumable jobs (`gendr plan`, `run-segment`, `join`,
//! `upscale --resume`) against a plain `gendr upscale` of the same clip,
//! read back with ffmpeg/ffprobe; and what damaged, changed, foreign,
//! unwritable or full job folders give (one line, nothing finished lost).

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use gendr_test_support::{ffmpeg, ffprobe_frame_times, ffprobe_json, stderr};

/// Lossless (x264 at CRF 0 codes 8-bit 4:2:0 as High 4:4:4 Predictive,
/// checked below), so decoded frames can be compared bit for bit.
const OPTIONS: [&str; 4] = ["-m", "fast", "--crf", "0"];

fn gendr() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gendr"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("gendr runs")
}

/// 96×64, 25 fps, 4 s, with B-frames and a keyframe every `keyint`
/// frames, and AAC sine audio.
fn clip(dir: &Path, keyint: u32) -> PathBuf {
    let path = dir.join(format!("in-k{keyint}.mp4"));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=96x64:r=25:d=4",
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:d=4",
        "-c:v",
        "libx264",
        "-g",
        &keyint.to_string(),
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
        path.to_str().unwrap(),
    ]);
    path
}

fn ok(out: &Output) {
    assert!(out.status.success(), "{}", stderr(out));
}

/// The one error line of a failed run.
fn one_error(out: &Output) -> String {
    assert!(!out.status.success(), "should fail: {}", stderr(out));
    let text = stderr(out);
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "one error line: {text}");
    errors[0].to_string()
}

/// Per-frame md5 of decoded video (with pts), or per-packet md5 of the
/// audio as stored.
fn framemd5(path: &Path, audio: bool) -> Vec<String> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-i"]).arg(path);
    if audio {
        cmd.args(["-map", "0:a", "-c", "copy"]);
    } else {
        cmd.args(["-map", "0:v"]);
    }
    let out = cmd.args(["-f", "framemd5", "-"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn plain(input: &Path, output: &Path) {
    ok(&run(gendr()
        .args(["upscale", "-q"])
        .args(OPTIONS)
        .arg(input)
        .arg(output)));
}

fn plan(input: &Path, job: &Path) -> serde_json::Value {
    let out = run(gendr()
        .arg("plan")
        .arg(input)
        .arg("--job")
        .arg(job)
        .args(["--segment-seconds", "1"])
        .args(OPTIONS));
    ok(&out);
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.starts_with("4 segments"), "{line}");
    serde_json::from_slice(&std::fs::read(job.join("manifest.json")).unwrap()).unwrap()
}

fn run_segment(job: &Path, index: usize) -> Output {
    run(gendr()
        .args(["run-segment", "-q"])
        .arg(job)
        .arg(index.to_string()))
}

fn join(job: &Path, output: &Path) -> Output {
    run(gendr().args(["join", "-q"]).arg(job).arg(output))
}

/// Asserts two outputs hold the same frames, timestamps and audio.
fn assert_same(a: &Path, b: &Path) {
    assert_eq!(
        ffprobe_frame_times(a),
        ffprobe_frame_times(b),
        "frame times"
    );
    assert_eq!(framemd5(a, false), framemd5(b, false), "decoded frames");
    assert_eq!(framemd5(a, true), framemd5(b, true), "audio packets");
    let streams = |p: &Path| {
        ffprobe_json(p)["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["codec_name"].clone(),
                    s["nb_frames"].clone(),
                    s["duration"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(streams(a), streams(b), "streams");
}

#[test]
fn a_planned_run_joined_equals_a_plain_run_frame_for_frame() {
    let dir = tempfile::tempdir().unwrap();
    // Keyframes every 2 s: segments alternate between starting at a
    // keyframe and at an exact frame decoded from the keyframe before.
    let input = clip(dir.path(), 50);
    let job = dir.path().join("job");
    let manifest = plan(&input, &job);
    assert_eq!(
        std::fs::read_dir(&job).unwrap().count(),
        1,
        "plan writes manifest.json only"
    );
    let segments = manifest["segments"].as_array().unwrap();
    let starts: Vec<(u64, bool)> = segments
        .iter()
        .map(|s| {
            (
                s["first_frame"].as_u64().unwrap(),
                s["starts_at_keyframe"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(starts, [(0, true), (25, false), (50, true), (75, false)]);
    assert_eq!(manifest["frames"], 100);
    assert_eq!(manifest["format"], 1);
    assert_eq!(manifest["gendr_version"], env!("CARGO_PKG_VERSION"));

    // Out of order, one of them through --index-from.
    for index in [3, 1, 0] {
        ok(&run_segment(&job, index));
    }
    ok(&run(gendr()
        .args(["run-segment", "-q", "--index-from", "TASK"])
        .arg(&job)
        .env("TASK", "2")));
    let again = run_segment(&job, 2);
    ok(&again);
    assert!(
        stderr(&again).contains("segment 2 is already done"),
        "{}",
        stderr(&again)
    );

    let joined = dir.path().join("joined.mp4");
    ok(&join(&job, &joined));
    let reference = dir.path().join("plain.mp4");
    plain(&input, &reference);
    let profile = &ffprobe_json(&reference)["streams"][0]["profile"];
    assert_eq!(
        profile, "High 4:4:4 Predictive",
        "x264 at CRF 0 is lossless"
    );
    assert_eq!(ffprobe_frame_times(&joined).len(), 100);
    assert_same(&joined, &reference);

    // The same into Matroska.
    let joined_mkv = dir.path().join("joined.mkv");
    ok(&join(&job, &joined_mkv));
    let reference_mkv = dir.path().join("plain.mkv");
    plain(&input, &reference_mkv);
    assert_same(&joined_mkv, &reference_mkv);
}

#[test]
fn resume_after_a_kill_redoes_nothing_finished_and_gives_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip(dir.path(), 25);
    let output = dir.path().join("out.mp4");
    let resume = || {
        let mut cmd = gendr();
        cmd.args(["upscale", "--resume", "--segment-seconds", "1"])
            .args(OPTIONS)
            .arg(&input)
            .arg(&output);
        cmd
    };
    let mut child = resume().stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("segment 1 finishes").unwrap();
        if line.contains("segment 1 of 4 done") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!output.exists());
    let job = dir.path().join(".out.mp4.gendr-job");
    assert!(job.join("segments/00001.json").exists());

    let out = run(&mut resume());
    ok(&out);
    assert!(
        stderr(&out).contains("segments 0–1 of 4 already done, resuming at 2"),
        "{}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("segment 1 of 4 done"),
        "{}",
        stderr(&out)
    );
    assert!(!job.exists(), "the job folder goes on success");

    let reference = dir.path().join("plain.mp4");
    plain(&input, &reference);
    assert_same(&output, &reference);
}

#[test]
fn a_damaged_or_missing_segment_is_redone_and_never_joined() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip(dir.path(), 25);
    let job = dir.path().join("job");
    plan(&input, &job);
    for index in 0..4 {
        ok(&run_segment(&job, index));
    }
    let segment = |i: usize| job.join(format!("segments/{i:05}.mkv"));
    let output = dir.path().join("out.mp4");

    // Truncated: join refuses it, naming the run-segment that remakes it.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(segment(1))
        .unwrap();
    file.set_len(file.metadata().unwrap().len() / 2).unwrap();
    let line = one_error(&join(&job, &output));
    assert!(
        line.contains("segment(s) 1 of 4") && line.contains("run-segment"),
        "{line}"
    );
    assert!(!output.exists());
    let redo = run_segment(&job, 1);
    ok(&redo);
    assert!(!stderr(&redo).contains("already done"), "{}", stderr(&redo));

    // Deleted: the same.
    std::fs::remove_file(segment(2)).unwrap();
    let line = one_error(&join(&job, &output));
    assert!(line.contains("segment(s) 2 of 4"), "{line}");
    ok(&run_segment(&job, 2));

    ok(&join(&job, &output));
    let reference = dir.path().join("plain.mp4");
    plain(&input, &reference);
    assert_same(&output, &reference);
}

#[test]
fn a_changed_input_or_a_foreign_job_folder_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip(dir.path(), 25);
    let job = dir.path().join("job");
    plan(&input, &job);
    ok(&run_segment(&job, 0));

    // Another format version: refused, the segment kept.
    let manifest = job.join("manifest.json");
    let original = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        original.replace("\"format\": 1", "\"format\": 99"),
    )
    .unwrap();
    let line = one_error(&run_segment(&job, 1));
    assert!(
        line.contains("job format 99") && line.contains("format 1"),
        "{line}"
    );
    let line = one_error(&join(&job, &dir.path().join("out.mp4")));
    assert!(line.contains("job format 99"), "{line}");
    std::fs::write(&manifest, &original).unwrap();
    assert!(stderr(&run_segment(&job, 0)).contains("already done"));

    // The input changed after planning.
    let mut bytes = std::fs::read(&input).unwrap();
    bytes.extend_from_slice(&[0; 16]);
    std::fs::write(&input, bytes).unwrap();
    let line = one_error(&run_segment(&job, 1));
    assert!(
        line.contains("changed since the job was planned") && line.contains("size"),
        "{line}"
    );
    let line = one_error(&join(&job, &dir.path().join("out.mp4")));
    assert!(line.contains("changed since the job was planned"), "{line}");
    assert!(job.join("segments/00000.mkv").exists());
}

#[test]
fn resume_starts_over_when_an_option_or_the_input_changed_and_refuses_a_foreign_folder() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip(dir.path(), 25);
    let output = dir.path().join("out.mkv");
    let job = dir.path().join(".out.mkv.gendr-job");
    // The input at `path` is replaced by another clip after planning.
    let path = dir.path().join("in.mp4");
    std::fs::copy(clip(dir.path(), 50), &path).unwrap();
    // A job folder left by an interrupted run.
    ok(&run(gendr()
        .arg("plan")
        .arg(&path)
        .arg("--job")
        .arg(&job)
        .args([
            "--segment-seconds",
            "1",
            "-m",
            "fast",
            "--crf",
            "5",
        ])));
    ok(&run_segment(&job, 0));
    let manifest = job.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("\"format\": 1", "\"format\": 2")).unwrap();
    let resume = || {
        run(gendr()
            .args(["upscale", "-q", "--resume", "--segment-seconds", "1"])
            .args(OPTIONS)
            .arg(&path)
            .arg(&output))
    };
    let line = one_error(&resume());
    assert!(line.contains("job format 2"), "{line}");
    assert!(
        job.join("segments/00000.mkv").exists(),
        "nothing finished removed"
    );

    std::fs::write(&manifest, &text).unwrap();
    std::fs::copy(&input, &path).unwrap();
    let out = resume();
    ok(&out);
    let said: Vec<String> = stderr(&out)
        .lines()
        .filter(|l| l.contains("starting over"))
        .map(str::to_string)
        .collect();
    assert_eq!(said.len(), 1, "{}", stderr(&out));
    assert!(
        said[0].contains("in.mp4 changed: size") && said[0].contains("content checksum"),
        "{}",
        said[0]
    );
    let reference = dir.path().join("plain.mkv");
    plain(&input, &reference);
    assert_same(&output, &reference);

    // Same input, another option.
    std::fs::remove_file(&output).unwrap();
    ok(&run(gendr()
        .arg("plan")
        .arg(&path)
        .arg("--job")
        .arg(&job)
        .args([
            "--segment-seconds",
            "1",
            "-m",
            "fast",
            "--crf",
            "5",
        ])));
    let out = resume();
    ok(&out);
    assert!(
        stderr(&out).contains("options changed: --crf 5 → 0"),
        "{}",
        stderr(&out)
    );
    assert_same(&output, &reference);
}

/// Runs `cmd` as an unprivileged user when the tests run as root (root
/// writes into read-only folders), with a home it may write.
fn unprivileged(cmd: &mut Command, home: &Path) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    cmd.env("HOME", home);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_read_only_job_folder_or_a_full_disk_is_one_line_and_keeps_finished_segments() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip(dir.path(), 25);
    let job = dir.path().join("job");
    plan(&input, &job);
    ok(&run_segment(&job, 0));

    // Full: files may not grow past 64 KiB (a segment is about 180 KiB).
    let mut cmd = gendr();
    cmd.args(["run-segment", "-q"]).arg(&job).arg("1");
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 64 << 10,
                rlim_max: 64 << 10,
            };
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let line = one_error(&run(&mut cmd));
    assert!(
        line.contains("segment 1") && line.contains("disk full"),
        "{line}"
    );
    let left: Vec<_> = std::fs::read_dir(job.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "no partial file left: {left:?}");

    // Read-only.
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    chmod(&home, 0o777);
    chmod(dir.path(), 0o755);
    chmod(&job.join("segments"), 0o555);
    let mut cmd = gendr();
    cmd.args(["run-segment", "-q"]).arg(&job).arg("1");
    unprivileged(&mut cmd, &home);
    let line = one_error(&run(&mut cmd));
    assert!(line.contains("cannot write in the job folder"), "{line}");
    chmod(&job.join("segments"), 0o755);

    let done = run_segment(&job, 0);
    ok(&done);
    assert!(
        stderr(&done).contains("segment 0 is already done"),
        "{}",
        stderr(&done)
    );
}

/// Each video packet's decode time in ms, in file order.
fn decode_times(path: &Path) -> Vec<i64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=dts", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim_end_matches(',').parse().ok())
        .collect()
}

#[test]
fn with_b_frames_decode_times_rise_across_segment_boundaries_as_in_a_plain_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip(dir.path(), 25);
    let job = dir.path().join("job");
    // x264's defaults (B-frames, pyramid), not lossless.
    ok(&run(gendr()
        .arg("plan")
        .arg(&input)
        .arg("--job")
        .arg(&job)
        .args(["--segment-seconds", "1", "-m", "fast"])));
    for index in 0..4 {
        ok(&run_segment(&job, index));
    }
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(job.join("segments/00001.json")).unwrap()).unwrap();
    let order: Vec<u64> = serde_json::from_value(record["decode_order"].clone()).unwrap();
    assert!(
        order.windows(2).any(|w| w[1] < w[0]),
        "the encoder reorders frames"
    );
    let joined = dir.path().join("joined.mp4");
    ok(&join(&job, &joined));
    let reference = dir.path().join("plain.mp4");
    ok(&run(gendr()
        .args(["upscale", "-q", "-m", "fast"])
        .arg(&input)
        .arg(&reference)));
    let dts = decode_times(&joined);
    assert_eq!(dts.len(), 100);
    assert!(dts.windows(2).all(|w| w[1] > w[0]), "rising: {dts:?}");
    assert_eq!(dts, decode_times(&reference));
    assert_eq!(
        ffprobe_frame_times(&joined),
        ffprobe_frame_times(&reference)
    );
    assert_eq!(framemd5(&joined, true), framemd5(&reference, true));
}

/// What a join would refuse is refused when the job is planned, before any
/// segment runs: x264 for HDR10, field-rate deinterlacing (two frames per
/// planned one), and an impossible output size.
#[test]
fn what_a_join_would_refuse_is_refused_at_plan_time() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip(dir.path(), 25);
    for (args, expected) in [
        (&["--deinterlace", "field"][..], "--deinterlace field"),
        (&["--width", "99999"][..], "99999"),
    ] {
        let job = dir.path().join("job");
        let out = run(gendr()
            .args(["plan", "-m", "fast", "--job"])
            .arg(&job)
            .args(args)
            .arg(&input));
        assert!(one_error(&out).contains(expected), "{}", stderr(&out));
        assert!(!job.join("manifest.json").exists());
        let output = dir.path().join("out.mp4");
        let out = run(gendr()
            .args(["upscale", "-q", "-m", "fast", "--resume"])
            .args(args)
            .arg(&input)
            .arg(&output));
        assert!(one_error(&out).contains(expected), "{}", stderr(&out));
        assert!(!output.exists() && !dir.path().join(".out.mp4.gendr-job").exists());
    }
}
