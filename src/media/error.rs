//! Why media could not be set up or a peer could not be started: the error every part of
//! `media` returns, each naming what to install or change.

use thiserror::Error;

use super::plan;

#[derive(Debug, Error)]
pub enum MediaError {
    #[error(
        "GStreamer is missing element `{0}`; install the GStreamer plugin packages (see README)"
    )]
    MissingElement(&'static str),
    #[error("cannot build {what}: {reason}")]
    Build { what: &'static str, reason: String },
    #[error("{0}")]
    Plan(#[from] plan::PlanError),
    #[error("the pipeline would not start: {0}")]
    StateChange(String),
    #[error("the caller's answer is not valid SDP")]
    BadAnswer,
    #[error("{0}")]
    BadOffer(String),
    #[error("no encoder is sending {0}")]
    NotEncoding(super::plan::VideoCodec),
    #[error("{0}")]
    Descriptors(#[from] crate::descriptors::Exhausted),
    #[error("{field}: `{launch}` is not a usable GStreamer launch line: {reason}")]
    InvalidLaunch {
        field: &'static str,
        launch: String,
        reason: String,
    },
}

impl MediaError {
    /// Building `what` failed for `reason`.
    pub fn build(what: &'static str, reason: impl std::fmt::Display) -> Self {
        Self::Build {
            what,
            reason: reason.to_string(),
        }
    }
}
