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
}
