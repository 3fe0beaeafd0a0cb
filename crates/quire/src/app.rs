//! The composition root: [`App::build`] turns a [`Config`] into the running
//! parts (store, verifier, hub, service, fan-out) and the router. `quire
//! serve`, `quire dev` and every test harness build the server through it, so
//! what is tested is what runs.

use std::sync::Arc;

use axum::Router;
use clerk_auth::Verifier;
use secrecy::ExposeSecret;

use crate::auth::{Auth, Revocations};
use crate::config::Config;
use crate::realtime::fanout::Fanout;
use crate::realtime::Hub;
use crate::service::Notebooks;
use crate::state::{AppState, Handles};
use crate::store::Store;
use clerk_auth::webhook::WebhookVerifier;

/// What a caller may supply instead of what the configuration names.
#[derive(Default)]
pub struct Parts {
    /// An already-open store (unit tests with an in-memory database); by
    /// default the store the database URL names is opened.
    pub store: Option<Arc<dyn Store>>,
    /// Extra routes, served with the API's middleware (dev mode's `/__dev`).
    pub routes: Option<Router<AppState>>,
}

/// A built server: its shared state and its routes.
pub struct App {
    state: AppState,
    routes: Option<Router<AppState>>,
}

impl App {
    /// Opens the store, builds the verifier from `config.auth`, connects the
    /// fan-out when `config.redis_url` is set (and starts its relay), and
    /// wires the service over them.
    pub async fn build(config: Config, parts: Parts) -> anyhow::Result<App> {
        let store = match parts.store {
            Some(store) => store,
            None => crate::store::open(&config).await?,
        };
        let verifier = Verifier::new(config.auth.key_source.clone(), config.auth.verifier.clone())?;
        let fanout = match &config.redis_url {
            Some(url) => Some(Fanout::connect(url).await?),
            None => None,
        };
        let state = assemble(config, store, verifier, fanout.clone())?;
        if let Some(fanout) = fanout {
            fanout.spawn_relay(state.notebooks().clone(), state.hub().clone());
        }
        Ok(App {
            state,
            routes: parts.routes,
        })
    }

    /// The shared state (what handlers and sockets get).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Every route of the server, with its middleware.
    pub fn router(&self) -> Router {
        crate::api::router(self.state.clone(), self.routes.clone())
    }
}

/// The handles, wired together.
fn assemble(
    config: Config,
    store: Arc<dyn Store>,
    verifier: Verifier,
    fanout: Option<Fanout>,
) -> anyhow::Result<AppState> {
    let webhook = match &config.auth.webhook_secret {
        Some(secret) => {
            Some(WebhookVerifier::new(secret.expose_secret()).ok_or_else(|| {
                anyhow::anyhow!("CLERK_WEBHOOK_SECRET is not a valid whsec_ secret")
            })?)
        }
        None => None,
    };
    let revocations = Arc::new(Revocations::default());
    let hub = Hub::new(config.realtime.clone());
    let cache_on = cache_safe_at_start(&config, fanout.is_some());
    let notebooks = Notebooks::new(
        store.clone(),
        hub.clone(),
        fanout.clone(),
        revocations.clone(),
        cache_on,
    );
    Ok(AppState::new(Handles {
        auth: Auth::new(verifier, config.allowed_origins.clone(), revocations),
        cursor_key: crate::api::pagination::cursor_key(&config),
        metrics: crate::telemetry::metrics_handle(),
        webhook,
        notebooks,
        hub,
        fanout,
        store,
        config,
    }))
}

/// The read cache is safe when this process sees every write: SQLite (one
/// process), or a fan-out that will tell us about the others' writes (it is
/// switched on once connected).
fn cache_safe_at_start(config: &Config, has_fanout: bool) -> bool {
    !has_fanout && config.database_url.starts_with("sqlite:")
}
