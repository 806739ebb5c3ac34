//! A peer that negotiated another RTP payload type than the source's gets the same packets with
//! its own: one copy of each packet's header (the payload shared) and of the caps, made once per
//! frame and payload type however many peers share that type.

use std::sync::{Mutex, PoisonError};

use gstreamer as gst;

/// One sample as each subscriber's payload type wants it: the source's own, and for each other
/// payload type one copy (its packets' headers and its caps rewritten), made once however many
/// peers negotiated that type.
pub(super) struct SampleVersions<'a> {
    source: &'a gst::Sample,
    rewritten: Vec<(u8, gst::Sample)>,
}

impl<'a> SampleVersions<'a> {
    pub(super) fn new(source: &'a gst::Sample) -> Self {
        Self {
            source,
            rewritten: Vec::new(),
        }
    }

    /// The sample with `payload_type` (`None`: the source's).
    pub(super) fn with(&mut self, payload_type: Option<u8>, caps: &CapsVersions) -> &gst::Sample {
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
pub(super) struct CapsVersions {
    made: Mutex<Vec<(u8, gst::Caps, gst::Caps)>>,
}

impl CapsVersions {
    pub(super) fn with(&self, caps: &gst::CapsRef, payload_type: u8) -> gst::Caps {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::test_pads::rtp_packet;

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
}
