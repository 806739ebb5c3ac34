//! The configuration file: one TOML document, every field optional.
//!
//! `Config::default()` is the built-in default that runs on a laptop with no camera (the media
//! sources are `auto`: a camera and microphone when GStreamer finds them, else a test pattern and
//! a tone). Parsing is pure (`Config::parse`) so errors can be tested without files; every error
//! names the offending field and, where the field is in the file, its line.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::signaling::TransportPolicy;

/// The whole configuration. Unknown fields are errors, so a typo never silently does nothing.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `password` (the default: only the owner can watch) or `none` (anyone on the network;
    /// for a lab bench only, warned about at every start).
    pub auth: AuthMode,
    /// `error`, `warn`, `info`, `debug` or `trace`; `RUST_LOG` wins when set.
    pub log_level: Option<String>,
    /// Where the generated certificate lives; `--state-dir` wins when given.
    pub state_dir: Option<PathBuf>,
    pub http: HttpConfig,
    pub media: MediaConfig,
    pub ice: IceConfig,
    pub signaling: SignalingConfig,
    pub rooms: RoomsConfig,
    pub watchers: WatchersConfig,
    pub stun: StunConfig,
    pub turn: TurnConfig,
    pub login: LoginConfig,
    pub remote: RemoteConfig,
    pub rtsp: RtspConfig,
    pub motion: MotionConfig,
    pub mqtt: MqttConfig,
    pub recording: RecordingConfig,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    #[default]
    Password,
    None,
}

/// Sessions and the brute-force cap.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LoginConfig {
    pub session_hours: u64,
    /// Failed logins one address may make within `failure_window_seconds`.
    pub max_failures: usize,
    pub failure_window_seconds: u64,
    /// Minutes the pairing link works after start, while no password is set (it works once).
    pub pairing_minutes: u64,
    /// Let browsers without a session use the browser-to-browser rooms (never the device).
    pub open_rooms: bool,
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            session_hours: 24 * 7,
            max_failures: 5,
            failure_window_seconds: 60,
            pairing_minutes: 30,
            open_rooms: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address both listeners bind; `::` also accepts IPv4 on Linux.
    pub bind: IpAddr,
    /// HTTPS port for the page and the WebSocket; 0 picks a free port.
    pub https_port: u16,
    /// Plain HTTP port that only redirects to HTTPS; 0 picks a free port.
    pub http_port: u16,
    /// Whether the plain HTTP redirect listener runs at all.
    pub redirect: bool,
    /// PEM certificate chain; with `private_key`, replaces the generated self-signed one.
    pub certificate: Option<PathBuf>,
    pub private_key: Option<PathBuf>,
    /// Connections one source address (an IPv6 host: its /64) may hold open at once, HTTPS and
    /// redirect together.
    pub connections_per_address: usize,
    /// Connections open at once over both listeners; when all are taken, a new one takes the
    /// place of the oldest idle one. `None`: a quarter of the descriptors the daemon may open
    /// (at most 512), so the rest stay free for calls and viewers.
    pub max_connections: Option<usize>,
    /// Seconds a connection may sit between requests before it is closed.
    pub idle_timeout_seconds: u64,
    /// Seconds a client may take for the TLS handshake.
    pub handshake_timeout_seconds: u64,
    /// Seconds a client may take to send a request's headers (against slowloris).
    pub header_read_timeout_seconds: u64,
    /// Seconds without any frame (pings are answered by browsers) before a WebSocket is closed.
    pub websocket_idle_timeout_seconds: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::from([0u16; 8]),
            https_port: 8443,
            http_port: 8080,
            redirect: true,
            certificate: None,
            private_key: None,
            connections_per_address: 64,
            max_connections: None,
            idle_timeout_seconds: 60,
            handshake_timeout_seconds: 10,
            header_read_timeout_seconds: 10,
            websocket_idle_timeout_seconds: 75,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// `auto` (first camera GStreamer finds, else a test pattern) or GStreamer launch syntax.
    pub video_source: String,
    /// `auto` (first microphone, else a tone), GStreamer launch syntax, or `none` for a camera
    /// without a microphone: calls then carry video only (the caller's voice still plays).
    pub audio_source: String,
    /// Where the caller's voice plays: `auto` (first speaker, else discarded) or launch syntax.
    pub audio_sink: String,
    /// `auto` (probe hardware, then software encoders), launch syntax producing H.264, or
    /// `none` when `video_source` already produces H.264 (a camera's own encoder, RTP, a file).
    pub video_encoder: String,
    pub width: u32,
    pub height: u32,
    /// The most frames per second sent: a faster camera is thinned to it, a slower one keeps
    /// its own rate.
    pub framerate: u32,
    /// The most video bitrate a call may use; the adaptive bitrate starts lower and grows to it
    /// while the caller's network carries it.
    pub video_bitrate_kbps: u32,
    /// The least video bitrate the adaptive bitrate goes down to on a poor network.
    pub min_video_bitrate_kbps: u32,
    pub audio_bitrate_kbps: u32,
    /// Frames between natural keyframes; keyframe requests from the browser are answered at once.
    pub keyframe_interval: u32,
    /// How many encoders may run at once: 2 lets the owner call, from a browser that takes
    /// only another codec, while viewers keep watching (a second, software encoder on the same
    /// frames); 1 ends those viewers instead.
    pub max_encoders: u32,
    /// VP8 (software-encoded, for browsers without H.264) is sent at most this tall, scaled
    /// from the camera's frames: 360 keeps a Pi Zero 2 W's core under 60% at 30 fps
    /// (docs/benchmarks.md, "VP8 on the board's core").
    pub vp8_max_height: u32,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            video_source: AUTO.into(),
            audio_source: AUTO.into(),
            audio_sink: AUTO.into(),
            video_encoder: AUTO.into(),
            width: 1280,
            height: 720,
            framerate: 30,
            video_bitrate_kbps: 2000,
            min_video_bitrate_kbps: 150,
            audio_bitrate_kbps: 48,
            keyframe_interval: 60,
            max_encoders: 2,
            vp8_max_height: 360,
        }
    }
}

/// `[rtsp]`: the RTSP server for NVRs and home systems (docs/home-systems.md).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RtspConfig {
    /// Off by default: RTSP is for the home network, and plain (not encrypted).
    pub enabled: bool,
    /// 8554, as go2rtc and mediamtx use.
    pub port: u16,
    /// RTSP sessions at once (each NVR keeps one open around the clock).
    pub max_clients: u32,
}

impl Default for RtspConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            port: 8554,
            max_clients: 4,
        }
    }
}

/// `[motion]`: motion events from the camera's frames (docs/home-systems.md).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MotionConfig {
    /// Off by default: watching for motion keeps the camera on around the clock.
    pub enabled: bool,
    /// How much a spot's brightness (0-255) must change to count as moved.
    pub threshold: u32,
    /// How much of the picture (percent) must move for motion.
    pub min_area_percent: f64,
    /// Frames compared a second.
    pub checks_per_second: u32,
    /// Motion ends after this long without any.
    pub quiet_seconds: u32,
}

impl Default for MotionConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            threshold: 25,
            min_area_percent: 1.0,
            checks_per_second: 5,
            quiet_seconds: 5,
        }
    }
}

/// `[recording]`: MP4 segments of the camera on the device's own storage
/// (docs/home-systems.md).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingConfig {
    pub enabled: bool,
    /// `motion` (needs `[motion] enabled`) or `continuous`.
    pub mode: RecordingMode,
    /// Where segments go; empty: `recordings/` in the state directory.
    pub path: PathBuf,
    /// Each segment's length (a segment ends at the first keyframe after it).
    pub segment_seconds: u32,
    /// With `mode = "motion"`: the seconds before the motion kept with it.
    pub pre_roll_seconds: u32,
    /// Segments older than this are deleted.
    pub max_age_days: u32,
    /// The oldest segments are deleted to keep this much free on the disk; none is written
    /// below it.
    pub min_free_mb: u64,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RecordingMode {
    #[default]
    Motion,
    Continuous,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            mode: RecordingMode::Motion,
            path: PathBuf::new(),
            segment_seconds: 60,
            pre_roll_seconds: 5,
            max_age_days: 7,
            min_free_mb: 400,
        }
    }
}

/// `[mqtt]`: motion to an MQTT broker, with Home Assistant's discovery (docs/home-systems.md).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// The broker, `host` or `host:port` (1883); empty: no MQTT.
    pub broker: String,
    pub username: String,
    pub password: String,
    /// The device's topics: `<topic_prefix>/<device>/motion` and `.../availability`.
    pub topic_prefix: String,
    /// Home Assistant's discovery prefix; empty: no discovery message.
    pub discovery_prefix: String,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            broker: String::new(),
            username: String::new(),
            password: String::new(),
            topic_prefix: "peercam".into(),
            discovery_prefix: "homeassistant".into(),
        }
    }
}

impl MqttConfig {
    /// The broker's host and port, when one is set.
    pub fn broker_address(&self) -> Result<Option<(String, u16)>, String> {
        let broker = self.broker.trim();
        if broker.is_empty() {
            return Ok(None);
        }
        let (host, port) = match broker.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') || host.ends_with(']') => (
                host.trim_start_matches('[').trim_end_matches(']'),
                port.parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| format!("`{port}` is not a port number"))?,
            ),
            _ => (broker.trim_start_matches('[').trim_end_matches(']'), 1883),
        };
        if host.is_empty() || host.contains(['/', ' ']) {
            return Err(format!("`{broker}` is not host or host:port"));
        }
        Ok(Some((host.to_owned(), port)))
    }
}

/// The value that asks peercam to choose for itself.
pub const AUTO: &str = "auto";

/// `media.video_encoder` when the video source is already H.264.
pub const PRE_ENCODED: &str = "none";

/// `media.audio_source` of a device without a microphone.
pub const NO_AUDIO: &str = "none";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IceConfig {
    /// Extra local addresses for the device's ICE agent. libnice skips loopback by default, so a
    /// same-machine test adds `127.0.0.1` here.
    pub local_addresses: Vec<IpAddr>,
    /// `all`, or `relay` to send every call through TURN (privacy, testing).
    #[serde(alias = "ice_transport_policy")]
    pub transport_policy: TransportPolicy,
    /// Static STUN/TURN servers handed to callers and used by the device.
    pub servers: Vec<IceServerConfig>,
    /// A call that has not connected after this long is ended with a clear reason.
    pub connect_timeout_seconds: u64,
}

impl Default for IceConfig {
    fn default() -> Self {
        Self {
            local_addresses: Vec::new(),
            transport_policy: TransportPolicy::default(),
            servers: Vec::new(),
            connect_timeout_seconds: 15,
        }
    }
}

/// One static ICE server, as in `RTCIceServer` (TURN with coturn's `user=name:password`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IceServerConfig {
    pub urls: Vec<String>,
    pub username: Option<String>,
    pub credential: Option<String>,
}

/// The device's own STUN responder.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StunConfig {
    pub enabled: bool,
    pub bind: IpAddr,
    /// UDP port; 0 picks a free one.
    pub port: u16,
    /// Answers per second per source address, after a burst.
    pub rate_per_second: u32,
    pub burst: u32,
}

impl Default for StunConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: IpAddr::from([0u16; 8]),
            port: 3478,
            rate_per_second: 20,
            burst: 40,
        }
    }
}

/// coturn's shared secret (`use-auth-secret`, `static-auth-secret=`): the device mints
/// short-lived TURN credentials for every call.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TurnConfig {
    /// e.g. `["turn:turn.example.com:3478?transport=udp"]`
    pub urls: Vec<String>,
    pub secret: Option<String>,
    /// How long minted credentials stay valid.
    pub lifetime_seconds: u64,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            secret: None,
            lifetime_seconds: 86_400,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SignalingConfig {
    /// Largest signaling message accepted; larger ones get an `error` reply.
    pub max_message_bytes: usize,
}

impl Default for SignalingConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
        }
    }
}

/// Caps on the browser-to-browser rooms, so one client cannot fill the server.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RoomsConfig {
    /// Rooms in which one source address may have a member at the same time.
    pub rooms_per_address: usize,
    /// Room memberships one source address may hold at the same time.
    pub members_per_address: usize,
    /// Named rooms in all.
    pub total_rooms: usize,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        Self {
            rooms_per_address: 16,
            members_per_address: 32,
            total_rooms: 1000,
        }
    }
}

/// Receive-only viewers (WHEP) beside the caller, all on the one encoder.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WatchersConfig {
    /// Viewers at the same time; one more is refused with 503 (docs/watching.md).
    pub max: usize,
}

impl Default for WatchersConfig {
    fn default() -> Self {
        Self { max: 4 }
    }
}

/// Reaching the device from outside the home (README "Calling from outside").
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteConfig {
    /// Ask the home router (UPnP-IGD, NAT-PMP or PCP) to forward the HTTPS port, the STUN
    /// port and `media_ports` to the device, with short leases renewed while it runs and
    /// deleted when it stops. Off by default: it opens the router to the internet.
    pub port_mapping: bool,
    /// The UDP ports calls use, `"first-last"` (for a forward made by hand, or by
    /// `port_mapping`, whose default is `DEFAULT_MEDIA_PORTS`). Unset and without
    /// `port_mapping`: any free port, as the system gives.
    pub media_ports: Option<String>,
    /// How long the router keeps a forward unless it is renewed (at half of it): a device
    /// that crashes or loses power leaves nothing open for longer.
    pub lease_seconds: u64,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        Self {
            port_mapping: false,
            media_ports: None,
            lease_seconds: 600,
        }
    }
}

/// The media ports `port_mapping` forwards when `media_ports` is not set: one per call or
/// viewer, with room for a resumed call beside the one it replaces.
pub const DEFAULT_MEDIA_PORTS: std::ops::RangeInclusive<u16> = 50000..=50019;

/// At most this many media ports: each is a mapping asked of the router one by one.
pub const MAX_MEDIA_PORTS: usize = 100;

impl RemoteConfig {
    /// The UDP ports calls use, if fixed (`media_ports`, or the default when mapping).
    pub fn media_port_range(&self) -> Option<std::ops::RangeInclusive<u16>> {
        match &self.media_ports {
            Some(text) => parse_port_range(text).ok(),
            None if self.port_mapping => Some(DEFAULT_MEDIA_PORTS),
            None => None,
        }
    }
}

/// `"50000-50019"` (or one port, `"50000"`): above 1023, first <= last, at most
/// `MAX_MEDIA_PORTS` ports.
fn parse_port_range(text: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
    let (first, last) = text.split_once('-').unwrap_or((text, text));
    let port = |part: &str| {
        part.trim()
            .parse::<u16>()
            .map_err(|_| format!("`{text}` is not a port range such as \"50000-50019\""))
    };
    let (first, last) = (port(first)?, port(last)?);
    if first < 1024 {
        return Err(format!(
            "{first} is a privileged port; use ports from 1024 up"
        ));
    }
    if first > last {
        return Err(format!("the range `{text}` ends before it starts"));
    }
    if usize::from(last - first) >= MAX_MEDIA_PORTS {
        return Err(format!(
            "{} ports is too many; at most {MAX_MEDIA_PORTS}",
            usize::from(last - first) + 1
        ));
    }
    Ok(first..=last)
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Syntax {
        origin: String,
        line: Option<usize>,
        message: String,
    },
    #[error("{origin}{}: field `{field}`: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Field {
        origin: String,
        field: String,
        line: Option<usize>,
        message: String,
    },
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates TOML text; `origin` names the source in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let document = toml_edit::ImDocument::parse(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            line: e.span().map(|span| line_at(text, span.start)),
            message: e.message().trim().to_owned(),
        })?;
        let config: Config = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| {
                let field = e.path().to_string();
                let line = e
                    .inner()
                    .span()
                    .map(|span| line_at(text, span.start))
                    .or_else(|| line_of_field(&document, &field, text));
                ConfigError::Field {
                    origin: origin.to_owned(),
                    field: readable_path(&field),
                    line,
                    message: e.inner().message().trim().to_owned(),
                }
            })?;
        config
            .validate()
            .map_err(|(field, message)| ConfigError::Field {
                origin: origin.to_owned(),
                line: line_of_field(&document, field, text),
                field: field.to_owned(),
                message,
            })?;
        Ok(config)
    }

    /// Checks the values the types alone cannot: returns the field and what is wrong with it.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        let m = &self.media;
        let in_range = |field, value: u32, low: u32, high: u32| {
            if (low..=high).contains(&value) {
                Ok(())
            } else {
                Err((field, format!("{value} is out of range {low}..={high}")))
            }
        };
        in_range("media.width", m.width, 16, 7680)?;
        in_range("media.height", m.height, 16, 4320)?;
        if !m.width.is_multiple_of(2) || !m.height.is_multiple_of(2) {
            let field = if !m.width.is_multiple_of(2) {
                "media.width"
            } else {
                "media.height"
            };
            return Err((field, "must be even for 4:2:0 video".into()));
        }
        in_range("media.framerate", m.framerate, 1, 120)?;
        in_range("media.video_bitrate_kbps", m.video_bitrate_kbps, 50, 50_000)?;
        in_range(
            "media.min_video_bitrate_kbps",
            m.min_video_bitrate_kbps,
            50,
            m.video_bitrate_kbps,
        )?;
        in_range("media.audio_bitrate_kbps", m.audio_bitrate_kbps, 6, 510)?;
        in_range("media.keyframe_interval", m.keyframe_interval, 1, 10_000)?;
        in_range("media.max_encoders", m.max_encoders, 1, 2)?;
        in_range("media.vp8_max_height", m.vp8_max_height, 16, 4320)?;
        in_range("rtsp.max_clients", self.rtsp.max_clients, 1, 64)?;
        if self.rtsp.port == 0 {
            return Err(("rtsp.port", "must be a port number, 1 to 65535".into()));
        }
        in_range("motion.threshold", self.motion.threshold, 1, 254)?;
        let broker = self.mqtt.broker_address().map_err(|e| ("mqtt.broker", e))?;
        if broker.is_some() && !self.motion.enabled {
            return Err((
                "mqtt.broker",
                "MQTT carries motion events: it needs [motion] enabled = true".into(),
            ));
        }
        for (field, topic) in [
            ("mqtt.topic_prefix", &self.mqtt.topic_prefix),
            ("mqtt.discovery_prefix", &self.mqtt.discovery_prefix),
        ] {
            if topic.contains(['#', '+']) || topic.starts_with('/') || topic.ends_with('/') {
                return Err((
                    field,
                    "a topic without `#`, `+` or a leading or trailing `/`".into(),
                ));
            }
        }
        in_range(
            "recording.segment_seconds",
            self.recording.segment_seconds,
            2,
            3600,
        )?;
        in_range(
            "recording.pre_roll_seconds",
            self.recording.pre_roll_seconds,
            0,
            30,
        )?;
        in_range(
            "recording.max_age_days",
            self.recording.max_age_days,
            1,
            3650,
        )?;
        if self.recording.enabled
            && self.recording.mode == RecordingMode::Motion
            && !self.motion.enabled
        {
            return Err((
                "recording.mode",
                "`motion` needs [motion] enabled = true (or mode = \"continuous\")".into(),
            ));
        }
        if self.mqtt.topic_prefix.is_empty() {
            return Err(("mqtt.topic_prefix", "must not be empty".into()));
        }
        in_range(
            "motion.checks_per_second",
            self.motion.checks_per_second,
            1,
            15,
        )?;
        in_range("motion.quiet_seconds", self.motion.quiet_seconds, 1, 3600)?;
        let area = self.motion.min_area_percent;
        if !(area > 0.0 && area <= 100.0) {
            return Err((
                "motion.min_area_percent",
                format!("{area} is out of range: more than 0, at most 100"),
            ));
        }
        for (field, value) in [
            ("media.video_source", &m.video_source),
            ("media.audio_source", &m.audio_source),
            ("media.audio_sink", &m.audio_sink),
            ("media.video_encoder", &m.video_encoder),
        ] {
            if value.trim().is_empty() {
                return Err((field, "must be `auto` or a GStreamer launch line".into()));
            }
        }
        if self.signaling.max_message_bytes < 1024 || self.signaling.max_message_bytes > 1 << 20 {
            return Err((
                "signaling.max_message_bytes",
                "must be between 1024 and 1048576".into(),
            ));
        }
        for (field, value) in [
            ("rooms.rooms_per_address", self.rooms.rooms_per_address),
            ("rooms.members_per_address", self.rooms.members_per_address),
            ("rooms.total_rooms", self.rooms.total_rooms),
        ] {
            if value == 0 {
                return Err((field, "must be at least 1".into()));
            }
        }
        self.validate_ice()?;
        if self.login.session_hours == 0 || self.login.max_failures == 0 {
            return Err((
                "login",
                "session_hours and max_failures must be at least 1".into(),
            ));
        }
        if self.login.pairing_minutes == 0 {
            return Err(("login.pairing_minutes", "must be at least 1".into()));
        }
        if self.login.failure_window_seconds == 0 {
            return Err(("login.failure_window_seconds", "must be at least 1".into()));
        }
        for (field, value, low) in [
            (
                "http.connections_per_address",
                self.http.connections_per_address as u64,
                1,
            ),
            (
                "http.max_connections",
                self.http.max_connections.unwrap_or(16) as u64,
                16,
            ),
            (
                "http.idle_timeout_seconds",
                self.http.idle_timeout_seconds,
                1,
            ),
            (
                "http.handshake_timeout_seconds",
                self.http.handshake_timeout_seconds,
                1,
            ),
            (
                "http.header_read_timeout_seconds",
                self.http.header_read_timeout_seconds,
                1,
            ),
            (
                "http.websocket_idle_timeout_seconds",
                self.http.websocket_idle_timeout_seconds,
                10,
            ),
        ] {
            if value < low {
                return Err((field, format!("must be at least {low}")));
            }
        }
        if self.http.certificate.is_some() != self.http.private_key.is_some() {
            return Err((
                "http.certificate",
                "`certificate` and `private_key` must be given together".into(),
            ));
        }
        if let Some(level) = &self.log_level
            && level.parse::<log::LevelFilter>().is_err()
        {
            return Err((
                "log_level",
                format!("`{level}` is not one of off, error, warn, info, debug, trace"),
            ));
        }
        Ok(())
    }
}

impl Config {
    fn validate_ice(&self) -> Result<(), (&'static str, String)> {
        let is_turn = |url: &str| url.starts_with("turn:") || url.starts_with("turns:");
        let is_stun = |url: &str| url.starts_with("stun:") || url.starts_with("stuns:");
        for server in &self.ice.servers {
            if server.urls.is_empty() {
                return Err(("ice.servers", "a server needs at least one URL".into()));
            }
            if let Some(bad) = server.urls.iter().find(|u| !is_turn(u) && !is_stun(u)) {
                return Err((
                    "ice.servers",
                    format!("`{bad}` is not a stun:, stuns:, turn: or turns: URL"),
                ));
            }
            let needs_login = server.urls.iter().any(|u| is_turn(u));
            if needs_login && (server.username.is_none() || server.credential.is_none()) {
                return Err((
                    "ice.servers",
                    "a TURN server needs `username` and `credential`".into(),
                ));
            }
        }
        if let Some(bad) = self.turn.urls.iter().find(|u| !is_turn(u)) {
            return Err(("turn.urls", format!("`{bad}` is not a turn: or turns: URL")));
        }
        if self.turn.secret.is_some() && self.turn.urls.is_empty() {
            return Err(("turn.urls", "`secret` is set but no TURN URL is".into()));
        }
        if self.turn.secret.as_deref() == Some("") {
            return Err(("turn.secret", "must not be empty".into()));
        }
        if !(1..=300).contains(&self.ice.connect_timeout_seconds) {
            return Err((
                "ice.connect_timeout_seconds",
                "must be between 1 and 300".into(),
            ));
        }
        if self.turn.lifetime_seconds == 0 {
            return Err(("turn.lifetime_seconds", "must be at least 1".into()));
        }
        if self.stun.enabled && self.stun.burst == 0 {
            return Err(("stun.burst", "must be at least 1".into()));
        }
        if !(30..=86_400).contains(&self.remote.lease_seconds) {
            return Err((
                "remote.lease_seconds",
                "must be between 30 and 86400".into(),
            ));
        }
        if let Some(text) = &self.remote.media_ports {
            parse_port_range(text).map_err(|message| ("remote.media_ports", message))?;
        }
        Ok(())
    }
}

/// A field path as the owner would write it: an empty key (`'' = 1`, which TOML allows) is
/// shown as `""` rather than vanishing from the path (found by the config fuzzer).
fn readable_path(path: &str) -> String {
    path.split('.')
        .map(|key| if key.is_empty() { "\"\"" } else { key })
        .collect::<Vec<_>>()
        .join(".")
}

/// 1-based line number of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

/// Line of a dotted field path such as `media.width`, when the key is present in the file.
fn line_of_field(document: &toml_edit::ImDocument<&str>, field: &str, text: &str) -> Option<usize> {
    let mut table: &dyn toml_edit::TableLike = document.as_table();
    let mut span = None;
    for part in field.split('.') {
        let (key, item) = table.get_key_value(part)?;
        span = key.span().or_else(|| item.span());
        match item.as_table_like() {
            Some(inner) => table = inner,
            None => break,
        }
    }
    span.map(|s| line_at(text, s.start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_error(text: &str) -> (String, Option<usize>, String) {
        match Config::parse(text, "test.toml") {
            Err(ConfigError::Field {
                field,
                line,
                message,
                ..
            }) => (field, line, message),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(Config::parse("", "x").ok(), Some(Config::default()));
    }

    #[test]
    fn every_field_is_optional_per_section() {
        let config = Config::parse("[media]\nwidth = 640\n", "x").expect("valid");
        assert_eq!(config.media.width, 640);
        assert_eq!(config.media.height, 720);
        assert_eq!(config.http.https_port, 8443);
    }

    #[test]
    fn wrong_type_names_field_and_line() {
        let (field, line, message) = field_error("[http]\n\nhttps_port = \"high\"\n");
        assert_eq!(field, "http.https_port");
        assert_eq!(line, Some(3));
        assert!(message.contains("u16"), "{message}");
    }

    #[test]
    fn unknown_field_is_an_error_with_its_line() {
        let (field, line, message) = field_error("[media]\nwidth = 640\nwidht = 640\n");
        assert!(field.starts_with("media"), "{field}");
        assert_eq!(line, Some(3));
        assert!(message.contains("widht"), "{message}");
    }

    #[test]
    fn an_empty_key_is_named_in_the_error() {
        let (field, line, _) = field_error("'' = 'x'\n");
        assert_eq!(field, "\"\"");
        assert_eq!(line, Some(1));
        let (field, line, _) = field_error("[media]\n'' = 'x'\n");
        assert_eq!(field, "media.\"\"");
        assert_eq!(line, Some(2));
    }

    #[test]
    fn out_of_range_value_names_field_and_line() {
        let (field, line, _) = field_error("[media]\nframerate = 0\n");
        assert_eq!(field, "media.framerate");
        assert_eq!(line, Some(2));
        let (field, line, message) = field_error("[media]\nwidth = 640\nmax_encoders = 3\n");
        assert_eq!(field, "media.max_encoders");
        assert_eq!(line, Some(3));
        assert!(message.contains("1..=2"), "{message}");
        let (field, line, _) = field_error("[motion]\nenabled = true\nmin_area_percent = 0.0\n");
        assert_eq!(field, "motion.min_area_percent");
        assert_eq!(line, Some(3));
        let (field, _, _) = field_error("[motion]\nchecks_per_second = 60\n");
        assert_eq!(field, "motion.checks_per_second");
        let (field, _, message) = field_error("[mqtt]\nbroker = \"broker:1883\"\n");
        assert_eq!(field, "mqtt.broker");
        assert!(message.contains("[motion] enabled"), "{message}");
        let (field, _, _) = field_error("[motion]\nenabled = true\n[mqtt]\nbroker = \"b:x\"\n");
        assert_eq!(field, "mqtt.broker");
    }

    #[test]
    fn mqtt_brokers_are_host_and_port() {
        let broker = |text: &str| {
            MqttConfig {
                broker: text.into(),
                ..MqttConfig::default()
            }
            .broker_address()
        };
        assert_eq!(broker(""), Ok(None));
        assert_eq!(broker("ha.local"), Ok(Some(("ha.local".into(), 1883))));
        assert_eq!(broker("10.0.0.2:1884"), Ok(Some(("10.0.0.2".into(), 1884))));
        assert_eq!(broker("[::1]:1885"), Ok(Some(("::1".into(), 1885))));
        assert!(broker("ha.local:0").is_err());
        assert!(broker("mqtt://ha.local").is_err());
    }

    #[test]
    fn odd_width_is_rejected() {
        let (field, _, message) = field_error("[media]\nwidth = 641\n");
        assert_eq!(field, "media.width");
        assert!(message.contains("even"));
    }

    #[test]
    fn bad_address_names_the_field() {
        let (field, line, _) = field_error("[ice]\nlocal_addresses = [\"127.0.0.1\", \"nope\"]\n");
        assert!(field.starts_with("ice.local_addresses"), "{field}");
        assert_eq!(line, Some(2));
    }

    #[test]
    fn syntax_error_gives_a_line() {
        match Config::parse("[media\nwidth = 1\n", "x") {
            Err(ConfigError::Syntax { line, .. }) => assert_eq!(line, Some(1)),
            other => panic!("expected syntax error, got {other:?}"),
        }
    }

    #[test]
    fn ice_servers_and_turn_are_read() {
        let config = Config::parse(
            "[ice]\nice_transport_policy = \"relay\"\n\n[[ice.servers]]\nurls = [\"turn:t:3478\"]\n\
             username = \"u\"\ncredential = \"p\"\n\n[turn]\nurls = [\"turn:t:3478\"]\nsecret = \"s\"\n",
            "x",
        )
        .expect("valid");
        assert_eq!(config.ice.transport_policy, TransportPolicy::Relay);
        assert_eq!(config.ice.servers[0].username.as_deref(), Some("u"));
        assert_eq!(config.turn.secret.as_deref(), Some("s"));
    }

    #[test]
    fn turn_server_without_login_is_rejected() {
        let (field, line, message) = field_error("[[ice.servers]]\nurls = [\"turn:t:3478\"]\n");
        assert_eq!(field, "ice.servers");
        assert_eq!(line, Some(1));
        assert!(message.contains("username"));
    }

    #[test]
    fn bad_ice_url_and_policy_are_named() {
        let (field, _, message) = field_error("[[ice.servers]]\nurls = [\"http://x\"]\n");
        assert_eq!(field, "ice.servers");
        assert!(message.contains("http://x"));
        let (field, line, _) = field_error("[ice]\ntransport_policy = \"sometimes\"\n");
        assert_eq!(field, "ice.transport_policy");
        assert_eq!(line, Some(2));
    }

    #[test]
    fn certificate_without_key_is_rejected() {
        let (field, line, _) = field_error("[http]\ncertificate = \"/a.pem\"\n");
        assert_eq!(field, "http.certificate");
        assert_eq!(line, Some(2));
    }

    #[test]
    fn media_ports_are_a_range_and_default_only_when_mapping() {
        assert_eq!(Config::default().remote.media_port_range(), None);
        let mapping = Config::parse("[remote]\nport_mapping = true\n", "x").expect("valid");
        assert_eq!(mapping.remote.media_port_range(), Some(DEFAULT_MEDIA_PORTS));
        let set = Config::parse("[remote]\nmedia_ports = \"40000-40004\"\n", "x").expect("valid");
        assert_eq!(set.remote.media_port_range(), Some(40000..=40004));
        for (text, says) in [
            ("\"80-90\"", "privileged"),
            ("\"5000-4000\"", "ends before"),
            ("\"40000-49999\"", "too many"),
            ("\"forty\"", "not a port range"),
        ] {
            let (field, line, message) = field_error(&format!(
                "[remote]\nport_mapping = true\nmedia_ports = {text}\n"
            ));
            assert_eq!((field.as_str(), line), ("remote.media_ports", Some(3)));
            assert!(message.contains(says), "{message}");
        }
        let (field, line, _) = field_error("[remote]\nlease_seconds = 5\n");
        assert_eq!((field.as_str(), line), ("remote.lease_seconds", Some(2)));
    }
}
