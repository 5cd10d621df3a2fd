//! A model turn has a wall-clock deadline whatever the server does: a stream
//! that stalls, or trickles keep-alive pings and never ends, fails the turn
//! with an error the person understands, and the run can be resumed.

use std::time::Duration;

use deskhand_runtime::agent::{AgentSettings, ApproveAll};
use deskhand_runtime::model::anthropic::AnthropicProvider;
use deskhand_runtime::model::config::ModelConfig;
use deskhand_runtime::model::openai::OpenAiCompatibleProvider;
use deskhand_runtime::model::{ModelProvider, ModelRequest, ProviderError, Secret, TurnLimits};
use deskhand_types::model::Message;
use deskhand_types::{Event, RunStatus};

use crate::common::{agent_task, demo, fast_retries, recording_agent};
use crate::replay::{Canned, ReplayServer};

/// A short deadline, so the test waits about a second; the idle limit is
/// longer, so only the turn's deadline can end a trickle.
fn short() -> TurnLimits {
    TurnLimits {
        turn_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(30),
    }
}

const PING_EVERY: Duration = Duration::from_millis(100);

/// An Anthropic stream that starts a message, then only pings.
fn anthropic_trickle() -> Canned {
    Canned::status(200)
        .header("content-type", "text/event-stream")
        .body(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\
             \"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\
             \"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n",
        )
        .trickle("event: ping\ndata: {\"type\": \"ping\"}\n\n", PING_EVERY)
}

/// An OpenAI-compatible stream that starts a message, then only sends comments.
fn openai_trickle() -> Canned {
    Canned::status(200)
        .header("content-type", "text/event-stream")
        .body(
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"llama3.1\",\
             \"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
        )
        .trickle(": keep-alive\n\n", PING_EVERY)
}

fn ask(provider: &dyn ModelProvider) -> Result<(), ProviderError> {
    let messages = [Message::user_text("hello")];
    let request = ModelRequest {
        system: "",
        messages: &messages,
        tools: &[],
        max_tokens: 100,
        stop: None,
    };
    provider.complete(&request, &mut |_| {}).map(|_| ())
}

#[track_caller]
fn assert_turn_timeout(result: Result<(), ProviderError>) {
    let error = result.unwrap_err();
    assert!(matches!(error, ProviderError::TurnTimeout { .. }), "{error:?}");
    let text = error.to_string();
    for needle in ["limit for one model turn", "deskhand resume", "turn_timeout_secs"] {
        assert!(text.contains(needle), "{needle} not in {text}");
    }
}

#[test]
fn a_stream_that_only_trickles_pings_ends_at_the_turns_deadline_in_both_wire_formats() {
    let server = ReplayServer::start(vec![anthropic_trickle()]);
    let provider = AnthropicProvider::new(server.url(), "claude-sonnet-4-5", Secret::new("sk-ant-test"))
        .with_retry(fast_retries())
        .with_limits(short());
    assert_turn_timeout(ask(&provider));

    let server = ReplayServer::start(vec![openai_trickle()]);
    let provider = OpenAiCompatibleProvider::new(format!("{}/v1", server.url()), "llama3.1", None)
        .with_retry(fast_retries())
        .with_limits(short());
    assert_turn_timeout(ask(&provider));
}

#[test]
fn a_run_whose_model_turn_timed_out_is_journaled_failed_and_resumes() {
    let d = demo();
    let server = ReplayServer::start(vec![anthropic_trickle()]);
    let provider = AnthropicProvider::new(server.url(), "claude-sonnet-4-5", Secret::new("sk-ant-test"))
        .with_retry(fast_retries())
        .with_limits(short());
    let (agent, seen) = recording_agent(&d.ws, &provider, &ApproveAll, AgentSettings::default());
    let error = agent.run(agent_task("Say hello", &["projects"])).unwrap_err();
    assert!(error.to_string().contains("limit for one model turn"), "{error}");
    let run = d.ws.journal().tasks().unwrap().pop().unwrap();
    assert_eq!(run.status, "failed");
    let turn_error = seen.lock().unwrap().iter().rev().find_map(|(_, e)| match e {
        Event::ModelTurnEnd { error, .. } => Some(error.clone()),
        _ => None,
    });
    assert!(
        turn_error
            .flatten()
            .is_some_and(|e| e.contains("limit for one model turn")),
        "the failed turn is journaled with its error"
    );

    // The model answers again: the same run goes on and finishes.
    let back = ReplayServer::start(vec![Canned::sse(include_str!(
        "../../providers/tests/transcripts/anthropic/text.sse"
    ))]);
    let provider = AnthropicProvider::new(back.url(), "claude-sonnet-4-5", Secret::new("sk-ant-test"))
        .with_retry(fast_retries())
        .with_limits(short());
    let (again, _) = recording_agent(&d.ws, &provider, &ApproveAll, AgentSettings::default());
    let report = again.resume(&run.id, None).unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{}", report.summary);
    assert_eq!(report.run, run.id);
}

#[test]
fn turn_and_idle_limits_come_from_the_config_file_with_ten_minutes_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("config.toml");
    let none = |_: &str| None;
    let config = ModelConfig::load(None, None, &none).unwrap();
    assert_eq!(config.limits.turn_timeout, Duration::from_secs(600));
    std::fs::write(
        &file,
        "[model]\nprovider = \"anthropic\"\nturn_timeout_secs = 90\nidle_timeout_secs = 20\n",
    )
    .unwrap();
    let config = ModelConfig::load(None, Some(&file), &none).unwrap();
    assert_eq!(
        config.limits,
        TurnLimits {
            turn_timeout: Duration::from_secs(90),
            idle_timeout: Duration::from_secs(20),
        }
    );
    std::fs::write(&file, "[model]\nturn_timeout_secs = 0\n").unwrap();
    let error = ModelConfig::load(None, Some(&file), &none).unwrap_err();
    assert!(error.to_string().contains("turn_timeout_secs"), "{error}");
}
