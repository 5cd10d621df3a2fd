//! The macOS backend: a Linux VM under Virtualization.framework, one per command.
//!
//! NOT YET RUN on a real Mac: it is compile-checked for `aarch64-apple-darwin` in CI, and its
//! pure half ([`crate::vmspec::vz_machine`]) and the console protocol are unit-tested on
//! Linux. See host-vm/README.md for what a Mac needs (the virtualization entitlement, code
//! signing, a kernel and initramfs).
//!
//! The VM boots `VZLinuxBootLoader` (kernel, initramfs, command line) on a
//! `VZGenericPlatformConfiguration`, with the policy's memory and [`crate::vmspec::VM_CPUS`],
//! no network device, no storage, one `VZVirtioFileSystemDeviceConfiguration` per granted
//! folder (a `VZSharedDirectory` that is read-only unless granted writable), an entropy
//! device, and one virtio console port wired to pipes, over which
//! [`crate::guest_protocol::Console`] runs the job. At the wall clock, or when the job ends,
//! the VM is stopped: nothing the command started survives it.
#![expect(
    unsafe_code,
    reason = "Virtualization.framework is an Objective-C API: every call through objc2 is unsafe"
)]

use std::os::fd::{IntoRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use block2::RcBlock;
use dispatch2::{DispatchQueue, DispatchRetained};
use objc2::AllocAnyThread;
use objc2::rc::Retained;
use objc2_foundation::{NSArray, NSError, NSFileHandle, NSString, NSURL};
use objc2_virtualization::{
    VZDirectorySharingDeviceConfiguration, VZEntropyDeviceConfiguration, VZFileHandleSerialPortAttachment,
    VZGenericPlatformConfiguration, VZLinuxBootLoader, VZNetworkDeviceConfiguration, VZSerialPortConfiguration,
    VZSharedDirectory, VZSingleDirectoryShare, VZVirtioConsoleDeviceSerialPortConfiguration,
    VZVirtioEntropyDeviceConfiguration, VZVirtioFileSystemDeviceConfiguration, VZVirtualMachine,
    VZVirtualMachineConfiguration,
};

use crate::guest_protocol::Console;
use crate::vmspec::{self, GuestImage, VzMachine};
use crate::{
    BackendProblem, LaunchPlan, OutputChunk, PolicyError, ShellBackend, ShellError, ShellOutcome, ShellPolicy,
};

/// How long a VM may take from start to init's ready line.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long stopping a VM may take before it is left to the framework.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct VzBackend {
    image: GuestImage,
    boot_timeout: Duration,
    checked: OnceLock<Result<(), BackendProblem>>,
}

impl std::fmt::Debug for VzBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VzBackend").field("image", &self.image).finish()
    }
}

impl VzBackend {
    /// A backend booting `image`, whose init must be [`vmspec::vz_init_script`].
    pub fn new(image: GuestImage) -> VzBackend {
        VzBackend {
            image,
            boot_timeout: BOOT_TIMEOUT,
            checked: OnceLock::new(),
        }
    }

    pub fn with_boot_timeout(mut self, timeout: Duration) -> VzBackend {
        self.boot_timeout = timeout;
        self
    }

    fn check_uncached(&self) -> Result<(), BackendProblem> {
        // SAFETY: a class method without arguments.
        if !unsafe { VZVirtualMachine::isSupported() } {
            return Err(BackendProblem::VirtualizationUnsupported {
                detail: "Virtualization.framework says this Mac cannot run virtual machines".to_owned(),
            });
        }
        for path in [&self.image.kernel, &self.image.initramfs] {
            if !path.is_file() {
                return Err(BackendProblem::GuestImageMissing { path: path.clone() });
            }
        }
        // A trial VM catches what only trying shows: a missing entitlement, a kernel that
        // does not boot, an init that cannot mount virtiofs.
        let trial = self
            .plan(&ShellPolicy::new(["true"]))
            .map_err(|e| BackendProblem::PlatformVmFails { detail: e.to_string() })?;
        // A `true` that ran but failed never names the entitlement: classify makes it
        // PlatformVmFails.
        vmspec::trial_verdict(self.launch(&trial, &mut |_| {}), classify)
    }

    fn launch(&self, plan: &LaunchPlan, on_output: &mut dyn FnMut(OutputChunk)) -> Result<ShellOutcome, ShellError> {
        let machine = VzMachine::from_plan(plan).ok_or_else(|| ShellError::Setup {
            message: "this launch plan was not made by the Virtualization.framework backend".to_owned(),
        })?;
        vmspec::check_host_paths(plan)?;
        let pipe = |e: std::io::Error| ShellError::Setup {
            message: format!("cannot make the console pipes: {e}"),
        };
        let (guest_reads, host_writes) = std::io::pipe().map_err(pipe)?;
        let (host_reads, guest_writes) = std::io::pipe().map_err(pipe)?;
        let config = configuration(&machine, guest_reads.into(), guest_writes.into())
            .map_err(|message| ShellError::Setup { message })?;

        let boot_deadline = Instant::now() + self.boot_timeout;
        let vm = RunningVm::start(&config, boot_deadline).map_err(|message| ShellError::Setup { message })?;
        let outcome = Console::new(host_reads, host_writes).boot_and_run(
            boot_deadline,
            self.boot_timeout,
            &machine.job,
            &plan.supervision,
            on_output,
        );
        // One VM per command: whatever the command left running goes with it.
        drop(vm);
        outcome
    }
}

impl ShellBackend for VzBackend {
    fn name(&self) -> &str {
        "virtualization-framework"
    }

    fn check(&self) -> Result<(), BackendProblem> {
        self.checked.get_or_init(|| self.check_uncached()).clone()
    }

    fn plan(&self, policy: &ShellPolicy) -> Result<LaunchPlan, PolicyError> {
        vmspec::vz_transform(policy, &self.image)
    }

    fn run(&self, plan: &LaunchPlan, on_output: &mut dyn FnMut(OutputChunk)) -> Result<ShellOutcome, ShellError> {
        self.check()?;
        self.launch(plan, on_output)
    }
}

/// Virtualization.framework names the entitlement in its error when the process lacks it.
fn classify(detail: String) -> BackendProblem {
    if detail.contains("com.apple.security.virtualization") || detail.to_lowercase().contains("entitlement") {
        BackendProblem::EntitlementMissing { detail }
    } else {
        BackendProblem::PlatformVmFails { detail }
    }
}

fn ns_error_text(error: &NSError) -> String {
    error.localizedDescription().to_string()
}

/// The configuration for `machine`, validated. The console's ends are handed over: the
/// framework closes them when the configuration goes away.
fn configuration(
    machine: &VzMachine,
    guest_reads: OwnedFd,
    guest_writes: OwnedFd,
) -> Result<Retained<VZVirtualMachineConfiguration>, String> {
    let url =
        |path: &PathBuf| NSURL::from_file_path(path).ok_or_else(|| format!("{} is not a file path", path.display()));
    let kernel = url(&machine.kernel)?;
    let initramfs = url(&machine.initramfs)?;
    let console_in =
        NSFileHandle::initWithFileDescriptor_closeOnDealloc(NSFileHandle::alloc(), guest_reads.into_raw_fd(), true);
    let console_out =
        NSFileHandle::initWithFileDescriptor_closeOnDealloc(NSFileHandle::alloc(), guest_writes.into_raw_fd(), true);

    // SAFETY: plain object construction and property setters on objects this thread owns;
    // nothing is shared until the VM is made from the configuration.
    unsafe {
        let boot = VZLinuxBootLoader::initWithKernelURL(VZLinuxBootLoader::alloc(), &kernel);
        boot.setInitialRamdiskURL(Some(&initramfs));
        boot.setCommandLine(&NSString::from_str(&machine.command_line));

        let config = VZVirtualMachineConfiguration::new();
        config.setBootLoader(Some(&boot));
        config.setPlatform(&VZGenericPlatformConfiguration::new());
        config.setCPUCount(machine.cpus as usize);
        config.setMemorySize(machine.memory_bytes);
        // Deny by default: no network device at all (the default is none; say it).
        config.setNetworkDevices(&NSArray::<VZNetworkDeviceConfiguration>::new());

        let mut shares: Vec<Retained<VZDirectorySharingDeviceConfiguration>> = Vec::new();
        for share in &machine.shares {
            let folder = NSURL::from_directory_path(&share.host)
                .ok_or_else(|| format!("{} is not a folder path", share.host.display()))?;
            let directory =
                VZSharedDirectory::initWithURL_readOnly(VZSharedDirectory::alloc(), &folder, share.read_only);
            let single = VZSingleDirectoryShare::initWithDirectory(VZSingleDirectoryShare::alloc(), &directory);
            let tag = NSString::from_str(&share.tag);
            VZVirtioFileSystemDeviceConfiguration::validateTag_error(&tag).map_err(|e| ns_error_text(&e))?;
            let device = VZVirtioFileSystemDeviceConfiguration::initWithTag(
                VZVirtioFileSystemDeviceConfiguration::alloc(),
                &tag,
            );
            device.setShare(Some(&single));
            shares.push(Retained::into_super(device));
        }
        config.setDirectorySharingDevices(&NSArray::from_retained_slice(&shares));

        let attachment = VZFileHandleSerialPortAttachment::initWithFileHandleForReading_fileHandleForWriting(
            VZFileHandleSerialPortAttachment::alloc(),
            Some(&console_in),
            Some(&console_out),
        );
        let port = VZVirtioConsoleDeviceSerialPortConfiguration::new();
        port.setAttachment(Some(&attachment));
        let ports: [Retained<VZSerialPortConfiguration>; 1] = [Retained::into_super(port)];
        config.setSerialPorts(&NSArray::from_retained_slice(&ports));

        let entropy: [Retained<VZEntropyDeviceConfiguration>; 1] =
            [Retained::into_super(VZVirtioEntropyDeviceConfiguration::new())];
        config.setEntropyDevices(&NSArray::from_retained_slice(&entropy));

        config.validateWithError().map_err(|e| ns_error_text(&e))?;
        Ok(config)
    }
}

/// A reference to the VM to use on its queue. The framework requires every call on a VM to
/// happen on the queue it was made with; that is the only place this crosses to.
struct OnQueue<'a>(&'a VZVirtualMachine);

// SAFETY: an `OnQueue` is only sent into `exec_sync` on the VM's own queue, where the
// framework wants the VM used, and `exec_sync` returns before the reference ends.
unsafe impl Send for OnQueue<'_> {}

/// A started VM, stopped when dropped.
struct RunningVm {
    vm: Retained<VZVirtualMachine>,
    queue: DispatchRetained<DispatchQueue>,
}

impl RunningVm {
    /// Makes the VM on its own serial queue and starts it, waiting until the framework says
    /// it started (not until the guest is ready) or `deadline`.
    fn start(config: &VZVirtualMachineConfiguration, deadline: Instant) -> Result<RunningVm, String> {
        let queue = DispatchQueue::new("deskhand.vz", None);
        // SAFETY: the configuration was validated; the VM is used only on `queue` from here on.
        let vm = unsafe { VZVirtualMachine::initWithConfiguration_queue(VZVirtualMachine::alloc(), config, &queue) };
        let running = RunningVm { vm, queue };
        let (tx, rx) = mpsc::channel::<Result<(), String>>();
        running.on_queue(move |vm| {
            let done = RcBlock::new(move |error: *mut NSError| {
                let _ = tx.send(completion(error));
            });
            // SAFETY: called on the VM's queue with a block that outlives the call (the
            // framework copies it).
            unsafe { vm.startWithCompletionHandler(&done) };
        });
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Ok(())) => Ok(running),
            Ok(Err(message)) => Err(format!("the VM did not start: {message}")),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                Err("the VM did not start in time".to_owned())
            }
        }
    }

    fn on_queue(&self, work: impl FnOnce(&VZVirtualMachine) + Send) {
        let target = OnQueue(&self.vm);
        self.queue.exec_sync(move || {
            // Moves the whole `OnQueue` in (not just its field, which is not `Send`).
            let target = target;
            work(target.0);
        });
    }

    /// Stops the VM at once (no clean shutdown: the guest holds nothing worth keeping) and
    /// waits a bounded time for the framework to confirm.
    fn stop(&self) {
        let (tx, rx) = mpsc::channel::<Result<(), String>>();
        self.on_queue(move |vm| {
            // SAFETY: on the VM's queue.
            if unsafe { vm.canStop() } {
                let done = RcBlock::new(move |error: *mut NSError| {
                    let _ = tx.send(completion(error));
                });
                // SAFETY: on the VM's queue; the framework copies the block.
                unsafe { vm.stopWithCompletionHandler(&done) };
            }
        });
        let _ = rx.recv_timeout(STOP_TIMEOUT);
    }
}

impl Drop for RunningVm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A completion handler's error argument: null for success.
fn completion(error: *mut NSError) -> Result<(), String> {
    // SAFETY: the framework passes null or a valid NSError that lives for the call.
    match unsafe { error.as_ref() } {
        None => Ok(()),
        Some(error) => Err(ns_error_text(error)),
    }
}
