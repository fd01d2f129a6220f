//! The one assembly point: from a model name and the user's settings to
//! loaded engines, tile geometry, batch size and a checked warm-up run.
//! The element, `gendr bench` and `gendr eval` all build through
//! [`Upscaler::open`], so they run the same configuration for the same
//! settings.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::engine::{default_trt_cache_root, ComputePrecision, Engine, EngineOptions, Provider};
use crate::frame::try_zeroed;
use crate::frame::RgbImage;
use crate::model::{ModelInfo, DEFAULT_MIN_OVERLAP};
use crate::pipeline::{FramePipeline, PipelineConfig};
use crate::temporal::{TemporalConfig, TemporalMode};
use crate::tiling::{Batch, TileGeometry};
use crate::upscale::upscale_image;
use crate::{presets, Error, Result};

/// The most memory one inference run's input and output may take together
/// (per worker). Beyond it a configuration is refused before anything is
/// allocated: a tile batch this large is a mistake, not a plan.
pub const MAX_RUN_BYTES: usize = 2 << 30;

/// What the user asks for; every front end maps its options onto this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpscalerConfig {
    /// A preset name or a path to an ONNX file.
    pub model: String,
    /// Tile edge in input pixels, context included; 0 = the model's preference.
    pub tile_size: usize,
    /// Context per side in input pixels, raised to the model's minimum.
    pub tile_overlap: usize,
    pub engine: EngineOptions,
    /// Inference workers; 0 = one on the CPU, two on a GPU.
    pub streams: usize,
    /// Tiles per run; 0 = automatic (see [`Engine::batch`]).
    pub batch_size: usize,
    /// The temporal stage after stitching (see [`crate::temporal`]).
    pub temporal: TemporalMode,
}

impl Default for UpscalerConfig {
    fn default() -> Self {
        UpscalerConfig {
            model: presets::DEFAULT_PRESET.into(),
            tile_size: 0,
            tile_overlap: DEFAULT_MIN_OVERLAP,
            engine: EngineOptions {
                trt_cache: default_trt_cache_root(),
                ..EngineOptions::default()
            },
            streams: 0,
            batch_size: 0,
            temporal: TemporalMode::Auto,
        }
    }
}

/// What [`Upscaler::open`] decided: enough to report and to compare two
/// front ends' configurations.
#[derive(Debug, Clone, PartialEq)]
pub struct Assembly {
    pub model_path: PathBuf,
    pub info: ModelInfo,
    /// The provider that really runs the model (never `Auto`).
    pub provider: Provider,
    /// OpenVINO's arithmetic (never `Auto`); `None` on ONNX Runtime.
    pub precision: Option<ComputePrecision>,
    /// The CPU as OpenVINO names it, on that provider.
    pub cpu_name: Option<String>,
    pub engine: EngineOptions,
    pub streams: usize,
    pub geometry: TileGeometry,
    pub batch: Batch,
    /// The temporal stage, where it runs (`temporal` resolved against the preset).
    pub temporal: Option<TemporalConfig>,
    /// Adjustments made to the request (tile snapped, overlap raised…).
    pub notes: Vec<String>,
}

impl Assembly {
    pub fn scale(&self) -> usize {
        self.info.scale
    }

    /// What runs the model, for start lines: `cpu`, or `openvino bf16 on <CPU>`.
    pub fn runs_on(&self) -> String {
        match (&self.precision, &self.cpu_name) {
            (Some(p), Some(cpu)) => format!("{} {p} on {cpu}", self.provider),
            (Some(p), None) => format!("{} {p}", self.provider),
            _ => self.provider.to_string(),
        }
    }
}

/// Loaded engines with their geometry, ready to run images or a pipeline.
pub struct Upscaler {
    pub assembly: Assembly,
    /// How long the warm-up run of the smallest tile took.
    pub warm_up: Duration,
    engines: Vec<Engine>,
}

impl Upscaler {
    /// Resolves the model, loads one engine per worker with every option,
    /// decides geometry and batch, bounds the memory a run needs, and runs
    /// the smallest tile once to prove the model really runs.
    pub fn open(config: &UpscalerConfig) -> Result<Upscaler> {
        let model_path = presets::resolve(&config.model)?;
        let preset = presets::find(&config.model);
        let temporal = config.temporal.enabled_for(&config.model);
        let engine = EngineOptions {
            auto_bf16: preset.is_some_and(|p| p.auto_bf16),
            auto_openvino_fp32: preset.is_some_and(|p| p.auto_openvino_fp32),
            ..config.engine.clone()
        };
        let mut engines = Engine::load_workers(&model_path, &engine, config.streams)?;
        let first = &engines[0];
        let (geometry, notes) = first.info.geometry(config.tile_size, config.tile_overlap)?;
        let batch = first.batch(config.batch_size);
        let assembly = Assembly {
            model_path,
            info: first.info.clone(),
            provider: first.provider,
            precision: first.precision,
            cpu_name: first.cpu_name.clone(),
            engine,
            streams: engines.len(),
            geometry,
            batch,
            temporal: temporal.then(|| TemporalConfig::for_model(&config.model)),
            notes,
        };
        assembly.check_run_memory()?;
        let (tw, th) = geometry.plan(1, 1)?.tile_size();
        let run_size = batch.run_size(1);
        let mut input = try_zeroed(run_size * 3 * tw * th)?;
        input.fill(0.5);
        let started = Instant::now();
        engines[0].run(&input, run_size, th, tw)?;
        Ok(Upscaler {
            assembly,
            warm_up: started.elapsed(),
            engines,
        })
    }

    pub fn scale(&self) -> usize {
        self.assembly.scale()
    }

    /// The engines, for a caller that drives them itself (the model-only
    /// benchmark).
    pub fn engines_mut(&mut self) -> &mut [Engine] {
        &mut self.engines
    }

    /// Upscales one image on the first engine, tile by tile: the reference
    /// path for `gendr eval` and tests.
    pub fn upscale_image(&mut self, img: &RgbImage) -> Result<RgbImage> {
        let Assembly {
            geometry, batch, ..
        } = &self.assembly;
        upscale_image(&mut self.engines[0], geometry, *batch, img)
    }

    /// Starts the frame pipeline on these engines, one worker each.
    pub fn start<F: Send + 'static, K: Send + 'static>(
        self,
        max_frames_in_flight: usize,
    ) -> Result<FramePipeline<F, K>> {
        let config = PipelineConfig {
            geometry: self.assembly.geometry,
            max_frames_in_flight,
            batch: self.assembly.batch,
            temporal: self.assembly.temporal,
        };
        FramePipeline::start(config, self.engines)
    }
}

impl Assembly {
    /// Refuses a configuration whose largest run would need more than
    /// [`MAX_RUN_BYTES`] of input and output (a huge fixed model input, a
    /// huge fixed batch), before anything that size is allocated.
    fn check_run_memory(&self) -> Result<()> {
        let g = &self.geometry;
        let tiles = match self.batch {
            Batch::Fixed(n) => n,
            // An open batch is bounded by the tiles of a frame; one tile is
            // what every run needs at least.
            Batch::UpTo(_) => 1,
        };
        let per_tile = 3 * g.tile_width * g.tile_height * (1 + g.scale * g.scale);
        let bytes = tiles
            .saturating_mul(per_tile)
            .saturating_mul(match self.info.precision {
                crate::model::Precision::Fp32 => 4,
                crate::model::Precision::Fp16 => 2,
            });
        if bytes > MAX_RUN_BYTES {
            return Err(Error::ModelContract {
                path: self.model_path.clone(),
                reason: format!(
                    "one run of {tiles} {}x{} tile(s) at ×{} needs {} MiB (at most {} MiB)",
                    g.tile_width,
                    g.tile_height,
                    g.scale,
                    bytes >> 20,
                    MAX_RUN_BYTES >> 20
                ),
            });
        }
        Ok(())
    }
}
