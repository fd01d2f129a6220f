//! Temporal stabilisation of per-frame super-resolution.
//!
//! A per-frame model invents detail anew in every frame, so static texture
//! shimmers. This stage estimates motion on the cheap low-resolution input
//! (pyramid block matching on luma), carries the model's last `memory`
//! outputs along that motion to the current frame, and averages them with
//! the current output wherever the motion is trustworthy: where the
//! motion-compensated previous *input* agrees with the current input.
//! Uncovered regions, fast motion the search cannot follow and scene cuts
//! fail that check and take the current output as it is.
//!
//! It is causal and has finite memory: the output at frame t depends only on
//! the inputs and model outputs of frames t−memory..t, never on its own past
//! outputs, so a segment that first feeds the `memory` frames before it
//! produces exactly what one long run produces. Colour and bit depth do not
//! matter here: it works on the stitched planar RGB in [0, 1].
//!
//! For the generative presets each model output is first made consistent
//! with its input (one step of back-projection): what the output loses on
//! the way down to the input's size is replaced by the input's own, so the
//! low band follows the input and only the invented detail is the model's.
//! The frame after a cut is shown as the model made it, and the
//! back-projection comes back over the next `memory` frames.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

use crate::frame::RgbImage;
use crate::resize::bicubic_signed;
use crate::{Error, Result};

/// Whether a run uses the stage: `Auto` takes the preset's measured choice
/// (`temporal` in models/presets.json; off for a model file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TemporalMode {
    #[default]
    Auto,
    On,
    Off,
}

impl TemporalMode {
    /// Whether `model` (a preset name or a file) runs with the stage.
    pub fn enabled_for(self, model: &str) -> bool {
        match self {
            TemporalMode::On => true,
            TemporalMode::Off => false,
            TemporalMode::Auto => crate::presets::find(model).is_some_and(|p| p.temporal),
        }
    }
}

impl fmt::Display for TemporalMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TemporalMode::Auto => "auto",
            TemporalMode::On => "on",
            TemporalMode::Off => "off",
        })
    }
}

impl FromStr for TemporalMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(TemporalMode::Auto),
            "on" => Ok(TemporalMode::On),
            "off" => Ok(TemporalMode::Off),
            other => Err(Error::InvalidSetting(format!(
                "unknown temporal mode {other:?}; use auto, on or off"
            ))),
        }
    }
}

/// How the stage blends; [`Default`] is the whole-frame blend that
/// [`TemporalConfig::generative`] and [`TemporalConfig::detail_only`] start
/// from, and [`TemporalConfig::for_model`] picks per model (measured in
/// docs/temporal.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TemporalConfig {
    /// Earlier model outputs averaged in (K): the stage remembers this many frames.
    pub memory: usize,
    /// Weight of each earlier output against the current one's 1, where trusted.
    pub weight: f32,
    /// Input mismatch (mean over 3×3, luma in [0, 1]) at or below which a
    /// compensated pixel is fully trusted…
    pub trust_below: f32,
    /// …and at or above which it is not trusted at all.
    pub distrust_above: f32,
    /// A frame whose mean trust falls below this is a cut: memory restarts.
    pub cut_below: f32,
    /// Block edge in low-resolution pixels for motion estimation.
    pub block: usize,
    /// Search radius in pixels at the coarsest pyramid level.
    pub search: i32,
    /// How much of the blend's change below the input's resolution is kept
    /// (its low band: the mean over each input pixel's cell, bilinearly
    /// spread): 1 averages the whole frame, 0 only the detail above the
    /// input's resolution, so that coarse structure and tone stay the
    /// current output's and only the detail the model invents is steadied.
    pub low_band: f32,
    /// The fraction of an output pixel the motion is resolved to: 1 moves
    /// the earlier outputs by whole output pixels (no resampling), 2 or 4
    /// by halves or quarters (sampled bilinearly where they are blended).
    pub subpixel: i32,
    /// Whether each model output is first made consistent with its input
    /// before it is blended or remembered: output + up(input − down(output)),
    /// with `down` the antialiased bicubic shrink ([`crate::resize`]) and
    /// `up` the bicubic enlargement, so that its low band is the input's.
    pub back_project: bool,
    /// How far the detail of pixels with less trusted history than the
    /// stage carries is taken back toward the input's bicubic enlargement:
    /// it is scaled by (w / w_full)^this, with w = 1 + Σ weight·trust over
    /// the carried frames there and w_full = 1 + weight·(frames carried).
    /// A generative model's detail is invented anew each frame; where
    /// nothing earlier lines up with the picture (motion the blocks cannot
    /// follow, uncovered ground) the blend cannot steady it, and it boils.
    /// 0 keeps it whole.
    pub unsteadied_detail: f32,
    /// Where set, the earlier frames are carried along a vector per pixel
    /// instead of per block: bilinear between the blocks' centres, so that
    /// motion that is not one block's (turning, zooming, a face) is
    /// followed, and none at all on a low-resolution pixel where standing
    /// still matches the current input with the previous one (mean
    /// |difference| over 3×3, luma in [0, 1]) within this margin of that
    /// vector. Still texture must stay unmoved: reading it at a fraction of
    /// a pixel blurs its detail anew each frame, and it shimmers.
    pub pixel_motion: Option<f32>,
    /// Where set (N), `anchor_share` of the earlier frames' weight leaves
    /// the even average over the last `memory` and goes to two anchors: the
    /// first frames of the last two runs of N frame numbers, crossfaded from
    /// the older to the newer as the current number runs through its N. An
    /// even average of redrawn texture flattens it (natural-image scores
    /// such as NIQE count that against it); a crossfade of two whole frames
    /// changes just as slowly but keeps most of it. The output then depends
    /// on the last 2N − 1 frame numbers ([`TemporalConfig::reach`]).
    pub anchors: Option<usize>,
    /// The share of the earlier frames' weight that the anchors take.
    pub anchor_share: f32,
}

impl Default for TemporalConfig {
    fn default() -> Self {
        TemporalConfig {
            memory: 4,
            weight: 1.0,
            trust_below: 1.0 / 255.0,
            distrust_above: 3.0 / 255.0,
            cut_below: 0.2,
            block: 8,
            search: 4,
            low_band: 1.0,
            subpixel: 4,
            back_project: false,
            unsteadied_detail: 0.0,
            pixel_motion: None,
            anchors: None,
            anchor_share: 0.0,
        }
    }
}

impl TemporalConfig {
    /// Only the detail above the input's resolution is averaged, and only
    /// where the input agrees within half a level (0 beyond 1.5): for a
    /// PSNR-oriented model, whose coarse structure is accurate and which
    /// outputs slightly misaligned frames would only blur. Whole-output-pixel
    /// motion: the quarter-pixel warp gained such a model 0.2–0.5 % flicker
    /// for a fifth more of the stage's time where the motion is fractional,
    /// and the stage's cost matters most for the fast models served here.
    pub fn detail_only() -> TemporalConfig {
        TemporalConfig {
            trust_below: 0.5 / 255.0,
            distrust_above: 1.5 / 255.0,
            low_band: 0.0,
            subpixel: 1,
            ..TemporalConfig::default()
        }
    }

    /// For a generative model, whose low band wobbles and strays from the
    /// input's: each output is back-projected onto its input first, and
    /// then only the detail above the input's resolution is averaged, where
    /// the input agrees within 2 levels (0 beyond 6). The looser trust is
    /// affordable because the low band no longer comes from the earlier
    /// frames; the motion stays at a quarter output pixel.
    pub fn generative() -> TemporalConfig {
        TemporalConfig {
            trust_below: 2.0 / 255.0,
            distrust_above: 6.0 / 255.0,
            low_band: 0.0,
            back_project: true,
            ..TemporalConfig::default()
        }
    }

    /// How many frames before the current one its output depends on (a
    /// segment decodes at least these first).
    pub fn reach(&self) -> usize {
        self.memory
            .max(self.anchor_spacing().map_or(0, |n| 2 * n - 1))
    }

    /// How many frame numbers each anchor's run holds, where the anchors
    /// are set and take a share.
    pub fn anchor_spacing(&self) -> Option<usize> {
        self.anchors.filter(|&n| n > 0 && self.anchor_share > 0.0)
    }

    /// What was measured best for `model` (a preset name or a file): the
    /// generative setting for the presets whose `auto` runs the stage (the
    /// generative ones, which invent detail anew each frame), with the
    /// preset's own trust where it has one, and the detail-only one for
    /// every other model.
    pub fn for_model(model: &str) -> TemporalConfig {
        match crate::presets::find(model).filter(|p| p.temporal) {
            Some(preset) => {
                let mut config = TemporalConfig::generative();
                if let Some([full, none]) = preset.temporal_trust {
                    config.trust_below = full / 255.0;
                    config.distrust_above = none / 255.0;
                }
                if let Some(power) = preset.temporal_unsteadied {
                    config.unsteadied_detail = power;
                }
                if let Some(margin) = preset.temporal_still_margin {
                    config.pixel_motion = Some(margin / 255.0);
                }
                if let Some(memory) = preset.temporal_memory {
                    config.memory = memory;
                }
                if let Some((spacing, share)) = preset.temporal_anchors {
                    config.anchors = Some(spacing);
                    config.anchor_share = share;
                }
                config
            }
            None => TemporalConfig::detail_only(),
        }
    }
}

/// One low-resolution luma plane (BT.601 weights, [0, 1]).
#[derive(Debug, Clone, PartialEq)]
pub struct Luma {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl Luma {
    pub fn from_rgb(img: &RgbImage) -> Luma {
        let (r, g, b) = (img.plane(0), img.plane(1), img.plane(2));
        Luma {
            width: img.width,
            height: img.height,
            data: (0..r.len())
                .map(|i| 0.299 * r[i] + 0.587 * g[i] + 0.114 * b[i])
                .collect(),
        }
    }

    fn at(&self, x: isize, y: isize) -> f32 {
        let x = x.clamp(0, self.width as isize - 1) as usize;
        let y = y.clamp(0, self.height as isize - 1) as usize;
        self.data[y * self.width + x]
    }

    /// Bilinear sample at (x, y) + (dx, dy) / `unit`, edges repeated.
    fn sample(&self, x: usize, y: usize, v: (i32, i32), unit: i32) -> f32 {
        let (fx, fy) = (x as i32 * unit + v.0, y as i32 * unit + v.1);
        let (ix, iy) = (fx.div_euclid(unit) as isize, fy.div_euclid(unit) as isize);
        let (rx, ry) = (fx.rem_euclid(unit), fy.rem_euclid(unit));
        let row = |y: isize| {
            if rx == 0 {
                self.at(ix, y) * unit as f32
            } else {
                self.at(ix, y) * (unit - rx) as f32 + self.at(ix + 1, y) * rx as f32
            }
        };
        if ry == 0 {
            return row(iy) / unit as f32;
        }
        (row(iy) * (unit - ry) as f32 + row(iy + 1) * ry as f32) / (unit * unit) as f32
    }

    /// [`Luma::sample`] where (x, y) + (dx, dy) / `unit` is not
    /// [`Luma::outside`]: then every pixel it reads is inside (one at the
    /// last column or row has no fraction there), so the edge clamps go.
    fn sample_inside(&self, x: usize, y: usize, v: (i32, i32), unit: i32) -> f32 {
        let (fx, fy) = (x as i32 * unit + v.0, y as i32 * unit + v.1);
        let (ix, iy) = ((fx / unit) as usize, (fy / unit) as usize);
        let (rx, ry) = (fx % unit, fy % unit);
        let row = |y: usize| {
            let at = y * self.width + ix;
            if rx == 0 {
                self.data[at] * unit as f32
            } else {
                self.data[at] * (unit - rx) as f32 + self.data[at + 1] * rx as f32
            }
        };
        if ry == 0 {
            return row(iy) / unit as f32;
        }
        (row(iy) * (unit - ry) as f32 + row(iy + 1) * ry as f32) / (unit * unit) as f32
    }

    /// Whether (x, y) + (dx, dy) / `unit` lies outside the frame.
    fn outside(&self, x: usize, y: usize, v: (i32, i32), unit: i32) -> bool {
        let (fx, fy) = (x as i32 * unit + v.0, y as i32 * unit + v.1);
        fx < 0
            || fy < 0
            || fx > (self.width as i32 - 1) * unit
            || fy > (self.height as i32 - 1) * unit
    }

    /// Half the size, each pixel the mean of a 2×2 block (edges repeated).
    fn halved(&self) -> Luma {
        let (w, h) = (self.width.div_ceil(2), self.height.div_ceil(2));
        let mut data = Vec::with_capacity(w * h);
        for y in 0..h as isize {
            for x in 0..w as isize {
                let (sx, sy) = (2 * x, 2 * y);
                data.push(
                    0.25 * (self.at(sx, sy)
                        + self.at(sx + 1, sy)
                        + self.at(sx, sy + 1)
                        + self.at(sx + 1, sy + 1)),
                );
            }
        }
        Luma {
            width: w,
            height: h,
            data,
        }
    }
}

/// Per-block motion: for each `block`×`block` block of the current frame,
/// the offset (dx, dy) at which it is found in the previous frame, in
/// 1/`unit` of a low-resolution pixel (one output pixel when `unit` is the
/// model's scale).
#[derive(Debug, Clone, PartialEq)]
pub struct MotionField {
    pub block: usize,
    pub unit: i32,
    pub columns: usize,
    pub rows: usize,
    pub vectors: Vec<(i32, i32)>,
}

impl MotionField {
    /// The vector of the block holding low-resolution pixel (x, y).
    pub fn at(&self, x: usize, y: usize) -> (i32, i32) {
        self.vectors[(y / self.block).min(self.rows - 1) * self.columns
            + (x / self.block).min(self.columns - 1)]
    }

    /// The vector at pixel (x, y) of a plane whose blocks are `edge`
    /// pixels wide (`block` at the input's resolution, `block`·scale at
    /// the output's): bilinear between the blocks' centres, the outer
    /// blocks' own beyond them, rounded to the field's unit.
    pub fn smoothed(&self, x: usize, y: usize, edge: usize) -> (i32, i32) {
        self.between(
            between_centres(x, edge, self.columns),
            between_centres(y, edge, self.rows),
        )
    }

    /// [`MotionField::smoothed`] where the column's and the row's place
    /// between the blocks' centres ([`between_centres`]) are known.
    fn between(&self, column: (usize, usize, f32), row: (usize, usize, f32)) -> (i32, i32) {
        let ((x0, x1, tx), (y0, y1, ty)) = (column, row);
        let vector = |bx: usize, by: usize| {
            let (vx, vy) = self.vectors[by * self.columns + bx];
            (vx as f32, vy as f32)
        };
        let lerp =
            |a: (f32, f32), b: (f32, f32), t: f32| (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
        let top = lerp(vector(x0, y0), vector(x1, y0), tx);
        let bottom = lerp(vector(x0, y1), vector(x1, y1), tx);
        let (vx, vy) = lerp(top, bottom, ty);
        (vx.round() as i32, vy.round() as i32)
    }
}

/// Motion per pixel ([`TemporalConfig::pixel_motion`]): the vector of each
/// low-resolution pixel and of each output pixel, in the field's unit
/// (1/(scale·subpixel) of an input pixel, 1/subpixel of an output pixel).
struct PixelMotion {
    low: Vec<(i32, i32)>,
    output: Vec<(i32, i32)>,
}

impl PixelMotion {
    fn new(
        motion: &MotionField,
        previous: &Luma,
        current: &Luma,
        scale: usize,
        still_margin: f32,
        workers: usize,
    ) -> PixelMotion {
        let (w, h) = (current.width, current.height);
        let smooth: Vec<(i32, i32)> = (0..w * h)
            .map(|i| motion.smoothed(i % w, i / w, motion.block))
            .collect();
        let standing: Vec<f32> = current
            .data
            .iter()
            .zip(&previous.data)
            .map(|(c, p)| (c - p).abs())
            .collect();
        let moving: Vec<f32> = smooth
            .iter()
            .enumerate()
            .map(|(i, &v)| (current.data[i] - previous.sample(i % w, i / w, v, motion.unit)).abs())
            .collect();
        let still: Vec<bool> = mean_3x3(&standing, w, h)
            .iter()
            .zip(mean_3x3(&moving, w, h))
            .map(|(&standing, moving)| standing <= moving + still_margin)
            .collect();
        let low = smooth
            .iter()
            .zip(&still)
            .map(|(&v, &still)| if still { (0, 0) } else { v })
            .collect();
        // Each output column's and row's place between the blocks' centres,
        // worked out once rather than for every pixel.
        let (ow, oh, edge) = (w * scale, h * scale, motion.block * scale);
        let columns: Vec<_> = (0..ow)
            .map(|x| between_centres(x, edge, motion.columns))
            .collect();
        let rows: Vec<_> = (0..oh)
            .map(|y| between_centres(y, edge, motion.rows))
            .collect();
        let output = grid_map(ow, oh, workers, |x, y| {
            if still[(y / scale) * w + x / scale] {
                (0, 0)
            } else {
                motion.between(columns[x], rows[y])
            }
        });
        PixelMotion { low, output }
    }
}

/// `f` of every (x, y) of a `columns`×`rows` grid, row by row, the rows
/// spread over `workers` threads in bands.
fn grid_map<T: Send>(
    columns: usize,
    rows: usize,
    workers: usize,
    f: impl Fn(usize, usize) -> T + Sync,
) -> Vec<T> {
    let band = rows.div_ceil(workers.max(1)).max(1);
    let cells = |first: usize| {
        let f = &f;
        (first..(first + band).min(rows)).flat_map(move |y| (0..columns).map(move |x| f(x, y)))
    };
    if band >= rows {
        return cells(0).collect();
    }
    std::thread::scope(|scope| {
        let bands: Vec<_> = (0..rows)
            .step_by(band)
            .map(|first| scope.spawn(move || cells(first).collect::<Vec<T>>()))
            .collect();
        bands
            .into_iter()
            .flat_map(|band| band.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// How far a finer pyramid level searches around each candidate: a coarse
/// vector is off by up to a pixel there, and aliasing can add one more.
const REFINE: i32 = 2;

/// Sum of absolute differences between the block at (bx, by) of `current`
/// and the same block offset by `v` / `unit` in `previous`.
fn block_sad(
    current: &Luma,
    previous: &Luma,
    block: usize,
    bx: usize,
    by: usize,
    v: (i32, i32),
    unit: i32,
) -> f32 {
    let (x0, y0) = (bx * block, by * block);
    let (x1, y1) = (
        (x0 + block).min(current.width),
        (y0 + block).min(current.height),
    );
    // Offsets split into whole pixels and a remainder: the bilinear weights
    // are the same for every pixel of the block.
    let (dx, rx) = (
        v.0.div_euclid(unit) as isize,
        v.0.rem_euclid(unit) as f32 / unit as f32,
    );
    let (dy, ry) = (
        v.1.div_euclid(unit) as isize,
        v.1.rem_euclid(unit) as f32 / unit as f32,
    );
    let inside = x0 as isize + dx >= 0
        && y0 as isize + dy >= 0
        && x1 as isize + dx < previous.width as isize
        && y1 as isize + dy < previous.height as isize;
    let mut sad = 0.0;
    for y in y0..y1 {
        let row = &current.data[y * current.width + x0..y * current.width + x1];
        if inside {
            // Straight from memory: the block and its right and lower
            // neighbours lie inside the previous frame.
            let at = (y as isize + dy) as usize * previous.width + (x0 as isize + dx) as usize;
            let (top, bottom) = (&previous.data[at..], &previous.data[at + previous.width..]);
            if rx == 0.0 && ry == 0.0 {
                // A whole-pixel offset (every vector the search tries): the
                // interpolation below would add exact zeros.
                for (&value, &earlier) in row.iter().zip(top) {
                    sad += (value - earlier).abs();
                }
                continue;
            }
            for (i, &value) in row.iter().enumerate() {
                let upper = top[i] + rx * (top[i + 1] - top[i]);
                let lower = bottom[i] + rx * (bottom[i + 1] - bottom[i]);
                sad += (value - (upper + ry * (lower - upper))).abs();
            }
        } else {
            for (x, &value) in (x0..x1).zip(row) {
                sad += (value - previous.sample(x, y, v, unit)).abs();
            }
        }
    }
    sad
}

/// Block matching over a pyramid: a full search of ±`search` at the coarsest
/// level, then ±[`REFINE`] around twice the parent block's vector and ±1
/// around twice its neighbours' and around zero, at each finer one. The
/// zero vector wins ties within a small margin, so that noise on static
/// content does not invent motion. The whole-pixel vectors are then refined
/// to 1/`unit` of a pixel, halving the step each time.
pub fn estimate_motion(
    previous: &Luma,
    current: &Luma,
    block: usize,
    search: i32,
    unit: i32,
    workers: usize,
) -> MotionField {
    assert_eq!(
        (previous.width, previous.height),
        (current.width, current.height),
        "sizes differ"
    );
    let mut pyramid = vec![(previous.clone(), current.clone())];
    while pyramid.len() < 4 {
        let (p, c) = pyramid.last().expect("not empty");
        if c.width < 4 * block || c.height < 4 * block {
            break;
        }
        let next = (p.halved(), c.halved());
        pyramid.push(next);
    }
    let mut field: Option<MotionField> = None;
    for (level, (p, c)) in pyramid.iter().enumerate().rev() {
        let (columns, rows) = (c.width.div_ceil(block), c.height.div_ceil(block));
        let parent = field.as_ref();
        let vectors = grid_map(columns, rows, workers, |bx, by| {
            // The neighbours' vectors rescue blocks at the frame's edge,
            // and standing still is always looked at.
            let mut candidates = Vec::new();
            let mut around = |(cx, cy): (i32, i32), radius: i32| {
                for dy in -radius..=radius {
                    for dx in -radius..=radius {
                        candidates.push((cx + dx, cy + dy));
                    }
                }
            };
            match parent {
                Some(parent) => {
                    around((0, 0), 1);
                    for oy in -1..=1 {
                        for ox in -1..=1 {
                            let px = (bx / 2) as isize + ox;
                            let py = (by / 2) as isize + oy;
                            if px < 0
                                || py < 0
                                || px >= parent.columns as isize
                                || py >= parent.rows as isize
                            {
                                continue;
                            }
                            let (vx, vy) =
                                parent.vectors[py as usize * parent.columns + px as usize];
                            // The block's own parent gets the wider look.
                            let own = ox == 0 && oy == 0;
                            around((2 * vx, 2 * vy), if own { REFINE } else { 1 });
                        }
                    }
                }
                None => around((0, 0), search),
            }
            candidates.sort_unstable();
            candidates.dedup();
            let zero = block_sad(c, p, block, bx, by, (0, 0), 1);
            let (mut best, mut best_sad) = ((0, 0), zero);
            for v in candidates {
                let sad = block_sad(c, p, block, bx, by, v, 1);
                if sad < best_sad {
                    (best, best_sad) = (v, sad);
                }
            }
            if level == 0 {
                best = refine(c, p, block, bx, by, best, zero, unit);
            }
            best
        });
        field = Some(MotionField {
            block,
            unit: if level == 0 { unit } else { 1 },
            columns,
            rows,
            vectors,
        });
    }
    field.expect("at least one level")
}

/// A whole-pixel vector refined to 1/`unit` pixel, or zero where moving
/// does not beat standing still (`zero_sad`) by more than noise.
#[allow(clippy::too_many_arguments)]
fn refine(
    current: &Luma,
    previous: &Luma,
    block: usize,
    bx: usize,
    by: usize,
    whole: (i32, i32),
    zero_sad: f32,
    unit: i32,
) -> (i32, i32) {
    let mut best = (whole.0 * unit, whole.1 * unit);
    let mut best_sad = block_sad(current, previous, block, bx, by, best, unit);
    let mut step = unit / 2;
    while step >= 1 {
        let centre = best;
        for dy in -1..=1 {
            for dx in -1..=1 {
                let v = (centre.0 + dx * step, centre.1 + dy * step);
                let sad = block_sad(current, previous, block, bx, by, v, unit);
                if sad < best_sad {
                    (best, best_sad) = (v, sad);
                }
            }
        }
        step /= 2;
    }
    let pixels = (block * block) as f32;
    if zero_sad <= best_sad + 0.5 / 255.0 * pixels {
        return (0, 0);
    }
    best
}

/// Per low-resolution pixel, how far `previous` compensated by `motion`
/// can be trusted to stand for `current`: 1 where they agree within
/// `trust_below` (mean over 3×3), 0 beyond `distrust_above`, linear between;
/// 0 where the compensated pixel comes from outside the frame.
pub fn trust_map(
    previous: &Luma,
    current: &Luma,
    motion: &MotionField,
    config: &TemporalConfig,
) -> Vec<f32> {
    let (w, h) = (current.width, current.height);
    let offsets: Vec<Option<(i32, i32)>> =
        (0..w * h).map(|i| Some(motion.at(i % w, i / w))).collect();
    agreement(earlier_at(previous, &offsets, motion.unit), current, config)
}

/// `earlier` sampled where each of its low-resolution pixels finds its
/// content there (`offsets`, in 1/`unit` pixel); None where that is
/// unknown or outside the frame.
fn earlier_at(earlier: &Luma, offsets: &[Option<(i32, i32)>], unit: i32) -> Vec<Option<f32>> {
    let w = earlier.width;
    offsets
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let (x, y, v) = (i % w, i / w, (*v)?);
            (!earlier.outside(x, y, v, unit)).then(|| earlier.sample_inside(x, y, v, unit))
        })
        .collect()
}

/// 1 where `compensated` agrees with `current` within `trust_below` (mean
/// over 3×3), 0 beyond `distrust_above` and where it is missing, linear between.
fn agreement(compensated: Vec<Option<f32>>, current: &Luma, config: &TemporalConfig) -> Vec<f32> {
    let mismatch: Vec<f32> = compensated
        .iter()
        .zip(&current.data)
        .map(|(c, v)| c.map_or(0.0, |c| (v - c).abs()))
        .collect();
    let span = (config.distrust_above - config.trust_below).max(f32::EPSILON);
    mean_3x3(&mismatch, current.width, current.height)
        .into_iter()
        .zip(&compensated)
        .map(|(mean, c)| match c {
            Some(_) => ((config.distrust_above - mean) / span).clamp(0.0, 1.0),
            None => 0.0,
        })
        .collect()
}

/// Each pixel's mean over the 3×3 around it (fewer at the edges).
fn mean_3x3(plane: &[f32], w: usize, h: usize) -> Vec<f32> {
    let mut means = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let (mut sum, mut n) = (0.0, 0.0);
            if x > 0 && y > 0 && x + 1 < w && y + 1 < h {
                // Away from the edges: the same nine in the same order.
                for ny in y - 1..y + 2 {
                    let row = &plane[ny * w + x - 1..ny * w + x + 2];
                    sum += row[0];
                    sum += row[1];
                    sum += row[2];
                }
                n = 9.0;
            } else {
                for ny in y.saturating_sub(1)..(y + 2).min(h) {
                    for nx in x.saturating_sub(1)..(x + 2).min(w) {
                        sum += plane[ny * w + nx];
                        n += 1.0;
                    }
                }
            }
            means[y * w + x] = sum / n;
        }
    }
    means
}

/// Where an output pixel of an earlier frame finds its content in that
/// frame's own output: x and y in 1/`subpixel` of an output pixel.
type Position = (i32, i32);

/// An earlier model output carried along the motion to the latest frame.
/// The output itself stays as the model made it; `positions` say, per
/// output pixel of the latest frame, where its content sits in it, so that
/// moving it costs one map instead of three planes, and a fractional
/// position is resampled once, not again at every step. `offsets` are the
/// same per low-resolution pixel (in 1/(scale·subpixel) input pixels; None
/// once it came from outside the frame), for `input`, that frame's own
/// input; `trust` is how far each low-resolution pixel is trusted now.
struct Carried {
    number: u64,
    image: RgbImage,
    positions: Vec<Position>,
    input: Luma,
    offsets: Vec<Option<(i32, i32)>>,
    trust: Vec<f32>,
}

impl Carried {
    /// The current frame's output, as the newest earlier one for the next frame.
    fn fresh(number: u64, image: RgbImage, input: Luma, subpixel: i32) -> Carried {
        let pixels = input.width * input.height;
        Carried {
            number,
            positions: unmoved(image.width, image.height, subpixel),
            image,
            input,
            offsets: vec![Some((0, 0)); pixels],
            trust: vec![1.0; pixels],
        }
    }
}

/// Each output pixel of a `width`×`height` output at its own place.
fn unmoved(width: usize, height: usize, subpixel: i32) -> Vec<Position> {
    (0..height as i32)
        .flat_map(|y| (0..width as i32).map(move |x| (x * subpixel, y * subpixel)))
        .collect()
}

/// What a frame's stream must keep for the stage to go on from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StreamKey {
    input: (usize, usize),
    output: (usize, usize),
}

/// The stage's memory of one stream: feed it every frame in order.
pub struct Stabilizer {
    config: TemporalConfig,
    key: Option<StreamKey>,
    previous: Option<Luma>,
    carried: VecDeque<Carried>,
    /// Maps the size of an output, for moving the carried ones' positions
    /// (one for each thread that moves some).
    spares: Vec<Vec<Position>>,
    /// The threads a frame's work is spread over: the cores this process may use.
    workers: usize,
    /// Frames that restarted the memory since the stream began (cuts included).
    restarts: u64,
    /// Frames since the last cut, while fewer than `memory`.
    since_cut: Option<usize>,
    /// The number [`Stabilizer::process`] gives the next frame.
    next_number: u64,
}

impl Stabilizer {
    pub fn new(config: TemporalConfig) -> Stabilizer {
        Stabilizer {
            config,
            key: None,
            previous: None,
            carried: VecDeque::new(),
            spares: Vec::new(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            restarts: 0,
            since_cut: None,
            next_number: 0,
        }
    }

    /// Forgets the past: the next frame comes out as the model made it
    /// (back-projected, where the setting asks).
    pub fn reset(&mut self) {
        self.key = None;
        self.previous = None;
        self.carried.clear();
        self.since_cut = None;
    }

    /// How many frames began the memory anew: the first, and each cut or
    /// reset after it.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Takes the next frame's low-resolution input (the model's input, RGB
    /// in [0, 1]) and the model's output for it, and returns the stabilised
    /// output (same size). Frames are numbered one after the other.
    pub fn process(&mut self, input: &RgbImage, output: RgbImage) -> RgbImage {
        self.process_numbered(self.next_number, input, output)
    }

    /// [`Stabilizer::process`] for the frame numbered `number` in its
    /// stream (its timestamp in frame durations), which places the anchors
    /// ([`TemporalConfig::anchors`]): numbered so, a run started anywhere
    /// gives each frame what a run from the start gives it.
    pub fn process_numbered(
        &mut self,
        number: u64,
        input: &RgbImage,
        output: RgbImage,
    ) -> RgbImage {
        self.next_number = number.saturating_add(1);
        let low = Luma::from_rgb(input);
        let key = StreamKey {
            input: (low.width, low.height),
            output: (output.width, output.height),
        };
        let same_stream = self.key == Some(key);
        let scale = output.width / low.width.max(1);
        let subpixel = self.config.subpixel.max(1);
        let usable = scale >= 1
            && output.width == low.width * scale
            && output.height == low.height * scale
            && self.config.memory > 0;
        let motion = match (&self.previous, same_stream && usable) {
            (Some(previous), true) => {
                let motion = estimate_motion(
                    previous,
                    &low,
                    self.config.block,
                    self.config.search,
                    scale as i32 * subpixel,
                    self.workers,
                );
                let trust = trust_map(previous, &low, &motion, &self.config);
                let mean = trust.iter().sum::<f32>() / trust.len() as f32;
                Some((mean >= self.config.cut_below).then_some(motion))
            }
            _ => None,
        };
        // A cut: the stream goes on, but nothing of its past can be trusted.
        let cut = matches!(motion, Some(None));
        self.since_cut = match (cut, same_stream) {
            (true, _) => Some(0),
            (false, true) => self
                .since_cut
                .map(|n| n + 1)
                .filter(|&n| n < self.config.memory),
            (false, false) => None,
        };
        let (output, remembered) = self.consistent(output, input);
        let Some(Some(motion)) = motion else {
            self.carried.clear();
            self.restarts += 1;
            self.key = Some(key);
            if usable {
                let remembered = remembered.unwrap_or_else(|| output.clone());
                self.carried
                    .push_front(Carried::fresh(number, remembered, low.clone(), subpixel));
            }
            self.previous = Some(low);
            return output;
        };
        let pixel_motion = match (self.config.pixel_motion, &self.previous) {
            (Some(margin), Some(previous)) => Some(PixelMotion::new(
                &motion,
                previous,
                &low,
                scale,
                margin,
                self.workers,
            )),
            _ => None,
        };
        let config = &self.config;
        let carry_each = |frames: &mut [Carried], spare: &mut Vec<Position>| {
            for carried in frames {
                match &pixel_motion {
                    Some(field) => {
                        carry_per_pixel(carried, field, motion.unit, scale, subpixel, spare)
                    }
                    None => carry(carried, &motion, scale, subpixel, spare),
                }
                let compensated = earlier_at(&carried.input, &carried.offsets, motion.unit);
                carried.trust = agreement(compensated, &low, config);
            }
        };
        // Each carried frame moves on its own: spread them over the cores,
        // one spare map each.
        let frames = self.carried.make_contiguous();
        let per_worker = frames.len().div_ceil(self.workers).max(1);
        let chunks = frames.len().div_ceil(per_worker);
        self.spares.resize_with(chunks.max(1), Vec::new);
        match chunks {
            0 | 1 => carry_each(frames, &mut self.spares[0]),
            _ => std::thread::scope(|scope| {
                for (frames, spare) in frames.chunks_mut(per_worker).zip(&mut self.spares) {
                    scope.spawn(|| carry_each(frames, spare));
                }
            }),
        }
        let weights = self.carried_weights(number);
        let mut blended = blend(
            &output,
            &self.carried,
            &weights,
            scale,
            &self.config,
            self.workers,
        );
        if self.config.unsteadied_detail > 0.0 {
            let power = self.config.unsteadied_detail;
            temper_unsteadied(&mut blended, input, &self.carried, &weights, scale, power);
        }
        let remembered = remembered.unwrap_or(output);
        self.carried
            .push_front(Carried::fresh(number, remembered, low.clone(), subpixel));
        self.forget(number);
        self.previous = Some(low);
        blended
    }

    /// The anchors' run of frame numbers for `number`, where they are set.
    fn run_of(&self, number: u64) -> Option<u64> {
        let spacing = self.config.anchor_spacing()? as u64;
        Some(number / spacing)
    }

    /// Which carried frame is the first (the oldest carried) of `run`.
    fn first_of_run(&self, run: u64) -> Option<usize> {
        self.carried
            .iter()
            .rposition(|c| self.run_of(c.number) == Some(run))
    }

    /// Each carried frame's weight where it is fully trusted, for the frame
    /// numbered `number`: `weight` each over the last `memory`, less the
    /// anchors' share, which two anchors take ([`TemporalConfig::anchors`]).
    fn carried_weights(&self, number: u64) -> Vec<f32> {
        let (weight, memory) = (self.config.weight, self.config.memory);
        let Some(spacing) = self.config.anchor_spacing().map(|n| n as u64) else {
            return vec![weight; self.carried.len()];
        };
        let run = number / spacing;
        let newer_share = (number % spacing) as f32 / spacing as f32;
        let anchored = self.config.anchor_share * memory as f32;
        let even = 1.0 - self.config.anchor_share;
        let newer = self.first_of_run(run);
        let older = run.checked_sub(1).and_then(|r| self.first_of_run(r));
        (0..self.carried.len())
            .map(|k| {
                let mut share = if k < memory { even } else { 0.0 };
                if Some(k) == older {
                    share += anchored * (1.0 - newer_share);
                }
                if Some(k) == newer {
                    share += anchored * newer_share;
                }
                weight * share
            })
            .collect()
    }

    /// Drops what the frames after `number` will not blend: all but the
    /// last `memory`, and the anchors of its run and the one before.
    fn forget(&mut self, number: u64) {
        let memory = self.config.memory;
        let Some(run) = self.run_of(number) else {
            self.carried.truncate(memory);
            return;
        };
        let keep = [Some(run), run.checked_sub(1)].map(|r| r.and_then(|r| self.first_of_run(r)));
        let mut k = 0;
        self.carried.retain(|_| {
            k += 1;
            k <= memory || keep.contains(&Some(k - 1))
        });
    }

    /// The output to show and, where it differs, the one to remember, back-
    /// projected onto `input` when the setting asks. Every frame is
    /// remembered fully back-projected; the frame after a cut is shown as
    /// the model made it (nothing of the old shot and nothing of the stage
    /// in it), and the back-projection comes back over the next `memory`
    /// frames, so that the shown frames depend on no more than those.
    fn consistent(&self, output: RgbImage, input: &RgbImage) -> (RgbImage, Option<RgbImage>) {
        if !self.config.back_project {
            return (output, None);
        }
        let share = self
            .since_cut
            .map_or(1.0, |n| n as f32 / self.config.memory as f32);
        if share >= 1.0 {
            return (back_projected(output, input), None);
        }
        let consistent = back_projected(output.clone(), input);
        let mut shown = output;
        for (s, &c) in shown.data.iter_mut().zip(&consistent.data) {
            *s += share * (c - *s);
        }
        (shown, Some(consistent))
    }
}

/// `carried` moved along `motion` (in 1/`subpixel` output pixels) into the
/// current frame: where its low-resolution pixels and its output pixels now
/// come from in its own frame. The new positions are written into `spare`
/// (every one of them), which then holds the map they replaced.
fn carry(
    carried: &mut Carried,
    motion: &MotionField,
    scale: usize,
    subpixel: i32,
    spare: &mut Vec<Position>,
) {
    let (w, h) = (carried.input.width, carried.input.height);
    carry_offsets(carried, motion.unit, |i| motion.at(i % w, i / w));
    // Each block's rows take the positions a whole number of output pixels
    // away, plus the vector's fraction (none where the frame's edge, which
    // is repeated where it runs out, is taken instead).
    let (ow, oh) = (w * scale, h * scale);
    let edge = motion.block * scale;
    spare.resize(ow * oh, (0, 0));
    let src = &carried.positions;
    for by in 0..motion.rows {
        for bx in 0..motion.columns {
            let (dx, dy) = motion.vectors[by * motion.columns + bx];
            let (wx, rx) = (dx.div_euclid(subpixel) as isize, dx.rem_euclid(subpixel));
            let (x0, x1) = (bx * edge, ((bx + 1) * edge).min(ow));
            let (sx0, sx1) = (x0 as isize + wx, x1 as isize + wx);
            for y in by * edge..((by + 1) * edge).min(oh) {
                let (sy, ry) = output_step(y, dy, oh, subpixel);
                let (from, to) = (
                    &src[sy * ow..(sy + 1) * ow],
                    &mut spare[y * ow..(y + 1) * ow],
                );
                if sx0 >= 0 && sx1 <= ow as isize {
                    let (from, to) = (&from[sx0 as usize..sx1 as usize], &mut to[x0..x1]);
                    if (rx, ry) == (0, 0) {
                        to.copy_from_slice(from);
                    } else {
                        for (t, &(px, py)) in to.iter_mut().zip(from) {
                            *t = (px + rx, py + ry);
                        }
                    }
                } else {
                    for (x, t) in (x0..x1).zip(&mut to[x0..x1]) {
                        let (sx, rx) = output_step(x, dx, ow, subpixel);
                        let (px, py) = from[sx];
                        *t = (px + rx, py + ry);
                    }
                }
            }
        }
    }
    std::mem::swap(&mut carried.positions, spare);
}

/// `carried`'s offsets moved along `vector_of` (each low-resolution pixel's
/// vector by its index, in 1/`unit` pixel): each pixel takes those of the
/// pixel nearest to where it came from, plus its vector; None from outside.
fn carry_offsets(carried: &mut Carried, unit: i32, vector_of: impl Fn(usize) -> (i32, i32)) {
    let (w, h) = (carried.input.width, carried.input.height);
    carried.offsets = (0..w * h)
        .map(|i| {
            let (dx, dy) = vector_of(i);
            let sx = ((i % w) as i32 * unit + dx + unit / 2).div_euclid(unit);
            let sy = ((i / w) as i32 * unit + dy + unit / 2).div_euclid(unit);
            let inside = sx >= 0 && sy >= 0 && (sx as usize) < w && (sy as usize) < h;
            inside
                .then(|| carried.offsets[sy as usize * w + sx as usize])
                .flatten()
                .map(|(ox, oy)| (ox + dx, oy + dy))
        })
        .collect();
}

/// Output pixel `at` (of `n` along its axis) moved by `v` (in 1/`subpixel`
/// output pixels): the whole pixel it lands on and the fraction left, or
/// the frame's edge, repeated, and no fraction where it lands outside.
fn output_step(at: usize, v: i32, n: usize, subpixel: i32) -> (usize, i32) {
    let to = at as i32 + v.div_euclid(subpixel);
    if to < 0 || to >= n as i32 {
        (to.clamp(0, n as i32 - 1) as usize, 0)
    } else {
        (to as usize, v.rem_euclid(subpixel))
    }
}

/// [`carry`] along a vector per pixel ([`PixelMotion`]) instead of per block.
fn carry_per_pixel(
    carried: &mut Carried,
    field: &PixelMotion,
    unit: i32,
    scale: usize,
    subpixel: i32,
    spare: &mut Vec<Position>,
) {
    let (w, h) = (carried.input.width, carried.input.height);
    carry_offsets(carried, unit, |i| field.low[i]);
    let (ow, oh) = (w * scale, h * scale);
    spare.clear();
    spare.extend(field.output.iter().enumerate().map(|(i, &(dx, dy))| {
        let ((sx, rx), (sy, ry)) = (
            output_step(i % ow, dx, ow, subpixel),
            output_step(i / ow, dy, oh, subpixel),
        );
        let (px, py) = carried.positions[sy * ow + sx];
        (px + rx, py + ry)
    }));
    std::mem::swap(&mut carried.positions, spare);
}

/// Output row `y` of `carried` at its positions, three planes one after
/// the other: read where the position is a whole pixel, sampled
/// bilinearly (edges repeated) where it is not.
fn earlier_row(carried: &Carried, y: usize, subpixel: i32, row: &mut [f32]) {
    let image = &carried.image;
    let (ow, oh, plane) = (image.width, image.height, image.width * image.height);
    let positions = &carried.positions[y * ow..(y + 1) * ow];
    let scale = subpixel as f32;
    for (x, &(px, py)) in positions.iter().enumerate() {
        let (ix, fx) = (px.div_euclid(subpixel), px.rem_euclid(subpixel));
        let (iy, fy) = (py.div_euclid(subpixel), py.rem_euclid(subpixel));
        let column = |i: i32| i.clamp(0, ow as i32 - 1) as usize;
        let line = |i: i32| i.clamp(0, oh as i32 - 1) as usize * ow;
        let (x0, x1) = (column(ix), column(ix + 1));
        let (y0, y1) = (line(iy), line(iy + 1));
        let (tx, ty) = (fx as f32 / scale, fy as f32 / scale);
        for ch in 0..3 {
            let data = &image.data[ch * plane..(ch + 1) * plane];
            row[ch * ow + x] = if (fx, fy) == (0, 0) {
                data[y0 + x0]
            } else {
                let top = data[y0 + x0] + tx * (data[y0 + x1] - data[y0 + x0]);
                let bottom = data[y1 + x0] + tx * (data[y1 + x1] - data[y1 + x0]);
                top + ty * (bottom - top)
            };
        }
    }
}

/// One output row's positions at whole pixels as runs of neighbours (blocks
/// move whole): (first x, the index of its content in a plane, length).
fn whole_pixel_runs(positions: &[Position], width: usize, runs: &mut Vec<(usize, usize, usize)>) {
    runs.clear();
    let mut x = 0;
    while x < positions.len() {
        let (px, py) = positions[x];
        let length = 1 + positions[x + 1..]
            .iter()
            .zip(1..)
            .take_while(|&(&p, k)| p == (px + k, py))
            .count();
        runs.push((x, py as usize * width + px as usize, length));
        x += length;
    }
}

/// The current output averaged with the carried ones, each weighted by
/// `weight` times its trust, less `1 − low_band` of that change's low band.
///
/// Row by row and one earlier frame at a time, so that the inner loops run
/// over plain slices; each pixel still sums `current + Σ k·earlier` in the
/// carried order and divides once, as the test's pixel-by-pixel version does.
fn blend(
    current: &RgbImage,
    carried: &VecDeque<Carried>,
    weights_of: &[f32],
    scale: usize,
    config: &TemporalConfig,
    workers: usize,
) -> RgbImage {
    let (ow, oh) = (current.width, current.height);
    let plane = ow * oh;
    let mut out = current.clone();
    let mut touched = vec![false; plane];
    // Bands of whole input rows, one a thread: each pixel's sum is the
    // same wherever the band ends.
    let low_rows = oh / scale;
    let band = low_rows.div_ceil(workers.max(1)).max(1) * scale * ow;
    let (red, rest) = out.data.split_at_mut(plane);
    let (green, blue) = rest.split_at_mut(plane);
    let bands = red
        .chunks_mut(band)
        .zip(green.chunks_mut(band))
        .zip(blue.chunks_mut(band))
        .zip(touched.chunks_mut(band))
        .enumerate();
    let blend_one = |i: usize, planes: [&mut [f32]; 3], touched: &mut [bool]| {
        let first = i * band / (scale * ow);
        let rows = first..first + touched.len() / (scale * ow);
        blend_band(
            current, carried, weights_of, scale, config, rows, planes, touched,
        );
    };
    if band >= plane {
        for (i, (((r, g), b), t)) in bands {
            blend_one(i, [r, g, b], t);
        }
    } else {
        std::thread::scope(|scope| {
            for (i, (((r, g), b), t)) in bands {
                scope.spawn(move || blend_one(i, [r, g, b], t));
            }
        });
    }
    drop_low_band(&mut out, current, &touched, scale, config.low_band);
    out
}

/// [`blend`]'s input rows `low_rows`: `out` holds their output rows of
/// each plane and `touched` their flags, both starting at the band's
/// first row.
#[allow(clippy::too_many_arguments)]
fn blend_band(
    current: &RgbImage,
    carried: &VecDeque<Carried>,
    weights_of: &[f32],
    scale: usize,
    config: &TemporalConfig,
    low_rows: std::ops::Range<usize>,
    mut out: [&mut [f32]; 3],
    touched: &mut [bool],
) {
    let (ow, oh) = (current.width, current.height);
    let (w, plane) = (ow / scale, ow * oh);
    let band_start = low_rows.start * scale * ow;
    // Per output pixel of one row of input pixels: each earlier frame's
    // weight and the total, the same across the `scale` rows it covers.
    let mut weights = vec![0f32; carried.len() * ow];
    let mut totals = vec![0f32; ow];
    // At whole pixels, where each earlier frame's row comes from, read
    // straight from it; otherwise that row resampled, its planes in turn.
    let subpixel = config.subpixel.max(1);
    let mut runs = vec![Vec::new(); carried.len()];
    let mut earlier = vec![
        0f32;
        if subpixel == 1 {
            0
        } else {
            carried.len() * 3 * ow
        }
    ];
    for low_y in low_rows {
        let low_row = low_y * w;
        for x in 0..ow {
            let low = low_row + x / scale;
            let mut sum = 0.0;
            for (k, c) in carried.iter().enumerate() {
                let weight = weights_of[k] * c.trust[low];
                weights[k * ow + x] = weight;
                sum += weight;
            }
            totals[x] = 1.0 + sum;
        }
        for y in low_y * scale..(low_y + 1) * scale {
            let row = y * ow..(y + 1) * ow;
            let local = row.start - band_start..row.end - band_start;
            for (flag, &total) in touched[local.clone()].iter_mut().zip(&totals) {
                *flag = total > 1.0;
            }
            if subpixel == 1 {
                for (c, runs) in carried.iter().zip(&mut runs) {
                    whole_pixel_runs(&c.positions[row.clone()], ow, runs);
                }
            } else {
                for (c, rows) in carried.iter().zip(earlier.chunks_exact_mut(3 * ow)) {
                    earlier_row(c, y, subpixel, rows);
                }
            }
            for (ch, out) in out.iter_mut().enumerate() {
                let at = ch * plane + row.start..ch * plane + row.end;
                let sum = &mut out[local.clone()];
                for (k, c) in carried.iter().enumerate() {
                    let weight = &weights[k * ow..(k + 1) * ow];
                    if subpixel == 1 {
                        let data = c.image.plane(ch);
                        for &(x, from, length) in &runs[k] {
                            let (sum, weight) = (&mut sum[x..x + length], &weight[x..x + length]);
                            for ((s, &k), &e) in sum.iter_mut().zip(weight).zip(&data[from..]) {
                                *s += k * e;
                            }
                        }
                        continue;
                    }
                    let earlier = &earlier[(3 * k + ch) * ow..(3 * k + ch + 1) * ow];
                    for ((s, &k), &e) in sum.iter_mut().zip(weight).zip(earlier) {
                        *s += k * e;
                    }
                }
                for ((s, &total), &c) in sum.iter_mut().zip(&totals).zip(&current.data[at]) {
                    *s = if total > 1.0 { *s / total } else { c };
                }
            }
        }
    }
}

/// Scales the detail of `out` above `input`'s bicubic enlargement by
/// (w / w_full)^`unsteadied_detail` per input pixel (see
/// [`TemporalConfig::unsteadied_detail`]), the carried frames weighing
/// `weights`: whole where every carried frame was trusted, least where
/// none was.
fn temper_unsteadied(
    out: &mut RgbImage,
    input: &RgbImage,
    carried: &VecDeque<Carried>,
    weights: &[f32],
    scale: usize,
    power: f32,
) {
    let (ow, oh) = (out.width, out.height);
    let w = ow / scale;
    let full = 1.0 + weights.iter().sum::<f32>();
    let gains: Vec<f32> = (0..w * (oh / scale))
        .map(|low| {
            let history: f32 = carried
                .iter()
                .zip(weights)
                .map(|(c, k)| k * c.trust[low])
                .sum();
            ((1.0 + history) / full).powf(power)
        })
        .collect();
    let up = crate::resize::bicubic(input, ow, oh);
    for (plane, base) in out
        .data
        .chunks_exact_mut(ow * oh)
        .zip(up.data.chunks_exact(ow * oh))
    {
        for (y, (row, base)) in plane
            .chunks_exact_mut(ow)
            .zip(base.chunks_exact(ow))
            .enumerate()
        {
            let gains = &gains[(y / scale) * w..(y / scale + 1) * w];
            for (x, (o, &b)) in row.iter_mut().zip(base).enumerate() {
                *o = b + gains[x / scale] * (*o - b);
            }
        }
    }
}

/// `output` made consistent with `input`: output + up(input − down(output)),
/// with [`bicubic_signed`] both ways, clamped to [0, 1]. What the output
/// holds above the input's resolution stays; what the input's resolution
/// can hold becomes the input's, as far as one step gets it there.
fn back_projected(mut output: RgbImage, input: &RgbImage) -> RgbImage {
    let (ow, oh) = (output.width, output.height);
    let mut residual = bicubic_signed(&output, input.width, input.height);
    for (r, &i) in residual.data.iter_mut().zip(&input.data) {
        *r = i - *r;
    }
    let correction = bicubic_signed(&residual, ow, oh);
    for (o, c) in output.data.iter_mut().zip(&correction.data) {
        *o = (*o + c).clamp(0.0, 1.0);
    }
    output
}

/// Takes all but `keep` of the low band (see [`low_band`]) out of the
/// change the blend made to `current`, on the `touched` pixels: the coarse
/// structure and tone stay the current output's.
fn drop_low_band(
    out: &mut RgbImage,
    current: &RgbImage,
    touched: &[bool],
    scale: usize,
    keep: f32,
) {
    if keep >= 1.0 {
        return;
    }
    let (ow, oh) = (current.width, current.height);
    let plane = ow * oh;
    for ch in 0..3 {
        let range = ch * plane..(ch + 1) * plane;
        let change: Vec<f32> = out.data[range.clone()]
            .iter()
            .zip(&current.data[range.clone()])
            .map(|(o, c)| o - c)
            .collect();
        let low = low_band(&change, ow, oh, scale);
        for (i, o) in out.data[range].iter_mut().enumerate() {
            if touched[i] {
                *o -= (1.0 - keep) * low[i];
            }
        }
    }
}

/// Where pixel `i` falls between the centres of `n` cells `edge` pixels
/// wide: the cell at or before it, the next one and the next one's weight
/// (the outer cells' own beyond their centres).
fn between_centres(i: usize, edge: usize, n: usize) -> (usize, usize, f32) {
    let at = (i as f32 + 0.5) / edge as f32 - 0.5;
    let first = at.floor().max(0.0) as usize;
    let t = if at < 0.0 || first + 1 >= n {
        0.0
    } else {
        at - first as f32
    };
    (first.min(n - 1), (first + 1).min(n - 1), t)
}

/// The part of an output-sized plane that the input's resolution can hold:
/// the mean over each `scale`×`scale` cell, spread back bilinearly between
/// the cells' centres (edges repeated).
fn low_band(plane: &[f32], ow: usize, oh: usize, scale: usize) -> Vec<f32> {
    let (w, h) = (ow / scale, oh / scale);
    let mut cells = vec![0f32; w * h];
    for y in 0..oh {
        let row = &plane[y * ow..(y + 1) * ow];
        let cell_row = &mut cells[(y / scale) * w..(y / scale + 1) * w];
        for (cell, chunk) in cell_row.iter_mut().zip(row.chunks_exact(scale)) {
            *cell += chunk.iter().sum::<f32>();
        }
    }
    let area = (scale * scale) as f32;
    cells.iter_mut().for_each(|c| *c /= area);
    let columns: Vec<(usize, usize, f32)> = (0..ow).map(|x| between_centres(x, scale, w)).collect();
    let mut low = vec![0f32; ow * oh];
    for y in 0..oh {
        let (y0, y1, ty) = between_centres(y, scale, h);
        let (upper, lower) = (&cells[y0 * w..(y0 + 1) * w], &cells[y1 * w..(y1 + 1) * w]);
        for (x, &(x0, x1, tx)) in columns.iter().enumerate() {
            let top = upper[x0] + tx * (upper[x1] - upper[x0]);
            let bottom = lower[x0] + tx * (lower[x1] - lower[x0]);
            low[y * ow + x] = top + ty * (bottom - top);
        }
    }
    low
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic textured luma plane, shifted by (dx, dy): pixel
    /// (x, y) shows what (x + dx, y + dy) of the unshifted texture shows.
    fn texture(w: usize, h: usize, dx: i32, dy: i32) -> Luma {
        let value = |x: i32, y: i32| {
            let hash = (x.wrapping_mul(73856093) ^ y.wrapping_mul(19349663)) as u32;
            let noise = (hash.wrapping_mul(2654435761) >> 24) as f32 / 255.0;
            0.5 + 0.2 * ((x as f32 * 0.21).sin() * (y as f32 * 0.17).cos())
                + 0.1 * (x as f32 * 0.9 + y as f32 * 0.4).sin()
                + 0.1 * (noise - 0.5)
        };
        let mut data = Vec::with_capacity(w * h);
        for y in 0..h as i32 {
            for x in 0..w as i32 {
                data.push(value(x + dx, y + dy));
            }
        }
        Luma {
            width: w,
            height: h,
            data,
        }
    }

    /// `luma` with every level turned over: a frame a cut leads to.
    fn negative(luma: &Luma) -> Luma {
        Luma {
            data: luma.data.iter().map(|v| 1.0 - v).collect(),
            ..luma.clone()
        }
    }

    fn grey_rgb(luma: &Luma) -> RgbImage {
        let mut img = RgbImage::new(luma.width, luma.height);
        for c in 0..3 {
            img.plane_mut(c).copy_from_slice(&luma.data);
        }
        img
    }

    /// Nearest-neighbour ×`s` of a luma plane as grey RGB plus `noise(frame)`.
    fn upscaled(luma: &Luma, s: usize, offset: f32) -> RgbImage {
        let mut img = RgbImage::new(luma.width * s, luma.height * s);
        for c in 0..3 {
            let plane = img.plane_mut(c);
            for y in 0..luma.height * s {
                for x in 0..luma.width * s {
                    plane[y * luma.width * s + x] =
                        luma.data[(y / s) * luma.width + x / s] + offset;
                }
            }
        }
        img
    }

    #[test]
    fn block_matching_finds_a_known_shift() {
        let previous = texture(96, 64, 0, 0);
        // The scene moved left by 5 and up by 3: current (x, y) shows previous (x + 5, y + 3).
        let current = texture(96, 64, 5, 3);
        let motion = estimate_motion(&previous, &current, 8, 4, 1, 1);
        // Blocks whose match lies wholly inside the previous frame.
        for by in 0..motion.rows - 1 {
            for bx in 0..motion.columns - 1 {
                assert_eq!(
                    motion.vectors[by * motion.columns + bx],
                    (5, 3),
                    "block {bx},{by}"
                );
            }
        }
        let static_field = estimate_motion(&previous, &previous, 8, 4, 1, 1);
        assert!(static_field.vectors.iter().all(|&v| v == (0, 0)));
    }

    /// A smooth pattern shifted by a fraction of a pixel.
    fn smooth(w: usize, h: usize, dx: f32, dy: f32) -> Luma {
        let mut data = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                let (x, y) = (x as f32 + dx, y as f32 + dy);
                data.push(
                    0.5 + 0.2 * (x * 0.3).sin() * (y * 0.25).cos()
                        + 0.1 * (x * 0.11 + y * 0.2).sin(),
                );
            }
        }
        Luma {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn spread_over_threads_the_motion_is_the_same() {
        let (previous, current) = (texture(80, 56, 0, 0), texture(80, 56, 3, -2));
        let one = estimate_motion(&previous, &current, 8, 4, 4, 1);
        for workers in [2, 3, 16] {
            let spread = estimate_motion(&previous, &current, 8, 4, 4, workers);
            assert_eq!(spread.vectors, one.vectors, "{workers} threads");
        }
        assert!(one.vectors.iter().any(|&v| v != (0, 0)));
    }

    #[test]
    fn block_matching_finds_a_half_pixel_shift() {
        let (previous, current) = (smooth(96, 64, 0.0, 0.0), smooth(96, 64, 1.5, -0.5));
        // In half pixels (unit 2): (3, -1).
        let motion = estimate_motion(&previous, &current, 8, 4, 2, 1);
        for by in 1..motion.rows {
            for bx in 0..motion.columns - 1 {
                assert_eq!(
                    motion.vectors[by * motion.columns + bx],
                    (3, -1),
                    "block {bx},{by}"
                );
            }
        }
    }

    #[test]
    fn smoothed_vectors_run_between_the_blocks_centres() {
        // Two blocks of 8, still and moving 16 units right: between the
        // centres (3.5 and 11.5) the vector climbs 2 units a pixel, and
        // beyond them it is the outer block's own.
        let motion = MotionField {
            block: 8,
            unit: 1,
            columns: 2,
            rows: 1,
            vectors: vec![(0, 0), (16, 0)],
        };
        for x in 0..16 {
            let expected = (2 * x as i32 - 7).clamp(0, 16);
            assert_eq!(motion.smoothed(x, 5, 8), (expected, 0), "x = {x}");
        }
        // At twice the resolution the same field, at half the step.
        assert_eq!(motion.smoothed(15, 0, 16), (8, 0));
    }

    #[test]
    fn still_texture_beside_moving_texture_is_carried_unmoved_per_pixel() {
        // Columns 0–9 stand still; from 10 on the picture moved 2 pixels
        // (current x shows previous x + 2). The block over 8–15 took the
        // moving vector: 4 half pixels at ×2, one output pixel a unit.
        let (w, h, scale) = (32, 16, 2);
        let previous = texture(w, h, 0, 0);
        let moved = texture(w, h, 2, 0);
        let mut current = previous.clone();
        for y in 0..h {
            for x in 10..w {
                current.data[y * w + x] = moved.data[y * w + x];
            }
        }
        let motion = MotionField {
            block: 8,
            unit: 2,
            columns: 4,
            rows: 2,
            vectors: vec![
                (0, 0),
                (4, 0),
                (4, 0),
                (4, 0),
                (0, 0),
                (4, 0),
                (4, 0),
                (4, 0),
            ],
        };
        let field = PixelMotion::new(&motion, &previous, &current, scale, 0.5 / 255.0, 3);
        for y in 0..h {
            for x in 0..=8 {
                assert_eq!(field.low[y * w + x], (0, 0), "still ({x}, {y})");
            }
            for x in 12..=28 {
                assert_eq!(field.low[y * w + x], (4, 0), "moving ({x}, {y})");
            }
        }
        let (ow, oh) = (w * scale, h * scale);
        let fresh = || {
            let image = grey_rgb(&texture(ow, oh, 0, 0));
            Carried::fresh(0, image, previous.clone(), 1)
        };
        let (mut per_pixel, mut per_block, mut spare) = (fresh(), fresh(), Vec::new());
        carry_per_pixel(&mut per_pixel, &field, motion.unit, scale, 1, &mut spare);
        carry(&mut per_block, &motion, scale, 1, &mut spare);
        for y in 0..oh {
            let at = |carried: &Carried, x: usize| carried.positions[y * ow + x];
            for x in 0..18 {
                assert_eq!(at(&per_pixel, x), (x as i32, y as i32), "still ({x}, {y})");
            }
            for x in 24..56 {
                assert_eq!(
                    at(&per_pixel, x),
                    (x as i32 + 4, y as i32),
                    "moving ({x}, {y})"
                );
            }
            // The block vector moves the still columns 8 and 9 too.
            assert_eq!(at(&per_block, 16), (20, y as i32));
        }
        assert_eq!(per_pixel.offsets[3 * w + 8], Some((0, 0)));
        assert_eq!(per_pixel.offsets[3 * w + 20], Some((4, 0)));
    }

    #[test]
    fn trust_is_full_where_compensation_matches_and_nil_where_it_cannot() {
        let config = TemporalConfig::default();
        let previous = texture(64, 48, 0, 0);
        let current = texture(64, 48, 4, 0);
        let motion = estimate_motion(&previous, &current, 8, 4, 2, 1);
        let trust = trust_map(&previous, &current, &motion, &config);
        // Inside, fully trusted; the last 4 columns come from outside the previous frame.
        assert!(trust[10 * 64 + 20] > 0.999);
        assert_eq!(trust[10 * 64 + 62], 0.0);
    }

    #[test]
    fn static_noise_is_averaged_over_memory_frames() {
        let config = TemporalConfig {
            memory: 2,
            ..TemporalConfig::default()
        };
        let mut stage = Stabilizer::new(config);
        let input = texture(32, 32, 0, 0);
        // The model's output wobbles by ±0.03 from frame to frame on a static scene.
        let offsets = [0.03, -0.03, 0.03, -0.03];
        let outs: Vec<RgbImage> = offsets
            .iter()
            .map(|&o| stage.process(&grey_rgb(&input), upscaled(&input, 2, o)))
            .collect();
        // Frame 0 is as the model made it; frame 1 is the mean of two, and from
        // frame 2 on the mean of three (memory 2), all weights 1.
        let truth = upscaled(&input, 2, 0.0);
        let offset_of = |img: &RgbImage| img.data[100] - truth.data[100];
        assert!((offset_of(&outs[0]) - 0.03).abs() < 1e-6);
        assert!(offset_of(&outs[1]).abs() < 1e-6);
        assert!((offset_of(&outs[2]) - 0.01).abs() < 1e-6);
        assert!((offset_of(&outs[3]) + 0.01).abs() < 1e-6);
        assert_eq!(stage.restarts(), 1);
    }

    #[test]
    fn anchors_take_their_share_crossfaded_by_the_frame_number() {
        let config = TemporalConfig {
            memory: 2,
            anchors: Some(3),
            anchor_share: 0.5,
            ..TemporalConfig::default()
        };
        assert_eq!(config.reach(), 5, "back to the older anchor: 2·3 − 1");
        let mut stage = Stabilizer::new(config);
        let input = texture(32, 32, 0, 0);
        let offset = |t: u64| 0.004 * ((t * t) % 5) as f32;
        let truth = upscaled(&input, 2, 0.0);
        let mut outs = Vec::new();
        let mut kept = Vec::new();
        // Numbered from 20: runs of three numbers start at 21, 24, 27.
        for t in 20..30 {
            outs.push(stage.process_numbered(t, &grey_rgb(&input), upscaled(&input, 2, offset(t))));
            kept.push(stage.carried.iter().map(|c| c.number).collect::<Vec<_>>());
        }
        let offset_of = |t: u64| outs[t as usize - 20].data[100] - truth.data[100];
        // Frame 28 (run of 27, a third through): 27 weighs the even 0.5 and
        // a third of the anchors' 1, 26 the even 0.5, 24 (the run before's
        // first) two thirds.
        let expected = (offset(28)
            + (0.5 + 1.0 / 3.0) * offset(27)
            + 0.5 * offset(26)
            + (2.0 / 3.0) * offset(24))
            / 3.0;
        assert!(
            (offset_of(28) - expected).abs() < 1e-6,
            "{} against {expected}",
            offset_of(28)
        );
        // Frame 27 begins its run: the older anchor, 24, takes the whole share.
        let expected = (offset(27) + 0.5 * offset(26) + 0.5 * offset(25) + offset(24)) / 3.0;
        assert!((offset_of(27) - expected).abs() < 1e-6);
        // Kept: the last two and the first frames of this run and the one before.
        assert_eq!(kept[7], [27, 26, 24]);
        assert_eq!(kept[8], [28, 27, 24]);
        assert_eq!(kept[9], [29, 28, 27, 24]);
        assert_eq!(stage.restarts(), 1);
    }

    #[test]
    fn moving_content_is_averaged_along_its_motion() {
        let mut stage = Stabilizer::new(TemporalConfig::default());
        let (a, b) = (texture(64, 48, 0, 0), texture(64, 48, 3, 2));
        stage.process(&grey_rgb(&a), upscaled(&a, 2, 0.02));
        let out = stage.process(&grey_rgb(&b), upscaled(&b, 2, -0.02));
        let truth = upscaled(&b, 2, 0.0);
        // Inside the frame the two outputs line up, so their offsets cancel.
        let i = 40 * 128 + 40;
        assert!(
            (out.data[i] - truth.data[i]).abs() < 1e-6,
            "{}",
            out.data[i] - truth.data[i]
        );
    }

    #[test]
    fn a_cut_restarts_and_passes_the_output_through() {
        let mut stage = Stabilizer::new(TemporalConfig::default());
        let a = texture(64, 48, 0, 0);
        let b = negative(&a);
        stage.process(&grey_rgb(&a), upscaled(&a, 2, 0.0));
        stage.process(&grey_rgb(&a), upscaled(&a, 2, 0.0));
        let after_cut = upscaled(&b, 2, 0.01);
        assert_eq!(stage.process(&grey_rgb(&b), after_cut.clone()), after_cut);
        assert_eq!(stage.restarts(), 2);
    }

    #[test]
    fn an_occluder_takes_the_current_output_where_it_appears() {
        let mut stage = Stabilizer::new(TemporalConfig::default());
        let a = texture(64, 48, 0, 0);
        let mut b = a.clone();
        // A flat square appears over the texture in frame 2.
        for y in 16..32 {
            for x in 24..40 {
                b.data[y * 64 + x] = 0.05;
            }
        }
        stage.process(&grey_rgb(&a), upscaled(&a, 2, 0.0));
        let current = upscaled(&b, 2, 0.0);
        let out = stage.process(&grey_rgb(&b), current.clone());
        // Inside the square (away from its rim), the output is the current one,
        // with no ghost of the texture behind it.
        for y in 18 * 2..30 * 2 {
            for x in 26 * 2..38 * 2 {
                assert_eq!(out.data[y * 128 + x], current.data[y * 128 + x]);
            }
        }
    }

    #[test]
    fn the_low_band_holds_what_the_input_resolution_can() {
        let (ow, oh, scale) = (24, 16, 2);
        let plane = |f: &dyn Fn(usize, usize) -> f32| -> Vec<f32> {
            (0..ow * oh).map(|i| f(i % ow, i / ow)).collect()
        };
        let constant = plane(&|_, _| 0.3);
        assert!(low_band(&constant, ow, oh, scale)
            .iter()
            .all(|v| (v - 0.3).abs() < 1e-6));
        // Detail finer than an input pixel: each 2×2 cell averages to nothing.
        let checker = plane(&|x, y| if (x + y) % 2 == 0 { 0.1 } else { -0.1 });
        assert!(low_band(&checker, ow, oh, scale)
            .iter()
            .all(|v| v.abs() < 1e-6));
        // A ramp is coarse: between the outermost cell centres it comes back as it was.
        let ramp = plane(&|x, y| 0.01 * x as f32 + 0.02 * y as f32);
        let low = low_band(&ramp, ow, oh, scale);
        for y in 1..oh - 1 {
            for x in 1..ow - 1 {
                assert!((low[y * ow + x] - ramp[y * ow + x]).abs() < 1e-5, "{x},{y}");
            }
        }
    }

    #[test]
    fn detail_only_averages_the_detail_and_keeps_the_current_tone() {
        let input = texture(16, 16, 0, 0);
        let checker = |img: &mut RgbImage, amount: f32| {
            let w = img.width;
            for c in 0..3 {
                for (i, v) in img.plane_mut(c).iter_mut().enumerate() {
                    *v += if (i % w + i / w) % 2 == 0 {
                        amount
                    } else {
                        -amount
                    };
                }
            }
        };
        // The model's tone moves by 0.02 and its invented checker flips sign.
        let mut first = upscaled(&input, 2, 0.01);
        checker(&mut first, 0.05);
        let mut second = upscaled(&input, 2, 0.03);
        checker(&mut second, -0.05);
        let run = |config: TemporalConfig| {
            let mut stage = Stabilizer::new(TemporalConfig {
                memory: 1,
                ..config
            });
            stage.process(&grey_rgb(&input), first.clone());
            stage.process(&grey_rgb(&input), second.clone())
        };
        let truth = upscaled(&input, 2, 0.0);
        let detail = run(TemporalConfig::detail_only());
        let whole = run(TemporalConfig::default());
        for i in 0..truth.data.len() {
            // The checker averages away either way; the tone is the current
            // frame's with the detail-only blend, the mean of both otherwise.
            assert!((detail.data[i] - truth.data[i] - 0.03).abs() < 1e-6, "{i}");
            assert!((whole.data[i] - truth.data[i] - 0.02).abs() < 1e-6, "{i}");
        }
    }

    #[test]
    fn each_earlier_frame_is_trusted_by_its_own_difference_from_the_current() {
        // A slow fade: 0.9 level brighter each frame, within full trust from
        // one frame to the next, but 1.8, 2.7 and 3.6 levels from the frames
        // 2, 3 and 4 back, which are trusted 0.6, 0.15 and 0.
        let step = 0.9 / 255.0;
        let mut stage = Stabilizer::new(TemporalConfig::default());
        let frames: Vec<Luma> = (0..5)
            .map(|t| {
                let mut luma = texture(48, 40, 0, 0);
                luma.data.iter_mut().for_each(|v| *v += t as f32 * step);
                luma
            })
            .collect();
        let mut out = None;
        for luma in &frames {
            out = Some(stage.process(&grey_rgb(luma), upscaled(luma, 2, 0.0)));
        }
        let truth = upscaled(&frames[0], 2, 0.0);
        let weights = [0.0, 0.15, 0.6, 1.0, 1.0];
        let expected = weights
            .iter()
            .enumerate()
            .map(|(t, w)| w * t as f32 * step)
            .sum::<f32>()
            / weights.iter().sum::<f32>();
        let i = 40 * 96 + 48;
        let got = out.expect("five frames").data[i] - truth.data[i];
        assert!((got - expected).abs() < 1e-5, "{got} against {expected}");
        assert_eq!(stage.restarts(), 1);
    }

    /// The blend as first written, one output pixel at a time: what the
    /// row-wise [`blend`] must reproduce bit for bit.
    pub(super) fn blend_pixel_by_pixel(
        current: &RgbImage,
        carried: &VecDeque<Carried>,
        scale: usize,
        config: &TemporalConfig,
    ) -> RgbImage {
        let (ow, oh) = (current.width, current.height);
        let (w, plane) = (ow / scale, ow * oh);
        let mut out = current.clone();
        let mut weights = vec![0f32; carried.len()];
        let mut touched = vec![false; plane];
        for y in 0..oh {
            for x in 0..ow {
                let low = (y / scale) * w + x / scale;
                for (k, c) in weights.iter_mut().zip(carried) {
                    *k = config.weight * c.trust[low];
                }
                let total = 1.0 + weights.iter().sum::<f32>();
                if total <= 1.0 {
                    continue;
                }
                touched[y * ow + x] = true;
                for ch in 0..3 {
                    let i = ch * plane + y * ow + x;
                    let mut sum = current.data[i];
                    for (k, c) in weights.iter().zip(carried) {
                        sum += k * c.image.data[i];
                    }
                    out.data[i] = sum / total;
                }
            }
        }
        drop_low_band(&mut out, current, &touched, scale, config.low_band);
        out
    }

    #[test]
    fn the_row_wise_blend_gives_the_pixel_by_pixel_blend_bit_for_bit() {
        // Pseudo-random samples and trusts, with stretches of no trust and
        // of full trust, at ×2 and ×3, one to four earlier frames.
        let mut seed = 12345u32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as f32 / u32::MAX as f32
        };
        for (scale, frames) in [(2, 4), (3, 3), (2, 1)] {
            let (w, h) = (23, 17);
            let image = |next: &mut dyn FnMut() -> f32| {
                let mut img = RgbImage::new(w * scale, h * scale);
                img.data.iter_mut().for_each(|v| *v = next());
                img
            };
            let current = image(&mut next);
            let mut carried: VecDeque<Carried> = (0..frames)
                .map(|_| {
                    let mut earlier = Carried::fresh(0, image(&mut next), texture(w, h, 0, 0), 1);
                    earlier.trust = (0..w * h)
                        .map(|_| match next() {
                            t if t < 0.3 => 0.0,
                            t if t > 0.7 => 1.0,
                            t => (t - 0.3) / 0.4,
                        })
                        .collect();
                    earlier
                })
                .collect();
            for config in [TemporalConfig::default(), TemporalConfig::detail_only()] {
                let config = TemporalConfig {
                    weight: 0.8,
                    ..config
                };
                for c in &mut carried {
                    c.positions = unmoved(w * scale, h * scale, config.subpixel);
                }
                let weights = vec![config.weight; carried.len()];
                let plain = blend_pixel_by_pixel(&current, &carried, scale, &config);
                // One band, and bands of rows on three threads.
                for workers in [1, 3] {
                    let fast = blend(&current, &carried, &weights, scale, &config, workers);
                    let differing = (fast.data.iter().zip(&plain.data))
                        .filter(|(a, b)| a.to_bits() != b.to_bits())
                        .count();
                    assert_eq!(
                        differing, 0,
                        "×{scale}, {frames} frames, {workers} threads, {config:?}"
                    );
                    assert_ne!(fast, current, "the blend changed nothing");
                }
            }
        }
    }

    #[test]
    fn block_sad_at_a_whole_pixel_offset_sums_the_plain_differences() {
        let (previous, current) = (texture(64, 48, 0, 0), texture(64, 48, 2, 1));
        for v in [(0, 0), (2, 1), (-3, 4), (5, -2)] {
            // Block (2, 2): its match and neighbours lie inside the frame.
            let mut plain = 0.0;
            for y in 16..24 {
                for x in 16..24 {
                    plain += (current.data[y * 64 + x] - previous.sample(x, y, v, 1)).abs();
                }
            }
            let sad = block_sad(&current, &previous, 8, 2, 2, v, 1);
            assert_eq!(sad.to_bits(), f32::to_bits(plain), "{v:?}");
        }
    }

    #[test]
    fn output_depends_only_on_the_last_memory_frames() {
        let finer = TemporalConfig {
            subpixel: 4,
            ..TemporalConfig::default()
        };
        for config in [
            TemporalConfig::default(),
            TemporalConfig::detail_only(),
            TemporalConfig::generative(),
            TemporalConfig::for_model("realesrgan-x4"),
            finer,
        ] {
            depends_only_on_the_last_memory_frames(config);
        }
    }

    fn depends_only_on_the_last_memory_frames(config: TemporalConfig) {
        // Moving texture, a cut to its negative halfway, moving on; numbered
        // from 100, as a stream's timestamps would number it.
        let (length, cut) = (2 * config.reach() + 10, config.reach() + 5);
        let frames: Vec<Luma> = (0..length)
            .map(|t| {
                let moving = texture(48, 40, t as i32, t as i32 / 2);
                if t < cut {
                    moving
                } else {
                    negative(&moving)
                }
            })
            .collect();
        let out = |stage: &mut Stabilizer, t: usize| {
            stage.process_numbered(
                100 + t as u64,
                &grey_rgb(&frames[t]),
                upscaled(&frames[t], 2, 0.01 * (t % 3) as f32),
            )
        };
        let mut long = Stabilizer::new(config);
        let whole: Vec<RgbImage> = (0..frames.len()).map(|t| out(&mut long, t)).collect();
        assert_eq!(long.restarts(), 2, "the first frame and the cut");
        // A run started `reach` frames before any frame gives that frame
        // exactly, the frames after the cut included.
        let reach = config.reach();
        for (t, expected) in whole.iter().enumerate().skip(reach + 1) {
            let mut short = Stabilizer::new(config);
            for earlier in t - reach..t {
                out(&mut short, earlier);
            }
            assert_eq!(&out(&mut short, t), expected, "frame {t}");
        }
    }

    /// The earlier output moved as the stage first did it: each block's
    /// rows copied a whole number of output pixels away, edges repeated.
    fn moved_by_copying(image: &RgbImage, motion: &MotionField, scale: usize) -> RgbImage {
        let (ow, oh) = (image.width, image.height);
        let edge = motion.block * scale;
        let mut moved = RgbImage::new(ow, oh);
        for c in 0..3 {
            let (src, dst) = (image.plane(c), moved.plane_mut(c));
            for by in 0..motion.rows {
                for bx in 0..motion.columns {
                    let (dx, dy) = motion.vectors[by * motion.columns + bx];
                    for y in by * edge..((by + 1) * edge).min(oh) {
                        let sy = (y as isize + dy as isize).clamp(0, oh as isize - 1) as usize;
                        for x in bx * edge..((bx + 1) * edge).min(ow) {
                            let sx = (x as isize + dx as isize).clamp(0, ow as isize - 1) as usize;
                            dst[y * ow + x] = src[sy * ow + sx];
                        }
                    }
                }
            }
        }
        moved
    }

    /// Every output row of `carried` read at its positions.
    fn read_at_positions(carried: &Carried, subpixel: i32) -> RgbImage {
        let (ow, oh) = (carried.image.width, carried.image.height);
        let mut image = RgbImage::new(ow, oh);
        let mut row = vec![0f32; 3 * ow];
        for y in 0..oh {
            earlier_row(carried, y, subpixel, &mut row);
            for ch in 0..3 {
                image.data[ch * ow * oh + y * ow..][..ow].copy_from_slice(&row[ch * ow..][..ow]);
            }
        }
        image
    }

    #[test]
    fn composed_positions_read_what_moving_the_output_by_copies_gave() {
        // Four steps of pseudo-random whole-output-pixel vectors, some
        // reaching past the frame's edges, at ×2 and ×3.
        let mut seed = 987654321u32;
        let mut next = move |n: u32| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed % n
        };
        for scale in [2usize, 3] {
            let (w, h, block) = (37, 29, 8);
            let mut image = RgbImage::new(w * scale, h * scale);
            image
                .data
                .iter_mut()
                .for_each(|v| *v = next(1000) as f32 / 999.0);
            let mut carried = Carried::fresh(0, image.clone(), texture(w, h, 0, 0), 1);
            let (mut moved, mut spare) = (image, Vec::new());
            for _ in 0..4 {
                let (columns, rows) = (w.div_ceil(block), h.div_ceil(block));
                let vectors = (0..columns * rows)
                    .map(|_| (next(41) as i32 - 20, next(41) as i32 - 20))
                    .collect();
                let motion = MotionField {
                    block,
                    unit: scale as i32,
                    columns,
                    rows,
                    vectors,
                };
                moved = moved_by_copying(&moved, &motion, scale);
                carry(&mut carried, &motion, scale, 1, &mut spare);
                let read = read_at_positions(&carried, 1);
                let differing = (read.data.iter().zip(&moved.data))
                    .filter(|(a, b)| a.to_bits() != b.to_bits())
                    .count();
                assert_eq!(differing, 0, "×{scale}");
                // The blend, which reads the runs of positions itself, as
                // it blended the moved copy.
                carried.trust = (0..w * h).map(|_| next(5) as f32 / 4.0).collect();
                let mut copy = Carried::fresh(0, moved.clone(), texture(w, h, 0, 0), 1);
                copy.trust = carried.trust.clone();
                let current = moved_by_copying(&moved, &motion, scale);
                let config = TemporalConfig::detail_only();
                let (composed, copied) = (VecDeque::from([carried]), VecDeque::from([copy]));
                let weights = [config.weight];
                let (a, b) = (
                    blend(&current, &composed, &weights, scale, &config, 1),
                    blend(&current, &copied, &weights, scale, &config, 1),
                );
                assert!(a
                    .data
                    .iter()
                    .zip(&b.data)
                    .all(|(a, b)| a.to_bits() == b.to_bits()));
                carried = composed.into_iter().next().expect("one");
            }
        }
    }

    /// A smooth picture at output resolution, moved `shift` input pixels
    /// to the left, and its ×`scale` input (each input pixel the mean of its
    /// cell's output pixels, as an area shrink makes it).
    fn smooth_frame(w: usize, h: usize, scale: usize, shift: f32) -> (Luma, RgbImage) {
        let (ow, oh) = (w * scale, h * scale);
        let picture = |x: usize, y: usize| {
            let (x, y) = (x as f32 / scale as f32 + shift, y as f32 / scale as f32);
            0.5 + 0.2 * (x * 0.3).sin() * (y * 0.25).cos() + 0.1 * (x * 0.11 + y * 0.2).sin()
        };
        let mut output = RgbImage::new(ow, oh);
        for c in 0..3 {
            for (i, v) in output.plane_mut(c).iter_mut().enumerate() {
                *v = picture(i % ow, i / ow);
            }
        }
        let mut input = vec![0f32; w * h];
        for y in 0..oh {
            for x in 0..ow {
                input[(y / scale) * w + x / scale] +=
                    output.data[y * ow + x] / (scale * scale) as f32;
            }
        }
        let luma = Luma {
            width: w,
            height: h,
            data: input,
        };
        (luma, output)
    }

    #[test]
    fn a_half_output_pixel_warp_follows_motion_a_whole_pixel_one_cannot() {
        // The scene moves by half an output pixel a frame (a quarter input
        // pixel at ×2); the model's output wobbles by ±0.02 around it.
        let (w, h, scale) = (64, 48, 2);
        let run = |subpixel: i32| {
            let mut stage = Stabilizer::new(TemporalConfig {
                memory: 1,
                subpixel,
                ..TemporalConfig::default()
            });
            let mut error = (0.0, 0);
            for t in 0..4 {
                let (input, truth) = smooth_frame(w, h, scale, 0.25 * t as f32);
                let mut output = truth.clone();
                let wobble = if t % 2 == 0 { 0.02 } else { -0.02 };
                output.data.iter_mut().for_each(|v| *v += wobble);
                let out = stage.process(&grey_rgb(&input), output);
                if t > 0 {
                    // Inside, away from the edges the motion uncovers.
                    let ow = w * scale;
                    for y in 16..h * scale - 16 {
                        for x in 16..ow - 16 {
                            error.0 += (out.data[y * ow + x] - truth.data[y * ow + x]).abs();
                            error.1 += 1;
                        }
                    }
                }
            }
            error.0 / error.1 as f32
        };
        // Averaged along the motion, the wobble (0.02) cancels; with whole
        // output pixels the earlier frame sits half a pixel off, is trusted
        // less and blurs what it is averaged with.
        let (half, whole) = (run(2), run(1));
        assert!(half < 0.002, "half-pixel warp left {half}");
        assert!(whole > 0.005, "whole-pixel warp left {whole}");
    }

    /// Within 2e-5 on every pixel at least `margin` from the edges.
    fn assert_close(a: &RgbImage, b: &RgbImage, margin: usize) {
        let (w, h) = (a.width, a.height);
        for (i, (x, y)) in a.data.iter().zip(&b.data).enumerate() {
            let (px, py) = (i % w, (i / w) % h);
            if px < margin || py < margin || px + margin >= w || py + margin >= h {
                continue;
            }
            assert!((x - y).abs() < 2e-5, "pixel {i}: {x} against {y}");
        }
    }

    #[test]
    fn back_projection_leaves_an_output_that_downscales_to_its_input_alone() {
        // Values kept inside [0, 1], where the clamp does nothing.
        let output = upscaled(&texture(24, 20, 0, 0), 3, 0.0);
        let input = bicubic_signed(&output, 24, 20);
        assert_close(&back_projected(output.clone(), &input), &output, 0);
    }

    #[test]
    fn back_projection_takes_the_inputs_low_band_and_keeps_the_detail() {
        let input = grey_rgb(&texture(24, 20, 0, 0));
        let output = upscaled(&texture(24, 20, 0, 0), 2, 0.0);
        let consistent = back_projected(output.clone(), &input);
        // A tone the input does not have (a constant: every tap sums to 1)
        // goes whole.
        let shifted = upscaled(&texture(24, 20, 0, 0), 2, 0.05);
        assert_close(&back_projected(shifted, &input), &consistent, 0);
        // Detail above the input's resolution (a checkerboard of output
        // pixels, which the ×2 shrink averages to nothing away from the
        // edges, where its kernel is cut short) stays whole.
        let mut detailed = output.clone();
        let mut expected = consistent.clone();
        for (i, (d, e)) in detailed.data.iter_mut().zip(&mut expected.data).enumerate() {
            let (x, y) = (i % output.width, (i / output.width) % output.height);
            let checker = if (x + y) % 2 == 0 { 0.04 } else { -0.04 };
            *d += checker;
            *e += checker;
        }
        assert_close(&back_projected(detailed, &input), &expected, 8);
    }

    #[test]
    fn the_generative_setting_takes_the_low_band_from_each_frames_input() {
        // The model's output on a static scene wobbles in tone by ±0.03 from
        // frame to frame; each frame comes out with the input's tone, on the
        // first frame (no memory yet) and on those the blend averages.
        let mut stage = Stabilizer::new(TemporalConfig::generative());
        let input = texture(32, 32, 0, 0);
        let steady = back_projected(upscaled(&input, 2, 0.0), &grey_rgb(&input));
        for offset in [0.03, -0.03, 0.03, -0.03] {
            let out = stage.process(&grey_rgb(&input), upscaled(&input, 2, offset));
            assert_close(&out, &steady, 0);
        }
        assert_eq!(stage.restarts(), 1);
    }

    #[test]
    fn after_a_cut_the_generative_setting_shows_the_models_frame_then_back_projects_again() {
        // A cut to a static scene whose output is 0.05 too bright: the
        // frame after the cut is the model's own, and over the next
        // `memory` frames the tone comes back to the input's, a share at a
        // time; the memory holds the back-projected frames throughout.
        let config = TemporalConfig::generative();
        let mut stage = Stabilizer::new(config);
        let a = texture(32, 32, 0, 0);
        let b = negative(&a);
        stage.process(&grey_rgb(&a), upscaled(&a, 2, 0.0));
        stage.process(&grey_rgb(&a), upscaled(&a, 2, 0.0));
        let bright = upscaled(&b, 2, 0.05);
        let steady = back_projected(bright.clone(), &grey_rgb(&b));
        let mean = |img: &RgbImage| img.data.iter().sum::<f32>() / img.data.len() as f32;
        for n in 0..=config.memory + 1 {
            let out = stage.process(&grey_rgb(&b), bright.clone());
            if n == 0 {
                assert_eq!(out, bright, "the frame after the cut");
            }
            let share = (n as f32 / config.memory as f32).min(1.0);
            let expected = mean(&bright) + share * (mean(&steady) - mean(&bright));
            assert!(
                (mean(&out) - expected).abs() < 1e-3,
                "frame {n} after the cut: {} against {expected}",
                mean(&out)
            );
            if n >= config.memory {
                assert_close(&out, &steady, 0);
            }
        }
        assert_eq!(stage.restarts(), 2);
    }

    #[test]
    fn each_model_gets_its_measured_setting() {
        let anime = TemporalConfig::for_model("anime-video-x4");
        assert_eq!(anime, TemporalConfig::generative());
        for name in ["realesrgan-x4", "realesrgan-x4-fp16"] {
            let config = TemporalConfig::for_model(name);
            assert!(config.back_project, "{name}");
            let levels = (255.0 * config.trust_below, 255.0 * config.distrust_above);
            assert!((levels.0 - 4.0).abs() < 1e-4 && (levels.1 - 12.0).abs() < 1e-4);
            assert_eq!(config.unsteadied_detail, 0.5, "{name}");
            let margin = config.pixel_motion.map(|m| 255.0 * m);
            assert!(margin.is_some_and(|m| (m - 4.0).abs() < 1e-4), "{name}");
            assert_eq!(config.memory, 8, "{name}");
            assert_eq!(
                (config.anchors, config.anchor_share),
                (Some(10), 0.5),
                "{name}"
            );
            assert_eq!(config.reach(), 19, "{name}");
        }
        assert_eq!(TemporalConfig::for_model("anime-video-x4").reach(), 4);
        assert_eq!(anime.unsteadied_detail, 0.0);
        assert_eq!(anime.memory, 4);
        assert_eq!(anime.pixel_motion, None);
        for name in ["default", "fast", "some/model.onnx"] {
            assert_eq!(
                TemporalConfig::for_model(name),
                TemporalConfig::detail_only()
            );
        }
    }

    #[test]
    fn detail_without_trusted_history_is_tempered_toward_the_input() {
        let setting = |power| TemporalConfig {
            unsteadied_detail: power,
            ..TemporalConfig::default()
        };
        let (mut plain, mut tempered) =
            (Stabilizer::new(setting(0.0)), Stabilizer::new(setting(1.0)));
        let a = texture(64, 48, 0, 0);
        let mut b = a.clone();
        // A flat square appears over the texture in frame 2: nothing of
        // frame 1 is trusted there, everything elsewhere.
        for y in 16..32 {
            for x in 24..40 {
                b.data[y * 64 + x] = 0.05;
            }
        }
        // The model's "detail": a pattern above the input's resolution.
        let with_detail = |luma: &Luma| {
            let mut img = upscaled(luma, 2, 0.0);
            for (i, v) in img.data.iter_mut().enumerate() {
                *v += if (i + i / 128) % 2 == 0 { 0.02 } else { -0.02 };
            }
            img
        };
        for stage in [&mut plain, &mut tempered] {
            stage.process(&grey_rgb(&a), with_detail(&a));
        }
        let current = with_detail(&b);
        let untempered = plain.process(&grey_rgb(&b), current.clone());
        let out = tempered.process(&grey_rgb(&b), current);
        let up = crate::resize::bicubic(&grey_rgb(&b), 128, 96);
        for c in 0..3 {
            for y in 0..96 {
                for x in 0..128 {
                    let i = c * 128 * 96 + y * 128 + x;
                    let inside = (18 * 2..30 * 2).contains(&y) && (26 * 2..38 * 2).contains(&x);
                    let outside = !(12 * 2..36 * 2).contains(&y) || !(20 * 2..44 * 2).contains(&x);
                    // With one frame carried, w_full = 2: half the detail
                    // where it had no trusted history, all of it elsewhere.
                    let expected = if inside {
                        up.data[i] + 0.5 * (untempered.data[i] - up.data[i])
                    } else if outside {
                        untempered.data[i]
                    } else {
                        continue;
                    };
                    assert!((out.data[i] - expected).abs() < 1e-5, "({x}, {y})");
                }
            }
        }
    }

    #[test]
    fn reset_and_a_size_change_start_afresh() {
        let mut stage = Stabilizer::new(TemporalConfig::default());
        let a = texture(32, 32, 0, 0);
        stage.process(&grey_rgb(&a), upscaled(&a, 2, 0.02));
        stage.reset();
        let fresh = upscaled(&a, 2, -0.02);
        assert_eq!(stage.process(&grey_rgb(&a), fresh.clone()), fresh);
        let small = texture(16, 16, 0, 0);
        let other = grey_rgb(&small);
        let other = upscaled(&Luma::from_rgb(&other), 2, 0.0);
        assert_eq!(stage.process(&grey_rgb(&small), other.clone()), other);
        assert_eq!(stage.restarts(), 3);
    }
}
