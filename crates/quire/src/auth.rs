//! quire's side of authentication: the one `verify` call every HTTP request
//! and WebSocket goes through (clerk-auth's verifier, then the revocation
//! list), and the revocation list itself, fed by Clerk webhooks.

use std::time::Duration;

use clerk_auth::extract::request_token;
use clerk_auth::{AuthError, Principal};
use http::request::Parts;
use moka::sync::Cache;

/// How long a revoked session or deleted user stays refused. Clerk stops
/// minting tokens for them at once; this outlives any token already out.
const REVOCATION_TTL: Duration = Duration::from_secs(24 * 3600);
/// Revocations remembered at most (bounded memory).
const REVOCATION_CAPACITY: u64 = 200_000;

/// Sessions and users whose tokens are refused even if they verify.
pub struct Revocations {
    sessions: Cache<String, ()>,
    users: Cache<String, ()>,
}

impl Default for Revocations {
    fn default() -> Self {
        let cache = || {
            Cache::builder()
                .max_capacity(REVOCATION_CAPACITY)
                .time_to_live(REVOCATION_TTL)
                .build()
        };
        Revocations {
            sessions: cache(),
            users: cache(),
        }
    }
}

impl Revocations {
    pub fn revoke_session(&self, session_id: &str) {
        self.sessions.insert(session_id.to_string(), ());
    }

    pub fn revoke_user(&self, user_id: &str) {
        self.users.insert(user_id.to_string(), ());
    }

    /// `Err(Revoked)` when the principal's session or user was revoked.
    pub fn check(&self, p: &Principal) -> Result<(), AuthError> {
        if self.sessions.contains_key(&p.session_id) || self.users.contains_key(&p.user_id) {
            return Err(AuthError::Revoked);
        }
        Ok(())
    }
}

/// Logs an auth failure once, at info, with its precise reason (never the
/// token; the request id comes from the enclosing span), and counts it.
pub fn record_failure(e: &AuthError) {
    tracing::info!(reason = e.reason(), detail = %e, "authentication failed");
    metrics::counter!("auth_failures_total", "reason" => e.reason()).increment(1);
}

impl crate::AppState {
    /// THE verification call: signature and claims (clerk-auth), then revocation.
    pub async fn verify_token(&self, token: &str) -> Result<Principal, AuthError> {
        let principal = self.auth().verifier.verify(token).await?;
        self.revocations().check(&principal)?;
        Ok(principal)
    }

    /// Finds the request's token (header, or cookie from an allowed origin) and verifies it.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Principal, AuthError> {
        let token = request_token(&parts.headers, &self.auth().allowed_origins)
            .ok_or(AuthError::Missing)?;
        self.verify_token(token).await
    }
}
