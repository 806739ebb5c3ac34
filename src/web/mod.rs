//! The web side: the call page (files from `web/`, embedded in the binary), the WebSocket
//! signaling endpoint `/ws`, WHEP viewers at `/whep`, `/snapshot.jpg`, `/events` (motion, server-sent
//! events), `/recordings` and `/metrics`.
//!
//! `router` is a plain function of the shared state, so tests can drive it without sockets;
//! `serve` owns the listeners and TLS, under the connection budget of `limits`; `session` is
//! one WebSocket connection; `whep` and `snapshot` ask the media owner directly; `login` and
//! `access` let people in and take access back.

pub mod access;
mod events;
mod headers;
pub mod limits;
mod login;
mod pictures;
mod poll_connections;
mod recordings;
pub mod serve;
mod session;
pub mod signal_poll;
mod snapshot;
mod state;
pub mod whep;

pub use state::AppState;

use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};

use state::{check_origin, request_host};

/// Messages larger than this close the connection with 1009 and a reason; anything up to it is
/// read and, if over the configured limit, answered with `error`.
const HARD_FRAME_LIMIT: usize = 4 << 20;
/// What the WebSocket layer reads before it gives up on a message itself. Twice the hard limit:
/// a message between the two is read whole and then refused by `session` (1009 and a reason),
/// so nothing is left unread when the socket closes. Closed with data unread, the kernel sends
/// a reset and the browser sees 1006 instead (the old flake of the 1009 test). Larger ones
/// are cut off by the WebSocket layer as before.
const READ_LIMIT: usize = 2 * HARD_FRAME_LIMIT;

/// Read buffer of each WebSocket; it grows for the rare large message.
const SOCKET_BUFFER: usize = 4096;

/// One file of `web/`, embedded: (URL path, content type, body).
macro_rules! web_file {
    ($name:literal, $content_type:expr) => {
        (
            concat!("/", $name),
            $content_type,
            include_str!(concat!("../../web/", $name)),
        )
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// The page's files. Served with `no-cache` so an updated device never runs an old page against
/// a new protocol.
const HTML: &str = "text/html; charset=utf-8";

const ASSETS: [(&str, &str, &str); 15] = [
    ("/", HTML, include_str!("../../web/index.html")),
    ("/check", HTML, include_str!("../../web/check.html")),
    (
        "/recordings.html",
        HTML,
        include_str!("../../web/recordings.html"),
    ),
    web_file!("recordings.js", JS),
    web_file!("check.js", JS),
    web_file!("app.js", JS),
    web_file!("signaling.js", JS),
    web_file!("peer.js", JS),
    web_file!("debug.js", JS),
    web_file!("ui.js", JS),
    web_file!("device-call.js", JS),
    web_file!("device-watch.js", JS),
    web_file!("room-call.js", JS),
    web_file!("style.css", "text/css; charset=utf-8"),
    web_file!("favicon.svg", "image/svg+xml"),
];

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ws", get(websocket))
        .route("/signal", axum::routing::post(signal_poll::open))
        .route(
            "/signal/{id}",
            get(signal_poll::poll)
                .post(signal_poll::send)
                .delete(signal_poll::close),
        )
        .route("/metrics", get(metrics))
        .route("/api/ice-servers", get(ice_servers))
        .route("/api/remote", get(remote))
        .route("/login", get(login::show).post(login::submit))
        .route("/logout", axum::routing::post(login::log_out))
        .route(
            "/whep",
            axum::routing::post(whep::offer).options(whep::options),
        )
        .route(
            "/whep/{session}",
            patch(whep::trickle)
                .delete(whep::end)
                .options(whep::options),
        )
        .route("/snapshot.jpg", get(snapshot::jpeg))
        .route("/events", get(events::stream))
        .route("/recordings", get(recordings::list))
        .route("/recordings/{day}/{file}", get(recordings::segment))
        .fallback(asset)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            login::guard,
        ))
        .layer(axum::middleware::from_fn(whep::cors))
        .layer(axum::middleware::map_response(headers::add))
        .with_state(state)
}

async fn asset(uri: Uri) -> Response {
    let path = match uri.path() {
        "/index.html" => "/",
        other => other,
    };
    match ASSETS.iter().find(|(p, _, _)| *p == path) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let in_call = state.status.in_call.load(Ordering::Relaxed);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(in_call),
    )
        .into_response()
}

/// The ICE configuration a browser would get when joining now (for the `/check` page and the
/// page's Watch, which makes its WHEP offer with it).
async fn ice_servers(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let ice = state.ice.current().for_browser(
        request_host(&headers, &uri).as_deref(),
        std::time::SystemTime::now(),
        "check",
    );
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(ice)).into_response()
}

/// How the device is reached from outside the home (port mapping's public URL, or why not),
/// for the page's debug view and `/check`.
async fn remote(State(state): State<AppState>) -> Response {
    let now = state.reachability.borrow().clone();
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(now)).into_response()
}

async fn websocket(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    slot: Option<axum::Extension<serve::ConnectionSlot>>,
    headers: HeaderMap,
    uri: Uri,
    upgrade: WebSocketUpgrade,
) -> Response {
    let host = request_host(&headers, &uri);
    if let Err(why) = check_origin(&headers, &uri) {
        crate::refusals::note(
            crate::refusals::Kind::ForeignOrigin,
            peer.ip().to_canonical(),
            format_args!("refused a WebSocket from {peer}: {why}"),
        );
        return (StatusCode::FORBIDDEN, format!("{why}\n")).into_response();
    }
    let session = login::session_of(&state, &headers);
    let authenticated = state.auth.is_none() || session.is_some();
    if !authenticated && !state.open_rooms {
        return (StatusCode::UNAUTHORIZED, "log in first\n").into_response();
    }
    // The socket keeps its connection's place in the budget for as long as it lives, and is
    // never taken for an idle connection.
    if let Some(axum::Extension(slot)) = &slot {
        slot.0.activity.mark_upgraded();
    }
    upgrade
        .max_message_size(READ_LIMIT)
        .max_frame_size(READ_LIMIT)
        // Signaling messages are small: 4 KiB buffers instead of 128 KiB keep a thousand idle
        // sockets in a few megabytes, and writing each message at once keeps latency low.
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            let who = session::Who {
                peer,
                host,
                authenticated,
                session,
            };
            session::run(socket, state, who, HARD_FRAME_LIMIT).await;
            drop(slot);
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rooms::RoomsHandle;
    use crate::turn::{IcePlan, SharedIcePlan};
    use axum::body::Body;
    use axum::http::Request;
    use std::sync::Arc;
    use tower::ServiceExt;

    fn state() -> AppState {
        let (connections, _rx) = tokio::sync::mpsc::channel(1);
        let (media, _media_rx) = tokio::sync::mpsc::unbounded_channel();
        AppState {
            media,
            tokens: None,
            rooms: RoomsHandle { connections },
            metrics: Arc::default(),
            status: Arc::default(),
            max_message_bytes: 1024,
            next_conn: Arc::default(),
            ice: Arc::new(SharedIcePlan::new(Arc::new(IcePlan {
                own_stun_port: Some(3478),
                ..IcePlan::default()
            }))),
            websocket_idle_timeout: std::time::Duration::from_secs(75),
            auth: None,
            open_rooms: false,
            login_checks: AppState::login_checks(),
            snapshots: Arc::default(),
            reachability: tokio::sync::watch::channel(Default::default()).1,
            polls: Arc::default(),
            motion: None,
            recordings: None,
        }
    }

    async fn get(path: &str) -> Response {
        router(state())
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn page_and_scripts_are_served_with_types() {
        let page = get("/").await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(
            page.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let script = get("/app.js").await;
        assert_eq!(
            script.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
    }

    #[tokio::test]
    async fn ice_servers_name_the_host_the_browser_used() {
        let response = router(state())
            .oneshot(
                Request::get("/api/ice-servers")
                    .header(header::HOST, "cam.local:8443")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&body),
            r#"{"iceServers":[{"urls":["stun:cam.local:3478"]}],"iceTransportPolicy":"all"}"#
        );
    }

    #[tokio::test]
    async fn every_response_carries_the_security_headers() {
        for path in ["/", "/app.js", "/nope"] {
            let response = get(path).await;
            let headers = response.headers();
            assert_eq!(
                headers[header::CONTENT_SECURITY_POLICY],
                headers::CONTENT_SECURITY_POLICY
            );
            assert!(headers::CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
            assert!(!headers::CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
            assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
            assert!(
                headers["permissions-policy"]
                    .to_str()
                    .unwrap()
                    .contains("camera=(self)")
            );
            assert!(
                headers[header::STRICT_TRANSPORT_SECURITY]
                    .to_str()
                    .unwrap()
                    .starts_with("max-age=")
            );
        }
    }

    #[tokio::test]
    async fn unknown_path_is_404() {
        assert_eq!(get("/nope").await.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn metrics_are_prometheus_text() {
        let response = get("/metrics").await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&body).contains("peercam_calls_started_total 0"));
    }
}
