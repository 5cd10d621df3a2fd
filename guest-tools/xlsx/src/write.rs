//! `write`: a workbook from a JSON spec, built whole in memory, then saved
//! with the sdk's never-overwrite write (a temporary file linked into place),
//! so a bad spec or a failed save leaves nothing behind.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use deskhand_guest::{Output, ToolError, output, path_error, write_new_with};
use rust_xlsxwriter::{
    Chart, ChartType, Color, ExcelDateTime, Format, FormatBorder, Formula, Workbook, Worksheet, XlsxError,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::typed::{self, DateTime};

mod plain;
#[cfg(test)]
mod plain_tests;

/// Excel's own limits.
const MAX_ROWS: usize = 1_048_576;
const MAX_COLS: usize = 16_384;
const DEFAULT_HEADER_FILL: u32 = 0xD9E1F2;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteArgs {
    path: PathBuf,
    #[serde(default)]
    unique: bool,
    sheets: Vec<SheetSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SheetSpec {
    name: String,
    #[serde(default)]
    header: Vec<String>,
    #[serde(default)]
    rows: Vec<Vec<SpecCell>>,
    #[serde(default)]
    columns: Vec<Option<ColumnSpec>>,
    totals: Option<TotalsSpec>,
    freeze: Option<FreezeSpec>,
    autofilter: Option<bool>,
    header_fill: Option<String>,
    #[serde(default)]
    charts: Vec<ChartSpec>,
    print: Option<PrintSpec>,
}

/// How the sheet prints: one page wide (as many tall as it takes), the
/// orientation, and the header row again at the top of every page.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrintSpec {
    #[serde(default = "yes")]
    fit_width: bool,
    #[serde(default)]
    landscape: bool,
    #[serde(default = "yes")]
    repeat_header: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ColumnSpec {
    width: Option<f64>,
    format: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TotalsSpec {
    #[serde(default = "total_label")]
    label: String,
    columns: Vec<String>,
    #[serde(default)]
    function: TotalFunction,
}

fn total_label() -> String {
    "Total".into()
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "UPPERCASE")]
enum TotalFunction {
    #[default]
    Sum,
    Average,
    Count,
    Min,
    Max,
}

impl TotalFunction {
    fn name(self) -> &'static str {
        match self {
            TotalFunction::Sum => "SUM",
            TotalFunction::Average => "AVERAGE",
            TotalFunction::Count => "COUNT",
            TotalFunction::Min => "MIN",
            TotalFunction::Max => "MAX",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FreezeSpec {
    #[serde(default)]
    rows: u32,
    #[serde(default)]
    cols: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChartSpec {
    #[serde(rename = "type")]
    kind: ChartKind,
    title: Option<String>,
    categories: String,
    values: OneOrMany,
    anchor: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum ChartKind {
    Bar,
    Column,
    Line,
    Pie,
}

pub fn schema() -> Value {
    json!({
        "type": "object", "required": ["path", "sheets"], "additionalProperties": false,
        "properties": {
            "path": {"type": "string", "description": "a new .xlsx file under the workspace's output/ folder"},
            "unique": {"type": "boolean", "default": false, "description": "pick a free name (name-1.xlsx, ...) instead of failing when the file exists"},
            "sheets": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/sheet"}}
        },
        "$defs": {
            "cell": {"anyOf": crate::cell_forms()},
            "sheet": {
                "type": "object", "required": ["name"], "additionalProperties": false,
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 31},
                    "header": {"type": "array", "items": {"type": "string"},
                               "description": "column titles for row 1, bold on a filled background; with a header, rows[0] is spreadsheet row 2, the header row is frozen and an auto-filter covers the table unless freeze/autofilter say otherwise"},
                    "rows": {"type": "array", "items": {"type": "array", "items": {"$ref": "#/$defs/cell"}}},
                    "columns": {"type": "array", "description": "per column, from A: its width (characters) and the number format of its cells that name none; columns without a width are fitted to their content",
                                "items": {"anyOf": [{"type": "null"}, {"type": "object", "additionalProperties": false, "properties": {
                                    "width": {"type": "number", "minimum": 0, "maximum": 255},
                                    "format": {"type": "string", "description": "e.g. #,##0.00, 0%, yyyy-mm-dd"}}}]}},
                    "totals": {"type": "object", "required": ["columns"], "additionalProperties": false,
                               "description": "a bold row after the rows: the label in column A and, in each listed column, a formula over the rows above",
                               "properties": {
                                   "label": {"type": "string", "default": "Total"},
                                   "columns": {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z]{1,3}$"}},
                                   "function": {"type": "string", "enum": ["SUM", "AVERAGE", "COUNT", "MIN", "MAX"], "default": "SUM"}}},
                    "freeze": {"type": "object", "additionalProperties": false, "description": "rows above and columns left of the split stay in view; default: the header row",
                               "properties": {"rows": {"type": "integer", "minimum": 0}, "cols": {"type": "integer", "minimum": 0}}},
                    "autofilter": {"type": "boolean", "description": "filter buttons on the header row; default: on when there is a header"},
                    "header_fill": {"type": "string", "pattern": "^#[0-9A-Fa-f]{6}$", "default": "#D9E1F2"},
                    "charts": {"type": "array", "items": {"$ref": "#/$defs/chart"}},
                    "print": {"type": "object", "additionalProperties": false, "description": "print set-up; default: the application's (often several pages wide)",
                              "properties": {
                                  "fit_width": {"type": "boolean", "default": true, "description": "scale to one page wide, as many pages tall as needed"},
                                  "landscape": {"type": "boolean", "default": false},
                                  "repeat_header": {"type": "boolean", "default": true, "description": "print the header row at the top of every page"}}}
                }
            },
            "chart": {
                "type": "object", "required": ["type", "categories", "values"], "additionalProperties": false,
                "properties": {
                    "type": {"type": "string", "enum": ["bar", "column", "line", "pie"], "description": "bar is horizontal, column vertical"},
                    "title": {"type": "string"},
                    "categories": {"type": "string", "description": "a range such as A2:A9 (this sheet) or 'Other sheet'!A2:A9"},
                    "values": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}],
                               "description": "one range per series; a series is named by the header cell above it"},
                    "anchor": {"type": "string", "description": "the top-left cell of the chart, e.g. H2; default: right of the table"}
                }
            }
        }
    })
}

/// Anything wrong with the spec, said where it is (`sheet "Data", cell D7`).
fn invalid(at: impl std::fmt::Display, message: impl std::fmt::Display) -> ToolError {
    ToolError::InvalidArgs(format!("{at}: {message}"))
}

/// A cell as the spec gives it, before it is checked: the two objects a
/// big sheet holds in every row (`{"formula": ...}`, `{"date": ...}`) as
/// their text, every other cell as its JSON. A `Value` per such object
/// (a map, its key, its text) made parsing a 100,000-row spec slower.
///
/// Numbers, strings, booleans and nulls, the rest of a big sheet's cells,
/// are typed too: no `Value` is built for them either.
enum SpecCell {
    Formula(String),
    Date(String),
    Number(f64),
    Text(String),
    Bool(bool),
    Null,
    Json(Value),
}

impl<'de> Deserialize<'de> for SpecCell {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SpecCellVisitor)
    }
}

struct SpecCellVisitor;

impl<'de> serde::de::Visitor<'de> for SpecCellVisitor {
    type Value = SpecCell;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a cell")
    }

    fn visit_bool<E>(self, v: bool) -> Result<SpecCell, E> {
        Ok(SpecCell::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<SpecCell, E> {
        // As `Value::as_f64` would give it.
        Ok(SpecCell::Number(v as f64))
    }

    fn visit_u64<E>(self, v: u64) -> Result<SpecCell, E> {
        Ok(SpecCell::Number(v as f64))
    }

    fn visit_f64<E>(self, v: f64) -> Result<SpecCell, E> {
        // JSON has no NaN or infinity; `Value::from` would make them null.
        Ok(if v.is_finite() {
            SpecCell::Number(v)
        } else {
            SpecCell::Null
        })
    }

    fn visit_str<E>(self, v: &str) -> Result<SpecCell, E> {
        Ok(SpecCell::Text(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<SpecCell, E> {
        Ok(SpecCell::Text(v))
    }

    fn visit_unit<E>(self) -> Result<SpecCell, E> {
        Ok(SpecCell::Null)
    }

    fn visit_none<E>(self) -> Result<SpecCell, E> {
        Ok(SpecCell::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<SpecCell, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<SpecCell, A::Error> {
        Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq)).map(SpecCell::Json)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<SpecCell, A::Error> {
        let mut object = serde_json::Map::new();
        if let Some(key) = map.next_key::<String>()? {
            let value: Value = map.next_value()?;
            let next = map.next_key::<String>()?;
            match (key.as_str(), value, next) {
                ("formula", Value::String(text), None) => return Ok(SpecCell::Formula(text)),
                ("date", Value::String(text), None) => return Ok(SpecCell::Date(text)),
                (_, value, next) => {
                    object.insert(key, value);
                    if let Some(key) = next {
                        let value = map.next_value()?;
                        object.insert(key, value);
                    }
                }
            }
        }
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            object.insert(key, value);
        }
        Ok(SpecCell::Json(Value::Object(object)))
    }
}

/// A cell's value as the spec gives it, checked.
enum Cell<'a> {
    Empty,
    Number(f64, Option<&'a str>),
    Text(&'a str),
    Bool(bool),
    Date(DateTime, Option<&'a str>),
    Currency(f64, &'a str, Option<&'a str>),
    Formula(&'a str, Option<&'a str>),
}

const CELL_KEYS: &str = "formula, date, amount (with currency), number, text or bool";

fn parse_cell(cell: &SpecCell) -> Result<Cell<'_>, String> {
    let value = match cell {
        SpecCell::Formula(f) => return formula_cell(f, None),
        SpecCell::Date(s) => return date_cell(s, None),
        SpecCell::Number(n) => return Ok(Cell::Number(*n, None)),
        SpecCell::Text(s) => return Ok(Cell::Text(s)),
        SpecCell::Bool(b) => return Ok(Cell::Bool(*b)),
        SpecCell::Null => return Ok(Cell::Empty),
        SpecCell::Json(value) => value,
    };
    let map = match value {
        Value::Null => return Ok(Cell::Empty),
        Value::Bool(b) => return Ok(Cell::Bool(*b)),
        Value::Number(n) => {
            return n
                .as_f64()
                .map(|n| Cell::Number(n, None))
                .ok_or_else(|| format!("{n} is not a number Excel can hold"));
        }
        Value::String(s) => return Ok(Cell::Text(s)),
        Value::Array(_) => return Err(format!("a cell cannot be a list; use one of: {CELL_KEYS}")),
        Value::Object(map) => map,
    };
    let format = match map.get("format") {
        None => None,
        Some(Value::String(f)) if !f.is_empty() => Some(f.as_str()),
        Some(other) => return Err(format!("format must be a non-empty string, got {other}")),
    };
    let allowed: &[&str] = if map.contains_key("formula") {
        &["formula", "format"]
    } else if map.contains_key("date") {
        &["date", "format"]
    } else if map.contains_key("amount") || map.contains_key("currency") {
        &["amount", "currency", "format"]
    } else if map.contains_key("number") {
        &["number", "format"]
    } else if map.contains_key("text") {
        &["text"]
    } else if map.contains_key("bool") {
        &["bool"]
    } else {
        return Err(format!(
            "{value} is not a cell: use null, a number, a string, a boolean, or an object with {CELL_KEYS}"
        ));
    };
    if let Some(extra) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!("{value}: {extra:?} does not go with {:?}", allowed[0]));
    }
    let get = |key: &str| map.get(key).unwrap_or(&Value::Null);
    match allowed[0] {
        "formula" => formula_cell(get("formula").as_str().ok_or("formula must be a string")?, format),
        "date" => date_cell(get("date").as_str().ok_or("date must be a string")?, format),
        "amount" => {
            let amount = get("amount").as_f64().ok_or("amount must be a number")?;
            let written = get("currency")
                .as_str()
                .ok_or("an amount needs a currency, e.g. \"EUR\"")?;
            // A code not in the list but well formed is written after the amount as it is.
            let iso = written.len() == 3 && written.bytes().all(|b| b.is_ascii_uppercase());
            let code = typed::currency_code(written)
                .or(iso.then_some(written))
                .ok_or_else(|| format!("currency {written:?} is not a symbol (€ $ £ ¥) or a three-letter ISO code"))?;
            Ok(Cell::Currency(amount, code, format))
        }
        "number" => Ok(Cell::Number(
            get("number").as_f64().ok_or("number must be a number")?,
            format,
        )),
        "text" => Ok(Cell::Text(get("text").as_str().ok_or("text must be a string")?)),
        _ => Ok(Cell::Bool(get("bool").as_bool().ok_or("bool must be true or false")?)),
    }
}

fn formula_cell<'a>(f: &'a str, format: Option<&'a str>) -> Result<Cell<'a>, String> {
    check_formula(f)?;
    Ok(Cell::Formula(f, format))
}

fn date_cell<'a>(s: &str, format: Option<&'a str>) -> Result<Cell<'a>, String> {
    let date = typed::parse_iso(s)
        .ok_or_else(|| format!("date {s:?} is not an ISO date (YYYY-MM-DD, optionally THH:MM[:SS])"))?;
    if date.year < 1900 {
        return Err(format!("date {s:?} is before 1900, the first date Excel stores"));
    }
    Ok(Cell::Date(date, format))
}

/// Catches what would make Excel refuse the file or repair it: unbalanced
/// parentheses or quotes. Functions and references are left to the
/// spreadsheet, which reports a bad one in the cell (#NAME?, #REF!).
fn check_formula(formula: &str) -> Result<(), String> {
    let body = formula.trim().trim_start_matches('=');
    if body.trim().is_empty() {
        return Err("the formula is empty".into());
    }
    let mut depth = 0i32;
    let mut in_string = false;
    let mut in_sheet_name = false;
    for ch in body.chars() {
        match ch {
            '"' if !in_sheet_name => in_string = !in_string,
            '\'' if !in_string => in_sheet_name = !in_sheet_name,
            '(' if !in_string && !in_sheet_name => depth += 1,
            ')' if !in_string && !in_sheet_name => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("formula {formula:?} closes a parenthesis it never opened"));
                }
            }
            _ => {}
        }
    }
    if in_string {
        return Err(format!("formula {formula:?} has an unclosed \"string\""));
    }
    if in_sheet_name {
        return Err(format!("formula {formula:?} has an unclosed 'sheet name'"));
    }
    if depth != 0 {
        return Err(format!("formula {formula:?} leaves {depth} parenthesis(es) open"));
    }
    Ok(())
}

/// The number format for an amount in `code`.
pub fn currency_format(code: &str) -> String {
    match code {
        "EUR" => "\"€\"#,##0.00".into(),
        "USD" => "\"$\"#,##0.00".into(),
        "GBP" => "\"£\"#,##0.00".into(),
        "JPY" => "\"¥\"#,##0".into(),
        other => format!("#,##0.00 \"{other}\""),
    }
}

/// One `Format` per (number format, bold), so the workbook's style table
/// stays small however many cells share one; found without allocating.
#[derive(Default)]
struct Formats {
    index: HashMap<String, usize>,
    /// Plain and bold, per number format.
    formats: Vec<[Option<Format>; 2]>,
}

impl Formats {
    fn get(&mut self, num_format: &str, bold: bool) -> &Format {
        let i = match self.index.get(num_format) {
            Some(&i) => i,
            None => {
                self.index.insert(num_format.to_owned(), self.formats.len());
                self.formats.push([None, None]);
                self.formats.len() - 1
            }
        };
        self.formats[i][usize::from(bold)].get_or_insert_with(|| {
            let f = Format::new().set_num_format(num_format);
            if bold { f.set_bold() } else { f }
        })
    }
}

/// A parsed `A1`-style cell reference: (row, col), zero-based.
fn parse_cell_ref(s: &str) -> Option<(u32, u16)> {
    let s = s.replace('$', "");
    let split = s.find(|c: char| c.is_ascii_digit())?;
    let (letters, digits) = s.split_at(split);
    let col = parse_column(letters)?;
    let row: u32 = digits.parse().ok()?;
    (row >= 1 && (row as usize) <= MAX_ROWS).then_some((row - 1, col))
}

/// `A` -> 0, `AA` -> 26.
fn parse_column(letters: &str) -> Option<u16> {
    if letters.is_empty() || letters.len() > 3 || !letters.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let n = letters
        .bytes()
        .fold(0usize, |n, b| n * 26 + usize::from(b.to_ascii_uppercase() - b'A') + 1);
    (n <= MAX_COLS).then(|| (n - 1) as u16)
}

fn column_letters(col: u16) -> String {
    let mut n = usize::from(col) + 1;
    let mut out = Vec::new();
    while n > 0 {
        out.push(b'A' + ((n - 1) % 26) as u8);
        n = (n - 1) / 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// A range such as `A2:A9` or `'My sheet'!$B$2:$B$9`: its sheet (this one
/// when it names none) and its corners.
fn parse_range<'a>(s: &'a str, this_sheet: &'a str) -> Option<(&'a str, u32, u16, u32, u16)> {
    let (sheet, cells) = match s.rsplit_once('!') {
        Some((sheet, cells)) => (sheet.trim_matches('\''), cells),
        None => (this_sheet, s),
    };
    let (a, b) = cells.split_once(':').unwrap_or((cells, cells));
    let (r1, c1) = parse_cell_ref(a.trim())?;
    let (r2, c2) = parse_cell_ref(b.trim())?;
    (r1 <= r2 && c1 <= c2).then_some((sheet, r1, c1, r2, c2))
}

fn parse_fill(s: &str) -> Option<u32> {
    let hex = s.strip_prefix('#')?;
    (hex.len() == 6).then(|| u32::from_str_radix(hex, 16).ok()).flatten()
}

fn xlsx_invalid(at: impl std::fmt::Display) -> impl FnOnce(XlsxError) -> ToolError {
    move |e| invalid(at, e)
}

pub fn write(args: WriteArgs) -> Result<Output, ToolError> {
    write_with(args, true)
}

/// `write`, with the plain path or without it (the tests compare the two).
fn write_with(args: WriteArgs, allow_plain: bool) -> Result<Output, ToolError> {
    let is_xlsx = args.path.extension().is_some_and(|e| e.eq_ignore_ascii_case("xlsx"));
    if !is_xlsx {
        return Err(ToolError::InvalidArgs(format!(
            "{} must end in .xlsx: write makes Excel workbooks",
            args.path.display()
        )));
    }
    if args.sheets.is_empty() {
        return Err(ToolError::InvalidArgs("a workbook needs at least one sheet".into()));
    }
    // Fail before the work when the name is taken; the final link checks again.
    if !args.unique && args.path.exists() {
        return Err(ToolError::AlreadyExists(path_error(
            &args.path,
            "already exists; deskhand never overwrites a file (pass \"unique\": true to pick a free name)",
        )));
    }
    let names: HashSet<&str> = args.sheets.iter().map(|s| s.name.as_str()).collect();
    if names.len() != args.sheets.len() {
        return Err(ToolError::InvalidArgs("two sheets have the same name".into()));
    }

    if let Some((file, counts)) = allow_plain.then(|| plain::build(&args)).flatten() {
        let ((), written) = write_new_with(&args.path, args.unique, |tmp, out| {
            std::io::Write::write_all(out, &file)
                .map_err(|e| ToolError::Io(path_error(tmp, format!("saving the workbook failed: {e}"))))
        })?;
        let summary = args
            .sheets
            .iter()
            .zip(&counts)
            .map(|(spec, n)| json!({"name": spec.name, "rows": spec.rows.len(), "cells": n, "charts": 0}))
            .collect();
        return Ok(wrote(&written, &args, counts.iter().sum(), summary));
    }

    let mut workbook = Workbook::new();
    let mut formats = Formats::default();
    let mut summary = Vec::new();
    let mut cells = 0u64;
    for spec in &args.sheets {
        let sheet = workbook.add_worksheet();
        let written = write_sheet(sheet, spec, &names, &mut formats)?;
        cells += written;
        summary
            .push(json!({"name": spec.name, "rows": spec.rows.len(), "cells": written, "charts": spec.charts.len()}));
    }

    // Deflate dominates saving a big sheet; its fastest level makes files about 60% larger
    // (measured: 100,000 x 10 cells, 5.9 -> 9.4 MB) and saves several times faster.
    if cells > 200_000 {
        workbook.set_zip_compression_level(1);
    }
    let ((), written) = write_new_with(&args.path, args.unique, |tmp, file| {
        workbook
            .save_to_writer(file)
            .map_err(|e| ToolError::Io(path_error(tmp, format!("saving the workbook failed: {e}"))))
    })?;
    Ok(wrote(&written, &args, cells, summary))
}

/// What `write` says it wrote.
fn wrote(written: &std::path::Path, args: &WriteArgs, cells: u64, summary: Vec<Value>) -> Output {
    let size = std::fs::metadata(written).map(|m| m.len()).unwrap_or(0);
    let text = format!(
        "wrote {} ({} sheet{}, {} cells, {} bytes)",
        written.display(),
        args.sheets.len(),
        if args.sheets.len() == 1 { "" } else { "s" },
        crate::count(cells),
        crate::count(size)
    );
    output(
        &json!({"path": written.display().to_string(), "size": size, "sheets": summary}),
        text,
    )
}

/// Writes one sheet's header, rows, totals, layout and charts; returns the
/// number of cells written.
fn write_sheet(
    sheet: &mut Worksheet,
    spec: &SheetSpec,
    names: &HashSet<&str>,
    formats: &mut Formats,
) -> Result<u64, ToolError> {
    let at_sheet = format!("sheet {:?}", spec.name);
    sheet.set_name(&spec.name).map_err(xlsx_invalid(&at_sheet))?;

    let has_header = !spec.header.is_empty();
    let first_data_row = u32::from(has_header);
    let total_rows = spec.rows.len() + usize::from(has_header) + usize::from(spec.totals.is_some());
    if total_rows > MAX_ROWS {
        return Err(invalid(
            &at_sheet,
            format!("{total_rows} rows is more than Excel's {MAX_ROWS}"),
        ));
    }
    let width = spec
        .rows
        .iter()
        .map(Vec::len)
        .chain([spec.header.len()])
        .max()
        .unwrap_or(0);
    if width > MAX_COLS {
        return Err(invalid(
            &at_sheet,
            format!("{width} columns is more than Excel's {MAX_COLS}"),
        ));
    }

    let column_format = |col: usize| -> Option<&str> {
        spec.columns
            .get(col)
            .and_then(|c| c.as_ref())
            .and_then(|c| c.format.as_deref())
    };
    // Each column's number format as last written, for its total.
    let mut last_format: Vec<Option<String>> = vec![None; width];
    let mut cells = 0u64;

    if has_header {
        let fill = match &spec.header_fill {
            Some(s) => parse_fill(s).ok_or_else(|| invalid(&at_sheet, format!("header_fill {s:?} is not #RRGGBB")))?,
            None => DEFAULT_HEADER_FILL,
        };
        let header_format = Format::new()
            .set_bold()
            .set_background_color(Color::RGB(fill))
            .set_border_bottom(FormatBorder::Thin);
        for (col, title) in spec.header.iter().enumerate() {
            sheet
                .write_string_with_format(0, col as u16, title, &header_format)
                .map_err(xlsx_invalid(&at_sheet))?;
            cells += 1;
        }
    }

    for (i, row) in spec.rows.iter().enumerate() {
        let r = first_data_row + i as u32;
        for (col, value) in row.iter().enumerate() {
            let at = || {
                format!(
                    "{at_sheet}, cell {}{} (rows[{i}][{col}])",
                    column_letters(col as u16),
                    r + 1
                )
            };
            let cell = parse_cell(value).map_err(|m| invalid(at(), m))?;
            let c = col as u16;
            let num_format: Option<Cow<'_, str>> = match &cell {
                Cell::Number(_, f) | Cell::Formula(_, f) => f.or(column_format(col)).map(Cow::Borrowed),
                Cell::Date(d, f) => Some(Cow::Borrowed(f.or(column_format(col)).unwrap_or(if d.time.is_some() {
                    "yyyy-mm-dd hh:mm"
                } else {
                    "yyyy-mm-dd"
                }))),
                Cell::Currency(_, code, f) => Some(
                    f.or(column_format(col))
                        .map_or_else(|| Cow::Owned(currency_format(code)), Cow::Borrowed),
                ),
                Cell::Empty | Cell::Text(_) | Cell::Bool(_) => None,
            };
            let result = match (&cell, &num_format) {
                (Cell::Empty, _) => continue,
                (Cell::Text(s), _) => sheet.write_string(r, c, *s),
                (Cell::Bool(b), _) => sheet.write_boolean(r, c, *b),
                (Cell::Number(n, _), None) => sheet.write_number(r, c, *n),
                (Cell::Number(n, _), Some(f)) | (Cell::Currency(n, _, _), Some(f)) => {
                    sheet.write_number_with_format(r, c, *n, formats.get(f, false))
                }
                (Cell::Date(d, _), Some(f)) => {
                    let (h, m, s) = d.time.unwrap_or((0, 0, 0));
                    let dt = ExcelDateTime::from_ymd(d.year, d.month, d.day)
                        .and_then(|dt| dt.and_hms(u16::from(h), m, s))
                        .map_err(|e| invalid(at(), e))?;
                    sheet.write_datetime_with_format(r, c, dt, formats.get(f, false))
                }
                (Cell::Formula(text, _), None) => sheet.write_formula(r, c, Formula::new(text)),
                (Cell::Formula(text, _), Some(f)) => {
                    sheet.write_formula_with_format(r, c, Formula::new(text), formats.get(f, false))
                }
                // Never: dates and amounts always have a format (theirs, the column's or the default).
                (Cell::Date(..) | Cell::Currency(..), None) => continue,
            };
            result.map_err(|e| invalid(at(), e))?;
            if let Some(f) = num_format
                && !matches!(cell, Cell::Date(..))
                && last_format[col].as_deref() != Some(&*f)
            {
                last_format[col] = Some(f.into_owned());
            }
            cells += 1;
        }
        // Natively (unit tests, timing) there is no host to tell.
        if cfg!(target_family = "wasm") && i % 50_000 == 49_999 {
            deskhand_guest::progress(i as u64 + 1, Some(spec.rows.len() as u64), "writing rows");
        }
    }
    let last_data_row = first_data_row + spec.rows.len() as u32;

    if let Some(totals) = &spec.totals {
        let r = last_data_row;
        let at = format!("{at_sheet}, totals");
        let bold = formats.get("General", true).clone();
        let mut label_col = 0u16;
        let mut total_cols = Vec::new();
        for letters in &totals.columns {
            let col =
                parse_column(letters).ok_or_else(|| invalid(&at, format!("{letters:?} is not a column letter")))?;
            total_cols.push(col);
        }
        while total_cols.contains(&label_col) {
            label_col += 1;
        }
        sheet
            .write_string_with_format(r, label_col, &totals.label, &bold)
            .map_err(xlsx_invalid(&at))?;
        for col in total_cols {
            let letters = column_letters(col);
            let formula = if spec.rows.is_empty() {
                "0".to_owned()
            } else {
                format!(
                    "{}({letters}{}:{letters}{})",
                    totals.function.name(),
                    first_data_row + 1,
                    last_data_row
                )
            };
            let num_format = last_format
                .get(usize::from(col))
                .cloned()
                .flatten()
                .or_else(|| column_format(usize::from(col)).map(str::to_owned))
                .unwrap_or_else(|| "General".to_owned());
            sheet
                .write_formula_with_format(r, col, Formula::new(formula), formats.get(&num_format, true))
                .map_err(xlsx_invalid(&at))?;
            cells += 1;
        }
        cells += 1;
    }

    // Layout: fit the columns to their content, then the widths asked for.
    sheet.autofit();
    for (col, spec_col) in spec.columns.iter().enumerate() {
        if let Some(width) = spec_col.as_ref().and_then(|c| c.width) {
            sheet
                .set_column_width(col as u16, width)
                .map_err(xlsx_invalid(format!("{at_sheet}, columns[{col}]")))?;
        }
    }
    let (freeze_rows, freeze_cols) = match &spec.freeze {
        Some(f) => (f.rows, f.cols),
        None => (u32::from(has_header), 0),
    };
    if freeze_rows > 0 || freeze_cols > 0 {
        sheet
            .set_freeze_panes(freeze_rows, freeze_cols)
            .map_err(xlsx_invalid(format!("{at_sheet}, freeze")))?;
    }
    if spec.autofilter.unwrap_or(has_header) && width > 0 {
        let last = last_data_row.saturating_sub(1);
        sheet
            .autofilter(0, 0, last, (width - 1) as u16)
            .map_err(xlsx_invalid(format!("{at_sheet}, autofilter")))?;
    }

    if let Some(print) = &spec.print {
        if print.fit_width {
            sheet.set_print_fit_to_pages(1, 0);
        }
        if print.landscape {
            sheet.set_landscape();
        }
        if print.repeat_header && has_header {
            sheet
                .set_repeat_rows(0, 0)
                .map_err(xlsx_invalid(format!("{at_sheet}, print")))?;
        }
    }

    for (i, chart_spec) in spec.charts.iter().enumerate() {
        let at = format!("{at_sheet}, charts[{i}]");
        let (chart, anchor) =
            build_chart(chart_spec, spec, names, width, i, has_header).map_err(|m| invalid(&at, m))?;
        sheet
            .insert_chart(anchor.0, anchor.1, &chart)
            .map_err(xlsx_invalid(&at))?;
    }
    Ok(cells)
}

fn build_chart(
    spec: &ChartSpec,
    sheet: &SheetSpec,
    names: &HashSet<&str>,
    width: usize,
    index: usize,
    has_header: bool,
) -> Result<(Chart, (u32, u16)), String> {
    let check = |range: &str| -> Result<(String, u32, u16, u32, u16), String> {
        let (name, r1, c1, r2, c2) =
            parse_range(range, &sheet.name).ok_or_else(|| format!("{range:?} is not a range such as A2:A9"))?;
        if !names.contains(name) {
            return Err(format!("{range:?} names a sheet this workbook does not have"));
        }
        Ok((name.to_owned(), r1, c1, r2, c2))
    };
    let mut chart = Chart::new(match spec.kind {
        ChartKind::Bar => ChartType::Bar,
        ChartKind::Column => ChartType::Column,
        ChartKind::Line => ChartType::Line,
        ChartKind::Pie => ChartType::Pie,
    });
    let categories = check(&spec.categories)?;
    let values: Vec<&String> = match &spec.values {
        OneOrMany::One(v) => vec![v],
        OneOrMany::Many(v) => v.iter().collect(),
    };
    if values.is_empty() {
        return Err("values names no range".into());
    }
    if matches!(spec.kind, ChartKind::Pie) && values.len() > 1 {
        return Err("a pie chart shows one series; give one values range".into());
    }
    for range in values {
        let (name, r1, c1, r2, c2) = check(range)?;
        let series = chart.add_series();
        series
            .set_categories((
                categories.0.as_str(),
                categories.1,
                categories.2,
                categories.3,
                categories.4,
            ))
            .set_values((name.as_str(), r1, c1, r2, c2));
        // Named by the header cell above the values, when there is one.
        if has_header && r1 == 1 && name == sheet.name {
            series.set_name((name.as_str(), 0, c1));
        }
    }
    if let Some(title) = &spec.title {
        chart.title().set_name(title);
    }
    let anchor = match &spec.anchor {
        Some(a) => {
            let (r, c) = parse_cell_ref(a).ok_or_else(|| format!("anchor {a:?} is not a cell such as H2"))?;
            (r, c)
        }
        None => (1 + 16 * index as u32, (width + 1).min(MAX_COLS - 10) as u16),
    };
    Ok((chart, anchor))
}
