//! A recorded plan run by the offline planner: a skill the Skill Creator
//! made from a run of several calls (`deskhand-entry: plan`). Its steps are
//! shown as the run's plan, with the parameters' values filled in, and its
//! calls are made one a turn, in order; a step is started (and approved as
//! the mode says) when its first call comes. Then, as for any skill, the
//! deliverable is checked and the run summed up.

use super::*;
use crate::skills::RecordedStep;

/// The id of the `k`th call of a recorded plan (before the turn's suffix).
const CALL: &str = "offline-call-";

impl OfflinePlanner {
    /// The next reply of a run of `skill`'s recorded `steps` with `params`.
    pub(super) fn recorded(
        &self,
        t: &Transcript,
        skill: &Skill,
        steps: &[RecordedStep],
        params: &BTreeMap<String, String>,
        notes: &[String],
    ) -> ModelResponse {
        let turn = t.follow_ups.len();
        let instruction = t.follow_ups.last().unwrap_or(&t.task);
        let sfx = turn_suffix(turn);
        let id = |base: &str| format!("{base}{sfx}");
        let filled: Vec<RecordedStep> = steps.iter().map(|s| s.filled(params)).collect();
        let target = skill
            .params
            .iter()
            .find(|p| p.kind.is_path() && p.required)
            .and_then(|p| params.get(&p.name))
            .cloned()
            .unwrap_or_default();
        // The first step names the skill and what it runs on, as every skill's does.
        let titles: Vec<String> = filled
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if i == 0 {
                    format!("Run {} on {target}: {}", skill.name, s.title)
                } else {
                    format!("{}: {}", skill.name, s.title)
                }
            })
            .collect();
        let calls: Vec<(usize, &crate::skills::RecordedCall)> = filled
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.calls.iter().map(move |c| (i, c)))
            .collect();
        let call_id = |k: usize| id(&format!("{CALL}{k}"));
        let mut done = 0;
        let mut failure = None;
        for k in 0..calls.len() {
            match t.results.get(&call_id(k)) {
                Some((content, true)) => {
                    failure = Some(content.clone());
                    break;
                }
                Some(_) => done += 1,
                None => break,
            }
        }
        let verify_step = (
            "Check the deliverable in output/".to_owned(),
            json!({"reads": ["output"]}),
        );
        let earlier: Vec<(String, Value, String)> = t
            .earlier_steps
            .iter()
            .map(|(title, effects, status)| {
                let status = match status.as_str() {
                    "done" | "failed" | "skipped" => status.clone(),
                    _ => "skipped".to_owned(),
                };
                (title.clone(), effects.clone(), status)
            })
            .collect();
        // Each step's status from the calls made: done, the one at work, the rest to come.
        let plan = |status_of: &dyn Fn(usize) -> &'static str, verify: &str, reason: Option<&str>| {
            let mut all = earlier.clone();
            for (i, s) in filled.iter().enumerate() {
                all.push((
                    titles[i].clone(),
                    json!({"reads": s.reads, "writes": s.writes}),
                    status_of(i).to_owned(),
                ));
            }
            all.push((verify_step.0.clone(), verify_step.1.clone(), verify.to_owned()));
            plan_input(&all, reason)
        };
        let step_of = |k: usize| calls.get(k).map_or(filled.len(), |(s, _)| *s);
        let at = step_of(done);
        let working = |i: usize| -> &'static str {
            if i < at {
                "done"
            } else if i == at {
                "in_progress"
            } else {
                "pending"
            }
        };
        let call_use = |k: usize| {
            let (tool, operation) = calls[k].1.tool_operation();
            tool_use(
                &call_id(k),
                &format!("{tool}{}{operation}", meta::TOOL_SEP),
                Value::Object(calls[k].1.args.clone()),
            )
        };

        let verify_failed = match t.results.get(&id(VERIFY)) {
            Some((verify, true)) => Some(verify.clone()),
            _ => None,
        };
        if let Some(error) = failure.or(verify_failed) {
            if t.results.contains_key(&id(FAIL)) {
                let msg = format!("The {} skill did not finish: {}", skill.name, strip_frame(&error));
                return reply(vec![text(msg)], StopReason::Other("refusal".into()));
            }
            let verifying = t.results.contains_key(&id(VERIFY));
            let failed = |i: usize| -> &'static str {
                if verifying || i < at {
                    "done"
                } else if i == at {
                    "failed"
                } else {
                    "skipped"
                }
            };
            let verify = if verifying { "failed" } else { "skipped" };
            return reply(
                vec![tool_use(&id(FAIL), meta::UPDATE_PLAN, plan(&failed, verify, None))],
                StopReason::ToolUse,
            );
        }
        if done == 0 && !t.results.contains_key(&call_id(0)) && !t.calls.contains_key(&id("offline-plan")) {
            let mut intro = format!("Using the {} skill: {}", skill.name, skill.description);
            if !notes.is_empty() {
                intro.push_str(&format!("\nChosen without asking: {}.", notes.join("; ")));
            }
            let reason = (turn > 0).then(|| format!("you asked: {instruction}"));
            return reply(
                vec![
                    text(intro),
                    tool_use(
                        &id("offline-plan"),
                        meta::UPDATE_PLAN,
                        plan(&working, "pending", reason.as_deref()),
                    ),
                    call_use(0),
                ],
                StopReason::ToolUse,
            );
        }
        if done < calls.len() {
            // A new step starts with its first call.
            let mut blocks = Vec::new();
            if step_of(done) != step_of(done - 1) {
                blocks.push(tool_use(
                    &id(&format!("offline-step-{at}")),
                    meta::UPDATE_PLAN,
                    plan(&working, "pending", None),
                ));
            }
            blocks.push(call_use(done));
            return reply(blocks, StopReason::ToolUse);
        }
        let all_done = |_: usize| "done";
        if !t.results.contains_key(&id(VERIFY)) {
            let produced = calls
                .len()
                .checked_sub(1)
                .and_then(|k| t.results.get(&call_id(k)))
                .map(|(content, _)| result_json(content))
                .unwrap_or(Value::Null);
            let verify = match produced["path"].as_str() {
                Some(path) => tool_use(&id(VERIFY), &format!("fs{}stat", meta::TOOL_SEP), json!({"path": path})),
                None => tool_use(
                    &id(VERIFY),
                    &format!("fs{}list", meta::TOOL_SEP),
                    json!({"path": "output"}),
                ),
            };
            return reply(
                vec![
                    tool_use(
                        &id("offline-progress"),
                        meta::UPDATE_PLAN,
                        plan(&all_done, "in_progress", None),
                    ),
                    verify,
                ],
                StopReason::ToolUse,
            );
        }
        if !t.results.contains_key(&id(DONE)) {
            return reply(
                vec![tool_use(&id(DONE), meta::UPDATE_PLAN, plan(&all_done, "done", None))],
                StopReason::ToolUse,
            );
        }
        let said: Vec<String> = (0..calls.len())
            .filter_map(|k| t.results.get(&call_id(k)))
            .map(|(content, _)| first_line(&strip_frame(content)))
            .filter(|l| !l.is_empty())
            .collect();
        reply(
            vec![text(format!("Done with {}: {}", skill.name, said.join("; ")))],
            StopReason::EndTurn,
        )
    }
}
