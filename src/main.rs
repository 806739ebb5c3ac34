//! The `peercam` binary: parse the command line, set up logging, wire the parts together, and
//! run until the first long-running part ends or a signal arrives.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tokio::sync::{mpsc, oneshot};

use std::io::IsTerminal;

use peercam::auth::{Auth, AuthSettings};
use peercam::config::{AuthMode, Config};
use peercam::media::{self, MediaSettings, Strictness};
use peercam::metrics::Metrics;
use peercam::rooms::{self, RoomLimits, RoomStatus, RoomsHandle};
use peercam::system::{self, Notifier};
use peercam::tokens::ViewerTokens;
use peercam::turn::{IcePlan, SharedIcePlan};
use peercam::web::{self, AppState, serve};
use peercam::{host, stun, tls};

/// Where the state directory is on the board, when it is writable.
const SYSTEM_STATE_DIR: &str = "/var/lib/peercam";

#[derive(Parser)]
#[command(
    version,
    about = "Camera appliance daemon: call the device from a browser"
)]
struct Cli {
    /// Configuration file (TOML). Without it, built-in defaults are used.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Where the generated certificate is kept [default: /var/lib/peercam when writable, else
    /// $XDG_STATE_HOME/peercam].
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Check a configuration file and exit: non-zero, naming the field and line, when it is bad.
    CheckConfig {
        /// The file to check.
        path: PathBuf,
        /// Check launch lines for syntax only: elements this machine lacks (a board's camera or
        /// encoder, say) are listed instead of refused.
        #[arg(long)]
        syntax_only: bool,
    },
    /// Set the owner's password (read from standard input) and end every open session.
    SetPassword,
    /// Viewer tokens for WHEP players (go2rtc, Home Assistant) and `/snapshot.jpg`.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Call a device as a browser would and report time to first frame, fps, bitrate, loss and
    /// jitter. Exits non-zero when it does not answer or sends no frames in time.
    #[cfg(feature = "probe")]
    Probe(ProbeArgs),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a token named NAME and print it (the only time it is shown; only its hash is kept).
    Create { name: String },
    /// End the token named NAME: the next request with it is refused.
    Revoke { name: String },
    /// List the tokens' names.
    List,
}

#[cfg(feature = "probe")]
#[derive(clap::Args)]
struct ProbeArgs {
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
    srtp: peercam::probe::SrtpOffer,
    /// Take video only: answer the device's audio as inactive (with --whep, offer no audio).
    #[arg(long)]
    video_only: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::CheckConfig {
            ref path,
            syntax_only,
        }) => check_config(path, syntax_only),
        Some(Command::SetPassword) => set_password(&cli),
        Some(Command::Token(ref command)) => token(&cli, command),
        #[cfg(feature = "probe")]
        Some(Command::Probe(ref args)) => probe(args),
        None => run_daemon(&cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peercam: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: &Path, syntax_only: bool) -> Result<()> {
    let config = Config::load(path)?;
    if syntax_only {
        media::init_gstreamer()?;
        let missing = media::validate_launch_lines(&config.media, Strictness::SyntaxOnly)?;
        if missing.is_empty() {
            println!("{}: OK (syntax)", path.display());
        } else {
            println!(
                "{}: OK (syntax; not on this machine: {})",
                path.display(),
                missing.join(", ")
            );
        }
        return Ok(());
    }
    media::init()?;
    media::validate_launch_lines(&config.media, Strictness::Elements)?;
    println!("{}: OK", path.display());
    Ok(())
}

#[cfg(feature = "probe")]
fn probe(args: &ProbeArgs) -> Result<()> {
    use peercam::probe::{self, ProbeOptions, Trust};
    // webrtc-rs warns about routine ICE events; its errors and our warnings are what matter.
    env_logger::Builder::new()
        .parse_filters(
            &std::env::var("RUST_LOG")
                .unwrap_or_else(|_| "warn,rtc=error,rtc_ice=error,rtc_dtls=error".into()),
        )
        .init();
    let trust = match (
        &args.fingerprint,
        args.insecure || args.janus_stream.is_some(),
    ) {
        (Some(fingerprint), _) => Trust::Pinned(fingerprint.clone()),
        (None, true) => Trust::Anything,
        (None, false) => anyhow::bail!(
            "give the device's certificate fingerprint with --fingerprint (it prints it when it \
             starts), or --insecure to accept any certificate"
        ),
    };
    let password = match &args.password_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the password from {}", path.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        ),
        None => std::env::var("PEERCAM_PASSWORD").ok(),
    };
    let seconds = |value: f64, name: &str| {
        Duration::try_from_secs_f64(value)
            .with_context(|| format!("--{name} must be a number of seconds, not {value}"))
    };
    let options = ProbeOptions {
        url: args.url.clone(),
        trust,
        password,
        calls: args.calls,
        duration: seconds(args.duration, "duration")?,
        timeout: seconds(args.timeout, "timeout")?,
        codecs: args.codecs.clone(),
        janus_stream: args.janus_stream,
        whep_token: args
            .whep
            .then(|| std::env::var("PEERCAM_TOKEN").unwrap_or_default()),
        srtp: args.srtp,
        video_only: args.video_only,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(probe::run(&options))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.human());
    }
    if !report.healthy() {
        anyhow::bail!(
            "{}",
            report
                .failure
                .as_deref()
                .unwrap_or("the device sent no video frames")
        );
    }
    Ok(())
}

/// The state directory: `--state-dir`, else the config's, else the default.
fn state_dir_of(cli: &Cli) -> Result<PathBuf> {
    let config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    Ok(cli
        .state_dir
        .clone()
        .or(config.state_dir)
        .unwrap_or_else(default_state_dir))
}

fn token(cli: &Cli, command: &TokenCommand) -> Result<()> {
    let state_dir = state_dir_of(cli)?;
    let tokens = ViewerTokens::new(&state_dir);
    match command {
        TokenCommand::Create { name } => {
            let token = tokens.create(name)?;
            eprintln!(
                "Viewer token `{name}` made (kept hashed in {}); it is shown only now:",
                state_dir.display()
            );
            println!("{token}");
        }
        TokenCommand::Revoke { name } => {
            tokens.revoke(name)?;
            println!("Viewer token `{name}` revoked; it is refused from now on.");
        }
        TokenCommand::List => {
            for stored in tokens.list()? {
                println!("{}", stored.name);
            }
        }
    }
    Ok(())
}

fn set_password(cli: &Cli) -> Result<()> {
    let state_dir = state_dir_of(cli)?;
    if std::io::stdin().is_terminal() {
        eprint!("New password for peercam (at least 8 characters): ");
    }
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("cannot read the password from standard input")?;
    peercam::auth::set_password(&state_dir, password.trim_end_matches(['\r', '\n']))?;
    println!(
        "Password set in {}; open sessions end now.",
        state_dir.display()
    );
    Ok(())
}

fn run_daemon(cli: &Cli) -> Result<()> {
    peercam::memory::tune_allocator();
    let config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    peercam::logging::init(config.log_level.as_deref());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let stop = runtime.block_on(serve_forever(
        config,
        cli.config.clone(),
        cli.state_dir.clone(),
    ))?;
    if stop == Stop::MediaStillStopping {
        // The media owner is still inside a blocking GStreamer call. Dropping the runtime
        // would wait for it (past the unit's stop timeout) and then let it resume on timers
        // that are gone, a panic. The process ends here instead; the kernel closes the
        // sockets and devices.
        std::mem::forget(runtime);
    }
    Ok(())
}

/// How a clean stop ended.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    /// Every caller was told and the media owner stopped the pipeline and returned.
    Clean,
    /// The media owner did not stop within the grace period; the process exits anyway.
    MediaStillStopping,
}

/// The daemon: media checked, listeners bound, the owners started, the web side
/// wired to them; then it runs until a part stops or a signal says so.
async fn serve_forever(
    config: Config,
    config_path: Option<PathBuf>,
    state_dir: Option<PathBuf>,
) -> Result<Stop> {
    let state_dir = state_dir
        .or_else(|| config.state_dir.clone())
        .unwrap_or_else(default_state_dir);
    media::init()?;
    media::validate_launch_lines(&config.media, Strictness::Elements)?;
    let settings = MediaSettings::resolve(&config.media, &config.ice);
    let metrics = Arc::new(Metrics::default());

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
    let fingerprint = certificate.fingerprint.clone();
    let auth = authentication(&config, &certificates.state_dir)?;
    let tls = Arc::new(tls::SharedTls::new(certificate.config));
    let listeners = Listeners::bind(&config).await?;
    let ice = Arc::new(SharedIcePlan::new(Arc::new(IcePlan::from_config(
        &config,
        listeners.stun_port,
    ))));
    let notifier = Arc::new(Notifier::from_env());
    let (owners, warmed_up) = Owners::start(&config, settings, &ice, &metrics, &notifier);

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
    };
    tokio::spawn(web::access::watch(state.clone(), web::access::PERIOD));
    let router = web::router(state);
    let https_port = listeners.https_port;
    let stun_port = listeners.stun_port;
    let served = listeners.serve(&config, router, Arc::clone(&tls), &metrics)?;
    wait_for_warm_up(warmed_up).await;
    announce(&host_name, &addresses, https_port, &fingerprint);
    if let Some(code) = auth.as_ref().and_then(|a| a.pairing_code()) {
        announce_pairing(&host::page_urls(&host_name, &addresses, https_port), code);
    }
    notifier.ready();

    let live = Live {
        ice: &ice,
        stun_port,
        tls: &tls,
        certificates: &certificates,
    };
    run_until_stopped(
        served,
        owners,
        &live,
        config_path.as_deref(),
        &metrics,
        &notifier,
    )
    .await
}

/// The owner's password (or pairing code) and sessions; `None` with `auth = "none"`.
fn authentication(config: &Config, state_dir: &Path) -> Result<Option<Arc<Auth>>> {
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

/// The sockets, bound before anything is announced so a port in use stops the start.
struct Listeners {
    https: tokio::net::TcpListener,
    https_port: u16,
    redirect: Option<tokio::net::TcpListener>,
    stun: Option<std::net::UdpSocket>,
    stun_port: Option<u16>,
}

impl Listeners {
    async fn bind(config: &Config) -> Result<Self> {
        let https = serve::bind(SocketAddr::new(config.http.bind, config.http.https_port))
            .await
            .with_context(|| {
                format!("cannot listen for HTTPS on port {}", config.http.https_port)
            })?;
        let https_port = https.local_addr()?.port();
        let redirect = if config.http.redirect {
            let listener = serve::bind(SocketAddr::new(config.http.bind, config.http.http_port))
                .await
                .with_context(|| {
                    format!("cannot listen for HTTP on port {}", config.http.http_port)
                })?;
            Some(listener)
        } else {
            None
        };
        let stun = if config.stun.enabled {
            let socket = stun::bind(config.stun.bind, config.stun.port).with_context(|| {
                format!("cannot listen for STUN on UDP port {}", config.stun.port)
            })?;
            Some(socket)
        } else {
            log::info!("STUN responder off (stun.enabled = false)");
            None
        };
        let stun_port = stun
            .as_ref()
            .and_then(|s| s.local_addr().ok())
            .map(|a| a.port());
        if let Some(port) = stun_port {
            log::info!("STUN responder on UDP port {port}");
        }
        Ok(Self {
            https,
            https_port,
            redirect,
            stun,
            stun_port,
        })
    }

    /// Starts serving on every socket; each future ends only when its part stops.
    fn serve(
        self,
        config: &Config,
        router: axum::Router,
        tls: Arc<tls::SharedTls>,
        metrics: &Arc<Metrics>,
    ) -> Result<Served> {
        let stun_stopped = match self.stun {
            Some(socket) => Some(
                stun::spawn(
                    socket,
                    config.stun.rate_per_second,
                    config.stun.burst,
                    Arc::clone(metrics),
                )
                .context("cannot start the STUN responder")?,
            ),
            None => None,
        };
        let stun = async move {
            match stun_stopped {
                Some(stopped) => {
                    let _ = stopped.await;
                }
                None => std::future::pending().await,
            }
        };
        let limit = peercam::descriptors::raise_limit();
        let max_connections = config
            .http
            .max_connections
            .unwrap_or_else(|| peercam::descriptors::connection_budget(limit));
        log::info!(
            "up to {max_connections} connections at once ({} per address) under a limit of \
             {limit} file descriptors",
            config.http.connections_per_address
        );
        let limits = serve::ConnectionLimits {
            budget: web::limits::ConnectionBudget::new(
                max_connections,
                config.http.connections_per_address,
            ),
            handshake_timeout: Duration::from_secs(config.http.handshake_timeout_seconds),
            header_read_timeout: Duration::from_secs(config.http.header_read_timeout_seconds),
            idle_timeout: Duration::from_secs(config.http.idle_timeout_seconds),
        };
        let https = serve::https(
            self.https,
            tls,
            router,
            limits.clone(),
            std::future::pending(),
        );
        let https_port = self.https_port;
        let redirect_listener = self.redirect;
        let redirect = async move {
            match redirect_listener {
                Some(listener) => {
                    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
                    log::info!("HTTP on port {port} redirects to HTTPS");
                    serve::redirect(listener, https_port, limits, std::future::pending()).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::spawn(peercam::refusals::flush_every(Duration::from_secs(1)));
        Ok(Served {
            https: Box::pin(https),
            redirect: Box::pin(redirect),
            stun: Box::pin(stun),
        })
    }
}

/// The listeners at work.
struct Served {
    https: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    redirect: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    stun: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// The two owners (rooms and media), the channels between them, and the handles the web side
/// uses to reach them.
struct Owners {
    rooms_task: tokio::task::JoinHandle<()>,
    media_task: tokio::task::JoinHandle<()>,
    rooms: RoomsHandle,
    media: mpsc::UnboundedSender<peercam::media_link::MediaCommand>,
    status: Arc<RoomStatus>,
}

impl Owners {
    fn start(
        config: &Config,
        settings: MediaSettings,
        ice: &Arc<SharedIcePlan>,
        metrics: &Arc<Metrics>,
        notifier: &Arc<Notifier>,
    ) -> (Self, oneshot::Receiver<()>) {
        let (connections_tx, connections_rx) = mpsc::channel(256);
        let (warmed_up_tx, warmed_up) = oneshot::channel();
        let (media_tx, media_rx) = mpsc::unbounded_channel();
        let (room_input_tx, room_input_rx) = mpsc::unbounded_channel();
        let (health_tx, health_rx) = mpsc::unbounded_channel();
        let status = Arc::new(RoomStatus::default());
        let rooms_task = tokio::spawn(rooms::run(
            connections_rx,
            room_input_rx,
            health_rx,
            media_tx.clone(),
            RoomLimits {
                rooms_per_address: config.rooms.rooms_per_address,
                members_per_address: config.rooms.members_per_address,
                total_rooms: config.rooms.total_rooms,
            },
            rooms::Shared {
                ice: Arc::clone(ice),
                status: Arc::clone(&status),
                metrics: Arc::clone(metrics),
                notifier: Arc::clone(notifier),
            },
        ));
        let media_task = tokio::spawn(media::run(
            settings,
            config.watchers.max,
            media::Channels {
                commands: media_rx,
                room: room_input_tx,
                health: health_tx,
                warmed_up: warmed_up_tx,
            },
            Arc::clone(metrics),
        ));
        let owners = Self {
            rooms_task,
            media_task,
            rooms: RoomsHandle {
                connections: connections_tx,
            },
            media: media_tx,
            status,
        };
        (owners, warmed_up)
    }
}

/// The longest the daemon waits for the media rehearsal before it says it is ready. The
/// listeners are up meanwhile (a call waits in the media owner's queue); the limit keeps
/// READY well inside the unit's 30 s start timeout on a slow board.
const WARM_UP_LIMIT: Duration = Duration::from_secs(5);

/// Waits until the media owner's start-up rehearsal is over, so the first call after
/// "ready" is as fast as any other, or `WARM_UP_LIMIT` passed.
async fn wait_for_warm_up(warmed_up: oneshot::Receiver<()>) {
    if tokio::time::timeout(WARM_UP_LIMIT, warmed_up)
        .await
        .is_err()
    {
        log::warn!(
            "the media rehearsal is still running after {} s; ready anyway (a call waits for it)",
            WARM_UP_LIMIT.as_secs()
        );
    }
}

/// Runs until a part stops (an error) or SIGTERM/SIGINT (a clean stop: every caller is told
/// and the media stopped); reloads on SIGHUP and pets the watchdog meanwhile.
async fn run_until_stopped(
    mut served: Served,
    mut owners: Owners,
    live: &Live<'_>,
    config_path: Option<&Path>,
    metrics: &Metrics,
    notifier: &Notifier,
) -> Result<Stop> {
    let mut signals = Signals::new()?;
    let mut watchdog = Watchdog::new(system::watchdog_interval());
    loop {
        tokio::select! {
            () = &mut served.https => anyhow::bail!("the HTTPS listener stopped"),
            () = &mut served.redirect => anyhow::bail!("the HTTP redirect listener stopped"),
            _ = &mut owners.rooms_task => anyhow::bail!("the room owner stopped"),
            _ = &mut owners.media_task => anyhow::bail!("the media owner stopped"),
            () = &mut served.stun => anyhow::bail!("the STUN responder stopped"),
            () = watchdog.tick() => {
                let connected = metrics.media_connected.load(Ordering::Relaxed);
                let packets = metrics.video_packets_sent.load(Ordering::Relaxed);
                if watchdog.healthy(connected, packets) {
                    notifier.watchdog();
                } else {
                    log::warn!("media connected but no video is flowing; not petting the watchdog");
                }
            }
            _ = signals.hup.recv() => reload(config_path, live),
            _ = signals.term.recv() => {
                log::info!("SIGTERM: hanging up and shutting down");
                break;
            }
            _ = signals.int.recv() => {
                log::info!("SIGINT: hanging up and shutting down");
                break;
            }
        }
    }
    notifier.stopping();
    Ok(shut_down(&owners.rooms).await)
}

/// What a reload may change in the running daemon.
struct Live<'a> {
    ice: &'a SharedIcePlan,
    stun_port: Option<u16>,
    tls: &'a tls::SharedTls,
    certificates: &'a tls::CertificateStore,
}

/// SIGHUP: reads the config again and applies what can change without a restart (ICE servers
/// and TURN credentials, the certificate, the log level). A bad file or certificate is reported
/// and the running one kept.
fn reload(path: Option<&Path>, live: &Live<'_>) {
    let Some(path) = path else {
        log::info!("SIGHUP: no config file to reload (started without --config)");
        return;
    };
    match Config::load(path) {
        Ok(config) => {
            live.ice
                .replace(Arc::new(IcePlan::from_config(&config, live.stun_port)));
            match live.certificates.load(&config.http) {
                Ok(certificate) => {
                    live.tls.replace(certificate.config);
                    log::info!(
                        "SIGHUP: certificate {}, SHA-256 fingerprint {}",
                        certificate.origin,
                        certificate.fingerprint
                    );
                }
                Err(e) => log::error!("SIGHUP: kept the running certificate: {e}"),
            }
            if std::env::var_os("RUST_LOG").is_none()
                && let Some(level) = config.log_level.as_deref().and_then(|l| l.parse().ok())
            {
                log::set_max_level(level);
            }
            log::info!(
                "SIGHUP: reloaded {} (ICE servers, certificate, log level; port and media \
                 changes need a restart)",
                path.display()
            );
        }
        Err(e) => log::error!("SIGHUP: kept the running config: {e}"),
    }
}

/// SIGTERM: says bye to every caller, stops the pipeline, and gives the sockets a moment to
/// deliver the goodbyes; all within well under systemd's stop timeout.
async fn shut_down(rooms: &RoomsHandle) -> Stop {
    let (done, stopped) = tokio::sync::oneshot::channel();
    let mut stop = Stop::Clean;
    if rooms
        .connections
        .send(rooms::ConnectionEvent::Shutdown { done })
        .await
        .is_ok()
        && tokio::time::timeout(Duration::from_millis(1500), stopped)
            .await
            .is_err()
    {
        log::warn!("media did not stop within 1.5 s; exiting anyway");
        stop = Stop::MediaStillStopping;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop
}

/// The signals the daemon acts on.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            hup: signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
        })
    }
}

/// Pets systemd's watchdog from the main loop, and while media is connected only while video
/// flows.
struct Watchdog {
    interval: Option<tokio::time::Interval>,
    last_packets: u64,
}

impl Watchdog {
    fn new(period: Option<Duration>) -> Self {
        Self {
            interval: period.map(tokio::time::interval),
            last_packets: 0,
        }
    }

    async fn tick(&mut self) {
        match &mut self.interval {
            Some(interval) => {
                interval.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    /// Alive when no peer's media is connected, or with video packets sent since the last
    /// tick.
    fn healthy(&mut self, connected: bool, packets: u64) -> bool {
        let flowing = packets != self.last_packets;
        self.last_packets = packets;
        !connected || flowing
    }
}

/// No password is set yet: the pairing link, logged once and shown as a QR code on a terminal
/// so a phone can scan it.
fn announce_pairing(urls: &[String], code: &str) {
    let Some(base) = urls.first() else {
        return;
    };
    let link = format!("{base}login?code={code}");
    log::warn!("no password set (run `peercam set-password`); pairing link: {link}");
    if std::io::stdout().is_terminal()
        && let Ok(qr) = qrcode::QrCode::new(link.as_bytes())
    {
        let picture = qr
            .render::<qrcode::render::unicode::Dense1x2>()
            .quiet_zone(true)
            .build();
        println!("Scan to pair this phone (or open {link}):\n{picture}");
    }
}

/// Tells the person who started the daemon where to point a browser.
fn announce(host_name: &str, addresses: &[std::net::IpAddr], port: u16, fingerprint: &str) {
    let urls = host::page_urls(host_name, addresses, port);
    log::info!("ready on HTTPS port {port}");
    println!(
        "peercam is ready. Open one of these in a browser, log in, and press \"Call device\":"
    );
    for url in urls {
        println!("  {url}");
    }
    println!("(The certificate is self-signed: accept the browser's warning once. Its SHA-256");
    println!(" fingerprint, to compare with what the browser shows: {fingerprint})");
}

/// `/var/lib/peercam` when it exists or can be made and is writable, else a per-user directory.
fn default_state_dir() -> PathBuf {
    let system = PathBuf::from(SYSTEM_STATE_DIR);
    if std::fs::create_dir_all(&system).is_ok() && is_writable(&system) {
        return system;
    }
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("peercam")
}

fn is_writable(dir: &Path) -> bool {
    let probe = dir.join(".write-test");
    let writable = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(probe);
    writable
}
