//! The plain path against rust_xlsxwriter: for each spec, both write the
//! workbook and every part but `docProps/core.xml` (its timestamp) must be the
//! same bytes; specs the plain path must leave to rust_xlsxwriter do.

use serde_json::{Value, json};

use super::{WriteArgs, plain, write_with};

fn args(path: &std::path::Path, sheets: Value) -> WriteArgs {
    serde_json::from_value(json!({"path": path, "sheets": sheets})).expect("a valid spec")
}

fn parts(file: &[u8]) -> Vec<(String, Vec<u8>)> {
    let archive = zip::ZipArchive::new(std::io::Cursor::new(file)).expect("a zip");
    let names: Vec<String> = archive
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .collect();
    names
        .into_iter()
        .map(|n| {
            let bytes = plain::entry(file, &n).expect("an entry");
            (n, bytes)
        })
        .collect()
}

/// Writes `sheets` both ways and compares them part by part.
fn same_both_ways(sheets: Value) {
    let dir = tempdir();
    let fast = dir.join("fast.xlsx");
    let slow = dir.join("slow.xlsx");
    let plain = plain::build(&args(&fast, sheets.clone()));
    assert!(plain.is_some(), "the plain path should take {sheets}");
    let out_fast = write_with(args(&fast, sheets.clone()), true).expect("plain write");
    let out_slow = write_with(args(&slow, sheets.clone()), false).expect("rust_xlsxwriter write");
    let (a, b) = (std::fs::read(&fast).expect("fast"), std::fs::read(&slow).expect("slow"));
    let (pa, pb) = (parts(&a), parts(&b));
    let names = |p: &[(String, Vec<u8>)]| p.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&pa), names(&pb), "the same parts in the same order");
    for ((name, x), (_, y)) in pa.iter().zip(&pb) {
        if name == "docProps/core.xml" {
            continue;
        }
        assert!(
            x == y,
            "{name} differs for {sheets}:\nplain:          {}\nrust_xlsxwriter: {}",
            String::from_utf8_lossy(x),
            String::from_utf8_lossy(y)
        );
    }
    let summary = |o: &deskhand_guest::Output| {
        let v: Value = serde_json::from_str(&o.json).expect("json");
        v["sheets"].clone()
    };
    assert_eq!(summary(&out_fast), summary(&out_slow));
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "xlsx-plain-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}

#[test]
fn a_typed_table_with_header_totals_and_formats_is_the_same_both_ways() {
    same_both_ways(json!([{
        "name": "Expenses",
        "header": ["Date", "Item", "Amount", "EUR", "Paid", "Share", "Check"],
        "rows": [
            [{"date": "2026-03-01"}, "Coffee & cake <2>", 3.5, {"amount": 4.25, "currency": "EUR"}, true, {"number": 0.25, "format": "0%"}, {"formula": "=C2*2"}],
            [{"date": "2026-03-02T10:30"}, " padded ", -12, {"amount": 1000, "currency": "usd"}, false, null, {"formula": "IF(C3>0,\"yes\",\"no\")"}],
            [null, "Ünïcödé text", 1e21, {"amount": 7, "currency": "CHF"}, null, 0.1, {"formula": "SUM(C2:C3)", "format": "#,##0.00"}],
            [{"date": "2026-12-31", "format": "dd/mm/yyyy"}, "multi\nline", 123456789.125, null, null, {"text": "12"}, {"bool": true}]
        ],
        "columns": [null, {"width": 30}, {"format": "#,##0.00"}, null, {"width": 0.5}],
        "totals": {"columns": ["C", "D", "G"]}
    }]));
}

#[test]
fn sheets_without_a_header_with_panes_filters_and_ragged_rows_are_the_same_both_ways() {
    same_both_ways(json!([
        {"name": "One", "rows": [[1, 2, 3], [4], [], [null, null, "x"]], "freeze": {"rows": 2, "cols": 1}},
        {"name": "Two", "header": ["a", "b"], "rows": [[1, "s"]], "freeze": {"cols": 2}, "autofilter": false,
         "header_fill": "#FFCC00"},
        {"name": "Three", "header": ["a"], "rows": [["s"], ["t"]], "freeze": {"rows": 0}, "totals": {"columns": ["A"], "function": "COUNT", "label": "n"}},
        {"name": "Four", "rows": [[true]], "autofilter": true}
    ]));
}

#[test]
fn many_rows_span_blocks_and_share_strings_the_same_both_ways() {
    let rows: Vec<Value> = (0..300)
        .map(|i| {
            let r = i + 2;
            let category = ["food", "travel"][i % 2];
            let b = if i % 17 == 0 { Value::Null } else { json!(i % 5) };
            json!([i, {"date": format!("2026-{:02}-{:02}", i % 12 + 1, i % 28 + 1)}, format!("item {}", i % 40),
                   category, (i as f64) / 7.0, b, {"formula": format!("SUM(E{r}:F{r})")}])
        })
        .collect();
    same_both_ways(
        json!([{"name": "Data", "header": ["id", "date", "name", "category", "a", "b", "total"], "rows": rows}]),
    );
}

#[test]
fn what_the_plain_path_does_not_write_goes_to_rust_xlsxwriter() {
    let dir = tempdir();
    let path = dir.join("x.xlsx");
    for sheets in [
        json!([{"name": "S", "rows": [[{"formula": "XLOOKUP(1,A:A,B:B)"}]]}]),
        json!([{"name": "S", "rows": [[{"formula": "_xlfn.STDEV.S(A1:A3)"}]]}]),
        json!([{"name": "S", "rows": [["bell\u{7}"]]}]),
        json!([{"name": "S", "rows": [["_x0041_"]]}]),
        json!([{"name": "S", "rows": [[""]]}]),
        json!([{"name": "S", "rows": []}]),
        json!([{"name": "S", "rows": [[1]], "print": {}}]),
        json!([{"name": "S", "rows": [[1], [2]], "charts": [{"type": "line", "categories": "A1:A2", "values": "A1:A2"}]}]),
        json!([{"name": "S", "rows": [[{"date": "2026-02-30"}]]}]),
    ] {
        assert!(
            plain::build(&args(&path, sheets.clone())).is_none(),
            "{sheets} is not plain"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
