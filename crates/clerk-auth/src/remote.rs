//! The opt-in clients.verify strategy: Clerk's Backend API checks the token.
//!
//! `POST {api_url}/v1/clients/verify {"token"}` with the secret key returns a
//! `Client`; the session used is `last_active_session_id` when it is active,
//! else the first active one. Clerk's spec describes this token as the
//! *client* token; every Clerk SDK verifies *session* tokens networklessly,
//! which is why this strategy is never the default.
//!
//! The call and the cache are [`crate::backend`]'s, shared with machine
//! tokens: results cached by SHA-256 of the token (bounded TTL, never past the
//! token's own `exp`); concurrent verifications of one token share one
//! upstream call; 429/5xx are retried a bounded number of times honouring
//! `Retry-After`; an unreachable Clerk is "unavailable" (503), never
//! "invalid" (the user did nothing wrong).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::backend::{BackendApi, Endpoint, TokenCache};
use crate::config::RemoteOptions;
use crate::{Actor, AuthError, Clock, Org, Principal, TokenKind, MAX_TOKEN_BYTES};

pub(crate) struct ClientsVerify {
    endpoint: Endpoint,
    api: BackendApi,
    cache: TokenCache,
}

#[derive(Serialize)]
struct VerifyBody<'a> {
    token: &'a str,
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
    pub fn new(
        api_url: &str,
        secret_key: SecretString,
        options: RemoteOptions,
        clock: Clock,
    ) -> Self {
        ClientsVerify {
            endpoint: Endpoint::new(
                api_url,
                "clients/verify",
                secret_key,
                "clients.verify",
                "CLERK_SECRET_KEY",
            ),
            cache: TokenCache::new(&options, clock.clone()),
            api: BackendApi::new(options, clock),
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
        let principal = self.cache.get_or_fetch(token, self.fetch(token)).await?;
        if principal.expires_at.saturating_mul(1000) <= self.api.clock().unix_ms() {
            self.cache.forget(token).await;
            return Err(AuthError::Expired);
        }
        Ok(principal)
    }

    async fn fetch(&self, token: &str) -> Result<Principal, AuthError> {
        let client: Client = self
            .api
            .verify(&self.endpoint, &VerifyBody { token })
            .await?;
        principal_from_client(client, token, self.api.clock().unix_ms())
    }
}

/// The session Clerk says is current: last active if active, else the first active.
fn principal_from_client(client: Client, token: &str, now_ms: i64) -> Result<Principal, AuthError> {
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
        .unwrap_or_else(|| now_ms / 1000 + 60);
    Ok(Principal {
        user_id: session.user_id.clone(),
        subject: session.user_id.clone(),
        kind: TokenKind::Session,
        scopes: Vec::new(),
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
