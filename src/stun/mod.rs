//! The STUN responder: answers Binding requests on UDP (3478 by default) so a browser learns
//! its own address from the device itself, with no public STUN server.
//!
//! `codec` is pure (bytes in, bytes out); `rate_limit` is a pure token bucket per source
//! address; `batch` moves datagrams in and out many per system call; `serve` is the thin loop
//! around them that owns the socket. Nothing a datagram says
//! can make the loop fail: bad input is counted and dropped.

pub mod batch;
pub mod codec;
mod rate_limit;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::metrics::Metrics;
use batch::Batch;
pub use rate_limit::RateLimiter;

/// Sources tracked by the rate limiter at most.
const MAX_TRACKED_SOURCES: usize = 16_384;

/// Binds the responder's socket; an IPv6 wildcard also receives IPv4 on Linux and falls back
/// to IPv4 alone on hosts without IPv6.
pub fn bind(address: IpAddr, port: u16) -> std::io::Result<UdpSocket> {
    let wanted = SocketAddr::new(address, port);
    match UdpSocket::bind(wanted) {
        Err(e) if address.is_unspecified() && address.is_ipv6() => {
            log::warn!("cannot bind STUN to {wanted} ({e}); trying IPv4 only");
            UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], port)))
        }
        other => other,
    }
}

/// Starts the responder on a thread of its own; the receiver completes if it ever stops.
pub fn spawn(
    socket: UdpSocket,
    rate_per_second: u32,
    burst: u32,
    metrics: Arc<Metrics>,
) -> std::io::Result<oneshot::Receiver<()>> {
    let (stopped, on_stop) = oneshot::channel();
    std::thread::Builder::new()
        .name("stun".into())
        .spawn(move || {
            serve(&socket, rate_per_second, burst, &metrics);
            let _ = stopped.send(());
        })?;
    Ok(on_stop)
}

/// Answers Binding requests on `socket`, `rate_per_second` (after a `burst`) per source
/// address, in batches of up to `batch::BATCH`; returns only if the socket fails for good.
fn serve(socket: &UdpSocket, rate_per_second: u32, burst: u32, metrics: &Metrics) {
    let mut limiter = RateLimiter::new(rate_per_second, burst, MAX_TRACKED_SOURCES);
    let mut requests = Batch::default();
    let mut replies: Vec<(Vec<u8>, SocketAddr)> = Vec::with_capacity(batch::BATCH);
    loop {
        match requests.receive(socket) {
            Ok(_) => {}
            // ICMP errors from earlier replies may surface here; they are not fatal.
            Err(e) if is_transient(&e) => {
                log::debug!("STUN receive: {e}");
                continue;
            }
            Err(e) => {
                log::error!("STUN socket failed: {e}");
                return;
            }
        }
        let now = Instant::now();
        replies.clear();
        let (mut ignored, mut limited) = (0, 0);
        for (datagram, source) in requests.datagrams() {
            match codec::answer(datagram, source) {
                Err(why) => {
                    ignored += 1;
                    log::trace!(
                        "STUN: ignored {} bytes from {source}: {why}",
                        datagram.len()
                    );
                }
                Ok(_) if !limiter.allow(source.ip().to_canonical(), now) => limited += 1,
                Ok(reply) => replies.push((reply, source)),
            }
        }
        Metrics::add(&metrics.stun_ignored, ignored);
        Metrics::add(&metrics.stun_rate_limited, limited);
        let sent = batch::send_all(socket, &replies);
        Metrics::add(&metrics.stun_answered, sent as u64);
    }
}

fn is_transient(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        Interrupted
            | WouldBlock
            | ConnectionRefused
            | ConnectionReset
            | HostUnreachable
            | NetworkUnreachable
    )
}
