//! deskhand's plan UI: an axum server on 127.0.0.1 only (this crate is the
//! only code that touches axum) serving the pages and a JSON + SSE API over
//! one workspace.
//!
//! Who may talk to it: a browser that opened the URL the server printed. The
//! URL carries a random token, exchanged for an HttpOnly, SameSite=Strict
//! session cookie and then dropped from the address bar. Every request must
//! name the loopback host and port in `Host` (DNS rebinding); every mutation
//! needs the exact same-origin `Origin`, a JSON body and the cookie (CSRF).
//! No CORS headers, framing forbidden, nothing served outside the workspace's
//! own files and `output/`, no directory listings.

mod api;
mod approvals;
mod security;
mod toolbox;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use deskhand_runtime::workspace::Workspace;

pub use approvals::UiGate;

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
    /// The URL to open: it carries the session token.
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
    pub token: String,
    pub sessions: Mutex<Vec<String>>,
    pub approvals: approvals::Approvals,
    pub options: Options,
    /// Runs started from this server that are still going, with their stop flags.
    pub running: Mutex<Vec<(deskhand_types::RunId, Arc<std::sync::atomic::AtomicBool>)>>,
    /// The engine and tools every run and preview shares, made on first use.
    pub toolbox: toolbox::SharedToolbox,
}

impl App {
    pub fn toolbox(&self) -> Result<Arc<deskhand_runtime::tools::Toolbox>, String> {
        self.toolbox.get(&self.root, self.options.config_dir.as_deref())
    }

    /// The shared toolbox for a bundled tool's call (a preview), without
    /// looking at the skills again.
    pub fn bundled_toolbox(&self) -> Result<Arc<deskhand_runtime::tools::Toolbox>, String> {
        self.toolbox.bundled(&self.root, self.options.config_dir.as_deref())
    }
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system provides randomness");
    hex::encode(buf)
}

/// Where a running server for a workspace records its port and token
/// (readable only by the person: it lets `deskhand open` reuse the server).
pub fn state_file(workspace: &Path) -> PathBuf {
    workspace.join(".deskhand").join("server.json")
}

/// The URL of the server already running for `workspace`, if it answers.
pub fn running_url(workspace: &Path) -> Option<String> {
    let text = std::fs::read_to_string(state_file(workspace)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let port = u16::try_from(v["port"].as_u64()?).ok()?;
    let token = v["token"].as_str()?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(300)).ok()?;
    Some(format!("http://127.0.0.1:{port}/?token={token}"))
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
    let token = random_hex(16);
    let state = state_file(&root);
    write_private(
        &state,
        &serde_json::json!({"port": port, "token": token, "pid": std::process::id()}).to_string(),
    )
    .map_err(Error::Serve)?;
    let url = format!("http://127.0.0.1:{port}/?token={token}");
    let app = Arc::new(App {
        root,
        workspace,
        port,
        token,
        sessions: Mutex::new(Vec::new()),
        approvals: approvals::Approvals::default(),
        toolbox: toolbox::SharedToolbox::new(options.cache_dir.clone()),
        options,
        running: Mutex::new(Vec::new()),
    });
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
                let served = axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
                    .map_err(Error::Serve);
                let _ = std::fs::remove_file(state_file(&app.root));
                served
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

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
