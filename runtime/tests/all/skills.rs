//! Skills end to end: the bundled skills' eval phrasings and the tasks they
//! must not match, then their entry points run through the real sandbox.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use deskhand_runtime::Error;
use deskhand_runtime::skills::{Entry, Match, MatchContext, Skill, bundled, match_task, match_task_on, period};
use deskhand_runtime::tools::{CallRequest, CallResult, Observer, run_call};
use deskhand_runtime::wasm::Limits;
use deskhand_types::{Event, Grant};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::common::{Fixture, toolbox};

#[derive(Deserialize)]
struct Evals {
    skill_name: String,
    workspace_root: PathBuf,
    workspace_folders: Vec<PathBuf>,
    /// The day relative periods ("last week") are counted from.
    today: Option<String>,
    evals: Vec<Eval>,
}

#[derive(Deserialize)]
struct Eval {
    prompt: String,
    params: BTreeMap<String, String>,
    targets: Option<Vec<String>>,
    #[serde(default)]
    missing: Vec<String>,
}

fn skills_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../skills")
}

fn load_evals(skill: &str) -> Evals {
    let path = skills_dir().join(skill).join("evals/evals.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Runs one skill's eval file; returns how many phrasings it checked.
fn check_evals(skill: &str) -> usize {
    let evals = load_evals(skill);
    assert_eq!(evals.skill_name, skill);
    let skills = bundled();
    let today = period::parse_day(evals.today.as_deref().unwrap_or("2026-04-15")).unwrap();
    let ctx = MatchContext {
        workspace_root: evals.workspace_root,
        folders: evals.workspace_folders,
        writable: Vec::new(),
    };
    for eval in &evals.evals {
        let prompt = &eval.prompt;
        let Match::Matched {
            skill: index,
            params,
            missing,
            targets,
            ..
        } = match_task_on(prompt, &skills, &ctx, today)
        else {
            panic!("{prompt:?} must match {skill}");
        };
        assert_eq!(skills[index].name, skill, "{prompt:?}");
        for (name, expected) in &eval.params {
            assert_eq!(
                params.get(name),
                Some(expected),
                "{prompt:?}: param {name} in {params:?}"
            );
        }
        if let Some(expected) = &eval.targets {
            assert_eq!(&targets, expected, "{prompt:?}: targets");
        }
        let missing: Vec<String> = missing.into_iter().map(|p| p.name).collect();
        assert_eq!(missing, eval.missing, "{prompt:?}: missing");
    }
    evals.evals.len()
}

#[test]
fn folder_inventory_evals_match() {
    assert!(check_evals("folder-inventory") >= 8);
}

#[test]
fn rename_by_date_evals_match() {
    assert!(check_evals("rename-by-date") >= 8);
}

#[test]
fn receipts_to_spreadsheet_evals_match() {
    assert!(check_evals("receipts-to-spreadsheet") >= 5);
}

#[test]
fn merge_pdfs_evals_match() {
    assert!(check_evals("merge-pdfs") >= 8);
}

#[test]
fn pdf_to_text_evals_match() {
    assert!(check_evals("pdf-to-text") >= 8);
}

#[test]
fn csv_to_xlsx_evals_match() {
    assert!(check_evals("csv-to-xlsx") >= 8);
}

#[test]
fn xlsx_to_csv_evals_match() {
    assert!(check_evals("xlsx-to-csv") >= 8);
}

#[test]
fn split_pdf_evals_match() {
    assert!(check_evals("split-pdf") >= 8);
}

#[test]
fn sort_into_folders_evals_match() {
    assert!(check_evals("sort-into-folders") >= 8);
}

#[test]
fn find_duplicates_evals_match() {
    assert!(check_evals("find-duplicates") >= 8);
}

#[test]
fn notes_digest_evals_match() {
    assert!(check_evals("notes-digest") >= 8);
}

#[test]
fn combine_workbooks_evals_match() {
    assert!(check_evals("combine-workbooks") >= 8);
}

#[test]
fn convert_to_pdf_evals_match() {
    assert!(check_evals("convert-to-pdf") >= 8);
}

#[test]
fn fill_template_evals_match() {
    assert!(check_evals("fill-template") >= 8);
}

#[test]
fn unrelated_tasks_match_no_skill() {
    let evals = load_evals("folder-inventory");
    let ctx = MatchContext {
        workspace_root: evals.workspace_root,
        folders: evals.workspace_folders,
        writable: Vec::new(),
    };
    let skills = bundled();
    let tasks = [
        "write a poem about spring",
        "delete all my files",
        "what's the weather",
        "summarize this pdf",
        "make a CSV of my contacts",
        "rename the files to lowercase",
        "translate the contract in context into German",
        "email the receipts to my accountant",
        "what's the date today?",
        "move the old files from the inbox to projects/archive",
        "how many days until the 2026 offsite?",
        "sort my photos by year",
    ];
    for task in tasks {
        match match_task(task, &skills, &ctx) {
            Match::NoMatch { reason, available } => {
                assert!(!reason.is_empty());
                assert_eq!(available.len(), skills.len(), "{task:?}: offer every skill");
            }
            Match::Matched { skill, .. } => panic!("{task:?} must match nothing, matched {}", skills[skill].name),
        }
    }
}

/// Runs the bundled skill a task matches, the way the planner will: its
/// entry point with the filled parameters, the folder granted read-only.
fn run_matched(fx: &Fixture, task: &str, folders: &[&str]) -> CallResult {
    let skills: Vec<Skill> = bundled();
    let ctx = MatchContext {
        workspace_root: fx.ws.root().to_path_buf(),
        folders: folders.iter().map(PathBuf::from).collect(),
        writable: Vec::new(),
    };
    let Match::Matched {
        skill, params, missing, ..
    } = match_task(task, &skills, &ctx)
    else {
        panic!("{task:?} did not match");
    };
    assert!(missing.is_empty(), "{missing:?}");
    let Entry::Bundled { tool, operation } = &skills[skill].entry else {
        panic!("bundled skills have bundled entry points");
    };
    let grants = [Grant::read_only(&params["folder"])];
    run_call(
        &fx.ws,
        toolbox(),
        &CallRequest {
            tool,
            operation,
            args: json!(params),
            grants: &grants,
            limits: Limits::default(),
        },
        None,
    )
    .unwrap()
}

fn call(fx: &Fixture, tool: &str, operation: &str, folder: &str, args: Value) -> Result<CallResult, Error> {
    let grants = [Grant::read_only(folder)];
    run_call(
        &fx.ws,
        toolbox(),
        &CallRequest {
            tool,
            operation,
            args,
            grants: &grants,
            limits: Limits::default(),
        },
        None,
    )
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn set_mtime(path: &Path, secs_since_epoch: u64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs_since_epoch))
        .unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn inventory_lists_nested_entries_and_reports_symlinks_without_following() {
    let fx = Fixture::new();
    write(&fx.inbox.join("a, quoted \"name\".txt"), "12345");
    write(&fx.inbox.join("sub/deep/z.md"), "# z\n");
    std::fs::create_dir(fx.inbox.join("empty")).unwrap();
    std::os::unix::fs::symlink(&fx.canary, fx.inbox.join("link-to-canary")).unwrap();
    std::os::unix::fs::symlink(&fx.outside, fx.inbox.join("sub/link-to-outside")).unwrap();
    set_mtime(&fx.inbox.join("note.txt"), 1_772_409_600); // 2026-03-02T00:00:00Z

    let result = run_matched(&fx, "inventory of the inbox folder", &["projects/inbox"]);
    let out = &result.output.json;
    let path = PathBuf::from(out["path"].as_str().unwrap());
    assert_eq!(path, fx.ws.root().join("output/inventory.csv"));
    assert_eq!(out["files"], 3);
    assert_eq!(out["folders"], 3);
    assert_eq!(out["bytes"], 5 + 4 + 21);

    let csv = String::from_utf8(fx.ws.read_output(Path::new("inventory.csv")).unwrap()).unwrap();
    let rows: Vec<&str> = csv.split_terminator("\r\n").collect();
    let mut cells: Vec<Vec<&str>> = rows.iter().map(|r| r.rsplitn(4, ',').collect()).collect();
    cells.iter_mut().for_each(|c| c.reverse());
    assert_eq!(rows[0], "path,kind,size_bytes,modified");
    let listed: Vec<(&str, &str, &str)> = cells[1..].iter().map(|c| (c[0], c[1], c[2])).collect();
    assert_eq!(
        listed,
        [
            ("\"a, quoted \"\"name\"\".txt\"", "file", "5"),
            ("empty", "dir", ""),
            ("link-to-canary", "symlink", ""),
            ("note.txt", "file", "21"),
            ("sub", "dir", ""),
            ("sub/deep", "dir", ""),
            ("sub/deep/z.md", "file", "4"),
            ("sub/link-to-outside", "symlink", ""),
        ]
    );
    assert_eq!(cells[4][3], "2026-03-02T00:00:00Z");
    assert!(cells[1..].iter().all(|c| c[3].len() == 20 && c[3].ends_with('Z')));
    fx.assert_canary_intact();

    // A second run never overwrites the first.
    let again = run_matched(&fx, "inventory of the inbox folder", &["projects/inbox"]);
    assert_eq!(
        again.output.json["path"].as_str().unwrap(),
        fx.ws.root().join("output/inventory-1.csv").display().to_string()
    );
    assert_eq!(fx.ws.read_output(Path::new("inventory.csv")).unwrap(), csv.as_bytes());
    assert_eq!(names(&fx.ws.output_dir()), ["inventory-1.csv", "inventory.csv"]);
}

#[test]
fn inventory_of_the_output_folder_skips_its_own_temporary_file() {
    let fx = Fixture::new();
    write(&fx.ws.output_dir().join("old.csv"), "x\n");
    let result = call(
        &fx,
        "inventory",
        "run",
        "output",
        json!({"folder": "output", "output": "output/inventory.csv"}),
    )
    .unwrap();
    assert_eq!(result.output.json["files"], 1);
    let csv = String::from_utf8(fx.ws.read_output(Path::new("inventory.csv")).unwrap()).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.contains("\r\nold.csv,file,2,"), "{csv}");
}

#[test]
fn inventory_reports_progress_every_thousand_entries() {
    let fx = Fixture::new();
    let many = fx.inbox.join("many");
    std::fs::create_dir(&many).unwrap();
    for i in 0..2100 {
        std::fs::write(many.join(format!("{i:04}.txt")), "").unwrap();
    }
    let progress = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&progress);
    let observer: Observer = Arc::new(move |event: &Event| {
        if let Event::ToolProgress { done, .. } = event {
            seen.lock().unwrap().push(*done);
        }
    });
    let grants = [Grant::read_only("projects/inbox")];
    let result = run_call(
        &fx.ws,
        toolbox(),
        &CallRequest {
            tool: "inventory",
            operation: "run",
            args: json!({"folder": "projects/inbox", "output": "output/inventory.csv"}),
            grants: &grants,
            limits: Limits::default(),
        },
        Some(observer),
    )
    .unwrap();
    assert_eq!(result.output.json["files"], 2101);
    assert_eq!(*progress.lock().unwrap(), [1000, 2000]);
}

#[test]
fn inventory_refuses_folders_outside_its_grant_and_writes_outside_output() {
    let fx = Fixture::new();
    let e = call(
        &fx,
        "inventory",
        "run",
        "projects/inbox",
        json!({"folder": fx.outside.display().to_string(), "output": "output/x.csv"}),
    )
    .unwrap_err();
    assert!(matches!(e, Error::OutsideGrants { .. }), "{e}");
    let e = call(
        &fx,
        "inventory",
        "run",
        "projects/inbox",
        json!({"folder": "projects/inbox", "output": "projects/inbox/x.csv"}),
    )
    .unwrap_err();
    assert!(matches!(e, Error::WriteOutsideOutput { .. }), "{e}");
    assert_eq!(names(&fx.inbox), ["note.txt"]);
    assert!(names(&fx.ws.output_dir()).is_empty());
    fx.assert_canary_intact();
}

#[test]
fn rename_by_date_proposes_from_each_date_form_and_renames_nothing() {
    let fx = Fixture::new();
    let dir = fx.ws.root().join("projects/receipts");
    for name in [
        "2026-03-02 taxi.txt",
        "lunch 14.03.2026.txt",
        "hotel march 2026.txt",
        "scan_2026_03_05.pdf",
        "IMG_20260306_1200.jpg",
        "fee 16-03-2026.txt",
        "fee 03-04-2026.txt",
        "Report (Mar 2026).pdf",
        "report 2026-03-07.txt",
        "report_20260307.txt",
        "2026-03-08 memo.txt",
        "memo 08.03.2026.txt",
        "undated.txt",
        ".hidden 2026-03-09",
    ] {
        write(&dir.join(name), "x");
    }
    std::fs::create_dir(dir.join("trip 09.03.2026")).unwrap();
    std::os::unix::fs::symlink(&fx.canary, dir.join("link 2026-03-10")).unwrap();
    set_mtime(&dir.join("undated.txt"), 1_770_724_800); // 2026-02-10T12:00:00Z
    let before = names(&dir);

    let result = run_matched(&fx, "rename the receipts by date", &["projects", "projects/receipts"]);
    let out = &result.output.json;

    let proposals: Vec<(&str, &str, &str)> = out["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["from"].as_str().unwrap(),
                p["to"].as_str().unwrap(),
                p["date_source"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        proposals,
        [
            ("IMG_20260306_1200.jpg", "2026-03-06 IMG_1200.jpg", "name"),
            ("Report (Mar 2026).pdf", "2026-03-01 Report.pdf", "name-month"),
            ("fee 16-03-2026.txt", "2026-03-16 fee.txt", "name"),
            ("hotel march 2026.txt", "2026-03-01 hotel.txt", "name-month"),
            ("lunch 14.03.2026.txt", "2026-03-14 lunch.txt", "name"),
            ("scan_2026_03_05.pdf", "2026-03-05 scan.pdf", "name"),
            ("trip 09.03.2026", "2026-03-09 trip", "name"),
            ("undated.txt", "2026-02-10 undated.txt", "modified"),
        ]
    );
    let skipped: BTreeMap<&str, &str> = out["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["reason"].as_str().unwrap()))
        .collect();
    let reason = |name: &str| {
        *skipped
            .get(name)
            .unwrap_or_else(|| panic!("{name} not skipped: {skipped:?}"))
    };
    assert!(reason("2026-03-02 taxi.txt").contains("already starts with a date"));
    assert!(reason("2026-03-08 memo.txt").contains("already starts with a date"));
    assert!(reason("fee 03-04-2026.txt").contains("ambiguous"));
    assert!(reason("report 2026-03-07.txt").contains("report_20260307.txt would also become 2026-03-07 report.txt"));
    assert!(reason("report_20260307.txt").contains("report 2026-03-07.txt would also become"));
    assert!(reason("memo 08.03.2026.txt").contains("2026-03-08 memo.txt already exists"));
    assert!(reason(".hidden 2026-03-09").contains("hidden"));
    assert!(reason("link 2026-03-10").contains("symbolic link"));
    assert_eq!(skipped.len(), 8);

    // Only a proposal: the folder is untouched, the text says so, and the
    // renames come back as a changeset for the host.
    assert_eq!(names(&dir), before);
    let renames: Vec<_> = result
        .output
        .changes
        .iter()
        .filter_map(|c| match c {
            deskhand_types::ProposedChange::Rename { source, target } => Some((source.clone(), target.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(renames.len(), result.output.json["proposals"].as_array().unwrap().len());
    assert!(
        renames
            .iter()
            .all(|(s, t)| std::path::Path::new(s).parent() == std::path::Path::new(t).parent())
    );
    assert!(
        result.output.text.contains("renamed nothing itself"),
        "{}",
        result.output.text
    );
    let path = out["path"].as_str().unwrap();
    assert_eq!(
        path,
        fx.ws.root().join("output/rename-proposal.csv").display().to_string()
    );
    let csv = String::from_utf8(fx.ws.read_output(Path::new("rename-proposal.csv")).unwrap()).unwrap();
    let rows: Vec<&str> = csv.split_terminator("\r\n").collect();
    assert_eq!(rows[0], "from,to,date_source,note");
    assert_eq!(rows.len(), 1 + 8 + 8);
    assert!(rows.contains(&"lunch 14.03.2026.txt,2026-03-14 lunch.txt,name,"));
    assert!(rows.contains(&"2026-03-02 taxi.txt,,,already starts with a date"));
    assert!(
        rows.iter()
            .any(|r| r.starts_with("hotel march 2026.txt,2026-03-01 hotel.txt,name-month,the name gives no day")),
        "{csv}"
    );
    fx.assert_canary_intact();

    // A second proposal gets a name of its own.
    let again = run_matched(&fx, "rename the receipts by date", &["projects/receipts"]);
    assert!(
        again.output.json["path"]
            .as_str()
            .unwrap()
            .ends_with("output/rename-proposal-1.csv")
    );
}

#[test]
fn rename_by_date_without_modification_times_skips_undated_names() {
    let fx = Fixture::new();
    write(&fx.inbox.join("minutes 14 March 2026.md"), "x");
    let result = call(
        &fx,
        "rename-by-date",
        "propose",
        "projects/inbox",
        json!({"folder": "projects/inbox", "output": "output/p.csv", "use_modified_time": false}),
    )
    .unwrap();
    let out = &result.output.json;
    assert_eq!(
        out["proposals"],
        json!([{"from": "minutes 14 March 2026.md", "to": "2026-03-14 minutes.md", "date_source": "name"}])
    );
    assert_eq!(
        out["skipped"],
        json!([{"name": "note.txt", "reason": "no date in the name (modification times not allowed)"}])
    );
}

#[test]
fn rename_by_date_reads_only_its_grant() {
    let fx = Fixture::new();
    let e = call(
        &fx,
        "rename-by-date",
        "propose",
        "projects/inbox",
        json!({"folder": fx.outside.display().to_string(), "output": "output/p.csv"}),
    )
    .unwrap_err();
    assert!(matches!(e, Error::OutsideGrants { .. }), "{e}");
    fx.assert_canary_intact();
}

/// `agentskills`, the Agent Skills reference validator (PyPI `skills-ref`)
/// that `scripts/setup` installs into a venv of its own.
fn agentskills() -> PathBuf {
    let home = std::env::var_os("HOME").expect("HOME is set");
    let path = Path::new(&home).join(".cache/deskhand/skills-ref-0.1.1/bin/agentskills");
    assert!(
        path.exists(),
        "the Agent Skills reference validator is not installed at {}: run scripts/setup",
        path.display()
    );
    path
}

/// The reference validator's verdict on a skill folder, and what it said.
pub(crate) fn reference_verdict(dir: &Path) -> (bool, String) {
    let out = std::process::Command::new(agentskills())
        .arg("validate")
        .arg(dir)
        .output()
        .expect("agentskills runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn bundled_skills_pass_the_reference_validator() {
    let mut checked = 0;
    for entry in std::fs::read_dir(skills_dir()).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let (valid, said) = reference_verdict(&dir);
        assert!(valid, "{}: {said}", dir.display());
        checked += 1;
    }
    assert_eq!(checked, bundled().len(), "every bundled skill is a folder of skills/");
}

/// deskhand's reading of a SKILL.md and the reference validator's agree on
/// each rule of the format; where deskhand is stricter, the case says why.
#[test]
fn the_format_rules_agree_with_the_reference_validator() {
    // (folder, frontmatter lines after `---`, deskhand accepts, the reference accepts)
    let long = format!("description: {}\n", "d".repeat(1025));
    let wide = format!("description: d\ncompatibility: {}\n", "c".repeat(501));
    let at_limits = format!(
        "description: {}\ncompatibility: {}\n",
        "d".repeat(1024),
        "c".repeat(500)
    );
    let cases: Vec<(&str, String, bool, bool)> = vec![
        ("good-skill", "description: Does a thing. Use when asked.\n".into(), true, true),
        ("good-skill", at_limits, true, true),
        (
            "good-skill",
            "description: d\nlicense: MIT\ncompatibility: Needs LibreOffice\nallowed-tools: Read Write\nmetadata:\n  author: x\n"
                .into(),
            true,
            true,
        ),
        ("good-skill", "description: d\nversion: '1'\n".into(), false, false),
        ("good-skill", "name2: x\ndescription: d\n".into(), false, false),
        ("good-skill", long, false, false),
        ("good-skill", wide, false, false),
        ("good-skill", "description: ''\n".into(), false, false),
        ("good-skill", "license: MIT\n".into(), false, false),
        // The reference reads `metadata` but does not check its values are strings; the
        // specification says they are, and deskhand's own fields depend on it.
        ("good-skill", "description: d\nmetadata:\n  version: 1.0\n".into(), false, true),
    ];
    let names: Vec<(&str, &str, bool)> = vec![
        ("Bad-Skill", "Bad-Skill", false),
        ("bad--skill", "bad--skill", false),
        ("-bad", "-bad", false),
        ("bad-", "bad-", false),
        ("other", "good-skill", false),
        ("a1-b2", "a1-b2", true),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let mut all = cases
        .into_iter()
        .map(|(folder, lines, ours, theirs)| (folder.to_owned(), format!("name: {folder}\n{lines}"), ours, theirs))
        .collect::<Vec<_>>();
    for (name, folder, ok) in names {
        all.push((folder.to_owned(), format!("name: {name}\ndescription: d\n"), ok, ok));
    }
    // One without a name at all.
    all.push(("good-skill".into(), "description: d\n".into(), false, false));
    for (i, (folder, front, ours, theirs)) in all.iter().enumerate() {
        let dir = tmp.path().join(i.to_string()).join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        let text = format!("---\n{front}---\n\n# Body\n");
        std::fs::write(dir.join("SKILL.md"), &text).unwrap();
        let mine = deskhand_runtime::skills::parse_skill_strict(
            &text,
            deskhand_runtime::skills::SkillSource::User,
            Some(&dir),
        );
        let (reference, said) = reference_verdict(&dir);
        assert_eq!(mine.is_ok(), *ours, "deskhand on {front:?}: {mine:?}");
        assert_eq!(reference, *theirs, "the reference validator on {front:?}: {said}");
    }
}

/// Public skills (tests/corpus/skills, with their licences) load as skills in a workspace once
/// trusted and as the user's, pass the reference validator, are offered to a model by name and
/// description and read on demand, and none of their code runs: the offline planner never
/// picks a skill without a deskhand entry, and a run that mentions one changes nothing.
#[test]
fn public_skills_load_and_none_of_their_code_runs() {
    use deskhand_runtime::skills::{Distrust, TrustStore, catalogue, disclose, discover, user_skills_dir};

    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/skills");
    let names = ["internal-comms", "mcp-builder", "skill-creator", "webapp-testing"];
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config");
    for name in names {
        let (valid, said) = reference_verdict(&corpus.join(name));
        assert!(valid, "{name}: {said}");
        let to = user_skills_dir(&config).join(name);
        std::fs::create_dir_all(to.join("scripts")).unwrap();
        for f in ["SKILL.md", "LICENSE.txt"] {
            std::fs::copy(corpus.join(name).join(f), to.join(f)).unwrap();
        }
    }
    std::fs::copy(
        corpus.join("webapp-testing/scripts/with_server.py"),
        user_skills_dir(&config).join("webapp-testing/scripts/with_server.py"),
    )
    .unwrap();
    let ws = tmp.path().join("ws");
    std::fs::create_dir_all(ws.join(".agents/skills")).unwrap();
    let found = discover(&ws, Some(&config));
    assert!(found.problems.is_empty(), "{:?}", found.problems);
    for name in names {
        let s = found.skills.iter().find(|s| s.name == name).unwrap();
        assert_eq!(s.entry, Entry::None, "{name} runs nothing by itself");
        assert!(s.outside_format.is_empty(), "{name}: {:?}", s.outside_format);
    }
    let listed = catalogue(&found.skills);
    assert!(listed.contains("- webapp-testing: Toolkit for interacting"), "{listed}");
    let body = disclose(&found.skills, &json!({"name": "webapp-testing"})).unwrap();
    assert!(body.contains("Files in scripts/: with_server.py"), "{body}");
    let script = disclose(
        &found.skills,
        &json!({"name": "webapp-testing", "file": "scripts/with_server.py"}),
    )
    .unwrap();
    assert!(script.contains("def "), "a script is read as text, never run");

    // Brought by a workspace: found, untrusted, then trusted as they are.
    let ws_skill = ws.join(".agents/skills/mcp-builder");
    std::fs::create_dir_all(&ws_skill).unwrap();
    std::fs::copy(corpus.join("mcp-builder/SKILL.md"), ws_skill.join("SKILL.md")).unwrap();
    let found = discover(&ws, Some(&config));
    let (s, why) = found.untrusted.iter().find(|(s, _)| s.name == "mcp-builder").unwrap();
    assert_eq!(*why, Distrust::New);
    TrustStore::load(Some(&config)).unwrap().trust(&ws, &[s]).unwrap();
    assert!(discover(&ws, Some(&config)).untrusted.is_empty());

    // The offline planner runs no skill without a deskhand entry: a task for one is answered
    // with what it needs, and nothing is written.
    let (workspace, _) = deskhand_runtime::workspace::Workspace::init(&ws).unwrap();
    // Every run leaves its ledger in output/ledgers/; nothing else may appear.
    let delivered = || {
        let mut t = crate::common::tree(&workspace.output_dir());
        t.retain(|k, _| !k.starts_with("ledgers/"));
        t
    };
    let before = delivered();
    for task in ["build an MCP server with mcp-builder", "webapp testing of my site"] {
        let l = deskhand_runtime::launch::Launch {
            workspace: &workspace,
            config: deskhand_runtime::model::ModelConfig::default(),
            config_dir: Some(config.clone()),
            params: Vec::new(),
            gate: &deskhand_runtime::agent::ApproveAll,
            observer: None,
            shell: None,
            warn: &|_| {},
            stop: None,
            envelope: None,
        };
        let t = deskhand_types::Task {
            outcome: task.into(),
            grants: Vec::new(),
            mode: deskhand_types::Mode::Act,
            params: Default::default(),
        };
        let report =
            deskhand_runtime::launch::launch_shared(l, toolbox(), deskhand_runtime::launch::Start::New(t)).unwrap();
        assert!(report.summary.contains("needs a model"), "{task}: {}", report.summary);
        assert_eq!(delivered(), before, "{task} wrote nothing");
    }
}
