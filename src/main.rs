//! The `peercam` binary: parse the command line, set up logging, wire the parts together, and
//! run until the first long-running part ends or a signal arrives.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tokio::sync::mpsc;

use peercam::config::Config;
use peercam::media::{self, MediaSettings};
use peercam::metrics::Metrics;
use peercam::rooms::{self, RoomLimits, RoomStatus, RoomsHandle};
use peercam::turn::IcePlan;
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
    #[arg(long)]
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
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::CheckConfig { ref path }) => check_config(path),
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

fn check_config(path: &Path) -> Result<()> {
    Config::load(path)?;
    println!("{}: OK", path.display());
    Ok(())
}

fn run_daemon(cli: &Cli) -> Result<()> {
    peercam::memory::tune_allocator();
    let config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    init_logging(config.log_level.as_deref());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve_forever(config, cli.state_dir.clone()))
}

fn init_logging(level: Option<&str>) {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(log::LevelFilter::Info);
    if let Some(level) = level.and_then(|l| l.parse().ok()) {
        builder.filter_level(level);
    }
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    builder.init();
}

async fn serve_forever(config: Config, state_dir: Option<PathBuf>) -> Result<()> {
    let state_dir = state_dir
        .or_else(|| config.state_dir.clone())
        .unwrap_or_else(default_state_dir);
    media::init()?;
    let settings = MediaSettings::resolve(&config.media, &config.ice);
    let metrics = Arc::new(Metrics::default());
    let warm_up = tokio::task::spawn_blocking({
        let settings = settings.clone();
        move || media::warm_up(&settings)
    });

    let host_name = host::host_name();
    let addresses = host::addresses();
    let configured_cert = config
        .http
        .certificate
        .as_deref()
        .zip(config.http.private_key.as_deref());
    let certificate = tls::load_or_create(configured_cert, &state_dir, &host_name, &addresses)?;
    log::info!("certificate: {}", certificate.origin);

    let https_listener = serve::bind(SocketAddr::new(config.http.bind, config.http.https_port))
        .await
        .with_context(|| format!("cannot listen for HTTPS on port {}", config.http.https_port))?;
    let https_port = https_listener.local_addr()?.port();
    let redirect_listener = if config.http.redirect {
        let listener = serve::bind(SocketAddr::new(config.http.bind, config.http.http_port))
            .await
            .with_context(|| format!("cannot listen for HTTP on port {}", config.http.http_port))?;
        Some(listener)
    } else {
        None
    };

    let stun_socket = if config.stun.enabled {
        let socket = stun::bind(config.stun.bind, config.stun.port)
            .await
            .with_context(|| format!("cannot listen for STUN on UDP port {}", config.stun.port))?;
        Some(socket)
    } else {
        log::info!("STUN responder off (stun.enabled = false)");
        None
    };
    let stun_port = stun_socket
        .as_ref()
        .and_then(|s| s.local_addr().ok())
        .map(|a| a.port());
    if let Some(port) = stun_port {
        log::info!("STUN responder on UDP port {port}");
    }
    let ice = Arc::new(IcePlan::from_config(&config, stun_port));

    let (connections_tx, connections_rx) = mpsc::channel(256);
    let (media_tx, media_rx) = mpsc::unbounded_channel();
    let (room_input_tx, room_input_rx) = mpsc::unbounded_channel();
    let status = Arc::new(RoomStatus::default());
    let mut rooms_task = tokio::spawn(rooms::run(
        connections_rx,
        room_input_rx,
        media_tx,
        Arc::clone(&ice),
        RoomLimits {
            rooms_per_address: config.rooms.rooms_per_address,
            members_per_address: config.rooms.members_per_address,
            total_rooms: config.rooms.total_rooms,
        },
        Arc::clone(&status),
        Arc::clone(&metrics),
    ));
    let mut media_task = tokio::spawn(media::run(
        settings,
        media_rx,
        room_input_tx,
        Arc::clone(&metrics),
    ));
    let stun_metrics = Arc::clone(&metrics);
    let router = web::router(AppState {
        rooms: RoomsHandle {
            connections: connections_tx,
        },
        metrics,
        status,
        max_message_bytes: config.signaling.max_message_bytes,
        next_conn: Arc::default(),
        ice,
    });
    let stun = async move {
        match stun_socket {
            Some(socket) => {
                stun::serve(
                    socket,
                    config.stun.rate_per_second,
                    config.stun.burst,
                    stun_metrics,
                )
                .await;
            }
            None => std::future::pending().await,
        }
    };
    let https = serve::https(
        https_listener,
        certificate.config,
        router,
        std::future::pending(),
    );
    let redirect = async move {
        match redirect_listener {
            Some(listener) => {
                let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
                log::info!("HTTP on port {port} redirects to HTTPS");
                serve::redirect(listener, https_port, std::future::pending()).await
            }
            None => std::future::pending().await,
        }
    };
    if let Err(e) = warm_up.await {
        log::warn!("media warm-up did not finish: {e}");
    }
    announce(&host_name, &addresses, https_port);

    tokio::select! {
        () = https => anyhow::bail!("the HTTPS listener stopped"),
        result = redirect => {
            result.context("the HTTP redirect listener failed")?;
            anyhow::bail!("the HTTP redirect listener stopped")
        }
        _ = &mut rooms_task => anyhow::bail!("the room owner stopped"),
        _ = &mut media_task => anyhow::bail!("the media owner stopped"),
        () = stun => anyhow::bail!("the STUN responder stopped"),
        signal = shutdown_signal() => {
            log::info!("{signal}: shutting down");
            Ok(())
        }
    }
}

/// Tells the person who started the daemon where to point a browser.
fn announce(host_name: &str, addresses: &[std::net::IpAddr], port: u16) {
    let urls = host::page_urls(host_name, addresses, port);
    log::info!("ready on HTTPS port {port}");
    println!("peercam is ready. Open one of these in a browser and press \"Call device\":");
    for url in urls {
        println!("  {url}");
    }
    println!("(The certificate is self-signed: accept the browser's warning once.)");
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
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
