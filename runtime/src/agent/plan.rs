//! The visible plan: revisions, step status and approval, and the checks that
//! keep every call within what its step declared.

use super::*;

impl Agent<'_> {
    pub(super) fn set_step_status(&self, st: &mut RunState, n: StepNo, status: StepStatus, note: Option<String>) {
        let step = &mut st.plan[n];
        if step.status == status {
            return;
        }
        step.status = status;
        let title = step.title.clone();
        if status == StepStatus::InProgress {
            self.emit(&st.run, Event::StepBegin { step: n, title });
        } else if status.is_finished() {
            if st.egress.current_step() == Some(n) {
                st.egress.end_step();
            }
            self.emit(&st.run, Event::StepEnd { step: n, status, note });
        }
    }

    /// Starts step `n` after the gate approves it. A step
    /// already running whose title or effects were revised since its
    /// approval is approved again: an approval covers what the person saw.
    pub(super) fn begin_step(&self, st: &mut RunState, n: StepNo) -> std::result::Result<(), String> {
        let effects_hash = crate::envelope::step_hash(&st.plan[n]);
        let status = st.plan[n].status;
        if status == StepStatus::InProgress && st.approved.get(&n).is_some_and(|(h, _)| *h == effects_hash) {
            // Resumed, or a call after the first: the egress answers for this step.
            if st.egress.current_step() != Some(n) {
                st.egress.set_step(n, &st.plan[n].effects.network, false);
            }
            return Ok(());
        }
        // Hosts not contacted yet, after (or while) reading private data: the person's to approve.
        let sealed = st.egress.approval_needed(&st.plan[n].effects);
        let approval = crate::gate::approve_step_with_egress(
            self.gate,
            self.workspace.journal(),
            &StepApproval {
                run: &st.run,
                step: n,
                plan_step: &st.plan[n],
                mode: st.task.mode,
            },
            &effects_hash,
            st.ceiling.as_ref().map(|c| c.approved_by.as_str()),
            sealed.as_ref(),
        );
        match approval {
            Approval::Approved { by } => {
                st.egress.set_step(n, &st.plan[n].effects.network, sealed.is_some());
                st.approved.insert(n, (effects_hash.clone(), by.clone()));
                self.emit(
                    &st.run,
                    Event::StepApproved {
                        step: n,
                        by,
                        effects_hash,
                    },
                );
                self.set_step_status(st, n, StepStatus::InProgress, None);
                Ok(())
            }
            Approval::Rejected { reason } if self.check_held(st) => {
                // Unattended: the step stays pending, for the person to decide on resume.
                Err(reason)
            }
            Approval::Rejected { reason } => {
                let note = format!("the person did not approve this step: {reason}");
                self.set_step_status(st, n, StepStatus::Failed, Some(note.clone()));
                st.stop = Some((RunStatus::Stopped, note.clone()));
                Err(note)
            }
        }
    }

    pub(super) fn update_plan(
        &self,
        st: &mut RunState,
        input: &serde_json::Value,
    ) -> std::result::Result<String, String> {
        let update: meta::PlanUpdate =
            serde_json::from_value(input.clone()).map_err(|e| format!("update_plan arguments are invalid: {e}"))?;
        if update.steps.is_empty() {
            return Err("a plan needs at least one step".into());
        }
        // A step may only declare what the grants allow: plans cannot widen them.
        let mut granted = super::draft::granted_effects(&st.task);
        let mut resolved = HashMap::new();
        for s in &update.steps {
            // Network hosts are not granted with the task: each step declares
            // its own, which the person approves with it (crate::egress).
            crate::egress::check_declared(&s.effects.network)
                .map_err(|e| format!("step {:?} declares a network host that cannot be used: {e}", s.title))?;
            granted.network.clone_from(&s.effects.network);
            self.within_effects_cached(&s.effects, &granted, &mut resolved)
                .map_err(|e| {
                    format!(
                        "step {:?} declares that it {e}, which this run was not granted (steps write only under \
                     output/ or a folder granted read-write); only the person can grant more",
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
                StepStatus::InProgress => self.begin_step(st, StepNo::at(i))?,
                StepStatus::Done | StepStatus::Failed | StepStatus::Skipped => {
                    self.set_step_status(st, StepNo::at(i), u.status, None)
                }
                StepStatus::Pending => {}
            }
        }
        Ok(format!(
            "Plan (revision {}):\n{}",
            st.plan.revision,
            context::plan_text(&st.plan)
        ))
    }

    /// Resolves a declared path the way call paths are resolved.
    pub(super) fn resolve_declared(&self, path: &Path) -> Option<PathBuf> {
        self.workspace.resolve_path(&path.to_string_lossy()).ok()
    }

    /// Checks that `inner`'s paths all lie within `outer`'s.
    pub(super) fn within_effects(&self, inner: &StepEffects, outer: &StepEffects) -> std::result::Result<(), String> {
        self.within_effects_cached(inner, outer, &mut HashMap::new())
    }

    /// [`within_effects`](Self::within_effects) resolving each path once per
    /// `cache`: a plan's steps name the same few folders, and resolving
    /// follows every component's links (a syscall each).
    pub(super) fn within_effects_cached(
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
}
