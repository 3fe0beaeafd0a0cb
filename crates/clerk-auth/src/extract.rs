//! Getting a token out of an HTTP request, and an axum extractor for
//! [`Principal`] (feature `axum`).
//!
//! Rules (DESIGN.md): `Authorization: Bearer <token>` with a case-insensitive
//! scheme; any `Authorization` header at all means the cookie is not
//! consulted; the `__session` cookie counts only when the request's `Origin`
//! (or, without one, the `Referer`'s origin) is allowed.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, COOKIE, ORIGIN, REFERER, RETRY_AFTER, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::{AuthError, Principal, PublicCode, Verifier};

/// Name of Clerk's same-site session cookie.
pub const SESSION_COOKIE: &str = "__session";

/// The token a request carries, if any, under the rules above.
pub fn request_token<'a>(headers: &'a HeaderMap, allowed_origins: &[String]) -> Option<&'a str> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        return bearer(value);
    }
    if !origin_allowed(headers, allowed_origins) {
        return None;
    }
    session_cookie(headers)
}

/// `Bearer <token>`, scheme case-insensitive; anything else is no credential.
pub fn bearer(value: &HeaderValue) -> Option<&str> {
    let value = value.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

/// Whether `Origin` (or the origin of `Referer`) is one of `allowed`.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let origin = match headers.get(ORIGIN) {
        Some(o) => o.to_str().ok().map(str::to_string),
        None => headers
            .get(REFERER)
            .and_then(|r| r.to_str().ok())
            .and_then(referer_origin),
    };
    origin.is_some_and(|o| allowed.iter().any(|a| a == &o))
}

/// `scheme://host[:port]` of a Referer URL.
fn referer_origin(referer: &str) -> Option<String> {
    let (scheme, rest) = referer.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

/// The `__session` cookie value. A two-line parse of `name=value; ...` does
/// not justify a cookie crate.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// What the [`Principal`] extractor needs from application state.
#[derive(Clone)]
pub struct Authenticator {
    pub verifier: Verifier,
    /// Origins whose `__session` cookie is accepted.
    pub allowed_origins: Arc<Vec<String>>,
}

impl Authenticator {
    /// Finds and verifies the request's token.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Principal, AuthError> {
        let token =
            request_token(&parts.headers, &self.allowed_origins).ok_or(AuthError::Missing)?;
        self.verifier.verify(token).await
    }
}

/// A refused request: RFC 6750 status, `WWW-Authenticate` and a JSON body
/// that says the public code only.
#[derive(Debug)]
pub struct AuthRejection(pub AuthError);

/// The `WWW-Authenticate` value for a public code, if it needs one.
pub fn www_authenticate(code: PublicCode) -> Option<&'static str> {
    match code {
        PublicCode::Unauthenticated => Some(r#"Bearer realm="quire""#),
        PublicCode::InvalidToken | PublicCode::TokenExpired => {
            Some(r#"Bearer realm="quire", error="invalid_token""#)
        }
        PublicCode::AuthUnavailable => None,
    }
}

/// Seconds a client should wait after `auth_unavailable`.
pub const RETRY_AFTER_SECS: u32 = 5;

/// Status and headers for a public code, shared by every HTTP error body.
pub fn rejection_parts(code: PublicCode) -> (StatusCode, HeaderMap) {
    let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let mut headers = HeaderMap::new();
    if let Some(value) = www_authenticate(code) {
        headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(value));
    }
    if code == PublicCode::AuthUnavailable {
        headers.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    (status, headers)
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let code = self.0.public_code();
        let (status, headers) = rejection_parts(code);
        let body = serde_json::json!({"error": {"code": code.as_str(), "message": code.message()}});
        (status, headers, axum::Json(body)).into_response()
    }
}

impl<S> FromRequestParts<S> for Principal
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Authenticator::from_ref(state);
        auth.authenticate(parts).await.map_err(|e| {
            tracing::info!(reason = e.reason(), detail = %e, "authentication failed");
            AuthRejection(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_rules() {
        let allowed = vec!["https://app.example".to_string()];
        assert_eq!(
            request_token(&headers(&[("authorization", "Bearer abc")]), &allowed),
            Some("abc")
        );
        assert_eq!(
            request_token(&headers(&[("authorization", "bEaReR abc")]), &allowed),
            Some("abc")
        );
        assert_eq!(
            request_token(&headers(&[("authorization", "Bearer ")]), &allowed),
            None
        );
        assert_eq!(
            request_token(&headers(&[("authorization", "Basic abc")]), &allowed),
            None
        );
        // Any Authorization header hides the cookie.
        let both = headers(&[
            ("authorization", "Basic x"),
            ("cookie", "__session=tok"),
            ("origin", "https://app.example"),
        ]);
        assert_eq!(request_token(&both, &allowed), None);
    }

    #[test]
    fn cookie_needs_allowed_origin() {
        let allowed = vec!["https://app.example".to_string()];
        let ok = headers(&[
            ("cookie", "a=1; __session=tok"),
            ("origin", "https://app.example"),
        ]);
        assert_eq!(request_token(&ok, &allowed), Some("tok"));
        let evil = headers(&[
            ("cookie", "__session=tok"),
            ("origin", "https://evil.example"),
        ]);
        assert_eq!(request_token(&evil, &allowed), None);
        let none = headers(&[("cookie", "__session=tok")]);
        assert_eq!(request_token(&none, &allowed), None);
        let referer = headers(&[
            ("cookie", "__session=tok"),
            ("referer", "https://app.example/n/1?x"),
        ]);
        assert_eq!(request_token(&referer, &allowed), Some("tok"));
    }
}
