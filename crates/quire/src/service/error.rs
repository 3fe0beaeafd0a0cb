//! The service layer's one error type, [`ServiceError`], and the one mapping
//! from it to what a client may be told, [`PublicError`], shared by REST
//! (status + `{"error":{code,message}}`) and sockets (`{"type":"error",code}`).

use std::borrow::Cow;

use crate::notebook::model::Cell;
use crate::notebook::ops::OpError;
use crate::store::{ApplyError, StoreError};

/// Why a notebook change or an access-checked read did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The notebook does not exist (or was deleted).
    #[error("notebook not found")]
    NotebookNotFound,
    /// The user named in a membership change is not a member.
    #[error("member not found")]
    MemberNotFound,
    /// The caller may not see the notebook at all.
    #[error("no access to the notebook")]
    NoAccess,
    /// The caller may read but not change the notebook.
    #[error("read-only access")]
    ReadOnly,
    /// Only the owner may do this (delete, share).
    #[error("owner only")]
    NotOwner,
    /// `If-Match` named another version than the notebook's.
    #[error("notebook version mismatch (current {current})")]
    VersionMismatch { current: i64 },
    /// The op itself was refused.
    #[error(transparent)]
    Op(OpError),
    /// A request the rules refuse; the message is client-safe.
    #[error("{0}")]
    Invalid(Cow<'static, str>),
    /// Storage failed (unavailable -> retry later, anything else -> a bug).
    #[error(transparent)]
    Store(StoreError),
}

/// How bad a public error is; decides the HTTP status and the socket code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicKind {
    BadRequest,
    Forbidden,
    NotFound,
    Conflict,
    PreconditionFailed,
    Unprocessable,
    Unavailable,
    Internal,
}

/// What a client is told about a [`ServiceError`]: never a cause, never SQL.
#[derive(Debug)]
pub struct PublicError {
    pub kind: PublicKind,
    /// The REST `error.code`.
    pub code: &'static str,
    pub message: Cow<'static, str>,
    /// The cell as it is now, on a stale `base_version` (409 / `conflict`).
    pub current: Option<Box<Cell>>,
}

impl PublicError {
    fn new(kind: PublicKind, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        PublicError {
            kind,
            code,
            message: message.into(),
            current: None,
        }
    }

    /// The `code` of a socket `error` message (DESIGN.md "WebSocket protocol").
    pub fn socket_code(&self) -> &'static str {
        match self.kind {
            PublicKind::Forbidden => "forbidden",
            PublicKind::NotFound => "not_found",
            PublicKind::Conflict | PublicKind::PreconditionFailed => "conflict",
            PublicKind::BadRequest | PublicKind::Unprocessable => "invalid_op",
            PublicKind::Unavailable | PublicKind::Internal => "internal",
        }
    }
}

impl ServiceError {
    /// The public side of the error. Server-side causes (5xx) are logged here,
    /// once, at the level they deserve; the client gets a generic message.
    pub fn into_public(self) -> PublicError {
        use PublicKind as K;
        match self {
            ServiceError::NotebookNotFound => {
                PublicError::new(K::NotFound, "not_found", "notebook not found")
            }
            ServiceError::MemberNotFound => {
                PublicError::new(K::NotFound, "not_found", "member not found")
            }
            ServiceError::NoAccess => PublicError::new(
                K::Forbidden,
                "forbidden",
                "you do not have access to this resource",
            ),
            ServiceError::ReadOnly => {
                PublicError::new(K::Forbidden, "forbidden", "you can only read this notebook")
            }
            ServiceError::NotOwner => PublicError::new(
                K::Forbidden,
                "forbidden",
                "only the owner of the notebook may do this",
            ),
            ServiceError::VersionMismatch { .. } => PublicError::new(
                K::PreconditionFailed,
                "precondition_failed",
                "the notebook has changed since the version in If-Match",
            ),
            ServiceError::Op(op) => op_public(op),
            ServiceError::Invalid(why) => PublicError::new(K::BadRequest, "bad_request", why),
            ServiceError::Store(e) => store_public(e),
        }
    }
}

fn op_public(op: OpError) -> PublicError {
    use PublicKind as K;
    match op {
        OpError::CellNotFound => PublicError::new(K::NotFound, "not_found", "cell not found"),
        OpError::Conflict { current } => PublicError {
            current: Some(current),
            ..PublicError::new(
                K::Conflict,
                "conflict",
                "the cell was changed by someone else",
            )
        },
        OpError::DuplicateCellId => PublicError::new(
            K::Conflict,
            "conflict",
            "a cell with this id already exists",
        ),
        OpError::IndexOutOfRange => {
            PublicError::new(K::BadRequest, "bad_request", "index out of range")
        }
        OpError::TooManyCells => PublicError::new(
            K::Unprocessable,
            "unprocessable",
            "the notebook has too many cells",
        ),
        OpError::TitleTooLong => {
            PublicError::new(K::Unprocessable, "unprocessable", "title too long")
        }
        OpError::SourceTooLarge => {
            PublicError::new(K::Unprocessable, "unprocessable", "cell source too large")
        }
        OpError::Invalid(why) => PublicError::new(K::BadRequest, "bad_request", why),
    }
}

fn store_public(e: StoreError) -> PublicError {
    use PublicKind as K;
    match e {
        StoreError::NotebookNotFound => {
            PublicError::new(K::NotFound, "not_found", "notebook not found")
        }
        StoreError::Invalid(why) => PublicError::new(K::BadRequest, "bad_request", why),
        StoreError::Unavailable(_) => {
            tracing::warn!(error = ?e, "service unavailable");
            PublicError::new(
                K::Unavailable,
                "unavailable",
                "the service is temporarily unavailable, retry later",
            )
        }
        other => {
            tracing::error!(error = ?other, "internal error");
            PublicError::new(K::Internal, "internal", "internal server error")
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotebookNotFound => ServiceError::NotebookNotFound,
            StoreError::Invalid(why) => ServiceError::Invalid(why.into()),
            other => ServiceError::Store(other),
        }
    }
}

impl From<OpError> for ServiceError {
    fn from(e: OpError) -> Self {
        ServiceError::Op(e)
    }
}

impl From<ApplyError> for ServiceError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::NotebookNotFound => ServiceError::NotebookNotFound,
            ApplyError::Forbidden => ServiceError::ReadOnly,
            ApplyError::VersionMismatch { current } => ServiceError::VersionMismatch { current },
            ApplyError::Op(op) => ServiceError::Op(op),
            ApplyError::Store(s) => s.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_and_socket_codes_come_from_one_mapping() {
        let stale = ServiceError::from(ApplyError::Forbidden).into_public();
        assert_eq!(
            (stale.code, stale.socket_code()),
            ("forbidden", "forbidden")
        );
        let range = ServiceError::Op(OpError::IndexOutOfRange).into_public();
        assert_eq!(
            (range.kind, range.socket_code()),
            (PublicKind::BadRequest, "invalid_op")
        );
        let gone = ServiceError::from(StoreError::NotebookNotFound).into_public();
        assert_eq!((gone.code, gone.socket_code()), ("not_found", "not_found"));
    }

    #[test]
    fn store_failures_say_nothing_specific() {
        let e = StoreError::Corrupt("row 7 has a bad uuid".into());
        let public = ServiceError::from(e).into_public();
        assert_eq!(public.kind, PublicKind::Internal);
        assert!(!public.message.contains("uuid"), "{}", public.message);
    }
}
