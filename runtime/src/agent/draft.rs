//! A plan without a run: the model's (or the offline planner's) first plan
//! for a task, asked the way a run's first turn asks it, for the person to
//! approve as a schedule's envelope ([`crate::envelope::draft`]). No tool
//! runs and nothing is journaled: a call before the plan is answered as the
//! loop answers it ("make a plan first"), a question ends the draft.

use super::*;

/// Model turns a draft waits for a plan before giving up.
const DRAFT_TURNS: usize = 3;

impl Agent<'_> {
    /// The steps of the first plan the model makes for `task`, checked
    /// against the task's grants as `update_plan` checks them, and the tools
    /// the same turn calls (as [`crate::envelope::tool_key`] names them).
    pub(crate) fn draft_plan(&self, task: &Task) -> Result<(Vec<PlanStep>, Vec<String>)> {
        let tools = self.tool_specs()?;
        let system = context::system_prompt(self.workspace, &task.grants, &self.skills_prompt, &Plan::default());
        let mut messages = vec![Message::user_text(task.outcome.clone())];
        let cannot = |why: String| Error::InvalidArgs(format!("this task cannot be scheduled as it stands: {why}"));
        for _ in 0..DRAFT_TURNS {
            let request = ModelRequest {
                system: &system,
                messages: &messages,
                tools: &tools,
                max_tokens: self.settings.max_tokens,
                stop: None,
            };
            let response = self.provider.complete(&request, &mut |_| {})?;
            let reply = Message {
                role: Role::Assistant,
                content: response.content,
            };
            let uses: Vec<(String, String, serde_json::Value)> = reply
                .tool_uses()
                .map(|(id, name, input)| (id.into(), name.into(), input.clone()))
                .collect();
            if let Some((_, _, input)) = uses.iter().find(|(_, name, _)| name == meta::ASK_PERSON) {
                let question = input["question"].as_str().unwrap_or("(a question)");
                return Err(cannot(format!(
                    "it first asks: {question} Say it in the task (or give it with --param) and try again"
                )));
            }
            if let Some((_, _, input)) = uses.iter().find(|(_, name, _)| name == meta::UPDATE_PLAN) {
                let update: meta::PlanUpdate = serde_json::from_value(input.clone())
                    .map_err(|e| cannot(format!("its plan could not be read: {e}")))?;
                if update.steps.is_empty() {
                    return Err(cannot("its plan has no steps".into()));
                }
                let granted = granted_effects(task);
                let mut resolved = HashMap::new();
                for s in &update.steps {
                    self.within_effects_cached(&s.effects, &granted, &mut resolved)
                        .map_err(|e| cannot(format!("step {:?} {e}, which the task is not granted", s.title)))?;
                }
                let steps = update
                    .steps
                    .into_iter()
                    .map(|s| PlanStep {
                        title: s.title,
                        effects: s.effects,
                        status: StepStatus::Pending,
                    })
                    .collect();
                let mut called: Vec<String> = Vec::new();
                for (_, name, _) in uses.iter().filter(|(_, name, _)| name != meta::UPDATE_PLAN) {
                    let key = crate::envelope::tool_key(name);
                    if !called.contains(&key) {
                        called.push(key);
                    }
                }
                return Ok((steps, called));
            }
            if uses.is_empty() {
                return Err(cannot(format!("it made no plan: {}", reply.text())));
            }
            // What the loop answers a call before a plan.
            let results = uses
                .iter()
                .map(|(id, _, _)| Block::ToolResult {
                    tool_use_id: id.clone(),
                    content: "make a plan first: call update_plan with the checklist and each step's effects".into(),
                    is_error: true,
                })
                .collect();
            messages.push(reply);
            messages.push(Message {
                role: Role::User,
                content: results,
            });
        }
        Err(cannot(format!("it made no plan in {DRAFT_TURNS} turns")))
    }
}

/// What a run's steps may declare: its grants (written only where granted
/// read-write) and `output/`; no network.
pub(super) fn granted_effects(task: &Task) -> StepEffects {
    StepEffects {
        reads: task
            .grants
            .iter()
            .map(|g| g.path.clone())
            .chain([PathBuf::from("output")])
            .collect(),
        writes: task
            .grants
            .iter()
            .filter(|g| g.access.is_writable())
            .map(|g| g.path.clone())
            .chain([PathBuf::from("output")])
            .collect(),
        network: Vec::new(),
        actions: Vec::new(),
    }
}
