//! The microVM backend under software emulation (TCG): cold boot (spawning QEMU until the
//! VM's init is ready, 9p shares mounted) and warm command round trips on a booted VM.
//! Results go in BENCHMARKS.md; nothing here asserts.
//!
//! Run: `cargo bench -p deskhand-host-vm --bench vm [-- RUNS]` after `scripts/setup-vm`.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use deskhand_host_vm::qemu::{AccelChoice, QemuBackend, QemuVm, VmConfig, default_assets_dir};
use deskhand_host_vm::{Mount, ShellBackend, ShellPolicy};

fn summarize(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
    println!(
        "{name:<46} n={:<4} median {:>8.1} ms   p90 {:>8.1} ms   min {:>8.1} ms   max {:>8.1} ms",
        samples.len(),
        at(0.5),
        at(0.9),
        at(0.0),
        at(1.0)
    );
}

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(10);
    // A benchmark is a small binary: it reads where the person's cache is, like deskhand does.
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into());
    let xdg = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from);
    let mut config = VmConfig::in_dir(default_assets_dir(&home, xdg.as_deref()));
    config.accel = AccelChoice::Tcg;
    let backend = QemuBackend::new(config);
    if let Err(problem) = backend.check() {
        println!("skipped: {problem}");
        return Ok(());
    }
    backend.shutdown();
    println!("accelerator: {:?}", backend.accel());

    let tmp = tempfile::tempdir()?;
    let root = tmp.path().canonicalize()?;
    std::fs::write(root.join("small.txt"), "hello\n")?;
    let timeout = Duration::from_secs(120);

    for grants in [0usize, 1] {
        let mut policy = ShellPolicy::new(["true"]);
        if grants == 1 {
            policy = policy.grant(Mount::read_only(&root, "/work/data"));
        }
        let plan = backend.plan(&policy)?;
        let script = plan.guest_script.clone().unwrap_or_default();
        let mut boots = Vec::with_capacity(runs);
        let mut first = Vec::with_capacity(runs);
        for _ in 0..runs {
            let start = Instant::now();
            let mut vm = QemuVm::boot(&plan.program, &plan.args, timeout)?;
            boots.push(vm.boot_time());
            let outcome = vm.run(&script, timeout, 1 << 20, &mut |_| {})?;
            anyhow::ensure!(outcome.success(), "true failed: {outcome:?}");
            first.push(start.elapsed());
        }
        summarize(&format!("cold boot to ready, {grants} grants"), boots);
        summarize(&format!("cold boot + first `true`, {grants} grants"), first);
    }

    let data = Mount::read_only(&root, "/work/data");
    let commands: [(&str, ShellPolicy); 3] = [
        (
            "warm round trip: `true`",
            ShellPolicy::new(["true"]).grant(data.clone()),
        ),
        (
            "warm round trip: `cat` a file in the grant",
            ShellPolicy::new(["cat", "/work/data/small.txt"]).grant(data.clone()),
        ),
        (
            "warm round trip: 64 KiB of output",
            ShellPolicy::new(["head", "-c", "65536", "/dev/zero"]).grant(data.clone()),
        ),
    ];
    let boot_plan = backend.plan(&commands[0].1)?;
    let mut vm = QemuVm::boot(&boot_plan.program, &boot_plan.args, timeout)?;
    for (name, policy) in &commands {
        let plan = backend.plan(policy)?;
        anyhow::ensure!(vm.booted_with(&plan.program, &plan.args), "same grants, same VM");
        let script = plan.guest_script.clone().unwrap_or_default();
        let mut samples = Vec::with_capacity(runs * 2);
        for _ in 0..runs * 2 {
            let t = Instant::now();
            let outcome = vm.run(&script, timeout, 1 << 20, &mut |_| {})?;
            samples.push(t.elapsed());
            anyhow::ensure!(outcome.success(), "{name} failed: {outcome:?}");
        }
        summarize(name, samples);
    }
    Ok(())
}
