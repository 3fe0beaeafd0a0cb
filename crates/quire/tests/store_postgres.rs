//! Runs the store conformance suite against [`PostgresStore`], one fresh
//! database per case, plus the PostgreSQL-specific checks: two stores (two
//! pools, as two processes would have) writing one notebook concurrently, and
//! text PostgreSQL's TEXT type could not hold.
//!
//! Needs a server: set `QUIRE_TEST_POSTGRES_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`) to a database whose user may
//! `CREATE DATABASE`. Each test creates `quire_test_<random>` databases and
//! drops them when it passes (they are kept, and named, when it fails). Without
//! the variable every test prints a skip line and passes.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use quire::notebook::model::{Cell, CellId, CellType, NotebookId, Role, UserId};
use quire::notebook::ops::{AppliedOp, NewCell, Op};
use quire::store::{conformance, PostgresStore, Store, StoreOptions};
use serde_json::{json, Map};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// The environment variable naming the test server.
const URL_VAR: &str = "QUIRE_TEST_POSTGRES_URL";

/// The server URL, or `None` (after printing why) when the tests should skip.
fn server_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            println!("skipping: {URL_VAR} is not set");
            None
        }
    }
}

/// `url` with its database name replaced by `db` (query parameters kept).
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{db}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Databases created for one test, dropped by [`TestDatabases::drop_all`].
struct TestDatabases {
    server: String,
    created: Mutex<Vec<String>>,
}

impl TestDatabases {
    fn new(server: String) -> Self {
        Self {
            server,
            created: Mutex::new(Vec::new()),
        }
    }

    /// Creates an empty, uniquely named database; returns its URL.
    async fn create(&self) -> String {
        let name = format!("quire_test_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&self.server)
            .await
            .expect("connect to QUIRE_TEST_POSTGRES_URL");
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE (the user needs CREATEDB)");
        let _ = admin.close().await;
        self.created.lock().expect("lock").push(name.clone());
        with_database(&self.server, &name)
    }

    /// Drops every database this test created, a few at a time (best effort:
    /// `WITH (FORCE)` disconnects pools still open).
    async fn drop_all(&self) {
        let names = std::mem::take(&mut *self.created.lock().expect("lock"));
        futures::stream::iter(names)
            .for_each_concurrent(8, |name| self.drop_one(name))
            .await;
    }

    async fn drop_one(&self, name: String) {
        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        let dropped = match PgConnection::connect(&self.server).await {
            Ok(mut admin) => {
                let res = sqlx::query(&sql).execute(&mut admin).await.map(drop);
                let _ = admin.close().await;
                res
            }
            Err(e) => Err(e),
        };
        if let Err(e) = dropped {
            eprintln!("could not drop test database {name}: {e}");
        }
    }
}

impl Drop for TestDatabases {
    fn drop(&mut self) {
        let left = self
            .created
            .get_mut()
            .map(|v| v.clone())
            .unwrap_or_default();
        if !left.is_empty() {
            eprintln!("test databases kept for inspection: {left:?}");
        }
    }
}

fn user(s: &str) -> UserId {
    UserId::parse(s).expect("valid test user id")
}

fn cid(s: &str) -> CellId {
    CellId::parse(s).expect("valid test cell id")
}

async fn open(url: &str, opts: StoreOptions) -> PostgresStore {
    PostgresStore::connect(url, opts)
        .await
        .expect("open postgres store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_conformance() {
    let Some(server) = server_url() else { return };
    let dbs = TestDatabases::new(server);
    conformance::run_all(|opts| {
        let dbs = &dbs;
        async move {
            let url = dbs.create().await;
            Arc::new(open(&url, opts).await) as Arc<dyn Store>
        }
    })
    .await;
    dbs.drop_all().await;
}

/// The op number `i` of the two-process test; every one of them succeeds
/// whatever order they commit in.
fn mixed_op(i: usize) -> Op {
    let seed = cid(&format!("seed{}", i % 3));
    match i % 4 {
        0 => Op::CellInsert {
            index: Some(0),
            cell: NewCell::new(CellType::Code, format!("{i}")).with_id(cid(&format!("c{i}"))),
        },
        1 => Op::CellInsert {
            index: None,
            cell: NewCell::new(CellType::Markdown, format!("{i}")).with_id(cid(&format!("c{i}"))),
        },
        2 => Op::CellMove {
            cell_id: seed,
            index: 0,
        },
        _ => Op::CellUpdate {
            cell_id: seed,
            base_version: None,
            source: Some(format!("update {i}")),
            cell_type: None,
            metadata: None,
        },
    }
}

/// Replays the op log on the cells the notebook was created with.
fn replay(mut cells: Vec<Cell>, log: &[AppliedOp]) -> Vec<Cell> {
    for op in log {
        match op {
            AppliedOp::CellInsert { index, cell } => cells.insert(*index, cell.clone()),
            AppliedOp::CellMove { cell_id, index } => {
                let from = cells
                    .iter()
                    .position(|c| &c.id == cell_id)
                    .expect("moved cell exists");
                let cell = cells.remove(from);
                cells.insert(*index, cell);
            }
            AppliedOp::CellUpdate {
                cell_id,
                cell_version,
                source,
                ..
            } => {
                let cell = cells
                    .iter_mut()
                    .find(|c| &c.id == cell_id)
                    .expect("updated cell exists");
                cell.version = *cell_version;
                if let Some(source) = source {
                    cell.source.clone_from(source);
                }
            }
            other => panic!("unexpected op in the log: {other:?}"),
        }
    }
    cells
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn two_stores_writing_one_notebook_serialize() {
    const N: usize = 200;
    let Some(server) = server_url() else { return };
    let dbs = TestDatabases::new(server);
    let url = dbs.create().await;
    let opts = StoreOptions {
        op_log_keep: 1000,
        ..StoreOptions::default()
    };
    // Two pools, connected concurrently (both run the migrations), like two
    // processes starting at once.
    let (a, b) = tokio::join!(open(&url, opts), open(&url, opts));
    let stores: [Arc<dyn Store>; 2] = [Arc::new(a), Arc::new(b)];
    let owner = user("owner");
    let editor = user("editor");
    let seeds = (0..3)
        .map(|i| NewCell::new(CellType::Code, "seed").with_id(cid(&format!("seed{i}"))))
        .collect();
    let nb = stores[0]
        .create_notebook(&owner, "busy", Map::new(), seeds)
        .await
        .expect("create");
    let id = nb.meta.id;
    stores[1]
        .set_member(id, &editor, Role::Editor)
        .await
        .expect("member");

    let versions = run_concurrently(&stores, id, [&owner, &editor], N).await;
    let want: Vec<i64> = (1..=N as i64).collect();
    assert_eq!(versions, want, "versions 1..=N, each exactly once");

    for store in &stores {
        let got = store.notebook(id).await.expect("get").expect("exists");
        assert_eq!(got.meta.version, N as i64);
        let unique: HashSet<&str> = got.cells.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(unique.len(), got.cells.len(), "cell ids unique");
        assert_eq!(got.cells.len(), 3 + N / 2);
        let log = store
            .ops_since(id, 0, N)
            .await
            .expect("ops_since")
            .expect("all ops kept");
        assert_eq!(log.len(), N);
        let ops: Vec<AppliedOp> = log.into_iter().map(|c| c.op).collect();
        assert_eq!(
            replay(nb.cells.clone(), &ops),
            got.cells,
            "replaying the log reproduces the stored cells"
        );
    }
    dbs.drop_all().await;
}

/// Applies `n` ops spread over `stores` and authors, all at once; returns the
/// committed versions, sorted.
async fn run_concurrently(
    stores: &[Arc<dyn Store>; 2],
    id: NotebookId,
    authors: [&UserId; 2],
    n: usize,
) -> Vec<i64> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let store = stores[i % 2].clone();
        let author = authors[(i / 2) % 2].clone();
        tasks.spawn(async move { store.apply(id, &author, mixed_op(i), None).await });
    }
    let mut versions = Vec::with_capacity(n);
    while let Some(res) = tasks.join_next().await {
        let committed = res.expect("task").expect("concurrent apply");
        versions.push(committed.version);
    }
    versions.sort_unstable();
    versions
}

/// U+0000 is valid JSON (so valid API input and fine in SQLite) but not valid
/// in PostgreSQL TEXT; titles and sources must still round-trip, and JSON
/// metadata must keep its key order.
#[tokio::test]
async fn nul_text_and_key_order_round_trip() {
    let Some(server) = server_url() else { return };
    let dbs = TestDatabases::new(server);
    let url = dbs.create().await;
    let store = open(&url, StoreOptions::default()).await;
    let owner = user("owner");
    let mut meta = Map::new();
    meta.insert("zeta".into(), json!({"b": 1, "a": "\u{0}"}));
    meta.insert("alpha".into(), json!(null));
    let mut cell = NewCell::new(CellType::Code, "a\u{0}b").with_id(cid("k"));
    cell.metadata.insert("z".into(), json!(1));
    cell.metadata.insert("a".into(), json!(2));
    let nb = store
        .create_notebook(&owner, "nul\u{0}title", meta.clone(), vec![cell])
        .await
        .expect("create with NUL");
    store
        .apply(
            nb.meta.id,
            &owner,
            Op::NotebookRename {
                title: "re\u{0}named".into(),
            },
            None,
        )
        .await
        .expect("rename with NUL");
    let got = store
        .notebook(nb.meta.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got.meta.title, "re\u{0}named");
    assert_eq!(got.cells[0].source, "a\u{0}b");
    assert_eq!(
        serde_json::to_string(&got.meta.metadata).expect("json"),
        serde_json::to_string(&meta).expect("json"),
        "notebook metadata keeps its key order"
    );
    let keys: Vec<&str> = got.cells[0].metadata.keys().map(String::as_str).collect();
    assert_eq!(keys, ["z", "a"], "cell metadata keeps its key order");
    store.close().await;
    dbs.drop_all().await;
}

#[tokio::test]
async fn unreachable_server_is_unavailable() {
    if server_url().is_none() {
        return;
    }
    // Nothing listens on port 1; connecting fails (an I/O error), it does not hang.
    let res = PostgresStore::connect(
        "postgres://postgres@127.0.0.1:1/test",
        StoreOptions::default(),
    )
    .await;
    assert!(
        matches!(res, Err(quire::store::StoreError::Unavailable(_))),
        "{res:?}"
    );
}

#[test]
fn database_name_replaced_in_urls() {
    assert_eq!(
        with_database("postgres://u@h:5432/test", "x"),
        "postgres://u@h:5432/x"
    );
    assert_eq!(
        with_database("postgresql://u:p@h/test?sslmode=disable", "x"),
        "postgresql://u:p@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}
