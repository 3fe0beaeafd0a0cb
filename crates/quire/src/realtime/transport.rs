//! The socket's two pipes, and the only module that knows tungstenite.
//!
//! Inbound: frames become [`Inbound`] (text, or why reading stopped).
//! Outbound: everything a session says goes into an [`Outbox`], a bounded
//! queue drained by [`write_loop`] into the WebSocket; a full queue means the
//! peer is not reading (the session then closes it, 4429) instead of memory
//! growing. Large texts go out as fragmented messages of bounded frames, so
//! no socket keeps a write buffer the size of its largest message.

use std::fmt::Display;
use std::time::Duration;

use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::protocol::{CloseReason, Text};

/// What the transport yields.
#[derive(Debug)]
pub enum Inbound {
    /// A whole text message.
    Text(String),
    /// A binary message (not part of the protocol).
    Binary,
    /// A ping or pong: proof of life, nothing to handle.
    Control,
    /// The peer sent a message over the size limit.
    TooLarge,
    /// The connection failed or closed.
    Closed,
}

/// A frame as the session sees it.
fn inbound(item: Result<Message, WsError>) -> Inbound {
    match item {
        Ok(Message::Text(text)) => Inbound::Text(text.to_string()),
        Ok(Message::Binary(_)) => Inbound::Binary,
        Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => Inbound::Control,
        Ok(Message::Close(_)) => Inbound::Closed,
        Err(WsError::Capacity(_)) => Inbound::TooLarge,
        Err(_) => Inbound::Closed,
    }
}

/// The close for an inbound item that ends a read: not a text message and
/// not a ping/pong.
pub fn ended(item: Option<Inbound>) -> CloseReason {
    match item {
        Some(Inbound::Binary) => CloseReason::BinaryFrame,
        Some(Inbound::TooLarge) => CloseReason::TooLarge,
        // Text and control frames are handled by the callers.
        Some(Inbound::Text(_) | Inbound::Control | Inbound::Closed) | None => {
            CloseReason::PeerClosed
        }
    }
}

/// The read half of a WebSocket as a stream of [`Inbound`].
pub fn inbound_stream<R>(stream: R) -> impl Stream<Item = Inbound> + Unpin
where
    R: Stream<Item = Result<Message, WsError>> + Unpin,
{
    stream.map(inbound)
}

/// What a session queues for its peer.
#[derive(Debug)]
pub enum Outgoing {
    Text(Text),
    /// A WebSocket ping (keepalive).
    Ping,
    /// The last frame: the writer stops after it.
    Close(CloseReason),
}

/// The bounded outbound queue. Full means the peer is not reading.
pub struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    urgent_close: Option<oneshot::Sender<CloseReason>>,
}

/// The writer's end of an [`Outbox`].
pub struct OutboxRx {
    rx: mpsc::Receiver<Outgoing>,
    /// `None` once the urgent close has fired or its sender is gone.
    urgent: Option<oneshot::Receiver<CloseReason>>,
}

/// The peer is too slow: its queue is full.
#[derive(Debug)]
pub struct SlowReader;

/// A clone of the queue for a task that waits for room instead of failing
/// (the op worker: its replies are bounded by the ops it accepted).
#[derive(Clone)]
pub struct Replies(mpsc::Sender<Outgoing>);

impl Replies {
    /// Queues `text`, waiting for room; `Err` when the socket is gone.
    pub async fn send(&self, text: Text) -> Result<(), SlowReader> {
        self.0
            .send(Outgoing::Text(text))
            .await
            .map_err(|_| SlowReader)
    }
}

/// A queue of `capacity` messages and its writer's end.
pub fn outbox(capacity: usize) -> (Outbox, OutboxRx) {
    let (tx, rx) = mpsc::channel(capacity);
    let (urgent_tx, urgent) = oneshot::channel();
    let outbox = Outbox {
        tx,
        urgent_close: Some(urgent_tx),
    };
    (
        outbox,
        OutboxRx {
            rx,
            urgent: Some(urgent),
        },
    )
}

impl Outbox {
    /// Queues a message without waiting.
    pub fn send(&mut self, message: Outgoing) -> Result<(), SlowReader> {
        self.tx.try_send(message).map_err(|_| SlowReader)
    }

    /// Queues a text message without waiting.
    pub fn text(&mut self, text: impl Into<Text>) -> Result<(), SlowReader> {
        self.send(Outgoing::Text(text.into()))
    }

    /// A waiting sender on the same queue.
    pub fn replies(&self) -> Replies {
        Replies(self.tx.clone())
    }

    /// Queues the close after what is already queued (a flush), or, when
    /// the queue is full, sends it ahead of everything.
    pub fn close(&mut self, reason: CloseReason) {
        if self.send(Outgoing::Close(reason)).is_err() {
            if let Some(urgent) = self.urgent_close.take() {
                let _ = urgent.send(reason);
            }
        }
    }
}

impl OutboxRx {
    /// The next message: an urgent close jumps the queue (what is queued for a
    /// peer that stopped reading is stale anyway); `None` when every sender is gone.
    pub async fn recv(&mut self) -> Option<Outgoing> {
        let (slot, rx) = (&mut self.urgent, &mut self.rx);
        loop {
            let urgent = async {
                match slot.as_mut() {
                    Some(urgent) => urgent.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                close = urgent => {
                    *slot = None;
                    if let Ok(reason) = close {
                        return Some(Outgoing::Close(reason));
                    }
                }
                next = rx.recv() => return next,
            }
        }
    }
}

/// A socket's outbound side: the queue and the writer task draining it.
pub struct Connection {
    out: Outbox,
    writer: tokio::task::JoinHandle<()>,
}

/// How long the writer may take to flush after the session ended; a peer
/// that does not read by then is cut.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

impl Connection {
    /// Starts the writer over `sink`, with a queue of `capacity` messages.
    pub fn start<S>(sink: S, capacity: usize) -> Connection
    where
        S: Sink<Message> + Send + Unpin + 'static,
        S::Error: Display,
    {
        let (out, rx) = outbox(capacity);
        let writer = tokio::spawn(write_loop(sink, rx));
        Connection { out, writer }
    }

    /// The queue the session writes to.
    pub fn outbox(&mut self) -> &mut Outbox {
        &mut self.out
    }

    /// Lets the writer flush what is queued (the close last), bounded.
    pub async fn finish(self) {
        let Connection { out, mut writer } = self;
        drop(out);
        if tokio::time::timeout(FLUSH_TIMEOUT, &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
    }
}

/// Drains the outbound queue into the sink; stops after a close frame.
pub async fn write_loop<S>(mut sink: S, mut rx: OutboxRx)
where
    S: Sink<Message> + Unpin,
    S::Error: Display,
{
    while let Some(message) = rx.recv().await {
        let is_close = matches!(message, Outgoing::Close(_));
        if let Err(e) = send(&mut sink, message).await {
            tracing::debug!(error = %e, "socket write failed");
            return;
        }
        if is_close {
            break;
        }
    }
    let _ = sink.close().await;
}

/// Frames larger than this are split. The transport keeps a write buffer as
/// large as the largest frame it ever wrote, for the socket's whole life;
/// bounded frames keep every socket's buffer bounded too.
const MAX_FRAME: usize = 4 * 1024;

/// Writes one message; a large text as a fragmented message of bounded frames.
async fn send<S>(sink: &mut S, message: Outgoing) -> Result<(), S::Error>
where
    S: Sink<Message> + Unpin,
{
    let text = match message {
        Outgoing::Text(text) => text,
        Outgoing::Ping => return sink.send(Message::Ping(Default::default())).await,
        Outgoing::Close(reason) => {
            let frame = CloseFrame {
                code: reason.code().into(),
                reason: reason.reason().into(),
            };
            return sink.send(Message::Close(Some(frame))).await;
        }
    };
    let bytes = text.bytes().clone();
    if bytes.len() <= MAX_FRAME {
        let text = Utf8Bytes::try_from(bytes).unwrap_or_default();
        return sink.send(Message::Text(text)).await;
    }
    let mut offset = 0;
    while offset < bytes.len() {
        let end = (offset + MAX_FRAME).min(bytes.len());
        let opcode = if offset == 0 {
            Data::Text
        } else {
            Data::Continue
        };
        let frame = Frame::message(
            bytes.slice(offset..end),
            OpCode::Data(opcode),
            end == bytes.len(),
        );
        sink.feed(Message::Frame(frame)).await?;
        offset = end;
    }
    sink.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn large_texts_go_out_as_bounded_fragments() {
        let text = "é".repeat(5000); // 10,000 bytes, multi-byte chars split across frames
        let mut frames: Vec<Message> = Vec::new();
        send(&mut frames, Outgoing::Text(text.clone().into()))
            .await
            .unwrap();
        assert_eq!(frames.len(), 3);
        let mut joined = Vec::new();
        for (i, m) in frames.iter().enumerate() {
            let Message::Frame(f) = m else {
                panic!("raw frames expected")
            };
            assert!(f.payload().len() <= MAX_FRAME);
            assert_eq!(f.header().is_final, i == 2);
            let want = if i == 0 { Data::Text } else { Data::Continue };
            assert_eq!(f.header().opcode, OpCode::Data(want));
            joined.extend_from_slice(f.payload());
        }
        assert_eq!(joined, text.as_bytes());
        // Small messages are untouched.
        let mut small: Vec<Message> = Vec::new();
        send(&mut small, Outgoing::Text("hi".into())).await.unwrap();
        assert!(matches!(&small[..], [Message::Text(t)] if t.as_str() == "hi"));
    }

    #[tokio::test]
    async fn a_close_on_a_full_queue_jumps_ahead_of_what_is_queued() {
        let (mut out, mut rx) = outbox(1);
        out.text("stale").unwrap();
        assert!(out.text("more").is_err(), "the queue holds one");
        out.close(CloseReason::SlowReader);
        assert!(matches!(
            rx.recv().await,
            Some(Outgoing::Close(CloseReason::SlowReader))
        ));
    }

    #[tokio::test]
    async fn a_close_with_room_comes_after_what_is_queued() {
        let (mut out, mut rx) = outbox(4);
        out.text("first").unwrap();
        out.close(CloseReason::TokenExpired);
        drop(out);
        assert!(matches!(rx.recv().await, Some(Outgoing::Text(t)) if t.as_str() == "first"));
        assert!(matches!(
            rx.recv().await,
            Some(Outgoing::Close(CloseReason::TokenExpired))
        ));
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn close_frames_carry_the_code_and_reason() {
        let mut frames: Vec<Message> = Vec::new();
        send(&mut frames, Outgoing::Close(CloseReason::NoAuthInTime))
            .await
            .unwrap();
        let [Message::Close(Some(frame))] = &frames[..] else {
            panic!("{frames:?}")
        };
        assert_eq!(u16::from(frame.code), 4408);
        assert_eq!(frame.reason.as_str(), "no auth in time");
    }
}
