//! Frames decoded beforehand, carried as a YUV4MPEG2 file (`ffmpeg -i clip
//! -pix_fmt yuv420p -f yuv4mpegpipe frames.y4m`): a header line with the size
//! and sampling, then each frame's planes after a `FRAME` line. A standard
//! raw format, so ffmpeg writes it and ffprobe can check it.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{bail, Context, Result};
use gendr::frame::{Colorimetry, Frame, PixelFormat, Plane, YuvRange};

const MAGIC: &str = "YUV4MPEG2";
/// Bounds a header token (and the `FRAME` line) so a broken file fails fast.
const MAX_LINE: usize = 4096;

/// Reads the first `max` frames of `path` (all when there are fewer).
pub fn read(path: &Path, max: usize) -> Result<Vec<Frame>> {
    let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut input = BufReader::new(file);
    let header = line(&mut input)?.with_context(|| format!("{}: empty file", path.display()))?;
    let (format, width, height, colorimetry) =
        parse_header(&header).with_context(|| format!("{}", path.display()))?;
    let sizes = format.plane_sizes(width, height);
    let mut frames = Vec::new();
    while frames.len() < max {
        let Some(marker) = line(&mut input)? else {
            break;
        };
        if !marker.starts_with("FRAME") {
            bail!(
                "{}: frame {} does not start with FRAME",
                path.display(),
                frames.len()
            );
        }
        let planes = sizes
            .iter()
            .map(|&(row, rows)| {
                let mut data = vec![0u8; row * rows];
                input
                    .read_exact(&mut data)
                    .map(|()| Plane { data, stride: row })
            })
            .collect::<std::io::Result<Vec<Plane>>>()
            .with_context(|| format!("{}: frame {} is truncated", path.display(), frames.len()))?;
        frames.push(Frame::from_planes(
            format,
            width,
            height,
            colorimetry,
            planes,
        )?);
    }
    if frames.is_empty() {
        bail!("{}: no frames", path.display());
    }
    Ok(frames)
}

/// One `\n`-ended line, without the newline; `None` at the end of the file.
fn line(input: &mut impl BufRead) -> Result<Option<String>> {
    let mut bytes = Vec::new();
    input.take(MAX_LINE as u64).read_until(b'\n', &mut bytes)?;
    if bytes.is_empty() {
        return Ok(None);
    }
    if bytes.pop() != Some(b'\n') {
        bail!("a header line longer than {MAX_LINE} bytes or cut short");
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// The stream header: `YUV4MPEG2 W320 H180 F25:1 Ip A1:1 C420jpeg XCOLORRANGE=LIMITED`.
fn parse_header(header: &str) -> Result<(PixelFormat, usize, usize, Colorimetry)> {
    let mut tokens = header.split(' ').filter(|t| !t.is_empty());
    if tokens.next() != Some(MAGIC) {
        bail!("not a YUV4MPEG2 file");
    }
    let (mut width, mut height) = (None, None);
    let mut format = PixelFormat::I420;
    let mut colorimetry = Colorimetry::default();
    for token in tokens {
        let (tag, value) = token.split_at(1);
        match tag {
            "W" => width = Some(value.parse::<usize>().context("bad width")?),
            "H" => height = Some(value.parse::<usize>().context("bad height")?),
            "C" => {
                format = match value {
                    "420" | "420jpeg" | "420mpeg2" | "420paldv" => PixelFormat::I420,
                    "420p10" => PixelFormat::I420_10,
                    other => bail!(
                        "sampling C{other} is not read; use 4:2:0, 8 or 10 bits (-pix_fmt yuv420p)"
                    ),
                }
            }
            "X" if value == "COLORRANGE=FULL" => colorimetry.range = YuvRange::Full,
            // Frame rate, interlacing, aspect and other extensions do not
            // change the samples.
            _ => {}
        }
    }
    match (width, height) {
        (Some(w), Some(h)) if w > 0 && h > 0 => Ok((format, w, h, colorimetry)),
        _ => bail!("no frame size in the header"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(bytes: &[u8]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        file
    }

    fn y4m(header: &str, frames: usize, frame_len: usize) -> Vec<u8> {
        let mut bytes = format!("{header}\n").into_bytes();
        for i in 0..frames {
            bytes.extend_from_slice(b"FRAME\n");
            bytes.extend((0..frame_len).map(|j| (i * 7 + j) as u8));
        }
        bytes
    }

    #[test]
    fn frames_come_back_plane_by_plane() {
        // 6x4 4:2:0: 24 luma bytes and two 3x2 chroma planes.
        let file = write(&y4m(
            "YUV4MPEG2 W6 H4 F25:1 Ip A1:1 C420jpeg XYSCSS=420JPEG",
            3,
            36,
        ));
        let frames = read(file.path(), 10).unwrap();
        assert_eq!(frames.len(), 3);
        let f = &frames[1];
        assert_eq!((f.format, f.width, f.height), (PixelFormat::I420, 6, 4));
        assert_eq!(f.colorimetry.range, YuvRange::Limited);
        assert_eq!(f.planes[0].data[0], 7);
        assert_eq!(
            f.planes[1].data,
            (24..30).map(|j| (7 + j) as u8).collect::<Vec<_>>()
        );
        assert_eq!(f.planes[2].data.len(), 6);
        assert_eq!(read(file.path(), 2).unwrap().len(), 2);
    }

    #[test]
    fn ten_bit_and_full_range_are_read() {
        let file = write(&y4m("YUV4MPEG2 W2 H2 C420p10 XCOLORRANGE=FULL", 1, 12));
        let f = &read(file.path(), 1).unwrap()[0];
        assert_eq!(f.format, PixelFormat::I420_10);
        assert_eq!(f.colorimetry.range, YuvRange::Full);
    }

    #[test]
    fn bad_files_are_one_line_errors() {
        let cases: [(&[u8], &str); 6] = [
            (b"", "empty file"),
            (b"RIFF0000WAVE\n", "not a YUV4MPEG2 file"),
            (b"YUV4MPEG2 W6 C420jpeg\nFRAME\n", "no frame size"),
            (b"YUV4MPEG2 W4 H4 C444\nFRAME\n", "C444 is not read"),
            (b"YUV4MPEG2 W2 H2\nFRAME\n\x01\x02", "frame 0 is truncated"),
            (b"YUV4MPEG2 W2 H2\n", "no frames"),
        ];
        for (bytes, expected) in cases {
            let file = write(bytes);
            let error = format!("{:#}", read(file.path(), 5).unwrap_err());
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
            assert!(!error.contains('\n'), "{error:?}");
        }
        let garbage = write(&[b'x'; MAX_LINE + 10]);
        assert!(read(garbage.path(), 1).is_err());
    }
}
