//! What a change to a notebook is, and the rules for applying one.
//!
//! An [`Op`] is what a client asks for (REST or WebSocket). A store's `apply`
//! validates it ([`validate`]), applies it in one transaction using the pure
//! helpers here ([`insert_index`], [`move_index`], [`update_cell`],
//! [`NewCell::into_cell`]) and records an [`AppliedOp`] — the op as it actually
//! committed, with server-filled fields — in a [`Committed`], which is what gets
//! acked, logged and broadcast. Keeping the rules here means every store
//! implementation behaves the same.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::model::{Cell, CellId, CellType, Limits, NotebookId, UserId};

/// A change a client asks for. Fields are already parsed domain values; the
/// size checks that need no state are in [`validate`].
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Insert a cell at `index` (0-based; `None` appends; may equal the cell count).
    CellInsert {
        /// Target position, `None` = append.
        index: Option<usize>,
        /// The cell to insert.
        cell: NewCell,
    },
    /// Change some fields of a cell.
    CellUpdate {
        /// Which cell.
        cell_id: CellId,
        /// The cell version the client edited; a different current version is a conflict.
        base_version: Option<i64>,
        /// New source, if changing.
        source: Option<String>,
        /// New type, if changing (resets outputs, see [`update_cell`]).
        cell_type: Option<CellType>,
        /// New metadata, replacing the whole object, if changing.
        metadata: Option<Map<String, Value>>,
    },
    /// Remove a cell.
    CellDelete {
        /// Which cell.
        cell_id: CellId,
    },
    /// Move a cell so that it ends up at `index` (must be < the cell count).
    CellMove {
        /// Which cell.
        cell_id: CellId,
        /// Its position after the move.
        index: usize,
    },
    /// Change the notebook title.
    NotebookRename {
        /// The new title (non-empty after trimming, at most `max_title_chars`).
        title: String,
    },
}

/// A cell to be created (by an insert, a new notebook or an import). Outputs,
/// execution count and attachments exist for imports; REST/WebSocket inserts
/// leave them empty.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCell {
    /// Client-chosen id, honoured when given; generated when `None`.
    pub id: Option<CellId>,
    /// Code, markdown or raw.
    pub cell_type: CellType,
    /// The text.
    pub source: String,
    /// nbformat cell metadata.
    pub metadata: Map<String, Value>,
    /// nbformat outputs (dropped for non-code cells).
    pub outputs: Vec<Value>,
    /// nbformat execution count (dropped for non-code cells).
    pub execution_count: Option<i64>,
    /// nbformat attachments, kept for .ipynb round trips.
    pub attachments: Option<Value>,
}

impl NewCell {
    /// A plain cell with empty metadata and no outputs: what REST and WebSocket
    /// inserts create.
    pub fn new(cell_type: CellType, source: impl Into<String>) -> Self {
        Self {
            id: None,
            cell_type,
            source: source.into(),
            metadata: Map::new(),
            outputs: Vec::new(),
            execution_count: None,
            attachments: None,
        }
    }

    /// The same cell with a client-chosen id.
    pub fn with_id(mut self, id: CellId) -> Self {
        self.id = Some(id);
        self
    }

    /// The stored cell: id generated when absent, version 1, non-code cells
    /// without outputs.
    pub fn into_cell(self) -> Cell {
        let mut cell = Cell {
            id: self.id.unwrap_or_else(CellId::generate),
            cell_type: self.cell_type,
            source: self.source,
            metadata: self.metadata,
            outputs: self.outputs,
            execution_count: self.execution_count,
            attachments: self.attachments,
            version: 1,
        };
        cell.normalize();
        cell
    }
}

/// An op as it committed, with server-filled fields. This is the `op` object of
/// WebSocket `{"type":"op"}` events and what the op log stores (as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AppliedOp {
    /// A cell was inserted at `index`.
    #[serde(rename = "cell.insert")]
    CellInsert {
        /// Where it now is.
        index: usize,
        /// The full new cell (id, version 1).
        cell: Cell,
    },
    /// A cell changed; only the fields the op set are present. A `cell_type`
    /// change also reset outputs/execution count (see [`update_cell`]).
    #[serde(rename = "cell.update")]
    CellUpdate {
        /// Which cell.
        cell_id: CellId,
        /// The cell's version after the change.
        cell_version: i64,
        /// New source.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        /// New type.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cell_type: Option<CellType>,
        /// New metadata (whole object).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata: Option<Map<String, Value>>,
    },
    /// A cell was removed.
    #[serde(rename = "cell.delete")]
    CellDelete {
        /// Which cell.
        cell_id: CellId,
    },
    /// A cell moved to `index` (its position after the move).
    #[serde(rename = "cell.move")]
    CellMove {
        /// Which cell.
        cell_id: CellId,
        /// Its new position.
        index: usize,
    },
    /// The notebook was renamed.
    #[serde(rename = "notebook.rename")]
    NotebookRename {
        /// The new title.
        title: String,
    },
}

/// A committed, durable change: what `apply` returns and what is broadcast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Committed {
    /// The notebook changed.
    pub notebook_id: NotebookId,
    /// The notebook's version after this op (the op's version).
    pub version: i64,
    /// Who made the change.
    pub author: UserId,
    /// What changed.
    pub op: AppliedOp,
    /// The cell after an insert or update (what REST returns). Always set by
    /// `apply`; ops read back from the op log carry it only for inserts.
    pub cell: Option<Cell>,
    /// Commit time.
    pub at: DateTime<Utc>,
}

/// Why an op was refused. Nothing was changed when one of these is returned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpError {
    /// The cell id is not in this notebook (404).
    #[error("cell not found")]
    CellNotFound,
    /// `base_version` is not the cell's current version (409 with `current`).
    #[error("the cell was changed by someone else")]
    Conflict {
        /// The cell as it is now.
        current: Box<Cell>,
    },
    /// A client-chosen cell id is already used in this notebook (409).
    #[error("a cell with this id already exists")]
    DuplicateCellId,
    /// An insert/move index past the end (400).
    #[error("index out of range")]
    IndexOutOfRange,
    /// The notebook would exceed `max_cells`.
    #[error("too many cells")]
    TooManyCells,
    /// Title longer than `max_title_chars`.
    #[error("title too long")]
    TitleTooLong,
    /// Source larger than `max_source_bytes`.
    #[error("cell source too large")]
    SourceTooLarge,
    /// Any other invalid op; the message is client-safe.
    #[error("{0}")]
    Invalid(&'static str),
}

/// Checks what needs no stored state: title and source sizes, a non-empty
/// title, an update that changes something. Stores call it first in `apply`.
pub fn validate(op: &Op, limits: &Limits) -> Result<(), OpError> {
    match op {
        Op::CellInsert { cell, .. } => validate_source(&cell.source, limits),
        Op::CellUpdate {
            source,
            cell_type,
            metadata,
            ..
        } => {
            if source.is_none() && cell_type.is_none() && metadata.is_none() {
                return Err(OpError::Invalid(
                    "an update must set source, cell_type or metadata",
                ));
            }
            source
                .as_deref()
                .map_or(Ok(()), |s| validate_source(s, limits))
        }
        Op::CellDelete { .. } | Op::CellMove { .. } => Ok(()),
        Op::NotebookRename { title } => validate_title(title, limits),
    }
}

/// A title must have something besides whitespace and at most
/// `max_title_chars` characters.
pub fn validate_title(title: &str, limits: &Limits) -> Result<(), OpError> {
    if title.trim().is_empty() {
        return Err(OpError::Invalid("title must not be empty"));
    }
    if title.chars().count() > limits.max_title_chars {
        return Err(OpError::TitleTooLong);
    }
    Ok(())
}

/// A source may have at most `max_source_bytes` UTF-8 bytes.
pub fn validate_source(source: &str, limits: &Limits) -> Result<(), OpError> {
    if source.len() > limits.max_source_bytes {
        return Err(OpError::SourceTooLarge);
    }
    Ok(())
}

/// Checks the cells of a new notebook (create / import): count, sizes and
/// unique client-chosen ids.
pub fn validate_new_cells(cells: &[NewCell], limits: &Limits) -> Result<(), OpError> {
    if cells.len() > limits.max_cells {
        return Err(OpError::TooManyCells);
    }
    let mut seen = std::collections::HashSet::new();
    for cell in cells {
        validate_source(&cell.source, limits)?;
        if let Some(id) = &cell.id {
            if !seen.insert(id.as_str()) {
                return Err(OpError::DuplicateCellId);
            }
        }
    }
    Ok(())
}

/// Where an insert lands in a notebook of `len` cells: `requested` (which may
/// equal `len`) or the end; refuses a notebook already at `max_cells`.
pub fn insert_index(
    requested: Option<usize>,
    len: usize,
    limits: &Limits,
) -> Result<usize, OpError> {
    if len >= limits.max_cells {
        return Err(OpError::TooManyCells);
    }
    match requested {
        None => Ok(len),
        Some(i) if i <= len => Ok(i),
        Some(_) => Err(OpError::IndexOutOfRange),
    }
}

/// Checks a move target: the cell's position after the move, `< len`.
pub fn move_index(index: usize, len: usize) -> Result<usize, OpError> {
    if index < len {
        Ok(index)
    } else {
        Err(OpError::IndexOutOfRange)
    }
}

/// Applies an update to `current`: checks `base_version` (a mismatch is a
/// [`OpError::Conflict`] carrying `current`), sets the given fields, bumps the
/// cell version by 1. Changing the type to a non-code type clears outputs and
/// execution count; changing it to code starts with no outputs. Returns the new
/// cell and the op to record.
pub fn update_cell(
    current: &Cell,
    base_version: Option<i64>,
    source: Option<String>,
    cell_type: Option<CellType>,
    metadata: Option<Map<String, Value>>,
) -> Result<(Cell, AppliedOp), OpError> {
    if base_version.is_some_and(|v| v != current.version) {
        return Err(OpError::Conflict {
            current: Box::new(current.clone()),
        });
    }
    let mut cell = current.clone();
    if let Some(s) = &source {
        cell.source.clone_from(s);
    }
    if let Some(t) = cell_type {
        if t != cell.cell_type {
            cell.cell_type = t;
            cell.outputs.clear();
            cell.execution_count = None;
        }
    }
    if let Some(m) = &metadata {
        cell.metadata.clone_from(m);
    }
    cell.version = current.version + 1;
    let op = AppliedOp::CellUpdate {
        cell_id: cell.id.clone(),
        cell_version: cell.version,
        source,
        cell_type,
        metadata,
    };
    Ok((cell, op))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(s: &str) -> CellId {
        CellId::parse(s).unwrap()
    }

    fn code_cell() -> Cell {
        Cell {
            id: id("c"),
            cell_type: CellType::Code,
            source: "1".into(),
            metadata: Map::new(),
            outputs: vec![json!({"output_type": "execute_result"})],
            execution_count: Some(1),
            attachments: None,
            version: 3,
        }
    }

    #[test]
    fn validate_title_rules() {
        let l = Limits::default();
        assert!(validate_title("ok", &l).is_ok());
        assert_eq!(
            validate_title("  ", &l),
            Err(OpError::Invalid("title must not be empty"))
        );
        assert!(validate_title(&"é".repeat(200), &l).is_ok());
        assert_eq!(
            validate_title(&"é".repeat(201), &l),
            Err(OpError::TitleTooLong)
        );
    }

    #[test]
    fn validate_source_counts_bytes() {
        let l = Limits {
            max_source_bytes: 4,
            ..Limits::default()
        };
        assert!(validate_source("abcd", &l).is_ok());
        assert_eq!(validate_source("ééé", &l), Err(OpError::SourceTooLarge));
    }

    #[test]
    fn validate_ops() {
        let l = Limits {
            max_source_bytes: 3,
            ..Limits::default()
        };
        let big = Op::CellInsert {
            index: None,
            cell: NewCell::new(CellType::Code, "abcd"),
        };
        assert_eq!(validate(&big, &l), Err(OpError::SourceTooLarge));
        let empty_update = Op::CellUpdate {
            cell_id: id("c"),
            base_version: Some(1),
            source: None,
            cell_type: None,
            metadata: None,
        };
        assert!(matches!(
            validate(&empty_update, &l),
            Err(OpError::Invalid(_))
        ));
        let rename = Op::NotebookRename { title: "".into() };
        assert!(matches!(validate(&rename, &l), Err(OpError::Invalid(_))));
        let mv = Op::CellMove {
            cell_id: id("c"),
            index: 7,
        };
        assert_eq!(validate(&mv, &l), Ok(()));
    }

    #[test]
    fn new_cells_checks() {
        let l = Limits {
            max_cells: 2,
            ..Limits::default()
        };
        let a = NewCell::new(CellType::Code, "").with_id(id("a"));
        assert_eq!(
            validate_new_cells(&[a.clone(), a.clone()], &l),
            Err(OpError::DuplicateCellId)
        );
        assert_eq!(
            validate_new_cells(&[a.clone(), a.clone(), a], &l),
            Err(OpError::TooManyCells)
        );
        assert!(validate_new_cells(&[], &l).is_ok());
    }

    #[test]
    fn insert_index_rules() {
        let l = Limits {
            max_cells: 3,
            ..Limits::default()
        };
        assert_eq!(insert_index(None, 2, &l), Ok(2));
        assert_eq!(insert_index(Some(2), 2, &l), Ok(2));
        assert_eq!(insert_index(Some(0), 2, &l), Ok(0));
        assert_eq!(insert_index(Some(3), 2, &l), Err(OpError::IndexOutOfRange));
        assert_eq!(insert_index(None, 3, &l), Err(OpError::TooManyCells));
    }

    #[test]
    fn move_index_rules() {
        assert_eq!(move_index(0, 1), Ok(0));
        assert_eq!(move_index(1, 1), Err(OpError::IndexOutOfRange));
    }

    #[test]
    fn into_cell_fills_and_normalizes() {
        let mut n = NewCell::new(CellType::Markdown, "# hi");
        n.outputs = vec![json!(1)];
        n.execution_count = Some(4);
        let c = n.into_cell();
        assert_eq!(c.version, 1);
        assert_eq!(c.id.as_str().len(), 32);
        assert!(c.outputs.is_empty() && c.execution_count.is_none());
        let kept = NewCell::new(CellType::Code, "")
            .with_id(id("mine"))
            .into_cell();
        assert_eq!(kept.id, id("mine"));
    }

    #[test]
    fn update_conflict_carries_current() {
        let cur = code_cell();
        let err = update_cell(&cur, Some(2), Some("x".into()), None, None).unwrap_err();
        assert_eq!(
            err,
            OpError::Conflict {
                current: Box::new(cur.clone())
            }
        );
        assert!(update_cell(&cur, None, Some("x".into()), None, None).is_ok());
    }

    #[test]
    fn update_source_keeps_outputs_and_bumps_version() {
        let cur = code_cell();
        let (c, op) = update_cell(&cur, Some(3), Some("2".into()), None, None).unwrap();
        assert_eq!((c.source.as_str(), c.version), ("2", 4));
        assert_eq!(c.outputs, cur.outputs);
        assert_eq!(
            serde_json::to_value(op).unwrap(),
            json!({"type": "cell.update", "cell_id": "c", "cell_version": 4, "source": "2"})
        );
    }

    #[test]
    fn update_type_resets_outputs() {
        let cur = code_cell();
        let (md, _) = update_cell(&cur, None, None, Some(CellType::Markdown), None).unwrap();
        assert!(md.outputs.is_empty() && md.execution_count.is_none());
        let (back, _) = update_cell(&md, None, None, Some(CellType::Code), None).unwrap();
        assert_eq!((back.outputs.len(), back.execution_count), (0, None));
        let (same, _) = update_cell(&cur, None, None, Some(CellType::Code), None).unwrap();
        assert_eq!(same.outputs, cur.outputs);
    }

    #[test]
    fn update_metadata_replaces_whole_object() {
        let mut cur = code_cell();
        cur.metadata.insert("a".into(), json!(1));
        let mut m = Map::new();
        m.insert("b".into(), json!(2));
        let (c, _) = update_cell(&cur, None, None, None, Some(m.clone())).unwrap();
        assert_eq!(c.metadata, m);
    }

    #[test]
    fn applied_op_json_shapes_round_trip() {
        let cases = [
            (
                AppliedOp::CellInsert {
                    index: 0,
                    cell: code_cell(),
                },
                json!({"type": "cell.insert", "index": 0, "cell": serde_json::to_value(code_cell()).unwrap()}),
            ),
            (
                AppliedOp::CellDelete { cell_id: id("c") },
                json!({"type": "cell.delete", "cell_id": "c"}),
            ),
            (
                AppliedOp::CellMove {
                    cell_id: id("c"),
                    index: 2,
                },
                json!({"type": "cell.move", "cell_id": "c", "index": 2}),
            ),
            (
                AppliedOp::NotebookRename { title: "t".into() },
                json!({"type": "notebook.rename", "title": "t"}),
            ),
            (
                AppliedOp::CellUpdate {
                    cell_id: id("c"),
                    cell_version: 2,
                    source: None,
                    cell_type: Some(CellType::Raw),
                    metadata: Some(Map::new()),
                },
                json!({"type": "cell.update", "cell_id": "c", "cell_version": 2, "cell_type": "raw", "metadata": {}}),
            ),
        ];
        for (op, want) in cases {
            let v = serde_json::to_value(&op).unwrap();
            assert_eq!(v, want);
            assert_eq!(serde_json::from_value::<AppliedOp>(v).unwrap(), op);
        }
        assert!(serde_json::from_value::<AppliedOp>(json!({"type": "cell.nuke"})).is_err());
    }

    #[test]
    fn committed_round_trips() {
        let c = Committed {
            notebook_id: NotebookId::new(),
            version: 7,
            author: UserId::parse("user_1").unwrap(),
            op: AppliedOp::NotebookRename { title: "x".into() },
            cell: None,
            at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(serde_json::from_value::<Committed>(v).unwrap(), c);
    }
}
