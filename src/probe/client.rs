//! How the probe reaches a device over HTTPS: the address from the URL, TLS that trusts the
//! device's self-signed certificate only when its fingerprint is pinned (or checking is turned
//! off on purpose), the login form, and the signaling WebSocket with the session cookie.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};

use super::error::ProbeError;

/// The signaling socket to a device.
pub type Signaling = WebSocketStream<TlsStream<TcpStream>>;

/// Which device certificates to accept.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Only a certificate with this SHA-256 fingerprint (`AB:CD:…`, colons and case optional).
    Pinned(String),
    /// Any certificate: for a lab bench, where who answers does not matter.
    Anything,
}

/// A server's address, from its URL: the device's page (https) or, for benchmarks, Janus's API
/// (http).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    pub host: String,
    pub port: u16,
    pub address: SocketAddr,
    /// The URL's path, without a trailing `/`.
    pub path: String,
}

impl Endpoint {
    /// Parses `scheme://host[:port]/…` and resolves the host; `wrong_scheme` says why another
    /// scheme is refused.
    pub async fn parse(url: &str, scheme: &str, wrong_scheme: &str) -> Result<Self, ProbeError> {
        let bad = |why: &str| ProbeError::BadUrl {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        let uri: axum::http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some(scheme) {
            return Err(bad(wrong_scheme));
        }
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let address = tokio::net::lookup_host((host.as_str(), port))
            .await
            .ok()
            .and_then(|mut addresses| addresses.next())
            .ok_or_else(|| bad("cannot resolve the host"))?;
        Ok(Self {
            url: url.to_owned(),
            host,
            port,
            address,
            path: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// A device's page, `https://host[:port]/`.
    pub async fn device(url: &str) -> Result<Self, ProbeError> {
        Self::parse(url, "https", "the device serves https:// only").await
    }

    /// `host:port`, as the Host header wants it.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Opens TLS connections to one device.
#[derive(Clone)]
pub struct Connector {
    device: Endpoint,
    tls: TlsConnector,
    timeout: Duration,
}

/// A TLS client configuration that trusts the device as `trust` says and offers `alpn`.
pub fn tls_config(trust: Trust, alpn: &[&str]) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(DeviceCertificate {
        trust,
        provider: Arc::clone(&provider),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(config)
}

impl Connector {
    pub fn new(device: Endpoint, trust: Trust, timeout: Duration) -> Result<Self, ProbeError> {
        let config = tls_config(trust, &[]).map_err(|e| ProbeError::Tls {
            url: device.url.clone(),
            why: e.to_string(),
        })?;
        Ok(Self {
            device,
            tls: TlsConnector::from(Arc::new(config)),
            timeout,
        })
    }

    pub fn device(&self) -> &Endpoint {
        &self.device
    }

    async fn connect(&self) -> Result<TlsStream<TcpStream>, ProbeError> {
        let device = &self.device;
        let unreachable = |why: String| ProbeError::Unreachable {
            url: device.url.clone(),
            why,
        };
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(device.address))
            .await
            .map_err(|_| unreachable(format!("no answer within {:?}", self.timeout)))?
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let name = match device.host.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(device.host.clone())
                .map_err(|_| unreachable("the host is not a valid server name".into()))?,
        };
        tokio::time::timeout(self.timeout, self.tls.connect(name, tcp))
            .await
            .map_err(|_| unreachable("TLS handshake timed out".into()))?
            .map_err(|e| ProbeError::Tls {
                url: device.url.clone(),
                why: e.to_string(),
            })
    }

    /// Logs in with the password and returns the session cookie (`name=value`), or `None` when
    /// the device does not ask for a password.
    pub async fn log_in(&self, password: &str) -> Result<Option<String>, ProbeError> {
        let body = format!("password={}", form_encode(password));
        let reply = self
            .http(
                "POST",
                "/login",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                &body,
            )
            .await?;
        login_outcome(&reply)
    }

    /// One HTTP/1.1 request on a connection of its own (`Connection: close`).
    pub async fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<HttpReply, ProbeError> {
        let mut stream = self.connect().await?;
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.device.authority(),
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        let mut response = Vec::new();
        let exchange = async {
            stream.write_all(request.as_bytes()).await?;
            stream.read_to_end(&mut response).await
        };
        let unreachable = |why: String| ProbeError::Unreachable {
            url: self.device.url.clone(),
            why,
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(_)) => {}
            // A server may close without close_notify after `Connection: close`.
            Ok(Err(e)) if !response.is_empty() => log::debug!("{method} {path} ended: {e}"),
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Err(_) => {
                return Err(unreachable(format!(
                    "{method} {path} did not answer in time"
                )));
            }
        }
        HttpReply::parse(&String::from_utf8_lossy(&response)).ok_or_else(|| {
            ProbeError::Signaling(format!("the answer to {method} {path} is not HTTP"))
        })
    }

    /// Opens the signaling WebSocket, with the session cookie when there is one.
    pub async fn signaling(&self, cookie: Option<&str>) -> Result<Signaling, ProbeError> {
        let stream = self.connect().await?;
        let url = format!("wss://{}/ws", self.device.authority());
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| ProbeError::Signaling(e.to_string()))?;
        if let Some(cookie) = cookie {
            let value = HeaderValue::from_str(cookie)
                .map_err(|_| ProbeError::Signaling("the session cookie is not a header".into()))?;
            request.headers_mut().insert(header::COOKIE, value);
        }
        let handshake = tokio_tungstenite::client_async(request, stream);
        match tokio::time::timeout(self.timeout, handshake).await {
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
                Err(match response.status().as_u16() {
                    401 => ProbeError::PasswordNeeded,
                    status => ProbeError::Signaling(format!("the device answered HTTP {status}")),
                })
            }
            Ok(Err(e)) => Err(ProbeError::Signaling(e.to_string())),
            Err(_) => Err(ProbeError::Signaling(
                "the WebSocket handshake timed out".into(),
            )),
        }
    }
}

/// An HTTP answer: status, headers and body (bodies here are small text).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    fn parse(response: &str) -> Option<Self> {
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((response, ""));
        let mut lines = head.split("\r\n");
        let status = lines
            .next()?
            .split_whitespace()
            .nth(1)?
            .parse::<u16>()
            .ok()?;
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        Some(Self {
            status,
            headers,
            body: body.to_owned(),
        })
    }

    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the login form's answer means.
fn login_outcome(reply: &HttpReply) -> Result<Option<String>, ProbeError> {
    let cookie = reply
        .header("set-cookie")
        .and_then(|value| value.split(';').next())
        .map(|pair| pair.trim().to_owned());
    match reply.status {
        303 | 302 | 200 => Ok(cookie),
        401 => Err(ProbeError::WrongPassword),
        429 => Err(ProbeError::TooManyLogins),
        other => Err(ProbeError::Signaling(format!(
            "the login answered HTTP {other}"
        ))),
    }
}

/// `application/x-www-form-urlencoded`, as a browser sends a form field.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// Accepts the device's certificate by its pinned fingerprint (or any, when asked), and still
/// checks that the handshake was signed by that certificate's key.
#[derive(Debug)]
struct DeviceCertificate {
    trust: Trust,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

fn normalise_fingerprint(fingerprint: &str) -> String {
    fingerprint
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

impl ServerCertVerifier for DeviceCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.trust {
            Trust::Anything => Ok(ServerCertVerified::assertion()),
            Trust::Pinned(expected) => {
                let seen = crate::tls::fingerprint(end_entity.as_ref());
                if normalise_fingerprint(&seen) == normalise_fingerprint(expected) {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(rustls::Error::General(format!(
                        "the device's certificate has fingerprint {seen}, not the pinned one"
                    )))
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_what_a_browser_escapes() {
        assert_eq!(form_encode("abc-XYZ_0.9*"), "abc-XYZ_0.9*");
        assert_eq!(form_encode("a b&c=d%"), "a+b%26c%3Dd%25");
        assert_eq!(form_encode("é"), "%C3%A9");
    }

    #[test]
    fn login_outcomes() {
        let outcome = |text: &str| login_outcome(&HttpReply::parse(text).unwrap());
        let ok = "HTTP/1.1 303 See Other\r\nlocation: /\r\nset-cookie: peercam_session=abc; Path=/; \
                  HttpOnly\r\n\r\n";
        assert_eq!(outcome(ok).unwrap(), Some("peercam_session=abc".to_owned()));
        let open = "HTTP/1.1 303 See Other\r\nlocation: /\r\n\r\n";
        assert_eq!(outcome(open).unwrap(), None);
        assert!(matches!(
            outcome("HTTP/1.1 401 Unauthorized\r\n\r\nWrong password."),
            Err(ProbeError::WrongPassword)
        ));
        assert!(matches!(
            outcome("HTTP/1.1 429 Too Many Requests\r\n\r\n"),
            Err(ProbeError::TooManyLogins)
        ));
        assert!(HttpReply::parse("garbage").is_none());
    }

    #[test]
    fn replies_keep_headers_and_body() {
        let reply = HttpReply::parse(
            "HTTP/1.1 201 Created\r\nLocation: /whep/abc\r\nLink: <stun:x>; rel=\"ice-server\"\r\n\r\nv=0\r\n",
        )
        .unwrap();
        assert_eq!(reply.status, 201);
        assert_eq!(reply.header("location"), Some("/whep/abc"));
        assert_eq!(reply.body, "v=0\r\n");
    }

    #[test]
    fn fingerprints_compare_without_colons_or_case() {
        assert_eq!(
            normalise_fingerprint("ab:CD:0f"),
            normalise_fingerprint("ABCD0F")
        );
    }

    #[tokio::test]
    async fn urls_must_be_https_with_a_host() {
        assert!(Endpoint::device("http://127.0.0.1:8080/").await.is_err());
        assert!(Endpoint::device("not a url").await.is_err());
        let device = Endpoint::device("https://127.0.0.1:8443/").await.unwrap();
        assert_eq!(device.port, 8443);
        let janus = Endpoint::parse("http://127.0.0.1/janus/", "http", "")
            .await
            .unwrap();
        assert_eq!((janus.port, janus.path.as_str()), (80, "/janus"));
        let v6 = Endpoint::device("https://[::1]/").await.unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 443));
        assert_eq!(v6.authority(), "[::1]:443");
    }
}
