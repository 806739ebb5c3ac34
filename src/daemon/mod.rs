//! The daemon itself: media checked, the certificate and the owner's password loaded, the
//! owners started, the web side wired to them, the listeners served; then it runs until a part
//! stops, or a `Command` says stop (after every caller is told) or reload.
//!
//! `run` takes listeners already bound (`Listeners::bind`; port 0 works) and a channel of
//! commands, so the binary feeds it signals (`signals::commands`) and a test can run the whole
//! daemon in-process.
//!
//! - `listeners`: the sockets and the connection budget they share.
//! - `owners`: the room and media owners, their channels, their orderly stop.
//! - `reload`: what SIGHUP may change while running.
//! - `announce`: where to point a browser, the pairing link.
//! - `control`: the commands the daemon takes, how it stopped, why it failed.
//! - `signals`: SIGHUP, SIGTERM and SIGINT as commands.
//!
//! A new listener (port mapping, an RTSP server) is bound in `listeners` and served beside the
//! others; a new owner is started in `owners` and reached through a handle in `AppState`.

mod announce;
mod control;
mod listeners;
mod owners;
mod reload;
pub mod signals;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

pub use control::{Command, DaemonError, Stop};
pub use listeners::Listeners;

use crate::auth::{Auth, AuthSettings};
use crate::config::{self, AuthMode, Config};
use crate::host;
use crate::media::{self, MediaSettings, Strictness};
use crate::metrics::Metrics;
use crate::port_mapping;
use crate::reachability::Reachability;
use crate::rtsp::{self, RtspServer};
use crate::system::{self, Notifier, Watchdog};
use crate::tokens::ViewerTokens;
use crate::turn::{IcePlan, SharedIcePlan};
use crate::web::{self, AppState};
use crate::{mqtt, refusals, tls};

/// Runs the daemon on `listeners` until a part stops (an error) or `commands` says stop (or
/// closes). `state_dir` holds the certificate, the password's hash and the viewer tokens.
pub async fn run(
    config: Config,
    listeners: Listeners,
    state_dir: PathBuf,
    commands: mpsc::Receiver<Command>,
) -> Result<Stop, DaemonError> {
    media::init()?;
    media::validate_launch_lines(&config.media, Strictness::Elements)?;
    let (reachability, reached) = watch::channel(Reachability {
        port_mapping: config.remote.port_mapping,
        ..Reachability::default()
    });
    let settings =
        MediaSettings::resolve(&config.media, &config.ice, &config.remote, reached.clone());
    let has_audio = settings.audio_source.is_some();
    let metrics = Arc::new(Metrics::default());
    let talk = rtsp::server::Talk {
        speaker: Arc::clone(&settings.speaker),
        metrics: Arc::clone(&metrics),
    };

    let host_name = host::host_name();
    let addresses = host::addresses();
    let certificates = tls::CertificateStore {
        state_dir,
        host_name: host_name.clone(),
        addresses: addresses.clone(),
    };
    let certificate = certificates.load(&config.http)?;
    log::info!("certificate: {}", certificate.origin);
    log::info!(
        "certificate SHA-256 fingerprint: {}",
        certificate.fingerprint
    );
    let auth = authentication(&config, &certificates.state_dir)?;
    let tls = Arc::new(tls::SharedTls::new(certificate.config));
    let https_port = listeners.https_port();
    let stun_port = listeners.stun_port();
    let ice = Arc::new(SharedIcePlan::new(Arc::new(IcePlan::from_config(
        &config, stun_port,
    ))));
    let notifier = Arc::new(Notifier::from_env());
    let port_mapping = config
        .remote
        .media_port_range()
        .filter(|_| config.remote.port_mapping)
        .map(|media_ports| owners::PortMapping {
            plan: port_mapping::Plan {
                https_port,
                stun_port,
                media_ports,
                lease: Duration::from_secs(config.remote.lease_seconds),
            },
            state: reachability,
        });
    let (owners, warmed_up) = owners::Owners::start(
        &config,
        settings,
        &owners::Shared {
            ice: &ice,
            metrics: &metrics,
            notifier: &notifier,
        },
        port_mapping,
    );

    // With `[recording] enabled`: its settings, directory and status.
    let recordings = config.recording.enabled.then(|| {
        let root = if config.recording.path.as_os_str().is_empty() {
            certificates.state_dir.join("recordings")
        } else {
            config.recording.path.clone()
        };
        (
            config.recording.clone(),
            root,
            Arc::new(crate::recording::RecordingStatus::default()),
        )
    });
    let state = AppState {
        rooms: owners.rooms.clone(),
        metrics: Arc::clone(&metrics),
        status: Arc::clone(&owners.status),
        max_message_bytes: config.signaling.max_message_bytes,
        next_conn: Arc::default(),
        ice: Arc::clone(&ice),
        websocket_idle_timeout: Duration::from_secs(config.http.websocket_idle_timeout_seconds),
        auth: auth.clone(),
        tokens: auth
            .as_ref()
            .map(|_| Arc::new(ViewerTokens::new(&certificates.state_dir))),
        open_rooms: config.login.open_rooms,
        media: owners.media.clone(),
        login_checks: AppState::login_checks(),
        snapshots: Arc::default(),
        reachability: reached.clone(),
        polls: Arc::default(),
        motion: config.motion.enabled.then(|| owners.motion.clone()),
        recordings: recordings
            .as_ref()
            .map(|(_, root, status)| crate::recording::Recordings {
                root: root.clone(),
                status: Arc::clone(status),
            }),
    };
    // Tasks that end with the daemon: aborted when `run` returns, so a daemon run in-process
    // leaves none behind.
    let mut background = vec![
        tokio::spawn(web::access::watch(state.clone(), web::access::PERIOD)),
        tokio::spawn(refusals::flush_every(Duration::from_secs(1))),
        tokio::spawn(web::signal_poll::close_idle(state.clone())),
    ];
    // Checked with the rest of the config: the broker is well formed here.
    if let Ok(Some(broker)) = config.mqtt.broker_address() {
        let moving = Arc::clone(&metrics);
        background.push(tokio::spawn(mqtt::run(
            config.mqtt.clone(),
            broker,
            host_name.clone(),
            owners.motion.subscribe(),
            move || moving.motion.load(std::sync::atomic::Ordering::Relaxed) == 1,
        )));
    }
    if let Some((recording, root, status)) = recordings.clone() {
        let motion =
            (recording.mode == config::RecordingMode::Motion).then(|| owners.motion.subscribe());
        background.push(tokio::spawn(crate::recording::run(
            recording,
            root,
            has_audio,
            owners.feeds.clone(),
            motion,
            owners.media.clone(),
            status,
        )));
    }
    let _background = Background(background);
    let served = listeners.serve(&config, web::router(state), Arc::clone(&tls), &metrics)?;
    // Kept for the daemon's life: it stops listening when dropped.
    let _rtsp = start_rtsp(&config, has_audio, &certificates.state_dir, &owners, talk)?;
    let ((), outside) = tokio::join!(
        owners::wait_for_warm_up(warmed_up),
        announce::first_reachability(reached)
    );
    announce::ready(&host_name, &addresses, https_port, &certificate.fingerprint);
    announce::outside(&outside);
    if let Some(code) = auth.as_ref().and_then(|a| a.pairing_code()) {
        announce::pairing(&host::page_urls(&host_name, &addresses, https_port), code);
    }
    notifier.ready();

    let live = reload::Live {
        ice: &ice,
        stun_port,
        tls: &tls,
        certificates: &certificates,
    };
    let running = Running {
        served,
        owners,
        metrics: &metrics,
        notifier: &notifier,
    };
    running.until_stopped(&live, commands).await
}

/// The RTSP server, with `[rtsp] enabled`: Digest logins from the state directory, or none
/// with `auth = "none"`.
fn start_rtsp(
    config: &Config,
    has_audio: bool,
    state_dir: &std::path::Path,
    owners: &owners::Owners,
    talk: rtsp::server::Talk,
) -> Result<Option<RtspServer>, DaemonError> {
    if !config.rtsp.enabled {
        return Ok(None);
    }
    let access = match config.auth {
        AuthMode::Password => rtsp::server::Access::Digest {
            file: state_dir.join(rtsp::digest::FILE),
        },
        AuthMode::None => rtsp::server::Access::Open,
    };
    let server = RtspServer::start(&config.rtsp, has_audio, access, owners.feeds.clone(), talk)?;
    Ok(Some(server))
}

/// Tasks aborted when dropped.
struct Background(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The daemon at work: its long-running parts and what the loop reads.
struct Running<'a> {
    served: listeners::Served,
    owners: owners::Owners,
    metrics: &'a Metrics,
    notifier: &'a Notifier,
}

impl Running<'_> {
    /// Runs until a part stops (an error) or a command says stop (every caller told, the
    /// media stopped); reloads when told and pets the watchdog meanwhile.
    async fn until_stopped(
        self,
        live: &reload::Live<'_>,
        mut commands: mpsc::Receiver<Command>,
    ) -> Result<Stop, DaemonError> {
        let Self {
            mut served,
            mut owners,
            metrics,
            notifier,
        } = self;
        let mut watchdog = Watchdog::new(system::watchdog_interval());
        loop {
            tokio::select! {
                () = &mut served.https => return Err(DaemonError::PartStopped("HTTPS listener")),
                () = &mut served.redirect => {
                    return Err(DaemonError::PartStopped("HTTP redirect listener"));
                }
                _ = &mut owners.rooms_task => return Err(DaemonError::PartStopped("room owner")),
                _ = &mut owners.media_task => return Err(DaemonError::PartStopped("media owner")),
                () = &mut served.stun => return Err(DaemonError::PartStopped("STUN responder")),
                () = watchdog.tick() => {
                    let connected = metrics.media_connected.load(Ordering::Relaxed);
                    let packets = metrics.video_packets_sent.load(Ordering::Relaxed);
                    if watchdog.healthy(connected, packets) {
                        notifier.watchdog();
                    } else {
                        log::warn!(
                            "media connected but no video is flowing; not petting the watchdog"
                        );
                    }
                }
                command = commands.recv() => match command {
                    Some(Command::Reload { from }) => reload::reload(from.as_deref(), live),
                    Some(Command::Stop { why }) => {
                        log::info!("{why}: hanging up and shutting down");
                        break;
                    }
                    None => {
                        log::info!("told to stop: hanging up and shutting down");
                        break;
                    }
                },
            }
        }
        notifier.stopping();
        Ok(owners.shut_down().await)
    }
}

/// The owner's password (or pairing code) and sessions; `None` with `auth = "none"`.
fn authentication(config: &Config, state_dir: &Path) -> Result<Option<Arc<Auth>>, DaemonError> {
    Ok(match config.auth {
        AuthMode::None => {
            log::warn!(
                "auth = \"none\": anyone who can reach this device can watch and listen; \
                 use it on a lab bench only"
            );
            None
        }
        AuthMode::Password => Some(Arc::new(Auth::new(AuthSettings {
            state_dir: state_dir.to_owned(),
            session_lifetime: Duration::from_secs(config.login.session_hours * 3600),
            max_failures: config.login.max_failures,
            failure_window: Duration::from_secs(config.login.failure_window_seconds),
            pairing_lifetime: Duration::from_secs(config.login.pairing_minutes * 60),
        })?)),
    })
}
