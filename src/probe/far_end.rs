//! Who the probe calls, and the few things a call needs from its signaling: join and learn the
//! ICE servers, then offers, candidates and goodbyes in; the answer, candidates and a hang-up
//! out. A peercam device (its WebSocket), the device's WHEP endpoint as a viewer, or, for
//! benchmarks, a Janus streaming mountpoint.

use std::net::SocketAddr;

use webrtc::peer_connection::{RTCIceCandidateInit, RTCIceServer};

use super::ProbeError;
use super::call::CallPlan;
use super::client::Connector;
use super::device::DeviceSignaling;
use super::janus::{Janus, JanusSignaling};
use super::whep::{WhepSession, WhepTarget};

/// What the probe calls.
#[derive(Clone)]
pub enum Target {
    Device(Connector),
    Janus(Janus),
    /// A viewer of the device's `/whep`: the probe offers.
    Whep(WhepTarget),
}

impl Target {
    /// The far end's address, to pick the local interface that reaches it.
    pub fn address(&self) -> SocketAddr {
        match self {
            Self::Device(connector) => connector.device().address,
            Self::Janus(janus) => janus.address(),
            Self::Whep(whep) => whep.connector.device().address,
        }
    }
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

/// A joined call's signaling.
pub enum FarEnd {
    /// Boxed: the TLS WebSocket is large.
    Device(Box<DeviceSignaling>),
    Janus(JanusSignaling),
    Whep(WhepSession),
}

impl FarEnd {
    /// Joins: the device's room, or the Janus stream.
    pub async fn join(
        target: &Target,
        plan: &CallPlan,
    ) -> Result<(Self, IceConfiguration), ProbeError> {
        Ok(match target {
            Target::Device(connector) => {
                let (signaling, ice) = DeviceSignaling::join(connector, plan).await?;
                (Self::Device(Box::new(signaling)), ice)
            }
            Target::Janus(janus) => (
                Self::Janus(janus.watch().await?),
                IceConfiguration::default(),
            ),
            Target::Whep(whep) => (
                Self::Whep(WhepSession::new(whep)),
                IceConfiguration::default(),
            ),
        })
    }

    /// The next offer, candidate or goodbye. Cancel-safe, for use in `select!`.
    pub async fn next(&mut self) -> Result<Signal, ProbeError> {
        match self {
            Self::Device(device) => device.next().await,
            Self::Janus(janus) => janus.next().await,
            Self::Whep(whep) => whep.next().await,
        }
    }

    pub async fn answer(&mut self, sdp: String) -> Result<(), ProbeError> {
        match self {
            Self::Device(device) => device.answer(sdp).await,
            Self::Janus(janus) => janus.answer(sdp).await,
            Self::Whep(_) => Err(ProbeError::Signaling(
                "a WHEP device does not make offers".into(),
            )),
        }
    }

    pub async fn candidate(&mut self, candidate: RTCIceCandidateInit) -> Result<(), ProbeError> {
        match self {
            Self::Device(device) => device.candidate(candidate).await,
            Self::Janus(janus) => janus.candidate(candidate).await,
            Self::Whep(whep) => whep.candidate(candidate).await,
        }
    }

    /// Ends the call politely; errors do not matter any more.
    pub async fn hang_up(self) {
        match self {
            Self::Device(device) => (*device).hang_up().await,
            Self::Janus(janus) => janus.hang_up().await,
            Self::Whep(whep) => whep.hang_up().await,
        }
    }
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
