//! Getting a Clerk session token out of an HTTP request, and the RFC 6750
//! parts (status, `WWW-Authenticate`, `Retry-After`) of refusing one
//! (feature `axum`).
//!
//! Clerk's frontend sends the token one of two ways: cross-origin requests
//! carry it as `Authorization: Bearer <token>`, same-origin ones as the
//! `__session` cookie. The rules here: the scheme is case-insensitive; any
//! `Authorization` header at all means the cookie is not consulted; and the
//! cookie counts only when the request's `Origin` (or, without one, the
//! `Referer`'s origin) is allowed, because a browser attaches cookies to
//! cross-site requests too (CSRF).

use std::sync::Arc;

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

/// A verifier and the origins whose cookie it trusts: what authenticating a
/// request needs, kept together in application state.
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

/// The `WWW-Authenticate` value for a public code, if it needs one.
/// `realm` names the protected service (RFC 6750 section 3); quotes,
/// backslashes and control characters in it are escaped or dropped.
pub fn www_authenticate(code: PublicCode, realm: &str) -> Option<HeaderValue> {
    let error = match code {
        PublicCode::Unauthenticated => "",
        PublicCode::InvalidToken | PublicCode::TokenExpired => r#", error="invalid_token""#,
        PublicCode::AuthUnavailable => return None,
    };
    let value = format!(r#"Bearer realm="{}"{error}"#, quoted_string_body(realm));
    HeaderValue::from_str(&value).ok()
}

/// `text` made safe inside an HTTP quoted-string.
fn quoted_string_body(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Seconds a client should wait after `auth_unavailable`.
pub const RETRY_AFTER_SECS: u32 = 5;

/// Status and headers for a public code, shared by every HTTP error body;
/// `realm` as in [`www_authenticate`].
pub fn rejection_parts(code: PublicCode, realm: &str) -> (StatusCode, HeaderMap) {
    let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let mut headers = HeaderMap::new();
    if let Some(value) = www_authenticate(code, realm) {
        headers.insert(WWW_AUTHENTICATE, value);
    }
    if code == PublicCode::AuthUnavailable {
        headers.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    (status, headers)
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

    #[test]
    fn rejections_name_the_callers_realm() {
        let header = |code| {
            let (status, h) = rejection_parts(code, "notes");
            (status.as_u16(), h.get(WWW_AUTHENTICATE).cloned())
        };
        assert_eq!(
            header(PublicCode::Unauthenticated),
            (
                401,
                Some(HeaderValue::from_static(r#"Bearer realm="notes""#))
            )
        );
        assert_eq!(
            header(PublicCode::InvalidToken),
            (
                401,
                Some(HeaderValue::from_static(
                    r#"Bearer realm="notes", error="invalid_token""#
                ))
            )
        );
        let (status, h) = rejection_parts(PublicCode::AuthUnavailable, "notes");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(h.get(WWW_AUTHENTICATE).is_none());
        assert_eq!(h.get(RETRY_AFTER).unwrap(), "5");
    }

    #[test]
    fn realm_cannot_break_out_of_its_quotes() {
        assert_eq!(
            www_authenticate(PublicCode::Unauthenticated, "a\"b\\c\nd").unwrap(),
            r#"Bearer realm="a\"b\\cd""#
        );
    }
}
