use super::*;

const S: u64 = 1_000_000_000;

/// `n` frames at 25 fps, a keyframe every `gop` frames (0: only the first).
fn frames(n: u64, gop: u64) -> Vec<Packet> {
    (0..n)
        .map(|i| Packet {
            pts: i * S / 25,
            duration: Some(S / 25),
            key: i == 0 || (gop > 0 && i % gop == 0),
        })
        .collect()
}

fn end(frames: &[Packet]) -> u64 {
    let last = frames.last().unwrap();
    last.pts + last.duration.unwrap()
}

#[test]
fn a_video_under_one_and_a_half_lengths_is_one_segment() {
    let f = frames(25 * 14, 25);
    assert_eq!(split(&f, end(&f), 10 * S), [0]);
}

#[test]
fn segments_start_at_the_keyframe_nearest_each_length() {
    // Keyframes every 2 s, 5 s segments: each starts at the keyframe
    // nearest to 5 s after the last start (4 s, as near as 6 s and earlier).
    let f = frames(25 * 20, 50);
    let starts = split(&f, end(&f), 5 * S);
    assert_eq!(starts, [0, 100, 200, 300, 400]);
    assert!(starts.iter().all(|&i| f[i].key));
}

#[test]
fn without_a_keyframe_near_a_length_a_segment_starts_at_the_frame_there() {
    let f = frames(25 * 30, 0);
    let starts = split(&f, end(&f), 10 * S);
    assert_eq!(starts, [0, 250, 500]);
    assert!(!f[250].key && !f[500].key);
}

#[test]
fn a_rest_shorter_than_one_and_a_half_lengths_stays_with_the_last_segment() {
    // 24 s at 10 s: 0–10 and 10–24, not a third segment of 4 s.
    let f = frames(25 * 24, 25);
    assert_eq!(split(&f, end(&f), 10 * S), [0, 250]);
    // 26 s: three.
    let f = frames(25 * 26, 25);
    assert_eq!(split(&f, end(&f), 10 * S), [0, 250, 500]);
}

#[test]
fn a_zero_length_still_ends_with_rising_starts() {
    let f = frames(10, 1);
    let starts = split(&f, end(&f), 0);
    assert!(
        starts.windows(2).all(|w| f[w[0]].pts < f[w[1]].pts),
        "{starts:?}"
    );
    assert_eq!(starts[0], 0);
}

#[test]
fn a_keyframe_too_close_to_the_start_is_passed_over() {
    // Keyframes at 0 s and 1 s only: 1 s is not past half of a 10 s length.
    let mut f = frames(25 * 30, 0);
    f[25].key = true;
    assert_eq!(split(&f, end(&f), 10 * S), [0, 250, 500]);
}
