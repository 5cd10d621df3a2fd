//! `deskhand report --week`: a digest of the last seven days of runs for
//! people without a tracing backend (what ran, whether a schedule ran it,
//! what changed, what was blocked, time and tokens per run), read from the
//! journal and delivered as a new Markdown file in `output/` through the one
//! change pipeline: a one-step run of its own, approved by the person who
//! asked for it, whose Create changeset `deskhand undo` takes back. It never
//! overwrites a file: a taken name gets `-2`, `-3`, ...
//!
//! [`digest`] and [`markdown`] are pure over the journal's rows; [`deliver`]
//! is the thin step that writes.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use deskhand_types::{
    ChangeKind, Event, Mode, PlanStep, ProposedChange, RunId, RunStatus, StepEffects, StepNo, StepStatus, Task,
};

use crate::error::{Error, Result};
use crate::journal::EventRow;
use crate::workspace::Workspace;

/// Who plans and approves a report's run.
pub const REPORTER: &str = "the person, who ran deskhand report";
/// How far back a week's report looks.
pub const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

/// One top-level run as the report tells it (its sub-agents folded in).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunDigest {
    pub run: String,
    pub outcome: String,
    pub started: Option<SystemTime>,
    pub status: String,
    pub summary: String,
    /// Whether a schedule's pre-approved envelope let it act.
    pub scheduled: bool,
    /// From its first event to its end (or its last event, if it has not ended).
    pub elapsed: Option<Duration>,
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The changes applied, as "created output/x.csv".
    pub changes: Vec<String>,
    /// Why attempts were blocked.
    pub blocked: Vec<String>,
    pub sub_agents: usize,
}

fn parse_time(at: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(at.trim_end_matches('Z')).ok()
}

/// Folds a top-level run's events and its sub-agents' into its digest;
/// `root` makes paths relative to the workspace.
pub fn digest(run: &RunId, own: &[EventRow], children: &[Vec<EventRow>], root: &std::path::Path) -> RunDigest {
    let mut d = RunDigest {
        run: run.0.clone(),
        status: RunStatus::Running.as_str().into(),
        sub_agents: children.len(),
        ..RunDigest::default()
    };
    let first = own.first().and_then(|r| parse_time(&r.at));
    d.started = first;
    let mut end = own.last().and_then(|r| parse_time(&r.at));
    let mut proposed: std::collections::HashMap<String, Vec<deskhand_types::FileChange>> = Default::default();
    for (i, row) in own.iter().chain(children.iter().flatten()).enumerate() {
        let mine = i < own.len();
        match &row.event {
            Event::RunBegin { task, model, .. } if mine => {
                d.outcome = task.outcome.clone();
                d.model = model.clone();
            }
            Event::RunEnd { status, summary, .. } if mine => {
                d.status = status.as_str().into();
                d.summary = summary.clone();
                end = parse_time(&row.at);
            }
            Event::Resumed { .. } if mine => {
                d.status = RunStatus::Running.as_str().into();
                d.summary.clear();
            }
            Event::ModelTurnEnd { usage, .. } => {
                d.input_tokens += usage.input_tokens;
                d.output_tokens += usage.output_tokens;
            }
            Event::StepApproved { by, .. } if by.contains("schedule") => {
                d.scheduled = true;
            }
            Event::ChangesProposed { changeset, changes, .. } => {
                proposed.insert(changeset.clone(), changes.clone());
            }
            Event::Blocked { reason, .. } => d.blocked.push(reason.clone()),
            _ => {}
        }
        if let Event::ChangesApplied { changeset, by, .. } = &row.event {
            if by.contains("schedule") {
                d.scheduled = true;
            }
            for change in proposed.remove(changeset).unwrap_or_default() {
                let rel = |p: &std::path::Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
                let line = match (change.kind, &change.target) {
                    (ChangeKind::Create, _) => format!("created {}", rel(&change.path)),
                    (ChangeKind::Overwrite, _) => format!("changed {}", rel(&change.path)),
                    (ChangeKind::Delete, _) => format!("deleted {} (to the trash)", rel(&change.path)),
                    (ChangeKind::Rename, Some(t)) => format!("renamed {} to {}", rel(&change.path), rel(t)),
                    (ChangeKind::Move, Some(t)) => format!("moved {} to {}", rel(&change.path), rel(t)),
                    (_, None) => format!("{} {}", change.kind.as_str(), rel(&change.path)),
                };
                d.changes.push(line);
            }
        }
        if let Event::Undone { restored, .. } = &row.event
            && mine
        {
            d.changes.push(format!("undone ({restored} files put back)"));
        }
    }
    d.elapsed = match (first, end) {
        (Some(a), Some(b)) => b.duration_since(a).ok(),
        _ => None,
    };
    d
}

/// The top-level runs of the week before `now`, oldest first, each with its
/// sub-agents folded in; the reports' own runs are left out.
pub fn week(ws: &Workspace, now: SystemTime) -> Result<Vec<RunDigest>> {
    let since = now.checked_sub(WEEK).unwrap_or(SystemTime::UNIX_EPOCH);
    let journal = ws.journal();
    let tasks = journal.tasks()?;
    let mut digests = Vec::new();
    for task in tasks.iter().filter(|t| t.parent.is_none()) {
        let Some(created) = parse_time(&task.created_at) else {
            continue;
        };
        if created < since || created > now {
            continue;
        }
        let own = journal.events(&task.id)?;
        let is_report = own
            .iter()
            .any(|r| matches!(&r.event, Event::RunBegin { model, .. } if model == REPORTER));
        if is_report {
            continue;
        }
        let prefix = format!("{}.", task.id.0);
        let children = tasks
            .iter()
            .filter(|t| t.id.0.starts_with(&prefix))
            .map(|t| journal.events(&t.id))
            .collect::<Result<Vec<_>>>()?;
        digests.push(digest(&task.id, &own, &children, ws.root()));
    }
    Ok(digests)
}

fn local(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Local>::from(t)
        .format("%a %Y-%m-%d %H:%M")
        .to_string()
}

fn day(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Local>::from(t)
        .format("%Y-%m-%d")
        .to_string()
}

fn duration(d: Option<Duration>) -> String {
    match d.map(|d| d.as_secs()) {
        None => "-".into(),
        Some(s) if s < 60 => format!("{s} s"),
        Some(s) if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        Some(s) => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// Text from a run or a model, inert in Markdown: one line, no table or
/// markup characters that would change the page.
fn inert(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            // What would open a table cell, code, emphasis, a link or HTML.
            '|' | '`' | '*' | '[' | ']' | '<' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn status_words(status: &str) -> &str {
    match status {
        "succeeded" => "done",
        "failed" => "failed",
        "needs_input" => "waiting for your answer",
        "stopped" => "stopped",
        _ => "not finished",
    }
}

/// The report: a summary line, a table, then each run in a few lines.
pub fn markdown(digests: &[RunDigest], from: SystemTime, to: SystemTime) -> String {
    let mut md = format!("# deskhand: the week from {} to {}\n\n", day(from), day(to));
    if digests.is_empty() {
        md.push_str("No runs this week.\n");
        return md;
    }
    let count = |s: &str| digests.iter().filter(|d| d.status == s).count();
    let scheduled = digests.iter().filter(|d| d.scheduled).count();
    let changes: usize = digests.iter().map(|d| d.changes.len()).sum();
    let blocked: usize = digests.iter().map(|d| d.blocked.len()).sum();
    let time: Duration = digests.iter().filter_map(|d| d.elapsed).sum();
    let (tin, tout) = digests
        .iter()
        .fold((0, 0), |(a, b), d| (a + d.input_tokens, b + d.output_tokens));
    md.push_str(&format!(
        "{} ({} done, {} failed, {} waiting for your answer, {} stopped or unfinished), {} of them \
         scheduled. {} to your files, {} blocked. {} of work, {} tokens in and {} out.\n\n",
        plural(digests.len(), "run"),
        count("succeeded"),
        count("failed"),
        count("needs_input"),
        digests.len() - count("succeeded") - count("failed") - count("needs_input"),
        scheduled,
        plural(changes, "change"),
        plural(blocked, "attempt"),
        duration(Some(time)),
        tin,
        tout
    ));
    md.push_str("| Started | Task | Scheduled | Status | Time | Tokens in / out | Changes | Blocked |\n");
    md.push_str("|---|---|---|---|---|---|---|---|\n");
    for d in digests {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} / {} | {} | {} |\n",
            d.started.map(local).unwrap_or_default(),
            inert(&d.outcome, 80),
            if d.scheduled { "yes" } else { "no" },
            status_words(&d.status),
            duration(d.elapsed),
            d.input_tokens,
            d.output_tokens,
            d.changes.len(),
            d.blocked.len()
        ));
    }
    md.push_str("\n## Run by run\n");
    for d in digests {
        md.push_str(&format!(
            "\n### {}: {}\n\n",
            d.started.map(local).unwrap_or_default(),
            inert(&d.outcome, 200)
        ));
        md.push_str(&format!("- Run: {} ({})\n", inert(&d.run, 80), inert(&d.model, 80)));
        md.push_str(&format!(
            "- {}{}\n",
            status_words(&d.status),
            if d.summary.is_empty() {
                String::new()
            } else {
                format!(": {}", inert(&d.summary, 300))
            }
        ));
        md.push_str(&format!(
            "- Scheduled: {}\n- Time: {}; tokens: {} in, {} out",
            if d.scheduled { "yes" } else { "no" },
            duration(d.elapsed),
            d.input_tokens,
            d.output_tokens
        ));
        if d.sub_agents > 0 {
            md.push_str(&format!(" (with {} sub-agents)", d.sub_agents));
        }
        md.push('\n');
        if d.changes.is_empty() {
            md.push_str("- Changed nothing\n");
        } else {
            md.push_str("- Changed:\n");
            for c in &d.changes {
                md.push_str(&format!("  - {}\n", inert(c, 300)));
            }
        }
        for b in &d.blocked {
            md.push_str(&format!("- Blocked: {}\n", inert(b, 300)));
        }
    }
    md
}

/// What [`deliver`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    /// The run that delivered it (`deskhand undo` takes it back).
    pub run: RunId,
    /// The new file, relative to the workspace.
    pub path: PathBuf,
    /// How many runs it tells of.
    pub runs: usize,
}

/// Writes the week's report before `now` into `output/` as a new file,
/// through the change pipeline, as a run of its own.
pub fn deliver(ws: &Workspace, now: SystemTime) -> Result<Delivered> {
    let digests = week(ws, now)?;
    let text = markdown(&digests, now.checked_sub(WEEK).unwrap_or(now), now);
    let output = ws.output_dir().canonicalize().map_err(Error::io(ws.output_dir()))?;
    let stem = format!("week-report-{}", day(now));
    let name = (1..)
        .map(|n| {
            if n == 1 {
                format!("{stem}.md")
            } else {
                format!("{stem}-{n}.md")
            }
        })
        .find(|name| std::fs::symlink_metadata(output.join(name)).is_err())
        .unwrap_or_else(|| unreachable!("the names never run out"));
    let target = output.join(&name);
    let scratch = tempfile::Builder::new()
        .prefix("report-")
        .tempdir_in(ws.state_dir())
        .map_err(Error::io(ws.state_dir()))?;
    let staged = scratch.path().join(&name);
    std::fs::write(&staged, text).map_err(Error::io(&staged))?;

    let rel = PathBuf::from("output").join(&name);
    let task = Task {
        outcome: "Write the week's report".into(),
        grants: Vec::new(),
        mode: Mode::Act,
        params: Default::default(),
    };
    let step = PlanStep {
        title: format!("Write {}", rel.display()),
        effects: StepEffects {
            reads: Vec::new(),
            writes: vec![rel.clone()],
            network: Vec::new(),
            actions: Vec::new(),
        },
        status: StepStatus::Pending,
    };
    let mut one = crate::one_step::OneStepRun::begin(ws, task, REPORTER, step, None)?;
    one.approved_by_the_person(REPORTER);
    let run = one.run().clone();
    let call = crate::ids::call_id();
    let changes = [ProposedChange::Create {
        path: target.display().to_string(),
        staged: staged.display().to_string(),
    }];
    let staged_name = staged.display().to_string();
    let source = |named: &str| {
        if named == staged_name {
            Ok(staged.clone())
        } else {
            Err(Error::BadPath {
                path: named.into(),
                reason: "the report's content is the file it staged",
            })
        }
    };
    let within_step = |_: &crate::changeset::Changeset| Ok(());
    let emit = |event: Event| one.emit(event);
    let outcome = crate::pipeline::run(&crate::pipeline::Proposal {
        workspace: ws,
        run: &run,
        step: StepNo(1),
        call: &call,
        mode: Mode::Act,
        gate: &crate::agent::ApproveAll,
        step_approval: Some(REPORTER),
        roots: &[output],
        staged: &source,
        changes: &changes,
        in_read_only_grant: false,
        within_step: &within_step,
        emit: &emit,
    });
    let (status, summary, result) = match outcome {
        crate::pipeline::Outcome::Applied { .. } => (
            RunStatus::Succeeded,
            format!("Wrote {}", rel.display()),
            Ok(Delivered {
                run: run.clone(),
                path: rel.clone(),
                runs: digests.len(),
            }),
        ),
        crate::pipeline::Outcome::Refused { reason, .. } => (
            RunStatus::Failed,
            reason.clone(),
            Err(Error::InvalidArgs(format!(
                "the report was not written: {reason}; nothing was changed"
            ))),
        ),
        crate::pipeline::Outcome::Nothing => (
            RunStatus::Failed,
            "nothing to write".into(),
            Err(Error::InvalidArgs("the report was not written".into())),
        ),
    };
    let what_now = format!("`deskhand undo {run}` takes the report back.");
    one.finish(status, summary, false, &what_now)?;
    result
}

#[cfg(test)]
mod tests {
    use deskhand_types::model::Usage;
    use deskhand_types::{CallId, FileChange};

    use super::*;

    fn row(at: &str, event: Event) -> EventRow {
        EventRow {
            seq: 0,
            at: at.into(),
            event,
        }
    }

    #[test]
    fn a_run_is_told_with_its_changes_blocks_tokens_and_time_and_text_stays_inert() {
        let root = std::path::Path::new("/ws");
        let run = RunId("r".into());
        let own = vec![
            row(
                "2026-12-01T08:00:00.000Z",
                Event::RunBegin {
                    run: run.clone(),
                    task: Task {
                        outcome: "Make the | briefing\n# now".into(),
                        grants: Vec::new(),
                        mode: Mode::Act,
                        params: Default::default(),
                    },
                    model: "anthropic claude".into(),
                    parent: None,
                },
            ),
            row(
                "2026-12-01T08:00:01.000Z",
                Event::StepApproved {
                    step: StepNo(1),
                    by: "the person, in the schedule's approved plan".into(),
                    effects_hash: String::new(),
                },
            ),
            row(
                "2026-12-01T08:00:02.000Z",
                Event::ModelTurnEnd {
                    turn: 1,
                    finish_reason: None,
                    usage: Usage {
                        input_tokens: 100,
                        output_tokens: 7,
                    },
                    error: None,
                },
            ),
            row(
                "2026-12-01T08:00:03.000Z",
                Event::Blocked {
                    step: StepNo(1),
                    reason: "outside the grants: /etc".into(),
                },
            ),
            row(
                "2026-12-01T08:00:04.000Z",
                Event::ChangesProposed {
                    step: StepNo(1),
                    call: CallId("c".into()),
                    changeset: "cs1".into(),
                    changes: vec![FileChange {
                        kind: ChangeKind::Create,
                        path: "/ws/output/briefing.md".into(),
                        target: None,
                        before: None,
                        after: None,
                        size: 3,
                        new_folders: Vec::new(),
                    }],
                },
            ),
            row(
                "2026-12-01T08:00:05.000Z",
                Event::ChangesApplied {
                    changeset: "cs1".into(),
                    by: "act mode".into(),
                    count: 1,
                },
            ),
            row(
                "2026-12-01T08:01:05.000Z",
                Event::RunEnd {
                    run: run.clone(),
                    status: RunStatus::Succeeded,
                    summary: "Wrote it".into(),
                },
            ),
        ];
        let child = vec![row(
            "2026-12-01T08:00:02.500Z",
            Event::ModelTurnEnd {
                turn: 1,
                finish_reason: None,
                usage: Usage {
                    input_tokens: 20,
                    output_tokens: 3,
                },
                error: None,
            },
        )];
        let d = digest(&run, &own, &[child], root);
        assert!(d.scheduled);
        assert_eq!((d.input_tokens, d.output_tokens, d.sub_agents), (120, 10, 1));
        assert_eq!(d.elapsed, Some(Duration::from_secs(65)));
        assert_eq!(d.changes, ["created output/briefing.md"]);
        assert_eq!(d.blocked, ["outside the grants: /etc"]);
        let from = parse_time("2026-11-28T00:00:00Z").unwrap();
        let md = markdown(&[d], from, from + WEEK);
        assert!(md.contains("1 run (1 done"), "{md}");
        assert!(md.contains("1 min 5 s"), "{md}");
        assert!(md.contains("Make the \\| briefing # now"), "{md}");
        assert!(md.contains("  - created output/briefing.md"), "{md}");
        assert!(md.contains("- Blocked: outside the grants: /etc"), "{md}");
        assert_eq!(md.lines().filter(|l| l.starts_with("| ")).count(), 2, "{md}");
    }
}
