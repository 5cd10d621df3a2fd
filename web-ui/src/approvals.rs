//! Approvals asked in the browser: each request gets a one-time id, is
//! journaled (so a reload shows the card again), waits for the person's
//! answer, and expires unanswered after [`EXPIRY`]. An id answers once.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deskhand_runtime::agent::{Approval, ChangesApproval, Gate, StepApproval};
use deskhand_types::{Event, RunId};

use crate::App;

pub const EXPIRY: Duration = Duration::from_secs(30 * 60);

struct Pending {
    run: RunId,
    expires: Instant,
    answer: mpsc::Sender<Approval>,
}

#[derive(Default)]
pub struct Approvals {
    pending: Mutex<HashMap<String, Pending>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum AnswerError {
    /// Never asked, or already answered (an answer is used once).
    Unknown,
    Expired,
}

impl Approvals {
    /// Answers request `id`; the id is spent whatever the answer.
    pub fn answer(&self, id: &str, approval: Approval) -> Result<RunId, AnswerError> {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .ok_or(AnswerError::Unknown)?;
        if Instant::now() > pending.expires {
            return Err(AnswerError::Expired);
        }
        let _ = pending.answer.send(approval);
        Ok(pending.run)
    }

    /// Refuses everything `run` waits for (the person stopped it).
    pub fn refuse_run(&self, run: &RunId, reason: &str) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let ids: Vec<String> = pending
            .iter()
            .filter(|(_, p)| p.run == *run)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(p) = pending.remove(&id) {
                let _ = p.answer.send(Approval::Rejected { reason: reason.into() });
            }
        }
    }
}

/// Asks the person in the browser what the approval policy
/// (`deskhand_runtime::gate::assess`) leaves to them: a card that waits for
/// their click.
pub struct UiGate {
    pub(crate) app: Arc<App>,
}

impl UiGate {
    fn ask(&self, run: &RunId, step: usize, kind: &str, title: &str, details: String, deletions: usize) -> Approval {
        let id = crate::random_hex(12);
        let (tx, rx) = mpsc::channel();
        self.app
            .approvals
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                id.clone(),
                Pending {
                    run: run.clone(),
                    expires: Instant::now() + EXPIRY,
                    answer: tx,
                },
            );
        let journal = self.app.workspace.journal();
        let _ = journal.append(
            run,
            &Event::AwaitingApproval {
                approval: id.clone(),
                step,
                kind: kind.into(),
                title: title.into(),
                details,
                deletions,
            },
        );
        let answer = rx.recv_timeout(EXPIRY).unwrap_or_else(|_| {
            self.app
                .approvals
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            Approval::Rejected {
                reason: format!("nobody answered within {} minutes", EXPIRY.as_secs() / 60),
            }
        });
        let (approved, by) = match &answer {
            Approval::Approved { by } => (true, by.clone()),
            Approval::Rejected { reason } => (false, reason.clone()),
        };
        let _ = journal.append(
            run,
            &Event::ApprovalAnswered {
                approval: id,
                approved,
                by,
            },
        );
        answer
    }
}

impl Gate for UiGate {
    fn approve_step(&self, req: &StepApproval<'_>) -> Approval {
        let e = &req.plan_step.effects;
        let list = |v: &[std::path::PathBuf]| {
            if v.is_empty() {
                "nothing".to_owned()
            } else {
                v.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            }
        };
        let mut details = format!("reads: {}\nwrites: {}", list(&e.reads), list(&e.writes));
        if !e.network.is_empty() {
            details.push_str(&format!("\nnetwork: {}", e.network.join(", ")));
        }
        self.ask(req.run, req.step, "step", &req.plan_step.title, details, 0)
    }

    fn approve_changes(&self, req: &ChangesApproval<'_>) -> Approval {
        self.ask(
            req.run,
            req.step,
            "changes",
            &format!("Step {} proposes changes to your folders", req.step),
            req.description.to_owned(),
            req.deletions,
        )
    }
}
