//! One socket's session after admission: the state machine only.
//!
//! Order of business: join the room, send `ready` (full, or resumed with the
//! missed ops), then loop: client ops are rate-limited and handed to the op
//! worker (which commits them one at a time through the change path and acks
//! once committed); room events are relayed in version order (a gap is filled
//! from the op log); revocations and access changes close the socket; pings
//! keep the peer honest; the token's expiry closes it unless refreshed.
//!
//! What it depends on is [`SessionDeps`] (narrow traits, no `AppState`);
//! how it talks is the transport's [`Outbox`] and [`Inbound`]; every time it
//! reads is `tokio::time`, so tests run it on paused time.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clerk_auth::{Principal, PublicCode};
use futures::{Stream, StreamExt};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::admission::{self, Admitted};
use super::deps::SessionDeps;
use super::error::{public, Public, SocketError};
use super::hub::{GlobalEvent, RoomEvent, Seat, UserSlot};
use super::protocol::{self, ClientMsg, CloseReason, ServerMsg, Since, Text};
use super::rate::{TokenBucket, Verdict};
use super::transport::{ended, Inbound, Outbox, Outgoing, Replies, SlowReader};
use crate::notebook::model::{NotebookId, Role, UserId};
use crate::notebook::ops::Op;
use crate::notebook::view::NotebookView;
use crate::service::Actor;

/// Runs a socket to its end: first-message admission unless the upgrade
/// already admitted it, then the session. Queues the close and returns it.
pub async fn run<R>(
    deps: SessionDeps,
    id: NotebookId,
    admitted: Option<Admitted>,
    mut stream: R,
    out: &mut Outbox,
) -> CloseReason
where
    R: Stream<Item = Inbound> + Unpin,
{
    // Boxed: these large futures run once; an idle socket should not carry
    // their space for hours.
    let admitted = match admitted {
        Some(admitted) => Ok(admitted),
        None => Box::pin(admission::first_message(&deps, id, &mut stream)).await,
    };
    let started = match admitted {
        Ok(admitted) => Box::pin(Session::start(deps, id, admitted, out)).await,
        Err(reason) => Err(reason),
    };
    let reason = match started {
        Ok(mut session) => session.run(&mut stream, out).await,
        Err(reason) => reason,
    };
    tracing::debug!(notebook = %id, code = reason.code(), reason = reason.reason(), "socket closed");
    out.close(reason);
    reason
}

/// The close for a peer whose queue is full.
fn slow(_: SlowReader) -> CloseReason {
    CloseReason::SlowReader
}

/// Tells the client about `e`: an `error` message (the socket stays) or the
/// close to send.
fn fail(out: &mut Outbox, r#ref: Option<&str>, e: SocketError) -> Result<(), CloseReason> {
    match public(e) {
        Public::Close(reason) => Err(reason),
        Public::Error(reply) => out.text(reply.text(r#ref)).map_err(slow),
    }
}

/// A token's life on the tokio clock. The wall clock is read once, when the
/// token arrives (its `exp` is wall time); from then on only `tokio::time`
/// counts, so paused-time tests can run a token out.
struct TokenLife {
    exp: Instant,
    /// When an unrefreshed socket must close: `exp + skew + grace`.
    deadline: Instant,
}

impl TokenLife {
    fn new(principal: &Principal, margin: Duration) -> TokenLife {
        let now = Instant::now();
        let left_ms = principal.expires_at * 1000 - unix_millis();
        let after = |extra_ms: i64| now + Duration::from_millis((left_ms + extra_ms).max(0) as u64);
        TokenLife {
            exp: after(0),
            deadline: after(margin.as_millis() as i64),
        }
    }

    /// Whole seconds until `exp`, rounded up (what `expires_in` says).
    fn expires_in(&self) -> i64 {
        let left = self.exp.saturating_duration_since(Instant::now());
        left.as_millis().div_ceil(1000) as i64
    }
}

fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Ops a socket may have waiting for their commit; beyond that the client
/// is told `rate_limited` (back-pressure instead of unbounded queues).
const PENDING_OPS: usize = 32;

/// An authenticated, authorized socket in a room.
struct Session {
    deps: SessionDeps,
    id: NotebookId,
    /// Who acts; the seat's organization is `actor.org`.
    actor: Actor,
    /// The actor's own role and its organization's: `role` is recomputed
    /// from them when either changes, and the socket closes when neither
    /// grants access any more.
    own: Option<Role>,
    org_role: Option<Role>,
    role: Role,
    principal: Principal,
    life: TokenLife,
    rx: broadcast::Receiver<Arc<RoomEvent>>,
    global: broadcast::Receiver<Arc<GlobalEvent>>,
    /// Highest op version this socket has been sent.
    delivered: i64,
    rate: TokenBucket,
    /// The queue to this socket's op worker, started on its first op.
    ops: Option<mpsc::Sender<(Option<String>, Op)>>,
    seat: Seat,
    _slot: UserSlot,
}

impl Session {
    /// Joins the room, then sends `ready` (full, or resumed with the missed ops).
    async fn start(
        deps: SessionDeps,
        id: NotebookId,
        admitted: Admitted,
        out: &mut Outbox,
    ) -> Result<Session, CloseReason> {
        let mut seat = deps.hub.join(id, &admitted.actor.id, admitted.role);
        let limits = &deps.limits;
        let margin = deps.auth.clock_skew() + limits.expiry_grace;
        let mut session = Session {
            id,
            actor: admitted.actor,
            own: admitted.own,
            org_role: admitted.org_role,
            role: admitted.role,
            life: TokenLife::new(&admitted.principal, margin),
            principal: admitted.principal,
            rx: seat.take_receiver(),
            global: deps.hub.subscribe_global(),
            delivered: 0,
            rate: TokenBucket::new(
                limits.ops_per_sec,
                limits.burst,
                limits.rate_limit_close_after,
            ),
            ops: None,
            seat,
            _slot: admitted.slot,
            deps,
        };
        if !session.try_resume(admitted.since.as_ref(), out).await? {
            session.send_ready(out).await?;
        }
        Ok(session)
    }

    fn send(&self, out: &mut Outbox, message: ServerMsg<'_>) -> Result<(), CloseReason> {
        out.text(message.text()).map_err(slow)
    }

    /// Resumes from `since` when the epoch matches and the log has every op.
    async fn try_resume(
        &mut self,
        since: Option<&Since>,
        out: &mut Outbox,
    ) -> Result<bool, CloseReason> {
        let Some(since) = since else { return Ok(false) };
        let changes = self.deps.changes.clone();
        let epoch = changes.epoch(self.id).await.map_err(store_close)?;
        let Some(epoch) = epoch else {
            return Err(CloseReason::NotFound);
        };
        if epoch != since.epoch {
            return Ok(false);
        }
        let max = self.deps.limits.max_replay;
        let Some(ops) = changes
            .ops_since(self.id, since.version, max)
            .await
            .map_err(store_close)?
        else {
            return Ok(false);
        };
        let ready = ServerMsg::Ready {
            resumed: true,
            notebook: None,
            version: since.version,
            epoch: &epoch,
            role: self.role,
            expires_in: self.life.expires_in(),
            metadata: None,
        };
        self.send(out, ready)?;
        self.delivered = since.version;
        for op in &ops {
            out.text(protocol::op(op)).map_err(slow)?;
            self.delivered = op.version;
        }
        Ok(true)
    }

    /// A full `ready` with the notebook as of now.
    async fn send_ready(&mut self, out: &mut Outbox) -> Result<(), CloseReason> {
        let notebook = self
            .deps
            .changes
            .snapshot(self.id)
            .await
            .map_err(store_close)?;
        let Some(notebook) = notebook else {
            return Err(CloseReason::NotFound);
        };
        let ready = ServerMsg::Ready {
            resumed: false,
            notebook: Some(NotebookView::full(&notebook, self.role)),
            version: notebook.meta.version,
            epoch: &notebook.meta.epoch,
            role: self.role,
            expires_in: self.life.expires_in(),
            metadata: Some(&notebook.meta.metadata),
        };
        self.send(out, ready)?;
        self.delivered = notebook.meta.version;
        self.seat.room().observe(self.delivered).await;
        Ok(())
    }

    /// The main loop; returns the close to send.
    async fn run<R>(&mut self, stream: &mut R, out: &mut Outbox) -> CloseReason
    where
        R: Stream<Item = Inbound> + Unpin,
    {
        let (ping_every, pong_timeout) = (
            self.deps.limits.ping_interval,
            self.deps.limits.pong_timeout,
        );
        let cancel = self.deps.hub.shutdown_token();
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        let mut last_seen = Instant::now();
        loop {
            let step = tokio::select! {
                _ = cancel.cancelled() => Err(CloseReason::ShuttingDown),
                _ = tokio::time::sleep_until(self.life.deadline) => Err(CloseReason::TokenExpired),
                _ = ping.tick() => {
                    if last_seen.elapsed() >= pong_timeout {
                        Err(CloseReason::NoPong)
                    } else {
                        out.send(Outgoing::Ping).map_err(slow)
                    }
                }
                event = self.rx.recv() => Box::pin(self.on_event(event, out)).await,
                event = self.global.recv() => self.on_global(event, out),
                inbound = stream.next() => {
                    last_seen = Instant::now();
                    self.on_inbound(inbound, out).await
                }
            };
            if let Err(reason) = step {
                return reason;
            }
        }
    }

    async fn on_inbound(
        &mut self,
        inbound: Option<Inbound>,
        out: &mut Outbox,
    ) -> Result<(), CloseReason> {
        match inbound {
            // Boxed: handling a message (auth refresh, a commit) needs far
            // more space than waiting does, and most sockets mostly wait.
            Some(Inbound::Text(text)) => Box::pin(self.on_text(&text, out)).await,
            Some(Inbound::Control) => Ok(()),
            other => Err(ended(other)),
        }
    }

    async fn on_text(&mut self, text: &str, out: &mut Outbox) -> Result<(), CloseReason> {
        if text.len() > self.deps.limits.max_message_bytes {
            return Err(CloseReason::TooLarge);
        }
        match protocol::parse(text) {
            Err(None) => Err(CloseReason::NotJson),
            Err(Some(bad)) => fail(
                out,
                bad.r#ref.as_deref(),
                SocketError::BadMessage(bad.message),
            ),
            Ok(ClientMsg::Ping) => self.send(out, ServerMsg::Pong),
            Ok(ClientMsg::Auth { token, .. }) => self.refresh(&token, out).await,
            Ok(ClientMsg::Op { r#ref, op }) => self.on_op(r#ref, op, out),
        }
    }

    /// In-band token refresh: same user required.
    async fn refresh(&mut self, token: &str, out: &mut Outbox) -> Result<(), CloseReason> {
        match self.deps.auth.verify(token).await {
            Ok(p) if p.user_id != self.principal.user_id => Err(CloseReason::UserMismatch),
            Ok(p) => {
                let actor = self.deps.auth.actor(&p).ok_or(CloseReason::UserMismatch)?;
                // Another active organization: the old one's share no longer
                // counts (the new one's is read when the socket reconnects).
                if actor.org != self.actor.org {
                    self.org_role = None;
                }
                self.actor = actor;
                let margin = self.deps.auth.clock_skew() + self.deps.limits.expiry_grace;
                self.life = TokenLife::new(&p, margin);
                self.principal = p;
                let expires_in = self.life.expires_in();
                self.send(out, ServerMsg::AuthOk { expires_in })?;
                self.regrant(out)
            }
            // Not the user's fault: keep the socket until the old token runs out.
            Err(e) if e.public_code() == PublicCode::AuthUnavailable => {
                fail(out, None, SocketError::RefreshUnavailable(e))
            }
            Err(e) => fail(out, None, SocketError::Auth(e)),
        }
    }

    fn on_op(
        &mut self,
        r#ref: Option<String>,
        op: Op,
        out: &mut Outbox,
    ) -> Result<(), CloseReason> {
        let refused = match self.rate.take() {
            Verdict::Sustained => return Err(CloseReason::TooManyOps),
            Verdict::Limited => Some(SocketError::RateLimited),
            Verdict::Allowed if !self.role.can_write() => Some(SocketError::ReadOnly),
            Verdict::Allowed => None,
        };
        if let Some(e) = refused {
            return fail(out, r#ref.as_deref(), e);
        }
        let worker = self.ops.get_or_insert_with(|| {
            spawn_op_worker(&self.deps, self.id, &self.actor, out.replies())
        });
        match worker.try_send((r#ref, op)) {
            Ok(()) => Ok(()),
            Err(refused) => {
                let (r#ref, _) = refused.into_inner();
                fail(out, r#ref.as_deref(), SocketError::Backlog)
            }
        }
    }

    /// A member's role changed (`None`: removed). Only the actor's own id
    /// and its organization concern this socket.
    fn member_role(
        &mut self,
        member: &UserId,
        role: Option<Role>,
        out: &mut Outbox,
    ) -> Result<(), CloseReason> {
        if *member == self.actor.id {
            self.own = role;
        } else if self.actor.org.as_ref() == Some(member) {
            self.org_role = role;
        } else {
            return Ok(());
        }
        self.regrant(out)
    }

    /// Recomputes the role; closes (4403) when nothing grants access any
    /// more, tells the client when the role changed.
    fn regrant(&mut self, out: &mut Outbox) -> Result<(), CloseReason> {
        let grant = self.actor.grant(self.own, self.org_role);
        let role = grant.ok_or(CloseReason::AccessRemoved)?.role;
        if role == self.role {
            return Ok(());
        }
        self.role = role;
        self.send(out, ServerMsg::Role { role })
    }

    /// Revocations: close at once when they concern this socket.
    fn on_global(
        &mut self,
        event: Result<Arc<GlobalEvent>, broadcast::error::RecvError>,
        out: &mut Outbox,
    ) -> Result<(), CloseReason> {
        match event {
            Ok(event) => match &*event {
                GlobalEvent::SessionRevoked(sid) if *sid == self.principal.session_id => {
                    Err(CloseReason::Revoked)
                }
                GlobalEvent::UserRevoked(user) if *user == self.actor.id => {
                    Err(CloseReason::Revoked)
                }
                GlobalEvent::OrgMembershipRevoked { user, org }
                    if *user == self.actor.id && self.actor.org.as_ref() == Some(org) =>
                {
                    self.actor.org = None;
                    self.org_role = None;
                    self.regrant(out)
                }
                _ => Ok(()),
            },
            // Missed some: ask the revocation list directly.
            Err(broadcast::error::RecvError::Lagged(_)) => {
                if self.deps.auth.is_revoked(&self.principal) {
                    Err(CloseReason::Revoked)
                } else {
                    Ok(())
                }
            }
            Err(broadcast::error::RecvError::Closed) => Err(CloseReason::ShuttingDown),
        }
    }

    async fn on_event(
        &mut self,
        event: Result<Arc<RoomEvent>, broadcast::error::RecvError>,
        out: &mut Outbox,
    ) -> Result<(), CloseReason> {
        let event = match event {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(_)) => return Err(CloseReason::SlowReader),
            Err(broadcast::error::RecvError::Closed) => return Err(CloseReason::RoomClosed),
        };
        match &*event {
            RoomEvent::Op { version, text } => self.on_op_event(*version, text, out).await,
            RoomEvent::Presence(text) => out.text(text.clone()).map_err(slow),
            RoomEvent::Role { user, role } => self.member_role(user, Some(*role), out),
            RoomEvent::Removed { user } => self.member_role(user, None, out),
            RoomEvent::Deleted => Err(CloseReason::Deleted),
        }
    }

    /// Relays an op in order; a gap is filled from the op log first.
    async fn on_op_event(
        &mut self,
        version: i64,
        text: &Text,
        out: &mut Outbox,
    ) -> Result<(), CloseReason> {
        if version <= self.delivered {
            return Ok(());
        }
        if version > self.delivered + 1 {
            let max = self.deps.limits.max_replay;
            let missed = self
                .deps
                .changes
                .ops_since(self.id, self.delivered, max)
                .await
                .map_err(store_close)?;
            match missed {
                Some(ops) => {
                    for op in ops.iter().filter(|op| op.version < version) {
                        out.text(protocol::op(op)).map_err(slow)?;
                    }
                }
                // Cannot prove continuity: start the client over.
                None => return self.send_ready(out).await,
            }
        }
        out.text(text.clone()).map_err(slow)?;
        self.delivered = version;
        Ok(())
    }
}

/// The close for a store failure while reading for the client.
fn store_close(e: crate::store::StoreError) -> CloseReason {
    SocketError::Store(e).close()
}

/// Commits a socket's ops one at a time, in the order they came, off the
/// relay loop: a slow commit must not stop this socket from receiving
/// everyone else's ops (it would fall behind the room and be closed). Acks and
/// errors go into the same outbound queue. Ends when the session drops its
/// sender; started only for sockets that write, so readers cost nothing.
fn spawn_op_worker(
    deps: &SessionDeps,
    id: NotebookId,
    actor: &Actor,
    replies: Replies,
) -> mpsc::Sender<(Option<String>, Op)> {
    let (tx, mut rx) = mpsc::channel::<(Option<String>, Op)>(PENDING_OPS);
    let (changes, user) = (deps.changes.clone(), actor.clone());
    deps.hub.tasks().spawn(async move {
        while let Some((r#ref, op)) = rx.recv().await {
            // The store checks the role inside the commit, so a demotion
            // that raced with this op is still honoured.
            let reply = match changes.apply(id, &user, op).await {
                Ok(committed) => ServerMsg::Ack {
                    r#ref: r#ref.as_deref(),
                    version: committed.version,
                }
                .text(),
                Err(e) => match public(SocketError::Apply(e)) {
                    Public::Error(reply) => reply.text(r#ref.as_deref()),
                    // Refused ops never close the socket.
                    Public::Close(_) => continue,
                },
            };
            if replies.send(reply).await.is_err() {
                break;
            }
        }
    });
    tx
}

#[cfg(test)]
mod tests {
    //! The session driven through in-memory pipes against fake dependencies
    //! (no sockets, no database), on paused time: timeouts and token expiry
    //! are checked at the instants they happen, without waiting for them.

    use std::collections::HashMap;
    use std::sync::atomic::{AtomicI64, Ordering};

    use async_trait::async_trait;
    use chrono::Utc;
    use clerk_auth::testing::ClerkStandIn;
    use clerk_auth::{AuthError, KeySource, Verifier, VerifierConfig};
    use futures::channel::mpsc as fmpsc;
    use serde_json::{json, Value};

    use super::*;
    use crate::notebook::model::{Notebook, NotebookMeta};
    use crate::notebook::ops::{AppliedOp, Committed};
    use crate::realtime::deps::{Authenticate, ChangePath};
    use crate::realtime::hub::{Hub, RealtimeLimits};
    use crate::realtime::transport::{outbox, OutboxRx};
    use crate::service::ServiceError;
    use crate::store::{Access, StoreError};

    /// A notebook in memory: renames commit, everything else is refused.
    struct FakeChanges {
        notebook: Notebook,
        roles: HashMap<String, Role>,
        version: AtomicI64,
    }

    #[async_trait]
    impl ChangePath for FakeChanges {
        async fn apply(
            &self,
            id: NotebookId,
            author: &Actor,
            op: Op,
        ) -> Result<Committed, ServiceError> {
            let author = &author.id;
            let Op::NotebookRename { title } = op else {
                return Err(ServiceError::NotebookNotFound);
            };
            Ok(Committed {
                notebook_id: id,
                version: self.version.fetch_add(1, Ordering::SeqCst) + 1,
                author: author.clone(),
                op: AppliedOp::NotebookRename { title },
                cell: None,
                at: Utc::now(),
            })
        }

        async fn access(&self, _: NotebookId, user: &UserId) -> Result<Access, StoreError> {
            Ok(match self.roles.get(user.as_str()) {
                Some(role) => Access::Role(*role),
                None => Access::NoAccess,
            })
        }

        async fn snapshot(&self, _: NotebookId) -> Result<Option<Notebook>, StoreError> {
            let mut notebook = self.notebook.clone();
            notebook.meta.version = self.version.load(Ordering::SeqCst);
            Ok(Some(notebook))
        }

        async fn epoch(&self, _: NotebookId) -> Result<Option<String>, StoreError> {
            Ok(Some(self.notebook.meta.epoch.clone()))
        }

        async fn ops_since(
            &self,
            _: NotebookId,
            _: i64,
            _: usize,
        ) -> Result<Option<Vec<Committed>>, StoreError> {
            Ok(Some(Vec::new()))
        }
    }

    /// The real verifier on the stand-in's PEM key: CPU only, no I/O.
    struct StandInAuth(Verifier);

    #[async_trait]
    impl Authenticate for StandInAuth {
        async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
            self.0.verify(token).await
        }

        fn is_revoked(&self, _: &Principal) -> bool {
            false
        }

        fn actor(&self, principal: &Principal) -> Option<Actor> {
            Actor::of(principal, &crate::auth::Revocations::default())
        }

        fn clock_skew(&self) -> Duration {
            self.0.config().clock_skew
        }
    }

    struct Harness {
        deps: SessionDeps,
        standin: ClerkStandIn,
        id: NotebookId,
    }

    const SKEW: Duration = Duration::from_secs(5);

    fn harness(limits: RealtimeLimits) -> Harness {
        let standin = ClerkStandIn::new();
        let config = VerifierConfig {
            issuer: Some(standin.issuer()),
            ..VerifierConfig::default()
        };
        assert_eq!(config.clock_skew, SKEW, "the DESIGN default");
        let verifier = Verifier::new(KeySource::Pem(standin.public_key_pem()), config).unwrap();
        let id = NotebookId::new();
        let owner = UserId::parse("user_a").unwrap();
        let meta = NotebookMeta {
            id,
            title: "t".into(),
            owner_id: owner,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            version: 0,
            epoch: "e1".into(),
            metadata: Default::default(),
        };
        let roles = HashMap::from([
            ("user_a".to_string(), Role::Owner),
            ("user_v".to_string(), Role::Viewer),
        ]);
        let changes = FakeChanges {
            notebook: Notebook {
                meta,
                cells: Vec::new(),
            },
            roles,
            version: AtomicI64::new(0),
        };
        let deps = SessionDeps {
            changes: Arc::new(changes),
            auth: Arc::new(StandInAuth(verifier)),
            hub: Hub::new(limits.clone()),
            limits,
        };
        Harness { deps, standin, id }
    }

    /// Far beyond every server timer: only a hang guard (free on paused time).
    const GUARD: Duration = Duration::from_secs(3600);

    /// A client end: what it sends goes in, what the session queues comes out.
    struct Client {
        to_server: fmpsc::UnboundedSender<Inbound>,
        from_server: OutboxRx,
    }

    impl Client {
        fn send(&self, v: Value) {
            self.to_server
                .unbounded_send(Inbound::Text(v.to_string()))
                .unwrap();
        }

        /// A ping or pong: proof of life.
        fn keepalive(&self) {
            self.to_server.unbounded_send(Inbound::Control).unwrap();
        }

        /// The next message, pings skipped.
        async fn next(&mut self) -> Outgoing {
            loop {
                match tokio::time::timeout(GUARD, self.from_server.recv()).await {
                    Ok(Some(Outgoing::Ping)) => continue,
                    Ok(Some(message)) => return message,
                    Ok(None) => panic!("the session ended without a close"),
                    Err(_) => panic!("hang guard"),
                }
            }
        }

        /// The next JSON message other than presence; panics on a close.
        async fn json(&mut self) -> Value {
            loop {
                match self.next().await {
                    Outgoing::Text(t) => {
                        let v: Value = serde_json::from_str(t.as_str()).unwrap();
                        if v["type"] != "presence" {
                            return v;
                        }
                    }
                    other => panic!("expected a message, got {other:?}"),
                }
            }
        }

        /// Reads until the close; panics on anything but presence before it.
        async fn close(&mut self) -> CloseReason {
            loop {
                match self.next().await {
                    Outgoing::Close(reason) => return reason,
                    Outgoing::Text(t) if t.as_str().contains(r#""type":"presence""#) => {}
                    other => panic!("expected the close, got {other:?}"),
                }
            }
        }

        /// Stays responsive (as a browser answering pings would) for `d`.
        async fn alive_for(&self, d: Duration) {
            let step = Duration::from_secs(10);
            let mut left = d;
            while !left.is_zero() {
                self.keepalive();
                let now = step.min(left);
                tokio::time::advance(now).await;
                left -= now;
            }
        }
    }

    fn connect(h: &Harness) -> Client {
        let (to_server, stream) = fmpsc::unbounded();
        let (mut out, from_server) = outbox(h.deps.limits.outbound_queue);
        let (deps, id) = (h.deps.clone(), h.id);
        tokio::spawn(async move { run(deps, id, None, stream, &mut out).await });
        Client {
            to_server,
            from_server,
        }
    }

    /// Connects and authenticates with a token of `lifetime` seconds.
    async fn ready(h: &Harness, user: &str, lifetime: i64) -> (Client, Value) {
        let mut client = connect(h);
        let token = h.standin.token(user).lifetime(lifetime).sign();
        client.send(json!({"type": "auth", "token": token}));
        let ready = client.json().await;
        assert_eq!(ready["type"], "ready", "{ready}");
        (client, ready)
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_gets_nothing_then_4408_after_the_auth_timeout() {
        let h = harness(RealtimeLimits::default());
        let start = Instant::now();
        let mut client = connect(&h);
        // The very first thing the session queues is the close: no data before auth.
        assert_eq!(client.next().await.close_code(), Some(4408));
        assert_eq!(start.elapsed(), RealtimeLimits::default().auth_timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn auth_then_ready_then_op_then_ack() {
        let h = harness(RealtimeLimits::default());
        let (mut client, ready) = ready(&h, "user_a", 60).await;
        assert_eq!(
            (&ready["version"], &ready["role"], &ready["epoch"]),
            (&json!(0), &json!("owner"), &json!("e1"))
        );
        assert_eq!(ready["notebook"]["title"], "t");
        assert_eq!(ready["expires_in"], 60);
        client.send(json!({"type": "notebook.rename", "ref": "r1", "title": "u"}));
        let ack = client.json().await;
        assert_eq!(ack, json!({"type": "ack", "ref": "r1", "version": 1}));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stranger_is_closed_4403_and_a_forged_token_4401() {
        let h = harness(RealtimeLimits::default());
        let mut stranger = connect(&h);
        stranger.send(json!({"type": "auth", "token": h.standin.token("user_b").sign()}));
        assert_eq!(stranger.close().await, CloseReason::NoAccess);
        let mut forger = connect(&h);
        let forged = ClerkStandIn::new().token("user_a").sign();
        forger.send(json!({"type": "auth", "token": forged}));
        assert_eq!(forger.close().await, CloseReason::InvalidToken);
    }

    #[tokio::test(start_paused = true)]
    async fn a_viewers_op_is_forbidden_and_the_socket_stays() {
        let h = harness(RealtimeLimits::default());
        let (mut client, _) = ready(&h, "user_v", 60).await;
        client.send(json!({"type": "notebook.rename", "ref": "r1", "title": "u"}));
        let error = client.json().await;
        assert_eq!(
            (&error["code"], &error["ref"]),
            (&json!("forbidden"), &json!("r1"))
        );
        client.send(json!({"type": "ping"}));
        assert_eq!(client.json().await, json!({"type": "pong"}));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unrefreshed_socket_closes_4401_between_exp_and_exp_plus_skew_and_grace() {
        let h = harness(RealtimeLimits::default());
        let token = h.standin.token("user_a").lifetime(20);
        let exp_ms = token.claims()["exp"].as_i64().unwrap() * 1000;
        let (start, wall_start) = (Instant::now(), unix_millis());
        let mut client = connect(&h);
        client.send(json!({"type": "auth", "token": token.sign()}));
        assert_eq!(client.json().await["type"], "ready");
        // Stays open up to exp (keeping up with pings meanwhile).
        let until_exp = Duration::from_millis((exp_ms - wall_start - 1000).max(0) as u64);
        client.alive_for(until_exp).await;
        client.send(json!({"type": "ping"}));
        assert_eq!(client.json().await, json!({"type": "pong"}));
        // Then closes, by itself, at exp + skew + grace.
        assert_eq!(client.close().await, CloseReason::TokenExpired);
        let closed_ms = wall_start + start.elapsed().as_millis() as i64;
        let grace = RealtimeLimits::default().expiry_grace;
        assert!(
            closed_ms >= exp_ms,
            "closed {} ms before exp",
            exp_ms - closed_ms
        );
        let latest = exp_ms + (SKEW + grace).as_millis() as i64;
        assert!(closed_ms <= latest, "closed {} ms late", closed_ms - latest);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresh_keeps_the_socket_past_the_first_tokens_deadline() {
        let h = harness(RealtimeLimits::default());
        let (mut client, _) = ready(&h, "user_a", 20).await;
        let fresh = h.standin.token("user_a").lifetime(3600).sign();
        client.send(json!({"type": "auth", "token": fresh}));
        let ok = client.json().await;
        assert_eq!(ok, json!({"type": "auth.ok", "expires_in": 3600}));
        // Well past the first token's exp + skew + grace.
        client.alive_for(Duration::from_secs(60)).await;
        client.send(json!({"type": "ping"}));
        assert_eq!(client.json().await, json!({"type": "pong"}));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresh_for_another_user_closes_4403() {
        let h = harness(RealtimeLimits::default());
        let (mut client, _) = ready(&h, "user_a", 60).await;
        let other = h.standin.token("user_v").sign();
        client.send(json!({"type": "auth", "token": other}));
        assert_eq!(client.close().await, CloseReason::UserMismatch);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_answering_pings_is_closed_4408_after_the_pong_timeout() {
        let limits = RealtimeLimits::default();
        let h = harness(limits.clone());
        let (mut client, _) = ready(&h, "user_a", 3600).await;
        let start = Instant::now();
        assert_eq!(client.close().await, CloseReason::NoPong);
        let elapsed = start.elapsed();
        assert!(elapsed >= limits.pong_timeout, "{elapsed:?}");
        assert!(
            elapsed <= limits.pong_timeout + limits.ping_interval,
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn ops_over_the_rate_for_too_long_close_4429() {
        let h = harness(RealtimeLimits {
            ops_per_sec: 0.1,
            burst: 1.0,
            ..RealtimeLimits::default()
        });
        let (mut client, _) = ready(&h, "user_a", 3600).await;
        let rename = |r: &str| json!({"type": "notebook.rename", "ref": r, "title": "x"});
        client.send(rename("r0"));
        assert_eq!(client.json().await["type"], "ack");
        client.send(rename("r1"));
        assert_eq!(client.json().await["code"], "rate_limited");
        // Refused for the whole close-after time (5 s by default): closed.
        tokio::time::advance(Duration::from_millis(900)).await;
        client.send(rename("r2"));
        assert_eq!(client.json().await["code"], "rate_limited");
        client.keepalive();
        tokio::time::advance(Duration::from_millis(4_100)).await;
        client.send(rename("r3"));
        assert_eq!(client.close().await, CloseReason::TooManyOps);
    }

    impl Outgoing {
        fn close_code(&self) -> Option<u16> {
            match self {
                Outgoing::Close(reason) => Some(reason.code()),
                _ => None,
            }
        }
    }
}
