//! Upgrading nbformat 3 (and 2) documents to the nbformat 4 shape, the way
//! Jupyter's `nbformat.v4.convert.upgrade` does, so course material written
//! before 2015 opens instead of being refused.
//!
//! The result is a list of v4-shaped cell objects plus the notebook metadata;
//! the v4 reader in the parent module then reads them like any 4.x document
//! (type checks, ids). What changes, as in nbformat:
//! worksheets are flattened into one list of cells; code cells lose `language`,
//! `input` becomes `source`, `prompt_number` becomes `execution_count` and
//! `collapsed` moves into the cell metadata; heading cells become markdown
//! `# ...` lines; `html` cells become markdown; outputs are upgraded
//! (`pyout` -> `execute_result`, `pyerr` -> `error`, `stream` -> `name`, the
//! short keys `png`/`text`/`html`/... become MIME types in a `data` bundle).
//! The notebook metadata is kept except `name` and `signature`, which nbformat
//! also drops. nbformat 2 differs from 3 only in details this reader does not
//! depend on (cells may lack `metadata`), so it takes the same path, as
//! nbformat's v2 -> v3 -> v4 chain does.

use serde_json::{Map, Value};

use super::{join_source, split_lines, IpynbError};

/// nbformat 3's short output keys and the MIME types they stand for
/// (`nbformat.v4.convert._mime_map`).
const MIME_ALIASES: [(&str, &str); 8] = [
    ("text", "text/plain"),
    ("html", "text/html"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpeg", "image/jpeg"),
    ("latex", "text/latex"),
    ("json", "application/json"),
    ("javascript", "application/javascript"),
];

/// A v3 document's metadata and its cells in v4 shape, in order. The index in
/// a [`IpynbError::BadCell`] is the position in the flattened list.
pub(super) fn upgrade(
    mut doc: Map<String, Value>,
) -> Result<(Map<String, Value>, Vec<Value>), IpynbError> {
    let mut metadata = match doc.remove("metadata") {
        Some(Value::Object(m)) => m,
        Some(_) => return Err(IpynbError::BadField("metadata must be an object")),
        None => return Err(IpynbError::BadField("metadata is missing")),
    };
    metadata.remove("name");
    metadata.remove("signature");
    let cells = flatten_worksheets(doc.remove("worksheets"))?
        .into_iter()
        .enumerate()
        .map(|(index, cell)| {
            upgrade_cell(cell).map_err(|problem| IpynbError::BadCell { index, problem })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((metadata, cells))
}

/// The cells of every worksheet, one after the other.
fn flatten_worksheets(worksheets: Option<Value>) -> Result<Vec<Value>, IpynbError> {
    const BAD_SHEET: &str = "each worksheet must be an object with a list of cells";
    let sheets = match worksheets {
        Some(Value::Array(sheets)) => sheets,
        Some(_) => return Err(IpynbError::BadField("worksheets must be a list")),
        None => return Err(IpynbError::BadField("worksheets is missing")),
    };
    let mut cells = Vec::new();
    for sheet in sheets {
        match sheet {
            Value::Object(mut sheet) => match sheet.remove("cells") {
                Some(Value::Array(more)) => cells.extend(more),
                _ => return Err(IpynbError::BadField(BAD_SHEET)),
            },
            _ => return Err(IpynbError::BadField(BAD_SHEET)),
        }
    }
    Ok(cells)
}

/// One cell in v4 shape. Cell types nbformat 3 does not have are left as they
/// are, for the v4 reader to refuse.
fn upgrade_cell(cell: Value) -> Result<Value, &'static str> {
    let Value::Object(mut cell) = cell else {
        return Err("not an object");
    };
    if !cell.contains_key("metadata") {
        cell.insert("metadata".into(), Value::Object(Map::new()));
    }
    match cell.get("cell_type").and_then(Value::as_str) {
        Some("code") => upgrade_code_cell(&mut cell)?,
        Some("heading") => heading_to_markdown(&mut cell)?,
        Some("html") => {
            cell.insert("cell_type".into(), "markdown".into());
        }
        _ => {}
    }
    Ok(Value::Object(cell))
}

/// `input` -> `source`, `prompt_number` -> `execution_count`, `collapsed` into
/// the metadata, `language` dropped, outputs upgraded.
fn upgrade_code_cell(cell: &mut Map<String, Value>) -> Result<(), &'static str> {
    cell.remove("language");
    if let Some(collapsed) = cell.remove("collapsed") {
        let Some(Value::Object(metadata)) = cell.get_mut("metadata") else {
            return Err("metadata must be an object");
        };
        metadata.insert("collapsed".into(), collapsed);
    }
    let source = cell.remove("input").unwrap_or_else(|| "".into());
    cell.insert("source".into(), source);
    let count = cell.remove("prompt_number").unwrap_or(Value::Null);
    cell.insert("execution_count".into(), count);
    let outputs = match cell.remove("outputs") {
        None => Vec::new(),
        Some(Value::Array(outputs)) => outputs
            .into_iter()
            .map(upgrade_output)
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("outputs must be a list"),
    };
    cell.insert("outputs".into(), Value::Array(outputs));
    Ok(())
}

/// A heading of level n becomes the markdown line `#`*n + " " + its text, the
/// text's lines joined with spaces (nbformat's `upgrade_cell`).
fn heading_to_markdown(cell: &mut Map<String, Value>) -> Result<(), &'static str> {
    let level = match cell.remove("level") {
        None => 1,
        Some(level) => level
            .as_u64()
            .filter(|l| (1..=6).contains(l))
            .ok_or("a heading level must be an integer from 1 to 6")?,
    };
    let text = join_source(cell.remove("source"))?;
    let single_line: Vec<&str> = split_lines(&text)
        .into_iter()
        .map(|line| line.trim_end_matches(super::is_line_break))
        .collect();
    let hashes = "#".repeat(level as usize);
    let source = format!("{hashes} {}", single_line.join(" "));
    cell.insert("cell_type".into(), "markdown".into());
    cell.insert("source".into(), source.into());
    Ok(())
}

/// One output in v4 shape (nbformat's `upgrade_output`).
fn upgrade_output(output: Value) -> Result<Value, &'static str> {
    const BAD: &str = "each output must be an object with an output_type";
    let Value::Object(mut output) = output else {
        return Err(BAD);
    };
    let kind = output
        .get("output_type")
        .and_then(Value::as_str)
        .ok_or(BAD)?
        .to_owned();
    match kind.as_str() {
        "pyout" | "display_data" => return upgrade_rich_output(output, kind == "pyout"),
        "pyerr" => {
            output.insert("output_type".into(), "error".into());
        }
        "stream" => {
            let name = output.remove("stream").unwrap_or_else(|| "stdout".into());
            output.insert("name".into(), name);
        }
        _ => {}
    }
    Ok(Value::Object(output))
}

/// `pyout` (an `execute_result` with its `prompt_number` as execution count)
/// or `display_data`: every key but `output_type` and `metadata` moves into a
/// `data` bundle under its MIME type; `application/json` data, stored as JSON
/// text in v3, is parsed.
fn upgrade_rich_output(mut output: Map<String, Value>, pyout: bool) -> Result<Value, &'static str> {
    output.remove("output_type");
    let mut metadata = match output.remove("metadata") {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err("output metadata must be an object"),
    };
    to_mime_keys(&mut metadata);
    let count = pyout.then(|| output.remove("prompt_number").unwrap_or(Value::Null));
    let mut data = output;
    to_mime_keys(&mut data);
    if let Some(json) = data.get_mut("application/json") {
        let text = join_source(Some(json.take())).map_err(|_| NOT_JSON)?;
        *json = serde_json::from_str(&text).map_err(|_| NOT_JSON)?;
    }
    data.sort_keys();
    let mut out = Map::new();
    out.insert("data".into(), Value::Object(data));
    let kind = match count {
        Some(count) => {
            out.insert("execution_count".into(), count);
            "execute_result"
        }
        None => "display_data",
    };
    out.insert("metadata".into(), Value::Object(metadata));
    out.insert("output_type".into(), kind.into());
    Ok(Value::Object(out))
}

const NOT_JSON: &str = "an application/json output does not hold JSON text";

/// Renames the v3 short keys of a bundle to their MIME types.
fn to_mime_keys(bundle: &mut Map<String, Value>) {
    for (alias, mime) in MIME_ALIASES {
        if let Some(value) = bundle.remove(alias) {
            bundle.insert(mime.into(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cell(v: Value) -> Value {
        upgrade_cell(v).unwrap()
    }

    #[test]
    fn code_cell_fields_are_renamed() {
        let got = cell(
            json!({"cell_type": "code", "language": "python", "collapsed": true,
            "input": ["a = 1\n", "a"], "prompt_number": 3, "metadata": {"k": 1}, "outputs": []}),
        );
        assert_eq!(
            got,
            json!({"cell_type": "code", "metadata": {"k": 1, "collapsed": true},
                   "source": ["a = 1\n", "a"], "execution_count": 3, "outputs": []})
        );
    }

    #[test]
    fn code_cell_defaults_like_nbformat() {
        let got = cell(json!({"cell_type": "code"}));
        assert_eq!(
            got,
            json!({"cell_type": "code", "metadata": {}, "source": "",
                   "execution_count": null, "outputs": []})
        );
    }

    #[test]
    fn headings_become_one_markdown_line() {
        let got = cell(json!({"cell_type": "heading", "level": 3, "source": ["Two\n", "lines"]}));
        assert_eq!(
            got,
            json!({"cell_type": "markdown", "metadata": {}, "source": "### Two lines"})
        );
        let default = cell(json!({"cell_type": "heading", "source": "T", "metadata": {}}));
        assert_eq!(default["source"], json!("# T"));
        assert!(upgrade_cell(json!({"cell_type": "heading", "level": 9})).is_err());
        assert!(upgrade_cell(json!({"cell_type": "heading", "level": "1"})).is_err());
    }

    #[test]
    fn pyout_becomes_execute_result_with_mime_bundle() {
        let got = upgrade_output(json!({"output_type": "pyout", "prompt_number": 4,
            "text": ["<x>"], "html": "<b>x</b>", "json": "{\"a\": [1]}",
            "metadata": {"png": {"width": 2}}}))
        .unwrap();
        assert_eq!(
            got,
            json!({"data": {"application/json": {"a": [1]}, "text/html": "<b>x</b>",
                            "text/plain": ["<x>"]},
                   "execution_count": 4, "metadata": {"image/png": {"width": 2}},
                   "output_type": "execute_result"})
        );
        let bad = json!({"output_type": "pyout", "json": "{not json"});
        assert_eq!(upgrade_output(bad), Err(NOT_JSON));
    }

    #[test]
    fn display_data_stream_and_pyerr() {
        let display = upgrade_output(json!({"output_type": "display_data", "png": "iVBOR",
            "jpeg": "/9j/", "svg": "<svg/>", "latex": "$x$", "javascript": "1"}))
        .unwrap();
        assert_eq!(
            display,
            json!({"data": {"application/javascript": "1", "image/jpeg": "/9j/",
                            "image/png": "iVBOR", "image/svg+xml": "<svg/>", "text/latex": "$x$"},
                   "metadata": {}, "output_type": "display_data"})
        );
        let stream = upgrade_output(json!({"output_type": "stream", "stream": "stderr",
            "text": "e"}))
        .unwrap();
        assert_eq!(
            stream,
            json!({"output_type": "stream", "text": "e", "name": "stderr"})
        );
        let unnamed = upgrade_output(json!({"output_type": "stream", "text": "o"})).unwrap();
        assert_eq!(unnamed["name"], json!("stdout"));
        let err = upgrade_output(json!({"output_type": "pyerr", "ename": "E", "evalue": "v",
            "traceback": []}))
        .unwrap();
        assert_eq!(err["output_type"], json!("error"));
    }

    #[test]
    fn worksheets_are_flattened_and_metadata_kept() {
        let doc = json!({"metadata": {"name": "n", "signature": "s", "kernel_info": {"a": 1}},
            "worksheets": [{"cells": [{"cell_type": "markdown", "source": "a"}]},
                           {"cells": [{"cell_type": "raw", "source": "b"}]}]});
        let Value::Object(doc) = doc else {
            unreachable!()
        };
        let (metadata, cells) = upgrade(doc).unwrap();
        assert_eq!(Value::Object(metadata), json!({"kernel_info": {"a": 1}}));
        let sources: Vec<_> = cells.iter().map(|c| c["source"].clone()).collect();
        assert_eq!(sources, [json!("a"), json!("b")]);
    }

    #[test]
    fn broken_structure_is_an_error() {
        let upgrade_of = |v: Value| upgrade(v.as_object().unwrap().clone()).unwrap_err();
        let message = |v: Value| upgrade_of(v).to_string();
        assert_eq!(message(json!({"worksheets": []})), "metadata is missing");
        assert_eq!(message(json!({"metadata": {}})), "worksheets is missing");
        assert_eq!(
            message(json!({"metadata": {}, "worksheets": [{"metadata": {}}]})),
            "each worksheet must be an object with a list of cells"
        );
        assert_eq!(
            message(
                json!({"metadata": {}, "worksheets": [{"cells": [{"cell_type": "heading"}]},
                                                          {"cells": [7]}]})
            ),
            "cell 1: not an object"
        );
    }
}
