//! Where the output's timeline starts: at the earliest packet of any stream
//! copied into it, as `ffmpeg -c copy` starts it, not at the video's first
//! shown frame.
//!
//! MPEG-TS and MPEG-PS demuxers (GStreamer 1.22) start every stream's
//! segment at the video's first presentation time, so audio that starts
//! between the video's first decode and presentation times lies before its
//! segment, and the muxers cut it (one AC-3 or MP2 frame). Every stream's
//! running time is moved later by the same lead instead, the copied
//! streams' segments starting early enough to hold their first packet: the
//! streams keep their times relative to each other.
//!
//! Into MP4/MOV, encoder priming that an MP4/MOV input's audio edit list
//! hides is hidden again by the output's edit list (`finishing`): such a
//! track alone runs later by its hidden stretch, from its first packet,
//! and the other streams do not move for it. Into Matroska the same is
//! done for Opus, whose pre-skip the output's CodecDelay hides.
//!
//! matroskademux (1.22) starts its segment at the first block it reads and
//! starts it again, on every stream, at an earlier block of another: the
//! first video frame of a file whose audio starts 23 ms before it ran in a
//! segment of its own, 23 ms early against the rest. Every stream of a
//! Matroska input is timed in the one segment the earliest first packet
//! came in instead.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::Result;
use crate::finishing;
use crate::media;
use gst::prelude::*;

use super::streams::{is_subtitle, quicktime_moov, quicktime_track};

/// How far past its segment's start a stream is read for the first packets
/// of the others: demuxed files interleave their streams more closely.
const LOOK_AHEAD: gst::ClockTime = gst::ClockTime::from_seconds(10);

/// The longest the look at the input's first packets may take.
const LOOK_LIMIT: Duration = Duration::from_secs(20);

/// One stream as the look saw it.
#[derive(Default)]
struct FirstPacket {
    /// Whether its packets are copied into the output before its segment
    /// can hold them (audio; subtitles when kept).
    copied: bool,
    /// An MP4/MOV input's track ID.
    track: Option<u32>,
    /// Whether the output's edit list hides what lies before its segment
    /// (an MP4/MOV input's audio copied into MP4/MOV).
    hides_early: bool,
    /// The earliest packet of such a stream before its segment.
    earliest_hidden: Option<gst::ClockTime>,
    start: Option<gst::ClockTime>,
    /// The earliest packet shown (in part, at least).
    first_pts: Option<gst::ClockTime>,
    ended: bool,
}

#[derive(Default)]
struct Look {
    /// An MP4/MOV input: packets that end before their segment starts are
    /// hidden by an edit list, and need no room.
    edited: bool,
    /// A Matroska input: one segment for every stream.
    matroska: bool,
    streams: Vec<FirstPacket>,
    all_pads: bool,
    /// A stream ran `LOOK_AHEAD` past its start.
    far_enough: bool,
}

impl Look {
    fn done(&self) -> bool {
        self.far_enough
            || (self.all_pads
                && self
                    .streams
                    .iter()
                    .all(|s| s.ended || s.first_pts.is_some()))
    }

    /// How long before its segment's start the earliest copied packet lies.
    fn lead(&self) -> gst::ClockTime {
        self.streams
            .iter()
            .filter(|s| s.copied)
            .filter_map(|s| s.start?.checked_sub(s.first_pts?))
            .max()
            .unwrap_or(gst::ClockTime::ZERO)
    }

    /// A Matroska input's segment start for every stream: the earliest
    /// any stream's first packet came in.
    fn shared_start(&self) -> Option<gst::ClockTime> {
        self.streams
            .iter()
            .filter(|_| self.matroska)
            .filter_map(|s| s.start.filter(|_| s.first_pts.is_some()))
            .min()
    }

    /// How far before its segment's start each stream whose output edit
    /// hides it starts, by track ID.
    fn hidden(&self) -> HashMap<u32, gst::ClockTime> {
        self.streams
            .iter()
            .filter_map(|s| Some((s.track?, s.start?.checked_sub(s.earliest_hidden?)?)))
            .filter(|(_, hidden)| !hidden.is_zero())
            .collect()
    }
}

/// What an output hides of an MP4/MOV input's audio priming (`finishing`).
#[derive(Debug, Clone)]
pub(crate) enum HiddenPriming {
    /// MP4/MOV: its audio edit lists hide the priming of audio in these
    /// caps (what the muxer copies).
    EditLists(gst::Caps),
    /// Matroska: Opus's CodecDelay and OpusHead pre-skip hide Opus's
    /// pre-skip; nothing hides AAC's or AC-3's priming.
    OpusCodecDelay,
}

/// How much later than their segments say the streams of an input run.
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    /// Every stream's lead (see [`timeline`]).
    pub lead: gst::ClockTime,
    /// A Matroska input: where every stream's segment starts, at the
    /// latest, before its first packet.
    shared_start: Option<gst::ClockTime>,
    /// The stretch before its segment that the output's edit list hides,
    /// by MP4/MOV track ID, which that track runs later still.
    hidden: HashMap<u32, gst::ClockTime>,
}

impl Timeline {
    /// How much later the copied audio stream on `pad` runs: the lead, and
    /// what the output's edit list hides of it.
    pub(crate) fn audio_lead(&self, pad: &gst::Pad) -> gst::ClockTime {
        let hidden = pad
            .stream_id()
            .and_then(|id| quicktime_track(&id))
            .and_then(|track| self.hidden.get(&track).copied());
        self.lead + hidden.unwrap_or(gst::ClockTime::ZERO)
    }

    /// As [`run_later`], the stream on `pad` first timed in the input's
    /// shared segment (a Matroska input's).
    pub(crate) fn run_later(&self, pad: &gst::Pad, lead: gst::ClockTime, hold_early: bool) {
        run_later_from(pad, self.shared_start, lead, hold_early);
    }
}

/// How much later than its segment says every stream of `input` must run so
/// that the earliest packet of a copied stream (audio; subtitles when
/// `keep_subtitles`) is kept; zero when none lies before its segment.
///
/// In an MP4/MOV input an edit list may start a track's media within or
/// after a packet (encoder priming: AAC's 1024 samples, AC-3's 256, Opus's
/// pre-skip). Audio whose priming the output hides (`hidden_priming`) is
/// given its own stretch, from its first packet, and leads nothing.
/// Otherwise a packet the edit starts within is held, its priming played
/// in the lead, and one that ends before the edit is shown by no player
/// and left out.
pub(crate) fn timeline(
    input: &Path,
    keep_subtitles: bool,
    hidden_priming: Option<&HiddenPriming>,
) -> Result<Timeline> {
    let moov = quicktime_moov(input)?;
    let edited = moov.is_some();
    let matroska = finishing::timeline_kind(input)? == Some(finishing::TimelineKind::Matroska);
    // The tracks whose priming the output's edit can hide: those whose
    // sample table the finishing step matches the output's against (not
    // a fragmented file's, whose samples lie in fragments); into Matroska,
    // Opus tracks whose pre-skip its CodecDelay can say.
    let rewritable: Vec<u32> = moov
        .map(|moov| finishing::sound_tracks(&moov))
        .unwrap_or_default()
        .into_iter()
        .filter(|t| match hidden_priming {
            Some(HiddenPriming::EditLists(_)) => {
                t.edit_media_time.unwrap_or(0) > 0 && !t.sizes.is_empty()
            }
            Some(HiddenPriming::OpusCodecDelay) => t.opus_pre_skip().is_some(),
            None => false,
        })
        .map(|t| t.id)
        .collect();
    let (pipeline, parse) = media::file_to_parsebin(input)?;
    let look = Arc::new(Mutex::new(Look {
        edited,
        matroska,
        ..Look::default()
    }));
    let weak = pipeline.downgrade();
    let seen = look.clone();
    let hidden_priming = hidden_priming.cloned();
    parse.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        let (caps, name) = media::pad_caps(pad);
        let audio = name.starts_with("audio/");
        let copied = audio || (keep_subtitles && is_subtitle(&name));
        let track = pad.stream_id().and_then(|id| quicktime_track(&id));
        let hides_early = audio
            && track.is_some_and(|t| rewritable.contains(&t))
            && match &hidden_priming {
                Some(HiddenPriming::EditLists(copied)) => copied.can_intersect(&caps),
                Some(HiddenPriming::OpusCodecDelay) => name == "audio/x-opus",
                None => false,
            };
        let index = {
            let mut look = seen.lock().unwrap_or_else(|p| p.into_inner());
            look.streams.push(FirstPacket {
                copied,
                track,
                hides_early,
                ..FirstPacket::default()
            });
            look.streams.len() - 1
        };
        note_first_packet(pad, index, &seen);
        // A stream left unlinked ends the look early; the run says why.
        let _ = media::discard(&pipeline, pad);
    });
    let all_pads = look.clone();
    parse.connect_no_more_pads(move |_| {
        all_pads.lock().unwrap_or_else(|p| p.into_inner()).all_pads = true;
    });
    media::play_until(&pipeline, LOOK_LIMIT, || {
        look.lock().unwrap_or_else(|p| p.into_inner()).done()
    })?;
    let look = look.lock().unwrap_or_else(|p| p.into_inner());
    Ok(Timeline {
        lead: look.lead(),
        shared_start: look.shared_start(),
        hidden: look.hidden(),
    })
}

/// Notes the segment start and first packet of the stream on `pad`.
fn note_first_packet(pad: &gst::Pad, index: usize, look: &Arc<Mutex<Look>>) {
    let look = look.clone();
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            let mut look = look.lock().unwrap_or_else(|p| p.into_inner());
            let edited = look.edited;
            let stream = &mut look.streams[index];
            match &info.data {
                Some(gst::PadProbeData::Event(event)) => match event.view() {
                    gst::EventView::Segment(segment) => {
                        // The segment its first packet comes in: matroskademux
                        // sends one from its first cluster, then one from zero.
                        if let Some(segment) = segment
                            .segment()
                            .downcast_ref::<gst::ClockTime>()
                            .filter(|_| stream.first_pts.is_none())
                        {
                            stream.start = segment.start();
                        }
                    }
                    gst::EventView::Eos(_) => stream.ended = true,
                    _ => {}
                },
                Some(gst::PadProbeData::Buffer(buffer)) => {
                    if let Some(pts) = buffer.pts() {
                        let end = buffer.duration().map(|d| pts + d);
                        let before = stream.start.is_some_and(|s| pts < s);
                        let hidden = edited && stream.start.zip(end).is_some_and(|(s, e)| e <= s);
                        if stream.hides_early && before {
                            stream.earliest_hidden =
                                Some(stream.earliest_hidden.map_or(pts, |p| p.min(pts)));
                        } else if !hidden {
                            stream.first_pts = Some(stream.first_pts.map_or(pts, |p| p.min(pts)));
                        }
                        let far = stream.start.is_some_and(|s| pts > s + LOOK_AHEAD);
                        look.far_enough |= far;
                    }
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// Moves the running time of the stream on `pad` later by `lead`. With
/// `hold_early`, its segment also starts up to `lead` earlier, so that the
/// packets in that stretch are kept (a copied stream's); without, what its
/// segment leaves out stays out (the upscaled video's decoder clips to it).
pub(crate) fn run_later(pad: &gst::Pad, lead: gst::ClockTime, hold_early: bool) {
    run_later_from(pad, None, lead, hold_early);
}

/// As [`run_later`]; a segment that comes before the stream's first packet
/// and starts later than `shared_start` starts there instead.
fn run_later_from(
    pad: &gst::Pad,
    shared_start: Option<gst::ClockTime>,
    lead: gst::ClockTime,
    hold_early: bool,
) {
    if lead.is_zero() && shared_start.is_none() {
        return;
    }
    let packet_seen = AtomicBool::new(false);
    pad.add_probe(
        gst::PadProbeType::EVENT_DOWNSTREAM | gst::PadProbeType::BUFFER,
        move |_, info| {
            let Some(gst::PadProbeData::Event(event)) = &mut info.data else {
                packet_seen.store(true, Ordering::Relaxed);
                return gst::PadProbeReturn::Ok;
            };
            match event.view() {
                gst::EventView::Segment(segment) => {
                    if let Some(segment) = segment.segment().downcast_ref::<gst::ClockTime>() {
                        let shared = shared_start.filter(|_| !packet_seen.load(Ordering::Relaxed));
                        let segment = starting_by(segment, shared);
                        *event = gst::event::Segment::new(&later(&segment, lead, hold_early));
                    }
                }
                // matroskamux writes chapter times as they come: they move
                // with the streams.
                gst::EventView::Toc(toc) => {
                    let (toc, updated) = toc.toc();
                    *event = gst::event::Toc::new(&toc_later(toc, lead), updated);
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// `toc` with every entry's start and stop `lead` later: the chapters of a
/// timeline that [`run_later`] moved.
pub(crate) fn toc_later(toc: &gst::TocRef, lead: gst::ClockTime) -> gst::Toc {
    let mut later = gst::Toc::new(toc.scope());
    {
        let later = later.get_mut().expect("new toc");
        later.set_tags(toc.tags());
        for entry in toc.entries() {
            later.append_entry(entry_later(&entry, lead));
        }
    }
    later
}

fn entry_later(entry: &gst::TocEntryRef, lead: gst::ClockTime) -> gst::TocEntry {
    let mut later = gst::TocEntry::new(entry.entry_type(), entry.uid());
    {
        let later = later.get_mut().expect("new entry");
        if let Some((start, stop)) = entry.start_stop_times() {
            // -1 is an unknown time, left unknown.
            let move_known = |t: i64| if t < 0 { t } else { t + lead.nseconds() as i64 };
            later.set_start_stop_times(move_known(start), move_known(stop));
        }
        later.set_tags(entry.tags());
        if let Some((kind, repeat)) = entry.loop_() {
            later.set_loop(kind, repeat);
        }
        for sub in entry.sub_entries() {
            later.append_sub_entry(entry_later(&sub, lead));
        }
    }
    later
}

/// `segment` starting at `start` where it starts later (stream times kept).
fn starting_by(
    segment: &gst::FormattedSegment<gst::ClockTime>,
    start: Option<gst::ClockTime>,
) -> gst::FormattedSegment<gst::ClockTime> {
    let mut earlier = segment.clone();
    let (Some(start), Some(own)) = (start, segment.start()) else {
        return earlier;
    };
    let Some(by) = own.checked_sub(start).filter(|by| !by.is_zero()) else {
        return earlier;
    };
    earlier.set_start(start);
    if let Some(time) = segment.time() {
        earlier.set_time(time.saturating_sub(by));
    }
    // The clone keeps a position past the new start.
    if segment.position().is_none_or(|p| p <= start) {
        earlier.set_position(start);
    }
    earlier
}

/// `segment` with running times `lead` later (see [`run_later`]).
fn later(
    segment: &gst::FormattedSegment<gst::ClockTime>,
    lead: gst::ClockTime,
    hold_early: bool,
) -> gst::FormattedSegment<gst::ClockTime> {
    let mut later = segment.clone();
    let start = segment.start().unwrap_or(gst::ClockTime::ZERO);
    // Starting `earlier` sooner makes running times `earlier` later; the
    // base adds the rest of the lead.
    let earlier = if hold_early {
        lead.min(start)
    } else {
        gst::ClockTime::ZERO
    };
    later.set_start(start - earlier);
    later.set_base(segment.base().unwrap_or(gst::ClockTime::ZERO) + lead - earlier);
    if let Some(time) = segment.time() {
        later.set_time(time.saturating_sub(earlier));
    }
    if segment.position().is_some_and(|p| p > start - earlier) {
        later.set_position(segment.position());
    } else {
        later.set_position(start - earlier);
    }
    later
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(start_ms: u64, base_ms: u64) -> gst::FormattedSegment<gst::ClockTime> {
        let mut segment = gst::FormattedSegment::<gst::ClockTime>::new();
        segment.set_start(gst::ClockTime::from_mseconds(start_ms));
        segment.set_time(gst::ClockTime::from_mseconds(start_ms));
        segment.set_base(gst::ClockTime::from_mseconds(base_ms));
        segment
    }

    fn running_ms(segment: &gst::FormattedSegment<gst::ClockTime>, pts_ms: u64) -> Option<u64> {
        segment
            .to_running_time(gst::ClockTime::from_mseconds(pts_ms))
            .map(|t| t.mseconds())
    }

    #[test]
    fn every_stream_runs_later_by_the_lead_and_copied_ones_hold_their_early_packets() {
        gst::init().unwrap();
        let lead = gst::ClockTime::from_mseconds(6);
        let video = later(&segment(1480, 0), lead, false);
        let audio = later(&segment(1480, 0), lead, true);
        // The same running time for the same pts: sync unchanged.
        assert_eq!(running_ms(&video, 1480), Some(6));
        assert_eq!(running_ms(&audio, 1480), Some(6));
        // The audio packet 6 ms before the start is held, at zero.
        assert_eq!(running_ms(&audio, 1474), Some(0));
        // The video's segment still leaves out what it left out.
        assert_eq!(running_ms(&video, 1474), None);
        // A segment starting sooner than the lead holds from zero.
        let short = later(&segment(2, 10), lead, true);
        assert_eq!(short.start(), Some(gst::ClockTime::ZERO));
        assert_eq!(running_ms(&short, 2), Some(16));
    }

    #[test]
    fn a_stream_first_timed_in_a_later_segment_runs_in_the_shared_one() {
        gst::init().unwrap();
        // matroskademux's first video segment starts at the frame (1000 ms);
        // the audio's, 23 ms earlier, is the one every stream shares.
        let shared = Some(gst::ClockTime::from_mseconds(977));
        let video = starting_by(&segment(1000, 0), shared);
        assert_eq!(running_ms(&video, 1000), Some(23));
        assert_eq!(
            video.to_stream_time(gst::ClockTime::from_mseconds(1000)),
            Some(gst::ClockTime::from_mseconds(1000))
        );
        // The shared segment itself and an earlier one are left as they are.
        let audio = starting_by(&segment(977, 0), shared);
        assert_eq!(running_ms(&audio, 977), Some(0));
        assert_eq!(
            starting_by(&segment(900, 0), shared).start(),
            Some(gst::ClockTime::from_mseconds(900))
        );
        assert_eq!(
            starting_by(&segment(1000, 0), None).start(),
            Some(gst::ClockTime::from_mseconds(1000))
        );
    }
}
