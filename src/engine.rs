//! One inference session per worker (ONNX Runtime, or OpenVINO through
//! [`crate::openvino_engine`]), and the one place that decides which
//! provider and arithmetic run it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use half::f16;
use ort::ep::{self, ExecutionProvider};
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{IoBinding, Session};
use ort::value::{DynTensor, TensorElementType, TensorRef};

use crate::error::first_line;
use crate::model::{ModelInfo, Precision};
pub use crate::tiling::Batch;
use crate::{openvino_engine, runtime, Error, Result};

/// Which execution provider runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Provider {
    /// TensorRT, then CUDA, then OpenVINO, then ONNX Runtime's CPU
    /// provider: the first that loads, logged.
    #[default]
    Auto,
    Cpu,
    Cuda,
    TensorRt,
    /// OpenVINO on the CPU, in fp32 or bf16 (see [`ComputePrecision`]).
    OpenVino,
}

impl Provider {
    /// Runs on the CPU: one worker and one tile per run by default.
    pub fn on_cpu(self) -> bool {
        matches!(self, Provider::Cpu | Provider::OpenVino)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::Auto => "auto",
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
            Provider::TensorRt => "tensorrt",
            Provider::OpenVino => "openvino",
        })
    }
}

impl FromStr for Provider {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Provider::Auto),
            "cpu" => Ok(Provider::Cpu),
            "cuda" => Ok(Provider::Cuda),
            "tensorrt" | "trt" => Ok(Provider::TensorRt),
            "openvino" => Ok(Provider::OpenVino),
            other => Err(Error::InvalidSetting(format!(
                "unknown provider {other:?}; use auto, cpu, cuda, tensorrt or openvino"
            ))),
        }
    }
}

/// The arithmetic OpenVINO runs the model in. ONNX Runtime's providers run
/// the model's own types (TensorRT: fp16) and take only `Auto` or `Fp32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComputePrecision {
    /// bf16 where the CPU has it (AVX-512 BF16 or AMX), fp32 elsewhere.
    #[default]
    Auto,
    Fp32,
    Bf16,
}

impl fmt::Display for ComputePrecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ComputePrecision::Auto => "auto",
            ComputePrecision::Fp32 => "fp32",
            ComputePrecision::Bf16 => "bf16",
        })
    }
}

impl FromStr for ComputePrecision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(ComputePrecision::Auto),
            "fp32" | "f32" => Ok(ComputePrecision::Fp32),
            "bf16" => Ok(ComputePrecision::Bf16),
            other => Err(Error::InvalidSetting(format!(
                "unknown precision {other:?}; use auto, fp32 or bf16"
            ))),
        }
    }
}

/// Inference workers on a GPU when none are asked for: two sessions, each on
/// its own CUDA stream, so that one's copies overlap the other's compute.
pub const GPU_STREAMS: usize = 2;

/// How to build a session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineOptions {
    pub provider: Provider,
    pub device_id: i32,
    /// Intra-op threads; 0 lets the runtime use every core.
    pub threads: usize,
    /// OpenVINO's arithmetic; bf16 is refused on other providers.
    pub precision: ComputePrecision,
    /// Under `Auto` with no GPU, OpenVINO in bf16 runs the model where the
    /// CPU has bf16: set by `Upscaler::open` for a preset whose bf16 output
    /// is measured within 0.05 dB of fp32 and faster (`Preset::auto_bf16`).
    pub auto_bf16: bool,
    /// Under `Auto` with no GPU and bf16 not taken, OpenVINO in fp32 runs
    /// the model: set by `Upscaler::open` for a preset measured faster there
    /// than on ONNX Runtime, with the same output (`Preset::auto_openvino_fp32`).
    pub auto_openvino_fp32: bool,
    /// Where TensorRT keeps built engines; `None` disables the cache.
    pub trt_cache: Option<PathBuf>,
}

/// Where TensorRT keeps the engines for one model: a folder per model
/// content and runtime version under `root`. TensorRT names the files inside
/// by subgraph, input shapes and GPU architecture, so together they key a
/// built engine by model, shapes, precision (the engines are fp16), GPU and
/// TensorRT version: a new model or runtime never picks up a stale engine.
pub fn trt_cache_dir(root: &Path, model: &Path) -> Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(model)?;
    let digest = Sha256::digest(&bytes);
    let key: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let version = runtime::LIBRARY.trim_start_matches("libonnxruntime.so.");
    let dir = root.join(format!("{key}-ort{version}-fp16"));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// `$XDG_CACHE_HOME/gendr/tensorrt`, else `~/.cache/gendr/tensorrt`.
pub fn default_trt_cache_root() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("gendr").join("tensorrt"))
}

/// A loaded model, ready to run batches of tiles.
pub struct Engine {
    backend: Backend,
    pub info: ModelInfo,
    /// The provider that actually runs the model (never `Auto`).
    pub provider: Provider,
    /// What OpenVINO computes in (never `Auto`); `None` on ONNX Runtime.
    pub precision: Option<ComputePrecision>,
    /// The CPU as OpenVINO names it, on that provider.
    pub cpu_name: Option<String>,
}

enum Backend {
    Ort(OrtSession),
    OpenVino(openvino_engine::Session),
}

struct OrtSession {
    session: Session,
    provider: Provider,
    device_id: i32,
    /// Bound buffers for the shapes run lately; `None` once they failed to
    /// set up, or failed their first run, after which runs go through plain
    /// `Session::run`.
    staging: Option<Vec<Staging>>,
    /// Whether a run through bound buffers has succeeded: until one has, a
    /// failing one is taken for the binding's fault, not the model's.
    staged_once: bool,
    precision: Precision,
    output_name: String,
    scale: usize,
}

/// Shapes whose buffers an engine keeps: a stream's tile batch, the short
/// last batch of a frame, and a size change.
const STAGED_SHAPES: usize = 4;

/// An input and an output of one shape, allocated once and bound to the
/// session (ONNX Runtime's IoBinding). On a GPU they live in pinned host
/// memory, which the device copies to and from directly and asynchronously;
/// on the CPU they spare the per-run output allocation.
struct Staging {
    shape: [usize; 4],
    input: DynTensor,
    binding: IoBinding,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("info", &self.info)
            .field("provider", &self.provider)
            .field("precision", &self.precision)
            .finish()
    }
}

fn load_error(path: &Path, e: impl fmt::Display) -> Error {
    Error::ModelLoad {
        path: path.to_path_buf(),
        reason: first_line(e),
    }
}

fn provider_error(provider: Provider, e: impl fmt::Display) -> Error {
    Error::ProviderUnavailable {
        provider: provider.to_string(),
        reason: e.to_string(),
    }
}

impl Engine {
    /// Loads `path` with the requested provider. A forced provider that
    /// cannot load is an error; `Auto` falls back and logs what it chose.
    pub fn load(path: &Path, options: &EngineOptions) -> Result<Engine> {
        if !path.is_file() {
            return Err(Error::ModelNotFound(path.to_path_buf()));
        }
        let env = runtime::environment()?;
        let attempts = Self::attempts(options)?;
        let mut last_error = None;
        for (provider, precision) in attempts {
            match Self::load_with(env, path, provider, precision, options) {
                Ok(mut engine) => {
                    if options.provider == Provider::Auto {
                        tracing::info!(
                            %provider,
                            precision = %engine.precision.map_or("model's own".into(), |p| p.to_string()),
                            model = %path.display(),
                            "execution provider chosen"
                        );
                    }
                    if engine.info.scale == 0 {
                        engine.info.scale = engine.probe_scale()?;
                    }
                    if let Backend::Ort(ort) = &mut engine.backend {
                        ort.scale = engine.info.scale;
                    }
                    return Ok(engine);
                }
                Err(e @ Error::ProviderUnavailable { .. })
                    if options.provider == Provider::Auto =>
                {
                    tracing::debug!(%provider, reason = %e, "execution provider skipped");
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error
            .unwrap_or_else(|| provider_error(options.provider, "no provider could be loaded")))
    }

    /// The providers to try in turn, each with the arithmetic it is asked
    /// for (OpenVINO's; the others compute in the model's own type).
    fn attempts(options: &EngineOptions) -> Result<Vec<(Provider, ComputePrecision)>> {
        use ComputePrecision::{Auto, Bf16, Fp32};
        let precision = options.precision;
        Ok(match options.provider {
            // Only OpenVINO computes in bf16.
            Provider::Auto if precision == Bf16 => vec![(Provider::OpenVino, Bf16)],
            // OpenVINO is not faster than ONNX Runtime for every model or in
            // every precision (docs/throughput.md), so without a GPU `auto`
            // takes it only as measured per preset: bf16 where the CPU has
            // it, then fp32; a CPU without bf16 goes on to the next.
            Provider::Auto => {
                let mut cpu = Vec::new();
                if options.auto_bf16 && precision == Auto {
                    cpu.push((Provider::OpenVino, Bf16));
                }
                if options.auto_openvino_fp32 {
                    cpu.push((Provider::OpenVino, Fp32));
                }
                cpu.push((Provider::Cpu, Auto));
                [(Provider::TensorRt, Auto), (Provider::Cuda, Auto)]
                    .into_iter()
                    .chain(cpu)
                    .collect()
            }
            Provider::OpenVino => vec![(Provider::OpenVino, precision)],
            forced if precision == Bf16 => {
                return Err(Error::InvalidSetting(format!(
                    "precision bf16 needs provider openvino (or auto), not {forced}"
                )))
            }
            forced => vec![(forced, Auto)],
        })
    }

    fn load_with(
        env: &ort::environment::Environment,
        path: &Path,
        provider: Provider,
        precision: ComputePrecision,
        options: &EngineOptions,
    ) -> Result<Engine> {
        if provider == Provider::OpenVino {
            // The model contract is read by ONNX Runtime, the one reader of
            // it; that session goes before OpenVINO compiles the model.
            let info = {
                let session = Self::session(env, path, Provider::Cpu, options)?;
                ModelInfo::inspect(path, &session)?
            };
            let (session, precision, cpu) =
                openvino_engine::Session::load(&info, options.threads, precision)?;
            return Ok(Engine {
                backend: Backend::OpenVino(session),
                info,
                provider,
                precision: Some(precision),
                cpu_name: Some(cpu.name),
            });
        }
        let session = Self::session(env, path, provider, options)?;
        let info = ModelInfo::inspect(path, &session)?;
        Ok(Engine {
            backend: Backend::Ort(OrtSession {
                session,
                provider,
                device_id: options.device_id,
                staging: Some(Vec::new()),
                staged_once: false,
                precision: info.precision,
                output_name: info.output_name.clone(),
                scale: info.scale,
            }),
            info,
            provider,
            precision: None,
            cpu_name: None,
        })
    }

    fn session(
        env: &ort::environment::Environment,
        path: &Path,
        provider: Provider,
        options: &EngineOptions,
    ) -> Result<Session> {
        let mut builder = Session::builder(env)
            .map_err(|e| load_error(path, e))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| load_error(path, e))?
            .with_inter_threads(1)
            .map_err(|e| load_error(path, e))?;
        if options.threads > 0 {
            builder = builder
                .with_intra_threads(options.threads)
                .map_err(|e| load_error(path, e))?;
        }
        let cuda = || {
            ep::CUDA::default()
                .with_device_id(options.device_id)
                .build()
                .error_on_failure()
        };
        let providers = match provider {
            Provider::Cpu | Provider::Auto | Provider::OpenVino => {
                vec![ep::CPU::default().with_arena_allocator(true).build()]
            }
            Provider::Cuda => {
                if !ep::CUDA::is_available().unwrap_or(false) {
                    return Err(provider_error(provider, "this ONNX Runtime build has no CUDA support (install onnxruntime-gpu: `make gpu-runtime`)"));
                }
                vec![cuda()]
            }
            Provider::TensorRt => {
                if !ep::TensorRT::is_available().unwrap_or(false) {
                    return Err(provider_error(provider, "this ONNX Runtime build has no TensorRT support (install onnxruntime-gpu: `make gpu-runtime`)"));
                }
                let mut trt = ep::TensorRT::default()
                    .with_device_id(options.device_id)
                    .with_fp16(true);
                if let Some(root) = &options.trt_cache {
                    let dir = trt_cache_dir(root, path)?;
                    let built = std::fs::read_dir(&dir)
                        .map(|entries| {
                            entries
                                .flatten()
                                .any(|e| e.path().extension().is_some_and(|x| x == "engine"))
                        })
                        .unwrap_or(false);
                    if !built {
                        tracing::warn!(
                            cache = %dir.display(),
                            "TensorRT builds its engines for this model now; this takes minutes once, later runs load them"
                        );
                    }
                    trt = trt
                        .with_engine_cache(true)
                        .with_engine_cache_path(dir.display())
                        .with_timing_cache(true)
                        .with_timing_cache_path(dir.display());
                }
                vec![trt.build().error_on_failure(), cuda()]
            }
        };
        builder = builder
            .with_execution_providers(providers)
            .map_err(|e| provider_error(provider, e))?;
        builder
            .commit_from_file(path)
            .map_err(|e| load_error(path, e))
    }

    /// One engine per inference worker: `streams` of them, where 0 is
    /// decided by the first engine's provider (see [`Engine::streams`]).
    pub fn load_workers(
        path: &Path,
        options: &EngineOptions,
        streams: usize,
    ) -> Result<Vec<Engine>> {
        let first = Engine::load(path, options)?;
        let count = first.streams(streams);
        let mut engines = vec![first];
        for _ in 1..count {
            engines.push(Engine::load(path, options)?);
        }
        Ok(engines)
    }

    /// Inference workers for `requested`, where 0 means one on the CPU (its
    /// intra-op threads already share the cores) and [`GPU_STREAMS`] on a GPU.
    pub fn streams(&self, requested: usize) -> usize {
        match requested {
            0 if self.provider.on_cpu() => 1,
            0 => GPU_STREAMS,
            n => n,
        }
    }

    /// Tiles per run: the model's fixed batch size, else `requested`, where
    /// 0 means every tile of a frame on a GPU and one at a time on the CPU,
    /// which gains nothing from batching and would hold a whole frame's
    /// activations at once.
    pub fn batch(&self, requested: usize) -> Batch {
        match (self.info.fixed_batch, requested) {
            (Some(n), _) => Batch::Fixed(n),
            (None, 0) if self.provider.on_cpu() => Batch::UpTo(1),
            (None, 0) => Batch::UpTo(usize::MAX),
            (None, n) => Batch::UpTo(n),
        }
    }

    /// Output pixels per input pixel.
    pub fn scale(&self) -> usize {
        self.info.scale
    }

    /// Finds the scale of a model without metadata by running one small tile.
    fn probe_scale(&mut self) -> Result<usize> {
        let side = (2 * self.info.min_overlap + 8).div_ceil(self.info.tile_multiple)
            * self.info.tile_multiple;
        let (w, h) = self.info.fixed_size.unwrap_or((side, side));
        let batch = self.info.fixed_batch.unwrap_or(1);
        let mut input = crate::frame::try_zeroed(batch * 3 * w * h)?;
        input.fill(0.5);
        let shape = [batch, 3, h, w];
        let (shape, _) = match &mut self.backend {
            Backend::Ort(ort) => ort.run_raw(&input, shape, &self.info)?,
            Backend::OpenVino(ov) => ov.run(&input, shape)?,
        };
        let contract = |reason: String| Error::ModelContract {
            path: self.info.path.clone(),
            reason,
        };
        let &[_, _, oh, ow] = shape.as_slice() else {
            return Err(contract(format!(
                "a {w}x{h} input gave an output of rank {} ({shape:?}); N×3×H×W is expected",
                shape.len()
            )));
        };
        if ow % w != 0 || oh % h != 0 || ow / w != oh / h || ow / w == 0 {
            return Err(contract(format!(
                "a {w}x{h} input gave a {ow}x{oh} output, not an integer scale"
            )));
        }
        let scale = ow / w;
        if scale > crate::model::MAX_SCALE {
            return Err(contract(format!(
                "its output is {scale}x its input; at most {} is supported",
                crate::model::MAX_SCALE
            )));
        }
        tracing::debug!(scale, "scale found by a probe run");
        Ok(scale)
    }

    /// Runs `batch` planar RGB tiles of `h × w`, returning the output as
    /// `batch × 3 × (scale·h) × (scale·w)`, clamped to [0, 1]. A model that
    /// gives NaN or infinity is an error: clamping cannot repair those, and
    /// they would turn silently into black or green pixels.
    pub fn run(&mut self, input: &[f32], batch: usize, h: usize, w: usize) -> Result<Vec<f32>> {
        let s = self.scale();
        if input.len() != batch * 3 * h * w {
            return Err(Error::Inference(format!(
                "{} values given for a {batch}×3×{h}×{w} input",
                input.len()
            )));
        }
        let (shape, mut data) = match &mut self.backend {
            Backend::Ort(ort) => match ort.run_staged(input, [batch, 3, h, w], &self.info) {
                Some(result) => result?,
                None => ort.run_raw(input, [batch, 3, h, w], &self.info)?,
            },
            Backend::OpenVino(ov) => ov.run(input, [batch, 3, h, w])?,
        };
        if shape != [batch, 3, h * s, w * s] {
            return Err(Error::Inference(format!(
                "model {}: a {batch}×3×{h}×{w} input gave a {shape:?} output; expected {batch}×3×{}×{}",
                self.info.path.display(),
                h * s,
                w * s
            )));
        }
        let mut non_finite = 0usize;
        for v in &mut data {
            if !v.is_finite() {
                non_finite += 1;
            }
            *v = v.clamp(0.0, 1.0);
        }
        if non_finite > 0 {
            return Err(Error::Inference(format!(
                "model {} gave {non_finite} NaN or infinite values of {} (a broken or overflowing model; \
                 fp16 models can overflow where fp32 does not)",
                self.info.path.display(),
                data.len()
            )));
        }
        Ok(data)
    }
}

impl OrtSession {
    /// Runs through the bound buffers of this shape; `None` when they
    /// cannot be had, and the caller runs plainly.
    fn run_staged(
        &mut self,
        input: &[f32],
        shape: [usize; 4],
        info: &ModelInfo,
    ) -> Option<Result<(Vec<usize>, Vec<f32>)>> {
        let index = self.staging_for(shape)?;
        let staging = &mut self.staging.as_mut()?[index];
        let name = info.input_name.as_str();
        let result = (|| {
            match info.precision {
                Precision::Fp32 => staging
                    .input
                    .try_extract_tensor_mut::<f32>()?
                    .1
                    .copy_from_slice(input),
                Precision::Fp16 => {
                    let (_, dst) = staging.input.try_extract_tensor_mut::<f16>()?;
                    for (d, &v) in dst.iter_mut().zip(input) {
                        *d = f16::from_f32(v);
                    }
                }
            }
            // Binding copies (to the device, on a GPU): once per run.
            staging.binding.bind_input(name, &staging.input)?;
            let outputs = self.session.run_binding(&staging.binding)?;
            extract(&outputs[0], info.precision)
        })();
        match result {
            Ok(output) => {
                self.staged_once = true;
                Some(Ok(output))
            }
            // The first device run met "CopyTensorAsync: dst_data != src_data"
            // with buffers bound in pinned memory (ONNX Runtime 1.31.1 on an
            // H200): the plain run needs no binding, so it takes over.
            Err(e) if !self.staged_once => {
                let reason = first_line(e);
                tracing::warn!(provider = %self.provider, "bound buffers failed their first run, running without: {reason}");
                self.staging = None;
                None
            }
            Err(e) => Some(Err(inference_error(e))),
        }
    }

    /// The index of the bound buffers for `shape`, set up if need be.
    fn staging_for(&mut self, shape: [usize; 4]) -> Option<usize> {
        let staged = self.staging.as_ref()?;
        if let Some(i) = staged.iter().position(|st| st.shape == shape) {
            return Some(i);
        }
        match self.new_staging(shape) {
            Ok(staging) => {
                let staged = self.staging.as_mut()?;
                if staged.len() == STAGED_SHAPES {
                    staged.remove(0);
                }
                staged.push(staging);
                Some(staged.len() - 1)
            }
            Err(e) => {
                tracing::warn!(provider = %self.provider, "bound buffers unavailable, running without: {e}");
                self.staging = None;
                None
            }
        }
    }

    fn new_staging(&self, shape: [usize; 4]) -> ort::Result<Staging> {
        // Pinned host memory on a GPU; the plain CPU allocator otherwise.
        let allocator = |memory_type| -> ort::Result<Allocator> {
            match self.provider {
                Provider::Cpu | Provider::Auto | Provider::OpenVino => Ok(Allocator::default()),
                Provider::Cuda | Provider::TensorRt => Allocator::new(
                    &self.session,
                    MemoryInfo::new(
                        AllocationDevice::CUDA_PINNED,
                        self.device_id,
                        AllocatorType::Device,
                        memory_type,
                    )?,
                ),
            }
        };
        let element = match self.precision {
            Precision::Fp32 => TensorElementType::Float32,
            Precision::Fp16 => TensorElementType::Float16,
        };
        let [batch, channels, h, w] = shape;
        let input = DynTensor::new(&allocator(MemoryType::CPUInput)?, element, shape)?;
        let output = DynTensor::new(
            &allocator(MemoryType::CPUOutput)?,
            element,
            [batch, channels, h * self.scale, w * self.scale],
        )?;
        let mut binding = self.session.create_binding()?;
        binding.bind_output(self.output_name.as_str(), output)?;
        Ok(Staging {
            shape,
            input,
            binding,
        })
    }

    fn run_raw(
        &mut self,
        input: &[f32],
        shape: [usize; 4],
        info: &ModelInfo,
    ) -> Result<(Vec<usize>, Vec<f32>)> {
        let name = info.input_name.as_str();
        let outputs = match info.precision {
            Precision::Fp32 => {
                let tensor = TensorRef::from_array_view((shape, input)).map_err(inference_error)?;
                self.session
                    .run(ort::inputs![name => tensor])
                    .map_err(inference_error)?
            }
            Precision::Fp16 => {
                let halves: Vec<f16> = input.iter().map(|&v| f16::from_f32(v)).collect();
                let tensor =
                    TensorRef::from_array_view((shape, &halves[..])).map_err(inference_error)?;
                self.session
                    .run(ort::inputs![name => tensor])
                    .map_err(inference_error)?
            }
        };
        extract(&outputs[0], info.precision).map_err(inference_error)
    }
}

fn inference_error(e: ort::Error) -> Error {
    Error::Runtime(e)
}

/// An output tensor's shape and values as f32.
fn extract(
    value: &ort::value::DynValue,
    precision: Precision,
) -> ort::Result<(Vec<usize>, Vec<f32>)> {
    let (shape, data) = match precision {
        Precision::Fp32 => {
            let (shape, data) = value.try_extract_tensor::<f32>()?;
            (shape.to_vec(), data.to_vec())
        }
        Precision::Fp16 => {
            let (shape, data) = value.try_extract_tensor::<f16>()?;
            (shape.to_vec(), data.iter().map(|v| v.to_f32()).collect())
        }
    };
    Ok((shape.iter().map(|&d| d.max(0) as usize).collect(), data))
}
