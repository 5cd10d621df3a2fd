//! OpenTelemetry export of every run, off unless configured.
//!
//! Spans come from the run log: [`Telemetry`] is a journal subscriber
//! ([`crate::journal::JournalSubscriber`]), called after each committed
//! append, and folds the events into spans ([`fold`], pure) after the GenAI
//! semantic conventions. Installing it where journals are opened
//! ([`crate::journal::set_process_subscriber`]) covers every front end.
//!
//! What holds: exporting never slows or breaks a run (the fold is cheap, the
//! batch processor queues a bounded number of spans and sends them on its own
//! thread with a timeout; what is not delivered is counted and added to a
//! small file `deskhand doctor` reads); message content leaves only when the
//! person opted in ([`TelemetryConfig::capture_content`]), cut short; header
//! values (API keys) never appear in an error, a span or a log.

pub mod fold;
pub mod report;

mod export;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use deskhand_types::{Event, RunId};
use opentelemetry::InstrumentationScope;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SpanExporter, SpanProcessor};
use serde::Deserialize;

use crate::journal::JournalSubscriber;

/// The variable that turns content capture on (`true`).
pub const CAPTURE_CONTENT_VAR: &str = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT";
/// How long one export may take before it counts as failed.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// The most spans waiting to be sent; more are dropped and counted.
const QUEUE: usize = 2048;

/// Where spans go and what they carry.
#[derive(Clone, PartialEq)]
pub struct TelemetryConfig {
    /// The full traces URL (`.../v1/traces`).
    pub endpoint: String,
    /// Sent with every export; values are never shown.
    pub headers: Vec<(String, String)>,
    pub service_name: String,
    /// Export message content (task, messages, tool arguments), cut short.
    pub capture_content: bool,
    pub timeout: Duration,
}

impl std::fmt::Debug for TelemetryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("TelemetryConfig")
            .field("endpoint", &self.endpoint_shown())
            .field("headers", &header_names)
            .field("service_name", &self.service_name)
            .field("capture_content", &self.capture_content)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A telemetry setting that cannot be used, in the person's words (never
/// with a header's value).
#[derive(Debug, thiserror::Error)]
#[error("telemetry is off: {0}")]
pub struct ConfigError(String);

/// The `[telemetry]` table of `config.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTable {
    /// The OTLP/HTTP base URL (`/v1/traces` is added), like `OTEL_EXPORTER_OTLP_ENDPOINT`.
    endpoint: Option<String>,
    /// The full traces URL, like `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
    traces_endpoint: Option<String>,
    #[serde(default)]
    headers: HashMap<String, String>,
    service_name: Option<String>,
    capture_message_content: Option<bool>,
    timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct FileConfig {
    #[serde(default)]
    telemetry: FileTable,
}

impl TelemetryConfig {
    /// The configuration from the standard `OTEL_*` variables (`env`), over
    /// the `[telemetry]` table of `config_file`; `None` when neither names an
    /// endpoint (or `OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none`).
    pub fn load(
        config_file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<TelemetryConfig>, ConfigError> {
        let var = |name: &str| env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
        {
            return Ok(None);
        }
        let file = match config_file.map(std::fs::read_to_string) {
            Some(Ok(text)) => {
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| {
                        ConfigError(format!(
                            "the [telemetry] table of {} cannot be read: {}",
                            config_file.map(|p| p.display().to_string()).unwrap_or_default(),
                            e.message()
                        ))
                    })?
                    .telemetry
            }
            Some(Err(e)) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(ConfigError(format!(
                    "{} cannot be read: {e}",
                    config_file.map(|p| p.display().to_string()).unwrap_or_default()
                )));
            }
            _ => FileTable::default(),
        };
        let traces = |base: &str| format!("{}/v1/traces", base.trim_end_matches('/'));
        let endpoint = match (
            var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            var("OTEL_EXPORTER_OTLP_ENDPOINT"),
            file.traces_endpoint.filter(|s| !s.trim().is_empty()),
            file.endpoint.filter(|s| !s.trim().is_empty()),
        ) {
            (Some(url), ..) => ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url),
            (None, Some(base), ..) => ("OTEL_EXPORTER_OTLP_ENDPOINT", traces(&base)),
            (None, None, Some(url), _) => ("traces_endpoint in [telemetry]", url),
            (None, None, None, Some(base)) => ("endpoint in [telemetry]", traces(&base)),
            (None, None, None, None) => return Ok(None),
        };
        let (origin, endpoint) = endpoint;
        match url::Url::parse(&endpoint) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return Err(ConfigError(format!(
                    "{origin} must be an http:// or https:// URL, such as http://localhost:4318"
                )));
            }
        }
        let mut headers: Vec<(String, String)> = file.headers.into_iter().collect();
        headers.sort();
        for name in ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"] {
            if let Some(list) = var(name) {
                for (i, entry) in list.split(',').enumerate().filter(|(_, e)| !e.trim().is_empty()) {
                    let Some((key, value)) = entry.split_once('=') else {
                        return Err(ConfigError(format!(
                            "entry {} of {name} is not key=value (entries are separated by commas)",
                            i + 1
                        )));
                    };
                    let value = percent_decode(value.trim());
                    let key = key.trim().to_owned();
                    headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
                    headers.push((key, value));
                }
            }
        }
        for (key, value) in &headers {
            let key_ok = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !key_ok {
                return Err(ConfigError(format!(
                    "the header name {key:?} is not a valid HTTP header name"
                )));
            }
            if value.bytes().any(|b| b.is_ascii_control()) {
                return Err(ConfigError(format!(
                    "the value of the header {key} has control characters (the value is not shown)"
                )));
            }
        }
        let timeout = var("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_TIMEOUT"))
            .and_then(|ms| ms.parse::<u64>().ok())
            .or(file.timeout_ms)
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        let capture = match var(CAPTURE_CONTENT_VAR) {
            Some(v) => v.eq_ignore_ascii_case("true"),
            None => file.capture_message_content.unwrap_or(false),
        };
        Ok(Some(TelemetryConfig {
            endpoint,
            headers,
            service_name: var("OTEL_SERVICE_NAME")
                .or(file.service_name)
                .unwrap_or_else(|| "deskhand".into()),
            capture_content: capture,
            timeout,
        }))
    }
}

impl TelemetryConfig {
    /// The endpoint as it may be shown: without any user or password in it.
    pub fn endpoint_shown(&self) -> String {
        match url::Url::parse(&self.endpoint) {
            Ok(mut u) => {
                let _ = u.set_username("");
                let _ = u.set_password(None);
                u.to_string()
            }
            Err(_) => "(an unreadable URL)".into(),
        }
    }
}

/// `%XX` escapes decoded, as the OTLP exporter spec asks of header values
/// (a value that does not decode to UTF-8 is taken as written).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map_or_else(|_| s.to_owned(), |v| v.into_owned())
}

/// The spans a process could not deliver, kept in a small file so that
/// `deskhand doctor` (another process) can show them.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, Deserialize)]
pub struct DropCount {
    pub dropped: u64,
    /// When the last span was dropped (RFC 3339, UTC).
    pub last: String,
}

impl DropCount {
    /// What the file says; nothing dropped when it is missing or unreadable.
    pub fn read(file: &Path) -> DropCount {
        std::fs::read_to_string(file)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Adds `n` dropped spans to the file (best effort: telemetry never
    /// fails anything).
    pub fn add(file: &Path, n: u64) {
        if n == 0 {
            return;
        }
        let mut count = DropCount::read(file);
        count.dropped = count.dropped.saturating_add(n);
        count.last = crate::ids::now();
        if let Some(dir) = file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(text) = serde_json::to_string(&count) {
            let tmp = file.with_extension("tmp");
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, file);
            }
        }
    }
}

/// The exporter of one process: a journal subscriber.
pub struct Telemetry {
    fold: Mutex<fold::Fold>,
    processor: BatchSpanProcessor,
    counters: Arc<export::Counters>,
    scope: InstrumentationScope,
    timeout: Duration,
    drop_file: Option<PathBuf>,
    shut: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Starts exporting to `config`'s endpoint; undelivered spans are added
    /// to `drop_file` (see [`DropCount`]).
    pub fn start(config: &TelemetryConfig, drop_file: Option<PathBuf>) -> Result<Arc<Telemetry>, ConfigError> {
        let otlp = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(export::Ureq::new(config.timeout))
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(config.endpoint.clone())
            .with_timeout(config.timeout)
            .with_headers(config.headers.iter().cloned().collect())
            .build()
            // The builder's own words name neither headers nor their values.
            .map_err(|e| ConfigError(format!("the OTLP exporter cannot be made: {e}")))?;
        let counters = Arc::new(export::Counters::default());
        let failures_file = drop_file.clone();
        let mut exporter = export::Counting {
            inner: otlp,
            counters: counters.clone(),
            on_failure: Arc::new(move |n| {
                if let Some(file) = &failures_file {
                    DropCount::add(file, n);
                }
            }),
        };
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_service_name(config.service_name.clone())
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        exporter.set_resource(&resource);
        // The export timeout is ureq's (`Ureq::new`): the processor's own is
        // for async runtimes only.
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(QUEUE)
            .with_scheduled_delay(Duration::from_millis(500))
            .build();
        let processor = BatchSpanProcessor::new(exporter, batch);
        let scope = InstrumentationScope::builder("deskhand")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        let seed = {
            let mut bytes = [0u8; 8];
            let _ = getrandom::fill(&mut bytes);
            u64::from_le_bytes(bytes)
                ^ SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or_default()
        };
        Ok(Arc::new(Telemetry {
            fold: Mutex::new(fold::Fold::new(config.capture_content, seed)),
            processor,
            counters,
            scope,
            timeout: config.timeout,
            drop_file,
            shut: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// Sends what is queued (waiting at most about the export timeout), stops
    /// the export thread, and adds what was not delivered to the drop file.
    /// Returns the number of spans this process could not deliver.
    pub fn shutdown(&self) -> u64 {
        if self.shut.swap(true, Ordering::SeqCst) {
            return self.dropped();
        }
        let _ = self
            .processor
            .shutdown_with_timeout(self.timeout + Duration::from_secs(1));
        let dropped = self.dropped();
        let failed = self.counters.failed.load(Ordering::Relaxed);
        if let Some(file) = &self.drop_file {
            // Failed exports were counted as they failed; the rest never left the queue.
            DropCount::add(file, dropped.saturating_sub(failed));
        }
        dropped
    }

    /// Spans given to the exporter and not (yet) delivered.
    pub fn dropped(&self) -> u64 {
        let submitted = self.counters.submitted.load(Ordering::Relaxed);
        submitted.saturating_sub(self.counters.delivered.load(Ordering::Relaxed))
    }

    /// Spans delivered so far.
    pub fn delivered(&self) -> u64 {
        self.counters.delivered.load(Ordering::Relaxed)
    }
}

impl JournalSubscriber for Telemetry {
    fn committed(&self, run: &RunId, event: &Event) {
        if self.shut.load(Ordering::Relaxed) {
            return;
        }
        let spans = self
            .fold
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .apply(run, event, SystemTime::now());
        for span in spans {
            self.counters.submitted.fetch_add(1, Ordering::Relaxed);
            // A full queue drops the span here, without waiting.
            self.processor.on_end(export::span_data(span, &self.scope));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)], file: Option<&str>) -> Result<Option<TelemetryConfig>, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
        }
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        TelemetryConfig::load(Some(&path), &|k| vars.get(k).cloned())
    }

    #[test]
    fn off_unless_an_endpoint_is_configured() {
        assert!(load(&[], None).unwrap().is_none());
        assert!(
            load(
                &[("OTEL_SERVICE_NAME", "x")],
                Some("[model]\nprovider = \"anthropic\"\n")
            )
            .unwrap()
            .is_none()
        );
        assert!(
            load(
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://h:4318"),
                    ("OTEL_SDK_DISABLED", "true")
                ],
                None
            )
            .unwrap()
            .is_none()
        );
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let file = "[telemetry]\nendpoint = \"http://file:4318/\"\nservice_name = \"from-file\"\n\
                    capture_message_content = true\nheaders = { \"x-api-key\" = \"file-secret\" }\n";
        let c = load(&[], Some(file)).unwrap().unwrap();
        assert_eq!(c.endpoint, "http://file:4318/v1/traces");
        assert_eq!((c.service_name.as_str(), c.capture_content), ("from-file", true));
        assert_eq!(c.headers, [("x-api-key".into(), "file-secret".into())]);
        let c = load(
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=env%20secret,other=1"),
                ("OTEL_SERVICE_NAME", "svc"),
                (CAPTURE_CONTENT_VAR, "false"),
            ],
            Some(file),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint, "http://env:4318/v1/traces");
        assert_eq!(
            c.headers,
            [("x-api-key".into(), "env secret".into()), ("other".into(), "1".into())]
        );
        assert_eq!((c.service_name.as_str(), c.capture_content), ("svc", false));
        let c = load(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://t/x")], None)
            .unwrap()
            .unwrap();
        assert_eq!(c.endpoint, "https://t/x");
        // Header values stay out of the configuration's Debug form.
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn bad_settings_say_what_is_wrong_and_never_show_a_header_value() {
        let e = load(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")], None).unwrap_err();
        assert!(
            e.to_string().contains("OTEL_EXPORTER_OTLP_ENDPOINT must be an http://"),
            "{e}"
        );
        let e = load(
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://h:4318"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer sk-verysecret,oops"),
            ],
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("entry 2 of OTEL_EXPORTER_OTLP_HEADERS"), "{e}");
        let e = load(
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://h:4318"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=sk-verysecret%0A"),
            ],
            None,
        )
        .unwrap_err();
        assert!(!e.to_string().contains("verysecret"), "{e}");
        let e = load(&[], Some("[telemetry]\nendpiont = \"http://h\"\n")).unwrap_err();
        assert!(e.to_string().contains("endpiont"), "{e}");
    }

    #[test]
    fn the_drop_count_adds_up_in_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/telemetry-dropped.json");
        assert_eq!(DropCount::read(&file).dropped, 0);
        DropCount::add(&file, 3);
        DropCount::add(&file, 4);
        assert_eq!(DropCount::read(&file).dropped, 7);
    }
}
