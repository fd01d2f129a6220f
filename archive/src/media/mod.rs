//! GStreamer helpers shared by the engine and the subcommands, by concern:
//! probing inputs, claiming and writing outputs, decoding frames, and
//! messages from the bus.

mod decode;
mod messages;
mod output;
mod probe;

pub use decode::*;
pub use messages::*;
pub use output::*;
pub use probe::*;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_pipe_or_device_is_named_as_such_and_a_missing_file_as_missing() {
        let text = discover(Path::new("/dev/null")).unwrap_err().to_string();
        assert!(text.contains("a pipe or device, not a file"), "{text}");
        let text = discover(Path::new("/nonexistent.mp4"))
            .unwrap_err()
            .to_string();
        assert!(text.ends_with("no such file"), "{text}");
    }

    #[test]
    fn a_lock_is_held_once_and_free_again_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let held = FileLock::try_acquire(&path).unwrap().expect("free");
        assert!(FileLock::try_acquire(&path).unwrap().is_none(), "held");
        drop(held);
        assert!(!path.exists(), "removed when dropped");
        assert!(
            FileLock::try_acquire(&path).unwrap().is_some(),
            "free again"
        );
    }

    #[test]
    fn long_values_are_clipped_in_messages() {
        let long = "9".repeat(300);
        let clipped = clip_text(&long);
        assert_eq!(clipped.chars().count(), 41);
        assert_eq!(clip_text("short"), "short");
    }
}
