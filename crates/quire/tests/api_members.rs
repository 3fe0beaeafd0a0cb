//! Black-box tests of the membership endpoints: list, add/change, remove,
//! and what each role may do with them.

mod common;

use common::{assert_error_shape, members, nb, spawn_app, unknown_notebook_id};
use serde_json::{json, Value};

fn member_path(id: &str, user: &str) -> String {
    format!("{}/{user}", members(id))
}

fn items(v: &Value) -> Vec<(String, String)> {
    v["items"]
        .as_array()
        .expect("items array")
        .iter()
        .map(|m| {
            let keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys.len(), 2, "member has user_id and role only: {m}");
            (
                m["user_id"].as_str().unwrap().to_string(),
                m["role"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(u, r)| (u.to_string(), r.to_string()))
        .collect()
}

#[tokio::test]
async fn new_notebook_lists_only_the_owner() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = app.create_notebook_id(&a, "T", json!([])).await;
    let r = app.get(&members(&id), Some(&a)).await;
    r.assert_status(200);
    assert_eq!(items(&r.json), pairs(&[("user_a", "owner")]));
}

#[tokio::test]
async fn put_adds_members_and_list_has_owner_first() {
    let app = spawn_app().await;
    let a = app.token("user_m");
    let id = app.create_notebook_id(&a, "T", json!([])).await;
    // Ids sorting before and after the owner's.
    let r = app
        .put(
            &member_path(&id, "user_z"),
            Some(&a),
            &json!({"role": "editor"}),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.json, json!({"user_id": "user_z", "role": "editor"}));
    let r = app
        .put(
            &member_path(&id, "user_b"),
            Some(&a),
            &json!({"role": "viewer"}),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.json, json!({"user_id": "user_b", "role": "viewer"}));

    let r = app.get(&members(&id), Some(&a)).await;
    r.assert_status(200);
    let list = items(&r.json);
    assert_eq!(
        list[0],
        ("user_m".to_string(), "owner".to_string()),
        "owner first"
    );
    let mut rest = list[1..].to_vec();
    rest.sort();
    assert_eq!(rest, pairs(&[("user_b", "viewer"), ("user_z", "editor")]));
    assert_eq!(list.len(), 3);
}

#[tokio::test]
async fn put_changes_an_existing_role() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let b = app.token("user_b");
    let id = app.create_notebook_id(&a, "T", json!([])).await;
    app.share(&a, &id, "user_b", "viewer").await;
    app.post(&common::cells(&id), Some(&b), &json!({"cell_type": "code"}))
        .await
        .assert_error(403, "forbidden");
    let r = app
        .put(
            &member_path(&id, "user_b"),
            Some(&a),
            &json!({"role": "editor"}),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.json, json!({"user_id": "user_b", "role": "editor"}));
    app.insert_cell(&b, &id, json!({"cell_type": "code"})).await;
    // And back down.
    app.share(&a, &id, "user_b", "viewer").await;
    app.post(&common::cells(&id), Some(&b), &json!({"cell_type": "code"}))
        .await
        .assert_error(403, "forbidden");
    let r = app.get(&members(&id), Some(&a)).await;
    assert_eq!(
        items(&r.json),
        pairs(&[("user_a", "owner"), ("user_b", "viewer")]),
        "one entry per user"
    );
}

#[tokio::test]
async fn membership_changes_are_not_ops() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = app.create_notebook_id(&a, "T", json!([])).await;
    app.share(&a, &id, "user_b", "editor").await;
    app.share(&a, &id, "user_b", "viewer").await;
    app.delete(&member_path(&id, "user_b"), Some(&a))
        .await
        .assert_status(204);
    assert_eq!(app.notebook(&a, &id).await["version"], 0);
}

#[tokio::test]
async fn any_member_may_list() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let e = app.token("user_e");
    let v = app.token("user_v");
    let s = app.token("user_stranger");
    let id = app.create_notebook_id(&a, "T", json!([])).await;
    app.share(&a, &id, "user_e", "editor").await;
    app.share(&a, &id, "user_v", "viewer").await;
    let owner_view = app.get(&members(&id), Some(&a)).await;
    for token in [&e, &v] {
        let r = app.get(&members(&id), Some(token)).await;
        r.assert_status(200);
        assert_eq!(r.json, owner_view.json, "everyone sees the same list");
    }
    app.get(&members(&id), Some(&s))
        .await
        .assert_error(403, "forbidden");
}

#[tokio::test]
async fn users_who_never_signed_in_may_be_added() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = app.create_notebook_id(&a, "T", json!([])).await;
    app.share(&a, &id, "user_2xYzNeverSeenBefore", "viewer")
        .await;
    // When they do sign in, they have access.
    let newcomer = app.token("user_2xYzNeverSeenBefore");
    let r = app.get(&nb(&id), Some(&newcomer)).await;
    r.assert_status(200);
    assert_eq!(r.json["role"], "viewer");
    let list = app.get("/api/v1/notebooks", Some(&newcomer)).await;
    assert_eq!(list.json["items"][0]["id"], id.as_str());
}

#[tokio::test]
async fn put_bad_roles_and_bodies_are_400() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = app.create_notebook_id(&a, "T", json!([])).await;
    for body in [
        json!({"role": "owner"}),
        json!({"role": "admin"}),
        json!({"role": "Editor"}),
        json!({"role": ""}),
        json!({"role": 1}),
        json!({}),
        json!({"role": "editor", "user_id": "user_c"}),
        json!({"role": "editor", "notebook_id": unknown_notebook_id()}),
    ] {
        let r = app.put(&member_path(&id, "user_b"), Some(&a), &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_error_shape(&r);
    }
    let r = app.get(&members(&id), Some(&a)).await;
    assert_eq!(
        items(&r.json),
        pairs(&[("user_a", "owner")]),
        "nothing was added"
    );
    // The owner stays the owner.
    assert_eq!(app.notebook(&a, &id).await["owner_id"], "user_a");
}

#[tokio::test]
async fn owner_cannot_demote_themselves() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = app.create_notebook_id(&a, "T", json!([])).await;
    let r = app
        .put(
            &member_path(&id, "user_a"),
            Some(&a),
            &json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_error_shape(&r);
    let n = app.notebook(&a, &id).await;
    assert_eq!(n["role"], "owner");
    let r = app.get(&members(&id), Some(&a)).await;
    assert_eq!(items(&r.json), pairs(&[("user_a", "owner")]));
}

#[tokio::test]
async fn invalid_member_user_id_is_400() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = app.create_notebook_id(&a, "T", json!([])).await;
    let long = "u".repeat(129);
    for bad in ["user%20b", "user%09b", long.as_str()] {
        let r = app
            .put(&member_path(&id, bad), Some(&a), &json!({"role": "viewer"}))
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert_error_shape(&r);
    }
}

#[tokio::test]
async fn editors_and_viewers_cannot_manage_members() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let e = app.token("user_e");
    let v = app.token("user_v");
    let id = app.create_notebook_id(&a, "T", json!([])).await;
    app.share(&a, &id, "user_e", "editor").await;
    app.share(&a, &id, "user_v", "viewer").await;
    for token in [&e, &v] {
        app.put(
            &member_path(&id, "user_x"),
            Some(token),
            &json!({"role": "viewer"}),
        )
        .await
        .assert_error(403, "forbidden");
        // Not even to promote themselves.
        app.put(
            &member_path(&id, "user_v"),
            Some(token),
            &json!({"role": "editor"}),
        )
        .await
        .assert_error(403, "forbidden");
        app.delete(&member_path(&id, "user_e"), Some(token))
            .await
            .assert_error(403, "forbidden");
        app.delete(&member_path(&id, "user_a"), Some(token))
            .await
            .assert_error(403, "forbidden");
    }
    let r = app.get(&members(&id), Some(&a)).await;
    let mut list = items(&r.json);
    list.sort();
    assert_eq!(
        list,
        pairs(&[
            ("user_a", "owner"),
            ("user_e", "editor"),
            ("user_v", "viewer")
        ])
    );
}

#[tokio::test]
async fn delete_member_then_their_access_is_403() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let b = app.token("user_b");
    let id = app
        .create_notebook_id(
            &a,
            "T",
            json!([{"cell_type": "code", "source": "", "id": "c"}]),
        )
        .await;
    app.share(&a, &id, "user_b", "editor").await;
    app.get(&nb(&id), Some(&b)).await.assert_status(200);

    let r = app.delete(&member_path(&id, "user_b"), Some(&a)).await;
    r.assert_status(204);
    assert!(r.text.is_empty());

    app.get(&nb(&id), Some(&b))
        .await
        .assert_error(403, "forbidden");
    app.get(&members(&id), Some(&b))
        .await
        .assert_error(403, "forbidden");
    app.get(&format!("{}/ipynb", nb(&id)), Some(&b))
        .await
        .assert_error(403, "forbidden");
    app.patch(&common::cell(&id, "c"), Some(&b), &json!({"source": "x"}))
        .await
        .assert_error(403, "forbidden");
    let list = app.get("/api/v1/notebooks", Some(&b)).await;
    assert_eq!(list.json["items"], json!([]));
    let r = app.get(&members(&id), Some(&a)).await;
    assert_eq!(items(&r.json), pairs(&[("user_a", "owner")]));
}

#[tokio::test]
async fn delete_non_member_is_404() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = app.create_notebook_id(&a, "T", json!([])).await;
    app.delete(&member_path(&id, "user_nobody"), Some(&a))
        .await
        .assert_error(404, "not_found");
    app.share(&a, &id, "user_b", "viewer").await;
    app.delete(&member_path(&id, "user_b"), Some(&a))
        .await
        .assert_status(204);
    app.delete(&member_path(&id, "user_b"), Some(&a))
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn owner_cannot_be_removed_as_a_member() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let id = app.create_notebook_id(&a, "T", json!([])).await;
    let r = app.delete(&member_path(&id, "user_a"), Some(&a)).await;
    r.assert_client_error_in(&[400, 404]);
    let n = app.notebook(&a, &id).await;
    assert_eq!(n["role"], "owner");
}

#[tokio::test]
async fn member_routes_on_unknown_or_malformed_notebook() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let unknown = unknown_notebook_id();
    app.get(&members(&unknown), Some(&a))
        .await
        .assert_error(404, "not_found");
    app.put(
        &member_path(&unknown, "user_b"),
        Some(&a),
        &json!({"role": "viewer"}),
    )
    .await
    .assert_error(404, "not_found");
    app.delete(&member_path(&unknown, "user_b"), Some(&a))
        .await
        .assert_error(404, "not_found");
    for r in [
        app.get(&members("nope"), Some(&a)).await,
        app.put(
            &member_path("nope", "user_b"),
            Some(&a),
            &json!({"role": "viewer"}),
        )
        .await,
        app.delete(&member_path("nope", "user_b"), Some(&a)).await,
    ] {
        assert_eq!(r.status, 400, "{}", r.text);
        assert_error_shape(&r);
    }
}

#[tokio::test]
async fn a_member_of_one_notebook_has_no_access_to_others() {
    let app = spawn_app().await;
    let a = app.token("user_a");
    let b = app.token("user_b");
    let shared = app.create_notebook_id(&a, "Shared", json!([])).await;
    let private = app.create_notebook_id(&a, "Private", json!([])).await;
    app.share(&a, &shared, "user_b", "editor").await;
    app.get(&nb(&private), Some(&b))
        .await
        .assert_error(403, "forbidden");
    app.get(&members(&private), Some(&b))
        .await
        .assert_error(403, "forbidden");
    let list = app.get("/api/v1/notebooks", Some(&b)).await;
    let ids: Vec<String> = list.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(common::id_of)
        .collect();
    assert_eq!(ids, [shared]);
}
