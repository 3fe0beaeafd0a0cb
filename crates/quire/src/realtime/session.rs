//! One WebSocket's life, generic over `Sink`/`Stream` so it runs (and is
//! tested) without a network.
//!
//! Order of business: authenticate (on the upgrade, or by a first `auth`
//! message within the auth timeout), check access, join the room, send
//! `ready` (or resume), then loop: client ops go through the single change
//! path and are acked once committed; room events are relayed; pings keep
//! the socket honest; the token's expiry closes it unless refreshed. All
//! output goes through a bounded queue to a writer task; a client that
//! cannot keep up is closed (4429) instead of growing memory.

use std::fmt::Display;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clerk_auth::{AuthError, Principal, PublicCode};
use futures::{Sink, SinkExt, Stream, StreamExt};
use serde_json::json;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::hub::{GlobalEvent, RoomEvent, UserSlot};
use super::protocol::{self, close, ClientMsg, Since};
use crate::api::views::NotebookView;
use crate::notebook::model::{NotebookId, Role, UserId};
use crate::notebook::ops::Op;
use crate::service::ServiceError;
use crate::store::Access;
use crate::AppState;

/// What the transport yields: frames, or the reasons it stopped.
#[derive(Debug)]
pub enum Inbound {
    Frame(Message),
    /// The peer sent a message over the size limit.
    TooLarge,
    /// The connection failed or closed.
    Closed,
}

/// A socket authenticated on the upgrade request (header auth).
pub struct PreAuth {
    pub principal: Principal,
    pub user: UserId,
    pub role: Role,
    pub slot: UserSlot,
    pub since: Option<Since>,
}

/// How a session ended: the close code sent (for logs and tests).
type Closed = (u16, &'static str);

/// Runs a socket to its end. Never panics on client input.
pub async fn run<S, R>(
    sink: S,
    mut stream: R,
    state: AppState,
    id: NotebookId,
    pre: Option<PreAuth>,
) where
    S: Sink<Message> + Send + Unpin + 'static,
    S::Error: Display,
    R: Stream<Item = Inbound> + Unpin,
{
    let limits = state.hub().limits().clone();
    let (tx, rx) = mpsc::channel(limits.outbound_queue);
    let (close_tx, close_rx) = oneshot::channel();
    let writer = tokio::spawn(write_loop(sink, rx, close_rx));
    let mut out = Outbox {
        tx,
        urgent_close: Some(close_tx),
    };
    let result = match pre {
        // Boxed: these large futures run once; an idle socket should not
        // carry their space for hours.
        Some(pre) => Box::pin(Session::start(&state, id, pre, &mut out)).await,
        None => match Box::pin(first_message_auth(&state, id, &mut stream)).await {
            Ok(pre) => Box::pin(Session::start(&state, id, pre, &mut out)).await,
            Err(closed) => Err(closed),
        },
    };
    let closed = match result {
        Ok(mut session) => session.run(&mut stream, &mut out).await,
        Err(closed) => closed,
    };
    tracing::debug!(notebook = %id, code = closed.0, reason = closed.1, "socket closed");
    out.close(closed);
    drop(out);
    // Give the writer a moment to flush; a peer that does not read gets cut.
    let mut writer = writer;
    if tokio::time::timeout(Duration::from_secs(5), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

/// Drains the outbound queue into the sink; stops after a close frame. An
/// urgent close (the queue was full) jumps the queue: what is queued for a
/// peer that stopped reading is stale anyway.
async fn write_loop<S>(
    mut sink: S,
    mut rx: mpsc::Receiver<Message>,
    urgent: oneshot::Receiver<Message>,
) where
    S: Sink<Message> + Unpin,
    S::Error: Display,
{
    // `None` once the urgent slot has fired or its sender is gone.
    let mut urgent = Some(urgent);
    loop {
        let message = tokio::select! {
            biased;
            close = async { urgent.as_mut().expect("guarded by the branch condition").await }, if urgent.is_some() => {
                urgent = None;
                match close {
                    Ok(close) => close,
                    Err(_) => continue,
                }
            }
            next = rx.recv() => match next {
                Some(message) => message,
                None => break,
            },
        };
        let is_close = matches!(message, Message::Close(_));
        if let Err(e) = send_fragmented(&mut sink, message).await {
            tracing::debug!(error = %e, "socket write failed");
            return;
        }
        if is_close {
            break;
        }
    }
    let _ = sink.close().await;
}

/// Frames larger than this are split. The transport keeps a write buffer as
/// large as the largest frame it ever wrote, for the socket's whole life;
/// bounded frames keep every socket's buffer bounded too.
const MAX_FRAME: usize = 4 * 1024;

/// Sends a message, a large text as a fragmented message of bounded frames.
async fn send_fragmented<S>(sink: &mut S, message: Message) -> Result<(), S::Error>
where
    S: Sink<Message> + Unpin,
{
    let text = match message {
        Message::Text(text) if text.len() > MAX_FRAME => text,
        other => return sink.send(other).await,
    };
    let bytes = bytes::Bytes::from(text);
    let mut offset = 0;
    while offset < bytes.len() {
        let end = (offset + MAX_FRAME).min(bytes.len());
        let opcode = if offset == 0 {
            Data::Text
        } else {
            Data::Continue
        };
        let frame = Frame::message(
            bytes.slice(offset..end),
            OpCode::Data(opcode),
            end == bytes.len(),
        );
        sink.feed(Message::Frame(frame)).await?;
        offset = end;
    }
    sink.flush().await
}

/// The bounded outbound queue. Full means the peer is not reading.
struct Outbox {
    tx: mpsc::Sender<Message>,
    urgent_close: Option<oneshot::Sender<Message>>,
}

/// The peer is too slow: its queue is full.
struct SlowReader;

impl Outbox {
    fn send(&mut self, message: Message) -> Result<(), SlowReader> {
        self.tx.try_send(message).map_err(|_| SlowReader)
    }

    fn text(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), SlowReader> {
        self.send(Message::Text(text.into()))
    }

    /// Queues the close after what is already queued (a flush), or, when
    /// the queue is full, sends it ahead of everything.
    fn close(&mut self, (code, reason): Closed) {
        let frame = || {
            Message::Close(Some(CloseFrame {
                code: code.into(),
                reason: reason.into(),
            }))
        };
        if self.send(frame()).is_err() {
            if let Some(urgent) = self.urgent_close.take() {
                let _ = urgent.send(frame());
            }
        }
    }
}

const SLOW: Closed = (close::TOO_MANY, "too slow: outbound queue full");

fn slow(_: SlowReader) -> Closed {
    SLOW
}

/// The close for a failed verification.
fn auth_close(e: &AuthError) -> Closed {
    match e.public_code() {
        PublicCode::AuthUnavailable => (close::UNAVAILABLE, "authentication unavailable"),
        PublicCode::TokenExpired => (close::UNAUTHENTICATED, "token expired"),
        _ => (close::UNAUTHENTICATED, "invalid token"),
    }
}

/// Waits for `{"type":"auth","token"}` within the auth timeout.
async fn first_message_auth<R>(
    state: &AppState,
    id: NotebookId,
    stream: &mut R,
) -> Result<PreAuth, Closed>
where
    R: Stream<Item = Inbound> + Unpin,
{
    let timeout = state.hub().limits().auth_timeout;
    let cancel = state.hub().shutdown_token();
    let frame = tokio::select! {
        _ = cancel.cancelled() => return Err((close::GOING_AWAY, "server shutting down")),
        frame = tokio::time::timeout(timeout, next_text(stream)) => match frame {
            Err(_) => return Err((close::TIMEOUT, "no auth in time")),
            Ok(frame) => frame?,
        },
    };
    if frame.len() > state.hub().limits().max_message_bytes {
        return Err((close::TOO_LARGE, "message too large"));
    }
    let (token, since) = match protocol::parse(&frame) {
        Ok(ClientMsg::Auth { token, since }) => (token, since),
        Ok(_) | Err(Some(_)) => return Err((close::UNAUTHENTICATED, "authenticate first")),
        Err(None) => return Err((close::PROTOCOL_ERROR, "not a JSON message")),
    };
    let principal = state.auth().verify_token(&token).await.map_err(|e| {
        crate::auth::record_failure(&e);
        auth_close(&e)
    })?;
    admit(state, id, principal, since)
        .await
        .map_err(|r| r.close())
}

/// The next text frame (pings/pongs skipped); other frames end the wait.
async fn next_text<R>(stream: &mut R) -> Result<String, Closed>
where
    R: Stream<Item = Inbound> + Unpin,
{
    loop {
        match stream.next().await {
            Some(Inbound::Frame(Message::Text(text))) => return Ok(text.to_string()),
            Some(Inbound::Frame(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                continue
            }
            Some(Inbound::Frame(Message::Binary(_))) => {
                return Err((close::PROTOCOL_ERROR, "binary frames are not supported"))
            }
            Some(Inbound::TooLarge) => return Err((close::TOO_LARGE, "message too large")),
            Some(Inbound::Frame(Message::Close(_)) | Inbound::Closed) | None => {
                return Err((1000, "closed by peer"))
            }
        }
    }
}

/// Why a verified caller may not have a socket on this notebook.
#[derive(Debug)]
pub enum Refusal {
    /// The token's `sub` is not a user id we accept.
    BadSubject,
    NoAccess,
    NotFound,
    /// The access check could not be made (store down).
    Unavailable(crate::store::StoreError),
    /// The user is at the per-user connection cap.
    TooManyConnections,
}

impl Refusal {
    /// The close for a socket authenticated by its first message.
    fn close(&self) -> Closed {
        match self {
            Refusal::BadSubject => (close::UNAUTHENTICATED, "invalid token"),
            Refusal::NoAccess => (close::FORBIDDEN, "no access to this notebook"),
            Refusal::NotFound => (close::NOT_FOUND, "notebook not found"),
            Refusal::Unavailable(e) => {
                tracing::warn!(error = ?e, "socket access check failed");
                (close::UNAVAILABLE, "store unavailable")
            }
            Refusal::TooManyConnections => (close::TOO_MANY, "too many connections for this user"),
        }
    }
}

/// Access check and connection slot for a verified principal: the same
/// admission for header auth (refused as HTTP before the upgrade) and for
/// first-message auth (refused with a close code).
pub async fn admit(
    state: &AppState,
    id: NotebookId,
    principal: Principal,
    since: Option<Since>,
) -> Result<PreAuth, Refusal> {
    let user = UserId::parse(&principal.user_id).map_err(|_| Refusal::BadSubject)?;
    let role = match state
        .store()
        .role_of(id, &user)
        .await
        .map_err(Refusal::Unavailable)?
    {
        Access::Role(role) => role,
        Access::NoAccess => return Err(Refusal::NoAccess),
        Access::NotFound => return Err(Refusal::NotFound),
    };
    let slot = state
        .hub()
        .reserve_user(&user)
        .ok_or(Refusal::TooManyConnections)?;
    Ok(PreAuth {
        principal,
        user,
        role,
        slot,
        since,
    })
}

/// Token-bucket rate limit on client ops.
struct RateLimit {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
    over_since: Option<Instant>,
}

impl RateLimit {
    fn new(rate: f64, burst: f64) -> Self {
        RateLimit {
            tokens: burst,
            rate,
            burst,
            last: Instant::now(),
            over_since: None,
        }
    }

    /// `Ok` to proceed; `Err(true)` when over the limit for too long.
    fn take(&mut self, close_after: Duration) -> Result<(), bool> {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.over_since = None;
            return Ok(());
        }
        let since = *self.over_since.get_or_insert(now);
        Err(now.duration_since(since) >= close_after)
    }
}

/// An authenticated, authorized socket in a room.
struct Session {
    state: AppState,
    id: NotebookId,
    user: UserId,
    role: Role,
    principal: Principal,
    rx: broadcast::Receiver<Arc<RoomEvent>>,
    global: broadcast::Receiver<Arc<GlobalEvent>>,
    /// Highest op version this socket has been sent.
    delivered: i64,
    deadline: Instant,
    rate: RateLimit,
    /// The queue to this socket's op worker, started on its first op.
    ops: Option<mpsc::Sender<(Option<String>, Op)>>,
    _seat: super::hub::Seat,
    _slot: UserSlot,
}

/// Ops a socket may have waiting for their commit; beyond that the client
/// is told `rate_limited` (back-pressure instead of unbounded queues).
const PENDING_OPS: usize = 32;

impl Session {
    /// Joins the room, then sends `ready` (full, or resumed with the missed ops).
    async fn start(
        state: &AppState,
        id: NotebookId,
        pre: PreAuth,
        out: &mut Outbox,
    ) -> Result<Session, Closed> {
        let mut seat = state.hub().join(id, &pre.user, pre.role);
        let rx = seat.take_receiver();
        let limits = state.hub().limits();
        let mut session = Session {
            state: state.clone(),
            id,
            user: pre.user,
            role: pre.role,
            deadline: deadline(&pre.principal, state),
            principal: pre.principal,
            rx,
            global: state.hub().subscribe_global(),
            delivered: 0,
            rate: RateLimit::new(limits.ops_per_sec, limits.burst),
            ops: None,
            _seat: seat,
            _slot: pre.slot,
        };
        if !session.try_resume(pre.since.as_ref(), out).await? {
            session.send_ready(out).await?;
        }
        Ok(session)
    }

    fn expires_in(&self) -> i64 {
        (self.principal.expires_at - unix_secs()).max(0)
    }

    /// Resumes from `since` when the epoch matches and the log has every op.
    async fn try_resume(
        &mut self,
        since: Option<&Since>,
        out: &mut Outbox,
    ) -> Result<bool, Closed> {
        let Some(since) = since else { return Ok(false) };
        let store = self.state.store();
        let meta = store.notebook_meta(self.id).await.map_err(unavailable)?;
        let Some(meta) = meta else {
            return Err((close::NOT_FOUND, "notebook not found"));
        };
        if meta.epoch != since.epoch {
            return Ok(false);
        }
        let max = self.state.hub().limits().max_replay;
        let Some(ops) = store
            .ops_since(self.id, since.version, max)
            .await
            .map_err(unavailable)?
        else {
            return Ok(false);
        };
        let ready = json!({
            "type": "ready", "resumed": true, "version": since.version, "epoch": meta.epoch,
            "role": self.role, "expires_in": self.expires_in(),
        });
        out.text(ready.to_string()).map_err(slow)?;
        self.delivered = since.version;
        for op in &ops {
            out.text(protocol::op(op)).map_err(slow)?;
            self.delivered = op.version;
        }
        Ok(true)
    }

    /// A full `ready` with the notebook as of now.
    async fn send_ready(&mut self, out: &mut Outbox) -> Result<(), Closed> {
        let notebook = self
            .state
            .store()
            .notebook(self.id)
            .await
            .map_err(unavailable)?;
        let Some(notebook) = notebook else {
            return Err((close::NOT_FOUND, "notebook not found"));
        };
        let ready = json!({
            "type": "ready", "resumed": false,
            "notebook": NotebookView::full(&notebook, self.role),
            "version": notebook.meta.version, "epoch": notebook.meta.epoch,
            "role": self.role, "expires_in": self.expires_in(),
        });
        out.text(ready.to_string()).map_err(slow)?;
        self.delivered = notebook.meta.version;
        self._seat.room().observe(self.delivered).await;
        Ok(())
    }

    /// The main loop; returns the close to send.
    async fn run<R>(&mut self, stream: &mut R, out: &mut Outbox) -> Closed
    where
        R: Stream<Item = Inbound> + Unpin,
    {
        let limits = self.state.hub().limits().clone();
        let cancel = self.state.hub().shutdown_token();
        let mut ping =
            tokio::time::interval_at(Instant::now() + limits.ping_interval, limits.ping_interval);
        let mut last_seen = Instant::now();
        loop {
            let step = tokio::select! {
                _ = cancel.cancelled() => Err((close::GOING_AWAY, "server shutting down")),
                _ = tokio::time::sleep_until(self.deadline) => Err((close::UNAUTHENTICATED, "token expired")),
                _ = ping.tick() => {
                    if last_seen.elapsed() >= limits.pong_timeout {
                        Err((close::TIMEOUT, "no pong"))
                    } else {
                        out.send(Message::Ping(Default::default())).map_err(slow)
                    }
                }
                event = self.rx.recv() => Box::pin(self.on_event(event, out)).await,
                event = self.global.recv() => self.on_global(event),
                inbound = stream.next() => {
                    last_seen = Instant::now();
                    self.on_inbound(inbound, out).await
                }
            };
            if let Err(closed) = step {
                return closed;
            }
        }
    }

    async fn on_inbound(
        &mut self,
        inbound: Option<Inbound>,
        out: &mut Outbox,
    ) -> Result<(), Closed> {
        match inbound {
            // Boxed: handling a message (auth refresh, a commit) needs far
            // more space than waiting does, and most sockets mostly wait.
            Some(Inbound::Frame(Message::Text(text))) => Box::pin(self.on_text(&text, out)).await,
            Some(Inbound::Frame(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Ok(()),
            Some(Inbound::Frame(Message::Binary(_))) => {
                Err((close::PROTOCOL_ERROR, "binary frames are not supported"))
            }
            Some(Inbound::TooLarge) => Err((close::TOO_LARGE, "message too large")),
            Some(Inbound::Frame(Message::Close(_)) | Inbound::Closed) | None => {
                Err((1000, "closed by peer"))
            }
        }
    }

    async fn on_text(&mut self, text: &str, out: &mut Outbox) -> Result<(), Closed> {
        if text.len() > self.state.hub().limits().max_message_bytes {
            return Err((close::TOO_LARGE, "message too large"));
        }
        match protocol::parse(text) {
            Err(None) => Err((close::PROTOCOL_ERROR, "not a JSON message with a type")),
            Err(Some(bad)) => out
                .text(protocol::error(
                    bad.r#ref.as_deref(),
                    "invalid_op",
                    &bad.message,
                    None,
                ))
                .map_err(slow),
            Ok(ClientMsg::Ping) => out.text(r#"{"type":"pong"}"#).map_err(slow),
            Ok(ClientMsg::Auth { token, .. }) => self.refresh(&token, out).await,
            Ok(ClientMsg::Op { r#ref, op }) => self.on_op(r#ref.as_deref(), op, out).await,
        }
    }

    /// In-band token refresh: same user required.
    async fn refresh(&mut self, token: &str, out: &mut Outbox) -> Result<(), Closed> {
        match self.state.auth().verify_token(token).await {
            Ok(p) if p.user_id != self.principal.user_id => {
                Err((close::FORBIDDEN, "token is for another user"))
            }
            Ok(p) => {
                self.deadline = deadline(&p, &self.state);
                self.principal = p;
                let ok = json!({"type": "auth.ok", "expires_in": self.expires_in()});
                out.text(ok.to_string()).map_err(slow)
            }
            Err(e) if e.public_code() == PublicCode::AuthUnavailable => {
                // Not the user's fault: keep the socket until the old token runs out.
                crate::auth::record_failure(&e);
                out.text(protocol::error(
                    None,
                    "auth_unavailable",
                    "could not verify the token now; retry",
                    None,
                ))
                .map_err(slow)
            }
            Err(e) => {
                crate::auth::record_failure(&e);
                Err(auth_close(&e))
            }
        }
    }

    async fn on_op(&mut self, r#ref: Option<&str>, op: Op, out: &mut Outbox) -> Result<(), Closed> {
        let close_after = self.state.hub().limits().rate_limit_close_after;
        if let Err(sustained) = self.rate.take(close_after) {
            if sustained {
                return Err((close::TOO_MANY, "too many ops"));
            }
            return out
                .text(protocol::error(r#ref, "rate_limited", "slow down", None))
                .map_err(slow);
        }
        if !self.role.can_write() {
            return out
                .text(protocol::error(
                    r#ref,
                    "forbidden",
                    "you can only read this notebook",
                    None,
                ))
                .map_err(slow);
        }
        let queue = self.ops.get_or_insert_with(|| {
            spawn_op_worker(&self.state, self.id, &self.user, out.tx.clone())
        });
        match queue.try_send((r#ref.map(str::to_string), op)) {
            Ok(()) => Ok(()),
            Err(_) => out
                .text(protocol::error(
                    r#ref,
                    "rate_limited",
                    "too many changes waiting to be saved",
                    None,
                ))
                .map_err(slow),
        }
    }

    /// Revocations: close at once when they concern this socket.
    fn on_global(
        &mut self,
        event: Result<Arc<GlobalEvent>, broadcast::error::RecvError>,
    ) -> Result<(), Closed> {
        let revoked = (close::UNAUTHENTICATED, "session revoked");
        match event {
            Ok(event) => match &*event {
                GlobalEvent::SessionRevoked(sid) if *sid == self.principal.session_id => {
                    Err(revoked)
                }
                GlobalEvent::UserRevoked(user) if *user == self.user => Err(revoked),
                _ => Ok(()),
            },
            // Missed some: ask the revocation list directly.
            Err(broadcast::error::RecvError::Lagged(_)) => self
                .state
                .auth()
                .revocations()
                .check(&self.principal)
                .map_err(|_| revoked),
            Err(broadcast::error::RecvError::Closed) => {
                Err((close::GOING_AWAY, "server shutting down"))
            }
        }
    }

    async fn on_event(
        &mut self,
        event: Result<Arc<RoomEvent>, broadcast::error::RecvError>,
        out: &mut Outbox,
    ) -> Result<(), Closed> {
        let event = match event {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(_)) => return Err(SLOW),
            Err(broadcast::error::RecvError::Closed) => {
                return Err((close::GOING_AWAY, "room closed"))
            }
        };
        match &*event {
            RoomEvent::Op { version, text } => self.on_op_event(*version, text, out).await,
            RoomEvent::Presence(text) => out.text(text.clone()).map_err(slow),
            RoomEvent::Role { user, role } if *user == self.user => {
                self.role = *role;
                out.text(json!({"type": "role", "role": role}).to_string())
                    .map_err(slow)
            }
            RoomEvent::Removed { user } if *user == self.user => {
                Err((close::FORBIDDEN, "access removed"))
            }
            RoomEvent::Deleted => Err((close::NOT_FOUND, "notebook deleted")),
            RoomEvent::Role { .. } | RoomEvent::Removed { .. } => Ok(()),
        }
    }

    /// Relays an op in order; a gap is filled from the op log first.
    async fn on_op_event(
        &mut self,
        version: i64,
        text: &Utf8Bytes,
        out: &mut Outbox,
    ) -> Result<(), Closed> {
        if version <= self.delivered {
            return Ok(());
        }
        if version > self.delivered + 1 {
            let max = self.state.hub().limits().max_replay;
            let missed = self
                .state
                .store()
                .ops_since(self.id, self.delivered, max)
                .await
                .map_err(unavailable)?;
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

/// Commits a socket's ops one at a time, in the order they came, off the
/// relay loop: a slow commit must not stop this socket from receiving
/// everyone else's ops (it would fall behind the room and be closed). Acks and
/// errors go into the same outbound queue. Ends when the session drops its
/// sender; started only for sockets that write, so readers cost nothing.
fn spawn_op_worker(
    state: &AppState,
    id: NotebookId,
    user: &UserId,
    out: mpsc::Sender<Message>,
) -> mpsc::Sender<(Option<String>, Op)> {
    let (tx, mut rx) = mpsc::channel::<(Option<String>, Op)>(PENDING_OPS);
    let (state, user) = (state.clone(), user.clone());
    state.hub().tasks().clone().spawn(async move {
        while let Some((r#ref, op)) = rx.recv().await {
            // The store checks the role inside the commit, so a demotion
            // that raced with this op is still honoured.
            let reply = match state.notebooks().apply(id, &user, op, None).await {
                Ok(committed) => protocol::ack(r#ref.as_deref(), committed.version),
                Err(e) => op_error(r#ref.as_deref(), e),
            };
            if out.send(Message::Text(reply.into())).await.is_err() {
                break;
            }
        }
    });
    tx
}

/// The `error` message for a refused op (the service's public mapping).
fn op_error(r#ref: Option<&str>, e: ServiceError) -> String {
    let public = e.into_public();
    let current = public
        .current
        .as_deref()
        .and_then(|cell| serde_json::to_value(cell).ok());
    protocol::error(r#ref, public.socket_code(), &public.message, current)
}

fn unavailable(e: crate::store::StoreError) -> Closed {
    tracing::warn!(error = ?e, "socket store access failed");
    (close::UNAVAILABLE, "store unavailable")
}

fn unix_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// When an unrefreshed socket must close: `exp + skew + grace`.
fn deadline(p: &Principal, state: &AppState) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    let skew = state.auth().verifier.config().clock_skew;
    let grace = state.hub().limits().expiry_grace;
    let left_ms = p.expires_at * 1000 + (skew + grace).as_millis() as i64 - now_ms;
    Instant::now() + Duration::from_millis(left_ms.max(0) as u64)
}

#[cfg(test)]
mod tests {
    //! The loop driven through in-memory channels: no sockets, no network.

    use std::sync::Arc;

    use clerk_auth::testing::ClerkStandIn;
    use futures::channel::mpsc as fmpsc;
    use serde_json::Value;

    use super::*;
    use crate::config::{AuthSettings, Config};
    use crate::realtime::hub::RealtimeLimits;
    use crate::store::{SqliteStore, Store, StoreOptions};

    struct Harness {
        state: AppState,
        standin: ClerkStandIn,
    }

    async fn harness(realtime: RealtimeLimits) -> Harness {
        let standin = ClerkStandIn::new();
        let auth = AuthSettings::with_pem(standin.public_key_pem(), Some(standin.issuer()));
        let config = Config::new(
            "127.0.0.1:0".parse().unwrap(),
            "sqlite::memory:".into(),
            auth,
        );
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::connect("sqlite::memory:", StoreOptions::default())
                .await
                .unwrap(),
        );
        let config = Config { realtime, ..config };
        let parts = crate::Parts {
            store: Some(store),
            ..crate::Parts::default()
        };
        let state = crate::App::build(config, parts)
            .await
            .unwrap()
            .state()
            .clone();
        Harness { state, standin }
    }

    /// A client end: what it sends goes in, what the server writes comes out.
    struct Client {
        to_server: fmpsc::UnboundedSender<Inbound>,
        from_server: fmpsc::UnboundedReceiver<Message>,
    }

    impl Client {
        fn send(&self, v: Value) {
            self.to_server
                .unbounded_send(Inbound::Frame(Message::Text(v.to_string().into())))
                .unwrap();
        }

        async fn next(&mut self) -> Message {
            tokio::time::timeout(Duration::from_secs(10), self.from_server.next())
                .await
                .expect("hang guard")
                .expect("server hung up")
        }

        /// The next text message whose type is `kind`.
        async fn next_of(&mut self, kind: &str) -> Value {
            loop {
                if let Message::Text(t) = self.next().await {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == kind {
                        return v;
                    }
                }
            }
        }
    }

    fn connect(h: &Harness, id: NotebookId) -> Client {
        let (to_server, stream) = fmpsc::unbounded();
        let (sink, from_server) = fmpsc::unbounded();
        tokio::spawn(run(sink, stream, h.state.clone(), id, None));
        Client {
            to_server,
            from_server,
        }
    }

    async fn notebook(h: &Harness, owner: &str) -> NotebookId {
        let owner = UserId::parse(owner).unwrap();
        h.state
            .store()
            .create_notebook(&owner, "t", Default::default(), vec![])
            .await
            .unwrap()
            .meta
            .id
    }

    #[tokio::test]
    async fn silent_client_gets_nothing_then_4408() {
        let h = harness(RealtimeLimits {
            auth_timeout: Duration::from_millis(100),
            ..Default::default()
        })
        .await;
        let id = notebook(&h, "user_a").await;
        let mut client = connect(&h, id);
        // The very first thing the server writes is the close: no data before auth.
        match client.next().await {
            Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), close::TIMEOUT),
            other => panic!("expected close, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn auth_ready_op_ack_and_broadcast() {
        let h = harness(RealtimeLimits::default()).await;
        let id = notebook(&h, "user_a").await;
        let mut client = connect(&h, id);
        client.send(json!({"type": "auth", "token": h.standin.token("user_a").sign()}));
        let ready = client.next_of("ready").await;
        assert_eq!(ready["version"], 0);
        assert_eq!(ready["role"], "owner");
        client.send(json!({"type": "cell.insert", "ref": "r1", "cell": {"cell_type": "code", "source": "1"}}));
        let ack = client.next_of("ack").await;
        assert_eq!(
            (ack["ref"].as_str(), ack["version"].as_i64()),
            (Some("r1"), Some(1))
        );
        let op = client.next_of("op").await;
        assert_eq!(op["version"], 1);
        assert_eq!(op["op"]["type"], "cell.insert");
    }

    #[tokio::test]
    async fn stranger_is_closed_4403_and_bad_token_4401() {
        let h = harness(RealtimeLimits::default()).await;
        let id = notebook(&h, "user_a").await;
        let mut stranger = connect(&h, id);
        stranger.send(json!({"type": "auth", "token": h.standin.token("user_b").sign()}));
        assert!(
            matches!(stranger.next().await, Message::Close(Some(f)) if u16::from(f.code) == close::FORBIDDEN)
        );
        let mut forger = connect(&h, id);
        forger.send(json!({"type": "auth", "token": ClerkStandIn::new().token("user_a").sign()}));
        assert!(
            matches!(forger.next().await, Message::Close(Some(f)) if u16::from(f.code) == close::UNAUTHENTICATED)
        );
    }
}

#[cfg(test)]
mod fragment_tests {
    use super::*;

    #[tokio::test]
    async fn large_texts_go_out_as_bounded_fragments() {
        let text = "é".repeat(5000); // 10,000 bytes, multi-byte chars split across frames
        let mut frames: Vec<Message> = Vec::new();
        send_fragmented(&mut frames, Message::Text(text.clone().into()))
            .await
            .unwrap();
        assert_eq!(frames.len(), 3);
        let mut joined = Vec::new();
        for (i, m) in frames.iter().enumerate() {
            let Message::Frame(f) = m else {
                panic!("raw frames expected")
            };
            assert!(f.payload().len() <= MAX_FRAME);
            assert_eq!(f.header().is_final, i == 2);
            let want = if i == 0 { Data::Text } else { Data::Continue };
            assert_eq!(f.header().opcode, OpCode::Data(want));
            joined.extend_from_slice(f.payload());
        }
        assert_eq!(joined, text.as_bytes());
        // Small messages are untouched.
        let mut small: Vec<Message> = Vec::new();
        send_fragmented(&mut small, Message::Text("hi".into()))
            .await
            .unwrap();
        assert!(matches!(&small[..], [Message::Text(t)] if t.as_str() == "hi"));
    }
}
