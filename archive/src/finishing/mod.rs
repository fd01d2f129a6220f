//! Repairs made to a written output before it is moved into place, where
//! GStreamer 1.22's muxers write something wrong that no caps or tag can
//! prevent: each rewrites bytes of the finished file in place.

mod audio_edits;
mod matroska;
mod mp4;

use std::path::Path;

use crate::error::{Context, Result};

pub(crate) use audio_edits::{sound_tracks, EncodedAudio, SoundTrack, MATCHED_SAMPLES};
pub(crate) use matroska::MatroskaExtras;
pub(crate) use mp4::{box_bodies, has_timecode_track, read_moov, repair_opus_boxes};

/// What every output names as the program that wrote it (its ENCODER tag,
/// `©too` in MP4): the input's own names what wrote the input.
pub(crate) const ENCODER_NAME: &str = concat!("gendr ", env!("CARGO_PKG_VERSION"));

/// The ISO/IEC 23091-2 code of colour matrix bt470bg, which GStreamer 1.22
/// reads as its one BT.601 matrix and the encoders and muxers then write
/// as smpte170m (6): the same coefficients, another tag.
pub(crate) const MATRIX_BT470BG: u8 = 5;

/// The colour matrix code the container of `path` gives its first video
/// stream (Matroska's Colour element, an MP4/MOV `colr` box): None where
/// the container is neither, Some(None) where it is one and gives none.
pub(crate) fn container_matrix(path: &Path) -> Result<Option<Option<u8>>> {
    if let Some(code) = matroska::video_matrix(path)? {
        return Ok(Some(code));
    }
    mp4::video_matrix(path)
}

/// Containers whose timestamps are the input's own timeline (where an
/// MPEG transport or program stream's are a clock that starts anywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimelineKind {
    Matroska,
    QuickTime,
}

/// Which of those `path` is, if either.
pub(crate) fn timeline_kind(path: &Path) -> Result<Option<TimelineKind>> {
    if matroska::is_matroska(path)? {
        return Ok(Some(TimelineKind::Matroska));
    }
    let mut file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot be read", path.display()))?;
    Ok(read_moov(&mut file)?.map(|_| TimelineKind::QuickTime))
}

/// The average rate (frames per second) of the first video track of an
/// MP4/MOV file whose sample durations vary; None for a constant rate or
/// another container.
pub(crate) fn variable_video_rate(path: &Path) -> Result<Option<f64>> {
    mp4::variable_video_rate(path)
}

/// What the input says of itself that GStreamer 1.22's muxers do not carry
/// over (or replace with the run's own): read before a run, written into
/// the finished file.
pub(crate) struct SourceMetadata {
    pub matroska: MatroskaExtras,
    quicktime: mp4::QuickTimeMetadata,
    /// The input's stream titles, which a Matroska output keeps.
    titles: Vec<String>,
    /// The video's colour matrix code, written over the muxers' 6 when it
    /// is bt470bg (5).
    matrix: Option<u8>,
    /// An MP4/MOV input's sound tracks, whose edits' hidden priming an
    /// MP4/MOV output's audio edits hide again (a Matroska output's Opus
    /// CodecDelay).
    sound_tracks: Vec<SoundTrack>,
}

impl SourceMetadata {
    pub(crate) fn read(
        input: &Path,
        titles: &[String],
        matrix: Option<u8>,
    ) -> Result<SourceMetadata> {
        let mut file = std::fs::File::open(input)
            .with_context(|| format!("{}: cannot be read", input.display()))?;
        let sound_tracks = read_moov(&mut file)?
            .map(|(_, moov)| sound_tracks(&moov))
            .unwrap_or_default();
        Ok(SourceMetadata {
            matroska: MatroskaExtras::read(input)?,
            quicktime: mp4::QuickTimeMetadata::read(input)?,
            titles: titles.to_vec(),
            matrix: matrix.filter(|m| *m == MATRIX_BT470BG),
            sound_tracks,
        })
    }

    /// When the source was made (ns since the Unix epoch), as an MP4/MOV
    /// movie header or Matroska's DateUTC says.
    fn creation(&self) -> Option<i64> {
        self.quicktime.creation.or(self.matroska.creation())
    }

    /// The line on what an MP4/MOV output cannot hold of this source.
    pub(crate) fn lost_in_quicktime(&self, output: &str) -> Option<String> {
        let names = self.matroska.track_tag_names();
        (!names.is_empty()).then(|| {
            format!(
                "gendr: {output} cannot hold per-stream tags: {} left out (.mkv keeps them)",
                names.join(", ")
            )
        })
    }

    /// Completes the file the muxer wrote at `output` (Matroska or not),
    /// with the audio the run re-encoded (`encoded`); returns a line for
    /// each thing that could not be kept.
    pub(crate) fn write_into(
        &self,
        output: &Path,
        matroska: bool,
        encoded: &[EncodedAudio],
    ) -> Result<Vec<String>> {
        if matroska {
            self.matroska.write_into(
                output,
                &matroska::OutputFacts {
                    creation: self.creation(),
                    titles: &self.titles,
                    location: self.quicktime.location.as_deref(),
                    encoder: ENCODER_NAME,
                    matrix: self.matrix,
                    opus_pre_skips: &self
                        .sound_tracks
                        .iter()
                        .filter(|t| &t.format == b"Opus")
                        .map(SoundTrack::opus_pre_skip)
                        .collect::<Vec<_>>(),
                },
            )
        } else {
            repair_opus_boxes(output)?;
            audio_edits::write_audio_edits(
                output,
                &self.sound_tracks,
                self.matroska.opus_end_trims_ns(),
                encoded,
            )?;
            // A Matroska input's LOCATION tag becomes a `©xyz` box.
            let location = self
                .quicktime
                .location_box
                .clone()
                .or_else(|| self.matroska.location().map(|l| mp4::xyz_box(&l)));
            mp4::write_metadata(output, self.creation(), location.as_deref(), self.matrix)?;
            Ok(Vec::new())
        }
    }
}
