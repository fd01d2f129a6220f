//! Tile geometry and seamless blending.
//!
//! Each tile is a window of the input frame with `overlap` pixels of context
//! on every side; frame borders are padded by reflection, unless the model
//! reflects its own input edges (`gendr.border`), in which case tiles at the
//! frame's edges start and end there and the model pads them. The model's output
//! is trusted only away from that context, so weights are zero there. Inside
//! the trusted zone, neighbouring tiles overlap by a blend band where a
//! raised-cosine ramp hands one tile over to the next. Weights are normalised
//! per axis, so that they sum to exactly one at every output pixel: a model
//! whose receptive radius is at most `overlap` gives the same result tiled as
//! on the whole (reflection-padded) frame.

use crate::frame::{try_zeroed, RgbImage};
use crate::{Error, Result};

/// The most tiles one frame may be cut into: beyond this a geometry is a
/// mistake (a tiny tile on a huge frame), and EOS would wait on a backlog
/// of tens of thousands of runs.
pub const MAX_TILES_PER_FRAME: usize = 16_384;

/// How many tiles go into one inference run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// The model takes exactly this many; a short run is filled up with copies.
    Fixed(usize),
    /// Up to this many tiles of one frame per run.
    UpTo(usize),
}

impl Batch {
    /// Tiles per run for a frame of `tiles` tiles.
    pub fn chunk(self, tiles: usize) -> usize {
        match self {
            Batch::Fixed(n) => n,
            Batch::UpTo(n) => n.min(tiles).max(1),
        }
    }

    /// The batch size of a run carrying `tiles` tiles.
    pub fn run_size(self, tiles: usize) -> usize {
        match self {
            Batch::Fixed(n) => n,
            Batch::UpTo(_) => tiles,
        }
    }
}

/// The tiles of one inference run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileBatch {
    pub tiles: Vec<TileIndex>,
    /// The run's batch size: `tiles.len()`, or a model's fixed batch, which
    /// is filled up with copies of the last tile.
    pub run_size: usize,
}

/// Consecutive tiles must be at least 1/MIN_ADVANCE_SHARE of a tile apart
/// (a fixed-size model's own size is taken as it is).
const MIN_ADVANCE_SHARE: usize = 4;

/// How far consecutive windows of `tile` pixels step: the trusted part less
/// the blend band where neighbours overlap (see `TileGeometry::axis`).
fn advance(tile: usize, overlap: usize) -> usize {
    let trusted = tile - 2 * overlap;
    trusted - overlap.min(trusted - 1)
}

/// The tile shape a model needs, decided once from the model and the user's
/// settings (see [`TileGeometry::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileGeometry {
    /// Window width and height in input pixels, context included.
    pub tile_width: usize,
    pub tile_height: usize,
    /// Context on every side, in input pixels.
    pub overlap: usize,
    /// Window sizes must be a multiple of this.
    pub multiple: usize,
    /// The model accepts only exactly `tile_width × tile_height`.
    pub fixed: bool,
    /// Output pixels per input pixel.
    pub scale: usize,
    /// Whether windows reach `overlap` pixels past the frame's edges; false
    /// when the model pads its own edges, which saves those pixels.
    pub edge_context: bool,
}

impl TileGeometry {
    /// Builds a geometry, snapping `tile` up to `multiple` and checking that
    /// something is left once the context is taken off.
    pub fn new(tile: usize, overlap: usize, multiple: usize, scale: usize) -> Result<Self> {
        let multiple = multiple.max(1);
        let tile = tile.div_ceil(multiple) * multiple;
        Self::checked(tile, tile, overlap, multiple, false, scale)
    }

    /// A geometry for a model with a fixed input size.
    pub fn fixed(width: usize, height: usize, overlap: usize, scale: usize) -> Result<Self> {
        Self::checked(width, height, overlap, 1, true, scale)
    }

    fn checked(
        w: usize,
        h: usize,
        overlap: usize,
        multiple: usize,
        fixed: bool,
        scale: usize,
    ) -> Result<Self> {
        if scale == 0 {
            return Err(Error::InvalidSetting("scale must be at least 1".into()));
        }
        if w <= 2 * overlap || h <= 2 * overlap {
            return Err(Error::InvalidSetting(format!(
                "tile {w}x{h} leaves nothing inside an overlap of {overlap} on each side; \
                 use a tile larger than {}",
                2 * overlap
            )));
        }
        // A tile that is mostly context (or blend band) moves on by only a
        // few pixels: a waste of the model's time and, on a large frame,
        // thousands of runs per frame.
        let advance = advance(w.min(h), overlap);
        if advance * MIN_ADVANCE_SHARE < w.min(h) && !fixed {
            return Err(Error::InvalidSetting(format!(
                "tile {w}x{h} with an overlap of {overlap} on each side moves on by only {advance} \
                 pixels per tile; use a tile of at least {} or a smaller overlap",
                MIN_ADVANCE_SHARE * overlap
            )));
        }
        Ok(TileGeometry {
            tile_width: w,
            tile_height: h,
            overlap,
            multiple,
            fixed,
            scale,
            edge_context: true,
        })
    }

    /// The same geometry for a model that reflect-pads its own input edges:
    /// no context is added at the frame's edges, only between tiles.
    pub fn model_pads_edges(self) -> Self {
        TileGeometry {
            edge_context: false,
            ..self
        }
    }

    /// Plans the tiles of a `width × height` frame.
    pub fn plan(&self, width: usize, height: usize) -> Result<TilePlan> {
        if width == 0 || height == 0 {
            return Err(Error::InvalidSize(format!("{width}x{height} frame")));
        }
        let cols = self.axis(width, self.tile_width);
        let rows = self.axis(height, self.tile_height);
        let tiles = cols.len().saturating_mul(rows.len());
        if tiles > MAX_TILES_PER_FRAME {
            return Err(Error::InvalidSize(format!(
                "a {width}x{height} frame would take {tiles} tiles of {}x{} (at most {MAX_TILES_PER_FRAME}); \
                 use a larger tile",
                self.tile_width, self.tile_height
            )));
        }
        Ok(TilePlan {
            width,
            height,
            scale: self.scale,
            col_weights: weights(&cols, self.scale),
            row_weights: weights(&rows, self.scale),
            cols,
            rows,
        })
    }

    fn axis(&self, len: usize, tile: usize) -> Vec<AxisTile> {
        let o = self.overlap;
        // Context reached past each frame edge. A model that pads its own
        // edges still gets it on an axis too short for that padding.
        let edge = if self.edge_context || len <= o { o } else { 0 };
        let trusted = tile - 2 * o;
        if len + 2 * edge <= tile {
            let window = if self.fixed {
                tile
            } else {
                (len + 2 * edge).div_ceil(self.multiple) * self.multiple
            };
            return vec![AxisTile {
                start: -(edge as isize),
                len: window,
                trusted: (0, len),
            }];
        }
        // Neighbouring trusted zones overlap by a blend band as wide as the
        // context, or as wide as they can be.
        let band = o.min(trusted - 1);
        debug_assert_eq!(trusted - band, advance(tile, o));
        // Windows span [-edge, len + edge); each step may move at most
        // `trusted - band`.
        let count = 1 + (len + 2 * edge - tile).div_ceil(trusted - band);
        // As many tiles as the largest size needs, each shrunk to what still
        // covers the frame: a 320-pixel row takes two 180-pixel windows, not
        // two of 256. A fixed-shape model keeps its size.
        let tile = if self.fixed {
            tile
        } else {
            let needed = (len + 2 * edge + (count - 1) * (2 * o + band)).div_ceil(count);
            (needed.div_ceil(self.multiple) * self.multiple).min(tile)
        };
        let span = len + 2 * edge - tile;
        (0..count)
            .map(|i| {
                let start =
                    ((i * span) as f64 / (count - 1) as f64).round() as isize - edge as isize;
                let begin = if i == 0 {
                    0
                } else {
                    (start + o as isize) as usize
                };
                let end = if i + 1 == count {
                    len
                } else {
                    (start + (tile - o) as isize) as usize
                };
                AxisTile {
                    start,
                    len: tile,
                    trusted: (begin, end),
                }
            })
            .collect()
    }
}

/// One tile's extent along one axis, in input pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AxisTile {
    /// First input pixel of the window; negative where it reaches into the padding.
    pub start: isize,
    /// Window length.
    pub len: usize,
    /// The part of the frame this tile's output is trusted for, `[begin, end)`.
    pub trusted: (usize, usize),
}

/// Per-axis blend weights at output resolution: for each tile, the output
/// range it contributes to and its weights there.
#[derive(Debug, Clone)]
pub struct AxisWeights {
    /// First output pixel (frame coordinates) with a non-zero weight.
    pub begin: usize,
    pub weights: Vec<f32>,
}

fn ramp(t: usize, len: usize) -> f32 {
    0.5 - 0.5 * (std::f32::consts::PI * (t as f32 + 0.5) / len as f32).cos()
}

fn weights(tiles: &[AxisTile], scale: usize) -> Vec<AxisWeights> {
    let raw: Vec<AxisWeights> = tiles
        .iter()
        .enumerate()
        .map(|(i, tile)| {
            let (a, b) = (tile.trusted.0 * scale, tile.trusted.1 * scale);
            let weights = (a..b)
                .map(|x| {
                    let mut w = 1.0;
                    if i > 0 {
                        let band_end = tiles[i - 1].trusted.1 * scale;
                        if x < band_end {
                            w *= ramp(x - a, band_end - a);
                        }
                    }
                    if let Some(next) = tiles.get(i + 1) {
                        let band_start = next.trusted.0 * scale;
                        if x >= band_start {
                            w *= ramp(b - 1 - x, b - band_start);
                        }
                    }
                    w
                })
                .collect();
            AxisWeights { begin: a, weights }
        })
        .collect();
    // Normalise so that the weights at each output pixel sum to one.
    let end = raw
        .iter()
        .map(|w| w.begin + w.weights.len())
        .max()
        .unwrap_or(0);
    let mut sum = vec![0f32; end];
    for w in &raw {
        for (k, v) in w.weights.iter().enumerate() {
            sum[w.begin + k] += v;
        }
    }
    raw.into_iter()
        .map(|mut w| {
            for (k, v) in w.weights.iter_mut().enumerate() {
                *v /= sum[w.begin + k];
            }
            w
        })
        .collect()
}

/// Mirrors an index into `[0, len)` without repeating the edge pixel.
pub fn reflect(i: isize, len: usize) -> usize {
    if len == 1 {
        return 0;
    }
    let period = 2 * (len as isize - 1);
    let m = i.rem_euclid(period);
    (if m >= len as isize { period - m } else { m }) as usize
}

/// The tiles of one frame and how to blend them.
#[derive(Debug, Clone)]
pub struct TilePlan {
    pub width: usize,
    pub height: usize,
    pub scale: usize,
    pub cols: Vec<AxisTile>,
    pub rows: Vec<AxisTile>,
    col_weights: Vec<AxisWeights>,
    row_weights: Vec<AxisWeights>,
}

/// A tile of a plan: its column and row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileIndex {
    pub col: usize,
    pub row: usize,
}

impl TilePlan {
    pub fn len(&self) -> usize {
        self.cols.len() * self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Window width and height, the same for every tile of a frame.
    pub fn tile_size(&self) -> (usize, usize) {
        (self.cols[0].len, self.rows[0].len)
    }

    pub fn tiles(&self) -> impl Iterator<Item = TileIndex> + '_ {
        (0..self.rows.len())
            .flat_map(move |row| (0..self.cols.len()).map(move |col| TileIndex { col, row }))
    }

    /// The plan's tiles cut into inference runs of `batch`.
    pub fn batches(&self, batch: Batch) -> Vec<TileBatch> {
        let tiles: Vec<TileIndex> = self.tiles().collect();
        tiles
            .chunks(batch.chunk(tiles.len()))
            .map(|chunk| TileBatch {
                tiles: chunk.to_vec(),
                run_size: batch.run_size(chunk.len()),
            })
            .collect()
    }

    /// Input values of one tile.
    pub fn tile_len(&self) -> usize {
        let (w, h) = self.tile_size();
        3 * w * h
    }

    /// Output values of one tile.
    pub fn tile_output_len(&self) -> usize {
        self.tile_len() * self.scale * self.scale
    }

    /// One run's input: its tiles' windows of `img`, a fixed batch filled
    /// up with copies of the last tile.
    pub fn extract_batch(&self, img: &RgbImage, batch: &TileBatch) -> Result<Vec<f32>> {
        let len = self.tile_len();
        let mut data = try_zeroed(batch.run_size * len)?;
        for (k, &tile) in batch.tiles.iter().enumerate() {
            self.extract(img, tile, &mut data[k * len..(k + 1) * len]);
        }
        if let Some(last) = batch.tiles.len().checked_sub(1) {
            for k in batch.tiles.len()..batch.run_size {
                data.copy_within(last * len..(last + 1) * len, k * len);
            }
        }
        Ok(data)
    }

    /// Blends one run's output (as many tiles as `tiles`, any filler after
    /// them ignored) into `out`.
    pub fn accumulate_batch(&self, out: &mut RgbImage, tiles: &[TileIndex], data: &[f32]) {
        let len = self.tile_output_len();
        for (k, &tile) in tiles.iter().enumerate() {
            self.accumulate(out, tile, &data[k * len..(k + 1) * len]);
        }
    }

    /// Copies a tile's window out of `img` as planar RGB, reflecting at the borders.
    pub fn extract(&self, img: &RgbImage, tile: TileIndex, out: &mut [f32]) {
        let (c, r) = (self.cols[tile.col], self.rows[tile.row]);
        let xs: Vec<usize> = (0..c.len)
            .map(|x| reflect(c.start + x as isize, img.width))
            .collect();
        for ch in 0..3 {
            let src = img.plane(ch);
            let dst = &mut out[ch * c.len * r.len..(ch + 1) * c.len * r.len];
            for y in 0..r.len {
                let row = &src[reflect(r.start + y as isize, img.height) * img.width..];
                for (x, &sx) in xs.iter().enumerate() {
                    dst[y * c.len + x] = row[sx];
                }
            }
        }
    }

    /// Adds a tile's model output (planar RGB, `scale×` the window) into
    /// `out` with its blend weights.
    pub fn accumulate(&self, out: &mut RgbImage, tile: TileIndex, data: &[f32]) {
        let s = self.scale as isize;
        let (c, r) = (self.cols[tile.col], self.rows[tile.row]);
        let (cw, rw) = (&self.col_weights[tile.col], &self.row_weights[tile.row]);
        let (tw, th) = (c.len * self.scale, r.len * self.scale);
        // Where output pixel `begin` sits inside the tile's output.
        let x_off = (cw.begin as isize - c.start * s) as usize;
        let y_off = (rw.begin as isize - r.start * s) as usize;
        let ow = out.width;
        for ch in 0..3 {
            let src = &data[ch * tw * th..(ch + 1) * tw * th];
            let dst = out.plane_mut(ch);
            for (j, wy) in rw.weights.iter().enumerate() {
                let src_row = &src[(y_off + j) * tw + x_off..];
                let dst_row = &mut dst[(rw.begin + j) * ow + cw.begin..];
                for (i, wx) in cw.weights.iter().enumerate() {
                    dst_row[i] += wy * wx * src_row[i];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn coverage(plan: &TilePlan) -> Vec<f32> {
        let s = plan.scale;
        let mut out = RgbImage::new(plan.width * s, plan.height * s);
        let (tw, th) = plan.tile_size();
        let ones = vec![1.0; 3 * tw * th * s * s];
        for t in plan.tiles() {
            plan.accumulate(&mut out, t, &ones);
        }
        out.data
    }

    #[test]
    fn reflect_mirrors_without_repeating_the_edge() {
        let got: Vec<usize> = (-3..7).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
        assert_eq!(reflect(-5, 1), 0);
        assert_eq!(reflect(9, 2), 1);
    }

    #[test]
    fn small_frame_gets_one_shrunken_tile() {
        let g = TileGeometry::new(256, 16, 8, 2).unwrap();
        let plan = g.plan(50, 30).unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(plan.tile_size(), (88, 64));
        assert_eq!(plan.cols[0].start, -16);
    }

    #[test]
    fn fixed_models_always_get_their_size() {
        let g = TileGeometry::fixed(64, 64, 8, 2).unwrap();
        for (w, h) in [(1, 1), (10, 100), (200, 47)] {
            let plan = g.plan(w, h).unwrap();
            assert_eq!(plan.tile_size(), (64, 64));
            assert!(coverage(&plan).iter().all(|v| (v - 1.0).abs() < 1e-5));
        }
    }

    #[test]
    fn tile_snaps_to_the_multiple() {
        let g = TileGeometry::new(100, 8, 8, 4).unwrap();
        assert_eq!(g.tile_width, 104);
        assert!(TileGeometry::new(32, 16, 1, 2).is_err());
    }

    #[test]
    fn tiles_that_are_mostly_context_are_refused() {
        // 64 with 30 px of context a side moved on by one pixel: ~10,000
        // tiles on 160x68.
        let err = TileGeometry::new(64, 30, 1, 2).unwrap_err().to_string();
        assert!(err.contains("moves on by only 1 pixels"), "{err}");
        assert!(err.contains("at least 120"), "{err}");
        assert!(TileGeometry::new(120, 30, 1, 2).is_ok());
        assert!(TileGeometry::new(119, 30, 1, 2).is_err());
        // A fixed-size model keeps its own size.
        assert!(TileGeometry::fixed(64, 64, 30, 2).is_ok());
    }

    #[test]
    fn a_frame_needing_too_many_tiles_is_an_error() {
        let g = TileGeometry::fixed(16, 16, 4, 1).unwrap();
        let err = g.plan(8192, 8192).unwrap_err().to_string();
        assert!(err.contains("tiles"), "{err}");
        assert!(g.plan(512, 512).is_ok());
    }

    #[test]
    fn batches_cover_every_tile_once_and_fill_fixed_runs() {
        let g = TileGeometry::new(64, 8, 1, 2).unwrap();
        let plan = g.plan(300, 100).unwrap();
        let img = RgbImage::new(300, 100);
        for batch in [
            Batch::UpTo(1),
            Batch::UpTo(4),
            Batch::UpTo(usize::MAX),
            Batch::Fixed(4),
        ] {
            let runs = plan.batches(batch);
            let tiles: Vec<TileIndex> = runs.iter().flat_map(|r| r.tiles.clone()).collect();
            assert_eq!(tiles, plan.tiles().collect::<Vec<_>>(), "{batch:?}");
            for run in &runs {
                assert!(run.run_size >= run.tiles.len());
                assert_eq!(
                    plan.extract_batch(&img, run).unwrap().len(),
                    run.run_size * plan.tile_len()
                );
            }
        }
        assert!(plan
            .batches(Batch::Fixed(4))
            .iter()
            .all(|r| r.run_size == 4));
    }

    #[test]
    fn tiles_shrink_to_cover_the_frame_evenly() {
        let g = TileGeometry::new(256, 8, 4, 2).unwrap();
        let plan = g.plan(320, 180).unwrap();
        assert_eq!(plan.cols.len(), 2);
        // (320 + 8) / 2 = 164 trusted + 16 context = 180, a multiple of 4.
        assert_eq!(plan.tile_size(), (180, 196));
        let fixed = TileGeometry::fixed(64, 64, 8, 2).unwrap();
        assert_eq!(fixed.plan(100, 100).unwrap().tile_size(), (64, 64));
    }

    #[test]
    fn neighbours_overlap_by_the_blend_band() {
        let g = TileGeometry::new(64, 8, 1, 1).unwrap();
        let plan = g.plan(300, 64).unwrap();
        for pair in plan.cols.windows(2) {
            assert!(pair[0].trusted.1 >= pair[1].trusted.0 + 8, "{pair:?}");
        }
        assert_eq!(plan.cols.first().unwrap().trusted.0, 0);
        assert_eq!(plan.cols.last().unwrap().trusted.1, 300);
    }

    #[test]
    fn weights_rise_smoothly_across_a_seam() {
        let g = TileGeometry::new(64, 8, 1, 1).unwrap();
        let plan = g.plan(100, 10).unwrap();
        let second = &plan.col_weights[1];
        let head: Vec<f32> = second.weights[..8].to_vec();
        assert!(head.windows(2).all(|p| p[1] > p[0]), "{head:?}");
        assert!(head[0] > 0.0 && head[0] < 0.1);
    }

    #[test]
    fn models_that_pad_their_edges_get_no_context_there() {
        let g = TileGeometry::new(256, 7, 1, 2).unwrap().model_pads_edges();
        let plan = g.plan(176, 144).unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(plan.tile_size(), (176, 144));
        assert_eq!((plan.cols[0].start, plan.rows[0].start), (0, 0));

        let g = TileGeometry::new(64, 8, 1, 1).unwrap().model_pads_edges();
        let plan = g.plan(300, 64).unwrap();
        let (first, last) = (plan.cols[0], *plan.cols.last().unwrap());
        assert_eq!((first.start, first.trusted.0), (0, 0));
        assert_eq!(last.start + last.len as isize, 300);
        assert_eq!(last.trusted.1, 300);
        // Interior edges keep their context.
        assert_eq!(
            first.trusted.1 as isize,
            first.start + first.len as isize - 8
        );
        // Fewer windows than with reflected context at both ends.
        let padded = TileGeometry::new(64, 8, 1, 1)
            .unwrap()
            .plan(300, 64)
            .unwrap();
        assert!(plan.cols.len() <= padded.cols.len());
        assert_eq!(plan.rows.len(), 1);
    }

    proptest! {
        #[test]
        fn weights_are_a_partition_of_unity(
            w in 1usize..400, h in 1usize..200, tile in 8usize..128,
            overlap in 0usize..24, multiple in 1usize..9, scale in 1usize..5,
            edge_context: bool,
        ) {
            prop_assume!(tile > 2 * overlap + multiple);
            let snapped = tile.div_ceil(multiple) * multiple;
            prop_assume!(advance(snapped, overlap) * MIN_ADVANCE_SHARE >= snapped);
            let mut g = TileGeometry::new(tile, overlap, multiple, scale).unwrap();
            if !edge_context {
                g = g.model_pads_edges();
            }
            let plan = g.plan(w, h).unwrap();
            let (tw, th) = plan.tile_size();
            prop_assert_eq!(tw % g.multiple, 0);
            prop_assert_eq!(th % g.multiple, 0);
            for v in coverage(&plan) {
                prop_assert!((v - 1.0).abs() < 1e-4, "coverage {}", v);
            }
            for c in &plan.cols {
                let (a, b) = c.trusted;
                // Context before and after the trusted zone; none is needed at
                // a frame edge when the model pads it.
                let padded = edge_context || w <= overlap;
                let before = if a == 0 && !padded { 0 } else { overlap as isize };
                let after = if b == w && !padded { 0 } else { overlap as isize };
                prop_assert!(c.start + before <= a as isize);
                prop_assert!(b as isize <= c.start + c.len as isize - after);
                prop_assert!(c.start >= -(overlap as isize));
                if !edge_context && !g.fixed && w > overlap {
                    prop_assert!(c.start >= 0);
                }
            }
        }
    }
}
