//! The daemon's sockets: bound before anything is announced (so a port in use stops the start,
//! and a test can bind port 0 and read the port back), then served: HTTPS, the plain-HTTP
//! redirect and the STUN responder, under one connection budget.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::control::DaemonError;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::web::limits::ConnectionBudget;
use crate::web::serve;
use crate::{descriptors, stun, tls};

/// The bound sockets, not yet served.
pub struct Listeners {
    https: tokio::net::TcpListener,
    https_port: u16,
    redirect: Option<tokio::net::TcpListener>,
    stun: Option<std::net::UdpSocket>,
    stun_port: Option<u16>,
}

/// A part of the daemon that runs until it stops.
pub(super) type Part = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The listeners at work; each future ends only when its part stops.
pub(super) struct Served {
    pub https: Part,
    pub redirect: Part,
    pub stun: Part,
}

impl Listeners {
    /// Binds the sockets the config asks for: HTTPS, the redirect (`http.redirect`) and STUN
    /// (`stun.enabled`). Port 0 binds a free port.
    pub async fn bind(config: &Config) -> Result<Self, DaemonError> {
        let https_address = SocketAddr::new(config.http.bind, config.http.https_port);
        let https = serve::bind(https_address)
            .await
            .and_then(|listener| Ok((listener.local_addr()?.port(), listener)))
            .map_err(|source| DaemonError::Bind {
                what: "HTTPS",
                port: config.http.https_port,
                source,
            });
        let (https_port, https) = https?;
        let redirect = if config.http.redirect {
            let address = SocketAddr::new(config.http.bind, config.http.http_port);
            Some(
                serve::bind(address)
                    .await
                    .map_err(|source| DaemonError::Bind {
                        what: "HTTP",
                        port: config.http.http_port,
                        source,
                    })?,
            )
        } else {
            None
        };
        let stun = if config.stun.enabled {
            let socket = stun::bind(config.stun.bind, config.stun.port).map_err(|source| {
                DaemonError::Bind {
                    what: "STUN on UDP",
                    port: config.stun.port,
                    source,
                }
            })?;
            Some(socket)
        } else {
            log::info!("STUN responder off (stun.enabled = false)");
            None
        };
        let stun_port = stun
            .as_ref()
            .and_then(|s| s.local_addr().ok())
            .map(|a| a.port());
        if let Some(port) = stun_port {
            log::info!("STUN responder on UDP port {port}");
        }
        Ok(Self {
            https,
            https_port,
            redirect,
            stun,
            stun_port,
        })
    }

    /// The HTTPS port, as bound.
    pub fn https_port(&self) -> u16 {
        self.https_port
    }

    /// The plain-HTTP redirect's port, when there is one.
    pub fn redirect_port(&self) -> Option<u16> {
        self.redirect
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port())
    }

    /// The STUN responder's UDP port, when it is on.
    pub fn stun_port(&self) -> Option<u16> {
        self.stun_port
    }

    /// Starts serving on every socket.
    pub(super) fn serve(
        self,
        config: &Config,
        router: axum::Router,
        tls: Arc<tls::SharedTls>,
        metrics: &Arc<Metrics>,
    ) -> Result<Served, DaemonError> {
        let stun_stopped = match self.stun {
            Some(socket) => Some(
                stun::spawn(
                    socket,
                    config.stun.rate_per_second,
                    config.stun.burst,
                    Arc::clone(metrics),
                )
                .map_err(DaemonError::Stun)?,
            ),
            None => None,
        };
        let stun = async move {
            match stun_stopped {
                Some(stopped) => {
                    let _ = stopped.await;
                }
                None => std::future::pending().await,
            }
        };
        let limits = connection_limits(config);
        let https = serve::https(
            self.https,
            tls,
            router,
            limits.clone(),
            std::future::pending(),
        );
        let https_port = self.https_port;
        let redirect_listener = self.redirect;
        let redirect = async move {
            match redirect_listener {
                Some(listener) => {
                    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
                    log::info!("HTTP on port {port} redirects to HTTPS");
                    serve::redirect(listener, https_port, limits, std::future::pending()).await
                }
                None => std::future::pending().await,
            }
        };
        Ok(Served {
            https: Box::pin(https),
            redirect: Box::pin(redirect),
            stun: Box::pin(stun),
        })
    }
}

/// The connection budget and timeouts both TCP listeners share, with the descriptor limit
/// raised first so the budget can be a share of it.
fn connection_limits(config: &Config) -> serve::ConnectionLimits {
    let limit = descriptors::raise_limit();
    let max_connections = config
        .http
        .max_connections
        .unwrap_or_else(|| descriptors::connection_budget(limit));
    log::info!(
        "up to {max_connections} connections at once ({} per address) under a limit of \
         {limit} file descriptors",
        config.http.connections_per_address
    );
    serve::ConnectionLimits {
        budget: ConnectionBudget::new(max_connections, config.http.connections_per_address),
        handshake_timeout: Duration::from_secs(config.http.handshake_timeout_seconds),
        header_read_timeout: Duration::from_secs(config.http.header_read_timeout_seconds),
        idle_timeout: Duration::from_secs(config.http.idle_timeout_seconds),
    }
}
