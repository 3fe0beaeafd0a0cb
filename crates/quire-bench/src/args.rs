//! The command line: `quire-bench ws idle|fanout` and their options.
//!
//! Items here carry `//` rather than `///` comments where clap would turn a
//! doc comment into help text that the `about` attributes already give.

use clap::{Args, Parser, Subcommand};

// `quire-bench`: the top-level command.
#[derive(Parser)]
#[command(
    name = "quire-bench",
    about = "Load generator for a running `quire dev` server"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Top,
}

// Benchmark families.
#[derive(Subcommand)]
pub(crate) enum Top {
    /// WebSocket benchmarks.
    #[command(subcommand)]
    Ws(WsMode),
}

// The WebSocket scenarios.
#[derive(Subcommand)]
pub(crate) enum WsMode {
    /// Opens N authenticated sockets on one notebook and holds them: server memory per socket.
    Idle(IdleArgs),
    /// N readers on one notebook, W writers sending `cell.update` at a total rate: delivery rate and latency.
    Fanout(FanoutArgs),
}

// Options every scenario takes.
#[derive(Args, Clone)]
pub(crate) struct Common {
    /// Base URL of the running `quire dev` server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub(crate) url: String,
    /// The server's pid, to read its RSS from /proc/PID/status.
    #[arg(long)]
    pub(crate) server_pid: Option<u32>,
    /// Sockets being opened at once.
    #[arg(long, default_value_t = 200)]
    pub(crate) concurrency: usize,
    /// Sockets per bench user (the server caps connections per user, 100 by default).
    #[arg(long, default_value_t = 100)]
    pub(crate) sockets_per_user: usize,
    /// Lifetime of the dev tokens (must outlive the run; the server grants at most 86400).
    #[arg(long, default_value_t = 86400)]
    pub(crate) token_lifetime_secs: u64,
    /// Give up on a socket that has not received `ready` after this long.
    #[arg(long, default_value_t = 60)]
    pub(crate) ready_timeout_secs: u64,
}

// `ws idle`: hold sockets, measure server memory per socket.
#[derive(Args)]
pub(crate) struct IdleArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Sockets to open and hold.
    #[arg(long, default_value_t = 1000)]
    pub(crate) sockets: usize,
    /// How long to hold them once all are ready.
    #[arg(long, default_value_t = 10)]
    pub(crate) hold_secs: u64,
    /// Spread the sockets over this many notebooks (user u on notebook u mod K).
    /// 1 (the default) puts every socket in one room, whose presence list
    /// then names every bench user.
    #[arg(long, default_value_t = 1)]
    pub(crate) notebooks: usize,
    /// Size of the notebook's one cell (bytes of source): the `ready` message
    /// each socket receives grows with it.
    #[arg(long, default_value_t = 0)]
    pub(crate) cell_bytes: usize,
}

// `ws fanout`: readers and writers on one notebook, measure delivery.
#[derive(Args)]
pub(crate) struct FanoutArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Reader sockets.
    #[arg(long, default_value_t = 1000)]
    pub(crate) sockets: usize,
    /// Writer sockets (each edits its own cell). The server allows 50 ops/s
    /// per socket (burst 100), so use at least ops_per_sec / 50 writers.
    #[arg(long, default_value_t = 3)]
    pub(crate) writers: usize,
    /// Total ops per second over all writers.
    #[arg(long, default_value_t = 100.0)]
    pub(crate) ops_per_sec: f64,
    /// How long the writers send.
    #[arg(long, default_value_t = 60)]
    pub(crate) secs: u64,
    /// After sending, how long to wait for outstanding acks and deliveries.
    #[arg(long, default_value_t = 15)]
    pub(crate) drain_secs: u64,
    /// Print progress (ops sent/acked, slowest reader) this often.
    #[arg(long, default_value_t = 5)]
    pub(crate) progress_secs: u64,
    /// Also print a per-second timeline of deliveries and worst latency.
    #[arg(long)]
    pub(crate) timeline: bool,
    /// Servers the readers connect to, round-robin (comma list; default
    /// `--url`). Setup, tokens and writers always use `--url`; the servers
    /// must form one cluster (same database, Redis and `--dev-key-file`).
    #[arg(long, value_delimiter = ',')]
    pub(crate) reader_urls: Vec<String>,
    /// Pids of all servers (comma list), for RSS and CPU per server; the
    /// totals are summed over them. Overrides `--server-pid`.
    #[arg(long, value_delimiter = ',')]
    pub(crate) server_pids: Vec<u32>,
}
