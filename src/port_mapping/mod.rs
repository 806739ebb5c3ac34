//! Port mapping on purpose (`[remote] port_mapping = true`): the device asks the home router
//! (PCP, NAT-PMP or UPnP-IGD) to forward its HTTPS port, its STUN port and the fixed media
//! port range to it, keeps the forwards on short leases while it runs and deletes them when it
//! stops, and says where it is reachable (`reachability::Reachability`).
//!
//! - `gateway`: where the router is, and the device's address towards it.
//! - `router`: the protocols (`crab_nat` for PCP and NAT-PMP, `igd-next` for UPnP-IGD).
//! - `keeper`: the task that asks, renews and deletes.

mod gateway;
mod keeper;
mod router;

pub use keeper::{Keeper, Plan, run};
