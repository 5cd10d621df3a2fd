//! deskhand-host-vm: sandboxes for native shell steps (a shell pipeline, `pdftotext`, `git`).
//!
//! Two halves, kept apart on purpose:
//! - [`ShellPolicy`] says what a step may see and use (folder grants, limits, environment,
//!   command). Turning it into a [`LaunchPlan`] is a pure function per backend
//!   ([`bwrap::transform`]) with its own unit tests; nothing there touches the system.
//! - A [`ShellBackend`] checks that it can run on this machine and runs a plan: spawning,
//!   streaming output, enforcing the wall clock and reporting how the command ended.
//!
//! On Linux there are two backends: bubblewrap ([`bwrap::BwrapBackend`], the default) and a
//! QEMU microVM ([`qemu::QemuBackend`], optional; `scripts/setup-vm` fetches what it needs).
//! On macOS, `vz::VzBackend` (Virtualization.framework); on Windows, `hcs::HcsBackend` (the
//! Host Compute Service): both compile-checked only, never yet run on a real machine (see
//! README.md). Their pure halves are in [`vmspec`]; every VM backend's guest speaks
//! [`guest_protocol`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

#[cfg(target_os = "linux")]
pub mod bwrap;
pub mod guest_protocol;
#[cfg(windows)]
pub mod hcs;
mod policy;
#[cfg(target_os = "linux")]
pub mod qemu;
pub mod vmspec;
#[cfg(target_os = "macos")]
pub mod vz;

pub use policy::{Limits, Mount, PolicyError, ShellPolicy};

/// A native-shell sandbox implementation.
pub trait ShellBackend {
    /// A short name for logs and the ledger ("bubblewrap").
    fn name(&self) -> &str;

    /// Whether this backend can run sandboxes on this machine; a problem carries the exact
    /// fix to show the person.
    fn check(&self) -> Result<(), BackendProblem>;

    /// The launch plan for `policy` on this backend (pure apart from what the backend probed
    /// about the machine when it was made).
    fn plan(&self, policy: &ShellPolicy) -> Result<LaunchPlan, PolicyError>;

    /// Runs `plan` to completion, handing output to `on_output` as it arrives (up to the
    /// plan's output cap), and reports how it ended.
    fn run(&self, plan: &LaunchPlan, on_output: &mut dyn FnMut(OutputChunk)) -> Result<ShellOutcome, ShellError>;
}

/// What to spawn, fully decided: the program, its arguments and environment, plus what the
/// spawning side enforces from outside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchPlan {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The environment the program itself starts with. For bubblewrap this is empty: the
    /// sandbox's environment is cleared and set inside (`--clearenv`, `--setenv`).
    pub env: Vec<(OsString, OsString)>,
    /// Host paths the plan mounts; the backend checks they exist and are canonical right
    /// before spawning, so a missing or symlinked grant is a clear error, not a setup failure.
    pub host_paths: Vec<PathBuf>,
    pub supervision: Supervision,
    /// For VM backends: the script that runs the command inside the booted VM (`program`
    /// and `args` boot the VM). `None` where the program is the sandboxed command itself.
    pub guest_script: Option<String>,
}

/// Limits the spawning side enforces (the rest are applied inside the sandbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Supervision {
    /// After this long the whole sandbox (every process in it) is killed.
    pub wall_clock: Duration,
    /// Output bytes (stdout and stderr together) handed to the caller; the rest is drained
    /// and counted.
    pub output_bytes: u64,
    /// Processes the command may have at once; enforced from outside where the kernel would
    /// not enforce the in-sandbox limit (when running as root).
    pub max_processes: u64,
    /// Memory of every process of the sandbox together, where a memory cgroup can hold it
    /// (running as root); the per-process address-space limit applies everywhere.
    pub memory_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A piece of the command's output, in the order it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    pub stream: Stream,
    pub bytes: Vec<u8>,
}

/// How a sandboxed command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellOutcome {
    pub termination: Termination,
    /// The limits that stopped or hindered the command, where they can be told apart.
    pub limits_hit: Vec<LimitHit>,
    /// From spawning to the end of the output.
    pub elapsed: Duration,
    pub output: OutputStats,
}

impl ShellOutcome {
    pub fn success(&self) -> bool {
        self.termination == Termination::Exited { code: 0 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    Exited {
        code: i32,
    },
    /// Killed by a signal. bubblewrap reports a signal death as exit status 128 + N, so a
    /// command that itself exits with such a status is reported as signal N as well.
    Signaled {
        signal: i32,
    },
    /// The wall clock ran out and the whole sandbox was killed.
    TimedOut {
        after: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    /// CPU time ran out (SIGXCPU).
    CpuTime,
    /// A file grew past the file size limit (SIGXFSZ).
    FileSize,
    /// A fork was refused at the process limit. Only visible where the limit is a pids
    /// cgroup (running as root); elsewhere the command just sees fork fail.
    Processes,
    WallClock,
    /// Output beyond the cap was dropped (see [`OutputStats::dropped_bytes`]).
    Output,
    /// The sandbox's processes together reached the memory limit and one was killed. Only
    /// visible where the limit is a memory cgroup (running as root).
    Memory,
}

/// Bytes handed to the caller per stream, and bytes drained but dropped past the cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputStats {
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub dropped_bytes: u64,
}

/// Why a backend cannot run on this machine, with the fix to print.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendProblem {
    #[error("bubblewrap (bwrap) is not installed (looked for {searched}); fix: {}", self.fix())]
    BubblewrapMissing { searched: String },
    #[error("prlimit (util-linux) is not installed, so limits cannot be applied; fix: {}", self.fix())]
    PrlimitMissing,
    #[error(
        "running as root, where the kernel does not enforce the process limit, and no pids cgroup \
         is usable ({detail}); fix: {}",
        self.fix()
    )]
    ProcessCapUnavailable { detail: String },
    #[error("bubblewrap cannot create a sandbox here: {stderr}; fix: {}", self.fix())]
    SandboxFails { stderr: String },
    #[error("native shell sandboxes are not supported on this platform yet; fix: {}", self.fix())]
    UnsupportedPlatform,
    #[error("the microVM backend is missing {missing} (looked in {}); fix: {}", dir.display(), self.fix())]
    VmAssetsMissing { dir: PathBuf, missing: String },
    #[error("the microVM does not boot: {detail}; fix: {}", self.fix())]
    VmFails { detail: String },
    #[error("this machine cannot run virtual machines: {detail}; fix: {}", self.fix())]
    VirtualizationUnsupported { detail: String },
    #[error("the VM's kernel or initramfs {} is missing; fix: {}", path.display(), self.fix())]
    GuestImageMissing { path: PathBuf },
    #[error("deskhand lacks the com.apple.security.virtualization entitlement ({detail}); fix: {}", self.fix())]
    EntitlementMissing { detail: String },
    #[error("the Host Compute Service is not available ({detail}); fix: {}", self.fix())]
    HcsUnavailable { detail: String },
    #[error("the Host Compute Service refused access ({detail}); fix: {}", self.fix())]
    HcsAccessDenied { detail: String },
    #[error("the VM does not run: {detail}; fix: {}", self.fix())]
    PlatformVmFails { detail: String },
}

impl BackendProblem {
    /// The exact thing to do about it.
    pub fn fix(&self) -> &'static str {
        match self {
            BackendProblem::BubblewrapMissing { .. } => {
                "install bubblewrap: `sudo apt-get install bubblewrap` (Debian, Ubuntu), \
                 `sudo dnf install bubblewrap` (Fedora), `sudo pacman -S bubblewrap` (Arch)"
            }
            BackendProblem::PrlimitMissing => {
                "install util-linux: `sudo apt-get install util-linux` (Debian, Ubuntu), \
                 `sudo dnf install util-linux` (Fedora)"
            }
            BackendProblem::ProcessCapUnavailable { .. } => {
                "run deskhand as a normal user, or give root a pids cgroup: mount the cgroup v1 pids \
                 controller at /sys/fs/cgroup/pids, or on cgroup v2 enable it with \
                 `echo +pids > /sys/fs/cgroup/cgroup.subtree_control`"
            }
            BackendProblem::SandboxFails { .. } => {
                "allow unprivileged user namespaces: `sudo sysctl -w kernel.unprivileged_userns_clone=1` \
                 (Debian), or on Ubuntu 23.10+ `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` \
                 (or an AppArmor profile that allows bwrap to create user namespaces)"
            }
            BackendProblem::UnsupportedPlatform => "use Linux with bubblewrap for native shell steps for now",
            BackendProblem::VmAssetsMissing { .. } => {
                "run `scripts/setup-vm` from deskhand's source tree: it fetches QEMU, Debian's kernel and \
                 busybox-static with apt into ~/.cache/deskhand/vm (or the folder given as its argument)"
            }
            BackendProblem::VmFails { .. } => {
                "run `scripts/setup-vm` again, check that its QEMU starts (`qemu-system-x86_64 --version`), \
                 and see host-vm/README.md (the microVM backend) for what is known not to work"
            }
            BackendProblem::VirtualizationUnsupported { .. } => {
                "use a Mac with Apple silicon (or an Intel Mac with VT-x) on macOS 13 or newer, not inside \
                 another VM without nested virtualization; on Linux use the bubblewrap backend"
            }
            BackendProblem::GuestImageMissing { .. } => {
                "build a kernel and an initramfs whose /init is deskhand's guest init, and put them where \
                 the backend looks (host-vm/README.md, \"The macOS and Windows backends\", says how)"
            }
            BackendProblem::EntitlementMissing { .. } => {
                "sign the deskhand binary with the entitlement: put `com.apple.security.virtualization` = true \
                 in an entitlements plist and run `codesign --force --sign - --entitlements deskhand.entitlements \
                 path/to/deskhand` (ad-hoc signing is enough on your own Mac)"
            }
            BackendProblem::HcsUnavailable { .. } => {
                "enable Hyper-V in an elevated PowerShell: `Enable-WindowsOptionalFeature -Online -FeatureName \
                 Microsoft-Hyper-V -All` (Windows 10/11 Pro, Enterprise or Education; Home has no Hyper-V), \
                 reboot, and check that the vmcompute service runs: `Get-Service vmcompute`"
            }
            BackendProblem::HcsAccessDenied { .. } => {
                "run deskhand as an administrator, or add your account to the Hyper-V Administrators group: \
                 `Add-LocalGroupMember -Group 'Hyper-V Administrators' -Member $env:USERNAME`, then sign out and in"
            }
            BackendProblem::PlatformVmFails { .. } => {
                "check the kernel and initramfs (host-vm/README.md, \"The macOS and Windows backends\"); these \
                 backends have not been run on real machines yet, so please report what you see"
            }
        }
    }
}

/// Why a run did not produce an outcome.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error(transparent)]
    Unavailable(#[from] BackendProblem),
    #[error("the granted folder {path} does not exist or cannot be read: {source}")]
    GrantMissing { path: PathBuf, source: std::io::Error },
    #[error(
        "the granted path {path} is not canonical (it is or passes through a symlink, or has `.`); grant {canonical} instead"
    )]
    GrantNotCanonical { path: PathBuf, canonical: PathBuf },
    #[error("could not start {program}: {source}")]
    Spawn { program: PathBuf, source: std::io::Error },
    #[error("the sandbox could not be set up: {message}")]
    Setup { message: String },
    #[error("could not apply the process limit: {detail}")]
    ProcessCap { detail: String },
    #[error("lost track of the sandboxed process: {source}")]
    Supervise { source: std::io::Error },
}
