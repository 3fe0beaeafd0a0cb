//! Opening sockets: header auth (`Authorization: Bearer`), waiting for the
//! server's `ready`, small client buffers, and errors as short tallies.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::setup::Setup;

/// A client socket.
pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The close code of a close frame (1005, "none", when it has none).
pub(crate) fn close_code(frame: Option<CloseFrame>) -> u16 {
    frame.map(|f| u16::from(f.code)).unwrap_or(1005)
}

/// Opens one socket with header auth and waits for `ready`.
pub(crate) async fn connect(setup: &Setup, k: usize) -> Result<(Ws, Value), String> {
    connect_on(setup, None, k).await
}

/// [`connect`] to the server with WebSocket base `server` (`None`: `--url`).
pub(crate) async fn connect_on(
    setup: &Setup,
    server: Option<&str>,
    k: usize,
) -> Result<(Ws, Value), String> {
    let timeout = Duration::from_secs(setup.common.ready_timeout_secs);
    let attempt = async {
        let ws = open(&setup.ws_url_on(server, k), setup.token_for(k)).await?;
        await_ready(ws).await
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err("ready timeout".into()))
}

/// The WebSocket handshake at `url` with `token` in the header.
async fn open(url: &str, token: &str) -> Result<Ws, String> {
    let mut request = url
        .into_client_request()
        .map_err(|e| format!("request: {e}"))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| e.to_string())?;
    request.headers_mut().insert("authorization", bearer);
    // Small client buffers: 10k sockets should not cost the client gigabytes.
    let config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
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
    Ok(ws)
}

/// Reads until the server's `ready` message, which it returns with the socket.
async fn await_ready(mut ws: Ws) -> Result<(Ws, Value), String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let v: Value =
                    serde_json::from_str(&text).map_err(|_| "bad json before ready".to_string())?;
                if v["type"] == "ready" {
                    return Ok((ws, v));
                }
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(format!("closed {} before ready", close_code(frame)))
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("error before ready: {e}")),
            None => return Err("eof before ready".into()),
        }
    }
}

/// Polls `progress()` (ready, failed) until they add up to `total` or
/// `limit` passes, printing progress; whether all were accounted for.
pub(crate) async fn wait_for(
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
