//! Who may watch or feed the stream: RTSP users and the SRT passphrase.
//! Secrets come from the environment or a file, never the command line,
//! where any user of the machine could read them.

use std::path::Path;

use anyhow::{bail, Context, Result};
use gst::prelude::*;

use super::endpoint::{is_all_interfaces, uri_host, Sink, Source};
use super::Auth;

/// Where an RTSP password comes from when no file is given.
pub const RTSP_PASSWORD_ENV: &str = "GENDR_RTSP_PASSWORD";
/// Where the SRT passphrase comes from when no file is given.
pub const SRT_PASSPHRASE_ENV: &str = "GENDR_SRT_PASSPHRASE";

/// The one user an `rtsp://` output lets in.
#[derive(Clone)]
pub struct RtspUser {
    pub name: String,
    pub password: String,
    /// Basic authentication offered beside Digest (`--rtsp-allow-basic`).
    pub allow_basic: bool,
}

/// The key SRT connections are encrypted with; peers need the same passphrase.
#[derive(Clone)]
pub struct SrtKey {
    passphrase: String,
    key_bytes: u32,
}

impl SrtKey {
    /// Sets the key on an `srtsrc` or `srtsink`.
    pub fn apply(&self, element: &gst::Element) {
        element.set_property("passphrase", &self.passphrase);
        element.set_property_from_str("pbkeylen", &self.key_bytes.to_string());
    }
}

/// The credentials the request asks for, read and checked.
pub struct Access {
    pub rtsp_user: Option<RtspUser>,
    pub srt_key: Option<SrtKey>,
}

impl Access {
    pub fn from_request(auth: &Auth, source: &Source, sink: &Sink) -> Result<Access> {
        if ![16, 24, 32].contains(&auth.srt_pbkeylen) {
            bail!("--srt-pbkeylen {}: use 16, 24 or 32", auth.srt_pbkeylen);
        }
        let rtsp_user = match &auth.rtsp_user {
            None if auth.rtsp_password_file.is_some() => {
                bail!("--rtsp-password-file needs --rtsp-user NAME")
            }
            None => None,
            Some(_) if !matches!(sink, Sink::Rtsp { .. }) => {
                bail!("--rtsp-user applies to an rtsp:// output only")
            }
            Some(name) => {
                if name.is_empty() || name.contains(':') {
                    bail!("--rtsp-user {name:?}: a user name is not empty and has no ':'");
                }
                let password = secret(
                    auth.rtsp_password_file.as_deref(),
                    RTSP_PASSWORD_ENV,
                    "--rtsp-user needs a password: set GENDR_RTSP_PASSWORD or pass --rtsp-password-file FILE",
                )?;
                Some(RtspUser {
                    name: name.clone(),
                    password,
                    allow_basic: auth.rtsp_allow_basic,
                })
            }
        };
        let uses_srt = matches!(sink, Sink::Srt(_))
            || matches!(source, Source::Uri(uri) if uri.starts_with("srt://"));
        let srt_key = if uses_srt {
            let passphrase = match (&auth.srt_passphrase_file, std::env::var(SRT_PASSPHRASE_ENV)) {
                (Some(file), _) => Some(read_secret_file(file)?),
                (None, Ok(value)) => Some(value),
                (None, Err(_)) => None,
            };
            passphrase
                .map(|passphrase| srt_key(passphrase, auth.srt_pbkeylen))
                .transpose()?
        } else if auth.srt_passphrase_file.is_some() {
            bail!("--srt-passphrase-file applies to an srt:// input or output only");
        } else {
            None
        };
        Ok(Access { rtsp_user, srt_key })
    }

    /// One line for each listener open to every interface without a password.
    pub fn warnings(&self, source: &Source, sink: &Sink) -> Vec<String> {
        let mut warnings = Vec::new();
        if let Sink::Rtsp { addresses, .. } = sink {
            if addresses.iter().any(|a| a.is_unspecified()) && self.rtsp_user.is_none() {
                warnings.push(
                    "the RTSP server listens on all interfaces and anyone who reaches it may \
                     watch; add --rtsp-user, or listen on 127.0.0.1"
                        .to_string(),
                );
            }
        }
        let srt_listeners = [
            match sink {
                Sink::Srt(uri) => Some(uri.as_str()),
                _ => None,
            },
            match source {
                Source::Uri(uri) if uri.starts_with("srt://") => Some(uri.as_str()),
                _ => None,
            },
        ];
        for uri in srt_listeners.into_iter().flatten() {
            let listener = uri.contains("mode=listener") || uri.contains("mode=server");
            if listener && uri_host(uri).is_some_and(is_all_interfaces) && self.srt_key.is_none() {
                warnings.push(format!(
                    "{uri} listens on all interfaces without encryption; anyone who reaches it \
                     may connect: set GENDR_SRT_PASSPHRASE or --srt-passphrase-file"
                ));
            }
        }
        if let Source::Uri(uri) = source {
            if uri.starts_with("udp://") && uri_host(uri).is_some_and(is_all_interfaces) {
                warnings.push(format!(
                    "{uri} takes packets from any host on every interface (UDP has no \
                     authentication)"
                ));
            }
        }
        warnings
    }
}

/// SRT takes passphrases of 10 to 79 characters.
fn srt_key(passphrase: String, key_bytes: u32) -> Result<SrtKey> {
    if !(10..=79).contains(&passphrase.chars().count()) {
        bail!("the SRT passphrase must be 10 to 79 characters long");
    }
    Ok(SrtKey {
        passphrase,
        key_bytes,
    })
}

/// A secret from `file` if given, else from the environment variable `env`.
fn secret(file: Option<&Path>, env: &str, missing: &str) -> Result<String> {
    match file {
        Some(file) => read_secret_file(file),
        None => match std::env::var(env) {
            Ok(value) if !value.is_empty() => Ok(value),
            _ => bail!("{missing}"),
        },
    }
}

/// The first line of `file`, which must not be empty.
fn read_secret_file(file: &Path) -> Result<String> {
    let text = std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?;
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        bail!("{}: the first line is empty", file.display());
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srt_keys_are_checked() {
        assert!(srt_key("short".into(), 16).is_err());
        assert!(srt_key("x".repeat(80), 16).is_err());
        assert!(srt_key("long enough".into(), 32).is_ok());
    }

    #[test]
    fn secret_files_give_their_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cret words\nignored\n").unwrap();
        assert_eq!(read_secret_file(&file).unwrap(), "s3cret words");
        std::fs::write(&file, "\n").unwrap();
        assert!(read_secret_file(&file).is_err());
    }

    fn warnings(source: &str, output: &str, access: Access) -> Vec<String> {
        let source = Source::parse(source).unwrap();
        let sink = Sink::parse(output).unwrap();
        access.warnings(&source, &sink)
    }

    #[test]
    fn open_listeners_are_warned_about_unless_protected() {
        let none = || Access {
            rtsp_user: None,
            srt_key: None,
        };
        let user = || Access {
            rtsp_user: Some(RtspUser {
                name: "viewer".into(),
                password: "pw".into(),
                allow_basic: false,
            }),
            srt_key: None,
        };
        assert!(warnings("udp://:5000", "rtsp://:8554/live", none()).is_empty());
        assert_eq!(
            warnings("udp://:5000", "rtsp://0.0.0.0:8554/live", none()).len(),
            1
        );
        assert_eq!(
            warnings("udp://:5000", "rtsp://[::]:8554/live", none()).len(),
            1
        );
        assert!(warnings("udp://:5000", "rtsp://0.0.0.0:8554/live", user()).is_empty());
        assert_eq!(
            warnings("udp://0.0.0.0:5000", "rtsp://:8554/live", user()).len(),
            1
        );
        let key = || Access {
            rtsp_user: None,
            srt_key: Some(srt_key("long enough".into(), 16).unwrap()),
        };
        assert_eq!(
            warnings("srt://0.0.0.0:9000?mode=listener", "udp://:5002", none()).len(),
            1
        );
        assert!(warnings("srt://0.0.0.0:9000?mode=listener", "udp://:5002", key()).is_empty());
        assert!(warnings("srt://:9000?mode=listener", "udp://:5002", none()).is_empty());
    }
}
