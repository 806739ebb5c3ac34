//! Datagrams in batches for the STUN responder: one `recvmmsg` takes up to `BATCH` requests and
//! one `sendmmsg` sends their answers, where a loop of `recv_from`/`send_to` would make two
//! system calls per request. The socket is a plain blocking one on the responder's own thread:
//! registered with no poller, a sent datagram wakes no one (an epoll registration costs a
//! wake-up on every send, which on loopback was a third of the responder's time).
//!
//! The only unsafe code of the responder lives here: the `mmsghdr` arrays point into buffers
//! this struct owns, and are rebuilt before each call so no pointer outlives its borrow.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use std::net::UdpSocket;

/// Datagrams moved per system call at most.
pub const BATCH: usize = 32;
/// Receive buffer per datagram; a longer request is truncated and then rejected by the codec.
const DATAGRAM_MAX: usize = 2048;

/// Receive buffers and their senders' addresses, reused from batch to batch.
pub struct Batch {
    buffers: Box<[[u8; DATAGRAM_MAX]; BATCH]>,
    addresses: [libc::sockaddr_storage; BATCH],
    /// (buffer index, length, sender) of each datagram of the last batch.
    received: Vec<(usize, usize, SocketAddr)>,
}

impl Default for Batch {
    fn default() -> Self {
        Self {
            buffers: Box::new([[0; DATAGRAM_MAX]; BATCH]),
            // SAFETY: sockaddr_storage is plain data for which all zeroes is a valid value.
            addresses: unsafe { zeroed() },
            received: Vec::with_capacity(BATCH),
        }
    }
}

impl Batch {
    /// Waits for a datagram, then takes as many more as are queued, up to `BATCH`; returns how
    /// many arrived (any from a foreign address family are left out of `datagrams`).
    pub fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.received.clear();
        // SAFETY: iovec and mmsghdr are plain data for which all zeroes is a valid value.
        let mut iovecs: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for ((iovec, header), (buffer, address)) in iovecs
            .iter_mut()
            .zip(headers.iter_mut())
            .zip(self.buffers.iter_mut().zip(self.addresses.iter_mut()))
        {
            let whole = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            aim(
                header,
                iovec,
                buffer.as_mut_ptr(),
                DATAGRAM_MAX,
                address,
                whole,
            );
        }
        // SAFETY: every header points at one buffer and one address of `self` and at one
        // iovec of this frame, all alive and exclusively borrowed for the call; the kernel
        // writes at most the lengths given.
        let count = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        let count = usize::try_from(count).map_err(|_| io::Error::last_os_error())?;
        for (index, (header, address)) in
            headers.iter().zip(&self.addresses).take(count).enumerate()
        {
            if let Some(source) = socket_address(address, header.msg_hdr.msg_namelen) {
                self.received.push((index, header.msg_len as usize, source));
            }
        }
        Ok(count)
    }

    /// The datagrams of the last `receive`, with their senders.
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        self.received.iter().map(|&(index, length, source)| {
            (&self.buffers[index][..length.min(DATAGRAM_MAX)], source)
        })
    }
}

/// Sends every `(datagram, destination)`, waiting while the send buffer is full, and returns
/// how many went; a destination the kernel refuses is logged and skipped, the rest still go.
pub fn send_all(socket: &UdpSocket, replies: &[(Vec<u8>, SocketAddr)]) -> usize {
    let (mut rest, mut sent_in_all) = (replies, 0);
    while let Some((_, first_destination)) = rest.first() {
        match send_now(socket, rest) {
            Ok(sent) => {
                let sent = sent.clamp(1, rest.len());
                sent_in_all += sent;
                rest = &rest[sent..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::debug!("STUN reply to {first_destination}: {e}");
                rest = &rest[1..];
            }
        }
    }
    sent_in_all
}

fn send_now(socket: &UdpSocket, replies: &[(Vec<u8>, SocketAddr)]) -> io::Result<usize> {
    let count = replies.len().min(BATCH);
    // SAFETY: plain data for which all zeroes is a valid value.
    let mut iovecs: [libc::iovec; BATCH] = unsafe { zeroed() };
    let mut addresses: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
    let mut headers: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
    for (((iovec, address), header), (datagram, destination)) in iovecs
        .iter_mut()
        .zip(addresses.iter_mut())
        .zip(headers.iter_mut())
        .zip(replies)
    {
        let length = write_socket_address(*destination, address);
        // The kernel only reads a datagram being sent, so the const pointer may be cast.
        let data = datagram.as_ptr().cast_mut();
        aim(header, iovec, data, datagram.len(), address, length);
    }
    // SAFETY: the first `count` headers point at datagrams borrowed from `replies` (which the
    // kernel only reads) and at addresses and iovecs of this frame, all alive for the call.
    let sent = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr(),
            count as libc::c_uint,
            0,
        )
    };
    usize::try_from(sent).map_err(|_| io::Error::last_os_error())
}

/// Points one message header at one buffer (through `iovec`) and one socket address.
fn aim(
    header: &mut libc::mmsghdr,
    iovec: &mut libc::iovec,
    buffer: *mut u8,
    length: usize,
    address: &mut libc::sockaddr_storage,
    address_length: libc::socklen_t,
) {
    iovec.iov_base = buffer.cast();
    iovec.iov_len = length;
    header.msg_hdr.msg_name = (address as *mut libc::sockaddr_storage).cast();
    header.msg_hdr.msg_namelen = address_length;
    header.msg_hdr.msg_iov = iovec;
    header.msg_hdr.msg_iovlen = 1;
}

/// The address the kernel wrote into `storage`, if it is IPv4 or IPv6.
fn socket_address(storage: &libc::sockaddr_storage, length: libc::socklen_t) -> Option<SocketAddr> {
    let length = length as usize;
    match i32::from(storage.ss_family) {
        libc::AF_INET if length >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, and sockaddr_storage is
            // large and aligned enough for any socket address.
            let v4 =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)),
                u16::from_be(v4.sin_port),
            )))
        }
        libc::AF_INET6 if length >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(v6.sin6_addr.s6_addr),
                u16::from_be(v6.sin6_port),
                u32::from_be(v6.sin6_flowinfo),
                v6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Writes `address` into `storage` as the kernel expects it; returns its length.
fn write_socket_address(
    address: SocketAddr,
    storage: &mut libc::sockaddr_storage,
) -> libc::socklen_t {
    match address {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
            let out = unsafe {
                &mut *(storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            out.sin_family = libc::AF_INET as libc::sa_family_t;
            out.sin_port = v4.port().to_be();
            out.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above, for a sockaddr_in6.
            let out = unsafe {
                &mut *(storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            out.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            out.sin6_port = v6.port().to_be();
            out.sin6_flowinfo = v6.flowinfo().to_be();
            out.sin6_addr.s6_addr = v6.ip().octets();
            out.sin6_scope_id = v6.scope_id();
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_addresses_survive_the_round_trip() {
        for address in [
            "192.0.2.7:3478".parse::<SocketAddr>().unwrap(),
            "[2001:db8::1]:50000".parse().unwrap(),
            "[fe80::1%3]:9".parse().unwrap(),
        ] {
            // SAFETY: plain data.
            let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
            let length = write_socket_address(address, &mut storage);
            assert_eq!(socket_address(&storage, length), Some(address));
        }
    }

    #[test]
    fn short_or_foreign_addresses_are_refused() {
        let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
        let length = write_socket_address("192.0.2.7:1".parse().unwrap(), &mut storage);
        assert_eq!(socket_address(&storage, length - 1), None);
        storage.ss_family = libc::AF_UNIX as libc::sa_family_t;
        assert_eq!(socket_address(&storage, length), None);
    }

    #[test]
    fn a_batch_of_datagrams_in_and_out() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server_address = server.local_addr().unwrap();
        for i in 0..40u8 {
            client.send_to(&[i; 3], server_address).unwrap();
        }
        let mut batch = Batch::default();
        let mut seen = Vec::new();
        while seen.len() < 40 {
            let count = batch.receive(&server).unwrap();
            assert!((1..=BATCH).contains(&count));
            let replies: Vec<(Vec<u8>, SocketAddr)> = batch
                .datagrams()
                .map(|(datagram, source)| (datagram.to_vec(), source))
                .collect();
            assert!(
                replies
                    .iter()
                    .all(|(_, s)| *s == client.local_addr().unwrap())
            );
            seen.extend(replies.iter().map(|(d, _)| d[0]));
            assert_eq!(send_all(&server, &replies), replies.len());
        }
        assert_eq!(seen, (0..40).collect::<Vec<u8>>());
        let mut echoed = [0u8; 16];
        for i in 0..40u8 {
            let (length, from) = client.recv_from(&mut echoed).unwrap();
            assert_eq!((&echoed[..length], from), (&[i; 3][..], server_address));
        }
    }
}
