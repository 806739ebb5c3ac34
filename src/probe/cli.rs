//! `peercam probe`'s command line: the arguments, how they become `ProbeOptions`, and the run
//! with its report printed (human or JSON). Non-zero exit (an error) when the device does not
//! answer or sends no frames in time.

use std::path::PathBuf;
use std::time::Duration;

use super::{ProbeError, ProbeOptions, SrtpOffer, Trust};

/// The arguments of `peercam probe`.
#[derive(clap::Args)]
pub struct ProbeArgs {
    /// The device's page, e.g. https://peercam.local/ or https://192.168.1.20:8443/
    url: String,
    /// The SHA-256 fingerprint of the device's certificate (printed when it starts). Without it,
    /// --insecure is needed.
    #[arg(long, conflicts_with = "insecure")]
    fingerprint: Option<String>,
    /// Accept any certificate (a lab bench, where who answers does not matter).
    #[arg(long)]
    insecure: bool,
    /// A file holding the device's password [default: the PEERCAM_PASSWORD environment
    /// variable; none when that is unset].
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Calls to make one after another; with more than one, percentiles are reported.
    #[arg(long, default_value_t = 1)]
    calls: u32,
    /// Seconds to receive in each call after the first keyframe.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds the device has to answer and send its first keyframe.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Video codecs to accept, in the order a browser lists them.
    #[arg(long, value_delimiter = ',', default_value = "H264,VP8")]
    codecs: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Benchmarks: URL is a Janus HTTP API (http://host:8088/janus); watch this streaming
    /// mountpoint instead of calling a device.
    #[arg(long)]
    janus_stream: Option<u64>,
    /// Watch through the device's /whep as a receive-only viewer (docs/watchers.md) instead of
    /// calling it, with the viewer token in the PEERCAM_TOKEN environment variable (none when
    /// it is unset: a device with auth = "none").
    #[arg(long, conflicts_with = "janus_stream")]
    whep: bool,
    /// SRTP profiles to offer in the DTLS handshake.
    #[arg(long, value_enum, default_value_t)]
    srtp: SrtpOffer,
    /// Take video only: answer the device's audio as inactive (with --whep, offer no audio).
    #[arg(long)]
    video_only: bool,
}

/// Why `peercam probe` exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(
        "give the device's certificate fingerprint with --fingerprint (it prints it when it \
         starts), or --insecure to accept any certificate"
    )]
    NoTrust,
    #[error("cannot read the password from {path}: {source}")]
    PasswordFile {
        path: String,
        source: std::io::Error,
    },
    #[error("--{name} must be a number of seconds, not {value}")]
    Seconds { name: &'static str, value: f64 },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot print the report: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Probe(#[from] ProbeError),
    /// The run finished but the device did not do its part.
    #[error("{0}")]
    Unhealthy(String),
}

impl ProbeArgs {
    /// The options the arguments ask for, with the password read from its file or the
    /// environment.
    fn options(&self) -> Result<ProbeOptions, CliError> {
        let trust = match (
            &self.fingerprint,
            self.insecure || self.janus_stream.is_some(),
        ) {
            (Some(fingerprint), _) => Trust::Pinned(fingerprint.clone()),
            (None, true) => Trust::Anything,
            (None, false) => return Err(CliError::NoTrust),
        };
        let password = match &self.password_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|source| CliError::PasswordFile {
                        path: path.display().to_string(),
                        source,
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
            ),
            None => std::env::var("PEERCAM_PASSWORD").ok(),
        };
        let seconds = |value: f64, name: &'static str| {
            Duration::try_from_secs_f64(value).map_err(|_| CliError::Seconds { name, value })
        };
        Ok(ProbeOptions {
            url: self.url.clone(),
            trust,
            password,
            calls: self.calls,
            duration: seconds(self.duration, "duration")?,
            timeout: seconds(self.timeout, "timeout")?,
            codecs: self.codecs.clone(),
            janus_stream: self.janus_stream,
            whep_token: self
                .whep
                .then(|| std::env::var("PEERCAM_TOKEN").unwrap_or_default()),
            srtp: self.srtp,
            video_only: self.video_only,
        })
    }
}

/// Runs `peercam probe` and prints its report.
pub fn run(args: &ProbeArgs) -> Result<(), CliError> {
    // webrtc-rs warns about routine ICE events; its errors and our warnings are what matter.
    env_logger::Builder::new()
        .parse_filters(
            &std::env::var("RUST_LOG")
                .unwrap_or_else(|_| "warn,rtc=error,rtc_ice=error,rtc_dtls=error".into()),
        )
        .init();
    let options = args.options()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    let report = runtime.block_on(super::run(&options))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.human());
    }
    if !report.healthy() {
        return Err(CliError::Unhealthy(
            report
                .failure
                .unwrap_or_else(|| "the device sent no video frames".into()),
        ));
    }
    Ok(())
}
