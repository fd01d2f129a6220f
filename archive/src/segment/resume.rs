//! `gendr upscale --resume`: plan, run the segments not yet done and join,
//! in a hidden job folder next to the output that survives interruptions.

use std::path::Path;

use crate::error::{err, Context, Result};

use super::manifest::{self, InputId, Manifest};
use super::session::Session;
use super::{join, plan, run};
use crate::media;
use crate::request::{Container, UpscaleOptions, UpscaleRequest, DEFAULT_SEGMENT_SECONDS};
use crate::upscale;
use crate::{Caller, Observer};

pub fn resume(args: UpscaleRequest, caller: Caller<'_>) -> Result<()> {
    let info = media::discover(&args.input)?;
    plan::check_options(&info, &args.input, &args.options, Some(args.output.clone()))?;
    upscale::check_output(args.target(), args.overwrite)?;
    upscale::muxer_for(&args.output)?;
    let claim = media::claim_output(&args.output)?;
    upscale::check_output(args.target(), args.overwrite)?;
    let dir = media::hidden_sibling(&args.output, "gendr-job");
    let container = Container::of(&args.output);
    let seconds = args.segment_seconds.unwrap_or(DEFAULT_SEGMENT_SECONDS);
    let observer = caller.observer;
    let manifest = match reusable(&dir, &args, seconds, observer)? {
        Some(manifest) => manifest,
        None => {
            let manifest = plan::plan(&args.input, &args.options, container, seconds)?;
            manifest.save(&dir)?;
            manifest
        }
    };
    let count = manifest.segments.len();
    if !args.quiet {
        observer.say(&format!(
            "gendr: {} in {count} segment(s) of about {seconds} s, kept in {} until {} is written",
            args.input.display(),
            dir.display(),
            args.output.display()
        ));
        if let Some(note) = upscale::timeline_start_note(&info, &args.output) {
            observer.say(&format!("gendr: {note}"));
        }
    }
    let session =
        Session::new(&dir, &manifest, args.quiet, args.stall_timeout, caller).with_info(info);
    let done: Vec<bool> = (0..count).map(|i| session.done(i).is_ok()).collect();
    let finished = done.iter().filter(|d| **d).count();
    let prefix = done.iter().take_while(|d| **d).count();
    if finished == count {
        observer.say(&format!(
            "gendr: all {count} segments already done, joining"
        ));
    } else if finished > 0 && finished == prefix {
        observer.say(&format!(
            "gendr: segments 0–{} of {count} already done, resuming at {prefix}",
            prefix - 1
        ));
    } else if finished > 0 {
        observer.say(&format!(
            "gendr: {finished} of {count} segments already done, making the rest"
        ));
    }
    for index in (0..count).filter(|i| !done[*i]) {
        run::run_segment(&session, index)?;
    }
    join::join_into(&session, &args.output, args.overwrite)?;
    std::fs::remove_dir_all(&dir).map_err(|e| {
        err!(
            Io,
            "{} written, but its job folder {} could not be removed: {e}",
            args.output.display(),
            dir.display()
        )
    })?;
    drop(claim);
    Ok(())
}

/// The job folder's plan if it fits this run; None (with its segments
/// removed and a line saying why) when the input or an option changed.
fn reusable(
    dir: &Path,
    args: &UpscaleRequest,
    seconds: f64,
    observer: &dyn Observer,
) -> Result<Option<Manifest>> {
    if !manifest::manifest_path(dir).exists() {
        return Ok(None);
    }
    let manifest = Manifest::load(dir)?;
    let now = InputId::of(&args.input)?;
    let why = if let Some(what) = manifest.input.changed(&now) {
        Some(format!("{} changed: {what}", args.input.display()))
    } else if let Some(what) = changed_options(&manifest.options, &args.options) {
        Some(format!("options changed: {what}"))
    } else if manifest.segment_seconds != seconds {
        Some(format!(
            "options changed: --segment-seconds {} → {seconds}",
            manifest.segment_seconds
        ))
    } else {
        None
    };
    let Some(why) = why else {
        // The same content under another path (moved or renamed): the plan
        // and its segments stand, the manifest names the new path.
        if now.path != manifest.input.path {
            observer.say(&format!(
                "gendr: {} moved to {} since it was planned; its finished segments are kept",
                manifest.input.path.display(),
                now.path.display()
            ));
            let moved = Manifest {
                input: now,
                ..manifest
            };
            moved.save(dir)?;
            return Ok(Some(moved));
        }
        return Ok(Some(manifest));
    };
    observer.say(&format!(
        "gendr: {why} since {} was planned; its segments are discarded, starting over",
        dir.display()
    ));
    let segments = dir.join("segments");
    if segments.exists() {
        std::fs::remove_dir_all(&segments)
            .with_context(|| format!("cannot remove {}", segments.display()))?;
    }
    Ok(None)
}

/// The options that differ, as `--name old → new`.
fn changed_options(old: &UpscaleOptions, new: &UpscaleOptions) -> Option<String> {
    fn flat(options: &UpscaleOptions) -> Vec<(String, serde_json::Value)> {
        let mut out = Vec::new();
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(options) {
            for (key, value) in map {
                match value {
                    serde_json::Value::Object(inner) => out.extend(inner),
                    value => out.push((key, value)),
                }
            }
        }
        out
    }
    let new = flat(new);
    let changes: Vec<String> = flat(old)
        .into_iter()
        .zip(new)
        .filter(|(a, b)| a != b)
        .map(|((key, a), (_, b))| format!("--{} {a} → {b}", key.replace('_', "-")))
        .collect();
    (!changes.is_empty()).then(|| changes.join(", "))
}

#[cfg(test)]
mod tests;
