//! Black-box tests of machine tokens (DESIGN.md "Organizations and machine
//! identities"): API keys, OAuth access tokens and M2M tokens verified by
//! the Clerk stand-in's Backend API routes; the subject decides who acts
//! (a user, an organization, a machine), scopes cap the role, and the socket
//! upgrade accepts them with header auth.

mod ws_support;

use reqwest::Method;
use serde_json::{json, Value};
use ws_support::{spawn, WsApp};

const OWNER: &str = "user_owner";

async fn notebook(app: &WsApp) -> (String, String) {
    let owner = app.token(OWNER);
    let nb = app.create_notebook(&owner, "Report", json!([])).await;
    (owner, nb["id"].as_str().expect("id").to_string())
}

fn nb_path(id: &str) -> String {
    format!("/api/v1/notebooks/{id}")
}

async fn call(
    app: &WsApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let r = app.rest(method, path, token, body).await;
    (r.status, r.json)
}

async fn get(app: &WsApp, path: &str, token: &str) -> (u16, Value) {
    call(app, Method::GET, path, token, None).await
}

#[track_caller]
fn assert_invalid_token((status, body): (u16, Value)) {
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "invalid_token", "{body}");
}

#[tokio::test]
async fn each_machine_kind_is_accepted_on_rest_and_me_says_what_it_is() {
    let app = spawn().await;
    let (owner, id) = notebook(&app).await;
    app.share(&owner, &id, "mch_ci", "viewer").await;

    let api_key = app.standin.mint_api_key(OWNER, &[]);
    let oauth = app.standin.mint_oauth_token(OWNER, &["notebooks:read"]);
    let m2m = app.standin.mint_m2m_token("mch_ci", &[]);
    for (token, kind, subject, role) in [
        (&api_key, "api_key", OWNER, "owner"),
        (&oauth, "oauth", OWNER, "viewer"),
        (&m2m, "m2m", "mch_ci", "viewer"),
    ] {
        let (status, nb) = get(&app, &nb_path(&id), token).await;
        assert_eq!(
            (status, nb["role"].as_str()),
            (200, Some(role)),
            "{kind}: {nb}"
        );
        let (status, me) = get(&app, "/api/v1/me", token).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(
            (me["kind"].as_str(), me["subject"].as_str()),
            (Some(kind), Some(subject))
        );
        assert!(me["scopes"].is_array(), "{me}");
    }

    // A session token: kind user, its user as subject, no scopes member.
    let (_, me) = get(&app, "/api/v1/me", &owner).await;
    assert_eq!(
        (me["kind"].as_str(), me["subject"].as_str()),
        (Some("user"), Some(OWNER))
    );
    assert_eq!(me["user_id"], OWNER);
    assert!(me.get("scopes").is_none(), "{me}");
}

#[tokio::test]
async fn revoked_expired_and_unknown_machine_tokens_are_invalid_token() {
    let app = spawn().await;
    let (_, id) = notebook(&app).await;
    let revoked = app.standin.mint_api_key(OWNER, &[]);
    app.standin.revoke(&revoked);
    let expired = app.standin.mint_oauth_token(OWNER, &[]);
    app.standin.expire(&expired);
    let expired_m2m = app.standin.mint_m2m_token("mch_ci", &[]);
    app.standin.expire(&expired_m2m);

    for token in [
        revoked.as_str(),
        expired.as_str(),
        expired_m2m.as_str(),
        "ak_0123456789abcdef0123456789abcdef",
        "oat_unknown",
        "mt_unknown",
    ] {
        assert_invalid_token(get(&app, &nb_path(&id), token).await);
    }
}

#[tokio::test]
async fn scopes_cap_the_subjects_role() {
    let app = spawn().await;
    let (_, id) = notebook(&app).await;
    let rename = || Some(json!({"title": "renamed"}));

    let read = app.standin.mint_api_key(OWNER, &["notebooks:read"]);
    assert_eq!(get(&app, &nb_path(&id), &read).await.1["role"], "viewer");
    assert_eq!(
        call(&app, Method::PATCH, &nb_path(&id), &read, rename())
            .await
            .0,
        403
    );
    assert_eq!(
        call(&app, Method::DELETE, &nb_path(&id), &read, None)
            .await
            .0,
        403
    );
    let create = Some(json!({"title": "new", "cells": []}));
    assert_eq!(
        call(
            &app,
            Method::POST,
            "/api/v1/notebooks",
            &read,
            create.clone()
        )
        .await
        .0,
        403
    );

    let write = app
        .standin
        .mint_api_key(OWNER, &["notebooks:read", "notebooks:write"]);
    assert_eq!(
        call(&app, Method::PATCH, &nb_path(&id), &write, rename())
            .await
            .0,
        200
    );
    assert_eq!(
        call(&app, Method::POST, "/api/v1/notebooks", &write, create)
            .await
            .0,
        201
    );

    // Scopes for something else entirely give no access to notebooks.
    let other = app.standin.mint_api_key(OWNER, &["profile:read"]);
    assert_eq!(get(&app, &nb_path(&id), &other).await.0, 403);
}

#[tokio::test]
async fn an_org_subject_acts_as_the_org_and_reaches_only_what_is_shared_with_it() {
    let app = spawn().await;
    let (owner, id) = notebook(&app).await;
    let (_, private) = notebook(&app).await;
    app.share(&owner, &id, "org_team", "editor").await;

    let key = app.standin.mint_api_key("org_team", &[]);
    assert_eq!(get(&app, &nb_path(&id), &key).await.1["role"], "editor");
    let cell = Some(json!({"cell_type": "code", "source": "print(1)"}));
    let path = format!("{}/cells", nb_path(&id));
    assert_eq!(call(&app, Method::POST, &path, &key, cell).await.0, 201);
    assert_eq!(get(&app, &nb_path(&private), &key).await.0, 403);

    let (_, page) = get(&app, "/api/v1/notebooks", &key).await;
    let ids: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(ids, [id.as_str()]);

    // An organization owns nothing: it cannot create notebooks.
    let create = Some(json!({"title": "new", "cells": []}));
    assert_eq!(
        call(&app, Method::POST, "/api/v1/notebooks", &key, create)
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn a_machine_subject_reaches_only_what_is_shared_with_the_machine() {
    let app = spawn().await;
    let (owner, id) = notebook(&app).await;
    let m2m = app.standin.mint_m2m_token("mch_exporter", &[]);
    assert_eq!(get(&app, &nb_path(&id), &m2m).await.0, 403);
    app.share(&owner, &id, "mch_exporter", "viewer").await;
    let (status, ipynb) = get(&app, &format!("{}/ipynb", nb_path(&id)), &m2m).await;
    assert_eq!(status, 200, "{ipynb}");
    assert_eq!(ipynb["nbformat"], 4);
}

#[tokio::test]
async fn the_socket_upgrade_accepts_an_api_key_in_the_header() {
    let app = spawn().await;
    let (owner, id) = notebook(&app).await;
    let key = app.standin.mint_api_key(OWNER, &["notebooks:read"]);
    let (mut ws, ready) = app.open(&id, &key).await;
    assert_eq!(ready["role"], "viewer", "{ready}");
    ws.barrier().await;

    let revoked = app.standin.mint_api_key(OWNER, &[]);
    app.standin.revoke(&revoked);
    let refused = app.connect(&id, "", Some(&revoked), None).await;
    assert_eq!(refused.err().map(|(status, _)| status), Some(401));
    drop(owner);
}

/// `quire dev` as a user runs it: `/__dev/api_key` mints a key the dev
/// server verifies through its own stand-in, which exports a notebook.
#[tokio::test]
async fn dev_mode_mints_api_keys_that_export_notebooks() {
    use clap::Parser as _;
    use quire::config::{Cli, Command};

    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}/dev.db?mode=rwc", dir.path().display());
    let cli = Cli::try_parse_from([
        "quire",
        "dev",
        "--addr",
        "127.0.0.1:0",
        "--database-url",
        &db,
    ])
    .expect("dev args");
    let Command::Dev(args) = cli.command else {
        panic!("not dev")
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let local = listener.local_addr().expect("addr");
    let (app, _standin) = quire::dev::dev_app(&args, local).await.expect("dev app");
    tokio::spawn(quire::serve(listener, app, std::future::pending()));
    let base = format!("http://{local}");
    let http = reqwest::Client::new();
    let text = |url: String| {
        let http = http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .expect("get")
                .text()
                .await
                .expect("text")
        }
    };

    let session = text(format!("{base}/__dev/token?user_id=user_alice")).await;
    let created: Value = http
        .post(format!("{base}/api/v1/notebooks"))
        .bearer_auth(&session)
        .json(&json!({"title": "Exported", "cells": [{"cell_type": "code", "source": "1"}]}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id");

    let key = text(format!(
        "{base}/__dev/api_key?subject=user_alice&scopes=notebooks:read"
    ))
    .await;
    assert!(key.starts_with("ak_"), "{key}");
    let me: Value = http
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (me["kind"].as_str(), me["scopes"][0].as_str()),
        (Some("api_key"), Some("notebooks:read"))
    );
    let r = http
        .get(format!("{base}/api/v1/notebooks/{id}/ipynb"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("export");
    assert_eq!(r.status().as_u16(), 200);
    let ipynb: Value = r.json().await.expect("ipynb json");
    assert_eq!(ipynb["nbformat"], 4);
    assert_eq!(ipynb["cells"].as_array().map(Vec::len), Some(1), "{ipynb}");

    let bad = http
        .get(format!("{base}/__dev/api_key?subject=alice"))
        .send()
        .await
        .expect("bad subject");
    assert_eq!(bad.status().as_u16(), 400);
}
