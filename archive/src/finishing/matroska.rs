//! Matroska repairs: the tag values, track flags and attachments that
//! matroskamux 1.22 writes wrongly or not at all.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Matroska element IDs the repairs read and write.
mod ebml_id {
    pub const EBML: u32 = 0x1A45_DFA3;
    pub const SEGMENT: u32 = 0x1853_8067;
    pub const SEEK_HEAD: u32 = 0x114D_9B74;
    pub const SEEK: u32 = 0x4DBB;
    pub const SEEK_ID: u32 = 0x53AB;
    pub const SEEK_POSITION: u32 = 0x53AC;
    pub const TRACKS: u32 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u32 = 0xAE;
    pub const TRACK_TYPE: u32 = 0x83;
    pub const FLAG_DEFAULT: u32 = 0x88;
    pub const FLAG_FORCED: u32 = 0x55AA;
    pub const ATTACHMENTS: u32 = 0x1941_A469;
    pub const ATTACHED_FILE: u32 = 0x61A7;
    pub const VOID: u32 = 0xEC;
    pub const TAGS: u32 = 0x1254_C367;
    pub const TAG: u32 = 0x7373;
    pub const TARGETS: u32 = 0x63C0;
    pub const SIMPLE_TAG: u32 = 0x67C8;
    pub const TAG_STRING: u32 = 0x4487;
}

/// An EBML variable-length number at the start of `bytes`: its value (with
/// the length marker kept for IDs, removed for sizes) and its length.
fn ebml_vint(bytes: &[u8], keep_marker: bool) -> Option<(u64, usize)> {
    let first = *bytes.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 || bytes.len() < len {
        return None;
    }
    let head = if keep_marker {
        u64::from(first)
    } else {
        u64::from(first) & (0xFF >> len)
    };
    let value = bytes[1..len]
        .iter()
        .fold(head, |v, b| (v << 8) | u64::from(*b));
    Some((value, len))
}

/// An element header at the start of `bytes`: ID, data size, header length.
fn ebml_header(bytes: &[u8]) -> Option<(u32, u64, usize)> {
    let (id, id_len) = ebml_vint(bytes, true)?;
    let (size, size_len) = ebml_vint(&bytes[id_len..], false)?;
    Some((u32::try_from(id).ok()?, size, id_len + size_len))
}

/// An element with `id` around `data`, its size in the fewest bytes.
fn ebml_element(id: u32, data: &[u8]) -> Vec<u8> {
    let id_bytes = id.to_be_bytes();
    let skip = id_bytes.iter().take_while(|b| **b == 0).count();
    let mut out = id_bytes[skip..].to_vec();
    let size = data.len() as u64;
    // All ones would mean "unknown size", hence the strict bound.
    let len = (1..=8usize)
        .find(|n| size < (1u64 << (7 * n)) - 1)
        .unwrap_or(8);
    let marked = size | (1u64 << (7 * len));
    out.extend_from_slice(&marked.to_be_bytes()[8 - len..]);
    out.extend_from_slice(data);
    out
}

/// GStreamer's serialised form of a string (`gst_value_serialize`), as
/// matroskamux 1.22 writes tag values: kept as they are when made only of
/// letters, digits and `_-+/:.`, otherwise quoted with a backslash before
/// every other ASCII character and octal escapes for the rest.
fn gst_serialized(text: &[u8]) -> Vec<u8> {
    let simple = |b: u8| b.is_ascii_alphanumeric() || b"_-+/:.".contains(&b);
    if text.iter().all(|b| simple(*b)) {
        return text.to_vec();
    }
    let mut out = vec![b'"'];
    for &b in text {
        if simple(b) {
            out.push(b);
        } else if !(0x20..0x7F).contains(&b) {
            out.extend_from_slice(format!("\\{b:03o}").as_bytes());
        } else {
            out.extend_from_slice(&[b'\\', b]);
        }
    }
    out.push(b'"');
    out
}

/// The string a tag value serialised by GStreamer stood for; `None` unless
/// serialising the result again gives exactly `value`, so that text stored
/// verbatim (by ffmpeg, or a fixed matroskamux) is never touched.
fn gst_unserialized(value: &[u8]) -> Option<Vec<u8>> {
    let inner = value.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    let mut text = Vec::with_capacity(inner.len());
    let mut rest = inner;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        if b != b'\\' {
            text.push(b);
            continue;
        }
        let octal = rest
            .get(..3)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0')));
        match octal.and_then(|v| u8::try_from(v).ok()) {
            Some(byte) => {
                text.push(byte);
                rest = &rest[3..];
            }
            None => {
                let (&escaped, tail) = rest.split_first()?;
                text.push(escaped);
                rest = tail;
            }
        }
    }
    (gst_serialized(&text) == value).then_some(text)
}

/// The children of a Tags element with every serialised TagString
/// restored; `None` when nothing needed it.
fn restored_tags(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    let mut changed = false;
    let mut rest = data;
    while !rest.is_empty() {
        let (id, size, header) = ebml_header(rest)?;
        let end = header.checked_add(usize::try_from(size).ok()?)?;
        let (element, tail) = (rest.get(..end)?, &rest[end..]);
        rest = tail;
        let body = &element[header..];
        let replaced = match id {
            ebml_id::TAG | ebml_id::TARGETS | ebml_id::SIMPLE_TAG => restored_tags(body),
            ebml_id::TAG_STRING => {
                // GStreamer ends each string with a NUL, which is kept.
                let text_len = body.len() - body.iter().rev().take_while(|b| **b == 0).count();
                gst_unserialized(&body[..text_len]).map(|mut text| {
                    text.extend_from_slice(&body[text_len..]);
                    text
                })
            }
            _ => None,
        };
        match replaced {
            Some(body) => {
                out.extend(ebml_element(id, &body));
                changed = true;
            }
            None => out.extend_from_slice(element),
        }
    }
    changed.then_some(out)
}

/// matroskamux 1.22 writes tag values serialised (`TITLE "A\,\ B"` for
/// `A, B`): the Tags element it writes last is rewritten with the values
/// as they were, and the segment size updated. A file laid out otherwise
/// is left as it is.
pub(crate) fn restore_matroska_tags(path: &Path) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("{}: reopening to restore its tags", path.display()))?;
    let file_len = file.metadata()?.len();
    let read_header = |file: &mut std::fs::File, at: u64| -> Result<Option<(u32, u64, usize)>> {
        let mut bytes = [0u8; 16];
        file.seek(SeekFrom::Start(at))?;
        let n = file.read(&mut bytes)?;
        Ok(ebml_header(&bytes[..n]))
    };
    // The EBML header, then the segment.
    let Some((_, ebml_size, ebml_header_len)) = read_header(&mut file, 0)? else {
        return Ok(());
    };
    let segment_at = ebml_header_len as u64 + ebml_size;
    let Some((ebml_id::SEGMENT, _, segment_header)) = read_header(&mut file, segment_at)? else {
        return Ok(());
    };
    let segment_data = segment_at + segment_header as u64;
    let mut at = segment_data;
    let mut tags = None;
    while at < file_len {
        let Some((id, size, header)) = read_header(&mut file, at)? else {
            return Ok(());
        };
        let end = at + header as u64 + size;
        if id == ebml_id::TAGS && end == file_len {
            tags = Some((at, header, size));
        }
        at = end;
    }
    let Some((tags_at, header, size)) = tags else {
        return Ok(());
    };
    let mut body = vec![0u8; usize::try_from(size)?];
    file.seek(SeekFrom::Start(tags_at + header as u64))?;
    file.read_exact(&mut body)?;
    let Some(restored) = restored_tags(&body) else {
        return Ok(());
    };
    let element = ebml_element(ebml_id::TAGS, &restored);
    file.seek(SeekFrom::Start(tags_at))?;
    file.write_all(&element)?;
    let new_len = tags_at + element.len() as u64;
    file.set_len(new_len)?;
    set_segment_size(&mut file, path, segment_at, segment_header, new_len)
}

/// Rewrites the segment's size, in the width it was written with, for a
/// file now `new_len` long.
fn set_segment_size(
    file: &mut std::fs::File,
    path: &Path,
    segment_at: u64,
    segment_header: usize,
    new_len: u64,
) -> Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let size_at = segment_at + 4;
    let width = segment_header - 4;
    let segment_size = new_len - segment_at - segment_header as u64;
    if width < 8 && segment_size >= (1u64 << (7 * width)) - 1 {
        bail!("{}: the segment size cannot be updated", path.display());
    }
    let marked = segment_size | (1u64 << (7 * width));
    file.seek(SeekFrom::Start(size_at))?;
    file.write_all(&marked.to_be_bytes()[8 - width..])?;
    Ok(())
}

/// One element of a file: its ID, where it starts, its header's length and
/// its data size.
#[derive(Debug, Clone, Copy)]
struct Element {
    id: u32,
    at: u64,
    header: usize,
    size: u64,
}

impl Element {
    fn data_at(&self) -> u64 {
        self.at + self.header as u64
    }

    fn end(&self) -> u64 {
        self.data_at() + self.size
    }

    fn len(&self) -> usize {
        self.header + self.size as usize
    }
}

/// A Matroska file's segment and the elements directly in it, as far as
/// their sizes are known.
struct Layout {
    segment: Element,
    children: Vec<Element>,
}

impl Layout {
    fn read(file: &mut std::fs::File) -> Result<Option<Layout>> {
        let file_len = file.metadata()?.len();
        let Some(ebml) = read_element(file, 0)?.filter(|e| e.id == ebml_id::EBML) else {
            return Ok(None);
        };
        let Some(segment) = read_element(file, ebml.end())?.filter(|e| e.id == ebml_id::SEGMENT)
        else {
            return Ok(None);
        };
        let mut children = Vec::new();
        let mut at = segment.data_at();
        while at < file_len.min(segment.end()) {
            let Some(child) = read_element(file, at)? else {
                break;
            };
            // An unknown size (all ones) ends what can be walked.
            if child.size >= (1u64 << (7 * (child.header - id_len(child.id)))) - 1 {
                break;
            }
            children.push(child);
            at = child.end();
        }
        Ok(Some(Layout { segment, children }))
    }

    fn first(&self, id: u32) -> Option<Element> {
        self.children.iter().find(|e| e.id == id).copied()
    }

    /// An element's position as a SeekHead gives it: from the segment's data.
    fn seek_position(&self, element: &Element) -> u64 {
        element.at - self.segment.data_at()
    }
}

/// The length of an element ID as written.
fn id_len(id: u32) -> usize {
    4 - (id.leading_zeros() / 8) as usize
}

/// The element whose header starts at `at`, if one does.
fn read_element(file: &mut std::fs::File, at: u64) -> Result<Option<Element>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut bytes = [0u8; 16];
    file.seek(SeekFrom::Start(at))?;
    let n = file.read(&mut bytes)?;
    Ok(ebml_header(&bytes[..n]).map(|(id, size, header)| Element {
        id,
        at,
        header,
        size,
    }))
}

fn read_data(file: &mut std::fs::File, element: &Element) -> Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut data = vec![0u8; usize::try_from(element.size)?];
    file.seek(SeekFrom::Start(element.data_at()))?;
    file.read_exact(&mut data)?;
    Ok(data)
}

/// The elements in `data`, each as (ID, its data).
fn children(mut data: &[u8]) -> Vec<(u32, &[u8])> {
    let mut found = Vec::new();
    while let Some((id, size, header)) = ebml_header(data) {
        let Some(end) = usize::try_from(size)
            .ok()
            .and_then(|s| s.checked_add(header))
            .filter(|end| *end <= data.len())
        else {
            break;
        };
        found.push((id, &data[header..end]));
        data = &data[end..];
    }
    found
}

/// An unsigned integer element's value.
fn uint(data: &[u8]) -> u64 {
    data.iter().take(8).fold(0, |v, b| (v << 8) | u64::from(*b))
}

/// A Void element exactly `len` bytes long (at least 2).
fn void(len: usize) -> Vec<u8> {
    // ID (1 byte), then the size in the fewest bytes that leave it whole.
    let width = (1..=8usize)
        .find(|w| {
            len.checked_sub(1 + w)
                .is_some_and(|data| (data as u64) < (1u64 << (7 * w)) - 1)
        })
        .unwrap_or(8);
    let data = len - 1 - width;
    let mut out = vec![ebml_id::VOID as u8];
    let marked = data as u64 | (1u64 << (7 * width));
    out.extend_from_slice(&marked.to_be_bytes()[8 - width..]);
    out.resize(len, 0);
    out
}

/// Writes `element` where `old` was, the rest of `old`'s bytes made a Void
/// so that nothing after it moves; false (nothing written) when it is longer.
fn replace_in_place(file: &mut std::fs::File, old: &Element, element: &[u8]) -> Result<bool> {
    use std::io::{Seek, SeekFrom, Write};
    let room = old.len();
    let mut bytes = element.to_vec();
    match room.checked_sub(element.len()) {
        Some(0) => {}
        Some(rest) if rest >= 2 => bytes.extend(void(rest)),
        _ => return Ok(false),
    }
    file.seek(SeekFrom::Start(old.at))?;
    file.write_all(&bytes)?;
    Ok(true)
}

/// What a Matroska input holds that matroskamux 1.22 does not carry over:
/// each track's type and default/forced flags, in the file's order, and the
/// Attachments element (fonts for styled subtitles, cover art) as it is.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct MatroskaExtras {
    tracks: Vec<TrackFlags>,
    attachments: Option<Vec<u8>>,
    attachment_count: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct TrackFlags {
    kind: u64,
    default: bool,
    forced: bool,
}

impl MatroskaExtras {
    /// Reads them from `input`; nothing when it is not Matroska.
    pub(crate) fn read(input: &Path) -> Result<MatroskaExtras> {
        let mut file = std::fs::File::open(input)
            .with_context(|| format!("{}: cannot be read", input.display()))?;
        let Some(layout) = Layout::read(&mut file)? else {
            return Ok(MatroskaExtras::default());
        };
        let mut extras = MatroskaExtras::default();
        if let Some(tracks) = layout.first(ebml_id::TRACKS) {
            let data = read_data(&mut file, &tracks)?;
            extras.tracks = children(&data)
                .into_iter()
                .filter(|(id, _)| *id == ebml_id::TRACK_ENTRY)
                .map(|(_, entry)| track_flags(entry))
                .collect();
        }
        if let Some(attachments) = layout.first(ebml_id::ATTACHMENTS) {
            let data = read_data(&mut file, &attachments)?;
            extras.attachment_count = children(&data)
                .iter()
                .filter(|(id, _)| *id == ebml_id::ATTACHED_FILE)
                .count();
            extras.attachments = Some(ebml_element(ebml_id::ATTACHMENTS, &data));
        }
        Ok(extras)
    }

    /// The number of attached files.
    pub(crate) fn attachment_count(&self) -> usize {
        self.attachment_count
    }

    /// Writes them into the Matroska file matroskamux wrote at `output`:
    /// each track's flags (matched by type and order) in its Tracks
    /// element, rewritten in place; the attachments after everything else,
    /// with a SeekHead entry so that readers find them.
    pub(crate) fn write_into(&self, output: &Path) -> Result<()> {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(output)
            .with_context(|| format!("{}: reopening to write its tracks", output.display()))?;
        let Some(layout) = Layout::read(&mut file)? else {
            return Ok(());
        };
        if let Some(tracks) = layout.first(ebml_id::TRACKS) {
            let data = read_data(&mut file, &tracks)?;
            let element = ebml_element(ebml_id::TRACKS, &self.flagged_tracks(&data));
            if !replace_in_place(&mut file, &tracks, &element)? {
                bail!("{}: no room to write the tracks' flags", output.display());
            }
        }
        let (Some(attachments), Some(seek_head)) =
            (&self.attachments, layout.first(ebml_id::SEEK_HEAD))
        else {
            return Ok(());
        };
        let file_len = file.metadata()?.len();
        if layout.children.last().map(Element::end) != Some(file_len) {
            bail!(
                "{}: laid out unexpectedly; attachments not written",
                output.display()
            );
        }
        let appended = Element {
            id: ebml_id::ATTACHMENTS,
            at: file_len,
            header: 0,
            size: 0,
        };
        let data = read_data(&mut file, &seek_head)?;
        let mut entries: Vec<u8> = children(&data)
            .into_iter()
            .filter(|(id, _)| *id == ebml_id::SEEK)
            .flat_map(|(_, seek)| ebml_element(ebml_id::SEEK, seek))
            .collect();
        entries.extend(seek_entry(
            ebml_id::ATTACHMENTS,
            layout.seek_position(&appended),
        ));
        if !replace_in_place(
            &mut file,
            &seek_head,
            &ebml_element(ebml_id::SEEK_HEAD, &entries),
        )? {
            bail!("{}: no room to index the attachments", output.display());
        }
        file.seek(SeekFrom::Start(file_len))?;
        file.write_all(attachments)?;
        let new_len = file_len + attachments.len() as u64;
        set_segment_size(
            &mut file,
            output,
            layout.segment.at,
            layout.segment.header,
            new_len,
        )
    }

    /// A Tracks element's data with each entry's flags set from the input's
    /// track of the same type and rank.
    fn flagged_tracks(&self, data: &[u8]) -> Vec<u8> {
        let mut seen: Vec<u64> = Vec::new();
        let mut out = Vec::with_capacity(data.len() + 16);
        for (id, entry) in children(data) {
            if id != ebml_id::TRACK_ENTRY {
                out.extend(ebml_element(id, entry));
                continue;
            }
            let kind = track_flags(entry).kind;
            let rank = seen.iter().filter(|k| **k == kind).count();
            seen.push(kind);
            let source = self.tracks.iter().filter(|t| t.kind == kind).nth(rank);
            let mut fields: Vec<u8> = Vec::with_capacity(entry.len() + 8);
            for (child, value) in children(entry) {
                let replaced = matches!(child, ebml_id::FLAG_DEFAULT | ebml_id::FLAG_FORCED);
                if !(replaced && source.is_some()) {
                    fields.extend(ebml_element(child, value));
                }
            }
            if let Some(source) = source {
                fields.extend(ebml_element(
                    ebml_id::FLAG_DEFAULT,
                    &[u8::from(source.default)],
                ));
                fields.extend(ebml_element(
                    ebml_id::FLAG_FORCED,
                    &[u8::from(source.forced)],
                ));
            }
            out.extend(ebml_element(ebml_id::TRACK_ENTRY, &fields));
        }
        out
    }
}

/// A track entry's type and flags, with Matroska's defaults (default on,
/// forced off) where they are not written.
fn track_flags(entry: &[u8]) -> TrackFlags {
    let mut flags = TrackFlags {
        kind: 0,
        default: true,
        forced: false,
    };
    for (id, value) in children(entry) {
        match id {
            ebml_id::TRACK_TYPE => flags.kind = uint(value),
            ebml_id::FLAG_DEFAULT => flags.default = uint(value) != 0,
            ebml_id::FLAG_FORCED => flags.forced = uint(value) != 0,
            _ => {}
        }
    }
    flags
}

/// A SeekHead entry pointing at an element with `id` at `position`.
fn seek_entry(id: u32, position: u64) -> Vec<u8> {
    let id_bytes = &id.to_be_bytes()[4 - id_len(id)..];
    let mut seek = ebml_element(ebml_id::SEEK_ID, id_bytes);
    seek.extend(ebml_element(
        ebml_id::SEEK_POSITION,
        &position.to_be_bytes(),
    ));
    ebml_element(ebml_id::SEEK, &seek)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialised_tag_values_are_restored_and_verbatim_ones_left_alone() {
        for text in ["A, B; C", "Café \"Noir\" \\ 1/2", "plain-title_1.0", ""] {
            let stored = gst_serialized(text.as_bytes());
            let restored = gst_unserialized(&stored).unwrap_or(stored);
            assert_eq!(String::from_utf8(restored).unwrap(), text);
        }
        // What GStreamer would have written differently is not its output.
        assert_eq!(gst_unserialized(b"\"quoted\""), None);
        assert_eq!(gst_unserialized(b"\"A, B\""), None);
    }

    #[test]
    fn an_ebml_element_reads_back_as_written() {
        for len in [0usize, 1, 126, 127, 20_000] {
            let data = vec![7u8; len];
            let element = ebml_element(ebml_id::TAGS, &data);
            let (id, size, header) = ebml_header(&element).unwrap();
            assert_eq!((id, size as usize), (ebml_id::TAGS, len));
            assert_eq!(&element[header..], &data[..]);
        }
    }

    #[test]
    fn a_void_fills_exactly_the_room_it_is_given() {
        for len in [2usize, 3, 128, 129, 130, 20_000] {
            let element = void(len);
            assert_eq!(element.len(), len);
            let (id, size, header) = ebml_header(&element).unwrap();
            assert_eq!((id, header + size as usize), (ebml_id::VOID, len));
        }
    }

    #[test]
    fn track_flags_follow_the_input_track_of_the_same_type_and_rank() {
        let entry = |kind: u8, extra: &[u8]| {
            let mut fields = ebml_element(ebml_id::TRACK_TYPE, &[kind]);
            fields.extend_from_slice(extra);
            ebml_element(ebml_id::TRACK_ENTRY, &fields)
        };
        let extras = MatroskaExtras {
            tracks: vec![
                TrackFlags {
                    kind: 1,
                    default: true,
                    forced: false,
                },
                TrackFlags {
                    kind: 2,
                    default: true,
                    forced: false,
                },
                TrackFlags {
                    kind: 2,
                    default: false,
                    forced: false,
                },
                TrackFlags {
                    kind: 17,
                    default: false,
                    forced: true,
                },
            ],
            ..MatroskaExtras::default()
        };
        // As matroskamux writes them: no flags, or default on.
        let written: Vec<u8> = [
            entry(1, &[]),
            entry(2, &[]),
            entry(2, &ebml_element(ebml_id::FLAG_DEFAULT, &[1])),
            entry(17, &[]),
        ]
        .concat();
        let flags: Vec<TrackFlags> = children(&extras.flagged_tracks(&written))
            .into_iter()
            .map(|(_, entry)| track_flags(entry))
            .collect();
        assert_eq!(flags, extras.tracks);
    }
}
