//! The router's side of port mapping, whichever protocol it speaks: PCP or NAT-PMP (through
//! `crab_nat`, which asks in PCP first and falls back to NAT-PMP as RFC 6887 says) or UPnP-IGD
//! v1 and v2 (through `igd-next`: SSDP discovery, then SOAP `AddPortMapping` on the
//! `WANIPConnection` service of either version).
//!
//! PCP and NAT-PMP are asked first: one UDP round trip to the gateway each, no multicast, and
//! the answer carries the external address. UPnP-IGD is the fallback most home routers speak.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU16;
use std::time::Duration;

use crab_nat::{
    InternetProtocol, MappingFailure, PortMapping, PortMappingOptions, PortMappingType,
    TimeoutConfig,
};
use igd_next::PortMappingProtocol;
use igd_next::aio::Gateway;
use igd_next::aio::tokio::Tokio;

use crate::reachability::MappingProtocol;

/// What the forwards are labelled with in the router's table (UPnP shows it).
const DESCRIPTION: &str = "peercam";

/// How long the whole UPnP search may take (miniupnpd answers in milliseconds).
const UPNP_SEARCH: Duration = Duration::from_secs(3);

/// PCP and NAT-PMP: the first try waits this long, doubling, for `PCP_RETRIES` retries.
const PCP_TIMEOUT: TimeoutConfig = TimeoutConfig {
    initial_timeout: Duration::from_millis(250),
    max_retries: 2,
    max_retry_timeout: Some(Duration::from_secs(1)),
};

/// TCP (the page) or UDP (STUN, media).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Tcp,
    Udp,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("no router answered in PCP or NAT-PMP ({pcp}) or UPnP-IGD ({upnp})")]
    NoneAnswered { pcp: String, upnp: String },
    #[error("the router refused to forward {port}/{transport}: {reason}")]
    Refused {
        port: u16,
        transport: Transport,
        reason: String,
    },
    #[error("the router did not say its external address: {0}")]
    NoExternalAddress(String),
    /// The router says it has no usable external address (NAT-PMP's "network failure",
    /// UPnP's empty or 0.0.0.0): miniupnpd's answer when its own address is private.
    #[error("the router has no public address of its own ({0})")]
    NoPublicAddress(String),
}

/// A router that answered, and the forwards asked of it.
pub enum Router {
    Pcp {
        gateway: Ipv4Addr,
        client: IpAddr,
        /// Each forward's state (PCP's nonce, NAT-PMP's epoch), by transport and internal port.
        mappings: HashMap<(Transport, u16), PortMapping>,
        /// Whether the router answered in NAT-PMP (it speaks no PCP).
        nat_pmp: bool,
    },
    Upnp {
        gateway: Gateway<Tokio>,
        client: IpAddr,
        /// External port by transport and internal port.
        mappings: HashMap<(Transport, u16), u16>,
    },
}

impl Router {
    /// Finds the router at `gateway` that answers; `probe` is a forward to ask for right away
    /// (PCP and NAT-PMP are only known to be spoken once a mapping is asked). Returns the
    /// router and what it said to `probe`: the external port, or why it refused (a router
    /// that refuses still says its external address, which tells why: the provider's NAT).
    pub async fn find(
        gateway: Ipv4Addr,
        client: IpAddr,
        probe: (Transport, u16),
        lease: Duration,
    ) -> Result<(Self, Result<u16, RouterError>), RouterError> {
        let refused = |reason: String| RouterError::Refused {
            port: probe.1,
            transport: probe.0,
            reason,
        };
        let pcp_error = match pcp_map(gateway, client, probe, lease).await {
            Ok(mapping) => {
                let external = mapping.external_port().get();
                let nat_pmp = matches!(mapping.mapping_type(), PortMappingType::NatPmp);
                let router = Self::Pcp {
                    gateway,
                    client,
                    mappings: HashMap::from([(probe, mapping)]),
                    nat_pmp,
                };
                return Ok((router, Ok(external)));
            }
            Err(e) if answered(&e) => {
                // It speaks PCP or NAT-PMP, and said no.
                let router = Self::Pcp {
                    gateway,
                    client,
                    mappings: HashMap::new(),
                    nat_pmp: matches!(e, MappingFailure::NatPmp(_)),
                };
                return Ok((router, Err(refused(e.to_string()))));
            }
            Err(e) => e.to_string(),
        };
        let mut options = igd_next::SearchOptions::default();
        options.bind_addr = SocketAddr::new(client, 0);
        options.timeout = Some(UPNP_SEARCH);
        options.single_search_timeout = Some(UPNP_SEARCH);
        let found = igd_next::aio::tokio::search_gateway(options).await;
        let gateway = found.map_err(|e| RouterError::NoneAnswered {
            pcp: pcp_error,
            upnp: e.to_string(),
        })?;
        let mut router = Self::Upnp {
            gateway,
            client,
            mappings: HashMap::new(),
        };
        let external = router.forward(probe, lease).await;
        Ok((router, external))
    }

    pub fn protocol(&self) -> MappingProtocol {
        match self {
            Self::Pcp { nat_pmp: true, .. } => MappingProtocol::NatPmp,
            Self::Pcp { .. } => MappingProtocol::Pcp,
            Self::Upnp { .. } => MappingProtocol::UpnpIgd,
        }
    }

    /// Forwards `port` (the same port outside when the router allows) to the device for
    /// `lease`, or renews that forward; returns the external port.
    pub async fn forward(
        &mut self,
        (transport, port): (Transport, u16),
        lease: Duration,
    ) -> Result<u16, RouterError> {
        let refused = |reason: String| RouterError::Refused {
            port,
            transport,
            reason,
        };
        match self {
            Self::Pcp {
                gateway,
                client,
                mappings,
                ..
            } => {
                if let Some(mapping) = mappings.get_mut(&(transport, port)) {
                    // A renewal keeps the mapping's nonce, as RFC 6887 asks of a refresh.
                    mapping.renew().await.map_err(|e| refused(e.to_string()))?;
                    return Ok(mapping.external_port().get());
                }
                let mapping = pcp_map(*gateway, *client, (transport, port), lease)
                    .await
                    .map_err(|e| refused(e.to_string()))?;
                let external = mapping.external_port().get();
                mappings.insert((transport, port), mapping);
                Ok(external)
            }
            Self::Upnp {
                gateway,
                client,
                mappings,
            } => {
                let local = SocketAddr::new(*client, port);
                let seconds = lease_seconds(lease);
                let protocol = upnp_protocol(transport);
                let wanted = mappings.get(&(transport, port)).copied().unwrap_or(port);
                let external = match gateway
                    .add_port(protocol, wanted, local, seconds, DESCRIPTION)
                    .await
                {
                    Ok(()) => wanted,
                    Err(igd_next::AddPortError::PortInUse) => gateway
                        .add_any_port(protocol, local, seconds, DESCRIPTION)
                        .await
                        .map_err(|e| refused(e.to_string()))?,
                    Err(e) => return Err(refused(e.to_string())),
                };
                mappings.insert((transport, port), external);
                Ok(external)
            }
        }
    }

    /// The router's external address.
    pub async fn external_address(&self) -> Result<IpAddr, RouterError> {
        match self {
            Self::Pcp {
                gateway, mappings, ..
            } => {
                let from_pcp = mappings.values().find_map(|m| match m.mapping_type() {
                    PortMappingType::Pcp { external_ip, .. } => Some(external_ip),
                    PortMappingType::NatPmp => None,
                });
                match from_pcp {
                    Some(ip) => Ok(ip),
                    None => {
                        let asked = crab_nat::natpmp::external_address(
                            (*gateway).into(),
                            Some(PCP_TIMEOUT),
                        )
                        .await;
                        match asked {
                            Ok(ip) if !ip.is_unspecified() => Ok(IpAddr::V4(ip)),
                            Ok(_) => Err(RouterError::NoPublicAddress("NAT-PMP: 0.0.0.0".into())),
                            Err(e @ crab_nat::natpmp::Failure::NetworkFailure) => {
                                Err(RouterError::NoPublicAddress(format!("NAT-PMP: {e}")))
                            }
                            Err(e) => Err(RouterError::NoExternalAddress(e.to_string())),
                        }
                    }
                }
            }
            Self::Upnp { gateway, .. } => match gateway.get_external_ip().await {
                Ok(ip) if !ip.is_unspecified() => Ok(ip),
                Ok(ip) => Err(RouterError::NoPublicAddress(format!("UPnP: {ip}"))),
                Err(e) => Err(RouterError::NoExternalAddress(e.to_string())),
            },
        }
    }

    /// Deletes every forward this router was asked for; returns those it would not delete.
    pub async fn remove_all(self) -> Vec<String> {
        let mut left = Vec::new();
        match self {
            Self::Pcp { mappings, .. } => {
                for ((transport, port), mapping) in mappings {
                    if let Err((e, _)) = mapping.try_drop().await {
                        left.push(format!("{port}/{transport}: {e}"));
                    }
                }
            }
            Self::Upnp {
                gateway, mappings, ..
            } => {
                for ((transport, port), external) in mappings {
                    let protocol = upnp_protocol(transport);
                    if let Err(e) = gateway.remove_port(protocol, external).await {
                        left.push(format!("{port}/{transport}: {e}"));
                    }
                }
            }
        }
        left
    }
}

/// A new PCP mapping (NAT-PMP when the router speaks only that) of `port`, to the same port
/// outside when the router allows.
async fn pcp_map(
    gateway: Ipv4Addr,
    client: IpAddr,
    (transport, port): (Transport, u16),
    lease: Duration,
) -> Result<PortMapping, MappingFailure> {
    let internal = NonZeroU16::new(port).ok_or(MappingFailure::Pcp(
        crab_nat::pcp::Failure::InvalidResponse(
            crab_nat::pcp::InvalidResponseKind::ZeroExternalPort,
        ),
    ))?;
    let protocol = match transport {
        Transport::Tcp => InternetProtocol::Tcp,
        Transport::Udp => InternetProtocol::Udp,
    };
    let options = PortMappingOptions {
        external_port: Some(internal),
        lifetime_seconds: Some(lease_seconds(lease)),
        timeout_config: Some(PCP_TIMEOUT),
    };
    PortMapping::new(gateway.into(), client, protocol, internal, options).await
}

/// Whether the gateway answered in PCP or NAT-PMP (a refusal), rather than not at all.
fn answered(failure: &MappingFailure) -> bool {
    use crab_nat::{natpmp, pcp};
    !matches!(
        failure,
        MappingFailure::Pcp(pcp::Failure::Timeout | pcp::Failure::Socket(_))
            | MappingFailure::NatPmp(natpmp::Failure::Timeout | natpmp::Failure::Socket(_))
    )
}

fn upnp_protocol(transport: Transport) -> PortMappingProtocol {
    match transport {
        Transport::Tcp => PortMappingProtocol::TCP,
        Transport::Udp => PortMappingProtocol::UDP,
    }
}

fn lease_seconds(lease: Duration) -> u32 {
    u32::try_from(lease.as_secs()).unwrap_or(u32::MAX).max(1)
}
