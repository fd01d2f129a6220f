//! The model contract (models/README.md): what gendr needs to know about a
//! model, read from its ONNX signature and metadata. This is the one place
//! that decides whether a model fits and how it must be tiled.

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

use crate::limits;
use crate::tiling::TileGeometry;
use crate::{Error, Result};

/// Tensor element type of the model's input and output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Fp32,
    Fp16,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
        }
    }
}

/// Everything about a model that tiling and inference depend on.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub input_name: String,
    pub output_name: String,
    pub precision: Precision,
    /// Output pixels per input pixel; 0 when the model does not say, until
    /// [`crate::engine::Engine::load`] has found it by a probe run.
    pub scale: usize,
    /// A fixed batch size, when the model has one.
    pub fixed_batch: Option<usize>,
    /// A fixed input width and height, when the model has them.
    pub fixed_size: Option<(usize, usize)>,
    pub tile_multiple: usize,
    pub preferred_tile: usize,
    pub min_overlap: usize,
    /// The model reflect-pads its own input edges (`gendr.border = reflect`),
    /// so tiles need no added context at the frame's edges.
    pub pads_edges: bool,
    pub name: Option<String>,
    pub license: Option<String>,
}

pub const DEFAULT_TILE: usize = 256;
pub const DEFAULT_MIN_OVERLAP: usize = 8;
/// The largest scale a model may have: beyond it, a frame's output
/// outgrows any video format.
pub const MAX_SCALE: usize = 16;
/// The largest `gendr.tile_multiple`: an alignment, not a size.
pub const MAX_TILE_MULTIPLE: usize = 512;

fn contract(path: &Path, reason: impl Into<String>) -> Error {
    Error::ModelContract {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn tensor_signature(
    path: &Path,
    what: &str,
    ty: &ValueType,
) -> Result<(TensorElementType, Vec<i64>)> {
    match ty {
        ValueType::Tensor { ty, shape, .. } => Ok((*ty, shape.iter().copied().collect())),
        other => Err(contract(
            path,
            format!("its {what} is a {other:?}, not a tensor"),
        )),
    }
}

fn known(dim: i64) -> Option<usize> {
    (dim > 0).then_some(dim as usize)
}

impl ModelInfo {
    /// Reads and checks a loaded session's signature and `gendr.*` metadata.
    pub fn inspect(path: &Path, session: &Session) -> Result<Self> {
        let inputs = session.inputs();
        if inputs.len() != 1 {
            return Err(contract(
                path,
                format!(
                    "it has {} inputs; exactly one N×3×H×W image is expected",
                    inputs.len()
                ),
            ));
        }
        let Some(output) = session.outputs().first() else {
            return Err(contract(path, "it has no outputs"));
        };
        let (in_ty, in_shape) = tensor_signature(path, "input", inputs[0].dtype())?;
        let (out_ty, out_shape) = tensor_signature(path, "output", output.dtype())?;
        let precision = match in_ty {
            TensorElementType::Float32 => Precision::Fp32,
            TensorElementType::Float16 => Precision::Fp16,
            other => {
                return Err(contract(
                    path,
                    format!("its input is {other:?}; float32 or float16 is expected"),
                ))
            }
        };
        if out_ty != in_ty {
            return Err(contract(
                path,
                format!("its output is {out_ty:?} but its input is {in_ty:?}"),
            ));
        }
        for (what, shape) in [("input", &in_shape), ("output", &out_shape)] {
            if shape.len() != 4 {
                return Err(contract(
                    path,
                    format!(
                        "its {what} has rank {} ({shape:?}); N×3×H×W is expected",
                        shape.len()
                    ),
                ));
            }
            if let Some(c) = known(shape[1]).filter(|&c| c != 3) {
                return Err(contract(
                    path,
                    format!("its {what} has {c} channels; 3 (RGB) are expected"),
                ));
            }
        }
        let meta = session
            .metadata()
            .map_err(|e| contract(path, format!("unreadable metadata: {e}")))?;
        // Every number a model file gives is bounded before anything is
        // sized by it: a model file must never abort the process.
        let count = |key: &str, least: usize, most: usize| -> Result<Option<usize>> {
            match meta.custom(key) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (least..=most).contains(n))
                    .map(Some)
                    .ok_or_else(|| {
                        contract(
                            path,
                            format!(
                                "metadata {key}={v:?} is not an integer from {least} to {most}"
                            ),
                        )
                    }),
            }
        };
        let max_tile = *limits::TILE_SIZE.end() as usize;
        let max_batch = *limits::BATCH_SIZE.end() as usize;
        if let Some(n) = known(in_shape[0]).filter(|&n| n > max_batch) {
            return Err(contract(
                path,
                format!("its fixed batch of {n} exceeds {max_batch}"),
            ));
        }
        let fixed_size = match (known(in_shape[3]), known(in_shape[2])) {
            (Some(w), Some(h)) if w > max_tile || h > max_tile => {
                return Err(contract(
                    path,
                    format!("its fixed {w}x{h} input exceeds {max_tile} pixels per edge"),
                ))
            }
            (Some(w), Some(h)) => Some((w, h)),
            (None, None) => None,
            _ => {
                return Err(contract(
                    path,
                    "its input fixes only one of height and width",
                ))
            }
        };
        let static_scale = match (fixed_size, known(out_shape[3]), known(out_shape[2])) {
            (Some((w, h)), Some(ow), Some(oh)) => {
                if ow % w != 0 || oh % h != 0 || ow / w != oh / h {
                    return Err(contract(
                        path,
                        format!("output {ow}x{oh} is not an integer multiple of input {w}x{h}"),
                    ));
                }
                Some(ow / w).filter(|&s| s <= MAX_SCALE).ok_or_else(|| {
                    contract(
                        path,
                        format!(
                            "its output is {}x its input; at most {MAX_SCALE} is supported",
                            ow / w
                        ),
                    )
                })?;
                Some(ow / w)
            }
            _ => None,
        };
        let declared_scale = count("gendr.scale", 1, MAX_SCALE)?;
        let scale = declared_scale.or(static_scale).unwrap_or(0);
        if let (Some(a), Some(b)) = (declared_scale, static_scale) {
            if a != b {
                return Err(contract(
                    path,
                    format!("metadata says scale {a} but its shapes say {b}"),
                ));
            }
        }
        let pads_edges = match meta.custom("gendr.border").as_deref().map(str::trim) {
            None => false,
            Some("reflect") => true,
            Some(other) => {
                return Err(contract(
                    path,
                    format!("metadata gendr.border={other:?} is not \"reflect\""),
                ))
            }
        };
        Ok(ModelInfo {
            path: path.to_path_buf(),
            input_name: inputs[0].name().to_string(),
            output_name: output.name().to_string(),
            precision,
            scale,
            fixed_batch: known(in_shape[0]),
            fixed_size,
            tile_multiple: count("gendr.tile_multiple", 1, MAX_TILE_MULTIPLE)?.unwrap_or(1),
            preferred_tile: count("gendr.tile_size", 1, max_tile)?.unwrap_or(DEFAULT_TILE),
            min_overlap: count("gendr.min_overlap", 0, *limits::TILE_OVERLAP.end() as usize)?
                .unwrap_or(DEFAULT_MIN_OVERLAP),
            pads_edges,
            name: meta.custom("gendr.name"),
            license: meta.custom("gendr.license"),
        })
    }

    /// The tile geometry for the user's request (0 = the model's preference),
    /// snapped to what the model needs. Returns the geometry and a note of
    /// each adjustment made, for the caller to log.
    pub fn geometry(&self, tile: usize, overlap: usize) -> Result<(TileGeometry, Vec<String>)> {
        let scale = self.scale;
        let mut notes = Vec::new();
        let overlap_used = if overlap < self.min_overlap {
            notes.push(format!(
                "tile-overlap raised from {overlap} to the model's minimum {}",
                self.min_overlap
            ));
            self.min_overlap
        } else {
            overlap
        };
        if let Some((w, h)) = self.fixed_size {
            if tile != 0 && (tile != w || tile != h) {
                notes.push(format!(
                    "tile-size {tile} replaced by the model's fixed {w}x{h}"
                ));
            }
            return TileGeometry::fixed(w, h, overlap_used, scale).map(|g| (self.edges(g), notes));
        }
        let requested = if tile == 0 { self.preferred_tile } else { tile };
        let geometry = self.edges(TileGeometry::new(
            requested,
            overlap_used,
            self.tile_multiple,
            scale,
        )?);
        if geometry.tile_width != requested {
            notes.push(format!(
                "tile-size {requested} snapped to {} (a multiple of {})",
                geometry.tile_width, self.tile_multiple
            ));
        }
        Ok((geometry, notes))
    }

    fn edges(&self, geometry: TileGeometry) -> TileGeometry {
        if self.pads_edges {
            geometry.model_pads_edges()
        } else {
            geometry
        }
    }
}
