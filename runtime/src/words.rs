//! What a person reads of a run's activity: each tool call as an action on
//! files ("Listed output/", "Wrote expenses.xlsx"), derived from the
//! journaled event alone (tool, operation, arguments, outcome), so the
//! terminal and the page say the same. The tool's own name is for those who
//! ask (`--verbose`, the page's toggle). What goes back to the model (tool
//! results, how to retry) stays in `agent/`; nothing here is addressed to it.
//!
//! The words are plain text built from the model's arguments: front ends
//! still show them inert (`textContent`, `render::line`).

use deskhand_types::{CallOutcome, Event, RunId};
use serde_json::Value;

/// The person's line for an event of the activity log, if it gets one.
pub fn activity(event: &Event) -> Option<String> {
    match event {
        Event::ToolCallBegin {
            tool, operation, args, ..
        } => action(tool, operation, args),
        Event::ToolCallEnd { outcome, .. } => match outcome {
            CallOutcome::Ok { .. } => None,
            CallOutcome::ToolError { error } => Some(format!("That did not work: {error}")),
            CallOutcome::Stopped { reason } => Some(format!("Stopped: {reason}")),
            // A refused call is shown once, as the run's blocked attempt.
            CallOutcome::Refused { .. } => None,
        },
        Event::ConnectorToolQuarantined {
            connector,
            tool,
            change,
            ..
        } => Some(format!(
            "Held back the tool {tool} of the connector {connector} ({change}); `deskhand connectors show \
             {connector}` shows the connector, and `deskhand connectors approve {connector} {tool}` shows what \
             changed and approves it"
        )),
        _ => None,
    }
}

/// Tells a run's activity as its events come (a run's and its sub-agents'):
/// each call's start as [`action`], and its end as what the result adds
/// ([`result`]), which needs the start it pairs with.
#[derive(Debug, Default)]
pub struct Narrator {
    /// Calls started and not ended, by run and call id.
    started: std::collections::HashMap<(String, String), (String, String, Value)>,
}

impl Narrator {
    pub fn line(&mut self, run: &RunId, event: &Event) -> Option<String> {
        match event {
            Event::ToolCallBegin {
                call,
                tool,
                operation,
                args,
            } => {
                self.started.insert(
                    (run.0.clone(), call.0.clone()),
                    (tool.clone(), operation.clone(), args.clone()),
                );
                action(tool, operation, args)
            }
            Event::ToolCallEnd {
                call,
                outcome: CallOutcome::Ok { output },
                ..
            } => {
                let (tool, operation, args) = self.started.remove(&(run.0.clone(), call.0.clone()))?;
                result(&tool, &operation, &args, &output.json)
            }
            Event::ToolCallEnd { call, .. } => {
                self.started.remove(&(run.0.clone(), call.0.clone()));
                activity(event)
            }
            _ => activity(event),
        }
    }
}

/// What a finished call's result adds to its start, if anything: how many
/// purchases the receipts tool found, or the free name a file was saved
/// under because the one asked for was taken.
pub fn result(tool: &str, operation: &str, args: &Value, output: &Value) -> Option<String> {
    let saved_as = |asked: &[&str], got: &str| -> Option<(String, String)> {
        let asked = first(args, asked).map(|p| base(&p))?;
        let got = output.get(got).and_then(Value::as_str).map(base)?;
        (asked != got).then_some((asked, got))
    };
    match (tool, operation) {
        ("receipts", "run") => {
            let n = output.get("rows").and_then(Value::as_u64)?;
            let mut line = format!("Found {n} purchase{}", if n == 1 { "" } else { "s" });
            let renamed: Vec<String> = [
                saved_as(&["spreadsheet"], "spreadsheet"),
                saved_as(&["summary"], "summary"),
            ]
            .into_iter()
            .flatten()
            .map(|(_, got)| got)
            .collect();
            if !renamed.is_empty() {
                line.push_str(&format!(
                    "; saved as {} (the names asked for were taken)",
                    renamed.join(" and ")
                ));
            }
            Some(line)
        }
        _ => {
            let (asked, got) = saved_as(&["path", "output"], "path")?;
            Some(format!("Saved as {got} ({asked} was taken)"))
        }
    }
}

/// A tool call as an action on files, or None where the page and the
/// terminal show it otherwise (the plan, a question).
pub fn action(tool: &str, operation: &str, args: &Value) -> Option<String> {
    let file = |keys: &[&str]| first(args, keys).map(|p| base(&p)).unwrap_or_else(|| "a file".into());
    let folder = |keys: &[&str]| first(args, keys).map(|p| dir(&p)).unwrap_or_else(|| "a folder".into());
    let line = match (tool, operation) {
        ("deskhand", "update_plan" | "ask_person") => return None,
        ("deskhand", "spawn_subagents") => "Started sub-agents".into(),
        ("deskhand", "read_tool_output") => "Read more of an earlier result".into(),
        ("fs", "list") => format!("Listed {}", folder(&["path", "folder"])),
        ("fs", "stat") => format!("Checked {}", file(&["path"])),
        ("fs", "read_text") => format!("Read {}", file(&["path"])),
        ("fs", "find") => format!("Searched {}", folder(&["folder", "path", "root"])),
        ("fs", "hash") => format!("Fingerprinted {}", file(&["path"])),
        ("fs", "write") => format!("Wrote {}", file(&["path"])),
        ("fs", "move") => format!(
            "Proposed moving {} to {}",
            file(&["from", "src", "path"]),
            file(&["to", "dst", "destination"])
        ),
        ("fs", "delete") => format!("Proposed deleting {}", file(&["path"])),
        ("fs", "save") => format!("Proposed saving {}", file(&["path"])),
        ("inventory", "run") => format!(
            "Listed every file in {} into {}",
            folder(&["folder", "path"]),
            file(&["output"])
        ),
        ("rename-by-date", "propose") => {
            format!("Proposed dated names for the files in {}", folder(&["folder", "path"]))
        }
        ("receipts", "run") => format!(
            "Read the receipts in {} and wrote {} and {}",
            folder(&["folder"]),
            file(&["spreadsheet"]),
            file(&["summary"])
        ),
        ("xlsx" | "pdf" | "docx" | "pptx", "write" | "report") => format!("Wrote {}", file(&["path", "output"])),
        ("xlsx", "read") => format!("Read {}", file(&["path"])),
        ("xlsx", "edit") => format!("Proposed changes to {}", file(&["path"])),
        ("pptx", "edit") => format!("Proposed changes to {}", file(&["path"])),
        ("docx", "edit") => format!("Proposed changes to {}", file(&["path"])),
        ("docx", "fill") => format!(
            "Filled {} from {} into new documents",
            file(&["template"]),
            file(&["values"])
        ),
        ("pdf", "info") => format!("Read the details of {}", file(&["path"])),
        ("pdf", "text") => format!("Read the text of {}", file(&["path"])),
        ("pdf", "merge") => format!("Merged PDFs into {}", file(&["output", "path"])),
        ("pdf", "split") => format!("Split {}", file(&["input", "path"])),
        ("xlsx", "combine") => match args.get("inputs").and_then(Value::as_array) {
            Some(inputs) if !inputs.is_empty() => format!(
                "Combined the first sheets of {} files into {}",
                inputs.len(),
                file(&["path"])
            ),
            _ => format!(
                "Combined the first sheets of the workbooks in {} into {}",
                folder(&["folder"]),
                file(&["path"])
            ),
        },
        ("office", "to_pdf") => format!("Converted {} to PDF", file(&["input"])),
        ("python", _) => "Ran a Python script".into(),
        ("browser", "open") => format!(
            "Opened {}",
            first(args, &["url"]).unwrap_or_else(|| "a web page".into())
        ),
        ("browser", "read") => "Read the web page again".into(),
        ("browser", "follow") => "Followed a link on the web page".into(),
        ("browser", "submit_form") => "Submitted a form on the web page".into(),
        ("browser", "screenshot") => "Saved a screenshot of the web page".into(),
        (t, op) if t.starts_with(crate::connectors::PREFIX) => {
            format!(
                "Used the connector {} ({})",
                &t[crate::connectors::PREFIX.len()..],
                op.replace('_', " ")
            )
        }
        ("shell", _) => match args.get("command").and_then(Value::as_str) {
            Some(c) => format!("Ran a command: {c}"),
            None => "Ran a command".into(),
        },
        (_, op) => {
            let on: Vec<String> = ["path", "folder", "output"]
                .iter()
                .filter_map(|k| args.get(*k).and_then(Value::as_str).map(base))
                .collect();
            let op = op.replace('_', " ");
            if on.is_empty() {
                format!("Used {tool} ({op})")
            } else {
                format!("Used {tool} ({op}) on {}", on.join(", "))
            }
        }
    };
    Some(line)
}

/// The tool's own name for a call, for those who ask.
pub fn tool_name(tool: &str, operation: &str) -> String {
    format!("{tool}.{operation}")
}

fn first(args: &Value, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| args.get(*k).and_then(Value::as_str))
        .map(str::to_owned)
}

/// A file as a person names it: its own name.
fn base(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    trimmed
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(trimmed)
        .to_owned()
}

/// A folder as a person names it: its own name and a slash.
fn dir(path: &str) -> String {
    format!("{}/", base(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_result_tells_what_its_start_could_not() {
        let args = serde_json::json!({"folder": "projects/receipts", "output": "output/inventory.csv"});
        let taken = serde_json::json!({"path": "/ws/output/inventory-1.csv"});
        assert_eq!(
            result("inventory", "run", &args, &taken).as_deref(),
            Some("Saved as inventory-1.csv (inventory.csv was taken)")
        );
        let as_asked = serde_json::json!({"path": "/ws/output/inventory.csv"});
        assert_eq!(result("inventory", "run", &args, &as_asked), None, "nothing new to say");
        let mut narrator = Narrator::default();
        let run = RunId("r".into());
        let call = deskhand_types::CallId("c".into());
        let begin = Event::ToolCallBegin {
            call: call.clone(),
            tool: "receipts".into(),
            operation: "run".into(),
            args: serde_json::json!({"folder": "projects/receipts", "spreadsheet": "output/expenses.xlsx", "summary": "output/expenses-summary.pdf"}),
        };
        let end = Event::ToolCallEnd {
            call,
            outcome: CallOutcome::Ok {
                output: deskhand_types::ToolOutput {
                    json: serde_json::json!({"rows": 4, "spreadsheet": "/ws/output/expenses-1.xlsx", "summary": "/ws/output/expenses-summary.pdf"}),
                    text: String::new(),
                    changes: Vec::new(),
                },
            },
            elapsed_ms: 1,
        };
        assert!(narrator.line(&run, &begin).is_some());
        assert_eq!(
            narrator.line(&run, &end).as_deref(),
            Some("Found 4 purchases; saved as expenses-1.xlsx (the names asked for were taken)")
        );
    }

    #[test]
    fn calls_read_as_actions_on_files() {
        let cases = [
            ("fs", "list", json!({"path": "/home/ana/desk/output"}), "Listed output/"),
            ("fs", "read_text", json!({"path": "/w/notes/a.md"}), "Read a.md"),
            (
                "xlsx",
                "write",
                json!({"path": "/w/output/expenses.xlsx"}),
                "Wrote expenses.xlsx",
            ),
            (
                "receipts",
                "run",
                json!({"folder": "/w/projects/receipts", "spreadsheet": "/w/output/expenses.xlsx", "summary": "/w/output/expenses.pdf"}),
                "Read the receipts in receipts/ and wrote expenses.xlsx and expenses.pdf",
            ),
            (
                "someone",
                "do_it",
                json!({"path": "/w/x.txt"}),
                "Used someone (do it) on x.txt",
            ),
        ];
        for (tool, op, args, said) in cases {
            assert_eq!(action(tool, op, &args).as_deref(), Some(said));
        }
        assert_eq!(action("deskhand", "update_plan", &json!({})), None);
    }
}
