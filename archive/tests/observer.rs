//! The engine as a library: every line a run has for its user reaches the
//! caller's `Observer`, the ones found in GStreamer's streaming threads
//! and a segmented job's included, so that a caller other than the command
//! line (a service, a GUI) sees them all and nothing is printed past it.

use std::path::Path;
use std::sync::Mutex;

use gendr::engine::Provider;
use gendr::temporal::TemporalMode;
use gendr_archive::request::{Audio, SrOptions, UpscaleOptions, UpscaleRequest};
use gendr_archive::{Caller, Cancel, Observer};
use gendr_test_support::{ffmpeg_to, ffprobe_json, init};

/// Keeps what it is told.
#[derive(Default)]
struct Recorder {
    lines: Mutex<Vec<String>>,
}

impl Observer for Recorder {
    fn say(&self, line: &str) {
        self.lines.lock().unwrap().push(line.to_string());
    }
    fn start(&self, _frames: u64) {}
    fn progress(&self, _frames: u64) {}
    fn finish(&self) {}
}

impl Recorder {
    fn said(&self, part: &str) -> bool {
        self.lines.lock().unwrap().iter().any(|l| l.contains(part))
    }
}

fn request(input: &Path, output: &Path, resume: bool) -> UpscaleRequest {
    UpscaleRequest {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        container: None,
        options: UpscaleOptions {
            sr: SrOptions {
                provider: Provider::Cpu,
                temporal: TemporalMode::Off,
                ..SrOptions::new("default")
            },
            preset: "ultrafast".to_string(),
            audio: Audio::Aac,
            ..UpscaleOptions::new(SrOptions::new("default"))
        },
        overwrite: false,
        quiet: false,
        stall_timeout: 60,
        resume,
        segment_seconds: Some(0.5),
    }
}

/// PCM in a MOV into .mp4 with `audio: Aac`: the re-encoding is said from
/// the streaming thread that finds the audio, plainly and in a segmented,
/// resumable job, whose progress lines come through the observer too.
#[test]
fn lines_from_streaming_threads_and_segments_reach_the_observer() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pcm.mov");
    ffmpeg_to(
        &input,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x48:rate=10:duration=1",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=1",
            "-c:v",
            "libx264",
            "-g",
            "5",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "pcm_s16le",
        ],
    );
    let cancel = Cancel::new();

    let plain = Recorder::default();
    let output = dir.path().join("plain.mp4");
    let caller = Caller {
        observer: &plain,
        cancel: &cancel,
    };
    gendr_archive::upscale::run_one(&request(&input, &output, false), caller).unwrap();
    assert!(
        plain.said("re-encoded as AAC 256 kbit/s (this container cannot hold it)"),
        "{:?}",
        plain.lines.lock().unwrap()
    );

    let segmented = Recorder::default();
    let output = dir.path().join("segmented.mp4");
    let caller = Caller {
        observer: &segmented,
        cancel: &cancel,
    };
    gendr_archive::segment::resume(request(&input, &output, true), caller).unwrap();
    let lines = segmented.lines.lock().unwrap().clone();
    for part in [
        "re-encoded as AAC 256 kbit/s (this container cannot hold it)",
        "segment(s) of about 0.5 s",
        "segment 0 of",
        "gendr: wrote",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(part)),
            "{part:?}: {lines:?}"
        );
    }
    // The job ran and wrote what it said.
    let streams = ffprobe_json(&output)["streams"].clone();
    let codecs: Vec<&str> = streams
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["codec_name"].as_str())
        .collect();
    assert_eq!(codecs, ["h264", "aac"], "{streams}");
}
