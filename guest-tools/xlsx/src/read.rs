//! `read`: a workbook (xlsx, xlsm, xlsb, xls, ods through calamine) or a CSV
//! file into typed rows, with a row cap. A file that cannot be read is a
//! typed error naming the file and the problem, never a panic.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use calamine::{Data, ExcelDateTime, Reader, SheetType, Xls, Xlsb, Xlsx, XlsxError};
use deskhand_guest::{Output, ToolError, output, path_error};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::csv_read::{self, CsvOptions};
use crate::typed::{self, DateOrder, DateTime};
use crate::{DEFAULT_MAX_ROWS, MAX_FILE_BYTES, MAX_MAX_ROWS};

/// The most a workbook's parts may decompress to: a small file that
/// inflates past this is a zip bomb, not a spreadsheet.
const MAX_UNZIPPED_BYTES: u64 = 512 * 1024 * 1024;
/// The most cells (rows times columns, empty ones included) one call returns.
const MAX_CELLS: u64 = 10_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadArgs {
    path: PathBuf,
    sheet: Option<String>,
    #[serde(default = "yes")]
    header: bool,
    max_rows: Option<u64>,
    #[serde(default)]
    formulas: bool,
    delimiter: Option<String>,
    decimal: Option<String>,
    date_order: Option<String>,
}

fn yes() -> bool {
    true
}

pub fn schema() -> Value {
    json!({
        "type": "object", "required": ["path"], "additionalProperties": false,
        "properties": {
            "path": {"type": "string", "description": "an .xlsx, .xlsm, .xlsb, .xls, .ods or .csv file inside a granted folder"},
            "sheet": {"type": "string", "description": "workbooks: read only this sheet (default: every worksheet)"},
            "header": {"type": "boolean", "default": true, "description": "the first row holds column titles"},
            "max_rows": {"type": "integer", "minimum": 1, "maximum": MAX_MAX_ROWS, "default": DEFAULT_MAX_ROWS,
                         "description": "more rows than this in all (header rows not counted) is a too-large error"},
            "formulas": {"type": "boolean", "default": false,
                         "description": "cells holding a formula come back as {\"formula\", \"value\"} with the value the file stored; always so for an xlsx that asks to be recalculated when opened (as those this tool writes do), whose stored values are stale"},
            "delimiter": {"type": "string", "enum": [",", ";", "\t", "|"], "description": "CSV only; detected when absent"},
            "decimal": {"type": "string", "enum": [".", ","], "description": "CSV only; detected when absent"},
            "date_order": {"type": "string", "enum": ["dmy", "mdy"], "description": "CSV only: how to read 01/02/2024"}
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Xlsx,
    Xlsb,
    Xls,
    Ods,
    Csv,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Xlsx => "xlsx",
            Kind::Xlsb => "xlsb",
            Kind::Xls => "xls",
            Kind::Ods => "ods",
            Kind::Csv => "csv",
        }
    }
}

pub(crate) fn bad(path: &Path, message: impl Into<String>) -> ToolError {
    ToolError::BadContent(path_error(path, message))
}

const ENCRYPTED: &str =
    "is encrypted (password-protected); deskhand cannot read it. Save a copy without a password and read that";

pub fn read(args: ReadArgs) -> Result<Output, ToolError> {
    let path = args.path.as_path();
    let max_rows = args.max_rows.unwrap_or(DEFAULT_MAX_ROWS);
    if !(1..=MAX_MAX_ROWS).contains(&max_rows) {
        return Err(ToolError::InvalidArgs(format!(
            "max_rows must be between 1 and {MAX_MAX_ROWS}"
        )));
    }
    let bytes = read_file(path)?;
    let (kind, stale) = detect(path, &bytes)?;
    let mut result = json!({"path": path.display().to_string(), "format": kind.name()});
    let mut notes = Vec::new();
    // A file that asks to be recalculated holds stale values for its formulas
    // (0, for files written without a calculation engine): show the formulas.
    let formulas = args.formulas || stale;
    if stale && !args.formulas {
        notes.push(
            "the file asks to be recalculated when opened, so the values it stores for formulas may be stale \
             (0 in files no spreadsheet has opened yet): formula cells come back as {\"formula\", \"value\"}"
                .to_owned(),
        );
    }
    let sheets = if kind == Kind::Csv {
        let opts = CsvOptions {
            delimiter: match args.delimiter.as_deref() {
                None => None,
                Some(d) if d.len() == 1 => d.bytes().next(),
                Some(d) => {
                    return Err(ToolError::InvalidArgs(format!(
                        "delimiter must be one character, got {d:?}"
                    )));
                }
            },
            decimal: match args.decimal.as_deref() {
                None => None,
                Some(".") => Some('.'),
                Some(",") => Some(','),
                Some(d) => {
                    return Err(ToolError::InvalidArgs(format!(
                        "decimal must be \".\" or \",\", got {d:?}"
                    )));
                }
            },
            date_order: match args.date_order.as_deref() {
                None => None,
                Some("dmy") => Some(DateOrder::DayFirst),
                Some("mdy") => Some(DateOrder::MonthFirst),
                Some(d) => {
                    return Err(ToolError::InvalidArgs(format!(
                        "date_order must be \"dmy\" or \"mdy\", got {d:?}"
                    )));
                }
            },
            header: args.header,
            max_rows,
        };
        let sheet = csv_read::read(path, &bytes, &opts)?;
        result["encoding"] = json!(sheet.encoding);
        result["delimiter"] = json!(sheet.delimiter.to_string());
        result["decimal"] = json!(sheet.decimal.to_string());
        notes.extend(sheet.notes);
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        vec![json!({"name": name, "header": sheet.header, "rows": sheet.rows})]
    } else {
        let mut budget = Budget {
            path,
            max_rows,
            rows: 0,
        };
        read_workbook(path, bytes, kind, &args, formulas, &mut budget)?
    };
    if !notes.is_empty() {
        result["notes"] = json!(notes);
    }
    let rows: usize = sheets.iter().map(|s| s["rows"].as_array().map_or(0, Vec::len)).sum();
    let text = format!(
        "read {} row{} from {} sheet{} of {} ({})",
        crate::count(rows as u64),
        if rows == 1 { "" } else { "s" },
        sheets.len(),
        if sheets.len() == 1 { "" } else { "s" },
        path.display(),
        kind.name()
    );
    result["sheets"] = json!(sheets);
    Ok(output(&result, text))
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, ToolError> {
    deskhand_guest::read_capped(path, MAX_FILE_BYTES, |size| {
        ToolError::TooLarge(path_error(
            path,
            format!(
                "is {} bytes; the xlsx tool reads files up to {} bytes",
                crate::count(size),
                crate::count(MAX_FILE_BYTES)
            ),
        ))
    })
}

/// The format from the content (a zip, an OLE compound file, or text),
/// with the extension only to say what was expected; and whether the file
/// asks to be recalculated when opened (its stored formula values are stale).
fn detect(path: &Path, bytes: &[u8]) -> Result<(Kind, bool), ToolError> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return zip_kind(path, bytes);
    }
    if bytes.starts_with(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1") {
        // An encrypted xlsx/xlsb/docx is an OLE file holding an `EncryptedPackage` stream.
        let marker: Vec<u8> = "EncryptedPackage".encode_utf16().flat_map(u16::to_le_bytes).collect();
        if bytes.windows(marker.len()).any(|w| w == marker.as_slice()) {
            return Err(bad(path, ENCRYPTED));
        }
        return Ok((Kind::Xls, false));
    }
    if matches!(ext.as_str(), "xlsx" | "xlsm" | "xlsb" | "xls" | "ods") {
        let problem = if bytes.is_empty() {
            "is empty".to_owned()
        } else {
            format!("is not a .{ext} workbook: it is neither a zip archive nor an OLE compound file")
        };
        return Err(bad(path, problem));
    }
    Ok((Kind::Csv, false))
}

/// xlsx, xlsb or ods, after checking that the zip directory reads and that
/// its parts do not inflate past [`MAX_UNZIPPED_BYTES`]; and, for xlsx,
/// whether its workbook part asks for a full recalculation on load (as
/// files written without a calculation engine do, ours included).
fn zip_kind(path: &Path, bytes: &[u8]) -> Result<(Kind, bool), ToolError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| {
        bad(
            path,
            format!("is damaged or truncated: its zip directory cannot be read ({e})"),
        )
    })?;
    let mut total = 0u64;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| bad(path, format!("is damaged: zip entry {i} cannot be read ({e})")))?;
        total = total.saturating_add(entry.size());
    }
    if total > MAX_UNZIPPED_BYTES {
        return Err(ToolError::TooLarge(path_error(
            path,
            format!(
                "would inflate to {} bytes (the cap is {}); it is too large or a zip bomb",
                crate::count(total),
                crate::count(MAX_UNZIPPED_BYTES)
            ),
        )));
    }
    let mut mimetype = String::new();
    if let Ok(entry) = archive.by_name("mimetype") {
        let _ = entry.take(128).read_to_string(&mut mimetype);
    }
    if mimetype.starts_with("application/vnd.oasis.opendocument.spreadsheet") {
        return Ok((Kind::Ods, false));
    }
    if archive.index_for_name("xl/workbook.bin").is_some() {
        return Ok((Kind::Xlsb, false));
    }
    let mut workbook = String::new();
    if let Ok(entry) = archive.by_name("xl/workbook.xml") {
        let _ = entry.take(4 * 1024 * 1024).read_to_string(&mut workbook);
    }
    let stale = workbook.contains("fullCalcOnLoad=\"1\"") || workbook.contains("fullCalcOnLoad=\"true\"");
    if !workbook.is_empty() || archive.index_for_name("[Content_Types].xml").is_some() {
        return Ok((Kind::Xlsx, stale));
    }
    Err(bad(
        path,
        "is a zip archive but not a spreadsheet (no xl/workbook.xml, no ODS mimetype)",
    ))
}

/// The rows one call may still return, shared by the sheets it reads.
struct Budget<'a> {
    path: &'a Path,
    max_rows: u64,
    rows: u64,
}

impl Budget<'_> {
    fn too_large(&self, sheet: &str, detail: &str) -> ToolError {
        ToolError::TooLarge(path_error(
            self.path,
            format!(
                "{detail} (sheet {sheet:?}), over this call's cap of max_rows {}; pass a higher max_rows (up to {}) or one sheet",
                self.max_rows, MAX_MAX_ROWS
            ),
        ))
    }
}

/// The non-empty cells of one sheet, gathered before they are laid out.
struct SheetCells {
    name: String,
    cells: Vec<(u32, u32, Value)>,
    first_row: Option<u32>,
}

impl SheetCells {
    fn new(name: &str) -> Self {
        SheetCells {
            name: name.to_owned(),
            cells: Vec::new(),
            first_row: None,
        }
    }

    /// Adds a cell, failing as soon as the sheet's rows pass the budget.
    fn push(&mut self, row: u32, col: u32, value: Value, header: bool, budget: &Budget<'_>) -> Result<(), ToolError> {
        let first = *self.first_row.get_or_insert(row);
        let first = first.min(row);
        self.first_row = Some(first);
        let rows = u64::from(row - first) + 1 - u64::from(header);
        if budget.rows + rows > budget.max_rows {
            return Err(budget.too_large(
                &self.name,
                &format!("has more than {} rows", budget.max_rows - budget.rows),
            ));
        }
        self.cells.push((row, col, value));
        Ok(())
    }

    /// The sheet as `{name, range, header, rows}`, rows dense from the first
    /// non-empty row and column to the last.
    fn finish(self, header: bool, budget: &mut Budget<'_>) -> Result<Value, ToolError> {
        let Some(first_row) = self.first_row else {
            return Ok(json!({"name": self.name, "range": null, "header": null, "rows": []}));
        };
        let last_row = self.cells.iter().map(|c| c.0).max().unwrap_or(first_row);
        let first_col = self.cells.iter().map(|c| c.1).min().unwrap_or(0);
        let last_col = self.cells.iter().map(|c| c.1).max().unwrap_or(0);
        let height = u64::from(last_row - first_row) + 1;
        let width = u64::from(last_col - first_col) + 1;
        if height * width > MAX_CELLS {
            return Err(budget.too_large(
                &self.name,
                &format!(
                    "spans {height} rows by {width} columns, over {} cells",
                    crate::count(MAX_CELLS)
                ),
            ));
        }
        let mut rows = vec![vec![Value::Null; width as usize]; height as usize];
        for (r, c, value) in self.cells {
            rows[(r - first_row) as usize][(c - first_col) as usize] = value;
        }
        let header_row = if header && !rows.is_empty() {
            Some(rows.remove(0).iter().map(header_text).collect::<Vec<_>>())
        } else {
            None
        };
        budget.rows += rows.len() as u64;
        let range = format!(
            "{}{}:{}{}",
            column_name(first_col),
            first_row + 1,
            column_name(last_col),
            last_row + 1
        );
        Ok(json!({"name": self.name, "range": range, "header": header_row, "rows": rows}))
    }
}

/// `0` -> `A`, `26` -> `AA`.
fn column_name(col: u32) -> String {
    let mut n = col + 1;
    let mut name = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        name.push(b'A' + rem as u8);
        n = (n - 1) / 26;
    }
    name.reverse();
    String::from_utf8(name).unwrap_or_default()
}

/// A header cell as text, whatever its type.
fn header_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Object(map) => map
            .get("formula")
            .and(map.get("value"))
            .or_else(|| map.values().next())
            .map(header_text)
            .unwrap_or_default(),
        other => other.to_string(),
    }
}

fn datetime_json(dt: &ExcelDateTime) -> Value {
    let serial = dt.as_f64();
    if dt.is_duration() {
        let total = (serial * 86_400.0).round() as i64;
        let sign = if total < 0 { "-" } else { "" };
        let t = total.abs();
        return json!({"duration": format!("{sign}{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)});
    }
    let (y, mo, d, h, mi, s, _) = dt.to_ymd_hms_milli();
    if (0.0..1.0).contains(&serial) {
        return json!({"time": format!("{h:02}:{mi:02}:{s:02}")});
    }
    let time = (h, mi, s) != (0, 0, 0);
    // Built directly: Excel's 1900-02-29 is not a real date but is what the cell says.
    DateTime {
        year: y,
        month: mo,
        day: d,
        time: time.then_some((h, mi, s)),
    }
    .json()
}

fn data_json(data: &Data) -> Value {
    match data {
        Data::Empty => Value::Null,
        Data::Int(i) => json!(i),
        Data::Float(f) => json!(f),
        Data::String(s) => json!(s),
        Data::Bool(b) => json!(b),
        Data::DateTime(dt) => datetime_json(dt),
        Data::DateTimeIso(s) => json!({"date": s}),
        Data::DurationIso(s) => json!({"duration": s}),
        Data::Error(e) => json!({"error": e.to_string()}),
    }
}

fn with_formula(value: Value, formula: Option<&str>) -> Value {
    match formula {
        Some(f) if !f.is_empty() => json!({"formula": f, "value": value}),
        _ => value,
    }
}

fn read_workbook(
    path: &Path,
    bytes: Vec<u8>,
    kind: Kind,
    args: &ReadArgs,
    formulas: bool,
    budget: &mut Budget<'_>,
) -> Result<Vec<Value>, ToolError> {
    let what = |e: &dyn std::fmt::Display| {
        let message = e.to_string();
        if message.contains("password protected") {
            bad(path, ENCRYPTED)
        } else {
            bad(
                path,
                format!("cannot be read as an {} workbook: {message}", kind.name()),
            )
        }
    };
    let cursor = Cursor::new(bytes);
    match kind {
        Kind::Xlsx => {
            let mut book: Xlsx<_> = Xlsx::new(cursor).map_err(|e| what(&e))?;
            let names = chosen_sheets(path, book.sheets_metadata(), args.sheet.as_deref())?;
            let mut out = Vec::new();
            for name in names {
                out.push(
                    read_xlsx_sheet(&mut book, &name, formulas, args.header, budget).map_err(|e| match e {
                        SheetError::Tool(e) => e,
                        SheetError::Xlsx(e) => sheet_error(path, &name, &e),
                    })?,
                );
            }
            Ok(out)
        }
        Kind::Xlsb => {
            let mut book: Xlsb<_> = Xlsb::new(cursor).map_err(|e| what(&e))?;
            read_ranges(path, &mut book, args, formulas, budget)
        }
        Kind::Xls => {
            let mut book: Xls<_> = Xls::new(cursor).map_err(|e| what(&e))?;
            read_ranges(path, &mut book, args, formulas, budget)
        }
        Kind::Ods => {
            let mut book: calamine::Ods<_> = calamine::Ods::new(cursor).map_err(|e| what(&e))?;
            read_ranges(path, &mut book, args, formulas, budget)
        }
        // CSV never gets here: `read` takes it to `csv_read`.
        Kind::Csv => Ok(Vec::new()),
    }
}

fn sheet_error(path: &Path, sheet: &str, e: &dyn std::fmt::Display) -> ToolError {
    bad(path, format!("sheet {sheet:?} cannot be read: {e}"))
}

/// The worksheets to read: the one asked for, or every worksheet (chart
/// and macro sheets hold no cells to read).
fn chosen_sheets(path: &Path, sheets: &[calamine::Sheet], asked: Option<&str>) -> Result<Vec<String>, ToolError> {
    match asked {
        Some(name) => {
            if sheets.iter().any(|s| s.name == name) {
                Ok(vec![name.to_owned()])
            } else {
                Err(ToolError::InvalidArgs(format!(
                    "{} has no sheet named {name:?}; its sheets: {}",
                    path.display(),
                    sheets
                        .iter()
                        .map(|s| format!("{:?}", s.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        }
        None => Ok(sheets
            .iter()
            .filter(|s| s.typ == SheetType::WorkSheet)
            .map(|s| s.name.clone())
            .collect()),
    }
}

enum SheetError {
    Tool(ToolError),
    Xlsx(XlsxError),
}

impl From<XlsxError> for SheetError {
    fn from(e: XlsxError) -> Self {
        SheetError::Xlsx(e)
    }
}

impl From<ToolError> for SheetError {
    fn from(e: ToolError) -> Self {
        SheetError::Tool(e)
    }
}

/// One xlsx sheet, streamed cell by cell so that the row cap stops a huge
/// sheet before it is held in memory. With `formulas`, a first pass
/// collects the formulas by position (shared formulas expanded), since the
/// reader that gives a cell's style does not give its formula.
fn read_xlsx_sheet<RS: std::io::Read + std::io::Seek>(
    book: &mut Xlsx<RS>,
    name: &str,
    formulas: bool,
    header: bool,
    budget: &mut Budget<'_>,
) -> Result<Value, SheetError> {
    let mut formula_at: HashMap<(u32, u32), String> = HashMap::new();
    if formulas {
        let mut reader = book.worksheet_cells_reader(name)?;
        let mut first_row = None;
        while let Some(cell) = reader.next_formula()? {
            let (row, col) = cell.get_position();
            // Past the row cap the second pass stops with too-large; no need to hold more.
            if u64::from(row - *first_row.get_or_insert(row)) > budget.max_rows + 1 {
                break;
            }
            if !cell.get_value().is_empty() {
                formula_at.insert((row, col), cell.get_value().clone());
            }
        }
    }
    let mut sheet = SheetCells::new(name);
    let mut reader = book.worksheet_cells_reader(name)?;
    // The currency each style's number format shows, looked up once per style.
    let mut currencies: HashMap<usize, Option<String>> = HashMap::new();
    while let Some((cell, style)) = reader.next_cell_with_style_id()? {
        let (row, col) = cell.get_position();
        let formula = formula_at.remove(&(row, col));
        let data = Data::from(cell.get_value().clone());
        let value = match data {
            Data::Empty if formula.is_none() => continue,
            Data::Float(_) | Data::Int(_) => {
                let currency = currencies.entry(style).or_insert_with(|| {
                    reader
                        .styles()
                        .get(style)
                        .and_then(|s| s.number_format.as_ref())
                        .and_then(|f| typed::format_currency(&f.format_code))
                });
                match (currency.as_deref(), &data) {
                    (Some(code), Data::Int(i)) => json!({"amount": i, "currency": code}),
                    (Some(code), Data::Float(f)) => json!({"amount": f, "currency": code}),
                    _ => data_json(&data),
                }
            }
            other => data_json(&other),
        };
        sheet.push(row, col, with_formula(value, formula.as_deref()), header, budget)?;
    }
    drop(reader);
    Ok(sheet.finish(header, budget)?)
}

/// Every chosen sheet of an xls, xlsb or ods workbook, through calamine's ranges.
fn read_ranges<RS, R>(
    path: &Path,
    book: &mut R,
    args: &ReadArgs,
    formulas: bool,
    budget: &mut Budget<'_>,
) -> Result<Vec<Value>, ToolError>
where
    RS: std::io::Read + std::io::Seek,
    R: Reader<RS>,
    R::Error: std::fmt::Display,
{
    let names = chosen_sheets(path, book.sheets_metadata(), args.sheet.as_deref())?;
    let mut out = Vec::new();
    for name in names {
        let range = book.worksheet_range(&name).map_err(|e| sheet_error(path, &name, &e))?;
        let formulas = if formulas {
            Some(
                book.worksheet_formula(&name)
                    .map_err(|e| sheet_error(path, &name, &e))?,
            )
        } else {
            None
        };
        let mut sheet = SheetCells::new(&name);
        let (r0, c0) = range.start().unwrap_or((0, 0));
        for (r, c, data) in range.used_cells() {
            let (row, col) = (r0 + r as u32, c0 + c as u32);
            let formula = formulas
                .as_ref()
                .and_then(|f| f.get_value((row, col)))
                .map(String::as_str);
            sheet.push(row, col, with_formula(data_json(data), formula), args.header, budget)?;
        }
        out.push(sheet.finish(args.header, budget)?);
    }
    Ok(out)
}
