//! The probe as a WHEP viewer (docs/watchers.md): it makes the offer, POSTs it to the device's
//! `/whep` with a viewer token, takes the answer, trickles its candidates with PATCH and ends
//! with DELETE. Nothing comes from the device after the answer.

use webrtc::peer_connection::RTCIceCandidateInit;

use super::client::Connector;
use super::error::ProbeError;
use super::signal::Signal;

/// Where and as whom to watch.
#[derive(Clone)]
pub struct WhepTarget {
    pub connector: Connector,
    /// A viewer token; `None` for a device with `auth = "none"`.
    pub token: Option<String>,
}

/// One viewer session.
pub struct WhepSession {
    target: WhepTarget,
    /// The session's `Location`, once the offer was answered.
    location: Option<String>,
    /// The session's entity tag (`ETag`), sent back as `If-Match` with each PATCH.
    etag: Option<String>,
}

impl WhepSession {
    pub fn new(target: &WhepTarget) -> Self {
        Self {
            target: target.clone(),
            location: None,
            etag: None,
        }
    }

    fn authorization(&self) -> Option<String> {
        self.target.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> Result<super::client::HttpReply, ProbeError> {
        let authorization = self.authorization();
        let mut headers = Vec::new();
        if let Some(value) = &authorization {
            headers.push(("Authorization", value.as_str()));
        }
        if let (Some(tag), "PATCH") = (&self.etag, method) {
            headers.push(("If-Match", tag.as_str()));
        }
        if let Some(value) = content_type {
            headers.push(("Content-Type", value));
        }
        self.target
            .connector
            .http(method, path, &headers, body)
            .await
    }

    /// POSTs the offer; the device's answer.
    pub async fn offer(&mut self, sdp: &str) -> Result<String, ProbeError> {
        let reply = self
            .send("POST", "/whep", Some("application/sdp"), sdp)
            .await?;
        match reply.status {
            201 => {
                self.location = reply.header("location").map(str::to_owned);
                self.etag = reply.header("etag").map(str::to_owned);
                if self.location.is_none() {
                    return Err(ProbeError::Signaling(
                        "the WHEP answer has no Location".into(),
                    ));
                }
                Ok(reply.body)
            }
            401 => Err(ProbeError::Signaling(
                "WHEP refused the viewer token (HTTP 401): set PEERCAM_TOKEN to one made with \
                 `peercam token create NAME`"
                    .into(),
            )),
            status => Err(ProbeError::Signaling(format!(
                "WHEP answered HTTP {status}: {}",
                reply.body.trim()
            ))),
        }
    }

    /// Trickles one of the probe's candidates (all media is bundled on the first m-line).
    pub async fn candidate(&mut self, candidate: RTCIceCandidateInit) -> Result<(), ProbeError> {
        let Some(location) = self.location.clone() else {
            return Ok(());
        };
        if candidate.candidate.is_empty() {
            return Ok(());
        }
        let mid = candidate.sdp_mid.unwrap_or_else(|| "0".into());
        let fragment = format!(
            "m=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:{mid}\r\na={}\r\n",
            candidate.candidate
        );
        let reply = self
            .send(
                "PATCH",
                &location,
                Some("application/trickle-ice-sdpfrag"),
                &fragment,
            )
            .await?;
        match reply.status {
            204 => Ok(()),
            status => Err(ProbeError::Signaling(format!(
                "WHEP PATCH answered HTTP {status}: {}",
                reply.body.trim()
            ))),
        }
    }

    /// Nothing arrives from a WHEP device after its answer. Cancel-safe.
    pub async fn next(&mut self) -> Result<Signal, ProbeError> {
        std::future::pending().await
    }

    /// Ends the session; errors do not matter any more.
    pub async fn hang_up(self) {
        if let Some(location) = &self.location
            && let Err(e) = self.send("DELETE", location, None, "").await
        {
            log::debug!("WHEP DELETE: {e}");
        }
    }
}
