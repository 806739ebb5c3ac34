//! Who may watch: the owner's password (an argon2 hash in the state directory), or until one is
//! set a random pairing code; sessions after login; and a cap on failed logins per address.
//!
//! Sessions live in memory and remember which credential they were made with, so changing the
//! password (`peercam set-password`) ends every session at once; `log_out` ends one. Each has a
//! `SessionId` (not its secret) so what was opened under it (WebSockets, viewers) can be ended
//! with it. The pairing code works once and only until `pairing_lifetime` has passed, and only
//! as the code (never the password) in a link. The failure table is bounded. The locks guard
//! plain maps and are held only to read or change an entry, never across an `.await`; the
//! argon2 check is slow (tens of milliseconds) and runs on a blocking thread (`web::login`).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use thiserror::Error;

/// The session cookie's name.
pub const COOKIE: &str = "peercam_session";
const PASSWORD_FILE: &str = "password";

#[derive(Debug, Error)]
pub enum AuthError {
    #[error("cannot write the password to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("the password must be at least 8 characters")]
    TooShort,
    #[error("no randomness available: {0}")]
    Random(String),
}

/// How many addresses the failure table follows at once; past that, the one whose last
/// failure is oldest is forgotten.
const TRACKED_ADDRESSES: usize = 4096;

/// Names a session without being its secret: what a WebSocket or a viewer was opened under.
pub type SessionId = u64;

/// What a login attempt came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The login form: the password, or the pairing code typed in.
    Form,
    /// The pairing link (`GET /login?code=`): the pairing code only, never the password (a
    /// link ends up in the browser's history).
    PairingLink,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    Wrong,
    /// Too many failures from this address; try again after this long.
    TooMany {
        retry_after: Duration,
    },
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub state_dir: PathBuf,
    pub session_lifetime: Duration,
    pub max_failures: usize,
    pub failure_window: Duration,
    /// How long the pairing link works after start (it works once in any case).
    pub pairing_lifetime: Duration,
}

#[derive(Debug)]
struct Session {
    id: SessionId,
    expires: Instant,
    credential: String,
}

/// The pairing code and what became of it.
#[derive(Debug)]
struct Pairing {
    code: String,
    expires: Instant,
    used: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
pub struct Auth {
    settings: AuthSettings,
    /// The pairing code, when no password was set at start.
    pairing: Option<Pairing>,
    sessions: Mutex<HashMap<String, Session>>,
    next_session: std::sync::atomic::AtomicU64,
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

fn random_text(bytes: usize) -> Result<String, AuthError> {
    let mut buffer = vec![0u8; bytes];
    getrandom::getrandom(&mut buffer).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buffer))
}

/// Hashes `password` with argon2id and stores it in `state_dir`, readable by its owner only.
pub fn set_password(state_dir: &Path, password: &str) -> Result<(), AuthError> {
    if password.chars().count() < 8 {
        return Err(AuthError::TooShort);
    }
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| AuthError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AuthError::Hash(e.to_string()))?
        .to_string();
    let path = state_dir.join(PASSWORD_FILE);
    crate::state_file::write(&path, hash.as_bytes(), crate::state_file::PRIVATE).map_err(
        |source| AuthError::Write {
            path: path.clone(),
            source,
        },
    )?;
    remember_for_rtsp(state_dir, password);
    Ok(())
}

/// The owner's Digest line for the RTSP server (`rtsp::digest`), written while the password
/// passes through; RTSP alone misses it when it cannot be written.
fn remember_for_rtsp(state_dir: &Path, password: &str) {
    let owner = crate::rtsp::digest::OWNER;
    if let Err(e) = crate::rtsp::digest::set(state_dir, owner, Some(password)) {
        log::warn!("RTSP logins as `{owner}` will fail: {e}");
    }
}

impl Auth {
    /// Reads the stored password; without one, makes a pairing code (see `pairing_code`).
    pub fn new(settings: AuthSettings) -> Result<Self, AuthError> {
        let pairing = if stored_hash(&settings.state_dir).is_some() {
            None
        } else {
            Some(Pairing {
                code: random_text(9)?,
                expires: Instant::now() + settings.pairing_lifetime,
                used: std::sync::atomic::AtomicBool::new(false),
            })
        };
        Ok(Self {
            settings,
            pairing,
            sessions: Mutex::new(HashMap::new()),
            next_session: std::sync::atomic::AtomicU64::new(1),
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// The pairing code, while it has not been used (it may still have expired).
    pub fn pairing_code(&self) -> Option<&str> {
        self.pairing
            .as_ref()
            .filter(|p| !p.used.load(std::sync::atomic::Ordering::Relaxed))
            .map(|p| p.code.as_str())
    }

    /// What a session was made with; changes when the password does.
    pub fn credential(&self) -> String {
        stored_hash(&self.settings.state_dir)
            .or_else(|| self.pairing.as_ref().map(|p| format!("pairing:{}", p.code)))
            .unwrap_or_default()
    }

    fn secret_matches(&self, candidate: &str, via: Via, now: Instant) -> bool {
        match (stored_hash(&self.settings.state_dir), via) {
            (Some(_), Via::PairingLink) => false,
            (Some(hash), Via::Form) => {
                let matches = PasswordHash::new(&hash).is_ok_and(|parsed| {
                    Argon2::default()
                        .verify_password(candidate.as_bytes(), &parsed)
                        .is_ok()
                });
                // A password set before the RTSP server existed gets its line at a login.
                if matches {
                    remember_for_rtsp(&self.settings.state_dir, candidate);
                }
                matches
            }
            (None, _) => self.pairing.as_ref().is_some_and(|pairing| {
                now < pairing.expires
                    && constant_time_eq(pairing.code.as_bytes(), candidate.as_bytes())
                    // Once: the first match takes it.
                    && !pairing.used.swap(true, std::sync::atomic::Ordering::AcqRel)
            }),
        }
    }

    /// Refuses an address that failed too often lately (cheap: call it before the slow check).
    pub fn check_lockout(&self, address: IpAddr, now: Instant) -> Result<(), LoginError> {
        let window = self.settings.failure_window;
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let Some(recent) = failures.get_mut(&crate::host::address_group(address)) else {
            return Ok(());
        };
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            recent.pop_front();
        }
        if recent.len() >= self.settings.max_failures {
            let oldest = recent.front().copied().unwrap_or(now);
            let retry_after = window.saturating_sub(now.duration_since(oldest));
            return Err(LoginError::TooMany {
                retry_after: retry_after.max(Duration::from_secs(1)),
            });
        }
        Ok(())
    }

    fn record_failure(&self, address: IpAddr, now: Instant) {
        let window = self.settings.failure_window;
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let group = crate::host::address_group(address);
        if !failures.contains_key(&group) && failures.len() >= TRACKED_ADDRESSES {
            failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
            });
            if failures.len() >= TRACKED_ADDRESSES
                && let Some(stalest) = failures
                    .iter()
                    .min_by_key(|(_, times)| times.back().copied())
                    .map(|(address, _)| *address)
            {
                failures.remove(&stalest);
            }
        }
        let recent = failures.entry(group).or_default();
        recent.push_back(now);
        // Only the last `max_failures` decide a lock-out.
        while recent.len() > self.settings.max_failures {
            recent.pop_front();
        }
    }

    /// Addresses the failure table follows now.
    pub fn tracked_addresses(&self) -> usize {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Checks a password (or pairing code) from `address`; a new session token on success.
    /// Slow (argon2): call it from a blocking thread.
    pub fn log_in(
        &self,
        address: IpAddr,
        candidate: &str,
        via: Via,
        now: Instant,
    ) -> Result<String, LoginError> {
        self.check_lockout(address, now)?;
        if !self.secret_matches(candidate, via, now) {
            self.record_failure(address, now);
            crate::refusals::note(
                crate::refusals::Kind::WrongPassword,
                address,
                format_args!("failed login from {address}"),
            );
            return Err(LoginError::Wrong);
        }
        let token = random_text(32).map_err(|_| LoginError::Wrong)?;
        let id = self
            .next_session
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(
            token.clone(),
            Session {
                id,
                expires: now + self.settings.session_lifetime,
                credential: self.credential(),
            },
        );
        log::info!("login from {address} (session {id})");
        Ok(token)
    }

    /// The live session a `Cookie:` header carries, made with the current credential.
    pub fn session(&self, cookie_header: Option<&str>, now: Instant) -> Option<SessionId> {
        let token = cookie_header.and_then(session_token)?;
        let credential = self.credential();
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .get(token)
            .filter(|s| s.expires > now && s.credential == credential)
            .map(|s| s.id)
    }

    /// The sessions that are live now (made with the current credential, not expired).
    pub fn live_sessions(&self, now: Instant) -> Vec<SessionId> {
        let credential = self.credential();
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .values()
            .filter(|s| s.expires > now && s.credential == credential)
            .map(|s| s.id)
            .collect()
    }

    /// Ends the session a `Cookie:` header carries; its id, when there was one.
    pub fn log_out(&self, cookie_header: Option<&str>) -> Option<SessionId> {
        let token = cookie_header.and_then(session_token)?;
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.remove(token).map(|s| s.id)
    }

    /// The `Set-Cookie` value that makes a browser forget its session.
    pub fn expired_cookie(&self) -> String {
        format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
    }

    /// The `Set-Cookie` value for a new session.
    pub fn cookie(&self, token: &str) -> String {
        format!(
            "{COOKIE}={token}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
            self.settings.session_lifetime.as_secs()
        )
    }
}

/// The password hash in the state directory, if one was set.
fn stored_hash(state_dir: &Path) -> Option<String> {
    std::fs::read_to_string(state_dir.join(PASSWORD_FILE))
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// The session token in a `Cookie:` header.
fn session_token(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path) -> AuthSettings {
        AuthSettings {
            state_dir: dir.to_owned(),
            session_lifetime: Duration::from_secs(3600),
            max_failures: 5,
            failure_window: Duration::from_secs(60),
            pairing_lifetime: Duration::from_secs(1800),
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("peercam-auth-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn password_login_gives_a_session_and_a_new_password_ends_it() {
        let dir = temp_dir("password");
        set_password(&dir, "correct horse").unwrap();
        let auth = Auth::new(settings(&dir)).unwrap();
        assert!(auth.pairing_code().is_none());
        let now = Instant::now();
        assert_eq!(
            auth.log_in(HOME, "wrong one", Via::Form, now),
            Err(LoginError::Wrong)
        );
        let token = auth.log_in(HOME, "correct horse", Via::Form, now).unwrap();
        let cookie = format!("other=1; {COOKIE}={token}");
        assert!(auth.session(Some(&cookie), now).is_some());
        assert!(auth.session(Some("peercam_session=forged"), now).is_none());
        assert!(auth.session(None, now).is_none());
        assert!(
            auth.session(Some(&cookie), now + Duration::from_secs(3601))
                .is_none(),
            "expired"
        );
        assert_eq!(auth.live_sessions(now).len(), 1);
        set_password(&dir, "battery staple").unwrap();
        assert!(
            auth.session(Some(&cookie), now).is_none(),
            "revoked by the new password"
        );
        assert!(auth.live_sessions(now).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn without_a_password_the_pairing_code_logs_in() {
        let dir = temp_dir("pairing");
        let auth = Auth::new(settings(&dir)).unwrap();
        let code = auth.pairing_code().unwrap().to_owned();
        assert!(code.len() >= 12);
        let now = Instant::now();
        let token = auth.log_in(HOME, &code, Via::PairingLink, now).unwrap();
        assert!(auth.pairing_code().is_none(), "used up");
        assert_eq!(
            auth.log_in(HOME, &code, Via::PairingLink, now),
            Err(LoginError::Wrong),
            "the link works once"
        );
        let cookie = format!("{COOKIE}={token}");
        assert!(
            auth.session(Some(&cookie), now).is_some(),
            "its session lives on"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_pairing_link_expires() {
        let dir = temp_dir("pairing-expiry");
        let auth = Auth::new(settings(&dir)).unwrap();
        let code = auth.pairing_code().unwrap().to_owned();
        let later = Instant::now() + Duration::from_secs(1801);
        assert_eq!(
            auth.log_in(HOME, &code, Via::PairingLink, later),
            Err(LoginError::Wrong)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_pairing_link_never_takes_the_password() {
        let dir = temp_dir("pairing-password");
        set_password(&dir, "correct horse").unwrap();
        let auth = Auth::new(settings(&dir)).unwrap();
        let now = Instant::now();
        assert_eq!(
            auth.log_in(HOME, "correct horse", Via::PairingLink, now),
            Err(LoginError::Wrong)
        );
        assert!(auth.log_in(HOME, "correct horse", Via::Form, now).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn logging_out_ends_the_session() {
        let dir = temp_dir("logout");
        set_password(&dir, "correct horse").unwrap();
        let auth = Auth::new(settings(&dir)).unwrap();
        let now = Instant::now();
        let token = auth.log_in(HOME, "correct horse", Via::Form, now).unwrap();
        let cookie = format!("{COOKIE}={token}");
        let id = auth.session(Some(&cookie), now).unwrap();
        assert_eq!(auth.log_out(Some(&cookie)), Some(id));
        assert!(auth.session(Some(&cookie), now).is_none());
        assert_eq!(auth.log_out(Some(&cookie)), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_failure_table_is_bounded() {
        let dir = temp_dir("failure-table");
        set_password(&dir, "correct horse").unwrap();
        let auth = Auth::new(settings(&dir)).unwrap();
        let now = Instant::now();
        for n in 0..(TRACKED_ADDRESSES as u32 + 100) {
            let address = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            auth.record_failure(address, now);
        }
        assert_eq!(auth.tracked_addresses(), TRACKED_ADDRESSES);
        // One IPv6 host's many addresses count as one.
        for n in 0..10u16 {
            let address: IpAddr = format!("2001:db8::{n:x}").parse().unwrap();
            auth.record_failure(address, now);
        }
        assert!(
            auth.check_lockout("2001:db8::ffff".parse().unwrap(), now)
                .is_err()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn failures_are_capped_per_address_for_a_window() {
        let dir = temp_dir("failures");
        set_password(&dir, "correct horse").unwrap();
        let auth = Auth::new(settings(&dir)).unwrap();
        let now = Instant::now();
        for _ in 0..5 {
            assert_eq!(
                auth.log_in(HOME, "nope", Via::Form, now),
                Err(LoginError::Wrong)
            );
        }
        assert!(matches!(
            auth.log_in(HOME, "correct horse", Via::Form, now),
            Err(LoginError::TooMany { retry_after }) if retry_after == Duration::from_secs(60)
        ));
        let other: IpAddr = "10.0.0.3".parse().unwrap();
        assert!(
            auth.log_in(other, "correct horse", Via::Form, now).is_ok(),
            "others unaffected"
        );
        let later = now + Duration::from_secs(61);
        assert!(auth.log_in(HOME, "correct horse", Via::Form, later).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(matches!(
            set_password(Path::new("/tmp"), "short"),
            Err(AuthError::TooShort)
        ));
    }

    #[test]
    fn cookie_has_the_safe_flags() {
        let dir = temp_dir("cookie");
        let auth = Auth::new(settings(&dir)).unwrap();
        let cookie = auth.cookie("abc");
        for flag in [
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Max-Age=3600",
            "Path=/",
        ] {
            assert!(cookie.contains(flag), "{cookie}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
