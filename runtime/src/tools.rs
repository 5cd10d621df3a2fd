//! The tools deskhand ships, and the one path every call takes: look the
//! tool and operation up, build the sandbox from the grants, check and
//! resolve the paths the arguments name against the operation's declared
//! effects, journal the call, run it, journal the outcome.

use std::sync::{Arc, OnceLock};

use deskhand_types::{CallOutcome, Event, Grant, LogLevel, RunId, ToolDescription, ToolOutput};

use crate::error::{Error, Result};
use crate::ids;
use crate::journal::TaskStatus;
use crate::wasm::{CallError, Limits, LoadedTool, ToolEvent, WasmHost};
use crate::workspace::Workspace;

/// A tool bundled into the binary. Tools are types, not strings: adding one
/// means adding a variant, and every match on it is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BundledTool {
    Fs,
    Inventory,
    RenameByDate,
}

impl BundledTool {
    pub const ALL: [BundledTool; 3] = [BundledTool::Fs, BundledTool::Inventory, BundledTool::RenameByDate];

    pub fn name(self) -> &'static str {
        match self {
            BundledTool::Fs => "fs",
            BundledTool::Inventory => "inventory",
            BundledTool::RenameByDate => "rename-by-date",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    fn component(self) -> &'static [u8] {
        match self {
            BundledTool::Fs => include_bytes!(concat!(env!("OUT_DIR"), "/fs.wasm")),
            BundledTool::Inventory => include_bytes!(concat!(env!("OUT_DIR"), "/inventory.wasm")),
            BundledTool::RenameByDate => include_bytes!(concat!(env!("OUT_DIR"), "/rename_by_date.wasm")),
        }
    }
}

/// The bundled tools, each compiled (or loaded from the cache) on first use.
pub struct Toolbox {
    host: WasmHost,
    loaded: [OnceLock<LoadedTool>; BundledTool::ALL.len()],
}

impl std::fmt::Debug for Toolbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Toolbox")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl Toolbox {
    pub fn new(host: WasmHost) -> Self {
        Toolbox {
            host,
            loaded: Default::default(),
        }
    }

    pub fn host(&self) -> &WasmHost {
        &self.host
    }

    pub fn get(&self, tool: BundledTool) -> Result<&LoadedTool> {
        let slot = &self.loaded[BundledTool::ALL.iter().position(|t| *t == tool).unwrap_or(0)];
        if let Some(loaded) = slot.get() {
            return Ok(loaded);
        }
        let loaded = self.host.load(tool.name(), tool.component())?;
        Ok(slot.get_or_init(|| loaded))
    }

    pub fn by_name(&self, name: &str) -> Result<&LoadedTool> {
        let tool = BundledTool::from_name(name).ok_or_else(|| Error::UnknownTool {
            name: name.into(),
            known: BundledTool::ALL.iter().map(|t| t.name().to_owned()).collect(),
        })?;
        self.get(tool)
    }

    pub fn descriptions(&self) -> Result<Vec<ToolDescription>> {
        BundledTool::ALL
            .iter()
            .map(|t| self.get(*t).map(|l| l.description().clone()))
            .collect()
    }
}

/// One tool call as the person or a plan asks for it.
#[derive(Debug, Clone)]
pub struct CallRequest<'a> {
    pub tool: &'a str,
    pub operation: &'a str,
    pub args: serde_json::Value,
    pub grants: &'a [Grant],
    pub limits: Limits,
}

/// Where a call's live events go besides the journal (the CLI's progress line).
pub type Observer = Arc<dyn Fn(&Event) + Send + Sync>;

/// A finished call: its run in the journal and the tool's output.
#[derive(Debug)]
pub struct CallResult {
    pub run: RunId,
    pub output: ToolOutput,
}

/// Runs one call as a journaled task of one step. On failure the task is
/// still journaled, with the error as its outcome.
pub fn run_call(
    workspace: &Workspace,
    toolbox: &Toolbox,
    req: &CallRequest<'_>,
    observer: Option<Observer>,
) -> Result<CallResult> {
    let tool = toolbox.by_name(req.tool)?;
    let op = tool
        .description()
        .operation(req.operation)
        .ok_or_else(|| Error::UnknownOperation {
            tool: req.tool.into(),
            operation: req.operation.into(),
            known: tool
                .description()
                .operation_names()
                .into_iter()
                .map(String::from)
                .collect(),
        })?;
    let sandbox = workspace.sandbox(req.grants, req.limits)?;

    let mut args = req.args.clone();
    let Some(fields) = args.as_object_mut() else {
        return Err(Error::InvalidArgs(format!(
            "arguments must be a JSON object, got {}",
            req.args
        )));
    };
    for (name, write) in op
        .effects
        .reads
        .iter()
        .map(|n| (n, false))
        .chain(op.effects.writes.iter().map(|n| (n, true)))
    {
        let Some(value) = fields.get_mut(name) else { continue };
        let Some(arg) = value.as_str() else {
            return Err(Error::InvalidArgs(format!(
                "{name} must be a path (a string), got {value}"
            )));
        };
        let resolved = if write {
            workspace.resolve_write(arg)?
        } else {
            workspace.resolve_read(&sandbox, arg)?
        };
        *value = serde_json::Value::String(resolved.display().to_string());
    }

    let journal = workspace.journal();
    let run = journal.begin_task(&format!("{} {}", req.tool, req.operation), req.grants)?;
    journal.add_step(
        &run,
        1,
        &format!("{} {}", req.tool, req.operation),
        &serde_json::to_value(&op.effects).unwrap_or_default(),
    )?;
    let call = ids::call_id();
    let emit = |event: Event| {
        // The journal is the source of truth; a failed append must not be
        // silent, but it also must not tear down a call mid-flight.
        let _ = journal.append(&run, &event);
        if let Some(obs) = &observer {
            obs(&event);
        }
    };
    emit(Event::ToolCallBegin {
        call: call.clone(),
        tool: req.tool.into(),
        operation: req.operation.into(),
        args: args.clone(),
    });

    let (tx, rx) = std::sync::mpsc::channel::<ToolEvent>();
    let sink: crate::wasm::EventSink = Arc::new(move |e| {
        let _ = tx.send(e);
    });
    let report = std::thread::scope(|scope| {
        let worker = scope.spawn(|| tool.call(&sandbox, req.operation, &args.to_string(), Some(sink)));
        for event in rx {
            emit(match event {
                ToolEvent::Log { level, message } => Event::ToolLog {
                    call: call.clone(),
                    level,
                    message,
                },
                ToolEvent::Progress { done, total, message } => Event::ToolProgress {
                    call: call.clone(),
                    done,
                    total,
                    message,
                },
            });
        }
        worker.join()
    });
    let report = match report {
        Ok(report) => report,
        Err(_) => {
            let reason = "the tool host thread panicked".to_owned();
            emit(Event::ToolCallEnd {
                call,
                outcome: CallOutcome::Stopped { reason: reason.clone() },
                elapsed_ms: 0,
            });
            journal.finish_step(&run, 1, TaskStatus::Failed)?;
            journal.finish_task(&run, TaskStatus::Failed)?;
            return Err(Error::Call(CallError::Crashed {
                message: reason,
                stderr: String::new(),
            }));
        }
    };
    if !report.stderr.is_empty() {
        let text = String::from_utf8_lossy(&report.stderr);
        emit(Event::ToolLog {
            call: call.clone(),
            level: LogLevel::Debug,
            message: format!("stderr: {}", text.trim_end()),
        });
    }

    let elapsed_ms = u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX);
    let (outcome, status, result) = match report.result {
        Ok(output) => (
            CallOutcome::Ok { output: output.clone() },
            TaskStatus::Succeeded,
            Ok(output),
        ),
        Err(CallError::Tool(error)) => (
            CallOutcome::ToolError { error: error.clone() },
            TaskStatus::Failed,
            Err(Error::Call(CallError::Tool(error))),
        ),
        Err(other) => (
            CallOutcome::Stopped {
                reason: other.to_string(),
            },
            TaskStatus::Failed,
            Err(Error::Call(other)),
        ),
    };
    emit(Event::ToolCallEnd {
        call,
        outcome,
        elapsed_ms,
    });
    journal.finish_step(&run, 1, status)?;
    journal.finish_task(&run, status)?;
    result.map(|output| CallResult { run, output })
}
