//! Applying a 10,000-file rename changeset with its journal, and undoing it,
//! with the durability of real use: intents committed with
//! `synchronous=FULL` before any file moves, every rename atomic
//! (`RENAME_NOREPLACE`), the folder fsynced, the status flushed. The check
//! (guard rails and hashing every file) is timed separately.
//! Results go in BENCHMARKS.md; nothing here asserts.
//!
//! Run: `cargo bench -p deskhand-runtime --bench changes`

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::time::Instant;

use deskhand_runtime::changeset::{self, ApplyOptions};
use deskhand_runtime::workspace::Workspace;
use deskhand_types::ProposedChange;

const FILES: usize = 10_000;
const ROUNDS: usize = 5;

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (ws, _) = Workspace::init(&tmp.path().join("ws")).expect("workspace");
    let root = ws.root().join("projects/scans");
    std::fs::create_dir_all(&root).expect("folder");
    for i in 0..FILES {
        std::fs::write(
            root.join(format!("scan {i:05}.pdf")),
            format!("%PDF-1.4 scan number {i}\n").repeat(8),
        )
        .expect("file");
    }
    let run = ws.journal().begin_task("bench", &[]).expect("task");
    let changes: Vec<ProposedChange> = (0..FILES)
        .map(|i| ProposedChange::Rename {
            source: root.join(format!("scan {i:05}.pdf")).display().to_string(),
            target: root.join(format!("2026-03-14 scan {i:05}.pdf")).display().to_string(),
        })
        .collect();
    let roots = [root.clone()];
    let (mut check, mut apply, mut undo) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let cs = changeset::propose(&changes, &roots, &|_| unreachable!("renames stage nothing")).expect("propose");
        check.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        changeset::apply(
            &ws,
            &run,
            deskhand_types::StepNo(1),
            "bench",
            &cs,
            "bench",
            ApplyOptions::default(),
        )
        .expect("apply");
        apply.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        changeset::undo(&ws, &run, false).expect("undo");
        undo.push(t.elapsed().as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let files = FILES as f64;
    println!("{FILES} renames, {ROUNDS} rounds, medians:");
    for (name, v) in [
        ("check (guard rails + SHA-256)", &mut check),
        ("apply", &mut apply),
        ("undo", &mut undo),
    ] {
        let m = median(v);
        println!("  {name:<30} {:>8.1} ms  {:>9.0} files/s", m * 1000.0, files / m);
    }
}
