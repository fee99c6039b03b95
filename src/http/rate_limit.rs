//! A per-connection message rate limit: the token bucket.
//!
//! A bucket holds up to `burst` tokens and refills at `rate` tokens per second; each message
//! a client sends takes one. For WebSockets "message" means every frame, counted by the frame
//! guard ([`super::ws::guard`]) as it passes: fragments, pings and pongs included. A person clicking buttons never empties it; a script flooding
//! the socket does, and is then closed with 1008 (policy violation). The bucket is a
//! plain value owned by one session: no lock, no shared state, nothing per message but
//! a little arithmetic.

use tokio::time::Instant;

/// The token bucket of one connection.
#[derive(Debug, Clone)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// A full bucket allowing `per_sec` messages per second on average and bursts of twice
    /// that (a page reconnecting and re-subscribing sends a few messages at once).
    pub fn new(per_sec: u32) -> RateLimit {
        let rate = f64::from(per_sec.max(1));
        RateLimit {
            rate,
            burst: 2.0 * rate,
            tokens: 2.0 * rate,
            last: Instant::now(),
        }
    }

    /// Takes a token for one message at `now`; `false` when the bucket is empty, i.e. the
    /// client is sending faster than allowed.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The average rate allowed, for the close reason's text.
    pub fn per_sec(&self) -> f64 {
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_passes_a_flood_does_not_and_time_refills() {
        let start = Instant::now();
        let mut limit = RateLimit::new(10);
        let allowed = (0..100).filter(|_| limit.allow(start)).count();
        assert_eq!(allowed, 20, "the burst is twice the rate");
        assert!(!limit.allow(start));
        assert!(limit.allow(start + Duration::from_millis(150)));
        // One message every 100 ms is exactly the rate: never refused.
        let mut steady = RateLimit::new(10);
        assert!((1..=1000).all(|i| steady.allow(start + Duration::from_millis(100 * i))));
    }
}
