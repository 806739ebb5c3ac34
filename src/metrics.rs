//! Process-wide counters, shared by `Arc` and rendered at `/metrics` in the Prometheus text
//! format.
//!
//! Plain atomics: every writer only adds, readers take a snapshot, so no lock is needed. Tests
//! use them to see inside the daemon (for example that the caller's voice reached the speaker).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// Samples kept for the percentiles: about five minutes at 30 fps.
const SAMPLES_KEPT: usize = 9000;

/// How long video frames spent inside the daemon after the encoder (`media::send_latency`
/// measures; this keeps the latest samples).
#[derive(Debug, Default)]
pub struct SendLatency {
    samples: Mutex<VecDeque<Duration>>,
}

/// Percentiles of the samples kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySummary {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub count: usize,
}

impl SendLatency {
    pub fn record(&self, sample: Duration) {
        if let Ok(mut samples) = self.samples.lock() {
            if samples.len() == SAMPLES_KEPT {
                samples.pop_front();
            }
            samples.push_back(sample);
        }
    }

    /// Nearest-rank percentiles; `None` before the first frame was sent.
    pub fn summary(&self) -> Option<LatencySummary> {
        let mut sorted: Vec<Duration> = self.samples.lock().ok()?.iter().copied().collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_unstable();
        let rank = |p: usize| sorted[(p * sorted.len()).div_ceil(100).clamp(1, sorted.len()) - 1];
        Some(LatencySummary {
            p50: rank(50),
            p99: rank(99),
            max: sorted[sorted.len() - 1],
            count: sorted.len(),
        })
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub calls_started: AtomicU64,
    pub calls_ended: AtomicU64,
    pub calls_failed: AtomicU64,
    /// Calls the caller resumed from a new connection (a network change).
    pub calls_resumed: AtomicU64,
    pub viewers_started: AtomicU64,
    /// Receive-only viewers watching now.
    pub viewers: AtomicU64,
    /// Whether any peer's media (the caller's or a viewer's) is connected now.
    pub media_connected: std::sync::atomic::AtomicBool,
    pub busy_replies: AtomicU64,
    pub signaling_errors: AtomicU64,
    pub websocket_connections: AtomicU64,
    /// Decoded bytes of the caller's voice handed to the device's audio sink.
    pub talkback_bytes: AtomicU64,
    /// RTP packets of video the device sent into WebRTC.
    pub video_packets_sent: AtomicU64,
    /// Encoded keyframes sent to callers.
    pub keyframes_sent: AtomicU64,
    /// Keyframe requests (PLI/FIR) from callers that reached the encoder.
    pub keyframe_requests: AtomicU64,
    /// Peers' send streams whose unused FEC and RED encoders were taken out of webrtcbin.
    pub fec_encoders_bypassed: AtomicU64,
    /// STUN Binding requests answered.
    pub stun_answered: AtomicU64,
    /// Datagrams on the STUN port that were not valid Binding requests.
    pub stun_ignored: AtomicU64,
    /// Valid STUN requests dropped by the per-source rate limit.
    pub stun_rate_limited: AtomicU64,
    /// The adaptive bitrate's current video target, kbit/s (a gauge).
    pub video_target_kbps: AtomicU64,
    /// Video encoders running now (a gauge: 0 with the camera off, 2 with a second one).
    pub video_encoders: AtomicU64,
    /// Whether the camera sees motion now (a gauge; `[motion]`).
    pub motion: AtomicU64,
    /// Starts of motion seen.
    pub motion_events: AtomicU64,
    /// Encoder-to-socket time of recent video frames.
    pub send_latency: SendLatency,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self, in_call: bool) -> String {
        let counters: [(&str, &AtomicU64, &str); 17] = [
            (
                "peercam_calls_started_total",
                &self.calls_started,
                "Calls the device answered.",
            ),
            (
                "peercam_calls_ended_total",
                &self.calls_ended,
                "Calls that ended, for any reason.",
            ),
            (
                "peercam_calls_failed_total",
                &self.calls_failed,
                "Calls ended by a media failure.",
            ),
            (
                "peercam_calls_resumed_total",
                &self.calls_resumed,
                "Calls the caller resumed on a new connection after a network change.",
            ),
            (
                "peercam_viewers_started_total",
                &self.viewers_started,
                "Receive-only viewers (WHEP) the device answered.",
            ),
            (
                "peercam_busy_replies_total",
                &self.busy_replies,
                "Callers told the device is busy.",
            ),
            (
                "peercam_signaling_errors_total",
                &self.signaling_errors,
                "Signaling messages answered with an error.",
            ),
            (
                "peercam_websocket_connections_total",
                &self.websocket_connections,
                "WebSocket connections accepted.",
            ),
            (
                "peercam_talkback_bytes_total",
                &self.talkback_bytes,
                "Decoded audio bytes from callers played on the device.",
            ),
            (
                "peercam_video_packets_sent_total",
                &self.video_packets_sent,
                "RTP video packets sent to callers.",
            ),
            (
                "peercam_keyframes_sent_total",
                &self.keyframes_sent,
                "Encoded video keyframes sent to callers.",
            ),
            (
                "peercam_keyframe_requests_total",
                &self.keyframe_requests,
                "Keyframe requests (PLI/FIR) from callers that reached the encoder.",
            ),
            (
                "peercam_fec_encoders_bypassed_total",
                &self.fec_encoders_bypassed,
                "Send streams whose unused FEC and RED encoders were taken out, so each frame \
                 reaches the socket as one list of packets.",
            ),
            (
                "peercam_stun_answered_total",
                &self.stun_answered,
                "STUN Binding requests answered.",
            ),
            (
                "peercam_stun_ignored_total",
                &self.stun_ignored,
                "Datagrams on the STUN port that were not valid Binding requests.",
            ),
            (
                "peercam_stun_rate_limited_total",
                &self.stun_rate_limited,
                "Valid STUN requests dropped by the per-source rate limit.",
            ),
            (
                "peercam_motion_events_total",
                &self.motion_events,
                "Starts of motion the camera saw ([motion]).",
            ),
        ];
        let mut out = String::new();
        for (name, value, help) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP peercam_in_call Whether a caller is connected to the device.\n\
             # TYPE peercam_in_call gauge\npeercam_in_call {}",
            u8::from(in_call)
        );
        let _ = writeln!(
            out,
            "# HELP peercam_viewers Receive-only viewers (WHEP) watching now.\n\
             # TYPE peercam_viewers gauge\npeercam_viewers {}",
            self.viewers.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP peercam_video_encoders Video encoders running now (the camera's, and a \
             second one in another codec).\n# TYPE peercam_video_encoders gauge\n\
             peercam_video_encoders {}",
            self.video_encoders.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP peercam_motion Whether the camera sees motion now ([motion]).\n\
             # TYPE peercam_motion gauge\npeercam_motion {}",
            self.motion.load(Ordering::Relaxed)
        );
        if in_call {
            let _ = writeln!(
                out,
                "# HELP peercam_video_target_kbps The adaptive bitrate's video target in the \
                 current call, kbit/s.\n# TYPE peercam_video_target_kbps gauge\n\
                 peercam_video_target_kbps {}",
                self.video_target_kbps.load(Ordering::Relaxed)
            );
        }
        if let Some(latency) = self.send_latency.summary() {
            let name = "peercam_send_latency_seconds";
            let _ = writeln!(
                out,
                "# HELP {name} Time from an encoded video frame reaching the payloader to its last \
                 RTP packet reaching the socket, over recent frames.\n# TYPE {name} summary"
            );
            for (quantile, value) in [
                ("0.5", latency.p50),
                ("0.99", latency.p99),
                ("1", latency.max),
            ] {
                let _ = writeln!(
                    out,
                    "{name}{{quantile=\"{quantile}\"}} {:.6}",
                    value.as_secs_f64()
                );
            }
            let _ = writeln!(out, "{name}_count {}", latency.count);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_counter_with_type_lines() {
        let metrics = Metrics::default();
        Metrics::add(&metrics.talkback_bytes, 960);
        let text = metrics.render(true);
        assert!(text.contains("# TYPE peercam_talkback_bytes_total counter\n"));
        assert!(text.contains("\npeercam_talkback_bytes_total 960\n"));
        assert!(text.contains("\npeercam_in_call 1\n"));
        Metrics::set(&metrics.video_target_kbps, 600);
        assert!(
            metrics
                .render(true)
                .contains("\npeercam_video_target_kbps 600\n")
        );
        assert!(!metrics.render(false).contains("peercam_video_target_kbps"));
        assert!(!text.contains("peercam_send_latency_seconds"));
        metrics
            .send_latency
            .record(std::time::Duration::from_micros(1500));
        let text = metrics.render(true);
        assert!(text.contains("\npeercam_send_latency_seconds{quantile=\"0.99\"} 0.001500\n"));
        assert!(text.contains("\npeercam_send_latency_seconds_count 1\n"));
    }

    #[test]
    fn percentiles_of_the_kept_samples() {
        let latency = SendLatency::default();
        assert_eq!(latency.summary(), None);
        for ms in 1..=100 {
            latency.record(Duration::from_millis(ms));
        }
        let summary = latency.summary().unwrap();
        assert_eq!(summary.p50, Duration::from_millis(50));
        assert_eq!(summary.p99, Duration::from_millis(99));
        assert_eq!(summary.max, Duration::from_millis(100));
        assert_eq!(summary.count, 100);
    }

    #[test]
    fn keeps_only_the_latest_samples() {
        let latency = SendLatency::default();
        for _ in 0..SAMPLES_KEPT {
            latency.record(Duration::from_secs(1));
        }
        latency.record(Duration::from_millis(1));
        let summary = latency.summary().unwrap();
        assert_eq!(summary.count, SAMPLES_KEPT);
        assert_eq!(summary.p50, Duration::from_secs(1));
    }
}
