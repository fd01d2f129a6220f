//! Frames past each stage of a job and the input timeline seen: what the
//! watchdog, the truncation check and the size-change check read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

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

    pub fn saw_buffer(&self, buffer: &gst::BufferRef) {
        if let Some(pts) = buffer.pts() {
            let end = pts + buffer.duration().unwrap_or(gst::ClockTime::ZERO);
            self.first_start
                .fetch_min(pts.nseconds(), Ordering::Relaxed);
            self.last_end.fetch_max(end.nseconds(), Ordering::Relaxed);
        }
    }

    /// Seconds of input timeline seen, once anything was seen.
    pub fn span(&self) -> Option<gst::ClockTime> {
        let (start, end) = (
            self.first_start.load(Ordering::Relaxed),
            self.last_end.load(Ordering::Relaxed),
        );
        (start <= end).then(|| gst::ClockTime::from_nseconds(end - start))
    }
}
