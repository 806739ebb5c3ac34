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
//! The subscriber lists are read by GStreamer's streaming threads and replaced by the media
//! owner (`Swappable`: the lock is held only to clone or swap an `Arc`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use tokio::sync::mpsc::UnboundedSender;

use super::encoder_control::EncoderControl;
use super::error::MediaError;
use super::plan::{self, Encoder, VideoCodec, VideoPlan};
use super::send_latency::{FrameStamps, read_header};
use super::settings::MediaSettings;
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

/// Where a subscriber's video may start: the first packets of a keyframe (a frame's packets
/// come in one sample, or in two when the payloader set no marker bit; only the first of a
/// keyframe's starts it).
type StartsKeyframe = bool;

/// Where one subscriber's video stands.
#[derive(Debug)]
enum Intake {
    /// Its peer is still connecting: the frames from the latest keyframe on are kept (within
    /// `HOLD_SPAN`) and sent the moment it can, so the first frame does not wait for another
    /// keyframe after the connection is up.
    Holding(Vec<gst::Sample>),
    /// Sending, from the next keyframe on.
    WaitingForKeyframe,
    /// Its peer is still connecting, and nothing is kept for it (audio).
    Paused,
    Live,
}

/// One peer's inlet for one medium: the pad that feeds its webrtcbin, and where it stands.
#[derive(Debug)]
struct Outlet {
    pad: gst::Pad,
    /// The payload type the peer negotiated, when it is not the source's.
    payload_type: Option<u8>,
    state: Mutex<OutletState>,
}

#[derive(Debug)]
struct OutletState {
    intake: Intake,
    /// The stream start, caps and segment last pushed, so each goes out once and again only
    /// when it changes.
    started: bool,
    caps: Option<gst::Caps>,
    segment: Option<gst::Segment>,
}

impl Outlet {
    fn new(pad: &gst::Pad, intake: Intake, payload_type: Option<u8>) -> Self {
        Self {
            pad: pad.clone(),
            payload_type,
            state: Mutex::new(OutletState {
                intake,
                started: false,
                caps: None,
                segment: None,
            }),
        }
    }

    /// The state, locked: pushes happen under it, so that what was held and what is live go
    /// out in order whichever thread sends them.
    fn state(&self) -> MutexGuard<'_, OutletState> {
        // Each field is replaced whole, so a panic elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes one sample (a frame's packets, or some of them, already with this peer's payload
    /// type): sends it, keeps it, or passes it by, as the intake says.
    fn take(&self, sample: &gst::Sample, starts_keyframe: StartsKeyframe) {
        let mut state = self.state();
        let intake = &mut state.intake;
        match intake {
            Intake::Live => {}
            Intake::WaitingForKeyframe if starts_keyframe => *intake = Intake::Live,
            Intake::WaitingForKeyframe | Intake::Paused => return,
            Intake::Holding(held) => {
                let span = |first: &gst::Sample| {
                    sample_pts(sample)
                        .zip(sample_pts(first))
                        .map(|(now, then)| now.saturating_sub(then))
                };
                if starts_keyframe {
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
        self.send(&mut state, sample);
    }

    /// Pushes a sample into the peer's webrtcbin, in the calling thread: the stream start
    /// first, then the caps and the segment (which places the source's timestamps) whenever
    /// they change, then the packets. A peer that is stopping refuses (flushing); that is its
    /// own business.
    fn send(&self, state: &mut OutletState, sample: &gst::Sample) {
        if !state.started {
            let stream = format!("peercam/{}", self.pad.name());
            self.pad.push_event(gst::event::StreamStart::new(&stream));
            state.started = true;
        }
        // Compared by reference; owned copies are taken only when they change.
        if sample.caps() != state.caps.as_deref()
            && let Some(caps) = sample.caps_owned()
        {
            self.pad.push_event(gst::event::Caps::new(&caps));
            state.caps = Some(caps);
        }
        // A sample without one (none of the source's lack it) is placed as from the start.
        let from_the_start;
        let segment = match sample.segment() {
            Some(segment) => segment,
            None => {
                from_the_start = gst::FormattedSegment::<gst::ClockTime>::new().upcast();
                &from_the_start
            }
        };
        if state.segment.as_ref() != Some(segment) {
            self.pad.push_event(gst::event::Segment::new(segment));
            state.segment = Some(segment.clone());
        }
        let _ = match (sample.buffer_list_owned(), sample.buffer_owned()) {
            (Some(list), _) => self.pad.push_list(list),
            (None, Some(buffer)) => self.pad.push(buffer),
            (None, None) => Ok(gst::FlowSuccess::Ok),
        };
    }

    /// The peer can send: what was held goes out now (under the lock, so the next frame
    /// follows it), or, with nothing fresh held, it starts at the next keyframe. `false` when
    /// a keyframe must be asked for.
    fn start(&self) -> bool {
        let mut state = self.state();
        let held = match &mut state.intake {
            Intake::Holding(held) => std::mem::take(held),
            Intake::Paused => {
                state.intake = Intake::Live;
                return true;
            }
            _ => return true,
        };
        if held.is_empty() {
            state.intake = Intake::WaitingForKeyframe;
            return false;
        }
        for sample in &held {
            self.send(&mut state, sample);
        }
        state.intake = Intake::Live;
        true
    }
}

/// One sample as each subscriber's payload type wants it: the source's own, and for each other
/// payload type one copy (its packets' headers and its caps rewritten), made once however many
/// peers negotiated that type.
struct SampleVersions<'a> {
    source: &'a gst::Sample,
    rewritten: Vec<(u8, gst::Sample)>,
}

impl<'a> SampleVersions<'a> {
    fn new(source: &'a gst::Sample) -> Self {
        Self {
            source,
            rewritten: Vec::new(),
        }
    }

    /// The sample with `payload_type` (`None`: the source's).
    fn with(&mut self, payload_type: Option<u8>, caps: &CapsVersions) -> &gst::Sample {
        let Some(payload_type) = payload_type else {
            return self.source;
        };
        let index = match self
            .rewritten
            .iter()
            .position(|(pt, _)| *pt == payload_type)
        {
            Some(index) => index,
            None => {
                let sample = rewrite_sample(self.source, payload_type, caps);
                self.rewritten.push((payload_type, sample));
                self.rewritten.len() - 1
            }
        };
        &self.rewritten[index].1
    }
}

/// The source's caps with each other payload type, made once per caps (the caps of an
/// encoded stream rarely change; an outlet compares each sample's caps with the last it
/// pushed, which is quickest when they are the same object).
#[derive(Debug, Default)]
struct CapsVersions {
    made: Mutex<Vec<(u8, gst::Caps, gst::Caps)>>,
}

impl CapsVersions {
    fn with(&self, caps: &gst::CapsRef, payload_type: u8) -> gst::Caps {
        let mut made = self.made.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, _, ours)) = made
            .iter()
            .find(|(pt, theirs, _)| *pt == payload_type && theirs.as_ref() == caps)
        {
            return ours.clone();
        }
        let mut ours = caps.to_owned();
        if let Some(s) = ours.make_mut().structure_mut(0) {
            s.set("payload", i32::from(payload_type));
        }
        made.retain(|(pt, _, _)| *pt != payload_type);
        made.push((payload_type, caps.to_owned(), ours.clone()));
        ours
    }
}

/// `sample` with its packets' payload type and its caps' set to `payload_type`.
fn rewrite_sample(sample: &gst::Sample, payload_type: u8, caps: &CapsVersions) -> gst::Sample {
    let mut ours = gst::Sample::builder();
    let list;
    let single;
    if let Some(packets) = sample.buffer_list() {
        let mut rewritten = gst::BufferList::new_sized(packets.len());
        for packet in packets.iter_owned() {
            rewritten
                .make_mut()
                .add(with_payload_type(packet, payload_type));
        }
        list = rewritten;
        ours = ours.buffer_list(&list);
    } else if let Some(packet) = sample.buffer_owned() {
        single = with_payload_type(packet, payload_type);
        ours = ours.buffer(&single);
    }
    let rewritten_caps = sample.caps().map(|c| caps.with(c, payload_type));
    if let Some(c) = &rewritten_caps {
        ours = ours.caps(c);
    }
    if let Some(segment) = sample.segment() {
        ours = ours.segment(segment);
    }
    ours.build()
}

/// The presentation time of a sample's (first) buffer.
fn sample_pts(sample: &gst::Sample) -> Option<gst::ClockTime> {
    match sample.buffer_list() {
        Some(list) => list.get(0).and_then(gst::BufferRef::pts),
        None => sample.buffer().and_then(gst::BufferRef::pts),
    }
}

/// `packet` with its RTP payload type set to `payload_type`: the header (the buffer's first
/// memory, which a payloader allocates on its own) is copied and changed; the payload is
/// shared.
fn with_payload_type(mut packet: gst::Buffer, payload_type: u8) -> gst::Buffer {
    let header = (packet.n_memory() > 0)
        .then(|| packet.peek_memory(0).map_readable())
        .and_then(Result::ok)
        .filter(|header| header.len() >= 2)
        .map(|header| {
            let mut header = header.as_slice().to_vec();
            header[1] = (header[1] & 0x80) | (payload_type & 0x7f);
            header
        });
    if let Some(header) = header {
        packet
            .make_mut()
            .replace_memory(0, gst::Memory::from_mut_slice(header));
    }
    packet
}

/// The subscribers of one encoded stream.
#[derive(Debug, Default)]
struct Fanout {
    outlets: Swappable<Vec<Arc<Outlet>>>,
    caps: CapsVersions,
}

impl Fanout {
    fn push(&self, sample: &gst::Sample, starts_keyframe: StartsKeyframe) {
        let mut versions = SampleVersions::new(sample);
        for outlet in self.outlets.current().iter() {
            outlet.take(
                versions.with(outlet.payload_type, &self.caps),
                starts_keyframe,
            );
        }
    }

    fn add(&self, inlet: &Inlet<'_>, intake: Intake, source_payload_type: u32) -> Arc<Outlet> {
        let payload_type = (inlet.payload_type != source_payload_type)
            .then(|| u8::try_from(inlet.payload_type).ok())
            .flatten();
        let outlet = Arc::new(Outlet::new(inlet.pad, intake, payload_type));
        let mut outlets = (*self.outlets.current()).clone();
        outlets.push(Arc::clone(&outlet));
        self.outlets.replace(Arc::new(outlets));
        outlet
    }

    fn remove(&self, pad: &gst::Pad) {
        let mut outlets = (*self.outlets.current()).clone();
        outlets.retain(|o| &o.pad != pad);
        self.outlets.replace(Arc::new(outlets));
    }

    fn len(&self) -> usize {
        self.outlets.current().len()
    }
}

/// The pad feeding one medium into a peer's webrtcbin, and the RTP payload type the peer
/// negotiated for it.
#[derive(Debug, Clone, Copy)]
pub struct Inlet<'a> {
    pub pad: &'a gst::Pad,
    pub payload_type: u32,
}

/// Starts sending to one subscriber once its peer is connected; cheap to clone into a
/// callback.
#[derive(Debug, Clone)]
pub struct SendStart {
    video: Arc<Outlet>,
    audio: Option<Arc<Outlet>>,
    keyframes: KeyframeRequester,
}

impl SendStart {
    /// Sends the video held for the subscriber, or asks for a keyframe when nothing fresh is.
    pub fn video(&self) {
        if !self.video.start() {
            self.keyframes.request();
        }
    }

    /// Sends the subscriber's audio from now on.
    pub fn audio(&self) {
        if let Some(audio) = &self.audio {
            audio.start();
        }
    }
}

/// Asks the shared encoder for a keyframe; cheap to clone into a peer's pad probe.
#[derive(Debug, Clone)]
pub struct KeyframeRequester {
    /// The video payloader's sink pad: an upstream force-key-unit event sent from it reaches
    /// the encoder.
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
            .map_err(|e| build_error("the camera and encoder", e))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| build_error("the camera and encoder", "not a pipeline"))?;
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
            .ok_or_else(|| build_error("the video payloader", "not found"))?;
        video_pay.set_property("ssrc", ssrcs.video);
        if let Some(audio_pay) = pipeline.by_name(plan::AUDIO_PAYLOADER) {
            audio_pay.set_property("ssrc", ssrcs.audio);
        }

        let video_sink = appsink(&pipeline, "video")?;
        // Keyframe requests go upstream from the payloader's sink pad, past the payloader (see
        // `KeyframeMark::watch`).
        let pad = video_pay
            .static_pad("sink")
            .ok_or_else(|| build_error("the video payloader", "no sink pad"))?;
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
        .ok_or_else(|| build_error("an appsink", name))
}

/// What the video appsink's feed needs besides the fanout.
struct Video {
    keyframes: KeyframeMark,
    metrics: Arc<Metrics>,
}

/// The presentation time of the latest keyframe to enter the video payloader, marked by a
/// probe on its sink pad; the appsink after it, on the same streaming thread, tells a
/// keyframe's packets by it whatever the codec's payloader flags.
#[derive(Debug)]
struct KeyframeMark(Arc<AtomicU64>);

impl KeyframeMark {
    const NONE: u64 = u64::MAX;

    fn watch(pay: &gst::Element) -> Result<Self, MediaError> {
        let mark = Self(Arc::new(AtomicU64::new(Self::NONE)));
        let sink = pay
            .static_pad("sink")
            .ok_or_else(|| build_error("the video payloader", "no sink pad"))?;
        // The encoder announces a forced keyframe downstream, asking for its headers to be
        // repeated; rtph264pay would answer by sending SPS and PPS itself, in a packet of its
        // own that carries the marker bit in the middle of the frame. The encoder already puts
        // them in the keyframe, so the payloader is told they are there.
        sink.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, info| {
            let announced = match &info.data {
                Some(gst::PadProbeData::Event(event)) => {
                    gst_video::DownstreamForceKeyUnitEvent::parse(event).ok()
                }
                _ => None,
            };
            if let Some(announced) = announced.filter(|a| a.all_headers) {
                let event = gst_video::DownstreamForceKeyUnitEvent::builder()
                    .timestamp(announced.timestamp)
                    .stream_time(announced.stream_time)
                    .running_time(announced.running_time)
                    .all_headers(false)
                    .count(announced.count)
                    .build();
                info.data = Some(gst::PadProbeData::Event(event));
            }
            gst::PadProbeReturn::Ok
        });
        let latest = Arc::clone(&mark.0);
        sink.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data
                && !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT)
                && let Some(pts) = buffer.pts()
            {
                latest.store(pts.nseconds(), Ordering::Relaxed);
            }
            gst::PadProbeReturn::Ok
        });
        Ok(mark)
    }

    fn is_keyframe(&self, pts: Option<gst::ClockTime>) -> bool {
        pts.is_some_and(|pts| pts.nseconds() == self.0.load(Ordering::Relaxed))
    }
}

/// Gathers one video frame's RTP packets (those of one presentation time, up to the one with
/// the marker bit) into one sample, so that each peer's webrtcbin takes a frame in one push,
/// not one per packet: payloaders push most packets one by one.
#[derive(Debug, Default)]
struct FrameGather {
    packets: Option<gst::BufferList>,
    pts: Option<gst::ClockTime>,
    caps: Option<gst::Caps>,
    segment: Option<gst::Segment>,
}

impl FrameGather {
    /// Takes one appsink sample and hands `done` each frame it completes: its own, at its
    /// marker, and one that a new presentation time ended without a marker.
    fn take(&mut self, sample: &gst::Sample, mut done: impl FnMut(gst::Sample)) {
        if let Some(caps) = sample.caps() {
            self.caps = Some(caps.to_owned());
        }
        if let Some(segment) = sample.segment() {
            self.segment = Some(segment.clone());
        }
        let single = sample.buffer_owned();
        let packets = sample
            .buffer_list()
            .into_iter()
            .flat_map(|l| l.iter_owned());
        for packet in single.into_iter().chain(packets) {
            if self.packets.is_some() && packet.pts() != self.pts {
                self.flush(&mut done);
            }
            self.pts = packet.pts();
            // For video the marker bit closes a frame.
            let marker = read_header(&packet).is_some_and(|h| h.marker);
            self.packets
                .get_or_insert_with(gst::BufferList::new)
                .make_mut()
                .add(packet);
            if marker {
                self.flush(&mut done);
            }
        }
    }

    fn flush(&mut self, done: &mut impl FnMut(gst::Sample)) {
        let Some(packets) = self.packets.take() else {
            return;
        };
        let mut frame = gst::Sample::builder().buffer_list(&packets);
        if let Some(caps) = &self.caps {
            frame = frame.caps(caps);
        }
        if let Some(segment) = &self.segment {
            frame = frame.segment(segment);
        }
        done(frame.build());
    }
}

/// Hands each frame's packets from `sink` to the fanout's subscribers (video gathered a frame
/// at a time); counts video keyframes. A source that ends (a camera unplugged, a file at its
/// end) ends only its branch: the pipeline as a whole never reaches EOS while the other branch
/// runs, so each branch's end is reported.
fn feed(
    sink: &gst_app::AppSink,
    fanout: &Arc<Fanout>,
    video: Option<Video>,
    notices: UnboundedSender<SourceNotice>,
) {
    let fanout = Arc::clone(fanout);
    let mut gather = FrameGather::default();
    let mut last_pts = None;
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .eos(move |_| {
                let _ = notices.send(SourceNotice::Stopped(
                    "the camera or microphone stopped sending (end of stream)".to_owned(),
                ));
            })
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(video) = &video else {
                    fanout.push(&sample, true);
                    return Ok(gst::FlowSuccess::Ok);
                };
                gather.take(&sample, |frame| {
                    let pts = sample_pts(&frame);
                    // A frame without a marker may have come in two parts; its first starts it.
                    let starts_keyframe = pts != last_pts && video.keyframes.is_keyframe(pts);
                    last_pts = pts;
                    if starts_keyframe {
                        Metrics::add(&video.metrics.keyframes_sent, 1);
                    }
                    fanout.push(&frame, starts_keyframe);
                });
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
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

fn build_error(what: &'static str, reason: impl std::fmt::Display) -> MediaError {
    MediaError::Build {
        what,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pad as a peer's inlet is, feeding an appsink in a playing pipeline.
    fn inlet_into_sink() -> (gst::Pipeline, gst::Pad, gst_app::AppSink) {
        gst::init().expect("GStreamer");
        let pipeline = gst::Pipeline::new();
        let sink = gst_app::AppSink::builder().sync(false).build();
        pipeline.add(&sink).expect("added");
        let pad = gst::Pad::builder(gst::PadDirection::Src).build();
        pad.set_active(true).expect("active");
        pad.link(&sink.static_pad("sink").expect("a sink pad"))
            .expect("linked");
        pipeline.set_state(gst::State::Playing).expect("playing");
        (pipeline, pad, sink)
    }

    /// An outlet feeding an appsink in a playing pipeline, with the intake given.
    fn outlet(intake: Intake) -> (gst::Pipeline, Outlet, gst_app::AppSink) {
        let (pipeline, pad, sink) = inlet_into_sink();
        (pipeline, Outlet::new(&pad, intake, None), sink)
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

    /// An RTP packet as a payloader makes it: the header in a memory of its own, the payload
    /// in another.
    fn rtp_packet(payload_type: u8, marker: bool) -> gst::Buffer {
        let mut header = [0u8; 12];
        header[0] = 0x80;
        header[1] = payload_type | if marker { 0x80 } else { 0 };
        header[4..8].copy_from_slice(&90_000u32.to_be_bytes());
        let mut packet = gst::Buffer::from_mut_slice(header.to_vec());
        let payload = gst::Memory::from_mut_slice(vec![0x7cu8, 0x85, 1, 2, 3]);
        packet.make_mut().append_memory(payload);
        packet
    }

    #[test]
    fn a_peers_own_payload_type_is_written_into_a_copy_of_the_header_only() {
        gst::init().expect("GStreamer");
        let packet = rtp_packet(96, true);
        let rewritten = with_payload_type(packet.clone(), 106);
        assert_eq!(
            rewritten.peek_memory(1).as_ptr(),
            packet.peek_memory(1).as_ptr(),
            "the payload is shared, not copied"
        );
        // Read without mapping the whole buffer (which would merge its memories).
        let bytes = |b: &gst::Buffer| {
            let mut bytes = vec![0u8; b.size()];
            b.copy_to_slice(0, &mut bytes).expect("the whole packet");
            bytes
        };
        assert_eq!(bytes(&rewritten)[1], 0x80 | 106, "the marker bit is kept");
        assert_eq!(
            bytes(&packet)[1],
            0x80 | 96,
            "the source's packet is untouched"
        );
        assert_eq!(bytes(&rewritten)[2..], bytes(&packet)[2..]);
    }

    /// One frame of two packets (the second with the marker bit) with payload type 96.
    fn two_packet_frame() -> gst::Sample {
        let caps = gst::Caps::builder("application/x-rtp")
            .field("media", "video")
            .field("payload", 96i32)
            .build();
        let mut list = gst::BufferList::new();
        for marker in [false, true] {
            let mut packet = rtp_packet(96, marker);
            packet.make_mut().set_pts(gst::ClockTime::ZERO);
            list.make_mut().add(packet);
        }
        gst::Sample::builder()
            .buffer_list(&list)
            .caps(&caps)
            .build()
    }

    /// What `sink` received: each packet's second byte, the address of its header memory, and
    /// the payload type in the caps last seen.
    fn packets_out(
        pipeline: gst::Pipeline,
        sink: &gst_app::AppSink,
    ) -> (Vec<(u8, usize)>, Option<i32>) {
        let mut packets = Vec::new();
        let mut payload_in_caps = None;
        while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(200)) {
            payload_in_caps = sample
                .caps()
                .and_then(|c| c.structure(0))
                .and_then(|s| s.get::<i32>("payload").ok());
            let buffer = sample.buffer().expect("a packet");
            let header = buffer.peek_memory(0).as_ptr() as usize;
            packets.push((buffer.map_readable().expect("readable")[1], header));
        }
        pipeline.set_state(gst::State::Null).expect("stopped");
        (packets, payload_in_caps)
    }

    #[test]
    fn peers_with_their_own_payload_type_get_it_in_packets_and_caps_rewritten_once() {
        let fanout = Fanout::default();
        let peers: Vec<_> = [106u32, 106, 96]
            .into_iter()
            .map(|payload_type| {
                let (pipeline, pad, sink) = inlet_into_sink();
                let inlet = Inlet {
                    pad: &pad,
                    payload_type,
                };
                fanout.add(&inlet, Intake::Live, 96);
                (pipeline, sink)
            })
            .collect();
        fanout.push(&two_packet_frame(), true);
        let got: Vec<_> = peers
            .into_iter()
            .map(|(pipeline, sink)| packets_out(pipeline, &sink))
            .collect();
        let types = |i: usize| got[i].0.iter().map(|(t, _)| *t).collect::<Vec<_>>();
        assert_eq!(types(0), [106, 0x80 | 106]);
        assert_eq!(got[0].1, Some(106));
        assert_eq!(types(1), types(0));
        assert_eq!(
            got[1].0, got[0].0,
            "two peers with the same payload type share one rewritten header"
        );
        assert_eq!(
            types(2),
            [96, 0x80 | 96],
            "the source's own go out as they are"
        );
        assert_eq!(got[2].1, Some(96));
    }

    /// The presentation times (ms) and packet counts of the frames gathered from `samples`.
    fn gathered(samples: &[(u64, &[bool])]) -> Vec<(u64, usize)> {
        gst::init().expect("GStreamer");
        let mut gather = FrameGather::default();
        let mut frames = Vec::new();
        for (pts_ms, markers) in samples {
            let mut list = gst::BufferList::new();
            for &marker in *markers {
                let mut packet = rtp_packet(96, marker);
                packet
                    .make_mut()
                    .set_pts(gst::ClockTime::from_mseconds(*pts_ms));
                list.make_mut().add(packet);
            }
            let sample = if list.len() == 1 {
                gst::Sample::builder()
                    .buffer(&list.get_owned(0).expect("one"))
                    .build()
            } else {
                gst::Sample::builder().buffer_list(&list).build()
            };
            gather.take(&sample, |frame| {
                let list = frame.buffer_list().expect("a frame is a list");
                let pts = sample_pts(&frame).map(|t| t.mseconds());
                frames.push((pts.expect("a time"), list.len()));
            });
        }
        frames
    }

    #[test]
    fn a_frames_packets_go_out_together_at_its_marker() {
        let frames = gathered(&[
            (0, &[false]),
            (0, &[false, false]),
            (0, &[true]),
            (33, &[false, true]),
            (66, &[true]),
        ]);
        assert_eq!(frames, [(0, 4), (33, 2), (66, 1)]);
    }

    #[test]
    fn a_frame_without_a_marker_goes_out_when_the_next_begins() {
        let frames = gathered(&[(0, &[false, false]), (33, &[false]), (33, &[true])]);
        assert_eq!(frames, [(0, 2), (33, 2)]);
    }

    #[test]
    fn a_paused_outlet_keeps_nothing_and_sends_from_its_start_on() {
        let (pipeline, outlet, sink) = outlet(Intake::Paused);
        frame(&outlet, 0, true);
        frame(&outlet, 20, true);
        assert!(outlet.start());
        frame(&outlet, 40, true);
        assert_eq!(received(pipeline, &sink), [40]);
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
