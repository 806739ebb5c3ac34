//! How a peer's `webrtcbin` is set up and driven, apart from the peer's own state: the elements
//! every call needs, a medium's way in (a pad with no element behind it), the ICE agent's
//! tuning and servers, webrtcbin's unused FEC encoders taken out of the send path, sending
//! started once connected on the streams the far end receives, and actions awaited on a
//! promise.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use gst_webrtc::{
    WebRTCPeerConnectionState, WebRTCRTPTransceiverDirection, WebRTCSessionDescription,
};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_webrtc as gst_webrtc;

use super::error::MediaError;
use super::outlets::SendStart;
use super::peer_events::PeerId;
use super::plan;
use crate::metrics::Metrics;
use crate::signaling::TransportPolicy;
use crate::turn::DeviceIce;

/// The longest webrtcbin may take to answer an offer, an answer or a description: it answers
/// in milliseconds, but a starved board must not hold the media owner (or the start) forever.
const WEBRTC_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Elements every call needs whatever the codec; checked once at start.
pub const REQUIRED_ELEMENTS: [&str; 16] = [
    "webrtcbin",
    "appsink",
    "tee",
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

/// Emits a webrtcbin action that answers on a promise and waits for the reply (a few
/// milliseconds: nothing in them touches the network). An `error` in the reply is returned.
pub(super) fn wait_for(
    webrtc: &gst::Element,
    action: &str,
    description: Option<&WebRTCSessionDescription>,
) -> Result<gst::Structure, String> {
    let (replied, reply) = std::sync::mpsc::sync_channel(1);
    let promise = gst::Promise::with_change_func(move |reply| {
        let reply = match reply {
            Ok(Some(reply)) => Ok(reply.to_owned()),
            Ok(None) => Ok(gst::Structure::new_empty("empty")),
            Err(e) => Err(format!("{e:?}")),
        };
        let _ = replied.try_send(reply);
    });
    match description {
        Some(description) => webrtc.emit_by_name::<()>(action, &[description, &promise]),
        None => webrtc.emit_by_name::<()>(action, &[&None::<gst::Structure>, &promise]),
    }
    let reply = match reply.recv_timeout(WEBRTC_REPLY_TIMEOUT) {
        Ok(reply) => reply?,
        Err(_) => {
            promise.interrupt();
            return Err(format!(
                "webrtcbin did not answer {action} within {} s",
                WEBRTC_REPLY_TIMEOUT.as_secs()
            ));
        }
    };
    match reply.get::<gst::glib::Error>("error") {
        Ok(error) => Err(error.to_string()),
        Err(_) => Ok(reply),
    }
}

/// An audio transceiver that only receives, for a device without a microphone.
pub(super) fn add_receive_only_audio(webrtc: &gst::Element) -> Result<(), MediaError> {
    let caps = plan::audio_caps(plan::AUDIO_PAYLOAD)
        .parse::<gst::Caps>()
        .map_err(|e| MediaError::build("audio transceiver", e))?;
    webrtc.emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>(
        "add-transceiver",
        &[&WebRTCRTPTransceiverDirection::Recvonly, &caps],
    );
    Ok(())
}

/// Adds one medium's way in: a source pad with no element behind it, which the shared source
/// pushes RTP into from its own thread (an `appsrc` would add a thread, a queue and a copy of
/// each frame's list per peer: a quarter of what each extra viewer cost), linked to a new
/// webrtcbin sink pad whose transceiver gets `direction` and prefers `caps` with the source's
/// `ssrc` (so the SDP names it). Returns the pad.
pub(super) fn add_branch(
    webrtc: &gst::Element,
    caps: &str,
    ssrc: u32,
    direction: WebRTCRTPTransceiverDirection,
) -> Result<gst::Pad, MediaError> {
    let what = "a send branch";
    let src = gst::Pad::builder(gst::PadDirection::Src)
        .query_function(|pad, parent, query| match query.view_mut() {
            // Live, and adds no latency of its own.
            gst::QueryViewMut::Latency(latency) => {
                latency.set(true, gst::ClockTime::ZERO, gst::ClockTime::NONE);
                true
            }
            _ => gst::Pad::query_default(pad, parent, query),
        })
        .build();
    src.set_active(true)
        .map_err(|e| MediaError::build(what, e))?;
    let sink = webrtc
        .request_pad_simple("sink_%u")
        .ok_or_else(|| MediaError::build(what, "webrtcbin gave no sink pad"))?;
    src.link(&sink).map_err(|e| MediaError::build(what, e))?;
    let transceiver = sink.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
    transceiver.set_direction(direction);
    let preferred = format!("{caps},ssrc=(uint){ssrc}")
        .parse::<gst::Caps>()
        .map_err(|e| MediaError::build(what, e))?;
    transceiver.set_property("codec-preferences", &preferred);
    if preferred
        .structure(0)
        .is_some_and(|s| s.get::<&str>("media") == Ok("video"))
    {
        // Retransmissions for video: a lost packet costs a resend, not a frozen picture.
        transceiver.set_property("do-nack", true);
    }
    Ok(src)
}

/// Takes webrtcbin's FEC and RED encoders out of each send stream whose FEC and RED were not
/// negotiated (the device never offers or accepts them). webrtcbin 1.22 puts a bin with
/// `rtpulpfecenc` and `rtpredenc` in every stream as its input is connected (at the stream's
/// first caps); both pass packets through unchanged then, but take them one by one, which
/// splits each frame's buffer list into single packets for every element after them, down to
/// one `sendmsg` each. Without them a frame stays one list to the socket. Relinked as the
/// first data (an event) is about to reach them, so nothing is lost.
pub(super) fn bypass_unused_fec_encoders(
    webrtc: &gst::Element,
    id: PeerId,
    metrics: &Arc<Metrics>,
) {
    let Some(webrtc) = webrtc.downcast_ref::<gst::Bin>() else {
        return;
    };
    let metrics = Arc::clone(metrics);
    webrtc.connect_element_added(move |_, element| {
        let Some(bin) = element.downcast_ref::<gst::Bin>() else {
            return;
        };
        let Some(bin_sink) = bin.static_pad("sink") else {
            return;
        };
        let bin = bin.downgrade();
        let metrics = Arc::clone(&metrics);
        bin_sink.connect_linked(move |bin_sink, upstream| {
            let (bin, bin_sink) = (bin.clone(), bin_sink.clone());
            let metrics = Arc::clone(&metrics);
            // Before the first data (events included), when every link is made.
            upstream.add_probe(gst::PadProbeType::BLOCK_DOWNSTREAM, move |upstream, _| {
                if let Some(bin) = bin.upgrade()
                    && bypass_if_unused(&bin, upstream, &bin_sink, id)
                {
                    Metrics::add(&metrics.fec_encoders_bypassed, 1);
                }
                gst::PadProbeReturn::Remove
            });
        });
    });
}

/// Links `upstream` past `bin` when it is webrtcbin's FEC encoder bin with FEC and RED off;
/// whether it did.
fn bypass_if_unused(bin: &gst::Bin, upstream: &gst::Pad, bin_sink: &gst::Pad, id: PeerId) -> bool {
    let find = |factory: &str| {
        bin.iterate_elements()
            .into_iter()
            .flatten()
            .find(|e| e.factory().is_some_and(|f| f.name() == factory))
    };
    let (Some(fec), Some(red)) = (find("rtpulpfecenc"), find("rtpredenc")) else {
        return false;
    };
    // webrtcbin gives them the negotiated payload types: none (255, 0) when not agreed.
    let fec_in_use = fec.property::<u32>("pt") < 128 && fec.property::<u32>("percentage") > 0;
    let red_in_use = red.property::<i32>("pt") > 0;
    if fec_in_use || red_in_use {
        return false;
    }
    let Some(bin_src) = bin.static_pad("src") else {
        return false;
    };
    let Some(downstream) = bin_src.peer() else {
        return false;
    };
    let relinked = upstream.unlink(bin_sink).is_ok()
        && bin_src.unlink(&downstream).is_ok()
        && upstream.link(&downstream).is_ok();
    if relinked {
        log::debug!("{id}: FEC and RED encoders of {} bypassed", bin.name());
    } else {
        log::warn!(
            "{id}: the unused FEC encoder of {} could not be bypassed",
            bin.name()
        );
    }
    relinked
}

/// Starts the peer's video, with what the shared source held for it, and its audio once
/// webrtcbin's connection (ICE and DTLS) is up: RTP sent before then is lost.
pub(super) fn start_sending_when_connected(
    webrtc: &gst::Element,
    start: SendStart,
    video: gst::Pad,
    audio: Option<gst::Pad>,
) {
    webrtc.connect_notify(Some("connection-state"), move |webrtc, _| {
        let state = webrtc.property::<WebRTCPeerConnectionState>("connection-state");
        if state == WebRTCPeerConnectionState::Connected {
            start_negotiated(webrtc, &start, &video, audio.as_ref());
        }
    });
}

/// Starts sending on each of the peer's pads whose stream the far end agreed to receive.
/// webrtcbin blocks the pad of a stream it did not negotiate to send (an m-line the far end
/// rejected, made inactive or only sends on) for good, and a push into it would hold up the
/// source's thread, and every peer with it. (webrtcbin 1.22's `current-direction` says
/// `sendrecv` even then, so the far end's description is read instead.)
pub(super) fn start_negotiated(
    webrtc: &gst::Element,
    start: &SendStart,
    video: &gst::Pad,
    audio: Option<&gst::Pad>,
) {
    if far_end_receives(webrtc, video) {
        start.video();
    }
    if audio.is_some_and(|pad| far_end_receives(webrtc, pad)) {
        start.audio();
    }
}

/// Whether the far end's description takes what goes into `pad`: its m-line is neither
/// rejected (port 0) nor `inactive` or `sendonly`.
fn far_end_receives(webrtc: &gst::Element, pad: &gst::Pad) -> bool {
    let Some(sink) = pad.peer() else {
        return false;
    };
    let transceiver = sink.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
    let index = transceiver.property::<u32>("mlineindex");
    let Some(remote) =
        webrtc.property::<Option<WebRTCSessionDescription>>("current-remote-description")
    else {
        return false;
    };
    remote.sdp().media(index).is_some_and(|media| {
        media.port() != 0
            && !media
                .attributes()
                .any(|a| matches!(a.key(), "inactive" | "sendonly"))
    })
}

/// Gives webrtcbin the call's STUN and TURN servers and its transport policy.
pub(super) fn use_ice_servers(webrtc: &gst::Element, ice: &DeviceIce) {
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

/// How many times libnice sends a STUN request before the transaction fails (libnice 0.1.21:
/// 3). A connectivity check waits at least 500 ms for each, and the controlling agent (the
/// device, which offers) nominates a working pair only once the higher-priority pairs still in
/// progress have failed; so after a phone changes networks, pairs that can no longer be
/// answered held the resumed call for 2 s (`network_change.test.mjs`: reconnected after 2.7 s
/// with 3, 1.45 s with 2). The browser's own checks still trigger a check of any pair that
/// works, so one transmission fewer costs little on a lossy path.
const STUN_TRANSMISSIONS: u32 = 2;

/// libnice's own UPnP-IGD: off. Debian builds libnice with it and it is on by default: every
/// call asked the router for a 7-day forward, raced against a 200 ms timeout, unasked and
/// unsaid. Port mapping is the daemon's (`port_mapping`, `[remote] port_mapping`): made once at
/// start for a fixed port range, on short leases, and each call's forwarded host candidate gets
/// its reflexive twin from `reachability::forwarded_candidate`.
const LIBNICE_UPNP: bool = false;

/// Paces libnice's connectivity checks every `ICE_CHECK_PACING_MS`, and gathers UDP host
/// candidates only: no ICE-TCP (see `ICE_TCP`); gives up on a STUN request after
/// `STUN_TRANSMISSIONS`; no UPnP of its own (`LIBNICE_UPNP`); binds its sockets within
/// `ports` when given (`[remote] media_ports`).
pub(super) fn tune_ice_agent(webrtc: &gst::Element, ports: Option<&RangeInclusive<u16>>) {
    let ice = webrtc.property::<gst::glib::Object>("ice-agent");
    if let Some(ports) = ports
        && ice.find_property("min-rtp-port").is_some()
    {
        // Set the maximum first: the element refuses a minimum above the current maximum.
        ice.set_property("max-rtp-port", u32::from(*ports.end()));
        ice.set_property("min-rtp-port", u32::from(*ports.start()));
    }
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
    if agent.find_property("stun-max-retransmissions").is_some() {
        agent.set_property("stun-max-retransmissions", STUN_TRANSMISSIONS);
    }
    if agent.find_property("upnp").is_some() {
        agent.set_property("upnp", LIBNICE_UPNP);
    }
}

/// libnice skips loopback and uses every interface by default; once any address is added it uses
/// only the added ones. So extra addresses are added together with every interface address.
pub(super) fn add_ice_addresses(webrtc: &gst::Element, extra: &[std::net::IpAddr]) {
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
