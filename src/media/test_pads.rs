//! Pads and packets for the media tests: a pad feeding an appsink as a peer's inlet does, and
//! an RTP packet as a payloader makes it.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

/// A pad as a peer's inlet is, feeding an appsink in a playing pipeline.
pub fn inlet_into_sink() -> (gst::Pipeline, gst::Pad, gst_app::AppSink) {
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

/// An RTP packet as a payloader makes it: the header in a memory of its own, the payload
/// in another.
pub fn rtp_packet(payload_type: u8, marker: bool) -> gst::Buffer {
    let mut header = [0u8; 12];
    header[0] = 0x80;
    header[1] = payload_type | if marker { 0x80 } else { 0 };
    header[4..8].copy_from_slice(&90_000u32.to_be_bytes());
    let mut packet = gst::Buffer::from_mut_slice(header.to_vec());
    let payload = gst::Memory::from_mut_slice(vec![0x7cu8, 0x85, 1, 2, 3]);
    packet.make_mut().append_memory(payload);
    packet
}
