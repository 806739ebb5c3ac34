//! A value the running daemon replaces as a whole on SIGHUP (the ICE plan, the TLS
//! configuration): readers take the `Arc` in force, a reload swaps in a new one. The lock is
//! held only to clone or swap the `Arc`, never across an `.await`.

use std::sync::{Arc, RwLock};

#[derive(Debug, Default)]
pub struct Swappable<T>(RwLock<Arc<T>>);

impl<T> Swappable<T> {
    pub fn new(value: Arc<T>) -> Self {
        Self(RwLock::new(value))
    }

    pub fn current(&self) -> Arc<T> {
        Arc::clone(&self.0.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn replace(&self, value: Arc<T>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_keep_their_value_and_see_the_new_one_next_time() {
        let shared = Swappable::new(Arc::new(1));
        let before = shared.current();
        shared.replace(Arc::new(2));
        assert_eq!((*before, *shared.current()), (1, 2));
    }
}
