//! Listeners: HTTPS (TLS by rustls, then HTTP/1.1 with WebSocket upgrades into the router) and
//! plain HTTP that only redirects to HTTPS.
//!
//! The listeners and the shutdown future are passed in, so tests and `main` decide the ports.
//! Each accepted connection runs in its own task with a place in the shared
//! `ConnectionBudget`; a failed handshake only ends that task. A connection is closed when it
//! takes too long over TLS, over its first request or over any request's headers, when it sits
//! idle, or when the budget gives its (idle) place to a newer connection.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use super::limits::{ConnectionBudget, Permit, Refused};
use crate::refusals;

/// Limits on every connection, from `[http]` in the config. One budget is shared by the HTTPS
/// and redirect listeners.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub budget: Arc<ConnectionBudget>,
    /// How long a client may take to finish the TLS handshake.
    pub handshake_timeout: Duration,
    /// How long a client may take to send a request's headers (against slowloris), and to send
    /// its first request once TLS is done (the protocol sniff and HTTP/2's preface included).
    pub header_read_timeout: Duration,
    /// How long a connection may sit with no request in flight before it is closed.
    pub idle_timeout: Duration,
}

/// A connection's place in the budget and what it is doing, handed to each request so a
/// WebSocket can keep the place for as long as it lives.
#[derive(Debug, Clone)]
pub struct ConnectionSlot(pub Arc<Permit>);

/// How often a connection checks whether it has been idle too long.
const IDLE_CHECK: Duration = Duration::from_millis(500);
/// HTTP/2 streams one connection may have open at once.
const MAX_STREAMS: u32 = 32;
/// HTTP/2 keep-alive: a ping after this long without frames, and the connection closed when
/// it goes unanswered for `KEEPALIVE_TIMEOUT`.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Request headers larger than this are refused (both protocols).
const MAX_HEADER_BYTES: usize = 64 << 10;

/// Binds `address`; an IPv6 wildcard falls back to IPv4 on hosts without IPv6.
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    match TcpListener::bind(address).await {
        Err(e) if address.ip().is_unspecified() && address.is_ipv6() => {
            log::warn!("cannot bind {address} ({e}); trying IPv4 only");
            TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], address.port()))).await
        }
        other => other,
    }
}

/// Accepts connections until `shutdown`, each with a place in the budget, and runs `serve` on
/// each in a task of its own.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    limits: &ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr, Arc<Permit>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    log::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let address = peer.ip().to_canonical();
        let permit = match limits.budget.try_acquire(address) {
            Ok(permit) => Arc::new(permit),
            Err(refused) => {
                // Closed before TLS: the cheapest answer to a flood.
                let kind = match refused {
                    Refused::Address(_) => refusals::Kind::ConnectionCap,
                    Refused::Full(_) => refusals::Kind::ConnectionsFull,
                };
                refusals::note(
                    kind,
                    address,
                    format_args!("refused a connection from {address}: {refused}"),
                );
                drop(tcp);
                continue;
            }
        };
        tokio::spawn(serve(tcp, peer, permit));
    }
}

/// Serves `router` over TLS until `shutdown` completes, with the certificate in force at each
/// connection.
pub async fn https(
    listener: TcpListener,
    tls: Arc<crate::tls::SharedTls>,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let serve = |tcp: TcpStream, peer: SocketAddr, permit: Arc<Permit>| {
        // The certificate in force now: a reload applies to the next connection.
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
        let (router, limits) = (router.clone(), limits.clone());
        async move {
            let _ = tcp.set_nodelay(true);
            let handshake = tokio::select! {
                handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)) => handshake,
                () = permit.activity.evicted() => return,
            };
            match handshake {
                Ok(Ok(stream)) => serve_http(stream, peer, router, &limits, permit, true).await,
                Ok(Err(e)) => log::debug!("TLS handshake with {peer} failed: {e}"),
                Err(_) => log::debug!("TLS handshake with {peer} timed out"),
            }
        }
    };
    accept_loop(listener, &limits, shutdown, serve).await;
}

/// Serves HTTP/1.1 (and, over TLS, HTTP/2) on one connection until it ends, is idle too long,
/// or its place is wanted for a newer connection.
async fn serve_http<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    limits: &ConnectionLimits,
    permit: Arc<Permit>,
    allow_http2: bool,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let slot = ConnectionSlot(Arc::clone(&permit));
    // When the last request ended (the connection's start before any), and whether one has.
    let last_active = Arc::new(std::sync::Mutex::new((Instant::now(), false)));
    let service = {
        let last_active = Arc::clone(&last_active);
        hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
            let in_flight = slot.0.activity.request();
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(slot.clone());
            let last_active = Arc::clone(&last_active);
            let response = router.clone().oneshot(request);
            async move {
                let response = response.await;
                // Held only to store an instant.
                *last_active.lock().unwrap_or_else(|p| p.into_inner()) = (Instant::now(), true);
                drop(in_flight);
                response
            }
        })
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT);
    let builder = if allow_http2 {
        builder
    } else {
        builder.http1_only()
    };
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut checks = tokio::time::interval(IDLE_CHECK);
    loop {
        tokio::select! {
            result = &mut connection => {
                if let Err(e) = result {
                    log::debug!("connection from {peer} ended: {e}");
                }
                return;
            }
            () = permit.activity.evicted() => {
                log::debug!("connection from {peer} closed: its place went to a newer one");
                return;
            }
            _ = checks.tick() => {
                if !permit.activity.is_idle() {
                    continue;
                }
                let (since, served_one) = {
                    let last = last_active.lock().unwrap_or_else(|p| p.into_inner());
                    (last.0.elapsed(), last.1)
                };
                // Before its first request a connection has the header timeout; after, the
                // idle timeout.
                let limit = if served_one { limits.idle_timeout } else { limits.header_read_timeout };
                if since >= limit {
                    log::debug!("connection from {peer} closed: idle for {} s", since.as_secs());
                    return;
                }
            }
        }
    }
}

/// Serves plain HTTP that redirects every request to the same path over HTTPS, under the same
/// budget and timeouts as HTTPS.
pub async fn redirect(
    listener: TcpListener,
    https_port: u16,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let app = Router::new().fallback(move |headers: HeaderMap, uri: Uri| async move {
        redirect_target(&headers, &uri, https_port)
    });
    let serve = |tcp: TcpStream, peer: SocketAddr, permit: Arc<Permit>| {
        let (app, limits) = (app.clone(), limits.clone());
        async move { serve_http(tcp, peer, app, &limits, permit, false).await }
    };
    accept_loop(listener, &limits, shutdown, serve).await;
}

fn redirect_target(headers: &HeaderMap, uri: &Uri, https_port: u16) -> Response {
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(crate::host::host_without_port)
    else {
        return (StatusCode::BAD_REQUEST, "a Host header is required\n").into_response();
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    Redirect::permanent(&format!("https://{host}{port}{path}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(host: &str, path: &str, port: u16) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, host.parse().unwrap());
        redirect_target(&headers, &path.parse().unwrap(), port)
    }

    fn location(response: &Response) -> &str {
        response.headers()[header::LOCATION].to_str().unwrap()
    }

    #[test]
    fn redirect_keeps_host_and_path_and_swaps_port() {
        let r = target("cam.local:8080", "/a?b=c", 8443);
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(location(&r), "https://cam.local:8443/a?b=c");
    }

    #[test]
    fn redirect_to_443_has_no_port() {
        assert_eq!(location(&target("10.0.0.2", "/", 443)), "https://10.0.0.2/");
    }

    #[test]
    fn redirect_handles_ipv6_hosts() {
        assert_eq!(
            location(&target("[::1]:8080", "/", 8443)),
            "https://[::1]:8443/"
        );
    }

    #[test]
    fn hostile_host_header_is_refused() {
        assert_eq!(
            target("evil.com/x@y", "/", 8443).status(),
            StatusCode::BAD_REQUEST
        );
    }
}
