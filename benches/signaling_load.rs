//! Signaling load benchmark (figures, not a test): many WebSocket clients over TLS, in
//! two-person rooms, against the real daemon on loopback.
//!
//! `cargo bench --bench signaling_load` (or `scripts/bench-signaling`). Environment:
//! `CLIENTS` (default 1000, even), `RATE` (messages per second in the steady run, default
//! 10000), `SECONDS` (steady run length, default 20).
//!
//! Phases: (1) every client connects (TCP + TLS + WebSocket) and joins room `r<i/2>`: joins per
//! second; (2) each pair exchanges an offer- and answer-sized message and ten candidates each
//! way; (3) a steady run at RATE messages a second spread over all clients. Each relayed message
//! carries its send time, so the receiver measures relay latency. The daemon's CPU and RSS are
//! read from /proc.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

#[path = "../tests/common/mod.rs"]
mod common;

type Socket = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Accepts the daemon's self-signed certificate: this bench measures load, not trust.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn connect(connector: &tokio_rustls::TlsConnector, port: u16) -> Socket {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("TCP connect");
    tcp.set_nodelay(true).expect("nodelay");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let url = format!("wss://localhost:{port}/ws");
    let (socket, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("WebSocket upgrade");
    socket
}

/// Waits for a message of one of `kinds` (by its JSON `type`), skipping others.
async fn expect_type(socket: &mut Socket, kinds: &[&str]) -> serde_json::Value {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
                if kinds.iter().any(|k| value["type"] == *k) {
                    return value;
                }
                assert_ne!(value["type"], "error", "refused: {value}");
            }
            Some(Ok(_)) => {}
            other => panic!("socket ended waiting for {kinds:?}: {other:?}"),
        }
    }
}

fn candidate(sent_ns: u128) -> String {
    format!(
        r#"{{"type":"candidate","candidate":"candidate:1467250027 1 udp 2122260223 9f1a2c4e-1b7d-4c38-9d2e-5a6b7c8d9e0f.local 54400 typ host generation 0 ufrag Wd8c network-id 1 ts={sent_ns}","sdpMLineIndex":0,"sdpMid":"0"}}"#
    )
}

fn sdp_message(kind: &str, sent_ns: u128) -> String {
    // About the size of a browser's offer with audio and video: 4 KB.
    let body = "a=rtpmap:96 VP8/90000\\r\\na=rtcp-fb:96 goog-remb\\r\\n".repeat(80);
    format!(
        r#"{{"type":"{kind}","sdp":"v=0\\r\\no=- ts={sent_ns} 2 IN IP4 127.0.0.1\\r\\n{body}"}}"#
    )
}

/// The send time a message carries (nanoseconds since the bench started).
fn sent_at(text: &str) -> Option<u128> {
    let start = text.find(" ts=")? + 4;
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

struct ProcessSample {
    cpu_seconds: f64,
    rss_mb: f64,
}

fn sample(pid: u32) -> ProcessSample {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split(' ').collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    ProcessSample {
        cpu_seconds: (ticks(11) + ticks(12)) / 100.0,
        rss_mb: rss_kb / 1024.0,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn report_latencies(label: &str, mut latencies_ms: Vec<f64>) {
    latencies_ms.sort_by(f64::total_cmp);
    println!(
        "{label}: {} messages relayed, latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies_ms.len(),
        percentile(&latencies_ms, 0.5),
        percentile(&latencies_ms, 0.99),
        latencies_ms.last().copied().unwrap_or(f64::NAN),
    );
}

#[tokio::main]
async fn main() {
    let clients = env_number("CLIENTS", 1000).max(2) / 2 * 2;
    let rate = env_number("RATE", 10_000);
    let seconds = env_number("SECONDS", 20);
    let rooms = clients / 2;
    let daemon = common::Daemon::start_with(
        "signaling-bench",
        &format!(
            "[rooms]\nrooms_per_address = {rooms}\nmembers_per_address = {clients}\ntotal_rooms = {rooms}\n"
        ),
    );
    let pid = daemon.pid();
    let port = daemon.https_port;
    let connector = tls_connector();
    let bench_start = Instant::now();
    let now_ns = move || bench_start.elapsed().as_nanos();
    println!("peercam signaling load: {clients} clients over TLS in {rooms} rooms, loopback");
    let idle = sample(pid);

    // Phase 1: connect and join, 64 at a time.
    let joins_started = Instant::now();
    let mut sockets: Vec<Socket> = Vec::with_capacity(clients as usize);
    let mut pending = futures_util::stream::iter(0..clients)
        .map(|i| {
            let connector = connector.clone();
            async move {
                let mut socket = connect(&connector, port).await;
                let join = format!(r#"{{"type":"join","room":"r{}"}}"#, i / 2);
                socket.send(Message::text(join)).await.expect("send join");
                // Whichever of the pair gets there first creates the room.
                expect_type(&mut socket, &["created", "joined"]).await;
                (i, socket)
            }
        })
        .buffer_unordered(64);
    let mut joined: Vec<Option<Socket>> = (0..clients).map(|_| None).collect();
    while let Some((i, socket)) = pending.next().await {
        joined[i as usize] = Some(socket);
    }
    let join_seconds = joins_started.elapsed().as_secs_f64();
    sockets.extend(joined.into_iter().flatten());
    let after_join = sample(pid);
    println!(
        "joins: {clients} in {join_seconds:.2} s = {:.0} joins/s (TCP + TLS + WebSocket + join); daemon RSS {:.1} MB (idle {:.1} MB)",
        clients as f64 / join_seconds,
        after_join.rss_mb,
        idle.rss_mb
    );

    // Every client gets a reader task (latencies out) and a writer channel.
    let (latency_tx, mut latency_rx) = mpsc::unbounded_channel::<f64>();
    let mut writers = Vec::with_capacity(sockets.len());
    for socket in sockets {
        let (mut sink, mut stream) = socket.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(text) = rx.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
        });
        let latency_tx = latency_tx.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if let Message::Text(text) = message
                    && let Some(sent) = sent_at(&text)
                {
                    let _ = latency_tx.send((now_ns() - sent) as f64 / 1e6);
                }
            }
        });
        writers.push(tx);
    }
    drop(latency_tx);
    // `ready` reached both members before the exchange; give the readers a moment to start.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while latency_rx.try_recv().is_ok() {}

    // Phase 2: offer/answer and ten candidates each way, per pair.
    let exchange_started = Instant::now();
    for pair in writers.chunks(2) {
        let _ = pair[0].send(sdp_message("offer", now_ns()));
        let _ = pair[1].send(sdp_message("answer", now_ns()));
        for _ in 0..10 {
            let _ = pair[0].send(candidate(now_ns()));
            let _ = pair[1].send(candidate(now_ns()));
        }
    }
    let expected = clients * 11;
    let mut exchange_latencies = Vec::with_capacity(expected as usize);
    while exchange_latencies.len() < expected as usize {
        match tokio::time::timeout(Duration::from_secs(10), latency_rx.recv()).await {
            Ok(Some(ms)) => exchange_latencies.push(ms),
            _ => break,
        }
    }
    println!(
        "exchange: offer/answer (4 KB) + 10 candidates each way per pair, all relayed in {:.2} s",
        exchange_started.elapsed().as_secs_f64()
    );
    report_latencies("exchange", exchange_latencies);

    // Phase 3: steady rate.
    let before = sample(pid);
    let steady_started = Instant::now();
    let tick = Duration::from_millis(10);
    let per_tick = (rate as f64 * tick.as_secs_f64()).max(1.0) as usize;
    let mut ticker = tokio::time::interval(tick);
    let mut next_client = 0usize;
    let mut sent = 0u64;
    let mut steady_latencies = Vec::with_capacity((rate * seconds) as usize);
    while steady_started.elapsed() < Duration::from_secs(seconds) {
        ticker.tick().await;
        for _ in 0..per_tick {
            let _ = writers[next_client].send(candidate(now_ns()));
            next_client = (next_client + 1) % writers.len();
            sent += 1;
        }
        while let Ok(ms) = latency_rx.try_recv() {
            steady_latencies.push(ms);
        }
    }
    let elapsed = steady_started.elapsed().as_secs_f64();
    let after = sample(pid);
    let deadline = Instant::now() + Duration::from_secs(5);
    while (steady_latencies.len() as u64) < sent && Instant::now() < deadline {
        if let Ok(Some(ms)) =
            tokio::time::timeout(Duration::from_millis(200), latency_rx.recv()).await
        {
            steady_latencies.push(ms);
        }
    }
    println!(
        "steady: {sent} messages in {elapsed:.1} s = {:.0} msg/s offered",
        sent as f64 / elapsed
    );
    report_latencies("steady", steady_latencies);
    println!(
        "daemon during the steady run: CPU {:.1}% of one core, RSS {:.1} MB",
        (after.cpu_seconds - before.cpu_seconds) / elapsed * 100.0,
        after.rss_mb
    );
}
