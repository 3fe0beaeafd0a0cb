//! A `fanout` writer: sends `cell.update`s to its own cell at a fixed rate,
//! pipelined, and counts acks, errors and ack latency.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{close_code, Ws};
use crate::stats::now_micros;

/// What one writer did.
#[derive(Default)]
pub(crate) struct WriterStats {
    pub(crate) sent: u64,
    pub(crate) acks: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) max_version: i64,
    pub(crate) ack_latencies_us: Vec<u32>,
    pub(crate) closed: Option<String>,
}

/// One writer's plan: its cell and when it sends.
pub(crate) struct WriterPlan {
    pub(crate) index: usize,
    pub(crate) cell_id: String,
    /// The cell's version when the writer starts.
    pub(crate) base: i64,
    pub(crate) period: Duration,
    pub(crate) first: Instant,
    pub(crate) end: Instant,
    pub(crate) drain: Duration,
    /// Ops sent and acked by all writers so far (for the progress line).
    pub(crate) live: Arc<(AtomicU64, AtomicU64)>,
}

/// A writer's state between messages. The base version is advanced
/// optimistically (this writer is the only one editing the cell and the
/// server handles a socket's ops in order); a conflict resynchronizes it
/// from `current`.
struct Writer {
    plan: WriterPlan,
    stats: WriterStats,
    /// seq -> (sent at, resync epoch when sent)
    inflight: HashMap<u64, (Instant, u64)>,
    epoch: u64,
    seq: u64,
}

impl Writer {
    /// The next `cell.update`, recorded as in flight.
    fn next_message(&mut self) -> Message {
        self.seq += 1;
        let text = json!({
            "type": "cell.update", "ref": format!("w{}-{}", self.plan.index, self.seq),
            "cell_id": self.plan.cell_id, "base_version": self.plan.base,
            "source": format!("t={}", now_micros()),
        })
        .to_string();
        self.inflight.insert(self.seq, (Instant::now(), self.epoch));
        Message::Text(text.into())
    }

    /// Counts a sent op.
    fn sent(&mut self) {
        self.stats.sent += 1;
        self.plan.live.0.fetch_add(1, Ordering::Relaxed);
        self.plan.base += 1;
    }

    /// Handles an `ack` or `error` reply (other messages are ignored).
    fn on_text(&mut self, text: &str) {
        if !text.starts_with(r#"{"type":"ack""#) && !text.starts_with(r#"{"type":"error""#) {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let seq = v["ref"]
            .as_str()
            .and_then(|r| r.rsplit('-').next())
            .and_then(|s| s.parse::<u64>().ok());
        let sent = seq.and_then(|s| self.inflight.remove(&s));
        if v["type"] == "ack" {
            self.on_ack(&v, sent);
        } else {
            self.on_error(&v, sent);
        }
    }

    fn on_ack(&mut self, v: &Value, sent: Option<(Instant, u64)>) {
        self.stats.acks += 1;
        self.plan.live.1.fetch_add(1, Ordering::Relaxed);
        let version = v["version"].as_i64().unwrap_or(0);
        self.stats.max_version = self.stats.max_version.max(version);
        if let Some((at, _)) = sent {
            let micros = at.elapsed().as_micros().min(u32::MAX as u128) as u32;
            self.stats.ack_latencies_us.push(micros);
        }
    }

    fn on_error(&mut self, v: &Value, sent: Option<(Instant, u64)>) {
        let code = v["code"].as_str().unwrap_or("?").to_string();
        *self.stats.errors.entry(code.clone()).or_default() += 1;
        if code != "conflict" {
            return;
        }
        if let (Some((_, sent_epoch)), Some(current)) = (sent, v["current"]["version"].as_i64()) {
            if sent_epoch == self.epoch {
                self.plan.base = current;
                self.epoch += 1;
            }
        }
    }
}

/// Sends every `period` from `first` until `end`, then waits up to `drain`
/// for the replies still in flight.
pub(crate) async fn write_ops(mut ws: Ws, plan: WriterPlan) -> WriterStats {
    let mut next = plan.first;
    let (end, drain_deadline) = (plan.end, plan.end + plan.drain);
    let mut w = Writer {
        plan,
        stats: WriterStats::default(),
        inflight: HashMap::new(),
        epoch: 0,
        seq: 0,
    };
    let mut sending = true;
    while sending || !w.inflight.is_empty() {
        tokio::select! {
            biased;
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => w.on_text(&text),
                Some(Ok(Message::Close(frame))) => {
                    w.stats.closed = Some(format!("writer closed {}", close_code(frame)));
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    w.stats.closed = Some(format!("writer error: {e}"));
                    break;
                }
                None => {
                    w.stats.closed = Some("writer eof".into());
                    break;
                }
            },
            _ = tokio::time::sleep_until(next), if sending => {
                if next >= end {
                    sending = false;
                    continue;
                }
                if let Err(e) = ws.send(w.next_message()).await {
                    w.stats.closed = Some(format!("writer send error: {e}"));
                    break;
                }
                w.sent();
                next += w.plan.period;
            }
            _ = tokio::time::sleep_until(drain_deadline), if !sending => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    w.stats
}
