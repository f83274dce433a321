//! A client-side limit on requests to the API server: a token bucket of `burst` tokens
//! refilled at `qps` per second, shared by every request the controller sends (watches
//! excepted: they are long-lived and few).
//!
//! kube 5's client has no limiter of its own; client-go's default (5 QPS, burst 10) would
//! make 10,000 Services take over an hour. The defaults here let a burst of thousands through
//! in seconds; the API server's own max-in-flight limits and priority-and-fairness still apply.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The bucket's arithmetic, with time as an input.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. `qps` of 0 (or less) means no limit.
    pub fn new(qps: f64, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            qps,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token and says how long to wait before using it. Tokens may be reserved
    /// ahead (the balance goes negative), so waiters are served in the order they asked.
    pub fn reserve(&mut self, now: Instant) -> Duration {
        if self.qps <= 0.0 {
            return Duration::ZERO;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.qps)
        }
    }
}

/// The shared limiter.
#[derive(Debug)]
pub struct RateLimiter {
    bucket: Mutex<TokenBucket>,
}

impl RateLimiter {
    pub fn new(qps: f64, burst: u32) -> Self {
        RateLimiter {
            bucket: Mutex::new(TokenBucket::new(qps, burst, Instant::now())),
        }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        let wait = {
            let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
            bucket.reserve(Instant::now())
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_lets_the_burst_through_at_once() {
        let t = Instant::now();
        let mut b = TokenBucket::new(10.0, 5, t);
        for _ in 0..5 {
            assert_eq!(b.reserve(t), Duration::ZERO);
        }
        // The sixth waits one token's time, the seventh two.
        assert_eq!(b.reserve(t), Duration::from_millis(100));
        assert_eq!(b.reserve(t), Duration::from_millis(200));
    }

    #[test]
    fn tokens_refill_at_qps_up_to_the_burst() {
        let t = Instant::now();
        let mut b = TokenBucket::new(100.0, 2, t);
        b.reserve(t);
        b.reserve(t);
        // 10 ms later one token is back.
        assert_eq!(b.reserve(t + Duration::from_millis(10)), Duration::ZERO);
        // After a long idle time the bucket holds `burst`, not more.
        let later = t + Duration::from_secs(60);
        assert_eq!(b.reserve(later), Duration::ZERO);
        assert_eq!(b.reserve(later), Duration::ZERO);
        assert!(b.reserve(later) > Duration::ZERO);
    }

    #[test]
    fn zero_qps_means_no_limit() {
        let t = Instant::now();
        let mut b = TokenBucket::new(0.0, 1, t);
        for _ in 0..1000 {
            assert_eq!(b.reserve(t), Duration::ZERO);
        }
    }
}
