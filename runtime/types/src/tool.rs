//! What a tool says about itself and what one call returns, mirroring
//! `wit/tool/tool.wit` as plain serde types for the journal, CLI and UI.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which argument fields hold paths an operation reads or writes, and
/// whether it uses the network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effects {
    pub reads: Vec<String>,
    pub writes: Vec<String>,
    pub network: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub name: String,
    pub summary: String,
    pub args_schema: serde_json::Value,
    pub effects: Effects,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDescription {
    pub name: String,
    pub version: String,
    pub summary: String,
    pub operations: Vec<Operation>,
}

impl ToolDescription {
    pub fn operation(&self, name: &str) -> Option<&Operation> {
        self.operations.iter().find(|op| op.name == name)
    }

    pub fn operation_names(&self) -> Vec<&str> {
        self.operations.iter().map(|op| op.name.as_str()).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolOutput {
    pub json: serde_json::Value,
    pub text: String,
    /// Changes the tool proposes to the person's folders (never made by the tool).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ProposedChange>,
}

impl ToolOutput {
    pub fn new(json: serde_json::Value, text: impl Into<String>) -> Self {
        ToolOutput {
            json,
            text: text.into(),
            changes: Vec::new(),
        }
    }
}

/// A change a tool proposes, with paths as the guest saw them (canonical
/// host paths; `staged` lies in the call's scratch folder).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProposedChange {
    Create { path: String, staged: String },
    Overwrite { path: String, staged: String },
    Rename { source: String, target: String },
    Move { source: String, target: String },
    Delete { path: String },
}

impl ProposedChange {
    /// The paths in the person's folders the change touches (not its staged content).
    pub fn paths(&self) -> Vec<&str> {
        match self {
            ProposedChange::Create { path, .. }
            | ProposedChange::Overwrite { path, .. }
            | ProposedChange::Delete { path } => vec![path],
            ProposedChange::Rename { source, target } | ProposedChange::Move { source, target } => {
                vec![source, target]
            }
        }
    }
}

/// A tool's typed failure. Each variant tells whose move it is: the
/// model's (bad arguments), the person's (a grant), or the file's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolError {
    UnknownOperation { name: String },
    InvalidArgs { message: String },
    NotFound { path: String, message: String },
    Denied { path: String, message: String },
    AlreadyExists { path: String, message: String },
    TooLarge { path: String, message: String },
    BadContent { path: String, message: String },
    Io { path: String, message: String },
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolError::UnknownOperation { name } => write!(f, "the tool has no operation {name:?}"),
            ToolError::InvalidArgs { message } => write!(f, "invalid arguments: {message}"),
            ToolError::NotFound { path, message } => {
                write!(f, "{path}: not found inside the granted folders ({message})")
            }
            ToolError::Denied { path, message } => write!(f, "{path}: denied: {message}"),
            ToolError::AlreadyExists { path, message } => write!(f, "{path}: {message}"),
            ToolError::TooLarge { path, message } => write!(f, "{path}: too large: {message}"),
            ToolError::BadContent { path, message } => write!(f, "{path}: {message}"),
            ToolError::Io { path, message } => write!(f, "{path}: {message}"),
        }
    }
}
