//! Black-box tests of the notebook endpoints: create, list (pagination),
//! read, rename (If-Match), delete, .ipynb export and import, limits.

mod common;

use std::collections::HashSet;

use common::{
    assert_error_shape, assert_rfc3339_utc, cell_ids, id_of, nb, spawn_app, spawn_app_with,
    unknown_notebook_id,
};
use quire::config::LimitArgs;
use reqwest::Method;
use serde_json::{json, Value};

fn is_nbformat_cell_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

// ---------------------------------------------------------------------------
// Create

#[tokio::test]
async fn create_returns_201_location_etag_and_full_notebook() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let r = app
        .post(
            "/api/v1/notebooks",
            Some(&a),
            &json!({"title": "First", "cells": [
                {"cell_type": "markdown", "source": "# Hi"},
                {"cell_type": "code", "source": "print(1)"},
            ]}),
        )
        .await;
    r.assert_status(201);
    let n = &r.json;
    let id = id_of(n);
    let uuid = uuid::Uuid::parse_str(&id).expect("notebook id is a UUID");
    assert!(
        matches!(uuid.get_version_num(), 4 | 7),
        "notebook ids are UUID v4/v7: {id}"
    );
    assert_eq!(r.header("location"), Some(nb(&id).as_str()));
    assert_eq!(r.header("etag"), Some("\"0\""));
    assert_eq!(n["title"], "First");
    assert_eq!(n["owner_id"], "user_a");
    assert_eq!(n["role"], "owner");
    assert_eq!(n["version"], 0, "a new notebook has version 0");
    assert_rfc3339_utc(&n["created_at"]);
    assert_rfc3339_utc(&n["updated_at"]);
    let cells = n["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2);
    assert_eq!(cells[0]["cell_type"], "markdown");
    assert_eq!(cells[0]["source"], "# Hi");
    assert_eq!(cells[1]["cell_type"], "code");
    assert_eq!(cells[1]["source"], "print(1)");
    for c in cells {
        assert_eq!(c["version"], 1, "a new cell has version 1");
        assert!(is_nbformat_cell_id(c["id"].as_str().unwrap()), "{c}");
        assert_eq!(c["metadata"], json!({}));
    }
    assert_ne!(cells[0]["id"], cells[1]["id"]);

    // The Location resolves to the same notebook.
    let got = app.notebook(&a, &id).await;
    assert_eq!(got, *n);
}

#[tokio::test]
async fn create_without_cells_gives_an_empty_notebook() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let r = app
        .post("/api/v1/notebooks", Some(&a), &json!({"title": "Empty"}))
        .await;
    r.assert_status(201);
    assert_eq!(r.json["cells"], json!([]));
}

#[tokio::test]
async fn create_honours_client_chosen_cell_ids() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let n = app
        .create_notebook(
            &a,
            "T",
            json!([
                {"cell_type": "code", "source": "1", "id": "setup-cell_1"},
                {"cell_type": "raw", "source": "r"},
            ]),
        )
        .await;
    assert_eq!(n["cells"][0]["id"], "setup-cell_1");
    assert!(is_nbformat_cell_id(n["cells"][1]["id"].as_str().unwrap()));
}

#[tokio::test]
async fn create_with_duplicate_cell_ids_is_409() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let r = app
        .post(
            "/api/v1/notebooks",
            Some(&a),
            &json!({"title": "T", "cells": [
                {"cell_type": "code", "source": "1", "id": "same"},
                {"cell_type": "code", "source": "2", "id": "same"},
            ]}),
        )
        .await;
    r.assert_error(409, "conflict");
    let list = app.get("/api/v1/notebooks", Some(&a)).await;
    assert_eq!(list.json["items"], json!([]), "nothing was created");
}

#[tokio::test]
async fn create_with_invalid_cell_id_is_400() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    for bad in ["", "has space", "dot.ted", "slash/", &"x".repeat(65)] {
        let r = app
            .post(
                "/api/v1/notebooks",
                Some(&a),
                &json!({"title": "T", "cells": [{"cell_type": "code", "source": "", "id": bad}]}),
            )
            .await;
        assert_eq!(r.status, 400, "id {bad:?}: {}", r.text);
        assert_error_shape(&r);
    }
}

#[tokio::test]
async fn create_refuses_mass_assignment_and_unknown_fields() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let bodies = [
        json!({"title": "T", "owner_id": "user_b"}),
        json!({"title": "T", "id": unknown_notebook_id()}),
        json!({"title": "T", "version": 7}),
        json!({"title": "T", "role": "owner"}),
        json!({"title": "T", "colour": "red"}),
        json!({"title": "T", "cells": [{"cell_type": "code", "source": "", "version": 9}]}),
        json!({"title": "T", "cells": [{"cell_type": "code", "source": "", "outputs": []}]}),
        json!({"title": "T", "cells": [{"cell_type": "code", "source": "", "extra": 1}]}),
    ];
    for body in bodies {
        let r = app.post("/api/v1/notebooks", Some(&a), &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_error_shape(&r);
    }
    let list = app.get("/api/v1/notebooks", Some(&a)).await;
    assert_eq!(list.json["items"], json!([]), "nothing was created");
}

#[tokio::test]
async fn create_with_bad_shapes_is_400() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let bodies = [
        json!({}),
        json!({"title": 5}),
        json!({"title": null}),
        json!([]),
        json!("title"),
        json!({"title": "T", "cells": {}}),
        json!({"title": "T", "cells": [{"source": "no type"}]}),
        json!({"title": "T", "cells": [{"cell_type": "python", "source": ""}]}),
        json!({"title": "T", "cells": [{"cell_type": "code", "source": 5}]}),
    ];
    for body in bodies {
        let r = app.post("/api/v1/notebooks", Some(&a), &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_error_shape(&r);
    }
    for raw in ["", "{", "{\"title\": \"T\",}", "not json", "\u{0}"] {
        let r = app
            .req(Method::POST, "/api/v1/notebooks")
            .bearer(Some(&a))
            .raw(raw)
            .send()
            .await;
        assert_eq!(r.status, 400, "{raw:?}: {}", r.text);
        assert_error_shape(&r);
    }
}

#[tokio::test]
async fn blank_title_is_refused() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    for title in ["", "   "] {
        let r = app
            .post("/api/v1/notebooks", Some(&a), &json!({"title": title}))
            .await;
        r.assert_client_error_in(&[400, 422]);
    }
}

#[tokio::test]
async fn title_over_200_chars_is_refused_and_200_is_fine() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let ok = "é".repeat(200);
    let r = app
        .post("/api/v1/notebooks", Some(&a), &json!({"title": ok}))
        .await;
    r.assert_status(201);
    assert_eq!(r.json["title"], ok);
    let id = id_of(&r.json);

    let long = "é".repeat(201);
    let r = app
        .post("/api/v1/notebooks", Some(&a), &json!({"title": long}))
        .await;
    r.assert_client_error_in(&[400, 422]);

    // The same limit on rename; nothing changes.
    let r = app.patch(&nb(&id), Some(&a), &json!({"title": long})).await;
    r.assert_client_error_in(&[400, 422]);
    let n = app.notebook(&a, &id).await;
    assert_eq!(n["title"], ok);
    assert_eq!(n["version"], 0);
}

#[tokio::test]
async fn too_many_cells_is_refused() {
    let app = spawn_app_with(LimitArgs {
        max_cells: 3,
        ..LimitArgs::default()
    })
    .await;
    let a = app.token("user_a");
    let cell = json!({"cell_type": "code", "source": "x"});
    let r = app
        .post(
            "/api/v1/notebooks",
            Some(&a),
            &json!({"title": "T", "cells": [cell, cell, cell, cell]}),
        )
        .await;
    r.assert_client_error_in(&[400, 413, 422]);

    let id = app
        .create_notebook_id(&a, "T", json!([cell, cell, cell]))
        .await;
    let r = app.post(&common::cells(&id), Some(&a), &cell).await;
    r.assert_client_error_in(&[400, 413, 422]);
    let n = app.notebook(&a, &id).await;
    assert_eq!(n["cells"].as_array().unwrap().len(), 3);
    assert_eq!(n["version"], 0);
}

#[tokio::test]
async fn source_over_the_limit_is_refused() {
    let app = spawn_app_with(LimitArgs {
        max_source_bytes: 8,
        ..LimitArgs::default()
    })
    .await;
    let a = app.token("user_a");
    // 5 chars but 10 UTF-8 bytes.
    let r = app
        .post(
            "/api/v1/notebooks",
            Some(&a),
            &json!({"title": "T", "cells": [{"cell_type": "code", "source": "ééééé"}]}),
        )
        .await;
    r.assert_client_error_in(&[400, 413, 422]);
    let id = app
        .create_notebook_id(
            &a,
            "T",
            json!([{"cell_type": "code", "source": "12345678", "id": "c"}]),
        )
        .await;
    let r = app
        .post(
            &common::cells(&id),
            Some(&a),
            &json!({"cell_type": "code", "source": "123456789"}),
        )
        .await;
    r.assert_client_error_in(&[400, 413, 422]);
    let r = app
        .patch(
            &common::cell(&id, "c"),
            Some(&a),
            &json!({"source": "123456789"}),
        )
        .await;
    r.assert_client_error_in(&[400, 413, 422]);
    let n = app.notebook(&a, &id).await;
    assert_eq!(n["version"], 0);
    assert_eq!(n["cells"][0]["source"], "12345678");
}

#[tokio::test]
async fn body_over_max_body_bytes_is_413_with_json_error() {
    let app = spawn_app_with(LimitArgs {
        max_body_bytes: 1024,
        ..LimitArgs::default()
    })
    .await;
    let a = app.token("user_a");
    let big = "x".repeat(2048);
    let r = app
        .post(
            "/api/v1/notebooks",
            Some(&a),
            &json!({"title": "T", "cells": [{"cell_type": "code", "source": big}]}),
        )
        .await;
    r.assert_error(413, "payload_too_large");

    // The same on every JSON endpoint (here: cell insert, cell update, rename).
    let id = app
        .create_notebook_id(
            &a,
            "T",
            json!([{"cell_type": "code", "source": "", "id": "c"}]),
        )
        .await;
    let r = app
        .post(
            &common::cells(&id),
            Some(&a),
            &json!({"cell_type": "code", "source": big}),
        )
        .await;
    r.assert_error(413, "payload_too_large");
    let r = app
        .patch(&common::cell(&id, "c"), Some(&a), &json!({"source": big}))
        .await;
    r.assert_error(413, "payload_too_large");
    let r = app.patch(&nb(&id), Some(&a), &json!({"title": big})).await;
    r.assert_error(413, "payload_too_large");
    assert_eq!(app.notebook(&a, &id).await["version"], 0);

    // A body under the limit is fine.
    let r = app
        .post(
            "/api/v1/notebooks",
            Some(&a),
            &json!({"title": "T", "cells": [{"cell_type": "code", "source": "x".repeat(500)}]}),
        )
        .await;
    r.assert_status(201);
}

#[tokio::test]
async fn chunked_body_over_the_limit_is_413() {
    let app = spawn_app_with(LimitArgs {
        max_body_bytes: 1024,
        ..LimitArgs::default()
    })
    .await;
    let a = app.token("user_a");
    let body = json!({"title": "T", "cells": [{"cell_type": "code", "source": "x".repeat(4096)}]})
        .to_string()
        .into_bytes();
    // No Content-Length: the limit must hold while streaming too. reqwest has
    // no streaming bodies here, so speak HTTP/1.1 by hand.
    let host = app.base.trim_start_matches("http://").to_string();
    let mut request = format!(
        "POST /api/v1/notebooks HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {a}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(256) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The server may answer (and close) before reading everything.
    let _ = stream.write_all(&request).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("payload_too_large"), "{text}");
    assert!(text.contains("request_id"), "{text}");
}

// ---------------------------------------------------------------------------
// Read

#[tokio::test]
async fn get_returns_notebook_with_etag() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = app
        .create_notebook_id(&a, "T", json!([{"cell_type": "code", "source": "1"}]))
        .await;
    let r = app.get(&nb(&id), Some(&a)).await;
    r.assert_status(200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(r.header("etag"), Some("\"0\""));
    let n = &r.json;
    let mut keys: Vec<&str> = n.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "cells",
            "created_at",
            "id",
            "owner_id",
            "role",
            "title",
            "updated_at",
            "version"
        ]
    );
    app.patch(&nb(&id), Some(&a), &json!({"title": "T2"}))
        .await
        .assert_status(200);
    let r = app.get(&nb(&id), Some(&a)).await;
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.json["version"], 1);
}

#[tokio::test]
async fn unknown_notebook_is_404() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = unknown_notebook_id();
    app.get(&nb(&id), Some(&a))
        .await
        .assert_error(404, "not_found");
    app.patch(&nb(&id), Some(&a), &json!({"title": "x"}))
        .await
        .assert_error(404, "not_found");
    app.delete(&nb(&id), Some(&a))
        .await
        .assert_error(404, "not_found");
    app.get(&format!("{}/ipynb", nb(&id)), Some(&a))
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn malformed_notebook_id_is_400() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let real = app.create_notebook_id(&a, "T", json!([])).await;
    for bad in [
        "not-a-uuid".to_string(),
        "1".to_string(),
        real.replace('-', ""),
        format!("{{{real}}}"),
        format!("{real}0"),
        "%20".to_string(),
        "%FF".to_string(),
        "x".repeat(300),
    ] {
        let r = app.get(&nb(&bad), Some(&a)).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert_error_shape(&r);
        let r = app.get(&format!("{}/ipynb", nb(&bad)), Some(&a)).await;
        assert_eq!(r.status, 400, "{bad}/ipynb: {}", r.text);
        let r = app.delete(&nb(&bad), Some(&a)).await;
        assert_eq!(r.status, 400, "DELETE {bad}: {}", r.text);
    }
}

#[tokio::test]
async fn upper_case_notebook_id_is_400() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let real = app.create_notebook_id(&a, "T", json!([])).await;
    let r = app.get(&nb(&real.to_uppercase()), Some(&a)).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_error_shape(&r);
}

#[tokio::test]
async fn another_user_gets_403_on_every_notebook_route() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let b = app.token("user_b");
    let id = app
        .create_notebook_id(
            &a,
            "Secret",
            json!([{"cell_type": "code", "source": "s", "id": "c1"}]),
        )
        .await;
    let cases: Vec<(Method, String, Value)> = vec![
        (Method::GET, nb(&id), json!(null)),
        (Method::PATCH, nb(&id), json!({"title": "pwned"})),
        (Method::DELETE, nb(&id), json!(null)),
        (Method::GET, format!("{}/ipynb", nb(&id)), json!(null)),
        (Method::GET, format!("{}/members", nb(&id)), json!(null)),
        (
            Method::PUT,
            format!("{}/members/user_b", nb(&id)),
            json!({"role": "editor"}),
        ),
        (
            Method::DELETE,
            format!("{}/members/user_a", nb(&id)),
            json!(null),
        ),
        (
            Method::POST,
            format!("{}/cells", nb(&id)),
            json!({"cell_type": "code", "source": ""}),
        ),
        (
            Method::PATCH,
            format!("{}/cells/c1", nb(&id)),
            json!({"source": "pwned"}),
        ),
        (Method::DELETE, format!("{}/cells/c1", nb(&id)), json!(null)),
        (
            Method::POST,
            format!("{}/cells/c1/move", nb(&id)),
            json!({"index": 0}),
        ),
        // Not even whether a cell exists leaks.
        (
            Method::PATCH,
            format!("{}/cells/nope", nb(&id)),
            json!({"source": "x"}),
        ),
        (
            Method::DELETE,
            format!("{}/cells/nope", nb(&id)),
            json!(null),
        ),
    ];
    for (method, path, body) in cases {
        let mut req = app.req(method.clone(), &path).bearer(Some(&b));
        if !body.is_null() {
            req = req.json(&body);
        }
        let r = req.send().await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text);
        r.assert_error(403, "forbidden");
        assert!(!r.text.contains("Secret"), "leaks the notebook: {}", r.text);
    }
    let n = app.notebook(&a, &id).await;
    assert_eq!(n["title"], "Secret");
    assert_eq!(n["version"], 0);
    assert_eq!(n["cells"][0]["source"], "s");
    let m = app.get(&format!("{}/members", nb(&id)), Some(&a)).await;
    assert_eq!(m.json["items"].as_array().unwrap().len(), 1);
}

// ---------------------------------------------------------------------------
// List and pagination

#[tokio::test]
async fn list_shows_only_own_and_shared_notebooks() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let b = app.token("user_b");
    let a1 = app.create_notebook_id(&a, "A1", json!([])).await;
    let a2 = app.create_notebook_id(&a, "A2", json!([])).await;
    let b1 = app.create_notebook_id(&b, "B1", json!([])).await;

    let list_b = app.get("/api/v1/notebooks", Some(&b)).await;
    list_b.assert_status(200);
    let ids: Vec<String> = list_b.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(ids, vec![b1.clone()], "B never sees A's notebooks");

    app.share(&a, &a2, "user_b", "viewer").await;
    let list_b = app.get("/api/v1/notebooks", Some(&b)).await;
    let items = list_b.json["items"].as_array().unwrap();
    let ids: Vec<String> = items.iter().map(id_of).collect();
    assert_eq!(
        ids,
        [b1.clone(), a2.clone()],
        "newest first, shared included"
    );
    assert_eq!(items[0]["role"], "owner");
    assert_eq!(items[1]["role"], "viewer");
    assert_eq!(items[1]["owner_id"], "user_a");
    assert!(!ids.contains(&a1));

    // Summaries: no cells.
    for item in items {
        assert!(item.get("cells").is_none(), "summary has cells: {item}");
        assert_rfc3339_utc(&item["created_at"]);
        assert_rfc3339_utc(&item["updated_at"]);
    }
    assert!(list_b.json["next_cursor"].is_null());
}

#[tokio::test]
async fn empty_list() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let r = app.get("/api/v1/notebooks", Some(&a)).await;
    r.assert_status(200);
    assert_eq!(r.json, json!({"items": [], "next_cursor": null}));
}

#[tokio::test]
async fn pagination_returns_every_item_once_newest_first() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let b = app.token("user_b");
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(
            app.create_notebook_id(&a, &format!("N{i}"), json!([]))
                .await,
        );
        // Noise from another user must not appear.
        app.create_notebook_id(&b, &format!("B{i}"), json!([]))
            .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => "/api/v1/notebooks?limit=3".to_string(),
            Some(c) => format!("/api/v1/notebooks?limit=3&cursor={c}"),
        };
        let r = app.get(&path, Some(&a)).await;
        r.assert_status(200);
        pages += 1;
        let items = r.json["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(id_of));
        match &r.json["next_cursor"] {
            Value::Null => break,
            Value::String(c) => cursor = Some(c.clone()),
            other => panic!("next_cursor must be a string or null: {other}"),
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = created.iter().rev().cloned().collect();
    assert_eq!(seen, expected, "every item exactly once, newest first");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 7);
}

#[tokio::test]
async fn exact_multiple_of_limit_ends_with_null_cursor() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    for i in 0..4 {
        app.create_notebook_id(&a, &format!("N{i}"), json!([]))
            .await;
    }
    let r = app.get("/api/v1/notebooks?limit=2", Some(&a)).await;
    let c = r.json["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let r = app
        .get(&format!("/api/v1/notebooks?limit=2&cursor={c}"), Some(&a))
        .await;
    r.assert_status(200);
    assert_eq!(r.json["items"].as_array().unwrap().len(), 2);
    if let Some(c) = r.json["next_cursor"].as_str() {
        // A cursor at the very end is allowed only if it leads to an empty page.
        let r = app
            .get(&format!("/api/v1/notebooks?limit=2&cursor={c}"), Some(&a))
            .await;
        assert_eq!(r.json, json!({"items": [], "next_cursor": null}));
    }
}

#[tokio::test]
async fn default_limit_is_50_and_200_is_the_max() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    for i in 0..3 {
        app.create_notebook_id(&a, &format!("N{i}"), json!([]))
            .await;
    }
    let r = app.get("/api/v1/notebooks", Some(&a)).await;
    assert_eq!(r.json["items"].as_array().unwrap().len(), 3);
    assert!(r.json["next_cursor"].is_null());
    let r = app.get("/api/v1/notebooks?limit=200", Some(&a)).await;
    r.assert_status(200);
    let r = app.get("/api/v1/notebooks?limit=1", Some(&a)).await;
    r.assert_status(200);
    assert_eq!(r.json["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_limit_is_400() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    for bad in [
        "0",
        "201",
        "abc",
        "-1",
        "",
        "1.5",
        "99999999999999999999999",
        "1&limit=2",
    ] {
        let r = app
            .get(&format!("/api/v1/notebooks?limit={bad}"), Some(&a))
            .await;
        assert_eq!(r.status, 400, "limit={bad}: {}", r.text);
        assert_error_shape(&r);
    }
}

#[tokio::test]
async fn forged_or_edited_cursor_is_400() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    for i in 0..3 {
        app.create_notebook_id(&a, &format!("N{i}"), json!([]))
            .await;
    }
    let r = app.get("/api/v1/notebooks?limit=1", Some(&a)).await;
    let cursor = r.json["next_cursor"].as_str().unwrap().to_string();
    // The real one works.
    app.get(
        &format!("/api/v1/notebooks?limit=1&cursor={cursor}"),
        Some(&a),
    )
    .await
    .assert_status(200);

    let mut edited = Vec::new();
    // Change one character of the payload and of the tag.
    for pos in [0, cursor.len() - 1] {
        let mut chars: Vec<char> = cursor.chars().collect();
        chars[pos] = if chars[pos] == 'A' { 'B' } else { 'A' };
        edited.push(chars.into_iter().collect::<String>());
    }
    // A payload we made up, with the original tag.
    let (_, tag) = cursor.split_once('.').unwrap();
    use base64::Engine;
    let fake = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("9999999999999999:{}", unknown_notebook_id()));
    edited.push(format!("{fake}.{tag}"));
    edited.push("garbage".into());
    edited.push(String::new());
    edited.push(format!("{cursor}.x"));
    for bad in edited {
        let r = app
            .get(&format!("/api/v1/notebooks?limit=1&cursor={bad}"), Some(&a))
            .await;
        assert_eq!(r.status, 400, "cursor {bad:?}: {}", r.text);
        assert_error_shape(&r);
    }

    // A cursor minted by another server (another key) is not accepted either.
    let other = spawn_app().await;
    let o = other.token("user_a");
    for i in 0..2 {
        other
            .create_notebook_id(&o, &format!("N{i}"), json!([]))
            .await;
    }
    let r = other.get("/api/v1/notebooks?limit=1", Some(&o)).await;
    let foreign = r.json["next_cursor"].as_str().unwrap().to_string();
    let r = app
        .get(
            &format!("/api/v1/notebooks?limit=1&cursor={foreign}"),
            Some(&a),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
}

// ---------------------------------------------------------------------------
// Rename (PATCH) and If-Match

#[tokio::test]
async fn patch_renames_and_returns_summary() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let n = app
        .create_notebook(&a, "Old", json!([{"cell_type": "code", "source": "1"}]))
        .await;
    let id = id_of(&n);
    let r = app
        .patch(&nb(&id), Some(&a), &json!({"title": "New"}))
        .await;
    r.assert_status(200);
    assert_eq!(r.json["title"], "New");
    assert_eq!(r.json["version"], 1);
    assert_eq!(r.json["role"], "owner");
    assert!(r.json.get("cells").is_none(), "PATCH returns a summary");
    assert_eq!(r.header("etag"), Some("\"1\""));
    let got = app.notebook(&a, &id).await;
    assert_eq!(got["title"], "New");
    assert_eq!(got["created_at"], n["created_at"]);
    assert_eq!(got["cells"], n["cells"], "a rename changes no cell");
    let before = chrono::DateTime::parse_from_rfc3339(n["updated_at"].as_str().unwrap()).unwrap();
    let after = chrono::DateTime::parse_from_rfc3339(got["updated_at"].as_str().unwrap()).unwrap();
    assert!(after >= before);
}

#[tokio::test]
async fn patch_with_stale_if_match_is_412() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = app.create_notebook_id(&a, "T0", json!([])).await;
    let etag0 = app
        .get(&nb(&id), Some(&a))
        .await
        .header("etag")
        .unwrap()
        .to_string();
    let r = app
        .req(Method::PATCH, &nb(&id))
        .bearer(Some(&a))
        .header("if-match", &etag0)
        .json(&json!({"title": "T1"}))
        .send()
        .await;
    r.assert_status(200);
    let etag1 = r.header("etag").unwrap().to_string();
    assert_ne!(etag0, etag1);

    // A second writer still holding version 0 loses.
    let r = app
        .req(Method::PATCH, &nb(&id))
        .bearer(Some(&a))
        .header("if-match", &etag0)
        .json(&json!({"title": "stale"}))
        .send()
        .await;
    r.assert_error(412, "precondition_failed");
    let n = app.notebook(&a, &id).await;
    assert_eq!(n["title"], "T1");
    assert_eq!(n["version"], 1);

    // The current ETag works, also in weak form; `*` matches anything.
    let r = app
        .req(Method::PATCH, &nb(&id))
        .bearer(Some(&a))
        .header("if-match", &format!("W/{etag1}"))
        .json(&json!({"title": "T2"}))
        .send()
        .await;
    r.assert_status(200);
    assert_eq!(r.json["version"], 2);
    let r = app
        .req(Method::PATCH, &nb(&id))
        .bearer(Some(&a))
        .header("if-match", "*")
        .json(&json!({"title": "T3"}))
        .send()
        .await;
    r.assert_status(200);
    assert_eq!(r.json["version"], 3);
}

#[tokio::test]
async fn patch_with_future_if_match_is_412() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = app.create_notebook_id(&a, "T0", json!([])).await;
    let r = app
        .req(Method::PATCH, &nb(&id))
        .bearer(Some(&a))
        .header("if-match", "\"5\"")
        .json(&json!({"title": "T1"}))
        .send()
        .await;
    r.assert_error(412, "precondition_failed");
}

#[tokio::test]
async fn patch_with_malformed_if_match_is_400() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = app.create_notebook_id(&a, "T0", json!([])).await;
    let r = app
        .req(Method::PATCH, &nb(&id))
        .bearer(Some(&a))
        .header("if-match", "\"abc\"")
        .json(&json!({"title": "T1"}))
        .send()
        .await;
    r.assert_client_error_in(&[400, 412]);
    assert_eq!(app.notebook(&a, &id).await["title"], "T0");
}

#[tokio::test]
async fn patch_bad_bodies_are_400() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = app.create_notebook_id(&a, "T0", json!([])).await;
    for body in [
        json!({}),
        json!({"title": "x", "owner_id": "user_b"}),
        json!({"title": "x", "version": 9}),
        json!({"title": "x", "id": unknown_notebook_id()}),
        json!({"title": "x", "cells": []}),
        json!({"title": 3}),
        json!({"name": "x"}),
    ] {
        let r = app.patch(&nb(&id), Some(&a), &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_error_shape(&r);
    }
    let n = app.notebook(&a, &id).await;
    assert_eq!(n["title"], "T0");
    assert_eq!(n["owner_id"], "user_a");
    assert_eq!(n["version"], 0);
}

// ---------------------------------------------------------------------------
// Delete

#[tokio::test]
async fn owner_deletes_and_then_everything_is_404() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let b = app.token("user_b");
    let id = app
        .create_notebook_id(
            &a,
            "Doomed",
            json!([{"cell_type": "code", "source": "", "id": "c"}]),
        )
        .await;
    app.share(&a, &id, "user_b", "editor").await;
    let r = app.delete(&nb(&id), Some(&a)).await;
    r.assert_status(204);
    assert!(r.text.is_empty());
    app.get(&nb(&id), Some(&a))
        .await
        .assert_error(404, "not_found");
    app.get(&nb(&id), Some(&b))
        .await
        .assert_error(404, "not_found");
    app.delete(&nb(&id), Some(&a))
        .await
        .assert_error(404, "not_found");
    app.get(&format!("{}/ipynb", nb(&id)), Some(&a))
        .await
        .assert_error(404, "not_found");
    app.get(&common::members(&id), Some(&a))
        .await
        .assert_error(404, "not_found");
    app.patch(&common::cell(&id, "c"), Some(&b), &json!({"source": "x"}))
        .await
        .assert_error(404, "not_found");
    app.post(&common::cells(&id), Some(&b), &json!({"cell_type": "code"}))
        .await
        .assert_error(404, "not_found");
    for token in [&a, &b] {
        let list = app.get("/api/v1/notebooks", Some(token)).await;
        assert_eq!(list.json["items"], json!([]));
    }
}

#[tokio::test]
async fn only_the_owner_may_delete() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let e = app.token("user_editor");
    let v = app.token("user_viewer");
    let id = app.create_notebook_id(&a, "T", json!([])).await;
    app.share(&a, &id, "user_editor", "editor").await;
    app.share(&a, &id, "user_viewer", "viewer").await;
    app.delete(&nb(&id), Some(&e))
        .await
        .assert_error(403, "forbidden");
    app.delete(&nb(&id), Some(&v))
        .await
        .assert_error(403, "forbidden");
    app.notebook(&a, &id).await;
}

// ---------------------------------------------------------------------------
// .ipynb export and import

#[tokio::test]
async fn export_is_nbformat_4_5_with_rest_cell_ids() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let n = app
        .create_notebook(
            &a,
            "Export me",
            json!([
                {"cell_type": "markdown", "source": "# Title\ntext"},
                {"cell_type": "code", "source": "x = 1\nprint(x)", "id": "my-code"},
                {"cell_type": "raw", "source": "raw"},
            ]),
        )
        .await;
    let id = id_of(&n);
    let r = app.get(&format!("{}/ipynb", nb(&id)), Some(&a)).await;
    r.assert_status(200);
    let doc = &r.json;
    assert_eq!(doc["nbformat"], 4);
    assert_eq!(doc["nbformat_minor"], 5);
    assert!(doc["metadata"].is_object());
    let cells = doc["cells"].as_array().unwrap();
    let exported: Vec<String> = cells.iter().map(id_of).collect();
    assert_eq!(exported, cell_ids(&n), "exported ids are the REST ids");
    assert_eq!(cells[1]["id"], "my-code");
    let types: Vec<&str> = cells
        .iter()
        .map(|c| c["cell_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["markdown", "code", "raw"]);
    // Source may be a string or a list of lines in nbformat; joined it is ours.
    let joined = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(|l| l.as_str().unwrap()).collect(),
        other => panic!("bad source {other}"),
    };
    assert_eq!(joined(&cells[0]["source"]), "# Title\ntext");
    assert_eq!(joined(&cells[1]["source"]), "x = 1\nprint(x)");
    assert!(cells[1]["outputs"].is_array());
    assert!(cells[1].get("execution_count").is_some());
    assert!(cells[0].get("outputs").is_none());
}

#[tokio::test]
async fn members_may_export() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let v = app.token("user_v");
    let id = app.create_notebook_id(&a, "T", json!([])).await;
    app.share(&a, &id, "user_v", "viewer").await;
    let r = app.get(&format!("{}/ipynb", nb(&id)), Some(&v)).await;
    r.assert_status(200);
    assert_eq!(r.json["nbformat"], 4);
}

fn ipynb(metadata: Value, cells: Value) -> Vec<u8> {
    json!({"nbformat": 4, "nbformat_minor": 5, "metadata": metadata, "cells": cells})
        .to_string()
        .into_bytes()
}

async fn import(app: &common::TestApp, token: &str, query: &str, body: Vec<u8>) -> common::Resp {
    app.req(Method::POST, &format!("/api/v1/notebooks/import{query}"))
        .bearer(Some(token))
        .header("content-type", "application/x-ipynb+json")
        .raw(body)
        .send()
        .await
}

#[tokio::test]
async fn import_with_title_query() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let body = ipynb(
        json!({"title": "From metadata", "kernelspec": {"name": "python3"}}),
        json!([
            {"cell_type": "code", "id": "imp-1", "source": ["a = 1\n", "a"], "metadata": {},
             "outputs": [], "execution_count": null},
            {"cell_type": "markdown", "id": "imp-2", "source": "text", "metadata": {}},
        ]),
    );
    let r = import(&app, &a, "?title=My%20import", body).await;
    r.assert_status(201);
    let id = id_of(&r.json);
    assert_eq!(r.header("location"), Some(nb(&id).as_str()));
    assert_eq!(r.json["title"], "My import");
    assert_eq!(r.json["owner_id"], "user_a");
    assert_eq!(r.json["role"], "owner");
    assert_eq!(r.json["version"], 0);
    assert_eq!(cell_ids(&r.json), ["imp-1", "imp-2"]);
    assert_eq!(r.json["cells"][0]["source"], "a = 1\na");
    assert_eq!(r.json["cells"][0]["version"], 1);

    let list = app.get("/api/v1/notebooks", Some(&a)).await;
    assert_eq!(list.json["items"][0]["id"], id.as_str());

    // Top-level metadata round-trips through export.
    let doc = app.get(&format!("{}/ipynb", nb(&id)), Some(&a)).await;
    assert_eq!(doc.json["metadata"]["kernelspec"]["name"], "python3");
}

#[tokio::test]
async fn import_title_from_metadata_else_untitled() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let r = import(
        &app,
        &a,
        "",
        ipynb(json!({"title": "Meta title"}), json!([])),
    )
    .await;
    r.assert_status(201);
    assert_eq!(r.json["title"], "Meta title");

    let r = import(&app, &a, "", ipynb(json!({}), json!([]))).await;
    r.assert_status(201);
    assert_eq!(r.json["title"], "Untitled");
}

#[tokio::test]
async fn import_of_older_minor_version_gets_cell_ids() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let body = json!({"nbformat": 4, "nbformat_minor": 2, "metadata": {}, "cells": [
        {"cell_type": "code", "source": "1", "metadata": {}, "outputs": [], "execution_count": 3},
    ]})
    .to_string()
    .into_bytes();
    let r = import(&app, &a, "", body).await;
    r.assert_status(201);
    let cid = r.json["cells"][0]["id"].as_str().unwrap();
    assert!(is_nbformat_cell_id(cid));
    assert_eq!(r.json["cells"][0]["execution_count"], 3);
}

#[tokio::test]
async fn import_garbage_is_400() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let bodies: Vec<Vec<u8>> = vec![
        b"not json at all".to_vec(),
        b"".to_vec(),
        b"{}".to_vec(),
        b"[1,2,3]".to_vec(),
        br#"{"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "cells": []}"#.to_vec(),
        br#"{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": "nope"}"#.to_vec(),
        br#"{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "bogus", "source": ""}]}"#.to_vec(),
        vec![0xff, 0xfe, 0x00],
    ];
    for body in bodies {
        let shown = String::from_utf8_lossy(&body).to_string();
        let r = import(&app, &a, "", body).await;
        assert_eq!(r.status, 400, "{shown:?}: {}", r.text);
        assert_error_shape(&r);
    }
    let list = app.get("/api/v1/notebooks", Some(&a)).await;
    assert_eq!(list.json["items"], json!([]), "nothing was imported");
}

#[tokio::test]
async fn import_has_its_own_larger_body_limit() {
    let app = spawn_app_with(LimitArgs {
        max_body_bytes: 1024,
        max_import_bytes: 8 * 1024,
        ..LimitArgs::default()
    })
    .await;
    let a = app.token("user_a");
    // 4 KiB: over the JSON limit, under the import limit.
    let body = ipynb(
        json!({}),
        json!([{"cell_type": "markdown", "id": "m", "source": "x".repeat(4096), "metadata": {}}]),
    );
    let r = import(&app, &a, "?title=Big", body).await;
    r.assert_status(201);
    // 16 KiB: over the import limit.
    let body = ipynb(
        json!({}),
        json!([{"cell_type": "markdown", "id": "m", "source": "x".repeat(16 * 1024), "metadata": {}}]),
    );
    let r = import(&app, &a, "?title=Too%20big", body).await;
    r.assert_error(413, "payload_too_large");
}

#[tokio::test]
async fn import_respects_cell_and_title_limits() {
    let app = spawn_app_with(LimitArgs {
        max_cells: 2,
        ..LimitArgs::default()
    })
    .await;
    let a = app.token("user_a");
    let cell = json!({"cell_type": "raw", "source": "", "metadata": {}});
    let r = import(&app, &a, "", ipynb(json!({}), json!([cell, cell, cell]))).await;
    r.assert_client_error_in(&[400, 413, 422]);
    let long = "t".repeat(201);
    let r = import(
        &app,
        &a,
        &format!("?title={long}"),
        ipynb(json!({}), json!([])),
    )
    .await;
    r.assert_client_error_in(&[400, 422]);
}

#[tokio::test]
async fn import_keeps_outputs_and_blank_title_query_falls_back() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let body = ipynb(
        json!({"title": "Meta"}),
        json!([{"cell_type": "code", "id": "out", "source": "1+1", "metadata": {},
                "outputs": [{"output_type": "execute_result", "execution_count": 4,
                             "data": {"text/plain": ["2"]}, "metadata": {}}],
                "execution_count": 4}]),
    );
    let r = import(&app, &a, "?title=%20%20", body).await;
    r.assert_status(201);
    assert_eq!(r.json["title"], "Meta");
    let id = id_of(&r.json);
    let n = app.notebook(&a, &id).await;
    assert_eq!(n["cells"][0]["execution_count"], 4);
    assert_eq!(n["cells"][0]["outputs"][0]["output_type"], "execute_result");
}

// ---------------------------------------------------------------------------
// More pagination

#[tokio::test]
async fn pagination_over_owned_and_shared_notebooks() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let b = app.token("user_b");
    let mut expected = Vec::new();
    for i in 0..6 {
        let id = if i % 2 == 0 {
            app.create_notebook_id(&b, &format!("B{i}"), json!([]))
                .await
        } else {
            let id = app
                .create_notebook_id(&a, &format!("A{i}"), json!([]))
                .await;
            app.share(&a, &id, "user_b", if i == 1 { "viewer" } else { "editor" })
                .await;
            id
        };
        expected.push(id);
        // A's private notebooks never show up for B.
        app.create_notebook_id(&a, &format!("private{i}"), json!([]))
            .await;
    }
    expected.reverse();
    let mut seen = Vec::new();
    let mut path = "/api/v1/notebooks?limit=2".to_string();
    loop {
        let r = app.get(&path, Some(&b)).await;
        r.assert_status(200);
        seen.extend(r.json["items"].as_array().unwrap().iter().map(id_of));
        match r.json["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/notebooks?limit=2&cursor={c}"),
            None => break,
        }
        assert!(seen.len() <= 12, "pagination does not end");
    }
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn cursor_survives_deletion_of_the_item_it_points_after() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(
            app.create_notebook_id(&a, &format!("N{i}"), json!([]))
                .await,
        );
    }
    let r = app.get("/api/v1/notebooks?limit=2", Some(&a)).await;
    let page1: Vec<String> = r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(page1, [created[4].clone(), created[3].clone()]);
    let cursor = r.json["next_cursor"].as_str().unwrap().to_string();
    app.delete(&nb(&created[3]), Some(&a))
        .await
        .assert_status(204);
    let r = app
        .get(
            &format!("/api/v1/notebooks?limit=2&cursor={cursor}"),
            Some(&a),
        )
        .await;
    r.assert_status(200);
    let page2: Vec<String> = r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(page2, [created[2].clone(), created[1].clone()]);
}

#[tokio::test]
async fn updated_at_moves_with_each_op_and_list_shows_current_version() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let n = app.create_notebook(&a, "T", json!([])).await;
    let id = id_of(&n);
    assert_eq!(n["created_at"], n["updated_at"]);
    app.insert_cell(&a, &id, json!({"cell_type": "code"})).await;
    let after = app.notebook(&a, &id).await;
    let t0 = chrono::DateTime::parse_from_rfc3339(n["updated_at"].as_str().unwrap()).unwrap();
    let t1 = chrono::DateTime::parse_from_rfc3339(after["updated_at"].as_str().unwrap()).unwrap();
    assert!(
        t1 > t0,
        "updated_at is the time of the last op: {t0} -> {t1}"
    );
    assert_eq!(after["created_at"], n["created_at"]);
    let list = app.get("/api/v1/notebooks", Some(&a)).await;
    assert_eq!(list.json["items"][0]["version"], 1);
    assert_eq!(list.json["items"][0]["updated_at"], after["updated_at"]);
}

// ---------------------------------------------------------------------------
// Hostile JSON is a 400, never a 500

#[tokio::test]
async fn hostile_json_is_400() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let deep = format!(
        "{{\"title\":\"T\",\"cells\":[{{\"cell_type\":\"code\",\"metadata\":{{\"x\":{}1{}}}}}]}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let bodies = [
        deep,
        r#"{"title":"a","title":"b"}"#.to_string(),
        r#"{"title":"\ud800"}"#.to_string(),
        "{\"title\":\"T\"} trailing".to_string(),
        "\u{feff}{\"title\":\"T\"}".to_string(),
    ];
    for body in bodies {
        let r = app
            .req(Method::POST, "/api/v1/notebooks")
            .bearer(Some(&a))
            .raw(body.clone())
            .send()
            .await;
        assert_eq!(r.status, 400, "{:.80}: {}", body, r.text);
        assert_error_shape(&r);
    }
    let list = app.get("/api/v1/notebooks", Some(&a)).await;
    assert_eq!(list.json["items"], json!([]));
}
