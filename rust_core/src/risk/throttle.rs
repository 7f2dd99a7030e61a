//! Token buckets: order (and modify/cancel) message throttles.

/// A token bucket holding up to one second of its rate; 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last_ns: u64,
}

impl TokenBucket {
    /// A full bucket refilled at `rate` tokens per second (burst: one second's worth, at
    /// least one token).
    pub fn new(rate: f64, now_ns: u64) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            0.0
        };
        let capacity = rate.max(1.0);
        Self {
            rate,
            capacity,
            tokens: capacity,
            last_ns: now_ns,
        }
    }

    /// The rate (tokens per second; 0: unlimited).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Changes the rate, keeping the tokens earned so far (capped by the new capacity).
    pub fn set_rate(&mut self, rate: f64, now_ns: u64) {
        let fresh = Self::new(rate, now_ns);
        if fresh.rate == self.rate {
            return;
        }
        self.refill(now_ns);
        let tokens = self.tokens.min(fresh.capacity);
        *self = Self { tokens, ..fresh };
    }

    fn refill(&mut self, now_ns: u64) {
        let elapsed = now_ns.saturating_sub(self.last_ns) as f64 / 1e9;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.last_ns = self.last_ns.max(now_ns);
    }

    /// Whether a token is there now, without taking it; the wait for one when not.
    ///
    /// # Errors
    /// Nanoseconds until a token is there.
    pub fn peek(&mut self, now_ns: u64) -> Result<(), u64> {
        if self.rate == 0.0 {
            return Ok(());
        }
        self.refill(now_ns);
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            Err(((1.0 - self.tokens) / self.rate * 1e9).ceil() as u64)
        }
    }

    /// Takes a token (call after a successful `peek`).
    pub fn take(&mut self) {
        if self.rate > 0.0 {
            self.tokens -= 1.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_gets_exactly_the_capacity() {
        let mut bucket = TokenBucket::new(100.0, 0);
        let mut accepted = 0;
        for _ in 0..1_000 {
            if bucket.peek(0).is_ok() {
                bucket.take();
                accepted += 1;
            }
        }
        assert_eq!(accepted, 100);
        // 10 ms later: one more token.
        assert_eq!(bucket.peek(5_000_000), Err(5_000_000));
        assert!(bucket.peek(10_000_000).is_ok());
    }

    #[test]
    fn refills_at_the_rate_and_caps() {
        let mut bucket = TokenBucket::new(10.0, 0);
        for _ in 0..10 {
            bucket.peek(0).unwrap_or_default();
            bucket.take();
        }
        assert!(bucket.peek(0).is_err());
        let mut accepted = 0;
        for _ in 0..100 {
            if bucket.peek(10_000_000_000).is_ok() {
                bucket.take();
                accepted += 1;
            }
        }
        assert_eq!(accepted, 10, "never more than one second's worth");
    }

    #[test]
    fn zero_or_nan_is_unlimited() {
        for rate in [0.0, f64::NAN, -5.0] {
            let mut bucket = TokenBucket::new(rate, 0);
            for _ in 0..10_000 {
                assert!(bucket.peek(0).is_ok());
                bucket.take();
            }
        }
    }
}
