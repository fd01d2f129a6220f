//! The cheap path for frames the model has no time for: a bilinear resize of
//! each plane in the frame's own format, so that no colour conversion is
//! needed and the result drops in where the model's output would have gone.

use crate::frame::{Frame, PixelFormat};
use crate::{Error, Result};

/// Fixed-point precision of the interpolation weights.
const SHIFT: u32 = 8;
const ONE: u32 = 1 << SHIFT;

/// For each destination index: the two source indices and the weight of the
/// second, pixel centres aligned.
fn taps(src: usize, dst: usize) -> Vec<(usize, usize, u32)> {
    let ratio = src as f64 / dst as f64;
    (0..dst)
        .map(|i| {
            let x = ((i as f64 + 0.5) * ratio - 0.5).max(0.0);
            let x0 = (x.floor() as usize).min(src - 1);
            let x1 = (x0 + 1).min(src - 1);
            let w = ((x - x0 as f64) * ONE as f64).round() as u32;
            (x0, x1, w.min(ONE))
        })
        .collect()
}

/// Samples per pixel in each plane of `format`.
fn channels(format: PixelFormat) -> Vec<usize> {
    match format {
        PixelFormat::I420 => vec![1, 1, 1],
        PixelFormat::Nv12 => vec![1, 2],
        PixelFormat::I420_10 | PixelFormat::P010 => unreachable!("resized through RGB"),
        other => vec![other.packed_layout().map_or(1, |(_, bpp)| bpp)],
    }
}

/// Upscales `frame` by `scale` with a bilinear filter, plane by plane.
pub fn upscale(frame: &Frame, scale: usize) -> Result<Frame> {
    if scale == 0 {
        return Err(Error::InvalidSetting("scale 0".into()));
    }
    if frame.format.sample_depth().is_some() {
        // 16-bit words: through RGB, which the plane filter's bytes cannot do.
        let rgb = crate::color::frame_to_rgb(frame);
        let big = crate::resize::bicubic(&rgb, frame.width * scale, frame.height * scale);
        return crate::color::rgb_to_frame(&big, frame.format, frame.colorimetry);
    }
    let mut out = Frame::new(
        frame.format,
        frame.width * scale,
        frame.height * scale,
        frame.colorimetry,
    )?;
    let src_sizes = frame.format.plane_sizes(frame.width, frame.height);
    let dst_sizes = out.format.plane_sizes(out.width, out.height);
    for (i, ch) in channels(frame.format).into_iter().enumerate() {
        let ((src_row, src_rows), (dst_row, dst_rows)) = (src_sizes[i], dst_sizes[i]);
        let (sw, dw) = (src_row / ch, dst_row / ch);
        let xt = taps(sw, dw);
        let yt = taps(src_rows, dst_rows);
        let src = &frame.planes[i];
        let dst = &mut out.planes[i];
        // Horizontal pass into 16-bit rows, then the vertical pass.
        let mut rows = vec![0u16; dst_row * src_rows];
        for y in 0..src_rows {
            let line = &src.data[y * src.stride..y * src.stride + src_row];
            let out_line = &mut rows[y * dst_row..(y + 1) * dst_row];
            for (x, &(x0, x1, w)) in xt.iter().enumerate() {
                for c in 0..ch {
                    let a = line[x0 * ch + c] as u32;
                    let b = line[x1 * ch + c] as u32;
                    out_line[x * ch + c] = (a * (ONE - w) + b * w) as u16;
                }
            }
        }
        for (y, &(y0, y1, w)) in yt.iter().enumerate() {
            let (a, b) = (
                &rows[y0 * dst_row..(y0 + 1) * dst_row],
                &rows[y1 * dst_row..(y1 + 1) * dst_row],
            );
            let line = &mut dst.data[y * dst.stride..y * dst.stride + dst_row];
            for ((o, &a), &b) in line.iter_mut().zip(a).zip(b) {
                let v = a as u32 * (ONE - w) + b as u32 * w;
                *o = ((v + (1 << (2 * SHIFT - 1))) >> (2 * SHIFT)) as u8;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Colorimetry, Plane};

    fn frame(format: PixelFormat, w: usize, h: usize, f: impl Fn(usize, usize) -> u8) -> Frame {
        let planes = format
            .plane_sizes(w, h)
            .into_iter()
            .enumerate()
            .map(|(i, (row, rows))| {
                // Strides wider than the rows, as GStreamer hands them out.
                let stride = row + 5;
                let mut data = vec![0u8; stride * rows];
                for y in 0..rows {
                    for x in 0..row {
                        data[y * stride + x] = f(x + i, y);
                    }
                }
                Plane { data, stride }
            })
            .collect();
        Frame::from_planes(format, w, h, Colorimetry::default(), planes).unwrap()
    }

    #[test]
    fn flat_frames_stay_flat_in_every_format() {
        for format in [
            PixelFormat::I420,
            PixelFormat::Nv12,
            PixelFormat::Rgb,
            PixelFormat::Bgrx,
            PixelFormat::Rgba,
        ] {
            for (w, h, s) in [(7, 5, 2), (8, 6, 3), (1, 1, 4)] {
                let out = upscale(&frame(format, w, h, |_, _| 77), s).unwrap();
                assert_eq!((out.width, out.height), (w * s, h * s));
                for i in 0..out.planes.len() {
                    assert!(
                        out.rows(i).all(|r| r.iter().all(|&v| v == 77)),
                        "{format:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_ramp_stays_monotonic_and_interleaved_channels_stay_apart() {
        let src = frame(PixelFormat::Rgb, 8, 2, |x, _| {
            if x % 3 == 0 {
                (x * 10) as u8
            } else {
                200
            }
        });
        let out = upscale(&src, 2).unwrap();
        let row = out.rows(0).next().unwrap();
        let red: Vec<u8> = row.chunks(3).map(|p| p[0]).collect();
        assert!(red.windows(2).all(|p| p[1] >= p[0]), "{red:?}");
        assert!(row.chunks(3).all(|p| p[1] == 200 && p[2] == 200));
    }
}
