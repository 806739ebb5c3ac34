//! Why a probe failed: each error names what the owner can do about it.

use std::time::Duration;

/// Why a probe failed: each names what the owner can do about it.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("`{url}` is not a device address: {why}")]
    BadUrl { url: String, why: String },
    #[error("cannot reach {url}: {why}")]
    Unreachable { url: String, why: String },
    #[error("TLS with {url} failed: {why}")]
    Tls { url: String, why: String },
    #[error("signaling failed: {0}")]
    Signaling(String),
    #[error("the device asks for a password: give it in PEERCAM_PASSWORD or with --password-file")]
    PasswordNeeded,
    #[error("the device refused the password")]
    WrongPassword,
    #[error("the device refuses logins from here for a while after too many wrong passwords")]
    TooManyLogins,
    #[error("the device is busy with another caller")]
    Busy,
    #[error("the device refused the call: {0}")]
    Refused(String),
    #[error("the device hung up: {0}")]
    HungUp(String),
    #[error("the device did not answer the call within {0:?}")]
    NoAnswer(Duration),
    #[error("no decodable video frame arrived within {0:?} of calling")]
    NoFrames(Duration),
    #[error("WebRTC: {0}")]
    WebRtc(String),
    #[error("cannot open a local socket: {0}")]
    Local(std::io::Error),
}
