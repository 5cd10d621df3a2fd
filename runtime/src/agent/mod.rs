//! The agent loop: a task becomes a visible plan, carried out step by step
//! through the sandboxed tools by a model or the offline planner.
//!
//! Every message, plan revision, step change and tool call is an event in
//! the journal, which is the source of truth: [`Agent::resume`] rebuilds a
//! killed run from it and continues without redoing finished side effects.
//! Every event goes through `Agent::emit`; one the journal cannot write stops
//! the run at its next turn (see [`crate::journal`]).
//!
//! Here: the run's types and its start and finish. `turns` is the loop;
//! `registry` the tools offered to the model, one handler each behind one
//! trait, and the step driver that runs every tool use (sandboxed tools are
//! named `tool__op`); `plan` holds revisions, step approval (bound to a hash of the step's
//! title and effects, asked again when a revision changes a running step)
//! and the checks that keep each call within its step's declared effects;
//! `calls` sandboxed calls, `native` the `shell` tool, `meta` the runtime's
//! own tools, `subagents` fan-outs, `outputs` untrusted framing and paging,
//! `context` the prompt and compaction, `resume` and `offline` as named.

mod browser_calls;
mod calls;
mod connector_calls;
pub mod context;
mod draft;
mod held;
pub mod meta;
mod native;
mod office;
pub mod offline;
mod outputs;
mod plan;
mod registry;
mod resume;
mod subagents;
mod turns;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use deskhand_types::model::{Block, Message, Role, StopReason, ToolSpec};
use deskhand_types::{
    Access, CallId, CallOutcome, Event, Grant, Mode, Plan, PlanStep, RunId, RunStatus, StepEffects, StepNo, StepStatus,
    Task, ToolError,
};

use crate::call;
use crate::changeset;
use crate::error::{Error, Result};
use crate::model::{ModelProvider, ModelRequest, ProviderError, StreamEvent};
use crate::tools::Toolbox;
use crate::wasm::{CallError, Limits};
use crate::workspace::Workspace;

/// Receives every event of a run and of its sub-agents as it happens.
pub type RunObserver = Arc<dyn Fn(&RunId, &Event) + Send + Sync>;

#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub limits: Limits,
    /// Sub-agents that run at once (default: the number of cores).
    pub concurrency: usize,
    /// The model's context window in tokens; older turns are compacted past 3/4 of it.
    pub context_tokens: usize,
    pub max_turns: u32,
    /// Bytes of one tool output shown to the model; the rest is paged.
    pub max_tool_output: usize,
    pub max_tokens: u32,
    /// Set by the person (the UI's Stop) to stop the run at the next turn or call.
    pub stop: Option<Arc<AtomicBool>>,
    /// The skills a model may read with `read_skill` (their catalogue is in
    /// the prompt; their instructions and files are read on demand).
    pub skills: Arc<Vec<crate::skills::Skill>>,
    /// The connectors (MCP servers) this run may use; their servers start on
    /// first use and end when the last clone of this is dropped.
    pub connectors: Option<Arc<crate::connectors::Connectors>>,
    /// How sandboxes reach the run's egress proxy (the relay to start in them).
    pub egress: crate::egress::Settings,
    /// This machine's Chromium, where the front end offers the browser tools
    /// (a model's runs on a machine with Chromium and bubblewrap).
    pub browser: Option<crate::browser::Browser>,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            limits: Limits::default(),
            concurrency: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            context_tokens: 150_000,
            max_turns: 200,
            max_tool_output: 16 * 1024,
            max_tokens: 8192,
            stop: None,
            skills: Arc::default(),
            connectors: None,
            egress: crate::egress::Settings::default(),
            browser: None,
        }
    }
}

/// A step waiting to start, as the gate sees it.
#[derive(Debug)]
pub struct StepApproval<'a> {
    pub run: &'a RunId,
    pub step: StepNo,
    pub plan_step: &'a PlanStep,
    pub mode: Mode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// `by` says who: "the person, at the terminal", "act mode, chosen at launch", ...
    Approved {
        by: String,
    },
    Rejected {
        reason: String,
    },
}

/// Asks the person whether a step may start or a changeset be applied. The
/// policy (act mode approves, a deletion always asks, new files in output/
/// come with their step) is [`crate::gate::assess`]; a front end is asked
/// only what the policy leaves to the person. Nothing the model or a tool
/// says reaches it.
///
/// `approval` is the question's id, journaled with the question
/// (`AwaitingApproval`) and the answer (`ApprovalAnswered`) by the runtime;
/// a front end that answers asynchronously (the browser) keys its answer by it.
pub trait Gate: Send + Sync {
    /// Called before the question `approval` is journaled (and so shown):
    /// a front end that takes answers asynchronously gets ready for its
    /// answer here, so none arrives for an id it does not know yet.
    fn will_ask(&self, _approval: &str, _run: &RunId) {}

    /// The question `approval` announced by [`Gate::will_ask`] will not be
    /// asked after all (the journal could not record it).
    fn gave_up(&self, _approval: &str) {}

    /// For a run no one watches (a schedule's): its envelope and where what
    /// it does not cover is held. The policy then decides everything and
    /// never asks this gate; a front end leaves this `None`.
    fn unattended(&self) -> Option<&crate::envelope::Unattended> {
        None
    }

    fn approve_step(&self, approval: &str, request: &StepApproval<'_>) -> Approval;

    /// A tool's proposed changes to the person's folders, as they will be
    /// applied. A changeset with deletions always needs the person, in every mode.
    fn approve_changes(&self, approval: &str, request: &ChangesApproval<'_>) -> Approval;

    /// A connector tool's call that writes outside the workspace (an action:
    /// sending a message, creating an event), with its arguments. A front end
    /// that does not show actions refuses them (this default).
    fn approve_action(&self, _approval: &str, _request: &ActionApproval<'_>) -> Approval {
        Approval::Rejected {
            reason: "this front end cannot show a connector's action for approval yet; run the task from the terminal"
                .into(),
        }
    }
}

/// A connector action waiting to run, as the gate sees it.
pub struct ActionApproval<'a> {
    pub run: &'a RunId,
    pub step: StepNo,
    pub mode: Mode,
    pub connector: &'a str,
    pub tool: &'a str,
    /// The call's arguments, as the tool will get them.
    pub arguments: &'a serde_json::Value,
    /// What the tool says it does (the approved definition), for the person.
    pub description: &'a str,
    /// The tool says it destroys data: "always allow" is not offered.
    pub destructive: bool,
    /// Remembers the person's "always allow this tool" (revocable with
    /// `deskhand connectors disallow`); a front end calls it when they answer so.
    pub allow_always: &'a (dyn Fn() -> std::result::Result<(), String> + Sync),
}

impl std::fmt::Debug for ActionApproval<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionApproval")
            .field("run", self.run)
            .field("step", &self.step)
            .field("connector", &self.connector)
            .field("tool", &self.tool)
            .finish_non_exhaustive()
    }
}

/// A changeset waiting to be applied, as the gate sees it.
#[derive(Debug)]
pub struct ChangesApproval<'a> {
    pub run: &'a RunId,
    pub step: StepNo,
    pub mode: Mode,
    /// The changes rendered for a person: renames as a before/after table, deletions marked.
    pub description: &'a str,
    pub deletions: usize,
}

/// Sub-agents one `spawn_subagents` call may start.
pub const MAX_SUBAGENTS_PER_CALL: usize = 16;
/// Levels of sub-agents below a top-level run.
pub const MAX_SUBAGENT_DEPTH: usize = 2;
/// Sub-agents one top-level run may start in all, at every level.
pub const MAX_SUBAGENTS_PER_RUN: usize = 64;

pub use crate::gate::DELETION_ALWAYS_ASKS;

/// No one to ask: whatever the policy leaves to a person is refused with
/// `.0` as the reason (a schedule saved without an envelope, a replay on a
/// scratch copy), so the run stops there instead of waiting.
#[derive(Debug)]
pub struct RefuseAll(pub &'static str);

impl Gate for RefuseAll {
    fn approve_step(&self, _: &str, _: &StepApproval<'_>) -> Approval {
        Approval::Rejected { reason: self.0.into() }
    }

    fn approve_changes(&self, _: &str, _: &ChangesApproval<'_>) -> Approval {
        Approval::Rejected { reason: self.0.into() }
    }
}

/// A person who approves everything they are asked except deletions (they
/// cannot be asked: no one is there). For tests, and for runs without a
/// front end.
#[derive(Debug, Default)]
pub struct ApproveAll;

impl Gate for ApproveAll {
    // Only asked what `gate::assess` leaves to a person (act mode never gets here).
    fn approve_step(&self, _: &str, _: &StepApproval<'_>) -> Approval {
        Approval::Approved {
            by: "pre-approved by the person".into(),
        }
    }

    fn approve_changes(&self, _: &str, req: &ChangesApproval<'_>) -> Approval {
        if req.deletions > 0 {
            return Approval::Rejected {
                reason: DELETION_ALWAYS_ASKS.into(),
            };
        }
        Approval::Approved {
            by: "pre-approved by the person".into(),
        }
    }

    fn approve_action(&self, _: &str, req: &ActionApproval<'_>) -> Approval {
        if req.destructive {
            return Approval::Rejected {
                reason: crate::gate::DESTRUCTIVE_ALWAYS_ASKS.into(),
            };
        }
        Approval::Approved {
            by: "pre-approved by the person".into(),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    pub run: RunId,
    pub status: RunStatus,
    pub summary: String,
    pub plan: Plan,
    /// The question, when the run waits for the person.
    pub question: Option<String>,
}

pub struct Agent<'a> {
    pub workspace: &'a Workspace,
    pub toolbox: &'a Toolbox,
    pub provider: &'a dyn ModelProvider,
    pub gate: &'a dyn Gate,
    pub settings: AgentSettings,
    pub observer: Option<RunObserver>,
    /// "name: description" lines for the system prompt.
    pub skills_prompt: String,
    /// The native-shell sandbox, when this machine has one: offers the `shell` tool.
    pub shell: Option<&'a (dyn deskhand_host_vm::ShellBackend + Sync)>,
}

impl std::fmt::Debug for Agent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("provider", &self.provider.describe())
            .finish_non_exhaustive()
    }
}

/// A run in memory; everything in it can be rebuilt from the journal.
struct RunState {
    run: RunId,
    task: Task,
    messages: Vec<Message>,
    plan: Plan,
    turn: u32,
    /// Set by the person (a rejected step), by a failing sibling, or by a parent.
    cancel: Vec<Arc<AtomicBool>>,
    /// For a sub-agent: the parent step, which bounds its own steps.
    ceiling: Option<Ceiling>,
    /// Each step's approval: the hash of the title and effects approved, and by whom.
    /// A step whose title or effects change is approved again.
    approved: HashMap<StepNo, (String, String)>,
    /// Why the loop must stop after this turn's tool results are recorded.
    stop: Option<(RunStatus, String)>,
    /// Set when an unattended run stops for the person (`held.rs`): what it
    /// asks them. Nothing more runs this turn.
    held: Option<String>,
    /// On resume: sub-agent runs started before the interruption, reused by outcome.
    earlier_children: Arc<Mutex<Vec<crate::journal::TaskRow>>>,
    /// The run's one egress decision point; its refusals wait in
    /// `egress_blocked` for the run's writer (`Agent::flush_egress`).
    egress: Arc<crate::egress::Run>,
    egress_blocked: Arc<Mutex<Vec<Event>>>,
    /// The run's browser, started by its first browser call; shut down when
    /// the run's state is dropped.
    browser: Option<crate::browser::Session>,
}

/// What a sub-agent inherits from the parent step it runs in.
#[derive(Debug, Clone)]
pub(crate) struct Ceiling {
    /// The parent step's declared effects, which the sub-agent's steps may not exceed.
    effects: StepEffects,
    /// Who approved the parent step: the sub-agent's steps, bounded by it, are
    /// approved with it.
    approved_by: String,
    /// The parent's permission mode, which its sub-agents run in.
    mode: Mode,
    /// The parent's egress: a sub-agent shares its seal and contacted hosts.
    egress: Option<Arc<crate::egress::Run>>,
}

/// A run's egress decision point (a sub-agent's shares its parent's seal),
/// with the queue its refusals wait in for the run's writer.
fn run_egress(
    run: &RunId,
    parent: Option<&Arc<crate::egress::Run>>,
) -> (Arc<crate::egress::Run>, Arc<Mutex<Vec<Event>>>) {
    let queue: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = Arc::clone(&queue);
    let journal: crate::egress::Journaler =
        Arc::new(move |_, e| sink.lock().unwrap_or_else(|p| p.into_inner()).push(e));
    let egress = match parent {
        Some(p) => p.child(run.clone(), journal),
        None => crate::egress::Run::new(run.clone(), journal),
    };
    (egress, queue)
}

impl RunState {
    fn cancelled(&self) -> bool {
        self.cancel.iter().any(|c| c.load(Ordering::Relaxed))
    }
}

/// A tool result on its way back to the model.
struct ToolReply {
    content: String,
    is_error: bool,
}

impl ToolReply {
    fn ok(content: impl Into<String>) -> Self {
        ToolReply {
            content: content.into(),
            is_error: false,
        }
    }
    fn err(content: impl Into<String>) -> Self {
        ToolReply {
            content: content.into(),
            is_error: true,
        }
    }
}

impl<'a> Agent<'a> {
    /// Journals the egress refusals made since the last flush (the proxy's
    /// threads cannot write the journal themselves: one writer per run).
    fn flush_egress(&self, st: &RunState) {
        let blocked: Vec<Event> = std::mem::take(&mut *st.egress_blocked.lock().unwrap_or_else(|p| p.into_inner()));
        for event in blocked {
            self.emit(&st.run, event);
        }
    }

    fn emit(&self, run: &RunId, event: Event) {
        // The journal is the source of truth; an append that fails is
        // reported to the observer, and the journal remembers it so the
        // loop stops the run before its next turn (`drive`).
        if let Err(e) = self.workspace.journal().append(run, &event)
            && let Some(obs) = &self.observer
        {
            obs(
                run,
                &Event::Notice {
                    message: format!("could not journal an event: {e}"),
                },
            );
        }
        if let Some(obs) = &self.observer {
            obs(run, &event);
        }
    }

    /// Starts a run for `task` and drives it until it ends or needs the person.
    pub fn run(&self, task: Task) -> Result<RunReport> {
        self.start(task, None, None, self.settings.stop.iter().cloned().collect())
    }

    fn start(
        &self,
        task: Task,
        parent: Option<(&RunId, StepNo)>,
        ceiling: Option<Ceiling>,
        cancel: Vec<Arc<AtomicBool>>,
    ) -> Result<RunReport> {
        let top = parent.is_none();
        let mut state = self.begin(task, parent, ceiling, cancel)?;
        if top {
            // A sub-agent's grants lie within its parent's (`child_grants`).
            self.hold_wider_grants(&mut state);
        }
        self.drive(&mut state)
    }

    /// Journals a new run (and, for a sub-agent, its parent's SubAgentBegin)
    /// and returns its state, ready to drive.
    fn begin(
        &self,
        task: Task,
        parent: Option<(&RunId, StepNo)>,
        ceiling: Option<Ceiling>,
        cancel: Vec<Arc<AtomicBool>>,
    ) -> Result<RunState> {
        let model = self.provider.describe();
        let parent_step = parent;
        let parent = parent.map(|(p, _)| p);
        let (run, begun) = self.workspace.journal().begin_run(&task, &model, parent)?;
        if let Some(obs) = &self.observer {
            obs(&run, &begun);
        }
        if let Some((parent, step)) = parent_step {
            self.emit(
                parent,
                Event::SubAgentBegin {
                    step,
                    child: run.clone(),
                    outcome: task.outcome.clone(),
                },
            );
        }
        let first = Message::user_text(task.outcome.clone());
        self.emit(&run, Event::Message { message: first.clone() });
        let (egress, egress_blocked) = run_egress(&run, ceiling.as_ref().and_then(|c| c.egress.as_ref()));
        Ok(RunState {
            run,
            task,
            messages: vec![first],
            plan: Plan::default(),
            turn: 0,
            cancel: cancel.into_iter().chain([Arc::new(AtomicBool::new(false))]).collect(),
            ceiling,
            approved: HashMap::new(),
            stop: None,
            held: None,
            earlier_children: Arc::default(),
            egress,
            egress_blocked,
            browser: None,
        })
    }

    fn finish(&self, st: &mut RunState, status: RunStatus, summary: String) -> Result<RunReport> {
        // A run whose plan has a failed step did not succeed, whatever the model says.
        let status = match status {
            RunStatus::Succeeded if st.plan.steps.iter().any(|s| s.status == StepStatus::Failed) => RunStatus::Failed,
            other => other,
        };
        if status == RunStatus::Succeeded {
            // Steps the model left open are closed visibly, not silently.
            for (i, s) in st.plan.steps.iter_mut().enumerate() {
                let closed = match s.status {
                    StepStatus::InProgress => StepStatus::Done,
                    StepStatus::Pending => StepStatus::Skipped,
                    _ => continue,
                };
                s.status = closed;
                self.emit(
                    &st.run,
                    Event::StepEnd {
                        step: StepNo::at(i),
                        status: closed,
                        note: Some("closed when the run ended".into()),
                    },
                );
            }
        }
        let question = (status == RunStatus::NeedsInput).then(|| summary.clone());
        if let Some(q) = &question {
            self.emit(&st.run, Event::NeedsInput { question: q.clone() });
            if st.ceiling.is_none() {
                // A sub-agent's stop is its parent's, which notifies.
                self.notify_held(st, q);
            }
        }
        self.emit(
            &st.run,
            Event::RunEnd {
                run: st.run.clone(),
                status,
                summary: summary.clone(),
            },
        );
        if st.ceiling.is_none() {
            // A sub-agent's story is in its parent's ledger.
            let written = crate::ledger::write(self.workspace, &st.run)?;
            self.emit(
                &st.run,
                Event::Notice {
                    message: format!("ledger written to {}", written.record.display()),
                },
            );
            if let Some(message) = written.copy_notice() {
                self.emit(&st.run, Event::Notice { message });
            }
        }
        if let Some(lost) = self
            .workspace
            .journal()
            .lost_event(&st.run, "The run itself ended; its record misses that event.")
        {
            return Err(lost);
        }
        Ok(RunReport {
            run: st.run.clone(),
            status,
            summary,
            plan: st.plan.clone(),
            question,
        })
    }
}

/// What a finished call's journaled outcome tells the model on resume.
fn reply_from_outcome(source: &str, outcome: &CallOutcome) -> (String, bool) {
    match outcome {
        CallOutcome::Ok { output } if output.json.is_null() => (output.text.clone(), false),
        CallOutcome::Ok { output } => (
            context::untrusted(source, &format!("{}\n{}", output.text, output.json)),
            false,
        ),
        CallOutcome::ToolError { error } => (
            context::untrusted(source, &Error::Call(CallError::Tool(error.clone())).to_string()),
            true,
        ),
        CallOutcome::Stopped { reason } => (reason.clone(), true),
        CallOutcome::Refused { message } => (message.clone(), true),
    }
}
