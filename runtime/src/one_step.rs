//! A run of one step that the person started themselves: `deskhand tool run`
//! and `deskhand shell`. It is recorded as a planned run is (`RunBegin`, a
//! one-step `PlanUpdated`, the step's approval, `StepBegin`, the call and its
//! changes through [`crate::pipeline`], `StepEnd`, `RunEnd`), so the ledger,
//! `deskhand show`, resume's fold and the page read it like any other run.
//! The agent drives its steps through the same journal writer and the same
//! policy ([`crate::gate::approve_step`]).
//!
//! Bookkeeping (the run's beginning, its plan, the step's approval and
//! start, the call's end) is journaled with the next event that must be
//! durable: the call's `ToolCallBegin` (and a call whose begin the journal
//! did not take does not run: [`crate::call::execute`]), the run's end, and
//! anything before the gate is asked. A tool run costs two commits besides
//! its changes.

use deskhand_types::{Event, Mode, Plan, PlanStep, RunId, RunStatus, StepNo, StepStatus, Task};
use sha2::Digest;

use crate::agent::{Approval, Gate, StepApproval};
use crate::error::{Error, Result};
use crate::workspace::Workspace;

/// Receives each event of the run as it is journaled.
pub type Observe<'a> = &'a (dyn Fn(&Event) + Sync);

/// A one-step run in progress; [`OneStepRun::finish`] ends it.
pub struct OneStepRun<'a> {
    ws: &'a Workspace,
    run: RunId,
    step: PlanStep,
    mode: Mode,
    observer: Option<Observe<'a>>,
    approved_by: Option<String>,
    /// Events not yet journaled: bookkeeping that waits for the next event
    /// that must be durable (see the module's doc).
    pending: std::sync::Mutex<Vec<Event>>,
}

impl std::fmt::Debug for OneStepRun<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneStepRun")
            .field("run", &self.run)
            .field("step", &self.step.title)
            .finish_non_exhaustive()
    }
}

impl<'a> OneStepRun<'a> {
    /// Starts the run with its plan of one (pending) step, journaled with
    /// its first durable event. `planner` says who made the plan ("native
    /// shell (bwrap)", "the person, who ran the tool").
    pub fn begin(
        ws: &'a Workspace,
        task: Task,
        planner: &str,
        step: PlanStep,
        observer: Option<Observe<'a>>,
    ) -> Result<Self> {
        let mode = task.mode;
        let run = crate::ids::run_id();
        let this = OneStepRun {
            ws,
            run: run.clone(),
            step: PlanStep {
                status: StepStatus::Pending,
                ..step
            },
            mode,
            observer,
            approved_by: None,
            pending: std::sync::Mutex::new(Vec::new()),
        };
        this.emit(Event::RunBegin {
            run,
            task,
            model: planner.into(),
            parent: None,
        });
        this.emit(Event::PlanUpdated {
            plan: Plan {
                revision: 1,
                steps: vec![this.step.clone()],
                reason: None,
            },
        });
        Ok(this)
    }

    pub fn run(&self) -> &RunId {
        &self.run
    }

    pub fn step(&self) -> &PlanStep {
        &self.step
    }

    /// Who let the step start, once it has.
    pub fn approved_by(&self) -> Option<&str> {
        self.approved_by.as_deref()
    }

    /// Journals `event`, with the bookkeeping before it, or keeps it for
    /// the next event that must be durable where it is bookkeeping (see the
    /// module's doc); shows it to the observer. A failed write is remembered
    /// and stops the run (see [`OneStepRun::lost`]).
    pub fn emit(&self, event: Event) {
        if let Some(obs) = self.observer {
            obs(&event);
        }
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bookkeeping = matches!(
            event,
            Event::RunBegin { .. }
                | Event::PlanUpdated { .. }
                | Event::StepApproved { .. }
                | Event::StepBegin { .. }
                | Event::ToolCallEnd { .. }
        );
        pending.push(event);
        if !bookkeeping {
            self.write(&mut pending);
        }
    }

    /// Journals what is pending in one transaction.
    fn flush(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.write(&mut pending);
    }

    fn write(&self, pending: &mut Vec<Event>) {
        if pending.is_empty() {
            return;
        }
        // A failed append must not lose the person's changes half-way; the
        // journal remembers it and the caller ends in an error saying so.
        let _ = self.ws.journal().append_all(&self.run, pending);
        pending.clear();
    }

    /// Asks the one approval policy whether the step may start (through
    /// `gate` where the policy leaves it to the person) and starts it.
    pub fn approve(&mut self, gate: &dyn Gate) -> Approval {
        // The gate journals its question after what came before it.
        self.flush();
        let hash = self.hash();
        let approval = crate::gate::approve_step(
            gate,
            self.ws.journal(),
            &StepApproval {
                run: &self.run,
                step: StepNo(1),
                plan_step: &self.step,
                mode: self.mode,
            },
            &hash,
            None,
        );
        if let Approval::Approved { by } = &approval {
            self.start(by.clone(), hash);
        }
        approval
    }

    /// Starts the step on the word of the person who asked for exactly this
    /// step (`deskhand tool run` names the tool, the operation and its files).
    pub fn approved_by_the_person(&mut self, by: &str) {
        let hash = self.hash();
        self.start(by.into(), hash);
    }

    fn hash(&self) -> String {
        hex::encode(sha2::Sha256::digest(self.step.approval_subject()))
    }

    fn start(&mut self, by: String, effects_hash: String) {
        self.step.status = StepStatus::InProgress;
        self.emit(Event::StepApproved {
            step: StepNo(1),
            by: by.clone(),
            effects_hash,
        });
        self.emit(Event::StepBegin {
            step: StepNo(1),
            title: self.step.title.clone(),
        });
        self.approved_by = Some(by);
    }

    /// Why the run must stop, if one of its events could not be journaled.
    pub fn lost(&self, what_now: &str) -> Option<Error> {
        self.flush();
        self.ws.journal().lost_event(&self.run, what_now)
    }

    /// Ends the step (failed if it never started) and the run, and writes the ledger when
    /// `ledger` (a failed ledger write does not fail a finished run: the
    /// journal holds the record). Errs if an event was lost along the way.
    pub fn finish(mut self, status: RunStatus, summary: String, ledger: bool, what_now: &str) -> Result<RunId> {
        if !self.step.status.is_finished() {
            self.step.status = if status == RunStatus::Succeeded {
                StepStatus::Done
            } else {
                StepStatus::Failed
            };
            self.emit(Event::StepEnd {
                step: StepNo(1),
                status: self.step.status,
                note: Some(summary.clone()),
            });
        }
        self.emit(Event::RunEnd {
            run: self.run.clone(),
            status,
            summary,
        });
        if ledger {
            let _ = crate::ledger::write(self.ws, &self.run);
        }
        match self.lost(what_now) {
            Some(lost) => Err(lost),
            None => Ok(self.run),
        }
    }
}
