//! Fuzzes what a WHEP viewer sends: any offer must be answered with a codec choice or refused
//! with a reason, reshaped for webrtcbin (bundle-only m-lines) without losing a line it keeps,
//! and any trickled fragment parsed or refused naming its line; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam::media::plan::VideoCodec;
use peercam::media::viewer_offer;
use peercam::media_link::MAX_OFFER_BYTES;
use peercam::web::whep::parse_fragment;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let both = [VideoCodec::H264, VideoCodec::Vp8];
    for running in [&[][..], &both[..1], &both[1..], &both[..]] {
        match viewer_offer::choose(text, running, |_| true) {
            Ok(choice) => {
                assert!(running.is_empty() || running.contains(&choice.codec));
                assert!(text.len() <= MAX_OFFER_BYTES);
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    // Only `a=bundle-only` lines are dropped, and only when the offer has any.
    let reshaped = viewer_offer::for_webrtcbin(text);
    let dropped = text.lines().count().saturating_sub(reshaped.lines().count());
    assert!(dropped <= text.lines().filter(|l| l.trim_end_matches('\r') == "a=bundle-only").count());
    if let Ok(candidates) = parse_fragment(text) {
        for candidate in candidates {
            assert!(candidate.candidate.starts_with("candidate:"));
        }
    }
});
