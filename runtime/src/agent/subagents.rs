//! Sub-agents: parallel child runs bounded by their parent's step, mode and
//! budget.
//!
//! Children run on threads, at most `concurrency` at once, each with a
//! subset of the parent's grants, in the parent's mode, its steps capped by
//! the parent step's effects and approved with it (`Ceiling`). Limits:
//! [`MAX_SUBAGENTS_PER_CALL`](super::MAX_SUBAGENTS_PER_CALL),
//! [`MAX_SUBAGENT_DEPTH`](super::MAX_SUBAGENT_DEPTH),
//! [`MAX_SUBAGENTS_PER_RUN`](super::MAX_SUBAGENTS_PER_RUN); the journal
//! numbers them `parent.N`. A child that fails (its model's error included)
//! cancels its siblings and fails the step with its own error.

use super::*;

impl Agent<'_> {
    /// Checks a sub-agent's grants against the parent's: each within a parent
    /// grant, and read-write only where the parent had read-write.
    pub(super) fn child_grants(
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

    pub(super) fn spawn_subagents(
        &self,
        st: &mut RunState,
        input: &serde_json::Value,
    ) -> std::result::Result<String, String> {
        let request: meta::SubagentRequest =
            serde_json::from_value(input.clone()).map_err(|e| format!("spawn_subagents arguments are invalid: {e}"))?;
        let Some(step) = st.plan.current_step() else {
            return Err("make a plan first: sub-agents run inside a step".into());
        };
        self.begin_step(st, step)?;
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
                params: Default::default(),
            });
        }
        let Some((_, approved_by)) = st.approved.get(&step) else {
            return Err(format!("step {step} has no approval, so it cannot start sub-agents"));
        };
        let ceiling = Ceiling {
            effects: st.plan[step].effects.clone(),
            approved_by: approved_by.clone(),
            mode: st.task.mode,
            egress: Some(Arc::clone(&st.egress)),
        };
        let siblings_cancel = Arc::new(AtomicBool::new(false));
        let cancel: Vec<Arc<AtomicBool>> = st.cancel.iter().cloned().chain([siblings_cancel.clone()]).collect();
        let next = AtomicUsize::new(0);
        let results: Mutex<HashMap<usize, ChildOutcome>> = Mutex::new(HashMap::new());
        let workers = self.settings.concurrency.clamp(1, children.len().max(1));
        let parent = st.run.clone();
        let earlier_children = st.earlier_children.clone();
        let unattended = self.gate.unattended().is_some();
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
                        // A sub-agent of an unattended run that stopped for the
                        // person has not failed: its siblings go on.
                        let failed = !matches!(&outcome, ChildOutcome::Ran(r)
                            if r.status == RunStatus::Succeeded || (unattended && r.status == RunStatus::NeedsInput));
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
        let mut first_held = None;
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
            if unattended && status == RunStatus::NeedsInput {
                first_held.get_or_insert_with(|| format!("its sub-agent for {:?} stopped: {summary}", task.outcome));
            } else if first_failure.is_none() && matches!(status, RunStatus::Failed | RunStatus::NeedsInput) {
                first_failure = Some(format!("sub-agent {:?} {}: {summary}", task.outcome, status.as_str()));
            }
            report.push(
                serde_json::json!({"outcome": task.outcome, "run": run, "status": status.as_str(), "summary": summary}),
            );
        }
        let listing = serde_json::to_string_pretty(&report).unwrap_or_default();
        if let (None, Some(held)) = (&first_failure, first_held) {
            // The step waits with its sub-agent; on resume the finished ones are reused.
            self.hold(st, &held);
            return Err(held);
        }
        match first_failure {
            Some(failure) => {
                self.set_step_status(st, step, StepStatus::Failed, Some(failure.clone()));
                Err(format!(
                    "{failure}\nThe other sub-agents were cancelled. Reports:\n{}",
                    context::untrusted("sub-agents", &listing)
                ))
            }
            None => Ok(context::untrusted("sub-agents", &listing)),
        }
    }

    pub(super) fn run_child(
        &self,
        parent: &RunId,
        step: StepNo,
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
            // A model's failure was journaled by `drive` (its RunEnd); any
            // other (the journal, the toolbox) is recorded here so the child
            // does not stay "running".
            let summary = e.to_string();
            let still_running = self
                .workspace
                .journal()
                .task(&state.run)
                .is_ok_and(|t| t.is_some_and(|t| t.status == RunStatus::Running.as_str()));
            if still_running {
                child_agent.emit(
                    &state.run,
                    Event::RunEnd {
                        run: state.run.clone(),
                        status: RunStatus::Failed,
                        summary: summary.clone(),
                    },
                );
            }
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
    pub(super) fn sub_agent_ended(&self, parent: &RunId, report: &RunReport) {
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

/// Sub-agents each top-level run has been given in this process: sub-agents
/// spawning at once each reserve theirs here, so together they cannot pass
/// [`MAX_SUBAGENTS_PER_RUN`]. Err: how many were started already.
pub(super) fn reserve_subagents(top: &RunId, journaled: usize, wanted: usize) -> std::result::Result<(), usize> {
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

/// How one sub-agent of a fan-out ended.
pub(super) enum ChildOutcome {
    /// It ran to an end (succeeded, failed, stopped or waiting on the person).
    Ran(RunReport),
    /// It could not be started (the journal refused it, say).
    CouldNotRun(String),
    /// The step was cancelled before its turn came.
    NotStarted,
}
