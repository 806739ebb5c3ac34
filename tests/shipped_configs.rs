//! Every config file the project ships passes `peercam check-config`: in full where its elements
//! exist on this machine, else for launch-line syntax with only board elements missing (a Pi's
//! camera source and hardware encoder). The README's example config is checked too.
//! `scripts/board-test` checks the Raspberry Pi files again on the emulated board, with the
//! board's own GStreamer.

mod common;

use std::path::Path;

use common::{TempDir, files_under, run};

/// Elements only a board has; a shipped file may name them and still pass on this machine.
const BOARD_ONLY_ELEMENTS: [&str; 2] = ["libcamerasrc", "v4l2h264enc"];

/// Checks one file; returns the board elements it names that this machine lacks.
fn check(path: &Path) -> Vec<String> {
    let path_text = path.to_str().expect("UTF-8 path");
    let full = run(&["check-config", path_text]);
    if full.status.success() {
        return Vec::new();
    }
    let full_error = String::from_utf8_lossy(&full.stderr).into_owned();
    let syntax = run(&["check-config", "--syntax-only", path_text]);
    let stdout = String::from_utf8_lossy(&syntax.stdout);
    assert!(
        syntax.status.success(),
        "{} is refused: {full_error}{}",
        path.display(),
        String::from_utf8_lossy(&syntax.stderr)
    );
    let missing: Vec<String> = stdout
        .split_once("not on this machine: ")
        .map(|(_, list)| {
            list.trim()
                .trim_end_matches(')')
                .split(", ")
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    for element in &missing {
        assert!(
            BOARD_ONLY_ELEMENTS.contains(&element.as_str()),
            "{} names `{element}`, which is no board element (full check: {full_error})",
            path.display()
        );
    }
    assert!(!missing.is_empty(), "{}: {full_error}", path.display());
    missing
}

#[test]
fn every_board_config_passes_check_config() {
    let files: Vec<_> = files_under(&Path::new(env!("CARGO_MANIFEST_DIR")).join("board"))
        .into_iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    assert!(files.len() >= 4, "found only {files:?}");
    for file in files {
        let missing = check(&file);
        // The PC package's config and the Debian image's name no board-only element.
        let generic = file.ends_with("pc/peercam.toml")
            || file.ends_with("raspberrypi/peercam-debian-image.toml");
        assert!(
            !generic || missing.is_empty(),
            "{} needs {missing:?}",
            file.display()
        );
    }
}

#[test]
fn the_readme_example_config_passes_check_config() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let block = readme
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README has a toml block");
    let dir = TempDir::new("readme-config");
    assert_eq!(
        check(&dir.write("peercam.toml", block)),
        Vec::<String>::new()
    );
}

#[test]
fn a_board_file_ending_in_caps_is_refused_even_for_syntax() {
    let dir = TempDir::new("caps-at-end");
    let file = dir.write(
        "peercam.toml",
        "[media]\nvideo_source = \"libcamerasrc ! video/x-raw,width=1280,format=NV12\"\n",
    );
    let output = run(&[
        "check-config",
        "--syntax-only",
        file.to_str().expect("path"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "accepted: {stderr}");
    assert!(stderr.contains("media.video_source"), "{stderr}");
    assert!(stderr.contains("capsfilter caps=video/x-raw"), "{stderr}");
}
