//! `deskhand undo RUN|--last`: puts back everything a run (and its
//! sub-agents) changed in the person's folders; with `--force`, also files
//! changed since, whose current versions go to the trash.

use deskhand_runtime::changeset;
use deskhand_runtime::workspace::Workspace;
use deskhand_types::{ChangesetStatus, RunId};

use crate::cli::UndoArgs;
use crate::failure::{Failure, change_failure, user_error};
use crate::setup::open_workspace;
use crate::terminal::out;

pub fn undo(args: UndoArgs) -> Result<(), Failure> {
    let UndoArgs {
        run,
        last: _,
        workspace,
        force,
    } = args;
    let ws = open_workspace(&workspace)?;
    let run = match run {
        Some(run) => RunId(run),
        None => last_changing_run(&ws)?,
    };
    if ws.journal().task(&run)?.is_none() {
        return Err(deskhand_runtime::Error::UnknownRun { run: run.0 }.into());
    }
    let report = changeset::undo(&ws, &run, force).map_err(change_failure)?;
    if let Err(e) = deskhand_runtime::ledger::write(&ws, &run) {
        eprintln!("warning: the run's ledger could not be updated with the undo: {e}");
    }
    out(&format!(
        "Undid run {}: {} change(s) in {} changeset(s) put back.",
        report.run,
        report.restored,
        report.changesets.len()
    ));
    if report.trashed > 0 {
        out(&format!(
            "{} file(s) changed since the run were moved to the trash (`deskhand trash list`).",
            report.trashed
        ));
    }
    Ok(())
}

/// The newest top-level run with applied changes.
fn last_changing_run(ws: &Workspace) -> Result<RunId, Failure> {
    let runs = ws.journal().tasks()?;
    for task in runs.iter().rev().filter(|t| t.parent.is_none()) {
        let changes = changeset::changes_of(ws, &task.id).map_err(change_failure)?;
        if changes.iter().any(|(_, status, _)| *status == ChangesetStatus::Applied) {
            return Ok(task.id.clone());
        }
    }
    Err(user_error("no run in this workspace has changes left to undo"))
}
