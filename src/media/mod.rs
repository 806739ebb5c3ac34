//! Media: the device's side of a call, one GStreamer pipeline ending in `webrtcbin`.
//!
//! One owner task (`owner::run`) holds the shared source and every peer and is the only code
//! that changes them. The room owner and the web handlers talk to it with `media_link`'s
//! `MediaCommand`s; it reports the caller's peer to the room owner with `PeerReport`s.
//!
//! Submodules: `plan` (pure: codec and encoder choice, launch descriptions), `devices` (what
//! `auto` means on this machine), `launch_check` (the config's launch lines), `shared_source`
//! (one camera and encoder fanned out to every peer), `peer` (one peer's pipeline, an
//! `owned_pipeline` that stops when dropped),
//! `viewer_offer` (pure: a viewer's offer and what to answer), `snapshot` (a JPEG of the
//! latest frame), `bitrate` (pure: the adaptive bitrate controller), `link_stats` (receiver
//! reports out of webrtcbin's statistics), `encoder_control` (bitrate changes and keyframe
//! requests for a running encoder), `retransmission` (a budget for answering NACKs),
//! `srtp_encoder` (the `srtpenc` webrtcbin uses), `talkback` (the caller's voice to the
//! speaker), `send_latency` (encoder-to-socket time of video frames, for `/metrics`).

pub mod bitrate;
mod devices;
mod encoder_control;
mod health;
mod launch_check;
mod link_stats;
mod owned_pipeline;
mod owner;
mod peer;
pub mod plan;
mod retransmission;
pub mod send_latency;
mod shared_source;
pub mod snapshot;
pub mod srtp_encoder;
mod talkback;
pub mod viewer_offer;

use std::net::IpAddr;
use std::sync::Arc;

use thiserror::Error;
use tokio::sync::mpsc;

use crate::config::{AUTO, IceConfig, MediaConfig};
use crate::metrics::Metrics;
use crate::turn::DeviceIce;

pub use health::MediaHealth;
pub use launch_check::{Strictness, validate_launch_lines};
pub use owner::{Channels, run};

/// Media settings with every `auto` resolved to a concrete GStreamer description.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaSettings {
    pub video_source: String,
    /// The microphone; `None` when the device has none (video-only calls).
    pub audio_source: Option<String>,
    pub audio_sink: String,
    /// A configured encoder launch line; `None` means probe for one.
    pub video_encoder: Option<String>,
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
    /// The adaptive bitrate's bounds (see `bitrate`).
    pub video_bitrate: bitrate::Bounds,
    pub audio_bitrate_kbps: u32,
    pub keyframe_interval: u32,
    /// Local addresses for the ICE agent, besides those of the network interfaces.
    pub extra_ice_addresses: Vec<IpAddr>,
    /// How long a call may take to connect before it is given up.
    pub connect_timeout: std::time::Duration,
}

impl MediaSettings {
    /// Resolves `auto` sources and sinks by asking GStreamer which devices exist.
    pub fn resolve(media: &MediaConfig, ice: &IceConfig) -> Self {
        let video_source = devices::resolve_video_source(&media.video_source);
        let audio_source = devices::resolve_audio_source(&media.audio_source);
        let audio_sink = devices::resolve_audio_sink(&media.audio_sink);
        for (what, choice) in [
            ("video source", Some(&video_source)),
            ("audio source", audio_source.as_ref()),
            ("talkback sink", Some(&audio_sink)),
        ] {
            match choice {
                Some(choice) => log::info!("{what}: {} ({})", choice.description, choice.reason),
                None => log::info!("{what}: none (media.audio_source = \"none\"): video only"),
            }
        }
        Self {
            video_source: video_source.description,
            audio_source: audio_source.map(|choice| choice.description),
            audio_sink: audio_sink.description,
            video_encoder: (media.video_encoder != AUTO).then(|| media.video_encoder.clone()),
            width: media.width,
            height: media.height,
            framerate: media.framerate,
            video_bitrate: bitrate::Bounds {
                min_kbps: media.min_video_bitrate_kbps,
                max_kbps: media.video_bitrate_kbps,
            },
            audio_bitrate_kbps: media.audio_bitrate_kbps,
            keyframe_interval: media.keyframe_interval,
            extra_ice_addresses: ice.local_addresses.clone(),
            connect_timeout: std::time::Duration::from_secs(ice.connect_timeout_seconds),
        }
    }

    /// The built-in test pattern and tone at 720p30, with the caller's audio discarded.
    pub fn test_pattern() -> Self {
        Self {
            video_source: devices::TEST_VIDEO_SOURCE.into(),
            audio_source: Some(devices::TEST_AUDIO_SOURCE.into()),
            audio_sink: "fakesink".into(),
            video_encoder: None,
            width: 1280,
            height: 720,
            framerate: 30,
            video_bitrate: bitrate::Bounds {
                min_kbps: 150,
                max_kbps: 2000,
            },
            audio_bitrate_kbps: 48,
            keyframe_interval: 60,
            extra_ice_addresses: vec![],
            connect_timeout: std::time::Duration::from_secs(15),
        }
    }
}

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
    #[error("{0}")]
    Descriptors(#[from] crate::descriptors::Exhausted),
    #[error("{field}: `{launch}` is not a usable GStreamer launch line: {reason}")]
    InvalidLaunch {
        field: &'static str,
        launch: String,
        reason: String,
    },
}

/// Initialises GStreamer alone (enough to parse launch lines).
pub fn init_gstreamer() -> Result<(), MediaError> {
    gstreamer::init().map_err(|e| MediaError::Build {
        what: "GStreamer",
        reason: e.to_string(),
    })
}

/// Initialises GStreamer and checks, once, that the elements every call needs exist.
pub fn init() -> Result<(), MediaError> {
    init_gstreamer()?;
    for factory in peer::REQUIRED_ELEMENTS {
        if gstreamer::ElementFactory::find(factory).is_none() {
            return Err(MediaError::MissingElement(factory));
        }
    }
    srtp_encoder::register().map_err(|e| MediaError::Build {
        what: "the SRTP encoder",
        reason: e.to_string(),
    })?;
    Ok(())
}

/// Starts the camera and a call's pipeline once and throws them away, so that plugin loading,
/// encoder set-up and the DTLS certificate are paid for before the first caller rather than
/// during its call.
pub fn warm_up(settings: &MediaSettings) {
    let started = std::time::Instant::now();
    let (notices, _ignored) = mpsc::unbounded_channel();
    let (source_notices, _ignored_too) = mpsc::unbounded_channel();
    // Its own counters: a rehearsal is not a call.
    let metrics = Arc::new(Metrics::default());
    let rehearsal = plan::plan_video(settings, &[], |f| {
        gstreamer::ElementFactory::find(f).is_some()
    })
    .map_err(MediaError::from)
    .and_then(|plan| shared_source::SharedSource::start(settings, plan, source_notices, &metrics))
    .and_then(|source| {
        let peer = peer::Peer::start(
            peer::PeerId::Caller(0),
            settings,
            &source,
            peer::Role::Caller,
            &DeviceIce::default(),
            notices,
            metrics,
        );
        let rehearsed = peer.map(|peer| {
            let rehearsed = peer.rehearse_offer();
            peer.stop(Some(&source));
            rehearsed
        });
        source.stop();
        rehearsed
    });
    match rehearsal {
        Ok(true) => log::info!("media warmed up in {} ms", started.elapsed().as_millis()),
        Ok(false) => log::warn!("media warm-up made no offer; the first call may be slower"),
        Err(e) => log::warn!("media warm-up failed: {e}"),
    }
}
