//! `gendr live` against hostile or careless use: values its encoder would
//! refuse, Basic authentication unless asked for, and the descriptor limit
//! that idle connections used to exhaust. Each wait is bounded; every
//! child is killed when its guard drops.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gendr_test_support::{free_tcp_port, Guard};

/// `gendr live` from a silent UDP port to an RTSP server on `port`, with
/// `extra` arguments; `soft_fd_limit` is set in the child before it starts.
fn rtsp_server(port: u16, extra: &[&str], soft_fd_limit: Option<u64>) -> Guard {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gendr"));
    command
        .args([
            "live",
            "udp://127.0.0.1:9",
            &format!("rtsp://127.0.0.1:{port}/live"),
        ])
        .args(["--model", "fast", "--quiet"])
        .args(extra)
        .env("GENDR_RTSP_PASSWORD", "right horse battery")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(soft) = soft_fd_limit {
        // SAFETY: only getrlimit/setrlimit run between fork and exec.
        unsafe {
            command.pre_exec(move || {
                let mut limit = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
                limit.rlim_cur = soft.min(limit.rlim_max);
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
                Ok(())
            });
        }
    }
    let mut live = Guard(command.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            live.0.try_wait().unwrap().is_none(),
            "gendr live exited early"
        );
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    live
}

/// The head of the reply to an unauthenticated DESCRIBE.
fn describe_without_credentials(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!("DESCRIBE rtsp://127.0.0.1:{port}/live RTSP/1.0\r\nCSeq: 1\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    while !reply.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(n) if n > 0 => reply.extend_from_slice(&chunk[..n]),
            other => panic!("no reply to DESCRIBE: {other:?}"),
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

/// An x264 preset the encoder does not have was a panic in the output
/// pipeline; it is a usage error naming the accepted values.
#[test]
fn an_unknown_preset_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_gendr"))
        .args(["live", "udp://127.0.0.1:9", "udp://127.0.0.1:9"])
        .args(["--preset", "bogus"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    assert!(
        text.contains("bogus") && text.contains("ultrafast"),
        "{text}"
    );
}

/// With --rtsp-user the server offers Digest alone (Basic sends the
/// password in the clear); --rtsp-allow-basic adds Basic.
#[test]
fn rtsp_offers_basic_only_when_asked() {
    let q = free_tcp_port();
    let live = rtsp_server(q, &["--rtsp-user", "viewer"], None);
    let reply = describe_without_credentials(q);
    assert!(reply.starts_with("RTSP/1.0 401"), "{reply}");
    assert!(
        reply.contains("Digest") && !reply.contains("Basic"),
        "{reply}"
    );
    drop(live);

    let q = free_tcp_port();
    let _live = rtsp_server(q, &["--rtsp-user", "viewer", "--rtsp-allow-basic"], None);
    let reply = describe_without_credentials(q);
    assert!(reply.starts_with("RTSP/1.0 401"), "{reply}");
    assert!(
        reply.contains("Digest") && reply.contains("Basic"),
        "{reply}"
    );
}

/// The soft descriptor limit (1024 by default on most systems) is raised to
/// the hard limit at start, so that a live server does not run out first.
#[test]
fn the_descriptor_limit_is_raised_to_the_hard_limit() {
    let q = free_tcp_port();
    let live = rtsp_server(q, &[], Some(1024));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", live.0.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[3], fields[4], "soft and hard limits: {line}");
}
