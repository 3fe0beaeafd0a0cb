//! A `fanout` reader: counts the ops it is sent, the versions it misses,
//! and the delivery latency of each (the writer's send time is in the op).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::client::{close_code, Ws};
use crate::stats::{now_micros, Errors};

/// What one reader saw.
pub(crate) struct ReaderStats {
    pub(crate) deliveries: u64,
    pub(crate) gaps: u64,
    pub(crate) out_of_order: u64,
    pub(crate) re_ready: u64,
    pub(crate) latencies_us: Vec<u32>,
    /// Deliveries per second since the writers started.
    pub(crate) per_sec: Vec<u64>,
    /// Worst delivery latency (micros) per second since the writers started.
    pub(crate) per_sec_max: Vec<u32>,
}

/// Where a reader reports to while it runs.
pub(crate) struct ReaderLink {
    /// The newest version this reader has (read by the monitor and the drain).
    pub(crate) progress: Arc<AtomicI64>,
    /// Wall-clock micros the writers start at (0 before they do).
    pub(crate) start_us: Arc<AtomicU64>,
    pub(crate) cancel: CancellationToken,
    pub(crate) errors: Errors,
}

/// `{"type":"op","version":N,...,"source":"t=MICROS"...}` -> (N, MICROS),
/// without building a JSON tree (the server's field order is stable); falls
/// back to a full parse otherwise. `None`: not an op.
fn parse_op(text: &str) -> Option<(i64, Option<u64>)> {
    const PREFIX: &str = r#"{"type":"op","version":"#;
    if let Some(rest) = text.strip_prefix(PREFIX) {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if let Ok(version) = rest[..digits].parse::<i64>() {
            let t = text.find(r#""source":"t="#).and_then(|at| {
                let s = &text[at + r#""source":"t="#.len()..];
                let d = s.bytes().take_while(u8::is_ascii_digit).count();
                s[..d].parse::<u64>().ok()
            });
            return Some((version, t));
        }
    }
    if !text.contains(r#""op""#) {
        return None;
    }
    let v: Value = serde_json::from_str(text).ok()?;
    if v["type"] != "op" {
        return None;
    }
    let t = v["op"]["source"]
        .as_str()
        .and_then(|s| s.strip_prefix("t="))
        .and_then(|s| s.parse().ok());
    Some((v["version"].as_i64()?, t))
}

impl ReaderStats {
    fn new(seconds: usize) -> Self {
        ReaderStats {
            deliveries: 0,
            gaps: 0,
            out_of_order: 0,
            re_ready: 0,
            latencies_us: Vec::new(),
            per_sec: vec![0; seconds],
            per_sec_max: vec![0; seconds],
        }
    }

    /// Counts op `version` (sent at `t`, received at `now`) after `last`;
    /// returns the new newest version.
    fn on_op(&mut self, last: i64, version: i64, t: Option<u64>, now: u64, start: u64) -> i64 {
        self.deliveries += 1;
        let last = if version == last + 1 {
            version
        } else if version > last + 1 {
            self.gaps += (version - last - 1) as u64;
            version
        } else {
            self.out_of_order += 1;
            last
        };
        let latency = t.map(|t| now.saturating_sub(t).min(u32::MAX as u64) as u32);
        if let Some(latency) = latency {
            self.latencies_us.push(latency);
        }
        if start > 0 && now >= start {
            let sec = ((now - start) / 1_000_000) as usize;
            if let Some(slot) = self.per_sec.get_mut(sec) {
                *slot += 1;
            }
            if let (Some(slot), Some(latency)) = (self.per_sec_max.get_mut(sec), latency) {
                *slot = (*slot).max(latency);
            }
        }
        last
    }

    /// Handles one text message; returns the new newest version.
    fn on_text(&mut self, text: &str, last: i64, start_us: &AtomicU64) -> i64 {
        let now = now_micros();
        if let Some((version, t)) = parse_op(text) {
            let start = start_us.load(Ordering::Relaxed);
            return self.on_op(last, version, t, now, start);
        }
        if text.starts_with(r#"{"type":"ready""#) {
            // The server could not fill a gap and started us over.
            self.re_ready += 1;
            if let Ok(v) = serde_json::from_str::<Value>(text) {
                return v["version"].as_i64().unwrap_or(last);
            }
        }
        last
    }
}

/// Reads ops from `ws` (at version `last`) until cancelled; `seconds` sizes
/// the per-second timeline.
pub(crate) async fn read_ops(
    mut ws: Ws,
    mut last: i64,
    seconds: usize,
    link: ReaderLink,
) -> ReaderStats {
    let mut stats = ReaderStats::new(seconds);
    loop {
        let msg = tokio::select! {
            biased;
            msg = ws.next() => msg,
            _ = link.cancel.cancelled() => break,
        };
        let ended = match msg {
            Some(Ok(Message::Text(text))) => {
                last = stats.on_text(&text, last, &link.start_us);
                link.progress.store(last, Ordering::Relaxed);
                None
            }
            Some(Ok(Message::Close(frame))) => Some(format!("reader closed {}", close_code(frame))),
            Some(Ok(_)) => None,
            Some(Err(e)) => Some(format!("reader error: {e}")),
            None => Some("reader eof".into()),
        };
        if let Some(why) = ended {
            link.errors.add(why);
            break;
        }
    }
    if !link.cancel.is_cancelled() {
        // Closed early: wait for the end so the stats are collected together.
        link.cancel.cancelled().await;
    } else {
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_are_read_fast_or_slow() {
        let fast = r#"{"type":"op","version":7,"op":{"type":"cell.update","source":"t=123"}}"#;
        assert_eq!(parse_op(fast), Some((7, Some(123))));
        let reordered = r#"{"version":8,"type":"op","op":{"source":"t=5"}}"#;
        assert_eq!(parse_op(reordered), Some((8, Some(5))));
        assert_eq!(parse_op(r#"{"type":"presence","users":[]}"#), None);
    }

    #[test]
    fn gaps_and_repeats_are_counted() {
        let mut stats = ReaderStats::new(2);
        assert_eq!(stats.on_op(0, 1, Some(10), 1_000_010, 10), 1);
        assert_eq!(stats.on_op(1, 4, None, 1_000_020, 10), 4);
        assert_eq!(stats.on_op(4, 3, None, 1_000_030, 10), 4);
        assert_eq!(
            (stats.deliveries, stats.gaps, stats.out_of_order),
            (3, 2, 1)
        );
        assert_eq!(stats.latencies_us, [1_000_000]);
        assert_eq!(stats.per_sec, [0, 3]);
        assert_eq!(stats.per_sec_max, [0, 1_000_000]);
    }
}
