//! Black-box tests of the cell endpoints: insert, update (base_version and
//! 409), delete, move, versions, cell JSON shapes, and who may do what.

mod common;

use common::{
    assert_error_shape, cell, cell_ids, cells, id_of, nb, spawn_app, unknown_notebook_id, TestApp,
};
use serde_json::{json, Value};

/// A notebook of user_a with cells a, b, c, d (code) and its id.
async fn abcd(app: &TestApp, token: &str) -> String {
    app.create_notebook_id(
        token,
        "ABCD",
        json!([
            {"cell_type": "code", "source": "a", "id": "a"},
            {"cell_type": "code", "source": "b", "id": "b"},
            {"cell_type": "code", "source": "c", "id": "c"},
            {"cell_type": "code", "source": "d", "id": "d"},
        ]),
    )
    .await
}

fn move_path(id: &str, cell_id: &str) -> String {
    format!("{}/move", cell(id, cell_id))
}

fn find_cell<'a>(notebook: &'a Value, cell_id: &str) -> &'a Value {
    notebook["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == cell_id)
        .unwrap_or_else(|| panic!("no cell {cell_id} in {notebook}"))
}

// ---------------------------------------------------------------------------
// Cell JSON

#[tokio::test]
async fn code_cells_have_outputs_and_execution_count_others_do_not() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = app.create_notebook_id(&a, "T", json!([])).await;
    let code = app
        .insert_cell(&a, &id, json!({"cell_type": "code", "source": "1+1"}))
        .await;
    let mut keys: Vec<&str> = code
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "cell_type",
            "execution_count",
            "id",
            "metadata",
            "outputs",
            "source",
            "version"
        ]
    );
    assert_eq!(code["outputs"], json!([]));
    assert!(code["execution_count"].is_null());
    assert_eq!(code["metadata"], json!({}));

    for t in ["markdown", "raw"] {
        let c = app
            .insert_cell(&a, &id, json!({"cell_type": t, "source": "x"}))
            .await;
        let mut keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["cell_type", "id", "metadata", "source", "version"],
            "{t}"
        );
        assert_eq!(c["cell_type"], t);
    }
    // The same shapes inside the notebook.
    let n = app.notebook(&a, &id).await;
    assert!(n["cells"][0].get("outputs").is_some());
    assert!(n["cells"][1].get("outputs").is_none());
    assert!(n["cells"][2].get("execution_count").is_none());
}

// ---------------------------------------------------------------------------
// Insert

#[tokio::test]
async fn insert_without_index_appends_with_version_1() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = abcd(&app, &a).await;
    let r = app
        .post(
            &cells(&id),
            Some(&a),
            &json!({"cell_type": "markdown", "source": "end"}),
        )
        .await;
    r.assert_status(201);
    assert_eq!(r.json["version"], 1, "a new cell has version 1");
    assert_eq!(r.json["source"], "end");
    let new_id = id_of(&r.json);
    let n = app.notebook(&a, &id).await;
    assert_eq!(cell_ids(&n), ["a", "b", "c", "d", new_id.as_str()]);
    assert_eq!(n["version"], 1, "an insert is one op");
    assert_eq!(*find_cell(&n, &new_id), r.json);
}

#[tokio::test]
async fn insert_at_index() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = abcd(&app, &a).await;
    app.insert_cell(
        &a,
        &id,
        json!({"cell_type": "code", "id": "first", "index": 0}),
    )
    .await;
    app.insert_cell(
        &a,
        &id,
        json!({"cell_type": "code", "id": "mid", "index": 3}),
    )
    .await;
    // index == number of cells is the end.
    app.insert_cell(
        &a,
        &id,
        json!({"cell_type": "code", "id": "last", "index": 6}),
    )
    .await;
    let n = app.notebook(&a, &id).await;
    assert_eq!(cell_ids(&n), ["first", "a", "b", "mid", "c", "d", "last"]);
    assert_eq!(n["version"], 3);
}

#[tokio::test]
async fn insert_into_empty_notebook_at_0() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = app.create_notebook_id(&a, "T", json!([])).await;
    app.insert_cell(&a, &id, json!({"cell_type": "code", "id": "x", "index": 0}))
        .await;
    assert_eq!(cell_ids(&app.notebook(&a, &id).await), ["x"]);
}

#[tokio::test]
async fn insert_out_of_range_is_400() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = abcd(&app, &a).await;
    for index in [json!(5), json!(1000), json!(-1), json!(1.5), json!("0")] {
        let r = app
            .post(
                &cells(&id),
                Some(&a),
                &json!({"cell_type": "code", "index": index}),
            )
            .await;
        assert_eq!(r.status, 400, "index {index}: {}", r.text);
        assert_error_shape(&r);
    }
    let n = app.notebook(&a, &id).await;
    assert_eq!(cell_ids(&n), ["a", "b", "c", "d"]);
    assert_eq!(n["version"], 0);
}

#[tokio::test]
async fn insert_honours_client_id_and_refuses_duplicates() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = abcd(&app, &a).await;
    let c = app
        .insert_cell(
            &a,
            &id,
            json!({"cell_type": "code", "source": "", "id": "client-id_9"}),
        )
        .await;
    assert_eq!(c["id"], "client-id_9");
    for dup in ["a", "client-id_9"] {
        let r = app
            .post(
                &cells(&id),
                Some(&a),
                &json!({"cell_type": "code", "source": "dup", "id": dup}),
            )
            .await;
        r.assert_error(409, "conflict");
    }
    let n = app.notebook(&a, &id).await;
    assert_eq!(n["version"], 1);
    assert_eq!(find_cell(&n, "a")["source"], "a");
}

#[tokio::test]
async fn same_client_id_in_two_notebooks_is_independent() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let b = app.token("user_b");
    let one = app
        .create_notebook_id(
            &a,
            "One",
            json!([{"cell_type": "code", "source": "one", "id": "intro"}]),
        )
        .await;
    // Another notebook, even another user's, may use the same id.
    let two = app
        .create_notebook_id(
            &b,
            "Two",
            json!([{"cell_type": "code", "source": "two", "id": "intro"}]),
        )
        .await;
    let three = app.create_notebook_id(&a, "Three", json!([])).await;
    app.insert_cell(
        &a,
        &three,
        json!({"cell_type": "code", "source": "three", "id": "intro"}),
    )
    .await;
    // Changing one changes only that one.
    app.patch(&cell(&two, "intro"), Some(&b), &json!({"source": "two!"}))
        .await
        .assert_status(200);
    app.delete(&cell(&three, "intro"), Some(&a))
        .await
        .assert_status(204);
    assert_eq!(
        find_cell(&app.notebook(&a, &one).await, "intro")["source"],
        "one"
    );
    assert_eq!(
        find_cell(&app.notebook(&b, &two).await, "intro")["source"],
        "two!"
    );
    assert_eq!(app.notebook(&a, &three).await["cells"], json!([]));
}

#[tokio::test]
async fn insert_bad_bodies_are_400() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = abcd(&app, &a).await;
    for body in [
        json!({}),
        json!({"source": "no type"}),
        json!({"cell_type": "sql"}),
        json!({"cell_type": "code", "version": 5}),
        json!({"cell_type": "code", "outputs": [{"output_type": "stream"}]}),
        json!({"cell_type": "code", "execution_count": 3}),
        json!({"cell_type": "code", "unknown": true}),
        json!({"cell_type": "code", "id": "bad id"}),
        json!({"cell_type": "code", "id": "x".repeat(65)}),
        json!({"cell_type": "code", "metadata": []}),
    ] {
        let r = app.post(&cells(&id), Some(&a), &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_error_shape(&r);
    }
    assert_eq!(app.notebook(&a, &id).await["version"], 0);
}

#[tokio::test]
async fn insert_with_metadata() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = app.create_notebook_id(&a, "T", json!([])).await;
    let c = app
        .insert_cell(
            &a,
            &id,
            json!({"cell_type": "code", "metadata": {"tags": ["x"]}}),
        )
        .await;
    assert_eq!(c["metadata"], json!({"tags": ["x"]}));
    assert_eq!(c["source"], "");
}

// ---------------------------------------------------------------------------
// Update

#[tokio::test]
async fn update_bumps_cell_and_notebook_versions() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = abcd(&app, &a).await;
    let r = app
        .patch(&cell(&id, "b"), Some(&a), &json!({"source": "b2"}))
        .await;
    r.assert_status(200);
    assert_eq!(r.json["id"], "b");
    assert_eq!(r.json["source"], "b2");
    assert_eq!(r.json["version"], 2);
    let r = app
        .patch(
            &cell(&id, "b"),
            Some(&a),
            &json!({"source": "b3", "base_version": 2}),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.json["version"], 3);
    let n = app.notebook(&a, &id).await;
    assert_eq!(n["version"], 2);
    assert_eq!(*find_cell(&n, "b"), r.json);
    assert_eq!(find_cell(&n, "a")["version"], 1, "other cells untouched");
}

#[tokio::test]
async fn stale_base_version_is_409_with_the_current_cell() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = abcd(&app, &a).await;
    // Someone else edits first (1 -> 2).
    app.patch(
        &cell(&id, "c"),
        Some(&a),
        &json!({"source": "theirs", "base_version": 1}),
    )
    .await
    .assert_status(200);
    let r = app
        .patch(
            &cell(&id, "c"),
            Some(&a),
            &json!({"source": "mine", "base_version": 1}),
        )
        .await;
    r.assert_error(409, "conflict");
    let n = app.notebook(&a, &id).await;
    let current = find_cell(&n, "c");
    assert_eq!(
        r.json["error"]["current"], *current,
        "409 carries the current cell"
    );
    assert_eq!(current["source"], "theirs");
    assert_eq!(current["version"], 2);
    assert_eq!(n["version"], 1, "the refused update is not an op");

    // A base_version from the future is stale too.
    let r = app
        .patch(
            &cell(&id, "c"),
            Some(&a),
            &json!({"source": "mine", "base_version": 99}),
        )
        .await;
    r.assert_error(409, "conflict");
    assert_eq!(r.json["error"]["current"]["version"], 2);
}

#[tokio::test]
async fn update_metadata_replaces_the_whole_object() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = app
        .create_notebook_id(
            &a,
            "T",
            json!([{"cell_type": "code", "id": "m", "metadata": {"tags": ["x"], "collapsed": true}}]),
        )
        .await;
    let r = app
        .patch(
            &cell(&id, "m"),
            Some(&a),
            &json!({"metadata": {"scrolled": false}}),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.json["metadata"], json!({"scrolled": false}));
    assert_eq!(
        find_cell(&app.notebook(&a, &id).await, "m")["metadata"],
        json!({"scrolled": false})
    );
}

#[tokio::test]
async fn update_cell_type_changes_the_shape() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = abcd(&app, &a).await;
    let r = app
        .patch(&cell(&id, "a"), Some(&a), &json!({"cell_type": "markdown"}))
        .await;
    r.assert_status(200);
    assert_eq!(r.json["cell_type"], "markdown");
    assert!(r.json.get("outputs").is_none());
    assert!(r.json.get("execution_count").is_none());
    assert_eq!(r.json["source"], "a", "source kept");
    let r = app
        .patch(&cell(&id, "a"), Some(&a), &json!({"cell_type": "code"}))
        .await;
    r.assert_status(200);
    assert_eq!(r.json["outputs"], json!([]));
    assert!(r.json["execution_count"].is_null());
    assert_eq!(r.json["version"], 3);
}

#[tokio::test]
async fn update_bad_bodies_are_400() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = abcd(&app, &a).await;
    for body in [
        json!({}),
        json!({"base_version": 1}),
        json!({"source": "x", "version": 5}),
        json!({"source": "x", "id": "z"}),
        json!({"source": "x", "outputs": []}),
        json!({"source": 5}),
        json!({"cell_type": "sql"}),
        json!({"source": "x", "base_version": "1"}),
    ] {
        let r = app.patch(&cell(&id, "a"), Some(&a), &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_error_shape(&r);
    }
    let n = app.notebook(&a, &id).await;
    assert_eq!(n["version"], 0);
    assert_eq!(find_cell(&n, "a")["source"], "a");
}

// ---------------------------------------------------------------------------
// Delete

#[tokio::test]
async fn delete_cell_then_404() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = abcd(&app, &a).await;
    let r = app.delete(&cell(&id, "b"), Some(&a)).await;
    r.assert_status(204);
    assert!(r.text.is_empty());
    let n = app.notebook(&a, &id).await;
    assert_eq!(cell_ids(&n), ["a", "c", "d"]);
    assert_eq!(n["version"], 1);
    app.delete(&cell(&id, "b"), Some(&a))
        .await
        .assert_error(404, "not_found");
    app.patch(&cell(&id, "b"), Some(&a), &json!({"source": "x"}))
        .await
        .assert_error(404, "not_found");
    app.post(&move_path(&id, "b"), Some(&a), &json!({"index": 0}))
        .await
        .assert_error(404, "not_found");
    assert_eq!(app.notebook(&a, &id).await["version"], 1);
}

// ---------------------------------------------------------------------------
// Move

#[tokio::test]
async fn move_index_is_the_position_after_the_move() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = abcd(&app, &a).await;

    let r = app
        .post(&move_path(&id, "a"), Some(&a), &json!({"index": 2}))
        .await;
    r.assert_status(200);
    assert_eq!(
        cell_ids(&r.json),
        ["b", "c", "a", "d"],
        "move returns the full notebook"
    );
    assert_eq!(r.json["version"], 1);
    assert_eq!(
        find_cell(&r.json, "a")["version"],
        1,
        "a move does not change the cell's version"
    );

    let r = app
        .post(&move_path(&id, "d"), Some(&a), &json!({"index": 0}))
        .await;
    r.assert_status(200);
    assert_eq!(cell_ids(&r.json), ["d", "b", "c", "a"]);

    let r = app
        .post(&move_path(&id, "b"), Some(&a), &json!({"index": 3}))
        .await;
    r.assert_status(200);
    assert_eq!(cell_ids(&r.json), ["d", "c", "a", "b"]);
    assert_eq!(r.json["version"], 3);

    // A move to the same index is still one op.
    let r = app
        .post(&move_path(&id, "c"), Some(&a), &json!({"index": 1}))
        .await;
    r.assert_status(200);
    assert_eq!(cell_ids(&r.json), ["d", "c", "a", "b"]);
    assert_eq!(r.json["version"], 4);

    let n = app.notebook(&a, &id).await;
    assert_eq!(n, r.json);
    for c in n["cells"].as_array().unwrap() {
        assert_eq!(c["version"], 1);
    }
}

#[tokio::test]
async fn move_out_of_range_is_400() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = abcd(&app, &a).await;
    for body in [
        json!({"index": 4}),
        json!({"index": 100}),
        json!({"index": -1}),
        json!({}),
        json!({"index": 0, "extra": 1}),
    ] {
        let r = app.post(&move_path(&id, "a"), Some(&a), &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_error_shape(&r);
    }
    let n = app.notebook(&a, &id).await;
    assert_eq!(cell_ids(&n), ["a", "b", "c", "d"]);
    assert_eq!(n["version"], 0);
}

// ---------------------------------------------------------------------------
// Versions across ops

#[tokio::test]
async fn every_op_bumps_the_notebook_version_by_one() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let n = app.create_notebook(&a, "T", json!([])).await;
    let id = id_of(&n);
    assert_eq!(n["version"], 0);
    let c = app
        .insert_cell(&a, &id, json!({"cell_type": "code", "id": "x"}))
        .await;
    assert_eq!(c["version"], 1);
    assert_eq!(app.notebook(&a, &id).await["version"], 1);
    app.insert_cell(&a, &id, json!({"cell_type": "code", "id": "y"}))
        .await;
    assert_eq!(app.notebook(&a, &id).await["version"], 2);
    app.patch(&cell(&id, "x"), Some(&a), &json!({"source": "1"}))
        .await
        .assert_status(200);
    assert_eq!(app.notebook(&a, &id).await["version"], 3);
    app.post(&move_path(&id, "x"), Some(&a), &json!({"index": 1}))
        .await
        .assert_status(200);
    assert_eq!(app.notebook(&a, &id).await["version"], 4);
    app.patch(&nb(&id), Some(&a), &json!({"title": "T2"}))
        .await
        .assert_status(200);
    assert_eq!(app.notebook(&a, &id).await["version"], 5);
    app.delete(&cell(&id, "y"), Some(&a))
        .await
        .assert_status(204);
    let n = app.notebook(&a, &id).await;
    assert_eq!(n["version"], 6);
    assert_eq!(find_cell(&n, "x")["version"], 2);
}

// ---------------------------------------------------------------------------
// Which cell, which notebook

#[tokio::test]
async fn cell_of_another_notebook_is_404() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let one = abcd(&app, &a).await;
    let two = app
        .create_notebook_id(
            &a,
            "Two",
            json!([{"cell_type": "code", "source": "z", "id": "only-in-two"}]),
        )
        .await;
    let r = app
        .patch(
            &cell(&one, "only-in-two"),
            Some(&a),
            &json!({"source": "x"}),
        )
        .await;
    r.assert_error(404, "not_found");
    app.delete(&cell(&one, "only-in-two"), Some(&a))
        .await
        .assert_error(404, "not_found");
    app.post(
        &move_path(&one, "only-in-two"),
        Some(&a),
        &json!({"index": 0}),
    )
    .await
    .assert_error(404, "not_found");
    assert_eq!(app.notebook(&a, &one).await["version"], 0);
    let two_n = app.notebook(&a, &two).await;
    assert_eq!(two_n["version"], 0);
    assert_eq!(find_cell(&two_n, "only-in-two")["source"], "z");
}

#[tokio::test]
async fn unknown_or_malformed_cell_id_is_404() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = abcd(&app, &a).await;
    for bad in ["nope".to_string(), "x".repeat(65), "bad%20id".to_string()] {
        let r = app
            .patch(&cell(&id, &bad), Some(&a), &json!({"source": "x"}))
            .await;
        assert_eq!(r.status, 404, "{bad}: {}", r.text);
        assert_error_shape(&r);
        let r = app.delete(&cell(&id, &bad), Some(&a)).await;
        assert_eq!(r.status, 404, "{bad}: {}", r.text);
    }
}

#[tokio::test]
async fn cell_routes_on_unknown_or_malformed_notebook() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let unknown = unknown_notebook_id();
    app.post(&cells(&unknown), Some(&a), &json!({"cell_type": "code"}))
        .await
        .assert_error(404, "not_found");
    app.patch(&cell(&unknown, "a"), Some(&a), &json!({"source": "x"}))
        .await
        .assert_error(404, "not_found");
    app.delete(&cell(&unknown, "a"), Some(&a))
        .await
        .assert_error(404, "not_found");
    app.post(&move_path(&unknown, "a"), Some(&a), &json!({"index": 0}))
        .await
        .assert_error(404, "not_found");

    let r = app
        .post(
            &cells("not-a-uuid"),
            Some(&a),
            &json!({"cell_type": "code"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_error_shape(&r);
    let r = app
        .patch(&cell("not-a-uuid", "a"), Some(&a), &json!({"source": "x"}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = app.delete(&cell("not-a-uuid", "a"), Some(&a)).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = app
        .post(
            &move_path("not-a-uuid", "a"),
            Some(&a),
            &json!({"index": 0}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
}

// ---------------------------------------------------------------------------
// Roles

#[tokio::test]
async fn viewer_reads_but_every_write_is_403() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let v = app.token("user_v");
    let id = abcd(&app, &a).await;
    app.share(&a, &id, "user_v", "viewer").await;

    let r = app.get(&nb(&id), Some(&v)).await;
    r.assert_status(200);
    assert_eq!(r.json["role"], "viewer");
    assert_eq!(cell_ids(&r.json), ["a", "b", "c", "d"]);
    app.get(&format!("{}/ipynb", nb(&id)), Some(&v))
        .await
        .assert_status(200);
    app.get(&common::members(&id), Some(&v))
        .await
        .assert_status(200);

    app.post(
        &cells(&id),
        Some(&v),
        &json!({"cell_type": "code", "source": "v"}),
    )
    .await
    .assert_error(403, "forbidden");
    app.patch(&cell(&id, "a"), Some(&v), &json!({"source": "v"}))
        .await
        .assert_error(403, "forbidden");
    app.patch(
        &cell(&id, "a"),
        Some(&v),
        &json!({"source": "v", "base_version": 1}),
    )
    .await
    .assert_error(403, "forbidden");
    app.delete(&cell(&id, "a"), Some(&v))
        .await
        .assert_error(403, "forbidden");
    app.post(&move_path(&id, "a"), Some(&v), &json!({"index": 3}))
        .await
        .assert_error(403, "forbidden");
    app.patch(&nb(&id), Some(&v), &json!({"title": "viewer was here"}))
        .await
        .assert_error(403, "forbidden");

    let n = app.notebook(&a, &id).await;
    assert_eq!(n["version"], 0, "nothing changed");
    assert_eq!(n["title"], "ABCD");
    assert_eq!(cell_ids(&n), ["a", "b", "c", "d"]);
    assert_eq!(find_cell(&n, "a")["source"], "a");
}

#[tokio::test]
async fn editor_may_write_cells_and_rename() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let e = app.token("user_e");
    let id = abcd(&app, &a).await;
    app.share(&a, &id, "user_e", "editor").await;
    let r = app.get(&nb(&id), Some(&e)).await;
    assert_eq!(r.json["role"], "editor");
    app.insert_cell(&e, &id, json!({"cell_type": "code", "id": "e1"}))
        .await;
    app.patch(&cell(&id, "a"), Some(&e), &json!({"source": "edited"}))
        .await
        .assert_status(200);
    let r = app
        .post(&move_path(&id, "e1"), Some(&e), &json!({"index": 0}))
        .await;
    r.assert_status(200);
    assert_eq!(r.json["role"], "editor");
    app.delete(&cell(&id, "d"), Some(&e))
        .await
        .assert_status(204);
    let r = app
        .patch(&nb(&id), Some(&e), &json!({"title": "Renamed"}))
        .await;
    r.assert_status(200);
    assert_eq!(r.json["role"], "editor");
    let n = app.notebook(&a, &id).await;
    assert_eq!(n["version"], 5);
    assert_eq!(n["owner_id"], "user_a", "editing does not change the owner");
    assert_eq!(cell_ids(&n), ["e1", "a", "b", "c"]);
}

#[tokio::test]
async fn huge_indexes_are_400() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = abcd(&app, &a).await;
    for index in [
        json!(u64::MAX),
        json!(i64::MAX),
        json!(1u64 << 53),
        json!(1e300),
    ] {
        let r = app
            .post(
                &cells(&id),
                Some(&a),
                &json!({"cell_type": "code", "index": index}),
            )
            .await;
        assert_eq!(r.status, 400, "insert at {index}: {}", r.text);
        assert_error_shape(&r);
        let r = app
            .post(&move_path(&id, "a"), Some(&a), &json!({"index": index}))
            .await;
        assert_eq!(r.status, 400, "move to {index}: {}", r.text);
        assert_error_shape(&r);
    }
    assert_eq!(app.notebook(&a, &id).await["version"], 0);
}

// ---------------------------------------------------------------------------
// Concurrent writers (one change path, serialized per notebook)

#[tokio::test]
async fn concurrent_updates_with_one_base_version_let_exactly_one_win() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = abcd(&app, &a).await;
    let requests = (0..10).map(|i| {
        let (app, a, id) = (&app, &a, &id);
        async move {
            app.patch(
                &cell(id, "a"),
                Some(a),
                &json!({"source": format!("w{i}"), "base_version": 1}),
            )
            .await
        }
    });
    let results = futures::future::join_all(requests).await;
    let ok: Vec<_> = results.iter().filter(|r| r.status == 200).collect();
    let conflicts = results.iter().filter(|r| r.status == 409).count();
    assert_eq!(
        ok.len(),
        1,
        "{:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(conflicts, 9);
    let n = app.notebook(&a, &id).await;
    assert_eq!(n["version"], 1);
    assert_eq!(*find_cell(&n, "a"), ok[0].json);
    for r in results.iter().filter(|r| r.status == 409) {
        assert_eq!(r.json["error"]["current"], ok[0].json);
    }
}

#[tokio::test]
async fn concurrent_inserts_are_all_applied_once() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = app.create_notebook_id(&a, "T", json!([])).await;
    let requests = (0..20).map(|i| {
        let (app, a, id) = (&app, &a, &id);
        async move {
            app.post(
                &cells(id),
                Some(a),
                &json!({"cell_type": "code", "id": format!("c{i}")}),
            )
            .await
        }
    });
    let results = futures::future::join_all(requests).await;
    for r in &results {
        r.assert_status(201);
    }
    let n = app.notebook(&a, &id).await;
    assert_eq!(n["version"], 20);
    let mut ids = cell_ids(&n);
    ids.sort();
    let mut expected: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    expected.sort();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn concurrent_inserts_of_one_client_id_let_exactly_one_win() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = app.create_notebook_id(&a, "T", json!([])).await;
    let requests = (0..10).map(|i| {
        let (app, a, id) = (&app, &a, &id);
        async move {
            app.post(
                &cells(id),
                Some(a),
                &json!({"cell_type": "code", "id": "same", "source": format!("{i}")}),
            )
            .await
        }
    });
    let results = futures::future::join_all(requests).await;
    let statuses: Vec<u16> = results.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        9,
        "{statuses:?}"
    );
    let n = app.notebook(&a, &id).await;
    assert_eq!(cell_ids(&n), ["same"]);
    assert_eq!(n["version"], 1);
}

#[tokio::test]
async fn concurrent_renames_with_one_if_match_let_exactly_one_win() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = app.create_notebook_id(&a, "T", json!([])).await;
    let requests = (0..10).map(|i| {
        let (app, a, id) = (&app, &a, &id);
        async move {
            app.req(reqwest::Method::PATCH, &nb(id))
                .bearer(Some(a))
                .header("if-match", "\"0\"")
                .json(&json!({"title": format!("T{i}")}))
                .send()
                .await
        }
    });
    let results = futures::future::join_all(requests).await;
    let statuses: Vec<u16> = results.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        9,
        "{statuses:?}"
    );
    assert_eq!(app.notebook(&a, &id).await["version"], 1);
}
