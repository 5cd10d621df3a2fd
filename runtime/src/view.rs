//! One fold of a run's journaled events into what the run is now: its task
//! (with a mode switched on resume), plan with step statuses, approvals and
//! the questions put to the person, tool calls and their outcomes, blocked
//! attempts, changesets approved or refused, undos, sub-agents, and how it
//! ended. Resume, the ledger, `deskhand show` and the web UI's page read runs
//! through it; the page also reads what only a live run has: the questions
//! open now and the running call's progress.

use std::collections::BTreeMap;

use deskhand_types::model::Message;
use deskhand_types::{CallOutcome, Event, Plan, RunId, RunStatus, StepNo, StepStatus, Task};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::journal::{EventRow, Journal};

/// A step's approval: who gave it, when, and for which version of the step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepApprovalRecord {
    pub step: StepNo,
    pub by: String,
    pub at: String,
    pub effects_hash: String,
}

/// A question put to the person (by any front end) and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuestionRecord {
    pub approval: String,
    pub step: StepNo,
    pub kind: String,
    pub title: String,
    pub deletions: usize,
    pub asked: String,
    pub answer: Option<AnswerRecord>,
}

/// A question the person can answer now, with what it asks them to approve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenQuestion {
    #[serde(flatten)]
    pub question: QuestionRecord,
    pub details: String,
    /// For changes that rename or move: each as a row, with why (from what
    /// the proposing call said), for a page to show as a table.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub moves: Vec<MoveRow>,
    /// What the proposing call left as it was, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedRow>,
}

/// One rename or move a question asks about, by name within its folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MoveRow {
    pub folder: String,
    pub before: String,
    /// The new name, or `sub-folder/name` for a move into a sub-folder.
    pub after: String,
    /// Where the new name came from ("the date in its name",
    /// "its modification time (UTC)", ".pdf"), when the tool said.
    pub why: Option<String>,
    /// A reason to look twice: the date is the modification time.
    pub flagged: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedRow {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnswerRecord {
    pub approved: bool,
    /// Who approved, or why not.
    pub by: String,
    pub at: String,
}

/// One tool call; `outcome` is None while it runs (or if it was interrupted).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRecord {
    pub id: String,
    pub tool: String,
    pub operation: String,
    pub args: Value,
    /// The step that was running when it began (0: none).
    pub step: StepNo,
    pub at: String,
    pub outcome: Option<CallOutcome>,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Noted {
    pub step: StepNo,
    pub at: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangesetNote {
    pub changeset: String,
    pub at: String,
    /// Who approved it (applied) or why it was refused.
    pub text: String,
    /// How many changes were applied (0 when refused).
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UndoRecord {
    pub at: String,
    pub changesets: Vec<String>,
    pub restored: usize,
    pub forced: bool,
}

/// A sub-agent as it was started: by which step, to do what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChildRecord {
    pub run: String,
    pub step: StepNo,
    pub outcome: String,
}

/// The running call's latest report of how far it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgressRecord {
    pub done: u64,
    pub total: Option<u64>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubAgentRecord {
    pub run: String,
    pub status: String,
    pub summary: String,
}

/// A run as its events tell it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunView {
    /// As begun, with the latest mode switched to on resume.
    pub task: Option<Task>,
    /// Who planned: a model's name or "offline planner".
    pub planner: String,
    /// The latest plan, with each step's latest status.
    pub plan: Plan,
    /// Whether a plan was ever made.
    pub planned: bool,
    /// The conversation as the model sees it next (compactions applied).
    #[serde(skip)]
    pub messages: Vec<Message>,
    /// The last model turn's number, and whether it failed.
    pub turn: u32,
    pub model_failed: bool,
    pub approvals: Vec<StepApprovalRecord>,
    pub questions: Vec<QuestionRecord>,
    /// The questions that can be answered now: unanswered, and asked since
    /// the run last resumed (the resumed run asks again) and before it ended.
    pub open_questions: Vec<OpenQuestion>,
    pub calls: Vec<CallRecord>,
    pub blocked: Vec<Noted>,
    /// Connector tools held back from the model (a definition that changed
    /// since approval, or never approved), with why.
    pub held_back: Vec<Noted>,
    pub changes_applied: Vec<ChangesetNote>,
    pub changes_refused: Vec<ChangesetNote>,
    pub undone: Vec<UndoRecord>,
    /// Sub-agents that ended.
    pub sub_agents: Vec<SubAgentRecord>,
    /// Sub-agents started, ended or not.
    pub children: Vec<ChildRecord>,
    /// The running call's, until it ends (or the run ends or resumes).
    pub progress: Option<ProgressRecord>,
    /// How it ended, unless it was resumed since.
    pub ended: Option<(RunStatus, String)>,
    /// It ended failed before any plan, with the planner's own answer (what
    /// it cannot do, and why): the person reads an answer, not a failure.
    pub declined: bool,
    /// The latest proposed changes and the call that proposed them, for the
    /// question that follows.
    #[serde(skip)]
    pub proposed: Option<(String, Vec<deskhand_types::FileChange>)>,
}

impl RunView {
    /// Folds `run`'s journaled events.
    pub fn load(journal: &Journal, run: &RunId) -> Result<RunView> {
        let view = RunView::fold(&journal.events(run)?);
        if view.task.is_none() {
            return Err(Error::UnknownRun { run: run.0.clone() });
        }
        Ok(view)
    }

    /// Folds events in their journal order.
    pub fn fold(rows: &[EventRow]) -> RunView {
        let mut v = RunView::default();
        let mut step = StepNo::NONE;
        for r in rows {
            v.apply(r, &mut step);
        }
        v
    }

    fn apply(&mut self, r: &EventRow, step: &mut StepNo) {
        let at = || r.at.clone();
        match &r.event {
            Event::RunBegin { task, model, .. } => {
                self.task = Some(task.clone());
                self.planner.clone_from(model);
            }
            Event::ModeChanged { mode, .. } => {
                if let Some(t) = &mut self.task {
                    t.mode = *mode;
                }
            }
            Event::Message { message } => self.messages.push(message.clone()),
            Event::Compacted { replaced, summary } => {
                crate::agent::context::apply_compaction(&mut self.messages, *replaced, summary)
            }
            Event::PlanUpdated { plan } => {
                self.plan = plan.clone();
                self.planned = true;
            }
            Event::StepBegin { step: s, .. } => {
                *step = *s;
                self.set_status(*s, StepStatus::InProgress);
            }
            Event::StepEnd { step: s, status, .. } => self.set_status(*s, *status),
            Event::StepApproved {
                step: s,
                by,
                effects_hash,
            } => self.approvals.push(StepApprovalRecord {
                step: *s,
                by: by.clone(),
                at: at(),
                effects_hash: effects_hash.clone(),
            }),
            Event::AwaitingApproval {
                approval,
                step: s,
                kind,
                title,
                details,
                deletions,
            } => {
                let question = QuestionRecord {
                    approval: approval.clone(),
                    step: *s,
                    kind: kind.clone(),
                    title: title.clone(),
                    deletions: *deletions,
                    asked: at(),
                    answer: None,
                };
                let (moves, skipped) = match (kind.as_str(), &self.proposed) {
                    ("changes", Some((call, changes))) => {
                        let output = self
                            .calls
                            .iter()
                            .rev()
                            .find(|c| c.id == *call)
                            .and_then(|c| match &c.outcome {
                                Some(CallOutcome::Ok { output }) => Some(&output.json),
                                _ => None,
                            });
                        move_rows(changes, output)
                    }
                    _ => (Vec::new(), Vec::new()),
                };
                self.open_questions.push(OpenQuestion {
                    question: question.clone(),
                    details: details.clone(),
                    moves,
                    skipped,
                });
                self.questions.push(question);
            }
            Event::ApprovalAnswered { approval, approved, by } => {
                self.open_questions.retain(|q| q.question.approval != *approval);
                if let Some(q) = self.questions.iter_mut().find(|q| q.approval == *approval) {
                    q.answer = Some(AnswerRecord {
                        approved: *approved,
                        by: by.clone(),
                        at: at(),
                    });
                }
            }
            Event::ModelTurnBegin { turn } => self.turn = *turn,
            Event::ModelTurnEnd { error, .. } => self.model_failed = error.is_some(),
            begin @ Event::ToolCallBegin { .. } => {
                self.progress = None;
                if let Some(c) = begin.tool_call() {
                    self.calls.push(CallRecord {
                        id: c.id.0,
                        tool: c.tool,
                        operation: c.operation,
                        args: c.args,
                        step: *step,
                        at: at(),
                        outcome: None,
                        elapsed_ms: 0,
                    });
                }
            }
            Event::ToolCallEnd {
                call,
                outcome,
                elapsed_ms,
            } => {
                self.progress = None;
                if let Some(c) = self.calls.iter_mut().rev().find(|c| c.id == call.0) {
                    c.outcome = Some(outcome.clone());
                    c.elapsed_ms = *elapsed_ms;
                }
            }
            Event::Blocked { step: s, reason } => self.blocked.push(Noted {
                step: *s,
                at: at(),
                reason: reason.clone(),
            }),
            Event::ConnectorToolQuarantined {
                step: s,
                connector,
                tool,
                change,
            } => self.held_back.push(Noted {
                step: *s,
                at: at(),
                reason: format!("the tool {tool} of the connector {connector}: {change}"),
            }),
            Event::ToolProgress {
                done, total, message, ..
            } => {
                self.progress = Some(ProgressRecord {
                    done: *done,
                    total: *total,
                    message: message.clone(),
                })
            }
            Event::ChangesProposed { call, changes, .. } => self.proposed = Some((call.0.clone(), changes.clone())),
            Event::ChangesApplied { changeset, by, count } => self.changes_applied.push(ChangesetNote {
                changeset: changeset.clone(),
                at: at(),
                text: by.clone(),
                count: *count,
            }),
            Event::ChangesRefused { changeset, reason } => self.changes_refused.push(ChangesetNote {
                changeset: changeset.clone(),
                at: at(),
                text: reason.clone(),
                count: 0,
            }),
            Event::Undone {
                changesets,
                restored,
                forced,
            } => self.undone.push(UndoRecord {
                at: at(),
                changesets: changesets.clone(),
                restored: *restored,
                forced: *forced,
            }),
            Event::SubAgentBegin {
                step: s,
                child,
                outcome,
            } => self.children.push(ChildRecord {
                run: child.0.clone(),
                step: *s,
                outcome: outcome.clone(),
            }),
            Event::SubAgentEnd { child, status, summary } => self.sub_agents.push(SubAgentRecord {
                run: child.0.clone(),
                status: status.as_str().into(),
                summary: summary.clone(),
            }),
            Event::RunEnd { status, summary, .. } => {
                self.ended = Some((*status, summary.clone()));
                self.declined = *status == RunStatus::Failed && !self.planned && !self.model_failed;
                self.open_questions.clear();
                self.progress = None;
            }
            Event::Resumed { .. } => {
                self.ended = None;
                self.declined = false;
                self.open_questions.clear();
                self.progress = None;
            }
            _ => {}
        }
    }

    fn set_status(&mut self, step: StepNo, status: StepStatus) {
        if let Some(s) = self.plan.step_mut(step) {
            s.status = status;
        }
    }

    /// Who approved each step and for which version of it: the
    /// latest approval of each.
    pub fn approved_steps(&self) -> std::collections::HashMap<StepNo, (String, String)> {
        self.approvals
            .iter()
            .map(|a| (a.step, (a.effects_hash.clone(), a.by.clone())))
            .collect()
    }

    /// Changesets applied, by id: who approved each and when.
    pub fn applied_by_changeset(&self) -> BTreeMap<&str, &ChangesetNote> {
        self.changes_applied.iter().map(|c| (c.changeset.as_str(), c)).collect()
    }
}

/// The renames and moves among `changes` as rows, each with why, from the
/// proposing call's output where it says (`proposals[]` of `from`, `to`,
/// `date_source`; `moves[]` of `file`, `folder`, `why`), and what the call
/// skipped (`skipped[]` of `name` or `file`, and `reason`).
fn move_rows(changes: &[deskhand_types::FileChange], output: Option<&Value>) -> (Vec<MoveRow>, Vec<SkippedRow>) {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let list = |key: &str| {
        output
            .and_then(|o| o.get(key))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (proposals, sorted) = (list("proposals"), list("moves"));
    let name = |p: &std::path::Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let rows = changes
        .iter()
        .filter(|c| c.kind.is_move())
        .filter_map(|c| {
            let target = c.target.as_deref()?;
            let folder = c.path.parent()?;
            let before = name(&c.path);
            let after = target
                .strip_prefix(folder)
                .map_or_else(|_| target.display().to_string(), |p| p.display().to_string());
            let source = proposals
                .iter()
                .find(|p| text(p, "from").as_deref() == Some(&before) && text(p, "to").as_deref() == Some(&after))
                .and_then(|p| text(p, "date_source"));
            let why = match source.as_deref() {
                Some("name") => Some("the date in its name".to_owned()),
                Some("name-month") => Some("the month in its name (the 1st is used)".to_owned()),
                Some("modified") => Some("its modification time (UTC), not a date it holds".to_owned()),
                Some(other) => Some(other.to_owned()),
                None => sorted
                    .iter()
                    .find(|m| text(m, "file").as_deref() == Some(&before))
                    .and_then(|m| text(m, "why")),
            };
            Some(MoveRow {
                folder: folder.display().to_string(),
                before,
                after,
                why,
                flagged: source.as_deref() == Some("modified"),
            })
        })
        .collect();
    let skipped = list("skipped")
        .iter()
        .filter_map(|s| {
            Some(SkippedRow {
                name: text(s, "name").or_else(|| text(s, "file"))?,
                reason: text(s, "reason").unwrap_or_default(),
            })
        })
        .collect();
    (rows, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(events: Vec<Event>) -> Vec<EventRow> {
        (1i64..)
            .zip(events)
            .map(|(seq, event)| EventRow {
                seq,
                at: format!("t{seq}"),
                event,
            })
            .collect()
    }

    fn asked(approval: &str) -> Event {
        Event::AwaitingApproval {
            approval: approval.into(),
            step: StepNo(1),
            kind: "step".into(),
            title: "Read the notes".into(),
            details: "reads: notes".into(),
            deletions: 0,
        }
    }

    fn open(view: &RunView) -> Vec<&str> {
        view.open_questions
            .iter()
            .map(|q| q.question.approval.as_str())
            .collect()
    }

    #[test]
    fn a_changes_question_shows_each_rename_with_where_its_date_came_from_and_what_was_skipped() {
        let call = deskhand_types::CallId("c1".into());
        let rename = |from: &str, to: &str| deskhand_types::FileChange {
            kind: deskhand_types::ChangeKind::Rename,
            path: format!("/ws/scans/{from}").into(),
            target: Some(format!("/ws/scans/{to}").into()),
            before: None,
            after: None,
            size: 0,
            new_folders: Vec::new(),
        };
        let output = deskhand_types::ToolOutput {
            json: serde_json::json!({
                "proposals": [
                    {"from": "scan 14.03.2026.pdf", "to": "2026-03-14 scan.pdf", "date_source": "name"},
                    {"from": "photo.jpg", "to": "2026-12-04 photo.jpg", "date_source": "modified"}
                ],
                "skipped": [{"name": "notes 03-04-2026.txt", "reason": "03-04-2026 is ambiguous"}]
            }),
            text: String::new(),
            changes: Vec::new(),
        };
        let view = RunView::fold(&rows(vec![
            Event::ToolCallBegin {
                call: call.clone(),
                tool: "rename-by-date".into(),
                operation: "propose".into(),
                args: Value::Null,
            },
            Event::ToolCallEnd {
                call: call.clone(),
                outcome: CallOutcome::Ok { output },
                elapsed_ms: 1,
            },
            Event::ChangesProposed {
                step: StepNo(1),
                call,
                changeset: "cs".into(),
                changes: vec![
                    rename("scan 14.03.2026.pdf", "2026-03-14 scan.pdf"),
                    rename("photo.jpg", "2026-12-04 photo.jpg"),
                ],
            },
            Event::AwaitingApproval {
                approval: "a".into(),
                step: StepNo(1),
                kind: "changes".into(),
                title: "Rename 2 files".into(),
                details: String::new(),
                deletions: 0,
            },
        ]));
        let q = &view.open_questions[0];
        let shown: Vec<(&str, &str, Option<&str>, bool)> = q
            .moves
            .iter()
            .map(|m| (m.before.as_str(), m.after.as_str(), m.why.as_deref(), m.flagged))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "scan 14.03.2026.pdf",
                    "2026-03-14 scan.pdf",
                    Some("the date in its name"),
                    false
                ),
                (
                    "photo.jpg",
                    "2026-12-04 photo.jpg",
                    Some("its modification time (UTC), not a date it holds"),
                    true
                ),
            ]
        );
        assert_eq!(q.moves[0].folder, "/ws/scans");
        assert_eq!(q.skipped[0].name, "notes 03-04-2026.txt");
    }

    #[test]
    fn a_question_is_open_until_answered_and_never_across_a_resume_or_after_the_end() {
        let run = RunId("r".into());
        let answered = Event::ApprovalAnswered {
            approval: "a".into(),
            approved: true,
            by: "the person".into(),
        };
        let view = RunView::fold(&rows(vec![asked("a"), asked("b"), answered]));
        assert_eq!(open(&view), ["b"]);
        assert_eq!(view.open_questions[0].details, "reads: notes");

        let resumed = RunView::fold(&rows(vec![asked("a"), Event::Resumed { run: run.clone() }, asked("c")]));
        assert_eq!(open(&resumed), ["c"]);
        assert_eq!(resumed.questions.len(), 2, "every question asked is kept");

        let ended = RunView::fold(&rows(vec![
            asked("a"),
            Event::RunEnd {
                run,
                status: RunStatus::Stopped,
                summary: String::new(),
            },
        ]));
        assert!(open(&ended).is_empty());
    }
}
