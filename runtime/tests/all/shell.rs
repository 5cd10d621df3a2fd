//! Native shell steps through real bubblewrap: the command sees only the
//! grants, its changes come back as a changeset, undo restores byte for byte.

use deskhand_host_vm::ShellBackend;
use deskhand_host_vm::bwrap::BwrapBackend;
use deskhand_runtime::agent::{Approval, ApproveAll, ChangesApproval, Gate, StepApproval};
use deskhand_runtime::changeset;
use deskhand_runtime::shell::{ShellChanges, ShellReport, ShellRequest, run_shell};
use deskhand_runtime::workspace::Workspace;
use deskhand_types::{Grant, Mode};

use crate::common::tree as files;

/// The person, approving whatever is shown (deletions included).
struct Person;

impl Gate for Person {
    fn approve_step(&self, _: &str, _: &StepApproval<'_>) -> Approval {
        Approval::Approved {
            by: "the test's person".into(),
        }
    }
    fn approve_changes(&self, _: &str, _: &ChangesApproval<'_>) -> Approval {
        Approval::Approved {
            by: "the test's person".into(),
        }
    }
}

fn backend() -> BwrapBackend {
    let backend = BwrapBackend::new();
    if let Err(problem) = backend.check() {
        panic!("the shell sandbox cannot run here ({problem}); run scripts/setup, which installs bubblewrap");
    }
    backend
}

struct Setup {
    _tmp: tempfile::TempDir,
    ws: Workspace,
    outside: std::path::PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let (ws, _) = Workspace::init(&tmp.path().join("ws")).unwrap();
    let notes = ws.root().join("projects/notes");
    std::fs::create_dir_all(notes.join("old")).unwrap();
    std::fs::write(notes.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(notes.join("b.txt"), "bravo\n").unwrap();
    std::fs::write(notes.join("old/c.txt"), "charlie\n").unwrap();
    std::fs::create_dir_all(ws.root().join("context")).unwrap();
    std::fs::write(ws.root().join("context/ref.txt"), "reference\n").unwrap();
    let outside = tmp.path().join("outside.txt");
    std::fs::write(&outside, "secret\n").unwrap();
    Setup { _tmp: tmp, ws, outside }
}

fn shell(s: &Setup, script: &str, grants: &[Grant], gate: &dyn Gate) -> (ShellReport, String) {
    let mut out = Vec::new();
    let req = ShellRequest {
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        grants,
        mode: Mode::Act,
        limits: deskhand_host_vm::Limits::default(),
        workdir: None,
    };
    let report = run_shell(&s.ws, &backend(), &req, gate, &mut |c| out.extend_from_slice(&c.bytes)).unwrap();
    (report, String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn a_shell_step_that_renames_edits_and_deletes_is_undone_byte_for_byte() {
    let s = setup();
    let notes = s.ws.root().join("projects/notes");
    let before = files(&notes);
    let (report, out) = shell(
        &s,
        "mv a.txt 2026-03-14-a.txt && echo edited >> b.txt && rm old/c.txt && mkdir -p sorted/x && echo new > sorted/x/n.txt",
        &[Grant::parse("projects/notes:rw").unwrap()],
        &Person,
    );
    assert!(report.outcome.as_ref().unwrap().success(), "{out}");
    let ShellChanges::Applied { count, .. } = report.changes else {
        panic!("{:?}", report.changes)
    };
    assert_eq!(count, 4, "{}", report.shown);
    assert!(
        report.shown.contains("->") && report.shown.contains("DELETE"),
        "{}",
        report.shown
    );
    assert_eq!(std::fs::read(notes.join("2026-03-14-a.txt")).unwrap(), b"alpha\n");
    assert_eq!(std::fs::read(notes.join("b.txt")).unwrap(), b"bravo\nedited\n");
    assert!(!notes.join("old/c.txt").exists());
    assert!(notes.join("sorted/x/n.txt").is_file());

    changeset::undo(&s.ws, &report.run, false).unwrap();
    assert_eq!(files(&notes), before);
}

#[test]
fn act_mode_alone_never_deletes() {
    let s = setup();
    let notes = s.ws.root().join("projects/notes");
    let before = files(&notes);
    let (report, _) = shell(
        &s,
        "rm a.txt && echo x > new.txt",
        &[Grant::parse("projects/notes:rw").unwrap()],
        &ApproveAll,
    );
    let ShellChanges::Refused { reason } = &report.changes else {
        panic!("{:?}", report.changes)
    };
    assert!(reason.contains("deletions always need the person"), "{reason}");
    assert_eq!(
        files(&notes),
        before,
        "all or nothing: the create was not applied either"
    );
}

#[test]
fn read_only_grants_and_everything_else_stay_untouched() {
    let s = setup();
    let before = files(s.ws.root());
    let outside = s.outside.display().to_string();
    let (report, out) = shell(
        &s,
        &format!(
            "cat {outside}; echo pwned > a.txt; rm -f b.txt; mv a.txt z.txt; \
             ls {root}/INSTRUCTIONS.md {root}/.deskhand; echo ref: $(cat {root}/context/ref.txt)",
            root = s.ws.root().display()
        ),
        &[Grant::read_only("projects/notes"), Grant::read_only("context")],
        &Person,
    );
    assert!(out.contains("ref: reference"), "{out}");
    assert!(!out.contains("secret"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert_eq!(report.changes, ShellChanges::None);
    let mut after = files(s.ws.root());
    after.retain(|k, _| !k.starts_with(".deskhand") && !k.starts_with("output/ledgers/"));
    let mut before = before;
    before.retain(|k, _| !k.starts_with(".deskhand"));
    assert_eq!(after, before);
    assert_eq!(std::fs::read(&s.outside).unwrap(), b"secret\n");
}

#[test]
fn a_symlink_the_command_plants_is_refused() {
    let s = setup();
    let notes = s.ws.root().join("projects/notes");
    let before = files(&notes);
    let (report, _) = shell(
        &s,
        "ln -s /etc/passwd leak && echo x > new.txt",
        &[Grant::parse("projects/notes:rw").unwrap()],
        &Person,
    );
    let ShellChanges::Refused { reason } = &report.changes else {
        panic!("{:?}", report.changes)
    };
    assert!(reason.contains("symlink"), "{reason}");
    assert_eq!(files(&notes), before);
}

#[test]
fn the_persons_edits_while_a_command_runs_are_not_undone_by_it() {
    // Regression: the folder was listed after the command, so its copy's
    // older content came back as an overwrite of the person's edit.
    let s = setup();
    let notes = s.ws.root().join("projects/notes");
    let edited = notes.join("a.txt");
    let person = std::thread::spawn({
        let edited = edited.clone();
        move || {
            std::thread::sleep(std::time::Duration::from_millis(700));
            std::fs::write(&edited, "alpha, edited by the person\n").unwrap();
        }
    });
    let (report, out) = shell(
        &s,
        "sleep 2; echo more >> b.txt",
        &[Grant::parse("projects/notes:rw").unwrap()],
        &Person,
    );
    person.join().unwrap();
    assert!(report.outcome.as_ref().unwrap().success(), "{out}");
    assert_eq!(
        std::fs::read_to_string(&edited).unwrap(),
        "alpha, edited by the person\n"
    );
    assert_eq!(std::fs::read_to_string(notes.join("b.txt")).unwrap(), "bravo\nmore\n");
}

#[test]
fn a_command_changing_a_file_the_person_edited_meanwhile_changes_nothing() {
    let s = setup();
    let notes = s.ws.root().join("projects/notes");
    let edited = notes.join("a.txt");
    let person = std::thread::spawn({
        let edited = edited.clone();
        move || {
            std::thread::sleep(std::time::Duration::from_millis(700));
            std::fs::write(&edited, "alpha, edited by the person\n").unwrap();
        }
    });
    let (report, out) = shell(
        &s,
        "sleep 2; echo command >> a.txt",
        &[Grant::parse("projects/notes:rw").unwrap()],
        &Person,
    );
    person.join().unwrap();
    let ShellChanges::Refused { reason } = &report.changes else {
        panic!("{:?} {out}", report.changes)
    };
    assert!(reason.contains("changed while the command ran"), "{reason}");
    assert_eq!(
        std::fs::read_to_string(&edited).unwrap(),
        "alpha, edited by the person\n"
    );
}
