//! The bundled `python` tool (CPython 3.14 built by componentize-py) through
//! the real sandbox: the standard library doing real work on real files, the
//! traceback coming back, the sandbox's refusals, proposals becoming a
//! changeset that is applied and undone, and the deadline, memory and output
//! caps.

use std::time::Duration;

use deskhand_runtime::call;
use deskhand_runtime::changeset::{self, ApplyOptions};
use deskhand_runtime::tools::BundledTool;
use deskhand_runtime::wasm::{CallError, Limits, LoadedTool, Sandbox, ToolEvent};
use deskhand_types::{Access, Grant, ToolError, ToolOutput};
use serde_json::{Value, json};

use crate::common::{Fixture, toolbox, tree};

fn python() -> &'static LoadedTool {
    toolbox().get(BundledTool::Python).unwrap()
}

fn run(sandbox: &Sandbox, args: Value) -> Result<ToolOutput, CallError> {
    python().call(sandbox, "run", &args.to_string(), None).result
}

fn ok(sandbox: &Sandbox, script: &str) -> ToolOutput {
    match run(sandbox, json!({ "script": script })) {
        Ok(out) => out,
        Err(e) => panic!("the script failed: {e}\n{script}"),
    }
}

fn fails(sandbox: &Sandbox, script: &str) -> ToolError {
    match run(sandbox, json!({ "script": script })) {
        Ok(out) => panic!("the script succeeded: {}\n{script}", out.json),
        Err(CallError::Tool(e)) => e,
        Err(other) => panic!("expected a tool error, got {other}"),
    }
}

fn grant(path: &std::path::Path, access: Access) -> Grant {
    Grant {
        path: path.to_path_buf(),
        access,
    }
}

fn py_str(path: &std::path::Path) -> String {
    serde_json::to_string(&path.display().to_string()).unwrap()
}

#[test]
fn describes_one_run_operation() {
    let d = python().description();
    assert_eq!(d.name, "python");
    let op = d.operation("run").unwrap();
    assert_eq!(op.effects.reads, vec!["cwd".to_owned()]);
    assert!(op.effects.writes.is_empty() && !op.effects.network);
}

#[test]
fn csv_in_json_out_with_re_datetime_decimal_statistics_math_pathlib() {
    let f = Fixture::new();
    std::fs::write(
        f.inbox.join("sales.csv"),
        "date,item,amount\n2024-01-31,Coffee beans,12.50\n2024-02-01,Tea,7.25\n2024-02-15,Coffee filter,3.10\n",
    )
    .unwrap();
    let sandbox = f.sandbox(&[grant(&f.inbox, Access::ReadOnly)]);
    let script = format!(
        r#"
import csv, json, re, math, statistics, pathlib
from datetime import datetime
from decimal import Decimal
inbox = pathlib.Path({inbox})
rows = list(csv.DictReader((inbox / "sales.csv").open(newline="")))
total = sum(Decimal(r["amount"]) for r in rows)
coffee = [r["item"] for r in rows if re.search(r"(?i)coffee", r["item"])]
months = sorted({{datetime.strptime(r["date"], "%Y-%m-%d").strftime("%B") for r in rows}})
print("rows:", len(rows))
{{"total": str(total), "coffee": coffee, "months": months,
  "mean": round(statistics.mean(float(r["amount"]) for r in rows), 4),
  "sqrt": math.isqrt(144), "files": sorted(p.name for p in inbox.iterdir())}}
"#,
        inbox = py_str(&f.inbox)
    );
    let out = ok(&sandbox, &script);
    assert_eq!(
        out.json["result"],
        json!({
            "total": "22.85",
            "coffee": ["Coffee beans", "Coffee filter"],
            "months": ["February", "January"],
            "mean": 7.6167,
            "sqrt": 12,
            "files": ["note.txt", "sales.csv"],
        })
    );
    assert_eq!(out.json["stdout"], "rows: 3\n");
    assert!(
        out.text.contains("\nrows: 3\n"),
        "people see what it printed: {}",
        out.text
    );
    assert_eq!(out.json["stdout_truncated"], false);
    assert!(out.changes.is_empty());
}

#[test]
fn sqlite3_database_under_output_is_a_real_sqlite_file() {
    let f = Fixture::new();
    let sandbox = f.sandbox(&[]);
    let db = f.ws.output_dir().join("ledger.db");
    let script = format!(
        r#"
import sqlite3
con = sqlite3.connect({db})
con.execute("create table spend (category text, amount real)")
con.executemany("insert into spend values (?, ?)", [("food", 12.5), ("travel", 40.0), ("food", 7.5)])
con.commit()
result = dict(con.execute("select category, sum(amount) from spend group by category order by 1"))
con.close()
"#,
        db = py_str(&db)
    );
    let out = ok(&sandbox, &script);
    assert_eq!(out.json["result"], json!({"food": 20.0, "travel": 40.0}));
    // Read back by the host's own SQLite, not by the guest.
    let con = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = con.query_row("select count(*) from spend", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 3);
}

#[test]
fn zipfile_writes_an_archive_under_output_and_xml_parses_it_back() {
    let f = Fixture::new();
    let sandbox = f.sandbox(&[grant(&f.inbox, Access::ReadOnly)]);
    let archive = f.ws.output_dir().join("bundle.zip");
    let script = format!(
        r#"
import zipfile, xml.etree.ElementTree as ET
root = ET.Element("receipts")
for n, amount in [("a", "1.50"), ("b", "2.25")]:
    ET.SubElement(root, "receipt", name=n).text = amount
with zipfile.ZipFile({archive}, "w", compression=zipfile.ZIP_DEFLATED) as z:
    z.writestr("receipts.xml", ET.tostring(root, encoding="unicode"))
    z.write({note}, "note.txt")
with zipfile.ZipFile({archive}) as z:
    parsed = ET.fromstring(z.read("receipts.xml"))
    result = {{"names": z.namelist(), "sum": sum(float(r.text) for r in parsed.iter("receipt")),
               "note": z.read("note.txt").decode()}}
"#,
        archive = py_str(&archive),
        note = py_str(&f.inbox.join("note.txt"))
    );
    let out = ok(&sandbox, &script);
    assert_eq!(
        out.json["result"],
        json!({"names": ["receipts.xml", "note.txt"], "sum": 3.75, "note": "hello from the inbox\n"})
    );
    let bytes = std::fs::read(&archive).unwrap();
    assert!(bytes.starts_with(b"PK\x03\x04"), "a zip local header first");
    let eocd = bytes.len() - 22;
    assert_eq!(
        &bytes[eocd..eocd + 4],
        b"PK\x05\x06",
        "a zip end-of-directory record last"
    );
}

#[test]
fn the_result_is_the_result_variable_else_the_last_expression() {
    let f = Fixture::new();
    let sandbox = f.sandbox(&[]);
    assert_eq!(ok(&sandbox, "x = 2\nx * 21").json["result"], 42);
    assert_eq!(ok(&sandbox, "result = [1, 2]\n'ignored'").json["result"], json!([1, 2]));
    assert_eq!(ok(&sandbox, "x = 1").json["result"], Value::Null);
    // Values json cannot encode come back readable.
    let out = ok(
        &sandbox,
        "import datetime, decimal\n{'d': datetime.date(2024, 2, 29), 'm': decimal.Decimal('1.10'), 's': {3}}",
    );
    assert_eq!(out.json["result"], json!({"d": "2024-02-29", "m": "1.10", "s": [3]}));
    assert!(out.text.contains("result: {\"d\": \"2024-02-29\""), "{}", out.text);
    let err = fails(&sandbox, "float('nan')");
    assert!(
        matches!(&err, ToolError::BadContent { message, .. } if message.contains("cannot be returned as JSON")),
        "{err:?}"
    );
}

#[test]
fn args_cwd_and_host_events_reach_the_script() {
    let f = Fixture::new();
    let sandbox = f.sandbox(&[]);
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = {
        let events = events.clone();
        std::sync::Arc::new(move |e| events.lock().unwrap().push(e))
    };
    let args = json!({
        "script": "import sys, os, deskhand\ndeskhand.progress(1, 2, 'half')\ndeskhand.log('warn', 'careful')\nopen('made.txt', 'w').write('hi')\nresult = sys.argv[1:]",
        "args": ["a", "b c"],
        "cwd": f.ws.output_dir().display().to_string(),
    });
    let out = python()
        .call(&sandbox, "run", &args.to_string(), Some(sink))
        .result
        .unwrap();
    assert_eq!(out.json["result"], json!(["a", "b c"]));
    assert_eq!(
        std::fs::read_to_string(f.ws.output_dir().join("made.txt")).unwrap(),
        "hi"
    );
    let events = events.lock().unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ToolEvent::Progress { done: 1, total: Some(2), message } if message == "half"))
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ToolEvent::Log { message, .. } if message == "careful"))
    );
}

#[test]
fn an_exception_comes_back_with_its_traceback() {
    let f = Fixture::new();
    let sandbox = f.sandbox(&[]);
    let err = fails(
        &sandbox,
        "print('before the error')\ndef share(total, people):\n    return total / people\nshare(10, 0)\n",
    );
    let ToolError::BadContent { path, message } = &err else {
        panic!("expected bad-content, got {err:?}")
    };
    assert_eq!(path, "<script>");
    for expected in [
        "Traceback (most recent call last):",
        "File \"<script>\", line 4, in <module>",
        "File \"<script>\", line 3, in share",
        "return total / people",
        "ZeroDivisionError: division by zero",
        "before the error",
    ] {
        assert!(message.contains(expected), "{expected:?} missing from:\n{message}");
    }
    assert!(
        !message.contains("app.py"),
        "the runner's own frames are left out:\n{message}"
    );

    let err = fails(&sandbox, "x = (1,\n");
    assert!(
        matches!(&err, ToolError::BadContent { message, .. } if message.contains("SyntaxError") && message.contains("line 1")),
        "{err:?}"
    );
    let err = fails(&sandbox, "import numpy");
    assert!(
        matches!(&err, ToolError::BadContent { message, .. }
            if message.contains("No module named 'numpy'") && message.contains("csv, ") && message.contains("sqlite3")),
        "{err:?}"
    );
    let err = fails(&sandbox, "import sys\nsys.exit(3)");
    assert!(
        matches!(&err, ToolError::BadContent { message, .. } if message.contains("status 3")),
        "{err:?}"
    );
    // Bad arguments are the caller's to fix.
    let err = run(&sandbox, json!({"script": 1})).unwrap_err();
    assert!(matches!(err, CallError::Tool(ToolError::InvalidArgs { .. })), "{err}");
}

#[test]
fn reading_outside_the_grants_fails() {
    let f = Fixture::new();
    let sandbox = f.sandbox(&[grant(&f.inbox, Access::ReadOnly)]);
    for target in [
        f.canary.display().to_string(),
        format!("{}/../../../outside/canary.txt", f.inbox.display()),
        "/etc/passwd".to_owned(),
    ] {
        let err = fails(
            &sandbox,
            &format!("open({}).read()", serde_json::to_string(&target).unwrap()),
        );
        assert!(
            matches!(err, ToolError::Denied { .. } | ToolError::NotFound { .. }),
            "{target}: {err:?}"
        );
    }
    let err = fails(&sandbox, "import os\nos.listdir('/')");
    assert!(
        matches!(err, ToolError::Denied { .. } | ToolError::NotFound { .. }),
        "{err:?}"
    );
    f.assert_canary_intact();
}

#[test]
fn writing_into_a_granted_folder_fails_even_when_granted_read_write() {
    let f = Fixture::new();
    let before = tree(&f.inbox);
    for access in [Access::ReadOnly, Access::ReadWrite] {
        let sandbox = f.sandbox(&[grant(&f.inbox, access)]);
        for script in [
            format!("open({}, 'w').write('x')", py_str(&f.inbox.join("new.txt"))),
            format!("open({}, 'a').write('x')", py_str(&f.inbox.join("note.txt"))),
            format!("import os\nos.remove({})", py_str(&f.inbox.join("note.txt"))),
        ] {
            let err = fails(&sandbox, &script);
            assert!(
                matches!(&err, ToolError::Denied { message, .. } if message.contains("Traceback")),
                "{access:?} {script}: {err:?}"
            );
        }
    }
    assert_eq!(tree(&f.inbox), before);
}

#[test]
fn proposals_become_a_changeset_that_is_applied_and_undone() {
    let f = Fixture::new();
    std::fs::write(f.inbox.join("old.tmp"), "scratch\n").unwrap();
    std::fs::create_dir(f.inbox.join("archive")).unwrap();
    let before = tree(&f.inbox);
    let grants = [grant(&f.inbox, Access::ReadWrite)];
    let script = format!(
        r#"
import deskhand, pathlib
inbox = pathlib.Path({inbox})
deskhand.propose_move(inbox / "note.txt", inbox / "archive" / "note.txt")
deskhand.propose_delete(inbox / "old.tmp")
deskhand.propose_save(inbox / "summary.txt", "two files tidied\n")
deskhand.propose_save(inbox / "archive" / "data.bin", bytes([0, 1, 2]))
"#,
        inbox = py_str(&f.inbox)
    );
    let prepared = call::prepare(
        &f.ws,
        toolbox(),
        "python",
        "run",
        &json!({ "script": script }),
        &f.ws.policy(&grants).unwrap(),
        Limits::default(),
        &[],
    )
    .unwrap();
    let output = call::execute(&prepared, &deskhand_types::CallId("call-py".into()), &|_| {}, &|| true).unwrap();
    assert_eq!(output.changes.len(), 4, "{}", output.json);
    assert_eq!(tree(&f.inbox), before, "a proposal changes nothing by itself");

    let roots = f.ws.change_roots(&grants).unwrap();
    let cs = changeset::propose(&output.changes, &roots, &|g| prepared.staged(g)).unwrap();
    let run = f.ws.journal().begin_task("python proposals", &grants).unwrap();
    changeset::apply(
        &f.ws,
        &run,
        deskhand_types::StepNo(1),
        "call-py",
        &cs,
        "the test",
        ApplyOptions::default(),
    )
    .unwrap();
    let after = tree(&f.inbox);
    assert_eq!(after.get("archive/note.txt").unwrap(), b"hello from the inbox\n");
    assert_eq!(after.get("summary.txt").unwrap(), b"two files tidied\n");
    assert_eq!(after.get("archive/data.bin").unwrap(), &[0, 1, 2]);
    assert!(!after.contains_key("note.txt") && !after.contains_key("old.tmp"));

    changeset::undo(&f.ws, &run, false).unwrap();
    assert_eq!(tree(&f.inbox), before, "undo restores the folder byte for byte");
}

#[test]
fn a_proposal_outside_the_change_roots_is_refused_by_the_guard_rails() {
    let f = Fixture::new();
    let grants = [grant(&f.inbox, Access::ReadOnly)];
    let prepared = call::prepare(
        &f.ws,
        toolbox(),
        "python",
        "run",
        &json!({ "script": format!("import deskhand\ndeskhand.propose_delete({})", py_str(&f.inbox.join("note.txt"))) }),
        &f.ws.policy(&grants).unwrap(),
        Limits::default(),
        &[],
    )
    .unwrap();
    let output = call::execute(&prepared, &deskhand_types::CallId("call-py".into()), &|_| {}, &|| true).unwrap();
    let roots = f.ws.change_roots(&grants).unwrap();
    let err = changeset::propose(&output.changes, &roots, &|g| prepared.staged(g)).unwrap_err();
    assert!(err.to_string().contains("not inside"), "{err}");
    assert!(f.inbox.join("note.txt").exists());
}

#[test]
fn an_endless_loop_is_stopped_by_the_deadline_and_the_host_carries_on() {
    let f = Fixture::new();
    let mut sandbox = f.sandbox(&[]);
    sandbox.limits.deadline = Duration::from_millis(500);
    let started = std::time::Instant::now();
    let err = run(&sandbox, json!({"script": "while True:\n    pass"})).unwrap_err();
    assert!(matches!(err, CallError::Deadline { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(ok(&sandbox, "1 + 1").json["result"], 2);
}

#[test]
fn a_guest_asleep_in_a_host_call_is_stopped_by_the_deadline() {
    // Epoch interruption fires only in wasm code; the timer itself must end
    // at the deadline (the regression: the run hung for the whole sleep).
    let f = Fixture::new();
    let mut sandbox = f.sandbox(&[]);
    sandbox.limits.deadline = Duration::from_millis(500);
    for script in [
        "import time\ntime.sleep(86400)",
        "import time\nwhile True:\n    time.sleep(3600)",
    ] {
        let started = std::time::Instant::now();
        let err = run(&sandbox, json!({ "script": script })).unwrap_err();
        assert!(matches!(err, CallError::Deadline { .. }), "{script}: {err}");
        assert!(started.elapsed() < Duration::from_secs(60), "{script}: the call hung");
    }
    assert_eq!(ok(&sandbox, "1 + 1").json["result"], 2);
}

#[test]
fn a_guest_blocked_on_a_fifo_is_left_behind_at_the_deadline() {
    // Opening a FIFO with no writer blocks inside the host, where neither
    // the epoch nor a timer reaches: the host stops waiting at the deadline.
    let f = Fixture::new();
    let dir = f.inbox.clone();
    let fifo = dir.join("pipe");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let mut sandbox = f.sandbox(&[grant(&dir, Access::ReadOnly)]);
    sandbox.limits.deadline = Duration::from_millis(500);
    let script = format!("open({:?}).read()", fifo.display().to_string());
    let started = std::time::Instant::now();
    let err = run(&sandbox, json!({ "script": script })).unwrap_err();
    assert!(matches!(err, CallError::Deadline { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60), "the call hung");
    // Let the abandoned guest finish so the test leaves nothing running.
    let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
}

#[test]
fn a_memory_bomb_hits_the_memory_cap() {
    let f = Fixture::new();
    let mut sandbox = f.sandbox(&[]);
    sandbox.limits.memory_bytes = 256 << 20;
    for bomb in [
        "x = bytearray(1 << 30)",
        "x = []\nwhile True:\n    x.append('y' * 100000)",
    ] {
        let err = run(&sandbox, json!({ "script": bomb })).unwrap_err();
        assert!(matches!(err, CallError::MemoryCap { .. }), "{bomb}: {err}");
    }
    assert_eq!(ok(&sandbox, "len(bytearray(1 << 20))").json["result"], 1 << 20);
}

#[test]
fn a_stdout_flood_is_capped() {
    let f = Fixture::new();
    let sandbox = f.sandbox(&[]);
    let out = run(
        &sandbox,
        json!({"script": "for i in range(100000):\n    print('x' * 99)\n'done'", "max_output_bytes": 10000}),
    )
    .unwrap();
    assert_eq!(out.json["result"], "done");
    assert_eq!(out.json["stdout_truncated"], true);
    assert_eq!(out.json["stdout_bytes"], 10_000_000);
    assert_eq!(out.json["stdout"].as_str().unwrap().len(), 10000);
    // Past the sandbox's own stdout pipe, the host stops the tool.
    let mut small = f.sandbox(&[]);
    small.limits.stdout_bytes = 4096;
    let err = run(
        &small,
        json!({"script": "import os\nfor i in range(1000):\n    os.write(1, b'y' * 1000)"}),
    )
    .unwrap_err();
    assert!(matches!(err, CallError::OutputCap { .. } | CallError::Tool(_)), "{err}");
}

#[test]
fn a_call_whose_start_is_not_recorded_is_not_run() {
    let f = Fixture::new();
    let grants = [grant(&f.inbox, Access::ReadOnly)];
    let prepared = call::prepare(
        &f.ws,
        toolbox(),
        "python",
        "run",
        &json!({ "script": "import sys\nprint('the script ran', file=sys.stderr)" }),
        &f.ws.policy(&grants).unwrap(),
        Limits::default(),
        &[],
    )
    .unwrap();
    let kinds = |events: &std::sync::Mutex<Vec<deskhand_types::Event>>| -> Vec<String> {
        let events = events.lock().unwrap();
        events.iter().map(|e| e.kind().to_owned()).collect()
    };

    // The journal refused the start: the instance prepared meanwhile is dropped unrun.
    let events = std::sync::Mutex::new(Vec::new());
    let emit = |e| events.lock().unwrap().push(e);
    let err = call::execute(&prepared, &deskhand_types::CallId("call-py".into()), &emit, &|| false).unwrap_err();
    assert!(err.to_string().contains("could not be recorded"), "{err}");
    assert_eq!(kinds(&events), ["tool_call_begin", "tool_call_end"]);

    // Recorded, the same call runs.
    let events = std::sync::Mutex::new(Vec::new());
    let emit = |e| events.lock().unwrap().push(e);
    let output = call::execute(&prepared, &deskhand_types::CallId("call-py2".into()), &emit, &|| true).unwrap();
    assert!(output.json.to_string().contains("the script ran"), "{}", output.json);
}
