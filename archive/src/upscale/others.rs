//! What becomes of the input's streams beside the video: decided before a
//! run, completed after it.

use std::path::Path;

use crate::error::Result;

use super::streams;
use crate::finishing;
use crate::media::MediaInfo;
use crate::request::{Audio, KeepOrDrop, Target};
use crate::Observer;

/// What becomes of the input's streams beside the video (subtitles,
/// chapters, tags), decided before a run and completed after it: one path
/// for `gendr upscale` and `gendr join`.
pub(crate) struct OtherStreams {
    /// The output's name, for the lines.
    output: String,
    /// The line on video streams beyond the first, copied as they are.
    extra_videos: Option<String>,
    keep_subtitles: bool,
    lost_titles: Option<String>,
    chapters: Option<String>,
    writes_matroska: bool,
    /// What the input says of itself (tags, dates, track flags,
    /// attachments…), written into the output after muxing.
    source: finishing::SourceMetadata,
    /// The start line's words on the audio streams.
    audio: String,
    /// The line on per-stream tags a non-Matroska output cannot hold.
    lost_tags: Option<String>,
    /// The line on attachments a non-Matroska output cannot hold.
    lost_attachments: Option<String>,
    /// The line on audio packets lost at the edges of an MP4/MOV input.
    lost_audio_edges: Option<String>,
    /// The line on a Matroska input's Opus that runs late in MP4/MOV.
    late_opus: Option<String>,
    /// The line on a timecode (a mov `tmcd` track, MPEG-2 GOP headers)
    /// no GStreamer 1.22 muxer writes.
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
        streams::check_audio(info, muxer, target.options.audio == Audio::Aac)?;
        let source =
            finishing::SourceMetadata::read(target.input, &info.stream_titles, info.coded_matrix)?;
        let writes_matroska = streams::writes_matroska(muxer);
        let lost_tags = (!writes_matroska)
            .then(|| source.lost_in_quicktime(&output))
            .flatten();
        let lost_attachments = match source.matroska.attachment_count() {
            n if n > 0 && !writes_matroska => Some(format!(
                "gendr: {output} cannot hold attachments: {n} attached file(s) left out \
                 (.mkv keeps them)"
            )),
            _ => None,
        };
        let lost_timecode = if finishing::has_timecode_track(target.input)? {
            Some(format!(
                "gendr: {} has a timecode track, which GStreamer 1.22 cannot write: left out \
                 of {output}",
                target.input.display()
            ))
        } else {
            crate::media::mpeg2_gop_timecode(target.input)?.map(|start| {
                format!(
                    "gendr: {} has an MPEG-2 GOP timecode (from {start}), which GStreamer \
                     1.22's encoders and muxers cannot write: left out of {output}",
                    target.input.display()
                )
            })
        };
        // matroskademux 1.22 takes an Opus track's CodecDelay off every
        // block's time and clamps the first at 0; Matroska writes it back
        // as the delay, MP4/MOV have only the clamped times.
        let clamped_ms = source.matroska.opus_clamped_ns() as f64 / 1e6;
        let late_opus = (!writes_matroska && clamped_ms >= 0.5).then(|| {
            format!(
                "gendr: warning: {}: its Opus audio starts {clamped_ms:.1} ms inside its \
                 CodecDelay, which GStreamer 1.22 clamps at 0: in {output} it plays \
                 {clamped_ms:.1} ms late against the video (.mkv keeps its timing)",
                target.input.display()
            )
        });
        Ok(OtherStreams {
            output: output.clone(),
            late_opus,
            audio: audio_summary(info, muxer),
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
            source,
            lost_tags,
            lost_attachments,
            // MP4/MOV outputs hide the priming again with their own edits.
            lost_audio_edges: if writes_matroska {
                streams::lost_audio_edges(target.input)?
            } else {
                None
            },
        })
    }

    /// The start line's words on audio: how many streams are copied and
    /// how many re-encoded, one word for each stream.
    pub(crate) fn audio_summary(&self) -> &str {
        &self.audio
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
            &self.lost_tags,
            &self.lost_attachments,
            &self.lost_audio_edges,
            &self.late_opus,
            &self.lost_timecode,
        ]
        .into_iter()
        .flatten()
        {
            observer.say(line);
        }
    }

    /// Completes the written file before it is moved into place (with the
    /// audio the run re-encoded, in `audio`), saying what of the input's it
    /// could not keep or kept otherwise.
    pub(crate) fn finish(
        &self,
        partial: &Path,
        audio: &streams::AudioLog,
        observer: &dyn Observer,
    ) -> Result<()> {
        if let Some(line) = audio.reordered(&self.output) {
            observer.say(&line);
        }
        for line in self
            .source
            .write_into(partial, self.writes_matroska, &audio.encoded)?
        {
            observer.say(&line);
        }
        Ok(())
    }
}

/// How many of the input's audio streams `muxer` takes as they are, and
/// how many are re-encoded as AAC (`check_audio` has refused them where
/// re-encoding is not allowed).
fn audio_summary(info: &MediaInfo, muxer: &gst::Element) -> String {
    let copied = info
        .audio
        .iter()
        .filter(|caps| matches!(streams::needs_reencoding(muxer, caps, true), Ok(false)))
        .count();
    // Streams the discoverer gave no caps are counted as copied.
    let copied = copied + info.audio_streams.saturating_sub(info.audio.len());
    match (copied, info.audio_streams - copied) {
        (n, 0) => format!("{n} audio stream(s) copied"),
        (0, m) => format!("{m} audio stream(s) re-encoded as AAC"),
        (n, m) => format!("{n} audio stream(s) copied and {m} re-encoded as AAC"),
    }
}
