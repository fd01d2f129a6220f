//! gendr: tiled one-step super-resolution for video.
//!
//! The library knows nothing of GStreamer. Data flows one way:
//! frames → tiles ([`tiling`]) → inference ([`engine`]) → blend → frames,
//! over the bounded channels of [`pipeline`]. The GStreamer element and the
//! CLI are thin layers over it.

pub mod checkout;
pub mod color;
pub mod engine;
pub mod error;
pub mod fallback;
pub mod frame;
pub mod gpu;
pub mod limits;
pub mod locate;
pub mod measure;
pub mod metrics;
pub mod model;
pub mod niqe;
pub mod openvino_engine;
pub mod openvino_runtime;
pub mod overload;
pub mod pipeline;
pub mod presets;
pub mod resize;
pub mod runtime;
pub mod temporal;
pub mod tiling;
pub mod upscale;
pub mod upscaler;

pub use error::{Error, Result};
