//! The glue between GStreamer and the core's frames: the caps gendrsr
//! takes and gives, the output buffer pool, and copies between buffers and
//! [`Frame`]s.

use gst::glib;
use gst::prelude::*;
use gst_video::prelude::*;

use gendr::frame::{Colorimetry, Frame, PixelFormat, Plane, YuvMatrix, YuvRange};

/// The largest output edge: GStreamer's video formats and most encoders stop here.
pub const MAX_OUTPUT_EDGE: i32 = 16384;

pub fn pixel_format(format: gst_video::VideoFormat) -> Option<PixelFormat> {
    use gst_video::VideoFormat as F;
    Some(match format {
        F::I420 => PixelFormat::I420,
        F::Nv12 => PixelFormat::Nv12,
        F::I42010le => PixelFormat::I420_10,
        F::P01010le => PixelFormat::P010,
        F::Rgb => PixelFormat::Rgb,
        F::Bgr => PixelFormat::Bgr,
        F::Rgbx => PixelFormat::Rgbx,
        F::Bgrx => PixelFormat::Bgrx,
        F::Rgba => PixelFormat::Rgba,
        F::Bgra => PixelFormat::Bgra,
        _ => return None,
    })
}

/// The colour coding of a stream as its resolved caps say (see
/// [`resolved_caps`]); the output caps carry the same, so colours never change.
pub fn colorimetry(info: &gst_video::VideoInfo) -> Colorimetry {
    let c = info.colorimetry();
    Colorimetry {
        matrix: match c.matrix() {
            gst_video::VideoColorMatrix::Bt601 => YuvMatrix::Bt601,
            gst_video::VideoColorMatrix::Bt709 => YuvMatrix::Bt709,
            // Unknown: SD is BT.601, HD and up BT.709.
            _ if info.height() < 720 => YuvMatrix::Bt601,
            _ => YuvMatrix::Bt709,
        },
        range: match c.range() {
            gst_video::VideoColorRange::Range0_255 => YuvRange::Full,
            _ => YuvRange::Limited,
        },
    }
}

pub fn sized_caps(max: i32) -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format_list([
            gst_video::VideoFormat::I420,
            gst_video::VideoFormat::Nv12,
            gst_video::VideoFormat::I42010le,
            gst_video::VideoFormat::P01010le,
            gst_video::VideoFormat::Rgb,
            gst_video::VideoFormat::Bgr,
            gst_video::VideoFormat::Rgbx,
            gst_video::VideoFormat::Bgrx,
            gst_video::VideoFormat::Rgba,
            gst_video::VideoFormat::Bgra,
        ])
        .width_range(1..=max)
        .height_range(1..=max)
        .build()
}

/// Multiplies (towards src) or divides (towards sink) the sizes in `caps` by
/// `scale`. Sizes that cannot be divided exactly drop out.
pub fn transform_caps(caps: &gst::Caps, direction: gst::PadDirection, scale: u32) -> gst::Caps {
    if caps.is_any() {
        return caps.clone();
    }
    let scale = scale as i32;
    let map = |v: &glib::SendValue| -> Option<glib::SendValue> {
        if let Ok(n) = v.get::<i32>() {
            return match direction {
                gst::PadDirection::Sink => n.checked_mul(scale).map(|n| n.to_send_value()),
                _ => (n % scale == 0).then(|| (n / scale).to_send_value()),
            };
        }
        let range = v.get::<gst::IntRange<i32>>().ok()?;
        let (lo, hi) = match direction {
            gst::PadDirection::Sink => (
                range.min().saturating_mul(scale),
                range.max().saturating_mul(scale),
            ),
            _ => ((range.min() + scale - 1) / scale, range.max() / scale),
        };
        match lo.cmp(&hi) {
            std::cmp::Ordering::Less => Some(gst::IntRange::new(lo, hi).to_send_value()),
            std::cmp::Ordering::Equal => Some(lo.to_send_value()),
            std::cmp::Ordering::Greater => None,
        }
    };
    let mut out = gst::Caps::new_empty();
    {
        let out = out.get_mut().unwrap();
        for (s, features) in caps.iter_with_features() {
            let mut s = s.to_owned();
            let mut ok = true;
            for field in ["width", "height"] {
                if let Ok(v) = s.value(field) {
                    match map(v) {
                        Some(v) => s.set_value(field, v),
                        None => ok = false,
                    }
                }
            }
            if ok {
                out.append_structure_full(s, Some(features.to_owned()));
            }
        }
    }
    out
}

/// `caps` with their colorimetry written out in full: the fields the
/// stream gives, and GStreamer's defaults for its size only where it gives
/// none. Left partial (a decoder's `1:0:0:0`, full range and nothing else),
/// GStreamer replaces the whole of it by the size's default and full-range
/// video would be read as studio range; left out, a player takes the default
/// of the output's size (BT.709 for HD) and shifts an SD input's colours.
pub fn resolved_caps(caps: &gst::Caps) -> Result<(gst::Caps, gst_video::VideoInfo), String> {
    use gst_video::{
        VideoColorMatrix, VideoColorPrimaries, VideoColorRange, VideoTransferFunction,
    };
    let info =
        gst_video::VideoInfo::from_caps(caps).map_err(|_| format!("unusable caps {caps}"))?;
    if !info.is_yuv() {
        return Ok((caps.clone(), info));
    }
    let default = info.colorimetry();
    let given = caps
        .structure(0)
        .and_then(|s| s.get::<&str>("colorimetry").ok())
        .and_then(|c| c.parse::<gst_video::VideoColorimetry>().ok())
        .unwrap_or(default);
    let merged = gst_video::VideoColorimetry::new(
        if given.range() == VideoColorRange::Unknown {
            default.range()
        } else {
            given.range()
        },
        if given.matrix() == VideoColorMatrix::Unknown {
            default.matrix()
        } else {
            given.matrix()
        },
        if given.transfer() == VideoTransferFunction::Unknown {
            default.transfer()
        } else {
            given.transfer()
        },
        if given.primaries() == VideoColorPrimaries::Unknown {
            default.primaries()
        } else {
            given.primaries()
        },
    );
    let mut caps = caps.clone();
    if let Some(s) = caps.make_mut().structure_mut(0) {
        s.set("colorimetry", merged.to_string());
    }
    let info =
        gst_video::VideoInfo::from_caps(&caps).map_err(|_| format!("unusable caps {caps}"))?;
    Ok((caps, info))
}

/// The output caps for resolved input caps: sizes scaled, everything else kept.
pub fn output_caps(
    in_caps: &gst::Caps,
    scale: u32,
) -> Result<(gst::Caps, gst_video::VideoInfo), String> {
    let caps = transform_caps(in_caps, gst::PadDirection::Sink, scale);
    let info =
        gst_video::VideoInfo::from_caps(&caps).map_err(|e| format!("output caps {caps}: {e}"))?;
    Ok((caps, info))
}

/// Copies a buffer into a [`Frame`].
pub fn frame_from_buffer(
    buffer: &gst::Buffer,
    info: &gst_video::VideoInfo,
) -> Result<Frame, String> {
    let vframe = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), info)
        .map_err(|_| "buffer does not match its caps".to_string())?;
    let format = pixel_format(info.format())
        .ok_or_else(|| format!("format {} is not supported", info.format()))?;
    let planes = (0..vframe.n_planes())
        .map(|i| {
            let stride = vframe.plane_stride()[i as usize] as usize;
            let data = vframe.plane_data(i).map(<[u8]>::to_vec).unwrap_or_default();
            Plane { data, stride }
        })
        .collect();
    Frame::from_planes(
        format,
        info.width() as usize,
        info.height() as usize,
        colorimetry(info),
        planes,
    )
    .map_err(|e| e.to_string())
}

/// Where output frames are written: a buffer pool agreed with downstream
/// for the output caps, deactivated when dropped.
pub struct OutputPool {
    pub info: gst_video::VideoInfo,
    pool: gst::BufferPool,
}

impl OutputPool {
    /// Asks downstream how output frames should be allocated, as a video
    /// decoder's `decide_allocation` does: downstream's pool if it offers one
    /// that takes our caps, else a video pool of our own; with `VideoMeta` on
    /// the buffers where downstream reads it, so padded layouts need no copy.
    pub fn negotiate(
        srcpad: &gst::Pad,
        caps: &gst::Caps,
        info: gst_video::VideoInfo,
    ) -> Result<Self, String> {
        let mut query = gst::query::Allocation::new(Some(caps), true);
        let answered = srcpad.peer_query(&mut query);
        let video_meta = answered
            && query
                .find_allocation_meta::<gst_video::VideoMeta>()
                .is_some();
        let size = u32::try_from(info.size()).map_err(|_| format!("{caps}: frames too large"))?;
        let offered = answered.then(|| query.allocation_pools().next()).flatten();
        let (min, max) = offered
            .as_ref()
            .map_or((0, 0), |&(_, _, min, max)| (min, max));
        if let Some((Some(pool), ..)) = offered {
            if configure(&pool, caps, size, min, max, video_meta).is_ok() {
                return Ok(OutputPool { info, pool });
            }
        }
        // Unbounded, so that acquiring never waits on a flush it cannot see.
        let pool = gst_video::VideoBufferPool::new().upcast::<gst::BufferPool>();
        configure(&pool, caps, size, min, 0, video_meta)
            .map_err(|e| format!("no buffer pool for {caps}: {e}"))?;
        Ok(OutputPool { info, pool })
    }

    /// An empty output buffer; fails with the pool's flow (flushing, say).
    pub fn acquire(&self) -> Result<gst::Buffer, gst::FlowError> {
        self.pool.acquire_buffer(None)
    }
}

/// Writes `frame` into `buffer` laid out as `info` (or as its `VideoMeta`),
/// with the input buffer's timestamps and flags.
pub fn write_frame(
    frame: &Frame,
    input: &gst::Buffer,
    buffer: &mut gst::BufferRef,
    info: &gst_video::VideoInfo,
) -> Result<(), String> {
    if (frame.width, frame.height) != (info.width() as usize, info.height() as usize) {
        return Err(format!(
            "{}x{} frame for {}x{} caps",
            frame.width,
            frame.height,
            info.width(),
            info.height()
        ));
    }
    buffer.set_pts(input.pts());
    buffer.set_dts(input.dts());
    buffer.set_duration(input.duration());
    buffer.set_offset(input.offset());
    buffer.set_offset_end(input.offset_end());
    buffer.set_flags(input.flags() & !(gst::BufferFlags::GAP | gst::BufferFlags::TAG_MEMORY));
    let mut vframe = gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, info)
        .map_err(|e| e.to_string())?;
    for i in 0..frame.planes.len() {
        let stride = vframe.plane_stride()[i] as usize;
        let dst = vframe.plane_data_mut(i as u32).map_err(|e| e.to_string())?;
        for (y, row) in frame.rows(i).enumerate() {
            dst[y * stride..y * stride + row.len()].copy_from_slice(row);
        }
    }
    Ok(())
}

impl Drop for OutputPool {
    fn drop(&mut self) {
        // Buffers still downstream return to an inactive pool and are freed.
        let _ = self.pool.set_active(false);
    }
}

/// The frames per second frames are numbered at where the caps give no rate.
const NOMINAL_RATE: u64 = 30;

/// A frame's number in its stream for the temporal stage's anchors: its
/// timestamp in frame durations (at a nominal 30 per second where the caps
/// give no rate), the same wherever a run of the stream starts; None
/// without a timestamp.
pub fn frame_number(pts: Option<gst::ClockTime>, rate: gst::Fraction) -> Option<u64> {
    let ns = u128::from(pts?.nseconds());
    let (numer, denom) = match (u128::try_from(rate.numer()), u128::try_from(rate.denom())) {
        (Ok(n), Ok(d)) if n > 0 && d > 0 => (n, d),
        _ => (u128::from(NOMINAL_RATE), 1),
    };
    let per = 1_000_000_000 * denom;
    u64::try_from((ns * numer + per / 2) / per).ok()
}

fn configure(
    pool: &gst::BufferPool,
    caps: &gst::Caps,
    size: u32,
    min: u32,
    max: u32,
    video_meta: bool,
) -> Result<(), glib::BoolError> {
    let mut config = pool.config();
    config.set_params(Some(caps), size, min, max);
    if video_meta {
        config.add_option(gst_video::BUFFER_POOL_OPTION_VIDEO_META);
    }
    pool.set_config(config)?;
    pool.set_active(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_numbered_by_their_timestamp_in_frame_durations() {
        let at = |ns: u64, n: i32, d: i32| {
            frame_number(
                Some(gst::ClockTime::from_nseconds(ns)),
                gst::Fraction::new(n, d),
            )
        };
        // 30000/1001: frame 1001 is at 33.4 s, rounded to the nearest frame.
        assert_eq!(at(33_400_033_333, 30000, 1001), Some(1001));
        assert_eq!(at(33_390_000_000, 30000, 1001), Some(1001));
        assert_eq!(at(0, 25, 1), Some(0));
        assert_eq!(at(39_999_999, 25, 1), Some(1));
        // No rate (variable-rate streams): a nominal 30 per second.
        assert_eq!(at(1_000_000_000, 0, 1), Some(30));
        assert_eq!(frame_number(None, gst::Fraction::new(25, 1)), None);
    }

    fn caps(s: &str) -> gst::Caps {
        gst::init().unwrap();
        s.parse().unwrap()
    }

    #[test]
    fn fixed_sizes_scale_both_ways() {
        let sink = caps("video/x-raw,format=I420,width=320,height=180,framerate=25/1");
        let src = transform_caps(&sink, gst::PadDirection::Sink, 2);
        assert_eq!(
            src,
            caps("video/x-raw,format=I420,width=640,height=360,framerate=25/1")
        );
        assert_eq!(transform_caps(&src, gst::PadDirection::Src, 2), sink);
    }

    #[test]
    fn sizes_that_do_not_divide_drop_out() {
        let src = caps("video/x-raw,width=641,height=360; video/x-raw,width=640,height=360");
        let sink = transform_caps(&src, gst::PadDirection::Src, 2);
        assert_eq!(sink, caps("video/x-raw,width=320,height=180"));
    }

    #[test]
    fn ranges_shrink_to_what_the_scale_can_reach() {
        let src = caps("video/x-raw,width=[3,16384],height=[1,7]");
        let sink = transform_caps(&src, gst::PadDirection::Src, 4);
        assert_eq!(sink, caps("video/x-raw,width=[1,4096],height=1"));
        let up = transform_caps(
            &caps("video/x-raw,width=[1,2147483647]"),
            gst::PadDirection::Sink,
            2,
        );
        assert_eq!(up, caps("video/x-raw,width=[2,2147483647]"));
        let none = transform_caps(&caps("video/x-raw,height=[1,3]"), gst::PadDirection::Src, 4);
        assert!(none.is_empty());
    }

    #[test]
    fn any_stays_any() {
        gst::init().unwrap();
        assert!(transform_caps(&gst::Caps::new_any(), gst::PadDirection::Src, 2).is_any());
    }
}
