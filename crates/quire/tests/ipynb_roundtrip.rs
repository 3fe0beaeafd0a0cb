//! Black-box tests of .ipynb import and export (`quire::notebook::ipynb`):
//! exact round trips of a real-world-shaped notebook, cell id repair for older
//! or sloppy files, and refusal (never a panic) of anything that is not an
//! nbformat 4 document or an nbformat 3/2 one to upgrade (nbformat's own test
//! notebooks, through the REST API, are in `ipynb_nbformat.rs`).

use std::collections::HashSet;

use chrono::Utc;
use quire::notebook::ipynb::{export, import, Imported, IpynbError};
use quire::notebook::{CellId, CellType, Notebook, NotebookId, NotebookMeta, UserId};
use serde_json::{json, Value};

const FIXTURE: &[u8] = include_bytes!("fixtures/real_world.ipynb");

/// What a store would build from an import, without a database: cells via
/// `NewCell::into_cell`, the imported metadata untouched.
fn to_notebook(imported: Imported) -> Notebook {
    let now = Utc::now();
    Notebook {
        meta: NotebookMeta {
            id: NotebookId::new(),
            title: imported.title.unwrap_or_else(|| "Untitled".into()),
            owner_id: UserId::parse("user_test").unwrap(),
            created_at: now,
            updated_at: now,
            version: 0,
            epoch: "test".into(),
            metadata: imported.metadata,
        },
        cells: imported.cells.into_iter().map(|c| c.into_cell()).collect(),
    }
}

fn round_trip(bytes: &[u8]) -> Value {
    export(&to_notebook(import(bytes).expect("import")))
}

fn ids(imported: &Imported) -> Vec<CellId> {
    imported
        .cells
        .iter()
        .map(|c| c.id.clone().expect("import fills every id"))
        .collect()
}

fn assert_unique(ids: &[CellId]) {
    let set: HashSet<_> = ids.iter().collect();
    assert_eq!(set.len(), ids.len(), "duplicate ids: {ids:?}");
}

fn doc(minor: i64, cells: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": minor
    }))
    .unwrap()
}

/// Jupyter's on-disk form: one-space indent, non-ASCII kept, trailing newline.
fn jupyter_bytes(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(v, &mut ser).unwrap();
    out.push(b'\n');
    out
}

// ---------------------------------------------------------------------------
// Round trip

#[test]
fn real_world_fixture_round_trips_exactly() {
    let original: Value = serde_json::from_slice(FIXTURE).unwrap();
    assert_eq!(round_trip(FIXTURE), original);
}

#[test]
fn real_world_fixture_round_trips_byte_for_byte_in_jupyter_layout() {
    // Keys come out in Jupyter's sorted order, so the file is identical.
    let exported = jupyter_bytes(&round_trip(FIXTURE));
    assert_eq!(
        String::from_utf8(exported).unwrap(),
        std::str::from_utf8(FIXTURE).unwrap()
    );
}

#[test]
fn real_world_fixture_imports_what_it_says() {
    let imported = import(FIXTURE).unwrap();
    assert_eq!(imported.title.as_deref(), Some("Quarterly sales"));
    assert_eq!(imported.metadata["title"], json!("Quarterly sales"));
    assert_eq!(imported.metadata["kernelspec"]["name"], json!("python3"));

    let types: Vec<_> = imported.cells.iter().map(|c| c.cell_type).collect();
    use CellType::*;
    assert_eq!(types, [Markdown, Code, Code, Code, Code, Raw, Code]);
    let got: Vec<_> = ids(&imported)
        .iter()
        .map(|i| i.as_str().to_owned())
        .collect();
    assert_eq!(
        got,
        [
            "a1b2c3d4",
            "load-data",
            "plot_1",
            "f3e1c0b2-9d8a-4c1e-8f00-123456789abc",
            "boom",
            "raw-cell",
            "empty"
        ]
    );

    let md = &imported.cells[0];
    assert!(md.source.starts_with("# Sales analysis\n\nThis notebook"));
    assert!(md.source.ends_with("* step 2: plot"));
    assert!(md.attachments.as_ref().unwrap()["image.png"]["image/png"].is_string());

    let load = &imported.cells[1];
    assert_eq!(
        load.metadata,
        *json!({"tags": ["hide"], "collapsed": false})
            .as_object()
            .unwrap()
    );
    assert_eq!(load.execution_count, Some(1));
    assert_eq!(
        load.outputs[0]["text"],
        json!(["loaded 4 rows\n", "columns: quarter, revenue\n"])
    );

    let empty = &imported.cells[6];
    assert_eq!((empty.source.as_str(), empty.execution_count), ("", None));
    assert!(empty.outputs.is_empty());
}

#[test]
fn export_uses_the_rest_ids_and_nbformat_4_5() {
    let mut nb =
        to_notebook(import(&doc(0, json!([{"cell_type": "code", "source": "x"}]))).unwrap());
    nb.cells[0].id = CellId::parse("rest-id").unwrap();
    let out = export(&nb);
    assert_eq!(
        (out["nbformat"].clone(), out["nbformat_minor"].clone()),
        (json!(4), json!(5))
    );
    assert_eq!(out["cells"][0]["id"], json!("rest-id"));
    assert_eq!(
        out["metadata"],
        json!({}),
        "nothing is added to metadata, not even the title"
    );
}

#[test]
fn export_shapes_cells_like_nbformat() {
    let bytes = doc(
        5,
        json!([
            {"cell_type": "markdown", "id": "m", "metadata": {}, "source": ""},
            {"cell_type": "raw", "id": "r", "metadata": {}, "source": "a\nb\n",
             "attachments": {}},
            {"cell_type": "code", "id": "c", "metadata": {}, "source": "1"}
        ]),
    );
    let out = round_trip(&bytes);
    assert_eq!(
        out["cells"][0],
        json!({"cell_type": "markdown", "id": "m", "metadata": {}, "source": []})
    );
    assert_eq!(
        out["cells"][1],
        json!({"attachments": {}, "cell_type": "raw", "id": "r", "metadata": {}, "source": ["a\n", "b\n"]})
    );
    assert_eq!(
        out["cells"][2],
        json!({"cell_type": "code", "execution_count": null, "id": "c", "metadata": {},
               "outputs": [], "source": ["1"]})
    );
}

// ---------------------------------------------------------------------------
// Cell ids

#[test]
fn nbformat_4_0_without_ids_gets_valid_unique_ids() {
    let bytes = doc(
        0,
        json!([
            {"cell_type": "markdown", "metadata": {}, "source": ["# T"]},
            {"cell_type": "code", "metadata": {}, "source": [], "outputs": [], "execution_count": null},
            {"cell_type": "code", "metadata": {}, "source": [], "outputs": [], "execution_count": null}
        ]),
    );
    let imported = import(&bytes).unwrap();
    let ids = ids(&imported);
    assert_eq!(ids.len(), 3);
    assert_unique(&ids);
    for id in &ids {
        assert!(CellId::parse(id.as_str()).is_ok());
    }
    let out = export(&to_notebook(imported));
    assert_eq!(out["nbformat_minor"], json!(5));
    assert_eq!(out["cells"][1]["id"], json!(ids[1].as_str()));
}

#[test]
fn every_minor_0_to_5_is_accepted() {
    for minor in 0..=5 {
        assert!(import(&doc(minor, json!([]))).is_ok(), "4.{minor} refused");
    }
}

#[test]
fn duplicated_and_invalid_ids_are_regenerated() {
    let bytes = doc(
        5,
        json!([
            {"cell_type": "code", "id": "same", "source": ""},
            {"cell_type": "code", "id": "same", "source": ""},
            {"cell_type": "code", "id": "not valid!", "source": ""},
            {"cell_type": "code", "id": "x".repeat(65), "source": ""},
            {"cell_type": "code", "id": 7, "source": ""},
            {"cell_type": "code", "id": "", "source": ""},
            {"cell_type": "code", "id": "other", "source": ""}
        ]),
    );
    let ids = ids(&import(&bytes).unwrap());
    assert_unique(&ids);
    assert_eq!(ids[0].as_str(), "same", "the first holder keeps its id");
    assert_eq!(ids[6].as_str(), "other");
    for id in &ids[1..6] {
        assert_eq!(id.as_str().len(), 32, "generated: {id}");
    }
}

// ---------------------------------------------------------------------------
// Lenient input

#[test]
fn string_source_is_accepted_and_exported_as_lines() {
    let bytes = doc(
        5,
        json!([{"cell_type": "code", "id": "c", "source": "a = 1\nb = 2\n"}]),
    );
    let imported = import(&bytes).unwrap();
    assert_eq!(imported.cells[0].source, "a = 1\nb = 2\n");
    let out = export(&to_notebook(imported));
    assert_eq!(out["cells"][0]["source"], json!(["a = 1\n", "b = 2\n"]));
}

#[test]
fn byte_order_mark_is_ignored() {
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(FIXTURE);
    assert_eq!(
        round_trip(&bytes),
        serde_json::from_slice::<Value>(FIXTURE).unwrap()
    );
}

#[test]
fn title_comes_from_metadata_only_when_a_string() {
    let with = |meta: Value| {
        let bytes = serde_json::to_vec(&json!({
            "cells": [], "metadata": meta, "nbformat": 4, "nbformat_minor": 5
        }))
        .unwrap();
        import(&bytes).unwrap().title
    };
    assert_eq!(with(json!({"title": "Hello"})), Some("Hello".into()));
    assert_eq!(with(json!({"title": ["Hello"]})), None);
    assert_eq!(with(json!({})), None);
}

// ---------------------------------------------------------------------------
// Refusals

#[test]
fn nbformat_3_is_upgraded_and_other_majors_refused() {
    let v3 = br#"{"nbformat": 3, "nbformat_minor": 0, "metadata": {},
                 "worksheets": [{"cells": [{"cell_type": "heading", "level": 1, "source": "T"}]}]}"#;
    let imported = import(v3).expect("nbformat 3 is upgraded");
    assert_eq!(imported.cells[0].cell_type, CellType::Markdown);
    assert_eq!(imported.cells[0].source, "# T");
    for major in [1, 5] {
        let doc = format!(r#"{{"nbformat":{major},"nbformat_minor":0,"cells":[]}}"#);
        let err = import(doc.as_bytes()).unwrap_err();
        assert_eq!(err, IpynbError::UnsupportedVersion(major));
        assert_eq!(
            err.to_string(),
            format!("nbformat {major} is not supported (need 4.x, or 3 or 2 to upgrade)")
        );
    }
}

#[test]
fn garbage_is_refused() {
    let cases: &[&[u8]] = &[
        b"",
        b"not json",
        b"\xff\xfe\x00{",
        b"{\"nbformat\": 4,",
        b"null",
        b"42",
        b"\"ipynb\"",
        b"[1, 2]",
        b"{}",
        br#"{"nbformat": "4", "nbformat_minor": 5, "cells": []}"#,
        br#"{"nbformat": 4.5, "nbformat_minor": 5, "cells": []}"#,
        br#"{"nbformat": 4, "cells": []}"#,
        br#"{"nbformat": 4, "nbformat_minor": -1, "cells": []}"#,
        br#"{"nbformat": 4, "nbformat_minor": 5}"#,
    ];
    for bytes in cases {
        assert!(
            import(bytes).is_err(),
            "accepted {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    assert_eq!(import(b"not json").unwrap_err().to_string(), "not JSON");
}

#[test]
fn type_confused_documents_are_errors() {
    let top = |cells: Value, metadata: Value| {
        serde_json::to_vec(
            &json!({"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}),
        )
        .unwrap()
    };
    let cell = |c: Value| top(json!([c]), json!({}));
    let cases = [
        (top(json!({"0": {}}), json!({})), "cells must be a list"),
        (top(json!([]), json!([])), "metadata must be an object"),
        (cell(json!(["code"])), "cell 0: not an object"),
        (cell(json!({"source": ""})), "cell 0: cell_type is missing"),
        (
            cell(json!({"cell_type": 1, "source": ""})),
            "cell 0: cell_type must be a string",
        ),
        (
            cell(json!({"cell_type": "heading", "source": ""})),
            "cell 0: unknown cell_type",
        ),
        (
            cell(json!({"cell_type": "code", "source": 5})),
            "cell 0: source must be a string or a list of strings",
        ),
        (
            cell(json!({"cell_type": "code", "source": ["a", null]})),
            "cell 0: source must be a string or a list of strings",
        ),
        (
            cell(json!({"cell_type": "code", "source": "", "metadata": "m"})),
            "cell 0: metadata must be an object",
        ),
        (
            cell(json!({"cell_type": "code", "source": "", "outputs": {}})),
            "cell 0: outputs must be a list",
        ),
        (
            cell(json!({"cell_type": "code", "source": "", "outputs": [1]})),
            "cell 0: each output must be an object with an output_type",
        ),
        (
            cell(json!({"cell_type": "code", "source": "", "outputs": [{"output_type": 3}]})),
            "cell 0: each output must be an object with an output_type",
        ),
        (
            cell(json!({"cell_type": "code", "source": "", "execution_count": "1"})),
            "cell 0: execution_count must be an integer or null",
        ),
        (
            cell(json!({"cell_type": "code", "source": "", "execution_count": 1.5})),
            "cell 0: execution_count must be an integer or null",
        ),
        (
            cell(json!({"cell_type": "markdown", "source": "", "attachments": ["a.png"]})),
            "cell 0: attachments must be an object",
        ),
    ];
    for (bytes, message) in cases {
        let err = import(&bytes).expect_err(message);
        assert_eq!(err.to_string(), message);
    }
    // The position reported is the offending cell's.
    let bytes = top(
        json!([{"cell_type": "raw", "source": ""}, {"cell_type": "x", "source": ""}]),
        json!({}),
    );
    assert_eq!(
        import(&bytes).unwrap_err().to_string(),
        "cell 1: unknown cell_type"
    );
}

/// Every value anywhere in the fixture replaced by values of other JSON types,
/// and every truncation of the file: import answers (Ok or Err), never panics.
#[test]
fn no_input_makes_import_panic() {
    assert_no_replacement_panics(FIXTURE);
    let json_len = FIXTURE.trim_ascii_end().len();
    for len in 0..json_len {
        assert!(
            import(&FIXTURE[..len]).is_err(),
            "prefix of {len} bytes accepted"
        );
    }
}

/// The same for the other reading paths: the nbformat 3 (and 2) upgrade and the
/// lenient reading of a future 4.x minor (nbformat's own test notebooks).
#[test]
fn no_input_makes_the_upgrade_or_future_paths_panic() {
    assert_no_replacement_panics(include_bytes!("fixtures/nbformat/test3.ipynb"));
    assert_no_replacement_panics(include_bytes!("fixtures/nbformat/test4plus.ipynb"));
}

/// Replaces every value of `bytes`' document, one at a time, by values of
/// other JSON types; each import answers (and an accepted one exports).
fn assert_no_replacement_panics(bytes: &[u8]) {
    let original: Value = serde_json::from_slice(bytes).unwrap();
    assert!(import(bytes).is_ok(), "the unchanged document imports");
    let replacements = [
        json!(null),
        json!(-1),
        json!(1e300),
        json!("s"),
        json!([]),
        json!({}),
        json!([1]),
        json!({"a": 1}),
    ];
    let mut paths = Vec::new();
    collect_paths(&original, &mut Vec::new(), &mut paths);
    assert!(paths.len() > 50);
    for path in &paths {
        for r in &replacements {
            let mut doc = original.clone();
            *pointer_mut(&mut doc, path) = r.clone();
            let bytes = serde_json::to_vec(&doc).unwrap();
            if let Ok(imported) = import(&bytes) {
                let _ = export(&to_notebook(imported));
            }
        }
    }
}

fn collect_paths(v: &Value, here: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(here.clone());
    let children: Vec<(String, &Value)> = match v {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => Vec::new(),
    };
    for (key, child) in children {
        here.push(key);
        collect_paths(child, here, out);
        here.pop();
    }
}

fn pointer_mut<'a>(v: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter().fold(v, |v, key| match v {
        Value::Object(m) => m.get_mut(key).unwrap(),
        Value::Array(a) => &mut a[key.parse::<usize>().unwrap()],
        _ => unreachable!(),
    })
}
