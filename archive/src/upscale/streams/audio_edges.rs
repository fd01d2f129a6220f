//! Audio packets lost at a stream's edges, said rather than silently cut.

use std::sync::Mutex;

use crate::error::Result;
use gst::prelude::*;

use super::{post_notice, quicktime_moov};
use crate::finishing;
use crate::media;

/// Says, once the stream ends, how many of the audio packets on `pad`
/// started before its segment did, as the muxer gets it: the muxers clip
/// them. The timeline's lead holds such packets where they are shown
/// (MPEG-TS/PS audio before the video's first shown frame, a packet an
/// MP4/MOV edit starts within); what is left is an MP4/MOV priming packet
/// that ends before its edit.
pub(super) fn say_packets_before_start(pad: &gst::Pad) {
    let start = Mutex::new(None::<gst::ClockTime>);
    let cut = Mutex::new((0u64, gst::ClockTime::ZERO));
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |pad, info| {
            match &info.data {
                Some(gst::PadProbeData::Event(event)) => match event.view() {
                    gst::EventView::Segment(segment) => {
                        *start.lock().unwrap_or_else(|p| p.into_inner()) = segment
                            .segment()
                            .downcast_ref::<gst::ClockTime>()
                            .and_then(|s| s.start());
                    }
                    gst::EventView::Eos(_) => {
                        let (count, duration) = *cut.lock().unwrap_or_else(|p| p.into_inner());
                        if let (true, Some(parse)) = (count > 0, pad.parent_element()) {
                            post_notice(
                                &parse,
                                format!(
                                    "gendr: warning: {count} audio packet(s) ({} ms) start \
                                     before their stream's first shown time and are cut: \
                                     GStreamer 1.22's muxers take nothing before it (ffmpeg -c \
                                     copy keeps them)",
                                    duration.mseconds()
                                ),
                            );
                        }
                    }
                    _ => {}
                },
                Some(gst::PadProbeData::Buffer(buffer)) => {
                    let start = *start.lock().unwrap_or_else(|p| p.into_inner());
                    if let (Some(pts), Some(start)) = (buffer.pts(), start) {
                        if pts < start {
                            let mut cut = cut.lock().unwrap_or_else(|p| p.into_inner());
                            cut.0 += 1;
                            cut.1 += buffer.duration().unwrap_or(gst::ClockTime::ZERO);
                        }
                    }
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// Gives each packet on `pad` that comes without a duration the duration
/// its codec says, where the caps tell it: Opus's table of contents, AAC's
/// frame length (matroskademux hands both on without durations, and
/// parsebin's parsers let them pass as they are). mp4mux and qtmux take
/// the next packet's time for every duration but the last one's, which
/// came out 0, and players dropped it (100 of 101 Opus packets, 87 of 88
/// AAC packets at 44.1 kHz).
pub(super) fn time_packets(pad: &gst::Pad, caps: &gst::Caps) {
    let Some(length) = packet_length(caps) else {
        return;
    };
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(buffer) = info.buffer_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        if buffer.duration().is_none() {
            let duration = match length {
                PacketLength::Opus => buffer
                    .map_readable()
                    .ok()
                    .and_then(|data| opus_packet_samples(&data))
                    .map(|samples| {
                        gst::ClockTime::from_nseconds(
                            u64::from(samples) * 1_000_000_000 / u64::from(OPUS_RATE),
                        )
                    }),
                PacketLength::Fixed(duration) => Some(duration),
            };
            if let Some(duration) = duration {
                buffer.make_mut().set_duration(duration);
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// How long the packets of a stream last.
#[derive(Clone, Copy)]
enum PacketLength {
    /// As each Opus packet's table of contents says.
    Opus,
    /// Each as long: AAC's frames.
    Fixed(gst::ClockTime),
}

/// How long the packets of a stream in `caps` last, where the caps say:
/// Opus, and raw AAC by its codec data.
fn packet_length(caps: &gst::Caps) -> Option<PacketLength> {
    let s = caps.structure(0)?;
    match s.name().as_str() {
        "audio/x-opus" => Some(PacketLength::Opus),
        "audio/mpeg" if s.get::<i32>("mpegversion") == Ok(4) => {
            let config = s.get::<gst::Buffer>("codec_data").ok()?;
            let config = config.map_readable().ok()?;
            media::aac::aac_frame(&config).map(PacketLength::Fixed)
        }
        _ => None,
    }
}

/// The rate Opus packets are counted in, whatever the input's.
const OPUS_RATE: u32 = 48_000;

/// The samples (at 48 kHz) an Opus packet holds, from its table of
/// contents (RFC 6716, 3.1): the frame size its configuration names, times
/// its frame count. None for an empty or malformed packet.
fn opus_packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // Frame sizes in samples at 48 kHz: SILK 10/20/40/60 ms, hybrid 10/20
    // ms, CELT 2.5/5/10/20 ms.
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 0b11 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0b11_1111),
    };
    // A packet holds at most 120 ms.
    let samples = frame * frames;
    (frames > 0 && samples <= 5760).then_some(samples)
}

/// Whether a `trak` body is a sound track whose edit list starts its media
/// later than zero (encoder priming: AAC's 1024 samples, Opus's pre-skip).
fn edited_sound_track(trak: &[u8]) -> bool {
    let sound = finishing::box_bodies(trak)
        .filter(|(k, _)| k == b"mdia")
        .flat_map(|(_, mdia)| finishing::box_bodies(mdia))
        .any(|(k, hdlr)| &k == b"hdlr" && hdlr.get(8..12) == Some(b"soun"));
    let delayed = finishing::box_bodies(trak)
        .filter(|(k, _)| k == b"edts")
        .flat_map(|(_, edts)| finishing::box_bodies(edts))
        .filter(|(k, _)| k == b"elst")
        .any(|(_, elst)| {
            // version, flags, entry count, then the first entry's
            // duration and media time (32 or 64 bits by version).
            let media_time = match elst.first() {
                Some(0) => elst
                    .get(12..16)
                    .map(|b| i64::from(i32::from_be_bytes(b.try_into().expect("4 bytes")))),
                Some(1) => elst
                    .get(16..24)
                    .map(|b| i64::from_be_bytes(b.try_into().expect("8 bytes"))),
                _ => None,
            };
            media_time.is_some_and(|t| t > 0)
        });
    sound && delayed
}

/// The warning for an MP4/MOV input whose audio starts inside an edit
/// list, into Matroska (MP4/MOV outputs get edit lists that hide the
/// priming again, see `finishing`): an Opus pre-skip within the first
/// packet is said as its CodecDelay (`finishing`), but nothing in Matroska
/// hides other priming for ffmpeg 5.1, so a priming packet that ends before the edit is
/// cut (the first packet then decodes without its warm-up), and one the
/// edit starts within is kept whole, its priming played in the timeline's
/// lead (see `timeline`). The last packets, which qtdemux keeps back, are
/// read from the file (`audio_tail`).
pub(crate) fn lost_audio_edges(input: &std::path::Path) -> Result<Option<String>> {
    let Some(moov) = quicktime_moov(input)? else {
        return Ok(None);
    };
    let edited = finishing::box_bodies(&moov)
        .filter(|(k, trak)| k == b"trak" && edited_sound_track(trak))
        .count();
    let hidden_opus = finishing::sound_tracks(&moov)
        .iter()
        .filter(|t| t.opus_pre_skip().is_some())
        .count();
    let edited = edited.saturating_sub(hidden_opus);
    Ok((edited > 0).then(|| {
        format!(
            "gendr: warning: {}: {edited} audio track(s) start inside an edit list (encoder \
             priming), which Matroska cannot hide (but for an Opus pre-skip within the first \
             packet): a priming packet that ends before the edit is cut (the first packet then \
             decodes without it), one the edit starts within is kept whole (its priming played \
             before the first frame)",
            input.display()
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_opus_packet_holds_what_its_table_of_contents_says() {
        // CELT fullband 20 ms, one frame (what libopus writes by default).
        assert_eq!(opus_packet_samples(&[0xFC, 0xFF]), Some(960));
        // Two CELT 10 ms frames of equal size (code 1).
        assert_eq!(opus_packet_samples(&[(30 << 3) | 1, 0]), Some(960));
        // SILK 60 ms, code 3 with 2 frames: 120 ms, the most allowed.
        assert_eq!(opus_packet_samples(&[(3 << 3) | 3, 2]), Some(5760));
        // Hybrid 10 ms, code 2.
        assert_eq!(opus_packet_samples(&[(14 << 3) | 2, 5]), Some(960));
        // SILK 60 ms times 3 frames is past 120 ms; no frames; no packet.
        assert_eq!(opus_packet_samples(&[(3 << 3) | 3, 3]), None);
        assert_eq!(opus_packet_samples(&[(3 << 3) | 3, 0]), None);
        assert_eq!(opus_packet_samples(&[]), None);
        assert_eq!(opus_packet_samples(&[0xFB]), None);
    }
}
