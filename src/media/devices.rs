//! What `auto` means on this machine: GStreamer's device monitor is asked once, at start, for
//! cameras, microphones and speakers. With none attached, the device still works: a moving test
//! pattern, a tone, and the caller's voice discarded.

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::config::{AUTO, NO_AUDIO};

pub const TEST_VIDEO_SOURCE: &str = "videotestsrc is-live=true pattern=smpte";
pub const TEST_AUDIO_SOURCE: &str = "audiotestsrc is-live=true wave=sine freq=440 volume=0.15";
const DISCARD_SINK: &str = "fakesink sync=false";

/// A resolved source or sink and why it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub description: String,
    pub reason: String,
}

impl Choice {
    fn new(description: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            description: description.into(),
            reason: reason.into(),
        }
    }
}

pub fn resolve_video_source(configured: &str) -> Choice {
    if configured != AUTO {
        return Choice::new(configured, "from the config");
    }
    match first_device("Video/Source") {
        Some(device) => match device_path(&device) {
            Some(path) => Choice::new(
                format!("v4l2src device={path}"),
                format!("camera `{}` found", device.display_name()),
            ),
            None => Choice::new(
                "autovideosrc",
                format!("camera `{}` found", device.display_name()),
            ),
        },
        None => Choice::new(TEST_VIDEO_SOURCE, "no camera found: test pattern"),
    }
}

/// The microphone's launch line, or `None` when the config says the device has none.
pub fn resolve_audio_source(configured: &str) -> Option<Choice> {
    if configured == NO_AUDIO {
        return None;
    }
    Some(resolve_microphone(configured))
}

fn resolve_microphone(configured: &str) -> Choice {
    if configured != AUTO {
        return Choice::new(configured, "from the config");
    }
    match first_device("Audio/Source") {
        Some(device) => Choice::new(
            "autoaudiosrc",
            format!("microphone `{}` found", device.display_name()),
        ),
        None => Choice::new(TEST_AUDIO_SOURCE, "no microphone found: test tone"),
    }
}

pub fn resolve_audio_sink(configured: &str) -> Choice {
    if configured != AUTO {
        return Choice::new(configured, "from the config");
    }
    match first_device("Audio/Sink") {
        Some(device) => Choice::new(
            "autoaudiosink",
            format!("speaker `{}` found", device.display_name()),
        ),
        None => Choice::new(
            DISCARD_SINK,
            "no speaker found: the caller's voice is discarded",
        ),
    }
}

fn first_device(class: &str) -> Option<gst::Device> {
    let monitor = gst::DeviceMonitor::new();
    monitor.add_filter(Some(class), None);
    if monitor.start().is_err() {
        return None;
    }
    let device = monitor.devices().into_iter().next();
    monitor.stop();
    device
}

fn device_path(device: &gst::Device) -> Option<String> {
    let props = device.properties()?;
    ["api.v4l2.path", "device.path"]
        .iter()
        .find_map(|key| props.get::<String>(*key).ok())
}
