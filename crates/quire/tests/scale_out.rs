//! Several `quire serve` processes on one PostgreSQL + Redis (DESIGN.md
//! "Scale-out"): sockets on each, writers on each, the Redis connections cut
//! in the middle; every socket must end with the identical version sequence
//! 1..=N, no gaps, no acked op lost, and the final state must equal the op
//! stream replayed.
//!
//! Needs `QUIRE_TEST_POSTGRES_URL` and `QUIRE_TEST_REDIS_URL` (`.ci/run` sets
//! them); skipped with a printed reason otherwise.

#[path = "common/server.rs"]
mod server;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use clerk_auth::testing::ClerkStandIn;
use fred::interfaces::ClientLike;
use futures::StreamExt;
use serde_json::{json, Value};
use sqlx::Connection;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const OPS: usize = 200;
const GUARD: Duration = Duration::from_secs(60);

fn env_urls() -> Option<(String, String)> {
    let pg = std::env::var("QUIRE_TEST_POSTGRES_URL").ok();
    let redis = std::env::var("QUIRE_TEST_REDIS_URL").ok();
    match (pg, redis) {
        (Some(pg), Some(redis)) => Some((pg, redis)),
        _ => {
            eprintln!(
                "skipping: QUIRE_TEST_POSTGRES_URL and QUIRE_TEST_REDIS_URL must both be set"
            );
            None
        }
    }
}

/// A fresh database on the test server, dropped at the end.
struct Database {
    admin_url: String,
    name: String,
    url: String,
}

impl Database {
    async fn create(admin_url: &str) -> Database {
        let name = format!("quire_scale_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("connect to PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create database");
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(admin_url);
        Database {
            admin_url: admin_url.to_string(),
            url: format!("{base}/{name}"),
            name,
        }
    }

    async fn drop_it(self) {
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn)
            .await;
        }
    }
}

/// One `quire serve` process.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(db: &str, redis: &str, standin: &ClerkStandIn) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_quire"))
            .arg("serve")
            .env("QUIRE_ADDR", "127.0.0.1:0")
            .env("QUIRE_DATABASE_URL", db)
            .env("QUIRE_REDIS_URL", redis)
            .env("CLERK_JWT_KEY", standin.public_key_pem())
            .env("CLERK_ISSUER", standin.issuer())
            .env("CLERK_WEBHOOK_SECRET", server::WEBHOOK_SECRET)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start quire serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("quire exited before listening")
                .expect("read stdout");
            if line.contains("quire listening") {
                let addr = line.split("addr=").nth(1).expect("addr field");
                break addr.split_whitespace().next().expect("addr").to_string();
            }
        };
        // Keep draining its logs so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            base: format!("http://{addr}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_socket(base: &str, id: &str, token: &str) -> Socket {
    let url = format!(
        "{}/api/v1/notebooks/{id}/ws",
        base.replace("http://", "ws://")
    );
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade");
    loop {
        let msg = tokio::time::timeout(GUARD, ws.next())
            .await
            .expect("ready in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).expect("json");
            if v["type"] == "ready" {
                assert_eq!(v["version"], 2, "ready after the two inserts");
                return ws;
            }
        }
    }
}

/// Reads op events until `last`, returning (version, op) in arrival order.
async fn ops_until(mut ws: Socket, last: i64) -> Vec<(i64, Value)> {
    let mut seen = Vec::new();
    while seen.last().map(|(v, _)| *v) != Some(last) {
        let msg = tokio::time::timeout(GUARD, ws.next())
            .await
            .expect("ops keep arriving")
            .expect("socket open")
            .expect("frame");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).expect("json");
            if v["type"] == "op" {
                seen.push((v["version"].as_i64().expect("version"), v["op"].clone()));
            }
        }
    }
    let _ = ws.close(None).await;
    seen
}

async fn cut_redis_connections(redis: &str) {
    let client = fred::prelude::Builder::from_config(
        fred::prelude::Config::from_url(redis).expect("redis url"),
    )
    .build()
    .expect("redis client");
    client.init().await.expect("connect to Redis");
    for kind in ["pubsub", "normal"] {
        let killed: Result<fred::types::Value, _> = client
            .custom(
                fred::cmd!("CLIENT"),
                vec!["KILL", "TYPE", kind, "SKIPME", "yes"],
            )
            .await;
        eprintln!("CLIENT KILL TYPE {kind}: {killed:?}");
    }
    let _ = client.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_deliver_identical_sequences_through_a_redis_cut() {
    let Some((pg, redis)) = env_urls() else {
        return;
    };
    let db = Database::create(&pg).await;
    let standin = ClerkStandIn::new();
    let a = Server::start(&db.url, &redis, &standin);
    let b = Server::start(&db.url, &redis, &standin);
    let http = reqwest::Client::new();
    let token = standin.token("user_owner").lifetime(3600).sign();

    let created: Value = http
        .post(format!("{}/api/v1/notebooks", a.base))
        .bearer_auth(&token)
        .json(&json!({"title": "scale", "cells": [{"cell_type": "code", "source": "a"}, {"cell_type": "code", "source": "b"}]}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id").to_string();
    let cells: Vec<String> = created["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|c| c["id"].as_str().expect("cell id").to_string())
        .collect();
    // Two inserts so the notebook starts at version 2 (creation is not an op).
    for base in [&a.base, &b.base] {
        let r = http
            .post(format!("{base}/api/v1/notebooks/{id}/cells"))
            .bearer_auth(&token)
            .json(&json!({"cell_type": "markdown", "source": "seed"}))
            .send()
            .await
            .expect("insert");
        assert_eq!(r.status(), 201);
    }

    let mut readers = Vec::new();
    for base in [&a.base, &a.base, &b.base, &b.base] {
        let ws = open_socket(base, &id, &token).await;
        readers.push(tokio::spawn(ops_until(ws, (OPS + 2) as i64)));
    }

    // 200 concurrent updates split over both processes; the Redis links are
    // cut when half of them are acked.
    let acked = Arc::new(tokio::sync::Semaphore::new(0));
    let mut writers = Vec::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(16));
    for i in 0..OPS {
        let base = if i % 2 == 0 {
            a.base.clone()
        } else {
            b.base.clone()
        };
        let (http, token, id, cell) = (
            http.clone(),
            token.clone(),
            id.clone(),
            cells[i % cells.len()].clone(),
        );
        let (acked, limit) = (acked.clone(), limit.clone());
        writers.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.expect("permit");
            let r = http
                .patch(format!("{base}/api/v1/notebooks/{id}/cells/{cell}"))
                .bearer_auth(&token)
                .json(&json!({"source": format!("w{i}")}))
                .send()
                .await
                .expect("patch");
            assert_eq!(r.status(), 200, "update {i} acked");
            acked.add_permits(1);
        }));
    }
    let _half = acked
        .acquire_many((OPS / 2) as u32)
        .await
        .expect("half acked");
    cut_redis_connections(&redis).await;
    for w in writers {
        w.await.expect("writer");
    }

    let mut sequences = Vec::new();
    for r in readers {
        sequences.push(r.await.expect("reader"));
    }
    let versions: Vec<i64> = (3..=(OPS as i64 + 2)).collect();
    for seq in &sequences {
        let got: Vec<i64> = seq.iter().map(|(v, _)| *v).collect();
        assert_eq!(got, versions, "every socket sees 3..=N once, in order");
        assert_eq!(seq, &sequences[0], "identical op streams on both processes");
    }

    // Final state equals the op stream replayed onto the start.
    let mut sources: HashMap<String, (String, i64)> = cells
        .iter()
        .map(|c| (c.clone(), (String::new(), 1)))
        .collect();
    for (_, op) in &sequences[0] {
        assert_eq!(op["type"], "cell.update");
        let entry = sources
            .get_mut(op["cell_id"].as_str().expect("cell_id"))
            .expect("known cell");
        *entry = (
            op["source"].as_str().expect("source").to_string(),
            op["cell_version"].as_i64().expect("cell_version"),
        );
    }
    for base in [&a.base, &b.base] {
        let nb: Value = http
            .get(format!("{base}/api/v1/notebooks/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(nb["version"], OPS as i64 + 2);
        for cell in nb["cells"].as_array().expect("cells") {
            if let Some((source, version)) = sources.get(cell["id"].as_str().expect("id")) {
                assert_eq!(cell["source"].as_str(), Some(source.as_str()));
                assert_eq!(cell["version"].as_i64(), Some(*version));
            }
        }
    }
    drop((a, b));
    db.drop_it().await;
}

/// Presence lists who has the notebook open on every process, not just this one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_spans_processes() {
    let Some((pg, redis)) = env_urls() else {
        return;
    };
    let db = Database::create(&pg).await;
    let standin = ClerkStandIn::new();
    let a = Server::start(&db.url, &redis, &standin);
    let b = Server::start(&db.url, &redis, &standin);
    let http = reqwest::Client::new();
    let owner = standin.token("user_pa").lifetime(3600).sign();
    let guest = standin.token("user_pb").lifetime(3600).sign();
    let id = shared_notebook(&http, &a.base, &owner, "presence", "user_pb").await;

    let mut on_a = open_any(&a.base, &id, &owner).await;
    let _on_b = open_any(&b.base, &id, &guest).await;
    // The socket on A must come to see both users, each with their role.
    let both = loop {
        let msg = tokio::time::timeout(GUARD, on_a.next())
            .await
            .expect("presence in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).expect("json");
            if v["type"] == "presence" && v["users"].as_array().is_some_and(|u| u.len() == 2) {
                break v;
            }
        }
    };
    assert_eq!(both["users"][0]["user_id"], "user_pa");
    assert_eq!(both["users"][0]["role"], "owner");
    assert_eq!(both["users"][1]["user_id"], "user_pb");
    assert_eq!(both["users"][1]["role"], "viewer");
    drop((a, b));
    db.drop_it().await;
}

/// Creates a notebook on `base` as `owner` and shares it with `member` as a
/// viewer; returns its id.
async fn shared_notebook(
    http: &reqwest::Client,
    base: &str,
    owner: &str,
    title: &str,
    member: &str,
) -> String {
    let created: Value = http
        .post(format!("{base}/api/v1/notebooks"))
        .bearer_auth(owner)
        .json(&json!({ "title": title }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id").to_string();
    let shared = http
        .put(format!("{base}/api/v1/notebooks/{id}/members/{member}"))
        .bearer_auth(owner)
        .json(&json!({"role": "viewer"}))
        .send()
        .await
        .expect("share");
    assert_eq!(shared.status(), 200);
    id
}

async fn open_any(base: &str, id: &str, token: &str) -> Socket {
    let url = format!(
        "{}/api/v1/notebooks/{id}/ws",
        base.replace("http://", "ws://")
    );
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade")
        .0
}

/// DESIGN.md "Organizations": a user leaving an organization is refused at
/// once on every process; their socket on the other process, open only
/// through the org's share, closes with 4403.
#[tokio::test]
async fn an_org_membership_revoked_on_one_process_closes_sockets_on_another() {
    let Some((pg, redis)) = env_urls() else {
        return;
    };
    let db = Database::create(&pg).await;
    let standin = ClerkStandIn::new();
    let a = Server::start(&db.url, &redis, &standin);
    let b = Server::start(&db.url, &redis, &standin);
    let http = reqwest::Client::new();
    let owner = standin.token("user_oa").lifetime(3600).sign();
    let member = standin
        .token("user_ob")
        .org("org_scale", "scale", "member", "", "", "")
        .lifetime(3600)
        .sign();
    let id = shared_notebook(&http, &a.base, &owner, "org", "org_scale").await;

    let mut on_b = open_any(&b.base, &id, &member).await;
    // An op committed on A reaching B's socket shows B hears the fan-out.
    let renamed = http
        .patch(format!("{}/api/v1/notebooks/{id}", a.base))
        .bearer_auth(&owner)
        .json(&json!({"title": "renamed"}))
        .send()
        .await
        .expect("rename");
    assert_eq!(renamed.status(), 200);
    next_matching(&mut on_b, |v| v["type"] == "op").await;

    let body = json!({
        "type": "organizationMembership.deleted",
        "data": {
            "organization": {"id": "org_scale"},
            "public_user_data": {"user_id": "user_ob"},
        },
    })
    .to_string();
    let ts = chrono::Utc::now().timestamp();
    let sig = server::svix_signature(server::WEBHOOK_SECRET, "msg_scale_org", ts, body.as_bytes());
    let delivered = http
        .post(format!("{}/api/v1/webhooks/clerk", a.base))
        .header("svix-id", "msg_scale_org")
        .header("svix-timestamp", ts.to_string())
        .header("svix-signature", sig)
        .body(body)
        .send()
        .await
        .expect("webhook");
    assert_eq!(delivered.status(), 204);

    let code = loop {
        let msg = tokio::time::timeout(GUARD, on_b.next())
            .await
            .expect("closed in time");
        match msg {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            other => panic!("socket ended without a close frame: {other:?}"),
        }
    };
    assert_eq!(code, Some(4403));
    let refused = http
        .get(format!("{}/api/v1/notebooks/{id}", b.base))
        .bearer_auth(&member)
        .send()
        .await
        .expect("get");
    assert_eq!(refused.status(), 403);
    drop((a, b));
    db.drop_it().await;
}

/// The next JSON message on `ws` that satisfies `pred` (bounded by GUARD).
async fn next_matching(ws: &mut Socket, pred: impl Fn(&Value) -> bool) -> Value {
    loop {
        let msg = tokio::time::timeout(GUARD, ws.next())
            .await
            .expect("message in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).expect("json");
            if pred(&v) {
                return v;
            }
        }
    }
}
