//! One run's connectors: the lists as the run started, and the servers it
//! started, each in its own sandbox, started on a tool's first call and
//! reused for the rest of the run; ended when the run ends
//! ([`Connectors::shutdown`]) or its [`Connectors`] is dropped.
//!
//! A server sees only the folders of the step that calls it, read-only
//! (the person's files change only through the change pipeline; the
//! caller, `agent/connector_calls.rs`, binds them so); a later step that
//! declares other folders gets the server started again with those. No network unless the step declares
//! hosts, and then only through the run's egress ([`crate::egress`]).
//! A remote connector is connected to over Streamable HTTP, and each of its
//! requests is decided by the run's egress: the step must declare its
//! host:port. A connector the person never approved is not started in a run at all.
//!
//! What the model is offered comes from the approved (pinned) definitions,
//! so listing tools starts nothing; each start compares the live list with
//! the pins and quarantines what changed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::mcp::{CallResult, Client};
use super::pins::{Change, Pins};
use super::{Connector, ConnectorTool, Transport, allow::Allowed};
use crate::confine::Confined;
use crate::egress;

/// Looks up a variable of deskhand's own environment by name.
pub type EnvSource = dyn Fn(&str) -> Option<String> + Send + Sync;

static ENV_SOURCE: std::sync::OnceLock<Box<EnvSource>> = std::sync::OnceLock::new();

/// Set once by the binary: where the variables connectors pass (`passEnv`)
/// are read from. Only the names a connector lists are ever looked up; the
/// library never reads the process environment itself.
pub fn set_env_source(source: Box<EnvSource>) {
    let _ = ENV_SOURCE.set(source);
}

/// What a sandbox gives a server: its folders and its network.
#[derive(Debug, Clone, Default)]
pub struct Binds {
    pub read_only: Vec<PathBuf>,
    pub read_write: Vec<PathBuf>,
    /// The run's egress, when the step declares hosts.
    pub network: Option<Arc<egress::Run>>,
    /// How to start the egress relay in the sandbox (the agent's settings); else the list's.
    pub relay: Option<Vec<String>>,
}

impl Binds {
    fn same(&self, other: &Binds) -> bool {
        self.read_only == other.read_only
            && self.read_write == other.read_write
            && self.network.is_some() == other.network.is_some()
    }
}

/// A live tool found quarantined when its server started.
#[derive(Debug, Clone, PartialEq)]
pub struct Quarantined {
    pub connector: String,
    pub tool: String,
    pub change: Change,
}

struct Started {
    client: Client,
    binds: Binds,
    live: Vec<ConnectorTool>,
}

/// One run's connectors.
pub struct Connectors {
    config_dir: Option<PathBuf>,
    list: Vec<Connector>,
    /// Values of the variables the connectors pass from deskhand's environment
    /// (`passEnv`, and the `${VAR}`s of remote connectors' headers).
    env: BTreeMap<String, String>,
    /// How to start the egress relay inside a sandbox (see [`Confined::relay`]).
    relay: Option<Vec<String>>,
    pins: Mutex<Pins>,
    allowed: Mutex<Allowed>,
    started: Mutex<HashMap<String, Started>>,
    /// Tools found quarantined in this run (hidden from the model from then on).
    quarantined: Mutex<Vec<Quarantined>>,
}

impl std::fmt::Debug for Connectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connectors")
            .field("list", &self.list.iter().map(|c| &c.name).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Connectors {
    /// The connectors a run in the workspace (`state_dir`, `root`) sees, with
    /// the person's approvals from `config_dir`; `env` looks up the variables
    /// connectors pass from deskhand's environment (only those are read).
    pub fn load(
        config_dir: Option<&Path>,
        state_dir: &Path,
        root: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        relay: Option<Vec<String>>,
    ) -> Result<Connectors, String> {
        let list = super::config::all(config_dir, state_dir, root)?;
        Connectors::new(config_dir, list, env, relay)
    }

    /// The connectors a run in `ws` sees, with the variables they pass taken
    /// through the front end's [`set_env_source`] and the relay from
    /// [`egress::Settings`]' default.
    pub fn for_workspace(ws: &crate::workspace::Workspace, config_dir: Option<&Path>) -> Result<Connectors, String> {
        let env = |name: &str| ENV_SOURCE.get().and_then(|f| f(name));
        Connectors::load(
            config_dir,
            &ws.state_dir(),
            ws.root(),
            &env,
            egress::Settings::default().relay,
        )
    }

    /// A run's connectors from a list already read.
    pub fn new(
        config_dir: Option<&Path>,
        list: Vec<Connector>,
        env: &dyn Fn(&str) -> Option<String>,
        relay: Option<Vec<String>>,
    ) -> Result<Connectors, String> {
        let mut values = BTreeMap::new();
        for c in &list {
            let mut names = c.settings.pass_env.clone();
            if let Transport::Remote { headers, .. } = &c.transport {
                names.extend(headers.values().flat_map(|v| super::mcp::http::variables(v)));
            }
            for name in names {
                if let Some(v) = env(&name) {
                    values.insert(name, v);
                }
            }
        }
        let mut pins = Pins::load(config_dir)?;
        // Pins from before connectors' definitions were fingerprinted: take
        // the definitions as they are now as the approved ones, once.
        let mut adopted = false;
        for c in &list {
            adopted |= pins.adopt(c);
        }
        if adopted && config_dir.is_some() {
            pins.save()?;
        }
        // A connector whose definition changed since approval: every tool it
        // had approved is quarantined before anything starts it.
        let mut quarantined = Vec::new();
        for c in list.iter().filter(|c| pins.connector_changed(c)) {
            for tool in pins.tools(&c.key()) {
                quarantined.push(Quarantined {
                    connector: c.name.clone(),
                    tool: tool.name,
                    change: Change::ConnectorChanged,
                });
            }
        }
        Ok(Connectors {
            config_dir: config_dir.map(Path::to_owned),
            list,
            env: values,
            relay,
            pins: Mutex::new(pins),
            allowed: Mutex::new(Allowed::load(config_dir)?),
            started: Mutex::new(HashMap::new()),
            quarantined: Mutex::new(quarantined),
        })
    }

    pub fn list(&self) -> &[Connector] {
        &self.list
    }

    pub fn get(&self, name: &str) -> Option<&Connector> {
        self.list.iter().find(|c| c.name == name)
    }

    pub fn config_dir(&self) -> Option<&Path> {
        self.config_dir.as_deref()
    }

    /// The tools the model may be offered: approved (pinned), enabled, not
    /// found quarantined in this run.
    pub fn offered(&self) -> Vec<(&Connector, ConnectorTool)> {
        let Ok(pins) = self.pins.lock() else {
            return Vec::new();
        };
        let quarantined = self.quarantined.lock().map(|q| q.clone()).unwrap_or_default();
        let mut out = Vec::new();
        for c in &self.list {
            for tool in pins.tools(&c.key()) {
                let hidden = c.settings.disabled_tools.contains(&tool.name)
                    || quarantined.iter().any(|q| q.connector == c.name && q.tool == tool.name);
                if !hidden {
                    out.push((c, tool));
                }
            }
        }
        out
    }

    /// The approved definition of `tool` of `connector`, if the person approved it.
    pub fn pinned(&self, connector: &Connector, tool: &str) -> Option<ConnectorTool> {
        let pins = self.pins.lock().ok()?;
        pins.get(&connector.key(), tool)
            .and_then(|p| ConnectorTool::from_definition(&p.definition))
    }

    /// Why `tool` is quarantined in this run, if it is.
    pub fn quarantine_of(&self, connector: &str, tool: &str) -> Option<Change> {
        self.quarantined
            .lock()
            .ok()?
            .iter()
            .find(|q| q.connector == connector && q.tool == tool)
            .map(|q| q.change.clone())
    }

    /// The tools found quarantined so far: those of a connector whose
    /// definition changed (known when the list is loaded), and those found
    /// changed or added when a server started.
    pub fn quarantined(&self) -> Vec<Quarantined> {
        self.quarantined.lock().map(|q| q.clone()).unwrap_or_default()
    }

    /// How many tools this run found quarantined so far.
    pub fn quarantined_count(&self) -> usize {
        self.quarantined.lock().map(|q| q.len()).unwrap_or(0)
    }

    pub fn always_allowed(&self, connector: &Connector, tool: &str) -> bool {
        self.allowed.lock().is_ok_and(|a| a.is_allowed(&connector.key(), tool))
    }

    /// Remembers the person's "always allow" for `tool` (from an approval card).
    pub fn allow_always(&self, connector: &Connector, tool: &str) -> Result<(), String> {
        let mut a = self
            .allowed
            .lock()
            .map_err(|_| "the allowed tools are unavailable".to_owned())?;
        a.set(&connector.key(), tool, true);
        a.save()
    }

    /// The sandboxed command that starts `connector` with `binds`.
    pub fn command(&self, connector: &Connector, binds: &Binds) -> Result<std::process::Command, String> {
        let Transport::Stdio { command, args, env } = &connector.transport else {
            return Err(format!(
                "the connector {} is a remote server; this version of deskhand starts local servers only",
                connector.name
            ));
        };
        let program = resolve_program(command)?;
        let mut confined = Confined::new(&program);
        confined.args = args.clone();
        confined.env = env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for name in &connector.settings.pass_env {
            if let Some(v) = self.env.get(name) {
                confined.env.push((name.clone(), v.clone()));
            }
        }
        confined.read_only = install_roots(&program, args);
        confined.read_only.extend(binds.read_only.iter().cloned());
        confined.read_write = binds.read_write.clone();
        if let Some(run) = &binds.network {
            confined.network = Some((run.clone(), egress::Exit::Connector(connector.name.clone())));
            confined.relay = binds.relay.clone().or_else(|| self.relay.clone());
        }
        confined.command().map_err(|e| e.to_string())
    }

    /// Starts `connector` for the person (`deskhand connectors add/test/approve`),
    /// with no folders and no network, and returns its live tools and the protocol agreed.
    /// A remote connector is connected to: the person's command is the approval.
    pub fn probe(&self, connector: &Connector, binds: &Binds) -> Result<(Vec<ConnectorTool>, String), String> {
        let client = self.start_client(connector, binds)?;
        let tools = client.tools()?;
        Ok((tools, client.protocol().to_owned()))
    }

    /// Starts a local connector in its sandbox, or connects to a remote one
    /// (through `binds.network`, the run's egress, when there is one).
    fn start_client(&self, connector: &Connector, binds: &Binds) -> Result<Client, String> {
        match &connector.transport {
            Transport::Stdio { .. } => {
                let command = self.command(connector, binds)?;
                Client::start(&connector.name, command)
            }
            Transport::Remote { url, headers } => {
                let lookup = |name: &str| self.env.get(name).cloned();
                let headers = headers
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), super::mcp::http::expand(&connector.name, k, v, &lookup)?)))
                    .collect::<Result<Vec<_>, String>>()?;
                let bearer = super::oauth::SignIns::load(self.config_dir.as_deref())?
                    .for_connector(connector)
                    .map(|s| super::mcp::http::Bearer {
                        config_dir: self.config_dir.clone(),
                        key: connector.key(),
                        current: s.clone(),
                    });
                Client::connect(&connector.name, url, headers, bearer, binds.network.clone())
            }
        }
    }

    /// host:port of a remote connector (what a step declares in its network hosts to use it).
    pub fn remote_host(connector: &Connector) -> Option<String> {
        let Transport::Remote { url, .. } = &connector.transport else {
            return None;
        };
        let e = super::mcp::http::endpoint(&connector.name, url).ok()?;
        Some(if e.host.contains(':') {
            format!("[{}]:{}", e.host, e.port)
        } else {
            format!("{}:{}", e.host, e.port)
        })
    }

    /// Starts `connector` with `binds` unless this run already has it so, and
    /// compares its tools with the pins: the tools newly found quarantined.
    pub fn ensure(&self, connector: &Connector, binds: Binds) -> (Vec<Quarantined>, Result<(), String>) {
        let (found, result) = self.call(
            connector,
            binds,
            "",
            &serde_json::Value::Null,
            std::time::Duration::ZERO,
        );
        (found, result.map(|_| ()))
    }

    /// Calls `tool` of `connector`, starting its server with `binds` first if
    /// this run has not (or started it with other binds). Returns the tools
    /// newly found quarantined (for the ledger) and the call's result; a
    /// quarantined `tool` is refused with the reason.
    pub fn call(
        &self,
        connector: &Connector,
        binds: Binds,
        tool: &str,
        arguments: &serde_json::Value,
        timeout: std::time::Duration,
    ) -> (Vec<Quarantined>, Result<CallResult, String>) {
        let (mut found, result) = self.call_once(connector, binds.clone(), tool, arguments, timeout);
        // A remote server that lost the session did not handle the request:
        // connect again and send it once more.
        let ended = self
            .started
            .lock()
            .is_ok_and(|s| s.get(&connector.name).is_some_and(|s| s.client.is_ended()));
        if result.is_err() && ended {
            let (again, result) = self.call_once(connector, binds, tool, arguments, timeout);
            found.extend(again);
            return (found, result);
        }
        (found, result)
    }

    fn call_once(
        &self,
        connector: &Connector,
        binds: Binds,
        tool: &str,
        arguments: &serde_json::Value,
        timeout: std::time::Duration,
    ) -> (Vec<Quarantined>, Result<CallResult, String>) {
        let mut found = Vec::new();
        let mut started = match self.started.lock() {
            Ok(s) => s,
            Err(_) => return (found, Err("the connectors of this run are unavailable".into())),
        };
        let (pins_ok, changed) = match self.pins.lock() {
            Ok(p) => (p.approved_any(&connector.key()), p.connector_changed(connector)),
            Err(_) => (false, false),
        };
        if changed {
            // What it runs or may do is not what the person approved: not started.
            return (
                found,
                Err(quarantine_reason(&connector.name, tool, &Change::ConnectorChanged)),
            );
        }
        if !pins_ok {
            return (
                found,
                Err(format!(
                    "the connector {} has no tools the person approved; they approve them with `deskhand connectors \
                     approve {}`",
                    connector.name, connector.name
                )),
            );
        }
        if matches!(connector.transport, Transport::Remote { .. }) && binds.network.is_none() {
            // In a run, a remote connector is reached only through the run's egress.
            return (
                found,
                Err(format!(
                    "the remote connector {} can be used only by a step that declares its host{} in the step's \
                     network hosts",
                    connector.name,
                    Connectors::remote_host(connector)
                        .map(|h| format!(" ({h})"))
                        .unwrap_or_default()
                )),
            );
        }
        // A remote connector has no folders: once connected, it is reused (its
        // egress answers for whichever step is running).
        let remote = matches!(connector.transport, Transport::Remote { .. });
        let needs_new = started
            .get(&connector.name)
            .is_none_or(|s| s.client.is_ended() || !(remote || s.binds.same(&binds)));
        let relist = if needs_new {
            // Not started yet, or for other folders: start it (an old one ends when dropped).
            started.remove(&connector.name);
            let client = match self.start_client(connector, &binds) {
                Ok(c) => c,
                Err(e) => return (found, Err(e)),
            };
            started.insert(
                connector.name.clone(),
                Started {
                    client,
                    binds,
                    live: Vec::new(),
                },
            );
            true
        } else {
            started
                .get(&connector.name)
                .is_some_and(|s| s.client.take_list_changed())
        };
        if relist {
            let Some(s) = started.get_mut(&connector.name) else {
                return (found, Err("the connector was not started".into()));
            };
            match s.client.tools() {
                Ok(live) => s.live = live,
                Err(e) => return (found, Err(e)),
            }
            found = self.compare(connector, &s.live);
        }
        if tool.is_empty() {
            // Only started (`ensure`).
            return (
                found,
                Ok(CallResult {
                    text: String::new(),
                    structured: None,
                    is_error: false,
                }),
            );
        }
        if let Some(change) = self.quarantine_of(&connector.name, tool) {
            return (found, Err(quarantine_reason(&connector.name, tool, &change)));
        }
        let Some(s) = started.get(&connector.name) else {
            return (found, Err("the connector was not started".into()));
        };
        if !s.live.iter().any(|t| t.name == tool) {
            return (
                found,
                Err(format!(
                    "the connector {} no longer has a tool named {tool}; the person can look with `deskhand connectors \
                     test {}`",
                    connector.name, connector.name
                )),
            );
        }
        let result = s.client.call(tool, arguments, timeout);
        (found, result)
    }

    /// Quarantines live tools that differ from the pins; returns the ones new to this run.
    fn compare(&self, connector: &Connector, live: &[ConnectorTool]) -> Vec<Quarantined> {
        let Ok(pins) = self.pins.lock() else {
            return Vec::new();
        };
        let Ok(mut q) = self.quarantined.lock() else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for tool in live {
            if let Some(change) = pins.check(connector, tool)
                && !q.iter().any(|x| x.connector == connector.name && x.tool == tool.name)
            {
                let item = Quarantined {
                    connector: connector.name.clone(),
                    tool: tool.name.clone(),
                    change,
                };
                q.push(item.clone());
                found.push(item);
            }
        }
        found
    }

    /// Ends every server this run started: a local one is stopped (its
    /// stdin closed, then killed if it lingers), a remote one's session is
    /// ended (`DELETE` with its `Mcp-Session-Id`) where the run's egress still
    /// allows its host: after [`egress::Run::end_run`], a host the run
    /// contacted. Called when a run ends (the agent's `drive`) and on drop; a
    /// later call starts servers again.
    pub fn shutdown(&self) {
        if let Ok(mut s) = self.started.lock() {
            s.clear();
        }
    }
}

impl Drop for Connectors {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What the model and the person are told about a quarantined tool.
pub fn quarantine_reason(connector: &str, tool: &str, change: &Change) -> String {
    if *change == Change::ConnectorChanged {
        return format!(
            "the connector {connector} is quarantined ({}): none of its tools runs until the person reviews it and \
             approves it again (`deskhand connectors approve {connector}`)",
            change.as_str()
        );
    }
    format!(
        "the tool {tool} of the connector {connector} is quarantined ({}): it does not run until the person reviews \
         it and approves it again (`deskhand connectors approve {connector} {tool}`)",
        change.as_str()
    )
}

/// The program's path: as given if it has a slash, else found on the system's `PATH` folders.
fn resolve_program(command: &str) -> Result<PathBuf, String> {
    let p = Path::new(command);
    if command.contains('/') {
        return if p.is_absolute() && p.is_file() {
            Ok(p.to_owned())
        } else if p.is_absolute() {
            Err(format!(
                "the connector's command {command} is not there (no such file); install the server, or fix the path \
                 in the connector's list"
            ))
        } else {
            Err(format!(
                "the connector's command {command} is a relative path; give an absolute one"
            ))
        };
    }
    for dir in ["/usr/local/bin", "/usr/bin", "/bin"] {
        let candidate = Path::new(dir).join(command);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(format!(
        "the connector's command {command} is not in /usr/local/bin, /usr/bin or /bin, the folders its sandbox \
         shows; give its absolute path"
    ))
}

/// The folders a server's own files live in, shown read-only: for the program
/// and each argument that is an existing file, the package it belongs to (the
/// folder holding its `node_modules`, or a Python venv with the interpreter
/// it was made from), else its folder. Folders given as arguments are data,
/// not code: they are shown only where the step declares them.
fn install_roots(program: &Path, args: &[String]) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    let files = std::iter::once((program.to_owned(), true)).chain(
        args.iter()
            .map(PathBuf::from)
            .filter(|p| p.is_absolute() && p.is_file())
            .map(|p| (p, false)),
    );
    for (file, is_program) in files {
        for root in install_root(&file, is_program) {
            if !roots.iter().any(|r| root.starts_with(r)) {
                roots.retain(|r| !r.starts_with(&root));
                roots.push(root);
            }
        }
    }
    roots
}

/// The tree a server's program or argument file needs: its venv or npm
/// package (and the interpreter a venv was made from), else the program's
/// own folder, or an argument file alone (a `--credentials ~/creds.json`
/// shows that file, not the folder beside it). Never `/` nor a top-level
/// folder such as `/home`.
fn install_root(file: &Path, is_program: bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in file.ancestors().skip(1) {
        if dir.join("pyvenv.cfg").is_file() {
            out.push(dir.to_owned());
            // The interpreter the venv was made from (`home = /usr/bin`).
            if let Ok(cfg) = std::fs::read_to_string(dir.join("pyvenv.cfg"))
                && let Some(home) = cfg
                    .lines()
                    .find_map(|l| l.strip_prefix("home").map(|r| r.trim_start_matches([' ', '=']).trim()))
                && let Some(prefix) = Path::new(home).parent()
            {
                out.push(prefix.to_owned());
            }
            out.retain(|p| !["/usr", "/bin", "/lib", "/sbin"].iter().any(|s| p.starts_with(s)));
            out.retain(|p| p.components().count() > 2);
            return out;
        }
        if dir.file_name().is_some_and(|n| n == "node_modules") {
            if let Some(pkg) = dir.parent() {
                out.push(pkg.to_owned());
            }
            return out;
        }
    }
    match (is_program, file.parent()) {
        (true, Some(parent)) => out.push(parent.to_owned()),
        _ => out.push(file.to_owned()),
    }
    // Under a system folder it is already there.
    out.retain(|p| !["/usr", "/bin", "/lib", "/sbin"].iter().any(|s| p.starts_with(s)));
    out.retain(|p| p.components().count() > 2);
    out
}

impl Binds {
    /// What a server started for the person (`deskhand connectors
    /// add/test/approve`, the Connectors page) is shown: the folders its own
    /// arguments name, read-only, and no network. A run shows it only its
    /// step's folders.
    pub fn for_probe(connector: &Connector) -> Binds {
        let read_only = match &connector.transport {
            Transport::Stdio { args, .. } => args
                .iter()
                .map(PathBuf::from)
                .filter(|p| p.is_absolute() && p.is_dir())
                .collect(),
            Transport::Remote { .. } => Vec::new(),
        };
        Binds {
            read_only,
            ..Binds::default()
        }
    }
}
