//! What a socket session needs from the rest of the server, as narrow traits:
//! the change path and notebook reads ([`ChangePath`]), token verification
//! ([`Authenticate`]), and the hub. The session sees only [`SessionDeps`],
//! never `AppState`, so it can be unit tested against a fake, and the server
//! wires it up in one adapter (`api/ws.rs`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clerk_auth::{AuthError, Principal};

use super::hub::{Hub, RealtimeLimits};
use crate::notebook::model::{Notebook, NotebookId, UserId};
use crate::notebook::ops::{Committed, Op};
use crate::service::{Actor, ServiceError};
use crate::store::{Access, StoreError};

/// Notebook reads and the single change path, as the session uses them.
#[async_trait]
pub trait ChangePath: Send + Sync {
    /// Validates, commits and publishes one op (acks follow the commit).
    async fn apply(
        &self,
        id: NotebookId,
        author: &Actor,
        op: Op,
    ) -> Result<Committed, ServiceError>;

    /// The member's own access to the notebook, read fresh (admission asks
    /// for the actor and for its organization).
    async fn access(&self, id: NotebookId, user: &UserId) -> Result<Access, StoreError>;

    /// The notebook as of its last commit (a full `ready`); `None`: gone.
    async fn snapshot(&self, id: NotebookId) -> Result<Option<Notebook>, StoreError>;

    /// The notebook's epoch (resume); `None`: gone.
    async fn epoch(&self, id: NotebookId) -> Result<Option<String>, StoreError>;

    /// The ops after `after`, at most `max`; `None` when the log no longer
    /// holds them all.
    async fn ops_since(
        &self,
        id: NotebookId,
        after: i64,
        max: usize,
    ) -> Result<Option<Vec<Committed>>, StoreError>;
}

/// The one verification call, as the session uses it.
#[async_trait]
pub trait Authenticate: Send + Sync {
    /// Verifies a token (signature, claims, revocation).
    async fn verify(&self, token: &str) -> Result<Principal, AuthError>;

    /// Whether the principal's session or user has been revoked (asked
    /// directly when the session missed revocation events).
    fn is_revoked(&self, principal: &Principal) -> bool;

    /// Who the principal acts as (revoked org memberships left out);
    /// `None` when its subject is not an id we accept.
    fn actor(&self, principal: &Principal) -> Option<Actor>;

    /// The verifier's clock skew: part of the expiry deadline.
    fn clock_skew(&self) -> Duration;
}

/// Everything a socket session depends on. A cheap clone.
#[derive(Clone)]
pub struct SessionDeps {
    pub changes: Arc<dyn ChangePath>,
    pub auth: Arc<dyn Authenticate>,
    pub hub: Hub,
    pub limits: RealtimeLimits,
}
