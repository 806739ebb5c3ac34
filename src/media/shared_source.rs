//! One camera, one microphone, one encoder and one payloader of each, shared by every peer.
//!
//! The source pipeline runs from the camera to RTP packets (H.264 or VP8, and Opus: encoded
//! and payloaded once, whatever the number of peers) and ends in an `appsink` per medium. Each
//! peer's `webrtcbin` takes each medium from a source pad with no element (and so no thread)
//! behind it; the appsinks' callbacks push every frame's packets into every subscribed pad
//! from the source's own streaming thread (one buffer list, referenced, not copied; the peers
//! that negotiated another payload type share one copy of each 12-byte header with it, made
//! once per frame and payload type). A peer is pushed nothing until `peer` starts it, once it
//! is connected and only for the streams the far end agreed to receive (webrtcbin blocks any
//! other pad), so one peer cannot hold up the others.
//! Peer pipelines use the source's clock and base time, so the source's timestamps are valid
//! running times in each of them and no timestamp is rewritten. Every peer is sent the same
//! SSRC, which each names in its SDP.
//!
//! A new video subscriber asks the encoder for a keyframe at once (a forced one, not the next
//! natural one) and, while its peer is still connecting, keeps the frames from it on for itself;
//! they go out the moment the peer is connected, so its first frame does not wait for another
//! keyframe then. A peer's keyframe requests (PLI/FIR) reach the shared encoder the same way.
//! The raw frames before the encoder go to one more appsink that keeps only the latest frame,
//! for snapshots.
//!
//! The outlets (`outlets`), the payload types of peers that negotiated another one
//! (`payload_types`), and the appsinks' callbacks that feed them (`frame_feed`) are files of
//! their own.

use std::sync::Arc;
use std::time::Instant;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::mpsc::UnboundedSender;

use super::encoder_control::EncoderControl;
use super::error::MediaError;
use super::frame_feed::{KeyframeMark, Video, feed};
use super::outlets::{Fanout, Inlet, Intake, KeyframeRequester, SendStart};
use super::plan::{self, Encoder, VideoCodec, VideoPlan};
use super::send_latency::FrameStamps;
use super::settings::MediaSettings;
use crate::metrics::Metrics;

pub use super::frame_feed::SourceNotice;

/// The running source pipeline.
pub struct SharedSource {
    pipeline: gst::Pipeline,
    plan: VideoPlan,
    video: Arc<Fanout>,
    audio: Option<Arc<Fanout>>,
    ssrcs: Ssrcs,
    frames: Option<gst::Element>,
    keyframes: KeyframeRequester,
    stamps: Option<FrameStamps>,
    encoder: Option<EncoderControl>,
    opus: Option<gst::Element>,
    bitrate_kbps: u32,
    audio_loss_percent: i32,
    started: Instant,
}

/// The SSRC of each stream the source sends (the same for every peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ssrcs {
    pub video: u32,
    pub audio: u32,
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
        let packets = "appsink sync=false async=false emit-signals=false max-buffers=0 \
                       buffer-list=true";
        let mut description = format!(
            "{} ! {} ! {packets} name=video",
            plan.description,
            plan::video_payload(plan.codec, plan::VIDEO_PAYLOAD)
        );
        let has_raw_frames = plan.encoder != Encoder::PreEncoded;
        if has_raw_frames {
            // The latest raw frame only, held by reference, for snapshots.
            description.push_str(
                " raw. ! appsink name=frames sync=false async=false max-buffers=1 drop=true",
            );
        }
        if let Some(audio) = plan::audio_description(settings) {
            description.push_str(&format!(
                " {audio} ! {} ! {packets} name=audio",
                plan::audio_payload(plan::AUDIO_PAYLOAD)
            ));
        }
        let pipeline = gst::parse::launch(&description)
            .map_err(|e| MediaError::build("the camera and encoder", e))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| MediaError::build("the camera and encoder", "not a pipeline"))?;
        // A base time chosen here, before PLAYING, so peers can be given it at once.
        let clock = gst::SystemClock::obtain();
        pipeline.use_clock(Some(&clock));
        pipeline.set_start_time(gst::ClockTime::NONE);
        pipeline.set_base_time(clock.time());
        let ssrcs = Ssrcs {
            video: random_ssrc(),
            audio: random_ssrc(),
        };
        let video_pay = pipeline
            .by_name(plan::VIDEO_PAYLOADER)
            .ok_or_else(|| MediaError::build("the video payloader", "not found"))?;
        video_pay.set_property("ssrc", ssrcs.video);
        if let Some(audio_pay) = pipeline.by_name(plan::AUDIO_PAYLOADER) {
            audio_pay.set_property("ssrc", ssrcs.audio);
        }

        let video_sink = appsink(&pipeline, "video")?;
        // Keyframe requests go upstream from the payloader's sink pad, past the payloader (see
        // `KeyframeMark::watch`).
        let pad = video_pay
            .static_pad("sink")
            .ok_or_else(|| MediaError::build("the video payloader", "no sink pad"))?;
        let encoder = EncoderControl::find(pipeline.upcast_ref::<gst::Bin>());
        let video = Arc::new(Fanout::default());
        feed(
            &video_sink,
            &video,
            Some(Video {
                keyframes: KeyframeMark::watch(&video_pay)?,
                metrics: Arc::clone(metrics),
            }),
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
            stamps: FrameStamps::watch(&video_pay),
            encoder,
            pipeline,
            plan,
            video,
            audio,
            ssrcs,
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

    /// Feeds a peer's inlets once [`SendStart`] says the peer is connected. Its video starts at
    /// a keyframe, forced now, and held for it until then; its audio starts then.
    pub fn subscribe(&self, video: Inlet<'_>, audio: Option<Inlet<'_>>) -> SendStart {
        let video = self
            .video
            .add(&video, Intake::Holding(Vec::new()), plan::VIDEO_PAYLOAD);
        let audio = self
            .audio
            .as_ref()
            .zip(audio)
            .map(|(fanout, inlet)| fanout.add(&inlet, Intake::Paused, plan::AUDIO_PAYLOAD));
        self.keyframes.request();
        SendStart {
            video,
            audio,
            keyframes: self.keyframes.clone(),
        }
    }

    pub fn unsubscribe(&self, video: &gst::Pad, audio: Option<&gst::Pad>) {
        self.video.remove(video);
        if let (Some(fanout), Some(pad)) = (&self.audio, audio) {
            fanout.remove(pad);
        }
    }

    /// The SSRCs every peer is sent and names in its SDP.
    pub fn ssrcs(&self) -> Ssrcs {
        self.ssrcs
    }

    /// When each video frame reached the payloader, for timing it to a peer's socket.
    pub fn frame_stamps(&self) -> Option<FrameStamps> {
        self.stamps.clone()
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
        .ok_or_else(|| MediaError::build("an appsink", name))
}

/// An SSRC for one stream (RFC 3550: random).
fn random_ssrc() -> u32 {
    let mut bytes = [0u8; 4];
    // Without randomness a fixed SSRC still works: each peer has its own session.
    let _ = getrandom::getrandom(&mut bytes);
    u32::from_be_bytes(bytes).max(1)
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
