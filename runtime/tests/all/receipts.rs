//! The `receipts-to-spreadsheet` skill's tool end to end, in the real
//! sandbox: the demo's receipts (a semicolon bank export with decimal commas
//! and text PDFs) become a workbook whose SUMIF totals LibreOffice computes to
//! the expected values, and a summary PDF poppler reads back; receipts it
//! cannot read are named, never guessed, and never stop the others.

use deskhand_runtime::tools::{CallRequest, Toolbox, run_call};
use deskhand_runtime::wasm::{Limits, WasmHost};
use deskhand_types::Grant;
use serde_json::{Value, json};

use crate::common::{LibreOffice, call_tool, corpus, pdftotext, tree};

fn toolbox_with(lo: &LibreOffice) -> Toolbox {
    let cache = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wasm-cache");
    Toolbox::new(WasmHost::new(Some(cache)).unwrap()).with_office(Some(lo.engine()))
}

fn call(ws: &deskhand_runtime::workspace::Workspace, tb: &Toolbox, tool: &str, op: &str, args: Value) -> Value {
    call_tool(tb, ws, tool, op, args, &[Grant::read_only("projects")]).unwrap_or_else(|e| panic!("{tool} {op}: {e}"))
}

#[test]
fn the_demo_receipts_become_a_workbook_with_computed_totals_and_a_summary() {
    let lo = LibreOffice::new();
    let tb = toolbox_with(&lo);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("demo");
    deskhand_runtime::demo::create_demo_workspace(&root).unwrap();
    let ws = deskhand_runtime::workspace::Workspace::open(&root).unwrap();
    let receipts_before = tree(&root.join("projects/receipts"));

    let out = call(&ws, &tb, "receipts", "run", json!({"folder": "projects/receipts"}));
    assert_eq!(out["rows"], 5, "{out}");
    assert_eq!(out["credits_skipped"], 1, "the salary is money in: {out}");
    assert_eq!(out["unread"], json!([]), "{out}");

    // Every purchase once: the taxi and the café matched to their bank lines.
    let data = call(
        &ws,
        &tb,
        "xlsx",
        "read",
        json!({"path": "output/expenses.xlsx", "sheet": "Expenses"}),
    );
    let mut rows = data["sheets"][0]["rows"].as_array().unwrap().clone();
    // The sheet ends with its total row, a formula over the amounts.
    let total_row = rows.pop().unwrap();
    assert_eq!(total_row[0], "Total", "{total_row}");
    assert_eq!(total_row[3]["formula"], "SUM(D2:D6)", "{total_row}");
    let merchants: Vec<&str> = rows.iter().map(|r| r[1].as_str().unwrap()).collect();
    assert_eq!(
        merchants,
        [
            "Taxi Lisboa",
            "GITHUB SUBSCRIPTION",
            "Staples Lisboa printer paper",
            "Café Central",
            "Hotel Avenida"
        ]
    );
    assert_eq!(rows[0][5], "2026-03-02 taxi.pdf + bank-export-march.csv line 2");
    assert_eq!(rows[4][3], json!({"amount": 412.0, "currency": "EUR"}));

    // The independent engine: LibreOffice recalculates the Summary sheet's
    // SUMIF formulas from a copy with the stored values ignored.
    let workbook = ws.output_dir().join("expenses.xlsx");
    let csv = lo.sheet_csv(&workbook, 2, "Summary");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "Category,Currency,Total,Purchases", "{csv}");
    for expected in [
        "Travel,EUR,18.4,1",
        "Lodging,EUR,412,1",
        "Meals,EUR,23.9,1",
        "Office,EUR,27.35,1",
        "Software,EUR,4,1",
        "Total,,485.65,5",
    ] {
        assert!(
            lines.iter().any(|l| l.replace('"', "") == expected),
            "{expected} in:\n{csv}"
        );
    }
    // The workbook itself stores those values for viewers that do not recalculate.
    let summary = call(
        &ws,
        &tb,
        "xlsx",
        "read",
        json!({"path": "output/expenses.xlsx", "sheet": "Summary"}),
    );
    let total = summary["sheets"][0]["rows"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        total[2],
        json!({"formula": "SUM(C2:C6)", "value": {"amount": 485.65, "currency": "EUR"}}),
        "the totals are in euros, as the amounts are"
    );

    let text = pdftotext(&ws.output_dir().join("expenses-summary.pdf"));
    for needle in [
        "Expenses summary",
        "Total spent: €485.65",
        "Period: from 2026-03-02 to 2026-03-17",
        "Totals by category",
        "€412.00",
        "Café Central",
        "Hotel Avenida",
    ] {
        assert!(text.contains(needle), "{needle} in:\n{text}");
    }
    // The grand total closes the PDF's totals table too.
    assert!(
        text.lines()
            .any(|l| l.starts_with("Total") && l.contains("€485.65") && l.contains('5')),
        "{text}"
    );
    the_workbook_prints_as_a_person_would_hand_it_on(&lo, &workbook);
    assert_eq!(
        tree(&root.join("projects/receipts")),
        receipts_before,
        "the receipts are only read"
    );
}

/// LibreOffice renders the workbook as printed: each sheet one page wide
/// (one page each here, the chart whole beside its table), every value
/// shown (a column too narrow shows `###`), amounts in euros on both
/// sheets, and a total row on Expenses.
fn the_workbook_prints_as_a_person_would_hand_it_on(lo: &LibreOffice, workbook: &std::path::Path) {
    let dir = tempfile::tempdir().unwrap();
    let pdf = lo.convert(workbook, "pdf", "pdf", dir.path());
    let text = pdftotext(&pdf);
    assert!(!text.contains('#'), "a column too narrow for its values:\n{text}");
    let pages: Vec<&str> = text.split('\u{c}').filter(|p| !p.trim().is_empty()).collect();
    assert_eq!(pages.len(), 2, "one page a sheet:\n{text}");
    let (expenses, summary) = (pages[0], pages[1]);
    for needle in ["Total", "€485.65", "€412.00"] {
        assert!(expenses.contains(needle), "{needle} on the Expenses page:\n{expenses}");
    }
    for needle in [
        "€412.00",
        "€18.40",
        "€485.65",
        "Total",
        "Expenses by category",
        "Software",
    ] {
        assert!(summary.contains(needle), "{needle} on the Summary page:\n{summary}");
    }
}

#[test]
fn a_period_limits_the_purchases_and_the_answer_says_the_total() {
    let lo = LibreOffice::new();
    let tb = toolbox_with(&lo);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("demo");
    deskhand_runtime::demo::create_demo_workspace(&root).unwrap();
    let ws = deskhand_runtime::workspace::Workspace::open(&root).unwrap();
    let result = run_call(
        &ws,
        &tb,
        &CallRequest {
            tool: "receipts",
            operation: "run",
            args: json!({"folder": "projects/receipts", "period": "2026-03-10..2026-03-31"}),
            grants: &[Grant::read_only("projects")],
            limits: Limits::default(),
        },
        None,
    )
    .unwrap();
    let out = &result.output;
    assert!(
        out.text
            .starts_with("Spent €435.90 on 2 purchases from 2026-03-10 to 2026-03-31"),
        "{}",
        out.text
    );
    assert_eq!(out.json["rows"], 2);
    assert_eq!(out.json["period"], json!({"from": "2026-03-10", "to": "2026-03-31"}));
    assert_eq!(out.json["totals"], json!([{"currency": "EUR", "total": 435.9}]));
    let text = pdftotext(&ws.output_dir().join("expenses-summary.pdf"));
    assert!(text.contains("Period: 2026-03-10 to 2026-03-31 (as asked)"), "{text}");
    assert!(text.contains("3 purchase(s) dated outside it"), "{text}");

    // A period nothing falls in is said, and nothing is written.
    let err = run_call(
        &ws,
        &tb,
        &CallRequest {
            tool: "receipts",
            operation: "run",
            args: json!({"folder": "projects/receipts", "period": "2025-01"}),
            grants: &[Grant::read_only("projects")],
            limits: Limits::default(),
        },
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("is dated 2025-01-01 to 2025-01-31"), "{err}");
}

#[test]
fn unreadable_receipts_are_named_and_the_rest_still_delivered() {
    let lo = LibreOffice::new();
    let tb = toolbox_with(&lo);
    let tmp = tempfile::tempdir().unwrap();
    let (ws, _) = deskhand_runtime::workspace::Workspace::init(&tmp.path().join("ws")).unwrap();
    let dir = ws.root().join("projects/trip");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("train.pdf"),
        deskhand_runtime::demo::text_pdf(&["CP Comboios", "05.03.2026", "Total: 31.20 EUR"]),
    )
    .unwrap();
    let good = std::fs::read(dir.join("train.pdf")).unwrap();
    std::fs::write(dir.join("cut.pdf"), &good[..good.len() / 2]).unwrap();
    std::fs::write(dir.join("note.txt"), "Remember to ask for an invoice\n").unwrap();
    std::fs::write(dir.join("photo.jpg"), [0xFF, 0xD8, 0xFF]).unwrap();
    let locked = corpus("pdf").map(|d| d.join("encrypted-file.pdf"));
    if let Some(locked) = &locked {
        std::fs::copy(locked, dir.join("locked.pdf")).unwrap();
    }

    let out = call(&ws, &tb, "receipts", "run", json!({"folder": "projects/trip"}));
    assert_eq!(out["rows"], 1, "{out}");
    let unread = out["unread"].to_string();
    assert!(unread.contains("cut.pdf") && unread.contains("damaged"), "{unread}");
    assert!(
        !unread.contains("\"password\" argument"),
        "the skill takes no password: {unread}"
    );
    assert!(
        unread.contains("note.txt") && unread.contains("no line with a total"),
        "{unread}"
    );
    if locked.is_some() {
        assert!(
            unread.contains("locked.pdf") && unread.contains("encrypted"),
            "{unread}"
        );
    }
    assert_eq!(out["skipped"], json!(["photo.jpg"]));
    let text = pdftotext(&ws.output_dir().join("expenses-summary.pdf"));
    assert!(
        text.contains("cut.pdf: not read"),
        "the summary says what it left out:\n{text}"
    );

    // A folder with nothing readable is an error, and nothing is written.
    let empty = ws.root().join("projects/empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("note.txt"), "no totals here\n").unwrap();
    let before = tree(&ws.output_dir());
    let err = run_call(
        &ws,
        &tb,
        &CallRequest {
            tool: "receipts",
            operation: "run",
            args: json!({"folder": "projects/empty"}),
            grants: &[Grant::read_only("projects")],
            limits: Limits::default(),
        },
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("holds no receipt") && err.contains("note.txt"), "{err}");
    assert_eq!(tree(&ws.output_dir()), before);
}
