//! The media settings a running daemon uses: the config's `[media]` and `[ice]` with every
//! `auto` resolved to a concrete GStreamer description (by asking GStreamer which devices
//! exist), and the built-in test pattern.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;

use tokio::sync::watch;

use super::speaker::Speaker;
use super::{bitrate, devices};
use crate::config::{AUTO, IceConfig, MediaConfig, RemoteConfig};
use crate::reachability::Reachability;

/// Media settings with every `auto` resolved to a concrete GStreamer description.
#[derive(Debug, Clone)]
pub struct MediaSettings {
    pub video_source: String,
    /// The microphone; `None` when the device has none (video-only calls).
    pub audio_source: Option<String>,
    /// Where the caller's (or an NVR's) voice plays.
    pub speaker: Arc<Speaker>,
    /// A configured encoder launch line; `None` means probe for one.
    pub video_encoder: Option<String>,
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
    /// The adaptive bitrate's bounds (see `bitrate`).
    pub video_bitrate: bitrate::Bounds,
    pub audio_bitrate_kbps: u32,
    pub keyframe_interval: u32,
    /// How many encoders may run at once (`media.max_encoders`).
    pub max_encoders: usize,
    /// The tallest VP8 sent (`media.vp8_max_height`).
    pub vp8_max_height: u32,
    /// Local addresses for the ICE agent, besides those of the network interfaces.
    pub extra_ice_addresses: Vec<IpAddr>,
    /// How long a call may take to connect before it is given up.
    pub connect_timeout: std::time::Duration,
    /// The UDP ports calls use (`[remote] media_ports`); `None`: any.
    pub media_ports: Option<RangeInclusive<u16>>,
    /// The router's forwards of those ports, as port mapping last made them: each forwarded
    /// host candidate gets a server-reflexive twin at the router's external address.
    pub forwards: watch::Receiver<Reachability>,
}

impl MediaSettings {
    /// Resolves `auto` sources and sinks by asking GStreamer which devices exist.
    pub fn resolve(
        media: &MediaConfig,
        ice: &IceConfig,
        remote: &RemoteConfig,
        forwards: watch::Receiver<Reachability>,
    ) -> Self {
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
            speaker: Arc::new(Speaker::new(audio_sink.description)),
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
            max_encoders: media.max_encoders as usize,
            vp8_max_height: media.vp8_max_height,
            extra_ice_addresses: ice.local_addresses.clone(),
            connect_timeout: std::time::Duration::from_secs(ice.connect_timeout_seconds),
            media_ports: remote.media_port_range(),
            forwards,
        }
    }

    /// The built-in test pattern and tone at 720p30, with the caller's audio discarded.
    pub fn test_pattern() -> Self {
        Self {
            video_source: devices::TEST_VIDEO_SOURCE.into(),
            audio_source: Some(devices::TEST_AUDIO_SOURCE.into()),
            speaker: Arc::new(Speaker::new("fakesink")),
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
            max_encoders: 2,
            vp8_max_height: 360,
            extra_ice_addresses: vec![],
            connect_timeout: std::time::Duration::from_secs(15),
            media_ports: None,
            forwards: watch::channel(Reachability::default()).1,
        }
    }
}
