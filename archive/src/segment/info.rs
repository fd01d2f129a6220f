//! `gendr job info`: what a job folder holds, for people and for the
//! launchers (Ray, Slurm), which read this instead of the manifest.

use std::path::Path;

use crate::error::Result;
use serde::Serialize;

use super::manifest::{self, Manifest};
use crate::request::Container;

/// A job as its launcher needs it. The JSON form is a contract: fields may
/// be added, none renamed or removed.
#[derive(Serialize, Debug, PartialEq)]
pub struct JobInfo {
    pub input: String,
    /// The container join writes; None: the one the output names.
    pub container: Option<Container>,
    pub frames: u64,
    pub segment_count: usize,
    /// Segments with a done-record (committed by a run); join checks each
    /// against its file, so a damaged one still counts here.
    pub committed: usize,
    pub segments: Vec<SegmentInfo>,
}

#[derive(Serialize, Debug, PartialEq)]
pub struct SegmentInfo {
    pub index: usize,
    pub frames: u64,
    pub first_pts_ns: u64,
    pub end_pts_ns: u64,
    pub committed: bool,
}

impl JobInfo {
    /// Reads `dir`'s manifest with every check a run makes; no segment
    /// file is read.
    pub fn read(dir: &Path) -> Result<JobInfo> {
        let manifest = Manifest::load(dir)?;
        Ok(JobInfo::of(&manifest, |index| {
            manifest::record_path(dir, index).exists()
        }))
    }

    fn of(manifest: &Manifest, committed: impl Fn(usize) -> bool) -> JobInfo {
        let segments: Vec<SegmentInfo> = manifest
            .segments
            .iter()
            .map(|s| SegmentInfo {
                index: s.index,
                frames: s.frames,
                first_pts_ns: s.first_pts_ns,
                end_pts_ns: s.end_pts_ns,
                committed: committed(s.index),
            })
            .collect();
        JobInfo {
            input: manifest.input.path.display().to_string(),
            container: manifest.container,
            frames: manifest.frames,
            segment_count: segments.len(),
            committed: segments.iter().filter(|s| s.committed).count(),
            segments,
        }
    }

    /// For people: the plan and what is left to make.
    pub fn summary(&self) -> String {
        let pending: Vec<String> = self
            .segments
            .iter()
            .filter(|s| !s.committed)
            .map(|s| s.index.to_string())
            .collect();
        let container = self
            .container
            .map_or(String::new(), |c| format!(", into .{c}"));
        let mut text = format!(
            "{}: {} frames in {} segment(s){container}, {} committed",
            self.input, self.frames, self.segment_count, self.committed
        );
        if !pending.is_empty() {
            text += &format!("; to make: {}", pending.join(" "));
        }
        text
    }
}

#[cfg(test)]
mod tests;
