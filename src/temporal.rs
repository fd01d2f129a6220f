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

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

use crate::frame::RgbImage;
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

/// How the stage blends; [`Default`] is what the measurements in
/// docs/temporal.md chose.
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
        let mut vectors = Vec::with_capacity(columns * rows);
        for by in 0..rows {
            for bx in 0..columns {
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
                match &field {
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
                vectors.push(best);
            }
        }
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
    let mut mismatch = vec![0f32; w * h];
    let mut outside = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            let v = motion.at(x, y);
            outside[y * w + x] = previous.outside(x, y, v, motion.unit);
            mismatch[y * w + x] =
                (current.data[y * w + x] - previous.sample(x, y, v, motion.unit)).abs();
        }
    }
    let span = (config.distrust_above - config.trust_below).max(f32::EPSILON);
    let mut trust = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            if outside[y * w + x] {
                continue;
            }
            let (mut sum, mut n) = (0.0, 0.0);
            for ny in y.saturating_sub(1)..(y + 2).min(h) {
                for nx in x.saturating_sub(1)..(x + 2).min(w) {
                    sum += mismatch[ny * w + nx];
                    n += 1.0;
                }
            }
            trust[y * w + x] = ((config.distrust_above - sum / n) / span).clamp(0.0, 1.0);
        }
    }
    trust
}

/// An earlier model output carried along the motion to the latest frame,
/// with how far each low-resolution pixel of it is trusted there.
struct Carried {
    image: RgbImage,
    trust: Vec<f32>,
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
    /// Frames that restarted the memory since the stream began (cuts included).
    restarts: u64,
}

impl Stabilizer {
    pub fn new(config: TemporalConfig) -> Stabilizer {
        Stabilizer {
            config,
            key: None,
            previous: None,
            carried: VecDeque::new(),
            restarts: 0,
        }
    }

    /// Forgets the past: the next frame comes out as the model made it.
    pub fn reset(&mut self) {
        self.key = None;
        self.previous = None;
        self.carried.clear();
    }

    /// How many frames began the memory anew: the first, and each cut or
    /// reset after it.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Takes the next frame's low-resolution input luma and the model's
    /// output for it, and returns the stabilised output (same size).
    pub fn process(&mut self, input: Luma, output: RgbImage) -> RgbImage {
        let key = StreamKey {
            input: (input.width, input.height),
            output: (output.width, output.height),
        };
        let same_stream = self.key == Some(key);
        let scale = output.width / input.width.max(1);
        let usable = scale >= 1
            && output.width == input.width * scale
            && output.height == input.height * scale
            && self.config.memory > 0;
        let motion = match (&self.previous, same_stream && usable) {
            (Some(previous), true) => {
                let motion = estimate_motion(
                    previous,
                    &input,
                    self.config.block,
                    self.config.search,
                    scale as i32,
                );
                let trust = trust_map(previous, &input, &motion, &self.config);
                let mean = trust.iter().sum::<f32>() / trust.len() as f32;
                (mean >= self.config.cut_below).then_some((motion, trust))
            }
            _ => None,
        };
        let Some((motion, trust)) = motion else {
            self.carried.clear();
            self.restarts += 1;
            self.key = Some(key);
            if usable {
                self.carried.push_front(Carried {
                    image: output.clone(),
                    trust: vec![1.0; input.width * input.height],
                });
            }
            self.previous = Some(input);
            return output;
        };
        for carried in &mut self.carried {
            *carried = carry(carried, &motion, &trust, scale, input.width, input.height);
        }
        let blended = blend(&output, &self.carried, scale, self.config.weight);
        self.carried.push_front(Carried {
            image: output,
            trust: vec![1.0; input.width * input.height],
        });
        self.carried.truncate(self.config.memory);
        self.previous = Some(input);
        blended
    }
}

/// `carried` moved along `motion` into the current frame; its trust is
/// multiplied by this step's, so a pixel lost once stays lost.
fn carry(
    carried: &Carried,
    motion: &MotionField,
    step_trust: &[f32],
    scale: usize,
    w: usize,
    h: usize,
) -> Carried {
    let unit = motion.unit;
    let mut trust = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = motion.at(x, y);
            // The low-resolution pixel nearest to where this one came from.
            let sx = (x as i32 * unit + dx + unit / 2).div_euclid(unit);
            let sy = (y as i32 * unit + dy + unit / 2).div_euclid(unit);
            if sx >= 0 && sy >= 0 && (sx as usize) < w && (sy as usize) < h {
                trust[y * w + x] =
                    step_trust[y * w + x] * carried.trust[sy as usize * w + sx as usize];
            }
        }
    }
    // Vectors are in output pixels (unit = scale): a whole-pixel shift of
    // each block's rows, with the frame's edge repeated where it runs out.
    let (ow, oh) = (w * scale, h * scale);
    let edge = motion.block * scale;
    let mut image = RgbImage::new(ow, oh);
    for c in 0..3 {
        let (src, dst) = (carried.image.plane(c), image.plane_mut(c));
        for by in 0..motion.rows {
            for bx in 0..motion.columns {
                let (dx, dy) = motion.vectors[by * motion.columns + bx];
                let (x0, x1) = (bx * edge, ((bx + 1) * edge).min(ow));
                let (sx0, sx1) = (x0 as isize + dx as isize, x1 as isize + dx as isize);
                for y in by * edge..((by + 1) * edge).min(oh) {
                    let sy = (y as isize + dy as isize).clamp(0, oh as isize - 1) as usize;
                    let (from, to) = (&src[sy * ow..(sy + 1) * ow], &mut dst[y * ow..(y + 1) * ow]);
                    if sx0 >= 0 && sx1 <= ow as isize {
                        to[x0..x1].copy_from_slice(&from[sx0 as usize..sx1 as usize]);
                    } else {
                        for x in x0..x1 {
                            to[x] =
                                from[(x as isize + dx as isize).clamp(0, ow as isize - 1) as usize];
                        }
                    }
                }
            }
        }
    }
    Carried { image, trust }
}

/// The current output averaged with the carried ones, each weighted by
/// `weight` times its trust.
fn blend(current: &RgbImage, carried: &VecDeque<Carried>, scale: usize, weight: f32) -> RgbImage {
    let (ow, oh) = (current.width, current.height);
    let (w, plane) = (ow / scale, ow * oh);
    let mut out = current.clone();
    let mut weights = vec![0f32; carried.len()];
    for y in 0..oh {
        let low_row = (y / scale) * w;
        for x in 0..ow {
            let low = low_row + x / scale;
            for (k, c) in weights.iter_mut().zip(carried) {
                *k = weight * c.trust[low];
            }
            let total = 1.0 + weights.iter().sum::<f32>();
            if total <= 1.0 {
                continue;
            }
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
    out
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
        let motion = estimate_motion(&previous, &current, 8, 4, 1);
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
        let static_field = estimate_motion(&previous, &previous, 8, 4, 1);
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
    fn block_matching_finds_a_half_pixel_shift() {
        let (previous, current) = (smooth(96, 64, 0.0, 0.0), smooth(96, 64, 1.5, -0.5));
        // In half pixels (unit 2): (3, -1).
        let motion = estimate_motion(&previous, &current, 8, 4, 2);
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
    fn trust_is_full_where_compensation_matches_and_nil_where_it_cannot() {
        let config = TemporalConfig::default();
        let previous = texture(64, 48, 0, 0);
        let current = texture(64, 48, 4, 0);
        let motion = estimate_motion(&previous, &current, 8, 4, 2);
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
            .map(|&o| stage.process(input.clone(), upscaled(&input, 2, o)))
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
    fn moving_content_is_averaged_along_its_motion() {
        let mut stage = Stabilizer::new(TemporalConfig::default());
        let (a, b) = (texture(64, 48, 0, 0), texture(64, 48, 3, 2));
        stage.process(a.clone(), upscaled(&a, 2, 0.02));
        let out = stage.process(b.clone(), upscaled(&b, 2, -0.02));
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
        let b = Luma {
            data: a.data.iter().map(|v| 1.0 - v).collect(),
            ..a.clone()
        };
        stage.process(a.clone(), upscaled(&a, 2, 0.0));
        stage.process(a.clone(), upscaled(&a, 2, 0.0));
        let after_cut = upscaled(&b, 2, 0.01);
        assert_eq!(stage.process(b, after_cut.clone()), after_cut);
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
        stage.process(a.clone(), upscaled(&a, 2, 0.0));
        let current = upscaled(&b, 2, 0.0);
        let out = stage.process(b, current.clone());
        // Inside the square (away from its rim), the output is the current one,
        // with no ghost of the texture behind it.
        for y in 18 * 2..30 * 2 {
            for x in 26 * 2..38 * 2 {
                assert_eq!(out.data[y * 128 + x], current.data[y * 128 + x]);
            }
        }
    }

    #[test]
    fn output_depends_only_on_the_last_memory_frames() {
        let config = TemporalConfig::default();
        let frames: Vec<Luma> = (0..7).map(|t| texture(48, 40, t, t / 2)).collect();
        let out = |stage: &mut Stabilizer, t: usize| {
            stage.process(
                frames[t].clone(),
                upscaled(&frames[t], 2, 0.01 * (t % 3) as f32),
            )
        };
        let mut long = Stabilizer::new(config);
        let whole: Vec<RgbImage> = (0..7).map(|t| out(&mut long, t)).collect();
        // A run started K frames before frame 4 gives frame 4 (and on) exactly.
        let mut short = Stabilizer::new(config);
        for t in 4 - config.memory..4 {
            out(&mut short, t);
        }
        for (t, expected) in whole.iter().enumerate().skip(4) {
            assert_eq!(&out(&mut short, t), expected, "frame {t}");
        }
    }

    #[test]
    fn reset_and_a_size_change_start_afresh() {
        let mut stage = Stabilizer::new(TemporalConfig::default());
        let a = texture(32, 32, 0, 0);
        stage.process(a.clone(), upscaled(&a, 2, 0.02));
        stage.reset();
        let fresh = upscaled(&a, 2, -0.02);
        assert_eq!(stage.process(a.clone(), fresh.clone()), fresh);
        let small = texture(16, 16, 0, 0);
        let other = grey_rgb(&small);
        let other = upscaled(&Luma::from_rgb(&other), 2, 0.0);
        assert_eq!(stage.process(small, other.clone()), other);
        assert_eq!(stage.restarts(), 3);
    }
}
