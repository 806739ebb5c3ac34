//! One camera, one microphone and one encoder of each, shared by every peer.
//!
//! The source pipeline runs from the camera to encoded frames (H.264 access units or VP8, and
//! Opus) and ends in an `appsink` per medium. Each peer's pipeline begins with an `appsrc` per
//! medium; the appsinks' callbacks hand every encoded frame to every subscribed appsrc (a
//! reference, not a copy). Peer pipelines use the source's clock and base time, so the
//! source's timestamps are valid running times in each of them and no timestamp is rewritten.
//!
//! A new video subscriber asks the encoder for a keyframe at once (a forced one, not the next
//! natural one) and, while its peer is still connecting, keeps the frames from it on for itself;
//! they go out the moment the peer is connected, so its first frame does not wait for another
//! keyframe then. A peer's keyframe requests (PLI/FIR) reach the shared encoder the same way.
//! The raw frames before the encoder go to one more appsink that keeps only the latest frame,
//! for snapshots.
//!
//! The subscriber lists are read by GStreamer's streaming threads and replaced by the media
//! owner (`Swappable`: the lock is held only to clone or swap an `Arc`).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use tokio::sync::mpsc::UnboundedSender;

use super::encoder_control::EncoderControl;
use super::plan::{self, Encoder, VideoCodec, VideoPlan};
use super::{MediaError, MediaSettings};
use crate::metrics::Metrics;
use crate::swappable::Swappable;

/// What the source pipeline's callbacks saw; handled by the media owner.
#[derive(Debug)]
pub enum SourceNotice {
    /// The source failed or ended: every peer on it must end.
    Stopped(String),
}

/// How long a video subscriber that cannot send yet keeps frames for itself: from a keyframe
/// on, at most this much video, so the picture it starts with is fresh.
const HOLD_SPAN: gst::ClockTime = gst::ClockTime::from_mseconds(100);

/// Where one subscriber's video stands.
#[derive(Debug)]
enum Intake {
    /// Its peer is still connecting: the frames from the latest keyframe on are kept (within
    /// `HOLD_SPAN`) and sent the moment it can, so the first frame does not wait for another
    /// keyframe after the connection is up.
    Holding(Vec<gst::Sample>),
    /// Sending, from the next keyframe on.
    WaitingForKeyframe,
    Live,
}

/// One peer's inlet for one medium.
#[derive(Debug)]
struct Outlet {
    appsrc: gst_app::AppSrc,
    intake: Mutex<Intake>,
}

impl Outlet {
    fn intake(&self) -> MutexGuard<'_, Intake> {
        // The state is replaced whole, so a panic elsewhere cannot leave it half-written.
        self.intake.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes one frame: sends it, keeps it, or passes it by, as the intake says.
    fn take(&self, sample: &gst::Sample, keyframe: bool) {
        let mut intake = self.intake();
        match &mut *intake {
            Intake::Live => {}
            Intake::WaitingForKeyframe if keyframe => *intake = Intake::Live,
            Intake::WaitingForKeyframe => return,
            Intake::Holding(held) => {
                let span = |first: &gst::Sample| {
                    let pts = |s: &gst::Sample| s.buffer().and_then(gst::BufferRef::pts);
                    pts(sample)
                        .zip(pts(first))
                        .map(|(now, then)| now.saturating_sub(then))
                };
                if keyframe {
                    held.clear();
                    held.push(sample.clone());
                } else if held.first().and_then(span).is_some_and(|s| s <= HOLD_SPAN) {
                    held.push(sample.clone());
                } else {
                    held.clear();
                }
                return;
            }
        }
        drop(intake);
        // A peer that is stopping refuses (flushing); that is its own business.
        let _ = self.appsrc.push_sample(sample);
    }

    /// The peer can send: what was held goes out now (under the lock, so the next frame
    /// follows it), or, with nothing fresh held, it starts at the next keyframe. `false` when
    /// a keyframe must be asked for.
    fn start(&self) -> bool {
        let mut intake = self.intake();
        let Intake::Holding(held) = &mut *intake else {
            return true;
        };
        let held = std::mem::take(held);
        if held.is_empty() {
            *intake = Intake::WaitingForKeyframe;
            return false;
        }
        for sample in &held {
            let _ = self.appsrc.push_sample(sample);
        }
        *intake = Intake::Live;
        true
    }
}

/// The subscribers of one encoded stream.
#[derive(Debug, Default)]
struct Fanout {
    outlets: Swappable<Vec<Arc<Outlet>>>,
}

impl Fanout {
    fn push(&self, sample: &gst::Sample) {
        let keyframe = sample
            .buffer()
            .is_some_and(|b| !b.flags().contains(gst::BufferFlags::DELTA_UNIT));
        for outlet in self.outlets.current().iter() {
            outlet.take(sample, keyframe);
        }
    }

    fn add(&self, appsrc: &gst_app::AppSrc, intake: Intake) -> Arc<Outlet> {
        let outlet = Arc::new(Outlet {
            appsrc: appsrc.clone(),
            intake: Mutex::new(intake),
        });
        let mut outlets = (*self.outlets.current()).clone();
        outlets.push(Arc::clone(&outlet));
        self.outlets.replace(Arc::new(outlets));
        outlet
    }

    fn remove(&self, appsrc: &gst_app::AppSrc) {
        let mut outlets = (*self.outlets.current()).clone();
        outlets.retain(|o| &o.appsrc != appsrc);
        self.outlets.replace(Arc::new(outlets));
    }

    fn len(&self) -> usize {
        self.outlets.current().len()
    }
}

/// Starts one subscriber's video once its peer is connected; cheap to clone into a callback.
#[derive(Debug, Clone)]
pub struct VideoStart {
    outlet: Arc<Outlet>,
    keyframes: KeyframeRequester,
}

impl VideoStart {
    /// Sends what was held for the subscriber, or asks for a keyframe when nothing fresh is.
    pub fn now(&self) {
        if !self.outlet.start() {
            self.keyframes.request();
        }
    }
}

/// Asks the shared encoder for a keyframe; cheap to clone into a peer's pad probe.
#[derive(Debug, Clone)]
pub struct KeyframeRequester {
    /// The video appsink's sink pad: an upstream force-key-unit event sent from it reaches the
    /// encoder.
    pad: gst::Pad,
    encoder: Option<EncoderControl>,
}

impl KeyframeRequester {
    pub fn request(&self) {
        let event = gst_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        self.pad.push_event(event);
        // GStreamer 1.22's v4l2h264enc ignores the event: it gets its control as well.
        if let Some(encoder) = &self.encoder {
            encoder.force_keyframe();
        }
    }
}

/// The running source pipeline.
pub struct SharedSource {
    pipeline: gst::Pipeline,
    plan: VideoPlan,
    video: Arc<Fanout>,
    audio: Option<Arc<Fanout>>,
    frames: Option<gst::Element>,
    keyframes: KeyframeRequester,
    encoder: Option<EncoderControl>,
    opus: Option<gst::Element>,
    bitrate_kbps: u32,
    audio_loss_percent: i32,
    started: Instant,
}

impl SharedSource {
    /// Builds the source pipeline for `plan` and sets it playing.
    pub fn start(
        settings: &MediaSettings,
        plan: VideoPlan,
        notices: UnboundedSender<SourceNotice>,
        metrics: &Arc<Metrics>,
    ) -> Result<Self, MediaError> {
        let started = Instant::now();
        let encoded = "appsink sync=false async=false emit-signals=false max-buffers=0";
        let mut description = format!("{} ! {encoded} name=video", plan.description);
        let has_raw_frames = plan.encoder != Encoder::PreEncoded;
        if has_raw_frames {
            // The latest raw frame only, held by reference, for snapshots.
            description.push_str(
                " raw. ! appsink name=frames sync=false async=false max-buffers=1 drop=true",
            );
        }
        if let Some(audio) = plan::audio_description(settings) {
            description.push_str(&format!(" {audio} ! {encoded} name=audio"));
        }
        let pipeline = gst::parse::launch(&description)
            .map_err(|e| build_error("the camera and encoder", e))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| build_error("the camera and encoder", "not a pipeline"))?;
        // A base time chosen here, before PLAYING, so peers can be given it at once.
        let clock = gst::SystemClock::obtain();
        pipeline.use_clock(Some(&clock));
        pipeline.set_start_time(gst::ClockTime::NONE);
        pipeline.set_base_time(clock.time());

        let video_sink = appsink(&pipeline, "video")?;
        let pad = video_sink
            .static_pad("sink")
            .ok_or_else(|| build_error("the video appsink", "no sink pad"))?;
        let encoder = EncoderControl::find(pipeline.upcast_ref::<gst::Bin>());
        let video = Arc::new(Fanout::default());
        feed(
            &video_sink,
            &video,
            Some(Arc::clone(metrics)),
            notices.clone(),
        );
        let audio = match pipeline.by_name("audio") {
            Some(_) => {
                let fanout = Arc::new(Fanout::default());
                feed(
                    &appsink(&pipeline, "audio")?,
                    &fanout,
                    None,
                    notices.clone(),
                );
                Some(fanout)
            }
            None => None,
        };
        watch_bus(&pipeline, notices);
        let source = Self {
            frames: pipeline.by_name("frames").filter(|_| has_raw_frames),
            opus: pipeline.by_name("opus"),
            keyframes: KeyframeRequester {
                pad,
                encoder: encoder.clone(),
            },
            encoder,
            pipeline,
            plan,
            video,
            audio,
            bitrate_kbps: settings.video_bitrate.start_kbps(),
            audio_loss_percent: 0,
            started,
        };
        source
            .pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| MediaError::StateChange(e.to_string()))?;
        Ok(source)
    }

    pub fn codec(&self) -> VideoCodec {
        self.plan.codec
    }

    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// Whether the encoder's bitrate can be moved (not for a custom line or pre-encoded video).
    pub fn adapts_bitrate(&self) -> bool {
        self.encoder.is_some()
    }

    /// Gives a peer pipeline this source's clock and base time; call before it plays.
    pub fn share_clock(&self, peer: &gst::Pipeline) {
        if let Some(clock) = self.pipeline.clock() {
            peer.use_clock(Some(&clock));
        }
        peer.set_start_time(gst::ClockTime::NONE);
        peer.set_base_time(self.pipeline.base_time().unwrap_or(gst::ClockTime::ZERO));
    }

    /// Feeds a peer's appsrcs from now on. Its video starts at a keyframe, forced now, and is
    /// held for it until [`VideoStart::now`] says the peer is connected.
    pub fn subscribe(
        &self,
        video: &gst_app::AppSrc,
        audio: Option<&gst_app::AppSrc>,
    ) -> VideoStart {
        let outlet = self.video.add(video, Intake::Holding(Vec::new()));
        if let (Some(fanout), Some(appsrc)) = (&self.audio, audio) {
            fanout.add(appsrc, Intake::Live);
        }
        self.keyframes.request();
        VideoStart {
            outlet,
            keyframes: self.keyframes.clone(),
        }
    }

    pub fn unsubscribe(&self, video: &gst_app::AppSrc, audio: Option<&gst_app::AppSrc>) {
        self.video.remove(video);
        if let (Some(fanout), Some(appsrc)) = (&self.audio, audio) {
            fanout.remove(appsrc);
        }
    }

    pub fn subscribers(&self) -> usize {
        self.video.len()
    }

    pub fn keyframe_requester(&self) -> KeyframeRequester {
        self.keyframes.clone()
    }

    /// The encoder's bitrate now.
    pub fn bitrate_kbps(&self) -> u32 {
        self.bitrate_kbps
    }

    /// Moves the encoder's bitrate; `false` when it is already there or cannot move.
    pub fn set_bitrate(&mut self, kbps: u32) -> bool {
        match &self.encoder {
            Some(encoder) if kbps != self.bitrate_kbps => {
                encoder.set_bitrate(kbps);
                self.bitrate_kbps = kbps;
                true
            }
            _ => false,
        }
    }

    /// Tells Opus the audio loss to cover with in-band FEC.
    pub fn set_audio_loss(&mut self, percent: i32) {
        if let Some(opus) = &self.opus
            && percent != self.audio_loss_percent
        {
            self.audio_loss_percent = percent;
            opus.set_property("packet-loss-percentage", percent);
        }
    }

    /// The appsink holding the latest raw frame; none for pre-encoded video.
    pub fn frames(&self) -> Option<gst::Element> {
        self.frames.clone()
    }

    /// Stops the camera and encoders: the pipeline goes to NULL.
    pub fn stop(self) {
        if let Some(bus) = self.pipeline.bus() {
            bus.unset_sync_handler();
        }
        if let Err(e) = self.pipeline.set_state(gst::State::Null) {
            log::warn!("the camera's pipeline did not stop cleanly: {e}");
        }
        log::info!(
            "camera and encoder stopped after {:.1} s",
            self.started.elapsed().as_secs_f32()
        );
    }
}

fn appsink(pipeline: &gst::Pipeline, name: &'static str) -> Result<gst_app::AppSink, MediaError> {
    pipeline
        .by_name(name)
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| build_error("an appsink", name))
}

/// Hands each encoded frame of `sink` to the fanout's subscribers; counts video keyframes. A
/// source that ends (a camera unplugged, a file at its end) ends only its branch: the pipeline
/// as a whole never reaches EOS while the other branch runs, so each branch's end is reported.
fn feed(
    sink: &gst_app::AppSink,
    fanout: &Arc<Fanout>,
    keyframes: Option<Arc<Metrics>>,
    notices: UnboundedSender<SourceNotice>,
) {
    let fanout = Arc::clone(fanout);
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .eos(move |_| {
                let _ = notices.send(SourceNotice::Stopped(
                    "the camera or microphone stopped sending (end of stream)".to_owned(),
                ));
            })
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(metrics) = &keyframes
                    && sample
                        .buffer()
                        .is_some_and(|b| !b.flags().contains(gst::BufferFlags::DELTA_UNIT))
                {
                    Metrics::add(&metrics.keyframes_sent, 1);
                }
                fanout.push(&sample);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}

/// Reports the source's errors.
fn watch_bus(pipeline: &gst::Pipeline, notices: UnboundedSender<SourceNotice>) {
    let Some(bus) = pipeline.bus() else {
        return;
    };
    bus.set_sync_handler(move |_, message| {
        let stopped = match message.view() {
            gst::MessageView::Error(err) => {
                let source = err.src().map(|s| s.path_string()).unwrap_or_default();
                Some(format!("{source}: {}", err.error()))
            }
            _ => None,
        };
        if let Some(reason) = stopped {
            let _ = notices.send(SourceNotice::Stopped(reason));
        }
        gst::BusSyncReply::Drop
    });
}

fn build_error(what: &'static str, reason: impl std::fmt::Display) -> MediaError {
    MediaError::Build {
        what,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An outlet whose appsrc feeds an appsink in a playing pipeline, with the intake given.
    fn outlet(intake: Intake) -> (gst::Pipeline, Outlet, gst_app::AppSink) {
        gst::init().expect("GStreamer");
        let pipeline =
            gst::parse::launch("appsrc name=src format=time ! appsink name=sink sync=false")
                .expect("a pipeline")
                .downcast::<gst::Pipeline>()
                .expect("a pipeline");
        let by_name = |name| pipeline.by_name(name).expect("the element");
        let appsrc = by_name("src")
            .downcast::<gst_app::AppSrc>()
            .expect("an appsrc");
        let sink = by_name("sink")
            .downcast::<gst_app::AppSink>()
            .expect("an appsink");
        pipeline.set_state(gst::State::Playing).expect("playing");
        let outlet = Outlet {
            appsrc,
            intake: Mutex::new(intake),
        };
        (pipeline, outlet, sink)
    }

    fn frame(outlet: &Outlet, pts_ms: u64, keyframe: bool) {
        let mut buffer = gst::Buffer::new();
        let b = buffer.get_mut().expect("a new buffer is writable");
        b.set_pts(gst::ClockTime::from_mseconds(pts_ms));
        if !keyframe {
            b.set_flags(gst::BufferFlags::DELTA_UNIT);
        }
        let caps = gst::Caps::new_empty_simple("application/x-test");
        let sample = gst::Sample::builder().buffer(&buffer).caps(&caps).build();
        outlet.take(&sample, keyframe);
    }

    /// The frames that came out, by presentation time in milliseconds.
    fn received(pipeline: gst::Pipeline, sink: &gst_app::AppSink) -> Vec<u64> {
        let mut times = Vec::new();
        while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(200)) {
            times.extend(sample.buffer().and_then(|b| b.pts()).map(|t| t.mseconds()));
        }
        pipeline.set_state(gst::State::Null).expect("stopped");
        times
    }

    #[test]
    fn what_was_held_goes_out_at_the_start_in_order_then_live_frames() {
        let (pipeline, outlet, sink) = outlet(Intake::Holding(Vec::new()));
        frame(&outlet, 0, false); // nothing to start from yet
        frame(&outlet, 10, true);
        frame(&outlet, 43, false);
        frame(&outlet, 76, false);
        assert!(outlet.start(), "a fresh keyframe was held");
        frame(&outlet, 110, false);
        assert_eq!(received(pipeline, &sink), [10, 43, 76, 110]);
    }

    #[test]
    fn a_newer_keyframe_replaces_the_hold() {
        let (pipeline, outlet, sink) = outlet(Intake::Holding(Vec::new()));
        frame(&outlet, 0, true);
        frame(&outlet, 33, false);
        frame(&outlet, 66, true);
        frame(&outlet, 99, false);
        assert!(outlet.start());
        assert_eq!(received(pipeline, &sink), [66, 99]);
    }

    #[test]
    fn a_stale_hold_is_dropped_and_the_start_waits_for_a_keyframe() {
        let (pipeline, outlet, sink) = outlet(Intake::Holding(Vec::new()));
        for (i, pts) in (0..=133).step_by(33).enumerate() {
            frame(&outlet, pts, i == 0);
        }
        assert!(
            !outlet.start(),
            "nothing fresh held: a keyframe must be asked for"
        );
        frame(&outlet, 166, false);
        frame(&outlet, 200, true);
        frame(&outlet, 233, false);
        assert_eq!(received(pipeline, &sink), [200, 233]);
    }

    #[test]
    fn a_live_outlet_sends_every_frame_and_a_start_changes_nothing() {
        let (pipeline, outlet, sink) = outlet(Intake::Live);
        frame(&outlet, 0, false);
        assert!(outlet.start());
        frame(&outlet, 33, false);
        assert_eq!(received(pipeline, &sink), [0, 33]);
    }
}
