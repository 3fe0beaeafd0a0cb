//! Cell endpoints: insert, update, delete, move. Each is one op through
//! the single change path ([`crate::service::Notebooks::apply`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{whole_number, whole_number_opt, ApiJson, Caller};
use super::notebooks::authorize;
use super::openapi::{
    CellPath, Conflict, NotebookErrors, NotebookPath, PayloadTooLarge, Unprocessable,
};
use super::views::{CellSchema, NotebookView, NotebookWithCells};
use super::CellInput;
use crate::notebook::model::{Cell, CellId, CellType};
use crate::notebook::ops::{Committed, Op};
use crate::AppState;

/// `/api/v1/notebooks/{id}/cells...` routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(insert))
        .routes(routes!(update, delete))
        .routes(routes!(move_cell))
}

/// `POST .../cells` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InsertCell {
    cell_type: CellType,
    /// At most 1 MiB of UTF-8 by default (422 over it).
    #[serde(default)]
    source: String,
    /// A client-chosen id (nbformat pattern), unique in the notebook (409).
    #[schema(pattern = "^[a-zA-Z0-9_-]{1,64}$")]
    id: Option<String>,
    /// nbformat cell metadata.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
    /// 0-based position, at most the number of cells; absent appends. Past the end: 400.
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 5000)]
    #[serde(default, deserialize_with = "whole_number_opt")]
    index: Option<usize>,
}

/// A cell id from the path: one that cannot exist is simply not found.
fn cell_id(raw: &str) -> Result<CellId, ApiError> {
    CellId::parse(raw).map_err(|_| ApiError::NotFound)
}

/// The cell as committed (inserts and updates carry it).
fn committed_cell(committed: Committed) -> Result<Json<Cell>, ApiError> {
    committed
        .cell
        .map(Json)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("commit without cell")))
}

/// `POST /api/v1/notebooks/{id}/cells`: 201 with the new cell.
#[utoipa::path(
    post, path = "/{id}/cells", tag = "cells", operation_id = "insertCell",
    summary = "Insert a cell",
    description = "Owner or editor. Without `index` the cell is appended; an index past the end \
        is 400. A client-chosen `id` must match the nbformat pattern and be unique in the \
        notebook (409).",
    params(NotebookPath),
    request_body = InsertCell,
    responses(
        (status = 201, description = "The new cell (version 1).", body = CellSchema),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        NotebookErrors,
    )
)]
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
    let committed = state.notebooks().apply(id, &caller.actor, op, None).await?;
    Ok((StatusCode::CREATED, committed_cell(committed)?).into_response())
}

/// `PATCH .../cells/{cell_id}` body: every member optional, but at least one
/// of `source`, `cell_type`, `metadata` (400 otherwise).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCell {
    /// At most 1 MiB of UTF-8 by default (422 over it).
    source: Option<String>,
    cell_type: Option<CellType>,
    /// Replaces the whole metadata object.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
    /// The cell version this edit is based on; stale -> 409 with `current`.
    #[serde(default, deserialize_with = "whole_number_opt")]
    base_version: Option<i64>,
}

/// `PATCH /api/v1/notebooks/{id}/cells/{cell_id}`: 200 with the cell; a
/// stale `base_version` is a 409 carrying the current cell.
#[utoipa::path(
    patch, path = "/{id}/cells/{cell_id}", tag = "cells", operation_id = "updateCell",
    summary = "Change a cell's source, type or metadata",
    description = "Owner or editor. `metadata` replaces the whole object. With `base_version` \
        (the cell's version) a stale edit is 409 and the error carries the `current` cell. A cell \
        id not in this notebook is 404.",
    params(CellPath),
    request_body = UpdateCell,
    responses(
        (status = 200, description = "The cell as committed (its version +1).", body = CellSchema),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        NotebookErrors,
    )
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw_id, raw_cell)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateCell>,
) -> Result<Json<Cell>, ApiError> {
    let (id, _) = authorize(&state, &caller, &raw_id).await?;
    let op = Op::CellUpdate {
        cell_id: cell_id(&raw_cell)?,
        base_version: body.base_version,
        source: body.source,
        cell_type: body.cell_type,
        metadata: body.metadata,
    };
    committed_cell(state.notebooks().apply(id, &caller.actor, op, None).await?)
}

/// `DELETE /api/v1/notebooks/{id}/cells/{cell_id}`.
#[utoipa::path(
    delete, path = "/{id}/cells/{cell_id}", tag = "cells", operation_id = "deleteCell",
    summary = "Delete a cell",
    description = "Owner or editor. A cell id not in this notebook is 404.",
    params(CellPath),
    responses(
        (status = 204, description = "Deleted."),
        NotebookErrors,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw_id, raw_cell)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (id, _) = authorize(&state, &caller, &raw_id).await?;
    let op = Op::CellDelete {
        cell_id: cell_id(&raw_cell)?,
    };
    state.notebooks().apply(id, &caller.actor, op, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST .../move` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveCell {
    /// The cell's 0-based position after the move, below the number of cells (400 otherwise).
    #[schema(value_type = u32, minimum = 0, maximum = 4999)]
    #[serde(deserialize_with = "whole_number")]
    index: usize,
}

/// `POST /api/v1/notebooks/{id}/cells/{cell_id}/move`: 200 with the notebook.
#[utoipa::path(
    post, path = "/{id}/cells/{cell_id}/move", tag = "cells", operation_id = "moveCell",
    summary = "Move a cell",
    description = "Owner or editor. `index` is the cell's 0-based position after the move (past \
        the end: 400). The notebook version goes up (even for a move to the same place); the \
        cell's does not.",
    params(CellPath),
    request_body = MoveCell,
    responses(
        (status = 200, description = "The full notebook after the move.", body = NotebookWithCells),
        (status = 413, response = PayloadTooLarge),
        NotebookErrors,
    )
)]
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
        .apply_and_read(id, &caller.actor, op, None)
        .await?;
    Ok(Json(NotebookView::full(&snapshot.notebook, role)).into_response())
}
