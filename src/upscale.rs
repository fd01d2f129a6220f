//! Upscaling one image with an engine, tile by tile, without a pipeline:
//! the reference path for `gendr eval`, the model-only benchmark and tests.

use crate::engine::{Batch, Engine};
use crate::frame::RgbImage;
use crate::tiling::TileGeometry;
use crate::Result;

/// Runs every tile of `img` through `engine` and blends the results.
pub fn upscale_image(
    engine: &mut Engine,
    geometry: &TileGeometry,
    batch: Batch,
    img: &RgbImage,
) -> Result<RgbImage> {
    let plan = geometry.plan(img.width, img.height)?;
    let s = plan.scale;
    let (tw, th) = plan.tile_size();
    let (tile_len, out_len) = (3 * tw * th, 3 * tw * th * s * s);
    let mut out = RgbImage::new(img.width * s, img.height * s);
    let tiles: Vec<_> = plan.tiles().collect();
    for chunk in tiles.chunks(batch.chunk(tiles.len())) {
        let run_size = batch.run_size(chunk.len());
        let mut input = vec![0f32; run_size * tile_len];
        for (k, &tile) in chunk.iter().enumerate() {
            plan.extract(img, tile, &mut input[k * tile_len..(k + 1) * tile_len]);
        }
        let result = engine.run(&input, run_size, th, tw)?;
        for (k, &tile) in chunk.iter().enumerate() {
            plan.accumulate(&mut out, tile, &result[k * out_len..(k + 1) * out_len]);
        }
    }
    Ok(out)
}
