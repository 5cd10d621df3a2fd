//! Sandbox start time: a bubblewrap sandbox that runs `true`, with 1, 5, 10 and 20 read-only
//! grants, median over 50 runs each (and a plain spawn of `true` for comparison). Results go
//! in BENCHMARKS.md; nothing here asserts.
//!
//! Run: `cargo bench -p deskhand-host-vm --bench start [-- RUNS]`

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::process::Command;
use std::time::{Duration, Instant};

use deskhand_host_vm::bwrap::BwrapBackend;
use deskhand_host_vm::{Mount, ShellBackend, ShellPolicy};

fn summarize(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
    println!(
        "{name:<34} n={:<4} median {:>7.2} ms   p90 {:>7.2} ms   min {:>7.2} ms",
        samples.len(),
        at(0.5),
        at(0.9),
        at(0.0)
    );
}

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(50);
    let backend = BwrapBackend::new();
    if let Err(problem) = backend.check() {
        println!("skipped: {problem}");
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().canonicalize()?;

    let mut plain = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        Command::new("/usr/bin/true").status()?;
        plain.push(t.elapsed());
    }
    summarize("plain spawn of true (no sandbox)", plain);

    for grants in [1usize, 5, 10, 20] {
        let mut policy = ShellPolicy::new(["true"]);
        for i in 0..grants {
            let dir = root.join(format!("grant-{i}"));
            std::fs::create_dir_all(&dir)?;
            policy = policy.grant(Mount::read_only(&dir, format!("/work/grant-{i}")));
        }
        let plan = backend.plan(&policy)?;
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            let outcome = backend.run(&plan, &mut |_| {})?;
            samples.push(t.elapsed());
            anyhow::ensure!(outcome.success(), "sandboxed true failed: {outcome:?}");
        }
        summarize(&format!("bwrap true, {grants} grants"), samples);
    }
    Ok(())
}
