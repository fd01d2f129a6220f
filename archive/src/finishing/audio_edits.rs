//! MP4/MOV sound tracks' sample tables and edit lists: read from the input
//! (what qtdemux keeps back, the encoder priming an edit hides) and the
//! output's audio edit lists rewritten to hide that priming again.
//!
//! GStreamer 1.22's mp4mux/qtmux write every audio edit with media time 0,
//! so priming that the input's edit list hides (AAC's 1024 samples, AC-3's
//! 256, Opus's pre-skip) would play before the first frame. The run hands
//! the muxer each such track from its first packet on, moved later by the
//! hidden stretch (see `upscale::timeline`); here the output's edit is set
//! to start its media that much later, as the input's does. Audio the run
//! re-encodes as AAC gets the same for its encoder's priming, and its edit
//! ends where the audio fed to the encoder ends.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use super::mp4::{box_bodies, boxes, moov_box};
use crate::error::{Context, Result};

/// One sound track of an MP4/MOV file, as its sample table gives it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SoundTrack {
    pub id: u32,
    /// The sample entry's type (`mp4a`, `ac-3`, `Opus`…).
    pub format: [u8; 4],
    /// Media ticks per second.
    pub timescale: u32,
    pub sizes: Vec<u32>,
    /// Where each sample starts in the file.
    pub offsets: Vec<u64>,
    /// Each sample's duration in media ticks.
    pub durations: Vec<u32>,
    /// The media time (ticks) its edit list starts at, when the list is
    /// one edit; None for several (media times need not rise from one to
    /// the next) or none.
    pub edit_media_time: Option<i64>,
}

impl SoundTrack {
    /// Media ticks from the track's start to where sample `index` starts.
    pub(crate) fn start_of(&self, index: usize) -> u64 {
        self.durations[..index].iter().map(|d| u64::from(*d)).sum()
    }

    /// The pre-skip (48 kHz samples) an Opus track's edit hides, which a
    /// Matroska output says as its CodecDelay and OpusHead pre-skip; None
    /// for another codec, an edit that hides nothing, or one that starts
    /// past the first packet (a cut file's: more than a decoder's delay,
    /// which ffmpeg 5.1 then reads as a shorter track).
    pub(crate) fn opus_pre_skip(&self) -> Option<u16> {
        let edit = u64::try_from(self.edit_media_time?).ok()?;
        let first = u64::from(*self.durations.first()?);
        let samples = u128::from(edit) * 48_000 / u128::from(self.timescale.max(1));
        (&self.format == b"Opus" && !self.sizes.is_empty() && edit < first)
            .then(|| u16::try_from(samples).ok())
            .flatten()
            .filter(|s| *s > 0)
    }
}

/// The sound tracks of a `moov` body whose sample tables add up.
pub(crate) fn sound_tracks(moov: &[u8]) -> Vec<SoundTrack> {
    box_bodies(moov)
        .filter(|(k, _)| k == b"trak")
        .filter_map(|(_, trak)| sound_track(trak))
        .collect()
}

fn u32_at(body: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(body.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(body: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(body.get(at..at + 8)?.try_into().ok()?))
}

/// The first box of `kind` in `body`.
fn child<'a>(body: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    box_bodies(body).find(|(k, _)| k == kind).map(|(_, b)| b)
}

/// A full box's field at `v0` (version 0) or `v1` (version 1) bytes in.
fn versioned_u32(body: &[u8], v0: usize, v1: usize) -> Option<u32> {
    match body.first()? {
        0 => u32_at(body, v0),
        1 => u32_at(body, v1),
        _ => None,
    }
}

/// An `elst` body's entries: (duration in movie ticks, media time), and
/// where each entry starts within the body.
fn edits(elst: &[u8]) -> Option<Vec<(u64, i64, usize)>> {
    let count = u32_at(elst, 4)? as usize;
    let version = *elst.first()?;
    (0..count)
        .map(|i| match version {
            0 => {
                let at = 8 + 12 * i;
                let media = i64::from(u32_at(elst, at + 4)? as i32);
                Some((u64::from(u32_at(elst, at)?), media, at))
            }
            1 => {
                let at = 8 + 20 * i;
                Some((u64_at(elst, at)?, u64_at(elst, at + 8)? as i64, at))
            }
            _ => None,
        })
        .collect()
}

/// A sound `trak`'s sample table (`stsz`, `stsc`, `stco`/`co64`, `stts`);
/// None for other tracks or a table that does not add up.
fn sound_track(trak: &[u8]) -> Option<SoundTrack> {
    let id = versioned_u32(child(trak, b"tkhd")?, 12, 20)?;
    let mdia = child(trak, b"mdia")?;
    if child(mdia, b"hdlr")?.get(8..12)? != b"soun" {
        return None;
    }
    let timescale = versioned_u32(child(mdia, b"mdhd")?, 12, 20)?.max(1);
    let stbl = child(child(mdia, b"minf")?, b"stbl")?;
    // stsd: version, flags, entry count, then the first entry's size and type.
    let format = child(stbl, b"stsd")?.get(12..16)?.try_into().ok()?;

    let stsz = child(stbl, b"stsz")?;
    let (fixed, count) = (u32_at(stsz, 4)?, u32_at(stsz, 8)? as usize);
    let sizes: Vec<u32> = match fixed {
        0 => (0..count)
            .map(|i| u32_at(stsz, 12 + 4 * i))
            .collect::<Option<_>>()?,
        size => vec![size; count],
    };
    let chunks: Vec<u64> = match (child(stbl, b"stco"), child(stbl, b"co64")) {
        (Some(stco), _) => (0..u32_at(stco, 4)? as usize)
            .map(|i| u32_at(stco, 8 + 4 * i).map(u64::from))
            .collect::<Option<_>>()?,
        (None, Some(co64)) => (0..u32_at(co64, 4)? as usize)
            .map(|i| u64_at(co64, 8 + 8 * i))
            .collect::<Option<_>>()?,
        (None, None) => return None,
    };
    // (first chunk, samples per chunk), chunks counted from 1.
    let stsc = child(stbl, b"stsc")?;
    let runs: Vec<(usize, usize)> = (0..u32_at(stsc, 4)? as usize)
        .map(|i| {
            Some((
                u32_at(stsc, 8 + 12 * i)? as usize,
                u32_at(stsc, 12 + 12 * i)? as usize,
            ))
        })
        .collect::<Option<_>>()?;
    let mut offsets = Vec::with_capacity(count);
    for (chunk, &chunk_offset) in chunks.iter().enumerate() {
        let per_chunk = runs
            .iter()
            .take_while(|(first, _)| *first <= chunk + 1)
            .last()?
            .1;
        let mut at = chunk_offset;
        for _ in 0..per_chunk {
            let size = *sizes.get(offsets.len())?;
            offsets.push(at);
            at += u64::from(size);
        }
    }
    let stts = child(stbl, b"stts")?;
    let mut durations = Vec::with_capacity(count);
    for i in 0..u32_at(stts, 4)? as usize {
        let (n, delta) = (u32_at(stts, 8 + 8 * i)?, u32_at(stts, 12 + 8 * i)?);
        durations.extend(std::iter::repeat_n(delta, n as usize));
    }
    if offsets.len() != count || durations.len() != count {
        return None;
    }
    let edit_media_time = child(trak, b"edts")
        .and_then(|edts| child(edts, b"elst"))
        .and_then(edits)
        .filter(|e| e.len() == 1)
        .map(|e| e[0].1);
    Some(SoundTrack {
        id,
        format,
        timescale,
        sizes,
        offsets,
        durations,
        edit_media_time,
    })
}

/// Samples FFmpeg's AAC encoder (`avenc_aac`) primes with before the
/// first sample it was given (its `initial_padding`).
pub(crate) const AAC_ENCODER_PRIMING: u64 = 1024;

/// One audio stream the run re-encoded as AAC, as its encoder saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct EncodedAudio {
    /// The sizes of its first encoded packets, to find its track by.
    pub first_sizes: Vec<u32>,
    /// Sample frames fed to the encoder.
    pub samples: u64,
    /// Their rate.
    pub rate: u32,
}

/// How many of an output track's first sample sizes must match the
/// input's (or what the run's encoder wrote) for the two to be one track:
/// enough that tracks of one codec (a tone encoded twice) are told apart
/// by their content.
pub(crate) const MATCHED_SAMPLES: usize = 16;

/// The priming (media ticks of `output`'s timescale) that `input`'s edit
/// hides of the samples `output` holds: where the edit starts its media,
/// counted from the input sample `output` starts with, found by content
/// (the sample entry type and the first sample sizes; the muxer may order
/// and number tracks otherwise). None where no input track matches or its
/// edit hides none of them.
fn hidden_priming(output: &SoundTrack, input: &[SoundTrack]) -> Option<u64> {
    let n = output.sizes.len().min(MATCHED_SAMPLES);
    let first = output.sizes.get(..n).filter(|s| !s.is_empty())?;
    input
        .iter()
        .filter(|track| track.format == output.format)
        .find_map(|track| {
            let edit = u64::try_from(track.edit_media_time?).ok()?;
            let from = track.sizes.windows(n).position(|w| w == first)?;
            let hidden = edit.checked_sub(track.start_of(from))?;
            let ticks =
                u128::from(hidden) * u128::from(output.timescale) / u128::from(track.timescale);
            u64::try_from(ticks).ok().filter(|t| *t > 0)
        })
}

/// The offsets within a `moov` body of each `trak` body, with the track's
/// parts the edit rewrite touches.
struct TrackBoxes {
    /// The `tkhd` body.
    tkhd: usize,
    /// The `elst` body and its length.
    elst: (usize, usize),
}

/// Every `trak` of `moov` with a `tkhd` and an `edts/elst`, by track ID.
fn track_boxes(moov: &[u8]) -> Vec<(u32, TrackBoxes)> {
    // The spans of the boxes in `moov[at..at + len]`, as offsets in `moov`.
    let within = |(at, len): (usize, usize)| {
        boxes(&moov[at..at + len])
            .into_iter()
            .map(move |(kind, body, body_len)| (kind, at + body, body_len))
    };
    within((0, moov.len()))
        .filter(|(kind, _, _)| kind == b"trak")
        .filter_map(|(_, trak, trak_len)| {
            let (_, tkhd, _) = within((trak, trak_len)).find(|(k, _, _)| k == b"tkhd")?;
            let (_, elst, elst_len) = within((trak, trak_len))
                .filter(|(k, _, _)| k == b"edts")
                .flat_map(|(_, at, len)| within((at, len)))
                .find(|(k, _, _)| k == b"elst")?;
            let id = versioned_u32(&moov[tkhd..], 12, 20)?;
            Some((
                id,
                TrackBoxes {
                    tkhd,
                    elst: (elst, elst_len),
                },
            ))
        })
        .collect()
}

/// Writes `value` into the field of `width` bytes (4 or 8) at `at`.
fn put(moov: &mut [u8], at: usize, width: usize, value: u64) {
    match width {
        4 => moov[at..at + 4]
            .copy_from_slice(&u32::try_from(value).unwrap_or(u32::MAX).to_be_bytes()),
        _ => moov[at..at + 8].copy_from_slice(&value.to_be_bytes()),
    }
}

fn get(moov: &[u8], at: usize, width: usize) -> u64 {
    match width {
        4 => u32_at(moov, at).map_or(0, u64::from),
        _ => u64_at(moov, at).unwrap_or(0),
    }
}

/// The movie timescale of a `moov` body.
fn movie_scale(moov: &[u8]) -> Option<u32> {
    box_bodies(moov)
        .find(|(k, _)| k == b"mvhd")
        .and_then(|(_, mvhd)| versioned_u32(mvhd, 12, 20))
}

/// What becomes of one output sound track's edit.
struct EditChange {
    /// Movie ticks off the media edit's duration and the track's.
    shorter: u64,
    /// The media time the edit then starts at; None leaves it at 0.
    media_time: Option<u64>,
}

/// Applies to `track` what `change` makes of its media edit's duration,
/// where its edits are what the muxers write (an optional empty edit, then
/// the media from its start); anything else is left as it is, as is a
/// track `change` gives nothing for. Returns whether it was rewritten.
fn change_track(
    moov: &mut [u8],
    track: &TrackBoxes,
    change: impl FnOnce(u64) -> Option<EditChange>,
) -> bool {
    let (elst, elst_len) = track.elst;
    let Some(entries) = edits(&moov[elst..elst + elst_len]) else {
        return false;
    };
    let Some(&(duration, media_time, entry)) = entries.last() else {
        return false;
    };
    if media_time != 0 || entries.len() > 2 || entries.len() == 2 && entries[0].1 != -1 {
        return false;
    }
    let Some(EditChange {
        shorter,
        media_time,
    }) = change(duration)
    else {
        return false;
    };
    let width = if moov[elst] == 0 { 4 } else { 8 };
    put(moov, elst + entry, width, duration.saturating_sub(shorter));
    if let Some(media_time) = media_time {
        put(moov, elst + entry + width, width, media_time);
    }
    // tkhd: version, flags, two times, the track ID, 4 reserved bytes,
    // then the duration.
    let tkhd = track.tkhd;
    let (at, tkhd_width) = if moov[tkhd] == 0 {
        (tkhd + 20, 4)
    } else {
        (tkhd + 28, 8)
    };
    let track_duration = get(moov, at, tkhd_width);
    put(moov, at, tkhd_width, track_duration.saturating_sub(shorter));
    true
}

/// Rewrites each sound track of `moov` as `change` says, given the track,
/// the movie's timescale and its media edit's duration ([`change_track`]),
/// then sets the movie's duration to its longest track's. In place: no box
/// changes size. Returns how many tracks were rewritten.
fn change_sound_tracks(
    moov: &mut [u8],
    mut change: impl FnMut(&SoundTrack, u32, u64) -> Option<EditChange>,
) -> usize {
    let Some(movie_scale) = movie_scale(moov) else {
        return 0;
    };
    let tracks = track_boxes(moov);
    let mut rewritten = 0;
    for output in sound_tracks(moov) {
        let Some((_, track)) = tracks.iter().find(|(id, _)| *id == output.id) else {
            continue;
        };
        if change_track(moov, track, |duration| {
            change(&output, movie_scale, duration)
        }) {
            rewritten += 1;
        }
    }
    if rewritten > 0 {
        set_movie_duration(moov, &tracks);
    }
    rewritten
}

/// Sets the movie's duration (`mvhd`) to its longest track's.
fn set_movie_duration(moov: &mut [u8], tracks: &[(u32, TrackBoxes)]) {
    let longest = tracks
        .iter()
        .map(|(_, track)| {
            let tkhd = track.tkhd;
            if moov[tkhd] == 0 {
                get(moov, tkhd + 20, 4)
            } else {
                get(moov, tkhd + 28, 8)
            }
        })
        .max()
        .unwrap_or(0);
    let mvhd = boxes(moov)
        .into_iter()
        .find(|(k, _, _)| k == b"mvhd")
        .map(|(_, at, _)| at);
    if let Some(mvhd) = mvhd {
        // mvhd: version, flags, two times, the timescale, the duration.
        match moov[mvhd] {
            0 => put(moov, mvhd + 16, 4, longest),
            _ => put(moov, mvhd + 24, 8, longest),
        }
    }
}

/// Sets, in the `moov` body of a file GStreamer wrote, each sound track's
/// edit to start its media after the priming that its input track's edit
/// hides, the edit and track durations shortened by as much, and the
/// movie's duration to its longest track's. Returns how many tracks were
/// rewritten.
fn hide_priming(moov: &mut [u8], input: &[SoundTrack]) -> usize {
    change_sound_tracks(moov, |output, movie_scale, _| {
        let priming = hidden_priming(output, input)?;
        Some(EditChange {
            shorter: priming * u64::from(movie_scale) / u64::from(output.timescale),
            media_time: Some(priming),
        })
    })
}

/// Sets each AAC track the run encoded (`encoded`, found by its first
/// packet sizes) to start its media after the encoder's priming and to end
/// it where the audio fed to the encoder ends: the edit's media time and
/// duration, the track's duration and the movie's. Returns how many.
fn hide_encoder_priming(moov: &mut [u8], encoded: &[EncodedAudio]) -> usize {
    change_sound_tracks(moov, |output, movie_scale, duration| {
        let encoded = encoded.iter().find(|e| {
            let n = e.first_sizes.len().min(output.sizes.len());
            &output.format == b"mp4a"
                && e.rate > 0
                && n > 0
                && output.sizes[..n] == e.first_sizes[..n]
        })?;
        // The shown stretch in movie ticks, rounded up (no sample cut).
        let shown = u128::from(encoded.samples) * u128::from(movie_scale);
        let shown = u64::try_from(shown.div_ceil(u128::from(encoded.rate))).unwrap_or(u64::MAX);
        Some(EditChange {
            shorter: duration.saturating_sub(shown),
            media_time: Some(
                AAC_ENCODER_PRIMING * u64::from(output.timescale) / u64::from(encoded.rate),
            ),
        })
    })
}

/// Ends each Opus track's edit `trims_ns` earlier (a Matroska input's Opus
/// tracks in order, matched by rank when the output has as many): the end
/// trimming Matroska gives as the last block's DiscardPadding, which the
/// Opus-in-ISOBMFF mapping gives as the edit's end. Rounded down to whole
/// movie ticks, so no shown sample is cut. Returns how many were shortened.
fn trim_opus_ends(moov: &mut [u8], trims_ns: &[u64]) -> usize {
    let opus: Vec<u32> = sound_tracks(moov)
        .into_iter()
        .filter(|t| &t.format == b"Opus")
        .map(|t| t.id)
        .collect();
    if opus.len() != trims_ns.len() {
        return 0;
    }
    change_sound_tracks(moov, |output, movie_scale, _| {
        let rank = opus.iter().position(|id| *id == output.id)?;
        let shorter = u128::from(trims_ns[rank]) * u128::from(movie_scale) / 1_000_000_000;
        (shorter > 0).then(|| EditChange {
            shorter: u64::try_from(shorter).unwrap_or(u64::MAX),
            media_time: None,
        })
    })
}

/// Rewrites the audio edit lists of the MP4/MOV file GStreamer wrote at
/// `path`: to hide the priming that `input`'s edits hide (see the module's
/// note) and that of the audio the run encoded (`encoded`), and to end each
/// Opus track where a Matroska input trims it (`opus_end_trims_ns`).
/// Returns how many tracks were rewritten.
pub(crate) fn write_audio_edits(
    path: &Path,
    input: &[SoundTrack],
    opus_end_trims_ns: &[u64],
    encoded: &[EncodedAudio],
) -> Result<usize> {
    let hides_priming = input.iter().any(|t| t.edit_media_time.unwrap_or(0) > 0);
    let trims_ends = opus_end_trims_ns.iter().any(|t| *t > 0);
    if !hides_priming && !trims_ends && encoded.is_empty() {
        return Ok(0);
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("{}: reopening to write its audio edits", path.display()))?;
    let Some(mut moov) = moov_box(&mut file)? else {
        return Ok(0);
    };
    let rewritten = hide_priming(&mut moov.body, input)
        + trim_opus_ends(&mut moov.body, opus_end_trims_ns)
        + hide_encoder_priming(&mut moov.body, encoded);
    if rewritten > 0 {
        file.seek(SeekFrom::Start(moov.at + moov.header))?;
        file.write_all(&moov.body)?;
    }
    Ok(rewritten)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finishing::mp4::tests::mp4_box;

    fn words(values: &[u32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_be_bytes()).collect()
    }

    /// A version 0 sound `trak`: one chunk of samples of `sizes`, each
    /// 1024 ticks at 48 kHz, behind the edits (movie ticks, media time).
    fn sound_trak(id: u32, format: &[u8; 4], sizes: &[u32], edits: &[(u32, i32)]) -> Vec<u8> {
        let tkhd = words(&[0, 0, 0, id, 0, 5000]);
        let mut elst = words(&[0, edits.len() as u32]);
        for (duration, media) in edits {
            elst.extend(words(&[*duration, *media as u32, 1 << 16]));
        }
        let mut stsd = words(&[0, 1]);
        stsd.extend(mp4_box(format, &[0; 28]));
        let mut stsz = words(&[0, 0, sizes.len() as u32]);
        stsz.extend(words(sizes));
        let stbl = [
            mp4_box(b"stsd", &stsd),
            mp4_box(b"stts", &words(&[0, 1, sizes.len() as u32, 1024])),
            mp4_box(b"stsc", &words(&[0, 1, 1, sizes.len() as u32, 1])),
            mp4_box(b"stsz", &stsz),
            mp4_box(b"stco", &words(&[0, 1, 40])),
        ]
        .concat();
        let mut hdlr = words(&[0, 0]);
        hdlr.extend_from_slice(b"soun");
        let mdia = [
            mp4_box(b"mdhd", &words(&[0, 0, 0, 48_000, 0])),
            mp4_box(b"hdlr", &hdlr),
            mp4_box(b"minf", &mp4_box(b"stbl", &stbl)),
        ]
        .concat();
        let trak = [
            mp4_box(b"tkhd", &tkhd),
            mp4_box(b"edts", &mp4_box(b"elst", &elst)),
            mp4_box(b"mdia", &mdia),
        ]
        .concat();
        mp4_box(b"trak", &trak)
    }

    /// A `moov` body at movie timescale 2500 holding `traks`.
    fn moov(traks: &[Vec<u8>]) -> Vec<u8> {
        let mut body = mp4_box(b"mvhd", &words(&[0, 0, 0, 2500, 5000]));
        body.extend(traks.concat());
        body
    }

    #[test]
    fn only_an_opus_edit_within_its_first_packet_is_a_pre_skip() {
        let track = |format: &[u8; 4], media: i32| {
            sound_tracks(&moov(&[sound_trak(
                1,
                format,
                &[9, 8, 7],
                &[(5000, media)],
            )]))
            .remove(0)
        };
        assert_eq!(track(b"Opus", 312).opus_pre_skip(), Some(312));
        // A cut file's edit, past the first packet (1024 ticks): not one.
        assert_eq!(track(b"Opus", 1336).opus_pre_skip(), None);
        assert_eq!(track(b"Opus", 0).opus_pre_skip(), None);
        assert_eq!(track(b"mp4a", 312).opus_pre_skip(), None);
    }

    #[test]
    fn the_output_edit_hides_what_the_matching_input_edit_hides() {
        let sizes: Vec<u32> = (100..120).collect();
        // The input's AC-3 (track 3) hides 256 ticks of its first sample,
        // its AAC (track 2) the whole first sample.
        let input = sound_tracks(&moov(&[
            sound_trak(2, b"mp4a", &sizes, &[(2000, 1024)]),
            sound_trak(3, b"ac-3", &sizes, &[(2000, 256)]),
        ]));
        assert_eq!(input[1].edit_media_time, Some(256));
        // The muxer numbered them otherwise; its AAC holds the priming
        // sample, an AAC that starts after it holds nothing hidden, and a
        // track of no input's is left alone.
        let mut output = moov(&[
            sound_trak(1, b"ac-3", &sizes, &[(16, -1), (5000, 0)]),
            sound_trak(2, b"mp4a", &sizes, &[(5000, 0)]),
            sound_trak(3, b"mp4a", &sizes[1..], &[(5000, 0)]),
            sound_trak(4, b"Opus", &sizes, &[(5000, 0)]),
        ]);
        assert_eq!(hide_priming(&mut output, &input), 2);
        let written: Vec<Option<i64>> = sound_tracks(&output)
            .iter()
            .map(|t| t.edit_media_time)
            .collect();
        // Two edits (empty, then the media) read as none: the list itself.
        assert_eq!(written, vec![None, Some(1024), Some(0), Some(0)]);
        let ac3 = track_boxes(&output)[0].1.elst;
        let entries = edits(&output[ac3.0..ac3.0 + ac3.1]).unwrap();
        // 256 ticks at 48 kHz are 13 at 2500: the edit that much shorter.
        let shown: Vec<(u64, i64)> = entries.iter().map(|(d, m, _)| (*d, *m)).collect();
        assert_eq!(shown, vec![(16, -1), (4987, 256)]);
        // The movie lasts as its longest track, now the AC-3's.
        let mut output = moov(&[sound_trak(1, b"ac-3", &sizes, &[(5000, 0)])]);
        assert_eq!(hide_priming(&mut output, &input), 1);
        // mvhd's duration: past its 8-byte header, version, flags, times
        // and timescale.
        assert_eq!(u32_at(&output, 8 + 16), Some(4987));
    }

    #[test]
    fn each_opus_edit_ends_where_its_matroska_track_is_trimmed() {
        let sizes: Vec<u32> = (100..120).collect();
        let mut output = moov(&[
            sound_trak(1, b"mp4a", &sizes, &[(5000, 0)]),
            sound_trak(2, b"Opus", &sizes, &[(16, -1), (5036, 0)]),
            sound_trak(3, b"Opus", &sizes, &[(5036, 0)]),
        ]);
        // 13.5 ms at 2500 is 33.75 ticks: 33, so no shown sample is cut.
        assert_eq!(trim_opus_ends(&mut output, &[13_500_000, 0]), 1);
        let shown = |output: &[u8], i: usize| {
            let elst = track_boxes(output)[i].1.elst;
            edits(&output[elst.0..elst.0 + elst.1])
                .unwrap()
                .iter()
                .map(|(d, m, _)| (*d, *m))
                .collect::<Vec<_>>()
        };
        assert_eq!(shown(&output, 0), vec![(5000, 0)]);
        assert_eq!(shown(&output, 1), vec![(16, -1), (5003, 0)]);
        assert_eq!(shown(&output, 2), vec![(5036, 0)]);
        // As many trims as Opus tracks, or none is matched.
        assert_eq!(trim_opus_ends(&mut output, &[13_500_000]), 0);
    }

    #[test]
    fn an_encoded_aac_edit_hides_the_priming_and_ends_with_the_audio_fed() {
        let sizes: Vec<u32> = (100..120).collect();
        // 20 packets of 1024 (20480 ticks at 48 kHz) hold 1024 priming
        // samples and 19000 fed; the muxer's edit ran over all of them.
        let mut output = moov(&[
            sound_trak(1, b"mp4a", &sizes[1..], &[(1067, 0)]),
            sound_trak(2, b"mp4a", &sizes, &[(16, -1), (1067, 0)]),
        ]);
        let encoded = EncodedAudio {
            first_sizes: sizes[..16].to_vec(),
            samples: 19_000,
            rate: 48_000,
        };
        assert_eq!(hide_encoder_priming(&mut output, &[encoded]), 1);
        let elst = track_boxes(&output)[1].1.elst;
        let shown: Vec<(u64, i64)> = edits(&output[elst.0..elst.0 + elst.1])
            .unwrap()
            .iter()
            .map(|(d, m, _)| (*d, *m))
            .collect();
        // 19000 samples at 2500 are 989.58 ticks: 990, no sample cut.
        assert_eq!(shown, vec![(16, -1), (990, 1024)]);
        // The other AAC track (not this encoder's packets) is left alone.
        let other = track_boxes(&output)[0].1.elst;
        assert_eq!(
            edits(&output[other.0..other.0 + other.1]).unwrap()[0].0,
            1067
        );
    }
}
