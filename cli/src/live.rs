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

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use gst::glib;
use gst::prelude::*;
use gst_rtsp_server::prelude::*;

use crate::media;
use crate::upscale::SrOptions;

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "\
Examples:
  gendr live udp://127.0.0.1:5000 udp://127.0.0.1:5002 --model fast
  gendr live rtsp://camera.local/stream srt://:9000?mode=listener --latency-ms 300
  gendr live /dev/video0 hls:///var/www/live --model fast --on-overload fallback
  gendr live match.mp4 out/live.m3u8
  gendr live udp://127.0.0.1:5000 rtsp://0.0.0.0:8554/live --model fast

Inputs: any URI uridecodebin takes (udp:// MPEG-TS, rtsp://, srt://, http(s):// HLS,
file://), a file path (played in real time) or a V4L2 device (/dev/video*).
Outputs: udp://HOST:PORT (H.264 in MPEG-TS), srt://HOST:PORT[?mode=listener] (MPEG-TS),
hls:///DIR or a .m3u8 path (HLS segments and playlist), rtsp://HOST:PORT/PATH (an RTSP
server listening on HOST:PORT, serving H.264 over RTP at PATH to any number of clients).
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
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=600_000))]
    pub latency_ms: u32,
    /// What to do with frames the model cannot take in time.
    #[arg(long, value_enum, default_value_t = OnOverload::Drop)]
    pub on_overload: OnOverload,
    /// Video bitrate in kbit/s.
    #[arg(long, default_value_t = 4000)]
    pub bitrate: u32,
    /// x264 speed preset (ultrafast … veryslow).
    #[arg(long, default_value = "veryfast")]
    pub preset: String,
    /// HLS segment length in seconds (also the keyframe interval for HLS).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub segment_secs: u32,
    /// Seconds without a frame before the source is reconnected.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub stall_secs: u32,
    /// No stats line.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnOverload {
    /// Skip the frame (counted, and posted as QoS).
    Drop,
    /// Upscale the frame with a bilinear resize instead of the model.
    Fallback,
    /// Wait for the model: latency grows when it cannot keep up.
    Block,
}

impl OnOverload {
    fn nick(self) -> &'static str {
        match self {
            OnOverload::Drop => "drop",
            OnOverload::Fallback => "fallback",
            OnOverload::Block => "block",
        }
    }
}

/// Where frames come from.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    Uri(String),
    /// A file, played at its own pace.
    File(String),
    Device(String),
}

impl Source {
    fn parse(input: &str) -> Result<Source> {
        if input.starts_with("/dev/video") {
            if !Path::new(input).exists() {
                bail!("{input}: no such device");
            }
            return Ok(Source::Device(input.into()));
        }
        if input.starts_with("file://") {
            return Ok(Source::File(input.into()));
        }
        if input.contains("://") {
            return Ok(Source::Uri(input.into()));
        }
        let path = Path::new(input);
        if !path.is_file() {
            bail!("{input}: no such file (and not a URI)");
        }
        Ok(Source::File(media::file_uri(path)?))
    }

    /// A file ends; a stream that ends may come back.
    fn is_file(&self) -> bool {
        matches!(self, Source::File(_))
    }
}

/// Where the upscaled stream goes.
#[derive(Debug, Clone, PartialEq)]
enum Sink {
    Udp {
        host: String,
        port: u16,
    },
    Srt(String),
    Hls {
        playlist: PathBuf,
        segments: PathBuf,
    },
    /// An RTSP server on `host`:`port` serving the stream at `mount`.
    Rtsp {
        host: String,
        port: u16,
        mount: String,
    },
}

impl Sink {
    fn parse(output: &str) -> Result<Sink> {
        if let Some(rest) = output.strip_prefix("udp://") {
            let (host, port) = rest
                .trim_end_matches('/')
                .rsplit_once(':')
                .with_context(|| format!("{output}: expected udp://HOST:PORT"))?;
            let port = port
                .parse()
                .with_context(|| format!("{output}: bad port {port:?}"))?;
            let host = if host.is_empty() { "127.0.0.1" } else { host };
            return Ok(Sink::Udp {
                host: host.trim_matches(['[', ']']).into(),
                port,
            });
        }
        if output.starts_with("srt://") {
            if gst::ElementFactory::find("srtsink").is_none() {
                bail!("{output}: srtsink is not installed (gst-plugins-bad with SRT support)");
            }
            return Ok(Sink::Srt(output.into()));
        }
        if let Some(rest) = output.strip_prefix("rtsp://") {
            let expected = || format!("{output}: expected rtsp://HOST:PORT/PATH");
            let (authority, path) = rest.split_once('/').with_context(expected)?;
            let path = path.trim_end_matches('/');
            if path.is_empty() || path.contains(['?', '#']) {
                bail!(expected());
            }
            let (host, port) = match authority.strip_prefix('[') {
                Some(v6) => {
                    let (host, rest) = v6.split_once(']').with_context(expected)?;
                    (host, rest.strip_prefix(':'))
                }
                None => match authority.rsplit_once(':') {
                    Some((host, port)) => (host, Some(port)),
                    None => (authority, None),
                },
            };
            let port = match port {
                Some(port) => port
                    .parse()
                    .with_context(|| format!("{output}: bad port {port:?}"))?,
                None => 8554,
            };
            return Ok(Sink::Rtsp {
                host: if host.is_empty() { "0.0.0.0" } else { host }.into(),
                port,
                mount: format!("/{path}"),
            });
        }
        let (dir, playlist) = if let Some(dir) = output.strip_prefix("hls://") {
            let dir = PathBuf::from(dir);
            let playlist = dir.join("playlist.m3u8");
            (dir, playlist)
        } else if output.ends_with(".m3u8") {
            let playlist = PathBuf::from(output);
            let dir = match playlist.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            (dir, playlist)
        } else {
            bail!("{output}: unknown output; use udp://HOST:PORT, srt://HOST:PORT, hls:///DIR, a .m3u8 path or rtsp://HOST:PORT/PATH");
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
        let stem = playlist
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "playlist".into());
        Ok(Sink::Hls {
            segments: dir.join(format!("{stem}%05d.ts")),
            playlist,
        })
    }

    /// The elements after h264parse, linked (for RTSP, see [`RtspServer`]).
    fn elements(&self, segment_secs: u32) -> Result<Vec<gst::Element>> {
        let ts = || {
            gst::ElementFactory::make("mpegtsmux")
                .property("alignment", 7i32)
                .build()
        };
        Ok(match self {
            Sink::Udp { host, port } => vec![
                ts()?,
                gst::ElementFactory::make("udpsink")
                    .property("host", host)
                    .property("port", *port as i32)
                    .build()?,
            ],
            Sink::Srt(uri) => vec![
                ts()?,
                gst::ElementFactory::make("srtsink")
                    .property("uri", uri)
                    .property("wait-for-connection", false)
                    .build()?,
            ],
            Sink::Hls { playlist, segments } => vec![gst::ElementFactory::make("hlssink2")
                .property("location", segments.display().to_string())
                .property("playlist-location", playlist.display().to_string())
                .property("target-duration", segment_secs)
                .property("playlist-length", 0u32)
                .property("max-files", 0u32)
                .build()?],
            Sink::Rtsp { .. } => bail!("an RTSP output is served, not linked"),
        })
    }
}

/// Counters shared with the streaming threads.
#[derive(Default)]
struct Counters {
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    /// Last frame into the output pipeline, as milliseconds since `start`.
    last_in_ms: AtomicU64,
    e2e: Mutex<E2e>,
}

/// Time from a frame's entry into the output pipeline to its encoded form.
#[derive(Default)]
struct E2e {
    sum_ms: f64,
    n: u64,
    max_ms: f64,
    window_max_ms: f64,
}

pub fn run(args: Args) -> Result<()> {
    args.sr.validate()?;
    let source = Source::parse(&args.input)?;
    let sink = Sink::parse(&args.output)?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let flag = stop.clone();
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
            .context("installing the signal handler")?;
    }
    let counters = Arc::new(Counters::default());
    let started = Instant::now();
    let output = Output::build(&args, &sink, &counters)?;
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
        "gendr: live {} → {} (model {}, on-overload {}, budget {} ms)",
        args.input,
        args.output,
        args.sr.model,
        args.on_overload.nick(),
        args.latency_ms
    ));
    let result = drive(
        &args,
        &source,
        &output,
        &counters,
        &stop,
        &mut status,
        started,
    );
    status.clear();
    let summary = output.finish(result.is_ok(), &counters);
    eprintln!("{summary}");
    result
}

struct Output {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    sr: gst::Element,
    /// The server behind an `rtsp://` output, stopped after the pipeline.
    rtsp: Option<RtspServer>,
}

impl Output {
    fn build(args: &Args, sink: &Sink, counters: &Arc<Counters>) -> Result<Output> {
        let pipeline = gst::Pipeline::with_name("gendr-live-output");
        let appsrc = gst_app::AppSrc::builder()
            .is_live(true)
            .format(gst::Format::Time)
            .do_timestamp(true)
            .max_buffers(4)
            .block(false)
            .leaky_type(gst_app::AppLeakyType::Downstream)
            .build();
        let sr = args.sr.element()?;
        sr.set_property_from_str("on-overload", args.on_overload.nick());
        sr.set_property("latency-budget", args.latency_ms);
        let convert = gst::ElementFactory::make("videoconvert").build()?;
        let keyint = match sink {
            Sink::Hls { .. } => 30 * args.segment_secs,
            _ => 60,
        };
        let encoder = gst::ElementFactory::make("x264enc")
            .property_from_str("tune", "zerolatency")
            .property_from_str("speed-preset", &args.preset)
            .property("bitrate", args.bitrate)
            .property("key-int-max", keyint)
            .build()
            .context("x264enc (gst-plugins-ugly)")?;
        let parse = gst::ElementFactory::make("h264parse")
            .property("config-interval", -1i32)
            .build()?;
        let (tail, rtsp) = match sink {
            Sink::Rtsp { host, port, mount } => {
                let appsink = gst_app::AppSink::builder()
                    .caps(
                        &gst::Caps::builder("video/x-h264")
                            .field("stream-format", "byte-stream")
                            .field("alignment", "au")
                            .build(),
                    )
                    .sync(false)
                    .build();
                let server = RtspServer::start(host, *port, mount, &appsink)?;
                (vec![appsink.upcast()], Some(server))
            }
            _ => (sink.elements(args.segment_secs)?, None),
        };
        let mut chain: Vec<gst::Element> = vec![
            appsrc.clone().upcast(),
            sr.clone(),
            convert,
            encoder,
            parse.clone(),
        ];
        chain.extend(tail);
        pipeline.add_many(&chain)?;
        gst::Element::link_many(&chain)?;

        {
            let counters = counters.clone();
            sr.static_pad("src").context("gendrsr src")?.add_probe(
                gst::PadProbeType::BUFFER,
                move |_, _| {
                    counters.frames_out.fetch_add(1, Ordering::Relaxed);
                    gst::PadProbeReturn::Ok
                },
            );
        }
        {
            let counters = counters.clone();
            let weak = pipeline.downgrade();
            parse.static_pad("src").context("h264parse src")?.add_probe(
                gst::PadProbeType::BUFFER,
                move |pad, info| {
                    let (Some(buffer), Some(pipeline)) = (info.buffer(), weak.upgrade()) else {
                        return gst::PadProbeReturn::Ok;
                    };
                    // x264enc shifts timestamps by 1000 h in its segment: compare running times.
                    let segment = pad.sticky_event::<gst::event::Segment>(0);
                    let rt = segment.and_then(|s| {
                        s.segment()
                            .downcast_ref::<gst::ClockTime>()
                            .and_then(|s| s.to_running_time(buffer.pts()))
                    });
                    if let (Some(rt), Some(now)) = (rt, pipeline.current_running_time()) {
                        let ms = now.saturating_sub(rt).nseconds() as f64 / 1e6;
                        let mut e2e = counters.e2e.lock().unwrap_or_else(|p| p.into_inner());
                        e2e.sum_ms += ms;
                        e2e.n += 1;
                        e2e.max_ms = e2e.max_ms.max(ms);
                        e2e.window_max_ms = e2e.window_max_ms.max(ms);
                    }
                    gst::PadProbeReturn::Ok
                },
            );
        }
        Ok(Output {
            pipeline,
            appsrc,
            sr,
            rtsp,
        })
    }

    fn first_error(&self) -> Option<anyhow::Error> {
        let bus = self.pipeline.bus()?;
        let msg =
            bus.timed_pop_filtered(gst::ClockTime::from_seconds(1), &[gst::MessageType::Error])?;
        match msg.view() {
            gst::MessageView::Error(err) => Some(anyhow!("{}", media::error_text(err))),
            _ => None,
        }
    }

    /// Ends the stream (when `clean`) so that files are finalised, stops the
    /// pipeline and returns a summary line.
    fn finish(&self, clean: bool, counters: &Counters) -> String {
        if clean {
            let _ = self.appsrc.end_of_stream();
            if let Some(bus) = self.pipeline.bus() {
                let _ = bus.timed_pop_filtered(
                    gst::ClockTime::from_seconds(10),
                    &[gst::MessageType::Eos, gst::MessageType::Error],
                );
            }
        }
        let e2e = counters.e2e.lock().unwrap_or_else(|p| p.into_inner());
        let summary = format!(
            "gendr: {} frames in, {} from the model, {} fallback, {} dropped; latency in gendrsr \
             mean {:.0} ms, max {:.0} ms; input to encoded mean {:.0} ms, max {:.0} ms",
            counters.frames_in.load(Ordering::Relaxed),
            self.sr.property::<u64>("frames-processed"),
            self.sr.property::<u64>("frames-fallback"),
            self.sr.property::<u64>("frames-dropped"),
            self.sr.property::<f64>("latency-mean-ms"),
            self.sr.property::<f64>("latency-max-ms"),
            e2e.sum_ms / e2e.n.max(1) as f64,
            e2e.max_ms,
        );
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(rtsp) = &self.rtsp {
            rtsp.stop();
        }
        summary
    }
}

/// An RTSP server for an `rtsp://` output, on its own GLib main context and
/// thread. It serves one shared media, `appsrc ! rtph264pay`, prepared when
/// the first client asks for it and fed by the output pipeline's appsink
/// with the already encoded stream; a client that joins later shares it, and
/// each new media asks the encoder for a keyframe so that playback starts
/// at once. No client, no media: the encoded frames are then dropped.
struct RtspServer {
    server: gst_rtsp_server::RTSPServer,
    main_loop: glib::MainLoop,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl RtspServer {
    fn start(host: &str, port: u16, mount: &str, appsink: &gst_app::AppSink) -> Result<Self> {
        let url = format!("rtsp://{host}:{port}{mount}");
        let server = gst_rtsp_server::RTSPServer::new();
        server.set_address(host);
        server.set_service(&port.to_string());
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        // Timestamps are the media's own clock's: the buffers arrive encoded and in order
        // (x264enc tune=zerolatency has no B-frames).
        factory.set_launch(
            "( appsrc name=src is-live=true format=time do-timestamp=true \
             ! rtph264pay name=pay0 pt=96 config-interval=1 aggregate-mode=zero-latency )",
        );
        factory.set_shared(true);
        let current: Arc<Mutex<Option<gst_app::AppSrc>>> = Arc::default();
        {
            let current = current.clone();
            let weak = appsink.downgrade();
            factory.connect_media_configure(move |_, media| {
                let Some(appsrc) = media
                    .element()
                    .downcast::<gst::Bin>()
                    .ok()
                    .and_then(|bin| bin.by_name("src"))
                    .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                else {
                    return;
                };
                *current.lock().unwrap_or_else(|p| p.into_inner()) = Some(appsrc);
                if let Some(appsink) = weak.upgrade() {
                    let event = gst_video::UpstreamForceKeyUnitEvent::builder()
                        .all_headers(true)
                        .build();
                    appsink.send_event(event);
                }
            });
        }
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let Some(appsrc) = current.lock().unwrap_or_else(|p| p.into_inner()).clone()
                    else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let (Some(mut buffer), Some(caps)) =
                        (sample.buffer_owned(), sample.caps_owned())
                    else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    if appsrc.caps().as_ref() != Some(&caps) {
                        appsrc.set_caps(Some(&caps));
                    }
                    {
                        let b = buffer.make_mut();
                        b.set_pts(gst::ClockTime::NONE);
                        b.set_dts(gst::ClockTime::NONE);
                    }
                    // A media without clients is flushing: the frame is not wanted.
                    let _ = appsrc.push_buffer(buffer);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        server
            .mount_points()
            .context("RTSP mount points")?
            .add_factory(mount, factory);
        let context = glib::MainContext::new();
        server
            .attach(Some(&context))
            .map_err(|_| anyhow!("{url}: could not listen on {host}:{port}"))?;
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let thread = {
            let main_loop = main_loop.clone();
            std::thread::Builder::new()
                .name("gendr-rtsp".into())
                .spawn(move || main_loop.run())
                .context("starting the RTSP server thread")?
        };
        Ok(RtspServer {
            server,
            main_loop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Disconnects the clients and stops the server's thread.
    fn stop(&self) {
        let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        self.server
            .client_filter(Some(&mut |_, _| gst_rtsp_server::RTSPFilterResult::Remove));
        self.main_loop.quit();
        let _ = thread.join();
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The source side: rebuilt on every (re)connection.
fn build_source(
    source: &Source,
    output: &Output,
    counters: &Arc<Counters>,
    started: Instant,
) -> Result<gst::Pipeline> {
    let pipeline = gst::Pipeline::with_name("gendr-live-source");
    let convert = gst::ElementFactory::make("videoconvert").build()?;
    let appsink = gst_app::AppSink::builder()
        .caps(
            &gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .build(),
        )
        // A file plays at its own pace; a live stream is taken as it comes.
        .sync(source.is_file())
        .max_buffers(2)
        .drop(true)
        .build();
    pipeline.add_many([&convert, appsink.upcast_ref()])?;
    convert.link(&appsink)?;
    let decode = match source {
        Source::Uri(uri) | Source::File(uri) => gst::ElementFactory::make("uridecodebin")
            .property("uri", uri)
            .build()?,
        Source::Device(device) => {
            let src = gst::ElementFactory::make("v4l2src")
                .property("device", device)
                .build()?;
            let decode = gst::ElementFactory::make("decodebin").build()?;
            pipeline.add(&src)?;
            pipeline.add(&decode)?;
            src.link(&decode)?;
            decode
        }
    };
    if decode.parent().is_none() {
        pipeline.add(&decode)?;
    }
    let video_sink = convert.static_pad("sink").context("videoconvert sink")?;
    let weak = pipeline.downgrade();
    decode.connect_pad_added(move |_, pad| {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let is_video = caps
            .structure(0)
            .is_some_and(|s| s.name().starts_with("video/"));
        if is_video && !video_sink.is_linked() {
            let _ = pad.link(&video_sink);
        } else if let Some(pipeline) = weak.upgrade() {
            // Audio and extra streams go nowhere.
            if let Ok(sink) = gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .property("async", false)
                .build()
            {
                let _ = pipeline.add(&sink);
                let _ = sink.sync_state_with_parent();
                if let Some(sinkpad) = sink.static_pad("sink") {
                    let _ = pad.link(&sinkpad);
                }
            }
        }
    });
    let appsrc = output.appsrc.clone();
    let counters = counters.clone();
    let mut last_caps: Option<gst::Caps> = None;
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let (Some(buffer), Some(caps)) = (sample.buffer_owned(), sample.caps_owned())
                else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                if last_caps.as_ref() != Some(&caps) {
                    appsrc.set_caps(Some(&caps));
                    last_caps = Some(caps);
                }
                // The output timeline is the output pipeline's: stamped on arrival.
                let mut buffer = buffer;
                {
                    let b = buffer.make_mut();
                    b.set_pts(gst::ClockTime::NONE);
                    b.set_dts(gst::ClockTime::NONE);
                }
                counters.frames_in.fetch_add(1, Ordering::Relaxed);
                counters
                    .last_in_ms
                    .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                // Flushing or EOS downstream ends the run elsewhere; keep the source going.
                let _ = appsrc.push_buffer(buffer);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(pipeline)
}

/// Why the source needs rebuilding, if it does.
fn source_trouble(source: &gst::Pipeline) -> Option<String> {
    let bus = source.bus()?;
    while let Some(msg) = bus.pop() {
        match msg.view() {
            gst::MessageView::Eos(_) => return Some("end of stream".into()),
            gst::MessageView::Error(err) => return Some(media::error_text(err)),
            _ => {}
        }
    }
    None
}

fn drive(
    args: &Args,
    source: &Source,
    output: &Output,
    counters: &Arc<Counters>,
    stop: &AtomicBool,
    status: &mut StatusLine,
    started: Instant,
) -> Result<()> {
    let bus = output.pipeline.bus().context("output bus")?;
    let mut input: Option<gst::Pipeline> = None;
    let mut retry = Retry::default();
    let mut connected_at = Instant::now();
    let mut seen_frames = 0u64;
    let mut stats = Stats::new(counters);
    let stall = Duration::from_secs(args.stall_secs as u64);
    while !stop.load(Ordering::SeqCst) {
        // (Re)connect when due.
        if input.is_none() && Instant::now() >= retry.at {
            let pipeline = build_source(source, output, counters, started)?;
            match pipeline.set_state(gst::State::Playing) {
                Ok(_) => {
                    input = Some(pipeline);
                    connected_at = Instant::now();
                    seen_frames = counters.frames_in.load(Ordering::Relaxed);
                }
                Err(_) => {
                    let why = source_trouble(&pipeline).unwrap_or_else(|| "could not start".into());
                    let _ = pipeline.set_state(gst::State::Null);
                    let (delay, attempt) = retry.schedule();
                    status.say(&format!(
                        "gendr: source {}: {why}; retrying in {:.1} s (attempt {attempt})",
                        args.input,
                        delay.as_secs_f64()
                    ));
                }
            }
        }
        // The source: errors, end of stream, or silence.
        if let Some(pipeline) = &input {
            let frames = counters.frames_in.load(Ordering::Relaxed);
            if frames > seen_frames {
                seen_frames = frames;
                retry.attempt = 0;
            }
            let last_in = Duration::from_millis(counters.last_in_ms.load(Ordering::Relaxed));
            let silent = started
                .elapsed()
                .saturating_sub(last_in.max(connected_at - started));
            let trouble = source_trouble(pipeline).or_else(|| {
                (silent >= stall).then(|| format!("no frames for {} s", silent.as_secs()))
            });
            if let Some(why) = trouble {
                let _ = pipeline.set_state(gst::State::Null);
                input = None;
                if source.is_file() && why == "end of stream" {
                    status.say(&format!("gendr: {} ended", args.input));
                    break;
                }
                let (delay, attempt) = retry.schedule();
                status.say(&format!(
                    "gendr: source {} lost ({why}); reconnecting in {:.1} s (attempt {attempt})",
                    args.input,
                    delay.as_secs_f64()
                ));
            }
        }
        // The output: errors end the run; latency changes are redistributed.
        while let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) {
            match msg.view() {
                gst::MessageView::Error(err) => {
                    if let Some(pipeline) = input.take() {
                        let _ = pipeline.set_state(gst::State::Null);
                    }
                    bail!("{}", media::error_text(err));
                }
                gst::MessageView::Eos(_) => bail!("the output ended unexpectedly"),
                gst::MessageView::Latency(_) => {
                    let _ = output.pipeline.recalculate_latency();
                }
                _ => {}
            }
        }
        if let Some(line) = stats.tick(&output.sr) {
            status.show(&line);
        }
    }
    if let Some(pipeline) = input.take() {
        let _ = pipeline.set_state(gst::State::Null);
    }
    Ok(())
}

/// When to try the source again, and how many tries in a row failed.
struct Retry {
    attempt: u32,
    at: Instant,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempt: 0,
            at: Instant::now(),
        }
    }
}

impl Retry {
    /// Counts a failed try and sets the next one after the backoff; returns
    /// the wait and the attempt number, for the log.
    fn schedule(&mut self) -> (Duration, u32) {
        self.attempt += 1;
        let delay = backoff(self.attempt);
        self.at = Instant::now() + delay;
        (delay, self.attempt)
    }
}

/// 0.5 s, 1 s, 2 s … up to 10 s between reconnection attempts.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((500u64 << attempt.saturating_sub(1).min(5)).min(10_000))
}

/// The once-a-second stats: rates from counter deltas.
struct Stats<'a> {
    counters: &'a Counters,
    at: Instant,
    frames_in: u64,
    frames_out: u64,
}

impl<'a> Stats<'a> {
    fn new(counters: &'a Counters) -> Self {
        Stats {
            counters,
            at: Instant::now(),
            frames_in: 0,
            frames_out: 0,
        }
    }

    fn tick(&mut self, sr: &gst::Element) -> Option<String> {
        let secs = self.at.elapsed().as_secs_f64();
        if secs < 1.0 {
            return None;
        }
        let (frames_in, frames_out) = (
            self.counters.frames_in.load(Ordering::Relaxed),
            self.counters.frames_out.load(Ordering::Relaxed),
        );
        let fps_in = (frames_in - self.frames_in) as f64 / secs;
        let fps_out = (frames_out - self.frames_out) as f64 / secs;
        (self.frames_in, self.frames_out, self.at) = (frames_in, frames_out, Instant::now());
        let e2e = {
            let mut e2e = self.counters.e2e.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut e2e.window_max_ms)
        };
        Some(format!(
            "in {fps_in:5.1} fps  out {fps_out:5.1} fps  dropped {}  fallback {}  latency gendrsr {:.0} ms (max {:.0})  encoded {e2e:.0} ms",
            sr.property::<u64>("frames-dropped"),
            sr.property::<u64>("frames-fallback"),
            sr.property::<f64>("latency-mean-ms"),
            sr.property::<f64>("latency-max-ms"),
        ))
    }
}

/// One stats line on stderr, refreshed in place on a terminal; other
/// messages are printed above it.
struct StatusLine {
    tty: bool,
    quiet: bool,
    shown: bool,
    last_plain: Option<Instant>,
}

impl StatusLine {
    fn new(quiet: bool) -> Self {
        StatusLine {
            tty: std::io::stderr().is_terminal(),
            quiet,
            shown: false,
            last_plain: None,
        }
    }

    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
            self.shown = false;
        }
    }

    fn say(&mut self, text: &str) {
        self.clear();
        eprintln!("{text}");
    }

    fn show(&mut self, line: &str) {
        if self.quiet {
            return;
        }
        if self.tty {
            eprint!("\r\x1b[K{line}");
            self.shown = true;
        } else if self
            .last_plain
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(5))
        {
            // Logs get a line every few seconds rather than every second.
            eprintln!("{line}");
            self.last_plain = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse() {
        assert_eq!(
            Sink::parse("udp://127.0.0.1:5000").unwrap(),
            Sink::Udp {
                host: "127.0.0.1".into(),
                port: 5000
            }
        );
        assert!(Sink::parse("udp://127.0.0.1").is_err());
        assert!(Sink::parse("out.mp4").is_err());
        assert_eq!(
            Sink::parse("rtsp://0.0.0.0:8554/live/cam").unwrap(),
            Sink::Rtsp {
                host: "0.0.0.0".into(),
                port: 8554,
                mount: "/live/cam".into()
            }
        );
        assert_eq!(
            Sink::parse("rtsp://[::1]/live").unwrap(),
            Sink::Rtsp {
                host: "::1".into(),
                port: 8554,
                mount: "/live".into()
            }
        );
        assert!(Sink::parse("rtsp://0.0.0.0:8554").is_err());
        assert!(Sink::parse("rtsp://0.0.0.0:x/live").is_err());
        let dir = tempfile::tempdir().unwrap();
        let playlist = dir.path().join("a/live.m3u8");
        match Sink::parse(&playlist.display().to_string()).unwrap() {
            Sink::Hls {
                playlist: p,
                segments,
            } => {
                assert_eq!(p, playlist);
                assert_eq!(segments, dir.path().join("a/live%05d.ts"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(30), Duration::from_secs(10));
    }
}
