//! How many connections one source address may hold open at once.
//!
//! `try_acquire` hands out a permit that gives its place back when dropped, so a connection
//! counts exactly as long as its task lives. The map is behind a `Mutex` held only to change one
//! count (no `.await` inside), and entries at zero are removed, so it stays small.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub struct PerAddress {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection's place; released on drop.
#[derive(Debug)]
pub struct Permit {
    owner: Arc<PerAddress>,
    address: IpAddr,
}

impl PerAddress {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A permit for one more connection from `address`, or the number already open.
    pub fn try_acquire(self: &Arc<Self>, address: IpAddr) -> Result<Permit, usize> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(address).or_insert(0);
        if *count >= self.limit {
            return Err(*count);
        }
        *count += 1;
        Ok(Permit {
            owner: Arc::clone(self),
            address,
        })
    }

    pub fn open_from(&self, address: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&address).copied().unwrap_or(0)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_per_address_and_places_come_back() {
        let limits = PerAddress::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = limits.try_acquire(a).unwrap();
        let _second = limits.try_acquire(a).unwrap();
        assert_eq!(limits.try_acquire(a).unwrap_err(), 2);
        assert!(
            limits.try_acquire(b).is_ok(),
            "another address is not affected"
        );
        drop(first);
        assert_eq!(limits.open_from(a), 1);
        assert!(limits.try_acquire(a).is_ok());
    }
}
