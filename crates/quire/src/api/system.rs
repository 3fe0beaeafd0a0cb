//! Operational endpoints: liveness, readiness, Prometheus metrics, OpenAPI.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// `/healthz`, `/readyz`, `/metrics` (at the root, no token).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// `/api/v1/openapi.json`.
pub fn v1_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi))
}

/// `{"status":"ok"}` while the process serves requests.
#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: Up,
}

/// The one liveness answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Up {
    Ok,
}

/// Whether each dependency answers, and so whether this process is ready.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `degraded` when only the fan-out is down (live delivery across
    /// processes suffers, this process still serves correctly).
    pub status: Overall,
    pub store: Check,
    pub auth: Check,
    /// `off` without Redis.
    pub fanout: Fanout,
}

/// Overall readiness.
#[derive(Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Overall {
    Ok,
    Degraded,
    Unavailable,
}

/// One dependency.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    Ok,
    Unavailable,
}

impl Check {
    fn of<T, E>(result: &Result<T, E>) -> Self {
        if result.is_ok() {
            Check::Ok
        } else {
            Check::Unavailable
        }
    }
}

/// The Redis fan-out.
#[derive(Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Fanout {
    Off,
    Ok,
    Degraded,
}

/// `GET /healthz`: the process is alive.
#[utoipa::path(
    get, path = "/healthz", tag = "system", operation_id = "healthz",
    summary = "Liveness: the process is up",
    description = "Needs no token. Always `{\"status\":\"ok\"}` while the process serves requests.",
    security(()),
    responses((status = 200, description = "The process is alive.", body = Health))
)]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: Up::Ok })
}

/// `GET /readyz`: the store answers and verification keys are loaded.
#[utoipa::path(
    get, path = "/readyz", tag = "system", operation_id = "readyz",
    summary = "Readiness: the store is reachable and verification keys are loaded",
    description = "Needs no token. 200 when both the store and the authentication keys (or, with \
        the clients-verify strategy, the store alone) are available; 503 otherwise, with the same \
        body (not the error body) saying which part is unavailable.",
    security(()),
    responses(
        (status = 200, description = "Ready to serve.", body = Readiness),
        (status = 503, description = "Not ready: the store or the keys are unavailable.", body = Readiness),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.store().ping().await;
    let keys = state.auth().ready().await;
    if let Err(e) = &store {
        tracing::warn!(error = ?e, "readiness: store not reachable");
    }
    if let Err(e) = &keys {
        tracing::warn!(error = %e, "readiness: keys not available");
    }
    let ok = store.is_ok() && keys.is_ok();
    // A fan-out outage degrades live delivery across processes but this
    // process still serves correctly: reported, not a 503 (all processes
    // share one Redis; failing them all would turn a degradation into an outage).
    let fanout = match state.fanout().map(|f| f.is_healthy()) {
        None => Fanout::Off,
        Some(true) => Fanout::Ok,
        Some(false) => Fanout::Degraded,
    };
    let status = match (ok, fanout == Fanout::Degraded) {
        (false, _) => Overall::Unavailable,
        (true, true) => Overall::Degraded,
        (true, false) => Overall::Ok,
    };
    let body = Readiness {
        status,
        store: Check::of(&store),
        auth: Check::of(&keys),
        fanout,
    };
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // A JSON body: the error middleware leaves it as is.
    (code, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(
    get, path = "/metrics", tag = "system", operation_id = "metrics",
    summary = "Prometheus metrics",
    description = "Needs no token. Prometheus text exposition format 0.0.4.",
    security(()),
    responses((status = 200, description = "Metrics in Prometheus text format.", body = String,
        content_type = "text/plain; version=0.0.4"))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(),
    )
        .into_response()
}

/// `GET /api/v1/openapi.json`.
#[utoipa::path(
    get, path = "/openapi.json", tag = "system", operation_id = "openapi",
    summary = "This OpenAPI 3.1 document",
    description = "Needs no token.",
    security(()),
    responses((status = 200, description = "The OpenAPI document.", body = Object))
)]
pub async fn openapi() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(super::openapi::document())
}
