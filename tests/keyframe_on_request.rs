//! Every encoder peercam may choose answers a keyframe request at once: a browser's PLI or FIR
//! reaches the encoder as an upstream `GstForceKeyUnit` event (that is what webrtcbin's RTP
//! session sends on PLI/FIR), and the next frames must include a keyframe, not wait for the
//! next natural one. Built from the same launch description a call uses, on real GStreamer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use peercam::media::MediaSettings;
use peercam::media::plan::plan_video;

/// Frames seen at the encoder's output (every payloader's input), and which of them were keyframes.
#[derive(Default)]
struct Seen {
    frames: AtomicU64,
    // Frame numbers of keyframes; only the test thread reads it, after the stream stops.
    keyframes: Mutex<Vec<u64>>,
}

fn wait_for(what: &str, timeout: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn keyframe_on_request(encoder_factory: &'static str) {
    gst::init().expect("GStreamer");
    assert!(
        gst::ElementFactory::find(encoder_factory).is_some(),
        "{encoder_factory} is installed by scripts/setup"
    );
    let mut settings = MediaSettings::test_pattern();
    (settings.width, settings.height) = (320, 240);
    settings.keyframe_interval = 10_000; // no natural keyframe during the test
    let plan = plan_video(&settings, &[], |f| f == encoder_factory).expect("a plan");
    let pipeline = gst::parse::launch(&format!(
        "{} ! fakesink name=sink sync=false",
        plan.description
    ))
    .expect("the call's video description parses")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");

    let seen = Arc::new(Seen::default());
    // The shared encoder's output, where every peer's payloader is fed from.
    let encoded = pipeline
        .by_name("sink")
        .and_then(|sink| sink.static_pad("sink"))
        .expect("the encoded frames' sink");
    let probe_seen = Arc::clone(&seen);
    encoded.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(buffer) = info.buffer() {
            let n = probe_seen.frames.fetch_add(1, Ordering::SeqCst);
            if !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT) {
                probe_seen.keyframes.lock().expect("not poisoned").push(n);
            }
        }
        gst::PadProbeReturn::Ok
    });
    pipeline.set_state(gst::State::Playing).expect("playing");
    wait_for("15 frames", Duration::from_secs(10), || {
        seen.frames.load(Ordering::SeqCst) >= 15
    });

    let request = gst::event::CustomUpstream::new(
        gst::Structure::builder("GstForceKeyUnit")
            .field("all-headers", true)
            .field("count", 1u32)
            .build(),
    );
    let requested_at = seen.frames.load(Ordering::SeqCst);
    let sink_pad = pipeline
        .by_name("sink")
        .and_then(|sink| sink.static_pad("sink"))
        .expect("fakesink pad");
    assert!(sink_pad.push_event(request), "the request travels upstream");
    wait_for("10 more frames", Duration::from_secs(10), || {
        seen.frames.load(Ordering::SeqCst) >= requested_at + 10
    });
    pipeline.set_state(gst::State::Null).expect("stopped");

    let keyframes = seen.keyframes.lock().expect("not poisoned").clone();
    assert_eq!(
        keyframes.first(),
        Some(&0),
        "{encoder_factory}: the stream starts with a keyframe"
    );
    assert!(
        keyframes
            .iter()
            .any(|&n| n >= requested_at && n < requested_at + 10),
        "{encoder_factory}: a keyframe within 10 frames of the request at frame {requested_at}; keyframes at {keyframes:?}"
    );
}

#[test]
fn x264_answers_a_keyframe_request() {
    keyframe_on_request("x264enc");
}

#[test]
fn openh264_answers_a_keyframe_request() {
    keyframe_on_request("openh264enc");
}

#[test]
fn vp8_answers_a_keyframe_request() {
    keyframe_on_request("vp8enc");
}
