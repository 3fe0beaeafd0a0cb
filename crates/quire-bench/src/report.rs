//! What `ws fanout` prints: totals over readers and writers, the optional
//! per-second timeline, latency percentiles, memory and CPU, and per-server
//! lines when several servers ran.

use std::collections::BTreeMap;

use crate::args::FanoutArgs;
use crate::fanout::Plan;
use crate::reader::ReaderStats;
use crate::setup::Setup;
use crate::stats::{fmt_kib, pct_ms, per_socket, CpuSample, Errors, RssSample};
use crate::writer::WriterStats;

/// Process readings taken during the run.
pub(crate) struct Samples {
    /// Server RSS before connecting, once connected, at the end.
    pub(crate) rss: [RssSample; 3],
    /// CPU when the writers started and when they were done.
    pub(crate) cpu: (CpuSample, CpuSample),
    /// Load average once connected and at the end.
    pub(crate) loads: [String; 2],
    pub(crate) client_rss: Option<u64>,
}

/// Everything a fanout run measured.
pub(crate) struct Outcome<'a> {
    pub(crate) args: &'a FanoutArgs,
    pub(crate) setup: &'a Setup,
    pub(crate) plan: &'a Plan,
    pub(crate) readers_ready: usize,
    /// Readers ready, per reader server.
    pub(crate) ready_on: Vec<usize>,
    pub(crate) rstats: Vec<ReaderStats>,
    /// The server number of each of `rstats`.
    pub(crate) rserver: Vec<usize>,
    pub(crate) wstats: Vec<WriterStats>,
    pub(crate) errors: Errors,
    /// Notebook version when the writers started and the last one acked.
    pub(crate) versions: (i64, i64),
    pub(crate) drained: bool,
    pub(crate) window_secs: f64,
    pub(crate) samples: Samples,
}

/// Sums over the writers.
struct WriterTotals {
    sent: u64,
    acks: u64,
    errors: BTreeMap<String, u64>,
    op_errors: u64,
    lost_acks: i64,
    /// Ack latencies, sorted.
    ack_lat: Vec<u32>,
}

impl WriterTotals {
    /// Also adds each writer's closing reason to `socket_errors`.
    fn new(wstats: &mut [WriterStats], socket_errors: &Errors) -> Self {
        let sent: u64 = wstats.iter().map(|s| s.sent).sum();
        let acks: u64 = wstats.iter().map(|s| s.acks).sum();
        let mut errors: BTreeMap<String, u64> = BTreeMap::new();
        for s in wstats.iter() {
            for (k, v) in &s.errors {
                *errors.entry(k.clone()).or_default() += v;
            }
            if let Some(c) = &s.closed {
                socket_errors.add(c.clone());
            }
        }
        let op_errors: u64 = errors.values().sum();
        let mut ack_lat: Vec<u32> = wstats
            .iter_mut()
            .flat_map(|s| std::mem::take(&mut s.ack_latencies_us))
            .collect();
        ack_lat.sort_unstable();
        WriterTotals {
            sent,
            acks,
            errors,
            op_errors,
            lost_acks: sent as i64 - acks as i64 - op_errors as i64,
            ack_lat,
        }
    }
}

/// Sums over the readers.
struct ReaderTotals {
    deliveries: u64,
    gaps: u64,
    out_of_order: u64,
    re_ready: u64,
    /// Deliveries per second, and the worst latency in each second.
    per_sec: Vec<u64>,
    per_sec_max: Vec<u32>,
    /// Delivery latencies, sorted.
    lat: Vec<u32>,
}

impl ReaderTotals {
    fn new(rstats: &mut [ReaderStats], seconds: usize) -> Self {
        let mut per_sec = vec![0u64; seconds];
        let mut per_sec_max = vec![0u32; seconds];
        for s in rstats.iter() {
            for (i, c) in s.per_sec.iter().enumerate() {
                per_sec[i] += c;
            }
            for (i, m) in s.per_sec_max.iter().enumerate() {
                per_sec_max[i] = per_sec_max[i].max(*m);
            }
        }
        let deliveries = rstats.iter().map(|s| s.deliveries).sum();
        let mut lat: Vec<u32> = Vec::with_capacity(deliveries as usize);
        for s in rstats.iter_mut() {
            lat.append(&mut s.latencies_us);
        }
        lat.sort_unstable();
        ReaderTotals {
            deliveries,
            gaps: rstats.iter().map(|s| s.gaps).sum(),
            out_of_order: rstats.iter().map(|s| s.out_of_order).sum(),
            re_ready: rstats.iter().map(|s| s.re_ready).sum(),
            per_sec,
            per_sec_max,
            lat,
        }
    }
}

/// Deliveries and sorted latencies of the readers on each server.
fn per_server(rstats: &[ReaderStats], rserver: &[usize], servers: usize) -> Vec<(u64, Vec<u32>)> {
    (0..servers)
        .map(|i| {
            let mine = rstats.iter().zip(rserver).filter(|(_, s)| **s == i);
            let deliveries = mine.clone().map(|(r, _)| r.deliveries).sum();
            let mut lat: Vec<u32> = mine
                .flat_map(|(r, _)| r.latencies_us.iter().copied())
                .collect();
            lat.sort_unstable();
            (deliveries, lat)
        })
        .collect()
}

/// Prints the whole report.
pub(crate) fn print(mut o: Outcome<'_>) {
    let servers = o.plan.reader_servers.len();
    let by_server = per_server(&o.rstats, &o.rserver, servers);
    let writers = WriterTotals::new(&mut o.wstats, &o.errors);
    let readers = ReaderTotals::new(&mut o.rstats, o.plan.seconds);
    if o.args.timeline {
        print_timeline(&readers);
    }
    print_delivery(&o, &writers, &readers);
    print_resources(&o);
    print_per_server(&o, &by_server);
    print_per_pid(&o);
    let [connected, end] = &o.samples.loads;
    println!("load average:             {connected} (connected), {end} (end)");
}

fn print_timeline(readers: &ReaderTotals) {
    println!("second  deliveries  worst latency (ms)");
    let last = readers.per_sec.iter().rposition(|c| *c > 0).unwrap_or(0);
    for i in 0..=last {
        println!(
            "{i:>6}  {:>10}  {:>10.1}",
            readers.per_sec[i],
            readers.per_sec_max[i] as f64 / 1000.0
        );
    }
}

fn print_delivery(o: &Outcome<'_>, writers: &WriterTotals, readers: &ReaderTotals) {
    let (args, plan) = (o.args, o.plan);
    let (start_version, final_version) = o.versions;
    let committed = (final_version - start_version).max(0) as u64;
    let expected = committed * o.rstats.len() as u64;
    println!("== quire-bench ws fanout ==");
    println!("notebook:                 {}", o.setup.notebook);
    println!(
        "readers:                  {}/{} ready; writers: {} at {:.2} ops/s each ({} users, {} sockets per user)",
        o.readers_ready, plan.readers, plan.writers, plan.per_writer,
        o.setup.tokens.len(),
        o.setup.per_user
    );
    println!(
        "target rate:              {} ops/s for {} s",
        args.ops_per_sec, args.secs
    );
    println!("ops sent:                 {}", writers.sent);
    println!("acks received:            {}", writers.acks);
    println!(
        "op errors:                {} ({:?})",
        writers.op_errors, writers.errors
    );
    println!(
        "lost acks:                {} (sent - acks - errors)",
        writers.lost_acks
    );
    println!("versions committed:       {committed} ({start_version} -> {final_version})");
    println!(
        "deliveries:               {} of {expected} expected ({:.4}%), all drained: {}",
        readers.deliveries,
        100.0 * readers.deliveries as f64 / expected.max(1) as f64,
        o.drained
    );
    print_rates(args, plan.seconds, &readers.per_sec);
    let lat = &readers.lat;
    println!(
        "delivery latency:         p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} samples)",
        pct_ms(lat, 0.50),
        pct_ms(lat, 0.90),
        pct_ms(lat, 0.99),
        pct_ms(lat, 0.999),
        pct_ms(lat, 1.0),
        lat.len()
    );
    let ack_lat = &writers.ack_lat;
    println!(
        "ack latency (writers):    p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct_ms(ack_lat, 0.50),
        pct_ms(ack_lat, 0.99),
        pct_ms(ack_lat, 1.0)
    );
    println!(
        "gaps:                     {} (out of order/duplicate: {}, fresh ready: {})",
        readers.gaps, readers.out_of_order, readers.re_ready
    );
    println!(
        "socket errors:            {} ({})",
        o.errors.total(),
        o.errors.summary()
    );
}

/// Deliveries per second in the send window, and over its full seconds.
fn print_rates(args: &FanoutArgs, seconds: usize, per_sec: &[u64]) {
    let window = args.secs as usize;
    let in_window: u64 = per_sec[..window.min(seconds)].iter().sum();
    let after_window: u64 = per_sec[window.min(seconds)..].iter().sum();
    println!("deliveries/s (window):    {:.0} ({in_window} in the {} s send window; {after_window} after it)", in_window as f64 / args.secs as f64, args.secs);
    // Full seconds inside the window (skip the first and last, partial by staggering).
    let mut steady: Vec<u64> =
        per_sec[1.min(window)..window.saturating_sub(1).max(1.min(window))].to_vec();
    steady.sort_unstable();
    if !steady.is_empty() {
        println!(
            "deliveries/s per second:  min {} / median {} / max {} (full seconds of the window)",
            steady[0],
            steady[steady.len() / 2],
            steady[steady.len() - 1]
        );
    }
}

fn print_resources(o: &Outcome<'_>) {
    let [before, connected, end] = &o.samples.rss;
    let conns = o.readers_ready + o.plan.writers;
    println!("server RSS before:        {}", fmt_kib(before.total));
    println!("server RSS connected:     {}", fmt_kib(connected.total));
    println!("server RSS at end:        {}", fmt_kib(end.total));
    println!(
        "RSS per connection:       {} (connected), {} (end)",
        per_socket(before.total, connected.total, conns),
        per_socket(before.total, end.total, conns)
    );
    println!(
        "client RSS:               {}",
        fmt_kib(o.samples.client_rss)
    );
    let (start, stop) = &o.samples.cpu;
    println!(
        "CPU while sending:        server {}, bench client {} (of one core; 2 cores = 200%)",
        cpu_pct(start.total, stop.total, o.window_secs),
        cpu_pct(start.client, stop.client, o.window_secs)
    );
}

/// CPU used between two readings, as a percentage of one core over `secs`.
fn cpu_pct(a: Option<f64>, b: Option<f64>, secs: f64) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:.0}%", 100.0 * (b - a) / secs),
        _ => "n/a".into(),
    }
}

/// One line per reader server, when there are several.
fn print_per_server(o: &Outcome<'_>, by_server: &[(u64, Vec<u32>)]) {
    let servers = o.plan.reader_servers.len();
    if servers <= 1 {
        return;
    }
    for (i, label) in o.plan.reader_labels.iter().enumerate() {
        let assigned = (0..o.plan.readers).filter(|k| k % servers == i).count();
        let (deliveries, lat) = &by_server[i];
        println!(
            "readers on {label}: {}/{assigned} ready, {deliveries} deliveries, latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            o.ready_on[i],
            pct_ms(lat, 0.50),
            pct_ms(lat, 0.99),
            pct_ms(lat, 1.0)
        );
    }
}

/// One line per server process, when there are several.
fn print_per_pid(o: &Outcome<'_>) {
    if o.plan.pids.len() <= 1 {
        return;
    }
    let [before, connected, end] = &o.samples.rss;
    let (start, stop) = &o.samples.cpu;
    for (i, pid) in o.plan.pids.iter().enumerate() {
        println!(
            "server pid {pid}: RSS before {}, connected {}, end {}; CPU while sending {}",
            fmt_kib(before.each[i]),
            fmt_kib(connected.each[i]),
            fmt_kib(end.each[i]),
            cpu_pct(start.each[i], stop.each[i], o.window_secs)
        );
    }
}
