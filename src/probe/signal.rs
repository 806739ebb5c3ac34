//! The vocabulary every part of the probe shares: what a call is asked to do (`CallPlan`,
//! `SrtpOffer`), how the far end wants ICE done, what the far end says during a call
//! (`Signal`), and trickled candidates in the JSON shape of `RTCIceCandidateInit`.

use std::time::Duration;

use webrtc::peer_connection::{RTCIceCandidateInit, RTCIceServer};

/// What one call is asked to do.
#[derive(Debug, Clone)]
pub struct CallPlan {
    /// How long to receive after the first keyframe.
    pub duration: Duration,
    /// How long the device has to get the first keyframe to us.
    pub timeout: Duration,
    /// Video codecs to offer to receive, as a browser lists them in `join`.
    pub codecs: Vec<String>,
    /// The session cookie, when the device asked for a login.
    pub cookie: Option<String>,
    /// The SRTP protection profiles offered in the DTLS handshake.
    pub srtp: SrtpOffer,
    /// Take video only: a device's audio is answered inactive, and a WHEP offer has none.
    pub video_only: bool,
}

/// Which SRTP protection profiles the probe offers in its DTLS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SrtpOffer {
    /// As browsers offer them: AES-GCM first, then AES-CM with HMAC-SHA1; the far end picks.
    #[default]
    Browser,
    /// Only AES-CM with an 80-bit HMAC-SHA1 tag: the one profile GStreamer's DTLS element
    /// (and so webrtcbin) negotiates, for comparing servers on the same cipher.
    #[value(name = "aes-cm")]
    AesCmOnly,
}

/// How the far end wants ICE done.
#[derive(Debug, Clone, Default)]
pub struct IceConfiguration {
    pub servers: Vec<RTCIceServer>,
    pub relay_only: bool,
}

/// What the far end says during a call.
#[derive(Debug)]
pub enum Signal {
    Offer(String),
    Candidate(RTCIceCandidateInit),
    Bye(String),
}

/// A trickled candidate as JSON, in the shape of `RTCIceCandidateInit` (both peercam and Janus
/// take it). All media is bundled on the first m-line.
pub fn candidate_json(candidate: &RTCIceCandidateInit) -> serde_json::Value {
    serde_json::json!({
        "candidate": candidate.candidate,
        "sdpMLineIndex": candidate.sdp_mline_index.unwrap_or(0),
    })
}

/// A candidate from JSON in the shape of `RTCIceCandidateInit`; `None` for the empty
/// end-of-candidates marker.
pub fn candidate_from_json(value: &serde_json::Value) -> Option<RTCIceCandidateInit> {
    let candidate = value.get("candidate")?.as_str()?;
    if candidate.is_empty() {
        return None;
    }
    Some(RTCIceCandidateInit {
        candidate: candidate.to_owned(),
        sdp_mid: value
            .get("sdpMid")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned),
        sdp_mline_index: value
            .get("sdpMLineIndex")
            .and_then(serde_json::Value::as_u64)
            .and_then(|i| u16::try_from(i).ok()),
        ..RTCIceCandidateInit::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_round_trip_and_the_end_marker_is_skipped() {
        let init = candidate_from_json(&serde_json::json!({
            "candidate": "candidate:1 1 udp 2130706431 10.99.0.1 5000 typ host",
            "sdpMid": "0",
            "sdpMLineIndex": 0,
        }))
        .unwrap();
        assert_eq!(init.sdp_mid.as_deref(), Some("0"));
        assert_eq!(candidate_json(&init)["candidate"], init.candidate.as_str());
        assert!(candidate_from_json(&serde_json::json!({"candidate": ""})).is_none());
        assert!(candidate_from_json(&serde_json::json!({"candidate": 5})).is_none());
    }
}
