//! One egress policy, asked at every exit: the host-side filtering proxy
//! that the shell, the browser and sandboxed connectors reach through their
//! network namespace, the wasm sandbox's socket check, and remote connectors.
//!
//! Why one decision point: a rule enforced at some exits and not others is
//! no rule. Every path out of the machine names its [`Exit`] and asks
//! [`Run::decide`]; nothing else opens a connection for a sandboxed process.
//!
//! What it decides:
//! - **Off by default.** A run with no step running, or a step that declares
//!   no hosts, reaches nothing.
//! - **Declared hosts only.** A step's `network` effects are host:port
//!   patterns (`127.0.0.1:8123`, `*.example.com:443`, `api.example.com` =
//!   port 443), approved by the person with the step (or by the mode).
//! - **Sealed after a private read.** Once the run has read private data (a
//!   granted file, a connector result marked private: [`Run::mark_private_read`]),
//!   a host not contacted before is refused unless the person approved the
//!   step after that ([`Run::set_step`]'s `approved_by_person`). This closes
//!   "read a secret, then send it to a new address". The gate asks the person
//!   for such a step even in act mode ([`Run::approval_needed`],
//!   [`crate::gate::assess`]).
//! - Every refusal is journaled as an `Event::Blocked` for the step.
//!
//! [`proxy`] is the filtering HTTP proxy on a Unix socket; [`relay`] the tiny
//! forwarder that runs inside a sandbox's network namespace (whose only
//! interface is its own loopback) and carries each connection to that socket.

pub mod proxy;
pub mod relay;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard};

use deskhand_types::{Event, RunId, StepEffects, StepNo};

use crate::error::Result;

/// The port the relay listens on inside a sandbox's network namespace; the
/// sandboxed process's proxy is `http://127.0.0.1:RELAY_PORT`.
pub const RELAY_PORT: u16 = 3128;

/// Where a connection leaves from (for the ledger and the decision).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Exit {
    /// A native shell command (through the relay and the proxy).
    Shell,
    /// A wasm component (the sandbox's socket check).
    Wasm,
    /// The headless browser (through the relay and the proxy).
    Browser,
    /// A local connector, by name (through the relay and the proxy).
    Connector(String),
    /// A remote connector, by name (deskhand's own connection to it).
    Remote(String),
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Shell => f.write_str("the shell"),
            Exit::Wasm => f.write_str("a sandboxed tool"),
            Exit::Browser => f.write_str("the browser"),
            Exit::Connector(name) => write!(f, "the connector {name}"),
            Exit::Remote(name) => write!(f, "the remote connector {name}"),
        }
    }
}

/// How an agent's sandboxes reach the egress proxy.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How to start the relay inside a sandbox's namespace (program + leading
    /// arguments): `deskhand __egress-relay` in the product ([`set_process_relay`]).
    /// `None`: a step that declares hosts cannot run native code with network.
    pub relay: Option<Vec<String>>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            relay: PROCESS_RELAY.get().cloned(),
        }
    }
}

static PROCESS_RELAY: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Sets the relay every agent of this process uses by default (the binary
/// sets its own executable, `deskhand __egress-relay`, once at start).
pub fn set_process_relay(relay: Vec<String>) -> bool {
    PROCESS_RELAY.set(relay).is_ok()
}

/// Records an event of the run (a `Blocked` refusal) in its journal. Called
/// from the proxy's threads, so it must not need the agent: the agent's own
/// one queues the event and emits it through the run's writer after the call.
pub type Journaler = Arc<dyn Fn(&RunId, Event) + Send + Sync>;

/// One declared host:port pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lower case, without brackets; may start with `*.` (any subdomain, not the domain itself).
    host: String,
    port: u16,
}

impl HostPattern {
    /// Parses `host:port`, `*.domain:port`, `[v6]:port`, or a bare host (port 443).
    pub fn parse(text: &str) -> std::result::Result<HostPattern, String> {
        let bad = |why: &str| {
            format!(
                "the network host {text:?} {why}; write host:port, such as api.example.com:443, *.example.com:443 or 127.0.0.1:8080"
            )
        };
        let text_trim = text.trim();
        if text_trim.contains("://") || text_trim.contains('/') {
            return Err(bad("is a URL, not a host"));
        }
        let (host, port) = if let Some(rest) = text_trim.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(|| bad("has an unclosed ["))?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(bad("has text after ]")),
            }
        } else if text_trim.matches(':').count() > 1 {
            return Err(bad("is an IPv6 address without brackets"));
        } else {
            match text_trim.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (text_trim, None),
            }
        };
        let port = match port {
            None => 443,
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(bad("has no valid port (1-65535)")),
                Ok(p) => p,
            },
        };
        let host = host.to_ascii_lowercase();
        let name = host.strip_prefix("*.").unwrap_or(&host);
        let literal_v6 = name.parse::<std::net::Ipv6Addr>().is_ok() && !host.starts_with("*.");
        let valid = !name.is_empty()
            && name.len() <= 253
            && (literal_v6
                || name.split('.').all(|l| {
                    !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                }));
        if !valid {
            return Err(bad("is not a host name or address"));
        }
        Ok(HostPattern { host, port })
    }

    /// Whether a connection to `host` (already lower case) on `port` falls under this pattern.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if port != self.port {
            return false;
        }
        match self.host.strip_prefix('*') {
            Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
            None => host == self.host,
        }
    }

    /// A single host (no wildcard): what a contacted entry can equal.
    fn exact(&self) -> Option<String> {
        (!self.host.starts_with("*.")).then(|| key(&self.host, self.port))
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&key(&self.host, self.port))
    }
}

/// `host:port`, with brackets around an IPv6 address.
fn key(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn normalize(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// Checks that every declared host of a step is a pattern the policy understands.
pub fn check_declared(hosts: &[String]) -> std::result::Result<(), String> {
    hosts.iter().try_for_each(|h| HostPattern::parse(h).map(|_| ()))
}

/// What the person must be asked before a step with network hosts starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedHosts {
    /// The declared hosts the run has not contacted yet.
    pub hosts: Vec<String>,
    /// Why: what private data the run (or this very step) reads.
    pub private: String,
}

impl SealedHosts {
    /// The line the person reads in the step's question.
    pub fn describe(&self) -> String {
        format!(
            "this run has read private files ({}); this step would contact {}, which the run has not contacted \
             before: approve only if that data may go there",
            self.private,
            self.hosts.join(", ")
        )
    }
}

/// The running step's view of the policy.
#[derive(Debug, Default)]
struct StepState {
    step: Option<StepNo>,
    hosts: Vec<HostPattern>,
    approved_by_person: bool,
    /// Declared names resolved for the wasm socket check (which sees addresses), on first use.
    resolved: Option<HashMap<SocketAddr, String>>,
}

/// What a run and its sub-agents share: a secret a sub-agent read seals its parent too.
#[derive(Debug, Default)]
struct Shared {
    sealed: Option<String>,
    contacted: BTreeSet<String>,
    /// The run has ended ([`Run::end_run`]): nothing is decided any more.
    ended: bool,
}

/// One run's egress state: the one decision point every exit asks. Shared as `Arc<Run>`.
pub struct Run {
    run: RunId,
    journal: Journaler,
    shared: Arc<Mutex<Shared>>,
    step: Mutex<StepState>,
    proxy: Mutex<Option<Arc<proxy::Proxy>>>,
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("run", &self.run)
            .field("sealed", &self.is_sealed())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain data behind; keep deciding.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Run {
    /// A run with no network at all (the default: off).
    pub fn new(run: RunId, journal: Journaler) -> Arc<Run> {
        Arc::new(Run {
            run,
            journal,
            shared: Arc::default(),
            step: Mutex::default(),
            proxy: Mutex::new(None),
        })
    }

    /// A sub-agent's egress: its own steps (and proxy), the parent's seal and contacted hosts.
    pub fn child(&self, run: RunId, journal: Journaler) -> Arc<Run> {
        Arc::new(Run {
            run,
            journal,
            shared: Arc::clone(&self.shared),
            step: Mutex::default(),
            proxy: Mutex::new(None),
        })
    }

    /// The run this egress belongs to.
    pub fn run_id(&self) -> &RunId {
        &self.run
    }

    /// The step now running, its declared host:port patterns (StepEffects.network, e.g. "127.0.0.1:8123",
    /// "*.example.com:443", "api.example.com" = port 443) and whether the person approved them after
    /// the run was sealed. A pattern that does not parse allows nothing (plans are checked before).
    ///
    /// Connections and tunnels the proxy holds open for a host the new step
    /// does not allow are closed: a connection decided in one step does not
    /// carry data in the next.
    pub fn set_step(&self, step: StepNo, hosts: &[String], approved_by_person: bool) {
        let hosts = hosts.iter().filter_map(|h| HostPattern::parse(h).ok()).collect();
        *lock(&self.step) = StepState {
            step: Some(step),
            hosts,
            approved_by_person,
            resolved: None,
        };
        self.close_disallowed();
    }

    /// The step the policy now answers for.
    pub fn current_step(&self) -> Option<StepNo> {
        lock(&self.step).step
    }

    /// No step runs any more (between steps, at the end): nothing is reachable,
    /// and every connection and tunnel the proxy holds open is closed.
    pub fn end_step(&self) {
        *lock(&self.step) = StepState::default();
        self.close_disallowed();
    }

    /// The run has ended: no step runs, every connection the proxy holds is
    /// closed, and nothing is decided any more (for its sub-agents either).
    /// What stays: `Run::allows` answers yes for a host the run contacted,
    /// so a connection it opened there can still be ended politely (a remote
    /// connector's session `DELETE`, which carries nothing of the run's).
    pub fn end_run(&self) {
        self.end_step();
        lock(&self.shared).ended = true;
    }

    /// Whether [`Run::end_run`] was called: nothing new is opened after it.
    pub fn is_ended(&self) -> bool {
        lock(&self.shared).ended
    }

    /// Closes the proxy's open connections whose host the policy no longer allows.
    fn close_disallowed(&self) {
        let proxy = lock(&self.proxy).clone();
        if let Some(proxy) = proxy {
            proxy.close_unless(|host, port| self.allows(host, port));
        }
    }

    /// Whether a connection to host:port would be allowed now, without recording
    /// or journaling anything (for connections already open). After
    /// [`Run::end_run`]: whether the run contacted it (to end what it opened there).
    pub(crate) fn allows(&self, host: &str, port: u16) -> bool {
        let host = normalize(host);
        let target = key(&host, port);
        let st = lock(&self.step);
        let shared = lock(&self.shared);
        if shared.ended {
            return shared.contacted.contains(&target);
        }
        verdict(&Exit::Shell, &st, &shared, &host, port, &target).is_ok()
    }

    /// A step has read private data (a granted file, a connector result marked private): seal the run.
    /// The first seal is journaled as a notice ([`sealed_in_notice`]), so a
    /// resumed run is sealed again whatever sealed it (a private connector's
    /// result leaves no trace in the plan).
    pub fn mark_private_read(&self, what: &str) {
        let first = {
            let mut shared = lock(&self.shared);
            let first = shared.sealed.is_none();
            shared.sealed.get_or_insert_with(|| what.to_owned());
            first
        };
        if first {
            (self.journal)(
                &self.run,
                Event::Notice {
                    message: format!("{SEAL_NOTICE}{what}"),
                },
            );
        }
    }

    /// Seals a resumed run as it was before the interruption (from the notice
    /// [`Run::mark_private_read`] journaled), without journaling it again.
    pub fn restore_sealed(&self, what: &str) {
        lock(&self.shared).sealed.get_or_insert_with(|| what.to_owned());
    }

    pub fn is_sealed(&self) -> bool {
        lock(&self.shared).sealed.is_some()
    }

    /// Hosts contacted so far in this run (`host:port`).
    pub fn contacted(&self) -> Vec<String> {
        lock(&self.shared).contacted.iter().cloned().collect()
    }

    /// Restores a host the run contacted before it was interrupted, from the
    /// notice [`Run::decide`] journaled ([`contacted_in_notice`]); on resume.
    pub fn restore_contacted(&self, target: &str) {
        lock(&self.shared).contacted.insert(target.to_owned());
    }

    /// Whether a step declaring `effects` must be asked of the person even in
    /// act mode: it declares hosts the run has not contacted, and the run is
    /// sealed or the step itself reads (it could send what it reads; a folder
    /// it writes is readable to it too, so writes count as reads).
    pub fn approval_needed(&self, effects: &StepEffects) -> Option<SealedHosts> {
        if effects.network.is_empty() {
            return None;
        }
        let shared = lock(&self.shared);
        let private = match (&shared.sealed, readable(effects)) {
            (Some(what), _) => what.clone(),
            (None, Some(folders)) => format!("this step reads {folders}"),
            (None, None) => return None,
        };
        let hosts: Vec<String> = effects
            .network
            .iter()
            .filter(|h| {
                HostPattern::parse(h)
                    .ok()
                    .and_then(|p| p.exact())
                    .is_none_or(|k| !shared.contacted.contains(&k))
            })
            .cloned()
            .collect();
        (!hosts.is_empty()).then_some(SealedHosts { hosts, private })
    }

    /// THE decision: may `exit` connect to host:port now? Ok records the host as contacted; Err is a reason
    /// for the person and the model, and a `Event::Blocked { step, reason }` is journaled. The first
    /// contact of each host is journaled too, as a notice ([`contact_notice`]), so a resumed run
    /// remembers it.
    pub fn decide(&self, exit: &Exit, host: &str, port: u16) -> std::result::Result<(), String> {
        let host = normalize(host);
        let target = key(&host, port);
        let (step, verdict, first) = {
            let st = lock(&self.step);
            let mut shared = lock(&self.shared);
            let verdict = verdict(exit, &st, &shared, &host, port, &target);
            let first = verdict.is_ok() && shared.contacted.insert(target.clone());
            (st.step.unwrap_or(StepNo::NONE), verdict, first)
        };
        match &verdict {
            Err(reason) => (self.journal)(
                &self.run,
                Event::Blocked {
                    step,
                    reason: reason.clone(),
                },
            ),
            Ok(()) if first => (self.journal)(
                &self.run,
                Event::Notice {
                    message: contact_notice(&target, exit, step),
                },
            ),
            Ok(()) => {}
        }
        verdict
    }

    /// A remote connector's sign-in is renewed at the token endpoint the
    /// person signed in with (`host:port`). Allowed while a step runs (the
    /// caller has just decided the connector's own host for that step):
    /// only deskhand's fixed renewal request goes there, never anything a
    /// model, a tool or a file wrote, so the sealed rule has nothing to
    /// guard. Each renewal is journaled; the host does not count as contacted
    /// (nothing else reaches it through this).
    pub fn decide_renewal(&self, connector: &str, host: &str, port: u16) -> std::result::Result<(), String> {
        let target = key(&normalize(host), port);
        let step = lock(&self.step).step;
        let (step, verdict) = match step {
            Some(n) => (n, Ok(())),
            None => (
                StepNo::NONE,
                Err(format!(
                    "the remote connector {connector} tried to renew its sign-in at {target} while no step of the run \
                     was running"
                )),
            ),
        };
        let event = match &verdict {
            Ok(()) => Event::Notice {
                message: format!("renewing the sign-in of the remote connector {connector} at {target} (step {step})"),
            },
            Err(reason) => Event::Blocked {
                step,
                reason: reason.clone(),
            },
        };
        (self.journal)(&self.run, event);
        verdict
    }

    /// The wasm sandbox's check: it sees addresses, not names, so the step's
    /// declared names are resolved (once per step, on first use) and an
    /// address counts as the name it resolved from. The implicit bind to an
    /// unspecified address (`0.0.0.0:0`) that every connect makes is allowed;
    /// nothing else that is not a connect to a declared host is.
    pub fn decide_addr(&self, exit: &Exit, addr: SocketAddr, connect: bool) -> std::result::Result<(), String> {
        if !connect {
            if addr.ip().is_unspecified() && addr.port() == 0 {
                return Ok(());
            }
            let reason = format!(
                "{exit} tried to listen on {addr}; sandboxed code may only connect to the hosts its step declares"
            );
            let step = lock(&self.step).step.unwrap_or(StepNo::NONE);
            (self.journal)(
                &self.run,
                Event::Blocked {
                    step,
                    reason: reason.clone(),
                },
            );
            return Err(reason);
        }
        let name = {
            let mut st = lock(&self.step);
            let hosts = st.hosts.clone();
            let resolved = st.resolved.get_or_insert_with(|| resolve(&hosts));
            resolved.get(&addr).cloned()
        };
        match name {
            Some(name) => self.decide(exit, &name, addr.port()),
            None => self.decide(exit, &addr.ip().to_string(), addr.port()),
        }
    }

    /// The run's proxy, started on first use (one per run, on a Unix socket in a private 0700 dir).
    pub fn proxy(self: &Arc<Self>) -> Result<Arc<proxy::Proxy>> {
        let mut slot = lock(&self.proxy);
        if let Some(p) = &*slot {
            return Ok(Arc::clone(p));
        }
        let p = Arc::new(proxy::Proxy::start(Arc::downgrade(self))?);
        *slot = Some(Arc::clone(&p));
        Ok(p)
    }
}

/// The policy's answer for host:port (`target`, the two as one key) in the step state `st`.
fn verdict(
    exit: &Exit,
    st: &StepState,
    shared: &Shared,
    host: &str,
    port: u16,
    target: &str,
) -> std::result::Result<(), String> {
    if shared.ended {
        return Err(format!(
            "{exit} tried to reach {target} after the run ended; nothing is reachable outside a step"
        ));
    }
    match st.step {
        None => Err(format!(
            "{exit} tried to reach {target} while no step of the run was running; nothing is reachable outside a step"
        )),
        Some(n) if !st.hosts.iter().any(|p| p.matches(host, port)) => Err(format!(
            "{exit} tried to reach {target}, which step {n} does not declare; a step reaches only the network hosts it \
             declares, approved with it"
        )),
        Some(_) => match &shared.sealed {
            Some(what) if !st.approved_by_person && !shared.contacted.contains(target) => Err(format!(
                "{exit} tried to reach {target} after the run read private data ({what}); a host the run had \
                 not contacted before needs the person's own approval of the step"
            )),
            _ => Ok(()),
        },
    }
}

/// The folders a step with `effects` can read, for the person ("a, b"):
/// what it declares reading and what it declares writing (a sandbox sees a
/// folder it writes, so what is in it can be sent). None if neither.
pub fn readable(effects: &StepEffects) -> Option<String> {
    let mut folders: Vec<String> = Vec::new();
    for p in effects.reads.iter().chain(&effects.writes) {
        let p = p.display().to_string();
        if !folders.contains(&p) {
            folders.push(p);
        }
    }
    (!folders.is_empty()).then(|| folders.join(", "))
}

const CONTACT_NOTICE: &str = "first contact of this run with ";
const SEAL_NOTICE: &str = "the run has read private data, so new hosts need the person: ";

/// What sealed the run, from the notice [`Run::mark_private_read`] journals; None for any other notice.
pub fn sealed_in_notice(message: &str) -> Option<&str> {
    message.strip_prefix(SEAL_NOTICE)
}

/// The notice journaled when a run first contacts `target` (`host:port`).
pub fn contact_notice(target: &str, exit: &Exit, step: StepNo) -> String {
    format!("{CONTACT_NOTICE}{target} ({exit}, step {step})")
}

/// The `host:port` a [`contact_notice`] names; None for any other notice.
pub fn contacted_in_notice(message: &str) -> Option<String> {
    let (target, _) = message.strip_prefix(CONTACT_NOTICE)?.split_once(" (")?;
    HostPattern::parse(target).ok()?.exact().filter(|k| k == target)
}

/// A byte stream both ends of a tunnel can be.
pub(crate) trait Duplex: Read + Write + Send + Sized + 'static {
    fn duplicate(&self) -> std::io::Result<Self>;
    fn close_write(&self);
}

impl Duplex for std::net::TcpStream {
    fn duplicate(&self) -> std::io::Result<Self> {
        self.try_clone()
    }
    fn close_write(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

impl Duplex for std::os::unix::net::UnixStream {
    fn duplicate(&self) -> std::io::Result<Self> {
        self.try_clone()
    }
    fn close_write(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

/// Copies bytes both ways until each side has finished sending (or goes
/// idle past its read timeout); one extra thread, the other direction here.
pub(crate) fn splice<A: Duplex, B: Duplex>(a: A, b: B) -> std::io::Result<()> {
    let (mut a_read, mut b_write) = (a.duplicate()?, b.duplicate()?);
    let forward = std::thread::Builder::new()
        .name("egress-splice".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let _ = std::io::copy(&mut a_read, &mut b_write);
            b_write.close_write();
        })?;
    let (mut b_read, mut a_write) = (b, a);
    let _ = std::io::copy(&mut b_read, &mut a_write);
    a_write.close_write();
    let _ = forward.join();
    Ok(())
}

/// The addresses the declared names resolve to now (IP literals as they are).
fn resolve(hosts: &[HostPattern]) -> HashMap<SocketAddr, String> {
    let mut out = HashMap::new();
    for p in hosts {
        if p.host.starts_with("*.") {
            continue;
        }
        if let Ok(ip) = p.host.parse::<IpAddr>() {
            out.insert(SocketAddr::new(ip, p.port), p.host.clone());
            continue;
        }
        if let Ok(addrs) = (p.host.as_str(), p.port).to_socket_addrs() {
            // As the proxy: a name never leads to this machine or its link.
            for a in addrs.filter(|a| !proxy::on_this_machine_or_link(a.ip())) {
                out.entry(a).or_insert_with(|| p.host.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
