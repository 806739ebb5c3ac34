//! Who a peer is and what it says: its id (the caller's call, or a viewer), what it is for,
//! the notices its GStreamer callbacks send to the media task, and the events the media owner
//! acts on.

use gst_webrtc::{WebRTCICEConnectionState, WebRTCSessionDescription};
use gstreamer as gst;
use gstreamer_webrtc as gst_webrtc;
use tokio::sync::mpsc::UnboundedSender;

use super::plan::VideoCodec;
use super::viewer_offer::OfferChoice;
use crate::media_link::CallId;
use crate::signaling::IceCandidate;

/// Which peer: the caller's (one call, or one resumed leg of it) or a viewer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerId {
    Caller(CallId),
    Viewer(u64),
}

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Caller(call) => write!(f, "call {call}"),
            Self::Viewer(viewer) => write!(f, "viewer {viewer}"),
        }
    }
}

/// What the peer is for.
pub enum Role<'a> {
    /// The caller, sent `codec`: talkback, and the device offers.
    Caller { codec: VideoCodec },
    /// A receive-only viewer whose offer (`sdp`) asks for what `choice` says.
    Viewer {
        sdp: &'a str,
        choice: &'a OfferChoice,
    },
}

impl Role<'_> {
    /// The video codec the peer is sent.
    pub fn codec(&self) -> VideoCodec {
        match self {
            Self::Caller { codec } => *codec,
            Self::Viewer { choice, .. } => choice.codec,
        }
    }
}

/// What the media owner must act on, from `Peer::on_notice`.
#[derive(Debug, PartialEq)]
pub enum PeerEvent {
    Offer(String),
    Candidate(IceCandidate),
    /// A viewer's answer is complete (its candidates gathered).
    AnswerReady,
    Failed(String),
}

/// What a GStreamer callback saw; handled by `Peer::on_notice` on the media task.
#[derive(Debug)]
pub enum Notice {
    NegotiationNeeded,
    GatheringComplete,
    /// An element's latency changed (webrtcbin's transports join after negotiation): the
    /// pipeline's latency must be worked out again, or the RTP session drops what it is sent.
    Latency,
    OfferCreated(Result<WebRTCSessionDescription, String>),
    IceCandidate {
        mline: u32,
        candidate: String,
    },
    IceState(WebRTCICEConnectionState),
    Error(String),
    Eos,
    /// webrtcbin's answer to `get-stats`.
    Stats(gst::Structure),
}

/// Where a peer's callbacks send their notices, tagged with its id.
pub type Notices = UnboundedSender<(PeerId, Notice)>;
