//! `convert`: one table file into another: a CSV (or any workbook `read`
//! opens) into a new .xlsx, or a workbook's sheet into a new CSV, through
//! `read`'s typed rows, so both directions read files as `read` does.

use std::path::PathBuf;

use deskhand_guest::{Output, ToolError, csv_field, output};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::MAX_MAX_ROWS;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvertArgs {
    input: PathBuf,
    path: PathBuf,
    sheet: Option<String>,
    #[serde(default = "yes")]
    unique: bool,
}

fn yes() -> bool {
    true
}

pub fn schema() -> Value {
    json!({
        "type": "object", "required": ["input", "path"], "additionalProperties": false,
        "properties": {
            "input": {"type": "string", "description": "a .csv, .xlsx, .xlsm, .xlsb, .xls or .ods file inside a granted folder"},
            "path": {"type": "string", "description": "the new file under output/: .xlsx (a workbook, one sheet per sheet read) or .csv (one sheet's rows)"},
            "sheet": {"type": "string", "description": "to .csv: the sheet to write (default: the first)"},
            "unique": {"type": "boolean", "default": true, "description": "pick a free name when the file exists; false fails instead"}
        }
    })
}

pub fn convert(args: ConvertArgs) -> Result<Output, ToolError> {
    let ext = args
        .path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut read_args = json!({"path": args.input, "max_rows": MAX_MAX_ROWS});
    if let Some(sheet) = &args.sheet {
        read_args["sheet"] = json!(sheet);
    }
    let read =
        crate::read::read(serde_json::from_value(read_args).map_err(|e| ToolError::InvalidArgs(e.to_string()))?)?;
    let read: Value = serde_json::from_str(&read.json).map_err(|e| ToolError::InvalidArgs(e.to_string()))?;
    let sheets = read["sheets"].as_array().cloned().unwrap_or_default();
    match ext.as_str() {
        "xlsx" => to_xlsx(&args, &sheets),
        "csv" => to_csv(&args, &sheets),
        _ => Err(ToolError::InvalidArgs(format!(
            "{} must end in .xlsx or .csv",
            args.path.display()
        ))),
    }
}

fn to_xlsx(args: &ConvertArgs, sheets: &[Value]) -> Result<Output, ToolError> {
    let mut specs = Vec::new();
    let mut rows = 0;
    for sheet in sheets {
        let body: Vec<Value> = sheet["rows"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|row| json!(row.as_array().map(|c| c.iter().map(writable).collect::<Vec<_>>())))
                    .collect()
            })
            .unwrap_or_default();
        rows += body.len();
        let mut spec = json!({"name": sheet_name(sheet["name"].as_str().unwrap_or("Sheet1")), "rows": body});
        if let Some(header) = sheet["header"].as_array().filter(|h| !h.is_empty()) {
            spec["header"] = json!(header);
            spec["freeze"] = json!({"rows": 1});
            spec["autofilter"] = json!(true);
        }
        specs.push(spec);
    }
    if specs.is_empty() {
        return Err(ToolError::BadContent(deskhand_guest::path_error(
            &args.input,
            "has no sheet to convert",
        )));
    }
    let write = json!({"path": args.path, "unique": args.unique, "sheets": specs});
    let out = crate::write::write(serde_json::from_value(write).map_err(|e| ToolError::InvalidArgs(e.to_string()))?)?;
    let written: Value = serde_json::from_str(&out.json).map_err(|e| ToolError::InvalidArgs(e.to_string()))?;
    let path = written["path"].as_str().unwrap_or_default().to_owned();
    let j = json!({"path": path, "input": args.input.display().to_string(), "sheets": specs.len(), "rows": rows});
    Ok(output(
        &j,
        format!(
            "converted {} to {path} ({} row{}, {} sheet{})",
            args.input.display(),
            crate::count(rows as u64),
            if rows == 1 { "" } else { "s" },
            specs.len(),
            if specs.len() == 1 { "" } else { "s" }
        ),
    ))
}

/// A cell as `read` gives it, in a form `write` takes: a formula keeps its
/// formula (the spreadsheet computes it again), not the value stored with it.
fn writable(cell: &Value) -> Value {
    match cell.get("formula") {
        Some(formula) => json!({"formula": formula}),
        None => cell.clone(),
    }
}

/// Excel's sheet names: at most 31 characters, none of `[]:*?/\`.
fn sheet_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if "[]:*?/\\".contains(c) { '_' } else { c })
        .take(31)
        .collect();
    if clean.trim().is_empty() {
        "Sheet1".into()
    } else {
        clean
    }
}

fn to_csv(args: &ConvertArgs, sheets: &[Value]) -> Result<Output, ToolError> {
    let Some(sheet) = sheets.first() else {
        return Err(ToolError::BadContent(deskhand_guest::path_error(
            &args.input,
            "has no sheet to convert",
        )));
    };
    let mut text = String::new();
    let mut line = |cells: Vec<String>| {
        let fields: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
        text.push_str(&fields.join(","));
        text.push_str("\r\n");
    };
    if let Some(header) = sheet["header"].as_array() {
        line(
            header
                .iter()
                .map(|h| h.as_str().unwrap_or_default().to_owned())
                .collect(),
        );
    }
    let rows = sheet["rows"].as_array().cloned().unwrap_or_default();
    for row in &rows {
        line(
            row.as_array()
                .map(|c| c.iter().map(cell_text).collect())
                .unwrap_or_default(),
        );
    }
    let written = deskhand_guest::write_new(&args.path, text.as_bytes(), args.unique)?;
    let name = sheet["name"].as_str().unwrap_or_default();
    let mut j = json!({"path": written.display().to_string(), "input": args.input.display().to_string(),
                       "sheet": name, "rows": rows.len()});
    let others: Vec<&str> = sheets[1..].iter().filter_map(|s| s["name"].as_str()).collect();
    if !others.is_empty() {
        j["notes"] = json!([format!(
            "a CSV holds one sheet: wrote {name:?}; the others ({}) can be converted by naming them as \"sheet\"",
            others.join(", ")
        )]);
    }
    Ok(output(
        &j,
        format!(
            "converted sheet {name:?} of {} to {} ({} row{}){}",
            args.input.display(),
            written.display(),
            crate::count(rows.len() as u64),
            if rows.len() == 1 { "" } else { "s" },
            if others.is_empty() {
                String::new()
            } else {
                format!("; {} other sheet(s) left out", others.len())
            }
        ),
    ))
}

/// A typed cell as CSV text: dates as ISO, amounts as their number, a
/// formula as the value the file stored, empty cells empty.
fn cell_text(cell: &Value) -> String {
    match cell {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        // A whole number as people write it (4200, not 4200.0).
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 && !n.is_i64() && !n.is_u64() => format!("{f:.0}"),
            _ => n.to_string(),
        },
        Value::Object(o) => ["value", "date", "amount", "number", "text", "bool", "error"]
            .iter()
            .find_map(|k| o.get(*k))
            .map(cell_text)
            .unwrap_or_default(),
        Value::Array(_) => cell.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_cells_become_csv_text() {
        assert_eq!(cell_text(&json!(null)), "");
        assert_eq!(cell_text(&json!(12.5)), "12.5");
        assert_eq!(cell_text(&json!(4200.0)), "4200");
        assert_eq!(cell_text(&json!(-3)), "-3");
        assert_eq!(cell_text(&json!({"date": "2026-03-02"})), "2026-03-02");
        assert_eq!(cell_text(&json!({"amount": 9.9, "currency": "EUR"})), "9.9");
        assert_eq!(cell_text(&json!({"formula": "SUM(A1:A2)", "value": 3})), "3");
        assert_eq!(cell_text(&json!(true)), "TRUE");
    }

    #[test]
    fn formulas_are_written_again_and_sheet_names_made_valid() {
        assert_eq!(
            writable(&json!({"formula": "A1*2", "value": 4})),
            json!({"formula": "A1*2"})
        );
        assert_eq!(
            writable(&json!({"amount": 1, "currency": "EUR"})),
            json!({"amount": 1, "currency": "EUR"})
        );
        assert_eq!(sheet_name("Q1/Q2 [draft]"), "Q1_Q2 _draft_");
        assert_eq!(sheet_name(&"x".repeat(40)).len(), 31);
        assert_eq!(sheet_name(" "), "Sheet1");
    }

    #[test]
    fn a_csv_becomes_a_workbook_and_back() {
        let dir = std::env::temp_dir().join(format!("deskhand-xlsx-convert-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("budget.csv"),
            "Item;Amount\nRent;1.200,50\n\"Cafe; bar\";3,5\n",
        )
        .unwrap();
        let args = |input: &str, path: &str| -> ConvertArgs {
            serde_json::from_value(json!({"input": dir.join(input), "path": dir.join(path)})).unwrap()
        };
        let out = convert(args("budget.csv", "budget.xlsx")).unwrap();
        let j: Value = serde_json::from_str(&out.json).unwrap();
        assert_eq!(j["rows"], 2, "{j}");
        // A second run picks a free name.
        let again: Value = serde_json::from_str(&convert(args("budget.csv", "budget.xlsx")).unwrap().json).unwrap();
        assert!(again["path"].as_str().unwrap().ends_with("budget-1.xlsx"), "{again}");
        convert(args("budget.xlsx", "back.csv")).unwrap();
        let csv = std::fs::read_to_string(dir.join("back.csv")).unwrap();
        assert_eq!(csv, "Item,Amount\r\nRent,1200.5\r\nCafe; bar,3.5\r\n");
        assert!(matches!(
            convert(args("budget.csv", "budget.txt")),
            Err(ToolError::InvalidArgs(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
