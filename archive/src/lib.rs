//! The archival engine behind `gendr upscale`, `plan`, `run-segment` and
//! `join`: the input probed and checked, one GStreamer job graph per file
//! or segment, and segmented, resumable jobs on top. It knows nothing of
//! the command line: progress and messages go to an [`Observer`], a run
//! stops when its [`Cancel`] token is set, and the failures a caller acts
//! on are an [`Error`] kind.

mod error;
mod finishing;
pub mod media;
pub mod observer;
pub mod request;
pub mod segment;
pub mod upscale;

pub use error::Error;
pub use observer::{Caller, Cancel, Observer};
