//! The whole daemon run in-process through `peercam::daemon::run`, on listeners bound to port 0
//! of loopback: the page, a snapshot from the real camera pipeline (the test pattern), a STUN
//! Binding answered, and a stop that hangs up cleanly and gives the ports back. Its client is
//! the probe's.
#![cfg(feature = "probe")]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use common::client;
use peercam::config::Config;
use peercam::daemon::{self, Command, Listeners, Stop};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn config() -> Config {
    Config::parse(
        "auth = \"none\"\n\
         [http]\nbind = \"127.0.0.1\"\nhttps_port = 0\nhttp_port = 0\n\
         [stun]\nbind = \"127.0.0.1\"\nport = 0\n\
         [media]\nvideo_source = \"videotestsrc is-live=true\"\n\
         audio_source = \"audiotestsrc is-live=true wave=ticks\"\naudio_sink = \"fakesink\"\n\
         width = 320\nheight = 240\n",
        "in-process test",
    )
    .expect("the test's config parses")
}

/// A STUN Binding request's answer from `port`: the response's message type and transaction ID.
fn stun_binding(port: u16) -> ([u8; 2], [u8; 12]) {
    let socket = UdpSocket::bind((LOOPBACK, 0)).expect("bind a UDP socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set a timeout");
    let transaction = *b"inprocesstst";
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    request.extend_from_slice(&transaction);
    socket
        .send_to(&request, (LOOPBACK, port))
        .expect("send the request");
    let mut answer = [0u8; 512];
    let n = socket.recv(&mut answer).expect("a STUN answer");
    assert!(n >= 20, "a STUN message is at least 20 bytes, got {n}");
    let mut id = [0u8; 12];
    id.copy_from_slice(&answer[8..20]);
    ([answer[0], answer[1]], id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_runs_in_process_and_gives_its_ports_back() {
    let state = common::TempDir::new("in-process");
    let config = config();
    let listeners = Listeners::bind(&config).await.expect("bind port 0");
    let https = SocketAddr::new(LOOPBACK, listeners.https_port());
    let redirect = listeners.redirect_port().expect("the redirect is on");
    let stun = listeners.stun_port().expect("STUN is on");
    let (commands, received) = tokio::sync::mpsc::channel(1);
    let daemon = tokio::spawn(daemon::run(
        config,
        listeners,
        state.0.join("state"),
        received,
    ));

    let page = client::request(LOOPBACK, https, "GET", "/", &[], b"")
        .await
        .expect("the page answers");
    assert_eq!(page.status, 200, "{}", page.head);
    assert!(page.text().contains("Call device"), "the device's page");

    let snapshot = client::request(LOOPBACK, https, "GET", "/snapshot.jpg", &[], b"")
        .await
        .expect("a snapshot answers");
    assert_eq!(snapshot.status, 200, "{}", snapshot.head);
    assert!(
        snapshot.body.starts_with(&[0xFF, 0xD8]),
        "a JPEG from the camera pipeline ({} bytes)",
        snapshot.body.len()
    );

    let (kind, id) = tokio::task::spawn_blocking(move || stun_binding(stun))
        .await
        .expect("the STUN exchange");
    assert_eq!(kind, [0x01, 0x01], "a Binding success response");
    assert_eq!(&id, b"inprocesstst", "the request's transaction ID");

    let redirected = tokio::net::TcpStream::connect((LOOPBACK, redirect)).await;
    assert!(redirected.is_ok(), "the redirect port listens");

    commands
        .send(Command::Stop { why: "the test" })
        .await
        .expect("the daemon hears the stop");
    let stopped = tokio::time::timeout(Duration::from_secs(10), daemon)
        .await
        .expect("the daemon stops within 10 s")
        .expect("the daemon's task does not panic")
        .expect("a clean run");
    assert_eq!(stopped, Stop::Clean, "every caller told, the media stopped");
    for port in [https.port(), redirect] {
        assert!(
            tokio::net::TcpStream::connect((LOOPBACK, port))
                .await
                .is_err(),
            "port {port} is closed once the daemon returned"
        );
    }
}
