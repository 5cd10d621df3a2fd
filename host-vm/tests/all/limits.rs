//! Limits: processes, memory, CPU, file size, /tmp size, wall clock (whole tree), output.

use std::time::Duration;

use deskhand_host_vm::{LimitHit, Limits, Mount, Stream, Termination};

use crate::common::{Fixture, backend_or_skip, processes_with, run, sh};

fn limits() -> Limits {
    Limits {
        wall_clock: Duration::from_secs(20),
        ..Limits::default()
    }
}

#[test]
fn fork_bomb_is_contained() -> anyhow::Result<()> {
    let backend = backend_or_skip!();
    let max_processes = 24;
    // The bomb runs in the background while the shell counts the sandbox's processes with
    // builtins only (a glob and `$#`), which need no fork.
    let script = "f() { f | f & }; f & \
                  max=0; i=0; while [ $i -lt 3000 ]; do set -- /proc/[0-9]*; [ $# -gt $max ] && max=$#; i=$((i+1)); done; \
                  echo max=$max; : forkbomb-token-7731";
    let policy = sh(script).limits(Limits {
        max_processes,
        wall_clock: Duration::from_secs(10),
        output_bytes: 64 << 10,
        ..limits()
    });
    let run = run(backend, &policy)?;
    let max: u64 = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("max="))
        .unwrap_or("")
        .parse()?;
    // Reading /proc is not atomic: while the bomb's processes die and are replaced, one
    // glob can list pids that never lived at the same time (CI saw 39 with a cap of 24).
    // Uncapped it is thousands, so a small multiple of the cap still proves containment.
    assert!(
        max <= max_processes * 3,
        "{max} processes; limits hit {:?}; stdout {:?}",
        run.outcome.limits_hit,
        run.stdout
    );
    // The bomb ran into the cap: how many processes it reached before that depends on the
    // machine (CI saw 8, this machine 24), so the proof is the refused forks, not a count.
    assert!(
        run.outcome.limits_hit.contains(&LimitHit::Processes) || run.stderr.contains("fork"),
        "the bomb never hit the cap ({max} processes); limits hit {:?}",
        run.outcome.limits_hit
    );
    assert!(
        processes_with("forkbomb-token-7731").is_empty(),
        "{:?}",
        processes_with("forkbomb-token-7731")
    );
    Ok(())
}

#[test]
fn memory_bomb_is_contained() -> anyhow::Result<()> {
    let backend = backend_or_skip!();
    let script = "x=$(head -c 600000000 /dev/zero | tr '\\0' a); echo SURVIVED ${#x}";
    let policy = sh(script).limits(Limits {
        memory_bytes: 256 << 20,
        ..limits()
    });
    let run = run(backend, &policy)?;
    // The shell's allocation fails; dash then dies of SIGSEGV, bash reports it. Either way
    // the command ends without the 600 MB it asked for.
    assert!(!run.stdout.contains("SURVIVED"), "{run:?}");
    assert!(!run.outcome.success(), "{run:?}");
    Ok(())
}

/// Whether this process runs as root (read from /proc, not the environment).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next().map(|uid| uid == "0"))
        .unwrap_or(false)
}

#[test]
fn processes_together_cannot_pass_the_memory_limit() -> anyhow::Result<()> {
    // Each process stays under the per-process limit; four together would hold 1.2 GB
    // against 512 MiB. Regression: the limit was per process, so all four held theirs.
    let backend = backend_or_skip!();
    if !running_as_root() {
        eprintln!("skipped: the whole-sandbox memory cgroup is made only when running as root");
        return Ok(());
    }
    let hold =
        "/usr/bin/python3 -c 'import time; x = b\"a\" * (300 << 20); print(\"held\", flush=True); time.sleep(3)'";
    let script = format!("for i in 1 2 3 4; do {hold} & done; wait");
    let policy = sh(&script).limits(Limits {
        memory_bytes: 512 << 20,
        ..limits()
    });
    let run = run(backend, &policy)?;
    let held = run.stdout.matches("held").count();
    assert!(held < 4, "all four held 300 MB in a 512 MiB sandbox: {run:?}");
    assert!(run.outcome.limits_hit.contains(&LimitHit::Memory), "{run:?}");
    Ok(())
}

#[test]
fn cpu_time_limit_stops_a_busy_loop() -> anyhow::Result<()> {
    let backend = backend_or_skip!();
    let run = run(
        backend,
        &sh("while :; do :; done").limits(Limits {
            cpu_seconds: 1,
            ..limits()
        }),
    )?;
    assert_eq!(run.outcome.termination, Termination::Signaled { signal: 24 }, "{run:?}");
    assert_eq!(run.outcome.limits_hit, [LimitHit::CpuTime]);
    Ok(())
}

#[test]
fn file_size_limit_stops_a_large_write() -> anyhow::Result<()> {
    let backend = backend_or_skip!();
    let fx = Fixture::new()?;
    let rw = fx.dir("rw")?;
    let policy = sh("exec head -c 1000000 /dev/zero > /work/rw/big")
        .grant(Mount::writable(&rw, "/work/rw"))
        .limits(Limits {
            max_file_bytes: 64 << 10,
            ..limits()
        });
    let run = run(backend, &policy)?;
    assert_eq!(run.outcome.termination, Termination::Signaled { signal: 25 }, "{run:?}");
    assert_eq!(run.outcome.limits_hit, [LimitHit::FileSize]);
    assert_eq!(std::fs::metadata(rw.join("big"))?.len(), 64 << 10);
    Ok(())
}

#[test]
fn private_tmp_is_capped() -> anyhow::Result<()> {
    let backend = backend_or_skip!();
    let script = "head -c 3000000 /dev/zero > /tmp/fill || echo FULL";
    let run = run(
        backend,
        &sh(script).limits(Limits {
            tmp_bytes: 1 << 20,
            ..limits()
        }),
    )?;
    assert!(run.stdout.contains("FULL"), "{run:?}");
    assert!(run.stderr.contains("No space left on device"), "{run:?}");
    Ok(())
}

#[test]
fn timeout_kills_the_whole_tree() -> anyhow::Result<()> {
    let backend = backend_or_skip!();
    let fx = Fixture::new()?;
    let rw = fx.dir("rw")?;
    // A background child, a detached grandchild in its own session, then a long sleep.
    let script = "(sleep 1; echo survived > /work/rw/child) & \
                  setsid sh -c 'sleep 1.5; echo survived > /work/rw/detached; : timeout-token-5521' & \
                  sleep 31.5521";
    let wall_clock = Duration::from_millis(500);
    let policy = sh(script)
        .grant(Mount::writable(&rw, "/work/rw"))
        .limits(Limits { wall_clock, ..limits() });
    let run = run(backend, &policy)?;
    assert_eq!(
        run.outcome.termination,
        Termination::TimedOut { after: wall_clock },
        "{run:?}"
    );
    assert_eq!(run.outcome.limits_hit, [LimitHit::WallClock]);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        !rw.join("child").exists() && !rw.join("detached").exists(),
        "a process outlived the timeout"
    );
    let survivors = [processes_with("5521"), processes_with("timeout-token")].concat();
    assert!(survivors.is_empty(), "{survivors:?}");
    Ok(())
}

#[test]
fn output_beyond_the_cap_is_dropped_and_counted() -> anyhow::Result<()> {
    let backend = backend_or_skip!();
    let script = "head -c 100000 /dev/zero; head -c 5000 /dev/zero >&2; echo done >&2";
    let run = run(
        backend,
        &sh(script).limits(Limits {
            output_bytes: 1000,
            ..limits()
        }),
    )?;
    assert!(
        run.outcome.success(),
        "draining keeps the command from blocking: {run:?}"
    );
    let out = run.outcome.output;
    assert_eq!(out.stdout_bytes + out.stderr_bytes, 1000);
    assert_eq!(out.dropped_bytes, 105_005 - 1000);
    assert_eq!(run.chunks.iter().map(|(_, b)| b.len()).sum::<usize>(), 1000);
    assert!(run.chunks.iter().any(|(s, _)| *s == Stream::Stdout));
    assert_eq!(run.outcome.limits_hit, [LimitHit::Output]);
    Ok(())
}
