//! Test harness for black-box tests of the REST API.
//!
//! [`spawn_app`] starts the whole server, exactly as `quire serve` assembles
//! it, on `127.0.0.1:0` with a fresh SQLite database in a temporary
//! directory and a local Clerk stand-in whose PEM public key the verifier
//! trusts (networkless PEM mode, issuer checked). Tests talk to it over real
//! HTTP with `reqwest` and real RS256 session tokens, and see only what a
//! client would see: status, headers, body.

#![allow(dead_code)]

mod server;

use std::time::Duration;

use clerk_auth::config::JwksOptions;
use clerk_auth::testing::ClerkStandIn;
use clerk_auth::KeySource;
use quire::config::LimitArgs;
use quire::realtime::hub::RealtimeLimits;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};
use tempfile::TempDir;

/// The origin whose `__session` cookie the test server accepts.
pub const ALLOWED_ORIGIN: &str = "http://app.test";

#[allow(unused_imports)] // not every test binary signs webhooks
pub use server::{svix_signature, WEBHOOK_SECRET};

/// A running server plus what a test needs to talk to it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base: String,
    /// The Clerk the server trusts: mints tokens it accepts.
    pub standin: ClerkStandIn,
    pub http: reqwest::Client,
    /// Keeps the database directory alive as long as the app.
    _dir: TempDir,
}

/// Starts a server with the default limits.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(LimitArgs::default()).await
}

/// Starts a server with the given limits (e.g. a small `max_body_bytes`).
pub async fn spawn_app_with(limits: LimitArgs) -> TestApp {
    let standin = ClerkStandIn::new();
    let key_source = KeySource::Pem(standin.public_key_pem());
    spawn(limits, standin, key_source, JwksOptions::default()).await
}

/// Starts a server that fetches its keys from the stand-in's `/v1/jwks`
/// (served on its own port) instead of a PEM, with no refetch cooldown so a
/// recovered JWKS is used at once. Use `app.standin.set_jwks_fault` to make
/// Clerk misbehave.
pub async fn spawn_app_jwks() -> TestApp {
    let standin = ClerkStandIn::new();
    let api_url = standin.serve().await;
    let key_source = KeySource::Jwks {
        api_url,
        secret_key: standin.secret_key().into(),
    };
    let jwks = JwksOptions {
        cooldown: Duration::ZERO,
        ..JwksOptions::default()
    };
    spawn(LimitArgs::default(), standin, key_source, jwks).await
}

async fn spawn(
    limits: LimitArgs,
    standin: ClerkStandIn,
    key_source: KeySource,
    jwks: JwksOptions,
) -> TestApp {
    let machine = Some(server::machine_config(&standin).await);
    let server::Built {
        listener,
        addr,
        app,
        dir,
    } = server::build(server::Setup {
        key_source,
        issuer: standin.issuer(),
        jwks,
        limits,
        realtime: RealtimeLimits::default(),
        allowed_origin: ALLOWED_ORIGIN,
        webhook_secret: Some(WEBHOOK_SECRET.to_string()),
        machine,
    })
    .await;
    tokio::spawn(quire::serve(listener, app, std::future::pending()));
    TestApp {
        base: format!("http://{addr}"),
        standin,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client"),
        _dir: dir,
    }
}

/// What came back: status, headers and the body (as text and, when it
/// parses, as JSON; `Value::Null` otherwise).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Resp {
    async fn from(r: reqwest::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.expect("response body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            json,
        }
    }

    /// A header as text (panics if it is not valid text).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("header is text"))
    }

    /// Asserts the status, with the body in the failure message.
    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "expected {status}, got {}: {}",
            self.status, self.text
        );
        self
    }

    /// Asserts an error response: `status`, a JSON body
    /// `{"error":{"code","message","request_id"}}` with `code`, a non-empty
    /// message, and `request_id` equal to the `x-request-id` header.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> &Self {
        self.assert_status(status);
        assert_error_shape(self);
        assert_eq!(
            self.json["error"]["code"], code,
            "wrong error code in {}",
            self.text
        );
        self
    }

    /// Asserts a 4xx with our error body (any of `statuses`).
    #[track_caller]
    pub fn assert_client_error_in(&self, statuses: &[u16]) -> &Self {
        assert!(
            statuses.contains(&self.status),
            "expected one of {statuses:?}, got {}: {}",
            self.status,
            self.text
        );
        assert_error_shape(self);
        self
    }
}

/// Checks the shared error body shape and request id echo.
#[track_caller]
pub fn assert_error_shape(r: &Resp) {
    let content_type = r.header("content-type").unwrap_or("");
    assert!(
        content_type.starts_with("application/json"),
        "error content-type is {content_type:?}: {}",
        r.text
    );
    let error = &r.json["error"];
    assert!(error.is_object(), "no error object in {:?}", r.text);
    assert!(
        error["code"].as_str().is_some_and(|c| !c.is_empty()),
        "error.code missing: {}",
        r.text
    );
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error.message missing: {}",
        r.text
    );
    let request_id = error["request_id"]
        .as_str()
        .expect("error.request_id is a string");
    assert!(!request_id.is_empty(), "empty request_id: {}", r.text);
    assert_eq!(
        r.header("x-request-id"),
        Some(request_id),
        "error.request_id must equal the x-request-id header"
    );
}

/// One request: method, path (relative to the base), optional bearer token,
/// optional JSON body, extra headers.
pub struct Req<'a> {
    app: &'a TestApp,
    builder: reqwest::RequestBuilder,
}

impl<'a> Req<'a> {
    pub fn bearer(mut self, token: Option<&str>) -> Self {
        if let Some(t) = token {
            self.builder = self.builder.bearer_auth(t);
        }
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    pub fn json(mut self, body: &Value) -> Self {
        self.builder = self.builder.json(body);
        self
    }

    /// A raw body with `content-type: application/json`.
    pub fn raw(mut self, body: impl Into<reqwest::Body>) -> Self {
        self.builder = self
            .builder
            .header("content-type", "application/json")
            .body(body);
        self
    }

    pub async fn send(self) -> Resp {
        let _ = self.app;
        Resp::from(self.builder.send().await.expect("request sent")).await
    }
}

impl TestApp {
    /// A session token for `user` (1 hour, so no test ever races expiry).
    pub fn token(&self, user: &str) -> String {
        self.standin.token(user).lifetime(3600).sign()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Starts a request for anything the helpers below do not cover.
    pub fn req(&self, method: Method, path: &str) -> Req<'_> {
        Req {
            app: self,
            builder: self.http.request(method, self.url(path)),
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.req(Method::GET, path).bearer(token).send().await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.req(Method::DELETE, path).bearer(token).send().await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.req(Method::POST, path)
            .bearer(token)
            .json(body)
            .send()
            .await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.req(Method::PATCH, path)
            .bearer(token)
            .json(body)
            .send()
            .await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.req(Method::PUT, path)
            .bearer(token)
            .json(body)
            .send()
            .await
    }

    /// `POST /api/v1/notebooks`, asserting 201; returns the notebook JSON.
    pub async fn create_notebook(&self, token: &str, title: &str, cells: Value) -> Value {
        let r = self
            .post(
                "/api/v1/notebooks",
                Some(token),
                &json!({"title": title, "cells": cells}),
            )
            .await;
        r.assert_status(201);
        r.json
    }

    /// Creates a notebook and returns its id.
    pub async fn create_notebook_id(&self, token: &str, title: &str, cells: Value) -> String {
        id_of(&self.create_notebook(token, title, cells).await)
    }

    /// `GET /api/v1/notebooks/{id}`, asserting 200.
    pub async fn notebook(&self, token: &str, id: &str) -> Value {
        let r = self.get(&nb(id), Some(token)).await;
        r.assert_status(200);
        r.json
    }

    /// `PUT .../members/{user}` by the owner, asserting 200.
    pub async fn share(&self, owner_token: &str, id: &str, user: &str, role: &str) {
        self.put(
            &format!("{}/members/{user}", nb(id)),
            Some(owner_token),
            &json!({"role": role}),
        )
        .await
        .assert_status(200);
    }

    /// `POST .../cells`, asserting 201; returns the cell.
    pub async fn insert_cell(&self, token: &str, id: &str, body: Value) -> Value {
        let r = self.post(&cells(id), Some(token), &body).await;
        r.assert_status(201);
        r.json
    }
}

/// `/api/v1/notebooks/{id}`.
pub fn nb(id: &str) -> String {
    format!("/api/v1/notebooks/{id}")
}

/// `/api/v1/notebooks/{id}/cells`.
pub fn cells(id: &str) -> String {
    format!("/api/v1/notebooks/{id}/cells")
}

/// `/api/v1/notebooks/{id}/cells/{cell_id}`.
pub fn cell(id: &str, cell_id: &str) -> String {
    format!("/api/v1/notebooks/{id}/cells/{cell_id}")
}

/// `/api/v1/notebooks/{id}/members`.
pub fn members(id: &str) -> String {
    format!("/api/v1/notebooks/{id}/members")
}

/// The `id` member as a string.
#[track_caller]
pub fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("has a string id").to_string()
}

/// The cell ids of a notebook JSON, in order.
#[track_caller]
pub fn cell_ids(notebook: &Value) -> Vec<String> {
    notebook["cells"]
        .as_array()
        .expect("notebook has cells")
        .iter()
        .map(id_of)
        .collect()
}

/// A well-formed notebook id that no notebook has.
pub fn unknown_notebook_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Asserts a string is an RFC 3339 UTC timestamp.
#[track_caller]
pub fn assert_rfc3339_utc(v: &Value) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is not a string: {v}"));
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s:?} is not RFC 3339: {e}"));
    assert_eq!(t.offset().local_minus_utc(), 0, "{s:?} is not UTC");
}
