//! The embedded offline planner: the default "model" when none is
//! configured. It matches the task to an installed skill, asks the person
//! for parameters it cannot read from the task, and then drives the same
//! loop a model would: a visible plan, the skill's sandboxed entry point,
//! a check of the deliverable, a summary. Where no skill fits it says so
//! and how to configure a model; it never pretends to understand.
//!
//! It is stateless: each turn is decided from the conversation so far, so a
//! resumed run continues exactly where it stopped. A later instruction from
//! the person (a follow-up on a finished run) starts a new turn: a skill it
//! names, or the last skill again with the folders, dates or options it
//! changes; what it asks beyond those is answered honestly, not guessed.
//!
//! A folder the task does not name is read generously (`folders`): the one
//! granted folder that fits, a line of MEMORY.md, or the person's answer
//! ("receipts"); an answer that names no folder this run may see is asked
//! again, saying why.

mod folders;

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
/// Separates a call id's parts: the turn (`--t2`) and a question asked again (`--2`).
const ID_SEP: &str = "--";

pub struct OfflinePlanner {
    skills: Vec<Skill>,
    context: MatchContext,
    /// Parameters the person gave outright (`--param name=value`); they win over the task's words.
    given: BTreeMap<String, String>,
    /// The folders the run may see, when the planner was told its grants.
    granted: Option<folders::Granted>,
    /// MEMORY.md, for where things are.
    memory: String,
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
            granted: None,
            memory: String::new(),
        }
    }

    pub fn with_params(mut self, given: BTreeMap<String, String>) -> Self {
        self.given = given;
        self
    }

    /// The run's granted folders (relative to the workspace or absolute)
    /// and MEMORY.md's text: a folder parameter the task leaves open is
    /// then filled from them where they leave no doubt, and an answer is
    /// checked against them.
    pub fn with_grants(mut self, grants: &[std::path::PathBuf], memory: String) -> Self {
        self.granted = Some(folders::Granted::new(&self.context.workspace_root, grants));
        self.memory = memory;
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

/// Each bundled skill's evals (`skills/<name>/evals/evals.json`): their
/// prompts are phrasings the offline planner is tested to match.
const EVALS: &[(&str, &str)] = &[
    (
        "folder-inventory",
        include_str!("../../../skills/folder-inventory/evals/evals.json"),
    ),
    (
        "rename-by-date",
        include_str!("../../../skills/rename-by-date/evals/evals.json"),
    ),
    (
        "receipts-to-spreadsheet",
        include_str!("../../../skills/receipts-to-spreadsheet/evals/evals.json"),
    ),
    (
        "merge-pdfs",
        include_str!("../../../skills/merge-pdfs/evals/evals.json"),
    ),
    (
        "pdf-to-text",
        include_str!("../../../skills/pdf-to-text/evals/evals.json"),
    ),
    (
        "csv-to-xlsx",
        include_str!("../../../skills/csv-to-xlsx/evals/evals.json"),
    ),
    (
        "xlsx-to-csv",
        include_str!("../../../skills/xlsx-to-csv/evals/evals.json"),
    ),
];

impl OfflinePlanner {
    /// What the person can ask for without a model, one line a skill that
    /// runs offline: what it does and a phrasing that works (from the
    /// skill's evals), for the answer to a task no skill fits.
    pub fn offerings(skills: &[Skill]) -> String {
        let mut out = String::new();
        for s in skills.iter().filter(|s| s.entry != Entry::None) {
            let what = s.description.split(". Use when").next().unwrap_or(&s.description);
            let what = what.trim_end_matches('.');
            match example(&s.name) {
                Some(e) => {
                    let _ = writeln!(out, "- {what}, e.g. \"{e}\"");
                }
                None => {
                    let _ = writeln!(out, "- {what}");
                }
            }
        }
        out
    }
}

/// A phrasing of a task `skill` matches: its evals' first prompt that reads
/// as a plain sentence (no quoted paths or labels), else the first that
/// starts as one.
fn example(skill: &str) -> Option<String> {
    let (_, text) = EVALS.iter().find(|(name, _)| *name == skill)?;
    let evals: Value = serde_json::from_str(text).ok()?;
    let prompts: Vec<&str> = evals
        .get("evals")?
        .as_array()?
        .iter()
        .filter_map(|e| e.get("prompt").and_then(Value::as_str))
        .collect();
    let sentence = |p: &&&str| p.starts_with(|c: char| c.is_uppercase());
    let plain = |p: &&&str| sentence(p) && !p.contains(['\'', '"', ':']);
    let sentence = prompts
        .iter()
        .find(plain)
        .or_else(|| prompts.iter().find(sentence))
        .or(prompts.first())?;
    Some((*sentence).to_owned())
}

/// A skill chosen for an instruction: its index, the parameters filled, the
/// required ones left open, and the folders named for it.
type Chosen = (
    usize,
    BTreeMap<String, String>,
    Vec<crate::skills::ParamSpec>,
    Vec<String>,
);

impl OfflinePlanner {
    /// The skill `instruction` asks for (`/skill key=value`, or by its
    /// words), or why none fits.
    fn choose(&self, instruction: &str) -> Result<Chosen, String> {
        if let Some((index, mut params)) = explicit(instruction, &self.skills) {
            let skill = &self.skills[index];
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
            return Ok((index, params, missing, Vec::new()));
        }
        match match_task(instruction, &self.skills, &self.context) {
            Match::Matched {
                skill,
                params,
                missing,
                targets,
                ..
            } => Ok((skill, params, missing, targets)),
            Match::NoMatch { reason, .. } => Err(reason),
        }
    }

    /// A follow-up that names no skill: the last skill chosen, run again
    /// with what the follow-up changes (folders, dates, options) over what
    /// the last run used; or, when it changes none of them, why not.
    fn again(&self, t: &Transcript, instruction: &str) -> Result<Chosen, String> {
        let turn = t.follow_ups.len();
        let earlier = std::iter::once(&t.task).chain(&t.follow_ups).take(turn);
        let last = earlier
            .enumerate()
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .find_map(|(k, text)| self.choose(text).ok().map(|c| (k, c.0)));
        let cannot = |what: &str| {
            format!(
                "I can't do {instruction:?} without a model{what}. Without a model I can run a skill again on \
                 other folders, for other dates or with other options (say which), or start a new task.\n\
                 {CONFIGURE_A_MODEL}"
            )
        };
        let Some((k, index)) = last else {
            return Err(cannot(""));
        };
        let skill = &self.skills[index];
        let name = skill.name.replace('-', " ");
        let one = std::slice::from_ref(skill);
        let (
            Match::Matched {
                params: new, targets, ..
            },
            Match::Matched { params: defaults, .. },
        ) = (
            match_task(&format!("{instruction} {name}"), one, &self.context),
            match_task(&name, one, &self.context),
        )
        else {
            return Err(cannot(""));
        };
        let changed: BTreeMap<String, String> = new.into_iter().filter(|(k, v)| defaults.get(k) != Some(v)).collect();
        if changed.is_empty() {
            return Err(cannot(&format!(": it changes none of what {} takes", skill.name)));
        }
        let mut params = defaults;
        // What the latest run of it used (a follow-up that changed nothing ran nothing).
        let used = (k..turn)
            .rev()
            .find_map(|j| t.calls.get(&format!("{RUN}{}", turn_suffix(j))));
        if let Some(Value::Object(used)) = used {
            for (key, v) in used {
                if let Some(v) = v.as_str() {
                    params.insert(key.clone(), v.to_owned());
                }
            }
        }
        params.extend(changed);
        let missing = skill
            .params
            .iter()
            .filter(|p| p.required && !params.contains_key(&p.name))
            .cloned()
            .collect();
        Ok((index, params, missing, targets))
    }
}

/// The conversation, read back: the task, the person's later instructions,
/// and since the latest of them, the answers the person gave (each
/// parameter's in order) and the result of each of the planner's own calls;
/// the planner's calls of every turn, by id.
struct Transcript {
    task: String,
    follow_ups: Vec<String>,
    answers: BTreeMap<String, Vec<String>>,
    results: BTreeMap<String, (String, bool)>,
    calls: BTreeMap<String, Value>,
    /// The plan's steps as the latest instruction found them (title,
    /// effects, status): a new turn adds its steps after them.
    earlier_steps: Vec<(String, Value, String)>,
}

/// The suffix of the planner's call ids in turn `turn` (0: the task itself).
fn turn_suffix(turn: usize) -> String {
    if turn == 0 {
        String::new()
    } else {
        format!("{ID_SEP}t{turn}")
    }
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
    let mut answers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut results = BTreeMap::new();
    let mut calls = BTreeMap::new();
    let mut follow_ups = Vec::new();
    let mut plan = Vec::new();
    let mut earlier_steps = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if m.role == Role::Assistant {
            for (id, name, input) in m.tool_uses() {
                calls.insert(id.to_owned(), input.clone());
                if name == meta::UPDATE_PLAN
                    && let Some(steps) = input["steps"].as_array()
                {
                    plan = steps
                        .iter()
                        .map(|s| {
                            let status = s["status"].as_str().unwrap_or("pending").to_owned();
                            (
                                s["title"].as_str().unwrap_or_default().to_owned(),
                                s["effects"].clone(),
                                status,
                            )
                        })
                        .collect();
                }
            }
            continue;
        }
        for b in &m.content {
            match b {
                Block::ToolResult {
                    tool_use_id,
                    content,
                    is_error,
                } => {
                    if let Some(rest) = tool_use_id.strip_prefix(ASK_PREFIX) {
                        let param = rest.split(ID_SEP).next().unwrap_or(rest);
                        let answer = content.strip_prefix(ANSWER_PREFIX).unwrap_or(content).trim().to_owned();
                        answers.entry(param.to_owned()).or_default().push(answer);
                    }
                    results.insert(tool_use_id.clone(), (content.clone(), *is_error));
                }
                Block::Text { text } if i > 0 && !text.starts_with(SUMMARY_MARK) => {
                    // A new instruction: its turn starts afresh.
                    follow_ups.push(text.clone());
                    answers.clear();
                    results.clear();
                    earlier_steps.clone_from(&plan);
                }
                _ => {}
            }
        }
    }
    // A compacted summary keeps the digest of earlier calls, not their ids;
    // the planner's own ids are few and stay in the recent turns.
    Transcript {
        task,
        follow_ups,
        answers,
        results,
        calls,
        earlier_steps,
    }
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

fn plan_input(steps: &[(String, Value, String)], reason: Option<&str>) -> Value {
    let steps: Vec<Value> = steps
        .iter()
        .map(|(title, effects, status)| json!({"title": title, "effects": effects, "status": status}))
        .collect();
    match reason {
        Some(r) => json!({"steps": steps, "reason": r}),
        None => json!({"steps": steps}),
    }
}

/// `folder inventory` -> `Folder inventory`.
fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
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
