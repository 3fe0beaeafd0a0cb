//! Rooms: one per notebook that has sockets open.
//!
//! A room's broadcast channel carries every committed op (serialized once,
//! shared by all sockets), presence snapshots and access events, in one
//! order. Each room holds its [`Presence`] (state and coalescing live in
//! `presence.rs`); the hub runs the timer that flushes it. A receiver that falls a whole channel behind is a slow reader and
//! is closed (4429): memory stays bounded by the channel, never by a client.
//!
//! Publishing in version order: commits to one notebook are serialized by
//! the store, but the code after the commit runs concurrently. The hub's
//! striped commit locks make "commit, then publish" atomic per notebook in
//! this process, so a room sees versions in order, without gaps.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::presence::{Presence, PresenceSink};
use super::protocol::{PresenceEntry, Text};
use crate::notebook::model::{NotebookId, Role, UserId};
use crate::notebook::ops::Committed;
use crate::store::Store;

/// Number of commit lock stripes.
const STRIPES: usize = 64;

/// Limits and timings of sockets (DESIGN.md defaults; tests shrink them).
#[derive(Debug, Clone)]
pub struct RealtimeLimits {
    pub max_message_bytes: usize,
    pub ops_per_sec: f64,
    pub burst: f64,
    /// Messages a socket may have queued for writing before it is closed.
    pub outbound_queue: usize,
    /// Events a room buffers; a socket that far behind is closed.
    pub room_buffer: usize,
    pub auth_timeout: Duration,
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    /// Sockets one user may hold at once (all notebooks).
    pub max_conns_per_user: usize,
    /// Most ops replayed on resume.
    pub max_replay: usize,
    /// Extra time after `exp + skew` before an unrefreshed socket closes.
    pub expiry_grace: Duration,
    /// Seconds over the rate limit after which the socket is closed.
    pub rate_limit_close_after: Duration,
}

impl Default for RealtimeLimits {
    fn default() -> Self {
        RealtimeLimits {
            max_message_bytes: 256 * 1024,
            ops_per_sec: 50.0,
            burst: 100.0,
            outbound_queue: 256,
            room_buffer: 1024,
            auth_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(20),
            pong_timeout: Duration::from_secs(40),
            max_conns_per_user: 100,
            max_replay: 1000,
            expiry_grace: Duration::from_secs(2),
            rate_limit_close_after: Duration::from_secs(5),
        }
    }
}

/// What a room tells its sockets.
#[derive(Debug)]
pub enum RoomEvent {
    /// A committed op, already serialized as the `op` message.
    Op { version: i64, text: Text },
    /// A `presence` message.
    Presence(Text),
    /// A member's role changed: their sockets switch role (and are told).
    Role { user: UserId, role: Role },
    /// A member was removed: their sockets close with 4403.
    Removed { user: UserId },
    /// The notebook was deleted: every socket closes with 4404.
    Deleted,
}

/// Events for every socket of the process, whatever notebook.
#[derive(Debug)]
pub enum GlobalEvent {
    /// A Clerk session was revoked/ended: its sockets close with 4401.
    SessionRevoked(String),
    /// A user was deleted: their sockets close with 4401.
    UserRevoked(UserId),
    /// A user's membership in an organization was deleted: their sockets
    /// whose access came only through it close with 4403.
    OrgMembershipRevoked { user: UserId, org: UserId },
}

/// Every room, the commit locks, and the owner of socket tasks.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    rooms: Mutex<HashMap<NotebookId, Weak<Room>>>,
    global: broadcast::Sender<Arc<GlobalEvent>>,
    user_conns: Mutex<HashMap<UserId, usize>>,
    stripes: Vec<tokio::sync::Mutex<()>>,
    hasher: std::collections::hash_map::RandomState,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    limits: RealtimeLimits,
    presence_sink: std::sync::OnceLock<PresenceSink>,
}

/// One notebook's live state.
pub struct Room {
    id: NotebookId,
    tx: broadcast::Sender<Arc<RoomEvent>>,
    presence: Mutex<Presence>,
    /// Highest version sent to this room (unknown until the first op).
    last_published: tokio::sync::Mutex<Option<i64>>,
}

/// The `op` message for a committed op, serialized once for every socket.
fn op_event(committed: &Committed) -> RoomEvent {
    RoomEvent::Op {
        version: committed.version,
        text: super::protocol::op(committed),
    }
}

impl Hub {
    pub fn new(limits: RealtimeLimits) -> Hub {
        Hub {
            inner: Arc::new(HubInner {
                rooms: Mutex::new(HashMap::new()),
                global: broadcast::channel(256).0,
                user_conns: Mutex::new(HashMap::new()),
                stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
                hasher: Default::default(),
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
                limits,
                presence_sink: std::sync::OnceLock::new(),
            }),
        }
    }

    pub fn limits(&self) -> &RealtimeLimits {
        &self.inner.limits
    }

    /// Cancelled when the server shuts down: sockets close with 1001.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// Owns socket and presence tasks so shutdown can wait for them.
    pub fn tasks(&self) -> &TaskTracker {
        &self.inner.tasks
    }

    /// Closes every socket (1001) and waits, bounded, for them to finish.
    pub async fn shutdown(&self, wait: Duration) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        if tokio::time::timeout(wait, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some sockets did not close in time");
        }
    }

    /// Serializes commit + publish for one notebook (see module docs).
    pub async fn commit_lock(&self, id: NotebookId) -> tokio::sync::MutexGuard<'_, ()> {
        let stripe = (self.inner.hasher.hash_one(id) as usize) % STRIPES;
        self.inner.stripes[stripe].lock().await
    }

    fn room(&self, id: NotebookId) -> Option<Arc<Room>> {
        let rooms = self.inner.rooms.lock().unwrap_or_else(|e| e.into_inner());
        rooms.get(&id).and_then(Weak::upgrade)
    }

    /// Sends a committed op (ours or another process's) to every socket on
    /// its notebook, in version order: older or repeated versions are
    /// dropped, and a gap is filled from the op log first. One room-level
    /// check instead of one per socket.
    pub async fn publish(&self, store: &dyn Store, committed: &Committed) {
        let Some(room) = self.room(committed.notebook_id) else {
            return;
        };
        let mut last = room.last_published.lock().await;
        let version = committed.version;
        if last.is_some_and(|l| version <= l) {
            return;
        }
        if let Some(l) = *last {
            if version > l + 1 {
                self.fill_gap(store, &room, l, version).await;
            }
        }
        room.send(op_event(committed));
        *last = Some(version);
    }

    /// Sends the ops strictly between `after` and `before` from the op log.
    async fn fill_gap(&self, store: &dyn Store, room: &Room, after: i64, before: i64) {
        let max = self.inner.limits.max_replay;
        match store.ops_since(room.id, after, max).await {
            Ok(Some(ops)) => {
                for op in ops.iter().filter(|op| op.version < before) {
                    room.send(op_event(op));
                }
            }
            // Sockets notice the gap themselves and start their clients over.
            Ok(None) => {
                tracing::warn!(notebook = %room.id, after, before, "gap older than the op log")
            }
            Err(e) => tracing::warn!(notebook = %room.id, error = ?e, "could not fill a gap"),
        }
    }

    /// After a fan-out outage: brings every open room up to date from the op log.
    pub async fn catch_up(&self, store: &dyn Store) {
        let rooms: Vec<Arc<Room>> = {
            let rooms = self.inner.rooms.lock().unwrap_or_else(|e| e.into_inner());
            rooms.values().filter_map(Weak::upgrade).collect()
        };
        for room in rooms {
            let mut last = room.last_published.lock().await;
            let Some(after) = *last else { continue };
            if let Ok(Some(ops)) = store
                .ops_since(room.id, after, self.inner.limits.max_replay)
                .await
            {
                for op in &ops {
                    room.send(op_event(op));
                    *last = Some(op.version);
                }
            }
        }
    }

    /// A member was added/changed (`Some`) or removed (`None`).
    pub fn member_changed(&self, id: NotebookId, user: &UserId, role: Option<Role>) {
        let Some(room) = self.room(id) else { return };
        match role {
            Some(role) => {
                room.presence().set_role(user, role);
                room.send(RoomEvent::Role {
                    user: user.clone(),
                    role,
                });
            }
            None => room.send(RoomEvent::Removed { user: user.clone() }),
        }
        self.schedule_presence(&room);
    }

    /// The notebook was deleted.
    pub fn notebook_deleted(&self, id: NotebookId) {
        if let Some(room) = self.room(id) {
            room.send(RoomEvent::Deleted);
        }
    }

    /// Process-wide events (revocations); every session listens.
    pub fn subscribe_global(&self) -> broadcast::Receiver<Arc<GlobalEvent>> {
        self.inner.global.subscribe()
    }

    pub fn session_revoked(&self, session_id: &str) {
        let _ = self.inner.global.send(Arc::new(GlobalEvent::SessionRevoked(
            session_id.to_string(),
        )));
    }

    pub fn user_revoked(&self, user: &UserId) {
        let _ = self
            .inner
            .global
            .send(Arc::new(GlobalEvent::UserRevoked(user.clone())));
    }

    pub fn org_membership_revoked(&self, user: &UserId, org: &UserId) {
        let _ = self
            .inner
            .global
            .send(Arc::new(GlobalEvent::OrgMembershipRevoked {
                user: user.clone(),
                org: org.clone(),
            }));
    }

    /// Sends every local presence change to other processes from now on.
    pub fn set_presence_sink(&self, sink: PresenceSink) {
        let _ = self.inner.presence_sink.set(sink);
    }

    /// Another process's presence for a notebook (empty: nobody there now).
    pub fn remote_presence(&self, origin: &str, id: NotebookId, users: Vec<PresenceEntry>) {
        let Some(room) = self.room(id) else { return };
        room.presence().remote(origin, users, Instant::now());
        self.schedule_presence(&room);
    }

    /// Every open room's local presence, for the periodic repeat to other processes.
    pub fn republish_presence(&self) {
        let Some(sink) = self.inner.presence_sink.get() else {
            return;
        };
        let rooms: Vec<Arc<Room>> = {
            let rooms = self.inner.rooms.lock().unwrap_or_else(|e| e.into_inner());
            rooms.values().filter_map(Weak::upgrade).collect()
        };
        for room in rooms {
            let local = room.presence().local();
            sink(room.id, local);
        }
    }

    /// Reserves one of the user's connection slots, or `None` at the cap.
    pub fn reserve_user(&self, user: &UserId) -> Option<UserSlot> {
        let mut conns = self
            .inner
            .user_conns
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let n = conns.entry(user.clone()).or_insert(0);
        if *n >= self.inner.limits.max_conns_per_user {
            return None;
        }
        *n += 1;
        Some(UserSlot {
            hub: self.clone(),
            user: user.clone(),
        })
    }

    /// Joins a notebook's room (creating it): subscribe first, so nothing
    /// committed after the caller's snapshot can be missed.
    pub fn join(&self, id: NotebookId, user: &UserId, role: Role) -> Seat {
        let room = {
            let mut rooms = self.inner.rooms.lock().unwrap_or_else(|e| e.into_inner());
            rooms.retain(|_, weak| weak.strong_count() > 0);
            match rooms.get(&id).and_then(Weak::upgrade) {
                Some(room) => room,
                None => {
                    let (tx, _) = broadcast::channel(self.inner.limits.room_buffer);
                    let room = Arc::new(Room {
                        id,
                        tx,
                        presence: Mutex::new(Presence::default()),
                        last_published: tokio::sync::Mutex::new(None),
                    });
                    rooms.insert(id, Arc::downgrade(&room));
                    room
                }
            }
        };
        let rx = room.tx.subscribe();
        room.presence().joined(user, role);
        self.schedule_presence(&room);
        Seat {
            hub: self.clone(),
            room,
            user: user.clone(),
            rx: Some(rx),
        }
    }

    /// Sends the room's presence now, or as soon as 250 ms have passed since
    /// the last one; changes in between are coalesced into one message.
    fn schedule_presence(&self, room: &Arc<Room>) {
        let Some(delay) = room.presence().schedule(Instant::now()) else {
            return;
        };
        let room = room.clone();
        let hub = self.clone();
        self.inner.tasks.spawn(async move {
            tokio::time::sleep(delay).await;
            let flush = room.presence().flush(Instant::now());
            room.send(RoomEvent::Presence(flush.message));
            if let (Some(local), Some(sink)) = (flush.changed_local, hub.inner.presence_sink.get())
            {
                sink(room.id, local);
            }
        });
    }
}

impl Room {
    pub fn id(&self) -> NotebookId {
        self.id
    }

    /// A socket started from the notebook at `version`: before any op has
    /// gone through this room, that is the baseline for gap detection.
    pub async fn observe(&self, version: i64) {
        let mut last = self.last_published.lock().await;
        if last.is_none() {
            *last = Some(version);
        }
    }

    fn send(&self, event: RoomEvent) {
        // No receivers is fine: nobody is listening any more.
        let _ = self.tx.send(Arc::new(event));
    }

    /// The room's presence state (never held across an await).
    fn presence(&self) -> MutexGuard<'_, Presence> {
        self.presence.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A socket's place in a room; leaving (drop) updates presence.
pub struct Seat {
    hub: Hub,
    room: Arc<Room>,
    user: UserId,
    rx: Option<broadcast::Receiver<Arc<RoomEvent>>>,
}

impl Seat {
    pub fn room(&self) -> &Arc<Room> {
        &self.room
    }

    /// The receiver of room events (taken once by the session loop).
    pub fn take_receiver(&mut self) -> broadcast::Receiver<Arc<RoomEvent>> {
        self.rx.take().unwrap_or_else(|| self.room.tx.subscribe())
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.room.presence().left(&self.user);
        // Also when this was the last socket: other processes must hear that
        // nobody is here any more.
        self.hub.schedule_presence(&self.room);
    }
}

/// One of a user's connection slots; released on drop.
pub struct UserSlot {
    hub: Hub,
    user: UserId,
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut conns = self
            .hub
            .inner
            .user_conns
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = conns.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                conns.remove(&self.user);
            }
        }
    }
}
