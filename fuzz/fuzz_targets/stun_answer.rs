//! Fuzzes the STUN codec: any datagram from any source must either be ignored or get a small,
//! well-formed reply; a success reply must decode back to the source address.
#![no_main]

use std::net::{IpAddr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use peercam::stun::codec::{answer, parse_binding_response};

/// The first byte picks the family; then the address and port; the rest is the datagram.
fn split(input: &[u8]) -> Option<(SocketAddr, &[u8])> {
    let (&family, rest) = input.split_first()?;
    let ip_len = if family & 1 == 0 { 4 } else { 16 };
    if rest.len() < ip_len + 2 {
        return None;
    }
    let (ip, rest) = rest.split_at(ip_len);
    let (port, datagram) = rest.split_at(2);
    let ip = match ip_len {
        4 => IpAddr::from(<[u8; 4]>::try_from(ip).ok()?),
        _ => IpAddr::from(<[u8; 16]>::try_from(ip).ok()?),
    };
    Some((SocketAddr::new(ip, u16::from_be_bytes([port[0], port[1]])), datagram))
}

fuzz_target!(|input: &[u8]| {
    let _ = parse_binding_response(input);
    let Some((source, datagram)) = split(input) else {
        return;
    };
    if let Ok(reply) = answer(datagram, source) {
        assert!(reply.len() <= 76, "reply of {} bytes", reply.len());
        if reply[..2] == [0x01, 0x01] {
            let canonical = SocketAddr::new(source.ip().to_canonical(), source.port());
            assert_eq!(parse_binding_response(&reply), Some(canonical));
        }
    }
});
