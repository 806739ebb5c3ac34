//! The probe as a viewer of a Janus streaming-plugin mountpoint, over Janus's plain HTTP API
//! (create a session, attach `janus.plugin.streaming`, `watch`, answer with `start`, trickle,
//! `destroy`; events by long poll). Only for benchmarks: the same client watches the same
//! pre-encoded feed relayed by Janus and by peercam.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use webrtc::peer_connection::RTCIceCandidateInit;

use super::client::Endpoint;
use super::error::ProbeError;
use super::signal::{Signal, candidate_from_json, candidate_json};

/// A Janus server's HTTP API and the mountpoint to watch.
#[derive(Debug, Clone)]
pub struct Janus {
    api: Endpoint,
    stream: u64,
    timeout: Duration,
    transactions: Arc<AtomicU64>,
}

impl Janus {
    /// `http://host:port/janus` and the streaming mountpoint id.
    pub async fn from_url(url: &str, stream: u64, timeout: Duration) -> Result<Self, ProbeError> {
        Ok(Self {
            api: Endpoint::parse(url, "http", "Janus's API is reached over http:// here").await?,
            stream,
            timeout,
            transactions: Arc::default(),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.api.address
    }

    /// Creates a session, attaches the streaming plugin and asks to watch the mountpoint; its
    /// offer comes as an event.
    pub async fn watch(&self) -> Result<JanusSignaling, ProbeError> {
        let created = self.post("", json!({"janus": "create"})).await?;
        let session = id_of(&created)?;
        let attached = self
            .post(
                &format!("/{session}"),
                json!({"janus": "attach", "plugin": "janus.plugin.streaming"}),
            )
            .await?;
        let handle = id_of(&attached)?;
        let (events_tx, events) = mpsc::unbounded_channel();
        let poller = tokio::spawn(poll_events(self.clone(), session, events_tx));
        let signaling = JanusSignaling {
            janus: self.clone(),
            session,
            handle,
            events,
            poller,
        };
        signaling
            .message(json!({"request": "watch", "id": self.stream}), None)
            .await?;
        Ok(signaling)
    }

    async fn post(&self, path: &str, mut body: Value) -> Result<Value, ProbeError> {
        let transaction = self.transactions.fetch_add(1, Ordering::Relaxed);
        body["transaction"] = json!(format!("probe-{transaction}"));
        let answer = self.request("POST", path, Some(body)).await?;
        if answer.get("janus").and_then(Value::as_str) == Some("error") {
            return Err(ProbeError::Refused(format!("Janus: {}", answer["error"])));
        }
        Ok(answer)
    }

    /// One HTTP/1.0 request; the answer's JSON body.
    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ProbeError> {
        let unreachable = |why: String| ProbeError::Unreachable {
            url: self.api.url.clone(),
            why,
        };
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} {}{path} HTTP/1.0\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.api.path,
            self.api.authority(),
            body.len()
        );
        let exchange = async {
            let mut stream = TcpStream::connect(self.api.address).await?;
            stream.write_all(request.as_bytes()).await?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await?;
            Ok::<_, std::io::Error>(response)
        };
        // Long polls wait up to 30 s on the server side.
        let response = tokio::time::timeout(self.timeout + Duration::from_secs(35), exchange)
            .await
            .map_err(|_| unreachable("no answer in time".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let text = String::from_utf8_lossy(&response);
        let (_, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| unreachable("the answer is not HTTP".into()))?;
        serde_json::from_str(body)
            .map_err(|e| ProbeError::Signaling(format!("Janus sent bad JSON: {e}")))
    }
}

fn id_of(answer: &Value) -> Result<u64, ProbeError> {
    answer["data"]["id"]
        .as_u64()
        .ok_or_else(|| ProbeError::Signaling(format!("Janus gave no id: {answer}")))
}

/// Long-polls the session's events and passes on what the call needs.
async fn poll_events(janus: Janus, session: u64, events: mpsc::UnboundedSender<Signal>) {
    loop {
        let answer = match janus
            .request("GET", &format!("/{session}?maxev=10"), None)
            .await
        {
            Ok(answer) => answer,
            Err(e) => {
                let _ = events.send(Signal::Bye(format!("Janus event poll failed: {e}")));
                return;
            }
        };
        let batch = match answer {
            Value::Array(batch) => batch,
            single => vec![single],
        };
        for event in batch {
            if let Some(signal) = signal_of(&event)
                && events.send(signal).is_err()
            {
                return;
            }
        }
    }
}

/// What one Janus event means for the call, if anything.
fn signal_of(event: &Value) -> Option<Signal> {
    if let Some(sdp) = event["jsep"]["sdp"].as_str()
        && event["jsep"]["type"] == "offer"
    {
        return Some(Signal::Offer(sdp.to_owned()));
    }
    match event["janus"].as_str()? {
        "trickle" => candidate_from_json(&event["candidate"]).map(Signal::Candidate),
        "hangup" => Some(Signal::Bye(
            event["reason"]
                .as_str()
                .unwrap_or("Janus hung up")
                .to_owned(),
        )),
        "event" => event["plugindata"]["data"]["error"]
            .as_str()
            .map(|error| Signal::Bye(format!("Janus: {error}"))),
        _ => None,
    }
}

/// A viewer's session on Janus.
pub struct JanusSignaling {
    janus: Janus,
    session: u64,
    handle: u64,
    events: mpsc::UnboundedReceiver<Signal>,
    poller: tokio::task::JoinHandle<()>,
}

impl JanusSignaling {
    pub async fn next(&mut self) -> Result<Signal, ProbeError> {
        self.events
            .recv()
            .await
            .ok_or_else(|| ProbeError::HungUp("the Janus session ended".into()))
    }

    async fn message(&self, body: Value, jsep: Option<Value>) -> Result<(), ProbeError> {
        let mut message = json!({"janus": "message", "body": body});
        if let Some(jsep) = jsep {
            message["jsep"] = jsep;
        }
        self.janus
            .post(&format!("/{}/{}", self.session, self.handle), message)
            .await
            .map(drop)
    }

    pub async fn answer(&mut self, sdp: String) -> Result<(), ProbeError> {
        self.message(
            json!({"request": "start"}),
            Some(json!({"type": "answer", "sdp": sdp})),
        )
        .await
    }

    pub async fn candidate(&mut self, candidate: RTCIceCandidateInit) -> Result<(), ProbeError> {
        self.janus
            .post(
                &format!("/{}/{}", self.session, self.handle),
                json!({"janus": "trickle", "candidate": candidate_json(&candidate)}),
            )
            .await
            .map(drop)
    }

    pub async fn hang_up(self) {
        self.poller.abort();
        let destroy = json!({"janus": "destroy"});
        if let Err(e) = self
            .janus
            .post(&format!("/{}", self.session), destroy)
            .await
        {
            log::debug!("Janus session not destroyed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn janus_events_become_signals() {
        let offer = json!({"janus": "event", "jsep": {"type": "offer", "sdp": "v=0"}});
        assert!(matches!(signal_of(&offer), Some(Signal::Offer(sdp)) if sdp == "v=0"));
        let trickle = json!({"janus": "trickle", "candidate": {
            "candidate": "candidate:1 1 udp 1 10.99.0.1 9 typ host", "sdpMLineIndex": 0}});
        assert!(matches!(signal_of(&trickle), Some(Signal::Candidate(_))));
        let done = json!({"janus": "trickle", "candidate": {"completed": true}});
        assert!(signal_of(&done).is_none());
        let error =
            json!({"janus": "event", "plugindata": {"data": {"error": "No such mountpoint"}}});
        assert!(
            matches!(signal_of(&error), Some(Signal::Bye(reason)) if reason.contains("mountpoint"))
        );
        assert!(signal_of(&json!({"janus": "webrtcup"})).is_none());
        assert!(signal_of(&json!({"janus": "keepalive"})).is_none());
    }
}
