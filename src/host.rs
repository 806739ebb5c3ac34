//! Facts about the machine the daemon runs on: its name and its addresses, used for the
//! certificate's names, the URLs printed at start and the ICE agent.

use std::net::IpAddr;

/// The host name, or `peercam` when it cannot be read.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "peercam".to_owned())
}

/// Every address of every interface, loopback included, IPv4 first.
pub fn addresses() -> Vec<IpAddr> {
    let mut addresses: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|interface| interface.ip())
        .collect();
    addresses.sort_by_key(|ip| (ip.is_ipv6(), ip.is_loopback()));
    addresses.dedup();
    addresses
}

/// The URLs a person can open to reach the page on `port`: addresses a phone can reach first.
pub fn page_urls(host_name: &str, addresses: &[IpAddr], port: u16) -> Vec<String> {
    let with_port = |host: &str| {
        if port == 443 {
            format!("https://{host}/")
        } else {
            format!("https://{host}:{port}/")
        }
    };
    let mut urls: Vec<String> = addresses
        .iter()
        .filter(|ip| !ip.is_loopback() && !is_link_local(ip))
        .map(|ip| match ip {
            IpAddr::V4(v4) => with_port(&v4.to_string()),
            IpAddr::V6(v6) => with_port(&format!("[{v6}]")),
        })
        .collect();
    urls.push(with_port(&format!("{host_name}.local")));
    urls.push(with_port("localhost"));
    urls
}

/// The host part of a Host header, refusing anything that is not a plain name or address.
pub fn host_without_port(host: &str) -> Option<&str> {
    let name = if host.starts_with('[') {
        &host[..=host.find(']')?]
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._:[]".contains(c);
    (!name.is_empty() && name.chars().all(allowed)).then_some(name)
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// The key a source address counts under in per-address limits: an IPv4 address itself, an
/// IPv6 address's /64 (one host can have as many addresses in its prefix as it likes).
pub fn address_group(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_loses_its_port() {
        assert_eq!(host_without_port("cam.local:8443"), Some("cam.local"));
        assert_eq!(host_without_port("10.0.0.2"), Some("10.0.0.2"));
        assert_eq!(host_without_port("[fd00::2]:8443"), Some("[fd00::2]"));
        assert_eq!(host_without_port("a b:1"), None);
        assert_eq!(host_without_port(""), None);
    }

    #[test]
    fn urls_skip_loopback_and_link_local_addresses() {
        let addresses: Vec<IpAddr> = ["127.0.0.1", "192.168.1.9", "fe80::1", "2001:db8::2"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(
            page_urls("cam", &addresses, 8443),
            [
                "https://192.168.1.9:8443/",
                "https://[2001:db8::2]:8443/",
                "https://cam.local:8443/",
                "https://localhost:8443/"
            ]
        );
        assert_eq!(
            page_urls("cam", &[], 443),
            ["https://cam.local/", "https://localhost/"]
        );
    }
}
