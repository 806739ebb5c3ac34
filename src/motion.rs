//! Motion from the camera's frames (pure): each frame is shrunk to a grid of brightness
//! averages (`Grid`, made by `media::motion_watch` from the frame's luma), compared with the
//! one before, and motion is when more than `min_area_percent` of the grid's cells changed by
//! more than `threshold`. It starts at the first such frame and ends after `quiet_seconds`
//! without one. A frame difference on a grid this small is blind to noise and to a picture
//! that brightens evenly only as far as the threshold says; it costs a few thousand byte reads
//! a frame, at a few frames a second.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::MotionConfig;

/// The grid's size: 64 x 36 cells (16:9).
pub const GRID_WIDTH: usize = 64;
pub const GRID_HEIGHT: usize = 36;

/// A frame's brightness, one average per cell, row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid(pub Vec<u8>);

/// What a watcher of `/events` (and MQTT) is told.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum MotionEvent {
    /// Something moved: this much of the picture changed.
    MotionStarted { area_percent: f64 },
    /// The picture has been still for `quiet_seconds`; the motion lasted this long.
    MotionEnded { seconds: f64 },
}

/// Compares each frame with the last and says when motion starts and ends.
#[derive(Debug)]
pub struct Detector {
    threshold: u8,
    min_area_percent: f64,
    quiet: Duration,
    previous: Option<Grid>,
    /// When the motion under way started, and when something last moved.
    moving: Option<(Instant, Instant)>,
}

impl Detector {
    pub fn new(config: &MotionConfig) -> Self {
        Self {
            threshold: u8::try_from(config.threshold).unwrap_or(u8::MAX),
            min_area_percent: config.min_area_percent,
            quiet: Duration::from_secs(u64::from(config.quiet_seconds)),
            previous: None,
            moving: None,
        }
    }

    /// Whether motion is under way.
    pub fn is_moving(&self) -> bool {
        self.moving.is_some()
    }

    /// Takes the next frame's grid, seen at `now`: an event when motion starts or ends.
    pub fn frame(&mut self, grid: Grid, now: Instant) -> Option<MotionEvent> {
        let changed = self
            .previous
            .as_ref()
            .filter(|previous| previous.0.len() == grid.0.len())
            .map(|previous| changed_percent(previous, &grid, self.threshold));
        self.previous = Some(grid);
        let moved = changed.filter(|&area| area >= self.min_area_percent);
        match (moved, self.moving) {
            (Some(area), None) => {
                self.moving = Some((now, now));
                Some(MotionEvent::MotionStarted {
                    area_percent: (area * 10.0).round() / 10.0,
                })
            }
            (Some(_), Some((started, _))) => {
                self.moving = Some((started, now));
                None
            }
            (None, _) => self.quiet_check(now),
        }
    }

    /// Ends motion that has been quiet long enough (also when no frame comes).
    pub fn quiet_check(&mut self, now: Instant) -> Option<MotionEvent> {
        let (started, last) = self.moving?;
        if now.duration_since(last) < self.quiet {
            return None;
        }
        self.moving = None;
        let seconds = now.duration_since(started).as_secs_f64();
        Some(MotionEvent::MotionEnded {
            seconds: (seconds * 10.0).round() / 10.0,
        })
    }

    /// Forgets the last frame (the camera stopped; the next one starts afresh).
    pub fn forget_frame(&mut self) {
        self.previous = None;
    }
}

/// The share of cells (percent) whose brightness changed by more than `threshold`.
fn changed_percent(before: &Grid, after: &Grid, threshold: u8) -> f64 {
    let changed = before
        .0
        .iter()
        .zip(&after.0)
        .filter(|(a, b)| a.abs_diff(**b) > threshold)
        .count();
    changed as f64 * 100.0 / before.0.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(value: u8) -> Grid {
        Grid(vec![value; GRID_WIDTH * GRID_HEIGHT])
    }

    /// A still grey picture with a bright square of `cells` cells in its corner.
    fn with_square(cells: usize) -> Grid {
        let mut grid = grid(100);
        for row in 0..cells {
            for column in 0..cells {
                grid.0[row * GRID_WIDTH + column] = 220;
            }
        }
        grid
    }

    fn detector() -> Detector {
        Detector::new(&MotionConfig {
            enabled: true,
            min_area_percent: 1.0,
            quiet_seconds: 2,
            ..MotionConfig::default()
        })
    }

    #[test]
    fn a_still_picture_and_small_noise_are_not_motion() {
        let mut detector = detector();
        let now = Instant::now();
        assert_eq!(detector.frame(grid(100), now), None);
        assert_eq!(detector.frame(grid(100), now), None);
        // Everything a little brighter (under the threshold of 25).
        assert_eq!(detector.frame(grid(120), now), None);
        // A change too small: 4 cells of 2304 (0.17%).
        assert_eq!(detector.frame(with_square(2), now), None);
        assert!(!detector.is_moving());
    }

    #[test]
    fn motion_starts_once_and_ends_after_the_quiet_time() {
        let mut detector = detector();
        let start = Instant::now();
        detector.frame(grid(100), start);
        // 36 cells of 2304 changed: 1.6%.
        assert_eq!(
            detector.frame(with_square(6), start),
            Some(MotionEvent::MotionStarted { area_percent: 1.6 })
        );
        assert_eq!(
            detector.frame(grid(100), start + Duration::from_secs(1)),
            None
        );
        assert!(detector.is_moving());
        let still = start + Duration::from_secs(1);
        assert_eq!(
            detector.frame(grid(100), still + Duration::from_secs(1)),
            None
        );
        assert_eq!(
            detector.frame(grid(100), still + Duration::from_secs(2)),
            Some(MotionEvent::MotionEnded { seconds: 3.0 })
        );
        assert!(!detector.is_moving());
    }

    #[test]
    fn a_grid_of_another_size_is_a_fresh_start() {
        let mut detector = detector();
        let now = Instant::now();
        detector.frame(Grid(vec![0; 4]), now);
        assert_eq!(detector.frame(grid(255), now), None);
    }

    #[test]
    fn events_are_json_for_the_event_stream() {
        let json = serde_json::to_string(&MotionEvent::MotionStarted { area_percent: 2.5 });
        assert_eq!(
            json.ok().as_deref(),
            Some(r#"{"event":"motion_started","area_percent":2.5}"#)
        );
    }
}
