//! The video branch of `gendr upscale`, from decoded frames to parsed,
//! encoded video for the muxer.

use anyhow::Result;

use super::encode::Encoding;
use super::UpscaleOptions;
use crate::media::MediaInfo;

/// The elements between the decoder and the muxer, in link order.
pub(super) struct VideoChain {
    /// Where decoded frames enter.
    pub first: gst::Element,
    pub sr: gst::Element,
    /// Where encoded, parsed video leaves for the muxer.
    pub last: gst::Element,
    pub elements: Vec<gst::Element>,
    pub encoding: Encoding,
}

impl VideoChain {
    pub fn build(options: &UpscaleOptions, info: &MediaInfo) -> Result<VideoChain> {
        let queue_in = gst::ElementFactory::make("queue").build()?;
        let convert_in = gst::ElementFactory::make("videoconvert").build()?;
        let sr = options.sr.element()?;
        let convert_out = gst::ElementFactory::make("videoconvert").build()?;
        let queue_out = gst::ElementFactory::make("queue").build()?;
        let encoding = Encoding::choose(options, info);
        let (encoder, parser) = encoding.codec.encoder(options.crf, &options.preset)?;
        // GStreamer 1.22's muxers cannot store a display rotation: frames are
        // turned upright instead, so they still show as the source did.
        let upright = match info.orientation {
            Some(_) => Some(
                gst::ElementFactory::make("videoflip")
                    .property_from_str("video-direction", "auto")
                    .build()?,
            ),
            None => None,
        };
        // Without a format, 4:2:2 and 4:4:4 input would reach the encoder as
        // 4:4:4 (High 4:4:4, which most players cannot play).
        let samples = match encoding.format {
            None => None,
            Some(format) => Some(
                gst::ElementFactory::make("capsfilter")
                    .property(
                        "caps",
                        gst::Caps::builder("video/x-raw")
                            .field("format", format)
                            .build(),
                    )
                    .build()?,
            ),
        };
        let mut elements = vec![queue_in.clone(), convert_in];
        elements.extend(upright);
        elements.extend([sr.clone(), convert_out]);
        elements.extend(samples);
        elements.extend([encoder, parser, queue_out.clone()]);
        Ok(VideoChain {
            first: queue_in,
            sr,
            last: queue_out,
            elements,
            encoding,
        })
    }
}
