//! The stand-in's HTTP side: Clerk's `GET /v1/jwks` and
//! `POST /v1/clients/verify`, with Clerk's response and error shapes.
//!
//! Handlers treat every request as hostile input (the verifier under test may
//! send anything): no panics on bad headers or bodies, and the shared state
//! lock is never held across an `.await`.

use std::future::IntoFuture;

use aws_lc_rs::digest;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{faults, machine, random_hex, ClerkStandIn, ClientSpec, Endpoint, SessionSpec};

/// Sessions of synthesized clients expire a week out, like Clerk's default.
const SESSION_EXPIRE_MS: i64 = 7 * 24 * 3600 * 1000;
/// ... and are abandoned after 30 days.
const SESSION_ABANDON_MS: i64 = 30 * 24 * 3600 * 1000;

pub(super) fn router(stand_in: ClerkStandIn) -> Router {
    Router::new()
        .route("/v1/jwks", get(jwks))
        .route("/v1/clients/verify", post(verify_client))
        .route("/v1/api_keys/verify", post(machine::verify_api_key))
        .route(
            "/v1/oauth_applications/access_tokens/verify",
            post(machine::verify_oauth_token),
        )
        .route("/v1/m2m_tokens/verify", post(machine::verify_m2m_token))
        .with_state(stand_in)
}

/// Binds 127.0.0.1 on an ephemeral port and serves `app` on a spawned task.
pub(super) async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener
        .local_addr()
        .expect("local address of bound listener");
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).into_future().await {
            tracing::warn!(%err, "clerk stand-in server stopped");
        }
    });
    format!("http://{addr}")
}

/// A response in Clerk's error shape.
pub(super) fn clerk_error(
    status: StatusCode,
    message: &str,
    long_message: &str,
    code: &str,
) -> Response {
    let body = json!({
        "errors": [{ "message": message, "long_message": long_message, "code": code }],
        "clerk_trace_id": random_hex(16),
    });
    (status, Json(body)).into_response()
}

async fn jwks(State(stand_in): State<ClerkStandIn>, headers: HeaderMap) -> Response {
    stand_in.count_request(Endpoint::Jwks);
    if let Some(resp) = faults::apply(stand_in.take_fault(Endpoint::Jwks)).await {
        return resp;
    }
    if !stand_in.authorized(&headers) {
        return unauthorized();
    }
    Json(stand_in.jwks_document()).into_response()
}

async fn verify_client(
    State(stand_in): State<ClerkStandIn>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    stand_in.count_request(Endpoint::ClientsVerify);
    if let Some(resp) = faults::apply(stand_in.take_fault(Endpoint::ClientsVerify)).await {
        return resp;
    }
    if !stand_in.authorized(&headers) {
        return unauthorized();
    }
    let Some(token) = token_from_body(&body) else {
        return clerk_error(
            StatusCode::BAD_REQUEST,
            "is missing",
            "token must be included in the JSON request body",
            "form_param_missing",
        );
    };
    match stand_in.resolve_client(&token) {
        Some(client) => Json(client).into_response(),
        None => clerk_error(
            StatusCode::NOT_FOUND,
            "not found",
            "No client was found for the given token",
            "resource_not_found",
        ),
    }
}

/// Clerk's 401 for a missing or wrong Backend API credential.
pub(super) fn unauthorized() -> Response {
    clerk_error(
        StatusCode::UNAUTHORIZED,
        "Invalid authentication",
        "Unable to authenticate the request, you need to supply an active API key",
        "authentication_invalid",
    )
}

/// `{"token": "<non-empty string>"}`; anything else is a bad request.
fn token_from_body(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let token = value.get("token")?.as_str()?;
    (!token.is_empty()).then(|| token.to_owned())
}

/// The secret of `Authorization: Bearer <secret>`, scheme case-insensitive.
pub(super) fn bearer_secret(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, secret) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(secret)
}

impl ClerkStandIn {
    /// `Authorization: Bearer <secret key>`.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        bearer_secret(headers) == Some(self.inner.secret_key.as_str())
    }

    /// Registered client first, else a client synthesized from a live token
    /// this stand-in minted, else nothing.
    fn resolve_client(&self, token: &str) -> Option<Value> {
        let spec = match self.registered_client(token) {
            Some(spec) => spec,
            None => self.client_from_minted_token(token)?,
        };
        Some(client_json(&client_id_for(token), &spec, self.now_ms()))
    }

    fn client_from_minted_token(&self, token: &str) -> Option<ClientSpec> {
        let claims = self.minted_claims(token)?;
        let exp = claims.get("exp")?.as_i64()?;
        if exp <= self.now_secs() {
            return None;
        }
        let sid = claims.get("sid")?.as_str()?.to_owned();
        let user_id = claims.get("sub")?.as_str()?.to_owned();
        let status = self.session_status(&sid);
        Some(ClientSpec {
            sessions: vec![SessionSpec {
                id: sid.clone(),
                user_id,
                status,
            }],
            last_active_session_id: Some(sid),
        })
    }
}

/// Stable per token, so repeated verifications report the same client.
fn client_id_for(token: &str) -> String {
    let hash = digest::digest(&digest::SHA256, token.as_bytes());
    let hex: String = hash.as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("client_{hex}")
}

/// A Backend API `Client` object (timestamps in ms).
fn client_json(client_id: &str, spec: &ClientSpec, now: i64) -> Value {
    let ids: Vec<&str> = spec.sessions.iter().map(|s| s.id.as_str()).collect();
    let sessions: Vec<Value> = spec
        .sessions
        .iter()
        .map(|s| session_json(client_id, s, now))
        .collect();
    json!({
        "object": "client",
        "id": client_id,
        "session_ids": ids,
        "sessions": sessions,
        "sign_in_id": null,
        "sign_up_id": null,
        "last_active_session_id": spec.last_active_session_id,
        "last_authentication_strategy": null,
        "updated_at": now,
        "created_at": now - 60_000,
    })
}

/// A Backend API `Session` object (timestamps in ms).
fn session_json(client_id: &str, session: &SessionSpec, now: i64) -> Value {
    json!({
        "object": "session",
        "id": session.id,
        "client_id": client_id,
        "user_id": session.user_id,
        "status": session.status,
        "last_active_at": now,
        "last_active_organization_id": null,
        "actor": null,
        "expire_at": now + SESSION_EXPIRE_MS,
        "abandon_at": now + SESSION_ABANDON_MS,
        "updated_at": now,
        "created_at": now - 60_000,
    })
}
