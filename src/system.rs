//! systemd integration: the `sd_notify` protocol over `$NOTIFY_SOCKET` (READY, STATUS,
//! WATCHDOG, STOPPING), the watchdog interval systemd asks for, and the `Watchdog` that decides
//! when the daemon is healthy enough to pet it.
//!
//! Best effort by design: without systemd (run by hand, in tests) there is no socket and every
//! call does nothing; a failed send is logged at debug level and never stops the daemon.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    /// The two parts of STATUS: what the rooms are doing, and how the device is reached.
    status: std::sync::Mutex<(String, String)>,
}

impl Notifier {
    /// A notifier for `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace).
    pub fn from_env() -> Self {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let path = path.to_string_lossy().into_owned();
            let address = if let Some(name) = path.strip_prefix('@') {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?
            } else {
                std::os::unix::net::SocketAddr::from_pathname(&path).ok()?
            };
            Some((UnixDatagram::unbound().ok()?, address))
        });
        Self {
            socket,
            status: std::sync::Mutex::default(),
        }
    }

    /// A notifier that tells nobody anything.
    pub fn disabled() -> Self {
        Self {
            socket: None,
            status: std::sync::Mutex::default(),
        }
    }

    fn send(&self, message: &str) {
        if let Some((socket, address)) = &self.socket
            && let Err(e) = socket.send_to_addr(message.as_bytes(), address)
        {
            log::debug!("sd_notify `{message}`: {e}");
        }
    }

    /// The listeners are bound and the daemon can take calls.
    pub fn ready(&self) {
        self.send("READY=1");
    }

    /// One line of what the daemon is doing, shown by `systemctl status` (with how it is
    /// reached from outside, when port mapping said).
    pub fn status(&self, text: &str) {
        self.update_status(|(rooms, _)| *rooms = text.replace('\n', " "));
    }

    /// How the device is reached from outside, after the rooms' part of STATUS.
    pub fn reachability(&self, text: &str) {
        self.update_status(|(_, reach)| *reach = text.replace('\n', " "));
    }

    fn update_status(&self, change: impl FnOnce(&mut (String, String))) {
        let line = {
            let mut parts = self.status.lock().unwrap_or_else(|p| p.into_inner());
            change(&mut parts);
            match (parts.0.as_str(), parts.1.as_str()) {
                (rooms, "") => rooms.to_owned(),
                (rooms, reach) => format!("{rooms}; {reach}"),
            }
        };
        self.send(&format!("STATUS={line}"));
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }
}

/// How often to pet the watchdog: half of `$WATCHDOG_USEC`, when it is meant for this process.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Some(pid) = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        && pid != std::process::id()
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Pets systemd's watchdog from the daemon's main loop, and while media is connected only while
/// video flows.
pub struct Watchdog {
    interval: Option<tokio::time::Interval>,
    last_packets: u64,
}

impl Watchdog {
    /// A watchdog ticking every `period`; without one (no systemd watchdog) it never ticks.
    pub fn new(period: Option<Duration>) -> Self {
        Self {
            interval: period.map(tokio::time::interval),
            last_packets: 0,
        }
    }

    /// Waits for the next time to pet the watchdog.
    pub async fn tick(&mut self) {
        match &mut self.interval {
            Some(interval) => {
                interval.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    /// Alive when no peer's media is connected, or with video packets sent since the last
    /// tick.
    pub fn healthy(&mut self, connected: bool, packets: u64) -> bool {
        let flowing = packets != self.last_packets;
        self.last_packets = packets;
        !connected || flowing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_the_socket() {
        let dir = std::env::temp_dir().join(format!("peercam-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier {
            socket: Some((
                UnixDatagram::unbound().unwrap(),
                std::os::unix::net::SocketAddr::from_pathname(&path).unwrap(),
            )),
            status: std::sync::Mutex::default(),
        };
        notifier.ready();
        notifier.status("In a call\nwith 10.0.0.2");
        let mut buffer = [0u8; 256];
        let n = listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"READY=1");
        let n = listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"STATUS=In a call with 10.0.0.2");
        notifier.reachability("reachable at https://31.77.1.2:8443/");
        let n = listener.recv(&mut buffer).unwrap();
        assert_eq!(
            &buffer[..n],
            b"STATUS=In a call with 10.0.0.2; reachable at https://31.77.1.2:8443/"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_connected_call_must_send_video_to_be_healthy() {
        let mut watchdog = Watchdog::new(None);
        assert!(watchdog.healthy(false, 0), "idle is healthy");
        assert!(watchdog.healthy(true, 10), "video sent since the last tick");
        assert!(!watchdog.healthy(true, 10), "connected, nothing sent");
        assert!(watchdog.healthy(false, 10), "no call, nothing to send");
    }

    #[test]
    fn without_systemd_nothing_happens() {
        Notifier::disabled().ready();
    }
}
