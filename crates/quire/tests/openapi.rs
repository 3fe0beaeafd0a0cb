//! The OpenAPI document against DESIGN.md's REST contract: every route is
//! described, every operation is usable by a generator, every `$ref` resolves.

use std::collections::HashSet;

use serde_json::Value;

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

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn doc() -> Value {
    serde_json::to_value(quire::api::openapi::document()).unwrap()
}

/// Every (method, path, operation) in the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for (method, op) in item.as_object().expect("path item is an object") {
            if METHODS.contains(&method.as_str()) {
                ops.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    ops
}

fn op<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(
        op.is_object(),
        "{} {path} is not described",
        method.to_uppercase()
    );
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
    assert_eq!(doc["servers"], serde_json::json!([{"url": "/"}]));
}

#[test]
fn document_is_computed_once_and_stable() {
    assert_eq!(doc(), doc());
}

#[test]
fn every_contract_route_is_described() {
    let doc = doc();
    let described: HashSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    let missing: Vec<_> = CONTRACT
        .iter()
        .filter(|(m, p)| !described.contains(&(m.to_string(), p.to_string())))
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from the document: {missing:?}"
    );
    let contract: HashSet<(String, String)> = CONTRACT
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let extra: Vec<_> = described.difference(&contract).collect();
    assert!(extra.is_empty(), "routes not in the contract: {extra:?}");
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
            if status.starts_with('4') || status.starts_with('5') {
                if path == "/readyz" {
                    continue; // its 503 has the readiness body on purpose
                }
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
fn path_parameters_are_declared() {
    let doc = doc();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let declared: HashSet<String> = item["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| resolve(&doc, p))
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(p["required"], true, "{path}: path parameter not required");
                p["name"].as_str().unwrap().to_string()
            })
            .collect();
        let in_template: HashSet<String> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_string)
            .collect();
        assert_eq!(declared, in_template, "{path}");
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

#[test]
fn required_components_exist() {
    let doc = doc();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "Error",
        "Notebook",
        "NotebookSummary",
        "NotebookList",
        "Cell",
        "CreateNotebook",
        "PatchNotebook",
        "InsertCell",
        "UpdateCell",
        "MoveCell",
        "Member",
        "MemberList",
        "PutMember",
        "Me",
        "Health",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    let error = &schemas["Error"]["properties"]["error"];
    assert_eq!(
        error["required"],
        serde_json::json!(["code", "message", "request_id"])
    );
    assert!(error["properties"]["current"].is_object());
    let list = &schemas["NotebookList"];
    assert_eq!(
        list["properties"]["next_cursor"]["type"],
        serde_json::json!(["string", "null"])
    );
}

#[test]
fn request_bodies_refuse_unknown_members() {
    let doc = doc();
    let schemas = &doc["components"]["schemas"];
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
            schemas[name]["additionalProperties"], false,
            "{name} must say additionalProperties: false (deny_unknown_fields)"
        );
    }
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
}

#[test]
fn bearer_is_global_and_public_routes_have_none() {
    let doc = doc();
    let scheme = &doc["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(scheme["bearerFormat"], "JWT");
    assert!(scheme["description"]
        .as_str()
        .unwrap()
        .contains("Clerk session token"));
    assert_eq!(doc["security"], serde_json::json!([{"bearerAuth": []}]));
    for (method, path, op) in operations(&doc) {
        let public = PUBLIC.contains(&(method.as_str(), path.as_str()));
        if public {
            assert_eq!(
                op["security"],
                serde_json::json!([]),
                "{method} {path} must be public"
            );
        } else {
            // Inherits the global bearer, or names it explicitly.
            let requirements = op
                .get("security")
                .cloned()
                .unwrap_or(doc["security"].clone());
            let names_bearer = requirements
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r.get("bearerAuth").is_some());
            assert!(names_bearer, "{method} {path} must take a bearer token");
            let responses = &op["responses"];
            assert!(responses.get("401").is_some(), "{method} {path}: no 401");
            assert!(responses.get("503").is_some(), "{method} {path}: no 503");
        }
    }
}

#[test]
fn specific_statuses_and_parameters() {
    let doc = doc();
    let statuses = |method: &str, path: &str| -> Vec<String> {
        op(&doc, method, path)["responses"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let has = |method: &str, path: &str, wanted: &[&str]| {
        let got = statuses(method, path);
        for w in wanted {
            assert!(
                got.iter().any(|s| s == w),
                "{method} {path}: no {w} (has {got:?})"
            );
        }
    };
    has(
        "post",
        "/api/v1/notebooks",
        &["201", "400", "401", "409", "413", "422", "503"],
    );
    has(
        "get",
        "/api/v1/notebooks/{id}",
        &["200", "400", "401", "403", "404"],
    );
    has(
        "patch",
        "/api/v1/notebooks/{id}",
        &["200", "400", "403", "404", "412", "413", "422"],
    );
    has("delete", "/api/v1/notebooks/{id}", &["204", "403", "404"]);
    has(
        "patch",
        "/api/v1/notebooks/{id}/cells/{cell_id}",
        &["200", "409", "404"],
    );
    has("delete", "/api/v1/notebooks/{id}/cells/{cell_id}", &["204"]);
    has(
        "delete",
        "/api/v1/notebooks/{id}/members/{user_id}",
        &["204"],
    );
    has("post", "/api/v1/notebooks/import", &["201", "400", "413"]);
    has("get", "/readyz", &["200", "503"]);
    has("post", "/api/v1/webhooks/clerk", &["204", "400"]);
    has(
        "get",
        "/api/v1/notebooks/{id}/ws",
        &["101", "401", "403", "404"],
    );

    let created = resolve(
        &doc,
        &op(&doc, "post", "/api/v1/notebooks")["responses"]["201"],
    );
    assert!(
        created["headers"]["Location"].is_object(),
        "201 without Location"
    );

    let names = |method: &str, path: &str| -> Vec<(String, String)> {
        op(&doc, method, path)["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| resolve(&doc, p))
            .map(|p| {
                (
                    p["in"].as_str().unwrap().into(),
                    p["name"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let list = names("get", "/api/v1/notebooks");
    assert!(list.contains(&("query".into(), "limit".into())));
    assert!(list.contains(&("query".into(), "cursor".into())));
    assert!(names("post", "/api/v1/notebooks/import").contains(&("query".into(), "title".into())));
    assert!(
        names("patch", "/api/v1/notebooks/{id}").contains(&("header".into(), "If-Match".into()))
    );
}
