//! A small HTTPS client for the tests that play a stranger or the owner: TLS from a chosen
//! source address (a loopback address of its own, so per-address limits see another host),
//! any ALPN, raw HTTP/1.1 requests, and a WebSocket on top.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

/// A TLS client configuration that offers `alpn` and trusts any certificate (the daemon's is
/// self-signed, and these tests are about other things): the probe's own.
pub fn tls_config(alpn: &[&str]) -> Arc<rustls::ClientConfig> {
    Arc::new(
        peercam::probe::client::tls_config(peercam::probe::Trust::Anything, alpn)
            .expect("TLS versions"),
    )
}

/// A TCP connection to `server` from `local` (any port).
pub async fn tcp_from(local: IpAddr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = if server.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(local, 0))?;
    socket.connect(server).await
}

/// A TLS connection to `server` from `local`, offering `alpn`.
pub async fn tls_from(
    local: IpAddr,
    server: SocketAddr,
    alpn: &[&str],
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = tcp_from(local, server).await?;
    let connector = tokio_rustls::TlsConnector::from(tls_config(alpn));
    let name = ServerName::IpAddress(server.ip().into());
    connector.connect(name, tcp).await
}

/// An HTTP/1.1 response as the tests look at it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// The header block, lower-cased names and all.
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim().eq_ignore_ascii_case(name)).then(|| value.trim().to_owned())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one HTTP/1.1 request over TLS from `local` (with `Connection: close`) and reads the
/// whole response; `None` when the connection fails or the answer takes over 20 s.
pub async fn request(
    local: IpAddr,
    server: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Response> {
    let exchange = async {
        let mut stream = tls_from(local, server, &["http/1.1"]).await.ok()?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\
             Content-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.ok()?;
        stream.write_all(body).await.ok()?;
        let mut raw = Vec::new();
        // A server may close without TLS's close_notify; what arrived is what counts.
        let _ = stream.read_to_end(&mut raw).await;
        parse(&raw)
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .ok()
        .flatten()
}

fn parse(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = unchunk(&body);
    }
    Some(Response { status, head, body })
}

fn unchunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = end + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

/// Logs in from `local` with `password`; the session cookie (`name=value`) on success.
pub async fn log_in(local: IpAddr, server: SocketAddr, password: &str) -> Option<String> {
    let body = format!("password={}", password.replace(' ', "+"));
    let response = request(
        local,
        server,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
    .await?;
    if response.status != 303 {
        return None;
    }
    response
        .header("set-cookie")?
        .split(';')
        .next()
        .map(str::to_owned)
}

/// A WebSocket to `/ws` from `local` with the session `cookie`, its Origin the device's own.
pub async fn websocket(
    local: IpAddr,
    server: SocketAddr,
    cookie: &str,
) -> Option<tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let stream = tls_from(local, server, &["http/1.1"]).await.ok()?;
    let mut request = format!("wss://{server}/ws").into_client_request().ok()?;
    let headers = request.headers_mut();
    headers.insert("cookie", cookie.parse().ok()?);
    headers.insert("origin", format!("https://{server}").parse().ok()?);
    let (socket, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .ok()?;
    Some(socket)
}
