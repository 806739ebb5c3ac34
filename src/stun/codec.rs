//! STUN (RFC 8489) Binding: bytes in, bytes out, no sockets, no clock.
//!
//! `answer` takes one datagram and the address it came from and returns the reply to send, or
//! why none is sent. Only a well-formed Binding *request* is answered: the header's top bits,
//! magic cookie and length must be right, every attribute must fit, and a FINGERPRINT, when
//! present, must be the last attribute and match. Responses, indications, other methods and
//! anything malformed get no reply. A request with an unknown comprehension-required attribute
//! gets a 420 error listing it, as the RFC asks. Replies are at most 76 bytes.
//!
//! `parse_binding_response` reads a success response's mapped address, for clients and tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use thiserror::Error;

pub const HEADER_LEN: usize = 20;
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
const FINGERPRINT_XOR: u32 = 0x5354_554E;

const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const BINDING_ERROR: u16 = 0x0111;

const ATTR_MAPPED_ADDRESS: u16 = 0x0001;
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const ATTR_ERROR_CODE: u16 = 0x0009;
const ATTR_UNKNOWN_ATTRIBUTES: u16 = 0x000A;
const ATTR_MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
const ATTR_PRIORITY: u16 = 0x0024;
const ATTR_USE_CANDIDATE: u16 = 0x0025;
const ATTR_FINGERPRINT: u16 = 0x8028;

/// Comprehension-required attributes (below 0x8000) a Binding responder may see and ignore:
/// a server without credentials does not check integrity, and ICE attributes carry no meaning
/// for a plain Binding.
const UNDERSTOOD: [u16; 7] = [
    ATTR_MAPPED_ADDRESS,
    ATTR_USERNAME,
    ATTR_MESSAGE_INTEGRITY,
    ATTR_MESSAGE_INTEGRITY_SHA256,
    ATTR_XOR_MAPPED_ADDRESS,
    ATTR_PRIORITY,
    ATTR_USE_CANDIDATE,
];

/// Why a datagram gets no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Ignored {
    #[error("shorter than a STUN header")]
    Truncated,
    #[error("not STUN (top bits or magic cookie)")]
    NotStun,
    #[error("length field does not match the datagram")]
    BadLength,
    #[error("not a Binding request")]
    NotBindingRequest,
    #[error("an attribute runs past the end")]
    BadAttribute,
    #[error("FINGERPRINT is wrong or not last")]
    BadFingerprint,
}

/// A parsed message header and the attribute area.
struct Message<'a> {
    kind: u16,
    transaction_id: &'a [u8],
    /// The whole datagram (for FINGERPRINT and the XOR of IPv6 addresses).
    bytes: &'a [u8],
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn parse(bytes: &[u8]) -> Result<Message<'_>, Ignored> {
    if bytes.len() < HEADER_LEN {
        return Err(Ignored::Truncated);
    }
    let kind = read_u16(bytes, 0).ok_or(Ignored::Truncated)?;
    if kind & 0xC000 != 0 || read_u32(bytes, 4) != Some(MAGIC_COOKIE) {
        return Err(Ignored::NotStun);
    }
    let length = usize::from(read_u16(bytes, 2).ok_or(Ignored::Truncated)?);
    if length % 4 != 0 || HEADER_LEN + length != bytes.len() {
        return Err(Ignored::BadLength);
    }
    Ok(Message {
        kind,
        transaction_id: &bytes[8..HEADER_LEN],
        bytes,
    })
}

/// One attribute: type, value, and its offset in the datagram.
struct Attribute<'a> {
    kind: u16,
    value: &'a [u8],
    offset: usize,
}

/// Walks the attributes, failing on one that runs past the end.
fn attributes<'a>(message: &Message<'a>) -> Result<Vec<Attribute<'a>>, Ignored> {
    let bytes = message.bytes;
    let mut at = HEADER_LEN;
    let mut found = Vec::new();
    while at < bytes.len() {
        let kind = read_u16(bytes, at).ok_or(Ignored::BadAttribute)?;
        let length = usize::from(read_u16(bytes, at + 2).ok_or(Ignored::BadAttribute)?);
        let value = bytes
            .get(at + 4..at + 4 + length)
            .ok_or(Ignored::BadAttribute)?;
        found.push(Attribute {
            kind,
            value,
            offset: at,
        });
        at += 4 + length.div_ceil(4) * 4;
    }
    if at != bytes.len() {
        return Err(Ignored::BadAttribute);
    }
    Ok(found)
}

/// CRC-32 of everything before the FINGERPRINT attribute, XORed as RFC 8489 §14.7 says.
fn fingerprint(bytes_before: &[u8]) -> u32 {
    crc32fast::hash(bytes_before) ^ FINGERPRINT_XOR
}

fn check_fingerprint(message: &Message<'_>, attrs: &[Attribute<'_>]) -> Result<(), Ignored> {
    let Some(position) = attrs.iter().position(|a| a.kind == ATTR_FINGERPRINT) else {
        return Ok(());
    };
    let attr = &attrs[position];
    if position + 1 != attrs.len() || attr.value.len() != 4 {
        return Err(Ignored::BadFingerprint);
    }
    let expected = read_u32(attr.value, 0).ok_or(Ignored::BadFingerprint)?;
    if fingerprint(&message.bytes[..attr.offset]) != expected {
        return Err(Ignored::BadFingerprint);
    }
    Ok(())
}

/// The reply to one datagram from `source`, or why there is none.
pub fn answer(datagram: &[u8], source: SocketAddr) -> Result<Vec<u8>, Ignored> {
    let message = parse(datagram)?;
    if message.kind != BINDING_REQUEST {
        return Err(Ignored::NotBindingRequest);
    }
    let attrs = attributes(&message)?;
    check_fingerprint(&message, &attrs)?;
    let unknown: Vec<u16> = attrs
        .iter()
        .map(|a| a.kind)
        .filter(|kind| *kind < 0x8000 && !UNDERSTOOD.contains(kind))
        .take(4)
        .collect();
    let source = SocketAddr::new(source.ip().to_canonical(), source.port());
    let mut reply = Reply::new(message.transaction_id);
    if unknown.is_empty() {
        reply.header(BINDING_SUCCESS);
        reply.address(ATTR_XOR_MAPPED_ADDRESS, source, true);
        reply.address(ATTR_MAPPED_ADDRESS, source, false);
    } else {
        reply.header(BINDING_ERROR);
        reply.error_420(&unknown);
    }
    Ok(reply.finish())
}

/// Builds a reply: header, attributes, FINGERPRINT; the length is filled in at the end.
struct Reply<'a> {
    bytes: Vec<u8>,
    transaction_id: &'a [u8],
}

impl<'a> Reply<'a> {
    fn new(transaction_id: &'a [u8]) -> Self {
        Self {
            bytes: Vec::with_capacity(76),
            transaction_id,
        }
    }

    fn header(&mut self, kind: u16) {
        self.bytes.extend_from_slice(&kind.to_be_bytes());
        self.bytes.extend_from_slice(&[0, 0]);
        self.bytes.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        self.bytes.extend_from_slice(self.transaction_id);
    }

    fn attribute(&mut self, kind: u16, value: &[u8]) {
        self.bytes.extend_from_slice(&kind.to_be_bytes());
        let length = u16::try_from(value.len()).unwrap_or(u16::MAX);
        self.bytes.extend_from_slice(&length.to_be_bytes());
        self.bytes.extend_from_slice(value);
        let padding = value.len().div_ceil(4) * 4 - value.len();
        self.bytes.extend(std::iter::repeat_n(0, padding));
    }

    fn address(&mut self, kind: u16, address: SocketAddr, xor: bool) {
        let mut mask = [0u8; 16];
        mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        mask[4..].copy_from_slice(self.transaction_id);
        let port_mask = if xor { (MAGIC_COOKIE >> 16) as u16 } else { 0 };
        let mut value = vec![0];
        let ip_bytes: Vec<u8> = match address.ip() {
            IpAddr::V4(v4) => {
                value.push(0x01);
                v4.octets().to_vec()
            }
            IpAddr::V6(v6) => {
                value.push(0x02);
                v6.octets().to_vec()
            }
        };
        value.extend_from_slice(&(address.port() ^ port_mask).to_be_bytes());
        value.extend(
            ip_bytes
                .iter()
                .zip(mask.iter())
                .map(|(b, m)| if xor { b ^ m } else { *b }),
        );
        self.attribute(kind, &value);
    }

    fn error_420(&mut self, unknown: &[u16]) {
        let mut code = vec![0, 0, 4, 20];
        code.extend_from_slice(b"Unknown Attribute");
        self.attribute(ATTR_ERROR_CODE, &code);
        let list: Vec<u8> = unknown.iter().flat_map(|k| k.to_be_bytes()).collect();
        self.attribute(ATTR_UNKNOWN_ATTRIBUTES, &list);
    }

    fn finish(mut self) -> Vec<u8> {
        // The length covers the FINGERPRINT attribute (8 bytes) before the CRC is computed.
        let length = (self.bytes.len() - HEADER_LEN + 8) as u16;
        self.bytes[2..4].copy_from_slice(&length.to_be_bytes());
        let crc = fingerprint(&self.bytes);
        self.attribute(ATTR_FINGERPRINT, &crc.to_be_bytes());
        self.bytes
    }
}

/// A Binding request with a random-enough transaction id and a FINGERPRINT (for clients).
pub fn binding_request(transaction_id: [u8; 12]) -> Vec<u8> {
    let mut request = Reply::new(&transaction_id);
    request.header(BINDING_REQUEST);
    request.finish()
}

/// The mapped address in a Binding success response (XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS).
pub fn parse_binding_response(datagram: &[u8]) -> Option<SocketAddr> {
    let message = parse(datagram).ok()?;
    if message.kind != BINDING_SUCCESS {
        return None;
    }
    let attrs = attributes(&message).ok()?;
    check_fingerprint(&message, &attrs).ok()?;
    let find = |kind| attrs.iter().find(|a| a.kind == kind);
    if let Some(xor) = find(ATTR_XOR_MAPPED_ADDRESS) {
        return decode_address(xor.value, Some(message.transaction_id));
    }
    decode_address(find(ATTR_MAPPED_ADDRESS)?.value, None)
}

fn decode_address(value: &[u8], xor_with: Option<&[u8]>) -> Option<SocketAddr> {
    let mut mask = [0u8; 16];
    if let Some(transaction_id) = xor_with {
        mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        mask[4..].copy_from_slice(transaction_id);
    }
    let port = read_u16(value, 2)? ^ u16::from_be_bytes([mask[0], mask[1]]);
    let unmask = |bytes: &[u8]| -> Vec<u8> { bytes.iter().zip(mask).map(|(b, m)| b ^ m).collect() };
    let ip = match value.get(1)? {
        0x01 => {
            let octets: [u8; 4] = unmask(value.get(4..8)?).try_into().ok()?;
            IpAddr::V4(Ipv4Addr::from(octets))
        }
        0x02 => {
            let octets: [u8; 16] = unmask(value.get(4..20)?).try_into().ok()?;
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5769 §2.1: a Binding request with SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME,
    /// MESSAGE-INTEGRITY and FINGERPRINT.
    const RFC5769_REQUEST: [u8; 108] = [
        0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74,
        0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e,
        0x00, 0x01, 0xff, 0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36,
        0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20,
        0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e,
        0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5,
        0x7a, 0x3b, 0xcf,
    ];

    /// RFC 5769 §2.2: IPv4 response, mapped address 192.0.2.1:32853.
    const RFC5769_RESPONSE_V4: [u8; 80] = [
        0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
        0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1,
        0x12, 0xa6, 0x43, 0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3,
        0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00,
        0x04, 0xc0, 0x7d, 0x4c, 0x96,
    ];

    /// RFC 5769 §2.3: IPv6 response, mapped address [2001:db8:1234:5678:11:2233:4455:6677]:32853.
    const RFC5769_RESPONSE_V6: [u8; 92] = [
        0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
        0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01,
        0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
        0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9,
        0x7c, 0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb,
        0x0b, 0x4c,
    ];

    fn v4_source() -> SocketAddr {
        "192.0.2.1:32853".parse().unwrap()
    }

    fn v6_source() -> SocketAddr {
        "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
            .parse()
            .unwrap()
    }

    #[test]
    fn rfc5769_request_is_answered_with_the_source_address() {
        let reply = answer(&RFC5769_REQUEST, v4_source()).expect("answered");
        assert_eq!(&reply[..2], &[0x01, 0x01], "success response");
        assert_eq!(&reply[8..20], &RFC5769_REQUEST[8..20], "same transaction");
        assert_eq!(parse_binding_response(&reply), Some(v4_source()));
        assert!(reply.len() <= 76);
    }

    #[test]
    fn rfc5769_responses_decode_to_their_mapped_addresses() {
        assert_eq!(
            parse_binding_response(&RFC5769_RESPONSE_V4),
            Some(v4_source())
        );
        assert_eq!(
            parse_binding_response(&RFC5769_RESPONSE_V6),
            Some(v6_source())
        );
    }

    #[test]
    fn our_xor_mapped_address_matches_rfc5769_bytes() {
        let v4 = answer(&RFC5769_REQUEST, v4_source()).unwrap();
        assert_eq!(&v4[20..32], &RFC5769_RESPONSE_V4[36..48]);
        let v6 = answer(&RFC5769_REQUEST, v6_source()).unwrap();
        assert_eq!(&v6[20..44], &RFC5769_RESPONSE_V6[36..60]);
        assert!(v6.len() <= 76);
    }

    #[test]
    fn reply_carries_a_valid_fingerprint_and_mapped_address() {
        let reply = answer(&RFC5769_REQUEST, v6_source()).unwrap();
        let message = parse(&reply).unwrap();
        let attrs = attributes(&message).unwrap();
        assert_eq!(
            attrs.iter().map(|a| a.kind).collect::<Vec<_>>(),
            [
                ATTR_XOR_MAPPED_ADDRESS,
                ATTR_MAPPED_ADDRESS,
                ATTR_FINGERPRINT
            ]
        );
        assert!(check_fingerprint(&message, &attrs).is_ok());
        let plain = attrs
            .iter()
            .find(|a| a.kind == ATTR_MAPPED_ADDRESS)
            .unwrap();
        assert_eq!(decode_address(plain.value, None), Some(v6_source()));
    }

    #[test]
    fn ipv4_mapped_sources_are_reported_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        let reply = answer(&binding_request([7; 12]), mapped).unwrap();
        assert_eq!(
            parse_binding_response(&reply),
            Some("127.0.0.1:5000".parse().unwrap())
        );
    }

    #[test]
    fn our_own_request_round_trips() {
        let request = binding_request([1; 12]);
        assert_eq!(request.len(), 28, "header and FINGERPRINT only");
        assert!(answer(&request, v4_source()).is_ok());
    }

    #[test]
    fn truncated_and_non_stun_bytes_are_ignored() {
        for len in 0..RFC5769_REQUEST.len() {
            assert!(
                answer(&RFC5769_REQUEST[..len], v4_source()).is_err(),
                "{len} bytes"
            );
        }
        assert_eq!(
            answer(b"GET / HTTP/1.1\r\n\r\n\0\0", v4_source()),
            Err(Ignored::NotStun)
        );
        let mut rtp = RFC5769_REQUEST;
        rtp[0] = 0x80;
        assert_eq!(answer(&rtp, v4_source()), Err(Ignored::NotStun));
        let mut cookie = RFC5769_REQUEST;
        cookie[4] = 0;
        assert_eq!(answer(&cookie, v4_source()), Err(Ignored::NotStun));
    }

    #[test]
    fn responses_indications_and_other_methods_are_ignored() {
        assert_eq!(
            answer(&RFC5769_RESPONSE_V4, v4_source()),
            Err(Ignored::NotBindingRequest)
        );
        for kind in [0x0011u16, 0x0003, 0x0111] {
            let mut request = binding_request([2; 12]);
            request[..2].copy_from_slice(&kind.to_be_bytes());
            assert_eq!(
                answer(&request, v4_source()),
                Err(Ignored::NotBindingRequest)
            );
        }
    }

    #[test]
    fn wrong_length_field_is_ignored() {
        let mut request = RFC5769_REQUEST.to_vec();
        request.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(answer(&request, v4_source()), Err(Ignored::BadLength));
    }

    #[test]
    fn an_attribute_past_the_end_is_ignored() {
        let mut request = binding_request([3; 12]);
        request[22..24].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(answer(&request, v4_source()), Err(Ignored::BadAttribute));
    }

    #[test]
    fn a_wrong_fingerprint_is_ignored() {
        let mut request = RFC5769_REQUEST;
        request[107] ^= 1;
        assert_eq!(answer(&request, v4_source()), Err(Ignored::BadFingerprint));
        let mut software = RFC5769_REQUEST;
        software[30] ^= 1;
        assert_eq!(answer(&software, v4_source()), Err(Ignored::BadFingerprint));
    }

    #[test]
    fn unknown_comprehension_required_attribute_gets_420() {
        // Header plus one attribute 0x7777 with an empty value; no FINGERPRINT.
        let mut request = vec![0x00, 0x01, 0x00, 0x04];
        request.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        request.extend_from_slice(&[9; 12]);
        request.extend_from_slice(&[0x77, 0x77, 0x00, 0x00]);
        let reply = answer(&request, v4_source()).unwrap();
        assert_eq!(&reply[..2], &BINDING_ERROR.to_be_bytes());
        assert!(reply.windows(2).any(|w| w == [0x77, 0x77]));
        assert!(reply.len() <= 76);
    }
}
