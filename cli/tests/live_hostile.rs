//! `gendr live` against hostile or careless use: values its encoder would
//! refuse, Basic authentication unless asked for, the descriptor limit,
//! thousands of idle connections, password guessing and a client that
//! stops reading. Each wait is bounded; every child is killed when its
//! guard drops.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gendr_test_support::{
    free_tcp_port, free_udp_port, gendr, rtsp_reply_head, run, ts_sender, Guard,
};

/// The password the tests' RTSP servers take for user `viewer`.
const PASSWORD: &str = "right horse battery";

/// `gendr live` from `input` to an RTSP server on `port`, with `extra`
/// arguments; `soft_fd_limit` is set in the child before it starts.
fn rtsp_server(port: u16, input: &str, extra: &[&str], soft_fd_limit: Option<u64>) -> Guard {
    let mut command = gendr();
    command
        .args(["live", input, &format!("rtsp://127.0.0.1:{port}/live")])
        .args(["--model", "fast", "--quiet"])
        .args(extra)
        .env("GENDR_RTSP_PASSWORD", PASSWORD)
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

/// An input where nothing arrives.
const SILENT: &str = "udp://127.0.0.1:9";

/// The head of the reply to an unauthenticated DESCRIBE.
fn describe_without_credentials(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!("DESCRIBE rtsp://127.0.0.1:{port}/live RTSP/1.0\r\nCSeq: 1\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    rtsp_reply_head(&mut stream).unwrap_or_else(|other| panic!("no reply to DESCRIBE: {other}"))
}

/// An x264 preset the encoder does not have was a panic in the output
/// pipeline; it is a usage error naming the accepted values.
#[test]
fn an_unknown_preset_is_a_usage_error() {
    let out = run(gendr()
        .args(["live", "udp://127.0.0.1:9", "udp://127.0.0.1:9"])
        .args(["--preset", "bogus"]));
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
    let live = rtsp_server(q, SILENT, &["--rtsp-user", "viewer"], None);
    let reply = describe_without_credentials(q);
    assert!(reply.starts_with("RTSP/1.0 401"), "{reply}");
    assert!(
        reply.contains("Digest") && !reply.contains("Basic"),
        "{reply}"
    );
    drop(live);

    let q = free_tcp_port();
    let _live = rtsp_server(
        q,
        SILENT,
        &["--rtsp-user", "viewer", "--rtsp-allow-basic"],
        None,
    );
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
    let live = rtsp_server(q, SILENT, &[], Some(1024));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", live.0.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[3], fields[4], "soft and hard limits: {line}");
}

/// Clients the server holds at most (gatekeeper.rs `MAX_CLIENTS`): the
/// descriptors it may add under a flood of connections.
const MAX_CLIENTS: usize = 64;

/// Idle connections opened against the server in the flood test.
const IDLE_CONNECTIONS: usize = 2000;

/// `Authorization` values for user `viewer` (Basic: base64 of `viewer:PASSWORD`).
const RIGHT_BASIC: &str = "Basic dmlld2VyOnJpZ2h0IGhvcnNlIGJhdHRlcnk=";
const WRONG_BASIC: &str = "Basic dmlld2VyOndyb25n";

/// The soft descriptor limit of this process raised to its hard limit, for
/// the flood's sockets.
fn raise_own_descriptor_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit read and write the struct passed, nothing else.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(
        limit.rlim_max as usize > IDLE_CONNECTIONS + 100,
        "the hard descriptor limit {} is too low for the test",
        limit.rlim_max
    );
}

/// Descriptors open in process `pid`.
fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// CPU time (user + system) in a `/proc/.../stat` file, in seconds.
fn stat_cpu_seconds(stat_path: &str) -> f64 {
    let stat = std::fs::read_to_string(stat_path).unwrap();
    // The fields after the command name, whose parentheses may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a constant.
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// CPU time process `pid` has used, in seconds: the whole process, or only
/// its threads named `thread`.
fn cpu_seconds(pid: u32, thread: Option<&str>) -> f64 {
    let Some(thread) = thread else {
        return stat_cpu_seconds(&format!("/proc/{pid}/stat"));
    };
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| {
            let task = task.ok()?.path();
            let name = std::fs::read_to_string(task.join("comm")).ok()?;
            (name.trim_end() == thread)
                .then(|| stat_cpu_seconds(&task.join("stat").to_string_lossy()))
        })
        .sum()
}

/// The thread that serves RTSP: it accepts, authenticates and times out
/// the connections (the streaming and the model run on others).
const RTSP_THREAD: &str = "gendr-rtsp";

/// Cores process `pid` keeps busy over `window`: in all, and in its RTSP
/// server thread.
fn cpu_load(pid: u32, window: Duration) -> (f64, f64) {
    let start = (cpu_seconds(pid, None), cpu_seconds(pid, Some(RTSP_THREAD)));
    std::thread::sleep(window);
    let end = (cpu_seconds(pid, None), cpu_seconds(pid, Some(RTSP_THREAD)));
    let seconds = window.as_secs_f64();
    ((end.0 - start.0) / seconds, (end.1 - start.1) / seconds)
}

/// Resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024.0
}

/// Whether `viewer` gets 10 decoded frames from `url` within `limit`
/// (rtspsrc answers Digest, RTP over TCP).
fn viewer_plays(url: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let mut client = Guard(
            Command::new("gst-launch-1.0")
                .arg("-q")
                .arg("rtspsrc")
                .arg(format!("location={url}"))
                .arg("user-id=viewer")
                .arg(format!("user-pw={PASSWORD}"))
                .args(["protocols=tcp", "!", "rtph264depay", "!", "avdec_h264"])
                .args(["!", "identity", "eos-after=10", "!", "fakesink"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        if client
            .wait_for(Duration::from_secs(15))
            .is_some_and(|status| status.success())
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    false
}

/// An RTSP request for `url` with `cseq` and extra header lines.
fn request(method: &str, url: &str, cseq: u32, headers: &[String]) -> String {
    let mut text = format!("{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text
}

/// Sends `request` on `stream` and reads the reply (head and body); None
/// once the server has closed the connection.
fn exchange(stream: &mut TcpStream, request: &str) -> Option<String> {
    stream.write_all(request.as_bytes()).ok()?;
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => reply.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&reply).into_owned();
    let length = header(&head, "Content-Length").map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some(head + &String::from_utf8_lossy(&body))
}

/// The value of header `name` in a reply.
fn header<'a>(reply: &'a str, name: &str) -> Option<&'a str> {
    reply.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(25)))
        .unwrap();
    stream
}

/// 2000 connections that send nothing neither use up the server's
/// descriptors (it holds 64 clients at most, closing the oldest that have
/// not logged in to make room) nor its CPU, and the viewer still plays.
/// gendr used to keep every one of them: about 1000 took the usual 1024
/// descriptors and then aborted the process.
#[test]
fn idle_connections_neither_lock_out_the_viewer_nor_use_up_descriptors() {
    raise_own_descriptor_limit();
    let (p, q) = (free_udp_port(), free_tcp_port());
    let _send = ts_sender(p, "ball");
    let input = format!("udp://127.0.0.1:{p}");
    let live = rtsp_server(q, &input, &["--rtsp-user", "viewer"], None);
    let pid = live.0.id();
    let url = format!("rtsp://127.0.0.1:{q}/live");
    assert!(
        viewer_plays(&url, Duration::from_secs(45)),
        "the viewer got no frames before the flood"
    );
    let fds_before = descriptors(pid);
    let load_before = cpu_load(pid, Duration::from_secs(3));

    let address = SocketAddr::from(([127, 0, 0, 1], q));
    let started = Instant::now();
    let idle: Vec<TcpStream> = (0..IDLE_CONNECTIONS)
        .filter_map(|_| TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok())
        .collect();
    let opening = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let fds_held = descriptors(pid);
    let load_held = cpu_load(pid, Duration::from_secs(3));
    eprintln!(
        "{} of {IDLE_CONNECTIONS} idle connections opened in {:.1} s; server descriptors \
         {fds_before} before, {fds_held} while held; CPU in % of a core, whole process {:.1} \
         before, {:.1} while held; its RTSP thread {:.1} before, {:.1} while held",
        idle.len(),
        opening.as_secs_f64(),
        load_before.0 * 100.0,
        load_held.0 * 100.0,
        load_before.1 * 100.0,
        load_held.1 * 100.0
    );
    assert!(
        idle.len() >= IDLE_CONNECTIONS * 9 / 10,
        "only {} connections opened",
        idle.len()
    );
    assert!(
        fds_held <= fds_before + MAX_CLIENTS,
        "{fds_held} descriptors while {} idle connections were held, {fds_before} before",
        idle.len()
    );
    // The RTSP thread's own time, not the whole process's: the upscaling
    // threads' share moves by more than 10 % of a core with the machine's
    // load, whatever the connections do.
    assert!(
        load_held.1 - load_before.1 < 0.10,
        "idle connections cost the RTSP thread {:.1} % of a core",
        (load_held.1 - load_before.1) * 100.0
    );
    assert!(
        viewer_plays(&url, Duration::from_secs(30)),
        "the viewer got no frames while idle connections were held"
    );
    drop(idle);
}

/// Wrong passwords: a connection is closed after its third (its later
/// guesses go unchecked), and an address that has sent five has its next
/// credentials refused unchecked, the right password too, until its budget
/// refills (one a second). gendr used to
/// answer thousands of guesses a second on one connection.
#[test]
fn wrong_passwords_are_slowed_then_disconnected() {
    let (p, q) = (free_udp_port(), free_tcp_port());
    let _send = ts_sender(p, "ball");
    let input = format!("udp://127.0.0.1:{p}");
    let _live = rtsp_server(
        q,
        &input,
        &["--rtsp-user", "viewer", "--rtsp-allow-basic"],
        None,
    );
    let url = format!("rtsp://127.0.0.1:{q}/live");
    let describe = |cseq, credentials: &str| {
        request(
            "DESCRIBE",
            &url,
            cseq,
            &[format!("Authorization: {credentials}")],
        )
    };
    // The right password works (the first reply waits for the model's first frame).
    let mut first = connect(q);
    let reply = exchange(&mut first, &describe(1, RIGHT_BASIC)).expect("no reply");
    assert!(reply.starts_with("RTSP/1.0 200"), "{reply}");
    drop(first);

    // Guesses as fast as the answers come: the answers stop within a
    // fraction of a second.
    let mut guesser = connect(q);
    guesser
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let started = Instant::now();
    let mut answered = 0;
    while exchange(&mut guesser, &describe(answered + 1, WRONG_BASIC)).is_some() {
        answered += 1;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{answered} wrong passwords answered in 2 s on one connection, still open"
        );
    }
    // Closed, not left unanswered and open: it was, about once in ten runs
    // of these tests side by side, when the server closed it from another
    // thread than the one reading it (docs/live.md).
    guesser
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let read = guesser.read(&mut [0u8; 1]);
    assert!(
        !matches!(
            &read,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
        ),
        "a guesser's connection went unanswered but open after {answered} answers, {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert!(answered >= 3, "cut off after {answered} answers");

    // The address's budget, from full: wait for it to refill, then spend
    // all five wrong passwords, two to a connection (a third closes it).
    std::thread::sleep(PASSWORD_BURST_REFILL);
    for guesses in [2, 2, 1] {
        let mut spender = connect(q);
        for cseq in 1..=guesses {
            let reply = exchange(&mut spender, &describe(cseq, WRONG_BASIC)).expect("no reply");
            assert!(reply.starts_with("RTSP/1.0 401"), "{reply}");
        }
    }
    let mut third = connect(q);
    let reply = exchange(&mut third, &describe(1, RIGHT_BASIC)).expect("no reply");
    assert!(
        reply.starts_with("RTSP/1.0 401"),
        "the right password was checked with the address's budget spent: {reply}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let mut later = connect(q);
    let reply = exchange(&mut later, &describe(1, RIGHT_BASIC)).expect("no reply");
    assert!(
        reply.starts_with("RTSP/1.0 200"),
        "the right password was refused once the budget refilled: {reply}"
    );
}

/// Long enough for an address's whole budget of wrong passwords (5, one
/// a second) to refill.
const PASSWORD_BURST_REFILL: Duration = Duration::from_millis(5500);

/// A client that plays over RTP/TCP and then stops reading: the server's
/// memory stays within 8 MiB of where it was, for 15 s at 8 Mbit/s
/// (GENDR_BACKLOG_WINDOW_S sets the window; `make live-backlog-check` runs
/// 60 s). gendr used to hold everything the client did not read: +13.4 MiB
/// in these 15 s here, +25 MiB in 30 s in the issue.
#[test]
fn a_client_that_stops_reading_holds_bounded_memory() {
    const BOUND_MIB: f64 = 8.0;
    let window = Duration::from_secs(
        std::env::var("GENDR_BACKLOG_WINDOW_S")
            .ok()
            .map_or(15, |v| v.parse().expect("GENDR_BACKLOG_WINDOW_S: seconds")),
    );
    let (p, q) = (free_udp_port(), free_tcp_port());
    let _send = ts_sender(p, "snow");
    let input = format!("udp://127.0.0.1:{p}");
    let live = rtsp_server(
        q,
        &input,
        &[
            "--rtsp-user",
            "viewer",
            "--rtsp-allow-basic",
            "--bitrate",
            "8000",
        ],
        None,
    );
    let pid = live.0.id();
    let url = format!("rtsp://127.0.0.1:{q}/live");
    let auth = format!("Authorization: {RIGHT_BASIC}");
    let mut client = connect(q);
    let reply = exchange(
        &mut client,
        &request("DESCRIBE", &url, 1, std::slice::from_ref(&auth)),
    )
    .expect("no reply to DESCRIBE");
    assert!(reply.starts_with("RTSP/1.0 200"), "{reply}");
    let base = header(&reply, "Content-Base").unwrap_or(&url).to_string();
    let control = reply
        .lines()
        .filter_map(|l| l.strip_prefix("a=control:"))
        .find(|c| c.starts_with("stream="))
        .expect("no stream control in the SDP");
    let setup = request(
        "SETUP",
        &format!("{}/{control}", base.trim_end_matches('/')),
        2,
        &[
            auth.clone(),
            "Transport: RTP/AVP/TCP;unicast;interleaved=0-1".into(),
        ],
    );
    let reply = exchange(&mut client, &setup).expect("no reply to SETUP");
    assert!(reply.starts_with("RTSP/1.0 200"), "{reply}");
    let session = header(&reply, "Session")
        .and_then(|s| s.split(';').next())
        .expect("no session")
        .to_string();
    let play = request("PLAY", &url, 3, &[auth, format!("Session: {session}")]);
    client.write_all(play.as_bytes()).unwrap();
    // Read a little, so that the stream is known to flow, then stop reading.
    let mut received = vec![0u8; 1 << 20];
    client
        .read_exact(&mut received)
        .expect("no stream after PLAY");
    std::thread::sleep(Duration::from_secs(2));
    let start = rss_mib(pid);
    let mut peak = start;
    let deadline = Instant::now() + window;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
        assert!(descriptors(pid) > 0);
        peak = peak.max(rss_mib(pid));
    }
    eprintln!(
        "server RSS {start:.1} MiB when the client stopped reading, peak {peak:.1} MiB over {} s",
        window.as_secs()
    );
    assert!(
        peak - start < BOUND_MIB,
        "the server's memory grew by {:.1} MiB in {} s for a client that does not read",
        peak - start,
        window.as_secs()
    );
    drop(client);
}

/// A connection that sends nothing is closed once its 10 s to log in are
/// up (gatekeeper.rs `LOGIN_TIMEOUT`, swept every second); gendr used to
/// keep it for ever.
#[test]
fn a_connection_that_never_logs_in_is_closed_after_10_s() {
    let q = free_tcp_port();
    let _live = rtsp_server(q, SILENT, &["--rtsp-user", "viewer"], None);
    let mut silent = connect(q);
    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let connected = Instant::now();
    let mut byte = [0u8; 1];
    let read = silent.read(&mut byte);
    let after = connected.elapsed();
    assert!(
        matches!(read, Ok(0)),
        "still open after {:.1} s: {read:?}",
        after.as_secs_f64()
    );
    assert!(
        (Duration::from_secs(10)..Duration::from_secs(13)).contains(&after),
        "closed after {:.1} s",
        after.as_secs_f64()
    );
}
