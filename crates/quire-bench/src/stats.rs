//! Measuring: the server's memory and CPU from `/proc`, the load average, the
//! open-file limit, latency percentiles, and error tallies by kind.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};

/// Wall-clock microseconds, the timestamp writers embed in each op.
pub(crate) fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

/// VmRSS of a process in KiB.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU seconds a process has used so far.
pub(crate) fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` says them.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The soft and hard RLIMIT_NOFILE of this process.
fn nofile_limits() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut parts = line["Max open files".len()..].split_whitespace();
    let soft = parts.next()?.parse().ok()?;
    let hard = parts.next()?.parse().ok()?;
    Some((soft, hard))
}

/// Refuses to start when this process cannot hold `sockets` fds.
pub(crate) fn check_nofile(sockets: usize) -> Result<()> {
    let needed = sockets as u64 + 64;
    if let Some((soft, hard)) = nofile_limits() {
        if soft < needed {
            bail!(
                "open-file limit too low for {sockets} sockets: soft {soft}, hard {hard}, need {needed}; \
                 run `ulimit -n $(ulimit -Hn)` in this shell first (and start the server from a shell with it too)"
            );
        }
    }
    Ok(())
}

/// Sum of `f(pid)` over `pids`; `None` when there are none or any is unreadable.
pub(crate) fn sum_over<T: std::iter::Sum<T>>(
    pids: &[u32],
    f: impl Fn(u32) -> Option<T>,
) -> Option<T> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| f(*p)).sum()
}

/// RSS of each server and their sum, at one moment.
pub(crate) struct RssSample {
    pub(crate) each: Vec<Option<u64>>,
    pub(crate) total: Option<u64>,
}

impl RssSample {
    pub(crate) fn take(pids: &[u32]) -> Self {
        RssSample {
            each: pids.iter().map(|p| rss_kib(*p)).collect(),
            total: sum_over(pids, rss_kib),
        }
    }
}

/// CPU seconds of each server, their sum, and this client's, at one moment.
pub(crate) struct CpuSample {
    pub(crate) each: Vec<Option<f64>>,
    pub(crate) total: Option<f64>,
    pub(crate) client: Option<f64>,
}

impl CpuSample {
    pub(crate) fn take(pids: &[u32]) -> Self {
        CpuSample {
            each: pids.iter().map(|p| cpu_secs(*p)).collect(),
            total: sum_over(pids, cpu_secs),
            client: cpu_secs(std::process::id()),
        }
    }
}

/// `p` in [0, 1] of sorted micros, as milliseconds.
pub(crate) fn pct_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx] as f64 / 1000.0
}

/// A KiB reading as `N KiB (M MiB)`.
pub(crate) fn fmt_kib(v: Option<u64>) -> String {
    v.map(|k| format!("{k} KiB ({:.1} MiB)", k as f64 / 1024.0))
        .unwrap_or_else(|| "n/a (no --server-pid)".into())
}

/// Growth from `before` to `after`, per socket.
pub(crate) fn per_socket(before: Option<u64>, after: Option<u64>, n: usize) -> String {
    match (before, after) {
        (Some(b), Some(a)) if n > 0 => format!("{:.2} KiB", (a as f64 - b as f64) / n as f64),
        _ => "n/a".into(),
    }
}

/// Error tallies by kind ("connect: HTTP 429", "closed 4429", ...).
#[derive(Default, Clone)]
pub(crate) struct Errors(Arc<Mutex<BTreeMap<String, u64>>>);

impl Errors {
    pub(crate) fn add(&self, kind: impl Into<String>) {
        *self.0.lock().unwrap().entry(kind.into()).or_default() += 1;
    }

    pub(crate) fn total(&self) -> u64 {
        self.0.lock().unwrap().values().sum()
    }

    pub(crate) fn summary(&self) -> String {
        let map = self.0.lock().unwrap();
        if map.is_empty() {
            return "none".into();
        }
        map.iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_ceiling_rank() {
        let sorted = [1000, 2000, 3000, 4000];
        assert_eq!(pct_ms(&sorted, 0.5), 2.0);
        assert_eq!(pct_ms(&sorted, 0.9), 4.0);
        assert_eq!(pct_ms(&sorted, 0.0), 1.0);
        assert!(pct_ms(&[], 0.5).is_nan());
    }

    #[test]
    fn sums_need_every_pid() {
        assert_eq!(sum_over(&[1, 2], |p| Some(p as u64)), Some(3));
        assert_eq!(sum_over(&[1, 2], |p| (p == 1).then_some(1u64)), None);
        assert_eq!(sum_over::<u64>(&[], |_| Some(1)), None);
    }
}
