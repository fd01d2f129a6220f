//! The OpenVINO backend of [`crate::engine::Engine`]: one compiled model and
//! one inference request per worker, on the CPU, in fp32 or bf16.
//!
//! The model is compiled once with its dynamic height and width (measured
//! here: 50–110 ms for the committed presets, and no faster per shape when
//! compiled static), so no per-shape models or on-disk cache are kept.

use half::f16;
use openvino::{
    CompiledModel, Core, DeviceType, ElementType, InferRequest, PropertyKey, RwPropertyKey, Shape,
    Tensor,
};

use crate::engine::ComputePrecision;
use crate::error::first_line;
use crate::model::{ModelInfo, Precision};
use crate::{openvino_runtime, Error, Result};

/// What OpenVINO says about this machine's CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuInfo {
    pub name: String,
    /// OpenVINO runs bf16 kernels here (the CPU has AVX-512 BF16 or AMX).
    pub bf16: bool,
}

fn unavailable(reason: impl std::fmt::Display) -> Error {
    Error::ProviderUnavailable {
        provider: "openvino".into(),
        reason: reason.to_string(),
    }
}

fn runtime_error(e: openvino::InferenceError) -> Error {
    Error::Inference(format!("OpenVINO: {}", first_line(e)))
}

fn new_core() -> Result<Core> {
    openvino_runtime::load().map_err(unavailable)?;
    Core::new().map_err(unavailable)
}

/// The CPU's name and whether OpenVINO runs bf16 on it (its
/// `OPTIMIZATION_CAPABILITIES` list `BF16` where the CPU reports
/// `avx512_bf16` or `amx_bf16`).
pub fn cpu_info() -> Result<CpuInfo> {
    cpu_info_of(&new_core()?)
}

fn cpu_info_of(core: &Core) -> Result<CpuInfo> {
    let name = core
        .get_property(&DeviceType::CPU, &PropertyKey::DeviceFullName)
        .map_err(unavailable)?;
    let capabilities = core
        .get_property(&DeviceType::CPU, &PropertyKey::DeviceCapabilities)
        .map_err(unavailable)?;
    let bf16 = capabilities.split_whitespace().any(|c| c == "BF16");
    Ok(CpuInfo { name, bf16 })
}

/// A compiled model with its inference request. Fields drop in order: the
/// request before the model before the core.
pub(crate) struct Session {
    request: InferRequest,
    _compiled: CompiledModel,
    _core: Core,
    /// The last input tensor, kept for the next run of the same shape.
    input: Option<([usize; 4], Tensor)>,
    element: Precision,
}

impl Session {
    /// Compiles `info`'s model for the CPU. `precision` must be decided
    /// (not `Auto`); bf16 where the CPU lacks it is refused.
    pub(crate) fn load(
        info: &ModelInfo,
        threads: usize,
        precision: ComputePrecision,
    ) -> Result<(Session, ComputePrecision, CpuInfo)> {
        let mut core = new_core()?;
        let cpu = cpu_info_of(&core)?;
        let precision = match precision {
            ComputePrecision::Auto if cpu.bf16 => ComputePrecision::Bf16,
            ComputePrecision::Auto => ComputePrecision::Fp32,
            ComputePrecision::Bf16 if !cpu.bf16 => {
                return Err(unavailable(format!(
                    "this CPU ({}) has no bf16 support (neither AVX-512 BF16 nor AMX); use precision fp32 or auto",
                    cpu.name
                )))
            }
            chosen => chosen,
        };
        let hint = match precision {
            ComputePrecision::Bf16 => "bf16",
            _ => "f32",
        };
        let mut properties = vec![
            (RwPropertyKey::HintInferencePrecision, hint.to_string()),
            // One request at a time per worker: all threads on that one.
            (RwPropertyKey::HintPerformanceMode, "LATENCY".to_string()),
        ];
        if threads > 0 {
            properties.push((RwPropertyKey::InferenceNumThreads, threads.to_string()));
        }
        for (key, value) in &properties {
            core.set_property(&DeviceType::CPU, key, value)
                .map_err(unavailable)?;
        }
        let path = info.path.to_string_lossy();
        let load_error = |e: openvino::InferenceError| Error::ModelLoad {
            path: info.path.clone(),
            reason: format!("OpenVINO: {}", first_line(e)),
        };
        let model = core.read_model_from_file(&path, "").map_err(load_error)?;
        let started = std::time::Instant::now();
        let mut compiled = core
            .compile_model(&model, DeviceType::CPU)
            .map_err(load_error)?;
        tracing::debug!(compile = ?started.elapsed(), %precision, "OpenVINO model compiled");
        let request = compiled.create_infer_request().map_err(load_error)?;
        Ok((
            Session {
                request,
                _compiled: compiled,
                _core: core,
                input: None,
                element: info.precision,
            },
            precision,
            cpu,
        ))
    }

    /// Runs one batch and returns the output's shape and values as f32.
    pub(crate) fn run(
        &mut self,
        input: &[f32],
        shape: [usize; 4],
    ) -> Result<(Vec<usize>, Vec<f32>)> {
        let tensor = match &mut self.input {
            Some((kept, tensor)) if *kept == shape => tensor,
            slot => {
                let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
                let element = match self.element {
                    Precision::Fp32 => ElementType::F32,
                    Precision::Fp16 => ElementType::F16,
                };
                let tensor = Tensor::new(element, &Shape::new(&dims).map_err(runtime_error)?)
                    .map_err(runtime_error)?;
                &mut slot.insert((shape, tensor)).1
            }
        };
        match self.element {
            Precision::Fp32 => tensor
                .get_data_mut::<f32>()
                .map_err(runtime_error)?
                .copy_from_slice(input),
            Precision::Fp16 => {
                let dst = tensor.get_data_mut::<f16>().map_err(runtime_error)?;
                for (d, &v) in dst.iter_mut().zip(input) {
                    *d = f16::from_f32(v);
                }
            }
        }
        self.request
            .set_input_tensor(tensor)
            .map_err(runtime_error)?;
        self.request.infer().map_err(runtime_error)?;
        let output = self.request.get_output_tensor().map_err(runtime_error)?;
        let dims = output
            .get_shape()
            .map_err(runtime_error)?
            .get_dimensions()
            .iter()
            .map(|&d| d.max(0) as usize)
            .collect();
        let data = match output.get_element_type().map_err(runtime_error)? {
            ElementType::F32 => output.get_data::<f32>().map_err(runtime_error)?.to_vec(),
            ElementType::F16 => output
                .get_data::<f16>()
                .map_err(runtime_error)?
                .iter()
                .map(|v| v.to_f32())
                .collect(),
            other => {
                return Err(Error::Inference(format!(
                    "OpenVINO gave a {other:?} output; float32 or float16 is expected"
                )))
            }
        };
        Ok((dims, data))
    }
}
