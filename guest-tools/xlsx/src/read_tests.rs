//! Hostile and odd inputs, from bytes built here: they never touch a disk.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use deskhand_guest::ToolError;
use serde_json::{Value, json};
use zip::write::SimpleFileOptions;

use super::*;

const WORKBOOK_RELS_HEAD: &str =
    r#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">"#;

/// An xlsx whose workbook part lists `sheets` (`<sheet>` elements, with
/// their attributes) over one worksheet part holding `sheet_xml`.
fn workbook(sheets: &[String], sheet_xml: &str) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let mut part = |name: &str, content: &[u8]| {
        zip.start_file(name, SimpleFileOptions::default()).unwrap();
        zip.write_all(content).unwrap();
    };
    part(
        "[Content_Types].xml",
        br#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#,
    );
    part(
        "_rels/.rels",
        format!(r#"{WORKBOOK_RELS_HEAD}<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#).as_bytes(),
    );
    part(
        "xl/workbook.xml",
        format!(
            r#"<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>{}</sheets></workbook>"#,
            sheets.concat()
        )
        .as_bytes(),
    );
    part(
        "xl/_rels/workbook.xml.rels",
        format!(r#"{WORKBOOK_RELS_HEAD}<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#).as_bytes(),
    );
    part(
        "xl/worksheets/sheet1.xml",
        format!(r#"<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">{sheet_xml}</worksheet>"#).as_bytes(),
    );
    zip.finish().unwrap().into_inner()
}

fn args(extra: Value) -> ReadArgs {
    let mut args = json!({"path": "in/book.xlsx"});
    for (k, v) in extra.as_object().unwrap() {
        args[k] = v.clone();
    }
    serde_json::from_value(args).unwrap()
}

/// What `read` makes of a workbook's bytes: its sheets and notes.
fn read_book(bytes: Vec<u8>, extra: Value) -> Result<(Vec<Value>, Vec<String>), ToolError> {
    let path = Path::new("in/book.xlsx");
    let args = args(extra);
    let (kind, stale) = detect(path, &bytes)?;
    let mut budget = Budget::new(path, args.max_rows.unwrap_or(1000), args.start_row);
    let mut notes = Vec::new();
    let sheets = read_workbook(path, bytes, kind, &args, stale, &mut budget, &mut notes)?;
    let sheets = sheets.iter().map(|s| serde_json::from_str(&s.json).unwrap()).collect();
    Ok((sheets, notes))
}

fn read_csv(
    text: &[u8],
    max_rows: u64,
    start_row: Option<u64>,
) -> (Result<csv_read::CsvSheet, ToolError>, Option<(String, u64)>) {
    let path = Path::new("in/data.csv");
    let opts = CsvOptions {
        delimiter: None,
        decimal: None,
        date_order: None,
        header: true,
    };
    let mut budget = Budget::new(path, max_rows, start_row);
    let sheet = csv_read::read(path, text, &opts, "data", &mut budget);
    (sheet, budget.next)
}

#[test]
fn a_workbook_declaring_100000_sheets_is_refused_at_once() {
    let sheets: Vec<String> = (1..=100_000)
        .map(|i| format!(r#"<sheet name="S{i}" sheetId="{i}" r:id="rId1"/>"#))
        .collect();
    let bytes = workbook(
        &sheets,
        r#"<sheetData><row r="1"><c r="A1"><v>1</v></c></row></sheetData>"#,
    );
    let started = Instant::now();
    let err = read_book(bytes, json!({})).unwrap_err();
    // Reading every sheet took 34 s in a release build before.
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let msg = err.to_string();
    assert!(
        matches!(err, ToolError::TooLarge(_)) && msg.contains("100,000 sheets") && msg.contains("work too long"),
        "{msg}"
    );
    // As many as LibreOffice opens still read.
    let sheets: Vec<String> = (1..=300)
        .map(|i| format!(r#"<sheet name="S{i}" sheetId="{i}" r:id="rId1"/>"#))
        .collect();
    let bytes = workbook(
        &sheets,
        r#"<sheetData><row r="1"><c r="A1"><v>1</v></c></row></sheetData>"#,
    );
    assert_eq!(read_book(bytes, json!({"header": false})).unwrap().0.len(), 300);
}

#[test]
fn a_csv_line_of_ten_million_commas_reads_as_excel_would_16384_columns() {
    // After a stray quote too: mid-field, the csv crate reads it as a byte.
    for start in ["", "x\""] {
        let text = format!("{start}{}\n", ",".repeat(10_000_000));
        let started = Instant::now();
        let path = Path::new("in/wide.csv");
        let opts = CsvOptions {
            delimiter: None,
            decimal: None,
            date_order: None,
            header: false,
        };
        let mut budget = Budget::new(path, 10, None);
        let sheet = csv_read::read(path, text.as_bytes(), &opts, "wide", &mut budget).unwrap();
        assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
        assert_eq!(sheet.rows.len(), 1);
        assert_eq!(sheet.rows[0].len(), 16_384);
        let notes = sheet.notes.join(" ");
        assert!(notes.contains("10,000,001") && notes.contains("16,384"), "{notes}");
        assert!(budget.bytes < 200_000, "{}", budget.bytes);
    }
}

#[test]
fn rows_past_16_mib_of_json_are_refused_whole_and_read_in_parts() {
    // Fewer than 50,000 rows: natively, the host's progress import is not there.
    let field = "x".repeat(500);
    let text: String = std::iter::once("a,b\n".to_owned())
        .chain((0..40_000).map(|i| format!("{i},{field}\n")))
        .collect();
    let (sheet, _) = read_csv(text.as_bytes(), 1_000_000, None);
    let msg = sheet.err().unwrap().to_string();
    assert!(
        msg.contains("too large to read whole") && msg.contains("start_row"),
        "{msg}"
    );
    let fit: u64 = msg
        .split("the first ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .map(|n| n.replace(',', "").parse().unwrap())
        .unwrap();
    assert!((20_000..40_000).contains(&fit), "{fit}");

    // A part: what fits, and where the next starts; the next part goes on from there.
    let (sheet, next) = read_csv(text.as_bytes(), 1_000_000, Some(1));
    let rows = sheet.unwrap().rows;
    assert_eq!(rows.len() as u64, fit);
    assert_eq!(next, Some(("data".to_owned(), fit + 1)));
    let (sheet, next) = read_csv(text.as_bytes(), 1_000_000, Some(fit + 1));
    let rest = sheet.unwrap().rows;
    assert_eq!(rest.len() as u64, 40_000 - fit);
    assert_eq!(rest[0][0], json!(fit as f64));
    assert_eq!(next, None);
    // max_rows as the size of a part.
    let (sheet, next) = read_csv(text.as_bytes(), 10, Some(5));
    assert_eq!(sheet.unwrap().rows[0][0], json!(4.0));
    assert_eq!(next, Some(("data".to_owned(), 15)));
}

#[test]
fn a_sheet_spanning_a1_to_xfd1048576_is_cut_not_laid_out() {
    let xml = r#"<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>h</t></is></c></row><row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData>"#;
    let sheets = vec![r#"<sheet name="S" sheetId="1" r:id="rId1"/>"#.to_owned()];
    let started = Instant::now();
    let err = read_book(workbook(&sheets, xml), json!({"max_rows": 1_048_576})).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert!(err.to_string().contains("too large to read whole"), "{err}");
    let (sheets, _) = read_book(workbook(&sheets, xml), json!({"max_rows": 1_048_576, "start_row": 1})).unwrap();
    let rows = sheets[0]["rows"].as_array().unwrap();
    assert!(!rows.is_empty() && rows.len() < 1000, "{}", rows.len());
    assert_eq!(rows[0].as_array().unwrap().len(), 16_384);
}

#[test]
fn documents_that_are_not_spreadsheets_are_named_whatever_their_extension() {
    let zip_with = |name: &str| {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        zip.start_file("[Content_Types].xml", SimpleFileOptions::default())
            .unwrap();
        zip.write_all(b"<Types/>").unwrap();
        zip.start_file(name, SimpleFileOptions::default()).unwrap();
        zip.write_all(b"<x/>").unwrap();
        zip.finish().unwrap().into_inner()
    };
    let utf16 = |s: &str| -> Vec<u8> { s.encode_utf16().flat_map(u16::to_le_bytes).collect() };
    let ole = |stream: &str| [OLE_MAGIC, &[0; 100], &utf16(stream)].concat();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "report.xlsx",
            b"%PDF-1.7\n1 0 obj<<>>endobj\n%%EOF".to_vec(),
            "is a PDF document",
        ),
        (
            "report.csv",
            b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec(),
            "pdf tool's `text`",
        ),
        (
            "letter.xlsx",
            zip_with("word/document.xml"),
            "is a Word document (.docx)",
        ),
        (
            "deck.xlsx",
            zip_with("ppt/presentation.xml"),
            "is a PowerPoint presentation",
        ),
        ("old.xls", ole("WordDocument"), "is a Word 97-2003 document"),
        ("slides.xls", ole("PowerPoint Document"), "PowerPoint 97-2003"),
        ("photo.csv", b"\x89PNG\r\n\x1a\n\0\0".to_vec(), "is a PNG image"),
    ];
    for (name, bytes, says) in cases {
        let err = detect(Path::new(name), &bytes).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, ToolError::BadContent(_)) && msg.contains(says),
            "{name}: {msg}"
        );
    }
    assert_eq!(detect(Path::new("a.xls"), &ole("Workbook")).unwrap().0, Kind::Xls);
}

#[test]
fn show_state_and_a_row_only_dimension_read_as_libreoffice_reads_them() {
    let data = r#"<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>name</t></is></c><c r="B1" t="inlineStr"><is><t>n</t></is></c></row><row r="2"><c r="A2" t="inlineStr"><is><t>a</t></is></c><c r="B2"><v>1.5</v></c></row></sheetData>"#;
    let shown = vec![r#"<sheet name="S" sheetId="1" state="show" r:id="rId1"/>"#.to_owned()];
    let plain = vec![r#"<sheet name="S" sheetId="1" r:id="rId1"/>"#.to_owned()];
    let expected = json!([{"name": "S", "range": "A1:B2", "header": ["name", "n"], "rows": [["a", 1.5]]}]);
    for (sheets, xml, says) in [
        (&shown, data.to_owned(), "\"show\""),
        (&plain, format!(r#"<dimension ref="1:2"/>{data}"#), "\"1:2\""),
        (&plain, format!(r#"<dimension ref="A1:B"/>{data}"#), "\"A1:B\""),
    ] {
        let (sheets, notes) = read_book(workbook(sheets, &xml), json!({})).unwrap();
        assert_eq!(Value::Array(sheets), expected, "{says}");
        assert!(notes.join(" ").contains(says), "{notes:?}");
    }
    // A flaw not mended says how to make the file readable.
    let bad_cell = r#"<sheetData><row r="1"><c r="7"><v>1</v></c></row></sheetData>"#;
    let msg = read_book(workbook(&plain, bad_cell), json!({}))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("save it again"), "{msg}");
}

#[test]
fn a_million_open_brackets_in_a_workbook_comment_read_at_once() {
    let data = r#"<sheetData><row r="1"><c r="A1"><v>1</v></c></row></sheetData>"#;
    let comment = format!("<!--{}-->", "<".repeat(1 << 20));
    let started = Instant::now();
    for state in ["", r#" state="show""#] {
        let sheets = vec![
            comment.clone(),
            format!(r#"<sheet name="S" sheetId="1"{state} r:id="rId1"/>"#),
        ];
        let (sheets, _) = read_book(workbook(&sheets, data), json!({"header": false})).unwrap();
        assert_eq!(sheets[0]["rows"], json!([[1.0]]), "{state}");
    }
    // Every `<` scanned to the end of the run took minutes.
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}

/// The fast path reads every corpus workbook as calamine does, in every
/// mode, or gives up and leaves it to calamine: never a different result.
#[test]
fn the_fast_path_reads_every_corpus_workbook_as_calamine_does() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/spreadsheets");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("skipped: no corpus at ../shared/corpus/spreadsheets beside the repository");
        return;
    };
    let mut compared = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if ext != "xlsx" && ext != "xlsm" {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for extra in [
            json!({}),
            json!({"formulas": true}),
            json!({"header": false, "formulas": true}),
            json!({"start_row": 2, "max_rows": 3}),
        ] {
            let read = |calamine_only: bool| {
                CALAMINE_ONLY.with(|c| c.set(calamine_only));
                let got = read_book(bytes.clone(), extra.clone()).map_err(|e| e.to_string());
                CALAMINE_ONLY.with(|c| c.set(false));
                got
            };
            let before = FAST_SHEETS.with(std::cell::Cell::get);
            let fast = read(false);
            if FAST_SHEETS.with(std::cell::Cell::get) > before && extra == json!({}) {
                eprintln!("fast: {}", path.display());
            }
            assert_eq!(fast, read(true), "{} {extra}", path.display());
            compared += 1;
        }
    }
    let fast = FAST_SHEETS.with(std::cell::Cell::get);
    let reopened = REOPENED.with(std::cell::Cell::get);
    eprintln!(
        "{compared} reads compared, {fast} sheets read by the fast path, {reopened} workbooks opened again for a \
         sheet it gave up on"
    );
    assert!(fast > 0 && reopened > 0);
}

/// Dates written digit by digit read as `datetime_text` words them.
#[test]
fn datetime_json_matches_datetime_text() {
    for serial in [
        1.0,
        60.0,
        61.0,
        45_000.0,
        45_000.5,
        45_000.999_988,
        2_958_465.0,
        0.25,
        12.0,
    ] {
        for kind in [
            calamine::ExcelDateTimeType::DateTime,
            calamine::ExcelDateTimeType::TimeDelta,
        ] {
            let dt = ExcelDateTime::new(serial, kind, false);
            let (key, text) = datetime_text(&dt);
            let mut want = Vec::new();
            write_object(&mut want, key, &text);
            let mut got = Vec::new();
            write_datetime(&mut got, &dt);
            assert_eq!(
                String::from_utf8(got).unwrap(),
                String::from_utf8(want).unwrap(),
                "serial {serial}"
            );
        }
    }
    let mut out = Vec::new();
    push_padded(&mut out, 7, 4);
    push_padded(&mut out, 12_345, 4);
    assert_eq!(out, b"000712345");
}
