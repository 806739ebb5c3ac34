//! STUN Binding throughput (figures, not a test): peercam's responder and coturn, each pinned to
//! one core, answering a load client pinned to the other, on loopback, in one run.
//!
//! `cargo bench --bench stun_load`. Environment: `SECONDS` per server (default 5), `SOCKETS`
//! client sockets (default 8), `WINDOW` requests in flight per socket (default 32).
//! Needs `taskset` (util-linux) and `turnserver` (coturn).

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use peercam::stun::codec::{binding_request, parse_binding_response};

#[path = "../tests/common/mod.rs"]
mod common;

const SERVER_CORE: &str = "1";
const CLIENT_CORE: usize = 0;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Pins the calling thread (the load client) to one core.
fn pin_to_core(core: usize) {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn pin_process(pid: u32) {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", SERVER_CORE, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .expect("taskset (util-linux)");
    assert!(status.success(), "taskset failed");
}

/// Sends Binding requests from `sockets` sockets with `window` in flight each, for `seconds`;
/// returns valid answers per second.
fn load(server: SocketAddr, sockets: usize, window: usize, seconds: u64) -> f64 {
    let clients: Vec<UdpSocket> = (0..sockets)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.set_nonblocking(true).expect("nonblocking");
            s
        })
        .collect();
    let request = binding_request(*b"peercambench");
    // Prime each socket's window.
    for socket in &clients {
        for _ in 0..window {
            let _ = socket.send_to(&request, server);
        }
    }
    let mut answered = 0u64;
    let mut buffer = [0u8; 1500];
    let started = Instant::now();
    let mut last_progress = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        let mut progressed = false;
        for socket in &clients {
            while let Ok((n, _)) = socket.recv_from(&mut buffer) {
                if parse_binding_response(&buffer[..n]).is_some() {
                    answered += 1;
                }
                let _ = socket.send_to(&request, server);
                progressed = true;
            }
        }
        if progressed {
            last_progress = Instant::now();
        } else if last_progress.elapsed() > Duration::from_millis(50) {
            // Lost datagrams shrink the window: top it up.
            for socket in &clients {
                let _ = socket.send_to(&request, server);
            }
            last_progress = Instant::now();
        }
    }
    answered as f64 / started.elapsed().as_secs_f64()
}

fn start_coturn(port: u16) -> Child {
    let child = Command::new("turnserver")
        .args([
            "-n",
            "--listening-ip=127.0.0.1",
            &format!("--listening-port={port}"),
            "--stun-only",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--relay-threads=1",
            "--log-file=stdout",
            "--simple-log",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("turnserver (coturn)");
    std::thread::sleep(Duration::from_millis(500));
    child
}

fn main() {
    let seconds = env_number("SECONDS", 5);
    let sockets = env_number("SOCKETS", 8) as usize;
    let window = env_number("WINDOW", 32) as usize;
    pin_to_core(CLIENT_CORE);
    println!(
        "STUN Binding answers per second; each server pinned to core {SERVER_CORE}, the client \
         ({sockets} sockets x {window} in flight) to core {CLIENT_CORE}, {seconds} s each"
    );

    let daemon = common::Daemon::start_with(
        "stun-bench",
        "rate_per_second = 100000000\nburst = 100000000\n",
    );
    pin_process(daemon.pid());
    let peercam_server: SocketAddr = format!("127.0.0.1:{}", daemon.stun_port)
        .parse()
        .expect("address");
    let peercam = load(peercam_server, sockets, window, seconds);
    println!("peercam: {peercam:.0} answers/s");
    drop(daemon);

    let coturn_port = 34_790;
    let mut coturn = start_coturn(coturn_port);
    pin_process(coturn.id());
    let coturn_rate = load(
        format!("127.0.0.1:{coturn_port}").parse().expect("address"),
        sockets,
        window,
        seconds,
    );
    let _ = coturn.kill();
    let _ = coturn.wait();
    println!("coturn:  {coturn_rate:.0} answers/s");
    println!("ratio peercam / coturn: {:.2}", peercam / coturn_rate);
}
