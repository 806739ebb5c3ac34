//! How the daemon is steered and how it ends: the commands it takes while running, how a
//! clean stop went, and why it could not start or stopped on its own.

use std::path::PathBuf;

use thiserror::Error;

use crate::auth::AuthError;
use crate::media::MediaError;
use crate::tls::TlsError;

/// Why the daemon could not start, or stopped on its own.
#[derive(Debug, Error)]
pub enum DaemonError {
    #[error("{0}")]
    Media(#[from] MediaError),
    #[error("{0}")]
    Certificate(#[from] TlsError),
    #[error("{0}")]
    Auth(#[from] AuthError),
    #[error("cannot listen for {what} on port {port}: {source}")]
    Bind {
        what: &'static str,
        port: u16,
        source: std::io::Error,
    },
    #[error("cannot start the STUN responder: {0}")]
    Stun(std::io::Error),
    #[error(transparent)]
    Rtsp(#[from] crate::rtsp::RtspError),
    /// A part that runs for the daemon's life ended.
    #[error("the {0} stopped")]
    PartStopped(&'static str),
}

/// What the running daemon is told to do.
#[derive(Debug, Clone)]
pub enum Command {
    /// Read this config file again and apply what can change without a restart.
    Reload { from: Option<PathBuf> },
    /// Hang up on everyone and return; `why` is logged.
    Stop { why: &'static str },
}

/// How a clean stop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// Every caller was told and the media owner stopped the pipeline and returned.
    Clean,
    /// The media owner did not stop within the grace period; the process should exit anyway.
    MediaStillStopping,
}
