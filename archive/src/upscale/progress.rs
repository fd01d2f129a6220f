//! Frames past each stage of a job and the input timeline seen: what the
//! watchdog, the truncation check and the size-change check read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use gst::prelude::*;

/// Frames past each stage, and where the input's timeline ended: what the
/// watchdog and the truncation check read.
#[derive(Default)]
pub(super) struct Progress {
    /// Video packets handed to the decoder.
    pub packets: AtomicU64,
    pub decoded: AtomicU64,
    pub encoded: AtomicU64,
    /// Buffers written by the muxer (audio included).
    pub muxed: AtomicU64,
    /// Earliest start and latest end over decoded video and copied audio, ns.
    first_start: AtomicU64,
    last_end: AtomicU64,
    /// The decoded frame size, for explaining a refused negotiation.
    pub decoded_size: Mutex<Option<(i32, i32)>>,
}

impl Progress {
    pub fn new() -> Self {
        Progress {
            first_start: AtomicU64::new(u64::MAX),
            ..Default::default()
        }
    }

    /// Notes a buffer arriving at `pad`. Its end counts as far as its
    /// timestamp or its stream time reaches, whichever is later: where a
    /// timeline starts at 1 s, matroskademux stamps from 1 s and qtdemux
    /// (after an edit list) from 0 with the second in the segment, while
    /// both durations count from 0.
    pub fn saw_buffer(&self, pad: &gst::Pad, buffer: &gst::BufferRef) {
        let segment = pad
            .sticky_event::<gst::event::Segment>(0)
            .and_then(|e| e.segment().downcast_ref::<gst::ClockTime>().cloned());
        let reach = |t: gst::ClockTime| {
            segment
                .as_ref()
                .and_then(|s| s.to_stream_time(t))
                .map_or(t, |stream| stream.max(t))
        };
        if let Some(pts) = buffer.pts() {
            let end = reach(pts + buffer.duration().unwrap_or(gst::ClockTime::ZERO));
            self.first_start
                .fetch_min(pts.nseconds(), Ordering::Relaxed);
            self.last_end.fetch_max(end.nseconds(), Ordering::Relaxed);
        }
    }

    /// How far the input's timeline was seen to reach, once anything was
    /// seen: the latest end, counted from zero as the container's duration
    /// is (a timeline may start later, at 1 s after an edit list).
    pub fn reach(&self) -> Option<gst::ClockTime> {
        let (start, end) = (
            self.first_start.load(Ordering::Relaxed),
            self.last_end.load(Ordering::Relaxed),
        );
        (start <= end).then(|| gst::ClockTime::from_nseconds(end))
    }
}
