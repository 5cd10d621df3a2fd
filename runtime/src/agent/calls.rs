//! Sandboxed tool calls: prepared within the step's grants, run, and their
//! files and proposals taken through the one change pipeline (checks, gate,
//! changeset, events).

use super::*;
use crate::pipeline::{ContentSource, staged_bytes};

impl<'a> Agent<'a> {
    /// Checks a sandboxed call against the run's grants.
    pub(super) fn prepare(
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
                    .step_grants(st, &st.plan[step].effects)
                    .map_err(Error::InvalidArgs)?;
                &narrowed
            }
            _ => &st.task.grants,
        };
        let policy = self.workspace.policy(grants)?;
        let visible = crate::stage::visible_output(self.workspace, Some(&st.run), &policy)?;
        let mut prepared = call::prepare(
            self.workspace,
            self.toolbox,
            tool,
            op,
            input,
            &policy,
            self.settings.limits,
            &visible,
        )?;
        // A step that declares hosts: the guest's sockets ask the run's egress.
        if let Some(step) = st.plan.current_step()
            && !st.plan[step].effects.network.is_empty()
        {
            let egress = Arc::clone(&st.egress);
            prepared.sandbox.network = Some(crate::wasm::NetworkCheck(Arc::new(move |addr, connect| {
                egress.decide_addr(&crate::egress::Exit::Wasm, addr, connect).is_ok()
            })));
        }
        Ok(prepared)
    }

    /// A sandboxed call within step `step` (started by the driver): checked
    /// against the step's declared effects, run, and its files and proposals
    /// taken through the change pipeline.
    pub(super) fn tool_call(
        &self,
        st: &mut RunState,
        step: StepNo,
        id: &CallId,
        tool: &str,
        op: &str,
        input: &serde_json::Value,
    ) -> std::result::Result<String, String> {
        let prepared = match self.prepare(st, tool, op, input) {
            Ok(p) => p,
            Err(e) => {
                // Every call refused before it ran is shown as a blocked attempt.
                self.block(st, e.to_string());
                return Err(e.to_string());
            }
        };
        let concrete = StepEffects {
            reads: prepared.reads.clone(),
            writes: prepared.writes.clone(),
            network: Vec::new(),
            actions: Vec::new(),
        };
        if let Err(what) = self.within_effects(&concrete, &st.plan[step].effects) {
            // The person reads what was stopped; the model also reads how to go on.
            let shown = format!("step {step} did not declare that it {what}, so deskhand did not let it");
            self.emit(&st.run, Event::Blocked { step, reason: shown });
            return Err(format!(
                "blocked: step {step} ({:?}) did not declare that it {what}. Revise the plan with update_plan \
                 (declare it in the step's effects and give a reason) if this is really needed",
                st.plan[step].title
            ));
        }
        let run = st.run.clone();
        let emit = |e: Event| self.emit(&run, e);
        let source = format!("{tool}.{op}");
        let recorded = || !self.workspace.journal().has_lost_event(&run);
        match call::execute(&prepared, id, &emit, &recorded) {
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
                        return Err(self.shown_output(&st.run, id, &source, &text));
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
                    return Err(self.shown_output(&st.run, id, &source, &text));
                }
                if let Some(u) = self.gate.unattended() {
                    // Nothing of a call whose changes wait for the person is
                    // applied (not even its new files): it runs again on resume.
                    let deleted: Vec<String> = output
                        .changes
                        .iter()
                        .filter_map(|c| match c {
                            deskhand_types::ProposedChange::Delete { path } => Some(
                                Path::new(path)
                                    .strip_prefix(self.workspace.root())
                                    .unwrap_or(Path::new(path))
                                    .display()
                                    .to_string(),
                            ),
                            _ => None,
                        })
                        .collect();
                    if !deleted.is_empty() {
                        u.hold(
                            &st.run,
                            format!(
                                "step {step} would delete {} file(s) ({}), and deletions always wait for the person",
                                deleted.len(),
                                deleted.join(", ")
                            ),
                        );
                        return Err("deskhand changed nothing: the changes wait for the person".into());
                    }
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
                if refused { Err(shown) } else { Ok(shown) }
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
                Err(self.shown_output(&st.run, id, &source, &e.to_string()))
            }
        }
    }

    /// Takes a tool's proposed changes through the one change pipeline
    /// ([`crate::pipeline`]). Ok: what was applied; Err: why nothing was
    /// (both go back to the model).
    pub(super) fn apply_changes(
        &self,
        st: &RunState,
        step: StepNo,
        id: &CallId,
        staged: &ContentSource<'_>,
        proposed: &[deskhand_types::ProposedChange],
    ) -> std::result::Result<String, Refusal> {
        let roots = match self.workspace.change_roots(&st.task.grants) {
            Ok(r) => r,
            Err(e) => {
                self.block(st, e.to_string());
                return Err(Refusal {
                    text: format!("deskhand changed nothing: {e}"),
                    blocked: true,
                });
            }
        };
        let declared = &st.plan[step].effects;
        let within_step = |cs: &changeset::Changeset| {
            let touched = StepEffects {
                reads: Vec::new(),
                writes: cs.touched_paths().into_iter().map(PathBuf::from).collect(),
                network: Vec::new(),
                actions: Vec::new(),
            };
            self.within_effects(&touched, declared)
        };
        let emit = |e: Event| self.emit(&st.run, e);
        let outcome = crate::pipeline::run(&crate::pipeline::Proposal {
            workspace: self.workspace,
            run: &st.run,
            step,
            call: id,
            mode: st.task.mode,
            gate: self.gate,
            step_approval: st.approved.get(&step).map(|(_, by)| by.as_str()),
            roots: &roots,
            staged,
            changes: proposed,
            in_read_only_grant: self.in_read_only_grant(st, proposed),
            within_step: &within_step,
            emit: &emit,
        });
        match outcome {
            crate::pipeline::Outcome::Nothing => Ok(String::new()),
            crate::pipeline::Outcome::Applied { count, by, shown, .. } => Ok(format!(
                "deskhand applied {count} change(s) (approved by {by}); `deskhand undo {}` reverses them:\n{shown}",
                st.run
            )),
            crate::pipeline::Outcome::Refused { reason, blocked, .. } => Err(Refusal {
                text: format!("deskhand changed nothing: {reason}"),
                blocked,
            }),
        }
    }

    /// Whether every change proposed lies in a folder this run was granted
    /// read-only: a proposal to review there (new names for the person's
    /// files, say) is not an attempt to get past the grants.
    pub(super) fn in_read_only_grant(&self, st: &RunState, proposed: &[deskhand_types::ProposedChange]) -> bool {
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
    pub(super) fn step_grants(&self, st: &RunState, effects: &StepEffects) -> std::result::Result<Vec<Grant>, String> {
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
                    st.plan.current_step().unwrap_or_default(),
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
    pub(super) fn block(&self, st: &RunState, reason: String) {
        let step = st.plan.current_step().unwrap_or_default();
        self.emit(&st.run, Event::Blocked { step, reason });
    }
}

/// Why a tool's changes were not applied, as the model is told.
pub(super) struct Refusal {
    pub(super) text: String,
    /// An attempt the run refused (shown as blocked, an error to the model),
    /// rather than a proposal left for the person to review.
    pub(super) blocked: bool,
}
