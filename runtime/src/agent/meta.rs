//! The tools the runtime itself offers the model, beside the sandboxed
//! ones: the plan, sub-agents, questions to the person, and paging through
//! a long tool output.

use deskhand_types::model::ToolSpec;
use deskhand_types::{Access, StepEffects, StepStatus};
use serde::Deserialize;
use serde_json::json;

pub const UPDATE_PLAN: &str = "update_plan";
pub const SPAWN_SUBAGENTS: &str = "spawn_subagents";
pub const ASK_PERSON: &str = "ask_person";
pub const READ_TOOL_OUTPUT: &str = "read_tool_output";
pub const READ_SKILL: &str = "read_skill";
/// Offered when the run has a native-shell sandbox.
pub const SHELL: &str = "shell";
/// Separates tool and operation in the names offered to models (`fs__list`).
pub const TOOL_SEP: &str = "__";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanUpdate {
    pub steps: Vec<StepUpdate>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepUpdate {
    pub title: String,
    #[serde(default)]
    pub effects: StepEffects,
    #[serde(default)]
    pub status: StepStatus,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubagentRequest {
    pub tasks: Vec<SubTask>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubTask {
    pub outcome: String,
    /// A subset of the parent's grants; absent means all of them.
    #[serde(default)]
    pub grants: Option<Vec<SubGrant>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubGrant {
    pub path: String,
    #[serde(default = "read_only")]
    pub access: Access,
}

fn read_only() -> Access {
    Access::ReadOnly
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    pub question: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellArgs {
    pub command: String,
    #[serde(default)]
    pub workdir: Option<String>,
}

/// The native shell tool, for runs that have a shell sandbox.
pub fn shell_spec() -> ToolSpec {
    ToolSpec {
        name: SHELL.into(),
        description: "Run a command with /bin/sh -c in a native sandbox (no network, a private /tmp, time and \
                      memory limits) that sees only the folders the current step declares. Changes to folders \
                      granted read-write, and new files in output/, come back as a changeset that deskhand \
                      checks, shows and applies (undoably); deletions always ask the person. Use it for native \
                      tools such as pdftotext or git."
            .into(),
        input_schema: json!({
            "type": "object", "required": ["command"], "additionalProperties": false,
            "properties": {
                "command": {"type": "string"},
                "workdir": {"type": "string", "description": "where to start: a folder the step declares"}
            }
        }),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputPage {
    pub call: String,
    #[serde(default)]
    pub offset: usize,
}

/// The spec of the runtime's own tool `name`.
pub fn spec(name: &str) -> Option<ToolSpec> {
    specs().into_iter().find(|s| s.name == name)
}

/// The runtime's own tools, as offered to the model (the shell apart).
pub fn specs() -> Vec<ToolSpec> {
    let effects = json!({
        "type": "object", "additionalProperties": false,
        "properties": {
            "reads": {"type": "array", "items": {"type": "string"}, "description": "folders or files this step reads"},
            "writes": {"type": "array", "items": {"type": "string"}, "description": "paths under output/ this step writes"},
            "network": {"type": "array", "items": {"type": "string"}, "description": "hosts this step contacts"},
            "actions": {"type": "array", "items": {"type": "string"}, "description": "what this step does outside the workspace through a connector or the browser, as connector.tool (mail.send_message, browser.submit_form)"}
        }
    });
    vec![
        ToolSpec {
            name: UPDATE_PLAN.into(),
            description: "Set or revise the plan: the whole ordered checklist, each step with its declared effects \
                          and status. Revising titles or effects needs a reason."
                .into(),
            input_schema: json!({
                "type": "object", "required": ["steps"], "additionalProperties": false,
                "properties": {
                    "steps": {"type": "array", "items": {
                        "type": "object", "required": ["title"], "additionalProperties": false,
                        "properties": {
                            "title": {"type": "string"},
                            "effects": effects,
                            "status": {"enum": ["pending", "in_progress", "done", "failed", "skipped"]}
                        }
                    }},
                    "reason": {"type": "string", "description": "why the plan changed (required for a revision)"}
                }
            }),
        },
        ToolSpec {
            name: SPAWN_SUBAGENTS.into(),
            description: "Run independent sub-tasks in parallel, each as its own agent with its own plan and a \
                          subset of this run's grants. Returns each one's summary."
                .into(),
            input_schema: json!({
                "type": "object", "required": ["tasks"], "additionalProperties": false,
                "properties": {"tasks": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["outcome"], "additionalProperties": false,
                    "properties": {
                        "outcome": {"type": "string"},
                        "grants": {"type": "array", "items": {
                            "type": "object", "required": ["path"], "additionalProperties": false,
                            "properties": {"path": {"type": "string"}, "access": {"enum": ["read_only", "read_write"]}}
                        }}
                    }
                }}}
            }),
        },
        ToolSpec {
            name: ASK_PERSON.into(),
            description: "Ask the person for something only they can give. The run pauses until they answer.".into(),
            input_schema: json!({
                "type": "object", "required": ["question"], "additionalProperties": false,
                "properties": {"question": {"type": "string"}}
            }),
        },
        ToolSpec {
            name: READ_SKILL.into(),
            description: "Read an installed skill's instructions (its SKILL.md) before following it, or one of its \
                          files (under scripts/, references/ or assets/) when the instructions point to it."
                .into(),
            input_schema: json!({
                "type": "object", "required": ["name"], "additionalProperties": false,
                "properties": {"name": {"type": "string"}, "file": {"type": "string", "description": "a path inside the skill's folder, e.g. references/forms.md"}}
            }),
        },
        ToolSpec {
            name: READ_TOOL_OUTPUT.into(),
            description: "Read more of a tool output that was truncated, from a byte offset.".into(),
            input_schema: json!({
                "type": "object", "required": ["call"], "additionalProperties": false,
                "properties": {"call": {"type": "string"}, "offset": {"type": "integer", "minimum": 0}}
            }),
        },
    ]
}
