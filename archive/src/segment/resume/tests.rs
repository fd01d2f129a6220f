use super::*;
use crate::request::tests::options;

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
            r#"--pix-fmt "yuv420p10" → "keep""#,
            "--tile 0 → 64"
        ]
    );
}

#[test]
fn a_value_set_where_there_was_none_is_a_change() {
    let mut old = options();
    (old.codec, old.width) = (None, None);
    let mut new = old.clone();
    new.width = Some(1280);
    new.codec = Some(crate::request::Codec::X265);
    assert_eq!(
        sorted(&changed_options(&old, &new).unwrap()),
        [r#"--codec null → "x265""#, "--width null → 1280"]
    );
}
