//! How the device is reached from outside the home: the router's forwards that port mapping
//! made (`port_mapping`), what the owner is told about them (the public URL, or why there is
//! none), and the candidate a call adds for a forwarded media port.
//!
//! Pure and on the ground floor: `port_mapping` writes a `Reachability`, the media owner reads
//! the forwarded media ports from it, and the web side shows it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

/// Which protocol the router answered (UPnP-IGD's version as its service says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MappingProtocol {
    #[serde(rename = "UPnP-IGD")]
    UpnpIgd,
    #[serde(rename = "PCP")]
    Pcp,
    #[serde(rename = "NAT-PMP")]
    NatPmp,
}

impl std::fmt::Display for MappingProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::UpnpIgd => "UPnP-IGD",
            Self::Pcp => "PCP",
            Self::NatPmp => "NAT-PMP",
        })
    }
}

/// The router's forwards of the media ports: where a host candidate on `internal` with one of
/// `ports`' keys is reached from outside.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MediaForwards {
    /// The device's address on the router's side (the forwards' target).
    pub internal: Option<IpAddr>,
    /// The router's external address.
    pub external: Option<IpAddr>,
    /// Internal UDP port -> external UDP port.
    pub ports: BTreeMap<u16, u16>,
}

/// What the device knows of how it is reached from outside, for the banner, the journal,
/// `systemctl status` and the page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reachability {
    /// `[remote] port_mapping`.
    pub port_mapping: bool,
    /// The protocol the router answered, once it has.
    pub protocol: Option<MappingProtocol>,
    /// `https://<external address>:<port>/` once the HTTPS port is forwarded.
    pub public_url: Option<String>,
    /// The router's external address.
    pub external_address: Option<IpAddr>,
    /// What is forwarded, as `"8443/tcp"`, `"3478/udp"`, `"50000-50019/udp"`.
    pub forwarded: Vec<String>,
    /// Why mapping cannot help or did not work, in the owner's words.
    pub problem: Option<String>,
    /// The media ports' forwards (not sent to the page).
    #[serde(skip)]
    pub media: MediaForwards,
}

impl Reachability {
    /// One line for the journal and `systemctl status`.
    pub fn summary(&self) -> String {
        match (&self.public_url, &self.problem) {
            _ if !self.port_mapping => "port mapping off".into(),
            (Some(url), None) => format!(
                "reachable at {url} ({} forwarded by {})",
                self.forwarded.join(", "),
                self.protocol.map_or("the router".into(), |p| p.to_string())
            ),
            (Some(url), Some(problem)) => format!("reachable at {url}, but {problem}"),
            (None, Some(problem)) => format!("not reachable from outside: {problem}"),
            (None, None) => "asking the router for port forwards".into(),
        }
    }
}

/// Whether `ip` can be reached from the internet: not private, shared (the ISPs' NAT,
/// RFC 6598), loopback, link-local, documentation, benchmarking or reserved space.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            // Global unicast only (2000::/3), minus documentation (2001:db8::/32).
            (first & 0xe000) == 0x2000 && !(first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240)
}

/// The candidate a call adds for a media port the router forwards: a server-reflexive
/// candidate at the router's external address, related to the host candidate `candidate` (an
/// SDP `candidate:` attribute, with or without `a=`). `None` when `candidate` is not a UDP host
/// candidate on the forwards' internal address and a forwarded port.
pub fn forwarded_candidate(candidate: &str, forwards: &MediaForwards) -> Option<String> {
    let (Some(internal), Some(external)) = (forwards.internal, forwards.external) else {
        return None;
    };
    let body = candidate.strip_prefix("a=").unwrap_or(candidate);
    let fields: Vec<&str> = body.strip_prefix("candidate:")?.split(' ').collect();
    let [
        foundation,
        component,
        transport,
        priority,
        address,
        port,
        "typ",
        "host",
        ..,
    ] = fields.as_slice()
    else {
        return None;
    };
    if !transport.eq_ignore_ascii_case("udp") || address.parse::<IpAddr>().ok()? != internal {
        return None;
    }
    let external_port = forwards.ports.get(&port.parse::<u16>().ok()?)?;
    let component: u32 = component.parse().ok()?;
    // RFC 8445 5.1.2.1: server-reflexive type preference 100, the host's local preference.
    let local_preference = (priority.parse::<u32>().ok()? >> 8) & 0xffff;
    let priority = (100 << 24) | (local_preference << 8) | (256 - component.min(256));
    Some(format!(
        "candidate:{foundation}0 {component} udp {priority} {external} {external_port} typ srflx \
         raddr {address} rport {port}"
    ))
}

/// `sdp` with each forwarded host candidate followed by its reflexive twin
/// (`forwarded_candidate`).
pub fn with_forwarded(sdp: &str, forwards: &MediaForwards) -> String {
    let mut out = String::with_capacity(sdp.len() + 256);
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        out.push_str(line);
        out.push_str("\r\n");
        if line.starts_with("a=candidate:")
            && let Some(twin) = forwarded_candidate(line, forwards)
        {
            out.push_str(&format!("a={twin}\r\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwards() -> MediaForwards {
        MediaForwards {
            internal: Some("192.168.1.20".parse().expect("address")),
            external: Some("31.77.1.2".parse().expect("address")),
            ports: BTreeMap::from([(50000, 50000), (50001, 61001)]),
        }
    }

    #[test]
    fn a_forwarded_host_candidate_gets_a_reflexive_twin() {
        let host = "candidate:1 1 UDP 2015363327 192.168.1.20 50001 typ host";
        assert_eq!(
            forwarded_candidate(host, &forwards()).as_deref(),
            Some(
                "candidate:10 1 udp 1679819007 31.77.1.2 61001 typ srflx raddr 192.168.1.20 \
                 rport 50001"
            )
        );
        assert!(forwarded_candidate(&format!("a={host}"), &forwards()).is_some());
    }

    #[test]
    fn an_answer_gets_the_twins_beside_their_hosts() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
                   a=candidate:1 1 UDP 2015363327 192.168.1.20 50000 typ host\r\n\
                   a=candidate:2 1 UDP 2015363327 10.0.0.5 50000 typ host\r\n\
                   a=end-of-candidates\r\n";
        let out = with_forwarded(sdp, &forwards());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 6);
        assert!(lines[3].starts_with("a=candidate:10 1 udp"));
        assert!(lines[3].contains("31.77.1.2 50000 typ srflx"));
        assert_eq!(with_forwarded(sdp, &MediaForwards::default()), sdp);
    }

    #[test]
    fn other_candidates_get_none() {
        for candidate in [
            "candidate:1 1 UDP 2015363327 192.168.1.20 50007 typ host",
            "candidate:1 1 UDP 2015363327 10.0.0.5 50000 typ host",
            "candidate:1 1 TCP 1015022079 192.168.1.20 50000 typ host tcptype passive",
            "candidate:2 1 UDP 1677721855 31.77.1.2 50000 typ srflx raddr 192.168.1.20 rport 50000",
            "candidate:1 1 UDP 2015363327 192.168.1.20 notaport typ host",
            "garbage",
            "",
        ] {
            assert_eq!(
                forwarded_candidate(candidate, &forwards()),
                None,
                "{candidate}"
            );
        }
        let unmapped = MediaForwards::default();
        let host = "candidate:1 1 UDP 2015363327 192.168.1.20 50000 typ host";
        assert_eq!(forwarded_candidate(host, &unmapped), None);
    }

    #[test]
    fn public_means_reachable_from_the_internet() {
        for private in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "169.254.1.1",
            "192.0.2.1",
            "198.18.0.1",
            "203.0.113.9",
            "0.0.0.0",
            "240.0.0.1",
            "fd00::1",
            "fe80::1",
            "2001:db8::1",
            "::1",
        ] {
            assert!(!is_public(private.parse().expect("address")), "{private}");
        }
        for public in ["31.77.1.2", "100.128.0.1", "8.8.8.8", "2a01:4f8::1"] {
            assert!(is_public(public.parse().expect("address")), "{public}");
        }
    }

    #[test]
    fn the_summary_says_what_the_owner_must_know() {
        let mut state = Reachability {
            port_mapping: true,
            ..Reachability::default()
        };
        assert_eq!(state.summary(), "asking the router for port forwards");
        state.public_url = Some("https://31.77.1.2:8443/".into());
        state.protocol = Some(MappingProtocol::Pcp);
        state.forwarded = vec!["8443/tcp".into(), "50000-50019/udp".into()];
        assert_eq!(
            state.summary(),
            "reachable at https://31.77.1.2:8443/ (8443/tcp, 50000-50019/udp forwarded by PCP)"
        );
        state.public_url = None;
        state.problem = Some("no router answered".into());
        assert_eq!(
            state.summary(),
            "not reachable from outside: no router answered"
        );
        assert_eq!(Reachability::default().summary(), "port mapping off");
    }
}
