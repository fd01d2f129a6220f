//! Archival fidelity of what describes the streams (issue #20): tags,
//! dates, location, languages, titles, chapter UIDs, colour tags and the
//! start line's words on them. Inputs are made here with ffmpeg; outputs
//! are read back with ffprobe.

use std::path::{Path, PathBuf};
use std::process::Output;

use gendr_test_support::{ffmpeg, ffmpeg_to, ffprobe_json, stderr};

/// `gendr upscale -m fast ARGS… INPUT OUTPUT`.
fn upscale(args: &[&str], input: &Path, output: &Path) -> Output {
    let fast = [&["-m", "fast", "--threads", "2"], args].concat();
    gendr_test_support::upscale(&fast, input, output)
}

fn succeeded(out: &Output) -> String {
    let text = stderr(out);
    assert!(out.status.success(), "gendr failed: {text}");
    text
}

/// A plain run and a segmented one (`--resume`, which plans, runs the
/// segments and joins them).
const RUNS: [(&str, &[&str]); 2] = [
    ("plain", &[]),
    ("segmented", &["--resume", "--segment-seconds", "1"]),
];

/// A file's tags as ffprobe reads them: the format's, then each stream's.
fn tags(path: &Path) -> (serde_json::Value, Vec<serde_json::Value>) {
    let probe = ffprobe_json(path);
    let streams = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["tags"].clone())
        .collect();
    (probe["format"]["tags"].clone(), streams)
}

/// The chapters' IDs (Matroska's ChapterUIDs) as ffprobe reads them.
fn chapter_ids(path: &Path) -> Vec<i64> {
    ffprobe_json(path)["chapters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect()
}

/// A 2 s 64x48 clip with a tone, `extra` ffmpeg output options before
/// its path (and `inputs` after the lavfi ones).
fn clip(dir: &Path, name: &str, inputs: &[&str], extra: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let path_text = path.display().to_string();
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc=s=64x48:r=10:d=2",
        "-f",
        "lavfi",
        "-i",
        "sine=d=2",
    ];
    args.extend_from_slice(inputs);
    args.extend_from_slice(extra);
    args.push(&path_text);
    ffmpeg(&args);
    path
}

#[test]
fn matroska_tags_dates_and_chapter_uids_are_kept_plain_and_segmented() {
    let dir = tempfile::tempdir().unwrap();
    let chapters = dir.path().join("chapters.txt");
    std::fs::write(
        &chapters,
        ";FFMETADATA1\ntitle=Tape 12\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1000\n\
         title=Opening\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=1000\nEND=2000\ntitle=Close\n",
    )
    .unwrap();
    let chapters_text = chapters.display().to_string();
    // An archive's master: a catalogue ID on each track, a recording date,
    // an undetermined audio language, no track titles.
    let input = clip(
        dir.path(),
        "master.mkv",
        &["-i", &chapters_text],
        &[
            "-map",
            "0",
            "-map",
            "1",
            "-map_metadata",
            "2",
            "-map_chapters",
            "2",
            "-c:v",
            "libx264",
            "-c:a",
            "aac",
            "-metadata",
            "creation_time=2001-02-03T04:05:06Z",
            "-metadata:s:v:0",
            "ARCHIVE_ID=V-123",
            "-metadata:s:a:0",
            "ARCHIVE_ID=A-456",
            "-metadata:s:a:0",
            "language=und",
        ],
    );
    let (format_in, streams_in) = tags(&input);
    assert!(format_in["ENCODER"].as_str().unwrap().starts_with("Lavf"));
    let ids_in = chapter_ids(&input);
    assert_eq!(ids_in.len(), 2);
    for (name, args) in RUNS {
        let output = dir.path().join(format!("{name}.mkv"));
        succeeded(&upscale(args, &input, &output));
        let (format, streams) = tags(&output);
        // Before: the tracks' ARCHIVE_IDs gone, the source's ENCODER, the
        // run's date, "Video"/"Audio" titles, new chapter UIDs.
        for (got, had) in streams.iter().zip(&streams_in) {
            assert_eq!(got["ARCHIVE_ID"], had["ARCHIVE_ID"], "{name}: {streams:?}");
            assert_eq!(got["title"], serde_json::Value::Null, "{name}: {streams:?}");
            assert_eq!(got["language"], had["language"], "{name}: {streams:?}");
        }
        assert_eq!(format["TITLE"], "Tape 12", "{name}: {format}");
        assert_eq!(
            format["creation_time"], format_in["creation_time"],
            "{name}: {format}"
        );
        let encoder = format["ENCODER"].as_str().unwrap_or("");
        assert!(encoder.starts_with("gendr "), "{name}: {format}");
        assert_eq!(chapter_ids(&output), ids_in, "{name}");
        // The upscaled video names its encoder, joined or not.
        assert_eq!(streams[0]["ENCODER"], "x264", "{name}: {streams:?}");
    }
}

#[test]
fn mp4_dates_and_location_are_kept_and_no_language_or_title_invented() {
    let dir = tempfile::tempdir().unwrap();
    // A phone clip: when and where it was taken.
    let date = "2001-02-03T04:05:06.000000Z";
    let place = "+48.8577+002.2950/";
    let metadata = [
        "-c:v",
        "libx264",
        "-c:a",
        "aac",
        "-metadata",
        "creation_time=2001-02-03T04:05:06Z",
        "-metadata",
        "location=+48.8577+002.2950/",
    ];
    let mp4 = clip(dir.path(), "phone.mp4", &[], &metadata);
    let mov = clip(dir.path(), "camera.mov", &[], &metadata);
    let mut outputs = Vec::new();
    for (name, args) in RUNS {
        outputs.push((mp4.clone(), dir.path().join(format!("{name}.mp4")), args));
        outputs.push((mp4.clone(), dir.path().join(format!("{name}.mkv")), args));
    }
    outputs.push((mov.clone(), dir.path().join("camera-out.mov"), &[][..]));
    for (input, output, args) in outputs {
        succeeded(&upscale(args, &input, &output));
        let name = output.file_name().unwrap().to_string_lossy().into_owned();
        let (format, streams) = tags(&output);
        // Before: the run's time, no location, ffmpeg's "Lavf…" as encoder;
        // in .mkv "eng" and "Video"/"Audio" titles for untitled und tracks.
        assert_eq!(format["creation_time"], date, "{name}: {format}");
        let location = if name.ends_with(".mkv") {
            &format["LOCATION"]
        } else {
            &format["location"]
        };
        assert_eq!(location, place, "{name}: {format}");
        let encoder = format["encoder"]
            .as_str()
            .or(format["ENCODER"].as_str())
            .unwrap_or("");
        assert!(encoder.starts_with("gendr "), "{name}: {format}");
        for stream in &streams {
            assert_ne!(stream["language"], "eng", "{name}: {streams:?}");
            assert_eq!(
                stream["title"],
                serde_json::Value::Null,
                "{name}: {streams:?}"
            );
            if !name.ends_with(".mkv") {
                assert_eq!(stream["creation_time"], date, "{name}: {streams:?}");
            }
        }
    }
}

#[test]
fn matroska_into_mp4_keeps_its_location_and_says_the_stream_tags_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip(
        dir.path(),
        "tagged.mkv",
        &[],
        &[
            "-c:v",
            "libx264",
            "-c:a",
            "aac",
            "-metadata:s:a:0",
            "ARCHIVE_ID=A-456",
            "-metadata",
            "location=+48.8577+002.2950/",
        ],
    );
    let output = dir.path().join("out.mp4");
    let text = succeeded(&upscale(&[], &input, &output));
    // Before: not a word.
    assert!(
        text.contains("cannot hold per-stream tags: ARCHIVE_ID left out"),
        "{text}"
    );
    // The LOCATION tag becomes the MP4's location. Before: gone.
    let (format, _) = tags(&output);
    assert_eq!(format["location"], "+48.8577+002.2950/", "{format}");
    // ffmpeg's own per-track ENCODER and DURATION are no loss to speak of.
    let plain = clip(
        dir.path(),
        "plain.mkv",
        &[],
        &["-c:v", "libx264", "-c:a", "aac"],
    );
    let text = succeeded(&upscale(&[], &plain, &dir.path().join("plain.mp4")));
    assert!(!text.contains("per-stream tags"), "{text}");
}

/// The video's colour tags as ffprobe reads them: matrix, primaries,
/// transfer, and the frame size.
fn colour_tags(path: &Path) -> (String, String, String, u64, u64) {
    let probe = ffprobe_json(path);
    let video = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == "video")
        .unwrap()
        .clone();
    let tag = |key: &str| video[key].as_str().unwrap_or("").to_string();
    (
        tag("color_space"),
        tag("color_primaries"),
        tag("color_transfer"),
        video["width"].as_u64().unwrap(),
        video["height"].as_u64().unwrap(),
    )
}

#[test]
fn a_bt470bg_matrix_stays_bt470bg_plain_segmented_and_ten_bit_hd() {
    let dir = tempfile::tempdir().unwrap();
    // PAL SD tagged as a PAL master is (matrix, primaries and transfer bt470bg).
    let pal = |name: &str, codec: &[&str]| {
        let path = dir.path().join(name);
        let path_text = path.display().to_string();
        let mut args = vec!["-f", "lavfi", "-i", "testsrc=s=720x576:r=25:d=0.2"];
        args.extend_from_slice(codec);
        args.extend_from_slice(&[
            "-colorspace",
            "bt470bg",
            "-color_primaries",
            "bt470bg",
            "-color_trc",
            "gamma28",
            &path_text,
        ]);
        ffmpeg(&args);
        path
    };
    let eight = ["-c:v", "libx264", "-pix_fmt", "yuv420p"];
    let ten = ["-c:v", "libx264", "-pix_fmt", "yuv420p10le"];
    let dvd = ["-c:v", "mpeg2video", "-pix_fmt", "yuv420p", "-f", "vob"];
    let cases: [(PathBuf, &str, &[&str]); 7] = [
        (pal("pal.mkv", &eight), "x264.mkv", &[]),
        // Tagged only in the stream: an H.264 SPS in MPEG-TS, a DVD's
        // MPEG-2 sequence display extension.
        (pal("pal.ts", &eight), "from-ts.mkv", &[]),
        (pal("pal.vob", &dvd), "from-vob.mp4", &[]),
        (pal("pal.mp4", &eight), "x264.mp4", &[]),
        (
            pal("pal-seg.mkv", &eight),
            "segmented.mkv",
            &["--resume", "--segment-seconds", "0.1"],
        ),
        // 10-bit SD made HD (x265 Main 10), as the issue found it.
        (pal("pal10.mkv", &ten), "ten-bit-hd.mp4", &[]),
        (
            pal("pal10.mp4", &ten),
            "ten-bit-hd-x264.mkv",
            &["--codec", "x264"],
        ),
    ];
    for (input, name, args) in cases {
        let (matrix, primaries, transfer, ..) = colour_tags(&input);
        assert_eq!(
            (matrix.as_str(), primaries.as_str(), transfer.as_str()),
            ("bt470bg", "bt470bg", "bt470bg")
        );
        let output = dir.path().join(name);
        let text = succeeded(&upscale(args, &input, &output));
        let (matrix, primaries, transfer, width, height) = colour_tags(&output);
        // Before: smpte170m (GStreamer's one BT.601 matrix), the pixels the same.
        assert_eq!(
            (matrix.as_str(), primaries.as_str(), transfer.as_str()),
            ("bt470bg", "bt470bg", "bt470bg"),
            "{name}: {text}"
        );
        assert_eq!((width, height), (1440, 1152), "{name}");
    }
}

/// Whether the container of `path` gives a colour matrix of its own: a
/// Matroska MatrixCoefficients element (ID 0x55B1) in the headers before
/// the first Cluster, or an MP4 `colr` box.
fn container_names_a_matrix(path: &Path) -> bool {
    let bytes = std::fs::read(path).unwrap();
    let contains = |within: &[u8], what: &[u8]| within.windows(what.len()).any(|w| w == what);
    if bytes.get(..4) == Some(&[0x1A, 0x45, 0xDF, 0xA3][..]) {
        let cluster = [0x1F, 0x43, 0xB6, 0x75];
        let headers = bytes.windows(4).position(|w| w == cluster).unwrap();
        contains(&bytes[..headers], &[0x55, 0xB1])
    } else {
        contains(&bytes, b"colr")
    }
}

#[test]
fn a_bt470bg_matrix_given_only_in_the_h264_or_hevc_stream_stays_bt470bg() {
    let dir = tempfile::tempdir().unwrap();
    // The tags set in the stream's SPS alone, as a PAL master re-wrapped by
    // a tool that writes no container colour gives them.
    let pal = |name: &str, encoder: &str, filter: &str| {
        let path = dir.path().join(name);
        let path_text = path.display().to_string();
        let tags =
            format!("{filter}=colour_primaries=5:transfer_characteristics=5:matrix_coefficients=5");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc=s=720x576:r=25:d=0.2",
            "-c:v",
            encoder,
            "-pix_fmt",
            "yuv420p",
            "-bsf:v",
            &tags,
            &path_text,
        ]);
        assert!(!container_names_a_matrix(&path), "{name}: container colour");
        path
    };
    let cases: [(PathBuf, &str, &[&str]); 5] = [
        // avcC in Matroska's CodecPrivate and in MP4.
        (
            pal("h264.mkv", "libx264", "h264_metadata"),
            "from-h264.mkv",
            &[],
        ),
        (
            pal("h264.mp4", "libx264", "h264_metadata"),
            "from-h264.mp4",
            &[],
        ),
        // hvcC in both, and HEVC after start codes in MPEG-TS; x265 too.
        (
            pal("hevc.mkv", "libx265", "hevc_metadata"),
            "from-hevc.mp4",
            &["--codec", "x265"],
        ),
        (
            pal("hevc.mp4", "libx265", "hevc_metadata"),
            "from-hevc.mkv",
            &[],
        ),
        (
            pal("hevc.ts", "libx265", "hevc_metadata"),
            "from-hevc-ts.mkv",
            &["--codec", "x265"],
        ),
    ];
    for (input, name, args) in cases {
        let (matrix, ..) = colour_tags(&input);
        assert_eq!(matrix, "bt470bg", "{name}: ffprobe reads the stream's tag");
        let output = dir.path().join(name);
        let text = succeeded(&upscale(args, &input, &output));
        let (matrix, primaries, transfer, ..) = colour_tags(&output);
        // Before: smpte170m (the stream's tag was not read there).
        assert_eq!(
            (matrix.as_str(), primaries.as_str(), transfer.as_str()),
            ("bt470bg", "bt470bg", "bt470bg"),
            "{name}: {text}"
        );
    }
}

/// The start line of a run (the line naming the input and what it holds).
fn start_line(text: &str, input: &Path) -> String {
    let head = format!("gendr: {} ", input.display());
    text.lines()
        .find(|l| l.starts_with(&head))
        .unwrap_or_else(|| panic!("no start line in {text}"))
        .to_string()
}

#[test]
fn the_start_line_says_one_word_per_stream_and_what_is_reduced() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    // (DVD program streams count each audio stream once: fidelity_second.rs.)
    // A variable frame rate (frames 10 ms to 40 ms apart, timescale 90 kHz).
    let vfr = path("vfr.mov");
    ffmpeg_to(
        &vfr,
        &[
            "-f lavfi -i testsrc=s=64x48:r=100:d=1",
            "-vf select='not(mod(n,3))+not(mod(n,4))',setpts=N*N*0.0003/TB+N*0.01/TB",
            "-fps_mode vfr -video_track_timescale 90000 -c:v mjpeg",
        ],
    );
    let out = succeeded(&upscale(&[], &vfr, &path("vfr.mkv")));
    let line = start_line(&out, &vfr);
    // Before: "at 155/2 fps"-like averages, or a clock's 90000/1.
    assert!(line.contains("at a variable frame rate (~"), "{line}");
    // PCM into .mp4 with --audio aac: re-encoded, not "copied".
    let pcm = path("pcm.mov");
    ffmpeg_to(
        &pcm,
        &[
            "-f lavfi -i testsrc=s=64x48:r=10:d=1",
            "-f lavfi -i sine=d=1",
            "-c:v libx264 -pix_fmt yuv420p -c:a pcm_s16le",
        ],
    );
    let out = succeeded(&upscale(&["--audio", "aac"], &pcm, &path("pcm.mp4")));
    let line = start_line(&out, &pcm);
    // Before: "1 audio stream(s) copied", then "re-encoded as AAC".
    assert!(
        line.contains(", 1 audio stream(s) re-encoded as AAC,"),
        "{line}"
    );
    assert!(line.contains("x264 4:2:0 8-bit"), "{line}");
    // 4:2:2 made 4:2:0: said as a reduction.
    let four_two_two = path("422.mkv");
    ffmpeg_to(
        &four_two_two,
        &[
            "-f lavfi -i testsrc=s=64x48:r=10:d=1",
            "-c:v libx264 -pix_fmt yuv422p",
        ],
    );
    let out = succeeded(&upscale(&[], &four_two_two, &path("422-out.mkv")));
    let line = start_line(&out, &four_two_two);
    // Before: "x264 4:2:0 8-bit", as for 4:2:0 input.
    assert!(line.contains("x264 4:2:2 → 4:2:0 8-bit"), "{line}");
}

#[test]
fn an_mpeg2_gop_timecode_left_out_is_said() {
    let dir = tempfile::tempdir().unwrap();
    // A tape capture's MPEG-2 with its timecode in the GOP headers.
    for name in ["tape.mpg", "tape.mkv"] {
        let input = dir.path().join(name);
        ffmpeg_to(
            &input,
            &[
                "-f lavfi -i testsrc=s=64x48:r=25:d=1",
                "-c:v mpeg2video -timecode 01:00:00:00",
            ],
        );
        let output = dir.path().join(format!("{name}.mp4"));
        // Even with -q: it is a loss. Before: not a word.
        let text = succeeded(&upscale(&["-q"], &input, &output));
        assert!(
            text.contains("has an MPEG-2 GOP timecode (from 01:00:00:00)"),
            "{name}: {text}"
        );
    }
    // ffmpeg's own GOP time codes from zero are no timecode to speak of.
    let plain = dir.path().join("plain.mpg");
    ffmpeg_to(
        &plain,
        &["-f lavfi -i testsrc=s=64x48:r=25:d=1", "-c:v mpeg2video"],
    );
    let text = succeeded(&upscale(&["-q"], &plain, &dir.path().join("plain.mkv")));
    assert!(!text.contains("timecode"), "{text}");
}
