//! One command's work on a job folder: what it was given, and what it
//! learns only once however many segments it touches: the input's probe,
//! and each segment's done-record checked against its file (a full read).

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::path::Path;

use crate::error::Result;

use super::manifest::{self, DoneRecord, Manifest};
use crate::media::{self, MediaInfo};
use crate::Caller;

pub struct Session<'a> {
    pub dir: &'a Path,
    pub manifest: &'a Manifest,
    /// No progress bar and no lines but losses and errors.
    pub quiet: bool,
    pub stall_timeout: u64,
    pub caller: Caller<'a>,
    info: OnceCell<MediaInfo>,
    /// Records this command found intact or made, by segment.
    verified: RefCell<HashMap<usize, DoneRecord>>,
}

impl<'a> Session<'a> {
    pub fn new(
        dir: &'a Path,
        manifest: &'a Manifest,
        quiet: bool,
        stall_timeout: u64,
        caller: Caller<'a>,
    ) -> Self {
        Session {
            dir,
            manifest,
            quiet,
            stall_timeout,
            caller,
            info: OnceCell::new(),
            verified: RefCell::new(HashMap::new()),
        }
    }

    /// A session whose input this command has probed already.
    pub fn with_info(self, info: MediaInfo) -> Self {
        let _ = self.info.set(info);
        self
    }

    /// The input as the discoverer sees it, probed on first need.
    pub fn info(&self) -> Result<&MediaInfo> {
        if let Some(info) = self.info.get() {
            return Ok(info);
        }
        let info = media::discover(&self.manifest.input.path)?;
        Ok(self.info.get_or_init(|| info))
    }

    /// Segment `index`'s done-record if it vouches for an intact file; a
    /// file is read in full at most once per session. A failed check is
    /// not kept: another run may make the segment meanwhile.
    pub fn done(&self, index: usize) -> Result<DoneRecord, String> {
        if let Some(record) = self.verified.borrow().get(&index) {
            return Ok(record.clone());
        }
        let record = manifest::check_done(self.dir, self.manifest, index)?;
        self.made(record.clone());
        Ok(record)
    }

    /// Notes a record this session has just committed (its file hashed as
    /// it was written).
    pub fn made(&self, record: DoneRecord) {
        self.verified.borrow_mut().insert(record.index, record);
    }
}
