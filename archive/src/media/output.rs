//! The output side of a run: the claim on an output path, the hidden
//! partial file it is written into, and the move into place.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{bail, Context, Result};

/// Removes a file when dropped: scratch files never outlive an early return.
pub struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    pub fn new(path: PathBuf) -> Self {
        RemoveOnDrop(Some(path))
    }

    pub fn path(&self) -> &Path {
        self.0.as_deref().expect("set until dropped")
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A hidden file next to `output`, named after it: `.NAME.SUFFIX`.
pub fn hidden_sibling(output: &Path, suffix: &str) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    output.with_file_name(format!(".{name}.{suffix}"))
}

/// An exclusive advisory lock (flock) on a lock file, held until dropped;
/// the file is removed when dropped, while still locked.
pub struct FileLock {
    path: PathBuf,
    // Holds the lock until dropped.
    _file: File,
}

impl FileLock {
    /// The lock, or None while another process holds it.
    pub fn try_acquire(path: &Path) -> std::io::Result<Option<FileLock>> {
        FileLock::acquire(path, libc::LOCK_EX | libc::LOCK_NB)
    }

    /// The lock, once whoever holds it lets it go.
    pub fn wait(path: &Path) -> std::io::Result<FileLock> {
        FileLock::acquire(path, libc::LOCK_EX).map(|lock| lock.expect("a blocking lock is taken"))
    }

    fn acquire(path: &Path, operation: libc::c_int) -> std::io::Result<Option<FileLock>> {
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?;
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(file.as_raw_fd(), operation) } != 0 {
                let err = std::io::Error::last_os_error();
                return match err.raw_os_error() {
                    Some(libc::EWOULDBLOCK) => Ok(None),
                    Some(libc::EINTR) => continue,
                    _ => Err(err),
                };
            }
            // The previous holder removes the file before unlocking: a lock on a
            // file no longer at this path claims nothing, so try again.
            let locked = file.metadata()?;
            let current = std::fs::metadata(path).ok();
            if current.is_some_and(|m| m.dev() == locked.dev() && m.ino() == locked.ino()) {
                return Ok(Some(FileLock {
                    path: path.to_path_buf(),
                    _file: file,
                }));
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Removed while still locked; the lock goes with the descriptor afterwards.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One run's exclusive claim on an output path, held as a [`FileLock`] on
/// the hidden `.NAME.gendr-lock` next to it. A second run aiming at the
/// same path fails at once instead of sharing the file. Partial files for
/// the path found then were left by runs that were killed (every run
/// writing one holds the claim), and are removed.
pub fn claim_output(output: &Path) -> Result<FileLock> {
    let lock_path = hidden_sibling(output, "gendr-lock");
    match FileLock::try_acquire(&lock_path) {
        Ok(Some(lock)) => {
            remove_stale_partials(output);
            Ok(lock)
        }
        Ok(None) => {
            bail!(
            OutputLocked,
            "{}: another gendr run is writing this file; wait for it or choose another output name",
            output.display()
        )
        }
        Err(e) => Err(e).with_context(|| format!("{}: cannot write here", output.display())),
    }
}

/// Removes the `.NAME.XXXXXX.gendr-partial` files (what `partial_for`
/// makes) next to `output`; called with its claim held.
fn remove_stale_partials(output: &Path) {
    let Some(name) = output.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let folder = match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(middle) = file_name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".gendr-partial"))
        else {
            continue;
        };
        // tempfile's random part: letters and digits, no dots.
        if middle.is_empty() || !middle.chars().all(|c| c.is_ascii_alphanumeric()) {
            continue;
        }
        if std::fs::remove_file(entry.path()).is_ok() {
            tracing::info!(file = %entry.path().display(), "removed a partial file left by a killed run");
        }
    }
}

/// A unique, hidden file next to `output` for writing it, recognisably
/// gendr's; removed on every early return. Created readable as any new file
/// is under the umask (tempfile's own 0600 would keep the finished output
/// from the other users of shared storage).
pub fn partial_for(output: &Path) -> Result<tempfile::NamedTempFile> {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let folder = match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".gendr-partial")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(&folder)
        .with_context(|| format!("{}: cannot write here", output.display()))
}

/// Moves a finished partial file into place: over an existing output only
/// when `overwrite`, so a file that appeared meanwhile is never replaced.
pub fn persist(partial: tempfile::NamedTempFile, output: &Path, overwrite: bool) -> Result<()> {
    let persisted = if overwrite {
        partial.persist(output)
    } else {
        partial.persist_noclobber(output)
    };
    persisted
        .map(drop)
        .map_err(|e| e.error)
        .with_context(|| format!("moving the finished file to {}", output.display()))
}
