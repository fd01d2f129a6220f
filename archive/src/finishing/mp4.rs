//! MP4/MOV repairs: the Opus decoder configuration box.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, Result};

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
            let mut moov = vec![0u8; usize::try_from(body_len)?];
            file.seek(SeekFrom::Start(at + header_len))?;
            file.read_exact(&mut moov)?;
            return Ok(Some((at + header_len, moov)));
        }
        at += size;
    }
    Ok(None)
}

/// The boxes in `data`: type and body.
pub(crate) fn box_bodies(data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    boxes(data)
        .into_iter()
        .map(move |(kind, at, len)| (kind, &data[at..at + len]))
}

/// The boxes in `data`: type, body offset within `data`, body length.
fn boxes(data: &[u8]) -> Vec<([u8; 4], usize, usize)> {
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
mod tests {
    use super::*;

    fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
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
