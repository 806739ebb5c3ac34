//! `peercam check-config` accepts good files and rejects bad ones naming the field and line.
mod common;

use common::{TempDir, run};

#[test]
fn a_good_config_is_ok() {
    let dir = TempDir::new("check-good");
    let path = dir.write("good.toml", "[media]\nwidth = 640\nheight = 360\n");
    let out = run(&["check-config", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
}

#[test]
fn an_empty_config_is_ok() {
    let dir = TempDir::new("check-empty");
    let path = dir.write("empty.toml", "");
    assert!(
        run(&["check-config", path.to_str().unwrap()])
            .status
            .success()
    );
}

#[test]
fn a_bad_value_names_field_and_line() {
    let dir = TempDir::new("check-bad");
    let path = dir.write("bad.toml", "# camera\n[media]\nframerate = \"fast\"\n");
    let out = run(&["check-config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("media.framerate"), "{err}");
}

#[test]
fn an_unknown_field_is_named() {
    let dir = TempDir::new("check-unknown");
    let path = dir.write("typo.toml", "[http]\nhttps_prot = 443\n");
    let out = run(&["check-config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("https_prot") && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let out = run(&["check-config", "/nonexistent/peercam.toml"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot read config /nonexistent/peercam.toml")
    );
}

#[test]
fn the_daemon_refuses_to_start_on_a_bad_config() {
    let dir = TempDir::new("start-bad");
    let path = dir.write("bad.toml", "[media]\nwidth = 641\n");
    let out = run(&["--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("media.width"));
}
