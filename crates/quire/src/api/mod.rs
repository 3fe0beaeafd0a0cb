//! The REST API (prefix `/api/v1`) and the plumbing around it: request ids,
//! tracing, metrics, CORS, body limits, and the JSON error format.

pub mod cells;
pub mod error;
pub mod extract;
pub mod me;
pub mod members;
pub mod notebooks;
pub mod openapi;
pub mod pagination;
pub mod system;
pub mod views;
pub mod webhooks;
pub mod ws;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use serde::Deserialize;
use serde_json::{Map, Value};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use self::error::{ApiError, REQUEST_ID};
use crate::notebook::model::{CellId, CellType};
use crate::notebook::ops::NewCell;
use crate::AppState;

/// A cell as clients send it on create (notebook `cells[]` and cell inserts).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewCell)]
pub struct CellInput {
    pub cell_type: CellType,
    /// At most 1 MiB of UTF-8 by default (422 over it).
    #[serde(default)]
    pub source: String,
    /// A client-chosen id (nbformat pattern), unique in the notebook (409).
    #[schema(pattern = "^[a-zA-Z0-9_-]{1,64}$")]
    pub id: Option<String>,
    /// nbformat cell metadata.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

impl CellInput {
    /// Parses the client-chosen id (nbformat pattern) at the boundary.
    pub fn into_new_cell(self) -> Result<NewCell, ApiError> {
        let mut cell = NewCell::new(self.cell_type, self.source);
        if let Some(raw) = self.id {
            let id = CellId::parse(&raw).map_err(|_| ApiError::BadRequest {
                code: "invalid_id",
                message: "cell ids must match ^[a-zA-Z0-9-_]{1,64}$".into(),
            })?;
            cell = cell.with_id(id);
        }
        if let Some(metadata) = self.metadata {
            cell.metadata = metadata;
        }
        Ok(cell)
    }
}

/// Every documented route (all of the API: each resource module's
/// `router()`), together with the OpenAPI document describing them.
pub(crate) fn routes(import_limit: usize) -> OpenApiRouter<AppState> {
    let notebooks = notebooks::router(import_limit)
        .merge(cells::router())
        .merge(members::router())
        .merge(ws::router());
    let v1 = OpenApiRouter::new()
        .nest("/notebooks", notebooks)
        .merge(me::router())
        .merge(webhooks::router())
        .merge(system::v1_router());
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(system::router())
        .nest("/api/v1", v1)
}

/// Every route of the server, with its middleware; `extra` (dev mode's
/// `/__dev`) is served with the same middleware.
pub fn router(state: AppState, extra: Option<Router<AppState>>) -> Router {
    let limits = &state.config().limits;
    let body_limit = limits.max_body_bytes;
    let (api, _) = routes(limits.max_import_bytes).split_for_parts();
    let mut app = api
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(DefaultBodyLimit::max(body_limit));
    if let Some(extra) = extra {
        app = app.merge(extra);
    }
    app = app.merge(crate::web::routes());
    // route_layer: runs after routing, so the matched route is known.
    app.route_layer(middleware::from_fn(record_metrics))
        .fallback(|| async { ApiError::NotFound })
        .layer(middleware::from_fn(error::render_errors))
        .layer(cors(&state))
        .layer(PropagateRequestIdLayer::new(HeaderName::from_static(
            REQUEST_ID,
        )))
        .layer(trace_layer())
        .layer(SetRequestIdLayer::new(
            HeaderName::from_static(REQUEST_ID),
            MakeRequestUuid,
        ))
        .with_state(state)
}

/// One span per request carrying the request id, so every log line has it.
fn trace_layer() -> TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    impl Fn(&Request) -> tracing::Span + Clone,
> {
    TraceLayer::new_for_http().make_span_with(|request: &Request| {
        let request_id = request
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.uri().path(),
            request_id = %request_id,
        )
    })
}

/// CORS for the allowed origins only (the browser app may live elsewhere).
fn cors(state: &AppState) -> CorsLayer {
    let origins: Vec<HeaderValue> = state
        .config()
        .allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::RETRY_AFTER,
            header::WWW_AUTHENTICATE,
            HeaderName::from_static(REQUEST_ID),
        ])
        .allow_credentials(true)
        .max_age(Duration::from_secs(600))
}

/// `http_requests_total{method,route,status}` and a latency histogram by route.
async fn record_metrics(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
