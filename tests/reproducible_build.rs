//! The build is reproducible: Cargo.lock is present and matches Cargo.toml, every build the
//! scripts and CI run passes `--locked`, and the Dockerfiles `cross` builds in are exactly what
//! the one target list (scripts/lib/cross-target.sh) generates.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::files_under;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `cargo tree --locked --offline` in `dir`: resolves from the local index only (unlike
/// `cargo metadata`, which fetches every platform's crates), and fails when Cargo.lock is
/// missing or would change.
fn lock_matches(dir: &Path) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["tree", "--locked", "--offline", "--prefix", "none"])
        .current_dir(dir)
        .output()
        .expect("run cargo tree");
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

#[test]
fn cargo_lock_is_present_and_up_to_date() {
    assert!(root().join("Cargo.lock").is_file(), "Cargo.lock is missing");
    if let Err(error) = lock_matches(&root()) {
        panic!("Cargo.lock does not match Cargo.toml: {error}");
    }
    let ignore = std::fs::read_to_string(root().join(".gitignore")).unwrap_or_default();
    assert!(
        !ignore.lines().any(|line| line.trim() == "Cargo.lock"),
        ".gitignore leaves Cargo.lock out of the repository"
    );
}

#[test]
fn the_lock_check_fails_without_a_lock_file() {
    let copy = common::TempDir::new("no-lock");
    for dir in ["src", "benches"] {
        for file in files_under(&root().join(dir)) {
            let relative = file.strip_prefix(root()).expect("inside the tree");
            let target = copy.0.join(relative);
            std::fs::create_dir_all(target.parent().expect("a parent")).expect("mkdir");
            std::fs::copy(&file, &target).expect("copy");
        }
    }
    std::fs::copy(root().join("Cargo.toml"), copy.0.join("Cargo.toml")).expect("copy");
    let error = lock_matches(&copy.0).expect_err("accepted a tree without Cargo.lock");
    assert!(error.contains("--locked"), "{error}");
}

/// The build commands a line runs, if any: `cargo build|test|bench|clippy|run` and
/// `cross build`, in shell (`cargo build ...`) or in Python argument lists (`"cargo", "bench"`).
fn runs_a_build(line: &str) -> bool {
    let code = line.trim_start();
    if code.starts_with('#') || code.starts_with("//") {
        return false;
    }
    let squeezed = code.replace(['"', '\'', ','], " ");
    let words: Vec<&str> = squeezed.split_whitespace().collect();
    words.windows(2).any(|pair| {
        matches!(
            pair,
            ["cargo", "build" | "test" | "bench" | "clippy" | "run"] | ["cross", "build"]
        )
    })
}

#[test]
fn every_scripted_build_is_locked() {
    let mut files = files_under(&root().join("scripts"));
    files.extend(files_under(&root().join(".ci")));
    files.extend(files_under(&root().join(".github")));
    let mut builds = 0;
    let mut unlocked = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for (number, line) in text.lines().enumerate() {
            if runs_a_build(line) {
                builds += 1;
                if !line.contains("--locked") {
                    unlocked.push(format!(
                        "{}:{}: {}",
                        file.display(),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        builds >= 5,
        "found only {builds} build commands: is the scan broken?"
    );
    assert!(
        unlocked.is_empty(),
        "builds without --locked:\n{}",
        unlocked.join("\n")
    );
}

#[test]
fn the_scan_sees_builds_in_shell_and_python() {
    assert!(runs_a_build("cargo build --release"));
    assert!(runs_a_build("    exec cargo test"));
    assert!(runs_a_build(
        r#"subprocess.run(["cargo", "bench", "--bench", name])"#
    ));
    assert!(runs_a_build("- run: cross build --release --target x"));
    assert!(!runs_a_build("# cargo build in a comment"));
    assert!(!runs_a_build("cargo fmt --check"));
}

#[test]
fn cross_dockerfiles_are_generated_from_the_target_list() {
    let cross_toml = std::fs::read_to_string(root().join("Cross.toml")).expect("Cross.toml");
    for (target, triple) in [
        ("aarch64", "aarch64-unknown-linux-gnu"),
        ("armv7", "armv7-unknown-linux-gnueabihf"),
    ] {
        let output = Command::new("sh")
            .arg(root().join("scripts/cross-build"))
            .args(["--dockerfile", target])
            .output()
            .expect("run scripts/cross-build --dockerfile");
        assert!(output.status.success(), "{output:?}");
        let generated = String::from_utf8_lossy(&output.stdout);
        let file = format!("cross/{target}.Dockerfile");
        let committed = std::fs::read_to_string(root().join(&file)).unwrap_or_default();
        assert_eq!(
            committed, generated,
            "{file} is out of date: run scripts/cross-build --dockerfile {target} > {file}"
        );
        assert!(generated.contains(&format!(
            "CARGO_TARGET_{}_LINKER",
            triple.to_uppercase().replace('-', "_")
        )));
        assert!(
            cross_toml.contains(&format!("[target.{triple}]\ndockerfile = \"{file}\"")),
            "Cross.toml does not build {triple} in {file}"
        );
    }
}
