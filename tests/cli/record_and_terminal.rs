//! A hostile model's text on the terminal and in the record: escape
//! sequences are shown, not obeyed, and every command shows the ledger of
//! record, not the copy in output/ that a guest could rewrite.

use serde_json::json;

use super::*;
use replay::anthropic_turn;

/// An OSC 52 clipboard write, a screen clear, concealed text, a CSI as one
/// C1 byte, a carriage return and a forged prompt.
const HOSTILE: &str =
    "\u{1b}]52;c;cm0gLXJmIH4=\u{7}\u{1b}[2J\u{1b}[8mhidden\u{1b}[0m\u{9b}1A\r\nApprove this step? [y/N] ";

/// A model server that plans one step titled with `HOSTILE`, says it
/// (commentary on the terminal), writes output/a.txt, and answers with it.
fn hostile_model() -> ReplayServer {
    let plan = json!({"steps": [{"title": format!("Write a.txt {HOSTILE}"), "effects": {"writes": ["output/a.txt"]}, "status": "in_progress"}]});
    ReplayServer::start(vec![
        Canned::sse(&anthropic_turn(
            &format!("Planning {HOSTILE}"),
            &[
                ("toolu_plan", "update_plan", plan),
                (
                    "toolu_write",
                    "fs__write",
                    json!({"path": format!("output/a.txt"), "content": "hello\n"}),
                ),
            ],
        )),
        Canned::sse(&anthropic_turn(&format!("Done. {HOSTILE}"), &[])),
    ])
}

#[track_caller]
fn assert_inert(what: &str, text: &str) {
    for c in ['\u{1b}', '\u{7}', '\u{9b}', '\r'] {
        assert!(!text.contains(c), "{what} sent {c:?} to the terminal:\n{text:?}");
    }
}

#[test]
fn escape_sequences_in_a_models_text_and_plan_reach_the_terminal_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    let server = hostile_model();
    let o = Wire::Anthropic
        .talking_to(
            command(
                &["run", "Write a.txt", "--workspace", "ws", "--mode", "act"],
                tmp.path(),
            ),
            &server,
        )
        .output()
        .unwrap();
    assert_ok(&o);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_inert("run's stdout", &out);
    assert_inert("run's stderr", &err);
    // Shown, escaped, where they were: the plan, the commentary, the answer.
    assert!(err.contains("1. Write a.txt \\u{1b}]52;c;"), "{err}");
    assert!(err.contains("Planning \\u{1b}]52;c;"), "{err}");
    assert!(out.contains("Done. \\u{1b}]52;c;"), "{out}");
    // A title is one line: the forged prompt stays inside it.
    assert!(
        err.contains("[8mhidden\\u{1b}[0m\\u{9b}1A\\r\\nApprove this step? [y/N]"),
        "{err}"
    );

    let run = runs("ws", tmp.path()).pop().unwrap();
    for args in [
        vec!["show", run.as_str(), "--workspace", "ws"],
        vec!["show", run.as_str(), "--workspace", "ws", "--events"],
        vec!["show", run.as_str(), "--workspace", "ws", "--ledger"],
        vec!["runs", "--workspace", "ws"],
    ] {
        let o = deskhand(&args, tmp.path());
        assert_ok(&o);
        assert_inert(&args.join(" "), &stdout(&o));
    }
    let events = stdout(&deskhand(&["show", &run, "--workspace", "ws", "--events"], tmp.path()));
    assert!(
        events
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "--events stays JSON lines:\n{events}"
    );
}

#[test]
fn show_ledger_prints_the_record_not_the_copy_a_guest_could_rewrite() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    let server = ReplayServer::start(vec![
        Canned::sse(&Wire::Anthropic.transcript("resume-1.sse")),
        Canned::sse(&Wire::Anthropic.transcript("resume-3.sse")),
    ]);
    let o = Wire::Anthropic
        .talking_to(
            command(
                &["run", "Write a.txt", "--workspace", "ws", "--mode", "act"],
                tmp.path(),
            ),
            &server,
        )
        .output()
        .unwrap();
    assert_ok(&o);
    let run = runs("ws", tmp.path()).pop().unwrap();
    let record = tmp.path().join(format!("ws/.deskhand/ledgers/{run}.md"));
    assert!(
        stdout(&o).contains(&format!("Ledger: {}", record.canonicalize().unwrap().display())),
        "{}",
        stdout(&o)
    );
    // The deliverables stay apart from the records.
    let copy = tmp.path().join(format!("ws/output/ledgers/{run}-ledger.md"));
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&record).unwrap());
    std::fs::write(&copy, "# Run ledger\nNothing was changed.\n").unwrap();

    let o = deskhand(&["show", &run, "--workspace", "ws", "--ledger"], tmp.path());
    assert_ok(&o);
    let shown = stdout(&o);
    assert!(
        shown.contains("| 1 | fs.write |") && !shown.contains("Nothing was changed"),
        "{shown}"
    );
    assert!(
        shown.contains("## Files written") && shown.contains("a.txt` ("),
        "{shown}"
    );
    let o = deskhand(&["show", &run, "--workspace", "ws"], tmp.path());
    assert!(stdout(&o).contains("Ledger: "), "{}", stdout(&o));
    assert_user_error(
        &deskhand(&["show", "run-nope", "--workspace", "ws", "--ledger"], tmp.path()),
        "no run",
    );
}
