//! How a notebook is shown to a client: the one JSON view REST responses and
//! the socket `ready` message share (DESIGN.md "REST API"). It lives here,
//! below both `api` and `realtime`, so neither imports the other.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::notebook::model::{Cell, Notebook, NotebookMeta, Role};

/// RFC 3339 UTC with a `Z` and microseconds: what every timestamp looks like.
pub fn timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A notebook as a client sees it; `cells` only on full views.
#[derive(Serialize)]
pub struct NotebookView<'a> {
    pub id: String,
    pub title: &'a str,
    pub owner_id: &'a str,
    pub role: Role,
    pub created_at: String,
    pub updated_at: String,
    pub version: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cells: Option<&'a [Cell]>,
}

impl<'a> NotebookView<'a> {
    /// The list/PATCH shape: no cells.
    pub fn summary(meta: &'a NotebookMeta, role: Role) -> Self {
        NotebookView {
            id: meta.id.to_string(),
            title: &meta.title,
            owner_id: meta.owner_id.as_str(),
            role,
            created_at: timestamp(&meta.created_at),
            updated_at: timestamp(&meta.updated_at),
            version: meta.version,
            cells: None,
        }
    }

    /// The GET/POST shape: with cells in order.
    pub fn full(notebook: &'a Notebook, role: Role) -> Self {
        NotebookView {
            cells: Some(&notebook.cells),
            ..NotebookView::summary(&notebook.meta, role)
        }
    }
}
