//! Probing an input: what the discoverer and a look at the file tell
//! about its streams, before anything is decoded.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{bail, err, Context, Result};
use crate::finishing::TimelineKind;
use gst::prelude::*;
use gst_pbutils::prelude::*;
use gst_video::prelude::*;

use super::messages::first_line;

/// What the discoverer found in a file.
#[derive(Debug, Clone)]
pub struct MediaInfo {
    pub duration: Option<gst::ClockTime>,
    pub width: u32,
    pub height: u32,
    /// Frames per second; 0/1 when unknown or variable.
    pub framerate: gst::Fraction,
    pub audio_streams: usize,
    /// The caps of each of those audio streams, in the file's order.
    pub audio: Vec<gst::Caps>,
    /// Set when the video's frame times vary (an MP4/MOV's `stts`, else
    /// the first frames' timestamps): their average rate, frames per second.
    pub variable_rate: Option<f64>,
    /// Where the timeline of a Matroska or MP4/MOV input starts, when its
    /// first frame comes later than 0 (an edit list, a cut's timestamps).
    pub timeline_start: Option<TimelineStart>,
    /// The coded chroma subsampling (`4:2:2`…) where the caps tell it.
    pub chroma: Option<&'static str>,
    /// The caps of each video stream after the first (a second angle, a
    /// picture-in-picture), which are copied as they are.
    pub extra_videos: Vec<gst::Caps>,
    /// The caps of each subtitle stream, in the file's order.
    pub subtitles: Vec<gst::Caps>,
    /// The titles streams carry (a commentary track's name, a subtitle
    /// stream's label), in the file's order.
    pub stream_titles: Vec<String>,
    /// Chapters in the container's table of contents, as GStreamer reads it
    /// (Matroska; qtdemux reads none from MP4/MOV).
    pub chapters: usize,
    /// The video's display orientation (`rotate-90`, `flip-rotate-270`…)
    /// when the container asks for one other than upright.
    pub orientation: Option<String>,
    /// Bits per sample of the video as coded (8 when the format does not say).
    pub bit_depth: u32,
    /// Whether the video carries HDR10 mastering-display or content-light metadata.
    pub hdr_metadata: bool,
    /// Whether the video's stream or container names its colorimetry
    /// (decoders fill in GStreamer's defaults for the size when not).
    pub colour_tagged: bool,
    /// The colour matrix code (ISO/IEC 23091-2) the container gives the
    /// video (Matroska Colour, MP4/MOV `colr`): GStreamer's one BT.601
    /// matrix cannot tell bt470bg (5) from smpte170m (6).
    pub coded_matrix: Option<u8>,
    /// Width of a pixel over its height, as the stream says (1/1 when it does not).
    pub pixel_aspect: gst::Fraction,
    /// Set when the decoded frames are interlaced.
    pub interlaced: Option<FieldOrder>,
    /// The video stream's language and title, as its container gives them.
    pub video_tags: Option<gst::TagList>,
}

/// How a Matroska or MP4/MOV input's timeline starts later than 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimelineStart {
    /// An MP4/MOV edit list starts it (an empty edit, the media's first
    /// time): qtdemux runs the streams that much later.
    EditList(gst::ClockTime),
    /// Matroska timestamps start there: matroskademux starts its segment at
    /// the first one, so the streams run from 0.
    Timestamps(gst::ClockTime),
}

/// Which field of an interlaced frame is shown first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOrder {
    TopFirst,
    BottomFirst,
}

impl MediaInfo {
    /// The number of frames expected, when the duration and rate are known.
    pub fn frame_count(&self) -> Option<u64> {
        frame_count(self.duration, self.framerate)
    }
}

/// Frames in `duration` at `fps`, when both are known.
pub fn frame_count(duration: Option<gst::ClockTime>, fps: gst::Fraction) -> Option<u64> {
    let duration = duration?;
    (fps.numer() > 0).then(|| {
        let frames = duration.nseconds() as f64 * fps.numer() as f64 / fps.denom() as f64 / 1e9;
        frames.round() as u64
    })
}

pub fn file_uri(path: &Path) -> Result<String> {
    let absolute = std::fs::canonicalize(path).with_context(|| format!("{}", path.display()))?;
    gst::glib::filename_to_uri(&absolute, None)
        .map(|u| u.to_string())
        .map_err(|e| err!(Input, "{}: {e}", path.display()))
}

/// Probes beyond the first when a subtitle stream's tags are missing.
const SUBTITLE_TAG_RETRIES: usize = 4;

/// Probes a media file; fails with one line if it is missing, unreadable,
/// corrupt or has no video.
pub fn discover(path: &Path) -> Result<MediaInfo> {
    if path.is_dir() {
        bail!(
            Input,
            "{}: is a directory; give one video file (folders are not supported yet)",
            path.display()
        );
    }
    if !path.exists() {
        bail!(Input, "{}: no such file", path.display());
    }
    if !path.is_file() {
        bail!(
            Input,
            "{}: a pipe or device, not a file: gendr reads a video file (seeking in it), so save the \
             stream to a file first",
            path.display()
        );
    }
    std::fs::File::open(path).with_context(|| format!("{}: cannot be read", path.display()))?;
    let discoverer = gst_pbutils::Discoverer::new(gst::ClockTime::from_seconds(30))?;
    let uri = file_uri(path)?;
    let probe = || {
        discoverer.discover_uri(&uri).map_err(|e| {
            err!(
                Input,
                "{}: not a playable media file ({})",
                path.display(),
                discoverer_reason(&e.to_string())
            )
        })
    };
    let mut info = probe()?;
    // GStreamer 1.22's discoverer can finish before a sparse subtitle
    // stream's tags arrive (its titles and language then read as absent,
    // 1 run in 5 measured on a Matroska file): probed again when a
    // subtitle stream came back with no tags at all.
    for _ in 0..SUBTITLE_TAG_RETRIES {
        if info.subtitle_streams().iter().all(|s| s.tags().is_some()) {
            break;
        }
        info = probe()?;
    }
    let video = info.video_streams();
    let Some(v) = video.first() else {
        bail!(Input, "{}: no video stream", path.display());
    };
    if v.width() == 0 || v.height() == 0 {
        bail!(
            Input,
            "{}: the video stream has no size (corrupt or truncated?)",
            path.display()
        );
    }
    let first_frames = FirstFrames::read(path)?;
    Ok(MediaInfo {
        duration: info.duration(),
        width: v.width(),
        height: v.height(),
        framerate: plausible_rate(v.framerate()),
        audio: info
            .audio_streams()
            .iter()
            .filter(|a| is_outermost(a.upcast_ref()))
            .filter_map(|a| parsed(a.upcast_ref()).caps())
            .collect(),
        variable_rate: match crate::finishing::variable_video_rate(path)? {
            Some(average) => Some(average),
            None => varying_rate(&first_frames.shown),
        },
        timeline_start: first_frames.timeline_start(crate::finishing::timeline_kind(path)?),
        chroma: v.caps().as_ref().and_then(coded_chroma),
        audio_streams: info
            .audio_streams()
            .iter()
            .filter(|a| is_outermost(a.upcast_ref()))
            .count(),
        extra_videos: video
            .iter()
            .filter(|v| is_outermost(v.upcast_ref()))
            .skip(1)
            .filter_map(|v| v.caps())
            .collect(),
        subtitles: info
            .subtitle_streams()
            .iter()
            .filter_map(|s| s.caps())
            .collect(),
        stream_titles: info
            .stream_list()
            .iter()
            .filter_map(|s| {
                s.tags()?
                    .get::<gst::tags::Title>()
                    .map(|t| t.get().to_string())
            })
            .collect(),
        chapters: info.toc().map_or(0, |toc| count_chapters(&toc.entries())),
        orientation: v
            .tags()
            .and_then(|t| {
                t.get::<gst::tags::ImageOrientation>()
                    .map(|o| o.get().to_string())
            })
            .filter(|o| o != "rotate-0"),
        bit_depth: coded_bit_depth(v),
        hdr_metadata: v
            .caps()
            .and_then(|c| {
                c.structure(0).map(|s| {
                    s.has_field("mastering-display-info") || s.has_field("content-light-level")
                })
            })
            .unwrap_or(false),
        colour_tagged: v
            .caps()
            .and_then(|c| c.structure(0).map(|s| s.has_field("colorimetry")))
            .unwrap_or(false),
        pixel_aspect: match (v.par().numer(), v.par().denom()) {
            (n, d) if n > 0 && d > 0 => v.par(),
            _ => gst::Fraction::new(1, 1),
        },
        // The container's tag, else the stream's own: its SPS in the codec
        // data the parser's caps carry (Matroska's CodecPrivate, MP4's
        // avcC/hvcC, and H.264/H.265 from MPEG-TS, which the parser gives
        // one), else headers after start codes (MPEG-2, raw streams).
        coded_matrix: match crate::finishing::container_matrix(path)? {
            Some(Some(code)) => Some(code),
            Some(None) => v.caps().as_ref().and_then(codec_data_matrix),
            None => match v.caps().as_ref().and_then(codec_data_matrix) {
                Some(code) => Some(code),
                None => stream_matrix(path)?,
            },
        },
        interlaced: v.is_interlaced().then(|| field_order(path)),
        video_tags: v.tags().and_then(|t| language_and_title(&t)),
    })
}

/// How many of the video's first frames are read for their times.
const TIMED_FRAMES: usize = 120;

/// More than this many frames can come after one shown later (B-frames):
/// the latest times of the frames read may yet have earlier ones between.
const MAX_REORDER: usize = 16;

/// The longest the look at the first frames' times may take.
const TIMES_LIMIT: Duration = Duration::from_secs(10);

/// The times of the video's first frames, and where the streams start, as
/// parsebin hands them on.
#[derive(Default)]
struct FirstFrames {
    /// The video's presentation times in order, up to where no frame can
    /// be missing.
    shown: Vec<gst::ClockTime>,
    /// The earliest first packet of any stream: its presentation time, and
    /// its time on the container's timeline (its segment's stream time).
    earliest_pts: Option<gst::ClockTime>,
    earliest_stream_time: Option<gst::ClockTime>,
}

/// What the pad probes gather.
#[derive(Default)]
struct Gathered {
    video_pts: Vec<gst::ClockTime>,
    video_ended: bool,
    earliest_pts: Option<gst::ClockTime>,
    earliest_stream_time: Option<gst::ClockTime>,
}

impl FirstFrames {
    /// Reads the first packets of `path` (parsed, not decoded); none when
    /// the file cannot be read so (the run says why).
    fn read(path: &Path) -> Result<FirstFrames> {
        let (pipeline, parse) = file_to_parsebin(path)?;
        let gathered = Arc::new(Mutex::new(Gathered::default()));
        let weak = pipeline.downgrade();
        let seen = gathered.clone();
        let video_found = AtomicBool::new(false);
        parse.connect_pad_added(move |_, pad| {
            let Some(pipeline) = weak.upgrade() else {
                return;
            };
            let (caps, _) = pad_caps(pad);
            let video = decodes_to_video(&caps) && !video_found.swap(true, Ordering::SeqCst);
            note_packet_times(pad, video, &seen);
            let _ = discard(&pipeline, pad);
        });
        let enough =
            |g: &Gathered| g.video_ended || g.video_pts.len() >= TIMED_FRAMES + MAX_REORDER;
        play_until(&pipeline, TIMES_LIMIT, || {
            enough(&gathered.lock().unwrap_or_else(|p| p.into_inner()))
        })?;
        let gathered = gathered.lock().unwrap_or_else(|p| p.into_inner());
        let mut shown = gathered.video_pts.clone();
        shown.sort();
        if !gathered.video_ended {
            shown.truncate(shown.len().saturating_sub(MAX_REORDER));
        }
        Ok(FirstFrames {
            shown,
            earliest_pts: gathered.earliest_pts,
            earliest_stream_time: gathered.earliest_stream_time,
        })
    }

    /// Where a Matroska or MP4/MOV input's timeline starts, when later than 0.
    fn timeline_start(&self, kind: Option<TimelineKind>) -> Option<TimelineStart> {
        // Less than a millisecond late is rounding.
        let later = |t: gst::ClockTime| (t >= gst::ClockTime::from_mseconds(1)).then_some(t);
        match kind? {
            TimelineKind::QuickTime => {
                later(self.earliest_stream_time?).map(TimelineStart::EditList)
            }
            TimelineKind::Matroska => later(self.earliest_pts?).map(TimelineStart::Timestamps),
        }
    }
}

/// Notes in `gathered` the time of the first packet on `pad` and, for the
/// `video`, the times of its frames.
fn note_packet_times(pad: &gst::Pad, video: bool, gathered: &Arc<Mutex<Gathered>>) {
    let gathered = gathered.clone();
    let segment = Mutex::new(None::<gst::FormattedSegment<gst::ClockTime>>);
    let first = AtomicBool::new(true);
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            let mut gathered = gathered.lock().unwrap_or_else(|p| p.into_inner());
            let mut segment = segment.lock().unwrap_or_else(|p| p.into_inner());
            match &info.data {
                Some(gst::PadProbeData::Event(event)) => match event.view() {
                    gst::EventView::Segment(event) => {
                        *segment = event.segment().downcast_ref::<gst::ClockTime>().cloned();
                    }
                    gst::EventView::Eos(_) if video => gathered.video_ended = true,
                    _ => {}
                },
                Some(gst::PadProbeData::Buffer(buffer)) => {
                    if let Some(pts) = buffer.pts() {
                        if first.swap(false, Ordering::SeqCst) {
                            let earliest =
                                |e: Option<gst::ClockTime>, t| Some(e.map_or(t, |e| e.min(t)));
                            gathered.earliest_pts = earliest(gathered.earliest_pts, pts);
                            if let Some(time) = segment.as_ref().and_then(|s| s.to_stream_time(pts))
                            {
                                gathered.earliest_stream_time =
                                    earliest(gathered.earliest_stream_time, time);
                            }
                        }
                        if video {
                            gathered.video_pts.push(pts);
                        }
                    }
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// The average rate (frames per second) of frames shown at `times` (in
/// order), when the gaps between them vary by more than 5 % and a
/// millisecond (Matroska's usual tick: 29.97 fps is 33, 33, 34 ms…).
fn varying_rate(times: &[gst::ClockTime]) -> Option<f64> {
    let gaps: Vec<u64> = times.windows(2).map(|w| (w[1] - w[0]).nseconds()).collect();
    let (min, max) = (*gaps.iter().min()?, *gaps.iter().max()?);
    let varies = max - min > (min / 20).max(1_000_000);
    let span = (*times.last()? - *times.first()?).nseconds();
    (varies && span > 0).then(|| gaps.len() as f64 * 1e9 / span as f64)
}

/// Frames per second above which a "rate" is a clock (90000/1 from an
/// MPEG timescale), not how often frames come.
const MAX_PLAUSIBLE_FPS: i32 = 1000;

/// `rate`, or 0/1 (unknown or variable) when it cannot be a frame rate.
fn plausible_rate(rate: gst::Fraction) -> gst::Fraction {
    match (rate.numer(), rate.denom()) {
        (n, d) if d > 0 && n / d > MAX_PLAUSIBLE_FPS => gst::Fraction::new(0, 1),
        _ => rate,
    }
}

/// The chroma subsampling the parsed caps of a video stream tell: the
/// parsers' `chroma-format` (H.264, H.265), MPEG-2's 4:2:2 profile,
/// ProRes's variant, raw video's format.
fn coded_chroma(caps: &gst::Caps) -> Option<&'static str> {
    let s = caps.structure(0)?;
    let known = |text: &str| match text {
        "4:2:0" => Some("4:2:0"),
        "4:2:2" => Some("4:2:2"),
        "4:4:4" => Some("4:4:4"),
        "4:1:1" => Some("4:1:1"),
        _ => None,
    };
    if let Ok(chroma) = s.get::<&str>("chroma-format") {
        return known(chroma);
    }
    match s.name().as_str() {
        "video/mpeg" => s.get::<&str>("profile").ok().and_then(known),
        "video/x-prores" => match s.get::<&str>("variant").ok()? {
            "4444" | "4444xq" => Some("4:4:4"),
            _ => Some("4:2:2"),
        },
        "video/x-raw" => {
            let info = gst_video::VideoInfo::from_caps(caps).ok()?;
            let format = info.format_info();
            if format.is_rgb() || format.is_gray() {
                return None;
            }
            match (format.w_sub().get(1), format.h_sub().get(1)) {
                (Some(0), Some(0)) => Some("4:4:4"),
                (Some(1), Some(0)) => Some("4:2:2"),
                (Some(2), Some(0)) => Some("4:1:1"),
                (Some(1), Some(1)) => Some("4:2:0"),
                _ => None,
            }
        }
        _ => None,
    }
}

/// How the start line gives the input's frame rate.
pub fn rate_text(info: &MediaInfo) -> String {
    let fps = info.framerate;
    match (info.variable_rate, fps.numer()) {
        (Some(average), _) => format!("a variable frame rate (~{average:.2} fps)"),
        (None, 0) => "a variable or unknown frame rate".to_string(),
        (None, _) => format!("{}/{} fps", fps.numer(), fps.denom()),
    }
}

/// Whether a stream is one of the file's own rather than the parsed form
/// of another (MPEG-PS shows each stream twice: the demuxer's and, below
/// it, the parser's), so that none is counted twice.
fn is_outermost(stream: &gst_pbutils::DiscovererStreamInfo) -> bool {
    stream.previous().is_none_or(|previous| {
        previous
            .downcast_ref::<gst_pbutils::DiscovererContainerInfo>()
            .is_some()
    })
}

/// The last form of a stream the discoverer shows: the parser's, where
/// the demuxer's comes first (MPEG-PS's `audio/x-private1-ac3`, parsed to
/// `audio/x-ac3`), as parsebin hands it to the muxer.
fn parsed(stream: &gst_pbutils::DiscovererStreamInfo) -> gst_pbutils::DiscovererStreamInfo {
    let mut last = stream.clone();
    while let Some(next) = last.next() {
        last = next;
    }
    last
}

/// A stream's language and title alone, if it has either.
fn language_and_title(tags: &gst::TagList) -> Option<gst::TagList> {
    let mut kept = gst::TagList::new();
    {
        let kept = kept.make_mut();
        if let Some(language) = tags.get::<gst::tags::LanguageCode>() {
            kept.add::<gst::tags::LanguageCode>(&language.get(), gst::TagMergeMode::Replace);
        }
        if let Some(title) = tags.get::<gst::tags::Title>() {
            kept.add::<gst::tags::Title>(&title.get(), gst::TagMergeMode::Replace);
        }
    }
    (kept.n_tags() > 0).then_some(kept)
}

/// The coded bit depth: what the parser says (`bit-depth-luma`), else the
/// discoverer's depth over three components, else 8.
fn coded_bit_depth(video: &gst_pbutils::DiscovererVideoInfo) -> u32 {
    let parsed = video.caps().and_then(|c| {
        c.structure(0)
            .and_then(|s| s.get::<u32>("bit-depth-luma").ok())
    });
    parsed
        .or_else(|| (video.depth() >= 24).then(|| video.depth() / 3))
        .unwrap_or(8)
}

/// The field order of an interlaced video as its first decoded frame says:
/// the discoverer tells only that it is interlaced. Top first (what most
/// interlaced video is) when the decoder does not say.
fn field_order(path: &Path) -> FieldOrder {
    let first_frame = || -> Option<gst::Sample> {
        let (pipeline, sink) = file_to_appsink(path, "decodebin ! video/x-raw").ok()?;
        pipeline.set_state(gst::State::Paused).ok()?;
        let sample = sink.try_pull_preroll(gst::ClockTime::from_seconds(10));
        let _ = pipeline.set_state(gst::State::Null);
        sample
    };
    let Some(sample) = first_frame() else {
        return FieldOrder::TopFirst;
    };
    let caps_order = sample
        .caps()
        .and_then(|c| c.structure(0))
        .and_then(|s| s.get::<String>("field-order").ok());
    // Mixed streams say it per frame, in the buffer flags.
    let bottom = match caps_order.as_deref() {
        Some("bottom-field-first") => true,
        Some("top-field-first") => false,
        _ => {
            let frame_flags = || {
                let info = gst_video::VideoInfo::from_caps(sample.caps()?).ok()?;
                let frame =
                    gst_video::VideoFrameRef::from_buffer_ref_readable(sample.buffer()?, &info)
                        .ok()?;
                Some(frame.flags())
            };
            frame_flags().is_some_and(|f| {
                f.contains(gst_video::VideoFrameFlags::INTERLACED)
                    && !f.contains(gst_video::VideoFrameFlags::TFF)
            })
        }
    };
    if bottom {
        FieldOrder::BottomFirst
    } else {
        FieldOrder::TopFirst
    }
}

/// Chapters in a table of contents, at any depth (editions hold chapters).
fn count_chapters(entries: &[gst::TocEntry]) -> usize {
    entries
        .iter()
        .map(|e| {
            let own = usize::from(e.entry_type() == gst::TocEntryType::Chapter);
            own + count_chapters(&e.sub_entries())
        })
        .sum()
}

/// The discoverer's reason, with GStreamer's generic wording made specific.
fn discoverer_reason(message: &str) -> String {
    let reason = first_line(message);
    if reason.contains("missing a plug-in") {
        "no installed GStreamer element can read or decode it; its format is unsupported or its header is damaged".into()
    } else {
        reason.into()
    }
}

/// Whether a parsed stream with these caps becomes raw video: raw video
/// itself, any `video/…` format (decodebin names a missing decoder), or a
/// format an installed decoder turns into raw video (MJPEG is `image/jpeg`).
pub fn decodes_to_video(caps: &gst::Caps) -> bool {
    let Some(name) = caps.structure(0).map(|s| s.name().to_string()) else {
        return false;
    };
    if name.starts_with("video/") {
        return true;
    }
    let raw_video = gst::Caps::new_empty_simple("video/x-raw");
    let decoders = gst::ElementFactory::factories_with_type(
        gst::ElementFactoryType::DECODER,
        gst::Rank::MARGINAL,
    );
    decoders.iter().any(|factory| {
        factory.can_sink_any_caps(caps)
            && factory.static_pad_templates().iter().any(|t| {
                t.direction() == gst::PadDirection::Src && t.caps().can_intersect(&raw_video)
            })
    })
}

/// How far into a file the first MPEG-1/2 sequence and GOP headers are
/// looked for.
const GOP_SEARCH_BYTES: u64 = 8 << 20;

/// The time code of the first GOP header of an MPEG-1/2 video stream in
/// `path` (`HH:MM:SS:FF`, `;` before the frames when drop-frame), when it
/// is not zero: what a tape capture's MPEG-2 carries (`ffmpeg -timecode`)
/// and no GStreamer 1.22 muxer or encoder writes. Found in the file's
/// bytes: a GOP header shortly after a sequence header.
pub fn mpeg2_gop_timecode(path: &Path) -> Result<Option<String>> {
    Ok(gop_timecode(&file_head(path)?))
}

/// The colour matrix code the first video stream in `path` writes in its
/// own headers: an H.264 SPS's VUI, or an MPEG-2 sequence display
/// extension, found in the file's first bytes (MPEG-TS/PS, AVI, raw
/// streams: containers that give none).
pub fn stream_matrix(path: &Path) -> Result<Option<u8>> {
    Ok(matrix_in(&file_head(path)?))
}

/// The colour matrix code the first SPS in an H.264 or H.265 stream's
/// codec data (`avcC`, `hvcC`) gives.
fn codec_data_matrix(caps: &gst::Caps) -> Option<u8> {
    let s = caps.structure(0)?;
    let data = s.get::<gst::Buffer>("codec_data").ok()?;
    let data = data.map_readable().ok()?;
    match s.name().as_str() {
        "video/x-h264" => super::h264_vui::avcc_matrix(&data),
        "video/x-h265" => super::hevc_vui::hvcc_matrix(&data),
        _ => None,
    }
}

/// A file's first [`GOP_SEARCH_BYTES`]: where its stream headers are when
/// the container gives none.
fn file_head(path: &Path) -> Result<Vec<u8>> {
    let mut head = Vec::new();
    File::open(path)
        .with_context(|| format!("{}: cannot be read", path.display()))?
        .take(GOP_SEARCH_BYTES)
        .read_to_end(&mut head)?;
    Ok(head)
}

fn matrix_in(bytes: &[u8]) -> Option<u8> {
    let mut at = 0;
    while let Some(found) = bytes[at..].windows(3).position(|w| w == [0, 0, 1]) {
        let start = at + found + 3;
        at = start;
        let Some(&code) = bytes.get(start) else {
            break;
        };
        // An MPEG-2 picture: its sequence's headers are behind, and slices
        // (some of whose codes look like an SPS's) ahead.
        if code == 0x00 {
            break;
        }
        if code & 0x9F == 0x07 {
            // An H.264 SPS (forbidden bit 0, any nal_ref_idc, type 7), up
            // to the next start code.
            let end = bytes[start..]
                .windows(3)
                .position(|w| w == [0, 0, 1])
                .map_or(bytes.len(), |n| start + n);
            if let Some(matrix) = super::h264_vui::matrix_of(&bytes[start..end]) {
                return Some(matrix);
            }
        } else if code == 0xB5 && bytes.get(start + 1).is_some_and(|b| b >> 4 == 2) {
            // MPEG-2 sequence display extension: id(4) video_format(3)
            // colour_description(1), then primaries, transfer, matrix.
            let head = bytes.get(start + 1)?;
            if head & 1 == 1 {
                return bytes.get(start + 4).copied();
            }
        }
    }
    None
}

fn gop_timecode(bytes: &[u8]) -> Option<String> {
    const SEQUENCE: [u8; 4] = [0, 0, 1, 0xB3];
    const GOP: [u8; 4] = [0, 0, 1, 0xB8];
    // The sequence header and its extensions come right before the GOP.
    const GOP_WITHIN: usize = 512;
    let sequence = bytes.windows(4).position(|w| w == SEQUENCE)?;
    let after = &bytes[sequence..bytes.len().min(sequence + GOP_WITHIN)];
    let gop = after.windows(4).position(|w| w == GOP)?;
    let code = after.get(gop + 4..gop + 8)?;
    let bits = u32::from_be_bytes(code.try_into().ok()?);
    let field = |shift: u32, width: u32| (bits >> shift) & ((1 << width) - 1);
    // drop_frame(1) hours(5) minutes(6) marker(1) seconds(6) pictures(6).
    let (drop, hours, minutes, marker) = (field(31, 1), field(26, 5), field(20, 6), field(19, 1));
    let (seconds, pictures) = (field(13, 6), field(7, 6));
    if marker != 1 || hours > 23 || minutes > 59 || seconds > 59 {
        return None;
    }
    if hours + minutes + seconds + pictures == 0 {
        return None;
    }
    let separator = if drop == 1 { ';' } else { ':' };
    Some(format!(
        "{hours:02}:{minutes:02}:{seconds:02}{separator}{pictures:02}"
    ))
}

/// A YUV4MPEG2 file whose last frame is cut short: GStreamer drops the
/// partial frame without a word, and y4m has no index to compare against.
/// Returns the complete and expected frame counts when the size does not
/// add up (frames carrying their own parameters are not checked).
pub fn y4m_incomplete(path: &Path) -> Result<Option<(u64, u64)>> {
    let mut file =
        File::open(path).with_context(|| format!("{}: cannot be read", path.display()))?;
    let mut head = Vec::with_capacity(512);
    file.by_ref().take(512).read_to_end(&mut head)?;
    let Some(header_end) = head.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    let Ok(header) = std::str::from_utf8(&head[..header_end]) else {
        return Ok(None);
    };
    let mut fields = header.split(' ');
    if fields.next() != Some("YUV4MPEG2") {
        return Ok(None);
    }
    let (mut width, mut height, mut chroma) = (0u64, 0u64, "420");
    for field in fields {
        let (tag, value) = field.split_at(field.len().min(1));
        match tag {
            "W" => width = value.parse().unwrap_or(0),
            "H" => height = value.parse().unwrap_or(0),
            "C" => chroma = value,
            _ => {}
        }
    }
    // Bytes per pixel ×2 for the chroma layouts GStreamer reads.
    let doubled: u64 = if chroma.starts_with("444") {
        6
    } else if chroma.starts_with("422") {
        4
    } else if chroma.starts_with("mono") {
        2
    } else {
        3
    };
    // 4:2:0 rounds each chroma plane's edges up.
    let picture = if doubled == 3 {
        width * height + 2 * width.div_ceil(2) * height.div_ceil(2)
    } else {
        width * height * doubled / 2
    };
    let frame = picture + "FRAME\n".len() as u64;
    let body = file.metadata()?.len().saturating_sub(header_end as u64 + 1);
    let plain_frames = head
        .get(header_end + 1..)
        .is_some_and(|rest| rest.starts_with(b"FRAME\n") || b"FRAME\n".starts_with(rest));
    if picture == 0 || !plain_frames {
        return Ok(None);
    }
    Ok((body % frame != 0).then(|| (body / frame, body / frame + 1)))
}

/// `filesrc location=PATH ! parsebin` in a pipeline of its own, not
/// started: the input's streams parsed, each on a pad of parsebin's.
pub fn file_to_parsebin(path: &Path) -> Result<(gst::Pipeline, gst::Element)> {
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("filesrc")
        .property("location", path)
        .build()?;
    let parse = gst::ElementFactory::make("parsebin").build()?;
    pipeline.add_many([&src, &parse])?;
    src.link(&parse)?;
    Ok((pipeline, parse))
}

/// The caps a parsed stream's pad has (or can have) and their media type
/// (`video/x-h264`, `audio/mpeg`…; empty when the caps are empty).
pub fn pad_caps(pad: &gst::Pad) -> (gst::Caps, String) {
    // A parser's pad may come before its caps are set, with the caps of
    // everything it can parse (ac3parse: AC-3 or E-AC-3); the demuxer's
    // stream then says which codec it is.
    let caps = pad
        .current_caps()
        .or_else(|| pad.stream().and_then(|s| s.caps()).filter(|c| c.is_fixed()))
        .unwrap_or_else(|| pad.query_caps(None));
    let name = caps
        .structure(0)
        .map(|s| s.name().to_string())
        .unwrap_or_default();
    (caps, name)
}

/// Streams that are not copied (subtitles, data) go nowhere: `pad` drains
/// into a fakesink of its own in `pipeline`.
pub fn discard(pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<()> {
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()?;
    pipeline.add(&sink)?;
    sink.sync_state_with_parent()?;
    pad.link(&sink.static_pad("sink").context("fakesink sink")?)?;
    Ok(())
}

/// Plays `pipeline` until `done()` holds, it ends or fails, or `limit`
/// has passed, then stops it: a look at a file's first packets. A file the
/// look cannot read is left to the run, which says what is wrong.
pub fn play_until(
    pipeline: &gst::Pipeline,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<()> {
    let bus = pipeline.bus().context("pipeline bus")?;
    let started = Instant::now();
    if pipeline.set_state(gst::State::Playing).is_ok() {
        while started.elapsed() < limit && !done() {
            let ended = bus.timed_pop_filtered(
                gst::ClockTime::from_mseconds(20),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            );
            if ended.is_some() {
                break;
            }
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    Ok(())
}

/// `filesrc location=PATH ! CHAIN ! appsink`, built and not started: how
/// gendr reads a file's frames or packets itself.
pub fn file_to_appsink(path: &Path, chain: &str) -> Result<(gst::Pipeline, gst_app::AppSink)> {
    let pipeline = gst::parse::launch(&format!(
        "filesrc name=src ! {chain} ! appsink name=sink sync=false"
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| err!(Gst, "not a pipeline"))?;
    pipeline
        .by_name("src")
        .context("filesrc")?
        .set_property("location", path);
    let sink = pipeline
        .by_name("sink")
        .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
        .context("appsink")?;
    Ok((pipeline, sink))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(ms: &[u64]) -> Vec<gst::ClockTime> {
        ms.iter()
            .map(|&t| gst::ClockTime::from_mseconds(t))
            .collect()
    }

    #[test]
    fn a_rate_varies_by_more_than_rounding() {
        // 29.97 fps rounded to Matroska's milliseconds, 25 fps exactly.
        assert_eq!(varying_rate(&times(&[0, 33, 67, 100, 133, 167, 200])), None);
        assert_eq!(varying_rate(&times(&[0, 40, 80, 120])), None);
        // 100 ms apart, then 300 to 400 ms: 7 gaps in 1.4 s.
        let average = varying_rate(&times(&[0, 100, 200, 300, 600, 1000, 1300, 1400]));
        assert_eq!(average.map(|a| (a * 100.0).round() / 100.0), Some(5.0));
        // Too few frames to tell.
        assert_eq!(varying_rate(&times(&[0])), None);
    }
}
