//! Python in the sandbox: cold start (a new engine, with an empty and with a
//! filled compiled-code cache) and warm start (repeated calls) of a trivial
//! script and of a csv/json script. Results go in BENCHMARKS.md; nothing here
//! asserts.
//!
//! Run: `cargo bench -p deskhand-runtime --bench python [-- CALLS]`

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use deskhand_runtime::tools::{BundledTool, CallRequest, Toolbox, run_call};
use deskhand_runtime::wasm::{Limits, LoadedTool, Sandbox, WasmHost};
use deskhand_runtime::workspace::Workspace;
use deskhand_types::Grant;

const TRIVIAL: &str = "1 + 1";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn summarize(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<58} n={:<5} median {:>8.2} ms   p99 {:>8.2} ms   min {:>8.2} ms",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        ms(samples[0]),
    );
}

fn call(tool: &LoadedTool, sandbox: &Sandbox, script: &str) -> anyhow::Result<serde_json::Value> {
    let args = serde_json::json!({ "script": script }).to_string();
    let out = tool.call(sandbox, "run", &args, None).result?;
    Ok(out.json)
}

/// A new engine and toolbox, the python tool loaded (compiled or from the
/// cache) and one call: what the first call of a fresh process costs.
fn first_call(cache: &std::path::Path, sandbox: &Sandbox, script: &str) -> anyhow::Result<(Duration, Duration)> {
    let t = Instant::now();
    let toolbox = Toolbox::new(WasmHost::new(Some(cache.to_path_buf()))?);
    let tool = toolbox.get(BundledTool::Python)?;
    let loaded = t.elapsed();
    call(tool, sandbox, script)?;
    Ok((loaded, t.elapsed()))
}

fn main() -> anyhow::Result<()> {
    let calls: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(200);
    let tmp = tempfile::tempdir()?;
    let (ws, _) = Workspace::init(&tmp.path().join("ws"))?;
    let data = ws.root().join("projects");
    let mut csv = String::from("date,category,amount\n");
    for i in 0..1000 {
        let _ = writeln!(
            csv,
            "2024-{:02}-{:02},{},{}.{:02}",
            i % 12 + 1,
            i % 28 + 1,
            ["food", "travel", "office", "software"][i % 4],
            i % 300,
            i % 100
        );
    }
    std::fs::write(data.join("spend.csv"), &csv)?;
    let grants = [Grant::read_only("projects")];
    let sandbox = ws.sandbox(&grants, Limits::default())?;
    let out_json = ws.output_dir().join("totals.json");
    let csv_script = format!(
        r#"
import csv, json, os
from decimal import Decimal
totals = {{}}
with open({src}, newline="") as f:
    for row in csv.DictReader(f):
        totals[row["category"]] = totals.get(row["category"], Decimal(0)) + Decimal(row["amount"])
out = {dst}
if os.path.exists(out):
    os.remove(out)
with open(out, "w") as f:
    json.dump({{k: str(v) for k, v in sorted(totals.items())}}, f)
len(totals)
"#,
        src = serde_json::to_string(&data.join("spend.csv").display().to_string())?,
        dst = serde_json::to_string(&out_json.display().to_string())?,
    );

    let component = std::fs::metadata(env!("DESKHAND_GUEST_PYTHON"))?.len();
    println!("python component: {:.1} MB", component as f64 / 1e6);

    let cache = tmp.path().join("cache");
    let (load, total) = first_call(&cache, &sandbox, TRIVIAL)?;
    println!(
        "first call, new engine, empty cache: load (compile) {:.0} ms, load + trivial call {:.0} ms",
        ms(load),
        ms(total)
    );
    let compiled: u64 = std::fs::read_dir(&cache)?
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!("compiled code in the cache: {:.1} MB", compiled as f64 / 1e6);
    for (name, script) in [("trivial", TRIVIAL), ("csv/json", csv_script.as_str())] {
        let mut loads = Vec::new();
        let mut totals = Vec::new();
        for _ in 0..5 {
            let (load, total) = first_call(&cache, &sandbox, script)?;
            loads.push(load);
            totals.push(total);
        }
        summarize(&format!("first call, new engine, cache filled: load ({name})"), loads);
        summarize(
            &format!("first call, new engine, cache filled: load + call ({name})"),
            totals,
        );
    }

    let toolbox = Toolbox::new(WasmHost::new(Some(cache))?);
    let tool = toolbox.get(BundledTool::Python)?;
    println!(
        "csv/json script returns {}",
        call(tool, &sandbox, &csv_script)?["result"]
    );
    for (name, script) in [("trivial", TRIVIAL), ("csv/json (1,000 rows)", csv_script.as_str())] {
        let samples = (0..calls)
            .map(|_| {
                let t = Instant::now();
                call(tool, &sandbox, script).map(|_| t.elapsed())
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        summarize(&format!("warm call, fresh instance each ({name})"), samples);
    }

    // The whole path a `deskhand tool run python run` takes after start-up:
    // grants, scratch folder, journal, worker thread.
    let samples = (0..calls.min(100))
        .map(|_| {
            let t = Instant::now();
            run_call(
                &ws,
                &toolbox,
                &CallRequest {
                    tool: "python",
                    operation: "run",
                    args: serde_json::json!({ "script": TRIVIAL }),
                    grants: &grants,
                    limits: Limits::default(),
                },
                None,
            )
            .map(|_| t.elapsed())
        })
        .collect::<Result<Vec<_>, _>>()?;
    summarize("warm run_call (journaled), trivial", samples);
    Ok(())
}
