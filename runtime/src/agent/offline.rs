//! The embedded offline planner: the default "model" when none is
//! configured. It matches the task to an installed skill, asks the person
//! for parameters it cannot read from the task, and then drives the same
//! loop a model would: a visible plan, the skill's sandboxed entry point,
//! a check of the deliverable, a summary. Where no skill fits it says so
//! and how to configure a model; it never pretends to understand.
//!
//! It is stateless: each turn is decided from the conversation so far, so a
//! resumed run continues exactly where it stopped.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use deskhand_types::model::{Block, Message, Role, StopReason, Usage};
use serde_json::{Value, json};

use super::context::SUMMARY_MARK;
use super::meta;
use crate::model::{ModelProvider, ModelRequest, ModelResponse, ProviderError, StreamEvent};
use crate::skills::{Entry, Match, MatchContext, ParamKind, Skill, match_task};

const RUN: &str = "offline-run";
const VERIFY: &str = "offline-verify";
const DONE: &str = "offline-done";
const FAIL: &str = "offline-fail";
const ASK_PREFIX: &str = "offline-ask-";
const ANSWER_PREFIX: &str = "The person answered: ";

pub struct OfflinePlanner {
    skills: Vec<Skill>,
    context: MatchContext,
    /// Parameters the person gave outright (`--param name=value`); they win over the task's words.
    given: BTreeMap<String, String>,
}

impl std::fmt::Debug for OfflinePlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflinePlanner")
            .field("skills", &self.skills.len())
            .finish()
    }
}

/// How a configured model is set up, for the "no skill fits" answer.
pub const CONFIGURE_A_MODEL: &str = "To plan open-ended tasks, configure a model: set ANTHROPIC_API_KEY (Anthropic), \
or OPENAI_BASE_URL and DESKHAND_MODEL for an OpenAI-compatible server such as Ollama, vLLM, llama.cpp or LM Studio \
(or put them under [model] in ~/.config/deskhand/config.toml).";

impl OfflinePlanner {
    pub fn new(skills: Vec<Skill>, context: MatchContext) -> Self {
        OfflinePlanner {
            skills,
            context,
            given: BTreeMap::new(),
        }
    }

    pub fn with_params(mut self, given: BTreeMap<String, String>) -> Self {
        self.given = given;
        self
    }

    /// What the planner can do, one line a skill, for messages and prompts.
    pub fn capabilities(skills: &[Skill]) -> String {
        let mut out = String::new();
        for s in skills {
            let how = match &s.entry {
                Entry::Bundled { tool, operation } => format!("runs offline: {tool}.{operation}"),
                Entry::Component { path, operation } => format!("runs offline: {}#{operation}", path.display()),
                Entry::None => "needs a model".into(),
            };
            let _ = writeln!(out, "- {}: {} ({how})", s.name, s.description);
        }
        out
    }
}

/// The conversation, read back: the task, the answers the person gave,
/// and the result of each of the planner's own calls.
struct Transcript {
    task: String,
    answers: BTreeMap<String, String>,
    results: BTreeMap<String, (String, bool)>,
}

fn read_transcript(messages: &[Message]) -> Transcript {
    let task = messages
        .first()
        .map(|m| {
            m.content
                .iter()
                .filter_map(|b| match b {
                    Block::Text { text } if !text.starts_with(SUMMARY_MARK) => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    let mut answers = BTreeMap::new();
    let mut results = BTreeMap::new();
    for m in messages.iter().filter(|m| m.role == Role::User) {
        for b in &m.content {
            if let Block::ToolResult {
                tool_use_id,
                content,
                is_error,
            } = b
            {
                if let Some(param) = tool_use_id.strip_prefix(ASK_PREFIX) {
                    let answer = content.strip_prefix(ANSWER_PREFIX).unwrap_or(content).trim().to_owned();
                    answers.insert(param.to_owned(), answer);
                }
                results.insert(tool_use_id.clone(), (content.clone(), *is_error));
            }
        }
    }
    // A compacted summary keeps the digest of earlier calls, not their ids;
    // the planner's own ids are few and stay in the recent turns.
    Transcript { task, answers, results }
}

/// The JSON a tool returned, from the framed text "summary\n{json}".
fn result_json(content: &str) -> Value {
    content
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .and_then(|l| serde_json::from_str(l.trim()).ok())
        .unwrap_or(Value::Null)
}

/// `/skill-name key=value key="a value"`: an explicit invocation, as sub-agents get.
fn explicit(task: &str, skills: &[Skill]) -> Option<(usize, BTreeMap<String, String>)> {
    let rest = task.trim().strip_prefix('/')?;
    let (name, mut rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let index = skills.iter().position(|s| s.name == name)?;
    let mut params = BTreeMap::new();
    while let Some((key, after)) = rest.trim_start().split_once('=') {
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => quoted.split_once('"').unwrap_or((quoted, "")),
            None => after.split_once(char::is_whitespace).unwrap_or((after, "")),
        };
        params.insert(key.trim().to_owned(), value.to_owned());
        rest = next;
    }
    Some((index, params))
}

/// `key=value`, quoted when the value has spaces.
fn param_pair(key: &str, value: &str) -> String {
    if value.contains(char::is_whitespace) {
        format!("{key}=\"{value}\"")
    } else {
        format!("{key}={value}")
    }
}

fn tool_use(id: &str, name: &str, input: Value) -> Block {
    Block::ToolUse {
        id: id.into(),
        name: name.into(),
        input,
    }
}

fn reply(content: Vec<Block>, stop: StopReason) -> ModelResponse {
    ModelResponse {
        content,
        stop_reason: stop,
        usage: Usage::default(),
    }
}

fn text(t: impl Into<String>) -> Block {
    Block::Text { text: t.into() }
}

fn plan_input(steps: &[(String, Value, &str)], reason: Option<&str>) -> Value {
    let steps: Vec<Value> = steps
        .iter()
        .map(|(title, effects, status)| json!({"title": title, "effects": effects, "status": status}))
        .collect();
    match reason {
        Some(r) => json!({"steps": steps, "reason": r}),
        None => json!({"steps": steps}),
    }
}

/// Whether a path parameter's value names output/ or something in it.
fn is_under_output(value: &str) -> bool {
    let v = value.trim_start_matches("./");
    v == "output" || v == "output/" || v.starts_with("output/")
}

/// `output/inventory.csv` + `projects/receipts` -> `output/inventory-receipts.csv`.
fn per_target_output(default: &str, target: &str) -> String {
    let slug: String = target
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(target)
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    match default.rsplit_once('.') {
        Some((stem, ext)) if !ext.contains('/') => format!("{stem}-{slug}.{ext}"),
        _ => format!("{default}-{slug}"),
    }
}

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
        let (index, mut params, missing, targets) = match explicit(&t.task, &self.skills) {
            Some((index, params)) => {
                let skill = &self.skills[index];
                let mut params = params;
                for p in &skill.params {
                    if let (None, Some(d)) = (params.get(&p.name), &p.default) {
                        params.insert(p.name.clone(), d.clone());
                    }
                }
                let missing = skill
                    .params
                    .iter()
                    .filter(|p| p.required && !params.contains_key(&p.name))
                    .cloned()
                    .collect();
                (index, params, missing, Vec::new())
            }
            None => match match_task(&t.task, &self.skills, &self.context) {
                Match::Matched {
                    skill,
                    params,
                    missing,
                    targets,
                    ..
                } => (skill, params, missing, targets),
                Match::NoMatch { reason, .. } => {
                    let msg = format!(
                        "I can't do that offline: {reason}\n\nWithout a model I can:\n{}\n{CONFIGURE_A_MODEL}",
                        Self::capabilities(&self.skills).trim_end()
                    );
                    return Ok(reply(vec![text(msg)], StopReason::Other("refusal".into())));
                }
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

        // Parameters the person supplied in answers fill what the task did not.
        let mut still_missing = Vec::new();
        for p in missing {
            match t.answers.get(&p.name) {
                Some(a) if !a.is_empty() => {
                    params.insert(p.name.clone(), a.clone());
                }
                _ => still_missing.push(p),
            }
        }
        if let Some(p) = still_missing.first() {
            let example = match &p.kind {
                ParamKind::Path => " (a folder in the workspace, e.g. projects/receipts)".to_owned(),
                ParamKind::Date => " (a date, YYYY-MM-DD)".to_owned(),
                ParamKind::Format(options) => format!(" (one of: {})", options.join(", ")),
                ParamKind::Text => String::new(),
            };
            let question = format!("To run {} I need {}: {}{example}.", skill.name, p.name, p.description);
            return Ok(reply(
                vec![tool_use(
                    &format!("{ASK_PREFIX}{}", p.name),
                    meta::ASK_PERSON,
                    json!({"question": question}),
                )],
                StopReason::ToolUse,
            ));
        }

        let (tool, operation) = match &skill.entry {
            Entry::Bundled { tool, operation } => (tool.clone(), operation.clone()),
            // The CLI adds a skill's component to the toolbox under the skill's name.
            Entry::Component { operation, .. } => (skill.name.clone(), operation.clone()),
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
            .find(|p| p.kind == ParamKind::Path && p.required)
            .map(|p| p.name.clone());
        let output_param = skill.params.iter().find(|p| p.name == "output");
        let fan_out = targets.len() > 1 && target_param.is_some();

        let (step1, run_call) = if fan_out {
            let target_param = target_param.as_deref().unwrap_or("folder");
            let tasks: Vec<Value> = targets
                .iter()
                .map(|target| {
                    let mut line = format!("/{} {}", skill.name, param_pair(target_param, target));
                    if let Some(out) = output_param.and_then(|p| p.default.as_deref()) {
                        let _ = write!(line, " {}", param_pair("output", &per_target_output(out, target)));
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
                tool_use(RUN, meta::SPAWN_SUBAGENTS, json!({"tasks": tasks})),
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
                .filter(|p| p.kind == ParamKind::Path)
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
                    RUN,
                    &format!("{tool}{}{operation}", meta::TOOL_SEP),
                    Value::Object(args),
                ),
            )
        };
        let step2 = (
            "Check the deliverable in output/".to_owned(),
            json!({"reads": ["output"]}),
        );
        let steps = |s1: &'static str, s2: &'static str| {
            plan_input(
                &[
                    (step1.0.clone(), step1.1.clone(), s1),
                    (step2.0.clone(), step2.1.clone(), s2),
                ],
                None,
            )
        };

        let Some((run_content, run_failed)) = t.results.get(RUN) else {
            return Ok(reply(
                vec![
                    text(format!("Using the {} skill: {}", skill.name, skill.description)),
                    tool_use("offline-plan", meta::UPDATE_PLAN, steps("in_progress", "pending")),
                    run_call,
                ],
                StopReason::ToolUse,
            ));
        };
        let failure = if *run_failed {
            Some(run_content.clone())
        } else {
            match t.results.get(VERIFY) {
                Some((verify, true)) => Some(verify.clone()),
                _ => None,
            }
        };
        if let Some(error) = failure {
            if t.results.contains_key(FAIL) {
                let msg = format!("The {} skill did not finish: {}", skill.name, strip_frame(&error));
                return Ok(reply(vec![text(msg)], StopReason::Other("refusal".into())));
            }
            let failed_step = if t.results.contains_key(VERIFY) {
                ("done", "failed")
            } else {
                ("failed", "skipped")
            };
            return Ok(reply(
                vec![tool_use(FAIL, meta::UPDATE_PLAN, steps(failed_step.0, failed_step.1))],
                StopReason::ToolUse,
            ));
        }
        let produced = result_json(run_content);
        if !t.results.contains_key(VERIFY) {
            let verify = match produced["path"].as_str() {
                Some(path) if !fan_out => tool_use(VERIFY, &format!("fs{}stat", meta::TOOL_SEP), json!({"path": path})),
                _ => tool_use(VERIFY, &format!("fs{}list", meta::TOOL_SEP), json!({"path": "output"})),
            };
            return Ok(reply(
                vec![
                    tool_use("offline-progress", meta::UPDATE_PLAN, steps("done", "in_progress")),
                    verify,
                ],
                StopReason::ToolUse,
            ));
        }
        if !t.results.contains_key(DONE) {
            return Ok(reply(
                vec![tool_use(DONE, meta::UPDATE_PLAN, steps("done", "done"))],
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

fn strip_frame(content: &str) -> String {
    content
        .lines()
        .filter(|l| !l.starts_with("<untrusted") && !l.starts_with("</untrusted"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_target_outputs_do_not_collide() {
        assert_eq!(
            per_target_output("output/inventory.csv", "projects/receipts"),
            "output/inventory-receipts.csv"
        );
        assert_eq!(
            per_target_output("output/inventory.csv", "context/"),
            "output/inventory-context.csv"
        );
    }

    #[test]
    fn explicit_invocation_reads_parameters() {
        let skills = crate::skills::bundled();
        let (i, params) = explicit("/folder-inventory folder=\"projects/a b\" output=output/x.csv", &skills).unwrap();
        assert_eq!(skills[i].name, "folder-inventory");
        assert_eq!(params["folder"], "projects/a b");
        assert_eq!(params["output"], "output/x.csv");
        assert!(explicit("folder-inventory folder=x", &skills).is_none());
    }
}
