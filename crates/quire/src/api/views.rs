//! The JSON shapes the API returns. They live in [`crate::notebook::view`]
//! (the socket `ready` shares them); re-exported here so REST code names them
//! `api::views`.

pub use crate::notebook::view::*;
