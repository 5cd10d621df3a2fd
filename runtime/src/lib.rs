//! deskhand's core runtime: the workspace and its journal, the bundled
//! tools, and the wasmtime host that runs every tool in a sandbox that sees
//! only the folders a task was granted.
//!
//! Entry points: [`workspace::Workspace`] (init/open, grants -> sandbox),
//! [`tools::run_call`] (one journaled, sandboxed tool call),
//! [`wasm::WasmHost`] (the engine; the only module that touches wasmtime),
//! [`demo::create_demo_workspace`].

pub mod agent;
pub mod call;
pub mod changeset;
pub mod demo;
pub mod error;
pub mod gate;
mod ids;
pub mod journal;
pub mod launch;
pub mod ledger;
pub mod memory;
pub mod model;
pub mod office;
pub mod pipeline;
pub mod shell;
pub mod skills;
pub mod stage;
pub mod tools;
pub mod view;
pub mod wasm;
pub mod workspace;

pub use error::{Error, Result};
