//! Writing a file in the state directory whole: the contents go to a staged file with the
//! given mode, are synced, and the staged file is renamed over the old one. A crash or a full
//! disk leaves the old file or the new one, never half of one (the password's hash, the viewer
//! tokens, the certificate and its key).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

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
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&staged)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&staged, path)
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
}
