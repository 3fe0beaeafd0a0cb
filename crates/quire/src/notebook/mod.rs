//! The notebook domain: what a notebook is ([`model`]) and what a change to one
//! is ([`ops`]).
//!
//! Everything here is pure (no I/O): values are parsed at the boundary into the
//! newtypes of [`model`], and the rules that decide what an accepted change does
//! (versions, positions, type changes) live in [`ops`] so every store applies
//! them identically.

pub mod ipynb;
pub mod model;
pub mod ops;
pub mod text;
pub mod view;

pub use model::{
    Cell, CellId, CellType, Limits, Notebook, NotebookId, NotebookMeta, ParseError, Role, UserId,
};
pub use ops::{validate, AppliedOp, Committed, NewCell, Op, OpError};
