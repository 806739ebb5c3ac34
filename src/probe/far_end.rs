//! Who the probe calls, and the few things a call needs from its signaling: join and learn the
//! ICE servers, then offers, candidates and goodbyes in; the answer, candidates and a hang-up
//! out. A peercam device (its WebSocket), the device's WHEP endpoint as a viewer, or, for
//! benchmarks, a Janus streaming mountpoint.

use std::net::SocketAddr;

use webrtc::peer_connection::RTCIceCandidateInit;

use super::client::Connector;
use super::device::DeviceSignaling;
use super::error::ProbeError;
use super::janus::{Janus, JanusSignaling};
use super::signal::{CallPlan, IceConfiguration, Signal};
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
