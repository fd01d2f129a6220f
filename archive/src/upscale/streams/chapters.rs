//! Chapters: Matroska's pass through GStreamer; those of MP4/MOV inputs,
//! which qtdemux does not read, are read here and handed to matroskamux.

use crate::error::{bail, Result};
use gst::prelude::*;

use super::quicktime_moov;
use crate::finishing;
use crate::media::MediaInfo;

/// Chapters of an MP4/MOV input, which qtdemux (GStreamer 1.22) does not read.
#[derive(Debug, PartialEq)]
enum QuickTimeChapters {
    None,
    /// A Nero chapter list (`moov/udta/chpl`, what ffmpeg writes with its
    /// chapter track): start and title of each.
    List(Vec<(gst::ClockTime, String)>),
    /// Only a QuickTime chapter track (`tref/chap`), as Apple's tools write.
    TrackOnly,
}

/// The chapters in a Nero `chpl` box body: 100 ns start times and titles.
fn nero_chapters(body: &[u8]) -> Vec<(gst::ClockTime, String)> {
    let Some(&version) = body.first() else {
        return Vec::new();
    };
    let mut at = if version == 0 { 4 } else { 8 };
    let count = body.get(at).copied().unwrap_or(0);
    at += 1;
    let mut chapters = Vec::new();
    for _ in 0..count {
        let Some(start) = body.get(at..at + 8) else {
            break;
        };
        let start = u64::from_be_bytes(start.try_into().expect("8 bytes"));
        let len = body.get(at + 8).copied().unwrap_or(0) as usize;
        let Some(title) = body.get(at + 9..at + 9 + len) else {
            break;
        };
        chapters.push((
            gst::ClockTime::from_nseconds(start.saturating_mul(100)),
            String::from_utf8_lossy(title).into_owned(),
        ));
        at += 9 + len;
    }
    chapters
}

/// Reads the chapters of an MP4/MOV file; anything else has none here.
fn quicktime_chapters(path: &std::path::Path) -> Result<QuickTimeChapters> {
    Ok(quicktime_moov(path)?.map_or(QuickTimeChapters::None, |moov| moov_chapters(&moov)))
}

fn moov_chapters(moov: &[u8]) -> QuickTimeChapters {
    let mut track_chapters = false;
    for (kind, body) in finishing::box_bodies(moov) {
        match &kind {
            b"udta" => {
                if let Some((_, chpl)) = finishing::box_bodies(body).find(|(k, _)| k == b"chpl") {
                    let list = nero_chapters(chpl);
                    if !list.is_empty() {
                        return QuickTimeChapters::List(list);
                    }
                }
            }
            b"trak" => {
                track_chapters |= finishing::box_bodies(body)
                    .filter(|(k, _)| k == b"tref")
                    .any(|(_, tref)| finishing::box_bodies(tref).any(|(k, _)| &k == b"chap"));
            }
            _ => {}
        }
    }
    if track_chapters {
        QuickTimeChapters::TrackOnly
    } else {
        QuickTimeChapters::None
    }
}

/// A table of contents for matroskamux from chapter starts: each chapter
/// ends where the next begins, the last at `end`.
fn toc_from(chapters: &[(gst::ClockTime, String)], end: Option<gst::ClockTime>) -> gst::Toc {
    let mut toc = gst::Toc::new(gst::TocScope::Global);
    let mut edition = gst::TocEntry::new(gst::TocEntryType::Edition, "1");
    let last_end = end.unwrap_or_else(|| chapters.last().map_or(gst::ClockTime::ZERO, |c| c.0));
    for (i, (start, title)) in chapters.iter().enumerate() {
        let stop = chapters.get(i + 1).map_or(last_end, |next| next.0);
        let mut chapter = gst::TocEntry::new(gst::TocEntryType::Chapter, &(i + 1).to_string());
        {
            let chapter = chapter.get_mut().expect("new entry");
            chapter.set_start_stop_times(start.nseconds() as i64, stop.nseconds() as i64);
            let mut tags = gst::TagList::new();
            tags.get_mut()
                .expect("new list")
                .add::<gst::tags::Title>(&title.as_str(), gst::TagMergeMode::Replace);
            chapter.set_tags(tags);
        }
        edition
            .get_mut()
            .expect("new entry")
            .append_sub_entry(chapter);
    }
    toc.get_mut().expect("new toc").append_entry(edition);
    toc
}

/// Decides what becomes of the input's chapters before anything runs:
/// Matroska's pass through GStreamer; MP4/MOV chapter lists, which qtdemux
/// does not read, are handed to matroskamux; where the output cannot hold
/// them, or they cannot be read, the job is refused unless `keep` is off.
/// Returns the start line's words on them, if any.
pub(crate) fn plan_chapters(
    input: &std::path::Path,
    output: &std::path::Path,
    info: &MediaInfo,
    muxer: &gst::Element,
    keep: bool,
) -> Result<Option<String>> {
    let quicktime = quicktime_chapters(input)?;
    let count = match &quicktime {
        QuickTimeChapters::List(list) => list.len(),
        _ => info.chapters,
    };
    if quicktime == QuickTimeChapters::None && count == 0 {
        return Ok(None);
    }
    if !keep {
        return Ok(Some("chapters dropped (--chapters drop)".into()));
    }
    if quicktime == QuickTimeChapters::TrackOnly {
        bail!(
            Unsupported,
            "{}: its chapters are a QuickTime chapter track, which GStreamer 1.22 cannot read; \
             pass --chapters drop to upscale without them",
            input.display()
        );
    }
    let Some(setter) = muxer.dynamic_cast_ref::<gst::TocSetter>() else {
        bail!(
            Unsupported,
            "{} has {count} chapter(s), and GStreamer 1.22 cannot write chapters into {}; \
             use .mkv, or --chapters drop to leave them out",
            input.display(),
            output.display()
        );
    };
    if let QuickTimeChapters::List(list) = quicktime {
        setter.set_toc(Some(&toc_from(&list, info.duration)));
    }
    Ok(Some(format!("{count} chapter(s) kept")))
}

/// Keeps a stream's table of contents from reaching the muxer.
pub(crate) fn drop_toc(pad: &gst::Pad) {
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, info| {
        if !matches!(&info.data, Some(gst::PadProbeData::Event(e)) if e.type_() == gst::EventType::Toc)
        {
            return gst::PadProbeReturn::Ok;
        }
        // Taken and handled: a sticky event merely dropped is offered again
        // with every buffer.
        drop(info.take_event());
        gst::PadProbeReturn::Handled
    });
}
