//! Persistence: the [`Store`] trait the server talks to, its error types and
//! options, the SQLite ([`sqlite`]) and PostgreSQL ([`postgres`])
//! implementations, and (feature `test-support`, for tests only) the
//! conformance suite `conformance` every implementation must pass.
//!
//! The server holds an `Arc<dyn Store>`. [`Store::apply`] is the transaction
//! under every notebook edit: it validates, applies in one transaction, bumps
//! the version, appends to the op log and commits before returning, so
//! whatever it returns is durable and may be acked and broadcast. The side
//! effects of a change (caches, rooms, fan-out) are the caller's, not the
//! store's.

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::notebook::model::{Limits, Notebook, NotebookId, NotebookMeta, Role, UserId};
use crate::notebook::ops::{Committed, NewCell, Op, OpError};

#[cfg(feature = "test-support")]
pub mod conformance;
pub mod postgres;
mod sql;
pub mod sqlite;

pub use postgres::PostgresStore;
pub use sql::{Backend, SqlStore};
pub use sqlite::SqliteStore;

/// Settings shared by every store implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Size limits enforced on create and apply.
    pub limits: Limits,
    /// How many of the newest ops to keep per notebook (for resume and gap
    /// filling). 0 keeps none.
    pub op_log_keep: usize,
    /// Size of the read connection pool.
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            op_log_keep: 1000,
            max_connections: 8,
        }
    }
}

/// What a user may do with a notebook, as far as the store knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No such notebook (404).
    NotFound,
    /// It exists but the user is neither owner nor member (403).
    NoAccess,
    /// The user's role (the owner gets [`Role::Owner`]).
    Role(Role),
}

/// One notebook of [`Store::list_for_member`], with the role each of the two
/// ids has on it; the caller (the service) decides the effective role.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub meta: NotebookMeta,
    /// The caller's own role (the owner gets [`Role::Owner`]), if any.
    pub own: Option<Role>,
    /// The role of the organization asked about, if it is a member.
    pub org: Option<Role>,
}

/// Position in the newest-first notebook list: a page starts strictly after
/// this item. The API layer turns it into an opaque, signed cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageKey {
    /// `created_at` of the last item seen, in unix microseconds.
    pub created_at_micros: i64,
    /// Id of the last item seen (tie-breaker).
    pub id: NotebookId,
}

impl PageKey {
    /// The key that continues a listing after `meta`.
    pub fn after(meta: &NotebookMeta) -> Self {
        Self {
            created_at_micros: meta.created_at.timestamp_micros(),
            id: meta.id,
        }
    }
}

/// A storage failure. `Display` is deliberately generic (never SQL text or
/// parameters); the cause is in `source()` / `Debug`, for logs only.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is overloaded (pool timeout, I/O,
    /// busy): worth a 503 and a retry.
    #[error("store unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Any other database error.
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// Running migrations at start failed.
    #[error("database migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A stored value failed to parse (a bug or manual tampering).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The notebook a membership change names does not exist.
    #[error("notebook not found")]
    NotebookNotFound,
    /// The call was not valid (e.g. `set_member` with `Role::Owner`).
    #[error("{0}")]
    Invalid(&'static str),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_unavailable(&e) {
            StoreError::Unavailable(e)
        } else {
            StoreError::Database(e)
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(e)
    }
}

/// Whether an error means "try again later" rather than "bug".
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // SQLITE_BUSY (5) / SQLITE_LOCKED (6), extended codes included.
                matches!(code.parse::<i64>().map(|n| n & 0xff), Ok(5 | 6))
            } else {
                // PostgreSQL: serialization failure, deadlock, admin shutdown,
                // too many connections.
                matches!(code, "40001" | "40P01" | "57P01" | "53300")
            }
        }
        _ => false,
    }
}

/// Why [`Store::apply`] (or `create_notebook`) refused or failed. Nothing was
/// changed when one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The notebook does not exist (404).
    #[error("notebook not found")]
    NotebookNotFound,
    /// The author is neither owner nor editor (403).
    #[error("forbidden")]
    Forbidden,
    /// `expect_version` was given and the notebook is at another version (412).
    #[error("notebook version mismatch")]
    VersionMismatch {
        /// The notebook's current version.
        current: i64,
    },
    /// The op itself was refused (see [`OpError`]).
    #[error(transparent)]
    Op(#[from] OpError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ApplyError {
    fn from(e: sqlx::Error) -> Self {
        ApplyError::Store(e.into())
    }
}

/// Where notebooks, cells, members and the op log live. Implementations pass
/// the conformance suite (`store::conformance::run_all`, feature
/// `test-support`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks the database answers (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Creates a notebook owned by `owner` at version 0 with a fresh epoch and
    /// `created_at == updated_at == now`. Cell ids are generated when `None`;
    /// duplicate ids are `ApplyError::Op(DuplicateCellId)`; limits are enforced.
    async fn create_notebook(
        &self,
        owner: &UserId,
        title: &str,
        metadata: Map<String, Value>,
        cells: Vec<NewCell>,
    ) -> Result<Notebook, ApplyError>;

    /// The notebook with its cells in order (one consistent snapshot).
    async fn notebook(&self, id: NotebookId) -> Result<Option<Notebook>, StoreError>;

    /// The notebook without its cells.
    async fn notebook_meta(&self, id: NotebookId) -> Result<Option<NotebookMeta>, StoreError>;

    /// The user's access to a notebook: owner, member role, none, or no notebook.
    async fn role_of(&self, id: NotebookId, user: &UserId) -> Result<Access, StoreError>;

    /// Notebooks the user owns or is a member of, newest first (`created_at`
    /// desc, then id desc), at most `limit`, strictly after `after`.
    async fn list_for_user(
        &self,
        user: &UserId,
        limit: usize,
        after: Option<PageKey>,
    ) -> Result<Vec<(NotebookMeta, Role)>, StoreError>;

    /// Notebooks `user` owns or is a member of, or that `org` (the caller's
    /// active organization) is a member of, newest first, each once, as
    /// [`Store::list_for_user`] pages them.
    async fn list_for_member(
        &self,
        user: &UserId,
        org: Option<&UserId>,
        limit: usize,
        after: Option<PageKey>,
    ) -> Result<Vec<Listed>, StoreError>;

    /// [`Store::apply_via`] with no organization: only the author's own
    /// ownership or membership lets them write.
    async fn apply(
        &self,
        id: NotebookId,
        author: &UserId,
        op: Op,
        expect_version: Option<i64>,
    ) -> Result<Committed, ApplyError> {
        self.apply_via(id, author, None, op, expect_version).await
    }

    /// The transaction of every edit: validates `op`, then in one transaction checks the
    /// notebook exists, the author may write and (when given) the version is
    /// `expect_version`, applies the op, bumps the version, appends to the op
    /// log, prunes it, and commits. Returns only once the change is durable.
    /// The author may write as owner, as an editor, or because `via` (their
    /// active organization) is an editor.
    async fn apply_via(
        &self,
        id: NotebookId,
        author: &UserId,
        via: Option<&UserId>,
        op: Op,
        expect_version: Option<i64>,
    ) -> Result<Committed, ApplyError>;

    /// Deletes the notebook with its cells, members and ops. `false` if it did
    /// not exist.
    async fn delete_notebook(&self, id: NotebookId) -> Result<bool, StoreError>;

    /// The owner (as [`Role::Owner`]) first, then members sorted by user id.
    /// Empty when the notebook does not exist.
    async fn members(&self, id: NotebookId) -> Result<Vec<(UserId, Role)>, StoreError>;

    /// Adds a member or changes their role. `Role::Owner` and the owner's own
    /// id are `StoreError::Invalid`; a missing notebook is
    /// `StoreError::NotebookNotFound`.
    async fn set_member(&self, id: NotebookId, user: &UserId, role: Role)
        -> Result<(), StoreError>;

    /// Removes a member. `false` if they were not one.
    async fn remove_member(&self, id: NotebookId, user: &UserId) -> Result<bool, StoreError>;

    /// The ops with version > `after_version`, ascending, when every one of
    /// them is still in the log and there are at most `max`; `None` when some
    /// were pruned, there are too many, `after_version` is ahead of the
    /// notebook, or the notebook does not exist. `Some(vec![])` when up to date.
    async fn ops_since(
        &self,
        id: NotebookId,
        after_version: i64,
        max: usize,
    ) -> Result<Option<Vec<Committed>>, StoreError>;

    /// Deletes every notebook the user owns (returned, so their sockets can be
    /// closed) and all their memberships.
    async fn delete_user(&self, user: &UserId) -> Result<Vec<NotebookId>, StoreError>;

    /// Removes `member` from every notebook it is a member of (an
    /// organization was deleted); returns those notebooks, sorted.
    async fn remove_member_everywhere(
        &self,
        member: &UserId,
    ) -> Result<Vec<NotebookId>, StoreError>;

    /// Whether a webhook delivery id was already applied.
    async fn webhook_seen(&self, id: &str) -> Result<bool, StoreError>;

    /// Marks a webhook delivery id as applied (idempotent); prunes old ids.
    async fn record_webhook(&self, id: &str) -> Result<(), StoreError>;
}

/// Webhook delivery ids are kept this long (Svix retries for about 3 days).
pub const WEBHOOK_ID_RETENTION_MICROS: i64 = 7 * 24 * 3600 * 1_000_000;

/// Opens the store the configuration's database URL names and runs migrations.
pub async fn open(config: &crate::config::Config) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    use anyhow::Context as _;
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
        return Ok(std::sync::Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PostgresStore::connect(url, options)
            .await
            .context("opening PostgreSQL database")?;
        return Ok(std::sync::Arc::new(store));
    }
    anyhow::bail!("QUIRE_DATABASE_URL must start with sqlite:, postgres:// or postgresql://")
}
