//! Model configuration: user and workspace config files, then environment
//! overrides (passed in, never read here).
//!
//! ```toml
//! [model]
//! provider = "anthropic"   # or "openai" (any OpenAI-compatible server), or "offline"
//! name = "claude-sonnet-4-5"
//! base_url = "https://api.anthropic.com"
//! api_key = "..."          # better: ANTHROPIC_API_KEY / OPENAI_API_KEY
//! max_tokens = 8192
//! context_tokens = 150000  # the model's context window; older turns are compacted before it fills
//! turn_timeout_secs = 600  # one model turn, retries included, whatever the server sends
//! idle_timeout_secs = 300  # the longest the server may send nothing at all
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::anthropic::AnthropicProvider;
use super::openai::OpenAiCompatibleProvider;
use super::{ModelProvider, ProviderError};

pub const DEFAULT_ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
pub const DEFAULT_ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";
/// Ollama's OpenAI-compatible endpoint.
pub const DEFAULT_OPENAI_BASE_URL: &str = "http://localhost:11434/v1";
pub const DEFAULT_MAX_TOKENS: u32 = 8192;
/// Claude's window is 200k tokens; the rest is room for the answer and slack
/// for the rough estimate.
pub const DEFAULT_ANTHROPIC_CONTEXT_TOKENS: usize = 150_000;
/// Local servers differ (Ollama, llama.cpp and LM Studio set their own);
/// 32k is common for the models people run. A server that silently drops
/// what does not fit (Ollama does) needs this set to its real size.
pub const DEFAULT_OPENAI_CONTEXT_TOKENS: usize = 32_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum ProviderKind {
    #[serde(rename = "anthropic")]
    Anthropic,
    #[serde(rename = "openai", alias = "openai-compatible", alias = "openai_compatible")]
    OpenAiCompatible,
    #[default]
    #[serde(rename = "offline")]
    Offline,
}

impl ProviderKind {
    /// Parses the names the config file accepts.
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "anthropic" => Some(ProviderKind::Anthropic),
            "openai" | "openai-compatible" | "openai_compatible" => Some(ProviderKind::OpenAiCompatible),
            "offline" => Some(ProviderKind::Offline),
            _ => None,
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::OpenAiCompatible => "openai-compatible",
            ProviderKind::Offline => "offline",
        })
    }
}

/// An API key. Debug and Display print `***`; only [`Secret::expose`]
/// gives the value, for the one header that carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How a provider retries a request the server could not serve right now
/// (429, 5xx, 529, an overloaded stream) or whose stream broke off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The first backoff; each retry doubles it.
    pub base_delay: Duration,
    /// No backoff of ours is longer.
    pub max_delay: Duration,
    /// A wait the server asks for (`retry-after`) is kept to exactly, up
    /// to this; a longer one ends the attempt with a message saying how
    /// long the server asked for, rather than retrying sooner than asked.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first): what the
    /// server asked for (the caller gives up instead when that is over
    /// `max_retry_after`), else exponential backoff with jitter capped at
    /// `max_delay`.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(asked) = retry_after {
            return asked.min(self.max_retry_after);
        }
        let doubling = 1u32 << retry.saturating_sub(1).min(20);
        let backoff = self.base_delay.saturating_mul(doubling).min(self.max_delay);
        // Half fixed, half random: clients that failed together spread out,
        // and no wait collapses to nothing.
        let half = backoff / 2;
        let spread = u64::try_from((backoff - half).as_nanos()).unwrap_or(u64::MAX);
        let random = getrandom::u64().unwrap_or(0);
        half + Duration::from_nanos(random.checked_rem(spread.saturating_add(1)).unwrap_or(0))
    }
}

/// How long a model turn may take, whatever the server does: a stream that
/// stalls, or trickles keep-alive pings and never finishes, ends here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnLimits {
    /// The whole turn: every attempt, the waits between them, and each
    /// stream read to its end.
    pub turn_timeout: Duration,
    /// The longest the server may send nothing at all (a local model
    /// loading, or reading a long prompt, is silent for a while).
    pub idle_timeout: Duration,
}

pub const DEFAULT_TURN_TIMEOUT_SECS: u64 = 600;
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 300;
/// The longest either may be set to: a day.
const MAX_TIMEOUT_SECS: u64 = 86_400;

impl Default for TurnLimits {
    fn default() -> Self {
        TurnLimits {
            turn_timeout: Duration::from_secs(DEFAULT_TURN_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
        }
    }
}

/// Which model to talk to and how. Debug never shows the key.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub provider: ProviderKind,
    /// Always set for Anthropic (a default exists); an OpenAI-compatible
    /// server has no sensible default, so it may be None until `--model`.
    pub model: Option<String>,
    pub base_url: Option<String>,
    pub api_key: Option<Secret>,
    pub max_tokens: u32,
    /// The model's context window in tokens: the agent compacts older turns
    /// before a request would fill three quarters of it.
    pub context_tokens: usize,
    pub retry: RetryPolicy,
    pub limits: TurnLimits,
}

impl Default for ModelConfig {
    /// The offline planner: nothing configured.
    fn default() -> Self {
        ModelConfig {
            provider: ProviderKind::Offline,
            model: None,
            base_url: None,
            api_key: None,
            max_tokens: DEFAULT_MAX_TOKENS,
            context_tokens: DEFAULT_ANTHROPIC_CONTEXT_TOKENS,
            retry: RetryPolicy::default(),
            limits: TurnLimits::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {}{}: {message}", path.display(), line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Parse {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

/// The `[model]` table; other tables belong to other parts of deskhand.
#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    model: Layer,
}

/// One source of settings; later sources override earlier ones field by field.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Layer {
    provider: Option<ProviderKind>,
    #[serde(alias = "model")]
    name: Option<String>,
    base_url: Option<String>,
    api_key: Option<String>,
    max_tokens: Option<u32>,
    context_tokens: Option<usize>,
    turn_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
}

impl Layer {
    /// `self` overridden by `higher`. When `higher` names another provider,
    /// the model, URL and key below it were meant for the old one and are
    /// dropped, so a key is never sent to a server it was not written for.
    fn under(self, higher: Layer) -> Layer {
        let switched = matches!((self.provider, higher.provider), (Some(a), Some(b)) if a != b);
        let lower = if switched {
            Layer {
                max_tokens: self.max_tokens,
                turn_timeout_secs: self.turn_timeout_secs,
                idle_timeout_secs: self.idle_timeout_secs,
                ..Layer::default()
            }
        } else {
            self
        };
        Layer {
            provider: higher.provider.or(lower.provider),
            name: higher.name.or(lower.name),
            base_url: higher.base_url.or(lower.base_url),
            api_key: higher.api_key.or(lower.api_key),
            max_tokens: higher.max_tokens.or(lower.max_tokens),
            context_tokens: higher.context_tokens.or(lower.context_tokens),
            turn_timeout_secs: higher.turn_timeout_secs.or(lower.turn_timeout_secs),
            idle_timeout_secs: higher.idle_timeout_secs.or(lower.idle_timeout_secs),
        }
    }

    fn read(path: Option<&Path>) -> Result<Layer, ConfigError> {
        let Some(path) = path else { return Ok(Layer::default()) };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Layer::default()),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let file: ConfigFile = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            line: e
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1),
            message: e.message().trim().to_owned(),
        })?;
        if file.model.max_tokens == Some(0) {
            let origin = path.display().to_string();
            return Err(ConfigError::Invalid {
                origin,
                message: "max_tokens under [model] must be at least 1".into(),
            });
        }
        check_context_tokens(file.model.context_tokens, &path.display().to_string())?;
        for (key, value) in [
            ("turn_timeout_secs", file.model.turn_timeout_secs),
            ("idle_timeout_secs", file.model.idle_timeout_secs),
        ] {
            if value.is_some_and(|n| !(1..=MAX_TIMEOUT_SECS).contains(&n)) {
                return Err(ConfigError::Invalid {
                    origin: path.display().to_string(),
                    message: format!("{key} under [model] must be whole seconds from 1 to {MAX_TIMEOUT_SECS} (a day)"),
                });
            }
        }
        Ok(file.model)
    }
}

impl ModelConfig {
    /// Reads the user file, then the workspace file, then the environment
    /// (through `env`), each overriding the one before; missing files are
    /// fine. With nothing set the provider is Offline; `ANTHROPIC_API_KEY`
    /// alone selects Anthropic, `OPENAI_BASE_URL` alone an OpenAI-compatible
    /// server.
    pub fn load(
        user_file: Option<&Path>,
        workspace_file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ModelConfig, ConfigError> {
        let var = |name: &str| env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let files = Layer::read(user_file)?.under(Layer::read(workspace_file)?);

        let chosen = match var("DESKHAND_PROVIDER") {
            Some(name) => Some(ProviderKind::parse(&name).ok_or_else(|| ConfigError::Invalid {
                origin: "DESKHAND_PROVIDER".into(),
                message: format!("unknown provider {name:?}; use \"anthropic\", \"openai\" or \"offline\""),
            })?),
            None => None,
        };
        let provider = chosen
            .or(files.provider)
            .unwrap_or(if var("ANTHROPIC_API_KEY").is_some() {
                ProviderKind::Anthropic
            } else if var("OPENAI_BASE_URL").is_some() {
                ProviderKind::OpenAiCompatible
            } else {
                ProviderKind::Offline
            });
        let from_env = match provider {
            ProviderKind::Anthropic => Layer {
                name: var("DESKHAND_MODEL"),
                base_url: var("ANTHROPIC_BASE_URL"),
                api_key: var("ANTHROPIC_API_KEY"),
                ..Layer::default()
            },
            ProviderKind::OpenAiCompatible => Layer {
                name: var("DESKHAND_MODEL").or_else(|| var("OPENAI_MODEL")),
                base_url: var("OPENAI_BASE_URL"),
                api_key: var("OPENAI_API_KEY"),
                ..Layer::default()
            },
            ProviderKind::Offline => Layer::default(),
        };
        let context_from_env = match var("DESKHAND_CONTEXT_TOKENS") {
            Some(v) => Some(v.parse::<usize>().map_err(|_| ConfigError::Invalid {
                origin: "DESKHAND_CONTEXT_TOKENS".into(),
                message: format!("{v:?} is not a number of tokens (say 32000)"),
            })?),
            None => None,
        };
        check_context_tokens(context_from_env, "DESKHAND_CONTEXT_TOKENS")?;
        let merged = files.under(Layer {
            provider: Some(provider),
            context_tokens: context_from_env,
            ..from_env
        });

        let (default_url, default_model) = match provider {
            ProviderKind::Anthropic => (Some(DEFAULT_ANTHROPIC_BASE_URL), Some(DEFAULT_ANTHROPIC_MODEL)),
            ProviderKind::OpenAiCompatible => (Some(DEFAULT_OPENAI_BASE_URL), None),
            ProviderKind::Offline => (None, None),
        };
        let base_url = merged.base_url.or(default_url.map(str::to_owned));
        if let Some(url) = &base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                origin: "model config".into(),
                message: format!("base_url {url:?} must start with http:// or https://"),
            });
        }
        Ok(ModelConfig {
            provider,
            model: merged.name.or(default_model.map(str::to_owned)),
            base_url,
            api_key: merged.api_key.map(Secret),
            max_tokens: merged.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            context_tokens: merged.context_tokens.unwrap_or(match provider {
                ProviderKind::OpenAiCompatible => DEFAULT_OPENAI_CONTEXT_TOKENS,
                _ => DEFAULT_ANTHROPIC_CONTEXT_TOKENS,
            }),
            retry: RetryPolicy::default(),
            limits: TurnLimits {
                turn_timeout: Duration::from_secs(merged.turn_timeout_secs.unwrap_or(DEFAULT_TURN_TIMEOUT_SECS)),
                idle_timeout: Duration::from_secs(merged.idle_timeout_secs.unwrap_or(DEFAULT_IDLE_TIMEOUT_SECS)),
            },
        })
    }

    /// Overrides the model, as `--model` does.
    pub fn with_model(&mut self, name: impl Into<String>) -> &mut Self {
        self.model = Some(name.into());
        self
    }
}

/// A context window too small to hold deskhand's own prompt and tools is a
/// mistake, not a setting.
fn check_context_tokens(value: Option<usize>, origin: &str) -> Result<(), ConfigError> {
    match value {
        Some(n) if n > 10_000_000 => Err(ConfigError::Invalid {
            origin: origin.into(),
            message: format!("context_tokens = {n} is more than any model holds; give the model's real window"),
        }),
        Some(n) if n < 4_000 => Err(ConfigError::Invalid {
            origin: origin.into(),
            message: format!(
                "context_tokens = {n} is too small: deskhand's instructions and tool descriptions alone need several thousand tokens; \
                 give the model's real window (for a local server, raise its context size to at least 8,192)"
            ),
        }),
        _ => Ok(()),
    }
}

/// Builds the configured provider; `None` means the offline planner.
/// Fails before any request when a required key or model is missing.
pub fn connect(config: &ModelConfig) -> Result<Option<Box<dyn ModelProvider>>, ProviderError> {
    match config.provider {
        ProviderKind::Offline => Ok(None),
        ProviderKind::Anthropic => {
            let key = config.api_key.clone().ok_or_else(|| ProviderError::MissingKey {
                provider: "Anthropic".into(),
                env_var: "ANTHROPIC_API_KEY".into(),
            })?;
            let base = config.base_url.as_deref().unwrap_or(DEFAULT_ANTHROPIC_BASE_URL);
            let model = config.model.as_deref().unwrap_or(DEFAULT_ANTHROPIC_MODEL);
            Ok(Some(Box::new(
                AnthropicProvider::new(base, model, key)
                    .with_retry(config.retry)
                    .with_limits(config.limits),
            )))
        }
        ProviderKind::OpenAiCompatible => {
            let model = config.model.as_deref().ok_or_else(|| ProviderError::MissingModel {
                provider: "the OpenAI-compatible server".into(),
                env_var: "OPENAI_MODEL".into(),
            })?;
            let base = config.base_url.as_deref().unwrap_or(DEFAULT_OPENAI_BASE_URL);
            let provider = OpenAiCompatibleProvider::new(base, model, config.api_key.clone())
                .with_retry(config.retry)
                .with_limits(config.limits);
            Ok(Some(Box::new(provider)))
        }
    }
}
