//! What the caller's receiver reports say, read out of webrtcbin's `get-stats` answer.
//!
//! The answer is one structure holding one sub-structure per stats object. The caller's RTCP
//! receiver reports appear as `remote-inbound-rtp` (`fraction-lost`, `round-trip-time`, keyed
//! by the SSRC the device sends on). Which SSRC is the video one is read from the `codec`
//! entries (their `mime-type` and `ssrc`): GStreamer 1.22 labels every `outbound-rtp` and
//! `remote-inbound-rtp` entry with `kind=audio`, whatever it carries, so `kind` is not used.
//! The video `outbound-rtp` entry gives the bytes sent, from which `peer` works out the rate.
//!
//! Whether a new receiver report came at all is read from what every report changes: the
//! highest sequence number the receiver got, and the delay since the device's last sender
//! report (rtpbin's own `rb-*` fields, nested in each `remote-inbound-rtp` entry). Loss and
//! round trip alone can stay the same from report to report on a clean path whose round trip
//! is not measured yet, which once made a caller on the emulated board look gone.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use gstreamer as gst;

use super::bitrate::ReceiverReport;

/// The receiver reports for the device's video and audio streams, where the caller sent them.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct LinkReports {
    pub video: Option<ReceiverReport>,
    pub audio: Option<ReceiverReport>,
    /// Bytes of video sent so far (`outbound-rtp` `bytes-sent`), retransmissions included.
    pub video_bytes_sent: Option<u64>,
    /// Changes with every receiver report on either stream; `None` before the first.
    pub report_mark: Option<u64>,
}

/// Reads `stats` (webrtcbin's `get-stats` answer).
pub fn read(stats: &gst::StructureRef) -> LinkReports {
    let entries: Vec<gst::Structure> = stats
        .iter()
        .filter_map(|(_, value)| value.get::<gst::Structure>().ok())
        .collect();
    let mut video_ssrcs = HashSet::new();
    let mut audio_ssrcs = HashSet::new();
    for codec in entries.iter().filter(|e| e.name() == "codec") {
        let (Ok(ssrc), Ok(mime)) = (codec.get::<u32>("ssrc"), codec.get::<&str>("mime-type"))
        else {
            continue;
        };
        if mime.starts_with("video/") {
            video_ssrcs.insert(ssrc);
        } else if mime.starts_with("audio/") {
            audio_ssrcs.insert(ssrc);
        }
    }
    let video_bytes_sent = entries
        .iter()
        .filter(|e| e.name() == "outbound-rtp")
        .filter(|e| {
            e.get::<u32>("ssrc")
                .is_ok_and(|ssrc| video_ssrcs.contains(&ssrc))
        })
        .find_map(|e| e.get::<u64>("bytes-sent").ok());
    let mut reports = LinkReports {
        video_bytes_sent,
        ..LinkReports::default()
    };
    let mut mark: Option<DefaultHasher> = None;
    for remote in entries.iter().filter(|e| e.name() == "remote-inbound-rtp") {
        if let Ok(block) = remote.get::<gst::Structure>("gst-rtpsource-stats") {
            let hasher = mark.get_or_insert_with(DefaultHasher::new);
            for field in [
                "rb-ssrc",
                "rb-exthighestseq",
                "rb-lsr",
                "rb-dlsr",
                "rb-jitter",
            ] {
                block.get::<u32>(field).ok().hash(hasher);
            }
        }
        let (Ok(ssrc), Ok(fraction_lost)) = (
            remote.get::<u32>("ssrc"),
            remote.get::<f64>("fraction-lost"),
        ) else {
            continue;
        };
        let round_trip = remote
            .get::<f64>("round-trip-time")
            .ok()
            .filter(|rtt| rtt.is_finite() && *rtt > 0.0)
            .map(Duration::from_secs_f64);
        let report = Some(ReceiverReport {
            fraction_lost,
            round_trip,
        });
        if video_ssrcs.contains(&ssrc) {
            reports.video = report;
        } else if audio_ssrcs.contains(&ssrc) {
            reports.audio = report;
        }
    }
    reports.report_mark = mark.map(|hasher| hasher.finish());
    reports
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of GStreamer 1.22's answer (fields trimmed), as logged in a call here.
    fn answer() -> gst::Structure {
        answer_at(26_945)
    }

    /// The same, with the video receiver's highest sequence number at `highest`.
    fn answer_at(highest: u32) -> gst::Structure {
        let codec = |ssrc: u32, mime: &str| {
            gst::Structure::builder("codec")
                .field("ssrc", ssrc)
                .field("mime-type", mime)
                .build()
        };
        let remote = |ssrc: u32, lost: f64, rtt: f64| {
            let block = gst::Structure::builder("application/x-rtp-source-stats")
                .field("have-rb", true)
                .field("rb-ssrc", ssrc)
                .field("rb-exthighestseq", if ssrc == 1111 { highest } else { 700 })
                .field("rb-jitter", 111u32)
                .field("rb-lsr", 2_600_475_355u32)
                .field("rb-dlsr", 147_134u32)
                .build();
            gst::Structure::builder("remote-inbound-rtp")
                .field("ssrc", ssrc)
                .field("kind", "audio")
                .field("packets-lost", 3i64)
                .field("fraction-lost", lost)
                .field("round-trip-time", rtt)
                .field("gst-rtpsource-stats", block)
                .build()
        };
        gst::Structure::builder("application/x-webrtc-stats")
            .field("codec-stats-sink_0", codec(1111, "video/H264"))
            .field("codec-stats-sink_1", codec(2222, "audio/OPUS"))
            .field(
                "rtp-remote-inbound-stream-stats_1111",
                remote(1111, 0.25, 0.0125),
            )
            .field(
                "rtp-remote-inbound-stream-stats_2222",
                remote(2222, 0.0, 0.0),
            )
            .field(
                "rtp-outbound-stream-stats_1111",
                gst::Structure::builder("outbound-rtp")
                    .field("ssrc", 1111u32)
                    .field("kind", "audio")
                    .field("bytes-sent", 507_124u64)
                    .build(),
            )
            .build()
    }

    #[test]
    fn video_and_audio_reports_are_told_apart_by_codec_not_kind() {
        crate::media::init_gstreamer().unwrap();
        let reports = read(&answer());
        assert_eq!(
            reports.video,
            Some(ReceiverReport {
                fraction_lost: 0.25,
                round_trip: Some(Duration::from_secs_f64(0.0125)),
            })
        );
        let audio = reports.audio.unwrap();
        assert_eq!(audio.fraction_lost, 0.0);
        assert_eq!(audio.round_trip, None, "no round trip measured yet");
        assert_eq!(reports.video_bytes_sent, Some(507_124));
    }

    #[test]
    fn each_new_receiver_report_changes_the_mark_even_when_loss_and_round_trip_do_not() {
        crate::media::init_gstreamer().unwrap();
        let (first, again, next) = (read(&answer()), read(&answer()), read(&answer_at(26_990)));
        assert!(first.report_mark.is_some());
        assert_eq!(
            first.report_mark, again.report_mark,
            "the same report read twice"
        );
        assert_eq!((first.video, first.audio), (next.video, next.audio));
        assert_ne!(first.report_mark, next.report_mark, "a new report");
    }

    #[test]
    fn no_receiver_report_yet_reads_as_none() {
        crate::media::init_gstreamer().unwrap();
        let empty = gst::Structure::new_empty("application/x-webrtc-stats");
        assert_eq!(read(&empty), LinkReports::default());
    }
}
