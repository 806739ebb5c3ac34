//! A JPEG of the camera's latest frame, for `/snapshot.jpg` (`MediaCommand::Snapshot`): the raw
//! frame comes from the shared source's `frames` appsink (gstreamer-app) and is encoded once,
//! here, on a blocking thread, only when asked.

use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use thiserror::Error;

use crate::media_link::{SNAPSHOT_WIDTHS, SnapshotRefused};

/// How long a frame may take: a camera that was off needs a moment to start.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("no picture from the camera within {0} ms")]
    NoFrame(u128),
    #[error("the picture could not be encoded: {0}")]
    Encode(String),
}

impl From<SnapshotError> for SnapshotRefused {
    fn from(e: SnapshotError) -> Self {
        match e {
            SnapshotError::NoFrame(_) => Self::NoPicture(e.to_string()),
            SnapshotError::Encode(_) => Self::Encode(e.to_string()),
        }
    }
}

/// Pulls the latest raw frame from `frames` (waiting up to `timeout` for one) and encodes it
/// as a JPEG `width` pixels wide (the frame's own width when `None`), keeping its aspect.
pub fn jpeg(
    frames: &gst::Element,
    width: Option<u32>,
    timeout: Duration,
) -> Result<Vec<u8>, SnapshotError> {
    let sink = frames
        .clone()
        .downcast::<gst_app::AppSink>()
        .map_err(|_| SnapshotError::Encode("not an appsink".into()))?;
    let sample = sink
        .try_pull_sample(gst::ClockTime::from_nseconds(timeout.as_nanos() as u64))
        .ok_or(SnapshotError::NoFrame(timeout.as_millis()))?;
    let (frame_width, frame_height) = sample
        .caps()
        .and_then(|c| c.structure(0))
        .and_then(|s| Some((s.get::<i32>("width").ok()?, s.get::<i32>("height").ok()?)))
        .ok_or_else(|| SnapshotError::Encode("the frame has no size".into()))?;
    let (w, h) = scaled(frame_width as u32, frame_height as u32, width);
    let caps = gst::Caps::builder("image/jpeg")
        .field("width", w as i32)
        .field("height", h as i32)
        .build();
    let jpeg =
        gstreamer_video::convert_sample(&sample, &caps, Some(gst::ClockTime::from_seconds(2)))
            .map_err(|e| SnapshotError::Encode(e.to_string()))?;
    let buffer = jpeg
        .buffer()
        .ok_or_else(|| SnapshotError::Encode("no data".into()))?;
    let map = buffer
        .map_readable()
        .map_err(|e| SnapshotError::Encode(e.to_string()))?;
    Ok(map.as_slice().to_vec())
}

/// The size of a snapshot `width` wide of a `frame_width`×`frame_height` frame: the aspect kept,
/// both even, and within `SNAPSHOT_WIDTHS`.
pub fn scaled(frame_width: u32, frame_height: u32, width: Option<u32>) -> (u32, u32) {
    let w = width
        .unwrap_or(frame_width)
        .clamp(*SNAPSHOT_WIDTHS.start(), *SNAPSHOT_WIDTHS.end())
        & !1;
    let h = (u64::from(frame_height) * u64::from(w) / u64::from(frame_width.max(1))) as u32;
    (w, (h & !1).max(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_keep_the_aspect() {
        assert_eq!(scaled(1280, 720, None), (1280, 720));
        assert_eq!(scaled(1280, 720, Some(640)), (640, 360));
        assert_eq!(scaled(1280, 720, Some(321)), (320, 180));
        assert_eq!(scaled(1280, 720, Some(1)), (16, 8));
        assert_eq!(scaled(1280, 720, Some(100_000)), (3840, 2160));
    }
}
