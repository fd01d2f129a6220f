//! Subtitle streams: copied, converted to the text the container holds, or
//! refused before anything runs.

use crate::error::{bail, Context, Result};
use gst::prelude::*;

use super::{post_notice, writes_matroska};
use crate::media::MediaInfo;

/// Whether a parsed stream with caps named `name` is subtitles (text or
/// bitmap).
pub(crate) fn is_subtitle(name: &str) -> bool {
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
            Unsupported,
            "{output}: this container cannot hold DVD bitmap subtitles; use .mkv, or --subtitles drop to leave them out"
        ),
        "subpicture/x-pgs" => bail!(
            Unsupported,
            "{output}: GStreamer 1.22 cannot write PGS (Blu-ray bitmap) subtitles into any container; \
             pass --subtitles drop to upscale without them"
        ),
        _ if holds_styled_text => bail!(
            Unsupported,
            "{output}: GStreamer cannot write {name} subtitles; pass --subtitles drop to upscale without them"
        ),
        _ => bail!(
            Unsupported,
            "{output}: this container cannot hold {name} subtitles; use .mkv, or --subtitles drop to leave them out"
        ),
    }
}

/// Sends a parsed subtitle stream into the muxer: copied, or converted to
/// the text the container holds (said on stderr when something is lost).
pub(crate) fn copy_subtitle(
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
            post_notice(
                muxer,
                format!(
                    "gendr: ASS/SSA subtitles converted to plain text: {output} cannot hold \
                     their styling (fonts, colours, positions dropped; .mkv keeps them)"
                ),
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
        .add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            if let Some(buffer) = info.buffer_mut() {
                let markup = buffer
                    .map_readable()
                    .ok()
                    .map(|m| String::from_utf8_lossy(&m).into_owned());
                if let Some(markup) = markup {
                    let text = markup_text(&markup, strip_tags);
                    if strip_tags && text != markup_text(&markup, false) {
                        let line = notice.lock().unwrap_or_else(|p| p.into_inner()).take();
                        if let (Some(line), Some(setter)) = (line, pad.parent_element()) {
                            post_notice(&setter, line);
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
pub(crate) fn check_subtitles(info: &MediaInfo, muxer: &gst::Element, output: &str) -> Result<()> {
    for caps in &info.subtitles {
        subtitle_route(muxer, caps, output)?;
    }
    Ok(())
}

/// How the start line tells what becomes of the subtitles.
pub(crate) fn subtitles_summary(info: &MediaInfo, keep: bool) -> String {
    match (info.subtitles.len(), keep) {
        (n, true) => format!("{n} subtitle stream(s) copied"),
        (n, false) => format!("{n} subtitle stream(s) dropped (--subtitles drop)"),
    }
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
