//! `deskhand runs` and `deskhand show RUN`: list a workspace's runs, and show
//! one as a summary (plan, steps, sub-agents, outcome), as its journaled
//! events (`--events`) or as its ledger of record (`--ledger`).

use std::path::Path;

use deskhand_runtime::workspace::Workspace;
use deskhand_types::RunId;

use crate::cli::ShowArgs;
use crate::failure::{Failure, user_error};
use crate::render;
use crate::terminal::out;

pub fn runs(workspace: &Path) -> Result<(), Failure> {
    let ws = Workspace::open(workspace)?;
    let tasks = ws.journal().tasks()?;
    if tasks.iter().all(|t| t.parent.is_some()) {
        out("No runs yet. Start one with deskhand run \"...\" --workspace DIR");
    }
    for t in tasks.iter().filter(|t| t.parent.is_none()) {
        // A run stopped for the person (a question, or a scheduled run
        // needing what its schedule did not approve) says how to go on.
        let waits = match t.status.as_str() {
            "needs_input" => format!("  <- waits for you: deskhand resume {}", t.id),
            _ => String::new(),
        };
        out(&format!(
            "{}  {:<11}  {}  {}{waits}",
            t.id,
            t.status,
            t.created_at,
            render::line(&t.outcome)
        ));
    }
    Ok(())
}

pub fn show(args: ShowArgs) -> Result<(), Failure> {
    let ShowArgs {
        run,
        workspace,
        events,
        ledger,
    } = args;
    let ws = Workspace::open(&workspace)?;
    if ledger {
        return match deskhand_runtime::ledger::read(&ws, &RunId(run.clone()))? {
            Some(text) => {
                out(&render::block(&text));
                Ok(())
            }
            None if ws.journal().task(&RunId(run.clone()))?.is_none() => {
                Err(deskhand_runtime::Error::UnknownRun { run }.into())
            }
            None => Err(user_error(format!(
                "run {run} has no ledger yet: it is written when the run ends"
            ))),
        };
    }
    show_run(&ws, &RunId(run), events)
}

fn show_run(ws: &Workspace, run: &RunId, events: bool) -> Result<(), Failure> {
    let journal = ws.journal();
    let row = journal
        .task(run)?
        .ok_or_else(|| deskhand_runtime::Error::UnknownRun { run: run.0.clone() })?;
    let rows = journal.events(run)?;
    if events {
        for r in rows {
            out(&render::json_line(
                &serde_json::json!({"seq": r.seq, "at": r.at, "event": r.event}),
            ));
        }
        return Ok(());
    }
    out(&format!("Run {}  ({})", row.id, row.status));
    out(&format!("Task: {}", render::line(&row.outcome)));
    out(&format!("Started: {}", row.created_at));
    let view = deskhand_runtime::view::RunView::fold(&rows);
    if let Some(task) = &view.task {
        out(&format!(
            "Planner: {}   Mode: {}",
            render::line(&view.planner),
            task.mode
        ));
        let grants: Vec<String> = task.grants.iter().map(|g| render::line(&g.to_string())).collect();
        out(&format!(
            "Grants: {}",
            if grants.is_empty() {
                "none".into()
            } else {
                grants.join(", ")
            }
        ));
    }
    if view.planned {
        let p = &view.plan;
        let reason = p
            .reason
            .as_deref()
            .map(|r| format!(" — {}", render::line(r)))
            .unwrap_or_default();
        out(&format!("Plan (revision {}){reason}:", p.revision));
        for (i, s) in p.steps.iter().enumerate() {
            out(&format!("  {} {}. {}", s.status.mark(), i + 1, render::line(&s.title)));
        }
    } else {
        out("No plan was made.");
    }
    let calls = view.calls.iter().filter(|c| c.tool != "deskhand").count();
    out(&format!("Tool calls: {calls}"));
    for c in &view.sub_agents {
        out(&format!(
            "  sub-agent {} {}: {}",
            c.run,
            c.status,
            render::line(c.summary.trim())
        ));
    }
    if !row.summary.is_empty() {
        out(&format!("Outcome: {}", render::block(row.summary.trim())));
    }
    let (ledger, _) = deskhand_runtime::ledger::paths(ws, run);
    if ledger.is_file() {
        out(&format!("Ledger: {}", ledger.display()));
    }
    Ok(())
}
