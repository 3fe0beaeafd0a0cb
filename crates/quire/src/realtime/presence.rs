//! Who has a notebook open: one room's presence state, its coalescing (at
//! most one `presence` message per room per [`PRESENCE_INTERVAL`]) and what
//! other processes reported (merged in, dropped when they stop repeating it).
//!
//! Pure state with explicit `tokio::time` instants; the hub owns the rooms,
//! holds a [`Presence`] in each, and runs the timer that flushes it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use super::protocol::{PresenceEntry, ServerMsg, Text};
use crate::notebook::model::{NotebookId, Role, UserId};

/// Presence messages per room are at most this frequent.
pub const PRESENCE_INTERVAL: Duration = Duration::from_millis(250);
/// Another process's report counts until it is this old (they repeat theirs
/// every [`PRESENCE_REPUBLISH`]); a process that died drops out by itself.
const REMOTE_PRESENCE_TTL: Duration = Duration::from_secs(25);
/// How often each process repeats its presence for other processes.
pub const PRESENCE_REPUBLISH: Duration = Duration::from_secs(10);

/// Where a room's local presence goes when it changes (the fan-out).
pub type PresenceSink = Box<dyn Fn(NotebookId, Vec<PresenceEntry>) + Send + Sync>;

/// One room's presence.
#[derive(Default)]
pub struct Presence {
    /// user id -> (role, open sockets) on this process; BTreeMap keeps it sorted.
    users: BTreeMap<UserId, (Role, usize)>,
    /// What other processes reported, by process, with when they said it.
    remote: HashMap<String, (Instant, Vec<PresenceEntry>)>,
    /// The local set changed since it was last told to other processes.
    local_changed: bool,
    /// A flush is already due.
    scheduled: bool,
    last_sent: Option<Instant>,
}

/// A flush: the message for the room, and the local part when it changed
/// (for the other processes).
pub struct Flush {
    pub message: Text,
    pub changed_local: Option<Vec<PresenceEntry>>,
}

impl Presence {
    /// A socket of `user` joined.
    pub fn joined(&mut self, user: &UserId, role: Role) {
        self.local_changed = true;
        let entry = self.users.entry(user.clone()).or_insert((role, 0));
        entry.0 = role;
        entry.1 += 1;
    }

    /// A socket of `user` left.
    pub fn left(&mut self, user: &UserId) {
        self.local_changed = true;
        if let Some(entry) = self.users.get_mut(user) {
            entry.1 -= 1;
            if entry.1 == 0 {
                self.users.remove(user);
            }
        }
    }

    /// A member's role changed (here and in what others reported).
    pub fn set_role(&mut self, user: &UserId, role: Role) {
        self.local_changed = true;
        for (_, users) in self.remote.values_mut() {
            for entry in users.iter_mut().filter(|e| e.user_id == *user) {
                entry.role = role;
            }
        }
        if let Some(entry) = self.users.get_mut(user) {
            entry.0 = role;
        }
    }

    /// Another process's presence for this room (empty: nobody there now).
    pub fn remote(&mut self, origin: &str, users: Vec<PresenceEntry>, now: Instant) {
        // A process we had not heard of yet here: tell it about us at once
        // instead of at our next periodic repeat.
        if self
            .remote
            .insert(origin.to_string(), (now, users))
            .is_none()
        {
            self.local_changed = true;
        }
    }

    /// This process's part, sorted by user id.
    pub fn local(&self) -> Vec<PresenceEntry> {
        self.users
            .iter()
            .map(|(user, (role, n))| PresenceEntry {
                user_id: user.clone(),
                role: *role,
                connections: *n,
            })
            .collect()
    }

    /// Asks for a flush: `None` when one is already due, else how long to
    /// wait so that flushes stay [`PRESENCE_INTERVAL`] apart.
    pub fn schedule(&mut self, now: Instant) -> Option<Duration> {
        if self.scheduled {
            return None;
        }
        self.scheduled = true;
        Some(
            self.last_sent
                .map(|t| PRESENCE_INTERVAL.saturating_sub(now.duration_since(t)))
                .unwrap_or_default(),
        )
    }

    /// The merged presence (this process and live reports from the others).
    pub fn flush(&mut self, now: Instant) -> Flush {
        self.scheduled = false;
        self.last_sent = Some(now);
        self.remote
            .retain(|_, (at, _)| now.duration_since(*at) < REMOTE_PRESENCE_TTL);
        let local = self.local();
        let mut merged: BTreeMap<UserId, PresenceEntry> = BTreeMap::new();
        for entry in local
            .iter()
            .chain(self.remote.values().flat_map(|(_, users)| users))
        {
            merged
                .entry(entry.user_id.clone())
                .and_modify(|e| e.connections += entry.connections)
                .or_insert_with(|| entry.clone());
        }
        let users: Vec<PresenceEntry> = merged.into_values().collect();
        Flush {
            message: ServerMsg::Presence { users: &users }.text(),
            changed_local: std::mem::take(&mut self.local_changed).then_some(local),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    fn users(flush: &Flush) -> Value {
        serde_json::from_str::<Value>(flush.message.as_str()).unwrap()["users"].clone()
    }

    #[tokio::test(start_paused = true)]
    async fn flushes_are_coalesced_to_one_per_interval() {
        let mut p = Presence::default();
        assert_eq!(p.schedule(Instant::now()), Some(Duration::ZERO));
        assert_eq!(p.schedule(Instant::now()), None, "already due");
        p.flush(Instant::now());
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(p.schedule(Instant::now()), Some(Duration::from_millis(150)));
    }

    #[tokio::test(start_paused = true)]
    async fn local_and_remote_users_merge_sorted_and_stale_reports_drop_out() {
        let mut p = Presence::default();
        p.joined(&user("user_b"), Role::Editor);
        p.joined(&user("user_b"), Role::Editor);
        let remote = vec![
            PresenceEntry {
                user_id: user("user_a"),
                role: Role::Owner,
                connections: 1,
            },
            PresenceEntry {
                user_id: user("user_b"),
                role: Role::Editor,
                connections: 3,
            },
        ];
        p.remote("other", remote, Instant::now());
        let flush = p.flush(Instant::now());
        assert_eq!(
            users(&flush),
            json!([
                {"user_id": "user_a", "role": "owner", "connections": 1},
                {"user_id": "user_b", "role": "editor", "connections": 5},
            ])
        );
        assert!(flush.changed_local.is_some());
        tokio::time::advance(REMOTE_PRESENCE_TTL).await;
        let flush = p.flush(Instant::now());
        assert_eq!(
            users(&flush),
            json!([{"user_id": "user_b", "role": "editor", "connections": 2}])
        );
        assert!(flush.changed_local.is_none(), "nothing changed here");
    }
}
