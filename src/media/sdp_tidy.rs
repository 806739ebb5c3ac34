//! What webrtcbin 1.22 writes, made into the SDP that JSEP (RFC 9429) and the WHEP draft ask
//! for, before it leaves the device.
//!
//! - Each `a=fmtp` parameter once: webrtcbin repeats `level-asymmetry-allowed=1` when the caps
//!   already carry it.
//! - A media-level `a=msid:<stream> <track>` (RFC 8830), taken from webrtcbin's `a=ssrc:... msid:`
//!   lines: players that follow JSEP read the track from it, not from the SSRC lines.
//! - In an offer (the device's call), `a=rtcp-mux-only` beside `a=rtcp-mux` (RFC 8858: the
//!   device never sends RTCP on a port of its own). Never in an answer: RFC 8858 forbids the
//!   answerer to include it, which is why a WHEP answer has `a=rtcp-mux` only.
//! - When the candidates are all in (a WHEP answer), `a=end-of-candidates` after them.
//!
//! Pure text in, text out, so each rule has a unit test.

/// Which side of the exchange the SDP is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpKind {
    /// The device's offer to its caller; candidates are trickled after it.
    Offer,
    /// The device's answer to a viewer, with every candidate it will have.
    CompleteAnswer,
}

/// `sdp` tidied as the module says.
pub fn tidy(sdp: &str, kind: SdpKind) -> String {
    let mut out = String::with_capacity(sdp.len() + 256);
    let mut section: Vec<String> = Vec::new();
    let mut in_media = false;
    for line in sdp.lines().map(|l| l.trim_end_matches('\r')) {
        if line.starts_with("m=") {
            flush(&mut out, &mut section, in_media, kind);
            in_media = true;
        }
        section.push(one_of_each_parameter(line));
    }
    flush(&mut out, &mut section, in_media, kind);
    out
}

/// Writes one section (the session part when `!is_media`), with what it lacks added.
fn flush(out: &mut String, section: &mut Vec<String>, is_media: bool, kind: SdpKind) {
    if is_media {
        let has = |prefix: &str| section.iter().any(|l| l.starts_with(prefix));
        let msid = (!has("a=msid:"))
            .then(|| section.iter().find_map(|l| ssrc_msid(l)))
            .flatten();
        let add_mux_only = kind == SdpKind::Offer && has("a=rtcp-mux") && !has("a=rtcp-mux-only");
        let end_of_candidates = kind == SdpKind::CompleteAnswer && !has("a=end-of-candidates");
        let mut lines = Vec::with_capacity(section.len() + 3);
        for line in section.drain(..) {
            let is_mux = line == "a=rtcp-mux";
            let is_mid = line.starts_with("a=mid:");
            lines.push(line);
            if is_mux && add_mux_only {
                lines.push("a=rtcp-mux-only".to_owned());
            }
            if let (true, Some(msid)) = (is_mid, &msid) {
                lines.push(format!("a=msid:{msid}"));
            }
        }
        if end_of_candidates {
            lines.push("a=end-of-candidates".to_owned());
        }
        *section = lines;
    }
    for line in section.drain(..) {
        out.push_str(&line);
        out.push_str("\r\n");
    }
}

/// The `<stream> <track>` of an `a=ssrc:<n> msid:<stream> <track>` line.
fn ssrc_msid(line: &str) -> Option<String> {
    let rest = line.strip_prefix("a=ssrc:")?;
    let (_, msid) = rest.split_once(" msid:")?;
    let mut ids = msid.split_ascii_whitespace();
    let (stream, track) = (ids.next()?, ids.next()?);
    Some(format!("{stream} {track}"))
}

/// An `a=fmtp:` line with each parameter once (the first kept); any other line as it is.
fn one_of_each_parameter(line: &str) -> String {
    let Some(rest) = line.strip_prefix("a=fmtp:") else {
        return line.to_owned();
    };
    let Some((pt, params)) = rest.split_once(' ') else {
        return line.to_owned();
    };
    let mut seen: Vec<&str> = Vec::new();
    let kept: Vec<&str> = params
        .split(';')
        .map(str::trim)
        .filter(|param| {
            let key = param.split('=').next().unwrap_or(param);
            let fresh = !param.is_empty() && !seen.contains(&key);
            seen.push(key);
            fresh
        })
        .collect();
    format!("a=fmtp:{pt} {}", kept.join(";"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEBRTCBIN: &str = "v=0\r\ns=-\r\na=group:BUNDLE 0 1\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 101\r\na=mid:0\r\na=rtcp-mux\r\na=rtpmap:101 H264/90000\r\n\
        a=fmtp:101 packetization-mode=1;level-asymmetry-allowed=1;profile-level-id=42e01f;\
        level-asymmetry-allowed=1\r\n\
        a=ssrc:1801676563 msid:user5@host-e5 webrtctransceiver11\r\n\
        a=ssrc:1801676563 cname:user5@host-e5\r\n\
        a=candidate:1 1 UDP 2015363327 192.0.2.2 37638 typ host\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=rtcp-mux\r\n\
        a=ssrc:55 msid:user5@host-e5 webrtctransceiver12\r\n";

    #[test]
    fn an_answer_gets_msid_and_end_of_candidates_but_not_mux_only() {
        let answer = tidy(WEBRTCBIN, SdpKind::CompleteAnswer);
        assert_eq!(
            answer
                .matches("a=msid:user5@host-e5 webrtctransceiver11\r\n")
                .count(),
            1
        );
        assert!(answer.contains("a=mid:1\r\na=msid:user5@host-e5 webrtctransceiver12\r\n"));
        assert_eq!(answer.matches("a=end-of-candidates\r\n").count(), 2);
        assert!(!answer.contains("rtcp-mux-only"), "{answer}");
        assert!(answer.contains(
            "a=fmtp:101 packetization-mode=1;level-asymmetry-allowed=1;profile-level-id=42e01f\r\n"
        ));
        // Tidying twice changes nothing more.
        assert_eq!(tidy(&answer, SdpKind::CompleteAnswer), answer);
    }

    #[test]
    fn an_offer_is_mux_only_and_its_candidates_are_still_coming() {
        let offer = tidy(WEBRTCBIN, SdpKind::Offer);
        assert_eq!(
            offer.matches("a=rtcp-mux\r\na=rtcp-mux-only\r\n").count(),
            2
        );
        assert!(!offer.contains("end-of-candidates"));
        assert_eq!(tidy(&offer, SdpKind::Offer), offer);
    }

    #[test]
    fn other_lines_are_left_alone() {
        assert_eq!(
            one_of_each_parameter("a=fmtp:97 apt=96"),
            "a=fmtp:97 apt=96"
        );
        assert_eq!(one_of_each_parameter("a=fmtp:97"), "a=fmtp:97");
        assert_eq!(ssrc_msid("a=ssrc:1 cname:x"), None);
        assert_eq!(ssrc_msid("a=ssrc:1 msid:only-stream"), None);
        let plain = "v=0\r\ns=-\r\n";
        assert_eq!(tidy(plain, SdpKind::Offer), plain);
    }
}
