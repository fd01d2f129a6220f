//! The folders a file's output needs: made, and on failure removed again
//! if this batch made them.

use std::path::{Path, PathBuf};

/// Makes the folders `output` needs; returns those it made, outermost
/// first, so that a failure removes only them (a folder that was there
/// before, read-only or not, is the user's).
pub(super) fn make_folders(output: &Path) -> std::io::Result<Vec<PathBuf>> {
    let Some(parent) = output.parent() else {
        return Ok(Vec::new());
    };
    let missing: Vec<PathBuf> = parent
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect();
    std::fs::create_dir_all(parent)?;
    Ok(missing.into_iter().rev().collect())
}

/// Removes the folders made for a failed file's output, innermost first,
/// while they are empty.
pub(super) fn remove_made_folders(made: &[PathBuf]) {
    for dir in made.iter().rev() {
        if std::fs::remove_dir(dir).is_err() {
            break;
        }
    }
}
