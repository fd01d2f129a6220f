use super::*;
use crate::segment::manifest::{InputId, Segment};

fn manifest() -> Manifest {
    let options = crate::request::tests::options();
    let segment = |index: usize| Segment {
        index,
        first_frame: index as u64 * 25,
        frames: 25,
        first_pts_ns: index as u64 * 1_000_000_000,
        end_pts_ns: (index as u64 + 1) * 1_000_000_000,
        starts_at_keyframe: true,
    };
    Manifest {
        format: manifest::FORMAT,
        gendr_version: manifest::GENDR_VERSION.to_string(),
        input: InputId {
            path: "/films/a.mkv".into(),
            size: 1,
            mtime_ns: 1,
            checksum: String::new(),
        },
        options,
        container: Some(Container::Mkv),
        segment_seconds: 1.0,
        frames: 75,
        first_pts_ns: 0,
        end_pts_ns: 3_000_000_000,
        segments: (0..3).map(segment).collect(),
    }
}

#[test]
fn the_json_form_holds_the_count_and_each_segments_state() {
    let info = JobInfo::of(&manifest(), |index| index == 1);
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["segment_count"], 3);
    assert_eq!(json["committed"], 1);
    assert_eq!(json["container"], "mkv");
    assert_eq!(json["input"], "/films/a.mkv");
    assert_eq!(json["segments"][1]["committed"], true);
    assert_eq!(json["segments"][2]["first_pts_ns"], 2_000_000_000u64);
}

#[test]
fn the_summary_names_what_is_left_to_make() {
    let info = JobInfo::of(&manifest(), |index| index == 1);
    assert_eq!(
        info.summary(),
        "/films/a.mkv: 75 frames in 3 segment(s), into .mkv, 1 committed; to make: 0 2"
    );
    let done = JobInfo::of(&manifest(), |_| true);
    assert!(
        done.summary().ends_with("3 committed"),
        "{}",
        done.summary()
    );
}
