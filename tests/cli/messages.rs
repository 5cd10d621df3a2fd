//! What the person sees: a tool's result shown in full, errors that name
//! their cause and the next step with the right exit code, and `resume
//! --mode` taking effect.

use super::*;

#[test]
fn tool_run_shows_what_the_tool_found_not_only_a_summary() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    std::fs::create_dir(tmp.path().join("ws/projects/notes")).unwrap();
    std::fs::write(tmp.path().join("ws/projects/notes/x.txt"), "hello\nworld\n").unwrap();
    let fs = |op: &str, args: &str| {
        let o = deskhand(
            &[
                "tool",
                "run",
                "fs",
                op,
                "--workspace",
                "ws",
                "--grant",
                "projects",
                "--args",
                args,
            ],
            tmp.path(),
        );
        assert_ok(&o);
        stdout(&o)
    };

    let read = fs("read_text", r#"{"path": "projects/notes/x.txt"}"#);
    assert!(read.contains("12 bytes of text"), "the summary stays first:\n{read}");
    assert!(read.contains("\nhello\nworld\n"), "the text itself:\n{read}");

    // One line per entry: path, kind, size and modification time.
    let list = fs("list", r#"{"path": "projects", "recursive": true}"#);
    let entry = |path: &str| -> Vec<String> {
        list.lines()
            .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .find(|words| words.iter().any(|w| w.ends_with(path)))
            .unwrap_or_else(|| panic!("no line for {path}:\n{list}"))
    };
    let file = entry("projects/notes/x.txt");
    assert!(file.contains(&"file".into()) && file.contains(&"12".into()), "{list}");
    assert!(
        file.iter().any(|w| w.contains('T') && w.ends_with('Z')),
        "an mtime:\n{list}"
    );
    assert!(entry("projects/notes").contains(&"dir".into()), "{list}");

    let find = fs("find", r#"{"path": "projects", "pattern": "**/*.txt"}"#);
    assert!(
        find.lines().any(|l| l.contains("notes/x.txt") && l.contains("file")),
        "{find}"
    );

    let stat = fs("stat", r#"{"path": "projects/notes/x.txt"}"#);
    for field in ["kind:", "size:", "mtime:", "path:"] {
        assert!(stat.contains(field), "{field} in:\n{stat}");
    }

    let hash = fs("hash", r#"{"path": "projects/notes/x.txt"}"#);
    // sha256("hello\nworld\n")
    let digest = "4a1e67f2fe1d1cc7b31d0ca2ec441da4778203a036a77da10344c85e24ff0f92";
    assert!(hash.contains(&format!("sha256: {digest}")), "{hash}");
}

#[test]
fn a_folder_the_person_named_that_cannot_be_used_exits_2_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("afile"), "not a folder").unwrap();

    let o = deskhand(&["init", "afile/ws"], tmp.path());
    assert_user_error(&o, "afile is a file, not a folder");
    assert!(
        stderr(&o).contains("afile/ws") && stderr(&o).contains("Choose a folder"),
        "{}",
        stderr(&o)
    );

    let o = deskhand(&["demo", "afile"], tmp.path());
    assert_user_error(&o, "afile is a file, not a folder");
    assert!(stderr(&o).contains("Choose a folder"), "{}", stderr(&o));

    // A folder no one can create anything in.
    if std::path::Path::new("/proc/self").exists() {
        let o = deskhand(&["init", "/proc/deskhand-test"], tmp.path());
        assert_user_error(&o, "/proc/deskhand-test");
        assert!(stderr(&o).contains("Choose a folder"), "{}", stderr(&o));
    }
}

#[test]
fn a_damaged_journal_says_what_to_do_and_the_advice_works() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    let state = tmp.path().join("ws/.deskhand");
    for aside in ["journal.db-wal", "journal.db-shm"] {
        let _ = std::fs::remove_file(state.join(aside));
    }
    std::fs::write(state.join("journal.db"), vec![0x5a; 8192]).unwrap();

    let o = deskhand(&["runs", "--workspace", "ws"], tmp.path());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    for needle in [
        "journal.db",
        "damaged",
        "deskhand doctor",
        "out of .deskhand/",
        "deskhand init ws",
    ] {
        assert!(stderr(&o).contains(needle), "{needle:?} missing:\n{}", stderr(&o));
    }

    let o = deskhand(&["doctor", "--workspace", "ws"], tmp.path());
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("FAIL  journal"), "{}", stdout(&o));

    // What the message says to do.
    std::fs::rename(state.join("journal.db"), tmp.path().join("journal.db.damaged")).unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    let o = deskhand(&["runs", "--workspace", "ws"], tmp.path());
    assert_ok(&o);
    assert!(stdout(&o).contains("No runs yet"), "{}", stdout(&o));
}

#[test]
fn a_model_named_without_a_provider_is_refused_with_how_to_configure_one() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    let o = deskhand(
        &[
            "run",
            "Summarize my notes",
            "--workspace",
            "ws",
            "--model",
            "llama3.1",
            "--mode",
            "act",
        ],
        tmp.path(),
    );
    assert_user_error(&o, "--model llama3.1");
    for needle in [
        "no model provider is configured",
        "ANTHROPIC_API_KEY",
        "OPENAI_BASE_URL",
        ".test-config/deskhand/config.toml",
        "--model offline",
    ] {
        assert!(stderr(&o).contains(needle), "{needle:?} missing:\n{}", stderr(&o));
    }
    assert!(runs("ws", tmp.path()).is_empty(), "no run was started");

    // `--model offline` is the offline planner, which says what it cannot do.
    let o = deskhand(
        &[
            "run",
            "Write me a poem",
            "--workspace",
            "ws",
            "--model",
            "offline",
            "--mode",
            "act",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stdout(&o).contains("can't do that offline"), "{}", stdout(&o));
}

#[test]
fn limits_of_zero_are_refused_up_front_and_a_deadline_names_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    let stat = ["tool", "run", "fs", "stat", "--workspace", "ws"];
    let o = deskhand(&[&stat[..], &["--timeout", "0"]].concat(), tmp.path());
    assert_user_error(&o, "1 to 86400");
    let o = deskhand(&[&stat[..], &["--memory-mib", "0"]].concat(), tmp.path());
    assert_user_error(&o, "1 to 65536");
    let o = deskhand(
        &["shell", "--workspace", "ws", "--timeout", "0", "--", "true"],
        tmp.path(),
    );
    assert_user_error(&o, "1 to 86400");

    let o = deskhand(
        &[
            "tool",
            "run",
            "python",
            "run",
            "--workspace",
            "ws",
            "--timeout",
            "1",
            "--args",
            r#"{"script": "while True: pass"}"#,
        ],
        tmp.path(),
    );
    assert_user_error(&o, "deadline of 1s");
    assert!(stderr(&o).contains("--timeout"), "{}", stderr(&o));
}

/// `run "Make a file inventory"` in a fresh workspace with two folders
/// granted: the offline planner asks which. Returns the waiting run's id.
fn inventory_waiting_for_its_folder(ws: &str, mode: &str, cwd: &std::path::Path) -> String {
    assert_ok(&deskhand(&["init", ws], cwd));
    std::fs::create_dir(cwd.join(ws).join("projects/docs")).unwrap();
    std::fs::write(cwd.join(ws).join("projects/docs/a.txt"), "a").unwrap();
    let o = deskhand(
        &[
            "run",
            "Make a file inventory",
            "--workspace",
            ws,
            "--grant",
            "projects",
            "--grant",
            "context",
            "--mode",
            mode,
        ],
        cwd,
    );
    assert_user_error(&o, "needs your answer");
    runs(ws, cwd).pop().unwrap()
}

#[test]
fn resume_with_mode_act_finishes_an_ask_mode_run_that_had_no_terminal_to_ask_on() {
    let tmp = tempfile::tempdir().unwrap();
    let run = inventory_waiting_for_its_folder("ws", "ask", tmp.path());
    let o = deskhand(
        &[
            "resume",
            &run,
            "--workspace",
            "ws",
            "--answer",
            "projects/docs",
            "--mode",
            "act",
        ],
        tmp.path(),
    );
    assert_ok(&o);
    assert!(tmp.path().join("ws/output/inventory.csv").is_file());
    let events = stdout(&deskhand(&["show", &run, "--workspace", "ws", "--events"], tmp.path()));
    assert!(
        events.contains("resumed this run in act mode") && events.contains("it was in ask mode"),
        "the switch is journaled:\n{events}"
    );
    let ledger = std::fs::read_to_string(tmp.path().join(format!("ws/.deskhand/ledgers/{run}.md"))).unwrap();
    assert!(
        ledger.contains("**Mode:** act"),
        "the ledger tells the mode the run ended in:\n{ledger}"
    );

    // Without --mode the run keeps its own: ask, which cannot ask here.
    let run = inventory_waiting_for_its_folder("ws2", "ask", tmp.path());
    let o = deskhand(
        &["resume", &run, "--workspace", "ws2", "--answer", "projects/docs"],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("ask mode needs a terminal"), "{}", stderr(&o));
    assert!(!tmp.path().join("ws2/output/inventory.csv").exists());
    // That run has ended; resuming it says how to do the task again.
    let o = deskhand(&["resume", &run, "--workspace", "ws2", "--mode", "act"], tmp.path());
    assert_user_error(&o, "already ended");
    assert!(
        stderr(&o).contains("deskhand run 'Make a file inventory' --workspace")
            && stderr(&o).contains("--grant projects"),
        "{}",
        stderr(&o)
    );

    // ... and act, for a run begun in act mode.
    let run = inventory_waiting_for_its_folder("ws3", "act", tmp.path());
    let o = deskhand(
        &["resume", &run, "--workspace", "ws3", "--answer", "projects/docs"],
        tmp.path(),
    );
    assert_ok(&o);
    assert!(tmp.path().join("ws3/output/inventory.csv").is_file());
}
