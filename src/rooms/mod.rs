//! Rooms: who is talking to whom.
//!
//! `device_room` is the pure state machine of the device's own room. `run` is its owner task:
//! the only holder of that state and of the map from connection to outgoing channel. WebSocket
//! sessions send it `ConnectionEvent`s, the media owner sends it `Input`s about the device's
//! peer; it applies them to the state machine and carries out the resulting actions.

mod device_room;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;

pub use device_room::{Action, CallId, ConnId, DeviceRoom, Input};

use crate::media::MediaCommand;
use crate::metrics::Metrics;
use crate::signaling::{ClientMessage, DEVICE_ROOM, ErrorCode, IceServer, ServerMessage};

/// How many messages may wait for a slow browser before its connection is dropped.
pub const OUTBOX_CAPACITY: usize = 64;

/// What a WebSocket session tells the room owner.
#[derive(Debug)]
pub enum ConnectionEvent {
    Opened {
        conn: ConnId,
        outbox: mpsc::Sender<ServerMessage>,
    },
    Message {
        conn: ConnId,
        message: ClientMessage,
    },
    Closed {
        conn: ConnId,
    },
}

/// The channels into the room owner.
#[derive(Clone, Debug)]
pub struct RoomsHandle {
    pub connections: mpsc::Sender<ConnectionEvent>,
}

/// Whether the device is in a call, readable without asking the owner (for `/metrics`).
#[derive(Debug, Default)]
pub struct RoomStatus {
    pub in_call: std::sync::atomic::AtomicBool,
}

/// The room owner. Ends when every connection sender is gone.
pub async fn run(
    mut connections: mpsc::Receiver<ConnectionEvent>,
    mut from_media: mpsc::UnboundedReceiver<Input>,
    media: mpsc::UnboundedSender<MediaCommand>,
    ice_servers: Vec<IceServer>,
    status: Arc<RoomStatus>,
    metrics: Arc<Metrics>,
) {
    let mut owner = Owner {
        room: DeviceRoom::new(ice_servers),
        outboxes: HashMap::new(),
        media,
        metrics,
    };
    loop {
        let input = tokio::select! {
            event = connections.recv() => match event {
                None => break,
                Some(event) => owner.input_from_connection(event),
            },
            Some(input) = from_media.recv() => Some(input),
        };
        if let Some(input) = input {
            owner.apply(input);
        }
        status.in_call.store(
            owner.room.current_call().is_some(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

struct Owner {
    room: DeviceRoom,
    outboxes: HashMap<ConnId, mpsc::Sender<ServerMessage>>,
    media: mpsc::UnboundedSender<MediaCommand>,
    metrics: Arc<Metrics>,
}

impl Owner {
    fn input_from_connection(&mut self, event: ConnectionEvent) -> Option<Input> {
        match event {
            ConnectionEvent::Opened { conn, outbox } => {
                self.outboxes.insert(conn, outbox);
                None
            }
            ConnectionEvent::Closed { conn } => {
                self.outboxes.remove(&conn);
                Some(Input::Leave {
                    conn,
                    reason: "connection closed".into(),
                })
            }
            ConnectionEvent::Message { conn, message } => match message {
                ClientMessage::Join { room, codecs } => match room.as_deref() {
                    None | Some(DEVICE_ROOM) => Some(Input::Join { conn, codecs }),
                    Some(other) => {
                        self.send(
                            conn,
                            ServerMessage::Error {
                                code: ErrorCode::NoSuchRoom,
                                message: format!(
                                    "room `{}` does not exist; join `{DEVICE_ROOM}`",
                                    other.chars().take(64).collect::<String>()
                                ),
                            },
                        );
                        None
                    }
                },
                ClientMessage::Offer { .. } => Some(Input::Offer { conn }),
                ClientMessage::Answer { sdp } => Some(Input::Answer { conn, sdp }),
                ClientMessage::Candidate(candidate) => {
                    Some(Input::CallerCandidate { conn, candidate })
                }
                ClientMessage::Bye => Some(Input::Leave {
                    conn,
                    reason: "hung up".into(),
                }),
            },
        }
    }

    fn apply(&mut self, input: Input) {
        let failed = matches!(input, Input::PeerFailed { .. });
        for action in self.room.handle(input) {
            match action {
                Action::Send { conn, message } => self.send(conn, message),
                Action::StartCall { call, codecs } => {
                    Metrics::add(&self.metrics.calls_started, 1);
                    log::info!(
                        "call {call}: started (caller connection {conn})",
                        conn = self.room.current_call().map_or(0, |c| c.1)
                    );
                    let _ = self.media.send(MediaCommand::Start { call, codecs });
                }
                Action::EndCall { call } => {
                    Metrics::add(&self.metrics.calls_ended, 1);
                    if failed {
                        Metrics::add(&self.metrics.calls_failed, 1);
                    }
                    let _ = self.media.send(MediaCommand::End { call });
                }
                Action::AnswerToPeer { call, sdp } => {
                    let _ = self.media.send(MediaCommand::Answer { call, sdp });
                }
                Action::CandidateToPeer { call, candidate } => {
                    let _ = self.media.send(MediaCommand::Candidate { call, candidate });
                }
            }
        }
    }

    /// Queues a message for a connection. A browser too slow to drain its queue is dropped
    /// (its session then ends and reports `Closed`), so it cannot hold the owner up.
    fn send(&mut self, conn: ConnId, message: ServerMessage) {
        match &message {
            ServerMessage::Full { .. } => Metrics::add(&self.metrics.busy_replies, 1),
            ServerMessage::Error { .. } => Metrics::add(&self.metrics.signaling_errors, 1),
            _ => {}
        }
        let Some(outbox) = self.outboxes.get(&conn) else {
            return;
        };
        if outbox.try_send(message).is_err() {
            log::warn!("connection {conn}: not reading its messages; dropping it");
            self.outboxes.remove(&conn);
        }
    }
}
