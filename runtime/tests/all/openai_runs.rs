//! The agent loop driven by an OpenAI-compatible server: the scenarios the
//! Anthropic transcripts run in agent.rs, recorded as chat.completion.chunk
//! streams (agent/openai-*.sse) and served over loopback HTTP, through the
//! real sandbox.

use deskhand_runtime::agent::{AgentSettings, ApproveAll};
use deskhand_runtime::model::Secret;
use deskhand_runtime::model::openai::OpenAiCompatibleProvider;
use deskhand_types::{Event, RunStatus, StepStatus};
use serde_json::Value;

use crate::common::{agent_task, check_multi_step_run, demo, fast_retries, recording_agent, sse};
use crate::replay::{Canned, ReplayServer};

const KEY: &str = "sk-openai-test-key-never-logged";

fn openai(server: &ReplayServer) -> OpenAiCompatibleProvider {
    OpenAiCompatibleProvider::new(format!("{}/v1", server.url()), "llama3.1:8b", Some(Secret::new(KEY)))
        .with_retry(fast_retries())
}

/// `openai-<name>.sse` for each name, in order.
fn turns(names: &[&str]) -> Vec<Canned> {
    names.iter().map(|name| sse(&format!("openai-{name}.sse"))).collect()
}

fn messages(request: &Value) -> &[Value] {
    request["messages"].as_array().unwrap()
}

#[test]
fn openai_transcript_drives_a_multi_step_run_with_a_revision_a_block_and_a_retry() {
    let d = demo();
    let server = ReplayServer::start(turns(&[
        "multi-1",
        "multi-2",
        "multi-3-overloaded",
        "multi-3",
        "multi-4",
        "multi-5",
    ]));
    let provider = openai(&server);
    let (agent, seen) = recording_agent(&d.ws, &provider, &ApproveAll, AgentSettings::default());
    let report = agent
        .run(agent_task(
            "Summarize my projects folder into output/summary.md",
            &["projects"],
        ))
        .unwrap();

    // The error chunk mid-stream was retried, not taken for a finished answer.
    let (_, journaled) = check_multi_step_run(&d, &report, &seen);

    let requests = server.requests();
    assert_eq!(requests.len(), 6);
    assert!(requests.iter().all(|r| r.path == "/v1/chat/completions"));
    let first = requests[0].json();
    assert!(
        first["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["function"]["name"] == "fs__list")
    );
    let system = &messages(&first)[0];
    assert_eq!(system["role"], "system");
    assert!(system["content"].as_str().unwrap().contains("INSTRUCTIONS.md"));
    // Tool output goes back as `tool` messages on the call's id, framed as untrusted.
    let listing = messages(&requests[1].json())
        .iter()
        .find(|m| m["role"] == "tool" && m["tool_call_id"] == "call_01List")
        .cloned()
        .expect("the listing went back on its call id");
    assert!(
        listing["content"]
            .as_str()
            .unwrap()
            .starts_with("<untrusted source=\"fs.list\">"),
        "{listing}"
    );
    // The blocked read was answered as an error on its own id.
    let sneak = messages(&requests[2].json())
        .iter()
        .find(|m| m["tool_call_id"] == "call_02Sneak")
        .cloned()
        .expect("the blocked call was answered");
    assert!(sneak["content"].as_str().unwrap().starts_with("error:"), "{sneak}");
    // The retry sent the same conversation again: the text streamed before the error was dropped.
    assert_eq!(requests[2].body, requests[3].body);
    assert!(!requests[4].body.contains("Writing the summary"));
    // The key goes in the header only: never in a body, nor in the journal.
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert!(requests.iter().all(|r| !r.body.contains(KEY)));
    let everything = serde_json::to_string(&journaled.iter().map(|r| &r.event).collect::<Vec<_>>()).unwrap();
    assert!(!everything.contains(KEY));
}

#[test]
fn openai_transcript_fans_a_step_out_to_sub_agents_with_their_own_plans_and_narrower_grants() {
    let d = demo();
    let server = ReplayServer::start(turns(&[
        "fanout-1",
        "fanout-child-a-1",
        "fanout-child-a-2",
        "fanout-child-b-1",
        "fanout-child-b-2",
        "fanout-2",
        "fanout-3",
    ]));
    let provider = openai(&server);
    let settings = AgentSettings {
        concurrency: 1,
        ..AgentSettings::default()
    };
    let (agent, seen) = recording_agent(&d.ws, &provider, &ApproveAll, settings);
    let report = agent
        .run(agent_task("List the receipts and the website folders", &["projects"]))
        .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{}", report.summary);
    assert_eq!(report.plan.steps[0].status, StepStatus::Done);

    let kids = d.ws.journal().children(&report.run).unwrap();
    assert_eq!(kids.len(), 2);
    assert!(kids.iter().all(|k| k.status == "succeeded"));
    for (kid, folder) in kids.iter().zip(["projects/receipts", "projects/website refresh"]) {
        let grants = d.ws.journal().task_grants(&kid.id).unwrap();
        assert_eq!(grants.len(), 1);
        assert!(grants[0].path.ends_with(folder), "{grants:?}");
    }
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.iter()
            .filter(|(_, e)| matches!(e, Event::SubAgentBegin { .. }))
            .count(),
        2
    );
    for kid in &kids {
        assert!(
            seen.iter()
                .any(|(run, e)| *run == kid.id && matches!(e, Event::PlanUpdated { .. })),
            "sub-agent {} has no plan of its own",
            kid.id
        );
    }
    // Each child had its own conversation: a system prompt and its own task.
    let child_first = server.requests()[1].json();
    let sent = messages(&child_first);
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert_eq!(sent[0]["role"], "system");
    assert!(sent[1].to_string().contains("List projects/receipts"));
    // The parent's model heard back from both, on the spawn call's id.
    let parent_second = server.requests()[5].json();
    let spawned = messages(&parent_second)
        .iter()
        .find(|m| m["tool_call_id"] == "call_F1Spawn")
        .cloned()
        .expect("the fan-out was answered");
    assert!(spawned.to_string().contains("projects/website refresh"), "{spawned}");
    assert_eq!(server.unserved(), 0);
}

#[test]
fn openai_transcript_of_a_long_run_compacts_older_turns_and_still_finishes() {
    let d = demo();
    let mut canned = turns(&["long-1", "long-2", "long-3", "long-4"]);
    // The server says the prompt is too long once: the loop compacts and retries.
    canned.push(Canned::json(
        400,
        r#"{"error":{"message":"This model's maximum context length is 2400 tokens. However, your messages resulted in 2650 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
    ));
    canned.extend(turns(&["long-5", "long-6", "long-7", "long-8", "long-9", "long-10"]));
    let server = ReplayServer::start(canned);
    let provider = openai(&server);
    let settings = AgentSettings {
        context_tokens: 2_400,
        ..AgentSettings::default()
    };
    let (agent, seen) = recording_agent(&d.ws, &provider, &ApproveAll, settings);
    let report = agent.run(agent_task("Read every project file", &["projects"])).unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{}", report.summary);
    assert!(report.plan.steps.iter().all(|s| s.status == StepStatus::Done));
    let compactions = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, e)| matches!(e, Event::Compacted { .. }))
        .count();
    assert!(
        compactions >= 2,
        "expected compaction by budget and by overflow, saw {compactions}"
    );
    assert_eq!(server.unserved(), 0);
    let requests = server.requests();
    // The request after the overflow was smaller than the one refused.
    assert!(requests[5].body.len() < requests[4].body.len());
    let last = requests.last().unwrap().json();
    let sent = messages(&last);
    let task = sent[1].to_string();
    assert!(task.contains("Read every project file"));
    assert!(task.contains("compacted"), "{task}");
    assert!(sent.len() < 12, "{}", sent.len());
    // Compaction never leaves a tool message without the call it answers.
    let called: Vec<&Value> = sent
        .iter()
        .filter_map(|m| m["tool_calls"].as_array())
        .flatten()
        .map(|c| &c["id"])
        .collect();
    for answer in sent.iter().filter(|m| m["role"] == "tool") {
        assert!(called.contains(&&answer["tool_call_id"]), "{answer}");
    }
}
