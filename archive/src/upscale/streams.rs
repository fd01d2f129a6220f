//! The streams beside the video: copied into the output as they are,
//! converted where the container cannot hold them, or refused.

use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use gst::prelude::*;

use super::progress::Progress;
use crate::finishing;
use crate::media::MediaInfo;

/// Sends a parsed audio stream into the muxer: as it is, or, where the
/// container cannot hold its codec and `transcode` allows, re-encoded as AAC.
pub(super) fn copy_audio(
    pipeline: &gst::Pipeline,
    muxer: &gst::Element,
    pad: &gst::Pad,
    caps: &gst::Caps,
    progress: &Arc<Progress>,
    transcode: bool,
) -> Result<()> {
    let template = muxer
        .pad_template("audio_%u")
        .context("the output container takes no audio")?;
    // What a user reads ("Raw 16-bit PCM audio", "MPEG-4 AAC"), not the caps
    // name; pbutils describes fixed caps only (unfixed ones, as tsdemux's
    // pads may still have, make it return NULL, which crashed gendr).
    let codec = match caps.structure(0) {
        Some(_) if caps.is_fixed() => gst_pbutils::pb_utils_get_codec_description(caps).to_string(),
        Some(s) => format!("{} audio", s.name()),
        None => "this audio".to_string(),
    };
    // Elements between the parsed pad and the queue: none for a copy.
    let mut chain = Vec::new();
    if !template.caps().can_intersect(caps) {
        if !transcode {
            bail!(
                "{codec} cannot be copied into this container; use .mkv, or --audio aac \
                 to re-encode it"
            );
        }
        eprintln!("gendr: {codec} re-encoded as AAC 256 kbit/s (this container cannot hold it)");
        chain = vec![
            gst::ElementFactory::make("decodebin").build()?,
            gst::ElementFactory::make("audioconvert").build()?,
            gst::ElementFactory::make("audioresample").build()?,
            gst::ElementFactory::make("avenc_aac")
                .property("bitrate", 256_000i32)
                .build()?,
        ];
    }
    say_packets_before_start(pad);
    let queue = unbounded_queue(progress)?;
    let queue_sink = queue.static_pad("sink").context("queue sink")?;
    pipeline.add(&queue)?;
    queue.sync_state_with_parent()?;
    match chain.split_first() {
        None => {
            pad.link(&queue_sink)?;
        }
        Some((decode, rest)) => {
            pipeline.add_many(&chain)?;
            let mut tail = rest.to_vec();
            tail.push(queue.clone());
            gst::Element::link_many(&tail)?;
            let convert = rest[0].downgrade();
            decode.connect_pad_added(move |decode, src| {
                let Some(sink) = convert.upgrade().and_then(|c| c.static_pad("sink")) else {
                    return;
                };
                if let Err(e) = src.link(&sink) {
                    gst::element_error!(
                        decode,
                        gst::CoreError::Negotiation,
                        ("the decoded audio cannot be re-encoded ({e:?})")
                    );
                }
            });
            for element in &chain {
                element.sync_state_with_parent()?;
            }
            pad.link(&decode.static_pad("sink").context("decodebin sink")?)?;
        }
    }
    let mux_pad = muxer
        .request_pad_simple("audio_%u")
        .context("the muxer refused an audio stream")?;
    queue
        .static_pad("src")
        .context("queue src")?
        .link(&mux_pad)?;
    Ok(())
}

/// Says, once the stream ends, how many of the audio packets on `pad`
/// started before its segment did: the muxers clip them. MPEG-TS/PS
/// demuxers start every stream at the video's first PTS, so audio that
/// starts between the video's first DTS and PTS loses its first frame
/// (`ffmpeg -c copy` keeps it).
fn say_packets_before_start(pad: &gst::Pad) {
    let start = Mutex::new(None::<gst::ClockTime>);
    let cut = Mutex::new((0u64, gst::ClockTime::ZERO));
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            match &info.data {
                Some(gst::PadProbeData::Event(event)) => match event.view() {
                    gst::EventView::Segment(segment) => {
                        *start.lock().unwrap_or_else(|p| p.into_inner()) = segment
                            .segment()
                            .downcast_ref::<gst::ClockTime>()
                            .and_then(|s| s.start());
                    }
                    gst::EventView::Eos(_) => {
                        let (count, duration) = *cut.lock().unwrap_or_else(|p| p.into_inner());
                        if count > 0 {
                            eprintln!(
                                "gendr: warning: {count} audio packet(s) ({} ms) start before \
                                 their stream's first shown time and are cut: GStreamer 1.22's \
                                 muxers take nothing before it (ffmpeg -c copy keeps them)",
                                duration.mseconds()
                            );
                        }
                    }
                    _ => {}
                },
                Some(gst::PadProbeData::Buffer(buffer)) => {
                    let start = *start.lock().unwrap_or_else(|p| p.into_inner());
                    if let (Some(pts), Some(start)) = (buffer.pts(), start) {
                        if pts < start {
                            let mut cut = cut.lock().unwrap_or_else(|p| p.into_inner());
                            cut.0 += 1;
                            cut.1 += buffer.duration().unwrap_or(gst::ClockTime::ZERO);
                        }
                    }
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// Sends a parsed video stream beyond the first into the muxer as it is
/// (checked up front by [`check_extra_videos`]).
pub(super) fn copy_video(
    pipeline: &gst::Pipeline,
    muxer: &gst::Element,
    pad: &gst::Pad,
    progress: &Arc<Progress>,
) -> Result<()> {
    let queue = unbounded_queue(progress)?;
    pipeline.add(&queue)?;
    queue.sync_state_with_parent()?;
    pad.link(&queue.static_pad("sink").context("queue sink")?)?;
    let mux_pad = muxer
        .request_pad_simple("video_%u")
        .context("the muxer refused a second video stream")?;
    queue
        .static_pad("src")
        .context("queue src")?
        .link(&mux_pad)?;
    Ok(())
}

/// Refuses, before anything runs, video streams beyond the first that the
/// output container cannot hold as they are; the line that says the others
/// are copied without being upscaled.
pub(super) fn check_extra_videos(
    info: &MediaInfo,
    muxer: &gst::Element,
    output: &str,
) -> Result<Option<String>> {
    let template = muxer
        .pad_template("video_%u")
        .map(|t| t.caps().clone())
        .unwrap_or_else(gst::Caps::new_empty);
    for caps in &info.extra_videos {
        if !template.can_intersect(caps) {
            let name = caps.structure(0).map_or("unknown", |s| s.name().as_str());
            bail!(
                "{output}: this container cannot hold the input's second video stream ({name}) \
                 as it is; use .mkv, or take the first video alone first \
                 (ffmpeg -map 0 -map -0:v:1 -c copy)"
            );
        }
    }
    Ok(match info.extra_videos.len() {
        0 => None,
        n => Some(format!(
            "gendr: {n} more video stream(s) copied as they are (not upscaled)"
        )),
    })
}

/// A queue into the muxer for a stream copied as it is, counting what it
/// sees for the stall watch. Unbounded: the demuxer feeds every stream from
/// one thread while the encoder holds back frames for look-ahead, so a
/// bounded queue would fill and stall the video behind it. Interleaving in
/// the file bounds it instead.
fn unbounded_queue(progress: &Arc<Progress>) -> Result<gst::Element> {
    let queue = gst::ElementFactory::make("queue")
        .property("max-size-buffers", 0u32)
        .property("max-size-bytes", 0u32)
        .property("max-size-time", 0u64)
        .build()?;
    let progress = progress.clone();
    queue.static_pad("sink").context("queue sink")?.add_probe(
        gst::PadProbeType::BUFFER,
        move |pad, info| {
            if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
                progress.saw_buffer(pad, buffer);
            }
            gst::PadProbeReturn::Ok
        },
    );
    Ok(queue)
}

/// Streams that are not copied (subtitles, data) go nowhere.
pub(super) fn discard(pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<()> {
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()?;
    pipeline.add(&sink)?;
    sink.sync_state_with_parent()?;
    pad.link(&sink.static_pad("sink").context("fakesink sink")?)?;
    Ok(())
}

/// Whether `muxer` writes Matroska (the other outputs are MP4/MOV).
pub(super) fn writes_matroska(muxer: &gst::Element) -> bool {
    muxer.factory().is_some_and(|f| f.name() == "matroskamux")
}

/// Whether a parsed stream with caps named `name` is subtitles (text or
/// bitmap).
pub(super) fn is_subtitle(name: &str) -> bool {
    name.starts_with("text/")
        || name.starts_with("subpicture/")
        || name.starts_with("subtitle/")
        || matches!(
            name,
            "application/x-ass"
                | "application/x-ssa"
                | "application/x-usf"
                | "application/x-subtitle-unknown"
        )
}

/// What happens to one subtitle stream in the output container.
enum SubtitleRoute {
    /// Into the muxer as it is.
    Copy,
    /// Pango markup (how matroskademux hands out SRT) back to UTF-8 text;
    /// `strip_tags` where the container shows tags literally.
    MarkupToText { strip_tags: bool },
    /// ASS/SSA to plain text (`ssaparse`): styling and positions are lost.
    AssToText,
}

/// The route for subtitles with `caps` into `muxer`, or why it cannot hold them.
fn subtitle_route(muxer: &gst::Element, caps: &gst::Caps, output: &str) -> Result<SubtitleRoute> {
    let template = muxer
        .pad_template("subtitle_%u")
        .map(|t| t.caps().clone())
        .unwrap_or_else(gst::Caps::new_empty);
    let accepts = |caps: &str| {
        caps.parse::<gst::Caps>()
            .is_ok_and(|c| template.can_intersect(&c))
    };
    let s = caps.structure(0).context("subtitle caps")?;
    let name = s.name().as_str();
    let holds_styled_text = accepts("application/x-ass");
    // mp4mux takes any text/x-raw, but writes markup as it is.
    if name == "text/x-raw" && s.get::<&str>("format") == Ok("pango-markup") {
        if accepts("text/x-raw,format=utf8") {
            return Ok(SubtitleRoute::MarkupToText {
                strip_tags: !holds_styled_text,
            });
        }
    } else if template.can_intersect(caps) {
        return Ok(SubtitleRoute::Copy);
    }
    match name {
        "application/x-ass" | "application/x-ssa" if accepts("text/x-raw,format=utf8") => {
            Ok(SubtitleRoute::AssToText)
        }
        "subpicture/x-dvd" => bail!(
            "{output}: this container cannot hold DVD bitmap subtitles; use .mkv, or --subtitles drop to leave them out"
        ),
        "subpicture/x-pgs" => bail!(
            "{output}: GStreamer 1.22 cannot write PGS (Blu-ray bitmap) subtitles into any container; \
             pass --subtitles drop to upscale without them"
        ),
        _ if holds_styled_text => bail!(
            "{output}: GStreamer cannot write {name} subtitles; pass --subtitles drop to upscale without them"
        ),
        _ => bail!(
            "{output}: this container cannot hold {name} subtitles; use .mkv, or --subtitles drop to leave them out"
        ),
    }
}

/// Sends a parsed subtitle stream into the muxer: copied, or converted to
/// the text the container holds (said on stderr when something is lost).
pub(super) fn copy_subtitle(
    pipeline: &gst::Pipeline,
    muxer: &gst::Element,
    pad: &gst::Pad,
    caps: &gst::Caps,
    output: &str,
) -> Result<()> {
    let route = subtitle_route(muxer, caps, output)?;
    let mut chain = Vec::new();
    match route {
        SubtitleRoute::Copy => {}
        SubtitleRoute::MarkupToText { strip_tags } => {
            let notice = strip_tags.then(|| {
                format!(
                    "gendr: subtitle styling tags (<i>, <b>, <font>…) removed: {output} holds \
                     plain timed text (.mkv keeps them)"
                )
            });
            chain.push(markup_to_text(strip_tags, notice)?);
        }
        SubtitleRoute::AssToText => {
            eprintln!(
                "gendr: ASS/SSA subtitles converted to plain text: {output} cannot hold their \
                 styling (fonts, colours, positions dropped; .mkv keeps them)"
            );
            chain.push(gst::ElementFactory::make("ssaparse").build()?);
            // The loss was said above.
            chain.push(markup_to_text(true, None)?);
        }
    }
    // Unbounded like the audio queue: subtitles are sparse and may arrive
    // long before the video frames they belong with are encoded.
    let queue = gst::ElementFactory::make("queue")
        .property("max-size-buffers", 0u32)
        .property("max-size-bytes", 0u32)
        .property("max-size-time", 0u64)
        .build()?;
    chain.push(queue);
    pipeline.add_many(&chain)?;
    gst::Element::link_many(&chain)?;
    for element in &chain {
        element.sync_state_with_parent()?;
    }
    let first = chain[0].static_pad("sink").context("subtitle chain sink")?;
    pad.link(&first)?;
    let mux_pad = muxer
        .request_pad_simple("subtitle_%u")
        .context("the muxer refused a subtitle stream")?;
    let last = chain[chain.len() - 1]
        .static_pad("src")
        .context("queue src")?;
    if !writes_matroska(muxer) {
        lead_in_from_zero(&last);
    }
    last.link(&mux_pad)?;
    Ok(())
}

/// qtmux shortens a text track's last sample by the time its first one
/// starts (a subtitle at 0.5 s of a 1 s one ends at 0.5 s): an empty sample
/// from zero up to the first subtitle keeps every one whole.
fn lead_in_from_zero(pad: &gst::Pad) {
    let done = std::sync::atomic::AtomicBool::new(false);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(gst::PadProbeData::Buffer(buffer)) = &info.data else {
            return gst::PadProbeReturn::Ok;
        };
        if done.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return gst::PadProbeReturn::Ok;
        }
        if let Some(pts) = buffer.pts().filter(|p| !p.is_zero()) {
            let mut empty = gst::Buffer::new();
            {
                let empty = empty.make_mut();
                empty.set_pts(gst::ClockTime::ZERO);
                empty.set_duration(pts);
            }
            // Pushed before the first subtitle, from its own streaming thread.
            let _ = pad.push(empty);
        }
        gst::PadProbeReturn::Ok
    });
}

/// An element turning Pango-markup subtitles into UTF-8 text: the caps are
/// renamed and each buffer's text unescaped (and stripped of tags where
/// `strip_tags`, with `notice` said the first time a tag goes).
fn markup_to_text(strip_tags: bool, notice: Option<String>) -> Result<gst::Element> {
    let setter = gst::ElementFactory::make("capssetter")
        .property(
            "caps",
            gst::Caps::builder("text/x-raw")
                .field("format", "utf8")
                .build(),
        )
        .property("replace", true)
        .build()?;
    let notice = std::sync::Mutex::new(notice);
    setter
        .static_pad("src")
        .context("capssetter src")?
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buffer) = info.buffer_mut() {
                let markup = buffer
                    .map_readable()
                    .ok()
                    .map(|m| String::from_utf8_lossy(&m).into_owned());
                if let Some(markup) = markup {
                    let text = markup_text(&markup, strip_tags);
                    if strip_tags && text != markup_text(&markup, false) {
                        if let Some(line) = notice.lock().unwrap_or_else(|p| p.into_inner()).take()
                        {
                            eprintln!("{line}");
                        }
                    }
                    let mut plain = gst::Buffer::from_mut_slice(text.into_bytes());
                    let _ = buffer.copy_into(
                        plain.make_mut(),
                        gst::BufferCopyFlags::FLAGS
                            | gst::BufferCopyFlags::TIMESTAMPS
                            | gst::BufferCopyFlags::META,
                        ..,
                    );
                    *buffer = plain;
                }
            }
            gst::PadProbeReturn::Ok
        });
    Ok(setter)
}

/// The text of a Pango-markup string: entities unescaped, and tags removed
/// where `strip_tags` (SRT-style `<i>` tags are kept otherwise).
fn markup_text(markup: &str, strip_tags: bool) -> String {
    let mut kept = String::with_capacity(markup.len());
    let mut rest = markup;
    while let Some(at) = rest.find(['<', '&']) {
        kept.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = if rest.starts_with('<') { '>' } else { ';' };
        let Some(close) = rest.find(end) else {
            break;
        };
        let token = &rest[..=close];
        rest = &rest[close + 1..];
        if end == '>' {
            if !strip_tags {
                kept.push_str(token);
            }
            continue;
        }
        match unescape_entity(&token[1..token.len() - 1]) {
            Some(c) => kept.push(c),
            None => kept.push_str(token),
        }
    }
    kept.push_str(rest);
    kept
}

/// The character an XML entity name (`amp`, `#39`, `#x27`) stands for.
fn unescape_entity(name: &str) -> Option<char> {
    let code = match name {
        "amp" => return Some('&'),
        "lt" => return Some('<'),
        "gt" => return Some('>'),
        "quot" => return Some('"'),
        "apos" => return Some('\''),
        _ => name.strip_prefix('#')?,
    };
    let value = match code.strip_prefix(['x', 'X']) {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => code.parse().ok()?,
    };
    char::from_u32(value)
}

/// Refuses, before anything runs, subtitle streams the output container
/// cannot hold (the same decision as when their pads appear).
pub(super) fn check_subtitles(info: &MediaInfo, muxer: &gst::Element, output: &str) -> Result<()> {
    for caps in &info.subtitles {
        subtitle_route(muxer, caps, output)?;
    }
    Ok(())
}

/// The line that says which stream titles an MP4/MOV output leaves out:
/// GStreamer 1.22's mp4mux and qtmux write no track names.
pub(super) fn lost_titles(info: &MediaInfo, muxer: &gst::Element, output: &str) -> Option<String> {
    if info.stream_titles.is_empty() || writes_matroska(muxer) {
        return None;
    }
    let titles: Vec<String> = info
        .stream_titles
        .iter()
        .map(|t| format!("{t:?}"))
        .collect();
    Some(format!(
        "gendr: {output} cannot hold stream titles: {} left out (.mkv keeps them)",
        titles.join(", ")
    ))
}

/// How the start line tells what becomes of the subtitles.
pub(super) fn subtitles_summary(info: &MediaInfo, keep: bool) -> String {
    match (info.subtitles.len(), keep) {
        (n, true) => format!("{n} subtitle stream(s) copied"),
        (n, false) => format!("{n} subtitle stream(s) dropped (--subtitles drop)"),
    }
}

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

/// The `moov` body of an MP4/MOV file; None for anything else.
fn quicktime_moov(path: &std::path::Path) -> Result<Option<Vec<u8>>> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot be read", path.display()))?;
    Ok(finishing::read_moov(&mut file)?.map(|(_, moov)| moov))
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

/// Whether a `trak` body is a sound track whose edit list starts its media
/// later than zero (encoder priming: AAC's 1024 samples, Opus's pre-skip).
fn edited_sound_track(trak: &[u8]) -> bool {
    let sound = finishing::box_bodies(trak)
        .filter(|(k, _)| k == b"mdia")
        .flat_map(|(_, mdia)| finishing::box_bodies(mdia))
        .any(|(k, hdlr)| &k == b"hdlr" && hdlr.get(8..12) == Some(b"soun"));
    let delayed = finishing::box_bodies(trak)
        .filter(|(k, _)| k == b"edts")
        .flat_map(|(_, edts)| finishing::box_bodies(edts))
        .filter(|(k, _)| k == b"elst")
        .any(|(_, elst)| {
            // version, flags, entry count, then the first entry's
            // duration and media time (32 or 64 bits by version).
            let media_time = match elst.first() {
                Some(0) => elst
                    .get(12..16)
                    .map(|b| i64::from(i32::from_be_bytes(b.try_into().expect("4 bytes")))),
                Some(1) => elst
                    .get(16..24)
                    .map(|b| i64::from_be_bytes(b.try_into().expect("8 bytes"))),
                _ => None,
            };
            media_time.is_some_and(|t| t > 0)
        });
    sound && delayed
}

/// The warning for an MP4/MOV input whose audio starts inside an edit
/// list: GStreamer 1.22's qtdemux hands on the packets before the edit
/// outside the stream's segment (the muxer drops them) and stops before the
/// last one (its end check compares media time with movie time), so their
/// first and last packets are lost; through Matroska every packet is kept.
pub(super) fn lost_audio_edges(input: &std::path::Path) -> Result<Option<String>> {
    let Some(moov) = quicktime_moov(input)? else {
        return Ok(None);
    };
    let edited = finishing::box_bodies(&moov)
        .filter(|(k, trak)| k == b"trak" && edited_sound_track(trak))
        .count();
    Ok((edited > 0).then(|| {
        format!(
            "gendr: warning: {}: {edited} audio track(s) start inside an edit list (encoder \
             priming), and GStreamer 1.22 loses packets at their start and end; to keep every \
             packet, remux to Matroska first (ffmpeg -i IN -map 0 -c copy IN.mkv) and write .mkv",
            input.display()
        )
    }))
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
pub(super) fn plan_chapters(
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
            "{}: its chapters are a QuickTime chapter track, which GStreamer 1.22 cannot read; \
             pass --chapters drop to upscale without them",
            input.display()
        );
    }
    let Some(setter) = muxer.dynamic_cast_ref::<gst::TocSetter>() else {
        bail!(
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
pub(super) fn drop_toc(pad: &gst::Pad) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_becomes_text_with_or_without_its_tags() {
        let markup = "<i>Tom &amp; Jerry</i> &lt;3 &#39;x&#x27;";
        assert_eq!(markup_text(markup, false), "<i>Tom & Jerry</i> <3 'x'");
        assert_eq!(markup_text(markup, true), "Tom & Jerry <3 'x'");
    }
}
