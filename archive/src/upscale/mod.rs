//! `gendr upscale`: decode → gendrsr → encode → mux, audio copied, written
//! to a temporary name and renamed only when the whole file is done.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::media::{self, MediaInfo};
use crate::Observer;

mod encode;
mod job;
mod streams;
mod video;

pub use encode::{muxer_for, Codec, Encoding, PRESETS};
pub(crate) use job::{Job, Video, Window};
pub use video::Deinterlace;

/// x264/x265 constant quality and speed preset when none is given.
pub const DEFAULT_CRF: u32 = 18;
pub const DEFAULT_PRESET: &str = "medium";

/// One `gendr upscale` request, as the command line gives it.
#[derive(Debug, Clone)]
pub struct Args {
    /// Input video file (any container and codec GStreamer can decode), or a
    /// folder: every video in its tree is upscaled.
    pub input: PathBuf,
    /// Output file; .mp4, .mkv or .mov picks the container. For a folder
    /// input, the folder that mirrors its tree.
    pub output: PathBuf,
    /// Folder inputs: the outputs' container. Default: the input's own when
    /// it is mp4, mkv or mov, otherwise mkv (which holds any codec).
    pub container: Option<String>,
    pub options: UpscaleOptions,
    /// Replace OUTPUT if it exists.
    pub overwrite: bool,
    /// No progress bar.
    pub quiet: bool,
    /// Fail when no frame moves through any stage for this many seconds
    /// (raised to 5× the longest wait for a frame from the model so far); 0 = never.
    pub stall_timeout: u64,
    /// Work in segments kept in the hidden folder .OUTPUT.gendr-job next to
    /// OUTPUT, so that running the same command again after an interruption
    /// continues where it stopped (see docs/archival.md); removed on success.
    pub resume: bool,
    /// With --resume: segment length aimed at, in seconds of video (default 60).
    pub segment_seconds: Option<f64>,
}

/// Everything that decides what `gendr upscale` writes: a segmented job
/// records these and refuses segments made with others.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UpscaleOptions {
    pub sr: SrOptions,
    /// Video encoder [default: x264, or x265 (Main 10) for input deeper than 8 bits].
    pub codec: Option<Codec>,
    /// Constant quality: lower is better (x264/x265 CRF, 0–50).
    pub crf: u32,
    /// Encoder speed preset (ultrafast … veryslow).
    pub preset: String,
    /// Samples of the encoded video: auto (4:2:0 at the input's bit depth,
    /// 8 or 10), yuv420p (4:2:0 8-bit), yuv420p10 (4:2:0 10-bit) or keep
    /// (what the conversion after the model gives, 4:4:4 for a 4:2:2 or
    /// 4:4:4 input).
    pub pix_fmt: String,
    /// Audio: copy every stream as it is (an error where the container
    /// cannot hold its codec), or aac: copy what fits and re-encode the rest
    /// as AAC at 256 kbit/s (said when it happens).
    pub audio: String,
    /// What is done with interlaced input (before the model).
    pub deinterlace: Deinterlace,
    /// Output size as a multiple of the input's (e.g. 1.5): the model's
    /// scale, then resampled; pixels keep their aspect.
    pub scale: Option<f64>,
    /// Output width in pixels (even); the height follows the picture's shape.
    pub width: Option<u32>,
    /// Output height in pixels (even); the width follows the picture's shape.
    pub height: Option<u32>,
    /// Subtitles: keep every stream (converted where the container needs it,
    /// an error where it cannot hold one), or drop them all.
    pub subtitles: String,
    /// Chapters: keep them (an error where the container cannot hold them),
    /// or drop them.
    pub chapters: String,
}

/// The values of `--pix-fmt`, `--audio`, `--subtitles` and `--chapters`.
pub const PIX_FMTS: [&str; 4] = ["auto", "yuv420p", "yuv420p10", "keep"];
pub const AUDIO_MODES: [&str; 2] = ["copy", "aac"];
pub const KEEP_OR_DROP: [&str; 2] = ["keep", "drop"];

impl UpscaleOptions {
    /// Checks every value as the command line's parsers do: options read
    /// from a job folder are input too, and an out-of-range one would
    /// otherwise reach an element property (a panic).
    pub fn check_values(&self) -> Result<()> {
        use gendr::limits;
        let sr = &self.sr;
        within("--tile", sr.tile, limits::TILE_SIZE)?;
        within("--overlap", sr.overlap, limits::TILE_OVERLAP)?;
        within("--device-id", sr.device_id, limits::DEVICE_ID)?;
        within("--streams", sr.streams, limits::STREAMS)?;
        within("--threads", sr.threads, limits::THREADS)?;
        within("--batch", sr.batch, limits::BATCH_SIZE)?;
        within(
            "--max-frames-in-flight",
            sr.max_frames_in_flight,
            limits::MAX_FRAMES_IN_FLIGHT,
        )?;
        within("--crf", self.crf, limits::CRF)?;
        one_of("--preset", &self.preset, &encode::PRESETS)?;
        one_of("--pix-fmt", &self.pix_fmt, &PIX_FMTS)?;
        one_of("--audio", &self.audio, &AUDIO_MODES)?;
        one_of("--subtitles", &self.subtitles, &KEEP_OR_DROP)?;
        one_of("--chapters", &self.chapters, &KEEP_OR_DROP)?;
        sr.validate()
    }
}

fn within<T: PartialOrd + std::fmt::Display>(
    flag: &str,
    value: T,
    range: RangeInclusive<T>,
) -> Result<()> {
    if !range.contains(&value) {
        bail!(
            "{flag} {value} is out of range ({}..={})",
            range.start(),
            range.end()
        );
    }
    Ok(())
}

fn one_of(flag: &str, value: &str, accepted: &[&str]) -> Result<()> {
    if !accepted.contains(&value) {
        bail!(
            "{flag} {:?} is not one of {}",
            media::clip_text(value),
            accepted.join(", ")
        );
    }
    Ok(())
}

/// Seconds without progress before `gendr upscale` calls the job stalled:
/// generous, since a big model's first frame on a CPU can take minutes.
pub const DEFAULT_STALL_TIMEOUT_S: u64 = 300;

/// The gendrsr settings every subcommand shares.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SrOptions {
    /// Model preset (see `gendr models`) or path to an .onnx file.
    pub model: String,
    /// Tile edge in input pixels (0 = the model's preference).
    pub tile: u32,
    /// Context around each tile in input pixels (raised to the model's minimum).
    pub overlap: u32,
    /// Execution provider: auto, cpu, cuda, tensorrt or openvino.
    pub provider: String,
    /// OpenVINO's arithmetic: auto (bf16 where the CPU has it), fp32 or bf16.
    pub precision: String,
    /// GPU index for the cuda and tensorrt providers.
    pub device_id: i32,
    /// Inference workers, each with its own session (0 = 1 on the CPU, 2 on a GPU).
    pub streams: u32,
    /// Intra-op threads per worker (0 = all cores).
    pub threads: u32,
    /// Tiles per inference run for models with a batch dimension
    /// (0 = a frame's tiles together on a GPU, one at a time on the CPU).
    pub batch: u32,
    /// Frames inside gendrsr at once.
    pub max_frames_in_flight: u32,
    /// Folder for TensorRT engines (default ~/.cache/gendr/tensorrt).
    pub trt_cache: Option<PathBuf>,
    /// The temporal stage: auto (the preset's measured choice), on or off.
    #[serde(default = "temporal_auto")]
    pub temporal: String,
}

fn temporal_auto() -> String {
    gendr::temporal::TemporalMode::Auto.to_string()
}

impl SrOptions {
    /// Whether these options run the temporal stage, for start lines.
    pub fn temporal_on(&self) -> bool {
        self.temporal
            .parse::<gendr::temporal::TemporalMode>()
            .is_ok_and(|mode| mode.enabled_for(&self.model))
    }

    /// Checks what can be checked before a pipeline exists.
    pub fn validate(&self) -> Result<()> {
        gendr::presets::resolve(&self.model)?;
        self.provider.parse::<gendr::engine::Provider>()?;
        self.precision.parse::<gendr::engine::ComputePrecision>()?;
        self.temporal.parse::<gendr::temporal::TemporalMode>()?;
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
                precision: self.precision.parse()?,
                trt_cache: self.trt_cache.clone().or(defaults.engine.trt_cache),
                ..defaults.engine
            },
            streams: self.streams as usize,
            batch_size: self.batch as usize,
            temporal: self.temporal.parse()?,
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
            .property_from_str("precision", &self.precision.to_ascii_lowercase())
            .property("device-id", self.device_id)
            .property("streams", self.streams)
            .property("threads", self.threads)
            .property("batch-size", self.batch)
            .property("max-frames-in-flight", self.max_frames_in_flight)
            .property_from_str("temporal", &self.temporal.to_ascii_lowercase())
            .property(
                "trt-cache-dir",
                self.trt_cache.as_ref().map(|d| d.display().to_string()),
            )
            .build()?)
    }
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
pub(crate) fn check_frame_size(info: &MediaInfo, input: &Path, model: &str) -> Result<()> {
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

/// x265 writes HDR10 mastering-display and content-light metadata into the
/// stream; x264 cannot, and no GStreamer 1.22 muxer keeps both right (mp4mux
/// drops them, matroskamux scales the luminance wrongly): that would lose them.
fn check_hdr_metadata(info: &MediaInfo, encoding: &Encoding, output: &Path) -> Result<()> {
    if info.hdr_metadata && encoding.codec == Codec::X264 {
        bail!(
            "{}: x264 cannot keep the input's HDR10 mastering-display/content-light metadata; \
             use --codec x265 (the default for 10-bit input)",
            output.display()
        );
    }
    Ok(())
}

/// What becomes of the input's streams beside the video (subtitles,
/// chapters, tags), decided before a run and completed after it: one path
/// for `gendr upscale` and `gendr join`.
pub(crate) struct OtherStreams {
    keep_subtitles: bool,
    lost_titles: Option<String>,
    chapters: Option<String>,
    writes_matroska: bool,
}

impl OtherStreams {
    /// Refuses what the output cannot hold; hands chapters to `muxer`.
    pub(crate) fn prepare(args: &Args, info: &MediaInfo, muxer: &gst::Element) -> Result<Self> {
        let output = args.output.display().to_string();
        let keep_subtitles = args.options.subtitles == "keep";
        if keep_subtitles {
            streams::check_subtitles(info, muxer, &output)?;
        }
        Ok(OtherStreams {
            keep_subtitles,
            lost_titles: streams::lost_titles(info, muxer, &output),
            chapters: streams::plan_chapters(
                &args.input,
                &args.output,
                info,
                muxer,
                args.options.chapters == "keep",
            )?,
            writes_matroska: streams::writes_matroska(muxer),
        })
    }

    /// The start line's words on subtitles.
    pub(crate) fn subtitles_summary(&self, info: &MediaInfo) -> String {
        streams::subtitles_summary(info, self.keep_subtitles)
    }

    /// The start line's words on chapters, after a comma, if any.
    pub(crate) fn chapters_summary(&self) -> String {
        self.chapters
            .as_ref()
            .map(|c| format!(", {c}"))
            .unwrap_or_default()
    }

    /// Said even with -q, like every other loss.
    pub(crate) fn say_losses(&self, observer: &dyn Observer) {
        if let Some(line) = &self.lost_titles {
            observer.say(line);
        }
    }

    /// Completes the written file before it is moved into place.
    pub(crate) fn finish(&self, partial: &Path) -> Result<()> {
        if self.writes_matroska {
            streams::restore_matroska_tags(partial)?;
        }
        Ok(())
    }
}

/// The options checked against the input before any work: the model, the
/// frame size, the output size, HDR metadata. Returns the encoding and the
/// start line's notes on the video.
fn check_options(info: &MediaInfo, args: &Args) -> Result<(Encoding, Vec<String>)> {
    args.options.sr.validate()?;
    check_frame_size(info, &args.input, &args.options.sr.model)?;
    let notes = video::describe(&args.options, info)?;
    let encoding = Encoding::choose(&args.options, info);
    check_hdr_metadata(info, &encoding, &args.output)?;
    Ok((encoding, notes))
}

/// What a segmented job checks when it is planned, so that nothing it could
/// know is found only at the join: the options against the input, and the
/// other streams against the output's container when that is known.
pub(crate) fn check_job(info: &MediaInfo, args: &Args, output_known: bool) -> Result<()> {
    check_options(info, args)?;
    if args.options.deinterlace == Deinterlace::Field {
        bail!(
            "--deinterlace field makes two frames of each planned one, which segments do not \
             count yet; use --deinterlace frame, or gendr upscale without --resume"
        );
    }
    if output_known {
        OtherStreams::prepare(args, info, &muxer_for(&args.output)?)?;
    }
    Ok(())
}

/// Refuses outputs that can be known to fail before any work is done.
pub(crate) fn check_output(args: &Args) -> Result<()> {
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

/// A unique, hidden file next to `output` for writing it, recognisably
/// gendr's; removed on every early return.
pub(crate) fn partial_for(output: &Path) -> Result<tempfile::NamedTempFile> {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let folder = match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".gendr-partial")
        .tempfile_in(&folder)
        .with_context(|| format!("{}: cannot write here", output.display()))
}

/// Moves a finished partial file into place: over an existing output only
/// when `overwrite`, so a file that appeared meanwhile is never replaced.
pub(crate) fn persist(
    partial: tempfile::NamedTempFile,
    output: &Path,
    overwrite: bool,
) -> Result<()> {
    let persisted = if overwrite {
        partial.persist(output)
    } else {
        partial.persist_noclobber(output)
    };
    persisted
        .map(drop)
        .map_err(|e| e.error)
        .with_context(|| format!("moving the finished file to {}", output.display()))
}

/// One file, start to finish, telling `bar` how it goes: all of
/// `gendr upscale IN OUT`, and each file of a batch. Returns the frames written.
pub fn run_one(args: &Args, bar: &dyn Observer, interrupted: &AtomicBool) -> Result<u64> {
    let info = media::discover(&args.input)?;
    let (encoding, video_notes) = check_options(&info, args)?;
    check_output(args)?;
    let muxer = muxer_for(&args.output)?;
    let others = OtherStreams::prepare(args, &info, &muxer)?;
    if let Some((complete, expected)) = media::y4m_incomplete(&args.input)? {
        bail!(
            "{}: truncated: frame {expected} is cut short ({complete} complete frames)",
            args.input.display()
        );
    }
    // Claimed before the checks below so that they see what a run that
    // finished meanwhile left, and so that no two runs share a file.
    let claim = media::claim_output(&args.output)?;
    check_output(args)?;
    let partial = partial_for(&args.output)?;

    let log = Arc::new(media::ErrorLog::watch());
    let job = Job::build(
        args,
        &info,
        muxer,
        partial.path(),
        log.clone(),
        Video::Upscale {
            window: None,
            video_only: false,
        },
    )?;
    if !args.quiet {
        let fps = info.framerate;
        bar.say(&format!(
            "gendr: {} {}x{} at {}/{} fps, {} audio stream(s) copied, {}{}, model {} (temporal stage {}), video encoded {}",
            args.input.display(),
            info.width,
            info.height,
            fps.numer(),
            fps.denom(),
            info.audio_streams,
            others.subtitles_summary(&info),
            others.chapters_summary(),
            args.options.sr.model,
            if args.options.sr.temporal_on() { "on" } else { "off" },
            encoding.describe()
        ),
        );
        if let Some(orientation) = &info.orientation {
            bar.say(&format!(
                "gendr: frames turned upright from the source's display orientation {orientation} \
                 (the output container cannot store one)"
            ));
        }
        for note in &video_notes {
            bar.say(&format!("gendr: {note}"));
        }
    }
    others.say_losses(bar);
    let started = Instant::now();
    let frames = job.run(&info, args, interrupted, bar)?;
    others.finish(partial.path())?;
    let damaged = log.decoder_errors();
    let undecodable = job.undecodable();
    persist(partial, &args.output, args.overwrite)?;
    drop(claim);
    let secs = started.elapsed().as_secs_f64();
    // Packets and frames differ for some codecs (fields, packed B-frames):
    // the difference is told only when the decoder also saw damage.
    if damaged > 0 {
        bar.say(&format!(
            "gendr: warning: {}: the decoder reported {damaged} error(s); damaged frames were concealed \
             and may show artefacts, {undecodable} could not be decoded at all",
            args.input.display()
        ));
    }
    bar.say(&format!(
        "gendr: wrote {} ({frames} frames in {secs:.1} s, {:.2} fps)",
        args.output.display(),
        frames as f64 / secs.max(1e-9)
    ));
    Ok(frames)
}
