//! Who may watch: the owner's password (an argon2 hash in the state directory), or until one is
//! set a random pairing code; sessions after login; and a cap on failed logins per address.
//!
//! Sessions live in memory and remember which credential they were made with, so changing the
//! password (`peercam set-password`) ends every session at once. The locks guard plain maps and
//! are held only to read or change an entry, never across an `.await`.

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
}

#[derive(Debug)]
struct Session {
    expires: Instant,
    credential: String,
}

#[derive(Debug)]
pub struct Auth {
    settings: AuthSettings,
    /// The pairing code, when no password was set at start.
    pairing_code: Option<String>,
    sessions: Mutex<HashMap<String, Session>>,
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
    crate::state_file::write(&path, hash.as_bytes(), crate::state_file::PRIVATE).map_err(|source| {
        AuthError::Write {
            path: path.clone(),
            source,
        }
    })
}

impl Auth {
    /// Reads the stored password; without one, makes a pairing code (see `pairing_code`).
    pub fn new(settings: AuthSettings) -> Result<Self, AuthError> {
        let pairing_code = if stored_hash(&settings.state_dir).is_some() {
            None
        } else {
            Some(random_text(9)?)
        };
        Ok(Self {
            settings,
            pairing_code,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        })
    }

    pub fn pairing_code(&self) -> Option<&str> {
        self.pairing_code.as_deref()
    }

    /// What a session was made with; changes when the password does.
    fn credential(&self) -> String {
        stored_hash(&self.settings.state_dir)
            .or_else(|| self.pairing_code.as_ref().map(|c| format!("pairing:{c}")))
            .unwrap_or_default()
    }

    fn secret_matches(&self, candidate: &str) -> bool {
        match stored_hash(&self.settings.state_dir) {
            Some(hash) => PasswordHash::new(&hash).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(candidate.as_bytes(), &parsed)
                    .is_ok()
            }),
            None => self
                .pairing_code
                .as_deref()
                .is_some_and(|code| constant_time_eq(code.as_bytes(), candidate.as_bytes())),
        }
    }

    /// Checks a password (or pairing code) from `address`; a new session token on success.
    pub fn log_in(
        &self,
        address: IpAddr,
        candidate: &str,
        now: Instant,
    ) -> Result<String, LoginError> {
        let window = self.settings.failure_window;
        {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            let recent = failures.entry(address).or_default();
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
        }
        if !self.secret_matches(candidate) {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            failures.entry(address).or_default().push_back(now);
            log::warn!("failed login from {address}");
            return Err(LoginError::Wrong);
        }
        let token = random_text(32).map_err(|_| LoginError::Wrong)?;
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(
            token.clone(),
            Session {
                expires: now + self.settings.session_lifetime,
                credential: self.credential(),
            },
        );
        log::info!("login from {address}");
        Ok(token)
    }

    /// Whether a `Cookie:` header carries a live session made with the current credential.
    pub fn session_valid(&self, cookie_header: Option<&str>, now: Instant) -> bool {
        let Some(token) = cookie_header.and_then(session_token) else {
            return false;
        };
        let credential = self.credential();
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .get(token)
            .is_some_and(|s| s.expires > now && s.credential == credential)
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
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
        assert_eq!(auth.log_in(HOME, "wrong one", now), Err(LoginError::Wrong));
        let token = auth.log_in(HOME, "correct horse", now).unwrap();
        let cookie = format!("other=1; {COOKIE}={token}");
        assert!(auth.session_valid(Some(&cookie), now));
        assert!(!auth.session_valid(Some("peercam_session=forged"), now));
        assert!(!auth.session_valid(None, now));
        assert!(
            !auth.session_valid(Some(&cookie), now + Duration::from_secs(3601)),
            "expired"
        );
        set_password(&dir, "battery staple").unwrap();
        assert!(
            !auth.session_valid(Some(&cookie), now),
            "revoked by the new password"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn without_a_password_the_pairing_code_logs_in() {
        let dir = temp_dir("pairing");
        let auth = Auth::new(settings(&dir)).unwrap();
        let code = auth.pairing_code().unwrap().to_owned();
        assert!(code.len() >= 12);
        assert!(auth.log_in(HOME, &code, Instant::now()).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn failures_are_capped_per_address_for_a_window() {
        let dir = temp_dir("failures");
        set_password(&dir, "correct horse").unwrap();
        let auth = Auth::new(settings(&dir)).unwrap();
        let now = Instant::now();
        for _ in 0..5 {
            assert_eq!(auth.log_in(HOME, "nope", now), Err(LoginError::Wrong));
        }
        assert!(matches!(
            auth.log_in(HOME, "correct horse", now),
            Err(LoginError::TooMany { retry_after }) if retry_after == Duration::from_secs(60)
        ));
        let other: IpAddr = "10.0.0.3".parse().unwrap();
        assert!(
            auth.log_in(other, "correct horse", now).is_ok(),
            "others unaffected"
        );
        let later = now + Duration::from_secs(61);
        assert!(auth.log_in(HOME, "correct horse", later).is_ok());
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
