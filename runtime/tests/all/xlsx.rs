//! The bundled `xlsx` tool end to end, in the real sandbox: workbooks it
//! writes are recalculated by LibreOffice (an independent engine) and the
//! computed values checked; real files no one here wrote (the shared corpus)
//! and crafted bad inputs read without a panic or a hang.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use deskhand_runtime::Error;
use deskhand_runtime::tools::{CallRequest, Toolbox, run_call};
use deskhand_runtime::wasm::{CallError, Limits, WasmHost};
use deskhand_types::{Grant, ToolError};
use serde_json::{Value, json};

use crate::common::{
    Fixture, LibreOffice, call_tool, corpus, files_with, output_names, read_or_named_error, tool_error, toolbox,
};

fn xlsx(fx: &Fixture, op: &str, args: Value, grants: &[Grant]) -> Result<Value, Error> {
    call_tool(toolbox(), &fx.ws, "xlsx", op, args, grants)
}

/// Every formula kind the tool promises, on a first sheet that LibreOffice's
/// CSV export shows, over data on the sheets after it.
fn every_formula_workbook(path: &str) -> Value {
    let eur = |amount: f64| json!({"amount": amount, "currency": "EUR"});
    let f = |formula: &str| json!({"formula": formula});
    json!({
        "path": path,
        "sheets": [
            {
                "name": "Checks",
                "header": ["Check", "Value"],
                "rows": [
                    ["sum", f("SUM(Expenses!D2:D6)")],
                    ["sumif", f("SUMIF(Expenses!C2:C6,\"Food\",Expenses!D2:D6)")],
                    ["sumifs", f("SUMIFS(Expenses!D2:D6,Expenses!C2:C6,\"Travel\",Expenses!E2:E6,\">1\")")],
                    ["index_match", f("INDEX(Expenses!B2:B6,MATCH(120,Expenses!D2:D6,0))")],
                    ["vlookup", f("VLOOKUP(\"Travel\",Rates!A2:B4,2,FALSE)")],
                    ["xlookup", f("XLOOKUP(\"Office\",Rates!A2:A4,Rates!B2:B4,\"none\")")],
                    ["xlookup_missing", f("=XLOOKUP(\"Nope\",Rates!A2:A4,Rates!B2:B4,\"none\")")],
                    ["if", f("IF(SUM(Expenses!D2:D6)>200,\"over budget\",\"ok\")")],
                    ["round", f("ROUND(Expenses!D7*1.19,2)")],
                    ["totals_row", f("Expenses!D7")],
                    ["qty_total", f("Expenses!E7")],
                    ["date_plus_30", {"formula": "Expenses!A2+30", "format": "yyyy-mm-dd"}]
                ],
                "columns": [{"width": 16}, {"width": 14}]
            },
            {
                "name": "Expenses",
                "header": ["Date", "Vendor", "Category", "Amount", "Qty"],
                "rows": [
                    [{"date": "2024-03-01"}, "Café Luna", "Food", eur(12.5), 2],
                    [{"date": "2024-03-02"}, "Rail", "Travel", eur(45.0), 1],
                    [{"date": "2024-03-05"}, "Market", "Food", eur(30.25), 3],
                    [{"date": "2024-03-09"}, "Hotel", "Travel", eur(120.0), 2],
                    [{"date": "2024-03-12T14:30"}, "Books", "Office", eur(18.4), 1]
                ],
                "totals": {"columns": ["D", "E"]},
                "columns": [{"width": 18}, null, null, {"width": 12}],
                "charts": [
                    {"type": "bar", "title": "Spending", "categories": "B2:B6", "values": "D2:D6"},
                    {"type": "pie", "title": "Share", "categories": "B2:B6", "values": "D2:D6", "anchor": "H20"}
                ]
            },
            {
                "name": "Rates",
                "header": ["Category", "Rate"],
                "rows": [["Food", {"number": 0.07, "format": "0%"}], ["Travel", 0.1], ["Office", 0.19]],
                "autofilter": false
            }
        ]
    })
}

/// The `Check,Value` lines of a CSV export, as a map.
fn csv_pairs(csv: &str) -> std::collections::BTreeMap<String, String> {
    csv.lines()
        .skip(1)
        .filter_map(|line| {
            let (k, v) = line.split_once(',')?;
            Some((k.trim_matches('"').to_owned(), v.trim_matches('"').to_owned()))
        })
        .collect()
}

#[test]
fn libreoffice_recalculates_every_formula_kind_the_tool_writes() {
    let lo = LibreOffice::new();
    let fx = Fixture::new();
    let out = xlsx(&fx, "write", every_formula_workbook("output/checks.xlsx"), &[]).unwrap();
    let book = PathBuf::from(out["path"].as_str().unwrap());
    assert_eq!(book, fx.ws.output_dir().canonicalize().unwrap().join("checks.xlsx"));
    assert_eq!(output_names(&fx), ["checks.xlsx"], "no temporary file is left behind");

    let converted = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let csv = lo.convert(
        &book,
        "csv:Text - txt - csv (StarCalc):44,34,76,1",
        "csv",
        converted.path(),
    );
    eprintln!("LibreOffice recalculated and exported in {:?}", started.elapsed());
    let csv = std::fs::read_to_string(csv).unwrap();
    let values = csv_pairs(&csv);
    let expected = [
        ("sum", "226.15"),
        ("sumif", "42.75"),
        ("sumifs", "120"),
        ("index_match", "Hotel"),
        ("vlookup", "0.1"),
        ("xlookup", "0.19"),
        ("xlookup_missing", "none"),
        ("if", "over budget"),
        ("round", "269.12"),
        // LibreOffice shows a formula that points at a currency cell in its format.
        ("totals_row", "€226.15"),
        ("qty_total", "9"),
        ("date_plus_30", "2024-03-31"),
    ];
    for (check, value) in expected {
        assert_eq!(
            values.get(check).map(String::as_str),
            Some(value),
            "{check}: LibreOffice computed {:?}; the whole export:\n{csv}",
            values.get(check)
        );
    }

    // What LibreOffice sees besides values: the charts, the auto-filters
    // (over the data rows, not the totals), the bold filled header, the
    // currency and date formats. (Frozen panes are view settings, which a
    // headless conversion does not carry.)
    let fods = std::fs::read_to_string(lo.convert(&book, "fods", "fods", converted.path())).unwrap();
    for (what, needle) in [
        ("a chart", "chart:chart"),
        ("a bar chart", "chart:class=\"chart:bar\""),
        ("a pie chart", "chart:class=\"chart:circle\""),
        (
            "an auto-filter over the data",
            "table:target-range-address=\"Expenses.A1:Expenses.E6\" table:display-filter-buttons=\"true\"",
        ),
        ("a bold header", "fo:font-weight=\"bold\""),
        ("the header fill", "fo:background-color=\"#d9e1f2\""),
        ("a euro format", "<number:text>€</number:text>"),
        ("an ISO date format", "<number:year number:style=\"long\"/>"),
    ] {
        assert!(
            fods.contains(needle),
            "LibreOffice sees no {what} ({needle}) in the workbook"
        );
    }

    // The tool reads its own workbook back: types, and the formulas as written.
    let back = xlsx(
        &fx,
        "read",
        json!({"path": "output/checks.xlsx", "formulas": true}),
        &[],
    )
    .unwrap();
    let sheets = back["sheets"].as_array().unwrap();
    assert_eq!(sheets.len(), 3);
    let expenses = &sheets[1];
    assert_eq!(
        expenses["header"],
        json!(["Date", "Vendor", "Category", "Amount", "Qty"])
    );
    assert_eq!(expenses["rows"][0][0], json!({"date": "2024-03-01"}));
    assert_eq!(expenses["rows"][4][0], json!({"date": "2024-03-12T14:30:00"}));
    assert_eq!(expenses["rows"][0][1], json!("Café Luna"));
    assert_eq!(expenses["rows"][0][3], json!({"amount": 12.5, "currency": "EUR"}));
    assert_eq!(expenses["rows"][5][0], json!("Total"));
    assert_eq!(expenses["rows"][5][3]["formula"], json!("SUM(D2:D6)"));
    let checks = &sheets[0]["rows"];
    assert_eq!(checks[0][1]["formula"], json!("SUM(Expenses!D2:D6)"));
    let xlookup = checks[5][1]["formula"].as_str().unwrap();
    assert!(xlookup.contains("XLOOKUP("), "{xlookup}");

    // Without asking for formulas: the workbook asks to be recalculated on
    // load, so its stored totals (0) are stale and come back with their
    // formulas, never as a bare 0; amounts carry their format's currency.
    let back = xlsx(
        &fx,
        "read",
        json!({"path": "output/checks.xlsx", "sheet": "Expenses"}),
        &[],
    )
    .unwrap();
    let rows = &back["sheets"][0]["rows"];
    assert_eq!(rows[0][3], json!({"amount": 12.5, "currency": "EUR"}));
    assert_eq!(rows[0][4], json!(2.0));
    assert_eq!(rows[5][4]["formula"], "SUM(E2:E6)", "{rows}");
    assert!(back["notes"].to_string().contains("stale"), "{}", back["notes"]);
}

// ---------------------------------------------------------------------------
// Writing: never over a file, never half a file, errors that say where
// ---------------------------------------------------------------------------

#[test]
fn write_never_overwrites_and_a_bad_spec_leaves_nothing() {
    let fx = Fixture::new();
    let spec = |path: &str| json!({"path": path, "sheets": [{"name": "S", "rows": [[1, 2]]}]});
    xlsx(&fx, "write", spec("output/a.xlsx"), &[]).unwrap();
    let before = std::fs::read(fx.ws.output_dir().join("a.xlsx")).unwrap();

    let err = tool_error(xlsx(&fx, "write", spec("output/a.xlsx"), &[]));
    assert!(matches!(err, ToolError::AlreadyExists { .. }), "{err}");
    assert!(
        err.to_string().contains("a.xlsx") && err.to_string().contains("never overwrites"),
        "{err}"
    );
    assert_eq!(std::fs::read(fx.ws.output_dir().join("a.xlsx")).unwrap(), before);

    let mut unique = spec("output/a.xlsx");
    unique["unique"] = json!(true);
    let out = xlsx(&fx, "write", unique, &[]).unwrap();
    assert!(out["path"].as_str().unwrap().ends_with("a-1.xlsx"), "{out}");

    // A bad cell deep in the spec: the error names the sheet and the cell,
    // and no file (not even a temporary one) appears.
    let mut rows: Vec<Value> = (0..500).map(|i| json!([i, {"date": "2024-01-01"}])).collect();
    rows.push(json!([1, {"date": "2024-02-30"}]));
    let err = tool_error(xlsx(
        &fx,
        "write",
        json!({"path": "output/bad.xlsx", "sheets": [{"name": "Data", "header": ["n", "d"], "rows": rows}]}),
        &[],
    ));
    let msg = err.to_string();
    assert!(matches!(err, ToolError::InvalidArgs { .. }), "{err}");
    assert!(
        msg.contains("\"Data\"") && msg.contains("B502") && msg.contains("2024-02-30"),
        "{msg}"
    );
    for (bad, says) in [
        (json!({"formula": "SUM(A1:A3"}), "parenthesis"),
        (json!({"amount": 5}), "currency"),
        (json!({"amount": 5, "currency": "euros"}), "euros"),
        (json!({"colour": "red"}), "not a cell"),
        (json!([1, 2]), "list"),
    ] {
        let err = tool_error(xlsx(
            &fx,
            "write",
            json!({"path": "output/bad.xlsx", "sheets": [{"name": "Data", "rows": [[bad]]}]}),
            &[],
        ));
        assert!(
            err.to_string().contains(says) && err.to_string().contains("A1"),
            "{err}"
        );
    }
    let err = tool_error(xlsx(
        &fx,
        "write",
        json!({"path": "output/bad.xlsx", "sheets": [{"name": "a/b"}]}),
        &[],
    ));
    assert!(matches!(err, ToolError::InvalidArgs { .. }), "{err}");
    assert_eq!(output_names(&fx), ["a-1.xlsx", "a.xlsx"]);

    // Only under output/: a read-write grant is still read-only inside the
    // sandbox (changes to granted folders are proposed, not made), and
    // nothing appears there, not even a temporary file.
    let err = xlsx(
        &fx,
        "write",
        spec("projects/inbox/x.xlsx"),
        &[Grant::read_write("projects/inbox")],
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::WriteOutsideOutput { .. } | Error::Call(CallError::Tool(ToolError::Denied { .. }))
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("x.xlsx") && err.to_string().contains("output/"),
        "{err}"
    );
    let inbox: Vec<_> = std::fs::read_dir(&fx.inbox)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(inbox, ["note.txt"]);
    // And only .xlsx.
    let err = tool_error(xlsx(&fx, "write", spec("output/x.csv"), &[]));
    assert!(err.to_string().contains(".xlsx"), "{err}");
}

// ---------------------------------------------------------------------------
// Reading CSV: encodings, delimiters, decimal separators, currencies, dates
// ---------------------------------------------------------------------------

fn read_inbox(fx: &Fixture, name: &str, bytes: &[u8], extra: Value) -> Result<Value, Error> {
    std::fs::write(fx.inbox.join(name), bytes).unwrap();
    let mut args = json!({"path": format!("projects/inbox/{name}")});
    for (k, v) in extra.as_object().unwrap() {
        args[k] = v.clone();
    }
    xlsx(fx, "read", args, &[Grant::read_only("projects/inbox")])
}

/// `text` in Windows-1252, for the few characters these tests use.
fn windows_1252(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            '€' => 0x80,
            c if (c as u32) < 0x100 => c as u8,
            c => panic!("{c} is not in this table"),
        })
        .collect()
}

#[test]
fn semicolon_csv_in_windows_1252_with_decimal_commas() {
    let fx = Fixture::new();
    let text = "Datum;Händler;Betrag;Menge\r\n01.03.2024;Café Müller;1.234,50 €;3\r\n02.03.2024;\"Bäckerei; Süd\";-12,00 €;1\r\n05.03.2024;Kiosk;0,99;\r\n";
    let bytes = windows_1252(text);
    assert!(std::str::from_utf8(&bytes).is_err(), "the file really is not UTF-8");
    let out = read_inbox(&fx, "kontoauszug.csv", &bytes, json!({})).unwrap();
    assert_eq!(out["format"], "csv");
    assert_eq!(out["encoding"], "windows-1252");
    assert_eq!(out["delimiter"], ";");
    assert_eq!(out["decimal"], ",");
    let sheet = &out["sheets"][0];
    assert_eq!(sheet["header"], json!(["Datum", "Händler", "Betrag", "Menge"]));
    assert_eq!(
        sheet["rows"],
        json!([
            [{"date": "2024-03-01"}, "Café Müller", {"amount": 1234.5, "currency": "EUR"}, 3.0],
            [{"date": "2024-03-02"}, "Bäckerei; Süd", {"amount": -12.0, "currency": "EUR"}, 1.0],
            [{"date": "2024-03-05"}, "Kiosk", 0.99, null]
        ])
    );
}

#[test]
fn comma_csv_with_bom_thousands_separators_and_month_first_dates() {
    let fx = Fixture::new();
    let text = "\u{feff}Date,Item,Amount,Paid,Ref\n03/15/2024,Lunch,\"$1,234.50\",true,007\n04/01/2024,Taxi,£12.00,FALSE,42\n04/02/2024,Fee,(3.50),false,4111111111111111\n";
    let out = read_inbox(&fx, "export.csv", text.as_bytes(), json!({})).unwrap();
    assert_eq!(out["encoding"], "utf-8 (with BOM)");
    assert_eq!(out["delimiter"], ",");
    let sheet = &out["sheets"][0];
    assert_eq!(sheet["header"][0], "Date", "the BOM is not part of the first title");
    assert_eq!(
        sheet["rows"],
        json!([
            [{"date": "2024-03-15"}, "Lunch", {"amount": 1234.5, "currency": "USD"}, true, "007"],
            [{"date": "2024-04-01"}, "Taxi", {"amount": 12.0, "currency": "GBP"}, false, 42.0],
            [{"date": "2024-04-02"}, "Fee", -3.5, false, "4111111111111111"]
        ])
    );
}

#[test]
fn ambiguous_slashed_dates_stay_text_unless_the_order_is_given() {
    let fx = Fixture::new();
    let text = b"when,what\n01/02/2024,a\n03/04/2024,b\n";
    let out = read_inbox(&fx, "when.csv", text, json!({})).unwrap();
    assert_eq!(out["sheets"][0]["rows"][0][0], "01/02/2024");
    let notes = out["notes"].to_string();
    assert!(
        notes.contains("column 1 (when)") && notes.contains("date_order"),
        "{notes}"
    );
    let out = read_inbox(&fx, "when2.csv", text, json!({"date_order": "dmy"})).unwrap();
    assert_eq!(out["sheets"][0]["rows"][0][0], json!({"date": "2024-02-01"}));
}

#[test]
fn tab_separated_latin1_utf16_and_excel_sep_hint_files() {
    let fx = Fixture::new();
    let out = read_inbox(&fx, "t.tsv", b"a\tb\tc\n1\t2.5\tx\n", json!({"header": false})).unwrap();
    assert_eq!(out["delimiter"], "\t");
    assert_eq!(out["sheets"][0]["header"], Value::Null);
    assert_eq!(out["sheets"][0]["rows"][1], json!([1.0, 2.5, "x"]));
    // Latin-1 bytes (é = 0xE9) are read as Windows-1252, which agrees on them.
    let out = read_inbox(&fx, "l.csv", b"caf\xe9,1\n", json!({"header": false})).unwrap();
    assert_eq!(out["sheets"][0]["rows"][0], json!(["café", 1.0]));
    // UTF-16 with its byte-order mark, as Excel's "Unicode text" saves.
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain("Name\tBetrag\nZoë\t3,5\n".encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let out = read_inbox(&fx, "u.txt", &utf16, json!({})).unwrap();
    assert_eq!(out["encoding"], "utf-16le");
    assert_eq!(out["sheets"][0]["rows"][0], json!(["Zoë", 3.5]));
    // Excel's `sep=` first line names the delimiter and is not a row.
    let out = read_inbox(&fx, "s.csv", b"sep=|\nk|v\na,b|1\n", json!({})).unwrap();
    assert_eq!(out["delimiter"], "|");
    assert_eq!(out["sheets"][0]["header"], json!(["k", "v"]));
    assert_eq!(out["sheets"][0]["rows"][0], json!(["a,b", 1.0]));
}

// ---------------------------------------------------------------------------
// Bad input: a typed error naming the file and the problem
// ---------------------------------------------------------------------------

/// A zip archive holding one stored (uncompressed) file.
fn stored_zip(name: &str, content: &[u8]) -> Vec<u8> {
    stored_zip_of(&[(name, content)])
}

/// A zip archive holding these files, stored (uncompressed).
fn stored_zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let crc32 = |content: &[u8]| {
        content.iter().fold(!0u32, |mut crc, &b| {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
            crc
        }) ^ !0
    };
    let mut zip = Vec::new();
    let mut directory = Vec::new();
    for (name, content) in files {
        let crc = crc32(content);
        let (len, name_len, offset) = (content.len() as u32, name.len() as u16, zip.len() as u32);
        zip.extend(b"PK\x03\x04");
        zip.extend([20u16, 0, 0, 0, 0].iter().flat_map(|v| v.to_le_bytes()));
        zip.extend([crc, len, len].iter().flat_map(|v| v.to_le_bytes()));
        zip.extend([name_len, 0].iter().flat_map(|v| v.to_le_bytes()));
        zip.extend(name.as_bytes());
        zip.extend(*content);
        directory.extend(b"PK\x01\x02");
        directory.extend([20u16, 20, 0, 0, 0, 0].iter().flat_map(|v| v.to_le_bytes()));
        directory.extend([crc, len, len].iter().flat_map(|v| v.to_le_bytes()));
        directory.extend([name_len, 0, 0, 0, 0].iter().flat_map(|v| v.to_le_bytes()));
        directory.extend([0u32, offset].iter().flat_map(|v| v.to_le_bytes()));
        directory.extend(name.as_bytes());
    }
    let (start, directory_len) = (zip.len() as u32, directory.len() as u32);
    zip.extend(directory);
    let count = files.len() as u16;
    zip.extend(b"PK\x05\x06");
    zip.extend([0u16, 0, count, count].iter().flat_map(|v| v.to_le_bytes()));
    zip.extend([directory_len, start].iter().flat_map(|v| v.to_le_bytes()));
    zip.extend(0u16.to_le_bytes());
    zip
}

#[test]
fn bad_files_give_errors_that_name_the_file_and_the_problem() {
    let fx = Fixture::new();
    xlsx(
        &fx,
        "write",
        json!({"path": "output/good.xlsx", "sheets": [{"name": "S", "rows": (0..2000).map(|i| json!([i, format!("row {i}")])).collect::<Vec<_>>()}]}),
        &[],
    )
    .unwrap();
    let good = std::fs::read(fx.ws.output_dir().join("good.xlsx")).unwrap();

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated.xlsx", good[..good.len() / 2].to_vec(), "truncated"),
        (
            "random.xlsx",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
            "neither a zip",
        ),
        ("empty.xlsx", Vec::new(), "is empty"),
        ("binary.csv", vec![0x00, 0x01, 0x02, 0xff, 0x00, b'a'], "NUL"),
        (
            "notabook.xlsx",
            stored_zip("readme.txt", b"no workbook here"),
            "not a spreadsheet",
        ),
    ];
    for (name, bytes, says) in cases {
        let err = tool_error(read_inbox(&fx, name, &bytes, json!({})));
        let msg = err.to_string();
        assert!(matches!(err, ToolError::BadContent { .. }), "{name}: {msg}");
        assert!(msg.contains(name) && msg.contains(says), "{name}: {msg}");
    }

    // Enormous: a file over the size cap (sparse, so it costs no disk), and a
    // zip whose directory says it inflates to 4 GB, are refused unread.
    let huge = std::fs::File::create(fx.inbox.join("huge.xlsx")).unwrap();
    huge.set_len(200 * 1024 * 1024).unwrap();
    drop(huge);
    let mut bomb = stored_zip("xl/worksheets/sheet1.xml", b"<worksheet/>");
    let directory = bomb.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    bomb[directory + 24..directory + 28].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    std::fs::write(fx.inbox.join("bomb.xlsx"), &bomb).unwrap();
    for (name, says) in [("huge.xlsx", "bytes"), ("bomb.xlsx", "zip bomb")] {
        let err = tool_error(xlsx(
            &fx,
            "read",
            json!({"path": format!("projects/inbox/{name}")}),
            &[Grant::read_only("projects/inbox")],
        ));
        let msg = err.to_string();
        assert!(
            matches!(err, ToolError::TooLarge { .. }) && msg.contains(name) && msg.contains(says),
            "{msg}"
        );
    }

    // Over the row cap: too large, saying the cap and how to raise it.
    std::fs::write(fx.inbox.join("good.xlsx"), &good).unwrap();
    let err = tool_error(xlsx(
        &fx,
        "read",
        json!({"path": "projects/inbox/good.xlsx", "header": false, "max_rows": 1000}),
        &[Grant::read_only("projects/inbox")],
    ));
    let msg = err.to_string();
    assert!(
        matches!(err, ToolError::TooLarge { .. }) && msg.contains("good.xlsx") && msg.contains("max_rows"),
        "{msg}"
    );
    let csv: String = (0..50).map(|i| format!("{i},x\n")).collect();
    let err = tool_error(read_inbox(&fx, "long.csv", csv.as_bytes(), json!({"max_rows": 10})));
    assert!(
        matches!(err, ToolError::TooLarge { .. }) && err.to_string().contains("long.csv"),
        "{err}"
    );
    let out = read_inbox(&fx, "long2.csv", csv.as_bytes(), json!({"max_rows": 49})).unwrap();
    assert_eq!(out["sheets"][0]["rows"].as_array().unwrap().len(), 49);
}

// ---------------------------------------------------------------------------
// Hostile and odd files: bounded in time and size, named for what they are
// ---------------------------------------------------------------------------

const RELS: &str =
    r#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">"#;

/// An xlsx whose workbook part lists `sheets` (`<sheet>` elements) over
/// one worksheet part holding `worksheet` (its children).
fn hand_made_workbook(sheets: &str, worksheet: &str) -> Vec<u8> {
    let types = r#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#;
    let package = format!(
        r#"{RELS}<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#
    );
    let workbook = format!(
        r#"<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>{sheets}</sheets></workbook>"#
    );
    let parts = format!(
        r#"{RELS}<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#
    );
    let sheet = format!(
        r#"<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">{worksheet}</worksheet>"#
    );
    stored_zip_of(&[
        ("[Content_Types].xml", types.as_bytes()),
        ("_rels/.rels", package.as_bytes()),
        ("xl/workbook.xml", workbook.as_bytes()),
        ("xl/_rels/workbook.xml.rels", parts.as_bytes()),
        ("xl/worksheets/sheet1.xml", sheet.as_bytes()),
    ])
}

#[test]
fn a_workbook_declaring_100000_sheets_is_refused_in_words_at_once() {
    let fx = Fixture::new();
    let sheets: String = (1..=100_000)
        .map(|i| format!(r#"<sheet name="S{i}" sheetId="{i}" r:id="rId1"/>"#))
        .collect();
    let bytes = hand_made_workbook(
        &sheets,
        r#"<sheetData><row r="1"><c r="A1"><v>1</v></c></row></sheetData>"#,
    );
    let started = Instant::now();
    let err = tool_error(read_inbox(&fx, "many_sheets.xlsx", &bytes, json!({})));
    let took = started.elapsed();
    eprintln!("100,000 declared sheets refused in {took:?}");
    // It took 30-80 s, past the deadline, before.
    assert!(took < Duration::from_secs(10), "{took:?}");
    let msg = err.to_string();
    assert!(
        matches!(err, ToolError::TooLarge { .. })
            && msg.contains("many_sheets.xlsx")
            && msg.contains("100,000 sheets")
            && msg.contains("work too long")
            && !msg.contains("deadline"),
        "{msg}"
    );
}

#[test]
fn a_csv_of_ten_million_columns_reads_its_first_16384_as_spreadsheet_apps_do() {
    let fx = Fixture::new();
    let wide = ",".repeat(10_000_000) + "\n";
    let started = Instant::now();
    let out = read_inbox(&fx, "wide.csv", wide.as_bytes(), json!({"header": false})).unwrap();
    let took = started.elapsed();
    eprintln!("a 10,000,001-column CSV read in {took:?}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_eq!(out["sheets"][0]["rows"][0].as_array().unwrap().len(), 16_384);
    let notes = out["notes"].to_string();
    assert!(notes.contains("10,000,001") && notes.contains("16,384"), "{notes}");
    // The host held 1.6 GB of JSON for this file before.
    assert!(out.to_string().len() < 200_000, "{}", out.to_string().len());
}

#[test]
fn rows_past_16_mib_are_refused_whole_and_read_in_parts() {
    let fx = Fixture::new();
    let field = "x".repeat(500);
    let text: String = std::iter::once("n,text\n".to_owned())
        .chain((0..40_000).map(|i| format!("{i},{field}\n")))
        .collect();
    let err = tool_error(read_inbox(
        &fx,
        "big.csv",
        text.as_bytes(),
        json!({"max_rows": 100_000}),
    ));
    let msg = err.to_string();
    assert!(
        matches!(err, ToolError::TooLarge { .. }) && msg.contains("16 MiB") && msg.contains("start_row"),
        "{msg}"
    );
    let first = read_inbox(
        &fx,
        "big.csv",
        text.as_bytes(),
        json!({"max_rows": 100_000, "start_row": 1}),
    )
    .unwrap();
    let next = first["next"]["start_row"].as_u64().unwrap();
    assert_eq!(first["sheets"][0]["rows"].as_array().unwrap().len() as u64, next - 1);
    assert!(first.to_string().len() <= 16 << 20);
    let rest = read_inbox(
        &fx,
        "big.csv",
        text.as_bytes(),
        json!({"max_rows": 100_000, "start_row": next}),
    )
    .unwrap();
    assert_eq!(rest["sheets"][0]["rows"][0][0], json!((next - 1) as f64));
    assert_eq!(
        rest["sheets"][0]["rows"].as_array().unwrap().len() as u64,
        40_000 - (next - 1)
    );
    assert!(rest.get("next").is_none());
}

#[test]
fn documents_that_are_not_spreadsheets_say_what_they_are() {
    let fx = Fixture::new();
    let pdf = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";
    let docx = stored_zip_of(&[
        ("[Content_Types].xml", b"<Types/>".as_slice()),
        ("word/document.xml", b"<w:document/>".as_slice()),
    ]);
    let pptx = stored_zip_of(&[
        ("[Content_Types].xml", b"<Types/>".as_slice()),
        ("ppt/presentation.xml", b"<p:presentation/>".as_slice()),
    ]);
    let cases: Vec<(&str, &[u8], &str)> = vec![
        ("statement.csv", pdf, "is a PDF document"),
        ("statement.xlsx", pdf, "pdf tool"),
        ("letter.docx", &docx, "is a Word document"),
        ("letter.xlsx", &docx, "is a Word document"),
        ("deck.xlsx", &pptx, "is a PowerPoint presentation"),
    ];
    for (name, bytes, says) in cases {
        let err = tool_error(read_inbox(&fx, name, bytes, json!({})));
        let msg = err.to_string();
        assert!(
            matches!(err, ToolError::BadContent { .. }) && msg.contains(name) && msg.contains(says),
            "{name}: {msg}"
        );
    }
}

/// Workbooks LibreOffice opens though calamine refuses them: a sheet state
/// `show` (not a valid value) and a used range without its columns.
#[test]
fn workbooks_libreoffice_opens_with_a_show_state_or_a_row_only_range_read_the_same() {
    let lo = LibreOffice::new();
    let fx = Fixture::new();
    let inline = |r: &str, t: &str| format!(r#"<c r="{r}" t="inlineStr"><is><t>{t}</t></is></c>"#);
    let data = format!(
        r#"<sheetData><row r="1">{}{}</row><row r="2">{}<c r="B2"><v>12.5</v></c></row><row r="3">{}<c r="B3"><v>45</v></c></row></sheetData>"#,
        inline("A1", "vendor"),
        inline("B1", "amount"),
        inline("A2", "Café Luna"),
        inline("A3", "Rail")
    );
    let shown = r#"<sheet name="S" sheetId="1" state="show" r:id="rId1"/>"#;
    let plain = r#"<sheet name="S" sheetId="1" r:id="rId1"/>"#;
    for (name, sheets, worksheet) in [
        ("show.xlsx", shown, data.clone()),
        ("rows_only.xlsx", plain, format!(r#"<dimension ref="1:3"/>{data}"#)),
    ] {
        let bytes = hand_made_workbook(sheets, &worksheet);
        let out = read_inbox(&fx, name, &bytes, json!({"header": false})).unwrap();
        let ours: Vec<String> = out["sheets"][0]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                row.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.as_f64().unwrap().to_string(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        let theirs: Vec<String> = lo
            .sheet_csv(&fx.inbox.join(name), 1, "S")
            .lines()
            .map(|line| {
                line.split(',')
                    .map(|f| f.trim_matches('"'))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        assert_eq!(ours, theirs, "{name}: we read {ours:?}, LibreOffice {theirs:?}");
        assert_eq!(ours, ["vendor,amount", "Café Luna,12.5", "Rail,45"], "{name}");
        assert!(
            out["notes"].to_string().contains("LibreOffice") || name != "show.xlsx",
            "{out}"
        );
    }
}

// ---------------------------------------------------------------------------
// Real files no one here wrote
// ---------------------------------------------------------------------------

#[test]
fn every_corpus_spreadsheet_reads_or_names_its_problem() {
    let Some(dir) = corpus("spreadsheets") else {
        eprintln!("skipped: no corpus at ../shared/corpus/spreadsheets beside the repository");
        return;
    };
    let fx = Fixture::new();
    let grants = [Grant::read_only(dir.clone())];
    let files = files_with(&dir, &["xlsx", "xlsm", "xlsb", "xls", "ods"]);
    assert!(files.len() > 100, "the corpus holds {} spreadsheets", files.len());
    let (mut read, mut refused) = (0, Vec::new());
    let started = Instant::now();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let result = xlsx(&fx, "read", json!({"path": file, "max_rows": 100_000}), &grants);
        match read_or_named_error(&name, result) {
            Ok(out) => {
                assert!(out["sheets"].is_array(), "{name}: {out}");
                read += 1;
            }
            Err(msg) => refused.push(format!("{name}: {msg}")),
        }
    }
    eprintln!(
        "corpus: {read} of {} spreadsheets read, {} refused, in {:?}:\n  {}",
        files.len(),
        refused.len(),
        started.elapsed(),
        refused.join("\n  ")
    );
    // Password-protected workbooks say so.
    for name in ["pass_protected.xlsx", "pass_protected.xlsb", "pass_protected.ods"] {
        let line = refused.iter().find(|l| l.starts_with(name));
        assert!(line.is_some_and(|l| l.contains("encrypted")), "{name}: {line:?}");
    }
    assert!(
        read * 10 >= files.len() * 8,
        "most of the corpus reads: {read} of {}",
        files.len()
    );

    // Content, not just no error: dates in both date systems, and numbers.
    for name in ["date.xlsx", "date_1904.xlsx", "date.xls", "date.ods", "date.xlsb"] {
        let out = xlsx(&fx, "read", json!({"path": dir.join(name), "header": false}), &grants).unwrap();
        let cells = out["sheets"][0]["rows"].to_string();
        assert!(cells.contains("{\"date\":\"2021-01-01"), "{name}: {cells}");
    }
    let out = xlsx(&fx, "read", json!({"path": dir.join("temperature.xlsx")}), &grants).unwrap();
    let sheet = &out["sheets"][0];
    assert_eq!(sheet["header"], json!(["label", "value"]));
    assert_eq!(sheet["rows"], json!([["celsius", 22.2222], ["fahrenheit", 72.0]]));
}

/// A workbook written by a call whose toolbox has LibreOffice stores the
/// values LibreOffice computed, so a viewer that does not recalculate (our
/// own reader here, which returns the stored value beside each formula)
/// sees the totals, not zeros; and the file still converts cleanly.
#[test]
fn written_workbooks_get_the_values_libreoffice_computed() {
    let lo = LibreOffice::new();
    let office = lo.engine();
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wasm-cache");
    let tb = Toolbox::new(WasmHost::new(Some(cache)).unwrap()).with_office(Some(office));
    let fx = Fixture::new();
    let spec = json!({"path": "output/cached.xlsx", "sheets": [
        {"name": "Data", "header": ["item", "amount", "note"], "rows": [
            ["a", 1.5, {"formula": "IF(B2>1,\"big\",\"small\")"}],
            ["b", 2.25, {"formula": "B3*2"}],
            ["c", {"formula": "ROUND(B2*B3,1)"}, {"formula": "1/0"}]
        ], "totals": {"columns": ["B"]}},
        {"name": "Summary", "rows": [[{"formula": "SUMIF(Data!A:A,\"b\",Data!B:B)"}, {"formula": "Data!B5"}]]}
    ]});
    let call = |op: &str, args: Value| {
        run_call(
            &fx.ws,
            &tb,
            &CallRequest {
                tool: "xlsx",
                operation: op,
                args,
                grants: &[],
                limits: Limits::default(),
            },
            None,
        )
        .unwrap()
        .output
        .json
    };
    call("write", spec);
    let data = call("read", json!({"path": "output/cached.xlsx", "sheet": "Data"}));
    let rows = &data["sheets"][0]["rows"];
    assert_eq!(
        rows[0][2],
        json!({"formula": "IF(B2>1,\"big\",\"small\")", "value": "big"})
    );
    assert_eq!(rows[1][2]["value"], json!(4.5));
    assert_eq!(rows[2][1]["value"], json!(3.4));
    assert_eq!(rows[2][2]["value"], json!({"error": "#DIV/0!"}));
    // The totals row: 1.5 + 2.25 + ROUND(3.375, 1).
    assert_eq!(rows[3][1]["value"], json!(7.15));
    let summary = call(
        "read",
        json!({"path": "output/cached.xlsx", "sheet": "Summary", "header": false}),
    );
    assert_eq!(summary["sheets"][0]["rows"][0][0]["value"], json!(2.25));
    assert_eq!(summary["sheets"][0]["rows"][0][1]["value"], json!(7.15));

    // Still a workbook LibreOffice opens and computes the same way.
    let out = tempfile::tempdir().unwrap();
    let csv = lo.convert(&fx.ws.output_dir().join("cached.xlsx"), "csv", "csv", out.path());
    let text = std::fs::read_to_string(csv).unwrap();
    assert!(text.contains("c,3.4,#DIV/0!"), "{text}");
    let names: Vec<String> = std::fs::read_dir(fx.ws.output_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["cached.xlsx"], "no temporary file is left behind");

    // Storing values is the host's step alone: a model (or `tool run`) cannot
    // use it to replace a deliverable in place.
    let refused = call_tool(
        &tb,
        &fx.ws,
        "xlsx",
        "cache_values",
        json!({"path": "output/cached.xlsx", "computed": "output/cached.xlsx"}),
        &[],
    )
    .unwrap_err();
    assert!(matches!(refused, Error::UnknownOperation { .. }), "{refused}");
}

/// A 4 x 4 PNG whose text chunk carries a secret.
const SECRET_PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x04\x00\x00\x00\x04\x08\x02\x00\x00\x00\x26\x93\x09\x29\
\x00\x00\x00\x10IDAT\x78\x9c\x63\x38\xc1\xc5\x05\x47\x0c\xc4\x71\x00\x71\xa3\x0d\xc1\xfd\x44\x3d\x4b\
\x00\x00\x00\x16tEXtComment\x00topsecret-4242\x51\x72\x5b\x1d\x00\x00\x00\x00IEND\xae\x42\x60\x82";

/// A hostile workbook reaches for what lies outside LibreOffice's sandbox:
/// a picture linked from another folder (which LibreOffice, unsandboxed,
/// embedded in the recalculated copy), a formula referring to a file there
/// and a WEBSERVICE call to a listener on this machine. None of it arrives.
#[test]
fn libreoffice_reads_no_file_outside_its_sandbox_and_no_network() {
    let lo = LibreOffice::new();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.png"), SECRET_PNG).unwrap();
    std::fs::write(outside.path().join("secret.csv"), "topsecret-4242\n").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = |name: &str| format!("file://{}", outside.path().join(name).display());
    let workbook = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0" xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:of="urn:oasis:names:tc:opendocument:xmlns:of:1.2" office:version="1.2" office:mimetype="application/vnd.oasis.opendocument.spreadsheet">
<office:body><office:spreadsheet><table:table table:name="Sheet1">
<table:shapes><draw:frame draw:name="linked" svg:width="2cm" svg:height="2cm" svg:x="1cm" svg:y="1cm"><draw:image xlink:href="{png}" xlink:type="simple" xlink:show="embed" xlink:actuate="onLoad"/></draw:frame></table:shapes>
<table:table-row>
<table:table-cell table:formula="of:=1+1" office:value-type="float" office:value="0"><text:p>0</text:p></table:table-cell>
<table:table-cell table:formula="of:=['{csv}'#$secret.A1]" office:value-type="string"><text:p>cached</text:p></table:table-cell>
<table:table-cell table:formula="of:=COM.MICROSOFT.WEBSERVICE(&quot;http://127.0.0.1:{port}/&quot;)" office:value-type="string"><text:p>cached</text:p></table:table-cell>
</table:table-row></table:table></office:spreadsheet></office:body></office:document>
"#,
        png = url("secret.png"),
        csv = url("secret.csv"),
    );
    let input = tempfile::tempdir().unwrap();
    let hostile = input.path().join("hostile.fods");
    std::fs::write(&hostile, workbook).unwrap();

    let engine = lo.engine();
    assert_eq!(
        engine.unsandboxed(),
        None,
        "run scripts/setup, which installs bubblewrap"
    );
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let copy = engine.recalculated_copy(&hostile, out.path()).unwrap();
    eprintln!(
        "LibreOffice recalculated the hostile workbook in {:?}",
        started.elapsed()
    );
    let bytes = std::fs::read(&copy).unwrap();
    // A zip's entry names are stored uncompressed: no picture was carried in.
    assert!(
        !bytes.windows(9).any(|w| w == b"xl/media/"),
        "the recalculated copy embeds the picture linked from outside"
    );
    let csv = lo.sheet_csv(&hostile, 1, "Sheet1");
    assert!(csv.starts_with("2,"), "the workbook was recalculated: {csv}");
    assert!(!csv.contains("topsecret"), "a formula read a file outside: {csv}");
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "LibreOffice connected to a listener on this machine"
    );
}
