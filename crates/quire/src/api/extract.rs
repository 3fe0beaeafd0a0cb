//! Request extractors: the authenticated caller, JSON bodies in our error
//! format, and ids parsed at the boundary.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use clerk_auth::Principal;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

use super::error::ApiError;
use crate::notebook::model::NotebookId;
use crate::service::Actor;
use crate::AppState;

/// The authenticated caller. A request without a valid token never reaches
/// a handler that takes this: an invalid token is a 401, never "anonymous".
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// Who acts, with its organization and scopes: what the service takes.
    pub actor: Actor,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = state.auth().authenticate(parts).await?;
        let actor = Actor::of(&principal, state.auth().revocations())
            .ok_or(ApiError::Auth(clerk_auth::AuthError::InvalidClaims("sub")))?;
        Ok(Caller { principal, actor })
    }
}

/// A JSON body parsed with our rules: any content type, size capped by the
/// body-limit layer (413), syntax or shape errors -> 400 in our error format
/// (request structs use `deny_unknown_fields`, so unknown members are 400 too).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::bad_request("the request body could not be read")
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON body; the serde message (which names the offending field,
/// never echoes values at length) is safe to return.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest {
        code: if e.is_syntax() || e.is_eof() {
            "invalid_json"
        } else {
            "invalid_request"
        },
        message: truncate(&e.to_string(), 200),
    })
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// Parses a notebook id from the path (400 when malformed).
pub fn notebook_id(raw: &str) -> Result<NotebookId, ApiError> {
    raw.parse().map_err(|_| ApiError::BadRequest {
        code: "invalid_id",
        message: "the notebook id is not valid".into(),
    })
}

/// An integer member, read as JSON Schema (and so the OpenAPI document)
/// defines one: any number with no fractional part, `3.0` included.
pub fn whole_number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    let number = serde_json::Number::deserialize(deserializer)?;
    to_whole(&number).ok_or_else(|| D::Error::custom("expected an integer in range"))
}

/// [`whole_number`] for optional members (`null` is absent).
pub fn whole_number_opt<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    match Option::<serde_json::Number>::deserialize(deserializer)? {
        None => Ok(None),
        Some(number) => to_whole(&number)
            .map(Some)
            .ok_or_else(|| D::Error::custom("expected an integer in range")),
    }
}

fn to_whole<T: TryFrom<i64>>(number: &serde_json::Number) -> Option<T> {
    // Beyond 2^53 a float is not an exact integer any more.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    let value = number.as_i64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() <= EXACT)
            .map(|f| f as i64)
    })?;
    T::try_from(value).ok()
}
