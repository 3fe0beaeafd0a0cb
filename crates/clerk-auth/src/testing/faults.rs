//! Fault injection for the stand-in's HTTP routes.
//!
//! A careful verifier must behave well when Clerk misbehaves (503 with
//! `Retry-After`, known keys keep working, bounded retries on 429/5xx, size
//! caps, timeouts); each [`Fault`] reproduces one such misbehaviour on demand.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::server::clerk_error;

/// Size of the [`Fault::Huge`] body: far above any sane JWKS size cap.
const HUGE_BODY_BYTES: usize = 10 * 1024 * 1024;

/// How a route misbehaves; set with `set_fault` (or `set_jwks_fault` / `set_verify_fault`).
#[derive(Clone, Debug, Default)]
pub enum Fault {
    /// Answer normally.
    #[default]
    None,
    /// Answer with this HTTP status and a Clerk error body.
    Status(u16),
    /// Answer 429 with `Retry-After: <retry_after_secs>`.
    TooManyRequests { retry_after_secs: u64 },
    /// Never answer (the handler sleeps an hour); tests client timeouts.
    Hang,
    /// Sleep this long, then answer normally; tests deadlines and coalescing.
    Slow(Duration),
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with ~10 MiB of JSON-looking bytes; tests response size caps.
    Huge,
    /// The next `n` requests get the inner fault, later ones answer
    /// normally (e.g. one 429, then success: a retry that recovers).
    Times(u32, Box<Fault>),
    /// Hold each request until the [`Gate`] opens, then answer normally:
    /// keeps a call in flight for exactly as long as a test needs, no sleep.
    Held(Gate),
}

/// A gate requests wait at under [`Fault::Held`]; opened once, stays open.
#[derive(Clone, Debug)]
pub struct Gate(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Gate(Arc::new(tokio::sync::watch::Sender::new(false)))
    }

    /// Lets every held and future request through.
    pub fn open(&self) {
        self.0.send_replace(true);
    }

    async fn passed(&self) {
        let mut open = self.0.subscribe();
        // The sender lives in `self`, so waiting cannot fail.
        let _ = open.wait_for(|is_open| *is_open).await;
    }
}

/// Applies `fault`: `Some(response)` replaces the normal answer, `None` means
/// carry on (possibly after a delay).
pub(super) async fn apply(fault: Fault) -> Option<Response> {
    match fault {
        Fault::None => None,
        Fault::Status(code) => Some(status_response(code)),
        Fault::TooManyRequests { retry_after_secs } => Some(too_many_requests(retry_after_secs)),
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Some(status_response(504))
        }
        Fault::Slow(delay) => {
            tokio::time::sleep(delay).await;
            None
        }
        Fault::Garbage => Some(json_ok(Bytes::from_static(b"not json{{{"))),
        Fault::Huge => Some(json_ok(huge_body())),
        // Unwrapped by the stand-in when it takes the fault; nested ones apply their inner fault.
        Fault::Times(_, inner) => Box::pin(apply(*inner)).await,
        Fault::Held(gate) => {
            gate.passed().await;
            None
        }
    }
}

fn status_response(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = status.canonical_reason().unwrap_or("injected fault");
    clerk_error(
        status,
        reason,
        "Fault injected by the Clerk stand-in",
        "internal_clerk_error",
    )
}

fn too_many_requests(retry_after_secs: u64) -> Response {
    let mut resp = clerk_error(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests",
        "Too many requests, retry later",
        "too_many_requests",
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    resp
}

fn json_ok(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `{"keys":[` followed by repeated plausible JWK objects, never closed;
/// built once and shared (cloning `Bytes` is a refcount bump).
fn huge_body() -> Bytes {
    static BODY: OnceLock<Bytes> = OnceLock::new();
    BODY.get_or_init(|| {
        let filler = format!(
            r#"{{"use":"sig","kty":"RSA","kid":"ins_filler","n":"{}","e":"AQAB"}},"#,
            "A".repeat(342)
        );
        let mut body = String::with_capacity(HUGE_BODY_BYTES + filler.len());
        body.push_str(r#"{"keys":["#);
        while body.len() < HUGE_BODY_BYTES {
            body.push_str(&filler);
        }
        Bytes::from(body)
    })
    .clone()
}
