//! `deskhand skills`: a skill that came with the workspace is listed and
//! shown, but does not run until the person trusts it, and not again once
//! what it runs changes.

use std::path::Path;

use super::{assert_ok, assert_user_error, deskhand, stderr, stdout};

const SKILL: &str = "---\nname: widget-census\ndescription: Count the widgets of a folder into a CSV.\n\
license: MIT\nmetadata:\n  deskhand-entry: inventory.run\n  deskhand-keywords: widget census\n  \
deskhand-params: folder, output\n  deskhand-param-folder: path, required, The folder\n  \
deskhand-param-output: path, default=output/census.csv, Where to write\n---\nCounts widgets.\n";

fn census(cwd: &Path) -> std::process::Output {
    deskhand(
        &[
            "run",
            "widget census of projects",
            "--workspace",
            "ws",
            "--grant",
            "projects",
            "--mode",
            "act",
        ],
        cwd,
    )
}

#[test]
fn a_workspace_skill_runs_only_once_trusted_and_not_after_it_changed() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    let dir = tmp.path().join("ws/.agents/skills/widget-census");
    std::fs::create_dir_all(dir.join("references")).unwrap();
    std::fs::write(dir.join("SKILL.md"), SKILL).unwrap();
    std::fs::write(dir.join("references/widgets.md"), "# Widgets\n").unwrap();
    std::fs::write(tmp.path().join("ws/projects/a-widget.txt"), "w").unwrap();

    let list = deskhand(&["skills", "list", "--workspace", "ws"], tmp.path());
    assert_ok(&list);
    let text = stdout(&list);
    assert!(
        text.contains("widget-census") && text.contains("not run: it came with the workspace"),
        "{text}"
    );
    assert!(
        text.contains("folder-inventory"),
        "the bundled skills are listed: {text}"
    );

    let show = deskhand(&["skills", "show", "widget-census", "--workspace", "ws"], tmp.path());
    assert_ok(&show);
    let text = stdout(&show);
    for expected in [
        "runs: deskhand's inventory tool (inventory.run), sandboxed",
        "folder (a folder or file, required): The folder",
        "licence: MIT",
        "references/: widgets.md",
        "Not run:",
    ] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }

    // Untrusted, the task finds no skill of its words and nothing is written.
    let run = census(tmp.path());
    assert!(!run.status.success(), "{}", stdout(&run));
    assert!(!tmp.path().join("ws/output/census.csv").exists());

    // Without a terminal and without --yes, it is shown and nothing is trusted.
    let refused = deskhand(&["skills", "trust", "--workspace", "ws"], tmp.path());
    assert_eq!(refused.status.code(), Some(2));
    assert!(stdout(&refused).contains("runs: deskhand's inventory tool"));
    assert!(stderr(&refused).contains("nothing was trusted"), "{}", stderr(&refused));
    let trust = deskhand(
        &["skills", "trust", "widget-census", "--workspace", "ws", "--yes"],
        tmp.path(),
    );
    assert_ok(&trust);
    assert!(
        stdout(&trust).contains("runs: deskhand's inventory tool"),
        "{}",
        stdout(&trust)
    );
    assert_ok(&census(tmp.path()));
    let csv = std::fs::read_to_string(tmp.path().join("ws/output/census.csv")).unwrap();
    assert!(csv.contains("a-widget.txt"), "{csv}");

    // What it runs changed: not run until trusted again.
    std::fs::write(dir.join("SKILL.md"), SKILL.replace("inventory.run", "fs.list")).unwrap();
    let list = stdout(&deskhand(&["skills", "list", "--workspace", "ws"], tmp.path()));
    assert!(list.contains("not run: it changed since you trusted it"), "{list}");
    std::fs::remove_file(tmp.path().join("ws/output/census.csv")).unwrap();
    assert!(!census(tmp.path()).status.success());
    assert!(!tmp.path().join("ws/output/census.csv").exists());

    assert_user_error(
        &deskhand(&["skills", "show", "nope", "--workspace", "ws"], tmp.path()),
        "no skill named \"nope\"",
    );
}

#[test]
fn a_plugin_is_shown_installed_and_its_slash_command_starts_a_task() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    std::fs::create_dir_all(tmp.path().join("ws/context/team")).unwrap();
    std::fs::write(
        tmp.path().join("ws/context/team/standup.md"),
        "# Standup\n\nShipped the importer.\n",
    )
    .unwrap();
    let kit = tmp.path().join("team-kit");
    std::fs::create_dir_all(kit.join("commands")).unwrap();
    std::fs::create_dir_all(kit.join("skills/team-inventory")).unwrap();
    std::fs::write(
        kit.join("plugin.json"),
        r#"{"name": "team-kit", "version": "1.2.0", "description": "The team's weekly routines"}"#,
    )
    .unwrap();
    std::fs::write(
        kit.join("commands/team-digest.md"),
        "---\ndescription: A digest of a folder's notes\nargument-hint: FOLDER\n---\nRound up every note in $1\n",
    )
    .unwrap();
    std::fs::write(
        kit.join("skills/team-inventory/SKILL.md"),
        "---\nname: team-inventory\ndescription: List the team's files into a CSV.\nmetadata:\n  \
         deskhand-entry: inventory.run\n  deskhand-keywords: team inventory\n---\nbody\n",
    )
    .unwrap();

    std::fs::write(
        kit.join(".mcp.json"),
        r#"{"mcpServers": {"team-calendar": {"command": "npx", "args": ["-y", "cal-server"],
            "env": {"CAL_TOKEN": "secret-value"}}}}"#,
    )
    .unwrap();

    let refused = deskhand(&["plugins", "install", "team-kit"], tmp.path());
    assert_eq!(refused.status.code(), Some(2));
    let shown = stdout(&refused);
    assert!(
        shown.contains("connector team-calendar: runs npx -y cal-server with the variables CAL_TOKEN"),
        "{shown}"
    );
    assert!(!shown.contains("secret-value"), "{shown}");
    assert!(
        shown.contains("command /team-digest FOLDER: A digest of a folder's notes"),
        "{shown}"
    );
    assert!(
        shown.contains("runs: deskhand's inventory tool (inventory.run), sandboxed"),
        "{shown}"
    );
    assert!(stderr(&refused).contains("not installed"));

    // A connector of that name in the person's list refuses the whole plugin, writing nothing.
    assert_ok(&deskhand(&["connectors", "import", "team-kit/.mcp.json"], tmp.path()));
    let clash = deskhand(&["plugins", "install", "team-kit", "--yes"], tmp.path());
    assert_eq!(clash.status.code(), Some(2));
    assert!(
        stderr(&clash).contains("already have one named team-calendar"),
        "{}",
        stderr(&clash)
    );
    assert_user_error(
        &deskhand(&["plugins", "show", "team-kit"], tmp.path()),
        "no plugin named",
    );
    assert_ok(&deskhand(&["connectors", "remove", "team-calendar"], tmp.path()));

    let installed = deskhand(&["plugins", "install", "team-kit", "--yes"], tmp.path());
    assert_ok(&installed);
    assert!(
        stdout(&installed).contains("deskhand connectors approve team-calendar"),
        "{}",
        stdout(&installed)
    );
    // Listed as the person's, with no tool approved: never started in a run.
    let connectors = stdout(&deskhand(&["connectors", "show", "team-calendar"], tmp.path()));
    assert!(connectors.contains("cal-server"), "{connectors}");
    let list = stdout(&deskhand(&["plugins", "list"], tmp.path()));
    assert!(list.contains("team-kit") && list.contains("/team-digest"), "{list}");
    let skills = stdout(&deskhand(&["skills", "list", "--workspace", "ws"], tmp.path()));
    assert!(skills.contains("team-inventory"), "{skills}");

    let run = deskhand(
        &[
            "run",
            "/team-digest context/team",
            "--workspace",
            "ws",
            "--grant",
            "context",
            "--mode",
            "act",
        ],
        tmp.path(),
    );
    assert_ok(&run);
    let made: Vec<String> = std::fs::read_dir(tmp.path().join("ws/output"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        made.iter().any(|n| n.ends_with(".docx")),
        "the digest skill ran: {made:?}\n{}",
        stdout(&run)
    );

    assert_ok(&deskhand(&["plugins", "remove", "team-kit"], tmp.path()));
    assert_user_error(
        &deskhand(&["connectors", "show", "team-calendar"], tmp.path()),
        "team-calendar",
    );
    let skills = stdout(&deskhand(&["skills", "list", "--workspace", "ws"], tmp.path()));
    assert!(!skills.contains("team-inventory"), "{skills}");
    assert_user_error(
        &deskhand(&["plugins", "show", "team-kit"], tmp.path()),
        "no plugin named",
    );
}

/// A zip of a skill, as people share them: one folder holding it all, and
/// two entries a hostile archive would add (a name leaving the folder, a link).
const MAKE_SKILL_ZIP: &str = r##"
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1], "w")
z.writestr("shared-notes/SKILL.md", "---\nname: shared-notes\ndescription: Notes from a colleague.\n---\nRead the notes.\n")
z.writestr("shared-notes/references/style.md", "# Style\n")
z.writestr("shared-notes/../../escaped.txt", "escaped")
link = zipfile.ZipInfo("shared-notes/link")
link.external_attr = (0o120777 << 16)
z.writestr(link, "/etc/passwd")
z.close()
"##;

#[test]
fn a_shared_skill_archive_is_unpacked_in_the_sandbox_shown_and_installed() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    let zip = tmp.path().join("shared-notes.zip");
    let made = std::process::Command::new("python3")
        .args(["-c", MAKE_SKILL_ZIP])
        .arg(&zip)
        .status()
        .unwrap();
    assert!(made.success());

    let refused = deskhand(
        &["skills", "install", zip.to_str().unwrap(), "--workspace", "ws"],
        tmp.path(),
    );
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stdout(&refused).contains("Notes from a colleague"),
        "{}",
        stdout(&refused)
    );
    assert!(
        stdout(&refused).contains("references/: style.md"),
        "{}",
        stdout(&refused)
    );

    let url = format!("file://{}", zip.display());
    let o = deskhand(&["skills", "install", &url, "--workspace", "ws", "--yes"], tmp.path());
    assert_ok(&o);
    let installed = tmp.path().join(".test-config/deskhand/skills/shared-notes");
    assert!(installed.join("SKILL.md").is_file() && installed.join("references/style.md").is_file());
    assert!(!installed.join("link").exists(), "a link in the archive is left out");
    for dir in [tmp.path().to_path_buf(), tmp.path().join("ws"), installed.clone()] {
        assert!(!dir.join("escaped.txt").exists(), "{}", dir.display());
    }
    assert!(stdout(&deskhand(&["skills", "list", "--workspace", "ws"], tmp.path())).contains("shared-notes"));

    assert_user_error(
        &deskhand(
            &[
                "skills",
                "install",
                "https://example.com/s.zip",
                "--workspace",
                "ws",
                "--yes",
            ],
            tmp.path(),
        ),
        "only a local archive can be installed",
    );
    std::fs::write(tmp.path().join("not.zip"), "not a zip").unwrap();
    assert_user_error(
        &deskhand(
            &["skills", "install", "not.zip", "--workspace", "ws", "--yes"],
            tmp.path(),
        ),
        "is not a zip archive",
    );
}

#[test]
fn skill_create_shows_the_replays_values_beside_the_runs_and_installs_on_yes() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    let receipts = tmp.path().join("ws/projects/receipts");
    std::fs::create_dir_all(&receipts).unwrap();
    std::fs::write(receipts.join("bakery.txt"), "Bakery Sol\n2026-04-02\nTotal 3.20 EUR\n").unwrap();
    std::fs::write(
        receipts.join("books.txt"),
        "Livraria Bertrand\n2026-04-09\nTotal 18.50 EUR\n",
    )
    .unwrap();
    let run = deskhand(
        &[
            "run",
            "Turn the receipts in projects/receipts into an expense spreadsheet",
            "--workspace",
            "ws",
            "--grant",
            "projects",
            "--mode",
            "act",
        ],
        tmp.path(),
    );
    assert_ok(&run);
    let text = stdout(&run);
    let id = text
        .split_whitespace()
        .find(|w| w.starts_with("run-"))
        .unwrap_or_else(|| panic!("no run id in {text}"))
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    let create = deskhand(
        &[
            "skill",
            "create",
            "--from",
            id,
            "--workspace",
            "ws",
            "--name",
            "team-expenses",
            "--yes",
        ],
        tmp.path(),
    );
    assert_ok(&create);
    let text = stdout(&create);
    for expected in [
        "output/expenses.xlsx: the same values as the run",
        "output/expenses-summary.pdf: the same values as the run",
        "Installed team-expenses",
    ] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }
    let evals = std::fs::read_to_string(
        tmp.path()
            .join(".test-config/deskhand/skills/team-expenses/evals/evals.json"),
    )
    .unwrap();
    // One row per receipt read, and the totals LibreOffice must recompute.
    assert!(
        evals.contains("\"rows_per_file\"") && evals.contains("\"totals\""),
        "{evals}"
    );
}
