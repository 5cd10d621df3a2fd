//! The run ledger: after every run, a readable `output/<run>-ledger.md` and
//! a JSON twin beside it, built from the journal alone. It lists every step,
//! tool call, approval (by whom, when), blocked attempt, sub-agent, and the
//! files the run wrote with their hashes.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use deskhand_types::{CallOutcome, Event, Plan, RunId};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::workspace::Workspace;

/// Where a run's ledger goes.
pub fn paths(workspace: &Workspace, run: &RunId) -> (PathBuf, PathBuf) {
    let out = workspace.output_dir();
    (
        out.join(format!("{run}-ledger.md")),
        out.join(format!("{run}-ledger.json")),
    )
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 160 {
        format!("{}…", s.chars().take(160).collect::<String>())
    } else {
        s
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Builds the ledger's JSON from the journal.
pub fn build(workspace: &Workspace, run: &RunId) -> Result<Value> {
    let journal = workspace.journal();
    let row = journal
        .task(run)?
        .ok_or_else(|| Error::UnknownRun { run: run.0.clone() })?;
    let mut plan = Plan::default();
    let mut task = Value::Null;
    let mut model = String::new();
    let (mut approvals, mut calls, mut blocked, mut subagents, mut files) = (vec![], vec![], vec![], vec![], vec![]);
    let mut open_calls: Vec<(String, Value, String)> = Vec::new();
    let mut step = 0usize;
    let mut change_approvals = std::collections::BTreeMap::new();
    let (mut refused_changes, mut undos) = (vec![], vec![]);
    for r in journal.events(run)? {
        match r.event {
            Event::RunBegin { task: t, model: m, .. } => {
                task = serde_json::to_value(t).unwrap_or_default();
                model = m;
            }
            // A mode switched on resume is the mode the rest of the run had.
            Event::ModeChanged { mode, .. } => {
                task["mode"] = serde_json::to_value(mode).unwrap_or_default();
            }
            Event::PlanUpdated { plan: p } => plan = p,
            Event::StepApproved { step, by, effects_hash } => {
                approvals.push(json!({"step": step, "by": by, "at": r.at, "effects_hash": effects_hash}))
            }
            Event::StepBegin { step: s, .. } => {
                step = s;
                if let Some(p) = plan.steps.get_mut(s - 1) {
                    p.status = deskhand_types::StepStatus::InProgress;
                }
            }
            Event::StepEnd { step: s, status, .. } => {
                if let Some(p) = plan.steps.get_mut(s - 1) {
                    p.status = status;
                }
            }
            begin @ Event::ToolCallBegin { .. } => {
                if let Some(c) = begin.tool_call() {
                    open_calls.push((
                        c.id.0,
                        json!({"tool": c.tool, "operation": c.operation, "args": c.args, "step": step, "at": r.at}),
                        c.tool,
                    ));
                }
            }
            Event::ToolCallEnd {
                call,
                outcome,
                elapsed_ms,
            } => {
                let Some(i) = open_calls.iter().position(|(id, _, _)| *id == call.0) else {
                    continue;
                };
                let (id, mut entry, tool) = open_calls.remove(i);
                let (status, detail) = match &outcome {
                    CallOutcome::Ok { output } => {
                        if tool != "deskhand"
                            && let Some(path) = output.json.get("path").and_then(Value::as_str)
                            && let Some(file) = file_record(workspace, Path::new(path))
                        {
                            files.push(file);
                        }
                        ("ok", output.text.lines().next().unwrap_or_default().to_owned())
                    }
                    CallOutcome::ToolError { error } => ("error", error.to_string()),
                    CallOutcome::Stopped { reason } => ("stopped", reason.clone()),
                    CallOutcome::Refused { message } => ("refused", message.clone()),
                };
                entry["id"] = json!(id);
                entry["status"] = json!(status);
                entry["detail"] = json!(detail);
                entry["elapsed_ms"] = json!(elapsed_ms);
                calls.push(entry);
            }
            Event::Blocked { step, reason } => blocked.push(json!({"step": step, "at": r.at, "reason": reason})),
            Event::ChangesApplied { changeset, by, .. } => {
                change_approvals.insert(changeset, json!({"by": by, "at": r.at}));
            }
            Event::ChangesRefused { changeset, reason } => {
                refused_changes.push(json!({"changeset": changeset, "at": r.at, "reason": reason}));
            }
            Event::Undone {
                changesets,
                restored,
                forced,
            } => {
                undos.push(json!({"at": r.at, "changesets": changesets, "restored": restored, "forced": forced}));
            }
            Event::SubAgentEnd { child, status, summary } => {
                subagents.push(json!({"run": child.0, "status": status.as_str(), "summary": summary}))
            }
            _ => {}
        }
    }
    for (id, mut entry, _) in open_calls {
        entry["id"] = json!(id);
        entry["status"] = json!("interrupted");
        calls.push(entry);
    }
    let changesets: Vec<Value> = crate::changeset::changes_of(workspace, run)?
        .into_iter()
        .map(|(id, status, changes)| {
            let approved = change_approvals.get(&id).cloned().unwrap_or(Value::Null);
            json!({"id": id, "status": status, "approved": approved, "changes": changes})
        })
        .collect();
    Ok(json!({
        "run": run.0,
        "changesets": changesets,
        "refused_changes": refused_changes,
        "undone": undos,
        "task": task,
        "planner": model,
        "status": row.status,
        "started": row.created_at,
        "summary": row.summary,
        "plan": plan,
        "approvals": approvals,
        "tool_calls": calls,
        "blocked": blocked,
        "sub_agents": subagents,
        "files_written": files,
    }))
}

/// A file a call reported writing, with its hash, read through the output
/// folder's capability handle (a planted symlink cannot lead outside).
fn file_record(workspace: &Workspace, path: &Path) -> Option<Value> {
    let rel = path.strip_prefix(workspace.output_dir()).ok()?;
    let bytes = workspace.read_output(rel).ok()?;
    Some(
        json!({"path": path.display().to_string(), "bytes": bytes.len(), "sha256": hex::encode(Sha256::digest(&bytes))}),
    )
}

/// Renders the ledger as Markdown for people.
pub fn markdown(ledger: &Value, workspace: &Workspace) -> String {
    let mut md = String::new();
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let _ = writeln!(md, "# Run ledger: {}\n", s(&ledger["run"]));
    let _ = writeln!(md, "- **Task:** {}", s(&ledger["task"]["outcome"]));
    let _ = writeln!(md, "- **Status:** {}", s(&ledger["status"]));
    let _ = writeln!(md, "- **Started:** {}", s(&ledger["started"]));
    let _ = writeln!(md, "- **Planner:** {}", s(&ledger["planner"]));
    let _ = writeln!(md, "- **Mode:** {}", s(&ledger["task"]["mode"]).replace('_', " "));
    let grants: Vec<String> = ledger["task"]["grants"]
        .as_array()
        .map(|g| {
            g.iter()
                .map(|g| format!("{} ({})", s(&g["path"]), s(&g["access"]).replace('_', "-")))
                .collect()
        })
        .unwrap_or_default();
    let _ = writeln!(
        md,
        "- **Grants:** {}",
        if grants.is_empty() {
            "none (output/ only)".into()
        } else {
            grants.join(", ")
        }
    );
    if !s(&ledger["summary"]).is_empty() {
        let _ = writeln!(md, "\n**Outcome:** {}", s(&ledger["summary"]).trim());
    }

    let _ = writeln!(md, "\n## Plan");
    match ledger["plan"]["steps"].as_array() {
        Some(steps) if !steps.is_empty() => {
            if let Some(reason) = ledger["plan"]["reason"].as_str() {
                let _ = writeln!(md, "Revision {}: {reason}\n", ledger["plan"]["revision"]);
            }
            for (i, st) in steps.iter().enumerate() {
                let mark = match st["status"].as_str() {
                    Some("done") => "[x]",
                    Some("failed") => "[!]",
                    Some("skipped") => "[-]",
                    Some("in_progress") => "[>]",
                    _ => "[ ]",
                };
                let _ = writeln!(md, "- {mark} {}. {}", i + 1, s(&st["title"]));
                for (key, label) in [("reads", "reads"), ("writes", "writes"), ("network", "network")] {
                    if let Some(v) = st["effects"][key].as_array().filter(|v| !v.is_empty()) {
                        let list: Vec<String> = v.iter().map(s).collect();
                        let _ = writeln!(md, "  - {label}: {}", list.join(", "));
                    }
                }
            }
        }
        _ => {
            let _ = writeln!(md, "No plan was made.");
        }
    }

    let _ = writeln!(md, "\n## Approvals");
    let approvals = ledger["approvals"].as_array().cloned().unwrap_or_default();
    if approvals.is_empty() {
        let _ = writeln!(md, "None were needed.");
    }
    for a in approvals {
        let hash = s(&a["effects_hash"]);
        let _ = writeln!(
            md,
            "- Step {}: approved by {} at {} (step hash {})",
            a["step"],
            s(&a["by"]),
            s(&a["at"]),
            &hash[..hash.len().min(12)]
        );
    }

    let _ = writeln!(md, "\n## Tool calls\n");
    let _ = writeln!(md, "| step | tool | arguments | result |\n|---|---|---|---|");
    for c in ledger["tool_calls"].as_array().cloned().unwrap_or_default() {
        let _ = writeln!(
            md,
            "| {} | {}.{} | `{}` | {}: {} |",
            c["step"],
            s(&c["tool"]),
            s(&c["operation"]),
            cell(&short(&c["args"])),
            s(&c["status"]),
            cell(&s(&c["detail"]))
        );
    }

    let blocked = ledger["blocked"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(md, "\n## Blocked attempts");
    if blocked.is_empty() {
        let _ = writeln!(md, "None.");
    }
    for b in blocked {
        let _ = writeln!(md, "- Step {} at {}: {}", b["step"], s(&b["at"]), s(&b["reason"]));
    }

    let subs = ledger["sub_agents"].as_array().cloned().unwrap_or_default();
    if !subs.is_empty() {
        let _ = writeln!(md, "\n## Sub-agents");
        for a in subs {
            let _ = writeln!(
                md,
                "- {} ({}): {}",
                s(&a["run"]),
                s(&a["status"]),
                s(&a["summary"]).trim()
            );
        }
    }

    let _ = writeln!(md, "\n## Files written\n");
    let files = ledger["files_written"].as_array().cloned().unwrap_or_default();
    if files.is_empty() {
        let _ = writeln!(md, "None.");
    }
    for f in files {
        let _ = writeln!(
            md,
            "- `{}` ({} bytes, sha256 `{}`)",
            s(&f["path"]),
            f["bytes"],
            s(&f["sha256"])
        );
    }
    let changesets = ledger["changesets"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(md, "\n## Changes to your folders\n");
    if changesets.is_empty() {
        let _ = writeln!(md, "None.");
    }
    for cs in &changesets {
        let by = &cs["approved"];
        let approval = if by.is_null() {
            String::new()
        } else {
            format!(", approved by {} at {}", s(&by["by"]), s(&by["at"]))
        };
        let _ = writeln!(
            md,
            "Changeset `{}` ({}{approval}):\n\n| change | path | new path | sha256 before | sha256 after |\n|---|---|---|---|---|",
            s(&cs["id"]),
            s(&cs["status"]).replace('_', " ")
        );
        for c in cs["changes"].as_array().cloned().unwrap_or_default() {
            let kind = s(&c["kind"]);
            let kind = if kind == "delete" {
                "**delete** (to trash)".to_owned()
            } else {
                kind
            };
            let hash = |v: &Value| {
                v.as_str()
                    .map(|h| format!("`{}`", &h[..h.len().min(16)]))
                    .unwrap_or_default()
            };
            let _ = writeln!(
                md,
                "| {kind} | `{}` | {} | {} | {} |",
                cell(&s(&c["path"])),
                c["target"]
                    .as_str()
                    .map(|t| format!("`{}`", cell(t)))
                    .unwrap_or_default(),
                hash(&c["before"]),
                hash(&c["after"])
            );
        }
        let _ = writeln!(md);
    }
    for r in ledger["refused_changes"].as_array().cloned().unwrap_or_default() {
        let _ = writeln!(
            md,
            "- Not applied: changeset `{}` at {}: {}",
            s(&r["changeset"]),
            s(&r["at"]),
            s(&r["reason"])
        );
    }
    for u in ledger["undone"].as_array().cloned().unwrap_or_default() {
        let _ = writeln!(
            md,
            "- Undone at {}: {} change(s) put back{}",
            s(&u["at"]),
            u["restored"],
            if u["forced"].as_bool() == Some(true) {
                " (forced)"
            } else {
                ""
            }
        );
    }
    let applied = changesets.iter().any(|c| c["status"] == "applied");
    let _ = writeln!(md, "\n## Undo\n");
    if applied {
        let _ = writeln!(
            md,
            "Put back everything this run changed in your folders:\n\n    deskhand undo {} --workspace {}\n\n\
             Renames are reversed, overwritten files restored, deleted files brought back from the trash. \
             Files changed since are left alone unless you add `--force` (their current versions then go to the trash).",
            s(&ledger["run"]),
            workspace.root().display()
        );
    } else {
        let _ = writeln!(
            md,
            "This run changed nothing in your folders (new files in output/ are listed above). \
             See it again with `deskhand show {} --workspace {}`.",
            s(&ledger["run"]),
            workspace.root().display()
        );
    }
    md
}

/// Writes both ledger files atomically (a rerun after a resume replaces them).
pub fn write(workspace: &Workspace, run: &RunId) -> Result<PathBuf> {
    let ledger = build(workspace, run)?;
    let (md_path, json_path) = paths(workspace, run);
    write_atomic(
        &json_path,
        serde_json::to_string_pretty(&ledger).unwrap_or_default().as_bytes(),
    )?;
    write_atomic(&md_path, markdown(&ledger, workspace).as_bytes())?;
    Ok(md_path)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(Error::io(dir))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(Error::io(path))?;
    tmp.persist(path).map_err(|e| Error::Io {
        path: path.into(),
        source: e.error,
    })?;
    Ok(())
}
