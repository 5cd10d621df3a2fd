//! One turn of the offline planner: decided from the conversation so far.

use super::*;

impl ModelProvider for OfflinePlanner {
    fn describe(&self) -> String {
        "offline planner".into()
    }

    fn complete(
        &self,
        request: &ModelRequest<'_>,
        _on_event: &mut dyn FnMut(StreamEvent),
    ) -> Result<ModelResponse, ProviderError> {
        let t = read_transcript(request.messages);
        let turn = t.follow_ups.len();
        let sfx = turn_suffix(turn);
        let id = |base: &str| format!("{base}{sfx}");
        let instruction = t.follow_ups.last().unwrap_or(&t.task).clone();
        let (index, mut params, missing, targets) = match self.choose(&instruction) {
            Ok(chosen) => chosen,
            Err(reason) if turn == 0 => {
                let msg = format!(
                    "I can't do that offline: {reason}.\n\nWithout a model, deskhand can:\n{}\n\n{CONFIGURE_A_MODEL}",
                    Self::offerings(&self.skills).trim_end()
                );
                return Ok(reply(vec![text(msg)], StopReason::Other("refusal".into())));
            }
            Err(_) => match self.again(&t, &instruction) {
                Ok(chosen) => chosen,
                // What was done stands; this instruction is answered, not failed.
                Err(msg) => return Ok(reply(vec![text(msg)], StopReason::EndTurn)),
            },
        };
        let skill = &self.skills[index];
        let missing: Vec<_> = missing
            .into_iter()
            .filter(|p| !self.given.contains_key(&p.name))
            .collect();
        for (k, v) in &self.given {
            if skill.params.iter().any(|p| &p.name == k) {
                params.insert(k.clone(), v.clone());
            }
        }

        // Parameters the person supplied in answers fill what the task did
        // not; a folder is read generously, and where the grants or MEMORY.md
        // leave no doubt, not asked at all.
        let known: Vec<String> = self
            .context
            .folders
            .iter()
            .map(|f| {
                f.strip_prefix(&self.context.workspace_root)
                    .unwrap_or(f)
                    .display()
                    .to_string()
            })
            .collect();
        let mut notes = Vec::new();
        let mut ask = None;
        for p in missing {
            let answers = t.answers.get(&p.name).map(Vec::as_slice).unwrap_or_default();
            let (value, why_not) = match (answers.last(), &p.kind, &self.granted) {
                (Some(a), ParamKind::Path, Some(granted)) => match granted.read_answer(a, &known) {
                    Ok(folder) => (Some(folder), None),
                    Err(why) => (None, Some(format!("I could not use {a:?}: {why}."))),
                },
                (Some(a), ParamKind::File, Some(granted)) => match granted.read_file_answer(a) {
                    Ok(file) => (Some(file), None),
                    Err(why) => (None, Some(format!("I could not use {a:?}: {why}."))),
                },
                (Some(a), ParamKind::Format(options), _) => {
                    let a = a.trim().trim_start_matches('.').to_lowercase();
                    match options.iter().find(|o| **o == a) {
                        Some(o) => (Some(o.clone()), None),
                        None => (None, Some(format!("{a:?} is not one of the choices."))),
                    }
                }
                (Some(a), _, _) if !a.trim().is_empty() => (Some(a.trim().to_owned()), None),
                (Some(_), _, _) => (None, Some("The answer was empty.".into())),
                (None, ParamKind::Path, Some(granted)) => {
                    match granted.guess(&folders::subject(&skill.name, &p.description), &self.memory) {
                        Some((folder, why)) => {
                            notes.push(format!("{}: {folder} ({why})", p.name));
                            (Some(folder), None)
                        }
                        None => (None, None),
                    }
                }
                (None, _, _) => (None, None),
            };
            match value {
                Some(v) => {
                    params.insert(p.name.clone(), v);
                }
                None if ask.is_none() => ask = Some((p, answers.len(), why_not)),
                None => {}
            }
        }
        if let Some((p, asked_before, why_not)) = ask {
            let example = match (&p.kind, &self.granted) {
                (ParamKind::Path, Some(granted)) => format!(" (a folder this run may see: {})", granted.listing()),
                (ParamKind::Path, None) => " (a folder in the workspace, e.g. projects/receipts)".to_owned(),
                (ParamKind::File, Some(granted)) => {
                    format!(" (a file in a folder this run may see: {})", granted.listing())
                }
                (ParamKind::File, None) => " (a file in the workspace, e.g. projects/inbox/budget.csv)".to_owned(),
                (ParamKind::Date, _) => " (a date, YYYY-MM-DD)".to_owned(),
                (ParamKind::Format(options), _) => format!(" (one of: {})", options.join(", ")),
                (ParamKind::Text, _) => String::new(),
                (ParamKind::Period, _) => " (a period, e.g. 2026-03 or 2026-03-01..2026-03-31)".to_owned(),
                (ParamKind::Pages, _) => " (each, or page ranges, one per new file, e.g. 1-3;4-6)".to_owned(),
            };
            let mut question = format!(
                "Which {} for the {}? {}{example}.",
                p.name.replace('_', " "),
                skill.name.replace('-', " "),
                upper_first(&p.description)
            );
            if let Some(why) = why_not {
                question = format!("{why} {question}");
            }
            let mut ask_id = format!("{ASK_PREFIX}{}{sfx}", p.name);
            if asked_before > 0 {
                ask_id.push_str(&format!("{ID_SEP}{asked_before}"));
            }
            return Ok(reply(
                vec![tool_use(&ask_id, meta::ASK_PERSON, json!({"question": question}))],
                StopReason::ToolUse,
            ));
        }
        // Names made from what the person answered (`output/{input}.txt`).
        crate::skills::resolve_templates(&mut params);
        let (tool, operation) = match &skill.entry {
            Entry::Bundled { tool, operation } => (tool.clone(), operation.clone()),
            // The CLI adds a skill's component to the toolbox under the skill's name.
            Entry::Component { operation, .. } => (skill.name.clone(), operation.clone()),
            Entry::Plan(steps) => {
                return Ok(self.recorded(&t, skill, steps, &params, &notes));
            }
            Entry::None => {
                let msg = format!(
                    "The skill {} matches, but it needs a model: it has no entry point that runs in the sandbox \
                     on its own. {CONFIGURE_A_MODEL}",
                    skill.name
                );
                return Ok(reply(vec![text(msg)], StopReason::Other("refusal".into())));
            }
        };
        let target_param = skill
            .params
            .iter()
            .find(|p| p.kind.is_path() && p.required)
            .map(|p| p.name.clone());
        // The deliverable with a fixed default name (`output/duplicates.csv`):
        // each sub-agent gets its own (`output/duplicates-scans.csv`). A
        // default named after the target (`output/{folder}.pdf`) is distinct already.
        let output_param = skill.params.iter().find(|p| {
            p.kind.is_path()
                && p.default
                    .as_deref()
                    .is_some_and(|d| is_under_output(d) && !d.contains('{'))
        });
        let fan_out = targets.len() > 1 && target_param.is_some();

        let (step1, run_call) = if fan_out {
            let target_param = target_param.as_deref().unwrap_or("folder");
            let tasks: Vec<Value> = targets
                .iter()
                .map(|target| {
                    let mut line = format!("/{} {}", skill.name, param_pair(target_param, target));
                    if let Some((name, out)) = output_param.and_then(|p| Some((&p.name, p.default.as_deref()?))) {
                        let _ = write!(line, " {}", param_pair(name, &per_target_output(out, target)));
                    }
                    // What the task said besides the folders (a period, a
                    // format, pages) holds for every sub-agent.
                    for p in skill.params.iter().filter(|p| !p.kind.is_path()) {
                        if let Some(value) = params.get(&p.name) {
                            let _ = write!(line, " {}", param_pair(&p.name, value));
                        }
                    }
                    json!({"outcome": line, "grants": [{"path": target, "access": "read_only"}]})
                })
                .collect();
            let title = format!(
                "Run {} on {} folders in parallel, one sub-agent each",
                skill.name,
                targets.len()
            );
            let effects = json!({"reads": targets, "writes": ["output"]});
            (
                (title, effects),
                tool_use(&id(RUN), meta::SPAWN_SUBAGENTS, json!({"tasks": tasks})),
            )
        } else {
            let target = target_param
                .as_ref()
                .and_then(|p| params.get(p))
                .cloned()
                .unwrap_or_default();
            // Path parameters under output/ are what the skill delivers (a
            // skill may deliver several files); the others are what it reads.
            let (delivered, reads): (Vec<String>, Vec<String>) = skill
                .params
                .iter()
                .filter(|p| p.kind.is_path())
                .filter_map(|p| params.get(&p.name).cloned())
                .partition(|v| is_under_output(v));
            // A folder granted read-write is also written: the changes the
            // skill's tool proposes there go through the changeset gate.
            // A skill writes its deliverable under a free name (`expenses-1.xlsx`
            // beside an earlier `expenses.xlsx`), so the step declares the
            // folder that holds it.
            let mut writes: Vec<String> = delivered
                .iter()
                .map(|d| match d.rsplit_once('/') {
                    Some((folder, _)) => folder.to_owned(),
                    None => d.clone(),
                })
                .chain(reads.iter().filter(|r| self.context.is_writable(r)).cloned())
                .collect();
            writes.dedup();
            let title = format!("Run {} on {target} in the sandbox", skill.name);
            let args: serde_json::Map<String, Value> = params
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            let effects = json!({"reads": reads, "writes": writes});
            (
                (title, effects),
                tool_use(
                    &id(RUN),
                    &format!("{tool}{}{operation}", meta::TOOL_SEP),
                    Value::Object(args),
                ),
            )
        };
        let step2 = (
            "Check the deliverable in output/".to_owned(),
            json!({"reads": ["output"]}),
        );
        // Earlier turns' steps stay as they ended (a finished step is never
        // rewritten); one left open is skipped, so calls belong to the new ones.
        let earlier = t.earlier_steps.iter().map(|(title, effects, status)| {
            let status = match status.as_str() {
                "done" | "failed" | "skipped" => status.clone(),
                _ => "skipped".to_owned(),
            };
            (title.clone(), effects.clone(), status)
        });
        let earlier: Vec<_> = earlier.collect();
        let steps = |s1: &'static str, s2: &'static str, reason: Option<&str>| {
            let mut all = earlier.clone();
            all.push((step1.0.clone(), step1.1.clone(), s1.to_owned()));
            all.push((step2.0.clone(), step2.1.clone(), s2.to_owned()));
            plan_input(&all, reason)
        };

        let Some((run_content, run_failed)) = t.results.get(&id(RUN)) else {
            let mut intro = format!("Using the {} skill: {}", skill.name, skill.description);
            if !notes.is_empty() {
                intro.push_str(&format!("\nChosen without asking: {}.", notes.join("; ")));
            }
            let reason = (turn > 0).then(|| format!("you asked: {instruction}"));
            return Ok(reply(
                vec![
                    text(intro),
                    tool_use(
                        &id("offline-plan"),
                        meta::UPDATE_PLAN,
                        steps("in_progress", "pending", reason.as_deref()),
                    ),
                    run_call,
                ],
                StopReason::ToolUse,
            ));
        };
        let failure = if *run_failed {
            Some(run_content.clone())
        } else {
            match t.results.get(&id(VERIFY)) {
                Some((verify, true)) => Some(verify.clone()),
                _ => None,
            }
        };
        if let Some(error) = failure {
            if t.results.contains_key(&id(FAIL)) {
                let msg = format!("The {} skill did not finish: {}", skill.name, strip_frame(&error));
                return Ok(reply(vec![text(msg)], StopReason::Other("refusal".into())));
            }
            let failed_step = if t.results.contains_key(&id(VERIFY)) {
                ("done", "failed")
            } else {
                ("failed", "skipped")
            };
            return Ok(reply(
                vec![tool_use(
                    &id(FAIL),
                    meta::UPDATE_PLAN,
                    steps(failed_step.0, failed_step.1, None),
                )],
                StopReason::ToolUse,
            ));
        }
        let produced = result_json(run_content);
        if !t.results.contains_key(&id(VERIFY)) {
            let verify = match produced["path"].as_str() {
                Some(path) if !fan_out => {
                    tool_use(&id(VERIFY), &format!("fs{}stat", meta::TOOL_SEP), json!({"path": path}))
                }
                _ => tool_use(
                    &id(VERIFY),
                    &format!("fs{}list", meta::TOOL_SEP),
                    json!({"path": "output"}),
                ),
            };
            return Ok(reply(
                vec![
                    tool_use(
                        &id("offline-progress"),
                        meta::UPDATE_PLAN,
                        steps("done", "in_progress", None),
                    ),
                    verify,
                ],
                StopReason::ToolUse,
            ));
        }
        if !t.results.contains_key(&id(DONE)) {
            return Ok(reply(
                vec![tool_use(&id(DONE), meta::UPDATE_PLAN, steps("done", "done", None))],
                StopReason::ToolUse,
            ));
        }
        let summary = first_line(&strip_frame(run_content));
        Ok(reply(
            vec![text(format!("Done with {}: {summary}", skill.name))],
            StopReason::EndTurn,
        ))
    }
}
