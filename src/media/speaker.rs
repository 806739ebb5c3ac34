//! The device's speaker, shared by the two ways a voice reaches it: the page's caller pressing
//! Talk (`talkback`, a branch of the call's pipeline) and an NVR's talk button over the ONVIF
//! audio backchannel (`rtsp::server`, G.711 RTP played by a small pipeline of its own).
//!
//! One talker at a time, the page's caller first: while a caller's voice branch lives (for the
//! rest of that call once Talk was pressed), an NVR's voice is dropped; when the caller starts
//! talking, an NVR's playback stops first, so a sink that opens one device once gets it back.
//! Between NVRs the first to speak keeps the speaker until its RTSP session ends.

use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use thiserror::Error;

use crate::metrics::Metrics;

#[derive(Debug, Error)]
pub enum SpeakerError {
    #[error("the owner is talking on the page")]
    CallerTalks,
    #[error("another NVR is talking")]
    OtherTalker,
    #[error("the NVR's voice cannot be played: {0}")]
    Playback(String),
}

/// The speaker's sink description and who is talking on it.
#[derive(Debug)]
pub struct Speaker {
    sink: String,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The caller's voice branch, while its call's pipeline holds it.
    caller: Option<glib::WeakRef<gst::Bin>>,
    /// The NVR playing now.
    backchannel: Option<Backchannel>,
}

impl State {
    fn caller_talks(&self) -> bool {
        self.caller
            .as_ref()
            .and_then(glib::WeakRef::upgrade)
            .is_some_and(|branch| branch.parent().is_some())
    }
}

/// One NVR's voice: an appsrc of its RTP packets, decoded and played on the sink. The pipeline
/// stops when this is dropped.
#[derive(Debug)]
struct Backchannel {
    talker: u64,
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
}

impl Drop for Backchannel {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Speaker {
    /// A speaker playing on `sink` (launch syntax).
    pub fn new(sink: impl Into<String>) -> Self {
        Self {
            sink: sink.into(),
            state: Mutex::default(),
        }
    }

    /// The sink's launch description.
    pub fn sink(&self) -> &str {
        &self.sink
    }

    /// The caller's voice branch is about to play: an NVR's voice stops, and waits for the end
    /// of this call.
    pub fn caller_talks(&self, branch: &gst::Bin) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.caller = Some(branch.downgrade());
        if let Some(backchannel) = state.backchannel.take() {
            log::info!(
                "speaker: the owner talks; NVR talker {} is no longer heard",
                backchannel.talker
            );
        }
    }

    /// Plays one RTP packet of `talker`'s voice (its caps say which G.711 law), starting the
    /// playback at its first packet.
    pub fn play(
        &self,
        talker: u64,
        sample: &gst::Sample,
        metrics: &Arc<Metrics>,
    ) -> Result<(), SpeakerError> {
        let Ok(mut state) = self.state.lock() else {
            return Err(SpeakerError::Playback(
                "the speaker's lock is poisoned".into(),
            ));
        };
        if state.caller_talks() {
            return Err(SpeakerError::CallerTalks);
        }
        match &state.backchannel {
            Some(playing) if playing.talker != talker => return Err(SpeakerError::OtherTalker),
            Some(_) => {}
            None => {
                let caps = sample
                    .caps()
                    .ok_or_else(|| SpeakerError::Playback("a packet without caps".into()))?;
                state.backchannel = Some(self.start(talker, caps, metrics)?);
                log::info!("speaker: NVR talker {talker} is heard");
            }
        }
        let Some(playing) = &state.backchannel else {
            return Ok(());
        };
        let Some(buffer) = sample.buffer_owned() else {
            return Ok(());
        };
        let mut buffer = buffer;
        // The appsrc stamps it when it arrives: the sink plays as it comes.
        buffer.make_mut().set_pts(gst::ClockTime::NONE);
        playing
            .appsrc
            .push_buffer(buffer)
            .map(|_| ())
            .map_err(|flow| SpeakerError::Playback(format!("{flow:?}")))
    }

    /// `talker`'s session ended: its playback stops, if it was the one heard.
    pub fn talker_left(&self, talker: u64) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state
            .backchannel
            .as_ref()
            .is_some_and(|b| b.talker == talker)
        {
            state.backchannel = None;
            log::info!("speaker: NVR talker {talker} left");
        }
    }

    fn start(
        &self,
        talker: u64,
        caps: &gst::CapsRef,
        metrics: &Arc<Metrics>,
    ) -> Result<Backchannel, SpeakerError> {
        let depay = match caps
            .structure(0)
            .and_then(|s| s.get::<&str>("encoding-name").ok())
        {
            Some(name) if name.eq_ignore_ascii_case("PCMA") => "rtppcmadepay ! alawdec",
            _ => "rtppcmudepay ! mulawdec",
        };
        let description = format!(
            "appsrc name=voice is-live=true format=time do-timestamp=true caps=\"{caps}\" ! \
             {depay} ! audioconvert ! audioresample ! \
             queue name=talkback max-size-time=200000000 leaky=downstream ! {}",
            self.sink
        );
        let failed = |e: String| SpeakerError::Playback(e);
        let pipeline = gst::parse::launch(&description)
            .map_err(|e| failed(e.to_string()))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| failed("not a pipeline".into()))?;
        let appsrc = pipeline
            .by_name("voice")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| failed("no appsrc".into()))?;
        play_as_it_arrives(pipeline.upcast_ref(), metrics);
        let backchannel = Backchannel {
            talker,
            pipeline,
            appsrc,
        };
        backchannel
            .pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| failed(e.to_string()))?;
        Ok(backchannel)
    }
}

/// Turns off clock sync on every sink of `bin` that has it (a starved board's synced sink
/// drops every late sample; there is no picture on the device to keep the voice in step
/// with), and counts the bytes handed to the sink at its `talkback` queue
/// (`peercam_talkback_bytes_total`).
pub fn play_as_it_arrives(bin: &gst::Bin, metrics: &Arc<Metrics>) {
    for sink in bin.iterate_sinks().into_iter().flatten() {
        if sink.find_property("sync").is_some() {
            sink.set_property("sync", false);
        }
    }
    if let Some(meter) = bin
        .by_name("talkback")
        .and_then(|queue| queue.static_pad("src"))
    {
        let metrics = Arc::clone(metrics);
        meter.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buffer) = info.buffer() {
                Metrics::add(&metrics.talkback_bytes, buffer.size() as u64);
            }
            gst::PadProbeReturn::Ok
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(encoding: &str) -> gst::Sample {
        let caps = gst::Caps::builder("application/x-rtp")
            .field("media", "audio")
            .field("clock-rate", 8000)
            .field("encoding-name", encoding)
            .field("payload", if encoding == "PCMA" { 8 } else { 0 })
            .build();
        // A 20 ms G.711 packet: RTP header (version 2, marker off) and 160 samples of silence.
        let mut data = vec![0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 7];
        data.extend(std::iter::repeat_n(0xff, 160));
        gst::Sample::builder()
            .caps(&caps)
            .buffer(&gst::Buffer::from_mut_slice(data))
            .build()
    }

    #[test]
    fn one_nvr_at_a_time_and_the_caller_first() {
        crate::media::init_gstreamer().unwrap();
        let metrics = Arc::new(Metrics::default());
        let speaker = Speaker::new("fakesink");
        speaker.play(1, &packet("PCMU"), &metrics).unwrap();
        assert!(matches!(
            speaker.play(2, &packet("PCMA"), &metrics),
            Err(SpeakerError::OtherTalker)
        ));
        speaker.talker_left(1);
        speaker.play(2, &packet("PCMA"), &metrics).unwrap();

        // The caller presses Talk: its branch lives in its call's pipeline.
        let call = gst::Pipeline::new();
        let branch = gst::Bin::new();
        call.add(&branch).unwrap();
        speaker.caller_talks(&branch);
        assert!(matches!(
            speaker.play(2, &packet("PCMA"), &metrics),
            Err(SpeakerError::CallerTalks)
        ));
        // The call ends: the NVR may talk again.
        drop(branch);
        drop(call);
        speaker.play(2, &packet("PCMA"), &metrics).unwrap();
    }
}
