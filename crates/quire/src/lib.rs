//! quire: a multi-user notebook server with Clerk sign-in and live editing.
//!
//! The library holds everything; `main.rs` only parses the command line.
//! [`serve`] takes a bound listener so tests run the whole server on port 0.
//!
//! Layout: [`config`] (typed settings), [`app`] (the composition root),
//! [`state`] (the handles handlers share), [`service`] (the one change path,
//! `Notebooks`), [`auth`] (verify + revocation),
//! [`store`] (SQLite and PostgreSQL behind the `Store` trait), [`cache`]
//! (notebook snapshots for reads), [`notebook`] (the domain, its ops, .ipynb),
//! [`api`] (REST, the WebSocket upgrade, webhooks), [`realtime`] (rooms,
//! sockets, Redis fan-out), [`web`] (the browser app), [`dev`] (`quire dev`
//! with a local Clerk stand-in).

pub mod api;
pub mod app;
pub mod auth;
pub mod cache;
pub mod config;
pub mod dev;
pub mod notebook;
pub mod realtime;
pub mod service;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod web;

use std::future::Future;

use tokio::net::TcpListener;

pub use app::{App, Parts};
pub use state::AppState;

/// Serves the app on `listener` until `shutdown` resolves, then drains
/// in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let hub = app.state().hub().clone();
    let router = app.router();
    // Ordered shutdown: stop accepting, close every socket with 1001 after
    // flushing what it has queued, wait (bounded) for socket tasks, exit.
    let sockets_closed = {
        let hub = hub.clone();
        async move {
            shutdown.await;
            hub.shutdown(std::time::Duration::from_secs(10)).await;
        }
    };
    // No Nagle: acks and ops are small writes a client is waiting for.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(sockets_closed)
        .await
}

/// Runs `quire serve` with a checked configuration until SIGINT/SIGTERM.
pub async fn run_serve(config: config::Config) -> anyhow::Result<()> {
    let addr = config.addr;
    let app = App::build(config, Parts::default()).await?;
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "quire listening");
    serve(listener, app, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
