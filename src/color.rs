//! Colour conversion between raw frames and the model's planar RGB tensors.
//!
//! YUV 4:2:0 chroma is centre-sited: upsampled bilinearly on the way in and
//! averaged over each 2×2 block on the way out.

use crate::frame::{to_u8, Colorimetry, Frame, PixelFormat, RgbImage, YuvMatrix, YuvRange};
use crate::Result;

/// The luma weights (Kr, Kb) of a matrix.
fn luma_weights(matrix: YuvMatrix) -> (f32, f32) {
    match matrix {
        YuvMatrix::Bt601 => (0.299, 0.114),
        YuvMatrix::Bt709 => (0.2126, 0.0722),
    }
}

/// Maps Y/Cb/Cr codes of a bit depth to normalised Y in [0,1] and Cb/Cr in
/// [-0.5,0.5]. Codes are read and written as f32; the depth scales the
/// 8-bit ranges (studio 16–235 is 64–940 at 10 bits).
#[derive(Clone, Copy)]
struct YuvCoding {
    kr: f32,
    kb: f32,
    y_offset: f32,
    y_span: f32,
    c_span: f32,
    c_zero: f32,
    max: f32,
}

impl YuvCoding {
    fn new(c: Colorimetry, bits: u32) -> Self {
        let (kr, kb) = luma_weights(c.matrix);
        let unit = (1u32 << (bits - 8)) as f32;
        let max = ((1u32 << bits) - 1) as f32;
        let (y_offset, y_span, c_span) = match c.range {
            YuvRange::Limited => (16.0 * unit, 219.0 * unit, 224.0 * unit),
            YuvRange::Full => (0.0, max, max),
        };
        YuvCoding {
            kr,
            kb,
            y_offset,
            y_span,
            c_span,
            c_zero: 128.0 * unit,
            max,
        }
    }

    #[inline]
    fn rgb(&self, y: f32, cb: f32, cr: f32) -> [f32; 3] {
        let y = (y - self.y_offset) / self.y_span;
        let cb = (cb - self.c_zero) / self.c_span;
        let cr = (cr - self.c_zero) / self.c_span;
        let r = y + 2.0 * (1.0 - self.kr) * cr;
        let b = y + 2.0 * (1.0 - self.kb) * cb;
        let g = (y - self.kr * r - self.kb * b) / (1.0 - self.kr - self.kb);
        [r.clamp(0.0, 1.0), g.clamp(0.0, 1.0), b.clamp(0.0, 1.0)]
    }

    #[inline]
    fn luma(&self, rgb: [f32; 3]) -> f32 {
        self.kr * rgb[0] + (1.0 - self.kr - self.kb) * rgb[1] + self.kb * rgb[2]
    }

    #[inline]
    fn y_code(&self, y: f32) -> u16 {
        (self.y_offset + y * self.y_span + 0.5).clamp(0.0, self.max) as u16
    }

    /// Cb and Cr codes of an RGB triple.
    #[inline]
    fn c_codes(&self, rgb: [f32; 3]) -> (u16, u16) {
        let y = self.luma(rgb);
        let cb = (rgb[2] - y) / (2.0 * (1.0 - self.kb));
        let cr = (rgb[0] - y) / (2.0 * (1.0 - self.kr));
        let code = |c: f32| (self.c_zero + c * self.c_span + 0.5).clamp(0.0, self.max) as u16;
        (code(cb), code(cr))
    }
}

/// How YUV samples sit in a plane's bytes.
#[derive(Clone, Copy)]
struct Samples {
    /// Two bytes (little-endian) per sample, shifted up by `shift`; else one.
    wide: bool,
    shift: u32,
}

impl Samples {
    fn of(format: PixelFormat) -> (Self, u32) {
        match format.sample_depth() {
            Some((bits, shift)) => (Samples { wide: true, shift }, bits),
            None => (
                Samples {
                    wide: false,
                    shift: 0,
                },
                8,
            ),
        }
    }

    #[inline]
    fn read(self, row: &[u8], i: usize) -> f32 {
        if self.wide {
            (u16::from_le_bytes([row[2 * i], row[2 * i + 1]]) >> self.shift) as f32
        } else {
            row[i] as f32
        }
    }

    #[inline]
    fn write(self, row: &mut [u8], i: usize, code: u16) {
        if self.wide {
            row[2 * i..2 * i + 2].copy_from_slice(&(code << self.shift).to_le_bytes());
        } else {
            row[i] = code as u8;
        }
    }
}

/// Source index pairs and weights for centre-sited bilinear 2× chroma upsampling.
fn chroma_taps(luma_len: usize, chroma_len: usize) -> Vec<(usize, usize, f32)> {
    (0..luma_len)
        .map(|x| {
            let pos = (x as f32 - 0.5) / 2.0;
            let lo = pos.floor();
            let w = pos - lo;
            let clamp = |i: f32| (i.max(0.0) as usize).min(chroma_len - 1);
            (clamp(lo), clamp(lo + 1.0), w)
        })
        .collect()
}

/// Converts any supported frame to planar RGB in [0, 1].
pub fn frame_to_rgb(frame: &Frame) -> RgbImage {
    let (w, h) = (frame.width, frame.height);
    let mut out = RgbImage::new(w, h);
    let n = w * h;
    if let Some((offsets, bpp)) = frame.format.packed_layout() {
        for (y, row) in frame.rows(0).enumerate() {
            for x in 0..w {
                let px = &row[x * bpp..];
                for c in 0..3 {
                    out.data[c * n + y * w + x] = px[offsets[c]] as f32 / 255.0;
                }
            }
        }
        return out;
    }
    let (samples, bits) = Samples::of(frame.format);
    let coding = YuvCoding::new(frame.colorimetry, bits);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    // Split chroma into two cw×ch planes first, whatever the layout.
    let (mut u, mut v) = (vec![0f32; cw * ch], vec![0f32; cw * ch]);
    if frame.format.interleaved_chroma() {
        for (y, row) in frame.rows(1).enumerate() {
            for x in 0..cw {
                u[y * cw + x] = samples.read(row, 2 * x);
                v[y * cw + x] = samples.read(row, 2 * x + 1);
            }
        }
    } else {
        for (y, (ru, rv)) in frame.rows(1).zip(frame.rows(2)).enumerate() {
            for x in 0..cw {
                u[y * cw + x] = samples.read(ru, x);
                v[y * cw + x] = samples.read(rv, x);
            }
        }
    }
    let xt = chroma_taps(w, cw);
    let yt = chroma_taps(h, ch);
    let sample = |plane: &[f32], x: usize, y: usize| {
        let (x0, x1, wx) = xt[x];
        let (y0, y1, wy) = yt[y];
        let top = plane[y0 * cw + x0] * (1.0 - wx) + plane[y0 * cw + x1] * wx;
        let bottom = plane[y1 * cw + x0] * (1.0 - wx) + plane[y1 * cw + x1] * wx;
        top * (1.0 - wy) + bottom * wy
    };
    for (y, row) in frame.rows(0).enumerate() {
        for x in 0..w {
            let luma = samples.read(row, x);
            let rgb = coding.rgb(luma, sample(&u, x, y), sample(&v, x, y));
            for (c, value) in rgb.into_iter().enumerate() {
                out.data[c * n + y * w + x] = value;
            }
        }
    }
    out
}

/// Converts planar RGB to a tightly packed frame of `format`.
pub fn rgb_to_frame(
    img: &RgbImage,
    format: PixelFormat,
    colorimetry: Colorimetry,
) -> Result<Frame> {
    let (w, h) = (img.width, img.height);
    let mut frame = Frame::new(format, w, h, colorimetry)?;
    let n = w * h;
    let px = |x: usize, y: usize| -> [f32; 3] {
        let i = y * w + x;
        [img.data[i], img.data[n + i], img.data[2 * n + i]]
    };
    if let Some((offsets, bpp)) = format.packed_layout() {
        let stride = frame.planes[0].stride;
        let data = &mut frame.planes[0].data;
        for y in 0..h {
            for x in 0..w {
                let rgb = px(x, y);
                let o = y * stride + x * bpp;
                for c in 0..3 {
                    data[o + offsets[c]] = to_u8(rgb[c]);
                }
                if bpp == 4 {
                    // The fourth byte (x or alpha) is opaque: the model has no alpha.
                    data[o + 3] = 255;
                }
            }
        }
        return Ok(frame);
    }
    let (samples, bits) = Samples::of(format);
    let coding = YuvCoding::new(colorimetry, bits);
    let ystride = frame.planes[0].stride;
    for y in 0..h {
        let row = &mut frame.planes[0].data[y * ystride..];
        for x in 0..w {
            samples.write(row, x, coding.y_code(coding.luma(px(x, y))));
        }
    }
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    for cy in 0..ch {
        for cx in 0..cw {
            let mut sum = [0f32; 3];
            let mut count = 0.0;
            for y in 2 * cy..(2 * cy + 2).min(h) {
                for x in 2 * cx..(2 * cx + 2).min(w) {
                    let p = px(x, y);
                    for c in 0..3 {
                        sum[c] += p[c];
                    }
                    count += 1.0;
                }
            }
            let (cb, cr) = coding.c_codes(sum.map(|s| s / count));
            if format.interleaved_chroma() {
                let s = frame.planes[1].stride;
                let row = &mut frame.planes[1].data[cy * s..];
                samples.write(row, 2 * cx, cb);
                samples.write(row, 2 * cx + 1, cr);
            } else {
                for (plane, code) in [(1, cb), (2, cr)] {
                    let s = frame.planes[plane].stride;
                    samples.write(&mut frame.planes[plane].data[cy * s..], cx, code);
                }
            }
        }
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: usize, h: usize) -> RgbImage {
        let mut img = RgbImage::new(w, h);
        let n = w * h;
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                img.data[i] = 0.2 + 0.3 * x as f32 / w as f32;
                img.data[n + i] = 0.6 - 0.3 * y as f32 / h as f32;
                img.data[2 * n + i] = 0.4 + 0.3 * ((x + y) as f32 / (w + h) as f32);
            }
        }
        img
    }

    #[test]
    fn packed_formats_round_trip_exactly() {
        let img = gradient(17, 9);
        let quantised = RgbImage::from_rgb8(17, 9, &img.to_rgb8()).unwrap();
        for format in [
            PixelFormat::Rgb,
            PixelFormat::Bgr,
            PixelFormat::Rgbx,
            PixelFormat::Bgrx,
            PixelFormat::Rgba,
            PixelFormat::Bgra,
        ] {
            let frame = rgb_to_frame(&quantised, format, Colorimetry::default()).unwrap();
            let back = frame_to_rgb(&frame);
            assert!(quantised.max_abs_diff(&back) < 1e-6, "{format:?}");
        }
    }

    #[test]
    fn bgr_puts_blue_first() {
        let mut img = RgbImage::new(1, 1);
        img.data = vec![1.0, 0.0, 0.0];
        let frame = rgb_to_frame(&img, PixelFormat::Bgra, Colorimetry::default()).unwrap();
        assert_eq!(frame.planes[0].data, vec![0, 0, 255, 255]);
    }

    #[test]
    fn yuv_round_trip_is_close_on_smooth_images() {
        let img = gradient(32, 18);
        for format in [PixelFormat::I420, PixelFormat::Nv12] {
            for matrix in [YuvMatrix::Bt601, YuvMatrix::Bt709] {
                for range in [YuvRange::Limited, YuvRange::Full] {
                    let c = Colorimetry { matrix, range };
                    let back = frame_to_rgb(&rgb_to_frame(&img, format, c).unwrap());
                    // Chroma is subsampled, so steep colour ramps lose a little at the edges.
                    let d = img.max_abs_diff(&back);
                    assert!(d < 4.0 / 255.0, "{format:?} {c:?}: max {d}");
                    let mean = img
                        .data
                        .iter()
                        .zip(&back.data)
                        .map(|(a, b)| (a - b).abs())
                        .sum::<f32>()
                        / img.data.len() as f32;
                    assert!(mean < 0.75 / 255.0, "{format:?} {c:?}: mean {mean}");
                }
            }
        }
    }

    #[test]
    fn yuv_odd_sizes_convert() {
        let img = gradient(7, 5);
        let frame = rgb_to_frame(&img, PixelFormat::I420, Colorimetry::default()).unwrap();
        assert_eq!(frame.planes[1].data.len(), 4 * 3);
        let back = frame_to_rgb(&frame);
        assert_eq!((back.width, back.height), (7, 5));
    }

    #[test]
    fn limited_range_white_and_black_codes() {
        let c = YuvCoding::new(
            Colorimetry {
                matrix: YuvMatrix::Bt709,
                range: YuvRange::Limited,
            },
            8,
        );
        assert_eq!(c.y_code(1.0), 235);
        assert_eq!(c.y_code(0.0), 16);
        assert_eq!(c.c_codes([0.5, 0.5, 0.5]), (128, 128));
        let white = c.rgb(235.0, 128.0, 128.0);
        assert!(white.iter().all(|v| (v - 1.0).abs() < 1e-6));
    }

    #[test]
    fn ten_bit_codes_scale_the_eight_bit_ranges() {
        let studio = Colorimetry {
            matrix: YuvMatrix::Bt709,
            range: YuvRange::Limited,
        };
        let c = YuvCoding::new(studio, 10);
        assert_eq!((c.y_code(0.0), c.y_code(1.0)), (64, 940));
        assert_eq!(c.c_codes([0.5, 0.5, 0.5]), (512, 512));
        let full = YuvCoding::new(
            Colorimetry {
                range: YuvRange::Full,
                ..studio
            },
            10,
        );
        assert_eq!(full.y_code(1.0), 1023);
    }

    #[test]
    fn ten_bit_frames_keep_detail_eight_bits_cannot() {
        // A ramp finer than 8-bit steps survives the round trip at 10 bits,
        // in both layouts (P010 keeps its samples in the high bits).
        let (w, h) = (64, 8);
        let mut img = RgbImage::new(w, h);
        for c in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    img.plane_mut(c)[y * w + x] = 0.5 + x as f32 / (4.0 * 1023.0);
                }
            }
        }
        let c = Colorimetry::default();
        for format in [PixelFormat::I420_10, PixelFormat::P010] {
            let frame = rgb_to_frame(&img, format, c).unwrap();
            let back = frame_to_rgb(&frame);
            assert!(back.max_abs_diff(&img) < 1.5 / 876.0, "{format:?}");
            if format == PixelFormat::P010 {
                let first = u16::from_le_bytes([frame.planes[0].data[0], frame.planes[0].data[1]]);
                assert_eq!(first & 0x3f, 0, "P010 samples sit in the high bits");
            }
        }
        let eight = frame_to_rgb(&rgb_to_frame(&img, PixelFormat::I420, c).unwrap());
        assert!(eight.max_abs_diff(&img) > 1.5 / 876.0);
    }

    #[test]
    fn matrices_differ_on_saturated_colour() {
        let red = [1.0, 0.0, 0.0];
        let a = YuvCoding::new(
            Colorimetry {
                matrix: YuvMatrix::Bt601,
                range: YuvRange::Full,
            },
            8,
        );
        let b = YuvCoding::new(
            Colorimetry {
                matrix: YuvMatrix::Bt709,
                range: YuvRange::Full,
            },
            8,
        );
        assert_eq!(a.y_code(a.luma(red)), 76);
        assert_eq!(b.y_code(b.luma(red)), 54);
    }

    #[test]
    fn flat_colour_round_trips() {
        for range in [YuvRange::Limited, YuvRange::Full] {
            for matrix in [YuvMatrix::Bt601, YuvMatrix::Bt709] {
                let mut img = RgbImage::new(4, 4);
                let n = 16;
                for i in 0..n {
                    img.data[i] = 0.8;
                    img.data[n + i] = 0.3;
                    img.data[2 * n + i] = 0.5;
                }
                let c = Colorimetry { matrix, range };
                let back = frame_to_rgb(&rgb_to_frame(&img, PixelFormat::I420, c).unwrap());
                let d = img
                    .data
                    .iter()
                    .zip(&back.data)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(d < 1.5 / 255.0, "{c:?} {d}");
            }
        }
    }
}
