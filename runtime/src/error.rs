//! The runtime's errors. Each one names the thing that went wrong and what
//! the person can do about it; `is_user_error` tells the CLI which exit code
//! to use (2: fix your input; 1: deskhand failed).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::wasm::{CallError, LoadError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{} is not a deskhand workspace (no .deskhand/ state). Create one with `deskhand init {}`", .path.display(), .path.display())]
    NotAWorkspace { path: PathBuf },
    #[error("{}: {}", .path.display(), describe_io(.source))]
    Io { path: PathBuf, source: std::io::Error },
    /// An I/O failure at or under a path the person named (the folder given
    /// to `deskhand init`, say): see [`Error::on_named_path`].
    #[error("cannot use {} as {purpose}: {problem}. {advice}", .path.display())]
    NamedPath {
        path: PathBuf,
        purpose: &'static str,
        problem: String,
        advice: &'static str,
    },
    #[error("the granted folder {} does not exist; check the path or create the folder first", .path.display())]
    GrantMissing { path: PathBuf },
    #[error("{} is not a folder; grant the folder that holds it", .path.display())]
    GrantNotFolder { path: PathBuf },
    #[error("{} cannot be granted: it holds the workspace itself, whose journal, trash and every run's deliverables no tool may see. Grant a folder inside it (projects/, context/) or beside it instead", .path.display())]
    GrantTooWide { path: PathBuf },
    #[error("the path {path:?} is not allowed: {reason}")]
    BadPath { path: String, reason: &'static str },
    #[error("{path} is outside the folders granted to this call; add --grant with the folder that holds it")]
    OutsideGrants { path: String },
    #[error(
        "{path} was written in output/ by another run, and a run sees only the files it wrote there itself; to let this one read it, grant it (--grant output, or the folder that holds it)"
    )]
    NotVisible { path: String },
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
    #[error("the journal at {} failed: {message}{}", .path.display(), journal_advice(.path, .message))]
    Journal { path: PathBuf, message: String },
    #[error(
        "--model {model} names a model, but no model provider is configured, so there is nothing to send it to. \
         Configure one: set ANTHROPIC_API_KEY (Anthropic), or OPENAI_BASE_URL (an OpenAI-compatible server such as \
         Ollama, e.g. http://localhost:11434/v1; OPENAI_API_KEY if it needs a key), or write provider = \"anthropic\" \
         or \"openai\", name and api_key under [model] in {config_files}. `--model offline` uses the offline planner"
    )]
    ModelWithoutProvider { model: String, config_files: String },
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
            | Error::NotVisible { .. }
            | Error::WriteOutsideOutput { .. }
            | Error::UnknownTool { .. }
            | Error::UnknownOperation { .. }
            | Error::InvalidArgs(_)
            | Error::Unavailable(_)
            | Error::UnknownRun { .. }
            | Error::ResumeChild { .. }
            | Error::RunFinished { .. }
            | Error::NeedsAnswer { .. }
            | Error::NamedPath { .. }
            | Error::ModelWithoutProvider { .. } => true,
            Error::Io { source, .. } => the_path_is_the_problem(source.kind()),
            Error::Provider(p) => matches!(
                p,
                crate::model::ProviderError::BadKey { .. }
                    | crate::model::ProviderError::MissingKey { .. }
                    | crate::model::ProviderError::Unreachable { .. }
                    | crate::model::ProviderError::UnknownModel { .. }
            ),
            Error::Change(c) => c.is_user_error(),
            Error::Call(call) => !matches!(call, CallError::Crashed { .. } | CallError::BadOutput(_)),
            Error::Load(_) | Error::Journal { .. } => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    /// Blames an I/O failure at or under `named`, a path the person gave
    /// for `purpose` ("a workspace"), on that path: the message says what is
    /// wrong with it in words, then `advice`, and it is the person's to fix
    /// (even a NotFound, which elsewhere would be deskhand's own failure).
    /// Any other error comes back unchanged.
    pub fn on_named_path(self, named: &Path, purpose: &'static str, advice: &'static str) -> Error {
        match self {
            Error::Io { path, source } if is_at_or_under(&path, named) => Error::NamedPath {
                problem: named_problem(&path, &source),
                path: named.to_owned(),
                purpose,
                advice,
            },
            other => other,
        }
    }
}

/// I/O failures that come from the path itself (what is there, its
/// permissions, its file system) rather than from deskhand.
fn the_path_is_the_problem(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::NotADirectory
            | ErrorKind::IsADirectory
            | ErrorKind::AlreadyExists
            | ErrorKind::PermissionDenied
            | ErrorKind::ReadOnlyFilesystem
            | ErrorKind::DirectoryNotEmpty
            | ErrorKind::InvalidFilename
    )
}

/// " (os error N)", or the error's whole text when it has no OS code.
fn os_detail(source: &std::io::Error) -> String {
    match source.raw_os_error() {
        Some(code) => format!(" (os error {code})"),
        None => format!(" ({source})"),
    }
}

/// An I/O failure in words, with what the person can do where that is clear.
fn describe_io(source: &std::io::Error) -> String {
    let words = match source.kind() {
        ErrorKind::NotFound => "it does not exist",
        ErrorKind::PermissionDenied => {
            "deskhand is not allowed to use it; check its permissions or choose another place"
        }
        ErrorKind::ReadOnlyFilesystem => "it is on a read-only file system; choose a place that can be written to",
        ErrorKind::NotADirectory => "part of the path is a file, not a folder; check the path",
        ErrorKind::IsADirectory => "it is a folder where a file was expected",
        ErrorKind::AlreadyExists => "something is already there; move it aside or choose another name",
        ErrorKind::DirectoryNotEmpty => "the folder is not empty",
        ErrorKind::InvalidFilename => "the file system does not accept this name (too long, or a character it forbids)",
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => "the disk is full; free some space and try again",
        _ => return source.to_string(),
    };
    format!("{words}{}", os_detail(source))
}

fn is_at_or_under(path: &Path, named: &Path) -> bool {
    // The runtime may report the canonical path of what the person named.
    [
        Some(named.to_owned()),
        std::path::absolute(named).ok(),
        named.canonicalize().ok(),
    ]
    .into_iter()
    .flatten()
    .any(|n| path.starts_with(n))
}

/// What is wrong at `path`, found by looking: which part of it is a file,
/// which folder refused.
fn named_problem(path: &Path, source: &std::io::Error) -> String {
    let os = os_detail(source);
    let ancestors: Vec<&Path> = path.ancestors().filter(|a| !a.as_os_str().is_empty()).collect();
    match source.kind() {
        ErrorKind::NotADirectory | ErrorKind::AlreadyExists => {
            let in_the_way = ancestors
                .iter()
                .rev()
                .find_map(|a| std::fs::metadata(a).ok().filter(|m| !m.is_dir()).map(|m| (a, m)));
            match in_the_way {
                Some((a, m)) if m.is_file() => format!("{} is a file, not a folder{os}", a.display()),
                Some((a, _)) => format!("{} is not a folder{os}", a.display()),
                None => format!("something that is not a folder is in the way{os}"),
            }
        }
        ErrorKind::NotFound => match ancestors.iter().find(|a| a.is_dir()) {
            Some(parent) => format!("{} cannot be made inside {}{os}", path.display(), parent.display()),
            None => format!("{} does not exist{os}", path.display()),
        },
        ErrorKind::PermissionDenied => format!("deskhand is not allowed to create or change {}{os}", path.display()),
        ErrorKind::ReadOnlyFilesystem => format!("{} is on a read-only file system{os}", path.display()),
        _ => format!("{}: {}", path.display(), describe_io(source)),
    }
}

/// What to do about a damaged journal (SQLite's "file is not a database",
/// "database disk image is malformed"); nothing for other journal failures.
fn journal_advice(path: &Path, message: &str) -> String {
    let damaged = ["not a database", "malformed"].iter().any(|m| message.contains(m));
    let Some(workspace) = path.parent().and_then(Path::parent).filter(|_| damaged) else {
        return String::new();
    };
    let ws = workspace.display();
    format!(
        ". The journal is damaged. It is deskhand's record of its runs; your own files are not stored in it. \
         `deskhand doctor --workspace {ws}` checks it. To start over with an empty journal, move {} (and \
         journal.db-wal and journal.db-shm beside it, if there) out of .deskhand/, then run `deskhand init {ws}`; \
         earlier runs can then no longer be shown or undone (.deskhand/trash/ keeps its files)",
        path.display()
    )
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
