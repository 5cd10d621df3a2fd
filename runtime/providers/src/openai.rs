//! OpenAI-compatible chat completions with streaming and tool calls: the
//! common dialect of OpenAI, Ollama, vLLM, llama.cpp's server and LM Studio.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};

use deskhand_types::model::{Block, Message, Role, StopReason, Usage};
use serde_json::{Value, json};

use super::config::{RetryPolicy, Secret, TurnLimits};
use super::sse::{Endpoint, ErrorInfo, Failure, SseReader, http_agent, with_retries};
use super::{ModelProvider, ModelRequest, ModelResponse, ProviderError, StreamEvent};

const NAME: &str = "the OpenAI-compatible server";

/// Talks to `POST {base}/chat/completions`. The key is optional: local
/// servers need none, and then no Authorization header is sent.
#[derive(Debug)]
pub struct OpenAiCompatibleProvider {
    agent: ureq::Agent,
    base_url: String,
    url: String,
    model: String,
    api_key: Option<Secret>,
    retry: RetryPolicy,
    limits: TurnLimits,
}

impl OpenAiCompatibleProvider {
    /// `base_url` is like `http://localhost:11434/v1` or `https://api.openai.com/v1`.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>, api_key: Option<Secret>) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        let url = format!("{base_url}/chat/completions");
        let api_key = api_key.filter(|key| !key.expose().is_empty());
        OpenAiCompatibleProvider {
            agent: http_agent(),
            base_url,
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
            base_url_env: "OPENAI_BASE_URL",
            key_env: "OPENAI_API_KEY",
            key: self.api_key.as_ref(),
        }
    }

    /// The request as JSON, serialized straight from the conversation
    /// without an intermediate `Value` tree.
    fn request_body(&self, request: &ModelRequest<'_>) -> String {
        let mut messages = Vec::new();
        if !request.system.is_empty() {
            messages.push(WireMessage::Text {
                role: "system",
                content: request.system.into(),
            });
        }
        for message in request.messages {
            wire_messages(message, &mut messages);
        }
        let body = WireRequest {
            model: &self.model,
            messages,
            max_tokens: request.max_tokens,
            stream: true,
            stream_options: StreamOptions { include_usage: true },
            tools: request
                .tools
                .iter()
                .map(|t| WireTool {
                    kind: "function",
                    function: WireFunction {
                        name: &t.name,
                        description: &t.description,
                        parameters: &t.input_schema,
                    },
                })
                .collect(),
        };
        serde_json::to_string(&body).unwrap_or_default()
    }
}

#[derive(serde::Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    max_tokens: u32,
    stream: bool,
    stream_options: StreamOptions,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
}

#[derive(serde::Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(serde::Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(serde::Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum WireMessage<'a> {
    Text {
        role: &'static str,
        content: std::borrow::Cow<'a, str>,
    },
    Tool {
        role: &'static str,
        tool_call_id: &'a str,
        content: std::borrow::Cow<'a, str>,
    },
    Assistant {
        role: &'static str,
        content: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<WireCall<'a>>,
    },
}

#[derive(serde::Serialize)]
struct WireCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireCallFunction<'a>,
}

#[derive(serde::Serialize)]
struct WireCallFunction<'a> {
    name: &'a str,
    /// The format carries arguments as a JSON string.
    arguments: String,
}

impl ModelProvider for OpenAiCompatibleProvider {
    fn describe(&self) -> String {
        format!("openai-compatible {} at {}", self.model, self.base_url)
    }

    fn complete(
        &self,
        request: &ModelRequest<'_>,
        on_event: &mut dyn FnMut(StreamEvent),
    ) -> Result<ModelResponse, ProviderError> {
        let body = self.request_body(request);
        let endpoint = self.endpoint();
        let bearer = self.api_key.as_ref().map(|key| format!("Bearer {}", key.expose()));
        let headers: Vec<(&str, &str)> = bearer.iter().map(|b| ("authorization", b.as_str())).collect();
        with_retries(NAME, &self.retry, &self.limits, request, on_event, |on_event, left| {
            let response = endpoint.post(&self.agent, &headers, &body, left, self.limits.idle_timeout)?;
            let mut sse = SseReader::new(BufReader::new(response.into_body().into_reader()));
            read_completion(&endpoint, &mut sse, on_event)
        })
    }
}

/// One deskhand message as chat messages: tool results become `tool`
/// messages (which must directly follow the assistant's calls), and any
/// text in the same turn a `user` message after them.
fn wire_messages<'a>(message: &'a Message, out: &mut Vec<WireMessage<'a>>) {
    let text = message.text();
    match message.role {
        Role::User => {
            for block in &message.content {
                if let Block::ToolResult {
                    tool_use_id,
                    content,
                    is_error,
                } = block
                {
                    // The format has no error flag; say it in the content.
                    let content = if *is_error {
                        format!("error: {content}").into()
                    } else {
                        content.as_str().into()
                    };
                    out.push(WireMessage::Tool {
                        role: "tool",
                        tool_call_id: tool_use_id,
                        content,
                    });
                }
            }
            if !text.is_empty() {
                out.push(WireMessage::Text {
                    role: "user",
                    content: text.into(),
                });
            }
        }
        Role::Assistant => {
            let tool_calls = message
                .tool_uses()
                .map(|(id, name, input)| WireCall {
                    id,
                    kind: "function",
                    function: WireCallFunction {
                        name,
                        arguments: input.to_string(),
                    },
                })
                .collect();
            out.push(WireMessage::Assistant {
                role: "assistant",
                content: (!text.is_empty()).then_some(text),
                tool_calls,
            });
        }
    }
}

#[derive(Default)]
struct Call {
    id: Option<String>,
    name: String,
    arguments: String,
}

/// Reads `data:` chunks up to `data: [DONE]`.
fn read_completion<R: BufRead>(
    endpoint: &Endpoint<'_>,
    sse: &mut SseReader<R>,
    on_event: &mut dyn FnMut(StreamEvent),
) -> Result<ModelResponse, Failure> {
    let mut text = String::new();
    let mut calls: BTreeMap<u64, Call> = BTreeMap::new();
    let mut last_call: Option<u64> = None;
    let mut finish: Option<String> = None;
    let mut usage = Usage::default();
    loop {
        let Some(event) = endpoint.next_event(sse)? else {
            return Err(Failure::Broken {
                reason: "the stream ended before data: [DONE]".into(),
            });
        };
        if event.data.trim() == "[DONE]" {
            break;
        }
        let chunk: Value =
            serde_json::from_str(&event.data).map_err(|e| endpoint.malformed(format!("a chunk is not JSON ({e})")))?;
        if chunk.get("error").is_some() {
            return Err(stream_error(endpoint, &chunk));
        }
        if let Some(counts) = chunk.get("usage").filter(|u| u.is_object()) {
            usage.input_tokens = counts["prompt_tokens"].as_u64().unwrap_or(usage.input_tokens);
            usage.output_tokens = counts["completion_tokens"].as_u64().unwrap_or(usage.output_tokens);
        }
        let choices = chunk["choices"].as_array().map(Vec::as_slice).unwrap_or_default();
        // deskhand asks for one choice; ignore any others a server invents.
        for choice in choices.iter().filter(|c| c["index"].as_u64().unwrap_or(0) == 0) {
            let delta = &choice["delta"];
            if let Some(piece) = delta["content"].as_str().filter(|p| !p.is_empty()) {
                text.push_str(piece);
                on_event(StreamEvent::TextDelta(piece.to_owned()));
            }
            for part in delta["tool_calls"].as_array().map(Vec::as_slice).unwrap_or_default() {
                let id = part["id"].as_str().filter(|id| !id.is_empty());
                let index = match part["index"].as_u64() {
                    Some(index) => index,
                    // Some servers omit the index: a new id starts a new call,
                    // anything else continues the last one.
                    None => match id.and_then(|id| calls.iter().find(|(_, c)| c.id.as_deref() == Some(id))) {
                        Some((index, _)) => *index,
                        None if id.is_some() || last_call.is_none() => calls.keys().max().map_or(0, |max| max + 1),
                        None => last_call.unwrap_or(0),
                    },
                };
                last_call = Some(index);
                let call = calls.entry(index).or_default();
                if let Some(id) = id {
                    call.id = Some(id.to_owned());
                }
                let function = &part["function"];
                if let Some(name) = function["name"].as_str().filter(|n| !n.is_empty()) {
                    if call.name.is_empty() {
                        on_event(StreamEvent::ToolUseStart { name: name.to_owned() });
                    }
                    call.name = name.to_owned();
                }
                match &function["arguments"] {
                    Value::String(piece) => call.arguments.push_str(piece),
                    Value::Null => {}
                    // A server that sends the arguments whole, as an object.
                    whole => call.arguments = whole.to_string(),
                }
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                finish = Some(reason.to_owned());
            }
        }
    }

    let mut content = Vec::new();
    if !text.is_empty() {
        content.push(Block::Text { text });
    }
    let has_calls = !calls.is_empty();
    for (index, call) in calls {
        if call.name.is_empty() {
            return Err(endpoint.malformed(format!("tool call {index} has no function name")));
        }
        let input = if call.arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&call.arguments).map_err(|e| {
                endpoint.malformed(format!(
                    "the arguments streamed for tool {} are not JSON ({e})",
                    call.name
                ))
            })?
        };
        let id = call.id.unwrap_or_else(|| format!("call_{index}"));
        content.push(Block::ToolUse {
            id,
            name: call.name,
            input,
        });
    }
    let stop_reason = match finish.as_deref() {
        Some("length") => StopReason::MaxTokens,
        // Some servers say "stop" (or nothing) even when the turn ends in calls.
        _ if has_calls => StopReason::ToolUse,
        Some("stop") | None => StopReason::EndTurn,
        Some(other) => StopReason::Other(other.to_owned()),
    };
    Ok(ModelResponse {
        content,
        stop_reason,
        usage,
    })
}

/// An error chunk after a 200, sorted by its code (when numeric) or type.
fn stream_error(endpoint: &Endpoint<'_>, chunk: &Value) -> Failure {
    let info = ErrorInfo::from_value(chunk);
    let status = info
        .code
        .parse::<u16>()
        .ok()
        .filter(|s| (400..=599).contains(s))
        .unwrap_or(match info.kind.as_str() {
            "invalid_request_error" | "BadRequestError" => 400,
            "authentication_error" => 401,
            "not_found_error" => 404,
            "rate_limit_exceeded" | "rate_limit_error" => 429,
            _ => 500,
        });
    match endpoint.classify(status, &info, None) {
        Failure::Busy { retry_after, .. } => Failure::Busy {
            reason: format!("error in the stream: {}", endpoint.scrub(&info.message)),
            retry_after,
        },
        other => other,
    }
}
