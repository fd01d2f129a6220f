//! Archival fidelity at the edges (issue #20, second helper): sample
//! formats and colour tags kept as the input has them. Inputs are made here
//! with ffmpeg; outputs are read back with ffprobe and decoded by ffmpeg.

use std::path::Path;
use std::process::{Command, Output};

use gendr_test_support::{ffmpeg, gendr, run, stderr};

/// `gendr upscale -m fast --threads 2 ARGS… INPUT OUTPUT`.
fn upscale(args: &[&str], input: &Path, output: &Path) -> Output {
    run(gendr()
        .args(["upscale", "-m", "fast", "--threads", "2"])
        .args(args)
        .arg(input)
        .arg(output))
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

/// `cut`: `input`'s video and first audio track from 0.5 s on, copied
/// (`ffmpeg -ss 0.5 -c copy`): edit lists hide the first half second.
fn cut_half_second(input: &Path, cut: &Path) {
    ffmpeg(&[
        "-ss",
        "0.5",
        "-i",
        input.to_str().unwrap(),
        "-map",
        "0:v",
        "-map",
        "0:a:0",
        "-c",
        "copy",
        cut.to_str().unwrap(),
    ]);
}
#[test]
fn keep_on_ten_bit_four_two_two_prores_stays_ten_bit_four_two_two() {
    // It came out 8-bit 4:4:4 (x265 Rext yuv444p, x264 High 4:4:4) while
    // the start line said 10-bit: 0 % of samples finer than 8 bits.
    let dir = tempfile::tempdir().unwrap();
    // A fixed seed: gradients picks its colours at random otherwise, and
    // some draws gave under half the samples finer than 8 bits.
    let input = dir.path().join("capture.mov");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "gradients=s=96x64:r=25:d=0.4:speed=0.01:seed=7,format=yuv422p10le",
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
    let out = run(gendr().args(args));
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stderr(&out)
}

/// `gendr plan` (1 s segments), every `run-segment`, then `join` into
/// `output`: the join's stderr.
fn segmented(input: &Path, job: &Path, output: &Path) -> String {
    let plan = run(gendr().arg("plan").arg(input).arg("--job").arg(job).args([
        "--segment-seconds",
        "1",
        "-m",
        "fast",
    ]));
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

/// Audio stream `index` as ffmpeg reads it: packets stored, samples decoded.
fn audio_counts(path: &Path, index: usize) -> (usize, usize) {
    let stream = format!("a:{index}");
    let packets = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", &stream, "-count_packets"])
        .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let decoded = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args([
            "-map",
            &format!("0:{stream}"),
            "-ac",
            "1",
            "-f",
            "s16le",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    // MPEG-TS lists the stream again under its program: the first line.
    let packets = String::from_utf8_lossy(&packets.stdout)
        .lines()
        .next()
        .map(|l| l.trim().trim_end_matches(',').to_string())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}: no packet count for {stream}", path.display()));
    (packets, decoded.stdout.len() / 2)
}

/// A 2 s 96x64 H.264 clip (`video_options` for x264) at `path` whose
/// audio is one 440 Hz tone encoded once per codec in `codecs`, a track each.
fn clip_with_audio_tracks(path: &Path, video_options: &[&str], codecs: &[&str]) {
    clip_with_tone_tracks(path, 48_000, video_options, codecs, &[]);
}

/// [`clip_with_audio_tracks`] with the tone at `rate` Hz and
/// `output_options` for the file (`-output_ts_offset 1.0`).
fn clip_with_tone_tracks(
    path: &Path,
    rate: u32,
    video_options: &[&str],
    codecs: &[&str],
    output_options: &[&str],
) {
    let tone = format!("sine=f=440:r={rate}:d=2");
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=96x64:r=25:d=2",
        "-f",
        "lavfi",
        "-i",
        &tone,
        "-map",
        "0:v",
        "-c:v",
        "libx264",
    ];
    args.extend(video_options);
    let options: Vec<String> = (0..codecs.len()).map(|i| format!("-c:a:{i}")).collect();
    for (codec, option) in codecs.iter().zip(&options) {
        args.extend(["-map", "1:a", option.as_str(), codec]);
    }
    args.extend(output_options);
    args.push(path.to_str().unwrap());
    ffmpeg(&args);
}

#[test]
fn audio_at_the_edges_of_an_mp4_edit_list_is_kept_into_matroska() {
    // AAC, AC-3 and Opus in MP4, each behind an edit list that skips the
    // encoder's priming: qtdemux handed the priming packet on before the
    // segment (the muxer cut it) and kept back the last AAC and Opus
    // packets, plain and segmented alike (AAC 95 → 93 packets). Matroska
    // cannot hide AAC's and AC-3's priming for ffmpeg 5.1 (into MP4/MOV:
    // `priming_hidden_by_an_mp4_edit_list_stays_hidden_in_mp4_and_mov`);
    // Opus's pre-skip it says as its CodecDelay.
    let codecs = ["aac", "ac3", "libopus"];
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("phone.mp4");
    clip_with_audio_tracks(&input, &["-g", "25"], &codecs);
    // AAC's priming packet ends where the edit starts: left out, it
    // decodes to the input's samples and times. AC-3's first packet is
    // shown in part: kept whole, its 256 priming samples played before the
    // first frame. Opus: the input's samples and times (its 312 pre-skip
    // samples played before, until its CodecDelay was written). Every last
    // packet is kept.
    let plain = dir.path().join("plain.mkv");
    let run = upscale(&[], &input, &plain);
    assert!(run.status.success(), "{}", stderr(&run));
    let line = "2 audio track(s) start inside an edit list";
    assert!(stderr(&run).contains(line), "{}", stderr(&run));
    let joined = dir.path().join("joined.mkv");
    let said = segmented(&input, &dir.path().join("mkv.job"), &joined);
    assert!(said.contains(line), "{said}");
    for (output, run) in [(&plain, "plain"), (&joined, "segmented")] {
        for (i, codec) in codecs.iter().enumerate() {
            let (expected, out) = (
                audio_edges_of(&input, i),
                audio_edges_of(output, audio_index(output, codec)),
            );
            let what = format!("{codec}, {run}: {out:?}, input {expected:?}");
            assert!((out.end_ms - expected.end_ms).abs() <= 1.0, "{what}");
            if *codec == "libopus" {
                assert_same_edges_of(&expected, output, audio_index(output, codec), &what);
            } else if *codec == "aac" {
                assert_eq!(out.packets + 1, expected.packets, "{what}");
                assert_eq!(out.samples, expected.samples, "{what}");
                assert!((out.first_ms - expected.first_ms).abs() <= 1.0, "{what}");
            } else {
                assert_eq!(out.packets, expected.packets, "{what}");
                let priming = out.samples as f64 - expected.samples as f64;
                assert!((1.0..=320.0).contains(&priming), "{what}");
                let early = expected.first_ms - out.first_ms;
                assert!((priming / 48.0 - early).abs() <= 1.0, "{what}");
            }
        }
    }

    // A clip cut with `ffmpeg -ss 0.5 -c copy` (edit lists hiding its
    // first half second) lost the last half second of its audio: qtdemux
    // ended the track by comparing media time with movie time. Now every
    // sample the input decodes, and the rest of the packet the cut falls in.
    let cut = dir.path().join("cut.mp4");
    cut_half_second(&input, &cut);
    let output = dir.path().join("cut.mkv");
    let run = upscale(&[], &cut, &output);
    assert!(run.status.success(), "{}", stderr(&run));
    let (expected, out) = (audio_edges(&cut), audio_edges(&output));
    let extra = out.samples as i64 - expected.samples as i64;
    assert!((0..1024).contains(&extra), "{out:?}, {expected:?}");

    // Raw PCM in MOV, which qtdemux hands on in chunks of samples: each
    // sample once (none of the last chunk read again from the file).
    let capture = dir.path().join("capture.mov");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=96x64:r=25:d=1",
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:r=48000:d=1",
        "-c:v",
        "mpeg4",
        "-c:a",
        "pcm_s24le",
        capture.to_str().unwrap(),
    ]);
    let output = dir.path().join("capture.mkv");
    let run = upscale(&[], &capture, &output);
    assert!(run.status.success(), "{}", stderr(&run));
    let (expected, out) = (audio_edges(&capture), audio_edges(&output));
    assert_eq!(out.samples, expected.samples, "{out:?}");
    assert!(
        (out.end_ms - expected.end_ms).abs() <= 1.0,
        "{out:?}, {expected:?}"
    );
}

#[test]
fn opus_pre_skip_hidden_by_an_mp4_edit_list_stays_hidden_in_matroska() {
    // An MP4 input's Opus behind an edit list that hides its 312-sample
    // pre-skip: into .mkv (plain, joined, `--resume`) the pre-skip played
    // before the first frame (96960 samples where the input decodes 96648),
    // matroskamux writing neither a CodecDelay nor an OpusHead pre-skip. Now
    // both are written, as ffmpeg's own copy writes them, and the track
    // runs later by them: ffmpeg decodes the input's samples and times.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("voice.mp4");
    clip_with_audio_tracks(&input, &["-g", "25"], &["libopus"]);
    let expected = audio_edges(&input);
    let plain = dir.path().join("plain.mkv");
    let run = upscale(&[], &input, &plain);
    assert!(run.status.success(), "{}", stderr(&run));
    let said = stderr(&run);
    assert!(!said.contains("start inside an edit list"), "{said}");
    assert_same_edges(&expected, &plain, "plain");
    let joined = dir.path().join("joined.mkv");
    let said = segmented(&input, &dir.path().join("opus.job"), &joined);
    assert!(!said.contains("start inside an edit list"), "{said}");
    assert_same_edges(&expected, &joined, "segmented");
    let resumed = dir.path().join("resumed.mkv");
    let run = upscale(&["--resume", "--segment-seconds", "1"], &input, &resumed);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_same_edges(&expected, &resumed, "--resume");
}

#[test]
fn priming_hidden_by_an_mp4_edit_list_stays_hidden_in_mp4_and_mov() {
    // mp4mux and qtmux 1.22 write every audio edit from media time 0: the
    // AAC priming packet was cut (94 of 95 packets) and AC-3's 256 and
    // Opus's 312 priming samples played before the first frame, the video
    // moved 6.4 ms later to make room. The output's edits now hide what
    // the input's hide: every packet, sample and time as the input
    // decodes, plain, plan + run-segment + join and --resume.
    let codecs = ["aac", "ac3", "libopus"];
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("phone.mp4");
    clip_with_audio_tracks(&input, &["-g", "25"], &codecs);
    let expected: Vec<AudioEdges> = (0..codecs.len())
        .map(|i| audio_edges_of(&input, i))
        .collect();
    let warnings = ["start inside an edit list", "are cut"];
    let mut outputs = Vec::new();
    for name in ["plain.mp4", "plain.mov"] {
        let output = dir.path().join(name);
        let run = upscale(&[], &input, &output);
        assert!(run.status.success(), "{}", stderr(&run));
        for warning in warnings {
            assert!(!stderr(&run).contains(warning), "{}", stderr(&run));
        }
        outputs.push((output, name));
    }
    let joined = dir.path().join("joined.mp4");
    let said = segmented(&input, &dir.path().join("mp4.job"), &joined);
    assert!(warnings.iter().all(|w| !said.contains(w)), "{said}");
    outputs.push((joined, "segmented"));
    let resumed = dir.path().join("resumed.mp4");
    let run = upscale(&["--resume", "--segment-seconds", "1"], &input, &resumed);
    assert!(run.status.success(), "{}", stderr(&run));
    outputs.push((resumed, "--resume"));
    for (output, run) in &outputs {
        // The video starts where the input's does: it was not moved.
        let start = first_entry(output, "v:0", "stream=start_time");
        assert_eq!(start.parse::<f64>().ok(), Some(0.0), "{run}: {start}");
        for (i, codec) in codecs.iter().enumerate() {
            let at = audio_index(output, codec);
            assert_same_edges_of(&expected[i], output, at, &format!("{codec}, {run}"));
        }
    }

    // A clip cut with `ffmpeg -ss 0.5 -c copy`: its AAC edit hides 448
    // samples of the packet the cut falls in, as the output's now does.
    let cut = dir.path().join("cut.mp4");
    cut_half_second(&input, &cut);
    let output = dir.path().join("cut-out.mp4");
    let run = upscale(&[], &cut, &output);
    assert!(run.status.success(), "{}", stderr(&run));
    // Against the video's first frame it lies 20 ms later, as into .mkv
    // (the cut falls inside a frame; a video matter): samples and span.
    let (expected, out) = (audio_edges(&cut), audio_edges(&output));
    assert_eq!(out.samples, expected.samples, "{out:?}, {expected:?}");
    let span = |e: &AudioEdges| e.end_ms - e.first_ms;
    assert!(
        (span(&out) - span(&expected)).abs() <= 1.0,
        "{out:?}, {expected:?}"
    );
}

#[test]
fn opus_from_matroska_keeps_its_last_packet_in_mp4() {
    // matroskademux hands Opus packets on without durations and parsebin
    // plugs no parser after it: mp4mux gave the last packet a duration of
    // 0 in `stts`, and readers dropped it (100 of 101 packets).
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("opus.mkv");
    clip_with_audio_tracks(&input, &["-g", "25"], &["libopus"]);
    let expected = audio_counts(&input, 0);
    // ffmpeg's own copy into mp4 decodes what an mp4 of these packets
    // holds: MP4 has no place for the last packet's end trimming.
    let reference = dir.path().join("ffmpeg-copy.mp4");
    ffmpeg(&[
        "-i",
        input.to_str().unwrap(),
        "-map",
        "0:a",
        "-c",
        "copy",
        reference.to_str().unwrap(),
    ]);
    let output = dir.path().join("out.mp4");
    let run = upscale(&[], &input, &output);
    assert!(run.status.success(), "{}", stderr(&run));
    let joined = dir.path().join("joined.mp4");
    segmented(&input, &dir.path().join("opus.job"), &joined);
    for (output, run) in [(&output, "plain"), (&joined, "segmented")] {
        let (packets, samples) = audio_counts(output, 0);
        assert_eq!(packets, expected.0, "{run}: every packet of the input's");
        assert_eq!(samples, audio_counts(&reference, 0).1, "{run}");
    }
}

/// An audio stream's edges as ffmpeg decodes them: packets, samples
/// decoded, and where its first sample starts and its last one ends, in
/// milliseconds from the video's first frame (A/V sync at both ends).
#[derive(Debug)]
struct AudioEdges {
    packets: usize,
    samples: usize,
    first_ms: f64,
    end_ms: f64,
}

/// The `entries` ffprobe shows of each timed frame of `stream`, as CSV rows.
fn frame_rows(path: &Path, stream: &str, entries: &str) -> Vec<Vec<String>> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream, "-show_entries"])
        .arg(format!("frame={entries}"))
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            l.split(',')
                .map(|f| f.trim().to_string())
                .collect::<Vec<_>>()
        })
        // Frames without a time (MPEG-PS video has some) tell nothing here.
        .filter(|row| row.first().is_some_and(|f| f.parse::<f64>().is_ok()))
        .collect()
}

fn audio_edges(path: &Path) -> AudioEdges {
    audio_edges_of(path, 0)
}

fn audio_edges_of(path: &Path, index: usize) -> AudioEdges {
    let stream = format!("a:{index}");
    let (packets, samples) = audio_counts(path, index);
    let rate: f64 = first_entry(path, &stream, "stream=sample_rate")
        .parse()
        .expect("a sample rate");
    let audio = frame_rows(path, &stream, "pts_time,nb_samples");
    let time = |row: &Vec<String>| row[0].parse::<f64>().expect("a frame time");
    let first = audio.first().map(time).expect("audio frames");
    let last = audio.last().expect("audio frames");
    let end = time(last) + last[1].parse::<f64>().expect("a sample count") / rate;
    let grid = first_frame_time(path);
    AudioEdges {
        packets,
        samples,
        first_ms: (first - grid) * 1e3,
        end_ms: (end - grid) * 1e3,
    }
}

/// When the video's first frame is shown (seconds).
fn first_frame_time(path: &Path) -> f64 {
    frame_rows(path, "v:0", "pts_time")
        .iter()
        .map(|row| row[0].parse::<f64>().expect("a frame time"))
        .min_by(f64::total_cmp)
        .expect("video frames")
}

/// The first line of ffprobe's `entries` of `stream`, as CSV without the prefix.
fn first_entry(path: &Path, stream: &str, entries: &str) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream, "-show_entries"])
        .arg(entries)
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .next()
        .unwrap_or_default()
        .trim()
        .trim_end_matches(',')
        .to_string()
}

/// Panics unless `output`'s audio edges are `input`'s: every packet and
/// sample, first and last sample at the same time from the video's first
/// frame (to a millisecond, Matroska's time step).
fn assert_same_edges(input: &AudioEdges, output: &Path, what: &str) {
    assert_same_edges_of(input, output, 0, what);
}

fn assert_same_edges_of(input: &AudioEdges, output: &Path, index: usize, what: &str) {
    let out = audio_edges_of(output, index);
    let same = out.packets == input.packets
        && out.samples == input.samples
        && (out.first_ms - input.first_ms).abs() <= 1.0
        && (out.end_ms - input.end_ms).abs() <= 1.0;
    assert!(same, "{what}: {out:?}, input {input:?}");
}

#[test]
fn audio_before_the_first_shown_frame_of_mpeg_ts_and_ps_is_kept() {
    // MPEG-TS and DVD VOB audio starting between the video's first decode
    // and presentation times lost its first frame (AC-3 63 → 62 packets,
    // MP2 84 → 83; ffmpeg -c copy keeps them): the demuxers start every
    // stream at the video's first shown time, and the muxers cut before it.
    let dir = tempfile::tempdir().unwrap();
    let clip = |name: &str, video: &str, audio: &str, format: &str| {
        let path = dir.path().join(name);
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
            video,
            "-bf",
            "2",
            "-g",
            "12",
            "-c:a",
            audio,
            "-f",
            format,
            path.to_str().unwrap(),
        ]);
        path
    };
    let ts = clip("broadcast.ts", "libx264", "ac3", "mpegts");
    let vob = clip("dvd.vob", "mpeg2video", "mp2", "vob");
    let warning = "start before their stream's first shown time";
    for (input, outputs) in [(&ts, &["plain.mkv", "plain.mp4"][..]), (&vob, &["vob.mkv"])] {
        let expected = audio_edges(input);
        assert!(
            expected.first_ms < 0.0,
            "the audio starts first: {expected:?}"
        );
        for name in outputs {
            let output = dir.path().join(name);
            let run = upscale(&[], input, &output);
            assert!(run.status.success(), "{}", stderr(&run));
            assert!(!stderr(&run).contains(warning), "{}", stderr(&run));
            assert_same_edges(&expected, &output, name);
        }
    }
    // Segmented and resumable runs: the join's timeline is the plain run's.
    let joined = dir.path().join("joined.mkv");
    let said = segmented(&ts, &dir.path().join("ts.job"), &joined);
    assert!(!said.contains(warning), "{said}");
    assert_same_edges(&audio_edges(&ts), &joined, "joined");
    let resumed = dir.path().join("resumed.mkv");
    let run = upscale(&["--resume", "--segment-seconds", "1"], &ts, &resumed);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_same_edges(&audio_edges(&ts), &resumed, "--resume");
}

#[test]
fn audio_before_the_first_frame_of_matroska_keeps_every_packet_and_its_offset() {
    // A Matroska file whose timeline starts at 1 s, its audio before the
    // first frame (AAC at 44.1 kHz 23 ms, MP2 11 ms, AC-3 6 ms), as ffmpeg
    // `-output_ts_offset` writes it. Into .mp4 the last AAC packet was
    // lost (87 of 88: it came without a duration, and mp4mux gave it 0),
    // and in a plain run the first frame came 23 ms early (matroskademux
    // timed it in a segment of its own): the AAC's offset from it 0 ms
    // instead of -23 ms, also into .mkv.
    let codecs = ["aac", "ac3", "mp2"];
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("offset.mkv");
    clip_with_tone_tracks(&input, 44_100, &[], &codecs, &["-output_ts_offset", "1.0"]);
    let expected: Vec<AudioEdges> = (0..codecs.len())
        .map(|i| audio_edges_of(&input, i))
        .collect();
    assert!(
        expected[0].first_ms < -20.0,
        "the AAC starts first: {expected:?}"
    );
    let mut outputs = Vec::new();
    for name in ["plain.mp4", "plain.mov", "plain.mkv"] {
        let output = dir.path().join(name);
        let run = upscale(&[], &input, &output);
        assert!(run.status.success(), "{}", stderr(&run));
        outputs.push((output, name));
    }
    let joined = dir.path().join("joined.mp4");
    segmented(&input, &dir.path().join("mp4.job"), &joined);
    outputs.push((joined, "segmented"));
    let resumed = dir.path().join("resumed.mov");
    let run = upscale(&["--resume", "--segment-seconds", "1"], &input, &resumed);
    assert!(run.status.success(), "{}", stderr(&run));
    outputs.push((resumed, "--resume"));
    for (output, run) in &outputs {
        for (i, codec) in codecs.iter().enumerate() {
            let at = audio_index(output, codec);
            assert_same_edges_of(&expected[i], output, at, &format!("{codec}, {run}"));
        }
    }
}

/// The index among `path`'s audio streams of the one in ffmpeg's `encoder`'s
/// codec. GStreamer 1.22 exposes raw PCM before the parsed streams, so
/// outputs may order them differently from their input.
fn audio_index(path: &Path, encoder: &str) -> usize {
    let names = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a"])
        .args(["-show_entries", "stream=codec_name", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    // ffprobe adds an empty line after a stream with side data.
    let names: Vec<String> = String::from_utf8_lossy(&names.stdout)
        .lines()
        .map(|l| l.trim().trim_end_matches(',').to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let name = encoder.trim_start_matches("lib");
    names
        .iter()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("{}: no {name} stream in {names:?}", path.display()))
}

#[test]
fn every_audio_codec_keeps_its_samples_and_times_from_matroska_plain_and_segmented() {
    // AAC, AC-3, MP2, Opus, PCM and FLAC, each as ffmpeg writes it into
    // Matroska (AAC's priming packet, Opus's pre-skip, audio starting
    // before the video), side by side in one file.
    let codecs = ["aac", "ac3", "mp2", "libopus", "pcm_s16le", "flac"];
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("six.mkv");
    clip_with_audio_tracks(&input, &["-bf", "2", "-g", "12"], &codecs);
    let expected: Vec<AudioEdges> = (0..codecs.len())
        .map(|i| audio_edges_of(&input, i))
        .collect();
    let plain = dir.path().join("plain.mkv");
    let run = upscale(&[], &input, &plain);
    assert!(run.status.success(), "{}", stderr(&run));
    let joined = dir.path().join("joined.mkv");
    segmented(&input, &dir.path().join("six.job"), &joined);
    for (output, run) in [(&plain, "plain"), (&joined, "segmented")] {
        for (i, codec) in codecs.iter().enumerate() {
            let at = audio_index(output, codec);
            assert_same_edges_of(&expected[i], output, at, &format!("{codec}, {run}"));
        }
    }
}

/// `path`'s chapter starts (seconds) from its video's first frame.
fn chapter_starts(path: &Path) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "chapter=start_time"])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let grid = first_frame_time(path);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            l.trim()
                .trim_end_matches(',')
                .parse::<f64>()
                .expect("a time")
                - grid
        })
        .collect()
}

#[test]
fn chapters_move_with_the_streams_when_audio_priming_starts_the_timeline() {
    // AC-3 in MP4: its first packet starts 5.3 ms before the edit, and the
    // output's timeline starts there, every stream moved later by that
    // lead. The chapters were not moved: 5 ms early against the video.
    let dir = tempfile::tempdir().unwrap();
    let metadata = dir.path().join("chapters.txt");
    std::fs::write(
        &metadata,
        ";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1000\ntitle=One\n\
         [CHAPTER]\nTIMEBASE=1/1000\nSTART=1000\nEND=2000\ntitle=Two\n",
    )
    .unwrap();
    let input = dir.path().join("chapters.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=96x64:r=25:d=2",
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:r=48000:d=2",
        "-i",
        metadata.to_str().unwrap(),
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-map_chapters",
        "2",
        "-c:v",
        "libx264",
        "-g",
        "25",
        "-c:a",
        "ac3",
        input.to_str().unwrap(),
    ]);
    let expected = chapter_starts(&input);
    assert_eq!(expected.len(), 2, "{expected:?}");
    let plain = dir.path().join("plain.mkv");
    let run = upscale(&[], &input, &plain);
    assert!(run.status.success(), "{}", stderr(&run));
    let joined = dir.path().join("joined.mkv");
    segmented(&input, &dir.path().join("mkv.job"), &joined);
    let resumed = dir.path().join("resumed.mkv");
    let run = upscale(&["--resume", "--segment-seconds", "1"], &input, &resumed);
    assert!(run.status.success(), "{}", stderr(&run));
    for (output, run) in [
        (&plain, "plain"),
        (&joined, "joined"),
        (&resumed, "--resume"),
    ] {
        let starts = chapter_starts(output);
        let same = starts.len() == expected.len()
            && starts
                .iter()
                .zip(&expected)
                .all(|(s, e)| (s - e).abs() <= 1e-3);
        assert!(same, "{run}: chapters at {starts:?}, input {expected:?}");
    }
}
