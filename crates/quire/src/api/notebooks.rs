//! Notebook endpoints: list, create, read, rename, delete, .ipynb export/import.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::extract::{notebook_id, ApiJson, Caller};
use super::pagination::{decode_cursor, encode_cursor, page_limit};
use super::views::NotebookView;
use super::CellInput;
use crate::notebook::model::{Notebook, NotebookId, Role};
use crate::notebook::ops::{NewCell, Op};
use crate::AppState;

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /api/v1/notebooks`: what the caller owns or is a member of, newest first.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit.as_deref())?;
    let after = q
        .cursor
        .as_deref()
        .map(|c| decode_cursor(state.cursor_key(), c))
        .transpose()?;
    // One extra row tells whether there is a next page.
    let mut rows = state
        .notebooks()
        .list(&caller.user_id, limit + 1, after)
        .await?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = match (more, rows.last()) {
        (true, Some((meta, _))) => Some(encode_cursor(state.cursor_key(), meta)),
        _ => None,
    };
    let items: Vec<_> = rows
        .iter()
        .map(|(meta, role)| NotebookView::summary(meta, *role))
        .collect();
    Ok(Json(json!({ "items": items, "next_cursor": next_cursor })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateNotebook {
    title: String,
    #[serde(default)]
    cells: Vec<CellInput>,
}

/// `POST /api/v1/notebooks`: 201 with the full notebook and a Location.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateNotebook>,
) -> Result<Response, ApiError> {
    let cells = body
        .cells
        .into_iter()
        .map(CellInput::into_new_cell)
        .collect::<Result<Vec<NewCell>, ApiError>>()?;
    let notebook = state
        .notebooks()
        .create(&caller.user_id, &body.title, Map::new(), cells)
        .await?;
    Ok(created(&notebook))
}

/// 201 + Location + ETag + the full notebook, as the owner sees it.
pub fn created(notebook: &Notebook) -> Response {
    let location = format!("/api/v1/notebooks/{}", notebook.meta.id);
    let mut response = (
        StatusCode::CREATED,
        Json(NotebookView::full(notebook, Role::Owner)),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    with_etag(response, notebook.meta.version)
}

/// `ETag: "<version>"`, the value `If-Match` takes.
pub fn with_etag(mut response: Response, version: i64) -> Response {
    if let Ok(value) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// Access check shared by every route under a notebook: 400 for a malformed
/// id, 404 when it does not exist, 403 when the caller may not see it.
pub async fn authorize(
    state: &AppState,
    caller: &Caller,
    raw_id: &str,
) -> Result<(NotebookId, Role), ApiError> {
    let id = notebook_id(raw_id)?;
    let role = state.notebooks().role_of(id, &caller.user_id).await?;
    Ok((id, role))
}

/// `GET /api/v1/notebooks/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = notebook_id(&raw_id)?;
    let (snapshot, role) = state.notebooks().open(id, &caller.user_id).await?;
    let notebook = &snapshot.notebook;
    Ok(with_etag(
        Json(NotebookView::full(notebook, role)).into_response(),
        notebook.meta.version,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchNotebook {
    title: Option<String>,
}

/// `PATCH /api/v1/notebooks/{id}`: rename, honouring `If-Match` (412).
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PatchNotebook>,
) -> Result<Response, ApiError> {
    let (id, role) = authorize(&state, &caller, &raw_id).await?;
    let expect = if_match(&headers)?;
    let title = body
        .title
        .ok_or_else(|| ApiError::bad_request("nothing to change: give a title"))?;
    let snapshot = state
        .notebooks()
        .apply_and_read(id, &caller.user_id, Op::NotebookRename { title }, expect)
        .await?;
    let meta = &snapshot.notebook.meta;
    let version = meta.version;
    Ok(with_etag(
        Json(NotebookView::summary(meta, role)).into_response(),
        version,
    ))
}

/// `If-Match: "<version>"` (weak or strong, or `*`). Malformed -> 400.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request("If-Match is not valid"))?
        .trim();
    if text == "*" {
        return Ok(None);
    }
    let tag = text.strip_prefix("W/").unwrap_or(text);
    let tag = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(tag);
    tag.parse::<i64>()
        .map(Some)
        .map_err(|_| ApiError::bad_request("If-Match must be a notebook version like \"3\""))
}

/// `DELETE /api/v1/notebooks/{id}`: owner only.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = notebook_id(&raw_id)?;
    state.notebooks().delete(id, &caller.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/notebooks/{id}/ipynb`: an nbformat 4.5 document.
pub async fn export_ipynb(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = notebook_id(&raw_id)?;
    let (snapshot, _) = state.notebooks().open(id, &caller.user_id).await?;
    let doc = crate::notebook::ipynb::export(&snapshot.notebook);
    let mut response = Json(doc).into_response();
    let disposition = format!("attachment; filename=\"{}.ipynb\"", id);
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

#[derive(Deserialize)]
pub struct ImportQuery {
    title: Option<String>,
}

/// `POST /api/v1/notebooks/import?title=`: body is an .ipynb (v4.x).
pub async fn import_ipynb(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let imported = crate::notebook::ipynb::import(&body).map_err(|e| ApiError::BadRequest {
        code: "invalid_ipynb",
        message: e.to_string(),
    })?;
    let title = q
        .title
        .filter(|t| !t.trim().is_empty())
        .or(imported.title)
        .unwrap_or_else(|| "Untitled".to_string());
    let notebook = state
        .notebooks()
        .create(&caller.user_id, &title, imported.metadata, imported.cells)
        .await?;
    Ok(created(&notebook))
}
