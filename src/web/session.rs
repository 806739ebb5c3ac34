//! One WebSocket connection: a reader that parses frames into `ClientMessage`s for the room
//! owner, and a writer that sends what the room owner queues. The first of the two to end ends
//! the other, and the room owner is always told the connection closed.
//!
//! The room owner holds the only strong sender of the outgoing queue; this session keeps a weak
//! one for its own `error` replies. So when the owner drops a connection, the writer sees the
//! queue close and the session ends.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::AppState;
use crate::metrics::Metrics;
use crate::rooms::{ConnectionEvent, OUTBOX_CAPACITY};
use crate::signaling::{ClientMessage, ErrorCode, ServerMessage};

pub async fn run(socket: WebSocket, state: AppState, peer: SocketAddr, host: Option<String>) {
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
            outbox,
        })
        .await
        .is_err()
    {
        return;
    }
    let (mut sink, mut stream) = socket.split();

    let writer = async {
        while let Some(message) = queued.recv().await {
            if sink
                .send(Message::Text(message.to_json().into()))
                .await
                .is_err()
            {
                break;
            }
        }
        let _ = sink.close().await;
    };

    let reader = async {
        while let Some(Ok(frame)) = stream.next().await {
            let parsed = match frame {
                Message::Text(text) => {
                    ClientMessage::parse(&text, state.max_message_bytes).map_err(|e| e.to_message())
                }
                Message::Binary(_) => Err(ServerMessage::Error {
                    code: ErrorCode::BadMessage,
                    message: "binary frames are not part of the protocol; send JSON text".into(),
                }),
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            match parsed {
                Ok(message) => {
                    let event = ConnectionEvent::Message { conn, message };
                    if rooms.send(event).await.is_err() {
                        break;
                    }
                }
                Err(reply) => {
                    log::info!("connection {conn} from {peer}: refused a message: {reply:?}");
                    Metrics::add(&state.metrics.signaling_errors, 1);
                    let Some(outbox) = replies.upgrade() else {
                        break;
                    };
                    if outbox.try_send(reply).is_err() {
                        break;
                    }
                }
            }
        }
    };

    tokio::select! {
        () = writer => {},
        () = reader => {},
    }
    log::debug!("connection {conn}: closed");
    let _ = rooms.send(ConnectionEvent::Closed { conn }).await;
}
