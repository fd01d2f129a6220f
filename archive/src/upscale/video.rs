//! The video branch of `gendr upscale`, from decoded frames to parsed,
//! encoded video for the muxer.

use std::sync::Mutex;

use crate::error::{bail, Context, Result};
use gst::prelude::*;

use super::encode::Encoding;
use crate::media::h264_vui;
use crate::media::{FieldOrder, MediaInfo};
use crate::request::{Codec, Deinterlace, UpscaleOptions};

/// GStreamer `deinterlace` method, chosen by measurement (docs/fidelity.md):
/// on 25i clips made from 50p sources, vfir and yadif came out equal on
/// average (32.9 dB against the progressive frames, linear 32.3, greedyl
/// 32.2; greedyh and tomsmocomp broken on I420 in 1.22, avdeinterlace 20),
/// and 1.22's yadif stamps its first and last frames wrongly and makes 102
/// frames of 100 fields.
const DEINTERLACE_METHOD: &str = "vfir";

/// Resampler for sizes other than the model's scale: of videoscale's methods
/// Lanczos and Catmull-Rom kept the most of a 320×180 clip through a
/// 0.75× and back (34.8 dB; bilinear 33.4, sinc 29.3), see docs/fidelity.md.
const RESAMPLE_METHOD: &str = "lanczos";

/// How the input's fields are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fields {
    /// Progressive input, or `off` on it: nothing to do.
    AsTheyAre,
    /// Deinterlaced, `per_field` giving a frame for each field; `forced`
    /// also deinterlaces frames the stream calls progressive.
    Deinterlaced {
        order: FieldOrder,
        per_field: bool,
        forced: bool,
    },
    /// Interlaced input taken as progressive (`off`), and tagged so.
    Woven(FieldOrder),
}

fn fields(options: &UpscaleOptions, info: &MediaInfo) -> Fields {
    let order = info.interlaced.unwrap_or(FieldOrder::TopFirst);
    match (options.deinterlace, info.interlaced) {
        (Deinterlace::Auto, Some(order)) => Fields::Deinterlaced {
            order,
            per_field: false,
            forced: false,
        },
        (Deinterlace::Auto, None) | (Deinterlace::Off, None) => Fields::AsTheyAre,
        (Deinterlace::Off, Some(order)) => Fields::Woven(order),
        (Deinterlace::Frame | Deinterlace::Field, _) => Fields::Deinterlaced {
            order,
            per_field: options.deinterlace == Deinterlace::Field,
            forced: true,
        },
    }
}

fn order_text(order: FieldOrder) -> &'static str {
    match order {
        FieldOrder::TopFirst => "top field first",
        FieldOrder::BottomFirst => "bottom field first",
    }
}

/// A frame rate as people write it (25, 29.97), `times` the input's.
fn rate_text(rate: gst::Fraction, times: i32) -> String {
    let (n, d) = (rate.numer() * times, rate.denom());
    match (n, d) {
        (0, _) | (_, 0) => format!("{times}× the input's variable frame rate"),
        (n, 1) => format!("{n} fps"),
        (n, d) => format!("{:.3} fps", f64::from(n) / f64::from(d)),
    }
}

/// The frame size and pixel aspect after the upright turn, which swaps
/// them for a quarter turn.
fn upright_size(info: &MediaInfo) -> (u32, u32, gst::Fraction) {
    let quarter = info
        .orientation
        .as_deref()
        .is_some_and(|o| o.ends_with("-90") || o.ends_with("-270"));
    if quarter {
        let par = info.pixel_aspect;
        (
            info.height,
            info.width,
            gst::Fraction::new(par.denom(), par.numer()),
        )
    } else {
        (info.width, info.height, info.pixel_aspect)
    }
}

/// The output size asked for with `--scale`, `--width` or `--height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OutputSize {
    pub width: u32,
    pub height: u32,
}

impl OutputSize {
    /// The size the options ask for (None: the model's own scale), or one
    /// line saying why it cannot be made. Pixels keep their aspect, so the
    /// frame keeps the input's width to height; sizes are even for 4:2:0.
    pub fn requested(options: &UpscaleOptions, info: &MediaInfo) -> Result<Option<OutputSize>> {
        let (w, h, _) = upright_size(info);
        let (w, h) = (f64::from(w), f64::from(h));
        let even = |v: f64| ((v / 2.0).round() * 2.0).max(2.0);
        let size = match (options.scale, options.width, options.height) {
            (None, None, None) => return Ok(None),
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                bail!(
                    Request,
                    "--scale sets both edges; give it alone, or --width and/or --height without it"
                )
            }
            (Some(f), None, None) => {
                if !(f.is_finite() && f > 0.0) {
                    bail!(
                        Request,
                        "--scale {f} is not a size; give a factor above 0, e.g. --scale 1.5"
                    );
                }
                (even(w * f), even(h * f))
            }
            (None, width, height) => {
                for (flag, value) in [("--width", width), ("--height", height)] {
                    if value == Some(0) {
                        bail!(Request, "{flag} 0 is not a size; give at least 2 pixels");
                    }
                }
                match (width, height) {
                    (Some(width), Some(height)) => {
                        let (width, height) = (f64::from(width), f64::from(height));
                        let fits = (width - height * w / h).abs() <= 1.0
                            || (height - width * h / w).abs() <= 1.0;
                        if !fits {
                            bail!(
                                Request,
                                "--width {width} --height {height} would change the picture's shape \
                                 (the input is {w}x{h}); give only one of them, e.g. --height {height} makes {}x{height}",
                                even(height * w / h)
                            );
                        }
                        (width, height)
                    }
                    (Some(width), None) => (f64::from(width), even(f64::from(width) * h / w)),
                    (None, Some(height)) => (even(f64::from(height) * w / h), f64::from(height)),
                    (None, None) => unreachable!("handled above"),
                }
            }
        };
        let max = element_max_edge().unwrap_or(16384);
        if size.0 > f64::from(max) || size.1 > f64::from(max) {
            bail!(
                Request,
                "the output would be {}x{}, over the {max}-pixel edge limit; ask for a smaller size",
                size.0,
                size.1
            );
        }
        for (flag, value) in [("--width", options.width), ("--height", options.height)] {
            if let Some(v) = value.filter(|v| v % 2 == 1) {
                bail!(
                    Request,
                    "{flag} {v} is odd; 4:2:0 video needs even edges: use {} or {}",
                    v - 1,
                    v + 1
                );
            }
        }
        Ok(Some(OutputSize {
            width: size.0 as u32,
            height: size.1 as u32,
        }))
    }
}

/// What happens to the input's fields and size, for the start line.
/// Output frames per input frame: two when each field becomes a frame.
pub(super) fn frames_per_input_frame(options: &UpscaleOptions, info: &MediaInfo) -> u64 {
    match fields(options, info) {
        Fields::Deinterlaced {
            per_field: true, ..
        } => 2,
        _ => 1,
    }
}

pub(super) fn describe(options: &UpscaleOptions, info: &MediaInfo) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    match fields(options, info) {
        Fields::AsTheyAre => {}
        Fields::Deinterlaced {
            order, per_field, ..
        } => {
            let what = match info.interlaced {
                Some(order) => format!("interlaced ({}) input", order_text(order)),
                None => format!(
                    "input marked progressive taken as interlaced ({}) as --deinterlace asks, and",
                    order_text(order)
                ),
            };
            let result = if per_field {
                format!("to one frame per field at {}", rate_text(info.framerate, 2))
            } else {
                format!("at {}", rate_text(info.framerate, 1))
            };
            // GStreamer 1.22's deinterlace takes 8-bit formats only.
            let depth = if info.bit_depth > 8 {
                format!(
                    " at 8 bits (GStreamer's deinterlacer takes no more; the input is {}-bit)",
                    info.bit_depth
                )
            } else {
                String::new()
            };
            lines.push(format!(
                "{what} deinterlaced with {DEINTERLACE_METHOD} (GStreamer deinterlace){depth} {result}; \
                 the output is progressive"
            ));
        }
        Fields::Woven(order) => lines.push(format!(
            "interlaced ({}) input not deinterlaced (--deinterlace off): each frame's two fields \
             are upscaled together as one picture and the output is tagged progressive",
            order_text(order)
        )),
    }
    if let Some(size) = OutputSize::requested(options, info)? {
        let (w, h, _) = upright_size(info);
        let scale = gendr::presets::find(&options.sr.model).map(|p| p.scale as u32);
        let how = match scale {
            Some(s) if (size.width, size.height) == (w * s, h * s) => {
                format!("the model's ×{s}, no resampling")
            }
            Some(s) if size.width > w * s || size.height > h * s => format!(
                "the model's ×{s} ({}x{}) resampled with {RESAMPLE_METHOD} beyond the model's scale: \
                 the extra size adds no detail",
                w * s,
                h * s
            ),
            Some(s) => format!(
                "the model's ×{s} ({}x{}) resampled with {RESAMPLE_METHOD}",
                w * s,
                h * s
            ),
            None => format!("the model's output resampled with {RESAMPLE_METHOD}"),
        };
        lines.push(format!(
            "output {}x{} from {w}x{h}: {how}",
            size.width, size.height
        ));
    }
    Ok(lines)
}

/// GStreamer 1.22's deinterlace sends its last field again at the end of a
/// stream, stamped before the frame it follows: frames that do not move
/// forward in time are dropped.
fn drop_repeats(deinterlace: &gst::Element) -> Result<()> {
    let last = Mutex::new(None::<gst::ClockTime>);
    deinterlace
        .static_pad("src")
        .context("deinterlace src")?
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let Some(pts) = info.buffer().and_then(|b| b.pts()) else {
                return gst::PadProbeReturn::Ok;
            };
            let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|l| pts <= l) {
                return gst::PadProbeReturn::Drop;
            }
            *last = Some(pts);
            gst::PadProbeReturn::Ok
        });
    Ok(())
}

/// The raw format with the chroma of `decoded` at `bit_depth` (8 or 10):
/// what `--pix-fmt keep` encodes. RGB keeps full chroma (4:4:4); 4:1:1
/// (DV) becomes 4:2:2, the nearest layout the encoders take that holds it.
fn kept_format(decoded: &gst_video::VideoInfo, bit_depth: u32) -> &'static str {
    let info = decoded.format_info();
    let (w_sub, h_sub) = (info.w_sub().get(1), info.h_sub().get(1));
    let chroma = if info.is_rgb() {
        444
    } else if info.is_gray() {
        420
    } else {
        match (w_sub, h_sub) {
            (Some(0), Some(0)) => 444,
            (Some(_), Some(0)) => 422,
            _ => 420,
        }
    };
    match (chroma, bit_depth > 8) {
        (444, false) => "Y444",
        (444, true) => "Y444_10LE",
        (422, false) => "Y42B",
        (422, true) => "I422_10LE",
        (_, false) => "I420",
        (_, true) => "I420_10LE",
    }
}

/// `--pix-fmt keep`: once the decoded caps reach `first`, `filter` (before
/// the encoder) asks for the decoded chroma at `bit_depth`; without it the
/// conversion after the model would hand the encoder 8-bit 4:4:4 whatever
/// the input was.
fn keep_decoded_samples(first: &gst::Element, filter: &gst::Element, bit_depth: u32) -> Result<()> {
    let filter = filter.downgrade();
    first.static_pad("sink").context("queue sink")?.add_probe(
        gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            let Some(gst::PadProbeData::Event(event)) = &info.data else {
                return gst::PadProbeReturn::Ok;
            };
            let gst::EventView::Caps(caps) = event.view() else {
                return gst::PadProbeReturn::Ok;
            };
            if let (Ok(decoded), Some(filter)) = (
                gst_video::VideoInfo::from_caps(caps.caps()),
                filter.upgrade(),
            ) {
                let format = kept_format(&decoded, bit_depth);
                filter.set_property(
                    "caps",
                    gst::Caps::builder("video/x-raw")
                        .field("format", format)
                        .build(),
                );
            }
            gst::PadProbeReturn::Ok
        },
    );
    Ok(())
}

/// Frame heights of 625-line (PAL/SECAM) video, whose primaries are EBU
/// Tech 3213 (bt470bg).
const PAL_HEIGHTS: [u32; 2] = [576, 288];

/// Untagged 625-line video: decoders fill in GStreamer's SD default, the
/// 525-line smpte170m primaries, whatever the height; the decoded caps
/// reaching `first` are given bt470bg primaries instead (a tag only: the
/// pixels are not converted).
fn pal_primaries(first: &gst::Element) -> Result<()> {
    first.static_pad("sink").context("queue sink")?.add_probe(
        gst::PadProbeType::EVENT_DOWNSTREAM,
        |_, info| {
            let Some(gst::PadProbeData::Event(event)) = &info.data else {
                return gst::PadProbeReturn::Ok;
            };
            let gst::EventView::Caps(caps) = event.view() else {
                return gst::PadProbeReturn::Ok;
            };
            let Ok(decoded) = gst_video::VideoInfo::from_caps(caps.caps()) else {
                return gst::PadProbeReturn::Ok;
            };
            if !decoded.is_yuv() {
                return gst::PadProbeReturn::Ok;
            }
            let c = decoded.colorimetry();
            let colorimetry = gst_video::VideoColorimetry::new(
                c.range(),
                c.matrix(),
                c.transfer(),
                gst_video::VideoColorPrimaries::Bt470bg,
            );
            let mut caps = caps.caps_owned();
            if let Some(s) = caps.make_mut().structure_mut(0) {
                s.set("colorimetry", colorimetry.to_string());
            }
            info.data = Some(gst::PadProbeData::Event(gst::event::Caps::new(&caps)));
            gst::PadProbeReturn::Ok
        },
    );
    Ok(())
}

/// A source tagged matrix bt470bg (5) keeps its tag: GStreamer 1.22's one
/// BT.601 matrix (the same coefficients) is written as smpte170m (6).
/// x265enc takes the tag in its option-string; x264enc sets its VUI from
/// the caps after its option-string, so the SPS it writes is rewritten (in
/// the caps' codec_data and in the stream). The container's own colour
/// tag is rewritten after muxing (finishing).
fn keep_bt470bg_matrix(encoder: &gst::Element, codec: Codec) -> Result<()> {
    let matrix = crate::finishing::MATRIX_BT470BG;
    if codec == Codec::X265 {
        let options = encoder.property::<Option<String>>("option-string");
        let kept = match options.filter(|o| !o.is_empty()) {
            Some(options) => format!("{options}:colormatrix=bt470bg"),
            None => "colormatrix=bt470bg".into(),
        };
        encoder.set_property("option-string", kept);
        return Ok(());
    }
    // Only keyframes carry an SPS in the stream (an avc stream has one in
    // its codec_data too); how NAL units are delimited comes from the caps:
    // None for a byte stream, else the avc length size.
    let framing = Mutex::new(None::<usize>);
    encoder.static_pad("src").context("x264enc src")?.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            match &mut info.data {
                Some(gst::PadProbeData::Buffer(buffer))
                    if !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT) =>
                {
                    let length_size = *framing.lock().unwrap_or_else(|p| p.into_inner());
                    let fixed = buffer
                        .map_readable()
                        .ok()
                        .and_then(|map| match length_size {
                            None => h264_vui::byte_stream_with_matrix(&map, matrix),
                            Some(size) => h264_vui::avc_with_matrix(&map, size, matrix),
                        });
                    if let Some(fixed) = fixed {
                        let mut rewritten = gst::Buffer::from_mut_slice(fixed);
                        let _ = buffer.copy_into(
                            rewritten.make_mut(),
                            gst::BufferCopyFlags::FLAGS
                                | gst::BufferCopyFlags::TIMESTAMPS
                                | gst::BufferCopyFlags::META,
                            ..,
                        );
                        *buffer = rewritten;
                    }
                }
                Some(gst::PadProbeData::Event(event)) => {
                    if let gst::EventView::Caps(caps) = event.view() {
                        let mut caps = caps.caps_owned();
                        let codec_data = caps
                            .structure(0)
                            .and_then(|s| s.get::<gst::Buffer>("codec_data").ok())
                            .and_then(|data| data.map_readable().ok().map(|m| m.to_vec()));
                        *framing.lock().unwrap_or_else(|p| p.into_inner()) =
                            codec_data.as_deref().and_then(h264_vui::avcc_length_size);
                        let fixed = codec_data
                            .as_deref()
                            .and_then(|data| h264_vui::avcc_with_matrix(data, matrix));
                        if let (Some(fixed), Some(s)) = (fixed, caps.make_mut().structure_mut(0)) {
                            s.set("codec_data", gst::Buffer::from_mut_slice(fixed));
                            *event = gst::event::Caps::new(&caps);
                        }
                    }
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
    Ok(())
}

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
        if info.coded_matrix == Some(crate::finishing::MATRIX_BT470BG) {
            keep_bt470bg_matrix(&encoder, encoding.codec)?;
        }
        // Before the model, and before any turn, so that fields stay rows.
        let field_handling = match fields(options, info) {
            Fields::AsTheyAre => None,
            Fields::Deinterlaced {
                order,
                per_field,
                forced,
            } => {
                let element = gst::ElementFactory::make("deinterlace")
                    .property_from_str("method", DEINTERLACE_METHOD)
                    .property_from_str("mode", if forced { "interlaced" } else { "auto" })
                    // One frame per frame comes from the field shown first.
                    .property_from_str(
                        "fields",
                        match (per_field, order) {
                            (true, _) => "all",
                            (false, FieldOrder::TopFirst) => "top",
                            (false, FieldOrder::BottomFirst) => "bottom",
                        },
                    )
                    .build()?;
                drop_repeats(&element)?;
                Some(element)
            }
            // Otherwise the encoder is told the frames are interlaced and
            // writes them as fields, in an order of its own.
            Fields::Woven(_) => Some(
                gst::ElementFactory::make("capssetter")
                    .property(
                        "caps",
                        gst::Caps::builder("video/x-raw")
                            .field("interlace-mode", "progressive")
                            .build(),
                    )
                    .build()?,
            ),
        };
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
        // The model's own scale, then a resample: never a second model pass.
        let resample = match OutputSize::requested(options, info)? {
            Some(size) => {
                let (_, _, par) = upright_size(info);
                let scale = gst::ElementFactory::make("videoscale")
                    .property_from_str("method", RESAMPLE_METHOD)
                    .property("add-borders", false)
                    .build()?;
                let fixed = gst::ElementFactory::make("capsfilter")
                    .property(
                        "caps",
                        gst::Caps::builder("video/x-raw")
                            .field("width", size.width as i32)
                            .field("height", size.height as i32)
                            .field("pixel-aspect-ratio", par)
                            .build(),
                    )
                    .build()?;
                vec![scale, fixed]
            }
            None => Vec::new(),
        };
        // Without a format, 4:2:2 and 4:4:4 input would reach the encoder as
        // 4:4:4 (High 4:4:4, which most players cannot play).
        let samples = match encoding.format {
            None => {
                let filter = gst::ElementFactory::make("capsfilter").build()?;
                keep_decoded_samples(&queue_in, &filter, encoding.bit_depth)?;
                filter
            }
            Some(format) => gst::ElementFactory::make("capsfilter")
                .property(
                    "caps",
                    gst::Caps::builder("video/x-raw")
                        .field("format", format)
                        .build(),
                )
                .build()?,
        };
        if !info.colour_tagged && PAL_HEIGHTS.contains(&info.height) {
            pal_primaries(&queue_in)?;
        }
        let mut elements = vec![queue_in.clone(), convert_in];
        elements.extend(field_handling);
        elements.extend(upright);
        elements.push(sr.clone());
        elements.extend(resample);
        elements.extend([convert_out, samples]);
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

/// The largest frame edge gendrsr negotiates, read from its src template so
/// the element stays the one source of that limit.
pub(super) fn element_max_edge() -> Option<u32> {
    let factory = gst::ElementFactory::find("gendrsr")?;
    let template = factory
        .static_pad_templates()
        .into_iter()
        .find(|t| t.direction() == gst::PadDirection::Src)?;
    let caps = template.caps();
    let width = caps.structure(0)?.get::<gst::IntRange<i32>>("width").ok()?;
    u32::try_from(width.max()).ok()
}
