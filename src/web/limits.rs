//! The connection budget shared by every TCP listener (HTTPS and the plain-HTTP redirect): how
//! many connections may be open at once in all, and from one source address.
//!
//! An IPv6 source counts by its /64 (one host can have as many addresses in its prefix as it
//! likes); an IPv4 source by its address. When every place is taken, a new connection takes the
//! place of the oldest connection that is idle (no request in flight, not a WebSocket): a
//! flood of silent connections from many addresses cannot keep the owner out, and it cannot
//! use more descriptors than the budget either, so pipelines always find theirs.
//!
//! `try_acquire` hands out a `Permit` that gives its place back when the last clone is dropped
//! (the connection's task, or the WebSocket session it became). The registry is behind a `Mutex`
//! held only to change a count or pick a victim (no `.await` inside).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use thiserror::Error;
use tokio::sync::Notify;

use crate::host::address_group;

/// Why a connection was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Refused {
    #[error("{0} connections already open from its address")]
    Address(usize),
    #[error("all {0} connection places are taken and none is idle")]
    Full(usize),
}

#[derive(Debug)]
pub struct ConnectionBudget {
    total: usize,
    per_address: usize,
    inner: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    by_address: HashMap<IpAddr, usize>,
    /// Open connections by id; ids grow, so the first entry is the oldest.
    open: BTreeMap<u64, Arc<Activity>>,
    next_id: u64,
    /// Connections told to close that have not closed yet.
    evicting: usize,
}

/// What a connection is doing, for the eviction choice and its own idle timer.
#[derive(Debug, Default)]
pub struct Activity {
    in_flight: AtomicUsize,
    upgraded: AtomicBool,
    evicted: AtomicBool,
    evict: Notify,
}

impl Activity {
    /// Whether no request is in flight (a WebSocket counts as one for good).
    pub fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0 && !self.upgraded.load(Ordering::Relaxed)
    }

    /// Marks one request in flight until the returned guard is dropped.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// The connection became a WebSocket: it is never idle and never evicted.
    pub fn mark_upgraded(&self) {
        self.upgraded.store(true, Ordering::Relaxed);
    }

    /// Completes when the budget wants this connection's place back.
    pub async fn evicted(&self) {
        let notified = self.evict.notified();
        if self.evicted.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }
}

/// A request in flight on a connection.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One open connection's place; released when dropped.
#[derive(Debug)]
pub struct Permit {
    owner: Arc<ConnectionBudget>,
    id: u64,
    group: IpAddr,
    pub activity: Arc<Activity>,
}

impl ConnectionBudget {
    pub fn new(total: usize, per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            total: total.max(1),
            per_address: per_address.max(1),
            inner: Mutex::new(Registry::default()),
        })
    }

    /// A place for one more connection from `address`, taking an idle connection's place when
    /// all are taken.
    pub fn try_acquire(self: &Arc<Self>, address: IpAddr) -> Result<Permit, Refused> {
        let group = address_group(address);
        let mut registry = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let from_address = registry.by_address.get(&group).copied().unwrap_or(0);
        if from_address >= self.per_address {
            return Err(Refused::Address(from_address));
        }
        if registry.open.len() - registry.evicting >= self.total {
            let victim = registry
                .open
                .values()
                .find(|a| a.is_idle() && !a.evicted.load(Ordering::Relaxed))
                .cloned()
                .ok_or(Refused::Full(self.total))?;
            victim.evicted.store(true, Ordering::Release);
            victim.evict.notify_waiters();
            registry.evicting += 1;
        }
        *registry.by_address.entry(group).or_insert(0) += 1;
        let id = registry.next_id;
        registry.next_id += 1;
        let activity = Arc::new(Activity::default());
        registry.open.insert(id, Arc::clone(&activity));
        Ok(Permit {
            owner: Arc::clone(self),
            id,
            group,
            activity,
        })
    }

    pub fn open_from(&self, address: IpAddr) -> usize {
        let registry = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        registry
            .by_address
            .get(&address_group(address))
            .copied()
            .unwrap_or(0)
    }

    /// Connections open now, on every listener.
    pub fn open(&self) -> usize {
        let registry = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        registry.open.len()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut registry = self.owner.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(activity) = registry.open.remove(&self.id)
            && activity.evicted.load(Ordering::Relaxed)
        {
            registry.evicting = registry.evicting.saturating_sub(1);
        }
        if let Some(count) = registry.by_address.get_mut(&self.group) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                registry.by_address.remove(&self.group);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_limit_is_per_address_and_places_come_back() {
        let budget = ConnectionBudget::new(100, 2);
        let first = budget.try_acquire(ip("10.0.0.1")).unwrap();
        let _second = budget.try_acquire(ip("10.0.0.1")).unwrap();
        assert_eq!(
            budget.try_acquire(ip("10.0.0.1")).unwrap_err(),
            Refused::Address(2)
        );
        assert!(
            budget.try_acquire(ip("10.0.0.2")).is_ok(),
            "another address is not affected"
        );
        drop(first);
        assert_eq!(budget.open_from(ip("10.0.0.1")), 1);
        assert!(budget.try_acquire(ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn an_ipv6_host_counts_by_its_64() {
        let budget = ConnectionBudget::new(100, 2);
        let _a = budget.try_acquire(ip("2001:db8:1:2::1")).unwrap();
        let _b = budget.try_acquire(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert!(budget.try_acquire(ip("2001:db8:1:2::77")).is_err());
        assert!(budget.try_acquire(ip("2001:db8:1:3::1")).is_ok());
        assert_eq!(address_group(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
    }

    #[test]
    fn when_full_the_oldest_idle_connection_gives_way() {
        let budget = ConnectionBudget::new(3, 10);
        let oldest = budget.try_acquire(ip("10.0.0.1")).unwrap();
        let busy = budget.try_acquire(ip("10.0.0.2")).unwrap();
        let _request = busy.activity.request();
        let socket = budget.try_acquire(ip("10.0.0.3")).unwrap();
        socket.activity.mark_upgraded();
        assert!(oldest.activity.is_idle());

        let newcomer = budget.try_acquire(ip("10.0.0.4")).unwrap();
        assert!(oldest.activity.evicted.load(Ordering::Relaxed));
        assert!(!busy.activity.evicted.load(Ordering::Relaxed));
        assert!(!socket.activity.evicted.load(Ordering::Relaxed));
        // With the newcomer busy, nothing idle is left to give way.
        let newcomer_request = newcomer.activity.request();
        assert_eq!(
            budget.try_acquire(ip("10.0.0.5")).unwrap_err(),
            Refused::Full(3)
        );
        drop(oldest);
        assert_eq!(budget.open(), 3);
        drop(newcomer_request);
        assert!(newcomer.activity.is_idle());
        assert!(
            budget.try_acquire(ip("10.0.0.5")).is_ok(),
            "the newcomer, idle again, gives way"
        );
        assert!(newcomer.activity.evicted.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn an_evicted_connection_hears_of_it() {
        let budget = ConnectionBudget::new(1, 10);
        let first = budget.try_acquire(ip("10.0.0.1")).unwrap();
        let activity = Arc::clone(&first.activity);
        let waiter = tokio::spawn(async move { activity.evicted().await });
        tokio::task::yield_now().await;
        let _second = budget.try_acquire(ip("10.0.0.2")).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
        // Told before it waited: still hears of it.
        first.activity.evicted().await;
    }
}
