//! Every way out of a grant that a tool (or a compromised one) might try.
//! Each attempt must fail with a clear error and leave the canary alone.

use deskhand_runtime::Error;
use deskhand_runtime::wasm::{CallError, Limits};
use deskhand_types::{Grant, ToolError};
use serde_json::json;

use crate::common::{Fixture, call_tool, hostile_fails, toolbox};

fn fs_call(fx: &Fixture, op: &str, args: serde_json::Value, grants: &[Grant]) -> Result<serde_json::Value, Error> {
    call_tool(toolbox(), &fx.ws, "fs", op, args, grants)
}

fn inbox_grant(fx: &Fixture) -> Vec<Grant> {
    vec![Grant::read_only(fx.inbox.clone())]
}

#[test]
fn fs_reads_inside_a_grant() {
    let fx = Fixture::new();
    let out = fs_call(
        &fx,
        "read_text",
        json!({"path": "projects/inbox/note.txt"}),
        &inbox_grant(&fx),
    )
    .unwrap();
    assert_eq!(out["text"], "hello from the inbox\n");
}

#[test]
fn dotdot_is_refused_by_the_host_and_by_the_sandbox() {
    let fx = Fixture::new();
    let sneaky = format!("{}/../../../outside/canary.txt", fx.inbox.display());
    let err = fs_call(&fx, "read_text", json!({"path": sneaky}), &inbox_grant(&fx)).unwrap_err();
    assert!(matches!(err, Error::BadPath { .. }), "{err}");
    assert!(err.to_string().contains(".."), "{err}");
    // Bypassing the host's check, the sandbox itself refuses.
    let msg = hostile_fails(&fx.sandbox(&inbox_grant(&fx)), "read", json!({"path": sneaky}));
    assert!(!msg.contains("secret"), "{msg}");
    fx.assert_canary_intact();
}

#[test]
fn absolute_path_outside_the_grants_is_refused() {
    let fx = Fixture::new();
    let canary = fx.canary.display().to_string();
    let err = fs_call(&fx, "read_text", json!({"path": canary}), &inbox_grant(&fx)).unwrap_err();
    assert!(matches!(err, Error::OutsideGrants { .. }), "{err}");
    assert!(
        err.to_string().contains("--grant"),
        "the error says how to fix it: {err}"
    );
    let msg = hostile_fails(&fx.sandbox(&inbox_grant(&fx)), "read", json!({"path": canary}));
    assert!(!msg.contains("secret"), "{msg}");
    fx.assert_canary_intact();
}

#[test]
fn symlink_pointing_outside_is_not_followed() {
    let fx = Fixture::new();
    std::os::unix::fs::symlink(&fx.canary, fx.inbox.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(&fx.outside, fx.inbox.join("linkdir")).unwrap();
    let err = fs_call(
        &fx,
        "read_text",
        json!({"path": "projects/inbox/link.txt"}),
        &inbox_grant(&fx),
    )
    .unwrap_err();
    assert!(matches!(err, Error::OutsideGrants { .. }), "{err}");
    let sandbox = fx.sandbox(&inbox_grant(&fx));
    let link = fx.inbox.join("link.txt").display().to_string();
    let msg = hostile_fails(&sandbox, "read", json!({"path": link}));
    assert!(!msg.contains("secret"), "{msg}");
    let msg = hostile_fails(
        &sandbox,
        "read",
        json!({"path": format!("{}/linkdir/canary.txt", fx.inbox.display())}),
    );
    assert!(!msg.contains("secret"), "{msg}");
    // Listing the folder shows the links as links, without following them.
    let out = fs_call(&fx, "list", json!({"path": "projects/inbox"}), &inbox_grant(&fx)).unwrap();
    let kinds: Vec<_> = out["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["symlink", "symlink", "file"]);
    fx.assert_canary_intact();
}

#[test]
fn trailing_slash_symlink_does_not_lead_outside() {
    let fx = Fixture::new();
    std::os::unix::fs::symlink(&fx.outside, fx.inbox.join("out")).unwrap();
    let err = fs_call(&fx, "list", json!({"path": "projects/inbox/out/"}), &inbox_grant(&fx)).unwrap_err();
    assert!(matches!(err, Error::OutsideGrants { .. }), "{err}");
    let msg = hostile_fails(
        &fx.sandbox(&inbox_grant(&fx)),
        "list",
        json!({"path": format!("{}/out/", fx.inbox.display())}),
    );
    assert!(!msg.contains("canary"), "{msg}");
    fx.assert_canary_intact();
}

#[test]
fn hardlinks_cannot_be_made_to_files_outside() {
    // output/ is the one folder a guest can write, so that is where it would try.
    let fx = Fixture::new();
    let sandbox = fx.sandbox(&[]);
    let out = fx.ws.output_dir();
    for target in [
        fx.canary.display().to_string(),
        format!("{}/../../outside/canary.txt", out.display()),
    ] {
        let link = out.join("stolen.txt").display().to_string();
        let msg = hostile_fails(&sandbox, "hardlink", json!({"path": link, "to": target}));
        assert!(
            msg.contains("canary.txt") || msg.contains("stolen.txt"),
            "the error names the path: {msg}"
        );
        assert!(!out.join("stolen.txt").exists());
    }
    // Nor from inside a writable folder to a path outside it.
    std::fs::write(out.join("mine.txt"), "mine\n").unwrap();
    let out_link = fx.outside.join("planted.txt").display().to_string();
    hostile_fails(
        &sandbox,
        "hardlink",
        json!({"path": out_link, "to": out.join("mine.txt").display().to_string()}),
    );
    assert!(!fx.outside.join("planted.txt").exists());
    fx.assert_canary_intact();
}

#[test]
fn a_hardlink_already_in_a_read_only_grant_cannot_be_written_through() {
    let fx = Fixture::new();
    std::fs::hard_link(&fx.canary, fx.inbox.join("hard.txt")).unwrap();
    let sandbox = fx.sandbox(&inbox_grant(&fx));
    let path = fx.inbox.join("hard.txt").display().to_string();
    hostile_fails(&sandbox, "write", json!({"path": path, "content": "pwned"}));
    hostile_fails(&sandbox, "truncate", json!({"path": path}));
    hostile_fails(&sandbox, "append", json!({"path": path, "content": "pwned"}));
    fx.assert_canary_intact();
}

#[test]
fn a_guest_cannot_create_a_symlink_that_leads_out_for_the_host() {
    let fx = Fixture::new();
    let sandbox = fx.sandbox(&[]);
    // An absolute target and a relative one that climbs out of output/.
    for (name, target) in [
        ("evil.txt", fx.canary.display().to_string()),
        ("climb.txt", "../../outside/canary.txt".to_owned()),
    ] {
        let link = fx.ws.output_dir().join(name);
        // Creating the link may succeed (WASI allows a dangling link)...
        let _ = crate::common::hostile().call(
            &sandbox,
            "symlink",
            &json!({"path": link.display().to_string(), "to": target}).to_string(),
            None,
        );
        // ...but the guest cannot read through it,
        let msg = hostile_fails(&sandbox, "read", json!({"path": link.display().to_string()}));
        assert!(!msg.contains("secret"), "{msg}");
        // and the host, reading guest output through a capability handle, refuses it too.
        let err = fx.ws.read_output(std::path::Path::new(name)).unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(err.to_string().contains(name), "the error names the file: {err}");
    }
    fx.assert_canary_intact();
}

#[test]
fn read_only_grant_refuses_writes_truncation_renames_and_deletes() {
    let fx = Fixture::new();
    let sandbox = fx.sandbox(&inbox_grant(&fx));
    let note = fx.inbox.join("note.txt").display().to_string();
    let new = fx.inbox.join("new.txt").display().to_string();
    hostile_fails(&sandbox, "write", json!({"path": note, "content": "overwritten"}));
    hostile_fails(&sandbox, "write", json!({"path": new, "content": "created"}));
    hostile_fails(&sandbox, "truncate", json!({"path": note}));
    hostile_fails(&sandbox, "append", json!({"path": note, "content": "more"}));
    hostile_fails(&sandbox, "rename", json!({"path": note, "to": new}));
    hostile_fails(&sandbox, "remove", json!({"path": note}));
    assert_eq!(
        std::fs::read_to_string(fx.inbox.join("note.txt")).unwrap(),
        "hello from the inbox\n"
    );
    assert!(!fx.inbox.join("new.txt").exists());
}

#[test]
fn renames_out_of_the_writable_output_folder_are_refused() {
    let fx = Fixture::new();
    let sandbox = fx.sandbox(&[]);
    let out = fx.ws.output_dir();
    std::fs::write(out.join("report.txt"), "report\n").unwrap();
    let report = out.join("report.txt").display().to_string();
    for to in [
        fx.outside.join("moved.txt").display().to_string(),
        format!("{}/../../outside/moved.txt", out.display()),
        format!("{}/../INSTRUCTIONS.md", out.display()),
    ] {
        hostile_fails(&sandbox, "rename", json!({"path": report, "to": to}));
    }
    // Nor can a file from outside be renamed in.
    hostile_fails(
        &sandbox,
        "rename",
        json!({"path": fx.canary.display().to_string(), "to": out.join("in.txt").display().to_string()}),
    );
    assert_eq!(std::fs::read_to_string(out.join("report.txt")).unwrap(), "report\n");
    assert!(!fx.outside.join("moved.txt").exists() && !out.join("in.txt").exists());
    fx.assert_canary_intact();
}

#[test]
fn fs_writes_only_new_files_under_output() {
    let fx = Fixture::new();
    let out = fs_call(
        &fx,
        "write",
        json!({"path": "output/report.txt", "content": "done"}),
        &[],
    )
    .unwrap();
    assert!(out["path"].as_str().unwrap().ends_with("output/report.txt"));
    assert_eq!(
        std::fs::read_to_string(fx.ws.output_dir().join("report.txt")).unwrap(),
        "done"
    );

    // Never overwrites...
    let err = fs_call(
        &fx,
        "write",
        json!({"path": "output/report.txt", "content": "again"}),
        &[],
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::Call(CallError::Tool(ToolError::AlreadyExists { .. }))),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(fx.ws.output_dir().join("report.txt")).unwrap(),
        "done"
    );
    // ...unless asked to pick a free name.
    let out = fs_call(
        &fx,
        "write",
        json!({"path": "output/report.txt", "content": "again", "unique": true}),
        &[],
    )
    .unwrap();
    assert!(out["path"].as_str().unwrap().ends_with("output/report-1.txt"), "{out}");

    // A read-write grant is read-only inside the sandbox: changes there are
    // proposed and applied by the host, never written by the tool.
    let err = fs_call(
        &fx,
        "write",
        json!({"path": "projects/inbox/x.txt", "content": "x"}),
        &[Grant::read_write(fx.inbox.clone())],
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::Call(CallError::Tool(ToolError::Denied { .. }))),
        "{err}"
    );
    // The message names the file asked for (not a temporary one) and what to do.
    let msg = err.to_string();
    assert!(
        msg.contains("inbox/x.txt") && !msg.contains("deskhand-tmp") && msg.contains("fs save"),
        "{msg}"
    );
    // Writes anywhere else are refused before the tool runs.
    for path in ["INSTRUCTIONS.md", "output", ".deskhand/journal.db"] {
        let err = fs_call(
            &fx,
            "write",
            json!({"path": path, "content": "x"}),
            &[Grant::read_write(fx.inbox.clone())],
        )
        .unwrap_err();
        assert!(matches!(err, Error::WriteOutsideOutput { .. }), "{path}: {err}");
    }
    let err = fs_call(
        &fx,
        "write",
        json!({"path": fx.canary.display().to_string(), "content": "x"}),
        &[],
    )
    .unwrap_err();
    assert!(matches!(err, Error::WriteOutsideOutput { .. }), "{err}");
    assert!(!fx.inbox.join("x.txt").exists());
    fx.assert_canary_intact();
    // No temp files are left behind.
    let names: Vec<_> = std::fs::read_dir(fx.ws.output_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.contains("deskhand-tmp")), "{names:?}");
}

#[test]
fn the_workspace_and_any_folder_holding_it_cannot_be_granted() {
    let fx = Fixture::new();
    let err = fx
        .ws
        .sandbox(&[Grant::read_write(fx.ws.root())], Limits::default())
        .unwrap_err();
    assert!(matches!(err, Error::GrantTooWide { .. }), "{err}");
    // Read-only too: through it a tool would read the journal and other runs' files.
    let err = fx
        .ws
        .sandbox(&[Grant::read_only(fx.ws.root().parent().unwrap())], Limits::default())
        .unwrap_err();
    assert!(matches!(err, Error::GrantTooWide { .. }), "{err}");
}

#[test]
fn network_is_denied() {
    let fx = Fixture::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let msg = hostile_fails(&fx.sandbox(&[]), "connect", json!({"path": addr}));
    assert!(!msg.is_empty());
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "the guest reached the host's listener");
}

#[test]
fn the_guest_has_no_environment() {
    let fx = Fixture::new();
    std::hint::black_box(std::env::var_os("HOME"));
    let report = crate::common::hostile().call(&fx.sandbox(&[]), "env", "{}", None);
    assert_eq!(report.result.unwrap().text, "env=0 args=0");
}

#[test]
fn fs_tool_operations_report_what_they_see() {
    let fx = Fixture::new();
    let g = inbox_grant(&fx);
    let stat = fs_call(&fx, "stat", json!({"path": "projects/inbox/note.txt"}), &g).unwrap();
    assert_eq!(stat["kind"], "file");
    assert_eq!(stat["size"], 21);
    let hash = fs_call(&fx, "hash", json!({"path": "projects/inbox/note.txt"}), &g).unwrap();
    assert_eq!(
        hash["sha256"],
        "14b2d922497211bf24f3247de98aee049fcc7dbf7d2204349304f8cc3755ac92"
    );
    std::fs::create_dir(fx.inbox.join("sub")).unwrap();
    std::fs::write(fx.inbox.join("sub/a.csv"), "a\n").unwrap();
    std::fs::write(fx.inbox.join("b.csv"), "b\n").unwrap();
    let found = fs_call(
        &fx,
        "find",
        json!({"path": "projects/inbox", "pattern": "**/*.csv"}),
        &g,
    )
    .unwrap();
    let mut names: Vec<_> = found["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["path"].as_str().unwrap().rsplit('/').next().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["a.csv", "b.csv"]);
    let listed = fs_call(
        &fx,
        "list",
        json!({"path": "projects/inbox", "recursive": true, "limit": 2}),
        &g,
    )
    .unwrap();
    assert_eq!(listed["entries"].as_array().unwrap().len(), 2);
    assert_eq!(listed["truncated"], true);
    let read = fs_call(
        &fx,
        "read_text",
        json!({"path": "projects/inbox/note.txt", "max_bytes": 5}),
        &g,
    )
    .unwrap();
    assert_eq!(read["text"], "hello");
    assert_eq!(read["truncated"], true);
}

#[test]
fn bad_arguments_get_typed_errors() {
    let fx = Fixture::new();
    let g = inbox_grant(&fx);
    let err = fs_call(&fx, "stat", json!({"path": "projects/inbox/note.txt", "bogus": 1}), &g).unwrap_err();
    assert!(
        matches!(err, Error::Call(CallError::Tool(ToolError::InvalidArgs { .. }))),
        "{err}"
    );
    let err = fs_call(&fx, "stat", json!({"path": 7}), &g).unwrap_err();
    assert!(matches!(err, Error::InvalidArgs(_)), "{err}");
    let err = fs_call(&fx, "frobnicate", json!({}), &g).unwrap_err();
    assert!(matches!(err, Error::UnknownOperation { .. }), "{err}");
    assert!(
        err.to_string().contains("read_text"),
        "lists the real operations: {err}"
    );
    let err = fs_call(&fx, "stat", json!({"path": "projects/inbox/nope.txt"}), &g).unwrap_err();
    assert!(
        matches!(err, Error::Call(CallError::Tool(ToolError::NotFound { .. }))),
        "{err}"
    );
    std::fs::write(fx.inbox.join("bin.dat"), [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let err = fs_call(&fx, "read_text", json!({"path": "projects/inbox/bin.dat"}), &g).unwrap_err();
    assert!(
        matches!(err, Error::Call(CallError::Tool(ToolError::BadContent { .. }))),
        "{err}"
    );
}

#[test]
fn staged_content_is_taken_only_from_the_calls_own_scratch_folder() {
    let fx = Fixture::new();
    let prepared = deskhand_runtime::call::prepare(
        &fx.ws,
        toolbox(),
        "fs",
        "stat",
        &json!({"path": "projects/inbox/note.txt"}),
        &fx.ws.policy(&inbox_grant(&fx)).unwrap(),
        Limits::default(),
        &[],
    )
    .unwrap();
    let scratch = prepared.sandbox.scratch.clone().unwrap();
    assert!(scratch.is_dir() && scratch.starts_with(fx.ws.root().join(".deskhand/scratch")));
    assert_eq!(
        prepared.staged("/.deskhand-scratch/new.txt").unwrap(),
        scratch.join("new.txt")
    );
    for bad in [
        "/.deskhand-scratch/../journal.db",
        "/.deskhand-scratch/",
        "/etc/passwd",
        "/.deskhand-scratchy/x",
    ] {
        assert!(prepared.staged(bad).is_err(), "{bad}");
    }
    // A delivered file's content is exactly what the comparison of the
    // call's output/ named; a path that climbs out of it is refused.
    let stage = prepared.stage.as_ref().unwrap().dir.clone();
    let climbing = format!("{}/../../../../outside/canary.txt", stage.display());
    let delivered = [deskhand_types::ProposedChange::Create {
        path: fx.ws.output_dir().join("x.txt").display().to_string(),
        staged: stage.join("x.txt").display().to_string(),
    }];
    assert!(deskhand_runtime::call::PreparedCall::delivered_source(&delivered, &climbing).is_err());
    assert!(prepared.staged(&climbing).is_err());
    // A guest can write its scratch folder, and only while its call lasts.
    let report = crate::common::hostile().call(
        &prepared.sandbox,
        "write",
        &json!({"path": "/.deskhand-scratch/staged.txt", "content": "new content"}).to_string(),
        None,
    );
    assert!(report.result.is_ok());
    assert_eq!(
        std::fs::read_to_string(scratch.join("staged.txt")).unwrap(),
        "new content"
    );
    // A link the guest plants in its scratch folder, relative so that WASI
    // lets it be made, must not lead the host out when it takes the content.
    for (link, target, staged) in [
        // ws/.deskhand/scratch/call-*/scratch/: five levels below the fixture's folder.
        ("d", "../../../../../outside", "/.deskhand-scratch/d/canary.txt"),
        ("l.txt", "../../../../../outside/canary.txt", "/.deskhand-scratch/l.txt"),
    ] {
        let made = crate::common::hostile().call(
            &prepared.sandbox,
            "symlink",
            &json!({"path": format!("/.deskhand-scratch/{link}"), "to": target}).to_string(),
            None,
        );
        assert!(made.result.is_ok(), "the guest can plant {link}");
        assert!(std::fs::read_to_string(scratch.join(staged.trim_start_matches("/.deskhand-scratch/"))).is_ok());
        let err = prepared.staged(staged).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let proposed = [deskhand_types::ProposedChange::Create {
            path: fx.ws.output_dir().join("stolen.txt").display().to_string(),
            staged: staged.into(),
        }];
        let roots = [fx.ws.output_dir().canonicalize().unwrap()];
        let refused = deskhand_runtime::changeset::propose(&proposed, &roots, &|s| prepared.staged(s));
        assert!(refused.is_err(), "a changeset from {staged} is refused");
    }
    assert!(!fx.ws.output_dir().join("stolen.txt").exists());
    fx.assert_canary_intact();
    drop(prepared);
    assert!(!scratch.exists(), "the scratch folder goes with the call");
}
