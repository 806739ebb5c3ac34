//! What every request handler has: the shared state (`AppState`: handles to the owners, the
//! counters, the owner's sessions and the viewer tokens), and what a request says about where
//! it was sent (its host, and whether a browser's Origin is this device).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::http::{HeaderMap, Uri, header};

use super::pictures::Snapshots;
use crate::media_link::MediaCommand;
use crate::metrics::Metrics;
use crate::rooms::{RoomStatus, RoomsHandle};
use crate::tokens::ViewerTokens;
use crate::turn::SharedIcePlan;

/// Password checks (argon2, ~50 ms of a core each) allowed at once; more wait their turn (see
/// `login`).
pub const CONCURRENT_LOGIN_CHECKS: usize = 2;

/// What every request handler may use. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub rooms: RoomsHandle,
    pub metrics: Arc<Metrics>,
    pub status: Arc<RoomStatus>,
    pub max_message_bytes: usize,
    pub next_conn: Arc<AtomicU64>,
    pub ice: Arc<SharedIcePlan>,
    /// A WebSocket silent this long (no answer to pings) is closed.
    pub websocket_idle_timeout: std::time::Duration,
    /// `None` with `auth = "none"`.
    pub auth: Option<Arc<crate::auth::Auth>>,
    /// Viewer tokens (WHEP, snapshots); `None` with `auth = "none"`.
    pub tokens: Option<Arc<ViewerTokens>>,
    /// Whether browsers without a session may use the named rooms.
    pub open_rooms: bool,
    /// The media owner, for WHEP viewers and snapshots.
    pub media: tokio::sync::mpsc::UnboundedSender<MediaCommand>,
    /// Password checks (argon2) allowed at once.
    pub login_checks: Arc<tokio::sync::Semaphore>,
    /// Concurrent snapshot requests share one picture.
    pub snapshots: Arc<Snapshots>,
    /// How the device is reached from outside (port mapping), for `/api/remote`.
    pub reachability: tokio::sync::watch::Receiver<crate::reachability::Reachability>,
    /// Signaling connections over plain requests (`signal_poll`).
    pub polls: Arc<super::poll_connections::PollConnections>,
    /// The recordings for `/recordings`; `None` with `[recording]` off.
    pub recordings: Option<crate::recording::Recordings>,
    /// Motion events for `/events`; `None` with `[motion]` off.
    pub motion: Option<tokio::sync::broadcast::Sender<crate::motion::MotionEvent>>,
}

impl AppState {
    /// The semaphore that bounds concurrent password checks (`login_checks`).
    pub fn login_checks() -> Arc<tokio::sync::Semaphore> {
        Arc::new(tokio::sync::Semaphore::new(CONCURRENT_LOGIN_CHECKS))
    }
}

/// The host the browser used to reach us, without the port: the Host header (HTTP/1.1) or the
/// request's authority (HTTP/2).
pub fn request_host(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    request_authority(headers, uri)
        .and_then(crate::host::host_without_port)
        .map(str::to_owned)
}

/// Host and port the request went to: the Host header, or the authority under HTTP/2.
pub fn request_authority<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> Option<&'a str> {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
}

/// A browser's WebSocket must come from a page this device served: its Origin must name the
/// same host and port the request went to. Clients that send no Origin (not browsers) pass.
pub fn check_origin(headers: &HeaderMap, uri: &Uri) -> Result<(), String> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin
        .to_str()
        .map_err(|_| "unreadable Origin header".to_owned())?;
    let target = request_authority(headers, uri).ok_or_else(|| "no Host header".to_owned())?;
    let origin_authority = origin
        .strip_prefix("https://")
        .ok_or_else(|| format!("Origin `{origin}` is not an https page"))?;
    let normalise = |authority: &str| authority.trim_end_matches(":443").to_ascii_lowercase();
    if normalise(origin_authority) == normalise(target) {
        Ok(())
    } else {
        Err(format!("Origin `{origin}` is not this device ({target})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_must_match_the_host() {
        let check = |origin: &str, host: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ORIGIN, origin.parse().unwrap());
            headers.insert(header::HOST, host.parse().unwrap());
            check_origin(&headers, &Uri::from_static("/ws"))
        };
        assert!(check("https://cam.local:8443", "cam.local:8443").is_ok());
        assert!(check("https://CAM.local", "cam.local:443").is_ok());
        assert!(check("https://evil.example", "cam.local:8443").is_err());
        assert!(check("https://cam.local:9999", "cam.local:8443").is_err());
        assert!(check("http://cam.local:8443", "cam.local:8443").is_err());
        assert!(check("null", "cam.local:8443").is_err());
        assert!(check_origin(&HeaderMap::new(), &Uri::from_static("/ws")).is_ok());
    }
}
