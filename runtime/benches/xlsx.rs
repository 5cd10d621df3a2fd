//! Writing and reading back a 100,000-row by 10-column sheet (nine value
//! columns and a formula column) through the sandboxed `xlsx` tool, then
//! editing one cell of it in place (`xlsx edit`, staged as a proposed
//! overwrite), side by side with Python's openpyxl on the same data in the
//! same run (openpyxl's edit: load the workbook, set the cell, save).
//! Results go in BENCHMARKS.md; nothing here asserts.
//!
//! Run: `cargo bench -p deskhand-runtime --bench xlsx [-- ROWS]`
//! (openpyxl must be importable by `python3`; without it that half is skipped).
//!
//! To compare guest builds, `XLSX_BENCH_GUESTS=label=path.wasm,label=path.wasm`
//! loads each component file instead of the bundled tool and runs their
//! write+read calls in turn, round after round (`XLSX_BENCH_ROUNDS`, 5 by
//! default), so that the machine's load falls on each alike; it prints each
//! guest's best and median wall and CPU time and skips openpyxl and edit.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::process::Command;
use std::time::{Duration, Instant};

use deskhand_runtime::tools::{BundledTool, Toolbox};
use deskhand_runtime::wasm::{Limits, WasmHost};
use deskhand_runtime::workspace::Workspace;
use deskhand_types::Grant;
use serde_json::{Value, json};

const COLUMNS: usize = 10;

/// Row `i`: an id, a date, a name, a category, five amounts, and a formula
/// summing the amounts (the same values openpyxl writes).
fn row(i: usize) -> Vec<Value> {
    let r = i + 2;
    vec![
        json!(i as f64),
        json!({"date": format!("2026-{:02}-{:02}", i % 12 + 1, i % 28 + 1)}),
        json!(format!("item {i}")),
        json!(["food", "travel", "office", "other"][i % 4]),
        json!((i % 1000) as f64 * 1.25),
        json!((i % 97) as f64),
        json!((i % 13) as f64 * 0.5),
        json!(i as f64 / 7.0),
        json!((i % 5) as f64),
        json!({"formula": format!("SUM(E{r}:I{r})")}),
    ]
}

/// The 1-minute load average, for the record: the machine may be shared.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// CPU time this process has used (user + system), from /proc/self/stat
/// in clock ticks of 10 ms: on a machine other work shares, a fairer
/// measure than wall time, whose share of the cores varies from minute to
/// minute.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

const OPENPYXL: &str = r#"
import sys, time, datetime, openpyxl
rows, path = int(sys.argv[1]), sys.argv[2]
cats = ["food", "travel", "office", "other"]
t, c = time.perf_counter(), time.process_time()
wb = openpyxl.Workbook(write_only=True)
ws = wb.create_sheet("Data")
ws.append(["id", "date", "name", "category", "a", "b", "c", "d", "e", "total"])
for i in range(rows):
    r = i + 2
    ws.append([float(i), datetime.date(2026, i % 12 + 1, i % 28 + 1), f"item {i}", cats[i % 4],
               (i % 1000) * 1.25, float(i % 97), (i % 13) * 0.5, i / 7.0, float(i % 5), f"=SUM(E{r}:I{r})"])
wb.save(path)
write, write_cpu = time.perf_counter() - t, time.process_time() - c
t, c = time.perf_counter(), time.process_time()
wb = openpyxl.load_workbook(path, read_only=True)
n = sum(1 for _ in wb["Data"].iter_rows(values_only=True))
read, read_cpu = time.perf_counter() - t, time.process_time() - c
print(f"{write} {read} {n} {write_cpu} {read_cpu}")
"#;

/// openpyxl's way to change one cell of an existing workbook: load it
/// whole, set the cell, save it whole.
const OPENPYXL_EDIT: &str = r#"
import sys, time, openpyxl
path, out = sys.argv[1], sys.argv[2]
t = time.perf_counter()
wb = openpyxl.load_workbook(path)
wb["Data"]["E50001"] = 1234.5
wb.save(out)
print(time.perf_counter() - t)
"#;

/// `python3`, or the venv `scripts/setup` installs openpyxl into when it is there.
fn python() -> std::path::PathBuf {
    let venv =
        option_env!("HOME").map(|home| std::path::Path::new(home).join(".cache/deskhand/openpyxl-3.1.5/bin/python"));
    match venv {
        Some(p) if p.exists() => p,
        _ => "python3".into(),
    }
}

fn main() -> anyhow::Result<()> {
    let rows: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(100_000);
    println!("load average at the start: {}", load());
    let cells = (rows * COLUMNS) as f64;
    let tmp = tempfile::tempdir()?;
    let (ws, _) = Workspace::init(&tmp.path().join("ws"))?;
    let mut sandbox = ws.sandbox(&[] as &[Grant], Limits::default())?;
    // Runs give each call a copy of output/ (call.rs); this calls the tool
    // directly, so it writes output/ itself, as the tests' `output_writable` does.
    if let Some(output) = sandbox.mounts.first_mut() {
        output.access = deskhand_types::Access::ReadWrite;
    }
    let toolbox = Toolbox::new(WasmHost::new(Some(tmp.path().join("cache")))?);
    let xlsx = toolbox.get(BundledTool::Xlsx)?;

    let header: Vec<&str> = vec!["id", "date", "name", "category", "a", "b", "c", "d", "e", "total"];
    let t = Instant::now();
    let data: Vec<Vec<Value>> = (0..rows).map(row).collect();
    let args_for =
        |path: &str| json!({"path": path, "sheets": [{"name": "Data", "header": header, "rows": data}]}).to_string();
    let out_dir = ws.root().join("output");
    let out = |name: &str| out_dir.join(name).display().to_string();
    let args = args_for(&out("bench-probe.xlsx"));
    println!(
        "{rows} rows x {COLUMNS} columns: JSON arguments {:.1} MB, built in {:.3} s",
        args.len() as f64 / 1e6,
        seconds(t.elapsed())
    );

    if let Ok(list) = std::env::var("XLSX_BENCH_GUESTS") {
        return compare(&toolbox, &sandbox, &list, rows, &out, &args_for);
    }

    let mut best_write = Duration::MAX;
    let mut best_read = Duration::MAX;
    let (mut best_write_cpu, mut best_read_cpu) = (Duration::MAX, Duration::MAX);
    for run in 0..3 {
        let path = out(&format!("bench-{run}.xlsx"));
        let args = args_for(&path);
        let (t, c) = (Instant::now(), cpu());
        xlsx.call(&sandbox, "write", &args, None).result?;
        let (write, write_cpu) = (t.elapsed(), cpu() - c);
        best_write = best_write.min(write);
        best_write_cpu = best_write_cpu.min(write_cpu);

        let read_args = json!({"path": path, "max_rows": rows + 1}).to_string();
        let (t, c) = (Instant::now(), cpu());
        let out = xlsx.call(&sandbox, "read", &read_args, None).result?;
        let (read, read_cpu) = (t.elapsed(), cpu() - c);
        best_read = best_read.min(read);
        best_read_cpu = best_read_cpu.min(read_cpu);
        println!(
            "  run {run}: write {:.3} s (cpu {:.2} s), read {:.3} s (cpu {:.2} s), load average {}",
            seconds(write),
            seconds(write_cpu),
            seconds(read),
            seconds(read_cpu),
            load()
        );
        if run == 0 {
            let read_rows = out.json["sheets"][0]["rows"].as_array().map_or(0, Vec::len);
            println!("read back {read_rows} rows");
        }
    }
    let size = std::fs::metadata(ws.root().join("output/bench-0.xlsx"))?.len();
    println!(
        "deskhand xlsx (sandboxed)   write {:>7.3} s ({:>9.0} cells/s)   read {:>7.3} s ({:>9.0} cells/s)   file {:.1} MB",
        seconds(best_write),
        cells / seconds(best_write),
        seconds(best_read),
        cells / seconds(best_read),
        size as f64 / 1e6
    );

    let py_path = tmp.path().join("openpyxl.xlsx");
    // One cell of the 100,000 x 10 workbook written above, in place: only its
    // sheet part is rewritten, the rest copied raw; staged in the scratch folder.
    let bench_file = ws.root().join("output/bench-0.xlsx");
    let edit_args =
        json!({"path": bench_file, "edits": [{"op": "set", "sheet": "Data", "cell": "E50001", "value": 1234.5}]})
            .to_string();
    let mut best_edit = Duration::MAX;
    for run in 0..3 {
        let scratch = tmp.path().join(format!("scratch-{run}"));
        std::fs::create_dir(&scratch)?;
        let edit_sandbox = deskhand_runtime::wasm::Sandbox {
            scratch: Some(scratch),
            ..sandbox.clone()
        };
        let t = Instant::now();
        xlsx.call(&edit_sandbox, "edit", &edit_args, None).result?;
        best_edit = best_edit.min(t.elapsed());
    }
    println!(
        "deskhand xlsx edit (sandboxed, one cell of {rows} x {COLUMNS})   {:>7.3} s",
        seconds(best_edit)
    );

    println!("openpyxl starts (load average {})", load());
    let py = Command::new(python())
        .args(["-c", OPENPYXL, &rows.to_string()])
        .arg(&py_path)
        .output();
    match py {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let nums: Vec<f64> = text.split_whitespace().filter_map(|s| s.parse().ok()).collect();
            if let [write, read, _, write_cpu, read_cpu] = nums[..] {
                println!(
                    "openpyxl (native CPython)   write {write:>7.3} s ({:>9.0} cells/s)   read {read:>7.3} s ({:>9.0} cells/s)",
                    cells / write,
                    cells / read
                );
                println!(
                    "deskhand / openpyxl: write {:.1}x, read {:.1}x, write+read {:.1}x",
                    write / seconds(best_write),
                    read / seconds(best_read),
                    (write + read) / seconds(best_write + best_read)
                );
                println!(
                    "CPU time: deskhand write {:.2} s, read {:.2} s; openpyxl write {write_cpu:.2} s, read \
                     {read_cpu:.2} s; deskhand / openpyxl: write {:.1}x, read {:.1}x",
                    seconds(best_write_cpu),
                    seconds(best_read_cpu),
                    write_cpu / seconds(best_write_cpu),
                    read_cpu / seconds(best_read_cpu)
                );
            }
        }
        Ok(out) => println!("openpyxl skipped: {}", String::from_utf8_lossy(&out.stderr).trim()),
        Err(e) => println!("openpyxl skipped: python3 did not start: {e}"),
    }
    let py_edit = Command::new(python())
        .args(["-c", OPENPYXL_EDIT])
        .arg(&bench_file)
        .arg(tmp.path().join("openpyxl-edited.xlsx"))
        .output();
    match py_edit {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            if let Ok(edit) = text.trim().parse::<f64>() {
                println!(
                    "openpyxl load+set+save (native CPython)   {edit:>7.3} s   deskhand / openpyxl: edit {:.1}x",
                    edit / seconds(best_edit)
                );
            }
        }
        Ok(out) => println!("openpyxl edit skipped: {}", String::from_utf8_lossy(&out.stderr).trim()),
        Err(e) => println!("openpyxl edit skipped: python3 did not start: {e}"),
    }
    println!("done (load average {})", load());
    Ok(())
}

/// One write and one read call of `tool`: (write wall, write CPU, read wall, read CPU).
fn write_read(
    tool: &deskhand_runtime::wasm::LoadedTool,
    sandbox: &deskhand_runtime::wasm::Sandbox,
    args: &str,
    path: &str,
    rows: usize,
) -> anyhow::Result<[Duration; 4]> {
    let (t, c) = (Instant::now(), cpu());
    tool.call(sandbox, "write", args, None).result?;
    let (write, write_cpu) = (t.elapsed(), cpu() - c);
    let read_args = json!({"path": path, "max_rows": rows + 1}).to_string();
    let (t, c) = (Instant::now(), cpu());
    tool.call(sandbox, "read", &read_args, None).result?;
    Ok([write, write_cpu, t.elapsed(), cpu() - c])
}

/// Guest builds side by side (see the module comment): each round calls
/// every guest once, in turn, and each guest's calls are summed up at the end.
fn compare(
    toolbox: &Toolbox,
    sandbox: &deskhand_runtime::wasm::Sandbox,
    list: &str,
    rows: usize,
    out: &dyn Fn(&str) -> String,
    args_for: &dyn Fn(&str) -> String,
) -> anyhow::Result<()> {
    let rounds: usize = std::env::var("XLSX_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let mut guests = Vec::new();
    for item in list.split(',').filter(|s| !s.is_empty()) {
        let (label, path) = item
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("XLSX_BENCH_GUESTS takes label=path.wasm items, got {item:?}"))?;
        let tool = toolbox.host().load_file(std::path::Path::new(path))?;
        guests.push((label.to_owned(), tool, Vec::<[Duration; 4]>::new()));
    }
    let cells = (rows * COLUMNS) as f64;
    for round in 0..rounds {
        for (i, (label, tool, times)) in guests.iter_mut().enumerate() {
            let path = out(&format!("compare-{i}.xlsx"));
            let t = write_read(tool, sandbox, &args_for(&path), &path, rows)?;
            // The tool never overwrites a file: the next round writes it anew.
            std::fs::remove_file(&path)?;
            println!(
                "  round {round} {label:>12}: write {:.3} s (cpu {:.2}), read {:.3} s (cpu {:.2}), load average {}",
                seconds(t[0]),
                seconds(t[1]),
                seconds(t[2]),
                seconds(t[3]),
                load()
            );
            times.push(t);
        }
    }
    for (label, _, times) in &guests {
        let stat = |k: usize| {
            let mut v: Vec<f64> = times.iter().map(|t| seconds(t[k])).collect();
            v.sort_by(f64::total_cmp);
            (v[0], v[v.len() / 2])
        };
        let (w, wc, r, rc) = (stat(0), stat(1), stat(2), stat(3));
        println!(
            "{label:>12}: write best {:.3} s ({:.2} M cells/s) median {:.3} s, cpu best {:.2} median {:.2}; \
             read best {:.3} s ({:.2} M cells/s) median {:.3} s, cpu best {:.2} median {:.2}",
            w.0,
            cells / w.0 / 1e6,
            w.1,
            wc.0,
            wc.1,
            r.0,
            cells / r.0 / 1e6,
            r.1,
            rc.0,
            rc.1
        );
    }
    println!("done (load average {})", load());
    Ok(())
}
