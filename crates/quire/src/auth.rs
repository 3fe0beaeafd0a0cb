//! quire's side of authentication: the one `verify` call every HTTP request
//! and WebSocket goes through (clerk-auth's verifier, then the revocation
//! list), and the revocation list itself, fed by Clerk webhooks.

use std::sync::Arc;
use std::time::Duration;

use clerk_auth::extract::request_token;
use clerk_auth::{AuthError, Principal, Verifier};
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
    /// (user, organization) pairs whose membership was deleted: the user's
    /// tokens still name the org, but its shares no longer count for them.
    org_memberships: Cache<(String, String), ()>,
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
            org_memberships: Cache::builder()
                .max_capacity(REVOCATION_CAPACITY)
                .time_to_live(REVOCATION_TTL)
                .build(),
        }
    }
}

impl Revocations {
    /// Refuses the session's tokens from now on.
    pub fn revoke_session(&self, session_id: &str) {
        self.sessions.insert(session_id.to_string(), ());
    }

    /// Refuses every token of the user from now on.
    pub fn revoke_user(&self, user_id: &str) {
        self.users.insert(user_id.to_string(), ());
    }

    /// Stops counting `org`'s shares for `user` from now on (their
    /// membership in it was deleted in Clerk).
    pub fn revoke_org_membership(&self, user: &str, org: &str) {
        self.org_memberships
            .insert((user.to_string(), org.to_string()), ());
    }

    /// Whether `user`'s membership in `org` was revoked.
    pub fn org_membership_revoked(&self, user: &str, org: &str) -> bool {
        self.org_memberships
            .contains_key(&(user.to_string(), org.to_string()))
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

/// The one verification path every HTTP request and socket uses: the
/// verifier (clerk-auth), then the revocation list. A cheap clone.
#[derive(Clone)]
pub struct Auth {
    /// Clerk token verification (networkless or clients.verify).
    pub verifier: Verifier,
    /// Origins whose `__session` cookie is accepted.
    allowed_origins: Arc<Vec<String>>,
    revocations: Arc<Revocations>,
}

impl Auth {
    /// Verification with the given revocation list (the service fills it).
    pub fn new(
        verifier: Verifier,
        allowed_origins: Vec<String>,
        revocations: Arc<Revocations>,
    ) -> Auth {
        Auth {
            verifier,
            allowed_origins: Arc::new(allowed_origins),
            revocations,
        }
    }

    /// THE verification call: signature and claims (clerk-auth), then revocation.
    pub async fn verify_token(&self, token: &str) -> Result<Principal, AuthError> {
        let principal = self.verifier.verify(token).await?;
        self.revocations.check(&principal)?;
        Ok(principal)
    }

    /// Finds the request's token (header, or cookie from an allowed origin) and verifies it.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Principal, AuthError> {
        let token =
            request_token(&parts.headers, &self.allowed_origins).ok_or(AuthError::Missing)?;
        self.verify_token(token).await
    }

    /// Sessions and users refused even with a valid token.
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// Whether the verifier has keys (for `/readyz`).
    pub async fn ready(&self) -> Result<(), AuthError> {
        self.verifier.ready().await
    }
}
