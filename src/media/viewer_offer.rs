//! A viewer's offer (WHEP): is it SDP the device can answer, and which payload types to send.
//!
//! Pure, so every refusal has a reason a test can read, and fuzzed (`fuzz/fuzz_targets/
//! whep_input.rs`) like the other parsers of network input. The device answers with H.264
//! Constrained Baseline in
//! packetization mode 1 when the offer has it (the `42e01f` profile preferred, then any
//! Constrained Baseline level), else VP8; Opus for audio. When the shared encoder already runs,
//! its codec is the only one it can send.

use thiserror::Error;

use super::plan::VideoCodec;
use crate::media_link::MAX_OFFER_BYTES;
use crate::signaling::{IceCandidate, ice_ufrag};

/// What the answer will send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferChoice {
    pub codec: VideoCodec,
    pub video_payload: u32,
    /// Opus's payload type, when the offer receives audio.
    pub audio_payload: Option<u32>,
    /// The `mid` of each m-line, in order (for trickled candidates).
    pub mids: Vec<String>,
    /// The offer's ICE username fragment (bundled: one for the session), to tell trickled
    /// candidates from an ICE restart.
    pub ice_ufrag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OfferError {
    #[error("the offer is longer than {MAX_OFFER_BYTES} bytes")]
    TooLong,
    #[error("the offer is not SDP: it does not start with `v=0`")]
    NotSdp,
    #[error("line {line}: `{text}` is not an SDP line (`x=...`)")]
    BadLine { line: usize, text: String },
    #[error("line {line}: {reason}")]
    BadMedia { line: usize, reason: String },
    #[error("the offer is refused: {0}")]
    ControlCharacter(String),
    #[error("the offer has no video m-line that receives")]
    NoVideo,
    #[error(
        "the offer has neither H.264 Constrained Baseline (packetization-mode=1) nor VP8; it \
         offers {offered}"
    )]
    NoCommonCodec { offered: String },
    #[error("the device is sending {running} to other viewers and the offer does not receive it")]
    NotTheRunningCodec { running: VideoCodec },
}

/// One m-line as far as the choice needs it.
#[derive(Debug, Default)]
struct Media {
    kind: String,
    formats: Vec<u32>,
    mid: Option<String>,
    receives: bool,
    rtpmaps: Vec<(u32, String)>,
    fmtps: Vec<(u32, String)>,
}

impl Media {
    fn encoding(&self, pt: u32) -> Option<&str> {
        self.rtpmaps
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, name)| name.as_str())
    }

    fn fmtp(&self, pt: u32) -> &str {
        self.fmtps
            .iter()
            .find(|(p, _)| *p == pt)
            .map_or("", |(_, f)| f.as_str())
    }

    /// Payload types offered for `name`, in the offer's order of preference.
    fn payloads_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = u32> + 'a {
        self.formats.iter().copied().filter(move |pt| {
            self.encoding(*pt)
                .is_some_and(|e| e.eq_ignore_ascii_case(name))
        })
    }
}

/// Chooses what to send a viewer whose offer is `offer`. `running` is the codecs the shared
/// encoders send when they run already (the first encoder's first); `can_encode` says whether
/// the device has an encoder for a codec (for when none runs).
pub fn choose(
    offer: &str,
    running: &[VideoCodec],
    can_encode: impl Fn(VideoCodec) -> bool,
) -> Result<OfferChoice, OfferError> {
    let media = parse(offer)?;
    let video = media
        .iter()
        .find(|m| m.kind == "video" && m.receives)
        .ok_or(OfferError::NoVideo)?;
    let h264 = constrained_baseline(video);
    let vp8 = video.payloads_of("VP8").next();
    let usable = |codec: VideoCodec| match running {
        [] => can_encode(codec),
        running => running.contains(&codec),
    };
    let (codec, video_payload) = match (h264, vp8) {
        (Some(pt), _) if usable(VideoCodec::H264) => (VideoCodec::H264, pt),
        (_, Some(pt)) if usable(VideoCodec::Vp8) => (VideoCodec::Vp8, pt),
        (None, None) => {
            let mut offered: Vec<&str> = video
                .formats
                .iter()
                .filter_map(|pt| video.encoding(*pt))
                .collect();
            offered.dedup();
            return Err(OfferError::NoCommonCodec {
                offered: if offered.is_empty() {
                    "nothing".into()
                } else {
                    offered.join(", ")
                },
            });
        }
        _ => {
            return Err(match running.first() {
                Some(&running) => OfferError::NotTheRunningCodec { running },
                None => OfferError::NoCommonCodec {
                    offered: "no codec the device can encode".into(),
                },
            });
        }
    };
    let audio_payload = media
        .iter()
        .find(|m| m.kind == "audio" && m.receives)
        .and_then(|m| m.payloads_of("opus").next());
    Ok(OfferChoice {
        codec,
        video_payload,
        audio_payload,
        mids: media
            .iter()
            .enumerate()
            .map(|(i, m)| m.mid.clone().unwrap_or_else(|| i.to_string()))
            .collect(),
        ice_ufrag: ice_ufrag(offer),
    })
}

/// Whether a trickle fragment (its `ufrag` and candidates) for a session whose offer had
/// `offered` as its ICE username fragment comes under new credentials: an ICE restart.
pub fn asks_for_ice_restart(
    offered: Option<&str>,
    ufrag: Option<&str>,
    candidates: &[IceCandidate],
) -> bool {
    let Some(offered) = offered else {
        return false;
    };
    let differs = |theirs: Option<&str>| theirs.is_some_and(|theirs| theirs != offered);
    differs(ufrag)
        || candidates
            .iter()
            .any(|c| differs(c.username_fragment.as_deref()))
}

/// The H.264 payload type to send: Constrained Baseline, packetization mode 1; `42e01f` first.
fn constrained_baseline(video: &Media) -> Option<u32> {
    let candidates: Vec<(u32, String)> = video
        .payloads_of("H264")
        .filter_map(|pt| {
            let fmtp = video.fmtp(pt).to_ascii_lowercase();
            let params: Vec<(&str, &str)> = fmtp
                .split(';')
                .filter_map(|p| p.trim().split_once('='))
                .collect();
            let value = |key: &str| params.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
            let profile = value("profile-level-id")?;
            (value("packetization-mode") == Some("1") && is_constrained_baseline(profile))
                .then(|| (pt, profile.to_owned()))
        })
        .collect();
    candidates
        .iter()
        .find(|(_, profile)| profile == "42e01f")
        .or_else(|| candidates.first())
        .map(|(pt, _)| *pt)
}

/// `profile-level-id` (RFC 6184): profile_idc 0x42 (Baseline) with constraint_set1 set is
/// Constrained Baseline.
fn is_constrained_baseline(profile_level_id: &str) -> bool {
    profile_level_id.len() == 6
        && profile_level_id.starts_with("42")
        && u8::from_str_radix(&profile_level_id[2..4], 16).is_ok_and(|flags| flags & 0x40 != 0)
}

fn parse(offer: &str) -> Result<Vec<Media>, OfferError> {
    if offer.len() > MAX_OFFER_BYTES {
        return Err(OfferError::TooLong);
    }
    if !offer.trim_start_matches('\u{feff}').starts_with("v=0") {
        return Err(OfferError::NotSdp);
    }
    if let Some(reason) = crate::signaling::control_character(offer.trim_start_matches('\u{feff}'))
    {
        return Err(OfferError::ControlCharacter(reason));
    }
    let mut media: Vec<Media> = Vec::new();
    for (index, raw) in offer.lines().enumerate() {
        let line = index + 1;
        let text = raw.trim_end_matches('\r');
        if text.is_empty() {
            continue;
        }
        let bad_line = || OfferError::BadLine {
            line,
            text: text.chars().take(60).collect(),
        };
        let (kind, value) = text.split_once('=').ok_or_else(bad_line)?;
        if kind.len() != 1 {
            return Err(bad_line());
        }
        match kind {
            "m" => media.push(parse_m_line(value, line)?),
            "a" => {
                if let Some(current) = media.last_mut() {
                    parse_attribute(current, value, line)?;
                }
            }
            _ => {}
        }
    }
    Ok(media)
}

fn parse_m_line(value: &str, line: usize) -> Result<Media, OfferError> {
    let mut fields = value.split_ascii_whitespace();
    let kind = fields.next().unwrap_or_default().to_owned();
    let (Some(_port), Some(_proto)) = (fields.next(), fields.next()) else {
        return Err(OfferError::BadMedia {
            line,
            reason: "an m-line needs a port, a protocol and formats".into(),
        });
    };
    let formats = fields.filter_map(|f| f.parse().ok()).collect();
    Ok(Media {
        kind,
        formats,
        receives: true,
        ..Media::default()
    })
}

fn parse_attribute(media: &mut Media, value: &str, line: usize) -> Result<(), OfferError> {
    let bad = |reason: &str| OfferError::BadMedia {
        line,
        reason: reason.to_owned(),
    };
    if let Some(rest) = value.strip_prefix("rtpmap:") {
        let (pt, encoding) = rest
            .split_once(' ')
            .ok_or_else(|| bad("rtpmap needs a payload type and an encoding"))?;
        let pt = pt
            .parse()
            .map_err(|_| bad("rtpmap's payload type is not a number"))?;
        let name = encoding.split('/').next().unwrap_or_default().to_owned();
        media.rtpmaps.push((pt, name));
    } else if let Some(rest) = value.strip_prefix("fmtp:") {
        let (pt, params) = rest.split_once(' ').unwrap_or((rest, ""));
        let pt = pt
            .parse()
            .map_err(|_| bad("fmtp's payload type is not a number"))?;
        media.fmtps.push((pt, params.to_owned()));
    } else if let Some(mid) = value.strip_prefix("mid:") {
        media.mid = Some(mid.trim().to_owned());
    } else if value == "sendonly" || value == "inactive" {
        media.receives = false;
    }
    Ok(())
}

/// The offer as webrtcbin 1.22 can answer it. JSEP's max-bundle (Firefox, and WHEP players that
/// follow it) offers every m-line after the first with port 0 and `a=bundle-only`: it is
/// bundled, not rejected, but webrtcbin takes port 0 for "rejected" and never sends on it. Such
/// an m-line, when its `mid` is in a BUNDLE group, is given the usual placeholder port 9
/// instead; everything else is left as it was.
pub fn for_webrtcbin(offer: &str) -> String {
    let bundled: Vec<&str> = offer
        .lines()
        .filter_map(|line| line.trim_end_matches('\r').strip_prefix("a=group:BUNDLE"))
        .flat_map(str::split_ascii_whitespace)
        .collect();
    let mut out = String::with_capacity(offer.len());
    let sections = split_sections(offer);
    for (index, section) in sections.iter().enumerate() {
        let is_media = index > 0 || section.first().is_some_and(|l| l.starts_with("m="));
        let bundle_only = is_media
            && section.contains(&"a=bundle-only")
            && section.iter().any(|l| {
                l.strip_prefix("a=mid:")
                    .is_some_and(|mid| bundled.contains(&mid.trim()))
            });
        for line in section {
            if bundle_only && *line == "a=bundle-only" {
                continue;
            }
            match line.strip_prefix("m=") {
                Some(m_line) if bundle_only => {
                    let mut fields: Vec<&str> = m_line.split(' ').collect();
                    if fields.get(1) == Some(&"0") {
                        fields[1] = "9";
                    }
                    out.push_str("m=");
                    out.push_str(&fields.join(" "));
                }
                _ => out.push_str(line),
            }
            out.push_str("\r\n");
        }
    }
    out
}

/// The lines of `sdp` (without line ends), cut before each `m=` line: the session part first.
fn split_sections(sdp: &str) -> Vec<Vec<&str>> {
    let mut sections = vec![Vec::new()];
    for line in sdp.lines().map(|l| l.trim_end_matches('\r')) {
        if line.starts_with("m=") {
            sections.push(Vec::new());
        }
        if let Some(section) = sections.last_mut() {
            section.push(line);
        }
    }
    sections
}

/// `sdp` with `candidates` (m-line index, `candidate:...` text) added to their m-sections and
/// each section's gathering marked complete.
pub fn with_candidates(sdp: &str, candidates: &[(u32, String)]) -> String {
    let mut out = String::with_capacity(sdp.len() + candidates.len() * 100);
    let mut section: Option<u32> = None;
    let close = |out: &mut String, section: Option<u32>| {
        if let Some(index) = section {
            for (_, candidate) in candidates.iter().filter(|(m, _)| *m == index) {
                let candidate = candidate.strip_prefix("a=").unwrap_or(candidate);
                out.push_str(&format!("a={candidate}\r\n"));
            }
            out.push_str("a=end-of-candidates\r\n");
        }
    };
    for line in sdp.lines() {
        if line.starts_with("m=") {
            close(&mut out, section);
            section = Some(section.map_or(0, |s| s + 1));
        }
        out.push_str(line.trim_end_matches('\r'));
        out.push_str("\r\n");
    }
    close(&mut out, section);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The media sections of a Chromium recvonly offer, cut down.
    const CHROMIUM: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0 1\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n\
        a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
        a=rtpmap:63 red/48000/2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 106 107\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\n\
        a=recvonly\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
        a=rtpmap:102 H264/90000\r\n\
        a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
        a=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n\
        a=rtpmap:106 H264/90000\r\n\
        a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
        a=rtpmap:107 H264/90000\r\n\
        a=fmtp:107 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n";

    fn both(_: VideoCodec) -> bool {
        true
    }

    #[test]
    fn the_ice_username_fragment_is_read_at_session_or_media_level() {
        assert_eq!(choose(CHROMIUM, &[], both).unwrap().ice_ufrag, None);
        let media_level = CHROMIUM.replace("a=mid:0\r\n", "a=mid:0\r\na=ice-ufrag: Ab+1 \r\n");
        assert_eq!(ice_ufrag(&media_level).as_deref(), Some("Ab+1"));
        let session_level = CHROMIUM.replace("t=0 0\r\n", "t=0 0\r\na=ice-ufrag:xyz\r\n");
        assert_eq!(
            choose(&session_level, &[], both)
                .unwrap()
                .ice_ufrag
                .as_deref(),
            Some("xyz")
        );
    }

    #[test]
    fn new_credentials_in_a_fragment_ask_for_an_ice_restart() {
        let under = |ufrag: Option<&str>| IceCandidate {
            candidate: "candidate:1 1 udp 1 192.0.2.1 9 typ host".into(),
            sdp_m_line_index: 0,
            sdp_mid: Some("0".into()),
            username_fragment: ufrag.map(str::to_owned),
        };
        let same = [under(Some("abc")), under(None)];
        assert!(!asks_for_ice_restart(Some("abc"), Some("abc"), &same));
        assert!(!asks_for_ice_restart(Some("abc"), None, &[]));
        assert!(asks_for_ice_restart(Some("abc"), Some("new"), &[]));
        assert!(asks_for_ice_restart(
            Some("abc"),
            None,
            &[under(Some("new"))]
        ));
        // An offer without credentials gives nothing to compare with.
        assert!(!asks_for_ice_restart(
            None,
            Some("new"),
            &[under(Some("new"))]
        ));
    }

    #[test]
    fn an_offer_with_a_nul_or_an_escape_is_refused() {
        for (bad, character) in [("\0", "U+0000"), ("\u{1b}", "U+001B")] {
            let offer = CHROMIUM.replacen("a=group:BUNDLE", &format!("a=group{bad}:BUNDLE"), 1);
            let error = choose(&offer, &[], both).unwrap_err();
            assert!(
                matches!(&error, OfferError::ControlCharacter(r) if r.contains(character)),
                "{error}"
            );
        }
    }

    #[test]
    fn constrained_baseline_mode_1_and_opus_are_chosen() {
        let choice = choose(CHROMIUM, &[], both).unwrap();
        assert_eq!(choice.codec, VideoCodec::H264);
        // 102 is Baseline (42001f), 107 is mode 0: neither will do.
        assert_eq!(choice.video_payload, 106);
        assert_eq!(choice.audio_payload, Some(111));
        assert_eq!(choice.mids, ["0", "1"]);
    }

    #[test]
    fn vp8_when_h264_is_not_offered() {
        let offer: String = CHROMIUM
            .lines()
            .filter(|l| !l.contains("H264") && !l.contains("profile-level-id"))
            .map(|l| format!("{l}\r\n"))
            .collect();
        let offer = offer.replace("96 97 102 103 106 107", "96 97");
        let choice = choose(&offer, &[], both).unwrap();
        assert_eq!((choice.codec, choice.video_payload), (VideoCodec::Vp8, 96));
    }

    #[test]
    fn the_running_codec_decides() {
        let choice = choose(CHROMIUM, &[VideoCodec::Vp8], both).unwrap();
        assert_eq!((choice.codec, choice.video_payload), (VideoCodec::Vp8, 96));
        let h264_only = CHROMIUM.replace("a=rtpmap:96 VP8/90000\r\n", "");
        assert_eq!(
            choose(&h264_only, &[VideoCodec::Vp8], both),
            Err(OfferError::NotTheRunningCodec {
                running: VideoCodec::Vp8
            })
        );
        // With a second encoder running, either codec serves.
        let both_running = [VideoCodec::Vp8, VideoCodec::H264];
        assert_eq!(
            choose(&h264_only, &both_running, both).map(|c| c.codec),
            Ok(VideoCodec::H264)
        );
    }

    #[test]
    fn no_encoder_for_the_offered_codec() {
        let err = choose(CHROMIUM, &[], |c| c == VideoCodec::H264)
            .map(|c| c.codec)
            .unwrap();
        assert_eq!(err, VideoCodec::H264);
        let vp8_only = CHROMIUM.replace("H264", "H265");
        assert!(choose(&vp8_only, &[], |c| c == VideoCodec::H264).is_err());
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(choose("hello", &[], both), Err(OfferError::NotSdp));
        assert_eq!(
            choose("v=0\r\ns=-\r\nm=audio 9 RTP/AVP 0\r\n", &[], both),
            Err(OfferError::NoVideo)
        );
        let av1 = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 45\r\na=rtpmap:45 AV1/90000\r\n";
        assert_eq!(
            choose(av1, &[], both).unwrap_err().to_string(),
            "the offer has neither H.264 Constrained Baseline (packetization-mode=1) nor VP8; \
             it offers AV1"
        );
        assert!(matches!(
            choose("v=0\r\nthis is not sdp\r\n", &[], both),
            Err(OfferError::BadLine { line: 2, .. })
        ));
        assert!(matches!(
            choose("v=0\r\nm=video\r\n", &[], both),
            Err(OfferError::BadMedia { line: 2, .. })
        ));
        assert!(matches!(
            choose(
                "v=0\r\nm=video 9 RTP/AVP 96\r\na=rtpmap:x VP8/90000\r\n",
                &[],
                both
            ),
            Err(OfferError::BadMedia { line: 3, .. })
        ));
        let sendonly = CHROMIUM.replace("a=mid:1\r\na=recvonly", "a=mid:1\r\na=sendonly");
        assert_eq!(choose(&sendonly, &[], both), Err(OfferError::NoVideo));
        assert_eq!(
            choose(&"v=0\r\n".repeat(20_000), &[], both),
            Err(OfferError::TooLong)
        );
    }

    #[test]
    fn constrained_baseline_is_read_from_the_constraint_flags() {
        assert!(is_constrained_baseline("42e01f"));
        assert!(is_constrained_baseline("42c01e"));
        assert!(!is_constrained_baseline("42001f"));
        assert!(!is_constrained_baseline("4d001f"));
        assert!(!is_constrained_baseline("42"));
        assert!(!is_constrained_baseline("42zz1f"));
    }

    #[test]
    fn a_bundle_only_m_line_is_given_a_port_webrtcbin_sends_on() {
        // Firefox's max-bundle offer: the audio after the first m-line, port 0, bundle-only.
        let firefox = CHROMIUM
            .replace("m=audio 9 ", "m=audio 0 ")
            .replace("a=mid:0\r\n", "a=mid:0\r\na=bundle-only\r\n");
        let offer = for_webrtcbin(&firefox);
        assert!(
            offer.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\n"),
            "{offer}"
        );
        assert!(!offer.contains("bundle-only"));
        assert_eq!(offer.lines().count(), firefox.lines().count() - 1);
        // Outside any BUNDLE group, port 0 still means rejected.
        let unbundled = firefox.replace("a=group:BUNDLE 0 1\r\n", "");
        assert_eq!(for_webrtcbin(&unbundled), unbundled);
        // An offer without bundle-only is left as it was.
        assert_eq!(for_webrtcbin(CHROMIUM), CHROMIUM);
    }

    #[test]
    fn gathered_candidates_go_into_their_sections() {
        let sdp = "v=0\r\ns=-\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:video0\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:audio1\r\n";
        let out = with_candidates(
            sdp,
            &[
                (
                    0,
                    "candidate:1 1 UDP 2015363327 127.0.0.1 40000 typ host".into(),
                ),
                (
                    1,
                    "a=candidate:2 1 UDP 2015363327 127.0.0.1 40001 typ host".into(),
                ),
            ],
        );
        assert_eq!(
            out,
            "v=0\r\ns=-\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:video0\r\n\
             a=candidate:1 1 UDP 2015363327 127.0.0.1 40000 typ host\r\na=end-of-candidates\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:audio1\r\n\
             a=candidate:2 1 UDP 2015363327 127.0.0.1 40001 typ host\r\na=end-of-candidates\r\n"
        );
    }
}
