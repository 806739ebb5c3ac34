//! The signaling connections open over plain requests (`signal_poll`), by id: what `AppState`
//! holds of them. Nothing here imports the rest of `web`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::signaling::ServerMessage;

/// A connection whose page has not polled for this long is closed.
pub const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// One connection over requests.
pub struct Connection {
    pub conn: u64,
    pub address: IpAddr,
    /// What the room owner sends; one poll at a time takes from it.
    pub inbox: tokio::sync::Mutex<mpsc::Receiver<ServerMessage>>,
    /// For `signal_poll`'s own `error` replies (the room owner holds the only strong sender).
    pub replies: mpsc::WeakSender<ServerMessage>,
    pub last_poll: Mutex<Instant>,
}

/// The open connections, by id.
#[derive(Default)]
pub struct PollConnections {
    open: Mutex<HashMap<String, Arc<Connection>>>,
}

impl PollConnections {
    /// The table itself, for adding a connection under the caps.
    pub fn lock(
        &self,
    ) -> std::sync::LockResult<std::sync::MutexGuard<'_, HashMap<String, Arc<Connection>>>> {
        self.open.lock()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Connection>> {
        self.open.lock().ok()?.get(id).cloned()
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Connection>> {
        self.open.lock().ok()?.remove(id)
    }

    /// The connections not polled for `IDLE_LIMIT`, taken out.
    pub fn take_idle(&self) -> Vec<Arc<Connection>> {
        let Ok(mut open) = self.open.lock() else {
            return Vec::new();
        };
        let idle: Vec<String> = open
            .iter()
            .filter(|(_, c)| c.last_poll.lock().is_ok_and(|at| at.elapsed() > IDLE_LIMIT))
            .map(|(id, _)| id.clone())
            .collect();
        idle.iter().filter_map(|id| open.remove(id)).collect()
    }
}
