//! Membership endpoints. Membership changes are not ops (they do not bump
//! the notebook version) but they do reach open sockets.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{notebook_id, ApiJson, Caller};
use super::openapi::{MemberPath, NotebookErrors, NotebookPath, PayloadTooLarge};
use super::views::{MemberList, MemberView};
use crate::notebook::model::{MemberId, Role, UserId};
use crate::AppState;

/// `/api/v1/notebooks/{id}/members...` routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(put, remove))
}

/// `GET /api/v1/notebooks/{id}/members`: any member may read it; owner first.
#[utoipa::path(
    get, path = "/{id}/members", tag = "members", operation_id = "listMembers",
    summary = "Owner, editors and viewers of a notebook",
    description = "Any member may read the list. The owner comes first with role `owner`.",
    params(NotebookPath),
    responses(
        (status = 200, description = "The members.", body = MemberList),
        NotebookErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = notebook_id(&raw_id)?;
    let members = state.notebooks().members(id, &caller.actor).await?;
    let items = members
        .iter()
        .map(|(user, role)| MemberView::new(user, *role))
        .collect();
    Ok(Json(MemberList { items }).into_response())
}

/// `PUT .../members/{user_id}` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutMember {
    /// Read as text so another value is our 400, not serde's.
    #[schema(value_type = SharedRole)]
    role: String,
}

/// The roles an owner may give (there is one owner, the creator).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // describes `PutMember::role`
pub enum SharedRole {
    Editor,
    Viewer,
}

/// A member id from the path: `user_...`, `org_...` or `mch_...` (400 otherwise).
fn member_id(raw: &str) -> Result<UserId, ApiError> {
    MemberId::parse(raw)
        .map(MemberId::into_id)
        .map_err(|_| ApiError::BadRequest {
            code: "invalid_id",
            message: "the member id must be a user_, org_ or mch_ id".into(),
        })
}

/// The owner may manage members; nobody else. Checked before the rest of
/// the request is parsed (access first, DESIGN.md "REST"); the service
/// checks again where it changes anything.
async fn authorize_owner(
    state: &AppState,
    caller: &Caller,
    raw_id: &str,
) -> Result<crate::notebook::model::NotebookId, ApiError> {
    let id = notebook_id(raw_id)?;
    state.notebooks().require_owner(id, &caller.actor).await?;
    Ok(id)
}

/// `PUT /api/v1/notebooks/{id}/members/{user_id}` `{"role":"editor"|"viewer"}`.
#[utoipa::path(
    put, path = "/{id}/members/{user_id}", tag = "members", operation_id = "putMember",
    summary = "Add a member or change their role",
    description = "Owner only (others: 403). Any Clerk user (`user_...`), organization \
        (`org_...`, whose members get the role while it is their active organization) or machine \
        (`mch_...`) id may be added, signed in before or not; any other id shape is 400. The owner's own role cannot be changed (400). Not an op: the notebook version does \
        not change, but that user's open sockets get a `role` message.",
    params(MemberPath),
    request_body = PutMember,
    responses(
        (status = 200, description = "The membership.", body = MemberView),
        (status = 413, response = PayloadTooLarge),
        NotebookErrors,
    )
)]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw_id, raw_user)): Path<(String, String)>,
    ApiJson(body): ApiJson<PutMember>,
) -> Result<Response, ApiError> {
    let id = authorize_owner(&state, &caller, &raw_id).await?;
    let user = member_id(&raw_user)?;
    let role = match body.role.as_str() {
        "editor" => Role::Editor,
        "viewer" => Role::Viewer,
        _ => {
            return Err(ApiError::bad_request(
                "role must be \"editor\" or \"viewer\"",
            ))
        }
    };
    state
        .notebooks()
        .set_member(id, &caller.actor, &user, role)
        .await?;
    Ok(Json(MemberView::new(&user, role)).into_response())
}

/// `DELETE /api/v1/notebooks/{id}/members/{user_id}`: that user's sockets close.
#[utoipa::path(
    delete, path = "/{id}/members/{user_id}", tag = "members", operation_id = "removeMember",
    summary = "Remove a member",
    description = "Owner only (others: 403). 404 when that user is not a member. The user's open \
        sockets on the notebook close with 4403.",
    params(MemberPath),
    responses(
        (status = 204, description = "Removed."),
        NotebookErrors,
    )
)]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw_id, raw_user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = authorize_owner(&state, &caller, &raw_id).await?;
    let user = member_id(&raw_user)?;
    state
        .notebooks()
        .remove_member(id, &caller.actor, &user)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
