//! The loop itself: model turns, and each tool use dispatched to its handler.

use super::*;

impl Agent<'_> {
    pub(super) fn drive(&self, st: &mut RunState) -> Result<RunReport> {
        let _end_connectors = self.end_connectors_with(st);
        self.journal_held_connector_tools(st);
        let mut tools = self.tool_specs()?;
        let mut quarantined = self.connector_quarantines();
        loop {
            let what_now = format!(
                "Check that the disk has space and the journal is writable, then `deskhand resume {}` goes on \
                 from here",
                st.run
            );
            if let Some(lost) = self.workspace.journal().lost_event(&st.run, &what_now) {
                // The run's record is incomplete: stop before doing anything
                // more. No end is journaled, so the run stays resumable (a
                // killed run's state: the page offers Resume).
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
            if self.connector_quarantines() != quarantined {
                // A connector tool found changed is hidden from the model from the next turn on.
                quarantined = self.connector_quarantines();
                tools = self.tool_specs()?;
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
                            finish_reason: None,
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
                    finish_reason: Some(
                        match &response.stop_reason {
                            StopReason::EndTurn => "stop",
                            StopReason::ToolUse => "tool_call",
                            StopReason::MaxTokens => "length",
                            StopReason::Other(other) => other,
                        }
                        .to_owned(),
                    ),
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
                    if self.gate.unattended().is_some() {
                        // No one is there: the rest of the turn waits with the question.
                        self.emit(
                            &st.run,
                            Event::Blocked {
                                step: st.plan.current_step().unwrap_or_default(),
                                reason: format!("stopped for you: the run asks you: {question}"),
                            },
                        );
                        st.held = Some(question.clone());
                    }
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

    pub(super) fn system_prompt(&self, st: &RunState) -> String {
        context::system_prompt(self.workspace, &st.task.grants, &self.skills_prompt, &st.plan)
    }

    /// One model turn, compacting older turns first when they no longer fit.
    pub(super) fn ask_model(
        &self,
        st: &mut RunState,
        tools: &[ToolSpec],
    ) -> Result<crate::model::ModelResponse, ProviderError> {
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
    pub(super) fn compact(&self, st: &mut RunState, keep: usize) -> bool {
        let Some(replaced) = context::compaction_cut(&st.messages, keep) else {
            return false;
        };
        let summary = context::digest(&st.messages[1..1 + replaced]);
        context::apply_compaction(&mut st.messages, replaced, &summary);
        self.emit(&st.run, Event::Compacted { replaced, summary });
        true
    }

    /// Journals a runtime-provided tool's call as a Begin/End pair.
    pub(super) fn meta_call(
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
            // It waits for the person (an unattended run): resume runs it again.
            _ if self.check_held(st) => {
                let reason = held::waiting();
                (CallOutcome::Stopped { reason: reason.clone() }, ToolReply::err(reason))
            }
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
}
