//! `GET /api/v1/notebooks/{id}/ws`: the upgrade. Everything that can be
//! refused before the 101 is refused here, as an HTTP error: a foreign
//! Origin (403), and with header auth a bad token (401/503) or no access
//! (403/404). Tokens in the URL are never read.
//!
//! Also the adapter that hands the socket session its narrow dependencies
//! ([`SessionDeps`]) from `AppState`: the one place to re-point when the
//! change path moves.

use axum::extract::{Path, Query, Request, State};
use axum::http::header::{self, AUTHORIZATION, ORIGIN};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::response::{IntoResponse, Response};
use clerk_auth::extract::bearer;
use clerk_auth::{AuthError, Principal};
use futures::StreamExt;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::notebook_id;
use super::openapi::{NotebookErrors, NotebookPath, TooManyRequests};
use crate::notebook::model::{Notebook, NotebookId, UserId};
use crate::notebook::ops::{Committed, Op};
use crate::realtime::admission::{self, Admitted, Refusal};
use crate::realtime::deps::{Authenticate, ChangePath, SessionDeps};
use crate::realtime::protocol::Since;
use crate::realtime::{session, transport};
use crate::service::{Actor, ServiceError};
use crate::store::{Access, StoreError};
use crate::AppState;

/// The `/api/v1/notebooks/{id}/ws` route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upgrade))
}

/// Resume point with header auth: `?epoch=E&since=N`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WsQuery {
    /// Resume (with header auth): the epoch of the last `ready`.
    epoch: Option<String>,
    /// Resume (with header auth): the last version seen.
    since: Option<i64>,
}

/// Refuses what can be refused over HTTP, then hands the socket to a session.
#[utoipa::path(
    get, path = "/{id}/ws", tag = "realtime", operation_id = "notebookWebSocket",
    summary = "Live editing session (WebSocket upgrade)",
    description = "Upgrades to a WebSocket carrying JSON text frames (full protocol: \
        DESIGN.md, \"WebSocket protocol\").\n\n\
        Authenticate with `Authorization: Bearer` on the upgrade or, from browsers, with a first \
        message `{\"type\":\"auth\",\"token\":\"...\"}` within 10 s. Tokens in the query are \
        never used. `Origin`, when sent, must be allowed (else 403 before the upgrade). With header \
        auth a bad token, missing access or keys unavailable are answered before the upgrade \
        (401/403/404/429/503); after first-message auth, with close codes 4401/4403/4404/4503.\n\n\
        Server -> client: `ready`, `op`, `ack`, `error`, `auth.ok`, `role`, `presence`, `pong`. \
        Client -> server (each with a client-chosen `ref`): `cell.insert`, `cell.update` \
        (`base_version` required), `cell.delete`, `cell.move`, `notebook.rename`, `auth` (token \
        refresh, same user), `ping`.\n\n\
        Close codes: 1001 going away, 4400 protocol error, 4401 unauthenticated or token expired, \
        4403 access lost or user mismatch, 4404 notebook gone, 4408 no auth in time, 4413 message \
        too large, 4429 too slow or too fast, 4503 keys or Clerk unreachable.",
    // Header auth is optional: browsers authenticate with the first message.
    security(("bearerAuth" = []), ()),
    params(
        NotebookPath,
        WsQuery,
        ("Upgrade" = String, Header, description = "A list naming `websocket`.",
            pattern = "^([^,]*,)*[ \\t]*[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt][ \\t]*(,[^,]*)*$"),
        ("Connection" = String, Header, description = "A list naming `Upgrade`.",
            pattern = "^([^,]*,)*[ \\t]*[Uu][Pp][Gg][Rr][Aa][Dd][Ee][ \\t]*(,[^,]*)*$"),
        ("Sec-WebSocket-Version" = String, Header, description = "`13`", pattern = "^13$"),
        ("Sec-WebSocket-Key" = String, Header, description = "The RFC 6455 key (any value)."),
    ),
    responses(
        (status = 101, description = "Switching Protocols: the WebSocket session starts.",
            headers(("Upgrade" = String), ("Sec-WebSocket-Accept" = String))),
        (status = 429, response = TooManyRequests),
        NotebookErrors,
    )
)]
pub async fn upgrade(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    Query(query): Query<WsQuery>,
    mut request: Request,
) -> Result<Response, ApiError> {
    let headers = request.headers().clone();
    let accept = handshake_accept(&headers)?;
    check_origin(&state, &headers)?;
    let id = notebook_id(&raw_id)?;
    let deps = session_deps(&state);
    let pre = match headers.get(AUTHORIZATION) {
        Some(value) => {
            let since = match (query.epoch, query.since) {
                (Some(epoch), Some(version)) => Some(Since { epoch, version }),
                _ => None,
            };
            Some(header_auth(&deps, id, bearer(value), since).await?)
        }
        None => None,
    };
    // The transport allows 4x the limit so that a moderately oversized
    // message is read whole and answered with a clean 4413; only abuse far
    // past the limit hits the transport's own cut-off.
    let transport_max = deps
        .limits
        .max_message_bytes
        .saturating_mul(4)
        .max(1024 * 1024);
    let config = WebSocketConfig::default()
        .max_message_size(Some(transport_max))
        .max_frame_size(Some(transport_max))
        .read_buffer_size(1024)
        .write_buffer_size(0);
    let on_upgrade = hyper::upgrade::on(&mut request);
    let tasks = state.hub().tasks().clone();
    tasks.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let socket = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                serve_socket(socket, deps, id, pre).await;
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });
    Ok(switching_protocols(&accept))
}

/// Checks the RFC 6455 upgrade request; returns the `Sec-WebSocket-Accept`.
/// (Done here rather than with axum's extractor because we drive
/// tokio-tungstenite ourselves: it lets large messages go out as bounded
/// fragments, so no socket keeps a buffer the size of its largest message.)
fn handshake_accept(headers: &HeaderMap) -> Result<String, ApiError> {
    let has = |name: header::HeaderName, value: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(value))
            })
        })
    };
    let upgrade = has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket");
    let version = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let key = headers.get(header::SEC_WEBSOCKET_KEY);
    match (upgrade && version, key) {
        (true, Some(key)) => Ok(derive_accept_key(key.as_bytes())),
        _ => Err(ApiError::BadRequest {
            code: "websocket_required",
            message: "this endpoint only accepts WebSocket upgrades".into(),
        }),
    }
}

fn switching_protocols(accept: &str) -> Response {
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(value) = HeaderValue::from_str(accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    response
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
    deps: &SessionDeps,
    id: NotebookId,
    token: Option<&str>,
    since: Option<Since>,
) -> Result<Admitted, ApiError> {
    let token = token.ok_or(ApiError::Auth(AuthError::Missing))?;
    let principal = deps.auth.verify(token).await?;
    admission::admit(deps, id, principal, since)
        .await
        .map_err(|refusal| match refusal {
            Refusal::BadSubject => ApiError::Auth(AuthError::InvalidClaims("sub")),
            Refusal::NoAccess => ApiError::Forbidden,
            Refusal::NotFound => ApiError::NotFound,
            Refusal::Unavailable(e) => e.into(),
            Refusal::TooManyConnections => ApiError::TooManyConnections,
        })
}

/// Splits the socket and runs the session on it.
async fn serve_socket<S>(
    socket: WebSocketStream<S>,
    deps: SessionDeps,
    id: NotebookId,
    pre: Option<Admitted>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sink, stream) = socket.split();
    let mut connection = transport::Connection::start(sink, deps.limits.outbound_queue);
    let inbound = transport::inbound_stream(stream);
    session::run(deps, id, pre, inbound, connection.outbox()).await;
    connection.finish().await;
}

/// The session's dependencies, from the app state.
pub fn session_deps(state: &AppState) -> SessionDeps {
    // One adapter serves both traits.
    let adapter = Arc::new(AppChanges(state.clone()));
    SessionDeps {
        changes: adapter.clone(),
        auth: adapter,
        hub: state.hub().clone(),
        limits: state.hub().limits().clone(),
    }
}

/// `AppState` seen through the session's traits.
struct AppChanges(AppState);

#[async_trait]
impl ChangePath for AppChanges {
    async fn apply(
        &self,
        id: NotebookId,
        author: &Actor,
        op: Op,
    ) -> Result<Committed, ServiceError> {
        self.0.notebooks().apply(id, author, op, None).await
    }

    async fn access(&self, id: NotebookId, user: &UserId) -> Result<Access, StoreError> {
        self.0.store().role_of(id, user).await
    }

    async fn snapshot(&self, id: NotebookId) -> Result<Option<Notebook>, StoreError> {
        self.0.store().notebook(id).await
    }

    async fn epoch(&self, id: NotebookId) -> Result<Option<String>, StoreError> {
        let meta = self.0.store().notebook_meta(id).await?;
        Ok(meta.map(|meta| meta.epoch))
    }

    async fn ops_since(
        &self,
        id: NotebookId,
        after: i64,
        max: usize,
    ) -> Result<Option<Vec<Committed>>, StoreError> {
        self.0.store().ops_since(id, after, max).await
    }
}

#[async_trait]
impl Authenticate for AppChanges {
    async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.0.auth().verify_token(token).await
    }

    fn is_revoked(&self, principal: &Principal) -> bool {
        self.0.auth().revocations().check(principal).is_err()
    }

    fn actor(&self, principal: &Principal) -> Option<Actor> {
        Actor::of(principal, self.0.auth().revocations())
    }

    fn clock_skew(&self) -> Duration {
        self.0.auth().verifier.config().clock_skew
    }
}
