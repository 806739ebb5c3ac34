//! The signals the daemon acts on, turned into `Command`s: SIGHUP reloads the config file,
//! SIGTERM and SIGINT stop the daemon cleanly. The binary installs them; a test that runs the
//! daemon in-process sends the commands itself.

use std::path::PathBuf;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::control::Command;

/// Installs the handlers and forwards each signal as a command; a reload reads `config_path`.
/// Must be called inside the runtime.
pub fn commands(config_path: Option<PathBuf>) -> std::io::Result<mpsc::Receiver<Command>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let (commands, received) = mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let command = tokio::select! {
                _ = hup.recv() => Command::Reload { from: config_path.clone() },
                _ = term.recv() => Command::Stop { why: "SIGTERM" },
                _ = int.recv() => Command::Stop { why: "SIGINT" },
            };
            if commands.send(command).await.is_err() {
                break;
            }
        }
    });
    Ok(received)
}
