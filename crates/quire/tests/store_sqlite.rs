//! Runs the store conformance suite against [`SqliteStore`], one fresh
//! database file per case, plus the SQLite-specific checks (durability across
//! reopen, file creation, pragmas).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use quire::notebook::model::{CellType, UserId};
use quire::notebook::ops::{NewCell, Op};
use quire::store::{conformance, SqliteStore, Store, StoreOptions};
use serde_json::Map;

fn url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_conformance() {
    let dir = tempfile::tempdir().expect("temp dir");
    let counter = AtomicUsize::new(0);
    conformance::run_all(|opts| {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let path = dir.path().join(format!("case-{n}.db"));
        async move {
            let store = SqliteStore::connect(&url(&path), opts)
                .await
                .expect("open sqlite store");
            Arc::new(store) as Arc<dyn Store>
        }
    })
    .await;
}

#[tokio::test]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("reopen.db");
    let owner = UserId::parse("user_1").expect("user");
    let store = SqliteStore::connect(&url(&path), StoreOptions::default())
        .await
        .expect("open");
    let nb = store
        .create_notebook(
            &owner,
            "kept",
            Map::new(),
            vec![NewCell::new(CellType::Code, "1")],
        )
        .await
        .expect("create");
    let op = Op::NotebookRename {
        title: "still kept".into(),
    };
    let committed = store
        .apply(nb.meta.id, &owner, op, None)
        .await
        .expect("apply");
    store.close().await;

    let again = SqliteStore::connect(&url(&path), StoreOptions::default())
        .await
        .expect("reopen (migrations are idempotent)");
    let got = again
        .notebook(nb.meta.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got.meta.title, "still kept");
    assert_eq!(got.meta.version, 1);
    assert_eq!(got.cells, nb.cells);
    let log = again
        .ops_since(nb.meta.id, 0, 10)
        .await
        .expect("log")
        .expect("kept");
    assert_eq!(log[0].op, committed.op);
}

#[tokio::test]
async fn plain_url_creates_the_file_in_wal_mode() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("new.db");
    let store = SqliteStore::connect(
        &format!("sqlite://{}", path.display()),
        StoreOptions::default(),
    )
    .await
    .expect("open creates the file");
    store.ping().await.expect("ping");
    assert!(path.exists());
    let owner = UserId::parse("u").expect("user");
    store
        .create_notebook(&owner, "t", Map::new(), vec![])
        .await
        .expect("create");
    assert!(
        dir.path().join("new.db-wal").exists(),
        "journal mode is WAL"
    );
}

#[tokio::test]
async fn bad_url_is_an_error_not_a_panic() {
    let res = SqliteStore::connect("sqlite://x?mode=bogus", StoreOptions::default()).await;
    assert!(res.is_err());
}
