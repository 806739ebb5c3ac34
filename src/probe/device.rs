//! The probe's side of the device's signaling protocol (docs/signaling.md): `join` the device's
//! room, take `joined`, then the device's offer and candidates; send the answer, candidates and
//! `bye`.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use webrtc::peer_connection::{RTCIceCandidateInit, RTCIceServer};

use super::client::{Connector, Signaling};
use super::error::ProbeError;
use super::signal::{CallPlan, IceConfiguration, Signal, candidate_from_json, candidate_json};

/// A call in the device's room.
pub struct DeviceSignaling {
    socket: Signaling,
}

impl DeviceSignaling {
    /// Opens the socket and joins the device's room; returns once the device said `joined`.
    pub async fn join(
        connector: &Connector,
        plan: &CallPlan,
    ) -> Result<(Self, IceConfiguration), ProbeError> {
        let socket = connector.signaling(plan.cookie.as_deref()).await?;
        let mut signaling = Self { socket };
        signaling
            .send(json!({"type": "join", "room": "device", "codecs": plan.codecs}))
            .await?;
        loop {
            let message = signaling.receive().await?;
            match message.get("type").and_then(Value::as_str) {
                Some("joined") => {
                    let ice = IceConfiguration {
                        servers: ice_servers(&message),
                        relay_only: message.get("iceTransportPolicy").and_then(Value::as_str)
                            == Some("relay"),
                    };
                    return Ok((signaling, ice));
                }
                Some("full") => return Err(ProbeError::Busy),
                Some("error") => return Err(ProbeError::Refused(text_field(&message, "message"))),
                Some("bye") => return Err(ProbeError::HungUp(text_field(&message, "reason"))),
                _ => continue,
            }
        }
    }

    pub async fn next(&mut self) -> Result<Signal, ProbeError> {
        loop {
            let message = self.receive().await?;
            match message.get("type").and_then(Value::as_str) {
                Some("offer") => return Ok(Signal::Offer(text_field(&message, "sdp"))),
                Some("candidate") => {
                    if let Some(candidate) = candidate_from_json(&message) {
                        return Ok(Signal::Candidate(candidate));
                    }
                }
                Some("bye") => return Ok(Signal::Bye(text_field(&message, "reason"))),
                Some("error") => return Err(ProbeError::Refused(text_field(&message, "message"))),
                _ => {}
            }
        }
    }

    pub async fn answer(&mut self, sdp: String) -> Result<(), ProbeError> {
        self.send(json!({"type": "answer", "sdp": sdp})).await
    }

    pub async fn candidate(&mut self, candidate: RTCIceCandidateInit) -> Result<(), ProbeError> {
        let mut message = candidate_json(&candidate);
        message["type"] = json!("candidate");
        self.send(message).await
    }

    /// Says `bye` and closes the socket, waiting briefly for the device to close its side, so
    /// the device has let the call go before the next one dials.
    pub async fn hang_up(mut self) {
        let _ = self.send(json!({"type": "bye"})).await;
        let _ = self.socket.close(None).await;
        let drain = async { while let Some(Ok(_)) = self.socket.next().await {} };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
    }

    async fn send(&mut self, message: Value) -> Result<(), ProbeError> {
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .map_err(|e| ProbeError::Signaling(e.to_string()))
    }

    /// The next JSON message from the device. Cancel-safe: a message is taken off the socket
    /// only when it is returned.
    async fn receive(&mut self) -> Result<Value, ProbeError> {
        loop {
            match self.socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(&text).map_err(|e| {
                        ProbeError::Signaling(format!("the device sent bad JSON: {e}"))
                    });
                }
                Some(Ok(Message::Close(frame))) => {
                    let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                    return Err(ProbeError::HungUp(format!(
                        "the device closed the socket {reason}"
                    )));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(ProbeError::Signaling(e.to_string())),
                None => return Err(ProbeError::HungUp("the device closed the socket".into())),
            }
        }
    }
}

fn text_field(message: &Value, field: &str) -> String {
    message
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The `iceServers` of a `joined` message, as webrtc-rs wants them.
fn ice_servers(joined: &Value) -> Vec<RTCIceServer> {
    let Some(servers) = joined.get("iceServers").and_then(Value::as_array) else {
        return Vec::new();
    };
    servers
        .iter()
        .map(|server| {
            let urls = match server.get("urls") {
                Some(Value::String(url)) => vec![url.clone()],
                Some(Value::Array(urls)) => urls
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                _ => Vec::new(),
            };
            RTCIceServer {
                urls,
                username: text_field(server, "username"),
                credential: text_field(server, "credential"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_servers_take_one_url_or_many() {
        let joined = json!({"iceServers": [
            {"urls": "stun:10.99.0.1:3478"},
            {"urls": ["turn:10.99.0.1:3478?transport=udp"], "username": "u", "credential": "c"},
        ]});
        let servers = ice_servers(&joined);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].urls, vec!["stun:10.99.0.1:3478".to_owned()]);
        assert_eq!(
            (servers[1].username.as_str(), servers[1].credential.as_str()),
            ("u", "c")
        );
        assert!(ice_servers(&json!({})).is_empty());
    }
}
