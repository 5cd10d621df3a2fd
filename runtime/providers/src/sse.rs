//! The streaming transport shared by the providers: the server-sent-events
//! reader, the one HTTP POST, the sorting of failures into [`ProviderError`]s,
//! and the retry loop around a whole request.
//!
//! A refused connection or a host name that does not resolve is
//! `Unreachable`, never retried as a busy server (a resolver that cannot
//! answer right now is). Retries back off with jitter and keep to a server's
//! retry-after up to `max_retry_after`; a longer one ends with `WaitAsked`,
//! saying how long. Waits sleep in slices and end when the run is stopped.
//! Every turn has a wall-clock deadline over all its attempts, waits and
//! reads (`TurnLimits`), so a server that trickles pings cannot hold a run;
//! it ends the turn with `TurnTimeout`, and the run can be resumed.

use std::io::{self, BufRead, Read};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use ureq::http::{HeaderMap, Response};

use super::config::{RetryPolicy, Secret, TurnLimits};
use super::{ProviderError, StreamEvent};

/// Longest line or event accepted; a real event is a few kilobytes.
const MAX_EVENT_BYTES: usize = 16 << 20;
/// How much of an error response body is read to explain the error.
const MAX_ERROR_BODY: u64 = 64 << 10;
/// How much of a server's error message goes into a [`ProviderError`].
const MAX_DETAIL_CHARS: usize = 600;

/// One dispatched server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field, or "message" when the event had none.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

#[derive(Debug)]
pub(crate) enum SseError {
    Io(io::Error),
    /// The stream ended after part of an event (or part of a line).
    EndedMidEvent,
    NotUtf8,
    TooLarge,
}

/// Reads events from any byte stream following the WHATWG event-stream
/// rules: lines end in LF, CRLF or CR; `:` starts a comment; a blank line
/// dispatches; `data` lines accumulate; `id` and `retry` are ignored because
/// no model API relies on them.
pub(crate) struct SseReader<R> {
    reader: R,
    line: Vec<u8>,
    /// The previous line ended in CR, so a leading LF belongs to it.
    after_cr: bool,
    first_line: bool,
}

impl<R: BufRead> SseReader<R> {
    pub(crate) fn new(reader: R) -> Self {
        SseReader {
            reader,
            line: Vec::new(),
            after_cr: false,
            first_line: true,
        }
    }

    /// The next event; `Ok(None)` only when the stream ends between events.
    pub(crate) fn next_event(&mut self) -> Result<Option<SseEvent>, SseError> {
        let mut event: Option<String> = None;
        let mut data = String::new();
        let mut has_data = false;
        let mut pending = false;
        loop {
            let Some(line) = self.next_line()? else {
                return if pending {
                    Err(SseError::EndedMidEvent)
                } else {
                    Ok(None)
                };
            };
            if line.is_empty() {
                if has_data {
                    let event = event.unwrap_or_else(|| "message".to_owned());
                    return Ok(Some(SseEvent { event, data }));
                }
                // An event without data is not dispatched.
                event = None;
                pending = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line.as_str(), ""),
            };
            match field {
                "event" => {
                    event = Some(value.to_owned());
                    pending = true;
                }
                "data" => {
                    if has_data {
                        data.push('\n');
                    }
                    data.push_str(value);
                    if data.len() > MAX_EVENT_BYTES {
                        return Err(SseError::TooLarge);
                    }
                    has_data = true;
                    pending = true;
                }
                _ => {}
            }
        }
    }

    fn next_line(&mut self) -> Result<Option<String>, SseError> {
        self.line.clear();
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SseError::Io(e)),
            };
            if buf.is_empty() {
                return if self.line.is_empty() {
                    Ok(None)
                } else {
                    Err(SseError::EndedMidEvent)
                };
            }
            let mut start = 0;
            if self.after_cr {
                self.after_cr = false;
                if buf[0] == b'\n' {
                    start = 1;
                }
            }
            let rest = &buf[start..];
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    self.line.extend_from_slice(&rest[..end]);
                    self.after_cr = rest[end] == b'\r';
                    self.reader.consume(start + end + 1);
                    return self.take_line().map(Some);
                }
                None => {
                    self.line.extend_from_slice(rest);
                    let used = buf.len();
                    self.reader.consume(used);
                    if self.line.len() > MAX_EVENT_BYTES {
                        return Err(SseError::TooLarge);
                    }
                }
            }
        }
    }

    fn take_line(&mut self) -> Result<String, SseError> {
        let mut bytes = &self.line[..];
        if std::mem::take(&mut self.first_line) {
            bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
        }
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| SseError::NotUtf8)
    }
}

/// Where a request goes and what to name when it fails.
pub(crate) struct Endpoint<'a> {
    /// "Anthropic", "the OpenAI-compatible server".
    pub provider: &'a str,
    pub url: &'a str,
    pub model: &'a str,
    /// The variable that sets the base URL, named when the server is unreachable.
    pub base_url_env: &'a str,
    /// The variable that sets the key, named when the key is refused.
    pub key_env: &'a str,
    pub key: Option<&'a Secret>,
}

/// Why one attempt failed.
pub(crate) enum Failure {
    /// Retrying will not help.
    Fatal(ProviderError),
    /// The server is rate-limiting, overloaded or failing; it may say how long to wait.
    Busy {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The stream broke off or ended early.
    Broken { reason: String },
    /// The server could not be reached for a reason that may pass (a
    /// resolver that cannot answer right now): retried, and if it lasts,
    /// this error.
    Unreachable(ProviderError),
}

/// The HTTP client both providers use: error statuses come back as
/// responses (their bodies explain them), connecting gives up after 15 s.
/// Each request gets the turn's deadline and idle limit ([`Endpoint::post`]).
pub(crate) fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(15)))
        .user_agent(concat!("deskhand/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

impl Endpoint<'_> {
    /// The next event of a response stream, with read failures sorted:
    /// a connection that breaks or ends mid-event is worth retrying.
    pub(crate) fn next_event<R: BufRead>(&self, sse: &mut SseReader<R>) -> Result<Option<SseEvent>, Failure> {
        sse.next_event().map_err(|e| match e {
            SseError::Io(e) => Failure::Broken {
                reason: format!("the connection broke mid-stream: {}", self.scrub(&e.to_string())),
            },
            SseError::EndedMidEvent => Failure::Broken {
                reason: "the stream ended in the middle of an event".into(),
            },
            SseError::NotUtf8 => self.malformed("an event is not UTF-8"),
            SseError::TooLarge => self.malformed(format!("an event is larger than {MAX_EVENT_BYTES} bytes")),
        })
    }

    pub(crate) fn malformed(&self, detail: impl Into<String>) -> Failure {
        Failure::Fatal(ProviderError::MalformedStream {
            provider: self.provider.to_owned(),
            detail: detail.into(),
        })
    }

    /// Sends one POST. A non-2xx answer becomes a [`Failure`] here, so the
    /// caller reads only successful streams. `left`: what is left of the
    /// turn, for everything up to the stream's last byte, however the
    /// server paces it; `idle`: the longest the server may send nothing.
    pub(crate) fn post(
        &self,
        agent: &ureq::Agent,
        headers: &[(&str, &str)],
        body: &str,
        left: Duration,
        idle: Duration,
    ) -> Result<Response<ureq::Body>, Failure> {
        let mut request = agent
            .post(self.url)
            .config()
            .timeout_global(Some(left))
            .timeout_per_read(Some(idle))
            .build()
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.send(body).map_err(|e| self.transport_failure(e))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers(), SystemTime::now());
        let mut text = Vec::new();
        // An unreadable error body still leaves the status to go on.
        let _ = response
            .body_mut()
            .as_reader()
            .take(MAX_ERROR_BODY)
            .read_to_end(&mut text);
        let info = ErrorInfo::from_body(&String::from_utf8_lossy(&text));
        Err(self.classify(status, &info, retry_after))
    }

    fn transport_failure(&self, error: ureq::Error) -> Failure {
        use io::ErrorKind::*;
        // A server that connected but went quiet (or ran past the turn's
        // deadline) is not unreachable; one that never connected is.
        if let ureq::Error::Timeout(which) = &error
            && !matches!(which, ureq::Timeout::Connect | ureq::Timeout::Resolve)
        {
            return Failure::Broken {
                reason: format!("the server did not answer in time ({which})"),
            };
        }
        let (unreachable, passing) = match &error {
            ureq::Error::Io(e) => {
                let lookup = name_lookup_failure(e);
                (
                    matches!(
                        e.kind(),
                        ConnectionRefused | AddrNotAvailable | NetworkUnreachable | HostUnreachable | TimedOut
                    ) || lookup.is_some(),
                    lookup == Some(true),
                )
            }
            ureq::Error::Protocol(_) => (false, false),
            _ => (true, false),
        };
        let detail = self.scrub(&error.to_string());
        if passing {
            Failure::Unreachable(ProviderError::Unreachable {
                url: self.url.to_owned(),
                env_var: self.base_url_env.to_owned(),
                detail,
            })
        } else if unreachable {
            Failure::Fatal(ProviderError::Unreachable {
                url: self.url.to_owned(),
                env_var: self.base_url_env.to_owned(),
                detail,
            })
        } else {
            Failure::Broken {
                reason: format!("the connection broke before the response: {detail}"),
            }
        }
    }

    /// Sorts an error answer (an HTTP status, or a status implied by an
    /// error inside a stream) into what to do about it.
    pub(crate) fn classify(&self, status: u16, info: &ErrorInfo, retry_after: Option<Duration>) -> Failure {
        let detail = self.scrub(&info.message);
        let words = format!("{} {} {}", info.message, info.kind, info.code).to_lowercase();
        let provider = self.provider.to_owned();
        let fatal = Failure::Fatal;
        if status == 401
            || status == 403
            || matches!(info.kind.as_str(), "authentication_error" | "permission_error")
            || info.code == "invalid_api_key"
        {
            return fatal(ProviderError::BadKey {
                provider,
                env_var: self.key_env.to_owned(),
                detail,
            });
        }
        // A spent quota is reported as 429 but waiting does not bring it back.
        if (status == 429 && info.code != "insufficient_quota") || (500..=599).contains(&status) {
            return Failure::Busy {
                reason: format!("HTTP {status}: {detail}"),
                retry_after,
            };
        }
        const OVERFLOW: [&str; 6] = [
            "prompt is too long",
            "context_length_exceeded",
            "maximum context length",
            "context window",
            "exceed_context_size",
            "exceeds the available context",
        ];
        if status == 413 || OVERFLOW.iter().any(|phrase| words.contains(phrase)) {
            return fatal(ProviderError::ContextOverflow { detail });
        }
        let says_model_missing = info.code == "model_not_found"
            || (words.contains("model")
                && [
                    "not found",
                    "not_found",
                    "does not exist",
                    "unknown model",
                    "no such model",
                ]
                .iter()
                .any(|phrase| words.contains(phrase)));
        // A bare 404 means the base URL is wrong, not the model.
        if says_model_missing || (status == 404 && words.contains("model")) {
            return fatal(ProviderError::UnknownModel {
                provider,
                model: self.model.to_owned(),
                detail,
            });
        }
        let detail = if status == 404 {
            format!(
                "no such endpoint {} ({detail}); check the base URL ({})",
                self.url, self.base_url_env
            )
        } else {
            detail
        };
        fatal(ProviderError::Rejected {
            provider,
            status,
            detail,
        })
    }

    /// Removes the key (and anything that looks like one) from server text,
    /// which sometimes echoes part of the key back.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut text = match self.key.map(Secret::expose) {
            Some(key) if !key.is_empty() => text.replace(key, "***"),
            _ => text.to_owned(),
        };
        if text.contains("sk-") {
            text = text
                .split(' ')
                .map(|word| if word.starts_with("sk-") { "sk-***" } else { word })
                .collect::<Vec<_>>()
                .join(" ");
        }
        let text = text.trim();
        match text.char_indices().nth(MAX_DETAIL_CHARS) {
            Some((cut, _)) => format!("{}...", &text[..cut]),
            None if text.is_empty() => "no details given".to_owned(),
            None => text.to_owned(),
        }
    }
}

/// What an error body says, in the shapes servers use: Anthropic's
/// `{"type":"error","error":{"type","message"}}`, OpenAI's
/// `{"error":{"message","type","code"}}`, `{"error":"text"}`, or plain text.
#[derive(Debug, Default)]
pub(crate) struct ErrorInfo {
    pub message: String,
    pub kind: String,
    pub code: String,
}

impl ErrorInfo {
    pub(crate) fn from_body(body: &str) -> Self {
        match serde_json::from_str::<Value>(body) {
            Ok(value) if value.is_object() => Self::from_value(&value),
            _ => ErrorInfo {
                message: body.to_owned(),
                ..ErrorInfo::default()
            },
        }
    }

    pub(crate) fn from_value(value: &Value) -> Self {
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        match value.get("error") {
            Some(Value::String(message)) => ErrorInfo {
                message: message.clone(),
                ..ErrorInfo::default()
            },
            Some(error @ Value::Object(_)) => ErrorInfo {
                message: text(error.get("message")),
                kind: text(error.get("type")),
                code: text(error.get("code")),
            },
            _ => ErrorInfo {
                message: text(value.get("message").or_else(|| value.get("detail"))),
                ..ErrorInfo::default()
            },
        }
    }
}

/// Runs `attempt` until it succeeds, fails for good, or the policy's
/// retries are spent, reporting [`StreamEvent::Retry`] before each pause.
/// An attempt that already streamed deltas is retried from the start.
/// All of it ends by the turn's deadline ([`TurnLimits::turn_timeout`]):
/// `attempt` is given the time left, and a failure or a wait that reaches
/// the deadline ends the turn with [`ProviderError::TurnTimeout`].
pub(crate) fn with_retries<T>(
    provider: &str,
    policy: &RetryPolicy,
    limits: &TurnLimits,
    request: &super::ModelRequest<'_>,
    on_event: &mut dyn FnMut(StreamEvent),
    mut attempt: impl FnMut(&mut dyn FnMut(StreamEvent), Duration) -> Result<T, Failure>,
) -> Result<T, ProviderError> {
    let deadline = Instant::now() + limits.turn_timeout;
    let timed_out = |detail: String| ProviderError::TurnTimeout {
        provider: provider.to_owned(),
        secs: limits.turn_timeout.as_secs().max(1),
        detail,
    };
    let mut failures = 0u32;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let failure = match attempt(on_event, left) {
            Ok(value) => return Ok(value),
            Err(failure) => failure,
        };
        failures += 1;
        if Instant::now() >= deadline {
            match failure {
                Failure::Fatal(error) => return Err(error),
                Failure::Busy { reason, .. } | Failure::Broken { reason } => return Err(timed_out(reason)),
                Failure::Unreachable(error) => return Err(timed_out(error.to_string())),
            }
        }
        let (reason, retry_after) = match failure {
            Failure::Fatal(error) => return Err(error),
            Failure::Busy { reason, .. } if failures > policy.max_retries => {
                return Err(ProviderError::Exhausted {
                    provider: provider.to_owned(),
                    attempts: failures,
                    detail: reason,
                });
            }
            Failure::Unreachable(error) if failures > policy.max_retries => return Err(error),
            Failure::Broken { reason } if failures > policy.max_retries => {
                let detail = format!("{reason} (tried {failures} times)");
                return Err(ProviderError::MalformedStream {
                    provider: provider.to_owned(),
                    detail,
                });
            }
            Failure::Busy {
                reason,
                retry_after: Some(asked),
            } if asked > policy.max_retry_after => {
                // Honoured means not retrying sooner than asked: a wait this
                // long is the person's to take, not a silent sleep.
                return Err(ProviderError::WaitAsked {
                    provider: provider.to_owned(),
                    wait_secs: asked.as_secs_f64().ceil() as u64,
                    detail: reason,
                });
            }
            Failure::Busy { reason, retry_after } => (reason, retry_after),
            Failure::Broken { reason } => (reason, None),
            Failure::Unreachable(error) => (error.to_string(), None),
        };
        let wait = policy.delay(failures, retry_after);
        if Instant::now() + wait >= deadline {
            return Err(timed_out(reason));
        }
        on_event(StreamEvent::Retry {
            attempt: failures,
            wait,
            reason,
        });
        // In slices, so that stopping the run ends the wait.
        let until = std::time::Instant::now() + wait;
        loop {
            if request.stopped() {
                return Err(ProviderError::Stopped {
                    provider: provider.to_owned(),
                });
            }
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

/// Whether the host name did not resolve (no network, no DNS, a mistyped
/// URL), and if so whether it may pass (`Some(true)`: the resolver could not
/// answer right now, EAI_AGAIN) or will not (`Some(false)`: the name is not
/// known). The resolver's error has no `ErrorKind` of its own, only words.
fn name_lookup_failure(e: &io::Error) -> Option<bool> {
    let text = e.to_string().to_ascii_lowercase();
    let passing = ["temporary failure in name resolution", "try again"];
    let lasting = [
        "failed to lookup address",
        "name resolution",
        "name or service not known",
        "nodename nor servname",
        "no such host",
    ];
    if passing.iter().any(|w| text.contains(w)) {
        Some(true)
    } else if lasting.iter().any(|w| text.contains(w)) {
        Some(false)
    } else {
        None
    }
}

/// How long the server asks us to wait: `retry-after-ms`, else
/// `retry-after` in seconds or as an HTTP-date.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let seconds = |text: &str, scale: f64| {
        text.parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
            .map(|n| Duration::from_secs_f64(n / scale))
    };
    if let Some(wait) = header("retry-after-ms").and_then(|ms| seconds(ms, 1000.0)) {
        return Some(wait);
    }
    let value = header("retry-after")?;
    seconds(value, 1.0).or_else(|| {
        let at = parse_http_date(value)?;
        Some(at.duration_since(now).unwrap_or(Duration::ZERO))
    })
}

/// Parses an HTTP-date: the IMF-fixdate servers send ("Sun, 06 Nov 1994
/// 08:49:37 GMT") and the two obsolete forms RFC 9110 says a recipient must
/// also accept.
pub(crate) fn parse_http_date(text: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(input: &str) -> (Vec<(String, String)>, Option<String>) {
        // One byte at a time, so every line break falls across a read.
        let reader = io::BufReader::with_capacity(1, input.as_bytes());
        let mut sse = SseReader::new(reader);
        let mut out = Vec::new();
        loop {
            match sse.next_event() {
                Ok(Some(ev)) => out.push((ev.event, ev.data)),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(format!("{e:?}"))),
            }
        }
    }

    fn pair(event: &str, data: &str) -> (String, String) {
        (event.to_owned(), data.to_owned())
    }

    #[test]
    fn events_with_names_multi_line_data_and_comments() {
        let input = ": hello\nevent: a\ndata: 1\ndata:2\n\ndata: {\"x\": 1}\n\n";
        assert_eq!(
            events(input),
            (vec![pair("a", "1\n2"), pair("message", "{\"x\": 1}")], None)
        );
    }

    #[test]
    fn crlf_and_lone_cr_end_lines() {
        let input = "\u{feff}event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\r";
        assert_eq!(events(input), (vec![pair("a", "1"), pair("b", "2")], None));
    }

    #[test]
    fn an_event_without_data_is_not_dispatched() {
        assert_eq!(events("event: ping\n\ndata: x\n\n"), (vec![pair("message", "x")], None));
    }

    #[test]
    fn field_without_colon_and_unknown_fields() {
        assert_eq!(events("id: 7\nretry: 10\ndata\n\n"), (vec![pair("message", "")], None));
    }

    #[test]
    fn a_stream_ending_mid_event_is_an_error() {
        let (got, err) = events("data: 1\n\nevent: a\ndata: 2\n");
        assert_eq!(got, vec![pair("message", "1")]);
        assert_eq!(err.as_deref(), Some("EndedMidEvent"));
        assert_eq!(events("data: 1\n\ndata: par").1.as_deref(), Some("EndedMidEvent"));
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut sse = SseReader::new(&b"data: \xff\n\n"[..]);
        assert!(matches!(sse.next_event(), Err(SseError::NotUtf8)));
    }

    #[test]
    fn http_dates() {
        let at = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            784_111_777
        );
        let leap = parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT").unwrap();
        assert_eq!(
            leap.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            1_709_164_800
        );
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(at));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(at));
        assert!(parse_http_date("Sun, 06 Nov 1994 08:49 GMT").is_none());
    }

    #[test]
    fn retry_after_headers() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_700);
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), None);
        headers.insert("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(77)));
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", "150".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_millis(150)));
    }
}
