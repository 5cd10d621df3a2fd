//! The pure halves of the macOS and Windows backends: a policy -> the VM to create. For
//! Virtualization.framework that is a [`VzMachine`], a plain description the `vz` module turns
//! into `VZVirtualMachineConfiguration` objects; for the Host Compute Service it is the JSON
//! compute-system document `HcsCreateComputeSystem` takes. Both boot a Linux kernel and
//! initramfs whose init speaks [`crate::guest_protocol`], share only the granted folders
//! (read-only at the hypervisor unless granted writable), and have no network device at all.
//! Nothing here touches the system, so all of it is tested on Linux.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::guest_protocol::{self, Share, ShareTransport};
use crate::{BackendProblem, LaunchPlan, Limits, PolicyError, ShellError, ShellOutcome, ShellPolicy, Supervision};

/// Virtual CPUs of a VM. The policy limits CPU time per process, not parallelism; two keep a
/// pipeline moving without taking a laptop's every core.
pub const VM_CPUS: u32 = 2;

/// Memory for the guest's kernel, init and page cache, on top of what the command may use.
const GUEST_BASE_MIB: u64 = 256;

/// The Hyper-V socket port of the Host Compute Service's Plan9 server (hcsshim's choice).
pub const HCS_PLAN9_PORT: u32 = 564;

/// A Plan9 share flag of the HCS schema: the host refuses every write.
pub const PLAN9_READ_ONLY: u32 = 0x1;
/// A Plan9 share flag: Linux metadata (modes, owners) kept in extended attributes.
pub const PLAN9_LINUX_METADATA: u32 = 0x4;

/// The guest the VM boots: host paths of a Linux kernel and an initramfs whose `/init` is
/// [`guest_protocol::init_script`] for the backend's share transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestImage {
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
}

/// The VM's memory: what the command may use plus its memory-backed /tmp plus the guest's
/// own, in MiB, rounded up to an even number (Hyper-V wants 2 MiB multiples).
pub fn memory_mib(limits: &Limits) -> u64 {
    let command = limits.memory_bytes.saturating_add(limits.tmp_bytes).div_ceil(1 << 20);
    let mib = GUEST_BASE_MIB.saturating_add(command);
    mib + mib % 2
}

/// The kernel command line: quiet, no reboot on panic (the VM stops instead), the console
/// the protocol runs on, and the shares for init.
pub fn kernel_command_line(console: &str, shares: &[Share]) -> String {
    let mut words = vec![
        format!("console={console}"),
        "quiet".to_owned(),
        "loglevel=1".to_owned(),
        "panic=-1".to_owned(),
    ];
    words.extend(guest_protocol::share_args(shares));
    words.join(" ")
}

/// A Virtualization.framework VM, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VzMachine {
    /// `VZLinuxBootLoader`: kernel, initial ramdisk and command line.
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    pub command_line: String,
    pub cpus: u32,
    pub memory_bytes: u64,
    /// One `VZVirtioFileSystemDeviceConfiguration` each, with a `VZSingleDirectoryShare` of a
    /// `VZSharedDirectory` that is read-only unless the share is writable.
    pub shares: Vec<VzShare>,
    /// The command's job for [`guest_protocol::Console::run`].
    pub job: String,
    // What is not here is not configured: no network device, no storage, no graphics, no
    // sockets, no audio, no USB. One virtio console port (`hvc0`) is wired to the host's
    // pipes for the protocol, and one entropy device feeds the guest's RNG.
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VzShare {
    pub tag: String,
    pub host: PathBuf,
    pub read_only: bool,
}

/// The Virtualization.framework VM for `policy`.
pub fn vz_machine(policy: &ShellPolicy, image: &GuestImage) -> Result<VzMachine, PolicyError> {
    policy.validate()?;
    let shares = guest_protocol::shares(&policy.mounts);
    Ok(VzMachine {
        kernel: image.kernel.clone(),
        initramfs: image.initramfs.clone(),
        command_line: kernel_command_line("hvc0", &shares),
        cpus: VM_CPUS,
        memory_bytes: memory_mib(&policy.limits) << 20,
        shares: shares
            .iter()
            .enumerate()
            .map(|(i, share)| VzShare {
                tag: Share::tag(i),
                host: share.host.clone(),
                read_only: !share.writable,
            })
            .collect(),
        job: guest_protocol::job_script(policy, &shares),
    })
}

/// The Virtualization.framework launch plan for `policy`: the kernel as `program`, the rest of
/// the [`VzMachine`] as `args` (readable in logs, and read back by [`VzMachine::from_plan`]),
/// the job as `guest_script`.
pub fn vz_transform(policy: &ShellPolicy, image: &GuestImage) -> Result<LaunchPlan, PolicyError> {
    let machine = vz_machine(policy, image)?;
    let mut args: Vec<OsString> = vec!["--initrd".into(), machine.initramfs.clone().into()];
    args.extend(["--cmdline".into(), machine.command_line.clone().into()]);
    args.extend(["--cpus".into(), machine.cpus.to_string().into()]);
    args.extend(["--memory".into(), machine.memory_bytes.to_string().into()]);
    for share in &machine.shares {
        let mode = if share.read_only { "ro" } else { "rw" };
        args.extend([
            "--share".into(),
            share.tag.clone().into(),
            mode.into(),
            share.host.clone().into(),
        ]);
    }
    Ok(LaunchPlan {
        program: machine.kernel,
        args,
        env: Vec::new(),
        host_paths: machine.shares.into_iter().map(|s| s.host).collect(),
        supervision: supervision(policy),
        guest_script: Some(machine.job),
    })
}

impl VzMachine {
    /// Reads back what [`vz_transform`] wrote; `None` for a plan it did not make.
    pub fn from_plan(plan: &LaunchPlan) -> Option<VzMachine> {
        let mut machine = VzMachine {
            kernel: plan.program.clone(),
            initramfs: PathBuf::new(),
            command_line: String::new(),
            cpus: 0,
            memory_bytes: 0,
            shares: Vec::new(),
            job: plan.guest_script.clone()?,
        };
        let mut args = plan.args.iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().cloned();
            match flag.to_str()? {
                "--initrd" => machine.initramfs = value()?.into(),
                "--cmdline" => machine.command_line = value()?.into_string().ok()?,
                "--cpus" => machine.cpus = value()?.to_str()?.parse().ok()?,
                "--memory" => machine.memory_bytes = value()?.to_str()?.parse().ok()?,
                "--share" => {
                    let tag = value()?.into_string().ok()?;
                    let read_only = match value()?.to_str()? {
                        "ro" => true,
                        "rw" => false,
                        _ => return None,
                    };
                    let host = value()?.into();
                    machine.shares.push(VzShare { tag, host, read_only });
                }
                _ => return None,
            }
        }
        Some(machine)
    }
}

/// The init a Virtualization.framework guest's initramfs needs (virtiofs shares).
pub fn vz_init_script(modules: &[&str]) -> String {
    guest_protocol::init_script(modules, ShareTransport::Virtiofs)
}

/// The init a Host Compute Service guest's initramfs needs (Plan9 over Hyper-V sockets).
pub fn hcs_init_script(modules: &[&str]) -> String {
    guest_protocol::init_script(modules, ShareTransport::HvSocket9p { port: HCS_PLAN9_PORT })
}

/// The named pipe a compute system's serial console is on.
pub fn hcs_console_pipe(system_id: &str) -> String {
    format!(r"\\.\pipe\deskhand-{system_id}")
}

/// The Host Compute Service document for a Linux utility VM running `policy`: schema 2.1,
/// kernel-direct boot of `image`, memory and processors from the policy, one Plan9 share per
/// granted folder (read-only unless writable), COM1 on the named pipe [`hcs_console_pipe`],
/// and no network adapter. The VM goes away with its last handle.
pub fn hcs_document(policy: &ShellPolicy, image: &GuestImage, system_id: &str) -> Result<Value, PolicyError> {
    policy.validate()?;
    let shares = guest_protocol::shares(&policy.mounts);
    let plan9: Vec<Value> = shares
        .iter()
        .enumerate()
        .map(|(i, share)| {
            let mut flags = PLAN9_LINUX_METADATA;
            if !share.writable {
                flags |= PLAN9_READ_ONLY;
            }
            json!({
                "Name": Share::tag(i),
                "AccessName": Share::tag(i),
                "Path": windows_path(&share.host),
                "Port": HCS_PLAN9_PORT,
                "Flags": flags,
            })
        })
        .collect();
    Ok(json!({
        "SchemaVersion": { "Major": 2, "Minor": 1 },
        "Owner": "deskhand",
        "ShouldTerminateOnLastHandleClosed": true,
        "VirtualMachine": {
            "StopOnReset": true,
            "Chipset": {
                "LinuxKernelDirect": {
                    "KernelFilePath": windows_path(&image.kernel),
                    "InitRdPath": windows_path(&image.initramfs),
                    "KernelCmdLine": kernel_command_line("ttyS0", &shares),
                }
            },
            "ComputeTopology": {
                "Memory": { "SizeInMB": memory_mib(&policy.limits), "AllowOvercommit": true },
                "Processor": { "Count": VM_CPUS }
            },
            "Devices": {
                "ComPorts": { "0": { "NamedPipe": hcs_console_pipe(system_id) } },
                "Plan9": { "Shares": plan9 },
                "HvSocket": {
                    "HvSocketConfig": {
                        // Only SYSTEM and Administrators may connect to the VM's sockets.
                        "DefaultBindSecurityDescriptor": "D:P(A;;FA;;;SY)(A;;FA;;;BA)"
                    }
                }
            }
        }
    }))
}

/// The Host Compute Service launch plan for `policy`: the kernel as `program`, the compute
/// system document as the one argument (its console pipe named for a placeholder id that
/// [`hcs_document_for`] replaces), the job as `guest_script`.
pub fn hcs_transform(policy: &ShellPolicy, image: &GuestImage) -> Result<LaunchPlan, PolicyError> {
    let document = hcs_document(policy, image, HCS_PLAN_ID)?;
    let shares = guest_protocol::shares(&policy.mounts);
    Ok(LaunchPlan {
        program: image.kernel.clone(),
        args: vec![document.to_string().into()],
        env: Vec::new(),
        host_paths: shares.iter().map(|s| s.host.clone()).collect(),
        supervision: supervision(policy),
        guest_script: Some(guest_protocol::job_script(policy, &shares)),
    })
}

/// The id a plan's document is made for; each run gets its own.
const HCS_PLAN_ID: &str = "plan";

/// The document of `plan` (from [`hcs_transform`]) for the compute system `system_id`, with
/// its own console pipe; `None` for a plan it did not make.
pub fn hcs_document_for(plan: &LaunchPlan, system_id: &str) -> Option<Value> {
    let [document] = plan.args.as_slice() else {
        return None;
    };
    let mut document: Value = serde_json::from_str(document.to_str()?).ok()?;
    let pipe = document
        .pointer_mut("/VirtualMachine/Devices/ComPorts/0/NamedPipe")
        .filter(|p| p.as_str() == Some(hcs_console_pipe(HCS_PLAN_ID).as_str()))?;
    *pipe = Value::String(hcs_console_pipe(system_id));
    Some(document)
}

/// Checks right before starting a sandbox that every granted folder of `plan` exists and is
/// canonical, so a missing or symlinked grant is a clear error, not a share of something
/// else. (With [`check_host_path`], the functions here that look at the system; every
/// backend uses them.)
pub fn check_host_paths(plan: &LaunchPlan) -> Result<(), ShellError> {
    plan.host_paths.iter().try_for_each(|path| check_host_path(path))
}

/// Checks that the granted `path` exists and is canonical.
pub fn check_host_path(path: &Path) -> Result<(), ShellError> {
    let canonical = path.canonicalize().map_err(|source| ShellError::GrantMissing {
        path: path.to_owned(),
        source,
    })?;
    if canonical != path {
        return Err(ShellError::GrantNotCanonical {
            path: path.to_owned(),
            canonical,
        });
    }
    Ok(())
}

/// What a trial run of `true` (a backend's `check`) says: nothing when it succeeded,
/// otherwise the problem `problem` makes of what went wrong.
pub fn trial_verdict(
    trial: Result<ShellOutcome, ShellError>,
    problem: impl FnOnce(String) -> BackendProblem,
) -> Result<(), BackendProblem> {
    match trial {
        Ok(outcome) if outcome.success() => Ok(()),
        Ok(outcome) => Err(problem(format!("`true` ended with {:?}", outcome.termination))),
        Err(e) => Err(problem(e.to_string())),
    }
}

fn supervision(policy: &ShellPolicy) -> Supervision {
    Supervision {
        wall_clock: policy.limits.wall_clock,
        output_bytes: policy.limits.output_bytes,
        max_processes: policy.limits.max_processes,
        memory_bytes: policy.limits.memory_bytes,
    }
}

/// A host path as HCS reads it. Policies use absolute paths; on Windows they are already
/// Windows paths, and elsewhere (the unit tests) they are taken as they are.
fn windows_path(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mount;

    fn image() -> GuestImage {
        GuestImage {
            kernel: "/vm/vmlinux".into(),
            initramfs: "/vm/initramfs.cpio".into(),
        }
    }

    fn policy() -> ShellPolicy {
        ShellPolicy::new(["ls", "/work/a"])
            .grant(Mount::read_only("/home/p/a", "/work/a"))
            .grant(Mount::writable("/home/p/out", "/work/out"))
    }

    fn vz(policy: &ShellPolicy) -> VzMachine {
        vz_machine(policy, &image()).unwrap_or_else(|e| panic!("refused a valid policy: {e}"))
    }

    fn hcs(policy: &ShellPolicy) -> Value {
        hcs_document(policy, &image(), "abc").unwrap_or_else(|e| panic!("refused a valid policy: {e}"))
    }

    #[test]
    fn memory_covers_the_command_its_tmp_and_the_guest() {
        let mut limits = Limits {
            memory_bytes: 512 << 20,
            tmp_bytes: 64 << 20,
            ..Limits::default()
        };
        assert_eq!(memory_mib(&limits), 256 + 512 + 64);
        limits.memory_bytes = (100 << 20) + 1;
        limits.tmp_bytes = 1 << 20;
        // 256 + 101 (rounded up) + 1 = 358: even already.
        assert_eq!(memory_mib(&limits), 358);
        limits.tmp_bytes = 2 << 20;
        assert_eq!(memory_mib(&limits) % 2, 0);
    }

    #[test]
    fn vz_boots_the_image_with_policy_sized_resources() {
        let mut p = policy();
        p.limits.memory_bytes = 1 << 30;
        p.limits.tmp_bytes = 128 << 20;
        let m = vz(&p);
        assert_eq!(m.kernel, PathBuf::from("/vm/vmlinux"));
        assert_eq!(m.initramfs, PathBuf::from("/vm/initramfs.cpio"));
        assert_eq!(m.cpus, VM_CPUS);
        assert_eq!(m.memory_bytes, (256 + 1024 + 128) << 20);
        assert!(m.command_line.starts_with("console=hvc0 "), "{}", m.command_line);
        assert!(m.command_line.contains("panic=-1"));
    }

    #[test]
    fn vz_shares_only_the_grants_read_only_unless_writable() {
        let m = vz(&policy());
        assert_eq!(
            m.shares,
            [
                VzShare {
                    tag: "g0".into(),
                    host: "/home/p/a".into(),
                    read_only: true
                },
                VzShare {
                    tag: "g1".into(),
                    host: "/home/p/out".into(),
                    read_only: false
                },
            ]
        );
        assert!(m.command_line.ends_with("deskhand.share=g0:ro deskhand.share=g1:rw"));
        assert!(vz(&ShellPolicy::new(["true"])).shares.is_empty());
    }

    #[test]
    fn vz_job_runs_the_command_at_the_grant_paths() {
        let m = vz(&policy());
        assert!(m.job.contains("mount -o bind /run/grants/g0 '/work/a'"));
        assert!(m.job.contains("mount -o remount,bind,ro '/work/a'"));
        assert!(m.job.contains("'ls' '/work/a'"));
    }

    #[test]
    fn vz_and_hcs_refuse_what_every_backend_refuses() {
        let mut networked = policy();
        networked.network = true;
        assert_eq!(vz_machine(&networked, &image()), Err(PolicyError::NetworkNotSupported));
        assert_eq!(
            hcs_document(&networked, &image(), "x"),
            Err(PolicyError::NetworkNotSupported)
        );
        let root = ShellPolicy::new(["true"]).grant(Mount::read_only("/", "/host"));
        assert_eq!(vz_machine(&root, &image()), Err(PolicyError::HostRootGranted));
    }

    #[test]
    fn hcs_boots_the_image_directly_on_com1() {
        let d = hcs(&policy());
        assert_eq!(d["SchemaVersion"], json!({ "Major": 2, "Minor": 1 }));
        assert_eq!(d["ShouldTerminateOnLastHandleClosed"], json!(true));
        let boot = &d["VirtualMachine"]["Chipset"]["LinuxKernelDirect"];
        assert_eq!(boot["KernelFilePath"], json!("/vm/vmlinux"));
        assert_eq!(boot["InitRdPath"], json!("/vm/initramfs.cpio"));
        let cmdline = boot["KernelCmdLine"].as_str().unwrap_or_default();
        assert!(cmdline.starts_with("console=ttyS0 "), "{cmdline}");
        assert!(cmdline.contains("deskhand.share=g0:ro deskhand.share=g1:rw"));
        assert_eq!(
            d["VirtualMachine"]["Devices"]["ComPorts"]["0"]["NamedPipe"],
            json!(r"\\.\pipe\deskhand-abc")
        );
    }

    #[test]
    fn hcs_has_no_network_adapter_of_any_kind() {
        let d = hcs(&policy());
        let devices = d["VirtualMachine"]["Devices"]
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>());
        assert_eq!(
            devices,
            Some(vec!["ComPorts".to_owned(), "HvSocket".to_owned(), "Plan9".to_owned()])
        );
        let text = d.to_string();
        assert!(!text.contains("NetworkAdapters") && !text.contains("Network"), "{text}");
    }

    #[test]
    fn hcs_shares_only_the_grants_read_only_unless_writable() {
        let d = hcs(&policy());
        let shares = &d["VirtualMachine"]["Devices"]["Plan9"]["Shares"];
        assert_eq!(shares.as_array().map(Vec::len), Some(2));
        assert_eq!(shares[0]["Path"], json!("/home/p/a"));
        assert_eq!(shares[0]["AccessName"], json!("g0"));
        assert_eq!(shares[0]["Port"], json!(HCS_PLAN9_PORT));
        assert_eq!(shares[0]["Flags"], json!(PLAN9_READ_ONLY | PLAN9_LINUX_METADATA));
        assert_eq!(shares[1]["Path"], json!("/home/p/out"));
        assert_eq!(shares[1]["Flags"], json!(PLAN9_LINUX_METADATA));
        let none = hcs(&ShellPolicy::new(["true"]));
        assert_eq!(
            none["VirtualMachine"]["Devices"]["Plan9"]["Shares"]
                .as_array()
                .map(Vec::len),
            Some(0)
        );
    }

    #[test]
    fn a_folder_granted_twice_is_one_share_writable_if_either_is() {
        let p = ShellPolicy::new(["true"])
            .grant(Mount::read_only("/a", "/x"))
            .grant(Mount::writable("/a", "/y"));
        let d = hcs(&p);
        let shares = &d["VirtualMachine"]["Devices"]["Plan9"]["Shares"];
        assert_eq!(shares.as_array().map(Vec::len), Some(1));
        assert_eq!(shares[0]["Flags"], json!(PLAN9_LINUX_METADATA));
        // The read-only grant of it stays read-only inside the guest.
        assert!(vz(&p).job.contains("mount -o remount,bind,ro '/x'"));
    }

    #[test]
    fn hcs_resources_come_from_the_policy() {
        let mut p = policy();
        p.limits.memory_bytes = 1 << 30;
        p.limits.tmp_bytes = 256 << 20;
        let d = hcs(&p);
        let topology = &d["VirtualMachine"]["ComputeTopology"];
        assert_eq!(topology["Memory"]["SizeInMB"], json!(256 + 1024 + 256));
        assert_eq!(topology["Processor"]["Count"], json!(VM_CPUS));
    }

    #[test]
    fn vz_plan_reads_back_as_the_machine() {
        let p = policy();
        let plan = vz_transform(&p, &image()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.program, PathBuf::from("/vm/vmlinux"));
        assert_eq!(
            plan.host_paths,
            [PathBuf::from("/home/p/a"), PathBuf::from("/home/p/out")]
        );
        assert!(plan.env.is_empty());
        assert_eq!(VzMachine::from_plan(&plan), Some(vz(&p)));
        let mut foreign = plan.clone();
        foreign.args.push("--network".into());
        assert_eq!(VzMachine::from_plan(&foreign), None);
    }

    #[test]
    fn hcs_plan_gets_a_console_pipe_per_run() {
        let plan = hcs_transform(&policy(), &image()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.guest_script.as_deref(), Some(vz(&policy()).job.as_str()));
        let d = hcs_document_for(&plan, "run-1").unwrap_or_default();
        assert_eq!(
            d["VirtualMachine"]["Devices"]["ComPorts"]["0"]["NamedPipe"],
            json!(r"\\.\pipe\deskhand-run-1")
        );
        assert_eq!(
            d["VirtualMachine"]["Devices"]["Plan9"],
            hcs(&policy())["VirtualMachine"]["Devices"]["Plan9"]
        );
        let mut foreign = plan.clone();
        foreign.args = vec!["{}".into()];
        assert_eq!(hcs_document_for(&foreign, "x"), None);
    }

    #[test]
    fn guest_inits_match_their_transports() {
        assert!(vz_init_script(&[]).contains("mount -t virtiofs"));
        assert!(hcs_init_script(&[]).contains("VSOCK-CONNECT:2:564"));
    }
}
