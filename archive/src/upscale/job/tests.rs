use super::*;

const SECOND: Duration = Duration::from_secs(1);

fn stalled(limit: u64) -> (Watchdog, Progress, Instant) {
    let start = Instant::now();
    (
        Watchdog::new(Some(Duration::from_secs(limit)), start),
        Progress::new(),
        start,
    )
}

#[test]
fn without_a_limit_the_watchdog_never_calls_a_run_stalled() {
    let start = Instant::now();
    let mut watchdog = Watchdog::new(None, start);
    let progress = Progress::new();
    watchdog
        .check(&progress, 0, start + 1000 * 3600 * SECOND)
        .unwrap();
}

#[test]
fn nothing_decoded_for_the_limit_is_a_stall_naming_the_decoder() {
    let (mut watchdog, progress, start) = stalled(10);
    watchdog.check(&progress, 0, start + 9 * SECOND).unwrap();
    let text = watchdog
        .check(&progress, 0, start + 10 * SECOND)
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "stalled: no frame was decoded in 10 s; pass --stall-timeout SECS to wait longer (0 = never)"
    );
}

#[test]
fn frames_waiting_for_the_model_name_the_model() {
    let (mut watchdog, progress, start) = stalled(10);
    progress.decoded.store(3, Ordering::Relaxed);
    watchdog.check(&progress, 1, start).unwrap();
    let text = watchdog
        .check(&progress, 1, start + 11 * SECOND)
        .unwrap_err()
        .to_string();
    assert!(
        text.starts_with(
            "stalled: gendrsr (the model) made no progress for 10 s with 2 frame(s) waiting"
        ),
        "{text}"
    );
}

#[test]
fn any_stage_moving_starts_the_wait_again() {
    let (mut watchdog, progress, start) = stalled(10);
    for (i, counter) in [
        &progress.decoded,
        &progress.encoded,
        &progress.muxed,
        &progress.packets,
    ]
    .into_iter()
    .enumerate()
    {
        counter.fetch_add(1, Ordering::Relaxed);
        let at = start + (9 * (i as u32 + 1)) * SECOND;
        watchdog.check(&progress, 0, at).unwrap();
    }
    // 36 s in, 9 s after the last movement.
    watchdog.check(&progress, 0, start + 45 * SECOND).unwrap();
    assert!(watchdog.check(&progress, 0, start + 46 * SECOND).is_err());
}

#[test]
fn a_slow_model_raises_the_limit_to_five_times_its_longest_wait() {
    let (mut watchdog, progress, start) = stalled(10);
    progress.decoded.store(10, Ordering::Relaxed);
    watchdog.check(&progress, 1, start).unwrap();
    // The model took 30 s for its second frame: 150 s may pass now.
    watchdog.check(&progress, 2, start + 30 * SECOND).unwrap();
    watchdog
        .check(&progress, 2, start + (30 + 149) * SECOND)
        .unwrap();
    let text = watchdog
        .check(&progress, 2, start + (30 + 150) * SECOND)
        .unwrap_err()
        .to_string();
    assert!(text.contains("no progress for 150 s"), "{text}");
}

fn encoded(pts_ms: u64, dts_ms: u64, duration_ms: Option<u64>) -> gst::Buffer {
    let mut buffer = gst::Buffer::new();
    let b = buffer.get_mut().unwrap();
    b.set_pts(gst::ClockTime::from_mseconds(pts_ms));
    b.set_dts(gst::ClockTime::from_mseconds(dts_ms));
    b.set_duration(duration_ms.map(gst::ClockTime::from_mseconds));
    buffer
}

/// Each frame's duration after [`cover_reordered_frames`], in ms.
fn covered(frames: &[(u64, u64, Option<u64>)]) -> Vec<u64> {
    gst::init().unwrap();
    let mut span = EncodedSpan::default();
    frames
        .iter()
        .map(|&(pts, dts, duration)| {
            let mut buffer = encoded(pts, dts, duration);
            cover_reordered_frames(buffer.get_mut().unwrap(), &mut span);
            buffer.duration().unwrap().mseconds()
        })
        .collect()
}

#[test]
fn frames_in_order_keep_their_durations() {
    assert_eq!(
        covered(&[(0, 0, Some(40)), (40, 40, Some(40)), (80, 80, Some(40))]),
        [40, 40, 40]
    );
}

#[test]
fn a_frame_decoded_before_later_shown_ones_gets_the_duration_that_covers_them() {
    // I P B, decode times one frame early. Were the P (decoded at 40 ms,
    // shown 120–160 ms) the last, the track (decode span plus its duration)
    // must reach 160 ms from the first frame shown at 40 ms: 80 ms, not 40.
    let frames = [(40, 0, Some(40)), (120, 40, Some(40)), (80, 80, Some(40))];
    let durations = covered(&frames);
    assert_eq!(durations, [40, 80, 40]);
    let mut shown_until = 0;
    for ((pts, dts, _), duration) in frames.iter().zip(&durations) {
        shown_until = shown_until.max(pts + 40);
        assert_eq!(dts + duration, shown_until - 40);
    }
}

#[test]
fn a_frame_without_a_duration_is_shown_for_forty_milliseconds() {
    assert_eq!(covered(&[(0, 0, None)]), [40]);
    // x264enc's 1 ns stand-in counts as none.
    gst::init().unwrap();
    let mut buffer = encoded(0, 0, None);
    buffer
        .get_mut()
        .unwrap()
        .set_duration(gst::ClockTime::from_nseconds(1));
    cover_reordered_frames(buffer.get_mut().unwrap(), &mut EncodedSpan::default());
    assert_eq!(buffer.duration(), Some(gst::ClockTime::from_mseconds(40)));
}

fn caps_with(par: gst::Fraction) -> gst::Caps {
    gst::init().unwrap();
    gst::Caps::builder("video/x-raw")
        .field("width", 96i32)
        .field("height", 64i32)
        .field("pixel-aspect-ratio", par)
        .build()
}

#[test]
fn a_pixel_aspect_that_is_not_a_positive_fraction_becomes_square() {
    for par in [gst::Fraction::new(-16777213, 3), gst::Fraction::new(0, 1)] {
        let caps = with_sound_pixel_aspect(&caps_with(par)).expect("repaired");
        let s = caps.structure(0).unwrap();
        assert_eq!(
            s.get::<gst::Fraction>("pixel-aspect-ratio").unwrap(),
            gst::Fraction::new(1, 1)
        );
        assert_eq!(s.get::<i32>("width").unwrap(), 96);
    }
    // Anamorphic video keeps its own.
    assert!(with_sound_pixel_aspect(&caps_with(gst::Fraction::new(4, 3))).is_none());
}
