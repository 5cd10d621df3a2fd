//! The `xlsx` tool: writes workbooks under output/ from a JSON spec (typed
//! cells, formulas the spreadsheet computes, number and date formats, column
//! widths, a styled header row, frozen panes, an auto-filter, charts) with
//! rust_xlsxwriter, and reads xlsx, xlsm, xlsb, xls, ods (calamine) and CSV
//! into typed rows; `convert` turns a CSV into a workbook or a sheet into a
//! CSV through those same rows.
//!
//! Nothing here computes a formula: totals are written as formulas for the
//! spreadsheet to compute, never as numbers.

mod budget;
mod cache;
mod combine;
mod convert;
mod csv_read;
pub mod csv_scan;
mod edit;
mod number_text;
mod read;
mod repair;
pub mod typed;
mod write;
pub use write::currency_format;

use deskhand_guest::{Description, Output, ToolError, operation, parse_args};
use serde_json::json;

/// The largest file `read` opens.
pub(crate) const MAX_FILE_BYTES: u64 = 128 * 1024 * 1024;
/// `read`'s row cap when the call names none, and the highest it may name.
pub(crate) const DEFAULT_MAX_ROWS: u64 = 10_000;
pub(crate) const MAX_MAX_ROWS: u64 = 1_048_576;

#[cfg(feature = "component")]
struct Xlsx;

#[cfg(feature = "component")]
impl deskhand_guest::Guest for Xlsx {
    fn describe() -> Description {
        describe()
    }

    fn run(op: String, args: String) -> Result<Output, ToolError> {
        run(&op, &args)
    }
}

/// The tool's description: its operations, their argument schemas and effects.
pub fn describe() -> Description {
    Description {
        name: "xlsx".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        summary: "Writes Excel workbooks (typed cells, formulas, formats, a header row, frozen panes, an \
                      auto-filter, charts) under output/, edits existing xlsx/xlsm files in place (cells, rows, sheets; \
                      proposed as an overwrite), and reads xlsx/xls/ods/csv files into typed rows."
            .into(),
        operations: vec![
            operation(
                "write",
                "Create a new .xlsx workbook under output/ from sheets of typed cells. Totals must be \
                     formulas ({\"formula\": \"SUM(D2:D9)\"} or a sheet's `totals`), never numbers you computed. \
                     Never overwrites a file.",
                write::schema(),
                &[],
                &["path"],
            ),
            operation(
                "edit",
                "Change an existing .xlsx/.xlsm workbook in place, in one call: set cells (values or formulas; \
                     each cell keeps its style), insert or delete rows (references shift), add or rename sheets \
                     (references follow). Only the sheets it changes are rewritten; charts, pivots, pictures, \
                     macros and everything else are kept byte for byte. Proposes overwriting the file (the \
                     person sees it, it can be undone); spreadsheet apps recalculate formulas on opening. \
                     Refuses, changing nothing, what it cannot move safely (merged cells, tables, drawings, \
                     charts over rows that would move).",
                edit::schema(),
                &["path"],
                &[],
            ),
            operation(
                "convert",
                "Convert a table file: a CSV (or a workbook) into a new .xlsx under output/ (typed cells, a \
                     frozen, filtered header), or a workbook's sheet into a new CSV (UTF-8, comma-separated). \
                     CSV encoding, delimiter and decimal separator are detected. Picks a free name when the file \
                     exists, unless unique is false.",
                convert::schema(),
                &["input"],
                &["path"],
            ),
            operation(
                "combine",
                "Combine the first sheet of several workbooks or CSV files (listed, or every one directly in a \
                     folder, in name order) into a new .xlsx under output/: one sheet per file, named after it \
                     (mode sheets), or every file's rows under one header with a Source column, columns matched \
                     by name (mode stack). Nothing is changed in the inputs. Picks a free name when the file \
                     exists, unless unique is false.",
                combine::schema(),
                &["inputs[]", "folder"],
                &["path"],
            ),
            operation(
                "read",
                "Read an xlsx/xlsm/xlsb/xls/ods workbook or a CSV file into typed rows: numbers, text, \
                     booleans, {\"date\": ISO}, {\"amount\", \"currency\"} (from a currency symbol or an xlsx \
                     currency format), {\"error\"}, null for empty. CSV encoding, delimiter and decimal \
                     separator are detected.",
                read::schema(),
                &["path"],
                &[],
            ),
        ],
    }
}

/// Runs one operation on its JSON arguments: what the component's `run`
/// does, for guest components that use this crate as a library.
pub fn run(op: &str, args: &str) -> Result<Output, ToolError> {
    match op {
        "write" => write::write(parse_args(args)?),
        "read" => read::read(parse_args(args)?),
        "edit" => edit::edit(parse_args(args)?),
        "convert" => convert::convert(parse_args(args)?),
        "combine" => combine::combine(parse_args(args)?),
        // Not in the description: the host runs it after a workbook is written
        // (runtime/src/call.rs); a model never sees or calls it.
        "cache_values" => cache::cache_values(parse_args(args)?),
        _ => Err(ToolError::UnknownOperation(op.to_owned())),
    }
}

#[cfg(feature = "component")]
deskhand_guest::export!(Xlsx with_types_in deskhand_guest::bindings);

/// A count as people read it: `1234567` -> `1,234,567`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The JSON forms of one cell, for `write`'s schema (`read` returns the same forms).
pub(crate) fn cell_forms() -> serde_json::Value {
    json!([
        {"type": "null", "description": "an empty cell"},
        {"type": "number"},
        {"type": "string", "description": "text, always stored as text (a leading = is not a formula)"},
        {"type": "boolean"},
        {"type": "object", "required": ["formula"], "additionalProperties": false, "properties": {
            "formula": {"type": "string", "description": "an Excel formula, with or without the leading =, e.g. SUM(D2:D9), SUMIFS(D:D,C:C,\"Food\"), INDEX(B2:B9,MATCH(\"x\",A2:A9,0)), XLOOKUP(...), IF(...), ROUND(...,2)"},
            "format": {"type": "string"}}},
        {"type": "object", "required": ["date"], "additionalProperties": false, "properties": {
            "date": {"type": "string", "description": "YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS]"},
            "format": {"type": "string", "default": "yyyy-mm-dd"}}},
        {"type": "object", "required": ["amount", "currency"], "additionalProperties": false, "properties": {
            "amount": {"type": "number"},
            "currency": {"type": "string", "description": "EUR, USD, GBP, JPY (or €, $, £, ¥) or another ISO 4217 code"},
            "format": {"type": "string"}}},
        {"type": "object", "required": ["number"], "additionalProperties": false, "properties": {
            "number": {"type": "number"},
            "format": {"type": "string", "description": "an Excel number format, e.g. #,##0.00 or 0.0%"}}},
        {"type": "object", "required": ["text"], "additionalProperties": false, "properties": {
            "text": {"type": "string"}}},
        {"type": "object", "required": ["bool"], "additionalProperties": false, "properties": {
            "bool": {"type": "boolean"}}}
    ])
}
