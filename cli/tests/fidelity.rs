//! What goes in comes out: colours of SD input upscaled to HD, checked as a
//! player sees them (ffmpeg decodes each file to RGB with that file's own
//! colour tags), through `gendr upscale` and through a gst-launch-style
//! pipeline with gendrsr.

use std::path::{Path, PathBuf};
use std::process::Command;

use gendr_test_support::{ffmpeg, ffmpeg_to, gendr, init, run, stderr};
use gst::prelude::*;

/// The seven top bars of ffmpeg's SMPTE pattern, at their centres.
const BARS: usize = 7;
/// How far a bar may move, in 8-bit RGB code values.
const TOLERANCE: i32 = 4;

/// `ffprobe -show_entries ENTRIES` on one stream (`v:0`, `a:0`), as CSV.
fn ffprobe(path: &Path, stream: &str, entries: &str) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            stream,
            "-show_entries",
            entries,
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One decoded frame as RGB24, as a player shows it (the file's own colour
/// tags and display rotation applied), after the filters `vf`.
fn rgb_frame(path: &Path, vf: &str) -> Vec<u8> {
    let raw = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-i"])
        .arg(path)
        .args([
            "-vf",
            vf,
            "-frames:v",
            "1",
            "-pix_fmt",
            "rgb24",
            "-f",
            "rawvideo",
            "-",
        ])
        .output()
        .unwrap();
    assert!(raw.status.success(), "{}", stderr(&raw));
    raw.stdout
}

/// Runs `gendr upscale ARGS INPUT OUTPUT`.
fn gendr_upscale(args: &[&str], input: &Path, output: &Path) -> std::process::Output {
    run(gendr()
        .arg("upscale")
        .args(args)
        .arg(input)
        .arg(output)
        .env("GENDR_LOG", "warn"))
}

/// Three frames of SMPTE bars, H.264 4:2:0, untagged or tagged.
fn bars(dir: &Path, width: u32, height: u32, tag: &str) -> PathBuf {
    let path = dir.join(format!("bars-{width}x{height}-{tag}.mp4"));
    let size = format!("smptebars=s={width}x{height}:r=25");
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        &size,
        "-frames:v",
        "3",
        "-c:v",
        "libx264",
    ];
    args.extend(["-pix_fmt", "yuv420p", "-crf", "10"]);
    match tag {
        "untagged" => {}
        "bt601" => args.extend([
            "-colorspace",
            "smpte170m",
            "-color_primaries",
            "smpte170m",
            "-color_trc",
            "smpte170m",
        ]),
        "bt709" => args.extend([
            "-colorspace",
            "bt709",
            "-color_primaries",
            "bt709",
            "-color_trc",
            "bt709",
        ]),
        other => panic!("unknown tag {other}"),
    }
    let out = path.to_str().unwrap().to_string();
    args.push(&out);
    ffmpeg(&args);
    path
}

/// The bars' centre colours in frame 1, decoded as a player would.
fn bar_colours(path: &Path) -> Vec<[i32; 3]> {
    let dims = ffprobe(path, "v:0", "stream=width,height");
    let (w, h) = dims.split_once(',').unwrap();
    let (w, h): (usize, usize) = (w.parse().unwrap(), h.parse().unwrap());
    let raw = rgb_frame(path, "select=eq(n\\,1)");
    assert_eq!(raw.len(), 3 * w * h);
    (0..BARS)
        .map(|k| {
            // Bars are w/7 wide; sample a third of the way down, mid-bar.
            let (x, y) = ((2 * k + 1) * w / (2 * BARS), h / 3);
            let i = 3 * (y * w + x);
            let p = &raw[i..i + 3];
            [p[0] as i32, p[1] as i32, p[2] as i32]
        })
        .collect()
}

fn assert_same_colours(input: &Path, output: &Path, what: &str) {
    let (a, b) = (bar_colours(input), bar_colours(output));
    for (k, (x, y)) in a.iter().zip(&b).enumerate() {
        let worst = (0..3).map(|c| (x[c] - y[c]).abs()).max().unwrap();
        assert!(worst <= TOLERANCE, "{what}: bar {k} {x:?} came out {y:?}");
    }
}

fn upscale(input: &Path, output: &Path, model: &str) {
    let run = gendr_upscale(
        &["-q", "--overwrite", "-m", model, "--crf", "10"],
        input,
        output,
    );
    // The status too: a run that wrote its file and then died on the way
    // out (once in CI, a segfault after "wrote") says nothing on stderr.
    assert!(run.status.success(), "{}: {}", run.status, stderr(&run));
}

#[test]
fn sd_bars_keep_their_colours_through_gendr_upscale() {
    let dir = tempfile::tempdir().unwrap();
    for (w, h) in [(720, 480), (720, 576)] {
        for tag in ["untagged", "bt601", "bt709"] {
            let input = bars(dir.path(), w, h, tag);
            let output = dir.path().join(format!("out-{w}x{h}-{tag}.mp4"));
            upscale(&input, &output, "fast");
            assert_same_colours(&input, &output, &format!("{w}x{h} {tag}, fast"));
        }
    }
    // The default model too, on the case that shifted most.
    let input = bars(dir.path(), 720, 480, "untagged");
    let output = dir.path().join("out-default.mp4");
    upscale(&input, &output, "default");
    assert_same_colours(&input, &output, "720x480 untagged, default");
}

#[test]
fn sd_bars_keep_their_colours_through_a_plain_gendrsr_pipeline() {
    init();
    let dir = tempfile::tempdir().unwrap();
    for format in ["I420", "NV12"] {
        for tag in ["untagged", "bt601", "bt709"] {
            let input = bars(dir.path(), 720, 480, tag);
            let output = dir.path().join(format!("gst-{format}-{tag}.mp4"));
            let pipeline = gst::parse::launch(&format!(
                "filesrc location=\"{}\" ! decodebin ! videoconvert ! video/x-raw,format={format} ! \
                 gendrsr model=fast ! videoconvert ! x264enc quantizer=10 pass=qual ! mp4mux ! \
                 filesink location=\"{}\"",
                input.display(),
                output.display()
            ))
            .unwrap();
            pipeline.set_state(gst::State::Playing).unwrap();
            let msg = pipeline
                .bus()
                .unwrap()
                .timed_pop_filtered(
                    gst::ClockTime::from_seconds(120),
                    &[gst::MessageType::Eos, gst::MessageType::Error],
                )
                .expect("the pipeline ends");
            pipeline.set_state(gst::State::Null).unwrap();
            assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");
            assert_same_colours(&input, &output, &format!("gst-launch {format} {tag}"));
        }
    }
}

/// The RGB of pixel (x, y) of frame 0, as ffmpeg decodes the file.
fn pixel(path: &Path, x: usize, y: usize, width: usize) -> [u8; 3] {
    let raw = rgb_frame(path, "null");
    let i = 3 * (y * width + x);
    [raw[i], raw[i + 1], raw[i + 2]]
}

#[test]
fn full_range_input_keeps_its_range_and_its_levels() {
    // A decoder says only "full range" (1:0:0:0); that was read as studio
    // range and grey 191 came out 203.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("full.mp4");
    ffmpeg_to(
        &input,
        &[
            "-f lavfi -i color=c=0xbf4020:s=320x240:r=25",
            "-frames:v 3 -c:v libx264 -pix_fmt yuvj420p -color_range pc",
            "-crf 5",
        ],
    );
    let output = dir.path().join("out.mp4");
    upscale(&input, &output, "fast");
    assert_eq!(ffprobe(&output, "v:0", "stream=color_range"), "pc");
    let (a, b) = (pixel(&input, 160, 120, 320), pixel(&output, 320, 240, 640));
    for c in 0..3 {
        assert!(
            (a[c] as i32 - b[c] as i32).abs() <= TOLERANCE,
            "{a:?} came out {b:?}"
        );
    }
}

/// Frame 0 as ffmpeg shows it (display rotation applied), scaled to `w`x`h`.
fn shown(path: &Path, w: usize, h: usize) -> Vec<u8> {
    let raw = rgb_frame(path, &format!("scale={w}:{h}:flags=bicubic"));
    assert_eq!(raw.len(), 3 * w * h);
    raw
}

#[test]
fn a_rotated_phone_clip_comes_out_the_way_it_was_shown() {
    // GStreamer 1.22's muxers drop a display rotation, so the clip came out
    // sideways; frames are now turned upright, and the start line says so.
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.mp4");
    ffmpeg_to(
        &plain,
        &[
            "-f lavfi -i testsrc=s=160x90:r=25",
            "-frames:v 3 -c:v libx264 -pix_fmt yuv420p",
        ],
    );
    let rotated = dir.path().join("rotated.mp4");
    ffmpeg(&[
        "-i",
        plain.to_str().unwrap(),
        "-c",
        "copy",
        "-metadata:s:v:0",
        "rotate=90",
        rotated.to_str().unwrap(),
    ]);
    let output = dir.path().join("out.mp4");
    let run = gendr_upscale(&["-m", "fast"], &rotated, &output);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("turned upright"), "{}", stderr(&run));
    // Shown 90x160 in, 180x320 out: compare what a player shows, at 90x160.
    let (a, b) = (shown(&rotated, 90, 160), shown(&output, 90, 160));
    let mad = a
        .iter()
        .zip(&b)
        .map(|(x, y)| x.abs_diff(*y) as f64)
        .sum::<f64>()
        / a.len() as f64;
    assert!(
        mad < 12.0,
        "mean difference {mad:.1} from what the source shows"
    );
}

#[test]
fn four_two_two_and_four_four_four_come_out_four_two_zero_unless_kept() {
    // They came out as H.264 High 4:4:4, which most players cannot play.
    let dir = tempfile::tempdir().unwrap();
    let probe = |path: &Path| ffprobe(path, "v:0", "stream=pix_fmt,profile");
    for chroma in ["yuv422p", "yuv444p"] {
        let input = dir.path().join(format!("{chroma}.mp4"));
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc=s=160x90:r=25",
            "-frames:v",
            "3",
            "-c:v",
            "libx264",
            "-pix_fmt",
            chroma,
            input.to_str().unwrap(),
        ]);
        let output = dir.path().join(format!("{chroma}-out.mp4"));
        upscale(&input, &output, "fast");
        assert_eq!(probe(&output), "High,yuv420p", "{chroma}");
    }
    let input = dir.path().join("yuv444p.mp4");
    let kept = dir.path().join("kept.mp4");
    let run = gendr_upscale(&["-q", "-m", "fast", "--pix-fmt", "keep"], &input, &kept);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(probe(&kept).ends_with("yuv444p"), "{}", probe(&kept));
}

#[test]
fn audio_the_container_cannot_hold_is_refused_or_re_encoded_never_dropped() {
    // PCM in MOV into .mp4 came out with no audio and exit 0.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pcm.mov");
    ffmpeg_to(
        &input,
        &[
            "-f lavfi -i testsrc=s=160x90:r=25",
            "-f lavfi -i sine=f=440:sample_rate=48000",
            "-t 1 -c:v libx264 -pix_fmt yuv420p -c:a pcm_s16le",
        ],
    );
    let refused = dir.path().join("refused.mp4");
    let run = gendr_upscale(&["-q", "-m", "fast"], &input, &refused);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    assert!(stderr(&run).contains("--audio aac"), "{}", stderr(&run));
    assert!(!refused.exists());
    // A segmented job is refused when it is planned, not at its join
    // after every segment has been upscaled.
    let job = dir.path().join("job");
    let plan = gendr_test_support::run(
        gendr()
            .arg("plan")
            .arg(&input)
            .arg("--job")
            .arg(&job)
            .args(["--container", "mp4", "-m", "fast"]),
    );
    assert_eq!(plan.status.code(), Some(1), "{}", stderr(&plan));
    assert!(stderr(&plan).contains("--audio aac"), "{}", stderr(&plan));
    assert!(!job.join("manifest.json").exists());
    let output = dir.path().join("aac.mp4");
    let run = gendr_upscale(&["-m", "fast", "--audio", "aac"], &input, &output);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("re-encoded as AAC"),
        "{}",
        stderr(&run)
    );
    let audio = ffprobe(&output, "a:0", "stream=codec_name,duration");
    assert!(audio.starts_with("aac,"), "audio stream: {audio:?}");
    let seconds: f64 = audio.rsplit(',').next().unwrap().parse().unwrap();
    assert!((seconds - 1.0).abs() < 0.05, "audio lasts {seconds} s");
}

/// Ramps in steps of one 10-bit code, which 8 bits cannot hold (a fixed
/// pattern: ffmpeg's `gradients` draws other colours on every run).
const TEN_BIT_RAMP: &str = "color=c=gray:s=128x96:r=25,format=yuv420p10le,\
                            geq=lum='64+X*5+Y+N':cb='512+X':cr='512-Y'";

/// An HDR10 clip as a grading tool would write it: a smooth 10-bit ramp
/// (steps finer than 8 bits can hold), PQ/BT.2020 tags, mastering-display
/// and content-light metadata.
fn hdr10_clip(dir: &Path) -> PathBuf {
    let path = dir.join("hdr10.mkv");
    let x265 = "log-level=error:hdr10=1:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:\
                master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1):\
                max-cll=1000,400";
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        TEN_BIT_RAMP,
        "-frames:v",
        "4",
        "-c:v",
        "libx265",
        "-crf",
        "4",
        "-x265-params",
        x265,
        path.to_str().unwrap(),
    ]);
    path
}

/// What ffprobe reads of the first frame's HDR metadata and the stream's tags.
fn hdr_signature(path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1"])
        .args(["-show_entries"])
        .arg(
            "stream=pix_fmt,color_transfer,color_primaries,color_space:\
             frame=side_data_list:side_data=max_luminance,min_luminance,red_x,white_point_x,max_content,max_average",
        )
        .args(["-of", "default=nw=1"])
        .arg(path)
        .output()
        .unwrap();
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("side_data_type=H.26[45] User Data"))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines.dedup();
    lines.join(" ")
}

/// The share of decoded luma samples that 8 bits could not have carried
/// (not a multiple of 4 at 10 bits).
fn share_finer_than_eight_bits(path: &Path) -> f64 {
    let raw = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-i"])
        .arg(path)
        .args([
            "-frames:v",
            "1",
            "-pix_fmt",
            "yuv420p10le",
            "-f",
            "rawvideo",
            "-",
        ])
        .output()
        .unwrap();
    assert!(raw.status.success(), "{}", stderr(&raw));
    let dims = ffprobe(path, "v:0", "stream=width,height");
    let (w, h) = dims.trim_end_matches(',').split_once(',').unwrap();
    let luma = w.parse::<usize>().unwrap() * h.parse::<usize>().unwrap();
    let samples: Vec<u16> = raw.stdout[..2 * luma]
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect();
    samples.iter().filter(|v| *v % 4 != 0).count() as f64 / samples.len() as f64
}

#[test]
fn ten_bit_hdr10_input_stays_ten_bit_with_its_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let input = hdr10_clip(dir.path());
    let wanted = hdr_signature(&input);
    assert!(
        wanted.contains("max_content=1000") && wanted.contains("smpte2084"),
        "{wanted}"
    );
    for (name, args) in [
        ("x265.mkv", &["-q", "-m", "fast"][..]),
        ("x265.mp4", &["-q", "-m", "fast"][..]),
    ] {
        let output = dir.path().join(name);
        let run = gendr_upscale(args, &input, &output);
        assert!(run.status.success(), "{name}: {}", stderr(&run));
        let profile = ffprobe(&output, "v:0", "stream=profile");
        let profile = profile.trim_end_matches(',');
        assert_eq!(profile, "Main 10", "{name}");
        assert_eq!(hdr_signature(&output), wanted, "{name}");
        // Before: 8-bit (every sample a multiple of 4 once widened to 10).
        let finer = share_finer_than_eight_bits(&output);
        assert!(
            finer > 0.5,
            "{name}: only {finer:.2} of samples use 10 bits"
        );
    }
    // x264 writes no mastering metadata and no muxer keeps it right.
    for name in ["x264.mkv", "x264.mp4"] {
        let output = dir.path().join(name);
        let run = gendr_upscale(&["-q", "-m", "fast", "--codec", "x264"], &input, &output);
        assert!(!run.status.success(), "{name}");
        let text = stderr(&run);
        assert_eq!(text.trim().lines().count(), 1, "{text}");
        assert!(text.contains("--codec x265"), "{text}");
        assert!(!output.exists());
    }
}

#[test]
fn ten_bit_input_without_hdr_metadata_takes_x264_high_10_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ten.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        TEN_BIT_RAMP,
        "-frames:v",
        "3",
        "-c:v",
        "libx264",
        "-crf",
        "4",
        input.to_str().unwrap(),
    ]);
    let output = dir.path().join("x264.mp4");
    let run = gendr_upscale(&["-m", "fast", "--codec", "x264"], &input, &output);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("x264 4:2:0 10-bit"),
        "{}",
        stderr(&run)
    );
    let probe = ffprobe(&output, "v:0", "stream=profile,pix_fmt");
    assert_eq!(probe.trim_end_matches(','), "High 10,yuv420p10le");
    let finer = share_finer_than_eight_bits(&output);
    assert!(finer > 0.5, "only {finer:.2} of samples use 10 bits");
    // Reduced to 8 bits only when asked, and said.
    let eight = dir.path().join("eight.mp4");
    let run = gendr_upscale(&["-m", "fast", "--pix-fmt", "yuv420p"], &input, &eight);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("reduced from the input's 10 bits"),
        "{}",
        stderr(&run)
    );
    let probe = ffprobe(&eight, "v:0", "stream=profile,pix_fmt");
    assert_eq!(probe.trim_end_matches(','), "High,yuv420p");
}
