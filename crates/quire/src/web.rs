//! The browser app: `GET /` (the page), `GET /assets/{file}` (its bundled
//! script, stylesheet, fonts and icon) and `GET /app-config.json` (dev mode or
//! not, and the Clerk publishable key). The page is `web/index.html`; the
//! assets are `web/dist/`, built from `web/src/` by esbuild (`cd web && npm ci
//! && npm run build`) and committed, so running the server needs no Node, no
//! build step and no network. Both are compiled into the binary.
//!
//! Every response carries a strict Content-Security-Policy: scripts only
//! from this origin (plus the Clerk Frontend API when a publishable key is
//! configured, which is where Clerk's browser SDK is loaded from), no inline
//! script, sockets to this origin. The page gets a fresh nonce per response
//! for the `<style>` elements CodeMirror injects (handed to the script in
//! `<meta name="csp-nonce">`); inline `style=` attributes (KaTeX's layout) are
//! allowed, inline style elements without the nonce are not.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde_json::json;

use crate::api::error::ApiError;
use crate::AppState;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// The page itself; `__CSP_NONCE__` is replaced per response.
const INDEX_HTML: &str = include_str!("../../../web/index.html");

/// Where the page template carries the nonce.
const NONCE_SLOT: &str = "__CSP_NONCE__";

/// Everything under `/assets/` (the list `web/build.mjs` writes next to the
/// files); nothing else is served from there.
const ASSETS: &[Asset] = include!("../../../web/dist/assets.rs");

/// `/`, `/assets/{file}` and `/app-config.json`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{file}", get(asset))
        .route("/app-config.json", get(app_config))
}

/// The page, with a nonce of its own in its CSP and its `<meta name="csp-nonce">`.
async fn index(State(state): State<AppState>) -> Response {
    let nonce = new_nonce();
    let body = INDEX_HTML.replace(NONCE_SLOT, &nonce);
    let mut headers = security_headers(&state, Some(&nonce));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    (headers, body).into_response()
}

/// 128 random bits, base64: a CSP nonce (only ever sent, never checked here).
fn new_nonce() -> String {
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>())
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
    response
        .headers_mut()
        .extend(security_headers(&state, None));
    response
}

fn respond(state: &AppState, content_type: &'static str, body: &'static [u8]) -> Response {
    let mut headers = security_headers(state, None);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    (headers, body).into_response()
}

/// `Cache-Control: no-cache` (revalidate: a new binary serves new files),
/// the CSP (with the page's style nonce, for the page), and the usual
/// hardening headers.
fn security_headers(state: &AppState, nonce: Option<&str>) -> HeaderMap {
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
    if let Ok(value) = HeaderValue::from_str(&content_security_policy(fapi.as_deref(), nonce)) {
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
///
/// Styles: `nonce` (the page's, when there is one) lets CodeMirror's
/// `<style>` elements in; `style-src-attr 'unsafe-inline'` lets KaTeX's
/// `style=` attributes in (a nonce in a directive makes browsers ignore its
/// `'unsafe-inline'`, hence the separate directive). With Clerk, whose
/// CSS-in-JS injects style elements without a nonce, style elements stay
/// `'unsafe-inline'` and no nonce is named. Scripts never get either.
pub fn content_security_policy(frontend_api: Option<&str>, nonce: Option<&str>) -> String {
    let mut script = vec!["'self'"];
    let mut connect = vec!["'self'", "ws:", "wss:"];
    let mut img = vec!["'self'", "data:"];
    let nonce_source = nonce.map(|n| format!("'nonce-{n}'"));
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
    } else if let Some(n) = &nonce_source {
        style.push(n);
    }
    let style = style.join(" ");
    [
        "default-src 'none'".to_string(),
        format!("script-src {}", script.join(" ")),
        format!("connect-src {}", connect.join(" ")),
        format!("img-src {}", img.join(" ")),
        format!("style-src {style}"),
        format!("style-src-elem {style}"),
        "style-src-attr 'unsafe-inline'".to_string(),
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

    fn pk(host: &str) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{host}$"));
        format!("pk_test_{b64}")
    }

    /// The value of one directive (`name` followed by a space) of a policy.
    fn directive<'a>(csp: &'a str, name: &str) -> &'a str {
        csp.split("; ")
            .find_map(|d| d.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in {csp}"))
    }

    #[test]
    fn dev_policy_is_self_only_with_a_style_nonce() {
        let csp = content_security_policy(None, Some("abc123"));
        assert_eq!(directive(&csp, "script-src"), "'self'", "{csp}");
        assert_eq!(directive(&csp, "connect-src"), "'self' ws: wss:");
        assert_eq!(directive(&csp, "default-src"), "'none'");
        assert_eq!(directive(&csp, "style-src"), "'self' 'nonce-abc123'");
        assert_eq!(directive(&csp, "style-src-elem"), "'self' 'nonce-abc123'");
        // Only style attributes (KaTeX's) may be inline; nothing else is unsafe.
        assert_eq!(directive(&csp, "style-src-attr"), "'unsafe-inline'");
        assert_eq!(csp.matches("unsafe").count(), 1, "{csp}");
    }

    #[test]
    fn responses_other_than_the_page_name_no_nonce() {
        let csp = content_security_policy(None, None);
        assert_eq!(directive(&csp, "style-src"), "'self'", "{csp}");
        assert!(!csp.contains("nonce"), "{csp}");
    }

    #[test]
    fn clerk_policy_names_the_frontend_api() {
        let origin = frontend_api_origin(Some(&pk("clerk.example.com"))).unwrap();
        assert_eq!(origin, "https://clerk.example.com");
        let csp = content_security_policy(Some(&origin), Some("abc123"));
        assert_eq!(
            directive(&csp, "script-src"),
            "'self' https://clerk.example.com https://challenges.cloudflare.com"
        );
        assert!(
            csp.contains("connect-src 'self' ws: wss: https://clerk.example.com"),
            "{csp}"
        );
        // Clerk's CSS-in-JS needs inline style elements; a nonce would void that.
        assert_eq!(directive(&csp, "style-src-elem"), "'self' 'unsafe-inline'");
        assert!(!csp.contains("nonce"), "{csp}");
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
    fn each_page_gets_its_own_nonce_in_its_meta_tag() {
        let (a, b) = (new_nonce(), new_nonce());
        assert_ne!(a, b);
        assert!(a.len() >= 22, "{a}");
        let page = INDEX_HTML.replace(NONCE_SLOT, &a);
        assert!(
            page.contains(&format!(r#"<meta name="csp-nonce" content="{a}">"#)),
            "{page}"
        );
        assert!(!page.contains(NONCE_SLOT));
    }

    #[test]
    fn every_asset_has_a_type_and_a_body() {
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{}", a.name);
            assert!(a.content_type.contains('/'), "{}", a.name);
        }
        for name in ["app.js", "app.css", "icon.svg"] {
            assert!(ASSETS.iter().any(|a| a.name == name), "{name}");
            assert!(INDEX_HTML.contains(&format!("/assets/{name}")), "{name}");
        }
    }

    #[test]
    fn every_font_the_stylesheet_loads_is_served() {
        let css = ASSETS.iter().find(|a| a.name == "app.css").unwrap().body;
        let css = std::str::from_utf8(css).unwrap();
        let fonts: Vec<&str> = css
            .split("url(")
            .skip(1)
            .filter_map(|rest| rest.split(')').next())
            .map(|u| {
                u.trim_matches(|c| c == '"' || c == '\'')
                    .trim_start_matches("./")
            })
            .filter(|u| u.ends_with(".woff2"))
            .collect();
        assert!(fonts.len() >= 10, "KaTeX's fonts: {fonts:?}");
        for font in fonts {
            assert!(ASSETS.iter().any(|a| a.name == font), "{font} not served");
        }
    }
}
