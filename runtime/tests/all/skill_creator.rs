//! The Skill Creator end to end: a receipts run of the demo workspace made
//! into a skill, replayed on a scratch copy, installed, read back, and run
//! on another workspace's different receipts, where it passes its evals.

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
