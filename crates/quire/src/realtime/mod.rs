//! Live sync over WebSockets.
//!
//! [`hub`] keeps one room per open notebook: a broadcast channel of committed
//! ops (serialized once, shared by every socket), presence, and access events.
//! [`session`] is one socket's life: authenticate, check access, send `ready`
//! (or resume), then relay ops both ways with limits on everything that grows.
//! [`protocol`] is the wire format and close codes of DESIGN.md.

pub mod fanout;
pub mod hub;
pub mod protocol;
pub mod session;

pub use hub::Hub;
