//! The wasm host: the only code in deskhand that touches wasmtime.
//!
//! A [`WasmHost`] owns the `Engine` and its epoch ticker; each front end
//! makes one and shares it (the web UI makes a new one only when a skill's
//! component changes).
//! Components are compiled once and cached on disk (`cache`); each loaded
//! tool keeps an `InstancePre`, and every call gets a fresh `Store` whose
//! only capabilities are the preopened folders of its [`Sandbox`]: no
//! environment, no network, captured and capped stdout/stderr, an epoch
//! deadline and a memory cap. A trap becomes a [`CallError`] that names the
//! limit that fired.
//!
//! The deadline holds on the wall clock, not only in guest code: the linker
//! shadows `wasi:clocks/monotonic-clock`'s `subscribe-duration` and
//! `subscribe-instant` so no guest timer outlasts the call (a script's
//! `time.sleep(86400)` wakes into the epoch trap), and the store runs on a
//! thread of its own that the caller stops waiting for shortly after the
//! deadline (a guest blocked in a host call, opening a FIFO say, is left
//! behind and the call ends [`CallError::Deadline`]).

mod cache;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deskhand_types::{Access, LogLevel, ProposedChange, ToolDescription, ToolError, ToolOutput};
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

pub use cache::CacheStatus;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/tool",
        world: "tool",
    });
}

use bindings::deskhand::tool::{host, types as wit};

/// How often the epoch advances; deadlines are whole ticks of this.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Per-call caps on what a guest can send through the host imports.
const MAX_EVENTS_PER_CALL: usize = 10_000;
const MAX_EVENT_MESSAGE: usize = 4096;
/// The largest answer (JSON plus text) the host parses from one call: parsed
/// JSON takes several times its text's size, and a guest can produce this
/// much from a tiny file (a CSV line of ten million commas).
pub const MAX_RESULT_BYTES: usize = 64 << 20;

/// Limits applied to every call; configurable per host and per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub deadline: Duration,
    pub memory_bytes: u64,
    pub stdout_bytes: usize,
    pub stderr_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(60),
            memory_bytes: 1 << 30,
            stdout_bytes: 1 << 20,
            stderr_bytes: 1 << 20,
        }
    }
}

/// One folder made visible to a guest at `guest` (which is the canonical
/// host path, so what the person reads in a plan is what the guest sees).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub host: PathBuf,
    pub guest: String,
    pub access: Access,
}

/// Everything one call may touch. Built from a task's grants by the
/// workspace; nothing is visible that is not listed here.
#[derive(Debug, Clone, Default)]
pub struct Sandbox {
    pub mounts: Vec<Mount>,
    pub limits: Limits,
    /// A fresh, empty folder the guest may write at [`SCRATCH_GUEST`]: where
    /// it stages the content of files it proposes to create or overwrite.
    pub scratch: Option<PathBuf>,
    /// TCP for a step that declares network hosts: each address the guest
    /// would bind, listen on or connect to is asked of this check (the run's
    /// egress decision point). `None`: no sockets at all.
    pub network: Option<NetworkCheck>,
}

/// Answers whether a guest may use a socket address: `connect` is true for a
/// TCP connect, false for a bind (the implicit bind to `0.0.0.0:0` that every
/// connect makes included) or a listen.
#[derive(Clone)]
pub struct NetworkCheck(pub Arc<dyn Fn(std::net::SocketAddr, bool) -> bool + Send + Sync>);

impl std::fmt::Debug for NetworkCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NetworkCheck")
    }
}

/// Where a guest sees its scratch folder (the sdk's `SCRATCH`).
pub const SCRATCH_GUEST: &str = "/.deskhand-scratch";

/// What a guest reported through the host imports during a call.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolEvent {
    Log {
        level: LogLevel,
        message: String,
    },
    Progress {
        done: u64,
        total: Option<u64>,
        message: String,
    },
}

pub type EventSink = Arc<dyn Fn(ToolEvent) + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read the component: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{name}: not a valid deskhand tool component: {message}")]
    Invalid { name: String, message: String },
    #[error("could not set up the WebAssembly engine: {0}")]
    Engine(String),
}

/// Why a call did not return a result.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    Tool(ToolError),
    #[error("the tool ran longer than its deadline of {}s and was stopped: what it was given makes it work too long (a damaged or crafted file can do this however small it is); if the work really is that large, split it or raise the deadline", .limit.as_secs_f64())]
    Deadline { limit: Duration },
    #[error("the tool tried to use more than its memory cap of {} MiB and was stopped", .limit / (1024 * 1024))]
    MemoryCap { limit: u64 },
    #[error("the tool wrote more than {limit} bytes to {stream} and was stopped")]
    OutputCap { stream: &'static str, limit: usize },
    #[error("the tool crashed: {message}{}", stderr_suffix(.stderr))]
    Crashed { message: String, stderr: String },
    #[error("the tool returned output that is not JSON: {0}")]
    BadOutput(String),
    #[error("the tool's answer is {} MiB, more than the {} MiB the host reads from one call; ask it for less at a time (a range of rows, some pages)", .size >> 20, MAX_RESULT_BYTES >> 20)]
    ResultTooLarge { size: usize },
    #[error("cannot open {path} for the sandbox: {message}")]
    Mount { path: PathBuf, message: String },
}

fn stderr_suffix(stderr: &str) -> String {
    let tail: String = stderr
        .trim()
        .chars()
        .rev()
        .take(2000)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if tail.is_empty() {
        String::new()
    } else {
        format!("\nits stderr ended with:\n{tail}")
    }
}

/// The result of a call: the tool's answer plus what it printed.
#[derive(Debug)]
pub struct CallReport {
    pub result: Result<ToolOutput, CallError>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
}

/// The process-wide engine, its epoch ticker and the compiled-code cache.
pub struct WasmHost {
    engine: Engine,
    linker: Linker<CallState>,
    cache: cache::ComponentCache,
    /// Told when a component must be compiled (not found in the cache), and
    /// when it is, with how long it took: a front end shows that the first
    /// use of a tool prepares it.
    on_compile: Option<CompileObserver>,
}

/// What [`WasmHost::on_compile`] is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compiling<'a> {
    /// The named component is being compiled for this machine.
    Started { name: &'a str },
    /// It was, in this time (and stored in the cache where there is one).
    Finished { name: &'a str, elapsed: Duration },
}

/// Receives [`Compiling`] news.
pub type CompileObserver = Arc<dyn Fn(Compiling<'_>) + Send + Sync>;

impl std::fmt::Debug for WasmHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmHost")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl WasmHost {
    /// Creates the engine. `cache_dir` holds compiled components; `None`
    /// compiles on every load (tests of the compiler path use that).
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self, LoadError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = Engine::new(&config).map_err(|e| LoadError::Engine(e.to_string()))?;

        let mut linker = Linker::<CallState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| LoadError::Engine(e.to_string()))?;
        host::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        clamp_sleeps_to_deadline(&mut linker).map_err(|e| LoadError::Engine(e.to_string()))?;

        spawn_epoch_ticker(&engine);
        Ok(WasmHost {
            engine,
            linker,
            cache: cache::ComponentCache::new(cache_dir),
            on_compile: None,
        })
    }

    /// Tells `observer` when a component is compiled rather than loaded from the cache.
    #[must_use]
    pub fn on_compile(mut self, observer: CompileObserver) -> Self {
        self.on_compile = Some(observer);
        self
    }

    /// Loads a component from bytes (compiling it or reusing the cache),
    /// links it and asks it to describe itself.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<LoadedTool, LoadError> {
        let started = std::cell::Cell::new(None);
        let compiling = || {
            started.set(Some(Instant::now()));
            if let Some(tell) = &self.on_compile {
                tell(Compiling::Started { name });
            }
        };
        let (component, cache_status) = self
            .cache
            .load_or_compile(&self.engine, name, bytes, &compiling)
            .map_err(|e| LoadError::Invalid {
                name: name.into(),
                message: e,
            })?;
        if let (Some(tell), Some(at)) = (&self.on_compile, started.get()) {
            tell(Compiling::Finished {
                name,
                elapsed: at.elapsed(),
            });
        }
        let invalid = |e: wasmtime::Error| LoadError::Invalid {
            name: name.into(),
            message: format!("{e:#}"),
        };
        let pre = self.linker.instantiate_pre(&component).map_err(invalid)?;
        let pre = bindings::ToolPre::new(pre).map_err(invalid)?;
        let mut tool = LoadedTool {
            engine: self.engine.clone(),
            pre,
            description: ToolDescription {
                name: name.into(),
                version: String::new(),
                summary: String::new(),
                operations: Vec::new(),
            },
            cache_status,
        };
        tool.description = tool.describe().map_err(|e| LoadError::Invalid {
            name: name.into(),
            message: e,
        })?;
        Ok(tool)
    }

    pub fn load_file(&self, path: &Path) -> Result<LoadedTool, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.into(),
            source,
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.load(&name, &bytes)
    }
}

/// The interface whose timers `clamp_sleeps_to_deadline` replaces (the
/// version wasmtime-wasi 48 links; guests importing an older 0.2 resolve to it).
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Epoch interruption fires only while wasm code runs: a guest asleep in a
/// host call (`time.sleep(86400)` in python) would outlive its deadline. So
/// every timer a guest subscribes to ends no later than the call's deadline;
/// when it wakes, the guest is back in wasm code and the epoch trap fires.
fn clamp_sleeps_to_deadline(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::Host as _;
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap("subscribe-duration", |mut store, (nanos,): (u64,)| {
        let state = store.data_mut();
        let nanos = state.clamp_sleep(nanos);
        Ok((wasmtime_wasi::clocks::WasiClocksView::clocks(state).subscribe_duration(nanos)?,))
    })?;
    clock.func_wrap("subscribe-instant", |mut store, (when,): (u64,)| {
        let state = store.data_mut();
        let mut view = wasmtime_wasi::clocks::WasiClocksView::clocks(state);
        let now = view.now()?;
        let nanos = state.clamp_sleep(when.saturating_sub(now));
        Ok((wasmtime_wasi::clocks::WasiClocksView::clocks(state).subscribe_duration(nanos)?,))
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Advances the engine's epoch every tick for as long as the engine lives.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("deskhand-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
    // Without a ticker no deadline could fire; fail loudly rather than run unbounded.
    if let Err(e) = spawned {
        panic!("could not start the epoch ticker thread: {e}");
    }
}

/// A component ready to run: linked once, instantiated fresh per call.
pub struct LoadedTool {
    engine: Engine,
    pre: bindings::ToolPre<CallState>,
    description: ToolDescription,
    cache_status: CacheStatus,
}

impl std::fmt::Debug for LoadedTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedTool")
            .field("name", &self.description.name)
            .finish_non_exhaustive()
    }
}

impl LoadedTool {
    pub fn description(&self) -> &ToolDescription {
        &self.description
    }

    /// Whether loading compiled the component or reused the disk cache.
    pub fn cache_status(&self) -> CacheStatus {
        self.cache_status
    }

    fn describe(&self) -> Result<ToolDescription, String> {
        let mut store = new_store(
            &self.engine,
            CallState::new(WasiCtx::builder().build(), None),
            &Limits::default(),
            Instant::now() + Limits::default().deadline,
        );
        let instance = self.pre.instantiate(&mut store).map_err(|e| format!("{e:#}"))?;
        let d = instance
            .call_describe(&mut store)
            .map_err(|e| format!("describe() failed: {e:#}"))?;
        let mut operations = Vec::with_capacity(d.operations.len());
        for op in d.operations {
            let args_schema = serde_json::from_str(&op.args_schema)
                .map_err(|e| format!("operation {:?} has an args schema that is not JSON: {e}", op.name))?;
            operations.push(deskhand_types::Operation {
                name: op.name,
                summary: op.summary,
                args_schema,
                effects: deskhand_types::Effects {
                    reads: op.effects.reads,
                    writes: op.effects.writes,
                    network: op.effects.network,
                },
            });
        }
        Ok(ToolDescription {
            name: d.name,
            version: d.version,
            summary: d.summary,
            operations,
        })
    }

    /// Runs one operation in a fresh store that sees only `sandbox`, on a
    /// thread of its own. The call's deadline holds on the wall clock: a guest
    /// stuck in a host call the epoch cannot interrupt (a read that blocks)
    /// is left behind and the call ends with [`CallError::Deadline`].
    pub fn call(&self, sandbox: &Sandbox, operation: &str, args: &str, sink: Option<EventSink>) -> CallReport {
        self.start(sandbox, operation, args, sink).run(&mut |_| {})
    }

    /// [`Self::call`], handing the guest's log and progress events to
    /// `on_event` on the calling thread, in order, as they come.
    pub fn call_forwarding(
        &self,
        sandbox: &Sandbox,
        operation: &str,
        args: &str,
        on_event: &mut dyn FnMut(ToolEvent),
    ) -> CallReport {
        self.start(sandbox, operation, args, None).run(on_event)
    }

    /// Hands the call to a guest thread, which prepares its store and
    /// instance and then waits: none of the guest's code runs until
    /// [`PendingCall::run`], and none at all if the [`PendingCall`] is
    /// dropped instead. The caller can do its own work (record the call)
    /// meanwhile. Its events (unless `sink` takes them) and then its result
    /// come back on one channel, so the caller waits on one thing and
    /// nothing polls.
    pub fn start(&self, sandbox: &Sandbox, operation: &str, args: &str, sink: Option<EventSink>) -> PendingCall {
        let started = Instant::now();
        let limits = sandbox.limits;
        let stdout = MemoryOutputPipe::new(limits.stdout_bytes);
        let stderr = MemoryOutputPipe::new(limits.stderr_bytes);
        let (tx, rx) = std::sync::mpsc::channel::<FromGuest>();
        let (go_tx, go_rx) = std::sync::mpsc::sync_channel::<()>(1);
        let sink = sink.unwrap_or_else(|| {
            let events = tx.clone();
            Arc::new(move |e| {
                let _ = events.send(FromGuest::Event(e));
            })
        });
        let worker = GuestRun {
            deadline: started + limits.deadline,
            engine: self.engine.clone(),
            pre: self.pre.clone(),
            sandbox: sandbox.clone(),
            operation: operation.to_owned(),
            args: args.to_owned(),
            sink: Some(sink),
            stdout: stdout.clone(),
            stderr: stderr.clone(),
            go: go_rx,
        };
        let spawned = run_on_worker(Box::new(move || {
            worker.run(|result| {
                let _ = tx.send(FromGuest::Done(result));
            });
        }));
        PendingCall {
            started,
            limits,
            stdout,
            stderr,
            go: go_tx,
            rx,
            not_started: spawned.err().map(|e| e.to_string()),
        }
    }
}

/// A call prepared on its guest thread, waiting to be let run
/// ([`LoadedTool::start`]).
#[derive(Debug)]
pub struct PendingCall {
    started: Instant,
    limits: Limits,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    go: std::sync::mpsc::SyncSender<()>,
    rx: std::sync::mpsc::Receiver<FromGuest>,
    /// Why no guest thread could take the call.
    not_started: Option<String>,
}

impl PendingCall {
    /// Lets the guest run and waits for its result, handing its events to
    /// `on_event` as they come.
    pub fn run(self, on_event: &mut dyn FnMut(ToolEvent)) -> CallReport {
        let report = |result| CallReport {
            result,
            stdout: self.stdout.contents().to_vec(),
            stderr: self.stderr.contents().to_vec(),
            elapsed: self.started.elapsed(),
        };
        if let Some(message) = &self.not_started {
            return report(Err(CallError::Crashed {
                message: format!("could not start the tool's thread: {message}"),
                stderr: String::new(),
            }));
        }
        let _ = self.go.send(());
        let give_up = self.started + self.limits.deadline + DEADLINE_GRACE;
        let result = loop {
            match self.rx.recv_timeout(give_up.saturating_duration_since(Instant::now())) {
                Ok(FromGuest::Event(event)) => on_event(event),
                Ok(FromGuest::Done(result)) => break result,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    break Err(CallError::Deadline {
                        limit: self.limits.deadline,
                    });
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    break Err(CallError::Crashed {
                        message: "the tool's thread ended without a result".into(),
                        stderr: String::new(),
                    });
                }
            }
        };
        report(result)
    }
}

/// What a guest thread sends its caller: events, then the result.
enum FromGuest {
    Event(ToolEvent),
    Done(Result<ToolOutput, CallError>),
}

type Job = Box<dyn FnOnce() + Send>;

/// Idle guest threads, each waiting for its next call: a call costs no
/// thread spawn. A thread left behind at a deadline simply never comes back.
static IDLE_WORKERS: std::sync::Mutex<Vec<(u64, std::sync::mpsc::Sender<Job>)>> = std::sync::Mutex::new(Vec::new());
static NEXT_WORKER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Idle threads kept at most, and how long one waits for work before it ends.
const MAX_IDLE_WORKERS: usize = 8;
const IDLE_WORKER_LIFE: Duration = Duration::from_secs(60);

/// Runs `job` on an idle guest thread, or a new one.
fn run_on_worker(job: Job) -> std::io::Result<()> {
    let mut job = job;
    loop {
        let idle = IDLE_WORKERS.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let Some((_, worker)) = idle else { break };
        match worker.send(job) {
            Ok(()) => return Ok(()),
            // That thread ended (it waited too long); try the next.
            Err(std::sync::mpsc::SendError(back)) => job = back,
        }
    }
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let id = NEXT_WORKER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::thread::Builder::new()
        .name("deskhand-guest".into())
        .spawn(move || {
            let mut next = Some(job);
            while let Some(job) = next.take() {
                job();
                let mut idle = IDLE_WORKERS.lock().unwrap_or_else(|p| p.into_inner());
                if idle.len() >= MAX_IDLE_WORKERS {
                    return;
                }
                idle.push((id, tx.clone()));
                drop(idle);
                next = rx.recv_timeout(IDLE_WORKER_LIFE).ok();
                if next.is_none() {
                    // Leave the idle list before ending; a call handed over
                    // in the meantime is still run.
                    IDLE_WORKERS
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .retain(|(w, _)| *w != id);
                    next = rx.try_recv().ok();
                }
            }
        })?;
    Ok(())
}

/// How long past its deadline a call may take to stop before the host stops
/// waiting for it (the epoch trap usually fires within a tick).
const DEADLINE_GRACE: Duration = Duration::from_secs(2);

/// Everything one call's worker thread owns.
struct GuestRun {
    /// When the call's time is up, counted from when the host was asked for
    /// it: waiting for a thread and instantiating come out of the same budget.
    deadline: Instant,
    engine: Engine,
    pre: bindings::ToolPre<CallState>,
    sandbox: Sandbox,
    operation: String,
    args: String,
    sink: Option<EventSink>,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    /// The caller's word that the guest may run ([`PendingCall::run`]);
    /// closed without it, the call ends before any guest code runs.
    go: std::sync::mpsc::Receiver<()>,
}

impl GuestRun {
    /// Runs the call and hands its result to `deliver` before the store is
    /// dropped: unmapping the guest's memory then happens while the caller
    /// already goes on.
    fn run(self, deliver: impl FnOnce(Result<ToolOutput, CallError>)) {
        let limits = self.sandbox.limits;
        let mut builder = WasiCtx::builder();
        builder
            .stdout(self.stdout.clone())
            .stderr(self.stderr.clone())
            .allow_blocking_current_thread(true)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        // Names are not resolved in the guest: the check sees addresses, and
        // the decision point maps them back to the names the step declared.
        if let Some(NetworkCheck(check)) = self.sandbox.network.clone() {
            builder.allow_tcp(true).socket_addr_check(move |addr, used| {
                use wasmtime_wasi::sockets::SocketAddrUse;
                // Connect, and the bind a connect makes; never listen (a guest
                // runs in deskhand's own process, on the host's network, and a
                // listener would hand what it read to whoever connects). A
                // listen after a bind the check allowed (`0.0.0.0:0`, now
                // holding a port) is still put to it, so its refusal is journaled.
                let allowed = match used {
                    SocketAddrUse::TcpConnect => check(addr, true),
                    SocketAddrUse::TcpBind => check(addr, false),
                    SocketAddrUse::TcpListen => {
                        let _ = check(addr, false);
                        false
                    }
                    _ => false,
                };
                Box::pin(std::future::ready(allowed))
            });
        }
        let scratch = self.sandbox.scratch.iter().map(|host| Mount {
            host: host.clone(),
            guest: SCRATCH_GUEST.into(),
            access: Access::ReadWrite,
        });
        let mounts: Vec<Mount> = self.sandbox.mounts.iter().cloned().chain(scratch).collect();
        if let Err(e) = add_mounts(&mut builder, &mounts) {
            return deliver(Err(e));
        }
        let mut store = new_store(
            &self.engine,
            CallState::new(builder.build(), self.sink),
            &limits,
            self.deadline,
        );
        let instance = match self.pre.instantiate(&mut store) {
            Ok(instance) => instance,
            Err(err) => return deliver(Err(classify_trap(&err, &store, &limits, &self.stdout, &self.stderr))),
        };
        let waited = self
            .go
            .recv_timeout(self.deadline.saturating_duration_since(Instant::now()));
        if waited.is_err() {
            // Dropped unrun, or its caller never came back: nothing ran.
            return;
        }
        let outcome = instance.call_run(&mut store, &self.operation, &self.args);
        let result = match outcome {
            // Past its wall-clock deadline a call has no answer, whatever it
            // returned: the epoch ticker may lag on a busy machine, and a
            // guest timer clamped to the deadline wakes just after it.
            Ok(_) if Instant::now() > self.deadline => Err(CallError::Deadline { limit: limits.deadline }),
            Ok(Ok(out)) if out.json.len().saturating_add(out.text.len()) > MAX_RESULT_BYTES => {
                Err(CallError::ResultTooLarge {
                    size: out.json.len().saturating_add(out.text.len()),
                })
            }
            Ok(Ok(out)) => match serde_json::from_str(&out.json) {
                Ok(json) => Ok(ToolOutput {
                    json,
                    text: out.text,
                    changes: out.changes.into_iter().map(proposed).collect(),
                }),
                Err(e) => Err(CallError::BadOutput(e.to_string())),
            },
            Ok(Err(err)) => Err(CallError::Tool(tool_error(err))),
            Err(err) => Err(classify_trap(&err, &store, &limits, &self.stdout, &self.stderr)),
        };
        deliver(result);
        drop(store);
    }
}

fn new_store(engine: &Engine, state: CallState, limits: &Limits, deadline: Instant) -> Store<CallState> {
    let mut store = Store::new(engine, state);
    store.data_mut().limiter.memory_cap = limits.memory_bytes;
    store.data_mut().deadline = deadline;
    store.limiter(|s| &mut s.limiter);
    let left = deadline.saturating_duration_since(Instant::now());
    let ticks = left.as_millis().div_ceil(EPOCH_TICK.as_millis()).max(1);
    store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
    store.epoch_deadline_trap();
    store
}

fn add_mounts(builder: &mut WasiCtxBuilder, mounts: &[Mount]) -> Result<(), CallError> {
    for m in mounts {
        let perms = match m.access {
            Access::ReadOnly => FsPerms::ReadOnly,
            Access::ReadWrite => FsPerms::ReadWrite,
        };
        builder
            .preopened_dir(&m.host, &m.guest, perms)
            .map_err(|e| CallError::Mount {
                path: m.host.clone(),
                message: format!("{e:#}"),
            })?;
    }
    Ok(())
}

/// Turns a trap into the reason a person can act on.
fn classify_trap(
    err: &wasmtime::Error,
    store: &Store<CallState>,
    limits: &Limits,
    stdout: &MemoryOutputPipe,
    stderr: &MemoryOutputPipe,
) -> CallError {
    if store.data().limiter.hit {
        return CallError::MemoryCap {
            limit: limits.memory_bytes,
        };
    }
    if matches!(err.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
        return CallError::Deadline { limit: limits.deadline };
    }
    // A full pipe closes; the guest's next write fails and it usually panics.
    if stdout.contents().len() >= limits.stdout_bytes {
        return CallError::OutputCap {
            stream: "stdout",
            limit: limits.stdout_bytes,
        };
    }
    if stderr.contents().len() >= limits.stderr_bytes {
        return CallError::OutputCap {
            stream: "stderr",
            limit: limits.stderr_bytes,
        };
    }
    CallError::Crashed {
        message: format!("{err:#}"),
        stderr: String::from_utf8_lossy(&stderr.contents()).into_owned(),
    }
}

fn proposed(change: wit::Change) -> ProposedChange {
    match change {
        wit::Change::Create(f) => ProposedChange::Create {
            path: f.path,
            staged: f.staged,
        },
        wit::Change::Overwrite(f) => ProposedChange::Overwrite {
            path: f.path,
            staged: f.staged,
        },
        wit::Change::Rename(p) => ProposedChange::Rename {
            source: p.source,
            target: p.target,
        },
        wit::Change::Move(p) => ProposedChange::Move {
            source: p.source,
            target: p.target,
        },
        wit::Change::Delete(path) => ProposedChange::Delete { path },
    }
}

fn tool_error(err: wit::ToolError) -> ToolError {
    use wit::ToolError as W;
    match err {
        W::UnknownOperation(name) => ToolError::UnknownOperation { name },
        W::InvalidArgs(message) => ToolError::InvalidArgs { message },
        W::NotFound(p) => ToolError::NotFound {
            path: p.path,
            message: p.message,
        },
        W::Denied(p) => ToolError::Denied {
            path: p.path,
            message: p.message,
        },
        W::AlreadyExists(p) => ToolError::AlreadyExists {
            path: p.path,
            message: p.message,
        },
        W::TooLarge(p) => ToolError::TooLarge {
            path: p.path,
            message: p.message,
        },
        W::BadContent(p) => ToolError::BadContent {
            path: p.path,
            message: p.message,
        },
        W::Io(p) => ToolError::Io {
            path: p.path,
            message: p.message,
        },
    }
}

/// The data of one call's store.
struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    sink: Option<EventSink>,
    events_sent: usize,
    /// When the call's wall-clock deadline passes; no guest timer outlasts it.
    deadline: Instant,
}

impl CallState {
    fn new(wasi: WasiCtx, sink: Option<EventSink>) -> Self {
        CallState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                memory_cap: Limits::default().memory_bytes,
                used: 0,
                hit: false,
            },
            sink,
            events_sent: 0,
            deadline: Instant::now() + Limits::default().deadline,
        }
    }

    /// A sleep of `nanos` cut to what is left of the call's deadline (plus
    /// two epoch ticks, so the trap, not the timer, ends the call).
    fn clamp_sleep(&self, nanos: u64) -> u64 {
        let left = self.deadline.saturating_duration_since(Instant::now()) + 2 * EPOCH_TICK;
        nanos.min(u64::try_from(left.as_nanos()).unwrap_or(u64::MAX))
    }

    fn emit(&mut self, event: ToolEvent) {
        let Some(sink) = &self.sink else { return };
        self.events_sent += 1;
        match self.events_sent.cmp(&MAX_EVENTS_PER_CALL) {
            std::cmp::Ordering::Less => sink(event),
            std::cmp::Ordering::Equal => sink(ToolEvent::Log {
                level: LogLevel::Warn,
                message: format!(
                    "the tool sent more than {MAX_EVENTS_PER_CALL} log/progress events; the rest are dropped"
                ),
            }),
            std::cmp::Ordering::Greater => {}
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn capped(mut message: String) -> String {
    if message.len() > MAX_EVENT_MESSAGE {
        let mut end = MAX_EVENT_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

impl host::Host for CallState {
    fn log(&mut self, level: host::Level, message: String) {
        let level = match level {
            host::Level::Debug => LogLevel::Debug,
            host::Level::Info => LogLevel::Info,
            host::Level::Warn => LogLevel::Warn,
            host::Level::Error => LogLevel::Error,
        };
        self.emit(ToolEvent::Log {
            level,
            message: capped(message),
        });
    }

    fn progress(&mut self, done: u64, total: Option<u64>, message: String) {
        self.emit(ToolEvent::Progress {
            done,
            total,
            message: capped(message),
        });
    }
}

impl wit::Host for CallState {}

/// Caps the total linear memory of all of a call's instances; remembers
/// that it refused so the trap can be named.
struct MemoryLimiter {
    memory_cap: u64,
    used: u64,
    hit: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let after = self.used.saturating_sub(current as u64).saturating_add(desired as u64);
        if after > self.memory_cap {
            self.hit = true;
            return Err(wasmtime::format_err!("memory cap of {} bytes reached", self.memory_cap));
        }
        self.used = after;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}
