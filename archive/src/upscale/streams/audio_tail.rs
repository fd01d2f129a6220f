//! The last audio packets of an MP4/MOV edit list, which GStreamer 1.22's
//! qtdemux does not hand on: it ends a track when the next sample's media
//! time reaches the edit's end in movie time, so a track whose edit starts
//! its media later than zero (encoder priming) loses what lies in that
//! stretch before its segment's stop (AAC's and Opus's last packet). They
//! are read from the file's sample table and pushed before the stream ends.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::Result;
use gst::prelude::*;

use super::quicktime_moov;
use crate::finishing;

/// Where one sample lies in the file and when it plays, in media time.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    offset: u64,
    size: u32,
    pts: gst::ClockTime,
    duration: gst::ClockTime,
}

/// The sound tracks' samples of an MP4/MOV input, by track ID.
pub(crate) struct SoundTracks {
    path: PathBuf,
    tracks: HashMap<u32, Vec<Sample>>,
}

impl SoundTracks {
    /// The sound tracks of `input` behind one edit; None for a file that is
    /// no MP4/MOV or has none.
    pub(crate) fn read(input: &Path) -> Result<Option<Arc<SoundTracks>>> {
        let Some(moov) = quicktime_moov(input)? else {
            return Ok(None);
        };
        let tracks: HashMap<u32, Vec<Sample>> = finishing::box_bodies(&moov)
            .filter(|(k, _)| k == b"trak")
            .filter_map(|(_, trak)| sound_samples(trak))
            .collect();
        Ok((!tracks.is_empty()).then(|| {
            Arc::new(SoundTracks {
                path: input.to_path_buf(),
                tracks,
            })
        }))
    }

    /// Pushes, when the stream on `pad` ends, its track's samples after the
    /// last one that came and before its segment's stop.
    pub(crate) fn complete(self: &Arc<Self>, pad: &gst::Pad) {
        #[derive(Default)]
        struct Seen {
            track: Option<u32>,
            stop: Option<gst::ClockTime>,
            /// Where the last buffer that came ends.
            last_end: Option<gst::ClockTime>,
        }
        let tracks = self.clone();
        let seen = Mutex::new(Seen::default());
        pad.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |pad, info| {
                let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                match &info.data {
                    Some(gst::PadProbeData::Buffer(buffer)) => {
                        // Unknown without a duration (qtdemux hands raw PCM
                        // on in chunks of samples): then nothing is pushed.
                        seen.last_end = buffer.pts().zip(buffer.duration()).map(|(p, d)| p + d);
                    }
                    Some(gst::PadProbeData::Event(event)) => match event.view() {
                        // qtdemux names its streams ".../NNN" by track ID.
                        gst::EventView::StreamStart(start) => {
                            seen.track = start
                                .stream_id()
                                .rsplit('/')
                                .next()
                                .and_then(|id| id.parse().ok());
                        }
                        gst::EventView::Segment(segment) => {
                            seen.stop = segment
                                .segment()
                                .downcast_ref::<gst::ClockTime>()
                                .and_then(|s| s.stop());
                        }
                        gst::EventView::Eos(_) => {
                            let missing = seen
                                .track
                                .and_then(|id| tracks.tracks.get(&id))
                                .map(|samples| after(samples, seen.last_end, seen.stop))
                                .unwrap_or_default();
                            drop(seen);
                            // Into the peer: this pad has taken the end already.
                            let Some(peer) = pad.peer() else {
                                return gst::PadProbeReturn::Ok;
                            };
                            for sample in missing {
                                let Ok(buffer) = tracks.buffer(&sample) else {
                                    break;
                                };
                                if peer.chain(buffer).is_err() {
                                    break;
                                }
                            }
                        }
                        _ => {}
                    },
                    _ => {}
                }
                gst::PadProbeReturn::Ok
            },
        );
    }

    fn buffer(&self, sample: &Sample) -> std::io::Result<gst::Buffer> {
        let mut file = std::fs::File::open(&self.path)?;
        file.seek(SeekFrom::Start(sample.offset))?;
        let mut data = vec![0u8; sample.size as usize];
        file.read_exact(&mut data)?;
        let mut buffer = gst::Buffer::from_mut_slice(data);
        {
            let buffer = buffer.get_mut().expect("new buffer");
            buffer.set_pts(sample.pts);
            buffer.set_dts(sample.pts);
            buffer.set_duration(sample.duration);
        }
        Ok(buffer)
    }
}

/// The samples that start from `last_end` on (to within half a sample, for
/// rounding) and before `stop`; none when where the last one ended is not
/// known.
fn after(
    samples: &[Sample],
    last_end: Option<gst::ClockTime>,
    stop: Option<gst::ClockTime>,
) -> Vec<Sample> {
    samples
        .iter()
        .filter(|s| last_end.is_some_and(|end| s.pts + s.duration / 2 > end))
        .filter(|s| stop.is_none_or(|stop| s.pts < stop))
        .copied()
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
    finishing::box_bodies(body)
        .find(|(k, _)| k == kind)
        .map(|(_, b)| b)
}

/// A full box's field at `v0` (version 0) or `v1` (version 1) bytes in.
fn versioned_u32(body: &[u8], v0: usize, v1: usize) -> Option<u32> {
    match body.first()? {
        0 => u32_at(body, v0),
        1 => u32_at(body, v1),
        _ => None,
    }
}

/// A sound `trak`'s ID and samples (offset, size and media time of each,
/// from `stsz`, `stsc`, `stco`/`co64` and `stts`), for a track behind an
/// edit list of one edit (what qtdemux cuts short; with several, media
/// times need not rise from one edit to the next); None for other tracks
/// or a table that does not add up.
fn sound_samples(trak: &[u8]) -> Option<(u32, Vec<Sample>)> {
    let id = versioned_u32(child(trak, b"tkhd")?, 12, 20)?;
    if u32_at(child(child(trak, b"edts")?, b"elst")?, 4)? != 1 {
        return None;
    }
    let mdia = child(trak, b"mdia")?;
    if child(mdia, b"hdlr")?.get(8..12)? != b"soun" {
        return None;
    }
    let timescale = u64::from(versioned_u32(child(mdia, b"mdhd")?, 12, 20)?).max(1);
    let stbl = child(child(mdia, b"minf")?, b"stbl")?;

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
        durations.extend(std::iter::repeat_n(u64::from(delta), n as usize));
    }
    if offsets.len() != count || durations.len() != count {
        return None;
    }
    let time = |ticks: u64| {
        gst::ClockTime::from_nseconds(
            (u128::from(ticks) * 1_000_000_000 / u128::from(timescale)) as u64,
        )
    };
    let mut ticks = 0u64;
    let samples = (0..count)
        .map(|i| {
            let sample = Sample {
                offset: offsets[i],
                size: sizes[i],
                pts: time(ticks),
                duration: time(ticks + durations[i]) - time(ticks),
            };
            ticks += durations[i];
            sample
        })
        .collect();
    Some((id, samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(pts_ms: u64) -> Sample {
        Sample {
            offset: pts_ms,
            size: 1,
            pts: gst::ClockTime::from_mseconds(pts_ms),
            duration: gst::ClockTime::from_mseconds(21),
        }
    }

    #[test]
    fn the_samples_after_the_last_that_came_and_before_the_stop_are_missing() {
        let samples: Vec<Sample> = [0, 21, 42, 63].map(sample).to_vec();
        let ms = gst::ClockTime::from_mseconds;
        // The last came at 21 ms and ended at 42 (a nanosecond off, as
        // rounding leaves it); the segment stops at 60 ms.
        let end = ms(42) - gst::ClockTime::NSECOND;
        assert_eq!(after(&samples, Some(end), Some(ms(60))), vec![sample(42)]);
        assert_eq!(after(&samples, Some(ms(42)), None).len(), 2);
        // A chunk of samples (raw PCM) came last, ending at 63 ms: only
        // what follows it, none of its own again; none after one to 84 ms.
        assert_eq!(
            after(&samples, Some(ms(63)), Some(ms(100))),
            vec![sample(63)]
        );
        assert!(after(&samples, Some(ms(84)), Some(ms(100))).is_empty());
        // Unknown where the last ended: nothing pushed.
        assert!(after(&samples, None, None).is_empty());
    }
}
