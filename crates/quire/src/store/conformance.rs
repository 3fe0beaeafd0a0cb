//! The store conformance suite: the behaviour every [`Store`] must have,
//! written once and run against each implementation (SQLite in
//! `tests/store_sqlite.rs`, PostgreSQL).
//!
//! Behind the `test-support` feature (never in the server binary) rather than
//! `cfg(test)`, so the integration tests of every backend can call
//! [`run_all`]; quire's dev-dependency on itself turns the feature on for
//! `cargo test`. It panics on the first failed expectation, after printing the
//! name of the case to stderr.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{json, Map};

use super::{Access, ApplyError, Listed, PageKey, Store, StoreError, StoreOptions};
use crate::notebook::model::{
    Cell, CellId, CellType, Limits, Notebook, NotebookId, NotebookMeta, Role, UserId,
};
use crate::notebook::ops::{AppliedOp, Committed, NewCell, Op, OpError};

/// A boxed store factory, so the cases need no generic bounds.
type Make<'a> = &'a dyn Fn(StoreOptions) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + 'a>>;

/// Runs every case. `make(options)` must return a fresh, empty store opened
/// with those options (a new database per call); most cases pass
/// `StoreOptions::default()`, the limit and op-log cases pass small values.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn(StoreOptions) -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let boxed = |opts: StoreOptions| -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + '_>> {
        Box::pin(make(opts))
    };
    let make: Make<'_> = &boxed;

    macro_rules! cases {
        ($($case:ident),* $(,)?) => {
            $(
                eprintln!("store conformance: {}", stringify!($case));
                $case(make).await;
            )*
        };
    }

    cases!(
        ping_works,
        create_and_get_round_trip,
        create_starts_at_version_zero_with_fresh_epoch,
        create_rejects_invalid_input,
        missing_notebook_reads_as_none,
        insert_positions_and_versions,
        insert_duplicate_id_conflicts,
        insert_out_of_range,
        insert_respects_max_cells,
        cell_ids_are_per_notebook,
        update_fields_and_versions,
        update_stale_base_version_conflicts,
        update_cell_type_resets_outputs,
        update_unknown_cell,
        delete_cell_keeps_order_dense,
        move_cell_positions_and_versions,
        move_out_of_range,
        rename_notebook,
        op_limits_enforced,
        forbidden_authors,
        missing_notebook_apply,
        expect_version_checked,
        role_of_cases,
        list_pagination,
        members_order_and_upsert,
        set_member_rejects_owner,
        delete_notebook_removes_everything,
        ops_since_returns_committed_ops,
        ops_since_bounds,
        ops_since_after_pruning,
        delete_user_removes_owned_and_memberships,
        concurrent_applies_get_distinct_versions,
        webhook_ids_remembered,
        list_for_member_includes_the_org_once,
        apply_via_lets_an_org_editor_write,
        remove_member_everywhere_returns_its_notebooks,
    );
}

// ---------------------------------------------------------------------------
// Helpers

fn user(s: &str) -> UserId {
    UserId::parse(s).expect("valid test user id")
}

fn cid(s: &str) -> CellId {
    CellId::parse(s).expect("valid test cell id")
}

async fn fresh(make: Make<'_>) -> Arc<dyn Store> {
    make(StoreOptions::default()).await
}

async fn with_limits(make: Make<'_>, limits: Limits) -> Arc<dyn Store> {
    make(StoreOptions {
        limits,
        ..StoreOptions::default()
    })
    .await
}

/// A notebook owned by `owner` with code cells "a", "b", "c".
async fn abc(store: &dyn Store, owner: &UserId) -> Notebook {
    let cells = ["a", "b", "c"]
        .into_iter()
        .map(|id| NewCell::new(CellType::Code, format!("src {id}")).with_id(cid(id)))
        .collect();
    store
        .create_notebook(owner, "abc", Map::new(), cells)
        .await
        .expect("create abc")
}

async fn get(store: &dyn Store, id: NotebookId) -> Notebook {
    store
        .notebook(id)
        .await
        .expect("notebook()")
        .expect("notebook exists")
}

fn ids(nb: &Notebook) -> Vec<&str> {
    nb.cells.iter().map(|c| c.id.as_str()).collect()
}

async fn apply_ok(store: &dyn Store, id: NotebookId, author: &UserId, op: Op) -> Committed {
    match store.apply(id, author, op.clone(), None).await {
        Ok(c) => c,
        Err(e) => panic!("apply {op:?} failed: {e:?}"),
    }
}

fn insert(index: Option<usize>, id: Option<&str>, source: &str) -> Op {
    let mut cell = NewCell::new(CellType::Code, source);
    cell.id = id.map(cid);
    Op::CellInsert { index, cell }
}

fn update_source(cell_id: &str, base_version: Option<i64>, source: &str) -> Op {
    Op::CellUpdate {
        cell_id: cid(cell_id),
        base_version,
        source: Some(source.into()),
        cell_type: None,
        metadata: None,
    }
}

fn move_op(cell_id: &str, index: usize) -> Op {
    Op::CellMove {
        cell_id: cid(cell_id),
        index,
    }
}

/// Applies `op`, expects it refused with `want`, and expects nothing changed.
async fn expect_op_error(
    store: &dyn Store,
    id: NotebookId,
    author: &UserId,
    op: Op,
    want: OpError,
) {
    let before = get(store, id).await;
    match store.apply(id, author, op.clone(), None).await {
        Err(ApplyError::Op(got)) => assert_eq!(got, want, "wrong error for {op:?}"),
        other => panic!("expected {want:?} for {op:?}, got {other:?}"),
    }
    assert_eq!(
        get(store, id).await,
        before,
        "a refused op changed the notebook"
    );
}

/// Expects `apply` refused with a non-op error matching `check`, nothing changed.
async fn expect_apply_error(
    store: &dyn Store,
    id: NotebookId,
    author: &UserId,
    expect_version: Option<i64>,
    check: impl Fn(&ApplyError) -> bool,
) {
    let before = store.notebook(id).await.expect("notebook()");
    let res = store
        .apply(
            id,
            author,
            update_source("a", None, "changed"),
            expect_version,
        )
        .await;
    match res {
        Err(e) if check(&e) => {}
        other => panic!("unexpected apply result: {other:?}"),
    }
    assert_eq!(store.notebook(id).await.expect("notebook()"), before);
}

fn cell_version(nb: &Notebook, id: &str) -> i64 {
    nb.cells
        .iter()
        .find(|c| c.id.as_str() == id)
        .map(|c| c.version)
        .expect("cell present")
}

// ---------------------------------------------------------------------------
// Cases: creating and reading

async fn ping_works(make: Make<'_>) {
    fresh(make).await.ping().await.expect("ping");
}

async fn create_and_get_round_trip(make: Make<'_>) {
    let store = fresh(make).await;
    let owner = user("user_owner");
    let mut top = Map::new();
    top.insert(
        "kernelspec".into(),
        json!({"name": "python3", "display_name": "Python 3"}),
    );
    top.insert("title".into(), json!("ünïcødé"));
    let mut code = NewCell::new(CellType::Code, "print('hi')\n").with_id(cid("first-cell_1"));
    code.metadata.insert("tags".into(), json!(["x"]));
    code.outputs = vec![json!({"output_type": "stream", "name": "stdout", "text": ["hi\n"]})];
    code.execution_count = Some(7);
    let mut md = NewCell::new(CellType::Markdown, "# Title ✓");
    md.attachments = Some(json!({"img.png": {"image/png": "iVBORw0KGgo="}}));
    let raw = NewCell::new(CellType::Raw, "");

    let created = store
        .create_notebook(&owner, "My notebook", top.clone(), vec![code, md, raw])
        .await
        .expect("create");
    assert_eq!(created.meta.title, "My notebook");
    assert_eq!(created.meta.owner_id, owner);
    assert_eq!(created.meta.metadata, top);
    assert_eq!(created.cells.len(), 3);
    let c0 = &created.cells[0];
    assert_eq!(c0.id, cid("first-cell_1"));
    assert_eq!(c0.execution_count, Some(7));
    assert_eq!(c0.outputs.len(), 1);
    assert_eq!(c0.metadata.get("tags"), Some(&json!(["x"])));
    assert!(created.cells.iter().all(|c| c.version == 1));
    assert_eq!(
        created.cells[1].attachments,
        Some(json!({"img.png": {"image/png": "iVBORw0KGgo="}}))
    );
    let generated = created.cells[2].id.as_str();
    assert_eq!(generated.len(), 32, "generated ids are 32 hex chars");
    assert_ne!(created.cells[1].id, created.cells[2].id);

    let got = get(&*store, created.meta.id).await;
    assert_eq!(
        got, created,
        "notebook() returns exactly what create returned"
    );
    let meta = store.notebook_meta(created.meta.id).await.expect("meta");
    assert_eq!(meta.as_ref(), Some(&created.meta));
}

async fn create_starts_at_version_zero_with_fresh_epoch(make: Make<'_>) {
    let store = fresh(make).await;
    let owner = user("u1");
    let a = store
        .create_notebook(&owner, "a", Map::new(), vec![])
        .await
        .expect("create a");
    let b = store
        .create_notebook(&owner, "b", Map::new(), vec![])
        .await
        .expect("create b");
    assert_eq!(a.meta.version, 0);
    assert!(a.cells.is_empty());
    assert_eq!(a.meta.created_at, a.meta.updated_at);
    assert!(!a.meta.epoch.is_empty());
    assert_ne!(
        a.meta.epoch, b.meta.epoch,
        "each notebook gets its own epoch"
    );
    assert_ne!(a.meta.id, b.meta.id);
    assert!(b.meta.created_at >= a.meta.created_at);
}

async fn create_rejects_invalid_input(make: Make<'_>) {
    let limits = Limits {
        max_title_chars: 5,
        max_source_bytes: 4,
        max_cells: 2,
    };
    let store = with_limits(make, limits).await;
    let owner = user("u1");
    let code = |s: &str| NewCell::new(CellType::Code, s);
    let cases: Vec<(&str, Vec<NewCell>, OpError)> = vec![
        ("   ", vec![], OpError::Invalid("title must not be empty")),
        ("toolong", vec![], OpError::TitleTooLong),
        ("ok", vec![code("12345")], OpError::SourceTooLarge),
        (
            "ok",
            vec![code(""), code(""), code("")],
            OpError::TooManyCells,
        ),
        (
            "ok",
            vec![code("").with_id(cid("x")), code("").with_id(cid("x"))],
            OpError::DuplicateCellId,
        ),
    ];
    for (title, cells, want) in cases {
        match store
            .create_notebook(&owner, title, Map::new(), cells)
            .await
        {
            Err(ApplyError::Op(got)) => match (&got, &want) {
                (OpError::Invalid(_), OpError::Invalid(_)) => {}
                _ => assert_eq!(got, want),
            },
            other => panic!("expected {want:?}, got {other:?}"),
        }
    }
    let listed = store.list_for_user(&owner, 10, None).await.expect("list");
    assert!(listed.is_empty(), "refused creates left notebooks behind");
    // Exactly at the limits is fine.
    store
        .create_notebook(&owner, "ééééé", Map::new(), vec![code("éé"), code("1234")])
        .await
        .expect("create at the limits");
}

async fn missing_notebook_reads_as_none(make: Make<'_>) {
    let store = fresh(make).await;
    let id = NotebookId::new();
    assert_eq!(store.notebook(id).await.expect("notebook"), None);
    assert_eq!(store.notebook_meta(id).await.expect("meta"), None);
    assert!(store.members(id).await.expect("members").is_empty());
}

// ---------------------------------------------------------------------------
// Cases: ops

async fn insert_positions_and_versions(make: Make<'_>) {
    let store = fresh(make).await;
    let owner = user("u1");
    let nb = abc(&*store, &owner).await;
    let id = nb.meta.id;

    let c1 = apply_ok(&*store, id, &owner, insert(None, Some("end"), "e")).await;
    assert_eq!(c1.version, 1);
    assert_eq!(c1.notebook_id, id);
    assert_eq!(c1.author, owner);
    match &c1.op {
        AppliedOp::CellInsert { index, cell } => {
            assert_eq!(*index, 3, "insert without index appends");
            assert_eq!(cell.id, cid("end"));
            assert_eq!(cell.version, 1);
            assert_eq!(cell.source, "e");
        }
        other => panic!("unexpected op {other:?}"),
    }
    assert_eq!(c1.cell.as_ref().map(|c| c.version), Some(1));

    let c2 = apply_ok(&*store, id, &owner, insert(Some(0), Some("head"), "h")).await;
    assert_eq!(c2.version, 2);
    let c3 = apply_ok(&*store, id, &owner, insert(Some(5), Some("tail"), "t")).await;
    assert_eq!(c3.version, 3, "index == len is allowed");
    let c4 = apply_ok(&*store, id, &owner, insert(Some(2), None, "mid")).await;
    let generated = c4.cell.as_ref().expect("inserted cell").id.clone();
    assert_eq!(generated.as_str().len(), 32);

    let got = get(&*store, id).await;
    assert_eq!(got.meta.version, 4);
    assert_eq!(
        ids(&got),
        ["head", "a", generated.as_str(), "b", "c", "end", "tail"]
    );
    assert!(got.meta.updated_at >= got.meta.created_at);
    assert_eq!(
        got.cells[2],
        c4.cell.expect("cell"),
        "stored cell == returned cell"
    );
    for c in ["a", "b", "c"] {
        assert_eq!(
            cell_version(&got, c),
            1,
            "inserts change no other cell's version"
        );
    }
}

async fn insert_duplicate_id_conflicts(make: Make<'_>) {
    let store = fresh(make).await;
    let owner = user("u1");
    let nb = abc(&*store, &owner).await;
    expect_op_error(
        &*store,
        nb.meta.id,
        &owner,
        insert(Some(0), Some("b"), "x"),
        OpError::DuplicateCellId,
    )
    .await;
    assert_eq!(get(&*store, nb.meta.id).await.meta.version, 0);
}

async fn insert_out_of_range(make: Make<'_>) {
    let store = fresh(make).await;
    let owner = user("u1");
    let nb = abc(&*store, &owner).await;
    expect_op_error(
        &*store,
        nb.meta.id,
        &owner,
        insert(Some(4), None, "x"),
        OpError::IndexOutOfRange,
    )
    .await;
    expect_op_error(
        &*store,
        nb.meta.id,
        &owner,
        insert(Some(usize::MAX), None, "x"),
        OpError::IndexOutOfRange,
    )
    .await;
}

async fn insert_respects_max_cells(make: Make<'_>) {
    let limits = Limits {
        max_cells: 4,
        ..Limits::default()
    };
    let store = with_limits(make, limits).await;
    let owner = user("u1");
    let nb = abc(&*store, &owner).await;
    apply_ok(&*store, nb.meta.id, &owner, insert(None, None, "4th")).await;
    expect_op_error(
        &*store,
        nb.meta.id,
        &owner,
        insert(None, None, "5th"),
        OpError::TooManyCells,
    )
    .await;
}

async fn cell_ids_are_per_notebook(make: Make<'_>) {
    let store = fresh(make).await;
    let owner = user("u1");
    let one = abc(&*store, &owner).await;
    let two = abc(&*store, &owner).await;
    apply_ok(
        &*store,
        one.meta.id,
        &owner,
        update_source("a", Some(1), "only one"),
    )
    .await;
    apply_ok(
        &*store,
        two.meta.id,
        &owner,
        Op::CellDelete { cell_id: cid("b") },
    )
    .await;
    let one = get(&*store, one.meta.id).await;
    let two = get(&*store, two.meta.id).await;
    assert_eq!(one.cells[0].source, "only one");
    assert_eq!(two.cells[0].source, "src a");
    assert_eq!(ids(&one), ["a", "b", "c"]);
    assert_eq!(ids(&two), ["a", "c"]);
}

async fn update_fields_and_versions(make: Make<'_>) {
    let store = fresh(make).await;
    let owner = user("u1");
    let nb = abc(&*store, &owner).await;
    let id = nb.meta.id;

    let c = apply_ok(&*store, id, &owner, update_source("b", Some(1), "new b")).await;
    assert_eq!(c.version, 1);
    assert_eq!(
        serde_json::to_value(&c.op).expect("op json"),
        json!({"type": "cell.update", "cell_id": "b", "cell_version": 2, "source": "new b"}),
        "only the changed fields are in the op"
    );
    let cell = c.cell.expect("updated cell");
    assert_eq!((cell.source.as_str(), cell.version), ("new b", 2));

    let mut meta = Map::new();
    meta.insert("collapsed".into(), json!(true));
    let op = Op::CellUpdate {
        cell_id: cid("b"),
        base_version: None,
        source: None,
        cell_type: None,
        metadata: Some(meta.clone()),
    };
    let c = apply_ok(&*store, id, &owner, op).await;
    assert_eq!(c.version, 2);
    let mut other = Map::new();
    other.insert("tags".into(), json!([]));
    let op = Op::CellUpdate {
        cell_id: cid("b"),
        base_version: Some(3),
        source: None,
        cell_type: None,
        metadata: Some(other.clone()),
    };
    apply_ok(&*store, id, &owner, op).await;

    let got = get(&*store, id).await;
    assert_eq!(got.meta.version, 3);
    let b = &got.cells[1];
    assert_eq!((b.source.as_str(), b.version), ("new b", 4));
    assert_eq!(b.metadata, other, "metadata replaces the whole object");
    assert_eq!(cell_version(&got, "a"), 1);
    assert_eq!(ids(&got), ["a", "b", "c"]);
}

async fn update_stale_base_version_conflicts(make: Make<'_>) {
    let store = fresh(make).await;
    let owner = user("u1");
    let nb = abc(&*store, &owner).await;
    let id = nb.meta.id;
    apply_ok(&*store, id, &owner, update_source("a", Some(1), "v2")).await;
    let current = get(&*store, id).await.cells[0].clone();
    assert_eq!(current.version, 2);
    let want = OpError::Conflict {
        current: Box::new(current.clone()),
    };
    expect_op_error(
        &*store,
        id,
        &owner,
        update_source("a", Some(1), "stale"),
        want.clone(),
    )
    .await;
    expect_op_error(
        &*store,
        id,
        &owner,
        update_source("a", Some(3), "future"),
        want,
    )
    .await;
}

async fn update_cell_type_resets_outputs(make: Make<'_>) {
    let store = fresh(make).await;
    let owner = user("u1");
    let mut code = NewCell::new(CellType::Code, "1 + 1").with_id(cid("k"));
    code.outputs = vec![json!({"output_type": "execute_result", "data": {"text/plain": "2"}})];
    code.execution_count = Some(1);
    let nb = store
        .create_notebook(&owner, "t", Map::new(), vec![code])
        .await
        .expect("create");
    let to = |t: CellType| Op::CellUpdate {
        cell_id: cid("k"),
        base_version: None,
        source: None,
        cell_type: Some(t),
        metadata: None,
    };
    // Same type: outputs stay.
    apply_ok(&*store, nb.meta.id, &owner, to(CellType::Code)).await;
    assert_eq!(get(&*store, nb.meta.id).await.cells[0].outputs.len(), 1);

    let c = apply_ok(&*store, nb.meta.id, &owner, to(CellType::Markdown)).await;
    assert_eq!(
        serde_json::to_value(&c.op).expect("op json"),
        json!({"type": "cell.update", "cell_id": "k", "cell_version": 3, "cell_type": "markdown"})
    );
    let cell = get(&*store, nb.meta.id).await.cells[0].clone();
    assert_eq!(cell.cell_type, CellType::Markdown);
    assert!(cell.outputs.is_empty() && cell.execution_count.is_none());
    assert_eq!(cell.source, "1 + 1");

    apply_ok(&*store, nb.meta.id, &owner, to(CellType::Code)).await;
    let cell = get(&*store, nb.meta.id).await.cells[0].clone();
    assert_eq!(cell.cell_type, CellType::Code);
    assert_eq!(
        (cell.outputs.len(), cell.execution_count, cell.version),
        (0, None, 4)
    );
}

async fn update_unknown_cell(make: Make<'_>) {
    let store = fresh(make).await;
    let owner = user("u1");
    let nb = abc(&*store, &owner).await;
    let other = abc(&*store, &owner).await;
    apply_ok(
        &*store,
        other.meta.id,
        &owner,
        insert(None, Some("elsewhere"), ""),
    )
    .await;
    for op in [
        update_source("nope", None, "x"),
        update_source("elsewhere", None, "x"),
        Op::CellDelete {
            cell_id: cid("nope"),
        },
        move_op("nope", 0),
    ] {
        expect_op_error(&*store, nb.meta.id, &owner, op, OpError::CellNotFound).await;
    }
}

async fn delete_cell_keeps_order_dense(make: Make<'_>) {
    let store = fresh(make).await;
    let owner = user("u1");
    let nb = abc(&*store, &owner).await;
    let id = nb.meta.id;
    let c = apply_ok(&*store, id, &owner, Op::CellDelete { cell_id: cid("a") }).await;
    assert_eq!(c.version, 1);
    assert_eq!(
        serde_json::to_value(&c.op).expect("op json"),
        json!({"type": "cell.delete", "cell_id": "a"})
    );
    assert!(c.cell.is_none());
    // Positions stay dense: index 2 is now the end, index 3 is out of range.
    expect_op_error(
        &*store,
        id,
        &owner,
        insert(Some(3), None, ""),
        OpError::IndexOutOfRange,
    )
    .await;
    apply_ok(&*store, id, &owner, insert(Some(1), Some("x"), "")).await;
    apply_ok(&*store, id, &owner, insert(Some(3), Some("y"), "")).await;
    apply_ok(&*store, id, &owner, Op::CellDelete { cell_id: cid("x") }).await;
    let got = get(&*store, id).await;
    assert_eq!(ids(&got), ["b", "c", "y"]);
    assert_eq!(got.meta.version, 4);
    // A deleted id may be used again.
    apply_ok(&*store, id, &owner, insert(Some(0), Some("a"), "again")).await;
    assert_eq!(ids(&get(&*store, id).await), ["a", "b", "c", "y"]);
}

async fn move_cell_positions_and_versions(make: Make<'_>) {
    let store = fresh(make).await;
    let owner = user("u1");
    let mut cells: Vec<NewCell> = Vec::new();
    for name in ["a", "b", "c", "d", "e"] {
        cells.push(NewCell::new(CellType::Markdown, name).with_id(cid(name)));
    }
    let nb = store
        .create_notebook(&owner, "moves", Map::new(), cells)
        .await
        .expect("create");
    let id = nb.meta.id;

    let c = apply_ok(&*store, id, &owner, move_op("a", 3)).await;
    assert_eq!(
        serde_json::to_value(&c.op).expect("op json"),
        json!({"type": "cell.move", "cell_id": "a", "index": 3})
    );
    assert_eq!(ids(&get(&*store, id).await), ["b", "c", "d", "a", "e"]);
    apply_ok(&*store, id, &owner, move_op("e", 0)).await;
    assert_eq!(ids(&get(&*store, id).await), ["e", "b", "c", "d", "a"]);
    apply_ok(&*store, id, &owner, move_op("c", 4)).await;
    assert_eq!(ids(&get(&*store, id).await), ["e", "b", "d", "a", "c"]);
    apply_ok(&*store, id, &owner, move_op("d", 1)).await;
    assert_eq!(ids(&get(&*store, id).await), ["e", "d", "b", "a", "c"]);
    let same = apply_ok(&*store, id, &owner, move_op("b", 2)).await;
    assert_eq!(same.version, 5, "a move to the same index is still an op");

    let got = get(&*store, id).await;
    assert_eq!(ids(&got), ["e", "d", "b", "a", "c"]);
    assert_eq!(got.meta.version, 5);
    assert!(
        got.cells.iter().all(|c| c.version == 1),
        "moves change no cell version"
    );
    // Inserts after moves land where expected (positions are still dense).
    apply_ok(&*store, id, &owner, insert(Some(5), Some("z"), "")).await;
    assert_eq!(ids(&get(&*store, id).await), ["e", "d", "b", "a", "c", "z"]);
}

async fn move_out_of_range(make: Make<'_>) {
    let store = fresh(make).await;
    let owner = user("u1");
    let nb = abc(&*store, &owner).await;
    expect_op_error(
        &*store,
        nb.meta.id,
        &owner,
        move_op("a", 3),
        OpError::IndexOutOfRange,
    )
    .await;
    expect_op_error(
        &*store,
        nb.meta.id,
        &owner,
        move_op("a", usize::MAX),
        OpError::IndexOutOfRange,
    )
    .await;
}

async fn rename_notebook(make: Make<'_>) {
    let store = fresh(make).await;
    let owner = user("u1");
    let nb = abc(&*store, &owner).await;
    let op = Op::NotebookRename {
        title: "Renamed ✓".into(),
    };
    let c = apply_ok(&*store, nb.meta.id, &owner, op).await;
    assert_eq!(
        serde_json::to_value(&c.op).expect("op json"),
        json!({"type": "notebook.rename", "title": "Renamed ✓"})
    );
    assert!(c.cell.is_none());
    let meta = store
        .notebook_meta(nb.meta.id)
        .await
        .expect("meta")
        .expect("exists");
    assert_eq!((meta.title.as_str(), meta.version), ("Renamed ✓", 1));
    assert_eq!(meta.updated_at, c.at, "updated_at is the op's time");
    assert_eq!(meta.created_at, nb.meta.created_at);
    assert_eq!(meta.epoch, nb.meta.epoch, "ops keep the epoch");
    assert!(matches!(
        store
            .apply(
                nb.meta.id,
                &owner,
                Op::NotebookRename { title: " ".into() },
                None
            )
            .await,
        Err(ApplyError::Op(OpError::Invalid(_)))
    ));
}

async fn op_limits_enforced(make: Make<'_>) {
    let limits = Limits {
        max_title_chars: 3,
        max_source_bytes: 5, // "src a" fits
        max_cells: 100,
    };
    let store = with_limits(make, limits).await;
    let owner = user("u1");
    let nb = abc(&*store, &owner).await;
    let id = nb.meta.id;
    let rename = |t: &str| Op::NotebookRename { title: t.into() };
    expect_op_error(&*store, id, &owner, rename("four"), OpError::TitleTooLong).await;
    expect_op_error(
        &*store,
        id,
        &owner,
        insert(None, None, "ééé"),
        OpError::SourceTooLarge,
    )
    .await;
    expect_op_error(
        &*store,
        id,
        &owner,
        update_source("a", None, "abcdef"),
        OpError::SourceTooLarge,
    )
    .await;
    apply_ok(&*store, id, &owner, rename("ééé")).await;
    apply_ok(&*store, id, &owner, update_source("a", None, "abcde")).await;
}

// ---------------------------------------------------------------------------
// Cases: access

async fn forbidden_authors(make: Make<'_>) {
    let store = fresh(make).await;
    let owner = user("owner");
    let nb = abc(&*store, &owner).await;
    let id = nb.meta.id;
    store
        .set_member(id, &user("viewer"), Role::Viewer)
        .await
        .expect("add viewer");
    store
        .set_member(id, &user("editor"), Role::Editor)
        .await
        .expect("add editor");
    for who in ["stranger", "viewer"] {
        expect_apply_error(&*store, id, &user(who), None, |e| {
            matches!(e, ApplyError::Forbidden)
        })
        .await;
    }
    // Forbidden is decided before the version check and before the op.
    expect_apply_error(&*store, id, &user("viewer"), Some(99), |e| {
        matches!(e, ApplyError::Forbidden)
    })
    .await;
    let c = apply_ok(
        &*store,
        id,
        &user("editor"),
        update_source("a", Some(1), "by editor"),
    )
    .await;
    assert_eq!(c.author, user("editor"));
    // A demoted editor can no longer write; a removed one neither.
    store
        .set_member(id, &user("editor"), Role::Viewer)
        .await
        .expect("demote");
    expect_apply_error(&*store, id, &user("editor"), None, |e| {
        matches!(e, ApplyError::Forbidden)
    })
    .await;
    store
        .set_member(id, &user("editor"), Role::Editor)
        .await
        .expect("promote");
    apply_ok(
        &*store,
        id,
        &user("editor"),
        update_source("a", None, "again"),
    )
    .await;
    assert!(store
        .remove_member(id, &user("editor"))
        .await
        .expect("remove"));
    expect_apply_error(&*store, id, &user("editor"), None, |e| {
        matches!(e, ApplyError::Forbidden)
    })
    .await;
}

async fn missing_notebook_apply(make: Make<'_>) {
    let store = fresh(make).await;
    let res = store
        .apply(NotebookId::new(), &user("u1"), insert(None, None, ""), None)
        .await;
    assert!(matches!(res, Err(ApplyError::NotebookNotFound)), "{res:?}");
}

async fn expect_version_checked(make: Make<'_>) {
    let store = fresh(make).await;
    let owner = user("u1");
    let nb = abc(&*store, &owner).await;
    let id = nb.meta.id;
    expect_apply_error(&*store, id, &owner, Some(1), |e| {
        matches!(e, ApplyError::VersionMismatch { current: 0 })
    })
    .await;
    let rename = Op::NotebookRename { title: "v1".into() };
    let c = store
        .apply(id, &owner, rename, Some(0))
        .await
        .expect("matching version");
    assert_eq!(c.version, 1);
    expect_apply_error(&*store, id, &owner, Some(0), |e| {
        matches!(e, ApplyError::VersionMismatch { current: 1 })
    })
    .await;
}

async fn role_of_cases(make: Make<'_>) {
    let store = fresh(make).await;
    let owner = user("owner");
    let nb = abc(&*store, &owner).await;
    let id = nb.meta.id;
    store
        .set_member(id, &user("ed"), Role::Editor)
        .await
        .expect("editor");
    store
        .set_member(id, &user("vi"), Role::Viewer)
        .await
        .expect("viewer");
    let role = |u: &'static str| {
        let store = store.clone();
        async move { store.role_of(id, &user(u)).await.expect("role_of") }
    };
    assert_eq!(role("owner").await, Access::Role(Role::Owner));
    assert_eq!(role("ed").await, Access::Role(Role::Editor));
    assert_eq!(role("vi").await, Access::Role(Role::Viewer));
    assert_eq!(role("stranger").await, Access::NoAccess);
    let missing = store
        .role_of(NotebookId::new(), &owner)
        .await
        .expect("role_of missing");
    assert_eq!(missing, Access::NotFound);
}

async fn list_pagination(make: Make<'_>) {
    let store = fresh(make).await;
    let me = user("me");
    let other = user("other");
    let mut expected: Vec<(NotebookMeta, Role)> = Vec::new();
    for i in 0..7 {
        let nb = store
            .create_notebook(&me, &format!("mine {i}"), Map::new(), vec![])
            .await
            .expect("create mine");
        expected.push((nb.meta, Role::Owner));
        let theirs = store
            .create_notebook(&other, &format!("theirs {i}"), Map::new(), vec![])
            .await
            .expect("create theirs");
        if i % 2 == 0 {
            let role = if i % 4 == 0 {
                Role::Editor
            } else {
                Role::Viewer
            };
            store
                .set_member(theirs.meta.id, &me, role)
                .await
                .expect("share");
            expected.push((theirs.meta, role));
        }
    }
    // An op must not change list order (it is by creation time).
    let first = expected[0].0.id;
    apply_ok(
        &*store,
        first,
        &me,
        Op::NotebookRename {
            title: "renamed".into(),
        },
    )
    .await;
    expected.sort_by_key(|(m, _)| std::cmp::Reverse((m.created_at, m.id)));

    assert!(store
        .list_for_user(&me, 0, None)
        .await
        .expect("limit 0")
        .is_empty());
    let mut seen: Vec<(NotebookId, Role)> = Vec::new();
    let mut after: Option<PageKey> = None;
    loop {
        let page = store.list_for_user(&me, 3, after).await.expect("page");
        assert!(page.len() <= 3);
        let Some((last, _)) = page.last() else { break };
        after = Some(PageKey::after(last));
        seen.extend(page.iter().map(|(m, r)| (m.id, *r)));
    }
    let want: Vec<(NotebookId, Role)> = expected.iter().map(|(m, r)| (m.id, *r)).collect();
    assert_eq!(
        seen, want,
        "every item exactly once, newest first, with the user's role"
    );
    let unique: HashSet<_> = seen.iter().map(|(id, _)| *id).collect();
    assert_eq!(unique.len(), seen.len());

    let all = store.list_for_user(&me, 100, None).await.expect("all");
    let renamed = all
        .iter()
        .find(|(m, _)| m.id == first)
        .expect("renamed listed");
    assert_eq!(
        (renamed.0.title.as_str(), renamed.0.version),
        ("renamed", 1)
    );
    let theirs = store.list_for_user(&other, 100, None).await.expect("other");
    assert_eq!(theirs.len(), 7);
    assert!(theirs
        .iter()
        .all(|(m, r)| *r == Role::Owner && m.owner_id == other));
    let nobody = store
        .list_for_user(&user("nobody"), 100, None)
        .await
        .expect("nobody");
    assert!(nobody.is_empty());
}

async fn members_order_and_upsert(make: Make<'_>) {
    let store = fresh(make).await;
    let owner = user("zed_owner");
    let nb = abc(&*store, &owner).await;
    let id = nb.meta.id;
    assert_eq!(
        store.members(id).await.expect("members"),
        [(owner.clone(), Role::Owner)]
    );
    for (u, r) in [
        ("user_c", Role::Viewer),
        ("user_a", Role::Editor),
        ("user_b", Role::Viewer),
    ] {
        store.set_member(id, &user(u), r).await.expect("set_member");
    }
    store
        .set_member(id, &user("user_c"), Role::Editor)
        .await
        .expect("upsert");
    let got = store.members(id).await.expect("members");
    assert_eq!(
        got,
        [
            (owner.clone(), Role::Owner),
            (user("user_a"), Role::Editor),
            (user("user_b"), Role::Viewer),
            (user("user_c"), Role::Editor),
        ]
    );
    assert!(store
        .remove_member(id, &user("user_b"))
        .await
        .expect("remove"));
    assert!(!store
        .remove_member(id, &user("user_b"))
        .await
        .expect("remove again"));
    assert!(!store
        .remove_member(id, &owner)
        .await
        .expect("owner is no member"));
    assert_eq!(store.members(id).await.expect("members").len(), 3);
    assert_eq!(
        get(&*store, id).await.meta.version,
        0,
        "membership changes are not ops"
    );
}

async fn set_member_rejects_owner(make: Make<'_>) {
    let store = fresh(make).await;
    let owner = user("owner");
    let nb = abc(&*store, &owner).await;
    let res = store.set_member(nb.meta.id, &user("x"), Role::Owner).await;
    assert!(matches!(res, Err(StoreError::Invalid(_))), "{res:?}");
    let res = store.set_member(nb.meta.id, &owner, Role::Viewer).await;
    assert!(matches!(res, Err(StoreError::Invalid(_))), "{res:?}");
    assert_eq!(
        store.role_of(nb.meta.id, &owner).await.expect("role"),
        Access::Role(Role::Owner)
    );
    let res = store
        .set_member(NotebookId::new(), &user("x"), Role::Viewer)
        .await;
    assert!(matches!(res, Err(StoreError::NotebookNotFound)), "{res:?}");
}

async fn delete_notebook_removes_everything(make: Make<'_>) {
    let store = fresh(make).await;
    let owner = user("owner");
    let keep = abc(&*store, &owner).await;
    let nb = abc(&*store, &owner).await;
    let id = nb.meta.id;
    store
        .set_member(id, &user("ed"), Role::Editor)
        .await
        .expect("member");
    apply_ok(&*store, id, &owner, insert(None, None, "x")).await;
    apply_ok(&*store, keep.meta.id, &owner, insert(None, None, "kept")).await;

    assert!(store.delete_notebook(id).await.expect("delete"));
    assert!(!store.delete_notebook(id).await.expect("delete again"));
    assert_eq!(store.notebook(id).await.expect("get"), None);
    assert_eq!(store.notebook_meta(id).await.expect("meta"), None);
    assert_eq!(
        store.role_of(id, &owner).await.expect("role"),
        Access::NotFound
    );
    assert_eq!(
        store.role_of(id, &user("ed")).await.expect("role"),
        Access::NotFound
    );
    assert!(store.members(id).await.expect("members").is_empty());
    let log = store.ops_since(id, 0, 1000).await.expect("ops_since");
    assert!(
        log.is_none_or(|ops| ops.is_empty()),
        "deleted notebook still has ops"
    );
    let res = store.apply(id, &owner, insert(None, None, ""), None).await;
    assert!(matches!(res, Err(ApplyError::NotebookNotFound)), "{res:?}");
    let listed = store
        .list_for_user(&user("ed"), 10, None)
        .await
        .expect("list");
    assert!(listed.is_empty());
    // The other notebook is untouched.
    let kept = get(&*store, keep.meta.id).await;
    assert_eq!((kept.cells.len(), kept.meta.version), (4, 1));
    let kept_log = store
        .ops_since(keep.meta.id, 0, 10)
        .await
        .expect("ops_since");
    assert_eq!(kept_log.map(|l| l.len()), Some(1));
}

async fn ops_since_returns_committed_ops(make: Make<'_>) {
    let store = fresh(make).await;
    let owner = user("owner");
    let editor = user("editor");
    let nb = abc(&*store, &owner).await;
    let id = nb.meta.id;
    store
        .set_member(id, &editor, Role::Editor)
        .await
        .expect("member");
    assert_eq!(
        store.ops_since(id, 0, 100).await.expect("empty"),
        Some(vec![])
    );
    let ops = vec![
        (owner.clone(), insert(Some(1), Some("new"), "n")),
        (editor.clone(), update_source("a", Some(1), "a2")),
        (owner.clone(), move_op("c", 0)),
        (editor.clone(), Op::CellDelete { cell_id: cid("b") }),
        (owner.clone(), Op::NotebookRename { title: "t2".into() }),
    ];
    let mut committed = Vec::new();
    for (author, op) in ops {
        committed.push(apply_ok(&*store, id, &author, op).await);
    }
    // A refused op leaves no trace in the log.
    let refused = store
        .apply(id, &owner, update_source("a", Some(1), "stale"), None)
        .await;
    assert!(refused.is_err());

    let log = store
        .ops_since(id, 0, 100)
        .await
        .expect("ops_since")
        .expect("all ops kept");
    assert_eq!(log.len(), 5);
    for (got, want) in log.iter().zip(&committed) {
        assert_eq!(got.notebook_id, id);
        assert_eq!(got.version, want.version);
        assert_eq!(got.author, want.author);
        assert_eq!(got.op, want.op);
        assert_eq!(got.at, want.at);
    }
    assert_eq!(
        log.iter().map(|c| c.version).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let tail = store
        .ops_since(id, 3, 100)
        .await
        .expect("tail")
        .expect("kept");
    assert_eq!(tail.iter().map(|c| c.version).collect::<Vec<_>>(), [4, 5]);
    assert_eq!(tail[0].op, committed[3].op);
    assert_eq!(
        store.ops_since(id, 5, 100).await.expect("current"),
        Some(vec![])
    );
}

async fn ops_since_bounds(make: Make<'_>) {
    let store = fresh(make).await;
    let owner = user("owner");
    let nb = abc(&*store, &owner).await;
    let id = nb.meta.id;
    for i in 0..4 {
        apply_ok(
            &*store,
            id,
            &owner,
            update_source("a", None, &format!("v{i}")),
        )
        .await;
    }
    let some = |r: Option<Vec<Committed>>| r.map(|v| v.len());
    assert_eq!(
        some(store.ops_since(id, 0, 4).await.expect("max = count")),
        Some(4)
    );
    assert_eq!(
        some(store.ops_since(id, 0, 3).await.expect("too many")),
        None
    );
    assert_eq!(
        some(store.ops_since(id, 1, 3).await.expect("fits")),
        Some(3)
    );
    assert_eq!(
        some(store.ops_since(id, 5, 100).await.expect("ahead")),
        None
    );
    assert_eq!(
        some(store.ops_since(id, -1, 100).await.expect("negative")),
        None
    );
    let missing = store
        .ops_since(NotebookId::new(), 0, 100)
        .await
        .expect("missing");
    assert!(missing.is_none_or(|v| v.is_empty()));
}

async fn ops_since_after_pruning(make: Make<'_>) {
    let store = make(StoreOptions {
        op_log_keep: 3,
        ..StoreOptions::default()
    })
    .await;
    let owner = user("owner");
    let nb = abc(&*store, &owner).await;
    let id = nb.meta.id;
    for i in 0..6 {
        apply_ok(
            &*store,
            id,
            &owner,
            update_source("b", None, &format!("v{i}")),
        )
        .await;
    }
    assert_eq!(store.ops_since(id, 0, 100).await.expect("pruned"), None);
    assert_eq!(store.ops_since(id, 2, 100).await.expect("pruned"), None);
    let kept = store
        .ops_since(id, 3, 100)
        .await
        .expect("kept")
        .expect("the newest 3");
    assert_eq!(
        kept.iter().map(|c| c.version).collect::<Vec<_>>(),
        [4, 5, 6]
    );
    let nb = get(&*store, id).await;
    assert_eq!(
        (nb.meta.version, cell_version(&nb, "b")),
        (6, 7),
        "pruning loses no state"
    );
}

async fn delete_user_removes_owned_and_memberships(make: Make<'_>) {
    let store = fresh(make).await;
    let gone = user("user_gone");
    let stays = user("user_stays");
    let mine1 = abc(&*store, &gone).await;
    let mine2 = abc(&*store, &gone).await;
    let shared = abc(&*store, &stays).await;
    store
        .set_member(mine1.meta.id, &stays, Role::Editor)
        .await
        .expect("member");
    store
        .set_member(shared.meta.id, &gone, Role::Editor)
        .await
        .expect("member");
    apply_ok(
        &*store,
        shared.meta.id,
        &gone,
        insert(None, Some("by-gone"), ""),
    )
    .await;

    let mut deleted = store.delete_user(&gone).await.expect("delete_user");
    deleted.sort();
    let mut want = vec![mine1.meta.id, mine2.meta.id];
    want.sort();
    assert_eq!(deleted, want);
    for id in want {
        assert_eq!(store.notebook(id).await.expect("get"), None);
        assert_eq!(
            store.role_of(id, &stays).await.expect("role"),
            Access::NotFound
        );
    }
    assert_eq!(
        store.role_of(shared.meta.id, &gone).await.expect("role"),
        Access::NoAccess
    );
    assert_eq!(
        store.members(shared.meta.id).await.expect("members"),
        [(stays.clone(), Role::Owner)]
    );
    let kept = get(&*store, shared.meta.id).await;
    assert_eq!(
        kept.cells.len(),
        4,
        "their past edits to others' notebooks stay"
    );
    assert!(store
        .list_for_user(&gone, 10, None)
        .await
        .expect("list")
        .is_empty());
    assert_eq!(
        store
            .list_for_user(&stays, 10, None)
            .await
            .expect("list")
            .len(),
        1
    );
    assert!(store.delete_user(&gone).await.expect("again").is_empty());
}

async fn concurrent_applies_get_distinct_versions(make: Make<'_>) {
    const N: usize = 50;
    let store = fresh(make).await;
    let owner = user("owner");
    let editor = user("editor");
    let nb = store
        .create_notebook(&owner, "busy", Map::new(), vec![])
        .await
        .expect("create");
    let id = nb.meta.id;
    store
        .set_member(id, &editor, Role::Editor)
        .await
        .expect("member");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..N {
        let store = store.clone();
        let author = if i % 2 == 0 {
            owner.clone()
        } else {
            editor.clone()
        };
        tasks.spawn(async move {
            let op = insert(Some(0), Some(&format!("c{i}")), &format!("{i}"));
            store.apply(id, &author, op, None).await
        });
    }
    let mut versions = Vec::new();
    while let Some(res) = tasks.join_next().await {
        let committed = res.expect("task").expect("concurrent apply");
        versions.push(committed.version);
    }
    versions.sort_unstable();
    let want: Vec<i64> = (1..=N as i64).collect();
    assert_eq!(versions, want, "versions 1..=N, each exactly once");
    let got = get(&*store, id).await;
    assert_eq!((got.meta.version, got.cells.len()), (N as i64, N));
    let unique: HashSet<&str> = got.cells.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(unique.len(), N);
    let log = store
        .ops_since(id, 0, 1000)
        .await
        .expect("log")
        .expect("kept");
    assert_eq!(log.len(), N);
    // Replaying the log reproduces the stored order.
    let mut replay: Vec<Cell> = Vec::new();
    for c in &log {
        if let AppliedOp::CellInsert { index, cell } = &c.op {
            replay.insert(*index, cell.clone());
        }
    }
    assert_eq!(replay, got.cells);
}

/// A delivery id is unseen until recorded, then seen; recording twice is fine.
async fn webhook_ids_remembered(make: Make<'_>) {
    let store = fresh(make).await;
    assert!(!store.webhook_seen("msg_1").await.expect("seen"));
    store.record_webhook("msg_1").await.expect("record");
    store.record_webhook("msg_1").await.expect("record twice");
    assert!(store.webhook_seen("msg_1").await.expect("seen"));
    assert!(!store.webhook_seen("msg_2").await.expect("seen"));
}

// ---------------------------------------------------------------------------
// Organizations (members that are not users)

async fn list_for_member_includes_the_org_once(make: Make<'_>) {
    let store = fresh(make).await;
    let (me, org, other) = (user("user_me"), user("org_x"), user("user_other"));
    let create = |owner: UserId, title: &'static str| {
        let store = store.clone();
        async move {
            store
                .create_notebook(&owner, title, Map::new(), vec![])
                .await
                .expect("create")
                .meta
                .id
        }
    };
    let own = create(me.clone(), "own").await;
    let org_only = create(other.clone(), "org only").await;
    let both = create(other.clone(), "both").await;
    let direct = create(other.clone(), "direct").await;
    let unrelated = create(other.clone(), "unrelated").await;
    let share = |id, member: &UserId, role| {
        let (store, member) = (store.clone(), member.clone());
        async move { store.set_member(id, &member, role).await.expect("share") }
    };
    share(org_only, &org, Role::Viewer).await;
    share(both, &me, Role::Viewer).await;
    share(both, &org, Role::Editor).await;
    share(direct, &me, Role::Editor).await;
    share(unrelated, &user("org_y"), Role::Editor).await;
    share(own, &org, Role::Viewer).await;

    let mut seen: Vec<(NotebookId, Option<Role>, Option<Role>)> = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_for_member(&me, Some(&org), 2, after)
            .await
            .expect("page");
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(PageKey::after(&last.meta));
        seen.extend(page.iter().map(|l: &Listed| (l.meta.id, l.own, l.org)));
    }
    let mut want = vec![
        (direct, Some(Role::Editor), None),
        (both, Some(Role::Viewer), Some(Role::Editor)),
        (org_only, None, Some(Role::Viewer)),
        (own, Some(Role::Owner), Some(Role::Viewer)),
    ];
    newest_first(&*store, &mut want, |w| w.0).await;
    assert_eq!(seen, want, "each notebook once, newest first, both roles");

    let without_org = store
        .list_for_member(&me, None, 100, None)
        .await
        .expect("no org");
    let ids: Vec<NotebookId> = without_org.iter().map(|l| l.meta.id).collect();
    let mut want = vec![direct, both, own];
    newest_first(&*store, &mut want, |id| *id).await;
    assert_eq!(ids, want);
    assert!(without_org.iter().all(|l| l.org.is_none()));
}

/// Sorts `items` as listings order notebooks: `created_at` desc, then id desc.
async fn newest_first<T>(store: &dyn Store, items: &mut [T], id: impl Fn(&T) -> NotebookId) {
    let mut keys = std::collections::HashMap::new();
    for item in items.iter() {
        let meta = store
            .notebook_meta(id(item))
            .await
            .expect("meta")
            .expect("exists");
        keys.insert(meta.id, (meta.created_at, meta.id));
    }
    items.sort_by_key(|item| std::cmp::Reverse(keys[&id(item)]));
}

async fn apply_via_lets_an_org_editor_write(make: Make<'_>) {
    let store = fresh(make).await;
    let (owner, me, org) = (user("user_owner"), user("user_me"), user("org_x"));
    let nb = abc(&*store, &owner).await;
    let rename = || Op::NotebookRename {
        title: "via org".into(),
    };
    let refused = store.apply(nb.meta.id, &me, rename(), None).await;
    assert!(matches!(refused, Err(ApplyError::Forbidden)), "{refused:?}");

    store
        .set_member(nb.meta.id, &org, Role::Viewer)
        .await
        .expect("share viewer");
    let refused = store
        .apply_via(nb.meta.id, &me, Some(&org), rename(), None)
        .await;
    assert!(matches!(refused, Err(ApplyError::Forbidden)), "{refused:?}");

    store
        .set_member(nb.meta.id, &org, Role::Editor)
        .await
        .expect("share editor");
    let committed = store
        .apply_via(nb.meta.id, &me, Some(&org), rename(), None)
        .await
        .expect("org editor writes");
    assert_eq!((committed.version, &committed.author), (1, &me));
}

async fn remove_member_everywhere_returns_its_notebooks(make: Make<'_>) {
    let store = fresh(make).await;
    let (owner, org, bob) = (user("user_owner"), user("org_x"), user("user_bob"));
    let mut shared = Vec::new();
    for _ in 0..2 {
        let nb = abc(&*store, &owner).await;
        store
            .set_member(nb.meta.id, &org, Role::Viewer)
            .await
            .expect("share");
        store
            .set_member(nb.meta.id, &bob, Role::Editor)
            .await
            .expect("share");
        shared.push(nb.meta.id);
    }
    shared.sort_unstable();
    let removed = store.remove_member_everywhere(&org).await.expect("remove");
    assert_eq!(removed, shared);
    for id in &shared {
        let members = store.members(*id).await.expect("members");
        assert_eq!(
            members,
            vec![(owner.clone(), Role::Owner), (bob.clone(), Role::Editor)]
        );
    }
    assert!(store
        .remove_member_everywhere(&org)
        .await
        .expect("again")
        .is_empty());
}
