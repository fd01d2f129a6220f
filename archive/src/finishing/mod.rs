//! Repairs made to a written output before it is moved into place, where
//! GStreamer 1.22's muxers write something wrong that no caps or tag can
//! prevent: each rewrites bytes of the finished file in place.

mod matroska;
mod mp4;

pub(crate) use matroska::{restore_matroska_tags, MatroskaExtras};
pub(crate) use mp4::{box_bodies, has_timecode_track, read_moov, repair_opus_boxes};
