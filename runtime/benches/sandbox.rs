//! The cost of one sandboxed `fs stat`, against spawning a native process
//! that does the same stat. Results go in BENCHMARKS.md; nothing here asserts.
//!
//! Run: `cargo bench -p deskhand-runtime --bench sandbox [-- CALLS]`

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::process::Command;
use std::time::{Duration, Instant};

use deskhand_runtime::tools::{BundledTool, CallRequest, Toolbox, run_call};
use deskhand_runtime::wasm::{Limits, WasmHost};
use deskhand_runtime::workspace::Workspace;
use deskhand_types::Grant;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn summarize(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let median = percentile(&samples, 0.5);
    println!(
        "{name:<44} n={:<6} median {:>9.3} ms   p99 {:>9.3} ms   min {:>9.3} ms",
        samples.len(),
        median.as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples[0].as_secs_f64() * 1e3,
    );
    median
}

fn main() -> anyhow::Result<()> {
    let calls: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(2000);
    let tmp = tempfile::tempdir()?;
    let (ws, _) = Workspace::init(&tmp.path().join("ws"))?;
    let file = ws.root().join("projects/sample.txt");
    std::fs::write(&file, "a sample file for stat\n")?;
    let grants = [Grant::read_only("projects")];
    let sandbox = ws.sandbox(&grants, Limits::default())?;
    let args = serde_json::json!({"path": file.display().to_string()}).to_string();
    let cache = tmp.path().join("cache");

    // First call in a new process with an empty cache: compile, then call.
    let t = Instant::now();
    let cold = Toolbox::new(WasmHost::new(Some(cache.clone()))?);
    let fs = cold.get(BundledTool::Fs)?;
    fs.call(&sandbox, "stat", &args, None).result?;
    let empty_cache = t.elapsed();
    drop(cold);

    // First call in a new process with the cache warm: load compiled code, then call.
    let t = Instant::now();
    let toolbox = Toolbox::new(WasmHost::new(Some(cache))?);
    let fs = toolbox.get(BundledTool::Fs)?;
    fs.call(&sandbox, "stat", &args, None).result?;
    let warm_cache = t.elapsed();

    println!(
        "first call, empty cache (engine + compile + call): {:>9.3} ms",
        empty_cache.as_secs_f64() * 1e3
    );
    println!(
        "first call, warm cache (engine + load + call):     {:>9.3} ms",
        warm_cache.as_secs_f64() * 1e3
    );

    for _ in 0..100 {
        fs.call(&sandbox, "stat", &args, None).result?;
    }
    let mut sandboxed = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let report = fs.call(&sandbox, "stat", &args, None);
        sandboxed.push(t.elapsed());
        report.result?;
    }
    let sandboxed_median = summarize("sandboxed fs stat (fresh store per call)", sandboxed);

    let mut journaled = Vec::with_capacity(calls / 4);
    for _ in 0..calls / 4 {
        let req = CallRequest {
            tool: "fs",
            operation: "stat",
            args: serde_json::json!({"path": "projects/sample.txt"}),
            grants: &grants,
            limits: Limits::default(),
        };
        let t = Instant::now();
        run_call(&ws, &toolbox, &req, None)?;
        journaled.push(t.elapsed());
    }
    let journaled_median = summarize("  + grants, path checks, SQLite journal", journaled);

    // The same with an output/ of earlier runs' files: each call's copy of
    // output/ holds their names as empty stand-ins.
    for i in 0..1000 {
        std::fs::write(ws.output_dir().join(format!("earlier-{i:04}.csv")), "a,b\n1,2\n")?;
    }
    let mut crowded = Vec::with_capacity(calls / 4);
    for _ in 0..calls / 4 {
        let req = CallRequest {
            tool: "fs",
            operation: "stat",
            args: serde_json::json!({"path": "projects/sample.txt"}),
            grants: &grants,
            limits: Limits::default(),
        };
        let t = Instant::now();
        run_call(&ws, &toolbox, &req, None)?;
        crowded.push(t.elapsed());
    }
    summarize("  ... with 1,000 earlier files in output/", crowded);

    let mut native = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let out = Command::new("stat").arg("-c").arg("%F %s %Y").arg(&file).output()?;
        native.push(t.elapsed());
        assert!(out.status.success());
    }
    let native_median = summarize("native process spawn (stat -c)", native);
    println!(
        "sandboxed call is {:.1}x faster than spawning a native process",
        native_median.as_secs_f64() / sandboxed_median.as_secs_f64()
    );
    println!(
        "journaled call (a one-step run) is {:.1}x faster than spawning a native process",
        native_median.as_secs_f64() / journaled_median.as_secs_f64()
    );
    Ok(())
}
