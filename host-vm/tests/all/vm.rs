//! The QEMU microVM backend, with real VMs (software emulation here). Skipped, with a printed
//! reason, where `scripts/setup-vm` has not fetched QEMU, the kernel and busybox. All tests
//! share one backend, so they take turns on its warm VM; a test whose grants differ from the
//! last one's boots a new VM.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use deskhand_host_vm::qemu::{QemuBackend, QemuVm, VmConfig, default_assets_dir};
use deskhand_host_vm::{BackendProblem, LimitHit, Limits, Mount, ShellBackend, ShellPolicy, Stream, Termination};

use crate::common::{Fixture, Run, listing};

/// Where `scripts/setup-vm` put the assets. The one read of the environment in these tests:
/// the person's cache folder is configuration the harness cannot be handed otherwise.
fn assets_dir() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into());
    let xdg = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from);
    default_assets_dir(&home, xdg.as_deref())
}

fn backend() -> Option<&'static QemuBackend> {
    static BACKEND: OnceLock<QemuBackend> = OnceLock::new();
    let backend = BACKEND.get_or_init(|| QemuBackend::new(VmConfig::in_dir(assets_dir())));
    match backend.check() {
        Ok(()) => Some(backend),
        Err(problem @ BackendProblem::VmAssetsMissing { .. }) => {
            eprintln!("SKIPPED: {problem}");
            None
        }
        Err(problem) => panic!("the VM assets are there but the VM does not work: {problem}"),
    }
}

macro_rules! vm_or_skip {
    () => {
        match backend() {
            Some(backend) => backend,
            None => return Ok(()),
        }
    };
}

fn run(backend: &QemuBackend, policy: &ShellPolicy) -> anyhow::Result<Run> {
    let plan = backend.plan(policy)?;
    let mut chunks = Vec::new();
    let outcome = backend.run(&plan, &mut |chunk| chunks.push((chunk.stream, chunk.bytes)))?;
    let collect = |stream| {
        let bytes: Vec<u8> = chunks
            .iter()
            .filter(|(s, _)| *s == stream)
            .flat_map(|(_, b)| b.clone())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Ok(Run {
        stdout: collect(Stream::Stdout),
        stderr: collect(Stream::Stderr),
        outcome,
        chunks,
    })
}

fn sh(script: &str) -> ShellPolicy {
    ShellPolicy::new(["/bin/sh", "-c", script]).limits(Limits {
        wall_clock: Duration::from_secs(60),
        ..Limits::default()
    })
}

#[test]
fn vm_missing_assets_name_the_setup_script() {
    let backend = QemuBackend::new(VmConfig::in_dir("/nonexistent/deskhand-vm"));
    let problem = backend.check().err();
    assert!(
        matches!(problem, Some(BackendProblem::VmAssetsMissing { .. })),
        "{problem:?}"
    );
    let message = problem.map(|p| p.to_string()).unwrap_or_default();
    assert!(message.contains("scripts/setup-vm"), "{message}");
}

#[test]
fn vm_command_sees_only_its_grants() -> anyhow::Result<()> {
    let backend = vm_or_skip!();
    let fx = Fixture::new()?;
    let data = fx.dir("data")?;
    fx.file("data/a.txt", "a")?;
    let canary = fx.file("canary.txt", "secret")?;
    let script = format!(
        "ls /work; ls /work/data; ls /run/grants; cat {} 2>/dev/null && echo LEAK; ls /sys/class/net; echo done",
        canary.display()
    );
    let run = run(backend, &sh(&script).grant(Mount::read_only(&data, "/work/data")))?;
    assert!(run.outcome.success(), "{run:?}");
    // /work holds the one grant; the VM has exactly one share; the host file next to the
    // grant does not exist in the VM; the only network interface is loopback (or none).
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[..3], ["data", "a.txt", "g0"], "{run:?}");
    assert!(!run.stdout.contains("LEAK"), "{run:?}");
    assert!(lines[3..].iter().all(|l| *l == "lo" || *l == "done"), "{run:?}");
    Ok(())
}

#[test]
fn vm_read_only_grant_cannot_be_written() -> anyhow::Result<()> {
    let backend = vm_or_skip!();
    let fx = Fixture::new()?;
    let data = fx.dir("data")?;
    let file = fx.file("data/keep.txt", "original")?;
    let script = "cd /work/data; \
                  echo x > new.txt && echo WROTE-NEW; \
                  echo x >> keep.txt && echo APPENDED; \
                  true > keep.txt && echo TRUNCATED; \
                  mv keep.txt moved.txt && echo RENAMED; \
                  rm keep.txt && echo REMOVED; \
                  mkdir sub && echo MKDIR; \
                  mount -o remount,rw /work/data && echo x > keep.txt && echo REMOUNTED-AND-WROTE; \
                  mount -o remount,rw /run/grants/g0 && echo x > /run/grants/g0/keep.txt && echo SHARE-WRITTEN; \
                  echo end";
    let run = run(backend, &sh(script).grant(Mount::read_only(&data, "/work/data")))?;
    assert_eq!(run.stdout.trim(), "end", "{run:?}");
    assert_eq!(std::fs::read_to_string(&file)?, "original");
    assert_eq!(listing(&data)?, ["keep.txt"]);
    Ok(())
}

#[test]
fn vm_writes_in_a_writable_grant_land() -> anyhow::Result<()> {
    let backend = vm_or_skip!();
    let fx = Fixture::new()?;
    let out = fx.dir("out")?;
    fx.file("out/old.txt", "old")?;
    let script = "cd /work/out && echo hello > new.txt && mkdir -p sub && echo deep > sub/d.txt \
                  && mv old.txt renamed.txt && echo ok";
    let run = run(backend, &sh(script).grant(Mount::writable(&out, "/work/out")))?;
    assert_eq!(run.stdout, "ok\n", "{run:?}");
    assert_eq!(std::fs::read_to_string(out.join("new.txt"))?, "hello\n");
    assert_eq!(std::fs::read_to_string(out.join("sub/d.txt"))?, "deep\n");
    assert_eq!(listing(&out)?, ["new.txt", "renamed.txt", "sub"]);
    Ok(())
}

#[test]
fn vm_timeout_stops_a_runaway_command_and_the_next_one_runs() -> anyhow::Result<()> {
    let backend = vm_or_skip!();
    let policy = sh("echo started; while :; do :; done").limits(Limits {
        wall_clock: Duration::from_secs(3),
        ..Limits::default()
    });
    let run = run(backend, &policy)?;
    assert_eq!(
        run.outcome.termination,
        Termination::TimedOut {
            after: Duration::from_secs(3)
        },
        "{run:?}"
    );
    assert!(run.outcome.limits_hit.contains(&LimitHit::WallClock));
    assert!(run.outcome.elapsed < Duration::from_secs(10), "{run:?}");
    // The VM was killed with the command; the next command gets a fresh one.
    let next = self::run(backend, &sh("echo alive"))?;
    assert_eq!(next.stdout, "alive\n", "{next:?}");
    Ok(())
}

#[test]
fn vm_exit_codes_signals_and_output_come_back() -> anyhow::Result<()> {
    let backend = vm_or_skip!();
    let run = run(backend, &sh("echo out; echo err >&2; exit 3"))?;
    assert_eq!(run.outcome.termination, Termination::Exited { code: 3 }, "{run:?}");
    assert_eq!((run.stdout.as_str(), run.stderr.as_str()), ("out\n", "err\n"));
    assert_eq!(
        (run.outcome.output.stdout_bytes, run.outcome.output.stderr_bytes),
        (4, 4)
    );

    let signaled = self::run(backend, &sh("kill -TERM $$"))?;
    assert_eq!(
        signaled.outcome.termination,
        Termination::Signaled { signal: 15 },
        "{signaled:?}"
    );

    let unknown = self::run(backend, &ShellPolicy::new(["no-such-command-here"]))?;
    assert_eq!(
        unknown.outcome.termination,
        Termination::Exited { code: 127 },
        "{unknown:?}"
    );

    // Binary output survives the console; output past the cap is counted, not kept.
    let capped = self::run(
        backend,
        &sh("printf '\\000\\001\\377'; yes | head -c 100000").limits(Limits {
            output_bytes: 1000,
            ..Limits::default()
        }),
    )?;
    assert!(capped.outcome.success(), "{capped:?}");
    let stdout: Vec<u8> = capped.chunks.iter().flat_map(|(_, b)| b.clone()).collect();
    assert_eq!(stdout.len(), 1000);
    assert_eq!(stdout[..5], [0, 1, 255, b'y', b'\n']);
    assert_eq!(capped.outcome.output.dropped_bytes, 100_003 - 1000);
    assert!(capped.outcome.limits_hit.contains(&LimitHit::Output));

    // The environment is exactly the policy's.
    let env = self::run(backend, &ShellPolicy::new(["env"]))?;
    let mut vars: Vec<&str> = env.stdout.lines().collect();
    vars.sort();
    assert_eq!(vars, ["HOME=/tmp", "PATH=/usr/local/bin:/usr/bin:/bin"], "{env:?}");
    Ok(())
}

#[test]
fn vm_limits_inside_the_vm_stop_cpu_and_forks() -> anyhow::Result<()> {
    let backend = vm_or_skip!();
    let cpu = run(
        backend,
        &sh("while :; do :; done").limits(Limits {
            cpu_seconds: 1,
            wall_clock: Duration::from_secs(60),
            ..Limits::default()
        }),
    )?;
    assert_eq!(cpu.outcome.termination, Termination::Signaled { signal: 24 }, "{cpu:?}");
    assert!(cpu.outcome.limits_hit.contains(&LimitHit::CpuTime));

    let forks = run(
        backend,
        &sh("for i in $(seq 40); do sleep 30 & done 2>/dev/null; echo spawned").limits(Limits {
            max_processes: 10,
            wall_clock: Duration::from_secs(60),
            ..Limits::default()
        }),
    )?;
    assert!(forks.outcome.limits_hit.contains(&LimitHit::Processes), "{forks:?}");
    Ok(())
}

#[test]
fn vm_stays_warm_for_two_commands_and_forgets_the_first() -> anyhow::Result<()> {
    let backend = vm_or_skip!();
    let fx = Fixture::new()?;
    let out = fx.dir("out")?;
    let policy = |script: &str| sh(script).grant(Mount::writable(&out, "/work/out"));
    // Boot the backend's VM directly, then run two commands on it.
    let plan = backend.plan(&policy(
        "cut -d' ' -f1 /proc/uptime; echo x > /tmp/left; sleep 600 & echo one",
    ))?;
    let mut vm = QemuVm::boot(&plan.program, &plan.args, Duration::from_secs(120))?;
    let script = plan.guest_script.as_deref().unwrap_or_default();
    let mut first = Vec::new();
    let one = vm.run(script, Duration::from_secs(60), 4096, &mut |c| first.extend(c.bytes))?;
    assert!(one.success(), "{one:?}");

    let plan = backend.plan(&policy(
        "cut -d' ' -f1 /proc/uptime; ls /tmp; grep -lx sleep /proc/[0-9]*/comm || echo no-sleep; echo two",
    ))?;
    let script = plan.guest_script.as_deref().unwrap_or_default();
    let mut second = Vec::new();
    let two = vm.run(script, Duration::from_secs(60), 4096, &mut |c| second.extend(c.bytes))?;
    assert!(two.success(), "{two:?}");
    let first = String::from_utf8_lossy(&first).into_owned();
    let second = String::from_utf8_lossy(&second).into_owned();
    let uptime = |s: &str| s.lines().next().and_then(|l| l.parse::<f64>().ok()).unwrap_or(-1.0);
    // The same VM (its uptime went on), but nothing of the first command is left: not its
    // /tmp file, not the process it left in the background.
    assert!(uptime(&second) > uptime(&first), "{first:?} then {second:?}");
    assert_eq!(
        second.lines().skip(1).collect::<Vec<_>>(),
        ["no-sleep", "two"],
        "{second:?}"
    );
    // A warm round trip is much quicker than the boot.
    assert!(two.elapsed < vm.boot_time(), "{two:?} vs boot {:?}", vm.boot_time());
    Ok(())
}
