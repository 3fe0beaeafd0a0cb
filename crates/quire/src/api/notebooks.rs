//! Notebook endpoints: list, create, read, rename, delete, .ipynb export/import.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{notebook_id, ApiJson, Caller};
use super::openapi::{
    AuthErrors, BadRequest, Conflict, IfMatch, NotebookErrors, NotebookPath, PayloadTooLarge,
    PreconditionFailed, Unprocessable,
};
use super::pagination::{decode_cursor, encode_cursor, page_limit};
use super::views::{NotebookPage, NotebookView, NotebookWithCells};
use super::CellInput;
use crate::notebook::model::{Notebook, NotebookId, Role};
use crate::notebook::ops::{NewCell, Op};
use crate::AppState;

/// `/api/v1/notebooks/...` routes of this module; `import_limit` caps the
/// .ipynb upload (the other bodies have the global JSON limit).
pub fn router(import_limit: usize) -> OpenApiRouter<AppState> {
    let import = OpenApiRouter::new()
        .routes(routes!(import_ipynb))
        .layer(DefaultBodyLimit::max(import_limit));
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, patch, delete))
        .routes(routes!(export_ipynb))
        .merge(import)
}

/// `?limit=&cursor=` (read as text so a bad limit is our 400, not serde's).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1 to 200 (default 50).
    #[param(value_type = u32, required = false, minimum = 1, maximum = 200)]
    limit: Option<String>,
    /// Opaque, tamper-evident cursor from a previous page's `next_cursor` (forged: 400).
    #[param(value_type = String, required = false)]
    cursor: Option<String>,
}

/// `GET /api/v1/notebooks`: what the caller owns or is a member of, newest first.
#[utoipa::path(
    get, path = "", tag = "notebooks", operation_id = "listNotebooks",
    summary = "Notebooks the caller owns or is a member of, newest first",
    description = "Ordered by `created_at`, newest first. Pass `next_cursor` back as `cursor` \
        for the next page; `next_cursor` is null on the last page. A forged cursor is 400.",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of notebook summaries.", body = NotebookPage),
        (status = 400, response = BadRequest),
        AuthErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = page_limit(q.limit.as_deref())?;
    let after = q
        .cursor
        .as_deref()
        .map(|c| decode_cursor(state.cursor_key(), c))
        .transpose()?;
    // One extra row tells whether there is a next page.
    let mut rows = state
        .notebooks()
        .list(&caller.actor, limit + 1, after)
        .await?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = match (more, rows.last()) {
        (true, Some((meta, _))) => Some(encode_cursor(state.cursor_key(), meta)),
        _ => None,
    };
    let items: Vec<_> = rows
        .iter()
        .map(|(meta, grant)| NotebookView::listed(meta, grant.role, grant.via_org.as_ref()))
        .collect();
    Ok(Json(NotebookPage { items, next_cursor }).into_response())
}

/// `POST /api/v1/notebooks` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNotebook {
    /// Something besides whitespace; at most 200 characters by default (422 over it).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    title: String,
    /// Initial cells in order (at most 5,000 by default, 422 over it).
    #[serde(default)]
    cells: Vec<CellInput>,
}

/// `POST /api/v1/notebooks`: 201 with the full notebook and a Location.
#[utoipa::path(
    post, path = "", tag = "notebooks", operation_id = "createNotebook",
    summary = "Create a notebook, optionally with cells",
    description = "The caller becomes the owner. The new notebook has version 0 and each cell \
        version 1. Client-chosen cell ids are honoured (nbformat pattern); a duplicate id is 409. \
        `id`, `owner_id`, `version` or any other unknown member is 400.",
    request_body = CreateNotebook,
    responses(
        (status = 201, description = "Created; the body is the full notebook as its owner sees it.",
            body = NotebookWithCells, headers(
                ("Location" = String, description = "URL of the new notebook, `/api/v1/notebooks/{id}`."),
                ("ETag" = String, description = "The notebook version as a strong entity tag, e.g. `\"0\"`."),
            )),
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        AuthErrors,
    )
)]
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
        .create(&caller.actor, &body.title, Map::new(), cells)
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
    let role = state.notebooks().role_of(id, &caller.actor).await?;
    Ok((id, role))
}

/// `GET /api/v1/notebooks/{id}`.
#[utoipa::path(
    get, path = "/{id}", tag = "notebooks", operation_id = "getNotebook",
    summary = "A notebook with its cells",
    description = "Any member may read. `ETag` is the notebook version, usable in `If-Match`.",
    params(NotebookPath),
    responses(
        (status = 200, description = "The notebook with its cells in order.", body = NotebookWithCells,
            headers(("ETag" = String, description = "The notebook version, e.g. `\"3\"`; send it in `If-Match`."))),
        NotebookErrors,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = notebook_id(&raw_id)?;
    let (snapshot, role) = state.notebooks().open(id, &caller.actor).await?;
    let notebook = &snapshot.notebook;
    Ok(with_etag(
        Json(NotebookView::full(notebook, role)).into_response(),
        notebook.meta.version,
    ))
}

/// `PATCH /api/v1/notebooks/{id}` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchNotebook {
    /// The new title (required: nothing else can be changed); something besides
    /// whitespace, at most 200 characters by default (422 over it).
    #[schema(required = true, value_type = String, min_length = 1, max_length = 200, pattern = "[^\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]")]
    title: Option<String>,
}

/// `PATCH /api/v1/notebooks/{id}`: rename, honouring `If-Match` (412).
#[utoipa::path(
    patch, path = "/{id}", tag = "notebooks", operation_id = "patchNotebook",
    summary = "Rename a notebook",
    description = "Owner or editor. One op (the notebook version goes up by one). With \
        `If-Match`, the rename applies only if the notebook is still at that version, else 412.",
    params(
        NotebookPath,
        IfMatch,
    ),
    request_body = PatchNotebook,
    responses(
        (status = 200, description = "Renamed; the body is the notebook summary (no cells).",
            body = NotebookView,
            headers(("ETag" = String, description = "The new notebook version, e.g. `\"4\"`."))),
        (status = 412, response = PreconditionFailed),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        NotebookErrors,
    )
)]
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
        .apply_and_read(id, &caller.actor, Op::NotebookRename { title }, expect)
        .await?;
    let meta = &snapshot.notebook.meta;
    let version = meta.version;
    Ok(with_etag(
        Json(NotebookView::summary(meta, role)).into_response(),
        version,
    ))
}

/// `If-Match: "<version>"` (weak or strong, quotes optional, or `*`); the
/// version is 1 to 18 ASCII digits (what the OpenAPI pattern says). Malformed -> 400.
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
    let digits = (1..=18).contains(&tag.len()) && tag.bytes().all(|b| b.is_ascii_digit());
    digits
        .then(|| tag.parse::<i64>().ok())
        .flatten()
        .map(Some)
        .ok_or_else(|| ApiError::bad_request("If-Match must be a notebook version like \"3\""))
}

/// `DELETE /api/v1/notebooks/{id}`: owner only.
#[utoipa::path(
    delete, path = "/{id}", tag = "notebooks", operation_id = "deleteNotebook",
    summary = "Delete a notebook",
    description = "Owner only (others: 403). Removes its cells, members and op log; open sockets \
        on it close with 4404.",
    params(NotebookPath),
    responses(
        (status = 204, description = "Deleted."),
        NotebookErrors,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = notebook_id(&raw_id)?;
    state.notebooks().delete(id, &caller.actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/notebooks/{id}/ipynb`: an nbformat 4.5 document.
#[utoipa::path(
    get, path = "/{id}/ipynb", tag = "notebooks", operation_id = "exportIpynb",
    summary = "Export a notebook as nbformat 4.5",
    description = "Any member may export. Cell ids are the REST ids.",
    params(NotebookPath),
    responses(
        (status = 200, description = "The .ipynb document.", body = Ipynb,
            headers(("Content-Disposition" = String, description = "`attachment; filename=\"<id>.ipynb\"`"))),
        NotebookErrors,
    )
)]
pub async fn export_ipynb(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = notebook_id(&raw_id)?;
    let (snapshot, _) = state.notebooks().open(id, &caller.actor).await?;
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

/// `?title=` of an import.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// Title of the new notebook: blank (only whitespace, any length) means not
    /// given; otherwise at most 200 characters by default (422 over it).
    #[param(value_type = String, required = false, pattern = "^([\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*|[\\s\\S]{0,200})$")]
    title: Option<String>,
}

/// `POST /api/v1/notebooks/import?title=`: body is an .ipynb (v4.x; v3 and v2 are upgraded).
#[utoipa::path(
    post, path = "/import", tag = "notebooks", operation_id = "importNotebook",
    summary = "Import an .ipynb (nbformat 4.x; 3 and 2 are upgraded) as a new notebook",
    description = "The body is the .ipynb document itself (any content type is read as JSON; up \
        to 16 MiB by default). Title: `?title=`, else the document's `metadata.title`, else \
        \"Untitled\". Cell ids, top-level metadata and attachments round-trip. nbformat 3 and 2 \
        documents are upgraded to 4.5 as Jupyter does; cells of a type unknown to 4.5 from a newer \
        4.x minor are kept as raw cells. Not a readable nbformat 2-4 document: 400 `invalid_ipynb`.",
    params(ImportQuery),
    request_body(content(
        (Ipynb = "application/json"),
        (Ipynb = "application/x-ipynb+json"),
    )),
    responses(
        (status = 201, description = "Created; the body is the full notebook as its owner sees it.",
            body = NotebookWithCells, headers(
                ("Location" = String, description = "URL of the new notebook, `/api/v1/notebooks/{id}`."),
                ("ETag" = String, description = "The notebook version as a strong entity tag, `\"0\"`."),
            )),
        (status = 400, response = BadRequest),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        AuthErrors,
    )
)]
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
        .create(&caller.actor, &title, imported.metadata, imported.cells)
        .await?;
    Ok(created(&notebook))
}

// ---------------------------------------------------------------------------
// The .ipynb schema: `notebook::ipynb` reads and writes it as JSON values, so
// these types only describe what it accepts; they are never built.

/// An nbformat 4.x notebook document (export writes 4.5).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Ipynb {
    #[schema(minimum = 4, maximum = 4)]
    nbformat: i64,
    #[schema(minimum = 0, maximum = 9223372036854775807_i64)]
    nbformat_minor: i64,
    /// Top-level metadata (`metadata.title` names an import), kept for round trips.
    #[schema(value_type = Object, required = false)]
    metadata: Option<Map<String, Value>>,
    cells: Vec<IpynbCell>,
}

/// One nbformat cell; members a cell type does not have are ignored.
///
/// `cell_type` is `code`, `markdown` or `raw` (all an export writes). On import,
/// a document of a newer 4.x minor may carry a type 4.5 does not know: that cell
/// is kept as a raw cell; the same in a document of minor 5 or older is a 400
/// (a cross-field rule a schema cannot say, so `cell_type` is a plain string).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct IpynbCell {
    /// `code`, `markdown` or `raw` (see above for other values).
    cell_type: String,
    /// Kept when it matches the nbformat pattern and is not repeated; otherwise a fresh id.
    #[schema(value_type = Value, required = false)]
    id: Option<Value>,
    #[schema(value_type = IpynbSource, required = false)]
    source: Option<Value>,
    #[schema(value_type = Object, required = false)]
    metadata: Option<Map<String, Value>>,
    /// Code cells: nbformat outputs, a list of objects each with a string `output_type`
    /// (ignored on other cells, so any value is read there).
    #[schema(value_type = Value, required = false)]
    outputs: Option<Value>,
    /// Code cells: an integer or null, read as a signed 64-bit integer (ignored on other cells).
    #[schema(value_type = Value, required = false)]
    execution_count: Option<Value>,
    /// Markdown and raw cells: nbformat attachments, kept for round trips (ignored on code cells).
    #[schema(value_type = Value, required = false)]
    attachments: Option<Value>,
}

/// A cell source: one string or a list of strings.
#[derive(serde::Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum IpynbSource {
    Text(String),
    Lines(Vec<String>),
}
