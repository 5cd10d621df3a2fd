//! The run ledger: after every run, a readable Markdown ledger and a JSON
//! twin, built from the journal alone. It lists every step, tool call,
//! approval (by whom, when), blocked attempt, sub-agent, and the files the
//! run wrote with their hashes.
//!
//! The ledger of record lives in `.deskhand/ledgers/`, where no guest can
//! write; every front end shows that one. `output/ledgers/` gets a copy of
//! the Markdown, apart from the deliverables, written through a capability
//! handle without following links. Whatever a guest planted in the copy's
//! way (a folder, a link) costs the copy, never the record or the run.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use deskhand_types::{CallOutcome, RunId};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::workspace::Workspace;

/// The folder under `.deskhand/` that holds the ledgers of record.
const RECORD_DIR: &str = "ledgers";
/// The folder under `output/` that holds the copies.
const COPY_DIR: &str = "ledgers";

/// Where a run's ledger of record goes: `.deskhand/ledgers/<run>.md` and `.json`.
pub fn paths(workspace: &Workspace, run: &RunId) -> (PathBuf, PathBuf) {
    let dir = workspace.state_dir().join(RECORD_DIR);
    (dir.join(format!("{run}.md")), dir.join(format!("{run}.json")))
}

/// Where the copy for the person goes: `output/ledgers/<run>-ledger.md`.
pub fn copy_path(workspace: &Workspace, run: &RunId) -> PathBuf {
    workspace.output_dir().join(COPY_DIR).join(format!("{run}-ledger.md"))
}

/// What [`write()`] wrote.
#[derive(Debug)]
pub struct Written {
    /// The Markdown ledger of record.
    pub record: PathBuf,
    /// The copy in `output/ledgers/`, or what was in its way.
    pub copy: std::result::Result<PathBuf, String>,
}

impl Written {
    /// What the person should be told about the copy, when it could not be written.
    pub fn copy_notice(&self) -> Option<String> {
        self.copy.as_ref().err().map(|why| {
            format!(
                "the ledger's copy in output/ was not written ({why}); the ledger of record is {}",
                self.record.display()
            )
        })
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 160 {
        format!("{}…", s.chars().take(160).collect::<String>())
    } else {
        s
    }
}

// Everything below the ledger's own words (outcomes, step titles, summaries,
// reasons, notices, file names, tool arguments) came from a model, a tool or
// a file, so the Markdown keeps it inert: it cannot start a heading, a list,
// a fence or a table row, open or close a comment or other HTML, or end a
// code span early.

/// Bidirectional controls reorder what a reader sees; shown escaped too.
fn is_hidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Inline text on one line: line breaks and other control characters shown
/// escaped; HTML and entity starts as entities; code, link, emphasis and
/// table-cell characters backslash-escaped.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '[' | ']' | '|' => {
                out.push('\\');
                out.push(c);
            }
            c if is_hidden(c) => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

/// A code span (a path, arguments) that no backtick inside can end early;
/// `table` escapes pipes, which GFM reads as cell breaks even in code
/// (a pipe after an odd run of backslashes is escaped; GFM pairs them).
fn code(s: &str, table: bool) -> String {
    let mut body = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' if table => {
                let before = body.len() - body.trim_end_matches('\\').len();
                body.push_str(if before.is_multiple_of(2) { "\\|" } else { "\\\\|" });
            }
            c if is_hidden(c) => body.extend(c.escape_default()),
            c => body.push(c),
        }
    }
    let ticks = "`".repeat(longest_run(&body, '`') + 1);
    let pad = if ticks.len() > 1 { " " } else { "" };
    format!("{ticks}{pad}{body}{pad}{ticks}")
}

/// Text of several lines (a model's answer) in a fence longer than any run
/// of backticks inside, so nothing in it is read as Markdown.
fn fenced(s: &str) -> String {
    let body: String = s
        .chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if is_hidden(c) => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect();
    let fence = "`".repeat((longest_run(&body, '`') + 1).max(3));
    format!("{fence}text\n{body}\n{fence}")
}

fn longest_run(s: &str, of: char) -> usize {
    let (mut longest, mut run) = (0, 0);
    for c in s.chars() {
        run = if c == of { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

/// At most `n` characters of `s` (hashes are shown shortened).
fn prefix(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Builds the ledger's JSON from the journal.
pub fn build(workspace: &Workspace, run: &RunId) -> Result<Value> {
    let journal = workspace.journal();
    let row = journal
        .task(run)?
        .ok_or_else(|| Error::UnknownRun { run: run.0.clone() })?;
    let view = crate::view::RunView::fold(&journal.events(run)?);
    let mut files: Vec<Value> = Vec::new();
    let calls: Vec<Value> = view
        .calls
        .iter()
        .map(|c| {
            let (status, detail) = match &c.outcome {
                None => ("interrupted", String::new()),
                Some(CallOutcome::Ok { output }) => {
                    if c.tool != "deskhand" {
                        for path in paths_under(&output.json, &workspace.output_dir()) {
                            if let Some(file) = file_record(workspace, &path) {
                                // A file written again is listed once, as it is now.
                                files.retain(|f: &Value| f["path"] != file["path"]);
                                files.push(file);
                            }
                        }
                    }
                    ("ok", output.text.lines().next().unwrap_or_default().to_owned())
                }
                Some(CallOutcome::ToolError { error }) => ("error", error.to_string()),
                Some(CallOutcome::Stopped { reason }) => ("stopped", reason.clone()),
                Some(CallOutcome::Refused { message }) => ("refused", message.clone()),
            };
            json!({"id": c.id, "tool": c.tool, "operation": c.operation, "args": c.args, "step": c.step,
                   "at": c.at, "status": status, "detail": detail, "elapsed_ms": c.elapsed_ms})
        })
        .collect();
    let refused_changes: Vec<Value> = view
        .changes_refused
        .iter()
        .map(|c| json!({"changeset": c.changeset, "at": c.at, "reason": c.text}))
        .collect();
    let change_approvals = view.applied_by_changeset();
    let changesets: Vec<Value> = crate::changeset::changes_of(workspace, run)?
        .into_iter()
        .map(|(id, status, changes)| {
            let approved = change_approvals
                .get(id.as_str())
                .map_or(Value::Null, |c| json!({"by": c.text, "at": c.at}));
            json!({"id": id, "status": status, "approved": approved, "changes": changes})
        })
        .collect();
    Ok(json!({
        "run": run.0,
        "changesets": changesets,
        "refused_changes": refused_changes,
        "undone": view.undone,
        "task": view.task,
        "planner": view.planner,
        "status": row.status,
        "started": row.created_at,
        "summary": row.summary,
        "plan": view.plan,
        "approvals": view.approvals,
        "questions": view.questions,
        "tool_calls": calls,
        "blocked": view.blocked,
        "connector_tools_held_back": view.held_back,
        "sub_agents": view.sub_agents,
        "files_written": files,
    }))
}

/// Every path under `output` that a tool's result names (`path`,
/// `spreadsheet`, a list of outputs, ...): what the call reports writing.
fn paths_under(json: &Value, output: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![json];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => {
                let p = Path::new(s);
                if p.starts_with(output) && p != output && !found.iter().any(|f: &PathBuf| f == p) {
                    found.push(p.to_path_buf());
                }
            }
            Value::Array(items) => stack.extend(items.iter().rev()),
            Value::Object(map) => stack.extend(map.values().rev()),
            _ => {}
        }
    }
    found
}

/// A file a call reported writing, with its hash, read through the output
/// folder's capability handle (a planted symlink cannot lead outside).
fn file_record(workspace: &Workspace, path: &Path) -> Option<Value> {
    let rel = path.strip_prefix(workspace.output_dir()).ok()?;
    let output = cap_std::fs::Dir::open_ambient_dir(workspace.output_dir(), cap_std::ambient_authority()).ok()?;
    let mut file = output.open(rel).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    // Streamed: a result may name a large file.
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher).ok()?;
    Some(json!({"path": path.display().to_string(), "bytes": bytes, "sha256": hex::encode(hasher.finalize())}))
}

/// Renders the ledger as Markdown for people.
pub fn markdown(ledger: &Value, workspace: &Workspace) -> String {
    let mut md = String::new();
    let s = |v: &Value| text(v.as_str().unwrap_or_default());
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
    let summary = ledger["summary"].as_str().unwrap_or_default().trim();
    if !summary.is_empty() {
        let _ = writeln!(md, "\n**Outcome:**\n\n{}", fenced(summary));
    }

    let _ = writeln!(md, "\n## Plan");
    match ledger["plan"]["steps"].as_array() {
        Some(steps) if !steps.is_empty() => {
            if let Some(reason) = ledger["plan"]["reason"].as_str() {
                let _ = writeln!(md, "Revision {}: {}\n", ledger["plan"]["revision"], text(reason));
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
    if approvals.is_empty() && ledger["questions"].as_array().is_none_or(Vec::is_empty) {
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
            prefix(&hash, 12)
        );
    }

    let questions = ledger["questions"].as_array().cloned().unwrap_or_default();
    if !questions.is_empty() {
        let _ = writeln!(md, "\nQuestions put to the person:");
    }
    for q in questions {
        let answer = &q["answer"];
        let answered = if answer.is_null() {
            "not answered".to_owned()
        } else if answer["approved"] == true {
            format!("approved by {} at {}", s(&answer["by"]), s(&answer["at"]))
        } else {
            format!("refused at {}: {}", s(&answer["at"]), s(&answer["by"]))
        };
        let _ = writeln!(
            md,
            "- Step {} ({}), asked at {}: {}: {}",
            q["step"],
            s(&q["kind"]),
            s(&q["asked"]),
            s(&q["title"]),
            answered
        );
    }

    let _ = writeln!(md, "\n## Tool calls\n");
    let _ = writeln!(md, "| step | tool | arguments | result |\n|---|---|---|---|");
    for c in ledger["tool_calls"].as_array().cloned().unwrap_or_default() {
        let _ = writeln!(
            md,
            "| {} | {}.{} | {} | {}: {} |",
            c["step"],
            s(&c["tool"]),
            s(&c["operation"]),
            code(&short(&c["args"]), true),
            s(&c["status"]),
            s(&c["detail"])
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

    let held = ledger["connector_tools_held_back"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !held.is_empty() {
        let _ = writeln!(
            md,
            "\n## Connector tools held back\n\nNot offered to the model until you approve them again \
             (`deskhand connectors approve NAME`):\n"
        );
        for h in held {
            let _ = writeln!(md, "- {}: {}", s(&h["at"]), s(&h["reason"]));
        }
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
                text(a["summary"].as_str().unwrap_or_default().trim())
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
            "- {} ({} bytes, sha256 `{}`)",
            code(f["path"].as_str().unwrap_or_default(), false),
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
            let hash = |v: &Value| v.as_str().map(|h| code(&prefix(h, 16), true)).unwrap_or_default();
            let _ = writeln!(
                md,
                "| {kind} | {} | {} | {} | {} |",
                code(c["path"].as_str().unwrap_or_default(), true),
                c["target"].as_str().map(|t| code(t, true)).unwrap_or_default(),
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
    let run = ledger["run"].as_str().unwrap_or_default();
    let root = workspace.root().display();
    if applied {
        let _ = writeln!(
            md,
            "Put back everything this run changed in your folders:\n\n{}\n\n\
             Renames are reversed, overwritten files restored, deleted files brought back from the trash. \
             Files changed since are left alone unless you add `--force` (their current versions then go to the trash).",
            code(&format!("deskhand undo {run} --workspace {root}"), false)
        );
    } else {
        let _ = writeln!(
            md,
            "This run changed nothing in your folders (new files in output/ are listed above). \
             See it again with {}.",
            code(&format!("deskhand show {run} --workspace {root}"), false)
        );
    }
    md
}

/// Writes the ledger of record (both files, atomically; a rerun after a
/// resume or an undo replaces them), then its copy in `output/ledgers/`.
/// Only the record can fail this; the copy's trouble is in [`Written::copy`].
pub fn write(workspace: &Workspace, run: &RunId) -> Result<Written> {
    let ledger = build(workspace, run)?;
    let (md_path, json_path) = paths(workspace, run);
    let dir = workspace.state_dir().join(RECORD_DIR);
    std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
    let md = markdown(&ledger, workspace);
    write_atomic(
        &json_path,
        serde_json::to_string_pretty(&ledger).unwrap_or_default().as_bytes(),
    )?;
    write_atomic(&md_path, md.as_bytes())?;
    // The renames reach the disk with the folder.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    let copy = write_copy(workspace, run, md.as_bytes()).map(|()| copy_path(workspace, run));
    Ok(Written { record: md_path, copy })
}

/// The Markdown ledger of record of a run, for a front end to show: the
/// file under `.deskhand/ledgers/`, else (a run from before ledgers were
/// kept there) built afresh from the journal. `None` while the run goes
/// on, or for a run the journal does not know.
pub fn read(workspace: &Workspace, run: &RunId) -> Result<Option<String>> {
    // The name comes from a URL or a command line: no separators, no `..`.
    let name_ok = !run.0.is_empty()
        && !run.0.starts_with('.')
        && run.0.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !name_ok {
        return Ok(None);
    }
    let dir = workspace.state_dir().join(RECORD_DIR);
    match crate::workspace::read_beneath(&dir, Path::new(&format!("{run}.md"))) {
        Ok(bytes) => return Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match workspace.journal().task(run)? {
        Some(row) if row.status != deskhand_types::RunStatus::Running.as_str() => {
            Ok(Some(markdown(&build(workspace, run)?, workspace)))
        }
        _ => Ok(None),
    }
}

/// Writes the copy through a capability handle on `output/`: a folder or
/// file planted at `output/ledgers` or at the copy's name is reported, not
/// written through, and a symbolic link is never followed (one at the
/// copy's name is replaced by the copy).
fn write_copy(workspace: &Workspace, run: &RunId, bytes: &[u8]) -> std::result::Result<(), String> {
    use cap_std::fs::{Dir, OpenOptions};
    let output = Dir::open_ambient_dir(workspace.output_dir(), cap_std::ambient_authority())
        .map_err(|e| format!("output/ cannot be opened: {e}"))?;
    match output.symlink_metadata(COPY_DIR) {
        Ok(m) if m.is_dir() => {}
        Ok(m) if m.is_symlink() => return Err(format!("output/{COPY_DIR} is a symbolic link")),
        Ok(_) => return Err(format!("output/{COPY_DIR} is a file, not a folder")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // The person's alone (0700 / 0600), whatever the umask.
            let mut builder = cap_std::fs::DirBuilder::new();
            #[cfg(unix)]
            cap_std::fs::DirBuilderExt::mode(&mut builder, 0o700);
            output
                .create_dir_with(COPY_DIR, &builder)
                .map_err(|e| format!("output/{COPY_DIR} cannot be made: {e}"))?
        }
        Err(e) => return Err(format!("output/{COPY_DIR} cannot be read: {e}")),
    }
    let dir = output
        .open_dir(COPY_DIR)
        .map_err(|e| format!("output/{COPY_DIR} cannot be opened: {e}"))?;
    let name = format!("{run}-ledger.md");
    if let Ok(m) = dir.symlink_metadata(&name)
        && m.is_dir()
    {
        return Err(format!("output/{COPY_DIR}/{name} is a folder"));
    }
    let tmp = format!(".{name}.{:016x}.tmp", getrandom::u64().unwrap_or(0));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    cap_std::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = dir
        .open_with(&tmp, &options)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| dir.rename(&tmp, &dir, &name));
    if let Err(e) = written {
        let _ = dir.remove_file(&tmp);
        return Err(format!("output/{COPY_DIR}/{name} cannot be written: {e}"));
    }
    Ok(())
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
