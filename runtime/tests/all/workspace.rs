//! `init` lays out a workspace once and never changes an existing one; the
//! journal keeps an append-only event log.

use deskhand_runtime::Error;
use deskhand_runtime::tools::{CallRequest, run_call};
use deskhand_runtime::wasm::Limits;
use deskhand_runtime::workspace::{InitOutcome, Workspace};
use deskhand_types::{Event, Grant};
use serde_json::json;

use crate::common::{Fixture, toolbox, tree as snapshot};

#[test]
fn init_creates_the_layout_and_a_second_init_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ws");
    let (_, outcome) = Workspace::init(&dir).unwrap();
    let InitOutcome::Created { created } = outcome else {
        panic!("expected a new workspace")
    };
    for part in [
        "context/",
        "projects/",
        "output/",
        ".deskhand/",
        "INSTRUCTIONS.md",
        "MEMORY.md",
        ".deskhand/journal.db",
    ] {
        assert!(created.iter().any(|c| c == part), "{part} missing from {created:?}");
    }
    assert!(
        std::fs::read_to_string(dir.join("INSTRUCTIONS.md"))
            .unwrap()
            .starts_with("# Instructions")
    );

    // The journal is SQLite in WAL mode with tasks, steps and the event log.
    let db = rusqlite::Connection::open(dir.join(".deskhand/journal.db")).unwrap();
    let mode: String = db.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    for table in ["tasks", "steps", "events"] {
        let found: i64 = db
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(found, 1, "table {table}");
    }
    drop(db);

    std::fs::write(dir.join("INSTRUCTIONS.md"), "my own rules\n").unwrap();
    std::fs::remove_dir(dir.join("context")).unwrap();
    let before = snapshot(&dir);
    let (_, outcome) = Workspace::init(&dir).unwrap();
    assert_eq!(
        outcome,
        InitOutcome::AlreadyWorkspace {
            missing: vec!["context".into()]
        }
    );
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn init_in_a_folder_with_files_keeps_them() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("MEMORY.md"), "remember: I like tea\n").unwrap();
    let (_, outcome) = Workspace::init(tmp.path()).unwrap();
    let InitOutcome::Created { created } = outcome else {
        panic!()
    };
    assert!(!created.contains(&"MEMORY.md".to_string()));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("MEMORY.md")).unwrap(),
        "remember: I like tea\n"
    );
}

#[test]
fn opening_a_folder_that_is_not_a_workspace_says_how_to_make_one() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Workspace::open(tmp.path()).unwrap_err();
    assert!(matches!(err, Error::NotAWorkspace { .. }));
    assert!(err.to_string().contains("deskhand init"), "{err}");
}

#[test]
fn a_missing_grant_folder_is_a_clear_error() {
    let fx = Fixture::new();
    let err = fx
        .ws
        .sandbox(&[Grant::read_only("projects/nope")], Limits::default())
        .unwrap_err();
    assert!(matches!(err, Error::GrantMissing { .. }), "{err}");
    assert!(
        err.to_string().contains("projects/nope") && err.to_string().contains("does not exist"),
        "{err}"
    );
    std::fs::write(fx.ws.root().join("projects/file.txt"), "x").unwrap();
    let err = fx
        .ws
        .sandbox(&[Grant::read_only("projects/file.txt")], Limits::default())
        .unwrap_err();
    assert!(matches!(err, Error::GrantNotFolder { .. }), "{err}");
}

#[test]
fn a_grant_removed_after_the_sandbox_was_built_fails_the_call_cleanly() {
    let fx = Fixture::new();
    let sandbox = fx.sandbox(&[Grant::read_only(fx.inbox.clone())]);
    std::fs::remove_dir_all(&fx.inbox).unwrap();
    let err = toolbox()
        .get(deskhand_runtime::tools::BundledTool::Fs)
        .unwrap()
        .call(&sandbox, "stat", "{}", None)
        .result
        .unwrap_err();
    assert!(err.to_string().contains("inbox"), "{err}");
}

#[test]
fn every_call_is_journaled_as_begin_end_events_and_the_log_is_append_only() {
    let fx = Fixture::new();
    let grants = [Grant::read_only("projects")];
    let ok = run_call(
        &fx.ws,
        toolbox(),
        &CallRequest {
            tool: "fs",
            operation: "list",
            args: json!({"path": "projects", "recursive": true}),
            grants: &grants,
            limits: Limits::default(),
        },
        None,
    )
    .unwrap();
    let _ = run_call(
        &fx.ws,
        toolbox(),
        &CallRequest {
            tool: "fs",
            operation: "stat",
            args: json!({"path": "projects/missing"}),
            grants: &grants,
            limits: Limits::default(),
        },
        None,
    )
    .unwrap_err();

    let journal = fx.ws.journal();
    let tasks = journal.tasks().unwrap();
    assert_eq!(tasks.len(), 2);
    assert_eq!(
        tasks.iter().map(|t| t.status.as_str()).collect::<Vec<_>>(),
        ["succeeded", "failed"]
    );
    let events = journal.events(&ok.run).unwrap();
    // A tool run is a run of one step, recorded as a planned run is, with
    // the call as a begin/end pair inside its step.
    let kinds: Vec<&str> = events.iter().map(|e| e.event.kind()).collect();
    assert_eq!(
        kinds,
        [
            "run_begin",
            "plan_updated",
            "step_approved",
            "step_begin",
            "tool_call_begin",
            "tool_call_end",
            "step_end",
            "run_end"
        ],
        "{events:?}"
    );
    let (Event::ToolCallBegin { call: begin, .. }, Event::ToolCallEnd { call: end, .. }) =
        (&events[4].event, &events[5].event)
    else {
        panic!("expected a begin/end pair: {events:?}")
    };
    assert_eq!(begin, end);
    let view = deskhand_runtime::view::RunView::load(journal, &ok.run).unwrap();
    assert_eq!(view.plan.steps.len(), 1);
    assert_eq!(view.plan.steps[0].status, deskhand_types::StepStatus::Done);

    for sql in ["UPDATE events SET body = '{}'", "DELETE FROM events"] {
        let err = journal.execute_raw(sql).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    assert_eq!(journal.events(&ok.run).unwrap().len(), events.len());
}

#[test]
fn a_file_a_tool_run_delivers_goes_through_the_change_pipeline() {
    let fx = Fixture::new();
    let done = run_call(
        &fx.ws,
        toolbox(),
        &CallRequest {
            tool: "fs",
            operation: "write",
            args: json!({"path": "output/report.txt", "content": "done"}),
            grants: &[],
            limits: Limits::default(),
        },
        None,
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(fx.ws.output_dir().join("report.txt")).unwrap(),
        "done"
    );
    let events: Vec<Event> = fx
        .ws
        .journal()
        .events(&done.run)
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .collect();
    let proposed = events
        .iter()
        .position(|e| matches!(e, Event::ChangesProposed { .. }))
        .expect("the delivery is proposed");
    let applied = events
        .iter()
        .position(|e| matches!(e, Event::ChangesApplied { by, .. } if by.contains("the person, who ran the tool")))
        .expect("and applied on the person's authority");
    assert!(proposed < applied, "{events:?}");
}

#[test]
fn one_grants_policy_makes_the_wasm_sandbox_the_change_roots_and_the_shell_mounts() {
    use deskhand_runtime::grants::ShellMount;
    let fx = Fixture::new();
    let archive = fx.ws.root().join("context/archive");
    std::fs::create_dir_all(&archive).unwrap();
    std::fs::create_dir_all(fx.ws.output_dir().join("shared")).unwrap();
    let grants = [
        Grant::read_write("projects/inbox"),
        Grant::read_only("context/archive"),
        Grant::read_only("output/shared"),
    ];
    let policy = fx.ws.policy(&grants).unwrap();
    let output = fx.ws.output_dir().canonicalize().unwrap();
    let inbox = fx.inbox.canonicalize().unwrap();
    let archive = archive.canonicalize().unwrap();
    // The wasm sandbox sees output/ (through which the grant inside it) and
    // each folder, all read-only: changes come back as proposals.
    let sandbox = policy.sandbox(Limits::default()).unwrap();
    let mounted: Vec<_> = sandbox.mounts.iter().map(|m| (m.host.clone(), m.access)).collect();
    assert_eq!(
        mounted,
        [
            (output.clone(), deskhand_types::Access::ReadOnly),
            (inbox.clone(), deskhand_types::Access::ReadOnly),
            (archive.clone(), deskhand_types::Access::ReadOnly)
        ]
    );
    assert_eq!(policy.change_roots(), [output.clone(), inbox.clone()]);
    assert_eq!(policy.in_output(), [std::path::PathBuf::from("shared")]);
    // The shell binds what it may only read as it is, and copies where changes may land.
    assert_eq!(
        policy.shell_mounts().unwrap(),
        [
            ShellMount::ReadOnly(archive),
            ShellMount::Copied(output.clone()),
            ShellMount::Copied(inbox.clone())
        ]
    );
    assert!(policy.may_change(&inbox.join("a.txt")));
    assert!(!policy.may_change(&inbox));
    assert!(!policy.may_change(&fx.outside.join("canary.txt")));
    // The same checks as before: a grant that is missing is named.
    let missing = fx.ws.policy(&[Grant::read_only("projects/nope")]).unwrap_err();
    assert!(missing.to_string().contains("nope"), "{missing}");
}

#[test]
fn the_read_only_path_runs_reads_in_output_and_refuses_an_operation_that_writes() {
    use deskhand_runtime::tools::BundledTool;
    let fx = Fixture::new();
    std::fs::write(fx.ws.output_dir().join("seen.txt"), "preview me").unwrap();
    // Paths as the guest sees them: each folder at its canonical path.
    let output = fx.ws.output_dir().canonicalize().unwrap();
    let seen = toolbox()
        .read_only(
            &fx.ws,
            BundledTool::Fs,
            "stat",
            &json!({"path": output.join("seen.txt")}),
        )
        .unwrap();
    assert_eq!(seen.json["size"], 10, "{}", seen.json);
    // Only output/ is in its sandbox.
    let outside = toolbox()
        .read_only(
            &fx.ws,
            BundledTool::Fs,
            "stat",
            &json!({"path": fx.inbox.join("note.txt")}),
        )
        .unwrap_err();
    // The guest cannot see it at all: not found, naming the path asked for.
    assert!(
        matches!(
            &outside,
            Error::Call(deskhand_runtime::wasm::CallError::Tool(
                deskhand_types::ToolError::NotFound { .. } | deskhand_types::ToolError::Denied { .. }
            ))
        ) && outside.to_string().contains("note.txt"),
        "{outside}"
    );
    let before = snapshot(fx.ws.root());
    let err = toolbox()
        .read_only(
            &fx.ws,
            BundledTool::Fs,
            "write",
            &json!({"path": output.join("new.txt"), "content": "no"}),
        )
        .unwrap_err();
    assert!(err.to_string().contains("read-only preview"), "{err}");
    assert_eq!(snapshot(fx.ws.root()), before);
}
