//! What `gendr upscale` does with the streams beside the video: subtitles,
//! chapters and tags, each read back from the output with ffprobe/ffmpeg.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gendr_test_support::{error_lines, ffmpeg, ffprobe_json, files_in, gendr, init, run, stderr};
use gst::prelude::*;
use serde_json::Value;

const SRT: &str = "1\n00:00:00,100 --> 00:00:00,400\nHello, world & co\n\n\
                   2\n00:00:00,500 --> 00:00:00,900\nSecond <i>line</i>\n";

const ASS: &str = "[Script Info]\nScriptType: v4.00+\nPlayResX: 64\nPlayResY: 48\n\n\
[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, \
BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, \
Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n\
Style: Default,Arial,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,1\n\n\
[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n\
Dialogue: 0,0:00:00.10,0:00:00.40,Default,,0,0,0,,{\\b1}Bold{\\b0} words\n\
Dialogue: 0,0:00:00.50,0:00:00.90,Default,,0,0,0,,Plain words\n";

/// Global tags and chapters, as ffmpeg reads them from a metadata file
/// (`;` and `=` escaped there; the values are `A, B; C` and so on).
const METADATA: &str = ";FFMETADATA1\ntitle=A, B\\; C\ncomment=Line one\\; with \\= signs\n\
[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=400\ntitle=Intro, part 1\n\
[CHAPTER]\nTIMEBASE=1/1000\nSTART=400\nEND=1000\ntitle=Main; end\n";

const TITLE: &str = "A, B; C";
const AUDIO_TITLE: &str = "Commentary, part 1";
const SUBTITLE_TITLE: &str = "Sous-titres, FR";
const CHAPTERS: [(f64, &str); 2] = [(0.0, "Intro, part 1"), (0.4, "Main; end")];
/// One frame of the 10 fps test clips.
const FRAME: f64 = 0.1;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A 1 s 64x48 clip with audio, the SRT (French, titled) and, when
/// `with_ass`, the ASS subtitles; the global tags, and the chapters when
/// `chapters`.
fn subtitled(
    dir: &Path,
    name: &str,
    subtitle_codec: &str,
    with_ass: bool,
    chapters: bool,
) -> PathBuf {
    let srt = write(dir, "in.srt", SRT);
    let ass = write(dir, "in.ass", ASS);
    let metadata = write(dir, "metadata.txt", METADATA);
    let path = dir.join(name);
    let mut args: Vec<String> = ["-f", "lavfi", "-i", "testsrc=s=64x48:r=10:d=1"]
        .into_iter()
        .chain(["-f", "lavfi", "-i", "sine=d=1"])
        .map(String::from)
        .collect();
    for input in [&srt, &ass, &metadata] {
        args.extend(["-i".into(), input.display().to_string()]);
    }
    let mut more = vec!["-map", "0", "-map", "1", "-map", "2"];
    if with_ass {
        more.extend(["-map", "3"]);
    }
    more.extend([
        "-map_metadata",
        "4",
        "-map_chapters",
        if chapters { "4" } else { "-1" },
    ]);
    more.extend(["-c:v", "libx264", "-c:a", "aac", "-c:s:0", subtitle_codec]);
    more.extend(["-metadata:s:s:0", "language=fre"]);
    if with_ass {
        more.extend(["-c:s:1", "ass", "-metadata:s:s:1", "language=eng"]);
    }
    args.extend(more.into_iter().map(String::from));
    args.extend([
        "-metadata:s:s:0".into(),
        format!("title={SUBTITLE_TITLE}"),
        "-metadata:s:a:0".into(),
        format!("title={AUDIO_TITLE}"),
        path.display().to_string(),
    ]);
    ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
    path
}

fn upscale(args: &[&str], input: &Path, output: &Path) -> Output {
    run(gendr()
        .args(["upscale", "-q", "-m", "fast"])
        .args(args)
        .arg(input)
        .arg(output)
        .env("GENDR_LOG", "warn"))
}

/// `gendr upscale` without -q, which must succeed: its standard error.
fn upscale_ok(args: &[&str], input: &Path, output: &Path) -> String {
    let out = run(gendr()
        .args(["upscale", "-m", "fast"])
        .args(args)
        .arg(input)
        .arg(output)
        .env("GENDR_LOG", "warn"));
    assert!(out.status.success(), "gendr upscale: {}", stderr(&out));
    stderr(&out)
}

/// Runs a job that must be refused: exit 1, one `gendr: error:` line with
/// every part of `expected`, and the folder left as it was.
fn refused(args: &[&str], input: &Path, output: &Path, expected: &[&str]) {
    let dir = output.parent().unwrap();
    let before = files_in(dir);
    let out = upscale(args, input, output);
    assert_eq!(out.status.code(), Some(1), "exit 1: {}", stderr(&out));
    let err = stderr(&out);
    let lines = error_lines(&out);
    assert_eq!(lines.len(), 1, "one error line: {err}");
    for part in expected {
        assert!(lines[0].contains(part), "expected {part:?} in {}", lines[0]);
    }
    assert_eq!(files_in(dir), before, "no output, no partial file left");
}

fn streams(probe: &Value) -> &Vec<Value> {
    probe["streams"].as_array().unwrap()
}

fn of_type<'a>(probe: &'a Value, kind: &str) -> Vec<&'a Value> {
    streams(probe)
        .iter()
        .filter(|s| s["codec_type"] == kind)
        .collect()
}

/// A tag by name, whatever its case (Matroska stores `TITLE`, MP4 `title`).
fn tag<'a>(tags: &'a Value, name: &str) -> Option<&'a str> {
    tags.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// Subtitle stream `index` of a file as SRT, as ffmpeg reads it; with
/// `plain`, without markup (ffmpeg's timed-text reader adds font tags).
fn subtitle_srt(path: &Path, index: usize, plain: bool) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-map", &format!("0:s:{index}"), "-f", "srt", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    if !plain {
        return text;
    }
    let mut kept = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => kept.push(c),
            _ => {}
        }
    }
    kept
}

/// The Dialogue lines of ASS subtitle stream `index`, copied out as they are.
fn ass_dialogue(path: &Path, index: usize) -> Vec<String> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-i"])
        .arg(path)
        .args([
            "-map",
            &format!("0:s:{index}"),
            "-c",
            "copy",
            "-f",
            "ass",
            "-",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("Dialogue:"))
        .map(str::to_string)
        .collect()
}

fn assert_chapters(probe: &Value) {
    let chapters = probe["chapters"].as_array().unwrap();
    assert_eq!(chapters.len(), CHAPTERS.len(), "chapters: {chapters:?}");
    for (chapter, (start, title)) in chapters.iter().zip(CHAPTERS) {
        assert_eq!(tag(&chapter["tags"], "title"), Some(title), "{chapter}");
        let read: f64 = chapter["start_time"].as_str().unwrap().parse().unwrap();
        assert!(
            (read - start).abs() < FRAME,
            "chapter {title:?} at {read} s, not {start} s"
        );
    }
}

fn assert_global_tags(probe: &Value) {
    let tags = &probe["format"]["tags"];
    assert_eq!(tag(tags, "title"), Some(TITLE), "{tags}");
    let comment = tag(tags, "comment").or(tag(tags, "comments"));
    assert_eq!(comment, Some("Line one; with = signs"), "{tags}");
}

/// ISO 639-2 has two codes for some languages; MP4 stores the /T one.
fn same_language(read: Option<&str>, expected: &str) -> bool {
    let alias = |code| match code {
        "fre" => "fra",
        other => other,
    };
    read.is_some_and(|r| alias(r) == alias(expected))
}

#[test]
fn mkv_subtitles_chapters_and_tags_are_kept_verbatim_in_mkv() {
    let dir = tempfile::tempdir().unwrap();
    let input = subtitled(dir.path(), "in.mkv", "srt", true, true);
    let output = dir.path().join("out.mkv");
    let log = upscale_ok(&[], &input, &output);
    assert!(
        log.contains("2 subtitle stream(s) copied") && log.contains("2 chapter(s) kept"),
        "start line: {log}"
    );

    let probe = ffprobe_json(&output);
    let kinds: Vec<&str> = streams(&probe)
        .iter()
        .map(|s| s["codec_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["video", "audio", "subtitle", "subtitle"]);
    let subtitles = of_type(&probe, "subtitle");
    assert_eq!(subtitles[0]["codec_name"], "subrip");
    assert_eq!(subtitles[1]["codec_name"], "ass");
    assert_eq!(tag(&subtitles[0]["tags"], "language"), Some("fre"));
    assert_eq!(tag(&subtitles[1]["tags"], "language"), Some("eng"));
    assert_eq!(tag(&subtitles[0]["tags"], "title"), Some(SUBTITLE_TITLE));
    let audio = of_type(&probe, "audio");
    assert_eq!(tag(&audio[0]["tags"], "title"), Some(AUDIO_TITLE));
    assert_global_tags(&probe);
    assert_chapters(&probe);

    assert_eq!(
        subtitle_srt(&output, 0, false),
        subtitle_srt(&input, 0, false)
    );
    let srt = subtitle_srt(&output, 0, false);
    assert!(
        srt.contains("Hello, world & co") && srt.contains("Second <i>line</i>"),
        "{srt}"
    );
    let dialogue = ass_dialogue(&output, 1);
    assert_eq!(dialogue, ass_dialogue(&input, 1));
    assert!(
        dialogue[0].ends_with("{\\b1}Bold{\\b0} words"),
        "{dialogue:?}"
    );
}

#[test]
fn mkv_text_subtitles_become_timed_text_in_mp4_and_lost_styling_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let input = subtitled(dir.path(), "in.mkv", "srt", true, false);
    let output = dir.path().join("out.mp4");
    let log = upscale_ok(&[], &input, &output);
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("gendr: ASS/SSA subtitles converted to plain text"))
        .collect();
    assert_eq!(said.len(), 1, "one line on the lost styling: {log}");
    assert!(said[0].contains(".mkv"), "{}", said[0]);
    let tags_removed = log
        .lines()
        .filter(|l| l.starts_with("gendr: subtitle styling tags"))
        .count();
    assert_eq!(tags_removed, 1, "one line on the SRT's italics: {log}");
    let titles: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cannot hold stream titles"))
        .collect();
    assert_eq!(titles.len(), 1, "one line on the titles left out: {log}");
    for title in [AUDIO_TITLE, SUBTITLE_TITLE] {
        assert!(titles[0].contains(&format!("{title:?}")), "{}", titles[0]);
    }

    let probe = ffprobe_json(&output);
    let subtitles = of_type(&probe, "subtitle");
    let codecs: Vec<&str> = subtitles
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap())
        .collect();
    assert_eq!(codecs, ["mov_text", "mov_text"]);
    assert!(same_language(tag(&subtitles[0]["tags"], "language"), "fre"));
    assert!(same_language(tag(&subtitles[1]["tags"], "language"), "eng"));
    assert_global_tags(&probe);

    // Same text and times, every subtitle shown for its whole time.
    assert_eq!(
        subtitle_srt(&output, 0, true),
        subtitle_srt(&input, 0, true)
    );
    let timed_text = subtitle_srt(&output, 0, false);
    assert!(
        !timed_text.contains("<i>"),
        "tags shown as text: {timed_text}"
    );
    let ass_as_text = subtitle_srt(&output, 1, true);
    let lines: Vec<&str> = ass_as_text.lines().collect();
    assert!(
        lines.contains(&"Bold words") && lines.contains(&"Plain words"),
        "{ass_as_text}"
    );
    let input_times: Vec<String> = subtitle_srt(&input, 1, true)
        .lines()
        .filter(|l| l.contains(" --> "))
        .map(str::to_string)
        .collect();
    let output_times: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains(" --> "))
        .collect();
    assert_eq!(output_times, input_times);
}

#[test]
fn mp4_timed_text_and_chapters_are_kept_in_mkv() {
    let dir = tempfile::tempdir().unwrap();
    let input = subtitled(dir.path(), "in.mp4", "mov_text", false, true);
    let output = dir.path().join("out.mkv");
    let log = upscale_ok(&[], &input, &output);
    assert!(
        log.contains("1 subtitle stream(s) copied") && log.contains("2 chapter(s) kept"),
        "start line: {log}"
    );

    let probe = ffprobe_json(&output);
    let subtitles = of_type(&probe, "subtitle");
    assert_eq!(subtitles.len(), 1);
    assert_eq!(subtitles[0]["codec_name"], "subrip");
    assert_eq!(tag(&subtitles[0]["tags"], "language"), Some("fre"));
    assert_chapters(&probe);
    assert_global_tags(&probe);
    assert_eq!(
        subtitle_srt(&output, 0, true),
        subtitle_srt(&input, 0, true)
    );
}

#[test]
fn chapters_mp4_cannot_hold_are_refused_unless_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let mp4 = subtitled(dir.path(), "in.mp4", "mov_text", false, true);
    let mkv = subtitled(dir.path(), "in.mkv", "srt", false, true);
    for input in [&mp4, &mkv] {
        refused(
            &[],
            input,
            &work.join("out.mp4"),
            &["chapters", ".mkv", "--chapters drop"],
        );
    }

    let output = work.join("out.mp4");
    let log = upscale_ok(&["--chapters", "drop"], &mp4, &output);
    assert!(
        log.contains("chapters dropped (--chapters drop)"),
        "start line: {log}"
    );
    let probe = ffprobe_json(&output);
    assert!(probe["chapters"].as_array().unwrap().is_empty());
    assert_eq!(
        of_type(&probe, "subtitle").len(),
        1,
        "the subtitles are still kept"
    );

    // Dropping applies to Matroska's chapters too, which GStreamer passes on.
    let output = work.join("out.mkv");
    upscale_ok(&["--chapters", "drop"], &mkv, &output);
    assert!(ffprobe_json(&output)["chapters"]
        .as_array()
        .unwrap()
        .is_empty());
    std::fs::remove_file(&output).unwrap();

    // Chapters only in a QuickTime chapter track (as Apple's tools write
    // them): ffmpeg's Nero list renamed to a free box leaves just that.
    let mut bytes = std::fs::read(&mp4).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == b"chpl")
        .expect("a chpl box");
    bytes[at..at + 4].copy_from_slice(b"free");
    let track_only = dir.path().join("track-only.mp4");
    std::fs::write(&track_only, bytes).unwrap();
    assert_eq!(
        ffprobe_json(&track_only)["chapters"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    refused(
        &[],
        &track_only,
        &output,
        &["QuickTime chapter track", "--chapters drop"],
    );
}

/// One DVD subpicture: a 2x2 block shown from 0.1 s for about 0.57 s.
fn dvd_subpicture() -> Vec<u8> {
    let mut spu = vec![0x00, 0x24, 0x00, 0x06];
    // Two RLE lines (top and bottom field): two pixels of colour 1 each.
    spu.extend([0x90, 0x90]);
    // Control sequence: start display, palette, alpha, area, line offsets.
    spu.extend([
        0x00, 0x00, 0x00, 0x1E, 0x01, 0x03, 0x01, 0x23, 0x04, 0xFF, 0xF0,
    ]);
    spu.extend([
        0x05, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x06, 0x00, 0x04, 0x00, 0x05, 0xFF,
    ]);
    // Last control sequence: stop display after 50 × 1024/90000 s.
    spu.extend([0x00, 0x32, 0x00, 0x1E, 0x02, 0xFF]);
    assert_eq!(spu.len(), 0x24);
    spu
}

/// A 1 s clip with one DVD bitmap subtitle, muxed by GStreamer (ffmpeg
/// 5.1 cannot make bitmap subtitles from text).
fn dvd_subtitled(dir: &Path) -> PathBuf {
    init();
    let path = dir.join("dvd.mkv");
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=10 ! video/x-raw,width=64,height=48,framerate=10/1 ! x264enc \
         ! h264parse ! matroskamux name=mux ! filesink location=\"{}\" \
         appsrc name=spu format=time caps=subpicture/x-dvd ! mux.subtitle_%u",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let spu = pipeline
        .by_name("spu")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    let mut buffer = gst::Buffer::from_slice(dvd_subpicture());
    {
        let buffer = buffer.get_mut().unwrap();
        buffer.set_pts(gst::ClockTime::from_mseconds(100));
        buffer.set_duration(gst::ClockTime::from_mseconds(600));
    }
    spu.push_buffer(buffer).unwrap();
    spu.end_of_stream().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("the DVD clip is written");
    assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");
    pipeline.set_state(gst::State::Null).unwrap();
    path
}

fn subtitle_packets(path: &Path) -> usize {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "s:0",
            "-show_entries",
            "packet=pts_time",
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn dvd_bitmap_subtitles_are_copied_into_mkv_and_refused_for_mp4() {
    let dir = tempfile::tempdir().unwrap();
    let input = dvd_subtitled(dir.path());
    assert_eq!(subtitle_packets(&input), 1);
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();

    let output = work.join("out.mkv");
    let log = upscale_ok(&[], &input, &output);
    assert!(
        log.contains("1 subtitle stream(s) copied"),
        "start line: {log}"
    );
    let subtitles = of_type(&ffprobe_json(&output), "subtitle")
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    assert_eq!(subtitles, ["dvd_subtitle"]);
    assert_eq!(subtitle_packets(&output), 1);
    std::fs::remove_file(&output).unwrap();

    for name in ["out.mp4", "out.mov"] {
        refused(
            &[],
            &input,
            &work.join(name),
            &["DVD bitmap subtitles", ".mkv", "--subtitles drop"],
        );
    }

    let output = work.join("out.mp4");
    let log = upscale_ok(&["--subtitles", "drop"], &input, &output);
    assert!(
        log.contains("1 subtitle stream(s) dropped (--subtitles drop)"),
        "start line: {log}"
    );
    assert!(of_type(&ffprobe_json(&output), "subtitle").is_empty());
}

/// A resumable (segmented) run joins the same streams beside the video as a
/// plain run: subtitles with their text, titles, languages, chapters and
/// global tags, and an output that cannot hold them is refused before any
/// segment runs.
#[test]
fn a_segmented_run_keeps_the_same_streams_chapters_and_tags_as_a_plain_one() {
    let dir = tempfile::tempdir().unwrap();
    let input = subtitled(dir.path(), "in.mkv", "srt", true, true);
    let plain = dir.path().join("plain.mkv");
    upscale_ok(&[], &input, &plain);
    let segmented = dir.path().join("segmented.mkv");
    let log = upscale_ok(
        &["--resume", "--segment-seconds", "0.3"],
        &input,
        &segmented,
    );
    assert!(log.contains("segment"), "not segmented: {log}");

    let (a, b) = (ffprobe_json(&plain), ffprobe_json(&segmented));
    let described = |probe: &serde_json::Value| -> Vec<String> {
        streams(probe)
            .iter()
            .map(|s| {
                format!(
                    "{} {} {:?} {:?}",
                    s["codec_type"],
                    s["codec_name"],
                    tag(&s["tags"], "language"),
                    tag(&s["tags"], "title")
                )
            })
            .collect()
    };
    assert_eq!(described(&b), described(&a));
    assert_global_tags(&b);
    assert_chapters(&b);
    for index in 0..2 {
        let text = |path: &Path| {
            if index == 0 {
                subtitle_srt(path, 0, false)
            } else {
                ass_dialogue(path, 1).join("\n")
            }
        };
        assert_eq!(text(&segmented), text(&plain), "subtitle {index}");
    }

    // DVD-style refusals come before the work, not at the join.
    let mp4 = dir.path().join("segmented.mp4");
    let out = upscale(&["--resume"], &input, &mp4);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("chapter"), "{}", stderr(&out));
    assert!(
        !dir.path().join(".segmented.mp4.gendr-job").exists(),
        "a job folder was left for a refused run"
    );
}
