//! Resuming a run from the journal after a crash, a `kill -9`, or a
//! question to the person. Finished tool calls are never run again: their
//! journaled outcomes are handed back to the model. A call that began but
//! did not end is run again only if it writes nothing, or if what it was to
//! write does not exist yet (tools create files atomically, so an existing
//! target means the call completed).
//!
//! A run that ended can also be given a new instruction ([`Agent::follow_up`]):
//! a new turn of the same conversation, its steps approved anew through the
//! same gate and its changes through the same pipeline.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use deskhand_types::model::{Block, Message, Role};
use deskhand_types::{CallOutcome, Event, Mode, Plan, RunId, RunStatus, StepStatus};

use super::{Agent, Ceiling, RunReport, RunState, ToolReply, meta, reply_from_outcome};
use crate::error::{Error, Result};

impl Agent<'_> {
    /// Continues `run` from its journal. `answer` answers the question the
    /// run is waiting on, if it is waiting on one.
    pub fn resume(&self, run: &RunId, answer: Option<&str>) -> Result<RunReport> {
        self.resume_with_mode(run, answer, None)
    }

    /// [`Agent::resume`] in `mode` rather than the one the run started in
    /// (None keeps that one), say act mode for a run begun in ask mode where
    /// no one could be asked. The switch is journaled (`ModeChanged`) and
    /// later resumes keep it.
    pub fn resume_with_mode(&self, run: &RunId, answer: Option<&str>, mode: Option<Mode>) -> Result<RunReport> {
        let row = self
            .workspace
            .journal()
            .task(run)?
            .ok_or_else(|| Error::UnknownRun { run: run.0.clone() })?;
        if let Some(parent) = row.parent {
            return Err(Error::ResumeChild {
                run: run.0.clone(),
                parent: parent.0,
            });
        }
        self.resume_inner(
            run,
            answer,
            None,
            mode,
            None,
            self.settings.stop.iter().cloned().collect(),
        )
    }

    /// Gives `run`, which ended, a new instruction from the person ("now in
    /// USD"): the run resumes with `say` as a new message after everything it
    /// did, and is driven again. Its steps are approved anew (in `mode`, or
    /// the run's own), as any run's are. A run waiting for an answer takes
    /// `say` as the answer; one that has not ended is resumed first.
    pub fn follow_up(&self, run: &RunId, say: &str, mode: Option<Mode>) -> Result<RunReport> {
        let say = say.trim();
        if say.is_empty() {
            return Err(Error::InvalidArgs(
                "the new instruction is empty: say what you want done next".into(),
            ));
        }
        let journal = self.workspace.journal();
        let row = journal
            .task(run)?
            .ok_or_else(|| Error::UnknownRun { run: run.0.clone() })?;
        if let Some(parent) = row.parent {
            return Err(Error::ResumeChild {
                run: run.0.clone(),
                parent: parent.0,
            });
        }
        match crate::view::RunView::load(journal, run)?.ended {
            Some((RunStatus::NeedsInput, _)) => self.resume_with_mode(run, Some(say), mode),
            Some(_) => {
                let cancel = self.settings.stop.iter().cloned().collect();
                self.resume_inner(run, None, Some(say), mode, None, cancel)
            }
            None => Err(Error::InvalidArgs(format!(
                "run {run} has not ended: resume it first (`deskhand resume {run}`), then give it a new instruction"
            ))),
        }
    }

    fn resume_inner(
        &self,
        run: &RunId,
        answer: Option<&str>,
        say: Option<&str>,
        mode: Option<Mode>,
        ceiling: Option<Ceiling>,
        cancel: Vec<Arc<AtomicBool>>,
    ) -> Result<RunReport> {
        let journal = self.workspace.journal();
        let view = crate::view::RunView::load(journal, run)?;
        let mut approved = view.approved_steps();
        let calls: HashMap<&str, &crate::view::CallRecord> = view.calls.iter().map(|c| (c.id.as_str(), c)).collect();
        let (model_failed, turn, ended) = (view.model_failed, view.turn, view.ended.clone());
        let mut task = view
            .task
            .clone()
            .ok_or_else(|| Error::UnknownRun { run: run.0.clone() })?;
        let (messages, plan) = (view.messages.clone(), view.plan.clone());
        let resumable =
            |status: RunStatus| status == RunStatus::NeedsInput || (status == RunStatus::Failed && model_failed);
        if let Some((status, summary)) = &ended
            && !resumable(*status)
            && say.is_none()
        {
            return Err(Error::RunFinished {
                run: run.0.clone(),
                status: status.as_str().into(),
                summary: summary.clone(),
            });
        }
        let pending: Vec<(String, String, serde_json::Value)> = match messages.last() {
            Some(m) if m.role == Role::Assistant => m
                .tool_uses()
                .map(|(id, name, input)| (id.into(), name.into(), input.clone()))
                .collect(),
            _ => Vec::new(),
        };
        let waiting = pending
            .iter()
            .find(|(id, name, _)| name == meta::ASK_PERSON && !calls.contains_key(id.as_str()));
        if let (Some((_, _, input)), None, None) = (waiting, answer, say) {
            let question = input["question"].as_str().unwrap_or("(a question)").to_owned();
            return Err(Error::NeedsAnswer {
                run: run.0.clone(),
                question,
            });
        }

        self.emit(run, Event::Resumed { run: run.clone() });
        if let Some(mode) = mode.filter(|m| *m != task.mode) {
            let name = |m: Mode| match m {
                Mode::Ask => "ask",
                Mode::Act => "act",
            };
            let message = format!(
                "the person resumed this run in {} mode; it was in {} mode",
                name(mode),
                name(task.mode)
            );
            self.emit(run, Event::ModeChanged { mode, message });
            task.mode = mode;
        }
        let children = journal.children(run)?;
        // A run resumed in ask mode asks again for what act mode approved;
        // a new instruction is new work, approved anew.
        if task.mode == Mode::Ask {
            approved.retain(|_, (_, by): &mut (String, String)| !by.contains("act mode"));
        }
        if say.is_some() {
            approved.clear();
        }
        let (egress, egress_blocked) = super::run_egress(run, ceiling.as_ref().and_then(|c| c.egress.as_ref()));
        let mut st = RunState {
            run: run.clone(),
            task,
            messages,
            plan,
            turn,
            cancel: cancel.into_iter().chain([Arc::new(AtomicBool::new(false))]).collect(),
            ceiling,
            approved,
            stop: None,
            held: None,
            earlier_children: Arc::new(Mutex::new(children)),
            egress,
            egress_blocked,
            browser: None,
        };
        // The hosts the run and its sub-agents contacted before (each first
        // contact is a notice in their journal) stay contacted; a run resumed
        // after a step that reads stays sealed.
        let earlier: Vec<RunId> = std::iter::once(run.clone())
            .chain(
                st.earlier_children
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .map(|c| c.id.clone()),
            )
            .collect();
        for id in &earlier {
            for row in journal.events(id)? {
                if let Event::Notice { message } = &row.event {
                    if let Some(target) = crate::egress::contacted_in_notice(message.as_str()) {
                        st.egress.restore_contacted(&target);
                    }
                    if let Some(what) = crate::egress::sealed_in_notice(message.as_str()) {
                        st.egress.restore_sealed(what);
                    }
                }
            }
        }
        // A step that started could have read what it declares (runs journaled
        // before the seal notice existed are sealed from their plan).
        if let Some((s, what)) = st
            .plan
            .steps
            .iter()
            .filter(|s| s.status != StepStatus::Pending)
            .find_map(|s| crate::egress::readable(&s.effects).map(|w| (s, w)))
        {
            st.egress.restore_sealed(&format!("step {:?} read {what}", s.title));
        }

        if let Some(say) = say {
            // Calls the ended run never answered are closed, then the
            // person's words: one message, as every tool use needs its result.
            let mut content: Vec<Block> = pending
                .iter()
                .map(|(id, name, _)| {
                    let (content, is_error) = match calls.get(id.as_str()).map(|c| (&c.tool, &c.outcome)) {
                        Some((tool, Some(outcome))) => reply_from_outcome(&format!("{tool}.{name}"), outcome),
                        _ => ("not run: the run had ended".to_owned(), true),
                    };
                    Block::ToolResult {
                        tool_use_id: id.clone(),
                        content,
                        is_error,
                    }
                })
                .collect();
            content.push(Block::Text { text: say.to_owned() });
            let msg = Message {
                role: Role::User,
                content,
            };
            st.messages.push(msg.clone());
            self.emit(run, Event::Message { message: msg });
        } else if !pending.is_empty() {
            let mut results = Vec::new();
            for (id, name, input) in pending {
                let reply = if name == meta::ASK_PERSON {
                    // The person's own words: not framed as untrusted.
                    ToolReply::ok(format!("The person answered: {}", answer.unwrap_or_default()))
                } else {
                    match calls.get(id.as_str()).map(|c| (&c.tool, &c.outcome)) {
                        // It waited for the person, who is here now.
                        Some((_, Some(outcome))) if super::held::waited(outcome) => {
                            self.dispatch(&mut st, &id, &name, &input)
                        }
                        Some((tool, Some(outcome))) => {
                            let (content, is_error) = reply_from_outcome(&format!("{tool}.{name}"), outcome);
                            ToolReply { content, is_error }
                        }
                        Some((_, None)) => self.redo_interrupted(&mut st, &id, &name, &input),
                        None => self.dispatch(&mut st, &id, &name, &input),
                    }
                };
                results.push(Block::ToolResult {
                    tool_use_id: id,
                    content: reply.content,
                    is_error: reply.is_error,
                });
            }
            let msg = Message {
                role: Role::User,
                content: results,
            };
            st.messages.push(msg.clone());
            self.emit(run, Event::Message { message: msg });
        }
        self.drive(&mut st)
    }

    /// A call that began before the interruption but never ended.
    fn redo_interrupted(&self, st: &mut RunState, id: &str, name: &str, input: &serde_json::Value) -> ToolReply {
        if let Some((tool, op)) = name.split_once(meta::TOOL_SEP)
            && let Ok(prepared) = self.prepare(st, tool, op, input)
            && !prepared.writes.is_empty()
            && prepared.writes.iter().all(|w| w.exists())
        {
            let done: Vec<String> = prepared.writes.iter().map(|w| w.display().to_string()).collect();
            let note = format!(
                "this call was interrupted by a crash after it completed: {} exists",
                done.join(", ")
            );
            self.emit(&st.run, Event::Notice { message: note.clone() });
            let outcome = CallOutcome::Ok {
                output: deskhand_types::ToolOutput::new(serde_json::json!({"path": done[0]}), note.clone()),
            };
            self.emit(
                &st.run,
                Event::ToolCallEnd {
                    call: deskhand_types::CallId(id.into()),
                    outcome,
                    elapsed_ms: 0,
                },
            );
            return ToolReply::ok(note);
        }
        self.dispatch(st, id, name, input)
    }

    /// A sub-agent started before the interruption: its report if it
    /// finished, else it is resumed.
    pub(super) fn reuse_child(
        &self,
        parent: &RunId,
        kid: &crate::journal::TaskRow,
        ceiling: Ceiling,
        cancel: Vec<Arc<AtomicBool>>,
    ) -> std::result::Result<RunReport, String> {
        match kid.status.as_str() {
            "succeeded" | "failed" | "stopped" => {
                let status = match kid.status.as_str() {
                    "succeeded" => RunStatus::Succeeded,
                    "failed" => RunStatus::Failed,
                    _ => RunStatus::Stopped,
                };
                Ok(RunReport {
                    run: kid.id.clone(),
                    status,
                    summary: kid.summary.clone(),
                    plan: Plan::default(),
                    question: None,
                })
            }
            _ => {
                // Its SubAgentBegin is in the parent's journal; the End comes now.
                let report = self
                    .resume_inner(&kid.id, None, None, Some(ceiling.mode), Some(ceiling), cancel)
                    .map_err(|e| e.to_string())?;
                self.sub_agent_ended(parent, &report);
                Ok(report)
            }
        }
    }
}
