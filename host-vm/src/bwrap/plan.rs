//! The pure half of the bubblewrap backend: policy -> bwrap command line. Nothing here touches
//! the system except [`SystemLayout::probe`], which the backend calls once.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::{LaunchPlan, PolicyError, ShellPolicy, Supervision};

/// Host system folders a shell needs, bound read-only (or recreated as symlinks where the
/// host has merged them into /usr).
const SYSTEM_DIRS: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// The few /etc entries programs need to start and behave: the dynamic loader's cache,
/// Debian's alternatives (e.g. `awk`), name-service config, users and groups (no passwords:
/// those are in /etc/shadow), and the time zone. Nothing else of /etc is visible.
const ETC_ENTRIES: &[&str] = &[
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/localtime",
];

const LIMITER_CANDIDATES: &[&str] = &["/usr/bin/prlimit", "/bin/prlimit"];

/// What of the host system the sandbox sees, read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemLayout {
    pub system: Vec<SystemEntry>,
    pub etc: Vec<PathBuf>,
    /// util-linux `prlimit`, which sets the resource limits inside the sandbox and then
    /// execs the command. Its path is the same inside (it lives under a bound system dir).
    pub limiter: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemEntry {
    Bind(PathBuf),
    Symlink { path: PathBuf, target: PathBuf },
}

impl SystemLayout {
    /// Looks at this host's system folders.
    pub fn probe() -> SystemLayout {
        let mut system = Vec::new();
        for dir in SYSTEM_DIRS {
            let path = PathBuf::from(dir);
            let Ok(meta) = path.symlink_metadata() else { continue };
            if meta.file_type().is_symlink() {
                if let Ok(target) = std::fs::read_link(&path) {
                    system.push(SystemEntry::Symlink { path, target });
                }
            } else if meta.is_dir() {
                system.push(SystemEntry::Bind(path));
            }
        }
        let etc = ETC_ENTRIES.iter().map(PathBuf::from).filter(|p| p.exists()).collect();
        let limiter = LIMITER_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from(LIMITER_CANDIDATES[0]));
        SystemLayout { system, etc, limiter }
    }
}

/// The bubblewrap launch plan for `policy`. Deny by default: every namespace unshared
/// (network included), no capabilities, a new session, an empty environment plus the
/// policy's, the host system read-only, a private /tmp, and only the granted folders.
pub fn transform(policy: &ShellPolicy, layout: &SystemLayout, bwrap: &Path) -> Result<LaunchPlan, PolicyError> {
    policy.validate()?;
    let limits = &policy.limits;
    let mut args = Args::default();

    // Namespaces: user, ipc, pid, net, uts, cgroup. The network namespace has only its own
    // loopback; no --share-net, ever, until a step can declare hosts.
    args.add(["--unshare-all", "--unshare-user", "--disable-userns"]);
    // The sandbox dies with deskhand; a new session means no controlling terminal, so the
    // command cannot push keystrokes into the person's terminal (TIOCSTI).
    args.add(["--die-with-parent", "--new-session"]);
    // As root bwrap would otherwise leave the command nearly all of root's capabilities.
    args.add(["--cap-drop", "ALL"]);
    args.add(["--hostname", "sandbox", "--clearenv"]);

    for entry in &layout.system {
        match entry {
            SystemEntry::Bind(path) => args.add_paths("--ro-bind", path, path),
            SystemEntry::Symlink { path, target } => args.add_paths("--symlink", target, path),
        }
    }
    for path in layout.etc.iter().chain(&policy.etc) {
        args.add_paths("--ro-bind", path, path);
    }
    // bwrap covers only parts of the fresh /proc read-only; it skips /proc/sys, whose files
    // the kernel lets uid 0 write without any capability (kernel.core_pattern among them,
    // a way out as root). So all of /proc is read-only.
    args.add(["--proc", "/proc", "--remount-ro", "/proc", "--dev", "/dev"]);
    args.add([
        "--size".to_owned(),
        limits.tmp_bytes.to_string(),
        "--tmpfs".to_owned(),
        "/tmp".to_owned(),
    ]);

    // Parents before children, so a grant nested in another stays visible.
    let mut mounts: Vec<_> = policy.mounts.iter().collect();
    mounts.sort_by_key(|m| m.sandbox.components().count());
    for mount in &mounts {
        let flag = if mount.writable { "--bind" } else { "--ro-bind" };
        args.add_paths(flag, &mount.host, &mount.sandbox);
    }

    for (name, value) in &policy.env {
        args.add(["--setenv", name, value]);
    }
    args.add(["--chdir"]);
    args.0.push(policy.workdir.clone().into());
    args.add(["--"]);

    // Limits are set inside the sandbox by prlimit, which then execs the command. The CPU
    // hard limit is one second above the soft one so the command gets SIGXCPU (reported as
    // the CPU limit) before SIGKILL. No core dumps. One process more than asked for: the
    // sandbox's init counts against the same limit.
    args.0.push(layout.limiter.clone().into());
    args.add([
        "--core=0:0".to_owned(),
        format!("--cpu={}:{}", limits.cpu_seconds, limits.cpu_seconds.saturating_add(1)),
        format!("--as={0}:{0}", limits.memory_bytes),
        format!("--nproc={0}:{0}", limits.max_processes.saturating_add(1)),
        format!("--fsize={0}:{0}", limits.max_file_bytes),
        "--".to_owned(),
    ]);
    args.add(&policy.command);

    Ok(LaunchPlan {
        program: bwrap.to_owned(),
        args: args.0,
        env: Vec::new(),
        host_paths: mounts
            .iter()
            .map(|m| m.host.clone())
            .chain(policy.etc.clone())
            .collect(),
        supervision: Supervision {
            wall_clock: limits.wall_clock,
            output_bytes: limits.output_bytes,
            max_processes: limits.max_processes,
            memory_bytes: limits.memory_bytes,
        },
        guest_script: None,
    })
}

#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn add<S: AsRef<str>>(&mut self, items: impl IntoIterator<Item = S>) {
        self.0.extend(items.into_iter().map(|s| OsString::from(s.as_ref())));
    }

    fn add_paths(&mut self, flag: &str, a: &Path, b: &Path) {
        self.0
            .extend([OsString::from(flag), a.as_os_str().to_owned(), b.as_os_str().to_owned()]);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{Limits, Mount};

    fn layout() -> SystemLayout {
        SystemLayout {
            system: vec![
                SystemEntry::Bind("/usr".into()),
                SystemEntry::Symlink {
                    path: "/bin".into(),
                    target: "usr/bin".into(),
                },
                SystemEntry::Symlink {
                    path: "/lib64".into(),
                    target: "usr/lib64".into(),
                },
            ],
            etc: vec!["/etc/ld.so.cache".into(), "/etc/passwd".into()],
            limiter: "/usr/bin/prlimit".into(),
        }
    }

    fn plan(policy: &ShellPolicy) -> LaunchPlan {
        match transform(policy, &layout(), Path::new("/usr/bin/bwrap")) {
            Ok(plan) => plan,
            Err(e) => panic!("transform refused a valid policy: {e}"),
        }
    }

    fn args(plan: &LaunchPlan) -> Vec<String> {
        plan.args.iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    /// The bwrap options only: everything before the first `--`.
    fn options(plan: &LaunchPlan) -> Vec<String> {
        args(plan).into_iter().take_while(|a| a != "--").collect()
    }

    fn has_triple(args: &[String], flag: &str, a: &str, b: &str) -> bool {
        args.windows(3).any(|w| w[0] == flag && w[1] == a && w[2] == b)
    }

    fn has_pair(args: &[String], flag: &str, a: &str) -> bool {
        args.windows(2).any(|w| w[0] == flag && w[1] == a)
    }

    #[test]
    fn extra_etc_entries_are_read_only_at_their_own_place() {
        let p = plan(&ShellPolicy::new(["true"]).etc_entry("/etc/fonts"));
        let opts = options(&p);
        assert!(has_triple(&opts, "--ro-bind", "/etc/fonts", "/etc/fonts"));
        assert!(!opts.iter().any(|a| a == "--bind"), "{opts:?}");
        assert_eq!(p.host_paths, vec![PathBuf::from("/etc/fonts")]);
    }

    #[test]
    fn read_only_grant_becomes_ro_bind() {
        let p = plan(&ShellPolicy::new(["true"]).grant(Mount::read_only("/home/p/data", "/work/data")));
        let opts = options(&p);
        assert!(has_triple(&opts, "--ro-bind", "/home/p/data", "/work/data"));
        assert!(
            !opts.iter().any(|a| a == "--bind"),
            "no writable mount at all: {opts:?}"
        );
        assert_eq!(p.host_paths, vec![PathBuf::from("/home/p/data")]);
    }

    #[test]
    fn writable_grant_becomes_bind() {
        let p = plan(&ShellPolicy::new(["true"]).grant(Mount::writable("/home/p/out", "/work/out")));
        let opts = options(&p);
        assert!(has_triple(&opts, "--bind", "/home/p/out", "/work/out"));
        assert!(!has_triple(&opts, "--ro-bind", "/home/p/out", "/work/out"));
    }

    #[test]
    fn only_writable_grants_are_writable() {
        let p = plan(
            &ShellPolicy::new(["true"])
                .grant(Mount::read_only("/a", "/work/a"))
                .grant(Mount::writable("/b", "/work/b"))
                .grant(Mount::read_only("/c", "/work/c")),
        );
        let opts = options(&p);
        let writable: Vec<_> = opts
            .windows(3)
            .filter(|w| w[0] == "--bind")
            .map(|w| w[1].clone())
            .collect();
        assert_eq!(writable, ["/b"]);
        // Nothing else that could write to the host: no other bind flavours, no data files.
        for flag in [
            "--bind-try",
            "--dev-bind",
            "--dev-bind-try",
            "--bind-data",
            "--file",
            "--overlay",
        ] {
            assert!(!opts.iter().any(|a| a == flag), "{flag} in {opts:?}");
        }
    }

    #[test]
    fn nested_grants_mount_parents_first() {
        let p = plan(
            &ShellPolicy::new(["true"])
                .grant(Mount::read_only("/ref", "/work/out/ref"))
                .grant(Mount::writable("/out", "/work/out")),
        );
        let opts = options(&p);
        let parent = opts.iter().position(|a| a == "/out");
        let child = opts.iter().position(|a| a == "/ref");
        assert!(parent < child, "{opts:?}");
    }

    #[test]
    fn every_namespace_is_unshared_and_network_is_never_shared() {
        let opts = options(&plan(&ShellPolicy::new(["true"])));
        for flag in ["--unshare-all", "--unshare-user", "--disable-userns"] {
            assert!(opts.iter().any(|a| a == flag), "{flag} missing: {opts:?}");
        }
        for flag in ["--share-net", "--userns", "--pidns", "--as-pid-1"] {
            assert!(!opts.iter().any(|a| a == flag), "{flag} present: {opts:?}");
        }
    }

    #[test]
    fn capabilities_dropped_session_new_and_tied_to_parent() {
        let opts = options(&plan(&ShellPolicy::new(["true"])));
        assert!(has_pair(&opts, "--cap-drop", "ALL"));
        assert!(!opts.iter().any(|a| a == "--cap-add"));
        assert!(opts.iter().any(|a| a == "--new-session"));
        assert!(opts.iter().any(|a| a == "--die-with-parent"));
    }

    #[test]
    fn system_is_read_only_and_kernel_interfaces_are_fresh() {
        let opts = options(&plan(&ShellPolicy::new(["true"])));
        assert!(has_triple(&opts, "--ro-bind", "/usr", "/usr"));
        assert!(has_triple(&opts, "--symlink", "usr/bin", "/bin"));
        assert!(has_triple(&opts, "--symlink", "usr/lib64", "/lib64"));
        assert!(has_triple(&opts, "--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"));
        assert!(has_triple(&opts, "--ro-bind", "/etc/passwd", "/etc/passwd"));
        assert!(
            !opts
                .iter()
                .any(|a| a == "/etc" || a == "/etc/shadow" || a == "/sys" || a == "/home")
        );
        // A fresh procfs for the new pid namespace, a minimal /dev (no disks), a private /tmp.
        assert!(
            opts.windows(4)
                .any(|w| w == ["--proc", "/proc", "--remount-ro", "/proc"])
        );
        assert!(has_pair(&opts, "--dev", "/dev"));
        assert!(!opts.iter().any(|a| a == "--dev-bind"));
        assert!(opts.windows(4).any(|w| w == ["--size", "268435456", "--tmpfs", "/tmp"]));
    }

    #[test]
    fn environment_is_cleared_and_only_the_policy_env_set() {
        let mut policy = ShellPolicy::new(["env"]);
        policy.env.push(("LANG".into(), "C.UTF-8".into()));
        let p = plan(&policy);
        let opts = options(&p);
        assert!(p.env.is_empty(), "bwrap itself starts with an empty environment");
        assert!(opts.iter().any(|a| a == "--clearenv"));
        let set: Vec<_> = opts
            .windows(3)
            .filter(|w| w[0] == "--setenv")
            .map(|w| (w[1].as_str(), w[2].as_str()))
            .collect();
        assert_eq!(
            set,
            [
                ("PATH", "/usr/local/bin:/usr/bin:/bin"),
                ("HOME", "/tmp"),
                ("LANG", "C.UTF-8")
            ]
        );
        let clear = opts.iter().position(|a| a == "--clearenv");
        let first_set = opts.iter().position(|a| a == "--setenv");
        assert!(clear < first_set);
    }

    #[test]
    fn limits_become_prlimit_arguments_and_supervision() {
        let limits = Limits {
            cpu_seconds: 7,
            memory_bytes: 100 << 20,
            max_processes: 16,
            max_file_bytes: 1 << 20,
            tmp_bytes: 1 << 20,
            wall_clock: Duration::from_secs(3),
            output_bytes: 4096,
        };
        let p = plan(&ShellPolicy::new(["sh", "-c", "echo hi"]).limits(limits));
        let all = args(&p);
        let tail: Vec<_> = all.iter().skip_while(|a| *a != "/usr/bin/prlimit").cloned().collect();
        assert_eq!(
            tail,
            [
                "/usr/bin/prlimit",
                "--core=0:0",
                "--cpu=7:8",
                "--as=104857600:104857600",
                "--nproc=17:17",
                "--fsize=1048576:1048576",
                "--",
                "sh",
                "-c",
                "echo hi"
            ]
        );
        assert!(
            options(&p)
                .windows(4)
                .any(|w| w == ["--size", "1048576", "--tmpfs", "/tmp"])
        );
        assert_eq!(
            p.supervision,
            Supervision {
                wall_clock: Duration::from_secs(3),
                output_bytes: 4096,
                max_processes: 16,
                memory_bytes: 100 << 20,
            }
        );
        assert_eq!(p.program, Path::new("/usr/bin/bwrap"));
    }

    #[test]
    fn command_comes_after_the_options_so_it_cannot_add_any() {
        let p = plan(&ShellPolicy::new(["--bind", "/", "/host"]));
        let all = args(&p);
        assert!(!has_triple(&options(&p), "--bind", "/", "/host"));
        assert_eq!(&all[all.len() - 3..], ["--bind", "/", "/host"]);
    }

    #[test]
    fn workdir_becomes_chdir() {
        let p = plan(
            &ShellPolicy::new(["true"])
                .grant(Mount::read_only("/d", "/work/d"))
                .workdir("/work/d"),
        );
        assert!(has_pair(&options(&p), "--chdir", "/work/d"));
    }

    #[test]
    fn refused_policies_make_no_plan() {
        let layout = layout();
        let bwrap = Path::new("/usr/bin/bwrap");
        let mut network = ShellPolicy::new(["curl", "example.com"]);
        network.network = true;
        assert_eq!(
            transform(&network, &layout, bwrap),
            Err(PolicyError::NetworkNotSupported)
        );
        let shadow = ShellPolicy::new(["true"]).grant(Mount::writable("/data", "/usr/bin"));
        assert!(matches!(
            transform(&shadow, &layout, bwrap),
            Err(PolicyError::ReservedSandboxPath { .. })
        ));
        let host_root = ShellPolicy::new(["true"]).grant(Mount::read_only("/", "/host"));
        assert_eq!(transform(&host_root, &layout, bwrap), Err(PolicyError::HostRootGranted));
    }
}
