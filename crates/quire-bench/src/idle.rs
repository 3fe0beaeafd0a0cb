//! `ws idle`: open N authenticated sockets, hold them, and report the
//! server's memory per socket.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::args::IdleArgs;
use crate::client::{close_code, connect, wait_for, Ws};
use crate::setup::{setup, Setup};
use crate::stats::{check_nofile, fmt_kib, loadavg, per_socket, rss_kib, Errors};

/// Counters the holding tasks share with the scenario.
#[derive(Clone, Default)]
struct Holders {
    errors: Errors,
    ready: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    cancel: CancellationToken,
}

/// Server RSS at the moments the report names.
struct Readings {
    before: Option<u64>,
    ready: Option<u64>,
    held: Option<u64>,
    load_ready: String,
    connect_secs: f64,
}

/// Runs the scenario and prints its report.
pub(crate) async fn run(args: IdleArgs) -> Result<()> {
    let n = args.sockets;
    check_nofile(n)?;
    let common = &args.common;
    eprintln!("load average at start: {}", loadavg());
    let setup = Arc::new(setup(common, n, 1, args.notebooks, args.cell_bytes).await?);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = || common.server_pid.and_then(rss_kib);
    let before = rss();

    let holders = Holders::default();
    let gate = Arc::new(Semaphore::new(common.concurrency.max(1)));
    let started = Instant::now();
    let tasks: Vec<JoinHandle<()>> = (0..n)
        .map(|k| tokio::spawn(hold(setup.clone(), k, gate.clone(), holders.clone())))
        .collect();
    let limit = Duration::from_secs(common.ready_timeout_secs + n as u64 / 50 + 30);
    let progress = || {
        (
            holders.ready.load(Ordering::Relaxed),
            holders.failed.load(Ordering::Relaxed),
        )
    };
    wait_for("connect", n, limit, progress).await;
    let connect_secs = started.elapsed().as_secs_f64();
    // Let the coalesced presence messages of the join settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ready = rss();
    let load_ready = loadavg();
    tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    let readings = Readings {
        before,
        ready,
        held: rss(),
        load_ready,
        connect_secs,
    };
    let held = holders.open.load(Ordering::Relaxed);
    let client_rss = rss_kib(std::process::id());
    holders.cancel.cancel();
    for t in tasks {
        let _ = t.await;
    }
    print_report(&args, &setup, &holders, held, &readings, client_rss);
    Ok(())
}

/// Socket `k`: connects (at most `gate` at once), then holds the socket
/// until cancelled, counting what happens to it.
async fn hold(setup: Arc<Setup>, k: usize, gate: Arc<Semaphore>, holders: Holders) {
    let permit = gate.acquire_owned().await.expect("semaphore open");
    let ws = match connect(&setup, k).await {
        Ok((ws, _)) => ws,
        Err(e) => {
            holders.errors.add(e);
            holders.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    drop(permit);
    holders.ready.fetch_add(1, Ordering::Relaxed);
    holders.open.fetch_add(1, Ordering::Relaxed);
    if let Some(error) = keep_reading(ws, &holders.cancel).await {
        holders.errors.add(error);
        holders.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Reads (so pings are answered) until cancelled, then closes; `Some(why)`
/// when the socket ended first.
async fn keep_reading(mut ws: Ws, cancel: &CancellationToken) -> Option<String> {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                return None;
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Close(frame))) => {
                    return Some(format!("closed {} while held", close_code(frame)));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Some(format!("error while held: {e}")),
                None => return Some("eof while held".into()),
            }
        }
    }
}

fn print_report(
    args: &IdleArgs,
    setup: &Setup,
    holders: &Holders,
    held: usize,
    r: &Readings,
    client_rss: Option<u64>,
) {
    let ready = holders.ready.load(Ordering::Relaxed);
    println!("== quire-bench ws idle ==");
    println!(
        "notebooks:                {} (first {})",
        setup.ws_urls.len(),
        setup.notebook
    );
    println!(
        "sockets requested:        {} ({} users, {} per user)",
        args.sockets,
        setup.tokens.len(),
        setup.per_user
    );
    println!("sockets ready:            {ready}");
    println!(
        "connect+ready time:       {:.1} s ({:.0} sockets/s)",
        r.connect_secs,
        ready as f64 / r.connect_secs
    );
    println!(
        "sockets held at end:      {held} (after {} s hold)",
        args.hold_secs
    );
    println!("server RSS before:        {}", fmt_kib(r.before));
    println!("server RSS all ready:     {}", fmt_kib(r.ready));
    println!("server RSS after hold:    {}", fmt_kib(r.held));
    println!(
        "RSS per socket (ready):   {}",
        per_socket(r.before, r.ready, held)
    );
    println!(
        "RSS per socket (held):    {}",
        per_socket(r.before, r.held, held)
    );
    println!("client RSS:               {}", fmt_kib(client_rss));
    println!(
        "errors:                   {} ({})",
        holders.errors.total(),
        holders.errors.summary()
    );
    println!(
        "load average:             {} (when all ready), {} (end)",
        r.load_ready,
        loadavg()
    );
}
