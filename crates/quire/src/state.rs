//! [`AppState`]: the handles every handler and socket shares. A plain
//! container and a cheap clone (one `Arc`); the wiring is in [`crate::app`],
//! the behaviour in the modules the handles come from.

use std::sync::Arc;

use aws_lc_rs::hmac;
use clerk_auth::webhook::WebhookVerifier;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::Auth;
use crate::config::Config;
use crate::realtime::fanout::Fanout;
use crate::realtime::Hub;
use crate::service::Notebooks;
use crate::store::Store;

/// Shared handles, passed with axum's `State`.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Handles>,
}

/// What [`AppState`] holds; built once by [`crate::App::build`].
pub struct Handles {
    pub config: Config,
    /// Storage, for reads that need no access check (health, socket resume).
    pub store: Arc<dyn Store>,
    /// Token verification and revocation.
    pub auth: Auth,
    /// The one change path.
    pub notebooks: Notebooks,
    /// Rooms of open notebooks.
    pub hub: Hub,
    /// Redis fan-out to other processes, when configured.
    pub fanout: Option<Fanout>,
    pub metrics: PrometheusHandle,
    /// The Svix verifier for Clerk webhooks, when `CLERK_WEBHOOK_SECRET` is set.
    pub webhook: Option<WebhookVerifier>,
    /// Signs list cursors (see `api::pagination`).
    pub cursor_key: hmac::Key,
}

impl AppState {
    /// Wraps already-built handles.
    pub fn new(handles: Handles) -> AppState {
        AppState {
            inner: Arc::new(handles),
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn auth(&self) -> &Auth {
        &self.inner.auth
    }

    pub fn notebooks(&self) -> &Notebooks {
        &self.inner.notebooks
    }

    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    pub fn fanout(&self) -> Option<&Fanout> {
        self.inner.fanout.as_ref()
    }

    pub fn metrics(&self) -> &PrometheusHandle {
        &self.inner.metrics
    }

    pub fn webhook(&self) -> Option<&WebhookVerifier> {
        self.inner.webhook.as_ref()
    }

    pub fn cursor_key(&self) -> &hmac::Key {
        &self.inner.cursor_key
    }
}
