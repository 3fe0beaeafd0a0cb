//! The browser app: `GET /` (the page), `GET /assets/{file}` (its modules
//! and styles) and `GET /app-config.json` (dev mode or not, and the Clerk
//! publishable key). The files live in `web/` at the repository root and are
//! compiled into the binary, so running the server needs no Node, no build
//! step and no network.
//!
//! Every response carries a strict Content-Security-Policy: scripts only
//! from this origin (plus the Clerk Frontend API when a publishable key is
//! configured, which is where Clerk's browser SDK is loaded from), no inline
//! script, sockets to this origin.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::api::error::ApiError;
use crate::AppState;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

/// The page itself.
const INDEX_HTML: &str = include_str!("../../../web/index.html");

/// An embedded file of `web/`.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../../../web/", $name)),
        }
    };
}

/// Everything under `/assets/`; nothing else is served from there.
const ASSETS: &[Asset] = &[
    asset!("app.js", JS),
    asset!("auth.js", JS),
    asset!("api.js", JS),
    asset!("live.js", JS),
    asset!("merge.js", JS),
    asset!("markdown.js", JS),
    asset!("notebook.js", JS),
    asset!("ui.js", JS),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
];

/// `/`, `/assets/{file}` and `/app-config.json`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{file}", get(asset))
        .route("/app-config.json", get(app_config))
}

async fn index(State(state): State<AppState>) -> Response {
    respond(&state, "text/html; charset=utf-8", INDEX_HTML.as_bytes())
}

async fn asset(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let asset = ASSETS
        .iter()
        .find(|a| a.name == file)
        .ok_or(ApiError::NotFound)?;
    Ok(respond(&state, asset.content_type, asset.body))
}

/// `{"dev": bool, "publishable_key": str|null}`: what the page needs to pick
/// its sign-in (the dev "sign in as" box, or Clerk's SDK).
async fn app_config(State(state): State<AppState>) -> Response {
    let config = state.config();
    let body = json!({"dev": config.dev, "publishable_key": config.auth.publishable_key});
    let mut response = Json(body).into_response();
    response.headers_mut().extend(security_headers(&state));
    response
}

fn respond(state: &AppState, content_type: &'static str, body: &'static [u8]) -> Response {
    let mut headers = security_headers(state);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    (headers, body).into_response()
}

/// `Cache-Control: no-cache` (revalidate: a new binary serves new files),
/// the CSP, and the usual hardening headers.
fn security_headers(state: &AppState) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let fapi = frontend_api_origin(state.config().auth.publishable_key.as_deref());
    if let Ok(value) = HeaderValue::from_str(&content_security_policy(fapi.as_deref())) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers
}

/// The Clerk Frontend API origin (`https://clerk.example.com`) named by the
/// publishable key; `None` without a key or with one that does not decode
/// to a plain https origin (then Clerk simply cannot load).
pub fn frontend_api_origin(publishable_key: Option<&str>) -> Option<String> {
    let issuer = clerk_auth::issuer_from_publishable_key(publishable_key?).ok()?;
    let host = issuer.strip_prefix("https://")?;
    let plain = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':');
    plain.then_some(issuer)
}

/// The policy. Without Clerk: everything from this origin only. With Clerk,
/// what Clerk's CSP guide lists for its SDK: the Frontend API for scripts and
/// requests, `img.clerk.com` for avatars, blob workers, inline styles (its
/// CSS-in-JS) and Cloudflare's bot-protection challenge.
pub fn content_security_policy(frontend_api: Option<&str>) -> String {
    let mut script = vec!["'self'"];
    let mut connect = vec!["'self'", "ws:", "wss:"];
    let mut img = vec!["'self'", "data:"];
    let mut style = vec!["'self'"];
    let mut frame = vec!["'none'"];
    let mut worker = vec!["'none'"];
    const CHALLENGES: &str = "https://challenges.cloudflare.com";
    if let Some(fapi) = frontend_api {
        script.extend([fapi, CHALLENGES]);
        connect.push(fapi);
        img.push("https://img.clerk.com");
        style.push("'unsafe-inline'");
        frame = vec![CHALLENGES];
        worker = vec!["'self'", "blob:"];
    }
    [
        "default-src 'none'".to_string(),
        format!("script-src {}", script.join(" ")),
        format!("connect-src {}", connect.join(" ")),
        format!("img-src {}", img.join(" ")),
        format!("style-src {}", style.join(" ")),
        format!("frame-src {}", frame.join(" ")),
        format!("worker-src {}", worker.join(" ")),
        "font-src 'self'".to_string(),
        "manifest-src 'self'".to_string(),
        "base-uri 'none'".to_string(),
        "form-action 'self'".to_string(),
        "frame-ancestors 'none'".to_string(),
        "object-src 'none'".to_string(),
    ]
    .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn pk(host: &str) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{host}$"));
        format!("pk_test_{b64}")
    }

    #[test]
    fn dev_policy_is_self_only() {
        let csp = content_security_policy(None);
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(csp.contains("connect-src 'self' ws: wss:;"), "{csp}");
        assert!(csp.contains("default-src 'none'"));
        assert!(!csp.contains("unsafe"), "{csp}");
    }

    #[test]
    fn clerk_policy_names_the_frontend_api() {
        let origin = frontend_api_origin(Some(&pk("clerk.example.com"))).unwrap();
        assert_eq!(origin, "https://clerk.example.com");
        let csp = content_security_policy(Some(&origin));
        assert!(
            csp.contains("script-src 'self' https://clerk.example.com"),
            "{csp}"
        );
        assert!(
            csp.contains("connect-src 'self' ws: wss: https://clerk.example.com"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-eval"));
    }

    #[test]
    fn odd_keys_add_nothing() {
        assert_eq!(frontend_api_origin(None), None);
        assert_eq!(frontend_api_origin(Some("pk_test_bm9wZQ")), None);
        // A host that would smuggle another directive into the header.
        assert_eq!(frontend_api_origin(Some(&pk("x.com; script-src *"))), None);
    }

    #[test]
    fn every_asset_has_a_type_and_a_body() {
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{}", a.name);
            assert!(a.content_type.contains('/'), "{}", a.name);
        }
        assert!(INDEX_HTML.contains("/assets/app.js"));
    }
}
