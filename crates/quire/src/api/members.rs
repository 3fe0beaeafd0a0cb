//! Membership endpoints. Membership changes are not ops (they do not bump
//! the notebook version) but they do reach open sockets.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{notebook_id, ApiJson, Caller};
use crate::notebook::model::{Role, UserId};
use crate::AppState;

/// `GET /api/v1/notebooks/{id}/members`: any member may read it; owner first.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = notebook_id(&raw_id)?;
    let members = state.notebooks().members(id, &caller.user_id).await?;
    let items: Vec<Value> = members
        .iter()
        .map(|(user, role)| json!({"user_id": user.as_str(), "role": role}))
        .collect();
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutMember {
    role: String,
}

fn member_id(raw: &str) -> Result<UserId, ApiError> {
    UserId::parse(raw).map_err(|_| ApiError::BadRequest {
        code: "invalid_id",
        message: "the user id is not valid".into(),
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
    state.notebooks().require_owner(id, &caller.user_id).await?;
    Ok(id)
}

/// `PUT /api/v1/notebooks/{id}/members/{user_id}` `{"role":"editor"|"viewer"}`.
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw_id, raw_user)): Path<(String, String)>,
    ApiJson(body): ApiJson<PutMember>,
) -> Result<Json<Value>, ApiError> {
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
        .set_member(id, &caller.user_id, &user, role)
        .await?;
    Ok(Json(json!({"user_id": user.as_str(), "role": role})))
}

/// `DELETE /api/v1/notebooks/{id}/members/{user_id}`: that user's sockets close.
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw_id, raw_user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = authorize_owner(&state, &caller, &raw_id).await?;
    let user = member_id(&raw_user)?;
    state
        .notebooks()
        .remove_member(id, &caller.user_id, &user)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
