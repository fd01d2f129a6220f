//! The streams beside the video: copied into the output as they are,
//! converted where the container cannot hold them, or refused.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use gst::prelude::*;

use super::job::Progress;

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
    let codec = caps
        .structure(0)
        .map(|s| s.name().to_string())
        .unwrap_or_default();
    // Elements between the parsed pad and the queue: none for a copy.
    let mut chain = Vec::new();
    if !template.caps().can_intersect(caps) {
        if !transcode {
            bail!(
                "the {codec} audio cannot be copied into this container; use .mkv, or --audio aac \
                 to re-encode it"
            );
        }
        eprintln!(
            "gendr: {codec} audio re-encoded as AAC 256 kbit/s (this container cannot hold it)"
        );
        chain = vec![
            gst::ElementFactory::make("decodebin").build()?,
            gst::ElementFactory::make("audioconvert").build()?,
            gst::ElementFactory::make("audioresample").build()?,
            gst::ElementFactory::make("avenc_aac")
                .property("bitrate", 256_000i32)
                .build()?,
        ];
    }
    // The demuxer feeds audio and video from one thread while the encoder
    // holds back frames for look-ahead: a bounded audio queue would fill and
    // stall the video behind it. Interleaving in the file bounds it instead.
    let queue = gst::ElementFactory::make("queue")
        .property("max-size-buffers", 0u32)
        .property("max-size-bytes", 0u32)
        .property("max-size-time", 0u64)
        .build()?;
    let queue_sink = queue.static_pad("sink").context("queue sink")?;
    let progress = progress.clone();
    queue_sink.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
            progress.saw_buffer(buffer);
        }
        gst::PadProbeReturn::Ok
    });
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

/// Streams that are not copied (subtitles, data, extra video) go nowhere.
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
#[derive(Debug, PartialEq)]
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
            chain.push(markup_to_text(strip_tags)?);
        }
        SubtitleRoute::AssToText => {
            eprintln!(
                "gendr: ASS/SSA subtitles converted to plain text: {output} cannot hold their \
                 styling (fonts, colours, positions dropped; .mkv keeps them)"
            );
            chain.push(gst::ElementFactory::make("ssaparse").build()?);
            chain.push(markup_to_text(true)?);
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
    if muxer
        .factory()
        .is_some_and(|f| matches!(f.name().as_str(), "mp4mux" | "qtmux"))
    {
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
/// `strip_tags`).
fn markup_to_text(strip_tags: bool) -> Result<gst::Element> {
    let setter = gst::ElementFactory::make("capssetter")
        .property(
            "caps",
            gst::Caps::builder("text/x-raw")
                .field("format", "utf8")
                .build(),
        )
        .property("replace", true)
        .build()?;
    setter
        .static_pad("src")
        .context("capssetter src")?
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buffer) = info.buffer_mut() {
                let text = buffer
                    .map_readable()
                    .ok()
                    .map(|m| markup_text(&String::from_utf8_lossy(&m), strip_tags));
                if let Some(text) = text {
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
