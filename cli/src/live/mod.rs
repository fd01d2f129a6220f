//! `gendr live`: enhance a live stream with bounded latency.
//!
//! Two pipelines joined by an appsink → appsrc hop:
//!
//! ```text
//! source:  uridecodebin | v4l2src ! decodebin → videoconvert → appsink
//! output:  appsrc (live, timestamped on arrival) → gendrsr on-overload=drop
//!          → x264enc tune=zerolatency → h264parse → mpegtsmux → udpsink | srtsink
//!                                                 → hlssink2
//!                                                 → appsink ⇢ RTSP server
//! rtsp:    appsrc (one shared media, fed by the appsink above) → rtph264pay
//! ```
//!
//! The source side can be torn down and rebuilt when the stream drops,
//! while the output side, its timeline, its playlist and its RTSP server
//! keep going.
//!
//! Modules: [`endpoint`] parses the input and output, [`output`] and
//! [`source`] build the two pipelines, [`rtsp`] serves an `rtsp://` output
//! within the bounds on clients that [`gatekeeper`] keeps,
//! [`supervisor`] runs the loop that reconnects the source, and [`status`]
//! counts frames and shows them.

mod access;
mod endpoint;
mod gatekeeper;
mod output;
mod rtsp;
mod source;
mod status;
mod supervisor;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use clap::builder::TypedValueParser;
use gendr::limits;
use gendr::overload::Overload;
use gst::prelude::*;

use crate::upscale::SrOptions;
use access::Access;
use endpoint::{Sink, Source};
use output::Output;
use status::{Counters, StatusLine};

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
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32)
        .range(*limits::LATENCY_BUDGET_MS.start() as i64..=*limits::LATENCY_BUDGET_MS.end() as i64))]
    pub latency_ms: u32,
    /// What to do with frames the model cannot take in time.
    #[arg(long, default_value = "drop", value_parser = overload_parser())]
    pub on_overload: Overload,
    /// Video bitrate in kbit/s (x264enc's range).
    #[arg(long, default_value_t = 4000, value_parser = clap::value_parser!(u32).range(1..=2_048_000))]
    pub bitrate: u32,
    /// x264 speed preset.
    #[arg(long, default_value = "veryfast", value_parser = clap::builder::PossibleValuesParser::new(crate::upscale::PRESETS))]
    pub preset: String,
    /// HLS segment length in seconds (also the keyframe interval for HLS).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub segment_secs: u32,
    /// Seconds without a frame before the source is reconnected.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=3600))]
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

pub fn run(args: Args) -> Result<()> {
    args.sr.validate()?;
    let source = Source::parse(&args.input)?;
    let sink = Sink::parse(&args.output)?;
    let access = Access::from_args(&args, &source, &sink)?;
    for warning in access.warnings(&source, &sink) {
        eprintln!("gendr: warning: {warning}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let flag = stop.clone();
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
            .context("installing the signal handler")?;
    }
    let counters = Arc::new(Counters::new());
    let output = Output::build(&args, &sink, &access, &counters)?;
    output
        .pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| {
            output
                .first_error()
                .unwrap_or_else(|| anyhow!("the output pipeline could not start"))
        })?;
    let mut status = StatusLine::new(args.quiet);
    status.say(&format!(
        "gendr: live {} → {} (model {}, temporal stage {}, on-overload {}, budget {} ms)",
        args.input,
        args.output,
        args.sr.model,
        if args.sr.temporal.enabled_for(&args.sr.model) {
            "on"
        } else {
            "off"
        },
        args.on_overload,
        args.latency_ms
    ));
    let result = supervisor::drive(
        &args,
        &source,
        &access,
        &output,
        &counters,
        &stop,
        &mut status,
    );
    status.clear();
    let summary = output.finish(result.is_ok(), &counters);
    eprintln!("{summary}");
    result
}
