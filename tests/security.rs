//! Network-facing protections of the real daemon: TLS 1.2/1.3 only, security headers, the
//! WebSocket Origin check, the per-address connection cap and the header-read timeout.
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, get, s_client, spawn_s_client};

#[test]
fn tls_1_1_is_refused_and_1_2_and_1_3_are_accepted() {
    let daemon = Daemon::start("tls-versions");
    // SECLEVEL=0 makes the client willing to offer TLS 1.1, so the refusal is the server's.
    let (ok, text) = s_client(
        &daemon,
        &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"],
        &get("/", ""),
    );
    assert!(
        !ok && !text.contains("HTTP/1.1 200"),
        "TLS 1.1 was accepted:\n{text}"
    );
    for version in ["-tls1_2", "-tls1_3"] {
        let (ok, text) = s_client(&daemon, &[version], &get("/", ""));
        assert!(
            ok && text.contains("HTTP/1.1 200"),
            "{version} refused:\n{text}"
        );
    }
}

#[test]
fn the_page_carries_the_security_headers() {
    let daemon = Daemon::start("headers");
    let (_, text) = s_client(&daemon, &[], &get("/", ""));
    let lower = text.to_ascii_lowercase();
    for header in [
        "content-security-policy: default-src 'self'; script-src 'self';",
        "frame-ancestors 'none'",
        "referrer-policy: no-referrer",
        "permissions-policy: camera=(self), microphone=(self)",
        "strict-transport-security: max-age=",
        "x-frame-options: deny",
    ] {
        assert!(lower.contains(header), "missing {header}:\n{text}");
    }
    assert!(!lower.contains("unsafe-inline"));
}

#[test]
fn a_websocket_from_another_origin_is_refused() {
    let daemon = Daemon::start("origin");
    let upgrade = |origin: &str| {
        get(
            "/ws",
            &format!(
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: {origin}\r\n"
            ),
        )
        .replace("Connection: close\r\n", "")
    };
    let (_, evil) = s_client(&daemon, &[], &upgrade("https://evil.example"));
    assert!(evil.contains("HTTP/1.1 403"), "{evil}");
    assert!(evil.contains("is not this device"), "{evil}");
    let (_, same) = s_client(&daemon, &[], &upgrade("https://127.0.0.1"));
    // Host is 127.0.0.1 (port 443 implied on both sides): the same origin upgrades.
    assert!(same.contains("HTTP/1.1 101"), "{same}");
}

#[test]
fn two_hundred_connections_from_one_address_are_capped_and_others_still_served() {
    let daemon = Daemon::start_with("connection-cap", "[http]\nconnections_per_address = 20\n");
    let server = SocketAddr::from(([127, 0, 0, 1], daemon.https_port));
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..200 {
        let mut stream = TcpStream::connect(server).expect("the kernel accepts the connection");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut byte = [0u8; 1];
        // A capped connection is closed at once: the read sees EOF instead of timing out.
        match stream.read(&mut byte) {
            Ok(0) => refused += 1,
            _ => held.push(stream),
        }
    }
    assert_eq!(held.len(), 20, "{refused} refused");
    assert_eq!(refused, 180);

    // Another source address is served while 127.0.0.1 is at its cap.
    let socket = socket2_free_connect("127.0.0.2", server);
    assert!(socket, "a connection from 127.0.0.2 is not capped");
    drop(held);
}

/// Connects from `local` (a loopback address) and checks the server keeps the connection open
/// (no immediate EOF).
fn socket2_free_connect(local: &str, server: SocketAddr) -> bool {
    let output = Command::new("python3")
        .args([
            "-c",
            "import socket,sys\n\
             s=socket.socket(); s.bind((sys.argv[1],0)); s.connect((sys.argv[2],int(sys.argv[3])))\n\
             s.settimeout(0.5)\n\
             try:\n    print('closed' if s.recv(1)==b'' else 'data')\n\
             except socket.timeout:\n    print('open')",
            local,
            &server.ip().to_string(),
            &server.port().to_string(),
        ])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&output.stdout).trim() == "open"
}

#[test]
fn a_client_too_slow_to_send_its_headers_is_cut_off() {
    let daemon = Daemon::start_with("slowloris", "[http]\nheader_read_timeout_seconds = 2\n");
    let mut child = spawn_s_client(&daemon, &[]);
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(8) {
        if child.try_wait().expect("wait").is_some() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    assert!(closed, "the connection stayed open with half a request");
}
