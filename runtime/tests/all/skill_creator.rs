//! The Skill Creator end to end: a receipts run of the demo workspace made
//! into a skill, replayed on a scratch copy, installed, read back, and run
//! on another workspace's different receipts, where it passes its evals;
//! a model's run of several calls made into a recorded plan that the
//! offline planner runs elsewhere; a total that leaves a row out failing
//! its eval once LibreOffice recalculates it.

use std::path::Path;

use deskhand_runtime::agent::ApproveAll;
use deskhand_runtime::launch::{self, Launch, Start};
use deskhand_runtime::model::ModelConfig;
use deskhand_runtime::skill_creator;
use deskhand_runtime::skills::{self, Entry, ParamKind};
use deskhand_runtime::tools::Toolbox;
use deskhand_runtime::workspace::Workspace;
use deskhand_types::{Grant, Mode, RunId, RunStatus, Task};

use crate::common::{demo, tree};
use crate::skills::reference_verdict;

fn own_toolbox() -> Toolbox {
    let cache = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wasm-cache");
    Toolbox::new(deskhand_runtime::wasm::WasmHost::new(Some(cache)).unwrap())
}

fn run(ws: &Workspace, config_dir: Option<&Path>, outcome: &str, tb: &mut Toolbox) -> RunId {
    let l = Launch {
        workspace: ws,
        config: ModelConfig::default(),
        config_dir: config_dir.map(Path::to_path_buf),
        params: Vec::new(),
        gate: &ApproveAll,
        observer: None,
        shell: None,
        warn: &|w| panic!("{w}"),
        stop: None,
        envelope: None,
    };
    let task = Task {
        outcome: outcome.into(),
        grants: vec![Grant::read_only("projects")],
        mode: Mode::Act,
        params: Default::default(),
    };
    let report = launch::launch(l, tb, Start::New(task)).unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{}", report.summary);
    report.run
}

#[test]
fn a_receipts_run_becomes_a_skill_that_passes_its_evals_on_other_receipts() {
    let d = demo();
    let mut tb = own_toolbox();
    let task = "Turn the receipts in projects/receipts into an expense spreadsheet for the team";
    let made = run(&d.ws, None, task, &mut tb);

    let draft = skill_creator::draft(&d.ws, &made, &skills::bundled(), &tb).unwrap();
    assert_eq!(draft.name, "expense-spreadsheet-team");
    assert_eq!((draft.tool.as_str(), draft.operation.as_str()), ("receipts", "run"));
    assert_eq!(draft.from_skill.as_deref(), Some("receipts-to-spreadsheet"));
    let spec = |n: &str| draft.params.iter().find(|p| p.name == n).unwrap().spec.clone();
    assert_eq!(
        spec("folder"),
        "path, required, The folder of receipts and bank exports"
    );
    assert!(spec("spreadsheet").starts_with("path, default=output/expenses.xlsx,"));
    assert!(spec("period").starts_with("period, optional,"));
    assert!(
        draft
            .description
            .contains("Turn the receipts in <folder> into an expense spreadsheet")
    );
    let workbook = draft
        .delivered
        .iter()
        .find(|f| f.path == "output/expenses.xlsx")
        .unwrap();
    let sheets: Vec<&str> = workbook.sheets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(sheets, ["Expenses", "Summary"]);
    assert!(workbook.sheets.iter().map(|s| s.formulas).sum::<usize>() > 0);
    let summary = draft
        .delivered
        .iter()
        .find(|f| f.path == "output/expenses-summary.pdf")
        .unwrap();
    assert!(summary.pages.unwrap() >= 1);
    // Its totals are kept for the evals: the grand totals of both sheets.
    let totals: Vec<(&str, &str, &str)> = workbook
        .totals
        .iter()
        .map(|t| (t.sheet.as_str(), t.column.as_str(), t.label.as_str()))
        .collect();
    assert!(totals.contains(&("Expenses", "D", "Total")), "{totals:?}");
    assert!(totals.iter().any(|t| t.0 == "Summary"), "{totals:?}");
    // The bank export's lines and the receipts that match them are one row:
    // the rows do not follow the number of files, so no eval counts them so.
    assert!(workbook.rows_per_file.is_empty(), "{:?}", workbook.rows_per_file);
    assert!(draft.evals_json().contains("\"totals\""));

    // The draft's SKILL.md is a skill, by our reading and the reference validator's.
    let parsed = draft.parsed().unwrap();
    assert_eq!(
        parsed.params.iter().find(|p| p.name == "folder").unwrap().kind,
        ParamKind::Path
    );
    let drafts = tempfile::tempdir().unwrap();
    let dir = drafts.path().join(&draft.name);
    draft.write_to(&dir).unwrap();
    let (valid, said) = reference_verdict(&dir);
    assert!(valid, "{said}");

    // The replay, on a scratch copy, delivers what the run did; the workspace is untouched.
    let before = tree(d.ws.root());
    let replay = skill_creator::replay(&d.ws, &draft, &tb).unwrap();
    assert!(replay.matches(), "{replay:?}");
    // Value by value, cell by cell and page by page, the replay is the run.
    assert_eq!(replay.diffs.len(), 2);
    assert!(replay.diffs.iter().all(|d| d.is_empty()), "{:?}", replay.diffs);
    assert_eq!(tree(d.ws.root()), before, "a replay changes nothing in the workspace");

    // Installed, read back, and picked for its evals' phrasings.
    let config = tempfile::tempdir().unwrap();
    let installed = skill_creator::install(&dir, config.path(), &d.ws, false).unwrap();
    assert!(
        installed.checks.len() >= 2 && installed.checks.iter().all(|c| c.passed),
        "{:?}",
        installed.checks
    );
    assert_eq!(
        installed.skill.dir.as_deref(),
        Some(skills::user_skills_dir(config.path()).join(&draft.name).as_path())
    );
    assert!(matches!(&installed.skill.entry, Entry::Bundled { tool, .. } if tool == "receipts"));
    let again = skill_creator::install(&dir, config.path(), &d.ws, false).unwrap_err();
    assert!(again.contains("already installed"), "{again}");

    // Another workspace, other receipts: its evals pass there too, and a
    // person's run of its name uses it.
    let other = tempfile::tempdir().unwrap();
    let (b, _) = Workspace::init(&other.path().join("b")).unwrap();
    let receipts = b.root().join("projects/receipts");
    std::fs::create_dir_all(&receipts).unwrap();
    std::fs::write(
        receipts.join("bakery.txt"),
        "Bakery Sol\n2026-04-02\nBread 3.20\nTotal 3.20 EUR\n",
    )
    .unwrap();
    std::fs::write(
        receipts.join("books.txt"),
        "Livraria Bertrand\n2026-04-09\nTotal 18.50 EUR\n",
    )
    .unwrap();
    let before = tree(b.root());
    let checks = skill_creator::check_deliveries(&b, &installed.skill, &tb).unwrap();
    assert!(!checks.is_empty() && checks.iter().all(|c| c.passed), "{checks:?}");
    assert_eq!(
        tree(b.root()),
        before,
        "checking evals changes nothing in the workspace"
    );
    let found = skills::discover(b.root(), Some(config.path()));
    let phrasings = skill_creator::check_evals(&installed.skill, &found.skills, b.root()).unwrap();
    assert!(phrasings.iter().all(|c| c.passed), "{phrasings:?}");
    let used = run(
        &b,
        Some(config.path()),
        "expense spreadsheet team of projects/receipts",
        &mut tb,
    );
    let plan = b.journal().events(&used).unwrap();
    assert!(
        plan.iter()
            .any(|e| format!("{:?}", e.event).contains("Run expense-spreadsheet-team on projects/receipts")),
        "the person's own skill ran"
    );
    assert!(b.output_dir().join("expenses.xlsx").is_file());
}

#[test]
fn runs_that_cannot_become_skills_say_why() {
    let d = demo();
    let tb = own_toolbox();
    let e = skill_creator::draft(&d.ws, &RunId("run-nope".into()), &skills::bundled(), &tb).unwrap_err();
    assert!(e.contains("no run run-nope in this workspace"), "{e}");
    // A run that only asked (no skill matches offline) changed nothing.
    let l = Launch {
        workspace: &d.ws,
        config: ModelConfig::default(),
        config_dir: None,
        params: Vec::new(),
        gate: &ApproveAll,
        observer: None,
        shell: None,
        warn: &|_| {},
        stop: None,
        envelope: None,
    };
    let task = Task {
        outcome: "write me a poem".into(),
        grants: Vec::new(),
        mode: Mode::Act,
        params: Default::default(),
    };
    let report = launch::launch_shared(l, &tb, Start::New(task)).unwrap();
    let e = skill_creator::draft(&d.ws, &report.run, &skills::bundled(), &tb).unwrap_err();
    assert!(e.contains("a skill is made from a run that finished"), "{e}");
}

#[test]
fn with_a_model_the_skills_words_are_the_models_and_must_fit_the_format() {
    use crate::hostile::{Wire, provider, server};
    let d = demo();
    let tb = own_toolbox();
    let mut tb2 = own_toolbox();
    let made = run(
        &d.ws,
        None,
        "Turn the receipts in projects/receipts into an expense spreadsheet",
        &mut tb2,
    );
    let offline = skill_creator::draft(&d.ws, &made, &skills::bundled(), &tb).unwrap();
    for wire in [Wire::Anthropic, Wire::OpenAi] {
        let s = server(wire, &["skill-words"], d.ws.root());
        let mut draft = offline.clone();
        skill_creator::words_from_model(&mut draft, provider(wire, &s).as_ref()).unwrap();
        assert_eq!(draft.name, "monthly-expense-report", "{wire:?}");
        assert!(
            draft.description.starts_with("Turns the receipts"),
            "{wire:?}: {}",
            draft.description
        );
        assert_eq!(draft.keywords[0], "monthly expense report");
        // What the model was told: the task and what the run delivered, as the person sees them.
        let asked = &s.requests()[0].body;
        assert!(
            asked.contains("expenses.xlsx") && asked.contains("into an expense spreadsheet"),
            "{asked}"
        );
        let parsed = draft.parsed().unwrap();
        assert_eq!(parsed.name, "monthly-expense-report");

        let s = server(wire, &["skill-words-bad"], d.ws.root());
        let mut kept = offline.clone();
        let e = skill_creator::words_from_model(&mut kept, provider(wire, &s).as_ref()).unwrap_err();
        assert!(e.contains("do not fit the skill format"), "{wire:?}: {e}");
        assert_eq!(kept, offline, "a bad answer leaves the draft as it was");
    }
}

/// Receipts as text files (one purchase each): `(file, merchant, date, total)`.
fn receipts(ws: &Workspace, list: &[(&str, &str, &str, &str)]) {
    let dir = ws.root().join("projects/receipts");
    std::fs::create_dir_all(&dir).unwrap();
    for (file, merchant, date, total) in list {
        std::fs::write(dir.join(file), format!("{merchant}\n{date}\nTotal {total} EUR\n")).unwrap();
    }
}

#[test]
fn a_models_run_of_several_calls_becomes_a_recorded_plan_that_runs_offline_elsewhere() {
    use crate::common::{agent_task, recording_agent};
    use crate::hostile::{Wire, provider, server};
    use deskhand_runtime::agent::AgentSettings;
    let tb = own_toolbox();
    let tmp = tempfile::tempdir().unwrap();
    let task = "Make an expenses workbook and a list of the receipts in projects/receipts";
    let mut made = Vec::new();
    for (wire, name) in [(Wire::Anthropic, "a"), (Wire::OpenAi, "a-openai")] {
        let (ws, _) = Workspace::init(&tmp.path().join(name)).unwrap();
        receipts(
            &ws,
            &[
                ("taxi.txt", "Taxi Lisboa", "2026-03-02", "18.40"),
                ("lunch.txt", "Cafe Central", "2026-03-14", "23.90"),
                ("dinner.txt", "Restaurant Tasca", "2026-03-15", "41.00"),
            ],
        );
        let s = server(
            wire,
            &["skill-plan-1", "skill-plan-2", "skill-plan-3", "skill-plan-4"],
            ws.root(),
        );
        let model = provider(wire, &s);
        let (agent, _) = recording_agent(&ws, model.as_ref(), &ApproveAll, AgentSettings::default());
        let report = agent.run(agent_task(task, &["projects"])).unwrap();
        assert_eq!(report.status, RunStatus::Succeeded, "{wire:?}: {}", report.summary);
        let draft = skill_creator::draft(&ws, &report.run, &skills::bundled(), &tb).unwrap();
        made.push((ws, draft));
    }
    let (a, draft) = made.remove(0);
    let other = made.remove(0).1;
    assert_eq!(
        (draft.name.as_str(), draft.params.clone()),
        (other.name.as_str(), other.params.clone()),
        "both wire formats make the same skill"
    );
    // Two steps, each replaying its call, the folder one parameter for both
    // (the model named it once relative, once absolute), a period added.
    let calls: Vec<Vec<&str>> = draft
        .plan
        .iter()
        .map(|s| s.calls.iter().map(|c| c.call.as_str()).collect())
        .collect();
    assert_eq!(calls, [vec!["receipts.run"], vec!["inventory.run"]]);
    assert_eq!(draft.plan[0].title, "Make the expenses workbook of {{folder}}");
    assert_eq!(draft.plan[0].reads, ["{{folder}}"]);
    assert_eq!(draft.plan[0].calls[0].args["folder"], "{{folder}}");
    assert_eq!(draft.plan[0].calls[0].args["period"], "{{period}}");
    assert_eq!(draft.plan[1].calls[0].args["folder"], "{{folder}}");
    let spec = |n: &str| draft.params.iter().find(|p| p.name == n).unwrap().spec.clone();
    assert!(spec("folder").starts_with("path, required,"), "{}", spec("folder"));
    assert!(spec("spreadsheet").starts_with("path, default=output/expenses.xlsx,"));
    assert!(spec("output").starts_with("path, default=output/receipts-list.csv,"));
    assert!(spec("period").starts_with("period, optional,"));
    // One row per receipt read, and totals LibreOffice must recompute.
    let workbook = draft
        .delivered
        .iter()
        .find(|f| f.path == "output/expenses.xlsx")
        .unwrap();
    assert_eq!(workbook.rows_per_file.len(), 1, "{:?}", workbook.rows_per_file);
    assert_eq!(
        (
            workbook.rows_per_file[0].sheet.as_str(),
            workbook.rows_per_file[0].folder.as_str()
        ),
        ("Expenses", "folder")
    );
    assert!(workbook.totals.iter().any(|t| t.sheet == "Expenses" && t.column == "D"));
    assert_eq!(draft.inputs.get("folder"), Some(&3));

    let parsed = draft.parsed().unwrap();
    assert!(matches!(&parsed.entry, Entry::Plan(steps) if steps.len() == 2));
    let holder = tempfile::tempdir().unwrap();
    let dir = holder.path().join(&draft.name);
    draft.write_to(&dir).unwrap();
    let (valid, said) = reference_verdict(&dir);
    assert!(valid, "{said}");

    // The replay runs the plan offline, on a copy, and delivers the same values.
    let before = tree(a.root());
    let replay = skill_creator::replay(&a, &draft, &tb).unwrap();
    assert!(replay.matches(), "{replay:?}");
    assert!(replay.diffs.iter().all(|d| d.is_empty()), "{:?}", replay.diffs);
    assert_eq!(tree(a.root()), before);

    let config = tempfile::tempdir().unwrap();
    let installed = skill_creator::install(&dir, config.path(), &a, false).unwrap();
    assert!(installed.checks.iter().all(|c| c.passed), "{:?}", installed.checks);

    // Another workspace with two receipts, not three: the rows follow, the totals recalculate.
    let (b, _) = Workspace::init(&tmp.path().join("b")).unwrap();
    receipts(
        &b,
        &[
            ("bakery.txt", "Bakery Sol", "2026-04-02", "3.20"),
            ("books.txt", "Livraria Bertrand", "2026-04-09", "18.50"),
        ],
    );
    let checks = skill_creator::check_deliveries(&b, &installed.skill, &tb).unwrap();
    assert!(!checks.is_empty() && checks.iter().all(|c| c.passed), "{checks:?}");
    let found = skills::discover(b.root(), Some(config.path()));
    let phrasings = skill_creator::check_evals(&installed.skill, &found.skills, b.root()).unwrap();
    assert!(phrasings.iter().all(|c| c.passed), "{phrasings:?}");
    let mut tb2 = own_toolbox();
    let asked = format!("{} of projects/receipts", draft.name.replace('-', " "));
    let used = run(&b, Some(config.path()), &asked, &mut tb2);
    let events = format!("{:?}", b.journal().events(&used).unwrap());
    assert!(
        events.contains(&format!(
            "Run {} on projects/receipts: Make the expenses workbook of projects/receipts",
            draft.name
        )),
        "the recorded plan ran, its steps filled in"
    );
    assert!(b.output_dir().join("expenses.xlsx").is_file());
    assert!(b.output_dir().join("receipts-list.csv").is_file());
}

#[test]
fn a_total_that_leaves_a_row_out_fails_its_eval_once_recalculated() {
    let tb = own_toolbox();
    let tmp = tempfile::tempdir().unwrap();
    let (ws, _) = Workspace::init(&tmp.path().join("ws")).unwrap();
    receipts(&ws, &[("taxi.txt", "Taxi Lisboa", "2026-03-02", "18.40")]);
    let dir = tmp.path().join("skills").join("broken-totals");
    std::fs::create_dir_all(dir.join("evals")).unwrap();
    let sheet = serde_json::json!({"name": "Expenses", "header": ["Item", "Amount"],
        "rows": [["Taxi", 18.4], ["Lunch", 23.9], ["Total", {"formula": "SUM(B2:B2)"}]]});
    let step = serde_json::json!({"title": "Write the workbook", "reads": ["{{folder}}"], "writes": ["output"],
        "calls": [{"call": "xlsx.write", "args": {"path": "output/broken.xlsx", "sheets": [sheet]}}]});
    let skill_md = format!(
        "---\nname: broken-totals\ndescription: Writes a workbook whose total leaves a row out.\nmetadata:\n  \
         deskhand-entry: plan\n  deskhand-keywords: broken totals workbook\n  deskhand-params: folder\n  \
         deskhand-param-folder: path, required, The folder\n  deskhand-step-1: '{step}'\n---\n\nA broken skill.\n"
    );
    std::fs::write(dir.join("SKILL.md"), &skill_md).unwrap();
    let evals = serde_json::json!({"grants": [{"path": "projects", "access": "read_only"}], "evals": [
        {"prompt": "broken totals workbook of projects/receipts", "params": {"folder": "projects/receipts"},
         "expectations": [{"file": "output/broken.xlsx",
                           "totals": [{"sheet": "Expenses", "column": "B", "label": "Total"}]}]}]});
    std::fs::write(dir.join("evals/evals.json"), evals.to_string()).unwrap();
    let skill = skills::parse_skill(&skill_md, skills::SkillSource::User, Some(&dir)).unwrap();
    let checks = skill_creator::check_deliveries(&ws, &skill, &tb).unwrap();
    assert_eq!(checks.len(), 1);
    assert!(!checks[0].passed, "{checks:?}");
    let problem = checks[0].problem.clone().unwrap();
    assert!(
        problem.contains(
            "output/broken.xlsx: the total in Expenses!B4 (=SUM(B2:B2)) is 18.40 once LibreOffice recalculates \
             it, but the 2 rows above it add up to 42.30: the formula leaves rows out"
        ),
        "{problem}"
    );
}
