//! The one builder of bubblewrap commands for long-lived sandboxed processes:
//! local MCP servers and the headless browser.
//!
//! Why one: every such process must get the same confinement, and two
//! builders drift. It reuses the shell sandbox's pure transform
//! ([`deskhand_host_vm::bwrap::transform`]): every namespace unshared
//! (network included), no capabilities, a new session, `--clearenv` and then
//! only the variables given, the host system read-only, a private `/tmp`,
//! only the folders given, and limits set by `prlimit` inside.
//!
//! With [`Confined::network`] set, the process still has no route out: its
//! namespace has only its own loopback, where the relay
//! ([`crate::egress::relay`]) listens on `127.0.0.1:`[`RELAY_PORT`] and carries
//! each connection to the run's filtering proxy over a Unix socket bound in
//! read-only; the proxy asks the run's egress decision point. The process
//! finds the proxy through `HTTP_PROXY`/`HTTPS_PROXY` (and lower case); a
//! program that ignores them (Node's `fetch`) has no network at all.
//!
//! The process's lifetime is the caller's: [`Confined::command`] returns a
//! [`Command`] with stdio left to the caller, and `--die-with-parent` ties the
//! sandbox to deskhand. Limits differ from a shell command's where a
//! long-lived process needs it: no CPU-time cap short of an hour, and no
//! address-space cap (V8 and Chromium reserve far more address space than
//! they use, and die under one). What caps them instead is the whole
//! sandbox's: at most [`MAX_PROCESSES`] processes and threads, and, where a
//! memory cgroup can be made, [`MEMORY_BYTES`] of memory together. As a
//! normal user the process cap is `prlimit --nproc` inside the sandbox; as
//! root, where the kernel ignores that, the sandbox starts inside its own
//! pids (and memory) cgroup ([`deskhand_host_vm::bwrap::DetachedCaps`]),
//! which it joins itself, so the caller still owns a plain child process.
//! File size and core dumps are capped as for the shell.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use deskhand_host_vm::bwrap::DetachedCaps;
use deskhand_host_vm::{Limits, Mount, ShellPolicy};

use crate::egress::{self, RELAY_PORT};
use crate::error::{Error, Result};

/// Where the proxy's socket appears inside a sandbox.
pub const SANDBOX_PROXY_SOCKET: &str = "/.deskhand/proxy.sock";
/// Where the relay executable appears inside a sandbox, when it is not under a system folder.
pub const SANDBOX_RELAY: &str = "/.deskhand/relay";

/// Host folders every sandbox already sees read-only (the shell's system binds).
const SYSTEM: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// A long-lived process to start in its own sandbox.
#[derive(Debug, Clone)]
pub struct Confined {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The only environment variables (bwrap --clearenv first; keys never inherited). `PATH` and
    /// `HOME` default to the shell's (`/usr/local/bin:/usr/bin:/bin`, `/tmp`) unless given here.
    pub env: Vec<(String, String)>,
    /// Extra read-only binds beyond the runtime trees (/usr, /lib*, /bin, /etc's needed files, fonts).
    /// Entries under /etc are shown at their place; entries under the system folders are already there.
    pub read_only: Vec<PathBuf>,
    /// Folders the step declares, bound read-write (or read-only for reads).
    pub read_write: Vec<PathBuf>,
    pub cwd: Option<PathBuf>,
    /// None: no network at all (--unshare-net, nothing bound). Some: the run's egress; the process gets a
    /// loopback-only namespace with the relay on 127.0.0.1:PORT and HTTP_PROXY/HTTPS_PROXY/http_proxy/
    /// https_proxy pointing at it, and the decision point answers each CONNECT.
    pub network: Option<(Arc<egress::Run>, egress::Exit)>,
    /// How to start the relay inside the namespace (program + leading args); from AgentSettings.
    pub relay: Option<Vec<String>>,
}

/// What a sandbox needs to reach the run's proxy: the binds, the environment,
/// and the relay command that wraps the sandboxed program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressWiring {
    pub mounts: Vec<Mount>,
    pub env: Vec<(String, String)>,
    /// Put before the program: `relay ... SOCKET 127.0.0.1:PORT --`.
    pub prefix: Vec<String>,
}

/// The proxy URL a sandboxed process is given (the relay inside its namespace).
pub fn proxy_url() -> String {
    format!("http://127.0.0.1:{RELAY_PORT}")
}

/// The wiring for a sandbox whose connections leave through `exit` of `run`,
/// with the relay started by `relay` (program + leading arguments).
pub fn egress_wiring(run: &Arc<egress::Run>, exit: &egress::Exit, relay: &[String]) -> Result<EgressWiring> {
    let Some((program, leading)) = relay.split_first() else {
        return Err(Error::Unavailable(
            "this step declares network hosts, but no relay is configured to carry its connections to deskhand's \
             proxy; run it from the deskhand executable, which brings its own"
                .into(),
        ));
    };
    let socket = run.proxy()?.endpoint(exit)?;
    let mut mounts = vec![Mount::read_only(socket, SANDBOX_PROXY_SOCKET)];
    let host_relay = PathBuf::from(program)
        .canonicalize()
        .map_err(|e| Error::Unavailable(format!("the egress relay {program} cannot be used: {e}")))?;
    let relay_in_sandbox = if under_system(&host_relay) {
        host_relay.to_string_lossy().into_owned()
    } else {
        mounts.push(Mount::read_only(host_relay, SANDBOX_RELAY));
        SANDBOX_RELAY.to_owned()
    };
    let url = proxy_url();
    let env = ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]
        .into_iter()
        .map(|k| (k.to_owned(), url.clone()))
        .collect();
    let mut prefix = vec![relay_in_sandbox];
    prefix.extend(leading.iter().cloned());
    prefix.extend([
        SANDBOX_PROXY_SOCKET.to_owned(),
        format!("127.0.0.1:{RELAY_PORT}"),
        "--".to_owned(),
    ]);
    Ok(EgressWiring { mounts, env, prefix })
}

fn under_system(path: &Path) -> bool {
    SYSTEM.iter().any(|s| path.starts_with(s))
}

/// Processes and threads one confined sandbox may have at once. Headless
/// Chromium with a page open has about 50 threads; a Node server about 15.
pub const MAX_PROCESSES: u64 = 512;

/// The memory of all of one confined sandbox's processes together, where a
/// memory cgroup holds it (as root).
pub const MEMORY_BYTES: u64 = 4 << 30;

/// The limits of a long-lived sandboxed process (see the module's comment).
pub fn limits() -> Limits {
    Limits {
        cpu_seconds: 3600,
        // RLIM_INFINITY: no address-space cap.
        memory_bytes: u64::MAX,
        max_processes: MAX_PROCESSES,
        ..Limits::default()
    }
}

struct Host {
    layout: deskhand_host_vm::bwrap::SystemLayout,
    bwrap: Option<PathBuf>,
    caps: std::result::Result<Option<DetachedCaps>, String>,
}

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| Host {
        layout: deskhand_host_vm::bwrap::SystemLayout::probe(),
        bwrap: deskhand_host_vm::bwrap::BWRAP_LOCATIONS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file()),
        caps: DetachedCaps::probe().map_err(|problem| problem.to_string()),
    })
}

impl Confined {
    /// A process with no environment beyond `PATH`/`HOME`, nothing bound, no network.
    pub fn new(program: impl Into<PathBuf>) -> Confined {
        Confined {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            read_only: Vec::new(),
            read_write: Vec::new(),
            cwd: None,
            network: None,
            relay: None,
        }
    }

    /// The sandbox policy: what the process sees, in the shell's terms.
    pub fn policy(&self) -> Result<ShellPolicy> {
        let text = |p: &Path| {
            p.to_str()
                .map(str::to_owned)
                .ok_or_else(|| Error::InvalidArgs(format!("{} is not valid UTF-8", p.display())))
        };
        let mut command = Vec::new();
        let mut env: Vec<(String, String)> = Vec::new();
        let mut mounts = Vec::new();
        if let Some((run, exit)) = &self.network {
            let wiring = egress_wiring(run, exit, self.relay.as_deref().unwrap_or_default())?;
            command.extend(wiring.prefix);
            env.extend(wiring.env);
            mounts.extend(wiring.mounts);
        }
        command.push(text(&self.program)?);
        command.extend(self.args.iter().cloned());
        let mut policy = ShellPolicy::new(command).limits(limits());
        for (k, v) in env.into_iter().chain(self.env.iter().cloned()) {
            policy.env.retain(|(name, _)| *name != k);
            policy.env.push((k, v));
        }
        for path in &self.read_only {
            if path.starts_with("/etc") {
                policy = policy.etc_entry(path);
            } else if !under_system(path) {
                policy = policy.grant(Mount::read_only(path, path));
            }
        }
        for path in &self.read_write {
            policy = policy.grant(Mount::writable(path, path));
        }
        for m in mounts {
            policy = policy.grant(m);
        }
        if let Some(cwd) = &self.cwd {
            policy = policy.workdir(cwd);
        }
        Ok(policy)
    }

    /// The bwrap command; stdio left to the caller.
    pub fn command(&self) -> Result<Command> {
        let policy = self.policy()?;
        let host = host();
        let bwrap = host.bwrap.as_deref().ok_or_else(|| {
            Error::Unavailable(
                "bubblewrap (bwrap) is not installed, and connectors and the browser run only inside it; install it: \
                 `sudo apt-get install bubblewrap` (Debian, Ubuntu), `sudo dnf install bubblewrap` (Fedora)"
                    .into(),
            )
        })?;
        let plan = deskhand_host_vm::bwrap::transform(&policy, &host.layout, bwrap)
            .map_err(|e| Error::InvalidArgs(format!("the sandbox for {} was refused: {e}", self.program.display())))?;
        deskhand_host_vm::vmspec::check_host_paths(&plan).map_err(|e| Error::Unavailable(e.to_string()))?;
        let caps = host.caps.as_ref().map_err(|problem| {
            Error::Unavailable(format!(
                "{} cannot be started without a process limit: {problem}",
                self.program.display()
            ))
        })?;
        let mut command = match caps {
            // A normal user: prlimit's process limit inside the sandbox holds.
            None => {
                let mut c = Command::new(&plan.program);
                c.args(&plan.args);
                c
            }
            Some(caps) => {
                caps.sweep();
                let (program, args) = caps.wrap(&plan, MAX_PROCESSES, MEMORY_BYTES);
                let mut c = Command::new(program);
                c.args(args);
                c
            }
        };
        command.env_clear().current_dir("/");
        Ok(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_network_means_no_relay_no_proxy_and_only_the_given_environment() {
        let mut c = Confined::new("/usr/bin/node");
        c.args = vec!["server.js".into()];
        c.env = vec![("TOKEN".into(), "t".into()), ("HOME".into(), "/tmp/home".into())];
        c.read_only = vec![
            "/usr/lib/node_modules".into(),
            "/etc/fonts".into(),
            "/opt/servers".into(),
        ];
        c.read_write = vec!["/home/p/notes".into()];
        let Ok(p) = c.policy() else { panic!("refused") };
        assert_eq!(p.command, ["/usr/bin/node", "server.js"]);
        assert!(!p.network);
        assert_eq!(
            p.env,
            [
                ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
                ("TOKEN".to_owned(), "t".to_owned()),
                ("HOME".to_owned(), "/tmp/home".to_owned()),
            ]
        );
        assert_eq!(p.etc, [PathBuf::from("/etc/fonts")]);
        assert_eq!(
            p.mounts,
            [
                Mount::read_only("/opt/servers", "/opt/servers"),
                Mount::writable("/home/p/notes", "/home/p/notes")
            ]
        );
        assert_eq!(p.limits.memory_bytes, u64::MAX);
    }
}
