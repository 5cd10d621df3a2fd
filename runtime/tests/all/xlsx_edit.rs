//! `xlsx edit` through the real sandbox: the proposed overwrite is applied
//! as a changeset (and undone), and the result is checked by readers that
//! share no code with the edit: Python's zipfile (every part not meant to
//! change is byte-identical), openpyxl and calamine (through `xlsx read`)
//! for the cells, and LibreOffice, which recalculates the formulas. The
//! corpus of real workbooks no one here wrote is edited one cell each.

use std::path::{Path, PathBuf};

use deskhand_runtime::changeset;
use deskhand_runtime::tools::Toolbox;
use deskhand_types::{Event, Grant, RunId, ToolError, ToolOutput};
use serde_json::{Value, json};

use crate::common::{
    Edited, Fixture, LibreOffice, MAKE_ZIP, RAW_ZIP_DIFF, apply_edit, corpus, files_with, py_with, run_edit, rw,
    toolbox, tree,
};

/// The venv `scripts/setup` installs openpyxl into, else `python3`.
fn python() -> PathBuf {
    let venv = option_env!("HOME").map(|home| Path::new(home).join(".cache/deskhand/openpyxl-3.1.5/bin/python"));
    match venv {
        Some(p) if p.exists() => p,
        _ => PathBuf::from("python3"),
    }
}

/// Runs a Python script with JSON arguments under [`python`] and returns its JSON output.
fn py(script: &str, args: &Value) -> Value {
    py_with(&python(), script, args)
}

/// The end of a script that begins with [`RAW_ZIP_DIFF`]: with openpyxl,
/// compares every cell of every sheet (formulas as text) and adds the cells
/// that differ to the raw entries that do.
const CELL_DIFF: &str = r#"
def cells(path):
    import openpyxl, warnings
    warnings.simplefilter("ignore")
    # Read-only, sized from the cells themselves: a sheet whose dimension says
    # A1:XFD1048576 (issue_174.xlsx) would otherwise be walked cell by cell.
    wb = openpyxl.load_workbook(path, read_only=True, keep_links=True)
    out = {}
    for ws in wb.worksheets:
        ws.reset_dimensions()
        for row in ws.iter_rows():
            for c in row:
                if c.value is not None:
                    v = c.value
                    out[f"{ws.title}!{c.coordinate}"] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out
if a.get("cells", True):
    try:
        x = cells(a["before"])
    except Exception as e:
        x = None
        result["openpyxl_before"] = f"{type(e).__name__}: {e}"
    try:
        y = cells(a["after"])
    except Exception as e:
        y = None
        result["openpyxl_after"] = f"{type(e).__name__}: {e}"
    if x is not None and y is not None:
        result["cells"] = {k: [x.get(k), y.get(k)] for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)}
print(json.dumps(result))
"#;

fn edit(fx: &Fixture, path: &Path, edits: Value, grants: &[Grant]) -> Edited<'static> {
    run_edit(toolbox(), fx, "xlsx", path, edits, grants, &|_| {})
}

/// Runs `xlsx edit` on `path` and applies its proposal as a changeset; the
/// result and the run the changeset belongs to (for undo).
fn edit_and_apply(fx: &Fixture, path: &Path, edits: Value, grants: &[Grant]) -> Result<(ToolOutput, RunId), ToolError> {
    edit_and_apply_with(toolbox(), fx, path, edits, grants, &|_| {})
}

/// [`edit_and_apply`] with `tb`, its events to `emit`.
fn edit_and_apply_with(
    tb: &Toolbox,
    fx: &Fixture,
    path: &Path,
    edits: Value,
    grants: &[Grant],
    emit: &(dyn Fn(Event) + Sync),
) -> Result<(ToolOutput, RunId), ToolError> {
    let (output, prepared) = run_edit(tb, fx, "xlsx", path, edits, grants, emit)?;
    let run = apply_edit(fx, "xlsx edit", &output, &prepared, grants);
    Ok((output, run))
}

const CT: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/worksheets/sheet2.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/calcChain.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.calcChain+xml"/><Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/><Override PartName="/docProps/custom.xml" ContentType="application/vnd.openxmlformats-officedocument.custom-properties+xml"/></Types>"#;
const ROOT_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/custom-properties" Target="docProps/custom.xml"/></Relationships>"#;
const WORKBOOK: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Data" sheetId="1" r:id="rId1"/><sheet name="Summary" sheetId="2" r:id="rId2"/></sheets><definedNames><definedName name="Amounts">Data!$B$2:$B$5</definedName></definedNames><calcPr calcId="191029"/></workbook>"#;
const WB_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet2.xml"/><Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/><Relationship Id="rId4" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/calcChain" Target="calcChain.xml"/></Relationships>"#;
const STYLES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><numFmts count="1"><numFmt numFmtId="164" formatCode="0.00"/></numFmts><fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts><fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills><borders count="1"><border/></borders><cellStyleXfs count="1"><xf/></cellStyleXfs><cellXfs count="2"><xf/><xf numFmtId="164" applyNumberFormat="1"/></cellXfs></styleSheet>"#;
/// Data: amounts in B2:B5 (styled 0.00), C2:C5 a shared formula B*2 whose
/// master is C2.
const SHEET1: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><dimension ref="A1:C5"/><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>item</t></is></c><c r="B1" t="inlineStr"><is><t>amount</t></is></c><c r="C1" t="inlineStr"><is><t>double</t></is></c></row><row r="2"><c r="A2" t="inlineStr"><is><t>a</t></is></c><c r="B2" s="1"><v>10</v></c><c r="C2"><f t="shared" ref="C2:C5" si="0">B2*2</f><v>20</v></c></row><row r="3"><c r="A3" t="inlineStr"><is><t>b</t></is></c><c r="B3" s="1"><v>20</v></c><c r="C3"><f t="shared" si="0"/><v>40</v></c></row><row r="4"><c r="A4" t="inlineStr"><is><t>c</t></is></c><c r="B4" s="1"><v>30</v></c><c r="C4"><f t="shared" si="0"/><v>60</v></c></row><row r="5"><c r="A5" t="inlineStr"><is><t>d</t></is></c><c r="B5" s="1"><v>40</v></c><c r="C5"><f t="shared" si="0"/><v>80</v></c></row></sheetData></worksheet>"#;
const SHEET2: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>total</t></is></c><c r="B1"><f>SUM(Data!B2:B5)</f><v>100</v></c><c r="C1"><f>SUM(Amounts)</f><v>100</v></c></row></sheetData></worksheet>"#;
const CALC_CHAIN: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<calcChain xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><c r="C2" i="1"/><c r="C3" i="1"/><c r="C4" i="1"/><c r="C5" i="1"/><c r="B1" i="2"/><c r="C1" i="2"/></calcChain>"#;
const CUSTOM: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/custom-properties" xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"><property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="2" name="keep"><vt:lpwstr>byte for byte</vt:lpwstr></property></Properties>"#;

/// Every non-empty cell of a workbook as openpyxl reads it (formulas as
/// text), and its defined names.
const DUMP: &str = r#"
import json, sys, openpyxl
a = json.loads(sys.argv[1])
wb = openpyxl.load_workbook(a["path"])
out = {f"{ws.title}!{c.coordinate}": c.value for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.value is not None}
out["names"] = {n: d.attr_text for n, d in wb.defined_names.items()}
out["formats"] = {f"{ws.title}!{c.coordinate}": c.number_format for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.number_format != "General"}
print(json.dumps(out))
"#;

/// The fixture workbook at `path`, with parts replaced by `overrides`.
fn make_workbook(path: &Path, overrides: &[(&str, &str)]) {
    let mut parts = vec![
        ("[Content_Types].xml", CT),
        ("_rels/.rels", ROOT_RELS),
        ("xl/workbook.xml", WORKBOOK),
        ("xl/_rels/workbook.xml.rels", WB_RELS),
        ("xl/styles.xml", STYLES),
        ("xl/worksheets/sheet1.xml", SHEET1),
        ("xl/worksheets/sheet2.xml", SHEET2),
        ("xl/calcChain.xml", CALC_CHAIN),
        ("docProps/custom.xml", CUSTOM),
    ];
    for (name, text) in overrides {
        match parts.iter_mut().find(|(n, _)| n == name) {
            Some(p) => p.1 = text,
            None => parts.push((name, text)),
        }
    }
    py(MAKE_ZIP, &json!({"path": path, "parts": parts}));
}

fn compare(before: &Path, after: &Path, cells: bool) -> Value {
    py(
        &format!("{RAW_ZIP_DIFF}{CELL_DIFF}"),
        &json!({"before": before, "after": after, "cells": cells}),
    )
}

/// Sheet `number` of a workbook as LibreOffice computes it, as rows of fields.
fn lo_rows(lo: &LibreOffice, workbook: &Path, number: u32, name: &str) -> Vec<Vec<String>> {
    lo.sheet_csv(workbook, number, name)
        .lines()
        .map(|l| l.split(',').map(|f| f.trim_matches('"').to_owned()).collect())
        .collect()
}

#[test]
fn describes_edit_as_a_read_of_its_path_that_proposes_an_overwrite() {
    let tool = toolbox().get(deskhand_runtime::tools::BundledTool::Xlsx).unwrap();
    let op = tool.description().operation("edit").unwrap();
    assert_eq!(op.effects.reads, vec!["path".to_owned()]);
    assert!(op.effects.writes.is_empty() && !op.effects.network);
    assert!(op.summary.contains("byte for byte"), "{}", op.summary);
}

#[test]
fn cells_rows_and_sheets_change_in_one_call_and_the_rest_stays_byte_for_byte() {
    let lo = LibreOffice::new();
    let fx = Fixture::new();
    let book = fx.inbox.join("budget.xlsx");
    make_workbook(&book, &[]);
    let original = fx._tmp.path().join("original.xlsx");
    std::fs::copy(&book, &original).unwrap();
    let grants = [rw(&fx.inbox)];
    let before = tree(&fx.inbox);

    let edits = json!([
        // The master of the shared formula C2:C5 is overwritten: C3:C5 must keep doubling.
        {"op": "set", "sheet": "Data", "cell": "C2", "value": {"formula": "=B2*3"}},
        {"op": "set", "sheet": "Data", "cell": "B4", "value": 35.5},
        {"op": "set", "sheet": "Data", "cell": "A6", "value": "e & <f>"},
        {"op": "insert_rows", "sheet": "Data", "row": 3, "count": 2},
        {"op": "set", "sheet": "Data", "cell": "B3", "value": 1},
        {"op": "add_sheet", "name": "Notes"},
        {"op": "set", "sheet": "Notes", "cell": "A1", "value": {"formula": "Data!B2+Data!B3"}},
        {"op": "rename_sheet", "sheet": "Data", "name": "Q1 data"}
    ]);
    let (output, run) = edit_and_apply(&fx, &book, edits, &grants).unwrap();
    let summary = &output.json;
    assert_eq!(summary["calc_chain_dropped"], true, "{summary}");
    assert_eq!(summary["recalculate_on_open"], true, "{summary}");

    let diff = compare(&original, &book, true);
    assert_eq!(
        diff["changed"],
        json!([
            "[Content_Types].xml",
            "xl/_rels/workbook.xml.rels",
            "xl/workbook.xml",
            "xl/worksheets/sheet1.xml",
            "xl/worksheets/sheet2.xml"
        ]),
        "{diff}"
    );
    assert_eq!(diff["removed"], json!(["xl/calcChain.xml"]), "{diff}");
    assert_eq!(diff["added"], json!(["xl/worksheets/sheet3.xml"]), "{diff}");
    // openpyxl: every cell as expected (formulas as text), Summary following the rename and the rows.
    let cells = py(DUMP, &json!({"path": book}));
    assert_eq!(
        cells,
        json!({
            "Q1 data!A1": "item", "Q1 data!B1": "amount", "Q1 data!C1": "double",
            "Q1 data!A2": "a", "Q1 data!B2": 10, "Q1 data!C2": "=B2*3",
            "Q1 data!B3": 1,
            "Q1 data!A5": "b", "Q1 data!B5": 20, "Q1 data!C5": "=B5*2",
            "Q1 data!A6": "c", "Q1 data!B6": 35.5, "Q1 data!C6": "=B6*2",
            "Q1 data!A7": "d", "Q1 data!B7": 40, "Q1 data!C7": "=B7*2",
            "Q1 data!A8": "e & <f>",
            "Summary!A1": "total", "Summary!B1": "=SUM('Q1 data'!B2:B7)", "Summary!C1": "=SUM(Amounts)",
            "Notes!A1": "='Q1 data'!B2+'Q1 data'!B3",
            "names": {"Amounts": "'Q1 data'!$B$2:$B$7"},
            // Cells keep their style: B6 (was B4, set to 35.5) too.
            "formats": {"Q1 data!B2": "0.00", "Q1 data!B5": "0.00", "Q1 data!B6": "0.00", "Q1 data!B7": "0.00"}
        })
    );

    // LibreOffice recalculates: C = B*3 at the old master, B*2 elsewhere; the totals follow.
    let data = lo_rows(&lo, &book, 1, "Q1 data");
    let col = |r: usize, c: usize| {
        data.get(r - 1)
            .and_then(|row| row.get(c - 1))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        (col(2, 3), col(5, 3), col(6, 3), col(7, 3)),
        ("30".into(), "40".into(), "71".into(), "80".into()),
        "{data:?}"
    );
    let summary_sheet = lo_rows(&lo, &book, 2, "Summary");
    assert_eq!(summary_sheet[0][1], "106.5", "{summary_sheet:?}");
    assert_eq!(
        summary_sheet[0][2], "106.5",
        "the defined name follows the rows: {summary_sheet:?}"
    );
    let notes = lo_rows(&lo, &book, 3, "Notes");
    assert_eq!(notes[0][0], "11", "{notes:?}");

    changeset::undo(&fx.ws, &run, false).unwrap();
    assert_eq!(tree(&fx.inbox), before, "undo restores the workbook byte for byte");
}

#[test]
fn a_new_value_asks_for_recalculation_and_drops_the_calc_chain() {
    let fx = Fixture::new();
    let book = fx.inbox.join("b.xlsx");
    make_workbook(&book, &[]);
    let original = fx._tmp.path().join("original.xlsx");
    std::fs::copy(&book, &original).unwrap();
    edit_and_apply(
        &fx,
        &book,
        json!([{"op": "set", "sheet": "Data", "cell": "B2", "value": 11}]),
        &[rw(&fx.inbox)],
    )
    .unwrap();
    let diff = compare(&original, &book, true);
    // A value changed under formulas: recalculation is asked for and the chain goes.
    assert_eq!(
        diff["changed"],
        json!([
            "[Content_Types].xml",
            "xl/_rels/workbook.xml.rels",
            "xl/workbook.xml",
            "xl/worksheets/sheet1.xml"
        ]),
        "{diff}"
    );
    assert_eq!(diff["removed"], json!(["xl/calcChain.xml"]), "{diff}");
    assert_eq!(diff["cells"], json!({"Data!B2": [10, 11]}), "{diff}");
}

#[test]
fn what_cannot_be_moved_safely_is_refused_and_nothing_changes() {
    let fx = Fixture::new();
    let grants = [rw(&fx.inbox)];
    let merged = SHEET1.replace(
        "</sheetData>",
        "</sheetData><mergeCells count=\"1\"><mergeCell ref=\"A4:B4\"/></mergeCells>",
    );
    let book = fx.inbox.join("merged.xlsx");
    make_workbook(&book, &[("xl/worksheets/sheet1.xml", &merged)]);
    let before = tree(&fx.inbox);
    let err = edit(
        &fx,
        &book,
        json!([{"op": "insert_rows", "sheet": "Data", "row": 2}]),
        &grants,
    )
    .unwrap_err();
    assert!(
        matches!(err, ToolError::BadContent { .. }) && err.to_string().contains("merged cells"),
        "{err}"
    );
    // Rows below the merge are fine.
    edit(
        &fx,
        &book,
        json!([{"op": "insert_rows", "sheet": "Data", "row": 5}]),
        &grants,
    )
    .unwrap();
    assert_eq!(tree(&fx.inbox), before);

    let err = edit(
        &fx,
        &book,
        json!([{"op": "set", "sheet": "Nope", "cell": "A1", "value": 1}]),
        &grants,
    )
    .unwrap_err();
    assert!(
        matches!(err, ToolError::InvalidArgs { .. }) && err.to_string().contains("Data"),
        "{err}"
    );
    let err = edit(
        &fx,
        &book,
        json!([{"op": "rename_sheet", "sheet": "Data", "name": "summary"}]),
        &grants,
    )
    .unwrap_err();
    assert!(err.to_string().contains("already the name"), "{err}");
}

#[test]
fn strict_encrypted_malformed_and_non_workbooks_are_refused_by_name() {
    let fx = Fixture::new();
    let grants = [rw(&fx.inbox)];
    let strict_rels = ROOT_RELS.replace(
        "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument",
        "http://purl.oclc.org/ooxml/officeDocument/relationships/officeDocument",
    );
    let strict = fx.inbox.join("strict.xlsx");
    make_workbook(&strict, &[("_rels/.rels", &strict_rels)]);
    let truncated = fx.inbox.join("truncated.xlsx");
    let mut bytes = std::fs::read(&strict).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&truncated, bytes).unwrap();
    let docx = fx.inbox.join("letter.xlsx");
    py(
        MAKE_ZIP,
        &json!({"path": docx, "parts": [["[Content_Types].xml", "<Types/>"], ["word/document.xml", "<w:document/>"]]}),
    );
    let mut cases = vec![
        (strict, "Strict Open XML"),
        (truncated, "damaged or truncated"),
        (docx, "Word document"),
    ];
    if let Some(dir) = corpus("spreadsheets") {
        let encrypted = fx.inbox.join("pass_protected.xlsx");
        std::fs::copy(dir.join("pass_protected.xlsx"), &encrypted).unwrap();
        cases.push((encrypted, "encrypted"));
    }
    for (path, what) in cases {
        let err = edit(
            &fx,
            &path,
            json!([{"op": "set", "sheet": "Data", "cell": "A1", "value": 1}]),
            &grants,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, ToolError::BadContent { .. }) && msg.contains(what),
            "{}: {msg}",
            path.display()
        );
    }
}

/// Every xlsx/xlsm of the shared corpus, one cell set on its first
/// worksheet: the changeset applies, only that worksheet (and the
/// workbook-level parts a recalculation needs) differ, openpyxl sees only
/// that cell change, `xlsx read` (calamine) sees the same, and LibreOffice
/// opens the result.
#[test]
fn every_corpus_workbook_edited_at_one_cell_keeps_everything_else() {
    let Some(dir) = corpus("spreadsheets") else {
        eprintln!("../shared/corpus/spreadsheets is not there; skipped");
        return;
    };
    let lo = LibreOffice::new();
    let fx = Fixture::new();
    let grants = [rw(&fx.inbox)];
    let (mut edited, mut refused) = (Vec::new(), Vec::new());
    let mut shown = 0;
    for file in files_with(&dir, &["xlsx", "xlsm"]) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let book = fx.inbox.join(&name);
        std::fs::copy(&file, &book).unwrap();
        let read = crate::common::call_tool(
            toolbox(),
            &fx.ws,
            "xlsx",
            "read",
            json!({"path": book, "header": false, "formulas": true, "max_rows": 1_048_576}),
            &grants,
        );
        let Ok(read) = read else {
            // What calamine cannot read (a damaged zip, an encrypted file) edit refuses by name.
            let e = edit(
                &fx,
                &book,
                json!([{"op": "set", "sheet": "Sheet1", "cell": "A1", "value": NEW}]),
                &grants,
            )
            .err()
            .unwrap_or_else(|| panic!("{name}: unreadable, yet edited"));
            assert!(
                matches!(e, ToolError::BadContent { .. }) && e.to_string().contains(&name),
                "{name}: {e}"
            );
            refused.push(format!("{name}: {e}"));
            continue;
        };
        let Some(sheet) = read["sheets"]
            .as_array()
            .and_then(|s| s.first())
            .map(|s| s["name"].as_str().unwrap_or_default().to_owned())
        else {
            refused.push(format!("{name}: no worksheet"));
            continue;
        };
        let result = edit_and_apply(
            &fx,
            &book,
            json!([{"op": "set", "sheet": sheet, "cell": "A1", "value": NEW}]),
            &grants,
        );
        match result {
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    matches!(e, ToolError::BadContent { .. }) && msg.contains(&name),
                    "{name}: {msg}"
                );
                refused.push(format!("{name}: {msg}"));
                continue;
            }
            Ok(_) => edited.push(name.clone()),
        }
        let diff = compare(&file, &book, true);
        // The workbook part may lie outside xl/ (minimal_package.xlsx has it at the root).
        let allowed = ["[Content_Types].xml", "workbook.xml.rels", "workbook.xml"];
        let changed: Vec<&str> = diff["changed"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let sheets_changed: Vec<&&str> = changed
            .iter()
            .filter(|n| !allowed.contains(&n.rsplit('/').next().unwrap_or_default()))
            .collect();
        assert!(
            sheets_changed.len() <= 1 && sheets_changed.iter().all(|n| n.contains("sheet")),
            "{name}: {diff}"
        );
        assert!(diff["added"].as_array().unwrap().is_empty(), "{name}: {diff}");
        let removed = diff["removed"].as_array().unwrap();
        assert!(
            removed
                .iter()
                .all(|n| n.as_str().unwrap_or_default().ends_with("calcChain.xml")),
            "{name}: {diff}"
        );
        if let Some(cells) = diff["cells"].as_object() {
            let other: Vec<&String> = cells.keys().filter(|k| **k != format!("{sheet}!A1")).collect();
            assert!(other.is_empty(), "{name}: openpyxl sees other cells change: {diff}");
            assert_eq!(cells[&format!("{sheet}!A1")][1], json!(NEW), "{name}: {diff}");
        } else {
            assert_eq!(
                diff.get("openpyxl_before").is_some(),
                diff.get("openpyxl_after").is_some(),
                "{name}: {diff}"
            );
        }
        let after = crate::common::call_tool(
            toolbox(),
            &fx.ws,
            "xlsx",
            "read",
            json!({"path": book, "header": false, "formulas": true, "max_rows": 1_048_576}),
            &grants,
        )
        .unwrap_or_else(|e| panic!("{name}: unreadable after the edit: {e}"));
        check_calamine(&name, &read, &after);
        // LibreOffice opens it (a failed conversion fails the test).
        if lo.sheet_csv(&book, 1, &sheet).contains(NEW) {
            shown += 1;
        }
    }
    eprintln!(
        "edited {} corpus workbooks (LibreOffice shows the new text in {shown}); refused {}: {refused:#?}",
        edited.len(),
        refused.len()
    );
    assert!(edited.len() >= 60, "edited only {edited:?}");
}

/// What the corpus test puts in A1: text, which no number format kept from
/// the cell changes.
const NEW: &str = "edited by deskhand";

/// `xlsx read` before and after: the first sheet differs at A1 only (the
/// range may grow to take it in), the other sheets not at all.
fn check_calamine(name: &str, before: &Value, after: &Value) {
    let (b, a) = (
        before["sheets"].as_array().unwrap(),
        after["sheets"].as_array().unwrap(),
    );
    assert_eq!(b.len(), a.len(), "{name}");
    for (i, (x, y)) in b.iter().zip(a).enumerate() {
        if i > 0 {
            assert_eq!(x, y, "{name}: calamine sees sheet {} change", x["name"]);
            continue;
        }
        let cells = |s: &Value| -> std::collections::BTreeMap<(usize, usize), Value> {
            let (r0, c0) = s["range"].as_str().map_or((1, 1), |r| {
                let first = r.split(':').next().unwrap_or("A1");
                let split = first.find(|c: char| c.is_ascii_digit()).unwrap_or(1);
                let col = first[..split]
                    .bytes()
                    .fold(0usize, |n, b| n * 26 + usize::from(b - b'A') + 1);
                (first[split..].parse().unwrap_or(1), col)
            });
            let mut out = std::collections::BTreeMap::new();
            for (r, row) in s["rows"].as_array().into_iter().flatten().enumerate() {
                for (c, v) in row.as_array().into_iter().flatten().enumerate() {
                    if !v.is_null() {
                        out.insert((r0 + r, c0 + c), v.clone());
                    }
                }
            }
            out
        };
        let (mut x, mut y) = (cells(x), cells(y));
        let new = y.remove(&(1, 1));
        x.remove(&(1, 1));
        assert_eq!(new, Some(json!(NEW)), "{name}");
        assert_eq!(x, y, "{name}: calamine sees other cells change");
    }
}

/// Values as a viewer that does not recalculate sees them (openpyxl's
/// `data_only`: the stored `<v>` of each formula cell).
const STORED: &str = r#"
import json, sys, openpyxl
a = json.loads(sys.argv[1])
wb = openpyxl.load_workbook(a["path"], data_only=True)
print(json.dumps({k: wb[k.split("!")[0]][k.split("!")[1]].value for k in a["cells"]}))
"#;

/// With LibreOffice, an edit's proposal carries the values the edit
/// changed (the totals that follow the new amount), and a formula
/// LibreOffice cannot compute keeps the value the person's app stored.
#[test]
fn an_edit_stores_the_values_it_changed_and_keeps_the_rest() {
    let lo = LibreOffice::new();
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wasm-cache");
    let tb = deskhand_runtime::tools::Toolbox::new(deskhand_runtime::wasm::WasmHost::new(Some(cache)).unwrap())
        .with_office(Some(lo.engine()));
    let fx = Fixture::new();
    let book = fx.inbox.join("b.xlsx");
    let sheet2 = SHEET2.replace(
        "</row></sheetData>",
        r#"<c r="D1"><f>_xlfn.NOSUCHFUNCTION(1)</f><v>42</v></c></row></sheetData>"#,
    );
    make_workbook(&book, &[("xl/worksheets/sheet2.xml", &sheet2)]);
    let logs = std::sync::Mutex::new(Vec::new());
    let emit = |e| {
        if let deskhand_types::Event::ToolLog { message, .. } = e {
            logs.lock().unwrap().push(message);
        }
    };
    let edits = json!([{"op": "set", "sheet": "Data", "cell": "B2", "value": 60}]);
    edit_and_apply_with(&tb, &fx, &book, edits, &[rw(&fx.inbox)], &emit).unwrap();
    let logs = logs.into_inner().unwrap();
    assert!(
        logs.iter()
            .any(|l| l.contains("stored the values the change made") && l.contains("b.xlsx")),
        "{logs:?}"
    );
    let cells = ["Data!C2", "Data!C3", "Summary!B1", "Summary!C1", "Summary!D1"];
    let stored = py(STORED, &json!({"path": book, "cells": cells}));
    assert_eq!(
        stored,
        json!({"Data!C2": 120, "Data!C3": 40, "Summary!B1": 150, "Summary!C1": 150, "Summary!D1": 42}),
        "what a viewer shows without recalculating"
    );
}
