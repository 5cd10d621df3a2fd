//! Issue 14's offline skills for the jobs the tools already do, end to end
//! through the offline planner: the task matched, the skill's step approved
//! through the gate, the sandboxed tool run, its new file delivered through
//! the change pipeline under a name made from the input, and a second run
//! given a free name instead of failing on the first one's file.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use deskhand_runtime::agent::offline::OfflinePlanner;
use deskhand_runtime::agent::{AgentSettings, Approval, ChangesApproval, Gate, StepApproval};
use deskhand_runtime::demo::text_pdf;
use deskhand_runtime::skills::{self, MatchContext};
use deskhand_types::{Event, Mode, RunStatus};

use crate::common::{Demo, Seen, agent_task as task, demo, recording_agent as agent};

/// The offline planner as `launch` sets it up: told the run's grants.
fn planner(d: &Demo, grants: &[&str]) -> OfflinePlanner {
    let granted: Vec<PathBuf> = grants.iter().map(PathBuf::from).collect();
    OfflinePlanner::new(
        skills::bundled(),
        MatchContext {
            workspace_root: d.ws.root().into(),
            folders: granted.clone(),
            writable: Vec::new(),
        },
    )
    .with_grants(&granted, String::new())
}

/// Approves what it is asked, remembering each step it was asked about.
#[derive(Default)]
struct Asked {
    steps: Mutex<Vec<String>>,
}

impl Gate for Asked {
    fn approve_step(&self, _: &str, req: &StepApproval<'_>) -> Approval {
        self.steps.lock().unwrap().push(req.plan_step.title.clone());
        Approval::Approved { by: "the test".into() }
    }
    fn approve_changes(&self, _: &str, _: &ChangesApproval<'_>) -> Approval {
        Approval::Approved { by: "the test".into() }
    }
}

/// Runs `outcome` in ask mode with `grants`; returns the report and what the gate saw.
fn run(d: &Demo, outcome: &str, grants: &[&str]) -> (deskhand_runtime::agent::RunReport, Asked, Seen) {
    let planner = planner(d, grants);
    let gate = Asked::default();
    let (agent, seen) = agent(&d.ws, &planner, &gate, AgentSettings::default());
    let mut t = task(outcome, grants);
    t.mode = Mode::Ask;
    let report = agent.run(t).unwrap();
    (report, gate, seen)
}

/// How many changes the run's applied changesets made.
fn applied(seen: &Seen) -> usize {
    seen.lock()
        .unwrap()
        .iter()
        .filter_map(|(_, e)| match e {
            Event::ChangesApplied { count, .. } => Some(*count),
            _ => None,
        })
        .sum()
}

fn pages_of(pdf: &Path) -> String {
    let out = std::process::Command::new("pdfinfo")
        .arg(pdf)
        .output()
        .unwrap_or_else(|e| panic!("pdfinfo could not start ({e}); run scripts/setup to install poppler-utils"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Pages:").map(|v| v.trim().to_owned()))
        .unwrap_or_default()
}

#[test]
fn merge_pdfs_merges_a_folder_in_name_order_and_a_second_run_takes_a_free_name() {
    let d = demo();
    let scans = d.ws.root().join("projects/scans");
    std::fs::create_dir_all(scans.join("old")).unwrap();
    for (name, line) in [
        ("scan 10.pdf", "tenth page"),
        ("scan 2.pdf", "second page"),
        ("Scan 1.pdf", "first page"),
        ("old/scan 0.pdf", "not merged"),
    ] {
        std::fs::write(scans.join(name), text_pdf(&[line])).unwrap();
    }
    std::fs::write(scans.join("notes.txt"), "not a pdf").unwrap();

    let (report, gate, seen) = run(&d, "merge the PDFs in projects/scans", &["projects/scans"]);
    assert_eq!(report.status, RunStatus::Succeeded, "{}", report.summary);
    assert!(
        report.summary.contains("Scan 1.pdf, scan 2.pdf, scan 10.pdf"),
        "{}",
        report.summary
    );
    // The skill's step was asked; its one new file went through the pipeline.
    assert_eq!(gate.steps.lock().unwrap().len(), 1, "{:?}", gate.steps);
    assert_eq!(applied(&seen), 1);
    let merged = d.ws.output_dir().join("scans.pdf");
    assert_eq!(pages_of(&merged), "3");
    let words = String::from_utf8_lossy(
        &std::process::Command::new("pdftotext")
            .arg(&merged)
            .arg("-")
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    let order: Vec<usize> = ["first page", "second page", "tenth page"]
        .iter()
        .map(|w| words.find(w).unwrap_or_else(|| panic!("{w} in {words}")))
        .collect();
    assert!(order.is_sorted(), "{words}");
    assert!(!words.contains("not merged"));

    let (again, _, _) = run(&d, "merge the PDFs in projects/scans", &["projects/scans"]);
    assert_eq!(again.status, RunStatus::Succeeded, "{}", again.summary);
    assert_eq!(pages_of(&d.ws.output_dir().join("scans-1.pdf")), "3");
    assert_eq!(pages_of(&merged), "3", "the first merge is untouched");
}

#[test]
fn merge_pdfs_of_a_folder_without_pdfs_says_so() {
    let d = demo();
    let (report, _, seen) = run(
        &d,
        "merge the PDFs in 'projects/2026 offsite'",
        &["projects/2026 offsite"],
    );
    assert_ne!(report.status, RunStatus::Succeeded, "{}", report.summary);
    assert!(
        report.summary.contains("has no PDF directly in it"),
        "{}",
        report.summary
    );
    assert_eq!(applied(&seen), 0);
}

#[test]
fn pdf_to_text_writes_a_text_file_named_after_the_pdf_and_asks_which_file_when_none_is_named() {
    let d = demo();
    let (report, _, seen) = run(
        &d,
        "extract the text of 'projects/receipts/lunch 14.03.2026.pdf'",
        &["projects/receipts"],
    );
    assert_eq!(report.status, RunStatus::Succeeded, "{}", report.summary);
    assert_eq!(applied(&seen), 1);
    let text = std::fs::read_to_string(d.ws.output_dir().join("lunch 14.03.2026.txt")).unwrap();
    assert!(
        text.contains("Café Central\n") && text.contains("TOTAL € 23,90"),
        "{text}"
    );

    // No file named: asked which, never guessed from the folder; a bare
    // name the granted folder holds is enough, and a second file gets a free name.
    let planner = planner(&d, &["projects/receipts"]);
    let gate = Asked::default();
    let (agent, _) = agent(&d.ws, &planner, &gate, AgentSettings::default());
    let asked = agent
        .run(task("turn a PDF into a text file", &["projects/receipts"]))
        .unwrap();
    assert_eq!(asked.status, RunStatus::NeedsInput, "{}", asked.summary);
    let again = agent.resume(&asked.run, Some("nothing.pdf")).unwrap();
    assert_eq!(again.status, RunStatus::NeedsInput, "{}", again.summary);
    assert!(
        again.question.as_deref().unwrap().contains("nothing.pdf"),
        "{:?}",
        again.question
    );
    let done = agent.resume(&asked.run, Some("lunch 14.03.2026.pdf")).unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{}", done.summary);
    let second = std::fs::read_to_string(d.ws.output_dir().join("lunch 14.03.2026-1.txt")).unwrap();
    assert_eq!(second, text);
}

#[test]
fn csv_to_xlsx_and_back_through_the_planner() {
    let d = demo();
    // "convert budget.csv to a spreadsheet" names no folder: asked which file.
    let planner = planner(&d, &["projects/2026 offsite"]);
    let gate = Asked::default();
    let (agent, seen) = agent(&d.ws, &planner, &gate, AgentSettings::default());
    let asked = agent
        .run(task("convert budget.csv to a spreadsheet", &["projects/2026 offsite"]))
        .unwrap();
    assert_eq!(asked.status, RunStatus::NeedsInput, "{}", asked.summary);
    let done = agent.resume(&asked.run, Some("budget.csv")).unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{}", done.summary);
    assert_eq!(applied(&seen), 1);
    let xlsx = d.ws.output_dir().join("budget.xlsx");
    assert!(xlsx.is_file());

    // The workbook, put in a folder, back to CSV: numbers as numbers.
    let inbox = d.ws.root().join("projects/inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::copy(&xlsx, inbox.join("offsite budget.xlsx")).unwrap();
    let (report, _, _) = run(
        &d,
        "export the spreadsheet 'projects/inbox/offsite budget.xlsx' as CSV",
        &["projects/inbox"],
    );
    assert_eq!(report.status, RunStatus::Succeeded, "{}", report.summary);
    let csv = std::fs::read_to_string(d.ws.output_dir().join("offsite budget.csv")).unwrap();
    assert_eq!(
        csv,
        "item,amount_eur\r\nvenue,4200\r\ncatering,1850.5\r\ntravel,3120\r\n"
    );
}
