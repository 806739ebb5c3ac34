//! GStreamer's RTSP server at `/camera`: Digest authentication from the `htdigest` file (read
//! again when it changes, so a new or revoked token counts from the next connection), a cap
//! on sessions, a keyframe for each client's PLAY, and the media fed by the media owner.
//!
//! The media's launch line starts each stream at an `appsrc`: the shared source's RTP packets
//! reach it through a pair of pads with no element (the kind a peer's `webrtcbin` is fed
//! through), are depayloaded and payloaded again for RTSP (its own sequence numbers, SSRC and
//! RTP-Info; no decoding or encoding), each frame's packets placed at the time they arrive on
//! the media's own clock.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_rtsp::RTSPAuthMethod;
use gstreamer_rtsp_server as rtsp_server;
use rtsp_server::prelude::*;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use super::digest;
use crate::config::RtspConfig;
use crate::media::Speaker;
use crate::media::feeds::{self, FeedCommand, FeedHandle};
use crate::metrics::Metrics;

/// The path NVR configurations are written against.
pub const PATH: &str = "/camera";
/// The role every authenticated user has: watch.
const ROLE: &str = "viewer";

#[derive(Debug, Error)]
pub enum RtspError {
    #[error("the RTSP server cannot listen on port {port}: {reason}")]
    Listen { port: u16, reason: String },
    #[error("the RTSP server has no {0}")]
    Missing(&'static str),
}

/// Where an NVR's talk goes: the device's speaker, counted in the metrics.
#[derive(Clone)]
pub struct Talk {
    pub speaker: Arc<Speaker>,
    pub metrics: Arc<Metrics>,
}

/// The ONVIF audio backchannel: G.711 mu-law at 8 kHz (what ONVIF's Profile T and NVRs'
/// talk buttons send), each RTP packet to the speaker as it comes.
const BACKCHANNEL: &str = "( capsfilter name=depay_backchannel \
    caps=\"application/x-rtp,media=audio,payload=0,clock-rate=8000,encoding-name=PCMU\" ! \
    appsink name=backchannel async=false sync=false max-buffers=50 drop=true )";
const BACKCHANNEL_BITS_PER_SECOND: u32 = 64_000;

/// The running server; it stops listening when dropped.
pub struct RtspServer {
    server: rtsp_server::RTSPOnvifServer,
    source: Option<glib::SourceId>,
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        if let Some(source) = self.source.take() {
            source.remove();
        }
        if let Some(pool) = self.server.session_pool() {
            pool.cleanup();
        }
    }
}

/// Who may watch: Digest from `file`, or anyone when the device has no login (`auth = "none"`).
pub enum Access {
    Digest { file: PathBuf },
    Open,
}

impl RtspServer {
    /// Listens on `config.port` (every IPv6 and IPv4 address) and serves `/camera` from `feeds`.
    pub fn start(
        config: &RtspConfig,
        has_audio: bool,
        access: Access,
        feeds: mpsc::UnboundedSender<FeedCommand>,
        talk: Talk,
    ) -> Result<Self, RtspError> {
        let server = rtsp_server::RTSPOnvifServer::new();
        server.set_service(&config.port.to_string());
        // Every address, IPv6 and IPv4 (one dual-stack socket).
        server.set_address("::");
        // GStreamer's default of 5 keeps connections waiting behind a burst (each retried by
        // the client's TCP seconds later); the cap below closes what is too many.
        server.set_backlog(MAX_CONNECTIONS as i32);
        let pool = server
            .session_pool()
            .ok_or(RtspError::Missing("session pool"))?;
        pool.set_max_sessions(config.max_clients);
        let factory = rtsp_server::RTSPOnvifMediaFactory::new();
        factory.set_launch(&launch(has_audio));
        // Shared by every client that does not talk back (GStreamer gives each talking client
        // a media of its own, fed from the same encoder).
        factory.set_shared(true);
        factory.set_media_gtype(rtsp_server::RTSPOnvifMedia::static_type());
        factory.set_backchannel_launch(Some(BACKCHANNEL));
        factory.set_backchannel_bandwidth(BACKCHANNEL_BITS_PER_SECOND);
        let keyframes: Arc<Mutex<Option<FeedHandle>>> = Arc::default();
        feed_each_media(factory.upcast_ref(), feeds, Arc::clone(&keyframes), talk);
        factory.add_role_from_structure(
            &gst::Structure::builder(ROLE)
                .field(rtsp_server::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                .field(rtsp_server::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                .build(),
        );
        match access {
            Access::Digest { file } => {
                let mut credentials = Credentials::new(file);
                server.set_auth(Some(&credentials.load()));
                let credentials = Arc::new(Mutex::new(credentials));
                // A new token counts from the next connection: the server gave the new client
                // its authenticator already, so a changed file goes to both.
                let at_connect = Arc::clone(&credentials);
                server.connect_client_connected(move |server, client| {
                    if let Ok(mut credentials) = at_connect.lock()
                        && credentials.changed()
                    {
                        let auth = credentials.load();
                        server.set_auth(Some(&auth));
                        client.set_auth(Some(&auth));
                    }
                });
                revoke_within_a_second(server.upcast_ref(), credentials);
            }
            Access::Open => {
                let open = rtsp_server::RTSPAuth::new();
                let mut anyone = viewer_token();
                open.set_default_token(Some(&mut anyone));
                server.set_auth(Some(&open));
            }
        }
        let connections = Arc::new(Mutex::new(Connections::default()));
        close_idle_connections(server.upcast_ref(), Arc::clone(&connections));
        server.connect_client_connected(move |_, client| {
            if !Connections::admit(&connections, client) {
                return;
            }
            let keyframes = Arc::clone(&keyframes);
            client.connect_play_request(move |_, _| {
                if let Ok(handle) = keyframes.lock()
                    && let Some(handle) = handle.as_ref()
                {
                    handle.request_keyframe();
                }
            });
        });
        server
            .mount_points()
            .ok_or(RtspError::Missing("mount points"))?
            .add_factory(PATH, factory);
        // `attach` says only that it failed; the socket it could not make says why.
        // A kernel without IPv6 has no `::`: IPv4 alone then.
        let source = server
            .attach(None)
            .or_else(|_| {
                server.set_address("0.0.0.0");
                server.attach(None)
            })
            .map_err(|e| RtspError::Listen {
                port: config.port,
                reason: server
                    .create_socket(rtsp_server::gio::Cancellable::NONE)
                    .err()
                    .map_or_else(|| e.to_string(), |why| why.to_string()),
            })?;
        log::info!(
            "RTSP on port {}: rtsp://<device>:{}{PATH} (up to {} clients)",
            config.port,
            config.port,
            config.max_clients
        );
        Ok(Self {
            server,
            source: Some(source),
        })
    }
}

/// TCP connections to the RTSP port at once: GLib accepts every connection, so without a cap
/// a flood would take the daemon's descriptors (the HTTPS side has the same kind of cap).
const MAX_CONNECTIONS: usize = 64;
/// A connection that has not set up a stream this long after it opened is closed (an NVR sets
/// up within a second; an idle one only holds a place).
const SETUP_WITHIN: Duration = Duration::from_secs(10);

/// The open RTSP connections, each with when it opened (by the client's address in memory).
#[derive(Default)]
struct Connections {
    opened: std::collections::HashMap<usize, Instant>,
}

impl Connections {
    /// Counts `client` in, or closes it at once when the cap is reached; it is counted out
    /// when it closes.
    fn admit(connections: &Arc<Mutex<Self>>, client: &rtsp_server::RTSPClient) -> bool {
        let key = client.as_ptr() as usize;
        let Ok(mut open) = connections.lock() else {
            client.close();
            return false;
        };
        if open.opened.len() >= MAX_CONNECTIONS {
            drop(open);
            log_refusal();
            client.close();
            return false;
        }
        open.opened.insert(key, Instant::now());
        drop(open);
        let connections = Arc::clone(connections);
        client.connect_closed(move |_| {
            if let Ok(mut open) = connections.lock() {
                open.opened.remove(&key);
            }
        });
        true
    }

    /// Whether `client` has been open longer than `SETUP_WITHIN` without a stream set up.
    fn idle_too_long(&self, client: &rtsp_server::RTSPClient) -> bool {
        self.opened
            .get(&(client.as_ptr() as usize))
            .is_some_and(|opened| opened.elapsed() > SETUP_WITHIN)
            && client.session_filter(None).is_empty()
    }
}

/// Says, at most once a minute, that RTSP connections were refused.
fn log_refusal() {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    if let Ok(mut last) = LAST.lock()
        && last.is_none_or(|at| at.elapsed() > Duration::from_secs(60))
    {
        *last = Some(Instant::now());
        log::warn!("RTSP: {MAX_CONNECTIONS} connections are open; more are refused");
    }
}

/// Once a second, on the server's main loop, closes the connections that set nothing up.
fn close_idle_connections(server: &rtsp_server::RTSPServer, connections: Arc<Mutex<Connections>>) {
    let server = server.downgrade();
    glib::timeout_add_seconds(1, move || {
        let Some(server) = server.upgrade() else {
            return glib::ControlFlow::Break;
        };
        // A copy: closing a client counts it out, under the lock.
        let Some(open) = connections.lock().ok().map(|open| Connections {
            opened: open.opened.clone(),
        }) else {
            return glib::ControlFlow::Continue;
        };
        server.client_filter(Some(&mut |_, client| {
            if open.idle_too_long(client) {
                rtsp_server::RTSPFilterResult::Remove
            } else {
                rtsp_server::RTSPFilterResult::Keep
            }
        }));
        glib::ControlFlow::Continue
    });
}

/// The media's launch line: each stream from an appsrc the feed fills. H.264 is handed to the
/// payloader as whole pictures, with SPS and PPS once before each IDR picture (a payloader
/// that adds them itself puts them between the slices of a multi-slice picture, which
/// recorders take for two pictures).
fn launch(has_audio: bool) -> String {
    let appsrc = "appsrc is-live=true format=time max-bytes=2000000 block=false \
                  leaky-type=downstream";
    let mut line = format!(
        "( {appsrc} name=video caps=\"{}\" ! rtph264depay ! h264parse config-interval=-1 ! \
         video/x-h264,alignment=au ! rtph264pay name=pay0 pt=96 aggregate-mode=zero-latency",
        crate::media::plan::video_rtp_caps(crate::media::plan::VideoCodec::H264, 96)
    );
    if has_audio {
        line.push_str(&format!(
            " {appsrc} name=audio caps=\"{}\" ! rtpopusdepay ! rtpopuspay name=pay1 pt=97",
            crate::media::plan::audio_caps(crate::media::plan::AUDIO_PAYLOAD)
        ));
    }
    line.push_str(" )");
    line
}

/// The token every authenticated user gets: the viewer role.
fn viewer_token() -> rtsp_server::RTSPToken {
    rtsp_server::RTSPToken::builder()
        .field(rtsp_server::RTSP_TOKEN_MEDIA_FACTORY_ROLE, ROLE)
        .build()
}

/// Once a second, on the server's main loop: a changed `htdigest` file is read again, and when
/// a user's line went (a revoked token), every RTSP client is disconnected (Digest does not say
/// which session is whose after it logged in): the others log in again, the revoked one cannot.
fn revoke_within_a_second(server: &rtsp_server::RTSPServer, credentials: Arc<Mutex<Credentials>>) {
    let server = server.downgrade();
    glib::timeout_add_seconds(1, move || {
        let Some(server) = server.upgrade() else {
            return glib::ControlFlow::Break;
        };
        if let Ok(mut credentials) = credentials.lock()
            && credentials.changed()
        {
            let before = credentials.users.clone();
            server.set_auth(Some(&credentials.load()));
            let removed: Vec<&String> = before.difference(&credentials.users).collect();
            if !removed.is_empty() {
                log::info!(
                    "RTSP: {removed:?} may no longer log in; every RTSP client is disconnected \
                     (the others log in again)"
                );
                server.client_filter(Some(&mut |_, _| rtsp_server::RTSPFilterResult::Remove));
            }
        }
        glib::ControlFlow::Continue
    });
}

/// The `htdigest` file, when it was last read, and the users it had then.
struct Credentials {
    file: PathBuf,
    read_at: Option<SystemTime>,
    users: std::collections::BTreeSet<String>,
}

impl Credentials {
    fn new(file: PathBuf) -> Self {
        Self {
            file,
            read_at: None,
            users: std::collections::BTreeSet::new(),
        }
    }

    fn modified(&self) -> Option<SystemTime> {
        std::fs::metadata(&self.file)
            .and_then(|m| m.modified())
            .ok()
    }

    fn changed(&self) -> bool {
        self.modified() != self.read_at
    }

    /// An authenticator with every line of the file (none when it is missing: nobody gets in).
    fn load(&mut self) -> rtsp_server::RTSPAuth {
        let auth = rtsp_server::RTSPAuth::new();
        auth.set_supported_methods(RTSPAuthMethod::Digest);
        auth.set_realm(Some(digest::REALM));
        self.read_at = self.modified();
        self.users = std::fs::read_to_string(&self.file)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.split(':').next())
            .map(str::to_owned)
            .collect();
        if self.read_at.is_some() && !auth.parse_htdigest(&self.file, &viewer_token()) {
            log::warn!(
                "RTSP: {} could not be read; nobody can log in",
                self.file.display()
            );
        }
        auth
    }
}

/// Each new media (the first client's) asks the media owner for a feed; the feed closes when
/// the media is let go after the last client.
fn feed_each_media(
    factory: &rtsp_server::RTSPMediaFactory,
    feeds: mpsc::UnboundedSender<FeedCommand>,
    keyframes: Arc<Mutex<Option<FeedHandle>>>,
    talk: Talk,
) {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    factory.connect_media_configure(move |_, media| {
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let Some(bin) = media.element().downcast::<gst::Bin>().ok() else {
            return;
        };
        let appsrc = |name| {
            bin.by_name(name)
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        };
        let Some(video_src) = appsrc("video") else {
            log::warn!("RTSP: the media has no video appsrc");
            return;
        };
        let audio_src = appsrc("audio");
        let talker = bin
            .by_name("backchannel")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .map(|appsink| hear_the_nvr(&appsink, id, talk.clone()));
        let appsrcs: Vec<gst_app::AppSrc> = std::iter::once(video_src.clone())
            .chain(audio_src.clone())
            .collect();
        let (video, video_sink) = bridge_to(video_src);
        let (audio, audio_sink) = audio_src.map(bridge_to).unzip();
        let (reply, answer) = oneshot::channel();
        let sent = feeds.send(FeedCommand::Open {
            id,
            consumer: "RTSP",
            video,
            audio,
            reply,
        });
        if sent.is_err() {
            return;
        }
        // The media owner answers within milliseconds (seconds when the camera starts): wait
        // off the main loop, which the server runs on.
        let keyframes = Arc::clone(&keyframes);
        std::thread::spawn(move || match answer.blocking_recv() {
            Ok(Ok(handle)) => {
                if let Ok(mut slot) = keyframes.lock() {
                    *slot = Some(handle);
                }
            }
            Ok(Err(reason)) => {
                log::warn!("RTSP: the stream cannot start: {reason}");
                for appsrc in appsrcs {
                    let _ = appsrc.end_of_stream();
                }
            }
            Err(_) => {}
        });
        let feeds = feeds.clone();
        // The bridges' sink pads have no element to hold them: the media's handler does, for
        // the media's life (a pad let go unlinks itself).
        let bridges = (video_sink, audio_sink);
        let speaker = Arc::clone(&talk.speaker);
        media.connect_unprepared(move |_| {
            let _ = &bridges;
            let _ = feeds.send(FeedCommand::Close { id });
            if talker.is_some() {
                speaker.talker_left(id);
            }
        });
    });
}

/// Plays what the NVR of media `id` sends on its backchannel on the speaker; a refusal (the
/// owner or another NVR talks) is logged once per talk.
fn hear_the_nvr(appsink: &gst_app::AppSink, id: u64, talk: Talk) {
    let mut refused = false;
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |appsink| {
                let sample = appsink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                match talk.speaker.play(id, &sample, &talk.metrics) {
                    Ok(()) => refused = false,
                    Err(reason) if !refused => {
                        refused = true;
                        log::info!("RTSP: an NVR's talk is not played: {reason}");
                    }
                    Err(_) => {}
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    log::info!("RTSP: an NVR set up the ONVIF audio backchannel");
}

/// Moves the source's timestamps (running times of the owner's pipeline) onto the media's
/// clock by one offset, so a frame's packets keep one timestamp and frames keep the encoder's
/// spacing. The offset is taken again when the source's time jumps (a camera restart).
#[derive(Debug, Default)]
struct Timeline {
    offset: Option<i128>,
}

/// How far a mapped time may stray from the media's clock before the offset is taken again.
const TIMELINE_SLACK_NS: i128 = 500_000_000;

impl Timeline {
    fn map(
        &mut self,
        source: Option<gst::ClockTime>,
        now: Option<gst::ClockTime>,
    ) -> Option<gst::ClockTime> {
        let (Some(source), Some(now)) = (source, now) else {
            return now;
        };
        let (source, now) = (i128::from(source.nseconds()), i128::from(now.nseconds()));
        let offset = match self.offset {
            Some(offset) if (source + offset - now).abs() <= TIMELINE_SLACK_NS => offset,
            _ => now - source,
        };
        self.offset = Some(offset);
        u64::try_from(source + offset)
            .ok()
            .map(gst::ClockTime::from_nseconds)
    }

    fn restamp(&mut self, buffer: &mut gst::BufferRef, now: Option<gst::ClockTime>) {
        let pts = self.map(buffer.pts(), now);
        buffer.set_pts(pts);
        buffer.set_dts(gst::ClockTime::NONE);
    }
}

/// The bridge from the shared source into one of the media's appsrcs, its packets moved onto
/// the media's clock.
fn bridge_to(appsrc: gst_app::AppSrc) -> (gst::Pad, gst::Pad) {
    let timeline = Mutex::new(Timeline::default());
    feeds::bridge(appsrc, move |buffer, now| {
        if let Ok(mut timeline) = timeline.lock() {
            timeline.restamp(buffer, now);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Option<gst::ClockTime> {
        Some(gst::ClockTime::from_mseconds(n))
    }

    #[test]
    fn a_frames_packets_keep_one_time_and_frames_keep_their_spacing() {
        let mut timeline = Timeline::default();
        assert_eq!(timeline.map(ms(5_000), ms(100)), ms(100));
        // The frame's second packet arrives later and still gets the frame's time.
        assert_eq!(timeline.map(ms(5_000), ms(104)), ms(100));
        // The next frame, delivered late, keeps the encoder's 33 ms spacing.
        assert_eq!(timeline.map(ms(5_033), ms(160)), ms(133));
    }

    #[test]
    fn a_jump_in_the_source_takes_the_offset_again() {
        let mut timeline = Timeline::default();
        timeline.map(ms(5_000), ms(100));
        // The camera restarted: its running time starts again near zero.
        assert_eq!(timeline.map(ms(40), ms(2_000)), ms(2_000));
        assert_eq!(timeline.map(ms(73), ms(2_040)), ms(2_033));
    }

    #[test]
    fn packets_without_a_time_are_placed_now() {
        let mut timeline = Timeline::default();
        assert_eq!(timeline.map(None, ms(7)), ms(7));
        assert_eq!(timeline.map(ms(1), None), None);
    }
}
