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
    let mut out = RgbImage::try_new(img.width * s, img.height * s)?;
    for run in plan.batches(batch) {
        let input = plan.extract_batch(img, &run)?;
        let result = engine.run(&input, run.run_size, th, tw)?;
        plan.accumulate_batch(&mut out, &run.tiles, &result);
    }
    Ok(out)
}
