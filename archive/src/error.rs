//! The kinds of failure a caller acts on, as a type rather than as words
//! in a message: the engine raises them where they happen (the cancel
//! token, the watchdog, the sink's or the file system's error code) and
//! passes them up inside its `anyhow` errors, from which
//! `downcast_ref::<Error>()` recovers them, context and all.

use std::io;

/// A failure of a known kind; its text is the one line the user sees.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's [`Cancel`](crate::Cancel) was set; says what was kept.
    #[error("{0}")]
    Interrupted(String),
    /// No frame moved through any stage for the stall limit; names the stage.
    #[error("stalled: {0}; pass --stall-timeout SECS to wait longer (0 = never)")]
    Stalled(String),
    /// A write failed for want of room: a full disk, a quota or a file
    /// size limit. Holds the reason as reported.
    #[error("{0}")]
    NoSpace(String),
}

impl Error {
    /// `e` as a typed [`Error::NoSpace`] when its kind says the disk, the
    /// quota or the file size limit is reached; otherwise as it is.
    pub fn from_io(e: io::Error) -> anyhow::Error {
        match e.kind() {
            io::ErrorKind::StorageFull
            | io::ErrorKind::FileTooLarge
            | io::ErrorKind::QuotaExceeded => Error::NoSpace(e.to_string()).into(),
            _ => e.into(),
        }
    }

    /// A GStreamer error posted for a failed write: filesink reports a
    /// full disk as `NoSpaceLeft`, and a quota or file size limit
    /// (EDQUOT, EFBIG) as `Write`.
    pub fn from_gst(err: &gst::message::Error, text: String) -> Option<Error> {
        let error = err.error();
        (error.matches(gst::ResourceError::NoSpaceLeft) || error.matches(gst::ResourceError::Write))
            .then_some(Error::NoSpace(text))
    }

    /// The typed kind inside an engine error, if it has one.
    pub fn kind_of(e: &anyhow::Error) -> Option<&Error> {
        e.downcast_ref::<Error>()
    }
}

#[cfg(test)]
mod tests;
