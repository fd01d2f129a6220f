use std::path::PathBuf;

/// Everything that can go wrong in the core library. Each variant renders as
/// one line that names the cause and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("ONNX Runtime library not found (looked in: {searched}); reinstall the gendr package, run `make build` in a checkout, or set ORT_DYLIB_PATH to libonnxruntime.so")]
    RuntimeMissing { searched: String },
    #[error("ONNX Runtime library {path} could not be loaded: {reason}")]
    RuntimeLoad { path: PathBuf, reason: String },
    #[error("model file {0} does not exist (and is not a preset name; `gendr models` lists them)")]
    ModelNotFound(PathBuf),
    #[error("model {path} could not be loaded: {reason}")]
    ModelLoad { path: PathBuf, reason: String },
    #[error(
        "{path} has sha256 {actual}, not the {expected} that make models gives; not installed"
    )]
    ModelSum {
        path: PathBuf,
        actual: String,
        expected: String,
    },
    #[error("model {path} does not keep the gendr model contract: {reason}")]
    ModelContract { path: PathBuf, reason: String },
    #[error("execution provider {provider} is not available: {reason}")]
    ProviderUnavailable { provider: String, reason: String },
    #[error("inference failed: {0}")]
    Inference(String),
    /// ONNX Runtime's own error; its message can span lines, the first names the cause.
    #[error("inference failed: {}", first_line(.0))]
    Runtime(#[source] ort::Error),
    /// A stage of the frame pipeline died; nothing more comes out of it.
    #[error("the frame pipeline's {stage} stage failed: {reason}")]
    StageFailed { stage: &'static str, reason: String },
    #[error("invalid size: {0}")]
    InvalidSize(String),
    #[error("invalid frame: {0}")]
    InvalidFrame(String),
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
    #[error("the frame pipeline has shut down")]
    PipelineClosed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// The first line of a runtime's message: ONNX Runtime's and OpenVINO's can
/// span lines, and the first names the cause.
pub(crate) fn first_line(e: impl std::fmt::Display) -> String {
    let text = e.to_string();
    text.lines()
        .next()
        .unwrap_or("unknown error")
        .trim()
        .to_string()
}
