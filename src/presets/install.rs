//! Copying the converted presets' files (made by `make models`, not
//! committed) into a models folder, each checked against the sum that
//! `make models` checks its conversion against.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::Preset;
use crate::{Error, Result};

/// The sums `make models` checks its conversions against.
const CONVERTED_SUMS: &str = include_str!("../../models/CONVERTED.sha256");

/// What became of one converted preset.
#[derive(Debug, PartialEq)]
pub enum Installed {
    /// Its file was copied from `from` to `to`.
    Copied { from: PathBuf, to: PathBuf },
    /// Its file is in the target folder already, with nothing to take it from.
    AlreadyThere(PathBuf),
    /// Its file is nowhere: `make models` has not made it.
    NotConverted,
}

/// Copies every converted preset's file into `target`, taking it from
/// `from` when given, else from where it is found now; `each` hears what
/// became of each preset, in order. A file whose sha256 is not the one
/// `make models` gives is refused, and nothing after it is copied.
pub fn converted(
    target: &Path,
    from: Option<&Path>,
    mut each: impl FnMut(&Preset, Installed),
) -> Result<()> {
    for preset in super::all().iter().filter(|p| p.converted) {
        let dest = target.join(&preset.file);
        let source = match from {
            Some(dir) => Some(dir.join(&preset.file)).filter(|p| p.is_file()),
            None => preset.located().filter(|c| c.path != dest).map(|c| c.path),
        };
        let Some(source) = source else {
            each(
                preset,
                match dest.is_file() {
                    true => Installed::AlreadyThere(dest),
                    false => Installed::NotConverted,
                },
            );
            continue;
        };
        let expected = expected_sum(&preset.file)
            .expect("models/CONVERTED.sha256 has a sum for every converted preset (a test checks)");
        let actual = sha256_file(&source)?;
        if actual != expected {
            return Err(Error::ModelSum {
                path: source,
                actual,
                expected: expected.into(),
            });
        }
        copy_into_place(&source, &dest)?;
        each(
            preset,
            Installed::Copied {
                from: source,
                to: dest,
            },
        );
    }
    Ok(())
}

fn expected_sum(file: &str) -> Option<&'static str> {
    CONVERTED_SUMS
        .lines()
        .filter_map(|line| line.split_once("  "))
        .find(|(_, name)| *name == file)
        .map(|(sum, _)| sum)
}

/// An I/O error that names the path it happened on.
fn at(what: &str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let place = format!("{what}{}", path.display());
    move |e| Error::Io(io::Error::new(e.kind(), format!("{place}: {e}")))
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(at("", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(at("reading ", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Writes beside the destination and renames, so a reader never sees half a model.
fn copy_into_place(source: &Path, dest: &Path) -> Result<()> {
    let dir = dest.parent().expect("a file in a folder");
    std::fs::create_dir_all(dir).map_err(at("creating ", dir))?;
    let partial = tempfile::NamedTempFile::new_in(dir).map_err(at("writing in ", dir))?;
    std::fs::copy(source, partial.path()).map_err(at("copying ", source))?;
    partial
        .persist(dest)
        .map_err(|e| at("renaming into ", dest)(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_converted_preset_has_a_sum() {
        for preset in super::super::all().iter().filter(|p| p.converted) {
            let sum = expected_sum(&preset.file).unwrap_or_else(|| panic!("{}", preset.file));
            assert_eq!(sum.len(), 64, "{}", preset.file);
        }
    }

    #[test]
    fn a_file_whose_sum_is_wrong_is_refused_and_not_copied() {
        let (from, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = super::super::all().iter().find(|p| p.converted).unwrap();
        std::fs::write(from.path().join(&first.file), b"not a model").unwrap();
        let mut heard = Vec::new();
        let error = converted(target.path(), Some(from.path()), |p, outcome| {
            heard.push((p.name.clone(), outcome))
        })
        .unwrap_err();
        assert!(matches!(error, Error::ModelSum { .. }), "{error}");
        assert!(error.to_string().contains("not installed"), "{error}");
        assert!(!target.path().join(&first.file).exists());
        // The presets before it, found nowhere, were said to be so.
        assert!(heard.iter().all(|(_, o)| *o == Installed::NotConverted));
    }

    #[test]
    fn presets_found_nowhere_are_said_not_converted_or_already_there() {
        let (from, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let converted_presets: Vec<_> =
            super::super::all().iter().filter(|p| p.converted).collect();
        std::fs::write(target.path().join(&converted_presets[0].file), b"kept").unwrap();
        let mut heard = Vec::new();
        converted(target.path(), Some(from.path()), |p, outcome| {
            heard.push((p.name.clone(), outcome))
        })
        .unwrap();
        assert_eq!(heard.len(), converted_presets.len());
        assert_eq!(
            heard[0].1,
            Installed::AlreadyThere(target.path().join(&converted_presets[0].file))
        );
        assert!(heard[1..]
            .iter()
            .all(|(_, o)| *o == Installed::NotConverted));
    }
}
