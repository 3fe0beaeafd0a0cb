//! The one change path. Every notebook change, whether it comes from REST, a
//! socket, a Clerk webhook or another process through the fan-out, goes
//! through [`Notebooks`], which does the store call and then, in this order
//! and only after the store succeeded, the side effects: read-cache
//! invalidation, hub publish (sockets of this process), fan-out (other
//! processes) and socket closes. Reads that need an access check live here
//! too, so handlers never pair a store call with its effects by hand.

mod actor;
mod error;
mod notebooks;

pub use actor::{Actor, Grant};
pub use error::{PublicError, PublicKind, ServiceError};
pub use notebooks::{AccountEvent, Notebooks};

#[cfg(test)]
mod tests;
