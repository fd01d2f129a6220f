//! `gendr upscale DIR_IN DIR_OUT`: every video in a folder tree, each
//! through the same run as a single file, written at the mirrored path.
//! Outputs appear only when complete, so a finished one is skipped on the
//! next run, and a batch can be stopped and run again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use gendr_archive::media;
use gendr_archive::request::{Container, UpscaleRequest as Args};
use gendr_archive::upscale::run_one;
use gendr_archive::Caller;

use crate::progress::{cancel_on_ctrl_c, say, Bar};

/// Extensions of video files: one that cannot be read is a failure, where
/// an unreadable file of another kind is passed over as not a video.
const VIDEO_EXTENSIONS: &[&str] = &[
    "3g2", "3gp", "asf", "avi", "divx", "dv", "f4v", "flv", "m2ts", "m2v", "m4v", "mkv", "mov",
    "mp4", "mpeg", "mpg", "mts", "mxf", "ogv", "rm", "rmvb", "ts", "vob", "webm", "wmv", "y4m",
];

/// What a file in the input tree turned out to be.
enum Found {
    /// A video: upscaled.
    Video { frames: Option<u64> },
    /// A file named as a video that cannot be read: a failure.
    Broken(String),
    /// Not a video at all: passed over, with the reason.
    Other(String),
}

pub fn run(args: &Args) -> Result<()> {
    if args.resume {
        bail!("--resume is for one file; a folder run skips the files already done, so running it again continues");
    }
    args.options.sr.validate()?;
    let (root_in, root_out) = (&args.input, &args.output);
    if root_out.exists() && !root_out.is_dir() {
        bail!(
            "{}: is a file; a folder input needs an output folder",
            root_out.display()
        );
    }
    // `gendr upscale clips/ out.mp4` is a slip, not a wish for a folder named so.
    if !root_out.exists() && Container::of(root_out).is_some() {
        bail!(
            "{}: names a file; a folder input needs an output folder",
            root_out.display()
        );
    }
    std::fs::create_dir_all(root_out)
        .with_context(|| format!("{}: cannot create the output folder", root_out.display()))?;
    let canon_out = std::fs::canonicalize(root_out)?;
    if std::fs::canonicalize(root_in)? == canon_out {
        bail!("the output folder is the input folder; choose another");
    }
    let interrupted = cancel_on_ctrl_c();

    let mut files = Vec::new();
    let mut failures = Vec::new();
    walk(
        root_in,
        Path::new(""),
        &canon_out,
        &mut files,
        &mut failures,
    );
    let mut todo = Vec::new();
    let (mut done_before, mut others) = (0, 0);
    let mut claimed: HashMap<PathBuf, PathBuf> = HashMap::new();
    for rel in files {
        if interrupted.is_cancelled() {
            bail!("interrupted before any file was started");
        }
        // `rel` is the path below the input folder, mirrored below the output folder.
        let frames = match classify(&root_in.join(&rel)) {
            Found::Video { frames } => frames,
            Found::Broken(why) => {
                eprintln!("gendr: failed: {}: {why}", rel.display());
                failures.push((rel, why));
                continue;
            }
            Found::Other(why) => {
                eprintln!("gendr: skipping {}: not a video ({why})", rel.display());
                others += 1;
                continue;
            }
        };
        let output = root_out.join(output_name(&rel, args.container));
        if let Some(first) = claimed.insert(output.clone(), rel.clone()) {
            let why = format!(
                "its output {} is also {}'s; rename one or pass --container",
                output.display(),
                first.display()
            );
            eprintln!("gendr: failed: {}: {why}", rel.display());
            failures.push((rel, why));
            continue;
        }
        if output.exists() && !args.overwrite {
            eprintln!(
                "gendr: skipping {}: {} is already done (--overwrite to redo it)",
                rel.display(),
                output.display()
            );
            done_before += 1;
            continue;
        }
        todo.push((rel, output, frames.unwrap_or(0)));
    }
    let total_frames: u64 = todo.iter().map(|t| t.2).sum();
    eprintln!(
        "gendr: {} video(s) to upscale ({total_frames} frames), {done_before} already done, \
         {others} other file(s) passed over",
        todo.len()
    );

    let multi = MultiProgress::with_draw_target(if args.quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let overall = multi.add(ProgressBar::new(total_frames));
    overall.set_style(
        ProgressStyle::with_template(
            "all: [{elapsed_precise}] {wide_bar} {pos}/{len} frames  {msg}  ETA {eta}",
        )
        .expect("static template"),
    );
    let finished_frames = AtomicU64::new(0);
    let current: Mutex<Option<(ProgressBar, u64)>> = Mutex::new(None);
    let stop = AtomicBool::new(false);
    let mut written = 0;
    std::thread::scope(|scope| {
        // The overall bar follows the running file's bar.
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let running = current
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
                    .map_or(0, |(bar, expected)| bar.position().min(*expected));
                overall.set_position(finished_frames.load(Ordering::Relaxed) + running);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        // Stops the thread above however this loop ends (a panic included).
        let _stop = SetOnDrop(&stop);
        for (index, (rel, output, expected)) in todo.iter().enumerate() {
            if interrupted.is_cancelled() {
                break;
            }
            overall.set_message(format!("{index}/{} files", todo.len()));
            let file_args = Args {
                input: root_in.join(rel),
                output: output.clone(),
                container: None,
                ..args.clone()
            };
            let bar = multi.insert_before(&overall, ProgressBar::new(0));
            *current.lock().unwrap_or_else(|p| p.into_inner()) = Some((bar.clone(), *expected));
            let mut made = Vec::new();
            let result = make_folders(output)
                .with_context(|| format!("{}: cannot create its folder", output.display()))
                .and_then(|folders| {
                    made = folders;
                    let caller = Caller {
                        observer: &Bar::on(bar.clone()),
                        cancel: &interrupted,
                    };
                    run_one(&file_args, caller)
                });
            *current.lock().unwrap_or_else(|p| p.into_inner()) = None;
            multi.remove(&bar);
            let finished = finished_frames.fetch_add(*expected, Ordering::Relaxed) + expected;
            overall.set_position(finished);
            match result {
                Ok(_) => written += 1,
                Err(_) if interrupted.is_cancelled() => {
                    remove_made_folders(&made);
                    break;
                }
                Err(e) => {
                    remove_made_folders(&made);
                    let reason = format!("{e:#}").replace('\n', " ");
                    say(
                        &overall,
                        &format!("gendr: failed: {}: {reason}", rel.display()),
                    );
                    failures.push((rel.clone(), reason));
                }
            }
        }
    });
    overall.finish_and_clear();

    eprintln!(
        "gendr: {written} written, {done_before} already done, {others} not video, {} failed",
        failures.len()
    );
    for (rel, reason) in &failures {
        eprintln!("gendr: failed: {}: {reason}", rel.display());
    }
    if interrupted.is_cancelled() {
        bail!(
            "interrupted after {written} of {} video(s); finished outputs are kept, \
             the same command again does the rest",
            todo.len()
        );
    }
    if !failures.is_empty() {
        bail!("{} file(s) failed (listed above)", failures.len());
    }
    Ok(())
}

struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Collects the files below `dir` (relative to the input folder), sorted,
/// passing over hidden names (gendr's own partial and lock files among
/// them), the output folder when it lies inside, and links to folders (a
/// loop could never end).
fn walk(
    dir: &Path,
    rel: &Path,
    skip: &Path,
    files: &mut Vec<PathBuf>,
    failures: &mut Vec<(PathBuf, String)>,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            failures.push((
                rel.to_path_buf(),
                format!("the folder cannot be read ({e})"),
            ));
            return;
        }
    };
    let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let (path, rel) = (entry.path(), rel.join(&name));
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        if path.is_dir() {
            if !is_link && std::fs::canonicalize(&path).ok().as_deref() != Some(skip) {
                walk(&path, &rel, skip, files, failures);
            }
        } else if path.is_file() {
            files.push(rel);
        }
    }
}

/// Tells videos from other files by what the discoverer finds in them.
/// A file found broken here is reported without a run: the run would
/// discover it again.
fn classify(path: &Path) -> Found {
    let named_video = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.as_str()));
    let info = match discover(path) {
        Ok(info) => info,
        Err(e) if named_video => {
            return Found::Broken(format!("not a playable media file ({e:#})"))
        }
        Err(e) => return Found::Other(format!("{e:#}")),
    };
    let videos = info.video_streams();
    if videos.is_empty() {
        return Found::Other(if info.audio_streams().is_empty() {
            "no video stream".into()
        } else {
            "audio only".into()
        });
    }
    if videos.iter().all(|v| v.is_image()) {
        return Found::Other("a still picture".into());
    }
    let video = &videos[0];
    Found::Video {
        frames: media::frame_count(info.duration(), video.framerate()),
    }
}

/// GStreamer 1.22's discoverer, when it is not the first discovery in a
/// process, now and then loses a demuxer's error on a damaged file and waits
/// out its whole timeout (gst-discoverer-1.0 does it too, given several
/// files). Short first tries keep that cheap; the last gives a slow
/// file its time.
fn discover(path: &Path) -> Result<gst_pbutils::DiscovererInfo> {
    let uri = media::file_uri(path)?;
    for secs in [2, 5, 30] {
        let info = gst_pbutils::Discoverer::new(gst::ClockTime::from_seconds(secs))?
            .discover_uri(&uri)
            .map_err(|e| anyhow!("{}", media::first_line(&e.to_string())))?;
        if info.result() != gst_pbutils::DiscovererResult::Timeout {
            return Ok(info);
        }
    }
    bail!("no answer from GStreamer's discoverer within 30 s")
}

/// `rel` with the output container's extension: `container`, or the
/// input's own when it is one gendr writes, otherwise mkv, which holds any
/// codec the input's audio may have.
fn output_name(rel: &Path, container: Option<Container>) -> PathBuf {
    let container = container
        .or_else(|| Container::of(rel))
        .unwrap_or(Container::Mkv);
    rel.with_extension(container.name())
}
/// Makes the folders `output` needs; returns those it made, outermost
/// first, so that a failure removes only them (a folder that was there
/// before, read-only or not, is the user's).
fn make_folders(output: &Path) -> std::io::Result<Vec<PathBuf>> {
    let Some(parent) = output.parent() else {
        return Ok(Vec::new());
    };
    let missing: Vec<PathBuf> = parent
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect();
    std::fs::create_dir_all(parent)?;
    Ok(missing.into_iter().rev().collect())
}

/// Removes the folders made for a failed file's output, innermost first,
/// while they are empty.
fn remove_made_folders(made: &[PathBuf]) {
    for dir in made.iter().rev() {
        if std::fs::remove_dir(dir).is_err() {
            break;
        }
    }
}
