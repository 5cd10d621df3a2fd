//! The approval policy: one pure decision for every step and changeset,
//! whatever front end asks the person.
//!
//! [`assess`] decides from the mode the person chose, what is asked and, for
//! an unattended run, the envelope the person approved beforehand: approve
//! (and say on whose authority), ask the person, or refuse. Front ends only
//! implement asking a person ([`crate::agent::Gate`]: the terminal prompt,
//! the browser's card); nothing a model, a tool or a file says reaches this.

use std::path::Path;

use deskhand_types::{ChangeKind, Event, FileChange, Mode, RunId, StepEffects, StepNo};

use crate::agent::{ActionApproval, Approval, ChangesApproval, Gate, StepApproval};
use crate::egress::SealedHosts;
use crate::journal::Journal;

/// What the policy decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Approved without asking; `by` names the authority ("act mode, chosen by the person").
    Approve { by: String },
    /// Only the person can answer.
    Ask,
    /// Refused without asking; `reason` is for the person and the model.
    Reject { reason: String },
}

/// What is to be approved.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    /// A step about to start. `hash` is its approval subject's hash (title
    /// and declared effects); `effects`, what it declared; `parent_approval`,
    /// for a sub-agent, who approved the parent step that bounds it.
    Step {
        hash: &'a str,
        effects: &'a StepEffects,
        parent_approval: Option<&'a str>,
        /// Set when the step would contact hosts the run has not contacted
        /// after it read private data (or while reading it): only the person
        /// may approve that, in every mode ([`crate::egress`]).
        sealed: Option<&'a SealedHosts>,
    },
    /// A changeset a call proposes during `step`, already within the step's
    /// declared writes. `step_approval`: who approved the running step.
    Changes {
        step: StepNo,
        changes: &'a [FileChange],
        output: &'a Path,
        step_approval: Option<&'a str>,
    },
    /// A call of a connector tool that writes (an action: `mail.send_message`)
    /// during `step`. `declared`: the step lists it in its actions;
    /// `destructive`: the tool says it destroys (each call asks, like a
    /// deletion); `always_allowed`: the person said "always allow" for it.
    Action {
        step: StepNo,
        action: &'a str,
        declared: bool,
        destructive: bool,
        always_allowed: bool,
    },
}

/// What the person approved for a run no one watches (a schedule): see
/// [`crate::envelope`]. Anything else stops the run for them.
pub use crate::envelope::Envelope;
use crate::envelope::Unattended;

/// Decides a step through [`assess`], asking the person through `gate` only
/// where the policy says to ask (journaled as a question and its answer).
/// An unattended run's gate is never asked: what its envelope does not
/// cover is held for the person ([`Unattended::hold`]) and refused here.
pub fn approve_step(
    gate: &dyn Gate,
    journal: &Journal,
    request: &StepApproval<'_>,
    hash: &str,
    parent_approval: Option<&str>,
) -> Approval {
    approve_step_with_egress(gate, journal, request, hash, parent_approval, None)
}

/// [`approve_step`] for a step of a run whose egress says what the person
/// must see: `sealed` (from [`crate::egress::Run::approval_needed`]) makes the
/// step the person's to approve, in act mode too, and the question names the
/// hosts and the private data read.
pub fn approve_step_with_egress(
    gate: &dyn Gate,
    journal: &Journal,
    request: &StepApproval<'_>,
    hash: &str,
    parent_approval: Option<&str>,
    sealed: Option<&SealedHosts>,
) -> Approval {
    let step = Request::Step {
        hash,
        effects: &request.plan_step.effects,
        parent_approval,
        sealed,
    };
    if let Some(u) = gate.unattended() {
        return held_unless_approved(
            u,
            request.run,
            assess(request.mode, &step, Some(u.envelope())),
            || match sealed {
                Some(s) => format!("step {}: {}", request.step, s.describe()),
                None => u.envelope().step_not_covered(request.step, request.plan_step),
            },
        );
    }
    decided(assess(request.mode, &step, None), || {
        let e = &request.plan_step.effects;
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
        if !e.actions.is_empty() {
            details.push_str(&format!("\nactions outside the workspace: {}", e.actions.join(", ")));
        }
        if let Some(s) = sealed {
            details.push_str(&format!("\nwhy you are asked: {}", s.describe()));
        }
        let question = Question {
            step: request.step,
            kind: "step",
            title: request.plan_step.title.clone(),
            details,
            deletions: 0,
        };
        asked(gate, journal, request.run, question, |id| {
            gate.approve_step(id, request)
        })
    })
}

/// Decides a changeset through [`assess`], asking the person through `gate`
/// only where the policy says to ask (journaled as a question and its answer).
/// An unattended run's gate is never asked (see [`approve_step`]).
pub fn approve_changes(
    gate: &dyn Gate,
    journal: &Journal,
    request: &ChangesApproval<'_>,
    changes: &[FileChange],
    output: &Path,
    step_approval: Option<&str>,
) -> Approval {
    let what = Request::Changes {
        step: request.step,
        changes,
        output,
        step_approval,
    };
    if let Some(u) = gate.unattended() {
        return held_unless_approved(u, request.run, assess(request.mode, &what, Some(u.envelope())), || {
            let deleted: Vec<String> = changes
                .iter()
                .filter(|c| c.kind == ChangeKind::Delete)
                .map(|c| c.path.display().to_string())
                .collect();
            match deleted.len() {
                0 => format!(
                    "step {} proposes changes the schedule's plan does not cover",
                    request.step
                ),
                n => format!(
                    "step {} would delete {n} file(s) ({}), and deletions always wait for the person",
                    request.step,
                    deleted.join(", ")
                ),
            }
        });
    }
    decided(assess(request.mode, &what, None), || {
        let question = Question {
            step: request.step,
            kind: "changes",
            title: format!("Step {} proposes changes to your folders", request.step),
            details: request.description.to_owned(),
            deletions: request.deletions,
        };
        asked(gate, journal, request.run, question, |id| {
            gate.approve_changes(id, request)
        })
    })
}

/// Decides a connector tool's call that writes (an action) through
/// [`assess`], asking the person through `gate` only where the policy says
/// to ask, with the call's arguments. An unattended run's gate is never asked.
pub fn approve_action(
    gate: &dyn Gate,
    journal: &Journal,
    request: &ActionApproval<'_>,
    what: &Request<'_>,
) -> Approval {
    let action = crate::connectors::action(request.connector, request.tool);
    if let Some(u) = gate.unattended() {
        return held_unless_approved(u, request.run, assess(request.mode, what, Some(u.envelope())), || {
            if request.destructive {
                format!(
                    "step {} would use {action}, which says it destroys data, and such calls always wait for the \
                     person",
                    request.step
                )
            } else {
                format!(
                    "step {} would use {action}, which the schedule's approved plan does not let its runs do \
                     unattended",
                    request.step
                )
            }
        });
    }
    decided(assess(request.mode, what, None), || {
        let arguments = serde_json::to_string_pretty(request.arguments).unwrap_or_default();
        let question = Question {
            step: request.step,
            kind: "action",
            title: format!("Step {} wants to use {action}", request.step),
            details: format!("{}\narguments:\n{arguments}", request.description),
            deletions: usize::from(request.destructive),
        };
        asked(gate, journal, request.run, question, |id| {
            gate.approve_action(id, request)
        })
    })
}

/// Why act mode alone never runs a destructive connector tool.
pub const DESTRUCTIVE_ALWAYS_ASKS: &str =
    "this connector tool says it destroys data, and such calls always need the person's own approval, in every mode";

/// An unattended run's answer: approved as the policy says, or held for the
/// person with `what` it needed, in their words. Never asks.
fn held_unless_approved(u: &Unattended, run: &RunId, decision: Decision, what: impl FnOnce() -> String) -> Approval {
    match decision {
        Decision::Approve { by } => Approval::Approved { by },
        Decision::Ask | Decision::Reject { .. } => {
            let what = what();
            u.hold(run, what.clone());
            Approval::Rejected {
                reason: format!("{what}; the run stops here for the person"),
            }
        }
    }
}

fn decided(decision: Decision, ask: impl FnOnce() -> Approval) -> Approval {
    match decision {
        Decision::Approve { by } => Approval::Approved { by },
        Decision::Reject { reason } => Approval::Rejected { reason },
        Decision::Ask => ask(),
    }
}

/// What the person is asked, as the journal records it for every front end.
struct Question {
    step: StepNo,
    kind: &'static str,
    title: String,
    details: String,
    deletions: usize,
}

/// Journals the question, asks it under a fresh approval id, and journals the
/// answer. A question or answer the journal cannot record is a refusal: an
/// approval no ledger shows is not given.
fn asked(gate: &dyn Gate, journal: &Journal, run: &RunId, q: Question, ask: impl FnOnce(&str) -> Approval) -> Approval {
    let approval = crate::ids::approval_id();
    gate.will_ask(&approval, run);
    let question = Event::AwaitingApproval {
        approval: approval.clone(),
        step: q.step,
        kind: q.kind.into(),
        title: q.title,
        details: q.details,
        deletions: q.deletions,
    };
    if let Err(e) = journal.append(run, &question) {
        gate.gave_up(&approval);
        return Approval::Rejected {
            reason: format!("the question could not be recorded, so it was not asked: {e}"),
        };
    }
    let answer = ask(&approval);
    let (approved, by) = match &answer {
        Approval::Approved { by } => (true, by.clone()),
        Approval::Rejected { reason } => (false, reason.clone()),
    };
    match journal.append(run, &Event::ApprovalAnswered { approval, approved, by }) {
        Ok(_) => answer,
        Err(e) => Approval::Rejected {
            reason: format!("the answer could not be recorded, so it does not count: {e}"),
        },
    }
}

/// Why act mode alone never deletes.
pub const DELETION_ALWAYS_ASKS: &str =
    "this changeset deletes files, and deletions always need the person's own approval, in every mode";

const ACT_MODE: &str = "act mode, chosen by the person";

/// Who approves a step that only reads what deskhand itself delivered.
const READS_OUTPUT: &str = "no one needed to: the step only reads output/";

/// True if a step declares reading output/ (or files in it) and nothing
/// else: no other folder, no writes, no network. Such a step (checking a
/// deliverable, say) shows the person nothing of theirs and changes nothing.
fn only_reads_output(effects: &StepEffects) -> bool {
    let in_output = |p: &Path| {
        let mut parts = p.components().filter(|c| *c != std::path::Component::CurDir);
        parts.next() == Some(std::path::Component::Normal("output".as_ref()))
            && parts.all(|c| matches!(c, std::path::Component::Normal(_)))
    };
    !effects.reads.is_empty()
        && effects.reads.iter().all(|p| in_output(p))
        && effects.writes.is_empty()
        && effects.network.is_empty()
        && effects.actions.is_empty()
}

/// The decision for `request` in `mode`, with `envelope` for an unattended run.
pub fn assess(mode: Mode, request: &Request<'_>, envelope: Option<&Envelope>) -> Decision {
    match *request {
        Request::Step {
            hash,
            effects,
            parent_approval,
            sealed,
        } => {
            // Sending what the run has read to a host it has not contacted is
            // the person's own call: no mode, parent step or envelope covers it.
            if let Some(s) = sealed {
                return match envelope {
                    Some(_) => Decision::Reject {
                        reason: format!("{}; the run stops here for the person", s.describe()),
                    },
                    None => Decision::Ask,
                };
            }
            // A sub-agent's steps lie within its parent's step (the plan check
            // enforces it), so the parent's approval covers them.
            if let Some(by) = parent_approval {
                return Decision::Approve {
                    by: format!("{by}, with the parent run's step"),
                };
            }
            match (envelope, mode) {
                (Some(envelope), _) if envelope.covers_step(hash) => Decision::Approve {
                    by: "the person, in the schedule's approved plan".into(),
                },
                (Some(_), _) => Decision::Reject {
                    reason: "this step is not in the plan the person approved for the schedule; the run stops here \
                             for them"
                        .into(),
                },
                (None, Mode::Act) => Decision::Approve { by: ACT_MODE.into() },
                (None, Mode::Ask) if only_reads_output(effects) => Decision::Approve {
                    by: READS_OUTPUT.into(),
                },
                (None, Mode::Ask) => Decision::Ask,
            }
        }
        Request::Changes {
            step,
            changes,
            output,
            step_approval,
        } => {
            if changes.iter().any(|c| c.kind == ChangeKind::Delete) {
                return match envelope {
                    Some(_) => Decision::Reject {
                        reason: format!("{DELETION_ALWAYS_ASKS}; the run stops here for the person"),
                    },
                    None => Decision::Ask,
                };
            }
            // New files in output/ are what the approved step declared it writes.
            let only_new_output = changes
                .iter()
                .all(|c| c.kind == ChangeKind::Create && c.path.starts_with(output));
            match (step_approval, only_new_output, envelope, mode) {
                (Some(by), true, _, _) => Decision::Approve {
                    by: format!("{by}, with step {step}"),
                },
                (_, _, Some(_), _) => Decision::Approve {
                    by: "the person, in the schedule's approved plan".into(),
                },
                (_, _, None, Mode::Act) => Decision::Approve { by: ACT_MODE.into() },
                (_, _, None, Mode::Ask) => Decision::Ask,
            }
        }
        Request::Action {
            step,
            action,
            declared,
            destructive,
            always_allowed,
        } => {
            if !declared {
                return Decision::Reject {
                    reason: format!(
                        "step {step} did not declare the action {action}; a step lists what it does outside the \
                         workspace in its effects' actions"
                    ),
                };
            }
            match (envelope, destructive, always_allowed, mode) {
                (Some(e), false, _, _) if e.allows_action(action) => Decision::Approve {
                    by: "the person, in the schedule's approved plan".into(),
                },
                (Some(_), true, _, _) => Decision::Reject {
                    reason: format!("{DESTRUCTIVE_ALWAYS_ASKS}; the run stops here for the person"),
                },
                (Some(_), false, _, _) => Decision::Reject {
                    reason: format!(
                        "{action} is not in the plan the person approved for the schedule; the run stops here for them"
                    ),
                },
                (None, true, _, _) => Decision::Ask,
                (None, false, true, _) => Decision::Approve {
                    by: format!("the person, who always allows {action}"),
                },
                (None, false, false, Mode::Act) => Decision::Approve { by: ACT_MODE.into() },
                (None, false, false, Mode::Ask) => Decision::Ask,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn change(kind: ChangeKind, path: &str) -> FileChange {
        FileChange {
            kind,
            path: PathBuf::from(path),
            target: None,
            before: None,
            after: None,
            size: 1,
            new_folders: Vec::new(),
        }
    }

    fn changes(list: &[FileChange], approved: Option<&str>) -> Request<'static> {
        let list: &'static [FileChange] = Box::leak(list.to_vec().into_boxed_slice());
        Request::Changes {
            step: StepNo(2),
            changes: list,
            output: Path::new("/ws/output"),
            step_approval: approved.map(|s| &*Box::leak(s.to_owned().into_boxed_str())),
        }
    }

    fn effects(reads: &[&str], writes: &[&str]) -> StepEffects {
        StepEffects {
            reads: reads.iter().map(PathBuf::from).collect(),
            writes: writes.iter().map(PathBuf::from).collect(),
            network: Vec::new(),
            actions: Vec::new(),
        }
    }

    fn approve(by: &str) -> Decision {
        Decision::Approve { by: by.into() }
    }

    #[test]
    fn the_policy_table() {
        let reads_notes = effects(&["projects/notes"], &["output"]);
        let step = Request::Step {
            hash: "h1",
            effects: &reads_notes,
            parent_approval: None,
            sealed: None,
        };
        let child = Request::Step {
            hash: "h9",
            effects: &reads_notes,
            parent_approval: Some("the person, at the terminal"),
            sealed: None,
        };
        let checks = |e| Request::Step {
            hash: "h3",
            effects: Box::leak(Box::new(e)),
            parent_approval: None,
            sealed: None,
        };
        let mut online = effects(&["output"], &[]);
        online.network.push("example.com".into());
        let envelope = Envelope {
            steps: vec![crate::envelope::EnvelopeStep {
                title: "Read the notes".into(),
                effects: reads_notes.clone(),
                hash: "h1".into(),
            }],
            ..Envelope::default()
        };
        let new_output = [change(ChangeKind::Create, "/ws/output/report.xlsx")];
        let new_elsewhere = [change(ChangeKind::Create, "/home/p/notes/new.txt")];
        let overwrite = [change(ChangeKind::Overwrite, "/ws/output/report.xlsx")];
        let rename = [change(ChangeKind::Rename, "/home/p/scans/a.pdf")];
        let delete = [
            change(ChangeKind::Create, "/ws/output/x.csv"),
            change(ChangeKind::Delete, "/ws/output/old.csv"),
        ];
        let person = Some("the person, at the terminal");
        let secret = SealedHosts {
            hosts: vec!["upload.example:443".into()],
            private: "projects/notes/salaries.csv".into(),
        };
        let sealed = |parent_approval, hash| Request::Step {
            hash,
            effects: &reads_notes,
            parent_approval,
            sealed: Some(&secret),
        };
        let cases: Vec<(&str, Mode, Request<'_>, Option<&Envelope>, Decision)> = vec![
            (
                "a step contacting a new host after a private read asks, in act mode too",
                Mode::Act,
                sealed(None, "h1"),
                None,
                Decision::Ask,
            ),
            (
                "nor does a parent's approval cover it",
                Mode::Ask,
                sealed(person, "h9"),
                None,
                Decision::Ask,
            ),
            (
                "an unattended run stops for the person there, even at a step of its envelope",
                Mode::Act,
                sealed(None, "h1"),
                Some(&envelope),
                Decision::Reject {
                    reason: format!("{}; the run stops here for the person", secret.describe()),
                },
            ),
            ("ask mode asks for a step", Mode::Ask, step, None, Decision::Ask),
            ("act mode approves a step", Mode::Act, step, None, approve(ACT_MODE)),
            (
                "a sub-agent's step comes with its parent's, in ask mode too",
                Mode::Ask,
                child,
                None,
                approve("the person, at the terminal, with the parent run's step"),
            ),
            (
                "an unattended run runs an approved step",
                Mode::Act,
                step,
                Some(&envelope),
                approve("the person, in the schedule's approved plan"),
            ),
            (
                "an unattended run stops at a step outside its envelope",
                Mode::Act,
                Request::Step {
                    hash: "h2",
                    effects: &reads_notes,
                    parent_approval: None,
                    sealed: None,
                },
                Some(&envelope),
                Decision::Reject {
                    reason: "this step is not in the plan the person approved for the schedule; the run stops \
                             here for them"
                        .into(),
                },
            ),
            (
                "a step that only reads output/ needs no approval, in ask mode",
                Mode::Ask,
                checks(effects(&["output"], &[])),
                None,
                approve(READS_OUTPUT),
            ),
            (
                "nor one that reads files in output/",
                Mode::Ask,
                checks(effects(&["./output/expenses.xlsx", "output/summary.pdf"], &[])),
                None,
                approve(READS_OUTPUT),
            ),
            (
                "a step that reads output/ and a folder of the person's asks",
                Mode::Ask,
                checks(effects(&["output", "projects/notes"], &[])),
                None,
                Decision::Ask,
            ),
            (
                "a step that reads output/ and writes there asks",
                Mode::Ask,
                checks(effects(&["output"], &["output"])),
                None,
                Decision::Ask,
            ),
            (
                "a step that reads output/ over the network asks",
                Mode::Ask,
                checks(online.clone()),
                None,
                Decision::Ask,
            ),
            (
                "a step that reads output/ and acts through a connector asks, in ask mode",
                Mode::Ask,
                checks(StepEffects {
                    actions: vec!["mail.send_message".into()],
                    ..effects(&["output"], &[])
                }),
                None,
                Decision::Ask,
            ),
            (
                "a step that climbs out of output/ asks",
                Mode::Ask,
                checks(effects(&["output/../projects"], &[])),
                None,
                Decision::Ask,
            ),
            (
                "a step that declares nothing asks",
                Mode::Ask,
                checks(effects(&[], &[])),
                None,
                Decision::Ask,
            ),
            (
                "an unattended run stops at a step that only reads output/ outside its envelope",
                Mode::Act,
                checks(effects(&["output"], &[])),
                Some(&envelope),
                Decision::Reject {
                    reason: "this step is not in the plan the person approved for the schedule; the run stops \
                             here for them"
                        .into(),
                },
            ),
            (
                "new files in output/ come with the approved step, in ask mode",
                Mode::Ask,
                changes(&new_output, person),
                None,
                approve("the person, at the terminal, with step 2"),
            ),
            (
                "a new file outside output/ asks in ask mode",
                Mode::Ask,
                changes(&new_elsewhere, person),
                None,
                Decision::Ask,
            ),
            (
                "an overwrite asks in ask mode",
                Mode::Ask,
                changes(&overwrite, person),
                None,
                Decision::Ask,
            ),
            (
                "an overwrite is approved in act mode",
                Mode::Act,
                changes(&overwrite, person),
                None,
                approve(ACT_MODE),
            ),
            (
                "a rename is approved in act mode",
                Mode::Act,
                changes(&rename, None),
                None,
                approve(ACT_MODE),
            ),
            (
                "a deletion asks in ask mode",
                Mode::Ask,
                changes(&delete, person),
                None,
                Decision::Ask,
            ),
            (
                "a deletion asks in act mode",
                Mode::Act,
                changes(&delete, person),
                None,
                Decision::Ask,
            ),
            (
                "a deletion stops an unattended run",
                Mode::Act,
                changes(&delete, person),
                Some(&envelope),
                Decision::Reject {
                    reason: format!("{DELETION_ALWAYS_ASKS}; the run stops here for the person"),
                },
            ),
            (
                "an unattended run's overwrite within its approved plan",
                Mode::Act,
                changes(&overwrite, person),
                Some(&envelope),
                approve("the person, in the schedule's approved plan"),
            ),
        ];
        for (name, mode, request, envelope, expected) in cases {
            assert_eq!(assess(mode, &request, envelope), expected, "{name}");
        }
    }

    #[test]
    fn the_policy_for_connector_actions() {
        let action = |declared, destructive, always_allowed| Request::Action {
            step: StepNo(1),
            action: "mail.send_message",
            declared,
            destructive,
            always_allowed,
        };
        let mut sends = effects(&[], &[]);
        sends.actions.push("mail.send_message".into());
        let envelope = Envelope {
            steps: vec![crate::envelope::EnvelopeStep {
                title: "Send the summary".into(),
                effects: sends,
                hash: "h1".into(),
            }],
            ..Envelope::default()
        };
        let other = Envelope::default();
        let schedule = approve("the person, in the schedule's approved plan");
        let cases: Vec<(&str, Mode, Request<'_>, Option<&Envelope>, Decision)> = vec![
            (
                "ask mode asks per call",
                Mode::Ask,
                action(true, false, false),
                None,
                Decision::Ask,
            ),
            (
                "act mode acts",
                Mode::Act,
                action(true, false, false),
                None,
                approve(ACT_MODE),
            ),
            (
                "always allow answers in ask mode",
                Mode::Ask,
                action(true, false, true),
                None,
                approve("the person, who always allows mail.send_message"),
            ),
            (
                "a destructive tool asks in act mode",
                Mode::Act,
                action(true, true, false),
                None,
                Decision::Ask,
            ),
            (
                "always allow does not cover a destructive tool",
                Mode::Ask,
                action(true, true, true),
                None,
                Decision::Ask,
            ),
            (
                "an unattended run takes an action its plan lists",
                Mode::Act,
                action(true, false, false),
                Some(&envelope),
                schedule,
            ),
        ];
        for (name, mode, request, envelope, expected) in cases {
            assert_eq!(assess(mode, &request, envelope), expected, "{name}");
        }
        let refused: Vec<(&str, Mode, Request<'_>, Option<&Envelope>)> = vec![
            (
                "an undeclared action, act mode",
                Mode::Act,
                action(false, false, true),
                None,
            ),
            (
                "an undeclared action, unattended",
                Mode::Act,
                action(false, false, false),
                Some(&envelope),
            ),
            (
                "an action the plan does not list, unattended",
                Mode::Act,
                action(true, false, false),
                Some(&other),
            ),
            (
                "a destructive action, unattended",
                Mode::Act,
                action(true, true, false),
                Some(&envelope),
            ),
        ];
        for (name, mode, request, envelope) in refused {
            assert!(
                matches!(assess(mode, &request, envelope), Decision::Reject { .. }),
                "{name}"
            );
        }
    }
}
