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
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::parse_json;
use super::openapi::{BadRequest, Internal, PayloadTooLarge, Unavailable};
use crate::notebook::model::{MemberId, UserId};
use crate::service::AccountEvent;
use crate::AppState;

/// The `/api/v1/webhooks/clerk` route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(clerk))
}

/// The part of a Clerk event we read; unknown members are ignored.
#[derive(Deserialize, ToSchema)]
struct ClerkEvent {
    /// e.g. `user.deleted`, `session.revoked`.
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: EventData,
}

/// The event's object; only what the handled events need is read.
#[derive(Deserialize, Default, ToSchema)]
struct EventData {
    id: Option<String>,
    /// `organizationMembership.*`: the organization.
    #[serde(default)]
    organization: Option<EventOrganization>,
    /// `organizationMembership.*`: the member.
    #[serde(default)]
    public_user_data: Option<EventUserData>,
}

/// `organization` of a membership event; only its `id` is read.
#[derive(Deserialize, Default, ToSchema)]
struct EventOrganization {
    id: Option<String>,
}

/// `public_user_data` of an organization membership.
#[derive(Deserialize, Default, ToSchema)]
struct EventUserData {
    user_id: Option<String>,
}

/// Verifies, de-duplicates and applies one Clerk event.
#[utoipa::path(
    post, path = "/webhooks/clerk", tag = "webhooks", operation_id = "clerkWebhook",
    summary = "Clerk events, signed by Svix",
    description = "Called by Clerk (through Svix), not by users: no bearer token, the Svix \
        signature over the raw body with `CLERK_WEBHOOK_SECRET` authenticates it. A bad \
        signature or timestamp is 400 and changes nothing; a replayed `svix-id` is 204 and \
        changes nothing. `user.deleted` deletes the user's notebooks and memberships and closes \
        their sockets; `organizationMembership.deleted` stops the organization's shares counting \
        for that user at once; `organization.deleted` removes the organization's shares. Without `CLERK_WEBHOOK_SECRET` configured: 503.",
    security(()),
    params(
        ("svix-id" = String, Header, description = "Unique message id (replays are acknowledged and ignored)."),
        ("svix-timestamp" = String, Header, description = "Unix seconds when the message was sent."),
        ("svix-signature" = String, Header, description = "Space-separated `v1,<base64 HMAC-SHA256>` signatures."),
    ),
    request_body = ClerkEvent,
    responses(
        (status = 204, description = "Accepted (or a replay, ignored)."),
        (status = 400, response = BadRequest),
        (status = 413, response = PayloadTooLarge),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
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
    if state.notebooks().delivery_seen(&delivery).await? {
        tracing::info!(delivery, "webhook replay ignored");
        return Ok(StatusCode::NO_CONTENT);
    }
    let event: ClerkEvent = parse_json(&body)?;
    state
        .notebooks()
        .account_event(&delivery, account_event(&event)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the service should do about a Clerk event.
fn account_event(event: &ClerkEvent) -> Result<AccountEvent, ApiError> {
    let id = event.data.id.as_deref().unwrap_or_default();
    Ok(match event.kind.as_str() {
        "session.revoked" | "session.ended" | "session.removed" if !id.is_empty() => {
            tracing::info!(kind = event.kind, session = id, "revoking session");
            AccountEvent::SessionEnded(id.to_string())
        }
        "user.deleted" if !id.is_empty() => {
            let user = UserId::parse(id).map_err(|_| bad_user())?;
            tracing::info!(user = id, "deleting user");
            AccountEvent::UserDeleted(user)
        }
        "organizationMembership.deleted" => {
            let data = &event.data;
            let org = data.organization.as_ref().and_then(|o| o.id.as_deref());
            let user = data
                .public_user_data
                .as_ref()
                .and_then(|u| u.user_id.as_deref());
            let (Some(org), Some(user)) = (org, user) else {
                return Err(ApiError::bad_request(
                    "organizationMembership.deleted without organization.id and user_id",
                ));
            };
            let (org, user) = (org_id(org)?, UserId::parse(user).map_err(|_| bad_user())?);
            tracing::info!(%user, %org, "revoking organization membership");
            AccountEvent::OrgMembershipDeleted { user, org }
        }
        "organization.deleted" if !id.is_empty() => {
            tracing::info!(org = id, "removing organization shares");
            AccountEvent::OrgDeleted(org_id(id)?)
        }
        other => {
            tracing::debug!(kind = other, "webhook event ignored");
            AccountEvent::Ignored
        }
    })
}

fn bad_user() -> ApiError {
    ApiError::bad_request("the event does not name a valid user id")
}

/// An `org_...` id from an event (anything else is a 400).
fn org_id(raw: &str) -> Result<UserId, ApiError> {
    MemberId::parse(raw)
        .ok()
        .filter(|_| raw.starts_with("org_"))
        .map(MemberId::into_id)
        .ok_or_else(|| ApiError::bad_request("the event does not name a valid organization id"))
}
