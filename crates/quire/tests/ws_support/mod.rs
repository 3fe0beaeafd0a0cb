//! Harness for black-box WebSocket tests.
//!
//! Modelled on `tests/common/mod.rs` (which the REST tests own): the whole
//! server, as `quire serve` assembles it, on `127.0.0.1:0` with a fresh
//! SQLite database and a local Clerk stand-in whose PEM key the verifier
//! trusts. What this adds: socket limits and timings a test can shrink
//! ([`RealtimeLimits`]), a shutdown the test controls, and a WebSocket client
//! ([`Ws`]) that reads until a predicate matches, bounded by a generous hang
//! guard (never a sleep standing in for an event).

#![allow(dead_code)]

#[path = "../common/server.rs"]
mod server;

use std::net::SocketAddr;
use std::time::Duration;

use clerk_auth::testing::ClerkStandIn;
use clerk_auth::KeySource;
use futures::{SinkExt, StreamExt};
use quire::config::LimitArgs;
use quire::realtime::hub::RealtimeLimits;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Runs `wait` with tokio time paused, then lets time run again. While
/// paused, the clock jumps to the next timer as soon as everything in this
/// (current-thread) runtime is idle, so a wait for one of the server's timers
/// (auth timeout, pings, token expiry) takes no real time. Only for waits in
/// which the server does no database work: the store's worker threads are
/// outside the runtime, and the clock would jump while they work.
pub async fn on_paused_time<F: std::future::Future>(wait: F) -> F::Output {
    tokio::time::pause();
    let out = wait.await;
    tokio::time::resume();
    out
}

/// The origin the test server allows.
pub const ALLOWED_ORIGIN: &str = "http://app.test";

/// Upper bound on waiting for any single event. Only a hang guard: every
/// wait ends as soon as the awaited message arrives.
pub const GUARD: Duration = Duration::from_secs(20);

#[allow(unused_imports)] // not every test binary signs webhooks
pub use server::{svix_signature, WEBHOOK_SECRET};

/// What a test may change about the server.
#[derive(Default)]
pub struct Options {
    pub realtime: RealtimeLimits,
    pub limits: LimitArgs,
    /// Verify with a JWKS endpoint that is down (nothing listens there), so
    /// no key is ever available.
    pub unreachable_keys: bool,
}

/// A running server plus what a test needs to talk to it.
pub struct WsApp {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub standin: ClerkStandIn,
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: TempDir,
}

/// Starts a server with DESIGN defaults.
pub async fn spawn() -> WsApp {
    spawn_with(Options::default()).await
}

/// Starts a server with the given socket limits (and REST limits).
pub async fn spawn_with(options: Options) -> WsApp {
    let standin = ClerkStandIn::new();
    let key_source = if options.unreachable_keys {
        KeySource::Jwks {
            api_url: "http://127.0.0.1:9".into(),
            secret_key: standin.secret_key().into(),
        }
    } else {
        KeySource::Pem(standin.public_key_pem())
    };
    let machine = Some(server::machine_config(&standin).await);
    let server::Built {
        listener,
        addr,
        app,
        dir,
    } = server::build(server::Setup {
        key_source,
        issuer: standin.issuer(),
        jwks: Default::default(),
        limits: options.limits,
        realtime: options.realtime,
        allowed_origin: ALLOWED_ORIGIN,
        webhook_secret: Some(WEBHOOK_SECRET.to_string()),
        machine,
    })
    .await;
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(quire::serve(listener, app, async move {
        let _ = rx.await;
    }));
    WsApp {
        addr,
        base: format!("http://{addr}"),
        standin,
        http: reqwest::Client::new(),
        shutdown: Some(tx),
        server: Some(server),
        _dir: dir,
    }
}

/// A REST answer: status and JSON body (`Null` when it is not JSON).
#[derive(Debug)]
pub struct Rest {
    pub status: u16,
    pub json: Value,
}

impl Rest {
    #[track_caller]
    pub fn ok(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected REST answer: {}", self.json);
        self.json
    }
}

impl WsApp {
    /// A session token for `user` valid for an hour.
    pub fn token(&self, user: &str) -> String {
        self.standin.token(user).lifetime(3600).sign()
    }

    /// `ws://127.0.0.1:PORT/api/v1/notebooks/{id}/ws{query}`.
    pub fn ws_url(&self, id: &str, query: &str) -> String {
        format!("ws://{}/api/v1/notebooks/{id}/ws{query}", self.addr)
    }

    /// Triggers the server's graceful shutdown.
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits (bounded) for the server task to finish after [`shutdown`].
    pub async fn server_finished(&mut self) -> std::io::Result<()> {
        let server = self.server.take().expect("server still owned");
        tokio::time::timeout(GUARD, server)
            .await
            .expect("server did not stop in time")
            .expect("server task panicked")
    }

    pub async fn rest(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Rest {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.expect("request sent");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        Rest {
            status,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    /// Creates a notebook with `cells` (`[{"cell_type","source"}]`); returns it.
    pub async fn create_notebook(&self, token: &str, title: &str, cells: Value) -> Value {
        self.rest(
            reqwest::Method::POST,
            "/api/v1/notebooks",
            token,
            Some(json!({"title": title, "cells": cells})),
        )
        .await
        .ok(201)
    }

    /// Adds/changes a member (owner only).
    pub async fn share(&self, owner: &str, id: &str, user: &str, role: &str) {
        self.rest(
            reqwest::Method::PUT,
            &format!("/api/v1/notebooks/{id}/members/{user}"),
            owner,
            Some(json!({"role": role})),
        )
        .await
        .ok(200);
    }

    /// Removes a member (owner only).
    pub async fn unshare(&self, owner: &str, id: &str, user: &str) {
        self.rest(
            reqwest::Method::DELETE,
            &format!("/api/v1/notebooks/{id}/members/{user}"),
            owner,
            None,
        )
        .await
        .ok(204);
    }

    /// Appends a cell over REST; returns it.
    pub async fn rest_insert(&self, token: &str, id: &str, source: &str) -> Value {
        self.rest(
            reqwest::Method::POST,
            &format!("/api/v1/notebooks/{id}/cells"),
            token,
            Some(json!({"cell_type": "code", "source": source})),
        )
        .await
        .ok(201)
    }

    /// Renames over REST.
    pub async fn rest_rename(&self, token: &str, id: &str, title: &str) {
        self.rest(
            reqwest::Method::PATCH,
            &format!("/api/v1/notebooks/{id}"),
            token,
            Some(json!({"title": title})),
        )
        .await
        .ok(200);
    }

    pub async fn get_notebook(&self, token: &str, id: &str) -> Value {
        self.rest(
            reqwest::Method::GET,
            &format!("/api/v1/notebooks/{id}"),
            token,
            None,
        )
        .await
        .ok(200)
    }

    /// Upgrades with the given headers; `Err((status, body))` when refused
    /// before the 101.
    pub async fn connect(
        &self,
        id: &str,
        query: &str,
        bearer: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Ws, (u16, Value)> {
        let mut request = self
            .ws_url(id, query)
            .into_client_request()
            .expect("ws request");
        if let Some(token) = bearer {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        match tokio::time::timeout(GUARD, tokio_tungstenite::connect_async(request))
            .await
            .expect("upgrade did not finish in time")
        {
            Ok((stream, response)) => {
                assert_eq!(response.status().as_u16(), 101);
                Ok(Ws { stream })
            }
            Err(WsError::Http(response)) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(Value::Null);
                Err((status, body))
            }
            Err(e) => panic!("upgrade failed unexpectedly: {e}"),
        }
    }

    /// Header auth; panics unless the upgrade succeeds.
    pub async fn connect_header(&self, id: &str, token: &str) -> Ws {
        self.connect(id, "", Some(token), None)
            .await
            .unwrap_or_else(|(s, b)| panic!("upgrade refused: {s} {b}"))
    }

    /// Header auth, then the `ready` message.
    pub async fn open(&self, id: &str, token: &str) -> (Ws, Value) {
        let mut ws = self.connect_header(id, token).await;
        let ready = ws.wait_type("ready").await;
        (ws, ready)
    }

    /// No header; panics unless the upgrade succeeds.
    pub async fn connect_bare(&self, id: &str) -> Ws {
        self.connect(id, "", None, None)
            .await
            .unwrap_or_else(|(s, b)| panic!("upgrade refused: {s} {b}"))
    }

    /// First-message auth, then the `ready` message.
    pub async fn open_msg(&self, id: &str, token: &str) -> (Ws, Value) {
        let mut ws = self.connect_bare(id).await;
        ws.send(json!({"type": "auth", "token": token})).await;
        let ready = ws.wait_type("ready").await;
        (ws, ready)
    }
}

/// How a socket ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// A close frame with this code.
    Close(u16, String),
    /// A close frame without a code.
    CloseNoCode,
    /// The connection ended without a close frame (reset, EOF).
    Dropped(String),
}

impl End {
    pub fn code(&self) -> Option<u16> {
        match self {
            End::Close(code, _) => Some(*code),
            _ => None,
        }
    }
}

/// What one read produced.
#[derive(Debug)]
pub enum Event {
    Json(Value),
    /// A frame that is not JSON text (binary, or text that does not parse).
    Other(String),
    End(End),
}

/// A client socket.
pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub async fn send(&mut self, v: Value) {
        self.send_raw(Message::Text(v.to_string().into())).await;
    }

    pub async fn send_raw(&mut self, m: Message) {
        tokio::time::timeout(GUARD, self.stream.send(m))
            .await
            .expect("send did not finish in time")
            .expect("send failed");
    }

    /// The next data event (control frames are handled by the client);
    /// `None` when nothing arrives within `within`.
    pub async fn next_within(&mut self, within: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let item = match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return None,
                Ok(item) => item,
            };
            return Some(match item {
                None => Event::End(End::Dropped("stream ended".into())),
                Some(Err(e)) => Event::End(End::Dropped(e.to_string())),
                Some(Ok(Message::Text(t))) => match serde_json::from_str(t.as_str()) {
                    Ok(v) => Event::Json(v),
                    Err(_) => Event::Other(format!("text {t}")),
                },
                Some(Ok(Message::Binary(b))) => {
                    Event::Other(format!("binary of {} bytes", b.len()))
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(Some(CloseFrame { code, reason })))) => {
                    Event::End(End::Close(u16::from(code), reason.to_string()))
                }
                Some(Ok(Message::Close(None))) => Event::End(End::CloseNoCode),
            });
        }
    }

    /// The next data event, bounded by the hang guard.
    pub async fn next_event(&mut self) -> Event {
        self.next_within(GUARD)
            .await
            .expect("hang guard: nothing arrived from the server")
    }

    /// Reads until a JSON message matches `pred`; panics if the socket ends
    /// first (with everything seen, for the failure message).
    pub async fn wait_for(&mut self, what: &str, mut pred: impl FnMut(&Value) -> bool) -> Value {
        let mut seen = Vec::new();
        loop {
            match self.next_within(GUARD).await {
                None => panic!("hang guard: no {what} after {}", brief(&seen)),
                Some(Event::Json(v)) if pred(&v) => return v,
                Some(Event::Json(v)) => seen.push(v),
                Some(Event::Other(o)) => panic!("unexpected frame {o} while waiting for {what}"),
                Some(Event::End(end)) => panic!(
                    "socket ended ({end:?}) while waiting for {what}; saw {}",
                    brief(&seen)
                ),
            }
        }
    }

    /// Reads until a message of this `type` arrives.
    pub async fn wait_type(&mut self, kind: &str) -> Value {
        self.wait_for(kind, |v| v["type"] == kind).await
    }

    /// Reads until a message of this type, returning it and what came before.
    pub async fn collect_until(&mut self, kind: &str) -> (Vec<Value>, Value) {
        let mut seen = Vec::new();
        loop {
            match self.next_within(GUARD).await {
                None => panic!("hang guard: no {kind} after {}", brief(&seen)),
                Some(Event::Json(v)) if v["type"] == kind => return (seen, v),
                Some(Event::Json(v)) => seen.push(v),
                Some(Event::Other(o)) => panic!("unexpected frame {o} while waiting for {kind}"),
                Some(Event::End(end)) => panic!(
                    "socket ended ({end:?}) while waiting for {kind}; saw {}",
                    brief(&seen)
                ),
            }
        }
    }

    /// Sends a JSON ping and returns every message that arrived before the
    /// pong: the server answers in order, so the pong is a barrier.
    pub async fn barrier(&mut self) -> Vec<Value> {
        self.send(json!({"type": "ping"})).await;
        self.collect_until("pong").await.0
    }

    /// Reads until the socket ends, returning how and the JSON messages that
    /// came before.
    pub async fn until_end(&mut self) -> (End, Vec<Value>) {
        let mut seen = Vec::new();
        loop {
            match self.next_within(GUARD).await {
                None => panic!("hang guard: socket still open after {}", brief(&seen)),
                Some(Event::Json(v)) => seen.push(v),
                Some(Event::Other(o)) => panic!("unexpected frame {o}"),
                Some(Event::End(end)) => return (end, seen),
            }
        }
    }

    /// Reads until the socket ends; asserts it ended with close `code`.
    pub async fn expect_close(&mut self, code: u16) -> Vec<Value> {
        let (end, seen) = self.until_end().await;
        assert_eq!(
            end.code(),
            Some(code),
            "expected close {code}, got {end:?} after {}",
            brief(&seen)
        );
        seen
    }
}

/// Messages for failure output, each cut to 200 characters.
pub fn brief(msgs: &[Value]) -> String {
    let parts: Vec<String> = msgs
        .iter()
        .map(|m| {
            let s = m.to_string();
            if s.len() > 200 {
                format!("{}...", &s[..200])
            } else {
                s
            }
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// The `type` of a message.
pub fn kind(v: &Value) -> &str {
    v["type"].as_str().unwrap_or("")
}

/// Only the `op` messages.
pub fn ops(msgs: &[Value]) -> Vec<Value> {
    msgs.iter().filter(|m| kind(m) == "op").cloned().collect()
}

/// The versions of the `op` messages.
pub fn versions(msgs: &[Value]) -> Vec<i64> {
    ops(msgs)
        .iter()
        .map(|m| m["version"].as_i64().expect("op version"))
        .collect()
}

/// The notebook id of a notebook JSON.
pub fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}
