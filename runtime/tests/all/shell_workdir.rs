//! The agent's shell tool checks its `workdir` like any other path: outside
//! the current step's folders it is Blocked before anything runs (it was
//! refused only by bubblewrap, as "invalid arguments").

use deskhand_host_vm::ShellBackend;
use deskhand_runtime::agent::{AgentSettings, ApproveAll};
use deskhand_runtime::model::Secret;
use deskhand_runtime::model::anthropic::AnthropicProvider;
use deskhand_types::{Event, RunStatus};
use serde_json::json;

use crate::common::{agent_task, demo, fast_retries, recording_agent};
use crate::replay::{Canned, ReplayServer, anthropic_turn};

#[test]
fn a_shell_workdir_outside_the_steps_folders_is_blocked_before_it_runs() {
    let backend = deskhand_host_vm::bwrap::BwrapBackend::new();
    if let Err(problem) = backend.check() {
        panic!("the shell sandbox cannot run here ({problem}); run scripts/setup, which installs bubblewrap");
    }
    let d = demo();
    let notes = d.ws.root().join("projects/notes");
    std::fs::create_dir_all(&notes).unwrap();
    let plan = json!({"steps": [{"title": "Look at the notes", "effects": {"reads": ["projects/notes"]}, "status": "in_progress"}]});
    let server = ReplayServer::start(vec![
        Canned::sse(&anthropic_turn(
            "",
            &[
                ("toolu_plan", "update_plan", plan),
                ("toolu_a", "shell", json!({"command": "ls", "workdir": "context"})),
                ("toolu_b", "shell", json!({"command": "ls", "workdir": "/etc"})),
                (
                    "toolu_c",
                    "shell",
                    json!({"command": "pwd", "workdir": "projects/notes"}),
                ),
            ],
        )),
        Canned::sse(&anthropic_turn("Looked.", &[])),
    ]);
    let provider = AnthropicProvider::new(server.url(), "claude-sonnet-4-5", Secret::new("sk-ant-test"))
        .with_retry(fast_retries());
    let (mut agent, seen) = recording_agent(&d.ws, &provider, &ApproveAll, AgentSettings::default());
    agent.shell = Some(&backend);
    let report = agent
        .run(agent_task("Look at the notes", &["projects", "context"]))
        .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{}", report.summary);

    let events: Vec<Event> = seen.lock().unwrap().iter().map(|(_, e)| e.clone()).collect();
    let blocked: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Blocked { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(blocked.len(), 2, "{events:#?}");
    for (reason, workdir) in blocked.iter().zip(["context", "/etc"]) {
        assert!(
            reason.contains(&format!("workdir {workdir} is outside the folders step 1 declares")),
            "{reason}"
        );
    }
    let shell_calls = events
        .iter()
        .filter(|e| matches!(e, Event::ToolCallBegin { tool, .. } if tool == "shell"))
        .count();
    assert_eq!(shell_calls, 1, "only the command in the step's folder ran");
    let second = &server.requests()[1].body;
    assert!(
        second.contains(&notes.canonicalize().unwrap().display().to_string()),
        "{second}"
    );
    assert!(
        second.contains("outside the folders step 1 declares"),
        "the model is told why"
    );
}
