//! Who may have a socket on a notebook: authentication (the upgrade's bearer
//! token, or a first `auth` message within the auth timeout), the access
//! check, and one of the user's connection slots. Nothing about the notebook
//! is sent before this has passed.

use clerk_auth::Principal;
use futures::{Stream, StreamExt};

use super::deps::SessionDeps;
use super::error::SocketError;
use super::hub::UserSlot;
use super::protocol::{self, ClientMsg, CloseReason, Since};
use super::transport::{ended, Inbound};
use crate::notebook::model::{NotebookId, Role, UserId};
use crate::service::Actor;
use crate::store::{Access, StoreError};

/// An authenticated caller with access and a connection slot: what a
/// session starts from.
pub struct Admitted {
    pub principal: Principal,
    pub actor: Actor,
    /// The actor's own role and its organization's (see [`Actor::grant`]).
    pub own: Option<Role>,
    pub org_role: Option<Role>,
    pub role: Role,
    pub slot: UserSlot,
    pub since: Option<Since>,
}

/// Why a verified caller may not have a socket on this notebook.
#[derive(Debug)]
pub enum Refusal {
    /// The token's `sub` is not a user id we accept.
    BadSubject,
    NoAccess,
    NotFound,
    /// The access check could not be made (store down).
    Unavailable(StoreError),
    /// The user is at the per-user connection cap.
    TooManyConnections,
}

/// Access check and connection slot for a verified principal: the same
/// admission for header auth (refused as HTTP before the upgrade) and for
/// first-message auth (refused with a close code).
pub async fn admit(
    deps: &SessionDeps,
    id: NotebookId,
    principal: Principal,
    since: Option<Since>,
) -> Result<Admitted, Refusal> {
    let actor = deps.auth.actor(&principal).ok_or(Refusal::BadSubject)?;
    let own = member_role(deps, id, &actor.id).await?;
    let org_role = match &actor.org {
        Some(org) => member_role(deps, id, org).await?,
        None => None,
    };
    let role = actor.grant(own, org_role).ok_or(Refusal::NoAccess)?.role;
    let slot = deps
        .hub
        .reserve_user(&actor.id)
        .ok_or(Refusal::TooManyConnections)?;
    Ok(Admitted {
        principal,
        actor,
        own,
        org_role,
        role,
        slot,
        since,
    })
}

/// One member's own role on the notebook, fresh from the store.
async fn member_role(
    deps: &SessionDeps,
    id: NotebookId,
    member: &UserId,
) -> Result<Option<Role>, Refusal> {
    match deps.changes.access(id, member).await {
        Ok(Access::Role(role)) => Ok(Some(role)),
        Ok(Access::NoAccess) => Ok(None),
        Ok(Access::NotFound) => Err(Refusal::NotFound),
        Err(e) => Err(Refusal::Unavailable(e)),
    }
}

/// Waits for `{"type":"auth","token"}` within the auth timeout, verifies it
/// and admits the caller; any failure is the close to send.
pub async fn first_message<R>(
    deps: &SessionDeps,
    id: NotebookId,
    stream: &mut R,
) -> Result<Admitted, CloseReason>
where
    R: Stream<Item = Inbound> + Unpin,
{
    let cancel = deps.hub.shutdown_token();
    let frame = tokio::select! {
        _ = cancel.cancelled() => return Err(CloseReason::ShuttingDown),
        frame = tokio::time::timeout(deps.limits.auth_timeout, next_text(stream)) => match frame {
            Err(_) => return Err(CloseReason::NoAuthInTime),
            Ok(frame) => frame?,
        },
    };
    if frame.len() > deps.limits.max_message_bytes {
        return Err(CloseReason::TooLarge);
    }
    let (token, since) = match protocol::parse(&frame) {
        Ok(ClientMsg::Auth { token, since }) => (token, since),
        Ok(_) | Err(Some(_)) => return Err(CloseReason::AuthenticateFirst),
        Err(None) => return Err(CloseReason::FirstMessageNotJson),
    };
    let principal = deps
        .auth
        .verify(&token)
        .await
        .map_err(|e| SocketError::Auth(e).close())?;
    admit(deps, id, principal, since)
        .await
        .map_err(|r| SocketError::Refused(r).close())
}

/// The next text message (pings/pongs skipped); anything else ends the wait.
async fn next_text<R>(stream: &mut R) -> Result<String, CloseReason>
where
    R: Stream<Item = Inbound> + Unpin,
{
    loop {
        match stream.next().await {
            Some(Inbound::Text(text)) => return Ok(text),
            Some(Inbound::Control) => continue,
            other => return Err(ended(other)),
        }
    }
}
