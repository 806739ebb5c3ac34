//! Listeners: HTTPS (TLS by rustls, then HTTP/1.1 with WebSocket upgrades into the router) and
//! plain HTTP that only redirects to HTTPS.
//!
//! The listeners and the shutdown future are passed in, so tests and `main` decide the ports.
//! Each accepted connection runs in its own task; a failed handshake only ends that task.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// Limits on each HTTPS connection, from `[http]` in the config.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub per_address: Arc<super::limits::PerAddress>,
    /// How long a client may take to finish the TLS handshake.
    pub handshake_timeout: Duration,
    /// How long a client may take to send a request's headers (against slowloris).
    pub header_read_timeout: Duration,
}

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

/// Serves `router` over TLS until `shutdown` completes, with the certificate in force at each
/// connection.
pub async fn https(
    listener: TcpListener,
    tls: Arc<crate::tls::SharedTls>,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
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
        let permit = match limits.per_address.try_acquire(peer.ip().to_canonical()) {
            Ok(permit) => permit,
            Err(open) => {
                // Closed before TLS: the cheapest answer to a flood from one address.
                log::warn!(
                    "refused a connection from {}: {open} already open from it",
                    peer.ip().to_canonical()
                );
                drop(tcp);
                continue;
            }
        };
        // The certificate in force now: a reload applies to the next connection.
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
        let (router, limits) = (router.clone(), limits.clone());
        tokio::spawn(async move {
            serve_connection(acceptor, tcp, peer, router, &limits).await;
            drop(permit);
        });
    }
}

async fn serve_connection(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: &ConnectionLimits,
) {
    let _ = tcp.set_nodelay(true);
    let stream = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            log::debug!("TLS handshake with {peer} failed: {e}");
            return;
        }
        Err(_) => {
            log::debug!("TLS handshake with {peer} timed out");
            return;
        }
    };
    let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request)
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    if let Err(e) = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .await
    {
        log::debug!("connection from {peer} ended: {e}");
    }
}

/// Serves plain HTTP that redirects every request to the same path over HTTPS.
pub async fn redirect(
    listener: TcpListener,
    https_port: u16,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new().fallback(move |headers: HeaderMap, uri: Uri| async move {
        redirect_target(&headers, &uri, https_port)
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
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
