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

use super::encoder_branch::EncoderBranch;
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
    /// The first encoder's packets, for the peers on its codec.
    video: VideoOutput,
    /// A second encoder in another codec, on the same raw frames, while the owner's browser
    /// needs it (`media.max_encoders`).
    second: Option<(VideoOutput, EncoderBranch)>,
    audio: Option<Arc<Fanout>>,
    audio_ssrc: u32,
    frames: Option<gst::Element>,
    opus: Option<gst::Element>,
    audio_loss_percent: i32,
    notices: UnboundedSender<SourceNotice>,
    metrics: Arc<Metrics>,
    started: Instant,
}

/// One encoder's output: its payloader's packets, fanned out to the peers on its codec, and the
/// handles that steer the encoder.
struct VideoOutput {
    codec: VideoCodec,
    fanout: Arc<Fanout>,
    ssrc: u32,
    keyframes: KeyframeRequester,
    stamps: Option<FrameStamps>,
    encoder: Option<EncoderControl>,
    bitrate_kbps: u32,
}

impl VideoOutput {
    /// Feeds the packets of `pay` (the payloader after the encoder in `bin`), which reach the
    /// appsink `sink`, to a new fanout.
    fn attach(
        codec: VideoCodec,
        bin: &gst::Bin,
        (pay, sink): (&gst::Element, &gst_app::AppSink),
        bitrate_kbps: u32,
        notices: UnboundedSender<SourceNotice>,
        metrics: &Arc<Metrics>,
    ) -> Result<Self, MediaError> {
        let ssrc = random_ssrc();
        pay.set_property("ssrc", ssrc);
        // Keyframe requests go upstream from the payloader's sink pad, past the payloader (see
        // `KeyframeMark::watch`).
        let pad = pay
            .static_pad("sink")
            .ok_or_else(|| MediaError::build("the video payloader", "no sink pad"))?;
        let encoder = EncoderControl::find(bin);
        let fanout = Arc::new(Fanout::default());
        feed(
            sink,
            &fanout,
            Some(Video {
                keyframes: KeyframeMark::watch(pay)?,
                metrics: Arc::clone(metrics),
            }),
            notices,
        );
        Ok(Self {
            codec,
            fanout,
            ssrc,
            keyframes: KeyframeRequester {
                pad,
                encoder: encoder.clone(),
            },
            stamps: FrameStamps::watch(pay),
            encoder,
            bitrate_kbps,
        })
    }
}

/// The SSRC of each stream the source sends a peer (the same for every peer on a codec).
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
        let mut description = format!(
            "{} ! {} ! {PACKETS} name=video",
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
                " {audio} ! {} ! {PACKETS} name=audio",
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
        let audio_ssrc = random_ssrc();
        if let Some(audio_pay) = pipeline.by_name(plan::AUDIO_PAYLOADER) {
            audio_pay.set_property("ssrc", audio_ssrc);
        }
        let video_pay = pipeline
            .by_name(plan::VIDEO_PAYLOADER)
            .ok_or_else(|| MediaError::build("the video payloader", "not found"))?;
        let video = VideoOutput::attach(
            plan.codec,
            pipeline.upcast_ref::<gst::Bin>(),
            (&video_pay, &appsink(pipeline.upcast_ref(), "video")?),
            settings.video_bitrate.start_kbps(),
            notices.clone(),
            metrics,
        )?;
        let audio = match pipeline.by_name("audio") {
            Some(_) => {
                let fanout = Arc::new(Fanout::default());
                feed(
                    &appsink(pipeline.upcast_ref(), "audio")?,
                    &fanout,
                    None,
                    notices.clone(),
                );
                Some(fanout)
            }
            None => None,
        };
        watch_bus(&pipeline, notices.clone());
        let source = Self {
            frames: pipeline.by_name("frames").filter(|_| has_raw_frames),
            opus: pipeline.by_name("opus"),
            pipeline,
            plan,
            video,
            second: None,
            audio,
            audio_ssrc,
            audio_loss_percent: 0,
            notices,
            metrics: Arc::clone(metrics),
            started,
        };
        source
            .pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| MediaError::StateChange(e.to_string()))?;
        Ok(source)
    }

    /// The first encoder's codec.
    pub fn codec(&self) -> VideoCodec {
        self.plan.codec
    }

    /// The codecs the encoders send, the first encoder's first.
    pub fn codecs(&self) -> Vec<VideoCodec> {
        self.outputs().map(|o| o.codec).collect()
    }

    /// The codec a peer that receives `codecs` is sent: the first running one it takes (the
    /// first encoder's when it did not say).
    pub fn codec_for(&self, codecs: &[String]) -> Option<VideoCodec> {
        if codecs.is_empty() {
            return Some(self.codec());
        }
        self.outputs().map(|o| o.codec).find(|codec| {
            codecs
                .iter()
                .any(|c| c.eq_ignore_ascii_case(&codec.to_string()))
        })
    }

    fn outputs(&self) -> impl Iterator<Item = &VideoOutput> {
        std::iter::once(&self.video).chain(self.second.as_ref().map(|(output, _)| output))
    }

    fn output(&self, codec: VideoCodec) -> Result<&VideoOutput, MediaError> {
        self.outputs()
            .find(|o| o.codec == codec)
            .ok_or(MediaError::NotEncoding(codec))
    }

    /// Whether this source can start another encoder: it has raw frames and runs one.
    pub fn can_add_encoder(&self) -> bool {
        self.frames.is_some() && self.second.is_none()
    }

    /// Starts a second encoder, as `plan` says, on the raw frames the first one encodes.
    pub fn add_encoder(
        &mut self,
        settings: &MediaSettings,
        plan: &VideoPlan,
    ) -> Result<(), MediaError> {
        if !self.can_add_encoder() {
            return Err(MediaError::build(
                "a second encoder",
                "this source has no raw frames to share",
            ));
        }
        let description = format!(
            "{} ! {} ! {PACKETS} name=video",
            plan::encoder_description(settings, plan.encoder),
            plan::video_payload(plan.codec, plan::VIDEO_PAYLOAD)
        );
        let branch = EncoderBranch::add(&self.pipeline, "raw", &description)?;
        let attached = branch
            .bin()
            .by_name(plan::VIDEO_PAYLOADER)
            .ok_or_else(|| MediaError::build("the second video payloader", "not found"))
            .and_then(|pay| Ok((pay, appsink(branch.bin(), "video")?)))
            .and_then(|(pay, sink)| {
                VideoOutput::attach(
                    plan.codec,
                    branch.bin(),
                    (&pay, &sink),
                    settings.video_bitrate.start_kbps(),
                    self.notices.clone(),
                    &self.metrics,
                )
            });
        let output = match attached.and_then(|output| branch.play().map(|()| output)) {
            Ok(output) => output,
            Err(e) => {
                branch.remove(&self.pipeline);
                return Err(e);
            }
        };
        log::info!(
            "a second encoder started: {} ({}), beside {}",
            plan.codec,
            plan.reason,
            self.video.codec
        );
        self.second = Some((output, branch));
        Ok(())
    }

    /// Stops the second encoder when no peer is on it any more.
    pub fn stop_idle_encoder(&mut self) {
        if self
            .second
            .as_ref()
            .is_some_and(|(output, _)| output.fanout.len() == 0)
            && let Some((output, branch)) = self.second.take()
        {
            branch.remove(&self.pipeline);
            log::info!(
                "the second encoder ({}) stopped: no one is on it",
                output.codec
            );
        }
    }

    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// Whether the encoders' bitrate can be moved (not for a custom line or pre-encoded video).
    pub fn adapts_bitrate(&self) -> bool {
        self.video.encoder.is_some()
    }

    /// Gives a peer pipeline this source's clock and base time; call before it plays.
    pub fn share_clock(&self, peer: &gst::Pipeline) {
        if let Some(clock) = self.pipeline.clock() {
            peer.use_clock(Some(&clock));
        }
        peer.set_start_time(gst::ClockTime::NONE);
        peer.set_base_time(self.pipeline.base_time().unwrap_or(gst::ClockTime::ZERO));
    }

    /// Feeds a peer's inlets with `codec`'s encoder once [`SendStart`] says the peer is
    /// connected. Its video starts at a keyframe, forced now, and held for it until then; its
    /// audio starts then.
    pub fn subscribe(
        &self,
        codec: VideoCodec,
        video: Inlet<'_>,
        audio: Option<Inlet<'_>>,
    ) -> Result<SendStart, MediaError> {
        let output = self.output(codec)?;
        let video = output
            .fanout
            .add(&video, Intake::Holding(Vec::new()), plan::VIDEO_PAYLOAD);
        let audio = self
            .audio
            .as_ref()
            .zip(audio)
            .map(|(fanout, inlet)| fanout.add(&inlet, Intake::Paused, plan::AUDIO_PAYLOAD));
        output.keyframes.request();
        Ok(SendStart {
            video,
            audio,
            keyframes: output.keyframes.clone(),
        })
    }

    pub fn unsubscribe(&self, video: &gst::Pad, audio: Option<&gst::Pad>) {
        for output in self.outputs() {
            output.fanout.remove(video);
        }
        if let (Some(fanout), Some(pad)) = (&self.audio, audio) {
            fanout.remove(pad);
        }
    }

    /// The SSRCs a peer on `codec` is sent and names in its SDP.
    pub fn ssrcs(&self, codec: VideoCodec) -> Result<Ssrcs, MediaError> {
        Ok(Ssrcs {
            video: self.output(codec)?.ssrc,
            audio: self.audio_ssrc,
        })
    }

    /// When each video frame of `codec` reached the payloader, for timing it to a peer's
    /// socket.
    pub fn frame_stamps(&self, codec: VideoCodec) -> Option<FrameStamps> {
        self.output(codec).ok()?.stamps.clone()
    }

    /// The peers on `codec`'s encoder.
    pub fn subscribers(&self, codec: VideoCodec) -> usize {
        self.output(codec).map_or(0, |o| o.fanout.len())
    }

    pub fn keyframe_requester(&self, codec: VideoCodec) -> Result<KeyframeRequester, MediaError> {
        Ok(self.output(codec)?.keyframes.clone())
    }

    /// The first encoder's bitrate now.
    pub fn bitrate_kbps(&self) -> u32 {
        self.video.bitrate_kbps
    }

    /// Moves `codec`'s encoder's bitrate; `false` when it is already there or cannot move.
    pub fn set_bitrate(&mut self, codec: VideoCodec, kbps: u32) -> bool {
        let output = std::iter::once(&mut self.video)
            .chain(self.second.as_mut().map(|(output, _)| output))
            .find(|o| o.codec == codec);
        match output {
            Some(VideoOutput {
                encoder: Some(encoder),
                bitrate_kbps,
                ..
            }) if kbps != *bitrate_kbps => {
                encoder.set_bitrate(kbps);
                *bitrate_kbps = kbps;
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

/// The appsink every encoder's and the audio's packets end in.
const PACKETS: &str = "appsink sync=false async=false emit-signals=false max-buffers=0 \
                       buffer-list=true";

fn appsink(bin: &gst::Bin, name: &'static str) -> Result<gst_app::AppSink, MediaError> {
    bin.by_name(name)
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
