//! The video encoders and containers `gendr upscale` writes.

use std::path::Path;

use crate::error::{bail, Result};

use crate::media::MediaInfo;
use crate::request::{Codec, PixFmt, UpscaleOptions};

/// The deepest samples gendrsr takes and gives.
const DEEPEST: u32 = 10;

/// What the video is encoded as, decided once from the options and the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding {
    pub codec: Codec,
    /// The raw format the encoder is given; `None` keeps the decoded
    /// chroma subsampling (`--pix-fmt keep`).
    pub format: Option<&'static str>,
    /// Bits per sample written.
    pub bit_depth: u32,
    /// Bits per sample of the input, as coded.
    pub input_depth: u32,
    /// The input's chroma subsampling, where its caps tell it.
    pub input_chroma: Option<&'static str>,
}

impl Encoding {
    /// Deeper than 8-bit input stays deep: 4:2:0 10-bit, with x265 (Main 10)
    /// unless x264 (High 10) is asked for.
    pub fn choose(options: &UpscaleOptions, info: &MediaInfo) -> Encoding {
        let deep = info.bit_depth > 8;
        let (format, bit_depth) = match options.pix_fmt {
            PixFmt::Yuv420p => (Some("I420"), 8),
            PixFmt::Yuv420p10 => (Some("I420_10LE"), DEEPEST),
            PixFmt::Keep => (None, if deep { DEEPEST } else { 8 }),
            PixFmt::Auto if deep => (Some("I420_10LE"), DEEPEST),
            PixFmt::Auto => (Some("I420"), 8),
        };
        let codec = options.codec.unwrap_or(if bit_depth > 8 {
            Codec::X265
        } else {
            Codec::X264
        });
        Encoding {
            codec,
            format,
            bit_depth,
            input_depth: info.bit_depth,
            input_chroma: info.chroma,
        }
    }

    /// For the start line: what is written, and what differs from the input.
    pub fn describe(&self) -> String {
        let codec = match self.codec {
            Codec::X264 => "x264",
            Codec::X265 => "x265",
        };
        let samples = match (self.format, self.input_chroma) {
            // Chroma reduced: said as such.
            (Some(_), Some(chroma)) if chroma != "4:2:0" => {
                format!("{chroma} → 4:2:0 {}-bit", self.bit_depth)
            }
            (Some(_), _) => format!("4:2:0 {}-bit", self.bit_depth),
            (None, _) => format!(
                "{}-bit in the input's chroma subsampling (--pix-fmt keep)",
                self.bit_depth
            ),
        };
        let note = if self.input_depth > DEEPEST && self.bit_depth == DEEPEST {
            format!(
                " (the input's {} bits reduced to {DEEPEST}, the deepest gendrsr takes)",
                self.input_depth
            )
        } else if self.input_depth > self.bit_depth {
            format!(
                " (reduced from the input's {} bits as asked)",
                self.input_depth
            )
        } else {
            String::new()
        };
        format!("{codec} {samples}{note}")
    }
}

impl Codec {
    pub(super) fn encoder(self, crf: u32, preset: &str) -> Result<(gst::Element, gst::Element)> {
        let (encoder, parser) = match self {
            Codec::X264 => (
                gst::ElementFactory::make("x264enc")
                    .property_from_str("pass", "qual")
                    .property("quantizer", crf)
                    .property_from_str("speed-preset", preset)
                    .build()?,
                gst::ElementFactory::make("h264parse").build()?,
            ),
            Codec::X265 => (
                gst::ElementFactory::make("x265enc")
                    .property("option-string", format!("crf={crf}"))
                    .property_from_str("speed-preset", preset)
                    .build()?,
                gst::ElementFactory::make("h265parse").build()?,
            ),
        };
        Ok((encoder, parser))
    }
}

pub fn muxer_for(path: &Path) -> Result<gst::Element> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let factory = match ext.as_str() {
        "mp4" | "m4v" => "mp4mux",
        "mkv" => "matroskamux",
        "mov" => "qtmux",
        _ => bail!(
            Request,
            "{}: unknown output container {ext:?}; use .mp4, .mkv or .mov",
            path.display()
        ),
    };
    Ok(gst::ElementFactory::make(factory).build()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gst::prelude::*;

    /// The command line's CRF range is what both encoders take.
    #[test]
    fn the_crf_range_is_what_the_encoders_take() {
        gst::init().unwrap();
        let x264 = gst::ElementFactory::make("x264enc").build().unwrap();
        let quantizer = x264.find_property("quantizer").unwrap();
        let range = quantizer
            .downcast_ref::<gst::glib::ParamSpecUInt>()
            .unwrap();
        assert_eq!(
            (range.minimum(), range.maximum()),
            (*gendr::limits::CRF.start(), *gendr::limits::CRF.end())
        );
        for crf in [*gendr::limits::CRF.start(), *gendr::limits::CRF.end()] {
            for codec in [Codec::X264, Codec::X265] {
                codec.encoder(crf, "medium").unwrap();
            }
        }
    }
}
