//! Approvals asked in the browser. The runtime journals each question under
//! a one-time id (so a reload shows the card again) and its answer; here the
//! question waits for the person's click, and expires unanswered after
//! [`EXPIRY`]. An id answers once.
//!
//! An action (a connector tool that writes, or the browser submitting a
//! form) also gets an [`ActionCard`] kept beside its question while it
//! waits: which connector and tool, and the call's arguments as rows, so the
//! page shows what will be sent rather than a blob of JSON. "Always allow
//! this tool" is offered only where the runtime can remember it (a
//! connector's tool that does not say it destroys data) and is remembered
//! on the run's own thread through the request's `allow_always`.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deskhand_runtime::agent::{ActionApproval, Approval, ChangesApproval, Gate, StepApproval};
use deskhand_types::{RunId, StepNo};
use serde::Serialize;

use crate::App;

pub const EXPIRY: Duration = Duration::from_secs(30 * 60);

/// The person's answer to one question.
#[derive(Debug)]
pub struct Answer {
    pub approval: Approval,
    /// For an action: "always allow this tool" (only where the card offers it).
    pub always: bool,
}

struct Pending {
    run: RunId,
    expires: Instant,
    answer: mpsc::Sender<Answer>,
    /// What an action's card shows, once its gate call has put it here.
    action: Option<ActionCard>,
}

/// What the page shows of an action waiting for the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionCard {
    pub step: StepNo,
    pub connector: String,
    pub tool: String,
    /// Through what, in words: "the browser", "the connector mail, listed in your connectors".
    pub via: String,
    /// What the tool says it does (its approved definition), or what the browser will send.
    pub description: String,
    /// The call's arguments, one row per value (nested objects as `a.b`).
    pub arguments: Vec<Row>,
    /// The tool says it destroys data: each call asks.
    pub destructive: bool,
    /// "Always allow this tool" is offered.
    pub always: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub key: String,
    pub value: String,
}

/// An action's arguments as rows for a person: text as it is, numbers and
/// booleans as written, objects opened (`fields.email`) two levels deep,
/// anything deeper or a list as indented JSON.
pub fn rows(arguments: &serde_json::Value) -> Vec<Row> {
    fn text(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
                serde_json::to_string_pretty(v).unwrap_or_default()
            }
            other => other.to_string(),
        }
    }
    fn walk(prefix: &str, v: &serde_json::Value, depth: usize, out: &mut Vec<Row>) {
        match v {
            serde_json::Value::Object(m) if depth < 2 && !m.is_empty() => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, depth + 1, out);
                }
            }
            other => out.push(Row {
                key: if prefix.is_empty() {
                    "(arguments)".into()
                } else {
                    prefix.to_owned()
                },
                value: text(other),
            }),
        }
    }
    let none = arguments.is_null() || arguments.as_object().is_some_and(serde_json::Map::is_empty);
    let mut out = Vec::new();
    if !none {
        walk("", arguments, 0, &mut out);
    }
    out
}

/// The connector an action goes through, in words: where it is listed, when
/// the lists say (a workspace's connector shadows the person's of the same name).
fn via(app: &App, connector: &str) -> String {
    if connector == BROWSER {
        return "the browser".into();
    }
    let listed = deskhand_runtime::connectors::config::all(
        app.options.config_dir.as_deref(),
        &app.workspace.state_dir(),
        &app.root,
    )
    .ok()
    .and_then(|all| all.into_iter().find(|c| c.name == connector));
    match listed {
        Some(c) => format!("the connector {connector}, listed in {}", c.scope),
        None => format!("the connector {connector}"),
    }
}

/// The browser's actions (a form submitted) go through the same question,
/// but no "always" is kept for them.
const BROWSER: &str = "browser";

#[derive(Default)]
pub struct Approvals {
    pending: Mutex<HashMap<String, Pending>>,
    /// The waiting side of each pending question, until its gate call takes it.
    waiting: Mutex<HashMap<String, mpsc::Receiver<Answer>>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum AnswerError {
    /// Never asked, or already answered (an answer is used once).
    Unknown,
    Expired,
    /// "Always allow" for a question whose card does not offer it.
    NoAlways,
}

/// What is known of an action's card.
#[derive(Debug, PartialEq, Eq)]
pub enum CardLookup {
    Card(ActionCard),
    /// The question waits, but its gate call has not put its card here yet
    /// (or it is not an action).
    NotYet,
    /// Never asked, or answered.
    Unknown,
}

impl Approvals {
    /// Answers request `id`; the id is spent whatever the answer. `always`
    /// only where the question's card offers it (else nothing is spent).
    pub fn answer(&self, id: &str, approval: Approval, always: bool) -> Result<RunId, AnswerError> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if always
            && !pending
                .get(id)
                .is_some_and(|p| p.action.as_ref().is_some_and(|a| a.always))
        {
            return Err(if pending.contains_key(id) {
                AnswerError::NoAlways
            } else {
                AnswerError::Unknown
            });
        }
        let pending = pending.remove(id).ok_or(AnswerError::Unknown)?;
        if Instant::now() > pending.expires {
            return Err(AnswerError::Expired);
        }
        let _ = pending.answer.send(Answer { approval, always });
        Ok(pending.run)
    }

    /// The card of the action `id` waits on.
    pub fn card(&self, id: &str) -> CardLookup {
        match self.pending.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            None => CardLookup::Unknown,
            Some(p) => p.action.clone().map_or(CardLookup::NotYet, CardLookup::Card),
        }
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
                let _ = p.answer.send(Answer {
                    approval: Approval::Rejected { reason: reason.into() },
                    always: false,
                });
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
                action: None,
            },
        );
    }

    /// Waits for the person's click on the card the journaled question shows.
    fn ask(&self, run: &RunId, approval: &str) -> Answer {
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
                        return Answer {
                            approval: Approval::Rejected {
                                reason: "the question could not be put to the page".into(),
                            },
                            always: false,
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
            Answer {
                approval: Approval::Rejected {
                    reason: format!("nobody answered within {} minutes", EXPIRY.as_secs() / 60),
                },
                always: false,
            }
        })
    }

    /// Puts `card` beside the pending question `approval`, registering it
    /// first if the runtime did not announce it.
    fn show(&self, run: &RunId, approval: &str, card: ActionCard) {
        let registered = self
            .app
            .approvals
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(approval);
        if !registered {
            self.register(run, approval);
        }
        if let Some(p) = self
            .app
            .approvals
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(approval)
        {
            p.action = Some(card);
        }
    }
}

/// The card for `req`.
fn card(app: &App, req: &ActionApproval<'_>) -> ActionCard {
    ActionCard {
        step: req.step,
        connector: req.connector.to_owned(),
        tool: req.tool.to_owned(),
        via: via(app, req.connector),
        description: req.description.to_owned(),
        arguments: rows(req.arguments),
        destructive: req.destructive,
        always: !req.destructive && req.connector != BROWSER,
    }
}

/// The gate's answer to an action from the person's: an "always" is
/// remembered first, through the runtime's own store; if it cannot be, the
/// call still goes ahead this once (the person allowed it) and says so.
fn action_answer(answer: Answer, req: &ActionApproval<'_>) -> Approval {
    let action = format!("{}.{}", req.connector, req.tool);
    match answer {
        Answer {
            approval: Approval::Approved { .. },
            always: true,
        } if !req.destructive && req.connector != BROWSER => match (req.allow_always)() {
            Ok(()) => Approval::Approved {
                by: format!("the person, in the browser, who now always allows {action}"),
            },
            Err(e) => Approval::Approved {
                by: format!(
                    "the person, in the browser, this once (always allowing {action} could not be remembered: {e})"
                ),
            },
        },
        Answer {
            approval: Approval::Approved { .. },
            ..
        } => Approval::Approved {
            by: "the person, in the browser, this once".into(),
        },
        Answer { approval, .. } => approval,
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
        self.ask(req.run, approval).approval
    }

    fn approve_changes(&self, approval: &str, req: &ChangesApproval<'_>) -> Approval {
        self.ask(req.run, approval).approval
    }

    fn approve_action(&self, approval: &str, req: &ActionApproval<'_>) -> Approval {
        self.show(req.run, approval, card(&self.app, req));
        action_answer(self.ask(req.run, approval), req)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use deskhand_types::Mode;
    use serde_json::json;

    use super::*;

    #[test]
    fn arguments_read_as_rows_nested_objects_opened() {
        let shown = rows(&json!({
            "to": "ana@example.com",
            "count": 3,
            "urgent": true,
            "fields": {"email": "a@b.c", "address": {"city": "Bonn"}},
            "tags": ["a", "b"],
        }));
        let pairs: Vec<(&str, &str)> = shown.iter().map(|r| (r.key.as_str(), r.value.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("count", "3"),
                ("fields.address", "{\n  \"city\": \"Bonn\"\n}"),
                ("fields.email", "a@b.c"),
                ("tags", "[\n  \"a\",\n  \"b\"\n]"),
                ("to", "ana@example.com"),
                ("urgent", "true"),
            ]
        );
        assert_eq!(rows(&json!("just text"))[0].key, "(arguments)");
        assert!(rows(&serde_json::Value::Null).is_empty());
        assert!(rows(&json!({})).is_empty());
    }

    fn request<'a>(
        run: &'a RunId,
        connector: &'a str,
        destructive: bool,
        args: &'a serde_json::Value,
        remember: &'a (dyn Fn() -> Result<(), String> + Sync),
    ) -> ActionApproval<'a> {
        ActionApproval {
            run,
            step: StepNo(2),
            mode: Mode::Ask,
            connector,
            tool: "send",
            arguments: args,
            description: "Sends a message",
            destructive,
            allow_always: remember,
        }
    }

    #[test]
    fn always_is_remembered_through_the_runtime_only_where_offered() {
        let run = RunId("r".into());
        let args = json!({"to": "x"});
        let calls = AtomicUsize::new(0);
        let remember = || {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(())
        };
        let approved = |always| Answer {
            approval: Approval::Approved { by: "p".into() },
            always,
        };
        let a = action_answer(approved(true), &request(&run, "mail", false, &args, &remember));
        assert!(
            matches!(a, Approval::Approved { ref by } if by.contains("now always allows mail.send")),
            "{a:?}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A destructive tool, or the browser, is allowed once only.
        for (connector, destructive) in [("mail", true), (BROWSER, false)] {
            let a = action_answer(approved(true), &request(&run, connector, destructive, &args, &remember));
            assert!(
                matches!(a, Approval::Approved { ref by } if by.ends_with("this once")),
                "{a:?}"
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let refused = Answer {
            approval: Approval::Rejected { reason: "no".into() },
            always: true,
        };
        assert!(matches!(
            action_answer(refused, &request(&run, "mail", false, &args, &remember)),
            Approval::Rejected { .. }
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A store that cannot remember still lets the call go ahead this once, and says so.
        let broken = || Err("the config folder is read-only".to_owned());
        let a = action_answer(approved(true), &request(&run, "mail", false, &args, &broken));
        assert!(
            matches!(a, Approval::Approved { ref by } if by.contains("could not be remembered: the config folder is read-only")),
            "{a:?}"
        );
    }

    #[test]
    fn always_is_refused_for_a_question_that_does_not_offer_it_and_the_question_stays_open() {
        let approvals = Approvals::default();
        let (tx, rx) = mpsc::channel();
        let card = |always: bool| ActionCard {
            step: StepNo(1),
            connector: "mail".into(),
            tool: "purge".into(),
            via: "the connector mail".into(),
            description: String::new(),
            arguments: Vec::new(),
            destructive: !always,
            always,
        };
        approvals.pending.lock().expect("lock").insert(
            "q".into(),
            Pending {
                run: RunId("r".into()),
                expires: Instant::now() + EXPIRY,
                answer: tx,
                action: Some(card(false)),
            },
        );
        assert_eq!(approvals.card("q"), CardLookup::Card(card(false)));
        let approve = || Approval::Approved { by: "p".into() };
        assert_eq!(approvals.answer("q", approve(), true), Err(AnswerError::NoAlways));
        assert_eq!(approvals.answer("other", approve(), true), Err(AnswerError::Unknown));
        assert_eq!(approvals.answer("q", approve(), false), Ok(RunId("r".into())));
        assert!(rx.try_recv().is_ok_and(|a| !a.always));
        assert_eq!(approvals.card("q"), CardLookup::Unknown);
    }
}
