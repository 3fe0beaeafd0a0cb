//! Live sync over WebSockets, split the way y-sweet splits it:
//!
//! - [`transport`]: the socket's pipes (bounded outbox, writer, fragmenting);
//!   the only module that knows tungstenite.
//! - [`admission`]: authentication (upgrade header or first message within
//!   the timeout), the access check and the user's connection slot.
//! - [`session`]: one socket's state machine after admission, behind the
//!   narrow [`deps::SessionDeps`] (the change path, verification, the hub).
//! - [`rate`]: the per-socket token bucket.
//! - [`hub`]: one room per open notebook, a broadcast channel of committed
//!   ops (serialized once, shared by every socket) and access events;
//!   [`presence`] is each room's who-is-here, coalesced.
//! - [`protocol`]: the wire format and close codes of DESIGN.md;
//!   [`error`]: socket errors and the one mapping to what clients are told.
//! - [`fanout`]: Redis between processes.

pub mod admission;
pub mod deps;
pub mod error;
pub mod fanout;
pub mod hub;
pub mod presence;
pub mod protocol;
pub mod rate;
pub mod session;
pub mod transport;

pub use hub::Hub;
