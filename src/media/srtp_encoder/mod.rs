//! The SRTP encoder every peer's `webrtcbin` uses on x86: a GStreamer element registered under
//! `srtpenc`'s name, so that the DTLS-SRTP bins webrtcbin builds take it instead of the one in
//! gst-plugins-bad.
//!
//! Why: gst-plugins-bad's `srtpenc` protects each packet through libsrtp2, which Debian builds on
//! NSS; AES-CM and HMAC-SHA1 there set up NSS contexts for every packet, a third of what an
//! extra viewer cost (docs/benchmarks.md). This element protects packets with `rtc-srtp` (the
//! SRTP of webrtc-rs, on `ring` and the RustCrypto AES), keyed once per key. It takes over only
//! where that AES is in hardware (`hardware_aes`); the boards keep gst-plugins-bad's.
//!
//! It keeps the interface `dtlssrtpenc` relies on: request pads `rtp_sink_%u` and
//! `rtcp_sink_%u`, each with its `rtp_src_%u`/`rtcp_src_%u`; the properties `key`,
//! `rtp-cipher`, `rtp-auth`, `rtcp-cipher`, `rtcp-auth` (same values and nicks as
//! gst-plugins-bad's enums) and `random-key`. It protects RTP and RTCP with one suite:
//! AES-CM (128 or 256) with HMAC-SHA1-80, or AES-GCM; with every cipher and auth null it passes
//! packets through. Anything else (HMAC-SHA1-32, mixed suites, MKI) is refused with an element
//! error naming the settings. Decryption (`srtpdec`) stays gst-plugins-bad's.

//! - `suite`: the settings and the protection profile they come to.
//! - `element`: the GStreamer element.

mod element;
mod suite;

use std::sync::OnceLock;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;

pub use element::SrtpEncoder;
pub use suite::{Auth, Cipher, SrtpEncoderError, Suite, context_for, profile_for};

/// The factory name this element takes over.
pub const FACTORY_NAME: &str = "srtpenc";

/// Whether the AES that `rtc-srtp` uses (RustCrypto's `aes`) runs in hardware here: x86 with
/// AES-NI, detected at run time. Elsewhere it is a constant-time software AES: on the emulated
/// Cortex-A53 a packet sent cost 101 k instructions with it against 54 k through libsrtp2, which
/// uses the core's AES instructions (docs/benchmarks.md); the boards keep gst-plugins-bad's.
pub fn hardware_aes() -> bool {
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    {
        std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("sse2")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
    {
        false
    }
}

/// Makes `srtpenc` this element from now on, in this process, where its AES is in hardware
/// (`hardware_aes`); says whether it did. Idempotent.
///
/// gst-plugins-bad's `srtpenc` must exist (its `srtpdec` decrypts, and `dtlssrtpenc` looks up
/// its enum types by name); one is made first so that its plugin and enum classes are loaded.
pub fn register() -> Result<bool, glib::BoolError> {
    static REGISTERED: OnceLock<Result<bool, glib::BoolError>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            gst::ElementFactory::make(FACTORY_NAME).build()?;
            if !hardware_aes() {
                log::info!(
                    "SRTP: packets are protected by gst-plugins-bad's srtpenc (libsrtp2): no \
                     hardware AES here for peercam's encoder"
                );
                return Ok(false);
            }
            gst::Element::register(
                None,
                FACTORY_NAME,
                gst::Rank::NONE,
                SrtpEncoder::static_type(),
            )?;
            log::info!("SRTP: peers' packets are protected by peercam's encoder (rtc-srtp)");
            Ok(true)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gstreamer_app::AppSink;
    use rtc_srtp::protection_profile::ProtectionProfile;
    use std::time::Duration;

    const SSRC: u32 = 0x1234_5678;

    fn master_key() -> Vec<u8> {
        (0u8..30)
            .map(|i| i.wrapping_mul(37).wrapping_add(11))
            .collect()
    }

    /// An RTP packet as webrtcbin sends it: a one-byte header extension, then the payload.
    fn rtp_packet(sequence: u16, payload: &[u8]) -> Vec<u8> {
        let mut packet = vec![0x90, 96];
        packet.extend_from_slice(&sequence.to_be_bytes());
        packet.extend_from_slice(&(u32::from(sequence) * 3000).to_be_bytes());
        packet.extend_from_slice(&SSRC.to_be_bytes());
        packet.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01, 0x10, 0xAB, 0x00, 0x00]);
        packet.extend_from_slice(payload);
        packet
    }

    fn payload(index: usize) -> Vec<u8> {
        (0..200).map(|i| (i * 7 + index) as u8).collect()
    }

    /// Our encoder feeding gst-plugins-bad's `srtpdec` (libsrtp2) through `kind`'s pads.
    struct RoundTrip {
        pipeline: gst::Pipeline,
        feeder: gst::Pad,
        /// Kept: a link does not hold its peer pad.
        relay: gst::Pad,
        received: AppSink,
    }

    impl RoundTrip {
        fn new(kind: &str, encoder_key: &[u8], decoder_key: &[u8]) -> RoundTrip {
            gst::init().expect("GStreamer");
            let pipeline = gst::Pipeline::new();
            let encoder = glib::Object::builder::<SrtpEncoder>()
                .property("key", gst::Buffer::from_slice(encoder_key.to_vec()))
                .build()
                .upcast::<gst::Element>();
            let decoder = gst::ElementFactory::make("srtpdec")
                .build()
                .expect("srtpdec");
            let received = AppSink::builder().sync(false).build();
            pipeline
                .add_many([&encoder, &decoder, received.upcast_ref()])
                .expect("add");
            let key_caps = gst::Caps::builder("application/x-srtp")
                .field("srtp-key", gst::Buffer::from_slice(decoder_key.to_vec()))
                .field("srtp-cipher", "aes-128-icm")
                .field("srtp-auth", "hmac-sha1-80")
                .field("srtcp-cipher", "aes-128-icm")
                .field("srtcp-auth", "hmac-sha1-80")
                .build();
            decoder.connect("request-key", false, move |_| Some(key_caps.to_value()));
            let encoder_sink = encoder
                .request_pad_simple(&format!("{kind}_sink_0"))
                .expect("request pad");
            let relay = one_at_a_time(
                &decoder
                    .static_pad(&format!("{kind}_sink"))
                    .expect("dec sink"),
            );
            encoder
                .static_pad(&format!("{kind}_src_0"))
                .expect("src pad")
                .link(&relay)
                .expect("link");
            decoder
                .static_pad(&format!("{kind}_src"))
                .expect("dec src")
                .link(&received.static_pad("sink").expect("appsink pad"))
                .expect("link");
            pipeline.set_state(gst::State::Playing).expect("play");
            let feeder = gst::Pad::new(gst::PadDirection::Src);
            feeder.set_active(true).expect("active");
            feeder.link(&encoder_sink).expect("link feeder");
            let media = if kind == "rtp" {
                "application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96"
            } else {
                "application/x-rtcp"
            };
            feeder.push_event(gst::event::StreamStart::new("srtp-test"));
            feeder.push_event(gst::event::Caps::new(&media.parse().expect("caps")));
            feeder.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
                gst::ClockTime,
            >::new()));
            RoundTrip {
                pipeline,
                feeder,
                relay,
                received,
            }
        }

        fn next(&self) -> Option<Vec<u8>> {
            let sample = self
                .received
                .try_pull_sample(gst::ClockTime::from_seconds(2))?;
            let buffer = sample.buffer()?;
            Some(buffer.map_readable().ok()?.to_vec())
        }
    }

    /// A pad that hands on each buffer of a list singly: gst-plugins-bad 1.22's `srtpdec`
    /// mangles buffer lists (gst-plugins-bad's own `srtpenc` into it fails the same way), and
    /// webrtcbin feeds it single packets anyway.
    fn one_at_a_time(target: &gst::Pad) -> gst::Pad {
        let out = gst::Pad::new(gst::PadDirection::Src);
        out.set_active(true).expect("active");
        out.link(target).expect("link relay");
        let (chained, listed, evented) = (out.clone(), out.clone(), out);
        let relay = gst::Pad::builder(gst::PadDirection::Sink)
            .chain_function(move |_, _, buffer| chained.push(buffer))
            .chain_list_function(move |_, _, list| {
                for buffer in list.iter() {
                    listed.push(buffer.copy_deep().map_err(|_| gst::FlowError::Error)?)?;
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .event_function(move |_, _, event| evented.push_event(event))
            .build();
        relay.set_active(true).expect("active");
        relay
    }

    impl Drop for RoundTrip {
        fn drop(&mut self) {
            let _ = self.pipeline.set_state(gst::State::Null);
        }
    }

    #[test]
    fn libsrtp_decrypts_what_it_protects_across_a_sequence_number_wrap() {
        let key = master_key();
        let trip = RoundTrip::new("rtp", &key, &key);
        // Crossing 65535 moves the rollover counter; both ends must agree on it.
        let packets: Vec<Vec<u8>> = (0..3000usize)
            .map(|i| rtp_packet(64_000u16.wrapping_add(i as u16), &payload(i)))
            .collect();
        for (i, chunk) in packets.chunks(10).enumerate() {
            if i % 2 == 0 {
                for packet in chunk {
                    let pushed = trip.feeder.push(gst::Buffer::from_slice(packet.clone()));
                    assert_eq!(pushed, Ok(gst::FlowSuccess::Ok));
                }
            } else {
                let mut list = gst::BufferList::new();
                for packet in chunk {
                    list.make_mut().add(gst::Buffer::from_slice(packet.clone()));
                }
                assert_eq!(trip.feeder.push_list(list), Ok(gst::FlowSuccess::Ok));
            }
        }
        for (i, packet) in packets.iter().enumerate() {
            let decrypted = trip
                .next()
                .unwrap_or_else(|| panic!("packet {i} not decrypted"));
            assert_eq!(&decrypted, packet, "packet {i}");
        }
        let caps = trip
            .relay
            .current_caps()
            .expect("caps on the encoder's output");
        let caps = caps.structure(0).expect("a structure");
        assert_eq!(caps.name(), "application/x-srtp");
        assert_eq!(caps.get::<&str>("srtp-cipher"), Ok("aes-128-icm"));
        assert_eq!(caps.get::<&str>("srtp-auth"), Ok("hmac-sha1-80"));
        assert!(!caps.has_field("srtp-key"), "the key stays out of caps");
    }

    #[test]
    fn what_it_sends_is_encrypted_and_authenticated() {
        gst::init().expect("GStreamer");
        let profile = ProtectionProfile::Aes128CmHmacSha1_80;
        let mut context = context_for(profile, &master_key()).expect("context");
        let packet = rtp_packet(7, &payload(7));
        let protected = context.encrypt_rtp(&packet).expect("protect");
        assert_eq!(protected.len(), packet.len() + 10, "an 80-bit tag");
        assert_eq!(protected[..20], packet[..20], "the header stays readable");
        assert_ne!(
            protected[20..packet.len()],
            packet[20..],
            "the payload is encrypted"
        );

        // With another key libsrtp must refuse the packets: nothing comes out.
        let mut wrong = master_key();
        wrong[3] ^= 1;
        let trip = RoundTrip::new("rtp", &master_key(), &wrong);
        for i in 0..5u16 {
            let _ = trip
                .feeder
                .push(gst::Buffer::from_slice(rtp_packet(i, &payload(0))));
        }
        assert!(
            trip.next().is_none(),
            "a packet passed authentication with the wrong key"
        );
    }

    #[test]
    fn libsrtp_decrypts_its_rtcp() {
        let key = master_key();
        let trip = RoundTrip::new("rtcp", &key, &key);
        // Receiver reports with no report blocks, each with its own SSRC word after it.
        let reports: Vec<Vec<u8>> = (0..5u32)
            .map(|i| {
                let mut report = vec![0x80, 201, 0x00, 0x01];
                report.extend_from_slice(&(SSRC + i).to_be_bytes());
                report
            })
            .collect();
        for report in &reports {
            let pushed = trip.feeder.push(gst::Buffer::from_slice(report.clone()));
            assert_eq!(pushed, Ok(gst::FlowSuccess::Ok));
        }
        for (i, report) in reports.iter().enumerate() {
            assert_eq!(trip.next().as_ref(), Some(report), "report {i}");
        }
    }

    #[test]
    fn with_hardware_aes_srtpenc_is_this_element_and_dtlssrtpenc_takes_it() {
        gst::init().expect("GStreamer");
        let took_over = register().expect("register");
        assert_eq!(took_over, hardware_aes());
        assert_eq!(
            register().ok(),
            Some(took_over),
            "a second registration is a no-op"
        );
        let made = gst::ElementFactory::make(FACTORY_NAME)
            .build()
            .expect("srtpenc");
        assert_eq!(made.type_() == SrtpEncoder::static_type(), took_over);
        let dtls = gst::ElementFactory::make("dtlssrtpenc")
            .build()
            .expect("dtlssrtpenc");
        let bin = dtls.downcast::<gst::Bin>().expect("a bin");
        let ours = bin
            .iterate_elements()
            .into_iter()
            .filter_map(Result::ok)
            .any(|element| element.type_() == SrtpEncoder::static_type());
        assert_eq!(ours, took_over, "dtlssrtpenc's srtpenc (ours: {ours})");
    }

    #[test]
    fn a_missing_key_is_an_element_error_not_clear_packets() {
        gst::init().expect("GStreamer");
        let encoder = glib::Object::new::<SrtpEncoder>().upcast::<gst::Element>();
        let pipeline = gst::Pipeline::new();
        let sink = gst::ElementFactory::make("fakesink")
            .build()
            .expect("fakesink");
        pipeline.add_many([&encoder, &sink]).expect("add");
        let pad = encoder.request_pad_simple("rtp_sink_%u").expect("pad");
        assert_eq!(pad.name(), "rtp_sink_0");
        encoder
            .link_pads(Some("rtp_src_0"), &sink, None)
            .expect("link");
        pipeline.set_state(gst::State::Playing).expect("play");
        let feeder = gst::Pad::new(gst::PadDirection::Src);
        feeder.set_active(true).expect("active");
        feeder.link(&pad).expect("link");
        feeder.push_event(gst::event::StreamStart::new("no-key"));
        feeder.push_event(gst::event::Caps::new(&gst::Caps::new_empty_simple(
            "application/x-rtp",
        )));
        feeder.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
            gst::ClockTime,
        >::new()));
        let pushed = feeder.push(gst::Buffer::from_slice(rtp_packet(1, &payload(1))));
        assert_eq!(pushed, Err(gst::FlowError::NotNegotiated));
        let bus = pipeline.bus().expect("bus");
        let error = bus
            .timed_pop_filtered(gst::ClockTime::from_seconds(2), &[gst::MessageType::Error])
            .expect("an error message");
        let gst::MessageView::Error(error) = error.view() else {
            unreachable!("filtered for errors")
        };
        assert!(
            error.error().to_string().contains("no SRTP master key"),
            "{}",
            error.error()
        );
        let _ = pipeline.set_state(gst::State::Null);
        std::thread::sleep(Duration::from_millis(10));
    }
}
