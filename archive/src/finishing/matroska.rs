//! Matroska repairs: the tag values, track flags and attachments that
//! matroskamux 1.22 writes wrongly or not at all.

use std::path::Path;

use crate::error::{bail, Context, Result};

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
    pub const TAG_NAME: u32 = 0x45A3;
    pub const TARGET_TYPE_VALUE: u32 = 0x68CA;
    pub const TAG_TRACK_UID: u32 = 0x63C5;
    pub const TAG_EDITION_UID: u32 = 0x63C9;
    pub const TAG_CHAPTER_UID: u32 = 0x63C4;
    pub const TAG_ATTACHMENT_UID: u32 = 0x63C6;
    pub const INFO: u32 = 0x1549_A966;
    pub const DATE_UTC: u32 = 0x4461;
    pub const TRACK_UID: u32 = 0x73C5;
    pub const NAME: u32 = 0x536E;
    pub const LANGUAGE: u32 = 0x22_B59C;
    pub const CHAPTERS: u32 = 0x1043_A770;
    pub const EDITION_ENTRY: u32 = 0x45B9;
    pub const EDITION_UID: u32 = 0x45BC;
    pub const CHAPTER_ATOM: u32 = 0xB6;
    pub const CHAPTER_UID: u32 = 0x73C4;
    pub const VIDEO: u32 = 0xE0;
    pub const COLOUR: u32 = 0x55B0;
    pub const MATRIX_COEFFICIENTS: u32 = 0x55B1;
    pub const CODEC_ID: u32 = 0x86;
    pub const CODEC_PRIVATE: u32 = 0x63A2;
    pub const CODEC_DELAY: u32 = 0x56AA;
    pub const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
    pub const CLUSTER_TIMESTAMP: u32 = 0xE7;
    pub const TRACK_NUMBER: u32 = 0xD7;
    pub const CLUSTER: u32 = 0x1F43_B675;
    pub const BLOCK_GROUP: u32 = 0xA0;
    pub const BLOCK: u32 = 0xA1;
    pub const SIMPLE_BLOCK: u32 = 0xA3;
    pub const DISCARD_PADDING: u32 = 0x75A2;
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
        bail!(Io, "{}: the segment size cannot be updated", path.display());
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

    /// A position as a SeekHead gives it: from the segment's data.
    fn seek_position(&self, at: u64) -> u64 {
        at - self.segment.data_at()
    }

    fn first(&self, id: u32) -> Option<Element> {
        self.children.iter().find(|e| e.id == id).copied()
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

/// Writes `element` where `old` was, in `old`'s room and that of a Void
/// right after it, the bytes left over made a Void so that nothing after
/// them moves; false (nothing written) when it does not fit.
fn replace_in_place(
    file: &mut std::fs::File,
    layout: &Layout,
    old: &Element,
    element: &[u8],
) -> Result<bool> {
    use std::io::{Seek, SeekFrom, Write};
    let void_after = layout
        .children
        .iter()
        .find(|e| e.at == old.end())
        .filter(|e| e.id == ebml_id::VOID)
        .map_or(0, Element::len);
    let room = old.len() + void_after;
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

/// The bytes of an unsigned integer element's value, in the fewest bytes.
fn uint_bytes(value: u64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    bytes[skip..].to_vec()
}

/// A string element's value without the NULs GStreamer ends it with.
fn text(data: &[u8]) -> &[u8] {
    let len = data.len() - data.iter().rev().take_while(|b| **b == 0).count();
    &data[..len]
}

/// Nanoseconds from the Unix epoch to Matroska's (2001-01-01 UTC).
const MATROSKA_EPOCH_NS: i64 = 978_307_200 * 1_000_000_000;

/// Tags that measure the input file (mkvmerge's and ffmpeg's statistics):
/// they describe another file, and matroskamux writes its own (`BITSPS`).
const STATISTICS_TAGS: [&[u8]; 7] = [
    b"BPS",
    b"DURATION",
    b"NUMBER_OF_FRAMES",
    b"NUMBER_OF_BYTES",
    b"_STATISTICS_WRITING_APP",
    b"_STATISTICS_WRITING_DATE_UTC",
    b"_STATISTICS_TAGS",
];

/// Tags naming what wrote or encoded the input: untrue of the output's
/// file (global) and of its upscaled video, which carry their own.
const ENCODER_TAGS: [&[u8]; 2] = [b"ENCODER", b"ENCODER_SETTINGS"];

/// The name matroskamux 1.22 gives a track of `kind` that came without a
/// title (its default, not the input's).
fn invented_name(kind: u64) -> Option<&'static [u8]> {
    match kind {
        1 => Some(b"Video"),
        2 => Some(b"Audio"),
        17 => Some(b"Subtitle"),
        _ => None,
    }
}

/// Whether `input` is a Matroska (or WebM) file.
pub(crate) fn is_matroska(input: &Path) -> Result<bool> {
    let mut file = std::fs::File::open(input)
        .with_context(|| format!("{}: cannot be read", input.display()))?;
    Ok(Layout::read(&mut file)?.is_some())
}

/// The colour matrix code the Colour element of the first video track of
/// the Matroska file at `input` gives. Only the Tracks element is read.
/// Outer None: not Matroska.
pub(crate) fn video_matrix(input: &Path) -> Result<Option<Option<u8>>> {
    let mut file = std::fs::File::open(input)
        .with_context(|| format!("{}: cannot be read", input.display()))?;
    let Some(layout) = Layout::read(&mut file)? else {
        return Ok(None);
    };
    let Some(tracks) = layout.first(ebml_id::TRACKS) else {
        return Ok(Some(None));
    };
    let data = read_data(&mut file, &tracks)?;
    Ok(Some(
        children(&data)
            .into_iter()
            .filter(|(id, _)| *id == ebml_id::TRACK_ENTRY)
            .map(|(_, entry)| source_track(entry))
            .find(|t| t.kind == 1)
            .and_then(|t| t.matrix),
    ))
}

/// What a Matroska input holds that matroskamux 1.22 does not carry over:
/// each track's flags, language and name, its chapters' UIDs, its tags
/// (per track too) as they are, its creation date, and the Attachments
/// element (fonts for styled subtitles, cover art).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct MatroskaExtras {
    tracks: Vec<SourceTrack>,
    attachments: Option<Vec<u8>>,
    attachment_count: usize,
    editions: Vec<SourceEdition>,
    /// Each Tag element's data, as the input has it.
    tags: Vec<Vec<u8>>,
    /// DateUTC, nanoseconds since the Unix epoch.
    date_utc: Option<i64>,
    /// What each Opus track's last block trims at its end (DiscardPadding,
    /// ns), in track order.
    opus_end_trims_ns: Vec<u64>,
    /// How much of its CodecDelay each Opus track's first block lies
    /// before (ns), in track order: matroskademux takes the delay off every
    /// block's time and clamps the first at 0.
    opus_clamped_ns: Vec<u64>,
}

/// One of the input's tracks, as its TrackEntry says.
#[derive(Debug, Clone, PartialEq)]
struct SourceTrack {
    kind: u64,
    uid: u64,
    number: u64,
    opus: bool,
    /// CodecDelay (ns): what a decoder drops from its start.
    codec_delay_ns: u64,
    default: bool,
    forced: bool,
    /// None: not written, which Matroska reads as English.
    language: Option<Vec<u8>>,
    name: Option<Vec<u8>>,
    /// The colour matrix code its Video/Colour element gives.
    matrix: Option<u8>,
}

/// One of the input's editions: its UID and its chapters' UIDs, nested
/// ones in file order.
#[derive(Debug, Clone, PartialEq)]
struct SourceEdition {
    uid: Option<u64>,
    chapters: Vec<u64>,
}

/// What the output gets besides what the Matroska input gives.
pub(super) struct OutputFacts<'a> {
    /// The source's creation time (ns since the Unix epoch), whatever its
    /// container; None writes none.
    pub creation: Option<i64>,
    /// Stream titles the input has (a track named "Audio" keeps its name).
    pub titles: &'a [String],
    /// The source's location (ISO 6709), for a LOCATION tag.
    pub location: Option<&'a str>,
    /// The name written as the file's ENCODER.
    pub encoder: &'a str,
    /// The colour matrix code written over the muxer's smpte170m (6).
    pub matrix: Option<u8>,
    /// The pre-skip (48 kHz samples) of each of an MP4/MOV input's Opus
    /// tracks, in order, that its edit list hides (None: hides nothing).
    pub opus_pre_skips: &'a [Option<u16>],
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
                .map(|(_, entry)| source_track(entry))
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
        if let Some(chapters) = layout.first(ebml_id::CHAPTERS) {
            let data = read_data(&mut file, &chapters)?;
            extras.editions = children(&data)
                .into_iter()
                .filter(|(id, _)| *id == ebml_id::EDITION_ENTRY)
                .map(|(_, edition)| {
                    let mut chapters = Vec::new();
                    chapter_uids(edition, &mut chapters);
                    SourceEdition {
                        uid: children(edition)
                            .iter()
                            .find(|(id, _)| *id == ebml_id::EDITION_UID)
                            .map(|(_, v)| uint(v)),
                        chapters,
                    }
                })
                .collect();
        }
        for tags in layout.children.iter().filter(|e| e.id == ebml_id::TAGS) {
            let data = read_data(&mut file, tags)?;
            extras.tags.extend(
                children(&data)
                    .into_iter()
                    .filter(|(id, _)| *id == ebml_id::TAG)
                    .map(|(_, tag)| tag.to_vec()),
            );
        }
        // Nanoseconds a block time counts, unless Info says otherwise.
        let mut timestamp_scale = 1_000_000;
        if let Some(info) = layout.first(ebml_id::INFO) {
            let data = read_data(&mut file, &info)?;
            let fields = children(&data);
            extras.date_utc = fields
                .iter()
                .find(|(id, v)| *id == ebml_id::DATE_UTC && v.len() == 8)
                .and_then(|(_, v)| <[u8; 8]>::try_from(*v).ok())
                .map(|v| i64::from_be_bytes(v).saturating_add(MATROSKA_EPOCH_NS));
            if let Some((_, v)) = fields
                .iter()
                .find(|(id, _)| *id == ebml_id::TIMESTAMP_SCALE)
            {
                timestamp_scale = i64::try_from(uint(v)).unwrap_or(timestamp_scale);
            }
        }
        extras.opus_end_trims_ns = opus_end_trims(&mut file, &layout, &extras.tracks)?;
        extras.opus_clamped_ns = opus_clamped(&mut file, &layout, &extras.tracks, timestamp_scale)?;
        Ok(extras)
    }

    /// The most any Opus track's first block lies within its CodecDelay
    /// of 0 (ns): what matroskademux 1.22's clamp of its first timestamp
    /// at 0 moves that track's audio later when muxed into MP4/MOV.
    pub(crate) fn opus_clamped_ns(&self) -> u64 {
        self.opus_clamped_ns.iter().copied().max().unwrap_or(0)
    }

    /// What each Opus track's last block trims at its end (ns), in order.
    pub(crate) fn opus_end_trims_ns(&self) -> &[u64] {
        &self.opus_end_trims_ns
    }

    /// The number of attached files.
    pub(crate) fn attachment_count(&self) -> usize {
        self.attachment_count
    }

    /// The input's creation date (DateUTC), ns since the Unix epoch.
    pub(crate) fn creation(&self) -> Option<i64> {
        self.date_utc
    }

    /// The value of the input's file-wide LOCATION tag (ISO 6709), if any.
    pub(crate) fn location(&self) -> Option<String> {
        self.tags
            .iter()
            .map(|t| parse_tag(t))
            .filter(ParsedTag::is_global)
            .flat_map(|tag| tag.simple)
            .find(|(name, _)| name == b"LOCATION")
            .and_then(|(_, element)| {
                let (_, _, header) = ebml_header(&element)?;
                children(&element[header..])
                    .iter()
                    .find(|(id, _)| *id == ebml_id::TAG_STRING)
                    .map(|(_, value)| String::from_utf8_lossy(text(value)).into_owned())
            })
    }

    /// The names of the tags the input gives its tracks, each once (not
    /// the statistics and encoder names, which describe its own file).
    pub(crate) fn track_tag_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for tag in self.tags.iter().map(|t| parse_tag(t)) {
            if tag.track_uids.is_empty() {
                continue;
            }
            for (name, _) in tag.simple {
                let name = String::from_utf8_lossy(&name).into_owned();
                let measured = STATISTICS_TAGS.contains(&name.as_bytes())
                    || ENCODER_TAGS.contains(&name.as_bytes());
                if !measured && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names
    }

    /// Writes them into the Matroska file matroskamux wrote at `output`:
    /// each track's flags, language and name (matched by type and order) in
    /// its Tracks element, the creation date in Info and the chapters'
    /// UIDs, rewritten in place; the Tags element it writes last with its
    /// values as they were and the input's tags added; the attachments
    /// after everything else, with a SeekHead entry so that readers find
    /// them. Returns a line for each thing that could not be kept.
    pub(super) fn write_into(&self, output: &Path, facts: &OutputFacts) -> Result<Vec<String>> {
        use std::io::{Seek, SeekFrom, Write};
        let mut notes = Vec::new();
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(output)
            .with_context(|| format!("{}: reopening to write its tracks", output.display()))?;
        let Some(layout) = Layout::read(&mut file)? else {
            return Ok(notes);
        };
        let mut output_tracks = Vec::new();
        if let Some(tracks) = layout.first(ebml_id::TRACKS) {
            let data = read_data(&mut file, &tracks)?;
            let rewritten = with_opus_pre_skips(
                &self.rewritten_tracks(&data, facts.titles, facts.matrix),
                facts.opus_pre_skips,
            );
            output_tracks = children(&rewritten)
                .into_iter()
                .filter(|(id, _)| *id == ebml_id::TRACK_ENTRY)
                .map(|(_, entry)| {
                    let track = source_track(entry);
                    (track.kind, track.uid)
                })
                .collect();
            let element = ebml_element(ebml_id::TRACKS, &rewritten);
            if !replace_in_place(&mut file, &layout, &tracks, &element)? {
                bail!(
                    Io,
                    "{}: no room to write the tracks' flags",
                    output.display()
                );
            }
        }
        if let Some(info) = layout.first(ebml_id::INFO) {
            let data = read_data(&mut file, &info)?;
            let element = ebml_element(ebml_id::INFO, &dated_info(&data, facts.creation));
            if !replace_in_place(&mut file, &layout, &info, &element)? {
                bail!(
                    Io,
                    "{}: no room to write its creation date",
                    output.display()
                );
            }
        }
        // Output chapter and edition UIDs, as matroskamux made them, to the input's.
        let mut kept_uids = Vec::new();
        if let Some(chapters) = layout.first(ebml_id::CHAPTERS) {
            let data = read_data(&mut file, &chapters)?;
            match self.kept_chapter_uids(&data, &mut kept_uids) {
                Some(rewritten) if !self.editions.is_empty() => {
                    let element = ebml_element(ebml_id::CHAPTERS, &rewritten);
                    if !replace_in_place(&mut file, &layout, &chapters, &element)? {
                        kept_uids.clear();
                        notes.push(format!(
                            "gendr: {}: no room to keep the input's chapter UIDs; new ones were made",
                            output.display()
                        ));
                    }
                }
                Some(_) => {}
                None => {
                    kept_uids.clear();
                    notes.push(format!(
                        "gendr: {}: its chapters differ in number from the input's, so their \
                         UIDs are new",
                        output.display()
                    ));
                }
            }
        }
        let file_len = file.metadata()?.len();
        if layout.children.last().map(Element::end) != Some(file_len) {
            bail!(
                Io,
                "{}: laid out unexpectedly; tags and attachments not written",
                output.display()
            );
        }
        let written_tags = layout
            .children
            .last()
            .filter(|e| e.id == ebml_id::TAGS)
            .copied();
        let old_tags = match &written_tags {
            Some(tags) => read_data(&mut file, tags)?,
            None => Vec::new(),
        };
        let chapters_kept = !kept_uids.is_empty() || self.editions.is_empty();
        let tags = self.merged_tags(
            &restored_tags(&old_tags).unwrap_or(old_tags),
            &output_tracks,
            &kept_uids,
            chapters_kept,
            facts,
        );
        // The Tags element is rewritten where it was (it is last), or
        // appended with a SeekHead entry; then the attachments.
        let tags_at = written_tags.map_or(file_len, |t| t.at);
        let mut appended = vec![ebml_element(ebml_id::TAGS, &tags)];
        let mut indexed = Vec::new();
        if written_tags.is_none() {
            indexed.push((ebml_id::TAGS, tags_at));
        }
        if let Some(attachments) = &self.attachments {
            let at = tags_at + appended[0].len() as u64;
            indexed.push((ebml_id::ATTACHMENTS, at));
            appended.push(attachments.clone());
        }
        if !indexed.is_empty() {
            let Some(seek_head) = layout.first(ebml_id::SEEK_HEAD) else {
                bail!(Io, "{}: no SeekHead to index its tags", output.display());
            };
            let data = read_data(&mut file, &seek_head)?;
            let mut entries: Vec<u8> = children(&data)
                .into_iter()
                .filter(|(id, _)| *id == ebml_id::SEEK)
                .flat_map(|(_, seek)| ebml_element(ebml_id::SEEK, seek))
                .collect();
            for (id, at) in indexed {
                entries.extend(seek_entry(id, layout.seek_position(at)));
            }
            let element = ebml_element(ebml_id::SEEK_HEAD, &entries);
            if !replace_in_place(&mut file, &layout, &seek_head, &element)? {
                bail!(Io, "{}: no room to index the attachments", output.display());
            }
        }
        let appended = appended.concat();
        file.seek(SeekFrom::Start(tags_at))?;
        file.write_all(&appended)?;
        let new_len = tags_at + appended.len() as u64;
        file.set_len(new_len)?;
        set_segment_size(
            &mut file,
            output,
            layout.segment.at,
            layout.segment.header,
            new_len,
        )?;
        Ok(notes)
    }

    /// A Tracks element's data with each entry given the flags and language
    /// of the input's track of the same type and rank (a track of another
    /// input gets `und` where matroskamux wrote none, which reads as
    /// English), and without the name matroskamux invents for an untitled
    /// track.
    fn rewritten_tracks(&self, data: &[u8], titles: &[String], matrix: Option<u8>) -> Vec<u8> {
        let mut seen: Vec<u64> = Vec::new();
        let mut out = Vec::with_capacity(data.len() + 16);
        for (id, entry) in children(data) {
            if id != ebml_id::TRACK_ENTRY {
                out.extend(ebml_element(id, entry));
                continue;
            }
            let written = source_track(entry);
            let kind = written.kind;
            let rank = seen.iter().filter(|k| **k == kind).count();
            seen.push(kind);
            let source = self.tracks.iter().filter(|t| t.kind == kind).nth(rank);
            let invented = invented_name(kind).filter(|name| {
                written.name.as_deref() == Some(*name)
                    && match source {
                        Some(source) => source.name.as_deref() != Some(*name),
                        None => !titles.iter().any(|t| t.as_bytes() == *name),
                    }
            });
            let mut fields: Vec<u8> = Vec::with_capacity(entry.len() + 8);
            for (child, value) in children(entry) {
                let replaced = matches!(child, ebml_id::FLAG_DEFAULT | ebml_id::FLAG_FORCED)
                    && source.is_some();
                let dropped = child == ebml_id::NAME && invented.is_some();
                match matrix {
                    Some(matrix) if child == ebml_id::VIDEO && kind == 1 && rank == 0 => {
                        fields.extend(ebml_element(child, &with_matrix(value, matrix)));
                    }
                    _ if !(replaced || dropped) => fields.extend(ebml_element(child, value)),
                    _ => {}
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
            if written.language.is_none() {
                let language = match source {
                    Some(source) => source.language.clone(),
                    None => Some(b"und".to_vec()),
                };
                if let Some(language) = language {
                    fields.extend(ebml_element(ebml_id::LANGUAGE, &language));
                }
            }
            out.extend(ebml_element(ebml_id::TRACK_ENTRY, &fields));
        }
        out
    }

    /// A Chapters element's data with the input's edition and chapter
    /// UIDs, in order, noting each (written, kept) pair in `kept`; None
    /// when its editions or chapters are not as many as the input's.
    fn kept_chapter_uids(&self, data: &[u8], kept: &mut Vec<(u64, u64)>) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(data.len());
        let mut editions = self.editions.iter();
        for (id, edition) in children(data) {
            if id != ebml_id::EDITION_ENTRY {
                out.extend(ebml_element(id, edition));
                continue;
            }
            let source = editions.next()?;
            let mut uids = source.chapters.iter().copied();
            let mut fields = Vec::with_capacity(edition.len());
            for (child, value) in children(edition) {
                match child {
                    ebml_id::EDITION_UID => {
                        if let Some(uid) = source.uid {
                            kept.push((uint(value), uid));
                        }
                    }
                    ebml_id::CHAPTER_ATOM => fields.extend(ebml_element(
                        child,
                        &kept_atom_uids(value, &mut uids, kept)?,
                    )),
                    _ => fields.extend(ebml_element(child, value)),
                }
            }
            if uids.next().is_some() {
                return None;
            }
            let mut entry = source
                .uid
                .map(|uid| ebml_element(ebml_id::EDITION_UID, &uint_bytes(uid)))
                .unwrap_or_default();
            entry.extend(fields);
            out.extend(ebml_element(ebml_id::EDITION_ENTRY, &entry));
        }
        editions.next().is_none().then_some(out)
    }

    /// The output's Tags data, `written` (as matroskamux wrote them, values
    /// restored) with the input's tags added: each track's kept by the
    /// output track of the same type and rank, chapters' where their UIDs
    /// were kept, the file's own; none that names the input's encoder or
    /// measures the input file. The file's ENCODER is `facts.encoder`.
    fn merged_tags(
        &self,
        written: &[u8],
        output_tracks: &[(u64, u64)],
        kept_uids: &[(u64, u64)],
        chapters_kept: bool,
        facts: &OutputFacts,
    ) -> Vec<u8> {
        let mut tags: Vec<ParsedTag> = children(written)
            .into_iter()
            .filter(|(id, _)| *id == ebml_id::TAG)
            .map(|(_, tag)| {
                let mut tag = parse_tag(tag);
                // Chapters' tags follow their chapters' kept UIDs.
                for (id, uid) in &mut tag.other_uids {
                    if matches!(*id, ebml_id::TAG_CHAPTER_UID | ebml_id::TAG_EDITION_UID) {
                        if let Some((_, kept)) = kept_uids.iter().find(|(w, _)| w == uid) {
                            *uid = *kept;
                        }
                    }
                }
                tag
            })
            .collect();
        let global = |tags: &mut Vec<ParsedTag>| -> usize {
            match tags.iter().position(ParsedTag::is_global) {
                Some(at) => at,
                None => {
                    tags.insert(0, ParsedTag::default());
                    0
                }
            }
        };
        let at = global(&mut tags);
        tags[at]
            .simple
            .retain(|(name, _)| !ENCODER_TAGS.contains(&name.as_slice()));
        tags[at]
            .simple
            .push((b"ENCODER".to_vec(), simple_tag(b"ENCODER", facts.encoder)));
        if let Some(location) = facts.location {
            tags[at].add(b"LOCATION", simple_tag(b"LOCATION", location));
        }
        let upscaled_video = output_tracks.iter().find(|(kind, _)| *kind == 1);
        for source in self.tags.iter().map(|t| parse_tag(t)) {
            let mut tag = source.clone();
            tag.track_uids.clear();
            for uid in &source.track_uids {
                let Some(index) = self.tracks.iter().position(|t| t.uid == *uid) else {
                    continue;
                };
                let kind = self.tracks[index].kind;
                let rank = self.tracks[..index]
                    .iter()
                    .filter(|t| t.kind == kind)
                    .count();
                if let Some((_, uid)) = output_tracks.iter().filter(|(k, _)| *k == kind).nth(rank) {
                    tag.track_uids.push(*uid);
                }
            }
            let lost_track = tag.track_uids.len() < source.track_uids.len();
            let lost_chapter = !chapters_kept
                && source.other_uids.iter().any(|(id, _)| {
                    matches!(*id, ebml_id::TAG_CHAPTER_UID | ebml_id::TAG_EDITION_UID)
                });
            if lost_track || lost_chapter {
                continue;
            }
            let describes_the_output = tag.is_global()
                || (tag.track_uids.len() == 1
                    && upscaled_video.is_some_and(|(_, uid)| tag.track_uids[0] == *uid));
            tag.simple.retain(|(name, _)| {
                let measures_input = STATISTICS_TAGS.contains(&name.as_slice());
                let untrue = describes_the_output && ENCODER_TAGS.contains(&name.as_slice());
                !(measures_input || untrue)
            });
            if tag.simple.is_empty() {
                continue;
            }
            match tags.iter_mut().find(|t| t.same_target(&tag)) {
                Some(written) => {
                    for (name, element) in tag.simple {
                        written.add(&name, element);
                    }
                }
                None => tags.push(tag),
            }
        }
        tags.iter()
            .flat_map(|tag| ebml_element(ebml_id::TAG, &tag.to_bytes()))
            .collect()
    }
}

/// One Tag element: its target and its SimpleTags, each with its name.
#[derive(Debug, Clone, Default)]
struct ParsedTag {
    /// TargetTypeValue (50, an album or movie, when not written).
    type_value: u64,
    /// The Targets' other children (TargetType), as they are.
    target_rest: Vec<u8>,
    track_uids: Vec<u64>,
    /// Edition, chapter and attachment UIDs, with their element IDs.
    other_uids: Vec<(u32, u64)>,
    simple: Vec<(Vec<u8>, Vec<u8>)>,
}

impl ParsedTag {
    /// Whether it is about the whole file.
    fn is_global(&self) -> bool {
        self.track_uids.is_empty() && self.other_uids.is_empty() && self.type_value == 50
    }

    fn same_target(&self, other: &ParsedTag) -> bool {
        self.type_value == other.type_value
            && self.track_uids == other.track_uids
            && self.other_uids == other.other_uids
    }

    /// Adds a SimpleTag unless one of that name is there.
    fn add(&mut self, name: &[u8], element: Vec<u8>) {
        if !self.simple.iter().any(|(n, _)| n == name) {
            self.simple.push((name.to_vec(), element));
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut targets = Vec::new();
        if self.type_value != 50 {
            targets.extend(ebml_element(
                ebml_id::TARGET_TYPE_VALUE,
                &uint_bytes(self.type_value),
            ));
        }
        targets.extend_from_slice(&self.target_rest);
        for uid in &self.track_uids {
            targets.extend(ebml_element(ebml_id::TAG_TRACK_UID, &uint_bytes(*uid)));
        }
        for (id, uid) in &self.other_uids {
            targets.extend(ebml_element(*id, &uint_bytes(*uid)));
        }
        let mut out = Vec::new();
        if !targets.is_empty() {
            out.extend(ebml_element(ebml_id::TARGETS, &targets));
        }
        for (_, element) in &self.simple {
            out.extend_from_slice(element);
        }
        out
    }
}

fn parse_tag(data: &[u8]) -> ParsedTag {
    let mut tag = ParsedTag {
        type_value: 50,
        ..ParsedTag::default()
    };
    for (id, value) in children(data) {
        match id {
            ebml_id::TARGETS => {
                for (target, v) in children(value) {
                    match target {
                        ebml_id::TARGET_TYPE_VALUE => tag.type_value = uint(v),
                        ebml_id::TAG_TRACK_UID => tag.track_uids.push(uint(v)),
                        ebml_id::TAG_EDITION_UID
                        | ebml_id::TAG_CHAPTER_UID
                        | ebml_id::TAG_ATTACHMENT_UID => tag.other_uids.push((target, uint(v))),
                        _ => tag.target_rest.extend(ebml_element(target, v)),
                    }
                }
            }
            ebml_id::SIMPLE_TAG => {
                let name = children(value)
                    .iter()
                    .find(|(id, _)| *id == ebml_id::TAG_NAME)
                    .map(|(_, name)| text(name).to_vec())
                    .unwrap_or_default();
                tag.simple.push((name, ebml_element(id, value)));
            }
            _ => {}
        }
    }
    tag
}

/// A SimpleTag element `name` = `value`.
fn simple_tag(name: &[u8], value: &str) -> Vec<u8> {
    let mut fields = ebml_element(ebml_id::TAG_NAME, name);
    fields.extend(ebml_element(ebml_id::TAG_STRING, value.as_bytes()));
    ebml_element(ebml_id::SIMPLE_TAG, &fields)
}

/// A Video element's data with `matrix` where its Colour element says
/// smpte170m (6), which is how matroskamux writes GStreamer's one BT.601.
fn with_matrix(video: &[u8], matrix: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(video.len());
    for (id, value) in children(video) {
        if id != ebml_id::COLOUR {
            out.extend(ebml_element(id, value));
            continue;
        }
        let colour: Vec<u8> = children(value)
            .into_iter()
            .flat_map(|(id, v)| match id {
                ebml_id::MATRIX_COEFFICIENTS if uint(v) == 6 => ebml_element(id, &[matrix]),
                _ => ebml_element(id, v),
            })
            .collect();
        out.extend(ebml_element(id, &colour));
    }
    out
}

/// Info's data with DateUTC set to `creation` (ns since the Unix epoch),
/// or without one: matroskamux writes the time of the run.
fn dated_info(data: &[u8], creation: Option<i64>) -> Vec<u8> {
    let mut out: Vec<u8> = children(data)
        .into_iter()
        .filter(|(id, _)| *id != ebml_id::DATE_UTC)
        .flat_map(|(id, value)| ebml_element(id, value))
        .collect();
    if let Some(ns) = creation {
        let date = ns.saturating_sub(MATROSKA_EPOCH_NS);
        out.extend(ebml_element(ebml_id::DATE_UTC, &date.to_be_bytes()));
    }
    out
}

/// The UIDs of the chapters in `data` (an edition or a chapter), nested
/// ones after their parent's.
fn chapter_uids(data: &[u8], uids: &mut Vec<u64>) {
    for (id, atom) in children(data) {
        if id != ebml_id::CHAPTER_ATOM {
            continue;
        }
        if let Some((_, uid)) = children(atom)
            .iter()
            .find(|(id, _)| *id == ebml_id::CHAPTER_UID)
        {
            uids.push(uint(uid));
        }
        chapter_uids(atom, uids);
    }
}

/// A ChapterAtom's data with its UID, and its nested chapters' UIDs, the
/// next of `uids`; None when they run out.
fn kept_atom_uids(
    atom: &[u8],
    uids: &mut impl Iterator<Item = u64>,
    kept: &mut Vec<(u64, u64)>,
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(atom.len());
    for (id, value) in children(atom) {
        match id {
            ebml_id::CHAPTER_UID => {
                let uid = uids.next()?;
                kept.push((uint(value), uid));
                out.extend(ebml_element(id, &uint_bytes(uid)));
            }
            ebml_id::CHAPTER_ATOM => {
                out.extend(ebml_element(id, &kept_atom_uids(value, uids, kept)?));
            }
            _ => out.extend(ebml_element(id, value)),
        }
    }
    Some(out)
}

/// Clusters read back from the end for the Opus tracks' last blocks: audio
/// that ends before the video still ends within the last few.
const END_CLUSTERS: usize = 4;

/// One block of a cluster: its track number, its time relative to the
/// cluster's (None where the block ends before it) and, in a BlockGroup,
/// its DiscardPadding (ns; 0 for a SimpleBlock, which has none).
struct ClusterBlock {
    track: u64,
    relative: Option<i16>,
    discard_padding: i64,
}

/// A cluster's own time (its Timestamp, 0 if missing) and its blocks, in
/// file order.
fn cluster_blocks(data: &[u8]) -> (i64, Vec<ClusterBlock>) {
    let fields = children(data);
    let base = fields
        .iter()
        .find(|(id, _)| *id == ebml_id::CLUSTER_TIMESTAMP)
        .map_or(0, |(_, v)| i64::try_from(uint(v)).unwrap_or(0));
    let blocks = fields
        .into_iter()
        .filter_map(|(id, value)| {
            let (block, discard_padding) = match id {
                ebml_id::SIMPLE_BLOCK => (value, 0),
                ebml_id::BLOCK_GROUP => {
                    let group = children(value);
                    let block = group.iter().find(|(id, _)| *id == ebml_id::BLOCK)?.1;
                    let padding = group
                        .iter()
                        .find(|(id, _)| *id == ebml_id::DISCARD_PADDING)
                        .map_or(0, |(_, v)| signed(v));
                    (block, padding)
                }
                _ => return None,
            };
            // The track number, then the time relative to the cluster's.
            let (track, len) = ebml_vint(block, false)?;
            let relative = block
                .get(len..len + 2)
                .map(|t| i16::from_be_bytes([t[0], t[1]]));
            Some(ClusterBlock {
                track,
                relative,
                discard_padding,
            })
        })
        .collect();
    (base, blocks)
}

/// The end trimming (DiscardPadding, ns) of each Opus track in `tracks`,
/// from its last block in the file's last clusters: 0 where that block
/// trims nothing, is a SimpleBlock (which cannot) or is not found there.
fn opus_end_trims(
    file: &mut std::fs::File,
    layout: &Layout,
    tracks: &[SourceTrack],
) -> Result<Vec<u64>> {
    let opus: Vec<u64> = tracks.iter().filter(|t| t.opus).map(|t| t.number).collect();
    let mut trims: Vec<Option<u64>> = vec![None; opus.len()];
    let clusters = layout
        .children
        .iter()
        .rev()
        .filter(|e| e.id == ebml_id::CLUSTER);
    for cluster in clusters.take(END_CLUSTERS) {
        if trims.iter().all(Option::is_some) {
            break;
        }
        let (_, blocks) = cluster_blocks(&read_data(file, cluster)?);
        for block in blocks.iter().rev() {
            if let Some(i) = opus.iter().position(|n| *n == block.track) {
                trims[i].get_or_insert(u64::try_from(block.discard_padding).unwrap_or(0));
            }
        }
    }
    Ok(trims.into_iter().map(Option::unwrap_or_default).collect())
}

/// For each Opus track in `tracks` with a CodecDelay, how far its first
/// block, found in the file's first [`END_CLUSTERS`] clusters, lies before
/// that delay (ns, block times counting `timestamp_scale` ns; 0 where it
/// lies at or after it, or is not found there).
fn opus_clamped(
    file: &mut std::fs::File,
    layout: &Layout,
    tracks: &[SourceTrack],
    timestamp_scale: i64,
) -> Result<Vec<u64>> {
    let opus: Vec<&SourceTrack> = tracks.iter().filter(|t| t.opus).collect();
    if opus.iter().all(|t| t.codec_delay_ns == 0) {
        return Ok(vec![0; opus.len()]);
    }
    let mut first: Vec<Option<i64>> = vec![None; opus.len()];
    let clusters = layout.children.iter().filter(|e| e.id == ebml_id::CLUSTER);
    for cluster in clusters.take(END_CLUSTERS) {
        if first.iter().all(Option::is_some) {
            break;
        }
        let (base, blocks) = cluster_blocks(&read_data(file, cluster)?);
        for block in blocks {
            let Some(relative) = block.relative else {
                continue;
            };
            if let Some(i) = opus.iter().position(|t| t.number == block.track) {
                first[i].get_or_insert((base + i64::from(relative)) * timestamp_scale);
            }
        }
    }
    Ok(opus
        .iter()
        .zip(first)
        .map(|(track, first)| {
            let delay = i64::try_from(track.codec_delay_ns).unwrap_or(i64::MAX);
            first.map_or(0, |t| u64::try_from(delay - t).unwrap_or(0))
        })
        .collect())
}

/// A signed integer element's value.
fn signed(data: &[u8]) -> i64 {
    let bits = 8 * data.len().min(8) as u32;
    match bits {
        0 => 0,
        _ => ((uint(data) << (64 - bits)) as i64) >> (64 - bits),
    }
}

/// A track entry's type, UID, codec, flags (with Matroska's defaults,
/// default on and forced off, where they are not written), language and name.
fn source_track(entry: &[u8]) -> SourceTrack {
    let mut track = SourceTrack {
        kind: 0,
        uid: 0,
        number: 0,
        opus: false,
        codec_delay_ns: 0,
        default: true,
        forced: false,
        language: None,
        name: None,
        matrix: None,
    };
    for (id, value) in children(entry) {
        match id {
            ebml_id::TRACK_TYPE => track.kind = uint(value),
            ebml_id::TRACK_UID => track.uid = uint(value),
            ebml_id::TRACK_NUMBER => track.number = uint(value),
            ebml_id::CODEC_ID => track.opus = text(value) == b"A_OPUS",
            ebml_id::CODEC_DELAY => track.codec_delay_ns = uint(value),
            ebml_id::FLAG_DEFAULT => track.default = uint(value) != 0,
            ebml_id::FLAG_FORCED => track.forced = uint(value) != 0,
            ebml_id::LANGUAGE => track.language = Some(text(value).to_vec()),
            ebml_id::NAME => track.name = Some(text(value).to_vec()),
            ebml_id::VIDEO => {
                track.matrix = children(value)
                    .iter()
                    .filter(|(id, _)| *id == ebml_id::COLOUR)
                    .flat_map(|(_, colour)| children(colour))
                    .find(|(id, _)| *id == ebml_id::MATRIX_COEFFICIENTS)
                    .and_then(|(_, v)| u8::try_from(uint(v)).ok());
            }
            _ => {}
        }
    }
    track
}

/// A Tracks element's data with each Opus entry given the pre-skip an MP4/MOV
/// input's edit list hid (`pre_skips`, the input's Opus tracks in order,
/// matched by rank when the output has as many): in its OpusHead and as its
/// CodecDelay, as ffmpeg writes them. matroskamux 1.22 writes neither for
/// an MP4 input's Opus (a pre-skip of 0), so players played the pre-skip
/// before the first frame; the run moved such a track later by it
/// (`upscale::timeline`), which CodecDelay takes back.
fn with_opus_pre_skips(data: &[u8], pre_skips: &[Option<u16>]) -> Vec<u8> {
    let is_opus = |entry: &[u8]| {
        children(entry)
            .iter()
            .any(|(id, v)| *id == ebml_id::CODEC_ID && text(v) == b"A_OPUS")
    };
    let entries = children(data);
    let opus_count = entries
        .iter()
        .filter(|(id, e)| *id == ebml_id::TRACK_ENTRY && is_opus(e))
        .count();
    if opus_count != pre_skips.len() || pre_skips.iter().all(Option::is_none) {
        return data.to_vec();
    }
    let mut pre_skips = pre_skips.iter();
    let mut out = Vec::with_capacity(data.len() + 16 * opus_count);
    for (id, entry) in entries {
        let pre_skip = if id == ebml_id::TRACK_ENTRY && is_opus(entry) {
            pre_skips.next().copied().flatten()
        } else {
            None
        };
        let Some(pre_skip) = pre_skip else {
            out.extend(ebml_element(id, entry));
            continue;
        };
        let mut fields = Vec::with_capacity(entry.len() + 8);
        for (child, value) in children(entry) {
            match child {
                ebml_id::CODEC_DELAY => {}
                // OpusHead: magic, version, channels, then the pre-skip (LE).
                ebml_id::CODEC_PRIVATE if value.len() >= 19 && value.starts_with(b"OpusHead") => {
                    let mut head = value.to_vec();
                    head[10..12].copy_from_slice(&pre_skip.to_le_bytes());
                    fields.extend(ebml_element(child, &head));
                }
                _ => fields.extend(ebml_element(child, value)),
            }
        }
        let delay_ns = u64::from(pre_skip) * 1_000_000_000 / 48_000;
        fields.extend(ebml_element(ebml_id::CODEC_DELAY, &uint_bytes(delay_ns)));
        out.extend(ebml_element(ebml_id::TRACK_ENTRY, &fields));
    }
    out
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
    fn an_opus_track_gets_the_pre_skip_the_input_edit_hid() {
        // What matroskamux 1.22 writes for an MP4 input's stereo Opus.
        let head = b"OpusHead\x01\x02\x00\x00\x80\xbb\x00\x00\x00\x00\x00";
        let entry = |codec: &[u8], private: &[u8]| {
            let mut fields = ebml_element(ebml_id::CODEC_ID, codec);
            fields.extend(ebml_element(ebml_id::CODEC_PRIVATE, private));
            ebml_element(ebml_id::TRACK_ENTRY, &fields)
        };
        let written = [entry(b"A_AC3", b""), entry(b"A_OPUS", head)].concat();
        let rewritten = with_opus_pre_skips(&written, &[Some(312)]);
        let opus = children(&rewritten)[1].1;
        let fields = children(opus);
        let value = |id| fields.iter().find(|(i, _)| *i == id).map(|(_, v)| *v);
        let private = value(ebml_id::CODEC_PRIVATE).unwrap();
        assert_eq!(u16::from_le_bytes([private[10], private[11]]), 312);
        assert_eq!(private.len(), head.len());
        assert_eq!(value(ebml_id::CODEC_DELAY).map(uint), Some(6_500_000));
        assert_eq!(children(&rewritten)[0], children(&written)[0]);
        // Not as many Opus tracks as the input's, or none hidden: left alone.
        assert_eq!(with_opus_pre_skips(&written, &[Some(312), None]), written);
        assert_eq!(with_opus_pre_skips(&written, &[None]), written);
    }

    #[test]
    fn a_signed_element_is_sign_extended_from_its_length() {
        assert_eq!(signed(&[]), 0);
        assert_eq!(signed(&[0x7f]), 127);
        assert_eq!(signed(&[0xff]), -1);
        assert_eq!(signed(&[0x00, 0xce, 0x07, 0x60]), 13_502_304);
        assert_eq!(signed(&[0xff, 0x38]), -200);
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
    fn tracks_follow_the_input_track_of_the_same_type_and_rank() {
        let entry = |kind: u8, extra: &[u8]| {
            let mut fields = ebml_element(ebml_id::TRACK_TYPE, &[kind]);
            fields.extend_from_slice(extra);
            ebml_element(ebml_id::TRACK_ENTRY, &fields)
        };
        let track =
            |kind, default, forced, language: Option<&[u8]>, name: Option<&[u8]>| SourceTrack {
                kind,
                uid: 0,
                number: 0,
                opus: false,
                codec_delay_ns: 0,
                default,
                forced,
                language: language.map(<[u8]>::to_vec),
                name: name.map(<[u8]>::to_vec),
                matrix: None,
            };
        let extras = MatroskaExtras {
            tracks: vec![
                track(1, true, false, Some(b"und"), None),
                track(2, true, false, Some(b"fre"), Some(b"Audio")),
                track(2, false, false, None, None),
                track(17, false, true, Some(b"ger"), Some(b"Signs")),
            ],
            ..MatroskaExtras::default()
        };
        // As matroskamux writes them: no flags or default on, its own names,
        // a language only where it was told one.
        let name = |n: &[u8]| ebml_element(ebml_id::NAME, &[n, b"\0"].concat());
        let written: Vec<u8> = [
            entry(1, &name(b"Video")),
            entry(2, &name(b"Audio")),
            entry(
                2,
                &[ebml_element(ebml_id::FLAG_DEFAULT, &[1]), name(b"Audio")].concat(),
            ),
            entry(
                17,
                &[name(b"Signs"), ebml_element(ebml_id::LANGUAGE, b"ger\0")].concat(),
            ),
        ]
        .concat();
        let tracks: Vec<SourceTrack> = children(&extras.rewritten_tracks(&written, &[], None))
            .into_iter()
            .map(|(_, entry)| source_track(entry))
            .collect();
        assert_eq!(tracks, extras.tracks);
        // A track of another container: `und` where none was written, the
        // invented name gone unless the input had that title.
        let other = MatroskaExtras::default();
        let tracks: Vec<SourceTrack> =
            children(&other.rewritten_tracks(&written, &["Audio".to_string()], None))
                .into_iter()
                .map(|(_, entry)| source_track(entry))
                .collect();
        let languages: Vec<_> = tracks.iter().map(|t| t.language.clone()).collect();
        let names: Vec<_> = tracks.iter().map(|t| t.name.clone()).collect();
        assert_eq!(
            languages,
            [b"und", b"und", b"und", b"ger"].map(|l| Some(l.to_vec()))
        );
        assert_eq!(
            names,
            [
                None,
                Some(b"Audio".to_vec()),
                Some(b"Audio".to_vec()),
                Some(b"Signs".to_vec())
            ]
        );
    }

    #[test]
    fn input_tags_join_the_written_ones_without_the_inputs_encoder() {
        let tag = |targets: &[u8], simple: &[(&[u8], &str)]| {
            let mut data = if targets.is_empty() {
                Vec::new()
            } else {
                ebml_element(ebml_id::TARGETS, targets)
            };
            for (name, value) in simple {
                data.extend(simple_tag(name, value));
            }
            data
        };
        let track_target = |uid: u64| ebml_element(ebml_id::TAG_TRACK_UID, &uint_bytes(uid));
        let source = |kind, uid| SourceTrack {
            kind,
            uid,
            number: 0,
            opus: false,
            codec_delay_ns: 0,
            default: true,
            forced: false,
            language: None,
            name: None,
            matrix: None,
        };
        let extras = MatroskaExtras {
            tracks: vec![source(1, 11), source(2, 22)],
            tags: vec![
                tag(b"", &[(b"ENCODER", "Lavf59"), (b"COMMENT", "tape 4")]),
                tag(
                    &track_target(11),
                    &[
                        (b"ENCODER", "libx264"),
                        (b"ARCHIVE_ID", "V-1"),
                        (b"DURATION", "1"),
                    ],
                ),
                tag(
                    &track_target(22),
                    &[(b"ENCODER", "aac"), (b"ARCHIVE_ID", "A-2")],
                ),
            ],
            ..MatroskaExtras::default()
        };
        let written: Vec<u8> = [
            tag(b"", &[(b"TITLE", "T"), (b"ENCODER", "Lavf59")]),
            tag(&track_target(101), &[(b"ENCODER", "x264")]),
        ]
        .iter()
        .flat_map(|t| ebml_element(ebml_id::TAG, t))
        .collect();
        let facts = OutputFacts {
            creation: None,
            titles: &[],
            location: Some("+48.8577+002.2950/"),
            encoder: "gendr 1",
            matrix: None,
            opus_pre_skips: &[],
        };
        let merged = extras.merged_tags(&written, &[(1, 101), (2, 202)], &[], true, &facts);
        let tags: Vec<(u64, Vec<Vec<u8>>)> = children(&merged)
            .into_iter()
            .map(|(_, t)| {
                let t = parse_tag(t);
                (
                    t.track_uids.first().copied().unwrap_or(0),
                    t.simple.into_iter().map(|(n, _)| n).collect(),
                )
            })
            .collect();
        let names = |n: &[&[u8]]| n.iter().map(|n| n.to_vec()).collect::<Vec<_>>();
        assert_eq!(
            tags,
            [
                (0, names(&[b"TITLE", b"ENCODER", b"LOCATION", b"COMMENT"])),
                (101, names(&[b"ENCODER", b"ARCHIVE_ID"])),
                (202, names(&[b"ENCODER", b"ARCHIVE_ID"])),
            ]
        );
        let global = parse_tag(children(&merged)[0].1);
        assert_eq!(global.simple[1].1, simple_tag(b"ENCODER", "gendr 1"));
    }
}
