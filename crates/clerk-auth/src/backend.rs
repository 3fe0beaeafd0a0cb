//! What every verification through Clerk's Backend API shares: the call
//! (retries, `Retry-After`, outage and misconfiguration handling) and the
//! result cache (by SHA-256 of the token, bounded TTL, coalesced misses).
//!
//! Both the clients.verify strategy ([`crate::remote`]) and machine tokens
//! ([`crate::machine`]) are "POST the token to Clerk, trust the answer for a
//! while", so they are written once here:
//! - 200 is the answer; 401/403 means Clerk refused *our* key: an error log
//!   naming the variable to check, and "unavailable" (503) for the caller,
//!   who did nothing wrong; 429, 5xx and network errors are retried a bounded
//!   number of times, waiting what `Retry-After` says (capped), then
//!   "unavailable"; any other status means Clerk does not know the token.
//! - The cache keeps a principal until `min(now + ttl, token expiry)` by the
//!   injected [`Clock`]; concurrent misses for one token share one upstream
//!   call (moka's `try_get_with`); a stale hit is removed only if it is still
//!   the same stale entry, so a fresher answer another caller just stored is
//!   never thrown away. Refusals are not cached.
//!
//! The token itself never reaches a log line: requests are logged by
//! endpoint name, and tokens are cached only as hashes.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use moka::future::Cache;
use moka::ops::compute::Op;
use moka::Expiry;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::{clerk_endpoint, clerk_http_client, RemoteOptions};
use crate::{AuthError, Clock, Principal};

/// Wait before retrying when Clerk gave no `Retry-After`.
const DEFAULT_RETRY_WAIT: Duration = Duration::from_millis(200);

/// One Backend API verify route and the credential it takes.
pub(crate) struct Endpoint {
    url: String,
    credential: SecretString,
    /// For logs, e.g. `api_keys.verify`.
    name: &'static str,
    /// The variable holding `credential`, named when Clerk refuses it.
    credential_var: &'static str,
}

impl Endpoint {
    pub fn new(
        api_url: &str,
        path: &str,
        credential: SecretString,
        name: &'static str,
        credential_var: &'static str,
    ) -> Self {
        Endpoint {
            url: clerk_endpoint(api_url, path),
            credential,
            name,
            credential_var,
        }
    }
}

/// The HTTP side: one client, the retry policy and the clock its waits use.
pub(crate) struct BackendApi {
    http: reqwest::Client,
    options: RemoteOptions,
    clock: Clock,
}

enum Attempt<T> {
    Done(Result<T, AuthError>),
    Retry(Duration),
}

impl BackendApi {
    pub fn new(options: RemoteOptions, clock: Clock) -> Self {
        BackendApi {
            http: clerk_http_client(options.timeout),
            options,
            clock,
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// POSTs `body` to `endpoint` and reads a 200 answer as `T`, with the
    /// retry and error rules of the module doc.
    pub async fn verify<T: DeserializeOwned>(
        &self,
        endpoint: &Endpoint,
        body: &impl Serialize,
    ) -> Result<T, AuthError> {
        let mut attempt = 1;
        loop {
            let wait = match self.attempt(endpoint, body).await {
                Attempt::Done(result) => return result,
                Attempt::Retry(wait) if attempt < self.options.max_attempts => wait,
                Attempt::Retry(_) => {
                    return Err(AuthError::UpstreamUnavailable(format!(
                        "{} did not answer in time",
                        endpoint.name
                    )))
                }
            };
            self.clock
                .sleep(wait.min(self.options.max_retry_wait))
                .await;
            attempt += 1;
        }
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        endpoint: &Endpoint,
        body: &impl Serialize,
    ) -> Attempt<T> {
        let sent = self
            .http
            .post(&endpoint.url)
            .bearer_auth(endpoint.credential.expose_secret())
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                // reqwest errors name the URL, never the body: no token here.
                tracing::warn!(endpoint = endpoint.name, error = %e, "Clerk request failed");
                return Attempt::Retry(DEFAULT_RETRY_WAIT);
            }
        };
        let status = response.status().as_u16();
        match status {
            200 => Attempt::Done(response.json::<T>().await.map_err(|e| {
                tracing::warn!(endpoint = endpoint.name, error = %e, "Clerk answered an unreadable body");
                AuthError::UpstreamUnavailable("unreadable Clerk response".into())
            })),
            429 | 500..=599 => Attempt::Retry(retry_after(&response).unwrap_or(DEFAULT_RETRY_WAIT)),
            401 | 403 => {
                tracing::error!(
                    endpoint = endpoint.name,
                    status,
                    "Clerk rejected our credential: check {}",
                    endpoint.credential_var
                );
                Attempt::Done(Err(AuthError::UpstreamUnavailable(format!(
                    "Clerk rejected {}",
                    endpoint.credential_var
                ))))
            }
            _ => Attempt::Done(Err(AuthError::UnknownToken)),
        }
    }
}

/// `Retry-After` in seconds (the form Clerk sends).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A verified answer and until when (Unix ms, by the injected clock) to trust it.
#[derive(Clone)]
struct Cached {
    principal: Principal,
    valid_until_ms: i64,
    /// Real-time lifetime, for moka's memory bound only.
    lifetime: Duration,
}

struct ByLifetime;

impl Expiry<[u8; 32], Cached> for ByLifetime {
    fn expire_after_create(&self, _: &[u8; 32], value: &Cached, _: Instant) -> Option<Duration> {
        Some(value.lifetime)
    }
}

/// Verified principals by SHA-256 of their token.
pub(crate) struct TokenCache {
    cache: Cache<[u8; 32], Cached>,
    ttl: Duration,
    clock: Clock,
}

impl TokenCache {
    pub fn new(options: &RemoteOptions, clock: Clock) -> Self {
        TokenCache {
            cache: Cache::builder()
                .max_capacity(options.cache_capacity)
                .expire_after(ByLifetime)
                .build(),
            ttl: options.cache_ttl,
            clock,
        }
    }

    /// The principal of `token`: from the cache while fresh, else from
    /// `fetch`, run once for all concurrent callers of the same token.
    pub async fn get_or_fetch<F>(&self, token: &str, fetch: F) -> Result<Principal, AuthError>
    where
        F: Future<Output = Result<Principal, AuthError>>,
    {
        let key = token_hash(token);
        let now = self.clock.unix_ms();
        if let Some(hit) = self.cache.get(&key).await {
            if now < hit.valid_until_ms {
                return Ok(hit.principal);
            }
            self.remove_if_stale(key, now).await;
        }
        let cached = self
            .cache
            .try_get_with(key, async { fetch.await.map(|p| self.entry(p)) })
            .await
            .map_err(|e: Arc<AuthError>| (*e).clone())?;
        Ok(cached.principal)
    }

    /// Forgets `token` (e.g. it turned out to be expired).
    pub async fn forget(&self, token: &str) {
        self.cache.invalidate(&token_hash(token)).await;
    }

    /// Removes the entry for `key` unless someone replaced it with a fresh one.
    async fn remove_if_stale(&self, key: [u8; 32], now: i64) {
        self.cache
            .entry(key)
            .and_compute_with(|entry| async move {
                match entry {
                    Some(e) if now >= e.value().valid_until_ms => Op::Remove,
                    _ => Op::Nop,
                }
            })
            .await;
    }

    /// Trusted for the TTL, never past the token's own expiry.
    fn entry(&self, principal: Principal) -> Cached {
        let now = self.clock.unix_ms();
        let expiry_ms = principal.expires_at.saturating_mul(1000);
        let valid_until_ms = expiry_ms.min(now.saturating_add(self.ttl.as_millis() as i64));
        let lifetime = Duration::from_millis((valid_until_ms - now).max(0) as u64);
        Cached {
            principal,
            valid_until_ms,
            lifetime,
        }
    }
}

/// The cache key: SHA-256 of the whole token (the token itself is never kept).
fn token_hash(token: &str) -> [u8; 32] {
    digest::digest(&digest::SHA256, token.as_bytes())
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}
