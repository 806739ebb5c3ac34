//! Shared harness for the Rust integration tests: runs the real `peercam` binary.
#![allow(dead_code)]

#[cfg(feature = "probe")]
pub mod client;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_peercam"))
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let unique = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("peercam-{name}-{}-{unique}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub fn write(&self, file: &str, contents: &str) -> PathBuf {
        let path = self.0.join(file);
        std::fs::write(&path, contents).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every file below `dir`, recursively (none when it cannot be read).
pub fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(files_under(&path));
            } else {
                files.push(path);
            }
        }
    }
    files
}

pub fn run(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .output()
        .expect("run peercam")
}

/// The daemon, started on loopback with free ports and `auth = "none"` (these tests are about
/// the network, not about logging in); killed on drop.
pub struct Daemon {
    child: Child,
    pub https_port: u16,
    pub http_port: u16,
    pub stun_port: u16,
    /// The certificate's SHA-256 fingerprint, as the daemon logged it.
    pub fingerprint: String,
    dir: TempDir,
    /// Every line the daemon printed (standard output and error), up to `OUTPUT_LINES_KEPT`.
    output: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// Lines of a daemon's output a test can look at.
const OUTPUT_LINES_KEPT: usize = 200_000;

impl Daemon {
    pub fn start(name: &str) -> Self {
        Self::start_with(name, "")
    }

    /// Starts the daemon with `extra` in its config: bare keys go into `[stun]`, lines under
    /// `[http]` join the harness's own `[http]` table, other tables are added as they are.
    pub fn start_with(name: &str, extra: &str) -> Self {
        Self::start_configured(name, "none", extra)
    }

    /// Like [`Daemon::start_with`], but the device asks for a password (`auth = "password"`).
    pub fn start_with_password(name: &str, extra: &str) -> Self {
        Self::start_configured(name, "password", extra)
    }

    fn start_configured(name: &str, auth: &str, extra: &str) -> Self {
        Self::start_limited(name, auth, extra, None)
    }

    /// Like the others, with `auth` ("none" or "password") and, with `nofile`, under that
    /// descriptor limit (soft and hard, by `prlimit`), as a unit without `LimitNOFILE` would.
    pub fn start_limited(name: &str, auth: &str, extra: &str, nofile: Option<u64>) -> Self {
        let dir = TempDir::new(name);
        let (mut http, mut rest) = (String::new(), String::new());
        let mut in_http = false;
        for line in extra.lines() {
            let header = line.trim();
            if header.starts_with('[') {
                in_http = header == "[http]";
                if in_http {
                    continue;
                }
            }
            let target = if in_http { &mut http } else { &mut rest };
            target.push_str(line);
            target.push('\n');
        }
        // Loopback unless the test binds elsewhere itself.
        let bind = if http.lines().any(|l| l.trim_start().starts_with("bind")) {
            ""
        } else {
            "bind = \"127.0.0.1\"\n"
        };
        let config = dir.write(
            "peercam.toml",
            &format!(
                "auth = \"{auth}\"\n[http]\n{bind}https_port = 0\nhttp_port = 0\n{http}\
                 [stun]\nbind = \"::\"\nport = 0\n{rest}"
            ),
        );
        let mut command = match nofile {
            Some(limit) => {
                let mut command = Command::new("prlimit");
                command
                    .arg(format!("--nofile={limit}:{limit}"))
                    .arg("--")
                    .arg(binary());
                command
            }
            None => Command::new(binary()),
        };
        let mut child = command
            .arg("--config")
            .arg(&config)
            .arg("--state-dir")
            .arg(dir.0.join("state"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start peercam");
        let (tx, rx) = mpsc::channel::<String>();
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let tx = tx.clone();
            let output = std::sync::Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Ok(mut kept) = output.lock()
                        && kept.len() < OUTPUT_LINES_KEPT
                    {
                        kept.push(line.clone());
                    }
                    let _ = tx.send(line);
                }
            });
        }
        let (mut https_port, mut http_port, mut stun_port) = (None, None, None);
        let mut fingerprint = String::new();
        while https_port.is_none() || http_port.is_none() || stun_port.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("daemon printed its ports in time");
            if let Some((_, value)) = line.split_once("certificate SHA-256 fingerprint: ") {
                fingerprint = value.trim().to_owned();
            }
            if let Some(port) = port_after(&line, "https://localhost:") {
                https_port = Some(port);
            }
            if let Some(port) = port_after(&line, "HTTP on port ") {
                http_port = Some(port);
            }
            if let Some(port) = port_after(&line, "STUN responder on UDP port ") {
                stun_port = Some(port);
            }
        }
        Self {
            child,
            https_port: https_port.unwrap_or_default(),
            http_port: http_port.unwrap_or_default(),
            stun_port: stun_port.unwrap_or_default(),
            fingerprint,
            dir,
            output,
        }
    }
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.0.join("state")
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/", self.https_port)
    }

    /// The lines the daemon has printed so far.
    pub fn output(&self) -> Vec<String> {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// How many lines the daemon has printed so far.
    pub fn output_lines(&self) -> usize {
        self.output.lock().map(|o| o.len()).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Descriptors and threads the daemon has open now (from /proc).
    pub fn descriptors_and_threads(&self) -> (usize, usize) {
        let count = |dir: String| std::fs::read_dir(dir).map_or(0, |d| d.count());
        let pid = self.pid();
        (
            count(format!("/proc/{pid}/fd")),
            count(format!("/proc/{pid}/task")),
        )
    }

    /// Sets the owner's password with `peercam set-password`, as the owner would.
    pub fn set_password(&self, password: &str) {
        let mut set = Command::new(binary())
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("set-password")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("run set-password");
        set.stdin
            .take()
            .expect("stdin")
            .write_all(format!("{password}\n").as_bytes())
            .expect("write the password");
        assert!(set.wait().expect("set-password").success());
    }

    /// Makes a viewer token named `name` with `peercam token create`; the token.
    pub fn create_token(&self, name: &str) -> String {
        let made = Command::new(binary())
            .args(["token", "create", name, "--state-dir"])
            .arg(self.state_dir())
            .output()
            .expect("run token create");
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        String::from_utf8_lossy(&made.stdout).trim().to_owned()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn port_after(line: &str, marker: &str) -> Option<u16> {
    let rest = &line[line.find(marker)? + marker.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Runs `openssl s_client` against the daemon with `args`, sending `request`; returns whether
/// the handshake worked and everything printed.
pub fn s_client(daemon: &Daemon, args: &[&str], request: &str) -> (bool, String) {
    let mut child = spawn_s_client(daemon, args);
    let stdin = child.stdin.take();
    if let Some(mut stdin) = stdin {
        let _ = stdin.write_all(request.as_bytes());
        // Give the reply time to arrive, then end the client (an upgraded WebSocket would stay
        // open for as long as the client does).
        std::thread::sleep(Duration::from_millis(1500));
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("openssl ran");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let handshake_ok = !text.contains("alert")
        && !text.contains("handshake failure")
        && !text.contains("no protocols available");
    (handshake_ok, text)
}

/// `openssl s_client` connected to the daemon, with piped standard streams.
pub fn spawn_s_client(daemon: &Daemon, args: &[&str]) -> std::process::Child {
    Command::new("openssl")
        .arg("s_client")
        .args([
            "-connect",
            &format!("127.0.0.1:{}", daemon.https_port),
            "-quiet",
        ])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed by scripts/setup --test")
}

/// A plain GET request for `path`, with `extra_headers` (each ending in CRLF).
pub fn get(path: &str, extra_headers: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra_headers}Connection: close\r\n\r\n")
}
