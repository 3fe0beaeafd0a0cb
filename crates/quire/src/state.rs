//! [`AppState`]: what every handler shares. A cheap clone (one `Arc`).

use std::sync::Arc;

use anyhow::Context;
use aws_lc_rs::hmac;
use axum::Router;
use clerk_auth::extract::Authenticator;
use clerk_auth::webhook::WebhookVerifier;
use clerk_auth::{AuthError, Verifier};
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::ExposeSecret;

use crate::api::error::ApiError;
use crate::auth::Revocations;
use crate::cache::{ReadCache, Snapshot};
use crate::config::Config;
use crate::notebook::model::{NotebookId, Role, UserId};
use crate::notebook::ops::{Committed, Op};
use crate::realtime::fanout::{Control, Fanout};
use crate::realtime::hub::RealtimeLimits;
use crate::realtime::Hub;
use crate::store::{ApplyError, PostgresStore, SqliteStore, Store, StoreOptions};

/// Shared state: store, verifier, settings. Passed with axum's `State`.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Arc<dyn Store>,
    auth: Authenticator,
    cursor_key: hmac::Key,
    metrics: PrometheusHandle,
    hub: Hub,
    reads: ReadCache,
    fanout: Option<Fanout>,
    revocations: Revocations,
    webhook: Option<WebhookVerifier>,
    dev_routes: Option<Router<AppState>>,
}

/// Memory for cached notebook snapshots.
const READ_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// Parts of the state that differ between `serve`, `dev` and tests.
pub struct StateParts {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub verifier: Verifier,
    /// Socket limits and timings.
    pub realtime: RealtimeLimits,
    /// Redis fan-out to other processes, when configured.
    pub fanout: Option<Fanout>,
    /// Extra routes (dev mode's `/__dev`).
    pub dev_routes: Option<Router<AppState>>,
}

impl AppState {
    /// Assembles the state from already-built parts.
    pub fn new(parts: StateParts) -> anyhow::Result<AppState> {
        let cursor_key = cursor_key(&parts.config);
        let cache_on = cache_safe_at_start(&parts.config, parts.fanout.is_some());
        let webhook = match &parts.config.auth.webhook_secret {
            Some(secret) => {
                Some(WebhookVerifier::new(secret.expose_secret()).ok_or_else(|| {
                    anyhow::anyhow!("CLERK_WEBHOOK_SECRET is not a valid whsec_ secret")
                })?)
            }
            None => None,
        };
        let auth = Authenticator {
            verifier: parts.verifier,
            allowed_origins: Arc::new(parts.config.allowed_origins.clone()),
        };
        Ok(AppState {
            inner: Arc::new(Inner {
                config: parts.config,
                store: parts.store,
                auth,
                cursor_key,
                metrics: crate::telemetry::metrics_handle(),
                hub: Hub::new(parts.realtime),
                reads: ReadCache::new(READ_CACHE_BYTES, cache_on),
                fanout: parts.fanout,
                revocations: Revocations::default(),
                webhook,
                dev_routes: parts.dev_routes,
            }),
        })
    }

    pub fn revocations(&self) -> &Revocations {
        &self.inner.revocations
    }

    /// The Svix verifier for Clerk webhooks, when `CLERK_WEBHOOK_SECRET` is set.
    pub fn webhook(&self) -> Option<&WebhookVerifier> {
        self.inner.webhook.as_ref()
    }

    /// A Clerk session ended: its tokens are refused and its sockets close (4401).
    pub fn revoke_session(&self, session_id: &str) {
        self.local_revoke_session(session_id);
        self.broadcast(Control::SessionRevoked {
            session_id: session_id.to_string(),
        });
    }

    fn local_revoke_session(&self, session_id: &str) {
        self.revocations().revoke_session(session_id);
        self.hub().session_revoked(session_id);
    }

    fn local_revoke_user(&self, user: &UserId) {
        self.revocations().revoke_user(user.as_str());
        self.hub().user_revoked(user);
        // Their memberships were in many snapshots; rare enough to start over.
        self.inner.reads.clear();
    }

    /// A Clerk user was deleted: their notebooks go (other sockets on them
    /// close 4404), their memberships go, their tokens are refused and their
    /// own sockets close (4401).
    pub async fn delete_user(&self, user: &UserId) -> Result<(), ApiError> {
        // Refuse their tokens and close their sockets here at once ...
        self.revocations().revoke_user(user.as_str());
        self.hub().user_revoked(user);
        let deleted = self.store().delete_user(user).await?;
        for id in deleted {
            self.notebook_deleted(id);
        }
        // ... and tell the other processes only now, so that none re-caches
        // a membership the deletion has just removed.
        self.inner.reads.clear();
        self.broadcast(Control::UserRevoked { user: user.clone() });
        Ok(())
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn auth(&self) -> &Authenticator {
        &self.inner.auth
    }

    pub fn cursor_key(&self) -> &hmac::Key {
        &self.inner.cursor_key
    }

    pub fn metrics(&self) -> &PrometheusHandle {
        &self.inner.metrics
    }

    /// The realtime hub: rooms of open notebooks.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    pub(crate) fn dev_routes(&self) -> Option<Router<AppState>> {
        self.inner.dev_routes.clone()
    }

    /// Whether the verifier has keys (for `/readyz`).
    pub async fn auth_ready(&self) -> Result<(), AuthError> {
        self.inner.auth.verifier.ready().await
    }

    /// The notebook as of its last commit, from memory when possible.
    pub async fn snapshot(&self, id: NotebookId) -> Result<Option<Arc<Snapshot>>, ApiError> {
        Ok(self.inner.reads.get(self.store().as_ref(), id).await?)
    }

    /// The caller's role on a notebook: 404 when it does not exist, 403 when
    /// the caller may not see it.
    pub async fn role_of(&self, id: NotebookId, user: &UserId) -> Result<Role, ApiError> {
        let snapshot = self.snapshot(id).await?.ok_or(ApiError::NotFound)?;
        snapshot.role_of(user).ok_or(ApiError::Forbidden)
    }

    /// The single change path for REST and WebSocket callers: the store
    /// validates and commits; only then is the op published, in version
    /// order (the commit lock spans both).
    pub async fn apply(
        &self,
        id: NotebookId,
        author: &UserId,
        op: Op,
        expect_version: Option<i64>,
    ) -> Result<Committed, ApplyError> {
        let _ordered = self.hub().commit_lock(id).await;
        let result = self.store().apply(id, author, op, expect_version).await;
        // Even a failed apply may mean our snapshot was stale (e.g. a 412).
        self.inner.reads.invalidate(id);
        let committed = result?;
        metrics::counter!("notebook_ops_total").increment(1);
        self.hub().publish(self.store().as_ref(), &committed).await;
        if let Some(fanout) = &self.inner.fanout {
            fanout.publish_op(&committed);
        }
        Ok(committed)
    }

    /// Tells the other processes (when there are any).
    fn broadcast(&self, control: Control) {
        if let Some(fanout) = &self.inner.fanout {
            fanout.publish_control(&control);
        }
    }

    /// The fan-out state for `/readyz`: `None` when not configured.
    pub fn fanout_healthy(&self) -> Option<bool> {
        self.inner.fanout.as_ref().map(Fanout::is_healthy)
    }

    /// Another process committed an op.
    pub async fn remote_commit(&self, committed: &Committed) {
        self.inner.reads.invalidate(committed.notebook_id);
        self.hub().publish(self.store().as_ref(), committed).await;
    }

    /// Another process changed access or revoked a session.
    pub fn remote_control(&self, control: Control) {
        match control {
            Control::Member {
                notebook,
                user,
                role,
            } => self.local_member_changed(notebook, &user, role),
            Control::Deleted { notebook } => self.local_notebook_deleted(notebook),
            Control::SessionRevoked { session_id } => self.local_revoke_session(&session_id),
            Control::UserRevoked { user } => self.local_revoke_user(&user),
            // Handled by the relay directly (it needs the sender's identity).
            Control::Presence { .. } => {}
        }
    }

    /// The fan-out went down: we may miss other processes' changes.
    pub fn fanout_degraded(&self) {
        self.inner.reads.set_enabled(false);
    }

    /// The fan-out is (back) up: start from a clean cache and bring open
    /// rooms up to date from the op log.
    pub async fn fanout_recovered(&self) {
        self.inner.reads.set_enabled(true);
        self.hub().catch_up(self.store().as_ref()).await;
    }

    /// A notebook was deleted: its sockets close with 4404 (on every process).
    pub fn notebook_deleted(&self, id: NotebookId) {
        self.local_notebook_deleted(id);
        self.broadcast(Control::Deleted { notebook: id });
    }

    fn local_notebook_deleted(&self, id: NotebookId) {
        self.inner.reads.invalidate(id);
        self.hub().notebook_deleted(id);
    }

    /// A member was added, changed (`Some(role)`) or removed (`None`).
    pub fn member_changed(&self, id: NotebookId, user: &UserId, role: Option<Role>) {
        self.local_member_changed(id, user, role);
        self.broadcast(Control::Member {
            notebook: id,
            user: user.clone(),
            role,
        });
    }

    fn local_member_changed(&self, id: NotebookId, user: &UserId, role: Option<Role>) {
        self.inner.reads.invalidate(id);
        self.hub().member_changed(id, user, role);
    }
}

/// The read cache is safe when this process sees every write: SQLite (one
/// process), or a fan-out that will tell us about the others' writes (it is
/// switched on once connected).
fn cache_safe_at_start(config: &Config, has_fanout: bool) -> bool {
    !has_fanout && config.database_url.starts_with("sqlite:")
}

/// Cursors must verify on every process and across restarts, so the HMAC key
/// is derived from the instance's Clerk secret material when there is some.
fn cursor_key(config: &Config) -> hmac::Key {
    let mut material = b"quire-cursor-v1:".to_vec();
    match (&config.auth.secret_key, &config.auth.key_source) {
        (Some(secret), _) => material.extend_from_slice(secret.expose_secret().as_bytes()),
        (None, clerk_auth::KeySource::Pem(pem)) => material.extend_from_slice(pem.as_bytes()),
        _ => material.extend_from_slice(&rand::random::<[u8; 32]>()),
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &material);
    hmac::Key::new(hmac::HMAC_SHA256, digest.as_ref())
}

/// Opens the store named by the database URL and runs migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = &config.database_url;
    let options = StoreOptions {
        limits: config.limits.notebook_limits(),
        op_log_keep: config.limits.op_log_keep,
        ..StoreOptions::default()
    };
    if url.starts_with("sqlite:") {
        let store = SqliteStore::connect(url, options)
            .await
            .with_context(|| format!("opening SQLite database {url}"))?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PostgresStore::connect(url, options)
            .await
            .context("opening PostgreSQL database")?;
        return Ok(Arc::new(store));
    }
    anyhow::bail!("QUIRE_DATABASE_URL must start with sqlite:, postgres:// or postgresql://")
}
