//! Viewer tokens: bearer tokens the owner makes for machines that watch (Home Assistant,
//! go2rtc, a WHEP player) with `peercam token create NAME` and ends with `peercam token revoke
//! NAME`.
//!
//! Only a SHA-256 of each token is kept, in `tokens` in the state directory, one `name hash`
//! line each (readable by its owner only). A token is 32 random bytes, so a plain hash is as
//! good as a slow one here: there is nothing to guess. The file is read again for every
//! request, so a revoke takes effect at once without a restart.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use sha2::{Digest, Sha256};
use thiserror::Error;

const TOKENS_FILE: &str = "tokens";
/// What every token starts with, so one found in a config or a log is recognisable.
const PREFIX: &str = "pcv_";

#[derive(Debug, Error)]
pub enum TokenError {
    #[error(
        "a token name is 1 to 64 letters, digits, '.', '_' or '-' (it names the viewer in the \
         log), not `{0}`"
    )]
    BadName(String),
    #[error("a token named `{0}` exists already; revoke it first or choose another name")]
    Exists(String),
    #[error("`owner` is the owner's name for RTSP; choose another token name")]
    Reserved,
    #[error("no token is named `{0}`")]
    Unknown(String),
    #[error("{path} line {line}: {reason}")]
    Malformed {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no randomness available: {0}")]
    Random(String),
}

/// One stored token: its name and the hex SHA-256 of the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub name: String,
    hash: String,
}

/// The tokens of one state directory.
#[derive(Debug, Clone)]
pub struct ViewerTokens {
    path: PathBuf,
}

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl ViewerTokens {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join(TOKENS_FILE),
        }
    }

    fn io_error(&self, source: std::io::Error) -> TokenError {
        TokenError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Every stored token; none when the file does not exist yet.
    pub fn list(&self) -> Result<Vec<StoredToken>, TokenError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io_error(e)),
        };
        let mut tokens = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let malformed = |reason: &str| TokenError::Malformed {
                path: self.path.clone(),
                line: index + 1,
                reason: reason.to_owned(),
            };
            let (name, hash) = line
                .split_once(' ')
                .ok_or_else(|| malformed("expected `name sha256-hex`"))?;
            if !valid_name(name) {
                return Err(malformed("the name is not a valid token name"));
            }
            let hash = hash.trim();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(malformed("the hash is not 64 hex digits"));
            }
            tokens.push(StoredToken {
                name: name.to_owned(),
                hash: hash.to_ascii_lowercase(),
            });
        }
        Ok(tokens)
    }

    fn write(&self, tokens: &[StoredToken]) -> Result<(), TokenError> {
        let mut text = String::from("# peercam viewer tokens: name and SHA-256 of the token\n");
        for token in tokens {
            text.push_str(&format!("{} {}\n", token.name, token.hash));
        }
        crate::state_file::write(&self.path, text.as_bytes(), crate::state_file::PRIVATE)
            .map_err(|e| self.io_error(e))
    }

    /// Makes a token named `name` and returns it: the only time it is seen whole.
    pub fn create(&self, name: &str) -> Result<String, TokenError> {
        if !valid_name(name) {
            return Err(TokenError::BadName(name.to_owned()));
        }
        if name == crate::rtsp::digest::OWNER {
            return Err(TokenError::Reserved);
        }
        let mut tokens = self.list()?;
        if tokens.iter().any(|t| t.name == name) {
            return Err(TokenError::Exists(name.to_owned()));
        }
        let mut secret = [0u8; 32];
        getrandom::getrandom(&mut secret).map_err(|e| TokenError::Random(e.to_string()))?;
        let token = format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        );
        tokens.push(StoredToken {
            name: name.to_owned(),
            hash: hash(&token),
        });
        self.write(&tokens)?;
        self.set_rtsp_line(name, Some(&token));
        Ok(token)
    }

    /// The token's Digest line for the RTSP server (user: the token's name), or its removal.
    fn set_rtsp_line(&self, name: &str, token: Option<&str>) {
        let Some(state_dir) = self.path.parent() else {
            return;
        };
        if let Err(e) = crate::rtsp::digest::set(state_dir, name, token) {
            log::warn!("RTSP: the token `{name}`'s login line: {e}");
        }
    }

    /// Ends the token named `name`: the next request with it is refused.
    pub fn revoke(&self, name: &str) -> Result<(), TokenError> {
        let mut tokens = self.list()?;
        let before = tokens.len();
        tokens.retain(|t| t.name != name);
        if tokens.len() == before {
            return Err(TokenError::Unknown(name.to_owned()));
        }
        self.write(&tokens)?;
        self.set_rtsp_line(name, None);
        Ok(())
    }

    /// The name of the live token `candidate` is, if it is one. A file that cannot be read
    /// lets no one in (and says why in the log).
    pub fn check(&self, candidate: &str) -> Option<String> {
        if !candidate.starts_with(PREFIX) {
            return None;
        }
        let wanted = hash(candidate);
        match self.list() {
            Ok(tokens) => tokens
                .into_iter()
                .find(|t| crate::auth::constant_time_eq(t.hash.as_bytes(), wanted.as_bytes()))
                .map(|t| t.name),
            Err(e) => {
                log::error!("viewer tokens unusable, refusing every token: {e}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("peercam-tokens-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_created_token_lets_in_until_revoked_and_only_its_hash_is_kept() {
        let dir = temp_dir("lifecycle");
        let tokens = ViewerTokens::new(&dir);
        let token = tokens.create("home-assistant").unwrap();
        assert!(token.starts_with(PREFIX) && token.len() > 40, "{token}");
        assert_eq!(tokens.check(&token).as_deref(), Some("home-assistant"));
        assert_eq!(tokens.check("pcv_forged"), None);
        assert_eq!(tokens.check(""), None);
        let stored = std::fs::read_to_string(dir.join(TOKENS_FILE)).unwrap();
        assert!(!stored.contains(&token[PREFIX.len()..]), "{stored}");
        assert!(stored.contains(&hash(&token)));
        let other = tokens.create("kitchen").unwrap();
        assert!(matches!(
            tokens.create("kitchen"),
            Err(TokenError::Exists(_))
        ));
        tokens.revoke("home-assistant").unwrap();
        assert_eq!(tokens.check(&token), None, "revoked");
        assert_eq!(tokens.check(&other).as_deref(), Some("kitchen"));
        assert!(matches!(
            tokens.revoke("home-assistant"),
            Err(TokenError::Unknown(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_are_checked() {
        let tokens = ViewerTokens::new(&temp_dir("names"));
        for bad in ["", "has space", "a/b", &"x".repeat(65)] {
            assert!(
                matches!(tokens.create(bad), Err(TokenError::BadName(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_malformed_file_names_its_line_and_lets_no_one_in() {
        let dir = temp_dir("malformed");
        std::fs::create_dir_all(&dir).unwrap();
        let tokens = ViewerTokens::new(&dir);
        let token = tokens.create("good").unwrap();
        let mut text = std::fs::read_to_string(dir.join(TOKENS_FILE)).unwrap();
        text.push_str("broken-line-without-hash\n");
        std::fs::write(dir.join(TOKENS_FILE), text).unwrap();
        let error = tokens.list().unwrap_err().to_string();
        assert!(error.contains("line 3"), "{error}");
        assert_eq!(tokens.check(&token), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
