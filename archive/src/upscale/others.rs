//! What becomes of the input's streams beside the video: decided before a
//! run, completed after it.

use std::path::Path;

use anyhow::Result;

use super::streams;
use crate::finishing;
use crate::media::MediaInfo;
use crate::request::{KeepOrDrop, Target};
use crate::Observer;

/// What becomes of the input's streams beside the video (subtitles,
/// chapters, tags), decided before a run and completed after it: one path
/// for `gendr upscale` and `gendr join`.
pub(crate) struct OtherStreams {
    /// The line on video streams beyond the first, copied as they are.
    extra_videos: Option<String>,
    keep_subtitles: bool,
    lost_titles: Option<String>,
    chapters: Option<String>,
    writes_matroska: bool,
    /// Track flags and attachments of a Matroska input, written into a
    /// Matroska output after muxing.
    matroska_extras: finishing::MatroskaExtras,
    /// The line on attachments a non-Matroska output cannot hold.
    lost_attachments: Option<String>,
    /// The line on audio packets lost at the edges of an MP4/MOV input.
    lost_audio_edges: Option<String>,
    /// The line on a timecode track no GStreamer 1.22 muxer writes.
    lost_timecode: Option<String>,
}

impl OtherStreams {
    /// Refuses what the output cannot hold; hands chapters to `muxer`.
    pub(crate) fn prepare(target: Target, info: &MediaInfo, muxer: &gst::Element) -> Result<Self> {
        let output = target.output.display().to_string();
        let keep_subtitles = target.options.subtitles == KeepOrDrop::Keep;
        if keep_subtitles {
            streams::check_subtitles(info, muxer, &output)?;
        }
        let matroska_extras = finishing::MatroskaExtras::read(target.input)?;
        let writes_matroska = streams::writes_matroska(muxer);
        let lost_attachments = match matroska_extras.attachment_count() {
            n if n > 0 && !writes_matroska => Some(format!(
                "gendr: {output} cannot hold attachments: {n} attached file(s) left out \
                 (.mkv keeps them)"
            )),
            _ => None,
        };
        let lost_timecode = finishing::has_timecode_track(target.input)?.then(|| {
            format!(
                "gendr: {} has a timecode track, which GStreamer 1.22 cannot write: left out \
                 of {output}",
                target.input.display()
            )
        });
        Ok(OtherStreams {
            lost_timecode,
            extra_videos: streams::check_extra_videos(info, muxer, &output)?,
            keep_subtitles,
            lost_titles: streams::lost_titles(info, muxer, &output),
            chapters: streams::plan_chapters(
                target.input,
                target.output,
                info,
                muxer,
                target.options.chapters == KeepOrDrop::Keep,
            )?,
            writes_matroska,
            matroska_extras,
            lost_attachments,
            lost_audio_edges: streams::lost_audio_edges(target.input)?,
        })
    }

    /// The start line's words on subtitles.
    pub(crate) fn subtitles_summary(&self, info: &MediaInfo) -> String {
        streams::subtitles_summary(info, self.keep_subtitles)
    }

    /// The start line's words on chapters, after a comma, if any.
    pub(crate) fn chapters_summary(&self) -> String {
        self.chapters
            .as_ref()
            .map(|c| format!(", {c}"))
            .unwrap_or_default()
    }

    /// Said even with -q, like every other loss.
    pub(crate) fn say_losses(&self, observer: &dyn Observer) {
        for line in [
            &self.extra_videos,
            &self.lost_titles,
            &self.lost_attachments,
            &self.lost_audio_edges,
            &self.lost_timecode,
        ]
        .into_iter()
        .flatten()
        {
            observer.say(line);
        }
    }

    /// Completes the written file before it is moved into place.
    pub(crate) fn finish(&self, partial: &Path) -> Result<()> {
        if self.writes_matroska {
            finishing::restore_matroska_tags(partial)?;
            self.matroska_extras.write_into(partial)?;
        } else {
            finishing::repair_opus_boxes(partial)?;
        }
        Ok(())
    }
}
