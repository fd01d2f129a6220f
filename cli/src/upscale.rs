//! `gendr upscale`'s arguments and the gendrsr options every subcommand
//! shares, turned into the archival engine's request.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{bail, Result};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use gendr::engine::{ComputePrecision, Provider};
use gendr::temporal::TemporalMode;
use gendr_archive::request::{
    self as engine, Audio, Container, KeepOrDrop, PixFmt, DEFAULT_STALL_TIMEOUT_S,
};
use gendr_archive::upscale;

use crate::batch;
use crate::progress::{cancel_on_ctrl_c, Bar};

pub use gendr_archive::request::{DEFAULT_CRF, DEFAULT_PRESET, PRESETS};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "\
Examples:
  gendr upscale in.mp4 out.mp4
  gendr upscale --model fast --crf 20 --preset fast in.mkv out.mkv
  gendr upscale --codec x265 --model default-x4 old.mp4 old-4x.mp4
  gendr upscale --resume film.mkv film-2x.mkv   (re-run the same to continue)
  gendr upscale -m fast tapes/ tapes-2x/     (every video in the folder tree)")]
pub struct Args {
    /// Input video file (any container and codec GStreamer can decode), or a
    /// folder: every video in its tree is upscaled.
    pub input: PathBuf,
    /// Output file; .mp4, .mkv or .mov picks the container. For a folder
    /// input, the folder that mirrors its tree.
    pub output: PathBuf,
    /// Folder inputs: the outputs' container. Default: the input's own when
    /// it is mp4, mkv or mov, otherwise mkv (which holds any codec).
    #[arg(long, value_name = "FORMAT", value_parser = words::<Container>(Container::NAMES))]
    pub container: Option<Container>,
    #[command(flatten)]
    pub options: UpscaleOptions,
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
    /// Work in segments kept in the hidden folder .OUTPUT.gendr-job next to
    /// OUTPUT, so that running the same command again after an interruption
    /// continues where it stopped (see docs/archival.md); removed on success.
    #[arg(long)]
    pub resume: bool,
    /// With --resume: segment length aimed at, in seconds of video (default 60).
    #[arg(long, value_name = "S", requires = "resume")]
    pub segment_seconds: Option<f64>,
}

/// Everything that decides what `gendr upscale` writes: a segmented job
/// records these and refuses segments made with others.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct UpscaleOptions {
    #[command(flatten)]
    pub sr: SrOptions,
    /// Video encoder [default: x264, or x265 (Main 10) for input deeper than 8 bits].
    #[arg(long, value_enum)]
    pub codec: Option<Codec>,
    /// Constant quality: lower is better (x264/x265 CRF, 0–50).
    #[arg(long, default_value_t = DEFAULT_CRF, value_parser = in_range(gendr::limits::CRF))]
    pub crf: u32,
    /// Encoder speed preset (ultrafast … veryslow).
    #[arg(long, default_value = DEFAULT_PRESET,
          value_parser = clap::builder::PossibleValuesParser::new(PRESETS))]
    pub preset: String,
    /// Samples of the encoded video: auto (4:2:0 at the input's bit depth,
    /// 8 or 10), yuv420p (4:2:0 8-bit), yuv420p10 (4:2:0 10-bit) or keep
    /// (the input's chroma subsampling, 4:2:0, 4:2:2 or 4:4:4, at its bit
    /// depth, 8 or 10).
    #[arg(long, value_name = "FORMAT", default_value = "auto",
          value_parser = words::<PixFmt>(PixFmt::NAMES))]
    pub pix_fmt: PixFmt,
    /// Audio: copy every stream as it is (an error where the container
    /// cannot hold its codec), or aac: copy what fits and re-encode the rest
    /// as AAC at 256 kbit/s (said when it happens).
    #[arg(long, value_name = "MODE", default_value = "copy",
          value_parser = words::<Audio>(Audio::NAMES))]
    pub audio: Audio,
    /// What is done with interlaced input (before the model).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = Deinterlace::Auto)]
    pub deinterlace: Deinterlace,
    /// Output size as a multiple of the input's (e.g. 1.5): the model's
    /// scale, then resampled; pixels keep their aspect.
    #[arg(long, value_name = "F")]
    pub scale: Option<f64>,
    /// Output width in pixels (even); the height follows the picture's shape.
    #[arg(long, value_name = "W")]
    pub width: Option<u32>,
    /// Output height in pixels (even); the width follows the picture's shape.
    #[arg(long, value_name = "H")]
    pub height: Option<u32>,
    /// Subtitles: keep every stream (converted where the container needs it,
    /// an error where it cannot hold one), or drop them all.
    #[arg(long, value_name = "MODE", default_value = "keep",
          value_parser = words::<KeepOrDrop>(KeepOrDrop::NAMES))]
    pub subtitles: KeepOrDrop,
    /// Chapters: keep them (an error where the container cannot hold them),
    /// or drop them.
    #[arg(long, value_name = "MODE", default_value = "keep",
          value_parser = words::<KeepOrDrop>(KeepOrDrop::NAMES))]
    pub chapters: KeepOrDrop,
}

/// A clap parser accepting exactly `range` (one of [`gendr::limits`]), so a
/// value out of range is a usage error rather than a property panic.
pub fn in_range<T>(range: RangeInclusive<T>) -> clap::builder::RangedI64ValueParser<T>
where
    T: TryFrom<i64> + Into<i64> + Copy + Clone + Send + Sync + 'static,
    <T as TryFrom<i64>>::Error: std::error::Error + Send + Sync + 'static,
{
    clap::builder::RangedI64ValueParser::<T>::new()
        .range((*range.start()).into()..=(*range.end()).into())
}

/// A parser for one of an engine enum's words, listed in --help.
fn words<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(names).try_map(|word| word.parse::<T>())
}

/// A parser for `--temporal`, its words listed in --help.
fn temporal_modes() -> impl TypedValueParser<Value = TemporalMode> {
    PossibleValuesParser::new(["auto", "on", "off"])
        .try_map(|word| word.parse::<TemporalMode>().map_err(|e| e.to_string()))
}

/// A parser for a value the core reads from text (provider, precision).
fn parsed<T: FromStr>(text: &str) -> Result<T, String>
where
    T::Err: Display,
{
    text.parse().map_err(|e: T::Err| e.to_string())
}

/// The gendrsr settings every subcommand shares.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct SrOptions {
    /// Model preset (see `gendr models`) or path to an .onnx file.
    #[arg(long, short = 'm', default_value = gendr::presets::DEFAULT_PRESET)]
    pub model: String,
    /// Tile edge in input pixels (0 = the model's preference).
    #[arg(long, default_value_t = 0, value_parser = in_range(gendr::limits::TILE_SIZE))]
    pub tile: u32,
    /// Context around each tile in input pixels (raised to the model's minimum).
    #[arg(long, default_value_t = engine::DEFAULT_OVERLAP,
          value_parser = in_range(gendr::limits::TILE_OVERLAP))]
    pub overlap: u32,
    /// Execution provider: auto, cpu, cuda, tensorrt or openvino.
    #[arg(long, default_value = "auto", value_parser = parsed::<Provider>)]
    pub provider: Provider,
    /// OpenVINO's arithmetic: auto (bf16 where the CPU has it), fp32 or bf16.
    #[arg(long, default_value = "auto", value_parser = parsed::<ComputePrecision>)]
    pub precision: ComputePrecision,
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
    #[arg(long, default_value_t = engine::DEFAULT_FRAMES_IN_FLIGHT,
          value_parser = in_range(gendr::limits::MAX_FRAMES_IN_FLIGHT))]
    pub max_frames_in_flight: u32,
    /// Folder for TensorRT engines (default ~/.cache/gendr/tensorrt).
    #[arg(long, value_name = "DIR")]
    pub trt_cache: Option<PathBuf>,
    /// Temporal stage against flicker: auto (on for the presets measured
    /// steadier with it: anime-video-x4, realesrgan-x4), on or off.
    #[arg(long, value_name = "MODE", default_value = "auto", value_parser = temporal_modes())]
    pub temporal: TemporalMode,
}

/// What `--codec` names.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    X264,
    X265,
}

/// What `--deinterlace` asks for.
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Deinterlace {
    /// Deinterlace when the input is interlaced, one frame per frame.
    #[default]
    Auto,
    /// Take the frames as progressive, fields woven as they are.
    Off,
    /// Always deinterlace, one frame per frame.
    Frame,
    /// Always deinterlace, one frame per field (twice the frame rate).
    Field,
}

impl From<Codec> for engine::Codec {
    fn from(codec: Codec) -> Self {
        match codec {
            Codec::X264 => engine::Codec::X264,
            Codec::X265 => engine::Codec::X265,
        }
    }
}

impl From<Deinterlace> for engine::Deinterlace {
    fn from(mode: Deinterlace) -> Self {
        match mode {
            Deinterlace::Auto => engine::Deinterlace::Auto,
            Deinterlace::Off => engine::Deinterlace::Off,
            Deinterlace::Frame => engine::Deinterlace::Frame,
            Deinterlace::Field => engine::Deinterlace::Field,
        }
    }
}

impl From<Args> for engine::UpscaleRequest {
    fn from(args: Args) -> Self {
        engine::UpscaleRequest {
            input: args.input,
            output: args.output,
            container: args.container,
            options: args.options.into(),
            overwrite: args.overwrite,
            quiet: args.quiet,
            stall_timeout: args.stall_timeout,
            resume: args.resume,
            segment_seconds: args.segment_seconds,
        }
    }
}

impl From<UpscaleOptions> for engine::UpscaleOptions {
    fn from(options: UpscaleOptions) -> Self {
        engine::UpscaleOptions {
            sr: options.sr.into(),
            codec: options.codec.map(Into::into),
            crf: options.crf,
            preset: options.preset,
            pix_fmt: options.pix_fmt,
            audio: options.audio,
            deinterlace: options.deinterlace.into(),
            scale: options.scale,
            width: options.width,
            height: options.height,
            subtitles: options.subtitles,
            chapters: options.chapters,
        }
    }
}

impl From<SrOptions> for engine::SrOptions {
    fn from(sr: SrOptions) -> Self {
        engine::SrOptions {
            model: sr.model,
            tile: sr.tile,
            overlap: sr.overlap,
            provider: sr.provider,
            precision: sr.precision,
            device_id: sr.device_id,
            streams: sr.streams,
            threads: sr.threads,
            batch: sr.batch,
            max_frames_in_flight: sr.max_frames_in_flight,
            trt_cache: sr.trt_cache,
            temporal: sr.temporal,
        }
    }
}

impl SrOptions {
    /// Checks what can be checked before a pipeline exists.
    pub fn validate(&self) -> Result<()> {
        Ok(engine::SrOptions::from(self.clone()).validate()?)
    }

    /// The core configuration these options ask for (see the engine's).
    pub fn upscaler_config(&self) -> gendr::upscaler::UpscalerConfig {
        engine::SrOptions::from(self.clone()).upscaler_config()
    }

    /// A gendrsr element with these options as its properties.
    pub fn element(&self) -> Result<gst::Element> {
        Ok(engine::SrOptions::from(self.clone()).element()?)
    }
}

pub fn run(args: Args) -> Result<()> {
    let args = engine::UpscaleRequest::from(args);
    if args.input.is_dir() {
        return batch::run(&args);
    }
    if args.container.is_some() {
        bail!("--container is for folder inputs; the output file's name picks its container");
    }
    let (bar, cancel) = (Bar::new(args.quiet), cancel_on_ctrl_c());
    let caller = gendr_archive::Caller {
        observer: &bar,
        cancel: &cancel,
    };
    if args.resume {
        return Ok(gendr_archive::segment::resume(args, caller)?);
    }
    upscale::run_one(&args, caller)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Line {
        #[command(flatten)]
        options: UpscaleOptions,
    }

    /// What a library caller gets from `UpscaleOptions::new` is what the
    /// command line runs when given no option.
    #[test]
    fn the_engines_defaults_are_the_command_lines() {
        let line = Line::try_parse_from(["gendr"]).unwrap();
        assert_eq!(
            engine::UpscaleOptions::from(line.options),
            engine::UpscaleOptions::new(engine::SrOptions::new(gendr::presets::DEFAULT_PRESET))
        );
    }
}
