//! The OpenAPI 3.1 description served at `/api/v1/openapi.json`.

/// The document (filled in by the OpenAPI work; see `api::system::openapi`).
pub fn document() -> serde_json::Value {
    serde_json::json!({"openapi": "3.1.0", "info": {"title": "quire", "version": env!("CARGO_PKG_VERSION")}, "paths": {}})
}
