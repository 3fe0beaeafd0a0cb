//! A read-through cache of notebook snapshots (the notebook, its cells and
//! who may see it), so the hot read path (`GET` a notebook, and the access
//! check in front of every request) does not go to the database.
//!
//! Correctness rests on one rule: every change in this process goes through
//! the service ([`Notebooks`](crate::service::Notebooks)), which calls
//! [`ReadCache::invalidate`] after it commits. A fill that raced with a commit must not leave stale data
//! behind, so fills and invalidations of one notebook are serialized on a
//! striped lock around a generation counter: a fill is stored only if no
//! invalidation happened since it started reading. Processes that share a
//! database learn of each other's commits through the fan-out, which
//! invalidates here too.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use moka::sync::Cache;

use crate::notebook::model::{Notebook, NotebookId, Role, UserId};
use crate::service::{Actor, Grant};
use crate::store::{Store, StoreError};

const STRIPES: usize = 64;

/// A consistent picture of one notebook.
pub struct Snapshot {
    pub notebook: Notebook,
    /// Everyone with access, the owner included.
    roles: HashMap<UserId, Role>,
}

impl Snapshot {
    /// The user's role, `None` when they have no access.
    pub fn role_of(&self, user: &UserId) -> Option<Role> {
        self.roles.get(user).copied()
    }

    /// The actor's effective access (own role, its organization's, scopes).
    pub fn grant(&self, actor: &Actor) -> Option<Grant> {
        let org = actor.org.as_ref().and_then(|o| self.role_of(o));
        actor.grant(self.role_of(&actor.id), org)
    }
}

/// Snapshots by notebook id, with the generation guard described above.
pub struct ReadCache {
    /// Off while this process could miss another process's invalidations
    /// (fan-out down, or a shared database without fan-out).
    enabled: AtomicBool,
    cache: Cache<NotebookId, Arc<Snapshot>>,
    /// Per-stripe generation, bumped by every invalidation.
    stripes: Vec<Mutex<u64>>,
    hasher: std::collections::hash_map::RandomState,
}

impl ReadCache {
    /// A cache holding about `max_bytes` of notebooks.
    pub fn new(max_bytes: u64, enabled: bool) -> Self {
        ReadCache {
            enabled: AtomicBool::new(enabled),
            cache: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, snap: &Arc<Snapshot>| weight(&snap.notebook))
                .build(),
            stripes: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
            hasher: Default::default(),
        }
    }

    fn stripe(&self, id: NotebookId) -> &Mutex<u64> {
        &self.stripes[(self.hasher.hash_one(id) as usize) % STRIPES]
    }

    fn generation(&self, id: NotebookId) -> u64 {
        *self.stripe(id).lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The notebook's snapshot, from memory or the store; `None` when it does not exist.
    pub async fn get(
        &self,
        store: &dyn Store,
        id: NotebookId,
    ) -> Result<Option<Arc<Snapshot>>, StoreError> {
        let enabled = self.enabled.load(Ordering::Acquire);
        if enabled {
            if let Some(snap) = self.cache.get(&id) {
                return Ok(Some(snap));
            }
        }
        let started = self.generation(id);
        let Some(notebook) = store.notebook(id).await? else {
            return Ok(None);
        };
        let members = store.members(id).await?;
        let mut roles: HashMap<UserId, Role> = members.into_iter().collect();
        roles.insert(notebook.meta.owner_id.clone(), Role::Owner);
        let snap = Arc::new(Snapshot { notebook, roles });
        let generation = self.stripe(id).lock().unwrap_or_else(|e| e.into_inner());
        if enabled && *generation == started {
            self.cache.insert(id, snap.clone());
        }
        Ok(Some(snap))
    }

    /// Forgets a notebook after a committed change to it (or its members).
    pub fn invalidate(&self, id: NotebookId) {
        let mut generation = self.stripe(id).lock().unwrap_or_else(|e| e.into_inner());
        *generation += 1;
        self.cache.invalidate(&id);
    }

    /// Switches the cache on or off; either way it starts empty.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Release);
        self.clear();
    }

    /// Forgets everything (e.g. when a fan-out gap means we may have missed changes).
    pub fn clear(&self) {
        for stripe in &self.stripes {
            *stripe.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        }
        self.cache.invalidate_all();
    }
}

/// Approximate bytes a snapshot holds.
fn weight(notebook: &Notebook) -> u32 {
    let cells: usize = notebook
        .cells
        .iter()
        .map(|c| 256 + c.source.len() + c.outputs.iter().map(value_size).sum::<usize>())
        .sum();
    (1024 + cells).min(u32::MAX as usize) as u32
}

/// A rough size of a JSON value without serializing it.
fn value_size(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    match v {
        Value::String(s) => 24 + s.len(),
        Value::Array(a) => 24 + a.iter().map(value_size).sum::<usize>(),
        Value::Object(o) => {
            48 + o
                .iter()
                .map(|(k, v)| 24 + k.len() + value_size(v))
                .sum::<usize>()
        }
        _ => 16,
    }
}
