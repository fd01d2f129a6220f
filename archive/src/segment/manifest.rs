//! The job folder: manifest.json (what to make), segments/NNNNN.mkv (what
//! was made) and segments/NNNNN.json (the done-record that vouches for it).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::error::{bail, err, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::media::clip_text;
use crate::request::{Container, UpscaleOptions};
use crate::Error;

/// Bumped whenever a field changes meaning; a folder of another format is refused.
/// 2: the manifest's checksum beside it, segment files named by their content.
pub const FORMAT: u32 = 2;
pub const GENDR_VERSION: &str = env!("CARGO_PKG_VERSION");
/// How much of each end of the input the checksum reads.
const CHECKSUM_EDGE: u64 = 4 << 20;
/// The largest shift of an encoder's timestamps a done-record may claim:
/// x264enc shifts by up to 1000 hours.
const MAX_ENCODER_SHIFT_NS: u64 = 1001 * 3600 * 1_000_000_000;
/// Every time in a job file stays below this, so that sums of two never
/// overflow and none is GStreamer's "no time" (u64::MAX).
const MAX_TIME_NS: u64 = i64::MAX as u64 / 4;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub gendr_version: String,
    pub input: InputId,
    pub options: UpscaleOptions,
    /// The output container join writes (mp4, mkv, mov); None: any.
    pub container: Option<Container>,
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

/// The SHA-256 of manifest.json as plan wrote it, in `sha256sum` form.
fn checksum_path(dir: &Path) -> PathBuf {
    dir.join("manifest.sha256")
}

pub fn segments_folder(dir: &Path) -> PathBuf {
    dir.join("segments")
}

/// A segment's video, named by its index and content: a new file never
/// replaces the one a done-record names, so renaming the record into place
/// is the one step that commits both.
pub fn segment_path(dir: &Path, record: &DoneRecord) -> PathBuf {
    segments_folder(dir).join(format!("{:05}-{}.mkv", record.index, &record.sha256[..16]))
}

pub fn record_path(dir: &Path, index: usize) -> PathBuf {
    segments_folder(dir).join(format!("{index:05}.json"))
}

/// Held while a segment is made or its leftovers are removed.
pub fn lock_path(dir: &Path, index: usize) -> PathBuf {
    segments_folder(dir).join(format!(".{index:05}.gendr-lock"))
}

/// The prefix of the hidden files a run of segment `index` writes into
/// (`.NNNNN.mkv.XXXX.gendr-partial`, `.NNNNN.json.XXXX.gendr-partial`).
pub fn partial_prefix(index: usize, what: &str) -> String {
    format!(".{index:05}.{what}.")
}

/// Removes what runs of segment `index` left: partial files of killed
/// runs, and, given the done-record `kept` that commits the segment, the
/// videos of earlier runs it does not name (without one, a damaged record's
/// video stays for whoever looks into it). Called only while holding the
/// segment's lock, so no live run's files are touched.
pub fn remove_leftovers(dir: &Path, index: usize, kept: Option<&DoneRecord>) {
    let Ok(entries) = std::fs::read_dir(segments_folder(dir)) else {
        return;
    };
    let partial = format!(".{index:05}.");
    let video = format!("{index:05}-");
    let kept = kept.map(|r| segment_path(dir, r));
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let leftover = (name.starts_with(&partial) && name.ends_with(".gendr-partial"))
            || (name.starts_with(&video)
                && name.ends_with(".mkv")
                && kept.as_ref().is_some_and(|kept| entry.path() != *kept));
        if leftover {
            let _ = std::fs::remove_file(entry.path());
        }
    }
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
    /// Reads `dir`'s manifest; a folder of another format or gendr version,
    /// a manifest changed since plan wrote it, or one that does not hold
    /// together is refused with one line.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = manifest_path(dir);
        let bytes = std::fs::read(&path).map_err(|e| {
            err!(
                Job,
                "{}: {e}; make the job with gendr plan IN --job {}",
                path.display(),
                dir.display()
            )
        })?;
        let plan_again = format!("remove {} and plan the job again", dir.display());
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            err!(
                Job,
                "{}: not a gendr job manifest ({e}); {plan_again}",
                path.display()
            )
        })?;
        let format = value.get("format").and_then(|f| f.as_u64());
        let version = value.get("gendr_version").and_then(|v| v.as_str());
        if format != Some(u64::from(FORMAT)) || version != Some(GENDR_VERSION) {
            bail!(
                Job,
                "{} was made by gendr {} (job format {}); this is gendr {GENDR_VERSION} (format {FORMAT}), \
                 whose segments could differ: finish it with that gendr, or remove the folder and plan again",
                dir.display(),
                clip_text(version.unwrap_or("?")),
                format.map_or("?".to_string(), |f| f.to_string()),
            );
        }
        let stored = std::fs::read_to_string(checksum_path(dir)).unwrap_or_default();
        if stored.split_whitespace().next() != Some(hex(&Sha256::digest(&bytes)).as_str()) {
            bail!(
                Job,
                "{} is not the manifest gendr plan wrote (it does not match {}): job files are not \
                 to be edited; {plan_again}",
                path.display(),
                checksum_path(dir).display()
            );
        }
        let manifest: Manifest = serde_json::from_value(value).map_err(|e| {
            err!(
                Job,
                "{}: damaged manifest ({e}); {plan_again}",
                path.display()
            )
        })?;
        manifest
            .check()
            .map_err(|e| err!(Job, "{}: {e:#}; {plan_again}", path.display()))?;
        Ok(manifest)
    }

    /// Writes the manifest atomically, then its checksum.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the job folder {}", dir.display()))?;
        let bytes = serde_json::to_vec_pretty(self)?;
        write_atomically(&manifest_path(dir), &bytes)?;
        let line = format!("{}  manifest.json\n", hex(&Sha256::digest(&bytes)));
        write_atomically(&checksum_path(dir), line.as_bytes())
    }

    /// Identifies this plan in its segments' done-records, so that a
    /// segment made for another plan in the same folder is never used. The
    /// input's path is left out: a moved input is still the same input.
    pub fn fingerprint(&self) -> String {
        let mut anywhere = self.clone();
        anywhere.input.path = PathBuf::new();
        let json = serde_json::to_vec(&anywhere).expect("a manifest serialises");
        hex(&Sha256::digest(json))
    }

    /// Refuses to work from a plan whose input has changed.
    pub fn check_input(&self) -> Result<()> {
        let now = InputId::of(&self.input.path)?;
        if let Some(what) = self.input.changed(&now) {
            bail!(
                Job,
                "{} changed since the job was planned ({what}); its segments would not fit: plan the job again",
                self.input.path.display()
            );
        }
        Ok(())
    }

    /// What a manifest must hold to be worked from, checked as strictly as
    /// the command line: options in range, and segments that follow one
    /// another from the input's first frame and time to its last, in order.
    fn check(&self) -> Result<()> {
        if !self.input.path.is_absolute() {
            bail!(Job, "the input's path is not absolute");
        }
        self.options.check_values()?;
        crate::request::positive_seconds(&self.segment_seconds.to_string())
            .map_err(|e| err!(Job, "segment_seconds: {e}"))?;
        if self.first_pts_ns > self.end_pts_ns || self.end_pts_ns > MAX_TIME_NS {
            bail!(Job, "the input's first time is after its end");
        }
        if self.segments.is_empty() {
            bail!(Job, "it lists no segments");
        }
        let (mut frame, mut pts) = (0u64, self.first_pts_ns);
        let last = self.segments.len() - 1;
        for (i, segment) in self.segments.iter().enumerate() {
            let span = segment.end_pts_ns.saturating_sub(segment.first_pts_ns);
            let fits = segment.index == i
                && segment.first_frame == frame
                && segment.first_pts_ns == pts
                && segment.frames >= 1
                // Frames have distinct times inside [first, end).
                && segment.frames <= span.max(1)
                && (segment.first_pts_ns < segment.end_pts_ns
                    || (i == last && segment.first_pts_ns == segment.end_pts_ns));
            if !fits {
                bail!(
                    Job,
                    "segment {i} does not follow segment {} (segments must tile the input's frames and \
                     times in order, each from where the one before ends)",
                    i.saturating_sub(1)
                );
            }
            frame += segment.frames;
            pts = segment.end_pts_ns;
        }
        if frame != self.frames || pts != self.end_pts_ns {
            bail!(
                Job,
                "the segments hold {frame} frames up to {:.3} s, the input {} frames up to {:.3} s",
                pts as f64 / 1e9,
                self.frames,
                self.end_pts_ns as f64 / 1e9
            );
        }
        Ok(())
    }
}

/// Writes `path` through a hidden temporary file renamed over it, so that
/// a reader sees the old or the new content, never part of it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cannot =
        |e: std::io::Error| Error::from(e).context(format!("cannot write {}", path.display()));
    let mut file = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".gendr-partial")
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
    record.check(segment)?;
    let path = segment_path(dir, &record);
    let (sha256, size) = file_checksum(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if size != record.size {
        return Err(format!("its file has {size} bytes, not {}", record.size));
    }
    if sha256 != record.sha256 {
        return Err("its file's checksum does not match".to_string());
    }
    Ok(record)
}

impl DoneRecord {
    /// What a record must hold for its segment: the plan's numbers, a
    /// checksum, and each frame's time once, in order, inside the
    /// segment's window.
    fn check(&self, segment: &Segment) -> Result<(), String> {
        let mismatch = || Err("its done-record does not match the plan".to_string());
        if (self.index, self.frames, self.first_pts_ns, self.end_pts_ns)
            != (
                segment.index,
                segment.frames,
                segment.first_pts_ns,
                segment.end_pts_ns,
            )
            || self.times.len() as u64 != segment.frames
            || self.decode_order.len() as u64 != segment.frames
        {
            return mismatch();
        }
        let sha256_like = self.sha256.len() == 64
            && self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let timing = [
            self.encoder_shift_ns,
            self.encoder_segment.start_ns,
            self.encoder_segment.time_ns,
            self.encoder_segment.base_ns,
        ];
        if !sha256_like
            || self.encoder_shift_ns > MAX_ENCODER_SHIFT_NS
            || timing.iter().any(|t| *t > MAX_TIME_NS)
            || self.caps.parse::<gst::Caps>().is_err()
        {
            return Err("its done-record is damaged".to_string());
        }
        // A last segment of one frame without a duration ends where it starts.
        let end = segment.end_pts_ns.max(segment.first_pts_ns + 1);
        let in_window = |pts: u64| (segment.first_pts_ns..end).contains(&pts);
        let rising = self.times.windows(2).all(|w| w[0].0 < w[1].0);
        let durations_fit = self
            .times
            .iter()
            .all(|(_, d)| d.is_none_or(|d| d <= MAX_TIME_NS));
        if self.times.first().map(|t| t.0) != Some(segment.first_pts_ns)
            || !rising
            || !self.times.iter().all(|t| in_window(t.0))
            || !durations_fit
        {
            return Err(
                "its done-record's frame times are not the segment's (out of order or outside \
                 its window)"
                    .to_string(),
            );
        }
        let mut decoded = self.decode_order.clone();
        decoded.sort_unstable();
        if !decoded.iter().eq(self.times.iter().map(|t| &t.0)) {
            return Err("its done-record's decode order is not its frames'".to_string());
        }
        Ok(())
    }
}
