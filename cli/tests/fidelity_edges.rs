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
