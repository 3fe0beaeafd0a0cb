//! The API's one error type and the JSON error body.
//!
//! Every failure a client sees has the shape
//! `{"error":{"code","message","request_id"}}` (plus `current` on conflicts).
//! Handlers return [`ApiError`]; its `IntoResponse` records what to say in a
//! response extension, and [`render_errors`] (a middleware that knows the
//! request id) writes the body. The same middleware turns the framework's own
//! bare errors (unknown route, wrong method, body too large) into our shape.
//! 5xx bodies are generic; the cause goes to the log with the request id.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use clerk_auth::extract::rejection_parts;
use clerk_auth::AuthError;
use serde::Serialize;
use utoipa::ToSchema;

use super::views::CellSchema;
use crate::notebook::model::Cell;
use crate::notebook::ops::OpError;
use crate::service::{PublicError, PublicKind, ServiceError};
use crate::store::{ApplyError, StoreError};

/// Header carrying the request id (set by tower-http's request-id layer).
pub const REQUEST_ID: &str = "x-request-id";

/// Why a request failed, in terms a client may see.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("authentication failed: {0}")]
    Auth(AuthError),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("forbidden")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("too many connections")]
    TooManyConnections,
    #[error("service unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
    /// The service refused or failed; it says what the client is told.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl ApiError {
    /// A 400 with the given public message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code: "bad_request",
            message: message.into(),
        }
    }
}

/// The body of every failure: `{"error":{"code","message","request_id"[,"current"]}}`.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorEnvelope {
    pub error: ErrorObject,
}

/// What went wrong, for clients.
#[derive(Serialize, ToSchema)]
pub struct ErrorObject {
    /// Stable, snake_case, e.g. `not_found`, `forbidden`, `invalid_token`, `conflict`.
    pub code: &'static str,
    /// Human-readable; never contains secrets.
    pub message: String,
    /// Also in the `x-request-id` header and the server log.
    pub request_id: String,
    /// Only on a 409 for a stale `base_version`: the cell as it is now.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<CellSchema>)]
    pub current: Option<Box<Cell>>,
}

/// What the error middleware writes into the body.
#[derive(Clone, Debug)]
struct ErrorBody {
    code: &'static str,
    message: String,
    current: Option<Box<Cell>>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, current) = match self {
            ApiError::Auth(e) => return auth_response(&e),
            ApiError::Service(e) => return public_response(e.into_public()),
            ApiError::BadRequest { code, message } => {
                (StatusCode::BAD_REQUEST, code, message, None)
            }
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "you do not have access to this resource".into(),
                None,
            ),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found", "not found".into(), None),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is too large".into(),
                None,
            ),
            ApiError::TooManyConnections => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many open connections for this user".into(),
                None,
            ),
            ApiError::Unavailable(cause) => {
                tracing::warn!(error = ?cause, "service unavailable");
                return public_response(PublicError {
                    kind: PublicKind::Unavailable,
                    code: "unavailable",
                    message: "the service is temporarily unavailable, retry later".into(),
                    current: None,
                });
            }
            ApiError::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal server error".into(),
                    None,
                )
            }
        };
        error_response(status, code, message, current)
    }
}

/// The response for the service's public error (REST and sockets share it).
fn public_response(public: PublicError) -> Response {
    let status = match public.kind {
        PublicKind::BadRequest => StatusCode::BAD_REQUEST,
        PublicKind::Forbidden => StatusCode::FORBIDDEN,
        PublicKind::NotFound => StatusCode::NOT_FOUND,
        PublicKind::Conflict => StatusCode::CONFLICT,
        PublicKind::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        PublicKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        PublicKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        PublicKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut response = error_response(
        status,
        public.code,
        public.message.into_owned(),
        public.current,
    );
    if public.kind == PublicKind::Unavailable {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn error_response(
    status: StatusCode,
    code: &'static str,
    message: String,
    current: Option<Box<Cell>>,
) -> Response {
    let mut response = status.into_response();
    response.extensions_mut().insert(ErrorBody {
        code,
        message,
        current,
    });
    response
}

/// 401/503 with `WWW-Authenticate` / `Retry-After`; the reason is logged once.
fn auth_response(e: &AuthError) -> Response {
    let code = e.public_code();
    crate::auth::record_failure(e);
    let (status, headers) = rejection_parts(code, "quire");
    let mut response = error_response(status, code.as_str(), code.message().into(), None);
    response.headers_mut().extend(headers);
    response
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::Auth(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Service(e.into())
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        ApiError::Service(e.into())
    }
}

impl From<ApplyError> for ApiError {
    fn from(e: ApplyError) -> Self {
        ApiError::Service(e.into())
    }
}

/// Middleware: writes the JSON error body, with the request id, for every
/// error response (ours and the framework's).
pub async fn render_errors(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let body = match response.extensions_mut().remove::<ErrorBody>() {
        Some(body) => body,
        None if is_json(&response) => return response,
        None => framework_error(status),
    };
    let envelope = ErrorEnvelope {
        error: ErrorObject {
            code: body.code,
            message: body.message,
            request_id,
            current: body.current,
        },
    };
    let bytes = serde_json::to_vec(&envelope).unwrap_or_default();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.headers_mut().remove(header::CONTENT_LENGTH);
    *response.body_mut() = Body::from(bytes);
    response
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Our body for errors produced below the handlers (routing, limits, timeouts).
fn framework_error(status: StatusCode) -> ErrorBody {
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "not found"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "method not allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large"),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "unsupported media type"),
        s if s.is_server_error() => ("internal", "internal server error"),
        _ => ("bad_request", "bad request"),
    };
    ErrorBody {
        code,
        message: message.into(),
        current: None,
    }
}
