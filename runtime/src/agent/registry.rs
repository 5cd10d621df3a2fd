//! The tools a model may call, each a handler behind one trait in one
//! registry, and the step driver that runs every tool use.
//!
//! A handler owns a tool's spec, the reading of its arguments and its
//! execution; what it declares and what it changes go through the run's one
//! approval policy ([`crate::gate`]) and one change pipeline
//! ([`crate::pipeline`]), never around them. The driver ([`Agent::dispatch`])
//! refuses calls in a cancelled or stopped run, starts the current plan step
//! (through the gate) before a call that acts within it, and journals the
//! runtime's own tools as a `ToolCallBegin`/`ToolCallEnd` pair (a sandboxed
//! call or the shell journals its pair itself: its outcome is the sandbox's).
//!
//! Adding an executor (a connector, a browser) is one handler here: its
//! `specs`, `takes`, `place` and `run`, and a line in [`HANDLERS`] (the runtime's own
//! small tools are one [`RuntimeTool`] each; an executor acting in a step that
//! needs something of the machine, one [`InStepTool`]).

use super::*;

/// Where a tool's call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// Inside the current plan step, which the driver starts first; the
    /// handler journals its call and its changes go through the pipeline.
    InStep,
    /// Beside the plan (the plan itself, sub-agents, paging): the driver
    /// journals the call, and a refusal is shown as a blocked attempt.
    Runtime,
}

/// One tool use as the model sent it.
pub(super) struct Use<'u> {
    pub(super) id: &'u CallId,
    pub(super) name: &'u str,
    pub(super) input: &'u serde_json::Value,
}

/// A model-facing tool.
pub(super) trait ToolHandler: Sync {
    /// What the model is offered (empty where this run cannot use it).
    fn specs(&self, agent: &Agent<'_>) -> Result<Vec<ToolSpec>>;
    /// Whether a call named `name` is this handler's.
    fn takes(&self, agent: &Agent<'_>, name: &str) -> bool;
    fn place(&self) -> Place;
    /// Runs the call; `step` is the plan step it runs in (1-based) for
    /// [`Place::InStep`], 0 otherwise. Ok and Err are what the model is
    /// told, Err marked as an error.
    fn run(
        &self,
        agent: &Agent<'_>,
        st: &mut RunState,
        step: StepNo,
        call: &Use<'_>,
    ) -> std::result::Result<String, String>;
}

/// Every tool the agent offers, in the order the model sees them.
const HANDLERS: &[&dyn ToolHandler] = &[
    // Before `Sandboxed`, which takes every name with `__` in it.
    &InStepTool {
        name: office::TO_PDF,
        spec: |agent| agent.toolbox.office().map(|_| office::spec()),
        run: |agent, st, step, id, input| agent.office_call(st, step, id, input),
    },
    // Before `Sandboxed`: browser_open, browser_read, ... (`agent/browser_calls.rs`).
    &browser_calls::BrowserTools,
    // Before `Sandboxed`: mcp__<connector>__<tool> (`agent/connector_calls.rs`).
    &connector_calls::ConnectorTools,
    &Sandboxed,
    &RuntimeTool {
        name: meta::UPDATE_PLAN,
        run: |agent, st, input| agent.update_plan(st, input),
    },
    &RuntimeTool {
        name: meta::SPAWN_SUBAGENTS,
        run: |agent, st, input| agent.spawn_subagents(st, input),
    },
    // The loop takes `ask_person` before the driver (the run stops for the
    // person's answer, which becomes the call's result on resume, and every
    // tool use of the turn waits with it); one that reaches the driver is refused.
    &RuntimeTool {
        name: meta::ASK_PERSON,
        run: |_, _, _| Err("ask_person is answered by the person when the run is resumed; it cannot run here".into()),
    },
    &RuntimeTool {
        name: meta::READ_SKILL,
        run: |agent, _, input| crate::skills::disclose(&agent.settings.skills, input),
    },
    &RuntimeTool {
        name: meta::READ_TOOL_OUTPUT,
        run: |agent, st, input| agent.page_output(st, input),
    },
    &InStepTool {
        name: meta::SHELL,
        spec: |agent| agent.shell.map(|_| meta::shell_spec()),
        run: |agent, st, step, id, input| agent.shell_call(st, step, id, input),
    },
];

/// The bundled sandboxed tools, one name per operation (`fs__list`).
struct Sandboxed;

impl ToolHandler for Sandboxed {
    fn specs(&self, agent: &Agent<'_>) -> Result<Vec<ToolSpec>> {
        let mut specs = Vec::new();
        for d in agent.toolbox.descriptions()? {
            for op in &d.operations {
                specs.push(ToolSpec {
                    name: format!("{}{}{}", d.name, meta::TOOL_SEP, op.name),
                    description: format!("{} (sandboxed tool {})", op.summary, d.name),
                    input_schema: op.args_schema.clone(),
                });
            }
        }
        Ok(specs)
    }

    fn takes(&self, _: &Agent<'_>, name: &str) -> bool {
        name.contains(meta::TOOL_SEP)
    }

    fn place(&self) -> Place {
        Place::InStep
    }

    fn run(
        &self,
        agent: &Agent<'_>,
        st: &mut RunState,
        step: StepNo,
        call: &Use<'_>,
    ) -> std::result::Result<String, String> {
        let (tool, op) = call.name.split_once(meta::TOOL_SEP).unwrap_or((call.name, ""));
        agent.tool_call(st, step, call.id, tool, op, call.input)
    }
}

/// One of the runtime's own tools (`agent/meta.rs` holds their specs and
/// argument types): beside the plan, journaled by the driver.
struct RuntimeTool {
    name: &'static str,
    run: fn(&Agent<'_>, &mut RunState, &serde_json::Value) -> std::result::Result<String, String>,
}

impl ToolHandler for RuntimeTool {
    fn specs(&self, _: &Agent<'_>) -> Result<Vec<ToolSpec>> {
        Ok(meta::spec(self.name).into_iter().collect())
    }

    fn takes(&self, _: &Agent<'_>, name: &str) -> bool {
        name == self.name
    }

    fn place(&self) -> Place {
        Place::Runtime
    }

    fn run(
        &self,
        agent: &Agent<'_>,
        st: &mut RunState,
        _: StepNo,
        call: &Use<'_>,
    ) -> std::result::Result<String, String> {
        (self.run)(agent, st, call.input)
    }
}

/// A runtime executor that acts inside the current step, offered where this
/// machine has what it needs (`shell`: a sandbox, `agent/native.rs`;
/// `office__to_pdf`: LibreOffice, `agent/office.rs`). A call made where it
/// is missing is still this handler's: its own answer says what is missing.
struct InStepTool {
    name: &'static str,
    spec: fn(&Agent<'_>) -> Option<ToolSpec>,
    run: fn(&Agent<'_>, &mut RunState, StepNo, &CallId, &serde_json::Value) -> std::result::Result<String, String>,
}

impl ToolHandler for InStepTool {
    fn specs(&self, agent: &Agent<'_>) -> Result<Vec<ToolSpec>> {
        Ok((self.spec)(agent).into_iter().collect())
    }

    fn takes(&self, _: &Agent<'_>, name: &str) -> bool {
        name == self.name
    }

    fn place(&self) -> Place {
        Place::InStep
    }

    fn run(
        &self,
        agent: &Agent<'_>,
        st: &mut RunState,
        step: StepNo,
        call: &Use<'_>,
    ) -> std::result::Result<String, String> {
        (self.run)(agent, st, step, call.id, call.input)
    }
}

impl Agent<'_> {
    /// Tools offered to the model: every handler's, in registry order.
    pub fn tool_specs(&self) -> Result<Vec<ToolSpec>> {
        let mut specs = Vec::new();
        for h in HANDLERS {
            specs.extend(h.specs(self)?);
        }
        Ok(specs)
    }

    /// The step driver: runs one tool use and returns what goes back to
    /// the model. Every use is journaled as a Begin/End pair keyed by its id.
    pub(super) fn dispatch(&self, st: &mut RunState, id: &str, name: &str, input: &serde_json::Value) -> ToolReply {
        let call_id = CallId(id.to_owned());
        if st.cancelled() {
            return ToolReply::err("the run was cancelled; this call did not run");
        }
        if st.held.is_some() {
            // Not journaled: it runs when the person resumes the run.
            return ToolReply::err("not run yet: the run stopped for the person, and this call waits for them");
        }
        if let Some((RunStatus::Stopped, why)) = &st.stop {
            return ToolReply::err(format!("the run was stopped ({why}); this call did not run"));
        }
        let Some(handler) = HANDLERS.iter().find(|h| h.takes(self, name)) else {
            let msg = format!("there is no tool named {name:?}; use the tools listed, such as fs__list or update_plan");
            self.block(st, msg.clone());
            return ToolReply::err(msg);
        };
        let call = Use {
            id: &call_id,
            name,
            input,
        };
        match handler.place() {
            Place::Runtime => self.meta_call(st, &call_id, name, input, |agent, st| {
                handler.run(agent, st, StepNo::NONE, &call)
            }),
            Place::InStep => {
                let Some(step) = st.plan.current_step() else {
                    let msg = if st.plan.steps.is_empty() {
                        "make a plan first: call update_plan with the checklist and each step's effects"
                    } else {
                        "every step of the plan is finished; add a step (update_plan with a reason) before doing more"
                    };
                    return ToolReply::err(msg);
                };
                if let Err(e) = self.begin_step(st, step) {
                    return ToolReply::err(e);
                }
                if self.hold_unapproved_tool(st, step, name) {
                    return ToolReply::err("not run yet: the run stopped for the person, and this call waits for them");
                }
                let reply = match handler.run(self, st, step, &call) {
                    Ok(text) => ToolReply::ok(text),
                    Err(text) => ToolReply::err(text),
                };
                // What the call could read (its step's reads, and the folders
                // it writes, which it sees too) may now be anywhere in the run:
                // seal its egress.
                if let Some(what) = crate::egress::readable(&st.plan[step].effects) {
                    st.egress.mark_private_read(&format!("step {step} read {what}"));
                }
                self.flush_egress(st);
                if self.check_held(st) {
                    // Held after it ran (its changes wait for the person): nothing was applied.
                    self.withdraw(st, &call_id);
                }
                reply
            }
        }
    }
}
