//! The WebSocket wire format (JSON text frames) and close codes.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::notebook::model::{CellId, CellType};
use crate::notebook::ops::{Committed, NewCell, Op};

/// Close codes of DESIGN.md.
pub mod close {
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

/// Resume point a client sends: the epoch and last version it has.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Since {
    pub epoch: String,
    pub version: i64,
}

/// A message from the client, parsed; ops keep their `ref` for ack/error.
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

/// `{"type":"error","ref","code","message","current"?}`.
pub fn error(r#ref: Option<&str>, code: &str, message: &str, current: Option<Value>) -> String {
    let mut v = json!({"type": "error", "ref": r#ref, "code": code, "message": message});
    if let Some(current) = current {
        v["current"] = current;
    }
    v.to_string()
}

/// `{"type":"op","version","author","op"}`: one committed op, the same
/// bytes whether it is relayed live, replayed on resume or filled into a gap.
pub fn op(committed: &Committed) -> String {
    json!({
        "type": "op",
        "version": committed.version,
        "author": committed.author.as_str(),
        "op": committed.op,
    })
    .to_string()
}

/// `{"type":"ack","ref","version"}`: sent once the op is committed.
pub fn ack(r#ref: Option<&str>, version: i64) -> String {
    json!({"type": "ack", "ref": r#ref, "version": version}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

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
