//! From the source's appsinks to the outlets: video packets gathered a frame at a time (one push
//! per frame into each peer, not one per packet), keyframes told by a probe on the payloader
//! (`KeyframeMark`), and a branch that ends (a camera unplugged) reported as a `SourceNotice`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use tokio::sync::mpsc::UnboundedSender;

use super::error::MediaError;
use super::outlets::{Fanout, sample_pts};
use super::send_latency::read_header;
use crate::metrics::Metrics;

/// What the source pipeline's callbacks saw; handled by the media owner.
#[derive(Debug)]
pub enum SourceNotice {
    /// The source failed or ended: every peer on it must end.
    Stopped(String),
}

/// What the video appsink's feed needs besides the fanout.
pub(super) struct Video {
    pub keyframes: KeyframeMark,
    pub metrics: Arc<Metrics>,
}

/// The presentation time of the latest keyframe to enter the video payloader, marked by a
/// probe on its sink pad; the appsink after it, on the same streaming thread, tells a
/// keyframe's packets by it whatever the codec's payloader flags.
#[derive(Debug)]
pub(super) struct KeyframeMark(Arc<AtomicU64>);

impl KeyframeMark {
    const NONE: u64 = u64::MAX;

    pub(super) fn watch(pay: &gst::Element) -> Result<Self, MediaError> {
        let mark = Self(Arc::new(AtomicU64::new(Self::NONE)));
        let sink = pay
            .static_pad("sink")
            .ok_or_else(|| MediaError::build("the video payloader", "no sink pad"))?;
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
pub(super) fn feed(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::test_pads::rtp_packet;

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
}
