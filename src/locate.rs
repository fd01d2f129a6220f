//! Where gendr looks for what it needs at run time: runtime libraries (ONNX
//! Runtime, and any other inference runtime), models and samples.
//!
//! One search order for all of them, so an installed gendr needs no checkout:
//!
//! 1. an explicit setting (an environment variable), which when given is the
//!    whole answer;
//! 2. the user's data folder (`$XDG_DATA_HOME/gendr`, else
//!    `~/.local/share/gendr`);
//! 3. the installed folders: for data `$XDG_DATA_DIRS/gendr` (by default
//!    `/usr/local/share/gendr`), then always `/usr/share/gendr`; for libraries
//!    `/usr/lib/<multiarch>/gendr` for libraries, kept out of the linker's path);
//! 4. for developers, the checkout that holds the running binary or plugin.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::checkout;

/// Which step of the search order a candidate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Named by an environment variable.
    Setting,
    /// The user's data folder.
    User,
    /// The folders a package installs into.
    System,
    /// The developer's checkout.
    Checkout,
}

impl Origin {
    /// The word `gendr models` shows for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Setting => "setting",
            Origin::User => "user",
            Origin::System => "system",
            Origin::Checkout => "checkout",
        }
    }
}

/// One place a file may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub path: PathBuf,
    pub origin: Origin,
}

/// A shared library of an inference runtime.
#[derive(Debug, Clone, Copy)]
pub struct Library<'a> {
    /// The library's file name, e.g. `libonnxruntime.so.1.31.1`.
    pub file: &'a str,
    /// The environment variable that names the library file itself, e.g.
    /// `ORT_DYLIB_PATH`.
    pub env_var: &'a str,
    /// Folders of a checkout that hold it, relative to the checkout, first
    /// preferred (e.g. `.deps/ort-gpu/onnxruntime/capi`).
    pub checkout_dirs: &'a [&'a str],
}

/// Where a runtime library is looked for, in order.
pub fn library(lib: &Library) -> Vec<Candidate> {
    library_in(lib, &Environment::current(), &checkout::roots())
}

/// Where a data file (`models/…`, `samples/…`) is looked for, in order.
/// `env_var`, when set, names the folder that replaces `folder` everywhere.
pub fn data(env_var: Option<&str>, folder: &str, file: &str) -> Vec<Candidate> {
    data_in(
        env_var,
        folder,
        file,
        &Environment::current(),
        &checkout::roots(),
    )
}

/// The first candidate that is a file.
pub fn first_present(candidates: &[Candidate]) -> Option<&Candidate> {
    candidates.iter().find(|c| c.path.is_file())
}

/// The user's data folder for gendr (`$XDG_DATA_HOME/gendr` or
/// `~/.local/share/gendr`); `None` without a home.
pub fn user_data_dir() -> Option<PathBuf> {
    Environment::current().user_dir()
}

/// The variables the search reads, taken once so that tests can give their own.
struct Environment {
    vars: Vec<(String, std::ffi::OsString)>,
}

impl Environment {
    fn current() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
                .collect(),
        }
    }

    fn get(&self, name: &str) -> Option<&std::ffi::OsStr> {
        self.vars
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_os_str())
    }

    /// An absolute path from a variable; the XDG rules ignore relative ones.
    fn absolute(&self, name: &str) -> Option<PathBuf> {
        self.get(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    }

    fn user_dir(&self) -> Option<PathBuf> {
        let data_home = self
            .absolute("XDG_DATA_HOME")
            .or_else(|| self.absolute("HOME").map(|h| h.join(".local/share")))?;
        Some(data_home.join("gendr"))
    }

    fn system_data_dirs(&self) -> Vec<PathBuf> {
        let dirs: Vec<PathBuf> = self
            .get("XDG_DATA_DIRS")
            .map(|v| {
                std::env::split_paths(v)
                    .filter(|p| p.is_absolute())
                    .collect()
            })
            .unwrap_or_default();
        let mut dirs = if dirs.is_empty() {
            vec![PathBuf::from("/usr/local/share")]
        } else {
            dirs
        };
        // Where the package installs, even under an XDG_DATA_DIRS that leaves it out.
        dirs.push(PathBuf::from("/usr/share"));
        dirs.into_iter().map(|d| d.join("gendr")).collect()
    }
}

/// Where a package puts gendr's private libraries: beside the system's own,
/// in a folder of its own so nothing else links against them.
fn system_library_dir() -> PathBuf {
    PathBuf::from(format!(
        "/usr/lib/{}-linux-gnu/gendr",
        std::env::consts::ARCH
    ))
}

fn library_in(lib: &Library, env: &Environment, roots: &[PathBuf]) -> Vec<Candidate> {
    if let Some(path) = env.get(lib.env_var) {
        return vec![Candidate {
            path: PathBuf::from(path),
            origin: Origin::Setting,
        }];
    }
    let mut out = Vec::new();
    if let Some(user) = env.user_dir() {
        push(&mut out, user.join("lib").join(lib.file), Origin::User);
    }
    push(
        &mut out,
        system_library_dir().join(lib.file),
        Origin::System,
    );
    for root in roots {
        for dir in lib.checkout_dirs {
            push(&mut out, root.join(dir).join(lib.file), Origin::Checkout);
        }
    }
    out
}

fn data_in(
    env_var: Option<&str>,
    folder: &str,
    file: &str,
    env: &Environment,
    roots: &[PathBuf],
) -> Vec<Candidate> {
    if let Some(dir) = env_var.and_then(|v| env.get(v)) {
        return vec![Candidate {
            path: Path::new(dir).join(file),
            origin: Origin::Setting,
        }];
    }
    let mut out = Vec::new();
    if let Some(user) = env.user_dir() {
        push(&mut out, user.join(folder).join(file), Origin::User);
    }
    for dir in env.system_data_dirs() {
        push(&mut out, dir.join(folder).join(file), Origin::System);
    }
    for root in roots {
        push(&mut out, root.join(folder).join(file), Origin::Checkout);
    }
    out
}

fn push(out: &mut Vec<Candidate>, path: PathBuf, origin: Origin) {
    if !out.iter().any(|c| c.path == path) {
        out.push(Candidate { path, origin });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Environment {
        Environment {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.into()))
                .collect(),
        }
    }

    const ORT: Library = Library {
        file: "libonnxruntime.so.9",
        env_var: "ORT_DYLIB_PATH",
        checkout_dirs: &[".deps/gpu", ".deps/cpu"],
    };

    fn listed(c: &[Candidate]) -> Vec<(String, Origin)> {
        c.iter()
            .map(|c| (c.path.display().to_string(), c.origin))
            .collect()
    }

    #[test]
    fn a_library_is_looked_for_by_user_then_system_then_checkout() {
        let roots = [PathBuf::from("/src/gendr")];
        let got = library_in(&ORT, &env(&[("HOME", "/home/u")]), &roots);
        let lib_dir = system_library_dir().display().to_string();
        assert_eq!(
            listed(&got),
            vec![
                (
                    "/home/u/.local/share/gendr/lib/libonnxruntime.so.9".into(),
                    Origin::User
                ),
                (format!("{lib_dir}/libonnxruntime.so.9"), Origin::System),
                (
                    "/src/gendr/.deps/gpu/libonnxruntime.so.9".into(),
                    Origin::Checkout
                ),
                (
                    "/src/gendr/.deps/cpu/libonnxruntime.so.9".into(),
                    Origin::Checkout
                ),
            ]
        );
        assert!(lib_dir.starts_with("/usr/lib/") && lib_dir.ends_with("-linux-gnu/gendr"));
    }

    #[test]
    fn the_setting_replaces_the_search_and_xdg_data_home_the_home_folder() {
        let roots = [PathBuf::from("/src/gendr")];
        let set = env(&[("ORT_DYLIB_PATH", "/opt/ort.so"), ("HOME", "/home/u")]);
        assert_eq!(
            listed(&library_in(&ORT, &set, &roots)),
            vec![("/opt/ort.so".into(), Origin::Setting)]
        );
        let xdg = env(&[("XDG_DATA_HOME", "/data"), ("HOME", "/home/u")]);
        assert_eq!(
            library_in(&ORT, &xdg, &roots)[0].path,
            Path::new("/data/gendr/lib/libonnxruntime.so.9")
        );
        // A relative XDG_DATA_HOME is ignored, as the XDG rules say; no home, no user folder.
        let relative = env(&[("XDG_DATA_HOME", "data"), ("HOME", "/home/u")]);
        assert_eq!(library_in(&ORT, &relative, &roots)[0].origin, Origin::User);
        assert!(library_in(&ORT, &relative, &roots)[0]
            .path
            .starts_with("/home/u/.local/share"));
        assert_eq!(
            library_in(&ORT, &env(&[]), &roots)[0].origin,
            Origin::System
        );
    }

    #[test]
    fn data_files_follow_xdg_data_dirs_before_the_checkout() {
        let roots = [PathBuf::from("/src/gendr")];
        let got = data_in(
            Some("GENDR_MODELS_DIR"),
            "models",
            "a.onnx",
            &env(&[("HOME", "/home/u")]),
            &roots,
        );
        assert_eq!(
            listed(&got),
            vec![
                (
                    "/home/u/.local/share/gendr/models/a.onnx".into(),
                    Origin::User
                ),
                (
                    "/usr/local/share/gendr/models/a.onnx".into(),
                    Origin::System
                ),
                ("/usr/share/gendr/models/a.onnx".into(), Origin::System),
                ("/src/gendr/models/a.onnx".into(), Origin::Checkout),
            ]
        );
        let dirs = env(&[("XDG_DATA_DIRS", "/opt/share:relative")]);
        let got = data_in(None, "samples", "s.mp4", &dirs, &[]);
        assert_eq!(
            listed(&got),
            vec![
                ("/opt/share/gendr/samples/s.mp4".into(), Origin::System),
                ("/usr/share/gendr/samples/s.mp4".into(), Origin::System),
            ]
        );
        let set = env(&[("GENDR_MODELS_DIR", "/m"), ("HOME", "/home/u")]);
        assert_eq!(
            listed(&data_in(
                Some("GENDR_MODELS_DIR"),
                "models",
                "a.onnx",
                &set,
                &roots
            )),
            vec![("/m/a.onnx".into(), Origin::Setting)]
        );
    }

    #[test]
    fn the_first_present_candidate_wins() {
        let dir = tempfile::tempdir().unwrap();
        let there = dir.path().join("there.onnx");
        std::fs::write(&there, b"x").unwrap();
        let candidates = [
            Candidate {
                path: dir.path().join("absent.onnx"),
                origin: Origin::User,
            },
            Candidate {
                path: dir.path().to_path_buf(), // a folder is not the file
                origin: Origin::System,
            },
            Candidate {
                path: there.clone(),
                origin: Origin::Checkout,
            },
        ];
        assert_eq!(first_present(&candidates).unwrap().path, there);
        assert!(first_present(&candidates[..2]).is_none());
    }
}
