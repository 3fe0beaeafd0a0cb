//! The JWKS cache: Clerk's signing keys, fetched rarely and shared by all.
//!
//! Rules (the key step of verification): one cache per Clerk instance (API URL + secret
//! key); refreshed after a TTL; an unknown `kid` triggers at most one fetch per
//! cooldown, with a single fetch in flight that every waiter shares; a fetch
//! times out and its body is size-capped; when a fetch fails the keys we have
//! keep working; with no usable key at all the answer is "unavailable".

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use secrecy::{ExposeSecret, SecretString};

use crate::config::{clerk_endpoint, clerk_http_client, JwksOptions};
use crate::keys::{keys_from_jwks, Key, KeyMap};
use crate::{AuthError, Clock};

/// When the key set is empty (cold start, or every fetch failed), a failed
/// fetch is retried after this long instead of the full cooldown, so a
/// service that starts while Clerk is briefly unreachable recovers quickly.
const EMPTY_SET_RETRY: Duration = Duration::from_secs(1);

/// A key set as of one successful fetch.
struct Snapshot {
    keys: KeyMap,
    fetched_at: Option<Instant>,
    /// Bumped on every successful fetch; lets waiters see that someone else
    /// fetched while they queued.
    generation: u64,
}

/// Bookkeeping guarded by the single-flight lock.
struct FetchState {
    last_attempt: Option<Instant>,
    last_failed: bool,
}

/// Signing keys of one Clerk instance, cached.
pub struct JwksCache {
    url: String,
    secret_key: SecretString,
    http: reqwest::Client,
    options: JwksOptions,
    snapshot: ArcSwap<Snapshot>,
    /// The single-flight lock: whoever holds it is the one fetching.
    fetch: tokio::sync::Mutex<FetchState>,
    fetches: AtomicU64,
    /// TTL and cooldown are measured on this clock.
    clock: Clock,
}

impl JwksCache {
    /// A cold cache for the instance at `api_url` (e.g. `https://api.clerk.com`).
    pub fn new(api_url: &str, secret_key: SecretString, options: JwksOptions) -> Self {
        Self::with_clock(api_url, secret_key, options, Clock::system())
    }

    /// [`new`](Self::new), measuring TTL and cooldown on `clock`.
    pub fn with_clock(
        api_url: &str,
        secret_key: SecretString,
        options: JwksOptions,
        clock: Clock,
    ) -> Self {
        JwksCache {
            clock,
            url: clerk_endpoint(api_url, "jwks"),
            http: clerk_http_client(options.timeout),
            secret_key,
            options,
            snapshot: ArcSwap::from_pointee(Snapshot {
                keys: KeyMap::new(),
                fetched_at: None,
                generation: 0,
            }),
            fetch: tokio::sync::Mutex::new(FetchState {
                last_attempt: None,
                last_failed: false,
            }),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many JWKS requests this cache has made (for tests and metrics).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Whether at least one usable key is loaded.
    pub fn has_keys(&self) -> bool {
        !self.snapshot.load().keys.is_empty()
    }

    /// The key for `kid`, fetching when the cache is cold, stale or lacks it.
    pub(crate) async fn key(&self, kid: &str) -> Result<Key, AuthError> {
        let snap = self.snapshot.load_full();
        if let Some(key) = snap.keys.get(kid) {
            if !self.is_stale(&snap) {
                return Ok(key.clone());
            }
            // Stale but known: one caller refreshes (at most once per
            // cooldown, so an outage is not a fetch per request), nobody else waits.
            if let Ok(mut state) = self.fetch.try_lock() {
                if self.may_fetch(&state) {
                    self.fetch_into(&mut state).await;
                }
            }
            let fresh = self.snapshot.load();
            if fresh.generation == snap.generation {
                // No successful fetch since: the cached key keeps working.
                return Ok(key.clone());
            }
            // A successful fetch replaced the set: a retired kid is gone.
            return match fresh.keys.get(kid) {
                Some(key) => Ok(key.clone()),
                None if fresh.keys.is_empty() => {
                    Err(AuthError::KeysUnavailable("no usable key".into()))
                }
                None => Err(AuthError::UnknownKid),
            };
        }
        self.key_after_fetch(kid, snap.generation).await
    }

    /// Makes sure keys are loaded (for readiness checks): fetches when cold.
    pub async fn ensure_loaded(&self) -> Result<(), AuthError> {
        let snap = self.snapshot.load_full();
        if !snap.keys.is_empty() {
            return Ok(());
        }
        let mut state = self.fetch.lock().await;
        if self.snapshot.load().generation == snap.generation && self.may_fetch(&state) {
            self.fetch_into(&mut state).await;
        }
        if self.has_keys() {
            Ok(())
        } else {
            Err(AuthError::KeysUnavailable("no usable key".into()))
        }
    }

    fn is_stale(&self, snap: &Snapshot) -> bool {
        let now = self.clock.instant();
        snap.fetched_at
            .is_none_or(|t| now.saturating_duration_since(t) >= self.options.ttl)
    }

    /// Unknown kid: wait for (or perform) the one allowed fetch, then look again.
    async fn key_after_fetch(&self, kid: &str, seen_generation: u64) -> Result<Key, AuthError> {
        let mut state = self.fetch.lock().await;
        let current = self.snapshot.load_full();
        let someone_fetched = current.generation != seen_generation;
        if !someone_fetched && self.may_fetch(&state) {
            self.fetch_into(&mut state).await;
        }
        drop(state);
        let snap = self.snapshot.load();
        match snap.keys.get(kid) {
            Some(key) => Ok(key.clone()),
            None if snap.keys.is_empty() => Err(AuthError::KeysUnavailable("no usable key".into())),
            None => Err(AuthError::UnknownKid),
        }
    }

    /// The cooldown, shortened while we have no keys at all.
    fn may_fetch(&self, state: &FetchState) -> bool {
        let wait = if self.has_keys() || !state.last_failed {
            self.options.cooldown
        } else {
            EMPTY_SET_RETRY
        };
        let now = self.clock.instant();
        state
            .last_attempt
            .is_none_or(|t| now.saturating_duration_since(t) >= wait)
    }

    /// Performs one fetch (caller holds the lock) and publishes the result.
    async fn fetch_into(&self, state: &mut FetchState) {
        state.last_attempt = Some(self.clock.instant());
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match self.download().await {
            Ok(keys) => {
                tracing::debug!(keys = keys.len(), "JWKS refreshed");
                state.last_failed = false;
                let generation = self.snapshot.load().generation + 1;
                self.snapshot.store(Arc::new(Snapshot {
                    keys,
                    fetched_at: Some(self.clock.instant()),
                    generation,
                }));
            }
            Err(why) => {
                state.last_failed = true;
                tracing::warn!(url = %self.url, %why, "JWKS fetch failed; keeping cached keys");
            }
        }
    }

    /// GET the JWKS with the secret key; status, size and timeout enforced.
    async fn download(&self) -> Result<KeyMap, String> {
        let mut response = self
            .http
            .get(&self.url)
            .bearer_auth(self.secret_key.expose_secret())
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        let cap = self.options.max_bytes;
        if response.content_length().is_some_and(|n| n as usize > cap) {
            return Err("response too large".into());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading body: {e}"))?
        {
            if body.len() + chunk.len() > cap {
                return Err("response too large".into());
            }
            body.extend_from_slice(&chunk);
        }
        keys_from_jwks(&body)
    }
}
