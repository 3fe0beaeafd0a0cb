//! `POST /api/v1/webhooks/clerk`: Clerk events, signed by Svix.
//!
//! A bad signature or a timestamp outside 5 minutes is a 400 and changes
//! nothing (see [`clerk_auth::webhook`]). A delivery id
//! already applied is acknowledged (204) without being applied again; effects
//! are applied before the id is recorded, and are idempotent, so a delivery
//! that fails half-way is safely applied again on Svix's retry.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::error::ApiError;
use super::extract::parse_json;
use crate::notebook::model::UserId;
use crate::AppState;

/// The part of a Clerk event we read; unknown members are ignored.
#[derive(Deserialize)]
struct ClerkEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: EventData,
}

#[derive(Deserialize, Default)]
struct EventData {
    id: Option<String>,
}

pub async fn clerk(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let webhook = state.webhook().ok_or_else(|| {
        ApiError::Unavailable(anyhow::anyhow!(
            "a Clerk webhook arrived but CLERK_WEBHOOK_SECRET is not set"
        ))
    })?;
    if let Err(e) = webhook.verify(&headers, &body, chrono::Utc::now().timestamp()) {
        tracing::info!(error = ?e, "webhook refused");
        return Err(ApiError::BadRequest {
            code: "invalid_signature",
            message: "the webhook signature or timestamp is not valid".into(),
        });
    }
    let delivery = headers
        .get("svix-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if state.store().webhook_seen(&delivery).await? {
        tracing::info!(delivery, "webhook replay ignored");
        return Ok(StatusCode::NO_CONTENT);
    }
    let event: ClerkEvent = parse_json(&body)?;
    apply(&state, &event).await?;
    state.store().record_webhook(&delivery).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn apply(state: &AppState, event: &ClerkEvent) -> Result<(), ApiError> {
    let id = event.data.id.as_deref().unwrap_or_default();
    match event.kind.as_str() {
        "session.revoked" | "session.ended" | "session.removed" if !id.is_empty() => {
            tracing::info!(kind = event.kind, session = id, "revoking session");
            state.revoke_session(id);
        }
        "user.deleted" if !id.is_empty() => {
            let user = UserId::parse(id)
                .map_err(|_| ApiError::bad_request("user.deleted without a valid user id"))?;
            tracing::info!(user = id, "deleting user");
            state.delete_user(&user).await?;
        }
        other => tracing::debug!(kind = other, "webhook event ignored"),
    }
    Ok(())
}
