//! deskhand's plain data types, shared by the runtime, the CLI and the web
//! UI: folder grants, tool descriptions with their declared effects, the
//! typed errors tools return, tasks, plans and steps, tool calls, changesets
//! as the journal records them, and the events every run emits.
//!
//! Nothing here does I/O; everything is a serde type.

pub mod change;
pub mod event;
pub mod grant;
pub mod model;
pub mod plan;
pub mod tool;

pub use change::{ChangeKind, ChangesetStatus, FileChange};
pub use event::{CallId, CallOutcome, Event, LogLevel, RunId, ToolCall};
pub use grant::{Access, Grant, GrantParseError};
pub use plan::{Mode, Plan, PlanStep, RunStatus, StepEffects, StepNo, StepStatus, Task};
pub use tool::{Effects, Operation, ProposedChange, ToolDescription, ToolError, ToolOutput};
