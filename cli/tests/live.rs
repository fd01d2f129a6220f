//! Live streams over loopback: `gendr live` end to end (udp in and out, a
//! sender restart, SIGINT, HLS, an RTSP server), and gendrsr's overload handling against a
//! deliberately slow model. Ports are picked free on 127.0.0.1; every child
//! process is killed when its guard drops; each wait is bounded.

use std::collections::HashSet;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gst::prelude::*;

use gendr_test_support::{
    free_tcp_port, free_udp_port, gendr, init, pipeline_with_sink, repo, rtsp_reply_head, run,
    ts_sender, Guard,
};

/// The tests time frames on 2 cores: one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// The ball test pattern as a live stream to 127.0.0.1:`port`.
fn sender(port: u16) -> Guard {
    ts_sender(port, "ball")
}

fn gendr_live(args: &[&str]) -> Guard {
    gendr_live_with_env(args, &[])
}

fn gendr_live_with_env(args: &[&str], env: &[(&str, &str)]) -> Guard {
    Guard(
        gendr()
            .arg("live")
            .args(args)
            .envs(env.iter().copied())
            .arg("--quiet")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

/// Decodes the MPEG-TS stream arriving on 127.0.0.1:`port`.
struct Receiver {
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
}

impl Receiver {
    fn new(port: u16) -> Receiver {
        Receiver::launch(&format!(
            "udpsrc address=127.0.0.1 port={port} ! tsdemux ! h264parse ! avdec_h264 \
             ! appsink name=sink sync=false max-buffers=100 drop=true"
        ))
    }

    /// An RTSP client of `url` (RTP over TCP: nothing to lose on loopback).
    fn rtsp(url: &str) -> Receiver {
        Receiver::launch(&format!(
            "rtspsrc location={url} latency=100 protocols=tcp ! rtph264depay ! avdec_h264 \
             ! appsink name=sink sync=false max-buffers=100 drop=true"
        ))
    }

    /// An SRT caller of 127.0.0.1:`port`, with `passphrase` if any.
    fn srt(port: u16, passphrase: Option<&str>) -> Receiver {
        let key = passphrase.map_or(String::new(), |p| format!("passphrase=\"{p}\""));
        Receiver::launch(&format!(
            "srtsrc uri=srt://127.0.0.1:{port} {key} ! tsdemux ! h264parse ! avdec_h264 \
             ! appsink name=sink sync=false max-buffers=100 drop=true"
        ))
    }

    fn launch(description: &str) -> Receiver {
        let (pipeline, sink) = pipeline_with_sink(description);
        pipeline.set_state(gst::State::Playing).unwrap();
        Receiver { pipeline, sink }
    }

    /// The size of the next decoded frame within `limit`.
    fn next_size(&self, limit: Duration) -> Option<(i32, i32)> {
        let sample = self
            .sink
            .try_pull_sample(gst::ClockTime::from_nseconds(limit.as_nanos() as u64))?;
        let s = sample.caps()?.structure(0)?.to_owned();
        Some((s.get("width").ok()?, s.get("height").ok()?))
    }

    /// The first error the client's pipeline posted within `limit`.
    fn error_within(&self, limit: Duration) -> Option<String> {
        let bus = self.pipeline.bus()?;
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(limit.as_nanos() as u64),
            &[gst::MessageType::Error],
        )?;
        match msg.view() {
            gst::MessageView::Error(e) => Some(format!("{} ({:?})", e.error(), e.debug())),
            _ => None,
        }
    }

    /// Throws away what has arrived so far.
    fn drain(&self) {
        while self.sink.try_pull_sample(gst::ClockTime::ZERO).is_some() {}
    }
}

/// Runs `gendr live` on a file input to its end, within `limit`; returns
/// whether it succeeded and its standard error.
fn gendr_live_to_end(args: &[&str], limit: Duration) -> (bool, String) {
    let mut child = gendr()
        .arg("live")
        .args(args)
        .arg("--quiet")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
        text
    });
    let mut live = Guard(child);
    let status = live.wait_for(limit);
    drop(live);
    let text = reader.join().unwrap();
    let status = status.unwrap_or_else(|| panic!("gendr live did not end in {limit:?}: {text}"));
    (status.success(), text)
}

/// How many video frames ffprobe decodes from `path`, an independent reader.
fn ffprobe_frames(path: &std::path::Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    // An HLS playlist lists the stream under its program too: the same count twice.
    text.lines()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("ffprobe said {text:?}"))
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

#[test]
fn udp_stream_is_upscaled_survives_a_sender_restart_and_stops_on_sigint() {
    let _serial = serial();
    let (p, q) = (free_udp_port(), free_udp_port());
    let receiver = Receiver::new(q);
    let mut send = sender(p);
    let mut live = gendr_live(&[
        &format!("udp://127.0.0.1:{p}"),
        &format!("udp://127.0.0.1:{q}"),
        "--model",
        "fast",
        "--stall-secs",
        "2",
    ]);
    // Model loading, a keyframe and the decoder's start: seconds, not tens.
    assert_eq!(
        receiver.next_size(Duration::from_secs(30)),
        Some((320, 180)),
        "no upscaled frame arrived"
    );

    // The sender goes away: frames stop; it comes back: frames resume.
    drop(send);
    std::thread::sleep(Duration::from_secs(3));
    receiver.drain();
    send = sender(p);
    assert_eq!(
        receiver.next_size(Duration::from_secs(30)),
        Some((320, 180)),
        "frames did not resume after the sender restarted"
    );

    stops_cleanly_on_sigint(&mut live);
    drop(send);
}

#[test]
fn rtsp_server_serves_upscaled_frames_to_clients_and_stops_on_sigint() {
    let _serial = serial();
    let (p, q) = (free_udp_port(), free_tcp_port());
    let url = format!("rtsp://127.0.0.1:{q}/live");
    let _send = sender(p);
    let mut live = gendr_live(&[&format!("udp://127.0.0.1:{p}"), &url, "--model", "fast"]);
    // The server may not be listening yet (the process is starting) and the
    // first frame waits for the model to load: retry until a client gets one.
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        assert!(
            live.0.try_wait().unwrap().is_none(),
            "gendr live exited early"
        );
        let client = Receiver::rtsp(&url);
        if let Some(size) = client.next_size(Duration::from_secs(5)) {
            break (client, size);
        }
        assert!(Instant::now() < deadline, "no frame came over RTSP");
    };
    assert_eq!(first.1, (320, 180));
    // A second client shares the running media.
    let second = Receiver::rtsp(&url);
    assert_eq!(
        second.next_size(Duration::from_secs(15)),
        Some((320, 180)),
        "a second RTSP client got no frame"
    );
    drop(second);
    assert!(
        first.0.next_size(Duration::from_secs(5)).is_some(),
        "the first client stopped receiving when the second left"
    );
    // With every client gone, the next one gets a fresh media.
    drop(first);
    std::thread::sleep(Duration::from_millis(500));
    let again = Receiver::rtsp(&url);
    assert_eq!(
        again.next_size(Duration::from_secs(15)),
        Some((320, 180)),
        "a client that came after all had left got no frame"
    );

    stops_cleanly_on_sigint(&mut live);
}

#[test]
fn sigint_finalises_the_hls_playlist() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let playlist = dir.path().join("live.m3u8");
    let p = free_udp_port();
    let _send = sender(p);
    let mut live = gendr_live(&[
        &format!("udp://127.0.0.1:{p}"),
        playlist.to_str().unwrap(),
        "--model",
        "fast",
        "--segment-secs",
        "1",
    ]);
    // Wait for the first segment to be listed, then interrupt.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&playlist).is_ok_and(|t| t.contains(".ts")) {
        assert!(Instant::now() < deadline, "no HLS segment was written");
        assert!(
            live.0.try_wait().unwrap().is_none(),
            "gendr live exited early"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    stops_cleanly_on_sigint(&mut live);
    let text = std::fs::read_to_string(&playlist).unwrap();
    assert!(text.trim_end().ends_with("#EXT-X-ENDLIST"), "{text}");
    for name in text.lines().filter(|l| l.ends_with(".ts")) {
        let size = std::fs::metadata(dir.path().join(name)).unwrap().len();
        assert!(size > 0, "{name} is empty");
    }
}

/// A socket of this network namespace, as /proc/net lists it.
struct Socket {
    address: IpAddr,
    port: u16,
    /// TCP: 0A is listening.
    state: String,
    inode: u64,
}

/// The sockets in /proc/net/`table` (tcp, tcp6, udp, udp6).
fn sockets(table: &str) -> Vec<Socket> {
    let text = std::fs::read_to_string(format!("/proc/net/{table}")).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (hex, port) = fields.get(1)?.split_once(':')?;
            // Each 32-bit word is printed as the host-order value of network-order bytes.
            let mut bytes = Vec::new();
            for word in hex.as_bytes().chunks(8) {
                let word = u32::from_str_radix(std::str::from_utf8(word).ok()?, 16).ok()?;
                bytes.extend(word.to_le_bytes());
            }
            let address = match bytes.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
                16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
                _ => return None,
            };
            Some(Socket {
                address,
                port: u16::from_str_radix(port, 16).ok()?,
                state: fields.get(3)?.to_string(),
                inode: fields.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// The addresses TCP listeners on `port` are bound to.
fn tcp_listeners(port: u16) -> HashSet<IpAddr> {
    ["tcp", "tcp6"]
        .iter()
        .flat_map(|t| sockets(t))
        .filter(|s| s.port == port && s.state == "0A")
        .map(|s| s.address)
        .collect()
}

/// The local addresses of process `pid`'s UDP sockets.
fn udp_addresses_of(pid: u32) -> Vec<(IpAddr, u16)> {
    let inodes: HashSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_string_lossy().into_owned();
            link.strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect();
    ["udp", "udp6"]
        .iter()
        .flat_map(|t| sockets(t))
        .filter(|s| inodes.contains(&s.inode))
        .map(|s| (s.address, s.port))
        .collect()
}

/// Waits until `live` has a UDP socket on `port`; returns the addresses
/// its sockets on that port are bound to.
fn wait_for_udp_socket(live: &mut Guard, port: u16) -> Vec<IpAddr> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            live.0.try_wait().unwrap().is_none(),
            "gendr live exited early"
        );
        let bound: Vec<IpAddr> = udp_addresses_of(live.0.id())
            .into_iter()
            .filter(|(_, p)| *p == port)
            .map(|(address, _)| address)
            .collect();
        if !bound.is_empty() {
            return bound;
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on UDP port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Ctrl-C to `gendr live`: it exits, with success, within 20 s.
fn stops_cleanly_on_sigint(live: &mut Guard) {
    live.interrupt();
    let status = live
        .wait_for(Duration::from_secs(20))
        .expect("gendr live did not exit after SIGINT");
    assert!(status.success(), "gendr live exited with {status}");
}

/// Sends one RTSP request over a fresh connection and returns the reply's
/// head, or None if none came within `limit`.
fn rtsp_request(address: &str, request: &str, limit: Duration) -> Option<String> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(limit)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    rtsp_reply_head(&mut stream).ok()
}

/// Waits until something accepts TCP connections on `address`.
fn wait_for_listener(address: &str, live: &mut Guard) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(address).is_err() {
        assert!(
            live.0.try_wait().unwrap().is_none(),
            "gendr live exited early"
        );
        assert!(Instant::now() < deadline, "nothing listens on {address}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `rtsp://localhost` serves 127.0.0.1 and ::1 and nothing else, RTP goes
/// out from loopback, a `udp://:PORT` input listens on 127.0.0.1, and with
/// --rtsp-user only that user, with the password from the environment, can
/// watch.
#[test]
fn rtsp_listens_on_loopback_and_lets_in_only_its_user() {
    let _serial = serial();
    let (p, q) = (free_udp_port(), free_tcp_port());
    let _send = sender(p);
    let url = format!("rtsp://127.0.0.1:{q}/live");
    let mut live = gendr_live_with_env(
        &[
            &format!("udp://:{p}"),
            &format!("rtsp://localhost:{q}/live"),
            "--model",
            "fast",
            "--rtsp-user",
            "viewer",
        ],
        &[("GENDR_RTSP_PASSWORD", "right horse battery")],
    );
    wait_for_listener(&format!("127.0.0.1:{q}"), &mut live);
    let loopback: HashSet<IpAddr> = [Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()].into();
    assert_eq!(tcp_listeners(q), loopback, "RTSP listeners");
    let input = wait_for_udp_socket(&mut live, p);
    assert_eq!(
        input,
        vec![IpAddr::from(Ipv4Addr::LOCALHOST)],
        "the udp input's socket"
    );

    // No credentials: refused on either address, offering Digest alone.
    for host in ["127.0.0.1", "[::1]"] {
        let describe = format!("DESCRIBE rtsp://{host}:{q}/live RTSP/1.0\r\nCSeq: 1\r\n\r\n");
        let reply = rtsp_request(&format!("{host}:{q}"), &describe, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no reply on {host}"));
        assert!(reply.starts_with("RTSP/1.0 401"), "{reply}");
        assert!(
            reply.contains("Digest") && !reply.contains("Basic"),
            "{reply}"
        );
    }
    // A wrong password: refused, no frame.
    let wrong = Receiver::launch(&format!(
        "rtspsrc location={url} user-id=viewer user-pw=wrong protocols=tcp ! rtph264depay \
         ! avdec_h264 ! appsink name=sink sync=false max-buffers=100 drop=true"
    ));
    let error = wrong.error_within(Duration::from_secs(10));
    assert!(error.is_some(), "a wrong password was not refused");
    assert_eq!(wrong.next_size(Duration::from_millis(100)), None);
    drop(wrong);

    // The right one, RTP over UDP: frames, and every UDP socket on loopback.
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        assert!(
            live.0.try_wait().unwrap().is_none(),
            "gendr live exited early"
        );
        let client = Receiver::launch(&format!(
            "rtspsrc location={url} user-id=viewer user-pw=\"right horse battery\" \
             protocols=udp latency=100 ! rtph264depay ! avdec_h264 \
             ! appsink name=sink sync=false max-buffers=100 drop=true"
        ));
        if let Some(size) = client.next_size(Duration::from_secs(5)) {
            assert_eq!(size, (320, 180));
            break client;
        }
        assert!(Instant::now() < deadline, "the right user got no frame");
    };
    // The same over IPv6 loopback, sharing the media.
    let v6 = Receiver::launch(&format!(
        "rtspsrc location=\"rtsp://[::1]:{q}/live\" user-id=viewer \
         user-pw=\"right horse battery\" protocols=udp latency=100 ! rtph264depay \
         ! avdec_h264 ! appsink name=sink sync=false max-buffers=100 drop=true"
    ));
    assert_eq!(
        v6.next_size(Duration::from_secs(15)),
        Some((320, 180)),
        "no frame over [::1]"
    );
    let udp = udp_addresses_of(live.0.id());
    assert!(udp.len() >= 5, "no RTP sockets for both clients: {udp:?}");
    assert!(
        udp.iter().all(|(address, _)| address.is_loopback()),
        "UDP sockets off loopback: {udp:?}"
    );
    drop((client, v6));
    stops_cleanly_on_sigint(&mut live);
}

/// An `srt://:PORT?mode=listener` output listens on 127.0.0.1 only and, with
/// a passphrase from the environment, lets in only callers that know it.
#[test]
fn srt_listener_is_on_loopback_and_encrypted() {
    let _serial = serial();
    let (p, r) = (free_udp_port(), free_udp_port());
    let _send = sender(p);
    let passphrase = "correct horse battery";
    let mut live = gendr_live_with_env(
        &[
            &format!("udp://127.0.0.1:{p}"),
            &format!("srt://:{r}?mode=listener"),
            "--model",
            "fast",
        ],
        &[("GENDR_SRT_PASSPHRASE", passphrase)],
    );
    let listener = wait_for_udp_socket(&mut live, r);
    assert_eq!(
        listener,
        vec![IpAddr::from(Ipv4Addr::LOCALHOST)],
        "SRT listener"
    );

    // Both wrong callers try at once; 5 s is many keyframes' worth.
    let keys = [None, Some("wrong horse battery")];
    let wrong: Vec<Receiver> = keys.iter().map(|key| Receiver::srt(r, *key)).collect();
    std::thread::sleep(Duration::from_secs(5));
    for (client, key) in wrong.iter().zip(keys) {
        assert_eq!(
            client.next_size(Duration::ZERO),
            None,
            "a caller with passphrase {key:?} got a frame"
        );
    }
    drop(wrong);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            live.0.try_wait().unwrap().is_none(),
            "gendr live exited early"
        );
        let client = Receiver::srt(r, Some(passphrase));
        if let Some(size) = client.next_size(Duration::from_secs(5)) {
            assert_eq!(size, (320, 180));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the caller with the passphrase got no frame"
        );
    }
    stops_cleanly_on_sigint(&mut live);
}

/// While the source is down, gst-rtsp-server answers a DESCRIBE only when
/// the media prerolls; that must not hold up the other clients.
#[test]
fn a_describe_waiting_for_the_source_stalls_no_other_client() {
    let _serial = serial();
    let (p, q) = (free_udp_port(), free_tcp_port());
    // No sender: the source stays silent.
    let mut live = gendr_live(&[
        &format!("udp://127.0.0.1:{p}"),
        &format!("rtsp://127.0.0.1:{q}/live"),
        "--model",
        "fast",
    ]);
    let address = format!("127.0.0.1:{q}");
    wait_for_listener(&address, &mut live);
    let mut waiting = TcpStream::connect(&address).unwrap();
    waiting
        .write_all(format!("DESCRIBE rtsp://{address}/live RTSP/1.0\r\nCSeq: 1\r\n\r\n").as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let options = format!("OPTIONS rtsp://{address}/live RTSP/1.0\r\nCSeq: 1\r\n\r\n");
    let reply = rtsp_request(&address, &options, Duration::from_secs(5));
    assert!(
        reply
            .as_deref()
            .is_some_and(|r| r.starts_with("RTSP/1.0 200")),
        "a second client's OPTIONS was not answered while a DESCRIBE waited: {reply:?}"
    );
    drop(waiting);
    stops_cleanly_on_sigint(&mut live);
}

/// An SRT input with the passphrase from the environment connects to an
/// encrypted listener (which refuses callers without it). The sender's
/// MPEG-TS is cut into SRT-sized messages (alignment=7), as gendr's own is.
#[test]
fn srt_input_uses_the_passphrase() {
    let _serial = serial();
    let (r, q) = (free_udp_port(), free_udp_port());
    let passphrase = "correct-horse-battery";
    let pipeline = format!(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=160,height=90,framerate=25/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 \
         ! h264parse config-interval=-1 ! mpegtsmux alignment=7 \
         ! srtsink uri=srt://127.0.0.1:{r}?mode=listener wait-for-connection=false \
           pbkeylen=16 passphrase={passphrase}"
    );
    let _send = Guard(
        Command::new("gst-launch-1.0")
            .arg("-q")
            .args(pipeline.split_whitespace())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gst-launch-1.0"),
    );
    let receiver = Receiver::new(q);
    let _live = gendr_live_with_env(
        &[
            &format!("srt://127.0.0.1:{r}"),
            &format!("udp://127.0.0.1:{q}"),
            "--model",
            "fast",
            "--stall-secs",
            "2",
        ],
        &[("GENDR_SRT_PASSPHRASE", passphrase)],
    );
    assert_eq!(
        receiver.next_size(Duration::from_secs(30)),
        Some((320, 180)),
        "no frame came through the encrypted SRT input"
    );
}

/// Credentials that cannot work are refused at start with one line naming
/// the fix, before anything listens.
#[test]
fn bad_credentials_are_refused_with_one_line() {
    let q = free_tcp_port();
    let rtsp = format!("rtsp://127.0.0.1:{q}/live");
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let empty = empty.to_str().unwrap();
    let srt = "srt://127.0.0.1:9?mode=listener";
    // (output, extra arguments, SRT passphrase in the environment, expected error)
    let cases = [
        (
            &*rtsp,
            vec!["--rtsp-user", "viewer"],
            None,
            "GENDR_RTSP_PASSWORD",
        ),
        (
            &*rtsp,
            vec!["--rtsp-user", "viewer", "--rtsp-password-file", empty],
            None,
            "first line is empty",
        ),
        (
            &*rtsp,
            vec!["--rtsp-password-file", empty],
            None,
            "needs --rtsp-user",
        ),
        (
            &*rtsp,
            vec!["--srt-passphrase-file", empty],
            None,
            "srt:// input or output only",
        ),
        (srt, vec![], Some("short"), "10 to 79 characters"),
        (srt, vec!["--srt-pbkeylen", "20"], None, "use 16, 24 or 32"),
    ];
    for (output, extra, passphrase, expected) in cases {
        let out = run(gendr()
            .args(["live", "udp://127.0.0.1:9", output, "--model", "fast"])
            .args(&extra)
            .env_remove("GENDR_RTSP_PASSWORD")
            .env_remove("GENDR_SRT_PASSPHRASE")
            .envs(passphrase.map(|p| ("GENDR_SRT_PASSPHRASE", p))));
        let text = gendr_test_support::stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {text}");
        let errors: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("gendr: error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{extra:?}: {text}");
        assert!(errors[0].contains(expected), "{extra:?}: {text}");
        assert!(!text.contains("panicked"), "{text}");
    }
}

/// hlssink2 takes its segment location as a printf format: a `%` of the
/// user's must reach the file system as it was written, not be expanded
/// (`%s` crashed, `%d` made up names).
#[test]
fn hls_paths_with_percent_signs_are_taken_literally() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("100%d");
    let playlist = folder.join("x%s%s%s.m3u8");
    let (ok, log) = gendr_live_to_end(
        &[
            repo("samples/bikes_160x68_2s.mp4").to_str().unwrap(),
            playlist.to_str().unwrap(),
            "--model",
            "fast",
            "--segment-secs",
            "1",
        ],
        Duration::from_secs(60),
    );
    assert!(ok, "gendr live failed: {log}");
    let text = std::fs::read_to_string(&playlist)
        .unwrap_or_else(|e| panic!("{}: {e}; log: {log}", playlist.display()));
    let segments: Vec<&str> = text.lines().filter(|l| l.ends_with(".ts")).collect();
    assert!(!segments.is_empty(), "{text}");
    let mut expected: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
    expected.push("x%s%s%s.m3u8".into());
    expected.sort();
    let mut written: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, expected, "files beside the playlist");
    assert!(
        segments.iter().all(|s| s.starts_with("x%s%s%s")),
        "{segments:?}"
    );
    assert!(ffprobe_frames(&playlist) > 0, "no frame in {text}");
}

/// The number just before `label` in `text` (e.g. "12 from the model").
fn count_before(text: &str, label: &str) -> u64 {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {text}"));
    let number = text[..at].split_whitespace().next_back().unwrap_or("");
    number
        .parse()
        .unwrap_or_else(|_| panic!("no count before {label:?} in {text}"))
}

/// The summary accounts for every frame: in = from the model + fallback +
/// dropped, also when the model is too slow for the input and frames wait in
/// front of gendrsr. An independent reader (ffprobe) counts the frames of
/// the input file and of the HLS output.
#[test]
fn the_summary_accounts_for_every_frame() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let playlist = dir.path().join("live.m3u8");
    let input = repo("samples/bbb_320x180_2s.mp4");
    // The default model takes about a second a frame here: most frames are dropped.
    let (ok, log) = gendr_live_to_end(
        &[input.to_str().unwrap(), playlist.to_str().unwrap()],
        Duration::from_secs(90),
    );
    assert!(ok, "gendr live failed: {log}");
    let summary = log
        .lines()
        .find(|l| l.contains(" frames in"))
        .unwrap_or_else(|| panic!("no summary in {log}"));
    let frames_in = count_before(summary, " frames in");
    let model = count_before(summary, " from the model");
    let fallback = count_before(summary, " fallback");
    let dropped = count_before(summary, " dropped");
    assert_eq!(frames_in, ffprobe_frames(&input), "{summary}");
    assert_eq!(
        frames_in,
        model + fallback + dropped,
        "frames counted nowhere: {summary}"
    );
    assert!(!summary.contains("unaccounted"), "{summary}");
    assert_eq!(ffprobe_frames(&playlist), model + fallback, "{summary}");
}

/// What one run of the slow model against a live source saw.
struct Overload {
    processed: u64,
    dropped: u64,
    fallback: u64,
    latency_max_ms: f64,
    /// The most a frame leaving gendrsr lagged behind the clock.
    lag: Duration,
    stats_messages: usize,
}

/// A live 30 fps 160×90 source into `slow_x2.onnx` (≈ 150–300 ms a frame
/// here, so 3–7 fps) for `secs` seconds.
fn slow_model_run(on_overload: &str, secs: u64) -> Overload {
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true ! video/x-raw,width=160,height=90,framerate=30/1 \
         ! gendrsr name=sr model={} tile-size=256 max-frames-in-flight=2 \
           on-overload={on_overload} latency-budget=1000 stats-interval=500 \
         ! fakesink sync=false",
        repo("tests/data/slow_x2.onnx").display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sr = pipeline.by_name("sr").unwrap();
    let lag = std::sync::Arc::new(Mutex::new(Duration::ZERO));
    {
        let (lag, weak) = (lag.clone(), pipeline.downgrade());
        sr.static_pad("src")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                let (Some(buffer), Some(pipeline)) = (info.buffer(), weak.upgrade()) else {
                    return gst::PadProbeReturn::Ok;
                };
                // videotestsrc's segment starts at 0: PTS is running time.
                if let (Some(pts), Some(now)) = (buffer.pts(), pipeline.current_running_time()) {
                    let l = Duration::from_nanos(now.saturating_sub(pts).nseconds());
                    let mut max = lag.lock().unwrap();
                    *max = (*max).max(l);
                }
                gst::PadProbeReturn::Ok
            });
    }
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut stats_messages = 0;
    while Instant::now() < deadline {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Error(e) => panic!("{}", e.error()),
            gst::MessageView::Element(e)
                if e.structure().is_some_and(|s| s.name() == "gendrsr-stats") =>
            {
                stats_messages += 1
            }
            gst::MessageView::Latency(_) => {
                let _ = pipeline.recalculate_latency();
            }
            _ => {}
        }
    }
    let run = Overload {
        processed: sr.property("frames-processed"),
        dropped: sr.property("frames-dropped"),
        fallback: sr.property("frames-fallback"),
        latency_max_ms: sr.property("latency-max-ms"),
        lag: *lag.lock().unwrap(),
        stats_messages,
    };
    pipeline.set_state(gst::State::Null).unwrap();
    eprintln!(
        "{on_overload}: {} model, {} dropped, {} fallback; in gendrsr max {:.0} ms; lag max {:?}",
        run.processed, run.dropped, run.fallback, run.latency_max_ms, run.lag
    );
    run
}

/// Under `block`, a live source that outpaces the model falls further behind
/// every second: after 5 s at 3–7 fps out of 30, frames leave ≥ 3.5 s late.
/// Under `drop` and `fallback`, at most `max-frames-in-flight` = 2 frames
/// queue for the model, so a frame leaves after at most ~3 inference times
/// (≤ 1 s even at 300 ms each); 2.5 s leaves room for a loaded machine and
/// is still far below what the blocking run reaches.
#[test]
fn a_slow_model_under_a_live_source_keeps_latency_bounded() {
    let _serial = serial();
    let drop = slow_model_run("drop", 5);
    assert!(drop.processed > 0, "the model ran no frame");
    assert!(drop.dropped > 0, "nothing was dropped");
    assert_eq!(drop.fallback, 0);
    assert!(
        drop.lag < Duration::from_millis(2500),
        "drop lag {:?}",
        drop.lag
    );
    assert!(drop.latency_max_ms < 2500.0, "{}", drop.latency_max_ms);
    assert!(
        drop.stats_messages >= 4,
        "{} stats messages",
        drop.stats_messages
    );

    let fallback = slow_model_run("fallback", 4);
    assert!(fallback.processed > 0);
    assert!(fallback.fallback > 0, "no fallback frames");
    assert!(
        fallback.lag < Duration::from_millis(2500),
        "fallback lag {:?}",
        fallback.lag
    );
    // Nearly every frame comes out: 30 fps for 4 s, less start-up.
    assert!(
        fallback.processed + fallback.fallback > 60,
        "{} + {}",
        fallback.processed,
        fallback.fallback
    );

    let block = slow_model_run("block", 5);
    assert_eq!(block.dropped + block.fallback, 0);
    assert!(
        block.lag > drop.lag + Duration::from_secs(1),
        "block lag {:?} vs drop lag {:?}: the test does not tell them apart",
        block.lag,
        drop.lag
    );
}
