//! The stand-in's machine tokens: minting, revoking and expiring API keys,
//! OAuth access tokens and M2M tokens, and Clerk's three verify routes.
//!
//! Answers follow Clerk's Backend API shapes (`APIKeyJSON`,
//! `IdPOAuthAccessTokenJSON`, `M2MTokenJSON` in `@clerk/backend`
//! `api/resources/JSON.ts`; timestamps in Unix ms). An unknown token is 404
//! `resource_not_found`; a revoked or expired one is answered 200 with
//! `revoked` / `expired` set (the verifier must refuse either way; Clerk
//! itself refuses them, so this is the stricter test of the verifier); a bad
//! credential is 401 `authentication_invalid`. API key and OAuth routes take
//! the instance secret key; the M2M route takes the machine secret key or the
//! instance secret key, as Clerk's does.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::server::{bearer_secret, clerk_error, unauthorized};
use super::{faults, random_hex, ClerkStandIn, Endpoint};
use crate::TokenKind;

/// One machine token the stand-in issued.
#[derive(Clone, Debug)]
pub(super) struct MachineToken {
    kind: TokenKind,
    id: String,
    subject: String,
    scopes: Vec<String>,
    name: String,
    revoked: bool,
    /// Unix ms; `None` never expires.
    expiration: Option<i64>,
    created_at: i64,
}

/// Members every machine token answer shares.
#[derive(Serialize)]
struct Common<'a> {
    object: &'static str,
    id: &'a str,
    subject: &'a str,
    scopes: &'a [String],
    revoked: bool,
    revocation_reason: Option<&'static str>,
    expired: bool,
    expiration: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

/// `APIKeyJSON`.
#[derive(Serialize)]
struct ApiKeyJson<'a> {
    #[serde(flatten)]
    common: Common<'a>,
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    claims: Option<()>,
    description: Option<()>,
    created_by: Option<()>,
    last_used_at: Option<i64>,
}

/// `IdPOAuthAccessTokenJSON`.
#[derive(Serialize)]
struct OAuthJson<'a> {
    #[serde(flatten)]
    common: Common<'a>,
    client_id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// `M2MTokenJSON`.
#[derive(Serialize)]
struct M2MJson<'a> {
    #[serde(flatten)]
    common: Common<'a>,
    claims: Option<()>,
}

/// Whichever verify body the route takes: `secret`, `access_token` or `token`.
#[derive(Deserialize)]
struct VerifyBody {
    secret: Option<String>,
    access_token: Option<String>,
    token: Option<String>,
}

impl ClerkStandIn {
    /// Mints an API key (`ak_...`) for `subject` (`user_`, `org_` or `mch_`)
    /// with `scopes`, never expiring; returns its secret, the bearer token.
    pub fn mint_api_key(&self, subject: &str, scopes: &[&str]) -> String {
        self.mint_machine_token(TokenKind::ApiKey, subject, scopes, None)
    }

    /// Mints an OAuth access token (`oat_...`) for `subject`, living 1 hour.
    pub fn mint_oauth_token(&self, subject: &str, scopes: &[&str]) -> String {
        let hour = Some(Duration::from_secs(3600));
        self.mint_machine_token(TokenKind::OAuth, subject, scopes, hour)
    }

    /// Mints an M2M token (`mt_...`) for the machine `subject` (`mch_...`),
    /// living 1 hour.
    pub fn mint_m2m_token(&self, subject: &str, scopes: &[&str]) -> String {
        let hour = Some(Duration::from_secs(3600));
        self.mint_machine_token(TokenKind::M2M, subject, scopes, hour)
    }

    /// Mints a machine token of `kind` expiring `lifetime` from now on the
    /// stand-in's clock (`None`: never; zero: already expired).
    ///
    /// # Panics
    /// If `kind` is [`TokenKind::Session`] (use [`token`](Self::token)).
    pub fn mint_machine_token(
        &self,
        kind: TokenKind,
        subject: &str,
        scopes: &[&str],
        lifetime: Option<Duration>,
    ) -> String {
        let (secret_prefix, id_prefix) = match kind {
            TokenKind::ApiKey => ("ak_", "ak_"),
            TokenKind::OAuth => ("oat_", "oat_"),
            TokenKind::M2M => ("mt_", "mt_"),
            TokenKind::Session => panic!("session tokens are minted with ClerkStandIn::token"),
        };
        let now = self.now_ms();
        let token = MachineToken {
            kind,
            id: format!("{id_prefix}{}", random_hex(12)),
            subject: subject.to_owned(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            name: format!("stand-in {}", kind.as_str()),
            revoked: false,
            expiration: lifetime.map(|d| now + d.as_millis() as i64),
            created_at: now,
        };
        let secret = format!("{secret_prefix}{}", random_hex(24));
        self.state().machine_tokens.insert(secret.clone(), token);
        secret
    }

    /// Revokes a minted machine token; Clerk reports it `revoked` from now on.
    pub fn revoke(&self, token: &str) {
        if let Some(t) = self.state().machine_tokens.get_mut(token) {
            t.revoked = true;
        }
    }

    /// Makes a minted machine token expire now (on the stand-in's clock).
    pub fn expire(&self, token: &str) {
        let now = self.now_ms();
        if let Some(t) = self.state().machine_tokens.get_mut(token) {
            t.expiration = Some(now);
        }
    }

    /// The Clerk id (not the secret) of a minted machine token.
    pub fn machine_token_id(&self, token: &str) -> Option<String> {
        self.state().machine_tokens.get(token).map(|t| t.id.clone())
    }

    /// The machine secret key the M2M route accepts (`CLERK_MACHINE_SECRET_KEY`).
    pub fn machine_secret_key(&self) -> String {
        self.inner.machine_secret_key.clone()
    }

    /// `Some(answer)` for a token of `kind` this stand-in minted.
    fn machine_answer(&self, kind: TokenKind, token: &str) -> Option<Response> {
        let t = self.state().machine_tokens.get(token).cloned()?;
        (t.kind == kind).then(|| t.answer(self.now_ms()))
    }
}

impl MachineToken {
    fn answer(&self, now: i64) -> Response {
        let common = Common {
            object: match self.kind {
                TokenKind::ApiKey => "api_key",
                TokenKind::OAuth => "clerk_idp_oauth_access_token",
                _ => "machine_to_machine_token",
            },
            id: &self.id,
            subject: &self.subject,
            scopes: &self.scopes,
            revoked: self.revoked,
            revocation_reason: self.revoked.then_some("revoked by the stand-in"),
            expired: self.expiration.is_some_and(|e| e <= now),
            expiration: self.expiration,
            created_at: self.created_at,
            updated_at: self.created_at,
        };
        match self.kind {
            TokenKind::ApiKey => Json(ApiKeyJson {
                common,
                kind: "api_key",
                name: &self.name,
                claims: None,
                description: None,
                created_by: None,
                last_used_at: Some(now),
            })
            .into_response(),
            TokenKind::OAuth => Json(OAuthJson {
                common,
                client_id: "client_stand_in",
                kind: "oauth:access_token",
            })
            .into_response(),
            _ => Json(M2MJson {
                common,
                claims: None,
            })
            .into_response(),
        }
    }
}

/// `POST /v1/api_keys/verify`.
pub(super) async fn verify_api_key(
    State(stand_in): State<ClerkStandIn>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    verify(stand_in, Endpoint::ApiKeys, &headers, &body).await
}

/// `POST /v1/oauth_applications/access_tokens/verify`.
pub(super) async fn verify_oauth_token(
    State(stand_in): State<ClerkStandIn>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    verify(stand_in, Endpoint::OAuthTokens, &headers, &body).await
}

/// `POST /v1/m2m_tokens/verify`.
pub(super) async fn verify_m2m_token(
    State(stand_in): State<ClerkStandIn>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    verify(stand_in, Endpoint::M2MTokens, &headers, &body).await
}

/// Counts, applies the endpoint's fault, checks the credential, answers.
async fn verify(
    stand_in: ClerkStandIn,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    stand_in.count_request(endpoint);
    if let Some(resp) = faults::apply(stand_in.take_fault(endpoint)).await {
        return resp;
    }
    let credential_ok = bearer_secret(headers).is_some_and(|secret| {
        secret == stand_in.inner.secret_key
            || (endpoint == Endpoint::M2MTokens && secret == stand_in.inner.machine_secret_key)
    });
    if !credential_ok {
        return unauthorized();
    }
    let (kind, field) = match endpoint {
        Endpoint::ApiKeys => (TokenKind::ApiKey, "secret"),
        Endpoint::OAuthTokens => (TokenKind::OAuth, "access_token"),
        _ => (TokenKind::M2M, "token"),
    };
    let Some(token) = body_token(body, field) else {
        return clerk_error(
            StatusCode::BAD_REQUEST,
            "is missing",
            &format!("{field} must be included in the JSON request body"),
            "form_param_missing",
        );
    };
    stand_in.machine_answer(kind, &token).unwrap_or_else(|| {
        clerk_error(
            StatusCode::NOT_FOUND,
            "not found",
            "No token was found for the given value",
            "resource_not_found",
        )
    })
}

/// The non-empty string member `field` of a JSON body.
fn body_token(body: &[u8], field: &str) -> Option<String> {
    let body: VerifyBody = serde_json::from_slice(body).ok()?;
    let value = match field {
        "secret" => body.secret,
        "access_token" => body.access_token,
        _ => body.token,
    }?;
    (!value.is_empty()).then_some(value)
}
