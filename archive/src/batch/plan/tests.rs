use super::*;
use crate::request::tests::options;

fn request(container: Option<Container>, overwrite: bool) -> UpscaleRequest {
    UpscaleRequest {
        input: "in".into(),
        output: "out".into(),
        container,
        options: options(),
        overwrite,
        quiet: true,
        stall_timeout: 0,
        resume: false,
        segment_seconds: None,
    }
}

fn video() -> Found {
    Found::Video { frames: Some(10) }
}

#[test]
fn an_output_keeps_a_container_gendr_writes_and_anything_else_becomes_mkv_unless_told() {
    let name = |rel: &str, container| output_name(Path::new(rel), container);
    assert_eq!(name("day1/a.mp4", None), Path::new("day1/a.mp4"));
    assert_eq!(name("a.MOV", None), Path::new("a.mov"));
    assert_eq!(name("a.avi", None), Path::new("a.mkv"));
    assert_eq!(name("a.tar.ts", None), Path::new("a.tar.mkv"));
    assert_eq!(name("noext", None), Path::new("noext.mkv"));
    assert_eq!(name("a.avi", Some(Container::Mp4)), Path::new("a.mp4"));
    assert_eq!(name("a.mkv", Some(Container::Mov)), Path::new("a.mov"));
}

#[test]
fn a_video_goes_to_its_mirrored_path_with_its_expected_frames() {
    let mut claimed = HashMap::new();
    let step = step_for(
        "day1/a.avi".into(),
        Found::Video { frames: None },
        &request(None, false),
        &mut claimed,
        |_| false,
    );
    assert_eq!(
        step,
        Step::Upscale(Planned {
            rel: "day1/a.avi".into(),
            output: "out/day1/a.mkv".into(),
            frames: 0,
        })
    );
}

#[test]
fn two_files_with_one_output_the_second_fails_naming_the_first() {
    let request = request(Some(Container::Mp4), false);
    let mut claimed = HashMap::new();
    let first = step_for("a.mkv".into(), video(), &request, &mut claimed, |_| false);
    assert!(matches!(first, Step::Upscale(_)), "{first:?}");
    let second = step_for("a.mov".into(), video(), &request, &mut claimed, |_| false);
    assert_eq!(
        second,
        Step::Failed("its output out/a.mp4 is also a.mkv's; rename one or pass --container".into())
    );
}

#[test]
fn an_output_already_there_is_skipped_unless_overwrite() {
    let there = |p: &Path| p == Path::new("out/a.mp4");
    let mut claimed = HashMap::new();
    let step = step_for(
        "a.mp4".into(),
        video(),
        &request(None, false),
        &mut claimed,
        there,
    );
    assert_eq!(step, Step::DoneBefore("out/a.mp4".into()));
    let mut claimed = HashMap::new();
    let step = step_for(
        "a.mp4".into(),
        video(),
        &request(None, true),
        &mut claimed,
        there,
    );
    assert!(matches!(step, Step::Upscale(_)), "{step:?}");
}

#[test]
fn a_broken_video_fails_and_another_file_is_passed_over_claiming_no_output() {
    let request = request(None, false);
    let mut claimed = HashMap::new();
    let broken = Found::Broken("not a playable media file".into());
    let step = step_for("a.mp4".into(), broken, &request, &mut claimed, |_| false);
    assert_eq!(step, Step::Failed("not a playable media file".into()));
    let other = Found::Other("audio only".into());
    let step = step_for("a.mkv".into(), other, &request, &mut claimed, |_| false);
    assert_eq!(step, Step::NotVideo("audio only".into()));
    assert!(claimed.is_empty());
}
