//! What `gendr live` reads from and writes to, parsed from its arguments.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use gendr_archive::media;

/// Where frames come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Uri(String),
    /// A file, played at its own pace.
    File(String),
    Device(String),
}

impl Source {
    pub fn parse(input: &str) -> Result<Source> {
        if input.starts_with("/dev/video") {
            if !Path::new(input).exists() {
                bail!("{input}: no such device");
            }
            return Ok(Source::Device(input.into()));
        }
        if input.starts_with("file://") {
            return Ok(Source::File(input.into()));
        }
        if input.starts_with("udp://") || input.starts_with("srt://") {
            return Ok(Source::Uri(with_loopback_default(input)));
        }
        if input.contains("://") {
            return Ok(Source::Uri(input.into()));
        }
        let path = Path::new(input);
        if !path.is_file() {
            bail!("{input}: no such file (and not a URI)");
        }
        Ok(Source::File(media::file_uri(path)?))
    }

    /// A file ends; a stream that ends may come back.
    pub fn is_file(&self) -> bool {
        matches!(self, Source::File(_))
    }
}

/// Where the upscaled stream goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Sink {
    Udp {
        host: String,
        port: u16,
    },
    Srt(String),
    Hls {
        playlist: PathBuf,
        segments: PathBuf,
    },
    /// An RTSP server listening on each of `addresses` at `port`, serving
    /// the stream at `mount`.
    Rtsp {
        addresses: Vec<IpAddr>,
        port: u16,
        mount: String,
    },
}

impl Sink {
    pub fn parse(output: &str) -> Result<Sink> {
        if let Some(rest) = output.strip_prefix("udp://") {
            let (host, port) = rest
                .trim_end_matches('/')
                .rsplit_once(':')
                .with_context(|| format!("{output}: expected udp://HOST:PORT"))?;
            let port = port
                .parse()
                .with_context(|| format!("{output}: bad port {port:?}"))?;
            let host = if host.is_empty() { "127.0.0.1" } else { host };
            return Ok(Sink::Udp {
                host: host.trim_matches(['[', ']']).into(),
                port,
            });
        }
        if output.starts_with("srt://") {
            if gst::ElementFactory::find("srtsink").is_none() {
                bail!("{output}: srtsink is not installed (gst-plugins-bad with SRT support)");
            }
            return Ok(Sink::Srt(with_loopback_default(output)));
        }
        if let Some(rest) = output.strip_prefix("rtsp://") {
            let expected = || format!("{output}: expected rtsp://HOST:PORT/PATH");
            let (authority, path) = rest.split_once('/').with_context(expected)?;
            let path = path.trim_end_matches('/');
            if path.is_empty() || path.contains(['?', '#']) {
                bail!(expected());
            }
            let (host, port) = match authority.strip_prefix('[') {
                Some(v6) => {
                    let (host, rest) = v6.split_once(']').with_context(expected)?;
                    (host, rest.strip_prefix(':'))
                }
                None => match authority.rsplit_once(':') {
                    Some((host, port)) => (host, Some(port)),
                    None => (authority, None),
                },
            };
            let port = match port {
                Some(port) => port
                    .parse()
                    .with_context(|| format!("{output}: bad port {port:?}"))?,
                None => 8554,
            };
            return Ok(Sink::Rtsp {
                addresses: listen_addresses(host, port)
                    .with_context(|| format!("{output}: cannot listen on {host:?}"))?,
                port,
                mount: format!("/{path}"),
            });
        }
        let (dir, playlist) = if let Some(dir) = output.strip_prefix("hls://") {
            let dir = PathBuf::from(dir);
            let playlist = dir.join("playlist.m3u8");
            (dir, playlist)
        } else if output.ends_with(".m3u8") {
            let playlist = PathBuf::from(output);
            let dir = match playlist.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            (dir, playlist)
        } else {
            bail!("{output}: unknown output; use udp://HOST:PORT, srt://HOST:PORT, hls:///DIR, a .m3u8 path or rtsp://HOST:PORT/PATH");
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
        let stem = playlist
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "playlist".into());
        // hlssink2 expands the segment location as a printf format: the
        // user's own `%` must stay literal.
        let segments = format!(
            "{}%05d.ts",
            printf_literal(&dir.join(&stem).display().to_string())
        );
        Ok(Sink::Hls {
            segments: PathBuf::from(segments),
            playlist,
        })
    }
}

/// Where a server given `host` listens: loopback when no host is given or
/// `localhost` (both 127.0.0.1 and ::1), all interfaces only when asked for
/// explicitly (`0.0.0.0`, `[::]`), otherwise the host's addresses.
fn listen_addresses(host: &str, port: u16) -> Result<Vec<IpAddr>> {
    if host.is_empty() || host.eq_ignore_ascii_case("localhost") {
        return Ok(vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let mut addresses: Vec<IpAddr> = (host, port).to_socket_addrs()?.map(|a| a.ip()).collect();
    addresses.dedup();
    if addresses.is_empty() {
        bail!("{host} has no address");
    }
    Ok(addresses)
}

/// A `udp://` or `srt://` URI whose host, when empty (`udp://:5000`,
/// `udp://@:5000`) or `localhost`, is 127.0.0.1: a listener then takes only
/// this machine's connections, and a caller calls this machine.
fn with_loopback_default(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.into();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = authority.trim_start_matches('@');
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, port)) => (host, port),
            None => return uri.into(),
        },
        None => match authority.rfind(':') {
            Some(at) => authority.split_at(at),
            None => (authority, ""),
        },
    };
    if host.is_empty() || host.eq_ignore_ascii_case("localhost") {
        format!("{scheme}://127.0.0.1{port}{tail}")
    } else {
        uri.into()
    }
}

/// The host of a `scheme://HOST:PORT…` URI, without brackets.
pub fn uri_host(uri: &str) -> Option<&str> {
    let rest = uri.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(host, _)| host),
        None => Some(
            authority
                .rsplit_once(':')
                .map_or(authority, |(host, _)| host),
        ),
    }
}

/// Whether `host` means every interface of this machine.
pub fn is_all_interfaces(host: &str) -> bool {
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified())
}

/// `text` as a printf format that prints it unchanged.
fn printf_literal(text: &str) -> String {
    text.replace('%', "%%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse() {
        assert_eq!(
            Sink::parse("udp://127.0.0.1:5000").unwrap(),
            Sink::Udp {
                host: "127.0.0.1".into(),
                port: 5000
            }
        );
        assert!(Sink::parse("udp://127.0.0.1").is_err());
        assert!(Sink::parse("out.mp4").is_err());
        assert_eq!(
            Sink::parse("rtsp://0.0.0.0:8554/live/cam").unwrap(),
            Sink::Rtsp {
                addresses: vec![Ipv4Addr::UNSPECIFIED.into()],
                port: 8554,
                mount: "/live/cam".into()
            }
        );
        assert_eq!(
            Sink::parse("rtsp://[::1]/live").unwrap(),
            Sink::Rtsp {
                addresses: vec![Ipv6Addr::LOCALHOST.into()],
                port: 8554,
                mount: "/live".into()
            }
        );
        assert!(Sink::parse("rtsp://0.0.0.0:8554").is_err());
        assert!(Sink::parse("rtsp://0.0.0.0:x/live").is_err());
        let dir = tempfile::tempdir().unwrap();
        let playlist = dir.path().join("a/live.m3u8");
        match Sink::parse(&playlist.display().to_string()).unwrap() {
            Sink::Hls {
                playlist: p,
                segments,
            } => {
                assert_eq!(p, playlist);
                assert_eq!(segments, dir.path().join("a/live%05d.ts"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn listeners_default_to_loopback() {
        let loopback: Vec<IpAddr> = vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()];
        for output in [
            "rtsp://:8554/live",
            "rtsp://localhost/live",
            "rtsp://LOCALHOST:8554/live",
        ] {
            match Sink::parse(output).unwrap() {
                Sink::Rtsp { addresses, .. } => assert_eq!(addresses, loopback, "{output}"),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            Sink::parse("rtsp://[::]:8554/live").unwrap(),
            Sink::Rtsp {
                addresses: vec![Ipv6Addr::UNSPECIFIED.into()],
                port: 8554,
                mount: "/live".into()
            }
        );
        for (given, meant) in [
            (
                "srt://:9000?mode=listener",
                "srt://127.0.0.1:9000?mode=listener",
            ),
            ("srt://localhost:9000", "srt://127.0.0.1:9000"),
            ("udp://:5000", "udp://127.0.0.1:5000"),
            ("udp://@:5000", "udp://127.0.0.1:5000"),
            (
                "srt://0.0.0.0:9000?mode=listener",
                "srt://0.0.0.0:9000?mode=listener",
            ),
            (
                "srt://[::]:9000?mode=listener",
                "srt://[::]:9000?mode=listener",
            ),
            ("udp://239.0.0.1:5000", "udp://239.0.0.1:5000"),
        ] {
            assert_eq!(with_loopback_default(given), meant);
        }
        assert_eq!(
            Source::parse("udp://:5000").unwrap(),
            Source::Uri("udp://127.0.0.1:5000".into())
        );
        assert_eq!(
            uri_host("srt://0.0.0.0:9000?mode=listener"),
            Some("0.0.0.0")
        );
        assert_eq!(uri_host("srt://[::]:9000"), Some("::"));
        assert_eq!(uri_host("udp://127.0.0.1:5000"), Some("127.0.0.1"));
        assert!(is_all_interfaces("0.0.0.0") && is_all_interfaces("::"));
        assert!(!is_all_interfaces("127.0.0.1") && !is_all_interfaces("camera.local"));
    }

    #[test]
    fn hls_segment_locations_keep_percent_signs_literal() {
        let dir = tempfile::tempdir().unwrap();
        let playlist = dir.path().join("5%d/x%s.m3u8");
        match Sink::parse(&playlist.display().to_string()).unwrap() {
            Sink::Hls {
                playlist: p,
                segments,
            } => {
                assert_eq!(p, playlist);
                let expected = format!("{}/5%%d/x%%s%05d.ts", dir.path().display());
                assert_eq!(segments, PathBuf::from(expected));
            }
            other => panic!("{other:?}"),
        }
    }
}
