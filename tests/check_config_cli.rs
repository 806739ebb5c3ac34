//! `peercam check-config` accepts good files and rejects bad ones naming the field and line.
mod common;

use common::{TempDir, run};

/// Writes `contents` to a file, runs `peercam <args> FILE`; returns success, stdout, stderr.
fn with_config(args: &[&str], contents: &str) -> (bool, String, String) {
    let dir = TempDir::new("config");
    let path = dir.write("peercam.toml", contents);
    let mut full: Vec<&str> = args.to_vec();
    full.push(path.to_str().expect("utf-8 temp path"));
    let out = run(&full);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check(contents: &str) -> (bool, String, String) {
    with_config(&["check-config"], contents)
}

#[test]
fn a_good_config_is_ok() {
    let (ok, stdout, stderr) = check("[media]\nwidth = 640\nheight = 360\n");
    assert!(ok, "{stderr}");
    assert!(stdout.contains("OK"));
}

#[test]
fn an_empty_config_is_ok() {
    assert!(check("").0);
}

#[test]
fn a_bad_value_names_field_and_line() {
    let (ok, _, stderr) = check("# camera\n[media]\nframerate = \"fast\"\n");
    assert!(!ok);
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains("media.framerate"), "{stderr}");
}

#[test]
fn an_unknown_field_is_named() {
    let (ok, _, stderr) = check("[http]\nhttps_prot = 443\n");
    assert!(!ok);
    assert!(
        stderr.contains("https_prot") && stderr.contains("line 2"),
        "{stderr}"
    );
}

#[test]
fn a_bad_launch_line_is_named_before_any_call() {
    let (ok, _, stderr) = check("[media]\nvideo_source = \"v4l2srcc device=/dev/video0\"\n");
    assert!(!ok);
    assert!(stderr.contains("media.video_source"), "{stderr}");
    assert!(stderr.contains("v4l2srcc"), "{stderr}");
    let (ok, _, stderr) = check("[media]\naudio_source = \"audiotestsrc ! fakesink\"\n");
    assert!(!ok);
    assert!(stderr.contains("no free output"), "{stderr}");
    let (ok, _, stderr) = check(
        "[media]\nvideo_source = \"videotestsrc is-live=true pattern=ball\"\n\
         video_encoder = \"openh264enc\"\n",
    );
    assert!(ok, "{stderr}");
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let out = run(&["check-config", "/nonexistent/peercam.toml"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read config /nonexistent/peercam.toml"),
        "{stderr}"
    );
}

#[test]
fn the_daemon_refuses_to_start_on_a_bad_config() {
    let (ok, _, stderr) = with_config(&["--config"], "[media]\nwidth = 641\n");
    assert!(!ok);
    assert!(stderr.contains("media.width"), "{stderr}");
}
