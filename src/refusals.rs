//! Refusals logged so that a flood cannot flood the journal: wrong passwords, unknown viewer
//! tokens, connections over a cap, cross-site requests, refused WHEP offers (and, the same way,
//! the uses of viewer tokens, which a client may repeat as fast as it likes).
//!
//! Within each 10 s window the first refusal of each kind from each address is logged whole
//! (at most `DETAILED_PER_WINDOW` lines in all); the rest are only counted, and when the window
//! ends one line per kind and address says how many there were ("refused 12345 requests with
//! unknown viewer tokens from ADDR in the last 10 s"), at most `SUMMARIES_PER_WINDOW` of them
//! and one more for everything else. So a flood costs a few lines a second whatever its rate,
//! and journald's own rate limit never drops the daemon's real messages.
//!
//! One global window behind a `Mutex` held only to count (never across an `.await`); the
//! window is closed by the next refusal after it ends, or by `flush_every` when the flood has
//! stopped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one window lasts.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Refusals logged whole in one window, over every kind and address.
const DETAILED_PER_WINDOW: usize = 30;
/// Summary lines at the end of one window (one more sums up the rest).
const SUMMARIES_PER_WINDOW: usize = 20;
/// Kinds and addresses counted apart in one window; the rest count together.
const KEYS_PER_WINDOW: usize = 1024;

/// What was refused, as the summary line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    UnknownToken,
    WrongPassword,
    LockedOut,
    CrossSite,
    ForeignOrigin,
    ConnectionCap,
    ConnectionsFull,
    /// A WHEP offer from someone let in (a token or session) that the device could not take.
    WhepRefused,
    /// Not a refusal: a request a viewer token was let in with (logged at info).
    TokenUsed,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Self::UnknownToken => "requests with unknown or revoked viewer tokens",
            Self::WrongPassword => "wrong passwords",
            Self::LockedOut => "logins while locked out",
            Self::CrossSite => "cross-site requests",
            Self::ForeignOrigin => "WebSockets from another origin",
            Self::ConnectionCap => "connections over the per-address cap",
            Self::ConnectionsFull => "connections with every place taken",
            Self::WhepRefused => "WHEP offers",
            Self::TokenUsed => "requests with viewer tokens",
        }
    }

    /// What was done to them, for the summary line.
    fn verb(self) -> &'static str {
        match self {
            Self::TokenUsed => "served",
            _ => "refused",
        }
    }

    fn level(self) -> log::Level {
        match self {
            Self::TokenUsed => log::Level::Info,
            _ => log::Level::Warn,
        }
    }
}

#[derive(Debug)]
struct Window {
    started: Instant,
    detailed: usize,
    /// Refusals per kind and address not logged whole.
    counted: HashMap<(Kind, IpAddr), u64>,
    /// Refusals past `KEYS_PER_WINDOW` distinct keys, and how many keys they had.
    overflow: u64,
}

impl Window {
    fn new(now: Instant) -> Self {
        Self {
            started: now,
            detailed: 0,
            counted: HashMap::new(),
            overflow: 0,
        }
    }

    /// Whether this refusal is logged whole; otherwise it is counted.
    fn note(&mut self, kind: Kind, address: IpAddr) -> bool {
        let key = (kind, address);
        if self.detailed < DETAILED_PER_WINDOW && !self.counted.contains_key(&key) {
            self.detailed += 1;
            self.counted.insert(key, 0);
            return true;
        }
        let room = self.counted.len() < KEYS_PER_WINDOW;
        match self.counted.get_mut(&key) {
            Some(count) => *count += 1,
            None if room => {
                self.counted.insert(key, 1);
            }
            None => self.overflow += 1,
        }
        false
    }

    /// The summary lines of a window that has ended.
    fn summary(&self) -> Vec<String> {
        let mut counts: Vec<_> = self.counted.iter().filter(|(_, n)| **n > 0).collect();
        counts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let seconds = WINDOW.as_secs();
        let mut lines: Vec<String> = counts
            .iter()
            .take(SUMMARIES_PER_WINDOW)
            .map(|((kind, address), count)| {
                format!(
                    "{} {count} {} from {address} in the last {seconds} s",
                    kind.verb(),
                    kind.noun()
                )
            })
            .collect();
        let rest: u64 = counts
            .iter()
            .skip(SUMMARIES_PER_WINDOW)
            .map(|(_, n)| **n)
            .sum::<u64>()
            + self.overflow;
        if rest > 0 {
            lines.push(format!(
                "{rest} more requests refused or served from other addresses in the last \
                 {seconds} s"
            ));
        }
        lines
    }
}

static WINDOW_NOW: Mutex<Option<Window>> = Mutex::new(None);

/// Logs (or counts) one refusal of `kind` from `address`; `detail` is the whole line.
pub fn note(kind: Kind, address: IpAddr, detail: std::fmt::Arguments<'_>) {
    let now = Instant::now();
    let (whole, ended) = {
        let mut window = WINDOW_NOW.lock().unwrap_or_else(|p| p.into_inner());
        let ended = take_if_ended(&mut window, now);
        let whole = window
            .get_or_insert_with(|| Window::new(now))
            .note(kind, address);
        (whole, ended)
    };
    log_summary(ended);
    if whole {
        log::log!(kind.level(), "{detail}");
    }
}

/// Closes the window when it has ended, so its summary is logged even when nothing more is
/// refused. Runs until the process ends.
pub async fn flush_every(period: Duration) {
    let mut ticks = tokio::time::interval(period);
    loop {
        ticks.tick().await;
        let ended = {
            let mut window = WINDOW_NOW.lock().unwrap_or_else(|p| p.into_inner());
            take_if_ended(&mut window, Instant::now())
        };
        log_summary(ended);
    }
}

fn take_if_ended(window: &mut Option<Window>, now: Instant) -> Option<Window> {
    if window
        .as_ref()
        .is_some_and(|w| now.duration_since(w.started) >= WINDOW)
    {
        window.take()
    } else {
        None
    }
}

fn log_summary(ended: Option<Window>) {
    for line in ended.iter().flat_map(Window::summary) {
        log::warn!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_flood_from_one_address_is_one_line_and_one_summary() {
        let mut window = Window::new(Instant::now());
        assert!(window.note(Kind::UnknownToken, ip(1)));
        for _ in 0..12_345 {
            assert!(!window.note(Kind::UnknownToken, ip(1)));
        }
        assert!(window.note(Kind::WrongPassword, ip(1)), "another kind");
        assert_eq!(
            window.summary(),
            [
                "refused 12345 requests with unknown or revoked viewer tokens from 10.0.0.1 in the \
              last 10 s"
            ]
        );
    }

    #[test]
    fn uses_are_summed_up_as_served() {
        let mut window = Window::new(Instant::now());
        for _ in 0..5 {
            window.note(Kind::TokenUsed, ip(2));
        }
        assert_eq!(
            window.summary(),
            ["served 4 requests with viewer tokens from 10.0.0.2 in the last 10 s"]
        );
    }

    #[test]
    fn many_addresses_cost_a_bounded_number_of_lines() {
        let mut window = Window::new(Instant::now());
        let mut whole = 0;
        for round in 0..50 {
            for last in 0..=255 {
                whole += usize::from(window.note(Kind::ConnectionCap, ip(last)));
                let _ = round;
            }
        }
        assert_eq!(whole, DETAILED_PER_WINDOW);
        let summary = window.summary();
        assert_eq!(summary.len(), SUMMARIES_PER_WINDOW + 1);
        let total: u64 = summary
            .iter()
            .map(|l| l.split(' ').find_map(|w| w.parse::<u64>().ok()).unwrap())
            .sum();
        assert_eq!(total as usize, 50 * 256 - DETAILED_PER_WINDOW);
    }
}
