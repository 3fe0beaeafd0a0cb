//! `quire-bench`: load generator for the realtime side of a running server.
//!
//! ```text
//! ulimit -n $(ulimit -Hn)      # both the server and the bench need one fd per socket
//! target/release/quire dev --addr 127.0.0.1:18080 --database-url sqlite:///tmp/qb/bench.db &
//! cargo run --release -p quire --bin quire-bench -- ws idle   --url http://127.0.0.1:18080 --server-pid $! --sockets 10000
//! cargo run --release -p quire --bin quire-bench -- ws fanout --url http://127.0.0.1:18080 --server-pid $! \
//!     --sockets 1000 --writers 3 --ops-per-sec 100 --secs 60
//! ```
//!
//! It talks to `quire dev` only: tokens come from `GET /__dev/token`. Every
//! run uses fresh user ids (`bench_<nonce>_u<i>`), shares one new notebook
//! (idle: `--notebooks K` spreads users over K) with them as editors, and
//! spreads the sockets over those users so that the per-user connection cap
//! (100 by default) holds. Server memory is read from
//! `/proc/<server-pid>/status` (VmRSS), server CPU from `/proc/<pid>/stat`.
//!
//! `idle` reports RSS per held socket; `fanout` reports deliveries/s, delivery
//! latency percentiles (send timestamp embedded in each op's `source`),
//! version gaps seen by readers, acks, errors and lost acks of the writers,
//! and with `--timeline` a per-second series of deliveries and worst latency.
//!
//! Several servers (`quire dev` processes sharing one PostgreSQL, one Redis via
//! `QUIRE_REDIS_URL` and one `--dev-key-file`): `fanout --reader-urls A,B`
//! spreads the readers round-robin over them while setup, tokens and writers
//! use `--url`; `--server-pids P1,P2` reports RSS and CPU per server (the
//! totals are their sums).
//!
//! The client needs one fd per socket: raise the soft limit in the shell
//! (`ulimit -n $(ulimit -Hn)`); the binary checks it and refuses to start
//! when it is too low.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Parser)]
#[command(
    name = "quire-bench",
    about = "Load generator for a running `quire dev` server"
)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand)]
enum Top {
    /// WebSocket benchmarks.
    #[command(subcommand)]
    Ws(WsMode),
}

#[derive(Subcommand)]
enum WsMode {
    /// Opens N authenticated sockets on one notebook and holds them: server memory per socket.
    Idle(IdleArgs),
    /// N readers on one notebook, W writers sending `cell.update` at a total rate: delivery rate and latency.
    Fanout(FanoutArgs),
}

#[derive(Args, Clone)]
struct Common {
    /// Base URL of the running `quire dev` server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The server's pid, to read its RSS from /proc/PID/status.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Sockets being opened at once.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Sockets per bench user (the server caps connections per user, 100 by default).
    #[arg(long, default_value_t = 100)]
    sockets_per_user: usize,
    /// Lifetime of the dev tokens (must outlive the run; the server grants at most 86400).
    #[arg(long, default_value_t = 86400)]
    token_lifetime_secs: u64,
    /// Give up on a socket that has not received `ready` after this long.
    #[arg(long, default_value_t = 60)]
    ready_timeout_secs: u64,
}

#[derive(Args)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// Sockets to open and hold.
    #[arg(long, default_value_t = 1000)]
    sockets: usize,
    /// How long to hold them once all are ready.
    #[arg(long, default_value_t = 10)]
    hold_secs: u64,
    /// Spread the sockets over this many notebooks (user u on notebook u mod K).
    /// 1 (the default) puts every socket in one room, whose presence list
    /// then names every bench user.
    #[arg(long, default_value_t = 1)]
    notebooks: usize,
    /// Size of the notebook's one cell (bytes of source): the `ready` message
    /// each socket receives grows with it.
    #[arg(long, default_value_t = 0)]
    cell_bytes: usize,
}

#[derive(Args)]
struct FanoutArgs {
    #[command(flatten)]
    common: Common,
    /// Reader sockets.
    #[arg(long, default_value_t = 1000)]
    sockets: usize,
    /// Writer sockets (each edits its own cell). The server allows 50 ops/s
    /// per socket (burst 100), so use at least ops_per_sec / 50 writers.
    #[arg(long, default_value_t = 3)]
    writers: usize,
    /// Total ops per second over all writers.
    #[arg(long, default_value_t = 100.0)]
    ops_per_sec: f64,
    /// How long the writers send.
    #[arg(long, default_value_t = 60)]
    secs: u64,
    /// After sending, how long to wait for outstanding acks and deliveries.
    #[arg(long, default_value_t = 15)]
    drain_secs: u64,
    /// Print progress (ops sent/acked, slowest reader) this often.
    #[arg(long, default_value_t = 5)]
    progress_secs: u64,
    /// Also print a per-second timeline of deliveries and worst latency.
    #[arg(long)]
    timeline: bool,
    /// Servers the readers connect to, round-robin (comma list; default
    /// `--url`). Setup, tokens and writers always use `--url`; the servers
    /// must form one cluster (same database, Redis and `--dev-key-file`).
    #[arg(long, value_delimiter = ',')]
    reader_urls: Vec<String>,
    /// Pids of all servers (comma list), for RSS and CPU per server; the
    /// totals are summed over them. Overrides `--server-pid`.
    #[arg(long, value_delimiter = ',')]
    server_pids: Vec<u32>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Top::Ws(WsMode::Idle(args)) => idle(args).await,
            Top::Ws(WsMode::Fanout(args)) => fanout(args).await,
        }
    })
}

// ---------------------------------------------------------------- helpers

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

/// VmRSS of a process in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU seconds a process has used so far.
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn loadavg() -> String {
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
fn check_nofile(sockets: usize) -> Result<()> {
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

/// `p` in [0, 1] of sorted micros, as milliseconds.
fn pct_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx] as f64 / 1000.0
}

/// Error tallies by kind ("connect: HTTP 429", "closed 4429", ...).
#[derive(Default, Clone)]
struct Errors(Arc<Mutex<BTreeMap<String, u64>>>);

impl Errors {
    fn add(&self, kind: impl Into<String>) {
        *self.0.lock().unwrap().entry(kind.into()).or_default() += 1;
    }

    fn total(&self) -> u64 {
        self.0.lock().unwrap().values().sum()
    }

    fn summary(&self) -> String {
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

// ------------------------------------------------------------------ setup

/// Notebooks shared with enough bench users for the sockets, and their tokens.
/// User `u` holds sockets `u * per_user ..` and is a member of notebook `u % notebooks`.
struct Setup {
    /// One WebSocket URL per notebook.
    ws_urls: Vec<String>,
    /// The WebSocket base of `--url` (`ws://host:port`), the prefix of `ws_urls`.
    ws_base: String,
    tokens: Vec<String>,
    per_user: usize,
    /// (cell id, cell version) of the first notebook's cells.
    cells: Vec<(String, i64)>,
    /// The first notebook's id.
    notebook: String,
    common: Common,
}

impl Setup {
    /// The token for socket number `k`.
    fn token_for(&self, k: usize) -> &str {
        &self.tokens[k / self.per_user]
    }

    /// The WebSocket URL of socket number `k`'s notebook.
    fn ws_url_for(&self, k: usize) -> &str {
        &self.ws_urls[(k / self.per_user) % self.ws_urls.len()]
    }

    /// Socket `k`'s notebook URL on the server whose WebSocket base is `base`
    /// (`None`: the `--url` server).
    fn ws_url_on(&self, base: Option<&str>, k: usize) -> String {
        let url = self.ws_url_for(k);
        match base {
            Some(base) => format!("{base}{}", &url[self.ws_base.len()..]),
            None => url.to_string(),
        }
    }
}

/// `http://host:port` -> `ws://host:port` (https -> wss), without a trailing slash.
fn ws_base_of(url: &str) -> Result<String> {
    let base = url.trim_end_matches('/');
    if let Some(rest) = base.strip_prefix("http://") {
        Ok(format!("ws://{rest}"))
    } else if let Some(rest) = base.strip_prefix("https://") {
        Ok(format!("wss://{rest}"))
    } else {
        bail!("{url}: server URLs must start with http:// or https://");
    }
}

async fn dev_token(
    http: &reqwest::Client,
    base: &str,
    user: &str,
    lifetime: u64,
) -> Result<String> {
    let url = format!("{base}/__dev/token?user_id={user}&lifetime_secs={lifetime}");
    let response = http
        .get(&url)
        .send()
        .await
        .context("GET /__dev/token (is `quire dev` running?)")?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        bail!("GET /__dev/token -> {status}: {body}");
    }
    Ok(body.trim().to_string())
}

/// Creates `notebooks` notebooks of `cells` code cells (owner `bench_owner`)
/// and shares them with one editor per `sockets_per_user` sockets.
async fn setup(
    common: &Common,
    sockets: usize,
    cells: usize,
    notebooks: usize,
    cell_bytes: usize,
) -> Result<Setup> {
    let base = common.url.trim_end_matches('/').to_string();
    let ws_url = ws_base_of(&base).context("--url")?;
    let per_user = common.sockets_per_user.max(1);
    let http = reqwest::Client::new();
    let lifetime = common.token_lifetime_secs;
    let owner = dev_token(&http, &base, "bench_owner", lifetime).await?;
    let source = "x".repeat(cell_bytes);
    let cell_list: Vec<Value> = (0..cells)
        .map(|_| json!({"cell_type": "code", "source": source}))
        .collect();
    let mut ids = Vec::new();
    let mut cells = Vec::new();
    for n in 0..notebooks.max(1) {
        let response = http
            .post(format!("{base}/api/v1/notebooks"))
            .bearer_auth(&owner)
            .json(&json!({"title": format!("quire-bench {n}"), "cells": cell_list}))
            .send()
            .await?;
        let status = response.status();
        let notebook: Value = response.json().await?;
        if !status.is_success() {
            bail!("create notebook -> {status}: {notebook}");
        }
        ids.push(
            notebook["id"]
                .as_str()
                .ok_or_else(|| anyhow!("no id in {notebook}"))?
                .to_string(),
        );
        if n == 0 {
            cells = notebook["cells"]
                .as_array()
                .ok_or_else(|| anyhow!("no cells in {notebook}"))?
                .iter()
                .map(|c| {
                    (
                        c["id"].as_str().unwrap_or_default().to_string(),
                        c["version"].as_i64().unwrap_or(1),
                    )
                })
                .collect();
        }
    }
    let nonce = now_micros() % 1_000_000_000;
    let users = sockets.div_ceil(per_user);
    let results: Vec<Result<(usize, String)>> = futures::stream::iter(0..users)
        .map(|i| {
            let (http, base, owner) = (http.clone(), base.clone(), owner.clone());
            let id = ids[i % ids.len()].clone();
            async move {
                let user = format!("bench_{nonce}_u{i}");
                let response = http
                    .put(format!("{base}/api/v1/notebooks/{id}/members/{user}"))
                    .bearer_auth(&owner)
                    .json(&json!({"role": "editor"}))
                    .send()
                    .await?;
                if !response.status().is_success() {
                    bail!("share with {user} -> {}", response.status());
                }
                Ok((i, dev_token(&http, &base, &user, lifetime).await?))
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut tokens = vec![String::new(); users];
    for r in results {
        let (i, token) = r?;
        tokens[i] = token;
    }
    eprintln!(
        "setup: {} notebook(s) (first {}), {users} users x <= {per_user} sockets",
        ids.len(),
        ids[0]
    );
    Ok(Setup {
        ws_urls: ids
            .iter()
            .map(|id| format!("{ws_url}/api/v1/notebooks/{id}/ws"))
            .collect(),
        ws_base: ws_url,
        tokens,
        per_user,
        cells,
        notebook: ids[0].clone(),
        common: common.clone(),
    })
}

/// Opens one socket with header auth and waits for `ready`.
async fn connect(setup: &Setup, k: usize) -> Result<(Ws, Value), String> {
    connect_on(setup, None, k).await
}

/// [`connect`] to the server with WebSocket base `server` (`None`: `--url`).
async fn connect_on(setup: &Setup, server: Option<&str>, k: usize) -> Result<(Ws, Value), String> {
    let timeout = Duration::from_secs(setup.common.ready_timeout_secs);
    let attempt = async {
        let mut request = setup
            .ws_url_on(server, k)
            .into_client_request()
            .map_err(|e| format!("request: {e}"))?;
        let bearer = HeaderValue::from_str(&format!("Bearer {}", setup.token_for(k)))
            .map_err(|e| e.to_string())?;
        request.headers_mut().insert("authorization", bearer);
        // Small client buffers: 10k sockets should not cost the client gigabytes.
        let config = WebSocketConfig::default()
            .read_buffer_size(8 * 1024)
            .write_buffer_size(0);
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
            .await
            .map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(r) => {
                    format!("connect: HTTP {}", r.status().as_u16())
                }
                tokio_tungstenite::tungstenite::Error::Io(e) => {
                    format!("connect: io {:?}", e.kind())
                }
                other => format!("connect: {other}"),
            })?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let v: Value = serde_json::from_str(&text)
                        .map_err(|_| "bad json before ready".to_string())?;
                    if v["type"] == "ready" {
                        return Ok((ws, v));
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(format!(
                        "closed {} before ready",
                        frame.map(|f| u16::from(f.code)).unwrap_or(1005)
                    ))
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("error before ready: {e}")),
                None => return Err("eof before ready".into()),
            }
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err("ready timeout".into()))
}

/// Polls `done()` until it holds or `limit` passes, printing progress.
async fn wait_for(
    what: &str,
    total: usize,
    limit: Duration,
    progress: impl Fn() -> (usize, usize),
) -> bool {
    let start = Instant::now();
    let mut last_print = 0;
    loop {
        let (ok, failed) = progress();
        if ok + failed >= total {
            eprintln!(
                "{what}: {ok} ready, {failed} failed in {:.1}s",
                start.elapsed().as_secs_f64()
            );
            return true;
        }
        if ok / 1000 != last_print {
            last_print = ok / 1000;
            eprintln!(
                "{what}: {ok}/{total} ready ({failed} failed) after {:.1}s",
                start.elapsed().as_secs_f64()
            );
        }
        if start.elapsed() > limit {
            eprintln!("{what}: gave up with {ok} ready, {failed} failed");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rss_line(pid: Option<u32>) -> Option<u64> {
    pid.and_then(rss_kib)
}

/// Sum of `f(pid)` over `pids`; `None` when there are none or any is unreadable.
fn sum_over<T: std::iter::Sum<T>>(pids: &[u32], f: impl Fn(u32) -> Option<T>) -> Option<T> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| f(*p)).sum()
}

fn fmt_kib(v: Option<u64>) -> String {
    v.map(|k| format!("{k} KiB ({:.1} MiB)", k as f64 / 1024.0))
        .unwrap_or_else(|| "n/a (no --server-pid)".into())
}

fn per_socket(before: Option<u64>, after: Option<u64>, n: usize) -> String {
    match (before, after) {
        (Some(b), Some(a)) if n > 0 => format!("{:.2} KiB", (a as f64 - b as f64) / n as f64),
        _ => "n/a".into(),
    }
}

// ------------------------------------------------------------------- idle

async fn idle(args: IdleArgs) -> Result<()> {
    let n = args.sockets;
    check_nofile(n)?;
    let common = &args.common;
    eprintln!("load average at start: {}", loadavg());
    let setup = Arc::new(setup(common, n, 1, args.notebooks, args.cell_bytes).await?);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = rss_line(common.server_pid);

    let errors = Errors::default();
    let ready = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let open = Arc::new(AtomicUsize::new(0));
    let cancel = CancellationToken::new();
    let gate = Arc::new(Semaphore::new(common.concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for k in 0..n {
        let (setup, errors, ready, failed, open, cancel, gate) = (
            setup.clone(),
            errors.clone(),
            ready.clone(),
            failed.clone(),
            open.clone(),
            cancel.clone(),
            gate.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.expect("semaphore open");
            let mut ws = match connect(&setup, k).await {
                Ok((ws, _)) => ws,
                Err(e) => {
                    errors.add(e);
                    failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            drop(permit);
            ready.fetch_add(1, Ordering::Relaxed);
            open.fetch_add(1, Ordering::Relaxed);
            // Hold: keep reading (pings are answered while reading).
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => {
                        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                        return;
                    }
                    msg = ws.next() => match msg {
                        Some(Ok(Message::Close(frame))) => {
                            errors.add(format!("closed {} while held", frame.map(|f| u16::from(f.code)).unwrap_or(1005)));
                            break;
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            errors.add(format!("error while held: {e}"));
                            break;
                        }
                        None => {
                            errors.add("eof while held");
                            break;
                        }
                    }
                }
            }
            open.fetch_sub(1, Ordering::Relaxed);
        }));
    }
    let limit = Duration::from_secs(common.ready_timeout_secs + n as u64 / 50 + 30);
    let progress = || {
        (
            ready.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
        )
    };
    wait_for("connect", n, limit, progress).await;
    let connect_secs = started.elapsed().as_secs_f64();
    // Let the coalesced presence messages of the join settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_ready = rss_line(common.server_pid);
    let load_ready = loadavg();
    tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    let rss_held = rss_line(common.server_pid);
    let held = open.load(Ordering::Relaxed);
    let client_rss = rss_kib(std::process::id());
    cancel.cancel();
    for t in tasks {
        let _ = t.await;
    }

    println!("== quire-bench ws idle ==");
    println!(
        "notebooks:                {} (first {})",
        setup.ws_urls.len(),
        setup.notebook
    );
    println!(
        "sockets requested:        {n} ({} users, {} per user)",
        setup.tokens.len(),
        setup.per_user
    );
    println!(
        "sockets ready:            {}",
        ready.load(Ordering::Relaxed)
    );
    println!(
        "connect+ready time:       {connect_secs:.1} s ({:.0} sockets/s)",
        ready.load(Ordering::Relaxed) as f64 / connect_secs
    );
    println!(
        "sockets held at end:      {held} (after {} s hold)",
        args.hold_secs
    );
    println!("server RSS before:        {}", fmt_kib(rss_before));
    println!("server RSS all ready:     {}", fmt_kib(rss_ready));
    println!("server RSS after hold:    {}", fmt_kib(rss_held));
    println!(
        "RSS per socket (ready):   {}",
        per_socket(rss_before, rss_ready, held)
    );
    println!(
        "RSS per socket (held):    {}",
        per_socket(rss_before, rss_held, held)
    );
    println!("client RSS:               {}", fmt_kib(client_rss));
    println!(
        "errors:                   {} ({})",
        errors.total(),
        errors.summary()
    );
    println!(
        "load average:             {load_ready} (when all ready), {} (end)",
        loadavg()
    );
    Ok(())
}

// ----------------------------------------------------------------- fanout

/// What one reader saw.
struct ReaderStats {
    deliveries: u64,
    gaps: u64,
    out_of_order: u64,
    re_ready: u64,
    latencies_us: Vec<u32>,
    /// Deliveries per second since the writers started.
    per_sec: Vec<u64>,
    /// Worst delivery latency (micros) per second since the writers started.
    per_sec_max: Vec<u32>,
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

async fn read_ops(
    mut ws: Ws,
    mut last: i64,
    progress: Arc<AtomicI64>,
    start_us: Arc<AtomicU64>,
    seconds: usize,
    cancel: CancellationToken,
    errors: Errors,
) -> ReaderStats {
    let mut stats = ReaderStats {
        deliveries: 0,
        gaps: 0,
        out_of_order: 0,
        re_ready: 0,
        latencies_us: Vec::new(),
        per_sec: vec![0; seconds],
        per_sec_max: vec![0; seconds],
    };
    loop {
        let msg = tokio::select! {
            biased;
            msg = ws.next() => msg,
            _ = cancel.cancelled() => break,
        };
        match msg {
            Some(Ok(Message::Text(text))) => {
                let now = now_micros();
                if let Some((version, t)) = parse_op(&text) {
                    stats.deliveries += 1;
                    if version == last + 1 {
                        last = version;
                    } else if version > last + 1 {
                        stats.gaps += (version - last - 1) as u64;
                        last = version;
                    } else {
                        stats.out_of_order += 1;
                    }
                    progress.store(last, Ordering::Relaxed);
                    let latency = t.map(|t| now.saturating_sub(t).min(u32::MAX as u64) as u32);
                    if let Some(latency) = latency {
                        stats.latencies_us.push(latency);
                    }
                    let start = start_us.load(Ordering::Relaxed);
                    if start > 0 && now >= start {
                        let sec = ((now - start) / 1_000_000) as usize;
                        if let Some(slot) = stats.per_sec.get_mut(sec) {
                            *slot += 1;
                        }
                        if let (Some(slot), Some(latency)) =
                            (stats.per_sec_max.get_mut(sec), latency)
                        {
                            *slot = (*slot).max(latency);
                        }
                    }
                } else if text.starts_with(r#"{"type":"ready""#) {
                    // The server could not fill a gap and started us over.
                    stats.re_ready += 1;
                    if let Ok(v) = serde_json::from_str::<Value>(&text) {
                        last = v["version"].as_i64().unwrap_or(last);
                        progress.store(last, Ordering::Relaxed);
                    }
                }
            }
            Some(Ok(Message::Close(frame))) => {
                errors.add(format!(
                    "reader closed {}",
                    frame.map(|f| u16::from(f.code)).unwrap_or(1005)
                ));
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                errors.add(format!("reader error: {e}"));
                break;
            }
            None => {
                errors.add("reader eof");
                break;
            }
        }
    }
    if !cancel.is_cancelled() {
        // Closed early: wait for the end so the stats are collected together.
        cancel.cancelled().await;
    } else {
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    }
    stats
}

/// What one writer did.
#[derive(Default)]
struct WriterStats {
    sent: u64,
    acks: u64,
    errors: BTreeMap<String, u64>,
    max_version: i64,
    ack_latencies_us: Vec<u32>,
    closed: Option<String>,
}

/// Sends `cell.update`s to its own cell every `period` from `first` until
/// `end`, pipelined: the base version is advanced optimistically (this
/// writer is the only one editing the cell and the server handles a
/// socket's ops in order); a conflict resynchronizes it from `current`.
#[allow(clippy::too_many_arguments)]
async fn write_ops(
    mut ws: Ws,
    index: usize,
    cell_id: String,
    mut base: i64,
    period: Duration,
    first: Instant,
    end: Instant,
    drain: Duration,
    live: Arc<(AtomicU64, AtomicU64)>,
) -> WriterStats {
    let mut stats = WriterStats::default();
    // seq -> (sent at, resync epoch when sent)
    let mut inflight: HashMap<u64, (Instant, u64)> = HashMap::new();
    let mut epoch = 0u64;
    let mut seq = 0u64;
    let mut next = first;
    let mut sending = true;
    let drain_deadline = end + drain;
    loop {
        if !sending && inflight.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    if text.starts_with(r#"{"type":"ack""#) || text.starts_with(r#"{"type":"error""#) {
                        let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                        let seq_of = v["ref"].as_str().and_then(|r| r.rsplit('-').next()).and_then(|s| s.parse::<u64>().ok());
                        let sent = seq_of.and_then(|s| inflight.remove(&s));
                        if v["type"] == "ack" {
                            stats.acks += 1;
                            live.1.fetch_add(1, Ordering::Relaxed);
                            stats.max_version = stats.max_version.max(v["version"].as_i64().unwrap_or(0));
                            if let Some((at, _)) = sent {
                                stats.ack_latencies_us.push(at.elapsed().as_micros().min(u32::MAX as u128) as u32);
                            }
                        } else {
                            let code = v["code"].as_str().unwrap_or("?").to_string();
                            *stats.errors.entry(code.clone()).or_default() += 1;
                            if code == "conflict" {
                                if let (Some((_, sent_epoch)), Some(current)) = (sent, v["current"]["version"].as_i64()) {
                                    if sent_epoch == epoch {
                                        base = current;
                                        epoch += 1;
                                    }
                                }
                            }
                        }
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    stats.closed = Some(format!("writer closed {}", frame.map(|f| u16::from(f.code)).unwrap_or(1005)));
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    stats.closed = Some(format!("writer error: {e}"));
                    break;
                }
                None => {
                    stats.closed = Some("writer eof".into());
                    break;
                }
            },
            _ = tokio::time::sleep_until(next), if sending => {
                if next >= end {
                    sending = false;
                    continue;
                }
                seq += 1;
                let text = json!({
                    "type": "cell.update", "ref": format!("w{index}-{seq}"), "cell_id": cell_id,
                    "base_version": base, "source": format!("t={}", now_micros()),
                })
                .to_string();
                inflight.insert(seq, (Instant::now(), epoch));
                if let Err(e) = ws.send(Message::Text(text.into())).await {
                    stats.closed = Some(format!("writer send error: {e}"));
                    break;
                }
                stats.sent += 1;
                live.0.fetch_add(1, Ordering::Relaxed);
                base += 1;
                next += period;
            }
            _ = tokio::time::sleep_until(drain_deadline), if !sending => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    stats
}

async fn fanout(args: FanoutArgs) -> Result<()> {
    let n = args.sockets;
    let w = args.writers.max(1);
    if args.ops_per_sec <= 0.0 {
        bail!("--ops-per-sec must be positive");
    }
    let per_writer = args.ops_per_sec / w as f64;
    if per_writer > 50.0 {
        eprintln!("warning: {per_writer:.1} ops/s per writer is over the server's 50 ops/s per socket; use more --writers");
    }
    check_nofile(n + w)?;
    let common = &args.common;
    // Servers the readers use, round-robin; `None` is the `--url` server.
    let reader_servers: Vec<Option<String>> = if args.reader_urls.is_empty() {
        vec![None]
    } else {
        args.reader_urls
            .iter()
            .map(|u| ws_base_of(u).map(Some))
            .collect::<Result<_>>()
            .context("--reader-urls")?
    };
    let reader_labels: Vec<String> = if args.reader_urls.is_empty() {
        vec![common.url.clone()]
    } else {
        args.reader_urls.clone()
    };
    let servers = reader_servers.len();
    let pids: Vec<u32> = if args.server_pids.is_empty() {
        common.server_pid.into_iter().collect()
    } else {
        args.server_pids.clone()
    };
    let rss_each = || pids.iter().map(|p| rss_kib(*p)).collect::<Vec<_>>();
    let cpu_each = || pids.iter().map(|p| cpu_secs(*p)).collect::<Vec<_>>();
    eprintln!("load average at start: {}", loadavg());
    let setup = Arc::new(setup(common, n + w, w, 1, 0).await?);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before_each = rss_each();
    let rss_before = sum_over(&pids, rss_kib);

    // Readers: connect with bounded concurrency, then read until cancelled.
    let errors = Errors::default();
    let ready = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let cancel = CancellationToken::new();
    let start_us = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(Semaphore::new(common.concurrency.max(1)));
    let seconds = (args.secs + args.drain_secs + 5) as usize;
    let progress: Vec<Arc<AtomicI64>> = (0..n).map(|_| Arc::new(AtomicI64::new(-1))).collect();
    let ready_on: Arc<Vec<AtomicUsize>> =
        Arc::new((0..servers).map(|_| AtomicUsize::new(0)).collect());
    let mut readers = Vec::with_capacity(n);
    for (k, progress) in progress.iter().enumerate() {
        let server_idx = k % servers;
        let server = reader_servers[server_idx].clone();
        let ready_on = ready_on.clone();
        let (setup, errors, ready, failed, cancel, gate, start_us, progress) = (
            setup.clone(),
            errors.clone(),
            ready.clone(),
            failed.clone(),
            cancel.clone(),
            gate.clone(),
            start_us.clone(),
            progress.clone(),
        );
        readers.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.expect("semaphore open");
            let (ws, ready_msg) = match connect_on(&setup, server.as_deref(), k).await {
                Ok(x) => x,
                Err(e) => {
                    errors.add(e);
                    failed.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            };
            drop(permit);
            let version = ready_msg["version"].as_i64().unwrap_or(0);
            progress.store(version, Ordering::Relaxed);
            ready_on[server_idx].fetch_add(1, Ordering::Relaxed);
            ready.fetch_add(1, Ordering::Relaxed);
            Some((
                server_idx,
                read_ops(ws, version, progress, start_us, seconds, cancel, errors).await,
            ))
        }));
    }
    let limit = Duration::from_secs(common.ready_timeout_secs + n as u64 / 50 + 30);
    wait_for("readers", n, limit, || {
        (
            ready.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
        )
    })
    .await;
    let readers_ready = ready.load(Ordering::Relaxed);

    // Writers: socket numbers n..n+w, cell i each.
    let mut writer_sockets = Vec::with_capacity(w);
    for i in 0..w {
        let (ws, ready_msg) = connect(&setup, n + i)
            .await
            .map_err(|e| anyhow!("writer {i}: {e}"))?;
        let cell_id = setup.cells[i].0.clone();
        let base = ready_msg["notebook"]["cells"]
            .as_array()
            .and_then(|cells| cells.iter().find(|c| c["id"] == cell_id.as_str()))
            .and_then(|c| c["version"].as_i64())
            .unwrap_or(setup.cells[i].1);
        writer_sockets.push((
            ws,
            cell_id,
            base,
            ready_msg["version"].as_i64().unwrap_or(0),
        ));
    }
    let start_version = writer_sockets.iter().map(|s| s.3).max().unwrap_or(0);
    // Presence of the join settles (coalesced every 250 ms).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_connected_each = rss_each();
    let rss_connected = sum_over(&pids, rss_kib);
    let load_connected = loadavg();

    // Go: each writer sends every w/R seconds, staggered so the total is even.
    let period = Duration::from_secs_f64(w as f64 / args.ops_per_sec);
    let go = Instant::now() + Duration::from_millis(200);
    let end = go + Duration::from_secs(args.secs);
    start_us.store(now_micros() + 200_000, Ordering::Relaxed);
    let cpu_start_each = cpu_each();
    let cpu_start = (sum_over(&pids, cpu_secs), cpu_secs(std::process::id()));
    let live = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let mut writers = Vec::with_capacity(w);
    for (i, (ws, cell_id, base, _)) in writer_sockets.into_iter().enumerate() {
        let first = go + period.mul_f64(i as f64 / w as f64);
        let drain = Duration::from_secs(args.drain_secs);
        writers.push(tokio::spawn(write_ops(
            ws,
            i,
            cell_id,
            base,
            period,
            first,
            end,
            drain,
            live.clone(),
        )));
    }
    // Progress every 5 s: ops sent/acked and how far the slowest reader is.
    let monitor = {
        let (live, progress, errors) = (live.clone(), progress.clone(), errors.clone());
        let every = Duration::from_secs(args.progress_secs.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(go + every, every);
            loop {
                tick.tick().await;
                let min = progress
                    .iter()
                    .map(|p| p.load(Ordering::Relaxed))
                    .filter(|v| *v >= 0)
                    .min()
                    .unwrap_or(-1);
                eprintln!(
                    "t={:>3.0}s sent {} acked {} slowest reader at v{} errors {}",
                    (Instant::now() - go).as_secs_f64(),
                    live.0.load(Ordering::Relaxed),
                    live.1.load(Ordering::Relaxed),
                    min,
                    errors.total()
                );
            }
        })
    };
    let mut wstats = Vec::with_capacity(w);
    for t in writers {
        wstats.push(t.await?);
    }
    let sending_done = Instant::now();
    monitor.abort();
    let cpu_end_each = cpu_each();
    let cpu_end = (sum_over(&pids, cpu_secs), cpu_secs(std::process::id()));
    let window_secs = (sending_done - go).as_secs_f64();
    let final_version = wstats
        .iter()
        .map(|s| s.max_version)
        .max()
        .unwrap_or(start_version)
        .max(start_version);
    // Wait for every reader to have the last committed version.
    let drain_limit = Duration::from_secs(args.drain_secs);
    let drained = loop {
        let behind = progress.iter().filter(|p| {
            let v = p.load(Ordering::Relaxed);
            v >= 0 && v < final_version
        });
        let behind = behind.count();
        if behind == 0 {
            break true;
        }
        if sending_done.elapsed() > drain_limit {
            eprintln!("drain: {behind} readers still behind version {final_version}");
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let rss_end_each = rss_each();
    let rss_end = sum_over(&pids, rss_kib);
    let load_end = loadavg();
    let client_rss = rss_kib(std::process::id());
    cancel.cancel();
    let mut rstats = Vec::with_capacity(n);
    let mut rserver = Vec::with_capacity(n);
    for t in readers {
        if let Some((server_idx, s)) = t.await? {
            rserver.push(server_idx);
            rstats.push(s);
        }
    }
    // Per reader server (only reported with several): deliveries and latency.
    let per_server: Vec<(u64, Vec<u32>)> = (0..servers)
        .map(|i| {
            let mine = rstats.iter().zip(&rserver).filter(|(_, s)| **s == i);
            let deliveries = mine.clone().map(|(r, _)| r.deliveries).sum();
            let mut lat: Vec<u32> = mine
                .flat_map(|(r, _)| r.latencies_us.iter().copied())
                .collect();
            lat.sort_unstable();
            (deliveries, lat)
        })
        .collect();

    // ------------------------------------------------------------ report
    let sent: u64 = wstats.iter().map(|s| s.sent).sum();
    let acks: u64 = wstats.iter().map(|s| s.acks).sum();
    let mut werrors: BTreeMap<String, u64> = BTreeMap::new();
    for s in &wstats {
        for (k, v) in &s.errors {
            *werrors.entry(k.clone()).or_default() += v;
        }
        if let Some(c) = &s.closed {
            errors.add(c.clone());
        }
    }
    let op_errors: u64 = werrors.values().sum();
    let lost_acks = sent as i64 - acks as i64 - op_errors as i64;
    let committed = (final_version - start_version).max(0) as u64;
    let deliveries: u64 = rstats.iter().map(|s| s.deliveries).sum();
    let expected = committed * rstats.len() as u64;
    let gaps: u64 = rstats.iter().map(|s| s.gaps).sum();
    let out_of_order: u64 = rstats.iter().map(|s| s.out_of_order).sum();
    let re_ready: u64 = rstats.iter().map(|s| s.re_ready).sum();
    let mut per_sec = vec![0u64; seconds];
    let mut per_sec_max = vec![0u32; seconds];
    for s in &rstats {
        for (i, c) in s.per_sec.iter().enumerate() {
            per_sec[i] += c;
        }
        for (i, m) in s.per_sec_max.iter().enumerate() {
            per_sec_max[i] = per_sec_max[i].max(*m);
        }
    }
    if args.timeline {
        println!("second  deliveries  worst latency (ms)");
        let last = per_sec.iter().rposition(|c| *c > 0).unwrap_or(0);
        for i in 0..=last {
            println!(
                "{i:>6}  {:>10}  {:>10.1}",
                per_sec[i],
                per_sec_max[i] as f64 / 1000.0
            );
        }
    }
    let window = args.secs as usize;
    let in_window: u64 = per_sec[..window.min(seconds)].iter().sum();
    // Full seconds inside the window (skip the first and last, partial by staggering).
    let mut steady: Vec<u64> =
        per_sec[1.min(window)..window.saturating_sub(1).max(1.min(window))].to_vec();
    steady.sort_unstable();
    let after_window: u64 = per_sec[window.min(seconds)..].iter().sum();
    let mut lat: Vec<u32> = Vec::with_capacity(deliveries as usize);
    for s in &mut rstats {
        lat.append(&mut s.latencies_us);
    }
    lat.sort_unstable();
    let mut ack_lat: Vec<u32> = wstats
        .iter_mut()
        .flat_map(|s| std::mem::take(&mut s.ack_latencies_us))
        .collect();
    ack_lat.sort_unstable();
    let conns = readers_ready + w;

    println!("== quire-bench ws fanout ==");
    println!("notebook:                 {}", setup.notebook);
    println!(
        "readers:                  {readers_ready}/{n} ready; writers: {w} at {per_writer:.2} ops/s each ({} users, {} sockets per user)",
        setup.tokens.len(),
        setup.per_user
    );
    println!(
        "target rate:              {} ops/s for {} s",
        args.ops_per_sec, args.secs
    );
    println!("ops sent:                 {sent}");
    println!("acks received:            {acks}");
    println!("op errors:                {op_errors} ({werrors:?})");
    println!("lost acks:                {lost_acks} (sent - acks - errors)");
    println!("versions committed:       {committed} ({start_version} -> {final_version})");
    println!("deliveries:               {deliveries} of {expected} expected ({:.4}%), all drained: {drained}", 100.0 * deliveries as f64 / expected.max(1) as f64);
    println!("deliveries/s (window):    {:.0} ({in_window} in the {} s send window; {after_window} after it)", in_window as f64 / args.secs as f64, args.secs);
    if !steady.is_empty() {
        println!(
            "deliveries/s per second:  min {} / median {} / max {} (full seconds of the window)",
            steady[0],
            steady[steady.len() / 2],
            steady[steady.len() - 1]
        );
    }
    println!(
        "delivery latency:         p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} samples)",
        pct_ms(&lat, 0.50),
        pct_ms(&lat, 0.90),
        pct_ms(&lat, 0.99),
        pct_ms(&lat, 0.999),
        pct_ms(&lat, 1.0),
        lat.len()
    );
    println!(
        "ack latency (writers):    p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct_ms(&ack_lat, 0.50),
        pct_ms(&ack_lat, 0.99),
        pct_ms(&ack_lat, 1.0)
    );
    println!("gaps:                     {gaps} (out of order/duplicate: {out_of_order}, fresh ready: {re_ready})");
    println!(
        "socket errors:            {} ({})",
        errors.total(),
        errors.summary()
    );
    println!("server RSS before:        {}", fmt_kib(rss_before));
    println!("server RSS connected:     {}", fmt_kib(rss_connected));
    println!("server RSS at end:        {}", fmt_kib(rss_end));
    println!(
        "RSS per connection:       {} (connected), {} (end)",
        per_socket(rss_before, rss_connected, conns),
        per_socket(rss_before, rss_end, conns)
    );
    println!("client RSS:               {}", fmt_kib(client_rss));
    let cpu_pct = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.0}%", 100.0 * (b - a) / window_secs),
        _ => "n/a".into(),
    };
    println!(
        "CPU while sending:        server {}, bench client {} (of one core; 2 cores = 200%)",
        cpu_pct(cpu_start.0, cpu_end.0),
        cpu_pct(cpu_start.1, cpu_end.1)
    );
    if servers > 1 {
        for (i, label) in reader_labels.iter().enumerate() {
            let assigned = (0..n).filter(|k| k % servers == i).count();
            let (deliveries, lat) = &per_server[i];
            println!(
                "readers on {label}: {}/{assigned} ready, {deliveries} deliveries, latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                ready_on[i].load(Ordering::Relaxed),
                pct_ms(lat, 0.50),
                pct_ms(lat, 0.99),
                pct_ms(lat, 1.0)
            );
        }
    }
    if pids.len() > 1 {
        for (i, pid) in pids.iter().enumerate() {
            println!(
                "server pid {pid}: RSS before {}, connected {}, end {}; CPU while sending {}",
                fmt_kib(rss_before_each[i]),
                fmt_kib(rss_connected_each[i]),
                fmt_kib(rss_end_each[i]),
                cpu_pct(cpu_start_each[i], cpu_end_each[i])
            );
        }
    }
    println!("load average:             {load_connected} (connected), {load_end} (end)");
    Ok(())
}
