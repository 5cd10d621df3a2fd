//! The Anthropic Messages API with streaming (SSE) and tool use.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};

use deskhand_types::model::{Block, Message, Role, StopReason, Usage};
use serde_json::{Value, json};

use super::config::{RetryPolicy, Secret, TurnLimits};
use super::sse::{Endpoint, ErrorInfo, Failure, SseReader, http_agent, with_retries};
use super::{ModelProvider, ModelRequest, ModelResponse, ProviderError, StreamEvent};

pub const API_VERSION: &str = "2023-06-01";
const NAME: &str = "Anthropic";

/// Talks to `POST {base}/v1/messages`. Debug shows no key.
#[derive(Debug)]
pub struct AnthropicProvider {
    agent: ureq::Agent,
    url: String,
    model: String,
    api_key: Secret,
    retry: RetryPolicy,
    limits: TurnLimits,
}

impl AnthropicProvider {
    /// `base_url` is like `https://api.anthropic.com` (a trailing `/v1` is fine).
    pub fn new(base_url: impl Into<String>, model: impl Into<String>, api_key: Secret) -> Self {
        let base = base_url.into();
        let base = base.trim_end_matches('/');
        let url = if base.ends_with("/v1") {
            format!("{base}/messages")
        } else {
            format!("{base}/v1/messages")
        };
        AnthropicProvider {
            agent: http_agent(),
            url,
            model: model.into(),
            api_key,
            retry: RetryPolicy::default(),
            limits: TurnLimits::default(),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// How long a turn may take, and the server stay silent.
    pub fn with_limits(mut self, limits: TurnLimits) -> Self {
        self.limits = limits;
        self
    }

    fn endpoint(&self) -> Endpoint<'_> {
        Endpoint {
            provider: NAME,
            url: &self.url,
            model: &self.model,
            base_url_env: "ANTHROPIC_BASE_URL",
            key_env: "ANTHROPIC_API_KEY",
            key: Some(&self.api_key),
        }
    }

    /// The request as JSON, serialized straight from the conversation: no
    /// intermediate `Value` tree (a long run resends hundreds of kilobytes).
    fn request_body(&self, request: &ModelRequest<'_>) -> String {
        let body = WireRequest {
            model: &self.model,
            max_tokens: request.max_tokens,
            stream: true,
            system: (!request.system.is_empty()).then_some(request.system),
            messages: request.messages.iter().map(WireMessage::from).collect(),
            tools: request
                .tools
                .iter()
                .map(|t| WireTool {
                    name: &t.name,
                    description: &t.description,
                    input_schema: &t.input_schema,
                })
                .collect(),
        };
        serde_json::to_string(&body).unwrap_or_default()
    }
}

impl ModelProvider for AnthropicProvider {
    fn describe(&self) -> String {
        format!("anthropic {}", self.model)
    }

    fn complete(
        &self,
        request: &ModelRequest<'_>,
        on_event: &mut dyn FnMut(StreamEvent),
    ) -> Result<ModelResponse, ProviderError> {
        let body = self.request_body(request);
        let endpoint = self.endpoint();
        let headers = [("x-api-key", self.api_key.expose()), ("anthropic-version", API_VERSION)];
        with_retries(NAME, &self.retry, &self.limits, request, on_event, |on_event, left| {
            let response = endpoint.post(&self.agent, &headers, &body, left, self.limits.idle_timeout)?;
            let mut sse = SseReader::new(BufReader::new(response.into_body().into_reader()));
            read_message(&endpoint, &mut sse, on_event)
        })
    }
}

#[derive(serde::Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
}

#[derive(serde::Serialize)]
struct WireTool<'a> {
    name: &'a str,
    description: &'a str,
    input_schema: &'a Value,
}

#[derive(serde::Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: Vec<WireBlock<'a>>,
}

#[derive(serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlock<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: &'a Value,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: &'a str,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
}

impl<'a> From<&'a Message> for WireMessage<'a> {
    fn from(message: &'a Message) -> Self {
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        let content = message
            .content
            .iter()
            .filter_map(|block| match block {
                // The API rejects empty text blocks.
                Block::Text { text } if text.is_empty() => None,
                Block::Text { text } => Some(WireBlock::Text { text }),
                Block::ToolUse { id, name, input } => Some(WireBlock::ToolUse { id, name, input }),
                Block::ToolResult {
                    tool_use_id,
                    content,
                    is_error,
                } => Some(WireBlock::ToolResult {
                    tool_use_id,
                    content,
                    is_error: *is_error,
                }),
            })
            .collect();
        WireMessage { role, content }
    }
}

/// A content block still streaming in.
enum Partial {
    Text(String),
    Tool {
        id: String,
        name: String,
        json: String,
    },
    /// Thinking and other block kinds deskhand does not keep.
    Other,
}

/// Reads one message's events up to `message_stop`.
fn read_message<R: BufRead>(
    endpoint: &Endpoint<'_>,
    sse: &mut SseReader<R>,
    on_event: &mut dyn FnMut(StreamEvent),
) -> Result<ModelResponse, Failure> {
    let mut open: BTreeMap<u64, Partial> = BTreeMap::new();
    let mut done: BTreeMap<u64, Block> = BTreeMap::new();
    let mut stop_reason: Option<String> = None;
    let mut usage = Usage::default();
    loop {
        let Some(event) = endpoint.next_event(sse)? else {
            return Err(Failure::Broken {
                reason: "the stream ended before message_stop".into(),
            });
        };
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|e| endpoint.malformed(format!("a {} event is not JSON ({e})", event.event)))?;
        let kind = data["type"].as_str().unwrap_or(&event.event);
        let index = || {
            data["index"]
                .as_u64()
                .ok_or_else(|| endpoint.malformed(format!("a {kind} event has no index")))
        };
        match kind {
            "message_start" => {
                let counts = &data["message"]["usage"];
                usage.input_tokens = input_tokens(counts);
                usage.output_tokens = counts["output_tokens"].as_u64().unwrap_or(0);
            }
            "content_block_start" => {
                let index = index()?;
                let block = &data["content_block"];
                let partial = match block["type"].as_str() {
                    Some("text") => Partial::Text(block["text"].as_str().unwrap_or_default().to_owned()),
                    Some("tool_use") => {
                        let (Some(id), Some(name)) = (block["id"].as_str(), block["name"].as_str()) else {
                            return Err(endpoint.malformed("a tool_use block has no id or name"));
                        };
                        on_event(StreamEvent::ToolUseStart { name: name.to_owned() });
                        Partial::Tool {
                            id: id.to_owned(),
                            name: name.to_owned(),
                            json: String::new(),
                        }
                    }
                    _ => Partial::Other,
                };
                open.insert(index, partial);
            }
            "content_block_delta" => {
                let index = index()?;
                let delta = &data["delta"];
                match (open.get_mut(&index), delta["type"].as_str()) {
                    (None, _) => {
                        return Err(endpoint.malformed(format!("a delta for block {index}, which is not open")));
                    }
                    (Some(Partial::Text(text)), Some("text_delta")) => {
                        let piece = delta["text"].as_str().unwrap_or_default();
                        text.push_str(piece);
                        on_event(StreamEvent::TextDelta(piece.to_owned()));
                    }
                    (Some(Partial::Tool { json, .. }), Some("input_json_delta")) => {
                        json.push_str(delta["partial_json"].as_str().unwrap_or_default());
                    }
                    // Citations, thinking and signatures.
                    _ => {}
                }
            }
            "content_block_stop" => {
                let index = index()?;
                match open.remove(&index) {
                    None => return Err(endpoint.malformed(format!("block {index} stopped but was never started"))),
                    Some(Partial::Text(text)) if !text.is_empty() => {
                        done.insert(index, Block::Text { text });
                    }
                    Some(Partial::Tool { id, name, json }) => {
                        let input = if json.trim().is_empty() {
                            json!({})
                        } else {
                            serde_json::from_str(&json).map_err(|e| {
                                endpoint.malformed(format!("the input streamed for tool {name} is not JSON ({e})"))
                            })?
                        };
                        done.insert(index, Block::ToolUse { id, name, input });
                    }
                    Some(_) => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                    stop_reason = Some(reason.to_owned());
                }
                let counts = &data["usage"];
                if let Some(output) = counts["output_tokens"].as_u64() {
                    usage.output_tokens = output;
                }
                if counts["input_tokens"].is_u64() {
                    usage.input_tokens = input_tokens(counts);
                }
            }
            "message_stop" => {
                if !open.is_empty() {
                    return Err(endpoint.malformed("message_stop arrived while a content block was open"));
                }
                let stop_reason = match stop_reason.as_deref() {
                    Some("end_turn") => StopReason::EndTurn,
                    Some("tool_use") => StopReason::ToolUse,
                    Some("max_tokens") => StopReason::MaxTokens,
                    Some(other) => StopReason::Other(other.to_owned()),
                    None => StopReason::Other("unspecified".into()),
                };
                return Ok(ModelResponse {
                    content: done.into_values().collect(),
                    stop_reason,
                    usage,
                });
            }
            "error" => return Err(stream_error(endpoint, &data)),
            // "ping", and event types added after this was written, which
            // the API's versioning policy says clients should skip.
            _ => {}
        }
    }
}

/// Input tokens including those read from or written to the prompt cache.
fn input_tokens(counts: &Value) -> u64 {
    ["input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"]
        .iter()
        .filter_map(|field| counts[field].as_u64())
        .sum()
}

/// An `error` event after a 200: sorted by the status the same error type
/// would have had as a response.
fn stream_error(endpoint: &Endpoint<'_>, data: &Value) -> Failure {
    let info = ErrorInfo::from_value(data);
    let status = match info.kind.as_str() {
        "overloaded_error" | "api_error" | "rate_limit_error" => {
            let reason = format!("{} in the stream: {}", info.kind, endpoint.scrub(&info.message));
            return Failure::Busy {
                reason,
                retry_after: None,
            };
        }
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        _ => 500,
    };
    endpoint.classify(status, &info, None)
}
