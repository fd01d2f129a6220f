//! The video encoders and containers `gendr upscale` writes.

use std::path::Path;

use anyhow::{bail, Result};

#[derive(
    clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    X264,
    X265,
}

impl Codec {
    pub(super) fn encoder(self, crf: u32, preset: &str) -> Result<(gst::Element, gst::Element)> {
        let preset_names = [
            "ultrafast",
            "superfast",
            "veryfast",
            "faster",
            "fast",
            "medium",
            "slow",
            "slower",
            "veryslow",
        ];
        if !preset_names.contains(&preset) {
            bail!(
                "unknown --preset {preset:?}; use one of {}",
                preset_names.join(", ")
            );
        }
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
            "{}: unknown output container {ext:?}; use .mp4, .mkv or .mov",
            path.display()
        ),
    };
    Ok(gst::ElementFactory::make(factory).build()?)
}
