//! nbformat's published v4.5 JSON schema, checked against every imported
//! notebook in the form [`export`](super::export) will write it, so whatever
//! import accepts exports as a document `nbformat.validate` accepts.
//!
//! The schema file is nbformat's own `nbformat/v4/nbformat.v4.5.schema.json`,
//! verbatim (BSD 3-Clause, see `tests/fixtures/nbformat/`). Cells are checked
//! one at a time against the definition of their type, so a refusal can name
//! the cell and the field; the metadata is checked with the top-level schema.

use std::sync::LazyLock;

use jsonschema::paths::LocationSegment;
use jsonschema::Validator;
use serde_json::{json, Map, Value};

use super::{IpynbError, NBFORMAT, NBFORMAT_MINOR};
use crate::notebook::CellType;

/// nbformat 4.5's schema, as published.
const SCHEMA: &str = include_str!("nbformat.v4.5.schema.json");

/// The fields of a cell a refusal may name; anything else is "content".
const CELL_FIELDS: [&str; 7] = [
    "attachments",
    "cell_type",
    "execution_count",
    "id",
    "metadata",
    "outputs",
    "source",
];

/// One validator per question asked: the whole document (used for its
/// metadata, with no cells) and each cell type's definition.
struct Validators {
    notebook: Validator,
    code: Validator,
    markdown: Validator,
    raw: Validator,
}

static VALIDATORS: LazyLock<Validators> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(SCHEMA).expect("the embedded schema is JSON");
    let definition = |name: &str| {
        let mut one = schema.clone();
        one.as_object_mut()
            .expect("the schema is an object")
            .retain(|key, _| key == "$schema" || key == "definitions");
        one["allOf"] = json!([{ "$ref": format!("#/definitions/{name}") }]);
        compile(&one)
    };
    Validators {
        notebook: compile(&schema),
        code: definition("code_cell"),
        markdown: definition("markdown_cell"),
        raw: definition("raw_cell"),
    }
});

/// The schema is a constant of this program; failing to compile it is a bug
/// that the unit tests below catch.
fn compile(schema: &Value) -> Validator {
    jsonschema::draft4::new(schema).expect("nbformat's schema compiles")
}

/// Checks the top-level metadata (inside an otherwise empty 4.5 document).
pub(super) fn check_metadata(metadata: &Map<String, Value>) -> Result<(), IpynbError> {
    let doc = json!({
        "cells": [], "metadata": metadata,
        "nbformat": NBFORMAT, "nbformat_minor": NBFORMAT_MINOR,
    });
    VALIDATORS
        .notebook
        .validate(&doc)
        .map_err(|_| IpynbError::Schema {
            cell: None,
            field: "metadata",
        })
}

/// Checks one exported cell; `index` is its position, for the message.
pub(super) fn check_cell(
    index: usize,
    cell_type: CellType,
    exported: &Value,
) -> Result<(), IpynbError> {
    let validators = &*VALIDATORS;
    let validator = match cell_type {
        CellType::Code => &validators.code,
        CellType::Markdown => &validators.markdown,
        CellType::Raw => &validators.raw,
    };
    validator.validate(exported).map_err(|error| {
        let first = error.instance_path().segments().next();
        let field = match first {
            Some(LocationSegment::Property(name)) => CELL_FIELDS
                .into_iter()
                .find(|f| *f == name.as_ref())
                .unwrap_or("content"),
            _ => "content",
        };
        IpynbError::Schema {
            cell: Some(index),
            field,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(outputs: Value, metadata: Value) -> Value {
        json!({"cell_type": "code", "execution_count": null, "id": "a", "metadata": metadata,
               "outputs": outputs, "source": []})
    }

    #[test]
    fn valid_cells_pass() {
        let stream = json!([{"name": "stdout", "output_type": "stream", "text": ["hi\n"]}]);
        assert_eq!(
            check_cell(0, CellType::Code, &code(stream, json!({}))),
            Ok(())
        );
        let md = json!({"cell_type": "markdown", "id": "m", "metadata": {}, "source": "x",
                        "attachments": {"a.png": {"image/png": "iVBOR"}}});
        assert_eq!(check_cell(0, CellType::Markdown, &md), Ok(()));
        let raw = json!({"cell_type": "raw", "id": "r", "metadata": {"format": "text/html"},
                         "source": []});
        assert_eq!(check_cell(0, CellType::Raw, &raw), Ok(()));
    }

    #[test]
    fn a_refusal_names_the_cell_and_field() {
        let bad_output = code(
            json!([{"output_type": "stream", "text": "no name"}]),
            json!({}),
        );
        assert_eq!(
            check_cell(2, CellType::Code, &bad_output)
                .unwrap_err()
                .to_string(),
            "cell 2: invalid outputs (nbformat 4.5 schema)"
        );
        let bad_meta = code(json!([]), json!({"collapsed": "yes"}));
        assert_eq!(
            check_cell(0, CellType::Code, &bad_meta).unwrap_err(),
            IpynbError::Schema {
                cell: Some(0),
                field: "metadata"
            }
        );
    }

    #[test]
    fn metadata_is_checked_against_the_notebook_schema() {
        let ok = json!({"kernelspec": {"name": "python3", "display_name": "Python 3"}, "x": 1});
        assert_eq!(check_metadata(ok.as_object().unwrap()), Ok(()));
        let bad = json!({"kernelspec": "python3"});
        assert_eq!(
            check_metadata(bad.as_object().unwrap())
                .unwrap_err()
                .to_string(),
            "invalid metadata (nbformat 4.5 schema)"
        );
    }
}
