//! The microVM backend: a Linux VM under QEMU (`-M microvm`) booting Debian's kernel (as a
//! plain vmlinux, through its PVH entry) and an initramfs of busybox, with each granted folder
//! shared by 9p (read-only at QEMU unless granted writable) and commands sent over the serial
//! console. A VM boots once and stays warm: `run` reuses it for the next command with the
//! same grants, and boots a new one when the grants differ or the last command timed out.
//!
//! KVM is used when /dev/kvm works (a trial boot shows it); otherwise software emulation
//! (TCG). `scripts/setup-vm` fetches QEMU, the kernel and busybox; `check` names it when
//! something is missing.

mod initramfs;
mod plan;
mod vm;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub use crate::guest_protocol::{Share, job_script, shares};
pub use plan::{Accel, MODULES, VmSpec, boot_args, init_script, transform};
pub use vm::QemuVm;

use crate::vmspec;
use crate::{
    BackendProblem, LaunchPlan, OutputChunk, PolicyError, ShellBackend, ShellError, ShellOutcome, ShellPolicy,
};
use initramfs::InitramfsInputs;

/// Where QEMU is looked for after the assets folder's own unpacked copy.
pub const QEMU_LOCATIONS: &[&str] = &["/usr/bin/qemu-system-x86_64", "/usr/local/bin/qemu-system-x86_64"];

/// Which accelerator to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelChoice {
    /// KVM if a trial boot with it works, else TCG.
    Auto,
    Kvm,
    Tcg,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    /// What `scripts/setup-vm` fetched: `vmlinux`, `busybox`, `modules/`, maybe `qemu/`.
    pub assets_dir: PathBuf,
    /// Where the initramfs is built.
    pub cache_dir: PathBuf,
    pub accel: AccelChoice,
    pub memory_mib: u64,
    pub cpus: u32,
    /// A boot that takes longer is killed and tried once more.
    pub boot_timeout: Duration,
    /// How long the trial KVM boot may take before KVM counts as not working.
    pub kvm_probe_timeout: Duration,
}

impl VmConfig {
    /// Defaults for the assets in `assets_dir`, with the initramfs built there too.
    pub fn in_dir(assets_dir: impl Into<PathBuf>) -> VmConfig {
        let assets_dir = assets_dir.into();
        VmConfig {
            cache_dir: assets_dir.clone(),
            assets_dir,
            accel: AccelChoice::Auto,
            memory_mib: 1024,
            cpus: 1,
            boot_timeout: Duration::from_secs(60),
            kvm_probe_timeout: Duration::from_secs(5),
        }
    }
}

/// Where `scripts/setup-vm` puts the assets: `$XDG_CACHE_HOME/deskhand/vm`, else
/// `$HOME/.cache/deskhand/vm`. The caller reads the environment and passes the values.
pub fn default_assets_dir(home: &Path, xdg_cache_home: Option<&Path>) -> PathBuf {
    match xdg_cache_home {
        Some(cache) if cache.is_absolute() => cache.join("deskhand/vm"),
        _ => home.join(".cache/deskhand/vm"),
    }
}

/// The files the VM is made of, as found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Assets {
    qemu: Option<PathBuf>,
    firmware_dirs: Vec<PathBuf>,
    bios: Option<PathBuf>,
    kernel: PathBuf,
    busybox: PathBuf,
    modules_dir: PathBuf,
}

impl Assets {
    fn find(dir: &Path) -> Assets {
        let unpacked = dir.join("qemu/usr");
        let own = unpacked.join("bin/qemu-system-x86_64");
        let (qemu, firmware_dirs, bios) = if own.is_file() {
            // An unpacked QEMU does not know where its firmware is.
            let bios = unpacked.join("share/seabios/bios-microvm.bin");
            (
                Some(own),
                vec![unpacked.join("share/qemu")],
                bios.is_file().then_some(bios),
            )
        } else {
            let system = QEMU_LOCATIONS.iter().map(PathBuf::from).find(|p| p.is_file());
            (system, Vec::new(), None)
        };
        Assets {
            qemu,
            firmware_dirs,
            bios,
            kernel: dir.join("vmlinux"),
            busybox: dir.join("busybox"),
            modules_dir: dir.join("modules"),
        }
    }

    fn missing(&self) -> Vec<String> {
        let mut missing = Vec::new();
        if self.qemu.is_none() {
            missing.push(format!("QEMU (qemu-system-x86_64 in {})", QEMU_LOCATIONS.join(", ")));
        }
        for path in [&self.kernel, &self.busybox] {
            if !path.is_file() {
                missing.push(path.display().to_string());
            }
        }
        for module in MODULES {
            let path = self.modules_dir.join(format!("{module}.ko"));
            if !path.is_file() {
                missing.push(path.display().to_string());
            }
        }
        missing
    }
}

pub struct QemuBackend {
    config: VmConfig,
    assets: Assets,
    accel: OnceLock<Accel>,
    checked: OnceLock<Result<(), BackendProblem>>,
    warm: Mutex<Option<QemuVm>>,
}

impl std::fmt::Debug for QemuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QemuBackend")
            .field("config", &self.config)
            .field("accel", &self.accel.get())
            .finish()
    }
}

impl QemuBackend {
    /// Looks for the assets; nothing is started until `check` or `run`.
    pub fn new(config: VmConfig) -> QemuBackend {
        QemuBackend {
            assets: Assets::find(&config.assets_dir),
            config,
            accel: OnceLock::new(),
            checked: OnceLock::new(),
            warm: Mutex::new(None),
        }
    }

    pub fn config(&self) -> &VmConfig {
        &self.config
    }

    /// The accelerator in use: decided once, on first use (a trial KVM boot under `Auto`).
    pub fn accel(&self) -> Accel {
        *self.accel.get_or_init(|| {
            let tcg = Accel::Tcg {
                tsc_khz: host_tsc_khz(),
            };
            match self.config.accel {
                AccelChoice::Tcg => tcg,
                AccelChoice::Kvm => Accel::Kvm,
                AccelChoice::Auto if !kvm_openable() => tcg,
                AccelChoice::Auto => {
                    let spec = self.spec(Accel::Kvm);
                    let args = boot_args(&spec, &[]);
                    let works = initramfs::ensure(&self.initramfs_inputs(), &self.config.cache_dir).is_ok()
                        && QemuVm::boot(&spec.qemu, &args, self.config.kvm_probe_timeout).is_ok();
                    if works { Accel::Kvm } else { tcg }
                }
            }
        })
    }

    /// How long the warm VM took to boot, if there is one.
    pub fn warm_boot_time(&self) -> Option<Duration> {
        self.lock_warm()
            .as_ref()
            .filter(|vm| vm.is_alive())
            .map(QemuVm::boot_time)
    }

    /// Stops the warm VM, if any.
    pub fn shutdown(&self) {
        *self.lock_warm() = None;
    }

    fn lock_warm(&self) -> std::sync::MutexGuard<'_, Option<QemuVm>> {
        self.warm.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn initramfs_inputs(&self) -> InitramfsInputs {
        InitramfsInputs {
            busybox: self.assets.busybox.clone(),
            modules_dir: self.assets.modules_dir.clone(),
        }
    }

    fn spec(&self, accel: Accel) -> VmSpec {
        VmSpec {
            qemu: self
                .assets
                .qemu
                .clone()
                .unwrap_or_else(|| PathBuf::from(QEMU_LOCATIONS[0])),
            firmware_dirs: self.assets.firmware_dirs.clone(),
            bios: self.assets.bios.clone(),
            kernel: self.assets.kernel.clone(),
            initramfs: self.config.cache_dir.join("initramfs.cpio"),
            accel,
            memory_mib: self.config.memory_mib,
            cpus: self.config.cpus,
        }
    }

    fn check_uncached(&self) -> Result<(), BackendProblem> {
        let missing = self.assets.missing();
        if !missing.is_empty() {
            return Err(BackendProblem::VmAssetsMissing {
                dir: self.config.assets_dir.clone(),
                missing: missing.join(", "),
            });
        }
        initramfs::ensure(&self.initramfs_inputs(), &self.config.cache_dir).map_err(|e| BackendProblem::VmFails {
            detail: format!("building the initramfs in {}: {e}", self.config.cache_dir.display()),
        })?;
        // A trial boot without grants; the VM stays warm for commands without grants.
        let plan = self
            .plan(&ShellPolicy::new(["true"]))
            .map_err(|e| BackendProblem::VmFails { detail: e.to_string() })?;
        let mut warm = self.lock_warm();
        let vm = self
            .boot(&plan)
            .map_err(|e| BackendProblem::VmFails { detail: e.to_string() })?;
        *warm = Some(vm);
        Ok(())
    }

    /// Boots a VM for `plan`, once more if the first boot hangs or fails.
    fn boot(&self, plan: &LaunchPlan) -> Result<QemuVm, ShellError> {
        match QemuVm::boot(&plan.program, &plan.args, self.config.boot_timeout) {
            Ok(vm) => Ok(vm),
            Err(_) => QemuVm::boot(&plan.program, &plan.args, self.config.boot_timeout),
        }
    }

    fn check_host_paths(plan: &LaunchPlan) -> Result<(), ShellError> {
        for path in &plan.host_paths {
            vmspec::check_host_path(path)?;
            if !path.is_dir() {
                return Err(ShellError::Setup {
                    message: format!("{} is a file; the VM backend shares folders only", path.display()),
                });
            }
        }
        Ok(())
    }
}

impl ShellBackend for QemuBackend {
    fn name(&self) -> &str {
        "qemu-microvm"
    }

    fn check(&self) -> Result<(), BackendProblem> {
        self.checked.get_or_init(|| self.check_uncached()).clone()
    }

    fn plan(&self, policy: &ShellPolicy) -> Result<LaunchPlan, PolicyError> {
        transform(policy, &self.spec(self.accel()))
    }

    fn run(&self, plan: &LaunchPlan, on_output: &mut dyn FnMut(OutputChunk)) -> Result<ShellOutcome, ShellError> {
        self.check()?;
        let Some(script) = &plan.guest_script else {
            return Err(ShellError::Setup {
                message: "this launch plan was not made by the VM backend (it has no guest script)".to_owned(),
            });
        };
        Self::check_host_paths(plan)?;
        let mut warm = self.lock_warm();
        let reusable = warm
            .as_ref()
            .is_some_and(|vm| vm.is_alive() && vm.booted_with(&plan.program, &plan.args));
        if !reusable {
            *warm = None;
            *warm = Some(self.boot(plan)?);
        }
        let Some(vm) = warm.as_mut() else {
            return Err(ShellError::Setup {
                message: "no VM".to_owned(),
            });
        };
        let outcome = vm.run(
            script,
            plan.supervision.wall_clock,
            plan.supervision.output_bytes,
            on_output,
        );
        if !vm.is_alive() {
            *warm = None;
        }
        outcome
    }
}

/// Whether /dev/kvm exists and this user may open it.
fn kvm_openable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// The host's clock rate in kHz, from /proc/cpuinfo's `cpu MHz` (the TSC runs at the
/// nominal rate on the x86 machines QEMU emulates for).
fn host_tsc_khz() -> Option<u64> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = cpuinfo
        .lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()?;
    (mhz > 0.0).then(|| (mhz * 1000.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_dir_follows_xdg_then_home() {
        assert_eq!(
            default_assets_dir(Path::new("/home/p"), None),
            Path::new("/home/p/.cache/deskhand/vm")
        );
        assert_eq!(
            default_assets_dir(Path::new("/home/p"), Some(Path::new("/c"))),
            Path::new("/c/deskhand/vm")
        );
        // A relative XDG_CACHE_HOME is invalid by the spec and ignored.
        assert_eq!(
            default_assets_dir(Path::new("/home/p"), Some(Path::new("c"))),
            Path::new("/home/p/.cache/deskhand/vm")
        );
    }

    #[test]
    fn missing_assets_are_a_problem_naming_the_setup_script() {
        let backend = QemuBackend::new(VmConfig::in_dir("/nonexistent/deskhand-vm"));
        let problem = backend.check().err();
        assert!(
            matches!(&problem, Some(BackendProblem::VmAssetsMissing { missing, .. }) if missing.contains("vmlinux")),
            "{problem:?}"
        );
        let message = problem.map(|p| p.to_string()).unwrap_or_default();
        assert!(message.contains("scripts/setup-vm"), "{message}");
    }
}
