//! Native shell steps: one command through a `deskhand-host-vm` backend,
//! seeing only the granted folders, whose changes come back as a changeset.
//! [`run_native`] runs the command; [`run_shell`] wraps it as a one-step
//! journaled run for `deskhand shell` (step approval, the changeset through
//! the change pipeline, the ledger). The agent's `shell` tool (offered when a
//! model is configured and the backend works) calls [`run_native`] with the
//! grants narrowed to the folders the current step declares, and sends its
//! changes down the same pipeline as a tool's proposals.
//!
//! The command never writes the person's folders. `output/` is bound as an
//! [`OutputStage`](crate::stage::OutputStage) (only what the run may see) and
//! every `:rw` grant as a copy in the run's scratch folder (modification times
//! kept), each at the folder's own path, read-write; read-only grants are
//! bound as they are, read-only. (bubblewrap 0.8, the version on Debian 12
//! and this project's machines, has no overlay mounts, so a copy it is.)
//! Afterwards each copy is compared with its folder ([`crate::stage::diff`]):
//! new files become creates, changed ones overwrites, missing ones deletes,
//! and a delete and a create of the same content a rename or a move; a
//! planted link or a kind change refuses the lot. That changeset goes through
//! the same guard rails, approval (a deletion always asks), journal and undo
//! as every tool's.

use std::fs;
use std::path::PathBuf;

use deskhand_host_vm::{Limits, Mount, OutputChunk, ShellBackend, ShellOutcome, ShellPolicy, Termination};
use deskhand_types::{
    CallId, CallOutcome, Event, Grant, Mode, PlanStep, ProposedChange, RunId, RunStatus, StepEffects, StepNo,
    StepStatus, Task, ToolOutput,
};

use crate::agent::{Approval, Gate};
use crate::grants::GrantPolicy;

use crate::changeset;
use crate::error::{Error, Result};
use crate::grants::ShellMount as GrantMount;
use crate::one_step::OneStepRun;
use crate::workspace::Workspace;

/// What the person can do when a shell run stops before its command ran.
const NOTHING_RAN: &str = "Nothing was run; run the command again once the journal is writable.";

/// One shell command to run.
#[derive(Debug, Clone)]
pub struct ShellRequest<'a> {
    pub command: Vec<String>,
    pub grants: &'a [Grant],
    pub mode: Mode,
    pub limits: Limits,
    /// Where the command starts (inside a grant); default: the first grant, else `/tmp`.
    pub workdir: Option<PathBuf>,
}

/// What became of the command's changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellChanges {
    None,
    Applied {
        changeset: String,
        count: usize,
    },
    /// Nothing was changed, and why.
    Refused {
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct ShellReport {
    pub run: RunId,
    /// `None` when the person refused to let the command run.
    pub outcome: Option<ShellOutcome>,
    pub changes: ShellChanges,
    /// The changes as shown to the person (empty when there were none).
    pub shown: String,
}

/// One native command run in a sandbox: how it ended, the tail of its
/// output, and the changes it made to its copies of the folders it may
/// change (staged in `scratch`, removed when this is dropped).
#[derive(Debug)]
pub struct NativeRun {
    pub outcome: ShellOutcome,
    /// The last 4 KiB of stdout and stderr together.
    pub tail: String,
    pub proposed: Vec<ProposedChange>,
    /// Set when the changes cannot be carried over (a symlink planted, a file
    /// turned into a folder); then `proposed` is empty.
    pub refused: Option<String>,
    scratch: tempfile::TempDir,
}

impl NativeRun {
    /// The host path of staged content, refusing anything outside the scratch copies.
    pub fn staged(&self, guest: &str) -> Result<PathBuf> {
        let path = PathBuf::from(guest);
        if path.starts_with(self.scratch.path()) && !path.components().any(|c| c == std::path::Component::ParentDir) {
            Ok(path)
        } else {
            Err(Error::BadPath {
                path: guest.into(),
                reason: "staged content must lie in the shell step's scratch copy",
            })
        }
    }

    pub fn describe(&self) -> String {
        describe(&self.outcome.termination)
    }
}

/// Runs `command` through `backend` with `grants`: read-only grants bound as
/// they are, `output/` and `:rw` grants as scratch copies, then compares the
/// copies with the folders.
#[expect(clippy::too_many_arguments, reason = "each is one independent input of the command")]
pub fn run_native(
    ws: &Workspace,
    backend: &dyn ShellBackend,
    grants: &GrantPolicy,
    command: &[String],
    limits: Limits,
    workdir: Option<PathBuf>,
    visible_output: &[PathBuf],
    egress: Option<&crate::confine::EgressWiring>,
    on_output: &mut dyn FnMut(OutputChunk),
) -> Result<NativeRun> {
    backend
        .check()
        .map_err(|p| Error::Unavailable(format!("the {} sandbox cannot run here: {p}", backend.name())))?;
    let scratch_root = ws.state_dir().join("scratch");
    fs::create_dir_all(&scratch_root).map_err(Error::io(&scratch_root))?;
    let scratch = tempfile::Builder::new()
        .prefix("shell-")
        .tempdir_in(&scratch_root)
        .map_err(Error::io(&scratch_root))?;
    let mut copies = Vec::new();
    // With egress: the relay wraps the command, the proxy's socket and the
    // relay are bound in, and the proxy variables point at the relay.
    let command: Vec<String> = match egress {
        Some(e) => e.prefix.iter().chain(command).cloned().collect(),
        None => command.to_vec(),
    };
    let mut policy = ShellPolicy::new(command).limits(limits);
    if let Some(e) = egress {
        policy.env.extend(e.env.iter().cloned());
        for m in &e.mounts {
            policy = policy.grant(m.clone());
        }
    }
    let mut output_stage = None;
    // The command starts in the first granted folder unless told otherwise.
    let first_grant = grants
        .folders
        .iter()
        .map(|(folder, _)| folder.clone())
        .find(|folder| !folder.starts_with(&grants.output));
    for (i, m) in grants.shell_mounts()?.into_iter().enumerate() {
        match m {
            GrantMount::ReadOnly(folder) => {
                policy = policy.grant(Mount::read_only(&folder, &folder));
            }
            // output/ holds only what this run may see there; each folder
            // granted read-write is copied whole.
            GrantMount::Copied(root) => {
                let copy = scratch.path().join(i.to_string());
                if root == grants.output {
                    let stage = crate::stage::OutputStage::populate(&root, &copy, visible_output, &[])
                        .map_err(Error::io(&root))?;
                    output_stage = Some(stage);
                } else {
                    crate::stage::copy_tree(&root, &copy).map_err(Error::io(&root))?;
                    // What the folder held when the copy was made: the person may
                    // edit it while the command runs, and their edits are not the
                    // command's to undo.
                    let before = crate::stage::listing(&root).map_err(Error::io(&root))?;
                    copies.push((root.clone(), copy.clone(), before));
                }
                policy = policy.grant(Mount::writable(&copy, &root));
            }
        }
    }
    let first_copied_grant = copies.first().map(|(root, _, _)| root.clone());
    policy = policy.workdir(
        workdir
            .or(first_grant)
            .or(first_copied_grant)
            .unwrap_or_else(|| PathBuf::from("/tmp")),
    );
    let plan = backend
        .plan(&policy)
        .map_err(|e| Error::InvalidArgs(format!("the shell policy was refused: {e}")))?;
    let mut tail = String::new();
    let outcome = backend
        .run(&plan, &mut |chunk: OutputChunk| {
            tail.push_str(&String::from_utf8_lossy(&chunk.bytes));
            if tail.len() > 4096 {
                let cut = tail.len() - 4096;
                let cut = (cut..tail.len())
                    .find(|i| tail.is_char_boundary(*i))
                    .unwrap_or(tail.len());
                tail.drain(..cut);
            }
            on_output(chunk);
        })
        .map_err(|e| Error::Unavailable(format!("the command could not run: {e}")))?;
    let mut refused = None;
    let mut proposed = match output_stage.map(|stage| stage.changes(crate::stage::CALL_BYTE_BUDGET)) {
        Some(Err(reason)) => {
            refused = Some(format!(
                "the command's changes cannot be applied: {reason}; nothing was changed"
            ));
            Vec::new()
        }
        Some(Ok(changes)) => changes,
        None => Vec::new(),
    };
    for (root, copy, before) in copies.iter().filter(|_| refused.is_none()) {
        let changes = crate::stage::listing(copy)
            .map_err(|e| format!("reading {} failed: {e}", copy.display()))
            .and_then(|after| crate::stage::diff(root, before, copy, &after, crate::stage::CALL_BYTE_BUDGET));
        match changes {
            Ok(mut changes) => proposed.append(&mut changes),
            Err(reason) => {
                refused = Some(format!(
                    "the command's changes cannot be applied: {reason}; nothing was changed"
                ));
                proposed.clear();
                break;
            }
        }
    }
    Ok(NativeRun {
        outcome,
        tail,
        proposed,
        refused,
        scratch,
    })
}

/// Runs `req` through `backend`; output goes to `on_output` as it arrives.
pub fn run_shell(
    ws: &Workspace,
    backend: &dyn ShellBackend,
    req: &ShellRequest<'_>,
    gate: &dyn Gate,
    on_output: &mut dyn FnMut(OutputChunk),
) -> Result<ShellReport> {
    if req.command.is_empty() {
        return Err(Error::InvalidArgs(
            "no command given; put it after `--`, e.g. `deskhand shell --grant projects/x:rw -- ls -la`".into(),
        ));
    }
    changeset::recover(ws)?;
    let policy = ws.policy(req.grants)?;
    let roots = policy.change_roots();
    let shown_command = shell_words(&req.command);
    let task = Task {
        outcome: format!("shell: {shown_command}"),
        grants: req.grants.to_vec(),
        mode: req.mode,
        params: Default::default(),
    };
    let step = PlanStep {
        title: format!("Run `{shown_command}` in the {} sandbox", backend.name()),
        effects: StepEffects {
            reads: policy
                .sandbox(crate::wasm::Limits::default())?
                .mounts
                .into_iter()
                .map(|m| m.host)
                .collect(),
            writes: roots.clone(),
            network: Vec::new(),
            actions: Vec::new(),
        },
        status: StepStatus::Pending,
    };
    let mut one = OneStepRun::begin(ws, task, &format!("native shell ({})", backend.name()), step, None)?;
    if let Approval::Rejected { reason } = one.approve(gate) {
        let run = one.finish(RunStatus::Failed, format!("not run: {reason}"), true, NOTHING_RAN)?;
        return Ok(ShellReport {
            run,
            outcome: None,
            changes: ShellChanges::Refused { reason },
            shown: String::new(),
        });
    }
    let approved_by = one.approved_by().unwrap_or_default().to_owned();
    let run = one.run().clone();
    let call = CallId("shell-1".into());
    let record = deskhand_types::ToolCall {
        id: call.clone(),
        tool: "shell".into(),
        operation: "run".into(),
        args: serde_json::json!({"command": req.command}),
    };
    one.emit(record.begin());
    if let Some(lost) = one.lost(NOTHING_RAN) {
        // Nothing runs unrecorded.
        one.finish(RunStatus::Failed, lost.to_string(), true, NOTHING_RAN)?;
        return Err(lost);
    }
    let native = match crate::stage::visible_output(ws, None, &policy).and_then(|visible| {
        run_native(
            ws,
            backend,
            &policy,
            &req.command,
            req.limits,
            req.workdir.clone(),
            &visible,
            None,
            on_output,
        )
    }) {
        Ok(n) => n,
        Err(e) => {
            let reason = e.to_string();
            one.emit(record.end(CallOutcome::Stopped { reason: reason.clone() }, 0));
            one.finish(RunStatus::Failed, reason, true, NOTHING_RAN)?;
            return Err(e);
        }
    };
    let outcome = native.outcome.clone();
    let elapsed_ms = u64::try_from(outcome.elapsed.as_millis()).unwrap_or(u64::MAX);
    let ended = native.describe();
    let output = ToolOutput::new(
        serde_json::json!({"ended": ended, "limits_hit": format!("{:?}", outcome.limits_hit)}),
        format!("{ended}\n{}", native.tail),
    );
    one.emit(record.end(CallOutcome::Ok { output }, elapsed_ms));
    if let Some(reason) = native.refused.clone() {
        one.emit(Event::Blocked {
            step: StepNo(1),
            reason: reason.clone(),
        });
        let what_now = "The command ran; nothing it changed was applied.";
        one.finish(RunStatus::Failed, reason.clone(), true, what_now)?;
        return Ok(ShellReport {
            run,
            outcome: Some(outcome),
            changes: ShellChanges::Refused { reason },
            shown: String::new(),
        });
    }
    let staged = |guest: &str| native.staged(guest);
    let emit = |e: Event| one.emit(e);
    // The command may change what its grants let it: the step declared them all.
    let within_step = |_: &crate::changeset::Changeset| Ok(());
    let proposal = crate::pipeline::run(&crate::pipeline::Proposal {
        workspace: ws,
        run: &run,
        step: StepNo(1),
        call: &call,
        mode: req.mode,
        gate,
        step_approval: Some(&approved_by),
        roots: &roots,
        staged: &staged,
        changes: &native.proposed,
        in_read_only_grant: false,
        within_step: &within_step,
        emit: &emit,
    });
    let (changes, shown) = match proposal {
        crate::pipeline::Outcome::Nothing => (ShellChanges::None, String::new()),
        crate::pipeline::Outcome::Applied {
            changeset,
            count,
            shown,
            ..
        } => (ShellChanges::Applied { changeset, count }, shown),
        crate::pipeline::Outcome::Refused { reason, shown, .. } => (
            ShellChanges::Refused {
                reason: format!("{reason}; nothing was changed"),
            },
            shown,
        ),
    };
    let (status, summary) = match (&changes, outcome.success()) {
        (ShellChanges::Refused { reason }, _) => (RunStatus::Failed, format!("{ended}; {reason}")),
        (ShellChanges::Applied { count, .. }, true) => {
            (RunStatus::Succeeded, format!("{ended}; {count} change(s) applied"))
        }
        (ShellChanges::Applied { count, .. }, false) => {
            (RunStatus::Failed, format!("{ended}; {count} change(s) applied"))
        }
        (ShellChanges::None, true) => (RunStatus::Succeeded, format!("{ended}; no changes to your folders")),
        (ShellChanges::None, false) => (RunStatus::Failed, format!("{ended}; no changes to your folders")),
    };
    let what_now = format!("The command ran and what it changed was applied; `deskhand undo {run}` reverses it.");
    one.finish(status, summary, true, &what_now)?;
    Ok(ShellReport {
        run,
        outcome: Some(outcome),
        changes,
        shown,
    })
}

fn describe(t: &Termination) -> String {
    match t {
        Termination::Exited { code } => format!("exited with status {code}"),
        Termination::Signaled { signal } => format!("killed by signal {signal}"),
        Termination::TimedOut { after } => format!("stopped after {} s (the time limit)", after.as_secs()),
    }
}

/// The command as the person reads it: each word quoted for a shell (POSIX
/// or fish) where it needs to be.
fn shell_words(words: &[String]) -> String {
    shlex::Quoter::new()
        .allow_nul(true)
        .join(words.iter().map(String::as_str))
        .unwrap_or_default()
}

/// The native-shell sandbox for this machine, if it works here (bubblewrap
/// on Linux; none elsewhere yet).
pub fn default_backend() -> Option<Box<dyn ShellBackend + Sync>> {
    #[cfg(target_os = "linux")]
    {
        let backend = deskhand_host_vm::bwrap::BwrapBackend::new();
        if backend.check().is_ok() {
            return Some(Box::new(backend));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::shell_words;

    #[test]
    fn the_shown_command_quotes_only_what_needs_it() {
        let words = ["grep", "-c", "it's here", "notes/a b.txt"].map(String::from);
        assert_eq!(shell_words(&words), r#"grep -c "it's here" 'notes/a b.txt'"#);
    }
}
