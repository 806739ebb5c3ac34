//! One call's pipeline: video and audio send branches into `webrtcbin`, and the caller's voice
//! out of it (see `talkback`).
//!
//! Owned by the media task; every method runs there. Callbacks connected here run on GStreamer
//! threads and only send a `Notice` tagged with this call's id; the one exception is linking the
//! caller's incoming audio pad, which must happen inside `pad-added` before data flows.
//!
//! The offer is made once, after `on-negotiation-needed` *and* after caps have reached every
//! webrtcbin sink pad: only then does the SDP carry the complete H.264 `fmtp` line, and no
//! renegotiation follows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gst_webrtc::{
    WebRTCICEConnectionState, WebRTCRTPTransceiverDirection, WebRTCSessionDescription,
};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use tokio::sync::mpsc::UnboundedSender;

use super::encoder_control::EncoderControl;
use super::plan::{self, VideoPlan};
use super::retransmission::RetransmissionBudget;
use super::{MediaError, MediaSettings, bitrate, link_stats, send_latency, talkback};
use crate::metrics::Metrics;
use crate::rooms::{CallId, Input};
use crate::signaling::IceCandidate;
use crate::turn::{DeviceIce, TransportPolicy};

/// How long after ICE connects the first statistics are asked for (see `Peer::wants_stats`).
const STATS_AFTER_CONNECT: Duration = Duration::from_secs(2);

/// Elements every call needs whatever the codec; checked once at start.
pub const REQUIRED_ELEMENTS: [&str; 14] = [
    "webrtcbin",
    "nicesrc",
    "dtlssrtpenc",
    "srtpenc",
    "opusenc",
    "rtpopuspay",
    "rtpopusdepay",
    "opusdec",
    "videoconvert",
    "videoscale",
    "videorate",
    "audioconvert",
    "audioresample",
    "rtph264pay",
];

/// What a GStreamer callback saw; handled by [`Peer::on_notice`] on the media task.
#[derive(Debug)]
pub enum Notice {
    NegotiationNeeded,
    CapsReady,
    OfferCreated(Result<WebRTCSessionDescription, String>),
    IceCandidate {
        mline: u32,
        candidate: String,
    },
    IceState(WebRTCICEConnectionState),
    Error(String),
    Eos,
    /// webrtcbin's answer to `get-stats`.
    Stats(gst::Structure),
}

type Notices = UnboundedSender<(CallId, Notice)>;

pub struct Peer {
    call: CallId,
    pipeline: gst::Pipeline,
    webrtc: gst::Element,
    sink_pads: Vec<gst::Pad>,
    notices: Notices,
    negotiation_needed: bool,
    offer_requested: bool,
    started: Instant,
    /// When ICE first connected.
    connected_at: Option<Instant>,
    /// The adaptive bitrate, and the encoder it drives (none for a custom encoder line or a
    /// pre-encoded source: their bitrate stays as configured).
    bitrate: bitrate::Controller,
    encoder: Option<EncoderControl>,
    /// Retransmissions held to a share of the video target (found once negotiated).
    retransmissions: Option<RetransmissionBudget>,
    /// The Opus encoder, told the audio loss the caller reports (its in-band FEC).
    opus: Option<gst::Element>,
    audio_loss_percent: i32,
    metrics: Arc<Metrics>,
    /// The caller's last receiver reports, and when they last changed (from the moment the
    /// call connected): a caller whose reports stop has vanished.
    last_reports: link_stats::LinkReports,
    heard_at: Option<Instant>,
    /// The video bytes sent at the last statistics, and when: the rate the encoder really sends.
    video_sent: Option<(u64, Instant)>,
}

impl Peer {
    /// Builds the pipeline for a caller who can receive `codecs` and sets it playing.
    pub fn start(
        call: CallId,
        settings: &MediaSettings,
        codecs: &[String],
        ice: &DeviceIce,
        notices: Notices,
        metrics: Arc<Metrics>,
    ) -> Result<Self, MediaError> {
        let started = Instant::now();
        let plan = plan::plan_video(settings, codecs, |f| gst::ElementFactory::find(f).is_some())?;
        log::info!(
            "call {call}: video {} via {:?} ({})",
            plan.codec,
            plan.encoder,
            plan.reason
        );
        let pipeline = gst::Pipeline::with_name(&format!("call-{call}"));
        let webrtc = gst::ElementFactory::make("webrtcbin")
            .name("webrtc")
            .property_from_str("bundle-policy", "max-bundle")
            .property("latency", 100u32)
            .build()
            .map_err(|_| MediaError::MissingElement("webrtcbin"))?;
        pipeline
            .add(&webrtc)
            .map_err(|e| build_error("webrtcbin", e))?;
        tune_ice_agent(&webrtc);
        add_ice_addresses(&webrtc, &settings.extra_ice_addresses);
        use_ice_servers(&webrtc, ice);

        let mut peer = Self {
            call,
            pipeline,
            webrtc,
            sink_pads: Vec::new(),
            notices,
            negotiation_needed: false,
            offer_requested: false,
            started,
            connected_at: None,
            bitrate: bitrate::Controller::new(settings.video_bitrate),
            encoder: None,
            retransmissions: None,
            opus: None,
            audio_loss_percent: 0,
            metrics: Arc::clone(&metrics),
            last_reports: link_stats::LinkReports::default(),
            heard_at: None,
            video_sent: None,
        };
        peer.add_video(&plan, &metrics)?;
        Metrics::set(
            &metrics.video_target_kbps,
            u64::from(peer.bitrate.target_kbps()),
        );
        if peer.encoder.is_none() {
            log::info!(
                "call {call}: the encoder's bitrate is fixed (adaptive bitrate drives x264enc, \
                 openh264enc, vp8enc and V4L2 encoders)"
            );
        }
        match plan::audio_description(settings) {
            Some(description) => {
                let bin = peer.add_branch(
                    "audio branch",
                    &description,
                    WebRTCRTPTransceiverDirection::Sendrecv,
                )?;
                peer.opus = bin.by_name("opus");
            }
            // No microphone: the caller's voice still comes in and plays.
            None => peer.add_receive_only_audio()?,
        }
        peer.connect_callbacks(settings.audio_sink.clone(), metrics);
        peer.pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| MediaError::StateChange(e.to_string()))?;
        Ok(peer)
    }

    pub fn call(&self) -> CallId {
        self.call
    }

    /// Adds the video branch, with counters of packets, keyframes and keyframe requests (a
    /// browser's PLI/FIR reaches the encoder as an upstream force-key-unit event; a V4L2
    /// encoder, which ignores that event, is also given its force-keyframe control).
    fn add_video(&mut self, plan: &VideoPlan, metrics: &Arc<Metrics>) -> Result<(), MediaError> {
        let bin = self.add_branch(
            "video branch",
            &plan.description,
            WebRTCRTPTransceiverDirection::Sendonly,
        )?;
        if let Some(src) = bin.static_pad("src") {
            let metrics = Arc::clone(metrics);
            src.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                Metrics::add(&metrics.video_packets_sent, 1);
                gst::PadProbeReturn::Ok
            });
        }
        if let Some(pay) = bin.by_name("pay") {
            send_latency::watch(&pay, &self.webrtc, Arc::clone(metrics));
        }
        self.encoder = EncoderControl::find(&bin);
        if let Some(encoded) = bin.by_name("pay").and_then(|pay| pay.static_pad("sink")) {
            let metrics = Arc::clone(metrics);
            let encoder = self.encoder.clone();
            let probes = gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_UPSTREAM;
            encoded.add_probe(probes, move |_, info| {
                match &info.data {
                    Some(gst::PadProbeData::Buffer(buffer))
                        if !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT) =>
                    {
                        Metrics::add(&metrics.keyframes_sent, 1);
                    }
                    Some(gst::PadProbeData::Event(event))
                        if event
                            .structure()
                            .is_some_and(|s| s.name() == "GstForceKeyUnit") =>
                    {
                        Metrics::add(&metrics.keyframe_requests, 1);
                        if let Some(encoder) = &encoder {
                            encoder.force_keyframe();
                        }
                    }
                    _ => {}
                }
                gst::PadProbeReturn::Ok
            });
        }
        Ok(())
    }

    /// An audio transceiver that only receives, for a device without a microphone.
    fn add_receive_only_audio(&self) -> Result<(), MediaError> {
        let caps = plan::audio_caps()
            .parse::<gst::Caps>()
            .map_err(|e| build_error("audio transceiver", e))?;
        self.webrtc
            .emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>(
                "add-transceiver",
                &[&WebRTCRTPTransceiverDirection::Recvonly, &caps],
            );
        Ok(())
    }

    /// Adds a send branch from a launch description and links it to a new webrtcbin sink pad
    /// whose transceiver gets `direction`. Returns the branch.
    fn add_branch(
        &mut self,
        what: &'static str,
        description: &str,
        direction: WebRTCRTPTransceiverDirection,
    ) -> Result<gst::Bin, MediaError> {
        let bin = gst::parse::bin_from_description(description, true)
            .map_err(|e| build_error(what, e))?;
        self.pipeline.add(&bin).map_err(|e| build_error(what, e))?;
        let src = bin
            .static_pad("src")
            .ok_or_else(|| build_error(what, "the description has no unlinked source pad"))?;
        let sink = self
            .webrtc
            .request_pad_simple("sink_%u")
            .ok_or_else(|| build_error(what, "webrtcbin gave no sink pad"))?;
        src.link(&sink).map_err(|e| build_error(what, e))?;
        // A source that ends (a camera unplugged, a file at its end) ends only its branch: the
        // pipeline as a whole never reaches EOS while the other branch runs, so watch for it.
        let tx = self.notices.clone();
        let call = self.call;
        src.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(event)) = &info.data
                && event.type_() == gst::EventType::Eos
            {
                let _ = tx.send((call, Notice::Eos));
            }
            gst::PadProbeReturn::Ok
        });
        let transceiver = sink.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
        transceiver.set_direction(direction);
        if direction == WebRTCRTPTransceiverDirection::Sendonly {
            // Retransmissions for video: a lost packet costs a resend, not a frozen picture.
            transceiver.set_property("do-nack", true);
        }
        self.sink_pads.push(sink);
        Ok(bin)
    }

    fn connect_callbacks(&self, audio_sink: String, metrics: Arc<Metrics>) {
        let call = self.call;
        let notify = move |notices: &Notices, notice: Notice| {
            let _ = notices.send((call, notice));
        };

        let tx = self.notices.clone();
        self.webrtc
            .connect("on-negotiation-needed", false, move |_| {
                notify(&tx, Notice::NegotiationNeeded);
                None
            });
        let tx = self.notices.clone();
        self.webrtc
            .connect("on-ice-candidate", false, move |values| {
                let mline = values.get(1).and_then(|v| v.get::<u32>().ok());
                let candidate = values.get(2).and_then(|v| v.get::<String>().ok());
                if let (Some(mline), Some(candidate)) = (mline, candidate) {
                    notify(&tx, Notice::IceCandidate { mline, candidate });
                }
                None
            });
        let tx = self.notices.clone();
        self.webrtc
            .connect_notify(Some("ice-connection-state"), move |webrtc, _| {
                let state = webrtc.property::<WebRTCICEConnectionState>("ice-connection-state");
                notify(&tx, Notice::IceState(state));
            });
        for pad in &self.sink_pads {
            let tx = self.notices.clone();
            pad.connect_notify(Some("caps"), move |_, _| notify(&tx, Notice::CapsReady));
        }
        let tx = self.notices.clone();
        let pipeline = self.pipeline.downgrade();
        self.webrtc.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pipeline.upgrade() else {
                return;
            };
            if let Err(e) = talkback::attach(&pipeline, pad, &audio_sink, &metrics) {
                notify(&tx, Notice::Error(e.to_string()));
            }
        });
        if let Some(bus) = self.pipeline.bus() {
            let tx = self.notices.clone();
            bus.set_sync_handler(move |_, message| {
                match message.view() {
                    gst::MessageView::Error(err) => {
                        let source = err.src().map(|s| s.path_string()).unwrap_or_default();
                        notify(&tx, Notice::Error(format!("{source}: {}", err.error())));
                    }
                    gst::MessageView::Eos(_) => notify(&tx, Notice::Eos),
                    _ => {}
                }
                gst::BusSyncReply::Drop
            });
        }
    }

    /// Acts on a callback's notice; returns what the room must hear.
    pub fn on_notice(&mut self, notice: Notice) -> Vec<Input> {
        let call = self.call;
        match notice {
            Notice::NegotiationNeeded => {
                self.negotiation_needed = true;
                self.maybe_create_offer();
                vec![]
            }
            Notice::CapsReady => {
                self.maybe_create_offer();
                vec![]
            }
            Notice::OfferCreated(Ok(offer)) => {
                self.webrtc
                    .emit_by_name::<()>("set-local-description", &[&offer, &None::<gst::Promise>]);
                match offer.sdp().as_text() {
                    Ok(sdp) => {
                        log::debug!(
                            "call {call}: offer ready after {} ms",
                            self.started.elapsed().as_millis()
                        );
                        vec![Input::PeerOffer { call, sdp }]
                    }
                    Err(e) => vec![failed(call, format!("cannot write the offer: {e}"))],
                }
            }
            Notice::OfferCreated(Err(reason)) => {
                vec![failed(call, format!("webrtcbin made no offer: {reason}"))]
            }
            Notice::IceCandidate { mline, candidate } => vec![Input::PeerCandidate {
                call,
                candidate: IceCandidate {
                    candidate,
                    sdp_m_line_index: mline,
                    sdp_mid: None,
                    username_fragment: None,
                },
            }],
            Notice::IceState(state) => self.on_ice_state(state),
            Notice::Error(reason) => vec![failed(call, reason)],
            Notice::Stats(stats) => {
                self.on_link_reports(link_stats::read(&stats));
                vec![]
            }
            Notice::Eos => vec![failed(
                call,
                "the camera or microphone stopped sending (end of stream)".into(),
            )],
        }
    }

    fn on_ice_state(&mut self, state: WebRTCICEConnectionState) -> Vec<Input> {
        log::debug!("call {}: ICE {state:?}", self.call);
        match state {
            WebRTCICEConnectionState::Connected | WebRTCICEConnectionState::Completed
                if self.connected_at.is_none() =>
            {
                self.connected_at = Some(Instant::now());
                self.heard_at = self.connected_at;
                log::info!(
                    "call {}: connected {} ms after the caller joined",
                    self.call,
                    self.started.elapsed().as_millis()
                );
                vec![]
            }
            WebRTCICEConnectionState::Failed => vec![failed(
                self.call,
                "no network path to the caller (ICE failed)".into(),
            )],
            _ => vec![],
        }
    }

    /// Moves the video bitrate with what the caller's receiver reports say, and tells Opus the
    /// audio loss so that its in-band FEC covers it.
    fn on_link_reports(&mut self, reports: link_stats::LinkReports) {
        let now = Instant::now();
        // Only what the caller sent counts as hearing from it (not the device's own counters).
        let heard = (reports.video, reports.audio);
        if heard != (self.last_reports.video, self.last_reports.audio) {
            self.heard_at = Some(now);
        }
        self.last_reports = reports;
        let sent_kbps = match (reports.video_bytes_sent, self.video_sent) {
            (Some(bytes), Some((before, at))) if bytes >= before => {
                let seconds = now.duration_since(at).as_secs_f64();
                (seconds > 0.1).then(|| (bytes - before) as f64 * 8.0 / 1000.0 / seconds)
            }
            _ => None,
        };
        if let Some(bytes) = reports.video_bytes_sent {
            self.video_sent = Some((bytes, now));
        }
        if self.retransmissions.is_none() {
            self.retransmissions =
                RetransmissionBudget::attach(&self.webrtc, self.bitrate.target_kbps());
            if self.retransmissions.is_some() {
                log::debug!("call {}: retransmissions held to a budget", self.call);
            }
        }
        if let (Some(report), Some(encoder)) = (reports.video, &self.encoder)
            && let Some(change) = self.bitrate.on_report(report, sent_kbps, now)
        {
            encoder.set_bitrate(change.kbps);
            if let Some(budget) = &self.retransmissions {
                budget.set_target(change.kbps);
            }
            Metrics::set(&self.metrics.video_target_kbps, u64::from(change.kbps));
            log::info!(
                "call {}: video bitrate {} kbit/s ({:?}; loss {:.1}%, round trip {})",
                self.call,
                change.kbps,
                change.reason,
                report.fraction_lost * 100.0,
                report
                    .round_trip
                    .map_or("unknown".to_owned(), |rtt| format!(
                        "{} ms",
                        rtt.as_millis()
                    ))
            );
        }
        if let (Some(report), Some(opus)) = (reports.audio, &self.opus) {
            // Opus expects 0..=100; the next whole percent up, so that any loss turns FEC on.
            let percent = (report.fraction_lost * 100.0).ceil().clamp(0.0, 100.0) as i32;
            if percent != self.audio_loss_percent {
                self.audio_loss_percent = percent;
                opus.set_property("packet-loss-percentage", percent);
            }
        }
    }

    /// How long since the connected caller's receiver reports last said anything new (a
    /// browser sends one at least every few seconds while it is there), and whether one has
    /// come at all (before the first, DTLS may still be retrying its handshake on a lossy path).
    pub fn caller_silence(&self) -> Option<(Duration, bool)> {
        let reported = self.last_reports.video.is_some() || self.last_reports.audio.is_some();
        self.heard_at.map(|at| (at.elapsed(), reported))
    }

    pub fn is_connected(&self) -> bool {
        self.connected_at.is_some()
    }

    /// Whether to ask for statistics now: from `STATS_AFTER_CONNECT` after ICE connected. The
    /// controlling agent nominates its pair just after connecting, and libnice 0.1.21's
    /// nomination can abort on a slow CPU (see scripts/lib/checks.py); nothing is asked of the
    /// agent until that is long done (and no receiver report comes before then anyway).
    pub fn wants_stats(&self) -> bool {
        self.connected_at
            .is_some_and(|at| at.elapsed() > STATS_AFTER_CONNECT)
    }

    /// When the call must have connected by, if it has not yet.
    pub fn connect_deadline(&self, timeout: Duration) -> Option<Instant> {
        (!self.is_connected()).then(|| self.started + timeout)
    }

    fn offer_caps_ready(&self) -> bool {
        self.sink_pads.iter().all(|p| p.current_caps().is_some())
    }

    fn maybe_create_offer(&mut self) {
        if self.offer_requested || !self.negotiation_needed || !self.offer_caps_ready() {
            return;
        }
        self.offer_requested = true;
        let tx = self.notices.clone();
        let call = self.call;
        let promise = gst::Promise::with_change_func(move |reply| {
            let result = match reply {
                Ok(Some(reply)) => reply
                    .get::<WebRTCSessionDescription>("offer")
                    .map_err(|e| e.to_string()),
                Ok(None) => Err("empty reply".into()),
                Err(e) => Err(format!("{e:?}")),
            };
            let _ = tx.send((call, Notice::OfferCreated(result)));
        });
        self.webrtc
            .emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
    }

    /// For the warm-up only: waits (up to `timeout`) for caps to reach webrtcbin, then makes an
    /// offer and sets it locally, blocking. That creates the DTLS certificate (made once per
    /// process), the transports and the ICE agent's sockets, the slow parts of a first call.
    pub fn rehearse_offer(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.offer_caps_ready() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let promise = gst::Promise::new();
        self.webrtc
            .emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
        if promise.wait() != gst::PromiseResult::Replied {
            return false;
        }
        let Some(Ok(offer)) = promise
            .get_reply()
            .map(|reply| reply.get::<WebRTCSessionDescription>("offer"))
        else {
            return false;
        };
        let promise = gst::Promise::new();
        self.webrtc
            .emit_by_name::<()>("set-local-description", &[&offer, &promise]);
        promise.wait() == gst::PromiseResult::Replied
    }

    /// Asks webrtcbin for its statistics; the answer arrives as `Notice::Stats`.
    pub fn request_stats(&self) {
        let tx = self.notices.clone();
        let call = self.call;
        let promise = gst::Promise::with_change_func(move |reply| {
            if let Ok(Some(reply)) = reply {
                let _ = tx.send((call, Notice::Stats(reply.to_owned())));
            }
        });
        self.webrtc
            .emit_by_name::<()>("get-stats", &[&None::<gst::Pad>, &promise]);
    }

    pub fn set_answer(&mut self, sdp: &str) -> Result<(), MediaError> {
        let message =
            gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes()).map_err(|_| MediaError::BadAnswer)?;
        let answer = WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, message);
        self.webrtc
            .emit_by_name::<()>("set-remote-description", &[&answer, &None::<gst::Promise>]);
        Ok(())
    }

    pub fn add_candidate(&mut self, candidate: &IceCandidate) {
        // An empty candidate only says the caller finished gathering.
        if candidate.candidate.is_empty() {
            return;
        }
        self.webrtc.emit_by_name::<()>(
            "add-ice-candidate",
            &[&candidate.sdp_m_line_index, &candidate.candidate],
        );
    }

    /// Tears the call down: the pipeline goes to NULL, which closes sockets and frees elements.
    pub fn stop(self) {
        if let Some(bus) = self.pipeline.bus() {
            bus.unset_sync_handler();
        }
        // No EOS first: sending it to a pipeline with live sources can block on the source's
        // stream lock (seen here with videotestsrc), and nothing in a call needs it. NULL stops
        // every element and closes every socket.
        if let Err(e) = self.pipeline.set_state(gst::State::Null) {
            log::warn!("call {}: pipeline did not stop cleanly: {e}", self.call);
        }
        log::info!(
            "call {}: ended after {:.1} s",
            self.call,
            self.started.elapsed().as_secs_f32()
        );
        let call = self.call;
        let pipeline = self.pipeline.downgrade();
        drop(self);
        if pipeline.upgrade().is_some() {
            log::debug!("call {call}: the pipeline is still referenced after the call");
        }
        crate::memory::release_free_memory();
    }
}

fn failed(call: CallId, reason: String) -> Input {
    Input::PeerFailed { call, reason }
}

fn build_error(what: &'static str, reason: impl std::fmt::Display) -> MediaError {
    MediaError::Build {
        what,
        reason: reason.to_string(),
    }
}

/// Gives webrtcbin the call's STUN and TURN servers and its transport policy.
fn use_ice_servers(webrtc: &gst::Element, ice: &DeviceIce) {
    if let Some(stun) = &ice.stun_server {
        webrtc.set_property("stun-server", stun);
    }
    for turn in &ice.turn_servers {
        if !webrtc.emit_by_name::<bool>("add-turn-server", &[turn]) {
            log::warn!("webrtcbin refused a TURN server URL");
        }
    }
    if ice.transport_policy == TransportPolicy::Relay {
        webrtc.set_property_from_str("ice-transport-policy", "relay");
    }
}

/// Pacing of ICE checks (RFC 8445's Ta, which may go down to 5 ms): libnice waits 20 ms between
/// checks, so a few candidate pairs and the nomination after them cost ~60 ms of every call's
/// set-up, where 5 ms costs ~15 ms.
const ICE_CHECK_PACING_MS: u32 = 5;

/// ICE over TCP host candidates (RFC 6544): off. A phone reaches the device over UDP on the
/// same network or through TURN (whose TCP and TLS transports stay available: they carry
/// UDP-typed relay candidates); TCP host candidates only add listening sockets, candidate
/// pairs and checks to every call, and libnice's TCP paths are its least exercised.
const ICE_TCP: bool = false;

/// Paces libnice's connectivity checks every `ICE_CHECK_PACING_MS`, and gathers UDP host
/// candidates only: no ICE-TCP (see `ICE_TCP`).
fn tune_ice_agent(webrtc: &gst::Element) {
    let ice = webrtc.property::<gst::glib::Object>("ice-agent");
    let Some(agent) = ice
        .find_property("agent")
        .map(|_| ice.property::<gst::glib::Object>("agent"))
    else {
        return;
    };
    if agent.find_property("stun-pacing-timer").is_some() {
        agent.set_property("stun-pacing-timer", ICE_CHECK_PACING_MS);
    }
    if agent.find_property("ice-tcp").is_some() {
        agent.set_property("ice-tcp", ICE_TCP);
    }
}

/// libnice skips loopback and uses every interface by default; once any address is added it uses
/// only the added ones. So extra addresses are added together with every interface address.
fn add_ice_addresses(webrtc: &gst::Element, extra: &[std::net::IpAddr]) {
    if extra.is_empty() {
        return;
    }
    let agent = webrtc.property::<gst::glib::Object>("ice-agent");
    let mut addresses: Vec<std::net::IpAddr> = crate::host::addresses()
        .into_iter()
        .filter(|ip| !ip.is_loopback())
        .collect();
    for address in extra {
        if !addresses.contains(address) {
            addresses.push(*address);
        }
    }
    for address in addresses {
        let added = agent.emit_by_name::<bool>("add-local-ip-address", &[&address.to_string()]);
        if !added {
            log::warn!("ICE agent refused local address {address}");
        }
    }
}
