//! A pids cgroup per sandbox, used only when deskhand runs as root: the kernel does not
//! enforce RLIMIT_NPROC for real uid 0, so there the process cap has to come from outside.
//! Where a memory cgroup can be made too, it holds the memory of the sandbox's processes
//! together (RLIMIT_AS only bounds each process).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// Finds a pids-controller cgroup directory this process may create children in: the
/// cgroup v1 pids hierarchy or a cgroup v2 one with the pids controller.
pub(crate) fn find_parent() -> Result<PathBuf, String> {
    find_controller_parent("pids")
}

/// The same for the memory controller.
pub(crate) fn find_memory_parent() -> Result<PathBuf, String> {
    find_controller_parent("memory")
}

fn find_controller_parent(controller: &str) -> Result<PathBuf, String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").map_err(|e| format!("reading /proc/self/mounts: {e}"))?;
    let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| format!("reading /proc/self/cgroup: {e}"))?;
    let mut v1_mount = None;
    let mut v2_mount = None;
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let [_, mount_point, fs_type, options, ..] = fields[..] else {
            continue;
        };
        if fs_type == "cgroup" && options.split(',').any(|o| o == controller) {
            v1_mount = Some(PathBuf::from(mount_point));
        } else if fs_type == "cgroup2" {
            v2_mount = Some(PathBuf::from(mount_point));
        }
    }
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let relative = path.trim_start_matches('/');
        if let Some(mount) = &v1_mount
            && controllers.split(',').any(|c| c == controller)
        {
            return Ok(mount.join(relative));
        }
        if let Some(mount) = &v2_mount
            && controllers.is_empty()
        {
            let dir = mount.join(relative);
            let available = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
            if available.split_whitespace().any(|c| c == controller) {
                return Ok(dir);
            }
        }
    }
    Err(format!(
        "no cgroup v1 {controller} hierarchy and no cgroup v2 with the {controller} controller"
    ))
}

/// One sandbox's memory cgroup; removed on drop once its processes are gone.
pub(crate) struct MemoryCgroup {
    dir: PathBuf,
    v2: bool,
}

impl MemoryCgroup {
    pub(crate) fn create(parent: &Path, max: u64) -> Result<MemoryCgroup, String> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!("deskhand-mem-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let v2 = !dir.join("memory.limit_in_bytes").exists();
        if v2 && !dir.join("memory.max").exists() {
            let _ = std::fs::write(parent.join("cgroup.subtree_control"), "+memory");
        }
        let cgroup = MemoryCgroup { dir, v2 };
        let file = if v2 { "memory.max" } else { "memory.limit_in_bytes" };
        std::fs::write(cgroup.dir.join(file), max.to_string())
            .map_err(|e| format!("setting {}/{file}: {e}", cgroup.dir.display()))?;
        if v2 {
            // Swap would only let the sandbox go past its limit more slowly.
            let _ = std::fs::write(cgroup.dir.join("memory.swap.max"), "0");
        }
        Ok(cgroup)
    }

    pub(crate) fn procs_file(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// Whether the kernel killed a process of the sandbox at the limit.
    pub(crate) fn limit_was_hit(&self) -> bool {
        let (file, key) = if self.v2 {
            ("memory.events", "oom_kill ")
        } else {
            ("memory.oom_control", "oom_kill ")
        };
        let text = std::fs::read_to_string(self.dir.join(file)).unwrap_or_default();
        let killed = text
            .lines()
            .filter_map(|l| l.strip_prefix(key))
            .any(|n| n.trim().parse::<u64>().is_ok_and(|n| n > 0));
        killed
            || (!self.v2
                && std::fs::read_to_string(self.dir.join("memory.failcnt"))
                    .ok()
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0))
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        for _ in 0..1000 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// One sandbox's cgroup; removed on drop once its processes are gone.
pub(crate) struct PidsCgroup {
    dir: PathBuf,
}

impl PidsCgroup {
    pub(crate) fn create(parent: &Path, max: u64) -> Result<PidsCgroup, String> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!("deskhand-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let cgroup = PidsCgroup { dir };
        if !cgroup.dir.join("pids.max").exists() {
            // cgroup v2 only offers pids.max in a child when the parent delegates it; this
            // fails when the parent itself holds processes, and then there is nothing to do.
            let _ = std::fs::write(parent.join("cgroup.subtree_control"), "+pids");
        }
        std::fs::write(cgroup.dir.join("pids.max"), max.to_string())
            .map_err(|e| format!("setting {}/pids.max: {e}", cgroup.dir.display()))?;
        Ok(cgroup)
    }

    /// The file a process writes its pid to, to join.
    pub(crate) fn procs_file(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// Whether a fork was refused at the cap (`max N` in pids.events, N > 0).
    pub(crate) fn cap_was_hit(&self) -> bool {
        let events = std::fs::read_to_string(self.dir.join("pids.events")).unwrap_or_default();
        events
            .lines()
            .filter_map(|l| l.strip_prefix("max "))
            .any(|n| n.trim().parse::<u64>().is_ok_and(|n| n > 0))
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        // The sandbox's processes are gone by now (the pid namespace died with its init),
        // but the kernel may take a moment to release them from the cgroup. A directory left
        // behind is empty and harmless, so after a short wait we give up quietly.
        for _ in 0..1000 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
