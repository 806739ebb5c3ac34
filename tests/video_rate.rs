//! The camera's frames reach the encoder as they come: the call's raw video chain does not hold
//! a frame until the next one arrives (videorate does unless told `drop-only`, a frame interval
//! on every frame), and its framerate is a ceiling: a faster camera is thinned to it, a slower
//! one keeps its own rate instead of being padded with duplicates. Built from the same launch
//! description a call uses, on real GStreamer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use peercam::media::MediaSettings;
use peercam::media::plan::plan_video;

/// The call's video chain on a test source producing `camera_fps`, configured for
/// `framerate`; ends at a fakesink. The source is named `camera`.
fn video_chain(camera_fps: u32, framerate: u32) -> gst::Pipeline {
    gst::init().expect("GStreamer");
    let mut settings = MediaSettings::test_pattern();
    (settings.width, settings.height, settings.framerate) = (320, 240, framerate);
    settings.video_source =
        format!("videotestsrc name=camera is-live=true ! video/x-raw,framerate={camera_fps}/1");
    let plan = plan_video(&settings, &[], |f| f == "x264enc").expect("a plan");
    gst::parse::launch(&format!(
        "{} ! fakesink name=sink sync=false",
        plan.description
    ))
    .expect("the call's video description parses")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline")
}

fn counter(pipeline: &gst::Pipeline, element: &str, pad: &str) -> Arc<AtomicU64> {
    let count = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&count);
    pipeline
        .by_name(element)
        .and_then(|e| e.static_pad(pad))
        .expect("the pad")
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            seen.fetch_add(1, Ordering::SeqCst);
            gst::PadProbeReturn::Ok
        });
    count
}

fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The raw frames' framerate where the encoder takes them (the `raw` tee).
fn negotiated_framerate(pipeline: &gst::Pipeline) -> gst::Fraction {
    let caps = pipeline
        .by_name("raw")
        .and_then(|tee| tee.static_pad("sink"))
        .and_then(|pad| pad.current_caps())
        .expect("negotiated caps at the encoder's input");
    caps.structure(0)
        .and_then(|s| s.get::<gst::Fraction>("framerate").ok())
        .expect("a framerate")
}

#[test]
fn the_first_frame_reaches_the_encoder_before_the_camera_makes_its_second() {
    // Two frames a second: half a second between them, so a held frame cannot be missed.
    let pipeline = video_chain(2, 30);
    let made = counter(&pipeline, "camera", "src");
    let at_encoder = counter(&pipeline, "raw", "sink");
    let made_when_first_arrived = Arc::new(AtomicU64::new(0));
    let seen_made = Arc::clone(&made);
    let first = Arc::clone(&made_when_first_arrived);
    pipeline
        .by_name("raw")
        .and_then(|tee| tee.static_pad("sink"))
        .expect("the encoder's input")
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let _ = first.compare_exchange(
                0,
                seen_made.load(Ordering::SeqCst),
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).expect("playing");
    wait_for("the first frame at the encoder", || {
        at_encoder.load(Ordering::SeqCst) >= 1
    });
    pipeline.set_state(gst::State::Null).expect("stopped");
    assert_eq!(
        made_when_first_arrived.load(Ordering::SeqCst),
        1,
        "the camera's first frame waited in the chain for the next one"
    );
}

#[test]
fn a_slower_camera_keeps_its_rate_and_a_faster_one_is_thinned() {
    let slower = video_chain(10, 30);
    slower.set_state(gst::State::Playing).expect("playing");
    let at_encoder = counter(&slower, "raw", "sink");
    wait_for("frames from the slower camera", || {
        at_encoder.load(Ordering::SeqCst) >= 3
    });
    assert_eq!(negotiated_framerate(&slower), gst::Fraction::new(10, 1));
    slower.set_state(gst::State::Null).expect("stopped");

    let faster = video_chain(60, 30);
    let made = counter(&faster, "camera", "src");
    let at_encoder = counter(&faster, "raw", "sink");
    faster.set_state(gst::State::Playing).expect("playing");
    wait_for("60 frames from the faster camera", || {
        made.load(Ordering::SeqCst) >= 60
    });
    assert_eq!(negotiated_framerate(&faster), gst::Fraction::new(30, 1));
    faster.set_state(gst::State::Null).expect("stopped");
    let (made, passed) = (
        made.load(Ordering::SeqCst),
        at_encoder.load(Ordering::SeqCst),
    );
    assert!(
        passed * 2 <= made + 2,
        "{passed} of the camera's {made} frames at 60 fps passed a 30 fps ceiling"
    );
}
