//! A run of several calls made into a recorded plan (`deskhand-entry:
//! plan`): the calls whose changes were applied, in order, grouped by the
//! step they ran in, with each value that varies from use to use (a folder
//! read, a deliverable's name, a date, a period, an option) replaced by a
//! `{{parameter}}` the offline planner fills. One value used by several
//! calls is one parameter; a path inside a folder parameter keeps its place
//! in it (`{{folder}}/bank.csv`).

use std::collections::BTreeMap;
use std::path::Path;

use deskhand_types::{PlanStep, RunId, Task};
use serde_json::Value;

use super::{Draft, DraftParam, content_words, describe, inspect, param, slug};
use crate::skills::{Entry, ParamKind, RecordedCall, RecordedStep, Skill};
use crate::tools::{BundledTool, Toolbox};
use crate::workspace::Workspace;

/// What [`draft`] reads of a run.
pub(super) struct Run<'a> {
    pub ws: &'a Workspace,
    pub id: &'a RunId,
    pub task: &'a Task,
    /// The calls whose changes were applied, in order.
    pub makers: &'a [String],
    /// Each call: tool, operation, arguments.
    pub calls: &'a BTreeMap<String, (String, String, Value)>,
    /// The run's plan as it ended.
    pub steps: &'a [PlanStep],
    /// The title of the step each call ran in.
    pub step_of: &'a BTreeMap<String, String>,
    pub created: Vec<std::path::PathBuf>,
}

/// The draft of a recorded plan from a run of several calls.
pub(super) fn draft(run: &Run<'_>, skills: &[Skill], tb: &Toolbox) -> Result<Draft, String> {
    let root = run.ws.root();
    let relative = |v: &str| -> String {
        Path::new(v)
            .strip_prefix(root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| v.to_owned())
    };
    let mut params: Vec<DraftParam> = Vec::new();
    // The run's value of each parameter, longest first when they are matched.
    let mut by_value: Vec<(String, String)> = Vec::new();
    let mut recorded: Vec<RecordedStep> = Vec::new();
    let mut used_skills: Vec<&Skill> = Vec::new();
    for id in run.makers {
        let (tool, operation, args) = run
            .calls
            .get(id)
            .ok_or_else(|| format!("run {}'s journal has changes from a call it never began", run.id))?;
        if BundledTool::from_name(tool).is_none() && tool != "office" {
            return Err(format!(
                "run {} made files with {tool}.{operation}, which is not one of deskhand's tools; a skill made \
                 without a model runs deskhand's own tools",
                run.id
            ));
        }
        let Value::Object(args) = args else {
            return Err(format!(
                "run {}'s call {tool}.{operation} had no named arguments",
                run.id
            ));
        };
        let from = skills
            .iter()
            .find(|s| matches!(&s.entry, Entry::Bundled { tool: t, operation: o } if t == tool && o == operation));
        if let Some(s) = from
            && !used_skills.iter().any(|u| u.name == s.name)
        {
            used_skills.push(s);
        }
        let mut call_args = serde_json::Map::new();
        for (name, value) in args {
            let Value::String(value) = value else {
                call_args.insert(name.clone(), value.clone());
                continue;
            };
            let example = relative(value);
            if !by_value.iter().any(|(v, _)| *v == example) && !inside_a_folder(&example, &by_value, &params) {
                let known = from.and_then(|s| s.params.iter().find(|p| p.name == *name));
                let mut p = param(name, &example, known, root);
                p.name = free_name(&p.name, &params);
                by_value.push((example.clone(), p.name.clone()));
                params.push(p);
            }
            call_args.insert(name.clone(), Value::String(template(&example, &by_value, &params)));
        }
        // A period the used skill takes is a parameter even where the run gave none.
        for p in from
            .iter()
            .flat_map(|s| &s.params)
            .filter(|p| p.kind == ParamKind::Period)
        {
            if !call_args.contains_key(&p.name) {
                let name = match params.iter().find(|d| d.spec.starts_with("period")) {
                    Some(d) => d.name.clone(),
                    None => {
                        let name = free_name(&p.name, &params);
                        params.push(DraftParam {
                            name: name.clone(),
                            spec: format!("period, optional, {}", p.description),
                            example: String::new(),
                        });
                        name
                    }
                };
                call_args.insert(p.name.clone(), Value::String(format!("{{{{{name}}}}}")));
            }
        }
        let step_title = run.step_of.get(id).cloned().unwrap_or_default();
        let call = RecordedCall {
            call: format!("{tool}.{operation}"),
            args: call_args,
        };
        match recorded.last_mut() {
            Some(last) if last.title == step_title && !step_title.is_empty() => last.calls.push(call),
            _ => {
                let effects = run.steps.iter().find(|s| s.title == step_title).map(|s| &s.effects);
                let list = |v: Option<&Vec<std::path::PathBuf>>| -> Vec<String> {
                    v.map(|v| {
                        v.iter()
                            .map(|p| template(&relative(&p.to_string_lossy()), &by_value, &params))
                            .collect()
                    })
                    .unwrap_or_default()
                };
                recorded.push(RecordedStep {
                    title: if step_title.is_empty() {
                        format!("{tool} {operation}")
                    } else {
                        step_title.clone()
                    },
                    reads: list(effects.map(|e| &e.reads)),
                    writes: list(effects.map(|e| &e.writes)),
                    calls: vec![call],
                });
            }
        }
    }
    // Titles and effects name the parameters too (the steps' titles say what they did it on).
    for step in &mut recorded {
        step.title = template_words(&step.title, &by_value, &params);
    }

    let task = &run.task.outcome;
    let examples: Vec<String> = params
        .iter()
        .filter(|p| p.spec.contains("required"))
        .map(|p| p.example.to_lowercase())
        .collect();
    let name = slug(&content_words(task, &examples));
    let mut all_words: Vec<String> = Vec::new();
    for w in content_words(task, &[]) {
        if !all_words.contains(&w) && all_words.len() < 6 {
            all_words.push(w);
        }
    }
    let mut keywords = vec![name.replace('-', " "), all_words.join(" ")];
    keywords.dedup();
    let what = format!(
        "Replays a recorded plan of {} step(s): {}.",
        recorded.len(),
        recorded.iter().map(|s| s.title.as_str()).collect::<Vec<_>>().join("; ")
    );
    let description = describe(task, None, &params).replacen("Does what the run it was made from did.", &what, 1);
    let delivered = run
        .created
        .iter()
        .map(|p| inspect(run.ws, tb, &relative(&p.to_string_lossy())))
        .collect();
    let from_skills: Vec<&str> = used_skills.iter().map(|s| s.name.as_str()).collect();
    Ok(Draft {
        name,
        description,
        run: run.id.clone(),
        task: task.clone(),
        grants: run.task.grants.clone(),
        from_skill: (!from_skills.is_empty()).then(|| from_skills.join(", ")),
        tool: "plan".into(),
        operation: String::new(),
        params,
        keywords,
        steps: run.steps.to_vec(),
        delivered,
        plan: recorded,
        inputs: BTreeMap::new(),
    })
}

/// `name`, or `name-2`, `name-3` ... where a parameter already has it.
fn free_name(name: &str, params: &[DraftParam]) -> String {
    let taken = |n: &str| params.iter().any(|p| p.name == n);
    if !taken(name) {
        return name.to_owned();
    }
    (2..)
        .map(|i| format!("{name}-{i}"))
        .find(|n| !taken(n))
        .unwrap_or_else(|| name.to_owned())
}

/// Whether `value` lies inside a folder parameter's value (then it is
/// written relative to it, not made a parameter of its own).
fn inside_a_folder(value: &str, by_value: &[(String, String)], params: &[DraftParam]) -> bool {
    by_value
        .iter()
        .any(|(v, name)| is_folder_param(name, params) && !v.is_empty() && value.starts_with(&format!("{v}/")))
}

fn is_folder_param(name: &str, params: &[DraftParam]) -> bool {
    params
        .iter()
        .any(|p| p.name == name && p.spec.starts_with("path") && !p.example.starts_with("output"))
}

/// `value` with a parameter's value replaced by its placeholder: the whole
/// value, or a folder parameter's value at its start.
fn template(value: &str, by_value: &[(String, String)], params: &[DraftParam]) -> String {
    if let Some((_, name)) = by_value.iter().find(|(v, _)| v == value) {
        return format!("{{{{{name}}}}}");
    }
    let mut folders: Vec<&(String, String)> = by_value
        .iter()
        .filter(|(v, name)| !v.is_empty() && is_folder_param(name, params))
        .collect();
    folders.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
    for (v, name) in folders {
        if let Some(rest) = value.strip_prefix(&format!("{v}/")) {
            return format!("{{{{{name}}}}}/{rest}");
        }
    }
    value.to_owned()
}

/// A step's title with the folders it names written as their parameters.
fn template_words(title: &str, by_value: &[(String, String)], params: &[DraftParam]) -> String {
    let mut out = title.to_owned();
    for (v, name) in by_value {
        if v.len() > 2 && is_folder_param(name, params) {
            out = out.replace(v.as_str(), &format!("{{{{{name}}}}}"));
        }
    }
    out
}
