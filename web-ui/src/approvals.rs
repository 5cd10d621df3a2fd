//! Approvals asked in the browser. The runtime journals each question under
//! a one-time id (so a reload shows the card again) and its answer; here the
//! question waits for the person's click, and expires unanswered after
//! [`EXPIRY`]. An id answers once.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deskhand_runtime::agent::{Approval, ChangesApproval, Gate, StepApproval};
use deskhand_types::RunId;

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
    /// The waiting side of each pending question, until its gate call takes it.
    waiting: Mutex<HashMap<String, mpsc::Receiver<Approval>>>,
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
    /// Makes `approval` answerable before the question is journaled (and so
    /// shown): an answer can never arrive for an id not yet registered.
    fn register(&self, run: &RunId, approval: &str) {
        let (tx, rx) = mpsc::channel();
        let approvals = &self.app.approvals;
        approvals
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(approval.to_owned(), rx);
        approvals.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(
            approval.to_owned(),
            Pending {
                run: run.clone(),
                expires: Instant::now() + EXPIRY,
                answer: tx,
            },
        );
    }

    /// Waits for the person's click on the card the journaled question shows.
    fn ask(&self, run: &RunId, approval: &str) -> Approval {
        let taken = self
            .app
            .approvals
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(approval);
        let rx = match taken {
            Some(rx) => rx,
            None => {
                self.register(run, approval);
                match self
                    .app
                    .approvals
                    .waiting
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(approval)
                {
                    Some(rx) => rx,
                    None => {
                        return Approval::Rejected {
                            reason: "the question could not be put to the page".into(),
                        };
                    }
                }
            }
        };
        rx.recv_timeout(EXPIRY).unwrap_or_else(|_| {
            self.app
                .approvals
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(approval);
            Approval::Rejected {
                reason: format!("nobody answered within {} minutes", EXPIRY.as_secs() / 60),
            }
        })
    }
}

impl Gate for UiGate {
    fn will_ask(&self, approval: &str, run: &RunId) {
        self.register(run, approval);
    }

    fn gave_up(&self, approval: &str) {
        let approvals = &self.app.approvals;
        approvals
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(approval);
        approvals
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(approval);
    }

    fn approve_step(&self, approval: &str, req: &StepApproval<'_>) -> Approval {
        self.ask(req.run, approval)
    }

    fn approve_changes(&self, approval: &str, req: &ChangesApproval<'_>) -> Approval {
        self.ask(req.run, approval)
    }
}
