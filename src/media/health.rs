//! Whether the camera and microphone work, and when to try them again.
//!
//! When a call fails because a source errored or stopped, the sources are marked unavailable
//! and probed again with growing delays (1 s, 2 s, 4 s … up to 30 s) while nobody is calling; the
//! first probe that sees both sources produce a buffer marks them available again. The state
//! machine is pure (the caller passes the time); `probe_sources` is the GStreamer part.

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::settings::MediaSettings;

const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(30);
/// How long a probed source may take to produce its first buffer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

pub use crate::media_link::MediaHealth;

#[derive(Debug, Default)]
pub struct SourceHealth {
    problem: Option<(String, Duration, Instant)>,
}

impl SourceHealth {
    /// A source failed (in a call or in a probe): schedule the next probe, later each time.
    pub fn failed(&mut self, reason: String, now: Instant) -> MediaHealth {
        let delay = match &self.problem {
            Some((_, last, _)) => (*last * 2).min(LONGEST_RETRY),
            None => FIRST_RETRY,
        };
        self.problem = Some((reason.clone(), delay, now + delay));
        MediaHealth::Unavailable {
            reason,
            retry_in: delay,
        }
    }

    /// The sources worked (a probe or a call saw buffers). Returns whether that is news.
    pub fn recovered(&mut self) -> bool {
        self.problem.take().is_some()
    }

    pub fn next_probe(&self) -> Option<Instant> {
        self.problem.as_ref().map(|(_, _, at)| *at)
    }
}

/// Runs each configured source into a fakesink until it produces one buffer, or fails.
pub fn probe_sources(settings: &MediaSettings) -> Result<(), String> {
    probe_one(&settings.video_source)?;
    if let Some(microphone) = &settings.audio_source {
        probe_one(microphone)?;
    }
    Ok(())
}

fn probe_one(source: &str) -> Result<(), String> {
    let launch = format!("{source} ! fakesink name=probe sync=false");
    let pipeline = gst::parse::launch(&launch).map_err(|e| e.to_string())?;
    let (tx, rx) = std_mpsc::channel::<Result<(), String>>();
    if let Some(pad) = pipeline
        .downcast_ref::<gst::Bin>()
        .and_then(|bin| bin.by_name("probe"))
        .and_then(|sink| sink.static_pad("sink"))
    {
        let tx = tx.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let _ = tx.send(Ok(()));
            gst::PadProbeReturn::Remove
        });
    }
    if let Some(bus) = pipeline.bus() {
        bus.set_sync_handler(move |_, message| {
            match message.view() {
                gst::MessageView::Error(err) => {
                    let _ = tx.send(Err(err.error().to_string()));
                }
                gst::MessageView::Eos(_) => {
                    let _ = tx.send(Err("the source ended at once".into()));
                }
                _ => {}
            }
            gst::BusSyncReply::Drop
        });
    }
    let result = match pipeline.set_state(gst::State::Playing) {
        Err(e) => Err(format!("the source would not start: {e}")),
        Ok(_) => rx
            .recv_timeout(PROBE_TIMEOUT)
            .unwrap_or_else(|_| Err("no data from the source".into())),
    };
    if let Some(bus) = pipeline.bus() {
        bus.unset_sync_handler();
    }
    let _ = pipeline.set_state(gst::State::Null);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_limit_and_reset_on_recovery() {
        let mut health = SourceHealth::default();
        let now = Instant::now();
        let delays: Vec<Duration> = (0..8)
            .map(|_| match health.failed("gone".into(), now) {
                MediaHealth::Unavailable { retry_in, .. } => retry_in,
                MediaHealth::Available => Duration::ZERO,
            })
            .collect();
        let seconds: Vec<u64> = delays.iter().map(Duration::as_secs).collect();
        assert_eq!(seconds, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(health.next_probe(), Some(now + LONGEST_RETRY));
        assert!(health.recovered());
        assert!(!health.recovered(), "only news once");
        assert_eq!(health.next_probe(), None);
        assert!(matches!(
            health.failed("again".into(), now),
            MediaHealth::Unavailable { retry_in, .. } if retry_in == FIRST_RETRY
        ));
    }

    #[test]
    fn a_working_test_source_passes_the_probe_and_a_broken_one_does_not() {
        gst::init().expect("GStreamer");
        assert_eq!(probe_one("videotestsrc is-live=true"), Ok(()));
        assert!(probe_one("videotestsrc num-buffers=0").is_err());
        assert!(probe_one("nosuchelement").is_err());
    }
}
