//! Issue 18's offline skills for common edits, end to end through the
//! offline planner with LibreOffice in the toolbox: `convert-to-pdf` (the
//! runtime's `office__to_pdf`: LibreOffice in the native sandbox, the PDFs
//! through the change pipeline, undone as one) and `combine-workbooks` (the
//! xlsx tool's `combine`, read back by LibreOffice).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use deskhand_runtime::agent::offline::OfflinePlanner;
use deskhand_runtime::agent::{Agent, AgentSettings, Approval, ChangesApproval, Gate, RunReport, StepApproval};
use deskhand_runtime::changeset;
use deskhand_runtime::skills::{self, MatchContext};
use deskhand_runtime::tools::Toolbox;
use deskhand_runtime::wasm::WasmHost;
use deskhand_types::{Event, Mode, RunStatus};

use crate::common::{Demo, LibreOffice, Seen, agent_task as task, blocked, demo, recorder};

/// LibreOffice for the tests, and a toolbox that has it.
pub(crate) fn office() -> &'static (LibreOffice, Toolbox) {
    static OFFICE: OnceLock<(LibreOffice, Toolbox)> = OnceLock::new();
    OFFICE.get_or_init(|| {
        let lo = LibreOffice::new();
        let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wasm-cache");
        let toolbox = Toolbox::new(WasmHost::new(Some(cache)).unwrap()).with_office(Some(lo.engine()));
        (lo, toolbox)
    })
}

/// Approves every step and change.
struct Yes;

impl Gate for Yes {
    fn approve_step(&self, _: &str, _: &StepApproval<'_>) -> Approval {
        Approval::Approved { by: "the test".into() }
    }
    fn approve_changes(&self, _: &str, _: &ChangesApproval<'_>) -> Approval {
        Approval::Approved { by: "the test".into() }
    }
}

/// Runs `outcome` offline in ask mode with `grants` read-only.
fn run(d: &Demo, outcome: &str, grants: &[&str]) -> (RunReport, Seen) {
    let granted: Vec<PathBuf> = grants.iter().map(PathBuf::from).collect();
    let planner = OfflinePlanner::new(
        skills::bundled(),
        MatchContext {
            workspace_root: d.ws.root().into(),
            folders: granted.clone(),
            writable: Vec::new(),
        },
    )
    .with_grants(&granted, String::new());
    let (observer, seen) = recorder();
    let agent = Agent {
        workspace: &d.ws,
        toolbox: &office().1,
        provider: &planner,
        gate: &Yes,
        settings: AgentSettings::default(),
        observer: Some(observer),
        skills_prompt: OfflinePlanner::capabilities(&skills::bundled()),
        shell: None,
    };
    let mut t = task(outcome, grants);
    t.mode = Mode::Ask;
    (agent.run(t).unwrap(), seen)
}

pub(crate) fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/corpus/docx-pptx")
        .join(name)
}

fn pdftotext(pdf: &Path) -> String {
    let out = std::process::Command::new("pdftotext")
        .arg(pdf)
        .arg("-")
        .output()
        .unwrap_or_else(|e| panic!("pdftotext could not start ({e}); run scripts/setup to install poppler-utils"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn convert_to_pdf_converts_a_folders_documents_as_one_undoable_changeset() {
    let d = demo();
    let letters = d.ws.root().join("projects/letters");
    std::fs::create_dir_all(&letters).unwrap();
    std::fs::copy(corpus("mammoth-simple-list.docx"), letters.join("offer.docx")).unwrap();
    std::fs::copy(corpus("python-pptx-test.pptx"), letters.join("pitch.pptx")).unwrap();
    std::fs::write(letters.join("notes.txt"), "not a document").unwrap();
    std::fs::write(letters.join("~$offer.docx"), "an Office lock file").unwrap();
    // A link in the folder is not followed, wherever it points.
    std::os::unix::fs::symlink(corpus("python-docx-test.docx"), letters.join("linked.docx")).unwrap();
    let before = crate::common::tree(&letters);

    let (report, seen) = run(
        &d,
        "convert the Word documents in projects/letters to PDF",
        &["projects/letters"],
    );
    assert_eq!(report.status, RunStatus::Succeeded, "{}", report.summary);
    let out = d.ws.output_dir();
    let offer = out.join("offer.pdf");
    let pitch = out.join("pitch.pdf");
    assert!(pdftotext(&offer).contains("Apple"), "{}", pdftotext(&offer));
    assert!(pitch.is_file());
    assert!(!out.join("linked.pdf").exists() && !out.join("notes.pdf").exists());
    assert_eq!(crate::common::tree(&letters), before, "nothing changed in the folder");
    let applied: Vec<usize> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, e)| match e {
            Event::ChangesApplied { count, .. } => Some(*count),
            _ => None,
        })
        .collect();
    assert_eq!(applied, [2], "both PDFs in one changeset");

    // A second run never overwrites: offer-1.pdf beside offer.pdf.
    std::fs::remove_file(letters.join("pitch.pptx")).unwrap();
    let (again, _) = run(&d, "convert projects/letters/offer.docx to PDF", &["projects/letters"]);
    assert_eq!(again.status, RunStatus::Succeeded, "{}", again.summary);
    assert!(out.join("offer-1.pdf").is_file());
    // Undone, the second run's PDF goes and the first run's stay.
    changeset::undo(&d.ws, &again.run, false).unwrap();
    assert!(!out.join("offer-1.pdf").exists());
    assert!(offer.is_file());
    changeset::undo(&d.ws, &report.run, false).unwrap();
    assert!(!offer.exists() && !pitch.exists());
}

#[test]
fn convert_to_pdf_of_a_damaged_document_names_it_and_writes_nothing() {
    let d = demo();
    let letters = d.ws.root().join("projects/letters");
    std::fs::create_dir_all(&letters).unwrap();
    std::fs::copy(corpus("mammoth-simple-list.docx"), letters.join("a good one.docx")).unwrap();
    std::fs::write(letters.join("broken.docx"), b"PK\x03\x04 this is not a zip at all").unwrap();

    let (report, _) = run(
        &d,
        "convert the documents in projects/letters to pdf",
        &["projects/letters"],
    );
    assert_ne!(report.status, RunStatus::Succeeded, "{}", report.summary);
    assert!(report.summary.contains("broken.docx"), "{}", report.summary);
    let pdfs: Vec<String> = crate::common::tree(&d.ws.output_dir())
        .into_keys()
        .filter(|name| name.ends_with(".pdf"))
        .collect();
    assert!(
        pdfs.is_empty(),
        "all or none: the good one's PDF was not delivered either: {pdfs:?}"
    );
}

#[test]
fn convert_to_pdf_refuses_a_file_outside_the_grants() {
    let d = demo();
    let letters = d.ws.root().join("projects/letters");
    std::fs::create_dir_all(&letters).unwrap();
    std::fs::copy(
        corpus("mammoth-simple-list.docx"),
        d.ws.root().join("context/secret.docx"),
    )
    .unwrap();
    // The task names a file in context/, but only projects/letters is granted.
    let (report, seen) = run(&d, "convert context/secret.docx to PDF", &["projects/letters"]);
    assert_ne!(report.status, RunStatus::Succeeded, "{}", report.summary);
    assert!(!d.ws.output_dir().join("secret.pdf").exists());
    let blocked = blocked(&seen);
    assert!(
        blocked.iter().any(|b| b.contains("context/secret.docx")),
        "the refusal names the file: {blocked:?} ({})",
        report.summary
    );
}

#[test]
fn combine_workbooks_stacks_or_keeps_the_first_sheets_of_a_folder() {
    let d = demo();
    let monthly = d.ws.root().join("projects/monthly");
    std::fs::create_dir_all(&monthly).unwrap();
    std::fs::write(
        monthly.join("march 2.csv"),
        "Date,Amount\n2026-03-02,10.5\n2026-03-03,4\n",
    )
    .unwrap();
    std::fs::write(monthly.join("march 10.csv"), "amount , Note\n7,taxi\n").unwrap();
    std::fs::write(monthly.join(".hidden.csv"), "x\n1\n").unwrap();

    let (stacked, _) = run(
        &d,
        "stack the sheets of the files in projects/monthly under one header",
        &["projects/monthly"],
    );
    assert_eq!(stacked.status, RunStatus::Succeeded, "{}", stacked.summary);
    let book = d.ws.output_dir().join("monthly-combined.xlsx");
    let (lo, _) = office();
    assert_eq!(
        lo.sheet_csv(&book, 1, "Combined"),
        "Source,Date,Amount,Note\nmarch 2.csv,2026-03-02,10.5,\nmarch 2.csv,2026-03-03,4,\nmarch 10.csv,,7,taxi\n"
    );

    let (sheets, _) = run(&d, "combine the workbooks in projects/monthly", &["projects/monthly"]);
    assert_eq!(sheets.status, RunStatus::Succeeded, "{}", sheets.summary);
    let book = d.ws.output_dir().join("monthly-combined-1.xlsx");
    assert_eq!(
        lo.sheet_csv(&book, 1, "march 2"),
        "Date,Amount\n2026-03-02,10.5\n2026-03-03,4\n"
    );
    assert_eq!(lo.sheet_csv(&book, 2, "march 10"), "amount , Note\n7,taxi\n");
}

#[test]
fn fill_template_makes_one_letter_per_row_whichever_order_the_task_names_the_files() {
    let d = demo();
    let letters = d.ws.root().join("projects/letters");
    std::fs::create_dir_all(&letters).unwrap();
    crate::docx_edit::make_letter(&letters.join("letter.docx"));
    std::fs::write(
        letters.join("clients.csv"),
        "client,fee,notes\nAcme,100,\nBolt & Co,200,\n",
    )
    .unwrap();
    let before = crate::common::tree(&letters);

    // The values named first, the template second: each goes where it fits.
    let (report, _) = run(
        &d,
        "make a letter for each row of projects/letters/clients.csv from projects/letters/letter.docx",
        &["projects/letters"],
    );
    assert_eq!(report.status, RunStatus::Succeeded, "{}", report.summary);
    let out = d.ws.output_dir();
    let (lo, _) = office();
    let dir = tempfile::tempdir().unwrap();
    let acme = lo.convert(
        &out.join("letter-Acme.docx"),
        "txt:Text (encoded):UTF8",
        "txt",
        dir.path(),
    );
    let acme = std::fs::read_to_string(acme).unwrap();
    assert!(
        acme.contains("Dear Acme,") && acme.contains("The fee is 100 for"),
        "{acme}"
    );
    assert!(out.join("letter-Bolt & Co.docx").is_file());
    assert_eq!(
        crate::common::tree(&letters),
        before,
        "the template and the values are unchanged"
    );

    // Again: free names, never over the first run's letters.
    let (again, _) = run(
        &d,
        "fill the template projects/letters/letter.docx with projects/letters/clients.csv",
        &["projects/letters"],
    );
    assert_eq!(again.status, RunStatus::Succeeded, "{}", again.summary);
    assert!(out.join("letter-Acme-1.docx").is_file(), "{}", again.summary);
}
