//! The RTSP server's Digest credentials: an `htdigest` file in the state directory, one
//! `user:realm:HA1` line per user, which GStreamer's RTSP server reads (`parse_htdigest`).
//!
//! Digest (RFC 7616, MD5 as every NVR speaks it) needs HA1 = MD5(user:realm:secret), and the
//! device keeps no secret in the clear: the owner's password is an argon2 hash and a viewer
//! token a SHA-256. So an HA1 is written when the secret passes through: the owner's (user
//! `owner`) when the password is set and at each login, a token's (user: the token's name) when
//! it is made; a revoked token's line goes with it.

use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use thiserror::Error;

/// The file, in the state directory.
pub const FILE: &str = "rtsp.htdigest";
/// The realm every line is for (RFC 7616: shown to the user by some clients).
pub const REALM: &str = "peercam";
/// The owner's user name.
pub const OWNER: &str = "owner";

#[derive(Debug, Error)]
pub enum DigestError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// MD5(user:realm:secret), in lower-case hex.
pub fn ha1(user: &str, secret: &str) -> String {
    let digest = Md5::digest(format!("{user}:{REALM}:{secret}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes (or replaces) `user`'s line for `secret`; `None` removes it.
pub fn set(state_dir: &Path, user: &str, secret: Option<&str>) -> Result<(), DigestError> {
    let path = state_dir.join(FILE);
    let io = |source| DigestError::Io {
        path: path.clone(),
        source,
    };
    let old = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    let mut lines: Vec<String> = old
        .lines()
        .filter(|line| line.split(':').next() != Some(user))
        .map(str::to_owned)
        .collect();
    if let Some(secret) = secret {
        lines.push(format!("{user}:{REALM}:{}", ha1(user, secret)));
    }
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    if text == old {
        return Ok(());
    }
    crate::state_file::write(&path, text.as_bytes(), crate::state_file::PRIVATE).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ha1_is_rfc_2617s() {
        // RFC 2617 section 3.5's example: Mufasa, "testrealm@host.com", "Circle Of Life".
        let digest = Md5::digest(b"Mufasa:testrealm@host.com:Circle Of Life");
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "939e7578ed9e3c518a452acee763bce9");
        assert_eq!(ha1("owner", "x").len(), 32);
    }

    #[test]
    fn lines_are_set_replaced_and_removed() {
        let dir = std::env::temp_dir().join(format!("peercam-digest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dir = dir.as_path();
        set(dir, OWNER, Some("one")).unwrap();
        set(dir, "frigate", Some("pcv_a")).unwrap();
        set(dir, OWNER, Some("two")).unwrap();
        let text = std::fs::read_to_string(dir.join(FILE)).unwrap();
        assert_eq!(
            text,
            format!(
                "frigate:peercam:{}\nowner:peercam:{}\n",
                ha1("frigate", "pcv_a"),
                ha1(OWNER, "two")
            )
        );
        set(dir, "frigate", None).unwrap();
        let text = std::fs::read_to_string(dir.join(FILE)).unwrap();
        assert!(!text.contains("frigate"), "{text}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
