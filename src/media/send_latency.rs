//! How long a video frame spends inside the daemon after the encoder: from the encoded buffer
//! reaching the shared source's payloader to the last RTP packet of that frame reaching the
//! caller's socket (the sink pad of webrtcbin's `nicesink`, after the hand-over to the caller's
//! pipeline, RTP session handling and SRTP). Pad probes stamp each frame once, at the source;
//! the RTP header, which SRTP leaves in clear, ties packets back to frames. Frames that waited
//! for the call to connect are left out. The samples go to `metrics::SendLatency`, served at
//! `/metrics` as a summary (p50, p99), for benchmarks.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::metrics::Metrics;

/// Frames remembered between the payloader and the socket; more are in flight only if the
/// socket is stuck, and then old entries are dropped.
const FRAMES_IN_FLIGHT: usize = 64;
/// Frames on their way from the shared payloader to the peers' sockets.
#[derive(Debug, Default)]
struct InFlight {
    /// (PTS, when the encoded frame, or its last piece, reached the payloader).
    encoded: VecDeque<(gst::ClockTime, Instant)>,
    /// (RTP timestamp, when its frame reached the payloader).
    packetized: VecDeque<(u32, Instant)>,
}

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T) {
    if queue.len() == FRAMES_IN_FLIGHT {
        queue.pop_front();
    }
    queue.push_back(item);
}

/// What the latency (and the shared source's frame gathering) needs of an RTP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RtpHeader {
    pub timestamp: u32,
    pub marker: bool,
    pub ssrc: u32,
}

/// The RTP header of a packet, unless it is RTCP or not RTP at all.
fn rtp_header(packet: &[u8]) -> Option<RtpHeader> {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        return None;
    }
    // RTCP packet types 192..=223 sit where RTP has the marker bit and payload type.
    if (192..=223).contains(&packet[1]) {
        return None;
    }
    let word = |at: usize| {
        u32::from_be_bytes([packet[at], packet[at + 1], packet[at + 2], packet[at + 3]])
    };
    Some(RtpHeader {
        timestamp: word(4),
        marker: packet[1] & 0x80 != 0,
        ssrc: word(8),
    })
}

/// The RTP header of a packet, read by copying its first bytes: mapping a buffer of several
/// memories would merge them (a copy of the whole packet).
pub(super) fn read_header(buffer: &gst::BufferRef) -> Option<RtpHeader> {
    let mut header = [0u8; 12];
    buffer.copy_to_slice(0, &mut header).ok()?;
    rtp_header(&header)
}

/// The buffers a probe sees, one or a list, without copying the list.
fn buffers<'a>(info: &'a gst::PadProbeInfo<'_>) -> impl Iterator<Item = &'a gst::BufferRef> {
    let (single, list) = match &info.data {
        Some(gst::PadProbeData::Buffer(buffer)) => (Some(&**buffer), None),
        Some(gst::PadProbeData::BufferList(list)) => (None, Some(list.iter())),
        _ => (None, None),
    };
    single.into_iter().chain(list.into_iter().flatten())
}

/// When each video frame reached the shared payloader, by its RTP timestamp; cheap to clone.
#[derive(Debug, Clone)]
pub struct FrameStamps(std::sync::Arc<Mutex<InFlight>>);

impl FrameStamps {
    /// Stamps the frames going through `pay`, the shared source's video payloader.
    pub fn watch(pay: &gst::Element) -> Option<Self> {
        let stamps = Self(std::sync::Arc::default());
        let (pay_sink, pay_src) = (pay.static_pad("sink")?, pay.static_pad("src")?);
        let in_flight = std::sync::Arc::clone(&stamps.0);
        pay_sink.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let (Some(gst::PadProbeData::Buffer(buffer)), Ok(mut frames)) =
                (&info.data, in_flight.lock())
                && let Some(pts) = buffer.pts()
            {
                // A frame that comes in pieces (NAL units, slices) is ready when its last piece
                // is: the time the payloader waited for the source is not time the daemon added.
                let now = Instant::now();
                match frames.encoded.back_mut() {
                    Some((last, at)) if *last == pts => *at = now,
                    _ => push_bounded(&mut frames.encoded, (pts, now)),
                }
            }
            gst::PadProbeReturn::Ok
        });
        let in_flight = std::sync::Arc::clone(&stamps.0);
        let probes = gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST;
        pay_src.add_probe(probes, move |_, info| {
            let Ok(mut frames) = in_flight.lock() else {
                return gst::PadProbeReturn::Ok;
            };
            for buffer in buffers(info) {
                let Some(pts) = buffer.pts() else { continue };
                // The newest match: a source may give two frames the same timestamp.
                let Some(&(_, encoded_at)) = frames.encoded.iter().rev().find(|(p, _)| *p == pts)
                else {
                    continue;
                };
                let Some(header) = read_header(buffer) else {
                    continue;
                };
                match frames.packetized.back_mut() {
                    Some((last, at)) if *last == header.timestamp => *at = encoded_at,
                    _ => push_bounded(&mut frames.packetized, (header.timestamp, encoded_at)),
                }
            }
            gst::PadProbeReturn::Ok
        });
        Some(stamps)
    }

    /// When the frame with this RTP timestamp reached the payloader.
    fn encoded_at(&self, timestamp: u32) -> Option<Instant> {
        let frames = self.0.lock().ok()?;
        frames
            .packetized
            .iter()
            .rev()
            .find(|(t, _)| *t == timestamp)
            .map(|&(_, at)| at)
    }
}

/// Times one peer's video frames from the shared payloader to its socket: `webrtc` is the
/// peer's webrtcbin, whose `nicesink` appears once the transport is made; `ssrc` the video
/// stream's (retransmissions and audio have others).
pub fn watch(
    webrtc: &gst::Element,
    stamps: FrameStamps,
    ssrc: u32,
    metrics: std::sync::Arc<Metrics>,
) {
    let Some(bin) = webrtc.downcast_ref::<gst::Bin>() else {
        return;
    };
    bin.connect_deep_element_added(move |_, _, element| {
        let is_nicesink = element
            .factory()
            .is_some_and(|factory| factory.name() == "nicesink");
        let Some(sink) = is_nicesink.then(|| element.static_pad("sink")).flatten() else {
            return;
        };
        let stamps = stamps.clone();
        let metrics = std::sync::Arc::clone(&metrics);
        // When the first frame reached the socket: frames encoded before it waited for ICE
        // and DTLS, which is call set-up, not time added per frame, and are not counted.
        let first_sent = std::sync::OnceLock::new();
        let probes = gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST;
        sink.add_probe(probes, move |_, info| {
            let now = Instant::now();
            for buffer in buffers(info) {
                let Some(header) = read_header(buffer).filter(|h| h.marker && h.ssrc == ssrc)
                else {
                    continue;
                };
                if let Some(encoded_at) = stamps.encoded_at(header.timestamp) {
                    let first_sent = *first_sent.get_or_init(|| now);
                    if encoded_at >= first_sent {
                        metrics.send_latency.record(now.duration_since(encoded_at));
                    }
                }
            }
            gst::PadProbeReturn::Ok
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rtp_headers_and_skips_rtcp() {
        let mut rtp = [0u8; 12];
        rtp[0] = 0x80;
        rtp[1] = 0x80 | 96;
        rtp[4..8].copy_from_slice(&123_456u32.to_be_bytes());
        rtp[8..12].copy_from_slice(&0xdead_beefu32.to_be_bytes());
        let header = |timestamp, marker| {
            Some(RtpHeader {
                timestamp,
                marker,
                ssrc: 0xdead_beef,
            })
        };
        assert_eq!(rtp_header(&rtp), header(123_456, true));
        rtp[1] = 96;
        assert_eq!(rtp_header(&rtp), header(123_456, false));
        let mut rtcp = rtp;
        rtcp[1] = 200;
        assert_eq!(rtp_header(&rtcp), None);
        assert_eq!(rtp_header(&rtp[..8]), None);
        assert_eq!(rtp_header(&[0u8; 12]), None);
    }
}
