use super::*;

const MS: u64 = 1_000_000;

/// A done-record holding only what `frame_times` reads.
fn record(index: usize, decode_order: &[u64]) -> DoneRecord {
    let mut times: Vec<(u64, Option<u64>)> =
        decode_order.iter().map(|&p| (p, Some(40 * MS))).collect();
    times.sort_unstable();
    DoneRecord {
        plan: String::new(),
        index,
        frames: times.len() as u64,
        first_pts_ns: times[0].0,
        end_pts_ns: times.last().unwrap().0 + 40 * MS,
        size: 0,
        sha256: String::new(),
        caps: String::new(),
        encoder_segment: EncoderSegment {
            start_ns: 0,
            time_ns: 0,
            base_ns: 0,
        },
        encoder_shift_ns: 0,
        times,
        decode_order: decode_order.to_vec(),
    }
}

fn frames(ms: &[u64]) -> Vec<u64> {
    ms.iter().map(|m| m * MS).collect()
}

#[test]
fn frames_in_presentation_order_decode_when_they_are_shown() {
    let records = [record(0, &frames(&[0, 40, 80]))];
    let times = frame_times(&records, 0);
    assert_eq!(times.len(), 1);
    for (t, pts) in times[0].iter().zip(frames(&[0, 40, 80])) {
        assert_eq!((t.pts, t.dts, t.duration), (pts, pts, Some(40 * MS)));
    }
}

#[test]
fn with_b_frames_decode_times_rise_start_before_the_first_frame_and_never_pass_the_pts() {
    // I P B B P B B as an encoder orders them: frames come at most one
    // place early, so decoding starts one frame before the first is shown.
    let order = frames(&[0, 120, 40, 80, 240, 160, 200]);
    let records = [record(0, &order)];
    let times = &frame_times(&records, 80 * MS)[0];
    let dts: Vec<u64> = times.iter().map(|t| t.dts).collect();
    assert!(dts.windows(2).all(|w| w[0] < w[1]), "{dts:?}");
    assert!(times.iter().all(|t| t.dts <= t.pts), "{dts:?}");
    // The shift (x264's room for negative DTS) is the encoder's timeline.
    assert_eq!(times[0].pts, 80 * MS);
    assert_eq!(times[0].dts, 40 * MS);
}

#[test]
fn times_are_split_back_per_segment_and_rise_across_the_boundary() {
    let records = [
        record(0, &frames(&[0, 80, 40])),
        record(1, &frames(&[120, 200, 160, 240])),
    ];
    let times = frame_times(&records, 40 * MS);
    assert_eq!(times.iter().map(Vec::len).collect::<Vec<_>>(), [3, 4]);
    let dts: Vec<u64> = times.iter().flatten().map(|t| t.dts).collect();
    assert!(dts.windows(2).all(|w| w[0] < w[1]), "{dts:?}");
    assert_eq!(times[1][0].pts, 160 * MS);
}
