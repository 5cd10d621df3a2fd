//! `deskhand tool list` and `deskhand tool run TOOL OPERATION`: list the
//! sandboxed tools, or run one operation of one in the sandbox and show its
//! result (changes it proposes are reported, never applied).

use std::path::PathBuf;
use std::time::Duration;

use deskhand_runtime::tools::{CallRequest, run_call};
use deskhand_runtime::wasm::Limits;
use deskhand_runtime::workspace::Workspace;

use crate::cli::{MAX_MEMORY_MIB, MAX_TIMEOUT_SECS, ToolRunArgs};
use crate::failure::{Failure, user_error};
use crate::render;
use crate::setup::toolbox;
use crate::terminal::{out, progress_observer};

pub fn list(json: bool, cache_dir: Option<PathBuf>) -> Result<(), Failure> {
    let tb = toolbox(cache_dir)?;
    let tools = tb.descriptions()?;
    if json {
        out(&serde_json::to_string_pretty(&tools).unwrap_or_default());
    } else {
        for t in tools {
            out(&format!("{} {}: {}", t.name, t.version, t.summary));
            for op in t.operations {
                let mut effects = Vec::new();
                if !op.effects.reads.is_empty() {
                    effects.push("reads");
                }
                if !op.effects.writes.is_empty() {
                    effects.push("writes");
                }
                if op.effects.network {
                    effects.push("network");
                }
                out(&format!("  {:<10} {} [{}]", op.name, op.summary, effects.join(", ")));
            }
        }
    }
    Ok(())
}

pub fn run(args: ToolRunArgs, cache_dir: Option<PathBuf>) -> Result<(), Failure> {
    let ToolRunArgs {
        tool,
        operation,
        workspace,
        grants,
        args,
        json,
        timeout,
        memory_mib,
    } = args;
    let args: serde_json::Value = serde_json::from_str(&args).map_err(|e| {
        user_error(format!(
            "--args is not valid JSON ({e}); pass an object such as '{{\"path\": \"projects\"}}'"
        ))
    })?;
    let ws = Workspace::open(&workspace)?;
    let tb = toolbox(cache_dir)?;
    let limits = Limits {
        deadline: Duration::from_secs(timeout),
        memory_bytes: memory_mib.saturating_mul(1024 * 1024),
        ..Limits::default()
    };
    let req = CallRequest {
        tool: &tool,
        operation: &operation,
        args,
        grants: &grants,
        limits,
    };
    let result =
        run_call(&ws, &tb, &req, Some(progress_observer())).map_err(|e| with_limit_flag(e, timeout, memory_mib))?;
    if !result.output.changes.is_empty() {
        eprintln!(
            "note: the tool proposed {} change(s) to your folders; `deskhand tool run` does not apply \
             changes. Run a task (`deskhand run`) to have them checked, shown, approved and applied (undoably).",
            result.output.changes.len()
        );
    }
    if json {
        out(&serde_json::to_string_pretty(&result.output.json).unwrap_or_default());
    } else {
        // The tool's one-line summary, then what it found.
        let shown = render::render(&result.output.json);
        let summary = render::summary(&result.output.text);
        for part in [summary.as_str(), shown.as_str()] {
            if !part.is_empty() {
                out(part);
            }
        }
    }
    Ok(())
}

/// A limit set on the command line, named in the error it caused (the
/// runtime's text cannot know which flag set it).
fn with_limit_flag(e: deskhand_runtime::Error, timeout: u64, memory_mib: u64) -> Failure {
    use deskhand_runtime::wasm::CallError;
    let flag = match &e {
        deskhand_runtime::Error::Call(CallError::Deadline { .. }) => {
            format!("--timeout {timeout} set it; allow more with --timeout SECONDS, up to {MAX_TIMEOUT_SECS}")
        }
        deskhand_runtime::Error::Call(CallError::MemoryCap { .. }) => {
            format!("--memory-mib {memory_mib} set it; allow more with --memory-mib MIB, up to {MAX_MEMORY_MIB}")
        }
        _ => return e.into(),
    };
    let mut failure = Failure::from(e);
    failure.message = format!("{} ({flag})", failure.message);
    failure
}
