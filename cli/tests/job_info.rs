//! `gendr job info`: the launchers' view of a job folder, against what
//! plan and run-segment did to it.

use std::path::Path;
use std::process::Output;

use gendr_test_support::{ffmpeg, gendr, run, stderr};

/// `gendr ARGS` in `dir`, which holds the job folder `job`.
fn gendr_in(args: &[&str], dir: &Path) -> Output {
    run(gendr().args(args).current_dir(dir))
}

fn info(dir: &Path) -> serde_json::Value {
    let out = gendr_in(&["job", "info", "job", "--json"], dir);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn job_info_counts_the_planned_segments_and_those_committed() {
    let dir = tempfile::tempdir().unwrap();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=64x48:r=25:d=3",
        "-c:v",
        "libx264",
        "-g",
        "25",
        "-pix_fmt",
        "yuv420p",
        dir.path().join("in.mp4").to_str().unwrap(),
    ]);
    let out = gendr_in(
        &[
            "plan",
            "in.mp4",
            "--job",
            "job",
            "-m",
            "fast",
            "--segment-seconds",
            "1",
            "--container",
            "mkv",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // "N segments planned in …", read from plan itself.
    let planned: u64 = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("plan says how many");
    assert_eq!(planned, 3);

    let before = info(dir.path());
    assert_eq!(before["segment_count"], planned);
    assert_eq!(before["committed"], 0);
    assert_eq!(before["frames"], 75);
    assert_eq!(before["container"], "mkv");
    let frames: u64 = (0..3)
        .map(|i| before["segments"][i]["frames"].as_u64().unwrap())
        .sum();
    assert_eq!(frames, 75);

    let out = gendr_in(&["run-segment", "-q", "job", "1"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let after = info(dir.path());
    assert_eq!(after["committed"], 1);
    assert_eq!(after["segments"][1]["committed"], true);
    assert_eq!(after["segments"][0]["committed"], false);

    let text = gendr_in(&["job", "info", "job"], dir.path());
    let line = String::from_utf8_lossy(&text.stdout);
    assert!(
        line.trim_end().ends_with("1 committed; to make: 0 2"),
        "{line}"
    );
}

#[test]
fn job_info_on_a_folder_without_a_plan_is_one_line_naming_gendr_plan() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("job")).unwrap();
    let out = gendr_in(&["job", "info", "job", "--json"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let text = stderr(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("make the job with gendr plan IN --job job"),
        "{text}"
    );
}
