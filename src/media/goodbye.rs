//! A peer's RTCP BYE when it ends (WHEP's DELETE, a hang-up), so the browser or player knows at
//! once that the device stopped sending instead of waiting for a timeout.
//!
//! An end of stream on a peer's inlets makes its RTP session mark every SSRC as leaving and
//! build one BYE packet per SSRC; GStreamer 1.22's session then ends its RTCP stream after the
//! first of them, so only one SSRC (video, audio or retransmission, whichever comes first) is
//! ever said goodbye to. The first packet is therefore given a BYE naming every SSRC the peer
//! sends (RFC 3550, section 6.6: one BYE may carry up to 31) on its way out of `rtpbin`, before
//! it is encrypted.

use gstreamer as gst;
use gstreamer::prelude::*;

/// RTCP packet type of a BYE (RFC 3550, section 6.6).
const BYE: u8 = 203;

/// An RTCP BYE packet naming `ssrcs` (at most 31 are taken).
pub fn bye_packet(ssrcs: &[u32]) -> Vec<u8> {
    let ssrcs = &ssrcs[..ssrcs.len().min(31)];
    let count = ssrcs.len() as u8;
    let mut packet = vec![0x80 | count, BYE];
    packet.extend_from_slice(&(ssrcs.len() as u16).to_be_bytes());
    for ssrc in ssrcs {
        packet.extend_from_slice(&ssrc.to_be_bytes());
    }
    packet
}

/// The SSRCs a compound RTCP packet says goodbye for, or `None` when it has no BYE (or is not
/// RTCP).
pub fn bye_sources(compound: &[u8]) -> Option<Vec<u32>> {
    let mut at = 0;
    let mut sources: Option<Vec<u32>> = None;
    while at + 4 <= compound.len() {
        let header = &compound[at..at + 4];
        if header[0] >> 6 != 2 {
            return None;
        }
        let words = usize::from(u16::from_be_bytes([header[2], header[3]])) + 1;
        let end = at + words * 4;
        if end > compound.len() {
            return None;
        }
        if header[1] == BYE {
            let count = usize::from(header[0] & 0x1f);
            let listed = sources.get_or_insert_with(Vec::new);
            listed.extend(
                compound[at + 4..end]
                    .chunks_exact(4)
                    .take(count)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            );
        }
        at = end;
    }
    sources
}

/// Ends `inlets` (the pads the shared source pushed into) so that `webrtc`'s RTP session says
/// goodbye, with every SSRC in `ssrcs` named in its first BYE.
pub fn say_goodbye<'a>(
    webrtc: &gst::Element,
    ssrcs: Vec<u32>,
    inlets: impl Iterator<Item = &'a gst::Pad>,
) {
    let rtcp_out = webrtc
        .downcast_ref::<gst::Bin>()
        .and_then(|bin| bin.by_name("rtpbin"))
        .and_then(|rtpbin| rtpbin.static_pad("send_rtcp_src_0"));
    if let Some(pad) = rtcp_out {
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let Some(gst::PadProbeData::Buffer(buffer)) = &mut info.data else {
                return gst::PadProbeReturn::Ok;
            };
            let said = buffer
                .map_readable()
                .ok()
                .and_then(|map| bye_sources(map.as_slice()));
            let Some(said) = said else {
                return gst::PadProbeReturn::Ok;
            };
            let missing: Vec<u32> = ssrcs
                .iter()
                .copied()
                .filter(|s| !said.contains(s))
                .collect();
            if !missing.is_empty() {
                buffer
                    .make_mut()
                    .append_memory(gst::Memory::from_slice(bye_packet(&missing)));
            }
            gst::PadProbeReturn::Remove
        });
    }
    for pad in inlets {
        pad.push_event(gst::event::Eos::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bye_names_its_sources() {
        let packet = bye_packet(&[0x0102_0304, 7]);
        assert_eq!(
            packet,
            [0x82, 203, 0, 2, 1, 2, 3, 4, 0, 0, 0, 7],
            "two sources: count 2, length 2 words after the header"
        );
        assert_eq!(bye_sources(&packet), Some(vec![0x0102_0304, 7]));
    }

    #[test]
    fn a_bye_is_found_in_a_compound_packet() {
        // A receiver report with no blocks (2 words), then a BYE for one source.
        let mut compound = vec![0x80, 201, 0, 1, 0, 0, 0, 9];
        assert_eq!(bye_sources(&compound), None);
        compound.extend(bye_packet(&[5]));
        assert_eq!(bye_sources(&compound), Some(vec![5]));
        compound.extend(bye_packet(&[6, 8]));
        assert_eq!(bye_sources(&compound), Some(vec![5, 6, 8]));
    }

    #[test]
    fn what_is_not_rtcp_has_no_bye() {
        assert_eq!(bye_sources(&[]), None);
        assert_eq!(bye_sources(&[0x00, 203, 0, 0]), None);
        // A length running past the end.
        assert_eq!(bye_sources(&[0x81, 203, 0, 9, 0, 0, 0, 1]), None);
        assert_eq!(bye_packet(&[1; 40]).len(), 4 + 31 * 4);
    }
}
