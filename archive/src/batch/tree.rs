//! The files of the input tree, and what each turns out to be.

use std::path::{Path, PathBuf};

use crate::error::{bail, err, Result};

use crate::media;

/// Extensions of video files: one that cannot be read is a failure, where
/// an unreadable file of another kind is passed over as not a video.
const VIDEO_EXTENSIONS: &[&str] = &[
    "3g2", "3gp", "asf", "avi", "divx", "dv", "f4v", "flv", "m2ts", "m2v", "m4v", "mkv", "mov",
    "mp4", "mpeg", "mpg", "mts", "mxf", "ogv", "rm", "rmvb", "ts", "vob", "webm", "wmv", "y4m",
];

/// What a file in the input tree turned out to be.
#[derive(Debug)]
pub(super) enum Found {
    /// A video: upscaled.
    Video { frames: Option<u64> },
    /// A file named as a video that cannot be read: a failure.
    Broken(String),
    /// Not a video at all: passed over, with the reason.
    Other(String),
}

/// Collects the files below `dir` (relative to the input folder), sorted,
/// passing over hidden names (gendr's own partial and lock files among
/// them), the output folder when it lies inside, and links to folders (a
/// loop could never end).
pub(super) fn walk(
    dir: &Path,
    rel: &Path,
    skip: &Path,
    files: &mut Vec<PathBuf>,
    failures: &mut Vec<(PathBuf, String)>,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            failures.push((
                rel.to_path_buf(),
                format!("the folder cannot be read ({e})"),
            ));
            return;
        }
    };
    let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let (path, rel) = (entry.path(), rel.join(&name));
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        if path.is_dir() {
            if !is_link && std::fs::canonicalize(&path).ok().as_deref() != Some(skip) {
                walk(&path, &rel, skip, files, failures);
            }
        } else if path.is_file() {
            files.push(rel);
        }
    }
}

/// Tells videos from other files by what the discoverer finds in them.
/// A file found broken here is reported without a run: the run would
/// discover it again.
pub(super) fn classify(path: &Path) -> Found {
    let named_video = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.as_str()));
    let info = match discover(path) {
        Ok(info) => info,
        Err(e) if named_video => {
            return Found::Broken(format!("not a playable media file ({e:#})"))
        }
        Err(e) => return Found::Other(format!("{e:#}")),
    };
    let videos = info.video_streams();
    if videos.is_empty() {
        return Found::Other(if info.audio_streams().is_empty() {
            "no video stream".into()
        } else {
            "audio only".into()
        });
    }
    if videos.iter().all(|v| v.is_image()) {
        return Found::Other("a still picture".into());
    }
    let video = &videos[0];
    Found::Video {
        frames: media::frame_count(info.duration(), video.framerate()),
    }
}

/// GStreamer 1.22's discoverer, when it is not the first discovery in a
/// process, now and then loses a demuxer's error on a damaged file and waits
/// out its whole timeout (gst-discoverer-1.0 does it too, given several
/// files). Short first tries keep that cheap; the last gives a slow
/// file its time.
fn discover(path: &Path) -> Result<gst_pbutils::DiscovererInfo> {
    let uri = media::file_uri(path)?;
    for secs in [2, 5, 30] {
        let info = gst_pbutils::Discoverer::new(gst::ClockTime::from_seconds(secs))?
            .discover_uri(&uri)
            .map_err(|e| err!(Input, "{}", media::first_line(&e.to_string())))?;
        if info.result() != gst_pbutils::DiscovererResult::Timeout {
            return Ok(info);
        }
    }
    bail!(Input, "no answer from GStreamer's discoverer within 30 s")
}
