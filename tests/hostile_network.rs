//! The real daemon against what a stranger on the network, or a viewer-token holder, can send
//! it: refused WHEP offers by the hundred, offers with NUL bytes, silent TLS connections, a
//! flood of refusals for the log, fifty snapshots at once, cross-site logins. And taking access
//! back: a revoked token's viewer, a new password's open WebSockets, a logout, a replayed
//! resume token. (The floods from many addresses are in `tests/connection_floods.rs`.) Its
//! client is the probe's.
#![cfg(feature = "probe")]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::Daemon;
use common::client::{self, Response};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const PASSWORD: &str = "correct horse battery";
const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
/// Small pictures: these tests are about the network side.
const SMALL: &str = "[media]\nwidth = 320\nheight = 240\n";

fn server(daemon: &Daemon) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], daemon.https_port))
}

/// A receive-only offer as a browser would make it, complete enough for webrtcbin.
fn offer() -> String {
    let fingerprint = (0..32).map(|_| "AB").collect::<Vec<_>>().join(":");
    let section = |kind: &str, mid: u8, payload: &str, codec: &[&str]| {
        let mut text = format!(
            "m={kind} 9 UDP/TLS/RTP/SAVPF {payload}\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:Zq7x\r\na=ice-pwd:w4nq0hG8bLkP2c9RmT3sXv1y\r\na=ice-options:trickle\r\n\
             a=fingerprint:sha-256 {fingerprint}\r\na=setup:actpass\r\na=mid:{mid}\r\n\
             a=recvonly\r\na=rtcp-mux\r\n"
        );
        for line in codec {
            text.push_str(line);
            text.push_str("\r\n");
        }
        text
    };
    format!(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
         a=group:BUNDLE 0 1\r\na=msid-semantic: WMS\r\n{}{}",
        section(
            "audio",
            0,
            "111",
            &[
                "a=rtpmap:111 opus/48000/2",
                "a=fmtp:111 minptime=10;useinbandfec=1"
            ]
        ),
        section(
            "video",
            1,
            "106",
            &[
                "a=rtcp-rsize",
                "a=rtpmap:106 H264/90000",
                "a=rtcp-fb:106 nack",
                "a=rtcp-fb:106 nack pli",
                "a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
            ]
        ),
    )
}

/// Offers that pass the device's own reading but that webrtcbin refuses.
fn offers_webrtcbin_refuses() -> Vec<String> {
    let good = offer();
    let without = |prefix: &str| {
        good.split("\r\n")
            .filter(|line| !line.starts_with(prefix))
            .collect::<Vec<_>>()
            .join("\r\n")
    };
    vec![
        without("a=fingerprint"),
        without("a=ice-ufrag"),
        without("a=ice-pwd"),
        without("a=mid"),
        good.replace("a=setup:actpass", "a=setup:holdconn"),
    ]
}

async fn whep(daemon: &Daemon, offer: &str, token: Option<&str>) -> Response {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/sdp")];
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer.as_str()));
    }
    client::request(
        LOOPBACK,
        server(daemon),
        "POST",
        "/whep",
        &headers,
        offer.as_bytes(),
    )
    .await
    .expect("the daemon answers a WHEP offer")
}

/// The daemon's `/metrics` value `name`, read with `cookie` (none with `auth = "none"`).
async fn metric(daemon: &Daemon, cookie: Option<&str>, name: &str) -> Option<f64> {
    let headers: Vec<(&str, &str)> = cookie.map(|c| ("Cookie", c)).into_iter().collect();
    let response =
        client::request(LOOPBACK, server(daemon), "GET", "/metrics", &headers, b"").await?;
    response.text().lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Polls `check` every 100 ms for up to `limit`; how long it took, or `None`.
async fn within<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_refused_offers_leave_no_descriptors_or_threads_behind() {
    // Under a descriptor limit the old leak (3 per refused offer) would have used up.
    let daemon = Daemon::start_limited("refused-offers", "none", SMALL, Some(1024));
    let good = whep(&daemon, &offer(), None).await;
    assert_eq!(
        good.status,
        201,
        "the template offer is usable: {}",
        good.text()
    );
    let location = good.header("location").expect("a Location");
    let ended = client::request(LOOPBACK, server(&daemon), "DELETE", &location, &[], b"").await;
    assert_eq!(ended.map(|r| r.status), Some(200));

    let bad = offers_webrtcbin_refuses();
    // A few rounds first, so GStreamer's thread pools and caches are as warm as they get.
    for (n, offer) in bad.iter().cycle().take(20).enumerate() {
        let response = whep(&daemon, offer, None).await;
        assert_eq!(
            response.status,
            400,
            "offer {}: {}",
            n % bad.len(),
            response.text()
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (fds_before, threads_before) = daemon.descriptors_and_threads();
    for (n, offer) in bad.iter().cycle().take(500).enumerate() {
        let response = whep(&daemon, offer, None).await;
        assert_eq!(response.status, 400, "offer {n}: {}", response.text());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (fds_after, threads_after) = daemon.descriptors_and_threads();
    eprintln!(
        "descriptors {fds_before} -> {fds_after}, threads {threads_before} -> {threads_after}"
    );
    assert!(
        fds_after <= fds_before + 4,
        "descriptors grew from {fds_before} to {fds_after}"
    );
    assert!(
        threads_after <= threads_before + 4,
        "threads grew from {threads_before} to {threads_after}"
    );
    let mut daemon = daemon;
    assert!(daemon.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_of_descriptors_the_device_refuses_new_pipelines_and_recovers_at_once() {
    // A limit so low that 110 open connections leave less than the pipelines' reserve (96):
    // ~30 open at rest + 96 fit in 200, ~140 + 96 do not.
    let mut daemon = Daemon::start_limited(
        "descriptor-reserve",
        "none",
        &format!("[http]\nmax_connections = 130\n{SMALL}"),
        Some(200),
    );
    let snapshot = |daemon: &Daemon| {
        client::request(LOOPBACK, server(daemon), "GET", "/snapshot.jpg", &[], b"")
    };
    assert_eq!(snapshot(&daemon).await.map(|r| r.status), Some(200));
    let mut held = Vec::new();
    for n in 0..110u8 {
        let source = IpAddr::from([127, 0, 4, n + 1]);
        held.push(
            client::tcp_from(source, server(&daemon))
                .await
                .expect("connect"),
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (fds, _) = daemon.descriptors_and_threads();
    let refused = snapshot(&daemon).await.expect("an answer");
    assert_eq!(
        refused.status,
        503,
        "{fds} descriptors open: {}",
        refused.text()
    );
    assert!(
        refused.text().contains("short of file descriptors"),
        "{}",
        refused.text()
    );
    let viewer = whep(&daemon, &offer(), None).await;
    assert_eq!(viewer.status, 503, "{}", viewer.text());
    assert!(viewer.header("retry-after").is_some());
    let mut caller = client::websocket(LOOPBACK, server(&daemon), "none=1")
        .await
        .expect("WebSocket");
    caller
        .send(Message::Text(r#"{"type":"join"}"#.into()))
        .await
        .unwrap();
    let told = wait_for_type(&mut caller, "error")
        .await
        .expect("the caller is told");
    assert_eq!(told["code"], "media-failed", "{told}");
    assert!(
        told["message"]
            .as_str()
            .unwrap_or("")
            .contains("short of file descriptors"),
        "{told}"
    );
    drop(caller);
    drop(held);
    let back = within(Duration::from_secs(5), || async {
        snapshot(&daemon).await.is_some_and(|r| r.status == 200)
    })
    .await;
    eprintln!("{fds} descriptors open at the refusal; pictures again after {back:?}");
    assert!(back.is_some(), "no picture after the connections closed");
    assert!(daemon.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_with_a_nul_byte_is_refused_before_gstreamer_sees_it() {
    let daemon = Daemon::start_with("nul-offer", SMALL);
    let poisoned = offer().replace("a=group:BUNDLE", "a=group\0:BUNDLE");
    let response = whep(&daemon, &poisoned, None).await;
    assert_eq!(response.status, 400, "{}", response.text());
    assert!(response.text().contains("U+0000"), "{}", response.text());
    let escaped = offer().replace("s=-", "s=\u{1b}[2J");
    assert_eq!(whep(&daemon, &escaped, None).await.status, 400);
    assert_eq!(metric(&daemon, None, "peercam_viewers").await, Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_completes_tls_and_sends_nothing_is_let_go() {
    let daemon = Daemon::start_with(
        "tls-silent",
        "[http]\nheader_read_timeout_seconds = 2\nhandshake_timeout_seconds = 2\n",
    );
    for alpn in ["http/1.1", "h2"] {
        let mut stream = client::tls_from(LOOPBACK, server(&daemon), &[alpn])
            .await
            .expect("TLS completes");
        let started = Instant::now();
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(
            Duration::from_secs(15),
            tokio::io::AsyncReadExt::read(&mut stream, &mut byte),
        )
        .await;
        // HTTP/2's server preface may arrive first; what matters is that the server closes.
        let closed = match read {
            Ok(Ok(0) | Err(_)) => true,
            Ok(Ok(_)) => {
                let mut rest = Vec::new();
                tokio::time::timeout(
                    Duration::from_secs(15),
                    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut rest),
                )
                .await
                .is_ok()
            }
            Err(_) => false,
        };
        assert!(closed, "{alpn}: a silent connection was held over 15 s");
        eprintln!("{alpn}: closed after {:?}", started.elapsed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_tokens_and_wrong_passwords_costs_a_few_lines_of_log() {
    let daemon = Daemon::start_with_password("log-flood", "");
    daemon.set_password(PASSWORD);
    let token = daemon.create_token("retrying-player");
    let before = daemon.output_lines();
    let deadline = Instant::now() + Duration::from_secs(5);
    let address = server(&daemon);
    let mut workers = Vec::new();
    for worker in 0..9u8 {
        let bearer = format!("Bearer {token}");
        workers.push(tokio::spawn(async move {
            let mut refused = 0u32;
            // Wrong passwords from addresses of their own, made-up tokens from 127.0.0.1, and
            // a token holder retrying an offer the device refuses.
            let source = IpAddr::from([127, 0, 3, worker + 1]);
            while Instant::now() < deadline {
                let made_up = format!("Bearer pcv_made_up_{refused}");
                let (from, method, path, headers, body): (_, _, _, Vec<(&str, &str)>, &[u8]) =
                    match worker % 3 {
                        0 => (
                            LOOPBACK,
                            "GET",
                            "/snapshot.jpg",
                            vec![("Authorization", &made_up)],
                            b"",
                        ),
                        1 => (
                            source,
                            "POST",
                            "/login",
                            vec![("Content-Type", "application/x-www-form-urlencoded")],
                            b"password=guess",
                        ),
                        _ => (
                            source,
                            "POST",
                            "/whep",
                            vec![
                                ("Authorization", &bearer),
                                ("Content-Type", "application/sdp"),
                            ],
                            b"v=0\r\ns=\x1b\r\n",
                        ),
                    };
                let response = client::request(from, address, method, path, &headers, body).await;
                if response.is_some_and(|r| [400, 401, 429].contains(&r.status)) {
                    refused += 1;
                }
            }
            refused
        }));
    }
    let mut refused = 0;
    for worker in workers {
        refused += worker.await.expect("worker");
    }
    // Let the window's summary arrive.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let lines = daemon.output()[before..].to_vec();
    eprintln!("{refused} requests refused; {} lines logged", lines.len());
    assert!(refused > 500, "the flood was too small to tell: {refused}");
    assert!(
        lines.len() <= 200,
        "{} lines for {refused} refusals:\n{}",
        lines.len(),
        lines[..lines.len().min(40)].join("\n")
    );
    assert!(
        lines.iter().any(|l| l.contains("refused")
            && l.contains("unknown or revoked viewer tokens from 127.0.0.1")),
        "no summary of the refused tokens:\n{}",
        lines.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_snapshots_at_once_all_get_a_picture() {
    let daemon = Daemon::start_with("snapshots", SMALL);
    let address = server(&daemon);
    let started = Instant::now();
    let requests: Vec<_> = (0..50)
        .map(|_| {
            tokio::spawn(async move {
                client::request(LOOPBACK, address, "GET", "/snapshot.jpg", &[], b"").await
            })
        })
        .collect();
    let mut pictures = 0;
    for request in requests {
        let response = request.await.expect("task").expect("an answer");
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(
            response.header("content-type").as_deref(),
            Some("image/jpeg")
        );
        assert!(
            response.body.starts_with(&[0xff, 0xd8]) && response.body.ends_with(&[0xff, 0xd9]),
            "not a whole JPEG ({} bytes)",
            response.body.len()
        );
        pictures += 1;
    }
    assert_eq!(pictures, 50);
    eprintln!(
        "50 snapshots at once: all answered after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_login_is_refused_and_not_counted_against_the_owner() {
    let daemon = Daemon::start_with_password("cross-site", "[login]\nmax_failures = 5\n");
    daemon.set_password(PASSWORD);
    let address = server(&daemon);
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    for headers in [
        [form[0], ("Origin", "https://evil.example")],
        [form[0], ("Sec-Fetch-Site", "cross-site")],
    ] {
        for _ in 0..6 {
            let response = client::request(
                LOOPBACK,
                address,
                "POST",
                "/login",
                &headers,
                b"password=guess",
            )
            .await
            .expect("an answer");
            assert_eq!(response.status, 403, "{}", response.text());
        }
    }
    // A cross-site logout is refused too.
    let logout = client::request(
        LOOPBACK,
        address,
        "POST",
        "/logout",
        &[("Origin", "https://evil.example")],
        b"",
    )
    .await
    .expect("an answer");
    assert_eq!(logout.status, 403);
    // Twelve cross-site tries later, the owner's own login still works.
    assert!(client::log_in(LOOPBACK, address, PASSWORD).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_token_ends_its_viewer() {
    let daemon = Daemon::start_with_password("revoke", SMALL);
    daemon.set_password(PASSWORD);
    let token = daemon.create_token("dashboard");
    let cookie = client::log_in(LOOPBACK, server(&daemon), PASSWORD)
        .await
        .expect("log in");
    let watching = whep(&daemon, &offer(), Some(&token)).await;
    assert_eq!(watching.status, 201, "{}", watching.text());
    let location = watching.header("location").expect("a Location");
    assert_eq!(
        metric(&daemon, Some(&cookie), "peercam_viewers").await,
        Some(1.0)
    );

    let revoked = std::process::Command::new(common::binary())
        .args(["token", "revoke", "dashboard", "--state-dir"])
        .arg(daemon.state_dir())
        .output()
        .expect("token revoke");
    assert!(revoked.status.success());
    let took = within(Duration::from_secs(5), || async {
        metric(&daemon, Some(&cookie), "peercam_viewers").await == Some(0.0)
    })
    .await;
    eprintln!("the revoked token's viewer ended after {took:?}");
    if took.is_none() {
        eprintln!("{}", daemon.output().join("\n"));
    }
    assert!(
        took.is_some(),
        "the revoked token's viewer is still watching"
    );
    // The session is gone: the owner ending it finds nothing; the revoked token opens nothing.
    let ended = client::request(
        LOOPBACK,
        server(&daemon),
        "DELETE",
        &location,
        &[("Cookie", &cookie)],
        b"",
    )
    .await
    .expect("an answer");
    assert_eq!(ended.status, 404, "{}", ended.text());
    assert_eq!(whep(&daemon, &offer(), Some(&token)).await.status, 401);
}

/// A daemon with a password, and the owner logged in: the daemon, its address, the cookie.
async fn logged_in(name: &str) -> (Daemon, SocketAddr, String) {
    let daemon = Daemon::start_with_password(name, SMALL);
    daemon.set_password(PASSWORD);
    let address = server(&daemon);
    let cookie = client::log_in(LOOPBACK, address, PASSWORD)
        .await
        .expect("log in");
    (daemon, address, cookie)
}

/// The next text message on `socket` within `limit`, as JSON.
async fn next_message<S>(socket: &mut S, limit: Duration) -> Option<serde_json::Value>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, socket.next()).await.ok()?? {
            Ok(Message::Text(text)) => return serde_json::from_str(&text).ok(),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

/// Reads `socket` until a message of `kind` (returned) or the end.
async fn wait_for_type<S>(socket: &mut S, kind: &str) -> Option<serde_json::Value>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = next_message(socket, Duration::from_secs(10)).await?;
        if message["type"] == kind {
            return Some(message);
        }
    }
}

/// A WebSocket with `cookie` that joins the device's room: the socket and its `joined`.
async fn call_the_device(
    address: SocketAddr,
    cookie: &str,
) -> (
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    serde_json::Value,
) {
    let mut socket = client::websocket(LOOPBACK, address, cookie)
        .await
        .expect("WebSocket");
    socket
        .send(Message::Text(r#"{"type":"join"}"#.into()))
        .await
        .unwrap();
    let joined = wait_for_type(&mut socket, "joined").await.expect("joined");
    (socket, joined)
}

/// Whether the server closes `socket` within 10 s.
async fn closes<S>(socket: &mut S) -> bool
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(message)) = socket.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_password_ends_open_websockets_and_the_call_they_made() {
    let (daemon, address, cookie) = logged_in("password-change").await;
    let (mut caller, _) = call_the_device(address, &cookie).await;
    let mut idle = client::websocket(LOOPBACK, address, &cookie)
        .await
        .expect("a second WebSocket");

    daemon.set_password("a brand new password");
    for socket in [&mut caller, &mut idle] {
        let bye = wait_for_type(socket, "bye").await.expect("told why");
        assert!(
            bye["reason"]
                .as_str()
                .unwrap_or("")
                .contains("password was changed"),
            "{bye}"
        );
        assert!(closes(socket).await, "the socket stayed open");
    }
    // The device is free again, and the old cookie opens nothing.
    let new_cookie = client::log_in(LOOPBACK, address, "a brand new password")
        .await
        .expect("log in with the new password");
    assert_eq!(
        metric(&daemon, Some(&new_cookie), "peercam_in_call").await,
        Some(0.0)
    );
    assert!(
        client::websocket(LOOPBACK, address, &cookie)
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_ends_the_session_and_what_it_opened() {
    let (_daemon, address, cookie) = logged_in("logout").await;
    let other = client::log_in(LOOPBACK, address, PASSWORD)
        .await
        .expect("a second session");
    let mut socket = client::websocket(LOOPBACK, address, &cookie)
        .await
        .expect("WebSocket");
    let origin = format!("https://{address}");
    let out = client::request(
        LOOPBACK,
        address,
        "POST",
        "/logout",
        &[("Cookie", &cookie), ("Origin", &origin)],
        b"",
    )
    .await
    .expect("an answer");
    assert_eq!(out.status, 200, "{}", out.text());
    assert!(
        out.header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0")),
        "{}",
        out.head
    );
    let bye = wait_for_type(&mut socket, "bye").await.expect("told why");
    assert!(
        bye["reason"].as_str().unwrap_or("").contains("logged out"),
        "{bye}"
    );
    assert!(closes(&mut socket).await);
    let ice_servers_with = |cookie: String| async move {
        client::request(
            LOOPBACK,
            address,
            "GET",
            "/api/ice-servers",
            &[("Cookie", &cookie)],
            b"",
        )
        .await
        .expect("an answer")
    };
    let refused = ice_servers_with(cookie).await;
    assert_eq!(refused.status, 401, "the session ended on the server");
    let kept = ice_servers_with(other).await;
    assert_eq!(kept.status, 200, "another session is not affected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_token_works_once_and_the_connection_that_lost_the_call_is_told() {
    let (_daemon, address, cookie) = logged_in("resume-takeover").await;
    let (mut first, joined) = call_the_device(address, &cookie).await;
    let token = joined["resume"]
        .as_str()
        .expect("a resume token")
        .to_owned();
    let resume = format!(r#"{{"type":"resume","token":"{token}"}}"#);

    let mut second = client::websocket(LOOPBACK, address, &cookie)
        .await
        .expect("WebSocket");
    second
        .send(Message::Text(resume.clone().into()))
        .await
        .unwrap();
    let rejoined = wait_for_type(&mut second, "joined").await.expect("resumed");
    let fresh = rejoined["resume"].as_str().expect("a new token");
    assert_ne!(fresh, token, "the token is rotated on resume");
    let told = wait_for_type(&mut first, "bye")
        .await
        .expect("the first is told");
    assert!(
        told["reason"]
            .as_str()
            .unwrap_or("")
            .contains("another connection"),
        "{told}"
    );

    // Replayed, the used token resumes nothing.
    let mut third = client::websocket(LOOPBACK, address, &cookie)
        .await
        .expect("WebSocket");
    third.send(Message::Text(resume.into())).await.unwrap();
    let refused = wait_for_type(&mut third, "error").await.expect("refused");
    assert_eq!(refused["code"], "not-allowed", "{refused}");
}
