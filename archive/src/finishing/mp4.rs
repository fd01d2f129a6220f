//! MP4/MOV repairs: the Opus decoder configuration box.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::error::{Context, Result};

/// The containers an Opus sample entry sits in, outermost first.
const PATH_TO_SAMPLE_ENTRIES: [&[u8; 4]; 5] = [b"trak", b"mdia", b"minf", b"stbl", b"stsd"];

/// Even a long film's index is a few MiB; a larger one is damage.
const MOOV_LIMIT: u64 = 256 << 20;

/// The highest input rate a real Opus stream names (the spec allows any
/// 32-bit value; encoders take at most 768 kHz). A `dOps` rate above it
/// read big-endian, as ISO BMFF stores it, but below it read little-endian
/// was written in the Ogg header's byte order.
const MAX_INPUT_RATE: u32 = 768_000;

/// GStreamer 1.22's mp4mux/qtmux copy the Ogg `OpusHead` fields (pre-skip,
/// input rate, output gain) into the `dOps` box little-endian, where ISO
/// BMFF has them big-endian: players then skip 14337 samples instead of
/// 312 at the start. Each such box in `path` is rewritten in the right
/// byte order; a box already right is left as it is (a later GStreamer
/// that writes it correctly needs nothing). Returns the boxes rewritten.
pub(crate) fn repair_opus_boxes(path: &Path) -> Result<usize> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("{}: reopening to check its Opus boxes", path.display()))?;
    let Some((moov_at, moov)) = read_moov(&mut file)? else {
        return Ok(0);
    };
    let mut repaired = 0;
    for at in opus_config_offsets(&moov) {
        let Some(fields) = moov.get(at..at + OPUS_FIELDS_LEN) else {
            continue;
        };
        if let Some(fixed) = big_endian_fields(fields) {
            file.seek(SeekFrom::Start(moov_at + at as u64))?;
            file.write_all(&fixed)?;
            repaired += 1;
        }
    }
    Ok(repaired)
}

/// Whether the MP4/MOV file at `path` has a timecode track (`tmcd`, as
/// capture tools and `ffmpeg -timecode` write), which GStreamer 1.22's
/// muxers cannot write.
pub(crate) fn has_timecode_track(path: &Path) -> Result<bool> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot be read", path.display()))?;
    let Some((_, moov)) = read_moov(&mut file)? else {
        return Ok(false);
    };
    let handler_types = boxes(&moov)
        .into_iter()
        .filter(|(kind, _, _)| kind == b"trak")
        .flat_map(|(_, at, len)| boxes(&moov[at..at + len]).into_iter().map(move |b| (at, b)))
        .filter(|(_, (kind, _, _))| kind == b"mdia")
        .flat_map(|(trak, (_, at, len))| {
            let mdia = trak + at;
            boxes(&moov[mdia..mdia + len])
                .into_iter()
                .filter(|(kind, _, _)| kind == b"hdlr")
                .map(move |(_, at, len)| (mdia + at, len))
        })
        .filter(|(_, len)| *len >= 12)
        // Version and flags, the component type, then the handler type.
        .map(|(hdlr, _)| &moov[hdlr + 8..hdlr + 12]);
    Ok(handler_types.into_iter().any(|t| t == b"tmcd"))
}

/// The file offset of the `moov` body and the body itself; None for a
/// file without one, or that is no MP4/MOV (its first box unlike theirs).
pub(crate) fn read_moov(file: &mut std::fs::File) -> Result<Option<(u64, Vec<u8>)>> {
    Ok(moov_box(file)?.map(|moov| (moov.at + moov.header, moov.body)))
}

/// A file's `moov` box: where it starts, its header's length, its body.
pub(super) struct MoovBox {
    pub at: u64,
    pub header: u64,
    pub body: Vec<u8>,
}

pub(super) fn moov_box(file: &mut std::fs::File) -> Result<Option<MoovBox>> {
    const TOP_LEVEL: [&[u8]; 7] = [
        b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid",
    ];
    let file_len = file.metadata()?.len();
    let mut at = 0u64;
    while at + 8 <= file_len {
        let mut header = [0u8; 16];
        file.seek(SeekFrom::Start(at))?;
        let n = file.read(&mut header)?;
        if at == 0 && !TOP_LEVEL.contains(&&header[4..8]) {
            return Ok(None);
        }
        let size = u64::from(u32::from_be_bytes(header[..4].try_into()?));
        let (header_len, size) = match size {
            0 => (8, file_len - at),
            1 if n >= 16 => (16, u64::from_be_bytes(header[8..16].try_into()?)),
            _ => (8, size),
        };
        if size < header_len {
            return Ok(None);
        }
        if &header[4..8] == b"moov" {
            let body_len = (size - header_len).min(MOOV_LIMIT);
            let mut body = vec![0u8; usize::try_from(body_len)?];
            file.seek(SeekFrom::Start(at + header_len))?;
            file.read_exact(&mut body)?;
            return Ok(Some(MoovBox {
                at,
                header: header_len,
                body,
            }));
        }
        at += size;
    }
    Ok(None)
}

/// Seconds from 1904-01-01 (where MP4 counts from) to the Unix epoch.
const MP4_EPOCH_OFFSET: i64 = 2_082_844_800;

/// What an MP4/MOV input says of itself that mp4mux/qtmux 1.22 write
/// otherwise or not at all.
#[derive(Debug, Default)]
pub(crate) struct QuickTimeMetadata {
    /// `mvhd`'s creation time, ns since the Unix epoch (None when 0).
    pub creation: Option<i64>,
    /// The `udta` box giving where it was recorded (`©xyz`, as phones and
    /// ffmpeg's .mov write it, or 3GPP `loci`, ffmpeg's .mp4), as it is.
    pub location_box: Option<Vec<u8>>,
    /// That location as ISO 6709 text (`+48.8577+002.2950/`).
    pub location: Option<String>,
}

impl QuickTimeMetadata {
    pub(crate) fn read(path: &Path) -> Result<QuickTimeMetadata> {
        let mut file = std::fs::File::open(path)
            .with_context(|| format!("{}: cannot be read", path.display()))?;
        let Some((_, moov)) = read_moov(&mut file)? else {
            return Ok(QuickTimeMetadata::default());
        };
        let creation = box_bodies(&moov)
            .find(|(kind, _)| kind == b"mvhd")
            .and_then(|(_, mvhd)| header_times(mvhd))
            .filter(|(created, _)| *created > 0)
            .map(|(created, _)| (created as i64 - MP4_EPOCH_OFFSET).saturating_mul(1_000_000_000));
        let mut metadata = QuickTimeMetadata {
            creation,
            ..QuickTimeMetadata::default()
        };
        for (_, at, len) in boxes(&moov).into_iter().filter(|(k, _, _)| k == b"udta") {
            let udta = &moov[at..at + len];
            let mut start = 0;
            for (kind, body_at, body_len) in boxes(udta) {
                let (whole, body) = (
                    &udta[start..body_at + body_len],
                    &udta[body_at..body_at + body_len],
                );
                start = body_at + body_len;
                let text = match &kind {
                    b"\xa9xyz" => xyz_text(body),
                    b"loci" => loci_text(body),
                    _ => continue,
                };
                metadata.location_box = Some(whole.to_vec());
                metadata.location = text;
                return Ok(metadata);
            }
        }
        Ok(metadata)
    }
}

/// A full box's creation and modification times (`mvhd`, `tkhd`, `mdhd`):
/// 32 bits each in version 0, 64 in version 1.
fn header_times(body: &[u8]) -> Option<(u64, u64)> {
    let read = |at: usize, len: usize| {
        body.get(at..at + len)
            .map(|b| b.iter().fold(0u64, |v, x| (v << 8) | u64::from(*x)))
    };
    match body.first()? {
        0 => Some((read(4, 4)?, read(8, 4)?)),
        1 => Some((read(4, 8)?, read(12, 8)?)),
        _ => None,
    }
}

/// The text of a QuickTime `©xyz` string box: length, language, text.
fn xyz_text(body: &[u8]) -> Option<String> {
    let len = usize::from(u16::from_be_bytes(body.get(..2)?.try_into().ok()?));
    let text = body.get(4..4 + len)?;
    Some(String::from_utf8_lossy(text).into_owned())
}

/// A QuickTime `©xyz` box holding `location` (ISO 6709 text), language
/// undetermined: how a location from another container is written.
pub(crate) fn xyz_box(location: &str) -> Vec<u8> {
    let text = location.as_bytes();
    let mut out = ((text.len() + 12) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(b"\xa9xyz");
    out.extend_from_slice(&(text.len() as u16).to_be_bytes());
    // "und", packed as ISO 639-2/T letters less 0x60, five bits each.
    out.extend_from_slice(&0x55C4u16.to_be_bytes());
    out.extend_from_slice(text);
    out
}

/// A 3GPP `loci` box as ISO 6709 text, written as ffmpeg reads it
/// (latitude, longitude, altitude when not 0, `/`, the place's name).
fn loci_text(body: &[u8]) -> Option<String> {
    // Version and flags, language, then the name up to its NUL.
    let rest = body.get(6..)?;
    let name_len = rest.iter().position(|b| *b == 0)?;
    let name = String::from_utf8_lossy(&rest[..name_len]).into_owned();
    let fixed = |at: usize| -> Option<f64> {
        let b = rest.get(name_len + 2 + at..name_len + 6 + at)?;
        Some(f64::from(i32::from_be_bytes(b.try_into().ok()?)) / 65536.0)
    };
    // After the NUL, the role byte, then longitude, latitude, altitude.
    let (longitude, latitude, altitude) = (fixed(0)?, fixed(4)?, fixed(8)?);
    let mut text = format!("{latitude:+08.4}{longitude:+09.4}");
    if altitude != 0.0 {
        text.push_str(&format!("{altitude:+}"));
    }
    text.push('/');
    text.push_str(&name);
    Some(text)
}

/// Writes into the MP4/MOV file mp4mux/qtmux wrote at `path` the source's
/// creation time (ns since the Unix epoch; None writes 0, no time) in its
/// movie, track and media headers, where the muxers put the run's, and
/// `location_box` into its `udta`. The `moov` must be followed by nothing
/// that the sample tables point into (as the muxers write it).
pub(crate) fn write_metadata(
    path: &Path,
    creation: Option<i64>,
    location_box: Option<&[u8]>,
    matrix: Option<u8>,
) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("{}: reopening to write its times", path.display()))?;
    let Some(mut moov) = moov_box(&mut file)? else {
        return Ok(());
    };
    let seconds = creation.map_or(0, |ns| {
        (ns.div_euclid(1_000_000_000) + MP4_EPOCH_OFFSET).max(0) as u64
    });
    for at in header_offsets(&moov.body) {
        let body = &mut moov.body[at..];
        match body[0] {
            0 => {
                let value = u32::try_from(seconds).unwrap_or(u32::MAX).to_be_bytes();
                body[4..8].copy_from_slice(&value);
                body[8..12].copy_from_slice(&value);
            }
            _ => {
                body[4..12].copy_from_slice(&seconds.to_be_bytes());
                body[12..20].copy_from_slice(&seconds.to_be_bytes());
            }
        }
    }
    // The muxers write GStreamer's one BT.601 matrix as smpte170m (6).
    if let (Some(matrix), Some(at)) = (matrix, colr_matrix_offset(&moov.body)) {
        if moov.body[at..at + 2] == [0, 6] {
            moov.body[at..at + 2].copy_from_slice(&u16::from(matrix).to_be_bytes());
        }
    }
    let moov_end = moov.at + moov.header + moov.body.len() as u64;
    let file_len = file.metadata()?.len();
    let mut after = vec![0u8; usize::try_from(file_len - moov_end)?];
    file.seek(SeekFrom::Start(moov_end))?;
    file.read_exact(&mut after)?;
    if boxes(&after).iter().any(|(kind, _, _)| kind == b"mdat") {
        crate::error::bail!(
            Io,
            "{}: laid out unexpectedly (media after the index); its times and location not written",
            path.display()
        );
    }
    let body = match location_box {
        Some(location) => with_location(&moov.body, location),
        None => moov.body,
    };
    let mut rewritten = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    rewritten.extend_from_slice(b"moov");
    rewritten.extend_from_slice(&body);
    rewritten.extend_from_slice(&after);
    file.seek(SeekFrom::Start(moov.at))?;
    file.write_all(&rewritten)?;
    file.set_len(moov.at + rewritten.len() as u64)?;
    Ok(())
}

/// The colour matrix code in the first video track's `colr` box, if any;
/// outer None: not MP4/MOV.
pub(crate) fn video_matrix(path: &Path) -> Result<Option<Option<u8>>> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot be read", path.display()))?;
    let Some((_, moov)) = read_moov(&mut file)? else {
        return Ok(None);
    };
    Ok(Some(
        colr_matrix_offset(&moov)
            .map(|at| u16::from_be_bytes([moov[at], moov[at + 1]]))
            .and_then(|code| u8::try_from(code).ok()),
    ))
}

/// The body span of box `kind` among the boxes in `moov[at..at + len]`.
fn into(moov: &[u8], (at, len): (usize, usize), kind: &[u8; 4]) -> Option<(usize, usize)> {
    boxes(&moov[at..at + len])
        .into_iter()
        .find(|(k, _, _)| k == kind)
        .map(|(_, body, body_len)| (at + body, body_len))
}

/// The body span of the first video track's `trak` in `moov`.
fn video_trak(moov: &[u8]) -> Option<(usize, usize)> {
    boxes(moov)
        .into_iter()
        .filter(|(k, _, _)| k == b"trak")
        .map(|(_, at, len)| (at, len))
        .find(|trak| {
            into(moov, *trak, b"mdia")
                .and_then(|mdia| into(moov, mdia, b"hdlr"))
                .is_some_and(|(at, len)| len >= 12 && &moov[at + 8..at + 12] == b"vide")
        })
}

/// See [`super::variable_video_rate`].
pub(crate) fn variable_video_rate(path: &Path) -> Result<Option<f64>> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot be read", path.display()))?;
    let Some((_, moov)) = read_moov(&mut file)? else {
        return Ok(None);
    };
    let rate = || -> Option<f64> {
        let trak = video_trak(&moov)?;
        let mdia = into(&moov, trak, b"mdia")?;
        let mdhd = into(&moov, mdia, b"mdhd")?;
        let mdhd = &moov[mdhd.0..mdhd.0 + mdhd.1];
        let timescale = match mdhd.first()? {
            0 => mdhd.get(12..16)?,
            _ => mdhd.get(20..24)?,
        };
        let timescale = f64::from(u32::from_be_bytes(timescale.try_into().ok()?));
        let stts = [b"minf", b"stbl", b"stts"]
            .into_iter()
            .try_fold(mdia, |span, kind| into(&moov, span, kind))?;
        let stts = &moov[stts.0..stts.0 + stts.1];
        let count = u32::from_be_bytes(stts.get(4..8)?.try_into().ok()?) as usize;
        let entries: Vec<(u64, u64)> = (0..count)
            .map(|i| {
                let entry = stts.get(8 + i * 8..16 + i * 8)?;
                Some((
                    u64::from(u32::from_be_bytes(entry[..4].try_into().ok()?)),
                    u64::from(u32::from_be_bytes(entry[4..].try_into().ok()?)),
                ))
            })
            .collect::<Option<_>>()?;
        // The last sample's duration is often a guess: it does not make a
        // rate variable by itself; nor does a tick of rounding (29.97 fps
        // in a timescale of 1000: 33, 34, 33…), nor 5 %.
        let mut deltas: Vec<u64> = entries.iter().map(|(_, d)| *d).collect();
        if entries.len() > 1 && entries.last().is_some_and(|(n, _)| *n == 1) {
            deltas.pop();
        }
        let (min, max) = (*deltas.iter().min()?, *deltas.iter().max()?);
        let samples: u64 = entries.iter().map(|(n, _)| n).sum();
        let ticks: u64 = entries.iter().map(|(n, d)| n * d).sum();
        let varies = max > min + (min / 20).max(1);
        (varies && ticks > 0 && timescale > 0.0).then(|| samples as f64 * timescale / ticks as f64)
    };
    Ok(rate())
}

/// The offset within `moov` of the matrix field of the first video
/// track's `colr` box (`nclx` or QuickTime's `nclc`).
fn colr_matrix_offset(moov: &[u8]) -> Option<usize> {
    let into = |span, kind| into(moov, span, kind);
    let video = video_trak(moov)?;
    let stsd = [b"mdia", b"minf", b"stbl", b"stsd"]
        .into_iter()
        .try_fold(video, &into)?;
    // stsd: version, flags and count, then the first sample entry, whose
    // boxes follow its 78 bytes of visual fields.
    let (entry_at, entry_len) = boxes(moov.get(stsd.0 + 8..stsd.0 + stsd.1)?)
        .first()
        .map(|(_, at, len)| (stsd.0 + 8 + at, *len))?;
    let (colr, len) = into((entry_at + 78, entry_len.checked_sub(78)?), b"colr")?;
    let kind = moov.get(colr..colr + 4)?;
    (len >= 10 && (kind == b"nclx" || kind == b"nclc")).then_some(colr + 8)
}

/// Offsets within `moov` of the bodies of its `mvhd` and of each track's
/// `tkhd` and `mdhd`, the boxes with creation times.
fn header_offsets(moov: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    for (kind, at, len) in boxes(moov) {
        match &kind {
            b"mvhd" if len >= 20 => offsets.push(at),
            b"trak" => {
                for (kind, t_at, t_len) in boxes(&moov[at..at + len]) {
                    match &kind {
                        b"tkhd" if t_len >= 20 => offsets.push(at + t_at),
                        b"mdia" => {
                            let mdia = at + t_at;
                            offsets.extend(
                                boxes(&moov[mdia..mdia + t_len])
                                    .into_iter()
                                    .filter(|(k, _, l)| k == b"mdhd" && *l >= 20)
                                    .map(|(_, m_at, _)| mdia + m_at),
                            );
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    offsets
}

/// A `moov` body with `location` in its `udta` (made when there is none),
/// unless one of its kind is there already.
fn with_location(moov: &[u8], location: &[u8]) -> Vec<u8> {
    let kind = &location[4..8];
    let mut out = Vec::with_capacity(moov.len() + location.len() + 8);
    let mut placed = false;
    let mut start = 0;
    for (k, at, len) in boxes(moov) {
        let whole = &moov[start..at + len];
        start = at + len;
        if &k != b"udta" || placed {
            out.extend_from_slice(whole);
            continue;
        }
        let mut udta = moov[at..at + len].to_vec();
        if !boxes(&udta).iter().any(|(k, _, _)| k == kind) {
            udta.extend_from_slice(location);
        }
        out.extend_from_slice(&((udta.len() + 8) as u32).to_be_bytes());
        out.extend_from_slice(b"udta");
        out.extend(udta);
        placed = true;
    }
    if !placed {
        out.extend_from_slice(&((location.len() + 8) as u32).to_be_bytes());
        out.extend_from_slice(b"udta");
        out.extend_from_slice(location);
    }
    out
}

/// The boxes in `data`: type and body.
pub(crate) fn box_bodies(data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    boxes(data)
        .into_iter()
        .map(move |(kind, at, len)| (kind, &data[at..at + len]))
}

/// The boxes in `data`: type, body offset within `data`, body length.
pub(super) fn boxes(data: &[u8]) -> Vec<([u8; 4], usize, usize)> {
    let mut found = Vec::new();
    let mut at = 0usize;
    while let Some(head) = data.get(at..at + 8) {
        let size = u32::from_be_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        let kind: [u8; 4] = head[4..8].try_into().expect("4 bytes");
        let (header, size) = match size {
            0 => (8, data.len() - at),
            1 => match data.get(at + 8..at + 16) {
                Some(large) => (
                    16,
                    usize::try_from(u64::from_be_bytes(large.try_into().expect("8 bytes")))
                        .unwrap_or(usize::MAX),
                ),
                None => break,
            },
            n => (8, n),
        };
        if size < header || at.saturating_add(size) > data.len() {
            break;
        }
        found.push((kind, at + header, size - header));
        at += size;
    }
    found
}

/// Pre-skip (16 bits), input rate (32) and output gain (16) after the
/// version and channel count.
const OPUS_FIELDS_LEN: usize = 8;

/// Offsets within `moov` of each `dOps` box's fields (past its version and
/// channel count byte).
fn opus_config_offsets(moov: &[u8]) -> Vec<usize> {
    let mut level = vec![(0usize, moov.len())];
    for kind in PATH_TO_SAMPLE_ENTRIES {
        level = level
            .into_iter()
            .flat_map(|(start, len)| {
                boxes(&moov[start..start + len])
                    .into_iter()
                    .filter(|(k, _, _)| k == kind)
                    .map(move |(_, at, len)| (start + at, len))
            })
            .collect();
    }
    let mut offsets = Vec::new();
    for (stsd_at, stsd_len) in level {
        // stsd: version, flags, entry count, then the sample entries.
        let Some(entries) = stsd_len.checked_sub(8) else {
            continue;
        };
        for (kind, at, len) in boxes(&moov[stsd_at + 8..stsd_at + 8 + entries]) {
            if &kind != b"Opus" {
                continue;
            }
            let entry = stsd_at + 8 + at;
            // The audio sample entry's own fields come before its boxes:
            // 28 bytes, and 16 or 36 more in QuickTime's versions 1 and 2.
            let version = moov
                .get(entry + 8..entry + 10)
                .map_or(0, |v| u16::from_be_bytes([v[0], v[1]]));
            let fields_len = match version {
                1 => 44,
                2 => 64,
                _ => 28,
            };
            let Some(children_len) = len.checked_sub(fields_len) else {
                continue;
            };
            let children = entry + fields_len;
            for (kind, at, len) in boxes(&moov[children..children + children_len]) {
                // Version 0, then the output channel count.
                if &kind == b"dOps" && len >= 2 + OPUS_FIELDS_LEN && moov[children + at] == 0 {
                    offsets.push(children + at + 2);
                }
            }
        }
    }
    offsets
}

/// The `dOps` fields in big-endian order when `fields` holds them
/// little-endian, as GStreamer 1.22 writes them; None when they are right.
fn big_endian_fields(fields: &[u8]) -> Option<[u8; OPUS_FIELDS_LEN]> {
    let rate = |bytes: [u8; 4]| u32::from_be_bytes(bytes);
    let stored: [u8; 4] = fields[2..6].try_into().ok()?;
    let mut swapped = stored;
    swapped.reverse();
    if rate(stored) <= MAX_INPUT_RATE || rate(swapped) > MAX_INPUT_RATE || rate(swapped) == 0 {
        return None;
    }
    let mut fixed = [0u8; OPUS_FIELDS_LEN];
    fixed[..2].copy_from_slice(&[fields[1], fields[0]]);
    fixed[2..6].copy_from_slice(&swapped);
    fixed[6..].copy_from_slice(&[fields[7], fields[6]]);
    Some(fixed)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An MP4 box of `kind` around `body`, for the finishing tests.
    pub(in crate::finishing) fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }

    /// A file with one Opus track whose `dOps` holds `fields`.
    fn opus_file(fields: [u8; OPUS_FIELDS_LEN]) -> Vec<u8> {
        let mut dops = vec![0u8, 2];
        dops.extend_from_slice(&fields);
        dops.push(0);
        let mut entry = vec![0u8; 28];
        entry.extend(mp4_box(b"dOps", &dops));
        let mut stsd = vec![0, 0, 0, 0, 0, 0, 0, 1];
        stsd.extend(mp4_box(b"Opus", &entry));
        let mut inner = mp4_box(b"stsd", &stsd);
        for kind in [b"stbl", b"minf", b"mdia", b"trak", b"moov"] {
            inner = mp4_box(kind, &inner);
        }
        let mut file = mp4_box(b"ftyp", b"isom\0\0\0\0");
        file.extend(mp4_box(b"mdat", &[1, 2, 3]));
        file.extend(inner);
        file
    }

    /// Pre-skip 312, 48 kHz, gain -256 (−1 dB), in `order`.
    fn fields(big_endian: bool) -> [u8; OPUS_FIELDS_LEN] {
        let (skip, rate, gain) = (312u16, 48_000u32, -256i16);
        let mut out = [0u8; OPUS_FIELDS_LEN];
        if big_endian {
            out[..2].copy_from_slice(&skip.to_be_bytes());
            out[2..6].copy_from_slice(&rate.to_be_bytes());
            out[6..].copy_from_slice(&gain.to_be_bytes());
        } else {
            out[..2].copy_from_slice(&skip.to_le_bytes());
            out[2..6].copy_from_slice(&rate.to_le_bytes());
            out[6..].copy_from_slice(&gain.to_le_bytes());
        }
        out
    }

    fn repaired(bytes: &[u8]) -> (usize, Vec<u8>) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        let count = repair_opus_boxes(file.path()).unwrap();
        (count, std::fs::read(file.path()).unwrap())
    }

    #[test]
    fn little_endian_opus_fields_are_rewritten_big_endian() {
        let (count, bytes) = repaired(&opus_file(fields(false)));
        assert_eq!(count, 1);
        assert_eq!(bytes, opus_file(fields(true)));
    }

    #[test]
    fn right_boxes_and_other_files_are_left_alone() {
        let right = opus_file(fields(true));
        assert_eq!(repaired(&right), (0, right));
        let not_mp4 = b"\x1aE\xdf\xa3 not an mp4 at all".to_vec();
        assert_eq!(repaired(&not_mp4), (0, not_mp4));
    }
}
