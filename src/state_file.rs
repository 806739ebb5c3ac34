//! Writing a file in the state directory whole: the contents go to a staged file with the
//! given mode, are synced, and the staged file is renamed over the old one. A crash or a full
//! disk leaves the old file or the new one, never half of one (the password's hash, the viewer
//! tokens, the certificate and its key). A file replaced keeps its owner when the writer may
//! give it (root running `set-password` for the daemon's user). Also where the state directory
//! is when nothing names one.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where the state directory is on the board, when it is writable.
const SYSTEM_STATE_DIR: &str = "/var/lib/peercam";

/// `/var/lib/peercam` when it exists or can be made and is writable, else a per-user directory
/// (`$XDG_STATE_HOME/peercam`, `~/.local/state/peercam`, or under the temporary directory).
pub fn default_dir() -> PathBuf {
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

/// Mode for secrets: readable and writable by the daemon's user only.
pub const PRIVATE: u32 = 0o600;

/// Writes `contents` to `path` (creating its directory) with `mode`, atomically.
pub fn write(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut staged_name = path.as_os_str().to_owned();
    staged_name.push(".new");
    let staged = std::path::PathBuf::from(staged_name);
    let written =
        write_staged(&staged, path, contents, mode).and_then(|()| std::fs::rename(&staged, path));
    if written.is_err() {
        // No half-written copy of a secret is left beside the old file.
        let _ = std::fs::remove_file(&staged);
    }
    written
}

fn write_staged(staged: &Path, path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(staged)?;
    if let Ok(old) = std::fs::metadata(path) {
        // Only root may give a file away; anyone else writes their own file, as when it is new.
        let _ = std::os::unix::fs::fchown(&file, Some(old.uid()), Some(old.gid()));
    }
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_file_is_replaced_whole_with_its_mode_and_no_staged_file_is_left() {
        let dir = std::env::temp_dir().join(format!("peercam-state-file-{}", std::process::id()));
        let path = dir.join("sub").join("secret");
        write(&path, b"first", PRIVATE).expect("first write");
        write(&path, b"second", PRIVATE).expect("second write");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("secret")]);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn a_replaced_file_keeps_its_owner_when_the_writer_may_give_it() {
        let dir = std::env::temp_dir().join(format!("peercam-state-owner-{}", std::process::id()));
        let path = dir.join("password");
        write(&path, b"old", PRIVATE).expect("first write");
        let me = std::fs::metadata(&path).expect("metadata").uid();
        // Root (as in CI) gives the file to `nobody` first; anyone else cannot, and then the
        // file simply stays theirs.
        let nobody = 65534;
        let given = std::os::unix::fs::chown(&path, Some(nobody), Some(nobody)).is_ok();
        write(&path, b"new", PRIVATE).expect("second write");
        let owner = std::fs::metadata(&path).expect("metadata").uid();
        assert_eq!(owner, if given { nobody } else { me });
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn a_failed_write_leaves_no_staged_file() {
        let dir = std::env::temp_dir().join(format!("peercam-state-failed-{}", std::process::id()));
        // A directory where the file should be: the rename over it fails.
        let path = dir.join("tokens");
        std::fs::create_dir_all(&path).expect("make the obstacle");
        assert!(write(&path, b"secret", PRIVATE).is_err());
        assert!(
            !dir.join("tokens.new").exists(),
            "the staged copy was removed"
        );
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
