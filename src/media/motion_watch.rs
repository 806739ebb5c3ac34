//! Watching for motion (`[motion] enabled`): a few times a second the media owner takes the
//! latest raw frame the shared source keeps for snapshots (no branch, no copy of the frame:
//! the buffer is read where it is), shrinks its luma to `motion::Grid` and hands it to the
//! detector. Each start and end of motion goes to the journal, to `/metrics` and to every
//! listener (`/events`, MQTT).

use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use tokio::sync::broadcast;

use crate::config::MotionConfig;
use crate::metrics::Metrics;
use crate::motion::{Detector, GRID_HEIGHT, GRID_WIDTH, Grid, MotionEvent};

/// Pixels averaged per grid cell, across and down.
const SAMPLES_PER_CELL: usize = 4;

/// The detector, how often it looks, and who hears of motion.
pub struct MotionWatch {
    detector: Detector,
    every: Duration,
    next_check: Instant,
    events: broadcast::Sender<MotionEvent>,
    metrics: Arc<Metrics>,
}

impl MotionWatch {
    pub fn new(
        config: &MotionConfig,
        events: broadcast::Sender<MotionEvent>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            detector: Detector::new(config),
            every: Duration::from_secs(1) / config.checks_per_second.max(1),
            next_check: Instant::now(),
            events,
            metrics,
        }
    }

    /// When the next frame is due.
    pub fn next_check(&self) -> Instant {
        self.next_check
    }

    /// Looks at the latest frame in `frames` (the source's appsink), if there is one.
    pub fn check(&mut self, frames: Option<&gst::Element>) {
        let now = Instant::now();
        self.next_check = now + self.every;
        let grid = frames
            .and_then(|e| e.clone().downcast::<gst_app::AppSink>().ok())
            .and_then(|sink| sink.try_pull_sample(gst::ClockTime::ZERO))
            .and_then(|sample| grid_of(&sample));
        let event = match grid {
            Some(grid) => self.detector.frame(grid, now),
            None => self.detector.quiet_check(now),
        };
        if let Some(event) = event {
            self.tell(event);
        }
    }

    /// The camera stopped: the next frame is compared with nothing.
    pub fn camera_stopped(&mut self) {
        self.detector.forget_frame();
    }

    fn tell(&self, event: MotionEvent) {
        match &event {
            MotionEvent::MotionStarted { area_percent } => {
                log::info!("motion: started ({area_percent}% of the picture moved)");
                Metrics::add(&self.metrics.motion_events, 1);
                Metrics::set(&self.metrics.motion, 1);
            }
            MotionEvent::MotionEnded { seconds } => {
                log::info!("motion: ended after {seconds} s");
                Metrics::set(&self.metrics.motion, 0);
            }
        }
        // Nobody listening is fine.
        let _ = self.events.send(event);
    }
}

/// The frame's luma (its first component) averaged over `GRID_WIDTH` x `GRID_HEIGHT` cells;
/// `None` for a frame that cannot be read.
fn grid_of(sample: &gst::Sample) -> Option<Grid> {
    let info = gst_video::VideoInfo::from_caps(sample.caps()?).ok()?;
    let buffer = sample.buffer()?;
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).ok()?;
    let format = info.format_info();
    let plane = *format.plane().first()? as usize;
    let pixel_stride = usize::try_from(*format.pixel_stride().first()?).ok()?;
    let offset = *format.poffset().first()? as usize;
    let row_stride = usize::try_from(*frame.plane_stride().get(plane)?).ok()?;
    let data = frame.plane_data(plane as u32).ok()?;
    let (width, height) = (info.width() as usize, info.height() as usize);
    if width < GRID_WIDTH || height < GRID_HEIGHT {
        return None;
    }
    let mut cells = Vec::with_capacity(GRID_WIDTH * GRID_HEIGHT);
    for row in 0..GRID_HEIGHT {
        for column in 0..GRID_WIDTH {
            let mut sum = 0u32;
            for dy in 0..SAMPLES_PER_CELL {
                let y = (row * SAMPLES_PER_CELL + dy) * height / (GRID_HEIGHT * SAMPLES_PER_CELL);
                for dx in 0..SAMPLES_PER_CELL {
                    let x =
                        (column * SAMPLES_PER_CELL + dx) * width / (GRID_WIDTH * SAMPLES_PER_CELL);
                    sum += u32::from(*data.get(y * row_stride + x * pixel_stride + offset)?);
                }
            }
            cells.push((sum / (SAMPLES_PER_CELL * SAMPLES_PER_CELL) as u32) as u8);
        }
    }
    Some(Grid(cells))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(format: gst_video::VideoFormat, fill: impl Fn(usize, usize) -> u8) -> gst::Sample {
        let info = gst_video::VideoInfo::builder(format, 320, 180)
            .build()
            .unwrap();
        let mut data = vec![128u8; info.size()];
        let stride = info.stride()[0] as usize;
        for y in 0..180 {
            for x in 0..320 {
                if format == gst_video::VideoFormat::Yuy2 {
                    data[y * stride + 2 * x] = fill(x, y);
                } else {
                    data[y * stride + x] = fill(x, y);
                }
            }
        }
        gst::Sample::builder()
            .caps(&info.to_caps().unwrap())
            .buffer(&gst::Buffer::from_mut_slice(data))
            .build()
    }

    #[test]
    fn the_grid_is_the_luma_of_each_cell() {
        crate::media::init_gstreamer().unwrap();
        for format in [
            gst_video::VideoFormat::I420,
            gst_video::VideoFormat::Nv12,
            gst_video::VideoFormat::Yuy2,
        ] {
            // The left half dark, the right half bright.
            let grid = grid_of(&sample(format, |x, _| if x < 160 { 20 } else { 230 })).unwrap();
            assert_eq!(grid.0.len(), GRID_WIDTH * GRID_HEIGHT, "{format:?}");
            assert_eq!(grid.0[0], 20, "{format:?}");
            assert_eq!(grid.0[GRID_WIDTH - 1], 230, "{format:?}");
            assert_eq!(grid.0[GRID_WIDTH * GRID_HEIGHT - 1], 230, "{format:?}");
        }
    }
}
