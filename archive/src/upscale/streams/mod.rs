//! The streams beside the video: copied into the output as they are,
//! converted where the container cannot hold them, or refused.

use crate::error::{Context, Result};
use gst::prelude::*;

use crate::finishing;
use crate::media::MediaInfo;

mod audio_edges;
mod audio_tail;
mod chapters;
mod routing;
mod subtitles;

pub(super) use audio_edges::lost_audio_edges;
pub(super) use audio_tail::SoundTracks;
pub(super) use chapters::{drop_toc, plan_chapters};
pub(super) use routing::{
    check_audio, check_extra_videos, copy_audio, copy_video, needs_reencoding, AudioLog,
    SharedAudioLog,
};
pub(super) use subtitles::{check_subtitles, copy_subtitle, is_subtitle, subtitles_summary};

/// The application message that carries a line for the user from a
/// streaming thread.
const NOTICE: &str = "gendr-notice";

/// Posts `line` for the user from a streaming thread, which has no
/// [`Observer`](crate::Observer): it goes on the pipeline's bus, whose
/// loop says it in order with the bus's other messages, above the progress
/// display, where a print from here would tear it.
fn post_notice(element: &gst::Element, line: String) {
    let structure = gst::Structure::builder(NOTICE).field("line", line).build();
    let _ = element.post_message(
        gst::message::Application::builder(structure)
            .src(element)
            .build(),
    );
}

/// The line a [`post_notice`] message carries; None for any other message.
pub(super) fn notice(msg: &gst::Message) -> Option<String> {
    match msg.view() {
        gst::MessageView::Application(app) => app
            .structure()
            .filter(|s| s.name() == NOTICE)
            .and_then(|s| s.get::<String>("line").ok()),
        _ => None,
    }
}

/// Whether `muxer` writes Matroska (the other outputs are MP4/MOV).
pub(crate) fn writes_matroska(muxer: &gst::Element) -> bool {
    muxer.factory().is_some_and(|f| f.name() == "matroskamux")
}

/// The line that says which stream titles an MP4/MOV output leaves out:
/// GStreamer 1.22's mp4mux and qtmux write no track names.
pub(crate) fn lost_titles(info: &MediaInfo, muxer: &gst::Element, output: &str) -> Option<String> {
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

/// The MP4/MOV track ID in a stream id of qtdemux's, which names its
/// streams ".../NNN" by track ID.
pub(crate) fn quicktime_track(stream_id: &str) -> Option<u32> {
    stream_id.rsplit('/').next().and_then(|id| id.parse().ok())
}

/// The `moov` body of an MP4/MOV file; None for anything else.
pub(super) fn quicktime_moov(path: &std::path::Path) -> Result<Option<Vec<u8>>> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot be read", path.display()))?;
    Ok(finishing::read_moov(&mut file)?.map(|(_, moov)| moov))
}
