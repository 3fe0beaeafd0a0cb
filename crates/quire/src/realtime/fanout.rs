//! Redis fan-out between quire processes (`QUIRE_REDIS_URL`).
//!
//! Every commit is published on `quire:nb:<notebook id>`; membership,
//! deletion and revocation events on `quire:control`. Each process
//! pattern-subscribes to all notebook channels once (no per-room subscribe
//! race), ignores its own messages (it delivered them already) and relays the
//! rest to its sockets through the hub, which keeps versions in order and
//! fills any gap from the op log, so a message Redis loses loses nothing.
//!
//! Redis down: the process keeps serving (its own sockets still get its own
//! ops), its read cache is switched off (it could miss another process's
//! invalidation), fred reconnects with backoff, and on reconnect every open
//! room catches up from the op log. `/readyz` reports the degraded state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fred::clients::{Client, SubscriberClient};
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use fred::types::config::{Config as RedisConfig, ReconnectPolicy};
use fred::types::Builder;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::presence::PRESENCE_REPUBLISH;
use super::protocol::PresenceEntry;
use super::Hub;
use crate::notebook::model::{NotebookId, Role, UserId};
use crate::notebook::ops::Committed;
use crate::service::Notebooks;

const NOTEBOOK_PREFIX: &str = "quire:nb:";
const CONTROL_CHANNEL: &str = "quire:control";
/// Publishes waiting for Redis; beyond this they are dropped (gap filling
/// on the receiving side recovers them from the op log).
const OUTBOX: usize = 4096;

/// Cluster-wide events that are not ops.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Control {
    Member {
        notebook: NotebookId,
        user: UserId,
        role: Option<Role>,
    },
    Deleted {
        notebook: NotebookId,
    },
    SessionRevoked {
        session_id: String,
    },
    UserRevoked {
        user: UserId,
    },
    /// A user left an organization: its shares no longer count for them.
    OrgMembershipRevoked {
        user: UserId,
        org: UserId,
    },
    /// Who has the notebook open on the sending process.
    Presence {
        notebook: NotebookId,
        users: Vec<PresenceEntry>,
    },
}

#[derive(Serialize)]
struct Outgoing<'a, T> {
    origin: &'a str,
    body: &'a T,
}

#[derive(Deserialize)]
struct Envelope<T> {
    origin: String,
    body: T,
}

/// This process's connection to the fan-out.
#[derive(Clone)]
pub struct Fanout {
    inner: Arc<Inner>,
}

struct Inner {
    /// Random per process: lets a process skip its own messages.
    origin: String,
    outbox: mpsc::Sender<(String, String)>,
    healthy: AtomicBool,
    publisher: Client,
    subscriber: SubscriberClient,
}

impl Fanout {
    /// Connects (in the background: a Redis that is down at start only
    /// means starting degraded) and starts the publisher task.
    pub async fn connect(url: &str) -> anyhow::Result<Fanout> {
        let config = RedisConfig::from_url(url)
            .map_err(|e| anyhow::anyhow!("QUIRE_REDIS_URL is invalid: {e}"))?;
        let mut builder = Builder::from_config(config);
        builder.set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2));
        let publisher = builder.build()?;
        let subscriber = builder.build_subscriber_client()?;
        publisher.connect();
        subscriber.connect();
        let (outbox, rx) = mpsc::channel(OUTBOX);
        let fanout = Fanout {
            inner: Arc::new(Inner {
                origin: uuid::Uuid::new_v4().simple().to_string(),
                outbox,
                healthy: AtomicBool::new(false),
                publisher: publisher.clone(),
                subscriber,
            }),
        };
        tokio::spawn(publish_loop(publisher, rx));
        Ok(fanout)
    }

    /// Whether the subscription is up (else the process is degraded).
    pub fn is_healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Relaxed)
    }

    /// Publishes a commit (never blocks the commit path).
    pub fn publish_op(&self, committed: &Committed) {
        let channel = format!("{NOTEBOOK_PREFIX}{}", committed.notebook_id);
        self.send(channel, committed);
    }

    /// Publishes a control event.
    pub fn publish_control(&self, control: &Control) {
        self.send(CONTROL_CHANNEL.to_string(), control);
    }

    fn send<T: Serialize>(&self, channel: String, body: &T) {
        let envelope = Outgoing {
            origin: &self.inner.origin,
            body,
        };
        let Ok(payload) = serde_json::to_string(&envelope) else {
            return;
        };
        if self.inner.outbox.try_send((channel, payload)).is_err() {
            metrics::counter!("fanout_dropped_total").increment(1);
        }
    }

    /// Relays other processes' messages to the change path and the hub until
    /// shutdown.
    pub fn spawn_relay(&self, notebooks: Notebooks, hub: Hub) {
        let publisher = self.clone();
        hub.set_presence_sink(Box::new(move |notebook, users| {
            publisher.publish_control(&Control::Presence { notebook, users });
        }));
        let fanout = self.clone();
        let tasks = hub.tasks().clone();
        tasks.spawn(async move { fanout.relay(notebooks, hub).await });
    }

    async fn subscribe(&self) -> bool {
        let s = &self.inner.subscriber;
        let ok = s.psubscribe(format!("{NOTEBOOK_PREFIX}*")).await.is_ok()
            && s.subscribe(CONTROL_CHANNEL).await.is_ok();
        self.inner.healthy.store(ok, Ordering::Relaxed);
        ok
    }

    async fn relay(self, notebooks: Notebooks, hub: Hub) {
        let cancel = hub.shutdown_token();
        let subscriber = self.inner.subscriber.clone();
        let mut messages = subscriber.message_rx();
        let mut errors = subscriber.error_rx();
        let mut reconnects = subscriber.reconnect_rx();
        if tokio::time::timeout(Duration::from_secs(2), subscriber.wait_for_connect())
            .await
            .is_ok()
            && self.subscribe().await
        {
            notebooks.fanout_recovered().await;
        } else {
            tracing::warn!("Redis is not reachable: serving degraded until it is");
        }
        let mut republish = tokio::time::interval(PRESENCE_REPUBLISH);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = republish.tick() => hub.republish_presence(),
                message = messages.recv() => match message {
                    Ok(m) => self.on_message(&notebooks, &hub, m.channel.to_string(), m.value.as_str().map(|s| s.to_string())).await,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "fan-out relay lagged; catching up from the op log");
                        notebooks.fanout_recovered().await;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                Ok(error) = errors.recv() => {
                    tracing::warn!(error = ?error.0, "Redis connection lost: serving degraded");
                    self.inner.healthy.store(false, Ordering::Relaxed);
                    notebooks.fanout_degraded();
                }
                Ok(_) = reconnects.recv() => {
                    if self.subscribe().await {
                        tracing::info!("Redis reconnected: catching up");
                        notebooks.fanout_recovered().await;
                    }
                }
            }
        }
        let _ = self.inner.subscriber.quit().await;
        let _ = self.inner.publisher.quit().await;
    }

    async fn on_message(
        &self,
        notebooks: &Notebooks,
        hub: &Hub,
        channel: String,
        payload: Option<String>,
    ) {
        let Some(payload) = payload else { return };
        if let Some(id) = channel.strip_prefix(NOTEBOOK_PREFIX) {
            match serde_json::from_str::<Envelope<Committed>>(&payload) {
                Ok(e) if e.origin == self.inner.origin => {}
                Ok(e) => notebooks.remote_commit(&e.body).await,
                Err(e) => tracing::warn!(notebook = id, error = %e, "unreadable fan-out message"),
            }
        } else if channel == CONTROL_CHANNEL {
            match serde_json::from_str::<Envelope<Control>>(&payload) {
                Ok(e) if e.origin == self.inner.origin => {}
                Ok(Envelope {
                    origin,
                    body: Control::Presence { notebook, users },
                }) => hub.remote_presence(&origin, notebook, users),
                Ok(e) => notebooks.remote_control(e.body),
                Err(e) => tracing::warn!(error = %e, "unreadable fan-out control message"),
            }
        }
    }
}

/// Sends queued publishes; errors are logged, never block commits.
async fn publish_loop(client: Client, mut rx: mpsc::Receiver<(String, String)>) {
    while let Some((channel, payload)) = rx.recv().await {
        if let Err(e) = client.publish::<(), _, _>(channel, payload).await {
            metrics::counter!("fanout_publish_errors_total").increment(1);
            tracing::debug!(error = %e, "fan-out publish failed");
        }
    }
}
