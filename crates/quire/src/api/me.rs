//! `GET /api/v1/me`: who the server thinks you are.

use axum::Json;
use chrono::DateTime;
use serde_json::{json, Value};

use super::extract::Caller;
use super::views::timestamp;

/// The caller's principal, timestamps in RFC 3339 UTC.
pub async fn me(caller: Caller) -> Json<Value> {
    let p = &caller.principal;
    let expires_at = DateTime::from_timestamp(p.expires_at, 0).map(|t| timestamp(&t));
    Json(json!({
        "user_id": p.user_id,
        "session_id": p.session_id,
        "org": p.org,
        "actor": p.actor,
        "expires_at": expires_at,
    }))
}
