//! `quire dev`: the whole product on one machine with no Clerk account.
//!
//! A [`ClerkStandIn`] is mounted under `/__dev` (JWKS, clients.verify) and
//! the verifier fetches keys from it exactly as it would from Clerk, so dev
//! mode runs the production verification path. `/__dev/token` mints real
//! RS256 session tokens for any user id (optionally with an active
//! organization); `/__dev/api_key` mints machine tokens (API keys, OAuth and
//! M2M tokens) that the verifier checks against the stand-in's verify routes. Tokens carry a dev-only issuer and
//! the server binds loopback addresses only.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clerk_auth::testing::ClerkStandIn;
use clerk_auth::{KeySource, MachineConfig, TokenKind, VerifierConfig};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;

use crate::config::{clean_origins, AuthSettings, AuthStrategy, Config, DevArgs};
use crate::{App, AppState, Parts};

/// The issuer of dev tokens; no real Clerk instance can have it (`.invalid`).
pub const DEV_ISSUER: &str = "https://clerk.quire-dev.invalid";
/// Default database in dev mode.
pub const DEV_DATABASE_URL: &str = "sqlite://quire-dev.db";
/// Longest lifetime the dev token endpoint grants.
const MAX_DEV_LIFETIME_SECS: i64 = 24 * 3600;

/// Refuses anything but a loopback address: dev tokens must never be reachable.
pub fn check_loopback(addr: &SocketAddr) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() {
        anyhow::bail!(
            "quire dev only binds loopback addresses; QUIRE_ADDR/--addr {addr} is not one (use 127.0.0.1:PORT)"
        );
    }
    Ok(())
}

/// The app's own origins (127.0.0.1 and localhost) plus any configured ones.
fn dev_origins(local: &SocketAddr, extra: &[String]) -> Vec<String> {
    let mut origins = vec![
        format!("http://{local}"),
        format!("http://localhost:{}", local.port()),
    ];
    origins.extend_from_slice(extra);
    clean_origins(origins)
}

/// Builds the dev app for a server that will listen on `local`.
pub async fn dev_app(args: &DevArgs, local: SocketAddr) -> anyhow::Result<(App, ClerkStandIn)> {
    let common = &args.common;
    let standin = match &args.dev_key_file {
        Some(path) => standin_from_key_file(path)?,
        None => ClerkStandIn::with_issuer(DEV_ISSUER),
    };
    let api_url = format!("http://{local}/__dev");
    // Machine tokens are checked against the stand-in's verify routes,
    // as production checks them against Clerk's.
    let machine = MachineConfig::new(api_url.clone(), standin.secret_key().into())
        .with_machine_secret_key(standin.machine_secret_key().into());
    let verifier_config = VerifierConfig {
        issuer: Some(DEV_ISSUER.to_string()),
        verified_cache_capacity: common.token_cache_capacity,
        machine: Some(machine),
        ..VerifierConfig::default()
    };
    let secret_key = standin.secret_key().into();
    let key_source = match args.auth_strategy {
        AuthStrategy::Networkless => KeySource::Jwks {
            api_url: api_url.clone(),
            secret_key,
        },
        AuthStrategy::ClientsVerify => KeySource::ClientsVerify {
            api_url: api_url.clone(),
            secret_key,
        },
    };
    let config = Config {
        addr: local,
        database_url: common
            .database_url
            .clone()
            .unwrap_or_else(|| DEV_DATABASE_URL.to_string()),
        redis_url: common.redis_url.clone(),
        allowed_origins: dev_origins(&local, &common.allowed_origins),
        limits: common.limits.clone(),
        auth: AuthSettings {
            strategy: args.auth_strategy,
            key_source,
            api_url,
            secret_key: Some(standin.secret_key().into()),
            verifier: verifier_config,
            webhook_secret: None,
            publishable_key: None,
        },
        realtime: common.sockets.realtime_limits(),
        dev: true,
    };
    // Everything else (fan-out included) is wired exactly as `run_serve` does.
    let parts = Parts {
        routes: Some(dev_routes(&standin)),
        ..Parts::default()
    };
    let app = App::build(config, parts).await?;
    Ok((app, standin))
}

/// The stand-in with its signing key from `path` (PKCS#8 DER); when the file
/// does not exist a key is generated and written there, readable by the
/// owner only, so further dev processes load the same key.
fn standin_from_key_file(path: &Path) -> anyhow::Result<ClerkStandIn> {
    use anyhow::Context as _;
    match std::fs::read(path) {
        Ok(der) => ClerkStandIn::from_pkcs8(&der, DEV_ISSUER).map_err(|e| {
            anyhow::anyhow!(
                "dev key file {} is not an RSA PKCS#8 key: {e}",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let der = ClerkStandIn::with_issuer(DEV_ISSUER).private_key_pkcs8();
            write_private(path, &der)
                .with_context(|| format!("writing dev key file {}", path.display()))?;
            // Reload so the kid is the one derived from the key, as in every
            // other process that loads this file.
            ClerkStandIn::from_pkcs8(&der, DEV_ISSUER)
                .map_err(|e| anyhow::anyhow!("generated dev key rejected: {e}"))
        }
        Err(e) => Err(e).with_context(|| format!("reading dev key file {}", path.display())),
    }
}

/// Creates `path` exclusively with mode 0600 (Unix) and writes `bytes`.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// `/__dev/*`: the stand-in's Clerk API plus the token endpoint.
fn dev_routes(standin: &ClerkStandIn) -> Router<AppState> {
    let tokens = Router::new()
        .route("/token", get(token_text).post(token_json))
        .route("/stats", get(stats))
        .route("/api_key", get(api_key))
        .with_state(Arc::new(standin.clone()));
    Router::new().nest_service("/__dev", standin.router().merge(tokens))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    user_id: String,
    lifetime_secs: Option<i64>,
    session_id: Option<String>,
    /// The token's active organization (`org_...`), optional.
    org_id: Option<String>,
    /// Its role there, `org:admin` by default.
    org_role: Option<String>,
}

/// Validates a dev token request; ids look like Clerk's (`[A-Za-z0-9_-]`).
fn mint(standin: &ClerkStandIn, req: TokenRequest) -> Result<(String, i64, String), Box<Response>> {
    let ok_id = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    let bad = |msg: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"code": "bad_request", "message": msg}})),
        )
            .into_response()
            .into()
    };
    if !ok_id(&req.user_id) {
        return Err(bad("user_id must be 1-64 characters of [A-Za-z0-9_-]"));
    }
    let lifetime = req.lifetime_secs.unwrap_or(3600);
    if !(1..=MAX_DEV_LIFETIME_SECS).contains(&lifetime) {
        return Err(bad("lifetime_secs must be from 1 to 86400"));
    }
    let session_id = match req.session_id {
        Some(s) if ok_id(&s) => s,
        Some(_) => return Err(bad("session_id must be 1-64 characters of [A-Za-z0-9_-]")),
        None => format!("sess_dev_{}", uuid::Uuid::new_v4().simple()),
    };
    let mut builder = standin
        .token(&req.user_id)
        .session(&session_id)
        .lifetime(lifetime);
    if let Some(org) = req.org_id {
        if !(org.starts_with("org_") && ok_id(&org)) {
            return Err(bad("org_id must be org_ followed by [A-Za-z0-9_-]"));
        }
        let role = req.org_role.unwrap_or_else(|| "org:admin".into());
        if !role.starts_with("org:") || role.len() > 64 {
            return Err(bad("org_role must look like org:admin"));
        }
        let role = role.trim_start_matches("org:");
        builder = builder.org(&org, &org, role, "", "", "");
    }
    let exp = builder.claims()["exp"].as_i64().unwrap_or_default();
    Ok((builder.sign(), exp, session_id))
}

#[derive(Deserialize)]
struct TokenQuery {
    user_id: String,
    lifetime_secs: Option<i64>,
    org_id: Option<String>,
    org_role: Option<String>,
}

/// `GET /__dev/token?user_id=alice`: the bare token, for shell sessions.
async fn token_text(
    State(standin): State<Arc<ClerkStandIn>>,
    Query(q): Query<TokenQuery>,
) -> Response {
    let req = TokenRequest {
        user_id: q.user_id,
        lifetime_secs: q.lifetime_secs,
        session_id: None,
        org_id: q.org_id,
        org_role: q.org_role,
    };
    match mint(&standin, req) {
        Ok((token, _, _)) => token.into_response(),
        Err(response) => *response,
    }
}

/// `POST /__dev/token {"user_id", "lifetime_secs"?, "session_id"?}`.
async fn token_json(
    State(standin): State<Arc<ClerkStandIn>>,
    Json(req): Json<TokenRequest>,
) -> Response {
    let user_id = req.user_id.clone();
    match mint(&standin, req) {
        Ok((token, exp, session_id)) => {
            Json(json!({"token": token, "expires_at": exp, "user_id": user_id, "session_id": session_id}))
                .into_response()
        }
        Err(response) => *response,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKeyQuery {
    /// Who the key acts as: `user_...`, `org_...` or `mch_...`.
    subject: String,
    /// Comma-separated scopes, e.g. `notebooks:read`; none: full rights.
    #[serde(default)]
    scopes: String,
    /// `api_key` (default), `oauth` or `m2m`.
    kind: Option<String>,
}

/// `GET /__dev/api_key?subject=user_alice&scopes=notebooks:read`: a machine
/// token minted by the stand-in (an API key unless `kind` says otherwise),
/// as bare text for shell sessions.
async fn api_key(
    State(standin): State<Arc<ClerkStandIn>>,
    Query(q): Query<ApiKeyQuery>,
) -> Response {
    let bad = |msg: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"code": "bad_request", "message": msg}})),
        )
            .into_response()
    };
    let subject_ok = crate::notebook::model::MemberId::parse(&q.subject).is_ok()
        && q.subject.len() <= 64
        && q.subject
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !subject_ok {
        return bad("subject must be a user_, org_ or mch_ id of [A-Za-z0-9_-]");
    }
    let kind = match q.kind.as_deref() {
        None | Some("api_key") => TokenKind::ApiKey,
        Some("oauth") => TokenKind::OAuth,
        Some("m2m") => TokenKind::M2M,
        Some(_) => return bad("kind must be api_key, oauth or m2m"),
    };
    let scopes: Vec<&str> = q.scopes.split(',').filter(|s| !s.is_empty()).collect();
    let lifetime = (kind != TokenKind::ApiKey).then_some(std::time::Duration::from_secs(3600));
    standin
        .mint_machine_token(kind, &q.subject, &scopes, lifetime)
        .into_response()
}

/// `GET /__dev/stats`: how often the verifier called the stand-in (benchmarks
/// report upstream calls per request with it).
async fn stats(State(standin): State<Arc<ClerkStandIn>>) -> Json<serde_json::Value> {
    Json(
        json!({"jwks_requests": standin.jwks_requests(), "verify_requests": standin.verify_requests()}),
    )
}

/// Runs `quire dev` until Ctrl-C.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    check_loopback(&args.common.addr)?;
    let listener = TcpListener::bind(args.common.addr).await?;
    let local = listener.local_addr()?;
    let (app, _standin) = dev_app(&args, local).await?;
    print_banner(&local, &app.state().config().database_url);
    crate::serve(listener, app, crate::shutdown_signal()).await?;
    Ok(())
}

/// The banner on stdout. Written without `println!`: a closed stdout (a
/// supervisor that stopped reading) must not take the server down.
fn print_banner(local: &SocketAddr, database_url: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stdout(),
        "\nquire dev is running at http://{local}/  (database {database_url}, stand-in Clerk under /__dev)\n\
         Try it:\n  \
         TOKEN=$(curl -s 'http://{local}/__dev/token?user_id=user_alice')\n  \
         curl -s -H \"Authorization: Bearer $TOKEN\" http://{local}/api/v1/me\n  \
         KEY=$(curl -s 'http://{local}/__dev/api_key?subject=user_alice&scopes=notebooks:read')\n"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_key_file_is_created_0600_then_shared() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.der");
        let first = standin_from_key_file(&path).expect("generate");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path)
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = standin_from_key_file(&path).expect("load");
        assert_eq!(first.kid(), second.kid());
        assert_eq!(first.public_key_pem(), second.public_key_pem());
    }

    #[test]
    fn dev_key_file_with_garbage_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.der");
        std::fs::write(&path, b"junk").expect("write");
        assert!(standin_from_key_file(&path).is_err());
    }
}
