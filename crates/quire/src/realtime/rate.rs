//! The per-socket op rate limit (DESIGN.md: 50 ops/s with bursts of 100; a
//! socket over it for 5 consecutive seconds is closed with 4429).
//!
//! A token bucket in a few lines: the crates that do this (governor, ...)
//! are built for shared keyed limiters and read their own clock; this one is
//! owned by one session and reads `tokio::time`, so tests run on paused time.

use std::time::Duration;

use tokio::time::Instant;

/// What the bucket says about one op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the rate.
    Allowed,
    /// Over it: refuse this op (`rate_limited`).
    Limited,
    /// Over it for longer than the close-after time: close the socket.
    Sustained,
}

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug)]
pub struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
    /// When the current run of refused ops began.
    over_since: Option<Instant>,
    close_after: Duration,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: f64, close_after: Duration) -> Self {
        TokenBucket {
            tokens: burst,
            rate,
            burst,
            last: Instant::now(),
            over_since: None,
            close_after,
        }
    }

    /// Takes a token for one op.
    pub fn take(&mut self) -> Verdict {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.over_since = None;
            return Verdict::Allowed;
        }
        let since = *self.over_since.get_or_insert(now);
        if now.duration_since(since) >= self.close_after {
            Verdict::Sustained
        } else {
            Verdict::Limited
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket() -> TokenBucket {
        TokenBucket::new(50.0, 100.0, Duration::from_secs(5))
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_whole_then_the_next_op_is_limited() {
        let mut b = bucket();
        for i in 0..100 {
            assert_eq!(b.take(), Verdict::Allowed, "op {i} of the burst");
        }
        assert_eq!(b.take(), Verdict::Limited);
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_come_back_at_the_rate_and_never_beyond_the_burst() {
        let mut b = bucket();
        for _ in 0..100 {
            b.take();
        }
        tokio::time::advance(Duration::from_millis(100)).await; // 5 tokens
        for _ in 0..5 {
            assert_eq!(b.take(), Verdict::Allowed);
        }
        assert_eq!(b.take(), Verdict::Limited);
        tokio::time::advance(Duration::from_secs(3600)).await;
        for _ in 0..100 {
            assert_eq!(b.take(), Verdict::Allowed);
        }
        assert_eq!(
            b.take(),
            Verdict::Limited,
            "an hour idle still saves only a burst"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn each_accepted_op_ends_the_run_of_refusals() {
        let mut b = TokenBucket::new(1.0, 1.0, Duration::from_secs(5));
        assert_eq!(b.take(), Verdict::Allowed);
        assert_eq!(b.take(), Verdict::Limited);
        // Spamming every 100 ms: a token comes back each second, and the op
        // that gets it ends the run of refusals, so this never closes.
        let mut verdicts = Vec::new();
        for _ in 0..60 {
            tokio::time::advance(Duration::from_millis(100)).await;
            verdicts.push(b.take());
        }
        assert!(verdicts.contains(&Verdict::Allowed));
        assert!(
            !verdicts.contains(&Verdict::Sustained),
            "each accepted op ends the run"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_for_the_whole_close_after_time_are_sustained() {
        let mut b = TokenBucket::new(0.1, 1.0, Duration::from_secs(5));
        assert_eq!(b.take(), Verdict::Allowed);
        assert_eq!(b.take(), Verdict::Limited);
        tokio::time::advance(Duration::from_millis(4_900)).await;
        assert_eq!(b.take(), Verdict::Limited, "not yet 5 s over");
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(b.take(), Verdict::Sustained);
    }
}
