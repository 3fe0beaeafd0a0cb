//! Request extractors: the authenticated caller, JSON bodies in our error
//! format, and ids parsed at the boundary.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use clerk_auth::Principal;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::notebook::model::{NotebookId, UserId};
use crate::AppState;

/// The authenticated caller. A request without a valid token never reaches
/// a handler that takes this: an invalid token is a 401, never "anonymous".
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub user_id: UserId,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = state.auth().authenticate(parts).await?;
        let user_id = UserId::parse(&principal.user_id)
            .map_err(|_| ApiError::Auth(clerk_auth::AuthError::InvalidClaims("sub")))?;
        Ok(Caller { principal, user_id })
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
