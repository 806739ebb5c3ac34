//! The device's STUN responder over real UDP: a real STUN client (coturn's
//! `turnutils_stunclient`) learns its mapped address over IPv4 and IPv6 loopback; malformed,
//! truncated, non-Binding and flood traffic gets no reply and valid requests keep being answered.
mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Daemon;
use peercam::stun::codec::{binding_request, parse_binding_response};

fn stun_client(daemon: &Daemon, server: &str) -> String {
    let out = Command::new("turnutils_stunclient")
        .args(["-p", &daemon.stun_port.to_string(), server])
        .output()
        .expect("turnutils_stunclient is installed by scripts/setup --test (package coturn)");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn socket(local: &str) -> UdpSocket {
    let socket = UdpSocket::bind(local).expect("bind a client socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    socket
}

/// Sends `datagram` and returns the reply, if one comes within 300 ms.
fn ask(socket: &UdpSocket, server: SocketAddr, datagram: &[u8]) -> Option<Vec<u8>> {
    socket.send_to(datagram, server).expect("send");
    let mut buffer = [0u8; 1500];
    socket
        .recv_from(&mut buffer)
        .ok()
        .map(|(n, _)| buffer[..n].to_vec())
}

fn mapped_address(socket: &UdpSocket, server: SocketAddr, id: u8) -> Option<SocketAddr> {
    ask(socket, server, &binding_request([id; 12])).and_then(|r| parse_binding_response(&r))
}

#[test]
fn a_real_stun_client_learns_its_address_over_ipv4_and_ipv6() {
    let daemon = Daemon::start("stun-client");
    let v4 = stun_client(&daemon, "127.0.0.1");
    assert!(v4.contains("UDP reflexive addr: 127.0.0.1:"), "{v4}");
    let v6 = stun_client(&daemon, "::1");
    assert!(v6.contains("UDP reflexive addr: ::1:"), "{v6}");
}

#[test]
fn the_reply_names_the_senders_address_and_port() {
    let daemon = Daemon::start("stun-mapped");
    for local in ["127.0.0.1:0", "[::1]:0"] {
        let client = socket(local);
        let server: SocketAddr = if local.starts_with('[') {
            format!("[::1]:{}", daemon.stun_port)
        } else {
            format!("127.0.0.1:{}", daemon.stun_port)
        }
        .parse()
        .unwrap();
        let reply = ask(&client, server, &binding_request([5; 12])).expect("a reply");
        assert!(reply.len() <= 76, "no amplification: {} bytes", reply.len());
        assert_eq!(parse_binding_response(&reply), client.local_addr().ok());
    }
}

#[test]
fn bad_datagrams_get_no_reply_and_do_not_disturb_the_responder() {
    let daemon = Daemon::start("stun-bad");
    let server: SocketAddr = format!("127.0.0.1:{}", daemon.stun_port).parse().unwrap();
    let client = socket("127.0.0.1:0");
    let valid = binding_request([1; 12]);
    let mut response = valid.clone();
    response[..2].copy_from_slice(&[0x01, 0x01]);
    let mut indication = valid.clone();
    indication[..2].copy_from_slice(&[0x00, 0x11]);
    let mut allocate = valid.clone();
    allocate[..2].copy_from_slice(&[0x00, 0x03]);
    let mut bad_fingerprint = valid.clone();
    let last = bad_fingerprint.len() - 1;
    bad_fingerprint[last] ^= 0xff;
    let mut bad_length = valid.clone();
    bad_length[3] = 0x40;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("truncated header", valid[..10].to_vec()),
        ("truncated attribute", valid[..24].to_vec()),
        ("HTTP", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("RTP-like", vec![0x80; 200]),
        ("zeros", vec![0; 1200]),
        ("response", response),
        ("indication", indication),
        ("allocate request", allocate),
        ("bad fingerprint", bad_fingerprint),
        ("bad length", bad_length),
    ];
    for (what, datagram) in &cases {
        assert_eq!(ask(&client, server, datagram), None, "{what} got a reply");
    }
    assert_eq!(
        mapped_address(&client, server, 9),
        client.local_addr().ok(),
        "still answering after the bad traffic"
    );
}

#[test]
fn a_flood_is_cut_to_the_rate_limit_while_others_are_answered() {
    let daemon = Daemon::start_with("stun-flood", "rate_per_second = 20\nburst = 40\n");
    let server: SocketAddr = format!("127.0.0.1:{}", daemon.stun_port).parse().unwrap();
    let flooder = socket("127.0.0.1:0");
    flooder
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let started = Instant::now();
    for i in 0..2000u32 {
        let mut id = [0u8; 12];
        id[..4].copy_from_slice(&i.to_be_bytes());
        flooder.send_to(&binding_request(id), server).unwrap();
    }
    let mut replies = 0;
    let mut buffer = [0u8; 1500];
    while flooder.recv_from(&mut buffer).is_ok() {
        replies += 1;
    }
    let allowed = 40.0 + 20.0 * started.elapsed().as_secs_f64() + 5.0;
    assert!(replies > 0, "the first requests of a burst are answered");
    assert!(
        f64::from(replies) <= allowed,
        "{replies} replies to a flood of 2000 (at most {allowed:.0} allowed)"
    );

    // Another source (another loopback address) is answered at once.
    let other = socket("127.0.0.2:0");
    assert_eq!(
        mapped_address(&other, server, 3),
        other.local_addr().ok(),
        "a different source is not limited by the flood"
    );
    // And the flooder is answered again once its bucket refills.
    std::thread::sleep(Duration::from_millis(300));
    flooder
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(mapped_address(&flooder, server, 4).is_some());
}
