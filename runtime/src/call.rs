//! One sandboxed tool call inside a run: prepare (look the operation up,
//! build the sandbox from the grants, resolve and check the paths its
//! declared effects name) and execute (journal Begin, run on a worker
//! thread forwarding the guest's log/progress events, journal End).
//!
//! A declared effect names a top-level argument (`path`) or reaches into
//! arrays (`blocks[].path`, `slides[].blocks[].path`: that field of every
//! element), so a path inside a document's blocks is checked against the
//! grants like any other; a declared top-level path the call leaves out takes
//! its schema default. A read of another run's file in `output/` is refused
//! as `NotVisible`. The call's own folder under `.deskhand/scratch/` holds its
//! scratch folder and its [`OutputStage`](crate::stage::OutputStage); what
//! it left there is [`PreparedCall::output_changes`]. After a call that
//! writes, each new `.xlsx` gets the values LibreOffice computes
//! ([`crate::office`]) before the call's End event, outside its deadline.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use crate::grants::GrantPolicy;
use deskhand_types::{CallId, CallOutcome, Event, LogLevel, Operation, ToolCall, ToolOutput};

use crate::error::{Error, Result};
use crate::tools::{BundledTool, Toolbox};
use crate::wasm::{CallError, Limits, LoadedTool, Sandbox, ToolEvent};
use crate::workspace::Workspace;

/// A call whose tool, operation, sandbox and paths have been checked.
#[derive(Debug)]
pub struct PreparedCall<'t> {
    pub tool_name: String,
    pub tool: &'t LoadedTool,
    toolbox: &'t Toolbox,
    output_dir: PathBuf,
    pub operation: Operation,
    /// The arguments with every declared path resolved to what the guest sees.
    pub args: serde_json::Value,
    /// The concrete paths the call reads and writes, from its declared effects.
    pub reads: Vec<PathBuf>,
    pub writes: Vec<PathBuf>,
    pub sandbox: Sandbox,
    /// The call's own folder, removed with the call (or kept empty for the
    /// next one): its scratch folder and its view of `output/`, so staged
    /// content a changeset did not take is never left behind.
    scratch: Option<CallFolder<'t>>,
    /// What the guest sees at `output/`'s path: copies of only what its run
    /// may see there. What it changes comes back through [`Self::output_changes`].
    pub stage: Option<crate::stage::OutputStage>,
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
        let dir = self.scratch_dir().ok_or_else(outside)?;
        // The guest may have planted a symbolic link in its scratch folder
        // (WASI lets it create one whose relative target climbs out); the
        // host would follow it when it copies the content. Nothing on the
        // way to the staged file, nor the file itself, may be a link.
        let mut host = dir.clone();
        for part in rel.components() {
            host.push(part);
            match std::fs::symlink_metadata(&host) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(Error::BadPath {
                        path: guest.into(),
                        reason: "staged content must not lie behind a symbolic link",
                    });
                }
                Ok(_) => {}
                // Missing: the changeset's own check names it.
                Err(_) => break,
            }
        }
        Ok(dir.join(rel))
    }

    /// The host folder the guest sees at `output/`'s path.
    fn output_host_root(&self) -> &Path {
        self.stage
            .as_ref()
            .map_or(self.output_dir.as_path(), |s| s.dir.as_path())
    }

    /// The host folder the guest sees at [`crate::wasm::SCRATCH_GUEST`].
    fn scratch_dir(&self) -> Option<PathBuf> {
        self.scratch.as_ref().map(|d| d.path.join("scratch"))
    }

    /// The content of a change the comparison of the call's `output/` gave
    /// (`delivered`, from [`Self::output_changes`]): exactly one of the
    /// paths it named, nothing else. The guest's own proposals name their
    /// content through [`Self::staged`], never this.
    pub fn delivered_source(delivered: &[deskhand_types::ProposedChange], named: &str) -> Result<PathBuf> {
        let produced = delivered.iter().any(|c| match c {
            deskhand_types::ProposedChange::Create { staged, .. }
            | deskhand_types::ProposedChange::Overwrite { staged, .. } => staged == named,
            _ => false,
        });
        if produced {
            Ok(PathBuf::from(named))
        } else {
            Err(Error::BadPath {
                path: named.into(),
                reason: "the content of a delivered file must be what the call left in its output/",
            })
        }
    }

    /// What the call changed in its view of `output/`: new files, changed
    /// and missing ones, as proposals against the real `output/`.
    pub fn output_changes(&self) -> std::result::Result<Vec<deskhand_types::ProposedChange>, String> {
        match &self.stage {
            Some(stage) => stage.changes(crate::stage::CALL_BYTE_BUDGET),
            None => Ok(Vec::new()),
        }
    }

    /// The host path of a file the guest wrote at `guest` under `output/`.
    fn output_host_path(&self, guest: &Path) -> Option<PathBuf> {
        match &self.stage {
            Some(stage) => stage.host_path(guest),
            None => Some(guest.to_path_buf()),
        }
    }
}

/// Checks a call against `policy` (the run's grants, made canonical once by
/// the caller) and builds its sandbox. `visible_output` lists what the
/// call may see in `output/` (paths relative to it; empty for the whole
/// folder), see [`crate::stage::visible_output`].
#[expect(clippy::too_many_arguments, reason = "each is one independent input of a call")]
pub fn prepare<'t>(
    workspace: &Workspace,
    toolbox: &'t Toolbox,
    tool_name: &str,
    operation: &str,
    args: &serde_json::Value,
    policy: &GrantPolicy,
    limits: Limits,
    visible_output: &[PathBuf],
) -> Result<PreparedCall<'t>> {
    let tool = toolbox.by_name(tool_name)?;
    let op = crate::tools::operation(tool, tool_name, operation)?;
    let sandbox = policy.sandbox(limits)?;
    let mut args = args.clone();
    if !args.is_object() {
        return Err(Error::InvalidArgs(format!(
            "arguments must be a JSON object, got {args}"
        )));
    }
    // A declared top-level path the call leaves out takes its schema default
    // (`output/expenses.xlsx`), so that it is resolved and checked like one given.
    let declared_names = op.effects.reads.iter().chain(&op.effects.writes);
    for name in declared_names.filter(|n| !n.contains('.') && !n.contains("[]")) {
        let default = op.args_schema["properties"][name.as_str()]["default"].as_str();
        if let (Some(fields), Some(default)) = (args.as_object_mut(), default) {
            fields.entry(name.clone()).or_insert_with(|| default.into());
        }
    }
    let (mut reads, mut writes) = (Vec::new(), Vec::new());
    let declared = op
        .effects
        .reads
        .iter()
        .map(|n| (n, false))
        .chain(op.effects.writes.iter().map(|n| (n, true)));
    for (name, write) in declared {
        let segments: Vec<&str> = name.split('.').collect();
        let mut values = Vec::new();
        select_declared(&mut args, &segments, &mut values);
        for value in values {
            let Some(arg) = value.as_str() else {
                return Err(Error::InvalidArgs(format!(
                    "{name} must be a path (a string), got {value}"
                )));
            };
            let resolved = if write {
                workspace.resolve_write(arg, policy)?
            } else {
                let path = workspace.resolve_read(&sandbox, arg)?;
                check_visible(&policy.output, &path, arg, visible_output)?;
                path
            };
            *value = serde_json::Value::String(resolved.display().to_string());
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
    let scratch = toolbox
        .call_folders()
        .take_or_make(&workspace.state_dir().join("scratch"))?;
    sandbox.scratch = Some(scratch.path.join("scratch"));
    // The guest sees its own copy of what it may see in output/, never the folder itself.
    let output = policy.output.clone();
    let stage_dir = scratch.path.join("output");
    let declared: Vec<PathBuf> = writes
        .iter()
        .filter_map(|w| w.strip_prefix(&output).ok().map(Path::to_path_buf))
        .collect();
    let stage = crate::stage::OutputStage::populate(&output, &stage_dir, visible_output, &declared)
        .map_err(Error::io(&output))?;
    for mount in &mut sandbox.mounts {
        if mount.host == output {
            mount.host = stage_dir.clone();
            mount.access = deskhand_types::Access::ReadWrite;
        }
    }
    Ok(PreparedCall {
        tool_name: tool_name.into(),
        tool,
        toolbox,
        output_dir: output,
        operation: op.clone(),
        args,
        reads,
        writes,
        sandbox,
        scratch: Some(scratch),
        stage: Some(stage),
    })
}

/// Empty call folders (`call-XXXX/` holding an empty `scratch/` and
/// `output/`) kept for the next call in the same workspace, so a call that
/// leaves nothing behind costs no mkdir and no rmdir (on a disk mounted with
/// `discard`, every rmdir waits for the device). A folder comes back only
/// from a call whose guest has ended, whose stage was given nothing, and
/// that left both folders empty (checked then); when taken it is checked to
/// be a plain folder still (only this process holds its path meanwhile, in
/// the workspace's own 0700 state folder). What the pool holds is removed
/// when it is dropped with its [`Toolbox`].
#[derive(Debug, Default)]
pub struct CallFolders {
    idle: Mutex<Vec<PathBuf>>,
}

/// Idle call folders kept at most (for all workspaces together).
const MAX_IDLE_CALL_FOLDERS: usize = 4;

impl CallFolders {
    /// An empty call folder under `scratch_root`: an idle one, or a new one
    /// (mode 0700).
    fn take_or_make(&self, scratch_root: &Path) -> Result<CallFolder<'_>> {
        let folder = |path| CallFolder {
            path,
            pool: self,
            reusable: AtomicBool::new(false),
        };
        loop {
            let taken = {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                idle.iter()
                    .rposition(|f| f.parent() == Some(scratch_root))
                    .map(|i| idle.swap_remove(i))
            };
            let Some(path) = taken else { break };
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                return Ok(folder(path));
            }
            let _ = std::fs::remove_dir_all(&path);
        }
        std::fs::create_dir_all(scratch_root).map_err(Error::io(scratch_root))?;
        let made = tempfile::Builder::new()
            .prefix("call-")
            .tempdir_in(scratch_root)
            .map_err(Error::io(scratch_root))?;
        // Removed again if the rest fails.
        let made = folder(made.keep());
        for part in ["scratch", "output"] {
            let dir = made.path.join(part);
            std::fs::create_dir(&dir).map_err(Error::io(&dir))?;
        }
        Ok(made)
    }

    fn give_back(&self, path: PathBuf) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_CALL_FOLDERS {
            idle.push(path);
        } else {
            drop(idle);
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

impl Drop for CallFolders {
    fn drop(&mut self) {
        for path in self.idle.get_mut().unwrap_or_else(|p| p.into_inner()).drain(..) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// One call's folder; removed when dropped unless the call marked it
/// reusable and it is still empty, then kept in its pool.
#[derive(Debug)]
struct CallFolder<'t> {
    path: PathBuf,
    pool: &'t CallFolders,
    reusable: AtomicBool,
}

impl Drop for CallFolder<'_> {
    fn drop(&mut self) {
        let path = std::mem::take(&mut self.path);
        if self.reusable.load(Ordering::Acquire) && is_empty_call_folder(&path) {
            self.pool.give_back(path);
        } else {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// A folder (not a link) holding exactly an empty `scratch/` and an empty
/// `output/`, both folders and not links.
fn is_empty_call_folder(path: &Path) -> bool {
    let plain_folder = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_dir());
    let entries = |p: &Path| -> Option<Vec<std::ffi::OsString>> {
        std::fs::read_dir(p)
            .ok()?
            .map(|e| e.ok().map(|e| e.file_name()))
            .collect()
    };
    plain_folder(path)
        && entries(path).is_some_and(|mut names| {
            names.sort();
            names == ["output", "scratch"]
        })
        && ["scratch", "output"].iter().all(|part| {
            let dir = path.join(part);
            plain_folder(&dir) && entries(&dir).is_some_and(|names| names.is_empty())
        })
}

/// A path under `output/` that exists there but is not among what this
/// call may see (another run's file) is refused by name, with what to do.
fn check_visible(output: &Path, path: &Path, arg: &str, visible: &[PathBuf]) -> Result<()> {
    let Ok(rel) = path.strip_prefix(output) else {
        return Ok(());
    };
    let seen = visible.iter().any(|v| rel.starts_with(v) || v.starts_with(rel));
    if seen || std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    Err(Error::NotVisible { path: arg.into() })
}

/// The argument values a declared effect names: `path` is the top-level
/// field `path`; `blocks[].path` the `path` field of every element of the
/// array `blocks` (an element without one is skipped), and so on down, e.g.
/// `slides[].blocks[].path`.
fn select_declared<'v>(value: &'v mut serde_json::Value, segments: &[&str], out: &mut Vec<&'v mut serde_json::Value>) {
    let Some((first, rest)) = segments.split_first() else {
        out.push(value);
        return;
    };
    let (key, each) = match first.strip_suffix("[]") {
        Some(key) => (key, true),
        None => (*first, false),
    };
    let Some(child) = value.as_object_mut().and_then(|fields| fields.get_mut(key)) else {
        return;
    };
    if !each {
        select_declared(child, rest, out);
    } else if let serde_json::Value::Array(items) = child {
        for item in items {
            select_declared(item, rest, out);
        }
    }
}

/// Runs a prepared call, sending Begin, the guest's logs and progress, and
/// End to `emit`. The error, if any, is also the End event's outcome.
/// `recorded` says, after Begin was sent, whether the journal took it; the
/// guest runs only if it did.
pub fn execute(
    call: &PreparedCall<'_>,
    id: &CallId,
    emit: &(dyn Fn(Event) + Sync),
    recorded: &dyn Fn() -> bool,
) -> Result<ToolOutput> {
    let record = ToolCall {
        id: id.clone(),
        tool: call.tool_name.clone(),
        operation: call.operation.name.clone(),
        args: call.args.clone(),
    };
    // The guest's thread prepares its instance while the start is recorded.
    let pending = call
        .tool
        .start(&call.sandbox, &call.operation.name, &call.args.to_string(), None);
    emit(record.begin());
    // Nothing runs unrecorded: a call whose start the journal could not
    // take does not start (dropped unrun, none of the guest's code runs).
    if !recorded() {
        drop(pending);
        let reason = "not run: its start could not be recorded in the journal".to_owned();
        emit(record.end(CallOutcome::Stopped { reason: reason.clone() }, 0));
        return Err(Error::Unavailable(format!("the {} call was {reason}", record.tool)));
    }
    let started = SystemTime::now();
    let report = pending.run(&mut |event| {
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
        })
    });
    // Only a guest that has ended (with an answer or an error of its own) is
    // sure to touch its folders no more; one left behind at its deadline may.
    if let Some(folder) = &call.scratch {
        let ended = matches!(report.result, Ok(_) | Err(CallError::Tool(_)));
        let given_nothing = call.stage.as_ref().is_none_or(crate::stage::OutputStage::given_nothing);
        folder.reusable.store(ended && given_nothing, Ordering::Release);
    }
    if !report.stderr.is_empty() {
        let text = String::from_utf8_lossy(&report.stderr);
        emit(Event::ToolLog {
            call: id.clone(),
            level: LogLevel::Debug,
            message: format!("stderr: {}", text.trim_end()),
        });
    }
    let elapsed_ms = u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX);
    if let Ok(output) = &report.result {
        finish_workbooks(call, output, started, &|level, message| {
            emit(Event::ToolLog {
                call: id.clone(),
                level,
                message,
            })
        });
    }
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
    emit(record.end(outcome, elapsed_ms));
    result
}

/// Stores the values LibreOffice computes in each workbook the call just
/// wrote under `output/` or proposes for a granted folder (an `xlsx edit`,
/// see [`crate::office`]), so viewers that do not recalculate show the
/// totals. An edited workbook gets only the values its edit changed: the
/// file as it was is recalculated too, and a cell LibreOffice computes the
/// same both times keeps what the person's own app stored. Never fails the
/// call: the workbook is valid without stored values, and what went wrong is
/// logged for the person.
fn finish_workbooks(call: &PreparedCall<'_>, output: &ToolOutput, started: SystemTime, log: &dyn Fn(LogLevel, String)) {
    if call.operation.name == "cache_values" {
        return;
    }
    let workbooks = workbooks_to_finish(call, output, started);
    if workbooks.is_empty() {
        return;
    }
    let names = workbooks
        .iter()
        .map(|w| w.shown.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let Some(office) = call.toolbox.office() else {
        log(
            LogLevel::Info,
            format!(
                "LibreOffice is not installed, so {names} holds formulas without computed values: spreadsheet apps \
                 compute them on opening, but file previews show 0 until then. Install LibreOffice (scripts/setup \
                 does) and deskhand stores the computed values."
            ),
        );
        return;
    };
    let (Some(scratch), Ok(xlsx)) = (call.scratch_dir(), call.toolbox.get(BundledTool::Xlsx)) else {
        return;
    };
    // Another guest runs on the call's folders below.
    if let Some(folder) = &call.scratch {
        folder.reusable.store(false, Ordering::Release);
    }
    if let Some(why) = office.unsandboxed() {
        log(LogLevel::Warn, format!("{why}; it recalculates {names} all the same"));
    }
    for (i, workbook) in workbooks.iter().enumerate() {
        // LibreOffice runs outside the wasm sandbox (in the shell sandbox
        // where there is one): it gets copies read through a capability
        // handle, never a path a guest could have pointed elsewhere with a
        // planted link.
        let dir = scratch.join(format!("recalc-{i}"));
        let recalculate = |bytes: Vec<u8>, sub: &str| -> Result<String> {
            // New folders, never ones the guest left (a link there would
            // lead the host's write elsewhere).
            let out = dir.join(sub);
            let source_dir = out.join("in");
            std::fs::create_dir_all(&source_dir).map_err(Error::io(&source_dir))?;
            let source = source_dir.join(workbook.rel.file_name().unwrap_or_default());
            std::fs::write(&source, bytes).map_err(Error::io(&source))?;
            let copy = office.recalculated_copy(&source, &out)?;
            Ok(format!(
                "{}/recalc-{i}/{sub}/{}",
                crate::wasm::SCRATCH_GUEST,
                copy.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
            ))
        };
        let copies = (|| {
            if dir.exists() {
                return Err(Error::BadPath {
                    path: dir.display().to_string(),
                    reason: "the folder for LibreOffice's copies is already there",
                });
            }
            let computed = recalculate(crate::workspace::read_beneath(&workbook.root, &workbook.rel)?, "after")?;
            let baseline = match &workbook.before {
                Some(before) => Some(recalculate(read_regular_file(before)?, "before")?),
                None => None,
            };
            Ok((computed, baseline))
        })();
        let (computed, baseline) = match copies {
            Ok(copies) => copies,
            Err(e) => {
                log(
                    LogLevel::Warn,
                    format!("{}: computed values not stored: {e}", workbook.shown),
                );
                continue;
            }
        };
        let mut args = serde_json::json!({"path": workbook.guest, "computed": computed});
        if let Some(baseline) = baseline {
            args["baseline"] = baseline.into();
        }
        match xlsx.call(&call.sandbox, "cache_values", &args.to_string(), None).result {
            Ok(done) => {
                let stored = done.json["formulas"].as_u64().unwrap_or(0);
                let what = if workbook.before.is_some() {
                    "the values the change made"
                } else {
                    "the values"
                };
                if stored > 0 {
                    log(
                        LogLevel::Info,
                        format!(
                            "{}: stored {what} of {stored} formula(s), computed by LibreOffice",
                            workbook.shown
                        ),
                    );
                }
            }
            Err(e) => log(
                LogLevel::Warn,
                format!("{}: computed values not stored: {e}", workbook.shown),
            ),
        }
    }
}

/// A workbook whose formulas get their computed values stored.
struct Workbook {
    /// How the person knows it: its path in `output/` or the file it will replace.
    shown: String,
    /// Where the host reads it: a folder and a path beneath it.
    root: PathBuf,
    rel: PathBuf,
    /// The path the guest knows it by.
    guest: String,
    /// The file it replaces, when it is an edit.
    before: Option<PathBuf>,
}

/// The workbooks the call wrote under `output/` and the ones it proposes
/// (created or overwritten) for a granted folder, with their staged content.
fn workbooks_to_finish(call: &PreparedCall<'_>, output: &ToolOutput, started: SystemTime) -> Vec<Workbook> {
    let mut found = Vec::new();
    if !call.operation.effects.writes.is_empty() {
        let mut mentioned = Vec::new();
        strings_in(&output.json, &mut mentioned);
        let mut written: Vec<PathBuf> = mentioned
            .into_iter()
            .map(PathBuf::from)
            .filter(|p| {
                call.output_host_path(p)
                    .is_some_and(|host| new_workbook_in(&host, call.output_host_root(), started))
            })
            .collect();
        written.sort();
        written.dedup();
        found.extend(written.into_iter().filter_map(|guest| {
            let rel = guest.strip_prefix(&call.output_dir).ok()?.to_path_buf();
            Some(Workbook {
                shown: guest.display().to_string(),
                root: call.output_host_root().to_path_buf(),
                rel,
                guest: guest.display().to_string(),
                before: None,
            })
        }));
    }
    let Some(scratch) = call.scratch_dir() else {
        return found;
    };
    for change in &output.changes {
        let (path, staged, before) = match change {
            deskhand_types::ProposedChange::Create { path, staged } => (path, staged, None),
            deskhand_types::ProposedChange::Overwrite { path, staged } => (path, staged, Some(PathBuf::from(path))),
            _ => continue,
        };
        let is_workbook = Path::new(path)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("xlsx") || e.eq_ignore_ascii_case("xlsm"));
        let Some(rel) = staged
            .strip_prefix(crate::wasm::SCRATCH_GUEST)
            .and_then(|rest| rest.strip_prefix('/'))
            .map(PathBuf::from)
            .filter(|rel| rel.components().all(|c| matches!(c, std::path::Component::Normal(_))))
        else {
            continue;
        };
        if is_workbook && !rel.as_os_str().is_empty() {
            found.push(Workbook {
                shown: path.clone(),
                root: scratch.clone(),
                rel,
                guest: staged.clone(),
                before,
            });
        }
    }
    found
}

/// The bytes of a regular file (not a link, not a device).
fn read_regular_file(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::symlink_metadata(path).map_err(Error::io(path))?;
    if !meta.is_file() {
        return Err(Error::BadPath {
            path: path.display().to_string(),
            reason: "it is not a regular file",
        });
    }
    std::fs::read(path).map_err(Error::io(path))
}

/// Every string in a JSON value, depth first.
fn strings_in(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings_in(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| strings_in(v, out)),
        _ => {}
    }
}

/// A regular `.xlsx` file (not a link) under `output_dir`, modified since `since`.
fn new_workbook_in(path: &Path, output_dir: &Path, since: SystemTime) -> bool {
    let is_xlsx = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("xlsx"));
    let inside =
        path.starts_with(output_dir) && path.components().all(|c| !matches!(c, std::path::Component::ParentDir));
    is_xlsx
        && inside
        && std::fs::symlink_metadata(path)
            .ok()
            .filter(std::fs::Metadata::is_file)
            .and_then(|m| m.modified().ok())
            .is_some_and(|m| m >= since)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::select_declared;

    fn selected(mut args: serde_json::Value, name: &str) -> Vec<serde_json::Value> {
        let segments: Vec<&str> = name.split('.').collect();
        let mut out = Vec::new();
        select_declared(&mut args, &segments, &mut out);
        out.into_iter().map(|v| v.clone()).collect()
    }

    #[test]
    fn declared_effects_reach_into_arrays() {
        let args = json!({"path": "output/a.pptx", "slides": [
            {"blocks": [{"type": "image", "path": "in/a.png"}, {"type": "paragraph", "text": "x"}]},
            {"title": "no blocks"},
            {"blocks": [{"type": "image", "path": "in/b.jpg"}]}
        ]});
        assert_eq!(selected(args.clone(), "path"), [json!("output/a.pptx")]);
        assert_eq!(
            selected(args.clone(), "slides[].blocks[].path"),
            [json!("in/a.png"), json!("in/b.jpg")]
        );
        assert!(selected(args.clone(), "missing").is_empty());
        assert!(selected(json!({"blocks": "not a list"}), "blocks[].path").is_empty());
    }
}
