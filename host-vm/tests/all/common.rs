//! Shared helpers: the backend (or a skip), running a policy and collecting its output.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use deskhand_host_vm::bwrap::BwrapBackend;
use deskhand_host_vm::{BackendProblem, ShellBackend, ShellError, ShellOutcome, ShellPolicy, Stream};

/// The backend, or `None` (with a message) when bubblewrap is missing. Any other problem
/// fails the test: a machine with bwrap must be able to run sandboxes.
pub fn backend() -> Option<&'static BwrapBackend> {
    static BACKEND: OnceLock<BwrapBackend> = OnceLock::new();
    let backend = BACKEND.get_or_init(BwrapBackend::new);
    match backend.check() {
        Ok(()) => Some(backend),
        Err(problem @ BackendProblem::BubblewrapMissing { .. }) => {
            eprintln!("SKIPPED: {problem}");
            None
        }
        Err(problem) => panic!("bubblewrap is installed but cannot run sandboxes: {problem}"),
    }
}

/// Returns from the test (skipping it) when bubblewrap is missing.
macro_rules! backend_or_skip {
    () => {
        match crate::common::backend() {
            Some(backend) => backend,
            None => return Ok(()),
        }
    };
}
pub(crate) use backend_or_skip;

#[derive(Debug)]
pub struct Run {
    pub outcome: ShellOutcome,
    pub stdout: String,
    pub stderr: String,
    pub chunks: Vec<(Stream, Vec<u8>)>,
}

pub fn try_run(backend: &BwrapBackend, policy: &ShellPolicy) -> Result<Run, ShellError> {
    let plan = match backend.plan(policy) {
        Ok(plan) => plan,
        Err(e) => panic!("policy refused: {e}"),
    };
    let mut chunks = Vec::new();
    let outcome = backend.run(&plan, &mut |chunk| chunks.push((chunk.stream, chunk.bytes)))?;
    let collect = |stream| {
        let bytes: Vec<u8> = chunks
            .iter()
            .filter(|(s, _)| *s == stream)
            .flat_map(|(_, b)| b.clone())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Ok(Run {
        stdout: collect(Stream::Stdout),
        stderr: collect(Stream::Stderr),
        outcome,
        chunks,
    })
}

pub fn run(backend: &BwrapBackend, policy: &ShellPolicy) -> anyhow::Result<Run> {
    Ok(try_run(backend, policy)?)
}

/// A policy running `script` with `/bin/sh -c`.
pub fn sh(script: &str) -> ShellPolicy {
    ShellPolicy::new(["/bin/sh", "-c", script])
}

/// A temporary folder with a canonical path (grants must be canonical).
pub struct Fixture {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
}

impl Fixture {
    pub fn new() -> anyhow::Result<Fixture> {
        let tmp = tempfile::tempdir()?;
        let root = tmp.path().canonicalize()?;
        Ok(Fixture { _tmp: tmp, root })
    }

    pub fn dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    pub fn file(&self, name: &str, content: &str) -> anyhow::Result<PathBuf> {
        let path = self.root.join(name);
        std::fs::write(&path, content)?;
        Ok(path)
    }
}

/// Host processes whose command line contains `token`.
pub fn processes_with(token: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let own = std::process::id().to_string();
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) && e.file_name() != *own)
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline
                .contains(token)
                .then(|| format!("{}: {cmdline}", e.file_name().to_string_lossy()))
        })
        .collect()
}

pub fn listing(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    Ok(names)
}
