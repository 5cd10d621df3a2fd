//! Connector tools (`mcp__<connector>__<tool>`): an MCP server's tool called
//! within the current step, through the run's [`crate::connectors::Connectors`].
//!
//! What holds, in order: the tool must be one the person approved (pinned)
//! and not quarantined; a tool that writes (the connector is read-write and
//! the tool is not annotated read-only) is an action the step must declare
//! (`connector.tool` in its effects' `actions`, else Blocked like a write
//! outside declared folders), and then follows the approval policy
//! ([`crate::gate::approve_action`]: the mode, "always allow", a destructive
//! tool always asks, an unattended run only what its plan lists). The server
//! sees only the step's declared folders and reaches the network only
//! through the run's egress when the step declares hosts. Its result is
//! framed as untrusted and paged like any tool output; a private connector's
//! result seals the run's egress.

use super::registry::{Place, ToolHandler, Use};
use super::*;
use crate::connectors::session::Binds;
use crate::connectors::{self, Connector, ConnectorTool};

/// The handler for every connector tool. Before `Sandboxed` in the registry:
/// its names hold `__` too.
pub(super) struct ConnectorTools;

impl ToolHandler for ConnectorTools {
    fn specs(&self, agent: &Agent<'_>) -> Result<Vec<ToolSpec>> {
        let Some(c) = &agent.settings.connectors else {
            return Ok(Vec::new());
        };
        Ok(c.offered()
            .into_iter()
            .filter_map(|(connector, tool)| {
                let name = connectors::model_name(&connector.name, &tool.name)?;
                Some(ToolSpec {
                    name,
                    description: describe_for_model(connector, &tool),
                    input_schema: tool.input_schema.clone(),
                })
            })
            .collect())
    }

    fn takes(&self, _: &Agent<'_>, name: &str) -> bool {
        connectors::parse_model_name(name).is_some()
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
        agent.connector_call(st, step, call.id, call.name, call.input)
    }
}

/// What the model reads about a connector tool: its own description, then
/// what deskhand lets it do.
fn describe_for_model(connector: &Connector, tool: &ConnectorTool) -> String {
    let how = if connectors::is_write(connector, tool) {
        format!(
            "an action outside the workspace: the step must declare \"{}\" in its actions",
            connectors::action(&connector.name, &tool.name)
        )
    } else {
        "reads only".to_owned()
    };
    let reach = connectors::Connectors::remote_host(connector)
        .map(|h| format!("; a remote server: the step must declare \"{h}\" in its network hosts"))
        .unwrap_or_default();
    format!("{} (connector {}; {how}{reach})", tool.description, connector.name)
}

/// Ends the run's connectors when a top-level run's loop returns, however it
/// returns: the run's egress ends first ([`crate::egress::Run::end_run`]:
/// nothing new is reached, and a remote session is ended only at a host the
/// run contacted), then every server ([`connectors::Connectors::shutdown`]).
/// A sub-agent shares its parent's connectors and leaves them running.
pub(super) struct EndConnectors {
    connectors: Arc<connectors::Connectors>,
    egress: Arc<crate::egress::Run>,
}

impl Drop for EndConnectors {
    fn drop(&mut self) {
        self.egress.end_run();
        self.connectors.shutdown();
    }
}

impl Agent<'_> {
    /// What ends the run's connectors when dropped (see [`EndConnectors`]); None for a sub-agent.
    pub(super) fn end_connectors_with(&self, st: &RunState) -> Option<EndConnectors> {
        let connectors = self.settings.connectors.clone()?;
        st.ceiling.is_none().then(|| EndConnectors {
            connectors,
            egress: Arc::clone(&st.egress),
        })
    }

    /// Journals, once per run, each connector tool held back before any step
    /// used it: every tool of a connector whose definition changed since
    /// approval (known when the list is loaded), and tools an earlier run of
    /// the same connectors found changed or added. Such a tool is hidden from
    /// the model, so without this the person would not hear of it. Tools
    /// found when a server starts are journaled as they are found
    /// ([`Self::journal_quarantined`]). A sub-agent's parent journals them.
    pub(super) fn journal_held_connector_tools(&self, st: &RunState) {
        let Some(c) = &self.settings.connectors else {
            return;
        };
        let held = c.quarantined();
        if held.is_empty() || st.ceiling.is_some() {
            return;
        }
        // A resumed run journaled them before.
        let journaled: Vec<(String, String)> = self
            .workspace
            .journal()
            .events(&st.run)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|row| match row.event {
                Event::ConnectorToolQuarantined { connector, tool, .. } => Some((connector, tool)),
                _ => None,
            })
            .collect();
        let fresh: Vec<_> = held
            .into_iter()
            .filter(|q| !journaled.iter().any(|(c, t)| *c == q.connector && *t == q.tool))
            .collect();
        self.journal_quarantined(st, StepNo::NONE, &fresh);
    }

    /// How many connector tools this run found quarantined (the model's tool list changes with it).
    pub(super) fn connector_quarantines(&self) -> usize {
        self.settings.connectors.as_ref().map_or(0, |c| c.quarantined_count())
    }

    fn connector_call(
        &self,
        st: &mut RunState,
        step: StepNo,
        id: &CallId,
        name: &str,
        input: &serde_json::Value,
    ) -> std::result::Result<String, String> {
        let refuse = |st: &RunState, reason: String| {
            self.block(st, reason.clone());
            Err(reason)
        };
        let Some((connector_name, tool_name)) = connectors::parse_model_name(name) else {
            return refuse(st, format!("{name} is not a connector tool's name"));
        };
        let Some(all) = self.settings.connectors.clone() else {
            return refuse(st, format!("this run has no connectors, so {name} cannot run"));
        };
        let Some(connector) = all.get(connector_name) else {
            return refuse(st, format!("there is no connector named {connector_name}"));
        };
        let Some(tool) = all.pinned(connector, tool_name) else {
            return refuse(
                st,
                connectors::session::quarantine_reason(
                    connector_name,
                    tool_name,
                    &connectors::pins::Change::NotApproved,
                ),
            );
        };
        if let Some(change) = all.quarantine_of(connector_name, tool_name) {
            return refuse(
                st,
                connectors::session::quarantine_reason(connector_name, tool_name, &change),
            );
        }
        if connector.settings.disabled_tools.contains(tool_name) {
            return refuse(
                st,
                format!("the person turned off the tool {tool_name} of the connector {connector_name}"),
            );
        }
        let effects = st.plan[step].effects.clone();
        // The server's folders: the step's declared ones, within the run's grants.
        let grants = match self.step_grants(st, &effects) {
            Ok(g) => g,
            Err(reason) => return refuse(st, reason),
        };
        // Read-only, whatever the grant: the person's files change only
        // through the change pipeline (shown, approved, undoable), and a
        // server writing into a bound folder would go around it. A server's
        // writes are actions outside the workspace (mail, events, documents).
        // A folder the step both reads and writes is bound once.
        let folders: std::collections::BTreeSet<_> = grants.iter().map(|g| g.path.clone()).collect();
        let mut binds = Binds {
            read_only: folders.into_iter().collect(),
            ..Binds::default()
        };
        // A remote connector always asks the run's egress (a step that does not declare its host is Blocked).
        if !effects.network.is_empty() || matches!(connector.transport, connectors::Transport::Remote { .. }) {
            binds.network = Some(Arc::clone(&st.egress));
            binds.relay = self.settings.egress.relay.clone();
        }
        // Started (or found started) first: a tool changed since its approval
        // is quarantined before anyone is asked about it.
        let (quarantined, started) = all.ensure(connector, binds.clone());
        self.flush_egress(st);
        self.journal_quarantined(st, step, &quarantined);
        if let Err(reason) = started {
            // Journaled as a call that stopped: the person sees why the connector did not run.
            self.emit(
                &st.run,
                Event::ToolCallBegin {
                    call: id.clone(),
                    tool: format!("{}{connector_name}", connectors::PREFIX),
                    operation: tool_name.to_owned(),
                    args: input.clone(),
                },
            );
            self.emit(
                &st.run,
                Event::ToolCallEnd {
                    call: id.clone(),
                    outcome: CallOutcome::Stopped { reason: reason.clone() },
                    elapsed_ms: 0,
                },
            );
            return Err(self.shown_output(&st.run, id, &format!("connector {connector_name}"), &reason));
        }
        if let Some(change) = all.quarantine_of(connector_name, tool_name) {
            return refuse(
                st,
                connectors::session::quarantine_reason(connector_name, tool_name, &change),
            );
        }
        if connectors::is_write(connector, &tool) {
            let action = connectors::action(connector_name, tool_name);
            let always = || all.allow_always(connector, tool_name);
            let request = ActionApproval {
                run: &st.run,
                step,
                mode: st.task.mode,
                connector: connector_name,
                tool: tool_name,
                arguments: input,
                description: &tool.description,
                destructive: connectors::is_destructive(connector, &tool),
                allow_always: &always,
            };
            let what = crate::gate::Request::Action {
                step,
                action: &action,
                declared: effects.actions.contains(&action),
                destructive: request.destructive,
                always_allowed: all.always_allowed(connector, tool_name),
            };
            if let Approval::Rejected { reason } =
                crate::gate::approve_action(self.gate, self.workspace.journal(), &request, &what)
            {
                if self.check_held(st) {
                    return Err("not run yet: the run stopped for the person, and this call waits for them".into());
                }
                return refuse(st, format!("{action} was not run: {reason}"));
            }
        }
        self.emit(
            &st.run,
            Event::ToolCallBegin {
                call: id.clone(),
                tool: format!("{}{connector_name}", connectors::PREFIX),
                operation: tool_name.to_owned(),
                args: input.clone(),
            },
        );
        let started = std::time::Instant::now();
        let timeout = self.settings.limits.deadline.max(std::time::Duration::from_secs(30));
        let (quarantined, result) = all.call(connector, binds, tool_name, input, timeout);
        self.flush_egress(st);
        self.journal_quarantined(st, step, &quarantined);
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let source = format!("connector {connector_name}, tool {tool_name}");
        match result {
            Ok(r) => {
                if connector.settings.private {
                    st.egress
                        .mark_private_read(&format!("a result of the connector {connector_name}"));
                }
                let mut text = r.text.clone();
                if let Some(s) = &r.structured
                    && r.text.trim().is_empty()
                {
                    text = s.to_string();
                }
                let outcome = if r.is_error {
                    CallOutcome::Stopped { reason: text.clone() }
                } else {
                    CallOutcome::Ok {
                        output: deskhand_types::ToolOutput::new(
                            r.structured.clone().unwrap_or(serde_json::Value::Null),
                            text.clone(),
                        ),
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
                let shown = self.shown_output(&st.run, id, &source, &text);
                if r.is_error { Err(shown) } else { Ok(shown) }
            }
            Err(reason) => {
                self.emit(
                    &st.run,
                    Event::ToolCallEnd {
                        call: id.clone(),
                        outcome: CallOutcome::Refused {
                            message: reason.clone(),
                        },
                        elapsed_ms,
                    },
                );
                if all.quarantine_of(connector_name, tool_name).is_some() {
                    self.block(st, reason.clone());
                }
                // A server's words (its stderr) are untrusted too.
                Err(self.shown_output(&st.run, id, &source, &reason))
            }
        }
    }

    fn journal_quarantined(&self, st: &RunState, step: StepNo, found: &[connectors::session::Quarantined]) {
        for q in found {
            self.emit(
                &st.run,
                Event::ConnectorToolQuarantined {
                    step,
                    connector: q.connector.clone(),
                    tool: q.tool.clone(),
                    change: q.change.as_str().to_owned(),
                },
            );
        }
    }
}
