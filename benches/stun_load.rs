//! STUN Binding throughput (figures, not a test): peercam's responder and coturn, each pinned to
//! one core, answering a load client pinned to the other, on loopback, in one run.
//!
//! `cargo bench --bench stun_load`. Environment: `SECONDS` per server (default 5), `SOCKETS`
//! client sockets (default 8), `WINDOW` requests in flight per socket (default 32).
//! Needs `taskset` (util-linux) and `turnserver` (coturn).

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use peercam::stun::batch;
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
    let mut set = nix::sched::CpuSet::new();
    let pinned = set
        .set(core)
        .and_then(|()| nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set));
    if let Err(e) = pinned {
        eprintln!("cannot pin the load client to core {core}: {e}");
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

/// (busy, total) jiffies of the server's core so far, from /proc/stat.
fn server_core_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let line = stat
        .lines()
        .find(|l| l.starts_with(&format!("cpu{SERVER_CORE} ")))
        .expect("the server's core in /proc/stat");
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    // idle and iowait are the 4th and 5th fields.
    (total - fields[3] - fields[4], total)
}

/// What one load run measured.
struct Rate {
    answers_per_second: f64,
    /// How busy the server's core was (0..1), the kernel's work for its sockets included.
    server_core_busy: f64,
}

impl Rate {
    /// Answers per second of the server's core fully used.
    fn per_core_second(&self) -> f64 {
        self.answers_per_second / self.server_core_busy.max(0.01)
    }
}

/// Sends Binding requests from `sockets` sockets with `window` in flight each, for `seconds`;
/// measures valid answers per second and how busy the server's core was meanwhile. The client
/// batches its system calls like the responder does, so it is less often the bottleneck.
fn load(server: SocketAddr, sockets: usize, window: usize, seconds: u64) -> Rate {
    let clients: Vec<UdpSocket> = (0..sockets)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.set_nonblocking(true).expect("nonblocking");
            s
        })
        .collect();
    let request = binding_request(*b"peercambench");
    let window_of_requests = vec![(request, server); window];
    // Prime each socket's window.
    for socket in &clients {
        batch::send_all(socket, &window_of_requests);
    }
    let mut answers = batch::Batch::default();
    let mut answered = 0u64;
    let (busy_before, total_before) = server_core_jiffies();
    let started = Instant::now();
    let mut last_progress = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        let mut progressed = false;
        for socket in &clients {
            let Ok(count) = answers.receive(socket) else {
                continue;
            };
            answered += answers
                .datagrams()
                .filter(|(datagram, _)| parse_binding_response(datagram).is_some())
                .count() as u64;
            batch::send_all(socket, &window_of_requests[..count.min(window)]);
            progressed = true;
        }
        if progressed {
            last_progress = Instant::now();
        } else if last_progress.elapsed() > Duration::from_millis(50) {
            // Lost datagrams shrink the window: top it up.
            for socket in &clients {
                batch::send_all(socket, &window_of_requests[..1]);
            }
            last_progress = Instant::now();
        }
    }
    let (busy_after, total_after) = server_core_jiffies();
    Rate {
        answers_per_second: answered as f64 / started.elapsed().as_secs_f64(),
        server_core_busy: (busy_after - busy_before) as f64
            / (total_after - total_before).max(1) as f64,
    }
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
    report("peercam", &peercam);
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
    report("coturn", &coturn_rate);
    println!(
        "ratio peercam / coturn: {:.2} (answers/s), {:.2} (per core-second)",
        peercam.answers_per_second / coturn_rate.answers_per_second,
        peercam.per_core_second() / coturn_rate.per_core_second()
    );
}

fn report(server: &str, rate: &Rate) {
    println!(
        "{server}: {:.0} answers/s, server core {:.0}% busy: {:.0} answers per core-second",
        rate.answers_per_second,
        rate.server_core_busy * 100.0,
        rate.per_core_second()
    );
}
