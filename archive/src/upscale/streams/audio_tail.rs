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

use super::{quicktime_moov, quicktime_track};
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
        let tracks: HashMap<u32, Vec<Sample>> = finishing::sound_tracks(&moov)
            .iter()
            .filter_map(edited_samples)
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
                        gst::EventView::StreamStart(start) => {
                            seen.track = quicktime_track(start.stream_id());
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

/// A sound track's samples (offset, size and media time of each), for a
/// track behind an edit list of one edit (what qtdemux cuts short).
fn edited_samples(track: &finishing::SoundTrack) -> Option<(u32, Vec<Sample>)> {
    track.edit_media_time?;
    let timescale = u64::from(track.timescale);
    let time = |ticks: u64| {
        gst::ClockTime::from_nseconds(
            (u128::from(ticks) * 1_000_000_000 / u128::from(timescale)) as u64,
        )
    };
    let mut ticks = 0u64;
    let samples = (0..track.sizes.len())
        .map(|i| {
            let end = ticks + u64::from(track.durations[i]);
            let sample = Sample {
                offset: track.offsets[i],
                size: track.sizes[i],
                pts: time(ticks),
                duration: time(end) - time(ticks),
            };
            ticks = end;
            sample
        })
        .collect();
    Some((track.id, samples))
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
