//! The signaling wire protocol: JSON text messages over the `/ws` WebSocket.
//!
//! This file is the single source of truth for the messages; `web/signaling.js` mirrors it and
//! `docs/signaling.md` documents it. Parsing is pure and total: any input, however malformed or
//! large, becomes either a `ClientMessage` or a `ProtocolError` that the connection answers with
//! an `error` message, so bad input can never disturb anything else.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Whether ICE may use every candidate or only relayed ones (`relay`: all media through TURN,
/// for privacy or testing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TransportPolicy {
    #[default]
    All,
    Relay,
}

/// The ICE part of a `joined`/`created` message and of `/api/ice-servers`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrowserIce {
    #[serde(rename = "iceServers")]
    pub ice_servers: Vec<IceServer>,
    #[serde(rename = "iceTransportPolicy")]
    pub transport_policy: TransportPolicy,
}

/// The name of the device's own room: the device is one member, one caller the other.
pub const DEVICE_ROOM: &str = "device";

/// Messages a browser sends.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientMessage {
    /// Ask to enter a room; `room` defaults to the device's room. `codecs` lists the video
    /// codecs the browser can receive (names as in `RTCRtpReceiver.getCapabilities`, such as
    /// `H264`, `VP8`), so the device can choose one it can encode.
    Join {
        #[serde(default)]
        room: Option<String>,
        #[serde(default)]
        codecs: Vec<String>,
    },
    Offer {
        sdp: String,
    },
    Answer {
        sdp: String,
    },
    Candidate(IceCandidate),
    /// Back on a new connection after a network change: go on with the call `joined` gave
    /// this token for (the device's room only).
    Resume {
        token: String,
    },
    /// Hang up / leave the room (`leave` is accepted as the same message, as in the tutorials).
    #[serde(alias = "leave")]
    Bye,
}

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage {
    /// You made a new named room and are alone in it; wait for `ready`.
    Created {
        room: String,
        #[serde(flatten)]
        ice: BrowserIce,
    },
    /// Both members are in a named room. The `initiator` makes the offer.
    Ready {
        room: String,
        initiator: bool,
    },
    /// You are in the room. `iceServers` and `iceTransportPolicy` are the `RTCConfiguration`
    /// to use. In the device's room, `resume` is the token to send in `resume` should this
    /// connection be lost during the call.
    Joined {
        room: String,
        #[serde(flatten)]
        ice: BrowserIce,
        #[serde(skip_serializing_if = "Option::is_none")]
        resume: Option<String>,
    },
    /// The room already has two members (for the device's room: the device is busy).
    Full {
        room: String,
    },
    Offer {
        sdp: String,
    },
    Answer {
        sdp: String,
    },
    Candidate(IceCandidate),
    /// The other side hung up or went away; `reason` says why, for the status line.
    Bye {
        reason: String,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}

/// A trickled ICE candidate, in the shape of `RTCIceCandidateInit`. An empty `candidate` string
/// means the sender has finished gathering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]

pub struct IceCandidate {
    pub candidate: String,
    #[serde(rename = "sdpMLineIndex")]
    pub sdp_m_line_index: u32,
    #[serde(rename = "sdpMid", default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    #[serde(
        rename = "usernameFragment",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub username_fragment: Option<String>,
}

/// One entry of `RTCConfiguration.iceServers`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Machine-readable reason in an `error` message; `message` carries the human-readable one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// Not JSON, not an object, or a field of the wrong shape.
    BadMessage,
    /// A `type` this server does not know.
    UnknownType,
    /// Larger than the configured limit.
    TooLarge,
    /// Valid message at the wrong moment (an answer with no call, a second join, ...).
    NotAllowed,
    /// The device could not start its media; the reason is in the message.
    MediaFailed,
    /// A room name that is empty, too long, or has characters outside `A-Z a-z 0-9 - _ .`.
    InvalidRoom,
    /// A configured cap (rooms or members per address, rooms in all) was reached.
    LimitReached,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    #[error("message of {size} bytes is larger than the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("not a JSON object with a string `type`: {0}")]
    Malformed(String),
    #[error("unknown message type `{0}`")]
    UnknownType(String),
    #[error("bad `{kind}` message: {reason}")]
    BadField { kind: String, reason: String },
}

impl ProtocolError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::TooLarge { .. } => ErrorCode::TooLarge,
            Self::Malformed(_) | Self::BadField { .. } => ErrorCode::BadMessage,
            Self::UnknownType(_) => ErrorCode::UnknownType,
        }
    }

    /// The `error` reply for this problem.
    pub fn to_message(&self) -> ServerMessage {
        ServerMessage::Error {
            code: self.code(),
            message: self.to_string(),
        }
    }
}

const CLIENT_TYPES: [&str; 7] = [
    "join",
    "offer",
    "answer",
    "candidate",
    "resume",
    "bye",
    "leave",
];

impl ClientMessage {
    /// Parses one text frame, refusing anything over `limit` bytes before looking inside it.
    pub fn parse(text: &str, limit: usize) -> Result<Self, ProtocolError> {
        if text.len() > limit {
            return Err(ProtocolError::TooLarge {
                size: text.len(),
                limit,
            });
        }
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ProtocolError::Malformed(truncate(&e.to_string(), REASON_CHARS)))?;
        let kind = value
            .get("type")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| ProtocolError::Malformed("missing `type`".into()))?
            .to_owned();
        if !CLIENT_TYPES.contains(&kind.as_str()) {
            return Err(ProtocolError::UnknownType(truncate(&kind, 40)));
        }
        let message: Self = serde_json::from_value(value).map_err(|e| ProtocolError::BadField {
            kind: kind.clone(),
            reason: truncate(&e.to_string(), REASON_CHARS),
        })?;
        let text = match &message {
            Self::Offer { sdp } | Self::Answer { sdp } => Some(sdp.as_str()),
            Self::Candidate(candidate) => Some(candidate.candidate.as_str()),
            _ => None,
        };
        if let Some(reason) = text.and_then(control_character) {
            return Err(ProtocolError::BadField { kind, reason });
        }
        Ok(message)
    }
}

/// Why `text` (SDP or a candidate line) is refused, when it holds a control character other
/// than the line breaks and tabs SDP allows. GStreamer's SDP parser stops at a NUL where the
/// Rust checks read on, so the two would see different offers; neither sees one with them.
pub fn control_character(text: &str) -> Option<String> {
    let (line, found) = text.lines().enumerate().find_map(|(index, line)| {
        line.trim_end_matches('\r')
            .chars()
            .find(|c| c.is_control() && *c != '\t')
            .map(|c| (index + 1, c))
    })?;
    Some(format!(
        "line {line} holds the control character U+{:04X}",
        u32::from(found)
    ))
}

impl ServerMessage {
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail: no maps with non-string keys, no floats.
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(r#"{{"type":"error","code":"bad-message","message":"encoding failed: {e}"}}"#)
        })
    }

    pub fn not_allowed(message: impl Into<String>) -> Self {
        Self::Error {
            code: ErrorCode::NotAllowed,
            message: message.into(),
        }
    }
}

/// The longest reason an error reply carries: serde's messages quote the offending value, and
/// a reply should not echo kilobytes of a sender's input back (found by the signaling fuzzer).
const REASON_CHARS: usize = 200;

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// The first `a=ice-ufrag` of an SDP offer or fragment, at session or media level.
pub fn ice_ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|line| line.trim_end_matches('\r').strip_prefix("a=ice-ufrag:"))
        .map(|ufrag| ufrag.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1024;

    #[test]
    fn sdp_and_candidates_with_control_characters_are_refused() {
        for text in [
            r#"{"type":"answer","sdp":"v=0\r\no=- 1 1 IN IP4 0.0.0.0\u0000\r\nm=video"}"#,
            r#"{"type":"offer","sdp":"v=0\r\ns=\u001b[2J\r\n"}"#,
            r#"{"type":"candidate","candidate":"candidate:1 1 udp 1 x\u0000 5 typ host","sdpMLineIndex":0}"#,
        ] {
            let error = ClientMessage::parse(text, LIMIT).unwrap_err();
            assert!(error.to_string().contains("control character"), "{error}");
        }
        assert!(
            ClientMessage::parse(r#"{"type":"answer","sdp":"v=0\r\n\ts=x\r\n"}"#, LIMIT).is_ok()
        );
    }

    #[test]
    fn an_error_reply_does_not_echo_a_long_value() {
        let long = "x".repeat(900);
        let text = format!(r#"{{"type":"join","codecs":"{long}"}}"#);
        let reply = ClientMessage::parse(&text, LIMIT)
            .unwrap_err()
            .to_message()
            .to_json();
        assert!(reply.len() < 400, "{} bytes: {reply}", reply.len());
    }

    #[test]
    fn join_defaults_to_device_room_and_no_codecs() {
        assert_eq!(
            ClientMessage::parse(r#"{"type":"join"}"#, LIMIT),
            Ok(ClientMessage::Join {
                room: None,
                codecs: vec![]
            })
        );
    }

    #[test]
    fn candidate_uses_browser_field_names() {
        let parsed = ClientMessage::parse(
            r#"{"type":"candidate","candidate":"candidate:1 1 udp 1 x.local 5000 typ host","sdpMLineIndex":1,"sdpMid":"1"}"#,
            LIMIT,
        );
        match parsed {
            Ok(ClientMessage::Candidate(c)) => {
                assert_eq!(c.sdp_m_line_index, 1);
                assert_eq!(c.sdp_mid.as_deref(), Some("1"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn resume_carries_its_token() {
        assert_eq!(
            ClientMessage::parse(r#"{"type":"resume","token":"abc"}"#, LIMIT),
            Ok(ClientMessage::Resume {
                token: "abc".into()
            })
        );
        let err = ClientMessage::parse(r#"{"type":"resume"}"#, LIMIT).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadMessage);
    }

    #[test]
    fn leave_is_bye() {
        assert_eq!(
            ClientMessage::parse(r#"{"type":"leave"}"#, LIMIT),
            Ok(ClientMessage::Bye)
        );
    }

    #[test]
    fn malformed_json_is_bad_message() {
        let err = ClientMessage::parse("{not json", LIMIT).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadMessage);
        let err = ClientMessage::parse("[1,2]", LIMIT).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadMessage);
        let err = ClientMessage::parse(r#"{"type":7}"#, LIMIT).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadMessage);
    }

    #[test]
    fn unknown_type_is_named() {
        let err = ClientMessage::parse(r#"{"type":"dance"}"#, LIMIT).unwrap_err();
        assert_eq!(err, ProtocolError::UnknownType("dance".into()));
        assert_eq!(err.code(), ErrorCode::UnknownType);
    }

    #[test]
    fn wrong_field_shape_is_bad_message() {
        let err = ClientMessage::parse(r#"{"type":"answer","sdp":5}"#, LIMIT).unwrap_err();
        assert!(matches!(err, ProtocolError::BadField { ref kind, .. } if kind == "answer"));
        let err = ClientMessage::parse(r#"{"type":"answer"}"#, LIMIT).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadMessage);
    }

    #[test]
    fn oversized_is_refused_before_parsing() {
        let big = format!(r#"{{"type":"answer","sdp":"{}"}}"#, "a".repeat(LIMIT));
        let err = ClientMessage::parse(&big, LIMIT).unwrap_err();
        assert_eq!(err.code(), ErrorCode::TooLarge);
    }

    #[test]
    fn server_messages_have_the_documented_shape() {
        let joined = ServerMessage::Joined {
            room: "device".into(),
            ice: BrowserIce {
                ice_servers: vec![IceServer {
                    urls: vec!["stun:h:3478".into()],
                    username: None,
                    credential: None,
                }],
                transport_policy: TransportPolicy::All,
            },
            resume: Some("t0ken".into()),
        };
        assert_eq!(
            joined.to_json(),
            r#"{"type":"joined","room":"device","iceServers":[{"urls":["stun:h:3478"]}],"iceTransportPolicy":"all","resume":"t0ken"}"#
        );
        let error = ProtocolError::UnknownType("x".into()).to_message();
        assert_eq!(
            error.to_json(),
            r#"{"type":"error","code":"unknown-type","message":"unknown message type `x`"}"#
        );
        let bye = ServerMessage::Bye {
            reason: "hung up".into(),
        };
        assert_eq!(bye.to_json(), r#"{"type":"bye","reason":"hung up"}"#);
    }
}
