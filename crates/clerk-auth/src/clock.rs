//! [`Clock`]: the one place clerk-auth reads time, so tests can move it.
//!
//! Everything time-dependent in this crate (the verifier's `now` for
//! `exp`/`nbf`/`iat`, the JWKS TTL and cooldown, the verified-token cache, the
//! remote and machine-token caches and their retry waits, and the stand-in's
//! own idea of "now") asks a `Clock`. Production uses [`Clock::system`].
//! Tests use [`Clock::test`], frozen until the test moves it with
//! [`Clock::advance`], or [`Clock::tokio`], which follows tokio's clock (real
//! or paused) plus such advances. A [`Clock::sleep`] on either test clock
//! advances it instead of waiting.
//!
//! Why a frozen clock rather than tokio's paused time for the caches' tests:
//! they go through real loopback HTTP, and with paused time tokio
//! auto-advances to the next timer whenever the runtime waits for I/O, which
//! fires reqwest's request timeouts spuriously (seanmonstar/reqwest#2783);
//! and a clock that flows with real time makes "still within the 200 ms
//! cooldown" depend on how loaded the machine is. A clock only the test (or
//! our own retry wait) moves never races the network, and the run takes no
//! real seconds. [`Clock::tokio`] is for callers without network in the
//! loop who already drive everything else with paused tokio time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of wall-clock and monotonic time. Cheap to clone; clones of a
/// test clock share one offset.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    test: Option<Arc<TestClock>>,
}

#[derive(Debug)]
struct TestClock {
    wall_start: SystemTime,
    /// Set for [`Clock::tokio`]: tokio's clock flows into this one.
    tokio_start: Option<tokio::time::Instant>,
    mono_start: Instant,
    /// Milliseconds added by `advance` and by virtual sleeps.
    offset_ms: AtomicU64,
}

impl Clock {
    /// The operating system's clocks.
    pub fn system() -> Self {
        Clock { test: None }
    }

    /// A test clock frozen at the current wall time; only
    /// [`advance`](Self::advance) and [`sleep`](Self::sleep) move it.
    pub fn test() -> Self {
        Self::test_at(SystemTime::now())
    }

    /// A frozen test clock whose wall time starts at `start`.
    pub fn test_at(start: SystemTime) -> Self {
        Self::new_test(start, None)
    }

    /// A test clock starting now that follows tokio's clock (so, under
    /// `tokio::time::pause`, tokio's virtual time) plus [`advance`](Self::advance).
    pub fn tokio() -> Self {
        Self::new_test(SystemTime::now(), Some(tokio::time::Instant::now()))
    }

    fn new_test(wall_start: SystemTime, tokio_start: Option<tokio::time::Instant>) -> Self {
        Clock {
            test: Some(Arc::new(TestClock {
                wall_start,
                tokio_start,
                mono_start: Instant::now(),
                offset_ms: AtomicU64::new(0),
            })),
        }
    }

    /// Moves a test clock forward (no effect on the system clock: real time
    /// cannot be moved, and production code never calls this).
    pub fn advance(&self, by: Duration) {
        if let Some(t) = &self.test {
            t.offset_ms
                .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
        }
    }

    /// Whether this is a test clock.
    pub fn is_test(&self) -> bool {
        self.test.is_some()
    }

    /// Wall-clock now.
    pub fn now(&self) -> SystemTime {
        match &self.test {
            None => SystemTime::now(),
            Some(t) => t.wall_start + t.elapsed(),
        }
    }

    /// Milliseconds since the Unix epoch (negative before it).
    pub fn unix_ms(&self) -> i64 {
        unix_millis(self.now())
    }

    /// Monotonic now, for TTLs and cooldowns.
    pub fn instant(&self) -> Instant {
        match &self.test {
            None => Instant::now(),
            Some(t) => t.mono_start + t.elapsed(),
        }
    }

    /// Waits `d`: really on the system clock; on a test clock the offset
    /// moves by `d` at once, so a retry honouring `Retry-After: 30` costs a
    /// test nothing and the test can still see that 30 s "passed".
    pub async fn sleep(&self, d: Duration) {
        match &self.test {
            None => tokio::time::sleep(d).await,
            Some(_) => {
                self.advance(d);
                tokio::task::yield_now().await;
            }
        }
    }
}

impl TestClock {
    fn elapsed(&self) -> Duration {
        let flowed = self.tokio_start.map_or(Duration::ZERO, |t| t.elapsed());
        flowed + Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }
}

/// `t` as milliseconds since the Unix epoch.
pub(crate) fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn test_clock_moves_only_when_told_or_slept() {
        let start = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let clock = Clock::test_at(start);
        let (wall, mono) = (clock.unix_ms(), clock.instant());
        assert_eq!(wall, 1_000_000_000);
        clock.advance(Duration::from_secs(30));
        assert_eq!(clock.unix_ms(), wall + 30_000);
        clock.sleep(Duration::from_millis(1500)).await;
        assert_eq!(clock.unix_ms(), wall + 31_500);
        assert_eq!(clock.instant() - mono, Duration::from_millis(31_500));
        // Clones share the offset.
        clock.clone().advance(Duration::from_secs(1));
        assert_eq!(clock.unix_ms(), wall + 32_500);
    }

    #[tokio::test]
    async fn tokio_clock_follows_tokio_time() {
        let clock = Clock::tokio();
        let before = clock.unix_ms();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(clock.unix_ms() >= before + 20);
        clock.advance(Duration::from_secs(5));
        assert!(clock.unix_ms() >= before + 5_020);
    }

    #[test]
    fn system_clock_ignores_advance() {
        let clock = Clock::system();
        let before = clock.unix_ms();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.unix_ms() - before < 3_600_000);
    }
}
