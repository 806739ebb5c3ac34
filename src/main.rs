//! The `peercam` binary: the command line and what each command does. The daemon itself is
//! `peercam::daemon` (bound here, fed the signals, run until it stops); `peercam probe` is
//! `peercam::probe::cli`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use peercam::config::Config;
use peercam::media::{self, Strictness};
use peercam::tokens::ViewerTokens;
use peercam::{daemon, state_file};

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
    Probe(peercam::probe::cli::ProbeArgs),
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
        Some(Command::Probe(ref args)) => peercam::probe::cli::run(args).map_err(Into::into),
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
        .unwrap_or_else(state_file::default_dir))
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
    let state_dir = cli
        .state_dir
        .clone()
        .or_else(|| config.state_dir.clone())
        .unwrap_or_else(state_file::default_dir);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let stop = runtime.block_on(async {
        let listeners = daemon::Listeners::bind(&config).await?;
        let commands =
            daemon::signals::commands(cli.config.clone()).context("cannot handle signals")?;
        anyhow::Ok(daemon::run(config, listeners, state_dir, commands).await?)
    })?;
    if stop == daemon::Stop::MediaStillStopping {
        // The media owner is still inside a blocking GStreamer call. Dropping the runtime
        // would wait for it (past the unit's stop timeout) and then let it resume on timers
        // that are gone, a panic. The process ends here instead; the kernel closes the
        // sockets and devices.
        std::mem::forget(runtime);
    }
    Ok(())
}
