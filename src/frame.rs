//! Raw video frames as the pipeline carries them, independent of GStreamer.

use crate::{Error, Result};

/// An 8-bit code value for a sample in [0, 1], rounded.
#[inline]
pub fn to_u8(v: f32) -> u8 {
    (v * 255.0 + 0.5).clamp(0.0, 255.0) as u8
}

/// The raw formats gendr reads and writes. YUV formats are 4:2:0, 8-bit or
/// 10-bit in 16-bit little-endian words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    I420,
    Nv12,
    /// Planar 4:2:0, 10 bits in the low bits of each 16-bit word.
    I420_10,
    /// Semi-planar 4:2:0 (interleaved CbCr), 10 bits in the high bits of each word.
    P010,
    Rgb,
    Bgr,
    Rgbx,
    Bgrx,
    Rgba,
    Bgra,
}

/// How YUV samples map to RGB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum YuvMatrix {
    Bt601,
    #[default]
    Bt709,
}

/// Whether YUV samples use the studio (16–235) or the full (0–255) range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum YuvRange {
    #[default]
    Limited,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Colorimetry {
    pub matrix: YuvMatrix,
    pub range: YuvRange,
}

impl PixelFormat {
    /// Byte offsets of R, G, B within one pixel and the pixel's size, for the
    /// packed RGB formats; `None` for YUV.
    pub fn packed_layout(self) -> Option<([usize; 3], usize)> {
        match self {
            PixelFormat::Rgb => Some(([0, 1, 2], 3)),
            PixelFormat::Bgr => Some(([2, 1, 0], 3)),
            PixelFormat::Rgbx | PixelFormat::Rgba => Some(([0, 1, 2], 4)),
            PixelFormat::Bgrx | PixelFormat::Bgra => Some(([2, 1, 0], 4)),
            PixelFormat::I420 | PixelFormat::Nv12 | PixelFormat::I420_10 | PixelFormat::P010 => {
                None
            }
        }
    }

    /// For YUV formats: bits per sample and how far each sample is shifted
    /// up within its 16-bit word (`None` for 8-bit samples).
    pub fn sample_depth(self) -> Option<(u32, u32)> {
        match self {
            PixelFormat::I420_10 => Some((10, 0)),
            PixelFormat::P010 => Some((10, 6)),
            _ => None,
        }
    }

    /// Whether chroma is one interleaved CbCr plane (NV12, P010).
    pub fn interleaved_chroma(self) -> bool {
        matches!(self, PixelFormat::Nv12 | PixelFormat::P010)
    }

    pub fn has_alpha(self) -> bool {
        matches!(self, PixelFormat::Rgba | PixelFormat::Bgra)
    }

    /// Width and height of each plane, in bytes per row and rows, for a
    /// tightly packed frame.
    pub fn plane_sizes(self, width: usize, height: usize) -> Vec<(usize, usize)> {
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        match self {
            PixelFormat::I420 => vec![(width, height), (cw, ch), (cw, ch)],
            PixelFormat::Nv12 => vec![(width, height), (cw * 2, ch)],
            PixelFormat::I420_10 => vec![(2 * width, height), (2 * cw, ch), (2 * cw, ch)],
            PixelFormat::P010 => vec![(2 * width, height), (4 * cw, ch)],
            other => {
                let (_, bpp) = other.packed_layout().expect("packed format");
                vec![(width * bpp, height)]
            }
        }
    }
}

/// One plane of pixel data: `stride` bytes per row, `data.len() >= stride * rows`.
#[derive(Debug, Clone)]
pub struct Plane {
    pub data: Vec<u8>,
    pub stride: usize,
}

/// A video frame in system memory.
#[derive(Debug, Clone)]
pub struct Frame {
    pub format: PixelFormat,
    pub width: usize,
    pub height: usize,
    pub colorimetry: Colorimetry,
    pub planes: Vec<Plane>,
}

impl Frame {
    /// A tightly packed frame filled with zeros.
    pub fn new(
        format: PixelFormat,
        width: usize,
        height: usize,
        colorimetry: Colorimetry,
    ) -> Result<Self> {
        let planes = format
            .plane_sizes(width, height)
            .into_iter()
            .map(|(row, rows)| Plane {
                data: vec![0; row * rows],
                stride: row,
            })
            .collect();
        Self::from_planes(format, width, height, colorimetry, planes)
    }

    /// Wraps planes that came from elsewhere, checking that they are large
    /// enough for the format and size.
    pub fn from_planes(
        format: PixelFormat,
        width: usize,
        height: usize,
        colorimetry: Colorimetry,
        planes: Vec<Plane>,
    ) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(Error::InvalidSize(format!("{width}x{height} frame")));
        }
        let sizes = format.plane_sizes(width, height);
        if sizes.len() != planes.len() {
            return Err(Error::InvalidFrame(format!(
                "{format:?} needs {} planes, got {}",
                sizes.len(),
                planes.len()
            )));
        }
        for (i, ((row, rows), plane)) in sizes.iter().zip(&planes).enumerate() {
            if plane.stride < *row || plane.data.len() < plane.stride * (rows - 1) + row {
                return Err(Error::InvalidFrame(format!(
                    "plane {i} of a {width}x{height} {format:?} frame is too small"
                )));
            }
        }
        Ok(Frame {
            format,
            width,
            height,
            colorimetry,
            planes,
        })
    }

    /// Rows of plane `index`, each trimmed to its visible bytes.
    pub fn rows(&self, index: usize) -> impl Iterator<Item = &[u8]> {
        let (row, rows) = self.format.plane_sizes(self.width, self.height)[index];
        let plane = &self.planes[index];
        (0..rows).map(move |y| &plane.data[y * plane.stride..y * plane.stride + row])
    }
}

/// A frame as the model sees it: planar RGB, `f32` in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    /// Three planes, R then G then B, each `width * height` long.
    pub data: Vec<f32>,
}

impl RgbImage {
    pub fn new(width: usize, height: usize) -> Self {
        RgbImage {
            width,
            height,
            data: vec![0.0; 3 * width * height],
        }
    }

    /// A black image, or an error where its memory cannot be had.
    pub fn try_new(width: usize, height: usize) -> Result<Self> {
        let len = width
            .checked_mul(height)
            .and_then(|n| n.checked_mul(3))
            .ok_or_else(|| Error::InvalidSize(format!("{width}x{height} image")))?;
        Ok(RgbImage {
            width,
            height,
            data: try_zeroed(len)?,
        })
    }

    pub fn plane(&self, channel: usize) -> &[f32] {
        let n = self.width * self.height;
        &self.data[channel * n..(channel + 1) * n]
    }

    pub fn plane_mut(&mut self, channel: usize) -> &mut [f32] {
        let n = self.width * self.height;
        &mut self.data[channel * n..(channel + 1) * n]
    }

    /// The largest difference of any sample from `other`'s (same size).
    pub fn max_abs_diff(&self, other: &RgbImage) -> f32 {
        assert_eq!(
            (self.width, self.height),
            (other.width, other.height),
            "sizes differ"
        );
        self.data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    /// Interleaved 8-bit RGB, rounded and clamped.
    pub fn to_rgb8(&self) -> Vec<u8> {
        let n = self.width * self.height;
        let mut out = Vec::with_capacity(3 * n);
        for i in 0..n {
            for c in 0..3 {
                out.push(to_u8(self.data[c * n + i]));
            }
        }
        out
    }

    /// From interleaved 8-bit RGB.
    pub fn from_rgb8(width: usize, height: usize, rgb: &[u8]) -> Result<Self> {
        if rgb.len() != 3 * width * height {
            return Err(Error::InvalidFrame(format!(
                "{} bytes is not a {width}x{height} RGB image",
                rgb.len()
            )));
        }
        let mut img = RgbImage::new(width, height);
        let n = width * height;
        for (i, px) in rgb.chunks_exact(3).enumerate() {
            for (c, &v) in px.iter().enumerate() {
                img.data[c * n + i] = v as f32 / 255.0;
            }
        }
        Ok(img)
    }
}

/// A zeroed buffer of `len` values, or an error where the memory cannot be
/// had: sizes come from frames and model files, and an embedding
/// application must not be aborted by one.
pub fn try_zeroed(len: usize) -> Result<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        Error::InvalidSize(format!(
            "{} MiB for one buffer cannot be allocated",
            len.saturating_mul(4) >> 20
        ))
    })?;
    v.resize(len, 0.0);
    Ok(v)
}
