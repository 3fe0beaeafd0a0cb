//! Operational endpoints: liveness, readiness, Prometheus metrics, OpenAPI.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::realtime::fanout::Fanout;
use crate::AppState;

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the store answers and verification keys are loaded.
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
    let fanout = match state.fanout().map(Fanout::is_healthy) {
        None => "off",
        Some(true) => "ok",
        Some(false) => "degraded",
    };
    let body = json!({
        "status": if !ok { "unavailable" } else if fanout == "degraded" { "degraded" } else { "ok" },
        "store": if store.is_ok() { "ok" } else { "unavailable" },
        "auth": if keys.is_ok() { "ok" } else { "unavailable" },
        "fanout": fanout,
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // A JSON body: the error middleware leaves it as is.
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(),
    )
        .into_response()
}

/// `GET /api/v1/openapi.json`.
pub async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}
