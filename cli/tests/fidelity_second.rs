//! Archival fidelity, second pass (issue #20): every stream, flag, tag and
//! audio sample kept, converted and said, or refused. Inputs are made here
//! with ffmpeg like the archive files the issue was found with; outputs are
//! read back with ffprobe/ffmpeg, or by walking the file's own elements.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gendr_test_support::{ffmpeg, ffmpeg_to, ffprobe_json, gendr, run, stderr};

/// `gendr upscale -m fast ARGS… INPUT OUTPUT`, stderr not a terminal.
fn upscale(args: &[&str], input: &Path, output: &Path) -> Output {
    upscale_with_umask(args, input, output, None)
}

fn upscale_with_umask(
    args: &[&str],
    input: &Path,
    output: &Path,
    umask: Option<libc::mode_t>,
) -> Output {
    let mut command = gendr();
    command
        .args(["upscale", "-m", "fast", "--threads", "2"])
        .args(args)
        .arg(input)
        .arg(output);
    if let Some(mask) = umask {
        // SAFETY: umask only sets the child's file-creation mask.
        unsafe {
            command.pre_exec(move || {
                libc::umask(mask);
                Ok(())
            });
        }
    }
    run(&mut command)
}

fn succeeded(out: &Output) -> String {
    let text = stderr(out);
    assert!(out.status.success(), "gendr failed: {text}");
    text
}

/// A 2 s 64x48 clip at 10 fps with one audio stream encoded as `audio` says
/// (an ffmpeg encoder name, with its own options after it).
fn clip_with_audio(dir: &Path, name: &str, audio: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc=s=64x48:r=10:d=2",
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:d=2:r=48000",
        "-c:v",
        "libx264",
        "-c:a",
    ];
    args.extend_from_slice(audio);
    let path_text = path.display().to_string();
    args.push(&path_text);
    ffmpeg(&args);
    path
}

/// What ffmpeg decodes of a file's first audio stream: the sample count
/// (per channel) and the first sample's time in seconds.
fn decoded_audio(path: &Path) -> (usize, f64) {
    let samples = decoded_samples(path).len();
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0"])
        .args(["-show_entries", "frame=pts_time", "-read_intervals", "%+#1"])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let first: f64 = String::from_utf8_lossy(&probe.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim_end_matches(',').parse().ok())
        .unwrap_or(f64::NAN);
    (samples, first)
}

/// ffmpeg's decode of a file's first audio stream, mixed to one channel.
fn decoded_samples(path: &Path) -> Vec<i16> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-ac", "1", "-f", "s16le", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "ffmpeg decode: {}", stderr(&out));
    out.stdout
        .chunks_exact(2)
        .map(|s| i16::from_le_bytes([s[0], s[1]]))
        .collect()
}

/// Audio packets in a file's first audio stream, as ffprobe counts them.
fn audio_packets(path: &Path) -> usize {
    audio_stream_entry(path, "nb_read_packets")
        .parse()
        .expect("a packet count")
}

/// A field of ffprobe's `stream` entry for a file's first audio stream
/// (packets counted, for `nb_read_packets`).
fn audio_stream_entry(path: &Path, field: &str) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-count_packets"])
        .args([
            "-show_entries",
            &format!("stream={field}"),
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_end_matches(',')
        .to_string()
}

/// Samples a decoder skips at the start of a file's Opus stream: every
/// packet holds 20 ms (960 samples at 48 kHz); the rest is the pre-skip.
fn opus_samples_skipped(path: &Path) -> i64 {
    audio_packets(path) as i64 * 960 - decoded_audio(path).0 as i64
}

#[test]
fn opus_copied_into_mp4_skips_only_its_pre_skip() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip_with_audio(dir.path(), "opus.mkv", &["libopus"]);
    let output = dir.path().join("out.mp4");
    succeeded(&upscale(&[], &input, &output));
    // ffmpeg's own copy into mp4 is the reference: 312 samples.
    let reference = dir.path().join("ffmpeg-copy.mp4");
    let (input_text, reference_text) =
        (input.display().to_string(), reference.display().to_string());
    ffmpeg(&[
        "-i",
        &input_text,
        "-map",
        "0:a",
        "-c",
        "copy",
        &reference_text,
    ]);
    let expected = opus_samples_skipped(&reference);
    assert_eq!(expected, 312, "libopus's pre-skip");
    // Before: mp4mux wrote pre-skip and rate byte-swapped: 14337 skipped.
    assert_eq!(opus_samples_skipped(&output), expected);
}

/// Mono 48 kHz samples GStreamer decodes of a file's first audio stream
/// (qtdemux honours an MP4 edit's end, which ffmpeg 5.1 does not).
fn gstreamer_decoded_samples(path: &Path, demuxer: &str) -> usize {
    let raw = path.with_extension("raw");
    let status = Command::new("gst-launch-1.0")
        .arg("-q")
        .arg("filesrc")
        .arg(format!("location={}", path.display()))
        .args([
            "!",
            demuxer,
            "!",
            "opusparse",
            "!",
            "opusdec",
            "!",
            "audioconvert",
            "!",
        ])
        .args(["audio/x-raw,format=S16LE,channels=1", "!", "filesink"])
        .arg(format!("location={}", raw.display()))
        .status()
        .expect("gst-launch-1.0 runs");
    assert!(status.success(), "GStreamer could not decode {path:?}");
    let bytes = std::fs::metadata(&raw).unwrap().len() as usize;
    std::fs::remove_file(&raw).unwrap();
    bytes / 2
}

/// A Matroska input's Opus end trimming (the last block's DiscardPadding,
/// libopus's 648 samples here) ends the .mp4's audio edit, as the
/// Opus-in-ISOBMFF mapping has it. Before, the edit ran to the end of the
/// last packet: GStreamer decoded those 648 samples more, 96960 where it
/// now decodes 96312, the input's 96000 and the 312-sample pre-skip that
/// qtdemux 1.22 plays in every MP4 Opus track (ffmpeg's own copy: 96960).
#[test]
fn opus_end_trimming_from_matroska_ends_the_mp4_edit_plain_and_segmented() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip_with_audio(dir.path(), "opus.mkv", &["libopus"]);
    let input_samples = gstreamer_decoded_samples(&input, "matroskademux");
    assert_eq!(input_samples, 96_000);
    // ffmpeg writes the first block at 0 and a CodecDelay of 6.5 ms.
    let input_offset = audio_offset(&input);
    for (name, args) in [
        ("plain.mp4", &[][..]),
        ("segmented.mp4", &["--resume", "--segment-seconds", "1"][..]),
    ] {
        let output = dir.path().join(name);
        let text = succeeded(&upscale(args, &input, &output));
        assert_eq!(
            gstreamer_decoded_samples(&output, "qtdemux"),
            input_samples + 312,
            "{name}"
        );
        // ffmpeg plays the whole last packet, as from its own copy.
        assert_eq!(decoded_audio(&output).0, 96_648, "{name}");
        // The audio's start moves later by what matroskademux clamps, and
        // the line says by how much (before: not a word).
        let late_ms = (audio_offset(&output) - input_offset) * 1000.0;
        assert!((late_ms - 6.5).abs() < 1.0, "{name}: {late_ms} ms");
        assert!(
            text.contains(&format!(
                "its Opus audio starts 6.5 ms inside its CodecDelay, which GStreamer 1.22 \
                 clamps at 0: in {} it plays 6.5 ms late",
                output.display()
            )),
            "{name}: {text}"
        );
    }
    // Into .mkv the delay is written back: no such line.
    let output = dir.path().join("kept.mkv");
    let text = succeeded(&upscale(&[], &input, &output));
    assert!(!text.contains("CodecDelay"), "{text}");
    assert!(
        (audio_offset(&output) - input_offset).abs() < 0.001,
        "{text}"
    );
}

/// When ffmpeg decodes a file's first audio sample, from its first frame (s).
fn audio_offset(path: &Path) -> f64 {
    let first_frame = gendr_test_support::ffprobe_frame_times(path)
        .iter()
        .map(|t| t.parse::<f64>().expect("a frame time"))
        .fold(f64::INFINITY, f64::min);
    decoded_audio(path).1 - first_frame
}

#[test]
fn audio_re_encoded_as_aac_keeps_its_first_and_last_sample_times_plain_and_segmented() {
    // PCM in MOV and FLAC in Matroska, which an .mp4 cannot hold.
    let dir = tempfile::tempdir().unwrap();
    for (name, codec) in [("pcm.mov", "pcm_s16le"), ("flac.mkv", "flac")] {
        let input = clip_with_audio(dir.path(), name, &[codec]);
        let expected = sine_span(&input);
        for (run, args) in [
            ("plain", &["--audio", "aac"][..]),
            (
                "segmented",
                &["--audio", "aac", "--resume", "--segment-seconds", "1"][..],
            ),
        ] {
            let output = dir.path().join(format!("{name}-{run}.mp4"));
            let text = succeeded(&upscale(args, &input, &output));
            assert!(text.contains("re-encoded as AAC"), "{text}");
            // Before: the encoder's 1024 priming samples played first, so
            // the tone started 21 ms late (sample 1026 of 2), and from MOV
            // the last packet was dropped (its last 768 samples lost).
            assert_eq!(sine_span(&output), expected, "{name} {run}");
            assert_eq!(
                audio_stream_entry(&output, "duration"),
                "2.000000",
                "{name} {run}"
            );
        }
    }
}

/// Where ffmpeg's decode of a file's first audio stream is loud: the first
/// and last sample above a tenth of the tone's amplitude.
fn sine_span(path: &Path) -> (usize, usize) {
    let loud: Vec<usize> = decoded_samples(path)
        .iter()
        .enumerate()
        .filter(|(_, s)| s.unsigned_abs() > 300)
        .map(|(i, _)| i)
        .collect();
    (loud[0], *loud.last().expect("a loud sample"))
}

#[test]
fn audio_tracks_that_come_out_in_another_order_are_said_plain_and_segmented() {
    // AAC (French) then PCM (German): GStreamer hands on the PCM first.
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str, first: &str, second: &str| {
        let path = dir.path().join(name);
        ffmpeg_to(
            &path,
            &[
                "-f lavfi -i testsrc=s=64x48:r=10:d=2 -f lavfi -i sine=d=2 -f lavfi -i sine=f=880:d=2",
                "-map 0 -map 1 -map 2 -c:v libx264",
                &format!("-c:a:0 {first} -c:a:1 {second}"),
                "-metadata:s:a:0 language=fre -metadata:s:a:1 language=ger",
            ],
        );
        path
    };
    let tracks = |path: &Path| -> Vec<String> {
        ffprobe_json(path)["streams"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["codec_type"] == "audio")
            .map(|s| format!("{} {}", s["codec_name"], s["tags"]["language"]))
            .collect()
    };
    let reordered = make("aac-first.mkv", "aac", "pcm_s16le");
    assert_eq!(
        tracks(&reordered),
        [r#""aac" "fre""#, r#""pcm_s16le" "ger""#]
    );
    for (name, args) in [
        ("plain.mkv", &[][..]),
        ("segmented.mkv", &["--resume", "--segment-seconds", "1"][..]),
    ] {
        let output = dir.path().join(name);
        let text = succeeded(&upscale(args, &reordered, &output));
        // Before: the tracks swapped places without a word.
        assert_eq!(tracks(&output), [r#""pcm_s16le" "ger""#, r#""aac" "fre""#]);
        assert!(
            text.contains(&format!(
                "gendr: {}'s audio tracks come in another order than the input's \
                 (Raw 16-bit PCM audio, MPEG-4 AAC: GStreamer 1.22 hands on raw PCM before the \
                 parsed streams); each keeps its language and flags",
                output.display()
            )),
            "{name}: {text}"
        );
    }
    // Already in GStreamer's order: kept, and no line.
    let kept = make("pcm-first.mkv", "pcm_s16le", "aac");
    let output = dir.path().join("kept.mkv");
    let text = succeeded(&upscale(&[], &kept, &output));
    assert_eq!(tracks(&output), tracks(&kept));
    assert!(!text.contains("another order"), "{text}");
}

#[test]
fn finished_outputs_follow_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip_with_audio(dir.path(), "in.mkv", &["aac"]);
    for (mask, mode) in [(0o022, 0o644), (0o027, 0o640)] {
        let output = dir.path().join(format!("out-{mask:o}.mkv"));
        succeeded(&upscale_with_umask(&[], &input, &output, Some(mask)));
        let got = std::fs::metadata(&output).unwrap().permissions().mode() & 0o777;
        // Before: 0600 whatever the umask (the temporary file's mode).
        assert_eq!(got, mode, "umask {mask:03o}");
    }
}

#[test]
fn quiet_prints_no_info_line_and_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip_with_audio(dir.path(), "in.mkv", &["aac"]);
    let output = dir.path().join("out.mkv");
    let text = succeeded(&upscale(&["-q"], &input, &output));
    assert!(!text.contains("INFO"), "-q printed an INFO line: {text}");
    assert!(!text.contains('\x1b'), "colour codes on a pipe: {text:?}");
    // Without -q the provider line is still there, uncoloured.
    let output = dir.path().join("loud.mkv");
    let text = succeeded(&upscale(&[], &input, &output));
    assert!(text.contains("execution provider"), "{text}");
    assert!(!text.contains('\x1b'), "colour codes on a pipe: {text:?}");
}

/// Each packet's duration in a file's video stream, and the file's duration,
/// as ffprobe reads them.
fn video_durations(path: &Path) -> (Vec<String>, String) {
    let probe = |entries: &str, stream: bool| {
        let mut command = Command::new("ffprobe");
        command.args(["-v", "error"]);
        if stream {
            command.args(["-select_streams", "v:0"]);
        }
        let out = command
            .args(["-show_entries", entries, "-of", "csv=p=0"])
            .arg(path)
            .output()
            .expect("ffprobe runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let packets = probe("packet=duration_time", true)
        .lines()
        .map(|l| l.trim_end_matches(',').to_string())
        .collect();
    (packets, probe("format=duration", false).trim().to_string())
}

#[test]
fn mkv_frames_keep_their_own_duration_plain_and_segmented() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mkv");
    // 25 fps with B-frames, as a camera or a DVD rip has them.
    ffmpeg_to(
        &input,
        &["-f lavfi -i testsrc=s=64x48:r=25:d=4", "-c:v libx264 -bf 3"],
    );
    let (_, input_duration) = video_durations(&input);
    assert_eq!(input_duration, "4.000000");
    for (name, args) in [
        ("plain.mkv", &[][..]),
        ("segmented.mkv", &["--resume", "--segment-seconds", "1"][..]),
    ] {
        let output = dir.path().join(name);
        succeeded(&upscale(args, &input, &output));
        let (packets, duration) = video_durations(&output);
        assert_eq!(packets.len(), 100, "{name}");
        // Before: up to 0.08 s blocks for 0.04 s frames, 4.04 s in all.
        assert!(
            packets.iter().all(|d| d == "0.040000"),
            "{name}: {packets:?}"
        );
        assert_eq!(duration, input_duration, "{name}");
        // A remux to mp4 keeps the length.
        let remuxed = dir.path().join(format!("{name}.mp4"));
        let (output_text, remuxed_text) =
            (output.display().to_string(), remuxed.display().to_string());
        ffmpeg(&["-i", &output_text, "-c", "copy", &remuxed_text]);
        assert_eq!(
            video_durations(&remuxed).1,
            input_duration,
            "{name} remuxed"
        );
    }
}

/// The codec of each stream of `kind` (`video`, `audio`…) in a file.
fn codecs(path: &Path, kind: &str) -> Vec<String> {
    ffprobe_json(path)["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["codec_type"] == kind)
        .map(|s| s["codec_name"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn a_second_video_stream_is_copied_and_said_plain_and_segmented() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("two-videos.mkv");
    // A main picture and a second angle in another codec.
    ffmpeg_to(
        &input,
        &[
            "-f lavfi -i testsrc=s=64x48:r=10:d=2",
            "-f lavfi -i smptebars=s=32x24:r=10:d=2",
            "-f lavfi -i sine=d=2",
            "-map 0 -map 1 -map 2 -c:v:0 libx264 -c:v:1 mpeg4 -c:a aac",
        ],
    );
    for (name, args) in [
        ("plain.mkv", &[][..]),
        ("segmented.mkv", &["--resume", "--segment-seconds", "1"][..]),
    ] {
        let output = dir.path().join(name);
        let text = succeeded(&upscale(args, &input, &output));
        // Before: one video stream, and not a word.
        assert_eq!(codecs(&output, "video"), ["h264", "mpeg4"], "{name}");
        assert!(
            text.contains("1 more video stream(s) copied as they are"),
            "{name}: {text}"
        );
        let probe = ffprobe_json(&output);
        let second = probe["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["codec_name"] == "mpeg4")
            .unwrap()
            .clone();
        assert_eq!(
            (second["width"].as_u64(), second["height"].as_u64()),
            (Some(32), Some(24))
        );
        let frames = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:1", "-count_frames"])
            .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
            .arg(&output)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&frames.stdout).trim(),
            "20",
            "{name}"
        );
    }
}

/// Each stream's type with its default and forced flags, and each
/// attachment's file name and type, as ffprobe reads them.
fn dispositions(path: &Path) -> Vec<(String, u64, u64, String)> {
    ffprobe_json(path)["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["codec_type"].as_str().unwrap_or("").to_string(),
                s["disposition"]["default"].as_u64().unwrap_or(9),
                s["disposition"]["forced"].as_u64().unwrap_or(9),
                format!("{} {}", s["tags"]["filename"], s["tags"]["mimetype"]),
            )
        })
        .collect()
}

#[test]
fn track_flags_and_attachments_are_kept_in_mkv_plain_and_segmented() {
    let dir = tempfile::tempdir().unwrap();
    let srt = dir.path().join("forced.srt");
    std::fs::write(&srt, "1\n00:00:00,100 --> 00:00:00,900\nSigns only\n\n").unwrap();
    // A font for the subtitles, as fansubs and DVD rips attach them.
    let font = std::fs::read("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
        .unwrap_or_else(|_| b"a stand-in font file".repeat(500));
    let font_path = dir.path().join("Font One.ttf");
    std::fs::write(&font_path, &font).unwrap();
    let input = dir.path().join("flags.mkv");
    let (srt_text, font_text, input_text) = (
        srt.display().to_string(),
        font_path.display().to_string(),
        input.display().to_string(),
    );
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=s=64x48:r=10:d=2",
        "-f",
        "lavfi",
        "-i",
        "sine=d=2",
        "-f",
        "lavfi",
        "-i",
        "sine=f=880:d=2",
        "-i",
        &srt_text,
        "-map",
        "0",
        "-map",
        "1",
        "-map",
        "2",
        "-map",
        "3",
        "-c:v",
        "libx264",
        "-c:a",
        "aac",
        "-c:s",
        "srt",
        // The commentary is not default; the signs track is forced, not default.
        "-disposition:a:0",
        "default",
        "-disposition:a:1",
        "0",
        "-disposition:s:0",
        "forced",
        "-attach",
        &font_text,
        "-metadata:s:t",
        "mimetype=application/x-truetype-font",
        &input_text,
    ]);
    let expected = dispositions(&input);
    assert_eq!(expected.len(), 5);
    assert_eq!((expected[3].1, expected[3].2), (0, 1), "a forced subtitle");
    for (name, args) in [
        ("plain.mkv", &[][..]),
        ("segmented.mkv", &["--resume", "--segment-seconds", "1"][..]),
    ] {
        let output = dir.path().join(name);
        succeeded(&upscale(args, &input, &output));
        // Before: every track default, none forced, no attachment.
        assert_eq!(dispositions(&output), expected, "{name}");
        let dump = dir.path().join(format!("dump-{name}"));
        std::fs::create_dir(&dump).unwrap();
        let out = Command::new("ffmpeg")
            .current_dir(&dump)
            .args(["-nostdin", "-v", "error", "-dump_attachment:t", "", "-i"])
            .arg(&output)
            .args(["-f", "null", "-"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            std::fs::read(dump.join("Font One.ttf")).unwrap() == font,
            "{name}: the font"
        );
    }
    // An mp4 holds no attachments: said.
    let output = dir.path().join("out.mp4");
    let text = succeeded(&upscale(&["--subtitles", "drop"], &input, &output));
    assert!(
        text.contains("cannot hold attachments: 1 attached file(s) left out"),
        "{text}"
    );
}

#[test]
fn a_rerun_removes_the_partial_files_of_killed_runs() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("long.mkv");
    ffmpeg_to(
        &input,
        &["-f lavfi -i testsrc=s=64x48:r=25:d=60", "-c:v libx264"],
    );
    let output = dir.path().join("out.mkv");
    let partials = || -> Vec<String> {
        gendr_test_support::files_in(dir.path())
            .into_iter()
            .filter(|n| n.ends_with(".gendr-partial"))
            .collect()
    };
    // Killed (SIGKILL: no clean-up of its own) once its partial exists.
    let mut run = gendr_test_support::Guard(
        gendr()
            .args(["upscale", "-q", "-m", "fast", "--threads", "1"])
            .arg(&input)
            .arg(&output)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while partials().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    run.0.kill().unwrap();
    run.0.wait().unwrap();
    assert_eq!(partials().len(), 1, "the killed run's partial");
    // Another output's partial in the same folder is not this run's to remove.
    let other = dir.path().join(".other.mkv.Ab12Cd.gendr-partial");
    std::fs::write(&other, b"someone else's").unwrap();
    let short = dir.path().join("short.mkv");
    ffmpeg_to(
        &short,
        &["-f lavfi -i testsrc=s=64x48:r=10:d=1", "-c:v libx264"],
    );
    succeeded(&upscale(&["-y"], &short, &output));
    // Before: the killed run's partial stayed for good.
    assert_eq!(partials(), [".other.mkv.Ab12Cd.gendr-partial"]);
}

#[test]
fn a_timeline_starting_at_one_second_is_upscaled_not_called_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let start_time = |path: &Path| -> f64 {
        let start = &ffprobe_json(path)["format"]["start_time"];
        start.as_str().unwrap().parse().unwrap()
    };
    for name in ["offset.mp4", "offset.mkv"] {
        let input = dir.path().join(name);
        // What a capture cut from a longer recording looks like: an edit
        // list (mp4) or timestamps (mkv) starting at 1 s.
        ffmpeg_to(
            &input,
            &[
                "-f lavfi -i testsrc=s=64x48:r=10:d=2",
                "-f lavfi -i sine=d=2",
                "-c:v libx264 -c:a aac -output_ts_offset 1.0",
            ],
        );
        // The output starts at 0, and says so, except where an MP4 edit
        // list goes into Matroska (kept: ffprobe reads it from 0.976 s).
        for (out_name, kept) in [("mkv", name == "offset.mp4"), ("mp4", false)] {
            let output = dir.path().join(format!("out-{name}.{out_name}"));
            // Before: "the input ended early: its streams stop at 2.20 s of 3.00 s".
            let text = succeeded(&upscale(&[], &input, &output));
            let frames = gendr_test_support::ffprobe_frame_times(&output);
            assert_eq!(frames.len(), 20, "{name}");
            // (Before: Matroska into .mp4 lost an AAC packet, 89088 of 90112.)
            assert_eq!(decoded_audio(&output).0, decoded_audio(&input).0, "{name}");
            let start = start_time(&output);
            // The audio's priming starts the input's timeline 23 ms early.
            let note = format!(
                "gendr: the input's timeline starts at 0.97{}",
                if name == "offset.mp4" { "6" } else { "7" }
            );
            // Before: no word of the start (1 s) the output loses.
            if kept {
                assert!(
                    (start - 0.976).abs() < 0.002,
                    "{name} → {out_name}: {start}"
                );
                assert!(!text.contains(&note), "{name} → {out_name}: {text}");
            } else {
                assert!(start < 0.03, "{name} → {out_name}: {start}");
                assert!(
                    text.contains(&format!("{note} s; {} starts at 0", output.display())),
                    "{name} → {out_name}: {text}"
                );
            }
        }
        // A segmented run says it as a plain one does.
        let output = dir.path().join(format!("segmented-{name}.mp4"));
        let text = succeeded(&upscale(
            &["--resume", "--segment-seconds", "1"],
            &input,
            &output,
        ));
        assert!(
            text.contains("gendr: the input's timeline starts at 0.97"),
            "{name}: {text}"
        );
        assert!(start_time(&output) < 0.03, "{name}: segmented");
    }
}

#[test]
fn a_failed_batch_file_leaves_folders_that_were_there_before() {
    let dir = tempfile::tempdir().unwrap();
    let (tree, out) = (dir.path().join("tapes"), dir.path().join("tapes-2x"));
    for sub in ["kept", "new"] {
        std::fs::create_dir_all(tree.join(sub)).unwrap();
        // A y4m cut mid-frame: refused as truncated once its folder is made.
        let whole = tree.join(sub).join("whole.y4m");
        ffmpeg_to(
            &whole,
            &["-f lavfi -i testsrc=s=64x48:r=10:d=1", "-pix_fmt yuv420p"],
        );
        let bytes = std::fs::read(&whole).unwrap();
        std::fs::remove_file(&whole).unwrap();
        std::fs::write(tree.join(sub).join("cut.y4m"), &bytes[..bytes.len() - 1000]).unwrap();
    }
    // The user's own, read-only output folder.
    let kept = out.join("kept");
    std::fs::create_dir_all(&kept).unwrap();
    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o555)).unwrap();
    let out_run = run(gendr()
        .args(["upscale", "-q", "-m", "fast"])
        .arg(&tree)
        .arg(&out));
    let text = stderr(&out_run);
    assert!(!out_run.status.success(), "{text}");
    assert!(
        text.contains("0 written, 0 already done, 0 not video, 2 failed"),
        "{text}"
    );
    // Before: the pre-existing folder was removed with the one made for the run.
    assert!(kept.is_dir(), "the user's folder was removed: {text}");
    assert_eq!(
        std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777,
        0o555
    );
    assert!(
        !out.join("new").exists(),
        "the folder made for the failed file stays"
    );
    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn audio_codecs_are_named_as_users_read_them() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip_with_audio(dir.path(), "pcm.mov", &["pcm_s16le"]);
    let output = dir.path().join("out.mp4");
    let refused = upscale(&[], &input, &output);
    assert_eq!(refused.status.code(), Some(1));
    let converted = succeeded(&upscale(&["--audio", "aac"], &input, &output));
    for text in [stderr(&refused), converted] {
        // Before: "the audio/x-raw audio …", GStreamer's caps name.
        assert!(text.contains("PCM audio"), "{text}");
        assert!(!text.contains("audio/x-raw"), "{text}");
    }
}

/// E-AC-3 (DVB, Blu-ray) from .mkv or .ts into .mp4, which mp4mux 1.22
/// cannot hold: refused with the fix named, re-encoded with `--audio aac`,
/// copied into .mkv. Before, all three .mp4 runs ended in the demuxer's
/// "Internal data stream error": the parser's pad came with the caps of
/// AC-3 or E-AC-3, which mp4mux's AC-3 caps matched, so it was linked.
#[test]
fn e_ac3_the_container_cannot_hold_is_refused_or_re_encoded() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["eac3.mkv", "eac3.ts"] {
        let input = clip_with_audio(dir.path(), name, &["eac3"]);
        assert_eq!(codecs(&input, "audio"), ["eac3"]);
        let output = dir.path().join("out.mp4");
        let refused = upscale(&[], &input, &output);
        let text = stderr(&refused);
        assert_eq!(refused.status.code(), Some(1), "{text}");
        assert!(
            text.contains("E-AC-3") && text.contains("--audio aac"),
            "{name}: {text}"
        );
        assert!(
            !text.contains("Internal data stream error"),
            "{name}: {text}"
        );
        assert!(!output.exists(), "{name}: a refused run left {output:?}");

        succeeded(&upscale(&["--audio", "aac"], &input, &output));
        assert_eq!(codecs(&output, "audio"), ["aac"], "{name}");
        // A re-encode adds the AAC encoder's delay and pads to whole
        // frames; no edit list hides them yet (within two AAC frames).
        let (samples, _) = decoded_audio(&output);
        let (input_samples, _) = decoded_audio(&input);
        assert!(
            samples.abs_diff(input_samples) <= 2048,
            "{name}: {samples} samples re-encoded from {input_samples}"
        );

        let kept = dir.path().join("out.mkv");
        succeeded(&upscale(&[], &input, &kept));
        assert_eq!(codecs(&kept, "audio"), ["eac3"], "{name}");
        assert_eq!(decoded_audio(&kept).0, input_samples, "{name}");
        std::fs::remove_file(&output).unwrap();
        std::fs::remove_file(&kept).unwrap();
    }
}

#[test]
fn mpeg_ps_streams_are_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    // DVD program streams (`-f vob`): MPEG-2 video and MP2 or AC-3 audio.
    for audio in ["mp2", "ac3"] {
        let input = dir.path().join(format!("{audio}.vob"));
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc=s=64x48:r=25:d=1",
            "-f",
            "lavfi",
            "-i",
            "sine=d=1",
            "-c:v",
            "mpeg2video",
            "-c:a",
            audio,
            "-f",
            "vob",
            &input.display().to_string(),
        ]);
        let output = dir.path().join(format!("{audio}.mkv"));
        let text = succeeded(&upscale(&[], &input, &output));
        // The discoverer shows each stream twice here (demuxed, then parsed).
        assert!(text.contains(", 1 audio stream(s) copied,"), "{text}");
        assert!(!text.contains("more video stream"), "{text}");
        assert_eq!(codecs(&output, "video").len(), 1);
        assert_eq!(codecs(&output, "audio"), [audio]);
    }
}

#[test]
fn a_timecode_track_left_out_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("tape.mov");
    // A capture with its tape's timecode, as VHS/Betacam transfers carry it.
    ffmpeg_to(
        &input,
        &[
            "-f lavfi -i testsrc=s=64x48:r=25:d=1",
            "-c:v libx264 -timecode 01:00:00:00",
        ],
    );
    let tags: Vec<String> = ffprobe_json(&input)["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_tag_string"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(tags.contains(&"tmcd".to_string()), "{tags:?}");
    for name in ["out.mkv", "out.mov"] {
        let output = dir.path().join(name);
        // Even with -q: it is a loss. Before: not a word.
        let text = succeeded(&upscale(&["-q"], &input, &output));
        assert!(
            text.contains("has a timecode track, which GStreamer 1.22 cannot write"),
            "{text}"
        );
    }
    // A file without one gets no such line.
    let plain = clip_with_audio(dir.path(), "plain.mov", &["aac"]);
    let text = succeeded(&upscale(&["-q"], &plain, &dir.path().join("plain.mkv")));
    assert!(!text.contains("timecode"), "{text}");
}
