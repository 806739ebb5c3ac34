//! One probe call: join the far end (the device's room, or a Janus stream for comparison),
//! answer its offer with an independent WebRTC stack (webrtc-rs), trickle candidates both ways,
//! receive video and audio, and time each step up to the first keyframe a decoder could start
//! from. It receives as a browser does: receiver reports, a NACK for each missing video packet
//! (the probe's own, from its frame tracker: webrtc-rs's generator does not see packets that
//! come back by RTX and asks again and again), and a keyframe request (PLI) whenever no
//! decodable keyframe has arrived yet or the chain of frames broke.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_rtcp_reports, configure_twcc_receiver_only,
};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    TransportLayerNack, nack_pairs_from_sequence_numbers,
};
use rtc::rtp_transceiver::rtp_sender::RTCPFeedback;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use serde::Serialize;
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceTransportPolicy, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder, StatsSelector,
};

use super::error::ProbeError;
use super::far_end::{FarEnd, Target};
use super::signal::{CallPlan, IceConfiguration, Signal, SrtpOffer};
use super::stream_stats::{Packet, PayloadKind, Second, StreamStats, StreamSummary};
use super::whep::WhepSession;

/// Time between rounds of ICE connectivity checks.
const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(20);
/// How long a candidate pair is tried before it is given up.
const ICE_PAIR_PATIENCE: Duration = Duration::from_millis(1400);

/// How often a keyframe is asked for while one is needed, as browsers do.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(250);

impl SrtpOffer {
    /// The profiles, in the order they are offered.
    fn profiles(self) -> Vec<SrtpProtectionProfile> {
        let aes_cm = [
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_32,
        ];
        match self {
            Self::Browser => [
                SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
                SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm,
            ]
            .into_iter()
            .chain(aes_cm)
            .collect(),
            Self::AesCmOnly => aes_cm[..1].to_vec(),
        }
    }
}

/// Milliseconds from the start of the call (opening the signaling connection) to each step.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub joined_ms: f64,
    pub offer_ms: Option<f64>,
    pub connected_ms: Option<f64>,
    pub first_packet_ms: Option<f64>,
    pub first_keyframe_ms: Option<f64>,
}

/// What one call measured.
#[derive(Debug, Clone, Serialize)]
pub struct CallReport {
    pub video_codec: Option<String>,
    /// The SRTP profile the DTLS handshake settled on, as getStats names it.
    pub srtp_cipher: Option<String>,
    pub timings: Timings,
    pub video: Option<StreamSummary>,
    pub audio: Option<StreamSummary>,
    /// Seconds of media received after the first keyframe.
    pub received_seconds: f64,
    /// The video's bitrate and decoded frames in each second from its first packet.
    pub video_seconds: Vec<Second>,
}

/// Things the WebRTC stack tells the call loop.
enum Event {
    LocalCandidate(RTCIceCandidateInit),
    Connected(Instant),
    Failed(String),
    FirstKeyframe(Instant),
}

/// The streams of the call, filled in by the track readers.
#[derive(Default)]
struct Streams {
    video: Option<(String, StreamStats)>,
    audio: Option<StreamStats>,
}

#[derive(Clone)]
struct Handler {
    events: mpsc::UnboundedSender<Event>,
    streams: Arc<Mutex<Streams>>,
    started: Instant,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => {
                let _ = self.events.send(Event::LocalCandidate(init));
            }
            Err(e) => log::debug!("skipping a local candidate: {e}"),
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        log::debug!("connection state: {state}");
        let event = match state {
            RTCPeerConnectionState::Connected => Event::Connected(Instant::now()),
            RTCPeerConnectionState::Failed => {
                Event::Failed("ICE or DTLS failed: no route to the device's media".into())
            }
            _ => return,
        };
        let _ = self.events.send(event);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let kind = track.kind().await;
        let Some(ssrc) = track.ssrcs().await.first().copied() else {
            return;
        };
        let codec = track.codec(ssrc).await;
        let (mime, clock_rate) = codec.map_or_else(
            || (String::new(), 90_000),
            |c| (c.mime_type.clone(), c.clock_rate),
        );
        let stats = StreamStats::new(PayloadKind::from_mime(&mime), clock_rate, self.started);
        {
            let Ok(mut streams) = self.streams.lock() else {
                return;
            };
            match kind {
                RtpCodecKind::Video => streams.video = Some((mime, stats)),
                _ => streams.audio = Some(stats),
            }
        }
        tokio::spawn(read_track(
            track,
            kind == RtpCodecKind::Video,
            ssrc,
            self.clone(),
        ));
    }
}

/// Feeds a track's packets into its statistics; for video, sends the NACKs and keyframe
/// requests they ask for.
async fn read_track(track: Arc<dyn TrackRemote>, video: bool, ssrc: u32, handler: Handler) {
    let mut last_request: Option<Instant> = None;
    while let Some(event) = track.poll().await {
        let TrackRemoteEvent::OnRtpPacket(rtp) = event else {
            if matches!(event, TrackRemoteEvent::OnEnded) {
                break;
            }
            continue;
        };
        let arrival = Instant::now();
        let packet = Packet {
            sequence_number: rtp.header.sequence_number,
            timestamp: rtp.header.timestamp,
            marker: rtp.header.marker,
            payload: &rtp.payload,
            arrival,
        };
        let (first_keyframe, nacks, wants_keyframe) = {
            let Ok(mut streams) = handler.streams.lock() else {
                break;
            };
            match (video, &mut *streams) {
                (true, Streams { video: Some(v), .. }) => {
                    let stats = &mut v.1;
                    let first = stats.on_packet(&packet);
                    let wants = stats.wants_keyframe()
                        && last_request.is_none_or(|t| t.elapsed() >= KEYFRAME_REQUEST_INTERVAL);
                    if wants {
                        stats.keyframe_requested();
                    }
                    (first, stats.due_nacks(arrival), wants)
                }
                (false, Streams { audio: Some(a), .. }) => (a.on_packet(&packet), vec![], false),
                _ => (false, vec![], false),
            }
        };
        if first_keyframe {
            let _ = handler.events.send(Event::FirstKeyframe(arrival));
        }
        if !nacks.is_empty() {
            let nack = TransportLayerNack {
                sender_ssrc: 0,
                media_ssrc: ssrc,
                nacks: nack_pairs_from_sequence_numbers(&nacks),
            };
            if let Err(e) = track.write_rtcp(vec![Box::new(nack)]).await {
                log::debug!("NACK not sent: {e}");
            }
        }
        if wants_keyframe {
            last_request = Some(arrival);
            let request = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: ssrc,
            };
            if let Err(e) = track.write_rtcp(vec![Box::new(request)]).await {
                log::debug!("keyframe request not sent: {e}");
            }
        }
    }
}

/// Where the probe's media socket binds: the local address that routes to the device; for a
/// device on this machine, every non-loopback interface (as the device's own candidates are),
/// since ICE stacks do not pair loopback candidates with others.
fn media_bind_address(device: SocketAddr) -> Result<SocketAddr, ProbeError> {
    let any: IpAddr = if device.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    if device.ip().is_loopback() {
        return Ok(SocketAddr::new(any, 0));
    }
    let socket = std::net::UdpSocket::bind(SocketAddr::new(any, 0)).map_err(ProbeError::Local)?;
    socket.connect(device).map_err(ProbeError::Local)?;
    let local = socket.local_addr().map_err(ProbeError::Local)?;
    Ok(SocketAddr::new(local.ip(), 0))
}

fn millis(since: Instant, at: Instant) -> f64 {
    at.saturating_duration_since(since).as_secs_f64() * 1000.0
}

/// Makes one call and measures it.
pub async fn call(target: &Target, plan: &CallPlan) -> Result<CallReport, ProbeError> {
    let started = Instant::now();
    let bind = media_bind_address(target.address())?;
    let (mut far_end, ice) = tokio::time::timeout(plan.timeout, FarEnd::join(target, plan))
        .await
        .map_err(|_| ProbeError::NoAnswer(plan.timeout))??;
    let mut timings = Timings {
        joined_ms: millis(started, Instant::now()),
        ..Timings::default()
    };

    let (events_tx, mut events) = mpsc::unbounded_channel();
    let streams = Arc::new(Mutex::new(Streams::default()));
    let handler = Handler {
        events: events_tx,
        streams: Arc::clone(&streams),
        started,
    };
    let peer = build_peer(ice, handler, bind, plan.srtp).await?;

    let outcome = run_call(
        &mut far_end,
        &peer,
        &mut events,
        plan,
        started,
        &mut timings,
    )
    .await;
    let srtp_cipher = peer
        .get_stats(Instant::now(), StatsSelector::None)
        .await
        .transport()
        .map(|transport| transport.srtp_cipher.clone())
        .filter(|cipher| !cipher.is_empty());
    far_end.hang_up().await;
    if let Err(e) = peer.close().await {
        log::debug!("closing the peer connection: {e}");
    }
    let received_seconds = outcome?;

    let streams = streams
        .lock()
        .map_err(|_| ProbeError::Signaling("a track reader panicked".into()))?;
    timings.first_packet_ms = streams
        .video
        .as_ref()
        .and_then(|(_, s)| s.first_packet_at())
        .map(|at| millis(started, at));
    Ok(CallReport {
        video_codec: streams.video.as_ref().map(|(mime, _)| mime.clone()),
        srtp_cipher,
        timings,
        video: streams.video.as_ref().map(|(_, s)| s.summary()),
        audio: streams.audio.as_ref().map(StreamStats::summary),
        received_seconds,
        video_seconds: streams
            .video
            .as_ref()
            .map(|(_, s)| s.seconds())
            .unwrap_or_default(),
    })
}

async fn build_peer(
    ice: IceConfiguration,
    handler: Handler,
    bind: SocketAddr,
    srtp: SrtpOffer,
) -> Result<impl PeerConnection, ProbeError> {
    let webrtc = |e: rtc::shared::error::Error| ProbeError::WebRtc(e.to_string());
    let mut media = MediaEngine::default();
    media.register_default_codecs().map_err(webrtc)?;
    // Feedback as a browser offers it; the probe sends its own NACKs (see the module doc), so
    // of the default interceptors it keeps receiver reports and transport-wide feedback.
    for parameter in ["", "pli"] {
        media.register_feedback(
            RTCPFeedback {
                typ: "nack".into(),
                parameter: parameter.into(),
            },
            RtpCodecKind::Video,
        );
    }
    let registry =
        configure_twcc_receiver_only(configure_rtcp_reports(Registry::new()), &mut media)
            .map_err(webrtc)?;
    let mut configuration = RTCConfigurationBuilder::new().with_ice_servers(ice.servers);
    if ice.relay_only {
        configuration = configuration.with_ice_transport_policy(RTCIceTransportPolicy::Relay);
    }
    // The far end sends plain addresses, so there are no .local names to resolve; and a
    // multicast socket cannot even be opened on a host (or test namespace) without a route.
    // Connectivity checks paced as browsers pace them (webrtc-rs waits 200 ms between rounds,
    // which alone added ~200 ms to every call), over the same 1.4 s before giving up on a pair.
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_srtp_protection_profiles(srtp.profiles())
        .with_ice_connection_attempts(
            Some(ICE_CHECK_INTERVAL),
            Some((ICE_PAIR_PATIENCE.as_millis() / ICE_CHECK_INTERVAL.as_millis()) as u16),
        )
        .build();
    PeerConnectionBuilder::new()
        .with_configuration(configuration.build())
        .with_setting_engine(settings)
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(handler) as Arc<dyn PeerConnectionEventHandler>)
        .with_udp_addrs(vec![bind])
        .build()
        .await
        .map_err(webrtc)
}

/// As a WHEP viewer: receive-only video and audio offered, the device's answer taken.
async fn offer_to_whep(
    session: &mut WhepSession,
    peer: &impl PeerConnection,
    video_only: bool,
) -> Result<(), ProbeError> {
    let webrtc = |e: rtc::shared::error::Error| ProbeError::WebRtc(e.to_string());
    let kinds: &[RtpCodecKind] = if video_only {
        &[RtpCodecKind::Video]
    } else {
        &[RtpCodecKind::Video, RtpCodecKind::Audio]
    };
    for &kind in kinds {
        peer.add_transceiver_from_kind(
            kind,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                streams: Vec::new(),
                send_encodings: Vec::new(),
            }),
        )
        .await
        .map_err(webrtc)?;
    }
    let offer = peer.create_offer(None).await.map_err(webrtc)?;
    let sdp = offer.sdp.clone();
    peer.set_local_description(offer).await.map_err(webrtc)?;
    let answer = session.offer(&sdp).await?;
    let answer = RTCSessionDescription::answer(answer).map_err(webrtc)?;
    peer.set_remote_description(answer).await.map_err(webrtc)
}

/// Drives the call from joining to the end of its receiving time; returns the seconds of media
/// received after the first keyframe.
async fn run_call(
    far_end: &mut FarEnd,
    peer: &impl PeerConnection,
    events: &mut mpsc::UnboundedReceiver<Event>,
    plan: &CallPlan,
    started: Instant,
    timings: &mut Timings,
) -> Result<f64, ProbeError> {
    let webrtc = |e: rtc::shared::error::Error| ProbeError::WebRtc(e.to_string());
    let mut deadline = tokio::time::Instant::from_std(started + plan.timeout);
    let mut first_keyframe: Option<Instant> = None;
    if let FarEnd::Whep(session) = far_end {
        offer_to_whep(session, peer, plan.video_only).await?;
        timings.offer_ms = Some(millis(started, Instant::now()));
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {
                return match first_keyframe {
                    Some(at) => Ok(at.elapsed().as_secs_f64()),
                    None => Err(ProbeError::NoFrames(plan.timeout)),
                };
            }
            signal = far_end.next() => match signal? {
                Signal::Offer(sdp) => {
                    timings.offer_ms = Some(millis(started, Instant::now()));
                    let audio_mids = if plan.video_only { audio_mids(&sdp) } else { Vec::new() };
                    let offer = RTCSessionDescription::offer(sdp).map_err(webrtc)?;
                    peer.set_remote_description(offer).await.map_err(webrtc)?;
                    for transceiver in peer.get_transceivers().await {
                        let mid = transceiver.mid().await.map_err(webrtc)?;
                        if mid.is_some_and(|mid| audio_mids.contains(&mid)) {
                            transceiver
                                .set_direction(RTCRtpTransceiverDirection::Inactive)
                                .await
                                .map_err(webrtc)?;
                        }
                    }
                    let answer = peer.create_answer(None).await.map_err(webrtc)?;
                    let sdp = answer.sdp.clone();
                    peer.set_local_description(answer).await.map_err(webrtc)?;
                    far_end.answer(sdp).await?;
                }
                Signal::Candidate(init) => {
                    if let Err(e) = peer.add_ice_candidate(init).await {
                        log::debug!("a remote candidate was not usable: {e}");
                    }
                }
                Signal::Bye(reason) => return Err(ProbeError::HungUp(reason)),
            },
            Some(event) = events.recv() => match event {
                Event::LocalCandidate(init) => far_end.candidate(init).await?,
                Event::Connected(at) => timings.connected_ms = Some(millis(started, at)),
                Event::Failed(why) => return Err(ProbeError::WebRtc(why)),
                Event::FirstKeyframe(at) => {
                    first_keyframe = Some(at);
                    timings.first_keyframe_ms = Some(millis(started, at));
                    deadline = tokio::time::Instant::from_std(at + plan.duration);
                }
            },
        }
    }
}

/// The `mid`s of an SDP's audio sections.
fn audio_mids(sdp: &str) -> Vec<String> {
    let mut mids = Vec::new();
    let mut in_audio = false;
    for line in sdp.lines() {
        if line.starts_with("m=") {
            in_audio = line.starts_with("m=audio");
        } else if in_audio && let Some(mid) = line.strip_prefix("a=mid:") {
            mids.push(mid.trim().to_owned());
        }
    }
    mids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audio_sections_mids_are_found() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:video0\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:audio1\r\n";
        assert_eq!(audio_mids(sdp), ["audio1"]);
    }

    #[test]
    fn browsers_offer_gcm_first_and_the_comparison_offers_gstreamers_one_profile() {
        let browser = SrtpOffer::Browser.profiles();
        assert_eq!(browser[0], SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm);
        assert!(browser.contains(&SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80));
        assert_eq!(
            SrtpOffer::AesCmOnly.profiles(),
            [SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80]
        );
    }
}
