//! Jupyter notebook files (.ipynb) in and out.
//!
//! [`import`] turns an uploaded document into the cells and metadata a store
//! creates a notebook from; [`export`] turns a stored [`Notebook`] back into an
//! nbformat 4.5 document. Both are pure (no I/O) and the pair round-trips: for a
//! 4.5 document whose sources are in Jupyter's list-of-lines form,
//! `export(import(x))` equals `x`.
//!
//! Import reads what Jupyter reads: nbformat 4.x of any minor version, and
//! nbformat 3 and 2, which are upgraded to 4.5 the way `nbformat.v4.convert`
//! does (see [`v3`]). A document from a newer 4.x minor (4.6 and up) is read as
//! nbformat reads one, leniently: a cell of a type 4.5 does not know is kept as
//! a raw cell with its source, and everything else it held (its `cell_type`
//! first) is kept in its metadata under `unrecognized_cell`; an output of an
//! unknown type becomes an empty `display_data` holding the original under
//! `metadata.unrecognized_output`; fields 4.5 does not define are dropped.
//!
//! Import reads untrusted bytes, so every field is checked for its JSON type
//! and a malformed document is an [`IpynbError`] (a 400 whose message is safe
//! to show), never a panic. Things the model cannot hold exactly are handled
//! as Jupyter does: a `source` string or list of strings is stored as one
//! string and exported as a list of lines; missing, invalid or duplicated cell
//! ids (nbformat < 4.5 has none) are replaced by generated ones. Outputs,
//! metadata and attachments are kept verbatim, as Jupyter keeps them: a
//! notebook whose metadata breaks nbformat's schema opens (Jupyter logs the
//! error and opens it too) and exports with that metadata unchanged.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::model::{Cell, CellId, CellType, Notebook};
use super::ops::NewCell;

mod v3;

/// The nbformat major version read and written.
pub const NBFORMAT: i64 = 4;
/// The nbformat minor version written.
pub const NBFORMAT_MINOR: i64 = 5;

/// Why an uploaded document was refused. The messages are client-safe: they
/// name the problem and, for cell problems, the cell's 0-based position, but
/// never echo the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpynbError {
    /// The bytes are not a JSON document.
    #[error("not JSON")]
    NotJson,
    /// The document is JSON but not an object.
    #[error("not a notebook: the document is not a JSON object")]
    NotAnObject,
    /// `nbformat` / `nbformat_minor` are missing or not non-negative integers.
    #[error("not a notebook: {0} is missing or not a non-negative integer")]
    BadVersionField(&'static str),
    /// A major version other than 2, 3 or 4.
    #[error("nbformat {0} is not supported (need 4.x, or 3 or 2 to upgrade)")]
    UnsupportedVersion(i64),
    /// A top-level field has the wrong JSON type (e.g. `cells` is not a list).
    #[error("{0}")]
    BadField(&'static str),
    /// One cell is malformed; `index` is its 0-based position in `cells`.
    #[error("cell {index}: {problem}")]
    BadCell {
        /// Position of the cell in the document's `cells` list.
        index: usize,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// What an import yields: enough for a store to create the notebook.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The top-level `metadata.title`, when it is a non-blank string (trimmed).
    /// It also stays in `metadata`, so the export is unchanged.
    pub title: Option<String>,
    /// The top-level metadata, verbatim (kernelspec, language_info, ...).
    pub metadata: Map<String, Value>,
    /// The cells in order. Every cell has an id (honoured or generated) and
    /// the ids are unique.
    pub cells: Vec<NewCell>,
}

// ---------------------------------------------------------------------------
// Export

/// The notebook as an nbformat 4.5 document:
/// `{"cells", "metadata", "nbformat": 4, "nbformat_minor": 5}`, keys in the
/// sorted order Jupyter writes. Cell ids are the REST ids; the top-level
/// metadata is exactly what was imported (nothing is added, not even the title).
pub fn export(notebook: &Notebook) -> Value {
    let cells: Vec<Value> = notebook.cells.iter().map(export_cell).collect();
    let mut doc = Map::new();
    doc.insert("cells".into(), Value::Array(cells));
    doc.insert(
        "metadata".into(),
        Value::Object(notebook.meta.metadata.clone()),
    );
    doc.insert("nbformat".into(), NBFORMAT.into());
    doc.insert("nbformat_minor".into(), NBFORMAT_MINOR.into());
    Value::Object(doc)
}

/// One cell: `attachments` (markdown/raw, when present), `cell_type`,
/// `execution_count` (code), `id`, `metadata`, `outputs` (code), `source`.
fn export_cell(cell: &Cell) -> Value {
    let code = cell.cell_type.is_code();
    let mut out = Map::new();
    if let (false, Some(attachments)) = (code, &cell.attachments) {
        out.insert("attachments".into(), attachments.clone());
    }
    out.insert("cell_type".into(), cell.cell_type.as_str().into());
    if code {
        out.insert("execution_count".into(), cell.execution_count.into());
    }
    out.insert("id".into(), cell.id.as_str().into());
    out.insert("metadata".into(), Value::Object(cell.metadata.clone()));
    if code {
        out.insert("outputs".into(), Value::Array(cell.outputs.clone()));
    }
    let lines = split_lines(&cell.source)
        .into_iter()
        .map(Value::from)
        .collect();
    out.insert("source".into(), Value::Array(lines));
    Value::Object(out)
}

/// Splits text into lines the way Jupyter stores multiline strings (Python's
/// `str.splitlines(True)`, used by nbformat when writing): each line keeps its
/// terminator, the last line may lack one, and empty text is no lines.
///
/// Terminators are those of Python: `\n`, `\r\n`, `\r`, `\x0b`, `\x0c`,
/// `\x1c`, `\x1d`, `\x1e`, `\u{85}`, `\u{2028}`, `\u{2029}`. Joining the
/// result gives back `text`.
pub fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if !is_line_break(c) {
            continue;
        }
        let mut end = i + c.len_utf8();
        if c == '\r' {
            if let Some(&(j, '\n')) = chars.peek() {
                end = j + 1;
                chars.next();
            }
        }
        lines.push(&text[start..end]);
        start = end;
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// Whether Python's `str.splitlines` ends a line at `c`.
fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r'
            | '\u{0b}'
            | '\u{0c}'
            | '\u{1c}'
            | '\u{1d}'
            | '\u{1e}'
            | '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

// ---------------------------------------------------------------------------
// Import

/// Reads an nbformat 4.x document (any minor version; 4.0-4.4 have no cell
/// ids, 4.6 and up are read leniently, see the module docs) or an nbformat 3
/// or 2 document, upgraded to 4.5. A leading UTF-8 byte order mark is ignored.
/// Refuses other major versions and anything malformed with an [`IpynbError`].
pub fn import(bytes: &[u8]) -> Result<Imported, IpynbError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let doc: Value = serde_json::from_slice(bytes).map_err(|_| IpynbError::NotJson)?;
    let Value::Object(doc) = doc else {
        return Err(IpynbError::NotAnObject);
    };
    let (metadata, raw_cells, future) = match read_version(&doc)? {
        (2 | 3, _) => {
            let (metadata, cells) = v3::upgrade(doc)?;
            (metadata, cells, false)
        }
        (NBFORMAT, minor) => {
            let (metadata, cells) = v4_parts(doc)?;
            (metadata, cells, minor > NBFORMAT_MINOR)
        }
        (major, _) => return Err(IpynbError::UnsupportedVersion(major)),
    };
    let mut cells = raw_cells
        .into_iter()
        .enumerate()
        .map(|(index, cell)| {
            import_cell(cell, future).map_err(|problem| IpynbError::BadCell { index, problem })
        })
        .collect::<Result<Vec<_>, _>>()?;
    assign_ids(&mut cells);
    Ok(Imported {
        title: title_of(&metadata),
        metadata,
        cells,
    })
}

/// `(nbformat, nbformat_minor)`. Both must be non-negative integers; only
/// nbformat 4 requires the minor (nbformat < 4 files often lack it; it is
/// then 0, as in nbformat's `get_version`).
fn read_version(doc: &Map<String, Value>) -> Result<(i64, i64), IpynbError> {
    let major = version_field(doc, "nbformat")?;
    let minor = if major < NBFORMAT && !doc.contains_key("nbformat_minor") {
        0
    } else {
        version_field(doc, "nbformat_minor")?
    };
    Ok((major, minor))
}

/// A JSON integer as JSON Schema (and our OpenAPI document) defines one: any
/// number without a fractional part, `4.0` included, within i64.
fn whole_number(v: &Value) -> Option<i64> {
    // Beyond 2^53 a float is not an exact integer any more.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() <= EXACT)
            .map(|f| f as i64)
    })
}

/// A required non-negative integer field.
fn version_field(doc: &Map<String, Value>, name: &'static str) -> Result<i64, IpynbError> {
    doc.get(name)
        .and_then(whole_number)
        .filter(|v| *v >= 0)
        .ok_or(IpynbError::BadVersionField(name))
}

/// A 4.x document's metadata (missing means empty) and cells (required).
/// Other top-level fields (a newer minor may add some) are dropped.
fn v4_parts(mut doc: Map<String, Value>) -> Result<(Map<String, Value>, Vec<Value>), IpynbError> {
    let metadata = match doc.remove("metadata") {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(IpynbError::BadField("metadata must be an object")),
    };
    let cells = match doc.remove("cells") {
        Some(Value::Array(cells)) => cells,
        Some(_) => return Err(IpynbError::BadField("cells must be a list")),
        None => return Err(IpynbError::BadField("cells is missing")),
    };
    Ok((metadata, cells))
}

/// `metadata.title` when it is a string with something other than whitespace.
fn title_of(metadata: &Map<String, Value>) -> Option<String> {
    let title = metadata.get("title")?.as_str()?.trim();
    (!title.is_empty()).then(|| title.to_owned())
}

/// One cell; the id is read later by [`assign_ids`] (it is left in `id` as
/// `Some` only when valid). Fields a cell type does not have are ignored.
/// `future` (a minor newer than 4.5) keeps unknown cell and output types
/// instead of refusing them.
fn import_cell(cell: Value, future: bool) -> Result<NewCell, &'static str> {
    let Value::Object(mut cell) = cell else {
        return Err("not an object");
    };
    let cell_type = match cell.get("cell_type") {
        Some(Value::String(t)) => match t.parse::<CellType>() {
            Ok(known) => known,
            Err(_) if future => keep_unrecognized_cell(&mut cell)?,
            Err(_) => return Err("unknown cell_type"),
        },
        Some(_) => return Err("cell_type must be a string"),
        None => return Err("cell_type is missing"),
    };
    let id = cell
        .get("id")
        .and_then(Value::as_str)
        .and_then(|s| CellId::parse(s).ok());
    let source = join_source(cell.remove("source"))?;
    let metadata = match cell.remove("metadata") {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err("metadata must be an object"),
    };
    let mut new = NewCell {
        id,
        metadata,
        ..NewCell::new(cell_type, source)
    };
    if cell_type.is_code() {
        new.outputs = take_outputs(&mut cell, future)?;
        new.execution_count = take_execution_count(&cell)?;
    } else {
        new.attachments = take_attachments(&mut cell)?;
    }
    Ok(new)
}

/// The fields every cell type shares, which a raw cell keeps as its own.
const SHARED_CELL_FIELDS: [&str; 4] = ["attachments", "id", "metadata", "source"];

/// Turns a cell of a type 4.5 does not know into a raw cell: its shared
/// fields stay, everything else (its `cell_type` first) moves into
/// `metadata.unrecognized_cell`, so nothing it held is lost.
fn keep_unrecognized_cell(cell: &mut Map<String, Value>) -> Result<CellType, &'static str> {
    let (shared, original): (Map<String, Value>, Map<String, Value>) = std::mem::take(cell)
        .into_iter()
        .partition(|(key, _)| SHARED_CELL_FIELDS.contains(&key.as_str()));
    *cell = shared;
    let metadata = cell
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(metadata) = metadata else {
        return Err("metadata must be an object");
    };
    metadata.insert("unrecognized_cell".into(), Value::Object(original));
    Ok(CellType::Raw)
}

/// `source` as one string: a string, or a list of strings joined as they are
/// (each line already ends with its newline). Missing means empty.
fn join_source(source: Option<Value>) -> Result<String, &'static str> {
    const BAD: &str = "source must be a string or a list of strings";
    match source {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s),
        Some(Value::Array(lines)) => lines
            .iter()
            .try_fold(String::new(), |mut text, line| {
                text.push_str(line.as_str()?);
                Some(text)
            })
            .ok_or(BAD),
        Some(_) => Err(BAD),
    }
}

/// A code cell's `outputs`, verbatim; each must be an object with a string
/// `output_type`. Missing means none. `future`: see [`future_output`].
fn take_outputs(cell: &mut Map<String, Value>, future: bool) -> Result<Vec<Value>, &'static str> {
    let outputs = match cell.remove("outputs") {
        None => return Ok(Vec::new()),
        Some(Value::Array(outputs)) => outputs,
        Some(_) => return Err("outputs must be a list"),
    };
    let well_formed = |o: &Value| o.get("output_type").is_some_and(Value::is_string);
    if !outputs.iter().all(well_formed) {
        return Err("each output must be an object with an output_type");
    }
    Ok(if future {
        outputs.into_iter().map(future_output).collect()
    } else {
        outputs
    })
}

/// The fields nbformat 4.5 defines for each output type.
const OUTPUT_FIELDS: [(&str, &[&str]); 4] = [
    (
        "execute_result",
        &["data", "execution_count", "metadata", "output_type"],
    ),
    ("display_data", &["data", "metadata", "output_type"]),
    ("stream", &["name", "output_type", "text"]),
    ("error", &["ename", "evalue", "output_type", "traceback"]),
];

/// An output from a minor newer than 4.5, in 4.5 terms: a known type keeps
/// the fields 4.5 defines for it; an unknown type becomes a `display_data`
/// with no data that holds the original in `metadata.unrecognized_output`.
/// `output` has a string `output_type` (checked by [`take_outputs`]).
fn future_output(output: Value) -> Value {
    let Value::Object(mut fields) = output else {
        return output;
    };
    let kind = fields.get("output_type").and_then(Value::as_str);
    match OUTPUT_FIELDS.iter().find(|(known, _)| Some(*known) == kind) {
        Some((_, keep)) => {
            fields.retain(|key, _| keep.contains(&key.as_str()));
            Value::Object(fields)
        }
        None => serde_json::json!({
            "data": {},
            "metadata": {"unrecognized_output": fields},
            "output_type": "display_data",
        }),
    }
}

/// A code cell's `execution_count`: an integer or null (missing means null).
fn take_execution_count(cell: &Map<String, Value>) -> Result<Option<i64>, &'static str> {
    match cell.get("execution_count") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => whole_number(v)
            .map(Some)
            .ok_or("execution_count must be an integer or null"),
    }
}

/// A markdown/raw cell's `attachments`, verbatim: an object, or absent.
fn take_attachments(cell: &mut Map<String, Value>) -> Result<Option<Value>, &'static str> {
    match cell.remove("attachments") {
        None | Some(Value::Null) => Ok(None),
        Some(a @ Value::Object(_)) => Ok(Some(a)),
        Some(_) => Err("attachments must be an object"),
    }
}

/// Makes every cell's id present and unique: the first cell holding a valid id
/// keeps it; cells without one, or repeating an earlier one, get a fresh id
/// that no cell in the document uses.
fn assign_ids(cells: &mut [NewCell]) {
    let mut taken: HashSet<CellId> = cells.iter().filter_map(|c| c.id.clone()).collect();
    let mut kept: HashSet<CellId> = HashSet::with_capacity(cells.len());
    for cell in cells {
        let keep = cell.id.as_ref().is_some_and(|id| kept.insert(id.clone()));
        if !keep {
            let fresh = fresh_id(&taken);
            taken.insert(fresh.clone());
            cell.id = Some(fresh);
        }
    }
}

/// A generated id not in `taken`.
fn fresh_id(taken: &HashSet<CellId>) -> CellId {
    loop {
        let id = CellId::generate();
        if !taken.contains(&id) {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn split_lines_keeps_newlines() {
        assert_eq!(split_lines("a\nb\n"), ["a\n", "b\n"]);
        assert_eq!(split_lines("a\nb"), ["a\n", "b"]);
        assert_eq!(split_lines("one line"), ["one line"]);
    }

    #[test]
    fn split_lines_empty_and_blank_lines() {
        assert!(split_lines("").is_empty());
        assert_eq!(split_lines("\n"), ["\n"]);
        assert_eq!(split_lines("\n\n"), ["\n", "\n"]);
        assert_eq!(split_lines("a\n\nb"), ["a\n", "\n", "b"]);
    }

    #[test]
    fn split_lines_matches_python_splitlines() {
        assert_eq!(split_lines("a\r\nb\rc\n"), ["a\r\n", "b\r", "c\n"]);
        assert_eq!(split_lines("\r\n\r"), ["\r\n", "\r"]);
        assert_eq!(
            split_lines("x\u{0c}y\u{2028}z"),
            ["x\u{0c}", "y\u{2028}", "z"]
        );
        assert_eq!(split_lines("é\u{85}ü"), ["é\u{85}", "ü"]);
        assert_eq!(split_lines("tab\tstays"), ["tab\tstays"]);
    }

    #[test]
    fn split_lines_joins_back() {
        for text in ["", "a", "a\n", "a\r\n\r\nb", "\u{2029}\u{2029}", "é\nü\r"] {
            assert_eq!(split_lines(text).concat(), text);
        }
    }

    #[test]
    fn join_source_forms() {
        assert_eq!(join_source(None), Ok(String::new()));
        assert_eq!(join_source(Some(json!("x\ny"))), Ok("x\ny".into()));
        assert_eq!(join_source(Some(json!(["x\n", "y"]))), Ok("x\ny".into()));
        assert_eq!(join_source(Some(json!([]))), Ok(String::new()));
        assert!(join_source(Some(json!(["x", 1]))).is_err());
        assert!(join_source(Some(json!(3))).is_err());
        assert!(join_source(Some(json!(null))).is_err());
    }

    #[test]
    fn ids_first_valid_one_wins() {
        let id = |s: &str| Some(CellId::parse(s).unwrap());
        let mut cells: Vec<NewCell> = (0..4).map(|_| NewCell::new(CellType::Code, "")).collect();
        cells[0].id = id("a");
        cells[1].id = id("a");
        cells[3].id = id("b");
        assign_ids(&mut cells);
        let ids: Vec<_> = cells.iter().map(|c| c.id.clone().unwrap()).collect();
        assert_eq!(ids[0], CellId::parse("a").unwrap());
        assert_eq!(ids[3], CellId::parse("b").unwrap());
        let unique: HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), 4);
    }

    #[test]
    fn title_is_trimmed_and_blank_is_none() {
        let meta = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(title_of(&meta(json!({"title": " T "}))), Some("T".into()));
        assert_eq!(title_of(&meta(json!({"title": "  "}))), None);
        assert_eq!(title_of(&meta(json!({"title": 5}))), None);
        assert_eq!(title_of(&meta(json!({}))), None);
    }

    #[test]
    fn error_messages_do_not_echo_input() {
        let doc = br#"{"nbformat":4,"nbformat_minor":5,"metadata":{},
            "cells":[{"cell_type":"<script>","source":""}]}"#;
        let err = import(doc).unwrap_err();
        assert_eq!(err.to_string(), "cell 0: unknown cell_type");
        let v5 = import(br#"{"nbformat":5,"nbformat_minor":0}"#).unwrap_err();
        assert_eq!(
            v5.to_string(),
            "nbformat 5 is not supported (need 4.x, or 3 or 2 to upgrade)"
        );
    }
}
