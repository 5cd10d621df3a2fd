//! Events: one stream that feeds the journal, the CLI and later the UI and
//! telemetry. Work that takes time comes as a Begin/End pair on one id.

use serde::{Deserialize, Serialize};

use crate::tool::{ToolError, ToolOutput};

/// Identifies one run (a task being carried out) in the journal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub String);

/// Identifies one tool call within a run; pairs its Begin and End events.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallId(pub String);

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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
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
    /// The short name the journal indexes events by.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::ToolCallBegin { .. } => "tool_call_begin",
            Event::ToolCallEnd { .. } => "tool_call_end",
            Event::ToolLog { .. } => "tool_log",
            Event::ToolProgress { .. } => "tool_progress",
        }
    }
}
