//! The archival engine behind `gendr upscale`, `plan`, `run-segment` and
//! `join`: the input probed and checked, one GStreamer job graph per file
//! or segment, and segmented, resumable jobs on top. It knows nothing of
//! the command line: progress and messages go to an [`Observer`], a run
//! stops when its [`Cancel`] token is set, and the failures a caller acts
//! on are the variants of one [`Error`].

pub mod batch;
mod error;
mod finishing;
pub mod media;
pub mod observer;
pub mod request;
pub mod segment;
pub mod upscale;

pub use error::{Error, Result};
pub use observer::{BatchObserver, Caller, Cancel, Observer};
