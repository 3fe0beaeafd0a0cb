//! `ws fanout`: N readers and W writers on one notebook. The writers send
//! `cell.update`s at a total rate for a while; the readers count what they
//! receive and how late. Phases: plan, setup, readers, writers, send, drain,
//! collect, report.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::args::FanoutArgs;
use crate::client::{connect, connect_on, wait_for, Ws};
use crate::reader::{read_ops, ReaderLink, ReaderStats};
use crate::report::{self, Outcome, Samples};
use crate::setup::{setup, ws_base_of, Setup};
use crate::stats::{check_nofile, loadavg, now_micros, rss_kib, CpuSample, Errors, RssSample};
use crate::writer::{write_ops, WriterPlan, WriterStats};

/// What the arguments work out to.
pub(crate) struct Plan {
    pub(crate) readers: usize,
    pub(crate) writers: usize,
    pub(crate) per_writer: f64,
    /// Servers the readers use, round-robin; `None` is the `--url` server.
    pub(crate) reader_servers: Vec<Option<String>>,
    /// How the report names each of `reader_servers`.
    pub(crate) reader_labels: Vec<String>,
    /// Servers whose RSS and CPU are read.
    pub(crate) pids: Vec<u32>,
    /// Length of the per-second timeline.
    pub(crate) seconds: usize,
}

impl Plan {
    fn new(args: &FanoutArgs) -> Result<Plan> {
        let w = args.writers.max(1);
        if args.ops_per_sec <= 0.0 {
            bail!("--ops-per-sec must be positive");
        }
        let per_writer = args.ops_per_sec / w as f64;
        if per_writer > 50.0 {
            eprintln!("warning: {per_writer:.1} ops/s per writer is over the server's 50 ops/s per socket; use more --writers");
        }
        let (reader_servers, reader_labels) = if args.reader_urls.is_empty() {
            (vec![None], vec![args.common.url.clone()])
        } else {
            let servers = args
                .reader_urls
                .iter()
                .map(|u| ws_base_of(u).map(Some))
                .collect::<Result<_>>()
                .context("--reader-urls")?;
            (servers, args.reader_urls.clone())
        };
        let pids = if args.server_pids.is_empty() {
            args.common.server_pid.into_iter().collect()
        } else {
            args.server_pids.clone()
        };
        Ok(Plan {
            readers: args.sockets,
            writers: w,
            per_writer,
            reader_servers,
            reader_labels,
            pids,
            seconds: (args.secs + args.drain_secs + 5) as usize,
        })
    }
}

/// The reader tasks and what they share with the scenario.
struct Readers {
    handles: Vec<JoinHandle<Option<(usize, ReaderStats)>>>,
    progress: Vec<Arc<AtomicI64>>,
    ready: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    ready_on: Arc<Vec<AtomicUsize>>,
    cancel: CancellationToken,
    start_us: Arc<AtomicU64>,
    errors: Errors,
}

impl Readers {
    /// Connects the readers (bounded concurrency) and lets them read until cancelled.
    fn spawn(setup: &Arc<Setup>, plan: &Plan, concurrency: usize) -> Readers {
        let servers = plan.reader_servers.len();
        let mut readers = Readers {
            handles: Vec::with_capacity(plan.readers),
            progress: (0..plan.readers)
                .map(|_| Arc::new(AtomicI64::new(-1)))
                .collect(),
            ready: Arc::default(),
            failed: Arc::default(),
            ready_on: Arc::new((0..servers).map(|_| AtomicUsize::new(0)).collect()),
            cancel: CancellationToken::new(),
            start_us: Arc::default(),
            errors: Errors::default(),
        };
        let gate = Arc::new(Semaphore::new(concurrency.max(1)));
        for k in 0..plan.readers {
            let server = k % servers;
            let task = readers.reader(setup.clone(), k, server, plan, gate.clone());
            readers.handles.push(tokio::spawn(task));
        }
        readers
    }

    /// Reader `k` on server number `server`.
    fn reader(
        &self,
        setup: Arc<Setup>,
        k: usize,
        server: usize,
        plan: &Plan,
        gate: Arc<Semaphore>,
    ) -> impl std::future::Future<Output = Option<(usize, ReaderStats)>> + Send + 'static {
        let url = plan.reader_servers[server].clone();
        let seconds = plan.seconds;
        let (ready, failed, ready_on) = (
            self.ready.clone(),
            self.failed.clone(),
            self.ready_on.clone(),
        );
        let link = ReaderLink {
            progress: self.progress[k].clone(),
            start_us: self.start_us.clone(),
            cancel: self.cancel.clone(),
            errors: self.errors.clone(),
        };
        async move {
            let permit = gate.acquire_owned().await.expect("semaphore open");
            let (ws, ready_msg) = match connect_on(&setup, url.as_deref(), k).await {
                Ok(x) => x,
                Err(e) => {
                    link.errors.add(e);
                    failed.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            };
            drop(permit);
            let version = ready_msg["version"].as_i64().unwrap_or(0);
            link.progress.store(version, Ordering::Relaxed);
            ready_on[server].fetch_add(1, Ordering::Relaxed);
            ready.fetch_add(1, Ordering::Relaxed);
            Some((server, read_ops(ws, version, seconds, link).await))
        }
    }

    /// The slowest reader's version (-1: none ready).
    fn slowest(progress: &[Arc<AtomicI64>]) -> i64 {
        progress
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .filter(|v| *v >= 0)
            .min()
            .unwrap_or(-1)
    }

    /// Stops the readers and gathers what each saw, with its server number.
    async fn collect(self) -> Result<(Vec<ReaderStats>, Vec<usize>)> {
        self.cancel.cancel();
        let mut stats = Vec::with_capacity(self.handles.len());
        let mut servers = Vec::with_capacity(self.handles.len());
        for t in self.handles {
            if let Some((server, s)) = t.await? {
                servers.push(server);
                stats.push(s);
            }
        }
        Ok((stats, servers))
    }
}

/// A connected writer: socket, its cell and version, and the notebook version.
struct WriterSocket {
    ws: Ws,
    cell_id: String,
    base: i64,
    version: i64,
}

/// Writers are socket numbers `n..n+w`, writer `i` editing cell `i`.
async fn connect_writers(setup: &Setup, n: usize, w: usize) -> Result<Vec<WriterSocket>> {
    let mut sockets = Vec::with_capacity(w);
    for i in 0..w {
        let (ws, ready_msg) = connect(setup, n + i)
            .await
            .map_err(|e| anyhow!("writer {i}: {e}"))?;
        let cell_id = setup.cells[i].0.clone();
        let base = cell_version(&ready_msg, &cell_id).unwrap_or(setup.cells[i].1);
        let version = ready_msg["version"].as_i64().unwrap_or(0);
        sockets.push(WriterSocket {
            ws,
            cell_id,
            base,
            version,
        });
    }
    Ok(sockets)
}

/// The version of cell `id` in a `ready` message.
fn cell_version(ready: &Value, id: &str) -> Option<i64> {
    ready["notebook"]["cells"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == id)?["version"]
        .as_i64()
}

/// What the sending phase measured.
struct Sent {
    stats: Vec<WriterStats>,
    done: Instant,
    window_secs: f64,
    cpu: (CpuSample, CpuSample),
}

/// Runs the writers, staggered so the total rate is even, with a progress
/// line every `--progress-secs`, until they are done.
async fn send(
    args: &FanoutArgs,
    plan: &Plan,
    sockets: Vec<WriterSocket>,
    readers: &Readers,
) -> Result<Sent> {
    let w = plan.writers;
    let period = Duration::from_secs_f64(w as f64 / args.ops_per_sec);
    let go = Instant::now() + Duration::from_millis(200);
    let end = go + Duration::from_secs(args.secs);
    readers
        .start_us
        .store(now_micros() + 200_000, Ordering::Relaxed);
    let cpu_start = CpuSample::take(&plan.pids);
    let live = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let writers: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let plan = WriterPlan {
                index: i,
                cell_id: s.cell_id,
                base: s.base,
                period,
                first: go + period.mul_f64(i as f64 / w as f64),
                end,
                drain: Duration::from_secs(args.drain_secs),
                live: live.clone(),
            };
            tokio::spawn(write_ops(s.ws, plan))
        })
        .collect();
    let every = Duration::from_secs(args.progress_secs.max(1));
    let monitor = tokio::spawn(monitor(go, every, live, readers));
    let mut stats = Vec::with_capacity(w);
    for t in writers {
        stats.push(t.await?);
    }
    let done = Instant::now();
    monitor.abort();
    Ok(Sent {
        stats,
        done,
        window_secs: (done - go).as_secs_f64(),
        cpu: (cpu_start, CpuSample::take(&plan.pids)),
    })
}

/// Prints ops sent/acked and how far the slowest reader is, every `every`.
fn monitor(
    go: Instant,
    every: Duration,
    live: Arc<(AtomicU64, AtomicU64)>,
    readers: &Readers,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let (progress, errors) = (readers.progress.clone(), readers.errors.clone());
    async move {
        let mut tick = tokio::time::interval_at(go + every, every);
        loop {
            tick.tick().await;
            eprintln!(
                "t={:>3.0}s sent {} acked {} slowest reader at v{} errors {}",
                (Instant::now() - go).as_secs_f64(),
                live.0.load(Ordering::Relaxed),
                live.1.load(Ordering::Relaxed),
                Readers::slowest(&progress),
                errors.total()
            );
        }
    }
}

/// Waits (up to `limit` after `since`) for every reader to have `version`.
async fn drain(progress: &[Arc<AtomicI64>], version: i64, since: Instant, limit: Duration) -> bool {
    loop {
        let behind = progress
            .iter()
            .filter(|p| {
                let v = p.load(Ordering::Relaxed);
                v >= 0 && v < version
            })
            .count();
        if behind == 0 {
            return true;
        }
        if since.elapsed() > limit {
            eprintln!("drain: {behind} readers still behind version {version}");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the scenario and prints its report.
pub(crate) async fn run(args: FanoutArgs) -> Result<()> {
    let plan = Plan::new(&args)?;
    let (n, w) = (plan.readers, plan.writers);
    check_nofile(n + w)?;
    eprintln!("load average at start: {}", loadavg());
    let setup = Arc::new(setup(&args.common, n + w, w, 1, 0).await?);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = RssSample::take(&plan.pids);

    let readers = Readers::spawn(&setup, &plan, args.common.concurrency);
    let limit = Duration::from_secs(args.common.ready_timeout_secs + n as u64 / 50 + 30);
    let counts = || {
        let ready = readers.ready.load(Ordering::Relaxed);
        (ready, readers.failed.load(Ordering::Relaxed))
    };
    wait_for("readers", n, limit, counts).await;
    let readers_ready = readers.ready.load(Ordering::Relaxed);
    let sockets = connect_writers(&setup, n, w).await?;
    let start_version = sockets.iter().map(|s| s.version).max().unwrap_or(0);
    // Presence of the join settles (coalesced every 250 ms).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_connected = RssSample::take(&plan.pids);
    let load_connected = loadavg();

    let sent = send(&args, &plan, sockets, &readers).await?;
    let final_version = sent
        .stats
        .iter()
        .map(|s| s.max_version)
        .max()
        .unwrap_or(start_version)
        .max(start_version);
    let drain_limit = Duration::from_secs(args.drain_secs);
    let drained = drain(&readers.progress, final_version, sent.done, drain_limit).await;
    let samples = Samples {
        rss: [rss_before, rss_connected, RssSample::take(&plan.pids)],
        cpu: sent.cpu,
        loads: [load_connected, loadavg()],
        client_rss: rss_kib(std::process::id()),
    };
    let errors = readers.errors.clone();
    let ready_on = readers
        .ready_on
        .iter()
        .map(|r| r.load(Ordering::Relaxed))
        .collect();
    let (rstats, rserver) = readers.collect().await?;
    report::print(Outcome {
        args: &args,
        setup: &setup,
        plan: &plan,
        readers_ready,
        ready_on,
        rstats,
        rserver,
        wstats: sent.stats,
        errors,
        versions: (start_version, final_version),
        drained,
        window_secs: sent.window_secs,
        samples,
    });
    Ok(())
}
