//! `gendr upscale`: decode → gendrsr → encode → mux, audio copied, written
//! to a temporary name and renamed only when the whole file is done.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use gst::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};

use crate::media::{self, MediaInfo};

/// x264/x265 constant quality and speed preset when none is given.
pub const DEFAULT_CRF: u32 = 18;
pub const DEFAULT_PRESET: &str = "medium";

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "\
Examples:
  gendr upscale in.mp4 out.mp4
  gendr upscale --model fast --crf 20 --preset fast in.mkv out.mkv
  gendr upscale --codec x265 --model default-x4 old.mp4 old-4x.mp4")]
pub struct Args {
    /// Input video file (any container and codec GStreamer can decode).
    pub input: PathBuf,
    /// Output file; .mp4, .mkv or .mov picks the container.
    pub output: PathBuf,
    #[command(flatten)]
    pub sr: SrOptions,
    /// Video encoder.
    #[arg(long, value_enum, default_value_t = Codec::X264)]
    pub codec: Codec,
    /// Constant quality: lower is better (x264/x265 CRF, 0–51).
    #[arg(long, default_value_t = DEFAULT_CRF, value_parser = clap::value_parser!(u32).range(0..=51))]
    pub crf: u32,
    /// Encoder speed preset (ultrafast … veryslow).
    #[arg(long, default_value = DEFAULT_PRESET)]
    pub preset: String,
    /// Chroma of the encoded video: yuv420p (4:2:0, what every player
    /// plays) or keep (what the conversion after the model gives, 4:4:4 for
    /// a 4:2:2 or 4:4:4 input).
    #[arg(long, value_name = "FORMAT", default_value = "yuv420p",
          value_parser = clap::builder::PossibleValuesParser::new(["yuv420p", "keep"]))]
    pub pix_fmt: String,
    /// Audio: copy every stream as it is (an error where the container
    /// cannot hold its codec), or aac: copy what fits and re-encode the rest
    /// as AAC at 256 kbit/s (said when it happens).
    #[arg(long, value_name = "MODE", default_value = "copy",
          value_parser = clap::builder::PossibleValuesParser::new(["copy", "aac"]))]
    pub audio: String,
    /// Replace OUTPUT if it exists.
    #[arg(long, short = 'y')]
    pub overwrite: bool,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Fail when no frame moves through any stage for this many seconds
    /// (raised to 5× the longest wait for a frame from the model so far); 0 = never.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_STALL_TIMEOUT_S)]
    pub stall_timeout: u64,
}

/// Seconds without progress before `gendr upscale` calls the job stalled:
/// generous, since a big model's first frame on a CPU can take minutes.
pub const DEFAULT_STALL_TIMEOUT_S: u64 = 300;

/// A clap parser accepting exactly `range` (one of [`gendr::limits`]), so a
/// value out of range is a usage error rather than a property panic.
fn in_range<T>(range: RangeInclusive<T>) -> clap::builder::RangedI64ValueParser<T>
where
    T: TryFrom<i64> + Into<i64> + Copy + Clone + Send + Sync + 'static,
    <T as TryFrom<i64>>::Error: std::error::Error + Send + Sync + 'static,
{
    clap::builder::RangedI64ValueParser::<T>::new()
        .range((*range.start()).into()..=(*range.end()).into())
}

/// The gendrsr settings every subcommand shares.
#[derive(clap::Args, Debug, Clone)]
pub struct SrOptions {
    /// Model preset (see `gendr models`) or path to an .onnx file.
    #[arg(long, short = 'm', default_value = gendr::presets::DEFAULT_PRESET)]
    pub model: String,
    /// Tile edge in input pixels (0 = the model's preference).
    #[arg(long, default_value_t = 0, value_parser = in_range(gendr::limits::TILE_SIZE))]
    pub tile: u32,
    /// Context around each tile in input pixels (raised to the model's minimum).
    #[arg(long, default_value_t = 8, value_parser = in_range(gendr::limits::TILE_OVERLAP))]
    pub overlap: u32,
    /// Execution provider: auto, cpu, cuda or tensorrt.
    #[arg(long, default_value = "auto")]
    pub provider: String,
    /// GPU index for the cuda and tensorrt providers.
    #[arg(long, default_value_t = 0, value_parser = in_range(gendr::limits::DEVICE_ID))]
    pub device_id: i32,
    /// Inference workers, each with its own session (0 = 1 on the CPU, 2 on a GPU).
    #[arg(long, default_value_t = 0, value_parser = in_range(gendr::limits::STREAMS))]
    pub streams: u32,
    /// Intra-op threads per worker (0 = all cores).
    #[arg(long, default_value_t = 0, value_parser = in_range(gendr::limits::THREADS))]
    pub threads: u32,
    /// Tiles per inference run for models with a batch dimension
    /// (0 = a frame's tiles together on a GPU, one at a time on the CPU).
    #[arg(long, default_value_t = 0, value_parser = in_range(gendr::limits::BATCH_SIZE))]
    pub batch: u32,
    /// Frames inside gendrsr at once.
    #[arg(long, default_value_t = 4, value_parser = in_range(gendr::limits::MAX_FRAMES_IN_FLIGHT))]
    pub max_frames_in_flight: u32,
    /// Folder for TensorRT engines (default ~/.cache/gendr/tensorrt).
    #[arg(long, value_name = "DIR")]
    pub trt_cache: Option<PathBuf>,
}

impl SrOptions {
    /// Checks what can be checked before a pipeline exists.
    pub fn validate(&self) -> Result<()> {
        gendr::presets::resolve(&self.model)?;
        self.provider.parse::<gendr::engine::Provider>()?;
        Ok(())
    }

    /// The core configuration these options ask for: what gendrsr builds
    /// when given them as properties, and what bench and eval build directly.
    pub fn upscaler_config(&self) -> Result<gendr::upscaler::UpscalerConfig> {
        let defaults = gendr::upscaler::UpscalerConfig::default();
        Ok(gendr::upscaler::UpscalerConfig {
            model: self.model.clone(),
            tile_size: self.tile as usize,
            tile_overlap: self.overlap as usize,
            engine: gendr::engine::EngineOptions {
                provider: self.provider.parse()?,
                device_id: self.device_id,
                threads: self.threads as usize,
                trt_cache: self.trt_cache.clone().or(defaults.engine.trt_cache),
            },
            streams: self.streams as usize,
            batch_size: self.batch as usize,
        })
    }

    pub fn element(&self) -> Result<gst::Element> {
        let provider = self.provider.to_ascii_lowercase();
        let provider = if provider == "trt" {
            "tensorrt".to_string()
        } else {
            provider
        };
        Ok(gst::ElementFactory::make("gendrsr")
            .property("model", &self.model)
            .property("tile-size", self.tile)
            .property("tile-overlap", self.overlap)
            .property_from_str("provider", &provider)
            .property("device-id", self.device_id)
            .property("streams", self.streams)
            .property("threads", self.threads)
            .property("batch-size", self.batch)
            .property("max-frames-in-flight", self.max_frames_in_flight)
            .property(
                "trt-cache-dir",
                self.trt_cache.as_ref().map(|d| d.display().to_string()),
            )
            .build()?)
    }
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    X264,
    X265,
}

impl Codec {
    fn encoder(self, crf: u32, preset: &str) -> Result<(gst::Element, gst::Element)> {
        let preset_names = [
            "ultrafast",
            "superfast",
            "veryfast",
            "faster",
            "fast",
            "medium",
            "slow",
            "slower",
            "veryslow",
        ];
        if !preset_names.contains(&preset) {
            bail!(
                "unknown --preset {preset:?}; use one of {}",
                preset_names.join(", ")
            );
        }
        let (encoder, parser) = match self {
            Codec::X264 => (
                gst::ElementFactory::make("x264enc")
                    .property_from_str("pass", "qual")
                    .property("quantizer", crf)
                    .property_from_str("speed-preset", preset)
                    .build()?,
                gst::ElementFactory::make("h264parse").build()?,
            ),
            Codec::X265 => (
                gst::ElementFactory::make("x265enc")
                    .property("option-string", format!("crf={crf}"))
                    .property_from_str("speed-preset", preset)
                    .build()?,
                gst::ElementFactory::make("h265parse").build()?,
            ),
        };
        Ok((encoder, parser))
    }
}

pub fn muxer_for(path: &Path) -> Result<gst::Element> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let factory = match ext.as_str() {
        "mp4" | "m4v" => "mp4mux",
        "mkv" => "matroskamux",
        "mov" => "qtmux",
        _ => bail!(
            "{}: unknown output container {ext:?}; use .mp4, .mkv or .mov",
            path.display()
        ),
    };
    Ok(gst::ElementFactory::make(factory).build()?)
}

/// The largest frame edge gendrsr negotiates, read from its src template so
/// the element stays the one source of that limit.
fn element_max_edge() -> Option<u32> {
    let factory = gst::ElementFactory::find("gendrsr")?;
    let template = factory
        .static_pad_templates()
        .into_iter()
        .find(|t| t.direction() == gst::PadDirection::Src)?;
    let caps = template.caps();
    let width = caps.structure(0)?.get::<gst::IntRange<i32>>("width").ok()?;
    u32::try_from(width.max()).ok()
}

/// Refuses frames gendrsr cannot negotiate before any work starts: the
/// input size always, the output size when the preset tells the scale.
fn check_frame_size(info: &MediaInfo, input: &Path, model: &str) -> Result<()> {
    let Some(max) = element_max_edge() else {
        return Ok(());
    };
    let (w, h) = (info.width, info.height);
    if w > max || h > max {
        bail!(
            "{}: {w}x{h} frames are larger than gendr takes (at most {max} pixels per edge)",
            input.display()
        );
    }
    if let Some(preset) = gendr::presets::find(model) {
        let scale = preset.scale as u64;
        let (out_w, out_h) = (u64::from(w) * scale, u64::from(h) * scale);
        if out_w > u64::from(max) || out_h > u64::from(max) {
            bail!(
                "{}: ×{scale} makes {out_w}x{out_h} frames, over the {max}-pixel edge limit of the output; \
                 use a model with a smaller scale or scale the input down first",
                input.display()
            );
        }
    }
    Ok(())
}

/// Refuses outputs that can be known to fail before any work is done.
fn check_output(args: &Args) -> Result<()> {
    if args.output.is_dir() {
        bail!(
            "{} is a directory; name the output file, e.g. {}",
            args.output.display(),
            args.output.join("out.mp4").display()
        );
    }
    if args.output.exists() && !args.overwrite {
        bail!(
            "{} exists; pass --overwrite to replace it",
            args.output.display()
        );
    }
    if std::fs::canonicalize(&args.input).ok() == std::fs::canonicalize(&args.output).ok() {
        bail!("input and output are the same file");
    }
    Ok(())
}

pub fn run(args: Args) -> Result<()> {
    let info = media::discover(&args.input)?;
    args.sr.validate()?;
    check_output(&args)?;
    let muxer = muxer_for(&args.output)?;
    check_frame_size(&info, &args.input, &args.sr.model)?;
    if let Some((complete, expected)) = media::y4m_incomplete(&args.input)? {
        bail!(
            "{}: truncated: frame {expected} is cut short ({complete} complete frames)",
            args.input.display()
        );
    }
    // Claimed before the checks below so that they see what a run that
    // finished meanwhile left, and so that no two runs share a file.
    let claim = media::OutputClaim::acquire(&args.output)?;
    check_output(&args)?;
    let name = args
        .output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let folder = match args.output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Unique and hidden, recognisably gendr's; removed on every early return.
    let partial = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".gendr-partial")
        .tempfile_in(&folder)
        .with_context(|| format!("{}: cannot write here", args.output.display()))?;

    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // A second handler cannot be installed; only the first call in a process matters.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    }
    let log = Arc::new(media::ErrorLog::watch());
    let job = Job::build(&args, &info, muxer, partial.path(), log.clone())?;
    if !args.quiet {
        let fps = info.framerate;
        eprintln!(
            "gendr: {} {}x{} at {}/{} fps, {} audio stream(s) copied, model {}, video encoded {}",
            args.input.display(),
            info.width,
            info.height,
            fps.numer(),
            fps.denom(),
            info.audio_streams,
            args.sr.model,
            match args.pix_fmt.as_str() {
                "keep" => "in the format the model's output converts to (--pix-fmt keep)",
                _ => "4:2:0 8-bit (--pix-fmt keep for the input's chroma)",
            }
        );
        if let Some(orientation) = &info.orientation {
            eprintln!(
                "gendr: frames turned upright from the source's display orientation {orientation} \
                 (the output container cannot store one)"
            );
        }
    }
    let started = Instant::now();
    let frames = job.run(&info, &args, &interrupted)?;
    let damaged = log.decoder_errors();
    let undecodable = job.undecodable();
    let persisted = if args.overwrite {
        partial.persist(&args.output)
    } else {
        partial.persist_noclobber(&args.output)
    };
    persisted
        .map_err(|e| e.error)
        .with_context(|| format!("moving the finished file to {}", args.output.display()))?;
    drop(claim);
    let secs = started.elapsed().as_secs_f64();
    // Packets and frames differ for some codecs (fields, packed B-frames):
    // the difference is told only when the decoder also saw damage.
    if damaged > 0 {
        eprintln!(
            "gendr: warning: {}: the decoder reported {damaged} error(s); damaged frames were concealed \
             and may show artefacts, {undecodable} could not be decoded at all",
            args.input.display()
        );
    }
    eprintln!(
        "gendr: wrote {} ({frames} frames in {secs:.1} s, {:.2} fps)",
        args.output.display(),
        frames as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// Frames past each stage, and where the input's timeline ended: what the
/// watchdog and the truncation check read.
#[derive(Default)]
struct Progress {
    /// Video packets handed to the decoder.
    packets: AtomicU64,
    decoded: AtomicU64,
    encoded: AtomicU64,
    /// Buffers written by the muxer (audio included).
    muxed: AtomicU64,
    /// Earliest start and latest end over decoded video and copied audio, ns.
    first_start: AtomicU64,
    last_end: AtomicU64,
    /// The decoded frame size, for explaining a refused negotiation.
    decoded_size: Mutex<Option<(i32, i32)>>,
}

impl Progress {
    fn new() -> Self {
        Progress {
            first_start: AtomicU64::new(u64::MAX),
            ..Default::default()
        }
    }

    fn saw_buffer(&self, buffer: &gst::BufferRef) {
        if let Some(pts) = buffer.pts() {
            let end = pts + buffer.duration().unwrap_or(gst::ClockTime::ZERO);
            self.first_start
                .fetch_min(pts.nseconds(), Ordering::Relaxed);
            self.last_end.fetch_max(end.nseconds(), Ordering::Relaxed);
        }
    }

    /// Seconds of input timeline seen, once anything was seen.
    fn span(&self) -> Option<gst::ClockTime> {
        let (start, end) = (
            self.first_start.load(Ordering::Relaxed),
            self.last_end.load(Ordering::Relaxed),
        );
        (start <= end).then(|| gst::ClockTime::from_nseconds(end - start))
    }
}

/// Counts buffers through `pad` and notes their times.
fn watch_buffers(pad: &gst::Pad, progress: &Arc<Progress>, count: fn(&Progress) -> &AtomicU64) {
    let progress = progress.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        count(&progress).fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
}

/// The encoded frames' span, for [`cover_reordered_frames`].
#[derive(Default)]
struct EncodedSpan {
    first_dts: Option<gst::ClockTime>,
    first_pts: Option<gst::ClockTime>,
    presented_until: Option<gst::ClockTime>,
}

/// How long a frame without a duration of its own (a still image) is shown:
/// without one, mp4 gets a track of length zero that players skip.
const UNTIMED_FRAME_DURATION: gst::ClockTime = gst::ClockTime::from_mseconds(40);

/// mp4mux makes a track as long as its decode times plus the last sample's
/// duration, and its edit list shows that long a stretch from the first
/// frame. With B-frames and a variable frame rate the frames shown last can
/// lie beyond it, and players cut them. Giving each encoded frame the
/// duration that would make it, as the last, cover every frame presented so
/// far keeps them all; only the last frame's duration is used by the muxers.
fn cover_reordered_frames(buffer: &mut gst::BufferRef, span: &mut EncodedSpan) {
    let (Some(pts), Some(dts)) = (buffer.pts(), buffer.dts()) else {
        return;
    };
    // x264enc stamps 1 ns on frames that came without a duration.
    let duration = buffer
        .duration()
        .filter(|d| *d >= gst::ClockTime::MSECOND)
        .unwrap_or(UNTIMED_FRAME_DURATION);
    let end = pts + duration;
    let first_dts = *span.first_dts.get_or_insert(dts);
    let first_pts = span.first_pts.map_or(pts, |p| p.min(pts));
    let until = span.presented_until.map_or(end, |u| u.max(end));
    (span.first_pts, span.presented_until) = (Some(first_pts), Some(until));
    // Decode span plus this duration = presentation span.
    let needed = (until + first_dts).checked_sub(dts + first_pts);
    if let Some(duration) = needed.filter(|d| !d.is_zero()) {
        buffer.set_duration(duration);
    }
}

/// Notes the decoded frame size from a caps event; a different size than
/// before is an error: encoders and muxers take one size per stream (mp4mux
/// would write a file that decodes wrongly, matroskamux fails obscurely).
fn size_change(event: &gst::Event, progress: &Progress) -> Option<String> {
    let gst::EventView::Caps(caps) = event.view() else {
        return None;
    };
    let s = caps.caps().structure(0)?;
    let size = (s.get::<i32>("width").ok()?, s.get::<i32>("height").ok()?);
    let mut known = progress
        .decoded_size
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    match *known {
        Some(first) if first != size => Some(format!(
            "the video changes frame size after {} frames ({}x{} to {}x{}); an output holds one size: \
             split the input where it changes",
            progress.decoded.load(Ordering::Relaxed),
            first.0,
            first.1,
            size.0,
            size.1
        )),
        _ => {
            *known = Some(size);
            None
        }
    }
}

/// Turns a failure found in a streaming thread into a bus error, keeping
/// its text as the one the user sees.
fn report(element: &gst::Element, errors: &Mutex<Option<String>>, text: String) {
    tracing::debug!("{text}");
    errors
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert(text.clone());
    element.post_error_message(gst::error_msg!(gst::CoreError::Negotiation, ["{}", text]));
}

struct Job {
    pipeline: gst::Pipeline,
    log: Arc<media::ErrorLog>,
    sr: gst::Element,
    frames: Arc<AtomicU64>,
    progress: Arc<Progress>,
    /// A link or configuration error found in a streaming thread.
    link_error: Arc<Mutex<Option<String>>>,
}

impl Job {
    fn build(
        args: &Args,
        info: &media::MediaInfo,
        muxer: gst::Element,
        partial: &Path,
        log: Arc<media::ErrorLog>,
    ) -> Result<Job> {
        let pipeline = gst::Pipeline::new();
        let src = gst::ElementFactory::make("filesrc")
            .property("location", &args.input)
            .build()?;
        let parse = gst::ElementFactory::make("parsebin").build()?;
        let sink = gst::ElementFactory::make("filesink")
            .property("location", partial)
            .build()?;
        pipeline.add_many([&src, &parse, &muxer, &sink])?;
        gst::Element::link_many([&src, &parse])?;
        gst::Element::link_many([&muxer, &sink])?;

        // The video branch is built up front so that errors show before anything runs.
        let decode = gst::ElementFactory::make("decodebin").build()?;
        let queue_in = gst::ElementFactory::make("queue").build()?;
        let convert_in = gst::ElementFactory::make("videoconvert").build()?;
        let sr = args.sr.element()?;
        let convert_out = gst::ElementFactory::make("videoconvert").build()?;
        let queue_out = gst::ElementFactory::make("queue").build()?;
        let (encoder, parser) = args.codec.encoder(args.crf, &args.preset)?;
        // GStreamer 1.22's muxers cannot store a display rotation: frames are
        // turned upright instead, so they still show as the source did.
        let upright = match info.orientation {
            Some(_) => Some(
                gst::ElementFactory::make("videoflip")
                    .property_from_str("video-direction", "auto")
                    .build()?,
            ),
            None => None,
        };
        // 4:2:2 and 4:4:4 input would otherwise reach the encoder as 4:4:4
        // (High 4:4:4, which most players cannot play).
        let chroma = match args.pix_fmt.as_str() {
            "keep" => None,
            _ => Some(
                gst::ElementFactory::make("capsfilter")
                    .property(
                        "caps",
                        gst::Caps::builder("video/x-raw")
                            .field("format", "I420")
                            .build(),
                    )
                    .build()?,
            ),
        };
        let mut video_chain = vec![&queue_in, &convert_in];
        video_chain.extend(upright.as_ref());
        video_chain.extend([&sr, &convert_out]);
        video_chain.extend(chroma.as_ref());
        video_chain.extend([&encoder, &parser, &queue_out]);
        pipeline.add(&decode)?;
        pipeline.add_many(&video_chain)?;
        gst::Element::link_many(&video_chain)?;
        let mux_video = muxer
            .request_pad_simple("video_%u")
            .context("the muxer takes no video")?;
        queue_out
            .static_pad("src")
            .context("queue src")?
            .link(&mux_video)?;

        let progress = Arc::new(Progress::new());
        let chain_sink = queue_in.static_pad("sink").context("queue sink")?;
        let link_error = Arc::new(Mutex::new(None));
        {
            let (progress, errors) = (progress.clone(), link_error.clone());
            chain_sink.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
                move |pad, info| {
                    match &info.data {
                        Some(gst::PadProbeData::Buffer(buffer)) => {
                            progress.decoded.fetch_add(1, Ordering::Relaxed);
                            progress.saw_buffer(buffer);
                        }
                        Some(gst::PadProbeData::Event(event)) => {
                            if let Some(text) = size_change(event, &progress) {
                                if let Some(element) = pad.parent_element() {
                                    report(&element, &errors, text);
                                }
                            }
                        }
                        _ => {}
                    }
                    gst::PadProbeReturn::Ok
                },
            );
        }
        {
            let progress = progress.clone();
            let span = Mutex::new(EncodedSpan::default());
            queue_out
                .static_pad("sink")
                .context("queue sink")?
                .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                    progress.encoded.fetch_add(1, Ordering::Relaxed);
                    if let Some(buffer) = info.buffer_mut() {
                        let mut span = span.lock().unwrap_or_else(|p| p.into_inner());
                        cover_reordered_frames(buffer.make_mut(), &mut span);
                    }
                    gst::PadProbeReturn::Ok
                });
        }
        watch_buffers(
            &sink.static_pad("sink").context("filesink sink")?,
            &progress,
            |p| &p.muxed,
        );

        {
            let (errors, progress) = (link_error.clone(), progress.clone());
            decode.connect_pad_added(move |decode, pad| {
                let Some(video) = pad.current_caps().and_then(|c| {
                    c.structure(0)
                        .filter(|s| s.name().starts_with("video/"))
                        .map(|s| s.to_owned())
                }) else {
                    return;
                };
                if chain_sink.is_linked() {
                    return;
                }
                if let (Ok(w), Ok(h)) = (video.get::<i32>("width"), video.get::<i32>("height")) {
                    *progress
                        .decoded_size
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some((w, h));
                }
                if let Err(e) = pad.link(&chain_sink) {
                    let caps = pad
                        .current_caps()
                        .map(|c| c.to_string())
                        .unwrap_or_default();
                    report(
                        decode,
                        &errors,
                        format!(
                            "the decoded video ({caps}) cannot be passed on to gendrsr ({e:?})"
                        ),
                    );
                }
            });
        }

        let frames = media::count_output(&sr)?;
        let video_taken = Arc::new(AtomicBool::new(false));
        let weak_pipeline = pipeline.downgrade();
        let (decode_weak, muxer_weak, errors) =
            (decode.downgrade(), muxer.downgrade(), link_error.clone());
        let stream_progress = progress.clone();
        let transcode = args.audio == "aac";
        parse.connect_pad_added(move |parse, pad| {
            let (Some(pipeline), Some(decode), Some(muxer)) = (
                weak_pipeline.upgrade(),
                decode_weak.upgrade(),
                muxer_weak.upgrade(),
            ) else {
                return;
            };
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let name = caps
                .structure(0)
                .map(|s| s.name().to_string())
                .unwrap_or_default();
            let result = if !name.starts_with("audio/")
                && media::decodes_to_video(&caps)
                && !video_taken.swap(true, Ordering::SeqCst)
            {
                watch_buffers(pad, &stream_progress, |p| &p.packets);
                decode
                    .static_pad("sink")
                    .ok_or_else(|| anyhow!("decodebin sink"))
                    .and_then(|s| {
                        pad.link(&s)
                            .map(|_| ())
                            .map_err(|e| anyhow!("the {name} video cannot be decoded ({e:?})"))
                    })
            } else if name.starts_with("audio/") {
                copy_audio(&pipeline, &muxer, pad, &caps, &stream_progress, transcode)
            } else {
                discard(&pipeline, pad)
            };
            if let Err(e) = result {
                report(parse, &errors, format!("{e:#}"));
            }
        });
        Ok(Job {
            pipeline,
            log,
            sr,
            frames,
            progress,
            link_error,
        })
    }

    /// Runs to the end; returns the number of frames written.
    fn run(&self, info: &MediaInfo, args: &Args, interrupted: &AtomicBool) -> Result<u64> {
        let bar = if args.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(info.frame_count().unwrap_or(0))
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} frames  {per_sec}  ETA {eta}",
            )
            .expect("static template"),
        );
        let stall_limit = (args.stall_timeout > 0).then(|| Duration::from_secs(args.stall_timeout));
        let result = self.drive(&bar, interrupted, stall_limit);
        bar.finish_and_clear();
        let _ = self.pipeline.set_state(gst::State::Null);
        result?;
        // Demuxers end quietly at the end of a truncated file; the timeline
        // tells, whatever the frame rate (variable included).
        if let (Some(duration), Some(span)) = (info.duration, self.progress.span()) {
            if span + TRUNCATION_TOLERANCE < duration {
                bail!(
                    "the input ended early: its streams stop at {:.2} s of {:.2} s (truncated or corrupt file?)",
                    span.seconds_f64(),
                    duration.seconds_f64()
                );
            }
        }
        Ok(self.frames.load(Ordering::Relaxed))
    }

    fn drive(
        &self,
        bar: &ProgressBar,
        interrupted: &AtomicBool,
        stall_limit: Option<Duration>,
    ) -> Result<()> {
        let bus = self.pipeline.bus().context("pipeline bus")?;
        if self.pipeline.set_state(gst::State::Playing).is_err() {
            return Err(self
                .first_error(&bus)
                .unwrap_or_else(|| anyhow!("the pipeline could not start")));
        }
        let mut watchdog = Watchdog::new(stall_limit);
        loop {
            if interrupted.load(Ordering::SeqCst) {
                bail!("interrupted; no output written");
            }
            let upscaled = self.frames.load(Ordering::Relaxed);
            bar.set_position(upscaled);
            watchdog.check(&self.progress, upscaled)?;
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
                continue;
            };
            match msg.view() {
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Error(err) => return Err(self.explain(err)),
                gst::MessageView::Warning(warning) => {
                    bar.suspend(|| {
                        eprintln!("gendr: warning: {}", media::warning_text(warning));
                    });
                }
                _ => {}
            }
        }
        if self.frames.load(Ordering::Relaxed) == 0 {
            bail!("no video frames were decoded (corrupt or truncated input?)");
        }
        Ok(())
    }

    /// The user's reason for a pipeline error: a recorded link failure, a
    /// frame size the model refuses, or the element's own message.
    fn explain(&self, err: &gst::message::Error) -> anyhow::Error {
        if let Some(cause) = self
            .link_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return anyhow!("{cause}");
        }
        let negotiated = self
            .sr
            .static_pad("src")
            .is_some_and(|pad| pad.current_caps().is_some());
        if let (false, Some(refusal)) = (negotiated, self.log.last_element_error()) {
            let decoded = *self
                .progress
                .decoded_size
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            return match decoded {
                Some((w, h)) => anyhow!("gendrsr refused the decoded {w}x{h} frames: {refusal}"),
                None => anyhow!("gendrsr: {refusal}"),
            };
        }
        anyhow!("{}", media::error_text(err))
    }

    /// Packets the decoder turned into no frame (exact for codecs with a
    /// frame per packet, the usual case).
    fn undecodable(&self) -> u64 {
        let packets = self.progress.packets.load(Ordering::Relaxed);
        packets.saturating_sub(self.progress.decoded.load(Ordering::Relaxed))
    }

    fn first_error(&self, bus: &gst::Bus) -> Option<anyhow::Error> {
        media::first_error(bus, |err| self.explain(err))
    }
}

/// How far short of the container's duration the streams may end: a last
/// frame or audio packet without a duration of its own.
const TRUNCATION_TOLERANCE: gst::ClockTime = gst::ClockTime::from_mseconds(500);

/// Turns a pipeline that stopped moving into an error naming the stage.
/// A slow model is not a stall: the limit grows to several times the
/// longest wait seen between two frames out of the model.
struct Watchdog {
    limit: Option<Duration>,
    last: (u64, u64, u64, u64),
    last_change: Instant,
    last_upscaled: Option<Instant>,
    longest_model_wait: Duration,
}

impl Watchdog {
    /// Times the longest wait between model outputs is allowed before a stall.
    const MODEL_WAIT_FACTOR: u32 = 5;

    fn new(limit: Option<Duration>) -> Self {
        Watchdog {
            limit,
            last: (0, 0, 0, 0),
            last_change: Instant::now(),
            last_upscaled: None,
            longest_model_wait: Duration::ZERO,
        }
    }

    fn check(&mut self, progress: &Progress, upscaled: u64) -> Result<()> {
        let Some(base) = self.limit else {
            return Ok(());
        };
        let now = (
            progress.decoded.load(Ordering::Relaxed),
            upscaled,
            progress.encoded.load(Ordering::Relaxed),
            progress.muxed.load(Ordering::Relaxed),
        );
        if now != self.last {
            if now.1 != self.last.1 {
                if let Some(previous) = self.last_upscaled {
                    self.longest_model_wait = self.longest_model_wait.max(previous.elapsed());
                }
                self.last_upscaled = Some(Instant::now());
            }
            self.last = now;
            self.last_change = Instant::now();
            return Ok(());
        }
        let limit = base.max(self.longest_model_wait * Self::MODEL_WAIT_FACTOR);
        if self.last_change.elapsed() < limit {
            return Ok(());
        }
        let secs = limit.as_secs();
        let (decoded, upscaled, ..) = now;
        let stage = if decoded == 0 {
            format!("no frame was decoded in {secs} s")
        } else if decoded > upscaled {
            format!(
                "gendrsr (the model) made no progress for {secs} s with {} frame(s) waiting",
                decoded - upscaled
            )
        } else {
            format!("decoding made no progress for {secs} s after {decoded} frames")
        };
        bail!("stalled: {stage}; pass --stall-timeout SECS to wait longer (0 = never)")
    }
}

/// Sends a parsed audio stream into the muxer: as it is, or, where the
/// container cannot hold its codec and `transcode` allows, re-encoded as AAC.
fn copy_audio(
    pipeline: &gst::Pipeline,
    muxer: &gst::Element,
    pad: &gst::Pad,
    caps: &gst::Caps,
    progress: &Arc<Progress>,
    transcode: bool,
) -> Result<()> {
    let template = muxer
        .pad_template("audio_%u")
        .context("the output container takes no audio")?;
    let codec = caps
        .structure(0)
        .map(|s| s.name().to_string())
        .unwrap_or_default();
    // Elements between the parsed pad and the queue: none for a copy.
    let mut chain = Vec::new();
    if !template.caps().can_intersect(caps) {
        if !transcode {
            bail!(
                "the {codec} audio cannot be copied into this container; use .mkv, or --audio aac \
                 to re-encode it"
            );
        }
        eprintln!(
            "gendr: {codec} audio re-encoded as AAC 256 kbit/s (this container cannot hold it)"
        );
        chain = vec![
            gst::ElementFactory::make("decodebin").build()?,
            gst::ElementFactory::make("audioconvert").build()?,
            gst::ElementFactory::make("audioresample").build()?,
            gst::ElementFactory::make("avenc_aac")
                .property("bitrate", 256_000i32)
                .build()?,
        ];
    }
    // The demuxer feeds audio and video from one thread while the encoder
    // holds back frames for look-ahead: a bounded audio queue would fill and
    // stall the video behind it. Interleaving in the file bounds it instead.
    let queue = gst::ElementFactory::make("queue")
        .property("max-size-buffers", 0u32)
        .property("max-size-bytes", 0u32)
        .property("max-size-time", 0u64)
        .build()?;
    let queue_sink = queue.static_pad("sink").context("queue sink")?;
    let progress = progress.clone();
    queue_sink.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
            progress.saw_buffer(buffer);
        }
        gst::PadProbeReturn::Ok
    });
    pipeline.add(&queue)?;
    queue.sync_state_with_parent()?;
    match chain.split_first() {
        None => {
            pad.link(&queue_sink)?;
        }
        Some((decode, rest)) => {
            pipeline.add_many(&chain)?;
            let mut tail = rest.to_vec();
            tail.push(queue.clone());
            gst::Element::link_many(&tail)?;
            let convert = rest[0].downgrade();
            decode.connect_pad_added(move |decode, src| {
                let Some(sink) = convert.upgrade().and_then(|c| c.static_pad("sink")) else {
                    return;
                };
                if let Err(e) = src.link(&sink) {
                    gst::element_error!(
                        decode,
                        gst::CoreError::Negotiation,
                        ("the decoded audio cannot be re-encoded ({e:?})")
                    );
                }
            });
            for element in &chain {
                element.sync_state_with_parent()?;
            }
            pad.link(&decode.static_pad("sink").context("decodebin sink")?)?;
        }
    }
    let mux_pad = muxer
        .request_pad_simple("audio_%u")
        .context("the muxer refused an audio stream")?;
    queue
        .static_pad("src")
        .context("queue src")?
        .link(&mux_pad)?;
    Ok(())
}

/// Streams that are not copied (subtitles, data, extra video) go nowhere.
fn discard(pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<()> {
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()?;
    pipeline.add(&sink)?;
    sink.sync_state_with_parent()?;
    pad.link(&sink.static_pad("sink").context("fakesink sink")?)?;
    Ok(())
}
