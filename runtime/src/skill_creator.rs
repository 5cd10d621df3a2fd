//! The Skill Creator: a finished run made into a reusable skill, with a
//! handshake (draft, replay, show, confirm, install, prove).
//!
//! [`draft`] reads a run from the journal: the one sandboxed call that made
//! its files becomes the skill's entry; the call's arguments become typed
//! parameters (a folder it read varies from use to use and is required; a
//! file it delivered keeps the run's name as its default; a period comes
//! from the task's words; other values keep the run's as defaults), with
//! the kinds and descriptions of the skill the run used where it used one;
//! the run's task becomes the first eval, its plan the body's steps, and
//! what it delivered (files, sheets and their rows, formulas, pages) the
//! eval's expectations ([`inspect`]). [`replay`] runs the draft on a scratch
//! copy of the run's granted folders with the offline planner and sets what
//! it delivers beside the original; [`install`] copies a draft the person
//! confirmed into their skills folder, reads it back through discovery and
//! proves the offline planner picks it for each of its evals' phrasings.
//! Nothing is installed without [`install`], and `install` is only called
//! on the person's explicit yes (the terminal's prompt, the page's button).
//!
//! Works offline for runs of one sandboxed call (every bundled skill's
//! run) and for recorded plans: a run whose files came from several calls
//! (a model's, in one step or several) becomes a skill whose steps replay
//! those calls in order, the values that vary as `{{parameters}}`
//! (`recorded`), run by the offline planner (`agent/offline/recorded.rs`).
//! A workbook's evals count its rows against the files of the folder they
//! follow and check each total by the value LibreOffice recalculates
//! (`workbook`); the replay sets the values it delivered beside the run's,
//! cell by cell and line by line (`diff`).

mod diff;
mod recorded;
mod workbook;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use deskhand_types::{ChangeKind, Event, Grant, Mode, PlanStep, RunId, RunStatus, Task};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::agent::RefuseAll;
use crate::launch::{self, Launch, Start};
use crate::model::ModelConfig;
use crate::skills::{self, Entry, Match, MatchContext, ParamKind, ParamSpec, RecordedStep, Skill, SkillSource};
use crate::tools::{BundledTool, Toolbox};
use crate::workspace::Workspace;
pub use diff::{FileDiff, MAX_DIFFERENCES};
pub use workbook::Total;

/// A skill drafted from a run, before the person confirms it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    pub name: String,
    pub description: String,
    /// The run it was made from.
    pub run: RunId,
    /// The run's task, the first eval's prompt.
    pub task: String,
    pub grants: Vec<Grant>,
    /// The skill the run used, when it used one.
    pub from_skill: Option<String>,
    pub tool: String,
    pub operation: String,
    pub params: Vec<DraftParam>,
    pub keywords: Vec<String>,
    /// The run's plan: the body's steps.
    pub steps: Vec<PlanStep>,
    /// What the run delivered, as found on disk (`output/...`).
    pub delivered: Vec<FileFacts>,
    /// A run of several calls: its steps and calls as the skill replays
    /// them (`deskhand-entry: plan`); empty when the skill runs one call
    /// (`tool`.`operation`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<RecordedStep>,
    /// How many files each input folder parameter held in the run (for
    /// the evals' row counts relative to the inputs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, usize>,
}

/// One parameter of a draft: its spec and the run's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DraftParam {
    pub name: String,
    /// As `deskhand-param-<name>` writes it: `path, required, The folder`.
    pub spec: String,
    /// The value in the run (relative to the workspace where it was a path in it).
    pub example: String,
}

/// What a delivered file holds, as the checks see it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileFacts {
    /// Relative to the workspace (`output/expenses.xlsx`).
    pub path: String,
    pub size: u64,
    /// Sheets of a workbook: name, data rows (below the header), formulas.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sheets: Vec<SheetFacts>,
    /// Pages of a PDF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages: Option<u64>,
    /// Lines of a text or CSV file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<usize>,
    /// A workbook's totals: cells that `SUM` the column above them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub totals: Vec<Total>,
    /// A workbook's sheets that have one row per file of an input folder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows_per_file: Vec<RowsPerFile>,
}

/// A sheet with one data row per file of the folder a parameter names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowsPerFile {
    pub sheet: String,
    /// The parameter whose folder's files the rows follow.
    pub folder: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SheetFacts {
    pub name: String,
    pub rows: usize,
    pub formulas: usize,
}

/// Makes a draft of a skill from `run`. `skills` are the skills the run
/// could have used (their kinds and descriptions are reused); `tb` reads
/// what the run delivered.
pub fn draft(ws: &Workspace, run: &RunId, skills: &[Skill], tb: &Toolbox) -> Result<Draft, String> {
    let journal = ws.journal();
    let row = journal
        .task(run)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no run {run} in this workspace; `deskhand runs` lists them"))?;
    if row.parent.is_some() {
        return Err(format!(
            "{run} is a sub-agent's run; make the skill from its parent run"
        ));
    }
    if row.status != "succeeded" {
        return Err(format!(
            "run {run} {}; a skill is made from a run that finished as you wanted",
            match row.status.as_str() {
                "needs_input" => "waits for your answer".to_owned(),
                "running" => "has not finished".to_owned(),
                other => format!("ended {other}"),
            }
        ));
    }
    let events: Vec<Event> = journal
        .events(run)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|e| e.event)
        .collect();
    let Some(task) = events.iter().find_map(|e| match e {
        Event::RunBegin { task, .. } => Some(task.clone()),
        _ => None,
    }) else {
        return Err(format!("run {run} has no beginning in the journal"));
    };

    // The calls whose changes were applied, and what they created.
    let mut calls: BTreeMap<String, (String, String, Value)> = BTreeMap::new();
    let mut proposed: BTreeMap<String, (String, Vec<PathBuf>)> = BTreeMap::new();
    let mut makers: Vec<String> = Vec::new();
    let mut created: Vec<PathBuf> = Vec::new();
    let mut steps: Vec<PlanStep> = Vec::new();
    // The title of the step each call ran in.
    let mut step_of: BTreeMap<String, String> = BTreeMap::new();
    let mut current_step = String::new();
    for e in &events {
        match e {
            Event::StepBegin { title, .. } => current_step.clone_from(title),
            Event::ToolCallBegin {
                call,
                tool,
                operation,
                args,
            } => {
                calls.insert(call.0.clone(), (tool.clone(), operation.clone(), args.clone()));
                step_of.insert(call.0.clone(), current_step.clone());
            }
            Event::ChangesProposed {
                call,
                changeset,
                changes,
                ..
            } => {
                let made = changes
                    .iter()
                    .filter(|c| c.kind == ChangeKind::Create)
                    .map(|c| c.path.clone())
                    .collect();
                proposed.insert(changeset.clone(), (call.0.clone(), made));
            }
            Event::ChangesApplied { changeset, .. } => {
                if let Some((call, made)) = proposed.remove(changeset) {
                    if !makers.contains(&call) {
                        makers.push(call);
                    }
                    created.extend(made);
                }
            }
            Event::PlanUpdated { plan } => steps = plan.steps.clone(),
            _ => {}
        }
    }
    let maker = match makers.as_slice() {
        [one] => one,
        [] => {
            return Err(format!(
                "run {run} changed no file, so a skill made from it would do nothing; make one from a run that \
                 delivered what you wanted"
            ));
        }
        many => {
            let run = recorded::Run {
                ws,
                id: run,
                task: &task,
                makers: many,
                calls: &calls,
                steps: &steps,
                step_of: &step_of,
                created,
            };
            let mut draft = recorded::draft(&run, skills, tb)?;
            follow_inputs(ws, tb, &mut draft);
            return Ok(draft);
        }
    };
    let (tool, operation, args) = calls
        .get(maker)
        .cloned()
        .ok_or_else(|| format!("run {run}'s journal has changes from a call it never began"))?;
    if BundledTool::from_name(&tool).is_none() && tool != "office" {
        return Err(format!(
            "run {run} made its files with {tool}.{operation}, which is not one of deskhand's tools; a skill \
             made without a model runs deskhand's own tools"
        ));
    }
    let from = skills
        .iter()
        .find(|s| matches!(&s.entry, Entry::Bundled { tool: t, operation: o } if *t == tool && *o == operation));

    let root = ws.root();
    let relative = |v: &str| -> String {
        Path::new(v)
            .strip_prefix(root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| v.to_owned())
    };
    let Value::Object(args) = args else {
        return Err(format!("run {run}'s call {tool}.{operation} had no named arguments"));
    };
    let mut params = Vec::new();
    for (name, value) in &args {
        let Value::String(value) = value else {
            // Only text reaches a skill's parameters; the tool keeps its own default.
            continue;
        };
        let example = relative(value);
        let known = from.and_then(|s| s.params.iter().find(|p| p.name == *name));
        params.push(param(name, &example, known, root));
    }
    // A period the run was given but the call does not name stays a parameter.
    if let Some(s) = from {
        for p in s.params.iter().filter(|p| p.kind == ParamKind::Period) {
            if !params.iter().any(|d| d.name == p.name) {
                params.push(DraftParam {
                    name: p.name.clone(),
                    spec: format!("period, optional, {}", p.description),
                    example: String::new(),
                });
            }
        }
    }

    let examples: Vec<String> = params
        .iter()
        .filter(|p| p.spec.contains("required"))
        .map(|p| p.example.to_lowercase())
        .collect();
    let words = content_words(&task.outcome, &examples);
    let name = slug(&words);
    // The task's own words as one phrase, so the person's skill outranks
    // the one the run used (whose keywords and name it also carries) for
    // the task it was made from, whatever it is renamed to.
    let mut all_words: Vec<String> = Vec::new();
    for w in content_words(&task.outcome, &[]) {
        if !all_words.contains(&w) && all_words.len() < 6 {
            all_words.push(w);
        }
    }
    let mut keywords = vec![name.replace('-', " "), all_words.join(" ")];
    if let Some(s) = from {
        keywords.push(s.name.replace('-', " "));
        keywords.extend(s.keywords.iter().cloned());
    }
    keywords.dedup();
    let description = describe(&task.outcome, from, &params);

    let mut delivered = Vec::new();
    for path in created {
        let rel = relative(&path.to_string_lossy());
        delivered.push(inspect(ws, tb, &rel));
    }
    let mut draft = Draft {
        name,
        description,
        run: run.clone(),
        task: task.outcome.clone(),
        grants: task.grants.clone(),
        from_skill: from.map(|s| s.name.clone()),
        tool,
        operation,
        params,
        keywords,
        steps,
        delivered,
        plan: Vec::new(),
        inputs: BTreeMap::new(),
    };
    follow_inputs(ws, tb, &mut draft);
    Ok(draft)
}

/// Finds, for each folder the draft reads (a required path parameter), how
/// many files it held and which delivered sheets have one row per file.
fn follow_inputs(ws: &Workspace, tb: &Toolbox, draft: &mut Draft) {
    let folders: Vec<(String, Vec<String>)> = draft
        .params
        .iter()
        .filter(|p| p.spec.starts_with("path, required") && ws.root().join(&p.example).is_dir())
        .map(|p| (p.name.clone(), workbook::files_in(&ws.root().join(&p.example))))
        .collect();
    for (name, files) in &folders {
        draft.inputs.insert(name.clone(), files.len());
    }
    for f in &mut draft.delivered {
        if f.sheets.is_empty() {
            continue;
        }
        let Ok(sheets) = workbook::read(ws, tb, &f.path) else {
            continue;
        };
        for sheet in &sheets {
            if let Some((name, _)) = folders.iter().find(|(_, files)| sheet.one_row_per(files)) {
                f.rows_per_file.push(RowsPerFile {
                    sheet: sheet.name.clone(),
                    folder: name.clone(),
                });
            }
        }
    }
}

const WORDS_PROMPT: &str = "You name and describe a reusable skill made from a task that went well. \
The skill repeats the task on other inputs. Reply with one JSON object and nothing else: \
{\"name\": \"...\", \"description\": \"...\"}. The name: 1 to 64 lowercase letters, digits and single hyphens, \
saying what it makes. The description: under 600 characters, what the skill does and when to use it, naming \
its inputs by their parameter names, never a secret or a file's content.";

/// With a model, the draft's name and description in the model's words (the
/// run's task, steps, parameters and deliveries are what it is told). The
/// words are shown to the person with the rest of the draft before anything
/// is installed, and must pass the format's rules; where the model's answer
/// does not, the draft keeps its own words and the error says why.
pub fn words_from_model(draft: &mut Draft, model: &dyn crate::model::ModelProvider) -> Result<(), String> {
    let mut about = format!("The task: {}\nIts steps:\n", draft.task);
    for s in &draft.steps {
        about.push_str(&format!("- {}\n", s.title));
    }
    about.push_str("Its parameters (name: kind and how it is given; the run's value):\n");
    for p in &draft.params {
        about.push_str(&format!("- {}: {}; {}\n", p.name, p.spec, p.example));
    }
    about.push_str("What it delivered:\n");
    for f in &draft.delivered {
        about.push_str(&format!("- {} ({})\n", f.path, facts_words(f)));
    }
    let messages = [deskhand_types::model::Message::user_text(about)];
    let request = crate::model::ModelRequest {
        system: WORDS_PROMPT,
        messages: &messages,
        tools: &[],
        max_tokens: 1024,
        stop: None,
    };
    let response = model
        .complete(&request, &mut |_| {})
        .map_err(|e| format!("the model could not draft the words: {e}"))?;
    let text = deskhand_types::model::Message {
        role: deskhand_types::model::Role::Assistant,
        content: response.content,
    }
    .text();
    let json = text
        .find('{')
        .zip(text.rfind('}'))
        .and_then(|(a, b)| text.get(a..=b))
        .ok_or("the model's answer held no JSON object with a name and a description")?;
    #[derive(Deserialize)]
    struct Words {
        name: String,
        description: String,
    }
    let words: Words =
        serde_json::from_str(json).map_err(|e| format!("the model's answer is not the words asked for ({e})"))?;
    let mut worded = draft.clone();
    worded.name = words.name.trim().to_owned();
    worded.description = words.description.split_whitespace().collect::<Vec<_>>().join(" ");
    // The new name is a phrase the offline planner picks it by, too.
    worded.keywords.insert(0, worded.name.replace('-', " "));
    worded.keywords.dedup();
    worded
        .parsed()
        .map_err(|e| format!("the model's words do not fit the skill format: {e}"))?;
    *draft = worded;
    Ok(())
}

/// The spec of one parameter from the run's value/// The spec of one parameter from the run's value (and the used skill's spec).
fn param(name: &str, example: &str, known: Option<&ParamSpec>, root: &Path) -> DraftParam {
    let under_output = example == "output" || example.starts_with("output/");
    let kind = match known {
        Some(p) => match &p.kind {
            ParamKind::Path => "path".to_owned(),
            ParamKind::File if p.extensions.is_empty() => "file".to_owned(),
            ParamKind::File => format!("file({})", p.extensions.join("|")),
            ParamKind::Date => "date".into(),
            ParamKind::Period => "period".into(),
            ParamKind::Pages => "pages".into(),
            ParamKind::Text => "text".into(),
            ParamKind::Format(o) => format!("format({})", o.join("|")),
        },
        None if under_output || (!example.is_empty() && root.join(example).exists()) => "path".into(),
        None if skills::period::parse_day(example).is_some() => "date".into(),
        None if example
            .split_once("..")
            .is_some_and(|(a, b)| skills::period::parse_day(a).is_some() && skills::period::parse_day(b).is_some()) =>
        {
            "period".into()
        }
        None => "text".into(),
    };
    let description = known.map_or_else(|| format!("The {name}"), |p| p.description.clone());
    let is_path = kind == "path" || kind.starts_with("file");
    let flag = if is_path && !under_output {
        // What it reads varies from one use to the next.
        "required".to_owned()
    } else if kind == "period" {
        "optional".to_owned()
    } else {
        format!("default={example}")
    };
    DraftParam {
        name: name.into(),
        spec: format!("{kind}, {flag}, {description}"),
        example: example.into(),
    }
}

const STOP: &[&str] = &[
    "a", "an", "and", "as", "at", "by", "for", "from", "i", "in", "into", "it", "me", "my", "of", "on", "or", "our",
    "please", "the", "this", "to", "with", "make", "turn", "each", "every", "all",
];

/// The task's words that say what it does: not stop words, not the
/// folders or files it was given.
fn content_words(task: &str, examples: &[String]) -> Vec<String> {
    let given: Vec<&str> = examples
        .iter()
        .flat_map(|e| e.split(['/', ' ', '.', '-', '_']))
        .filter(|w| !w.is_empty())
        .collect();
    task.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.len() > 1 && !STOP.contains(&w.as_str()) && !given.contains(&w.as_str()))
        .filter(|w| !w.chars().all(|c| c.is_ascii_digit()))
        .collect()
}

/// A skill name from words: lowercase ASCII, digits and single hyphens, at
/// most four words and 64 characters.
fn slug(words: &[String]) -> String {
    let ascii: Vec<String> = words
        .iter()
        .map(|w| {
            w.to_lowercase()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .take(4)
        .collect();
    let mut name = ascii.join("-");
    name.truncate(64);
    let name = name.trim_matches('-').to_owned();
    if name.is_empty() { "my-skill".into() } else { name }
}

/// What and when, from the run: the used skill's first sentence, then the
/// task with the values that vary named by their parameter.
fn describe(task: &str, from: Option<&Skill>, params: &[DraftParam]) -> String {
    let what = from
        .map(|s| {
            let first = s.description.split(". ").next().unwrap_or(&s.description);
            format!("{}.", first.trim_end_matches('.'))
        })
        .unwrap_or_else(|| "Does what the run it was made from did.".into());
    let mut when = task.to_owned();
    for p in params
        .iter()
        .filter(|p| p.spec.contains("required") && !p.example.is_empty())
    {
        when = when.replace(&p.example, &format!("<{}>", p.name));
    }
    let mut d = format!("{what} Made from the task \"{task}\". Use when asked to do it again: \"{when}\".");
    if d.chars().count() > 1000 {
        d = d.chars().take(1000).collect();
    }
    d
}

/// What `rel` (under the workspace) holds: its size, and for a workbook
/// its sheets, data rows and formulas, for a PDF its pages, for text its
/// lines. Read through the sandboxed tools' read-only path.
pub fn inspect(ws: &Workspace, tb: &Toolbox, rel: &str) -> FileFacts {
    let path = ws.root().join(rel);
    let mut facts = FileFacts {
        path: rel.to_owned(),
        size: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
        ..FileFacts::default()
    };
    let ext = Path::new(rel)
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let args = json!({"path": path});
    match ext.as_str() {
        "xlsx" | "xlsm" | "ods" | "xls" => {
            if let Ok(out) = tb.read_only(ws, BundledTool::Xlsx, "read", &args)
                && let Some(sheets) = out.json.get("sheets").and_then(Value::as_array)
            {
                facts.sheets = sheets
                    .iter()
                    .map(|s| {
                        let rows = s.get("rows").and_then(Value::as_array);
                        SheetFacts {
                            name: s.get("name").and_then(Value::as_str).unwrap_or_default().to_owned(),
                            rows: rows.map_or(0, Vec::len),
                            formulas: rows.map_or(0, |r| {
                                r.iter()
                                    .filter_map(Value::as_array)
                                    .flatten()
                                    .filter(|c| c.get("formula").is_some())
                                    .count()
                            }),
                        }
                    })
                    .collect();
            }
            if let Ok(sheets) = workbook::read(ws, tb, rel) {
                facts.totals = sheets.iter().flat_map(workbook::Sheet::totals).collect();
            }
        }
        "pdf" => {
            if let Ok(out) = tb.read_only(ws, BundledTool::Pdf, "info", &args) {
                facts.pages = out.json.get("pages").and_then(Value::as_u64);
            }
        }
        "csv" | "txt" | "md" => {
            facts.lines = std::fs::read_to_string(&path).ok().map(|t| t.lines().count());
        }
        _ => {}
    }
    facts
}

impl Draft {
    /// The `SKILL.md` of the draft: the frontmatter (written by a YAML
    /// serializer, so any text is quoted right) and a body with the steps.
    pub fn skill_md(&self) -> String {
        let mut metadata = serde_yaml_ng::Mapping::new();
        let mut put = |k: &str, v: String| {
            metadata.insert(k.into(), v.into());
        };
        if self.plan.is_empty() {
            put("deskhand-entry", format!("{}.{}", self.tool, self.operation));
        } else {
            put("deskhand-entry", "plan".to_owned());
            for (i, step) in self.plan.iter().enumerate() {
                put(
                    &format!("deskhand-step-{}", i + 1),
                    serde_json::to_string(step).unwrap_or_default(),
                );
            }
        }
        put("deskhand-keywords", self.keywords.join(", "));
        put(
            "deskhand-params",
            self.params
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        );
        for p in &self.params {
            put(&format!("deskhand-param-{}", p.name), p.spec.clone());
        }
        put("made-from-run", self.run.0.clone());
        let mut front = serde_yaml_ng::Mapping::new();
        front.insert("name".into(), self.name.clone().into());
        front.insert("description".into(), self.description.clone().into());
        front.insert("metadata".into(), serde_yaml_ng::Value::Mapping(metadata));
        let yaml = serde_yaml_ng::to_string(&front).unwrap_or_default();
        let mut body = format!(
            "---\n{yaml}---\n\n# {}\n\n{}\n\nMade with `deskhand skill create` from run `{}`, whose task was:\n\n> {}\n\n## Steps\n\n",
            self.name, self.description, self.run, self.task
        );
        for (i, s) in self.plan.iter().enumerate() {
            let calls: Vec<&str> = s.calls.iter().map(|c| c.call.as_str()).collect();
            body.push_str(&format!("{}. {} (calls {})\n", i + 1, s.title, calls.join(", ")));
        }
        for (i, s) in self.steps.iter().enumerate().filter(|_| self.plan.is_empty()) {
            let list = |v: &[PathBuf]| {
                if v.is_empty() {
                    "nothing".to_owned()
                } else {
                    v.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                }
            };
            body.push_str(&format!(
                "{}. {} (reads {}; writes {})\n",
                i + 1,
                s.title,
                list(&s.effects.reads),
                list(&s.effects.writes)
            ));
        }
        body.push_str("\n## What it delivers\n\n");
        for f in &self.delivered {
            body.push_str(&format!("- `{}` ({})\n", f.path, facts_words(f)));
        }
        body
    }

    /// `evals/evals.json`: the run's task with the parameters it must fill,
    /// and what it must deliver: the files, each workbook's sheets with at
    /// least one row, its formulas, the sheets whose rows follow the inputs
    /// (`rows_per_file`: one data row per file of a folder parameter's
    /// folder, whatever their number), the totals LibreOffice must
    /// recalculate to the sum of their rows (`totals`), a PDF's pages (the
    /// run's counts are kept beside them as `in_the_run`).
    pub fn evals_json(&self) -> String {
        let params: BTreeMap<&str, &str> = self
            .params
            .iter()
            .filter(|p| !p.example.is_empty())
            .map(|p| (p.name.as_str(), p.example.as_str()))
            .collect();
        let expectations: Vec<Value> = self
            .delivered
            .iter()
            .map(|f| {
                let mut e = json!({"file": f.path});
                if !f.sheets.is_empty() {
                    e["sheets"] = json!(f.sheets.iter().map(|s| &s.name).collect::<Vec<_>>());
                    e["formulas"] = json!(f.sheets.iter().any(|s| s.formulas > 0));
                }
                if !f.rows_per_file.is_empty() {
                    e["rows_per_file"] = json!(f.rows_per_file);
                }
                if !f.totals.is_empty() {
                    e["totals"] = json!(f.totals);
                }
                if f.pages.is_some() {
                    e["pages_at_least"] = json!(1);
                }
                e["in_the_run"] = serde_json::to_value(f).unwrap_or(Value::Null);
                e
            })
            .collect();
        let folders: Vec<String> = self.grants.iter().map(|g| g.path.display().to_string()).collect();
        let evals = json!({
            "skill_name": self.name,
            "grants": self.grants,
            "about": "Made by deskhand skill create. Each eval: a phrasing the offline planner must match to this skill, the parameters it must fill, and what a run must deliver (expectations).",
            "workspace_folders": folders,
            "evals": self.eval_cases(&params, expectations),
        });
        serde_json::to_string_pretty(&evals).unwrap_or_default() + "\n"
    }

    /// The run's task, with what it must deliver; and the skill's name as
    /// a task on the folder the run read, so the name alone picks it.
    fn eval_cases(&self, params: &BTreeMap<&str, &str>, expectations: Vec<Value>) -> Vec<Value> {
        let mut cases = vec![json!({"prompt": self.task, "params": params, "expectations": expectations})];
        if let Some(input) = self
            .params
            .iter()
            .find(|p| p.spec.contains("required") && !p.example.is_empty())
        {
            let prompt = format!("{} of {}", self.name.replace('-', " "), input.example);
            if prompt != self.task {
                cases.push(json!({"prompt": prompt, "params": {input.name.as_str(): input.example}}));
            }
        }
        cases
    }

    /// Writes the draft's folder (`SKILL.md`, `evals/evals.json`) into `dir`.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir.join("evals"))?;
        std::fs::write(dir.join(skills::SKILL_FILE), self.skill_md())?;
        std::fs::write(dir.join("evals").join("evals.json"), self.evals_json())
    }

    /// The draft as a skill (its `SKILL.md` read back), or why it is not one.
    pub fn parsed(&self) -> Result<Skill, String> {
        crate::skills::parse_skill_strict(&self.skill_md(), SkillSource::User, None).map_err(|e| e.to_string())
    }
}

/// A file's facts in words: "Expenses: 6 rows, Summary: 5 rows; 13 formulas", "2 pages".
pub fn facts_words(f: &FileFacts) -> String {
    let n = |count: u64, one: &str, many: &str| format!("{count} {}", if count == 1 { one } else { many });
    if !f.sheets.is_empty() {
        let sheets: Vec<String> = f
            .sheets
            .iter()
            .map(|s| format!("{}: {}", s.name, n(s.rows as u64, "row", "rows")))
            .collect();
        let formulas: usize = f.sheets.iter().map(|s| s.formulas).sum();
        return format!("{}; {}", sheets.join(", "), n(formulas as u64, "formula", "formulas"));
    }
    if let Some(p) = f.pages {
        return n(p, "page", "pages");
    }
    if let Some(l) = f.lines {
        return n(l as u64, "line", "lines");
    }
    n(f.size, "byte", "bytes")
}

/// The draft's replay: what the original run and the replay delivered, side by side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replay {
    /// The replay's summary (or why it did not finish).
    pub summary: String,
    pub finished: bool,
    /// Original facts, and the replay's for the same name (`None`: not delivered).
    pub files: Vec<(FileFacts, Option<FileFacts>)>,
    /// Each delivered file's values beside the replay's: what differs.
    pub diffs: Vec<FileDiff>,
}

impl Replay {
    /// How many values differ between the run's files and the replay's.
    pub fn differences(&self) -> usize {
        self.diffs.iter().map(FileDiff::count).sum()
    }

    /// True if the replay finished and delivered every file with the same
    /// sheets, rows, formulas and pages as the run.
    pub fn matches(&self) -> bool {
        self.finished
            && self.files.iter().all(|(a, b)| {
                b.as_ref()
                    .is_some_and(|b| a.sheets == b.sheets && a.pages == b.pages && a.lines == b.lines)
            })
    }
}

/// Bytes of the granted folders a replay copies at most.
const REPLAY_COPY_LIMIT: u64 = 512 << 20;

/// Runs `draft` on a scratch copy of the run's granted folders of `ws`,
/// with the offline planner and only the draft among the user's skills,
/// and sets what it delivered beside what the run delivered. Nothing in
/// `ws` changes.
pub fn replay(ws: &Workspace, draft: &Draft, tb: &Toolbox) -> Result<Replay, String> {
    let holder = tempfile::tempdir().map_err(|e| format!("no scratch folder for the replay: {e}"))?;
    let dir = holder.path().join(&draft.name);
    draft
        .write_to(&dir)
        .map_err(|e| format!("the draft could not be written for its replay: {e}"))?;
    let copy = run_on_copy(ws, &draft.grants, &draft.task, &dir, &draft.name, tb)?;
    let files = draft
        .delivered
        .iter()
        .map(|f| {
            let again = copy
                .workspace
                .root()
                .join(&f.path)
                .is_file()
                .then(|| inspect(&copy.workspace, tb, &f.path));
            (f.clone(), again)
        })
        .collect();
    let diffs = draft
        .delivered
        .iter()
        .map(|f| diff::diff(ws, &copy.workspace, tb, &f.path))
        .collect();
    Ok(Replay {
        summary: copy.summary,
        finished: copy.finished,
        files,
        diffs,
    })
}

/// A run of one skill on a scratch copy of a workspace's folders.
struct CopyRun {
    /// Holds the scratch folder while the copy is read.
    _scratch: tempfile::TempDir,
    workspace: Workspace,
    /// It finished, with the skill (not another) chosen for the task.
    finished: bool,
    summary: String,
}

/// Copies `grants` (folders of `ws`) into a scratch workspace, installs the
/// skill folder `skill_dir` as the scratch's only user skill, and runs
/// `task` there in act mode with the offline planner (a step or change
/// that would ask anyone is refused).
fn run_on_copy(
    ws: &Workspace,
    grants: &[Grant],
    task: &str,
    skill_dir: &Path,
    name: &str,
    tb: &Toolbox,
) -> Result<CopyRun, String> {
    let scratch = tempfile::tempdir().map_err(|e| format!("no scratch folder: {e}"))?;
    let root = scratch.path().join("workspace");
    let (copy, _) = Workspace::init(&root).map_err(|e| e.to_string())?;
    let mut budget = REPLAY_COPY_LIMIT;
    for g in grants {
        let rel = g.path.strip_prefix(ws.root()).unwrap_or(&g.path);
        if rel.is_absolute() {
            return Err(format!(
                "the task is granted {}, outside its workspace; only folders of the workspace are copied",
                g.path.display()
            ));
        }
        copy_tree(&ws.root().join(rel), &root.join(rel), &mut budget)?;
    }
    let config_dir = scratch.path().join("config");
    let copied = skills::user_skills_dir(&config_dir).join(name);
    copy_tree(skill_dir, &copied, &mut budget)?;
    // The person asked for this run of the skill, on copies only: its code
    // counts as confirmed in the scratch's own record.
    let text = std::fs::read_to_string(copied.join(skills::SKILL_FILE)).map_err(|e| e.to_string())?;
    let skill = skills::parse_skill(&text, SkillSource::User, Some(&copied)).map_err(|e| e.to_string())?;
    if matches!(skill.entry, Entry::Component { .. }) {
        skills::component::Confirmed::load(&config_dir)
            .and_then(|mut c| c.confirm(&skill))
            .map_err(|e| format!("the skill's code could not be confirmed for the scratch run: {e}"))?;
    }
    let task = Task {
        outcome: task.to_owned(),
        grants: grants.to_vec(),
        mode: Mode::Act,
        params: Default::default(),
    };
    let warn = |_: String| {};
    let l = Launch {
        workspace: &copy,
        config: ModelConfig::default(),
        config_dir: Some(config_dir),
        params: Vec::new(),
        // Act mode approves its steps; anything that would ask (a deletion) is
        // refused, as the scratch copy is no one's.
        gate: &RefuseAll("a run on a scratch copy asks no one"),
        observer: None,
        shell: None,
        warn: &warn,
        stop: None,
        envelope: None,
    };
    let report = launch::launch_shared(l, tb, Start::New(task)).map_err(|e| format!("the run did not start: {e}"))?;
    // The offline planner titles a skill's step after the skill.
    let used = report
        .plan
        .steps
        .first()
        .is_some_and(|s| s.title.starts_with(&format!("Run {name} on ")));
    let succeeded = report.status == RunStatus::Succeeded;
    let summary = if used || !succeeded {
        report.summary.clone()
    } else {
        format!(
            "the offline planner chose another skill for the task: {}",
            report.summary
        )
    };
    Ok(CopyRun {
        _scratch: scratch,
        workspace: copy,
        finished: succeeded && used,
        summary,
    })
}

/// Copies the files and folders of `from` into `to` (links skipped), within `budget` bytes.
pub(crate) fn copy_tree(from: &Path, to: &Path, budget: &mut u64) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(from).map_err(|e| format!("{}: {e}", from.display()))?;
    if meta.is_file() {
        *budget = budget.checked_sub(meta.len()).ok_or_else(|| {
            format!(
                "too much to copy: {} reaches the size limit for a copy (a replay copies at most {} MiB)",
                from.display(),
                REPLAY_COPY_LIMIT >> 20
            )
        })?;
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::copy(from, to).map_err(|e| format!("{}: {e}", from.display()))?;
        // The copy keeps its time, as tools that read dates (an inventory,
        // rename-by-date) see it: the replay's values are then the run's.
        if let Ok(modified) = meta.modified() {
            let _ = std::fs::File::options()
                .write(true)
                .open(to)
                .and_then(|f| f.set_modified(modified));
        }
        return Ok(());
    }
    if !meta.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(to).map_err(|e| e.to_string())?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in entries.flatten() {
        copy_tree(&entry.path(), &to.join(entry.file_name()), budget)?;
    }
    Ok(())
}

/// What [`install`] proved.
#[derive(Debug, Clone, PartialEq)]
pub struct Installed {
    pub skill: Skill,
    /// Its evals, checked as every run will find it.
    pub checks: Vec<EvalCheck>,
}

/// Installs the skill folder `dir` (a draft the person confirmed, or any
/// skill folder) into the user's skills folder in `config_dir`, then reads
/// it back through discovery and checks its `evals/evals.json` against the
/// offline planner ([`check_evals`]). Refuses a name already installed
/// unless `replace`. The copy is made beside and moved into place, so a
/// half-copied skill is never found.
pub fn install(dir: &Path, config_dir: &Path, ws: &Workspace, replace: bool) -> Result<Installed, String> {
    let text = std::fs::read_to_string(dir.join(skills::SKILL_FILE))
        .map_err(|e| format!("{}: {e}", dir.join(skills::SKILL_FILE).display()))?;
    let skill = skills::parse_skill_strict(&text, SkillSource::User, Some(dir)).map_err(|e| e.to_string())?;
    let target = skills::user_skills_dir(config_dir).join(&skill.name);
    if target.exists() && !replace {
        return Err(format!(
            "a skill named {} is already installed at {}; choose another name, or replace it",
            skill.name,
            target.display()
        ));
    }
    place(dir, &target, REPLAY_COPY_LIMIT)?;

    // Read back as every run will find it.
    let found = skills::discover(ws.root(), Some(config_dir));
    let Some(back) = found
        .skills
        .iter()
        .find(|s| s.name == skill.name && s.source == SkillSource::User)
    else {
        return Err(format!(
            "{} was copied to {} but is not found there (a workspace skill of the same name comes first?): {:?}",
            skill.name,
            target.display(),
            found.problems.iter().map(ToString::to_string).collect::<Vec<_>>()
        ));
    };
    let expected = Skill {
        dir: Some(target.clone()),
        entry: match &skill.entry {
            Entry::Component { path, operation } => Entry::Component {
                path: target.join(path.strip_prefix(dir).unwrap_or(path)),
                operation: operation.clone(),
            },
            other => other.clone(),
        },
        ..skill.clone()
    };
    if *back != expected {
        return Err(format!("{} reads back differently from what was installed", skill.name));
    }
    let checks = check_evals(back, &found.skills, ws.root())?;
    Ok(Installed {
        skill: back.clone(),
        checks,
    })
}

/// A skill shared as a zip archive (`.zip`, `.skill`; a path or a
/// `file://` URL), unpacked into a scratch folder named after the skill:
/// the archive is a stranger's file, so the fs tool unpacks it inside the
/// wasm sandbox (links and names leaving the folder left out), and the
/// folder is then shown and installed like any ([`install`]). The scratch
/// folder lives as long as the returned `TempDir`.
pub fn unpack_archive(archive: &str, tb: &Toolbox) -> Result<(tempfile::TempDir, PathBuf), String> {
    let path = match archive.strip_prefix("file://") {
        Some(_) => url::Url::parse(archive)
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .ok_or_else(|| format!("{archive} is not a local file URL"))?,
        None if archive.contains("://") => {
            return Err(format!(
                "{archive}: only a local archive can be installed (a path or a file:// URL); deskhand does not download"
            ));
        }
        None => PathBuf::from(archive),
    };
    let scratch = tempfile::tempdir().map_err(|e| format!("no scratch folder: {e}"))?;
    let (copy, _) = Workspace::init(&scratch.path().join("workspace")).map_err(|e| e.to_string())?;
    let inbox = copy.root().join("projects");
    std::fs::create_dir_all(&inbox).map_err(|e| e.to_string())?;
    std::fs::copy(&path, inbox.join("archive.zip")).map_err(|e| format!("{}: {e}", path.display()))?;
    let grants = [Grant::read_only("projects")];
    let req = crate::tools::CallRequest {
        tool: "fs",
        operation: "unpack",
        args: json!({"path": "projects/archive.zip", "to": "output/unpacked"}),
        grants: &grants,
        limits: crate::wasm::Limits::default(),
    };
    crate::tools::run_call(&copy, tb, &req, None).map_err(|e| format!("{}: {e}", path.display()))?;
    let unpacked = copy.output_dir().join("unpacked");
    let text = std::fs::read_to_string(unpacked.join(skills::SKILL_FILE)).map_err(|_| {
        format!(
            "{} holds no SKILL.md at its top (or in its one folder); it is not a skill",
            path.display()
        )
    })?;
    let name = skills::parse_skill(&text, SkillSource::User, None)
        .map_err(|e| e.to_string())?
        .name;
    let named = scratch.path().join("named").join(&name);
    std::fs::create_dir_all(scratch.path().join("named")).map_err(|e| e.to_string())?;
    std::fs::rename(&unpacked, &named).map_err(|e| e.to_string())?;
    Ok((scratch, named))
}

/// True if `source` names an archive rather than a skill folder.
pub fn is_archive(source: &str) -> bool {
    source.starts_with("file://")
        || source.contains("://")
        || [".zip", ".skill"].iter().any(|e| source.to_lowercase().ends_with(e))
}

/// Copies the folder `from` to `target` (at most `limit` bytes, links
/// skipped) beside it first and then moved into place, so a half-copied
/// folder is never found there; a folder already at `target` is set aside.
pub(crate) fn place(from: &Path, target: &Path, limit: u64) -> Result<(), String> {
    let parent = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".installing-")
        .tempdir_in(parent)
        .map_err(|e| format!("{}: {e}", parent.display()))?;
    copy_tree(from, staging.path(), &mut { limit })?;
    if target.exists() {
        set_aside(target)?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, target).map_err(|e| format!("{}: {e}", target.display()))
}

/// Moves a skill folder aside (`<name>.removed-<time>` beside it), never deleting it.
pub fn set_aside(dir: &Path) -> Result<PathBuf, String> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let aside = dir.with_file_name(format!(".{name}.removed-{stamp}"));
    std::fs::rename(dir, &aside).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(aside)
}

/// One eval of a skill, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalCheck {
    pub prompt: String,
    pub passed: bool,
    /// What the planner did, in words, when it did not do what the eval says.
    pub problem: Option<String>,
}

#[derive(Deserialize)]
struct EvalsFile {
    /// The folders a run of an eval is granted (`skills test` copies them).
    #[serde(default)]
    grants: Vec<Grant>,
    #[serde(default)]
    workspace_root: Option<PathBuf>,
    #[serde(default)]
    workspace_folders: Vec<PathBuf>,
    #[serde(default)]
    today: Option<String>,
    evals: Vec<EvalCase>,
}

#[derive(Deserialize)]
struct EvalCase {
    prompt: String,
    #[serde(default)]
    params: BTreeMap<String, String>,
    #[serde(default)]
    missing: Vec<String>,
    /// What a run must deliver: `{"file", "sheets", "formulas", "pages_at_least"}`.
    #[serde(default)]
    expectations: Vec<Value>,
}

fn read_evals(skill: &Skill) -> Result<Option<EvalsFile>, String> {
    let Some(dir) = &skill.dir else {
        return Err(format!(
            "{} is bundled with deskhand; deskhand's own tests check its evals",
            skill.name
        ));
    };
    let file = dir.join("evals").join("evals.json");
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", file.display())),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        format!(
            "{} is not an evals file ({e}); it needs \"evals\": [{{\"prompt\": ..., \"params\": {{...}}}}]",
            file.display()
        )
    })
}

/// Runs each eval of `skill` that says what it must deliver on a scratch
/// copy of the eval's granted folders of `ws` (the person's own folders,
/// say a different receipts folder than the skill was made from), and
/// checks what it delivered: each file, its sheets, that its formulas are
/// there, its pages. Nothing in `ws` changes. A skill's component must
/// already be in `tb` ([`launch::add_components`]).
pub fn check_deliveries(ws: &Workspace, skill: &Skill, tb: &Toolbox) -> Result<Vec<EvalCheck>, String> {
    let Some(evals) = read_evals(skill)? else {
        return Ok(Vec::new());
    };
    let Some(dir) = &skill.dir else {
        return Ok(Vec::new());
    };
    // Older evals name only the folders; those are granted read-only.
    let grants: Vec<Grant> = if evals.grants.is_empty() {
        evals
            .workspace_folders
            .iter()
            .map(|f| Grant::read_only(f.clone()))
            .collect()
    } else {
        evals.grants.clone()
    };
    let mut checks = Vec::new();
    for case in evals.evals.iter().filter(|c| !c.expectations.is_empty()) {
        let run = run_on_copy(ws, &grants, &case.prompt, dir, &skill.name, tb)?;
        let mut problems = Vec::new();
        if !run.finished {
            problems.push(format!("the run did not finish with the skill: {}", run.summary));
        }
        for e in &case.expectations {
            let Some(file) = e.get("file").and_then(Value::as_str) else {
                problems.push(format!("an expectation names no file: {e}"));
                continue;
            };
            if !run.workspace.root().join(file).is_file() {
                problems.push(format!("{file} was not delivered"));
                continue;
            }
            let facts = inspect(&run.workspace, tb, file);
            if let Some(sheets) = e.get("sheets").and_then(Value::as_array) {
                let want: Vec<&str> = sheets.iter().filter_map(Value::as_str).collect();
                let got: Vec<&str> = facts.sheets.iter().map(|s| s.name.as_str()).collect();
                if want != got {
                    problems.push(format!("{file} has sheets {got:?}, not {want:?}"));
                }
                if let Some(empty) = facts.sheets.iter().find(|s| s.rows == 0) {
                    problems.push(format!("{file}'s sheet {} has no rows", empty.name));
                }
            }
            let formulas: usize = facts.sheets.iter().map(|s| s.formulas).sum();
            if e.get("formulas").and_then(Value::as_bool) == Some(true) && formulas == 0 {
                problems.push(format!("{file} has no formulas"));
            }
            if let Some(least) = e.get("pages_at_least").and_then(Value::as_u64)
                && facts.pages.unwrap_or(0) < least
            {
                problems.push(format!(
                    "{file} has {} pages, fewer than {least}",
                    facts.pages.unwrap_or(0)
                ));
            }
            problems.extend(check_workbook(&run.workspace, tb, file, e, &case.params));
        }
        checks.push(EvalCheck {
            prompt: format!("{} (delivers)", case.prompt),
            passed: problems.is_empty(),
            problem: (!problems.is_empty()).then(|| problems.join("; ")),
        });
    }
    Ok(checks)
}

/// The workbook checks of one expectation on `file` of `ws`: each sheet of
/// `rows_per_file` has one data row per file of its folder (the folder the
/// eval's `params` give it), and each of `totals`, once LibreOffice has
/// recalculated a copy, is a formula whose value is the sum of the rows
/// above it. What fails, in words.
fn check_workbook(
    ws: &Workspace,
    tb: &Toolbox,
    file: &str,
    e: &Value,
    params: &BTreeMap<String, String>,
) -> Vec<String> {
    let follows: Vec<RowsPerFile> = e
        .get("rows_per_file")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let totals: Vec<Total> = e
        .get("totals")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    if follows.is_empty() && totals.is_empty() {
        return Vec::new();
    }
    let mut problems = Vec::new();
    if !follows.is_empty() {
        match workbook::read(ws, tb, file) {
            Ok(sheets) => {
                for f in &follows {
                    let Some(folder) = params.get(&f.folder) else {
                        problems.push(format!(
                            "the eval gives no {} folder, so {file}'s {} rows cannot be counted against it",
                            f.folder, f.sheet
                        ));
                        continue;
                    };
                    let files = workbook::files_in(&ws.root().join(folder));
                    match sheets.iter().find(|s| s.name == f.sheet) {
                        None => problems.push(format!("{file} has no sheet {}", f.sheet)),
                        Some(sheet) => {
                            let rows = sheet.data_rows().len();
                            if rows != files.len() {
                                problems.push(format!(
                                    "{file}'s sheet {} has {rows} data rows, but {folder} holds {} files and the run \
                                     made one row per file",
                                    f.sheet,
                                    files.len()
                                ));
                            }
                        }
                    }
                }
            }
            Err(err) => problems.push(err),
        }
    }
    if !totals.is_empty() {
        let delivered = workbook::read(ws, tb, file).unwrap_or_default();
        match workbook::recalculated(ws, tb, file) {
            Ok(sheets) => {
                for t in &totals {
                    match sheets.iter().find(|s| s.name == t.sheet) {
                        None => problems.push(format!("{file} has no sheet {} (its total is missing)", t.sheet)),
                        Some(sheet) => {
                            let as_delivered = delivered.iter().find(|s| s.name == t.sheet);
                            if let Err(why) = sheet.check_total(file, t, as_delivered) {
                                problems.push(why);
                            }
                        }
                    }
                }
            }
            Err(err) => problems.push(err),
        }
    }
    problems
}

/// Checks `skill`'s `evals/evals.json` (in its folder): for each phrasing,
/// the offline planner, choosing among `all`, picks this skill and fills
/// the parameters the eval lists. The evals' own `workspace_root`,
/// `workspace_folders` and `today` are used where they give them.
pub fn check_evals(skill: &Skill, all: &[Skill], ws_root: &Path) -> Result<Vec<EvalCheck>, String> {
    let Some(evals) = read_evals(skill)? else {
        return Ok(Vec::new());
    };
    let root = evals.workspace_root.clone().unwrap_or_else(|| ws_root.to_path_buf());
    let ctx = if evals.workspace_folders.is_empty() {
        MatchContext::for_workspace(&root, &[])
    } else {
        MatchContext {
            workspace_root: root,
            folders: evals.workspace_folders.clone(),
            writable: Vec::new(),
        }
    };
    let today = evals
        .today
        .as_deref()
        .and_then(skills::period::parse_day)
        .unwrap_or_else(skills::period::today);
    Ok(evals
        .evals
        .iter()
        .map(|case| {
            let problem = match skills::match_task_on(&case.prompt, all, &ctx, today) {
                Match::Matched {
                    skill: i,
                    params,
                    missing,
                    ..
                } if all[i].name == skill.name => {
                    let wrong: Vec<String> = case
                        .params
                        .iter()
                        .filter(|(k, v)| params.get(*k) != Some(*v))
                        .map(|(k, v)| format!("{k} should be {v:?}, was {:?}", params.get(k)))
                        .collect();
                    let asked: Vec<&str> = missing.iter().map(|p| p.name.as_str()).collect();
                    if !wrong.is_empty() {
                        Some(wrong.join("; "))
                    } else if asked != case.missing.iter().map(String::as_str).collect::<Vec<_>>() {
                        Some(format!("it would ask for {asked:?}, the eval says {:?}", case.missing))
                    } else {
                        None
                    }
                }
                Match::Matched { skill: i, .. } => Some(format!("the planner picks {} instead", all[i].name)),
                Match::NoMatch { reason, .. } => Some(format!("no skill is picked: {reason}")),
            };
            EvalCheck {
                prompt: case.prompt.clone(),
                passed: problem.is_none(),
                problem,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_what_the_task_does_not_what_it_was_given() {
        let words = content_words(
            "Turn the receipts in projects/receipts into an expense spreadsheet for March",
            &["projects/receipts".into()],
        );
        assert_eq!(words, ["expense", "spreadsheet", "march"]);
        assert_eq!(slug(&words), "expense-spreadsheet-march");
        assert_eq!(slug(&[]), "my-skill");
        assert_eq!(slug(&["Café".into(), "Überblick".into()]), "caf-berblick");
    }

    #[test]
    fn parameters_vary_where_the_run_read_and_keep_what_it_delivered() {
        let root = Path::new("/nowhere");
        let folder = param("folder", "projects/receipts", None, root);
        assert_eq!(folder.spec, "text, default=projects/receipts, The folder");
        let spec = ParamSpec {
            name: "folder".into(),
            kind: ParamKind::Path,
            required: true,
            default: None,
            description: "The folder of receipts".into(),
            extensions: Vec::new(),
        };
        let folder = param("folder", "projects/receipts", Some(&spec), root);
        assert_eq!(folder.spec, "path, required, The folder of receipts");
        let out = param("spreadsheet", "output/march.xlsx", None, root);
        assert_eq!(out.spec, "path, default=output/march.xlsx, The spreadsheet");
    }
}
