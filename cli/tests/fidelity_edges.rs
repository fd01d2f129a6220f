//! Archival fidelity at the edges (issue #20, second helper): sample
//! formats and colour tags kept as the input has them. Inputs are made here
//! with ffmpeg; outputs are read back with ffprobe and decoded by ffmpeg.

use std::path::Path;
use std::process::{Command, Output};

use gendr_test_support::{ffmpeg, stderr};

/// `gendr upscale -m fast --threads 2 ARGS… INPUT OUTPUT`.
fn upscale(args: &[&str], input: &Path, output: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gendr"))
        .args(["upscale", "-m", "fast", "--threads", "2"])
        .args(args)
        .arg(input)
        .arg(output)
        .output()
        .expect("gendr runs")
}

/// ffprobe's `entries` of the first video stream, as CSV without the prefix.
fn video_entries(path: &Path, entries: &str) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .arg(entries)
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The share of decoded samples (all planes, as ffmpeg widens them to 16
/// bits) that an 8-bit format could not hold.
fn finer_than_8_bits(path: &Path) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "yuv444p16le", "-"])
        .output()
        .expect("ffmpeg runs");
    let samples: Vec<u16> = out
        .stdout
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert!(!samples.is_empty(), "{} decodes to nothing", path.display());
    // A 10-bit code widened to 16 bits: its two bits below the top 8.
    let fine = samples.iter().filter(|&&s| (s >> 6) & 3 != 0).count();
    fine as f64 / samples.len() as f64
}

#[test]
fn keep_on_ten_bit_four_two_two_prores_stays_ten_bit_four_two_two() {
    // It came out 8-bit 4:4:4 (x265 Rext yuv444p, x264 High 4:4:4) while
    // the start line said 10-bit: 0 % of samples finer than 8 bits.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("capture.mov");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "gradients=s=96x64:r=25:d=0.4:speed=0.01,format=yuv422p10le",
        "-c:v",
        "prores_ks",
        "-profile:v",
        "2",
        "-pix_fmt",
        "yuv422p10le",
        input.to_str().unwrap(),
    ]);
    assert_eq!(video_entries(&input, "stream=pix_fmt"), "yuv422p10le");
    let input_fine = finer_than_8_bits(&input);
    assert!(input_fine > 0.5, "input {input_fine}");
    for (codec, profile) in [("x265", "Rext"), ("x264", "High 4:2:2")] {
        let output = dir.path().join(format!("{codec}.mkv"));
        let run = upscale(&["--codec", codec, "--pix-fmt", "keep"], &input, &output);
        assert!(run.status.success(), "{}", stderr(&run));
        assert_eq!(
            video_entries(&output, "stream=profile,pix_fmt"),
            format!("{profile},yuv422p10le"),
            "{codec}"
        );
        assert!(
            stderr(&run).contains("10-bit in the input's chroma subsampling"),
            "{}",
            stderr(&run)
        );
        let fine = finer_than_8_bits(&output);
        assert!(fine > 0.5, "{codec}: {fine} of samples finer than 8 bits");
    }
}

/// An untagged 8-bit H.264 clip `width`×`height`, made by ffmpeg.
fn untagged_clip(path: &Path, width: u32, height: u32) {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=s={width}x{height}:r=25"),
        "-frames:v",
        "2",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        path.to_str().unwrap(),
    ]);
}

#[test]
fn untagged_pal_keeps_its_ebu_primaries_and_ntsc_its_own() {
    // Untagged 576-line PAL came out tagged smpte170m primaries (the
    // 525-line ones) instead of bt470bg.
    let dir = tempfile::tempdir().unwrap();
    for (height, primaries) in [(576, "bt470bg"), (480, "smpte170m")] {
        let input = dir.path().join(format!("{height}.mp4"));
        untagged_clip(&input, 720, height);
        assert_eq!(video_entries(&input, "stream=color_primaries"), "unknown");
        let output = dir.path().join(format!("{height}-out.mkv"));
        let run = upscale(&[], &input, &output);
        assert!(run.status.success(), "{}", stderr(&run));
        assert_eq!(
            video_entries(&output, "stream=color_primaries"),
            primaries,
            "{height} lines"
        );
    }
}

/// `gendr ARGS…`, which must succeed; its stderr.
fn gendr_ok(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_gendr"))
        .args(args)
        .output()
        .expect("gendr runs");
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stderr(&out)
}

/// `gendr plan` (1 s segments), every `run-segment`, then `join` into
/// `output`: the join's stderr.
fn segmented(input: &Path, job: &Path, output: &Path) -> String {
    let plan = Command::new(env!("CARGO_BIN_EXE_gendr"))
        .arg("plan")
        .arg(input)
        .arg("--job")
        .arg(job)
        .args(["--segment-seconds", "1", "-m", "fast"])
        .output()
        .expect("gendr runs");
    assert!(plan.status.success(), "{}", stderr(&plan));
    let line = String::from_utf8_lossy(&plan.stdout).to_string();
    let count: usize = line
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("plan said {line:?}"));
    for index in 0..count {
        let index = index.to_string();
        gendr_ok(&[
            "run-segment".as_ref(),
            "-q".as_ref(),
            job.as_os_str(),
            index.as_ref(),
        ]);
    }
    gendr_ok(&[
        "join".as_ref(),
        "-q".as_ref(),
        job.as_os_str(),
        output.as_os_str(),
    ])
}

/// The first audio stream as ffmpeg reads it: packets stored, samples
/// decoded.
fn audio_counts(path: &Path) -> (usize, usize) {
    let packets = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-count_packets"])
        .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let decoded = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-ac", "1", "-f", "s16le", "-"])
        .output()
        .expect("ffmpeg runs");
    // MPEG-TS lists the stream again under its program: the first line.
    let packets = String::from_utf8_lossy(&packets.stdout)
        .lines()
        .next()
        .map(|l| l.trim().trim_end_matches(',').to_string())
        .and_then(|n| n.parse().ok())
        .expect("a packet count");
    (packets, decoded.stdout.len() / 2)
}

#[test]
fn audio_lost_at_the_edges_of_an_mp4_edit_list_is_said_and_kept_through_matroska() {
    // AAC in MP4 (an edit list skipping the encoder's 1024 priming samples)
    // lost its priming packet and its last one, plain and segmented alike,
    // without a word.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("phone.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=96x64:r=25:d=2",
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:r=48000:d=2",
        "-c:v",
        "libx264",
        "-g",
        "25",
        "-c:a",
        "aac",
        input.to_str().unwrap(),
    ]);
    let warning = "audio track(s) start inside an edit list";
    let output = dir.path().join("plain.mp4");
    let run = upscale(&[], &input, &output);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains(warning), "{}", stderr(&run));
    let joined = segmented(
        &input,
        &dir.path().join("mp4.job"),
        &dir.path().join("joined.mp4"),
    );
    assert!(joined.contains(warning), "{joined}");

    // What the line advises keeps every packet and sample, in both runs.
    let remuxed = dir.path().join("phone.mkv");
    ffmpeg(&[
        "-i",
        input.to_str().unwrap(),
        "-map",
        "0",
        "-c",
        "copy",
        remuxed.to_str().unwrap(),
    ]);
    let expected = audio_counts(&remuxed);
    assert_eq!(
        expected.0,
        audio_counts(&input).0,
        "the remux keeps every packet"
    );
    let output = dir.path().join("plain.mkv");
    let run = upscale(&[], &remuxed, &output);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(!stderr(&run).contains(warning), "{}", stderr(&run));
    assert_eq!(audio_counts(&output), expected, "plain run");
    let joined_mkv = dir.path().join("joined.mkv");
    segmented(&remuxed, &dir.path().join("mkv.job"), &joined_mkv);
    assert_eq!(audio_counts(&joined_mkv), expected, "segmented run");
}

#[test]
fn audio_cut_before_the_video_of_mpeg_ts_is_said() {
    // AC-3 starting between the video's first DTS and PTS lost its first
    // frame (63 → 62 packets) without a word; ffmpeg -c copy keeps it.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("broadcast.ts");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=96x64:r=25:d=2",
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:r=48000:d=2",
        "-c:v",
        "libx264",
        "-bf",
        "2",
        "-g",
        "25",
        "-c:a",
        "ac3",
        input.to_str().unwrap(),
    ]);
    let output = dir.path().join("plain.mkv");
    let run = upscale(&[], &input, &output);
    assert!(run.status.success(), "{}", stderr(&run));
    let (input_packets, _) = audio_counts(&input);
    let (output_packets, _) = audio_counts(&output);
    let cut = input_packets - output_packets;
    assert!(cut > 0, "the loss this line reports is still there");
    let line = format!("gendr: warning: {cut} audio packet(s) (32 ms) start before");
    assert!(stderr(&run).contains(&line), "{}", stderr(&run));
    let joined = segmented(
        &input,
        &dir.path().join("ts.job"),
        &dir.path().join("joined.mkv"),
    );
    assert!(joined.contains(&line), "{joined}");
}
