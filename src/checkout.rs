//! Finding the project checkout at run time: where `.deps`, `models/` and
//! `samples/` are for a binary run from `target/` or a test.

use std::path::{Path, PathBuf};

/// Folders that may be the project checkout, nearest first: those above the
/// running executable (`target/<profile>/gendr`, or `…/deps/test-…`), then
/// the checkout this was built from.
pub fn roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(2).take(3).map(Path::to_path_buf));
    }
    roots.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    roots
}
