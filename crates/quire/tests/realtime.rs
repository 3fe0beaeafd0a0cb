//! WebSocket integration tests: real clients (tokio-tungstenite) against the
//! whole server, checking what a user of the protocol of DESIGN.md would
//! notice: what arrives, in which order, and how and when sockets close.

mod ws_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use quire::realtime::hub::RealtimeLimits;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use ws_support::*;

const OWNER: &str = "user_owner";
const EDITOR: &str = "user_editor";
const VIEWER: &str = "user_viewer";
const STRANGER: &str = "user_stranger";

/// A server, a notebook of two cells owned by OWNER, shared with EDITOR
/// (editor) and VIEWER (viewer).
struct Fixture {
    app: WsApp,
    id: String,
    notebook: Value,
    owner: String,
    editor: String,
    viewer: String,
}

async fn fixture_with(options: Options) -> Fixture {
    let app = spawn_with(options).await;
    let owner = app.token(OWNER);
    let editor = app.token(EDITOR);
    let viewer = app.token(VIEWER);
    let notebook = app
        .create_notebook(
            &owner,
            "Shared",
            json!([
                {"cell_type": "markdown", "source": "# Title"},
                {"cell_type": "code", "source": "print(1)"}
            ]),
        )
        .await;
    let id = id_of(&notebook);
    app.share(&owner, &id, EDITOR, "editor").await;
    app.share(&owner, &id, VIEWER, "viewer").await;
    Fixture {
        app,
        id,
        notebook,
        owner,
        editor,
        viewer,
    }
}

async fn fixture() -> Fixture {
    fixture_with(Options::default()).await
}

fn limits(f: impl FnOnce(&mut RealtimeLimits)) -> Options {
    let mut realtime = RealtimeLimits::default();
    f(&mut realtime);
    Options {
        realtime,
        ..Options::default()
    }
}

fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn cell_ids(notebook: &Value) -> Vec<String> {
    notebook["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

/// Messages other than presence (which may interleave anywhere).
fn no_presence(msgs: Vec<Value>) -> Vec<Value> {
    msgs.into_iter().filter(|m| kind(m) != "presence").collect()
}

/// A `notebook.rename` op message to send.
fn rename(r: &str, title: &str) -> Value {
    json!({"type": "notebook.rename", "ref": r, "title": title})
}

/// Sends `msg` and reads, logging everything, until its ack arrives;
/// asserts the ack's ref and version.
async fn send_and_ack(ws: &mut Ws, log: &mut Vec<Value>, msg: Value, version: i64) {
    let r = msg["ref"].clone();
    ws.send(msg).await;
    let (seen, ack) = ws.collect_until("ack").await;
    log.extend(seen);
    assert_eq!(
        (&ack["ref"], ack["version"].as_i64()),
        (&r, Some(version)),
        "{ack}"
    );
    log.push(ack);
}

/// Reads, logging everything, until the log holds `n` op messages.
async fn read_ops_until(ws: &mut Ws, log: &mut Vec<Value>, n: usize) {
    while ops(log).len() < n {
        let (seen, op) = ws.collect_until("op").await;
        log.extend(seen);
        log.push(op);
    }
}

// ---------------------------------------------------------------------------
// Authentication and the upgrade
// ---------------------------------------------------------------------------

#[tokio::test]
async fn header_auth_gets_ready_with_the_notebook_version_epoch_role_and_expiry() {
    let f = fixture().await;
    for (token, role) in [
        (&f.owner, "owner"),
        (&f.editor, "editor"),
        (&f.viewer, "viewer"),
    ] {
        let mut ws = f.app.connect_header(&f.id, token).await;
        // The very first message is `ready`.
        let Event::Json(ready) = ws.next_event().await else {
            panic!("first event is not JSON")
        };
        assert_eq!(ready["type"], "ready", "{ready}");
        assert_eq!(ready["notebook"]["id"], f.id.as_str());
        assert_eq!(ready["notebook"]["title"], "Shared");
        assert_eq!(cell_ids(&ready["notebook"]), cell_ids(&f.notebook));
        assert_eq!(ready["notebook"]["cells"][1]["source"], "print(1)");
        assert_eq!(ready["version"], 0, "a new notebook has version 0");
        assert!(
            ready["epoch"].as_str().is_some_and(|e| !e.is_empty()),
            "{ready}"
        );
        assert_eq!(ready["role"], role);
        let expires_in = ready["expires_in"].as_i64().expect("expires_in");
        assert!(
            (3590..=3600).contains(&expires_in),
            "expires_in {expires_in}"
        );
        assert_ne!(ready["resumed"], true);
    }
}

#[tokio::test]
async fn first_message_auth_gets_ready() {
    let f = fixture().await;
    let mut ws = f.app.connect_bare(&f.id).await;
    ws.send(json!({"type": "auth", "token": f.editor})).await;
    let Event::Json(ready) = ws.next_event().await else {
        panic!("first event is not JSON")
    };
    assert_eq!(ready["type"], "ready", "{ready}");
    assert_eq!(ready["notebook"]["id"], f.id.as_str());
    assert_eq!(cell_ids(&ready["notebook"]), cell_ids(&f.notebook));
    assert_eq!(ready["version"], 0);
    assert_eq!(ready["role"], "editor");
    assert!(ready["epoch"].as_str().is_some_and(|e| !e.is_empty()));
    assert!((3590..=3600).contains(&ready["expires_in"].as_i64().unwrap()));
}

#[tokio::test]
async fn nothing_is_sent_before_authentication() {
    let f = fixture().await;
    let mut ws = f.app.connect_bare(&f.id).await;
    // Activity on the notebook must not leak to an unauthenticated socket.
    f.app
        .rest_rename(&f.owner, &f.id, "Renamed while you waited")
        .await;
    assert!(
        ws.next_within(Duration::from_millis(300)).await.is_none(),
        "the server sent something before authentication"
    );
    ws.send(json!({"type": "auth", "token": f.owner})).await;
    let Event::Json(ready) = ws.next_event().await else {
        panic!("first event is not JSON")
    };
    assert_eq!(ready["type"], "ready");
    assert_eq!(ready["notebook"]["title"], "Renamed while you waited");
    assert_eq!(ready["version"], 1);
}

#[tokio::test]
async fn no_auth_in_time_closes_4408() {
    // The DESIGN default of 10 s, on paused time.
    let f = fixture().await;
    let mut ws = f.app.connect_bare(&f.id).await;
    let start = tokio::time::Instant::now();
    let before = on_paused_time(ws.expect_close(4408)).await;
    assert!(before.is_empty(), "sent before auth: {before:?}");
    assert!(
        start.elapsed() >= RealtimeLimits::default().auth_timeout,
        "closed after {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn token_in_the_query_is_ignored() {
    let f = fixture().await;
    let query = format!("?token={}", f.owner);
    let mut ws = f
        .app
        .connect(&f.id, &query, None, None)
        .await
        .expect("the upgrade itself is fine");
    let before = on_paused_time(ws.expect_close(4408)).await;
    assert!(
        before.is_empty(),
        "a ?token= authenticated the socket: {before:?}"
    );
}

#[tokio::test]
async fn bad_token_in_first_message_closes_4401() {
    let f = fixture().await;
    let other_clerk = clerk_auth::testing::ClerkStandIn::new();
    let bad = [
        "not-a-jwt".to_string(),
        f.app.standin.token(OWNER).sign_with(&other_clerk).sign(),
        f.app.standin.token(OWNER).lifetime(-60).sign(),
    ];
    for token in bad {
        let mut ws = f.app.connect_bare(&f.id).await;
        ws.send(json!({"type": "auth", "token": token})).await;
        let before = ws.expect_close(4401).await;
        assert!(before.is_empty(), "sent before a valid auth: {before:?}");
    }
}

#[tokio::test]
async fn bad_token_in_header_is_401_before_the_upgrade() {
    let f = fixture().await;
    let expired = f.app.standin.token(OWNER).lifetime(-60).sign();
    for token in ["not-a-jwt", expired.as_str()] {
        let err = f.app.connect(&f.id, "", Some(token), None).await.err();
        let (status, body) = err.expect("upgrade must be refused");
        assert_eq!(status, 401, "{body}");
    }
    // Any Authorization header is header auth, whatever its scheme.
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            f.app.ws_url(&f.id, ""),
        )
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 401),
        other => panic!("expected 401, got {:?}", other.map(|(_, r)| r.status())),
    }
}

#[tokio::test]
async fn no_access_is_403_on_the_upgrade_and_4403_after_message_auth() {
    let f = fixture().await;
    let stranger = f.app.token(STRANGER);
    let (status, body) = f
        .app
        .connect(&f.id, "", Some(&stranger), None)
        .await
        .err()
        .expect("refused");
    assert_eq!(status, 403, "{body}");

    let mut ws = f.app.connect_bare(&f.id).await;
    ws.send(json!({"type": "auth", "token": stranger})).await;
    let before = ws.expect_close(4403).await;
    assert!(
        before.is_empty(),
        "notebook data sent to a stranger: {before:?}"
    );
}

#[tokio::test]
async fn unknown_notebook_is_404_on_the_upgrade_and_4404_after_message_auth() {
    let f = fixture().await;
    let missing = uuid::Uuid::new_v4().to_string();
    let (status, body) = f
        .app
        .connect(&missing, "", Some(&f.owner), None)
        .await
        .err()
        .expect("refused");
    assert_eq!(status, 404, "{body}");

    let mut ws = f.app.connect_bare(&missing).await;
    ws.send(json!({"type": "auth", "token": f.owner})).await;
    let before = ws.expect_close(4404).await;
    assert!(before.is_empty(), "{before:?}");
}

#[tokio::test]
async fn foreign_origin_is_refused_before_101_and_allowed_origin_accepted() {
    let f = fixture().await;
    for origin in ["http://evil.test", "null", "http://app.test.evil.test"] {
        let (status, body) = f
            .app
            .connect(&f.id, "", Some(&f.owner), Some(origin))
            .await
            .err()
            .unwrap_or_else(|| panic!("origin {origin} accepted"));
        assert_eq!(status, 403, "{origin}: {body}");
        // Without header auth too (a browser using first-message auth).
        let (status, _) = f
            .app
            .connect(&f.id, "", None, Some(origin))
            .await
            .err()
            .unwrap_or_else(|| panic!("origin {origin} accepted"));
        assert_eq!(status, 403);
    }
    let mut ws = f
        .app
        .connect(&f.id, "", Some(&f.owner), Some(ALLOWED_ORIGIN))
        .await
        .expect("allowed origin");
    ws.wait_type("ready").await;
    let mut ws = f
        .app
        .connect(&f.id, "", None, Some(ALLOWED_ORIGIN))
        .await
        .expect("allowed origin");
    ws.send(json!({"type": "auth", "token": f.owner})).await;
    ws.wait_type("ready").await;
}

#[tokio::test]
async fn per_user_connection_cap_refuses_extra_sockets() {
    let f = fixture_with(limits(|l| l.max_conns_per_user = 1)).await;
    let (mut watcher, _) = f.app.open(&f.id, &f.owner).await;
    let (mut first, _) = f.app.open(&f.id, &f.editor).await;
    let (status, _) = f
        .app
        .connect(&f.id, "", Some(&f.editor), None)
        .await
        .err()
        .expect("a second socket over the cap is refused");
    assert_eq!(status, 429);
    let mut ws = f.app.connect_bare(&f.id).await;
    ws.send(json!({"type": "auth", "token": f.editor})).await;
    ws.expect_close(4429).await;
    // Closing the first frees the slot (seen as the editor leaving presence).
    first.stream.close(None).await.unwrap();
    watcher
        .wait_for("presence without the editor", |m| {
            kind(m) == "presence"
                && !m["users"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|u| u["user_id"] == EDITOR)
        })
        .await;
    f.app.open(&f.id, &f.editor).await;
}

// ---------------------------------------------------------------------------
// Editing
// ---------------------------------------------------------------------------

#[tokio::test]
async fn owner_and_editor_see_the_same_ops_in_version_order_and_authors_get_acks() {
    let f = fixture().await;
    let (mut a, _) = f.app.open(&f.id, &f.owner).await;
    let (mut b, _) = f.app.open(&f.id, &f.editor).await;
    let mut a_log = Vec::new();
    let mut b_log = Vec::new();

    // Owner inserts a cell with a chosen id at the top.
    let insert = json!({"type": "cell.insert", "ref": "a1", "index": 0,
                        "cell": {"cell_type": "code", "source": "x = 1", "id": "c-one"}});
    send_and_ack(&mut a, &mut a_log, insert, 1).await;

    // Editor updates it, on top of the version it saw.
    read_ops_until(&mut b, &mut b_log, 1).await;
    let op1 = ops(&b_log)[0].clone();
    assert_eq!(op1["version"], 1);
    assert_eq!(op1["author"], OWNER);
    assert_eq!(op1["op"]["type"], "cell.insert");
    assert_eq!(op1["op"]["index"], 0);
    assert_eq!(op1["op"]["cell"]["id"], "c-one");
    assert_eq!(op1["op"]["cell"]["version"], 1);
    assert_eq!(op1["op"]["cell"]["source"], "x = 1");
    assert_eq!(op1["op"]["cell"]["cell_type"], "code");
    let update = json!({"type": "cell.update", "ref": "b1", "cell_id": "c-one",
                        "base_version": op1["op"]["cell"]["version"], "source": "x = 2"});
    send_and_ack(&mut b, &mut b_log, update, 2).await;

    // Owner moves it to the end, editor renames, owner appends (insert
    // without index), owner deletes.
    send_and_ack(
        &mut a,
        &mut a_log,
        json!({"type": "cell.move", "ref": "a2", "cell_id": "c-one", "index": 2}),
        3,
    )
    .await;
    send_and_ack(&mut b, &mut b_log, rename("b2", "Renamed live"), 4).await;
    send_and_ack(&mut a, &mut a_log, json!({"type": "cell.insert", "ref": "a3", "cell": {"cell_type": "markdown", "source": "end"}}), 5).await;
    send_and_ack(
        &mut a,
        &mut a_log,
        json!({"type": "cell.delete", "ref": "a4", "cell_id": "c-one"}),
        6,
    )
    .await;
    read_ops_until(&mut a, &mut a_log, 6).await;
    read_ops_until(&mut b, &mut b_log, 6).await;

    let a_ops = ops(&a_log);
    let b_ops = ops(&b_log);
    assert_eq!(versions(&a_ops), vec![1, 2, 3, 4, 5, 6], "{a_log:?}");
    assert_eq!(a_ops, b_ops, "both sockets see the same ops");
    assert!(
        a_log.iter().chain(&b_log).all(|m| kind(m) != "error"),
        "{a_log:?} {b_log:?}"
    );
    // Each author got the ack of each of its ops, with the op's version.
    let acks = |log: &[Value]| -> Vec<(String, i64)> {
        log.iter()
            .filter(|m| kind(m) == "ack")
            .map(|m| {
                (
                    m["ref"].as_str().unwrap().to_string(),
                    m["version"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let s = |r: &str, v: i64| (r.to_string(), v);
    assert_eq!(
        acks(&a_log),
        vec![s("a1", 1), s("a2", 3), s("a3", 5), s("a4", 6)]
    );
    assert_eq!(acks(&b_log), vec![s("b1", 2), s("b2", 4)]);

    let update = &a_ops[1];
    assert_eq!(update["author"], EDITOR);
    assert_eq!(update["op"]["type"], "cell.update");
    assert_eq!(update["op"]["cell_id"], "c-one");
    assert_eq!(update["op"]["cell_version"], 2);
    assert_eq!(update["op"]["source"], "x = 2");
    assert_eq!(
        a_ops[2]["op"],
        json!({"type": "cell.move", "cell_id": "c-one", "index": 2})
    );
    assert_eq!(a_ops[2]["author"], OWNER);
    assert_eq!(
        a_ops[3]["op"],
        json!({"type": "notebook.rename", "title": "Renamed live"})
    );
    assert_eq!(a_ops[3]["author"], EDITOR);
    assert_eq!(a_ops[4]["op"]["type"], "cell.insert");
    assert_eq!(a_ops[4]["op"]["index"], 3, "insert without index appends");
    assert_eq!(a_ops[4]["op"]["cell"]["source"], "end");
    assert_eq!(
        a_ops[5]["op"],
        json!({"type": "cell.delete", "cell_id": "c-one"})
    );
    assert!(ops(&a.barrier().await).is_empty(), "no extra ops");
    assert!(ops(&b.barrier().await).is_empty(), "no extra ops");

    // The delete was acked too; the notebook as REST sees it agrees.
    let nb = f.app.get_notebook(&f.owner, &f.id).await;
    assert_eq!(nb["version"], 6);
    assert_eq!(nb["title"], "Renamed live");
    assert_eq!(nb["cells"].as_array().unwrap().len(), 3);
    assert!(!cell_ids(&nb).contains(&"c-one".to_string()));
}

#[tokio::test]
async fn the_delete_op_is_broadcast_with_the_cell_id() {
    let f = fixture().await;
    let (mut a, _) = f.app.open(&f.id, &f.owner).await;
    let (mut b, _) = f.app.open(&f.id, &f.viewer).await;
    let target = cell_ids(&f.notebook)[0].clone();
    let mut a_log = Vec::new();
    send_and_ack(
        &mut a,
        &mut a_log,
        json!({"type": "cell.delete", "ref": "d", "cell_id": target}),
        1,
    )
    .await;
    read_ops_until(&mut a, &mut a_log, 1).await;
    let op = b.wait_type("op").await;
    assert_eq!(op["version"], 1);
    assert_eq!(op["author"], OWNER);
    assert_eq!(op["op"], json!({"type": "cell.delete", "cell_id": target}));
    assert_eq!(ops(&a_log), vec![op], "the author gets the op too");
}

#[tokio::test]
async fn rest_changes_arrive_as_ops_on_every_socket() {
    let f = fixture().await;
    let (mut owner_ws, _) = f.app.open(&f.id, &f.owner).await;
    let (mut viewer_ws, _) = f.app.open_msg(&f.id, &f.viewer).await;

    let cell = f.app.rest_insert(&f.editor, &f.id, "from REST").await;
    let cid = cell["id"].as_str().unwrap().to_string();
    let patched = f
        .app
        .rest(
            Method::PATCH,
            &format!("/api/v1/notebooks/{}/cells/{cid}", f.id),
            &f.editor,
            Some(json!({"source": "patched", "base_version": 1})),
        )
        .await
        .ok(200);
    assert_eq!(patched["version"], 2);
    f.app.rest_rename(&f.owner, &f.id, "REST title").await;
    f.app
        .rest(
            Method::POST,
            &format!("/api/v1/notebooks/{}/cells/{cid}/move", f.id),
            &f.owner,
            Some(json!({"index": 0})),
        )
        .await
        .ok(200);
    f.app
        .rest(
            Method::DELETE,
            &format!("/api/v1/notebooks/{}/cells/{cid}", f.id),
            &f.owner,
            None,
        )
        .await
        .ok(204);

    for ws in [&mut owner_ws, &mut viewer_ws] {
        let mut got = Vec::new();
        while got.len() < 5 {
            got.push(ws.wait_type("op").await);
        }
        assert_eq!(versions(&got), vec![1, 2, 3, 4, 5]);
        assert_eq!(got[0]["author"], EDITOR);
        assert_eq!(got[0]["op"]["type"], "cell.insert");
        assert_eq!(got[0]["op"]["index"], 2, "appended after the two cells");
        assert_eq!(
            got[0]["op"]["cell"], cell,
            "the op carries the cell REST returned"
        );
        assert_eq!(got[1]["op"]["type"], "cell.update");
        assert_eq!(got[1]["op"]["cell_id"], cid.as_str());
        assert_eq!(got[1]["op"]["cell_version"], 2);
        assert_eq!(got[1]["op"]["source"], "patched");
        assert_eq!(
            got[2]["op"],
            json!({"type": "notebook.rename", "title": "REST title"})
        );
        assert_eq!(got[2]["author"], OWNER);
        assert_eq!(
            got[3]["op"],
            json!({"type": "cell.move", "cell_id": cid, "index": 0})
        );
        assert_eq!(got[4]["op"], json!({"type": "cell.delete", "cell_id": cid}));
        assert!(ops(&ws.barrier().await).is_empty(), "no extra ops");
    }
}

#[tokio::test]
async fn concurrent_writers_every_socket_sees_every_version_once_in_order() {
    let f = fixture().await;
    const EACH: usize = 25;
    let (mut a, _) = f.app.open(&f.id, &f.owner).await;
    let (mut b, _) = f.app.open(&f.id, &f.editor).await;
    let (mut watcher, _) = f.app.open(&f.id, &f.viewer).await;
    // Two sockets fire their renames without waiting, while REST writes too.
    for i in 0..EACH {
        a.send(rename(&format!("a{i}"), &format!("a{i}"))).await;
        b.send(rename(&format!("b{i}"), &format!("b{i}"))).await;
    }
    for i in 0..EACH {
        f.app.rest_rename(&f.editor, &f.id, &format!("r{i}")).await;
    }
    let total = 3 * EACH;
    for ws in [&mut a, &mut b, &mut watcher] {
        let mut got = Vec::new();
        let mut acks = 0;
        while got.len() < total {
            let m = ws
                .wait_for("op or ack", |m| matches!(kind(m), "op" | "ack" | "error"))
                .await;
            match kind(&m) {
                "op" => got.push(m),
                "ack" => acks += 1,
                _ => panic!("unexpected error {m}"),
            }
        }
        assert_eq!(versions(&got), (1..=total as i64).collect::<Vec<_>>());
        let rest = ws.barrier().await;
        acks += rest.iter().filter(|m| kind(m) == "ack").count();
        assert!(ops(&rest).is_empty(), "duplicates: {rest:?}");
        assert!(acks == 0 || acks == EACH, "acks {acks}");
    }
}

#[tokio::test]
async fn sockets_joining_during_writes_see_every_later_version_exactly_once() {
    let f = fixture().await;
    const WRITES: i64 = 60;
    let writer = {
        let http = f.app.http.clone();
        let url = format!("{}/api/v1/notebooks/{}", f.app.base, f.id);
        let token = f.owner.clone();
        tokio::spawn(async move {
            for i in 0..WRITES {
                let r = http
                    .patch(&url)
                    .bearer_auth(&token)
                    .json(&json!({"title": format!("t{i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 200);
            }
        })
    };
    // Join one socket after another while the writes go on.
    let mut joined = Vec::new();
    for _ in 0..6 {
        let (ws, ready) = f.app.open(&f.id, &f.editor).await;
        joined.push((ws, ready["version"].as_i64().unwrap()));
    }
    writer.await.unwrap();
    for (mut ws, from) in joined {
        let mut got = Vec::new();
        while got.last().copied().unwrap_or(from) < WRITES {
            got.push(ws.wait_type("op").await["version"].as_i64().unwrap());
        }
        assert_eq!(
            got,
            (from + 1..=WRITES).collect::<Vec<_>>(),
            "joined at version {from}"
        );
        assert!(ops(&ws.barrier().await).is_empty());
    }
}

#[tokio::test]
async fn stale_base_version_gets_conflict_with_the_current_cell() {
    let f = fixture().await;
    let (mut a, _) = f.app.open(&f.id, &f.owner).await;
    let (mut b, _) = f.app.open(&f.id, &f.editor).await;
    let target = cell_ids(&f.notebook)[1].clone();
    b.send(json!({"type": "cell.update", "ref": "b", "cell_id": target, "base_version": 1, "source": "editor wins"}))
        .await;
    assert_eq!(b.wait_type("ack").await["version"], 1);
    // The owner edits from the same stale base.
    a.send(json!({"type": "cell.update", "ref": "stale", "cell_id": target, "base_version": 1, "source": "owner loses"}))
        .await;
    let err = a.wait_type("error").await;
    assert_eq!(err["ref"], "stale");
    assert_eq!(err["code"], "conflict");
    assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(err["current"]["id"], target.as_str());
    assert_eq!(err["current"]["version"], 2);
    assert_eq!(err["current"]["source"], "editor wins");
    // Nothing was committed for the loser; the socket keeps working.
    let after = a.barrier().await;
    assert!(
        after.iter().all(|m| kind(m) != "op" || m["version"] == 1),
        "{after:?}"
    );
    let nb = f.app.get_notebook(&f.owner, &f.id).await;
    assert_eq!(nb["version"], 1);
    assert_eq!(nb["cells"][1]["source"], "editor wins");
}

#[tokio::test]
async fn duplicate_cell_id_over_the_socket_is_a_conflict() {
    let f = fixture().await;
    let (mut a, _) = f.app.open(&f.id, &f.owner).await;
    let existing = cell_ids(&f.notebook)[0].clone();
    a.send(json!({"type": "cell.insert", "ref": "dup", "cell": {"cell_type": "code", "source": "", "id": existing}}))
        .await;
    let err = a.wait_type("error").await;
    assert_eq!(
        (err["ref"].as_str(), err["code"].as_str()),
        (Some("dup"), Some("conflict")),
        "{err}"
    );
}

#[tokio::test]
async fn viewer_ops_are_forbidden_and_change_nothing() {
    let f = fixture().await;
    let (mut owner_ws, _) = f.app.open(&f.id, &f.owner).await;
    let (mut v, ready) = f.app.open_msg(&f.id, &f.viewer).await;
    assert_eq!(ready["role"], "viewer");
    v.send(rename("v1", "viewer was here")).await;
    let err = v.wait_type("error").await;
    assert_eq!(err["ref"], "v1");
    assert_eq!(err["code"], "forbidden");
    assert!(ops(&v.barrier().await).is_empty());
    assert!(ops(&owner_ws.barrier().await).is_empty());
    let nb = f.app.get_notebook(&f.owner, &f.id).await;
    assert_eq!(
        (nb["version"].as_i64(), nb["title"].as_str()),
        (Some(0), Some("Shared"))
    );
}

#[tokio::test]
async fn update_without_base_version_is_invalid_op_and_the_socket_stays() {
    let f = fixture().await;
    let (mut a, _) = f.app.open(&f.id, &f.owner).await;
    let target = cell_ids(&f.notebook)[0].clone();
    a.send(json!({"type": "cell.update", "ref": "nb", "cell_id": target, "source": "no base"}))
        .await;
    let err = a.wait_type("error").await;
    assert_eq!(err["ref"], "nb");
    assert_eq!(err["code"], "invalid_op");
    // An unknown op type is refused the same way.
    a.send(json!({"type": "cell.explode", "ref": "boom"})).await;
    let err = a.wait_type("error").await;
    assert_eq!(
        (err["ref"].as_str(), err["code"].as_str()),
        (Some("boom"), Some("invalid_op"))
    );
    // A cell that is not there is not_found.
    a.send(json!({"type": "cell.delete", "ref": "gone", "cell_id": "no-such-cell"}))
        .await;
    let err = a.wait_type("error").await;
    assert_eq!(
        (err["ref"].as_str(), err["code"].as_str()),
        (Some("gone"), Some("not_found"))
    );
    assert!(ops(&a.barrier().await).is_empty());
    assert_eq!(f.app.get_notebook(&f.owner, &f.id).await["version"], 0);
}

#[tokio::test]
async fn json_ping_gets_pong() {
    let f = fixture().await;
    let (mut a, _) = f.app.open(&f.id, &f.owner).await;
    a.send(json!({"type": "ping"})).await;
    let pong = a.wait_for("pong", |m| kind(m) != "presence").await;
    assert_eq!(pong, json!({"type": "pong"}));
}

#[tokio::test]
async fn binary_frame_closes_4400() {
    let f = fixture().await;
    let (mut a, _) = f.app.open(&f.id, &f.owner).await;
    a.send_raw(Message::Binary(vec![1u8, 2, 3].into())).await;
    a.expect_close(4400).await;
}

#[tokio::test]
async fn text_that_is_not_json_closes_4400() {
    let f = fixture().await;
    let (mut a, _) = f.app.open(&f.id, &f.owner).await;
    a.send_raw(Message::Text("this is not json".into())).await;
    a.expect_close(4400).await;
}

async fn oversize_closes_4413(size: usize) {
    let f = fixture_with(limits(|l| l.max_message_bytes = 2048)).await;
    let (mut a, _) = f.app.open(&f.id, &f.owner).await;
    // Just under the limit is fine.
    a.send(json!({"type": "cell.insert", "ref": "ok", "cell": {"cell_type": "code", "source": "x".repeat(1500)}}))
        .await;
    assert_eq!(a.wait_type("ack").await["ref"], "ok");
    a.send(json!({"type": "cell.insert", "ref": "big", "cell": {"cell_type": "code", "source": "x".repeat(size)}}))
        .await;
    let before = a.expect_close(4413).await;
    assert!(
        before.iter().all(|m| m["ref"] != "big"),
        "{}",
        brief(&before)
    );
    assert_eq!(f.app.get_notebook(&f.owner, &f.id).await["version"], 1);
}

#[tokio::test]
async fn oversize_message_closes_4413() {
    // A little over the 2 KiB limit.
    oversize_closes_4413(2200).await;
}

#[tokio::test]
async fn much_larger_message_closes_4413_too() {
    // Well past the server's read buffer: the rest of the message is still
    // unread when the server closes.
    oversize_closes_4413(64 * 1024).await;
}

#[tokio::test]
async fn message_megabytes_over_the_limit_closes_4413() {
    oversize_closes_4413(3 * 1024 * 1024).await;
}

#[tokio::test]
async fn oversize_first_message_closes_4413_before_auth() {
    let f = fixture_with(limits(|l| l.max_message_bytes = 2048)).await;
    let mut ws = f.app.connect_bare(&f.id).await;
    ws.send(json!({"type": "auth", "token": f.owner, "padding": "x".repeat(8000)}))
        .await;
    let before = ws.expect_close(4413).await;
    assert!(before.is_empty(), "{}", brief(&before));
}

#[tokio::test]
async fn keys_unreachable_is_503_on_the_upgrade_and_4503_after_message_auth() {
    let f = spawn_with(Options {
        unreachable_keys: true,
        ..Options::default()
    })
    .await;
    let token = f.token(OWNER);
    // No notebook can even be created (REST needs keys too); any id will do:
    // authentication comes first.
    let id = uuid::Uuid::new_v4().to_string();
    let (status, body) = f
        .connect(&id, "", Some(&token), None)
        .await
        .err()
        .expect("refused");
    assert_eq!(status, 503, "{body}");
    let mut ws = f.connect_bare(&id).await;
    ws.send(json!({"type": "auth", "token": token})).await;
    let before = ws.expect_close(4503).await;
    assert!(before.is_empty(), "{}", brief(&before));
}

// ---------------------------------------------------------------------------
// Token life on an open socket
// ---------------------------------------------------------------------------

/// Skew of the verifier (DESIGN default) and the server's expiry grace.
const SKEW: Duration = Duration::from_secs(5);

#[tokio::test]
async fn refresh_keeps_the_socket_alive_past_the_first_tokens_expiry() {
    let f = fixture().await;
    let short = f.app.standin.token(EDITOR).lifetime(3);
    let exp = short.claims()["exp"].as_i64().unwrap();
    let (mut ws, ready) = f.app.open_msg(&f.id, &short.sign()).await;
    assert!(
        (0..=3).contains(&ready["expires_in"].as_i64().unwrap()),
        "{ready}"
    );

    ws.send(json!({"type": "auth", "token": f.app.token(EDITOR)}))
        .await;
    let ok = ws.wait_type("auth.ok").await;
    let expires_in = ok["expires_in"].as_i64().expect("expires_in");
    assert!((3590..=3600).contains(&expires_in), "{ok}");

    // Time is the subject: go past exp + skew + grace (and some), on paused
    // time (the first token's deadline would fire on the way).
    let grace = RealtimeLimits::default().expiry_grace;
    let past = (exp * 1000 + (SKEW + grace).as_millis() as i64 + 1500 - unix_now_ms()).max(0);
    on_paused_time(tokio::time::advance(Duration::from_millis(past as u64))).await;

    let seen = ws.barrier().await;
    assert!(no_presence(seen).is_empty());
    ws.send(rename("after", "still here")).await;
    assert_eq!(ws.wait_type("ack").await["ref"], "after");
}

#[tokio::test]
async fn an_unrefreshed_socket_closes_4401_after_expiry() {
    let f = fixture().await;
    let short = f.app.standin.token(EDITOR).lifetime(2);
    let exp = short.claims()["exp"].as_i64().unwrap();
    let (mut ws, _) = f.app.open(&f.id, &short.sign()).await;
    // The close frame is the event, on paused time: the server's deadline is
    // the next timer, so the clock jumps to it. "Now" is the wall clock at
    // the pause plus the time the paused clock moved.
    let (paused_at, wall_at) = (tokio::time::Instant::now(), unix_now_ms());
    on_paused_time(ws.expect_close(4401)).await;
    let now = wall_at + paused_at.elapsed().as_millis() as i64;
    assert!(
        now >= exp * 1000,
        "closed {} ms before exp",
        exp * 1000 - now
    );
    let latest = exp * 1000 + (SKEW + Duration::from_secs(10)).as_millis() as i64;
    assert!(
        now <= latest,
        "closed {} ms after exp + skew + 10 s",
        now - latest
    );
}

#[tokio::test]
async fn refresh_with_another_users_token_closes_4403() {
    let f = fixture().await;
    let (mut ws, _) = f.app.open(&f.id, &f.editor).await;
    // The owner's token: valid, but another user.
    ws.send(json!({"type": "auth", "token": f.owner})).await;
    let before = ws.expect_close(4403).await;
    assert!(before.iter().all(|m| kind(m) != "auth.ok"), "{before:?}");
}

#[tokio::test]
async fn refresh_with_an_invalid_token_closes_4401() {
    let f = fixture().await;
    let other_clerk = clerk_auth::testing::ClerkStandIn::new();
    let bad = [
        "garbage".to_string(),
        f.app.standin.token(EDITOR).sign_with(&other_clerk).sign(),
        f.app.standin.token(EDITOR).lifetime(-60).sign(),
    ];
    for token in bad {
        let (mut ws, _) = f.app.open(&f.id, &f.editor).await;
        ws.send(json!({"type": "auth", "token": token})).await;
        let before = ws.expect_close(4401).await;
        assert!(before.iter().all(|m| kind(m) != "auth.ok"), "{before:?}");
    }
}

// ---------------------------------------------------------------------------
// Resume
// ---------------------------------------------------------------------------

/// Makes three REST changes: insert, rename, update of the inserted cell.
async fn three_rest_changes(f: &Fixture) -> String {
    let cell = f.app.rest_insert(&f.editor, &f.id, "missed 1").await;
    let cid = cell["id"].as_str().unwrap().to_string();
    f.app.rest_rename(&f.owner, &f.id, "missed 2").await;
    f.app
        .rest(
            Method::PATCH,
            &format!("/api/v1/notebooks/{}/cells/{cid}", f.id),
            &f.editor,
            Some(json!({"source": "missed 3", "base_version": 1})),
        )
        .await
        .ok(200);
    cid
}

#[tokio::test]
async fn resume_replays_exactly_the_missed_ops_in_order() {
    let f = fixture().await;
    // One change first so the resume point is not 0.
    f.app.rest_rename(&f.owner, &f.id, "before").await;
    let (mut ws, ready) = f.app.open_msg(&f.id, &f.editor).await;
    let epoch = ready["epoch"].as_str().unwrap().to_string();
    let version = ready["version"].as_i64().unwrap();
    assert_eq!(version, 1);
    ws.stream.close(None).await.unwrap();

    let cid = three_rest_changes(&f).await;

    let mut ws = f.app.connect_bare(&f.id).await;
    ws.send(
        json!({"type": "auth", "token": f.editor, "since": {"epoch": epoch, "version": version}}),
    )
    .await;
    let Event::Json(ready) = ws.next_event().await else {
        panic!("not JSON")
    };
    assert_eq!(ready["type"], "ready", "{ready}");
    assert_eq!(ready["resumed"], true, "{ready}");
    assert_eq!(ready["epoch"], epoch.as_str());
    assert_eq!(ready["version"], version);
    assert!(
        ready.get("notebook").is_none(),
        "a resumed ready has no notebook body: {ready}"
    );
    let replay = no_presence(ws.barrier().await);
    assert_eq!(versions(&replay), vec![2, 3, 4], "{replay:?}");
    assert_eq!(replay.len(), 3, "only the missed ops: {replay:?}");
    assert_eq!(replay[0]["op"]["type"], "cell.insert");
    assert_eq!(replay[0]["op"]["cell"]["source"], "missed 1");
    assert_eq!(replay[0]["author"], EDITOR);
    assert_eq!(
        replay[1]["op"],
        json!({"type": "notebook.rename", "title": "missed 2"})
    );
    assert_eq!(replay[1]["author"], OWNER);
    assert_eq!(replay[2]["op"]["cell_id"], cid.as_str());
    assert_eq!(replay[2]["op"]["source"], "missed 3");

    // Live ops continue after the replay without gaps or repeats.
    f.app.rest_rename(&f.owner, &f.id, "live").await;
    let live = ws.wait_type("op").await;
    assert_eq!(live["version"], 5);
}

#[tokio::test]
async fn resume_with_header_auth_uses_the_query() {
    let f = fixture().await;
    let (mut ws, ready) = f.app.open(&f.id, &f.editor).await;
    let epoch = ready["epoch"].as_str().unwrap().to_string();
    ws.stream.close(None).await.unwrap();
    three_rest_changes(&f).await;

    let query = format!("?epoch={epoch}&since=0");
    let mut ws = f
        .app
        .connect(&f.id, &query, Some(&f.editor), None)
        .await
        .expect("upgrade");
    let ready = ws.wait_type("ready").await;
    assert_eq!(ready["resumed"], true, "{ready}");
    assert_eq!(ready["version"], 0);
    let replay = no_presence(ws.barrier().await);
    assert_eq!(versions(&replay), vec![1, 2, 3]);
    assert_eq!(replay.len(), 3);
}

#[tokio::test]
async fn resume_at_the_current_version_replays_nothing() {
    let f = fixture().await;
    three_rest_changes(&f).await;
    let (mut ws, ready) = f.app.open(&f.id, &f.editor).await;
    let epoch = ready["epoch"].as_str().unwrap().to_string();
    ws.stream.close(None).await.unwrap();
    let mut ws = f.app.connect_bare(&f.id).await;
    ws.send(json!({"type": "auth", "token": f.editor, "since": {"epoch": epoch, "version": 3}}))
        .await;
    let ready = ws.wait_type("ready").await;
    assert_eq!(ready["resumed"], true);
    assert!(no_presence(ws.barrier().await).is_empty());
}

#[tokio::test]
async fn resume_with_a_wrong_epoch_gets_a_full_ready() {
    let f = fixture().await;
    three_rest_changes(&f).await;
    let mut ws = f.app.connect_bare(&f.id).await;
    ws.send(json!({"type": "auth", "token": f.editor, "since": {"epoch": "not-the-epoch", "version": 1}}))
        .await;
    let ready = ws.wait_type("ready").await;
    assert_eq!(ready["resumed"], false, "{ready}");
    assert_eq!(ready["version"], 3);
    assert_eq!(ready["notebook"]["title"], "missed 2");
    assert_eq!(ready["notebook"]["cells"].as_array().unwrap().len(), 3);
    assert!(
        ops(&ws.barrier().await).is_empty(),
        "no replay after a full ready"
    );
}

#[tokio::test]
async fn resume_from_a_version_ahead_of_the_notebook_gets_a_full_ready() {
    let f = fixture().await;
    let (mut ws, ready) = f.app.open(&f.id, &f.editor).await;
    let epoch = ready["epoch"].as_str().unwrap().to_string();
    ws.stream.close(None).await.unwrap();
    let mut ws = f.app.connect_bare(&f.id).await;
    ws.send(json!({"type": "auth", "token": f.editor, "since": {"epoch": epoch, "version": 99}}))
        .await;
    let ready = ws.wait_type("ready").await;
    assert_eq!(ready["resumed"], false, "{ready}");
    assert_eq!(ready["version"], 0);
    assert!(ready["notebook"].is_object());
}

#[tokio::test]
async fn resume_from_beyond_the_op_log_gets_a_full_ready() {
    let mut options = Options::default();
    options.limits.op_log_keep = 3;
    let f = fixture_with(options).await;
    let (mut ws, ready) = f.app.open(&f.id, &f.editor).await;
    let epoch = ready["epoch"].as_str().unwrap().to_string();
    ws.stream.close(None).await.unwrap();
    for i in 0..6 {
        f.app.rest_rename(&f.owner, &f.id, &format!("t{i}")).await;
    }
    // Too far back: the log keeps only the last 3.
    let mut ws = f.app.connect_bare(&f.id).await;
    ws.send(json!({"type": "auth", "token": f.editor, "since": {"epoch": epoch, "version": 0}}))
        .await;
    let ready = ws.wait_type("ready").await;
    assert_eq!(ready["resumed"], false, "{ready}");
    assert_eq!(ready["version"], 6);
    assert_eq!(ready["notebook"]["title"], "t5");
    // Within the kept window it resumes.
    let mut ws = f.app.connect_bare(&f.id).await;
    ws.send(json!({"type": "auth", "token": f.editor, "since": {"epoch": epoch, "version": 3}}))
        .await;
    let ready = ws.wait_type("ready").await;
    assert_eq!(ready["resumed"], true, "{ready}");
    assert_eq!(versions(&ws.barrier().await), vec![4, 5, 6]);
}

// ---------------------------------------------------------------------------
// Access changes while connected
// ---------------------------------------------------------------------------

#[tokio::test]
async fn removing_a_member_closes_their_socket_4403() {
    let f = fixture().await;
    let (mut owner_ws, _) = f.app.open(&f.id, &f.owner).await;
    let (mut editor_ws, _) = f.app.open_msg(&f.id, &f.editor).await;
    let (mut editor_ws2, _) = f.app.open(&f.id, &f.editor).await;
    f.app.unshare(&f.owner, &f.id, EDITOR).await;
    editor_ws.expect_close(4403).await;
    editor_ws2.expect_close(4403).await;
    // Others are unaffected and see the editor leave.
    owner_ws
        .wait_for("presence without the editor", |m| {
            kind(m) == "presence"
                && !m["users"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|u| u["user_id"] == EDITOR)
        })
        .await;
    owner_ws.send(rename("o", "still mine")).await;
    assert_eq!(owner_ws.wait_type("ack").await["ref"], "o");
    // And the removed member cannot come back.
    let (status, _) = f
        .app
        .connect(&f.id, "", Some(&f.editor), None)
        .await
        .err()
        .expect("refused");
    assert_eq!(status, 403);
}

#[tokio::test]
async fn demotion_to_viewer_is_announced_and_later_writes_are_forbidden() {
    let f = fixture().await;
    let (mut owner_ws, _) = f.app.open(&f.id, &f.owner).await;
    let (mut ws, ready) = f.app.open(&f.id, &f.editor).await;
    assert_eq!(ready["role"], "editor");
    ws.send(rename("before", "editing")).await;
    assert_eq!(ws.wait_type("ack").await["ref"], "before");

    f.app.share(&f.owner, &f.id, EDITOR, "viewer").await;
    let role = ws.wait_type("role").await;
    assert_eq!(role, json!({"type": "role", "role": "viewer"}));
    ws.send(rename("after", "no longer")).await;
    let err = ws.wait_type("error").await;
    assert_eq!(
        (err["ref"].as_str(), err["code"].as_str()),
        (Some("after"), Some("forbidden"))
    );
    // The role change shows in presence.
    owner_ws
        .wait_for("presence with the editor as viewer", |m| {
            kind(m) == "presence"
                && m["users"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|u| u["user_id"] == EDITOR && u["role"] == "viewer")
        })
        .await;

    // Promotion back is announced the same way and writes work again.
    f.app.share(&f.owner, &f.id, EDITOR, "editor").await;
    assert_eq!(
        ws.wait_type("role").await,
        json!({"type": "role", "role": "editor"})
    );
    ws.send(rename("again", "editing again")).await;
    assert_eq!(ws.wait_type("ack").await["ref"], "again");
}

#[tokio::test]
async fn deleting_the_notebook_closes_every_socket_4404() {
    let f = fixture().await;
    let (mut owner_ws, _) = f.app.open(&f.id, &f.owner).await;
    let (mut editor_ws, _) = f.app.open_msg(&f.id, &f.editor).await;
    let (mut viewer_ws, _) = f.app.open(&f.id, &f.viewer).await;
    f.app
        .rest(
            Method::DELETE,
            &format!("/api/v1/notebooks/{}", f.id),
            &f.owner,
            None,
        )
        .await
        .ok(204);
    owner_ws.expect_close(4404).await;
    editor_ws.expect_close(4404).await;
    viewer_ws.expect_close(4404).await;
    let (status, _) = f
        .app
        .connect(&f.id, "", Some(&f.owner), None)
        .await
        .err()
        .expect("refused");
    assert_eq!(status, 404);
}

// ---------------------------------------------------------------------------
// Flow control
// ---------------------------------------------------------------------------

/// One reader and one client that never reads after `ready`; ops of
/// 512 KiB are made over REST until the idle client is dropped (seen in the
/// reader's presence). Returns how the idle client's connection ended.
async fn slow_reader_scenario() -> End {
    let f = fixture_with(limits(|l| {
        l.outbound_queue = 4;
        l.room_buffer = 8;
    }))
    .await;
    let (mut reader, _) = f.app.open(&f.id, &f.owner).await;
    // The editor authenticates, gets `ready`, and then never reads again.
    let (mut idle, _) = f.app.open(&f.id, &f.editor).await;
    reader
        .wait_for("presence with the idle editor", |m| {
            kind(m) == "presence"
                && m["users"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|u| u["user_id"] == EDITOR)
        })
        .await;

    let big = "x".repeat(512 * 1024);
    let mut seen_versions = Vec::new();
    let mut idle_gone = false;
    let mut sent = 0i64;
    while !idle_gone {
        assert!(
            sent < 200,
            "the idle client was never cut off after {sent} ops of 512 KiB"
        );
        f.app.rest_insert(&f.owner, &f.id, &big).await;
        sent += 1;
        // Lockstep: the reader gets op `sent` before the next one is made.
        loop {
            let m = reader
                .wait_for("op or presence", |m| matches!(kind(m), "op" | "presence"))
                .await;
            if kind(&m) == "presence" {
                let users = m["users"].as_array().unwrap();
                idle_gone |= !users.iter().any(|u| u["user_id"] == EDITOR);
                continue;
            }
            seen_versions.push(m["version"].as_i64().unwrap());
            if m["version"] == sent {
                break;
            }
        }
    }
    // A few more ops: the reader is unaffected.
    for _ in 0..3 {
        f.app.rest_insert(&f.owner, &f.id, "small").await;
        sent += 1;
    }
    while seen_versions.len() < sent as usize {
        let m = reader.wait_type("op").await;
        seen_versions.push(m["version"].as_i64().unwrap());
    }
    assert_eq!(
        seen_versions,
        (1..=sent).collect::<Vec<_>>(),
        "the reader got every op in order"
    );

    // The idle client: what it had buffered, then the end.
    let (end, got) = idle.until_end().await;
    let idle_versions = versions(&got);
    assert!(
        (idle_versions.len() as i64) < sent,
        "the idle client was not cut off"
    );
    assert_eq!(
        idle_versions,
        (1..=idle_versions.len() as i64).collect::<Vec<_>>(),
        "what the idle client got is a gap-free prefix"
    );
    end
}

#[tokio::test]
async fn a_client_that_does_not_read_is_closed_4429_while_others_get_every_op() {
    let end = slow_reader_scenario().await;
    // Either the 4429 close frame arrives, or (when it cannot be delivered to
    // a peer that does not read) the connection just ends; a close frame
    // without the code, or with another one, tells the client the wrong thing.
    assert!(
        matches!(end, End::Close(4429, _) | End::Dropped(_)),
        "idle client ended with {end:?}"
    );
}

#[tokio::test]
async fn ops_over_the_rate_get_rate_limited_errors() {
    let f = fixture_with(limits(|l| {
        l.ops_per_sec = 1.0;
        l.burst = 3.0;
    }))
    .await;
    let (mut ws, _) = f.app.open(&f.id, &f.owner).await;
    for i in 0..8 {
        ws.send(rename(&format!("r{i}"), &format!("t{i}"))).await;
    }
    let mut replies = Vec::new();
    while replies.len() < 8 {
        replies.push(
            ws.wait_for("ack or error", |m| matches!(kind(m), "ack" | "error"))
                .await,
        );
    }
    let acked: Vec<_> = replies
        .iter()
        .filter(|m| kind(m) == "ack")
        .map(|m| m["ref"].clone())
        .collect();
    let limited: Vec<_> = replies
        .iter()
        .filter(|m| kind(m) == "error" && m["code"] == "rate_limited")
        .map(|m| m["ref"].clone())
        .collect();
    assert_eq!(acked.len() + limited.len(), 8, "{replies:?}");
    assert!(
        acked.len() >= 3 && acked.len() <= 4,
        "burst of 3 (+1 refill at most): {replies:?}"
    );
    assert_eq!(&acked[..3], &[json!("r0"), json!("r1"), json!("r2")]);
    assert!(limited.contains(&json!("r7")), "{replies:?}");
    // Limited ops changed nothing.
    let nb = f.app.get_notebook(&f.owner, &f.id).await;
    assert_eq!(nb["version"], acked.len() as i64);
}

#[tokio::test]
async fn a_client_over_the_rate_for_too_long_is_closed_4429() {
    let f = fixture_with(limits(|l| {
        l.ops_per_sec = 1.0;
        l.burst = 1.0;
        l.rate_limit_close_after = Duration::from_millis(300);
    }))
    .await;
    let (mut ws, _) = f.app.open(&f.id, &f.owner).await;
    let start = tokio::time::Instant::now();
    let mut limited = 0;
    let mut i = 0;
    // Lockstep: each op's reply (or the close) is read before the next is
    // sent, so nothing is written to a socket the server already closed.
    'ops: loop {
        assert!(
            start.elapsed() < GUARD,
            "never closed; {limited} rate_limited errors"
        );
        let r = format!("r{i}");
        i += 1;
        ws.send(rename(&r, "spam")).await;
        loop {
            match ws.next_event().await {
                Event::Json(m) if kind(&m) == "error" && m["ref"] == r.as_str() => {
                    assert_eq!(m["code"], "rate_limited", "{m}");
                    limited += 1;
                    break;
                }
                Event::Json(m) if kind(&m) == "ack" && m["ref"] == r.as_str() => break,
                Event::Json(_) => {}
                Event::Other(o) => panic!("{o}"),
                Event::End(end) => {
                    assert_eq!(end.code(), Some(4429), "{end:?}");
                    break 'ops;
                }
            }
        }
    }
    assert!(limited > 0);
}

#[tokio::test]
async fn keepalive_closes_a_silent_client_and_keeps_a_responsive_one() {
    const PONG_TIMEOUT: Duration = Duration::from_secs(2);
    let f = fixture_with(limits(|l| {
        l.ping_interval = Duration::from_millis(250);
        l.pong_timeout = PONG_TIMEOUT;
    }))
    .await;
    let (mut live, _) = f.app.open(&f.id, &f.owner).await;
    let (mut silent, _) = f.app.open(&f.id, &f.editor).await;
    // Everything up to the last write happens on paused time: pings, pongs
    // and the timeout involve no database.
    on_paused_time(keepalive_waits(&mut live, &mut silent, PONG_TIMEOUT)).await;
    live.send(rename("alive", "alive")).await;
    assert_eq!(live.wait_type("ack").await["ref"], "alive");
}

/// The keepalive test's waits: the silent client is dropped, the live one
/// outlives two pong timeouts.
async fn keepalive_waits(live: &mut Ws, silent: &mut Ws, pong_timeout: Duration) {
    // The live client reads (and so answers pings) while the silent one does
    // not; the silent one joining, then leaving, shows in the live one's
    // presence.
    live.wait_for("presence with the silent editor", |m| {
        kind(m) == "presence"
            && m["users"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["user_id"] == EDITOR)
    })
    .await;
    live.wait_for("presence without the silent editor", |m| {
        kind(m) == "presence"
            && !m["users"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["user_id"] == EDITOR)
    })
    .await;
    // The server has dropped it (presence says so); reading it now shows the
    // end (a close frame, or a broken pipe when the client's queued pongs hit
    // the already closed connection first).
    let (end, _) = silent.until_end().await;
    if let End::Close(code, _) = end {
        assert_eq!(code, 4408, "no pong in time");
    }
    // Time is the subject: the responsive client (reading, so answering
    // pings) outlives two pong timeouts.
    let until = tokio::time::Instant::now() + 2 * pong_timeout;
    while let Some(event) = live.next_within(until - tokio::time::Instant::now()).await {
        match event {
            Event::Json(m) if kind(&m) == "presence" => {}
            other => panic!("the responsive client got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Presence
// ---------------------------------------------------------------------------

fn presence_users(m: &Value) -> Vec<(String, String, i64)> {
    m["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| {
            (
                u["user_id"].as_str().unwrap().to_string(),
                u["role"].as_str().unwrap().to_string(),
                u["connections"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn entry(user: &str, role: &str, n: i64) -> (String, String, i64) {
    (user.to_string(), role.to_string(), n)
}

#[tokio::test]
async fn presence_lists_users_sorted_with_roles_and_connection_counts() {
    let app = spawn().await;
    // The owner sorts after the editor; join order is the reverse.
    let (owner_id, editor_id) = ("user_b_owner", "user_a_editor");
    let owner = app.token(owner_id);
    let editor = app.token(editor_id);
    let nb = app.create_notebook(&owner, "P", json!([])).await;
    let id = id_of(&nb);
    app.share(&owner, &id, editor_id, "editor").await;

    let mut o1 = app.connect_header(&id, &owner).await;
    let Event::Json(first) = o1.next_event().await else {
        panic!()
    };
    assert_eq!(first["type"], "ready", "ready comes first: {first}");
    let p = o1.wait_type("presence").await;
    assert_eq!(presence_users(&p), vec![entry(owner_id, "owner", 1)]);

    let (mut e1, _) = app.open_msg(&id, &editor).await;
    let want = vec![entry(editor_id, "editor", 1), entry(owner_id, "owner", 1)];
    for ws in [&mut o1, &mut e1] {
        ws.wait_for("presence with both", |m| {
            kind(m) == "presence" && presence_users(m) == want
        })
        .await;
    }

    let (mut o2, _) = app.open(&id, &owner).await;
    let want = vec![entry(editor_id, "editor", 1), entry(owner_id, "owner", 2)];
    for ws in [&mut o1, &mut e1, &mut o2] {
        ws.wait_for("presence with two owner sockets", |m| {
            kind(m) == "presence" && presence_users(m) == want
        })
        .await;
    }

    e1.stream.close(None).await.unwrap();
    let want = vec![entry(owner_id, "owner", 2)];
    for ws in [&mut o1, &mut o2] {
        ws.wait_for("presence after the editor left", |m| {
            kind(m) == "presence" && presence_users(m) == want
        })
        .await;
    }
    // Presence is never an op.
    assert_eq!(app.get_notebook(&owner, &id).await["version"], 0);
}

#[tokio::test]
async fn presence_changes_are_coalesced() {
    let f = fixture().await;
    let (mut watcher, _) = f.app.open(&f.id, &f.owner).await;
    watcher.wait_type("presence").await;
    let start = std::time::Instant::now();
    // Twenty sockets join at once.
    let joins = (0..20).map(|_| f.app.open(&f.id, &f.editor));
    let _sockets = futures::future::join_all(joins).await;
    let mut presences = 0;
    watcher
        .wait_for("presence with all twenty", |m| {
            if kind(m) == "presence" {
                presences += 1;
            }
            kind(m) == "presence" && presence_users(m).contains(&entry(EDITOR, "editor", 20))
        })
        .await;
    let elapsed = start.elapsed().as_millis() as usize;
    // At most one per 250 ms (plus the one that may go out at once).
    assert!(
        presences <= elapsed / 250 + 2,
        "{presences} presence messages in {elapsed} ms"
    );
}

// ---------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------

#[tokio::test]
async fn graceful_shutdown_closes_sockets_1001() {
    let mut f = fixture().await;
    let (mut a, _) = f.app.open(&f.id, &f.owner).await;
    let (mut b, _) = f.app.open_msg(&f.id, &f.editor).await;
    f.app.shutdown();
    a.expect_close(1001).await;
    b.expect_close(1001).await;
    f.app
        .server_finished()
        .await
        .expect("server stopped cleanly");
}

#[tokio::test]
async fn graceful_shutdown_also_closes_sockets_still_waiting_for_auth_1001() {
    let mut f = fixture().await;
    // Default auth timeout (10 s): shutdown must not wait for it.
    let mut waiting = f.app.connect_bare(&f.id).await;
    assert!(waiting
        .next_within(Duration::from_millis(200))
        .await
        .is_none());
    let start = std::time::Instant::now();
    f.app.shutdown();
    let (end, before) = waiting.until_end().await;
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(
        end.code(),
        Some(1001),
        "got {end:?} after {:?}",
        start.elapsed()
    );
    f.app
        .server_finished()
        .await
        .expect("server stopped cleanly");
}
