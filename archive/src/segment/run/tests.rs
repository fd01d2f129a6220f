use super::*;

const MS: u64 = 1_000_000;

fn segment(first_pts_ns: u64, frames: u64) -> manifest::Segment {
    manifest::Segment {
        index: 3,
        first_frame: 100,
        frames,
        first_pts_ns,
        end_pts_ns: first_pts_ns + frames * 40 * MS,
        starts_at_keyframe: true,
    }
}

fn times(first: u64, n: u64) -> Vec<(u64, Option<u64>)> {
    (0..n)
        .map(|i| (first + i * 40 * MS, Some(40 * MS)))
        .collect()
}

#[test]
fn the_encoders_shift_is_taken_out_of_its_decode_order() {
    let (first, shift) = (4_000 * MS, 1_000 * 3_600_000 * MS);
    let t = times(first, 3);
    // Encoded as I P B, x264enc's timestamps shifted by 1000 h.
    let encoded = [t[0].0 + shift, t[2].0 + shift, t[1].0 + shift];
    let (order, offset) = check_frames(3, &segment(first, 3), &t, &encoded, 3).unwrap();
    assert_eq!(offset, shift);
    assert_eq!(order, [t[0].0, t[2].0, t[1].0]);
}

#[test]
fn a_segment_that_decoded_other_frames_than_planned_is_refused_naming_it() {
    let first = 4_000 * MS;
    let t = times(first, 2);
    let encoded: Vec<u64> = t.iter().map(|t| t.0).collect();
    let text = check_frames(3, &segment(first, 3), &t, &encoded, 2)
        .unwrap_err()
        .to_string();
    assert!(
        text.starts_with("segment 3: decoding gave 2 frame(s) from 4.000 s where the plan has 3"),
        "{text}"
    );
    assert!(text.ends_with("use gendr upscale for this input"), "{text}");
    // The right count from the wrong first frame.
    let late = times(first + 40 * MS, 3);
    let encoded: Vec<u64> = late.iter().map(|t| t.0).collect();
    assert!(check_frames(3, &segment(first, 3), &late, &encoded, 3).is_err());
    // Frames let through but fewer written.
    let t = times(first, 3);
    let encoded: Vec<u64> = t.iter().map(|t| t.0).collect();
    assert!(check_frames(3, &segment(first, 3), &t, &encoded, 2).is_err());
}

#[test]
fn encoded_frames_that_are_not_the_decoded_ones_are_refused() {
    let first = 0;
    let t = times(first, 3);
    let encoded = [t[0].0, t[1].0, t[1].0 + 5 * MS];
    let text = check_frames(0, &segment(first, 3), &t, &encoded, 3)
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "segment 0: the encoder's frames do not match the decoded ones"
    );
}

#[test]
fn a_segment_decodes_twice_its_models_temporal_reach_early() {
    let first = 10_000_000_000;
    let at_25 = gst::Fraction::new(25, 1);
    // K = 4 for every model but realesrgan-x4, whose anchors 10 frames
    // apart reach 19 back: 8 or 38 frames of 40 ms.
    let early = |model: &str, rate| first - preroll_start(first, rate, model).nseconds();
    assert_eq!(early("anime-video-x4", at_25), 320 * MS);
    assert_eq!(early("default", at_25), 320 * MS);
    assert_eq!(early("realesrgan-x4", at_25), 1520 * MS);
    assert_eq!(
        early("realesrgan-x4", gst::Fraction::new(0, 1)),
        1_000_000_000
    );
    let near_start = preroll_start(200 * MS, at_25, "realesrgan-x4");
    assert_eq!(near_start, gst::ClockTime::ZERO);
}
