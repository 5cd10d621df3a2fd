//! `combine`: the first sheet of several workbooks (or CSV files) in one new
//! workbook under output/, through `read`'s typed rows and `write`, so each
//! input is read as `read` reads it. Two ways:
//!
//! - `sheets` (the default): one sheet per input, named after its file,
//!   with its header and rows as they are; a formula that points at another
//!   sheet or workbook (which the new workbook does not have) is kept as the
//!   value it last computed, and the result says how many.
//! - `stack`: one sheet, `Combined`, with a `Source` column (the file's name)
//!   and the inputs' rows one below the other, their columns matched by
//!   header (case and surrounding spaces ignored); a column only some inputs
//!   have is empty for the others, and the result names them. Formulas are
//!   kept as their values, since their rows moved.
//!
//! Nothing is changed in the inputs; the new workbook never overwrites a file.

use std::path::{Path, PathBuf};

use deskhand_guest::{Output, ToolError, natural_cmp, output, path_error, walk};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::MAX_MAX_ROWS;

/// The most inputs one call combines.
const MAX_INPUTS: usize = 200;
/// What `folder` picks up.
const EXTENSIONS: &[&str] = &["xlsx", "xlsm", "xlsb", "xls", "ods", "csv"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CombineArgs {
    #[serde(default)]
    inputs: Vec<PathBuf>,
    folder: Option<PathBuf>,
    path: PathBuf,
    #[serde(default)]
    mode: Mode,
    #[serde(default = "yes")]
    unique: bool,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Mode {
    #[default]
    Sheets,
    Stack,
}

fn yes() -> bool {
    true
}

pub fn schema() -> Value {
    json!({
        "type": "object", "required": ["path"], "additionalProperties": false,
        "properties": {
            "inputs": {"type": "array", "maxItems": MAX_INPUTS, "items": {"type": "string"},
                       "description": "the workbooks (.xlsx, .xlsm, .xlsb, .xls, .ods) or CSV files, in order; or give folder"},
            "folder": {"type": "string", "description": "take every workbook and CSV directly in this folder, in name order (\"2\" before \"10\")"},
            "path": {"type": "string", "description": "the new .xlsx under output/"},
            "mode": {"type": "string", "enum": ["sheets", "stack"], "default": "sheets",
                     "description": "sheets: one sheet per input, named after its file; stack: one sheet with every input's rows under one header, columns matched by name, and a Source column"},
            "unique": {"type": "boolean", "default": true, "description": "pick a free name when the file exists; false fails instead"}
        }
    })
}

/// One input's first sheet, as `read` gave it.
struct Table {
    file: String,
    /// Whether the sheet's table starts at A1, where the new sheet puts it:
    /// only then do its formulas' references still point at the same cells.
    at_a1: bool,
    header: Vec<String>,
    rows: Vec<Value>,
}

pub fn combine(args: CombineArgs) -> Result<Output, ToolError> {
    if !args.path.extension().is_some_and(|e| e.eq_ignore_ascii_case("xlsx")) {
        return Err(ToolError::InvalidArgs(format!(
            "path {} must end in .xlsx",
            args.path.display()
        )));
    }
    let inputs = inputs(&args)?;
    let mut tables = Vec::with_capacity(inputs.len());
    let mut total = 0u64;
    for input in &inputs {
        let Some(left) = MAX_MAX_ROWS.checked_sub(total).filter(|l| *l > 0) else {
            return Err(ToolError::TooLarge(path_error(
                input,
                format!(
                    "is past the {} rows the files together may hold; combine fewer files",
                    crate::count(MAX_MAX_ROWS)
                ),
            )));
        };
        let table = first_sheet(input, left)?;
        total += table.rows.len() as u64;
        tables.push(table);
    }
    let (sheets, notes) = match args.mode {
        Mode::Sheets => by_sheet(&tables),
        Mode::Stack => stacked(&tables),
    };
    let write = json!({"path": args.path, "unique": args.unique, "sheets": sheets});
    let out = crate::write::write(serde_json::from_value(write).map_err(|e| ToolError::InvalidArgs(e.to_string()))?)?;
    let written: Value = serde_json::from_str(&out.json).map_err(|e| ToolError::InvalidArgs(e.to_string()))?;
    let path = written["path"].as_str().unwrap_or_default().to_owned();
    let names: Vec<&str> = tables.iter().map(|t| t.file.as_str()).collect();
    let mut j = json!({"path": path, "inputs": names, "rows": total,
                       "mode": if args.mode == Mode::Stack { "stack" } else { "sheets" }});
    if !notes.is_empty() {
        j["notes"] = json!(notes);
    }
    let how = match args.mode {
        Mode::Sheets => "one sheet each",
        Mode::Stack => "stacked on one sheet",
    };
    let mut text = format!(
        "combined the first sheets of {} file{} ({} row{}, {how}) into {path}: {}",
        tables.len(),
        if tables.len() == 1 { "" } else { "s" },
        crate::count(total),
        if total == 1 { "" } else { "s" },
        names.join(", ")
    );
    for note in &notes {
        text.push_str("; ");
        text.push_str(note);
    }
    Ok(output(&j, text))
}

/// The files to combine: `inputs` as given, or the table files directly in
/// `folder` (hidden names, links and sub-folders left out), never both.
fn inputs(args: &CombineArgs) -> Result<Vec<PathBuf>, ToolError> {
    let found = match (&args.folder, args.inputs.is_empty()) {
        (Some(_), false) => {
            return Err(ToolError::InvalidArgs("give either inputs or folder, not both".into()));
        }
        (None, true) => {
            return Err(ToolError::InvalidArgs(
                "name the files to combine (inputs) or the folder that holds them (folder)".into(),
            ));
        }
        (None, false) => args.inputs.clone(),
        (Some(folder), true) => {
            let mut found = Vec::new();
            walk(folder, false, &mut |path, meta| {
                let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
                let table = Path::new(name.as_ref())
                    .extension()
                    .is_some_and(|e| EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)));
                if meta.is_file() && table && !name.starts_with('.') && !name.starts_with("~$") {
                    found.push(path.to_path_buf());
                }
                true
            })?;
            found.sort_by(|a, b| natural_cmp(&file_name(a), &file_name(b)));
            if found.is_empty() {
                return Err(ToolError::NotFound(path_error(
                    folder,
                    "has no workbook or CSV file directly in it (sub-folders, hidden names and links are not taken)",
                )));
            }
            found
        }
    };
    if found.len() > MAX_INPUTS {
        return Err(ToolError::InvalidArgs(format!(
            "{} files to combine; one call takes at most {MAX_INPUTS}",
            found.len()
        )));
    }
    Ok(found)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The first sheet of `path` (its first worksheet; a CSV is one), at most
/// `max_rows` rows, with formula cells as `{"formula", "value"}`.
fn first_sheet(path: &Path, max_rows: u64) -> Result<Table, ToolError> {
    let mut args = json!({"path": path, "max_rows": max_rows, "formulas": true});
    if let Some(name) = first_worksheet(path) {
        args["sheet"] = json!(name);
    }
    let read = crate::read::read(serde_json::from_value(args).map_err(|e| ToolError::InvalidArgs(e.to_string()))?)
        .map_err(|e| match e {
            ToolError::TooLarge(pe) => ToolError::TooLarge(path_error(
                Path::new(&pe.path),
                format!(
                    "{} (the files together may hold at most {} rows)",
                    pe.message,
                    crate::count(MAX_MAX_ROWS)
                ),
            )),
            other => other,
        })?;
    let mut read: Value = serde_json::from_str(&read.json).map_err(|e| ToolError::InvalidArgs(e.to_string()))?;
    let Some(sheet) = read["sheets"]
        .as_array_mut()
        .and_then(|s| s.first_mut())
        .map(Value::take)
    else {
        return Err(ToolError::BadContent(path_error(path, "has no sheet to combine")));
    };
    let header = sheet["header"]
        .as_array()
        .map(|h| h.iter().map(|c| c.as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default();
    let rows = match sheet.get("rows") {
        Some(Value::Array(rows)) => rows.clone(),
        _ => Vec::new(),
    };
    let at_a1 = sheet["range"].as_str().is_none_or(|r| r.starts_with("A1:"));
    Ok(Table {
        file: file_name(path),
        at_a1,
        header,
        rows,
    })
}

/// The name of a workbook's first worksheet, so only that sheet is read;
/// `None` for a CSV, or where calamine cannot list the sheets (`read` then
/// reads them all, and says what is wrong with the file if anything is).
fn first_worksheet(path: &Path) -> Option<String> {
    use calamine::Reader;
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
        return None;
    }
    let bytes = crate::read::read_file(path).ok()?;
    let book = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes)).ok()?;
    book.sheets_metadata()
        .iter()
        .find(|s| s.typ == calamine::SheetType::WorkSheet)
        .map(|s| s.name.clone())
}

/// A formula cell's value where its formula cannot come along: one that
/// points at another sheet or workbook or uses a defined name (which the
/// new workbook does not have), or any formula when `all`.
fn carried(cell: &Value, all: bool) -> (Value, bool) {
    match cell.get("formula").and_then(Value::as_str) {
        Some(f) if all || f.contains('!') || f.contains('[') || uses_a_name(f) => {
            (cell.get("value").cloned().unwrap_or(Value::Null), true)
        }
        Some(f) => (json!({"formula": f}), false),
        None => (cell.clone(), false),
    }
}

/// Whether `formula` holds a word that is neither a function (followed by
/// `(`), a cell reference (`B7`, `$C$2`), nor TRUE/FALSE: a defined name.
fn uses_a_name(formula: &str) -> bool {
    let mut outside = String::with_capacity(formula.len());
    for (i, part) in formula.split('"').enumerate() {
        if i % 2 == 0 {
            outside.push_str(part);
        }
        outside.push(' ');
    }
    let bytes = outside.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_alphabetic() || bytes[i] == b'_' || bytes[i] == b'$' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || b"_.$".contains(&bytes[i])) {
                i += 1;
            }
            let word = outside[start..i].trim_start_matches('$');
            let function = outside[i..].trim_start().starts_with('(');
            let letters = word.trim_end_matches(|c: char| c.is_ascii_digit() || c == '$');
            let cell = (1..=3).contains(&letters.len())
                && letters.bytes().all(|b| b.is_ascii_alphabetic())
                && letters.len() < word.len();
            let boolean = word.eq_ignore_ascii_case("true") || word.eq_ignore_ascii_case("false");
            if !function && !cell && !boolean {
                return true;
            }
        } else {
            i += 1;
        }
    }
    false
}

/// One sheet per input, named after its file (Excel's rules: at most 31
/// characters, none of `[]:*?/\`, names unique ignoring case).
fn by_sheet(tables: &[Table]) -> (Vec<Value>, Vec<String>) {
    let mut taken: Vec<String> = Vec::new();
    let mut as_values = 0usize;
    let mut sheets = Vec::with_capacity(tables.len());
    for t in tables {
        let name = unique_sheet_name(&t.file, &mut taken);
        let rows: Vec<Value> = t
            .rows
            .iter()
            .map(|row| {
                let cells = row.as_array().map(Vec::as_slice).unwrap_or_default();
                Value::Array(
                    cells
                        .iter()
                        .map(|c| {
                            let (cell, valued) = carried(c, !t.at_a1);
                            as_values += usize::from(valued);
                            cell
                        })
                        .collect(),
                )
            })
            .collect();
        let mut spec = json!({"name": name, "rows": rows});
        if t.header.iter().any(|h| !h.is_empty()) {
            spec["header"] = json!(t.header);
            spec["freeze"] = json!({"rows": 1});
            spec["autofilter"] = json!(true);
        }
        sheets.push(spec);
    }
    let mut notes = Vec::new();
    if as_values > 0 {
        notes.push(format!(
            "{as_values} formula(s) that point at another sheet or workbook, use a defined name, or sit in a table \
             that does not start at A1 are kept as their last computed values"
        ));
    }
    (sheets, notes)
}

fn unique_sheet_name(file: &str, taken: &mut Vec<String>) -> String {
    let stem = Path::new(file)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let clean: String = stem
        .chars()
        .map(|c| if "[]:*?/\\".contains(c) { '_' } else { c })
        .collect();
    let clean = clean.trim().trim_matches('\'').to_owned();
    let base = if clean.is_empty() { "Sheet".to_owned() } else { clean };
    let mut n = 1;
    loop {
        let suffix = if n == 1 { String::new() } else { format!(" ({n})") };
        let keep = 31 - suffix.chars().count();
        let name: String = base.chars().take(keep).collect::<String>() + &suffix;
        if !taken.iter().any(|t| t.to_lowercase() == name.to_lowercase()) {
            taken.push(name.clone());
            return name;
        }
        n += 1;
    }
}

/// Every input's rows under one header: `Source`, then each column name in
/// the order it is first seen.
fn stacked(tables: &[Table]) -> (Vec<Value>, Vec<String>) {
    let key = |h: &str| h.trim().to_lowercase();
    let mut columns: Vec<String> = Vec::new();
    for t in tables {
        for h in &t.header {
            if !columns.iter().any(|c| key(c) == key(h)) {
                columns.push(h.trim().to_owned());
            }
        }
    }
    let mut rows = Vec::new();
    let mut partial: Vec<&str> = Vec::new();
    for t in tables {
        let at: Vec<Option<usize>> = columns
            .iter()
            .map(|c| t.header.iter().position(|h| key(h) == key(c)))
            .collect();
        if at.iter().any(Option::is_none) {
            partial.push(&t.file);
        }
        for row in &t.rows {
            let cells = row.as_array().map(Vec::as_slice).unwrap_or_default();
            let mut out = Vec::with_capacity(columns.len() + 1);
            out.push(json!(t.file));
            for i in &at {
                let cell = i.and_then(|i| cells.get(i)).unwrap_or(&Value::Null);
                out.push(carried(cell, true).0);
            }
            rows.push(Value::Array(out));
        }
    }
    let mut header = vec!["Source".to_owned()];
    header.extend(columns);
    let mut notes = Vec::new();
    if !partial.is_empty() {
        notes.push(format!(
            "not every column is in every file; empty where missing: {}",
            partial.join(", ")
        ));
    }
    let sheet = json!({"name": "Combined", "header": header, "rows": rows, "freeze": {"rows": 1}, "autofilter": true});
    (vec![sheet], notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(file: &str, header: &[&str], rows: Value) -> Table {
        Table {
            file: file.into(),
            at_a1: true,
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: rows.as_array().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn stacking_matches_columns_by_name_and_says_which_files_lack_one() {
        let a = table(
            "jan.xlsx",
            &["Date", "Amount"],
            json!([["2026-01-02", 5], ["2026-01-03", {"formula": "B2*2", "value": 10}]]),
        );
        let b = table("feb.csv", &[" amount ", "Note"], json!([[7, "taxi"]]));
        let (sheets, notes) = stacked(&[a, b]);
        assert_eq!(sheets[0]["header"], json!(["Source", "Date", "Amount", "Note"]));
        assert_eq!(
            sheets[0]["rows"],
            json!([
                ["jan.xlsx", "2026-01-02", 5, null],
                ["jan.xlsx", "2026-01-03", 10, null],
                ["feb.csv", null, 7, "taxi"]
            ])
        );
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("jan.xlsx, feb.csv"), "{notes:?}");
    }

    #[test]
    fn sheets_are_named_after_files_and_keep_their_own_formulas() {
        let a = table(
            "Q1: sales?.xlsx",
            &["x"],
            json!([[{"formula": "A1+1", "value": 2}, {"formula": "Other!A1", "value": 3}]]),
        );
        let b = table("q1_ sales_.xlsx", &[], json!([[1]]));
        let (sheets, notes) = by_sheet(&[a, b]);
        assert_eq!(sheets[0]["name"], "Q1_ sales_");
        assert_eq!(sheets[1]["name"], "q1_ sales_ (2)");
        assert_eq!(sheets[0]["rows"], json!([[{"formula": "A1+1"}, 3]]));
        assert!(sheets[1].get("header").is_none());
        assert!(notes[0].starts_with("1 formula(s)"), "{notes:?}");
    }

    #[test]
    fn defined_names_are_told_from_functions_cells_and_text() {
        for f in ["SUM(A1:B2)", "$C$2*2", "IF(A1>0,TRUE,\"Tax rate\")", "A1&\" total\""] {
            assert!(!uses_a_name(f), "{f}");
        }
        for f in ["TaxRate*B2", "SUM(Sales)", "A1*rate"] {
            assert!(uses_a_name(f), "{f}");
        }
    }

    #[test]
    fn long_names_are_cut_to_excels_31_characters() {
        let mut taken = Vec::new();
        let long = format!("{}.xlsx", "a".repeat(40));
        assert_eq!(unique_sheet_name(&long, &mut taken).chars().count(), 31);
        let second = unique_sheet_name(&long, &mut taken);
        assert_eq!(second.chars().count(), 31);
        assert!(second.ends_with(" (2)"));
    }
}
