//! deskhand's plan UI: an axum server on 127.0.0.1 only (this crate is the
//! only code that touches axum) serving the pages and a JSON + SSE API over
//! one workspace.
//!
//! Who may talk to it: the browser tab that opened a launch link. The link's
//! token works once, for a few minutes, and is traded for a session secret
//! the page keeps in its own tab and sends as a header (`session.rs`); no
//! cookie, so no other server on this host ever receives it. Every request
//! must name the loopback host and port in `Host` (DNS rebinding); every
//! mutation needs the exact same-origin `Origin` and a JSON body (CSRF). No
//! CORS headers, framing forbidden, nothing served outside the workspace's
//! own files and `output/`, no directory listings. Connections that send no
//! request within [`HEADER_TIMEOUT`] are closed, and at most
//! [`MAX_CONNECTIONS`] are served at once.

mod api;
mod approvals;
mod feed;
mod files;
mod inert;
mod security;
mod session;
mod toolbox;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use deskhand_runtime::workspace::Workspace;

pub use approvals::UiGate;
pub use session::Lifetimes;

/// A connection that has not sent a whole request head within this (a new
/// one, or a kept-alive one between requests) is closed.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the listen queue.
pub const MAX_CONNECTIONS: usize = 256;

/// How to start the server.
#[derive(Debug, Clone)]
pub struct Options {
    pub workspace: PathBuf,
    /// 0 picks a free port.
    pub port: u16,
    /// Compiled tool components (see `deskhand --cache-dir`).
    pub cache_dir: Option<PathBuf>,
    /// The user's config folder (model config, own skills).
    pub config_dir: Option<PathBuf>,
    /// How long launch links, sessions and download tickets live.
    pub lifetimes: Lifetimes,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Runtime(#[from] deskhand_runtime::Error),
    #[error("cannot listen on 127.0.0.1:{port}: {source}; pick another port with --port, or 0 for any free one")]
    Bind { port: u16, source: std::io::Error },
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
}

/// A running server.
pub struct Server {
    pub port: u16,
    /// The URL to open: it carries a launch token that works once.
    pub url: String,
    thread: std::thread::JoinHandle<Result<(), Error>>,
    shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Server {
    /// Waits until the server stops (it runs until the process ends or [`Server::stop`]).
    pub fn wait(self) -> Result<(), Error> {
        self.thread
            .join()
            .unwrap_or_else(|_| Err(Error::Serve(std::io::Error::other("the server thread panicked"))))
    }

    pub fn stop(self) -> Result<(), Error> {
        let Server { thread, shutdown, .. } = self;
        let _ = shutdown.send(());
        thread
            .join()
            .unwrap_or_else(|_| Err(Error::Serve(std::io::Error::other("the server thread panicked"))))
    }
}

/// Shared by every request.
pub(crate) struct App {
    pub root: PathBuf,
    pub workspace: Workspace,
    pub port: u16,
    /// Proves this server to `deskhand open` (kept in server.json, 0600).
    pub control_key: String,
    /// Challenges `deskhand open` already used (each works once).
    pub control_nonces: Mutex<std::collections::HashSet<String>>,
    pub sessions: Mutex<session::Sessions>,
    pub approvals: approvals::Approvals,
    pub feeds: feed::Feeds,
    pub options: Options,
    /// Runs started from this server that are still going, with their stop flags.
    pub running: Mutex<Vec<(deskhand_types::RunId, Arc<std::sync::atomic::AtomicBool>)>>,
    /// The engine and tools every run and preview shares, made on first use.
    pub toolbox: toolbox::SharedToolbox,
    /// Connector sign-ins started from the Connectors page.
    pub sign_ins_underway: api::SignInsUnderway,
}

impl App {
    fn new(workspace: Workspace, port: u16, control_key: String, sessions: session::Sessions, options: Options) -> App {
        App {
            root: workspace.root().to_path_buf(),
            workspace,
            port,
            control_key,
            control_nonces: Mutex::new(Default::default()),
            sessions: Mutex::new(sessions),
            approvals: approvals::Approvals::default(),
            feeds: feed::Feeds::default(),
            toolbox: toolbox::SharedToolbox::new(options.cache_dir.clone()),
            options,
            running: Mutex::new(Vec::new()),
            sign_ins_underway: Default::default(),
        }
    }

    pub fn toolbox(&self) -> Result<Arc<deskhand_runtime::tools::Toolbox>, String> {
        self.toolbox.get(&self.root, self.options.config_dir.as_deref())
    }

    /// The shared toolbox for a bundled tool's call (a preview), without
    /// looking at the skills again.
    pub fn bundled_toolbox(&self) -> Result<Arc<deskhand_runtime::tools::Toolbox>, String> {
        self.toolbox.bundled(&self.root, self.options.config_dir.as_deref())
    }

    pub fn sessions(&self) -> MutexGuard<'_, session::Sessions> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system provides randomness");
    hex::encode(buf)
}

/// Where a running server for a workspace records its port, pid and control
/// key (readable only by the person: it lets `deskhand open` reuse the server).
pub fn state_file(workspace: &Path) -> PathBuf {
    workspace.join(".deskhand").join("server.json")
}

/// A fresh launch URL from the server already running for `workspace`, if
/// there is one and it proves it is that server: its process is alive and
/// it answers a challenge only the holder of server.json's control key can
/// (so a stale file never sends anything useful to whatever now holds the
/// port). `None` means: start a server.
pub fn running_url(workspace: &Path) -> Option<String> {
    let text = std::fs::read_to_string(state_file(workspace)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let port = u16::try_from(v["port"].as_u64()?).ok()?;
    let key = v["key"].as_str()?;
    let pid = i32::try_from(v["pid"].as_u64()?).ok()?;
    let alive = rustix::process::Pid::from_raw(pid).is_some_and(|p| rustix::process::test_kill_process(p).is_ok());
    if !alive {
        return None;
    }
    let token = launch_token_from(port, key).ok()?;
    Some(format!("http://127.0.0.1:{port}/?token={token}"))
}

/// Asks the server on `port` for a launch token. The request proves we hold
/// `key` and the answer must prove the server does, both bound to a fresh
/// nonce and to `port` (a process on this port cannot relay the exchange to
/// a real server elsewhere).
fn launch_token_from(port: u16, key: &str) -> Result<String, String> {
    let nonce = random_hex(16);
    let body = serde_json::json!({
        "nonce": nonce,
        "proof": session::proof(key, &format!("client/{port}"), &nonce),
    })
    .to_string();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "POST /control/launch HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut answer)
        .map_err(|e| e.to_string())?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head.lines().next().unwrap_or_default().to_owned());
    }
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let expected = session::proof(key, &format!("server/{port}"), &nonce);
    if !v["proof"]
        .as_str()
        .is_some_and(|p| session::constant_time_eq(p, &expected))
    {
        return Err("the server on that port could not prove it is this workspace's".into());
    }
    v["token"].as_str().map(str::to_owned).ok_or_else(|| "no token".into())
}

/// Starts the server on its own thread and returns once it listens.
pub fn start(options: Options) -> Result<Server, Error> {
    let workspace = Workspace::open(&options.workspace)?;
    let root = workspace.root().to_path_buf();
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, options.port)).map_err(|source| Error::Bind {
        port: options.port,
        source,
    })?;
    listener.set_nonblocking(true).map_err(Error::Serve)?;
    let port = listener.local_addr().map_err(Error::Serve)?.port();
    let control_key = random_hex(32);
    let state = state_file(&root);
    write_private(
        &state,
        &serde_json::json!({"port": port, "pid": std::process::id(), "key": control_key}).to_string(),
    )
    .map_err(Error::Serve)?;
    let mut sessions = session::Sessions::new(options.lifetimes);
    let token = sessions.new_launch_token(Instant::now());
    let url = format!("http://127.0.0.1:{port}/?token={token}");
    let app = Arc::new(App::new(workspace, port, control_key, sessions, options));
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("deskhand-web-ui".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(Error::Serve)?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).map_err(Error::Serve)?;
                let router = api::router(app.clone());
                serve(listener, router, stopped).await;
                let _ = std::fs::remove_file(state_file(&app.root));
                Ok(())
            })
        })
        .map_err(Error::Serve)?;
    Ok(Server {
        port,
        url,
        thread,
        shutdown,
    })
}

/// The accept loop: HTTP/1.1 with a header-read timeout (which also closes
/// kept-alive connections idle between requests) and a cap on connections.
async fn serve(listener: tokio::net::TcpListener, router: axum::Router, stopped: tokio::sync::oneshot::Receiver<()>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut stopped = std::pin::pin!(stopped);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut stopped => return,
        };
        let Ok((stream, _)) = accepted else {
            // Out of file descriptors, or a connection reset before accept: wait a little.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Writes `path` readable by the person only, whatever the umask.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    #[cfg(unix)]
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
