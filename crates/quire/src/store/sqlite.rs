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

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::{Access, ApplyError, PageKey, Store, StoreError, StoreOptions};
use crate::notebook::model::{
    Cell, CellId, Limits, Notebook, NotebookId, NotebookMeta, Role, UserId,
};
use crate::notebook::ops::{self, AppliedOp, Committed, NewCell, Op, OpError};

/// Columns of `notebooks` read into a [`NotebookMeta`], in [`meta_from_row`]'s order.
const META_COLS: &str = "id, title, owner_id, created_at, updated_at, version, epoch, metadata";
/// Columns of `cells` read into a [`Cell`].
const CELL_COLS: &str =
    "id, cell_type, source, metadata, outputs, execution_count, attachments, version";

/// A [`Store`] on one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    opts: StoreOptions,
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
        Ok(Self {
            writer,
            reader,
            opts,
        })
    }

    /// The options this store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }

    /// Closes both pools (for an ordered shutdown); later calls fail.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    /// Starts a write transaction holding SQLite's write lock from the start.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }

    /// Starts a read transaction (one consistent snapshot for several queries).
    async fn begin_read(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.reader.begin().await
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

// ---------------------------------------------------------------------------
// Value conversion

/// A value that should have been valid when it was written.
fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

/// The current time, truncated to what the database stores (microseconds).
fn now() -> (i64, DateTime<Utc>) {
    let micros = Utc::now().timestamp_micros();
    (micros, from_micros(micros).unwrap_or_default())
}

fn from_micros(micros: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
}

fn time_col(row: &SqliteRow, col: &str) -> Result<DateTime<Utc>, StoreError> {
    let micros: i64 = row.try_get(col)?;
    from_micros(micros).ok_or_else(|| corrupt(format!("timestamp in column {col}")))
}

fn parse_col<T: FromStr>(row: &SqliteRow, col: &str) -> Result<T, StoreError> {
    let text: String = row.try_get(col)?;
    text.parse()
        .map_err(|_| corrupt(format!("value in column {col}")))
}

fn json_map(text: &str, col: &str) -> Result<Map<String, Value>, StoreError> {
    serde_json::from_str(text).map_err(|_| corrupt(format!("JSON object in column {col}")))
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|_| corrupt("value not serializable to JSON"))
}

fn index_to_db(index: usize) -> Result<i64, OpError> {
    i64::try_from(index).map_err(|_| OpError::IndexOutOfRange)
}

fn index_from_db(value: i64) -> Result<usize, StoreError> {
    usize::try_from(value).map_err(|_| corrupt("negative position or count"))
}

fn meta_from_row(row: &SqliteRow) -> Result<NotebookMeta, StoreError> {
    let metadata: String = row.try_get("metadata")?;
    Ok(NotebookMeta {
        id: parse_col(row, "id")?,
        title: row.try_get("title")?,
        owner_id: parse_col(row, "owner_id")?,
        created_at: time_col(row, "created_at")?,
        updated_at: time_col(row, "updated_at")?,
        version: row.try_get("version")?,
        epoch: row.try_get("epoch")?,
        metadata: json_map(&metadata, "notebooks.metadata")?,
    })
}

fn cell_from_row(row: &SqliteRow) -> Result<Cell, StoreError> {
    let metadata: String = row.try_get("metadata")?;
    let outputs: String = row.try_get("outputs")?;
    let attachments: Option<String> = row.try_get("attachments")?;
    let attachments = attachments
        .map(|a| serde_json::from_str(&a).map_err(|_| corrupt("cells.attachments")))
        .transpose()?;
    let mut cell = Cell {
        id: parse_col(row, "id")?,
        cell_type: parse_col(row, "cell_type")?,
        source: row.try_get("source")?,
        metadata: json_map(&metadata, "cells.metadata")?,
        outputs: serde_json::from_str(&outputs).map_err(|_| corrupt("cells.outputs"))?,
        execution_count: row.try_get("execution_count")?,
        attachments,
        version: row.try_get("version")?,
    };
    cell.normalize();
    Ok(cell)
}

fn committed_from_row(id: NotebookId, row: &SqliteRow) -> Result<Committed, StoreError> {
    let op_text: String = row.try_get("op")?;
    let op: AppliedOp = serde_json::from_str(&op_text).map_err(|_| corrupt("ops.op"))?;
    let cell = match &op {
        AppliedOp::CellInsert { cell, .. } => Some(cell.clone()),
        _ => None,
    };
    Ok(Committed {
        notebook_id: id,
        version: row.try_get("version")?,
        author: parse_col(row, "author")?,
        op,
        cell,
        at: time_col(row, "at")?,
    })
}

// ---------------------------------------------------------------------------
// Queries shared by several operations (all take a connection inside a transaction)

async fn load_meta(
    conn: &mut SqliteConnection,
    nid: &str,
) -> Result<Option<NotebookMeta>, StoreError> {
    let sql = format!("SELECT {META_COLS} FROM notebooks WHERE id = ?");
    let row = sqlx::query(&sql).bind(nid).fetch_optional(conn).await?;
    row.as_ref().map(meta_from_row).transpose()
}

async fn load_cells(conn: &mut SqliteConnection, nid: &str) -> Result<Vec<Cell>, StoreError> {
    let sql = format!("SELECT {CELL_COLS} FROM cells WHERE notebook_id = ? ORDER BY position");
    let rows = sqlx::query(&sql).bind(nid).fetch_all(conn).await?;
    rows.iter().map(cell_from_row).collect()
}

async fn load_cell(
    conn: &mut SqliteConnection,
    nid: &str,
    cell_id: &CellId,
) -> Result<Option<Cell>, StoreError> {
    let sql = format!("SELECT {CELL_COLS} FROM cells WHERE notebook_id = ? AND id = ?");
    let row = sqlx::query(&sql)
        .bind(nid)
        .bind(cell_id.as_str())
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(cell_from_row).transpose()
}

async fn cell_count(conn: &mut SqliteConnection, nid: &str) -> Result<usize, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cells WHERE notebook_id = ?")
        .bind(nid)
        .fetch_one(conn)
        .await?;
    index_from_db(n)
}

async fn cell_position(
    conn: &mut SqliteConnection,
    nid: &str,
    cell_id: &CellId,
) -> Result<Option<usize>, StoreError> {
    let pos: Option<i64> =
        sqlx::query_scalar("SELECT position FROM cells WHERE notebook_id = ? AND id = ?")
            .bind(nid)
            .bind(cell_id.as_str())
            .fetch_optional(conn)
            .await?;
    pos.map(index_from_db).transpose()
}

async fn insert_cell_row(
    conn: &mut SqliteConnection,
    nid: &str,
    cell: &Cell,
    position: i64,
) -> Result<(), StoreError> {
    let attachments = cell.attachments.as_ref().map(to_json).transpose()?;
    sqlx::query(
        "INSERT INTO cells (notebook_id, id, position, cell_type, source, metadata, outputs, \
         execution_count, attachments, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(nid)
    .bind(cell.id.as_str())
    .bind(position)
    .bind(cell.cell_type.as_str())
    .bind(&cell.source)
    .bind(to_json(&cell.metadata)?)
    .bind(to_json(&cell.outputs)?)
    .bind(cell.execution_count)
    .bind(attachments)
    .bind(cell.version)
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds `delta` to the position of every cell whose position is in `from..=to`.
async fn shift_positions(
    conn: &mut SqliteConnection,
    nid: &str,
    from: i64,
    to: i64,
    delta: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE cells SET position = position + ? \
         WHERE notebook_id = ? AND position >= ? AND position <= ?",
    )
    .bind(delta)
    .bind(nid)
    .bind(from)
    .bind(to)
    .execute(conn)
    .await?;
    Ok(())
}

/// The author's role, checked inside the write transaction.
async fn member_role(
    conn: &mut SqliteConnection,
    nid: &str,
    user: &UserId,
) -> Result<Option<Role>, StoreError> {
    let role: Option<String> =
        sqlx::query_scalar("SELECT role FROM members WHERE notebook_id = ? AND user_id = ?")
            .bind(nid)
            .bind(user.as_str())
            .fetch_optional(conn)
            .await?;
    role.map(|r| r.parse().map_err(|_| corrupt("members.role")))
        .transpose()
}

// ---------------------------------------------------------------------------
// Applying each op kind (inside apply's transaction)

/// Applies `op` to the rows; returns what committed and the resulting cell.
async fn apply_op(
    conn: &mut SqliteConnection,
    nid: &str,
    op: Op,
    limits: &Limits,
) -> Result<(AppliedOp, Option<Cell>), ApplyError> {
    match op {
        Op::CellInsert { index, cell } => apply_insert(conn, nid, index, cell, limits).await,
        Op::CellUpdate {
            cell_id,
            base_version,
            source,
            cell_type,
            metadata,
        } => {
            let current = load_cell(conn, nid, &cell_id)
                .await?
                .ok_or(OpError::CellNotFound)?;
            let (cell, applied) =
                ops::update_cell(&current, base_version, source, cell_type, metadata)?;
            write_cell_update(conn, nid, &cell).await?;
            Ok((applied, Some(cell)))
        }
        Op::CellDelete { cell_id } => apply_delete(conn, nid, cell_id).await,
        Op::CellMove { cell_id, index } => apply_move(conn, nid, cell_id, index).await,
        Op::NotebookRename { title } => {
            sqlx::query("UPDATE notebooks SET title = ? WHERE id = ?")
                .bind(&title)
                .bind(nid)
                .execute(conn)
                .await?;
            Ok((AppliedOp::NotebookRename { title }, None))
        }
    }
}

async fn apply_insert(
    conn: &mut SqliteConnection,
    nid: &str,
    index: Option<usize>,
    new: NewCell,
    limits: &Limits,
) -> Result<(AppliedOp, Option<Cell>), ApplyError> {
    let len = cell_count(conn, nid).await?;
    let index = ops::insert_index(index, len, limits)?;
    let cell = new.into_cell();
    if cell_position(conn, nid, &cell.id).await?.is_some() {
        return Err(OpError::DuplicateCellId.into());
    }
    let pos = index_to_db(index)?;
    shift_positions(conn, nid, pos, i64::MAX, 1).await?;
    insert_cell_row(conn, nid, &cell, pos).await?;
    let applied = AppliedOp::CellInsert {
        index,
        cell: cell.clone(),
    };
    Ok((applied, Some(cell)))
}

async fn write_cell_update(
    conn: &mut SqliteConnection,
    nid: &str,
    cell: &Cell,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE cells SET cell_type = ?, source = ?, metadata = ?, outputs = ?, \
         execution_count = ?, version = ? WHERE notebook_id = ? AND id = ?",
    )
    .bind(cell.cell_type.as_str())
    .bind(&cell.source)
    .bind(to_json(&cell.metadata)?)
    .bind(to_json(&cell.outputs)?)
    .bind(cell.execution_count)
    .bind(cell.version)
    .bind(nid)
    .bind(cell.id.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

async fn apply_delete(
    conn: &mut SqliteConnection,
    nid: &str,
    cell_id: CellId,
) -> Result<(AppliedOp, Option<Cell>), ApplyError> {
    let pos = cell_position(conn, nid, &cell_id)
        .await?
        .ok_or(OpError::CellNotFound)?;
    sqlx::query("DELETE FROM cells WHERE notebook_id = ? AND id = ?")
        .bind(nid)
        .bind(cell_id.as_str())
        .execute(&mut *conn)
        .await?;
    shift_positions(conn, nid, index_to_db(pos)? + 1, i64::MAX, -1).await?;
    Ok((AppliedOp::CellDelete { cell_id }, None))
}

async fn apply_move(
    conn: &mut SqliteConnection,
    nid: &str,
    cell_id: CellId,
    index: usize,
) -> Result<(AppliedOp, Option<Cell>), ApplyError> {
    let from = cell_position(conn, nid, &cell_id)
        .await?
        .ok_or(OpError::CellNotFound)?;
    let len = cell_count(conn, nid).await?;
    let to = ops::move_index(index, len)?;
    let (from_db, to_db) = (index_to_db(from)?, index_to_db(to)?);
    if to < from {
        shift_positions(conn, nid, to_db, from_db - 1, 1).await?;
    } else if to > from {
        shift_positions(conn, nid, from_db + 1, to_db, -1).await?;
    }
    sqlx::query("UPDATE cells SET position = ? WHERE notebook_id = ? AND id = ?")
        .bind(to_db)
        .bind(nid)
        .bind(cell_id.as_str())
        .execute(conn)
        .await?;
    Ok((AppliedOp::CellMove { cell_id, index: to }, None))
}

/// Bumps the notebook version, logs the op and prunes the log.
async fn record_op(
    conn: &mut SqliteConnection,
    nid: &str,
    version: i64,
    author: &UserId,
    op: &AppliedOp,
    at_micros: i64,
    keep: usize,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE notebooks SET version = ?, updated_at = ? WHERE id = ?")
        .bind(version)
        .bind(at_micros)
        .bind(nid)
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO ops (notebook_id, version, author, op, at) VALUES (?, ?, ?, ?, ?)")
        .bind(nid)
        .bind(version)
        .bind(author.as_str())
        .bind(to_json(op)?)
        .bind(at_micros)
        .execute(&mut *conn)
        .await?;
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    sqlx::query("DELETE FROM ops WHERE notebook_id = ? AND version <= ?")
        .bind(nid)
        .bind(version.saturating_sub(keep))
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes the notebooks matched by `filter` (a `notebooks` WHERE clause on
/// `?1`) with everything that hangs off them.
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

// ---------------------------------------------------------------------------
// The Store implementation

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn create_notebook(
        &self,
        owner: &UserId,
        title: &str,
        metadata: Map<String, Value>,
        cells: Vec<NewCell>,
    ) -> Result<Notebook, ApplyError> {
        let limits = &self.opts.limits;
        ops::validate_title(title, limits)?;
        ops::validate_new_cells(&cells, limits)?;
        let cells: Vec<Cell> = cells.into_iter().map(NewCell::into_cell).collect();
        let mut seen = HashSet::new();
        if !cells.iter().all(|c| seen.insert(c.id.as_str())) {
            return Err(OpError::DuplicateCellId.into());
        }
        let (micros, at) = now();
        let meta = NotebookMeta {
            id: NotebookId::new(),
            title: title.to_owned(),
            owner_id: owner.clone(),
            created_at: at,
            updated_at: at,
            version: 0,
            epoch: Uuid::new_v4().simple().to_string(),
            metadata,
        };
        let nid = meta.id.to_string();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO notebooks (id, title, owner_id, created_at, updated_at, version, epoch, \
             metadata) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
        )
        .bind(&nid)
        .bind(&meta.title)
        .bind(owner.as_str())
        .bind(micros)
        .bind(micros)
        .bind(&meta.epoch)
        .bind(to_json(&meta.metadata)?)
        .execute(&mut *tx)
        .await?;
        for (pos, cell) in cells.iter().enumerate() {
            insert_cell_row(&mut tx, &nid, cell, index_to_db(pos)?).await?;
        }
        tx.commit().await?;
        Ok(Notebook { meta, cells })
    }

    async fn notebook(&self, id: NotebookId) -> Result<Option<Notebook>, StoreError> {
        let nid = id.to_string();
        let mut tx = self.begin_read().await?;
        let Some(meta) = load_meta(&mut tx, &nid).await? else {
            return Ok(None);
        };
        let cells = load_cells(&mut tx, &nid).await?;
        tx.commit().await?;
        Ok(Some(Notebook { meta, cells }))
    }

    async fn notebook_meta(&self, id: NotebookId) -> Result<Option<NotebookMeta>, StoreError> {
        let mut conn = self.reader.acquire().await?;
        load_meta(&mut conn, &id.to_string()).await
    }

    async fn role_of(&self, id: NotebookId, user: &UserId) -> Result<Access, StoreError> {
        let row = sqlx::query(
            "SELECT n.owner_id AS owner_id, m.role AS role FROM notebooks n \
             LEFT JOIN members m ON m.notebook_id = n.id AND m.user_id = ?1 WHERE n.id = ?2",
        )
        .bind(user.as_str())
        .bind(id.to_string())
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else {
            return Ok(Access::NotFound);
        };
        let owner: String = row.try_get("owner_id")?;
        if owner == user.as_str() {
            return Ok(Access::Role(Role::Owner));
        }
        let role: Option<String> = row.try_get("role")?;
        match role {
            None => Ok(Access::NoAccess),
            Some(r) => r
                .parse()
                .map(Access::Role)
                .map_err(|_| corrupt("members.role")),
        }
    }

    async fn list_for_user(
        &self,
        user: &UserId,
        limit: usize,
        after: Option<PageKey>,
    ) -> Result<Vec<(NotebookMeta, Role)>, StoreError> {
        let sql = format!(
            "SELECT {META_COLS}, role FROM ( \
               SELECT {META_COLS}, 'owner' AS role FROM notebooks WHERE owner_id = ?1 \
               UNION ALL \
               SELECT {n_cols}, m.role AS role FROM members m \
                 JOIN notebooks n ON n.id = m.notebook_id \
                 WHERE m.user_id = ?1 AND n.owner_id <> ?1 \
             ) \
             WHERE ?2 IS NULL OR created_at < ?2 OR (created_at = ?2 AND id < ?3) \
             ORDER BY created_at DESC, id DESC LIMIT ?4",
            n_cols = prefixed("n", META_COLS),
        );
        let rows = sqlx::query(&sql)
            .bind(user.as_str())
            .bind(after.map(|k| k.created_at_micros))
            .bind(after.map(|k| k.id.to_string()))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| Ok((meta_from_row(row)?, parse_col(row, "role")?)))
            .collect()
    }

    async fn apply(
        &self,
        id: NotebookId,
        author: &UserId,
        op: Op,
        expect_version: Option<i64>,
    ) -> Result<Committed, ApplyError> {
        ops::validate(&op, &self.opts.limits)?;
        let nid = id.to_string();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT version, owner_id FROM notebooks WHERE id = ?")
            .bind(&nid)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(ApplyError::NotebookNotFound)?;
        let version: i64 = row.try_get("version")?;
        let owner: String = row.try_get("owner_id")?;
        if owner != author.as_str() {
            let role = member_role(&mut tx, &nid, author).await?;
            if !role.is_some_and(Role::can_write) {
                return Err(ApplyError::Forbidden);
            }
        }
        if let Some(expected) = expect_version {
            if expected != version {
                return Err(ApplyError::VersionMismatch { current: version });
            }
        }
        let (applied, cell) = apply_op(&mut tx, &nid, op, &self.opts.limits).await?;
        let (micros, at) = now();
        let new_version = version + 1;
        record_op(
            &mut tx,
            &nid,
            new_version,
            author,
            &applied,
            micros,
            self.opts.op_log_keep,
        )
        .await?;
        tx.commit().await?;
        Ok(Committed {
            notebook_id: id,
            version: new_version,
            author: author.clone(),
            op: applied,
            cell,
            at,
        })
    }

    async fn delete_notebook(&self, id: NotebookId) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let deleted = delete_notebooks_where(&mut tx, "id = ?1", &id.to_string()).await?;
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn members(&self, id: NotebookId) -> Result<Vec<(UserId, Role)>, StoreError> {
        let nid = id.to_string();
        let mut tx = self.begin_read().await?;
        let owner: Option<String> =
            sqlx::query_scalar("SELECT owner_id FROM notebooks WHERE id = ?")
                .bind(&nid)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(owner) = owner else {
            return Ok(Vec::new());
        };
        let rows =
            sqlx::query("SELECT user_id, role FROM members WHERE notebook_id = ? ORDER BY user_id")
                .bind(&nid)
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        let owner = owner.parse().map_err(|_| corrupt("notebooks.owner_id"))?;
        let mut out = vec![(owner, Role::Owner)];
        for row in &rows {
            out.push((parse_col(row, "user_id")?, parse_col(row, "role")?));
        }
        Ok(out)
    }

    async fn set_member(
        &self,
        id: NotebookId,
        user: &UserId,
        role: Role,
    ) -> Result<(), StoreError> {
        if role == Role::Owner {
            return Err(StoreError::Invalid("the owner role cannot be granted"));
        }
        let nid = id.to_string();
        let mut tx = self.begin_write().await?;
        let owner: String = sqlx::query_scalar("SELECT owner_id FROM notebooks WHERE id = ?")
            .bind(&nid)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotebookNotFound)?;
        if owner == user.as_str() {
            return Err(StoreError::Invalid("the owner cannot also be a member"));
        }
        sqlx::query(
            "INSERT INTO members (notebook_id, user_id, role) VALUES (?, ?, ?) \
             ON CONFLICT (notebook_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(&nid)
        .bind(user.as_str())
        .bind(role.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove_member(&self, id: NotebookId, user: &UserId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM members WHERE notebook_id = ? AND user_id = ?")
            .bind(id.to_string())
            .bind(user.as_str())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn ops_since(
        &self,
        id: NotebookId,
        after_version: i64,
        max: usize,
    ) -> Result<Option<Vec<Committed>>, StoreError> {
        let nid = id.to_string();
        let mut tx = self.begin_read().await?;
        let current: Option<i64> = sqlx::query_scalar("SELECT version FROM notebooks WHERE id = ?")
            .bind(&nid)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(current) = current else {
            return Ok(None);
        };
        if after_version < 0 || after_version > current {
            return Ok(None);
        }
        let missing = current - after_version;
        if u64::try_from(missing).map_or(true, |m| m > max as u64) {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT version, author, op, at FROM ops WHERE notebook_id = ? AND version > ? \
             ORDER BY version LIMIT ?",
        )
        .bind(&nid)
        .bind(after_version)
        .bind(missing)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let log = rows
            .iter()
            .map(|row| committed_from_row(id, row))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(is_contiguous(&log, after_version, current).then_some(log))
    }

    async fn delete_user(&self, user: &UserId) -> Result<Vec<NotebookId>, StoreError> {
        let mut tx = self.begin_write().await?;
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM notebooks WHERE owner_id = ? ORDER BY id")
                .bind(user.as_str())
                .fetch_all(&mut *tx)
                .await?;
        delete_notebooks_where(&mut tx, "owner_id = ?1", user.as_str()).await?;
        sqlx::query("DELETE FROM members WHERE user_id = ?")
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        ids.iter()
            .map(|s| s.parse().map_err(|_| corrupt("notebooks.id")))
            .collect()
    }

    async fn webhook_seen(&self, id: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM webhook_deliveries WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(found.is_some())
    }

    async fn record_webhook(&self, id: &str) -> Result<(), StoreError> {
        let now = chrono::Utc::now().timestamp_micros();
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO webhook_deliveries (id, received_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING")
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < ?")
            .bind(now - super::WEBHOOK_ID_RETENTION_MICROS)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Whether `ops` are exactly the versions `after+1..=current`, in order.
fn is_contiguous(ops: &[Committed], after: i64, current: i64) -> bool {
    let expected = usize::try_from(current - after).ok();
    expected == Some(ops.len())
        && ops
            .iter()
            .zip(after + 1..)
            .all(|(op, version)| op.version == version)
}

/// `"a, b"` -> `"p.a, p.b"`.
fn prefixed(prefix: &str, cols: &str) -> String {
    cols.split(", ")
        .map(|c| format!("{prefix}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_columns() {
        assert_eq!(prefixed("n", "a, b"), "n.a, n.b");
    }

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
