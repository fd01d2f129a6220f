//! The archival engine behind `gendr upscale`, `plan`, `run-segment` and
//! `join`: the input probed and checked, one GStreamer job graph per file
//! or segment, and segmented, resumable jobs on top. It knows nothing of
//! the command line: progress and messages go to an [`Observer`], and a
//! run stops when its cancel flag is set.

pub mod media;
pub mod observer;
pub mod segment;
pub mod upscale;

pub use observer::{Caller, Observer};
