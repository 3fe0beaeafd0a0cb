//! Builds the whole server as `quire serve` assembles it, for black-box
//! tests: through `App::build` (the composition root `quire serve` uses), with
//! a fresh SQLite file, a verifier for the given key source, the given
//! limits, bound to 127.0.0.1:0; plus the Svix signing of test webhooks.
//! Shared by the REST harness (`common`) and the WebSocket harness
//! (`ws_support`), which differ only in how they run it.

#![allow(dead_code)]

use std::net::SocketAddr;

use clerk_auth::config::JwksOptions;
use clerk_auth::testing::ClerkStandIn;
use clerk_auth::{KeySource, MachineConfig, VerifierConfig};
use quire::config::{AuthSettings, AuthStrategy, Config, LimitArgs};
use quire::realtime::hub::RealtimeLimits;
use quire::{App, Parts};
use tempfile::TempDir;
use tokio::net::TcpListener;

/// What a harness chooses about the server.
pub struct Setup {
    pub key_source: KeySource,
    pub issuer: String,
    pub jwks: JwksOptions,
    pub limits: LimitArgs,
    pub realtime: RealtimeLimits,
    pub allowed_origin: &'static str,
    pub webhook_secret: Option<String>,
    /// Where machine tokens are verified (a served stand-in); `None` refuses them.
    pub machine: Option<MachineConfig>,
}

/// A server ready to be served: its listener, app and database directory.
pub struct Built {
    pub listener: TcpListener,
    pub addr: SocketAddr,
    pub app: App,
    /// Keeps the database directory alive as long as the server.
    pub dir: TempDir,
}

pub async fn build(setup: Setup) -> Built {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}/quire.db?mode=rwc", dir.path().display());
    let verifier_config = VerifierConfig {
        issuer: Some(setup.issuer),
        jwks: setup.jwks,
        machine: setup.machine,
        ..VerifierConfig::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let api_url = match &setup.key_source {
        KeySource::Jwks { api_url, .. } | KeySource::ClientsVerify { api_url, .. } => {
            api_url.clone()
        }
        KeySource::Pem(_) => "http://127.0.0.1:9".into(),
    };
    let config = Config {
        addr,
        database_url,
        redis_url: None,
        allowed_origins: vec![setup.allowed_origin.into()],
        limits: setup.limits,
        auth: AuthSettings {
            strategy: AuthStrategy::Networkless,
            key_source: setup.key_source,
            api_url,
            secret_key: None,
            verifier: verifier_config,
            webhook_secret: setup.webhook_secret.map(Into::into),
            publishable_key: None,
        },
        realtime: setup.realtime,
        dev: false,
    };
    let app = App::build(config, Parts::default())
        .await
        .expect("build app");
    Built {
        listener,
        addr,
        app,
        dir,
    }
}

/// Serves the stand-in's Backend API (its machine-token verify routes) on
/// its own port and returns the machine configuration that uses it, with
/// the stand-in's secret keys, as `quire dev` wires it.
pub async fn machine_config(standin: &ClerkStandIn) -> MachineConfig {
    let api_url = standin.serve().await;
    MachineConfig::new(api_url, standin.secret_key().into())
        .with_machine_secret_key(standin.machine_secret_key().into())
}

/// The `CLERK_WEBHOOK_SECRET` of the test server (Svix format:
/// `whsec_` + base64 of the HMAC key).
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Svix's `v1` signature of a webhook: base64(HMAC-SHA256(key,
/// "{svix_id}.{timestamp}.{body}")) with the key base64-decoded from the
/// secret after `whsec_`.
pub fn svix_signature(secret: &str, svix_id: &str, timestamp: i64, body: &[u8]) -> String {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    let key_bytes = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("secret is base64");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key_bytes);
    let mut message = format!("{svix_id}.{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    format!(
        "v1,{}",
        STANDARD.encode(aws_lc_rs::hmac::sign(&key, &message).as_ref())
    )
}
