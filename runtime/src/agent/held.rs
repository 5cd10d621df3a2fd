//! An unattended run's stops for the person. A run under an envelope
//! (`launch::Launch::envelope`) that needs what the envelope does not cover
//! (the gate recorded it in [`crate::envelope::Unattended`]: a step, a
//! deletion; or a grant, code the model writes, a question) does not do it:
//! nothing more runs this turn, the run ends `NeedsInput` saying what it
//! needed, and the person is notified. A call held after it was journaled
//! ends `Stopped` with [`WAITING`], so `deskhand resume` runs it again,
//! attended; one held before is not journaled at all and runs on resume too.

use super::*;

/// How a call that waits for the person ends in the journal: resume runs it again.
pub(super) const WAITING: &str = "waiting for the person: ";

/// The journaled reason of a call that waits for the person (why is the run's stop, told once).
pub(super) fn waiting() -> String {
    format!("{WAITING}it runs when they go on with the run")
}

impl Agent<'_> {
    /// Stops the run for the person over `what` (in their words): a Blocked
    /// event now, and the run ends `NeedsInput` after this turn.
    pub(super) fn hold(&self, st: &mut RunState, what: &str) {
        if st.held.is_some() {
            return;
        }
        let step = st.plan.current_step().unwrap_or_default();
        self.emit(
            &st.run,
            Event::Blocked {
                step,
                reason: format!("stopped for you: {what}"),
            },
        );
        let top = st.run.0.split('.').next().unwrap_or(&st.run.0).to_owned();
        // A sub-agent's stop is told by its parent, which says this.
        let question = if st.ceiling.is_some() {
            what.to_owned()
        } else {
            format!(
                "This run had no one to ask, and what was approved for its schedule does not cover this: {what}. \
                 Nothing was done about it. `deskhand resume {top}` goes on from here with you."
            )
        };
        st.held = Some(question.clone());
        st.stop = Some((RunStatus::NeedsInput, question));
    }

    /// Takes into the run what the unattended gate held for it, if
    /// anything. True if the run is held.
    pub(super) fn check_held(&self, st: &mut RunState) -> bool {
        if let Some(u) = self.gate.unattended()
            && let Some(what) = u.take_held(&st.run)
        {
            self.hold(st, &what);
        }
        st.held.is_some()
    }

    /// Holds the run if `name` runs code the model writes and the envelope
    /// does not name it. True if held.
    pub(super) fn hold_unapproved_tool(&self, st: &mut RunState, step: StepNo, name: &str) -> bool {
        let Some(u) = self.gate.unattended() else { return false };
        let key = crate::envelope::tool_key(name);
        if u.envelope().allows_tool(&key) {
            return false;
        }
        self.hold(
            st,
            &format!(
                "step {step} would run {key}, which runs code the model wrote, and the schedule did not approve it"
            ),
        );
        true
    }

    /// For an unattended run: holds it if the grants go beyond the envelope's.
    pub(super) fn hold_wider_grants(&self, st: &mut RunState) {
        if let Some(u) = self.gate.unattended()
            && let Err(why) = u
                .envelope()
                .covers_grants(&st.task.grants, &|p| self.resolve_declared(p))
        {
            self.hold(st, &why);
        }
    }

    /// Tells the person that a top-level unattended run stopped for them,
    /// and journals how.
    pub(super) fn notify_held(&self, st: &RunState, question: &str) {
        let Some(u) = self.gate.unattended() else { return };
        let sent = u.notify(&crate::envelope::Notification {
            run: st.run.clone(),
            title: "deskhand: a scheduled run needs you".into(),
            body: question.to_owned(),
        });
        let message = match sent {
            Some(how) => format!("the person was notified on the desktop ({how})"),
            None => "no desktop notification on this machine; the run page and `deskhand runs` show the stop".into(),
        };
        self.emit(&st.run, Event::Notice { message });
    }

    /// A call held after it was journaled: its result is withdrawn (it
    /// waits for the person), so resume runs it again.
    pub(super) fn withdraw(&self, st: &RunState, call: &CallId) {
        let reason = waiting();
        self.emit(
            &st.run,
            Event::ToolCallEnd {
                call: call.clone(),
                outcome: CallOutcome::Stopped { reason },
                elapsed_ms: 0,
            },
        );
    }
}

/// Whether a journaled outcome is a call that waited for the person.
pub(super) fn waited(outcome: &CallOutcome) -> bool {
    matches!(outcome, CallOutcome::Stopped { reason } if reason.starts_with(WAITING))
}
