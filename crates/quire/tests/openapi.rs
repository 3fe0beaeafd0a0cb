//! The generated OpenAPI document against the server itself: the routes it
//! describes are exactly the routes served (methods included) and DESIGN.md's
//! contract table, and real responses of a running server match the schema
//! documented for their operation and status.

mod common;

use std::collections::{BTreeSet, HashSet};

use common::{cell, cells, members, nb, spawn_app, Resp, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

/// The contract table of DESIGN.md ("REST API") plus the WebSocket route.
const CONTRACT: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/v1/me"),
    ("get", "/api/v1/notebooks"),
    ("post", "/api/v1/notebooks"),
    ("get", "/api/v1/notebooks/{id}"),
    ("patch", "/api/v1/notebooks/{id}"),
    ("delete", "/api/v1/notebooks/{id}"),
    ("post", "/api/v1/notebooks/{id}/cells"),
    ("patch", "/api/v1/notebooks/{id}/cells/{cell_id}"),
    ("delete", "/api/v1/notebooks/{id}/cells/{cell_id}"),
    ("post", "/api/v1/notebooks/{id}/cells/{cell_id}/move"),
    ("get", "/api/v1/notebooks/{id}/ipynb"),
    ("post", "/api/v1/notebooks/import"),
    ("get", "/api/v1/notebooks/{id}/members"),
    ("put", "/api/v1/notebooks/{id}/members/{user_id}"),
    ("delete", "/api/v1/notebooks/{id}/members/{user_id}"),
    ("post", "/api/v1/webhooks/clerk"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/notebooks/{id}/ws"),
];

/// Routes that need no bearer token.
const PUBLIC: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/v1/openapi.json"),
    // Authenticated by its Svix signature, not by a user's token.
    ("post", "/api/v1/webhooks/clerk"),
];

/// The methods probed against the router. HEAD is implied by GET in axum, and
/// OPTIONS belongs to the CORS layer (preflights) on every path.
const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "trace"];

fn doc() -> Value {
    serde_json::to_value(quire::api::openapi::document()).expect("document serializes")
}

/// Every (method, path, operation) in the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for (method, op) in item.as_object().expect("path item is an object") {
            if METHODS.contains(&method.as_str()) || method == "head" || method == "options" {
                ops.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    ops
}

fn op<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not described");
    op
}

/// Follows a local `$ref` (`#/components/...`), once.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.strip_prefix('#').expect("local ref"))
            .unwrap_or_else(|| panic!("unresolved {r}")),
        None => value,
    }
}

/// Every `$ref` (and discriminator mapping target) anywhere in the value.
fn collect_refs(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let here = format!("{at}/{key}");
                if key == "$ref" {
                    if let Some(r) = child.as_str() {
                        out.push((here.clone(), r.to_string()));
                    }
                }
                if key == "mapping" && at.ends_with("/discriminator") {
                    for target in child.as_object().into_iter().flat_map(|m| m.values()) {
                        if let Some(r) = target.as_str() {
                            out.push((here.clone(), r.to_string()));
                        }
                    }
                }
                collect_refs(child, &here, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                collect_refs(child, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn is_openapi_3_1_with_info_and_server() {
    let doc = doc();
    let version = doc["openapi"].as_str().expect("openapi is a string");
    assert!(version.starts_with("3.1."), "openapi {version}");
    assert_eq!(doc["info"]["title"], "quire");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["servers"], json!([{"url": "/"}]));
}

#[test]
fn the_document_is_the_contract_table() {
    let described: BTreeSet<(String, String)> = operations(&doc())
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    let contract: BTreeSet<(String, String)> = CONTRACT
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = contract.difference(&described).collect();
    let extra: Vec<_> = described.difference(&contract).collect();
    assert!(
        missing.is_empty(),
        "contract routes not described: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "described routes not in the contract: {extra:?}"
    );
}

#[test]
fn every_operation_has_an_id_a_summary_and_a_success() {
    let doc = doc();
    let mut ids = HashSet::new();
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
        assert!(ids.insert(id.to_string()), "duplicate operationId {id}");
        assert!(op["summary"].is_string(), "{method} {path}: no summary");
        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path}: no responses"));
        // The WebSocket upgrade succeeds with 101, everything else with a 2xx.
        let success = responses
            .keys()
            .any(|s| s.starts_with('2') || (path.ends_with("/ws") && s == "101"));
        assert!(success, "{method} {path}: no success response");
        for (status, response) in responses {
            let response = resolve(&doc, response);
            assert!(
                response["description"].is_string(),
                "{method} {path} {status}: no description"
            );
            if (status.starts_with('4') || status.starts_with('5')) && path != "/readyz" {
                // (/readyz's 503 has the readiness body on purpose.)
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/Error",
                    "{method} {path} {status}: not the Error body"
                );
            }
        }
    }
}

#[test]
fn path_parameters_are_declared_with_their_constraints() {
    let doc = doc();
    for (method, path, op) in operations(&doc) {
        let params: Vec<&Value> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| resolve(&doc, p))
            .filter(|p| p["in"] == "path")
            .collect();
        let declared: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
        let in_template: Vec<&str> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        assert_eq!(declared, in_template, "{method} {path}");
        for p in params {
            assert_eq!(
                p["required"], true,
                "{method} {path}: {} optional",
                p["name"]
            );
            let schema = &p["schema"];
            match p["name"].as_str().unwrap() {
                "id" => assert_eq!(schema["format"], "uuid", "{method} {path}"),
                "cell_id" => assert_eq!(schema["pattern"], "^[a-zA-Z0-9_-]{1,64}$"),
                "user_id" => assert!(schema["pattern"].is_string(), "{method} {path}"),
                other => panic!("{method} {path}: unexpected path parameter {other}"),
            }
        }
    }
}

#[test]
fn every_ref_resolves() {
    let doc = doc();
    let mut refs = Vec::new();
    collect_refs(&doc, "#", &mut refs);
    assert!(refs.len() > 50, "suspiciously few refs: {}", refs.len());
    for (at, r) in refs {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{at}: non-local ref {r}"));
        assert!(
            pointer.starts_with("/components/"),
            "{at}: ref outside components: {r}"
        );
        assert!(doc.pointer(pointer).is_some(), "{at}: unresolved {r}");
    }
}

/// A named component schema, looking through an `allOf` wrapper.
fn object_schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "schema {name} missing");
    match schema["allOf"].get(0) {
        Some(first) => resolve(doc, first),
        None => schema,
    }
}

#[test]
fn request_bodies_carry_the_server_rules() {
    let doc = doc();
    for name in [
        "CreateNotebook",
        "NewCell",
        "PatchNotebook",
        "InsertCell",
        "UpdateCell",
        "MoveCell",
        "PutMember",
    ] {
        assert_eq!(
            object_schema(&doc, name)["additionalProperties"],
            false,
            "{name} must say additionalProperties: false (deny_unknown_fields)"
        );
    }
    let title = &object_schema(&doc, "CreateNotebook")["properties"]["title"];
    assert_eq!(title["maxLength"], 200);
    assert_eq!(title["minLength"], 1);
    let index = &object_schema(&doc, "MoveCell")["properties"]["index"];
    assert_eq!(index["minimum"], 0);
    assert_eq!(
        doc["components"]["schemas"]["CellType"]["enum"],
        json!(["code", "markdown", "raw"])
    );
    assert_eq!(
        doc["components"]["schemas"]["SharedRole"]["enum"],
        json!(["editor", "viewer"])
    );
    // An update with nothing to change is a 400: the schema needs one of them.
    let any_of = &doc["components"]["schemas"]["UpdateCell"]["allOf"][1]["anyOf"];
    let required: Vec<&Value> = any_of
        .as_array()
        .expect("UpdateCell needs one change")
        .iter()
        .map(|branch| &branch["required"][0])
        .collect();
    assert_eq!(
        required,
        [&json!("source"), &json!("cell_type"), &json!("metadata")]
    );
}

#[test]
fn cells_have_outputs_only_when_code() {
    let doc = doc();
    let schemas = &doc["components"]["schemas"];
    let code = &schemas["CodeCell"];
    let text = &schemas["TextCell"];
    for field in ["outputs", "execution_count"] {
        assert!(
            code["properties"][field].is_object(),
            "code cells have {field}"
        );
        assert!(
            text["properties"][field].is_null(),
            "text cells lack {field}"
        );
    }
    assert_eq!(text["additionalProperties"], false);
    assert_eq!(code["additionalProperties"], false);
}

#[test]
fn bearer_is_global_and_public_routes_need_none() {
    let doc = doc();
    let scheme = &doc["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(scheme["bearerFormat"], "JWT");
    assert_eq!(doc["security"], json!([{"bearerAuth": []}]));
    for (method, path, op) in operations(&doc) {
        let requirements = op
            .get("security")
            .cloned()
            .unwrap_or(doc["security"].clone());
        let requirements = requirements.as_array().unwrap().clone();
        let anonymous_ok = requirements.iter().any(|r| r == &json!({}));
        let bearer = requirements.iter().any(|r| r.get("bearerAuth").is_some());
        if PUBLIC.contains(&(method.as_str(), path.as_str())) {
            assert_eq!(requirements, [json!({})], "{method} {path} must be public");
        } else {
            assert!(bearer, "{method} {path} must take a bearer token");
            // Only the upgrade may authenticate later (first-message auth).
            assert_eq!(anonymous_ok, path.ends_with("/ws"), "{method} {path}");
            let responses = &op["responses"];
            assert!(responses.get("401").is_some(), "{method} {path}: no 401");
            assert!(responses.get("503").is_some(), "{method} {path}: no 503");
        }
    }
}

#[test]
fn headers_are_documented() {
    let doc = doc();
    let created = &op(&doc, "post", "/api/v1/notebooks")["responses"]["201"]["headers"];
    assert!(created["Location"].is_object() && created["ETag"].is_object());
    assert!(
        op(&doc, "get", "/api/v1/notebooks/{id}")["responses"]["200"]["headers"]["ETag"]
            .is_object()
    );
    let responses = &doc["components"]["responses"];
    assert!(responses["Unauthorized"]["headers"]["WWW-Authenticate"].is_object());
    assert!(responses["Unavailable"]["headers"]["Retry-After"].is_object());
    let if_match = op(&doc, "patch", "/api/v1/notebooks/{id}")["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "If-Match")
        .expect("If-Match documented");
    assert_eq!(if_match["in"], "header");
    assert_eq!(if_match["required"], false);
    assert!(if_match["schema"]["pattern"].is_string());
}

// ---------------------------------------------------------------------------
// Against the running server

/// Fills a path template with real ids.
fn fill(template: &str, id: &str) -> String {
    template
        .replace("{id}", id)
        .replace("{cell_id}", "c1")
        .replace("{user_id}", "user_friend")
}

/// Every documented (path, method) is routed (anything but 405) and every
/// other method on that path is 405: the router and the document agree.
#[tokio::test]
async fn served_routes_are_the_documented_routes() {
    let app = spawn_app().await;
    let owner = app.token("user_o");
    let id = app
        .create_notebook_id(&owner, "T", json!([{"cell_type": "code", "id": "c1"}]))
        .await;
    let doc = doc();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let url = fill(path, &id);
        for method in METHODS {
            // No token: nothing changes, but the route answers (401, 400, ...).
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = app.req(m, &url).send().await;
            if item.get(*method).is_some() {
                assert_ne!(
                    r.status, 405,
                    "{method} {path} is documented but not served"
                );
                assert_ne!(
                    r.status, 404,
                    "{method} {path} is documented but not served"
                );
            } else {
                assert_eq!(
                    r.status, 405,
                    "{method} {path} is served or missing: {}",
                    r.text
                );
            }
        }
    }
}

/// Validates a response against what the document says for it.
#[track_caller]
fn conforms(doc: &Value, method: &str, template: &str, r: &Resp) {
    let op = op(doc, method, template);
    let status = r.status.to_string();
    let response = op["responses"]
        .get(&status)
        .map(|resp| resolve(doc, resp))
        .unwrap_or_else(|| {
            panic!(
                "{method} {template}: {status} is not documented: {}",
                r.text
            )
        });
    let Some(content) = response["content"].as_object() else {
        assert!(
            r.text.is_empty(),
            "{method} {template} {status}: undocumented body"
        );
        return;
    };
    let content_type = r.header("content-type").unwrap_or_default();
    let (_, media) = content
        .iter()
        .find(|(ct, _)| content_type.starts_with(ct.as_str()))
        .unwrap_or_else(|| panic!("{method} {template} {status}: content-type {content_type}"));
    if !content_type.starts_with("application/json") {
        return;
    }
    // The schema, with the components its `$ref`s point into.
    let mut schema = media["schema"].clone();
    schema["components"] = doc["components"].clone();
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{method} {template} {status}: bad schema: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(&r.json)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {template} {status} does not match its schema: {errors:?}\n{}",
        r.text
    );
}

/// One request per documented response worth checking, on a real server.
#[tokio::test]
async fn real_responses_match_their_documented_schemas() {
    let app = spawn_app().await;
    let doc = doc();
    let owner = app.token("user_o");
    let viewer = app.token("user_friend");
    let get = |path: &'static str, token: Option<String>| {
        let app: &TestApp = &app;
        async move { app.get(path, token.as_deref()).await }
    };

    conforms(&doc, "get", "/healthz", &get("/healthz", None).await);
    conforms(&doc, "get", "/readyz", &get("/readyz", None).await);
    conforms(&doc, "get", "/metrics", &get("/metrics", None).await);
    conforms(
        &doc,
        "get",
        "/api/v1/openapi.json",
        &get("/api/v1/openapi.json", None).await,
    );
    conforms(
        &doc,
        "get",
        "/api/v1/me",
        &get("/api/v1/me", Some(owner.clone())).await,
    );
    conforms(&doc, "get", "/api/v1/me", &get("/api/v1/me", None).await);

    let body = json!({"title": "T", "cells": [
        {"cell_type": "code", "source": "x = 1", "id": "c1"},
        {"cell_type": "markdown", "source": "# hi", "id": "c2"},
    ]});
    let created = app.post("/api/v1/notebooks", Some(&owner), &body).await;
    conforms(&doc, "post", "/api/v1/notebooks", &created);
    let id = common::id_of(&created.json);
    let r = app
        .post(
            "/api/v1/notebooks",
            Some(&owner),
            &json!({"title": "T", "id": id}),
        )
        .await;
    conforms(&doc, "post", "/api/v1/notebooks", &r);
    let r = app
        .post(
            "/api/v1/notebooks",
            Some(&owner),
            &json!({"title": "x".repeat(201)}),
        )
        .await;
    conforms(&doc, "post", "/api/v1/notebooks", &r);

    let list = "/api/v1/notebooks";
    conforms(
        &doc,
        "get",
        list,
        &app.get(&format!("{list}?limit=1"), Some(&owner)).await,
    );
    conforms(
        &doc,
        "get",
        list,
        &app.get(&format!("{list}?limit=0"), Some(&owner)).await,
    );

    let one = "/api/v1/notebooks/{id}";
    conforms(&doc, "get", one, &app.get(&nb(&id), Some(&owner)).await);
    conforms(&doc, "get", one, &app.get(&nb(&id), Some(&viewer)).await); // 403
    conforms(&doc, "get", one, &app.get(&nb("nope"), Some(&owner)).await); // 400
    let unknown = common::unknown_notebook_id();
    conforms(
        &doc,
        "get",
        one,
        &app.get(&nb(&unknown), Some(&owner)).await,
    ); // 404
    let rename = |if_match: &'static str| {
        app.req(Method::PATCH, &nb(&id))
            .bearer(Some(&owner))
            .header("if-match", if_match)
            .json(&json!({"title": "renamed"}))
            .send()
    };
    conforms(&doc, "patch", one, &rename("\"0\"").await);
    conforms(&doc, "patch", one, &rename("\"0\"").await); // 412

    let new_cell = app
        .post(
            &cells(&id),
            Some(&owner),
            &json!({"cell_type": "raw", "index": 0}),
        )
        .await;
    conforms(&doc, "post", "/api/v1/notebooks/{id}/cells", &new_cell);
    let one_cell = "/api/v1/notebooks/{id}/cells/{cell_id}";
    let edit = json!({"source": "y = 2", "base_version": 1});
    conforms(
        &doc,
        "patch",
        one_cell,
        &app.patch(&cell(&id, "c1"), Some(&owner), &edit).await,
    );
    conforms(
        &doc,
        "patch",
        one_cell,
        &app.patch(&cell(&id, "c1"), Some(&owner), &edit).await,
    ); // 409
    let moved = app
        .post(
            &format!("{}/move", cell(&id, "c1")),
            Some(&owner),
            &json!({"index": 0}),
        )
        .await;
    conforms(
        &doc,
        "post",
        "/api/v1/notebooks/{id}/cells/{cell_id}/move",
        &moved,
    );

    let exported = app.get(&format!("{}/ipynb", nb(&id)), Some(&owner)).await;
    conforms(&doc, "get", "/api/v1/notebooks/{id}/ipynb", &exported);
    let imported = app
        .req(Method::POST, "/api/v1/notebooks/import?title=copy")
        .bearer(Some(&owner))
        .raw(exported.text.clone())
        .send()
        .await;
    conforms(&doc, "post", "/api/v1/notebooks/import", &imported);

    let member = "/api/v1/notebooks/{id}/members/{user_id}";
    let share = app
        .put(
            &format!("{}/user_friend", members(&id)),
            Some(&owner),
            &json!({"role": "viewer"}),
        )
        .await;
    conforms(&doc, "put", member, &share);
    conforms(
        &doc,
        "get",
        "/api/v1/notebooks/{id}/members",
        &app.get(&members(&id), Some(&viewer)).await,
    );
    let write = app
        .post(&cells(&id), Some(&viewer), &json!({"cell_type": "code"}))
        .await;
    conforms(&doc, "post", "/api/v1/notebooks/{id}/cells", &write); // 403

    let ws = "/api/v1/notebooks/{id}/ws";
    conforms(
        &doc,
        "get",
        ws,
        &app.get(&format!("{}/ws", nb(&id)), Some(&owner)).await,
    ); // 400

    conforms(
        &doc,
        "delete",
        one_cell,
        &app.delete(&cell(&id, "c2"), Some(&owner)).await,
    );
    conforms(
        &doc,
        "delete",
        member,
        &app.delete(&format!("{}/user_friend", members(&id)), Some(&owner))
            .await,
    );
    conforms(
        &doc,
        "delete",
        one,
        &app.delete(&nb(&id), Some(&owner)).await,
    );
    conforms(
        &doc,
        "delete",
        one,
        &app.delete(&nb(&id), Some(&owner)).await,
    ); // 404

    let hook = app
        .post(
            "/api/v1/webhooks/clerk",
            None,
            &json!({"type": "user.deleted"}),
        )
        .await;
    conforms(&doc, "post", "/api/v1/webhooks/clerk", &hook); // 400: unsigned
}
