//! The accepted range of every upscaler setting, in one place: the element's
//! property specs and the command line's argument parsers both read these,
//! so a value one front end accepts is never refused (or panicked on) by
//! the other.

use std::ops::RangeInclusive;

/// Tile edge in input pixels, context included; 0 = the model's preference.
pub const TILE_SIZE: RangeInclusive<u32> = 0..=8192;
/// Context per side in input pixels.
pub const TILE_OVERLAP: RangeInclusive<u32> = 0..=1024;
/// GPU index.
pub const DEVICE_ID: RangeInclusive<i32> = 0..=255;
/// Inference workers; 0 = one on the CPU, two on a GPU.
pub const STREAMS: RangeInclusive<u32> = 0..=16;
/// Intra-op threads per worker; 0 = every core.
pub const THREADS: RangeInclusive<u32> = 0..=256;
/// Tiles per inference run; 0 = automatic.
pub const BATCH_SIZE: RangeInclusive<u32> = 0..=1024;
/// Frames inside the pipeline at once.
pub const MAX_FRAMES_IN_FLIGHT: RangeInclusive<u32> = 1..=64;
/// Milliseconds a live frame may wait before overload handling applies.
pub const LATENCY_BUDGET_MS: RangeInclusive<u32> = 1..=600_000;
/// Constant quality (x264/x265 CRF): x264enc's `quantizer` takes 0–50 and
/// x265's crf 0–51, so the range both take stops at 50.
pub const CRF: RangeInclusive<u32> = 0..=50;
