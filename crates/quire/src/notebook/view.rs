//! How notebooks, cells and members are shown to clients: the JSON shapes of
//! DESIGN.md "REST API", shared by the REST responses and the socket `ready`
//! message. Each is a typed struct that also describes itself in the OpenAPI
//! document (`ToSchema`). It lives below both `api` and `realtime`, so
//! neither imports the other.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::notebook::model::{Cell, Notebook, NotebookMeta, Role, UserId};

/// RFC 3339 UTC with a `Z` and microseconds: what every timestamp looks like.
pub fn timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A notebook without its cells: lists, PATCH, and the head of [`NotebookWithCells`].
#[derive(Serialize, ToSchema)]
#[schema(as = NotebookSummary)]
pub struct NotebookView<'a> {
    #[schema(value_type = String, format = Uuid)]
    pub id: String,
    pub title: &'a str,
    /// Clerk user id of the owner.
    pub owner_id: &'a str,
    /// The caller's role on this notebook.
    pub role: Role,
    /// In listings: the organization (`org_...`) the caller has access
    /// through, present only when the access comes only from its share.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, required = false, nullable = false)]
    pub via_org: Option<&'a str>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: String,
    /// Time of the last op (or creation).
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: String,
    /// 0 at creation, +1 per op; the `ETag`.
    #[schema(minimum = 0)]
    pub version: i64,
}

/// A notebook with its cells in order (GET, POST, move, the socket's `ready`).
#[derive(Serialize, ToSchema)]
#[schema(as = Notebook)]
pub struct NotebookWithCells<'a> {
    #[serde(flatten)]
    pub summary: NotebookView<'a>,
    /// In order, position 0 first.
    #[schema(value_type = Vec<CellSchema>)]
    pub cells: &'a [Cell],
}

impl<'a> NotebookView<'a> {
    /// The list/PATCH shape: no cells.
    pub fn summary(meta: &'a NotebookMeta, role: Role) -> Self {
        NotebookView {
            id: meta.id.to_string(),
            title: &meta.title,
            owner_id: meta.owner_id.as_str(),
            role,
            via_org: None,
            created_at: timestamp(&meta.created_at),
            updated_at: timestamp(&meta.updated_at),
            version: meta.version,
        }
    }

    /// The listing shape: [`NotebookView::summary`] with `via_org`.
    pub fn listed(meta: &'a NotebookMeta, role: Role, via_org: Option<&'a UserId>) -> Self {
        NotebookView {
            via_org: via_org.map(UserId::as_str),
            ..NotebookView::summary(meta, role)
        }
    }

    /// The GET/POST shape: with cells in order.
    pub fn full(notebook: &'a Notebook, role: Role) -> NotebookWithCells<'a> {
        NotebookWithCells {
            summary: NotebookView::summary(&notebook.meta, role),
            cells: &notebook.cells,
        }
    }
}

/// One page of `GET /api/v1/notebooks`.
#[derive(Serialize, ToSchema)]
#[schema(as = NotebookList)]
pub struct NotebookPage<'a> {
    pub items: Vec<NotebookView<'a>>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A member of a notebook and their role.
#[derive(Serialize, ToSchema)]
#[schema(as = Member)]
pub struct MemberView<'a> {
    /// Clerk user id.
    pub user_id: &'a str,
    pub role: Role,
}

impl<'a> MemberView<'a> {
    /// The `{"user_id","role"}` pair.
    pub fn new(user: &'a UserId, role: Role) -> Self {
        MemberView {
            user_id: user.as_str(),
            role,
        }
    }
}

/// `GET .../members`.
#[derive(Serialize, ToSchema)]
#[schema(as = MemberList)]
pub struct MemberList<'a> {
    /// The owner first (role `owner`), then editors and viewers.
    pub items: Vec<MemberView<'a>>,
}

// ---------------------------------------------------------------------------
// The schema of a cell. `Cell` serializes by hand (`notebook::model`), so
// these types only describe that JSON for the document; they are never built.

/// A cell, nbformat-flavoured: `outputs` and `execution_count` exist only on code cells.
#[derive(ToSchema)]
#[schema(as = Cell, discriminator(property_name = "cell_type", mapping(
    ("code" = "#/components/schemas/CodeCell"),
    ("markdown" = "#/components/schemas/TextCell"),
    ("raw" = "#/components/schemas/TextCell"),
)))]
#[allow(dead_code)]
#[derive(Serialize)]
#[serde(untagged)]
pub enum CellSchema {
    Code(CodeCell),
    Text(TextCell),
}

/// A code cell.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct CodeCell {
    /// Unique in the notebook (nbformat 4.5 pattern).
    #[schema(pattern = "^[a-zA-Z0-9_-]{1,64}$")]
    id: String,
    cell_type: CodeType,
    source: String,
    /// nbformat cell metadata.
    #[schema(value_type = Object)]
    metadata: Map<String, Value>,
    /// nbformat outputs.
    #[schema(value_type = Vec<Object>)]
    outputs: Vec<Value>,
    #[schema(required = true)]
    execution_count: Option<i64>,
    /// 1 for a new cell, +1 on every change to it; send as `base_version`.
    #[schema(minimum = 1)]
    version: i64,
}

/// A markdown or raw cell: no `outputs`, no `execution_count`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct TextCell {
    /// Unique in the notebook (nbformat 4.5 pattern).
    #[schema(pattern = "^[a-zA-Z0-9_-]{1,64}$")]
    id: String,
    cell_type: TextType,
    source: String,
    /// nbformat cell metadata.
    #[schema(value_type = Object)]
    metadata: Map<String, Value>,
    /// nbformat attachments (`{"name.png": {"image/png": "<base64>"}}`), only
    /// when the cell has some (imported notebooks); `attachment:name` images
    /// in markdown refer to them.
    #[schema(value_type = Object, required = false)]
    attachments: Option<Map<String, Value>>,
    /// 1 for a new cell, +1 on every change to it; send as `base_version`.
    #[schema(minimum = 1)]
    version: i64,
}

/// `cell_type` of a code cell.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum CodeType {
    Code,
}

/// `cell_type` of a text cell.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum TextType {
    Markdown,
    Raw,
}
