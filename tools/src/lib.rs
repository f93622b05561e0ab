//! The bound tools as the sandbox, the API and the binding proxy talk about them: MCP names mapped to
//! JavaScript identifiers, the catalog, the [`ToolIndex`] with TypeScript declarations, search and
//! describe, and the closed set of ways a tool call can fail. Pure data: no I/O, no wire types, no
//! credentials; every component that needs these facts takes them from here.

pub mod catalog;
pub mod discovery;
pub mod failure;
mod ident;
pub mod index;
pub mod typescript;

pub use self::{
    catalog::{BoundServer, BoundTool, Catalog},
    failure::FailureKind,
    ident::js_identifier,
    index::{ServerState, ServerTools, ToolEntry, ToolIndex, ToolSpec, declarations, summary},
};
