//! The opt-in clients.verify strategy: Clerk's Backend API checks the token.
//!
//! `POST {api_url}/v1/clients/verify {"token"}` with the secret key returns a
//! `Client`; the session used is `last_active_session_id` when it is active,
//! else the first active one. Clerk's spec describes this token as the
//! *client* token; every Clerk SDK verifies *session* tokens networklessly,
//! which is why this strategy is never the default.
//!
//! Results are cached by SHA-256 of the token (bounded TTL, never past the
//! token's own `exp`); concurrent verifications of one token share one
//! upstream call (moka's `try_get_with` coalesces them); 429/5xx are retried a
//! bounded number of times honouring `Retry-After`; an unreachable Clerk is
//! "unavailable" (503), never "invalid" (the user did nothing wrong).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use moka::future::Cache;
use moka::Expiry;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::config::{clerk_endpoint, clerk_http_client, RemoteOptions};
use crate::{Actor, AuthError, Org, Principal, MAX_TOKEN_BYTES};

/// A cached verification and when to forget it.
#[derive(Clone)]
struct Cached {
    principal: Principal,
    drop_at: Instant,
}

struct ByDropAt;

impl Expiry<[u8; 32], Cached> for ByDropAt {
    fn expire_after_create(&self, _: &[u8; 32], value: &Cached, now: Instant) -> Option<Duration> {
        Some(value.drop_at.saturating_duration_since(now))
    }
}

pub(crate) struct ClientsVerify {
    url: String,
    secret_key: SecretString,
    http: reqwest::Client,
    options: RemoteOptions,
    cache: Cache<[u8; 32], Cached>,
}

#[derive(Deserialize)]
struct Client {
    #[serde(default)]
    sessions: Vec<Session>,
    last_active_session_id: Option<String>,
}

#[derive(Deserialize)]
struct Session {
    id: String,
    user_id: String,
    status: String,
    #[serde(default)]
    last_active_organization_id: Option<String>,
    #[serde(default)]
    actor: Option<serde_json::Value>,
    #[serde(default)]
    expire_at: Option<i64>,
}

impl ClientsVerify {
    pub fn new(api_url: &str, secret_key: SecretString, options: RemoteOptions) -> Self {
        ClientsVerify {
            url: clerk_endpoint(api_url, "clients/verify"),
            secret_key,
            http: clerk_http_client(options.timeout),
            cache: Cache::builder()
                .max_capacity(options.cache_capacity)
                .expire_after(ByDropAt)
                .build(),
            options,
        }
    }

    /// Verifies via Clerk, or from the cache; one upstream call per token at a time.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let key: [u8; 32] = digest::digest(&digest::SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");
        let cached = self
            .cache
            .try_get_with(key, self.fetch(token))
            .await
            .map_err(|e: Arc<AuthError>| (*e).clone())?;
        if cached.principal.expires_at * 1000 <= unix_ms() {
            self.cache.invalidate(&key).await;
            return Err(AuthError::Expired);
        }
        Ok(cached.principal)
    }

    /// Asks Clerk, retrying 429/5xx and network errors a bounded number of times.
    async fn fetch(&self, token: &str) -> Result<Cached, AuthError> {
        let mut attempt = 1;
        loop {
            let wait = match self.attempt(token).await {
                Attempt::Done(result) => return result.map(|p| self.cached(p)),
                Attempt::Retry(wait) if attempt < self.options.max_attempts => wait,
                Attempt::Retry(_) => {
                    return Err(AuthError::UpstreamUnavailable(
                        "Clerk did not answer in time".into(),
                    ))
                }
            };
            tokio::time::sleep(wait.min(self.options.max_retry_wait)).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, token: &str) -> Attempt {
        let sent = self
            .http
            .post(&self.url)
            .bearer_auth(self.secret_key.expose_secret())
            .json(&serde_json::json!({ "token": token }))
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "clients.verify request failed");
                return Attempt::Retry(Duration::from_millis(200));
            }
        };
        let status = response.status().as_u16();
        match status {
            200 => Attempt::Done(match response.json::<Client>().await {
                Ok(client) => principal_from_client(client, token),
                Err(e) => {
                    tracing::warn!(error = %e, "clients.verify answered an unreadable body");
                    Err(AuthError::UpstreamUnavailable(
                        "unreadable Clerk response".into(),
                    ))
                }
            }),
            429 | 500..=599 => {
                Attempt::Retry(retry_after(&response).unwrap_or(Duration::from_millis(200)))
            }
            401 | 403 => {
                // Clerk refusing our secret key is our misconfiguration, not the user's fault.
                tracing::error!(
                    status,
                    "Clerk rejected the secret key on clients.verify: check CLERK_SECRET_KEY"
                );
                Attempt::Done(Err(AuthError::UpstreamUnavailable(
                    "Clerk rejected our secret key".into(),
                )))
            }
            _ => Attempt::Done(Err(AuthError::UnknownToken)),
        }
    }

    /// Cache entry lifetime: the TTL, never past the token's own `exp`.
    fn cached(&self, principal: Principal) -> Cached {
        let left_ms = (principal.expires_at * 1000 - unix_ms()).max(0) as u64;
        let ttl = self.options.cache_ttl.min(Duration::from_millis(left_ms));
        Cached {
            principal,
            drop_at: Instant::now() + ttl,
        }
    }
}

enum Attempt {
    Done(Result<Principal, AuthError>),
    Retry(Duration),
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The session Clerk says is current: last active if active, else the first active.
fn principal_from_client(client: Client, token: &str) -> Result<Principal, AuthError> {
    let active = |s: &&Session| s.status == "active";
    let session = client
        .last_active_session_id
        .as_deref()
        .and_then(|id| client.sessions.iter().find(|s| s.id == id))
        .filter(active)
        .or_else(|| client.sessions.iter().find(active))
        .ok_or(AuthError::SessionNotActive)?;
    if session.user_id.is_empty() || session.id.is_empty() {
        return Err(AuthError::InvalidClaims("session without user"));
    }
    let actor = match &session.actor {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(
            serde_json::from_value::<Actor>(v.clone())
                .map_err(|_| AuthError::InvalidClaims("actor"))?,
        ),
    };
    let expires_at = jwt_exp(token)
        .or(session.expire_at.map(|ms| ms / 1000))
        .unwrap_or_else(|| unix_ms() / 1000 + 60);
    Ok(Principal {
        user_id: session.user_id.clone(),
        session_id: session.id.clone(),
        org: session.last_active_organization_id.clone().map(|id| Org {
            id,
            slug: None,
            role: None,
            permissions: Vec::new(),
        }),
        actor,
        expires_at,
    })
}

/// `exp` of a JWT-shaped token. Clerk has verified the token; this only
/// bounds how long we trust the answer, so reading it unverified is safe.
fn jwt_exp(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    #[derive(Deserialize)]
    struct Exp {
        exp: Option<i64>,
    }
    serde_json::from_slice::<Exp>(&bytes).ok()?.exp
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
