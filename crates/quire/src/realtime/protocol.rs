//! The WebSocket wire format (JSON text frames): what clients send, what the
//! server sends ([`ServerMsg`], serialized once into shared [`Text`]), and the
//! close codes ([`CloseReason`]) of DESIGN.md.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::notebook::model::{Cell, CellId, CellType, Role, UserId};
use crate::notebook::ops::{AppliedOp, Committed, NewCell, Op};
use crate::notebook::view::NotebookWithCells;

/// Close codes of DESIGN.md.
pub mod close {
    /// The peer closed normally.
    pub const NORMAL: u16 = 1000;
    /// Server going away (reconnect).
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 4400;
    /// Unauthenticated or token expired (reconnect with a fresh token).
    pub const UNAUTHENTICATED: u16 = 4401;
    /// Access lost or user mismatch.
    pub const FORBIDDEN: u16 = 4403;
    /// Notebook gone.
    pub const NOT_FOUND: u16 = 4404;
    /// No auth in time; also used when the peer stops answering pings.
    pub const TIMEOUT: u16 = 4408;
    pub const TOO_LARGE: u16 = 4413;
    /// Too slow (outbound queue full) or too fast (rate limit sustained).
    pub const TOO_MANY: u16 = 4429;
    /// Keys or Clerk unreachable (retry later).
    pub const UNAVAILABLE: u16 = 4503;
}

/// Why a socket is closed: every close the server sends, with its code and
/// the reason text the client sees. The one place those pairs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed (or the connection broke); echoed as a normal close.
    PeerClosed,
    /// The server is shutting down (1001: reconnect).
    ShuttingDown,
    /// The room's channel closed under the socket (1001: reconnect).
    RoomClosed,
    /// The first message was not JSON.
    FirstMessageNotJson,
    /// A later message was not a JSON object with a `type`.
    NotJson,
    BinaryFrame,
    /// A well-formed message other than `auth` came first.
    AuthenticateFirst,
    InvalidToken,
    TokenExpired,
    /// The session or user was revoked (Clerk webhook).
    Revoked,
    NoAccess,
    /// The user was removed from the notebook while connected.
    AccessRemoved,
    /// A refresh carried another user's token.
    UserMismatch,
    NotFound,
    /// The notebook was deleted while connected.
    Deleted,
    NoAuthInTime,
    NoPong,
    TooLarge,
    /// The outbound queue is full: the peer does not read.
    SlowReader,
    /// Over the rate limit for too long.
    TooManyOps,
    TooManyConnections,
    /// Keys or Clerk unreachable.
    AuthUnavailable,
    /// The store could not be read.
    StoreUnavailable,
}

impl CloseReason {
    /// The close code (DESIGN.md "WebSocket protocol").
    pub fn code(self) -> u16 {
        use CloseReason::*;
        match self {
            PeerClosed => close::NORMAL,
            ShuttingDown | RoomClosed => close::GOING_AWAY,
            FirstMessageNotJson | NotJson | BinaryFrame => close::PROTOCOL_ERROR,
            AuthenticateFirst | InvalidToken | TokenExpired | Revoked => close::UNAUTHENTICATED,
            NoAccess | AccessRemoved | UserMismatch => close::FORBIDDEN,
            NotFound | Deleted => close::NOT_FOUND,
            NoAuthInTime | NoPong => close::TIMEOUT,
            TooLarge => close::TOO_LARGE,
            SlowReader | TooManyOps | TooManyConnections => close::TOO_MANY,
            AuthUnavailable | StoreUnavailable => close::UNAVAILABLE,
        }
    }

    /// The reason text of the close frame.
    pub fn reason(self) -> &'static str {
        use CloseReason::*;
        match self {
            PeerClosed => "closed by peer",
            ShuttingDown => "server shutting down",
            RoomClosed => "room closed",
            FirstMessageNotJson => "not a JSON message",
            NotJson => "not a JSON message with a type",
            BinaryFrame => "binary frames are not supported",
            AuthenticateFirst => "authenticate first",
            InvalidToken => "invalid token",
            TokenExpired => "token expired",
            Revoked => "session revoked",
            NoAccess => "no access to this notebook",
            AccessRemoved => "access removed",
            UserMismatch => "token is for another user",
            NotFound => "notebook not found",
            Deleted => "notebook deleted",
            NoAuthInTime => "no auth in time",
            NoPong => "no pong",
            TooLarge => "message too large",
            SlowReader => "too slow: outbound queue full",
            TooManyOps => "too many ops",
            TooManyConnections => "too many connections for this user",
            AuthUnavailable => "authentication unavailable",
            StoreUnavailable => "store unavailable",
        }
    }
}

/// A serialized server message (UTF-8 JSON), shared by every socket it goes
/// to: cloning it is cheap, so an op is serialized once per room, not once
/// per socket. Plain bytes: no transport type leaks into rooms and events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(Bytes);

impl Text {
    /// The UTF-8 bytes (what the transport writes).
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// The text itself.
    pub fn as_str(&self) -> &str {
        // Only ever built from a `String`, so always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(Bytes::from(s))
    }
}

impl From<&'static str> for Text {
    fn from(s: &'static str) -> Self {
        Text(Bytes::from_static(s.as_bytes()))
    }
}

/// One user's line in a presence list (also what processes tell each other).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PresenceEntry {
    pub user_id: UserId,
    pub role: Role,
    pub connections: usize,
}

/// What the server sends, as typed messages (DESIGN.md "WebSocket protocol").
#[derive(Serialize)]
#[serde(tag = "type")]
pub enum ServerMsg<'a> {
    /// The start (or resumption) of a session; `notebook` only when not resumed.
    #[serde(rename = "ready")]
    Ready {
        resumed: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        notebook: Option<NotebookWithCells<'a>>,
        version: i64,
        epoch: &'a str,
        role: Role,
        expires_in: i64,
        /// With a full `ready`: the notebook's .ipynb top-level metadata
        /// (`kernelspec`, `language_info`), which the page picks its
        /// highlighting language from. Not part of the REST notebook shape.
        #[serde(skip_serializing_if = "Option::is_none")]
        metadata: Option<&'a Map<String, Value>>,
    },
    /// One committed op.
    #[serde(rename = "op")]
    Op {
        version: i64,
        author: &'a str,
        op: &'a AppliedOp,
    },
    /// The client's op `ref` committed as `version`.
    #[serde(rename = "ack")]
    Ack {
        r#ref: Option<&'a str>,
        version: i64,
    },
    /// A refused op or message; the socket stays open.
    #[serde(rename = "error")]
    Error {
        r#ref: Option<&'a str>,
        code: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        current: Option<&'a Cell>,
    },
    /// A refresh was accepted.
    #[serde(rename = "auth.ok")]
    AuthOk { expires_in: i64 },
    /// The user's role on the notebook changed.
    #[serde(rename = "role")]
    Role { role: Role },
    #[serde(rename = "pong")]
    Pong,
    /// Who has the notebook open.
    #[serde(rename = "presence")]
    Presence { users: &'a [PresenceEntry] },
}

impl ServerMsg<'_> {
    /// Serializes the message once.
    pub fn text(&self) -> Text {
        // Serializing these types cannot fail (string keys, no maps of other keys).
        serde_json::to_string(self).unwrap_or_default().into()
    }
}

/// `{"type":"op","version","author","op"}`: one committed op, the same
/// bytes whether it is relayed live, replayed on resume or filled into a gap.
pub fn op(committed: &Committed) -> Text {
    ServerMsg::Op {
        version: committed.version,
        author: committed.author.as_str(),
        op: &committed.op,
    }
    .text()
}

/// Resume point a client sends: the epoch and last version it has.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Since {
    pub epoch: String,
    pub version: i64,
}

/// A message from the client, parsed; ops keep their `ref` for ack/error.
// One lives only from parsing to dispatch; boxing the op would cost an
// allocation per message for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ClientMsg {
    Auth { token: String, since: Option<Since> },
    Ping,
    Op { r#ref: Option<String>, op: Op },
}

/// Why a client message was refused without closing the socket.
#[derive(Debug)]
pub struct BadOp {
    pub r#ref: Option<String>,
    pub message: String,
}

#[derive(Deserialize)]
struct AuthMsg {
    token: String,
    #[serde(default)]
    since: Option<Since>,
}

#[derive(Deserialize)]
struct WsNewCell {
    cell_type: CellType,
    #[serde(default)]
    source: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct InsertMsg {
    index: Option<usize>,
    cell: WsNewCell,
}

#[derive(Deserialize)]
struct UpdateMsg {
    cell_id: String,
    base_version: i64,
    source: Option<String>,
    cell_type: Option<CellType>,
    metadata: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct DeleteMsg {
    cell_id: String,
}

#[derive(Deserialize)]
struct MoveMsg {
    cell_id: String,
    index: usize,
}

#[derive(Deserialize)]
struct RenameMsg {
    title: String,
}

/// Parses a text frame. `Err(None)`: not a JSON object with a string
/// `type` (a protocol error, the socket closes). `Err(Some(bad))`: a
/// well-formed message we refuse (`invalid_op`, the socket stays).
pub fn parse(text: &str) -> Result<ClientMsg, Option<BadOp>> {
    let value: Value = serde_json::from_str(text).map_err(|_| None)?;
    let Value::Object(map) = value else {
        return Err(None);
    };
    let kind = map
        .get("type")
        .and_then(Value::as_str)
        .ok_or(None)?
        .to_string();
    let r#ref = map.get("ref").and_then(Value::as_str).map(str::to_string);
    let bad = |message: String| {
        Some(BadOp {
            r#ref: r#ref.clone(),
            message,
        })
    };
    let value = Value::Object(map);
    let msg = match kind.as_str() {
        "auth" => {
            let m: AuthMsg = from(value).map_err(bad)?;
            ClientMsg::Auth {
                token: m.token,
                since: m.since,
            }
        }
        "ping" => ClientMsg::Ping,
        _ => ClientMsg::Op {
            op: parse_op(&kind, value).map_err(bad)?,
            r#ref: r#ref.clone(),
        },
    };
    Ok(msg)
}

fn from<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| {
        let mut s = e.to_string();
        s.truncate(200);
        s
    })
}

fn cell_id(raw: &str) -> Result<CellId, String> {
    CellId::parse(raw).map_err(|e| e.message().to_string())
}

fn parse_op(kind: &str, value: Value) -> Result<Op, String> {
    Ok(match kind {
        "cell.insert" => {
            let m: InsertMsg = from(value)?;
            let mut cell = NewCell::new(m.cell.cell_type, m.cell.source);
            if let Some(id) = m.cell.id {
                cell = cell.with_id(cell_id(&id)?);
            }
            if let Some(metadata) = m.cell.metadata {
                cell.metadata = metadata;
            }
            Op::CellInsert {
                index: m.index,
                cell,
            }
        }
        "cell.update" => {
            let m: UpdateMsg = from(value)?;
            Op::CellUpdate {
                cell_id: cell_id(&m.cell_id)?,
                base_version: Some(m.base_version),
                source: m.source,
                cell_type: m.cell_type,
                metadata: m.metadata,
            }
        }
        "cell.delete" => Op::CellDelete {
            cell_id: cell_id(&from::<DeleteMsg>(value)?.cell_id)?,
        },
        "cell.move" => {
            let m: MoveMsg = from(value)?;
            Op::CellMove {
                cell_id: cell_id(&m.cell_id)?,
                index: m.index,
            }
        }
        "notebook.rename" => Op::NotebookRename {
            title: from::<RenameMsg>(value)?.title,
        },
        other => return Err(format!("unknown message type {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notebook::model::NotebookId;

    /// The server messages are byte-for-byte what clients got before they
    /// were typed (field order included).
    #[test]
    fn server_messages_keep_their_exact_shape() {
        let ack = ServerMsg::Ack {
            r#ref: Some("r1"),
            version: 3,
        };
        assert_eq!(
            ack.text().as_str(),
            r#"{"type":"ack","ref":"r1","version":3}"#
        );
        let error = ServerMsg::Error {
            r#ref: None,
            code: "rate_limited",
            message: "slow down",
            current: None,
        };
        assert_eq!(
            error.text().as_str(),
            r#"{"type":"error","ref":null,"code":"rate_limited","message":"slow down"}"#
        );
        assert_eq!(
            ServerMsg::AuthOk { expires_in: 59 }.text().as_str(),
            r#"{"type":"auth.ok","expires_in":59}"#
        );
        assert_eq!(
            ServerMsg::Role { role: Role::Viewer }.text().as_str(),
            r#"{"type":"role","role":"viewer"}"#
        );
        assert_eq!(ServerMsg::Pong.text().as_str(), r#"{"type":"pong"}"#);
        let resumed = ServerMsg::Ready {
            resumed: true,
            notebook: None,
            version: 4,
            epoch: "e",
            role: Role::Editor,
            expires_in: 60,
            metadata: None,
        };
        assert_eq!(
            resumed.text().as_str(),
            r#"{"type":"ready","resumed":true,"version":4,"epoch":"e","role":"editor","expires_in":60}"#
        );
        let committed = Committed {
            notebook_id: NotebookId::new(),
            version: 2,
            author: UserId::parse("user_a").unwrap(),
            op: AppliedOp::NotebookRename { title: "t".into() },
            cell: None,
            at: chrono::Utc::now(),
        };
        assert_eq!(
            op(&committed).as_str(),
            r#"{"type":"op","version":2,"author":"user_a","op":{"type":"notebook.rename","title":"t"}}"#
        );
    }

    #[test]
    fn every_close_has_its_design_code() {
        use CloseReason::*;
        let codes: Vec<(u16, &str)> = [
            ShuttingDown,
            FirstMessageNotJson,
            InvalidToken,
            TokenExpired,
            NoAccess,
            UserMismatch,
            NotFound,
            Deleted,
            NoAuthInTime,
            NoPong,
            TooLarge,
            SlowReader,
            TooManyOps,
            AuthUnavailable,
        ]
        .into_iter()
        .map(|r| (r.code(), r.reason()))
        .collect();
        assert_eq!(
            codes,
            [
                (1001, "server shutting down"),
                (4400, "not a JSON message"),
                (4401, "invalid token"),
                (4401, "token expired"),
                (4403, "no access to this notebook"),
                (4403, "token is for another user"),
                (4404, "notebook not found"),
                (4404, "notebook deleted"),
                (4408, "no auth in time"),
                (4408, "no pong"),
                (4413, "message too large"),
                (4429, "too slow: outbound queue full"),
                (4429, "too many ops"),
                (4503, "authentication unavailable"),
            ]
        );
    }

    #[test]
    fn parses_ops_and_keeps_ref() {
        let m = parse(
            r#"{"type":"cell.update","ref":"r1","cell_id":"c1","base_version":3,"source":"x"}"#,
        )
        .unwrap();
        let ClientMsg::Op { r#ref, op } = m else {
            panic!()
        };
        assert_eq!(r#ref.as_deref(), Some("r1"));
        assert!(matches!(
            op,
            Op::CellUpdate {
                base_version: Some(3),
                ..
            }
        ));
    }

    #[test]
    fn update_requires_base_version() {
        let err =
            parse(r#"{"type":"cell.update","ref":"r2","cell_id":"c1","source":"x"}"#).unwrap_err();
        assert_eq!(err.unwrap().r#ref.as_deref(), Some("r2"));
    }

    #[test]
    fn protocol_errors_vs_bad_ops() {
        assert!(parse("not json").unwrap_err().is_none());
        assert!(parse("[1]").unwrap_err().is_none());
        assert!(parse(r#"{"no":"type"}"#).unwrap_err().is_none());
        assert!(parse(r#"{"type":"cell.explode"}"#).unwrap_err().is_some());
        assert!(parse(r#"{"type":"cell.delete","cell_id":"bad id!"}"#)
            .unwrap_err()
            .is_some());
    }

    #[test]
    fn auth_with_since() {
        let m = parse(r#"{"type":"auth","token":"t","since":{"epoch":"e","version":4}}"#).unwrap();
        assert!(matches!(
            m,
            ClientMsg::Auth {
                since: Some(Since { version: 4, .. }),
                ..
            }
        ));
    }
}
