//! Cell endpoints: insert, update, delete, move. Each is one op through
//! the single change path ([`crate::service::Notebooks::apply`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::extract::{ApiJson, Caller};
use super::notebooks::authorize;
use super::views::NotebookView;
use super::CellInput;
use crate::notebook::model::{CellId, CellType};
use crate::notebook::ops::{Committed, Op};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsertCell {
    cell_type: CellType,
    #[serde(default)]
    source: String,
    id: Option<String>,
    metadata: Option<Map<String, Value>>,
    index: Option<usize>,
}

/// A cell id from the path: one that cannot exist is simply not found.
fn cell_id(raw: &str) -> Result<CellId, ApiError> {
    CellId::parse(raw).map_err(|_| ApiError::NotFound)
}

/// The cell as committed (inserts and updates carry it).
fn committed_cell(committed: Committed) -> Result<Json<Value>, ApiError> {
    let cell = committed
        .cell
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("commit without cell")))?;
    Ok(Json(
        serde_json::to_value(cell).map_err(|e| ApiError::Internal(e.into()))?,
    ))
}

/// `POST /api/v1/notebooks/{id}/cells`: 201 with the new cell.
pub async fn insert(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
    ApiJson(body): ApiJson<InsertCell>,
) -> Result<Response, ApiError> {
    let (id, _) = authorize(&state, &caller, &raw_id).await?;
    let cell = CellInput {
        cell_type: body.cell_type,
        source: body.source,
        id: body.id,
        metadata: body.metadata,
    };
    let op = Op::CellInsert {
        index: body.index,
        cell: cell.into_new_cell()?,
    };
    let committed = state
        .notebooks()
        .apply(id, &caller.user_id, op, None)
        .await?;
    Ok((StatusCode::CREATED, committed_cell(committed)?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateCell {
    source: Option<String>,
    cell_type: Option<CellType>,
    metadata: Option<Map<String, Value>>,
    base_version: Option<i64>,
}

/// `PATCH /api/v1/notebooks/{id}/cells/{cell_id}`: 200 with the cell; a
/// stale `base_version` is a 409 carrying the current cell.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw_id, raw_cell)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateCell>,
) -> Result<Json<Value>, ApiError> {
    let (id, _) = authorize(&state, &caller, &raw_id).await?;
    let op = Op::CellUpdate {
        cell_id: cell_id(&raw_cell)?,
        base_version: body.base_version,
        source: body.source,
        cell_type: body.cell_type,
        metadata: body.metadata,
    };
    committed_cell(
        state
            .notebooks()
            .apply(id, &caller.user_id, op, None)
            .await?,
    )
}

/// `DELETE /api/v1/notebooks/{id}/cells/{cell_id}`.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw_id, raw_cell)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (id, _) = authorize(&state, &caller, &raw_id).await?;
    let op = Op::CellDelete {
        cell_id: cell_id(&raw_cell)?,
    };
    state
        .notebooks()
        .apply(id, &caller.user_id, op, None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveCell {
    index: usize,
}

/// `POST /api/v1/notebooks/{id}/cells/{cell_id}/move`: 200 with the notebook.
pub async fn move_cell(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw_id, raw_cell)): Path<(String, String)>,
    ApiJson(body): ApiJson<MoveCell>,
) -> Result<Response, ApiError> {
    let (id, role) = authorize(&state, &caller, &raw_id).await?;
    let op = Op::CellMove {
        cell_id: cell_id(&raw_cell)?,
        index: body.index,
    };
    let snapshot = state
        .notebooks()
        .apply_and_read(id, &caller.user_id, op, None)
        .await?;
    Ok(Json(NotebookView::full(&snapshot.notebook, role)).into_response())
}
