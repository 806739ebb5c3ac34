//! `peercam probe` against the real daemon (test pattern, x264, 30 fps): it calls, receives
//! frames at the source's rate and exits 0; it makes ten calls in a row with the device free
//! after each; it fails clearly against a stopped daemon, a wrong certificate or password; it
//! watches through WHEP with a viewer token; a caller taking video only holds up nobody's
//! audio.
#![cfg(feature = "probe")]

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Daemon, binary};
use serde_json::Value;

/// The daemon's default frame rate.
const SOURCE_FPS: f64 = 30.0;

fn probe(args: &[&str], password: Option<&str>) -> Output {
    let mut command = Command::new(binary());
    command
        .arg("probe")
        .args(args)
        .env_remove("PEERCAM_PASSWORD");
    if let Some(password) = password {
        command.env("PEERCAM_PASSWORD", password);
    }
    command.output().expect("run peercam probe")
}

fn report(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "probe printed no JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn frames(call: &Value) -> u64 {
    call["video"]["frames"].as_u64().unwrap_or(0)
}

#[test]
fn probe_receives_the_test_pattern_at_its_frame_rate() {
    let daemon = Daemon::start("probe-call");
    let url = daemon.url();
    let output = probe(&[&url, "--insecure", "--json", "--duration", "4"], None);
    assert!(output.status.success(), "probe failed: {}", stderr(&output));
    let report = report(&output);
    let call = &report["calls"][0];
    assert!(frames(call) > 0, "no frames: {call}");
    let fps = call["video"]["fps"].as_f64().unwrap_or(0.0);
    assert!(
        (fps - SOURCE_FPS).abs() <= SOURCE_FPS * 0.2,
        "fps {fps} is not within 20% of {SOURCE_FPS}: {call}"
    );
    assert_eq!(call["video_codec"], "video/H264");
    assert!(call["timings"]["first_keyframe_ms"].as_f64().is_some());
    assert!(
        call["audio"]["packets"].as_u64().unwrap_or(0) > 0,
        "no audio: {call}"
    );
    assert!(report["failure"].is_null());

    // The daemon timed each frame from the encoder to the socket.
    let (_, metrics) = common::s_client(&daemon, &[], &common::get("/metrics", ""));
    let count = metrics
        .lines()
        .find_map(|line| line.strip_prefix("peercam_send_latency_seconds_count "))
        .and_then(|count| count.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(count > frames(call) / 2, "{metrics}");

    // webrtcbin's unused FEC and RED encoders were taken out of the video and audio streams,
    // so a frame's packets reach the socket as one list.
    let bypassed = metrics
        .lines()
        .find_map(|line| line.strip_prefix("peercam_fec_encoders_bypassed_total "))
        .and_then(|count| count.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(bypassed >= 2, "{metrics}");
}

#[test]
fn a_device_without_a_microphone_sends_video_only() {
    let daemon = Daemon::start_with("probe-no-audio", "[media]\naudio_source = \"none\"\n");
    let url = daemon.url();
    let output = probe(&[&url, "--insecure", "--json", "--duration", "2"], None);
    assert!(output.status.success(), "probe failed: {}", stderr(&output));
    let call = &report(&output)["calls"][0];
    assert!(frames(call) > 0, "no frames: {call}");
    assert!(call["audio"].is_null(), "audio arrived: {call}");
}

#[test]
fn a_caller_taking_video_only_holds_up_no_one_elses_audio() {
    // webrtcbin blocks the pad of a stream it did not negotiate to send; were the shared
    // source to push the caller's audio into it, its thread would wait there for good.
    let daemon = Daemon::start("probe-video-only");
    let url = daemon.url();
    let (caller, viewer) = std::thread::scope(|scope| {
        let caller = scope.spawn(|| {
            probe(
                &[
                    &url,
                    "--insecure",
                    "--json",
                    "--video-only",
                    "--duration",
                    "5",
                ],
                None,
            )
        });
        std::thread::sleep(Duration::from_secs(2));
        let viewer = probe(
            &[&url, "--insecure", "--json", "--whep", "--duration", "2"],
            None,
        );
        (caller.join().expect("the caller's probe"), viewer)
    });
    assert!(caller.status.success(), "caller: {}", stderr(&caller));
    let call = &report(&caller)["calls"][0];
    assert!(frames(call) > 0, "the caller got no frames: {call}");
    assert!(
        call["audio"]["packets"].as_u64().unwrap_or(0) == 0,
        "the caller refused audio, yet got it: {call}"
    );
    assert!(viewer.status.success(), "viewer: {}", stderr(&viewer));
    let watched = &report(&viewer)["calls"][0];
    assert!(frames(watched) > 0, "the viewer got no frames: {watched}");
    assert!(
        watched["audio"]["packets"].as_u64().unwrap_or(0) > 0,
        "the viewer got no audio: {watched}"
    );
}

#[test]
fn probe_makes_ten_calls_in_a_row_and_leaves_the_device_free() {
    let daemon = Daemon::start("probe-calls");
    let url = daemon.url();
    let output = probe(
        &[
            &url,
            "--insecure",
            "--json",
            "--calls",
            "10",
            "--duration",
            "0.5",
        ],
        None,
    );
    assert!(output.status.success(), "probe failed: {}", stderr(&output));
    let report = report(&output);
    let calls = report["calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 10, "{report}");
    for (number, call) in calls.iter().enumerate() {
        assert!(
            frames(call) > 0,
            "call {} had no frames: {call}",
            number + 1
        );
    }
    assert!(report["first_keyframe_ms"]["p95"].as_f64().is_some());
    // The device is free: one more call is answered, not refused as busy.
    let after = probe(&[&url, "--insecure", "--duration", "0.5"], None);
    assert!(after.status.success(), "{}", stderr(&after));
    let human = String::from_utf8_lossy(&after.stdout);
    assert!(human.contains("call 1: video/H264"), "{human}");
}

#[test]
fn probe_fails_clearly_within_its_timeout_when_the_daemon_is_stopped() {
    let daemon = Daemon::start("probe-stopped");
    let url = daemon.url();
    drop(daemon);
    let started = Instant::now();
    let output = probe(&[&url, "--insecure", "--timeout", "3"], None);
    let took = started.elapsed();
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("cannot reach"), "{message}");
    assert!(
        took < Duration::from_secs(3) + Duration::from_secs(10),
        "{took:?}"
    );
}

#[test]
fn probe_checks_the_certificate_and_logs_in() {
    let daemon = Daemon::start_with_password("probe-login", "");
    let url = daemon.url();

    // No way to trust the certificate: refused before connecting.
    let output = probe(&[&url], None);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("--fingerprint"),
        "{}",
        stderr(&output)
    );

    // A pinned fingerprint that is not the device's.
    let wrong = "00:".repeat(31) + "00";
    let output = probe(&[&url, "--fingerprint", &wrong], Some("whatever1"));
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(&daemon.fingerprint),
        "{}",
        stderr(&output)
    );

    daemon.set_password("probe password 1");

    let pinned = ["--fingerprint", daemon.fingerprint.as_str()];
    let output = probe(&[&url, pinned[0], pinned[1]], None);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("asks for a password"),
        "{}",
        stderr(&output)
    );

    let output = probe(&[&url, pinned[0], pinned[1]], Some("not the password"));
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("refused the password"),
        "{}",
        stderr(&output)
    );

    let output = probe(
        &[&url, pinned[0], pinned[1], "--json", "--duration", "1"],
        Some("probe password 1"),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(frames(&report(&output)["calls"][0]) > 0);
}

#[test]
fn two_probes_watch_at_once_through_whep_with_a_viewer_token() {
    let daemon = Daemon::start_with_password("probe-whep", "");
    let url = daemon.url();
    let token = daemon.create_token("probe");

    let watch = |token: &str, seconds: &str| {
        Command::new(binary())
            .args(["probe", &url, "--insecure", "--whep", "--json"])
            .args(["--duration", seconds])
            .env_remove("PEERCAM_PASSWORD")
            .env("PEERCAM_TOKEN", token)
            .output()
            .expect("run peercam probe --whep")
    };
    let refused = watch("pcv_wrong", "1");
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("HTTP 401"),
        "{}",
        stderr(&refused)
    );

    // Two viewers at once, both fed by the one encoder.
    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(|| watch(&token, "3"));
        let second = scope.spawn(|| watch(&token, "3"));
        (first.join().expect("first"), second.join().expect("second"))
    });
    for output in [first, second] {
        assert!(output.status.success(), "probe failed: {}", stderr(&output));
        let report = report(&output);
        let call = &report["calls"][0];
        assert!(frames(call) > 45, "too few frames: {call}");
        assert_eq!(call["video_codec"], "video/H264", "{call}");
        assert!(call["audio"]["packets"].as_u64().unwrap_or(0) > 0, "{call}");
        // The probe offers AES-GCM first, as browsers do; GStreamer's DTLS element offers
        // AES-CM with HMAC-SHA1 only (what scripts/bench compares Janus on).
        assert_eq!(call["srtp_cipher"], "SRTP_AES128_CM_HMAC_SHA1_80", "{call}");
    }
}
