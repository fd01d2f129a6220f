//! Helpers shared by the core library's integration tests.
// Each test binary uses a different subset.
#![allow(dead_code)]

use std::path::PathBuf;

use gendr::engine::{Batch, Engine, EngineOptions, Provider};
use gendr::frame::{Colorimetry, Frame, PixelFormat};
use gendr::pipeline::{FramePipeline, PipelineConfig};
use gendr::tiling::TileGeometry;

/// A generated test model in tests/data.
pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// One-threaded CPU sessions: the tests run side by side on 2 cores.
pub fn cpu() -> EngineOptions {
    EngineOptions {
        provider: Provider::Cpu,
        threads: 1,
        ..Default::default()
    }
}

/// An RGB frame with a deterministic texture.
pub fn rgb_frame(w: usize, h: usize, shade: u8) -> Frame {
    let mut frame = Frame::new(PixelFormat::Rgb, w, h, Colorimetry::default()).unwrap();
    for (i, v) in frame.planes[0].data.iter_mut().enumerate() {
        *v = shade.wrapping_add((i % 29) as u8);
    }
    frame
}

/// A pipeline of `workers` conv_x2 engines with 32 px tiles.
pub fn pipeline(workers: usize, in_flight: usize, batch: Batch) -> FramePipeline<u32, u32> {
    let engines: Vec<Engine> = (0..workers)
        .map(|_| Engine::load(&data("conv_x2.onnx"), &cpu()).unwrap())
        .collect();
    let geometry = TileGeometry::new(32, 3, 1, 2).unwrap();
    FramePipeline::start(
        PipelineConfig {
            geometry,
            max_frames_in_flight: in_flight,
            batch,
            temporal: None,
        },
        engines,
    )
    .unwrap()
}
