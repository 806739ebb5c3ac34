//! Talkback: the caller's microphone, arriving as Opus RTP on a webrtcbin source pad, decoded
//! and played on the device's audio sink. A byte counter at the sink's input
//! (`peercam_talkback_bytes_total`) shows that the voice really arrived.
//!
//! Called from webrtcbin's `pad-added` callback (a GStreamer thread), because the pad must be
//! linked before its first buffer; anything that is not Opus audio is discarded.
//!
//! The speaker plays the voice as it comes out of the jitter buffer (its sink does not sync to
//! the clock): there is no picture on the device to keep it in step with, and a synced sink
//! drops every sample that arrives after its deadline. On a starved board that was all of
//! them, and the speaker stayed silent while the voice arrived.

use std::sync::Arc;

use gstreamer as gst;
use gstreamer::prelude::*;

use super::error::MediaError;
use super::speaker::{Speaker, play_as_it_arrives};
use crate::metrics::Metrics;

/// Links a new webrtcbin source pad to the speaker (or, without one, or for what is not Opus
/// audio, to a discarding sink). The speaker hears the caller from now on (see `speaker`).
pub fn attach(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    speaker: Option<&Speaker>,
    metrics: &Arc<Metrics>,
) -> Result<(), MediaError> {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let is_opus = caps.structure(0).is_some_and(|s| {
        s.get::<&str>("media") == Ok("audio")
            && s.get::<&str>("encoding-name")
                .is_ok_and(|n| n.eq_ignore_ascii_case("OPUS"))
    });
    let speaker = speaker.filter(|_| is_opus);
    let description = if let Some(speaker) = speaker {
        format!(
            "rtpopusdepay ! opusdec plc=true ! audioconvert ! audioresample ! \
             queue name=talkback max-size-time=200000000 leaky=downstream ! {}",
            speaker.sink()
        )
    } else {
        log::info!("discarding an incoming stream that is not Opus audio: {caps}");
        "fakesink sync=false".to_owned()
    };
    let bin =
        gst::parse::bin_from_description(&description, true).map_err(|e| MediaError::Build {
            what: "talkback branch",
            reason: e.to_string(),
        })?;
    let link_error = |reason: String| MediaError::Build {
        what: "talkback branch",
        reason,
    };
    pipeline.add(&bin).map_err(|e| link_error(e.to_string()))?;
    if let Some(speaker) = speaker {
        play_as_it_arrives(&bin, metrics);
        speaker.caller_talks(&bin);
    }
    bin.sync_state_with_parent()
        .map_err(|e| link_error(e.to_string()))?;
    let sink_pad = bin
        .static_pad("sink")
        .ok_or_else(|| link_error("no sink pad".into()))?;
    pad.link(&sink_pad).map_err(|e| link_error(e.to_string()))?;
    log::info!(
        "talkback: caller's audio linked to `{}`",
        speaker.map_or("nothing", Speaker::sink)
    );
    Ok(())
}
