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

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};
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

/// How long a caller waits for a pooled connection before the store reports
/// itself unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts a write transaction (explicit, whatever the server default is).
const BEGIN_WRITE: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";
/// Starts a read transaction: one snapshot for several queries.
const BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// A [`Store`] on a PostgreSQL database, safe to share between processes.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    opts: StoreOptions,
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
        Ok(Self { pool, opts })
    }

    /// The options this store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }

    /// Closes the pool (for an ordered shutdown); later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin_with(BEGIN_WRITE).await
    }

    async fn begin_read(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin_with(BEGIN_READ).await
    }
}

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
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

fn time_col(row: &PgRow, col: &str) -> Result<DateTime<Utc>, StoreError> {
    let micros: i64 = row.try_get(col)?;
    from_micros(micros).ok_or_else(|| corrupt(format!("timestamp in column {col}")))
}

fn parse_col<T: FromStr>(row: &PgRow, col: &str) -> Result<T, StoreError> {
    let text: String = row.try_get(col)?;
    text.parse()
        .map_err(|_| corrupt(format!("value in column {col}")))
}

/// A BYTEA column holding UTF-8 text.
fn utf8_col(row: &PgRow, col: &str) -> Result<String, StoreError> {
    let bytes: Vec<u8> = row.try_get(col)?;
    String::from_utf8(bytes).map_err(|_| corrupt(format!("UTF-8 text in column {col}")))
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

/// A count or limit as a BIGINT (saturating: a limit that large means "all").
fn count_to_db(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn meta_from_row(row: &PgRow) -> Result<NotebookMeta, StoreError> {
    let metadata: String = row.try_get("metadata")?;
    Ok(NotebookMeta {
        id: parse_col(row, "id")?,
        title: utf8_col(row, "title")?,
        owner_id: parse_col(row, "owner_id")?,
        created_at: time_col(row, "created_at")?,
        updated_at: time_col(row, "updated_at")?,
        version: row.try_get("version")?,
        epoch: row.try_get("epoch")?,
        metadata: json_map(&metadata, "notebooks.metadata")?,
    })
}

fn cell_from_row(row: &PgRow) -> Result<Cell, StoreError> {
    let metadata: String = row.try_get("metadata")?;
    let outputs: String = row.try_get("outputs")?;
    let attachments: Option<String> = row.try_get("attachments")?;
    let attachments = attachments
        .map(|a| serde_json::from_str(&a).map_err(|_| corrupt("cells.attachments")))
        .transpose()?;
    let mut cell = Cell {
        id: parse_col(row, "id")?,
        cell_type: parse_col(row, "cell_type")?,
        source: utf8_col(row, "source")?,
        metadata: json_map(&metadata, "cells.metadata")?,
        outputs: serde_json::from_str(&outputs).map_err(|_| corrupt("cells.outputs"))?,
        execution_count: row.try_get("execution_count")?,
        attachments,
        version: row.try_get("version")?,
    };
    cell.normalize();
    Ok(cell)
}

fn committed_from_row(id: NotebookId, row: &PgRow) -> Result<Committed, StoreError> {
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

async fn load_meta(conn: &mut PgConnection, nid: &str) -> Result<Option<NotebookMeta>, StoreError> {
    let sql = format!("SELECT {META_COLS} FROM notebooks WHERE id = $1");
    let row = sqlx::query(&sql).bind(nid).fetch_optional(conn).await?;
    row.as_ref().map(meta_from_row).transpose()
}

async fn load_cells(conn: &mut PgConnection, nid: &str) -> Result<Vec<Cell>, StoreError> {
    let sql = format!("SELECT {CELL_COLS} FROM cells WHERE notebook_id = $1 ORDER BY position");
    let rows = sqlx::query(&sql).bind(nid).fetch_all(conn).await?;
    rows.iter().map(cell_from_row).collect()
}

async fn load_cell(
    conn: &mut PgConnection,
    nid: &str,
    cell_id: &CellId,
) -> Result<Option<Cell>, StoreError> {
    let sql = format!("SELECT {CELL_COLS} FROM cells WHERE notebook_id = $1 AND id = $2");
    let row = sqlx::query(&sql)
        .bind(nid)
        .bind(cell_id.as_str())
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(cell_from_row).transpose()
}

async fn cell_count(conn: &mut PgConnection, nid: &str) -> Result<usize, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cells WHERE notebook_id = $1")
        .bind(nid)
        .fetch_one(conn)
        .await?;
    index_from_db(n)
}

async fn cell_position(
    conn: &mut PgConnection,
    nid: &str,
    cell_id: &CellId,
) -> Result<Option<usize>, StoreError> {
    let pos: Option<i64> =
        sqlx::query_scalar("SELECT position FROM cells WHERE notebook_id = $1 AND id = $2")
            .bind(nid)
            .bind(cell_id.as_str())
            .fetch_optional(conn)
            .await?;
    pos.map(index_from_db).transpose()
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

/// Inserts `cells` at positions `first, first + 1, ...` in one statement.
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

/// Adds `delta` to the position of every cell whose position is in `from..=to`
/// (uniqueness of positions is only checked at commit).
async fn shift_positions(
    conn: &mut PgConnection,
    nid: &str,
    from: i64,
    to: i64,
    delta: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE cells SET position = position + $1 \
         WHERE notebook_id = $2 AND position >= $3 AND position <= $4",
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
    conn: &mut PgConnection,
    nid: &str,
    user: &UserId,
) -> Result<Option<Role>, StoreError> {
    let role: Option<String> =
        sqlx::query_scalar("SELECT role FROM members WHERE notebook_id = $1 AND user_id = $2")
            .bind(nid)
            .bind(user.as_str())
            .fetch_optional(conn)
            .await?;
    role.map(|r| r.parse().map_err(|_| corrupt("members.role")))
        .transpose()
}

/// Locks the notebook row for this transaction (other writers of the notebook
/// wait until it ends) and returns its current version and owner.
///
/// `FOR NO KEY UPDATE` excludes other writers and deletion exactly like
/// `FOR UPDATE`, but does not block foreign-key checks of concurrent member
/// inserts.
async fn lock_notebook(
    conn: &mut PgConnection,
    nid: &str,
) -> Result<Option<(i64, String)>, StoreError> {
    let row =
        sqlx::query("SELECT version, owner_id FROM notebooks WHERE id = $1 FOR NO KEY UPDATE")
            .bind(nid)
            .fetch_optional(conn)
            .await?;
    match row {
        None => Ok(None),
        Some(row) => Ok(Some((row.try_get("version")?, row.try_get("owner_id")?))),
    }
}

// ---------------------------------------------------------------------------
// Applying each op kind (inside apply's transaction)

/// Applies `op` to the rows; returns what committed and the resulting cell.
async fn apply_op(
    conn: &mut PgConnection,
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
            sqlx::query("UPDATE notebooks SET title = $1 WHERE id = $2")
                .bind(title.as_bytes())
                .bind(nid)
                .execute(conn)
                .await?;
            Ok((AppliedOp::NotebookRename { title }, None))
        }
    }
}

async fn apply_insert(
    conn: &mut PgConnection,
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
    insert_cells(conn, nid, std::slice::from_ref(&cell), pos).await?;
    let applied = AppliedOp::CellInsert {
        index,
        cell: cell.clone(),
    };
    Ok((applied, Some(cell)))
}

async fn write_cell_update(
    conn: &mut PgConnection,
    nid: &str,
    cell: &Cell,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE cells SET cell_type = $1, source = $2, metadata = $3, outputs = $4, \
         execution_count = $5, version = $6 WHERE notebook_id = $7 AND id = $8",
    )
    .bind(cell.cell_type.as_str())
    .bind(cell.source.as_bytes())
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
    conn: &mut PgConnection,
    nid: &str,
    cell_id: CellId,
) -> Result<(AppliedOp, Option<Cell>), ApplyError> {
    let pos = cell_position(conn, nid, &cell_id)
        .await?
        .ok_or(OpError::CellNotFound)?;
    sqlx::query("DELETE FROM cells WHERE notebook_id = $1 AND id = $2")
        .bind(nid)
        .bind(cell_id.as_str())
        .execute(&mut *conn)
        .await?;
    shift_positions(conn, nid, index_to_db(pos)? + 1, i64::MAX, -1).await?;
    Ok((AppliedOp::CellDelete { cell_id }, None))
}

async fn apply_move(
    conn: &mut PgConnection,
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
    sqlx::query("UPDATE cells SET position = $1 WHERE notebook_id = $2 AND id = $3")
        .bind(to_db)
        .bind(nid)
        .bind(cell_id.as_str())
        .execute(conn)
        .await?;
    Ok((AppliedOp::CellMove { cell_id, index: to }, None))
}

/// Bumps the notebook version, logs the op and prunes the log.
async fn record_op(
    conn: &mut PgConnection,
    nid: &str,
    version: i64,
    author: &UserId,
    op: &AppliedOp,
    at_micros: i64,
    keep: usize,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE notebooks SET version = $1, updated_at = $2 WHERE id = $3")
        .bind(version)
        .bind(at_micros)
        .bind(nid)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO ops (notebook_id, version, author, op, at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(nid)
    .bind(version)
    .bind(author.as_str())
    .bind(to_json(op)?)
    .bind(at_micros)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM ops WHERE notebook_id = $1 AND version <= $2")
        .bind(nid)
        .bind(version.saturating_sub(count_to_db(keep)))
        .execute(conn)
        .await?;
    Ok(())
}

/// Checks that `author` may write a notebook owned by `owner`.
async fn check_writer(
    conn: &mut PgConnection,
    nid: &str,
    owner: &str,
    author: &UserId,
) -> Result<(), ApplyError> {
    if owner == author.as_str() {
        return Ok(());
    }
    let role = member_role(conn, nid, author).await?;
    if role.is_some_and(Role::can_write) {
        Ok(())
    } else {
        Err(ApplyError::Forbidden)
    }
}

/// Checks create's input and builds the cells (ids generated when absent).
fn new_cells(cells: Vec<NewCell>, limits: &Limits) -> Result<Vec<Cell>, ApplyError> {
    ops::validate_new_cells(&cells, limits)?;
    let cells: Vec<Cell> = cells.into_iter().map(NewCell::into_cell).collect();
    let mut seen = HashSet::new();
    if !cells.iter().all(|c| seen.insert(c.id.as_str())) {
        return Err(OpError::DuplicateCellId.into());
    }
    Ok(cells)
}

async fn insert_notebook_row(
    conn: &mut PgConnection,
    meta: &NotebookMeta,
    micros: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO notebooks (id, title, owner_id, created_at, updated_at, version, epoch, \
         metadata) VALUES ($1, $2, $3, $4, $4, 0, $5, $6)",
    )
    .bind(meta.id.to_string())
    .bind(meta.title.as_bytes())
    .bind(meta.owner_id.as_str())
    .bind(micros)
    .bind(&meta.epoch)
    .bind(to_json(&meta.metadata)?)
    .execute(conn)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// The Store implementation

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_notebook(
        &self,
        owner: &UserId,
        title: &str,
        metadata: Map<String, Value>,
        cells: Vec<NewCell>,
    ) -> Result<Notebook, ApplyError> {
        ops::validate_title(title, &self.opts.limits)?;
        let cells = new_cells(cells, &self.opts.limits)?;
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
        let mut tx = self.begin_write().await?;
        insert_notebook_row(&mut tx, &meta, micros).await?;
        insert_cells(&mut tx, &meta.id.to_string(), &cells, 0).await?;
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
        let mut conn = self.pool.acquire().await?;
        load_meta(&mut conn, &id.to_string()).await
    }

    async fn role_of(&self, id: NotebookId, user: &UserId) -> Result<Access, StoreError> {
        let row = sqlx::query(
            "SELECT n.owner_id AS owner_id, m.role AS role FROM notebooks n \
             LEFT JOIN members m ON m.notebook_id = n.id AND m.user_id = $1 WHERE n.id = $2",
        )
        .bind(user.as_str())
        .bind(id.to_string())
        .fetch_optional(&self.pool)
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
               SELECT {META_COLS}, 'owner' AS role FROM notebooks WHERE owner_id = $1 \
               UNION ALL \
               SELECT {n_cols}, m.role AS role FROM members m \
                 JOIN notebooks n ON n.id = m.notebook_id \
                 WHERE m.user_id = $1 AND n.owner_id <> $1 \
             ) AS mine \
             WHERE $2::BIGINT IS NULL OR created_at < $2 OR (created_at = $2 AND id < $3) \
             ORDER BY created_at DESC, id DESC LIMIT $4",
            n_cols = prefixed("n", META_COLS),
        );
        let rows = sqlx::query(&sql)
            .bind(user.as_str())
            .bind(after.map(|k| k.created_at_micros))
            .bind(after.map(|k| k.id.to_string()))
            .bind(count_to_db(limit))
            .fetch_all(&self.pool)
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
        let (version, owner) = lock_notebook(&mut tx, &nid)
            .await?
            .ok_or(ApplyError::NotebookNotFound)?;
        check_writer(&mut tx, &nid, &owner, author).await?;
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
        // Cells, members and ops go with it (ON DELETE CASCADE), atomically.
        let done = sqlx::query("DELETE FROM notebooks WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn members(&self, id: NotebookId) -> Result<Vec<(UserId, Role)>, StoreError> {
        let nid = id.to_string();
        let mut tx = self.begin_read().await?;
        let owner: Option<String> =
            sqlx::query_scalar("SELECT owner_id FROM notebooks WHERE id = $1")
                .bind(&nid)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(owner) = owner else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT user_id, role FROM members WHERE notebook_id = $1 ORDER BY user_id",
        )
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
        // KEY SHARE: the notebook cannot be deleted before this commits.
        let owner: String =
            sqlx::query_scalar("SELECT owner_id FROM notebooks WHERE id = $1 FOR KEY SHARE")
                .bind(&nid)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotebookNotFound)?;
        if owner == user.as_str() {
            return Err(StoreError::Invalid("the owner cannot also be a member"));
        }
        sqlx::query(
            "INSERT INTO members (notebook_id, user_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (notebook_id, user_id) DO UPDATE SET role = EXCLUDED.role",
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
        let done = sqlx::query("DELETE FROM members WHERE notebook_id = $1 AND user_id = $2")
            .bind(id.to_string())
            .bind(user.as_str())
            .execute(&self.pool)
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
        let current: Option<i64> =
            sqlx::query_scalar("SELECT version FROM notebooks WHERE id = $1")
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
            "SELECT version, author, op, at FROM ops WHERE notebook_id = $1 AND version > $2 \
             ORDER BY version LIMIT $3",
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
        // RETURNING: exactly the notebooks deleted, even if one was created
        // concurrently. Their cells, members and ops cascade.
        let mut ids: Vec<String> =
            sqlx::query_scalar("DELETE FROM notebooks WHERE owner_id = $1 RETURNING id")
                .bind(user.as_str())
                .fetch_all(&mut *tx)
                .await?;
        sqlx::query("DELETE FROM members WHERE user_id = $1")
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        ids.sort_unstable();
        ids.iter()
            .map(|s| s.parse().map_err(|_| corrupt("notebooks.id")))
            .collect()
    }

    async fn webhook_seen(&self, id: &str) -> Result<bool, StoreError> {
        let found: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = $1)")
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
        Ok(found)
    }

    async fn record_webhook(&self, id: &str) -> Result<(), StoreError> {
        let now = Utc::now().timestamp_micros();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, received_at) VALUES ($1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < $1")
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
    fn counts_saturate() {
        assert_eq!(count_to_db(3), 3);
        assert_eq!(count_to_db(usize::MAX), i64::MAX);
    }

    #[tokio::test]
    async fn bad_urls_are_invalid() {
        for url in ["mysql://u@h/db", "postgres://u@h:notaport/db"] {
            let res = PostgresStore::connect(url, StoreOptions::default()).await;
            assert!(matches!(res, Err(StoreError::Invalid(_))), "{url}: {res:?}");
        }
    }
}
