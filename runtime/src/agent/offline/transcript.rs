//! The conversation read back (the task, the person's answers and
//! instructions, the planner's own calls and their results) and the blocks
//! the planner answers with.

use super::*;

/// The conversation, read back: the task, the person's later instructions,
/// and since the latest of them, the answers the person gave (each
/// parameter's in order) and the result of each of the planner's own calls;
/// the planner's calls of every turn, by id.
pub(super) struct Transcript {
    pub(super) task: String,
    pub(super) follow_ups: Vec<String>,
    pub(super) answers: BTreeMap<String, Vec<String>>,
    pub(super) results: BTreeMap<String, (String, bool)>,
    pub(super) calls: BTreeMap<String, Value>,
    /// The plan's steps as the latest instruction found them (title,
    /// effects, status): a new turn adds its steps after them.
    pub(super) earlier_steps: Vec<(String, Value, String)>,
}

/// The suffix of the planner's call ids in turn `turn` (0: the task itself).
pub(super) fn turn_suffix(turn: usize) -> String {
    if turn == 0 {
        String::new()
    } else {
        format!("{ID_SEP}t{turn}")
    }
}

pub(super) fn read_transcript(messages: &[Message]) -> Transcript {
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
pub(super) fn result_json(content: &str) -> Value {
    content
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .and_then(|l| serde_json::from_str(l.trim()).ok())
        .unwrap_or(Value::Null)
}

/// `/skill-name key=value key="a value"`: an explicit invocation, as sub-agents get.
pub(super) fn explicit(task: &str, skills: &[Skill]) -> Option<(usize, BTreeMap<String, String>)> {
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
pub(super) fn param_pair(key: &str, value: &str) -> String {
    if value.contains(char::is_whitespace) {
        format!("{key}=\"{value}\"")
    } else {
        format!("{key}={value}")
    }
}

pub(super) fn tool_use(id: &str, name: &str, input: Value) -> Block {
    Block::ToolUse {
        id: id.into(),
        name: name.into(),
        input,
    }
}

pub(super) fn reply(content: Vec<Block>, stop: StopReason) -> ModelResponse {
    ModelResponse {
        content,
        stop_reason: stop,
        usage: Usage::default(),
    }
}

pub(super) fn text(t: impl Into<String>) -> Block {
    Block::Text { text: t.into() }
}

pub(super) fn plan_input(steps: &[(String, Value, String)], reason: Option<&str>) -> Value {
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
pub(super) fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Whether a path parameter's value names output/ or something in it.
pub(super) fn is_under_output(value: &str) -> bool {
    let v = value.trim_start_matches("./");
    v == "output" || v == "output/" || v.starts_with("output/")
}

/// `output/inventory.csv` + `projects/receipts` -> `output/inventory-receipts.csv`.
pub(super) fn per_target_output(default: &str, target: &str) -> String {
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

pub(super) fn strip_frame(content: &str) -> String {
    content
        .lines()
        .filter(|l| !l.starts_with("<untrusted") && !l.starts_with("</untrusted"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub(super) fn first_line(s: &str) -> String {
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
