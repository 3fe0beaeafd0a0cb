//! `GET /api/v1/me`: who the server thinks you are.

use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::DateTime;
use clerk_auth::{Actor, Org};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::Caller;
use super::openapi::AuthErrors;
use super::views::timestamp;
use crate::AppState;

/// The `/api/v1/me` route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me))
}

/// The caller's verified principal, timestamps in RFC 3339 UTC.
#[derive(Serialize, ToSchema)]
pub struct Me<'a> {
    /// Which kind of token proved the caller.
    #[schema(value_type = String, example = "user")]
    pub kind: &'static str,
    /// Who acts: `user_...`, `org_...` or `mch_...`.
    pub subject: &'a str,
    /// A machine token's scopes (absent for session tokens; empty: the
    /// subject's full rights).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>, required = false, nullable = false)]
    pub scopes: Option<&'a [String]>,
    pub user_id: &'a str,
    pub session_id: &'a str,
    /// The session's active organization, or null.
    #[schema(value_type = Option<OrgSchema>, required = true)]
    pub org: Option<&'a Org>,
    /// The impersonator, or null.
    #[schema(value_type = Option<ActorSchema>, required = true)]
    pub actor: Option<&'a Actor>,
    /// The token's `exp`.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Option<String>,
}

/// How `clerk_auth::Org` serializes (described here: clerk-auth knows no OpenAPI).
#[derive(ToSchema)]
#[schema(as = Org)]
#[allow(dead_code)]
pub struct OrgSchema {
    id: String,
    #[schema(required = true)]
    slug: Option<String>,
    /// In Clerk's `org:<role>` form.
    #[schema(required = true)]
    role: Option<String>,
    /// `org:<feature>:<permission>` strings.
    permissions: Vec<String>,
}

/// How `clerk_auth::Actor` serializes: who is impersonating the user (`act`).
#[derive(ToSchema)]
#[schema(as = Actor)]
#[allow(dead_code)]
pub struct ActorSchema {
    sub: String,
    #[schema(value_type = String, required = false)]
    iss: Option<String>,
    #[schema(value_type = String, required = false)]
    sid: Option<String>,
}

/// The caller's principal, timestamps in RFC 3339 UTC.
#[utoipa::path(
    get, path = "/me", tag = "me", operation_id = "getMe",
    summary = "The caller's verified principal",
    description = "Who the server thinks you are, from the verified token: `kind` \
        (`user`, `api_key`, `oauth`, `m2m`), `subject` (who acts) and, for machine tokens, `scopes`.",
    responses(
        (status = 200, description = "The caller.", body = Me),
        AuthErrors,
    )
)]
pub async fn me(caller: Caller) -> Response {
    let p = &caller.principal;
    let expires_at = DateTime::from_timestamp(p.expires_at, 0).map(|t| timestamp(&t));
    Json(Me {
        kind: p.kind.as_str(),
        subject: &p.subject,
        scopes: p.is_machine().then_some(p.scopes.as_slice()),
        user_id: &p.user_id,
        session_id: &p.session_id,
        org: p.org.as_ref(),
        actor: p.actor.as_ref(),
        expires_at,
    })
    .into_response()
}
