//! The job folder: manifest.json (what to make), segments/NNNNN.mkv (what
//! was made) and segments/NNNNN.json (the done-record that vouches for it).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::upscale::UpscaleOptions;

/// Bumped whenever a field changes meaning; a folder of another format is refused.
pub const FORMAT: u32 = 1;
pub const GENDR_VERSION: &str = env!("CARGO_PKG_VERSION");
/// How much of each end of the input the checksum reads.
const CHECKSUM_EDGE: u64 = 4 << 20;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub gendr_version: String,
    pub input: InputId,
    pub options: UpscaleOptions,
    /// The output container join writes (mp4, mkv, mov); None: any.
    pub container: Option<String>,
    pub segment_seconds: f64,
    /// Video frames in the input, and its first pts and end (last pts plus
    /// the last frame's duration), ns.
    pub frames: u64,
    pub first_pts_ns: u64,
    pub end_pts_ns: u64,
    pub segments: Vec<Segment>,
}

/// What identifies the input without reading all of it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct InputId {
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: u64,
    /// SHA-256 over the size and the first and last 4 MiB.
    pub checksum: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Segment {
    pub index: usize,
    /// The first frame's index in presentation order, from 0.
    pub first_frame: u64,
    pub frames: u64,
    pub first_pts_ns: u64,
    /// The next segment's first pts (the input's end for the last one).
    pub end_pts_ns: u64,
    /// Whether the segment starts at a keyframe (otherwise decoding starts
    /// at the keyframe before and the frames before `first_pts_ns` are dropped).
    pub starts_at_keyframe: bool,
}

/// Written after a segment's file is in place: what it holds and its checksum.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct DoneRecord {
    /// [`Manifest::fingerprint`] of the plan it was made for.
    pub plan: String,
    pub index: usize,
    pub frames: u64,
    pub first_pts_ns: u64,
    pub end_pts_ns: u64,
    pub size: u64,
    pub sha256: String,
    /// The encoded video's caps, which join gives its muxer.
    pub caps: String,
    /// The encoder's output segment, and how far its timestamps are shifted
    /// from the input's (x264enc's room for decode times before the first
    /// frame): join hands the muxer the segments' video timed as the
    /// encoder timed it.
    pub encoder_segment: EncoderSegment,
    pub encoder_shift_ns: u64,
    /// Each frame's pts and duration in presentation order, ns: exact where
    /// the .mkv rounds to milliseconds.
    pub times: Vec<(u64, Option<u64>)>,
    /// Each frame's pts in decode order (the order of the .mkv's blocks).
    pub decode_order: Vec<u64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct EncoderSegment {
    pub start_ns: u64,
    pub time_ns: u64,
    pub base_ns: u64,
}

pub fn manifest_path(dir: &Path) -> PathBuf {
    dir.join("manifest.json")
}

pub fn segment_path(dir: &Path, index: usize) -> PathBuf {
    dir.join("segments").join(format!("{index:05}.mkv"))
}

pub fn record_path(dir: &Path, index: usize) -> PathBuf {
    dir.join("segments").join(format!("{index:05}.json"))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl InputId {
    pub fn of(path: &Path) -> Result<InputId> {
        let path = std::fs::canonicalize(path).with_context(|| format!("{}", path.display()))?;
        let mut file = std::fs::File::open(&path).with_context(|| format!("{}", path.display()))?;
        let meta = file.metadata()?;
        let size = meta.len();
        let mtime_ns = meta
            .modified()?
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut hash = Sha256::new();
        hash.update(size.to_le_bytes());
        let mut buf = Vec::new();
        (&mut file).take(CHECKSUM_EDGE).read_to_end(&mut buf)?;
        hash.update(&buf);
        if size > CHECKSUM_EDGE {
            buf.clear();
            file.seek(SeekFrom::Start(
                size.saturating_sub(CHECKSUM_EDGE).max(CHECKSUM_EDGE),
            ))?;
            file.read_to_end(&mut buf)?;
            hash.update(&buf);
        }
        Ok(InputId {
            path,
            size,
            mtime_ns,
            checksum: hex(&hash.finalize()),
        })
    }

    /// What differs from `now`, in words, if anything.
    pub fn changed(&self, now: &InputId) -> Option<String> {
        let mut what = Vec::new();
        if self.size != now.size {
            what.push(format!("size {} → {} bytes", self.size, now.size));
        }
        if self.mtime_ns != now.mtime_ns {
            what.push("modification time".to_string());
        }
        if self.checksum != now.checksum {
            what.push("content checksum".to_string());
        }
        (!what.is_empty()).then(|| what.join(", "))
    }
}

impl Manifest {
    /// Reads `dir`'s manifest; a folder of another format or gendr version
    /// is refused with one line.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = manifest_path(dir);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            anyhow!(
                "{}: {e}; make the job with gendr plan IN --job {}",
                path.display(),
                dir.display()
            )
        })?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| anyhow!("{}: not a gendr job manifest ({e})", path.display()))?;
        let format = value.get("format").and_then(|f| f.as_u64());
        let version = value.get("gendr_version").and_then(|v| v.as_str());
        if format != Some(u64::from(FORMAT)) || version != Some(GENDR_VERSION) {
            bail!(
                "{} was made by gendr {} (job format {}); this is gendr {GENDR_VERSION} (format {FORMAT}), \
                 whose segments could differ: finish it with that gendr, or remove the folder and plan again",
                dir.display(),
                version.unwrap_or("?"),
                format.map_or("?".to_string(), |f| f.to_string()),
            );
        }
        serde_json::from_value(value)
            .map_err(|e| anyhow!("{}: damaged manifest ({e}); plan again", path.display()))
    }

    /// Writes the manifest atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow!("cannot create the job folder {}: {e}", dir.display()))?;
        write_atomically(&manifest_path(dir), &serde_json::to_vec_pretty(self)?)
    }

    /// Identifies this plan in its segments' done-records, so that a
    /// segment made for another plan in the same folder is never used.
    pub fn fingerprint(&self) -> String {
        let json = serde_json::to_vec(self).expect("a manifest serialises");
        hex(&Sha256::digest(json))
    }

    /// Refuses to work from a plan whose input has changed.
    pub fn check_input(&self) -> Result<()> {
        let now = InputId::of(&self.input.path)?;
        if let Some(what) = self.input.changed(&now) {
            bail!(
                "{} changed since the job was planned ({what}); its segments would not fit: plan the job again",
                self.input.path.display()
            );
        }
        Ok(())
    }
}

/// Writes `path` through a hidden temporary file renamed over it, so that
/// a reader sees the old or the new content, never part of it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let cannot = |e: std::io::Error| anyhow!("cannot write {}: {e}", path.display());
    let mut file = tempfile::Builder::new()
        .prefix(".gendr-")
        .tempfile_in(folder)
        .map_err(cannot)?;
    file.write_all(bytes).map_err(cannot)?;
    readable(file.as_file()).map_err(cannot)?;
    file.as_file().sync_all().map_err(cannot)?;
    file.persist(path).map_err(|e| cannot(e.error))?;
    Ok(())
}

/// Job files are read by whoever runs the other segments or the join
/// (temporary files are made private).
pub fn readable(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
}

/// SHA-256 of a whole file, and its size.
pub fn file_checksum(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hash = Sha256::new();
    let size = std::io::copy(&mut file, &mut hash)?;
    Ok((hex(&hash.finalize()), size))
}

/// The done-record of segment `index` if the segment is finished and
/// intact for this plan; otherwise why not.
pub fn check_done(dir: &Path, manifest: &Manifest, index: usize) -> Result<DoneRecord, String> {
    let segment = &manifest.segments[index];
    let text =
        std::fs::read_to_string(record_path(dir, index)).map_err(|_| "not run".to_string())?;
    let record: DoneRecord =
        serde_json::from_str(&text).map_err(|_| "its done-record is damaged".to_string())?;
    if record.plan != manifest.fingerprint() {
        return Err("made for another plan".to_string());
    }
    if (
        record.index,
        record.frames,
        record.first_pts_ns,
        record.end_pts_ns,
    ) != (
        index,
        segment.frames,
        segment.first_pts_ns,
        segment.end_pts_ns,
    ) || record.times.len() as u64 != segment.frames
        || record.decode_order.len() as u64 != segment.frames
    {
        return Err("its done-record does not match the plan".to_string());
    }
    let (sha256, size) = file_checksum(&segment_path(dir, index))
        .map_err(|e| format!("{}: {e}", segment_path(dir, index).display()))?;
    if size != record.size {
        return Err(format!("its file has {size} bytes, not {}", record.size));
    }
    if sha256 != record.sha256 {
        return Err("its file's checksum does not match".to_string());
    }
    Ok(record)
}
