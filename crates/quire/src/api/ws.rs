//! `GET /api/v1/notebooks/{id}/ws`: the upgrade. Everything that can be
//! refused before the 101 is refused here, as an HTTP error: a foreign
//! Origin (403), and with header auth a bad token (401/503) or no access
//! (403/404). Tokens in the URL are never read.

use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::header::{AUTHORIZATION, ORIGIN};
use axum::http::HeaderMap;
use axum::response::Response;
use clerk_auth::extract::bearer;
use clerk_auth::AuthError;
use futures::StreamExt;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::notebook_id;
use crate::notebook::model::{NotebookId, UserId};
use crate::realtime::protocol::Since;
use crate::realtime::session::{self, Inbound, PreAuth};
use crate::AppState;

/// Resume point with header auth: `?epoch=E&since=N`.
#[derive(Deserialize)]
pub struct WsQuery {
    epoch: Option<String>,
    since: Option<i64>,
}

pub async fn upgrade(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    Query(query): Query<WsQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    check_origin(&state, &headers)?;
    let id = notebook_id(&raw_id)?;
    let pre = match headers.get(AUTHORIZATION) {
        Some(value) => {
            let since = match (query.epoch, query.since) {
                (Some(epoch), Some(version)) => Some(Since { epoch, version }),
                _ => None,
            };
            Some(header_auth(&state, id, bearer(value), since).await?)
        }
        None => None,
    };
    // The transport allows 4x the limit so that a moderately oversized
    // message is read whole and answered with a clean 4413; only abuse far
    // past the limit hits the transport's own cut-off.
    let transport_max = state.hub().limits().max_message_bytes.saturating_mul(4).max(1024 * 1024);
    let ws = ws
        .max_message_size(transport_max)
        .max_frame_size(transport_max)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    let tasks = state.hub().tasks().clone();
    Ok(ws.on_upgrade(move |socket| tasks.track_future(serve_socket(socket, state, id, pre))))
}

/// A browser's Origin, when sent, must be one of ours.
fn check_origin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let allowed = origin
        .to_str()
        .is_ok_and(|o| state.config().allowed_origins.iter().any(|a| a == o));
    if allowed {
        Ok(())
    } else {
        tracing::info!(origin = ?origin, "socket refused: origin not allowed");
        Err(ApiError::Forbidden)
    }
}

/// Verifies the upgrade's bearer token and the caller's access.
async fn header_auth(
    state: &AppState,
    id: NotebookId,
    token: Option<&str>,
    since: Option<Since>,
) -> Result<PreAuth, ApiError> {
    let token = token.ok_or(ApiError::Auth(AuthError::Missing))?;
    let principal = state.verify_token(token).await?;
    let user = UserId::parse(&principal.user_id)
        .map_err(|_| ApiError::Auth(AuthError::InvalidClaims("sub")))?;
    let role = state.role_of(id, &user).await?;
    let slot = state.hub().reserve_user(&user).ok_or(ApiError::TooManyConnections)?;
    Ok(PreAuth {
        principal,
        user,
        role,
        slot,
        since,
    })
}

/// Splits the socket and runs the session on it.
async fn serve_socket(socket: WebSocket, state: AppState, id: NotebookId, pre: Option<PreAuth>) {
    let (sink, stream) = socket.split();
    let stream = stream.map(|item| match item {
        Ok(message) => Inbound::Frame(message),
        Err(e) if is_too_large(&e) => Inbound::TooLarge,
        Err(_) => Inbound::Closed,
    });
    session::run(sink, Box::pin(stream), state, id, pre).await;
}

/// tungstenite reports an over-limit message only as an error value whose
/// type axum does not re-export; its message is stable ("Space limit
/// exceeded" / "Message too long"), so that is what we match.
fn is_too_large(e: &axum::Error) -> bool {
    let text = e.to_string();
    text.contains("Space limit exceeded") || text.contains("Message too long")
}
