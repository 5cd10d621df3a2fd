//! deskhand's model providers behind one trait: the Anthropic Messages API,
//! any OpenAI-compatible chat-completions server (Ollama, vLLM, llama.cpp,
//! LM Studio), and (in deskhand-runtime's `agent::offline`) the embedded
//! offline planner. The runtime re-exports this crate as `model`; it needs
//! neither wasmtime nor the guest components, so its tests build alone.
//!
//! Providers are synchronous: the agent loop runs on its own thread and a
//! streamed response is read as it arrives, with deltas reported through a
//! callback so the CLI and UI can show progress.

pub mod anthropic;
pub mod config;
pub mod openai;
mod sse;

use std::time::Duration;

use deskhand_types::model::{Block, Message, StopReason, ToolSpec, Usage};

pub use config::{ModelConfig, ProviderKind, Secret, TurnLimits};

/// One request to a model.
#[derive(Debug, Clone, Copy)]
pub struct ModelRequest<'a> {
    pub system: &'a str,
    pub messages: &'a [Message],
    pub tools: &'a [ToolSpec],
    pub max_tokens: u32,
    /// Set when the run is stopped: a provider waiting to retry gives up
    /// ([`ProviderError::Stopped`]) instead of sleeping on.
    pub stop: Option<&'a [std::sync::Arc<std::sync::atomic::AtomicBool>]>,
}

impl ModelRequest<'_> {
    pub fn stopped(&self) -> bool {
        self.stop
            .is_some_and(|flags| flags.iter().any(|f| f.load(std::sync::atomic::Ordering::Relaxed)))
    }
}

/// A complete assistant turn.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelResponse {
    pub content: Vec<Block>,
    pub stop_reason: StopReason,
    pub usage: Usage,
}

/// What a provider reports while a response streams in.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    TextDelta(String),
    ToolUseStart {
        name: String,
    },
    /// The request failed transiently and will be retried after `wait`.
    Retry {
        attempt: u32,
        wait: Duration,
        reason: String,
    },
}

pub trait ModelProvider: Send + Sync {
    /// "anthropic claude-sonnet-4-5", "openai-compatible llama3.1 at http://...", "offline planner".
    fn describe(&self) -> String;

    fn complete(
        &self,
        request: &ModelRequest<'_>,
        on_event: &mut dyn FnMut(StreamEvent),
    ) -> Result<ModelResponse, ProviderError>;
}

/// Why a model call failed, each with what the person can do about it.
/// Messages never contain an API key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    #[error("{provider} rejected the API key ({detail}). Check {env_var}, or the api_key in your deskhand config")]
    BadKey {
        provider: String,
        env_var: String,
        detail: String,
    },
    #[error("no API key for {provider}: set {env_var} or put api_key under [model] in ~/.config/deskhand/config.toml")]
    MissingKey { provider: String, env_var: String },
    #[error(
        "no model chosen for {provider}: pass --model, set DESKHAND_MODEL or {env_var}, or put name = \"...\" under [model] in the config file"
    )]
    MissingModel { provider: String, env_var: String },
    #[error("cannot reach {url}: {detail}. Check your network connection, or the base URL ({env_var})")]
    Unreachable {
        url: String,
        env_var: String,
        detail: String,
    },
    #[error("{provider} does not know the model {model:?} ({detail}). Pick another with --model or DESKHAND_MODEL")]
    UnknownModel {
        provider: String,
        model: String,
        detail: String,
    },
    #[error(
        "the conversation no longer fits the model's context window ({detail}). Use a model with a larger window, or give a local server more context (Ollama's num_ctx, llama.cpp's --ctx-size) and set `context_tokens` in deskhand's config to match; shorten INSTRUCTIONS.md, MEMORY.md and what is in context/; or split the task into smaller ones"
    )]
    ContextOverflow { detail: String },
    #[error(
        "the response stream from {provider} was malformed: {detail}. Try again; if it keeps happening, the server may not implement the API fully"
    )]
    MalformedStream { provider: String, detail: String },
    #[error(
        "{provider} is still rate-limiting or overloaded after {attempts} attempts ({detail}). Wait a minute and resume the run with `deskhand resume`"
    )]
    Exhausted {
        provider: String,
        attempts: u32,
        detail: String,
    },
    #[error(
        "{provider} asks to wait {} before the next request ({detail}). Resume the run after that with `deskhand resume`", wait_words(*wait_secs)
    )]
    WaitAsked {
        provider: String,
        wait_secs: u64,
        detail: String,
    },
    #[error(
        "{provider} did not finish its answer within {}, the limit for one model turn ({detail}). Resume the run with `deskhand resume` once the model answers; if it is only slow, raise turn_timeout_secs under [model] in deskhand's config", wait_words(*secs)
    )]
    TurnTimeout {
        provider: String,
        secs: u64,
        detail: String,
    },
    #[error("stopped while waiting to ask {provider} again")]
    Stopped { provider: String },
    #[error("{provider} refused the request (HTTP {status}): {detail}")]
    Rejected {
        provider: String,
        status: u16,
        detail: String,
    },
}

impl ProviderError {
    /// True for failures worth retrying the same request after a pause.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ProviderError::MalformedStream { .. }
                | ProviderError::Exhausted { .. }
                | ProviderError::WaitAsked { .. }
                | ProviderError::TurnTimeout { .. }
        )
    }
}

/// "45 s", "3 min", "2 h 5 min": a wait in words a person reads at a glance.
fn wait_words(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs.div_ceil(60)),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600).div_ceil(60)),
    }
}
