//! The plain HTTP port answers every request with a redirect to the same path over HTTPS.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::Daemon;

#[test]
fn plain_http_redirects_to_https() {
    let daemon = Daemon::start("redirect");
    let mut stream = TcpStream::connect(("127.0.0.1", daemon.http_port)).expect("connect");
    stream
        .write_all(b"GET /call?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    assert!(response.starts_with("HTTP/1.1 308"), "{response}");
    let expected = format!("location: https://127.0.0.1:{}/call?x=1", daemon.https_port);
    assert!(
        response.to_ascii_lowercase().contains(&expected),
        "{response}"
    );
}
