//! What the sandbox forbids: network, paths outside the grants, writes to read-only grants,
//! kernel interfaces, the terminal, capabilities, and symlinks that point out.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::time::Duration;

use deskhand_host_vm::Mount;

use crate::common::{Fixture, backend_or_skip, listing, run, sh};

#[test]
fn tcp_connect_to_a_host_listener_fails() -> anyhow::Result<()> {
    let backend = backend_or_skip!();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let script = format!(
        "bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' && echo CONNECTED-LOOPBACK; \
         bash -c 'exec 3<>/dev/tcp/1.1.1.1/53' && echo CONNECTED-OUTSIDE; \
         cat /proc/net/dev"
    );
    let run = run(backend, &sh(&script))?;
    assert!(!run.stdout.contains("CONNECTED"), "{run:?}");
    assert!(
        run.stderr.contains("Connection refused"),
        "only the sandbox's own loopback: {run:?}"
    );
    assert!(run.stderr.contains("Network is unreachable"), "{run:?}");
    let interfaces: Vec<&str> = run
        .stdout
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(interfaces, ["lo"], "{run:?}");
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(()),
        other => panic!("the host listener saw a connection: {other:?}"),
    }
}

#[test]
fn canary_next_to_a_grant_is_invisible() -> anyhow::Result<()> {
    let backend = backend_or_skip!();
    let fx = Fixture::new()?;
    let granted = fx.dir("granted")?;
    fx.file("granted/visible.txt", "visible")?;
    let canary = fx.file("canary.txt", "canary-secret")?;
    let script = format!(
        "ls -a / /work /work/granted; \
         cat {canary} && echo READ-BY-HOST-PATH; \
         cat /work/granted/../canary.txt && echo READ-BY-DOTDOT; \
         find / -path /proc -prune -o -name 'canary*' -print",
        canary = canary.display()
    );
    let run = run(backend, &sh(&script).grant(Mount::read_only(&granted, "/work/granted")))?;
    assert!(
        run.stdout.contains("visible.txt"),
        "the grant itself is visible: {run:?}"
    );
    assert!(!run.stdout.contains("canary"), "{run:?}");
    assert!(!run.stdout.contains("READ-BY"), "{run:?}");
    Ok(())
}

#[test]
fn read_only_grant_cannot_be_written_truncated_or_renamed_over() -> anyhow::Result<()> {
    let backend = backend_or_skip!();
    let fx = Fixture::new()?;
    let ro = fx.dir("ro")?;
    fx.file("ro/file.txt", "original")?;
    fx.file("ro/other.txt", "other")?;
    let attempts = [
        "echo changed > /work/ro/file.txt",
        "echo more >> /work/ro/file.txt",
        "truncate -s 0 /work/ro/file.txt",
        "echo changed > /tmp/new && mv -f /tmp/new /work/ro/file.txt",
        "mv -f /work/ro/other.txt /work/ro/file.txt",
        "rm -f /work/ro/file.txt",
        "touch /work/ro/new.txt",
        "mkdir /work/ro/dir",
        "ln -s /tmp /work/ro/link",
        "chmod 777 /work/ro/file.txt",
        "touch -d 2000-01-01 /work/ro/file.txt",
        "mount -o remount,rw /work/ro",
        "umount /work/ro",
    ];
    let script: String = attempts
        .iter()
        .enumerate()
        .map(|(i, a)| format!("( {a} ) && echo DID-{i}; "))
        .collect();
    let run = run(backend, &sh(&script).grant(Mount::read_only(&ro, "/work/ro")))?;
    assert!(!run.stdout.contains("DID"), "{run:?}");
    assert_eq!(std::fs::read_to_string(ro.join("file.txt"))?, "original");
    assert_eq!(listing(&ro)?, ["file.txt", "other.txt"]);
    Ok(())
}

#[test]
fn writable_grant_is_writable_and_only_there() -> anyhow::Result<()> {
    let backend = backend_or_skip!();
    let fx = Fixture::new()?;
    let rw = fx.dir("rw")?;
    let ro = fx.dir("ro")?;
    let policy = sh("echo written > /work/rw/out.txt && (echo x > /work/ro/out.txt || echo REFUSED)")
        .grant(Mount::writable(&rw, "/work/rw"))
        .grant(Mount::read_only(&ro, "/work/ro"));
    let run = run(backend, &policy)?;
    assert!(run.outcome.success(), "{run:?}");
    assert_eq!(run.stdout.trim(), "REFUSED");
    assert_eq!(std::fs::read_to_string(rw.join("out.txt"))?, "written\n");
    assert!(listing(&ro)?.is_empty());
    Ok(())
}

/// Regression: bwrap 0.8 leaves /proc/sys writable, and uid 0 may write sysctls without any
/// capability; as root the sandbox could set kernel.core_pattern (writing back the value it
/// read is the harmless probe here).
#[test]
fn proc_and_device_tricks_fail() -> anyhow::Result<()> {
    let backend = backend_or_skip!();
    let fx = Fixture::new()?;
    let canary = fx.file("canary.txt", "canary-secret")?;
    let script = format!(
        "ls /proc/1/root/ > /tmp/a; ls / > /tmp/b; cmp -s /tmp/a /tmp/b && echo PROC1-IS-SANDBOX-ROOT; \
         cat /proc/1/root{canary} && echo LEAK-PROC1; \
         set -- /proc/[0-9]*; echo PIDS=$#; \
         ls /dev; \
         test -e /dev/sda && echo HAS-SDA; \
         mknod /tmp/sda b 8 0 && echo MKNOD-BLOCK; \
         mknod /tmp/mem c 1 1 && echo MKNOD-MEM; \
         cat /proc/sys/kernel/core_pattern > /tmp/cp && cat /tmp/cp > /proc/sys/kernel/core_pattern && echo WROTE-CORE-PATTERN; \
         echo 1 > /proc/sys/vm/drop_caches && echo WROTE-PROC-SYS; \
         echo 1000 > /proc/self/oom_score_adj && echo WROTE-PROC-SELF; \
         ls /sys && echo HAS-SYS; \
         echo add > /sys/kernel/uevent_helper && echo WROTE-SYS; \
         mkdir /tmp/s && mount -t sysfs sysfs /tmp/s && echo MOUNTED-SYSFS; \
         mkdir /tmp/p && mount -t proc proc /tmp/p && echo MOUNTED-PROC; \
         nsenter -t 1 -m true && echo NSENTER",
        canary = canary.display()
    );
    let run = run(backend, &sh(&script))?;
    assert!(run.stdout.contains("PROC1-IS-SANDBOX-ROOT"), "{run:?}");
    for leak in [
        "LEAK", "HAS-SDA", "MKNOD", "WROTE", "HAS-SYS", "MOUNTED", "NSENTER", "sda", "nvme", "vda", "kmsg", "mem\n",
    ] {
        assert!(!run.stdout.contains(leak), "{leak}: {run:?}");
    }
    let pids: usize = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("PIDS="))
        .unwrap_or("")
        .parse()?;
    assert!(pids <= 4, "only the sandbox's own processes are visible: {run:?}");
    Ok(())
}

#[test]
fn sandboxed_command_has_a_new_session_without_a_terminal() -> anyhow::Result<()> {
    // With a new session and no controlling terminal, TIOCSTI has no terminal to push
    // keystrokes into.
    let backend = backend_or_skip!();
    let script = "cut -d' ' -f6,7 /proc/self/stat; : < /dev/tty && echo HAS-TTY";
    let run = run(backend, &sh(script))?;
    let fields: Vec<&str> = run.stdout.lines().next().unwrap_or("").split(' ').collect();
    // Session 1: the sandbox's init called setsid(); tty_nr 0: no controlling terminal.
    assert_eq!(fields, ["1", "0"], "{run:?}");
    assert!(!run.stdout.contains("HAS-TTY"), "{run:?}");
    assert!(run.stderr.contains("No such device or address"), "{run:?}");
    Ok(())
}

#[test]
fn capabilities_are_dropped() -> anyhow::Result<()> {
    let backend = backend_or_skip!();
    let run = run(
        backend,
        &sh("grep '^Cap' /proc/self/status; unshare -U true && echo NEW-USERNS"),
    )?;
    let caps: Vec<(&str, &str)> = run.stdout.lines().filter_map(|l| l.split_once(":\t")).collect();
    assert_eq!(caps.len(), 5, "{run:?}");
    for (name, value) in caps {
        assert_eq!(value, "0000000000000000", "{name}: {run:?}");
    }
    assert!(
        !run.stdout.contains("NEW-USERNS"),
        "nested user namespaces are disabled: {run:?}"
    );
    Ok(())
}

#[test]
fn environment_is_only_what_the_policy_sets() -> anyhow::Result<()> {
    let backend = backend_or_skip!();
    let mut policy = deskhand_host_vm::ShellPolicy::new(["env"]);
    policy.env.push(("GREETING".into(), "hello".into()));
    let run = run(backend, &policy)?;
    let mut lines: Vec<&str> = run.stdout.lines().collect();
    lines.sort();
    // PWD is the one variable bwrap itself sets (to the working directory).
    assert_eq!(
        lines,
        [
            "GREETING=hello",
            "HOME=/tmp",
            "PATH=/usr/local/bin:/usr/bin:/bin",
            "PWD=/tmp"
        ],
        "{run:?}"
    );
    Ok(())
}

#[test]
fn symlink_made_inside_a_grant_leads_to_the_sandbox_root_not_the_host() -> anyhow::Result<()> {
    let backend = backend_or_skip!();
    let fx = Fixture::new()?;
    let rw = fx.dir("rw")?;
    let ro = fx.dir("ro")?;
    let canary = fx.file("canary.txt", "canary-secret")?;
    // Planted on the host before the step: links pointing out of the grant.
    std::os::unix::fs::symlink(&canary, ro.join("escape"))?;
    std::os::unix::fs::symlink("/", ro.join("up"))?;
    let script = format!(
        "ln -s / /work/rw/link; \
         ls / > /tmp/root; ls /work/rw/link/ > /tmp/link; cmp -s /tmp/root /tmp/link && echo SAME-ROOT; \
         cat /work/rw/link{canary}; \
         ln -sfn /tmp /work/rw/link2; rm /work/rw/link2; ln -s / /work/rw/link2; cat /work/rw/link2{canary}; \
         cat /work/ro/escape; cat /work/ro/up{canary}; ls /work/ro/up/ > /tmp/up; cmp -s /tmp/root /tmp/up && echo UP-SAME",
        canary = canary.display()
    );
    let policy = sh(&script)
        .grant(Mount::writable(&rw, "/work/rw"))
        .grant(Mount::read_only(&ro, "/work/ro"));
    let run = run(backend, &policy)?;
    assert!(
        run.stdout.contains("SAME-ROOT") && run.stdout.contains("UP-SAME"),
        "{run:?}"
    );
    assert!(!run.stdout.contains("canary-secret"), "{run:?}");
    // The link is there on the host too: host code must not follow it (it reads through
    // cap-std elsewhere); the sandbox only ever resolved it against its own root.
    assert_eq!(std::fs::read_link(rw.join("link"))?, std::path::Path::new("/"));
    Ok(())
}

#[test]
fn symlink_swapped_on_the_host_during_the_step_does_not_lead_outside() -> anyhow::Result<()> {
    let backend = backend_or_skip!();
    let fx = Fixture::new()?;
    let rw = fx.dir("rw")?;
    std::fs::create_dir(rw.join("dir"))?;
    std::fs::write(rw.join("dir/file"), "inside\n")?;
    let secret_dir = fx.dir("secret")?;
    std::fs::write(secret_dir.join("file"), "canary-secret\n")?;
    let script = "i=0; while [ $i -lt 40 ]; do cat /work/rw/dir/file 2>&1; sleep 0.05; i=$((i+1)); done";
    let policy = sh(script).grant(Mount::writable(&rw, "/work/rw"));
    let swap_dir = rw.join("dir");
    let swapper = std::thread::spawn(move || -> std::io::Result<()> {
        std::thread::sleep(Duration::from_millis(500));
        std::fs::remove_dir_all(&swap_dir)?;
        std::os::unix::fs::symlink(&secret_dir, &swap_dir)
    });
    let run = run(backend, &policy)?;
    match swapper.join() {
        Ok(result) => result?,
        Err(_) => panic!("the swapping thread panicked"),
    }
    assert!(run.stdout.contains("inside"), "{run:?}");
    assert!(
        run.stdout.contains("No such file or directory"),
        "the swap happened during the step: {run:?}"
    );
    assert!(!run.stdout.contains("canary-secret"), "{run:?}");
    Ok(())
}
