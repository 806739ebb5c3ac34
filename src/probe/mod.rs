//! `peercam probe`: calls a device the way a browser would, with an independent WebRTC stack
//! (webrtc-rs), and reports how well it answered — time to the first keyframe a decoder could
//! start from, frames and frame rate, bitrate, loss and jitter — for one call or several in a
//! row. Non-zero exit when the device does not answer or sends no frames in time, so it serves
//! as a health check; `--json` for scripts and benchmarks.
//!
//! # Layout (each file imports only those below it; none imports this one)
//! - [`cli`]: the command line, printing the report.
//! - [`signal`]: the shared vocabulary: what a call is asked to do, the far end's ICE servers
//!   and messages, candidates as JSON. `error`: `ProbeError`.
//! - [`client`]: URL, TLS with a pinned certificate, login, the signaling socket.
//! - [`far_end`]: who is called — a peercam device ([`device`]) or, for benchmarks, a Janus
//!   streaming mountpoint ([`janus`]), or the device's WHEP ([`whep`]) — and the signaling a
//!   call needs from each.
//! - [`call`]: one call over webrtc-rs.
//! - [`stream_stats`]: what one RTP stream's packets say (pure); [`frames`]: frames out of
//!   packets (pure).

pub mod call;
pub mod cli;
pub mod client;
pub mod device;
mod error;
pub mod far_end;
pub mod frames;
pub mod janus;
pub mod signal;
pub mod stream_stats;
pub mod whep;

use std::time::Duration;

use serde::Serialize;

pub use call::CallReport;
pub use client::{Connector, Endpoint, Trust};
pub use error::ProbeError;
pub use far_end::Target;
pub use signal::{CallPlan, SrtpOffer};

/// What the probe is asked to do.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    pub url: String,
    pub trust: Trust,
    pub password: Option<String>,
    pub calls: u32,
    pub duration: Duration,
    pub timeout: Duration,
    pub codecs: Vec<String>,
    /// Watch this Janus streaming mountpoint at `url` (Janus's HTTP API) instead of calling a
    /// device: the same client for both sides of a benchmark.
    pub janus_stream: Option<u64>,
    /// Watch through the device's `/whep` as a receive-only viewer, with this viewer token
    /// (`Some("")` for a device with `auth = "none"`), instead of calling it.
    pub whep_token: Option<String>,
    /// The SRTP profiles offered.
    pub srtp: SrtpOffer,
    /// Take video only (see `CallPlan::video_only`).
    pub video_only: bool,
}

/// Percentiles of one figure over the calls.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Spread {
    pub p50: f64,
    pub p95: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// Nearest-rank percentiles; `None` for no values.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = (p / 100.0 * sorted.len() as f64).ceil() as usize;
            sorted[index.clamp(1, sorted.len()) - 1]
        };
        Some(Self {
            p50: rank(50.0),
            p95: rank(95.0),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        })
    }
}

/// Everything the probe found, as printed with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub url: String,
    pub calls: Vec<CallReport>,
    pub first_keyframe_ms: Option<Spread>,
    pub connected_ms: Option<Spread>,
    pub fps: Option<Spread>,
    pub bitrate_kbps: Option<Spread>,
    /// The first failure, which ended the run.
    pub failure: Option<String>,
}

/// Runs the calls one after another; stops at the first that fails.
pub async fn run(options: &ProbeOptions) -> Result<ProbeReport, ProbeError> {
    let (target, cookie) = match options.janus_stream {
        Some(stream) => (
            Target::Janus(janus::Janus::from_url(&options.url, stream, options.timeout).await?),
            None,
        ),
        None => {
            let device = Endpoint::device(&options.url).await?;
            let connector = Connector::new(device, options.trust.clone(), options.timeout)?;
            match &options.whep_token {
                Some(token) => (
                    Target::Whep(whep::WhepTarget {
                        connector,
                        token: Some(token.clone()).filter(|t| !t.is_empty()),
                    }),
                    None,
                ),
                None => {
                    let cookie = match &options.password {
                        Some(password) => connector.log_in(password).await?,
                        None => None,
                    };
                    (Target::Device(connector), cookie)
                }
            }
        }
    };
    let plan = CallPlan {
        duration: options.duration,
        timeout: options.timeout,
        codecs: options.codecs.clone(),
        cookie,
        srtp: options.srtp,
        video_only: options.video_only,
    };
    let mut report = ProbeReport {
        url: options.url.clone(),
        calls: Vec::new(),
        first_keyframe_ms: None,
        connected_ms: None,
        fps: None,
        bitrate_kbps: None,
        failure: None,
    };
    for number in 1..=options.calls.max(1) {
        match call::call(&target, &plan).await {
            Ok(call) => report.calls.push(call),
            Err(e) => {
                report.failure = Some(format!("call {number} of {}: {e}", options.calls));
                break;
            }
        }
    }
    let figures = |pick: fn(&CallReport) -> Option<f64>| {
        Spread::of(&report.calls.iter().filter_map(pick).collect::<Vec<_>>())
    };
    report.first_keyframe_ms = figures(|c| c.timings.first_keyframe_ms);
    report.connected_ms = figures(|c| c.timings.connected_ms);
    report.fps = figures(|c| c.video.map(|v| v.fps));
    report.bitrate_kbps = figures(|c| c.video.map(|v| v.bitrate_kbps));
    Ok(report)
}

impl ProbeReport {
    /// Whether every call got frames.
    pub fn healthy(&self) -> bool {
        self.failure.is_none()
            && !self.calls.is_empty()
            && self
                .calls
                .iter()
                .all(|c| c.video.is_some_and(|v| v.frames > 0))
    }

    /// The report for people.
    pub fn human(&self) -> String {
        let mut out = format!("peercam probe {}\n", self.url);
        for (index, call) in self.calls.iter().enumerate() {
            out.push_str(&format!("call {}: {}\n", index + 1, describe(call)));
        }
        if let Some(failure) = &self.failure {
            out.push_str(&format!("FAILED: {failure}\n"));
        }
        if self.calls.len() > 1 {
            out.push_str(&format!("{} calls", self.calls.len()));
            let spread = |name: &str, unit: &str, s: Option<Spread>| match s {
                Some(s) => format!(
                    "; {name} p50 {:.0}{unit}, p95 {:.0}{unit}, min {:.0}{unit}, max {:.0}{unit}",
                    s.p50, s.p95, s.min, s.max
                ),
                None => String::new(),
            };
            out.push_str(&spread("first keyframe", " ms", self.first_keyframe_ms));
            out.push_str(&spread("connected", " ms", self.connected_ms));
            out.push_str(&spread("fps", "", self.fps));
            out.push('\n');
        }
        out
    }
}

fn describe(call: &CallReport) -> String {
    let t = &call.timings;
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
    let mut line = format!(
        "{} · first keyframe {} ms (joined {:.0}, offer {}, connected {}, first packet {})",
        call.video_codec.as_deref().unwrap_or("no video"),
        ms(t.first_keyframe_ms),
        t.joined_ms,
        ms(t.offer_ms),
        ms(t.connected_ms),
        ms(t.first_packet_ms),
    );
    if let Some(v) = call.video {
        line.push_str(&format!(
            " · {} frames in {:.1} s, {:.1} fps, {:.0} kbit/s, loss {:.2} %, jitter {:.1} ms",
            v.frames, call.received_seconds, v.fps, v.bitrate_kbps, v.loss_percent, v.jitter_ms
        ));
        line.push_str(&format!(
            " · {} freezes ({:.2} s, longest gap {:.0} ms), {} frames dropped, {} NACKed, {} \
             recovered, {} keyframe requests",
            v.freezes,
            v.freeze_seconds,
            v.longest_gap_ms,
            v.frames_dropped,
            v.nacked,
            v.recovered,
            v.keyframe_requests
        ));
    }
    if let Some(a) = call.audio {
        line.push_str(&format!(
            " · audio {} packets, loss {:.2} %, jitter {:.1} ms",
            a.packets, a.loss_percent, a.jitter_ms
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=20).map(f64::from).collect();
        let spread = Spread::of(&values).unwrap();
        assert_eq!(spread.p50, 10.0);
        assert_eq!(spread.p95, 19.0);
        assert_eq!((spread.min, spread.max), (1.0, 20.0));
        assert_eq!(Spread::of(&[7.0]).unwrap().p95, 7.0);
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(Spread::of(&[f64::NAN]), None);
    }
}
