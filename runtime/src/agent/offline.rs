//! The embedded offline planner: the default "model" when none is
//! configured. It matches the task to an installed skill, asks the person
//! for parameters it cannot read from the task, and then drives the same
//! loop a model would: a visible plan, the skill's sandboxed entry point,
//! a check of the deliverable, a summary. Where no skill fits it says so
//! and how to configure a model; it never pretends to understand.
//!
//! A skill made from a run of several calls (a recorded plan) runs its
//! recorded steps instead, one call a turn (`offline/recorded.rs`).
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
mod recorded;
mod transcript;
mod turn;

use transcript::*;

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
                Entry::Plan(steps) => format!("runs offline: a recorded plan of {} step(s)", steps.len()),
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
    ("split-pdf", include_str!("../../../skills/split-pdf/evals/evals.json")),
    (
        "csv-to-xlsx",
        include_str!("../../../skills/csv-to-xlsx/evals/evals.json"),
    ),
    (
        "xlsx-to-csv",
        include_str!("../../../skills/xlsx-to-csv/evals/evals.json"),
    ),
    (
        "sort-into-folders",
        include_str!("../../../skills/sort-into-folders/evals/evals.json"),
    ),
    (
        "find-duplicates",
        include_str!("../../../skills/find-duplicates/evals/evals.json"),
    ),
    (
        "notes-digest",
        include_str!("../../../skills/notes-digest/evals/evals.json"),
    ),
    (
        "combine-workbooks",
        include_str!("../../../skills/combine-workbooks/evals/evals.json"),
    ),
    (
        "convert-to-pdf",
        include_str!("../../../skills/convert-to-pdf/evals/evals.json"),
    ),
    (
        "fill-template",
        include_str!("../../../skills/fill-template/evals/evals.json"),
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
