//! The PostgreSQL [`Store`]: for several `quire` processes sharing one
//! database (see "Scale-out" in the design).
//!
//! Every write runs in a READ COMMITTED transaction. [`Store::apply`] starts
//! by locking the notebook row (`SELECT ... FOR NO KEY UPDATE`), so writers of
//! one notebook serialize on it across processes: the version read under the
//! lock is the newest committed one, and no two commits get the same version
//! or skip one. Reads that need several queries ([`Store::notebook`],
//! [`Store::members`], [`Store::ops_since`]) run in a REPEATABLE READ, READ
//! ONLY transaction, so they see one snapshot. Every session runs with
//! `synchronous_commit = on`, so an op is on disk once `apply` returns.
//!
//! The schema mirrors SQLite's (`migrations/postgres`); JSON is stored as TEXT
//! so objects keep their key order, and titles and sources as UTF-8 BYTEA
//! because PostgreSQL TEXT cannot hold U+0000.
//!
//! The statements shared with SQLite are in `super::sql`; this module holds
//! what differs: the [`PostgresBackend`].
//!
//! [`Store`]: super::Store
//! [`Store::apply`]: super::Store::apply
//! [`Store::notebook`]: super::Store::notebook
//! [`Store::members`]: super::Store::members
//! [`Store::ops_since`]: super::Store::ops_since

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgConnection, PgPool, Postgres, Row};

use super::sql::{corrupt, to_json, Backend, SqlStore, Tx};
use super::{ApplyError, StoreError, StoreOptions};
use crate::notebook::model::{Cell, UserId};

/// How long a caller waits for a pooled connection before the store reports
/// itself unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts a write transaction (explicit, whatever the server default is).
const BEGIN_WRITE: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";
/// Starts a read transaction: one snapshot for several queries.
const BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// A [`Store`](super::Store) on a PostgreSQL database, safe to share between processes.
pub type PostgresStore = SqlStore<PostgresBackend>;

/// PostgreSQL's side of [`SqlStore`]: one pool for reads and writes.
#[derive(Debug, Clone)]
pub struct PostgresBackend {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db?...`) with a pool of
    /// `opts.max_connections` and runs the migrations (concurrent starts are
    /// safe: sqlx serializes them on an advisory lock).
    pub async fn connect(url: &str, opts: StoreOptions) -> Result<Self, StoreError> {
        if !is_postgres_url(url) {
            return Err(StoreError::Invalid("not a postgres:// database URL"));
        }
        let connect = PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::Invalid("invalid PostgreSQL database URL"))?
            .application_name("quire")
            .options([("synchronous_commit", "on")]);
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(connect)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(SqlStore {
            backend: PostgresBackend { pool },
            opts,
        })
    }
}

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl Backend for PostgresBackend {
    type Db = Postgres;
    /// Titles and sources are BYTEA columns holding UTF-8 text.
    type Text<'a> = &'a [u8];

    /// Locks the notebook row for `apply`'s transaction (other writers of the
    /// notebook wait until it ends) and reads its current version and owner.
    ///
    /// `FOR NO KEY UPDATE` excludes other writers and deletion exactly like
    /// `FOR UPDATE`, but does not block foreign-key checks of concurrent member
    /// inserts.
    const SELECT_FOR_APPLY: &'static str =
        "SELECT version, owner_id FROM notebooks WHERE id = $1 FOR NO KEY UPDATE";
    /// KEY SHARE: the notebook cannot be deleted before the member row commits.
    const SELECT_OWNER_FOR_MEMBER: &'static str =
        "SELECT owner_id FROM notebooks WHERE id = $1 FOR KEY SHARE";

    async fn begin_write(&self) -> Result<Tx<Self>, sqlx::Error> {
        self.pool.begin_with(BEGIN_WRITE).await
    }

    async fn begin_read(&self) -> Result<Tx<Self>, sqlx::Error> {
        self.pool.begin_with(BEGIN_READ).await
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    fn text_col(row: &PgRow, col: &str) -> Result<String, StoreError> {
        let bytes: Vec<u8> = row.try_get(col)?;
        String::from_utf8(bytes).map_err(|_| corrupt(format!("UTF-8 text in column {col}")))
    }

    fn text_arg(text: &str) -> &[u8] {
        text.as_bytes()
    }

    /// All of them in one statement.
    async fn insert_cells(
        conn: &mut PgConnection,
        nid: &str,
        cells: &[Cell],
        first: i64,
    ) -> Result<(), ApplyError> {
        if cells.is_empty() {
            return Ok(());
        }
        let cols = CellColumns::new(cells, first)?;
        sqlx::query(
            "INSERT INTO cells (notebook_id, id, position, cell_type, source, metadata, outputs, \
             execution_count, attachments, version) \
             SELECT $1, * FROM UNNEST($2::text[], $3::int8[], $4::text[], $5::bytea[], $6::text[], \
             $7::text[], $8::int8[], $9::text[], $10::int8[])",
        )
        .bind(nid)
        .bind(&cols.ids)
        .bind(&cols.positions)
        .bind(&cols.types)
        .bind(&cols.sources)
        .bind(&cols.metadata)
        .bind(&cols.outputs)
        .bind(&cols.execution_counts)
        .bind(&cols.attachments)
        .bind(&cols.versions)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Its cells, members and ops go with it (ON DELETE CASCADE).
    async fn delete_notebook_rows(conn: &mut PgConnection, nid: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM notebooks WHERE id = $1")
            .bind(nid)
            .execute(conn)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Their cells, members and ops cascade. RETURNING: exactly the
    /// notebooks deleted, even if one was created concurrently.
    async fn delete_owned_notebooks(
        conn: &mut PgConnection,
        user: &UserId,
    ) -> Result<Vec<String>, StoreError> {
        let ids = sqlx::query_scalar("DELETE FROM notebooks WHERE owner_id = $1 RETURNING id")
            .bind(user.as_str())
            .fetch_all(conn)
            .await?;
        Ok(ids)
    }
}

/// The columns of a batch of cells, as arrays for one `INSERT ... UNNEST`.
#[derive(Default)]
struct CellColumns {
    ids: Vec<String>,
    positions: Vec<i64>,
    types: Vec<String>,
    sources: Vec<Vec<u8>>,
    metadata: Vec<String>,
    outputs: Vec<String>,
    execution_counts: Vec<Option<i64>>,
    attachments: Vec<Option<String>>,
    versions: Vec<i64>,
}

impl CellColumns {
    /// `cells` at positions `first, first + 1, ...`.
    fn new(cells: &[Cell], first: i64) -> Result<Self, ApplyError> {
        let mut cols = Self::default();
        for (cell, offset) in cells.iter().zip(0..) {
            cols.ids.push(cell.id.as_str().to_owned());
            cols.positions.push(first + offset);
            cols.types.push(cell.cell_type.as_str().to_owned());
            cols.sources.push(cell.source.as_bytes().to_vec());
            cols.metadata.push(to_json(&cell.metadata)?);
            cols.outputs.push(to_json(&cell.outputs)?);
            cols.execution_counts.push(cell.execution_count);
            cols.attachments
                .push(cell.attachments.as_ref().map(to_json).transpose()?);
            cols.versions.push(cell.version);
        }
        Ok(cols)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_urls_are_invalid() {
        for url in ["mysql://u@h/db", "postgres://u@h:notaport/db"] {
            let res = PostgresStore::connect(url, StoreOptions::default()).await;
            assert!(matches!(res, Err(StoreError::Invalid(_))), "{url}: {res:?}");
        }
    }
}
