//! Finding and loading the ONNX Runtime shared library.
//!
//! ort is built with `load-dynamic`: the library is found at run time, so a
//! missing runtime is an error message, not a link failure or a panic.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

use crate::locate::{self, Library};
use crate::{Error, Result};

/// The ONNX Runtime release gendr is built and tested against; the one
/// place it is written is the checkout's `ORT_VERSION` (the Makefile and the
/// GPU scripts read it too).
pub const ORT_VERSION: &str = include_str!("../ORT_VERSION");
pub(crate) const LIBRARY: &str = concat!("libonnxruntime.so.", include_str!("../ORT_VERSION"));

/// ONNX Runtime as [`locate::library`] looks for it: `ORT_DYLIB_PATH`, the
/// user's data folder, the package's private folder, then the checkout's
/// `.deps` (the GPU build first: it also runs on CPU).
pub const ONNX_RUNTIME: Library<'static> = Library {
    file: LIBRARY,
    env_var: "ORT_DYLIB_PATH",
    checkout_dirs: &[
        ".deps/ort-gpu/onnxruntime/capi",
        ".deps/ort-cpu/onnxruntime/capi",
    ],
};

/// Where the library is looked for, in order.
pub fn candidates() -> Vec<PathBuf> {
    locate::library(&ONNX_RUNTIME)
        .into_iter()
        .map(|c| c.path)
        .collect()
}

static ENVIRONMENT: OnceLock<std::result::Result<(PathBuf, Environment), Error>> = OnceLock::new();

/// Loads ONNX Runtime once per process and returns its environment.
pub fn environment() -> Result<&'static Environment> {
    match ENVIRONMENT.get_or_init(load) {
        Ok((_, env)) => Ok(env),
        Err(e) => Err(clone_error(e)),
    }
}

/// The library file that was loaded, once [`environment`] succeeded.
pub fn loaded_library() -> Option<&'static Path> {
    ENVIRONMENT
        .get()
        .and_then(|r| r.as_ref().ok())
        .map(|(p, _)| p.as_path())
}

fn load() -> Result<(PathBuf, Environment)> {
    let searched = candidates();
    let path = searched
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| Error::RuntimeMissing {
            searched: searched
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let load_error = |reason: String| Error::RuntimeLoad {
        path: path.clone(),
        reason,
    };
    let builder = ort::init_from(&path).map_err(|e| load_error(e.to_string()))?;
    let env = builder
        .with_name("gendr")
        .build()
        .map_err(|e| load_error(e.to_string()))?;
    tracing::debug!(library = %path.display(), "ONNX Runtime loaded");
    Ok((path, env))
}

fn clone_error(e: &Error) -> Error {
    match e {
        Error::RuntimeMissing { searched } => Error::RuntimeMissing {
            searched: searched.clone(),
        },
        Error::RuntimeLoad { path, reason } => Error::RuntimeLoad {
            path: path.clone(),
            reason: reason.clone(),
        },
        other => Error::RuntimeLoad {
            path: PathBuf::new(),
            reason: other.to_string(),
        },
    }
}
