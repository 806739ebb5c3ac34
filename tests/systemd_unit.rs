//! The systemd unit passes systemd's own checks: `systemd-analyze verify` is clean and
//! `systemd-analyze security --offline=true` rates its exposure 2.0 or lower.
mod common;

use std::process::Command;

use common::{TempDir, binary};

const UNIT: &str = include_str!("../systemd/peercam.service");
const SYSUSERS: &str = include_str!("../systemd/peercam.sysusers");

/// The unit with its paths pointed at the binary under test (verify checks that they exist).
fn unit_under_test(dir: &TempDir) -> std::path::PathBuf {
    let unit = UNIT.replace("/usr/bin/peercam", binary().to_str().expect("utf-8 path"));
    dir.write("peercam.service", &unit)
}

fn systemd_analyze(args: &[&str]) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze (package systemd) is installed by scripts/setup --test");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_unit_verifies_cleanly() {
    let dir = TempDir::new("unit-verify");
    let unit = unit_under_test(&dir);
    let (ok, text) = systemd_analyze(&["verify", unit.to_str().unwrap()]);
    assert!(ok, "systemd-analyze verify failed:\n{text}");
    assert!(
        text.trim().is_empty(),
        "systemd-analyze verify warned:\n{text}"
    );
}

#[test]
fn the_unit_exposure_is_at_most_2_0() {
    let dir = TempDir::new("unit-security");
    let unit = unit_under_test(&dir);
    let (_, text) = systemd_analyze(&["security", "--offline=true", unit.to_str().unwrap()]);
    let exposure: f64 = text
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for peercam.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(exposure <= 2.0, "exposure {exposure} > 2.0:\n{text}");
}

#[test]
fn the_unit_is_a_notify_service_with_a_watchdog_and_its_own_user() {
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "User=peercam",
        "SupplementaryGroups=video audio render",
        "StateDirectory=peercam",
        "ConfigurationDirectory=peercam",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "DevicePolicy=closed",
        "SystemCallFilter=@system-service",
    ] {
        assert!(UNIT.lines().any(|l| l.starts_with(line)), "missing {line}");
    }
    assert!(SYSUSERS.lines().any(|l| l.starts_with("u peercam ")));
    for group in ["video", "audio", "render"] {
        assert!(
            SYSUSERS.lines().any(|l| l == format!("m peercam {group}")),
            "group {group}"
        );
    }
}

const TUNNEL_UNIT: &str = include_str!("../remote/peercam-tunnel.service");

#[test]
fn the_tunnel_unit_verifies_cleanly_and_restarts_always() {
    let dir = TempDir::new("tunnel-unit-verify");
    let unit = dir.write("peercam-tunnel.service", TUNNEL_UNIT);
    let (ok, text) = systemd_analyze(&["verify", unit.to_str().unwrap()]);
    assert!(ok, "systemd-analyze verify failed:\n{text}");
    assert!(
        text.trim().is_empty(),
        "systemd-analyze verify warned:\n{text}"
    );
    for line in [
        "Restart=always",
        "User=peercam",
        "ConditionPathExists=/etc/peercam/tunnel.ssh_config",
        "ExecStart=/usr/bin/autossh -M 0 -N -F /etc/peercam/tunnel.ssh_config peercam-tunnel",
    ] {
        assert!(TUNNEL_UNIT.lines().any(|l| l == line), "missing {line}");
    }
}
