//! End-to-end tests of the `deskhand` binary as a person runs it: real
//! processes, the real sandbox, files on disk.

#![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use deskhand_replay as replay;
use replay::{Canned, ReplayServer};

mod component_skill;
mod connectors;
mod egress;
mod first_hour;
mod messages;
mod oauth;
mod record_and_terminal;
mod schedule;
mod skills;
mod telemetry;
mod unattended;
mod web;

/// The binary with a clean environment: no model configured, config and
/// cache folders of the test's own.
fn command(args: &[&str], cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deskhand"));
    // The global option goes first: anything after a `--` belongs to the command.
    cmd.arg("--cache-dir")
        .arg(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wasm-cache"))
        .args(args)
        .current_dir(cwd)
        .env("XDG_CONFIG_HOME", cwd.join(".test-config"))
        .stdin(Stdio::null());
    for var in [
        "DESKHAND_CACHE_DIR",
        "DESKHAND_PROVIDER",
        "DESKHAND_MODEL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_MODEL",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_SERVICE_NAME",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn deskhand(args: &[&str], cwd: &Path) -> Output {
    command(args, cwd).output().expect("the deskhand binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

#[track_caller]
fn assert_user_error(o: &Output, needle: &str) {
    assert_eq!(
        o.status.code(),
        Some(2),
        "stdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
    assert!(stderr(o).contains(needle), "stderr lacks {needle:?}:\n{}", stderr(o));
    assert!(stdout(o).is_empty(), "errors go to stderr, not stdout: {}", stdout(o));
}

#[test]
fn init_then_init_again() {
    let tmp = tempfile::tempdir().unwrap();
    let o = deskhand(&["init", "ws"], tmp.path());
    assert_ok(&o);
    assert!(stdout(&o).contains("Created a deskhand workspace"), "{}", stdout(&o));
    for p in [
        "context",
        "projects",
        "output",
        "INSTRUCTIONS.md",
        "MEMORY.md",
        ".deskhand/journal.db",
    ] {
        assert!(tmp.path().join("ws").join(p).exists(), "{p}");
    }
    let o = deskhand(&["init", "ws"], tmp.path());
    assert_ok(&o);
    assert!(
        stdout(&o).contains("already a deskhand workspace; nothing was changed"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn tool_list_shows_fs_and_its_operations() {
    let tmp = tempfile::tempdir().unwrap();
    let o = deskhand(&["tool", "list"], tmp.path());
    assert_ok(&o);
    for op in ["list", "stat", "read_text", "find", "hash", "write"] {
        assert!(stdout(&o).contains(op), "{op} missing:\n{}", stdout(&o));
    }
    let o = deskhand(&["tool", "list", "--json"], tmp.path());
    assert_ok(&o);
    let tools: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let fs = &tools[0];
    assert_eq!(fs["name"], "fs");
    let write = fs["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|op| op["name"] == "write")
        .unwrap();
    assert_eq!(write["effects"]["writes"], serde_json::json!(["path"]));
    assert_eq!(write["args_schema"]["required"], serde_json::json!(["path", "content"]));
}

#[test]
fn tool_run_prints_text_or_json() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    std::fs::write(tmp.path().join("ws/projects/a.txt"), "abc").unwrap();
    let args = [
        "tool",
        "run",
        "fs",
        "stat",
        "--workspace",
        "ws",
        "--grant",
        "projects",
        "--args",
        r#"{"path":"projects/a.txt"}"#,
    ];
    let o = deskhand(&args, tmp.path());
    assert_ok(&o);
    assert!(stdout(&o).contains("file, 3 bytes"), "{}", stdout(&o));
    let o = deskhand(&[&args[..], &["--json"]].concat(), tmp.path());
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["size"], 3);

    let o = deskhand(
        &[
            "tool",
            "run",
            "fs",
            "write",
            "--workspace",
            "ws",
            "--args",
            r#"{"path":"output/hello.txt","content":"hi"}"#,
        ],
        tmp.path(),
    );
    assert_ok(&o);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("ws/output/hello.txt")).unwrap(),
        "hi"
    );
}

#[test]
fn user_errors_exit_2_and_say_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    std::fs::write(tmp.path().join("secret.txt"), "s").unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["tool", "run", "fs"];
        args.extend_from_slice(extra);
        deskhand(&args, tmp.path())
    };
    assert_user_error(
        &run(&["stat", "--workspace", "nowhere", "--args", "{}"]),
        "deskhand init",
    );
    assert_user_error(
        &run(&[
            "stat",
            "--workspace",
            "ws",
            "--grant",
            "projects/missing",
            "--args",
            r#"{"path":"projects"}"#,
        ]),
        "does not exist",
    );
    assert_user_error(
        &run(&["stat", "--workspace", "ws", "--args", "{path:"]),
        "--args is not valid JSON",
    );
    let secret = tmp.path().join("secret.txt").display().to_string();
    assert_user_error(
        &run(&[
            "read_text",
            "--workspace",
            "ws",
            "--grant",
            "projects",
            "--args",
            &format!(r#"{{"path":"{secret}"}}"#),
        ]),
        "--grant",
    );
    assert_user_error(
        &run(&[
            "stat",
            "--workspace",
            "ws",
            "--grant",
            "projects",
            "--args",
            r#"{"path":"projects/../../secret.txt"}"#,
        ]),
        "..",
    );
    assert_user_error(
        &run(&["stat", "--workspace", "ws", "--grant", "projects:wr", "--args", "{}"]),
        "PATH:rw",
    );
    assert_user_error(
        &run(&["chmod", "--workspace", "ws", "--args", "{}"]),
        "has no operation",
    );
    assert_user_error(
        &run(&[
            "stat",
            "--workspace",
            "ws",
            "--grant",
            "projects",
            "--args",
            r#"{"path":"projects/nope"}"#,
        ]),
        "not found",
    );
    let o = deskhand(&["tool", "run", "shell", "x", "--workspace", "ws"], tmp.path());
    assert_user_error(&o, "no tool named \"shell\"");
}

#[test]
fn demo_turns_the_receipts_into_a_workbook_and_a_summary_through_the_offline_planner() {
    let tmp = tempfile::tempdir().unwrap();
    let o = deskhand(&["demo"], tmp.path());
    assert_ok(&o);
    assert!(
        stdout(&o).contains("Done with receipts-to-spreadsheet"),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("Plan (revision 1)"),
        "the plan is shown: {}",
        stderr(&o)
    );
    let output = tmp.path().join("deskhand-demo/output");
    let xlsx = std::fs::read(output.join("expenses.xlsx")).unwrap();
    assert!(xlsx.starts_with(b"PK"), "a zip");
    let pdf = std::fs::read(output.join("expenses-summary.pdf")).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));

    // The workbook's totals are formulas whose values LibreOffice computed.
    let o = deskhand(
        &[
            "tool",
            "run",
            "xlsx",
            "read",
            "--workspace",
            "deskhand-demo",
            "--json",
            "--args",
            r#"{"path": "output/expenses.xlsx", "sheet": "Summary"}"#,
        ],
        tmp.path(),
    );
    assert_ok(&o);
    let read: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let rows = &read["sheets"][0]["rows"];
    let total = rows.as_array().unwrap().last().unwrap();
    assert_eq!(total[2]["formula"], "SUM(C2:C6)", "{rows}");
    // In the sheet's one currency format, as on Expenses.
    assert_eq!(
        total[2]["value"],
        serde_json::json!({"amount": 485.65, "currency": "EUR"}),
        "18.40 + 412.00 + 23.90 + 27.35 + 4.00: {rows}"
    );
    assert!(rows[0][2]["formula"].as_str().unwrap().starts_with("SUMIF("), "{rows}");

    // A second run keeps the first files and writes new ones beside them.
    let o = deskhand(&["demo"], tmp.path());
    assert_ok(&o);
    assert!(stdout(&o).contains("expenses-1.xlsx"), "{}", stdout(&o));
    assert_eq!(std::fs::read(output.join("expenses.xlsx")).unwrap(), xlsx);

    let o = deskhand(&["runs", "--workspace", "deskhand-demo"], tmp.path());
    assert_ok(&o);
    let runs = stdout(&o);
    // The two demos, and the `tool run xlsx read` above.
    assert_eq!(runs.lines().count(), 3, "{runs}");
    let run = runs
        .lines()
        .find(|l| l.contains("receipts"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let o = deskhand(&["show", &run, "--workspace", "deskhand-demo"], tmp.path());
    assert_ok(&o);
    for needle in [
        "succeeded",
        "Plan (revision 1)",
        "[x] 1. Run receipts-to-spreadsheet on projects/receipts",
        "[x] 2. Check the deliverable",
    ] {
        assert!(stdout(&o).contains(needle), "{needle}:\n{}", stdout(&o));
    }
}

#[test]
fn run_with_the_offline_planner_asks_for_what_it_cannot_read_and_refuses_what_it_cannot_do() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["demo", "ws"], tmp.path()));
    let o = deskhand(
        &[
            "run",
            "Write me a poem about spring",
            "--workspace",
            "ws",
            "--mode",
            "act",
        ],
        tmp.path(),
    );
    // An answer, not an error: why, what it can do offline (an example each), how to set up a model.
    assert_eq!(o.status.code(), Some(2), "nothing was done:\n{}", stderr(&o));
    for needle in [
        "can't do that offline",
        "Make a CSV inventory",
        "e.g. \"",
        "ANTHROPIC_API_KEY",
    ] {
        assert!(stdout(&o).contains(needle), "{needle}:\n{}", stdout(&o));
    }
    assert!(!stderr(&o).contains("error:"), "{}", stderr(&o));

    let o = deskhand(
        &[
            "run",
            "Make a file inventory",
            "--workspace",
            "ws",
            "--grant",
            "projects",
            "--grant",
            "context",
            "--mode",
            "act",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("needs your answer") && stderr(&o).contains("--answer"),
        "{}",
        stderr(&o)
    );
    let run = stderr(&o)
        .split_whitespace()
        .skip_while(|w| *w != "run")
        .nth(1)
        .unwrap()
        .to_owned();
    let o = deskhand(
        &[
            "resume",
            &run,
            "--workspace",
            "ws",
            "--answer",
            "receipts",
            "--mode",
            "act",
        ],
        tmp.path(),
    );
    assert_ok(&o);
    assert!(tmp.path().join("ws/output/inventory.csv").is_file());

    // Ask mode without a terminal to ask on stops at the first step, saying why.
    let o = deskhand(
        &[
            "run",
            "Inventory the projects folder",
            "--workspace",
            "ws",
            "--grant",
            "projects",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("--mode act"), "{}", stderr(&o));
}

/// The ids of runs listed by `deskhand runs`.
fn runs(ws: &str, cwd: &Path) -> Vec<String> {
    stdout(&deskhand(&["runs", "--workspace", ws], cwd))
        .lines()
        .filter(|l| l.starts_with("run-"))
        .map(|l| l.split_whitespace().next().unwrap_or_default().to_owned())
        .collect()
}

/// A model server's wire format, and how the binary is pointed at one.
#[derive(Clone, Copy)]
enum Wire {
    Anthropic,
    OpenAiCompatible,
}

impl Wire {
    /// The recorded turn `name` (say `resume-1.sse`) in this format.
    fn transcript(self, name: &str) -> String {
        let prefix = match self {
            Wire::Anthropic => "",
            Wire::OpenAiCompatible => "openai-",
        };
        std::fs::read_to_string(format!(
            "{}/runtime/tests/transcripts/agent/{prefix}{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// `cmd` with its provider set, by environment, to `server`.
    fn talking_to(self, mut cmd: Command, server: &ReplayServer) -> Command {
        match self {
            Wire::Anthropic => cmd
                .env("DESKHAND_PROVIDER", "anthropic")
                .env("ANTHROPIC_API_KEY", "sk-ant-test")
                .env("ANTHROPIC_BASE_URL", server.url()),
            Wire::OpenAiCompatible => cmd
                .env("DESKHAND_PROVIDER", "openai")
                .env("OPENAI_MODEL", "llama3.1:8b")
                .env("OPENAI_BASE_URL", format!("{}/v1", server.url())),
        };
        cmd
    }

    /// The id the recorded write was called with.
    fn write_call_id(self) -> &'static str {
        match self {
            Wire::Anthropic => "toolu_R1Write",
            Wire::OpenAiCompatible => "call_R1Write",
        }
    }
}

#[test]
fn a_run_killed_with_sigkill_resumes_without_redoing_its_finished_write() {
    killed_run_resumes_without_redoing_its_finished_write(Wire::Anthropic);
}

#[test]
fn a_run_on_an_openai_compatible_server_killed_with_sigkill_resumes_without_redoing_its_finished_write() {
    killed_run_resumes_without_redoing_its_finished_write(Wire::OpenAiCompatible);
}

fn killed_run_resumes_without_redoing_its_finished_write(wire: Wire) {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    // The model answers the first turn, then takes far too long: time enough to kill the process.
    let first = ReplayServer::start(vec![
        Canned::sse(&wire.transcript("resume-1.sse")),
        Canned::sse(&wire.transcript("resume-2.sse")).delay(Duration::from_secs(60)),
    ]);
    let mut child = wire
        .talking_to(
            command(
                &["run", "Write a.txt", "--workspace", "ws", "--mode", "act"],
                tmp.path(),
            ),
            &first,
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while first.requests().len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run never reached its second model turn"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("ws/output/a.txt")).unwrap(),
        "written once\n"
    );
    let run = runs("ws", tmp.path()).pop().unwrap();
    let shown = stdout(&deskhand(&["show", &run, "--workspace", "ws"], tmp.path()));
    assert!(shown.contains("(running)"), "{shown}");

    let second = ReplayServer::start(vec![
        Canned::sse(&wire.transcript("resume-2.sse")),
        Canned::sse(&wire.transcript("resume-3.sse")),
    ]);
    let o = wire
        .talking_to(
            command(&["resume", &run, "--workspace", "ws", "--mode", "act"], tmp.path()),
            &second,
        )
        .output()
        .unwrap();
    assert_ok(&o);
    assert!(stdout(&o).contains("output/a.txt is written"), "{}", stdout(&o));
    let mut names: Vec<String> = std::fs::read_dir(tmp.path().join("ws/output"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a.txt", "ledgers"], "the write was not done twice");
    let ledger = std::fs::read_to_string(tmp.path().join(format!("ws/.deskhand/ledgers/{run}.md"))).unwrap();
    assert!(
        ledger.contains("| 1 | fs.write |") && ledger.contains("a.txt"),
        "{ledger}"
    );
    let events = stdout(&deskhand(&["show", &run, "--workspace", "ws", "--events"], tmp.path()));
    let writes = events
        .lines()
        .filter(|l| l.contains("\"tool_call_begin\"") && l.contains("\"operation\":\"write\""))
        .count();
    assert_eq!(writes, 1, "{events}");
    // The resumed conversation carried the first turn's results, not a fresh start.
    assert!(second.requests()[0].body.contains(wire.write_call_id()));
}

#[test]
fn a_fan_out_killed_mid_way_resumes_its_unfinished_sub_agent_and_reuses_the_finished_one() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    for folder in ["receipts", "website refresh"] {
        let dir = tmp.path().join("ws/projects").join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("notes.txt"), "notes\n").unwrap();
    }
    let wire = Wire::Anthropic;
    let parent = "List the receipts and the website folders";
    let (a, b) = ("List projects/receipts", "List projects/website refresh");
    // Both sub-agents start together; the receipts one finishes, the website
    // one's model takes far too long: time enough to kill the process.
    let first = ReplayServer::start(vec![
        Canned::sse(&wire.transcript("fanout-1.sse")).for_task(parent),
        Canned::sse(&wire.transcript("fanout-child-a-1.sse")).for_task(a),
        Canned::sse(&wire.transcript("fanout-child-a-2.sse")).for_task(a),
        Canned::sse(&wire.transcript("fanout-child-b-1.sse"))
            .for_task(b)
            .delay(Duration::from_secs(60)),
    ]);
    let mut child = wire
        .talking_to(
            command(
                &[
                    "run",
                    parent,
                    "--workspace",
                    "ws",
                    "--grant",
                    "projects",
                    "--mode",
                    "act",
                ],
                tmp.path(),
            ),
            &first,
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let run = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the receipts sub-agent never finished"
        );
        std::thread::sleep(Duration::from_millis(50));
        let Some(run) = runs("ws", tmp.path()).pop() else {
            continue;
        };
        let events = stdout(&deskhand(&["show", &run, "--workspace", "ws", "--events"], tmp.path()));
        if events.contains("\"sub_agent_end\"") && first.requests().len() >= 4 {
            break run;
        }
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let second = ReplayServer::start(vec![
        Canned::sse(&wire.transcript("fanout-child-b-1.sse")).for_task(b),
        Canned::sse(&wire.transcript("fanout-child-b-2.sse")).for_task(b),
        Canned::sse(&wire.transcript("fanout-2.sse")).for_task(parent),
        Canned::sse(&wire.transcript("fanout-3.sse")).for_task(parent),
    ]);
    let o = wire
        .talking_to(
            command(&["resume", &run, "--workspace", "ws", "--mode", "act"], tmp.path()),
            &second,
        )
        .output()
        .unwrap();
    assert_ok(&o);
    assert_eq!(second.unserved(), 0, "{}", stderr(&o));
    // The finished sub-agent was not asked again; the unfinished one was resumed.
    let asked: Vec<String> = second.requests().iter().map(|r| r.body.clone()).collect();
    assert!(
        asked
            .iter()
            .all(|body| !body.contains(&format!("\"{a}\"")) || body.contains(parent)),
        "the finished sub-agent ran again"
    );
    let events = stdout(&deskhand(&["show", &run, "--workspace", "ws", "--events"], tmp.path()));
    // Each SubAgentBegin has its End: one from before the kill, one after the resume.
    let count = |kind: &str| events.lines().filter(|l| l.contains(&format!("\"{kind}\""))).count();
    assert_eq!((count("sub_agent_begin"), count("sub_agent_end")), (2, 2), "{events}");
    let shown = stdout(&deskhand(&["show", &run, "--workspace", "ws"], tmp.path()));
    assert!(shown.contains("succeeded"), "{shown}");
}

/// Every file under `dir`, relative path -> bytes.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn renames_in_a_writable_folder_are_applied_then_undone_and_the_trash_is_managed() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    assert_ok(&deskhand(&["init", ws.to_str().unwrap()], tmp.path()));
    let folder = ws.join("projects/scans");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("scan 14.03.2026.pdf"), b"%PDF scan").unwrap();
    std::fs::write(folder.join("invoice_2026_02_01.txt"), b"invoice").unwrap();
    let before = tree(&folder);

    // Nothing to undo yet.
    assert_user_error(
        &deskhand(&["undo", "--last", "--workspace", "ws"], tmp.path()),
        "no run",
    );

    let o = deskhand(
        &[
            "run",
            "/rename-by-date folder=\"projects/scans\"",
            "--workspace",
            "ws",
            "--grant",
            "projects/scans:rw",
            "--mode",
            "act",
        ],
        tmp.path(),
    );
    assert_ok(&o);
    let renamed = tree(&folder);
    assert!(
        renamed.contains_key("2026-03-14 scan.pdf"),
        "{:?}\n{}",
        renamed.keys(),
        stderr(&o)
    );
    assert!(renamed.contains_key("2026-02-01 invoice.txt"), "{:?}", renamed.keys());
    assert!(
        stderr(&o).contains("applied 2 change(s) to your folders") && stderr(&o).contains("deskhand undo"),
        "the person is told what changed and how to undo it:\n{}",
        stderr(&o)
    );

    // The person edits a renamed file and puts a new file at an old name:
    // undo refuses to lose either; --force restores, the edit travels back
    // with its file and the newcomer goes to the trash.
    std::fs::write(folder.join("2026-03-14 scan.pdf"), b"%PDF annotated by the person").unwrap();
    std::fs::write(folder.join("invoice_2026_02_01.txt"), b"a newer invoice").unwrap();
    let o = deskhand(&["undo", "--last", "--workspace", "ws"], tmp.path());
    assert_user_error(&o, "--force");
    assert!(stderr(&o).contains("edited after the run renamed it"), "{}", stderr(&o));
    assert!(stderr(&o).contains("something new is at"), "{}", stderr(&o));
    assert!(folder.join("2026-03-14 scan.pdf").is_file());
    let o = deskhand(&["undo", "--last", "--force", "--workspace", "ws"], tmp.path());
    assert_ok(&o);
    assert!(
        stdout(&o).contains("3 change(s)") && stdout(&o).contains("trash"),
        "{}",
        stdout(&o)
    );
    let mut expected = before.clone();
    expected.insert("scan 14.03.2026.pdf".into(), b"%PDF annotated by the person".to_vec());
    assert_eq!(tree(&folder), expected);
    let ledger = std::fs::read_dir(ws.join(".deskhand/ledgers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".md"))
        .unwrap();
    let ledger = std::fs::read_to_string(ledger).unwrap();
    assert!(ledger.contains("Undone at") && ledger.contains("(forced)"), "{ledger}");
    let again = deskhand(&["undo", "--last", "--workspace", "ws"], tmp.path());
    assert_user_error(&again, "no run");

    // The displaced file is in the trash; restoring onto a taken name is
    // refused; emptying asks.
    let list = stdout(&deskhand(&["trash", "list", "--workspace", "ws"], tmp.path()));
    assert!(list.contains("invoice_2026_02_01.txt"), "{list}");
    let id = list.split_whitespace().next().unwrap().to_owned();
    assert_user_error(
        &deskhand(&["trash", "restore", &id, "--workspace", "ws"], tmp.path()),
        "already exists",
    );
    assert_user_error(&deskhand(&["trash", "empty", "--workspace", "ws"], tmp.path()), "--yes");
    std::fs::rename(folder.join("invoice_2026_02_01.txt"), tmp.path().join("aside.txt")).unwrap();
    assert_ok(&deskhand(&["trash", "restore", &id, "--workspace", "ws"], tmp.path()));
    assert_eq!(
        std::fs::read(folder.join("invoice_2026_02_01.txt")).unwrap(),
        b"a newer invoice"
    );
    std::fs::rename(tmp.path().join("aside.txt"), folder.join("invoice_2026_02_01.txt")).unwrap();
    std::fs::write(folder.join("scan 14.03.2026.pdf"), b"%PDF scan").unwrap();
    assert_eq!(tree(&folder), before);

    // Deletion always asks; without a terminal nothing is deleted.
    let o = deskhand(
        &[
            "tool",
            "run",
            "fs",
            "delete",
            "--workspace",
            "ws",
            "--grant",
            "projects/scans:rw",
            "--args",
            r#"{"path": "projects/scans/invoice_2026_02_01.txt"}"#,
        ],
        tmp.path(),
    );
    assert_ok(&o);
    assert_eq!(tree(&folder), before, "tool run applied a deletion");

    assert!(stderr(&o).contains("does not apply"), "{}", stderr(&o));
    // Nothing new in the trash (it holds what the undo above put there: the
    // run's rename proposal in output/).
    let trash = stdout(&deskhand(&["trash", "list", "--workspace", "ws"], tmp.path()));
    assert!(!trash.contains("invoice_2026_02_01.txt"), "{trash}");
    assert_user_error(
        &deskhand(&["trash", "restore", "7", "--workspace", "ws"], tmp.path()),
        "trash list",
    );
    assert_ok(&deskhand(&["trash", "empty", "--yes", "--workspace", "ws"], tmp.path()));
    let o = deskhand(&["trash", "empty", "--workspace", "ws"], tmp.path());
    assert_ok(&o);
    assert!(stdout(&o).contains("already empty"));
}

#[test]
fn shell_runs_a_native_command_whose_changes_are_applied_and_undone() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    assert_ok(&deskhand(&["init", ws.to_str().unwrap()], tmp.path()));
    let folder = ws.join("projects/notes");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(folder.join("b.txt"), "bravo\n").unwrap();
    let before = tree(&folder);

    let o = deskhand(
        &[
            "shell",
            "--workspace",
            "ws",
            "--grant",
            "projects/notes:rw",
            "--mode",
            "act",
            "--",
            "sh",
            "-c",
            "mv a.txt renamed.txt && echo edited >> b.txt && echo listed: $(ls)",
        ],
        tmp.path(),
    );
    assert_ok(&o);
    assert!(
        stdout(&o).contains("listed: a.txt b.txt") || stdout(&o).contains("listed: b.txt renamed.txt"),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("applied 2 change(s)") && stderr(&o).contains("deskhand undo"),
        "{}",
        stderr(&o)
    );
    assert!(folder.join("renamed.txt").is_file());

    // Deletions ask; without a terminal nothing is applied, all or nothing.
    let o = deskhand(
        &[
            "shell",
            "--workspace",
            "ws",
            "--grant",
            "projects/notes:rw",
            "--mode",
            "act",
            "--",
            "rm",
            "b.txt",
        ],
        tmp.path(),
    );
    assert_user_error(&o, "deletions always need the person");
    assert!(folder.join("b.txt").is_file());

    // Ask mode without a terminal does not run the command at all.
    let o = deskhand(
        &[
            "shell",
            "--workspace",
            "ws",
            "--grant",
            "projects/notes:rw",
            "--",
            "touch",
            "x",
        ],
        tmp.path(),
    );
    assert_user_error(&o, "ask mode needs a terminal");

    assert_ok(&deskhand(&["undo", "--last", "--workspace", "ws"], tmp.path()));
    assert_eq!(tree(&folder), before);
}

#[test]
fn doctor_checks_the_sandboxes_and_the_workspace() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    let o = deskhand(&["doctor", "--workspace", "ws"], tmp.path());
    assert_ok(&o);
    let text = stdout(&o);
    for line in [
        "ok    WebAssembly sandbox",
        "ok    journal: 0 runs, intact",
        "ok    changesets",
        "ok    model",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    // Outside a workspace it still checks the machine and says what it could not check.
    let o = deskhand(&["doctor", "--workspace", "nowhere"], tmp.path());
    assert_ok(&o);
    assert!(stdout(&o).contains("note  workspace"), "{}", stdout(&o));
}

#[test]
fn shell_on_the_vm_backend_without_its_assets_says_how_to_set_it_up() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    std::fs::create_dir_all(tmp.path().join("ws/projects/x")).unwrap();
    let o = command(
        &[
            "shell",
            "--workspace",
            "ws",
            "--backend",
            "vm",
            "--grant",
            "projects/x",
            "--mode",
            "act",
            "--",
            "true",
        ],
        tmp.path(),
    )
    .env("HOME", tmp.path().join("empty-home"))
    .env_remove("XDG_CACHE_HOME")
    .output()
    .unwrap();
    assert_user_error(&o, "scripts/setup-vm");
}
