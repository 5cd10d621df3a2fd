//! The pure half of the microVM backend: what QEMU is started with (the VM: kernel, initramfs,
//! one 9p share per granted folder, no network device at all). The job script that runs one
//! command inside it and the VM's init are [`crate::guest_protocol`]'s, as for every VM
//! backend. Nothing here touches the system.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::guest_protocol::{self, Share, ShareTransport, job_script, share_args, shares};
use crate::{LaunchPlan, PolicyError, ShellPolicy, Supervision};

/// The modules 9p sharing needs, in load order (each after those it depends on). The Debian
/// kernel has them as modules; `scripts/setup-vm` copies them next to the kernel.
pub const MODULES: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_mmio",
    "9pnet",
    "9pnet_virtio",
    "netfs",
    "fscache",
    "9p",
];

/// How QEMU runs guest code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation through /dev/kvm.
    Kvm,
    /// Software emulation: slower, works everywhere.
    Tcg {
        /// The host's TSC frequency. Under TCG the guest kernel's TSC calibration is unreliable
        /// and boots hang about half of the time; giving it the frequency avoids that.
        tsc_khz: Option<u64>,
    },
}

/// What a VM boots with: everything that cannot change without a reboot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    pub qemu: PathBuf,
    /// Folders QEMU loads firmware from (`-L`): it needs `pvh.bin` to boot a vmlinux.
    pub firmware_dirs: Vec<PathBuf>,
    /// The microvm firmware (`bios-microvm.bin`), when QEMU would not find it by itself.
    pub bios: Option<PathBuf>,
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    pub accel: Accel,
    pub memory_mib: u64,
    pub cpus: u32,
}

/// QEMU's arguments for a VM with `shares`. Deny by default: `-nodefaults` (no NIC, no
/// disks, no display), no `-netdev` at all, QEMU's own seccomp sandbox, the console on
/// QEMU's stdin/stdout, and only the shares given.
pub fn boot_args(spec: &VmSpec, shares: &[Share]) -> Vec<OsString> {
    let mut args = Args::default();
    for dir in &spec.firmware_dirs {
        args.add(["-L"]);
        args.path(dir);
    }
    if let Some(bios) = &spec.bios {
        args.add(["-bios"]);
        args.path(bios);
    }
    args.add(["-M", "microvm", "-nodefaults", "-no-user-config", "-display", "none"]);
    args.add(["-no-reboot"]);
    // No network: -nodefaults leaves no NIC and there is no -netdev; `-nic none` says it.
    args.add(["-nic", "none"]);
    args.add([
        "-sandbox",
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
    ]);
    let mut cmdline = vec!["console=ttyS0", "quiet", "loglevel=1", "panic=-1"]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    match spec.accel {
        Accel::Kvm => args.add(["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg { tsc_khz } => {
            args.add(["-accel", "tcg", "-cpu", "max"]);
            if let Some(khz) = tsc_khz {
                cmdline.push(format!("tsc_early_khz={khz}"));
                cmdline.push("tsc=reliable".to_owned());
            }
        }
    }
    args.add([
        "-m".to_owned(),
        spec.memory_mib.to_string(),
        "-smp".to_owned(),
        spec.cpus.to_string(),
    ]);
    args.add(["-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console"]);
    args.add(["-kernel"]);
    args.path(&spec.kernel);
    args.add(["-initrd"]);
    args.path(&spec.initramfs);
    for (i, share) in shares.iter().enumerate() {
        let tag = Share::tag(i);
        let mut fsdev = OsString::from(format!("local,id=fs{i},security_model=none,"));
        if !share.writable {
            fsdev.push("readonly=on,");
        }
        fsdev.push("path=");
        fsdev.push(qemu_escape(&share.host));
        args.add(["-fsdev"]);
        args.0.push(fsdev);
        args.add([
            "-device".to_owned(),
            format!("virtio-9p-device,fsdev=fs{i},mount_tag={tag}"),
        ]);
    }
    cmdline.extend(share_args(shares));
    args.add(["-append".to_owned(), cmdline.join(" ")]);
    args.0
}

/// The microVM launch plan for `policy`: QEMU's boot arguments in `program`/`args`, and the
/// job that runs the command inside in `guest_script`.
pub fn transform(policy: &ShellPolicy, spec: &VmSpec) -> Result<LaunchPlan, PolicyError> {
    policy.validate()?;
    let shares = shares(&policy.mounts);
    Ok(LaunchPlan {
        program: spec.qemu.clone(),
        args: boot_args(spec, &shares),
        env: Vec::new(),
        host_paths: shares.iter().map(|s| s.host.clone()).collect(),
        supervision: Supervision {
            wall_clock: policy.limits.wall_clock,
            output_bytes: policy.limits.output_bytes,
            max_processes: policy.limits.max_processes,
            memory_bytes: policy.limits.memory_bytes,
        },
        guest_script: Some(job_script(policy, &shares)),
    })
}

/// The VM's /init: [`guest_protocol::init_script`] with the 9p modules, mounting the 9p shares
/// named on the kernel command line (`deskhand.share=TAG:ro|rw`, read-only at QEMU too).
pub fn init_script() -> String {
    guest_protocol::init_script(MODULES, ShareTransport::Virtio9p)
}

/// QEMU option values separate sub-options with `,`; a literal comma is doubled.
fn qemu_escape(path: &Path) -> OsString {
    let text = path.as_os_str().to_string_lossy();
    if text.contains(',') {
        OsString::from(text.replace(',', ",,"))
    } else {
        path.as_os_str().to_owned()
    }
}

#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn add<S: AsRef<str>>(&mut self, items: impl IntoIterator<Item = S>) {
        self.0.extend(items.into_iter().map(|s| OsString::from(s.as_ref())));
    }

    fn path(&mut self, path: &Path) {
        self.0.push(path.as_os_str().to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mount;

    fn spec(accel: Accel) -> VmSpec {
        VmSpec {
            qemu: "/usr/bin/qemu-system-x86_64".into(),
            firmware_dirs: vec!["/usr/share/qemu".into()],
            bios: None,
            kernel: "/c/vmlinux".into(),
            initramfs: "/c/initramfs.cpio".into(),
            accel,
            memory_mib: 512,
            cpus: 1,
        }
    }

    fn tcg() -> VmSpec {
        spec(Accel::Tcg {
            tsc_khz: Some(2_100_000),
        })
    }

    fn plan(policy: &ShellPolicy) -> LaunchPlan {
        match transform(policy, &tcg()) {
            Ok(plan) => plan,
            Err(e) => panic!("transform refused a valid policy: {e}"),
        }
    }

    fn args(plan: &LaunchPlan) -> Vec<String> {
        plan.args.iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    fn after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    fn script(plan: &LaunchPlan) -> &str {
        plan.guest_script.as_deref().unwrap_or_default()
    }

    #[test]
    fn no_network_device_of_any_kind() {
        let p = plan(&ShellPolicy::new(["true"]).grant(Mount::writable("/home/p/out", "/work/out")));
        let a = args(&p);
        assert!(a.contains(&"-nodefaults".to_owned()));
        assert_eq!(after(&a, "-nic"), ["none"]);
        assert!(
            !a.iter()
                .any(|x| x.starts_with("-netdev") || x.contains("virtio-net") || x == "-net")
        );
        let mut networked = ShellPolicy::new(["true"]);
        networked.network = true;
        assert_eq!(transform(&networked, &tcg()), Err(PolicyError::NetworkNotSupported));
    }

    #[test]
    fn read_only_grant_is_a_read_only_share_and_mount() {
        let p = plan(&ShellPolicy::new(["true"]).grant(Mount::read_only("/home/p/data", "/work/data")));
        let a = args(&p);
        assert_eq!(
            after(&a, "-fsdev"),
            ["local,id=fs0,security_model=none,readonly=on,path=/home/p/data"]
        );
        assert_eq!(after(&a, "-device"), ["virtio-9p-device,fsdev=fs0,mount_tag=g0"]);
        let append = after(&a, "-append").join("");
        assert!(append.contains("deskhand.share=g0:ro"), "{append}");
        assert!(script(&p).contains("mount -o bind /run/grants/g0 '/work/data'"));
        assert!(script(&p).contains("mount -o remount,bind,ro '/work/data'"));
        assert_eq!(p.host_paths, [PathBuf::from("/home/p/data")]);
    }

    #[test]
    fn writable_grant_is_a_writable_share() {
        let p = plan(&ShellPolicy::new(["true"]).grant(Mount::writable("/home/p/out", "/work/out")));
        let a = args(&p);
        assert_eq!(
            after(&a, "-fsdev"),
            ["local,id=fs0,security_model=none,path=/home/p/out"]
        );
        assert!(after(&a, "-append").join("").contains("deskhand.share=g0:rw"));
        assert!(!script(&p).contains("remount"));
    }

    #[test]
    fn only_the_granted_folders_are_shared() {
        let p = plan(&ShellPolicy::new(["true"]));
        let a = args(&p);
        assert!(after(&a, "-fsdev").is_empty());
        assert!(after(&a, "-device").is_empty());
        assert!(p.host_paths.is_empty());
        let p = plan(
            &ShellPolicy::new(["true"])
                .grant(Mount::read_only("/a", "/work/a"))
                .grant(Mount::writable("/b", "/work/b")),
        );
        assert_eq!(after(&args(&p), "-fsdev").len(), 2);
    }

    #[test]
    fn one_folder_granted_twice_is_one_share_writable_if_either_is() {
        let mounts = [Mount::read_only("/a", "/x"), Mount::writable("/a", "/y")];
        assert_eq!(
            shares(&mounts),
            [Share {
                host: "/a".into(),
                writable: true
            }]
        );
        let p = plan(
            &ShellPolicy::new(["true"])
                .grant(Mount::read_only("/a", "/x"))
                .grant(Mount::writable("/a", "/y")),
        );
        // The read-only grant of it stays read-only inside.
        assert!(script(&p).contains("mount -o remount,bind,ro '/x'"));
        assert!(!script(&p).contains("remount,bind,ro '/y'"));
    }

    #[test]
    fn commas_in_paths_are_escaped_for_qemu() {
        let p = plan(&ShellPolicy::new(["true"]).grant(Mount::read_only("/home/p/a,readonly=off", "/w")));
        assert_eq!(
            after(&args(&p), "-fsdev"),
            ["local,id=fs0,security_model=none,readonly=on,path=/home/p/a,,readonly=off"]
        );
    }

    #[test]
    fn tcg_gets_the_tsc_frequency_and_kvm_the_host_cpu() {
        let a: Vec<String> = boot_args(&tcg(), &[])
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(after(&a, "-accel"), ["tcg"]);
        assert!(after(&a, "-append")[0].contains("tsc_early_khz=2100000 tsc=reliable"));
        let a: Vec<String> = boot_args(&spec(Accel::Kvm), &[])
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(after(&a, "-accel"), ["kvm"]);
        assert!(!after(&a, "-append")[0].contains("tsc"));
    }

    #[test]
    fn limits_and_environment_reach_the_job() {
        let mut policy = ShellPolicy::new(["printf", "%s", "it's"]).grant(Mount::read_only("/a", "/work/a"));
        policy.limits.cpu_seconds = 7;
        policy.limits.max_processes = 9;
        policy.limits.memory_bytes = 64 << 20;
        policy.limits.max_file_bytes = 1000;
        policy.limits.output_bytes = 123;
        policy.limits.tmp_bytes = 4096;
        policy.workdir = "/work/a".into();
        let p = plan(&policy);
        let s = script(&p);
        for expected in [
            "ulimit -t 8 && ulimit -S -t 7",
            "ulimit -f 2 ",
            "ulimit -v 65536 ",
            "echo 9 >$cg/pids.max && echo 67108864 >$cg/memory.max",
            "count=123 iflag=count_bytes",
            "size=4096,mode=1777",
            "'/work/a' env -i 'PATH=/usr/local/bin:/usr/bin:/bin' 'HOME=/tmp' 'printf' '%s' 'it'\\''s'",
        ] {
            assert!(s.contains(expected), "missing {expected:?} in\n{s}");
        }
        assert_eq!(p.supervision.output_bytes, 123);
    }

    #[test]
    fn nested_grants_are_bound_parents_first() {
        let p = plan(
            &ShellPolicy::new(["true"])
                .grant(Mount::read_only("/b", "/work/a/b"))
                .grant(Mount::writable("/a", "/work/a")),
        );
        let s = script(&p);
        let parent = s.find("/run/grants/g1 '/work/a'");
        let child = s.find("/run/grants/g0 '/work/a/b'");
        assert!(parent.is_some() && child.is_some() && parent < child, "{s}");
    }
}
