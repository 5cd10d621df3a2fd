//! Changesets against real folders: the guard rails refuse before anything
//! moves, apply is all or nothing (also when killed), undo restores byte for
//! byte and refuses to lose later edits, deletions go to the trash.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use deskhand_runtime::changeset::{self, ApplyOptions, ChangeError, Changeset};
use deskhand_runtime::workspace::Workspace;
use deskhand_types::{ChangesetStatus, ProposedChange, RunId};

/// A folder's entries, recursively: relative path -> file bytes (or `None` for a folder).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if path.is_dir() {
                out.insert(rel, None);
                walk(root, &path, out);
            } else {
                out.insert(rel, Some(std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

struct Folder {
    _tmp: tempfile::TempDir,
    ws: Workspace,
    run: RunId,
    root: PathBuf,
    scratch: PathBuf,
}

impl Folder {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let (ws, _) = Workspace::init(&tmp.path().join("ws")).unwrap();
        let root = ws.root().join("projects/papers");
        std::fs::create_dir_all(root.join("2023")).unwrap();
        std::fs::write(root.join("scan 03.01.2024.pdf"), b"%PDF-1.4 scan").unwrap();
        std::fs::write(root.join("notes.txt"), b"keep these notes\n").unwrap();
        std::fs::write(root.join("draft.md"), b"# Draft v1\n").unwrap();
        std::fs::write(root.join("2023/old.csv"), b"a,b\n1,2\n").unwrap();
        let scratch = tmp.path().join("scratch");
        std::fs::create_dir(&scratch).unwrap();
        let run = ws.journal().begin_task("test changes", &[]).unwrap();
        Folder {
            _tmp: tmp,
            ws,
            run,
            root,
            scratch,
        }
    }

    fn p(&self, rel: &str) -> String {
        self.root.join(rel).display().to_string()
    }

    /// Stages `content` as a tool would, returning its guest-visible name.
    fn stage(&self, name: &str, content: &[u8]) -> String {
        std::fs::write(self.scratch.join(name), content).unwrap();
        format!("/scratch/{name}")
    }

    fn propose(&self, changes: Vec<ProposedChange>) -> Result<Changeset, ChangeError> {
        let scratch = self.scratch.clone();
        changeset::propose(&changes, std::slice::from_ref(&self.root), &move |guest| {
            Ok(scratch.join(guest.trim_start_matches("/scratch/")))
        })
    }

    fn apply(&self, cs: &Changeset) -> Result<changeset::Applied, ChangeError> {
        changeset::apply(
            &self.ws,
            &self.run,
            deskhand_types::StepNo(1),
            "call-1",
            cs,
            "the test",
            ApplyOptions::default(),
        )
    }
}

fn rename(source: String, target: String) -> ProposedChange {
    ProposedChange::Rename { source, target }
}

#[test]
fn guard_rails_refuse_before_anything_moves() {
    let f = Folder::new();
    let before = snapshot(&f.root);
    let outside = f.ws.root().join("context/x.txt").display().to_string();
    let staged = f.stage("new.txt", b"new");
    std::os::unix::fs::symlink(f.root.join("notes.txt"), f.root.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(f.root.join("2023"), f.root.join("linked-dir")).unwrap();
    let cases: Vec<(Vec<ProposedChange>, &str)> = vec![
        (vec![rename(f.p("notes.txt"), f.p("../escape.txt"))], "`..`"),
        (
            vec![rename(f.p("notes.txt"), "relative.txt".into())],
            "starting with `/`",
        ),
        (
            vec![rename(f.p("notes.txt"), outside.clone())],
            "not inside a folder granted read-write",
        ),
        (
            vec![ProposedChange::Delete {
                path: "/etc/passwd".into(),
            }],
            "not inside",
        ),
        (vec![ProposedChange::Delete { path: f.p("link.txt") }], "symlink"),
        (
            vec![rename(f.p("linked-dir/old.csv"), f.p("linked-dir/new.csv"))],
            "symlink",
        ),
        (vec![rename(f.p("notes.txt"), f.p("draft.md"))], "already exists"),
        (
            vec![rename(f.p("notes.txt"), f.p("DRAFT.md"))],
            "differ only in letter case",
        ),
        (
            vec![
                rename(f.p("notes.txt"), f.p("a.txt")),
                rename(f.p("draft.md"), f.p("A.txt")),
            ],
            "differ only in letter case",
        ),
        (
            vec![
                rename(f.p("notes.txt"), f.p("same.txt")),
                rename(f.p("draft.md"), f.p("same.txt")),
            ],
            "touched twice",
        ),
        (vec![rename(f.p("notes.txt"), f.p("what?.txt"))], "Windows"),
        (vec![rename(f.p("notes.txt"), f.p("CON.txt"))], "device name"),
        (vec![rename(f.p("notes.txt"), f.p("trailing."))], "ends with a dot"),
        (vec![rename(f.p("notes.txt"), f.p("a:b.txt"))], "macOS"),
        (vec![rename(f.p("missing.txt"), f.p("x.txt"))], "does not exist"),
        (vec![rename(f.p("notes.txt"), f.p("2023/notes.txt"))], "propose a move"),
        (
            vec![ProposedChange::Create {
                path: f.p("notes.txt"),
                staged: staged.clone(),
            }],
            "already exists",
        ),
        (
            vec![ProposedChange::Overwrite {
                path: f.p("nofolder/x.txt"),
                staged: staged.clone(),
            }],
            "create the folder first",
        ),
        (
            vec![ProposedChange::Overwrite {
                path: f.p("2023"),
                staged: staged.clone(),
            }],
            "is a folder",
        ),
        (
            vec![
                ProposedChange::Delete { path: f.p("notes.txt") },
                rename(f.p("notes.txt"), f.p("n.txt")),
            ],
            "touched twice",
        ),
        (
            vec![
                rename(f.p("2023"), f.p("2023-archive")),
                ProposedChange::Delete {
                    path: f.p("2023/old.csv"),
                },
            ],
            "inside",
        ),
    ];
    for (changes, expected) in cases {
        let err = f
            .propose(changes.clone())
            .expect_err(&format!("{changes:?} was accepted"));
        assert!(err.to_string().contains(expected), "{changes:?}: {err}");
        assert!(err.is_user_error(), "{err}");
    }
    std::fs::remove_file(f.root.join("link.txt")).unwrap();
    std::fs::remove_file(f.root.join("linked-dir")).unwrap();
    assert_eq!(snapshot(&f.root), before);
}

#[test]
fn case_only_rename_is_allowed() {
    let f = Folder::new();
    let cs = f.propose(vec![rename(f.p("notes.txt"), f.p("Notes.txt"))]).unwrap();
    f.apply(&cs).unwrap();
    assert!(f.root.join("Notes.txt").is_file());
}

#[test]
fn undo_after_rename_overwrite_delete_and_create_restores_byte_for_byte() {
    let f = Folder::new();
    let before = snapshot(&f.root);
    let v2 = f.stage("draft-v2.md", b"# Draft v2, rewritten\n");
    let summary = f.stage("summary.txt", b"three files changed\n");
    let cs = f
        .propose(vec![
            rename(f.p("scan 03.01.2024.pdf"), f.p("2024-01-03 scan.pdf")),
            rename(f.p("2023"), f.p("2023-archive")),
            ProposedChange::Overwrite {
                path: f.p("draft.md"),
                staged: v2,
            },
            ProposedChange::Delete { path: f.p("notes.txt") },
            ProposedChange::Create {
                path: f.p("summary.txt"),
                staged: summary,
            },
        ])
        .unwrap();
    assert_eq!(cs.deletions(), 1);
    let shown = cs.render();
    assert!(
        shown.contains("before") && shown.contains("2024-01-03 scan.pdf"),
        "{shown}"
    );
    assert!(shown.contains("!! DELETE") && shown.contains("notes.txt"), "{shown}");
    let applied = f.apply(&cs).unwrap();
    assert_eq!(applied.count, 5);

    assert_eq!(
        std::fs::read(f.root.join("draft.md")).unwrap(),
        b"# Draft v2, rewritten\n"
    );
    assert!(f.root.join("2024-01-03 scan.pdf").is_file());
    assert!(f.root.join("2023-archive/old.csv").is_file());
    assert!(!f.root.join("notes.txt").exists());
    let trash = changeset::trash_list(&f.ws).unwrap();
    assert_eq!(trash.len(), 1);
    assert_eq!(std::fs::read(&trash[0].stored).unwrap(), b"keep these notes\n");
    let no_temp = snapshot(&f.root)
        .keys()
        .all(|k| !k.to_string_lossy().contains(".deskhand-"));
    assert!(no_temp, "a temporary file was left behind");

    let report = changeset::undo(&f.ws, &f.run, false).unwrap();
    assert_eq!(report.restored, 5);
    assert_eq!(snapshot(&f.root), before);
    assert!(
        changeset::trash_list(&f.ws)
            .unwrap()
            .iter()
            .all(|t| t.reason.contains("created"))
    );
    let statuses = changeset::changes_of(&f.ws, &f.run).unwrap();
    assert_eq!(statuses[0].1, ChangesetStatus::Undone);
    let again = changeset::undo(&f.ws, &f.run, false).unwrap_err();
    assert!(again.to_string().contains("already been undone"), "{again}");
}

#[test]
fn a_failure_half_way_rolls_back_what_was_applied() {
    let f = Folder::new();
    let before = snapshot(&f.root);
    let v2 = f.stage("v2", b"v2");
    let cs = f
        .propose(vec![
            rename(f.p("scan 03.01.2024.pdf"), f.p("renamed.pdf")),
            ProposedChange::Overwrite {
                path: f.p("draft.md"),
                staged: v2,
            },
            ProposedChange::Delete { path: f.p("notes.txt") },
            rename(f.p("2023"), f.p("2023-archive")),
        ])
        .unwrap();
    let err = changeset::apply(
        &f.ws,
        &f.run,
        deskhand_types::StepNo(1),
        "c",
        &cs,
        "test",
        ApplyOptions { fail_before: Some(3) },
    )
    .unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
    assert_eq!(snapshot(&f.root), before);
    assert!(changeset::trash_list(&f.ws).unwrap().is_empty());
    assert_eq!(
        changeset::changes_of(&f.ws, &f.run).unwrap()[0].1,
        ChangesetStatus::RolledBack
    );
}

#[test]
fn a_source_changed_after_the_proposal_is_refused() {
    let f = Folder::new();
    let cs = f
        .propose(vec![ProposedChange::Delete { path: f.p("notes.txt") }])
        .unwrap();
    std::fs::write(f.root.join("notes.txt"), b"edited meanwhile, much longer than before\n").unwrap();
    let err = f.apply(&cs).unwrap_err();
    assert!(err.to_string().contains("changed after the tool looked at it"), "{err}");
    assert!(f.root.join("notes.txt").is_file());
}

#[test]
fn undo_refuses_to_lose_later_edits_unless_forced() {
    let f = Folder::new();
    let v2 = f.stage("v2", b"tool version\n");
    let cs = f
        .propose(vec![
            ProposedChange::Overwrite {
                path: f.p("draft.md"),
                staged: v2,
            },
            rename(f.p("notes.txt"), f.p("notes-2024.txt")),
        ])
        .unwrap();
    f.apply(&cs).unwrap();
    std::fs::write(f.root.join("draft.md"), b"the person edited this afterwards\n").unwrap();
    let untouched = snapshot(&f.root);
    let err = changeset::undo(&f.ws, &f.run, false).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("draft.md was edited after the run overwrote it"),
        "{text}"
    );
    assert!(text.contains("--force"), "{text}");
    assert_eq!(snapshot(&f.root), untouched, "a refused undo changed files");

    let report = changeset::undo(&f.ws, &f.run, true).unwrap();
    assert_eq!(report.trashed, 1);
    assert_eq!(std::fs::read(f.root.join("draft.md")).unwrap(), b"# Draft v1\n");
    assert!(f.root.join("notes.txt").is_file());
    let trash = changeset::trash_list(&f.ws).unwrap();
    assert_eq!(
        std::fs::read(&trash[0].stored).unwrap(),
        b"the person edited this afterwards\n"
    );
}

#[test]
fn trash_restore_and_empty() {
    let f = Folder::new();
    let cs = f
        .propose(vec![
            ProposedChange::Delete { path: f.p("notes.txt") },
            ProposedChange::Delete { path: f.p("draft.md") },
        ])
        .unwrap();
    f.apply(&cs).unwrap();
    let items = changeset::trash_list(&f.ws).unwrap();
    assert_eq!(items.len(), 2);
    let restored = changeset::trash_restore(&f.ws, items[0].id).unwrap();
    assert_eq!(std::fs::read(&restored.original).unwrap(), b"keep these notes\n");
    let missing = changeset::trash_restore(&f.ws, 9999).unwrap_err();
    assert!(missing.to_string().contains("trash list"), "{missing}");

    std::fs::write(f.root.join("draft.md"), b"a new draft").unwrap();
    let blocked = changeset::trash_restore(&f.ws, items[1].id).unwrap_err();
    assert!(blocked.to_string().contains("already exists"), "{blocked}");
    std::fs::remove_file(f.root.join("draft.md")).unwrap();

    let (count, bytes) = changeset::trash_empty(&f.ws).unwrap();
    assert_eq!((count, bytes), (1, 11));
    assert!(changeset::trash_list(&f.ws).unwrap().is_empty());
    // Undo can no longer bring back what was emptied, and says so.
    let err = changeset::undo(&f.ws, &f.run, false).unwrap_err();
    assert!(err.to_string().contains("emptied from the trash"), "{err}");
}

const CRASH_FILES: usize = 500;

/// Run by `a_killed_apply_leaves_every_file_exactly_once` in a child process.
#[test]
#[ignore = "a child process of the crash test"]
fn crash_child() {
    let Ok(dir) = std::env::var("DESKHAND_CRASH_WS") else {
        return;
    };
    let ws = Workspace::open(Path::new(&dir)).unwrap();
    let run = RunId(std::env::var("DESKHAND_CRASH_RUN").unwrap());
    let root = ws.root().join("projects/bulk");
    let changes: Vec<ProposedChange> = (0..CRASH_FILES)
        .map(|i| {
            rename(
                root.join(format!("file {i:03}.txt")).display().to_string(),
                root.join(format!("2024-01-01 file {i:03}.txt")).display().to_string(),
            )
        })
        .collect();
    let cs = changeset::propose(&changes, &[root], &|_| unreachable!()).unwrap();
    println!("applying");
    let started = std::time::Instant::now();
    changeset::apply(
        &ws,
        &run,
        deskhand_types::StepNo(1),
        "crash",
        &cs,
        "test",
        ApplyOptions::default(),
    )
    .unwrap();
    println!("applied in {} us", started.elapsed().as_micros());
}

#[test]
fn a_killed_apply_leaves_every_file_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (ws, _) = Workspace::init(&tmp.path().join("ws")).unwrap();
    let root = ws.root().join("projects/bulk");
    std::fs::create_dir_all(&root).unwrap();
    for i in 0..CRASH_FILES {
        std::fs::write(
            root.join(format!("file {i:03}.txt")),
            format!("receipt {i}\n").repeat(i % 7 + 1),
        )
        .unwrap();
    }
    let original = snapshot(&root);
    let run = ws.journal().begin_task("bulk rename", &[]).unwrap();
    let child = |kill_after: Option<std::time::Duration>| -> String {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "changes::crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DESKHAND_CRASH_WS", ws.root())
        .env("DESKHAND_CRASH_RUN", &run.0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
        let mut proc = cmd.spawn().unwrap();
        let mut out = std::io::BufReader::new(proc.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("applying") {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
        }
        if let Some(delay) = kill_after {
            std::thread::sleep(delay);
            let _ = proc.kill();
        }
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut rest);
        proc.wait().unwrap();
        rest
    };
    // Back to the original names: recovery rolls an interrupted apply back;
    // a finished one is undone.
    let restore = || {
        let ws = Workspace::open(ws.root()).unwrap();
        let recovered = changeset::recover(&ws).unwrap();
        let applied = changeset::changes_of(&ws, &run)
            .unwrap()
            .iter()
            .any(|(_, s, _)| *s == ChangesetStatus::Applied);
        if applied {
            changeset::undo(&ws, &run, false).unwrap();
        }
        assert_eq!(snapshot(&root), original, "files lost, doubled or changed");
        (recovered.rolled_back.len(), applied)
    };

    // Calibrate: how long one whole apply takes here.
    let out = child(None);
    let micros: u64 = out
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("the child did not report: {out}"));
    assert!(restore().1);
    let mut seed = u64::from(std::process::id()) ^ micros.rotate_left(17) | 1;
    let (mut mid_apply, mut finished, mut early) = (0, 0, 0);
    // The kill window follows the apply: it shrinks when children finish
    // first and grows when kills land before the apply started, so the
    // kills spread over the apply even when the machine is busy.
    let mut window = micros * 5 / 4 + 1;
    for _ in 0..200 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = std::time::Duration::from_micros(seed % window);
        child(Some(delay));
        let (rolled_back, applied) = restore();
        mid_apply += rolled_back;
        finished += usize::from(applied);
        if applied {
            window = (window * 9 / 10).max(100);
        } else if rolled_back == 0 {
            early += 1;
            window = window * 11 / 10 + 1;
        }
    }
    println!(
        "200 kills over a {micros} us apply: {mid_apply} mid-apply (rolled back), {finished} after it finished, \
         {early} before its intents were recorded"
    );
    assert!(
        mid_apply >= 40,
        "only {mid_apply} kills landed mid-apply; the test is not testing"
    );
}

#[test]
fn changes_may_create_folders_and_undo_removes_them() {
    let f = Folder::new();
    let before = snapshot(&f.root);
    let report = f.stage("report.txt", b"sorted\n");
    let cs = f
        .propose(vec![
            ProposedChange::Move {
                source: f.p("notes.txt"),
                target: f.p("sorted/2024/notes.txt"),
            },
            ProposedChange::Create {
                path: f.p("sorted/2024/report.txt"),
                staged: report,
            },
        ])
        .unwrap();
    f.apply(&cs).unwrap();
    assert!(f.root.join("sorted/2024/notes.txt").is_file());
    assert!(f.root.join("sorted/2024/report.txt").is_file());
    changeset::undo(&f.ws, &f.run, false).unwrap();
    assert_eq!(snapshot(&f.root), before, "the new folders should be gone too");

    let bad = f
        .propose(vec![ProposedChange::Move {
            source: f.p("notes.txt"),
            target: f.p("bad:name/notes.txt"),
        }])
        .unwrap_err();
    assert!(bad.to_string().contains("not allowed"), "{bad}");
}

/// What deskhand creates is the person's alone whatever the umask; an
/// overwritten file keeps the permissions the person gave it.
#[cfg(unix)]
#[test]
fn new_files_and_the_workspace_are_private_and_an_overwrite_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let f = Folder::new();
    let ws = f.ws.root();
    assert_eq!(mode(ws), 0o700, "the workspace folder deskhand made");
    for sub in ["context", "projects", "output", ".deskhand"] {
        assert_eq!(mode(&ws.join(sub)), 0o700, "{sub}/");
    }
    for file in ["MEMORY.md", ".deskhand/journal.db"] {
        assert_eq!(mode(&ws.join(file)), 0o600, "{file}");
    }
    std::fs::set_permissions(f.root.join("draft.md"), std::fs::Permissions::from_mode(0o640)).unwrap();
    let v2 = f.stage("draft-v2.md", b"# Draft v2\n");
    let summary = f.stage("summary.txt", b"new\n");
    let cs = f
        .propose(vec![
            ProposedChange::Overwrite {
                path: f.p("draft.md"),
                staged: v2,
            },
            ProposedChange::Create {
                path: f.p("summary.txt"),
                staged: summary,
            },
        ])
        .unwrap();
    f.apply(&cs).unwrap();
    assert_eq!(mode(&f.root.join("draft.md")), 0o640);
    assert_eq!(mode(&f.root.join("summary.txt")), 0o600);
}

/// A file deleted, or overwritten, across devices (a granted folder on
/// another disk than the workspace's trash) comes back from undo with the
/// permissions the person gave it, not the 0600 of deskhand's own copies.
#[cfg(unix)]
#[test]
fn undo_across_devices_gives_files_back_their_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let shm = std::path::Path::new("/dev/shm");
    if !shm.is_dir() {
        eprintln!("skipped: no /dev/shm to put a folder on another device");
        return;
    }
    let f = Folder::new();
    let other = tempfile::tempdir_in(shm).unwrap();
    let root = other.path().canonicalize().unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    std::fs::write(root.join("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(root.join("notes.txt"), b"v1\n").unwrap();
    std::fs::set_permissions(root.join("notes.txt"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let v2 = f.stage("notes-v2.txt", b"v2\n");
    let scratch = f.scratch.clone();
    let cs = changeset::propose(
        &[
            ProposedChange::Delete {
                path: root.join("run.sh").display().to_string(),
            },
            ProposedChange::Overwrite {
                path: root.join("notes.txt").display().to_string(),
                staged: v2,
            },
        ],
        std::slice::from_ref(&root),
        &move |guest| Ok(scratch.join(guest.trim_start_matches("/scratch/"))),
    )
    .unwrap();
    f.apply(&cs).unwrap();
    assert!(!root.join("run.sh").exists());
    assert_eq!(mode(&root.join("notes.txt")), 0o644, "an overwrite keeps the mode");
    changeset::undo(&f.ws, &f.run, false).unwrap();
    assert_eq!(
        mode(&root.join("run.sh")),
        0o755,
        "the exec bit survives the trip to the trash"
    );
    assert_eq!(mode(&root.join("notes.txt")), 0o644);
    assert_eq!(std::fs::read(root.join("notes.txt")).unwrap(), b"v1\n");
}
