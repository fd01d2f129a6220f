//! `gendr upscale`: decode → gendrsr → encode → mux, audio copied, written
//! to a temporary name and renamed only when the whole file is done.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::finishing;
use crate::media::{self, MediaInfo};
use crate::request::{Codec, Deinterlace, KeepOrDrop, Target, UpscaleRequest};
use crate::Observer;

mod encode;
mod job;
mod streams;
mod video;

pub use encode::{muxer_for, Encoding};
pub(crate) use job::{Job, Video, Window};

/// The largest frame edge gendrsr negotiates, read from its src template so
/// the element stays the one source of that limit.
fn element_max_edge() -> Option<u32> {
    let factory = gst::ElementFactory::find("gendrsr")?;
    let template = factory
        .static_pad_templates()
        .into_iter()
        .find(|t| t.direction() == gst::PadDirection::Src)?;
    let caps = template.caps();
    let width = caps.structure(0)?.get::<gst::IntRange<i32>>("width").ok()?;
    u32::try_from(width.max()).ok()
}

/// Refuses frames gendrsr cannot negotiate before any work starts: the
/// input size always, the output size when the preset tells the scale.
pub(crate) fn check_frame_size(info: &MediaInfo, input: &Path, model: &str) -> Result<()> {
    let Some(max) = element_max_edge() else {
        return Ok(());
    };
    let (w, h) = (info.width, info.height);
    if w > max || h > max {
        bail!(
            "{}: {w}x{h} frames are larger than gendr takes (at most {max} pixels per edge)",
            input.display()
        );
    }
    if let Some(preset) = gendr::presets::find(model) {
        let scale = preset.scale as u64;
        let (out_w, out_h) = (u64::from(w) * scale, u64::from(h) * scale);
        if out_w > u64::from(max) || out_h > u64::from(max) {
            bail!(
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
            "{}: x264 cannot keep the input's HDR10 mastering-display/content-light metadata; \
             use --codec x265 (the default for 10-bit input)",
            output.display()
        );
    }
    Ok(())
}

/// What becomes of the input's streams beside the video (subtitles,
/// chapters, tags), decided before a run and completed after it: one path
/// for `gendr upscale` and `gendr join`.
pub(crate) struct OtherStreams {
    /// The line on video streams beyond the first, copied as they are.
    extra_videos: Option<String>,
    keep_subtitles: bool,
    lost_titles: Option<String>,
    chapters: Option<String>,
    writes_matroska: bool,
    /// Track flags and attachments of a Matroska input, written into a
    /// Matroska output after muxing.
    matroska_extras: finishing::MatroskaExtras,
    /// The line on attachments a non-Matroska output cannot hold.
    lost_attachments: Option<String>,
}

impl OtherStreams {
    /// Refuses what the output cannot hold; hands chapters to `muxer`.
    pub(crate) fn prepare(target: Target, info: &MediaInfo, muxer: &gst::Element) -> Result<Self> {
        let output = target.output.display().to_string();
        let keep_subtitles = target.options.subtitles == KeepOrDrop::Keep;
        if keep_subtitles {
            streams::check_subtitles(info, muxer, &output)?;
        }

        let matroska_extras = finishing::MatroskaExtras::read(target.input)?;
        let writes_matroska = streams::writes_matroska(muxer);
        let lost_attachments = match matroska_extras.attachment_count() {
            n if n > 0 && !writes_matroska => Some(format!(
                "gendr: {output} cannot hold attachments: {n} attached file(s) left out \
                 (.mkv keeps them)"
            )),
            _ => None,
        };
        Ok(OtherStreams {
            extra_videos: streams::check_extra_videos(info, muxer, &output)?,
            keep_subtitles,
            lost_titles: streams::lost_titles(info, muxer, &output),
            chapters: streams::plan_chapters(
                target.input,
                target.output,
                info,
                muxer,
                target.options.chapters == KeepOrDrop::Keep,
            )?,
            writes_matroska,
            matroska_extras,
            lost_attachments,
        })
    }

    /// The start line's words on subtitles.
    pub(crate) fn subtitles_summary(&self, info: &MediaInfo) -> String {
        streams::subtitles_summary(info, self.keep_subtitles)
    }

    /// The start line's words on chapters, after a comma, if any.
    pub(crate) fn chapters_summary(&self) -> String {
        self.chapters
            .as_ref()
            .map(|c| format!(", {c}"))
            .unwrap_or_default()
    }

    /// Said even with -q, like every other loss.
    pub(crate) fn say_losses(&self, observer: &dyn Observer) {
        for line in [
            &self.extra_videos,
            &self.lost_titles,
            &self.lost_attachments,
        ]
        .into_iter()
        .flatten()
        {
            observer.say(line);
        }
    }

    /// Completes the written file before it is moved into place.
    pub(crate) fn finish(&self, partial: &Path) -> Result<()> {
        if self.writes_matroska {
            finishing::restore_matroska_tags(partial)?;
            self.matroska_extras.write_into(partial)?;
        } else {
            finishing::repair_opus_boxes(partial)?;
        }
        Ok(())
    }
}

/// The options checked against the input before any work: the model, the
/// frame size, the output size, HDR metadata. Returns the encoding and the
/// start line's notes on the video.
fn check_options(info: &MediaInfo, target: Target) -> Result<(Encoding, Vec<String>)> {
    target.options.sr.validate()?;
    check_frame_size(info, target.input, &target.options.sr.model)?;
    let notes = video::describe(target.options, info)?;
    let encoding = Encoding::choose(target.options, info);
    check_hdr_metadata(info, &encoding, target.output)?;
    Ok((encoding, notes))
}

/// What a segmented job checks when it is planned, so that nothing it could
/// know is found only at the join: the options against the input, and the
/// other streams against the output's container when that is known.
pub(crate) fn check_job(info: &MediaInfo, target: Target, output_known: bool) -> Result<()> {
    check_options(info, target)?;
    if target.options.deinterlace == Deinterlace::Field {
        bail!(
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
            "{} is a directory; name the output file, e.g. {}",
            output.display(),
            output.join("out.mp4").display()
        );
    }
    if output.exists() && !overwrite {
        bail!(
            "{} exists; pass --overwrite to replace it",
            output.display()
        );
    }
    if std::fs::canonicalize(target.input).ok() == std::fs::canonicalize(output).ok() {
        bail!("input and output are the same file");
    }
    Ok(())
}

/// A unique, hidden file next to `output` for writing it, recognisably
/// gendr's; removed on every early return. Created readable as any new file
/// is under the umask (tempfile's own 0600 would keep the finished output
/// from the other users of shared storage).
pub(crate) fn partial_for(output: &Path) -> Result<tempfile::NamedTempFile> {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let folder = match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".gendr-partial")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(&folder)
        .with_context(|| format!("{}: cannot write here", output.display()))
}

/// Moves a finished partial file into place: over an existing output only
/// when `overwrite`, so a file that appeared meanwhile is never replaced.
pub(crate) fn persist(
    partial: tempfile::NamedTempFile,
    output: &Path,
    overwrite: bool,
) -> Result<()> {
    let persisted = if overwrite {
        partial.persist(output)
    } else {
        partial.persist_noclobber(output)
    };
    persisted
        .map(drop)
        .map_err(|e| e.error)
        .with_context(|| format!("moving the finished file to {}", output.display()))
}

/// One file, start to finish, telling `bar` how it goes: all of
/// `gendr upscale IN OUT`, and each file of a batch. Returns the frames written.
pub fn run_one(args: &UpscaleRequest, bar: &dyn Observer, interrupted: &AtomicBool) -> Result<u64> {
    let info = media::discover(&args.input)?;
    let (encoding, video_notes) = check_options(&info, args.target())?;
    check_output(args.target(), args.overwrite)?;
    let muxer = muxer_for(&args.output)?;
    let others = OtherStreams::prepare(args.target(), &info, &muxer)?;
    if let Some((complete, expected)) = media::y4m_incomplete(&args.input)? {
        bail!(
            "{}: truncated: frame {expected} is cut short ({complete} complete frames)",
            args.input.display()
        );
    }
    // Claimed before the checks below so that they see what a run that
    // finished meanwhile left, and so that no two runs share a file.
    let claim = media::claim_output(&args.output)?;
    check_output(args.target(), args.overwrite)?;
    let partial = partial_for(&args.output)?;

    let log = Arc::new(media::ErrorLog::watch());
    let job = Job::build(
        args.target(),
        &info,
        muxer,
        partial.path(),
        log.clone(),
        Video::Upscale {
            window: None,
            video_only: false,
        },
    )?;
    if !args.quiet {
        let fps = info.framerate;
        bar.say(&format!(
            "gendr: {} {}x{} at {}/{} fps, {} audio stream(s) copied, {}{}, model {}, video encoded {}",
            args.input.display(),
            info.width,
            info.height,
            fps.numer(),
            fps.denom(),
            info.audio_streams,
            others.subtitles_summary(&info),
            others.chapters_summary(),
            args.options.sr.model,
            encoding.describe()
        ),
        );
        if let Some(orientation) = &info.orientation {
            bar.say(&format!(
                "gendr: frames turned upright from the source's display orientation {orientation} \
                 (the output container cannot store one)"
            ));
        }
        for note in &video_notes {
            bar.say(&format!("gendr: {note}"));
        }
    }
    others.say_losses(bar);
    let started = Instant::now();
    let frames = job.run(&info, &args.options, args.stall_timeout, interrupted, bar)?;
    others.finish(partial.path())?;
    let damaged = log.decoder_errors();
    let undecodable = job.undecodable();
    persist(partial, &args.output, args.overwrite)?;
    drop(claim);
    let secs = started.elapsed().as_secs_f64();
    // Packets and frames differ for some codecs (fields, packed B-frames):
    // the difference is told only when the decoder also saw damage.
    if damaged > 0 {
        bar.say(&format!(
            "gendr: warning: {}: the decoder reported {damaged} error(s); damaged frames were concealed \
             and may show artefacts, {undecodable} could not be decoded at all",
            args.input.display()
        ));
    }
    bar.say(&format!(
        "gendr: wrote {} ({frames} frames in {secs:.1} s, {:.2} fps)",
        args.output.display(),
        frames as f64 / secs.max(1e-9)
    ));
    Ok(frames)
}
