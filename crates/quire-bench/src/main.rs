//! `quire-bench`: load generator for the realtime side of a running server.
//!
//! ```text
//! ulimit -n $(ulimit -Hn)      # both the server and the bench need one fd per socket
//! target/release/quire dev --addr 127.0.0.1:18080 --database-url sqlite:///tmp/qb/bench.db &
//! cargo run --release -p quire-bench -- ws idle   --url http://127.0.0.1:18080 --server-pid $! --sockets 10000
//! cargo run --release -p quire-bench -- ws fanout --url http://127.0.0.1:18080 --server-pid $! \
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
//!
//! Modules: [`args`] (the command line), [`setup`] (notebooks, members and
//! tokens over HTTP), [`client`] (opening sockets), [`reader`] / [`writer`]
//! (the two socket roles of `fanout`), [`idle`] and [`fanout`] (the
//! scenarios), [`stats`] (process readings, percentiles, error tallies) and
//! [`report`] (what `fanout` prints).

mod args;
mod client;
mod fanout;
mod idle;
mod reader;
mod report;
mod setup;
mod stats;
mod writer;

use anyhow::Result;
use clap::Parser;

use args::{Cli, Top, WsMode};

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Top::Ws(WsMode::Idle(args)) => idle::run(args).await,
            Top::Ws(WsMode::Fanout(args)) => fanout::run(args).await,
        }
    })
}
