//! End-to-end tests of the `deskhand` binary as a person runs it: real
//! processes, the real sandbox, files on disk.

#![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn deskhand(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deskhand"))
        .args(args)
        .arg("--cache-dir")
        .arg(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wasm-cache"))
        .current_dir(cwd)
        .env_remove("DESKHAND_CACHE_DIR")
        .output()
        .expect("the deskhand binary runs")
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
fn demo_inventories_the_projects_folder_through_the_sandbox() {
    let tmp = tempfile::tempdir().unwrap();
    let o = deskhand(&["demo"], tmp.path());
    assert_ok(&o);
    assert!(
        stdout(&o).contains("Wrote deskhand-demo/output/inventory.csv"),
        "{}",
        stdout(&o)
    );
    let csv = std::fs::read_to_string(tmp.path().join("deskhand-demo/output/inventory.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("path,kind,size_bytes,modified"));
    let rows: Vec<_> = lines.collect();
    assert_eq!(rows.iter().filter(|r| r.contains(",file,")).count(), 8, "{csv}");
    assert!(
        rows.iter()
            .any(|r| r.starts_with("receipts/lunch 14.03.2026.txt,file,30,")),
        "{csv}"
    );

    // A second run keeps the first inventory and writes a new one.
    let o = deskhand(&["demo"], tmp.path());
    assert_ok(&o);
    assert!(stdout(&o).contains("inventory-1.csv"), "{}", stdout(&o));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("deskhand-demo/output/inventory.csv")).unwrap(),
        csv
    );
}
