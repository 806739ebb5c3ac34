//! The per-peer outlets of the shared source: each subscribing peer's webrtcbin takes each
//! medium from a source pad with no element (and so no thread) behind it, and the source's
//! streaming thread pushes every frame into every subscribed pad (`Fanout`). A new video
//! subscriber keeps the frames from the latest keyframe on for itself while its peer connects,
//! and they go out the moment it is connected (`Outlet`, `SendStart`); its keyframe requests
//! reach the shared encoder (`KeyframeRequester`).
//!
//! The subscriber lists are read by GStreamer's streaming threads and replaced by the media
//! owner (`Swappable`: the lock is held only to clone or swap an `Arc`).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;

use super::encoder_control::EncoderControl;
use super::payload_types::{CapsVersions, SampleVersions};
use crate::swappable::Swappable;

/// How long a video subscriber that cannot send yet keeps frames for itself: from a keyframe
/// on, at most this much video, so the picture it starts with is fresh.
const HOLD_SPAN: gst::ClockTime = gst::ClockTime::from_mseconds(100);

/// Where a subscriber's video may start: the first packets of a keyframe (a frame's packets
/// come in one sample, or in two when the payloader set no marker bit; only the first of a
/// keyframe's starts it).
pub(super) type StartsKeyframe = bool;

/// Where one subscriber's video stands.
#[derive(Debug)]
pub(super) enum Intake {
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
pub(super) struct Outlet {
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
    pub(super) fn new(pad: &gst::Pad, intake: Intake, payload_type: Option<u8>) -> Self {
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
    pub(super) fn take(&self, sample: &gst::Sample, starts_keyframe: StartsKeyframe) {
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
    pub(super) fn start(&self) -> bool {
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

/// The presentation time of a sample's (first) buffer.
pub(super) fn sample_pts(sample: &gst::Sample) -> Option<gst::ClockTime> {
    match sample.buffer_list() {
        Some(list) => list.get(0).and_then(gst::BufferRef::pts),
        None => sample.buffer().and_then(gst::BufferRef::pts),
    }
}

/// The subscribers of one encoded stream.
#[derive(Debug, Default)]
pub(super) struct Fanout {
    outlets: Swappable<Vec<Arc<Outlet>>>,
    caps: CapsVersions,
}

impl Fanout {
    pub(super) fn push(&self, sample: &gst::Sample, starts_keyframe: StartsKeyframe) {
        let mut versions = SampleVersions::new(sample);
        for outlet in self.outlets.current().iter() {
            outlet.take(
                versions.with(outlet.payload_type, &self.caps),
                starts_keyframe,
            );
        }
    }

    pub(super) fn add(
        &self,
        inlet: &Inlet<'_>,
        intake: Intake,
        source_payload_type: u32,
    ) -> Arc<Outlet> {
        let payload_type = (inlet.payload_type != source_payload_type)
            .then(|| u8::try_from(inlet.payload_type).ok())
            .flatten();
        let outlet = Arc::new(Outlet::new(inlet.pad, intake, payload_type));
        let mut outlets = (*self.outlets.current()).clone();
        outlets.push(Arc::clone(&outlet));
        self.outlets.replace(Arc::new(outlets));
        outlet
    }

    pub(super) fn remove(&self, pad: &gst::Pad) {
        let mut outlets = (*self.outlets.current()).clone();
        outlets.retain(|o| &o.pad != pad);
        self.outlets.replace(Arc::new(outlets));
    }

    pub(super) fn len(&self) -> usize {
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
    pub(super) video: Arc<Outlet>,
    pub(super) audio: Option<Arc<Outlet>>,
    pub(super) keyframes: KeyframeRequester,
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
    pub(super) pad: gst::Pad,
    pub(super) encoder: Option<EncoderControl>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::test_pads::{inlet_into_sink, rtp_packet};
    use gstreamer_app as gst_app;

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
