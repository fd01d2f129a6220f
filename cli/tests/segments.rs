//! Segmented, resumable jobs (`gendr plan`, `run-segment`, `join`,
//! `upscale --resume`) against a plain `gendr upscale` of the same clip,
//! read back with ffmpeg/ffprobe; and what damaged, changed, foreign,
//! unwritable or full job folders give (one line, nothing finished lost).

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use gendr_test_support::{ffmpeg, ffprobe_frame_times, ffprobe_json, gendr, run, stderr};

/// Lossless (x264 at CRF 0 codes 8-bit 4:2:0 as High 4:4:4 Predictive,
/// checked below), so decoded frames can be compared bit for bit.
const OPTIONS: [&str; 4] = ["-m", "fast", "--crf", "0"];

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

/// Segment `index`'s video file (named by its content).
fn segment_file(job: &Path, index: usize) -> PathBuf {
    let prefix = format!("{index:05}-");
    let found: Vec<PathBuf> = std::fs::read_dir(job.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(&prefix) && name.ends_with(".mkv")
        })
        .collect();
    assert_eq!(found.len(), 1, "one video for segment {index}: {found:?}");
    found[0].clone()
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

/// Runs `input` plain into `reference` and asserts `output` the same.
fn assert_same_as_plain(output: &Path, input: &Path, reference: &Path) {
    plain(input, reference);
    assert_same(output, reference);
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
        names_in(&job),
        ["manifest.json", "manifest.sha256"],
        "plan writes the manifest and its checksum only"
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
    assert_eq!(manifest["format"], 2);
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
    assert_same_as_plain(&joined_mkv, &input, &dir.path().join("plain.mkv"));
}

/// With the temporal stage on, each segment first runs the frames before it
/// through gendrsr (and drops them), so its stage starts with the memory a
/// plain run has there: joined = plain, frame for frame.
#[test]
fn with_the_temporal_stage_on_a_joined_run_equals_a_plain_run() {
    let dir = tempfile::tempdir().unwrap();
    // Segments starting at a keyframe (frame 50) and between keyframes (25, 75).
    let input = clip(dir.path(), 50);
    joined_equals_plain_with_the_stage_on(dir.path(), &input, &OPTIONS);
}

#[test]
fn with_a_generative_preset_and_a_cut_a_joined_run_equals_a_plain_run() {
    // A cut two frames before the second segment: that segment's preroll
    // (from the keyframe at frame 10) holds the cut, and its first frames
    // are those whose back-projection is still coming back (the stage's
    // memory is K = 4 frames).
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("cut.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=48x32:r=25:d=0.92",
        "-f",
        "lavfi",
        "-i",
        "mandelbrot=s=48x32:r=25",
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:d=2",
        "-filter_complex",
        "[1:v]trim=duration=1.08,setpts=PTS-STARTPTS[b];[0:v][b]concat=n=2:v=1[v]",
        "-map",
        "[v]",
        "-map",
        "2:a",
        "-c:v",
        "libx264",
        "-g",
        "10",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        input.to_str().unwrap(),
    ]);
    joined_equals_plain_with_the_stage_on(
        dir.path(),
        &input,
        &["-m", "anime-video-x4", "--crf", "0"],
    );
}

/// Plan, every segment and join with `--temporal on` give what a plain run
/// with it gives, frame for frame, and not what one without it gives.
fn joined_equals_plain_with_the_stage_on(dir: &Path, input: &Path, options: &[&str]) {
    let job = dir.join("job");
    let temporal = ["--temporal", "on"];
    let planned = run(gendr()
        .arg("plan")
        .arg(input)
        .arg("--job")
        .arg(&job)
        .args(["--segment-seconds", "1"])
        .args(options)
        .args(temporal));
    ok(&planned);
    // "N segments …"
    let line = String::from_utf8_lossy(&planned.stdout);
    let segments: usize = line
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a segment count: {line}"));
    assert!(segments >= 2, "{line}");
    for index in 0..segments {
        ok(&run_segment(&job, index));
    }
    let joined = dir.join("joined.mp4");
    ok(&join(&job, &joined));
    let steady = dir.join("plain-on.mp4");
    ok(&run(gendr()
        .args(["upscale", "-q"])
        .args(options)
        .args(temporal)
        .arg(input)
        .arg(&steady)));
    assert_same(&joined, &steady);
    // And the stage did change the frames, or this would prove nothing.
    let off = dir.join("plain-off.mp4");
    ok(&run(gendr()
        .args(["upscale", "-q", "--temporal", "off"])
        .args(options)
        .arg(input)
        .arg(&off)));
    assert_ne!(framemd5(&steady, false), framemd5(&off, false));
}

#[test]
fn resume_after_a_kill_redoes_nothing_finished_and_gives_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip(dir.path(), 25);
    let output = dir.path().join("out.mp4");
    let resume = |input: &Path| {
        let mut cmd = gendr();
        cmd.args(["upscale", "--resume", "--segment-seconds", "1"])
            .args(OPTIONS)
            .arg(input)
            .arg(&output);
        cmd
    };
    let mut child = resume(&input).stderr(Stdio::piped()).spawn().unwrap();
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

    // Moved meanwhile: the same content (size, mtime, checksum) under
    // another name is the same input.
    let moved = dir.path().join("moved.mp4");
    std::fs::rename(&input, &moved).unwrap();
    let out = run(&mut resume(&moved));
    ok(&out);
    let said = stderr(&out);
    assert!(said.contains("moved to"), "{said}");
    assert!(
        said.contains("segments 0–1 of 4 already done, resuming at 2"),
        "{said}"
    );
    assert!(!said.contains("segment 1 of 4 done"), "{said}");
    assert!(!said.contains("starting over"), "{said}");
    assert!(!job.exists(), "the job folder goes on success");

    assert_same_as_plain(&output, &moved, &dir.path().join("plain.mp4"));
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
    let segment = |i: usize| segment_file(&job, i);
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
    assert_same_as_plain(&output, &input, &dir.path().join("plain.mp4"));
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
        original.replace("\"format\": 2", "\"format\": 99"),
    )
    .unwrap();
    let line = one_error(&run_segment(&job, 1));
    assert!(
        line.contains("job format 99") && line.contains("format 2"),
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
    segment_file(&job, 0);
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
    std::fs::write(&manifest, text.replace("\"format\": 2", "\"format\": 3")).unwrap();
    let resume = || {
        run(gendr()
            .args(["upscale", "-q", "--resume", "--segment-seconds", "1"])
            .args(OPTIONS)
            .arg(&path)
            .arg(&output))
    };
    let line = one_error(&resume());
    assert!(line.contains("job format 3"), "{line}");
    segment_file(&job, 0);

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
    assert_same_as_plain(&output, &input, &reference);

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
            // As a shell or batch system leaves it: SIGXFSZ kills by
            // default, and gendr must ignore it itself.
            libc::signal(libc::SIGXFSZ, libc::SIG_DFL);
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

/// Holds `path` as gendr's lock file, as a run of that segment would.
struct HeldLock {
    // Locked until dropped.
    _file: std::fs::File,
    path: PathBuf,
}

impl HeldLock {
    fn take(path: PathBuf) -> HeldLock {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::create(&path).unwrap();
        // SAFETY: flock on a descriptor this test owns.
        assert_eq!(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) }, 0);
        HeldLock { _file: file, path }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        // As gendr lets go: the file removed while still locked.
        std::fs::remove_file(&self.path).unwrap();
    }
}

fn names_in(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A Kubernetes retry while the first pod still runs: two runs of one
/// segment at once make it once (the second waits, then finds it done), and
/// the partial files of runs that are gone are removed by the next run of
/// their segment and by join, never those of a run still going.
#[test]
fn two_runs_of_one_segment_make_it_once_and_leftovers_of_gone_runs_go() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip(dir.path(), 25);
    let job = dir.path().join("job");
    plan(&input, &job);
    let segments = job.join("segments");
    std::fs::create_dir(&segments).unwrap();
    let plant = |name: &str| std::fs::write(segments.join(name), b"left by a killed run").unwrap();
    for name in [
        ".00000.mkv.AbCd12.gendr-partial",
        ".00000.json.XyZ789.gendr-partial",
        "00000-0123456789abcdef.mkv",
        ".00001.mkv.Qwerty.gendr-partial",
    ] {
        plant(name);
    }

    // A run of segment 0 is going (this test holds its lock); two more start.
    let held = HeldLock::take(segments.join(".00000.gendr-lock"));
    let spawn = || {
        gendr()
            .args(["run-segment", "-q"])
            .arg(&job)
            .arg("0")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut runs = [spawn(), spawn()];
    let mut said: Vec<String> = runs
        .iter_mut()
        .map(|child| {
            let mut first = String::new();
            BufReader::new(child.stderr.as_mut().unwrap())
                .read_line(&mut first)
                .unwrap();
            first
        })
        .collect();
    for line in &said {
        assert!(
            line.contains("segment 0 is being made by another run; waiting"),
            "{line:?}"
        );
    }
    assert!(
        segments.join("00000-0123456789abcdef.mkv").exists(),
        "a waiting run touches nothing"
    );
    drop(held);
    for (child, said) in runs.into_iter().zip(&mut said) {
        let out = child.wait_with_output().unwrap();
        said.push_str(&stderr(&out));
        assert!(out.status.success(), "{said}");
    }
    let skipped = said
        .iter()
        .filter(|s| s.contains("segment 0 is already done"))
        .count();
    assert_eq!(skipped, 1, "made once, then found done: {said:?}");
    let video = segment_file(&job, 0);
    let mut expected = [
        ".00001.mkv.Qwerty.gendr-partial",
        "00000.json",
        video.file_name().unwrap().to_str().unwrap(),
    ];
    expected.sort();
    assert_eq!(
        names_in(&segments),
        expected,
        "segment 0's leftovers gone, segment 1's not yet"
    );

    for index in 1..4 {
        ok(&run_segment(&job, index));
    }
    assert!(!segments.join(".00001.mkv.Qwerty.gendr-partial").exists());
    plant(".00002.mkv.Gone12.gendr-partial");
    plant(".00003.mkv.Live12.gendr-partial");
    let going = HeldLock::take(segments.join(".00003.gendr-lock"));
    ok(&join(&job, &dir.path().join("out.mp4")));
    assert!(
        !segments.join(".00002.mkv.Gone12.gendr-partial").exists(),
        "a gone run's partial"
    );
    assert!(
        segments.join(".00003.mkv.Live12.gendr-partial").exists(),
        "a live run's partial"
    );
    drop(going);
    assert_eq!(ffprobe_frame_times(&dir.path().join("out.mp4")).len(), 100);
}

/// Writes the manifest's checksum as plan does: what a tool making its
/// own job folders, or a deliberate forger, could do.
fn sign(job: &Path) {
    let out = Command::new("sha256sum")
        .arg("manifest.json")
        .current_dir(job)
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(job.join("manifest.sha256"), out.stdout).unwrap();
}

/// Job files are input: an edited manifest is refused for not being the one
/// plan wrote; one that is signed but does not hold together (segments that
/// repeat, none at all, times that run backwards, options out of range) is
/// refused naming what is wrong; a done-record whose times are moved is
/// damaged. Each is one line, exit 1, never a panic.
#[test]
fn job_files_edited_or_malformed_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip(dir.path(), 25);
    let job = dir.path().join("job");
    let manifest = plan(&input, &job);
    let path = job.join("manifest.json");
    let (original, checksum) = (
        std::fs::read(&path).unwrap(),
        std::fs::read(job.join("manifest.sha256")).unwrap(),
    );
    let refused = |expected: &str| {
        for out in [
            run_segment(&job, 0),
            join(&job, &dir.path().join("out.mp4")),
        ] {
            assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
            let line = one_error(&out);
            assert!(
                line.contains(expected) && line.contains("plan the job again"),
                "{line}"
            );
        }
    };

    // Segment 2 repeats segment 1.
    let mut repeated = manifest.clone();
    repeated["segments"][2] = manifest["segments"][1].clone();
    repeated["segments"][2]["index"] = 2.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&repeated).unwrap()).unwrap();
    refused("is not the manifest gendr plan wrote");
    sign(&job);
    refused("segment 2 does not follow segment 1");

    let edits: [(&str, serde_json::Value, &str); 8] = [
        ("/segments", serde_json::json!([]), "lists no segments"),
        (
            "/first_pts_ns",
            serde_json::json!(u64::MAX / 8),
            "first time is after its end",
        ),
        (
            "/options/sr/threads",
            1000.into(),
            "--threads 1000 is out of range (0..=256)",
        ),
        (
            "/options/sr/tile",
            100000.into(),
            "--tile 100000 is out of range",
        ),
        (
            "/options/sr/max_frames_in_flight",
            0.into(),
            "--max-frames-in-flight 0",
        ),
        ("/options/sr/provider", "bogus".into(), "bogus"),
        (
            "/options/crf",
            51.into(),
            "--crf 51 is out of range (0..=50)",
        ),
        ("/options/preset", "x".repeat(300).into(), "--preset"),
    ];
    for (pointer, value, expected) in edits {
        let mut edited = manifest.clone();
        *edited.pointer_mut(pointer).unwrap() = value;
        std::fs::write(&path, serde_json::to_vec_pretty(&edited).unwrap()).unwrap();
        sign(&job);
        refused(expected);
    }
    std::fs::write(&path, &original).unwrap();
    std::fs::write(job.join("manifest.sha256"), &checksum).unwrap();

    // A done-record's times moved 10 s on: its file would join with a hole.
    ok(&run_segment(&job, 0));
    let record_path = job.join("segments/00000.json");
    let record = std::fs::read(&record_path).unwrap();
    let mut moved: serde_json::Value = serde_json::from_slice(&record).unwrap();
    for time in moved["times"].as_array_mut().unwrap() {
        time[0] = (time[0].as_u64().unwrap() + 10_000_000_000).into();
    }
    std::fs::write(&record_path, serde_json::to_vec(&moved).unwrap()).unwrap();
    let line = one_error(&join(&job, &dir.path().join("out.mp4")));
    assert!(
        line.contains("segment 0: its done-record's frame times"),
        "{line}"
    );
    std::fs::write(&record_path, &record).unwrap();
    assert!(stderr(&run_segment(&job, 0)).contains("segment 0 is already done"));
}

#[test]
fn join_wait_starts_before_the_segments_and_joins_when_they_are_made() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip(dir.path(), 25);
    let job = dir.path().join("job");
    plan(&input, &job);

    // Segments still to be made, and never made in time: one line naming them.
    let out = run(gendr()
        .args(["join", "-q", "--wait", "1"])
        .arg(&job)
        .arg(dir.path().join("never.mkv")));
    let line = one_error(&out);
    assert!(
        line.contains("4 of 4 segment(s) still not made after --wait 1 s"),
        "{line}"
    );
    assert!(!dir.path().join("never.mkv").exists());

    // Started first, as the Kubernetes join Job is: it waits, then joins.
    let joined = dir.path().join("joined.mkv");
    let waiting = gendr()
        .args(["join", "-q", "--wait", "120"])
        .arg(&job)
        .arg(&joined)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for index in 0..4 {
        ok(&run_segment(&job, index));
    }
    let out = waiting.wait_with_output().unwrap();
    ok(&out);
    assert!(
        stderr(&out).contains("waiting for 4 of 4 segment(s)"),
        "{}",
        stderr(&out)
    );
    assert_same_as_plain(&joined, &input, &dir.path().join("whole.mkv"));
}
