//! `gendr live`: its arguments turned into the live engine's request, its
//! lines and stats line on stderr, and Ctrl-C.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::builder::TypedValueParser;
use gendr::limits;
use gendr::overload::Overload;
use gendr_archive::request::PRESETS;
use gendr_live::{Auth, LiveRequest, BITRATE_KBPS, SEGMENT_SECS, STALL_SECS};

use crate::progress::cancel_on_ctrl_c;
use crate::upscale::{in_range, SrOptions};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "\
Examples:
  gendr live udp://127.0.0.1:5000 udp://127.0.0.1:5002 --model fast
  gendr live rtsp://camera.local/stream srt://:9000?mode=listener --latency-ms 300
  gendr live /dev/video0 hls:///var/www/live --model fast --on-overload fallback
  gendr live match.mp4 out/live.m3u8
  gendr live udp://127.0.0.1:5000 rtsp://localhost:8554/live --model fast
  GENDR_RTSP_PASSWORD=… gendr live udp://:5000 rtsp://0.0.0.0:8554/live --rtsp-user viewer

Inputs: any URI uridecodebin takes (udp:// MPEG-TS, rtsp://, srt://, http(s):// HLS,
file://), a file path (played in real time) or a V4L2 device (/dev/video*).
Outputs: udp://HOST:PORT (H.264 in MPEG-TS), srt://HOST:PORT[?mode=listener] (MPEG-TS),
hls:///DIR or a .m3u8 path (HLS segments and playlist), rtsp://HOST:PORT/PATH (an RTSP
server listening on HOST:PORT, serving H.264 over RTP at PATH to any number of clients).
Listeners (rtsp://, srt://…?mode=listener, udp:// inputs) without a host, or with
localhost, take loopback connections only; every interface needs 0.0.0.0 or [::] and
warns unless --rtsp-user or an SRT passphrase protects it.
Stop with Ctrl-C (or SIGTERM): the output is ended cleanly and the playlist finalised.")]
pub struct Args {
    /// Input URI, file or /dev/video* device.
    pub input: String,
    /// Output: udp://, srt://, hls:///DIR, a .m3u8 path or rtsp://HOST:PORT/PATH (served).
    pub output: String,
    #[command(flatten)]
    pub sr: SrOptions,
    /// Latency budget in milliseconds: frames that would wait longer for the
    /// model, or arrive later than this, are handled by --on-overload.
    #[arg(long, default_value_t = 500, value_parser = in_range(limits::LATENCY_BUDGET_MS))]
    pub latency_ms: u32,
    /// What to do with frames the model cannot take in time.
    #[arg(long, default_value = "drop", value_parser = overload_parser())]
    pub on_overload: Overload,
    /// Video bitrate in kbit/s (x264enc's range).
    #[arg(long, default_value_t = 4000, value_parser = in_range(BITRATE_KBPS))]
    pub bitrate: u32,
    /// x264 speed preset.
    #[arg(long, default_value = "veryfast", value_parser = clap::builder::PossibleValuesParser::new(PRESETS))]
    pub preset: String,
    /// HLS segment length in seconds (also the keyframe interval for HLS).
    #[arg(long, default_value_t = 2, value_parser = in_range(SEGMENT_SECS))]
    pub segment_secs: u32,
    /// Seconds without a frame before the source is reconnected.
    #[arg(long, default_value_t = 5, value_parser = in_range(STALL_SECS))]
    pub stall_secs: u32,
    /// Let only this user watch an rtsp:// output (Digest
    /// authentication); the password comes from GENDR_RTSP_PASSWORD or
    /// --rtsp-password-file, never the command line.
    #[arg(long, value_name = "NAME")]
    pub rtsp_user: Option<String>,
    /// Also offer Basic authentication, which sends the password in the
    /// clear on every request (for clients that cannot answer Digest).
    #[arg(long, requires = "rtsp_user")]
    pub rtsp_allow_basic: bool,
    /// File whose first line is the RTSP password.
    #[arg(long, value_name = "FILE")]
    pub rtsp_password_file: Option<PathBuf>,
    /// File whose first line is the SRT passphrase (10–79 characters) that
    /// encrypts an srt:// input or output; else GENDR_SRT_PASSPHRASE, if set.
    #[arg(long, value_name = "FILE")]
    pub srt_passphrase_file: Option<PathBuf>,
    /// SRT key length in bytes with a passphrase: 16, 24 or 32.
    #[arg(long, value_name = "BYTES", default_value_t = 16)]
    pub srt_pbkeylen: u32,
    /// No stats line.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `--on-overload`: the core's policies, by the names gendrsr's property takes.
fn overload_parser() -> impl clap::builder::TypedValueParser<Value = Overload> {
    clap::builder::PossibleValuesParser::new([
        clap::builder::PossibleValue::new("drop")
            .help("Skip the frame (counted, and posted as QoS)"),
        clap::builder::PossibleValue::new("fallback")
            .help("Upscale the frame with a bilinear resize instead of the model"),
        clap::builder::PossibleValue::new("block")
            .help("Wait for the model: latency grows when it cannot keep up"),
    ])
    .try_map(|name| name.parse::<Overload>())
}

impl From<Args> for LiveRequest {
    fn from(args: Args) -> Self {
        LiveRequest {
            input: args.input,
            output: args.output,
            sr: args.sr.into(),
            latency_ms: args.latency_ms,
            on_overload: args.on_overload,
            bitrate: args.bitrate,
            preset: args.preset,
            segment_secs: args.segment_secs,
            stall_secs: args.stall_secs,
            auth: Auth {
                rtsp_user: args.rtsp_user,
                rtsp_allow_basic: args.rtsp_allow_basic,
                rtsp_password_file: args.rtsp_password_file,
                srt_passphrase_file: args.srt_passphrase_file,
                srt_pbkeylen: args.srt_pbkeylen,
            },
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let status = StatusLine::new(args.quiet);
    let cancel = cancel_on_ctrl_c();
    let caller = gendr_archive::Caller {
        observer: &status,
        cancel: &cancel,
    };
    gendr_live::run(&LiveRequest::from(args), caller)
}

/// One stats line on stderr, refreshed in place on a terminal; other
/// lines are printed above it.
struct StatusLine {
    tty: bool,
    quiet: bool,
    shown: Mutex<Shown>,
}

/// What the stats line last did.
#[derive(Default)]
struct Shown {
    /// On a terminal: a stats line is on screen, to be cleared before other text.
    in_place: bool,
    /// Elsewhere: when the last stats line was printed.
    printed_at: Option<Instant>,
}

impl StatusLine {
    fn new(quiet: bool) -> Self {
        StatusLine {
            tty: std::io::stderr().is_terminal(),
            quiet,
            shown: Mutex::default(),
        }
    }

    fn shown(&self) -> std::sync::MutexGuard<'_, Shown> {
        self.shown.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn clear(shown: &mut Shown) {
    if std::mem::take(&mut shown.in_place) {
        eprint!("\r\x1b[K");
    }
}

impl gendr_archive::Observer for StatusLine {
    fn say(&self, line: &str) {
        clear(&mut self.shown());
        eprintln!("{line}");
    }

    fn start(&self, _frames: u64) {}

    fn progress(&self, _frames: u64) {}

    fn finish(&self) {
        clear(&mut self.shown());
    }

    fn status(&self, line: &str) {
        if self.quiet {
            return;
        }
        let mut shown = self.shown();
        if self.tty {
            eprint!("\r\x1b[K{line}");
            shown.in_place = true;
        } else if shown
            .printed_at
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(5))
        {
            // Logs get a line every few seconds rather than every second.
            eprintln!("{line}");
            shown.printed_at = Some(Instant::now());
        }
    }
}
