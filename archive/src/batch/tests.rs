use super::folders::{make_folders, remove_made_folders};
use super::tree::walk;
use std::path::{Path, PathBuf};

#[test]
fn a_failed_file_removes_the_folders_made_for_it_and_keeps_those_there_before() {
    let dir = tempfile::tempdir().unwrap();
    let there = dir.path().join("there");
    std::fs::create_dir(&there).unwrap();
    let output = there.join("new/deeper/a.mp4");
    let made = make_folders(&output).unwrap();
    assert_eq!(made, vec![there.join("new"), there.join("new/deeper")]);
    assert!(there.join("new/deeper").is_dir());
    remove_made_folders(&made);
    assert!(!there.join("new").exists());
    assert!(there.is_dir());
    // Nothing to make: nothing to remove.
    assert!(make_folders(&there.join("b.mp4")).unwrap().is_empty());
}

#[test]
fn a_made_folder_that_holds_something_else_stays() {
    let dir = tempfile::tempdir().unwrap();
    let made = make_folders(&dir.path().join("new/deeper/a.mp4")).unwrap();
    std::fs::write(dir.path().join("new/other.mp4"), b"").unwrap();
    remove_made_folders(&made);
    assert!(!dir.path().join("new/deeper").exists());
    assert!(dir.path().join("new/other.mp4").exists());
}

#[test]
fn the_walk_is_sorted_and_passes_over_hidden_names_the_output_folder_and_folder_links() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for file in [
        "b.mp4",
        "a/c.mkv",
        "a/.partial.mp4",
        ".hidden/d.mp4",
        "out/e.mp4",
    ] {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"").unwrap();
    }
    std::os::unix::fs::symlink(root.join("a"), root.join("loop")).unwrap();
    let (mut files, mut failures) = (Vec::new(), Vec::new());
    let skip = std::fs::canonicalize(root.join("out")).unwrap();
    walk(root, Path::new(""), &skip, &mut files, &mut failures);
    assert_eq!(
        files,
        vec![PathBuf::from("a/c.mkv"), PathBuf::from("b.mp4")]
    );
    assert!(failures.is_empty(), "{failures:?}");
}
