//! Machine tokens: API keys, OAuth access tokens and M2M tokens, verified by
//! Clerk's Backend API (as Clerk's SDKs do for `acceptsToken`).
//!
//! Recognised by prefix only (Clerk's `API_KEY_PREFIX`, `OAUTH_TOKEN_PREFIX`,
//! `M2M_TOKEN_PREFIX` in `@clerk/backend` `tokens/machine.ts`); anything else
//! goes down the session-token path. A prefixed token outside the
//! `[A-Za-z0-9_-]` alphabet or above the size cap is refused with no network
//! call.
//!
//! Shapes, from Clerk's Backend API reference and `@clerk/backend`
//! (`api/endpoints/{APIKeysApi,IdPOAuthAccessTokenApi,M2MTokenApi}.ts`,
//! `api/resources/{APIKey,IdPOAuthAccessToken,M2MToken,JSON}.ts`):
//!
//! | prefix | request | credential | `object` |
//! |--------|---------|------------|----------|
//! | `ak_`  | `POST /v1/api_keys/verify {"secret"}` | `CLERK_SECRET_KEY` | `api_key` |
//! | `oat_` | `POST /v1/oauth_applications/access_tokens/verify {"access_token"}` | `CLERK_SECRET_KEY` | `clerk_idp_oauth_access_token` |
//! | `mt_`  | `POST /v1/m2m_tokens/verify {"token"}` | `CLERK_MACHINE_SECRET_KEY` (else `CLERK_SECRET_KEY`, as `M2MTokenApi` falls back) | `machine_to_machine_token` |
//!
//! Every answer carries `id`, `subject` (`user_...`, `org_...`, `mch_...`),
//! `scopes: string[]`, `revoked`, `revocation_reason`, `expired`,
//! `expiration` (Unix ms or `null` = never), `created_at`, `updated_at`;
//! API keys add `type`, `name`, `claims`, `description`, `created_by`,
//! `last_used_at`; OAuth tokens add `client_id`, `type`; M2M tokens add
//! `claims`. Only what authorization needs is read (typed, unknown members
//! ignored, `claims` not carried along).
//!
//! Clerk's SDK treats 404 as "token invalid" and 401 as "invalid secret key";
//! Clerk documents revoked and expired tokens as failing verification, and
//! this module also refuses a 200 whose body says `revoked`, `expired`, or an
//! `expiration` at or before now (no clock skew: the expiration is Clerk's own
//! clock, not a claim minted elsewhere). All of these are `invalid_token`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backend::{BackendApi, Endpoint, TokenCache};
use crate::config::{MachineConfig, RemoteOptions};
use crate::principal::{SubjectKind, NEVER_EXPIRES};
use crate::{AuthError, Clock, Principal, TokenKind, MAX_TOKEN_BYTES};

/// Longest a machine token's answer is trusted (at most 30 s),
/// whatever `RemoteOptions::cache_ttl` says: revocation must show quickly.
const MAX_CACHE_TTL: Duration = Duration::from_secs(30);

/// Prefixes Clerk gives machine tokens, with their kind.
const PREFIXES: [(&str, TokenKind); 3] = [
    ("ak_", TokenKind::ApiKey),
    ("oat_", TokenKind::OAuth),
    ("mt_", TokenKind::M2M),
];

/// The machine kind of `token` by its prefix, or `None` for anything else
/// (session tokens included: their base64 header starts with `eyJ`).
pub(crate) fn kind_of(token: &str) -> Option<TokenKind> {
    PREFIXES
        .iter()
        .find(|(prefix, _)| token.starts_with(prefix))
        .map(|&(_, kind)| kind)
}

/// The request body of each verify route: `{"secret"}`, `{"access_token"}`,
/// `{"token"}` (an externally tagged newtype variant serializes as exactly that).
#[derive(Serialize)]
enum VerifyBody<'a> {
    #[serde(rename = "secret")]
    Secret(&'a str),
    #[serde(rename = "access_token")]
    AccessToken(&'a str),
    #[serde(rename = "token")]
    Token(&'a str),
}

/// The members of `APIKey`, `IdPOAuthAccessToken` and `M2MToken` we act on.
#[derive(Deserialize)]
struct VerifiedToken {
    #[serde(default)]
    object: Option<String>,
    id: String,
    subject: String,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    revoked: bool,
    #[serde(default)]
    expired: bool,
    /// Unix milliseconds; `null` = never expires.
    #[serde(default)]
    expiration: Option<i64>,
}

pub(crate) struct MachineVerifier {
    api_keys: Endpoint,
    oauth: Endpoint,
    m2m: Endpoint,
    api: BackendApi,
    cache: TokenCache,
}

impl MachineVerifier {
    pub fn new(config: &MachineConfig, options: RemoteOptions, clock: Clock) -> Self {
        let (m2m_key, m2m_var) = match &config.machine_secret_key {
            Some(key) => (key.clone(), "CLERK_MACHINE_SECRET_KEY"),
            None => (config.secret_key.clone(), "CLERK_SECRET_KEY"),
        };
        let url = config.api_url.as_str();
        let secret = || config.secret_key.clone();
        MachineVerifier {
            api_keys: Endpoint::new(
                url,
                "api_keys/verify",
                secret(),
                "api_keys.verify",
                "CLERK_SECRET_KEY",
            ),
            oauth: Endpoint::new(
                url,
                "oauth_applications/access_tokens/verify",
                secret(),
                "oauth_access_tokens.verify",
                "CLERK_SECRET_KEY",
            ),
            m2m: Endpoint::new(
                url,
                "m2m_tokens/verify",
                m2m_key,
                "m2m_tokens.verify",
                m2m_var,
            ),
            cache: TokenCache::new(
                &RemoteOptions {
                    cache_ttl: options.cache_ttl.min(MAX_CACHE_TTL),
                    ..options.clone()
                },
                clock.clone(),
            ),
            api: BackendApi::new(options, clock),
        }
    }

    /// Verifies a token whose prefix said `kind`, from the cache when fresh.
    pub async fn verify(&self, kind: TokenKind, token: &str) -> Result<Principal, AuthError> {
        check_shape(token)?;
        self.cache
            .get_or_fetch(token, self.fetch(kind, token))
            .await
    }

    async fn fetch(&self, kind: TokenKind, token: &str) -> Result<Principal, AuthError> {
        let (endpoint, body, object) = match kind {
            TokenKind::ApiKey => (&self.api_keys, VerifyBody::Secret(token), "api_key"),
            TokenKind::OAuth => (
                &self.oauth,
                VerifyBody::AccessToken(token),
                "clerk_idp_oauth_access_token",
            ),
            TokenKind::M2M => (
                &self.m2m,
                VerifyBody::Token(token),
                "machine_to_machine_token",
            ),
            TokenKind::Session => return Err(AuthError::Malformed("not a machine token")),
        };
        let verified: VerifiedToken = self.api.verify(endpoint, &body).await?;
        principal_from(verified, kind, object, self.api.clock().unix_ms())
    }
}

/// Size and alphabet, before anything is sent anywhere.
fn check_shape(token: &str) -> Result<(), AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::TooLarge);
    }
    let alphabet_ok = token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !alphabet_ok {
        return Err(AuthError::Malformed("machine token alphabet"));
    }
    Ok(())
}

/// Refuses revoked, expired and oddly shaped answers; builds the principal.
fn principal_from(
    t: VerifiedToken,
    kind: TokenKind,
    object: &str,
    now_ms: i64,
) -> Result<Principal, AuthError> {
    if t.object.as_deref().is_some_and(|o| o != object) {
        return Err(AuthError::InvalidClaims("object"));
    }
    if t.revoked {
        return Err(AuthError::MachineTokenRevoked);
    }
    if t.expired || t.expiration.is_some_and(|ms| ms <= now_ms) {
        return Err(AuthError::MachineTokenExpired);
    }
    if t.id.is_empty() {
        return Err(AuthError::InvalidClaims("id"));
    }
    if SubjectKind::of(&t.subject).is_none() {
        return Err(AuthError::InvalidClaims("subject"));
    }
    let expires_at = t
        .expiration
        .map_or(NEVER_EXPIRES, |ms| (ms / 1000).min(NEVER_EXPIRES));
    Ok(Principal {
        user_id: t.subject.clone(),
        session_id: t.id,
        org: None,
        actor: None,
        expires_at,
        kind,
        subject: t.subject,
        scopes: t.scopes.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(subject: &str) -> VerifiedToken {
        VerifiedToken {
            object: Some("api_key".into()),
            id: "ak_id_1".into(),
            subject: subject.into(),
            scopes: Some(vec!["notebooks:read".into()]),
            revoked: false,
            expired: false,
            expiration: Some(10_000),
        }
    }

    #[test]
    fn prefixes_pick_the_kind() {
        assert_eq!(kind_of("ak_123"), Some(TokenKind::ApiKey));
        assert_eq!(kind_of("oat_123"), Some(TokenKind::OAuth));
        assert_eq!(kind_of("mt_123"), Some(TokenKind::M2M));
        assert_eq!(kind_of("eyJhbGciOi.x.y"), None);
        assert_eq!(kind_of("sk_test_123"), None);
    }

    #[test]
    fn body_shapes_are_clerks() {
        let json = |b: VerifyBody| serde_json::to_string(&b).unwrap();
        assert_eq!(json(VerifyBody::Secret("ak_1")), r#"{"secret":"ak_1"}"#);
        assert_eq!(
            json(VerifyBody::AccessToken("oat_1")),
            r#"{"access_token":"oat_1"}"#
        );
        assert_eq!(json(VerifyBody::Token("mt_1")), r#"{"token":"mt_1"}"#);
    }

    #[test]
    fn expiration_has_no_skew_and_revocation_wins() {
        let ok = principal_from(token("org_1"), TokenKind::ApiKey, "api_key", 9_999).unwrap();
        assert_eq!((ok.subject.as_str(), ok.expires_at), ("org_1", 10));
        assert_eq!(ok.subject_kind(), SubjectKind::Organization);
        assert_eq!(ok.acting_user(), None);
        assert_eq!(
            principal_from(token("org_1"), TokenKind::ApiKey, "api_key", 10_000).unwrap_err(),
            AuthError::MachineTokenExpired
        );
        let revoked = VerifiedToken {
            revoked: true,
            ..token("user_1")
        };
        assert_eq!(
            principal_from(revoked, TokenKind::ApiKey, "api_key", 0).unwrap_err(),
            AuthError::MachineTokenRevoked
        );
        assert_eq!(
            principal_from(token("sess_1"), TokenKind::ApiKey, "api_key", 0).unwrap_err(),
            AuthError::InvalidClaims("subject")
        );
        assert_eq!(
            principal_from(
                token("user_1"),
                TokenKind::M2M,
                "machine_to_machine_token",
                0
            )
            .unwrap_err(),
            AuthError::InvalidClaims("object")
        );
    }

    #[test]
    fn shape_is_checked_before_any_call() {
        assert!(check_shape("ak_abc-DEF_123").is_ok());
        assert_eq!(
            check_shape("ak_a.b.c"),
            Err(AuthError::Malformed("machine token alphabet"))
        );
        assert_eq!(
            check_shape(&format!("ak_{}", "a".repeat(MAX_TOKEN_BYTES))),
            Err(AuthError::TooLarge)
        );
    }
}
