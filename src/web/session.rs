//! One WebSocket connection: a reader that parses frames into `ClientMessage`s for the room
//! owner, and a writer that sends what the room owner queues. The first of the two to end ends
//! the other, and the room owner is always told the connection closed.
//!
//! The room owner holds the only strong sender of the outgoing queue; this session keeps a weak
//! one for its own `error` replies. So when the owner drops a connection, the writer sees the
//! queue close and the session ends.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::state::AppState;
use crate::metrics::Metrics;
use crate::rooms::{ConnectionEvent, OUTBOX_CAPACITY};
use crate::signaling::{ClientMessage, ErrorCode, ServerMessage};

/// Who opened the connection.
#[derive(Debug)]
pub struct Who {
    pub peer: SocketAddr,
    /// The host the page was loaded from, for ICE URLs.
    pub host: Option<String>,
    /// Logged in (or `auth = "none"`).
    pub authenticated: bool,
    /// The login session it was opened under; it ends when that session does.
    pub session: Option<crate::auth::SessionId>,
}

pub async fn run(socket: WebSocket, state: AppState, who: Who, hard_limit: usize) {
    let Who {
        peer,
        host,
        authenticated,
        session,
    } = who;
    let conn = state.next_conn.fetch_add(1, Ordering::Relaxed) + 1;
    Metrics::add(&state.metrics.websocket_connections, 1);
    log::debug!("connection {conn}: opened from {peer}");
    let (outbox, mut queued) = mpsc::channel::<ServerMessage>(OUTBOX_CAPACITY);
    let replies = outbox.downgrade();
    let rooms = state.rooms.connections.clone();
    if rooms
        .send(ConnectionEvent::Opened {
            conn,
            address: peer.ip().to_canonical(),
            host,
            authenticated,
            session,
            outbox,
        })
        .await
        .is_err()
    {
        return;
    }
    let (mut sink, mut stream) = socket.split();
    // When the browser last sent anything (a pong counts), in milliseconds since `opened`.
    let opened = Instant::now();
    let last_heard = AtomicU64::new(0);
    let silence = || {
        let heard = Duration::from_millis(last_heard.load(Ordering::Relaxed));
        opened.elapsed().saturating_sub(heard)
    };
    let idle_limit = state.websocket_idle_timeout;

    let writer = async {
        let mut keepalive = tokio::time::interval(idle_limit / 3);
        keepalive.tick().await;
        loop {
            let message = tokio::select! {
                message = queued.recv() => match message {
                    Some(message) => Message::Text(message.to_json().into()),
                    None => break,
                },
                _ = keepalive.tick() => {
                    if silence() > idle_limit {
                        log::info!(
                            "connection {conn} from {peer}: closed, silent for {} s",
                            idle_limit.as_secs()
                        );
                        let _ = sink
                            .send(Message::Close(Some(CloseFrame {
                                code: close_code::AWAY,
                                reason: "no answer to keepalive pings".into(),
                            })))
                            .await;
                        break;
                    }
                    Message::Ping(Vec::new().into())
                }
            };
            if sink.send(message).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    };

    // Returns the close frame to send when the browser broke a limit.
    let reader = async {
        loop {
            let frame = match stream.next().await {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => {
                    let reason = e.to_string();
                    log::info!("connection {conn} from {peer}: closed: {reason}");
                    let too_big = reason.contains("too long") || reason.contains("too big");
                    break Some(CloseFrame {
                        code: if too_big {
                            close_code::SIZE
                        } else {
                            close_code::PROTOCOL
                        },
                        reason: reason.chars().take(100).collect::<String>().into(),
                    });
                }
                None => break None,
            };
            let now = u64::try_from(opened.elapsed().as_millis()).unwrap_or(u64::MAX);
            last_heard.store(now, Ordering::Relaxed);
            if let Message::Text(text) = &frame
                && text.len() > hard_limit
            {
                log::info!(
                    "connection {conn} from {peer}: closed: a {} byte message",
                    text.len()
                );
                break Some(CloseFrame {
                    code: close_code::SIZE,
                    reason: format!(
                        "message too long: {} bytes (limit {hard_limit})",
                        text.len()
                    )
                    .into(),
                });
            }
            let parsed = match frame {
                Message::Text(text) => {
                    ClientMessage::parse(&text, state.max_message_bytes).map_err(|e| e.to_message())
                }
                Message::Binary(_) => Err(ServerMessage::Error {
                    code: ErrorCode::BadMessage,
                    message: "binary frames are not part of the protocol; send JSON text".into(),
                }),
                Message::Close(_) => break None,
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            match parsed {
                Ok(message) => {
                    let event = ConnectionEvent::Message { conn, message };
                    if rooms.send(event).await.is_err() {
                        break None;
                    }
                }
                Err(reply) => {
                    log::info!("connection {conn} from {peer}: refused a message: {reply:?}");
                    Metrics::add(&state.metrics.signaling_errors, 1);
                    let Some(outbox) = replies.upgrade() else {
                        break None;
                    };
                    if outbox.try_send(reply).is_err() {
                        break None;
                    }
                }
            }
        }
    };

    let close = tokio::select! {
        () = writer => None,
        close = reader => close,
    };
    if let Some(frame) = close {
        let _ = sink.send(Message::Close(Some(frame))).await;
    }
    log::debug!("connection {conn}: closed");
    let _ = rooms.send(ConnectionEvent::Closed { conn }).await;
}
