//! The one change pipeline: a call's proposed changes to the person's
//! folders go propose -> checks -> gate -> apply -> events here, whichever
//! executor proposed them (a sandboxed tool in a run, the agent's `shell`
//! tool, `deskhand shell`), with the same events in the same order:
//!
//! - a proposal the guard rails or a check refuse: `Blocked` (or a `Notice`,
//!   for a proposal to review in a folder granted read-only);
//! - else `ChangesProposed`, then the gate (`AwaitingApproval` and
//!   `ApprovalAnswered` when the person is asked), then `ChangesApplied`,
//!   or `Blocked` + `ChangesRefused` when it is not approved, or
//!   `ChangesRefused` when applying fails (nothing changed).

use std::path::PathBuf;

use deskhand_types::{CallId, Event, Mode, ProposedChange, RunId, StepNo};

use crate::agent::{Approval, ChangesApproval, Gate};
use crate::changeset::{self, ApplyOptions, ChangeError, Changeset};
use crate::error::Result;
use crate::workspace::Workspace;

/// Where the content of a proposed change lies, by the name the change gives it.
pub type ContentSource<'a> = dyn Fn(&str) -> Result<PathBuf> + 'a;

/// One call's proposed changes and everything that decides them.
pub struct Proposal<'a> {
    pub workspace: &'a Workspace,
    pub run: &'a RunId,
    /// The step (1-based) the call ran in.
    pub step: StepNo,
    pub call: &'a CallId,
    pub mode: Mode,
    pub gate: &'a dyn Gate,
    /// Who approved the running step, if anyone did.
    pub step_approval: Option<&'a str>,
    /// The folders changes may touch (read-write grants, `output/`).
    pub roots: &'a [PathBuf],
    pub staged: &'a ContentSource<'a>,
    pub changes: &'a [ProposedChange],
    /// Whether every change lies in a folder granted read-only: such a
    /// proposal is for the person to review, not an attempt to get past the
    /// grants (a `Notice`, not `Blocked`).
    pub in_read_only_grant: bool,
    /// The step's declared writes: Err names what the changeset does beyond them.
    pub within_step: &'a dyn Fn(&Changeset) -> std::result::Result<(), String>,
    /// Appends a run event (the caller's one writer).
    pub emit: &'a dyn Fn(Event),
}

/// How a proposal ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing was proposed.
    Nothing,
    Applied {
        changeset: String,
        count: usize,
        by: String,
        /// The changes as shown to the person.
        shown: String,
    },
    /// Nothing changed. `blocked`: an attempt the run refused (an error to
    /// the model), not a proposal left for review; `shown`: the changes as
    /// shown to the person, when they got that far.
    Refused {
        reason: String,
        blocked: bool,
        shown: String,
    },
}

/// Takes `p` through the run's byte budget, the guard rails, the step's
/// declared writes, the gate and the changeset engine.
pub fn run(p: &Proposal<'_>) -> Outcome {
    if p.changes.is_empty() {
        return Outcome::Nothing;
    }
    let blocked = |reason: String, shown: String| {
        (p.emit)(Event::Blocked {
            step: p.step,
            reason: reason.clone(),
        });
        Outcome::Refused {
            reason,
            blocked: true,
            shown,
        }
    };
    // The host hashes and copies staged content: a guest's sparse file of
    // many GiB costs it nothing to make, so the sizes are checked first,
    // against one call's budget (all of a command's folders together) and
    // the run's.
    let bytes = staged_bytes(p.changes, p.staged);
    if bytes > crate::stage::CALL_BYTE_BUDGET {
        return blocked(
            format!(
                "the proposed files come to {} MiB, more than the {} MiB one call may write",
                bytes >> 20,
                crate::stage::CALL_BYTE_BUDGET >> 20
            ),
            String::new(),
        );
    }
    let written = match crate::stage::bytes_written(p.workspace, p.run) {
        Ok(n) => n,
        Err(e) => return blocked(e.to_string(), String::new()),
    };
    if written.saturating_add(bytes) > crate::stage::RUN_BYTE_BUDGET {
        return blocked(
            format!(
                "this run has written {} MiB already; with these {} MiB it would pass the {} MiB one run may write",
                written >> 20,
                bytes >> 20,
                crate::stage::RUN_BYTE_BUDGET >> 20
            ),
            String::new(),
        );
    }
    let cs = match changeset::propose(p.changes, p.roots, p.staged) {
        Ok(cs) => cs,
        Err(e @ ChangeError::Outside { .. }) if p.in_read_only_grant => {
            let note = format!(
                "the tool's {} proposed change(s) were not applied: {e}",
                p.changes.len()
            );
            (p.emit)(Event::Notice { message: note.clone() });
            return Outcome::Refused {
                reason: note,
                blocked: false,
                shown: String::new(),
            };
        }
        Err(e) => return blocked(format!("the proposed changes were refused: {e}"), String::new()),
    };
    if let Err(what) = (p.within_step)(&cs) {
        return blocked(
            format!(
                "step {} did not declare that it {what}; revise the plan with update_plan to declare it",
                p.step
            ),
            String::new(),
        );
    }
    let changes = cs.file_changes();
    (p.emit)(Event::ChangesProposed {
        step: p.step,
        call: p.call.clone(),
        changeset: cs.id.clone(),
        changes: changes.clone(),
    });
    let shown = cs.render();
    let output = p
        .workspace
        .output_dir()
        .canonicalize()
        .unwrap_or_else(|_| p.workspace.output_dir());
    let approval = crate::gate::approve_changes(
        p.gate,
        p.workspace.journal(),
        &ChangesApproval {
            run: p.run,
            step: p.step,
            mode: p.mode,
            description: &shown,
            deletions: cs.deletions(),
        },
        &changes,
        &output,
        p.step_approval,
    );
    let refused = |reason: String, shown: String| {
        (p.emit)(Event::ChangesRefused {
            changeset: cs.id.clone(),
            reason: reason.clone(),
        });
        Outcome::Refused {
            reason,
            blocked: true,
            shown,
        }
    };
    let by = match approval {
        Approval::Approved { by } => by,
        Approval::Rejected { reason } => {
            let reason = format!("the changes were not approved: {reason}");
            (p.emit)(Event::Blocked {
                step: p.step,
                reason: reason.clone(),
            });
            return refused(reason, shown);
        }
    };
    match changeset::apply(p.workspace, p.run, p.step, &p.call.0, &cs, &by, ApplyOptions::default()) {
        Ok(applied) => {
            (p.emit)(Event::ChangesApplied {
                changeset: cs.id.clone(),
                by: by.clone(),
                count: applied.count,
            });
            Outcome::Applied {
                changeset: applied.changeset,
                count: applied.count,
                by,
                shown,
            }
        }
        Err(e) => refused(
            format!("applying the changes failed and nothing was changed: {e}"),
            shown,
        ),
    }
}

/// Bytes of the content `proposed` would write, from the sizes alone.
pub fn staged_bytes(proposed: &[ProposedChange], staged: &ContentSource<'_>) -> u64 {
    proposed
        .iter()
        .filter_map(|c| match c {
            ProposedChange::Create { staged: from, .. } | ProposedChange::Overwrite { staged: from, .. } => {
                staged(from).ok()
            }
            _ => None,
        })
        .filter_map(|p| std::fs::symlink_metadata(p).ok())
        .fold(0u64, |sum, m| sum.saturating_add(m.len()))
}
