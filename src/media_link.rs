//! The messages between the owners of calls and the media owner: what the room owner and the
//! web handlers (WHEP, snapshots) ask of `media::run`, and what it reports back.
//!
//! Both sides depend on this module and neither on the other: `rooms` never sees a GStreamer
//! type and `media` never sees a room.

use std::time::Duration;

use thiserror::Error;
use tokio::sync::oneshot;

use crate::signaling::IceCandidate;
use crate::turn::DeviceIce;

/// One call with the device, or one resumed leg of it: a fresh id each time, so late news of a
/// torn-down peer can be recognised and dropped.
pub type CallId = u64;

/// The longest WHEP offer or trickle fragment accepted; a browser's is a few kilobytes.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

/// The widths a snapshot may be asked for, in pixels.
pub const SNAPSHOT_WIDTHS: std::ops::RangeInclusive<u32> = 16..=3840;

/// What the media owner is asked.
#[derive(Debug)]
pub enum MediaCommand {
    /// A caller joined: start its peer (the device makes the offer).
    Start {
        call: CallId,
        codecs: Vec<String>,
        ice: DeviceIce,
    },
    End {
        call: CallId,
    },
    Answer {
        call: CallId,
        sdp: String,
    },
    Candidate {
        call: CallId,
        candidate: IceCandidate,
    },
    /// A receive-only viewer's offer (WHEP): answer it, or say why not.
    Watch {
        offer: String,
        ice: DeviceIce,
        /// Who asked, for the log.
        viewer: String,
        /// What let the viewer in; the viewer ends when that is withdrawn.
        grant: Grant,
        reply: oneshot::Sender<Result<WatchAnswer, WatchRefused>>,
    },
    /// Trickled candidates of a viewer's session, under the ICE username fragment the
    /// fragment names (`None` when it names none).
    WatchCandidates {
        session: String,
        /// The request's `If-Match`, as sent.
        if_match: Option<String>,
        ufrag: Option<String>,
        candidates: Vec<IceCandidate>,
        reply: oneshot::Sender<Trickled>,
    },
    /// Access was taken back: end every viewer let in by it, for `reason`.
    Withdraw {
        what: Withdrawn,
        reason: String,
    },
    /// A viewer ends its session; `false` on `reply` when there is no such session.
    Unwatch {
        session: String,
        reply: oneshot::Sender<bool>,
    },
    /// A JPEG of the camera's picture, `width` pixels wide (the camera's own width when
    /// `None`; within `SNAPSHOT_WIDTHS`): the source starts if nobody watches and runs until
    /// the picture is taken.
    Snapshot {
        width: Option<u32>,
        reply: oneshot::Sender<Result<Vec<u8>, SnapshotRefused>>,
    },
    /// Stop every peer and the source, and answer on `done`.
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// What let a viewer or a WebSocket in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// `auth = "none"`: anyone.
    Open,
    /// The owner's login session.
    Session(crate::auth::SessionId),
    /// A viewer token, by name.
    Token(String),
}

/// Access taken back; whatever it let in ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Withdrawn {
    /// One session logged out.
    Session(crate::auth::SessionId),
    /// The owner's password changed: every session but these (made since) ends.
    SessionsExcept(Vec<crate::auth::SessionId>),
    /// Viewer tokens were revoked: every token but these (by name) ends.
    TokensExcept(Vec<String>),
}

impl Withdrawn {
    /// Whether `grant` is among what was withdrawn.
    pub fn covers(&self, grant: &Grant) -> bool {
        match (self, grant) {
            (Self::Session(ended), Grant::Session(session)) => ended == session,
            (Self::SessionsExcept(live), Grant::Session(session)) => !live.contains(session),
            (Self::TokensExcept(live), Grant::Token(name)) => !live.contains(name),
            _ => false,
        }
    }
}

/// What became of a viewer's trickled candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trickled {
    Added,
    NoSuchSession,
    /// The fragment has new ICE credentials (or comes with `If-Match: *`): the viewer asks
    /// for an ICE restart, which the device does not do within a session (nothing was
    /// changed).
    RestartRefused,
    /// `If-Match` names another entity tag than the session's (an out-of-date fragment).
    StaleTag,
    /// No `If-Match` came with the fragment; the WHEP draft asks for one on every PATCH.
    TagMissing,
}

/// The device's answer to a viewer's offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchAnswer {
    /// The session's id, for its `Location`.
    pub session: String,
    /// The session's entity tag (quoted), for `ETag`: trickled candidates must name it.
    pub etag: String,
    pub sdp: String,
}

/// Why a viewer's offer was not answered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WatchRefused {
    #[error("{max} viewers are watching already (watchers.max); try again later")]
    Full { max: usize },
    #[error("the offer is not usable SDP: {0}")]
    BadOffer(String),
    /// The device cannot take on another peer now (short of descriptors); try again later.
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    NoCommonCodec(String),
    #[error("the device could not answer: {0}")]
    Failed(String),
}

/// Why no picture can be had.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SnapshotRefused {
    #[error("the video source is already encoded (media.video_encoder = \"none\"): no raw picture")]
    PreEncoded,
    #[error("the camera did not start: {0}")]
    SourceFailed(String),
    /// The device cannot start the camera now (short of descriptors); try again later.
    #[error("{0}")]
    Busy(String),
    /// The camera sent no picture in time.
    #[error("{0}")]
    NoPicture(String),
    /// A picture came but could not be made a JPEG.
    #[error("{0}")]
    Encode(String),
}

/// What the media owner tells the room owner about the caller's peer.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerReport {
    /// The device's peer made its offer.
    Offer { call: CallId, sdp: String },
    /// The device's peer gathered a candidate.
    Candidate {
        call: CallId,
        candidate: IceCandidate,
    },
    /// The device's peer could not go on.
    Failed { call: CallId, reason: String },
}

/// Whether the camera and microphone work, for STATUS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaHealth {
    Unavailable { reason: String, retry_in: Duration },
    Available,
}

/// A fresh unguessable secret (18 random bytes, URL-safe base64): a call's resume token, a
/// viewer session's id.
pub fn fresh_secret() -> Result<String, getrandom::Error> {
    use base64::Engine as _;
    let mut buffer = [0u8; 18];
    getrandom::getrandom(&mut buffer)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buffer))
}
