//! What is checked before any work: the options against the input, the
//! frame sizes gendrsr takes, the encoder against HDR metadata, and the
//! output path.

use std::path::Path;

use crate::error::{bail, Result};

use super::encode::{muxer_for, Encoding};
use super::others::OtherStreams;
use super::video;
use crate::media::{MediaInfo, TimelineStart};
use crate::request::{Codec, Deinterlace, Target};

/// Refuses frames gendrsr cannot negotiate before any work starts: the
/// input size always, the output size when the preset tells the scale.
pub(crate) fn check_frame_size(info: &MediaInfo, input: &Path, model: &str) -> Result<()> {
    let Some(max) = video::element_max_edge() else {
        return Ok(());
    };
    let (w, h) = (info.width, info.height);
    if w > max || h > max {
        bail!(
            Unsupported,
            "{}: {w}x{h} frames are larger than gendr takes (at most {max} pixels per edge)",
            input.display()
        );
    }
    if let Some(preset) = gendr::presets::find(model) {
        let scale = preset.scale as u64;
        let (out_w, out_h) = (u64::from(w) * scale, u64::from(h) * scale);
        if out_w > u64::from(max) || out_h > u64::from(max) {
            bail!(
                Unsupported,
                "{}: ×{scale} makes {out_w}x{out_h} frames, over the {max}-pixel edge limit of the output; \
                 use a model with a smaller scale or scale the input down first",
                input.display()
            );
        }
    }
    Ok(())
}

/// x265 writes HDR10 mastering-display and content-light metadata into the
/// stream; x264 cannot, and no GStreamer 1.22 muxer keeps both right (mp4mux
/// drops them, matroskamux scales the luminance wrongly): that would lose them.
fn check_hdr_metadata(info: &MediaInfo, encoding: &Encoding, output: &Path) -> Result<()> {
    if info.hdr_metadata && encoding.codec == Codec::X264 {
        bail!(
            Unsupported,
            "{}: x264 cannot keep the input's HDR10 mastering-display/content-light metadata; \
             use --codec x265 (the default for 10-bit input)",
            output.display()
        );
    }
    Ok(())
}

/// The options checked against the input before any work: the model, the
/// frame size, the output size, HDR metadata. Returns the encoding and the
/// start line's notes on the video.
pub(crate) fn check_options(info: &MediaInfo, target: Target) -> Result<(Encoding, Vec<String>)> {
    target.options.sr.validate()?;
    check_frame_size(info, target.input, &target.options.sr.model)?;
    let mut notes = video::describe(target.options, info)?;
    notes.extend(timeline_start_note(info, target.output));
    let encoding = Encoding::choose(target.options, info);
    check_hdr_metadata(info, &encoding, target.output)?;
    Ok((encoding, notes))
}

/// What is said of an input whose timeline starts later than 0, where the
/// output's starts at 0: only an MP4/MOV's edit list into Matroska keeps
/// it (qtdemux runs the streams that much later and matroskamux writes
/// the times as they run); mp4mux/qtmux start a movie at its first packet,
/// and matroskademux starts its streams at their first timestamp.
pub(crate) fn timeline_start_note(info: &MediaInfo, output: &Path) -> Option<String> {
    let into_matroska = output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mkv"));
    let start = match info.timeline_start? {
        TimelineStart::EditList(_) if into_matroska => return None,
        TimelineStart::EditList(start) | TimelineStart::Timestamps(start) => start,
    };
    Some(format!(
        "the input's timeline starts at {:.3} s; {} starts at 0 (the times within it are kept)",
        start.nseconds() as f64 / 1e9,
        output.display()
    ))
}

/// What a segmented job checks when it is planned, so that nothing it could
/// know is found only at the join: the options against the input, and the
/// other streams against the output's container when that is known.
pub(crate) fn check_job(info: &MediaInfo, target: Target, output_known: bool) -> Result<()> {
    check_options(info, target)?;
    if target.options.deinterlace == Deinterlace::Field {
        bail!(
            Request,
            "--deinterlace field makes two frames of each planned one, which segments do not \
             count yet; use --deinterlace frame, or gendr upscale without --resume"
        );
    }
    if output_known {
        OtherStreams::prepare(target, info, &muxer_for(target.output)?)?;
    }
    Ok(())
}

/// Refuses outputs that can be known to fail before any work is done.
pub(crate) fn check_output(target: Target, overwrite: bool) -> Result<()> {
    let output = target.output;
    if output.is_dir() {
        bail!(
            Request,
            "{} is a directory; name the output file, e.g. {}",
            output.display(),
            output.join("out.mp4").display()
        );
    }
    if output.exists() && !overwrite {
        bail!(
            OutputExists,
            "{} exists; pass --overwrite to replace it",
            output.display()
        );
    }
    if std::fs::canonicalize(target.input).ok() == std::fs::canonicalize(output).ok() {
        bail!(Request, "input and output are the same file");
    }
    Ok(())
}
