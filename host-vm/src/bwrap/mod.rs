//! The Linux backend: bubblewrap namespaces, limits set by `prlimit` inside the sandbox, and a
//! supervisor outside it that streams output, enforces the wall clock and reports the end.
//!
//! Limits are applied by util-linux `prlimit` inside the sandbox (it sets them, then execs the
//! command) rather than by `setrlimit` in `Command::pre_exec`, because `pre_exec` is `unsafe`
//! and the workspace denies unsafe code; a plain argv wrapper also keeps the whole plan
//! visible in the pure transform. When running as root, the kernel ignores the process limit
//! (RLIMIT_NPROC does not apply to real uid 0), so each sandbox also gets a pids cgroup.

mod caps;
mod cgroup;
mod plan;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};

pub use caps::DetachedCaps;
pub use plan::{SystemEntry, SystemLayout, transform};

use crate::vmspec;
use crate::{
    BackendProblem, LaunchPlan, LimitHit, OutputChunk, OutputStats, PolicyError, ShellBackend, ShellError,
    ShellOutcome, ShellPolicy, Stream, Termination,
};
use cgroup::{MemoryCgroup, PidsCgroup};

/// Where bubblewrap is looked for when no path is given.
pub const BWRAP_LOCATIONS: &[&str] = &["/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap"];

/// How long to keep reading after the sandbox was killed: its pipes close as soon as the pid
/// namespace is gone, so this is only a bound in case something unexpected holds them.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Joins the pids cgroup named by `$0` and the memory cgroup named by `$1` (when not empty),
/// then execs bwrap (`"$@"` after it), so the caps apply to every process of the sandbox
/// from its first fork on.
const JOIN_CGROUP: &str = r#"m="$1"; shift; { echo $$ > "$0"; } 2>/dev/null || { echo "deskhand-host-vm: cannot join the process-limit cgroup $0" >&2; exit 1; }; if [ -n "$m" ]; then { echo $$ > "$m"; } 2>/dev/null || { echo "deskhand-host-vm: cannot join the memory-limit cgroup $m" >&2; exit 1; }; fi; exec "$@""#;

/// Exit status 1 with stderr starting like this means the sandbox never ran the command.
const SETUP_PREFIXES: &[&str] = &["bwrap: ", "prlimit: ", "deskhand-host-vm: "];

pub struct BwrapBackend {
    program: Option<PathBuf>,
    searched: Vec<PathBuf>,
    layout: SystemLayout,
    as_root: bool,
    pids_parent: Result<PathBuf, String>,
    /// Where each sandbox's memory cgroup goes, when this machine lets root make one.
    memory_parent: Option<PathBuf>,
    checked: OnceLock<Result<(), BackendProblem>>,
}

impl std::fmt::Debug for BwrapBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BwrapBackend")
            .field("program", &self.program)
            .field("as_root", &self.as_root)
            .finish()
    }
}

impl Default for BwrapBackend {
    fn default() -> BwrapBackend {
        BwrapBackend::new()
    }
}

impl BwrapBackend {
    /// Looks for bwrap in [`BWRAP_LOCATIONS`] and probes the host's system layout.
    pub fn new() -> BwrapBackend {
        let searched: Vec<PathBuf> = BWRAP_LOCATIONS.iter().map(PathBuf::from).collect();
        let program = searched.iter().find(|p| p.is_file()).cloned();
        BwrapBackend::build(program, searched)
    }

    /// Uses the bwrap at `program`.
    pub fn with_program(program: impl Into<PathBuf>) -> BwrapBackend {
        let program = program.into();
        let found = program.is_file().then(|| program.clone());
        BwrapBackend::build(found, vec![program])
    }

    fn build(program: Option<PathBuf>, searched: Vec<PathBuf>) -> BwrapBackend {
        let as_root = rustix::process::getuid().is_root();
        let pids_parent = if as_root {
            cgroup::find_parent()
        } else {
            Err("not needed".to_owned())
        };
        // A memory cgroup for the whole sandbox where root can make one; without it each
        // process still has its address-space limit.
        let memory_parent = as_root
            .then(cgroup::find_memory_parent)
            .and_then(Result::ok)
            .filter(|parent| MemoryCgroup::create(parent, 1 << 30).is_ok());
        BwrapBackend {
            program,
            searched,
            layout: SystemLayout::probe(),
            as_root,
            pids_parent,
            memory_parent,
            checked: OnceLock::new(),
        }
    }

    pub fn layout(&self) -> &SystemLayout {
        &self.layout
    }

    fn check_uncached(&self) -> Result<(), BackendProblem> {
        if self.program.is_none() {
            let searched = self
                .searched
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(BackendProblem::BubblewrapMissing { searched });
        }
        if !self.layout.limiter.is_file() {
            return Err(BackendProblem::PrlimitMissing);
        }
        if self.as_root {
            let parent = self
                .pids_parent
                .as_ref()
                .map_err(|e| BackendProblem::ProcessCapUnavailable { detail: e.clone() })?;
            PidsCgroup::create(parent, 1).map_err(|detail| BackendProblem::ProcessCapUnavailable { detail })?;
        }
        // A trial sandbox catches what only trying shows (user namespaces disabled, AppArmor).
        let trial = self
            .plan(&ShellPolicy::new(["true"]))
            .map_err(|e| BackendProblem::SandboxFails { stderr: e.to_string() })?;
        match self.launch(&trial, &mut |_| {}) {
            Ok(outcome) if outcome.success() => Ok(()),
            Ok(outcome) => Err(BackendProblem::SandboxFails {
                stderr: format!("`true` ended with {:?}", outcome.termination),
            }),
            Err(e) => Err(BackendProblem::SandboxFails { stderr: e.to_string() }),
        }
    }

    fn launch(&self, plan: &LaunchPlan, on_output: &mut dyn FnMut(OutputChunk)) -> Result<ShellOutcome, ShellError> {
        vmspec::check_host_paths(plan)?;
        let cgroup = match (&self.as_root, &self.pids_parent) {
            (false, _) => None,
            (true, Ok(parent)) => {
                // The monitor bwrap and the sandbox's init are in the cgroup too.
                let max = plan.supervision.max_processes.saturating_add(2);
                Some(PidsCgroup::create(parent, max).map_err(|detail| ShellError::ProcessCap { detail })?)
            }
            (true, Err(detail)) => return Err(ShellError::ProcessCap { detail: detail.clone() }),
        };
        let memory = match (&cgroup, &self.memory_parent) {
            (Some(_), Some(parent)) => Some(
                MemoryCgroup::create(parent, plan.supervision.memory_bytes)
                    .map_err(|detail| ShellError::ProcessCap { detail })?,
            ),
            _ => None,
        };
        let mut command = match &cgroup {
            Some(cgroup) => {
                let mut c = Command::new("/bin/sh");
                c.arg("-c").arg(JOIN_CGROUP).arg(cgroup.procs_file());
                match &memory {
                    Some(memory) => c.arg(memory.procs_file()),
                    None => c.arg(""),
                };
                c.arg(&plan.program);
                c
            }
            None => Command::new(&plan.program),
        };
        command
            .args(&plan.args)
            .env_clear()
            .envs(plan.env.iter().map(|(k, v)| (k, v)))
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());

        let start = Instant::now();
        let child = command.spawn().map_err(|source| ShellError::Spawn {
            program: plan.program.clone(),
            source,
        })?;
        let mut running = Running::new(child)?;
        let mut capture = Capture::new(plan.supervision.output_bytes, on_output);
        let ended = running.supervise(start + plan.supervision.wall_clock, &mut capture)?;
        let elapsed = start.elapsed();

        let termination = match ended {
            Ended::TimedOut => Termination::TimedOut {
                after: plan.supervision.wall_clock,
            },
            Ended::Exited(status) => termination(status),
        };
        if termination == (Termination::Exited { code: 1 })
            && let Some(message) = capture.setup_failure()
        {
            return Err(ShellError::Setup { message });
        }
        let mut limits_hit = Vec::new();
        match termination {
            Termination::TimedOut { .. } => limits_hit.push(LimitHit::WallClock),
            Termination::Signaled { signal } if signal == Signal::XCPU.as_raw() => limits_hit.push(LimitHit::CpuTime),
            Termination::Signaled { signal } if signal == Signal::XFSZ.as_raw() => limits_hit.push(LimitHit::FileSize),
            _ => {}
        }
        if cgroup.as_ref().is_some_and(PidsCgroup::cap_was_hit) {
            limits_hit.push(LimitHit::Processes);
        }
        if memory.as_ref().is_some_and(MemoryCgroup::limit_was_hit) {
            limits_hit.push(LimitHit::Memory);
        }
        if capture.stats.dropped_bytes > 0 {
            limits_hit.push(LimitHit::Output);
        }
        Ok(ShellOutcome {
            termination,
            limits_hit,
            elapsed,
            output: capture.stats,
        })
    }
}

impl ShellBackend for BwrapBackend {
    fn name(&self) -> &str {
        "bubblewrap"
    }

    fn check(&self) -> Result<(), BackendProblem> {
        self.checked.get_or_init(|| self.check_uncached()).clone()
    }

    fn plan(&self, policy: &ShellPolicy) -> Result<LaunchPlan, PolicyError> {
        let program = self.program.as_deref().unwrap_or(Path::new(BWRAP_LOCATIONS[0]));
        transform(policy, &self.layout, program)
    }

    fn run(&self, plan: &LaunchPlan, on_output: &mut dyn FnMut(OutputChunk)) -> Result<ShellOutcome, ShellError> {
        self.check()?;
        self.launch(plan, on_output)
    }
}

/// bwrap reports a command killed by signal N as exit status 128 + N.
fn termination(status: ExitStatus) -> Termination {
    match (status.code(), status.signal()) {
        (Some(code), _) if (129..=128 + 64).contains(&code) => Termination::Signaled { signal: code - 128 },
        (Some(code), _) => Termination::Exited { code },
        (None, Some(signal)) => Termination::Signaled { signal },
        (None, None) => Termination::Exited { code: -1 },
    }
}

/// Output handed to the caller up to the cap; the rest is counted. Keeps the start of
/// stderr aside to tell a sandbox setup failure from the command's own.
struct Capture<'a> {
    left: u64,
    stats: OutputStats,
    stderr_head: Vec<u8>,
    on_output: &'a mut dyn FnMut(OutputChunk),
}

impl<'a> Capture<'a> {
    fn new(cap: u64, on_output: &'a mut dyn FnMut(OutputChunk)) -> Capture<'a> {
        Capture {
            left: cap,
            stats: OutputStats::default(),
            stderr_head: Vec::new(),
            on_output,
        }
    }

    fn take(&mut self, stream: Stream, bytes: &[u8]) {
        if stream == Stream::Stderr && self.stderr_head.len() < 4096 {
            let room = 4096 - self.stderr_head.len();
            self.stderr_head.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        let len = bytes.len() as u64;
        let keep = len.min(self.left);
        if keep > 0 {
            // keep <= bytes.len(), so the cast back cannot truncate.
            (self.on_output)(OutputChunk {
                stream,
                bytes: bytes[..keep as usize].to_vec(),
            });
            self.left -= keep;
            match stream {
                Stream::Stdout => self.stats.stdout_bytes += keep,
                Stream::Stderr => self.stats.stderr_bytes += keep,
            }
        }
        self.stats.dropped_bytes += len - keep;
    }

    fn setup_failure(&self) -> Option<String> {
        let head = String::from_utf8_lossy(&self.stderr_head);
        let first = head.lines().next()?;
        SETUP_PREFIXES
            .iter()
            .any(|p| first.starts_with(p))
            .then(|| first.to_owned())
    }
}

enum Ended {
    Exited(ExitStatus),
    TimedOut,
}

#[derive(Clone, Copy)]
enum Source {
    Stdout,
    Stderr,
    Exit,
}

/// The spawned bwrap, with a pidfd so killing it can never hit a recycled pid. Killed and
/// reaped on drop if it is still running (an error or a panic in the caller's callback).
struct Running {
    child: Child,
    pidfd: OwnedFd,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    status: Option<ExitStatus>,
}

impl Running {
    fn new(mut child: Child) -> Result<Running, ShellError> {
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        // The child is not reaped until we wait for it, so this pid is still ours.
        let pidfd = match pidfd_open(Pid::from_child(&child), PidfdFlags::empty()) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ShellError::Supervise { source: e.into() });
            }
        };
        Ok(Running {
            child,
            pidfd,
            stdout,
            stderr,
            status: None,
        })
    }

    /// Streams output until the command has ended and its output is closed, or until the
    /// deadline, when the whole sandbox is killed.
    fn supervise(&mut self, deadline: Instant, capture: &mut Capture<'_>) -> Result<Ended, ShellError> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let now = Instant::now();
            match self.status {
                Some(status) if self.stdout.is_none() && self.stderr.is_none() => return Ok(Ended::Exited(status)),
                // Ended in time, but something kept its output open: stop reading.
                Some(status) if now >= deadline => return Ok(Ended::Exited(status)),
                None if now >= deadline => {
                    self.kill_and_reap()?;
                    let grace = Instant::now() + DRAIN_GRACE;
                    while (self.stdout.is_some() || self.stderr.is_some()) && Instant::now() < grace {
                        self.poll_once(grace - Instant::now(), capture, &mut buf)?;
                    }
                    return Ok(Ended::TimedOut);
                }
                _ => self.poll_once(deadline - now, capture, &mut buf)?,
            }
        }
    }

    fn poll_once(&mut self, timeout: Duration, capture: &mut Capture<'_>, buf: &mut [u8]) -> Result<(), ShellError> {
        let mut ready = Vec::with_capacity(3);
        {
            let mut fds = Vec::with_capacity(3);
            let mut sources = Vec::with_capacity(3);
            if let Some(out) = &self.stdout {
                fds.push(PollFd::new(out, PollFlags::IN));
                sources.push(Source::Stdout);
            }
            if let Some(err) = &self.stderr {
                fds.push(PollFd::new(err, PollFlags::IN));
                sources.push(Source::Stderr);
            }
            if self.status.is_none() {
                fds.push(PollFd::new(&self.pidfd, PollFlags::IN));
                sources.push(Source::Exit);
            }
            let timeout = Timespec::try_from(timeout).unwrap_or(Timespec { tv_sec: 1, tv_nsec: 0 });
            match poll(&mut fds, Some(&timeout)) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(ShellError::Supervise { source: e.into() }),
            }
            ready.extend(
                fds.iter()
                    .zip(&sources)
                    .filter(|(fd, _)| !fd.revents().is_empty())
                    .map(|(_, s)| *s),
            );
        }
        for source in ready {
            match source {
                Source::Stdout => read_some(&mut self.stdout, Stream::Stdout, capture, buf)?,
                Source::Stderr => read_some(&mut self.stderr, Stream::Stderr, capture, buf)?,
                Source::Exit => {
                    self.status = self
                        .child
                        .try_wait()
                        .map_err(|source| ShellError::Supervise { source })?;
                }
            }
        }
        Ok(())
    }

    /// Killing bwrap kills the sandbox's init (`--die-with-parent`), and the kernel then
    /// kills every process left in its pid namespace.
    fn kill_and_reap(&mut self) -> Result<(), ShellError> {
        let _ = pidfd_send_signal(&self.pidfd, Signal::KILL);
        self.status = Some(self.child.wait().map_err(|source| ShellError::Supervise { source })?);
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.kill_and_reap();
        }
    }
}

fn read_some<R: Read>(
    pipe: &mut Option<R>,
    stream: Stream,
    capture: &mut Capture<'_>,
    buf: &mut [u8],
) -> Result<(), ShellError> {
    let Some(reader) = pipe else { return Ok(()) };
    match reader.read(buf) {
        Ok(0) => *pipe = None,
        Ok(n) => capture.take(stream, &buf[..n]),
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
        Err(source) => {
            *pipe = None;
            return Err(ShellError::Supervise { source });
        }
    }
    Ok(())
}
