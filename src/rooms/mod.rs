//! Rooms: who is talking to whom.
//!
//! `device_room` is the pure state machine of the device's own room; `named_rooms` that of the
//! browser-to-browser rooms. `run` is their owner task: the only holder of both and of the map
//! from connection to outgoing channel. WebSocket sessions send it `ConnectionEvent`s, the media
//! owner sends it `PeerReport`s about the device's peer (`media_link`); it routes each message to the room its
//! sender is in (a connection is in at most one room) and carries out what the room decides.

mod device_room;
mod named_rooms;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::mpsc;

pub use device_room::{Action, CallId, ConnId, DeviceRoom, Input};
pub use named_rooms::{MAX_ROOM_NAME, NamedInput, NamedRooms, RoomLimits, validate_room_name};

use crate::media_link::{Grant, MediaCommand, MediaHealth, PeerReport, Withdrawn};
use crate::metrics::Metrics;
use crate::signaling::BrowserIce;
use crate::signaling::{ClientMessage, DEVICE_ROOM, ServerMessage};
use crate::system::Notifier;
use crate::turn::SharedIcePlan;

/// How many messages may wait for a slow browser before its connection is dropped.
pub const OUTBOX_CAPACITY: usize = 64;

/// How long a call whose caller's connection closed without `bye` waits for it to resume.
/// The peer lets a vanished caller go sooner (no receiver report for 6 s); this bounds a caller
/// whose media still flows but whose page never comes back.
pub const HOLD_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// What a WebSocket session tells the room owner.
#[derive(Debug)]
pub enum ConnectionEvent {
    Opened {
        conn: ConnId,
        address: IpAddr,
        /// The host the page was loaded from (Host header without the port), for ICE URLs.
        host: Option<String>,
        /// Whether the browser logged in; without it only open named rooms are allowed.
        authenticated: bool,
        /// The login session it came with; the connection ends when that session does.
        session: Option<crate::auth::SessionId>,
        outbox: mpsc::Sender<ServerMessage>,
    },
    /// Access was taken back: end the connections (and a call) opened under it, telling why.
    AccessWithdrawn {
        what: Withdrawn,
        reason: String,
    },
    Message {
        conn: ConnId,
        message: ClientMessage,
    },
    Closed {
        conn: ConnId,
    },
    /// The daemon is stopping: tell everyone, end the call, and say when media has stopped.
    Shutdown {
        done: tokio::sync::oneshot::Sender<()>,
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

/// What the room owner shares with the rest of the daemon.
pub struct Shared {
    pub ice: Arc<SharedIcePlan>,
    pub status: Arc<RoomStatus>,
    pub metrics: Arc<Metrics>,
    pub notifier: Arc<Notifier>,
}

/// The room owner. Ends when every connection sender is gone.
pub async fn run(
    mut connections: mpsc::Receiver<ConnectionEvent>,
    mut from_media: mpsc::UnboundedReceiver<PeerReport>,
    mut media_health: mpsc::UnboundedReceiver<MediaHealth>,
    media: mpsc::UnboundedSender<MediaCommand>,
    limits: RoomLimits,
    shared: Shared,
) {
    let Shared {
        ice,
        status,
        metrics,
        notifier,
    } = shared;
    let mut owner = Owner {
        room: DeviceRoom::default(),
        named: NamedRooms::new(limits),
        connections: HashMap::new(),
        ice,
        media,
        metrics,
        last_failure: None,
        sources: MediaHealth::Available,
        hold: None,
    };
    let mut last_status = owner.status_text();
    notifier.status(&last_status);
    loop {
        tokio::select! {
            event = connections.recv() => match event {
                None => break,
                Some(event) => owner.on_connection_event(event),
            },
            Some(report) = from_media.recv() => owner.apply(Input::from(report)),
            Some(health) = media_health.recv() => owner.sources = health,
            () = hold_expiry(owner.hold) => {
                if let Some((call, _)) = owner.hold.take() {
                    owner.apply(Input::HoldExpired { call });
                }
            }
        }
        status.in_call.store(
            owner.room.current_call().is_some(),
            std::sync::atomic::Ordering::Relaxed,
        );
        let text = owner.status_text();
        if text != last_status {
            notifier.status(&text);
            last_status = text;
        }
    }
}

impl From<PeerReport> for Input {
    fn from(report: PeerReport) -> Self {
        match report {
            PeerReport::Offer { call, sdp } => Self::PeerOffer { call, sdp },
            PeerReport::Candidate { call, candidate } => Self::PeerCandidate { call, candidate },
            PeerReport::Failed { call, reason } => Self::PeerFailed { call, reason },
        }
    }
}

/// Waits until a held call's time is up; forever when no call is held.
async fn hold_expiry(hold: Option<(CallId, tokio::time::Instant)>) {
    match hold {
        Some((_, deadline)) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What the owner knows of one open connection.
struct Connection {
    outbox: mpsc::Sender<ServerMessage>,
    address: IpAddr,
    host: Option<String>,
    authenticated: bool,
    session: Option<crate::auth::SessionId>,
}

struct Owner {
    room: DeviceRoom,
    named: NamedRooms,
    connections: HashMap<ConnId, Connection>,
    ice: Arc<SharedIcePlan>,
    media: mpsc::UnboundedSender<MediaCommand>,
    metrics: Arc<Metrics>,
    /// Why the last call failed, until the next call starts (for STATUS).
    last_failure: Option<String>,
    /// Whether the camera and microphone work (for STATUS).
    sources: MediaHealth,
    /// The held call and when its hold runs out.
    hold: Option<(CallId, tokio::time::Instant)>,
}

impl Owner {
    fn on_connection_event(&mut self, event: ConnectionEvent) {
        match event {
            ConnectionEvent::Opened {
                conn,
                address,
                host,
                authenticated,
                session,
                outbox,
            } => {
                self.connections.insert(
                    conn,
                    Connection {
                        outbox,
                        address,
                        host,
                        authenticated,
                        session,
                    },
                );
            }
            ConnectionEvent::AccessWithdrawn { what, reason } => {
                let ended: Vec<ConnId> = self
                    .connections
                    .iter()
                    .filter(|(_, c)| c.session.is_some_and(|s| what.covers(&Grant::Session(s))))
                    .map(|(conn, _)| *conn)
                    .collect();
                for conn in ended {
                    self.end_connection(conn, &reason);
                }
            }
            ConnectionEvent::Closed { conn } => {
                self.connections.remove(&conn);
                if self.named.contains(conn) {
                    let reason = "the other person's connection closed".to_owned();
                    self.apply_named(NamedInput::Leave { conn, reason });
                } else {
                    self.apply(Input::Disconnect { conn });
                }
            }
            ConnectionEvent::Message { conn, message } => self.route(conn, message),
            ConnectionEvent::Shutdown { done } => self.shut_down(done),
        }
    }

    /// Ends one connection: it leaves its room (a call with the device ends), is told why, and
    /// is closed (dropping its outbox ends its session).
    fn end_connection(&mut self, conn: ConnId, reason: &str) {
        let reason = reason.to_owned();
        if self.named.contains(conn) {
            self.apply_named(NamedInput::Leave {
                conn,
                reason: reason.clone(),
            });
        } else {
            self.apply(Input::Leave {
                conn,
                reason: reason.clone(),
            });
        }
        self.send(conn, ServerMessage::Bye { reason });
        self.connections.remove(&conn);
    }

    /// Says goodbye to every connection, ends the call, and hands `done` to the media owner,
    /// which answers once the pipeline is down.
    fn shut_down(&mut self, done: tokio::sync::oneshot::Sender<()>) {
        let conns: Vec<ConnId> = self.connections.keys().copied().collect();
        for conn in conns {
            self.send(
                conn,
                ServerMessage::Bye {
                    reason: "the device is shutting down".into(),
                },
            );
        }
        if let Some(call) = self.room.current_call() {
            let _ = self.media.send(MediaCommand::End { call });
        }
        let _ = self.media.send(MediaCommand::Shutdown { done });
    }

    /// One line for systemd's STATUS.
    fn status_text(&self) -> String {
        match self.room.current_call() {
            Some(call) => match self.room.caller() {
                Some(caller) => format!("In call {call} with {}", self.address_of(caller)),
                None => format!("In call {call}, waiting for the caller to reconnect"),
            },
            None => match (&self.sources, &self.last_failure) {
                (MediaHealth::Unavailable { reason, retry_in }, _) => format!(
                    "Camera or microphone unavailable ({reason}); trying again in {} s",
                    retry_in.as_secs()
                ),
                (MediaHealth::Available, Some(why)) => {
                    format!("Idle; the last call failed: {why}")
                }
                (MediaHealth::Available, None) => "Idle, waiting for a call".to_owned(),
            },
        }
    }

    /// Sends a message to the room its sender is in: a named room, else the device's room.
    fn route(&mut self, conn: ConnId, message: ClientMessage) {
        let in_named_room = self.named.contains(conn);
        let relay = |message| NamedInput::Relay { conn, message };
        match message {
            ClientMessage::Join { room, codecs } => match room {
                None => self.join_device(conn, in_named_room, codecs),
                Some(name) if name == DEVICE_ROOM => self.join_device(conn, in_named_room, codecs),
                Some(name) => {
                    if self.is_device_caller(conn) {
                        self.refuse(conn, "in a call with the device; hang up first");
                    } else {
                        let address = self.address_of(conn);
                        let ice = self.ice_for(conn);
                        self.apply_named(NamedInput::Join {
                            conn,
                            address,
                            room: name,
                            ice,
                        });
                    }
                }
            },
            ClientMessage::Offer { sdp } if in_named_room => {
                self.apply_named(relay(ServerMessage::Offer { sdp }));
            }
            ClientMessage::Answer { sdp } if in_named_room => {
                self.apply_named(relay(ServerMessage::Answer { sdp }));
            }
            ClientMessage::Candidate(candidate) if in_named_room => {
                self.apply_named(relay(ServerMessage::Candidate(candidate)));
            }
            ClientMessage::Bye if in_named_room => self.apply_named(NamedInput::Leave {
                conn,
                reason: "the other person left".into(),
            }),
            ClientMessage::Offer { .. } => self.apply(Input::Offer { conn }),
            ClientMessage::Answer { sdp } => self.apply(Input::Answer { conn, sdp }),
            ClientMessage::Candidate(candidate) => {
                self.apply(Input::CallerCandidate { conn, candidate });
            }
            ClientMessage::Resume { token } => {
                if in_named_room || !self.is_authenticated(conn) {
                    self.refuse(conn, "no call to resume");
                } else {
                    match crate::media_link::fresh_secret() {
                        Ok(fresh) => {
                            let ice = self.ice_for(conn);
                            self.apply(Input::Resume {
                                conn,
                                token,
                                fresh,
                                ice,
                            });
                        }
                        Err(e) => self.refuse(conn, &format!("cannot resume: {e}")),
                    }
                }
            }
            ClientMessage::Bye => self.apply(Input::Leave {
                conn,
                reason: "hung up".into(),
            }),
        }
    }

    fn join_device(&mut self, conn: ConnId, in_named_room: bool, codecs: Vec<String>) {
        if !self.is_authenticated(conn) {
            self.refuse(conn, "log in to call the device");
        } else if in_named_room {
            self.refuse(conn, "in a room already; leave it first");
        } else {
            match crate::media_link::fresh_secret() {
                Ok(resume) => {
                    let ice = self.ice_for(conn);
                    self.apply(Input::Join {
                        conn,
                        codecs,
                        ice,
                        resume,
                    });
                }
                Err(e) => {
                    log::error!("connection {conn}: no randomness for a resume token: {e}");
                    self.refuse(conn, "the device cannot start a call now");
                }
            }
        }
    }

    fn is_authenticated(&self, conn: ConnId) -> bool {
        self.connections.get(&conn).is_some_and(|c| c.authenticated)
    }

    fn is_device_caller(&self, conn: ConnId) -> bool {
        self.room.caller() == Some(conn)
    }

    fn address_of(&self, conn: ConnId) -> IpAddr {
        self.connections
            .get(&conn)
            .map_or(IpAddr::from([0u8, 0, 0, 0]), |c| c.address)
    }

    /// ICE servers for this connection's browser, with TURN credentials minted now.
    /// Without a session (open rooms), only the device's own STUN: no relay credentials.
    fn ice_for(&self, conn: ConnId) -> BrowserIce {
        let connection = self.connections.get(&conn);
        let host = connection.and_then(|c| c.host.as_deref());
        let mut ice = self.ice.current().for_browser(
            host,
            std::time::SystemTime::now(),
            &format!("conn{conn}"),
        );
        if !connection.is_some_and(|c| c.authenticated) {
            ice.ice_servers.retain(|s| s.username.is_none());
        }
        ice
    }

    fn refuse(&mut self, conn: ConnId, why: &str) {
        self.send(conn, ServerMessage::not_allowed(why));
    }

    fn apply_named(&mut self, input: NamedInput) {
        for (conn, message) in self.named.handle(input) {
            self.send(conn, message);
        }
    }

    fn apply(&mut self, input: Input) {
        let failure = match &input {
            Input::PeerFailed { reason, call } => Some((*call, reason.clone())),
            Input::HoldExpired { call } => Some((
                *call,
                format!(
                    "the caller's connection closed and it did not come back within {} s",
                    HOLD_LIMIT.as_secs()
                ),
            )),
            _ => None,
        };
        let failed = failure.is_some();
        if let Some((call, reason)) = failure
            && self.room.current_call() == Some(call)
        {
            self.last_failure = Some(reason);
        }
        for action in self.room.handle(input) {
            match action {
                Action::Send { conn, message } => self.send(conn, message),
                Action::StartCall { call, codecs } => {
                    Metrics::add(&self.metrics.calls_started, 1);
                    crate::logging::call_event(
                        call,
                        self.caller_address(),
                        format_args!("started"),
                    );
                    self.last_failure = None;
                    self.start_media(call, codecs);
                }
                Action::ResumeCall { from, to, codecs } => {
                    Metrics::add(&self.metrics.calls_resumed, 1);
                    self.hold = None;
                    crate::logging::call_event(
                        from,
                        self.caller_address(),
                        format_args!(
                            "the caller is back on a new connection; going on as call {to}"
                        ),
                    );
                    let _ = self.media.send(MediaCommand::End { call: from });
                    self.start_media(to, codecs);
                }
                Action::HoldCall { call } => {
                    crate::logging::call_event(
                        call,
                        None,
                        format_args!(
                            "the caller's connection closed; holding the call up to {} s for it to come back",
                            HOLD_LIMIT.as_secs()
                        ),
                    );
                    self.hold = Some((call, tokio::time::Instant::now() + HOLD_LIMIT));
                }
                Action::EndCall { call } => {
                    self.hold = None;
                    Metrics::add(&self.metrics.calls_ended, 1);
                    match self.last_failure.as_deref().filter(|_| failed) {
                        Some(why) => {
                            Metrics::add(&self.metrics.calls_failed, 1);
                            crate::logging::call_event(call, None, format_args!("ended: {why}"));
                        }
                        None => crate::logging::call_event(call, None, format_args!("ended")),
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

    fn caller_address(&self) -> Option<IpAddr> {
        self.room.caller().map(|caller| self.address_of(caller))
    }

    /// Starts the device's peer for `call`, with TURN credentials minted now.
    fn start_media(&self, call: CallId, codecs: Vec<String>) {
        let ice = self
            .ice
            .current()
            .for_device(std::time::SystemTime::now(), &format!("call{call}"));
        let _ = self.media.send(MediaCommand::Start { call, codecs, ice });
    }

    /// Queues a message for a connection. A browser too slow to drain its queue is dropped
    /// (its session then ends and reports `Closed`), so it cannot hold the owner up.
    fn send(&mut self, conn: ConnId, message: ServerMessage) {
        match &message {
            ServerMessage::Full { .. } => Metrics::add(&self.metrics.busy_replies, 1),
            ServerMessage::Error { .. } => Metrics::add(&self.metrics.signaling_errors, 1),
            _ => {}
        }
        let Some(connection) = self.connections.get(&conn) else {
            return;
        };
        if connection.outbox.try_send(message).is_err() {
            log::warn!("connection {conn}: not reading its messages; dropping it");
            self.connections.remove(&conn);
        }
    }
}
