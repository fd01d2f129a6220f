//! GStreamer helpers shared by the engine and the subcommands, by concern:
//! probing inputs, claiming and writing outputs, decoding frames, and
//! messages from the bus.

pub(crate) mod aac;
mod decode;
pub(crate) mod h264_vui;
mod hevc_vui;
mod messages;
mod output;
mod probe;
mod rbsp;

pub use decode::*;
pub use messages::*;
pub use output::*;
pub use probe::*;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn an_mpeg2_gop_timecode_is_read_when_it_is_not_zero() {
        let stream = |code: [u8; 4]| {
            let mut bytes = vec![0x47, 0, 0, 1, 0xB3, 0x04, 0x00, 0x30, 0x13, 0xFF];
            bytes.extend([0, 0, 1, 0xB5, 0x14, 0x8A]);
            bytes.extend([0, 0, 1, 0xB8]);
            bytes.extend(code);
            bytes
        };
        // What ffmpeg writes with -timecode 01:00:00:00, and without.
        assert_eq!(
            gop_timecode_of(&stream([0x04, 0x08, 0x00, 0x40])).as_deref(),
            Some("01:00:00:00")
        );
        assert_eq!(gop_timecode_of(&stream([0x00, 0x08, 0x00, 0x40])), None);
        // Drop-frame 10:59:59;29.
        let code: u32 = (1 << 31) | (10 << 26) | (59 << 20) | (1 << 19) | (59 << 13) | (29 << 7);
        assert_eq!(
            gop_timecode_of(&stream(code.to_be_bytes())).as_deref(),
            Some("10:59:59;29")
        );
    }

    fn gop_timecode_of(bytes: &[u8]) -> Option<String> {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        mpeg2_gop_timecode(file.path()).unwrap()
    }

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
