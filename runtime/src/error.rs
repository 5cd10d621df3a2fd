//! The runtime's errors. Each one names the thing that went wrong and what
//! the person can do about it; `is_user_error` tells the CLI which exit code
//! to use (2: fix your input; 1: deskhand failed).

use std::path::PathBuf;

use crate::wasm::{CallError, LoadError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{} is not a deskhand workspace (no .deskhand/ state). Create one with `deskhand init {}`", .path.display(), .path.display())]
    NotAWorkspace { path: PathBuf },
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the granted folder {} does not exist; check the path or create the folder first", .path.display())]
    GrantMissing { path: PathBuf },
    #[error("{} is not a folder; grant the folder that holds it", .path.display())]
    GrantNotFolder { path: PathBuf },
    #[error("{} cannot be granted read-write: it holds the workspace's own state, instruction and memory files. Grant a folder inside it (projects/, context/) instead", .path.display())]
    GrantTooWide { path: PathBuf },
    #[error("the path {path:?} is not allowed: {reason}")]
    BadPath { path: String, reason: &'static str },
    #[error("{path} is outside the folders granted to this call; add --grant with the folder that holds it")]
    OutsideGrants { path: String },
    #[error("{path} is outside the workspace's output folder ({}) and every folder granted read-write; tools write new files in output/, and change your folders only where you grant them with :rw", .output.display())]
    WriteOutsideOutput { path: String, output: PathBuf },
    #[error("no tool named {name:?}; installed tools: {}", .known.join(", "))]
    UnknownTool { name: String, known: Vec<String> },
    #[error("the {tool} tool has no operation {operation:?}; it has: {}", .known.join(", "))]
    UnknownOperation {
        tool: String,
        operation: String,
        known: Vec<String>,
    },
    #[error("invalid arguments: {0}")]
    InvalidArgs(String),
    /// Something this machine lacks (a sandbox backend, say), with the fix in the text.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(transparent)]
    Change(Box<crate::changeset::ChangeError>),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Provider(#[from] crate::model::ProviderError),
    #[error("there is no run {run:?} in this workspace; `deskhand runs` lists them")]
    UnknownRun { run: String },
    #[error("run {run} is a sub-agent; resume its parent run {parent} instead")]
    ResumeChild { run: String, parent: String },
    #[error("run {run} already ended ({status}): {summary}")]
    RunFinished {
        run: String,
        status: String,
        summary: String,
    },
    #[error(
        "run {run} is waiting for your answer to: {question}\nAnswer with `deskhand resume {run} --answer \"...\"`"
    )]
    NeedsAnswer { run: String, question: String },
    #[error("the journal at {} failed: {message}", .path.display())]
    Journal { path: PathBuf, message: String },
}

impl Error {
    /// True when the person can fix it by changing what they asked for.
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::NotAWorkspace { .. }
            | Error::GrantMissing { .. }
            | Error::GrantNotFolder { .. }
            | Error::GrantTooWide { .. }
            | Error::BadPath { .. }
            | Error::OutsideGrants { .. }
            | Error::WriteOutsideOutput { .. }
            | Error::UnknownTool { .. }
            | Error::UnknownOperation { .. }
            | Error::InvalidArgs(_)
            | Error::Unavailable(_)
            | Error::UnknownRun { .. }
            | Error::ResumeChild { .. }
            | Error::RunFinished { .. }
            | Error::NeedsAnswer { .. } => true,
            Error::Provider(p) => matches!(
                p,
                crate::model::ProviderError::BadKey { .. }
                    | crate::model::ProviderError::MissingKey { .. }
                    | crate::model::ProviderError::Unreachable { .. }
                    | crate::model::ProviderError::UnknownModel { .. }
            ),
            Error::Change(c) => c.is_user_error(),
            Error::Call(call) => !matches!(call, CallError::Crashed { .. } | CallError::BadOutput(_)),
            Error::Io { .. } | Error::Load(_) | Error::Journal { .. } => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

impl From<crate::changeset::ChangeError> for Error {
    fn from(e: crate::changeset::ChangeError) -> Self {
        match e {
            crate::changeset::ChangeError::Journal(inner) => *inner,
            other => Error::Change(Box::new(other)),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
