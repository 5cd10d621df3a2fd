//! Events: one stream that feeds the journal, the ledger, the CLI and the
//! web UI. Work that takes time comes as a Begin/End pair on one id; a model
//! turn that fails still ends, carrying the error.

use serde::{Deserialize, Serialize};

use crate::change::FileChange;
use crate::model::{Message, Usage};
use crate::plan::{Plan, RunStatus, StepNo, StepStatus, Task};
use crate::tool::{ToolError, ToolOutput};

/// Identifies one run (a task being carried out) in the journal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub String);

/// Identifies one tool call within a run; pairs its Begin and End events.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallId(pub String);

/// One sandboxed tool call as a run makes it: an operation of a tool with
/// its arguments. In the journal it lives as a ToolCallBegin/ToolCallEnd
/// pair keyed by `id`; [`ToolCall::begin`] and [`Event::tool_call`] go
/// between the two forms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: CallId,
    pub tool: String,
    pub operation: String,
    /// The arguments with every declared path resolved as the guest sees it.
    pub args: serde_json::Value,
}

impl ToolCall {
    /// The event that opens this call in the journal.
    pub fn begin(&self) -> Event {
        Event::ToolCallBegin {
            call: self.id.clone(),
            tool: self.tool.clone(),
            operation: self.operation.clone(),
            args: self.args.clone(),
        }
    }

    /// The event that closes it.
    pub fn end(&self, outcome: CallOutcome, elapsed_ms: u64) -> Event {
        Event::ToolCallEnd {
            call: self.id.clone(),
            outcome,
            elapsed_ms,
        }
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// How a tool call ended, as the journal records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CallOutcome {
    Ok {
        output: ToolOutput,
    },
    /// The tool returned a typed error.
    ToolError {
        error: ToolError,
    },
    /// The sandbox stopped the call (deadline, memory cap, output cap, a trap).
    Stopped {
        reason: String,
    },
    /// The runtime refused the call before running it (bad arguments, a
    /// blocked path, a step that did not declare it).
    Refused {
        message: String,
    },
}

/// One thing that happened in a run. Work that takes time comes as a
/// Begin/End pair on one id (run, step number, turn number, call id, child run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    RunBegin {
        run: RunId,
        task: Task,
        model: String,
        parent: Option<RunId>,
    },
    RunEnd {
        run: RunId,
        status: RunStatus,
        summary: String,
    },
    /// A new plan or a revision of it (with its reason).
    PlanUpdated {
        plan: Plan,
    },
    /// The person (or a pre-approved envelope) let a step start, bound to
    /// the hash of the step as it was shown.
    StepApproved {
        step: StepNo,
        by: String,
        effects_hash: String,
    },
    StepBegin {
        step: StepNo,
        title: String,
    },
    StepEnd {
        step: StepNo,
        status: StepStatus,
        note: Option<String>,
    },
    ModelTurnBegin {
        turn: u32,
    },
    ModelTurnEnd {
        turn: u32,
        usage: Usage,
        /// Why the model stopped, in OpenTelemetry's words (`stop`,
        /// `tool_call`, `length`, or the provider's own); none in older journals.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        finish_reason: Option<String>,
        /// Why the turn brought no answer (the provider's error), if it did not.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A message appended to the conversation; replaying these rebuilds it.
    Message {
        message: Message,
    },
    /// Older turns were replaced by a summary to fit the context window:
    /// messages 1..1+replaced became one summary (message 0, the task, stays).
    Compacted {
        replaced: usize,
        summary: String,
    },
    SubAgentBegin {
        step: StepNo,
        child: RunId,
        outcome: String,
    },
    SubAgentEnd {
        child: RunId,
        status: RunStatus,
        summary: String,
    },
    /// The run waits for the person: a question and what it needs.
    NeedsInput {
        question: String,
    },
    /// A model request failed transiently and is retried.
    ModelRetry {
        attempt: u32,
        wait_ms: u64,
        reason: String,
    },
    /// The person switched the run's permission mode (on resume); later
    /// resumes keep the new mode.
    ModeChanged {
        mode: crate::plan::Mode,
        message: String,
    },
    /// Something the person should know that is not an error.
    Notice {
        message: String,
    },
    /// A tool call was refused before it ran: outside the grants or beyond
    /// what its step declared.
    Blocked {
        step: StepNo,
        reason: String,
    },
    /// A connector's tool differs from what the person approved (`change`:
    /// changed, added, not approved yet): hidden from the model and its calls
    /// refused until the person approves it again from a diff.
    ConnectorToolQuarantined {
        step: StepNo,
        connector: String,
        tool: String,
        change: String,
    },
    /// A tool proposed changes to the person's folders; they passed the
    /// guard rails and wait for approval.
    ChangesProposed {
        step: StepNo,
        call: CallId,
        changeset: String,
        changes: Vec<FileChange>,
    },
    /// The changes were approved (by whom) and applied, all of them.
    ChangesApplied {
        changeset: String,
        by: String,
        count: usize,
    },
    /// The changes were not made: refused by the person or a guard rail, or
    /// rolled back after a failure half way. The folders are as they were.
    ChangesRefused {
        changeset: String,
        reason: String,
    },
    /// `deskhand undo` put back what the run's changesets changed.
    Undone {
        changesets: Vec<String>,
        restored: usize,
        forced: bool,
    },
    /// A step or a changeset waits for the person's answer in the browser;
    /// `approval` is the one-time id the answer must carry.
    AwaitingApproval {
        approval: String,
        step: StepNo,
        /// "step" or "changes".
        kind: String,
        title: String,
        /// What the person is asked to approve: the step's effects, or the changes as a table.
        details: String,
        deletions: usize,
    },
    /// The person answered (or the request expired, or the run stopped).
    ApprovalAnswered {
        approval: String,
        approved: bool,
        by: String,
    },
    /// The run was picked up again from the journal.
    Resumed {
        run: RunId,
    },
    ToolCallBegin {
        call: CallId,
        tool: String,
        operation: String,
        args: serde_json::Value,
    },
    ToolCallEnd {
        call: CallId,
        outcome: CallOutcome,
        elapsed_ms: u64,
    },
    ToolLog {
        call: CallId,
        level: LogLevel,
        message: String,
    },
    ToolProgress {
        call: CallId,
        done: u64,
        total: Option<u64>,
        message: String,
    },
}

impl Event {
    /// The call a ToolCallBegin opens; None for any other event.
    pub fn tool_call(&self) -> Option<ToolCall> {
        match self {
            Event::ToolCallBegin {
                call,
                tool,
                operation,
                args,
            } => Some(ToolCall {
                id: call.clone(),
                tool: tool.clone(),
                operation: operation.clone(),
                args: args.clone(),
            }),
            _ => None,
        }
    }

    /// The short name the journal indexes events by.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::RunBegin { .. } => "run_begin",
            Event::RunEnd { .. } => "run_end",
            Event::PlanUpdated { .. } => "plan_updated",
            Event::StepApproved { .. } => "step_approved",
            Event::StepBegin { .. } => "step_begin",
            Event::StepEnd { .. } => "step_end",
            Event::ModelTurnBegin { .. } => "model_turn_begin",
            Event::ModelTurnEnd { .. } => "model_turn_end",
            Event::Message { .. } => "message",
            Event::Compacted { .. } => "compacted",
            Event::SubAgentBegin { .. } => "sub_agent_begin",
            Event::SubAgentEnd { .. } => "sub_agent_end",
            Event::NeedsInput { .. } => "needs_input",
            Event::ModelRetry { .. } => "model_retry",
            Event::ModeChanged { .. } => "mode_changed",
            Event::Notice { .. } => "notice",
            Event::Blocked { .. } => "blocked",
            Event::ConnectorToolQuarantined { .. } => "connector_tool_quarantined",
            Event::Resumed { .. } => "resumed",
            Event::ChangesProposed { .. } => "changes_proposed",
            Event::ChangesApplied { .. } => "changes_applied",
            Event::ChangesRefused { .. } => "changes_refused",
            Event::Undone { .. } => "undone",
            Event::AwaitingApproval { .. } => "awaiting_approval",
            Event::ApprovalAnswered { .. } => "approval_answered",
            Event::ToolCallBegin { .. } => "tool_call_begin",
            Event::ToolCallEnd { .. } => "tool_call_end",
            Event::ToolLog { .. } => "tool_log",
            Event::ToolProgress { .. } => "tool_progress",
        }
    }
}
