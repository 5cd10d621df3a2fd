//! deskhand's core runtime: the workspace and its journal, the bundled
//! tools, and the wasmtime host that runs every tool in a sandbox that sees
//! only the folders a task was granted.
//!
//! Entry points: [`workspace::Workspace`] (init/open, grants -> sandbox),
//! [`agent::Agent`] (a task as a visible plan, run step by step),
//! [`tools::run_call`] (one journaled, sandboxed tool call),
//! [`shell::run_shell`] (one native command in the host VM sandbox),
//! [`wasm::WasmHost`] (the engine; the only crate that touches wasmtime),
//! [`demo::create_demo_workspace`]. The spine they share: [`gate`] (the one
//! approval policy, deciding an unattended run's approvals with its
//! [`envelope`]), [`pipeline`] (the one change pipeline), [`journal`]
//! (the record) and [`view`] (the one fold of a run's events).

pub mod agent;
pub mod browser;
pub mod call;
pub mod changeset;
pub mod confine;
pub mod connectors;
pub mod demo;
pub mod egress;
pub mod envelope;
pub mod error;
pub mod gate;
pub mod grants;
mod ids;
pub mod journal;
pub mod launch;
pub mod ledger;
pub mod memory;
pub mod office;
pub mod one_step;
pub mod pipeline;
pub mod plugins;
pub mod schedule;
pub mod shell;
pub mod skill_creator;
pub mod skills;
pub mod stage;
pub mod telemetry;
pub mod tools;
pub mod view;
pub mod words;
pub mod workspace;

/// The model providers, a crate of their own so their tests build without wasmtime.
pub use deskhand_providers as model;
/// The wasm host, a crate of its own: the only one that touches wasmtime.
pub use deskhand_wasm_host as wasm;

pub use error::{Error, Result};
