//! Segmented, resumable jobs (docs/archival.md): `gendr plan` splits the
//! input at keyframes into a job folder, `gendr run-segment` upscales one
//! segment (anywhere, in any order, again after a crash), `gendr join`
//! copies the segments' video into one file with the input's other
//! streams, and `gendr upscale --resume` does all three in one folder.

pub mod info;
pub mod join;
pub mod manifest;
pub mod plan;
mod resume;
pub mod run;
pub mod session;

pub use resume::resume;
