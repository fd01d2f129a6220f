//! Upscaling one image with an engine, tile by tile, without a pipeline:
//! the reference path for `gendr eval`, the model-only benchmark and tests.

use crate::engine::Engine;
use crate::frame::RgbImage;
use crate::tiling::TileGeometry;
use crate::Result;

/// Runs every tile of `img` through `engine` and blends the results.
pub fn upscale_image(
    engine: &mut Engine,
    geometry: &TileGeometry,
    batch: usize,
    img: &RgbImage,
) -> Result<RgbImage> {
    let plan = geometry.plan(img.width, img.height)?;
    let s = plan.scale;
    let (tw, th) = plan.tile_size();
    let (tile_len, out_len) = (3 * tw * th, 3 * tw * th * s * s);
    let batch = batch.max(1);
    let mut out = RgbImage::new(img.width * s, img.height * s);
    let tiles: Vec<_> = plan.tiles().collect();
    let mut input = vec![0f32; batch * tile_len];
    for chunk in tiles.chunks(batch) {
        for (k, &tile) in chunk.iter().enumerate() {
            plan.extract(img, tile, &mut input[k * tile_len..(k + 1) * tile_len]);
        }
        let result = engine.run(&input, batch, th, tw)?;
        for (k, &tile) in chunk.iter().enumerate() {
            plan.accumulate(&mut out, tile, &result[k * out_len..(k + 1) * out_len]);
        }
    }
    Ok(out)
}
