//! A receiver's view of one video stream's frames, as a browser's jitter buffer has it.
//!
//! Packets, original or retransmitted, are placed by sequence number. A frame (the packets of
//! one RTP timestamp) is complete when every packet from just after the previous frame up to
//! its marker is in; it is decodable when it is complete and the frames before it back to a
//! keyframe were decoded. Missing packets are asked for again (NACK) every `NACK_RETRY` until
//! they come, `NACK_TRIES` run out or their frame is given up; a frame still incomplete
//! `GIVE_UP` after a newer one completed is given up, which breaks the chain: a keyframe is
//! wanted (PLI) until one is decodable, and the frames in between are dropped. Pure: the
//! caller passes packets with their arrival time and sends the requests.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a missing packet waits between requests, as a browser does before it knows the
/// round trip.
pub const NACK_RETRY: Duration = Duration::from_millis(100);
/// How many times a missing packet is asked for.
pub const NACK_TRIES: u32 = 10;
/// How long an incomplete frame holds up decoding once a newer frame is complete.
pub const GIVE_UP: Duration = Duration::from_millis(200);
/// How many sequence numbers back packets are remembered.
const HISTORY: i64 = 4096;

/// One packet as the tracker needs it.
#[derive(Debug, Clone, Copy)]
pub struct PacketIn {
    pub sequence_number: u16,
    pub timestamp: u32,
    pub marker: bool,
    /// The packet carries the start of a keyframe a decoder could begin from.
    pub keyframe: bool,
    pub arrival: Instant,
}

/// A frame handed to the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodedFrame {
    /// When its last missing packet arrived.
    pub at: Instant,
    pub keyframe: bool,
}

/// What the tracker counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FrameCounts {
    pub decoded: u64,
    /// Frames given up incomplete, or complete but undecodable for want of a keyframe.
    pub dropped: u64,
    pub duplicates: u64,
    /// Packets asked for again (one per sequence number and request).
    pub nacked: u64,
    /// Packets that arrived after having been asked for.
    pub recovered: u64,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    timestamp: i64,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    keyframe: bool,
    marker: Option<i64>,
    complete_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Missing {
    asked_at: Option<Instant>,
    tries: u32,
}

/// The frames of one stream; see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct FrameTracker {
    packets: BTreeMap<i64, Slot>,
    missing: BTreeMap<i64, Missing>,
    frames: BTreeMap<i64, Frame>,
    lowest_sequence: Option<i64>,
    highest_sequence: Option<i64>,
    last_timestamp: Option<i64>,
    /// The newest frame handed on or dropped: older packets are late.
    handled_through: Option<i64>,
    chain_intact: bool,
    counts: FrameCounts,
}

impl FrameTracker {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn counts(&self) -> FrameCounts {
        self.counts
    }

    /// Whether the decoder needs a keyframe: none decoded yet, or the chain broke since.
    pub fn wants_keyframe(&self) -> bool {
        !self.chain_intact
    }

    /// Takes one packet in; returns the frames it let the decoder have, oldest first.
    pub fn on_packet(&mut self, packet: PacketIn) -> Vec<DecodedFrame> {
        let sequence = extend(self.highest_sequence, packet.sequence_number.into(), 16);
        let timestamp = extend(self.last_timestamp, packet.timestamp.into(), 32);
        if self.packets.contains_key(&sequence) {
            self.counts.duplicates += 1;
            return self.decode(packet.arrival);
        }
        if self.missing.remove(&sequence).is_some_and(|m| m.tries > 0) {
            self.counts.recovered += 1;
        }
        let fills_a_gap = self
            .highest_sequence
            .is_some_and(|highest| sequence < highest);
        self.note_gap(sequence);
        self.lowest_sequence = Some(self.lowest_sequence.map_or(sequence, |l| l.min(sequence)));
        self.last_timestamp = Some(self.last_timestamp.map_or(timestamp, |t| t.max(timestamp)));
        self.packets.insert(sequence, Slot { timestamp });
        if self.packets.len() as i64 > 2 * HISTORY
            && let Some(highest) = self.highest_sequence
        {
            self.packets = self.packets.split_off(&(highest - HISTORY));
        }
        if self
            .handled_through
            .is_none_or(|handled| timestamp > handled)
        {
            let frame = self.frames.entry(timestamp).or_insert(Frame {
                keyframe: false,
                marker: None,
                complete_at: None,
            });
            frame.keyframe |= packet.keyframe;
            if packet.marker {
                frame.marker = Some(sequence);
            }
            self.check_complete(timestamp, packet.arrival);
            // A late packet can also fill the gap before a newer frame.
            if fills_a_gap {
                let newer: Vec<i64> = self
                    .frames
                    .range(timestamp + 1..)
                    .map(|(t, _)| *t)
                    .collect();
                for later in newer {
                    self.check_complete(later, packet.arrival);
                }
            }
        }
        self.decode(packet.arrival)
    }

    /// Sequence numbers to ask for again now; each is counted as asked.
    pub fn due_nacks(&mut self, now: Instant) -> Vec<u16> {
        let mut due = Vec::new();
        self.missing.retain(|_, m| m.tries < NACK_TRIES);
        for (sequence, missing) in &mut self.missing {
            if missing
                .asked_at
                .is_none_or(|at| now.saturating_duration_since(at) >= NACK_RETRY)
            {
                missing.asked_at = Some(now);
                missing.tries += 1;
                due.push(*sequence as u16);
            }
        }
        self.counts.nacked += due.len() as u64;
        due
    }

    fn note_gap(&mut self, sequence: i64) {
        match self.highest_sequence {
            Some(highest) if sequence > highest => {
                // A jump of thousands is a restarted sender, not loss worth asking for.
                if sequence - highest < 500 {
                    for gap in highest + 1..sequence {
                        self.missing.insert(
                            gap,
                            Missing {
                                asked_at: None,
                                tries: 0,
                            },
                        );
                    }
                }
                self.highest_sequence = Some(sequence);
            }
            Some(_) => {}
            None => self.highest_sequence = Some(sequence),
        }
    }

    /// Marks the frame complete when its packets from the previous frame's last to its marker
    /// are all in.
    fn check_complete(&mut self, timestamp: i64, now: Instant) {
        let Some(frame) = self.frames.get(&timestamp) else {
            return;
        };
        let (Some(marker), None) = (frame.marker, frame.complete_at) else {
            return;
        };
        let mut sequence = marker - 1;
        let boundary = loop {
            match self.packets.get(&sequence) {
                Some(slot) if slot.timestamp == timestamp => sequence -= 1,
                Some(_) => break true,
                // Nothing was ever received before the stream's first frame.
                None => {
                    break self.handled_through.is_none()
                        && self.lowest_sequence.is_some_and(|lowest| sequence < lowest);
                }
            }
        };
        if boundary && let Some(frame) = self.frames.get_mut(&timestamp) {
            frame.complete_at = Some(now);
        }
    }

    /// Hands complete frames to the decoder in order; gives up the oldest frame when a newer
    /// one has been waiting behind it for GIVE_UP.
    fn decode(&mut self, now: Instant) -> Vec<DecodedFrame> {
        let mut decoded = Vec::new();
        while let Some((&timestamp, &frame)) = self.frames.first_key_value() {
            match frame.complete_at {
                Some(at) => {
                    if self.chain_intact || frame.keyframe {
                        self.chain_intact = true;
                        self.counts.decoded += 1;
                        decoded.push(DecodedFrame {
                            at,
                            keyframe: frame.keyframe,
                        });
                    } else {
                        self.counts.dropped += 1;
                    }
                }
                None => {
                    let waited_behind = self
                        .frames
                        .range(timestamp + 1..)
                        .filter_map(|(_, f)| f.complete_at)
                        .any(|at| now.saturating_duration_since(at) >= GIVE_UP);
                    if !waited_behind {
                        break;
                    }
                    self.chain_intact = false;
                    self.counts.dropped += 1;
                }
            }
            self.frames.remove(&timestamp);
            self.handled_through = Some(timestamp);
            // Nothing of a handled frame is worth asking for any more.
            if let Some(marker) = frame.marker {
                self.missing = self.missing.split_off(&(marker + 1));
            }
        }
        decoded
    }
}

/// Extends a wrapping counter of `bits` bits to a 64-bit one near `last`.
fn extend(last: Option<i64>, value: i64, bits: u32) -> i64 {
    let Some(last) = last else {
        return value;
    };
    let modulus = 1i64 << bits;
    let half = modulus / 2;
    let mut step = (value - last.rem_euclid(modulus)).rem_euclid(modulus);
    if step >= half {
        step -= modulus;
    }
    last + step
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Stream {
        tracker: FrameTracker,
        start: Instant,
    }

    impl Stream {
        fn new() -> Self {
            Self {
                tracker: FrameTracker::new(),
                start: Instant::now(),
            }
        }

        /// Packet `seq` of the frame with timestamp `ts`, arriving `ms` into the stream.
        fn packet(&mut self, seq: u16, ts: u32, marker: bool, keyframe: bool, ms: u64) -> usize {
            self.tracker
                .on_packet(PacketIn {
                    sequence_number: seq,
                    timestamp: ts,
                    marker,
                    keyframe,
                    arrival: self.start + Duration::from_millis(ms),
                })
                .len()
        }
    }

    #[test]
    fn a_frame_is_decoded_when_its_last_packet_arrives() {
        let mut s = Stream::new();
        assert_eq!(s.packet(10, 0, false, true, 0), 0);
        assert_eq!(s.packet(11, 0, true, false, 1), 1, "the keyframe");
        assert_eq!(s.packet(12, 3000, true, false, 33), 1);
        assert!(!s.tracker.wants_keyframe());
        assert_eq!(s.tracker.counts().decoded, 2);
    }

    #[test]
    fn nothing_is_decoded_before_a_keyframe() {
        let mut s = Stream::new();
        assert_eq!(s.packet(1, 0, true, false, 0), 0);
        assert_eq!(s.packet(2, 3000, true, false, 33), 0);
        assert!(s.tracker.wants_keyframe());
        assert_eq!(s.packet(3, 6000, true, true, 66), 1);
        assert_eq!(s.tracker.counts().dropped, 2);
    }

    #[test]
    fn a_missing_packet_is_asked_for_and_its_retransmission_completes_the_frame() {
        let mut s = Stream::new();
        s.packet(1, 0, true, true, 0);
        s.packet(2, 3000, false, false, 33);
        assert_eq!(s.packet(4, 3000, true, false, 34), 0, "packet 3 is missing");
        let now = s.start + Duration::from_millis(35);
        assert_eq!(s.tracker.due_nacks(now), vec![3]);
        assert!(s.tracker.due_nacks(now).is_empty(), "not again at once");
        assert_eq!(s.tracker.due_nacks(now + NACK_RETRY), vec![3]);
        assert_eq!(s.packet(3, 3000, false, false, 40), 1, "repaired");
        assert_eq!(s.tracker.counts().recovered, 1);
        assert!(!s.tracker.wants_keyframe());
        assert!(s.tracker.due_nacks(now + NACK_RETRY * 3).is_empty());
    }

    #[test]
    fn a_frame_that_never_completes_is_given_up_and_a_keyframe_wanted() {
        let mut s = Stream::new();
        s.packet(1, 0, true, true, 0);
        s.packet(3, 3000, true, false, 33); // packet 2, the start of this frame, is lost
        assert_eq!(
            s.packet(4, 6000, true, false, 66),
            0,
            "waits behind the incomplete one"
        );
        assert_eq!(s.packet(5, 9000, true, false, 100), 0);
        assert!(!s.tracker.wants_keyframe());
        // GIVE_UP after frame 6000 completed, the gap is given up: the chain is broken.
        assert_eq!(s.packet(6, 12000, true, false, 300), 0);
        assert!(s.tracker.wants_keyframe());
        assert_eq!(s.packet(7, 15000, true, true, 333), 1, "the next keyframe");
        assert!(!s.tracker.wants_keyframe());
        // Dropped: the incomplete frame and the three waiting behind it.
        assert_eq!(s.tracker.counts().dropped, 4);
        assert!(
            s.tracker
                .due_nacks(s.start + Duration::from_secs(1))
                .is_empty()
        );
    }

    #[test]
    fn duplicates_and_late_packets_change_nothing() {
        let mut s = Stream::new();
        s.packet(1, 0, true, true, 0);
        assert_eq!(s.packet(1, 0, true, true, 5), 0);
        s.packet(2, 3000, true, false, 33);
        assert_eq!(s.tracker.counts().duplicates, 1);
        assert_eq!(s.tracker.counts().decoded, 2);
    }

    #[test]
    fn sequence_numbers_and_timestamps_wrap() {
        let mut s = Stream::new();
        s.packet(65534, u32::MAX - 2999, true, true, 0);
        assert_eq!(s.packet(65535, 1, false, false, 33), 0);
        assert_eq!(s.packet(0, 1, true, false, 34), 1);
        assert_eq!(s.packet(1, 3001, true, false, 66), 1);
        assert_eq!(extend(Some(65535), 0, 16), 65536);
        assert_eq!(extend(Some(65536), 65535, 16), 65535);
    }
}
