//! The STUN responder: answers Binding requests on UDP (3478 by default) so a browser learns
//! its own address from the device itself, with no public STUN server.
//!
//! `codec` is pure (bytes in, bytes out); `rate_limit` is a pure token bucket per source
//! address; `serve` is the thin loop around them that owns the socket. Nothing a datagram says
//! can make the loop fail: bad input is counted and dropped.

pub mod codec;
mod rate_limit;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;

use crate::metrics::Metrics;
pub use rate_limit::RateLimiter;

/// Sources tracked by the rate limiter at most.
const MAX_TRACKED_SOURCES: usize = 16_384;

/// Binds the responder's socket; an IPv6 wildcard also receives IPv4 on Linux and falls back
/// to IPv4 alone on hosts without IPv6.
pub async fn bind(address: IpAddr, port: u16) -> std::io::Result<UdpSocket> {
    let wanted = SocketAddr::new(address, port);
    match UdpSocket::bind(wanted).await {
        Err(e) if address.is_unspecified() && address.is_ipv6() => {
            log::warn!("cannot bind STUN to {wanted} ({e}); trying IPv4 only");
            UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], port))).await
        }
        other => other,
    }
}

/// Answers Binding requests on `socket` for ever, `rate_per_second` (after a `burst`) per
/// source address.
pub async fn serve(socket: UdpSocket, rate_per_second: u32, burst: u32, metrics: Arc<Metrics>) {
    let mut limiter = RateLimiter::new(rate_per_second, burst, MAX_TRACKED_SOURCES);
    let mut buffer = vec![0u8; 2048];
    loop {
        let (length, source) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(e) => {
                // ICMP errors from earlier replies surface here on Linux; they are not fatal.
                log::debug!("STUN receive: {e}");
                continue;
            }
        };
        let reply = match codec::answer(&buffer[..length], source) {
            Ok(reply) => reply,
            Err(why) => {
                Metrics::add(&metrics.stun_ignored, 1);
                log::trace!("STUN: ignored {length} bytes from {source}: {why}");
                continue;
            }
        };
        if !limiter.allow(source.ip().to_canonical(), Instant::now()) {
            Metrics::add(&metrics.stun_rate_limited, 1);
            continue;
        }
        match socket.send_to(&reply, source).await {
            Ok(_) => Metrics::add(&metrics.stun_answered, 1),
            Err(e) => log::debug!("STUN reply to {source}: {e}"),
        }
    }
}
