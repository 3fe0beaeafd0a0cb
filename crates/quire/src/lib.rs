//! quire: a multi-user notebook server with Clerk sign-in and live editing.
//!
//! The library holds everything; `main.rs` only parses the command line and
//! calls [`serve`]-style entry points, so tests can run the whole server on
//! port 0.

pub mod notebook;
pub mod store;
