//! One sandboxed tool call inside a run: prepare (look the operation up,
//! build the sandbox from the grants, resolve and check the paths its
//! declared effects name) and execute (journal Begin, run on a worker
//! thread forwarding the guest's log/progress events, journal End).

use std::path::PathBuf;
use std::sync::Arc;

use deskhand_types::{CallId, CallOutcome, Event, Grant, LogLevel, Operation, ToolOutput};

use crate::error::{Error, Result};
use crate::tools::Toolbox;
use crate::wasm::{CallError, EventSink, Limits, LoadedTool, Sandbox, ToolEvent};
use crate::workspace::Workspace;

/// A call whose tool, operation, sandbox and paths have been checked.
#[derive(Debug)]
pub struct PreparedCall<'t> {
    pub tool_name: String,
    pub tool: &'t LoadedTool,
    pub operation: Operation,
    /// The arguments with every declared path resolved to what the guest sees.
    pub args: serde_json::Value,
    /// The concrete paths the call reads and writes, from its declared effects.
    pub reads: Vec<PathBuf>,
    pub writes: Vec<PathBuf>,
    pub sandbox: Sandbox,
    /// The call's scratch folder, removed with the call: staged content a
    /// changeset did not take is never left behind.
    scratch: Option<tempfile::TempDir>,
}

impl PreparedCall<'_> {
    /// The host path of a file the guest staged at `guest` (a path under
    /// its scratch folder), refusing anything outside it.
    pub fn staged(&self, guest: &str) -> Result<PathBuf> {
        let outside = || Error::BadPath {
            path: guest.into(),
            reason: "staged content must lie in the call's scratch folder",
        };
        let rel = guest
            .strip_prefix(crate::wasm::SCRATCH_GUEST)
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(outside)?;
        let rel = std::path::Path::new(rel);
        if rel.as_os_str().is_empty() || rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            return Err(outside());
        }
        let dir = self.scratch.as_ref().ok_or_else(outside)?;
        Ok(dir.path().join(rel))
    }
}

pub fn prepare<'t>(
    workspace: &Workspace,
    toolbox: &'t Toolbox,
    tool_name: &str,
    operation: &str,
    args: &serde_json::Value,
    grants: &[Grant],
    limits: Limits,
) -> Result<PreparedCall<'t>> {
    let tool = toolbox.by_name(tool_name)?;
    let op = tool
        .description()
        .operation(operation)
        .ok_or_else(|| Error::UnknownOperation {
            tool: tool_name.into(),
            operation: operation.into(),
            known: tool
                .description()
                .operation_names()
                .into_iter()
                .map(String::from)
                .collect(),
        })?;
    let sandbox = workspace.sandbox(grants, limits)?;
    let mut args = args.clone();
    let Some(fields) = args.as_object_mut() else {
        return Err(Error::InvalidArgs(format!(
            "arguments must be a JSON object, got {args}"
        )));
    };
    let (mut reads, mut writes) = (Vec::new(), Vec::new());
    let declared = op
        .effects
        .reads
        .iter()
        .map(|n| (n, false))
        .chain(op.effects.writes.iter().map(|n| (n, true)));
    for (name, write) in declared {
        let Some(value) = fields.get_mut(name) else { continue };
        // A declared field holds one path, or (for reads) a list of them.
        let slots: Vec<&mut serde_json::Value> = match value {
            serde_json::Value::Array(items) if !write => items.iter_mut().collect(),
            other => vec![other],
        };
        for slot in slots {
            let Some(arg) = slot.as_str() else {
                return Err(Error::InvalidArgs(format!(
                    "{name} must be a path (a string){}, got {slot}",
                    if write { "" } else { " or a list of paths" }
                )));
            };
            let resolved = if write {
                workspace.resolve_write(arg, grants)?
            } else {
                workspace.resolve_read(&sandbox, arg)?
            };
            *slot = serde_json::Value::String(resolved.display().to_string());
            if write {
                writes.push(resolved)
            } else {
                reads.push(resolved)
            }
        }
    }
    // Folders a bundled tool needs besides the grants (the pdf tool's
    // fonts), added after the arguments were checked against the grants so
    // that no argument can name them.
    let mut sandbox = sandbox;
    if let Some(bundled) = crate::tools::BundledTool::from_name(tool_name) {
        sandbox.mounts.extend(toolbox.extra_mounts(bundled));
    }
    let scratch_root = workspace.state_dir().join("scratch");
    std::fs::create_dir_all(&scratch_root).map_err(Error::io(&scratch_root))?;
    let scratch = tempfile::Builder::new()
        .prefix("call-")
        .tempdir_in(&scratch_root)
        .map_err(Error::io(&scratch_root))?;
    sandbox.scratch = Some(scratch.path().to_path_buf());
    Ok(PreparedCall {
        tool_name: tool_name.into(),
        tool,
        operation: op.clone(),
        args,
        reads,
        writes,
        sandbox,
        scratch: Some(scratch),
    })
}

/// Runs a prepared call, sending Begin, the guest's logs and progress, and
/// End to `emit`. The error, if any, is also the End event's outcome.
pub fn execute(call: &PreparedCall<'_>, id: &CallId, emit: &(dyn Fn(Event) + Sync)) -> Result<ToolOutput> {
    emit(Event::ToolCallBegin {
        call: id.clone(),
        tool: call.tool_name.clone(),
        operation: call.operation.name.clone(),
        args: call.args.clone(),
    });
    let (tx, rx) = std::sync::mpsc::channel::<ToolEvent>();
    let sink: EventSink = Arc::new(move |e| {
        let _ = tx.send(e);
    });
    let args = call.args.to_string();
    let report = std::thread::scope(|scope| {
        let worker = scope.spawn(|| call.tool.call(&call.sandbox, &call.operation.name, &args, Some(sink)));
        for event in rx {
            emit(match event {
                ToolEvent::Log { level, message } => Event::ToolLog {
                    call: id.clone(),
                    level,
                    message,
                },
                ToolEvent::Progress { done, total, message } => Event::ToolProgress {
                    call: id.clone(),
                    done,
                    total,
                    message,
                },
            });
        }
        worker.join()
    });
    let Ok(report) = report else {
        let reason = "the tool host thread panicked".to_owned();
        emit(Event::ToolCallEnd {
            call: id.clone(),
            outcome: CallOutcome::Stopped { reason: reason.clone() },
            elapsed_ms: 0,
        });
        return Err(Error::Call(CallError::Crashed {
            message: reason,
            stderr: String::new(),
        }));
    };
    if !report.stderr.is_empty() {
        let text = String::from_utf8_lossy(&report.stderr);
        emit(Event::ToolLog {
            call: id.clone(),
            level: LogLevel::Debug,
            message: format!("stderr: {}", text.trim_end()),
        });
    }
    let elapsed_ms = u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX);
    let (outcome, result) = match report.result {
        Ok(output) => (CallOutcome::Ok { output: output.clone() }, Ok(output)),
        Err(CallError::Tool(error)) => (
            CallOutcome::ToolError { error: error.clone() },
            Err(Error::Call(CallError::Tool(error))),
        ),
        Err(other) => (
            CallOutcome::Stopped {
                reason: other.to_string(),
            },
            Err(Error::Call(other)),
        ),
    };
    emit(Event::ToolCallEnd {
        call: id.clone(),
        outcome,
        elapsed_ms,
    });
    result
}
