//! The verified-token cache: a token that passed every check is not
//! RSA-checked again until it expires.
//!
//! Keyed by a hash of the whole token, and every hit compares the whole
//! token byte for byte, so a collision or an edited token can never borrow
//! another token's result. Entries expire when their token does (`exp` +
//! skew) by the `now` the verifier passes in (its [`Clock`](crate::Clock));
//! moka's own real-time expiry only bounds memory, as does the entry count.
//! Revocation is the caller's business and must be consulted on every hit.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;

use crate::Principal;

/// A verified token and what it proved.
pub(crate) struct Entry {
    token: Box<str>,
    pub principal: Principal,
    /// Unix ms until which the token stays valid (`exp` + skew).
    valid_until_ms: i64,
    /// Unix ms before which it was not valid yet (max of `nbf`, `iat` - skew).
    valid_from_ms: i64,
    /// When the cache should drop it.
    drop_at: Instant,
}

struct ByDropAt;

impl Expiry<u64, Arc<Entry>> for ByDropAt {
    fn expire_after_create(&self, _: &u64, value: &Arc<Entry>, now: Instant) -> Option<Duration> {
        Some(value.drop_at.saturating_duration_since(now))
    }
}

pub(crate) struct VerifiedCache {
    cache: Cache<u64, Arc<Entry>>,
    hasher: std::collections::hash_map::RandomState,
}

impl VerifiedCache {
    pub fn new(capacity: u64) -> Self {
        VerifiedCache {
            cache: Cache::builder()
                .max_capacity(capacity)
                .expire_after(ByDropAt)
                .build(),
            hasher: Default::default(),
        }
    }

    fn key(&self, token: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write(token.as_bytes());
        h.finish()
    }

    /// The principal of an identical token verified before and still valid at `now_ms`.
    pub fn get(&self, token: &str, now_ms: i64) -> Option<Principal> {
        let entry = self.cache.get(&self.key(token))?;
        let valid = *entry.token == *token
            && now_ms < entry.valid_until_ms
            && now_ms >= entry.valid_from_ms;
        valid.then(|| entry.principal.clone())
    }

    /// Remembers a token that just passed every check.
    pub fn insert(
        &self,
        token: &str,
        principal: &Principal,
        valid_from_ms: i64,
        skew_ms: i64,
        now_ms: i64,
    ) {
        let valid_until_ms = principal.expires_at * 1000 + skew_ms;
        let left = Duration::from_millis((valid_until_ms - now_ms).max(0) as u64);
        let entry = Entry {
            token: token.into(),
            principal: principal.clone(),
            valid_until_ms,
            valid_from_ms,
            drop_at: Instant::now() + left,
        };
        self.cache.insert(self.key(token), Arc::new(entry));
    }
}
