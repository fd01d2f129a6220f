//! What a caller asks the engine for: one `gendr upscale` run, and the
//! options that decide what it writes (which a job folder's manifest
//! records). Plain data with serde, no command-line parsing: every choice
//! is a typed value, checked against the same ranges as the command line.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use crate::error::{bail, Result};
use gendr::engine::{ComputePrecision, Provider};
use gendr::temporal::TemporalMode;

use crate::media;

/// x264/x265 constant quality and speed preset when none is given.
pub const DEFAULT_CRF: u32 = 18;
pub const DEFAULT_PRESET: &str = "medium";

/// Context around each tile, in input pixels, when none is given (raised
/// to the model's minimum).
pub const DEFAULT_OVERLAP: u32 = 8;

/// Frames inside gendrsr at once when no number is given.
pub const DEFAULT_FRAMES_IN_FLIGHT: u32 = 4;

/// Seconds without progress before `gendr upscale` calls the job stalled:
/// generous, since a big model's first frame on a CPU can take minutes.
pub const DEFAULT_STALL_TIMEOUT_S: u64 = 300;

/// Segment length when none is given.
pub const DEFAULT_SEGMENT_SECONDS: f64 = 60.0;

/// The `--segment-seconds` values a plan takes.
pub fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.1 => Ok(v),
        _ => Err("a number of seconds, at least 0.1".to_string()),
    }
}

/// x264's and x265's speed presets, fastest first.
pub const PRESETS: [&str; 9] = [
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

/// An enum named by fixed words: on the command line, in messages and in
/// the manifest (the same words today's manifests hold).
macro_rules! named {
    ($(#[$meta:meta])* pub enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident = $word:literal,)+
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $word)] $variant,)+
        }

        impl $name {
            /// Every word, in order.
            pub const NAMES: &'static [&'static str] = &[$($word),+];

            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($word => Ok($name::$variant),)+
                    other => Err(format!(
                        "{:?} is not one of {}",
                        media::clip_text(other),
                        Self::NAMES.join(", ")
                    )),
                }
            }
        }
    };
}

named! {
    /// The encoded video's samples (`--pix-fmt`).
    pub enum PixFmt {
        /// 4:2:0 at the input's bit depth, 8 or 10.
        Auto = "auto",
        Yuv420p = "yuv420p",
        Yuv420p10 = "yuv420p10",
        /// What the conversion after the model gives.
        Keep = "keep",
    }
}

named! {
    /// What becomes of the audio (`--audio`).
    pub enum Audio {
        /// Every stream as it is.
        Copy = "copy",
        /// What fits copied, the rest re-encoded as AAC.
        Aac = "aac",
    }
}

named! {
    /// Subtitles or chapters (`--subtitles`, `--chapters`).
    pub enum KeepOrDrop {
        Keep = "keep",
        Drop = "drop",
    }
}

named! {
    /// The containers gendr writes.
    pub enum Container {
        Mp4 = "mp4",
        Mkv = "mkv",
        Mov = "mov",
    }
}

named! {
    /// The video encoder (`--codec`).
    pub enum Codec {
        X264 = "x264",
        X265 = "x265",
    }
}

named! {
    /// What is done with interlaced input (`--deinterlace`).
    pub enum Deinterlace {
        /// Deinterlace when the input is interlaced, one frame per frame.
        Auto = "auto",
        /// Take the frames as progressive, fields woven as they are.
        Off = "off",
        /// Always deinterlace, one frame per frame.
        Frame = "frame",
        /// Always deinterlace, one frame per field (twice the frame rate).
        Field = "field",
    }
}

impl Container {
    /// The container `path`'s extension names, if one gendr writes.
    pub fn of(path: &Path) -> Option<Container> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        ext.parse().ok()
    }
}

/// One `gendr upscale` run: a file (or a folder tree) into another.
#[derive(Debug, Clone)]
pub struct UpscaleRequest {
    /// A video file, or a folder: every video in its tree.
    pub input: PathBuf,
    /// The output file, or for a folder input the folder that mirrors it.
    pub output: PathBuf,
    /// Folder inputs: the outputs' container (None: the input's own when
    /// gendr writes it, otherwise mkv).
    pub container: Option<Container>,
    pub options: UpscaleOptions,
    /// Replace an existing output.
    pub overwrite: bool,
    /// No start line and no progress (losses and warnings are still said).
    pub quiet: bool,
    /// Seconds without progress before the run fails as stalled; 0 = never.
    pub stall_timeout: u64,
    /// Work in segments in a hidden job folder next to the output, so that
    /// the same request again continues where an interrupted one stopped.
    pub resume: bool,
    /// With `resume`: segment length aimed at, in seconds (None: 60).
    pub segment_seconds: Option<f64>,
}

impl UpscaleRequest {
    pub fn target(&self) -> Target<'_> {
        Target {
            input: &self.input,
            output: &self.output,
            options: &self.options,
        }
    }
}

/// What one pipeline reads, what it is writing (named in checks and
/// messages; the bytes go to a partial file) and how.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub input: &'a Path,
    pub output: &'a Path,
    pub options: &'a UpscaleOptions,
}

/// Everything that decides what `gendr upscale` writes: a segmented job
/// records these and refuses segments made with others.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UpscaleOptions {
    pub sr: SrOptions,
    /// None: x264, or x265 (Main 10) for input deeper than 8 bits.
    pub codec: Option<Codec>,
    /// Constant quality, lower is better (x264/x265 CRF).
    pub crf: u32,
    /// Encoder speed preset, one of [`PRESETS`].
    pub preset: String,
    pub pix_fmt: PixFmt,
    pub audio: Audio,
    pub deinterlace: Deinterlace,
    /// Output size as a multiple of the input's: the model's scale, then resampled.
    pub scale: Option<f64>,
    /// Output width in pixels (even); the height follows the picture's shape.
    pub width: Option<u32>,
    /// Output height in pixels (even); the width follows the picture's shape.
    pub height: Option<u32>,
    pub subtitles: KeepOrDrop,
    pub chapters: KeepOrDrop,
}

impl UpscaleOptions {
    /// `sr` with every encoding and stream choice as the command line has
    /// it when not given: x264 (x265 for deeper input) at the default
    /// quality and preset, the input's size times the model's scale, every
    /// stream and chapter kept, audio copied.
    pub fn new(sr: SrOptions) -> UpscaleOptions {
        UpscaleOptions {
            sr,
            codec: None,
            crf: DEFAULT_CRF,
            preset: DEFAULT_PRESET.to_string(),
            pix_fmt: PixFmt::Auto,
            audio: Audio::Copy,
            deinterlace: Deinterlace::Auto,
            scale: None,
            width: None,
            height: None,
            subtitles: KeepOrDrop::Keep,
            chapters: KeepOrDrop::Keep,
        }
    }

    /// Checks every value as the command line's parsers do: options read
    /// from a job folder are input too, and an out-of-range one would
    /// otherwise reach an element property (a panic).
    pub fn check_values(&self) -> Result<()> {
        self.sr.check_values()?;
        within("--crf", self.crf, gendr::limits::CRF)?;
        check_preset(&self.preset)
    }
}

/// Checks that `preset` is one of the encoders' [`PRESETS`].
pub fn check_preset(preset: &str) -> Result<()> {
    if !PRESETS.contains(&preset) {
        bail!(
            Request,
            "--preset {:?} is not one of {}",
            media::clip_text(preset),
            PRESETS.join(", ")
        );
    }
    Ok(())
}

/// Checks that `value`, given as `flag`, lies in `range`.
pub fn within<T: PartialOrd + std::fmt::Display>(
    flag: &str,
    value: T,
    range: RangeInclusive<T>,
) -> Result<()> {
    if !range.contains(&value) {
        bail!(
            Request,
            "{flag} {value} is out of range ({}..={})",
            range.start(),
            range.end()
        );
    }
    Ok(())
}

/// The gendrsr settings every subcommand shares.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SrOptions {
    /// Model preset or path to an .onnx file.
    pub model: String,
    /// Tile edge in input pixels (0 = the model's preference).
    pub tile: u32,
    /// Context around each tile in input pixels (raised to the model's minimum).
    pub overlap: u32,
    #[serde(with = "as_text")]
    pub provider: Provider,
    /// OpenVINO's arithmetic.
    #[serde(with = "as_text")]
    pub precision: ComputePrecision,
    /// GPU index for the cuda and tensorrt providers.
    pub device_id: i32,
    /// Inference workers, each with its own session (0 = 1 on the CPU, 2 on a GPU).
    pub streams: u32,
    /// Intra-op threads per worker (0 = all cores).
    pub threads: u32,
    /// Tiles per inference run (0 = a frame's tiles on a GPU, one on the CPU).
    pub batch: u32,
    /// Frames inside gendrsr at once.
    pub max_frames_in_flight: u32,
    /// Folder for TensorRT engines (None: ~/.cache/gendr/tensorrt).
    pub trt_cache: Option<PathBuf>,
    /// The temporal stage: auto (the preset's measured choice), on or off.
    #[serde(with = "as_text", default = "planned_before_the_temporal_stage")]
    pub temporal: TemporalMode,
}

/// What a manifest without `temporal` ran: jobs planned before the stage
/// existed made their segments without it, and go on so.
fn planned_before_the_temporal_stage() -> TemporalMode {
    TemporalMode::Off
}

impl SrOptions {
    /// `model` (a preset or an .onnx file) with every other setting as the
    /// command line has it when not given: the model's own tile, auto
    /// provider and precision, the temporal stage as the preset decides.
    pub fn new(model: impl Into<String>) -> SrOptions {
        SrOptions {
            model: model.into(),
            tile: 0,
            overlap: DEFAULT_OVERLAP,
            provider: Provider::Auto,
            precision: ComputePrecision::Auto,
            device_id: 0,
            streams: 0,
            threads: 0,
            batch: 0,
            max_frames_in_flight: DEFAULT_FRAMES_IN_FLIGHT,
            trt_cache: None,
            temporal: TemporalMode::Auto,
        }
    }

    /// Whether these options run the temporal stage, for start lines.
    pub fn temporal_on(&self) -> bool {
        self.temporal.enabled_for(&self.model)
    }

    /// Checks every value as the command line's parsers do (one out of
    /// range would reach a gendrsr property: a panic), then [`Self::validate`].
    pub fn check_values(&self) -> Result<()> {
        use gendr::limits;
        within("--tile", self.tile, limits::TILE_SIZE)?;
        within("--overlap", self.overlap, limits::TILE_OVERLAP)?;
        within("--device-id", self.device_id, limits::DEVICE_ID)?;
        within("--streams", self.streams, limits::STREAMS)?;
        within("--threads", self.threads, limits::THREADS)?;
        within("--batch", self.batch, limits::BATCH_SIZE)?;
        within(
            "--max-frames-in-flight",
            self.max_frames_in_flight,
            limits::MAX_FRAMES_IN_FLIGHT,
        )?;
        self.validate()
    }

    /// Checks what can be checked before a pipeline exists.
    pub fn validate(&self) -> Result<()> {
        gendr::presets::resolve(&self.model)?;
        Ok(())
    }

    /// The core configuration these options ask for: what gendrsr builds
    /// when given them as properties, and what bench and eval build directly.
    pub fn upscaler_config(&self) -> gendr::upscaler::UpscalerConfig {
        let defaults = gendr::upscaler::UpscalerConfig::default();
        gendr::upscaler::UpscalerConfig {
            model: self.model.clone(),
            tile_size: self.tile as usize,
            tile_overlap: self.overlap as usize,
            engine: gendr::engine::EngineOptions {
                provider: self.provider,
                device_id: self.device_id,
                threads: self.threads as usize,
                precision: self.precision,
                trt_cache: self.trt_cache.clone().or(defaults.engine.trt_cache),
                ..defaults.engine
            },
            streams: self.streams as usize,
            batch_size: self.batch as usize,
            temporal: self.temporal,
        }
    }

    /// A gendrsr element with these options as its properties.
    pub fn element(&self) -> Result<gst::Element> {
        Ok(gst::ElementFactory::make("gendrsr")
            .property("model", &self.model)
            .property("tile-size", self.tile)
            .property("tile-overlap", self.overlap)
            .property_from_str("provider", &self.provider.to_string())
            .property_from_str("precision", &self.precision.to_string())
            .property("device-id", self.device_id)
            .property("streams", self.streams)
            .property("threads", self.threads)
            .property("batch-size", self.batch)
            .property("max-frames-in-flight", self.max_frames_in_flight)
            .property_from_str("temporal", &self.temporal.to_string())
            .property(
                "trt-cache-dir",
                self.trt_cache.as_ref().map(|d| d.display().to_string()),
            )
            .build()?)
    }
}

/// Serde for the core's provider and precision: their words, read back
/// with their own parser (so manifests that spelled them otherwise still load).
mod as_text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
pub(crate) mod tests;
