//! [`Notebooks`]: the service every caller changes notebooks through.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Actor, Grant, ServiceError};
use crate::auth::Revocations;
use crate::cache::{ReadCache, Snapshot};
use crate::notebook::model::{Notebook, NotebookId, NotebookMeta, Role, UserId};
use crate::notebook::ops::{Committed, NewCell, Op};
use crate::realtime::fanout::{Control, Fanout};
use crate::realtime::Hub;
use crate::store::{PageKey, Store};

/// Memory for cached notebook snapshots.
const READ_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// The service: store + read cache + hub + fan-out + revocations, behind
/// one method per change. A cheap clone (one `Arc`).
#[derive(Clone)]
pub struct Notebooks {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    reads: ReadCache,
    hub: Hub,
    fanout: Option<Fanout>,
    revocations: Arc<Revocations>,
}

/// A Clerk account event the service acts on (parsed from a webhook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountEvent {
    /// `session.revoked` / `session.ended` / `session.removed`.
    SessionEnded(String),
    /// `user.deleted`.
    UserDeleted(UserId),
    /// `organizationMembership.deleted`: the user left (or was removed from) the org.
    OrgMembershipDeleted { user: UserId, org: UserId },
    /// `organization.deleted`.
    OrgDeleted(UserId),
    /// Anything else: nothing to do, but the delivery is still recorded.
    Ignored,
}

impl Notebooks {
    /// The service over these handles. `cache_on` says whether the read cache
    /// may start enabled (this process sees every write; see `app`).
    pub fn new(
        store: Arc<dyn Store>,
        hub: Hub,
        fanout: Option<Fanout>,
        revocations: Arc<Revocations>,
        cache_on: bool,
    ) -> Notebooks {
        Notebooks {
            inner: Arc::new(Inner {
                store,
                reads: ReadCache::new(READ_CACHE_BYTES, cache_on),
                hub,
                fanout,
                revocations,
            }),
        }
    }

    fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    // ---- reads -------------------------------------------------------------

    /// The notebook as of its last commit, from memory when possible; `None`
    /// when it does not exist. No access check: for callers that did one.
    pub async fn snapshot(&self, id: NotebookId) -> Result<Option<Arc<Snapshot>>, ServiceError> {
        Ok(self.inner.reads.get(self.store(), id).await?)
    }

    /// The notebook and the caller's role on it: `NotebookNotFound` when it
    /// does not exist, `NoAccess` when the caller may not see it.
    pub async fn open(
        &self,
        id: NotebookId,
        actor: &Actor,
    ) -> Result<(Arc<Snapshot>, Role), ServiceError> {
        let snapshot = self
            .snapshot(id)
            .await?
            .ok_or(ServiceError::NotebookNotFound)?;
        let role = self.grant(&snapshot, actor)?.role;
        Ok((snapshot, role))
    }

    /// The snapshot's access for the actor, `NoAccess` when none.
    fn grant(&self, snapshot: &Snapshot, actor: &Actor) -> Result<Grant, ServiceError> {
        snapshot.grant(actor).ok_or(ServiceError::NoAccess)
    }

    /// The caller's role on a notebook (errors as [`Notebooks::open`]).
    pub async fn role_of(&self, id: NotebookId, actor: &Actor) -> Result<Role, ServiceError> {
        Ok(self.open(id, actor).await?.1)
    }

    /// `NotOwner` unless `actor` owns the notebook (after the checks of `role_of`).
    pub async fn require_owner(&self, id: NotebookId, actor: &Actor) -> Result<(), ServiceError> {
        match self.role_of(id, actor).await? {
            Role::Owner => Ok(()),
            _ => Err(ServiceError::NotOwner),
        }
    }

    /// Notebooks the actor owns, is a member of, or reaches through its
    /// active organization, newest first, at most `limit`, strictly after
    /// `after`; with the organization when the access comes only from it.
    pub async fn list(
        &self,
        actor: &Actor,
        limit: usize,
        after: Option<PageKey>,
    ) -> Result<Vec<(NotebookMeta, Grant)>, ServiceError> {
        let listed = self
            .store()
            .list_for_member(&actor.id, actor.org.as_ref(), limit, after)
            .await?;
        Ok(listed
            .into_iter()
            .filter_map(|l| Some((l.meta, actor.grant(l.own, l.org)?)))
            .collect())
    }

    /// Everyone with access, owner first; any member may read it.
    pub async fn members(
        &self,
        id: NotebookId,
        actor: &Actor,
    ) -> Result<Vec<(UserId, Role)>, ServiceError> {
        self.role_of(id, actor).await?;
        Ok(self.store().members(id).await?)
    }

    // ---- notebook changes --------------------------------------------------

    /// A new notebook owned by `owner` (version 0; creation is not an op, and
    /// nobody can be listening to a notebook that did not exist).
    /// Only a user with a write-capable token may create (see
    /// [`Actor::may_create`]); anyone else is `NoAccess`.
    pub async fn create(
        &self,
        owner: &Actor,
        title: &str,
        metadata: Map<String, Value>,
        cells: Vec<NewCell>,
    ) -> Result<Notebook, ServiceError> {
        if !owner.may_create() {
            return Err(ServiceError::NoAccess);
        }
        Ok(self
            .store()
            .create_notebook(&owner.id, title, metadata, cells)
            .await?)
    }

    /// THE op path for REST and sockets: the store validates (role included,
    /// inside the commit) and commits; only then is the op published to this
    /// process's sockets and to the fan-out, in version order (the commit
    /// lock spans both). A failed apply publishes nothing.
    pub async fn apply(
        &self,
        id: NotebookId,
        author: &Actor,
        op: Op,
        expect_version: Option<i64>,
    ) -> Result<Committed, ServiceError> {
        if author.is_capped() && !self.role_of(id, author).await?.can_write() {
            // The store knows roles, not scopes: a read-only token stops here.
            return Err(ServiceError::ReadOnly);
        }
        let _ordered = self.hub().commit_lock(id).await;
        let result = self
            .store()
            .apply_via(id, &author.id, author.org.as_ref(), op, expect_version)
            .await;
        // Even a failed apply may mean our snapshot was stale (e.g. a 412).
        self.inner.reads.invalidate(id);
        let committed = result?;
        metrics::counter!("notebook_ops_total").increment(1);
        self.hub().publish(self.store(), &committed).await;
        if let Some(fanout) = &self.inner.fanout {
            fanout.publish_op(&committed);
        }
        Ok(committed)
    }

    /// [`Notebooks::apply`], then the notebook as it is after the commit
    /// (what REST returns for renames and moves).
    pub async fn apply_and_read(
        &self,
        id: NotebookId,
        author: &Actor,
        op: Op,
        expect_version: Option<i64>,
    ) -> Result<Arc<Snapshot>, ServiceError> {
        self.apply(id, author, op, expect_version).await?;
        self.snapshot(id)
            .await?
            .ok_or(ServiceError::NotebookNotFound)
    }

    /// Deletes a notebook (owner only); its sockets close with 4404 on every process.
    pub async fn delete(&self, id: NotebookId, by: &Actor) -> Result<(), ServiceError> {
        self.require_owner(id, by).await?;
        if !self.store().delete_notebook(id).await? {
            return Err(ServiceError::NotebookNotFound);
        }
        self.notebook_deleted(id);
        Ok(())
    }

    // ---- membership --------------------------------------------------------

    /// Adds `user` as editor/viewer or changes their role (owner only). Their
    /// open sockets switch role live, on every process.
    pub async fn set_member(
        &self,
        id: NotebookId,
        by: &Actor,
        user: &UserId,
        role: Role,
    ) -> Result<(), ServiceError> {
        self.require_owner(id, by).await?;
        if role == Role::Owner {
            return Err(ServiceError::Invalid(
                "role must be \"editor\" or \"viewer\"".into(),
            ));
        }
        if *user == by.id {
            return Err(ServiceError::Invalid(
                "the owner cannot change their own role".into(),
            ));
        }
        self.store().set_member(id, user, role).await?;
        self.member_changed(id, user, Some(role));
        Ok(())
    }

    /// Removes a member (owner only); their open sockets close with 4403.
    pub async fn remove_member(
        &self,
        id: NotebookId,
        by: &Actor,
        user: &UserId,
    ) -> Result<(), ServiceError> {
        self.require_owner(id, by).await?;
        if !self.store().remove_member(id, user).await? {
            return Err(ServiceError::MemberNotFound);
        }
        self.member_changed(id, user, None);
        Ok(())
    }

    // ---- account events (Clerk webhooks) ------------------------------------

    /// Whether a webhook delivery was already applied (Svix retries reuse the id).
    pub async fn delivery_seen(&self, delivery: &str) -> Result<bool, ServiceError> {
        Ok(self.store().webhook_seen(delivery).await?)
    }

    /// Applies an account event, then records the delivery. Effects are
    /// idempotent and come first, so a delivery that failed half-way is
    /// safely applied again on retry.
    pub async fn account_event(
        &self,
        delivery: &str,
        event: AccountEvent,
    ) -> Result<(), ServiceError> {
        match &event {
            AccountEvent::SessionEnded(session_id) => self.revoke_session(session_id),
            AccountEvent::UserDeleted(user) => self.delete_user(user).await?,
            AccountEvent::OrgMembershipDeleted { user, org } => {
                self.revoke_org_membership(user, org)
            }
            AccountEvent::OrgDeleted(org) => self.delete_org(org).await?,
            AccountEvent::Ignored => {}
        }
        Ok(self.store().record_webhook(delivery).await?)
    }

    /// A Clerk session ended: its tokens are refused and its sockets close
    /// (4401), here and on every other process.
    pub fn revoke_session(&self, session_id: &str) {
        self.local_revoke_session(session_id);
        self.broadcast(Control::SessionRevoked {
            session_id: session_id.to_string(),
        });
    }

    /// A Clerk user was deleted: their notebooks go (other sockets on them
    /// close 4404), their memberships go, their tokens are refused and their
    /// own sockets close (4401).
    pub async fn delete_user(&self, user: &UserId) -> Result<(), ServiceError> {
        // Refuse their tokens and close their sockets here at once: the user
        // is gone from Clerk whatever our store says ...
        self.inner.revocations.revoke_user(user.as_str());
        self.hub().user_revoked(user);
        let deleted = self.store().delete_user(user).await?;
        for id in deleted {
            self.notebook_deleted(id);
        }
        // ... and tell the other processes only now, so that none re-caches
        // a membership the deletion has just removed.
        self.inner.reads.clear();
        self.broadcast(Control::UserRevoked { user: user.clone() });
        Ok(())
    }

    /// A user left an organization: their tokens still name it, but its
    /// shares stop counting for them at once, and their sockets that had
    /// access only through it close (4403), here and on every process.
    pub fn revoke_org_membership(&self, user: &UserId, org: &UserId) {
        self.local_revoke_org_membership(user, org);
        self.broadcast(Control::OrgMembershipRevoked {
            user: user.clone(),
            org: org.clone(),
        });
    }

    /// An organization was deleted: its shares go, and sockets whose access
    /// came only through it close (4403).
    pub async fn delete_org(&self, org: &UserId) -> Result<(), ServiceError> {
        for id in self.store().remove_member_everywhere(org).await? {
            self.member_changed(id, org, None);
        }
        Ok(())
    }

    // ---- the fan-out (other processes) --------------------------------------

    /// Another process committed an op: forget our snapshot, tell our sockets.
    pub async fn remote_commit(&self, committed: &Committed) {
        self.inner.reads.invalidate(committed.notebook_id);
        self.hub().publish(self.store(), committed).await;
    }

    /// Another process changed access or revoked a session.
    pub fn remote_control(&self, control: Control) {
        match control {
            Control::Member {
                notebook,
                user,
                role,
            } => self.local_member_changed(notebook, &user, role),
            Control::Deleted { notebook } => self.local_notebook_deleted(notebook),
            Control::SessionRevoked { session_id } => self.local_revoke_session(&session_id),
            Control::UserRevoked { user } => self.local_revoke_user(&user),
            Control::OrgMembershipRevoked { user, org } => {
                self.local_revoke_org_membership(&user, &org)
            }
            // Handled by the relay directly (it needs the sender's identity).
            Control::Presence { .. } => {}
        }
    }

    /// The fan-out went down: we may miss other processes' changes.
    pub fn fanout_degraded(&self) {
        self.inner.reads.set_enabled(false);
    }

    /// The fan-out is (back) up: start from a clean cache and bring open
    /// rooms up to date from the op log.
    pub async fn fanout_recovered(&self) {
        self.inner.reads.set_enabled(true);
        self.hub().catch_up(self.store()).await;
    }

    // ---- side effects, local and broadcast -----------------------------------

    fn notebook_deleted(&self, id: NotebookId) {
        self.local_notebook_deleted(id);
        self.broadcast(Control::Deleted { notebook: id });
    }

    fn member_changed(&self, id: NotebookId, user: &UserId, role: Option<Role>) {
        self.local_member_changed(id, user, role);
        self.broadcast(Control::Member {
            notebook: id,
            user: user.clone(),
            role,
        });
    }

    fn local_notebook_deleted(&self, id: NotebookId) {
        self.inner.reads.invalidate(id);
        self.hub().notebook_deleted(id);
    }

    fn local_member_changed(&self, id: NotebookId, user: &UserId, role: Option<Role>) {
        self.inner.reads.invalidate(id);
        self.hub().member_changed(id, user, role);
    }

    fn local_revoke_session(&self, session_id: &str) {
        self.inner.revocations.revoke_session(session_id);
        self.hub().session_revoked(session_id);
    }

    fn local_revoke_org_membership(&self, user: &UserId, org: &UserId) {
        self.inner
            .revocations
            .revoke_org_membership(user.as_str(), org.as_str());
        self.hub().org_membership_revoked(user, org);
    }

    fn local_revoke_user(&self, user: &UserId) {
        self.inner.revocations.revoke_user(user.as_str());
        self.hub().user_revoked(user);
        // Their memberships were in many snapshots; rare enough to start over.
        self.inner.reads.clear();
    }

    /// Tells the other processes (when there are any).
    fn broadcast(&self, control: Control) {
        if let Some(fanout) = &self.inner.fanout {
            fanout.publish_control(&control);
        }
    }
}
