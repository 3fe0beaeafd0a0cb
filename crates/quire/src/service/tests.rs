//! The service's ordering promises, observed the way sockets observe them
//! (room events of the hub): side effects happen only after the store
//! change succeeded, and reads see a change as soon as it returns.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::broadcast;

use super::{Actor, Notebooks, ServiceError};
use crate::auth::Revocations;
use crate::notebook::model::{CellType, Notebook, NotebookId, NotebookMeta, Role, UserId};
use crate::notebook::ops::{Committed, NewCell, Op};
use crate::realtime::hub::{RealtimeLimits, RoomEvent, Seat};
use crate::realtime::Hub;
use crate::store::{
    Access, ApplyError, Listed, PageKey, SqliteStore, Store, StoreError, StoreOptions,
};

/// A real (in-memory SQLite) store whose writes fail while `failing` is set,
/// as they would with the database down.
struct FlakyStore {
    inner: SqliteStore,
    failing: AtomicBool,
}

impl FlakyStore {
    fn check(&self) -> Result<(), StoreError> {
        match self.failing.load(Ordering::SeqCst) {
            true => Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut)),
            false => Ok(()),
        }
    }
}

#[async_trait]
impl Store for FlakyStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn create_notebook(
        &self,
        owner: &UserId,
        title: &str,
        metadata: Map<String, Value>,
        cells: Vec<NewCell>,
    ) -> Result<Notebook, ApplyError> {
        self.check()?;
        self.inner
            .create_notebook(owner, title, metadata, cells)
            .await
    }
    async fn notebook(&self, id: NotebookId) -> Result<Option<Notebook>, StoreError> {
        self.inner.notebook(id).await
    }
    async fn notebook_meta(&self, id: NotebookId) -> Result<Option<NotebookMeta>, StoreError> {
        self.inner.notebook_meta(id).await
    }
    async fn role_of(&self, id: NotebookId, user: &UserId) -> Result<Access, StoreError> {
        self.inner.role_of(id, user).await
    }
    async fn list_for_user(
        &self,
        user: &UserId,
        limit: usize,
        after: Option<PageKey>,
    ) -> Result<Vec<(NotebookMeta, Role)>, StoreError> {
        self.inner.list_for_user(user, limit, after).await
    }
    async fn list_for_member(
        &self,
        user: &UserId,
        org: Option<&UserId>,
        limit: usize,
        after: Option<PageKey>,
    ) -> Result<Vec<Listed>, StoreError> {
        self.inner.list_for_member(user, org, limit, after).await
    }
    async fn apply_via(
        &self,
        id: NotebookId,
        author: &UserId,
        via: Option<&UserId>,
        op: Op,
        expect_version: Option<i64>,
    ) -> Result<Committed, ApplyError> {
        self.check()?;
        self.inner
            .apply_via(id, author, via, op, expect_version)
            .await
    }
    async fn remove_member_everywhere(
        &self,
        member: &UserId,
    ) -> Result<Vec<NotebookId>, StoreError> {
        self.check()?;
        self.inner.remove_member_everywhere(member).await
    }
    async fn delete_notebook(&self, id: NotebookId) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.delete_notebook(id).await
    }
    async fn members(&self, id: NotebookId) -> Result<Vec<(UserId, Role)>, StoreError> {
        self.inner.members(id).await
    }
    async fn set_member(
        &self,
        id: NotebookId,
        user: &UserId,
        role: Role,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.set_member(id, user, role).await
    }
    async fn remove_member(&self, id: NotebookId, user: &UserId) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.remove_member(id, user).await
    }
    async fn ops_since(
        &self,
        id: NotebookId,
        after_version: i64,
        max: usize,
    ) -> Result<Option<Vec<Committed>>, StoreError> {
        self.inner.ops_since(id, after_version, max).await
    }
    async fn delete_user(&self, user: &UserId) -> Result<Vec<NotebookId>, StoreError> {
        self.check()?;
        self.inner.delete_user(user).await
    }
    async fn webhook_seen(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.webhook_seen(id).await
    }
    async fn record_webhook(&self, id: &str) -> Result<(), StoreError> {
        self.check()?;
        self.inner.record_webhook(id).await
    }
}

struct Fixture {
    notebooks: Notebooks,
    store: Arc<FlakyStore>,
    hub: Hub,
    owner: UserId,
    /// The owner as the service sees a signed-in user.
    owner_actor: Actor,
    bob: UserId,
    id: NotebookId,
}

async fn fixture() -> Fixture {
    let inner = SqliteStore::connect("sqlite::memory:", StoreOptions::default())
        .await
        .expect("in-memory store");
    let store = Arc::new(FlakyStore {
        inner,
        failing: AtomicBool::new(false),
    });
    let hub = Hub::new(RealtimeLimits::default());
    let notebooks = Notebooks::new(
        store.clone(),
        hub.clone(),
        None,
        Arc::new(Revocations::default()),
        true,
    );
    let owner = UserId::parse("user_owner").unwrap();
    let bob = UserId::parse("user_bob").unwrap();
    let cells = vec![NewCell::new(CellType::Code, "1")];
    let id = notebooks
        .create(&Actor::user(owner.clone()), "t", Map::new(), cells)
        .await
        .expect("create")
        .meta
        .id;
    Fixture {
        notebooks,
        store,
        hub,
        owner_actor: Actor::user(owner.clone()),
        owner,
        bob,
        id,
    }
}

impl Fixture {
    fn fail_writes(&self, on: bool) {
        self.store.failing.store(on, Ordering::SeqCst);
    }

    /// What a socket of `user` on the notebook sees.
    fn socket(&self, user: &UserId, role: Role) -> Socket {
        let mut seat = self.hub.join(self.id, user, role);
        let rx = seat.take_receiver();
        Socket { _seat: seat, rx }
    }
}

struct Socket {
    _seat: Seat,
    rx: broadcast::Receiver<Arc<RoomEvent>>,
}

impl Socket {
    /// The room events received so far, in short, presence left out (it is
    /// coalesced on a timer and says nothing about changes).
    fn changes(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.rx.try_recv().ok())
            .filter_map(|e| match &*e {
                RoomEvent::Presence(_) => None,
                RoomEvent::Op { version, .. } => Some(format!("op {version}")),
                RoomEvent::Role { user, role } => Some(format!("role {} {role:?}", user.as_str())),
                RoomEvent::Removed { user } => Some(format!("removed {}", user.as_str())),
                RoomEvent::Deleted => Some("deleted".into()),
            })
            .collect()
    }
}

#[tokio::test]
async fn a_failed_removal_leaves_the_members_socket_open() {
    let f = fixture().await;
    let n = &f.notebooks;
    n.set_member(f.id, &f.owner_actor, &f.bob, Role::Editor)
        .await
        .unwrap();
    let mut bob = f.socket(&f.bob, Role::Editor);

    f.fail_writes(true);
    let err = n
        .remove_member(f.id, &f.owner_actor, &f.bob)
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Store(_)), "{err:?}");
    assert!(bob.changes().is_empty(), "nothing may reach sockets");
    assert_eq!(
        n.role_of(f.id, &Actor::user(f.bob.clone())).await.unwrap(),
        Role::Editor
    );

    f.fail_writes(false);
    n.remove_member(f.id, &f.owner_actor, &f.bob).await.unwrap();
    assert_eq!(bob.changes(), ["removed user_bob"]);
    // The change is visible to the next access check at once.
    let err = n
        .role_of(f.id, &Actor::user(f.bob.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::NoAccess), "{err:?}");
}

#[tokio::test]
async fn a_failed_op_is_not_broadcast() {
    let f = fixture().await;
    let n = &f.notebooks;
    let mut socket = f.socket(&f.owner, Role::Owner);
    let rename = |title: &str| Op::NotebookRename {
        title: title.into(),
    };

    f.fail_writes(true);
    assert!(n
        .apply(f.id, &f.owner_actor, rename("lost"), None)
        .await
        .is_err());
    assert!(socket.changes().is_empty());

    f.fail_writes(false);
    let committed = n
        .apply(f.id, &f.owner_actor, rename("kept"), None)
        .await
        .unwrap();
    assert_eq!(socket.changes(), [format!("op {}", committed.version)]);
}

#[tokio::test]
async fn a_failed_delete_keeps_the_notebook_and_its_sockets() {
    let f = fixture().await;
    let n = &f.notebooks;
    let mut socket = f.socket(&f.owner, Role::Owner);

    f.fail_writes(true);
    assert!(n.delete(f.id, &f.owner_actor).await.is_err());
    assert!(socket.changes().is_empty());
    assert!(n.snapshot(f.id).await.unwrap().is_some());

    f.fail_writes(false);
    n.delete(f.id, &f.owner_actor).await.unwrap();
    assert_eq!(socket.changes(), ["deleted"]);
    let err = n.role_of(f.id, &f.owner_actor).await.unwrap_err();
    assert!(matches!(err, ServiceError::NotebookNotFound), "{err:?}");
}

#[tokio::test]
async fn only_the_owner_shares_and_never_with_themselves() {
    let f = fixture().await;
    let n = &f.notebooks;
    n.set_member(f.id, &f.owner_actor, &f.bob, Role::Editor)
        .await
        .unwrap();
    let carol = UserId::parse("user_carol").unwrap();
    let by_editor = n
        .set_member(f.id, &Actor::user(f.bob.clone()), &carol, Role::Viewer)
        .await;
    assert!(
        matches!(by_editor, Err(ServiceError::NotOwner)),
        "{by_editor:?}"
    );
    let to_self = n
        .set_member(f.id, &f.owner_actor, &f.owner, Role::Viewer)
        .await;
    assert!(
        matches!(to_self, Err(ServiceError::Invalid(_))),
        "{to_self:?}"
    );
    assert_eq!(n.role_of(f.id, &f.owner_actor).await.unwrap(), Role::Owner);
}
