//! The video bitrate controller: a pure function of the caller's receiver reports in, the
//! encoder's target bitrate out.
//!
//! Debian 12's GStreamer has no congestion controller (no gst-plugins-rs `rtpgccbwe`), so this
//! is peercam's own, after draft-ietf-rmcat-gcc:
//! - **loss** (from the RTCP receiver reports): above 10% the target is cut to
//!   `target × (1 − loss/2)`; between 2% and 10% it holds; below 2% it grows;
//! - **delay**: a round-trip time well above the lowest seen in the call means a queue is
//!   building at the bottleneck before anything is lost, so the target is cut by 15%;
//! - it **starts low** (`START_KBPS`, within the bounds) rather than at the configured maximum,
//!   so the first keyframe does not go at full rate into a path nobody has measured, and grows
//!   by 12% a second from there while the path stays clean (2 Mbit/s in about 11 s), but only
//!   by 3% a second near the rate where the path last gave out (GCC's "near max" increase), so
//!   it probes a known bottleneck gently instead of overrunning it every few seconds;
//! - it changes the target at most once a second, and never outside the configured bounds.
//!
//! `peer` feeds it what webrtcbin's `get-stats` says once a second (see `link_stats`) and
//! applies its answer through `encoder_control`.

use std::time::{Duration, Instant};

/// Where a call starts when the configured bounds allow it.
pub const START_KBPS: u32 = 600;
/// Loss above which the target is cut (draft-ietf-rmcat-gcc §6).
const CUT_ABOVE_LOSS: f64 = 0.10;
/// Loss below which the target grows.
const GROW_BELOW_LOSS: f64 = 0.02;
/// Growth per decision while the path is clean.
const GROWTH: f64 = 1.12;
/// Growth near the rate where the path last gave out (within `NEAR` of it, or above it).
const CAREFUL_GROWTH: f64 = 1.03;
const NEAR: f64 = 0.8;
/// The cut when the round-trip time says a queue is building.
const DELAY_CUT: f64 = 0.85;
/// How far above the call's lowest round-trip time counts as a building queue.
const QUEUE_DELAY: Duration = Duration::from_millis(80);
/// At most one change in this long.
const MIN_INTERVAL: Duration = Duration::from_millis(950);

/// The configured bounds, in kbit/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min_kbps: u32,
    pub max_kbps: u32,
}

impl Bounds {
    /// The first target of a call.
    pub fn start_kbps(self) -> u32 {
        START_KBPS.clamp(self.min_kbps, self.max_kbps.max(self.min_kbps))
    }
}

/// What the caller's latest receiver report says of the video stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReceiverReport {
    /// The fraction of packets lost since the previous report, 0 to 1.
    pub fraction_lost: f64,
    /// The round-trip time the report measured, if it did.
    pub round_trip: Option<Duration>,
}

/// Growth stops at this multiple of what the encoder really sends: a still scene sends far
/// less than its target, and a target grown unchecked meanwhile would let the first motion
/// burst into a path nobody has tried at that rate (libwebrtc caps its growth the same way).
const SENT_HEADROOM: f64 = 1.5;

/// Why the target changed, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Loss,
    QueueDelay,
    CleanPath,
}

/// A new target and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub kbps: u32,
    pub reason: Reason,
}

/// One call's controller.
#[derive(Debug)]
pub struct Controller {
    bounds: Bounds,
    target_kbps: u32,
    lowest_round_trip: Option<Duration>,
    last_change: Option<Instant>,
    last_report: Option<ReceiverReport>,
    /// The target when the path last gave out (loss or a queue).
    gave_out_at_kbps: Option<f64>,
}

impl Controller {
    pub fn new(bounds: Bounds) -> Self {
        Self {
            bounds,
            target_kbps: bounds.start_kbps(),
            lowest_round_trip: None,
            last_change: None,
            last_report: None,
            gave_out_at_kbps: None,
        }
    }

    pub fn target_kbps(&self) -> u32 {
        self.target_kbps
    }

    /// Takes a report seen at `now`; returns the new target when it changes. A report equal to
    /// the previous one is the same RTCP report read again and decides nothing.
    /// `sent_kbps` is the rate the encoder really sent at since the last report, where known.
    pub fn on_report(
        &mut self,
        report: ReceiverReport,
        sent_kbps: Option<f64>,
        now: Instant,
    ) -> Option<Change> {
        if self.last_report == Some(report) {
            return None;
        }
        self.last_report = Some(report);
        if let Some(rtt) = report.round_trip {
            self.lowest_round_trip = Some(self.lowest_round_trip.map_or(rtt, |low| low.min(rtt)));
        }
        if self
            .last_change
            .is_some_and(|at| now.saturating_duration_since(at) < MIN_INTERVAL)
        {
            return None;
        }
        let loss = report.fraction_lost.clamp(0.0, 1.0);
        let queueing = match (report.round_trip, self.lowest_round_trip) {
            (Some(rtt), Some(low)) => rtt > low + QUEUE_DELAY,
            _ => false,
        };
        let current = f64::from(self.target_kbps);
        let (wanted, reason) = if loss > CUT_ABOVE_LOSS {
            self.gave_out_at_kbps = Some(current);
            (current * (1.0 - loss / 2.0), Reason::Loss)
        } else if queueing {
            self.gave_out_at_kbps = Some(current);
            (current * DELAY_CUT, Reason::QueueDelay)
        } else if loss < GROW_BELOW_LOSS {
            let near = self.gave_out_at_kbps.is_some_and(|at| current >= at * NEAR);
            let growth = if near { CAREFUL_GROWTH } else { GROWTH };
            let ceiling =
                sent_kbps.map_or(f64::INFINITY, |sent| (sent * SENT_HEADROOM).max(current));
            ((current * growth).min(ceiling), Reason::CleanPath)
        } else {
            return None;
        };
        let kbps = (wanted.round() as u32).clamp(self.bounds.min_kbps, self.bounds.max_kbps);
        if kbps == self.target_kbps {
            return None;
        }
        self.target_kbps = kbps;
        self.last_change = Some(now);
        Some(Change { kbps, reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Bounds = Bounds {
        min_kbps: 150,
        max_kbps: 2000,
    };

    fn report(loss: f64, rtt_ms: u64) -> ReceiverReport {
        ReceiverReport {
            fraction_lost: loss,
            round_trip: Some(Duration::from_millis(rtt_ms)),
        }
    }

    /// Feeds one report a second; returns the target after each.
    fn run(controller: &mut Controller, reports: &[ReceiverReport]) -> Vec<u32> {
        let start = Instant::now();
        reports
            .iter()
            .enumerate()
            .map(|(i, r)| {
                controller.on_report(*r, None, start + Duration::from_secs(i as u64 + 1));
                controller.target_kbps()
            })
            .collect()
    }

    #[test]
    fn starts_low_within_the_bounds() {
        assert_eq!(Controller::new(BOUNDS).target_kbps(), START_KBPS);
        let small = Bounds {
            min_kbps: 100,
            max_kbps: 400,
        };
        assert_eq!(Controller::new(small).target_kbps(), 400);
        let high_floor = Bounds {
            min_kbps: 800,
            max_kbps: 4000,
        };
        assert_eq!(Controller::new(high_floor).target_kbps(), 800);
    }

    #[test]
    fn a_clean_path_grows_to_the_maximum_and_stays_there() {
        let mut c = Controller::new(BOUNDS);
        let reports: Vec<_> = (0..20).map(|i| report(0.0, 20 + i % 3)).collect();
        let targets = run(&mut c, &reports);
        assert!(targets.windows(2).all(|w| w[1] >= w[0]), "{targets:?}");
        assert_eq!(*targets.last().unwrap(), BOUNDS.max_kbps);
        assert!(targets[10] > 1500, "about 11 s to 2 Mbit/s: {targets:?}");
    }

    #[test]
    fn growth_stops_at_half_again_what_is_really_sent() {
        let mut c = Controller::new(BOUNDS);
        let start = Instant::now();
        for second in 1..=30u64 {
            // A still scene: the encoder sends 300 kbit/s whatever its target.
            c.on_report(
                report(0.0, 20 + second % 2),
                Some(300.0),
                start + Duration::from_secs(second),
            );
        }
        assert_eq!(
            c.target_kbps(),
            START_KBPS,
            "not below where it was, not above 1.5 × 300"
        );
    }

    #[test]
    fn heavy_loss_cuts_by_half_the_loss() {
        let mut c = Controller::new(BOUNDS);
        let t = run(&mut c, &[report(0.4, 20)]);
        assert_eq!(t, vec![480]); // 600 × (1 − 0.2)
    }

    #[test]
    fn moderate_loss_holds() {
        let mut c = Controller::new(BOUNDS);
        assert_eq!(
            run(&mut c, &[report(0.05, 20), report(0.08, 21)]),
            vec![600, 600]
        );
    }

    #[test]
    fn a_building_queue_cuts_before_anything_is_lost() {
        let mut c = Controller::new(BOUNDS);
        let t = run(&mut c, &[report(0.0, 20), report(0.0, 400)]);
        assert_eq!(t, vec![672, 571]);
    }

    #[test]
    fn growth_is_careful_near_where_the_path_gave_out() {
        let mut c = Controller::new(BOUNDS);
        // 672 → cut by a queue to 571 → clean again: 571 is within 80% of 672, so +3%.
        let t = run(
            &mut c,
            &[report(0.0, 20), report(0.0, 400), report(0.0, 20)],
        );
        assert_eq!(t, vec![672, 571, 588]);
    }

    #[test]
    fn never_below_the_minimum() {
        let mut c = Controller::new(BOUNDS);
        let reports: Vec<_> = (0..30).map(|i| report(0.9, 20 + i)).collect();
        assert!(run(&mut c, &reports).iter().all(|&t| t >= BOUNDS.min_kbps));
        assert_eq!(c.target_kbps(), BOUNDS.min_kbps);
    }

    #[test]
    fn at_most_one_change_a_second_and_a_repeated_report_decides_nothing() {
        let mut c = Controller::new(BOUNDS);
        let now = Instant::now();
        assert!(c.on_report(report(0.0, 20), None, now).is_some());
        assert!(
            c.on_report(report(0.0, 21), None, now + Duration::from_millis(300))
                .is_none()
        );
        let later = now + Duration::from_secs(2);
        assert!(
            c.on_report(report(0.0, 21), None, later).is_none(),
            "the same report read again"
        );
        assert_eq!(
            c.on_report(report(0.5, 22), None, later)
                .map(|ch| ch.reason),
            Some(Reason::Loss)
        );
    }

    #[test]
    fn a_report_without_round_trip_time_still_counts_loss() {
        let mut c = Controller::new(BOUNDS);
        let lossy = ReceiverReport {
            fraction_lost: 0.3,
            round_trip: None,
        };
        assert_eq!(run(&mut c, &[lossy]), vec![510]);
    }

    #[test]
    fn settles_under_a_bottleneck() {
        // A crude 1 Mbit/s link: its queue fills (the round trip grows by 250 ms) once video
        // passes 850 kbit/s, and what is sent above 900 kbit/s is lost.
        let mut c = Controller::new(BOUNDS);
        let start = Instant::now();
        let mut targets = Vec::new();
        for second in 1..=60u64 {
            let sent = f64::from(c.target_kbps());
            let loss = ((sent - 900.0) / sent).max(0.0);
            let rtt = if sent > 850.0 { 280 } else { 30 } + second % 2;
            c.on_report(
                report(loss, rtt),
                Some(sent),
                start + Duration::from_secs(second),
            );
            targets.push(c.target_kbps());
        }
        let settled = &targets[20..];
        assert!(
            settled.iter().all(|&t| (600..=1000).contains(&t)),
            "{targets:?}"
        );
    }
}
