//! `gendr upscale` against hostile and unusual inputs (issue 11): each
//! must end in an honest result, a usable file with every frame or one line
//! of error, in bounded time, leaving nothing behind. Inputs are made by
//! ffmpeg and checked with ffprobe, independently of GStreamer.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use gendr_test_support::{
    data, ffmpeg, ffprobe_frame_times, files_in, gendr, output_within, repo, spawn_slow_upscale,
    stderr, upscale,
};

/// How long a run refused at its arguments, or one that waits, may take.
const LIMIT: Duration = Duration::from_secs(120);

/// Makes a small clip with ffmpeg from its test source.
fn ffmpeg_clip(path: &Path, size: &str, frames: u32, codec_args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=size={size}:rate=10"))
        .args(["-frames:v", &frames.to_string()])
        .args(codec_args)
        .arg(path)
        .output()
        .expect("ffmpeg is installed (make deps)");
    assert!(out.status.success(), "ffmpeg: {}", stderr(&out));
}

/// The one `gendr: error:` line of a failed run.
fn error_line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "exit 1: {}", stderr(out));
    let err = stderr(out);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("gendr: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "one error line: {err}");
    lines[0].to_string()
}

/// A run that must fail with `expected` in its one error line and leave
/// `dir` as it found it.
fn fails_with(args: &[&str], input: &Path, dir: &Path, expected: &[&str]) {
    let before = files_in(dir);
    let out = upscale(args, input, &dir.join("out.mp4"));
    let line = error_line(&out);
    for part in expected {
        assert!(line.contains(part), "expected {part:?} in {line}");
    }
    assert_eq!(files_in(dir), before, "left behind");
}

#[test]
fn a_second_run_on_the_same_output_fails_and_the_first_writes_a_sound_file() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("two.y4m");
    ffmpeg_clip(&input, "160x90", 2, &["-pix_fmt", "yuv420p"]);
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("c.mp4");
    // A deliberately slow model takes seconds a frame even at this size: the
    // first run is still writing when the second starts.
    let first = spawn_slow_upscale(&["-q", "--crf", "30"], &input, &output);
    let started = Instant::now();
    while !files_in(dir.path())
        .iter()
        .any(|n| n.ends_with(".gendr-partial"))
    {
        assert!(
            started.elapsed() < LIMIT,
            "the first run never started writing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // --overwrite, so that only the running first job can be the reason to refuse.
    let second = upscale(
        &["-q", "-y", "-m", "fast", "--crf", "10"],
        &repo("samples/bbb_320x180_2s.mp4"),
        &output,
    );
    let line = error_line(&second);
    assert!(line.contains("another gendr run is writing"), "{line}");

    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stderr(&first).contains("wrote"));
    assert_eq!(
        files_in(dir.path()),
        vec!["c.mp4"],
        "no partial or lock file left"
    );
    assert_eq!(ffprobe_frame_times(&output).len(), 2);
}

#[test]
fn out_of_range_settings_are_usage_errors_in_upscale_and_live() {
    let sample = repo("samples/bikes_160x68_2s.mp4");
    let dir = tempfile::tempdir().unwrap();
    for (flag, value, range) in [
        ("--max-frames-in-flight", "0", "1..=64"),
        ("--threads", "1000", "0..=256"),
        ("--tile", "9000", "0..=8192"),
        ("--streams", "17", "0..=16"),
        ("--overlap", "2000", "0..=1024"),
        ("--batch", "5000", "0..=1024"),
        ("--device-id", "300", "0..=255"),
    ] {
        let upscale = [
            "upscale".into(),
            flag.into(),
            value.into(),
            sample.display().to_string(),
            dir.path().join("o.mp4").display().to_string(),
        ];
        let live = [
            "live",
            flag,
            value,
            "udp://127.0.0.1:5000",
            "udp://127.0.0.1:5001",
        ]
        .map(String::from);
        for args in [upscale, live] {
            let out = output_within(gendr().args(&args), LIMIT);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            let first = err.lines().next().unwrap_or("");
            assert!(
                first.starts_with("error:") && first.contains(flag) && first.contains(range),
                "{args:?}: {err}"
            );
        }
    }
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn frames_too_large_are_refused_up_front_with_the_size_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    // The hang: a header larger than any edge gendr takes, then noise.
    let huge = dir.path().join("huge.y4m");
    let mut bytes = b"YUV4MPEG2 W20000 H20000 F25:1 Ip A1:1 C420jpeg\nFRAME\n".to_vec();
    bytes.extend((0..1000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    std::fs::write(&huge, bytes).unwrap();
    fails_with(
        &["-q", "-m", "fast"],
        &huge,
        dir.path(),
        &["20000x20000", "16384"],
    );

    // 9000 wide doubles past the limit: known up front for a preset…
    let wide = dir.path().join("wide.y4m");
    ffmpeg_clip(&wide, "9000x64", 2, &["-pix_fmt", "yuv420p"]);
    fails_with(
        &["-q", "-m", "fast"],
        &wide,
        dir.path(),
        &["18000x128", "16384"],
    );
    // …and named by the element for a model file, instead of "Internal data stream error".
    let model = data("conv_x2.onnx");
    fails_with(
        &["-q", "-m", model.to_str().unwrap()],
        &wide,
        dir.path(),
        &["9000x64", "18000x128", "16384"],
    );
}

#[test]
fn a_stalled_job_fails_naming_the_stage() {
    let dir = tempfile::tempdir().unwrap();
    // A frame of this size takes the slow test model seconds on any CPU.
    let input = dir.path().join("big.y4m");
    ffmpeg_clip(&input, "960x540", 2, &["-pix_fmt", "yuv420p"]);
    let model = data("slow_x2.onnx");
    fails_with(
        &["-q", "--stall-timeout", "1", "-m", model.to_str().unwrap()],
        &input,
        dir.path(),
        &["stalled", "gendrsr", "--stall-timeout"],
    );
}

#[test]
fn directories_are_named_as_such_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("in");
    std::fs::create_dir(&folder).unwrap();
    // A folder input is a batch (cli/tests/batch.rs); given a file name for
    // its output, it is refused and no folder of that name is made.
    fails_with(
        &["-q", "-m", "fast"],
        &folder,
        dir.path(),
        &["out.mp4", "a folder input needs an output folder"],
    );

    let output = dir.path().join("out.mp4");
    std::fs::create_dir(&output).unwrap();
    let out = upscale(
        &["-q", "-y", "-m", "fast"],
        &repo("samples/bikes_160x68_2s.mp4"),
        &output,
    );
    let line = error_line(&out);
    assert!(
        line.contains("is a directory") && line.contains("name the output file"),
        "{line}"
    );
    assert!(files_in(&output).is_empty());
    assert_eq!(files_in(dir.path()), vec!["in", "out.mp4"]);
}

#[test]
fn a_y4m_cut_mid_frame_is_truncated_not_a_success() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.y4m");
    ffmpeg_clip(&whole, "64x48", 5, &["-pix_fmt", "yuv420p"]);
    let bytes = std::fs::read(&whole).unwrap();
    std::fs::remove_file(&whole).unwrap();
    let cut = dir.path().join("cut.y4m");
    // Three whole frames and part of the fourth.
    std::fs::write(&cut, &bytes[..bytes.len() * 7 / 10]).unwrap();
    fails_with(
        &["-q", "-m", "fast"],
        &cut,
        dir.path(),
        &["truncated", "3 complete"],
    );
}

#[test]
fn a_damaged_middle_is_reported_with_a_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(repo("samples/bbb_320x180_2s.mp4")).unwrap();
    // Noise (xorshift) over three stretches inside the media data.
    let mut state = 0x9E37_79B9u32;
    let len = bytes.len();
    for tenth in [4, 5, 6] {
        for b in &mut bytes[len * tenth / 10..][..3000] {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *b = state as u8;
        }
    }
    let damaged = dir.path().join("damaged.mp4");
    std::fs::write(&damaged, bytes).unwrap();
    // ffmpeg, independently, finds the damage.
    let check = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&damaged)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(!check.stderr.is_empty(), "the input is damaged");

    let output = dir.path().join("out.mp4");
    let out = upscale(&["-q", "-m", "fast"], &damaged, &output);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let warning = err
        .lines()
        .find(|l| l.starts_with("gendr: warning:"))
        .unwrap_or_else(|| panic!("a warning: {err}"));
    let count: u64 = warning
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("a count in {warning}"));
    assert!(count > 0 && warning.contains("concealed"), "{warning}");
    // What it says it wrote is what is there.
    let wrote = err
        .lines()
        .find(|l| l.contains("wrote"))
        .unwrap()
        .to_string();
    let frames = ffprobe_frame_times(&output).len();
    assert!(
        wrote.contains(&format!("({frames} frames")),
        "{wrote} vs {frames} decodable"
    );
}

/// An MJPEG AVI of `frames` 64×48 frames at `path` whose JPEGs numbered in
/// `damaged` get a Huffman table index past the four a JPEG may have: the
/// container stays sound, those frames cannot be decoded.
fn mjpeg_with_bad_tables(path: &Path, frames: u32, damaged: &[usize]) {
    ffmpeg_clip(path, "64x48", frames, &["-c:v", "mjpeg"]);
    let mut bytes = std::fs::read(path).unwrap();
    let starts: Vec<usize> = (0..bytes.len() - 1)
        .filter(|&i| bytes[i..].starts_with(&[0xFF, 0xD8]))
        .collect();
    assert_eq!(starts.len(), frames as usize, "one JPEG a frame");
    for &frame in damaged {
        let table = (starts[frame]..bytes.len() - 4)
            .find(|&i| bytes[i..].starts_with(&[0xFF, 0xC4]))
            .unwrap();
        // After the marker and the two length bytes: class and index.
        bytes[table + 4] = 0x05;
    }
    std::fs::write(path, bytes).unwrap();
}

/// How many frames of `path`'s video ffprobe decodes, damage and all.
fn frames_ffprobe_decodes(path: &Path) -> usize {
    let probe = Command::new("ffprobe")
        .args(["-v", "quiet", "-select_streams", "v:0"])
        .args(["-show_entries", "frame=pts_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&probe.stdout).lines().count()
}

/// [`fails_with`] with a minute's stall limit, well before which the run
/// must have ended: a run that waits the limit out is the bug.
fn fails_at_once(input: &Path, dir: &Path, expected: &[&str]) {
    let started = Instant::now();
    fails_with(
        &["-q", "-m", "fast", "--stall-timeout", "60"],
        input,
        dir,
        expected,
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "waited {:?}, as for a stall",
        started.elapsed()
    );
}

/// Every frame damaged: decodebin then exposes its pad without caps at the
/// end; the job used to wait out the stall limit there.
#[test]
fn a_video_whose_every_frame_is_damaged_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("digicam.avi");
    mjpeg_with_bad_tables(&input, 5, &[0, 1, 2, 3, 4]);
    // ffprobe, independently, decodes no frame of it.
    assert_eq!(frames_ffprobe_decodes(&input), 0, "frames decode");
    fails_at_once(
        &input,
        dir.path(),
        &["no video frame could be decoded", "damaged"],
    );
}

/// Two of eight frames damaged: jpegdec drops them and logs no libav
/// error, so the run used to end with exit 0 and two frames fewer, saying
/// nothing.
#[test]
fn frames_the_decoder_drops_as_damaged_are_counted_in_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("digicam.avi");
    mjpeg_with_bad_tables(&input, 8, &[2, 5]);
    // ffprobe, independently, decodes six of the eight.
    assert_eq!(frames_ffprobe_decodes(&input), 6);

    let output = dir.path().join("out.mp4");
    let out = upscale(&["-q", "-m", "fast"], &input, &output);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("gendr: warning:") && l.contains("dropped 2 damaged frame(s)")),
        "{err}"
    );
    assert_eq!(ffprobe_frame_times(&output).len(), 6);
}

/// A Matroska file whose H.264 caps the parser refuses (found by the fuzz
/// pass): parsebin never exposes the video, and the job used to wait out
/// the stall limit.
#[test]
fn a_video_stream_the_parser_refuses_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mkv");
    std::fs::copy(data("fuzz/h264-caps-refused.mkv"), &input).unwrap();
    fails_at_once(
        &input,
        dir.path(),
        &["the video stream could not be read", "damaged"],
    );
}

/// Twelve H.264 frames at `path` (its container by its name): six 100 ms
/// apart, then six 370 ms apart.
fn variable_rate_clip(path: &Path) {
    ffmpeg_clip(
        path,
        "64x48",
        12,
        &[
            "-vf",
            "setpts='if(lt(N,6),N*0.1,0.6+(N-6)*0.37)/TB'",
            "-fps_mode",
            "vfr",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ],
    );
}

#[test]
fn variable_frame_rate_keeps_every_frame_and_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("vfr.mp4");
    variable_rate_clip(&input);
    let src = ffprobe_frame_times(&input);
    assert_eq!(src.len(), 12);
    // mp4 also checks that B-frames reordered past the decode span are not cut.
    for name in ["out.mp4", "out.mkv"] {
        let output = dir.path().join(name);
        let out = upscale(&["-q", "-m", "fast"], &input, &output);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            ffprobe_frame_times(&output),
            src,
            "{name}: every frame at its own time"
        );
    }
}

#[test]
fn variable_frame_rate_in_matroska_and_mpeg_ts_is_said_and_every_frame_keeps_its_time() {
    let dir = tempfile::tempdir().unwrap();
    // Frame times relative to the first: an MPEG-TS starts at its clock's
    // 1.4 s, the output at 0.
    let relative = |path: &Path| -> Vec<String> {
        let times: Vec<f64> = ffprobe_frame_times(path)
            .iter()
            .map(|t| t.parse().unwrap())
            .collect();
        times
            .iter()
            .map(|t| format!("{:.3}", t - times[0]))
            .collect()
    };
    for name in ["vfr.mkv", "vfr.ts"] {
        let input = dir.path().join(name);
        variable_rate_clip(&input);
        let src = relative(&input);
        assert_eq!(src.len(), 12, "{name}");
        let output = dir.path().join(format!("{name}.mkv"));
        let out = upscale(&["-m", "fast"], &input, &output);
        let text = stderr(&out);
        assert!(out.status.success(), "{text}");
        // Before: "at 10/1 fps", the stream's nominal rate.
        let start = format!(
            "gendr: {} 64x48 at a variable frame rate (~4.58 fps),",
            input.display()
        );
        assert!(text.contains(&start), "{name}: {text}");
        assert_eq!(
            relative(&output),
            src,
            "{name}: every frame at its own time"
        );
    }
    // A constant rate whose Matroska times are rounded to the millisecond
    // (33, 33, 34 ms) stays a rate.
    let ntsc = dir.path().join("ntsc.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=s=64x48:r=30000/1001:d=1",
        "-c:v",
        "libx264",
        ntsc.to_str().unwrap(),
    ]);
    let out = upscale(&["-m", "fast"], &ntsc, &dir.path().join("ntsc-out.mkv"));
    let text = stderr(&out);
    assert!(text.contains(" at 30000/1001 fps,"), "{text}");
}

/// Still-image codecs in video containers: parsed as `image/…`, not `video/…`.
#[test]
fn mjpeg_avi_and_png_mov_are_upscaled() {
    let dir = tempfile::tempdir().unwrap();
    for (name, codec) in [("digicam.avi", "mjpeg"), ("frames.mov", "png")] {
        let input: PathBuf = dir.path().join(name);
        ffmpeg_clip(&input, "64x48", 8, &["-c:v", codec]);
        let output = dir.path().join(format!("{name}.mp4"));
        let out = upscale(&["-q", "-m", "fast"], &input, &output);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_eq!(ffprobe_frame_times(&output).len(), 8, "{name}");
    }
}

/// A still image has no duration: the mp4 track must not be zero long.
#[test]
fn still_images_become_a_one_frame_video() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["photo.png", "photo.jpg"] {
        let input = dir.path().join(name);
        ffmpeg_clip(&input, "64x48", 1, &[]);
        let output = dir.path().join(format!("{name}.mp4"));
        let out = upscale(&["-q", "-m", "fast"], &input, &output);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_eq!(ffprobe_frame_times(&output).len(), 1, "{name}");
    }
}

#[test]
fn a_size_change_mid_stream_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // Two MPEG-TS pieces of different sizes, one after the other, as broadcast does.
    let (a, b) = (dir.path().join("a.ts"), dir.path().join("b.ts"));
    ffmpeg_clip(&a, "64x48", 10, &["-c:v", "libx264", "-pix_fmt", "yuv420p"]);
    ffmpeg_clip(
        &b,
        "96x64",
        10,
        &[
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-output_ts_offset",
            "1",
        ],
    );
    let mut joined = std::fs::read(&a).unwrap();
    joined.extend(std::fs::read(&b).unwrap());
    let input = dir.path().join("joined.ts");
    std::fs::write(&input, joined).unwrap();
    std::fs::remove_file(a).unwrap();
    std::fs::remove_file(b).unwrap();
    for name in ["out.mp4", "out.mkv"] {
        let out = upscale(&["-q", "-m", "fast"], &input, &dir.path().join(name));
        let line = error_line(&out);
        assert!(
            line.contains("changes frame size") && line.contains("64x48 to 96x64"),
            "{name}: {line}"
        );
        assert_eq!(
            files_in(dir.path()),
            vec!["joined.ts"],
            "{name}: left behind"
        );
    }
}

#[test]
fn a_format_without_a_decoder_is_called_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("snow.mkv");
    // Snow: an experimental ffmpeg codec no GStreamer decoder reads.
    ffmpeg_clip(&input, "64x48", 2, &["-c:v", "snow", "-strict", "-2"]);
    fails_with(
        &["-q", "-m", "fast"],
        &input,
        dir.path(),
        &[
            "snow.mkv",
            "no installed GStreamer element can read or decode it",
        ],
    );
}

/// x264enc takes CRF 0–50: 51 used to pass the command line and panic in
/// the encoder's property; now it is a usage error wherever it is given.
#[test]
fn a_crf_the_encoder_refuses_is_a_usage_error() {
    let sample = repo("samples/bikes_160x68_2s.mp4");
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("o.mp4").display().to_string();
    let job = dir.path().join("job").display().to_string();
    let sample = sample.display().to_string();
    for args in [
        vec!["upscale", "--crf", "51", &sample, &output],
        vec!["upscale", "--resume", "--crf", "51", &sample, &output],
        vec!["plan", "--crf", "51", "--job", &job, &sample],
    ] {
        let out = output_within(gendr().args(&args), LIMIT);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("--crf") && err.contains("0..=50"),
            "{args:?}: {err}"
        );
    }
    assert!(files_in(dir.path()).is_empty());
}
