//! What the probe learns from one received RTP stream, packet by packet: when the first frame a
//! decoder could start from arrived (a complete keyframe with its parameter sets), the frames
//! a browser would decode (`frames`: complete, in an unbroken chain from a keyframe) and their
//! rate, freezes, bytes and bitrate second by second, packet loss left after retransmission,
//! and interarrival jitter as RFC 3550 §6.4.1 defines it. Pure: the caller passes each packet's
//! header fields and arrival time, and sends the NACKs and keyframe requests asked for.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::frames::{DecodedFrame, FrameTracker, PacketIn};

/// Decoded frames whose spacing sets the "normal" frame interval for freezes.
const FREEZE_WINDOW: usize = 30;

/// How a stream's payload is read to find keyframes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// RFC 6184: single NAL units, STAP-A and FU-A.
    H264,
    /// RFC 7741: the VP8 payload descriptor and header.
    Vp8,
    /// Audio or anything else: packets, loss and jitter only.
    Other,
}

impl PayloadKind {
    /// From a codec's MIME type, as in `video/H264`.
    pub fn from_mime(mime: &str) -> Self {
        let lower = mime.to_ascii_lowercase();
        if lower.ends_with("/h264") {
            Self::H264
        } else if lower.ends_with("/vp8") {
            Self::Vp8
        } else {
            Self::Other
        }
    }
}

/// The header fields and payload of one RTP packet, as they arrived.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub sequence_number: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: &'a [u8],
    pub arrival: Instant,
}

/// Running statistics of one stream.
#[derive(Debug, Clone)]
pub struct StreamStats {
    kind: PayloadKind,
    clock_rate: u32,
    started: Instant,
    packets: u64,
    bytes: u64,
    first_packet_at: Option<Instant>,
    first_sequence: Option<i64>,
    highest_sequence: i64,
    jitter: f64,
    last_transit: Option<f64>,
    /// Video only: the frames as a browser's jitter buffer has them.
    tracker: Option<FrameTracker>,
    seen_sps: bool,
    seen_pps: bool,
    first_keyframe_at: Option<Instant>,
    frames_since_keyframe: u64,
    last_frame_at: Option<Instant>,
    keyframes: u64,
    recent_intervals: VecDeque<f64>,
    freezes: u64,
    freeze_seconds: f64,
    longest_gap_seconds: f64,
    keyframe_requests: u64,
    /// Bytes and decoded frames in each second from the first packet on.
    per_second: Vec<(u64, u64)>,
}

/// A summary of the stream at one moment.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct StreamSummary {
    pub packets: u64,
    pub bytes: u64,
    /// Packets expected from the sequence numbers but never received.
    pub lost: u64,
    pub loss_percent: f64,
    pub jitter_ms: f64,
    /// Complete frames from the first decodable keyframe on (video only).
    pub frames: u64,
    pub keyframes: u64,
    pub fps: f64,
    pub bitrate_kbps: f64,
    /// Gaps between decoded frames of at least three times the recent frame interval (and
    /// 150 ms more than it), as `freezeCount` in WebRTC's statistics counts them.
    pub freezes: u64,
    pub freeze_seconds: f64,
    pub longest_gap_ms: f64,
    /// Video: frames given up or undecodable for want of a keyframe.
    pub frames_dropped: u64,
    pub duplicates: u64,
    /// Video: packets asked for again (NACK), packets that came after being asked for, and
    /// keyframe requests (PLI) sent.
    pub nacked: u64,
    pub recovered: u64,
    pub keyframe_requests: u64,
}

/// One second of a stream.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Second {
    pub kbps: f64,
    pub frames: u64,
}

impl StreamStats {
    pub fn new(kind: PayloadKind, clock_rate: u32, started: Instant) -> Self {
        Self {
            kind,
            clock_rate: clock_rate.max(1),
            started,
            packets: 0,
            bytes: 0,
            first_packet_at: None,
            first_sequence: None,
            highest_sequence: 0,
            jitter: 0.0,
            last_transit: None,
            tracker: (kind != PayloadKind::Other).then(FrameTracker::new),
            seen_sps: false,
            seen_pps: false,
            first_keyframe_at: None,
            frames_since_keyframe: 0,
            last_frame_at: None,
            keyframes: 0,
            recent_intervals: VecDeque::new(),
            freezes: 0,
            freeze_seconds: 0.0,
            longest_gap_seconds: 0.0,
            keyframe_requests: 0,
            per_second: Vec::new(),
        }
    }

    /// Takes one packet in. Returns true when it let the first decodable keyframe through.
    pub fn on_packet(&mut self, packet: &Packet<'_>) -> bool {
        let first = *self.first_packet_at.get_or_insert(packet.arrival);
        let second = packet.arrival.saturating_duration_since(first).as_secs() as usize;
        self.bytes += packet.payload.len() as u64;
        self.second(second).0 += packet.payload.len() as u64;
        let keyframe = self.read_payload(packet.payload);
        let Some(tracker) = &mut self.tracker else {
            self.packets += 1;
            self.track_sequence(packet.sequence_number);
            self.track_jitter(packet.timestamp, packet.arrival);
            return false;
        };
        let duplicates = tracker.counts().duplicates;
        let decoded = tracker.on_packet(PacketIn {
            sequence_number: packet.sequence_number,
            timestamp: packet.timestamp,
            marker: packet.marker,
            keyframe,
            arrival: packet.arrival,
        });
        if tracker.counts().duplicates == duplicates {
            self.packets += 1;
            self.track_sequence(packet.sequence_number);
            self.track_jitter(packet.timestamp, packet.arrival);
        }
        let had_keyframe = self.first_keyframe_at.is_some();
        for frame in decoded {
            self.on_decoded(frame);
        }
        !had_keyframe && self.first_keyframe_at.is_some()
    }

    /// Video: the sequence numbers to ask for again now (NACK).
    pub fn due_nacks(&mut self, now: Instant) -> Vec<u16> {
        self.tracker
            .as_mut()
            .map(|t| t.due_nacks(now))
            .unwrap_or_default()
    }

    /// Video: whether a keyframe is needed (none yet, or the chain of frames broke); when the
    /// caller sends a request it says so with `keyframe_requested`.
    pub fn wants_keyframe(&self) -> bool {
        self.tracker
            .as_ref()
            .is_some_and(FrameTracker::wants_keyframe)
    }

    pub fn keyframe_requested(&mut self) {
        self.keyframe_requests += 1;
    }

    /// Bitrate and decoded frames, second by second from the first packet.
    pub fn seconds(&self) -> Vec<Second> {
        self.per_second
            .iter()
            .map(|&(bytes, frames)| Second {
                kbps: bytes as f64 * 8.0 / 1000.0,
                frames,
            })
            .collect()
    }

    fn second(&mut self, index: usize) -> &mut (u64, u64) {
        // A day's seconds at most: a bound on memory whatever the clock says.
        let index = index.min(86_400);
        if self.per_second.len() <= index {
            self.per_second.resize(index + 1, (0, 0));
        }
        &mut self.per_second[index]
    }

    fn on_decoded(&mut self, frame: DecodedFrame) {
        if frame.keyframe {
            self.keyframes += 1;
            self.first_keyframe_at.get_or_insert(frame.at);
        }
        if self.first_keyframe_at.is_none() {
            return;
        }
        if let Some(last) = self.last_frame_at {
            let interval = frame.at.saturating_duration_since(last).as_secs_f64();
            self.longest_gap_seconds = self.longest_gap_seconds.max(interval);
            let average = if self.recent_intervals.is_empty() {
                None
            } else {
                Some(self.recent_intervals.iter().sum::<f64>() / self.recent_intervals.len() as f64)
            };
            if average.is_some_and(|avg| interval >= (3.0 * avg).max(avg + 0.150)) {
                self.freezes += 1;
                self.freeze_seconds += interval;
            } else {
                self.recent_intervals.push_back(interval);
                if self.recent_intervals.len() > FREEZE_WINDOW {
                    self.recent_intervals.pop_front();
                }
            }
        }
        self.frames_since_keyframe += 1;
        self.last_frame_at = Some(frame.at);
        if let Some(first) = self.first_packet_at {
            let second = frame.at.saturating_duration_since(first).as_secs() as usize;
            self.second(second).1 += 1;
        }
    }

    fn track_sequence(&mut self, sequence: u16) {
        let extended = match self.first_sequence {
            None => {
                let first = i64::from(sequence);
                self.first_sequence = Some(first);
                self.highest_sequence = first;
                first
            }
            Some(_) => {
                let step = i64::from(sequence.wrapping_sub(self.highest_sequence as u16) as i16);
                self.highest_sequence + step
            }
        };
        self.highest_sequence = self.highest_sequence.max(extended);
    }

    fn track_jitter(&mut self, timestamp: u32, arrival: Instant) {
        let arrival_units =
            arrival.duration_since(self.started).as_secs_f64() * f64::from(self.clock_rate);
        let transit = arrival_units - f64::from(timestamp);
        if let Some(last) = self.last_transit {
            let mut difference = (transit - last).abs();
            // A timestamp wrap looks like a jump of 2^32 units; it is not jitter.
            if difference > f64::from(u32::MAX) / 2.0 {
                difference = (difference - f64::from(u32::MAX) - 1.0).abs();
            }
            self.jitter += (difference - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    /// Whether the packet carries keyframe data a decoder could start from (for H.264: an IDR
    /// slice, with parameter sets seen).
    fn read_payload(&mut self, payload: &[u8]) -> bool {
        match self.kind {
            PayloadKind::H264 => {
                let mut idr = false;
                for nal_type in h264_nal_types(payload) {
                    match nal_type {
                        5 => idr = true,
                        7 => self.seen_sps = true,
                        8 => self.seen_pps = true,
                        _ => {}
                    }
                }
                idr && self.seen_sps && self.seen_pps
            }
            PayloadKind::Vp8 => vp8_starts_keyframe(payload),
            PayloadKind::Other => false,
        }
    }

    /// When the first complete, decodable keyframe arrived.
    pub fn first_keyframe_at(&self) -> Option<Instant> {
        self.first_keyframe_at
    }

    pub fn first_packet_at(&self) -> Option<Instant> {
        self.first_packet_at
    }

    pub fn summary(&self) -> StreamSummary {
        let expected = self
            .first_sequence
            .map_or(0, |first| (self.highest_sequence - first + 1).max(0) as u64);
        let lost = expected.saturating_sub(self.packets);
        let loss_percent = if expected == 0 {
            0.0
        } else {
            lost as f64 * 100.0 / expected as f64
        };
        let fps = match (self.first_keyframe_at, self.last_frame_at) {
            (Some(first), Some(last)) if self.frames_since_keyframe > 1 => {
                let span = last.duration_since(first).as_secs_f64();
                if span > 0.0 {
                    (self.frames_since_keyframe - 1) as f64 / span
                } else {
                    0.0
                }
            }
            _ => 0.0,
        };
        let receiving = match (self.first_packet_at, self.last_frame_at) {
            (Some(first), Some(last)) => last.duration_since(first),
            _ => Duration::ZERO,
        };
        let bitrate_kbps = if receiving.is_zero() {
            0.0
        } else {
            self.bytes as f64 * 8.0 / receiving.as_secs_f64() / 1000.0
        };
        let counts = self
            .tracker
            .as_ref()
            .map(FrameTracker::counts)
            .unwrap_or_default();
        StreamSummary {
            packets: self.packets,
            bytes: self.bytes,
            lost,
            loss_percent,
            jitter_ms: self.jitter * 1000.0 / f64::from(self.clock_rate),
            frames: self.frames_since_keyframe,
            keyframes: self.keyframes,
            fps,
            bitrate_kbps,
            freezes: self.freezes,
            freeze_seconds: self.freeze_seconds,
            longest_gap_ms: self.longest_gap_seconds * 1000.0,
            frames_dropped: counts.dropped,
            duplicates: counts.duplicates,
            nacked: counts.nacked,
            recovered: counts.recovered,
            keyframe_requests: self.keyframe_requests,
        }
    }
}

/// The NAL unit types an H.264 RTP payload carries: one for a single NAL unit, each unit of a
/// STAP-A, and the fragmented unit's type for the first fragment of an FU-A.
fn h264_nal_types(payload: &[u8]) -> Vec<u8> {
    let Some(&first) = payload.first() else {
        return Vec::new();
    };
    match first & 0x1f {
        24 => {
            let mut types = Vec::new();
            let mut rest = &payload[1..];
            while rest.len() >= 3 {
                let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                if size == 0 || rest.len() < 2 + size {
                    break;
                }
                types.push(rest[2] & 0x1f);
                rest = &rest[2 + size..];
            }
            types
        }
        28 => match payload.get(1) {
            Some(&header) if header & 0x80 != 0 => vec![header & 0x1f],
            _ => Vec::new(),
        },
        single => vec![single],
    }
}

/// Whether a VP8 payload starts a keyframe: the descriptor's S bit with partition 0, and the
/// inverse key-frame bit of the VP8 header clear.
fn vp8_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&descriptor) = payload.first() else {
        return false;
    };
    let start_of_partition = descriptor & 0x10 != 0 && descriptor & 0x0f == 0;
    if !start_of_partition {
        return false;
    }
    let mut offset = 1;
    if descriptor & 0x80 != 0 {
        let Some(&extensions) = payload.get(1) else {
            return false;
        };
        offset = 2;
        if extensions & 0x80 != 0 {
            let long_picture_id = payload.get(offset).is_some_and(|b| b & 0x80 != 0);
            offset += if long_picture_id { 2 } else { 1 };
        }
        if extensions & 0x40 != 0 {
            offset += 1;
        }
        if extensions & 0x30 != 0 {
            offset += 1;
        }
    }
    payload.get(offset).is_some_and(|header| header & 0x01 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u16, ts: u32, marker: bool, payload: &[u8], at: Instant) -> Packet<'_> {
        Packet {
            sequence_number: seq,
            timestamp: ts,
            marker,
            payload,
            arrival: at,
        }
    }

    const SPS: &[u8] = &[0x67, 0x42, 0xe0, 0x1f];
    const PPS: &[u8] = &[0x68, 0xce];

    fn stap_a(units: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![24];
        for unit in units {
            out.extend_from_slice(&(unit.len() as u16).to_be_bytes());
            out.extend_from_slice(unit);
        }
        out
    }

    #[test]
    fn h264_keyframe_needs_parameter_sets_and_the_marker() {
        let t0 = Instant::now();
        let mut stats = StreamStats::new(PayloadKind::H264, 90_000, t0);
        // An IDR before any SPS/PPS is not decodable.
        assert!(!stats.on_packet(&packet(1, 0, true, &[0x65, 1, 2], t0)));
        assert_eq!(stats.first_keyframe_at(), None);
        // SPS+PPS in a STAP-A, then the IDR in two FU-A fragments; the marker ends the frame.
        let parameters = stap_a(&[SPS, PPS]);
        assert!(!stats.on_packet(&packet(2, 3000, false, &parameters, t0)));
        assert!(!stats.on_packet(&packet(3, 3000, false, &[0x7c, 0x85, 9], t0)));
        let done = t0 + Duration::from_millis(5);
        assert!(stats.on_packet(&packet(4, 3000, true, &[0x7c, 0x45, 9], done)));
        assert_eq!(stats.first_keyframe_at(), Some(done));
        // A following P frame is counted but is not a second "first" keyframe.
        assert!(!stats.on_packet(&packet(5, 6000, true, &[0x41, 1], done)));
        let summary = stats.summary();
        assert_eq!(summary.frames, 2);
        assert_eq!(summary.keyframes, 1);
        assert_eq!(summary.lost, 0);
    }

    #[test]
    fn frames_before_the_first_keyframe_are_not_counted() {
        let t0 = Instant::now();
        let mut stats = StreamStats::new(PayloadKind::H264, 90_000, t0);
        stats.on_packet(&packet(10, 0, true, &[0x41, 1], t0));
        stats.on_packet(&packet(11, 3000, true, &[0x41, 1], t0));
        assert_eq!(stats.summary().frames, 0);
    }

    #[test]
    fn fps_and_bitrate_come_from_arrival_times() {
        let t0 = Instant::now();
        let mut stats = StreamStats::new(PayloadKind::H264, 90_000, t0);
        let key = stap_a(&[SPS, PPS, &[0x65, 0, 0, 0]]);
        for i in 0..31u32 {
            let at = t0 + Duration::from_millis(u64::from(i) * 1000 / 30);
            let payload: &[u8] = if i == 0 { &key } else { &[0x41, 0, 0, 0] };
            stats.on_packet(&packet(i as u16, i * 3000, true, payload, at));
        }
        let summary = stats.summary();
        assert_eq!(summary.frames, 31);
        assert!((summary.fps - 30.0).abs() < 0.5, "{}", summary.fps);
        assert!(summary.bitrate_kbps > 0.0);
    }

    #[test]
    fn a_long_gap_between_decoded_frames_is_a_freeze_and_seconds_are_kept() {
        let t0 = Instant::now();
        let mut stats = StreamStats::new(PayloadKind::H264, 90_000, t0);
        let key = stap_a(&[SPS, PPS, &[0x65, 0, 0, 0]]);
        let mut at = t0;
        for i in 0..60u32 {
            // Frame 40 comes half a second late: one freeze.
            at += Duration::from_millis(if i == 40 { 500 } else { 33 });
            let payload: &[u8] = if i == 0 { &key } else { &[0x41, 0, 0, 0] };
            stats.on_packet(&packet(i as u16, i * 3000, true, payload, at));
        }
        let summary = stats.summary();
        assert_eq!(summary.freezes, 1);
        assert!(
            (summary.freeze_seconds - 0.5).abs() < 0.01,
            "{}",
            summary.freeze_seconds
        );
        assert!((summary.longest_gap_ms - 500.0).abs() < 1.0);
        let seconds = stats.seconds();
        assert_eq!(seconds.len(), 3);
        assert_eq!(seconds.iter().map(|s| s.frames).sum::<u64>(), 60);
        assert!(seconds[0].kbps > 0.0);
    }

    #[test]
    fn a_broken_chain_wants_a_keyframe_and_missing_packets_are_asked_for() {
        let t0 = Instant::now();
        let mut stats = StreamStats::new(PayloadKind::H264, 90_000, t0);
        assert!(stats.wants_keyframe(), "nothing decoded yet");
        let key = stap_a(&[SPS, PPS, &[0x65, 0, 0, 0]]);
        assert!(stats.on_packet(&packet(1, 0, true, &key, t0)));
        assert!(!stats.wants_keyframe());
        // Packet 2 (a whole frame) never comes; the frames after it wait, then are dropped.
        for (i, seq) in (3..12u16).enumerate() {
            let at = t0 + Duration::from_millis(33 * (i as u64 + 2));
            stats.on_packet(&packet(seq, u32::from(seq) * 3000, true, &[0x41, 0], at));
            if i == 0 {
                assert_eq!(stats.due_nacks(at), vec![2]);
            }
        }
        assert!(stats.wants_keyframe());
        let summary = stats.summary();
        assert_eq!(summary.frames, 1);
        assert!(summary.frames_dropped > 0);
        assert_eq!(summary.nacked, 1);
        assert_eq!(summary.lost, 1);
    }

    #[test]
    fn loss_counts_gaps_across_the_sequence_wrap() {
        let t0 = Instant::now();
        let mut stats = StreamStats::new(PayloadKind::Other, 48_000, t0);
        for seq in [65_533u16, 65_534, 0, 1, 3] {
            stats.on_packet(&packet(seq, 0, false, &[0], t0));
        }
        let summary = stats.summary();
        // Expected 65533..=65535 and 0..=3: 7 packets, 5 received.
        assert_eq!(summary.packets, 5);
        assert_eq!(summary.lost, 2);
        assert!((summary.loss_percent - 200.0 / 7.0).abs() < 1e-9);
    }

    #[test]
    fn reordered_and_duplicate_packets_are_not_loss() {
        let t0 = Instant::now();
        let mut stats = StreamStats::new(PayloadKind::Other, 48_000, t0);
        for seq in [100u16, 102, 101, 101, 103] {
            stats.on_packet(&packet(seq, 0, false, &[0], t0));
        }
        assert_eq!(stats.summary().lost, 0);
    }

    #[test]
    fn jitter_is_zero_for_perfect_pacing_and_grows_with_variation() {
        let t0 = Instant::now();
        let mut steady = StreamStats::new(PayloadKind::Other, 48_000, t0);
        let mut shaky = StreamStats::new(PayloadKind::Other, 48_000, t0);
        for i in 0..50u32 {
            let on_time = t0 + Duration::from_millis(u64::from(i) * 20);
            steady.on_packet(&packet(i as u16, i * 960, false, &[0], on_time));
            let late = on_time + Duration::from_millis(if i % 2 == 0 { 0 } else { 8 });
            shaky.on_packet(&packet(i as u16, i * 960, false, &[0], late));
        }
        assert!(steady.summary().jitter_ms < 0.01);
        let jitter = shaky.summary().jitter_ms;
        assert!((4.0..=8.0).contains(&jitter), "{jitter}");
    }

    #[test]
    fn vp8_keyframes_are_read_through_the_extended_descriptor() {
        // X=1, S=1, PID=0; I=1 with a 15-bit picture id; then a VP8 header with P=0.
        assert!(vp8_starts_keyframe(&[0x90, 0x80, 0x81, 0x23, 0x10]));
        // The same with P=1: an interframe.
        assert!(!vp8_starts_keyframe(&[0x90, 0x80, 0x81, 0x23, 0x11]));
        // Not the start of a partition.
        assert!(!vp8_starts_keyframe(&[0x80, 0x80, 0x01, 0x10]));
        // Short descriptor, keyframe.
        assert!(vp8_starts_keyframe(&[0x10, 0x10]));
        assert!(!vp8_starts_keyframe(&[]));
        assert!(!vp8_starts_keyframe(&[0x90]));
    }

    #[test]
    fn malformed_h264_payloads_are_read_without_panicking() {
        assert!(h264_nal_types(&[]).is_empty());
        assert!(h264_nal_types(&[28]).is_empty());
        assert_eq!(h264_nal_types(&[24, 0, 9, 0x67]), Vec::<u8>::new());
        assert_eq!(h264_nal_types(&[24, 0, 1, 0x67, 0, 0]), vec![7]);
    }

    #[test]
    fn payload_kind_from_mime() {
        assert_eq!(PayloadKind::from_mime("video/H264"), PayloadKind::H264);
        assert_eq!(PayloadKind::from_mime("video/vp8"), PayloadKind::Vp8);
        assert_eq!(PayloadKind::from_mime("audio/opus"), PayloadKind::Other);
    }
}
