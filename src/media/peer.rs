//! One peer's pipeline: the shared source's RTP video and audio (`shared_source`: encoded and
//! payloaded once for every peer), pushed by the source into `webrtcbin` through a pad per
//! medium with no element behind it (no thread or queue of its own), and for the caller
//! its voice out of it (see `talkback`). The caller's peer makes the offer; a viewer's peer
//! (WHEP) answers the viewer's.
//!
//! Owned by the media task; every method runs there. Callbacks connected here run on GStreamer
//! threads and only send a `Notice` tagged with this peer's id; the one exception is linking the
//! caller's incoming audio pad, which must happen inside `pad-added` before data flows.
//!
//! Each transceiver's `codec-preferences` are complete RTP caps (the H.264 `fmtp` parameters
//! and the shared payloader's SSRC), so the offer is made at once, while the encoder
//! starts and ICE and DTLS run, with no renegotiation after.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gst_webrtc::{
    WebRTCICEConnectionState, WebRTCICEGatheringState, WebRTCRTPTransceiverDirection,
    WebRTCSessionDescription,
};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;

use super::error::MediaError;
use super::outlets::{Inlet, SendStart};
use super::owned_pipeline::OwnedPipeline;
use super::plan::{self, VideoCodec};
use super::retransmission::RetransmissionBudget;
use super::sdp_tidy::{self, SdpKind};
use super::settings::MediaSettings;
use super::shared_source::SharedSource;
use super::speaker::Speaker;
use super::viewer_offer::{for_webrtcbin, with_candidates};
use super::webrtc_setup::{
    add_branch, add_ice_addresses, add_receive_only_audio, bypass_unused_fec_encoders,
    start_negotiated, start_sending_when_connected, tune_ice_agent, use_ice_servers, wait_for,
};
use super::{bitrate, goodbye, link_stats, send_latency, talkback};
use crate::metrics::Metrics;
use crate::reachability::{Reachability, forwarded_candidate, with_forwarded};
use crate::signaling::IceCandidate;
use crate::turn::DeviceIce;

pub use super::peer_events::{Notice, Notices, PeerEvent, PeerId, Role};

/// How long after ICE connects the first statistics are asked for (see `Peer::wants_stats`).
const STATS_AFTER_CONNECT: Duration = Duration::from_secs(2);
/// How long a stopping peer's RTCP BYE is given to leave (it is sent at once, on this thread's
/// push of the end of stream, and needs a millisecond or two).
const GOODBYE_TIME: Duration = Duration::from_millis(20);

pub struct Peer {
    id: PeerId,
    /// Stopped when the peer is dropped, on every path.
    pipeline: OwnedPipeline,
    webrtc: gst::Element,
    /// The video codec it is sent (which of the source's encoders it is on).
    codec: VideoCodec,
    /// The pads the shared source pushes video and audio into.
    video_in: gst::Pad,
    audio_in: Option<gst::Pad>,
    notices: Notices,
    offer_requested: bool,
    started: Instant,
    /// When ICE first connected.
    connected_at: Option<Instant>,
    /// This peer's own adaptive bitrate: the shared encoder follows the lowest of them.
    bitrate: bitrate::Controller,
    /// Retransmissions held to a share of this peer's target (found once negotiated).
    retransmissions: Option<RetransmissionBudget>,
    /// The audio loss this peer's receiver reports, in whole percent (for Opus's FEC).
    audio_loss_percent: i32,
    metrics: Arc<Metrics>,
    /// The peer's last receiver reports, and when they last changed (from the moment it
    /// connected): a peer whose reports stop has vanished.
    last_reports: link_stats::LinkReports,
    heard_at: Option<Instant>,
    /// The video bytes sent at the last statistics, and when: the rate really sent.
    video_sent: Option<(u64, Instant)>,
    /// A viewer's candidates, gathered for its answer.
    gathered: Vec<(u32, String)>,
    /// The router's forwards of the media ports (`MediaSettings::forwards`).
    forwards: tokio::sync::watch::Receiver<Reachability>,
    /// Starts what the shared source sends this peer (once connected).
    send_start: Option<SendStart>,
    /// What to check when this peer never connects, from the ICE servers it was given.
    no_path_hint: &'static str,
}

impl Peer {
    /// Builds the peer's pipeline on `source` and sets it playing. A caller's peer makes its
    /// offer once webrtcbin asks for negotiation; a viewer's answers its offer at once and is
    /// ready (`PeerEvent::AnswerReady`) when its candidates are gathered.
    pub fn start(
        id: PeerId,
        settings: &MediaSettings,
        source: &SharedSource,
        role: Role<'_>,
        ice: &DeviceIce,
        notices: Notices,
        metrics: Arc<Metrics>,
    ) -> Result<Self, MediaError> {
        let started = Instant::now();
        let pipeline = OwnedPipeline::new(&format!("peer-{id}").replace(' ', "-"));
        let webrtc = gst::ElementFactory::make("webrtcbin")
            .name("webrtc")
            .property_from_str("bundle-policy", "max-bundle")
            .property("latency", 100u32)
            .build()
            .map_err(|_| MediaError::MissingElement("webrtcbin"))?;
        pipeline
            .add(&webrtc)
            .map_err(|e| MediaError::build("webrtcbin", e))?;
        tune_ice_agent(&webrtc, settings.media_ports.as_ref());
        bypass_unused_fec_encoders(&webrtc, id, &metrics);
        add_ice_addresses(&webrtc, &settings.extra_ice_addresses);
        use_ice_servers(&webrtc, ice);
        source.share_clock(&pipeline);

        let codec = role.codec();
        let (video_pt, audio_pt) = match &role {
            Role::Caller { .. } => (plan::VIDEO_PAYLOAD, Some(plan::AUDIO_PAYLOAD)),
            Role::Viewer { choice, .. } => (choice.video_payload, choice.audio_payload),
        };
        let ssrcs = source.ssrcs(codec)?;
        let video_in = add_branch(
            &webrtc,
            &plan::video_rtp_caps(codec, video_pt),
            ssrcs.video,
            WebRTCRTPTransceiverDirection::Sendonly,
        )?;
        let audio_direction = match role {
            Role::Caller { .. } => WebRTCRTPTransceiverDirection::Sendrecv,
            Role::Viewer { .. } => WebRTCRTPTransceiverDirection::Sendonly,
        };
        let audio_pt = audio_pt.filter(|_| source.has_audio());
        let audio_in = match audio_pt {
            Some(pt) => Some(add_branch(
                &webrtc,
                &plan::audio_caps(pt),
                ssrcs.audio,
                audio_direction,
            )?),
            None => None,
        };
        // No microphone: the caller's voice still comes in and plays.
        if audio_in.is_none() && matches!(role, Role::Caller { .. }) {
            add_receive_only_audio(&webrtc)?;
        }
        let mut peer = Self {
            id,
            pipeline,
            webrtc,
            codec,
            video_in,
            audio_in,
            notices,
            offer_requested: false,
            started,
            connected_at: None,
            bitrate: bitrate::Controller::new(settings.video_bitrate),
            retransmissions: None,
            audio_loss_percent: 0,
            metrics: Arc::clone(&metrics),
            last_reports: link_stats::LinkReports::default(),
            heard_at: None,
            video_sent: None,
            gathered: Vec::new(),
            forwards: settings.forwards.clone(),
            send_start: None,
            no_path_hint: no_path_hint(ice),
        };
        peer.watch_video(source, matches!(role, Role::Caller { .. }))?;
        peer.connect_callbacks(Arc::clone(&settings.speaker), metrics);
        peer.pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| MediaError::StateChange(e.to_string()))?;
        if let Role::Viewer { sdp, .. } = role {
            peer.answer(sdp)?;
        }
        let send_start = source.subscribe(
            codec,
            Inlet {
                pad: &peer.video_in,
                payload_type: video_pt,
            },
            peer.audio_in
                .as_ref()
                .zip(audio_pt)
                .map(|(pad, payload_type)| Inlet { pad, payload_type }),
        )?;
        start_sending_when_connected(
            &peer.webrtc,
            send_start.clone(),
            peer.video_in.clone(),
            peer.audio_in.clone(),
        );
        peer.send_start = Some(send_start);
        Ok(peer)
    }

    pub fn id(&self) -> PeerId {
        self.id
    }

    /// The video codec it is sent.
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// What to check when this peer never connected (see `no_path_hint`).
    pub fn no_path_hint(&self) -> &'static str {
        self.no_path_hint
    }

    /// Counts the video RTP packets, and turns the peer's keyframe requests (a browser's
    /// PLI/FIR reaches the video pad as an upstream force-key-unit event) into requests of the
    /// shared encoder. For the caller, also times frames from the payloader to the socket.
    fn watch_video(&self, source: &SharedSource, is_caller: bool) -> Result<(), MediaError> {
        if is_caller && let Some(stamps) = source.frame_stamps(self.codec) {
            send_latency::watch(
                &self.webrtc,
                stamps,
                source.ssrcs(self.codec)?.video,
                Arc::clone(&self.metrics),
            );
        }
        let pad = &self.video_in;
        let metrics = Arc::clone(&self.metrics);
        let probes = gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST;
        pad.add_probe(probes, move |_, info| {
            let packets = match &info.data {
                Some(gst::PadProbeData::BufferList(list)) => list.len(),
                _ => 1,
            };
            Metrics::add(&metrics.video_packets_sent, packets as u64);
            gst::PadProbeReturn::Ok
        });
        let metrics = Arc::clone(&self.metrics);
        let keyframes = source.keyframe_requester(self.codec)?;
        pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(event)) = &info.data
                && event
                    .structure()
                    .is_some_and(|s| s.name() == "GstForceKeyUnit")
            {
                Metrics::add(&metrics.keyframe_requests, 1);
                keyframes.request();
            }
            // The pad, with no element behind it, refuses the event itself (a probe dropping
            // an upstream event makes GStreamer 1.22 unreference a null object).
            gst::PadProbeReturn::Ok
        });
        Ok(())
    }

    /// A viewer's offer in, the device's answer set locally; blocking for a few milliseconds.
    fn answer(&self, sdp: &str) -> Result<(), MediaError> {
        let message = gst_sdp::SDPMessage::parse_buffer(for_webrtcbin(sdp).as_bytes())
            .map_err(|_| MediaError::BadOffer("GStreamer cannot parse it".into()))?;
        let offer = WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, message);
        let refused =
            |step: &str, reason: String| MediaError::BadOffer(format!("{step}: {reason}"));
        wait_for(&self.webrtc, "set-remote-description", Some(&offer))
            .map_err(|e| refused("the offer was refused", e))?;
        let reply = wait_for(&self.webrtc, "create-answer", None)
            .map_err(|e| refused("no answer could be made", e))?;
        let answer = reply
            .get::<WebRTCSessionDescription>("answer")
            .map_err(|e| refused("no answer could be made", e.to_string()))?;
        wait_for(&self.webrtc, "set-local-description", Some(&answer))
            .map_err(|e| refused("the answer was refused", e))?;
        Ok(())
    }

    /// The viewer's answer with every candidate gathered so far (WHEP has no way to trickle
    /// the device's candidates).
    pub fn answer_sdp(&self) -> Option<String> {
        let answer = self
            .webrtc
            .property::<Option<WebRTCSessionDescription>>("local-description")?;
        let text = answer.sdp().as_text().ok()?;
        let complete = if text.contains("a=candidate:") {
            text
        } else {
            with_candidates(&text, &self.gathered)
        };
        // A host candidate on a port the router forwards is also reached at the router's
        // external address.
        let forwarded = with_forwarded(&complete, &self.forwards.borrow().media);
        Some(sdp_tidy::tidy(&forwarded, SdpKind::CompleteAnswer))
    }

    fn connect_callbacks(&self, speaker: Arc<Speaker>, metrics: Arc<Metrics>) {
        let id = self.id;
        let notify = move |notices: &Notices, notice: Notice| {
            let _ = notices.send((id, notice));
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
        let tx = self.notices.clone();
        self.webrtc
            .connect_notify(Some("ice-gathering-state"), move |webrtc, _| {
                let state = webrtc.property::<WebRTCICEGatheringState>("ice-gathering-state");
                if state == WebRTCICEGatheringState::Complete {
                    notify(&tx, Notice::GatheringComplete);
                }
            });
        let tx = self.notices.clone();
        let pipeline = self.pipeline.downgrade();
        let is_caller = matches!(self.id, PeerId::Caller(_));
        self.webrtc.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pipeline.upgrade() else {
                return;
            };
            // Only the caller talks back; anything a viewer sends is discarded.
            let speaker = is_caller.then_some(speaker.as_ref());
            if let Err(e) = talkback::attach(&pipeline, pad, speaker, &metrics) {
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
                    gst::MessageView::Latency(_) => notify(&tx, Notice::Latency),
                    _ => {}
                }
                gst::BusSyncReply::Drop
            });
        }
    }

    /// Acts on a callback's notice; returns what the media owner must act on.
    pub fn on_notice(&mut self, notice: Notice) -> Vec<PeerEvent> {
        match notice {
            Notice::NegotiationNeeded => {
                if matches!(self.id, PeerId::Caller(_)) {
                    self.create_offer();
                }
                vec![]
            }
            Notice::Latency => {
                if let Err(e) = self.pipeline.recalculate_latency() {
                    log::debug!("{}: latency not known yet: {e}", self.id);
                }
                vec![]
            }
            Notice::GatheringComplete => match self.id {
                PeerId::Viewer(_) => vec![PeerEvent::AnswerReady],
                PeerId::Caller(_) => vec![],
            },
            Notice::OfferCreated(Ok(offer)) => {
                self.webrtc
                    .emit_by_name::<()>("set-local-description", &[&offer, &None::<gst::Promise>]);
                match offer.sdp().as_text() {
                    Ok(sdp) => {
                        let sdp = sdp_tidy::tidy(&sdp, SdpKind::Offer);
                        log::debug!(
                            "{}: offer ready after {} ms",
                            self.id,
                            self.started.elapsed().as_millis()
                        );
                        vec![PeerEvent::Offer(sdp)]
                    }
                    Err(e) => vec![PeerEvent::Failed(format!("cannot write the offer: {e}"))],
                }
            }
            Notice::OfferCreated(Err(reason)) => {
                vec![PeerEvent::Failed(format!(
                    "webrtcbin made no offer: {reason}"
                ))]
            }
            Notice::IceCandidate { mline, candidate } => match self.id {
                PeerId::Viewer(_) => {
                    // Into the answer, with the forwarded twins (`answer_sdp`).
                    self.gathered.push((mline, candidate));
                    vec![]
                }
                PeerId::Caller(_) => {
                    // A host candidate on a port the router forwards is also reached at the
                    // router's external address.
                    let forwarded = forwarded_candidate(&candidate, &self.forwards.borrow().media);
                    std::iter::once(candidate)
                        .chain(forwarded)
                        .map(|candidate| {
                            PeerEvent::Candidate(IceCandidate {
                                candidate,
                                sdp_m_line_index: mline,
                                sdp_mid: None,
                                username_fragment: None,
                            })
                        })
                        .collect()
                }
            },
            Notice::IceState(state) => self.on_ice_state(state),
            Notice::Error(reason) => vec![PeerEvent::Failed(reason)],
            Notice::Stats(stats) => {
                self.on_link_reports(link_stats::read(&stats));
                vec![]
            }
            Notice::Eos => vec![PeerEvent::Failed(
                "the camera or microphone stopped sending (end of stream)".into(),
            )],
        }
    }

    fn on_ice_state(&mut self, state: WebRTCICEConnectionState) -> Vec<PeerEvent> {
        log::debug!("{}: ICE {state:?}", self.id);
        match state {
            WebRTCICEConnectionState::Connected | WebRTCICEConnectionState::Completed
                if self.connected_at.is_none() =>
            {
                self.connected_at = Some(Instant::now());
                self.heard_at = self.connected_at;
                log::info!(
                    "{}: connected {} ms after it started",
                    self.id,
                    self.started.elapsed().as_millis()
                );
                vec![]
            }
            WebRTCICEConnectionState::Failed => vec![PeerEvent::Failed(
                "no network path to the peer (ICE failed)".into(),
            )],
            _ => vec![],
        }
    }

    /// Moves this peer's bitrate target with what its receiver reports say, and keeps the
    /// audio loss it reports for Opus's FEC. The media owner gives the shared encoder the
    /// lowest target of all peers.
    fn on_link_reports(&mut self, reports: link_stats::LinkReports) {
        let now = Instant::now();
        // Only what the peer sent counts as hearing from it (not the device's own counters).
        let heard = (reports.video, reports.audio, reports.report_mark);
        let before = &self.last_reports;
        if heard != (before.video, before.audio, before.report_mark) {
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
                log::debug!("{}: retransmissions held to a budget", self.id);
            }
        }
        if let Some(report) = reports.video
            && let Some(change) = self.bitrate.on_report(report, sent_kbps, now)
        {
            if let Some(budget) = &self.retransmissions {
                budget.set_target(change.kbps);
            }
            log::info!(
                "{}: video bitrate {} kbit/s ({:?}; loss {:.1}%, round trip {})",
                self.id,
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
        if let Some(report) = reports.audio {
            // Opus expects 0..=100; the next whole percent up, so that any loss turns FEC on.
            self.audio_loss_percent =
                (report.fraction_lost * 100.0).ceil().clamp(0.0, 100.0) as i32;
        }
    }

    /// The bitrate this peer's link carries, by its own receiver reports.
    pub fn target_kbps(&self) -> u32 {
        self.bitrate.target_kbps()
    }

    pub fn audio_loss_percent(&self) -> i32 {
        self.audio_loss_percent
    }

    /// How long since the connected peer's receiver reports last said anything new (a
    /// browser sends one at least every few seconds while it is there), and whether one has
    /// come at all (before the first, DTLS may still be retrying its handshake on a lossy path).
    pub fn silence(&self) -> Option<(Duration, bool)> {
        let reported = self.last_reports.video.is_some() || self.last_reports.audio.is_some();
        self.heard_at.map(|at| (at.elapsed(), reported))
    }

    pub fn is_connected(&self) -> bool {
        self.connected_at.is_some()
    }

    /// Whether to ask for statistics now: from `STATS_AFTER_CONNECT` after ICE connected. The
    /// controlling agent nominates its pair just after connecting, and libnice 0.1.21's
    /// nomination can abort on a slow CPU (see scripts/peercam_tools/checks.py); nothing is asked of the
    /// agent until that is long done (and no receiver report comes before then anyway).
    pub fn wants_stats(&self) -> bool {
        self.connected_at
            .is_some_and(|at| at.elapsed() > STATS_AFTER_CONNECT)
    }

    /// When the peer must have connected by, if it has not yet.
    pub fn connect_deadline(&self, timeout: Duration) -> Option<Instant> {
        (!self.is_connected()).then(|| self.started + timeout)
    }

    /// How long ago the peer started.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    fn create_offer(&mut self) {
        if self.offer_requested {
            return;
        }
        self.offer_requested = true;
        let tx = self.notices.clone();
        let id = self.id;
        let promise = gst::Promise::with_change_func(move |reply| {
            let result = match reply {
                Ok(Some(reply)) => reply
                    .get::<WebRTCSessionDescription>("offer")
                    .map_err(|e| e.to_string()),
                Ok(None) => Err("empty reply".into()),
                Err(e) => Err(format!("{e:?}")),
            };
            let _ = tx.send((id, Notice::OfferCreated(result)));
        });
        self.webrtc
            .emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
    }

    /// For the warm-up only: makes an offer and sets it locally, blocking. That creates the
    /// DTLS certificate (made once per process), the transports and the ICE agent's sockets,
    /// the slow parts of a first call.
    pub fn rehearse_offer(&self) -> bool {
        let Ok(reply) = wait_for(&self.webrtc, "create-offer", None) else {
            return false;
        };
        let Ok(offer) = reply.get::<WebRTCSessionDescription>("offer") else {
            return false;
        };
        wait_for(&self.webrtc, "set-local-description", Some(&offer)).is_ok()
    }

    /// Starts sending to this peer if webrtcbin's connection state has not done so (it does
    /// the moment DTLS is up); for a peer connected long since.
    pub fn ensure_sending_started(&self) {
        if let Some(start) = &self.send_start {
            start_negotiated(&self.webrtc, start, &self.video_in, self.audio_in.as_ref());
        }
    }

    /// Asks webrtcbin for its statistics; the answer arrives as `Notice::Stats`.
    pub fn request_stats(&self) {
        let tx = self.notices.clone();
        let id = self.id;
        let promise = gst::Promise::with_change_func(move |reply| {
            if let Ok(Some(reply)) = reply {
                let _ = tx.send((id, Notice::Stats(reply.to_owned())));
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
        // An empty candidate only says the peer finished gathering.
        if candidate.candidate.is_empty() {
            return;
        }
        self.webrtc.emit_by_name::<()>(
            "add-ice-candidate",
            &[&candidate.sdp_m_line_index, &candidate.candidate],
        );
    }

    /// Ends this peer's streams with an RTCP BYE naming each SSRC it was sent (`goodbye`), and
    /// gives it a moment to leave before the pipeline stops.
    fn say_goodbye(&self, source: &SharedSource) {
        if !self.is_connected() {
            return;
        }
        let Ok(ssrcs) = source.ssrcs(self.codec) else {
            return;
        };
        let sent = std::iter::once(ssrcs.video).chain(self.audio_in.as_ref().map(|_| ssrcs.audio));
        goodbye::say_goodbye(
            &self.webrtc,
            sent.collect(),
            std::iter::once(&self.video_in).chain(self.audio_in.as_ref()),
        );
        std::thread::sleep(GOODBYE_TIME);
    }

    /// Tears the peer down: it leaves the shared source, says goodbye, and its pipeline goes to
    /// NULL (as `OwnedPipeline` does on drop), which closes sockets and frees elements.
    pub fn stop(self, source: Option<&SharedSource>) {
        if let Some(source) = source {
            source.unsubscribe(&self.video_in, self.audio_in.as_ref());
            self.say_goodbye(source);
        }
        log::info!(
            "{}: ended after {:.1} s",
            self.id,
            self.started.elapsed().as_secs_f32()
        );
        let id = self.id;
        let pipeline = self.pipeline.downgrade();
        drop(self);
        if pipeline.upgrade().is_some() {
            log::debug!("{id}: the pipeline is still referenced after it ended");
        }
        crate::memory::release_free_memory();
    }
}

/// What an owner should check when a peer given `ice` found no network path at all: the TURN
/// server when calls go through one, else how a call from outside the home gets in.
fn no_path_hint(ice: &DeviceIce) -> &'static str {
    match (ice.transport_policy, ice.turn_servers.is_empty()) {
        (crate::signaling::TransportPolicy::Relay, _) => {
            "calls are relay-only: check the TURN server and its credentials"
        }
        (_, false) => "not even through the TURN server: check that both sides can reach it",
        (_, true) => {
            "no TURN server is set: a call from outside the home needs one, or the router's \
             port mapping (docs/remote.md)"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signaling::TransportPolicy;

    #[test]
    fn a_call_with_no_path_is_told_what_to_check() {
        let mut ice = DeviceIce::default();
        assert!(no_path_hint(&ice).contains("no TURN server is set"));
        ice.turn_servers = vec!["turn://u:p@relay.example:3478".into()];
        assert!(no_path_hint(&ice).contains("not even through the TURN server"));
        ice.transport_policy = TransportPolicy::Relay;
        assert!(no_path_hint(&ice).contains("relay-only"));
    }
}
