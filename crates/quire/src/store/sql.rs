//! The SQL [`Store`], written once for SQLite and PostgreSQL:
//! [`SqlStore<B>`] holds every statement and the `Store` implementation, and
//! a [`Backend`] (`super::sqlite`, `super::postgres`) supplies only what
//! really differs between the databases: pools and how transactions begin
//! (SQLite's `BEGIN IMMEDIATE` on one writer connection, PostgreSQL's
//! isolation levels), the row locks at the start of `apply` and
//! `set_member`, the column type of titles and sources (TEXT vs UTF-8
//! BYTEA), batch cell inserts, and deletes (by hand vs ON DELETE CASCADE).
//! Both databases accept `$n` placeholders, so the SQL text is shared
//! verbatim.
//!
//! sqlx types each query by its database; code generic over
//! `sqlx::Database` states what it needs of that database (an executor for a
//! connection, encoders and decoders for the few Rust types bound and read)
//! as a `where` clause. Rust does not carry such clauses from a trait to its
//! users, so the same list is written on the two `impl` blocks below (the
//! helpers and the `Store` implementation).

use std::collections::HashSet;
use std::future::Future;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row as _, Transaction,
    Type,
};
use uuid::Uuid;

use super::{Access, ApplyError, Listed, PageKey, Store, StoreError, StoreOptions};
use crate::notebook::model::{
    Cell, CellId, Limits, Notebook, NotebookId, NotebookMeta, Role, UserId,
};
use crate::notebook::ops::{self, AppliedOp, Committed, NewCell, Op, OpError};

/// Columns of `notebooks` read into a `NotebookMeta` (see `meta_from_row`).
const META_COLS: &str = "id, title, owner_id, created_at, updated_at, version, epoch, metadata";
/// Columns of `cells` read into a [`Cell`].
const CELL_COLS: &str =
    "id, cell_type, source, metadata, outputs, execution_count, attachments, version";

/// A value that should have been valid when it was written.
pub(super) fn corrupt(what: impl Into<String>) -> StoreError {
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

fn json_map(text: &str, col: &str) -> Result<Map<String, Value>, StoreError> {
    serde_json::from_str(text).map_err(|_| corrupt(format!("JSON object in column {col}")))
}

pub(super) fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
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

/// The connection type of a backend.
pub type Conn<B> = <<B as Backend>::Db as Database>::Connection;
/// The row type of a backend.
pub type Row<B> = <<B as Backend>::Db as Database>::Row;
/// A write or read transaction of a backend.
pub type Tx<B> = Transaction<'static, <B as Backend>::Db>;

/// What differs between the SQL databases; [`SqlStore`] does the rest.
pub trait Backend: Send + Sync + 'static {
    /// The sqlx database.
    type Db: Database;
    /// A title or source as bound to its column.
    type Text<'a>: Encode<'a, Self::Db> + Type<Self::Db> + Send + 'a;

    /// Reads `version, owner_id` of notebook `$1` at the start of `apply`,
    /// with whatever row lock keeps other writers of the notebook out.
    const SELECT_FOR_APPLY: &'static str;
    /// Reads `owner_id` of notebook `$1` in `set_member`, locked so the
    /// notebook cannot be deleted before the member row commits.
    const SELECT_OWNER_FOR_MEMBER: &'static str;

    /// Starts a write transaction.
    fn begin_write(&self) -> impl Future<Output = Result<Tx<Self>, sqlx::Error>> + Send;
    /// Starts a read transaction: one consistent snapshot for several queries.
    fn begin_read(&self) -> impl Future<Output = Result<Tx<Self>, sqlx::Error>> + Send;
    /// The pool for single-statement reads.
    fn reader(&self) -> &Pool<Self::Db>;
    /// The pool for single-statement writes.
    fn writer(&self) -> &Pool<Self::Db>;

    /// A title or source read from column `col`.
    fn text_col(row: &Row<Self>, col: &str) -> Result<String, StoreError>;
    /// A title or source to bind.
    fn text_arg(text: &str) -> Self::Text<'_>;

    /// Inserts `cells` at positions `first, first + 1, ...`.
    fn insert_cells(
        conn: &mut Conn<Self>,
        nid: &str,
        cells: &[Cell],
        first: i64,
    ) -> impl Future<Output = Result<(), ApplyError>> + Send;
    /// Deletes notebook `nid` with its cells, members and ops; `false` if it
    /// did not exist.
    fn delete_notebook_rows(
        conn: &mut Conn<Self>,
        nid: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Deletes the notebooks `user` owns with their cells, members and ops;
    /// returns the ids deleted.
    fn delete_owned_notebooks(
        conn: &mut Conn<Self>,
        user: &UserId,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}

/// A [`Store`] on a SQL database; `SqliteStore` and `PostgresStore` are this
/// with their backend.
#[derive(Debug, Clone)]
pub struct SqlStore<B> {
    pub(super) backend: B,
    pub(super) opts: StoreOptions,
}

impl<B: Backend> SqlStore<B> {
    /// The options this store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }

    /// Closes the pools (for an ordered shutdown); later calls fail.
    pub async fn close(&self) {
        self.backend.writer().close().await;
        self.backend.reader().close().await;
    }
}

/// The statements, over one connection or transaction.
impl<B: Backend> SqlStore<B>
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = B::Db>,
    for<'q> <B::Db as Database>::Arguments<'q>: IntoArguments<'q, B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<i64>: Encode<'q, B::Db>,
    for<'q> String: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<String>: Encode<'q, B::Db>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> bool: Decode<'q, B::Db> + Type<B::Db>,
    for<'a> &'a str: ColumnIndex<Row<B>>,
    usize: ColumnIndex<Row<B>>,
{
    // -----------------------------------------------------------------
    // Reading rows

    fn time_col(row: &Row<B>, col: &str) -> Result<DateTime<Utc>, StoreError> {
        let micros: i64 = row.try_get(col)?;
        from_micros(micros).ok_or_else(|| corrupt(format!("timestamp in column {col}")))
    }

    fn parse_col<T: std::str::FromStr>(row: &Row<B>, col: &str) -> Result<T, StoreError> {
        let text: String = row.try_get(col)?;
        text.parse()
            .map_err(|_| corrupt(format!("value in column {col}")))
    }

    fn meta_from_row(row: &Row<B>) -> Result<NotebookMeta, StoreError> {
        let metadata: String = row.try_get("metadata")?;
        Ok(NotebookMeta {
            id: Self::parse_col(row, "id")?,
            title: B::text_col(row, "title")?,
            owner_id: Self::parse_col(row, "owner_id")?,
            created_at: Self::time_col(row, "created_at")?,
            updated_at: Self::time_col(row, "updated_at")?,
            version: row.try_get("version")?,
            epoch: row.try_get("epoch")?,
            metadata: json_map(&metadata, "notebooks.metadata")?,
        })
    }

    fn cell_from_row(row: &Row<B>) -> Result<Cell, StoreError> {
        let metadata: String = row.try_get("metadata")?;
        let outputs: String = row.try_get("outputs")?;
        let attachments: Option<String> = row.try_get("attachments")?;
        let attachments = attachments
            .map(|a| serde_json::from_str(&a).map_err(|_| corrupt("cells.attachments")))
            .transpose()?;
        let mut cell = Cell {
            id: Self::parse_col(row, "id")?,
            cell_type: Self::parse_col(row, "cell_type")?,
            source: B::text_col(row, "source")?,
            metadata: json_map(&metadata, "cells.metadata")?,
            outputs: serde_json::from_str(&outputs).map_err(|_| corrupt("cells.outputs"))?,
            execution_count: row.try_get("execution_count")?,
            attachments,
            version: row.try_get("version")?,
        };
        cell.normalize();
        Ok(cell)
    }

    fn committed_from_row(id: NotebookId, row: &Row<B>) -> Result<Committed, StoreError> {
        let op_text: String = row.try_get("op")?;
        let op: AppliedOp = serde_json::from_str(&op_text).map_err(|_| corrupt("ops.op"))?;
        let cell = match &op {
            AppliedOp::CellInsert { cell, .. } => Some(cell.clone()),
            _ => None,
        };
        Ok(Committed {
            notebook_id: id,
            version: row.try_get("version")?,
            author: Self::parse_col(row, "author")?,
            op,
            cell,
            at: Self::time_col(row, "at")?,
        })
    }

    // -----------------------------------------------------------------
    // Queries shared by several operations (inside a transaction)

    async fn load_meta(conn: &mut Conn<B>, nid: &str) -> Result<Option<NotebookMeta>, StoreError> {
        let sql = format!("SELECT {META_COLS} FROM notebooks WHERE id = $1");
        let row = sqlx::query(&sql).bind(nid).fetch_optional(conn).await?;
        row.as_ref().map(Self::meta_from_row).transpose()
    }

    async fn load_cells(conn: &mut Conn<B>, nid: &str) -> Result<Vec<Cell>, StoreError> {
        let sql = format!("SELECT {CELL_COLS} FROM cells WHERE notebook_id = $1 ORDER BY position");
        let rows = sqlx::query(&sql).bind(nid).fetch_all(conn).await?;
        rows.iter().map(Self::cell_from_row).collect()
    }

    async fn load_cell(
        conn: &mut Conn<B>,
        nid: &str,
        cell_id: &CellId,
    ) -> Result<Option<Cell>, StoreError> {
        let sql = format!("SELECT {CELL_COLS} FROM cells WHERE notebook_id = $1 AND id = $2");
        let row = sqlx::query(&sql)
            .bind(nid)
            .bind(cell_id.as_str())
            .fetch_optional(conn)
            .await?;
        row.as_ref().map(Self::cell_from_row).transpose()
    }

    async fn cell_count(conn: &mut Conn<B>, nid: &str) -> Result<usize, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cells WHERE notebook_id = $1")
            .bind(nid)
            .fetch_one(conn)
            .await?;
        index_from_db(n)
    }

    async fn cell_position(
        conn: &mut Conn<B>,
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

    /// Adds `delta` to the position of every cell whose position is in
    /// `from..=to` (uniqueness of positions is only checked at commit).
    async fn shift_positions(
        conn: &mut Conn<B>,
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

    /// Checks that `author` (or `via`, their organization) may write a
    /// notebook owned by `owner`.
    async fn check_writer(
        conn: &mut Conn<B>,
        nid: &str,
        owner: &str,
        author: &UserId,
        via: Option<&UserId>,
    ) -> Result<(), ApplyError> {
        if owner == author.as_str() {
            return Ok(());
        }
        let roles: Vec<String> = sqlx::query_scalar(
            "SELECT role FROM members WHERE notebook_id = $1 AND (user_id = $2 OR user_id = $3)",
        )
        .bind(nid)
        .bind(author.as_str())
        .bind(via.map(|v| v.as_str().to_owned()))
        .fetch_all(conn)
        .await?;
        let mut may_write = false;
        for role in roles {
            let role: Role = role.parse().map_err(|_| corrupt("members.role"))?;
            may_write |= role.can_write();
        }
        if may_write {
            Ok(())
        } else {
            Err(ApplyError::Forbidden)
        }
    }

    fn role_col(row: &Row<B>, col: &str) -> Result<Option<Role>, StoreError> {
        let role: Option<String> = row.try_get(col)?;
        role.map(|r| {
            r.parse()
                .map_err(|_| corrupt(format!("role in column {col}")))
        })
        .transpose()
    }

    async fn insert_notebook_row(
        conn: &mut Conn<B>,
        meta: &NotebookMeta,
        micros: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO notebooks (id, title, owner_id, created_at, updated_at, version, \
                 epoch, metadata) VALUES ($1, $2, $3, $4, $4, 0, $5, $6)",
        )
        .bind(meta.id.to_string())
        .bind(B::text_arg(&meta.title))
        .bind(meta.owner_id.as_str())
        .bind(micros)
        .bind(&meta.epoch)
        .bind(to_json(&meta.metadata)?)
        .execute(conn)
        .await?;
        Ok(())
    }

    // -----------------------------------------------------------------
    // Applying each op kind (inside apply's transaction)

    /// Applies `op` to the rows; returns what committed and the resulting cell.
    async fn apply_op(
        conn: &mut Conn<B>,
        nid: &str,
        op: Op,
        limits: &Limits,
    ) -> Result<(AppliedOp, Option<Cell>), ApplyError> {
        match op {
            Op::CellInsert { index, cell } => {
                Self::apply_insert(conn, nid, index, cell, limits).await
            }
            Op::CellUpdate {
                cell_id,
                base_version,
                source,
                cell_type,
                metadata,
            } => {
                let current = Self::load_cell(conn, nid, &cell_id)
                    .await?
                    .ok_or(OpError::CellNotFound)?;
                let (cell, applied) =
                    ops::update_cell(&current, base_version, source, cell_type, metadata)?;
                Self::write_cell_update(conn, nid, &cell).await?;
                Ok((applied, Some(cell)))
            }
            Op::CellDelete { cell_id } => Self::apply_delete(conn, nid, cell_id).await,
            Op::CellMove { cell_id, index } => Self::apply_move(conn, nid, cell_id, index).await,
            Op::NotebookRename { title } => {
                sqlx::query("UPDATE notebooks SET title = $1 WHERE id = $2")
                    .bind(B::text_arg(&title))
                    .bind(nid)
                    .execute(conn)
                    .await?;
                Ok((AppliedOp::NotebookRename { title }, None))
            }
        }
    }

    async fn apply_insert(
        conn: &mut Conn<B>,
        nid: &str,
        index: Option<usize>,
        new: NewCell,
        limits: &Limits,
    ) -> Result<(AppliedOp, Option<Cell>), ApplyError> {
        let len = Self::cell_count(conn, nid).await?;
        let index = ops::insert_index(index, len, limits)?;
        let cell = new.into_cell();
        if Self::cell_position(conn, nid, &cell.id).await?.is_some() {
            return Err(OpError::DuplicateCellId.into());
        }
        let pos = index_to_db(index)?;
        Self::shift_positions(conn, nid, pos, i64::MAX, 1).await?;
        B::insert_cells(conn, nid, std::slice::from_ref(&cell), pos).await?;
        let applied = AppliedOp::CellInsert {
            index,
            cell: cell.clone(),
        };
        Ok((applied, Some(cell)))
    }

    async fn write_cell_update(
        conn: &mut Conn<B>,
        nid: &str,
        cell: &Cell,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE cells SET cell_type = $1, source = $2, metadata = $3, outputs = $4, \
                 execution_count = $5, version = $6 WHERE notebook_id = $7 AND id = $8",
        )
        .bind(cell.cell_type.as_str())
        .bind(B::text_arg(&cell.source))
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
        conn: &mut Conn<B>,
        nid: &str,
        cell_id: CellId,
    ) -> Result<(AppliedOp, Option<Cell>), ApplyError> {
        let pos = Self::cell_position(conn, nid, &cell_id)
            .await?
            .ok_or(OpError::CellNotFound)?;
        sqlx::query("DELETE FROM cells WHERE notebook_id = $1 AND id = $2")
            .bind(nid)
            .bind(cell_id.as_str())
            .execute(&mut *conn)
            .await?;
        Self::shift_positions(conn, nid, index_to_db(pos)? + 1, i64::MAX, -1).await?;
        Ok((AppliedOp::CellDelete { cell_id }, None))
    }

    async fn apply_move(
        conn: &mut Conn<B>,
        nid: &str,
        cell_id: CellId,
        index: usize,
    ) -> Result<(AppliedOp, Option<Cell>), ApplyError> {
        let from = Self::cell_position(conn, nid, &cell_id)
            .await?
            .ok_or(OpError::CellNotFound)?;
        let len = Self::cell_count(conn, nid).await?;
        let to = ops::move_index(index, len)?;
        let (from_db, to_db) = (index_to_db(from)?, index_to_db(to)?);
        if to < from {
            Self::shift_positions(conn, nid, to_db, from_db - 1, 1).await?;
        } else if to > from {
            Self::shift_positions(conn, nid, from_db + 1, to_db, -1).await?;
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
        conn: &mut Conn<B>,
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
            "INSERT INTO ops (notebook_id, version, author, op, at) \
                 VALUES ($1, $2, $3, $4, $5)",
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
}

#[async_trait]
impl<B: Backend> Store for SqlStore<B>
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = B::Db>,
    for<'q> <B::Db as Database>::Arguments<'q>: IntoArguments<'q, B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<i64>: Encode<'q, B::Db>,
    for<'q> String: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<String>: Encode<'q, B::Db>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> bool: Decode<'q, B::Db> + Type<B::Db>,
    for<'a> &'a str: ColumnIndex<Row<B>>,
    usize: ColumnIndex<Row<B>>,
{
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(self.backend.reader())
            .await?;
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
        let mut tx = self.backend.begin_write().await?;
        Self::insert_notebook_row(&mut tx, &meta, micros).await?;
        B::insert_cells(&mut tx, &meta.id.to_string(), &cells, 0).await?;
        tx.commit().await?;
        Ok(Notebook { meta, cells })
    }

    async fn notebook(&self, id: NotebookId) -> Result<Option<Notebook>, StoreError> {
        let nid = id.to_string();
        let mut tx = self.backend.begin_read().await?;
        let Some(meta) = Self::load_meta(&mut tx, &nid).await? else {
            return Ok(None);
        };
        let cells = Self::load_cells(&mut tx, &nid).await?;
        tx.commit().await?;
        Ok(Some(Notebook { meta, cells }))
    }

    async fn notebook_meta(&self, id: NotebookId) -> Result<Option<NotebookMeta>, StoreError> {
        let mut conn = self.backend.reader().acquire().await?;
        Self::load_meta(&mut conn, &id.to_string()).await
    }

    async fn role_of(&self, id: NotebookId, user: &UserId) -> Result<Access, StoreError> {
        let row = sqlx::query(
            "SELECT n.owner_id AS owner_id, m.role AS role FROM notebooks n \
                 LEFT JOIN members m ON m.notebook_id = n.id AND m.user_id = $1 \
                 WHERE n.id = $2",
        )
        .bind(user.as_str())
        .bind(id.to_string())
        .fetch_optional(self.backend.reader())
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
                 WHERE CAST($2 AS BIGINT) IS NULL OR created_at < $2 \
                   OR (created_at = $2 AND id < $3) \
                 ORDER BY created_at DESC, id DESC LIMIT $4",
            n_cols = prefixed("n", META_COLS),
        );
        let rows = sqlx::query(&sql)
            .bind(user.as_str())
            .bind(after.map(|k| k.created_at_micros))
            .bind(after.map(|k| k.id.to_string()))
            .bind(count_to_db(limit))
            .fetch_all(self.backend.reader())
            .await?;
        rows.iter()
            .map(|row| Ok((Self::meta_from_row(row)?, Self::parse_col(row, "role")?)))
            .collect()
    }

    async fn list_for_member(
        &self,
        user: &UserId,
        org: Option<&UserId>,
        limit: usize,
        after: Option<PageKey>,
    ) -> Result<Vec<Listed>, StoreError> {
        // The ids come from the indexed owner and member columns; the two
        // LEFT JOINs then read each id's role on the notebooks found.
        let sql = format!(
            "SELECT {n_cols}, mu.role AS own_role, mo.role AS org_role FROM notebooks n \
                 LEFT JOIN members mu ON mu.notebook_id = n.id AND mu.user_id = $1 \
                 LEFT JOIN members mo ON mo.notebook_id = n.id AND mo.user_id = $5 \
                 WHERE n.id IN ( \
                   SELECT id FROM notebooks WHERE owner_id = $1 \
                   UNION SELECT notebook_id FROM members WHERE user_id = $1 OR user_id = $5 \
                 ) AND (CAST($2 AS BIGINT) IS NULL OR n.created_at < $2 \
                   OR (n.created_at = $2 AND n.id < $3)) \
                 ORDER BY n.created_at DESC, n.id DESC LIMIT $4",
            n_cols = prefixed("n", META_COLS),
        );
        let rows = sqlx::query(&sql)
            .bind(user.as_str())
            .bind(after.map(|k| k.created_at_micros))
            .bind(after.map(|k| k.id.to_string()))
            .bind(count_to_db(limit))
            .bind(org.map(|o| o.as_str().to_owned()))
            .fetch_all(self.backend.reader())
            .await?;
        rows.iter()
            .map(|row| {
                let meta = Self::meta_from_row(row)?;
                let own = if meta.owner_id == *user {
                    Some(Role::Owner)
                } else {
                    Self::role_col(row, "own_role")?
                };
                let org = Self::role_col(row, "org_role")?;
                Ok(Listed { meta, own, org })
            })
            .collect()
    }

    async fn apply_via(
        &self,
        id: NotebookId,
        author: &UserId,
        via: Option<&UserId>,
        op: Op,
        expect_version: Option<i64>,
    ) -> Result<Committed, ApplyError> {
        ops::validate(&op, &self.opts.limits)?;
        let nid = id.to_string();
        let mut tx = self.backend.begin_write().await?;
        let row = sqlx::query(B::SELECT_FOR_APPLY)
            .bind(&nid)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(ApplyError::NotebookNotFound)?;
        let version: i64 = row.try_get("version")?;
        let owner: String = row.try_get("owner_id")?;
        Self::check_writer(&mut tx, &nid, &owner, author, via).await?;
        if let Some(expected) = expect_version {
            if expected != version {
                return Err(ApplyError::VersionMismatch { current: version });
            }
        }
        let (applied, cell) = Self::apply_op(&mut tx, &nid, op, &self.opts.limits).await?;
        let (micros, at) = now();
        let new_version = version + 1;
        Self::record_op(
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
        let mut tx = self.backend.begin_write().await?;
        let deleted = B::delete_notebook_rows(&mut tx, &id.to_string()).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn members(&self, id: NotebookId) -> Result<Vec<(UserId, Role)>, StoreError> {
        let nid = id.to_string();
        let mut tx = self.backend.begin_read().await?;
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
            out.push((
                Self::parse_col(row, "user_id")?,
                Self::parse_col(row, "role")?,
            ));
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
        let mut tx = self.backend.begin_write().await?;
        let owner: String = sqlx::query_scalar(B::SELECT_OWNER_FOR_MEMBER)
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
        // RETURNING rather than rows_affected(), which sqlx has per database
        // only; (notebook_id, user_id) is the key, so at most one row.
        let removed: Option<String> = sqlx::query_scalar(
            "DELETE FROM members WHERE notebook_id = $1 AND user_id = $2 RETURNING user_id",
        )
        .bind(id.to_string())
        .bind(user.as_str())
        .fetch_optional(self.backend.writer())
        .await?;
        Ok(removed.is_some())
    }

    async fn ops_since(
        &self,
        id: NotebookId,
        after_version: i64,
        max: usize,
    ) -> Result<Option<Vec<Committed>>, StoreError> {
        let nid = id.to_string();
        let mut tx = self.backend.begin_read().await?;
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
            "SELECT version, author, op, at FROM ops \
                 WHERE notebook_id = $1 AND version > $2 ORDER BY version LIMIT $3",
        )
        .bind(&nid)
        .bind(after_version)
        .bind(missing)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let log = rows
            .iter()
            .map(|row| Self::committed_from_row(id, row))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(is_contiguous(&log, after_version, current).then_some(log))
    }

    async fn delete_user(&self, user: &UserId) -> Result<Vec<NotebookId>, StoreError> {
        let mut tx = self.backend.begin_write().await?;
        let mut ids = B::delete_owned_notebooks(&mut tx, user).await?;
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

    async fn remove_member_everywhere(
        &self,
        member: &UserId,
    ) -> Result<Vec<NotebookId>, StoreError> {
        let mut ids: Vec<String> =
            sqlx::query_scalar("DELETE FROM members WHERE user_id = $1 RETURNING notebook_id")
                .bind(member.as_str())
                .fetch_all(self.backend.writer())
                .await?;
        ids.sort_unstable();
        ids.iter()
            .map(|s| s.parse().map_err(|_| corrupt("members.notebook_id")))
            .collect()
    }

    async fn webhook_seen(&self, id: &str) -> Result<bool, StoreError> {
        let found: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = $1)")
                .bind(id)
                .fetch_one(self.backend.reader())
                .await?;
        Ok(found)
    }

    async fn record_webhook(&self, id: &str) -> Result<(), StoreError> {
        let (micros, _) = now();
        let mut tx = self.backend.begin_write().await?;
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, received_at) VALUES ($1, $2) \
                 ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(micros)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < $1")
            .bind(micros - crate::store::WEBHOOK_ID_RETENTION_MICROS)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
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
}
