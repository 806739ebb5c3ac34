//! An NVR pressing its talk button, for the tests (tests/browser/rtsp.test.mjs): GStreamer's
//! RTSP client (`rtspsrc backchannel=onvif`, which sends `Require:
//! www.onvif.org/ver20/backchannel`) receives the device's streams and sends a 440 Hz tone as
//! G.711 mu-law RTP on the backchannel the device offers.
//!
//! Usage: `onvif_talk URL SECONDS`. Prints one JSON line, `{"backchannel":true,"sent":N,
//! "refused":N}`, and exits 1 when the device offered no backchannel or took no packet.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

#[derive(Default)]
struct Counts {
    /// The backchannel's stream index in the device's SDP (`a=sendonly`); -1 until found.
    stream: AtomicI64,
    sent: AtomicU64,
    refused: AtomicU64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(seconds)) = (args.next(), args.next()) else {
        return Err("usage: onvif_talk URL SECONDS".into());
    };
    let seconds: f64 = seconds.parse()?;
    gst::init()?;
    let counts = Arc::new(Counts {
        stream: AtomicI64::new(-1),
        ..Counts::default()
    });

    let receiver = gst::Pipeline::new();
    let rtspsrc = gst::ElementFactory::make("rtspsrc")
        .property("location", &url)
        .property_from_str("backchannel", "onvif")
        .property_from_str("protocols", "tcp")
        .property("latency", 0u32)
        .build()?;
    receiver.add(&rtspsrc)?;
    let found = Arc::clone(&counts);
    rtspsrc.connect("select-stream", false, move |values| {
        let index = values.get(1).and_then(|v| v.get::<u32>().ok());
        let caps = values.get(2).and_then(|v| v.get::<gst::Caps>().ok());
        let sendonly = caps
            .as_ref()
            .and_then(|caps| caps.structure(0))
            .is_some_and(|s| s.has_field("a-sendonly"));
        if let (true, Some(index)) = (sendonly, index) {
            found.stream.store(i64::from(index), Ordering::SeqCst);
        }
        Some(true.to_value())
    });
    let weak = receiver.downgrade();
    rtspsrc.connect_pad_added(move |_, pad| {
        let Some(receiver) = weak.upgrade() else {
            return;
        };
        let Ok(sink) = gst::ElementFactory::make("fakesink").build() else {
            return;
        };
        if receiver.add(&sink).is_ok() {
            let _ = sink.sync_state_with_parent();
            if let Some(sink_pad) = sink.static_pad("sink") {
                let _ = pad.link(&sink_pad);
            }
        }
    });

    let talker = gst::parse::launch(&format!(
        "audiotestsrc is-live=true freq=440 volume=0.3 samplesperbuffer=160 num-buffers={} ! \
         audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay ! appsink name=out sync=true",
        (seconds * 50.0) as u64
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "the talker is not a pipeline")?;
    let out = talker
        .by_name("out")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or("the talker has no appsink")?;
    let pushing = Arc::clone(&counts);
    let source = rtspsrc.clone();
    out.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |appsink| {
                let sample = appsink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Ok(stream) = u32::try_from(pushing.stream.load(Ordering::SeqCst)) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                // rtspsrc 1.22 takes the caller's reference to the sample (fixed in later
                // releases): give it one of its own there.
                if gst::version() < (1, 24, 0, 0) {
                    std::mem::forget(sample.clone());
                }
                let flow = source.emit_by_name::<gst::FlowReturn>(
                    "push-backchannel-sample",
                    &[&stream, &sample],
                );
                let counter = if flow == gst::FlowReturn::Ok {
                    &pushing.sent
                } else {
                    &pushing.refused
                };
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );

    let main_loop = glib::MainLoop::new(None, false);
    let talking = Arc::new(Mutex::new(false));
    for pipeline in [&receiver, &talker] {
        let main_loop = main_loop.clone();
        let talker = talker.clone();
        let receiver_ref = receiver.clone();
        let talking = Arc::clone(&talking);
        let bus = pipeline.bus().ok_or("a pipeline has no bus")?;
        let watch = bus.add_watch(move |_, message| {
            match message.view() {
                gst::MessageView::Error(e) => {
                    eprintln!("onvif_talk: {} ({:?})", e.error(), e.debug());
                    main_loop.quit();
                }
                gst::MessageView::Eos(_) => main_loop.quit(),
                gst::MessageView::StateChanged(change)
                    if change.src() == Some(receiver_ref.upcast_ref())
                        && change.current() == gst::State::Playing =>
                {
                    // The receiver plays: the session is set up; the talk begins.
                    if let Ok(mut talking) = talking.lock()
                        && !*talking
                    {
                        *talking = true;
                        let _ = talker.set_state(gst::State::Playing);
                    }
                }
                _ => {}
            }
            glib::ControlFlow::Continue
        })?;
        std::mem::forget(watch);
    }
    let quit = main_loop.clone();
    glib::timeout_add_once(
        std::time::Duration::from_secs_f64(seconds + 15.0),
        move || quit.quit(),
    );
    receiver.set_state(gst::State::Playing)?;
    main_loop.run();
    let _ = talker.set_state(gst::State::Null);
    let _ = receiver.set_state(gst::State::Null);
    let backchannel = counts.stream.load(Ordering::SeqCst) >= 0;
    let sent = counts.sent.load(Ordering::SeqCst);
    println!(
        "{{\"backchannel\":{backchannel},\"sent\":{sent},\"refused\":{}}}",
        counts.refused.load(Ordering::SeqCst)
    );
    if backchannel && sent > 0 {
        Ok(())
    } else {
        std::process::exit(1)
    }
}
