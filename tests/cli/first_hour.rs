//! Issue 14's first hour on the terminal: what cannot start is refused
//! before a run exists, a question is asked on the terminal when there is
//! one (and read generously), and a finished run takes a new instruction.

use std::io::Write;
use std::process::Stdio;

use super::*;

#[test]
fn an_empty_task_and_a_missing_folder_are_refused_before_a_run_starts() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    let o = deskhand(&["run", "  ", "--workspace", "ws"], tmp.path());
    assert_user_error(&o, "the task is empty");
    let o = run_act("Make an inventory", "projects/reciepts", tmp.path());
    assert_user_error(&o, "the granted folder projects/reciepts does not exist");
    assert!(stderr(&o).contains("Nothing was started"), "{}", stderr(&o));
    assert!(runs("ws", tmp.path()).is_empty(), "no run was recorded");
}

#[test]
fn a_question_is_asked_on_the_terminal_and_a_near_miss_asked_again() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["demo", "ws"], tmp.path()));
    // A folder no grant holds, then a typo of the one that fits: the
    // terminal hands them over a line at a time, one to each question.
    let args = [
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
    ];
    let o = on_a_terminal(&args, b"invoices\nreciepts\n", tmp.path());
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(o.status.success(), "{all}");
    assert!(
        all.contains("deskhand asks: Which folder for the folder inventory?"),
        "{all}"
    );
    assert!(all.contains("I could not use \"invoices\""), "{all}");
    assert!(all.contains("Done with folder-inventory"), "{all}");
    let csv = std::fs::read_to_string(tmp.path().join("ws/output/inventory.csv")).unwrap();
    assert!(csv.contains("2026-03-02 taxi.pdf"), "{csv}");
}

#[test]
fn a_finished_run_takes_a_new_instruction_from_the_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["demo", "ws"], tmp.path()));
    let before = runs("ws", tmp.path());
    let o = run_act("Make an inventory of the receipts folder", "projects", tmp.path());
    assert_ok(&o);
    assert!(
        stdout(&o).contains("--say"),
        "the way to ask for more is shown: {}",
        stdout(&o)
    );
    let run = runs("ws", tmp.path())
        .into_iter()
        .find(|r| !before.contains(r))
        .unwrap();
    let o = deskhand(
        &[
            "resume",
            &run,
            "--workspace",
            "ws",
            "--say",
            "now the website refresh folder",
        ],
        tmp.path(),
    );
    assert_ok(&o);
    let csv = std::fs::read_to_string(tmp.path().join("ws/output/inventory-1.csv")).unwrap();
    assert!(csv.contains("notes.md"), "{csv}");
    let o = deskhand(&["show", &run, "--workspace", "ws"], tmp.path());
    assert!(stdout(&o).contains("projects/website refresh"), "{}", stdout(&o));
    let o = deskhand(&["resume", &run, "--workspace", "ws", "--say", " "], tmp.path());
    assert_user_error(&o, "the new instruction is empty");
}

#[test]
fn activity_reads_as_actions_on_files_and_verbose_names_the_tools() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = deskhand(&["demo", "ws"], tmp.path());
    assert_ok(&demo);
    // What a result adds to the call's start: how many purchases were read.
    let said = stderr(&demo);
    assert!(said.contains("· Found 5 purchases"), "{said}");
    let task = [
        "run",
        "Make a file inventory of projects/receipts",
        "--workspace",
        "ws",
        "--grant",
        "projects",
        "--mode",
        "act",
    ];
    let o = deskhand(&task, tmp.path());
    assert_ok(&o);
    let err = stderr(&o);
    assert!(err.contains("· Listed every file in receipts/ into inventory"), "{err}");
    assert!(err.contains("· Checked inventory"), "{err}");
    for model_facing in ["inventory.run", "fs.stat", "update_plan", "call update_plan"] {
        assert!(!err.contains(model_facing), "{model_facing}:\n{err}");
    }
    let o = deskhand(&[&["--verbose"][..], &task[..]].concat(), tmp.path());
    assert_ok(&o);
    let err = stderr(&o);
    assert!(err.contains("Listed every file in receipts/ into inventory"), "{err}");
    assert!(err.contains("inventory.run {\"folder\""), "{err}");
    // The second inventory could not take the first one's name, and says so.
    assert!(
        err.contains("· Saved as inventory-1.csv (inventory.csv was taken)"),
        "{err}"
    );
}

/// `deskhand run TASK --workspace ws --grant GRANT --mode act`.
fn run_act(task: &str, grant: &str, cwd: &Path) -> Output {
    deskhand(
        &["run", task, "--workspace", "ws", "--grant", grant, "--mode", "act"],
        cwd,
    )
}

/// Runs `deskhand` with `args` on a terminal (`script` gives it one), typing
/// `typed` into it.
fn on_a_terminal(args: &[&str], typed: &[u8], cwd: &Path) -> Output {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wasm-cache");
    let cache = cache.display().to_string();
    let mut words = vec![env!("CARGO_BIN_EXE_deskhand"), "--cache-dir", &cache];
    words.extend_from_slice(args);
    let line = words.into_iter().map(quote).collect::<Vec<_>>().join(" ");
    let cmd = command(&[], cwd);
    let mut script = Command::new("script");
    script
        .args(["-qec", &line, "/dev/null"])
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    let mut child = script.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(typed).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn files_are_sorted_into_folders_and_duplicates_removed_only_when_the_person_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    let inbox = tmp.path().join("ws/projects/inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    for (name, content) in [
        ("report.pdf", "%PDF report"),
        ("photo.jpg", "a photo"),
        ("photo copy.jpg", "a photo"),
        ("budget.xlsx", "a workbook"),
    ] {
        std::fs::write(inbox.join(name), content).unwrap();
    }
    let before = tree(&inbox);

    // Sorting by type: moves, applied in act mode, undone as one.
    let o = run_act(
        "sort the files in projects/inbox into folders by type",
        "projects/inbox:rw",
        tmp.path(),
    );
    assert_ok(&o);
    let sorted = tree(&inbox);
    for name in [
        "Documents/report.pdf",
        "Images/photo.jpg",
        "Images/photo copy.jpg",
        "Spreadsheets/budget.xlsx",
    ] {
        assert!(
            sorted.contains_key(name),
            "{name} in {:?}\n{}",
            sorted.keys(),
            stderr(&o)
        );
    }
    let csv = std::fs::read_to_string(tmp.path().join("ws/output/sort-proposal.csv")).unwrap();
    assert!(csv.contains("report.pdf,Documents,.pdf"), "{csv}");
    assert_ok(&deskhand(&["undo", "--last", "--workspace", "ws"], tmp.path()));
    assert_eq!(tree(&inbox), before, "undo puts every file back");

    // Duplicates: a report only, unless the person asks to remove them.
    let o = run_act(
        "find duplicate files in projects/inbox",
        "projects/inbox:rw",
        tmp.path(),
    );
    assert_ok(&o);
    assert_eq!(tree(&inbox), before, "a report deletes nothing");
    let report = std::fs::read_to_string(tmp.path().join("ws/output/duplicates.csv")).unwrap();
    assert_eq!(report.lines().count(), 3, "{report}");

    // Removing asks even in act mode; declined, nothing goes.
    let remove = [
        "run",
        "remove the duplicates in projects/inbox",
        "--workspace",
        "ws",
        "--grant",
        "projects/inbox:rw",
        "--mode",
        "act",
    ];
    let o = on_a_terminal(&remove, b"n\n", tmp.path());
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("1 deletion(s)"), "{all}");
    assert_eq!(tree(&inbox), before, "declined, nothing is deleted:\n{all}");
    // Accepted, the newer copy goes to the trash, and undo brings it back.
    let o = on_a_terminal(&remove, b"y\n", tmp.path());
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(o.status.success(), "{all}");
    let after = tree(&inbox);
    assert_eq!(after.len(), 3, "{:?}\n{all}", after.keys());
    assert_ok(&deskhand(&["undo", "--last", "--workspace", "ws"], tmp.path()));
    assert_eq!(tree(&inbox), before, "undo brings the deleted copy back");
}

/// Pages of a PDF (`pdf info` through `tool run`).
fn pages_of(pdf: &str, cwd: &Path) -> u64 {
    let args = format!(r#"{{"path":"{pdf}"}}"#);
    let o = deskhand(
        &[
            "tool",
            "run",
            "pdf",
            "info",
            "--workspace",
            "ws",
            "--grant",
            "projects",
            "--json",
            "--args",
            &args,
        ],
        cwd,
    );
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["pages"].as_u64().unwrap_or_else(|| panic!("{v}"))
}

#[test]
fn a_pdf_is_split_into_the_page_ranges_the_task_names() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    // A three-page PDF, made with the pdf tool and put in the inbox.
    let blocks = r#"{"path":"output/contract.pdf","title":"Contract","blocks":[
        {"type":"paragraph","text":"one"},{"type":"page_break"},
        {"type":"paragraph","text":"two"},{"type":"page_break"},
        {"type":"paragraph","text":"three"}]}"#;
    assert_ok(&deskhand(
        &["tool", "run", "pdf", "report", "--workspace", "ws", "--args", blocks],
        tmp.path(),
    ));
    let inbox = tmp.path().join("ws/projects/inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::rename(tmp.path().join("ws/output/contract.pdf"), inbox.join("contract.pdf")).unwrap();
    assert_eq!(pages_of("projects/inbox/contract.pdf", tmp.path()), 3);

    let o = run_act(
        "split projects/inbox/contract.pdf into pages 1-2 and 3",
        "projects/inbox",
        tmp.path(),
    );
    assert_ok(&o);
    assert_eq!(pages_of("output/contract-p1-2.pdf", tmp.path()), 2, "{}", stderr(&o));
    assert_eq!(pages_of("output/contract-p3.pdf", tmp.path()), 1);
    assert!(inbox.join("contract.pdf").is_file(), "the PDF itself is left as it was");

    // A split that names no pages asks which; the answer "each" is taken.
    let o = run_act("split projects/inbox/contract.pdf", "projects/inbox", tmp.path());
    assert!(stderr(&o).contains("Which ranges for the split pdf?"), "{}", stderr(&o));
}

#[test]
fn a_digest_lists_the_notes_of_the_period_and_says_it_does_not_summarise() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    let notes = tmp.path().join("ws/context/meetings");
    std::fs::create_dir_all(&notes).unwrap();
    std::fs::write(
        notes.join("2026-03-02 standup.md"),
        "# Standup\nShip the invoice export\nAna is away\n",
    )
    .unwrap();
    std::fs::write(
        notes.join("client call 14 March 2026.txt"),
        "Call with Acme\nThey want a quote by Friday\n",
    )
    .unwrap();
    std::fs::write(notes.join("2026-04-20 retro.md"), "# Retro\nOut of the period\n").unwrap();

    let o = run_act(
        "make a digest of my notes in context from 2026-03-01 to 2026-03-15",
        "context",
        tmp.path(),
    );
    assert_ok(&o);
    let text = deskhand(
        &[
            "tool",
            "run",
            "docx",
            "text",
            "--workspace",
            "ws",
            "--args",
            r#"{"path":"output/notes-digest.docx"}"#,
        ],
        tmp.path(),
    );
    assert_ok(&text);
    let text = stdout(&text);
    assert!(
        text.contains("Notes digest, 2026-03-01 to 2026-03-15"),
        "{text}\n{}",
        stderr(&o)
    );
    assert!(
        text.contains("## Standup") && text.contains("Ship the invoice export"),
        "{text}"
    );
    assert!(
        text.contains("## Call with Acme") && text.contains("2026-03-14"),
        "{text}"
    );
    assert!(!text.contains("Retro"), "a note outside the period is left out: {text}");
    assert!(text.contains("does not summarise"), "{text}");

    // Two folders: one sub-agent each, each with the period and a digest of its own.
    let other = tmp.path().join("ws/context/clients");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("2026-03-10 acme.md"), "# Acme kickoff\nScope agreed\n").unwrap();
    std::fs::write(other.join("2026-05-01 later.md"), "# Later\n").unwrap();
    let o = run_act(
        "make a digest of the notes in context/meetings and context/clients from March 2026",
        "context",
        tmp.path(),
    );
    assert_ok(&o);
    let read = |name: &str| {
        let args = format!(r#"{{"path":"output/{name}"}}"#);
        let o = deskhand(
            &["tool", "run", "docx", "text", "--workspace", "ws", "--args", &args],
            tmp.path(),
        );
        assert_ok(&o);
        stdout(&o)
    };
    let meetings = read("notes-digest-meetings.docx");
    assert!(
        meetings.contains("Standup") && !meetings.contains("Acme kickoff"),
        "{meetings}\n{}",
        stderr(&o)
    );
    let clients = read("notes-digest-clients.docx");
    assert!(
        clients.contains("Acme kickoff") && !clients.contains("Later"),
        "{clients}"
    );
    assert!(
        clients.contains("2026-03-01 to 2026-03-31"),
        "the period reached the sub-agent: {clients}"
    );
}

#[test]
fn a_parameter_given_outright_survives_the_question_and_the_resume() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    std::fs::create_dir_all(tmp.path().join("ws/projects/docs")).unwrap();
    std::fs::write(tmp.path().join("ws/projects/docs/a.txt"), "a").unwrap();
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
            "--param",
            "output=output/docs-list.csv",
            "--mode",
            "act",
        ],
        tmp.path(),
    );
    assert_user_error(&o, "needs your answer");
    let run = runs("ws", tmp.path()).pop().unwrap();
    let o = deskhand(
        &["resume", &run, "--workspace", "ws", "--answer", "projects/docs"],
        tmp.path(),
    );
    assert_ok(&o);
    let csv = std::fs::read_to_string(tmp.path().join("ws/output/docs-list.csv"))
        .unwrap_or_else(|e| panic!("the --param output was kept ({e}):\n{}", stderr(&o)));
    assert!(csv.contains("a.txt"), "{csv}");
}
