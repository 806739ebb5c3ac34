//! A token bucket per source address, so a flood from one host is dropped while everyone else
//! is still answered. Pure: the caller passes the current time.
//!
//! Memory is bounded: when more than `max_sources` addresses are tracked, buckets that have
//! refilled completely (idle senders) are forgotten first; if none have, the table is cleared,
//! which at worst lets every sender burst once more.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

#[derive(Debug)]
pub struct RateLimiter {
    rate_per_second: f64,
    burst: f64,
    max_sources: usize,
    buckets: HashMap<IpAddr, Bucket>,
}

impl RateLimiter {
    pub fn new(rate_per_second: u32, burst: u32, max_sources: usize) -> Self {
        Self {
            rate_per_second: f64::from(rate_per_second),
            burst: f64::from(burst.max(1)),
            max_sources: max_sources.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Whether a datagram from `source` at `now` may be answered; takes a token if so.
    pub fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        if !self.buckets.contains_key(&source) && self.buckets.len() >= self.max_sources {
            self.forget_idle(now);
        }
        let (rate, burst) = (self.rate_per_second, self.burst);
        let bucket = self.buckets.entry(source).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn forget_idle(&mut self, now: Instant) {
        let (rate, burst) = (self.rate_per_second, self.burst);
        self.buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * rate < burst
        });
        if self.buckets.len() >= self.max_sources {
            self.buckets.clear();
        }
    }

    pub fn tracked_sources(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn a_burst_is_allowed_then_the_rate() {
        let mut limiter = RateLimiter::new(10, 5, 100);
        let start = Instant::now();
        let allowed = (0..100).filter(|_| limiter.allow(A, start)).count();
        assert_eq!(allowed, 5);
        // One second later, ten more tokens, capped at the burst.
        let later = start + Duration::from_secs(1);
        let allowed = (0..100).filter(|_| limiter.allow(A, later)).count();
        assert_eq!(allowed, 5);
        let soon = later + Duration::from_millis(200);
        assert_eq!((0..100).filter(|_| limiter.allow(A, soon)).count(), 2);
    }

    #[test]
    fn one_flooding_source_does_not_starve_another() {
        let mut limiter = RateLimiter::new(10, 5, 100);
        let now = Instant::now();
        for _ in 0..1000 {
            limiter.allow(A, now);
        }
        assert!(limiter.allow(B, now));
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut limiter = RateLimiter::new(10, 5, 50);
        let now = Instant::now();
        for i in 0..10_000u32 {
            limiter.allow(IpAddr::from(i.to_be_bytes()), now);
        }
        assert!(limiter.tracked_sources() <= 50);
    }
}
