//! The JSON shapes the API returns (DESIGN.md "REST API"). The notebook view
//! itself lives in [`crate::notebook::view`] (the socket `ready` shares it);
//! it is re-exported here so REST code keeps naming it `api::views`.

pub use crate::notebook::view::{timestamp, NotebookView};
