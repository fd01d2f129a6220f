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

/// Maps 8-bit Y/Cb/Cr codes to normalised Y in [0,1] and Cb/Cr in [-0.5,0.5].
#[derive(Clone, Copy)]
struct YuvCoding {
    kr: f32,
    kb: f32,
    y_offset: f32,
    y_span: f32,
    c_span: f32,
}

impl YuvCoding {
    fn new(c: Colorimetry) -> Self {
        let (kr, kb) = luma_weights(c.matrix);
        let (y_offset, y_span, c_span) = match c.range {
            YuvRange::Limited => (16.0, 219.0, 224.0),
            YuvRange::Full => (0.0, 255.0, 255.0),
        };
        YuvCoding {
            kr,
            kb,
            y_offset,
            y_span,
            c_span,
        }
    }

    #[inline]
    fn rgb(&self, y: f32, cb: f32, cr: f32) -> [f32; 3] {
        let y = (y - self.y_offset) / self.y_span;
        let cb = (cb - 128.0) / self.c_span;
        let cr = (cr - 128.0) / self.c_span;
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
    fn y_code(&self, y: f32) -> u8 {
        (self.y_offset + y * self.y_span + 0.5).clamp(0.0, 255.0) as u8
    }

    /// Cb and Cr codes of an RGB triple.
    #[inline]
    fn c_codes(&self, rgb: [f32; 3]) -> (u8, u8) {
        let y = self.luma(rgb);
        let cb = (rgb[2] - y) / (2.0 * (1.0 - self.kb));
        let cr = (rgb[0] - y) / (2.0 * (1.0 - self.kr));
        let code = |c: f32| (128.0 + c * self.c_span + 0.5).clamp(0.0, 255.0) as u8;
        (code(cb), code(cr))
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
    let coding = YuvCoding::new(frame.colorimetry);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    // Split chroma into two cw×ch planes first, whatever the layout.
    let (mut u, mut v) = (vec![0f32; cw * ch], vec![0f32; cw * ch]);
    match frame.format {
        PixelFormat::I420 => {
            for (y, (ru, rv)) in frame.rows(1).zip(frame.rows(2)).enumerate() {
                for x in 0..cw {
                    u[y * cw + x] = ru[x] as f32;
                    v[y * cw + x] = rv[x] as f32;
                }
            }
        }
        PixelFormat::Nv12 => {
            for (y, row) in frame.rows(1).enumerate() {
                for x in 0..cw {
                    u[y * cw + x] = row[2 * x] as f32;
                    v[y * cw + x] = row[2 * x + 1] as f32;
                }
            }
        }
        _ => unreachable!("packed formats return above"),
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
        for (x, &luma) in row.iter().enumerate() {
            let rgb = coding.rgb(luma as f32, sample(&u, x, y), sample(&v, x, y));
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
    let coding = YuvCoding::new(colorimetry);
    let ystride = frame.planes[0].stride;
    for y in 0..h {
        for x in 0..w {
            frame.planes[0].data[y * ystride + x] = coding.y_code(coding.luma(px(x, y)));
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
            match format {
                PixelFormat::I420 => {
                    let s = frame.planes[1].stride;
                    frame.planes[1].data[cy * s + cx] = cb;
                    let s = frame.planes[2].stride;
                    frame.planes[2].data[cy * s + cx] = cr;
                }
                PixelFormat::Nv12 => {
                    let s = frame.planes[1].stride;
                    frame.planes[1].data[cy * s + 2 * cx] = cb;
                    frame.planes[1].data[cy * s + 2 * cx + 1] = cr;
                }
                _ => unreachable!("packed formats return above"),
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
        let c = YuvCoding::new(Colorimetry {
            matrix: YuvMatrix::Bt709,
            range: YuvRange::Limited,
        });
        assert_eq!(c.y_code(1.0), 235);
        assert_eq!(c.y_code(0.0), 16);
        assert_eq!(c.c_codes([0.5, 0.5, 0.5]), (128, 128));
        let white = c.rgb(235.0, 128.0, 128.0);
        assert!(white.iter().all(|v| (v - 1.0).abs() < 1e-6));
    }

    #[test]
    fn matrices_differ_on_saturated_colour() {
        let red = [1.0, 0.0, 0.0];
        let a = YuvCoding::new(Colorimetry {
            matrix: YuvMatrix::Bt601,
            range: YuvRange::Full,
        });
        let b = YuvCoding::new(Colorimetry {
            matrix: YuvMatrix::Bt709,
            range: YuvRange::Full,
        });
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
