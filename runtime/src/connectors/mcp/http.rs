//! The Streamable HTTP client transport for remote connectors, over ureq
//! (already deskhand's HTTP client) instead of rmcp's reqwest transport,
//! which would add a second HTTP stack of about 56 crates.
//!
//! Each JSON-RPC message deskhand sends is one `POST` to the server's URL
//! (`Accept: application/json, text/event-stream`); the answer is a JSON body
//! or an SSE stream of messages (the response, and any request or
//! notification the server sends first), handed to rmcp in order. The
//! `Mcp-Session-Id` the server assigns and the protocol revision agreed are
//! sent back with every later request; the session is ended with `DELETE`
//! when the connector is shut down.
//!
//! Why it asks the egress before every request, not once: a remote
//! connector is started once per run and reused by later steps, and each
//! step declares its own hosts. [`crate::egress::Run::decide`] answers for
//! the step running now (and the sealed-after-private-read rule), and a
//! refusal is journaled as Blocked. Redirects are not followed (a redirect
//! could lead to a host no one decided on), no proxy from the environment is
//! used, and plain `http://` is refused except to this machine's loopback.
//!
//! What a server says unprompted (a changed tool list) comes over a
//! listening stream (`subscriptions/listen`, or the `GET` stream of earlier
//! revisions), opened once the connection is set up (`Shared::listen`).
//! Not done here: resuming a broken stream. OAuth sign-in is in
//! [`crate::connectors::oauth`]; this transport sends the token it got and
//! renews it when it ends or the server refuses it.

use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rmcp::RoleClient;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::sync::mpsc;

use crate::connectors::oauth::{self, SignIn};
use crate::egress::{self, Exit};

/// Largest message (a JSON body or one SSE event) read from a server.
const MAX_MESSAGE: usize = 16 << 20;
/// Bytes of an error answer kept to explain it.
const MAX_PROBLEM_BODY: u64 = 2048;
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A backstop for one request's answer; calls have their own, shorter, limits above.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(600);
/// How a listening stream ended.
enum Listened {
    /// It ended or broke, or was no longer allowed: open another later.
    Ended,
    /// The server offers none (or refused the subscription): not asked again.
    Refused,
}

/// The `_meta` keys a `subscriptions/listen` carries from the connection's requests.
const META_KEPT: [&str; 3] = [
    "io.modelcontextprotocol/protocolVersion",
    "io.modelcontextprotocol/clientInfo",
    "io.modelcontextprotocol/clientCapabilities",
];
/// Largest event read from a listening stream (a change notification is tiny).
const MAX_LISTENED: usize = 64 << 10;

/// The notifications taken from a listening stream.
const LISTENED: [&str; 4] = [
    "notifications/tools/list_changed",
    "notifications/prompts/list_changed",
    "notifications/resources/list_changed",
    "notifications/resources/updated",
];
/// Tells the client its tool list may have changed (it lists again at next
/// use): a fresh notification, none of the server's words in it.
fn relist(tx: &mpsc::UnboundedSender<ServerJsonRpcMessage>) {
    let changed = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
    if let Ok(m) = serde_json::from_value::<ServerJsonRpcMessage>(changed) {
        let _ = tx.send(m);
    }
}

/// The `_meta` key naming a 2026-07-28 request's revision.
const VERSION_META: &str = "io.modelcontextprotocol/protocolVersion";

/// The `data` of each event of an SSE stream, until it ends or breaks (or
/// a line or an event grows past `max` bytes).
fn sse_data(mut reader: impl BufRead, max: usize) -> impl Iterator<Item = String> {
    let mut line = String::new();
    std::iter::from_fn(move || {
        let mut data = String::new();
        loop {
            line.clear();
            let n = (&mut reader).take(max as u64 + 1).read_line(&mut line).ok()?;
            if n > max {
                return None;
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if n == 0 {
                return (!data.is_empty()).then_some(std::mem::take(&mut data));
            }
            if l.is_empty() {
                if !data.is_empty() {
                    return Some(data);
                }
                continue;
            }
            if let Some(v) = l.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
                if data.len() > max {
                    return None;
                }
            }
        }
    })
}

/// How long one listening stream stays open before it is reopened (and the
/// egress asked again).
const LISTEN_FOR: Duration = Duration::from_secs(20);
/// The first protocol revision whose requests carry `Mcp-Method` and `Mcp-Name`.
const STANDARD_HEADERS: &str = "2026-07-28";

/// Why a request to a remote server failed, in words for the person.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(pub String);

/// What the transport tells its client besides rmcp's errors.
#[derive(Debug, Default)]
pub struct Status {
    /// The last failure, in words for the person.
    pub problem: Mutex<Option<String>>,
    /// The server no longer knows the session (HTTP 404 to a request that
    /// carried it): this connection is of no more use, a new one is needed.
    pub ended: AtomicBool,
}

/// Where a remote connector is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    /// Lower case, without brackets.
    pub host: String,
    pub port: u16,
}

/// Checks a remote connector's URL: `https://`, or `http://` to this
/// machine's loopback only (nothing else may cross a network in the clear),
/// and no credentials in the URL (they belong in a header).
pub fn endpoint(name: &str, url: &str) -> Result<Endpoint, String> {
    let bad = |why: &str| format!("the remote connector {name}'s URL {url:?} {why}");
    let uri: ureq::http::Uri = url.parse().map_err(|e| bad(&format!("is not a URL ({e})")))?;
    let Some(authority) = uri.authority() else {
        return Err(bad("has no host"));
    };
    if authority.as_str().contains('@') {
        return Err(bad(
            "carries credentials; give the server's URL without them and pass the token as a header (--header \
             'Authorization: Bearer ${TOKEN_VAR}')",
        ));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = match (uri.scheme_str(), authority.port_u16()) {
        (Some("https"), p) => p.unwrap_or(443),
        (Some("http"), p) if is_loopback(&host) => p.unwrap_or(80),
        (Some("http"), _) => {
            return Err(bad(
                "is plain http to another machine, which anyone on the way could read; use its https:// URL",
            ));
        }
        _ => return Err(bad("is not http(s)")),
    };
    Ok(Endpoint {
        url: url.to_owned(),
        host,
        port,
    })
}

/// This machine's own loopback: `localhost`, 127.0.0.0/8, `::1`.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What became of one request.
enum Sent {
    /// Answered (or failed with words already given).
    Done,
    /// HTTP 401.
    Refused,
}

/// What every request of one connection shares.
struct Shared {
    name: String,
    endpoint: Endpoint,
    /// The person's headers, their `${VAR}`s already filled in.
    headers: Vec<(String, String)>,
    /// The person's sign-in, when the connector uses one.
    bearer: Option<Mutex<Bearer>>,
    agent: ureq::Agent,
    /// The run's egress; `None` only when the person started the connector
    /// themselves (`deskhand connectors add/test`): their command is the approval.
    egress: Option<Arc<egress::Run>>,
    session: Mutex<Option<String>>,
    protocol: Mutex<Option<String>>,
    status: Arc<Status>,
    /// The `_meta` of the last request of the 2026-07-28 lifecycle (its
    /// revision, client info and capabilities), which a `subscriptions/listen` carries too.
    meta: Mutex<Option<serde_json::Value>>,
    /// The listening stream ([`Shared::listen`]) was started.
    listening: AtomicBool,
    /// The connector is being shut down: the listening stream stops.
    closed: AtomicBool,
}

/// rmcp's transport for one remote connector.
pub struct HttpTransport {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<ServerJsonRpcMessage>,
    rx: mpsc::UnboundedReceiver<ServerJsonRpcMessage>,
}

/// deskhand's HTTP client for remote servers (a connector, its sign-in):
/// redirects are not followed (a redirect could lead to a host no one decided
/// on), no proxy is taken from the environment, HTTP errors are answers.
pub fn agent(answer_timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .proxy(None)
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_recv_response(Some(answer_timeout))
        .timeout_recv_body(Some(answer_timeout))
        .user_agent(concat!("deskhand/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// A remote connector's OAuth sign-in, as one connection uses it: the token
/// is sent as `Authorization: Bearer`, and renewed (and kept again in the
/// config folder) when it ends or the server refuses it.
#[derive(Debug)]
pub struct Bearer {
    pub config_dir: Option<std::path::PathBuf>,
    /// The connector's key ([`crate::connectors::Connector::key`]).
    pub key: String,
    pub current: SignIn,
}

impl HttpTransport {
    pub fn new(
        name: &str,
        endpoint: Endpoint,
        headers: Vec<(String, String)>,
        egress: Option<Arc<egress::Run>>,
        status: Arc<Status>,
    ) -> HttpTransport {
        HttpTransport::signed_in(name, endpoint, headers, None, egress, status)
    }

    /// A transport that sends `bearer`'s token (unless the person's own
    /// headers carry an Authorization header: theirs is used).
    pub fn signed_in(
        name: &str,
        endpoint: Endpoint,
        headers: Vec<(String, String)>,
        bearer: Option<Bearer>,
        egress: Option<Arc<egress::Run>>,
        status: Arc<Status>,
    ) -> HttpTransport {
        let bearer = bearer
            .filter(|_| !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization")))
            .map(Mutex::new);
        let agent = agent(ANSWER_TIMEOUT);
        let (tx, rx) = mpsc::unbounded_channel();
        HttpTransport {
            shared: Arc::new(Shared {
                name: name.to_owned(),
                endpoint,
                headers,
                bearer,
                agent,
                egress,
                session: Mutex::new(None),
                protocol: Mutex::new(None),
                status,
                meta: Mutex::new(None),
                listening: AtomicBool::new(false),
                closed: AtomicBool::new(false),
            }),
            tx,
            rx,
        }
    }
}

impl Transport<RoleClient> for HttpTransport {
    type Error = HttpError;

    fn send(&mut self, item: ClientJsonRpcMessage) -> impl Future<Output = Result<(), HttpError>> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        let tx = self.tx.clone();
        async move {
            // Once the connection is set up (its first request past the
            // handshake answered), the server may speak unprompted.
            let value = serde_json::to_value(&item).unwrap_or_default();
            let method = value.get("method").and_then(|m| m.as_str()).unwrap_or_default();
            let set_up = value.get("id").is_some() && !matches!(method, "" | "server/discover" | "initialize" | "ping");
            // The lifecycle the connection settled on: a request past the
            // handshake carries the 2026-07-28 `_meta` or it does not (a
            // refused `server/discover` leaves none behind). Only the
            // revision, client info and capabilities are kept.
            if set_up {
                *lock(&shared.meta) = value
                    .pointer("/params/_meta")
                    .filter(|m| m.get(VERSION_META).is_some())
                    .map(|m| {
                        let kept: serde_json::Map<String, serde_json::Value> = m
                            .as_object()
                            .into_iter()
                            .flatten()
                            .filter(|(k, _)| META_KEPT.contains(&k.as_str()))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        serde_json::Value::Object(kept)
                    });
            }
            let sent = {
                let shared = Arc::clone(&shared);
                let tx = tx.clone();
                tokio::task::spawn_blocking(move || shared.post(&item, &tx))
                    .await
                    .map_err(|e| HttpError(format!("a request to a remote connector stopped: {e}")))?
            };
            if sent.is_ok() && set_up && !shared.listening.swap(true, Ordering::SeqCst) {
                // Without a thread there is simply no live list (it is read at each start).
                let _ = std::thread::Builder::new()
                    .name(format!("deskhand-listen-{}", shared.name))
                    .spawn(move || shared.listen(&tx));
            }
            sent
        }
    }

    fn receive(&mut self) -> impl Future<Output = Option<ServerJsonRpcMessage>> + Send {
        self.rx.recv()
    }

    fn close(&mut self) -> impl Future<Output = Result<(), HttpError>> + Send {
        let shared = Arc::clone(&self.shared);
        shared.closed.store(true, Ordering::SeqCst);
        async move {
            let _ = tokio::task::spawn_blocking(move || shared.end_session()).await;
            Ok(())
        }
    }
}

impl Shared {
    /// Remembers `words` as the failure to tell the person, and returns it as the error.
    fn fail(&self, words: String) -> HttpError {
        *lock(&self.status.problem) = Some(words.clone());
        HttpError(words)
    }

    /// A request whose answer ended without its response.
    fn unanswered(&self) -> HttpError {
        self.fail(format!(
            "the remote connector {} ended its answer without the response deskhand asked for",
            self.name
        ))
    }

    /// Asks the run's egress whether this request may leave now.
    fn allowed(&self) -> Result<(), HttpError> {
        match &self.egress {
            Some(run) => run
                .decide(
                    &Exit::Remote(self.name.clone()),
                    &self.endpoint.host,
                    self.endpoint.port,
                )
                .map_err(|reason| self.fail(reason)),
            None => Ok(()),
        }
    }

    fn with_headers<B>(&self, mut req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        if let Some(s) = lock(&self.session).as_deref() {
            req = req.header("Mcp-Session-Id", s);
        }
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(b) = &self.bearer {
            req = req.header("Authorization", format!("Bearer {}", lock(b).current.access_token));
        }
        req
    }

    /// Renews the sign-in (when `only_if_expired`, only a token that has
    /// ended); in a run, the run's egress decides the token endpoint first.
    fn renew(&self, only_if_expired: bool) -> Result<(), HttpError> {
        let Some(b) = &self.bearer else {
            return Ok(());
        };
        let mut b = lock(b);
        if only_if_expired && !b.current.expired() {
            return Ok(());
        }
        if let Some(run) = &self.egress {
            let (host, port) = b.current.token_host().map_err(|e| self.fail(e))?;
            run.decide_renewal(&self.name, &host, port).map_err(|e| self.fail(e))?;
        }
        let renewed =
            oauth::renew(b.config_dir.as_deref(), &b.key, &self.name, &b.current).map_err(|e| self.fail(e))?;
        b.current = renewed;
        Ok(())
    }

    /// Sends one message (renewing the sign-in once if the server refuses its token).
    fn post(
        &self,
        message: &ClientJsonRpcMessage,
        tx: &mpsc::UnboundedSender<ServerJsonRpcMessage>,
    ) -> Result<(), HttpError> {
        // The connector's own host first: a step that may not reach it renews nothing.
        self.allowed()?;
        self.renew(true)?;
        match self.post_once(message, tx)? {
            Sent::Done => Ok(()),
            Sent::Refused if self.bearer.is_some() => {
                let renewable = self
                    .bearer
                    .as_ref()
                    .is_some_and(|b| lock(b).current.refresh_token.is_some());
                if renewable {
                    self.renew(false)?;
                    if let Sent::Done = self.post_once(message, tx)? {
                        return Ok(());
                    }
                }
                Err(self.fail(format!(
                    "the remote connector {} refused deskhand's sign-in (HTTP 401: it expired or was revoked); sign in \
                     again: deskhand connectors login {} (or Sign in on the Connectors page)",
                    self.name, self.name
                )))
            }
            Sent::Refused => Err(self.fail(sign_in_words(
                &self.name,
                &self.endpoint.url,
                self.headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("authorization")),
            ))),
        }
    }

    /// Sends one message and hands what the server answers to rmcp; a 401 is
    /// handed back for [`Shared::post`] to answer.
    fn post_once(
        &self,
        message: &ClientJsonRpcMessage,
        tx: &mpsc::UnboundedSender<ServerJsonRpcMessage>,
    ) -> Result<Sent, HttpError> {
        let value = serde_json::to_value(message).map_err(|e| HttpError(e.to_string()))?;
        // The id of a request (a response deskhand sends has an id too, but no method).
        let id = value.get("method").and(value.get("id")).cloned();
        self.allowed()?;
        let mut req = self
            .agent
            .post(&self.endpoint.url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream");
        let version = request_version(&value).or_else(|| lock(&self.protocol).clone());
        if let Some(v) = &version {
            req = req.header("MCP-Protocol-Version", v.as_str());
            if v.as_str() >= STANDARD_HEADERS {
                for (k, v) in standard_headers(&value) {
                    req = req.header(k, v);
                }
            }
        }
        let with_session = lock(&self.session).is_some();
        let req = self.with_headers(req);
        let body = serde_json::to_vec(&value).map_err(|e| HttpError(e.to_string()))?;
        let mut answer = req.send(&body[..]).map_err(|e| {
            self.fail(format!(
                "the remote connector {} could not be reached at {}: {e}",
                self.name, self.endpoint.url
            ))
        })?;
        if let Some(s) = answer.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
            let mut session = lock(&self.session);
            if session.is_none() {
                *session = Some(s.to_owned());
            }
        }
        let status = answer.status().as_u16();
        let kind = answer
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if status == 401 {
            return Ok(Sent::Refused);
        }
        let mut answered = || match status {
            200..=299 if kind.starts_with("text/event-stream") => {
                let reader = BufReader::new(answer.body_mut().as_reader());
                self.read_events(reader, id.as_ref(), tx)
            }
            200..=299 => {
                let bytes = answer
                    .body_mut()
                    .with_config()
                    .limit(MAX_MESSAGE as u64)
                    .read_to_vec()
                    .map_err(|e| {
                        self.fail(format!(
                            "the remote connector {} sent an answer deskhand could not read: {e}",
                            self.name
                        ))
                    })?;
                // Nothing is awaited for a notification or a response deskhand sent
                // (some servers answer those with JSON instead of 202).
                if id.is_none() {
                    return Ok(());
                }
                if !bytes.iter().all(u8::is_ascii_whitespace) && self.deliver(&bytes, id.as_ref(), tx)? {
                    return Ok(());
                }
                Err(self.unanswered())
            }
            300..=399 => {
                let to = answer
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("somewhere else")
                    .to_owned();
                Err(self.fail(format!(
                    "the remote connector {} answered with a redirect to {to}; deskhand does not follow redirects (the \
                     network policy decides each host): put the address it redirects to in the connector list",
                    self.name
                )))
            }
            404 if with_session => {
                // The server restarted or expired the session: a new connection
                // starts a new one (the request was not handled, so it may be sent again).
                self.status.ended.store(true, Ordering::SeqCst);
                lock(&self.session).take();
                Err(self.fail(format!(
                    "the remote connector {} no longer knows deskhand's session (HTTP 404); it is connected to again",
                    self.name
                )))
            }
            _ => {
                let text = problem_body(answer.body_mut());
                // A JSON-RPC error for a request goes to the request, correlated even
                // if the server could not echo its id (a sessionless `server/discover`
                // rejected by an older server: the client then falls back to `initialize`).
                if id.is_some()
                    && serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| v.get("error").is_some())
                {
                    return self.deliver(text.as_bytes(), id.as_ref(), tx).map(|_| ());
                }
                Err(self.fail(format!(
                    "the remote connector {} answered HTTP {status}{}",
                    self.name,
                    if text.trim().is_empty() {
                        String::new()
                    } else {
                        format!(": {}", text.trim())
                    }
                )))
            }
        };
        answered().map(|()| Sent::Done)
    }

    /// Reads an SSE answer until the response to `id` arrived (or the stream ends).
    fn read_events(
        &self,
        mut reader: impl BufRead,
        id: Option<&serde_json::Value>,
        tx: &mpsc::UnboundedSender<ServerJsonRpcMessage>,
    ) -> Result<(), HttpError> {
        let mut data = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            let n = (&mut reader)
                .take(MAX_MESSAGE as u64 + 1)
                .read_line(&mut line)
                .map_err(|e| self.fail(format!("the remote connector {}'s answer broke off: {e}", self.name)))?;
            let line = line.trim_end_matches(['\r', '\n']);
            if n == 0 || line.is_empty() {
                if !data.trim().is_empty() {
                    let answered = self.deliver(data.as_bytes(), id, tx)?;
                    data.clear();
                    if answered {
                        return Ok(());
                    }
                }
                data.clear();
                if n == 0 {
                    // Resuming a broken stream (GET with Last-Event-ID) is not done:
                    // the request fails now rather than wait for its time limit.
                    return if id.is_some() { Err(self.unanswered()) } else { Ok(()) };
                }
                continue;
            }
            if let Some(value) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value.strip_prefix(' ').unwrap_or(value));
                if data.len() > MAX_MESSAGE {
                    return Err(self.fail(format!(
                        "the remote connector {} sent a message larger than {} MB",
                        self.name,
                        MAX_MESSAGE >> 20
                    )));
                }
            }
            // `event:`, `id:`, `retry:` and `:` comments: nothing deskhand needs.
        }
    }

    /// Hands one JSON body (a message or a batch) to rmcp. Returns whether it
    /// held the response to `id`.
    fn deliver(
        &self,
        bytes: &[u8],
        id: Option<&serde_json::Value>,
        tx: &mpsc::UnboundedSender<ServerJsonRpcMessage>,
    ) -> Result<bool, HttpError> {
        let unreadable = |e: serde_json::Error| {
            self.fail(format!(
                "the remote connector {} sent a message deskhand could not read: {e}",
                self.name
            ))
        };
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(unreadable)?;
        let messages = match value {
            serde_json::Value::Array(all) => all,
            one => vec![one],
        };
        let mut answered = false;
        for mut m in messages {
            let is_answer = m.get("result").is_some() || m.get("error").is_some();
            if is_answer
                && m.get("error").is_some()
                && m.get("id").is_none_or(serde_json::Value::is_null)
                && let Some(id) = id
            {
                m["id"] = id.clone();
            }
            if is_answer && id.is_some() && m.get("id") == id {
                answered = true;
                if let Some(v) = m.pointer("/result/protocolVersion").and_then(|v| v.as_str())
                    && m.pointer("/result/serverInfo").is_some()
                {
                    *lock(&self.protocol) = Some(v.to_owned());
                }
            }
            let excerpt: String = m.to_string().chars().take(200).collect();
            let message: ServerJsonRpcMessage = serde_json::from_value(m).map_err(|e| {
                self.fail(format!(
                    "the remote connector {} sent a message deskhand could not read ({e}): {excerpt}",
                    self.name
                ))
            })?;
            // rmcp stopped listening: the connector is being shut down.
            let _ = tx.send(message);
        }
        Ok(answered)
    }

    /// The listening stream, over which a server says what it says
    /// unprompted (above all `tools/list_changed`, so the tool list is live
    /// and a changed tool is quarantined at the next call): a
    /// `subscriptions/listen` request at 2026-07-28 and later, else the `GET`
    /// stream of earlier revisions. Only change notifications are taken from
    /// it, as a bare flag (nothing the server wrote reaches further). It
    /// carries nothing a model wrote (the session, the revision, the
    /// person's headers), so it is opened only while the run's egress allows
    /// the host without asking it anew (no Blocked event for a stream no step
    /// asked for), is cut as soon as it no longer does, is opened at most
    /// every [`LISTEN_FOR`], and never after the run ended. A server that
    /// offers no stream is not asked again; a failure is tried again later.
    fn listen(&self, tx: &mpsc::UnboundedSender<ServerJsonRpcMessage>) {
        let agent = agent(LISTEN_FOR);
        let allowed = || {
            self.egress
                .as_ref()
                .is_none_or(|run| !run.is_ended() && run.allows(&self.endpoint.host, self.endpoint.port))
        };
        let going = || !self.closed.load(Ordering::SeqCst) && !tx.is_closed();
        let mut n = 0;
        while going() {
            if self.egress.as_ref().is_some_and(|run| run.is_ended()) {
                return;
            }
            if !allowed() {
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            let opened = Instant::now();
            n += 1;
            match self.listen_once(&agent, n, tx, &allowed) {
                Listened::Refused => return,
                Listened::Ended => {}
            }
            // At most one opening per LISTEN_FOR, whatever the server does.
            while going() && opened.elapsed() < LISTEN_FOR {
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }

    /// One listening stream, read until it ends, breaks or is no longer allowed.
    fn listen_once(
        &self,
        agent: &ureq::Agent,
        n: u32,
        tx: &mpsc::UnboundedSender<ServerJsonRpcMessage>,
        allowed: &dyn Fn() -> bool,
    ) -> Listened {
        let meta = lock(&self.meta).clone();
        let sent = match &meta {
            Some(meta) => {
                let body = serde_json::json!({
                    "jsonrpc": "2.0", "id": format!("deskhand-listen-{n}"), "method": "subscriptions/listen",
                    "params": {"notifications": {"toolsListChanged": true}, "_meta": meta}
                });
                let mut req = agent
                    .post(&self.endpoint.url)
                    .header("Content-Type", "application/json")
                    .header("Accept", "application/json, text/event-stream")
                    .header("Mcp-Method", "subscriptions/listen");
                if let Some(v) = meta.get(VERSION_META).and_then(|v| v.as_str()) {
                    req = req.header("MCP-Protocol-Version", v);
                }
                self.with_headers(req).send(body.to_string().as_bytes())
            }
            None => {
                let mut req = agent.get(&self.endpoint.url).header("Accept", "text/event-stream");
                if let Some(v) = lock(&self.protocol).as_deref() {
                    req = req.header("MCP-Protocol-Version", v);
                }
                self.with_headers(req).call()
            }
        };
        // Not reached now (the network, a busy server, a token renewed meanwhile): later.
        let Ok(mut answer) = sent else {
            return Listened::Ended;
        };
        let status = answer.status().as_u16();
        let streams = answer
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|k| k.to_ascii_lowercase().starts_with("text/event-stream"));
        if matches!(status, 400 | 404 | 405) || ((200..300).contains(&status) && !streams) {
            return Listened::Refused;
        }
        if !(200..300).contains(&status) {
            return Listened::Ended;
        }
        // Change events are level triggers: whatever changed before this
        // stream was open is fetched again once it is (the next use re-lists).
        if meta.is_none() {
            relist(tx);
        }
        let reader = BufReader::new(answer.body_mut().as_reader());
        for data in sse_data(reader, MAX_LISTENED) {
            if !allowed() {
                break;
            }
            let Ok(m) = serde_json::from_str::<serde_json::Value>(&data) else {
                continue;
            };
            let method = m.get("method").and_then(|v| v.as_str()).unwrap_or_default();
            if method == "notifications/subscriptions/acknowledged" || LISTENED.contains(&method) {
                relist(tx);
            } else if m.get("id").and_then(|i| i.as_str()) == Some(&format!("deskhand-listen-{n}")) {
                // The server answered the subscription (refused it, or ended it).
                return Listened::Refused;
            }
        }
        Listened::Ended
    }

    /// Ends the server's session (`DELETE`), if there is one and the policy
    /// still allows the host: when it does not, the session simply expires
    /// on the server.
    fn end_session(&self) {
        let Some(session) = lock(&self.session).take() else {
            return;
        };
        if let Some(run) = &self.egress
            && !run.allows(&self.endpoint.host, self.endpoint.port)
        {
            return;
        }
        let mut req = self
            .agent
            .delete(&self.endpoint.url)
            .header("Mcp-Session-Id", session.as_str());
        if let Some(v) = lock(&self.protocol).as_deref() {
            req = req.header("MCP-Protocol-Version", v);
        }
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(b) = &self.bearer {
            req = req.header("Authorization", format!("Bearer {}", lock(b).current.access_token));
        }
        let _ = req.call();
    }
}

impl Shared {
    #[cfg(test)]
    fn session(&self) -> Option<String> {
        lock(&self.session).clone()
    }
}

/// What the person is told when a server answers 401 to a connector that is
/// not signed in: sign in (OAuth), or, with their own token header, check it.
/// The server's own `WWW-Authenticate` text is left out: these words may
/// reach a model, and the sign-in reads it itself.
fn sign_in_words(name: &str, url: &str, own_header: bool) -> String {
    if own_header {
        return format!(
            "the remote connector {name} refused deskhand's credentials (HTTP 401); check the token its headers pass \
             (`deskhand connectors show {name}`) and that its variable is set in deskhand's environment"
        );
    }
    format!(
        "the remote connector {name} asks you to sign in (HTTP 401): deskhand connectors login {name} (or Sign \
         in on the Connectors page). If the service gives you an access token instead, put it in a variable of \
         deskhand's environment and pass it as a header: deskhand connectors add {name} --url {url} --header \
         'Authorization: Bearer ${{TOKEN_VAR}}'"
    )
}

/// The first bytes of an error answer, as text.
fn problem_body(body: &mut ureq::Body) -> String {
    let mut bytes = Vec::new();
    let _ = body.as_reader().take(MAX_PROBLEM_BODY).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The revision a request of the 2026-07-28 lifecycle carries in its `_meta`.
fn request_version(value: &serde_json::Value) -> Option<String> {
    value
        .pointer("/params/_meta")
        .and_then(|m| m.get("io.modelcontextprotocol/protocolVersion"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

/// `Mcp-Method` and `Mcp-Name` (from 2026-07-28 on), which let a server route
/// a request without reading its body. Names that are not plain header text
/// are left out (a server then reads the body).
fn standard_headers(value: &serde_json::Value) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let Some(method) = value.get("method").and_then(|m| m.as_str()) else {
        return out;
    };
    out.push(("Mcp-Method", method.to_owned()));
    let key = match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some("uri"),
        "tasks/get" | "tasks/update" | "tasks/cancel" => Some("taskId"),
        _ => None,
    };
    if let Some(name) = key
        .and_then(|k| value.get("params")?.get(k)?.as_str())
        .filter(|n| n.chars().all(|c| c.is_ascii_graphic() || c == ' ') && !n.starts_with(' ') && !n.ends_with(' '))
    {
        out.push(("Mcp-Name", name.to_owned()));
    }
    out
}

/// Fills each `${VAR}` of a header value from `env` (deskhand's environment,
/// only the names a header uses). A variable that is not set is an error
/// naming it.
pub fn expand(
    connector: &str,
    header: &str,
    value: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!(
                "the header {header} of the connector {connector} has an unclosed ${{ (write ${{VAR}})"
            ));
        };
        let name = &after[..end];
        let value = env(name).ok_or_else(|| {
            format!(
                "the header {header} of the connector {connector} uses ${{{name}}}, which is not set in deskhand's \
                 environment; set it where deskhand starts (for the web UI, where `deskhand serve` runs)"
            )
        })?;
        if value.chars().any(|c| c.is_control()) {
            return Err(format!(
                "{name}, used by the header {header} of the connector {connector}, holds a line break or another \
                 control character"
            ));
        }
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The variable names a header value uses (`${VAR}`).
pub fn variables(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        out.push(after[..end].to_owned());
        rest = &after[end + 1..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback_and_no_credentials_in_the_url() {
        let ok = |u: &str| endpoint("docs", u).map(|e| (e.host, e.port));
        assert_eq!(ok("https://mcp.example.com/mcp"), Ok(("mcp.example.com".into(), 443)));
        assert_eq!(ok("http://127.0.0.1:3001/mcp"), Ok(("127.0.0.1".into(), 3001)));
        assert_eq!(ok("http://localhost/mcp"), Ok(("localhost".into(), 80)));
        assert_eq!(ok("http://[::1]:9/mcp"), Ok(("::1".into(), 9)));
        for (url, words) in [
            ("http://mcp.example.com/mcp", "plain http"),
            ("http://10.0.0.2:80/mcp", "plain http"),
            ("https://user:pw@mcp.example.com/mcp", "credentials"),
            ("ftp://mcp.example.com/", "not http(s)"),
        ] {
            match endpoint("docs", url) {
                Ok(e) => panic!("{url} accepted: {e:?}"),
                Err(e) => assert!(e.contains(words) && e.contains("docs"), "{url}: {e}"),
            }
        }
    }

    #[test]
    fn header_variables_come_from_deskhands_environment_by_name() {
        let env = |n: &str| (n == "TOKEN").then(|| "s3cret".to_owned());
        assert_eq!(
            expand("docs", "Authorization", "Bearer ${TOKEN}", &env),
            Ok("Bearer s3cret".into())
        );
        assert_eq!(expand("docs", "X-Plain", "eu", &env), Ok("eu".into()));
        let missing = expand("docs", "Authorization", "Bearer ${OTHER}", &env).unwrap_err();
        assert!(missing.contains("OTHER") && missing.contains("not set"), "{missing}");
        assert_eq!(variables("a ${X} b ${Y}"), ["X", "Y"]);
    }

    #[test]
    fn sse_events_are_delivered_until_the_response_to_the_request() {
        let t = HttpTransport::new(
            "docs",
            endpoint("docs", "http://127.0.0.1:1/mcp").unwrap_or_else(|e| panic!("{e}")),
            Vec::new(),
            None,
            Arc::default(),
        );
        let (tx, mut rx) = mpsc::unbounded_channel();
        let stream = "id: 1\ndata: \n\n: a comment\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\n\
                      data: \"params\":{\"level\":\"info\",\"data\":\"x\"}}\n\nevent: message\n\
                      data: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\
                      \"serverInfo\":{\"name\":\"s\",\"version\":\"1\"}}}\n\ndata: {\"never\": \"read\"}\n\n";
        let done = t
            .shared
            .read_events(stream.as_bytes(), Some(&serde_json::json!(3)), &tx);
        assert!(done.is_ok(), "{done:?}");
        let mut got = Vec::new();
        while let Ok(m) = rx.try_recv() {
            got.push(serde_json::to_value(m).unwrap_or_default());
        }
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[1]["id"], 3);
        assert_eq!(lock(&t.shared.protocol).as_deref(), Some("2025-11-25"));
        assert_eq!(t.shared.session(), None);
        // A stream that ends without the response fails the request now.
        let cut = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"x\"}}\n\n";
        let done = t.shared.read_events(cut.as_bytes(), Some(&serde_json::json!(4)), &tx);
        assert!(done.is_err_and(|e| e.0.contains("without the response")));
        while rx.try_recv().is_ok() {}
        // An error the server could not correlate goes to the request it answers.
        let done = t.shared.deliver(
            br#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Server not initialized"},"id":null}"#,
            Some(&serde_json::json!(0)),
            &tx,
        );
        assert_eq!(done.ok(), Some(true));
        let m = rx.try_recv().map(|m| serde_json::to_value(m).unwrap_or_default());
        assert_eq!(m.ok().map(|m| m["id"].clone()), Some(serde_json::json!(0)));
    }
}
