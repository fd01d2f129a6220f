//! `gendr upscale`: decode → gendrsr → encode → mux, audio copied, written
//! to a temporary name and renamed only when the whole file is done.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
    /// Replace OUTPUT if it exists.
    #[arg(long, short = 'y')]
    pub overwrite: bool,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// The gendrsr settings every subcommand shares.
#[derive(clap::Args, Debug, Clone)]
pub struct SrOptions {
    /// Model preset (see `gendr models`) or path to an .onnx file.
    #[arg(long, short = 'm', default_value = gendr::presets::DEFAULT_PRESET)]
    pub model: String,
    /// Tile edge in input pixels (0 = the model's preference).
    #[arg(long, default_value_t = 0)]
    pub tile: u32,
    /// Context around each tile in input pixels (raised to the model's minimum).
    #[arg(long, default_value_t = 8)]
    pub overlap: u32,
    /// Execution provider: auto, cpu, cuda or tensorrt.
    #[arg(long, default_value = "auto")]
    pub provider: String,
    /// GPU index for the cuda and tensorrt providers.
    #[arg(long, default_value_t = 0)]
    pub device_id: i32,
    /// Inference workers, each with its own session (0 = 1 on the CPU, 2 on a GPU).
    #[arg(long, default_value_t = 0)]
    pub streams: u32,
    /// Intra-op threads per worker (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: u32,
    /// Tiles per inference run for models with a batch dimension
    /// (0 = a frame's tiles together on a GPU, one at a time on the CPU).
    #[arg(long, default_value_t = 0)]
    pub batch: u32,
    /// Frames inside gendrsr at once.
    #[arg(long, default_value_t = 4)]
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

/// The hidden file the output is written to until it is complete.
fn partial_path(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    output.with_file_name(format!(".{name}.gendr-partial"))
}

pub fn run(args: Args) -> Result<()> {
    let info = media::discover(&args.input)?;
    args.sr.validate()?;
    if args.output.exists() && !args.overwrite {
        bail!(
            "{} exists; pass --overwrite to replace it",
            args.output.display()
        );
    }
    if std::fs::canonicalize(&args.input).ok() == std::fs::canonicalize(&args.output).ok() {
        bail!("input and output are the same file");
    }
    let muxer = muxer_for(&args.output)?;
    let partial = partial_path(&args.output);
    std::fs::File::create(&partial)
        .with_context(|| format!("{}: cannot write here", args.output.display()))?;
    let guard = media::RemoveOnDrop::new(partial.clone());

    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // A second handler cannot be installed; only the first call in a process matters.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    }
    let job = Job::build(&args, muxer, &partial)?;
    if !args.quiet {
        let fps = info.framerate;
        eprintln!(
            "gendr: {} {}x{} at {}/{} fps, {} audio stream(s) copied, model {}",
            args.input.display(),
            info.width,
            info.height,
            fps.numer(),
            fps.denom(),
            info.audio_streams,
            args.sr.model
        );
    }
    let started = Instant::now();
    let frames = job.run(&info, args.quiet, &interrupted)?;
    std::fs::rename(&partial, &args.output)
        .with_context(|| format!("moving the finished file to {}", args.output.display()))?;
    guard.keep();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "gendr: wrote {} ({frames} frames in {secs:.1} s, {:.2} fps)",
        args.output.display(),
        frames as f64 / secs.max(1e-9)
    );
    Ok(())
}

struct Job {
    pipeline: gst::Pipeline,
    frames: Arc<AtomicU64>,
    /// A link or configuration error found in a streaming thread.
    link_error: Arc<Mutex<Option<String>>>,
}

impl Job {
    fn build(args: &Args, muxer: gst::Element, partial: &Path) -> Result<Job> {
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
        let video_chain = [
            &queue_in,
            &convert_in,
            &sr,
            &convert_out,
            &encoder,
            &parser,
            &queue_out,
        ];
        pipeline.add(&decode)?;
        pipeline.add_many(video_chain)?;
        gst::Element::link_many(video_chain)?;
        let mux_video = muxer
            .request_pad_simple("video_%u")
            .context("the muxer takes no video")?;
        queue_out
            .static_pad("src")
            .context("queue src")?
            .link(&mux_video)?;
        let chain_sink = queue_in.static_pad("sink").context("queue sink")?;
        decode.connect_pad_added(move |_, pad| {
            if pad.current_caps().is_some_and(|c| {
                c.structure(0)
                    .is_some_and(|s| s.name().starts_with("video/"))
            }) && !chain_sink.is_linked()
            {
                let _ = pad.link(&chain_sink);
            }
        });

        let frames = media::count_output(&sr)?;

        let link_error = Arc::new(Mutex::new(None));
        let video_taken = Arc::new(AtomicBool::new(false));
        let weak_pipeline = pipeline.downgrade();
        let (decode_weak, muxer_weak, errors) =
            (decode.downgrade(), muxer.downgrade(), link_error.clone());
        parse.connect_pad_added(move |_, pad| {
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
            let result = if name.starts_with("video/") && !video_taken.swap(true, Ordering::SeqCst)
            {
                decode
                    .static_pad("sink")
                    .ok_or_else(|| anyhow!("decodebin sink"))
                    .and_then(|s| pad.link(&s).map(|_| ()).map_err(|e| anyhow!("{e:?}")))
            } else if name.starts_with("audio/") {
                copy_audio(&pipeline, &muxer, pad, &caps)
            } else {
                discard(&pipeline, pad)
            };
            if let Err(e) = result {
                tracing::debug!("linking {name}: {e:#}");
                errors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(format!("{e:#}"));
            }
        });
        Ok(Job {
            pipeline,
            frames,
            link_error,
        })
    }

    /// Runs to the end; returns the number of frames written.
    fn run(&self, info: &MediaInfo, quiet: bool, interrupted: &AtomicBool) -> Result<u64> {
        let bar = if quiet {
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
        let result = self.drive(&bar, interrupted);
        bar.finish_and_clear();
        let _ = self.pipeline.set_state(gst::State::Null);
        result?;
        let written = self.frames.load(Ordering::Relaxed);
        // Demuxers end quietly at the end of a truncated file: the count tells.
        if let Some(expected) = info.frame_count() {
            if written + (expected / 100).max(2) < expected {
                bail!("the input ended early: {written} of {expected} frames decoded (truncated or corrupt file?)");
            }
        }
        Ok(written)
    }

    fn drive(&self, bar: &ProgressBar, interrupted: &AtomicBool) -> Result<()> {
        let bus = self.pipeline.bus().context("pipeline bus")?;
        if self.pipeline.set_state(gst::State::Playing).is_err() {
            return Err(self
                .first_error(&bus)
                .unwrap_or_else(|| anyhow!("the pipeline could not start")));
        }
        loop {
            if interrupted.load(Ordering::SeqCst) {
                bail!("interrupted; no output written");
            }
            bar.set_position(self.frames.load(Ordering::Relaxed));
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
                continue;
            };
            match msg.view() {
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Error(err) => {
                    let linked = self
                        .link_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    return Err(match linked {
                        Some(cause) => anyhow!("{cause}"),
                        None => anyhow!("{}", media::error_text(err)),
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

    fn first_error(&self, bus: &gst::Bus) -> Option<anyhow::Error> {
        let msg =
            bus.timed_pop_filtered(gst::ClockTime::from_seconds(1), &[gst::MessageType::Error])?;
        match msg.view() {
            gst::MessageView::Error(err) => Some(anyhow!("{}", media::error_text(err))),
            _ => None,
        }
    }
}

/// Sends a parsed audio stream straight into the muxer, as it is.
fn copy_audio(
    pipeline: &gst::Pipeline,
    muxer: &gst::Element,
    pad: &gst::Pad,
    caps: &gst::Caps,
) -> Result<()> {
    let template = muxer
        .pad_template("audio_%u")
        .context("the output container takes no audio")?;
    if !template.caps().can_intersect(caps) {
        let codec = caps
            .structure(0)
            .map(|s| s.name().to_string())
            .unwrap_or_default();
        bail!(
            "the {codec} audio cannot be copied into this container without re-encoding; use .mkv"
        );
    }
    // The demuxer feeds audio and video from one thread while the encoder
    // holds back frames for look-ahead: a bounded audio queue would fill and
    // stall the video behind it. Interleaving in the file bounds it instead.
    let queue = gst::ElementFactory::make("queue")
        .property("max-size-buffers", 0u32)
        .property("max-size-bytes", 0u32)
        .property("max-size-time", 0u64)
        .build()?;
    pipeline.add(&queue)?;
    queue.sync_state_with_parent()?;
    pad.link(&queue.static_pad("sink").context("queue sink")?)?;
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
