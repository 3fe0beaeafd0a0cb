//! Socket errors and their public form: the one place where what went wrong
//! becomes what the client is told (a close, or an `error` message), with the
//! detail logged, never sent.

use clerk_auth::{AuthError, PublicCode};

use super::admission::Refusal;
use super::protocol::{CloseReason, ServerMsg, Text};
use crate::notebook::model::Cell;
use crate::service::ServiceError;
use crate::store::StoreError;

/// What went wrong on a socket, in internal terms.
#[derive(Debug)]
pub enum SocketError {
    /// Verification failed (first message or refresh).
    Auth(AuthError),
    /// A refresh could not be verified now (keys or Clerk unreachable); the
    /// socket stays until its token runs out.
    RefreshUnavailable(AuthError),
    /// Admission refused the caller.
    Refused(Refusal),
    /// The store failed while the session read from it.
    Store(StoreError),
    /// The change path refused (or failed) a client op.
    Apply(ServiceError),
    /// A well-formed message that is not a valid command.
    BadMessage(String),
    /// Over the op rate.
    RateLimited,
    /// Too many ops waiting for their commit.
    Backlog,
    /// A viewer sent an op.
    ReadOnly,
}

/// A refusal the client is told about in an `error` message.
#[derive(Debug)]
pub struct ErrorReply {
    pub code: &'static str,
    pub message: String,
    pub current: Option<Box<Cell>>,
}

impl ErrorReply {
    /// The `error` message for the op `ref`.
    pub fn text(&self, r#ref: Option<&str>) -> Text {
        ServerMsg::Error {
            r#ref,
            code: self.code,
            message: &self.message,
            current: self.current.as_deref(),
        }
        .text()
    }
}

/// What the client is told.
#[derive(Debug)]
pub enum Public {
    /// The socket closes.
    Close(CloseReason),
    /// The socket stays; the client gets an `error` message.
    Error(ErrorReply),
}

impl SocketError {
    /// The close for an error that ends the socket (auth, admission, store).
    /// Only op-level errors become `error` replies; should one reach a
    /// caller that must close, it closes as a protocol error.
    pub fn close(self) -> CloseReason {
        match public(self) {
            Public::Close(reason) => reason,
            Public::Error(_) => CloseReason::NotJson,
        }
    }
}

/// THE mapping from socket errors to public words (logging the detail).
pub fn public(e: SocketError) -> Public {
    let error = |code, message: &str| {
        Public::Error(ErrorReply {
            code,
            message: message.to_string(),
            current: None,
        })
    };
    match e {
        SocketError::Auth(e) => {
            crate::auth::record_failure(&e);
            Public::Close(match e.public_code() {
                PublicCode::AuthUnavailable => CloseReason::AuthUnavailable,
                PublicCode::TokenExpired => CloseReason::TokenExpired,
                _ => CloseReason::InvalidToken,
            })
        }
        SocketError::RefreshUnavailable(e) => {
            crate::auth::record_failure(&e);
            error("auth_unavailable", "could not verify the token now; retry")
        }
        SocketError::Refused(refusal) => Public::Close(match refusal {
            Refusal::BadSubject => CloseReason::InvalidToken,
            Refusal::NoAccess => CloseReason::NoAccess,
            Refusal::NotFound => CloseReason::NotFound,
            Refusal::TooManyConnections => CloseReason::TooManyConnections,
            Refusal::Unavailable(e) => {
                tracing::warn!(error = ?e, "socket access check failed");
                CloseReason::StoreUnavailable
            }
        }),
        SocketError::Store(e) => {
            tracing::warn!(error = ?e, "socket store access failed");
            Public::Close(CloseReason::StoreUnavailable)
        }
        SocketError::Apply(e) => Public::Error(apply_error(e)),
        SocketError::BadMessage(message) => error("invalid_op", &message),
        SocketError::RateLimited => error("rate_limited", "slow down"),
        SocketError::Backlog => error("rate_limited", "too many changes waiting to be saved"),
        SocketError::ReadOnly => error("forbidden", "you can only read this notebook"),
    }
}

/// The `error` reply for a refused op: the service's public mapping, the
/// same one REST answers with (the socket only picks its own `code` word).
fn apply_error(e: ServiceError) -> ErrorReply {
    let public = e.into_public();
    ErrorReply {
        code: public.socket_code(),
        message: public.message.into_owned(),
        current: public.current,
    }
}
