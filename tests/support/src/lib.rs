//! Helpers shared by the test suites of the gendr crates: where the checkout
//! and its fixtures are, GStreamer set-up with gendrsr registered, and the
//! output of the `gendr` binary.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};

use gst::prelude::*;

/// The checkout's root folder.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A path inside the checkout, e.g. `repo("samples/bbb_320x180_2s.mp4")`.
pub fn repo(path: &str) -> PathBuf {
    repo_root().join(path)
}

/// A fixture in `tests/data` (the generated test models and eval images).
pub fn data(name: &str) -> PathBuf {
    repo("tests/data").join(name)
}

/// A test model's path, as gendrsr's `model` property takes it.
pub fn model(name: &str) -> String {
    data(name).display().to_string()
}

/// A process's standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `gendr: error:` lines a run wrote to its standard error.
pub fn error_lines(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("gendr: error:"))
        .map(str::to_string)
        .collect()
}

/// Reads an RTSP reply up to the end of its head; what the read gave
/// instead (an error, or 0 bytes at the end of the stream) when it ends
/// first.
pub fn rtsp_reply_head(stream: &mut std::net::TcpStream) -> Result<String, String> {
    use std::io::Read;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    while !reply.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(n) if n > 0 => reply.extend_from_slice(&chunk[..n]),
            other => return Err(format!("{other:?}")),
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// Initialises GStreamer and registers gendrsr, once per test binary.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstgendrsr::plugin_register_static().expect("register gendrsr");
    });
}

/// Builds a pipeline from a description with an appsink named `sink`.
pub fn pipeline_with_sink(description: &str) -> (gst::Pipeline, gst_app::AppSink) {
    init();
    let pipeline = gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .expect("an element named sink")
        .downcast::<gst_app::AppSink>()
        .expect("sink is an appsink");
    (pipeline, sink)
}

/// Runs a pipeline with an appsink named `sink` to its end: the number of
/// frames the sink got, or the first error on the bus (or a time-out).
pub fn run_pipeline(description: &str) -> Result<usize, String> {
    let (pipeline, sink) = pipeline_with_sink(description);
    let counted = Arc::new(AtomicUsize::new(0));
    {
        let c = counted.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    c.fetch_add(1, Ordering::SeqCst);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }
    let bus = pipeline.bus().unwrap();
    // A failed start is reported on the bus, read below.
    let _ = pipeline.set_state(gst::State::Playing);
    let result = loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_seconds(60)) else {
            break Err("timed out".to_string());
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break Ok(counted.load(Ordering::SeqCst)),
            gst::MessageView::Error(e) => break Err(format!("{} ({:?})", e.error(), e.debug())),
            _ => {}
        }
    };
    pipeline.set_state(gst::State::Null).unwrap();
    result
}

/// What GStreamer's discoverer reads of a file (a second reader beside
/// ffprobe), within a minute.
pub fn discover(path: &std::path::Path) -> gst_pbutils::DiscovererInfo {
    gst::init().unwrap();
    let discoverer = gst_pbutils::Discoverer::new(gst::ClockTime::from_seconds(60)).unwrap();
    let uri = gst::glib::filename_to_uri(path.canonicalize().unwrap(), None).unwrap();
    discoverer.discover_uri(&uri).unwrap()
}

/// Runs ffmpeg (quiet, overwriting) with `args`; panics with its message on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "ffmpeg {args:?}: {}", stderr(&out));
}

/// Makes a test input: ffmpeg (as [`ffmpeg`] runs it) with `args`, each
/// split at white space, and `output` last, e.g. `ffmpeg_to(&clip, &["-f
/// lavfi -i testsrc=s=160x90:r=25", "-frames:v 3 -c:v libx264"])`. An
/// argument with a space in it goes through [`ffmpeg`].
pub fn ffmpeg_to(output: &std::path::Path, args: &[&str]) {
    let output = output.to_str().expect("a UTF-8 test path");
    let words = args.iter().flat_map(|a| a.split_whitespace());
    ffmpeg(&words.chain([output]).collect::<Vec<_>>());
}

/// Everything ffprobe reads of a file (format, streams with their tags and
/// dispositions, chapters), as JSON: an independent reader for outputs.
pub fn ffprobe_json(path: &std::path::Path) -> serde_json::Value {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(["-show_format", "-show_streams", "-show_chapters"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe writes JSON")
}

/// Each video frame's presentation time in seconds, as ffprobe decodes
/// them; fails on any decoding error.
pub fn ffprobe_frame_times(path: &std::path::Path) -> Vec<String> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "frame=pts_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffprobe {}: {}",
        path.display(),
        stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_end_matches(',').to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The names in a folder, sorted: what a run left behind.
pub fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A free TCP port on 127.0.0.1.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free UDP port on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A live 160×90 H.264 MPEG-TS stream of videotestsrc's `pattern` sent to
/// 127.0.0.1:`port`, with a keyframe and parameter sets every second so
/// that receivers can join.
pub fn ts_sender(port: u16, pattern: &str) -> Guard {
    let pipeline = format!(
        "videotestsrc is-live=true pattern={pattern} ! video/x-raw,width=160,height=90,framerate=25/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 \
         ! h264parse config-interval=-1 ! mpegtsmux ! udpsink host=127.0.0.1 port={port}"
    );
    Guard(
        Command::new("gst-launch-1.0")
            .arg("-q")
            .args(pipeline.split_whitespace())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("gst-launch-1.0"),
    )
}

/// A child process that is killed and reaped when dropped.
pub struct Guard(pub std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Guard {
    /// Waits up to `limit` for the child to exit.
    pub fn wait_for(&mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }

    /// Sends SIGINT, as Ctrl-C does.
    pub fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// The longest one `gendr` run in a test may take before [`run`] counts it
/// as hung: far above any test's run, even on 2 busy cores.
pub const RUN_LIMIT: std::time::Duration = std::time::Duration::from_secs(600);

/// The `gendr` binary built for the test run, as a command. Cargo names it
/// in `CARGO_BIN_EXE_gendr` while a `gendr-cli` integration test runs (only
/// at build time before cargo 1.88); else it is beside the test binary's
/// `deps` folder, where cargo puts the package's binaries.
pub fn gendr() -> Command {
    let binary = std::env::var_os("CARGO_BIN_EXE_gendr")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let test = std::env::current_exe().expect("the test binary's path");
            let profile = test.parent().and_then(|deps| deps.parent());
            profile.expect("a cargo target folder").join("gendr")
        });
    assert!(
        binary.is_file(),
        "{} is missing: run the tests with cargo test -p gendr-cli",
        binary.display()
    );
    Command::new(binary)
}

/// Runs `cmd` to its end within [`RUN_LIMIT`] (see [`output_within`]).
pub fn run(cmd: &mut Command) -> Output {
    output_within(cmd, RUN_LIMIT)
}

/// `gendr upscale ARGS INPUT OUTPUT`, run to its end by [`run`].
pub fn upscale(args: &[&str], input: &std::path::Path, output: &std::path::Path) -> Output {
    run(gendr().arg("upscale").args(args).arg(input).arg(output))
}

/// `gendr upscale ARGS -m slow_x2.onnx INPUT OUTPUT` started with its
/// stderr piped: a deliberately slow model (seconds a frame), so that a
/// test can act while the run is still writing.
pub fn spawn_slow_upscale(
    args: &[&str],
    input: &std::path::Path,
    output: &std::path::Path,
) -> std::process::Child {
    gendr()
        .arg("upscale")
        .args(args)
        .arg("-m")
        .arg(data("slow_x2.onnx"))
        .arg(input)
        .arg(output)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("gendr starts")
}

/// Runs `cmd` to its end like `Command::output` (stdin closed), but fails
/// the test with the child's stderr when it takes longer than `limit` (the
/// child is killed): a hung run is a failure that says where it hung, not a
/// suite that never ends.
pub fn output_within(cmd: &mut Command, limit: std::time::Duration) -> Output {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = read(Box::new(child.stdout.take().expect("piped")));
    let stderr = read(Box::new(child.stderr.take().expect("piped")));
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let said = stderr.join().unwrap_or_default();
            panic!(
                "{cmd:?} did not end within {} s; its stderr:\n{}",
                limit.as_secs_f64(),
                String::from_utf8_lossy(&said)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // What it said is worked out by the shell, so only its stderr holds it.
    #[should_panic(expected = "its stderr:\nhung at 42")]
    fn a_hung_run_is_killed_and_fails_with_its_stderr() {
        output_within(
            Command::new("sh").args(["-c", "echo hung at $((6 * 7)) >&2; exec sleep 60"]),
            std::time::Duration::from_millis(500),
        );
    }

    #[test]
    fn a_run_that_ends_in_time_gives_its_output() {
        let out = output_within(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            std::time::Duration::from_secs(30),
        );
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(
            (&out.stdout[..], &out.stderr[..]),
            (&b"out\n"[..], &b"err\n"[..])
        );
    }
}
