//! The engine's one error type. Each variant is a kind of failure a caller
//! acts on, raised where it happens (the cancel token, the watchdog, the
//! sink's or the file system's error code, a check), never read back from
//! words in a message; each holds the one line the user sees, to which
//! [`Error::context`] adds what was being done, keeping the kind.

use std::fmt::Display;
use std::io;

/// A failure of a known kind; its text is the one line the user sees.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The caller's [`Cancel`](crate::Cancel) was set; says what was kept.
    #[error("{0}")]
    Interrupted(String),
    /// No frame moved through any stage for the stall limit; names the
    /// stage (made by [`Error::stalled`]).
    #[error("{0}")]
    Stalled(String),
    /// A write failed for want of room: a full disk, a quota or a file
    /// size limit. Holds the reason as reported.
    #[error("{0}")]
    NoSpace(String),
    /// The input cannot be read as a video: missing, not a file, damaged,
    /// truncated, or without video.
    #[error("{0}")]
    Input(String),
    /// The input is readable, but what it holds cannot be written as asked
    /// (a stream the container cannot hold, a size over the limits, a
    /// stream that cannot be segmented).
    #[error("{0}")]
    Unsupported(String),
    /// The request itself is refused: an option's value or a combination.
    #[error("{0}")]
    Request(String),
    /// The output is there already and not to be replaced.
    #[error("{0}")]
    OutputExists(String),
    /// Another run is writing the output.
    #[error("{0}")]
    OutputLocked(String),
    /// A job folder (its manifest, segments or records) is not as planned.
    #[error("{0}")]
    Job(String),
    /// The pipeline failed as it ran: GStreamer's error in one line.
    #[error("{0}")]
    Pipeline(String),
    /// Any other failure of the file system.
    #[error("{0}")]
    Io(String),
    /// GStreamer could not build the pipeline (an element missing, a link
    /// refused).
    #[error("{0}")]
    Gst(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The stall of `stage`, with the way to wait longer.
    pub fn stalled(stage: impl Display) -> Error {
        Error::Stalled(format!(
            "stalled: {stage}; pass --stall-timeout SECS to wait longer (0 = never)"
        ))
    }

    /// The same kind of failure, its line led by what was being done.
    pub fn context(mut self, context: impl Display) -> Error {
        let line = self.line_mut();
        *line = format!("{context}: {line}");
        self
    }

    /// The line, to be led by a context (the Display is the line).
    fn line_mut(&mut self) -> &mut String {
        match self {
            Error::Interrupted(line)
            | Error::Stalled(line)
            | Error::NoSpace(line)
            | Error::Input(line)
            | Error::Unsupported(line)
            | Error::Request(line)
            | Error::OutputExists(line)
            | Error::OutputLocked(line)
            | Error::Job(line)
            | Error::Pipeline(line)
            | Error::Io(line)
            | Error::Gst(line) => line,
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
}

/// An error of another crate as one line: its text and its causes', as
/// `anyhow` wrote them (`{:#}`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        line = format!("{line}: {cause}");
        source = cause.source();
    }
    line
}

/// A full disk, a quota or a file size limit is [`Error::NoSpace`] by its
/// kind (ENOSPC, EDQUOT, EFBIG); any other I/O failure is [`Error::Io`].
impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        match e.kind() {
            io::ErrorKind::StorageFull
            | io::ErrorKind::FileTooLarge
            | io::ErrorKind::QuotaExceeded => Error::NoSpace(chain(&e)),
            _ => Error::Io(chain(&e)),
        }
    }
}

impl From<tempfile::PersistError> for Error {
    fn from(e: tempfile::PersistError) -> Error {
        let line = chain(&e);
        match Error::from(e.error) {
            Error::NoSpace(_) => Error::NoSpace(line),
            _ => Error::Io(line),
        }
    }
}

/// GStreamer's refusals while a pipeline is built or started.
macro_rules! from_gst {
    ($($t:ty),+) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Error {
                Error::Gst(chain(&e))
            }
        }
    )+};
}
from_gst!(
    gst::glib::Error,
    gst::glib::BoolError,
    gst::StateChangeError,
    gst::PadLinkError,
    gst::FlowError
);

/// A size in a file's layout that does not fit this machine's integers.
impl From<std::num::TryFromIntError> for Error {
    fn from(e: std::num::TryFromIntError) -> Error {
        Error::Io(chain(&e))
    }
}

impl From<std::array::TryFromSliceError> for Error {
    fn from(e: std::array::TryFromSliceError) -> Error {
        Error::Io(chain(&e))
    }
}

/// A job file that does not parse or cannot be written as JSON.
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::Job(chain(&e))
    }
}

/// The core library's refusals (an unknown model, an option out of range).
impl From<gendr::Error> for Error {
    fn from(e: gendr::Error) -> Error {
        Error::Request(chain(&e))
    }
}

/// What was being done, added to a failure (or naming a missing part of a
/// GStreamer graph), as `anyhow::Context` did.
pub(crate) trait Context<T> {
    fn context(self, context: impl Display) -> Result<T>;
    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl Display) -> Result<T> {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| e.into().context(context()))
    }
}

/// A pad, a bus or a template of a GStreamer element that is not there.
impl<T> Context<T> for Option<T> {
    fn context(self, context: impl Display) -> Result<T> {
        self.ok_or_else(|| Error::Gst(context.to_string()))
    }

    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.ok_or_else(|| Error::Gst(context().to_string()))
    }
}

/// Returns an [`Error`] of the kind named first, its line formatted from the rest.
macro_rules! bail {
    ($kind:ident, $($line:tt)+) => {
        return Err($crate::Error::$kind(format!($($line)+)))
    };
}

/// An [`Error`] of the kind named first, its line formatted from the rest.
macro_rules! err {
    ($kind:ident, $($line:tt)+) => {
        $crate::Error::$kind(format!($($line)+))
    };
}

pub(crate) use {bail, err};

#[cfg(test)]
mod tests;
