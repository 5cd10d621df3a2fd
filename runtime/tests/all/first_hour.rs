//! Issue 14's first hour with the offline planner: a folder the task does
//! not name is taken from the grants or MEMORY.md without a question, an
//! answer is read generously and a near-miss is asked again (never the end
//! of the run), and a finished run takes a new instruction as a new turn,
//! its steps approved anew through the same gate.

use std::path::PathBuf;
use std::sync::Mutex;

use deskhand_runtime::agent::offline::OfflinePlanner;
use deskhand_runtime::agent::{AgentSettings, Approval, ApproveAll, ChangesApproval, Gate, StepApproval};
use deskhand_runtime::skills::{self, MatchContext};
use deskhand_types::{Event, Mode, RunStatus};

use crate::common::{Demo, agent_task as task, demo, recording_agent as agent};

/// The offline planner as `launch` sets it up: told the run's grants and MEMORY.md.
fn planner(d: &Demo, grants: &[&str]) -> OfflinePlanner {
    let folders = grants
        .iter()
        .map(PathBuf::from)
        .chain(
            [
                "projects/receipts",
                "projects/website refresh",
                "projects/2026 offsite",
                "context",
            ]
            .map(PathBuf::from),
        )
        .collect();
    let memory = std::fs::read_to_string(d.ws.root().join("MEMORY.md")).unwrap_or_default();
    let granted: Vec<PathBuf> = grants.iter().map(PathBuf::from).collect();
    OfflinePlanner::new(
        skills::bundled(),
        MatchContext {
            workspace_root: d.ws.root().into(),
            folders,
            writable: Vec::new(),
        },
    )
    .with_grants(&granted, memory)
}

#[test]
fn the_one_granted_folder_that_fits_is_used_without_a_question() {
    let d = demo();
    let planner = planner(&d, &["projects"]);
    let (agent, _) = agent(&d.ws, &planner, &ApproveAll, AgentSettings::default());
    let report = agent.run(task("Make an expense report", &["projects"])).unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{}", report.summary);
    assert!(
        report.plan.steps[0].title.contains("projects/receipts"),
        "{:?}",
        report.plan
    );
    assert!(d.ws.output_dir().join("expenses.xlsx").is_file());
}

#[test]
fn memory_says_which_folder() {
    let d = demo();
    std::fs::create_dir_all(d.ws.root().join("projects/old receipts")).unwrap();
    std::fs::write(
        d.ws.root().join("projects/old receipts/taxi.txt"),
        "Taxi\n2026-03-02\nTotal: 10.00 EUR\n",
    )
    .unwrap();
    std::fs::write(
        d.ws.root().join("MEMORY.md"),
        "# Memory\n\n- This year's receipts are in `projects/old receipts/`.\n",
    )
    .unwrap();
    let planner = planner(&d, &["projects"]);
    let (agent, _) = agent(&d.ws, &planner, &ApproveAll, AgentSettings::default());
    let report = agent.run(task("Make an expense report", &["projects"])).unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{}", report.summary);
    assert!(
        report.plan.steps[0].title.contains("projects/old receipts"),
        "{:?}",
        report.plan
    );
}

#[test]
fn an_answer_is_read_generously_and_a_near_miss_is_asked_again() {
    let d = demo();
    let grants = ["projects", "context"];
    let planner = planner(&d, &grants);
    let (agent, _) = agent(&d.ws, &planner, &ApproveAll, AgentSettings::default());
    let report = agent.run(task("Make a file inventory", &grants)).unwrap();
    assert_eq!(report.status, RunStatus::NeedsInput, "{}", report.summary);
    let question = report.question.unwrap();
    assert!(
        question.contains("projects/receipts"),
        "the folders are named: {question}"
    );

    // Nothing by that name: asked again, saying why; the run goes on waiting.
    let again = agent.resume(&report.run, Some("invoices")).unwrap();
    assert_eq!(again.status, RunStatus::NeedsInput, "{}", again.summary);
    assert!(
        again
            .question
            .as_deref()
            .unwrap()
            .contains("I could not use \"invoices\"")
    );

    // "reciepts" is projects/receipts, the one folder so named.
    let done = agent.resume(&report.run, Some("reciepts")).unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{}", done.summary);
    let csv = std::fs::read_to_string(d.ws.output_dir().join("inventory.csv")).unwrap();
    assert!(csv.contains("2026-03-02 taxi.pdf"), "{csv}");
}

/// Approves what it is asked, and remembers the steps it was asked about.
#[derive(Default)]
struct Counting(Mutex<Vec<String>>);

impl Gate for Counting {
    fn approve_step(&self, _: &str, req: &StepApproval<'_>) -> Approval {
        self.0.lock().unwrap().push(req.plan_step.title.clone());
        Approval::Approved { by: "the test".into() }
    }
    fn approve_changes(&self, _: &str, _: &ChangesApproval<'_>) -> Approval {
        Approval::Approved { by: "the test".into() }
    }
}

#[test]
fn a_finished_run_takes_a_new_instruction_as_a_new_turn_through_the_same_gate() {
    let d = demo();
    let planner = planner(&d, &["projects"]);
    let gate = Counting::default();
    let (agent, seen) = agent(&d.ws, &planner, &gate, AgentSettings::default());
    let mut first = task("Make an inventory of the receipts folder", &["projects"]);
    first.mode = Mode::Ask;
    let report = agent.run(first).unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{}", report.summary);
    // The check of the deliverable reads only output/: not asked.
    assert_eq!(gate.0.lock().unwrap().len(), 1, "{:?}", gate.0.lock().unwrap());

    let next = agent
        .follow_up(&report.run, "now the website refresh folder", None)
        .unwrap();
    assert_eq!(next.status, RunStatus::Succeeded, "{}", next.summary);
    // The first turn's steps stay as they ended; the new turn's come after them.
    let titles: Vec<&str> = next.plan.steps.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(titles.len(), 4, "{titles:?}");
    assert!(titles[0].contains("projects/receipts"), "{titles:?}");
    assert!(titles[2].contains("projects/website refresh"), "{titles:?}");
    assert_eq!(next.plan.revision, 2, "a revision of the plan, with its reason");
    assert!(
        next.plan
            .reason
            .as_deref()
            .unwrap()
            .contains("now the website refresh folder")
    );
    let asked = gate.0.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "the new turn's step is approved anew: {asked:?}");
    let csv = std::fs::read_to_string(d.ws.output_dir().join("inventory-1.csv")).unwrap();
    assert!(csv.contains("notes.md"), "{csv}");
    {
        let seen = seen.lock().unwrap();
        let said = seen.iter().any(|(run, e)| {
            *run == report.run
                && matches!(e, Event::Message { message } if message.text() == "now the website refresh folder")
        });
        assert!(said, "the instruction is journaled as the person's message");
        assert!(seen.iter().any(|(_, e)| matches!(e, Event::Resumed { .. })));
    }

    // What the offline planner cannot change is answered, and the run stays succeeded.
    let usd = agent.follow_up(&report.run, "now in USD", None).unwrap();
    assert_eq!(usd.status, RunStatus::Succeeded, "{}", usd.summary);
    assert!(usd.summary.contains("without a model"), "{}", usd.summary);

    // An empty instruction, or a run that does not exist, is refused.
    assert!(agent.follow_up(&report.run, "  ", None).is_err());
    assert!(
        agent
            .follow_up(&deskhand_types::RunId("run-nope".into()), "again", None)
            .is_err()
    );
}
