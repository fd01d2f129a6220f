//! Finding and loading OpenVINO's C library (`libopenvino_c`), the way
//! [`crate::runtime`] finds ONNX Runtime: at run time, from the PyPI wheel
//! `make openvino-runtime` installs, so a missing runtime is one line, not a
//! link failure. The CPU plugin is found by OpenVINO itself beside it.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::checkout;

/// Set to a `libopenvino_c.so*` file, it is the only one tried.
pub const LIBRARY_ENV: &str = "GENDR_OPENVINO_LIB";

/// Where the wheel keeps its libraries, below a checkout.
const PROJECT_DIR: &str = ".deps/openvino/openvino/libs";

/// The library's file name up to its version suffix (the wheel ships only
/// `libopenvino_c.so.<version>`, so the version stays in the requirements
/// file alone).
const LIBRARY_PREFIX: &str = "libopenvino_c.so";

/// Where the library is looked for, in order: `GENDR_OPENVINO_LIB`, then
/// `.deps/openvino` of each checkout [`checkout::roots`] gives.
pub fn candidates() -> Vec<PathBuf> {
    if let Some(path) = std::env::var_os(LIBRARY_ENV) {
        return vec![PathBuf::from(path)];
    }
    let mut out = Vec::new();
    for root in checkout::roots() {
        let dir = root.join(PROJECT_DIR);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            if !out.contains(&dir) {
                out.push(dir);
            }
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(LIBRARY_PREFIX))
            })
            .collect();
        found.sort();
        for path in found {
            if !out.contains(&path) {
                out.push(path);
            }
        }
    }
    out
}

static LOADED: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Loads the library once per process and returns its path, or the one
/// line that says why it cannot be had and how to install it.
pub fn load() -> Result<&'static PathBuf, String> {
    LOADED
        .get_or_init(|| {
            let searched = candidates();
            let Some(path) = searched.iter().find(|p| p.is_file()) else {
                let list: Vec<String> = searched.iter().map(|p| p.display().to_string()).collect();
                return Err(format!(
                    "the OpenVINO runtime was not found (looked in: {}); run `make openvino-runtime` or set {LIBRARY_ENV} to libopenvino_c.so",
                    list.join(", ")
                ));
            };
            openvino_sys::library::load_from(path)
                .map(|()| {
                    tracing::debug!(library = %path.display(), "OpenVINO loaded");
                    path.clone()
                })
                .map_err(|e| format!("the OpenVINO library {} could not be loaded: {e}", path.display()))
        })
        .as_ref()
        .map_err(Clone::clone)
}
