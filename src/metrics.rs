//! Image quality: PSNR and SSIM, on RGB and on BT.601 luma (Y), the way SR
//! papers report them. Images are in [0, 1].

use crate::frame::RgbImage;

/// Quality of one image against its reference.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Quality {
    pub psnr_rgb: f64,
    pub psnr_y: f64,
    pub ssim_rgb: f64,
    pub ssim_y: f64,
}

fn luma(img: &RgbImage) -> Vec<f32> {
    let (r, g, b) = (img.plane(0), img.plane(1), img.plane(2));
    (0..r.len())
        .map(|i| 0.299 * r[i] + 0.587 * g[i] + 0.114 * b[i])
        .collect()
}

fn psnr(a: &[f32], b: &[f32]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (1.0 / mse).log10()
    }
}

/// Mean SSIM with an 11×11 Gaussian window (σ = 1.5) over one plane.
fn ssim(a: &[f32], b: &[f32], width: usize, height: usize) -> f64 {
    const C1: f64 = 0.01 * 0.01;
    const C2: f64 = 0.03 * 0.03;
    let kernel: Vec<f64> = (-5..=5)
        .map(|i: i32| (-(i * i) as f64 / (2.0 * 1.5 * 1.5)).exp())
        .collect();
    let ksum: f64 = kernel.iter().sum();
    let kernel: Vec<f64> = kernel.iter().map(|k| k / ksum).collect();
    let blur = |src: &[f64]| -> Vec<f64> {
        let clamp = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
        let mut tmp = vec![0f64; src.len()];
        for y in 0..height {
            for x in 0..width {
                tmp[y * width + x] = kernel
                    .iter()
                    .enumerate()
                    .map(|(k, w)| w * src[y * width + clamp(x as isize + k as isize - 5, width)])
                    .sum();
            }
        }
        let mut out = vec![0f64; src.len()];
        for y in 0..height {
            for x in 0..width {
                out[y * width + x] = kernel
                    .iter()
                    .enumerate()
                    .map(|(k, w)| w * tmp[clamp(y as isize + k as isize - 5, height) * width + x])
                    .sum();
            }
        }
        out
    };
    let a: Vec<f64> = a.iter().map(|&v| v as f64).collect();
    let b: Vec<f64> = b.iter().map(|&v| v as f64).collect();
    let product = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(x, y)| x * y).collect::<Vec<_>>();
    let (mu_a, mu_b) = (blur(&a), blur(&b));
    let (aa, bb, ab) = (
        blur(&product(&a, &a)),
        blur(&product(&b, &b)),
        blur(&product(&a, &b)),
    );
    let total: f64 = (0..a.len())
        .map(|i| {
            let (ma, mb) = (mu_a[i], mu_b[i]);
            let (va, vb, cov) = (aa[i] - ma * ma, bb[i] - mb * mb, ab[i] - ma * mb);
            ((2.0 * ma * mb + C1) * (2.0 * cov + C2)) / ((ma * ma + mb * mb + C1) * (va + vb + C2))
        })
        .sum();
    total / a.len() as f64
}

/// Compares `img` with `reference`; both must be the same size.
pub fn quality(img: &RgbImage, reference: &RgbImage) -> Quality {
    assert_eq!(
        (img.width, img.height),
        (reference.width, reference.height),
        "sizes differ"
    );
    let (w, h) = (img.width, img.height);
    let (ya, yb) = (luma(img), luma(reference));
    Quality {
        psnr_rgb: psnr(&img.data, &reference.data),
        psnr_y: psnr(&ya, &yb),
        ssim_rgb: (0..3)
            .map(|c| ssim(img.plane(c), reference.plane(c), w, h))
            .sum::<f64>()
            / 3.0,
        ssim_y: ssim(&ya, &yb, w, h),
    }
}

/// Flicker: the mean absolute difference between how `frames` change from
/// one frame to the next and how `reference` changes, on BT.601 luma in 8-bit
/// levels (0..255). 0 means the output moves exactly as the reference moves;
/// noise that differs from frame to frame adds to it even where each frame
/// alone scores well. `None` for fewer than two frames.
pub fn temporal_difference(frames: &[RgbImage], reference: &[RgbImage]) -> Option<f64> {
    assert_eq!(frames.len(), reference.len(), "frame counts differ");
    if frames.len() < 2 {
        return None;
    }
    let lumas = |images: &[RgbImage]| images.iter().map(luma).collect::<Vec<_>>();
    let (ours, theirs) = (lumas(frames), lumas(reference));
    let mut total = 0.0;
    for t in 1..frames.len() {
        assert_eq!(
            (frames[t].width, frames[t].height),
            (reference[t].width, reference[t].height),
            "sizes differ"
        );
        let sum: f64 = (0..ours[t].len())
            .map(|i| {
                let change = ours[t][i] - ours[t - 1][i];
                let reference_change = theirs[t][i] - theirs[t - 1][i];
                (change - reference_change).abs() as f64
            })
            .sum();
        total += 255.0 * sum / ours[t].len() as f64;
    }
    Some(total / (frames.len() - 1) as f64)
}

/// Where the reference changes by less than this many 8-bit levels from one
/// frame to the next, it counts as static for [`shimmer`].
pub const STATIC_BELOW_LEVELS: f64 = 2.0;

/// Shimmer: [`temporal_difference`] on the pixels where the reference is
/// static (its luma changes by less than [`STATIC_BELOW_LEVELS`], compared
/// at 1e-4 of a level), pooled
/// over every pair of consecutive frames, in 8-bit levels. What a steady
/// picture should not do: change where the scene does not. `None` for fewer
/// than two frames or a reference that never stands still.
pub fn shimmer(frames: &[RgbImage], reference: &[RgbImage]) -> Option<f64> {
    assert_eq!(frames.len(), reference.len(), "frame counts differ");
    let lumas = |images: &[RgbImage]| images.iter().map(luma).collect::<Vec<_>>();
    let (ours, theirs) = (lumas(frames), lumas(reference));
    let (mut sum, mut count) = (0.0, 0usize);
    for t in 1..frames.len() {
        for i in 0..ours[t].len() {
            let reference_change = 255.0 * (theirs[t][i] - theirs[t - 1][i]) as f64;
            // To 1e-4 of a level: a change of exactly 2 levels (every channel
            // up by 2) is then 2 whatever float noise f32 luma carries.
            if (reference_change.abs() * 1e4).round() < STATIC_BELOW_LEVELS * 1e4 {
                let change = 255.0 * (ours[t][i] - ours[t - 1][i]) as f64;
                sum += (change - reference_change).abs();
                count += 1;
            }
        }
    }
    (count > 0).then(|| sum / count as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(w: usize, h: usize, seed: u32) -> RgbImage {
        let mut img = RgbImage::new(w, h);
        let mut state = seed;
        for v in &mut img.data {
            state = state.wrapping_mul(1664525).wrapping_add(1013904223);
            *v = (state >> 8) as f32 / (1u32 << 24) as f32;
        }
        img
    }

    /// Frames of a pattern that slides one pixel right per frame.
    fn sliding(frames: usize) -> Vec<RgbImage> {
        (0..frames)
            .map(|t| {
                let mut img = RgbImage::new(24, 16);
                for c in 0..3 {
                    for (i, v) in img.plane_mut(c).iter_mut().enumerate() {
                        let x = (i % 24 + 24 - t) % 24;
                        *v = 0.5 + 0.4 * (x as f32 / 3.0).sin();
                    }
                }
                img
            })
            .collect()
    }

    #[test]
    fn following_the_reference_motion_is_zero_flicker() {
        let reference = sliding(5);
        // A constant offset (a brighter copy) changes nothing from frame to frame.
        let brighter: Vec<RgbImage> = reference
            .iter()
            .map(|f| {
                let mut f = f.clone();
                f.data.iter_mut().for_each(|v| *v += 0.05);
                f
            })
            .collect();
        assert!(temporal_difference(&brighter, &reference).unwrap() < 1e-4);
        assert_eq!(temporal_difference(&reference[..1], &reference[..1]), None);
    }

    #[test]
    fn per_frame_noise_is_flicker_and_a_frozen_picture_misses_motion() {
        let reference = sliding(6);
        let noisy: Vec<RgbImage> = reference
            .iter()
            .enumerate()
            .map(|(t, f)| {
                let grain = noise(f.width, f.height, t as u32 + 1);
                let mut f = f.clone();
                for (v, n) in f.data.iter_mut().zip(&grain.data) {
                    *v += 0.02 * (n - 0.5);
                }
                f
            })
            .collect();
        let frozen = vec![reference[0].clone(); reference.len()];
        let flicker = temporal_difference(&noisy, &reference).unwrap();
        // Independent uniform noise of ±0.01 per frame: the difference of two
        // draws has a mean absolute value of 0.02/3 (luma mixes the channels'
        // draws, which only lowers it), ≈ 1.7 levels at most.
        assert!(flicker > 0.5 && flicker < 1.8, "{flicker}");
        assert!(temporal_difference(&frozen, &reference).unwrap() > 10.0);
    }

    #[test]
    fn identical_images_are_perfect() {
        let img = noise(20, 12, 1);
        let q = quality(&img, &img);
        assert!(q.psnr_rgb.is_infinite() && q.psnr_y.is_infinite());
        assert!((q.ssim_rgb - 1.0).abs() < 1e-9 && (q.ssim_y - 1.0).abs() < 1e-9);
    }

    #[test]
    fn psnr_matches_a_known_error() {
        let a = RgbImage {
            width: 2,
            height: 1,
            data: vec![0.5; 6],
        };
        let b = RgbImage {
            width: 2,
            height: 1,
            data: vec![0.6; 6],
        };
        // MSE 0.01 → 20 dB.
        assert!((quality(&a, &b).psnr_rgb - 20.0).abs() < 1e-4);
    }

    #[test]
    fn unrelated_noise_has_low_ssim() {
        let q = quality(&noise(32, 32, 1), &noise(32, 32, 2));
        assert!(q.ssim_y < 0.2, "{q:?}");
    }

    #[test]
    fn shimmer_counts_only_where_the_reference_stands_still() {
        // The left half of the reference is static, the right half flashes.
        let reference: Vec<RgbImage> = (0..3)
            .map(|t| {
                let mut f = RgbImage::new(4, 1);
                for c in 0..3 {
                    f.plane_mut(c)
                        .copy_from_slice(&[0.5, 0.5, 0.2 * t as f32, 0.2 * t as f32]);
                }
                f
            })
            .collect();
        // The output wobbles by 4 levels on the static half and freezes the other.
        let output: Vec<RgbImage> = (0..3)
            .map(|t| {
                let wobble = if t % 2 == 0 { 0.0 } else { 4.0 / 255.0 };
                let mut f = RgbImage::new(4, 1);
                for c in 0..3 {
                    f.plane_mut(c)
                        .copy_from_slice(&[0.5 + wobble, 0.5, 0.0, 0.0]);
                }
                f
            })
            .collect();
        // Static pixels: 2 per pair, 2 pairs; one of them moves by 4 in each pair.
        let got = shimmer(&output, &reference).unwrap();
        assert!((got - 2.0).abs() < 1e-3, "{got}");
        assert_eq!(shimmer(&reference, &reference), Some(0.0));
        assert_eq!(shimmer(&output[..1], &reference[..1]), None);
    }
}
