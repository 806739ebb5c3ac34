//! A budget for video retransmissions (RTX), so that answering NACKs cannot overrun the very
//! link whose losses caused them.
//!
//! webrtcbin's `rtprtxsend` resends every packet a browser NACKs, as often as it is asked. On a
//! link that is already full (measured here behind a 1 Mbit/s bottleneck) that feeds itself:
//! retransmissions fill the queue, more is lost, more is NACKed, and the receiver reports ~66%
//! loss even after the encoder has been cut to its minimum; with retransmissions off the same
//! link carried 26 fps. GStreamer 1.22's `rtprtxsend` has no rate limit of its own (no
//! `max-kbps`), so a pad probe on its source pad lets RTX packets through a token bucket
//! refilled at a share of the video target (`SHARE`, as libwebrtc caps its own) and drops the
//! rest. Random loss of a few percent needs far less than that, so retransmission keeps working
//! where it helps.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

/// Retransmissions may use this share of the video target.
const SHARE: f64 = 0.25;
/// The least they are allowed, so that a low target still repairs a few losses.
const FLOOR_KBPS: f64 = 40.0;
/// How much unused budget may be saved up for a burst of NACKs.
const BURST: Duration = Duration::from_millis(250);

/// A token bucket over bytes.
#[derive(Debug)]
pub struct Bucket {
    bytes_per_second: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(target_kbps: u32, now: Instant) -> Self {
        let mut bucket = Self {
            bytes_per_second: 0.0,
            tokens: 0.0,
            last: now,
        };
        bucket.set_target(target_kbps);
        bucket.tokens = bucket.capacity();
        bucket
    }

    /// Follows a new video target.
    pub fn set_target(&mut self, target_kbps: u32) {
        let kbps = (f64::from(target_kbps) * SHARE).max(FLOOR_KBPS);
        self.bytes_per_second = kbps * 1000.0 / 8.0;
        self.tokens = self.tokens.min(self.capacity());
    }

    fn capacity(&self) -> f64 {
        self.bytes_per_second * BURST.as_secs_f64()
    }

    /// Whether a retransmission of `size` bytes may go at `now`; takes its tokens if so.
    pub fn admit(&mut self, size: usize, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.bytes_per_second).min(self.capacity());
        let size = size as f64;
        if self.tokens >= size {
            self.tokens -= size;
            true
        } else {
            false
        }
    }
}

/// The budget of one call, shared with the probe on `rtprtxsend`.
#[derive(Debug, Clone)]
pub struct RetransmissionBudget {
    bucket: Arc<Mutex<Bucket>>,
}

impl RetransmissionBudget {
    /// Finds webrtcbin's `rtprtxsend` (it exists once the session is negotiated) and puts its
    /// RTX packets under a budget; `None` while there is none yet.
    pub fn attach(webrtc: &gst::Element, target_kbps: u32) -> Option<Self> {
        let bin = webrtc.downcast_ref::<gst::Bin>()?;
        let rtx = bin
            .iterate_recurse()
            .into_iter()
            .flatten()
            .find(|e| e.factory().is_some_and(|f| f.name() == "rtprtxsend"))?;
        let rtx_payloads = rtx_payload_types(&rtx);
        if rtx_payloads.is_empty() {
            return None;
        }
        let src = rtx.static_pad("src")?;
        let budget = Self {
            bucket: Arc::new(Mutex::new(Bucket::new(target_kbps, Instant::now()))),
        };
        let bucket = Arc::clone(&budget.bucket);
        src.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let Some(buffer) = info.buffer() else {
                return gst::PadProbeReturn::Ok;
            };
            let Ok(map) = buffer.map_readable() else {
                return gst::PadProbeReturn::Ok;
            };
            let is_rtx = map
                .get(1)
                .is_some_and(|byte| rtx_payloads.contains(&u32::from(byte & 0x7f)));
            if !is_rtx {
                return gst::PadProbeReturn::Ok;
            }
            let admitted = bucket
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .admit(map.len(), Instant::now());
            if admitted {
                gst::PadProbeReturn::Ok
            } else {
                gst::PadProbeReturn::Drop
            }
        });
        Some(budget)
    }

    pub fn set_target(&self, target_kbps: u32) {
        self.bucket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set_target(target_kbps);
    }
}

/// The RTX payload types of `rtprtxsend`: the values of its `payload-type-map` (media type →
/// RTX type), set once the session is negotiated.
fn rtx_payload_types(rtx: &gst::Element) -> Vec<u32> {
    rtx.property::<Option<gst::Structure>>("payload-type-map")
        .map(|map| {
            map.iter()
                .filter_map(|(_, v)| v.get::<u32>().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_the_rate_holds() {
        let start = Instant::now();
        // 1000 kbit/s target: 250 kbit/s of RTX, 31,250 bytes a second, 7,812 in a burst.
        let mut bucket = Bucket::new(1000, start);
        let sent = (0..20).filter(|_| bucket.admit(1200, start)).count();
        assert_eq!(sent, 6, "a quarter second's worth at once");
        let mut admitted = 0;
        for ms in 1..=1000u64 {
            if bucket.admit(1200, start + Duration::from_millis(ms)) {
                admitted += 1200;
            }
        }
        assert!(
            (29_000..=32_000).contains(&admitted),
            "{admitted} bytes in a second"
        );
    }

    #[test]
    fn a_low_target_keeps_a_floor() {
        let start = Instant::now();
        let mut bucket = Bucket::new(100, start);
        let later = start + Duration::from_secs(1);
        assert!(
            bucket.admit(1200, later),
            "40 kbit/s still repairs a packet"
        );
    }

    #[test]
    fn a_cut_target_shrinks_what_was_saved() {
        let start = Instant::now();
        let mut bucket = Bucket::new(2000, start);
        bucket.set_target(150);
        // 40 kbit/s floor: 1,250 bytes in a burst.
        assert!(bucket.admit(1200, start));
        assert!(!bucket.admit(1200, start));
    }
}
