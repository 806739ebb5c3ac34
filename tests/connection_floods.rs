//! The real daemon under the 1024-descriptor limit a unit without `LimitNOFILE` gives it, while
//! strangers flood it from many loopback addresses: idle TCP connections to the HTTPS and the
//! redirect ports, TLS connections that then say nothing, `slowhttptest` in slowloris and
//! slow-body modes, and `h2load`. Throughout, a viewer keeps watching; during the flood the
//! owner, from another address, logs in, takes a snapshot (a new pipeline) and calls; when the
//! flood stops the next request is served at once. Before the connection budget, the idle
//! flood alone used every descriptor and GLib aborted the daemon at the next pipeline.
//!
//! Needs the network namespace of `scripts/in-netns` (its veth address 10.99.0.1 is the owner's
//! and the viewer's, so the per-address limits see them apart from the flood on loopback).
#![cfg(feature = "probe")]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, binary, client};
use tokio::net::TcpStream;

const PASSWORD: &str = "correct horse battery";
/// The owner's and the viewer's address: the veth of `scripts/in-netns`.
const OWNER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 99, 0, 1));
/// How long the strangers keep at it.
const FLOOD: Duration = Duration::from_secs(25);
/// Addresses the idle flood comes from, and connections it keeps open from each to each port.
const FLOOD_ADDRESSES: u8 = 20;
const HELD_PER_ADDRESS: usize = 80;

fn has_owner_address() -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(OWNER, 0)).is_ok()
}

/// Whether the daemon has not closed `stream` (what it sent, a TLS session ticket or an HTTP/2
/// preface, is read and dropped: these clients never answer).
fn still_open(stream: &TcpStream) -> bool {
    let mut buffer = [0u8; 4096];
    loop {
        match stream.try_read(&mut buffer) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(e) => return e.kind() == std::io::ErrorKind::WouldBlock,
        }
    }
}

/// Holds up to `HELD_PER_ADDRESS` plain TCP connections from `source` to `server` open until
/// `until`, opening new ones as the daemon closes old ones; how many it opened in all.
async fn hold_idle(source: IpAddr, server: SocketAddr, until: Instant) -> usize {
    let mut held: Vec<TcpStream> = Vec::new();
    let mut opened = 0;
    while Instant::now() < until {
        // Kept while open and silent; the daemon closing one frees a place to open another.
        held.retain(still_open);
        while held.len() < HELD_PER_ADDRESS && Instant::now() < until {
            match tokio::time::timeout(Duration::from_secs(1), client::tcp_from(source, server))
                .await
            {
                Ok(Ok(stream)) => {
                    held.push(stream);
                    opened += 1;
                }
                _ => break,
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    opened
}

/// Holds TLS connections from `source` that finish the handshake and then say nothing.
async fn hold_silent_tls(source: IpAddr, server: SocketAddr, alpn: &'static str, until: Instant) {
    let mut held = Vec::new();
    while Instant::now() < until {
        held.retain(|stream: &tokio_rustls::client::TlsStream<TcpStream>| {
            still_open(stream.get_ref().0)
        });
        while held.len() < 40 && Instant::now() < until {
            match tokio::time::timeout(
                Duration::from_secs(2),
                client::tls_from(source, server, &[alpn]),
            )
            .await
            {
                Ok(Ok(stream)) => held.push(stream),
                _ => break,
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Starts one of the load tools no one here wrote, quietly.
fn tool(program: &str, args: &[String]) -> Child {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} is installed by scripts/setup --test: {e}"))
}

fn probe(url: &str, extra: &[&str], token: Option<&str>) -> Output {
    let mut command = Command::new(binary());
    command
        .args(["probe", url, "--insecure", "--json", "--timeout", "20"])
        .args(extra)
        .env("PEERCAM_PASSWORD", PASSWORD);
    match token {
        Some(token) => command.env("PEERCAM_TOKEN", token),
        None => command.env_remove("PEERCAM_TOKEN"),
    };
    command.output().expect("run peercam probe")
}

fn fps(output: &Output) -> f64 {
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
    report["calls"][0]["video"]["fps"].as_f64().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_from_many_addresses_leave_room_for_the_owner_and_a_running_call() {
    assert!(
        has_owner_address(),
        "run this under scripts/in-netns (it needs the address {OWNER})"
    );
    // This process opens thousands of sockets for the flood.
    let _ =
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 16_384, 16_384);
    let mut daemon = Daemon::start_limited(
        "floods",
        "password",
        "[http]\nbind = \"0.0.0.0\"\n[media]\nwidth = 320\nheight = 240\n",
        Some(1024),
    );
    daemon.set_password(PASSWORD);
    let token = daemon.create_token("living-room");
    let https = SocketAddr::from(([127, 0, 0, 1], daemon.https_port));
    let http = SocketAddr::from(([127, 0, 0, 1], daemon.http_port));
    let owner_url = format!("https://{OWNER}:{}/", daemon.https_port);

    // The running call: a viewer watching through the whole flood.
    let viewer = {
        let url = owner_url.clone();
        let token = token.clone();
        std::thread::spawn(move || probe(&url, &["--whep", "--duration", "30"], Some(&token)))
    };
    tokio::time::sleep(Duration::from_secs(4)).await;

    let until = Instant::now() + FLOOD;
    let mut strangers = Vec::new();
    for n in 1..=FLOOD_ADDRESSES {
        let source = IpAddr::from([127, 0, 1, n]);
        strangers.push(tokio::spawn(hold_idle(source, https, until)));
        strangers.push(tokio::spawn(hold_idle(source, http, until)));
    }
    let mut silent = Vec::new();
    for (n, alpn) in ["http/1.1", "h2", "http/1.1", "h2"].into_iter().enumerate() {
        let source = IpAddr::from([127, 0, 2, n as u8 + 1]);
        silent.push(tokio::spawn(hold_silent_tls(source, https, alpn, until)));
    }
    let seconds = FLOOD.as_secs().to_string();
    let target = format!("https://127.0.0.1:{}/login", daemon.https_port);
    let mut tools = vec![
        tool(
            "slowhttptest",
            &[
                "-H", "-c", "400", "-r", "100", "-i", "5", "-l", &seconds, "-u", &target,
            ]
            .map(str::to_owned),
        ),
        tool(
            "slowhttptest",
            &[
                "-B", "-c", "200", "-r", "100", "-i", "5", "-s", "65536", "-l", &seconds, "-u",
                &target,
            ]
            .map(str::to_owned),
        ),
        tool(
            "h2load",
            &[
                "-D", &seconds, "-c", "20", "-m", "8", "--rps", "10", &target,
            ]
            .map(str::to_owned),
        ),
    ];
    tokio::time::sleep(Duration::from_secs(6)).await;

    // The owner, from another address, in the thick of it.
    let (fds, _) = daemon.descriptors_and_threads();
    eprintln!("descriptors during the flood: {fds}");
    assert!(daemon.is_running(), "the daemon died in the flood");
    let asked = Instant::now();
    let cookie = client::log_in(OWNER, SocketAddr::new(OWNER, daemon.https_port), PASSWORD)
        .await
        .expect("the owner logs in during the flood");
    eprintln!("the owner logged in after {:?}", asked.elapsed());
    // As the owner's browser would, a connection refused while every place is busy with
    // requests in flight (none idle to give way) is tried again a second later.
    let mut snapshot = None;
    for _ in 0..3 {
        snapshot = client::request(
            OWNER,
            SocketAddr::new(OWNER, daemon.https_port),
            "GET",
            "/snapshot.jpg",
            &[("Cookie", &cookie)],
            b"",
        )
        .await;
        if snapshot.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let snapshot = snapshot.expect("an answer within three tries");
    assert_eq!(snapshot.status, 200, "{}", snapshot.text());
    let call = {
        let url = owner_url.clone();
        tokio::task::spawn_blocking(move || probe(&url, &["--duration", "5"], None))
            .await
            .expect("probe")
    };
    assert!(
        call.status.success(),
        "the owner's call failed in the flood: {}",
        String::from_utf8_lossy(&call.stderr)
    );
    eprintln!("the owner's call in the flood: {:.1} fps", fps(&call));
    assert!(
        fps(&call) >= 25.0,
        "{}",
        String::from_utf8_lossy(&call.stdout)
    );
    let (fds, _) = daemon.descriptors_and_threads();
    eprintln!("descriptors during the call in the flood: {fds}");
    assert!(fds < 1024);

    // The flood ends; the next request is served at once.
    let mut opened = 0;
    for stranger in strangers {
        opened += stranger.await.expect("stranger");
    }
    for task in silent {
        let _ = task.await;
    }
    for mut tool in tools.drain(..) {
        let _ = tool.kill();
        let _ = tool.wait();
    }
    eprintln!("the idle flood opened {opened} connections");
    assert!(opened > 2_000, "the flood was too small to tell: {opened}");
    let asked = Instant::now();
    let page = client::request(
        IpAddr::from([127, 0, 0, 1]),
        https,
        "GET",
        "/login",
        &[],
        b"",
    )
    .await
    .expect("served right after the flood");
    assert_eq!(page.status, 200);
    eprintln!(
        "first request after the flood answered in {:?}",
        asked.elapsed()
    );

    let viewer = tokio::task::spawn_blocking(move || viewer.join().expect("viewer"))
        .await
        .expect("viewer");
    assert!(
        viewer.status.success(),
        "the viewer's call broke: {}",
        String::from_utf8_lossy(&viewer.stderr)
    );
    eprintln!(
        "the running viewer through the flood: {:.1} fps",
        fps(&viewer)
    );
    assert!(
        fps(&viewer) >= 25.0,
        "{}",
        String::from_utf8_lossy(&viewer.stdout)
    );
    assert!(daemon.is_running());
    let output = daemon.output().join("\n");
    assert!(!output.contains("GLib-ERROR"), "GLib gave up");
    assert!(
        !output.contains("Too many open files"),
        "descriptors ran out"
    );
}
