//! Datagrams in batches for the STUN responder: one `recvmmsg` takes up to `BATCH` requests and
//! one `sendmmsg` sends their answers, where a loop of `recv_from`/`send_to` would make two
//! system calls per request. The socket is a plain blocking one on the responder's own thread:
//! registered with no poller, a sent datagram wakes no one (an epoll registration costs a
//! wake-up on every send, which on loopback was a third of the responder's time).
//!
//! The system calls are nix's safe wrappers; the message headers they fill are allocated once
//! per `Batch` (receiving) or per call (sending) and point only into buffers borrowed for the
//! call.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};

/// Datagrams moved per system call at most.
pub const BATCH: usize = 32;
/// Receive buffer per datagram; a longer request is truncated and then rejected by the codec.
const DATAGRAM_MAX: usize = 2048;

/// Receive buffers, their message headers and the senders of the last batch, reused from batch
/// to batch. Lives on the responder's thread (the headers hold pointers, so it is not `Send`).
pub struct Batch {
    buffers: Box<[[u8; DATAGRAM_MAX]; BATCH]>,
    headers: MultiHeaders<SockaddrStorage>,
    /// (buffer index, length, sender) of each datagram of the last batch.
    received: Vec<(usize, usize, SocketAddr)>,
}

impl Default for Batch {
    fn default() -> Self {
        Self {
            buffers: Box::new([[0; DATAGRAM_MAX]; BATCH]),
            headers: MultiHeaders::preallocate(BATCH, None),
            received: Vec::with_capacity(BATCH),
        }
    }
}

impl Batch {
    /// Waits for a datagram, then takes as many more as are queued, up to `BATCH`; returns how
    /// many arrived (any from a foreign address family are left out of `datagrams`).
    pub fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.received.clear();
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .buffers
            .iter_mut()
            .map(|buffer| [IoSliceMut::new(buffer)])
            .collect();
        let results = recvmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            slices.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        )
        .map_err(io::Error::from)?;
        let mut count = 0;
        for (index, message) in results.enumerate() {
            count += 1;
            if let Some(source) = message.address.as_ref().and_then(socket_address) {
                self.received.push((index, message.bytes, source));
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
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let (mut rest, mut sent_in_all) = (replies, 0);
    while let Some((_, first_destination)) = rest.first() {
        match send_now(socket, &mut headers, rest) {
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

/// One `sendmmsg` of up to `BATCH` of `replies`; how many the kernel took.
fn send_now(
    socket: &UdpSocket,
    headers: &mut MultiHeaders<SockaddrStorage>,
    replies: &[(Vec<u8>, SocketAddr)],
) -> io::Result<usize> {
    let batch = &replies[..replies.len().min(BATCH)];
    let slices: Vec<[IoSlice<'_>; 1]> = batch
        .iter()
        .map(|(datagram, _)| [IoSlice::new(datagram)])
        .collect();
    let destinations: Vec<Option<SockaddrStorage>> = batch
        .iter()
        .map(|(_, destination)| Some(SockaddrStorage::from(*destination)))
        .collect();
    let sent = sendmmsg(
        socket.as_raw_fd(),
        headers,
        &slices,
        &destinations,
        [],
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    Ok(sent.count())
}

/// The sender's address, if it is IPv4 or IPv6.
fn socket_address(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    address
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
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
            let storage = SockaddrStorage::from(address);
            assert_eq!(socket_address(&storage), Some(address));
        }
    }

    #[test]
    fn foreign_addresses_are_refused() {
        let path = std::env::temp_dir().join(format!("peercam-batch-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let unix = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        let storage: SockaddrStorage = nix::sys::socket::getsockname(unix.as_raw_fd()).unwrap();
        assert!(storage.as_unix_addr().is_some(), "a Unix socket's address");
        assert_eq!(socket_address(&storage), None);
        let _ = std::fs::remove_file(&path);
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
