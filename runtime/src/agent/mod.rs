//! The agent loop: a task becomes a visible plan, carried out step by step
//! through the sandboxed tools by a model or the offline planner.
//!
//! Every message, plan revision, step change and tool call is an event in
//! the journal, which is the source of truth: [`Agent::resume`] rebuilds a
//! killed run from it and continues without redoing finished side effects.

pub mod context;
pub mod meta;
pub mod offline;
mod resume;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sha2::Digest;

use deskhand_types::model::{Block, Message, Role, StopReason, ToolSpec};
use deskhand_types::{
    Access, CallId, CallOutcome, Event, Grant, Mode, Plan, PlanStep, RunId, RunStatus, StepEffects, StepStatus, Task,
    ToolError,
};

use crate::call;
use crate::changeset;
use crate::error::{Error, Result};
use crate::journal::NewTask;
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
        }
    }
}

/// A step waiting to start, as the gate sees it.
#[derive(Debug)]
pub struct StepApproval<'a> {
    pub run: &'a RunId,
    pub step: usize,
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
    fn approve_step(&self, approval: &str, request: &StepApproval<'_>) -> Approval;

    /// A tool's proposed changes to the person's folders, as they will be
    /// applied. A changeset with deletions always needs the person, in every mode.
    fn approve_changes(&self, approval: &str, request: &ChangesApproval<'_>) -> Approval;
}

/// A changeset waiting to be applied, as the gate sees it.
#[derive(Debug)]
pub struct ChangesApproval<'a> {
    pub run: &'a RunId,
    pub step: usize,
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
    approved: HashMap<usize, (String, String)>,
    /// Why the loop must stop after this turn's tool results are recorded.
    stop: Option<(RunStatus, String)>,
    /// On resume: sub-agent runs started before the interruption, reused by outcome.
    earlier_children: Arc<Mutex<Vec<crate::journal::TaskRow>>>,
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

    /// Tools offered to the model: every bundled tool's operations, then the runtime's own.
    pub fn tool_specs(&self) -> Result<Vec<ToolSpec>> {
        let mut specs = Vec::new();
        for d in self.toolbox.descriptions()? {
            for op in &d.operations {
                specs.push(ToolSpec {
                    name: format!("{}{}{}", d.name, meta::TOOL_SEP, op.name),
                    description: format!("{} (sandboxed tool {})", op.summary, d.name),
                    input_schema: op.args_schema.clone(),
                });
            }
        }
        specs.extend(meta::specs());
        if self.shell.is_some() {
            specs.push(meta::shell_spec());
        }
        Ok(specs)
    }

    /// Starts a run for `task` and drives it until it ends or needs the person.
    pub fn run(&self, task: Task) -> Result<RunReport> {
        self.start(task, None, None, self.settings.stop.iter().cloned().collect())
    }

    fn start(
        &self,
        task: Task,
        parent: Option<(&RunId, usize)>,
        ceiling: Option<Ceiling>,
        cancel: Vec<Arc<AtomicBool>>,
    ) -> Result<RunReport> {
        let mut state = self.begin(task, parent, ceiling, cancel)?;
        self.drive(&mut state)
    }

    /// Journals a new run (and, for a sub-agent, its parent's SubAgentBegin)
    /// and returns its state, ready to drive.
    fn begin(
        &self,
        task: Task,
        parent: Option<(&RunId, usize)>,
        ceiling: Option<Ceiling>,
        cancel: Vec<Arc<AtomicBool>>,
    ) -> Result<RunState> {
        let model = self.provider.describe();
        let parent_step = parent;
        let parent = parent.map(|(p, _)| p);
        let run = self.workspace.journal().create_task(NewTask {
            outcome: &task.outcome,
            grants: &task.grants,
            mode: task.mode,
            model: &model,
            parent,
        })?;
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
        self.emit(
            &run,
            Event::RunBegin {
                run: run.clone(),
                task: task.clone(),
                model,
                parent: parent.cloned(),
            },
        );
        let first = Message::user_text(task.outcome.clone());
        self.emit(&run, Event::Message { message: first.clone() });
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
            earlier_children: Arc::default(),
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
            let mut changed = false;
            for (i, s) in st.plan.steps.iter_mut().enumerate() {
                let closed = match s.status {
                    StepStatus::InProgress => StepStatus::Done,
                    StepStatus::Pending => StepStatus::Skipped,
                    _ => continue,
                };
                s.status = closed;
                changed = true;
                self.emit(
                    &st.run,
                    Event::StepEnd {
                        step: i + 1,
                        status: closed,
                        note: Some("closed when the run ended".into()),
                    },
                );
            }
            if changed {
                self.workspace.journal().record_plan(&st.run, &st.plan)?;
            }
        }
        let question = (status == RunStatus::NeedsInput).then(|| summary.clone());
        if let Some(q) = &question {
            self.emit(&st.run, Event::NeedsInput { question: q.clone() });
        }
        self.emit(
            &st.run,
            Event::RunEnd {
                run: st.run.clone(),
                status,
                summary: summary.clone(),
            },
        );
        self.workspace.journal().set_task_status(&st.run, status, &summary)?;
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
        if let Some(lost) = self.workspace.journal().lost_event(&st.run) {
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

    fn drive(&self, st: &mut RunState) -> Result<RunReport> {
        let tools = self.tool_specs()?;
        loop {
            if let Some(lost) = self.workspace.journal().lost_event(&st.run) {
                // The run's record is incomplete: stop before doing anything
                // more (the end is recorded if the journal takes it).
                let _ = self.finish(st, RunStatus::Failed, lost.to_string());
                return Err(lost);
            }
            if st.cancelled() {
                return self.finish(st, RunStatus::Stopped, "cancelled".into());
            }
            if let Some((status, summary)) = st.stop.take() {
                return self.finish(st, status, summary);
            }
            if st.turn >= self.settings.max_turns {
                let msg = format!(
                    "stopped after {} model turns without finishing",
                    self.settings.max_turns
                );
                return self.finish(st, RunStatus::Failed, msg);
            }
            st.turn += 1;
            self.emit(&st.run, Event::ModelTurnBegin { turn: st.turn });
            let response = match self.ask_model(st, &tools) {
                Ok(r) => r,
                Err(_) if st.cancelled() => {
                    // Stopped while the provider waited to retry.
                    return self.finish(st, RunStatus::Stopped, "cancelled".into());
                }
                Err(e) => {
                    let summary = e.to_string();
                    self.emit(
                        &st.run,
                        Event::ModelTurnEnd {
                            turn: st.turn,
                            usage: Default::default(),
                            error: Some(summary.clone()),
                        },
                    );
                    self.finish(st, RunStatus::Failed, summary)?;
                    return Err(Error::Provider(e));
                }
            };
            self.emit(
                &st.run,
                Event::ModelTurnEnd {
                    turn: st.turn,
                    usage: response.usage,
                    error: None,
                },
            );
            if st.cancelled() {
                // Stopped while the model was answering (the person, or a
                // failing sibling): its tool calls are not run.
                return self.finish(st, RunStatus::Stopped, "cancelled".into());
            }
            let assistant = Message {
                role: Role::Assistant,
                content: response.content,
            };
            st.messages.push(assistant.clone());
            self.emit(
                &st.run,
                Event::Message {
                    message: assistant.clone(),
                },
            );

            if response.stop_reason == StopReason::Other("refusal".into()) {
                return self.finish(st, RunStatus::Failed, assistant.text());
            }
            let uses: Vec<(String, String, serde_json::Value)> = assistant
                .tool_uses()
                .map(|(id, name, input)| (id.into(), name.into(), input.clone()))
                .collect();
            if uses.is_empty() {
                let summary = assistant.text();
                return self.finish(st, RunStatus::Succeeded, summary);
            }
            let mut results = Vec::with_capacity(uses.len());
            for (id, name, input) in uses {
                if self.workspace.journal().has_lost_event(&st.run) {
                    // The record is incomplete: no further call this turn.
                    break;
                }
                if name == meta::ASK_PERSON {
                    let question = serde_json::from_value::<meta::Question>(input)
                        .map(|q| q.question)
                        .unwrap_or_else(|e| format!("(the question could not be read: {e})"));
                    // The answer becomes this call's result when the person resumes the run.
                    st.stop = Some((RunStatus::NeedsInput, question));
                    continue;
                }
                let reply = self.dispatch(st, &id, &name, &input);
                results.push(Block::ToolResult {
                    tool_use_id: id,
                    content: reply.content,
                    is_error: reply.is_error,
                });
            }
            if matches!(st.stop, Some((RunStatus::NeedsInput, _))) {
                // The turn's results wait for the answer: every tool use of
                // the turn must be answered in one message, and the calls that
                // ran are in the journal, where resume finds them.
                continue;
            }
            let msg = Message {
                role: Role::User,
                content: results,
            };
            st.messages.push(msg.clone());
            self.emit(&st.run, Event::Message { message: msg });
        }
    }

    fn system_prompt(&self, st: &RunState) -> String {
        context::system_prompt(self.workspace, &st.task.grants, &self.skills_prompt, &st.plan)
    }

    /// One model turn, compacting older turns first when they no longer fit.
    fn ask_model(&self, st: &mut RunState, tools: &[ToolSpec]) -> Result<crate::model::ModelResponse, ProviderError> {
        // Built once a turn (it reads the instruction, memory and context
        // files): compacting changes the messages, not the system prompt.
        let system = self.system_prompt(st);
        let budget = self.settings.context_tokens.saturating_mul(3) / 4;
        if context::estimate_tokens(&system, &st.messages) > budget {
            self.compact(st, 4);
        }
        let mut forced = false;
        loop {
            let request = ModelRequest {
                system: &system,
                messages: &st.messages,
                tools,
                max_tokens: self.settings.max_tokens,
                stop: Some(&st.cancel),
            };
            let run = st.run.clone();
            let mut on_event = |e: StreamEvent| {
                if let StreamEvent::Retry { attempt, wait, reason } = e {
                    let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
                    self.emit(
                        &run,
                        Event::ModelRetry {
                            attempt,
                            wait_ms,
                            reason,
                        },
                    );
                }
            };
            match self.provider.complete(&request, &mut on_event) {
                Err(ProviderError::ContextOverflow { detail }) if !forced => {
                    forced = true;
                    if !self.compact(st, 2) {
                        return Err(ProviderError::ContextOverflow {
                            detail: format!("{detail}; the run has no older turns left to compact"),
                        });
                    }
                }
                other => return other,
            }
        }
    }

    /// Replaces older turns with a digest, keeping the last `keep` messages.
    fn compact(&self, st: &mut RunState, keep: usize) -> bool {
        let Some(replaced) = context::compaction_cut(&st.messages, keep) else {
            return false;
        };
        let summary = context::digest(&st.messages[1..1 + replaced]);
        context::apply_compaction(&mut st.messages, replaced, &summary);
        self.emit(&st.run, Event::Compacted { replaced, summary });
        true
    }

    /// Runs one tool use and returns what goes back to the model. Every
    /// use is journaled as a Begin/End pair keyed by its id.
    fn dispatch(&self, st: &mut RunState, id: &str, name: &str, input: &serde_json::Value) -> ToolReply {
        let call_id = CallId(id.to_owned());
        if st.cancelled() {
            return ToolReply::err("the run was cancelled; this call did not run");
        }
        if let Some((RunStatus::Stopped, why)) = &st.stop {
            return ToolReply::err(format!("the run was stopped ({why}); this call did not run"));
        }
        match name {
            meta::UPDATE_PLAN => self.meta_call(st, &call_id, name, input, |agent, st| agent.update_plan(st, input)),
            meta::SPAWN_SUBAGENTS => {
                self.meta_call(st, &call_id, name, input, |agent, st| agent.spawn_subagents(st, input))
            }
            meta::READ_TOOL_OUTPUT => {
                self.meta_call(st, &call_id, name, input, |agent, st| agent.page_output(st, input))
            }
            meta::SHELL if self.shell.is_some() => self.shell_call(st, &call_id, input),
            _ => match name.split_once(meta::TOOL_SEP) {
                Some((tool, op)) => self.tool_call(st, &call_id, tool, op, input),
                None => {
                    let msg = format!(
                        "there is no tool named {name:?}; use the tools listed, such as fs__list or update_plan"
                    );
                    self.block(st, msg.clone());
                    ToolReply::err(msg)
                }
            },
        }
    }

    /// Journals a runtime-provided tool's call as a Begin/End pair.
    fn meta_call(
        &self,
        st: &mut RunState,
        id: &CallId,
        name: &str,
        input: &serde_json::Value,
        f: impl FnOnce(&Self, &mut RunState) -> std::result::Result<String, String>,
    ) -> ToolReply {
        self.emit(
            &st.run,
            Event::ToolCallBegin {
                call: id.clone(),
                tool: "deskhand".into(),
                operation: name.into(),
                args: input.clone(),
            },
        );
        let started = std::time::Instant::now();
        let result = f(self, st);
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (outcome, reply) = match result {
            Ok(text) => (
                CallOutcome::Ok {
                    output: deskhand_types::ToolOutput::new(serde_json::Value::Null, text.clone()),
                },
                ToolReply::ok(text),
            ),
            Err(message) => {
                self.block(st, message.clone());
                (
                    CallOutcome::Refused {
                        message: message.clone(),
                    },
                    ToolReply::err(message),
                )
            }
        };
        self.emit(
            &st.run,
            Event::ToolCallEnd {
                call: id.clone(),
                outcome,
                elapsed_ms,
            },
        );
        reply
    }

    fn set_step_status(&self, st: &mut RunState, index: usize, status: StepStatus, note: Option<String>) {
        let step = &mut st.plan.steps[index];
        if step.status == status {
            return;
        }
        step.status = status;
        let title = step.title.clone();
        if status == StepStatus::InProgress {
            self.emit(&st.run, Event::StepBegin { step: index + 1, title });
        } else if status.is_finished() {
            self.emit(
                &st.run,
                Event::StepEnd {
                    step: index + 1,
                    status,
                    note,
                },
            );
        }
    }

    /// Starts step `index` (0-based) after the gate approves it. A step
    /// already running whose title or effects were revised since its
    /// approval is approved again: an approval covers what the person saw.
    fn begin_step(&self, st: &mut RunState, index: usize) -> std::result::Result<(), String> {
        let effects_hash = hex::encode(sha2::Sha256::digest(st.plan.steps[index].approval_subject()));
        let status = st.plan.steps[index].status;
        if status == StepStatus::InProgress && st.approved.get(&index).is_some_and(|(h, _)| *h == effects_hash) {
            return Ok(());
        }
        let approval = crate::gate::approve_step(
            self.gate,
            self.workspace.journal(),
            &StepApproval {
                run: &st.run,
                step: index + 1,
                plan_step: &st.plan.steps[index],
                mode: st.task.mode,
            },
            &effects_hash,
            st.ceiling.as_ref().map(|c| c.approved_by.as_str()),
        );
        match approval {
            Approval::Approved { by } => {
                st.approved.insert(index, (effects_hash.clone(), by.clone()));
                self.emit(
                    &st.run,
                    Event::StepApproved {
                        step: index + 1,
                        by,
                        effects_hash,
                    },
                );
                self.set_step_status(st, index, StepStatus::InProgress, None);
                Ok(())
            }
            Approval::Rejected { reason } => {
                let note = format!("the person did not approve this step: {reason}");
                self.set_step_status(st, index, StepStatus::Failed, Some(note.clone()));
                st.stop = Some((RunStatus::Stopped, note.clone()));
                Err(note)
            }
        }
    }

    fn update_plan(&self, st: &mut RunState, input: &serde_json::Value) -> std::result::Result<String, String> {
        let update: meta::PlanUpdate =
            serde_json::from_value(input.clone()).map_err(|e| format!("update_plan arguments are invalid: {e}"))?;
        if update.steps.is_empty() {
            return Err("a plan needs at least one step".into());
        }
        // A step may only declare what the grants allow: plans cannot widen them.
        let granted = StepEffects {
            reads: st
                .task
                .grants
                .iter()
                .map(|g| g.path.clone())
                .chain([PathBuf::from("output")])
                .collect(),
            writes: st
                .task
                .grants
                .iter()
                .filter(|g| g.access.is_writable())
                .map(|g| g.path.clone())
                .chain([PathBuf::from("output")])
                .collect(),
            network: Vec::new(),
        };
        let mut resolved = HashMap::new();
        for s in &update.steps {
            self.within_effects_cached(&s.effects, &granted, &mut resolved)
                .map_err(|e| {
                    format!(
                        "step {:?} declares that it {e}, which this run was not granted (tools have no network, and \
                     write only under output/ or a folder granted read-write); only the person can grant more",
                        s.title
                    )
                })?;
        }
        if let Some(ceiling) = &st.ceiling {
            for s in &update.steps {
                self.within_effects_cached(&s.effects, &ceiling.effects, &mut resolved)
                    .map_err(|e| format!("step {:?} declares more than the parent step allows: {e}", s.title))?;
            }
        }
        let old = st.plan.clone();
        let structural = old.steps.len() != update.steps.len()
            || old
                .steps
                .iter()
                .zip(&update.steps)
                .any(|(a, b)| a.title != b.title || a.effects != b.effects);
        if old.revision > 0 && structural {
            let Some(reason) = update.reason.as_deref().filter(|r| !r.trim().is_empty()) else {
                return Err(
                    "this changes the plan's steps; call update_plan again with a `reason` the person will see".into(),
                );
            };
            // A finished step cannot be rewritten after the fact.
            for (i, s) in old.steps.iter().enumerate() {
                if s.status.is_finished()
                    && update
                        .steps
                        .get(i)
                        .is_none_or(|u| u.title != s.title || u.effects != s.effects)
                {
                    return Err(format!(
                        "step {} ({:?}) is finished and cannot be changed; add new steps instead",
                        i + 1,
                        s.title
                    ));
                }
            }
            st.plan.reason = Some(reason.to_owned());
        }
        if structural {
            st.plan.revision += 1;
            if old.revision == 0 {
                st.plan.reason = update.reason.clone();
            }
            st.plan.steps = update
                .steps
                .iter()
                .enumerate()
                .map(|(i, u)| PlanStep {
                    title: u.title.clone(),
                    effects: u.effects.clone(),
                    status: old
                        .steps
                        .get(i)
                        .filter(|o| o.title == u.title)
                        .map(|o| o.status)
                        .unwrap_or_default(),
                })
                .collect();
            self.emit(&st.run, Event::PlanUpdated { plan: st.plan.clone() });
        }
        // Status changes, in order; starting a step goes through the gate.
        for (i, u) in update.steps.iter().enumerate() {
            let current = st.plan.steps[i].status;
            if current == u.status || (current.is_finished() && !structural) && u.status == StepStatus::Pending {
                continue;
            }
            if current.is_finished() {
                return Err(format!("step {} is already {:?}; it cannot go back", i + 1, current));
            }
            match u.status {
                StepStatus::InProgress => self.begin_step(st, i)?,
                StepStatus::Done | StepStatus::Failed | StepStatus::Skipped => {
                    self.set_step_status(st, i, u.status, None)
                }
                StepStatus::Pending => {}
            }
        }
        self.workspace
            .journal()
            .record_plan(&st.run, &st.plan)
            .map_err(|e| e.to_string())?;
        Ok(format!(
            "Plan (revision {}):\n{}",
            st.plan.revision,
            context::plan_text(&st.plan)
        ))
    }

    /// Resolves a declared path the way call paths are resolved.
    fn resolve_declared(&self, path: &Path) -> Option<PathBuf> {
        self.workspace.resolve_path(&path.to_string_lossy()).ok()
    }

    /// Checks that `inner`'s paths all lie within `outer`'s.
    fn within_effects(&self, inner: &StepEffects, outer: &StepEffects) -> std::result::Result<(), String> {
        self.within_effects_cached(inner, outer, &mut HashMap::new())
    }

    /// [`within_effects`](Self::within_effects) resolving each path once per
    /// `cache`: a plan's steps name the same few folders, and resolving
    /// follows every component's links (a syscall each).
    fn within_effects_cached(
        &self,
        inner: &StepEffects,
        outer: &StepEffects,
        cache: &mut HashMap<PathBuf, Option<PathBuf>>,
    ) -> std::result::Result<(), String> {
        let mut resolve = |p: &PathBuf| {
            cache
                .entry(p.clone())
                .or_insert_with(|| self.resolve_declared(p))
                .clone()
        };
        let outer_reads: Vec<PathBuf> = outer
            .reads
            .iter()
            .chain(&outer.writes)
            .filter_map(&mut resolve)
            .collect();
        let outer_writes: Vec<PathBuf> = outer.writes.iter().filter_map(&mut resolve).collect();
        for r in &inner.reads {
            let resolved = resolve(r).ok_or_else(|| format!("{} is not a usable path", r.display()))?;
            if !outer_reads.iter().any(|o| resolved.starts_with(o)) {
                return Err(format!("reads {}", r.display()));
            }
        }
        for w in &inner.writes {
            let resolved = resolve(w).ok_or_else(|| format!("{} is not a usable path", w.display()))?;
            if !outer_writes.iter().any(|o| resolved.starts_with(o)) {
                return Err(format!("writes {}", w.display()));
            }
        }
        if let Some(host) = inner.network.iter().find(|h| !outer.network.contains(h)) {
            return Err(format!("contacts {host}"));
        }
        Ok(())
    }

    /// Checks a sandboxed call against the run's grants.
    fn prepare(
        &self,
        st: &RunState,
        tool: &str,
        op: &str,
        input: &serde_json::Value,
    ) -> Result<call::PreparedCall<'a>> {
        // The python tool runs whatever script the model wrote: it sees only
        // the folders the current step declares, as the shell does.
        let narrowed;
        let grants = match (tool, st.plan.current_step()) {
            ("python", Some(step)) => {
                narrowed = self
                    .step_grants(st, &st.plan.steps[step - 1].effects)
                    .map_err(Error::InvalidArgs)?;
                &narrowed
            }
            _ => &st.task.grants,
        };
        let visible = crate::stage::visible_output(self.workspace, Some(&st.run), grants)?;
        call::prepare(
            self.workspace,
            self.toolbox,
            tool,
            op,
            input,
            grants,
            self.settings.limits,
            &visible,
        )
    }

    fn tool_call(&self, st: &mut RunState, id: &CallId, tool: &str, op: &str, input: &serde_json::Value) -> ToolReply {
        let Some(step) = st.plan.current_step() else {
            let msg = if st.plan.steps.is_empty() {
                "make a plan first: call update_plan with the checklist and each step's effects"
            } else {
                "every step of the plan is finished; add a step (update_plan with a reason) before doing more"
            };
            return ToolReply::err(msg);
        };
        if let Err(e) = self.begin_step(st, step - 1) {
            return ToolReply::err(e);
        }
        let prepared = match self.prepare(st, tool, op, input) {
            Ok(p) => p,
            Err(e) => {
                // Every call refused before it ran is shown as a blocked attempt.
                self.block(st, e.to_string());
                return ToolReply::err(e.to_string());
            }
        };
        let concrete = StepEffects {
            reads: prepared.reads.clone(),
            writes: prepared.writes.clone(),
            network: Vec::new(),
        };
        if let Err(what) = self.within_effects(&concrete, &st.plan.steps[step - 1].effects) {
            let reason = format!(
                "blocked: step {step} ({:?}) did not declare that it {what}. Revise the plan with update_plan \
                 (declare it in the step's effects and give a reason) if this is really needed",
                st.plan.steps[step - 1].title
            );
            self.emit(
                &st.run,
                Event::Blocked {
                    step,
                    reason: reason.clone(),
                },
            );
            return ToolReply::err(reason);
        }
        let run = st.run.clone();
        let emit = |e: Event| self.emit(&run, e);
        let source = format!("{tool}.{op}");
        match call::execute(&prepared, id, &emit) {
            Ok(output) => {
                let mut text = format!("{}\n{}", output.text, output.json);
                // What it left in its copy of output/, then what it proposed:
                // two changesets, so a proposal that cannot be applied (renames
                // in a folder granted read-only) does not hold back its deliverable.
                let delivered = match prepared.output_changes() {
                    Ok(changes) => changes,
                    Err(reason) => {
                        let reason =
                            format!("the call's files in output/ were not kept: {reason}; nothing was changed");
                        self.block(st, reason.clone());
                        text.push('\n');
                        text.push_str(&reason);
                        return ToolReply::err(self.shown_output(&st.run, id, &source, &text));
                    }
                };
                // One budget for the call: what it left in output/ and what it proposed.
                let bytes = staged_bytes(&delivered, &|g| call::PreparedCall::delivered_source(&delivered, g))
                    .saturating_add(staged_bytes(&output.changes, &|g| prepared.staged(g)));
                if bytes > crate::stage::CALL_BYTE_BUDGET {
                    let reason = format!(
                        "the call's new and changed files come to {} MiB, more than the {} MiB one call may write; \
                         nothing was changed",
                        bytes >> 20,
                        crate::stage::CALL_BYTE_BUDGET >> 20
                    );
                    self.block(st, reason.clone());
                    text.push('\n');
                    text.push_str(&reason);
                    return ToolReply::err(self.shown_output(&st.run, id, &source, &text));
                }
                let from_output = |g: &str| call::PreparedCall::delivered_source(&delivered, g);
                let from_scratch = |g: &str| prepared.staged(g);
                let sets: [(&[deskhand_types::ProposedChange], &ContentSource<'_>); 2] =
                    [(&delivered, &from_output), (&output.changes, &from_scratch)];
                let mut refused = false;
                for (changes, content) in sets {
                    if changes.is_empty() {
                        continue;
                    }
                    let outcome = self.apply_changes(st, step, id, content, changes);
                    text.push('\n');
                    match outcome {
                        Ok(done) => text.push_str(&done),
                        Err(refusal) => {
                            text.push_str(&refusal.text);
                            refused |= refusal.blocked;
                        }
                    }
                }
                let shown = self.shown_output(&st.run, id, &source, &text);
                if refused {
                    ToolReply::err(shown)
                } else {
                    ToolReply::ok(shown)
                }
            }
            Err(e) => {
                if matches!(
                    e,
                    Error::Call(CallError::Tool(
                        ToolError::Denied { .. } | ToolError::AlreadyExists { .. }
                    ))
                ) {
                    // The sandbox itself refused: a blocked attempt too.
                    self.block(st, e.to_string());
                }
                ToolReply::err(self.shown_output(&st.run, id, &source, &e.to_string()))
            }
        }
    }

    /// Takes a tool's proposed changes through the guard rails, the step's
    /// declared writes, the gate and the changeset engine. Ok: what was
    /// applied; Err: why nothing was (both go back to the model).
    fn apply_changes(
        &self,
        st: &RunState,
        step: usize,
        id: &CallId,
        staged: &dyn Fn(&str) -> Result<PathBuf>,
        proposed: &[deskhand_types::ProposedChange],
    ) -> std::result::Result<String, Refusal> {
        let blocked = |reason: String| {
            self.emit(
                &st.run,
                Event::Blocked {
                    step,
                    reason: reason.clone(),
                },
            );
            Err(Refusal {
                text: format!("deskhand changed nothing: {reason}"),
                blocked: true,
            })
        };
        let roots = match self.workspace.change_roots(&st.task.grants) {
            Ok(r) => r,
            Err(e) => return blocked(e.to_string()),
        };
        // The host hashes and copies staged content: a guest's sparse file of
        // many GiB costs it nothing to make, so the sizes are checked first.
        // One call's budget was checked by its caller (the tool call or the
        // shell's comparison); the run's is checked here.
        let staged_bytes = staged_bytes(proposed, staged);
        let written = match crate::stage::bytes_written(self.workspace, &st.run) {
            Ok(n) => n,
            Err(e) => return blocked(e.to_string()),
        };
        if written.saturating_add(staged_bytes) > crate::stage::RUN_BYTE_BUDGET {
            return blocked(format!(
                "this run has written {} MiB already; with these {} MiB it would pass the {} MiB one run may write",
                written >> 20,
                staged_bytes >> 20,
                crate::stage::RUN_BYTE_BUDGET >> 20
            ));
        }
        let cs = match changeset::propose(proposed, &roots, staged) {
            Ok(cs) => cs,
            Err(e @ changeset::ChangeError::Outside { .. }) if self.in_read_only_grant(st, proposed) => {
                // A tool proposing changes in a folder granted read-only (a
                // rename proposal to review, say) is not an attack: say why
                // nothing changed and how to let it.
                let note = format!("the tool's {} proposed change(s) were not applied: {e}", proposed.len());
                self.emit(&st.run, Event::Notice { message: note.clone() });
                return Err(Refusal {
                    text: format!("deskhand changed nothing: {note}"),
                    blocked: false,
                });
            }
            Err(e) => return blocked(format!("the proposed changes were refused: {e}")),
        };
        let declared = &st.plan.steps[step - 1].effects;
        let touched = StepEffects {
            reads: Vec::new(),
            writes: cs.touched_paths().into_iter().map(PathBuf::from).collect(),
            network: Vec::new(),
        };
        if let Err(what) = self.within_effects(&touched, declared) {
            return blocked(format!(
                "step {step} did not declare that it {what}; revise the plan with update_plan to declare it"
            ));
        }
        self.emit(
            &st.run,
            Event::ChangesProposed {
                step,
                call: id.clone(),
                changeset: cs.id.clone(),
                changes: cs.file_changes(),
            },
        );
        let description = cs.render();
        let output = self
            .workspace
            .output_dir()
            .canonicalize()
            .unwrap_or_else(|_| self.workspace.output_dir());
        let approval = crate::gate::approve_changes(
            self.gate,
            self.workspace.journal(),
            &ChangesApproval {
                run: &st.run,
                step,
                mode: st.task.mode,
                description: &description,
                deletions: cs.deletions(),
            },
            &cs.file_changes(),
            &output,
            st.approved.get(&(step - 1)).map(|(_, by)| by.as_str()),
        );
        let refused = |reason: String| {
            self.emit(
                &st.run,
                Event::ChangesRefused {
                    changeset: cs.id.clone(),
                    reason: reason.clone(),
                },
            );
            Err(Refusal {
                text: format!("deskhand changed nothing: {reason}"),
                blocked: true,
            })
        };
        let by = match approval {
            Approval::Approved { by } => by,
            Approval::Rejected { reason } => {
                let reason = format!("the changes were not approved: {reason}");
                self.emit(
                    &st.run,
                    Event::Blocked {
                        step,
                        reason: reason.clone(),
                    },
                );
                return refused(reason);
            }
        };
        match changeset::apply(
            self.workspace,
            &st.run,
            step,
            &id.0,
            &cs,
            &by,
            changeset::ApplyOptions::default(),
        ) {
            Ok(applied) => {
                self.emit(
                    &st.run,
                    Event::ChangesApplied {
                        changeset: cs.id.clone(),
                        by: by.clone(),
                        count: applied.count,
                    },
                );
                Ok(format!(
                    "deskhand applied {} change(s) (approved by {by}); `deskhand undo {}` reverses them:\n{description}",
                    applied.count, st.run
                ))
            }
            Err(e) => refused(format!("applying the changes failed and nothing was changed: {e}")),
        }
    }

    /// Runs a native command for the current step: it sees only the folders
    /// the step declares (read-only, or a scratch copy where the step writes
    /// a folder granted read-write), and what it changed goes through the
    /// same changeset path as a tool's proposals.
    fn shell_call(&self, st: &mut RunState, id: &CallId, input: &serde_json::Value) -> ToolReply {
        let Some(backend) = self.shell else {
            return ToolReply::err("there is no shell sandbox on this machine");
        };
        let args: meta::ShellArgs = match serde_json::from_value(input.clone()) {
            Ok(a) => a,
            Err(e) => return ToolReply::err(format!("shell arguments are invalid: {e}")),
        };
        let Some(step) = st.plan.current_step() else {
            return ToolReply::err("make a plan first: call update_plan with the checklist and each step's effects");
        };
        if let Err(e) = self.begin_step(st, step - 1) {
            return ToolReply::err(e);
        }
        let grants = match self.step_grants(st, &st.plan.steps[step - 1].effects) {
            Ok(g) => g,
            Err(reason) => {
                self.block(st, reason.clone());
                return ToolReply::err(reason);
            }
        };
        // The workdir is a path like any other: inside the step's folders,
        // else Blocked before anything runs (the command may still `cd` to
        // the sandbox's private /tmp).
        let workdir = args.workdir.as_deref().map(|w| {
            let dir = self.workspace.resolve_path(w).map_err(|e| e.to_string())?;
            let sandbox = self
                .workspace
                .sandbox(&grants, crate::wasm::Limits::default())
                .map_err(|e| e.to_string())?;
            if sandbox.mounts.iter().any(|m| dir.starts_with(&m.host)) {
                Ok(dir)
            } else {
                Err(format!(
                    "the shell's workdir {w} is outside the folders step {step} declares; declare it in the step's reads or writes"
                ))
            }
        });
        let workdir = match workdir {
            Some(Ok(w)) => Some(w),
            Some(Err(reason)) => {
                self.block(st, reason.clone());
                return ToolReply::err(reason);
            }
            None => None,
        };
        self.emit(
            &st.run,
            Event::ToolCallBegin {
                call: id.clone(),
                tool: "shell".into(),
                operation: "run".into(),
                args: input.clone(),
            },
        );
        let limits = deskhand_host_vm::Limits {
            wall_clock: self.settings.limits.deadline.max(std::time::Duration::from_secs(1)),
            ..deskhand_host_vm::Limits::default()
        };
        let command = vec!["/bin/sh".to_owned(), "-c".to_owned(), args.command];
        let native = crate::stage::visible_output(self.workspace, Some(&st.run), &grants).and_then(|visible| {
            crate::shell::run_native(
                self.workspace,
                backend,
                &grants,
                &command,
                limits,
                workdir,
                &visible,
                &mut |_| {},
            )
        });
        let native = match native {
            Ok(n) => n,
            Err(e) => {
                self.emit(
                    &st.run,
                    Event::ToolCallEnd {
                        call: id.clone(),
                        outcome: CallOutcome::Stopped { reason: e.to_string() },
                        elapsed_ms: 0,
                    },
                );
                return ToolReply::err(e.to_string());
            }
        };
        let mut text = format!("{}\n{}", native.describe(), native.tail);
        self.emit(
            &st.run,
            Event::ToolCallEnd {
                call: id.clone(),
                outcome: CallOutcome::Ok {
                    output: deskhand_types::ToolOutput::new(
                        serde_json::json!({"ended": native.describe()}),
                        text.clone(),
                    ),
                },
                elapsed_ms: u64::try_from(native.outcome.elapsed.as_millis()).unwrap_or(u64::MAX),
            },
        );
        if let Some(reason) = &native.refused {
            self.block(st, reason.clone());
            text.push_str(&format!("\n{reason}"));
        } else if !native.proposed.is_empty() {
            let outcome = self.apply_changes(st, step, id, &|g| native.staged(g), &native.proposed);
            text.push('\n');
            text.push_str(&match outcome {
                Ok(done) => done,
                Err(refused) => refused.text,
            });
        }
        let reply = self.shown_output(&st.run, id, "shell", &text);
        if native.outcome.success() {
            ToolReply::ok(reply)
        } else {
            ToolReply::err(reply)
        }
    }

    /// Whether every change proposed lies in a folder this run was granted
    /// read-only: a proposal to review there (new names for the person's
    /// files, say) is not an attempt to get past the grants.
    fn in_read_only_grant(&self, st: &RunState, proposed: &[deskhand_types::ProposedChange]) -> bool {
        let read_only: Vec<PathBuf> = st
            .task
            .grants
            .iter()
            .filter(|g| !g.access.is_writable())
            .filter_map(|g| self.resolve_declared(&g.path))
            .collect();
        let workspace_files = [
            crate::workspace::INSTRUCTIONS_FILE,
            crate::workspace::MEMORY_FILE,
            "AGENTS.md",
            "CLAUDE.md",
            crate::workspace::STATE_DIR,
        ]
        .map(|f| self.workspace.root().join(f));
        proposed.iter().all(|c| {
            c.paths().into_iter().all(|p| {
                self.workspace.resolve_path(p).is_ok_and(|p| {
                    read_only.iter().any(|r| p.starts_with(r)) && !workspace_files.iter().any(|w| p.starts_with(w))
                })
            })
        })
    }

    /// The grants a shell command gets: the folders its step declares,
    /// read-write only where the step writes inside a folder granted read-write.
    fn step_grants(&self, st: &RunState, effects: &StepEffects) -> std::result::Result<Vec<Grant>, String> {
        let rw_roots: Vec<PathBuf> = self
            .workspace
            .change_roots(&st.task.grants)
            .map_err(|e| e.to_string())?;
        let output = self.workspace.output_dir();
        let mut grants = Vec::new();
        for (path, write) in effects
            .reads
            .iter()
            .map(|p| (p, false))
            .chain(effects.writes.iter().map(|p| (p, true)))
        {
            let resolved = self
                .resolve_declared(path)
                .ok_or_else(|| format!("{} is not a usable path", path.display()))?;
            if resolved.starts_with(&output) {
                continue;
            }
            if !resolved.is_dir() {
                return Err(format!(
                    "scripts and shell commands see whole folders: step {} declares {}, which is not a folder; \
                     declare the folder that holds it",
                    st.plan.current_step().unwrap_or(0),
                    path.display()
                ));
            }
            let writable = write && rw_roots.iter().any(|r| resolved.starts_with(r));
            grants.push(if writable {
                Grant::read_write(resolved)
            } else {
                Grant::read_only(resolved)
            });
        }
        Ok(grants)
    }

    /// Records an attempt that was refused, against the current step.
    fn block(&self, st: &RunState, reason: String) {
        let step = st.plan.current_step().unwrap_or(0);
        self.emit(&st.run, Event::Blocked { step, reason });
    }

    /// Frames a tool's output as untrusted and cuts it to the model's share,
    /// keeping the full text for `read_tool_output`.
    fn shown_output(&self, run: &RunId, id: &CallId, source: &str, text: &str) -> String {
        let max = self.settings.max_tool_output;
        if text.len() <= max {
            return context::untrusted(source, text);
        }
        let stored = self.store_output(run, id, text);
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let pointer = match stored {
            Ok(()) => format!(
                "[output truncated: showing {cut} of {} bytes. Call read_tool_output with {{\"call\": \"{id}\", \"offset\": {cut}}} for more]",
                text.len()
            ),
            Err(e) => format!(
                "[output truncated at {cut} of {} bytes; the rest could not be kept: {e}]",
                text.len()
            ),
        };
        format!("{}\n{pointer}", context::untrusted(source, &text[..cut]))
    }

    fn output_path(&self, run: &RunId, id: &str) -> PathBuf {
        let safe: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.workspace
            .state_dir()
            .join("outputs")
            .join(&run.0)
            .join(format!("{safe}.txt"))
    }

    fn store_output(&self, run: &RunId, id: &CallId, text: &str) -> std::io::Result<()> {
        let path = self.output_path(run, &id.0);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, text)
    }

    fn page_output(&self, st: &mut RunState, input: &serde_json::Value) -> std::result::Result<String, String> {
        let page: meta::OutputPage = serde_json::from_value(input.clone())
            .map_err(|e| format!("read_tool_output arguments are invalid: {e}"))?;
        let text = std::fs::read_to_string(self.output_path(&st.run, &page.call))
            .map_err(|_| format!("no stored output for call {:?} in this run", page.call))?;
        if page.offset >= text.len() {
            return Err(format!("offset {} is past the end ({} bytes)", page.offset, text.len()));
        }
        let mut start = page.offset;
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (start + self.settings.max_tool_output).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let more = if end < text.len() {
            format!("\n[more from offset {end}]")
        } else {
            "\n[end of output]".into()
        };
        Ok(format!(
            "{}{more}",
            context::untrusted("stored tool output", &text[start..end])
        ))
    }

    /// Checks a sub-agent's grants against the parent's: each within a parent
    /// grant, and read-write only where the parent had read-write.
    fn child_grants(
        &self,
        parent: &[Grant],
        asked: Option<&[meta::SubGrant]>,
    ) -> std::result::Result<Vec<Grant>, String> {
        let Some(asked) = asked else { return Ok(parent.to_vec()) };
        let resolved_parent: Vec<(PathBuf, Access)> = parent
            .iter()
            .filter_map(|g| self.resolve_declared(&g.path).map(|p| (p, g.access)))
            .collect();
        asked
            .iter()
            .map(|g| {
                let path = self
                    .resolve_declared(Path::new(&g.path))
                    .ok_or_else(|| format!("{} is not a usable path", g.path))?;
                let allowed = resolved_parent
                    .iter()
                    .any(|(p, access)| path.starts_with(p) && (g.access == Access::ReadOnly || access.is_writable()));
                if allowed {
                    Ok(Grant { path, access: g.access })
                } else {
                    Err(format!(
                        "a sub-agent cannot be granted {} ({}): it is not within this run's grants",
                        g.path, g.access
                    ))
                }
            })
            .collect()
    }

    fn spawn_subagents(&self, st: &mut RunState, input: &serde_json::Value) -> std::result::Result<String, String> {
        let request: meta::SubagentRequest =
            serde_json::from_value(input.clone()).map_err(|e| format!("spawn_subagents arguments are invalid: {e}"))?;
        let Some(step) = st.plan.current_step() else {
            return Err("make a plan first: sub-agents run inside a step".into());
        };
        self.begin_step(st, step - 1)?;
        // However the model asks, sub-agents stay few and shallow.
        if request.tasks.len() > MAX_SUBAGENTS_PER_CALL {
            return Err(format!(
                "spawn_subagents asked for {} sub-agents; at most {MAX_SUBAGENTS_PER_CALL} run per call: group the work",
                request.tasks.len()
            ));
        }
        let depth = st.run.0.matches('.').count() + 1;
        if depth > MAX_SUBAGENT_DEPTH {
            return Err(format!(
                "a sub-agent this deep cannot start more: sub-agents nest at most {MAX_SUBAGENT_DEPTH} levels; do \
                 the work here"
            ));
        }
        let top = RunId(st.run.0.split('.').next().unwrap_or(&st.run.0).to_owned());
        let journaled = self.workspace.journal().descendants(&top).map_err(|e| e.to_string())?;
        if let Err(started) = reserve_subagents(&top, journaled, request.tasks.len()) {
            return Err(format!(
                "this run has started {started} sub-agents; one run may start at most {MAX_SUBAGENTS_PER_RUN}, so \
                 these {} cannot start",
                request.tasks.len()
            ));
        }
        let mut children = Vec::new();
        for t in &request.tasks {
            let grants = self.child_grants(&st.task.grants, t.grants.as_deref())?;
            // Sub-agents run in the mode the person chose for this run.
            children.push(Task {
                outcome: t.outcome.clone(),
                grants,
                mode: st.task.mode,
            });
        }
        let Some((_, approved_by)) = st.approved.get(&(step - 1)) else {
            return Err(format!("step {step} has no approval, so it cannot start sub-agents"));
        };
        let ceiling = Ceiling {
            effects: st.plan.steps[step - 1].effects.clone(),
            approved_by: approved_by.clone(),
            mode: st.task.mode,
        };
        let siblings_cancel = Arc::new(AtomicBool::new(false));
        let cancel: Vec<Arc<AtomicBool>> = st.cancel.iter().cloned().chain([siblings_cancel.clone()]).collect();
        let next = AtomicUsize::new(0);
        let results: Mutex<HashMap<usize, ChildOutcome>> = Mutex::new(HashMap::new());
        let workers = self.settings.concurrency.clamp(1, children.len().max(1));
        let parent = st.run.clone();
        let earlier_children = st.earlier_children.clone();
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(task) = children.get(i) else { break };
                        if cancel.iter().any(|c| c.load(Ordering::Relaxed)) {
                            results
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(i, ChildOutcome::NotStarted);
                            continue;
                        }
                        let earlier = {
                            let mut kids = earlier_children.lock().unwrap_or_else(|p| p.into_inner());
                            kids.iter()
                                .position(|k| k.outcome == task.outcome)
                                .map(|i| kids.remove(i))
                        };
                        let outcome = match earlier {
                            Some(kid) => self.reuse_child(&parent, &kid, ceiling.clone(), cancel.clone()),
                            None => self.run_child(&parent, step, task.clone(), ceiling.clone(), cancel.clone()),
                        };
                        let outcome = match outcome {
                            Ok(report) => ChildOutcome::Ran(report),
                            Err(e) => ChildOutcome::CouldNotRun(e),
                        };
                        let failed = !matches!(&outcome, ChildOutcome::Ran(r) if r.status == RunStatus::Succeeded);
                        if failed {
                            siblings_cancel.store(true, Ordering::Relaxed);
                        }
                        results.lock().unwrap_or_else(|p| p.into_inner()).insert(i, outcome);
                    }
                });
            }
        });
        let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut report = Vec::new();
        let mut first_failure = None;
        for (i, task) in children.iter().enumerate() {
            let (status, summary, run) = match results.get(&i) {
                Some(ChildOutcome::Ran(r)) => (r.status, r.summary.clone(), Some(r.run.0.clone())),
                Some(ChildOutcome::CouldNotRun(e)) => (RunStatus::Failed, e.clone(), None),
                Some(ChildOutcome::NotStarted) | None => (
                    RunStatus::Stopped,
                    "not started: the step was cancelled first".into(),
                    None,
                ),
            };
            // A sibling stopped because another failed is not the failure to report;
            // a sub-agent that failed (its model, its plan, its tools) is.
            if first_failure.is_none() && matches!(status, RunStatus::Failed | RunStatus::NeedsInput) {
                first_failure = Some(format!("sub-agent {:?} {}: {summary}", task.outcome, status.as_str()));
            }
            report.push(
                serde_json::json!({"outcome": task.outcome, "run": run, "status": status.as_str(), "summary": summary}),
            );
        }
        let listing = serde_json::to_string_pretty(&report).unwrap_or_default();
        match first_failure {
            Some(failure) => {
                self.set_step_status(st, step - 1, StepStatus::Failed, Some(failure.clone()));
                let _ = self.workspace.journal().record_plan(&st.run, &st.plan);
                Err(format!(
                    "{failure}\nThe other sub-agents were cancelled. Reports:\n{}",
                    context::untrusted("sub-agents", &listing)
                ))
            }
            None => Ok(context::untrusted("sub-agents", &listing)),
        }
    }

    fn run_child(
        &self,
        parent: &RunId,
        step: usize,
        task: Task,
        ceiling: Ceiling,
        cancel: Vec<Arc<AtomicBool>>,
    ) -> std::result::Result<RunReport, String> {
        let child_agent = Agent {
            workspace: self.workspace,
            toolbox: self.toolbox,
            provider: self.provider,
            gate: self.gate,
            settings: self.settings.clone(),
            observer: self.observer.clone(),
            skills_prompt: self.skills_prompt.clone(),
            shell: self.shell,
        };
        let mut state = child_agent
            .begin(task, Some((parent, step)), Some(ceiling), cancel)
            .map_err(|e| e.to_string())?;
        // A sub-agent whose model fails has failed (its run is journaled as
        // such by `drive`); the error is its report to the parent.
        let report = child_agent.drive(&mut state).unwrap_or_else(|e| {
            // A model's failure was journaled by `drive`; any other (the
            // journal, the toolbox) is recorded here so the child's row does
            // not stay "running".
            let summary = e.to_string();
            let _ = self
                .workspace
                .journal()
                .set_task_status(&state.run, RunStatus::Failed, &summary);
            RunReport {
                run: state.run.clone(),
                status: RunStatus::Failed,
                summary,
                plan: state.plan.clone(),
                question: None,
            }
        });
        self.sub_agent_ended(parent, &report);
        Ok(report)
    }

    /// Closes a sub-agent's SubAgentBegin in its parent's journal.
    fn sub_agent_ended(&self, parent: &RunId, report: &RunReport) {
        self.emit(
            parent,
            Event::SubAgentEnd {
                child: report.run.clone(),
                status: report.status,
                summary: report.summary.clone(),
            },
        );
    }
}

/// Where the content of a proposed change lies, by the name the change gives it.
type ContentSource<'a> = dyn Fn(&str) -> Result<PathBuf> + 'a;

/// Bytes of the content `proposed` would write, from the sizes alone.
fn staged_bytes(proposed: &[deskhand_types::ProposedChange], staged: &dyn Fn(&str) -> Result<PathBuf>) -> u64 {
    proposed
        .iter()
        .filter_map(|c| match c {
            deskhand_types::ProposedChange::Create { staged: from, .. }
            | deskhand_types::ProposedChange::Overwrite { staged: from, .. } => staged(from).ok(),
            _ => None,
        })
        .filter_map(|p| std::fs::symlink_metadata(p).ok())
        .fold(0u64, |sum, m| sum.saturating_add(m.len()))
}

/// Sub-agents each top-level run has been given in this process: sub-agents
/// spawning at once each reserve theirs here, so together they cannot pass
/// [`MAX_SUBAGENTS_PER_RUN`]. Err: how many were started already.
fn reserve_subagents(top: &RunId, journaled: usize, wanted: usize) -> std::result::Result<(), usize> {
    static RESERVED: Mutex<std::collections::BTreeMap<String, usize>> = Mutex::new(std::collections::BTreeMap::new());
    let mut reserved = RESERVED.lock().unwrap_or_else(|p| p.into_inner());
    let count = reserved.entry(top.0.clone()).or_insert(0);
    let started = (*count).max(journaled);
    if started.saturating_add(wanted) > MAX_SUBAGENTS_PER_RUN {
        return Err(started);
    }
    *count = started + wanted;
    Ok(())
}

/// Why a tool's changes were not applied, as the model is told.
struct Refusal {
    text: String,
    /// An attempt the run refused (shown as blocked, an error to the model),
    /// rather than a proposal left for the person to review.
    blocked: bool,
}

/// How one sub-agent of a fan-out ended.
enum ChildOutcome {
    /// It ran to an end (succeeded, failed, stopped or waiting on the person).
    Ran(RunReport),
    /// It could not be started (the journal refused it, say).
    CouldNotRun(String),
    /// The step was cancelled before its turn came.
    NotStarted,
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
