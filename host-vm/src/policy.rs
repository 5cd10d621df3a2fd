//! What a native shell step may see and use, independent of the backend that enforces it.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// Everything a sandboxed shell command gets. Deny by default: no grants, no network, an
/// environment of exactly `env`, and the limits in `limits`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellPolicy {
    pub mounts: Vec<Mount>,
    /// Host entries of `/etc` beyond the backend's own few, shown read-only at their own
    /// place, for a program that cannot start without them (LibreOffice: its configuration
    /// and the font configuration). Grants cannot appear under `/etc`; these are the host's
    /// own files. VM backends, which bring their own system, ignore them.
    pub etc: Vec<PathBuf>,
    /// Network access. Always refused for now: no backend can scope it to declared hosts yet.
    pub network: bool,
    pub limits: Limits,
    /// The whole environment inside the sandbox; nothing else is inherited.
    pub env: Vec<(String, String)>,
    /// Where the command starts: `/tmp` or inside a grant.
    pub workdir: PathBuf,
    /// The program and its arguments; the program is looked up on the policy's `PATH`.
    pub command: Vec<String>,
}

/// One folder (or file) grant: `host` appears at `sandbox`, read-only unless `writable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub host: PathBuf,
    pub sandbox: PathBuf,
    pub writable: bool,
}

impl Mount {
    pub fn read_only(host: impl Into<PathBuf>, sandbox: impl Into<PathBuf>) -> Mount {
        Mount {
            host: host.into(),
            sandbox: sandbox.into(),
            writable: false,
        }
    }

    pub fn writable(host: impl Into<PathBuf>, sandbox: impl Into<PathBuf>) -> Mount {
        Mount {
            host: host.into(),
            sandbox: sandbox.into(),
            writable: true,
        }
    }
}

/// Resource limits. All are required; there is no "unlimited".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// CPU time per process (RLIMIT_CPU).
    pub cpu_seconds: u64,
    /// Address space per process (RLIMIT_AS). Several processes may each use this much, up to
    /// `max_processes` of them.
    pub memory_bytes: u64,
    /// Processes (and threads) the command may have at once.
    pub max_processes: u64,
    /// Largest file the command may write (RLIMIT_FSIZE).
    pub max_file_bytes: u64,
    /// Size of the private /tmp (memory-backed, so it is capped too).
    pub tmp_bytes: u64,
    pub wall_clock: Duration,
    /// stdout and stderr together; the rest is counted and dropped.
    pub output_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            cpu_seconds: 60,
            memory_bytes: 2 << 30,
            max_processes: 256,
            max_file_bytes: 1 << 30,
            tmp_bytes: 256 << 20,
            wall_clock: Duration::from_secs(120),
            output_bytes: 1 << 20,
        }
    }
}

impl ShellPolicy {
    /// A policy for `command` with no grants, no network, default limits, `/tmp` as working
    /// directory and only `PATH` and `HOME` set.
    pub fn new<S: Into<String>>(command: impl IntoIterator<Item = S>) -> ShellPolicy {
        ShellPolicy {
            mounts: Vec::new(),
            etc: Vec::new(),
            network: false,
            limits: Limits::default(),
            env: vec![
                ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
                ("HOME".to_owned(), "/tmp".to_owned()),
            ],
            workdir: PathBuf::from("/tmp"),
            command: command.into_iter().map(Into::into).collect(),
        }
    }

    pub fn grant(mut self, mount: Mount) -> ShellPolicy {
        self.mounts.push(mount);
        self
    }

    /// Shows the host's `path` (under `/etc`) read-only at the same place.
    pub fn etc_entry(mut self, path: impl Into<PathBuf>) -> ShellPolicy {
        self.etc.push(path.into());
        self
    }

    pub fn workdir(mut self, workdir: impl Into<PathBuf>) -> ShellPolicy {
        self.workdir = workdir.into();
        self
    }

    pub fn limits(mut self, limits: Limits) -> ShellPolicy {
        self.limits = limits;
        self
    }

    /// Checks what every backend refuses. Backends call this first in their transform.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.network {
            return Err(PolicyError::NetworkNotSupported);
        }
        let Some(program) = self.command.first() else {
            return Err(PolicyError::EmptyCommand);
        };
        if program.is_empty() {
            return Err(PolicyError::EmptyCommand);
        }
        if let Some(arg) = self.command.iter().find(|a| a.contains('\0')) {
            return Err(PolicyError::NulInArgument {
                arg: arg.replace('\0', "\\0"),
            });
        }
        for (name, value) in &self.env {
            if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
                return Err(PolicyError::BadEnv {
                    name: name.replace('\0', "\\0"),
                });
            }
        }
        for (i, (name, _)) in self.env.iter().enumerate() {
            if self.env[..i].iter().any(|(earlier, _)| earlier == name) {
                return Err(PolicyError::BadEnv { name: name.clone() });
            }
        }
        self.validate_limits()?;
        for (i, mount) in self.mounts.iter().enumerate() {
            check_absolute_clean(&mount.host)?;
            check_absolute_clean(&mount.sandbox)?;
            if mount.host == Path::new("/") {
                return Err(PolicyError::HostRootGranted);
            }
            if let Some(reserved) = reserved_prefix(&mount.sandbox) {
                return Err(PolicyError::ReservedSandboxPath {
                    path: mount.sandbox.clone(),
                    reserved,
                });
            }
            if self.mounts[..i].iter().any(|m| m.sandbox == mount.sandbox) {
                return Err(PolicyError::DuplicateSandboxPath {
                    path: mount.sandbox.clone(),
                });
            }
        }
        for path in &self.etc {
            check_absolute_clean(path)?;
            if path == Path::new("/etc") || !path.starts_with("/etc") {
                return Err(PolicyError::NotInEtc { path: path.clone() });
            }
        }
        check_absolute_clean(&self.workdir)?;
        let in_grant = self.mounts.iter().any(|m| self.workdir.starts_with(&m.sandbox));
        if !in_grant && !self.workdir.starts_with("/tmp") {
            return Err(PolicyError::WorkdirOutsideGrants {
                workdir: self.workdir.clone(),
            });
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), PolicyError> {
        let l = &self.limits;
        let zero = [
            ("cpu_seconds", l.cpu_seconds == 0),
            ("memory_bytes", l.memory_bytes == 0),
            ("max_processes", l.max_processes == 0),
            ("max_file_bytes", l.max_file_bytes == 0),
            ("tmp_bytes", l.tmp_bytes == 0),
            ("wall_clock", l.wall_clock.is_zero()),
        ];
        match zero.into_iter().find(|(_, is_zero)| *is_zero) {
            Some((limit, _)) => Err(PolicyError::ZeroLimit { limit }),
            None => Ok(()),
        }
    }
}

/// Sandbox paths a grant may not cover or shadow: the sandbox's own system folders and
/// kernel interfaces. (Under `/tmp` is fine; `/tmp` itself is the private tmpfs.)
const RESERVED: &[&str] = &[
    "/proc", "/dev", "/sys", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/run",
];

fn reserved_prefix(sandbox: &Path) -> Option<&'static str> {
    if sandbox == Path::new("/") {
        return Some("/");
    }
    if sandbox == Path::new("/tmp") {
        return Some("/tmp");
    }
    RESERVED.iter().copied().find(|r| sandbox.starts_with(r))
}

fn check_absolute_clean(path: &Path) -> Result<(), PolicyError> {
    if !path.is_absolute() {
        return Err(PolicyError::RelativePath { path: path.to_owned() });
    }
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(PolicyError::DotComponent { path: path.to_owned() });
    }
    if path.to_string_lossy().contains('\0') {
        return Err(PolicyError::RelativePath { path: path.to_owned() });
    }
    Ok(())
}

/// A policy no backend will run, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("network access for shell steps is not supported yet; the step must work offline")]
    NetworkNotSupported,
    #[error("the shell step has no command")]
    EmptyCommand,
    #[error("a command argument contains a NUL byte: {arg}")]
    NulInArgument { arg: String },
    #[error("bad environment variable {name:?}: names must be non-empty, unique and without `=`; no NUL bytes")]
    BadEnv { name: String },
    #[error("the {limit} limit is zero; every limit needs a positive value")]
    ZeroLimit { limit: &'static str },
    #[error("{path} is not an absolute path")]
    RelativePath { path: PathBuf },
    #[error("{path} contains `.` or `..`; give the path plainly")]
    DotComponent { path: PathBuf },
    #[error("granting the whole host file system (/) is refused; grant the folders the step needs")]
    HostRootGranted,
    #[error("a grant cannot appear at {path}: {reserved} belongs to the sandbox itself")]
    ReservedSandboxPath { path: PathBuf, reserved: &'static str },
    #[error("{path} is not an entry of /etc; only those are shown as system files")]
    NotInEtc { path: PathBuf },
    #[error("two grants appear at {path}")]
    DuplicateSandboxPath { path: PathBuf },
    #[error("the working directory {workdir} is neither in /tmp nor inside a grant")]
    WorkdirOutsideGrants { workdir: PathBuf },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ShellPolicy {
        ShellPolicy::new(["true"]).grant(Mount::read_only("/home/p/data", "/work/data"))
    }

    #[test]
    fn new_policy_is_deny_by_default() {
        let p = ShellPolicy::new(["ls"]);
        assert!(p.mounts.is_empty());
        assert!(!p.network);
        assert_eq!(p.env.len(), 2);
        assert_eq!(p.workdir, Path::new("/tmp"));
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn grants_are_read_only_unless_made_writable() {
        assert!(!Mount::read_only("/a", "/b").writable);
        assert!(Mount::writable("/a", "/b").writable);
    }

    #[test]
    fn network_is_refused() {
        let mut p = policy();
        p.network = true;
        assert_eq!(p.validate(), Err(PolicyError::NetworkNotSupported));
    }

    #[test]
    fn empty_command_is_refused() {
        assert_eq!(
            ShellPolicy::new(Vec::<String>::new()).validate(),
            Err(PolicyError::EmptyCommand)
        );
        assert_eq!(ShellPolicy::new([""]).validate(), Err(PolicyError::EmptyCommand));
    }

    #[test]
    fn nul_bytes_are_refused() {
        assert!(matches!(
            ShellPolicy::new(["echo", "a\0b"]).validate(),
            Err(PolicyError::NulInArgument { .. })
        ));
        let mut p = policy();
        p.env.push(("X".into(), "a\0b".into()));
        assert!(matches!(p.validate(), Err(PolicyError::BadEnv { .. })));
    }

    #[test]
    fn bad_env_names_are_refused() {
        for name in ["", "A=B", "PATH"] {
            let mut p = policy();
            p.env.push((name.into(), "x".into()));
            assert!(matches!(p.validate(), Err(PolicyError::BadEnv { .. })), "{name:?}");
        }
    }

    #[test]
    fn zero_limits_are_refused() {
        let mut p = policy();
        p.limits.wall_clock = Duration::ZERO;
        assert_eq!(p.validate(), Err(PolicyError::ZeroLimit { limit: "wall_clock" }));
        let mut p = policy();
        p.limits.max_processes = 0;
        assert_eq!(p.validate(), Err(PolicyError::ZeroLimit { limit: "max_processes" }));
    }

    #[test]
    fn relative_and_dotted_paths_are_refused() {
        let p = ShellPolicy::new(["true"]).grant(Mount::read_only("data", "/work/data"));
        assert!(matches!(p.validate(), Err(PolicyError::RelativePath { .. })));
        let p = ShellPolicy::new(["true"]).grant(Mount::read_only("/data", "work"));
        assert!(matches!(p.validate(), Err(PolicyError::RelativePath { .. })));
        let p = ShellPolicy::new(["true"]).grant(Mount::read_only("/home/p/../q", "/work"));
        assert!(matches!(p.validate(), Err(PolicyError::DotComponent { .. })));
        let p = ShellPolicy::new(["true"]).grant(Mount::read_only("/data", "/work/../etc"));
        assert!(matches!(p.validate(), Err(PolicyError::DotComponent { .. })));
    }

    #[test]
    fn granting_the_host_root_is_refused() {
        let p = ShellPolicy::new(["true"]).grant(Mount::read_only("/", "/host"));
        assert_eq!(p.validate(), Err(PolicyError::HostRootGranted));
    }

    #[test]
    fn grants_cannot_shadow_the_sandbox_itself() {
        for target in [
            "/",
            "/tmp",
            "/proc",
            "/proc/1",
            "/dev/sda",
            "/sys",
            "/etc",
            "/etc/passwd",
            "/usr/bin",
            "/lib64",
        ] {
            let p = ShellPolicy::new(["true"]).grant(Mount::writable("/data", target));
            assert!(
                matches!(p.validate(), Err(PolicyError::ReservedSandboxPath { .. })),
                "{target}"
            );
        }
        let p = ShellPolicy::new(["true"]).grant(Mount::writable("/data", "/tmp/data"));
        assert_eq!(p.validate(), Ok(()));
        // A prefix by characters is not a prefix by components.
        let p = ShellPolicy::new(["true"]).grant(Mount::writable("/data", "/procedures"));
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn system_files_are_single_entries_of_etc() {
        assert_eq!(policy().etc_entry("/etc/fonts").validate(), Ok(()));
        for path in ["/etc", "/home/p", "/etcetera/x", "/usr/etc/x"] {
            assert!(
                matches!(policy().etc_entry(path).validate(), Err(PolicyError::NotInEtc { .. })),
                "{path}"
            );
        }
        assert!(matches!(
            policy().etc_entry("/etc/../home").validate(),
            Err(PolicyError::DotComponent { .. })
        ));
    }

    #[test]
    fn two_grants_at_one_place_are_refused() {
        let p = policy().grant(Mount::writable("/home/p/other", "/work/data"));
        assert!(matches!(p.validate(), Err(PolicyError::DuplicateSandboxPath { .. })));
    }

    #[test]
    fn workdir_must_be_in_tmp_or_a_grant() {
        assert_eq!(policy().workdir("/work/data/sub").validate(), Ok(()));
        assert!(matches!(
            policy().workdir("/work").validate(),
            Err(PolicyError::WorkdirOutsideGrants { .. })
        ));
        assert!(matches!(
            policy().workdir("/etc").validate(),
            Err(PolicyError::WorkdirOutsideGrants { .. })
        ));
        assert!(matches!(
            policy().workdir("tmp").validate(),
            Err(PolicyError::RelativePath { .. })
        ));
    }
}
