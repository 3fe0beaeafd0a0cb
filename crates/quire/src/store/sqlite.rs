//! The SQLite [`Store`]: the default, single-machine store.
//!
//! One file in WAL mode with `synchronous=FULL`, so an op acknowledged by
//! [`Store::apply`] survives a `kill -9` or power loss the instant after.
//! Writes go through a dedicated single-connection pool: in-process writers
//! queue on it instead of racing for SQLite's one write lock (no SQLITE_BUSY
//! storms), and every write transaction starts with `BEGIN IMMEDIATE`, so the
//! notebook row read at its start cannot change before it commits. Reads use a
//! separate pool and run in a read transaction, so a notebook and its cells
//! always come from one snapshot.
//!
//! The statements shared with PostgreSQL are in `super::sql`; this module
//! holds what differs: the [`SqliteBackend`].
//!
//! [`Store`]: super::Store
//! [`Store::apply`]: super::Store::apply

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqliteConnection, SqlitePool};

use super::sql::{to_json, Backend, SqlStore, Tx};
use super::{ApplyError, StoreError, StoreOptions};
use crate::notebook::model::{Cell, UserId};

/// A [`Store`](super::Store) on one SQLite file.
pub type SqliteStore = SqlStore<SqliteBackend>;

/// SQLite's side of [`SqlStore`]: a one-connection writer pool and a reader pool.
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`,
    /// `sqlite:path?mode=rwc`, `sqlite::memory:`), sets it up for durability
    /// and runs the migrations.
    pub async fn connect(url: &str, opts: StoreOptions) -> Result<Self, StoreError> {
        let base = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::Invalid("invalid SQLite database URL"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let in_memory = is_in_memory(url);
        let writer = pool_options(1, in_memory)
            .connect_with(base.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        // An in-memory database exists once per connection set and shared-cache
        // readers would hit SQLITE_LOCKED, so there the writer does everything.
        let reader = if in_memory {
            writer.clone()
        } else {
            pool_options(opts.max_connections.max(1), false)
                .connect_with(base)
                .await?
        };
        Ok(SqlStore {
            backend: SqliteBackend { writer, reader },
            opts,
        })
    }
}

/// Pool settings; an in-memory database must never drop its last connection.
fn pool_options(max: u32, in_memory: bool) -> SqlitePoolOptions {
    let pool = SqlitePoolOptions::new().max_connections(max);
    if in_memory {
        pool.min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        pool
    }
}

/// Whether `url` names an in-memory database.
fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

impl Backend for SqliteBackend {
    type Db = Sqlite;
    /// Titles and sources are TEXT columns (SQLite TEXT holds U+0000).
    type Text<'a> = &'a str;

    /// No row lock: the transaction's `BEGIN IMMEDIATE` already holds
    /// SQLite's one write lock.
    const SELECT_FOR_APPLY: &'static str = "SELECT version, owner_id FROM notebooks WHERE id = $1";
    /// Under the write lock as well.
    const SELECT_OWNER_FOR_MEMBER: &'static str = "SELECT owner_id FROM notebooks WHERE id = $1";

    /// Holds SQLite's write lock from the start.
    async fn begin_write(&self) -> Result<Tx<Self>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }

    async fn begin_read(&self) -> Result<Tx<Self>, sqlx::Error> {
        self.reader.begin().await
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn text_col(row: &SqliteRow, col: &str) -> Result<String, StoreError> {
        Ok(row.try_get(col)?)
    }

    fn text_arg(text: &str) -> &str {
        text
    }

    /// One row at a time.
    async fn insert_cells(
        conn: &mut SqliteConnection,
        nid: &str,
        cells: &[Cell],
        first: i64,
    ) -> Result<(), ApplyError> {
        for (cell, offset) in cells.iter().zip(0..) {
            let attachments = cell.attachments.as_ref().map(to_json).transpose()?;
            sqlx::query(
                "INSERT INTO cells (notebook_id, id, position, cell_type, source, metadata, outputs, \
                 execution_count, attachments, version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(nid)
            .bind(cell.id.as_str())
            .bind(first + offset)
            .bind(cell.cell_type.as_str())
            .bind(&cell.source)
            .bind(to_json(&cell.metadata)?)
            .bind(to_json(&cell.outputs)?)
            .bind(cell.execution_count)
            .bind(attachments)
            .bind(cell.version)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    async fn delete_notebook_rows(
        conn: &mut SqliteConnection,
        nid: &str,
    ) -> Result<bool, StoreError> {
        Ok(delete_notebooks_where(conn, "id = $1", nid).await? > 0)
    }

    async fn delete_owned_notebooks(
        conn: &mut SqliteConnection,
        user: &UserId,
    ) -> Result<Vec<String>, StoreError> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM notebooks WHERE owner_id = $1 ORDER BY id")
                .bind(user.as_str())
                .fetch_all(&mut *conn)
                .await?;
        delete_notebooks_where(conn, "owner_id = $1", user.as_str()).await?;
        Ok(ids)
    }
}

/// Deletes the notebooks matched by `filter` (a `notebooks` WHERE clause on
/// `$1`) with everything that hangs off them.
async fn delete_notebooks_where(
    conn: &mut SqliteConnection,
    filter: &str,
    arg: &str,
) -> Result<u64, StoreError> {
    for table in ["ops", "cells", "members"] {
        let sql = format!(
            "DELETE FROM {table} WHERE notebook_id IN (SELECT id FROM notebooks WHERE {filter})"
        );
        sqlx::query(&sql).bind(arg).execute(&mut *conn).await?;
    }
    let sql = format!("DELETE FROM notebooks WHERE {filter}");
    let done = sqlx::query(&sql).bind(arg).execute(conn).await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;
    use crate::store::Store;

    #[test]
    fn memory_urls() {
        assert!(is_in_memory("sqlite::memory:"));
        assert!(is_in_memory("sqlite://x?mode=memory"));
        assert!(!is_in_memory("sqlite://quire.db"));
    }

    #[tokio::test]
    async fn in_memory_store_works() {
        let store = SqliteStore::connect("sqlite::memory:", StoreOptions::default())
            .await
            .expect("connect");
        let owner = UserId::parse("u").expect("user");
        let nb = store
            .create_notebook(&owner, "t", Map::new(), vec![])
            .await
            .expect("create");
        let got = store.notebook(nb.meta.id).await.expect("get");
        assert_eq!(got, Some(nb));
    }
}
