//! Media: the device's side of a call, one GStreamer pipeline ending in `webrtcbin`.
//!
//! One owner task (`run`) holds the current `Peer` and is the only code that changes it. The
//! room owner talks to it with `MediaCommand`s and hears back through `MediaEvent`s. GStreamer
//! callbacks never decide anything: they push a `Notice` tagged with their call id onto a
//! channel, and this task acts on it, dropping notices of calls that have already ended.
//!
//! Submodules: `plan` (pure: codec and encoder choice, launch descriptions), `devices` (what
//! `auto` means on this machine), `launch_check` (the config's launch lines), `peer` (one
//! call's pipeline), `bitrate` (pure: the adaptive bitrate controller), `link_stats` (the
//! caller's receiver reports out of webrtcbin's statistics), `encoder_control` (bitrate changes
//! and keyframe requests for a running encoder), `retransmission` (a budget for answering
//! NACKs), `talkback` (the caller's voice to the speaker), `send_latency` (encoder-to-socket
//! time of video frames, for `/metrics`).

pub mod bitrate;
mod devices;
mod encoder_control;
mod health;
mod launch_check;
mod link_stats;
mod peer;
pub mod plan;
mod retransmission;
pub mod send_latency;
mod talkback;

use std::net::IpAddr;
use std::sync::Arc;

use thiserror::Error;
use tokio::sync::mpsc;

use crate::config::{AUTO, IceConfig, MediaConfig};
use crate::metrics::Metrics;
use crate::rooms::{CallId, Input};
use crate::signaling::IceCandidate;
use crate::turn::DeviceIce;

pub use health::MediaHealth;
pub use launch_check::{Strictness, validate_launch_lines};
pub use peer::Notice;

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

/// What the room owner asks of the media owner.
#[derive(Debug)]
pub enum MediaCommand {
    Start {
        call: CallId,
        codecs: Vec<String>,
        ice: DeviceIce,
    },
    End {
        call: CallId,
    },
    Answer {
        call: CallId,
        sdp: String,
    },
    Candidate {
        call: CallId,
        candidate: IceCandidate,
    },
    /// Stop any call's pipeline and answer on `done`.
    Shutdown {
        done: tokio::sync::oneshot::Sender<()>,
    },
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
    Ok(())
}

/// Builds a call's pipeline once and throws it away, so that plugin loading, encoder set-up and
/// the DTLS certificate are paid for before the first caller rather than during its call.
pub fn warm_up(settings: &MediaSettings) {
    let started = std::time::Instant::now();
    let (notices, _ignored) = mpsc::unbounded_channel();
    // Its own counters: a rehearsal is not a call.
    let metrics = Arc::new(Metrics::default());
    match peer::Peer::start(0, settings, &[], &DeviceIce::default(), notices, metrics) {
        Ok(peer) => {
            let rehearsed = peer.rehearse_offer(std::time::Duration::from_secs(3));
            peer.stop();
            if rehearsed {
                log::info!("media warmed up in {} ms", started.elapsed().as_millis());
            } else {
                log::warn!("media warm-up made no offer; the first call may be slower");
            }
        }
        Err(e) => log::warn!("media warm-up failed: {e}"),
    }
}

/// A connected caller whose receiver reports say nothing new for this long has vanished (its
/// phone lost the network, or its browser froze): the call ends and the device is free. A
/// shorter blip keeps the call. Browsers report at least once a second or two during a call.
/// Before its first report a caller gets the connect timeout: on a lossy path DTLS may still
/// be retrying its handshake.
const CALLER_GONE: std::time::Duration = std::time::Duration::from_secs(6);

/// The media owner: runs until the command channel closes.
pub async fn run(
    settings: MediaSettings,
    mut commands: mpsc::UnboundedReceiver<MediaCommand>,
    room: mpsc::UnboundedSender<Input>,
    health_tx: mpsc::UnboundedSender<MediaHealth>,
    metrics: Arc<Metrics>,
) {
    let (notice_tx, mut notices) = mpsc::unbounded_channel::<(CallId, Notice)>();
    let mut current: Option<peer::Peer> = None;
    let mut health = health::SourceHealth::default();
    let mut stats_timer = tokio::time::interval(std::time::Duration::from_secs(1));
    stats_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let report = |update: MediaHealth| {
        let _ = health_tx.send(update);
    };
    let fail = |call: CallId, reason: String| {
        let _ = room.send(Input::PeerFailed { call, reason });
    };
    loop {
        let deadline = current
            .as_ref()
            .and_then(|p| p.connect_deadline(settings.connect_timeout));
        // Sources are probed again only while nobody is calling.
        let probe_at = health.next_probe().filter(|_| current.is_none());
        let probe_due = async {
            match probe_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let connect_timeout = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stats_timer.tick() => {
                let gone = current.as_ref().and_then(peer::Peer::caller_silence).and_then(
                    |(silence, reported)| if reported {
                        (silence > CALLER_GONE).then(|| format!(
                            "the caller stopped answering: no RTCP receiver report for {} s \
                             (a phone that lost its network or froze)",
                            CALLER_GONE.as_secs()
                        ))
                    } else {
                        (silence > settings.connect_timeout).then(|| format!(
                            "the caller never reported receiving media within {} s of \
                             connecting (DTLS or media blocked on the path)",
                            settings.connect_timeout.as_secs()
                        ))
                    },
                );
                if let Some(reason) = gone && let Some(peer) = current.take() {
                    let call = peer.call();
                    tokio::task::block_in_place(|| peer.stop());
                    fail(call, reason);
                } else if let Some(peer) = current.as_ref().filter(|p| p.wants_stats()) {
                    peer.request_stats();
                }
            }
            () = probe_due => {
                match tokio::task::block_in_place(|| health::probe_sources(&settings)) {
                    Ok(()) => {
                        if health.recovered() {
                            log::info!("camera and microphone work again");
                            report(MediaHealth::Available);
                        }
                    }
                    Err(reason) => {
                        let update = health.failed(reason, std::time::Instant::now());
                        log::warn!("media sources still unavailable: {update:?}");
                        report(update);
                    }
                }
            }
            () = connect_timeout => {
                if let Some(peer) = current.take() {
                    let call = peer.call();
                    tokio::task::block_in_place(|| peer.stop());
                    fail(call, format!(
                        "could not connect to the caller within {} s: no network path was found \
                         (with relay-only calls, check the TURN server and its credentials)",
                        settings.connect_timeout.as_secs()
                    ));
                }
            }
            command = commands.recv() => {
                let Some(command) = command else { break };
                match command {
                    MediaCommand::Start { call, codecs, ice } => {
                        if let Some(old) = current.take() {
                            tokio::task::block_in_place(|| old.stop());
                        }
                        let started = tokio::task::block_in_place(|| {
                            peer::Peer::start(call, &settings, &codecs, &ice, notice_tx.clone(), Arc::clone(&metrics))
                        });
                        match started {
                            Ok(peer) => current = Some(peer),
                            Err(e) => {
                                log::error!("call {call}: {e}");
                                if matches!(e, MediaError::Build { .. } | MediaError::StateChange(_)) {
                                    report(health.failed(e.to_string(), std::time::Instant::now()));
                                }
                                fail(call, e.to_string());
                            }
                        }
                    }
                    MediaCommand::End { call } => {
                        if let Some(peer) = current.take_if(|p| p.call() == call) {
                            tokio::task::block_in_place(|| peer.stop());
                        }
                    }
                    MediaCommand::Answer { call, sdp } => {
                        if let Some(peer) = current.as_mut().filter(|p| p.call() == call)
                            && let Err(e) = peer.set_answer(&sdp)
                        {
                            fail(call, e.to_string());
                        }
                    }
                    MediaCommand::Shutdown { done } => {
                        if let Some(peer) = current.take() {
                            tokio::task::block_in_place(|| peer.stop());
                        }
                        let _ = done.send(());
                    }
                    MediaCommand::Candidate { call, candidate } => {
                        if let Some(peer) = current.as_mut().filter(|p| p.call() == call) {
                            peer.add_candidate(&candidate);
                        }
                    }
                }
            }
            Some((call, notice)) = notices.recv() => {
                if let Some(peer) = current.as_mut().filter(|p| p.call() == call) {
                    let source_trouble = matches!(notice, Notice::Error(_) | Notice::Eos);
                    let connected = matches!(notice, Notice::IceState(_));
                    for input in peer.on_notice(notice) {
                        if let (true, Input::PeerFailed { reason, .. }) = (source_trouble, &input) {
                            report(health.failed(reason.clone(), std::time::Instant::now()));
                        }
                        let _ = room.send(input);
                    }
                    if connected && peer.is_connected() && health.recovered() {
                        report(MediaHealth::Available);
                    }
                }
            }
        }
    }
    if let Some(peer) = current.take() {
        peer.stop();
    }
}
