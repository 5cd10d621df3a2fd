//! Process and memory caps for a sandbox whose process its caller starts, owns and ends
//! (a connector, the browser), where the shell's own supervisor is not there to make and
//! remove a cgroup around each command.
//!
//! Why cgroups here too: as root the kernel ignores RLIMIT_NPROC, so only a pids cgroup
//! stops a fork bomb, and only a memory cgroup bounds the memory of all of a sandbox's
//! processes together (the address-space limit is off for these processes: V8 and
//! Chromium reserve far more than they use). As a normal user `prlimit --nproc` inside the
//! sandbox holds the process count, and no cgroup is made.
//!
//! How, without a supervisor: the sandbox is started by a small shell script that makes
//! the cgroups itself (named after its own pid, `deskhand-confined-PID`), joins them and
//! then execs bwrap, so every process of the sandbox is inside from its first fork on and
//! the caller's child is still bwrap. A cgroup outlives its sandbox as an empty folder;
//! [`DetachedCaps::sweep`] removes the empty ones (the kernel refuses to remove one that
//! still holds a process) each time another sandbox is made. A cgroup removed by a sweep
//! between its script's `mkdir` and join is made again by the script.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::{BackendProblem, LaunchPlan};

/// The prefix of every cgroup these sandboxes get.
const PREFIX: &str = "deskhand-confined-";

/// `$0` the pids parent, `$1` the memory parent (or empty), `$2` the process cap, `$3` the
/// memory cap in bytes, then the program and its arguments.
const JOIN: &str = r#"PATH=/usr/bin:/bin
join() { d="$1/deskhand-confined-$$"; mkdir -p "$d" && echo "$3" > "$d/$2" && echo $$ > "$d/cgroup.procs"; }
try() { i=0; until join "$@" 2>/dev/null; do i=$((i+1)); if [ "$i" -ge 5 ]; then echo "deskhand-host-vm: cannot join the $2 cgroup under $1" >&2; exit 1; fi; done; }
p="$0"; m="$1"; n="$2"; b="$3"; shift 3
if [ -e "$p/cgroup.subtree_control" ]; then echo +pids > "$p/cgroup.subtree_control" 2>/dev/null; fi
try "$p" pids.max "$n"
if [ -n "$m" ]; then
  if [ -e "$m/memory.limit_in_bytes" ]; then try "$m" memory.limit_in_bytes "$b"; else
    if [ -e "$m/cgroup.subtree_control" ]; then echo +memory > "$m/cgroup.subtree_control" 2>/dev/null; fi
    try "$m" memory.max "$b"; echo 0 > "$m/deskhand-confined-$$/memory.swap.max" 2>/dev/null
  fi
fi
exec "$@""#;

/// Where this machine lets deskhand (as root) make a detached sandbox's cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachedCaps {
    pids_parent: PathBuf,
    memory_parent: Option<PathBuf>,
}

impl DetachedCaps {
    /// `Ok(None)` for a normal user (the process limit inside the sandbox holds); for root,
    /// the cgroup parents, or the same problem the shell reports when no pids cgroup can be made.
    pub fn probe() -> Result<Option<DetachedCaps>, BackendProblem> {
        if !rustix::process::getuid().is_root() {
            return Ok(None);
        }
        let pids_parent =
            super::cgroup::find_parent().map_err(|detail| BackendProblem::ProcessCapUnavailable { detail })?;
        // Proven writable once, as the shell's backend does, so a failure is reported here.
        super::cgroup::PidsCgroup::create(&pids_parent, 1)
            .map_err(|detail| BackendProblem::ProcessCapUnavailable { detail })?;
        let memory_parent = super::cgroup::find_memory_parent()
            .ok()
            .filter(|parent| super::cgroup::MemoryCgroup::create(parent, 1 << 30).is_ok());
        Ok(Some(DetachedCaps {
            pids_parent,
            memory_parent,
        }))
    }

    /// The program and arguments that start `plan` inside the caps: at most `max_processes`
    /// processes and threads, and `memory_bytes` of memory together where a memory cgroup
    /// can be made. Two more processes than asked: bwrap's monitor and the sandbox's init.
    pub fn wrap(&self, plan: &LaunchPlan, max_processes: u64, memory_bytes: u64) -> (PathBuf, Vec<OsString>) {
        let mut args: Vec<OsString> = vec![
            "-c".into(),
            JOIN.into(),
            self.pids_parent.clone().into(),
            self.memory_parent.clone().map(OsString::from).unwrap_or_default(),
            max_processes.saturating_add(2).to_string().into(),
            memory_bytes.to_string().into(),
            plan.program.clone().into(),
        ];
        args.extend(plan.args.iter().cloned());
        (PathBuf::from("/bin/sh"), args)
    }

    /// Removes the cgroups of detached sandboxes that have ended (empty ones; the kernel
    /// refuses the rest). Returns how many were removed.
    pub fn sweep(&self) -> usize {
        [Some(&self.pids_parent), self.memory_parent.as_ref()]
            .into_iter()
            .flatten()
            .map(|parent| sweep_under(parent))
            .sum()
    }
}

fn sweep_under(parent: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(PREFIX)))
        .filter(|e| std::fs::remove_dir(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrapper_joins_then_execs_the_plan_with_two_processes_to_spare() {
        let caps = DetachedCaps {
            pids_parent: "/sys/fs/cgroup/pids".into(),
            memory_parent: None,
        };
        let plan = LaunchPlan {
            program: "/usr/bin/bwrap".into(),
            args: vec!["--unshare-all".into(), "--".into(), "node".into()],
            env: Vec::new(),
            host_paths: Vec::new(),
            supervision: crate::Supervision {
                wall_clock: std::time::Duration::from_secs(1),
                output_bytes: 1,
                max_processes: 1,
                memory_bytes: 1,
            },
            guest_script: None,
        };
        let (program, args) = caps.wrap(&plan, 512, 4 << 30);
        assert_eq!(program, PathBuf::from("/bin/sh"));
        let tail: Vec<_> = args[2..].iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            tail,
            [
                "/sys/fs/cgroup/pids",
                "",
                "514",
                "4294967296",
                "/usr/bin/bwrap",
                "--unshare-all",
                "--",
                "node"
            ]
        );
        assert!(JOIN.ends_with(r#"exec "$@""#));
    }
}
