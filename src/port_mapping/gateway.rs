//! Where the home router is: the IPv4 default route's gateway (from `/proc/net/route`) and the
//! device's own address towards it (the forwards' target).

use std::net::{IpAddr, Ipv4Addr, UdpSocket};

/// The gateway of the IPv4 default route with the lowest metric, if there is one.
pub fn default_gateway() -> Option<Ipv4Addr> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    default_gateway_in(&table)
}

/// `default_gateway` on the text of `/proc/net/route` (addresses in hex, host byte order).
fn default_gateway_in(table: &str) -> Option<Ipv4Addr> {
    const RTF_UP: u16 = 0x1;
    const RTF_GATEWAY: u16 = 0x2;
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [_, destination, gateway, flags, _, _, metric, mask, ..] = fields.as_slice() else {
                return None;
            };
            let flags = u16::from_str_radix(flags, 16).ok()?;
            let up_via_gateway = flags & (RTF_UP | RTF_GATEWAY) == RTF_UP | RTF_GATEWAY;
            let default = *destination == "00000000" && *mask == "00000000";
            let gateway = u32::from_str_radix(gateway, 16).ok()?;
            (up_via_gateway && default && gateway != 0)
                .then(|| {
                    Some((
                        metric.parse::<u32>().ok()?,
                        Ipv4Addr::from(gateway.swap_bytes()),
                    ))
                })
                .flatten()
        })
        .min_by_key(|(metric, _)| *metric)
        .map(|(_, gateway)| gateway)
}

/// The device's address on the link towards `gateway` (no packet is sent: a UDP socket is
/// connected and its local address read).
pub fn local_address_towards(gateway: Ipv4Addr) -> std::io::Result<IpAddr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket.connect((gateway, 9))?;
    Ok(socket.local_addr()?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";

    #[test]
    fn the_default_route_with_the_lowest_metric_wins() {
        let table = format!(
            "{HEADER}\
             wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
             eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
             eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n"
        );
        assert_eq!(
            default_gateway_in(&table),
            Some(Ipv4Addr::new(192, 168, 0, 1))
        );
    }

    #[test]
    fn no_default_route_no_gateway() {
        let table = format!(
            "{HEADER}eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n\
             eth1\t00000000\t00000000\t0001\t0\t0\t100\t00000000\t0\t0\t0\n\
             broken line\n"
        );
        assert_eq!(default_gateway_in(&table), None);
        assert_eq!(default_gateway_in(""), None);
    }
}
