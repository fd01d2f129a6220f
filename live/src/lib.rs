//! The live engine behind `gendr live`: a stream enhanced with bounded
//! latency. It knows nothing of the command line: a [`LiveRequest`] says
//! what to do, lines and the once-a-second stats go to an [`Observer`],
//! and the run ends cleanly, its output finalised, when its [`Cancel`]
//! token is set.
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
//! counts frames and words the stats.

mod access;
mod endpoint;
mod gatekeeper;
mod output;
mod rtsp;
mod source;
mod status;
mod supervisor;

use std::ops::RangeInclusive;
use std::path::PathBuf;

use anyhow::{anyhow, Result};
use gendr::limits;
use gendr::overload::Overload;
use gendr_archive::request::{check_preset, within, SrOptions};
use gendr_archive::Caller;
use gst::prelude::*;

pub use access::{RTSP_PASSWORD_ENV, SRT_PASSPHRASE_ENV};
pub use gendr_archive::{Cancel, Observer};

use access::Access;
use endpoint::{Sink, Source};
use output::Output;
use status::Counters;

/// The x264enc bitrates, in kbit/s.
pub const BITRATE_KBPS: RangeInclusive<u32> = 1..=2_048_000;
/// HLS segment lengths, in seconds.
pub const SEGMENT_SECS: RangeInclusive<u32> = 1..=60;
/// Silences before the source is reconnected, in seconds.
pub const STALL_SECS: RangeInclusive<u32> = 1..=3600;

/// What a live run reads, how it enhances and encodes, and where it sends
/// the result.
#[derive(Debug, Clone)]
pub struct LiveRequest {
    /// Input URI, file or /dev/video* device.
    pub input: String,
    /// Output: udp://, srt://, hls:///DIR, a .m3u8 path or rtsp://HOST:PORT/PATH (served).
    pub output: String,
    pub sr: SrOptions,
    /// Latency budget in milliseconds: frames that would wait longer for the
    /// model, or arrive later than this, are handled by `on_overload`.
    pub latency_ms: u32,
    /// What to do with frames the model cannot take in time.
    pub on_overload: Overload,
    /// Video bitrate in kbit/s, within [`BITRATE_KBPS`].
    pub bitrate: u32,
    /// x264 speed preset, one of [`gendr_archive::request::PRESETS`].
    pub preset: String,
    /// HLS segment length in seconds (also the keyframe interval for HLS).
    pub segment_secs: u32,
    /// Seconds without a frame before the source is reconnected.
    pub stall_secs: u32,
    pub auth: Auth,
}

/// Who may watch an `rtsp://` output and the key of SRT connections.
/// Secrets come from files or the environment, never from the request.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// The one user an `rtsp://` output lets watch (Digest authentication);
    /// the password is read from `rtsp_password_file`, else [`RTSP_PASSWORD_ENV`].
    pub rtsp_user: Option<String>,
    /// Basic authentication offered beside Digest: the password in the clear.
    pub rtsp_allow_basic: bool,
    pub rtsp_password_file: Option<PathBuf>,
    /// File whose first line is the SRT passphrase (10–79 characters);
    /// else [`SRT_PASSPHRASE_ENV`], if set.
    pub srt_passphrase_file: Option<PathBuf>,
    /// SRT key length in bytes with a passphrase: 16, 24 or 32.
    pub srt_pbkeylen: u32,
}

impl LiveRequest {
    /// Checks every value that reaches an element property (where one out
    /// of range is a panic), as the command line's parsers do.
    pub fn check_values(&self) -> Result<()> {
        within("--latency-ms", self.latency_ms, limits::LATENCY_BUDGET_MS)?;
        within("--bitrate", self.bitrate, BITRATE_KBPS)?;
        within("--segment-secs", self.segment_secs, SEGMENT_SECS)?;
        within("--stall-secs", self.stall_secs, STALL_SECS)?;
        check_preset(&self.preset)?;
        Ok(self.sr.check_values()?)
    }
}

/// Runs until the input file ends, the output fails or `caller.cancel` is
/// set (which ends the output cleanly, its playlist finalised: a stop, not
/// a failure); the summary line accounting for every frame is said last.
pub fn run(request: &LiveRequest, caller: Caller) -> Result<()> {
    request.check_values()?;
    let source = Source::parse(&request.input)?;
    let sink = Sink::parse(&request.output)?;
    let access = Access::from_request(&request.auth, &source, &sink)?;
    for warning in access.warnings(&source, &sink) {
        caller.observer.say(&format!("gendr: warning: {warning}"));
    }
    let counters = std::sync::Arc::new(Counters::new());
    let output = Output::build(request, &sink, &access, &counters)?;
    output
        .pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| {
            output
                .first_error()
                .unwrap_or_else(|| anyhow!("the output pipeline could not start"))
        })?;
    caller.observer.say(&format!(
        "gendr: live {} → {} (model {}, temporal stage {}, on-overload {}, budget {} ms)",
        request.input,
        request.output,
        request.sr.model,
        if request.sr.temporal_on() {
            "on"
        } else {
            "off"
        },
        request.on_overload,
        request.latency_ms
    ));
    let result = supervisor::drive(request, &source, &access, &output, &counters, caller);
    caller.observer.finish();
    let summary = output.finish(result.is_ok(), &counters);
    caller.observer.say(&summary);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> LiveRequest {
        LiveRequest {
            input: "udp://:5000".into(),
            output: "udp://:5002".into(),
            sr: SrOptions::new("fast"),
            latency_ms: 500,
            on_overload: Overload::Drop,
            bitrate: 4000,
            preset: "veryfast".into(),
            segment_secs: 2,
            stall_secs: 5,
            auth: Auth::default(),
        }
    }

    #[test]
    fn values_that_would_reach_a_property_out_of_range_are_refused() {
        request().check_values().unwrap();
        type Change = fn(&mut LiveRequest);
        let refused: [(&str, Change); 6] = [
            ("--latency-ms 0", |r| r.latency_ms = 0),
            ("--bitrate 0", |r| r.bitrate = 0),
            ("--segment-secs 61", |r| r.segment_secs = 61),
            ("--stall-secs 0", |r| r.stall_secs = 0),
            ("--preset", |r| r.preset = "warp".into()),
            ("--max-frames-in-flight 0", |r| {
                r.sr.max_frames_in_flight = 0
            }),
        ];
        for (flag, change) in refused {
            let mut request = request();
            change(&mut request);
            let error = request.check_values().unwrap_err().to_string();
            assert!(error.starts_with(flag), "{flag}: {error}");
        }
    }
}
