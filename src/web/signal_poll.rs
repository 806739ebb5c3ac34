//! Signaling over plain HTTPS requests, for a browser whose WebSocket cannot be opened: iOS
//! has refused WSS to a self-signed certificate even after the page's warning was accepted,
//! and some proxies drop upgrades. The same messages go to the same room owner as over `/ws`,
//! one connection each, under the same login:
//!
//! - `POST /signal` → `201` and `{"id": "..."}`: a connection is opened.
//! - `POST /signal/{id}` with one JSON message → `204` (a malformed one is answered with an
//!   `error` message in the next poll, as the socket would send it).
//! - `GET /signal/{id}` → `200` and a JSON array of what the device sent since, waiting up to
//!   `POLL_WAIT` for the first; `410` once the device closed the connection.
//! - `DELETE /signal/{id}` → `204`; the connection closes.
//!
//! A connection not polled for `IDLE_LIMIT` is closed, as a silent socket is. The id is
//! unguessable and is the connection's only credential. At most `MAX_CONNECTIONS` are open at
//! once, `MAX_PER_ADDRESS` from one address: a flood of opens is refused with `503`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use super::poll_connections::{Connection, IDLE_LIMIT};
use super::state::{AppState, check_origin, request_host};
use crate::metrics::Metrics;
use crate::rooms::{ConnectionEvent, OUTBOX_CAPACITY};
use crate::signaling::{ClientMessage, ServerMessage};

/// How long a poll waits for the device's first message before answering `[]`.
const POLL_WAIT: Duration = Duration::from_secs(20);
/// Connections open at once, and from one address.
const MAX_CONNECTIONS: usize = 64;
const MAX_PER_ADDRESS: usize = 4;
/// The most messages one poll answers with.
const MAX_PER_POLL: usize = 64;

/// Closes the idle connections every few seconds, for as long as the device runs.
pub async fn close_idle(state: AppState) {
    let mut tick = tokio::time::interval(IDLE_LIMIT / 3);
    loop {
        tick.tick().await;
        for connection in state.polls.take_idle() {
            log::info!(
                "connection {} from {}: closed, not polled for {} s",
                connection.conn,
                connection.address,
                IDLE_LIMIT.as_secs()
            );
            tell_closed(&state, connection.conn).await;
        }
    }
}

/// Tells the room owner that connection `conn` closed, as a socket's end does.
async fn tell_closed(state: &AppState, conn: u64) {
    let _ = state
        .rooms
        .connections
        .send(ConnectionEvent::Closed { conn })
        .await;
}

fn text(status: StatusCode, message: &str) -> Response {
    (status, format!("{message}\n")).into_response()
}

/// `POST /signal`: opens a connection.
pub async fn open(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Err(why) = check_origin(&headers, &uri) {
        return text(StatusCode::FORBIDDEN, &why);
    }
    let session = super::login::session_of(&state, &headers);
    let authenticated = state.auth.is_none() || session.is_some();
    if !authenticated && !state.open_rooms {
        return text(StatusCode::UNAUTHORIZED, "log in first");
    }
    let address = peer.ip().to_canonical();
    let Ok(id) = crate::media_link::fresh_secret() else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "no randomness");
    };
    let conn = state.next_conn.fetch_add(1, Ordering::Relaxed) + 1;
    let (outbox, inbox) = mpsc::channel::<ServerMessage>(OUTBOX_CAPACITY);
    let connection = Arc::new(Connection {
        conn,
        address,
        inbox: tokio::sync::Mutex::new(inbox),
        replies: outbox.downgrade(),
        last_poll: Mutex::new(Instant::now()),
    });
    {
        let Ok(mut open) = state.polls.lock() else {
            return text(StatusCode::SERVICE_UNAVAILABLE, "busy");
        };
        let from_address = open.values().filter(|c| c.address == address).count();
        if open.len() >= MAX_CONNECTIONS || from_address >= MAX_PER_ADDRESS {
            crate::refusals::note(
                crate::refusals::Kind::ConnectionCap,
                address,
                format_args!("refused a signaling connection over requests from {address}"),
            );
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many signaling connections over requests; close one first",
            );
        }
        open.insert(id.clone(), Arc::clone(&connection));
    }
    Metrics::add(&state.metrics.websocket_connections, 1);
    log::debug!("connection {conn}: opened over requests from {peer}");
    let opened = ConnectionEvent::Opened {
        conn,
        address,
        host: request_host(&headers, &uri),
        authenticated,
        session,
        outbox,
    };
    if state.rooms.connections.send(opened).await.is_err() {
        state.polls.remove(&id);
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the device is shutting down",
        );
    }
    (StatusCode::CREATED, Json(serde_json::json!({ "id": id }))).into_response()
}

/// `POST /signal/{id}`: one message from the page.
pub async fn send(State(state): State<AppState>, Path(id): Path<String>, body: Bytes) -> Response {
    let Some(connection) = state.polls.get(&id) else {
        return text(StatusCode::NOT_FOUND, "no such signaling connection");
    };
    let parsed = match std::str::from_utf8(&body) {
        Ok(text) => ClientMessage::parse(text, state.max_message_bytes).map_err(|e| e.to_message()),
        Err(_) => Err(ServerMessage::Error {
            code: crate::signaling::ErrorCode::BadMessage,
            message: "the message is not UTF-8 text".into(),
        }),
    };
    match parsed {
        Ok(message) => {
            let event = ConnectionEvent::Message {
                conn: connection.conn,
                message,
            };
            if state.rooms.connections.send(event).await.is_err() {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the device is shutting down",
                );
            }
        }
        Err(reply) => {
            log::info!(
                "connection {} from {}: refused a message: {reply:?}",
                connection.conn,
                connection.address
            );
            Metrics::add(&state.metrics.signaling_errors, 1);
            if let Some(outbox) = connection.replies.upgrade() {
                let _ = outbox.try_send(reply);
            }
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /signal/{id}`: what the device sent since the last poll.
pub async fn poll(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(connection) = state.polls.get(&id) else {
        return text(StatusCode::NOT_FOUND, "no such signaling connection");
    };
    let mark = || {
        if let Ok(mut at) = connection.last_poll.lock() {
            *at = Instant::now();
        }
    };
    mark();
    // One poll at a time: a second waits for the first (it is the same page).
    let mut inbox = connection.inbox.lock().await;
    let mut messages = Vec::new();
    match tokio::time::timeout(POLL_WAIT, inbox.recv()).await {
        Ok(Some(first)) => {
            messages.push(first);
            while messages.len() < MAX_PER_POLL
                && let Ok(next) = inbox.try_recv()
            {
                messages.push(next);
            }
        }
        Ok(None) => {
            drop(inbox);
            state.polls.remove(&id);
            log::debug!("connection {}: closed by the device", connection.conn);
            return text(
                StatusCode::GONE,
                "the device closed this signaling connection",
            );
        }
        Err(_) => {}
    }
    mark();
    // Each message is already JSON text: the array is written around them.
    let texts: Vec<String> = messages.iter().map(ServerMessage::to_json).collect();
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!("[{}]", texts.join(",")),
    )
        .into_response()
}

/// `DELETE /signal/{id}`: the page closes the connection.
pub async fn close(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(connection) = state.polls.remove(&id) else {
        return text(StatusCode::NOT_FOUND, "no such signaling connection");
    };
    log::debug!("connection {}: closed over requests", connection.conn);
    tell_closed(&state, connection.conn).await;
    StatusCode::NO_CONTENT.into_response()
}
