//! Bicubic resampling (Keys, a = −0.5), antialiased when shrinking: the
//! degradation and the baseline that `gendr eval` measures against.

use crate::frame::RgbImage;

fn cubic(x: f32) -> f32 {
    const A: f32 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
    } else {
        0.0
    }
}

/// For each output index: the first source index and the normalised taps.
fn taps(src: usize, dst: usize) -> Vec<(usize, Vec<f32>)> {
    let ratio = src as f32 / dst as f32;
    // Shrinking widens the kernel so that it also low-passes.
    let support = ratio.max(1.0);
    (0..dst)
        .map(|i| {
            let center = (i as f32 + 0.5) * ratio;
            let lo = ((center - 2.0 * support).floor() as isize).max(0) as usize;
            let hi = ((center + 2.0 * support).ceil() as usize).min(src);
            let mut w: Vec<f32> = (lo..hi)
                .map(|j| cubic((j as f32 + 0.5 - center) / support))
                .collect();
            let sum: f32 = w.iter().sum();
            w.iter_mut().for_each(|v| *v /= sum);
            (lo, w)
        })
        .collect()
}

/// Resizes planar RGB to `width × height`; values are clamped to [0, 1].
pub fn bicubic(img: &RgbImage, width: usize, height: usize) -> RgbImage {
    resample(img, width, height, true)
}

/// [`bicubic`] without the clamp, for planes that hold differences.
pub fn bicubic_signed(img: &RgbImage, width: usize, height: usize) -> RgbImage {
    resample(img, width, height, false)
}

fn resample(img: &RgbImage, width: usize, height: usize, clamp: bool) -> RgbImage {
    // A plane a thread where there is enough to share out (the temporal
    // stage's enlargements); small images are not worth the threads.
    let apart = width * height >= PLANES_APART_FROM;
    resample_planes(img, width, height, clamp, apart)
}

fn resample_planes(
    img: &RgbImage,
    width: usize,
    height: usize,
    clamp: bool,
    apart: bool,
) -> RgbImage {
    let xt = taps(img.width, width);
    let yt = taps(img.height, height);
    let mut out = RgbImage::new(width, height);
    let resample_plane = |c: usize, dst: &mut [f32]| {
        let src = img.plane(c);
        let mut rows = vec![0f32; width * img.height];
        for y in 0..img.height {
            let row = &src[y * img.width..(y + 1) * img.width];
            for (x, (lo, w)) in xt.iter().enumerate() {
                rows[y * width + x] = w.iter().enumerate().map(|(k, wk)| wk * row[lo + k]).sum();
            }
        }
        for ((lo, w), line) in yt.iter().zip(dst.chunks_exact_mut(width)) {
            // Whole rows at a time, tap by tap: plain slices the compiler
            // vectorises, each pixel still summed in the taps' order.
            line.fill(0.0);
            for (k, wk) in w.iter().enumerate() {
                let row = &rows[(lo + k) * width..(lo + k + 1) * width];
                for (d, &r) in line.iter_mut().zip(row) {
                    *d += wk * r;
                }
            }
            if clamp {
                line.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
            }
        }
    };
    let planes = out
        .data
        .chunks_exact_mut((width * height).max(1))
        .enumerate();
    if !apart {
        planes.for_each(|(c, dst)| resample_plane(c, dst));
    } else {
        std::thread::scope(|scope| {
            for (c, dst) in planes {
                let resample_plane = &resample_plane;
                scope.spawn(move || resample_plane(c, dst));
            }
        });
    }
    out
}

/// Output pixels from which [`resample`] works on the three planes at once.
const PLANES_APART_FROM: usize = 1 << 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_resampled_apart_are_those_resampled_in_turn() {
        let mut img = RgbImage::new(37, 23);
        for (i, v) in img.data.iter_mut().enumerate() {
            *v = ((i * 7919) % 251) as f32 / 250.0;
        }
        for (w, h) in [(148, 92), (20, 11)] {
            let apart = resample_planes(&img, w, h, true, true);
            assert_eq!(apart, resample_planes(&img, w, h, true, false), "{w}x{h}");
        }
    }

    #[test]
    fn flat_images_stay_flat() {
        let mut img = RgbImage::new(9, 7);
        img.data.iter_mut().for_each(|v| *v = 0.25);
        for (w, h) in [(18, 14), (4, 3), (9, 7), (1, 1)] {
            let out = bicubic(&img, w, h);
            assert!(out.data.iter().all(|v| (v - 0.25).abs() < 1e-5), "{w}x{h}");
        }
    }

    #[test]
    fn the_signed_resize_keeps_values_below_zero() {
        let mut img = RgbImage::new(8, 8);
        img.data.iter_mut().for_each(|v| *v = -0.25);
        let out = bicubic_signed(&img, 4, 4);
        assert!(out.data.iter().all(|v| (v + 0.25).abs() < 1e-5));
        assert!(bicubic(&img, 4, 4).data.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn same_size_is_identity() {
        let mut img = RgbImage::new(5, 4);
        img.data
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = (i % 7) as f32 / 7.0);
        let out = bicubic(&img, 5, 4);
        for (a, b) in img.data.iter().zip(&out.data) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn upscaling_a_ramp_stays_monotonic() {
        let mut img = RgbImage::new(8, 1);
        for c in 0..3 {
            for x in 0..8 {
                img.plane_mut(c)[x] = x as f32 / 8.0;
            }
        }
        let out = bicubic(&img, 16, 1);
        let r = out.plane(0);
        assert!(r[1..15].windows(2).all(|p| p[1] >= p[0]), "{r:?}");
    }
}
