//! nbformat's own test notebooks (`tests/fixtures/nbformat/`, from the
//! jupyter/nbformat repository) through the REST API: every valid v2, v3 and v4
//! one imports (201) and exports a document that nbformat's published v4.5
//! JSON schema accepts; the ones nbformat cannot read are refused with a 400;
//! upgraded and future-minor notebooks keep what a Jupyter user would see.
//!
//! Set `QUIRE_IPYNB_EXPORT_DIR` to a directory to also get every export
//! written there (one file per fixture, same name), for
//! `.ci/nbformat-validate.sh` to check with the real `nbformat.validate`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{id_of, nb, spawn_app, Resp, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

/// Fixtures that must import (201) and export schema-valid documents.
const VALID: [&str; 14] = [
    "invalid_cell_id.ipynb",
    "invalid_unique_cell_id.ipynb",
    "many_tracebacks.ipynb",
    "test2.ipynb",
    "test3.ipynb",
    "test3_no_min_version.ipynb",
    "test4.5.ipynb",
    "test4.ipynb",
    "test4custom.ipynb",
    "test4docinfo.ipynb",
    "test4jupyter_metadata.ipynb",
    "test4jupyter_metadata_timings.ipynb",
    "test4plus.ipynb",
    "v4_5_no_cell_id.ipynb",
];

/// Fixtures nbformat cannot read or convert, with the message quire answers.
const REFUSED: [(&str, &str); 5] = [
    ("invalid.ipynb", "cell 2: unknown cell_type"),
    (
        "no_min_version.ipynb",
        "not a notebook: nbformat_minor is missing or not a non-negative integer",
    ),
    ("test3_no_metadata.ipynb", "metadata is missing"),
    ("test3_no_worksheets.ipynb", "worksheets is missing"),
    (
        "test3_worksheet_with_no_cells.ipynb",
        "each worksheet must be an object with a list of cells",
    ),
];

/// Imported as Jupyter opens it, metadata verbatim, though that metadata
/// breaks the schema (nbformat needs `normalize(strip_invalid_metadata=True)`).
const INVALID_METADATA: &str = "v4_5_invalid_metadata.ipynb";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nbformat")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).expect("fixture is JSON")
}

/// nbformat's published v4.5 schema (draft 4), compiled.
fn schema() -> jsonschema::Validator {
    let schema = fixture_json("nbformat.v4.5.schema.json");
    jsonschema::draft4::new(&schema).expect("nbformat's schema compiles")
}

/// Where, in `doc`, the schema is broken (JSON pointers), with why.
fn schema_errors(validator: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

async fn import(app: &TestApp, token: &str, body: Vec<u8>) -> Resp {
    app.req(Method::POST, "/api/v1/notebooks/import")
        .bearer(Some(token))
        .header("content-type", "application/x-ipynb+json")
        .raw(body)
        .send()
        .await
}

/// Imports a fixture (asserting 201) and returns the export (asserting 200).
async fn import_and_export(app: &TestApp, token: &str, name: &str) -> Value {
    let r = import(app, token, fixture(name)).await;
    assert_eq!(r.status, 201, "{name}: {}", r.text);
    let doc = app
        .get(&format!("{}/ipynb", nb(&id_of(&r.json))), Some(token))
        .await;
    assert_eq!(doc.status, 200, "{name}: {}", doc.text);
    doc.json
}

/// The export of `name` from a fresh server.
async fn exported(name: &str) -> Value {
    let app = spawn_app().await;
    let a = app.token("user_a");
    import_and_export(&app, &a, name).await
}

fn cells(doc: &Value) -> &[Value] {
    doc["cells"].as_array().expect("cells")
}

/// `source` as one string, whichever nbformat form it has.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
        other => panic!("not a multiline string: {other}"),
    }
}

/// `v` with every list of strings joined into one string, so the two forms
/// nbformat allows for multiline text compare equal.
fn joined(v: &Value) -> Value {
    match v {
        Value::Array(items) if items.iter().all(Value::is_string) && !items.is_empty() => {
            Value::String(text(v))
        }
        Value::Array(items) => Value::Array(items.iter().map(joined).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), joined(v))).collect()),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------
// The whole set

#[test]
fn every_fixture_is_classified() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".ipynb"))
        .collect();
    let mut classified: BTreeSet<String> = VALID.iter().map(|n| n.to_string()).collect();
    classified.extend(REFUSED.iter().map(|(n, _)| n.to_string()));
    classified.insert(INVALID_METADATA.into());
    assert_eq!(on_disk, classified);
}

#[tokio::test]
async fn valid_fixtures_import_and_export_schema_valid_documents() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let validator = schema();
    let out_dir = std::env::var_os("QUIRE_IPYNB_EXPORT_DIR").map(PathBuf::from);
    let mut broken = Vec::new();
    for name in BTreeSet::from(VALID) {
        let doc = import_and_export(&app, &a, name).await;
        let errors = schema_errors(&validator, &doc);
        if !errors.is_empty() {
            broken.push(format!("{name}: {errors:#?}"));
        }
        assert_eq!(
            (&doc["nbformat"], &doc["nbformat_minor"]),
            (&json!(4), &json!(5))
        );
        if let Some(dir) = &out_dir {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(name), serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
        }
    }
    assert!(
        broken.is_empty(),
        "exports break the schema:\n{}",
        broken.join("\n")
    );
}

#[tokio::test]
async fn unreadable_fixtures_are_refused_with_a_400_and_create_nothing() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    for (name, message) in REFUSED {
        let r = import(&app, &a, fixture(name)).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        assert_eq!(
            r.json["error"]["code"], "invalid_ipynb",
            "{name}: {}",
            r.text
        );
        assert_eq!(r.json["error"]["message"], message, "{name}");
    }
    let list = app.get("/api/v1/notebooks", Some(&a)).await;
    assert_eq!(
        list.json["items"],
        json!([]),
        "a refused import creates nothing"
    );
}

// ---------------------------------------------------------------------------
// nbformat 3 (and 2) upgraded as Jupyter does

/// test3.ipynb is nbformat's example notebook in v3; test4.ipynb is the same
/// notebook as Jupyter writes it in v4. Upgraded, the first must show what the
/// second shows: the same cells, markdown, outputs and execution counts. (The
/// code differs: nbformat's linter added `from __future__` lines to test4.)
#[tokio::test]
async fn v3_upgrade_matches_the_same_notebook_written_as_v4() {
    let v3 = exported("test3.ipynb").await;
    let v4 = fixture_json("test4.ipynb");
    let (got, want) = (cells(&v3), cells(&v4));
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g["cell_type"], w["cell_type"], "cell {i}");
        if w["cell_type"] == "markdown" {
            assert_eq!(text(&g["source"]), text(&w["source"]), "cell {i}");
        }
        assert_eq!(g["execution_count"], w["execution_count"], "cell {i}");
        assert!(
            joined(&g["outputs"]) == joined(&w["outputs"]),
            "cell {i}: outputs differ"
        );
    }
}

#[tokio::test]
async fn v3_headings_code_and_outputs_are_upgraded() {
    let doc = exported("test3.ipynb").await;
    let cells = cells(&doc);
    assert_eq!(cells[0]["cell_type"], "markdown");
    assert_eq!(text(&cells[0]["source"]), "# nbconvert latex test");
    let code = &cells[3];
    assert_eq!(code["metadata"]["collapsed"], json!(false));
    assert!(code.get("language").is_none() && code.get("input").is_none());
    let stream = &code["outputs"][0];
    assert_eq!(
        (&stream["output_type"], &stream["name"]),
        (&json!("stream"), &json!("stdout"))
    );
    let result = &cells[5]["outputs"][0];
    assert_eq!(result["output_type"], "execute_result");
    assert!(result["data"]["text/html"].is_string() || result["data"]["text/html"].is_array());
    let image = &cells[8]["outputs"][0]["data"];
    assert!(image["image/png"].is_string(), "png -> image/png: {image}");
    assert!(
        doc["metadata"].get("name").is_none(),
        "v3 metadata.name dropped"
    );
}

#[tokio::test]
async fn v2_notebook_is_upgraded_too() {
    let doc = exported("test2.ipynb").await;
    let types: BTreeSet<&str> = cells(&doc)
        .iter()
        .flat_map(|c| c["outputs"].as_array().into_iter().flatten())
        .filter_map(|o| o["output_type"].as_str())
        .collect();
    assert_eq!(
        types,
        BTreeSet::from(["display_data", "execute_result", "stream"])
    );
}

// ---------------------------------------------------------------------------
// Newer 4.x minors, ids, metadata

#[tokio::test]
async fn future_cell_types_are_kept_as_raw_cells_not_refused() {
    let doc = exported("test4plus.ipynb").await;
    let cells = cells(&doc);
    let future = &cells[9];
    assert_eq!(future["id"], "future-10");
    assert_eq!(future["cell_type"], "raw");
    assert_eq!(
        future["metadata"]["unrecognized_cell"],
        json!({"cell_type": "future cell", "key": "value"}),
        "the original type and fields are kept in metadata"
    );
    let outputs = cells[10]["outputs"].as_array().unwrap();
    let streams: Vec<String> = outputs
        .iter()
        .filter(|o| o["output_type"] == "stream")
        .map(|o| text(&o["text"]))
        .collect();
    assert_eq!(streams, ["hello\n", "hello again\n"]);
    assert_eq!(
        outputs[1],
        json!({"data": {}, "metadata": {"unrecognized_output":
            {"output_type": "future output", "some key": ["some data"]}},
            "output_type": "display_data"})
    );
    assert!(doc.get("extra").is_none(), "fields 4.5 lacks are dropped");
}

#[tokio::test]
async fn cells_without_valid_unique_ids_get_generated_ones() {
    for name in [
        "test4.ipynb",
        "v4_5_no_cell_id.ipynb",
        "invalid_cell_id.ipynb",
    ] {
        let doc = exported(name).await;
        let ids: BTreeSet<&str> = cells(&doc)
            .iter()
            .filter_map(|c| c["id"].as_str())
            .collect();
        assert_eq!(ids.len(), cells(&doc).len(), "{name}: unique ids");
        assert!(!ids.contains("$illegal_chars"));
    }
    let doc = exported("invalid_unique_cell_id.ipynb").await;
    assert_eq!(cells(&doc)[0]["id"], "dup", "the first holder keeps its id");
    assert_ne!(cells(&doc)[1]["id"], "dup");
}

#[tokio::test]
async fn invalid_metadata_is_kept_verbatim_and_is_all_the_schema_objects_to() {
    let doc = exported(INVALID_METADATA).await;
    let original = fixture_json(INVALID_METADATA);
    assert_eq!(doc["metadata"], original["metadata"]);
    for (got, want) in cells(&doc).iter().zip(cells(&original)) {
        assert_eq!(got["metadata"], want["metadata"]);
        assert_eq!(got["outputs"], want["outputs"]);
    }
    // With the metadata emptied the export is valid: nothing else is wrong.
    let mut cleaned = doc.clone();
    cleaned["metadata"] = json!({});
    for cell in cleaned["cells"].as_array_mut().unwrap() {
        cell["metadata"] = json!({});
        for output in cell["outputs"].as_array_mut().unwrap() {
            output["metadata"] = json!({});
        }
    }
    assert_eq!(schema_errors(&schema(), &cleaned), Vec::<String>::new());
    assert!(!schema_errors(&schema(), &doc).is_empty());
}
