use super::*;

fn options() -> UpscaleOptions {
    serde_json::from_str(
        r#"{
        "sr": {"model": "fast", "tile": 0, "overlap": 8, "provider": "auto", "precision": "auto",
               "device_id": 0, "streams": 0, "threads": 0, "batch": 0, "max_frames_in_flight": 4,
               "trt_cache": null},
        "codec": null, "crf": 18, "preset": "medium", "pix_fmt": "auto", "audio": "copy",
        "deinterlace": "auto", "scale": null, "width": null, "height": null,
        "subtitles": "keep", "chapters": "keep"}"#,
    )
    .unwrap()
}

/// The changes listed, in name order (the listing follows the serialiser's).
fn sorted(text: &str) -> Vec<&str> {
    let mut changes: Vec<&str> = text.split(", ").collect();
    changes.sort_unstable();
    changes
}

#[test]
fn the_same_options_are_no_change() {
    assert_eq!(changed_options(&options(), &options()), None);
}

#[test]
fn changes_are_named_as_flags_with_the_old_and_new_value_gendrsr_settings_included() {
    let mut new = options();
    new.crf = 20;
    new.sr.tile = 64;
    new.pix_fmt = crate::request::PixFmt::Keep;
    let text = changed_options(&options(), &new).unwrap();
    assert_eq!(
        sorted(&text),
        [
            r#"--crf 18 → 20"#,
            r#"--pix-fmt "auto" → "keep""#,
            "--tile 0 → 64"
        ]
    );
}

#[test]
fn a_value_set_where_there_was_none_is_a_change() {
    let mut new = options();
    new.width = Some(1280);
    new.codec = Some(crate::request::Codec::X265);
    assert_eq!(
        sorted(&changed_options(&options(), &new).unwrap()),
        [r#"--codec null → "x265""#, "--width null → 1280"]
    );
}
