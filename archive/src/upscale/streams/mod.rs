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
pub(super) use routing::{check_extra_videos, copy_audio, copy_video, AudioLog, SharedAudioLog};
pub(super) use subtitles::{check_subtitles, copy_subtitle, is_subtitle, subtitles_summary};

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
