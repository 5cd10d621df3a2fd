//! The model providers over real HTTP against the loopback replay server,
//! with hand-written transcripts in each API's wire format, and the model
//! configuration.

#![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use deskhand_providers::anthropic::AnthropicProvider;
use deskhand_providers::config::{ConfigError, RetryPolicy, connect};
use deskhand_providers::openai::OpenAiCompatibleProvider;
use deskhand_providers::{
    ModelConfig, ModelProvider, ModelRequest, ModelResponse, ProviderError, ProviderKind, Secret, StreamEvent,
};
use deskhand_replay::{Canned, ReplayServer};
use deskhand_types::model::{Block, Message, Role, StopReason, ToolSpec, Usage};
use serde_json::json;

const KEY: &str = "sk-ant-api03-TESTKEY-do-not-print-0123456789";

const ANTHROPIC_TEXT: &str = include_str!("transcripts/anthropic/text.sse");
const ANTHROPIC_TOOL_USE: &str = include_str!("transcripts/anthropic/tool_use.sse");
const ANTHROPIC_OVERLOADED: &str = include_str!("transcripts/anthropic/overloaded.sse");
const ANTHROPIC_TRUNCATED: &str = include_str!("transcripts/anthropic/truncated.sse");
const OPENAI_TEXT: &str = include_str!("transcripts/openai/text.sse");
const OPENAI_TOOL_CALLS: &str = include_str!("transcripts/openai/tool_calls.sse");
const OPENAI_TRUNCATED: &str = include_str!("transcripts/openai/truncated.sse");

const INBOX_ANSWER: &str = "Hello! Your inbox has 3 files — all invoices.";

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_millis(20),
    }
}

fn anthropic(server: &ReplayServer) -> AnthropicProvider {
    AnthropicProvider::new(server.url(), "claude-sonnet-4-5", Secret::new(KEY)).with_retry(fast())
}

fn openai(server: &ReplayServer, key: Option<&str>) -> OpenAiCompatibleProvider {
    OpenAiCompatibleProvider::new(format!("{}/v1", server.url()), "llama3.1", key.map(Secret::new)).with_retry(fast())
}

fn tools() -> Vec<ToolSpec> {
    vec![ToolSpec {
        name: "fs_list".into(),
        description: "List a folder".into(),
        input_schema: json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
    }]
}

/// Runs one request with a plain question; returns the result and every event.
fn ask(provider: &dyn ModelProvider) -> (Result<ModelResponse, ProviderError>, Vec<StreamEvent>) {
    let messages = [Message::user_text("What is in my inbox?")];
    let tools = tools();
    let request = ModelRequest {
        system: "You are deskhand.",
        messages: &messages,
        tools: &tools,
        max_tokens: 1024,
        stop: None,
    };
    let mut events = Vec::new();
    let result = provider.complete(&request, &mut |event| events.push(event));
    (result, events)
}

fn retries(events: &[StreamEvent]) -> Vec<(u32, Duration, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Retry { attempt, wait, reason } => Some((*attempt, *wait, reason.clone())),
            _ => None,
        })
        .collect()
}

/// A conversation that exercises every block kind: a tool call and its
/// (failed and successful) results.
fn conversation() -> Vec<Message> {
    vec![
        Message::user_text("Tidy my inbox."),
        Message {
            role: Role::Assistant,
            content: vec![
                Block::Text {
                    text: "Looking.".into(),
                },
                Block::ToolUse {
                    id: "call_1".into(),
                    name: "fs_list".into(),
                    input: json!({"path": "inbox"}),
                },
                Block::ToolUse {
                    id: "call_2".into(),
                    name: "fs_list".into(),
                    input: json!({"path": "nope"}),
                },
            ],
        },
        Message {
            role: Role::User,
            content: vec![
                Block::ToolResult {
                    tool_use_id: "call_1".into(),
                    content: "a.pdf\nb.pdf".into(),
                    is_error: false,
                },
                Block::ToolResult {
                    tool_use_id: "call_2".into(),
                    content: "not found".into(),
                    is_error: true,
                },
            ],
        },
    ]
}

fn a_closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

// ---- Anthropic ----

#[test]
fn anthropic_streams_text() {
    let server = ReplayServer::start(vec![Canned::sse(ANTHROPIC_TEXT)]);
    let (result, events) = ask(&anthropic(&server));
    let response = result.unwrap();
    assert_eq!(
        response.content,
        vec![Block::Text {
            text: INBOX_ANSWER.into()
        }]
    );
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 25,
            output_tokens: 15
        }
    );
    let deltas: Vec<_> = events
        .iter()
        .map(|e| match e {
            StreamEvent::TextDelta(text) => text.as_str(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(deltas, ["Hello", "! Your inbox has", " 3 files — all invoices."]);

    let sent = server.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].method.as_str(), sent[0].path.as_str()),
        ("POST", "/v1/messages")
    );
    assert_eq!(sent[0].header("x-api-key"), Some(KEY));
    assert_eq!(sent[0].header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent[0].header("content-type"), Some("application/json"));
    assert_eq!(sent[0].header("authorization"), None);
    let body = sent[0].json();
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["stream"], true);
    assert_eq!(body["max_tokens"], 1024);
    assert_eq!(body["system"], "You are deskhand.");
    assert_eq!(
        body["tools"],
        json!([{"name": "fs_list", "description": "List a folder", "input_schema": tools()[0].input_schema}])
    );
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "What is in my inbox?"}]}])
    );
}

#[test]
fn anthropic_two_tool_calls_with_input_json_in_pieces() {
    let server = ReplayServer::start(vec![Canned::sse(ANTHROPIC_TOOL_USE)]);
    let (result, events) = ask(&anthropic(&server));
    let response = result.unwrap();
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 600,
            output_tokens: 89
        }
    );
    assert_eq!(
        response.content,
        vec![
            Block::Text {
                text: "I'll list the inbox and read the notes.".into()
            },
            Block::ToolUse {
                id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6".into(),
                name: "fs_list".into(),
                input: json!({"path": "inbox", "recursive": true}),
            },
            Block::ToolUse {
                id: "toolu_01Hb5Sf9Vd2PkxBqLh3jYw8E".into(),
                name: "fs_read_text".into(),
                input: json!({"path": "notes/todo.md", "max_bytes": 2048}),
            },
        ]
    );
    let starts: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolUseStart { name } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(starts, ["fs_list", "fs_read_text"]);
}

#[test]
fn anthropic_request_carries_tool_use_and_tool_results() {
    let server = ReplayServer::start(vec![Canned::sse(ANTHROPIC_TEXT)]);
    let messages = conversation();
    let request = ModelRequest {
        system: "",
        messages: &messages,
        tools: &[],
        max_tokens: 50,
        stop: None,
    };
    anthropic(&server).complete(&request, &mut |_| {}).unwrap();
    let body = server.requests()[0].json();
    assert!(body.get("system").is_none(), "an empty system prompt is left out");
    assert!(body.get("tools").is_none(), "no tools, no tools field");
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Tidy my inbox."}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Looking."},
                {"type": "tool_use", "id": "call_1", "name": "fs_list", "input": {"path": "inbox"}},
                {"type": "tool_use", "id": "call_2", "name": "fs_list", "input": {"path": "nope"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "a.pdf\nb.pdf"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "not found", "is_error": true},
            ]},
        ])
    );
}

#[test]
fn anthropic_overloaded_error_mid_stream_is_retried() {
    let server = ReplayServer::start(vec![Canned::sse(ANTHROPIC_OVERLOADED), Canned::sse(ANTHROPIC_TEXT)]);
    let (result, events) = ask(&anthropic(&server));
    assert_eq!(
        result.unwrap().content,
        vec![Block::Text {
            text: INBOX_ANSWER.into()
        }]
    );
    let retries = retries(&events);
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0].0, 1);
    assert!(retries[0].1 <= Duration::from_millis(20));
    assert!(retries[0].2.contains("overloaded_error"), "{}", retries[0].2);
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn rate_limit_retry_after_is_honoured_then_succeeds() {
    let limited = r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#;
    let server = ReplayServer::start(vec![
        Canned::json(429, limited).header("retry-after", "0"),
        Canned::json(429, limited).header("retry-after-ms", "7"),
        Canned::sse(ANTHROPIC_TEXT),
    ]);
    let (result, events) = ask(&anthropic(&server));
    assert_eq!(result.unwrap().stop_reason, StopReason::EndTurn);
    let retries = retries(&events);
    let waits: Vec<_> = retries.iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(waits, [(1, Duration::ZERO), (2, Duration::from_millis(7))]);
    assert!(
        retries[0].2.contains("429") && retries[0].2.contains("rate limit"),
        "{}",
        retries[0].2
    );
    assert_eq!(server.requests().len(), 3);
    assert_eq!(server.unserved(), 0);
}

#[test]
fn a_retry_after_longer_than_allowed_is_not_cut_short_but_reported() {
    // The policy keeps to waits of up to 20 ms here (two minutes by default):
    // a longer one is not retried sooner than asked; the person is told.
    for (status, asked, wait) in [(503, "120", "2 min"), (529, "Thu, 31 Dec 2099 23:59:59 GMT", " h ")] {
        let server = ReplayServer::start(vec![
            Canned::status(status).header("retry-after", asked),
            Canned::sse(ANTHROPIC_TEXT),
        ]);
        let (result, events) = ask(&anthropic(&server));
        let error = result.unwrap_err();
        assert!(matches!(error, ProviderError::WaitAsked { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains("asks to wait") && message.contains(wait) && message.contains("deskhand resume"),
            "{message}"
        );
        assert!(retries(&events).is_empty(), "no early retry");
        assert_eq!(server.requests().len(), 1);
    }
}

#[test]
fn persistent_overload_exhausts_the_retries() {
    let overloaded = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    let server = ReplayServer::start(vec![
        Canned::json(529, overloaded),
        Canned::json(
            500,
            r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#,
        ),
        Canned::json(529, overloaded),
    ]);
    let (result, events) = ask(&anthropic(&server));
    let error = result.unwrap_err();
    assert!(
        matches!(error, ProviderError::Exhausted { attempts: 3, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("Overloaded"), "{error}");
    assert_eq!(retries(&events).len(), 2);
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn a_bad_key_is_reported_without_the_key() {
    // The body echoes the key, as some servers do.
    let body =
        format!(r#"{{"type":"error","error":{{"type":"authentication_error","message":"invalid x-api-key {KEY}"}}}}"#);
    let server = ReplayServer::start(vec![Canned::json(401, &body)]);
    let provider = anthropic(&server);
    let (result, events) = ask(&provider);
    let error = result.unwrap_err();
    assert!(matches!(error, ProviderError::BadKey { .. }), "{error:?}");
    for shown in [error.to_string(), format!("{error:?}"), format!("{provider:?}")] {
        assert!(
            !shown.contains(KEY) && !shown.contains("TESTKEY"),
            "key shown in {shown}"
        );
    }
    assert!(error.to_string().contains("ANTHROPIC_API_KEY"), "{error}");
    assert!(events.is_empty(), "a bad key is not retried");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn openai_bad_key_is_reported_without_the_key() {
    let key = "sk-proj-abcdefSECRET1234567890wxyz";
    let body = r#"{"error":{"message":"Incorrect API key provided: sk-proj-***********************wxyz. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
    let server = ReplayServer::start(vec![Canned::json(401, body)]);
    let provider = openai(&server, Some(key));
    let error = ask(&provider).0.unwrap_err();
    assert!(matches!(error, ProviderError::BadKey { .. }), "{error:?}");
    for shown in [error.to_string(), format!("{error:?}"), format!("{provider:?}")] {
        assert!(
            !shown.contains("SECRET") && !shown.contains("wxyz"),
            "key shown in {shown}"
        );
    }
    assert!(error.to_string().contains("OPENAI_API_KEY"), "{error}");
}

#[test]
fn unknown_model_is_named() {
    let server = ReplayServer::start(vec![Canned::json(
        404,
        r#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-nonexistent-9"}}"#,
    )]);
    let provider = AnthropicProvider::new(server.url(), "claude-nonexistent-9", Secret::new(KEY)).with_retry(fast());
    let error = ask(&provider).0.unwrap_err();
    assert!(
        matches!(&error, ProviderError::UnknownModel { model, .. } if model == "claude-nonexistent-9"),
        "{error:?}"
    );

    // Ollama's answer for a model that was never pulled.
    let server = ReplayServer::start(vec![Canned::json(
        404,
        r#"{"error":{"message":"model \"llama3.1\" not found, try pulling it first","type":"api_error","param":null,"code":null}}"#,
    )]);
    let error = ask(&openai(&server, None)).0.unwrap_err();
    assert!(
        matches!(&error, ProviderError::UnknownModel { model, .. } if model == "llama3.1"),
        "{error:?}"
    );
    assert!(error.to_string().contains("--model"), "{error}");
}

#[test]
fn a_404_that_is_not_about_the_model_points_at_the_base_url() {
    let server = ReplayServer::start(vec![Canned::status(404).body("404 page not found")]);
    let error = ask(&openai(&server, None)).0.unwrap_err();
    assert!(
        matches!(error, ProviderError::Rejected { status: 404, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("OPENAI_BASE_URL"), "{error}");
}

#[test]
fn prompt_too_long_is_context_overflow() {
    let server = ReplayServer::start(vec![Canned::json(
        400,
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 215304 tokens > 200000 maximum"}}"#,
    )]);
    let error = ask(&anthropic(&server)).0.unwrap_err();
    assert!(matches!(error, ProviderError::ContextOverflow { .. }), "{error:?}");
    assert!(error.to_string().contains("215304 tokens"), "{error}");

    let server = ReplayServer::start(vec![Canned::json(
        400,
        r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130412 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
    )]);
    let error = ask(&openai(&server, Some("sk-test"))).0.unwrap_err();
    assert!(matches!(error, ProviderError::ContextOverflow { .. }), "{error:?}");
}

#[test]
fn other_client_errors_are_rejected_with_the_servers_message() {
    let server = ReplayServer::start(vec![Canned::json(
        400,
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate between \"user\" and \"assistant\""}}"#,
    )]);
    let error = ask(&anthropic(&server)).0.unwrap_err();
    assert!(
        matches!(error, ProviderError::Rejected { status: 400, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("roles must alternate"), "{error}");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_truncated_stream_is_malformed_after_the_retries() {
    let server = ReplayServer::start(vec![Canned::sse(ANTHROPIC_TRUNCATED); 3]);
    let (result, events) = ask(&anthropic(&server));
    let error = result.unwrap_err();
    assert!(matches!(error, ProviderError::MalformedStream { .. }), "{error:?}");
    assert!(error.to_string().contains("message_stop"), "{error}");
    assert_eq!(retries(&events).len(), 2);
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn a_connection_cut_mid_stream_is_retried() {
    let server = ReplayServer::start(vec![
        Canned::sse(ANTHROPIC_TEXT).cut_after(400),
        Canned::sse(ANTHROPIC_TEXT),
    ]);
    let (result, events) = ask(&anthropic(&server));
    assert_eq!(
        result.unwrap().content,
        vec![Block::Text {
            text: INBOX_ANSWER.into()
        }]
    );
    let retries = retries(&events);
    assert_eq!(retries.len(), 1, "{events:?}");
    assert!(retries[0].2.contains("mid-stream"), "{}", retries[0].2);

    // Cut inside a content-length body too.
    let server = ReplayServer::start(vec![
        Canned::status(200)
            .header("content-type", "text/event-stream")
            .body(ANTHROPIC_TEXT)
            .cut_after(100),
        Canned::sse(ANTHROPIC_TEXT),
    ]);
    ask(&anthropic(&server)).0.unwrap();
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn invalid_json_in_a_stream_is_malformed_at_once() {
    let server = ReplayServer::start(vec![Canned::sse(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":\n\n",
    )]);
    let error = ask(&anthropic(&server)).0.unwrap_err();
    assert!(matches!(error, ProviderError::MalformedStream { .. }), "{error:?}");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_closed_port_is_unreachable() {
    let url = a_closed_port_url();
    let provider = AnthropicProvider::new(url.clone(), "claude-sonnet-4-5", Secret::new(KEY)).with_retry(fast());
    let (result, events) = ask(&provider);
    let error = result.unwrap_err();
    assert!(matches!(error, ProviderError::Unreachable { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&url) && message.contains("ANTHROPIC_BASE_URL"),
        "{message}"
    );
    assert!(events.is_empty());

    let error = ask(&OpenAiCompatibleProvider::new(format!("{url}/v1"), "llama3.1", None))
        .0
        .unwrap_err();
    assert!(error.to_string().contains("OPENAI_BASE_URL"), "{error}");
}

#[test]
fn a_host_name_that_does_not_resolve_is_unreachable_not_retried() {
    // `.invalid` never resolves (RFC 2606): offline, no DNS or a mistyped URL.
    let url = "http://deskhand-test.invalid";
    let provider = AnthropicProvider::new(url, "claude-sonnet-4-5", Secret::new(KEY)).with_retry(fast());
    let (result, events) = ask(&provider);
    let error = result.unwrap_err();
    assert!(matches!(error, ProviderError::Unreachable { .. }), "{error:?}");
    assert!(error.to_string().contains("ANTHROPIC_BASE_URL"), "{error}");
    // A name that is not known is not retried; a resolver that cannot answer
    // right now (no network here) is, a few times, and ends the same way.
    assert!(events.len() <= 2, "{}", events.len());
}

// ---- OpenAI-compatible ----

#[test]
fn openai_streams_text_without_a_key() {
    let server = ReplayServer::start(vec![Canned::sse(OPENAI_TEXT)]);
    let provider = openai(&server, None);
    assert_eq!(
        provider.describe(),
        format!("openai-compatible llama3.1 at {}/v1", server.url())
    );
    let (result, events) = ask(&provider);
    let response = result.unwrap();
    assert_eq!(
        response.content,
        vec![Block::Text {
            text: INBOX_ANSWER.into()
        }]
    );
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 31,
            output_tokens: 12
        }
    );
    assert_eq!(events.len(), 3);

    let sent = &server.requests()[0];
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(sent.header("authorization"), None);
    let body = sent.json();
    assert_eq!(body["model"], "llama3.1");
    assert_eq!(body["stream"], true);
    assert_eq!(body["max_tokens"], 1024);
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "You are deskhand."},
            {"role": "user", "content": "What is in my inbox?"},
        ])
    );
    assert_eq!(
        body["tools"],
        json!([{"type": "function", "function": {
            "name": "fs_list", "description": "List a folder", "parameters": tools()[0].input_schema,
        }}])
    );
}

#[test]
fn openai_with_a_key_sends_a_bearer_token() {
    let server = ReplayServer::start(vec![Canned::sse(OPENAI_TEXT)]);
    ask(&openai(&server, Some("sk-test-123"))).0.unwrap();
    assert_eq!(server.requests()[0].header("authorization"), Some("Bearer sk-test-123"));
}

#[test]
fn openai_two_tool_calls_with_arguments_in_pieces() {
    let server = ReplayServer::start(vec![Canned::sse(OPENAI_TOOL_CALLS)]);
    let (result, events) = ask(&openai(&server, Some("sk-test")));
    let response = result.unwrap();
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 212,
            output_tokens: 48
        }
    );
    assert_eq!(
        response.content,
        vec![
            Block::ToolUse {
                id: "call_DdmO9pD3xa9XTPNJ32zg2hcA".into(),
                name: "fs_list".into(),
                input: json!({"path": "inbox", "recursive": true}),
            },
            Block::ToolUse {
                id: "call_7mKqLpYtR2vXw9NbE4sZcF1u".into(),
                name: "fs_read_text".into(),
                input: json!({"path": "notes/todo.md", "max_bytes": 2048}),
            },
        ]
    );
    assert_eq!(
        events,
        [
            StreamEvent::ToolUseStart { name: "fs_list".into() },
            StreamEvent::ToolUseStart {
                name: "fs_read_text".into()
            },
        ]
    );
}

#[test]
fn openai_request_carries_tool_calls_and_tool_messages() {
    let server = ReplayServer::start(vec![Canned::sse(OPENAI_TEXT)]);
    let mut messages = conversation();
    messages.push(Message::user_text("Thanks."));
    let request = ModelRequest {
        system: "Be brief.",
        messages: &messages,
        tools: &[],
        max_tokens: 50,
        stop: None,
    };
    openai(&server, None).complete(&request, &mut |_| {}).unwrap();
    let body = server.requests()[0].json();
    assert!(body.get("tools").is_none());
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Tidy my inbox."},
            {"role": "assistant", "content": "Looking.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "fs_list", "arguments": "{\"path\":\"inbox\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "fs_list", "arguments": "{\"path\":\"nope\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a.pdf\nb.pdf"},
            {"role": "tool", "tool_call_id": "call_2", "content": "error: not found"},
            {"role": "user", "content": "Thanks."},
        ])
    );
}

#[test]
fn openai_finish_reason_length_is_max_tokens() {
    let stream = concat!(
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Once upon\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n",
        "data: [DONE]\n\n",
    );
    let server = ReplayServer::start(vec![Canned::sse(stream)]);
    let response = ask(&openai(&server, None)).0.unwrap();
    assert_eq!(response.stop_reason, StopReason::MaxTokens);
    assert_eq!(response.usage, Usage::default(), "servers may leave usage out");
}

#[test]
fn openai_stream_without_done_is_malformed_after_the_retries() {
    let server = ReplayServer::start(vec![Canned::sse(OPENAI_TRUNCATED); 3]);
    let error = ask(&openai(&server, None)).0.unwrap_err();
    assert!(matches!(error, ProviderError::MalformedStream { .. }), "{error:?}");
    assert!(error.to_string().contains("[DONE]"), "{error}");
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn openai_server_errors_are_retried() {
    let server = ReplayServer::start(vec![
        Canned::json(503, r#"{"error":{"message":"server busy","type":"server_error"}}"#),
        // vLLM and others report a failure after the 200 as an error chunk.
        Canned::sse("data: {\"error\":{\"message\":\"engine overloaded\",\"type\":\"server_error\"}}\n\n"),
        Canned::sse(OPENAI_TEXT),
    ]);
    let (result, events) = ask(&openai(&server, None));
    result.unwrap();
    let reasons: Vec<_> = retries(&events).into_iter().map(|r| r.2).collect();
    assert_eq!(
        reasons,
        ["HTTP 503: server busy", "error in the stream: engine overloaded"]
    );
}

// ---- Configuration ----

fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
}

fn load(user: Option<&Path>, workspace: Option<&Path>, vars: &[(&str, &str)]) -> Result<ModelConfig, ConfigError> {
    ModelConfig::load(user, workspace, &env(vars))
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn config_with_nothing_set_is_offline() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let config = load(Some(&missing), Some(&missing), &[]).unwrap();
    assert_eq!(config, ModelConfig::default());
    assert_eq!(config.provider, ProviderKind::Offline);
    assert_eq!(config.max_tokens, 8192);
    assert!(connect(&config).unwrap().is_none());
}

#[test]
fn config_anthropic_key_alone_selects_anthropic_with_defaults() {
    let config = load(None, None, &[("ANTHROPIC_API_KEY", KEY)]).unwrap();
    assert_eq!(config.provider, ProviderKind::Anthropic);
    assert_eq!(config.model.as_deref(), Some("claude-sonnet-4-5"));
    assert_eq!(config.base_url.as_deref(), Some("https://api.anthropic.com"));
    assert_eq!(config.api_key.as_ref().map(Secret::expose), Some(KEY));
    assert_eq!(config.retry, RetryPolicy::default());
    assert_eq!(
        connect(&config).unwrap().unwrap().describe(),
        "anthropic claude-sonnet-4-5"
    );
}

#[test]
fn config_openai_base_url_alone_selects_openai_compatible_and_needs_a_model() {
    let mut config = load(None, None, &[("OPENAI_BASE_URL", "http://gpu-box:8000/v1")]).unwrap();
    assert_eq!(config.provider, ProviderKind::OpenAiCompatible);
    assert_eq!(config.model, None);
    assert_eq!(config.api_key, None);
    let error = connect(&config).err().unwrap();
    assert!(matches!(error, ProviderError::MissingModel { .. }), "{error:?}");
    assert!(error.to_string().contains("--model"), "{error}");

    config.with_model("qwen2.5-coder");
    let provider = connect(&config).unwrap().unwrap();
    assert_eq!(
        provider.describe(),
        "openai-compatible qwen2.5-coder at http://gpu-box:8000/v1"
    );

    let config = load(
        None,
        None,
        &[("DESKHAND_PROVIDER", "openai"), ("OPENAI_MODEL", "llama3.1")],
    )
    .unwrap();
    assert_eq!(config.base_url.as_deref(), Some("http://localhost:11434/v1"));
    assert_eq!(config.model.as_deref(), Some("llama3.1"));
}

#[test]
fn config_environment_beats_workspace_beats_user() {
    let dir = tempfile::tempdir().unwrap();
    let user = write(
        dir.path(),
        "user.toml",
        "[model]\nprovider = \"anthropic\"\nname = \"claude-user\"\napi_key = \"user-key\"\nmax_tokens = 1000\n",
    );
    let workspace = write(
        dir.path(),
        "ws.toml",
        "[ui]\ntheme = \"dark\"\n\n[model]\nname = \"claude-workspace\"\n",
    );

    let config = load(Some(&user), None, &[]).unwrap();
    assert_eq!(config.model.as_deref(), Some("claude-user"));
    assert_eq!(config.api_key.as_ref().map(Secret::expose), Some("user-key"));
    assert_eq!(config.max_tokens, 1000);

    let config = load(Some(&user), Some(&workspace), &[]).unwrap();
    assert_eq!(config.provider, ProviderKind::Anthropic);
    assert_eq!(config.model.as_deref(), Some("claude-workspace"));
    assert_eq!(config.api_key.as_ref().map(Secret::expose), Some("user-key"));

    let vars = [
        ("DESKHAND_MODEL", "claude-env"),
        ("ANTHROPIC_API_KEY", "env-key"),
        ("ANTHROPIC_BASE_URL", "http://proxy:1"),
    ];
    let config = load(Some(&user), Some(&workspace), &vars).unwrap();
    assert_eq!(config.model.as_deref(), Some("claude-env"));
    assert_eq!(config.api_key.as_ref().map(Secret::expose), Some("env-key"));
    assert_eq!(config.base_url.as_deref(), Some("http://proxy:1"));
    assert_eq!(config.max_tokens, 1000);
}

#[test]
fn config_context_window_per_provider_file_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let anthropic = load(None, None, &[("ANTHROPIC_API_KEY", KEY)]).unwrap();
    assert_eq!(anthropic.context_tokens, 150_000);
    let local = load(None, None, &[("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")]).unwrap();
    assert_eq!(local.context_tokens, 32_000, "local servers get a smaller default");
    let user = write(
        dir.path(),
        "user.toml",
        "[model]\nprovider = \"openai\"\nname = \"llama3.1\"\ncontext_tokens = 16384\n",
    );
    assert_eq!(load(Some(&user), None, &[]).unwrap().context_tokens, 16_384);
    let vars = [("DESKHAND_CONTEXT_TOKENS", "65536")];
    assert_eq!(load(Some(&user), None, &vars).unwrap().context_tokens, 65_536);
    for bad in ["lots", "2048"] {
        let error = load(Some(&user), None, &[("DESKHAND_CONTEXT_TOKENS", bad)]).unwrap_err();
        assert!(error.to_string().contains("DESKHAND_CONTEXT_TOKENS"), "{error}");
    }
    let tiny = write(dir.path(), "tiny.toml", "[model]\ncontext_tokens = 2048\n");
    let error = load(Some(&tiny), None, &[]).unwrap_err();
    assert!(error.to_string().contains("too small"), "{error}");
}

#[test]
fn config_switching_provider_drops_settings_meant_for_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let user = write(
        dir.path(),
        "user.toml",
        "[model]\nprovider = \"anthropic\"\napi_key = \"anthropic-key\"\n",
    );
    let workspace = write(
        dir.path(),
        "ws.toml",
        "[model]\nprovider = \"openai\"\nname = \"llama3.1\"\n",
    );
    let config = load(Some(&user), Some(&workspace), &[]).unwrap();
    assert_eq!(config.provider, ProviderKind::OpenAiCompatible);
    assert_eq!(
        config.api_key, None,
        "the Anthropic key must not go to the local server"
    );
    assert_eq!(config.base_url.as_deref(), Some("http://localhost:11434/v1"));

    // The environment can switch back; the file's OpenAI model does not follow.
    let config = load(Some(&user), Some(&workspace), &[("DESKHAND_PROVIDER", "anthropic")]).unwrap();
    assert_eq!(config.provider, ProviderKind::Anthropic);
    assert_eq!(config.model.as_deref(), Some("claude-sonnet-4-5"));
    assert_eq!(config.api_key, None);
    let error = connect(&config).err().unwrap();
    assert!(matches!(error, ProviderError::MissingKey { .. }), "{error:?}");
    assert!(error.to_string().contains("ANTHROPIC_API_KEY"), "{error}");
}

#[test]
fn config_missing_anthropic_key_fails_before_any_request() {
    let server = ReplayServer::start(vec![]);
    let config = ModelConfig {
        provider: ProviderKind::Anthropic,
        base_url: Some(server.url()),
        ..ModelConfig::default()
    };
    assert!(matches!(connect(&config).err(), Some(ProviderError::MissingKey { .. })));
    assert!(server.requests().is_empty());
}

#[test]
fn config_connects_through_the_configured_url() {
    let server = ReplayServer::start(vec![Canned::sse(ANTHROPIC_TEXT)]);
    let vars = [("ANTHROPIC_API_KEY", KEY), ("ANTHROPIC_BASE_URL", "http://placeholder")];
    let mut config = load(None, None, &vars).unwrap();
    config.base_url = Some(server.url());
    config.with_model("claude-opus-4-1");
    let provider = connect(&config).unwrap().unwrap();
    ask(provider.as_ref()).0.unwrap();
    assert_eq!(server.requests()[0].json()["model"], "claude-opus-4-1");
}

#[test]
fn config_malformed_file_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "config.toml",
        "[model]\nprovider = \"anthropic\"\nname = claude\n",
    );
    let error = load(Some(&bad), None, &[]).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, ConfigError::Parse { line: Some(3), .. }), "{error:?}");
    assert!(
        message.contains("config.toml") && message.contains("line 3"),
        "{message}"
    );

    let typo = write(dir.path(), "typo.toml", "[model]\nprovider = \"antropic\"\n");
    let message = load(None, Some(&typo), &[]).unwrap_err().to_string();
    assert!(
        message.contains("typo.toml") && message.contains("line 2") && message.contains("antropic"),
        "{message}"
    );

    let unknown_key = write(dir.path(), "key.toml", "[model]\nmodle = \"x\"\n");
    let message = load(Some(&unknown_key), None, &[]).unwrap_err().to_string();
    assert!(message.contains("modle"), "{message}");

    let error = load(None, None, &[("DESKHAND_PROVIDER", "gemini")]).unwrap_err();
    assert!(error.to_string().contains("DESKHAND_PROVIDER"), "{error}");
}

#[test]
fn secrets_are_never_printed() {
    let secret = Secret::new(KEY);
    assert_eq!(format!("{secret}"), "***");
    assert_eq!(format!("{secret:?}"), "***");
    let config = load(None, None, &[("ANTHROPIC_API_KEY", KEY)]).unwrap();
    assert!(!format!("{config:?}").contains(KEY));
    assert!(!connect(&config).unwrap().unwrap().describe().contains(KEY));
    let provider = AnthropicProvider::new("http://127.0.0.1:1", "m", secret);
    assert!(!format!("{provider:?}").contains(KEY));
}

#[test]
fn retry_delays_grow_and_are_capped() {
    let policy = RetryPolicy {
        max_retries: 9,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
        max_retry_after: Duration::from_secs(120),
    };
    for _ in 0..20 {
        let first = policy.delay(1, None);
        assert!(
            (Duration::from_millis(50)..=Duration::from_millis(100)).contains(&first),
            "{first:?}"
        );
        let third = policy.delay(3, None);
        assert!(
            (Duration::from_millis(200)..=Duration::from_millis(400)).contains(&third),
            "{third:?}"
        );
        assert!(policy.delay(30, None) <= Duration::from_secs(1));
    }
    // A wait the server asks for is kept to, even when longer than our own backoff.
    assert_eq!(policy.delay(1, Some(Duration::from_secs(60))), Duration::from_secs(60));
    assert_eq!(
        policy.delay(1, Some(Duration::from_millis(3))),
        Duration::from_millis(3)
    );
}
