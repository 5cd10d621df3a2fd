//! The MCP client: the only module that touches rmcp. The rest of deskhand
//! sees [`Client`] and its own [`ConnectorTool`] and [`CallResult`] types.
//!
//! A server is started from a [`Command`] its caller built (the connector's
//! sandbox, `crate::confine`), spoken to over stdio, and asked for the
//! current protocol revision first (`server/discover`), falling back to the
//! `initialize` handshake older servers know. rmcp is async and deskhand's
//! agent loop is not: one small tokio runtime (one worker) is owned here and
//! every call blocks on it. A `tools/list_changed` notification marks the
//! list stale; [`Client::take_list_changed`] tells the session to list again.
//!
//! A remote server is reached over Streamable HTTP ([`Client::connect`]):
//! the transport in [`http`] is deskhand's own, over ureq, and asks the
//! run's egress before every request.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, RoleClient};
use tokio::io::AsyncReadExt;

use super::{Annotations, ConnectorTool};
use crate::egress;

pub mod http;

/// How long a server may take to start and answer the handshake.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes of a server's stderr kept to explain a failure.
const STDERR_TAIL: usize = 4096;

fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("deskhand-mcp")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the connectors' I/O thread: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Runs `f` to completion on the connectors' runtime, from any thread (also
/// one inside another tokio runtime, such as the web front end's).
fn block_on<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> Result<T, String> {
    let rt = runtime()?;
    let task = rt.spawn(f);
    let (tx, rx) = std::sync::mpsc::channel();
    rt.spawn(async move {
        let _ = tx.send(task.await);
    });
    match rx.recv() {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("the connector task failed: {e}")),
        Err(_) => Err("the connectors' I/O thread stopped".into()),
    }
}

#[derive(Clone)]
struct Handler {
    list_changed: Arc<AtomicBool>,
}

impl ClientHandler for Handler {
    fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) -> impl Future<Output = ()> + Send + '_ {
        self.list_changed.store(true, Ordering::SeqCst);
        std::future::ready(())
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("deskhand", env!("CARGO_PKG_VERSION")),
        )
    }
}

/// A started server.
pub struct Client {
    name: String,
    service: Option<RunningService<RoleClient, Handler>>,
    list_changed: Arc<AtomicBool>,
    explain: Explain,
    protocol: String,
}

/// Where the words explaining a failure come from.
enum Explain {
    /// A local server's stderr (its last bytes).
    Stderr(Arc<Mutex<String>>),
    /// A remote server's transport: the last failure, in words for the person.
    Http(Arc<http::Status>),
}

impl Explain {
    fn explain(&self, message: String) -> String {
        match self {
            Explain::Stderr(tail) => with_stderr(message, tail),
            Explain::Http(status) => status.problem.lock().ok().and_then(|mut p| p.take()).unwrap_or(message),
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("name", &self.name)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

/// What a tool call returned.
#[derive(Debug, Clone, PartialEq)]
pub struct CallResult {
    /// The text parts, in order (other parts described in brackets).
    pub text: String,
    /// The structured result, if the tool gave one.
    pub structured: Option<serde_json::Value>,
    /// The tool said its call failed.
    pub is_error: bool,
}

impl Client {
    /// Starts `command` (stdin/stdout become the MCP channel) and negotiates the protocol.
    pub fn start(name: &str, command: Command) -> Result<Client, String> {
        let list_changed = Arc::new(AtomicBool::new(false));
        let stderr = Arc::new(Mutex::new(String::new()));
        let handler = Handler {
            list_changed: list_changed.clone(),
        };
        let tail = stderr.clone();
        let label = name.to_owned();
        let started = block_on(async move {
            let mut command = tokio::process::Command::from(command);
            command.kill_on_drop(true);
            let (process, err) = TokioChildProcess::builder(command)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("the connector {label} could not be started: {e}"))?;
            if let Some(mut err) = err {
                let tail = tail.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = err.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if let Ok(mut t) = tail.lock() {
                            t.push_str(&String::from_utf8_lossy(&buf[..n]));
                            if t.len() > STDERR_TAIL {
                                let mut cut = t.len() - STDERR_TAIL;
                                while !t.is_char_boundary(cut) {
                                    cut += 1;
                                }
                                t.drain(..cut);
                            }
                        }
                    }
                });
            }
            handshake(&label, handler, process).await
        })?;
        Client::started(name, started, list_changed, Explain::Stderr(stderr))
    }

    /// Connects to a remote server at `url` over Streamable HTTP, sending
    /// `headers` with every request, and negotiates the protocol. With
    /// `egress`, every request is first decided by the run's policy; without,
    /// the person started it themselves (`deskhand connectors add/test`).
    pub fn connect(
        name: &str,
        url: &str,
        headers: Vec<(String, String)>,
        bearer: Option<http::Bearer>,
        egress: Option<Arc<egress::Run>>,
    ) -> Result<Client, String> {
        let endpoint = http::endpoint(name, url)?;
        let list_changed = Arc::new(AtomicBool::new(false));
        let status = Arc::new(http::Status::default());
        let handler = Handler {
            list_changed: list_changed.clone(),
        };
        let transport = http::HttpTransport::signed_in(name, endpoint, headers, bearer, egress, status.clone());
        let label = name.to_owned();
        let started = block_on(async move { handshake(&label, handler, transport).await })?;
        Client::started(name, started, list_changed, Explain::Http(status))
    }

    fn started(
        name: &str,
        started: Result<RunningService<RoleClient, Handler>, String>,
        list_changed: Arc<AtomicBool>,
        explain: Explain,
    ) -> Result<Client, String> {
        let service = started.map_err(|e| explain.explain(e))?;
        let protocol = service
            .peer_info()
            .map(|i| i.protocol_version.to_string())
            .unwrap_or_default();
        Ok(Client {
            name: name.to_owned(),
            service: Some(service),
            list_changed,
            explain,
            protocol,
        })
    }

    /// The protocol revision the server and deskhand agreed on.
    pub fn protocol(&self) -> &str {
        &self.protocol
    }

    /// A remote server no longer knows this connection's session: connect again.
    pub fn is_ended(&self) -> bool {
        matches!(&self.explain, Explain::Http(s) if s.ended.load(Ordering::SeqCst))
    }

    /// True once after the server said its tool list changed.
    pub fn take_list_changed(&self) -> bool {
        self.list_changed.swap(false, Ordering::SeqCst)
    }

    fn peer(&self) -> Result<rmcp::Peer<RoleClient>, String> {
        self.service
            .as_ref()
            .map(|s| s.peer().clone())
            .ok_or_else(|| format!("the connector {} was shut down", self.name))
    }

    /// The server's tools, every page.
    pub fn tools(&self) -> Result<Vec<ConnectorTool>, String> {
        let peer = self.peer()?;
        let name = self.name.clone();
        let listed = block_on(async move {
            tokio::time::timeout(START_TIMEOUT, peer.list_all_tools())
                .await
                .map_err(|_| format!("the connector {name} did not list its tools in time"))?
                .map_err(|e| format!("the connector {name} could not list its tools: {e}"))
        })?
        .map_err(|e| self.explain.explain(e))?;
        listed
            .into_iter()
            .map(|t| {
                let v = serde_json::to_value(&t).map_err(|e| e.to_string())?;
                tool_from_wire(&v)
                    .ok_or_else(|| format!("the connector {} listed a tool deskhand cannot read", self.name))
            })
            .collect()
    }

    /// Calls `tool` with `arguments` (a JSON object), waiting at most `timeout`.
    pub fn call(&self, tool: &str, arguments: &serde_json::Value, timeout: Duration) -> Result<CallResult, String> {
        let peer = self.peer()?;
        let mut params = CallToolRequestParams::new(tool.to_owned());
        match arguments {
            serde_json::Value::Object(m) => params = params.with_arguments(m.clone()),
            serde_json::Value::Null => {}
            _ => return Err("a connector tool's arguments must be a JSON object".into()),
        }
        let label = format!("{}.{tool}", self.name);
        let result = block_on(async move {
            match tokio::time::timeout(timeout, peer.call_tool(params)).await {
                Err(_) => Err(format!("{label} did not answer within {} s", timeout.as_secs())),
                Ok(Err(e)) => Err(format!("{label} failed: {e}")),
                Ok(Ok(r)) => serde_json::to_value(&r).map_err(|e| e.to_string()),
            }
        })?
        .map_err(|e| self.explain.explain(e))?;
        Ok(result_from_wire(&result))
    }

    /// Ends the server (closes its stdin, then kills it if it lingers).
    pub fn shutdown(&mut self) {
        if let Some(service) = self.service.take() {
            let _ = block_on(async move {
                let _ = tokio::time::timeout(Duration::from_secs(2), service.cancel()).await;
            });
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The MCP handshake over `transport`: the current revision where the
/// server offers it (`server/discover`), else the `initialize` handshake.
async fn handshake<T, E, A>(
    label: &str,
    handler: Handler,
    transport: T,
) -> Result<RunningService<RoleClient, Handler>, String>
where
    T: rmcp::transport::IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let lifecycle = ClientLifecycleMode::Auto {
        preferred_versions: vec![ProtocolVersion::LATEST],
        legacy_version: None,
    };
    match tokio::time::timeout(START_TIMEOUT, handler.serve_with_lifecycle(transport, lifecycle)).await {
        Ok(Ok(service)) => Ok(service),
        Ok(Err(e)) => Err(format!("the connector {label} did not complete the MCP handshake: {e}")),
        Err(_) => Err(format!(
            "the connector {label} did not answer the MCP handshake within {} s",
            START_TIMEOUT.as_secs()
        )),
    }
}

fn with_stderr(message: String, stderr: &Mutex<String>) -> String {
    let tail = stderr.lock().map(|t| t.trim().to_owned()).unwrap_or_default();
    if tail.is_empty() {
        message
    } else {
        format!("{message}; it said:\n{tail}")
    }
}

/// deskhand's tool from the protocol's JSON.
fn tool_from_wire(v: &serde_json::Value) -> Option<ConnectorTool> {
    let a = v.get("annotations");
    let flag = |k: &str| a.and_then(|a| a.get(k)).and_then(serde_json::Value::as_bool);
    Some(ConnectorTool {
        name: v.get("name")?.as_str()?.to_owned(),
        title: v
            .get("title")
            .or_else(|| a.and_then(|a| a.get("title")))
            .and_then(|t| t.as_str())
            .map(str::to_owned),
        description: v
            .get("description")
            .and_then(|d| d.as_str())
            .unwrap_or_default()
            .to_owned(),
        input_schema: v
            .get("inputSchema")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({"type": "object"})),
        output_schema: v.get("outputSchema").cloned(),
        annotations: Annotations {
            read_only: flag("readOnlyHint"),
            destructive: flag("destructiveHint"),
            idempotent: flag("idempotentHint"),
            open_world: flag("openWorldHint"),
        },
    })
}

fn result_from_wire(v: &serde_json::Value) -> CallResult {
    let mut text = String::new();
    for part in v.get("content").and_then(|c| c.as_array()).into_iter().flatten() {
        if !text.is_empty() {
            text.push('\n');
        }
        match part.get("type").and_then(|t| t.as_str()) {
            Some("text") => text.push_str(part.get("text").and_then(|t| t.as_str()).unwrap_or_default()),
            Some("resource") => match part
                .get("resource")
                .and_then(|r| r.get("text"))
                .and_then(|t| t.as_str())
            {
                Some(t) => text.push_str(t),
                None => text.push_str("[a binary resource, not shown]"),
            },
            Some(kind) => text.push_str(&format!("[{kind} content, not shown]")),
            None => text.push_str("[content of no known type, not shown]"),
        }
    }
    CallResult {
        text,
        structured: v.get("structuredContent").cloned(),
        is_error: v.get("isError").and_then(|e| e.as_bool()).unwrap_or(false),
    }
}
