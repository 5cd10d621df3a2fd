//! `read`: a workbook (xlsx, xlsm, xlsb, xls, ods through calamine) or a CSV
//! file into typed rows, with a row cap. A file that cannot be read is a
//! typed error naming the file and the problem, never a panic.
//!
//! The format comes from the content, whatever the extension (zip: xlsx, xlsb
//! or ods; OLE: xls, or an encrypted OOXML file, refused as such; a PDF, Word
//! or PowerPoint file or an image is named as what it is; else CSV). Hostile
//! workbooks are bounded before calamine opens them: the file's size, the
//! bytes its parts inflate to, the number of sheets it declares. An xlsx is
//! streamed cell by cell, so the row cap stops a huge sheet early; a
//! workbook that asks to be recalculated on load (as `write`'s do) comes back
//! with its formulas, its stored values being stale.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use calamine::{Data, DataRef, DataType, ExcelDateTime, Reader, SheetType, Xls, Xlsb, Xlsx, XlsxError};
use deskhand_guest::{Output, ToolError, path_error};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::budget::{Budget, Cut, MAX_RESULT_BYTES, RESULT_OVERHEAD_BYTES, json_len, row_len};
use crate::csv_read::{self, CsvOptions};
use crate::repair;
use crate::typed::{self, DateOrder, DateTime};
use crate::{DEFAULT_MAX_ROWS, MAX_FILE_BYTES, MAX_MAX_ROWS};

/// The most a workbook's parts may decompress to: a small file that
/// inflates past this is a zip bomb, not a spreadsheet.
const MAX_UNZIPPED_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadArgs {
    path: PathBuf,
    sheet: Option<String>,
    #[serde(default = "yes")]
    header: bool,
    max_rows: Option<u64>,
    start_row: Option<u64>,
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
                         "description": "more rows than this in all (header rows not counted) is a too-large error, unless start_row is given"},
            "start_row": {"type": "integer", "minimum": 1,
                          "description": "read a part: the first row to return in each sheet (1 is the first after the header); the result then holds at most max_rows rows and, when the sheet goes on, `next` names the sheet and start_row of the next part. One call returns at most 16 MiB of rows"},
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
    if args.start_row == Some(0) {
        return Err(ToolError::InvalidArgs(
            "start_row counts from 1 (the first row after the header)".to_owned(),
        ));
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
    let mut budget = Budget::new(path, max_rows, args.start_row);
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
        };
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let sheet = csv_read::read(path, &bytes, &opts, &name, &mut budget)?;
        result["encoding"] = json!(sheet.encoding);
        result["delimiter"] = json!(sheet.delimiter.to_string());
        result["decimal"] = json!(sheet.decimal.to_string());
        notes.extend(sheet.notes);
        vec![SheetJson::from_value(
            &json!({"name": name, "header": sheet.header, "rows": sheet.rows}),
        )]
    } else {
        read_workbook(path, bytes, kind, &args, formulas, &mut budget, &mut notes)?
    };
    if let Some((sheet, start_row)) = &budget.next {
        result["next"] = json!({"sheet": sheet, "start_row": start_row});
        notes.push(format!(
            "this is a part: sheet {sheet:?} goes on; pass sheet {sheet:?} and start_row {start_row} to read the next \
             part"
        ));
    }
    if !notes.is_empty() {
        result["notes"] = json!(notes);
    }
    let rows: usize = sheets.iter().map(|s| s.rows).sum();
    let text = format!(
        "read {} row{} from {} sheet{} of {} ({})",
        crate::count(rows as u64),
        if rows == 1 { "" } else { "s" },
        sheets.len(),
        if sheets.len() == 1 { "" } else { "s" },
        path.display(),
        kind.name()
    );
    // The sheets are JSON text already, copied once into the result;
    // `sheets` sorts after every other key.
    let head = with_last_key(&result, "sheets", "");
    let head = head.strip_suffix('}').unwrap_or(&head);
    let mut json = String::with_capacity(head.len() + sheets.iter().map(|s| s.json.len() + 1).sum::<usize>() + 3);
    json.push_str(head);
    json.push('[');
    for (i, sheet) in sheets.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&sheet.json);
    }
    json.push_str("]}");
    drop(sheets);
    let out = Output {
        json,
        text,
        changes: Vec::new(),
    };
    // The budget measured the rows; this holds whatever it did not foresee.
    let size = (out.json.len() + out.text.len()) as u64;
    if size > MAX_RESULT_BYTES + RESULT_OVERHEAD_BYTES {
        return Err(ToolError::TooLarge(path_error(
            path,
            format!(
                "is too large to read whole: its result makes {} bytes of JSON, more than one call returns; \
                 pass sheet, max_rows and start_row to read it in parts",
                crate::count(size)
            ),
        )));
    }
    Ok(out)
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
/// A document that is not a spreadsheet (a PDF, a Word or PowerPoint file,
/// an image) is named for what it is, whatever its extension.
fn detect(path: &Path, bytes: &[u8]) -> Result<(Kind, bool), ToolError> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return zip_kind(path, bytes);
    }
    if bytes.starts_with(OLE_MAGIC) {
        return ole_kind(path, bytes);
    }
    if let Some(what) = not_a_spreadsheet(bytes) {
        return Err(bad(path, what));
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

const OLE_MAGIC: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";

/// What a file that is not text is, from its first bytes, when it is a
/// kind people hand a spreadsheet reader by mistake.
fn not_a_spreadsheet(bytes: &[u8]) -> Option<String> {
    // PDF readers accept the header anywhere in the first 1024 bytes.
    let head = &bytes[..bytes.len().min(1024)];
    if head.windows(5).any(|w| w == b"%PDF-") {
        return Some(format!("is a PDF document, not a spreadsheet; {PDF_READER}"));
    }
    const MAGIC: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "a PNG image"),
        (b"\xFF\xD8\xFF", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (b"{\\rtf", "an RTF (rich text) document"),
        (b"\x1F\x8B", "a gzip archive"),
        (b"7z\xBC\xAF\x27\x1C", "a 7-Zip archive"),
        (b"Rar!\x1A\x07", "a RAR archive"),
        (b"%!PS", "a PostScript document"),
    ];
    MAGIC
        .iter()
        .find(|(magic, _)| bytes.starts_with(magic))
        .map(|(_, what)| format!("is {what}, not a spreadsheet or CSV text"))
}

const PDF_READER: &str = "the pdf tool's `text` operation reads its text";
const DOCX_READER: &str = "the docx tool's `text` reads its text";
const PPTX_READER: &str = "the pptx tool's `text` reads its text";

/// An OLE compound file: an xls workbook, an encrypted OOXML file (xlsx,
/// xlsb, docx alike hold an `EncryptedPackage` stream), or a Word or
/// PowerPoint 97-2003 file, told apart by the names of their streams.
fn ole_kind(path: &Path, bytes: &[u8]) -> Result<(Kind, bool), ToolError> {
    let has_stream = |name: &str| {
        let marker: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
        bytes.windows(marker.len()).any(|w| w == marker.as_slice())
    };
    if has_stream("EncryptedPackage") {
        return Err(bad(path, ENCRYPTED));
    }
    if has_stream("Workbook") || has_stream("Book") {
        return Ok((Kind::Xls, false));
    }
    let what = if has_stream("WordDocument") {
        format!("is a Word 97-2003 document (.doc), not a spreadsheet; save it as .docx, and {DOCX_READER}")
    } else if has_stream("PowerPoint Document") {
        format!("is a PowerPoint 97-2003 presentation (.ppt), not a spreadsheet; save it as .pptx, and {PPTX_READER}")
    } else {
        // Let calamine say what it finds: its message names the missing stream.
        return Ok((Kind::Xls, false));
    };
    Err(bad(path, what))
}

/// xlsx, xlsb or ods, after checking that the zip directory reads, that
/// its parts do not inflate past [`MAX_UNZIPPED_BYTES`] and that it is not
/// a Word or PowerPoint file; and, for xlsx, whether its workbook part asks
/// for a full recalculation on load (as files written without a
/// calculation engine do, ours included). An xlsx that declares more
/// sheets than [`MAX_SHEETS`] is refused before calamine reads it.
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
    let has_part_under = |dir: &str| archive.file_names().any(|n| n.is_ok_and(|n| n.starts_with(dir)));
    let other = if archive.index_for_name("xl/workbook.xml").is_some() {
        None
    } else if has_part_under("word/") {
        Some(("a Word document (.docx)", DOCX_READER.to_owned()))
    } else if has_part_under("ppt/") {
        Some(("a PowerPoint presentation (.pptx)", PPTX_READER.to_owned()))
    } else if mimetype.starts_with("application/vnd.oasis.opendocument.text") {
        Some((
            "an OpenDocument text document (.odt)",
            format!("save it as .docx, and {DOCX_READER}"),
        ))
    } else if mimetype.starts_with("application/vnd.oasis.opendocument.presentation") {
        Some((
            "an OpenDocument presentation (.odp)",
            format!("save it as .pptx, and {PPTX_READER}"),
        ))
    } else {
        None
    };
    if let Some((what, reader)) = other {
        return Err(bad(path, format!("is {what}, not a spreadsheet; {reader}")));
    }
    let mut workbook = Vec::new();
    if let Ok(entry) = archive.by_name("xl/workbook.xml") {
        if entry.size() > MAX_WORKBOOK_PART_BYTES {
            return Err(too_many_sheets(path, None, entry.size()));
        }
        let _ = entry.take(MAX_WORKBOOK_PART_BYTES).read_to_end(&mut workbook);
    }
    let sheets = count_elements(&workbook, b"sheet");
    if sheets > MAX_SHEETS {
        return Err(too_many_sheets(path, Some(sheets), workbook.len() as u64));
    }
    let workbook = String::from_utf8_lossy(&workbook);
    let stale = workbook.contains("fullCalcOnLoad=\"1\"") || workbook.contains("fullCalcOnLoad=\"true\"");
    if !workbook.is_empty() || archive.index_for_name("[Content_Types].xml").is_some() {
        return Ok((Kind::Xlsx, stale));
    }
    Err(bad(
        path,
        "is a zip archive but not a spreadsheet (no xl/workbook.xml, no ODS mimetype)",
    ))
}

/// The most sheets a workbook may have: LibreOffice's own limit (Excel's
/// depends on memory). Reading each sheet costs time, and calamine finds a
/// sheet by name in a list, so a workbook declaring 100,000 sheets took
/// half a minute to read.
pub(crate) const MAX_SHEETS: u64 = 10_000;
/// The largest xlsx workbook part (sheet names, defined names): a few
/// hundred kilobytes in real files.
pub(crate) const MAX_WORKBOOK_PART_BYTES: u64 = 16 * 1024 * 1024;

fn too_many_sheets(path: &Path, sheets: Option<u64>, part_bytes: u64) -> ToolError {
    let declared = match sheets {
        Some(n) => format!("declares {} sheets", crate::count(n)),
        None => format!("has a workbook part of {} bytes", crate::count(part_bytes)),
    };
    ToolError::TooLarge(path_error(
        path,
        format!(
            "{declared}, more than any real workbook (LibreOffice opens at most {} sheets); \
             this file would make the reader work too long, so it was not read. If its data matters, \
             copy the sheets you need into a new workbook",
            crate::count(MAX_SHEETS)
        ),
    ))
}

/// How many elements whose local name is `name` (any namespace prefix) the
/// XML holds: a byte scan, no parse.
fn count_elements(xml: &[u8], name: &[u8]) -> u64 {
    let starts = xml.iter().enumerate().filter(|(_, b)| **b == b'<');
    starts.filter(|(i, _)| repair::is_element(&xml[i + 1..], name)).count() as u64
}

#[path = "fast.rs"]
mod fast;

/// The largest sheet part the fast path holds inflated in memory; calamine
/// streams bigger ones.
const MAX_FAST_PART_BYTES: u64 = 256 * 1024 * 1024;

#[cfg(test)]
thread_local! {
    /// Tests compare the fast path with calamine's reading.
    pub(crate) static CALAMINE_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// How many sheets the fast path read.
    pub(crate) static FAST_SHEETS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// How many times a sheet the fast path gave up on made calamine open
    /// the workbook again, with the shared strings it had been spared.
    pub(crate) static REOPENED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

fn fast_path_allowed() -> bool {
    #[cfg(test)]
    return !CALAMINE_ONLY.with(std::cell::Cell::get);
    #[cfg(not(test))]
    true
}

/// One sheet of the result as JSON text (`{"header", "name", "range",
/// "rows"}`), and how many rows it holds: rows are written as text as they
/// are read, never as a `Value` per cell.
pub(crate) struct SheetJson {
    pub json: String,
    pub rows: usize,
}

impl SheetJson {
    fn from_value(sheet: &Value) -> Self {
        SheetJson {
            json: sheet.to_string(),
            rows: sheet["rows"].as_array().map_or(0, Vec::len),
        }
    }
}

/// `object`'s JSON with `key` (which sorts after every key it has, and is
/// absent) added last, its value given as JSON text.
fn with_last_key(object: &Value, key: &str, raw: &str) -> String {
    let mut json = object.to_string();
    json.pop();
    if json.len() > 1 {
        json.push(',');
    }
    json.push('"');
    json.push_str(key);
    json.push_str("\":");
    json.push_str(raw);
    json.push('}');
    json
}

/// One gathered cell: its row and column, and where its JSON is in
/// [`SheetCells::json`].
struct CellAt {
    row: u32,
    col: u32,
    start: usize,
    end: usize,
}

/// The non-empty cells of one sheet, gathered before they are laid out.
struct SheetCells {
    name: String,
    cells: Vec<CellAt>,
    /// The cells' JSON, one after another.
    json: Vec<u8>,
    first_row: Option<u32>,
    /// Why reading stopped, and the row it stopped at (not taken).
    cut: Option<(Cut, u32)>,
}

impl SheetCells {
    fn new(name: &str) -> Self {
        SheetCells {
            name: name.to_owned(),
            cells: Vec::new(),
            json: Vec::new(),
            first_row: None,
            cut: None,
        }
    }

    /// Room for the cells of a sheet part of `xml_bytes`, ahead: growing by
    /// doubling copied some 30 MB for the bench's 100,000 x 10 sheet (38 MB
    /// of XML, 1,000,010 cells, 13 MB of JSON). Capped near what one call
    /// may return; room not used is never touched.
    fn reserve_for(&mut self, xml_bytes: u64) {
        let json = (xml_bytes * 2 / 5).min(MAX_RESULT_BYTES + (1 << 20));
        let cells = (xml_bytes / 32).min(MAX_RESULT_BYTES / 4);
        self.json.reserve(usize::try_from(json).unwrap_or(0));
        self.cells.reserve(usize::try_from(cells).unwrap_or(0));
    }

    /// Adds a cell whose JSON `write` writes; `false` when reading the
    /// sheet should stop (a part is full, or the cells make more JSON than
    /// the call returns). Rows before `start_row` are passed over; more
    /// than `max_rows` while reading the whole file is a too-large error.
    fn push(
        &mut self,
        row: u32,
        col: u32,
        header: bool,
        budget: &Budget<'_>,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<bool, ToolError> {
        let first = self.first_row.map_or(row, |f| f.min(row));
        self.first_row = Some(first);
        let below = u64::from(row - first);
        if !(header && below == 0) {
            let index = below - u64::from(header);
            if index < budget.skip {
                return Ok(true);
            }
            if budget.rows + (index - budget.skip) + 1 > budget.max_rows {
                if !budget.paged {
                    return Err(budget.too_many_rows(&self.name));
                }
                self.cut = Some((Cut::Rows, row));
                return Ok(false);
            }
        }
        let start = self.json.len();
        write(&mut self.json);
        let end = self.json.len();
        // The JSON of the cells gathered, one comma each: a guard on memory;
        // what the laid-out rows cost is measured when they are.
        if (end + self.cells.len() + 1) as u64 > budget.bytes_left() {
            self.json.truncate(start);
            self.cut = Some((Cut::Bytes, row));
            return Ok(false);
        }
        self.cells.push(CellAt { row, col, start, end });
        Ok(true)
    }

    /// Adds a cell given as a `Value`.
    fn push_value(
        &mut self,
        row: u32,
        col: u32,
        value: &Value,
        header: bool,
        budget: &Budget<'_>,
    ) -> Result<bool, ToolError> {
        self.push(row, col, header, budget, |out| write_json(out, value))
    }

    /// The sheet as `{name, range, header, rows}`: rows dense from the
    /// first non-empty column to the last, as many as the budget takes.
    fn finish(self, header: bool, budget: &mut Budget<'_>) -> Result<SheetJson, ToolError> {
        let name = self.name;
        let mut cells = self.cells;
        let json = self.json;
        let Some(first) = self.first_row else {
            let sheet = json!({"name": name, "range": null, "header": null, "rows": []});
            budget.charge(json_len(&sheet) + 1);
            return Ok(SheetJson::from_value(&sheet));
        };
        if let Some((_, stop)) = self.cut {
            // The row reading stopped in is left out whole.
            cells.retain(|c| c.row < stop);
        }
        if !cells.is_sorted_by_key(|c| (c.row, c.col)) {
            cells.sort_by_key(|c| (c.row, c.col));
        }
        // A cell given twice: the later one stands.
        cells.dedup_by(|later, earlier| {
            let same = (later.row, later.col) == (earlier.row, earlier.col);
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
        let first = u64::from(first);
        let data_start = first + u64::from(header) + budget.skip;
        let data_end = match self.cut {
            Some((_, stop)) => u64::from(stop),
            None => cells.last().map_or(0, |c| u64::from(c.row) + 1),
        }
        .min(data_start + (budget.max_rows - budget.rows))
        .max(data_start);
        let first_col = cells.iter().map(|c| c.col).min().unwrap_or(0);
        let last_col = cells.iter().map(|c| c.col).max().unwrap_or(0);
        let width = (last_col - first_col) as usize + 1;

        let header_row: Option<Vec<String>> = header.then(|| {
            let mut titles = vec![String::new(); width];
            for c in cells.iter().filter(|c| u64::from(c.row) == first) {
                let value = serde_json::from_slice(&json[c.start..c.end]).unwrap_or(Value::Null);
                titles[(c.col - first_col) as usize] = header_text(&value);
            }
            titles
        });
        let skeleton =
            json_len(&json!({"name": name, "range": "XFD1048576:XFD1048576", "header": header_row, "rows": []}));

        // Each row's JSON: its cells, and `null` for each empty one.
        let mut sizes = Vec::new();
        let mut i = cells.partition_point(|c| u64::from(c.row) < data_start);
        let rows_from = i;
        for row in data_start..data_end {
            let (mut count, mut bytes) = (0usize, 0u64);
            while let Some(c) = cells.get(i).filter(|c| u64::from(c.row) == row) {
                count += 1;
                bytes += (c.end - c.start) as u64;
                i += 1;
            }
            sizes.push(row_len(width, bytes + 4 * (width - count) as u64));
        }
        let kept = budget.fit(&name, skeleton, &sizes, self.cut.map(|c| c.0))?;
        if cells.is_empty() {
            return Ok(SheetJson::from_value(
                &json!({"name": name, "range": null, "header": null, "rows": []}),
            ));
        }
        let kept_end = data_start + kept as u64;
        let top = if header && budget.skip == 0 { first } else { data_start };
        let bottom = kept_end.max(top + 1) - 1;
        let range = format!(
            "{}{}:{}{}",
            column_name(first_col),
            top + 1,
            column_name(last_col),
            bottom + 1
        );
        // The sheet's other keys, then its rows written after them in the
        // same buffer: `rows` sorts after every other key.
        let head = with_last_key(&json!({"name": name, "range": range, "header": header_row}), "rows", "");
        let head = head.strip_suffix('}').unwrap_or(&head);
        let mut rows =
            Vec::with_capacity(head.len() + sizes[..kept].iter().map(|&s| s as usize + 1).sum::<usize>() + 3);
        rows.extend_from_slice(head.as_bytes());
        rows.push(b'[');
        let mut i = rows_from;
        for row in data_start..kept_end {
            if row > data_start {
                rows.push(b',');
            }
            rows.push(b'[');
            let mut col = first_col;
            while let Some(c) = cells.get(i).filter(|c| u64::from(c.row) == row) {
                for _ in col..c.col {
                    rows.extend_from_slice(b"null,");
                }
                rows.extend_from_slice(&json[c.start..c.end]);
                if c.col < last_col {
                    rows.push(b',');
                }
                col = c.col + 1;
                i += 1;
            }
            for c in col..=last_col {
                rows.extend_from_slice(if c < last_col { b"null," } else { b"null" });
            }
            rows.push(b']');
        }
        rows.extend_from_slice(b"]}");
        // Every piece is JSON that serde_json or this function wrote from UTF-8 text.
        let json = String::from_utf8(rows).map_err(|e| bad(budget.path, format!("cannot be read: {e}")))?;
        Ok(SheetJson { json, rows: kept })
    }
}

/// `value` as compact JSON at the end of `out`.
fn write_json(out: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
    // Writing to a Vec cannot fail, nor can serializing these values.
    let _ = serde_json::to_writer(out, value);
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

/// A date-time cell's key (`date`, `time` or `duration`) and text.
fn datetime_text(dt: &ExcelDateTime) -> (&'static str, String) {
    let serial = dt.as_f64();
    if dt.is_duration() {
        let total = (serial * 86_400.0).round() as i64;
        let sign = if total < 0 { "-" } else { "" };
        let t = total.abs();
        return (
            "duration",
            format!("{sign}{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60),
        );
    }
    let (y, mo, d, h, mi, s, _) = dt.to_ymd_hms_milli();
    if (0.0..1.0).contains(&serial) {
        return ("time", format!("{h:02}:{mi:02}:{s:02}"));
    }
    let time = (h, mi, s) != (0, 0, 0);
    // Built directly: Excel's 1900-02-29 is not a real date but is what the cell says.
    let date = DateTime {
        year: y,
        month: mo,
        day: d,
        time: time.then_some((h, mi, s)),
    };
    ("date", date.iso())
}

/// A date-time cell's JSON, as [`datetime_text`] and [`write_object`]
/// make it; a date (the usual case, 100,000 of them in the bench's sheet)
/// written digit by digit instead of through two `format!` strings.
fn write_datetime(out: &mut Vec<u8>, dt: &ExcelDateTime) {
    let serial = dt.as_f64();
    if dt.is_duration() || (0.0..1.0).contains(&serial) {
        let (key, text) = datetime_text(dt);
        write_object(out, key, &text);
        return;
    }
    let (y, mo, d, h, mi, s, _) = dt.to_ymd_hms_milli();
    out.extend_from_slice(b"{\"date\":\"");
    push_padded(out, u32::from(y), 4);
    out.push(b'-');
    push_padded(out, u32::from(mo), 2);
    out.push(b'-');
    push_padded(out, u32::from(d), 2);
    if (h, mi, s) != (0, 0, 0) {
        out.push(b'T');
        push_padded(out, u32::from(h), 2);
        out.push(b':');
        push_padded(out, u32::from(mi), 2);
        out.push(b':');
        push_padded(out, u32::from(s), 2);
    }
    out.extend_from_slice(b"\"}");
}

/// `n` in decimal with at least `width` digits, as `format!("{n:0width$}")`.
fn push_padded(out: &mut Vec<u8>, mut n: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let start = i.min(digits.len() - width.min(digits.len()));
    out.extend_from_slice(&digits[start..]);
}

fn data_json(data: &Data) -> Value {
    match data {
        Data::Empty => Value::Null,
        Data::Int(i) => json!(i),
        Data::Float(f) => json!(f),
        Data::String(s) => json!(s),
        Data::Bool(b) => json!(b),
        Data::DateTime(dt) => {
            let (key, text) = datetime_text(dt);
            json!({key: text})
        }
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

/// `{"key":` + `value` as JSON + `}` at the end of `out`.
fn write_object(out: &mut Vec<u8>, key: &str, value: &(impl serde::Serialize + ?Sized)) {
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    write_json(out, value);
    out.push(b'}');
}

/// An xlsx cell's JSON, written as [`data_json`] and [`with_formula`]
/// would make it, without building a `Value`: a number in a currency
/// format as `{"amount", "currency"}`, a formula as `{"formula", "value"}`.
fn write_cell(out: &mut Vec<u8>, data: &DataRef<'_>, currency: Option<&str>, formula: Option<&str>) {
    if let Some(f) = formula {
        out.extend_from_slice(b"{\"formula\":");
        write_json(out, f);
        out.extend_from_slice(b",\"value\":");
    }
    match (data, currency) {
        (DataRef::Int(i), Some(code)) => {
            out.extend_from_slice(b"{\"amount\":");
            write_json(out, i);
            out.extend_from_slice(b",\"currency\":");
            write_json(out, code);
            out.push(b'}');
        }
        (DataRef::Float(f), Some(code)) => {
            out.extend_from_slice(b"{\"amount\":");
            write_json(out, f);
            out.extend_from_slice(b",\"currency\":");
            write_json(out, code);
            out.push(b'}');
        }
        (DataRef::Empty, _) => out.extend_from_slice(b"null"),
        (DataRef::Int(i), None) => write_json(out, i),
        (DataRef::Float(f), None) => {
            if !crate::number_text::push_whole(out, *f) {
                write_json(out, f);
            }
        }
        (DataRef::String(s), _) => write_json(out, s),
        (DataRef::SharedString(s), _) => write_json(out, s),
        (DataRef::Bool(b), _) => write_json(out, b),
        (DataRef::DateTime(dt), _) => write_datetime(out, dt),
        (DataRef::DateTimeIso(s), _) => write_object(out, "date", s),
        (DataRef::DurationIso(s), _) => write_object(out, "duration", s),
        (DataRef::Error(e), _) => write_object(out, "error", &e.to_string()),
    }
    if formula.is_some() {
        out.push(b'}');
    }
}

fn read_workbook(
    path: &Path,
    bytes: Vec<u8>,
    kind: Kind,
    args: &ReadArgs,
    formulas: bool,
    budget: &mut Budget<'_>,
    notes: &mut Vec<String>,
) -> Result<Vec<SheetJson>, ToolError> {
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
            let before = budget.clone();
            match read_xlsx(Cursor::new(cursor.get_ref().as_slice()), args, formulas, budget) {
                Err(XlsxFailure::Calamine(sheet, e)) if mendable(&e) => {
                    // A flaw LibreOffice passes over: mend it in a copy and read that.
                    let Some((mended, what)) = repair::repair(path, cursor.get_ref())? else {
                        return Err(xlsx_error(path, sheet.as_deref(), &e));
                    };
                    *budget = before;
                    notes.extend(what);
                    read_xlsx(Cursor::new(mended.as_slice()), args, formulas, budget).map_err(|f| match f {
                        XlsxFailure::Tool(e) => e,
                        XlsxFailure::Calamine(sheet, e) => xlsx_error(path, sheet.as_deref(), &e),
                    })
                }
                Err(XlsxFailure::Tool(e)) => Err(e),
                Err(XlsxFailure::Calamine(sheet, e)) => Err(xlsx_error(path, sheet.as_deref(), &e)),
                Ok(sheets) => Ok(sheets),
            }
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

/// Why reading an xlsx failed: a typed error of ours, or calamine's (in a
/// sheet, or opening the workbook).
enum XlsxFailure {
    Tool(ToolError),
    Calamine(Option<String>, XlsxError),
}

/// The flaws [`repair::repair`] mends.
fn mendable(e: &XlsxError) -> bool {
    matches!(
        e,
        XlsxError::Unrecognized { typ: "sheet:state", .. }
            | XlsxError::RangeWithoutColumnComponent
            | XlsxError::RangeWithoutRowComponent
    )
}

fn xlsx_error(path: &Path, sheet: Option<&str>, e: &XlsxError) -> ToolError {
    let message = e.to_string();
    if message.contains("password protected") {
        return bad(path, ENCRYPTED);
    }
    let mut message = match sheet {
        Some(sheet) => format!("sheet {sheet:?} cannot be read: {message}"),
        None => format!("cannot be read as an xlsx workbook: {message}"),
    };
    if mendable(e) {
        message.push_str(
            " (a flaw spreadsheet apps pass over: open the file in LibreOffice or Excel and save it again, \
             and the copy reads)",
        );
    }
    bad(path, message)
}

/// Every chosen sheet of an xlsx workbook.
///
/// When the fast path has read the shared strings, calamine opens a copy
/// that hides them ([`fast::without_shared_strings`]): it is needed then
/// only for the sheet list, styles and epoch. A sheet the fast path gives
/// up on, and any error opening the copy, make calamine open the workbook
/// itself, so its reading and its errors are the same as without the copy.
fn read_xlsx(
    cursor: Cursor<&[u8]>,
    args: &ReadArgs,
    formulas: bool,
    budget: &mut Budget<'_>,
) -> Result<Vec<SheetJson>, XlsxFailure> {
    let bytes = *cursor.get_ref();
    let fast = if fast_path_allowed() {
        fast::Book::open(bytes, MAX_FAST_PART_BYTES).map(|b| (b, bytes))
    } else {
        None
    };
    let hidden = fast.as_ref().and_then(|_| fast::without_shared_strings(bytes));
    let opened = hidden.as_deref().map(|copy| Xlsx::new(Cursor::new(copy)));
    let (mut book, mut whole): (Xlsx<_>, bool) = match opened {
        Some(Ok(book)) => (book, false),
        _ => (Xlsx::new(cursor).map_err(|e| XlsxFailure::Calamine(None, e))?, true),
    };
    let names = chosen_sheets(budget.path, book.sheets_metadata(), args.sheet.as_deref()).map_err(XlsxFailure::Tool)?;
    let mut out = Vec::new();
    for name in names {
        if budget.done() {
            break;
        }
        let failure = |e| match e {
            SheetError::Tool(e) => XlsxFailure::Tool(e),
            SheetError::Xlsx(e) => XlsxFailure::Calamine(Some(name.clone()), e),
        };
        let sheet = match read_xlsx_sheet(&mut book, fast.as_ref(), whole, &name, formulas, args.header, budget) {
            Ok(Some(sheet)) => sheet,
            Ok(None) => {
                // The fast path gave up on this sheet: calamine reads it, strings and all.
                #[cfg(test)]
                REOPENED.with(|n| n.set(n.get() + 1));
                book = Xlsx::new(Cursor::new(bytes)).map_err(|e| XlsxFailure::Calamine(None, e))?;
                whole = true;
                read_xlsx_sheet(&mut book, None, whole, &name, formulas, args.header, budget)
                    .map_err(failure)?
                    .ok_or_else(|| failure(SheetError::Xlsx(XlsxError::WorksheetNotFound(name.clone()))))?
            }
            Err(e) => return Err(failure(e)),
        };
        out.push(sheet);
    }
    Ok(out)
}

fn sheet_error(path: &Path, sheet: &str, e: &dyn std::fmt::Display) -> ToolError {
    bad(path, format!("sheet {sheet:?} cannot be read: {e}"))
}

/// The worksheets to read: the one asked for, or every worksheet (chart
/// and macro sheets hold no cells to read).
fn chosen_sheets(path: &Path, sheets: &[calamine::Sheet], asked: Option<&str>) -> Result<Vec<String>, ToolError> {
    if sheets.len() as u64 > MAX_SHEETS {
        return Err(too_many_sheets(path, Some(sheets.len() as u64), 0));
    }
    match asked {
        Some(name) => {
            if sheets.iter().any(|s| s.name == name) {
                Ok(vec![name.to_owned()])
            } else {
                const LISTED: usize = 50;
                let mut names: Vec<String> = sheets.iter().take(LISTED).map(|s| format!("{:?}", s.name)).collect();
                if sheets.len() > LISTED {
                    names.push(format!("and {} more", sheets.len() - LISTED));
                }
                Err(ToolError::InvalidArgs(format!(
                    "{} has no sheet named {name:?}; its sheets: {}",
                    path.display(),
                    names.join(", ")
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
/// sheet before it is held in memory, each cell's JSON written as it is
/// read. With `formulas`, values and formulas (shared formulas expanded)
/// come in one pass; when the workbook has currency formats, a pass before
/// it finds the cells that show one, since that reader does not give a
/// cell's style. `None` when the fast path gave up and `book` cannot read
/// the sheet (`whole` false: it was opened without its shared strings).
fn read_xlsx_sheet<RS: std::io::Read + std::io::Seek>(
    book: &mut Xlsx<RS>,
    fast: Option<&(fast::Book, &[u8])>,
    whole: bool,
    name: &str,
    formulas: bool,
    header: bool,
    budget: &mut Budget<'_>,
) -> Result<Option<SheetJson>, SheetError> {
    let is_1904 = book.has_1904_epoch();
    let mut sheet = SheetCells::new(name);
    let mut reader = book.worksheet_cells_reader(name)?;
    // The currency each style's number format shows.
    let currencies: Vec<Option<String>> = reader
        .styles()
        .iter()
        .map(|s| {
            s.number_format
                .as_ref()
                .and_then(|f| typed::format_currency(&f.format_code))
        })
        .collect();
    if let Some((fast, bytes)) = fast {
        let styles = reader.styles();
        let mut quick = SheetCells::new(name);
        quick.reserve_for(fast.part_size(name).unwrap_or(0));
        let read = fast.cells(bytes, name, styles, is_1904, MAX_FAST_PART_BYTES, |cell| {
            let formula = cell.formula.as_deref().filter(|f| formulas && !f.is_empty());
            if formula.is_none() && cell.value.is_empty() {
                return Ok(true);
            }
            let currency = currencies.get(cell.style).and_then(Option::as_deref);
            quick.push(cell.row, cell.col, header, budget, |out| {
                write_cell(out, &cell.value, currency, formula)
            })
        });
        // When the sheet is not plain enough, calamine reads it from the start.
        if let Some(read) = read {
            #[cfg(test)]
            FAST_SHEETS.with(|n| n.set(n.get() + 1));
            read?;
            drop(reader);
            return Ok(Some(quick.finish(header, budget)?));
        }
    }
    if !whole {
        return Ok(None);
    }
    // The one-pass reader gives no style, and the pass that finds styles
    // passes over cells in the default style (0): when that style shows a
    // currency, formulas are read in a pass of their own.
    if !formulas || currencies.first().is_some_and(Option::is_some) {
        let mut formula_at: HashMap<(u32, u32), String> = HashMap::new();
        if formulas {
            let mut first_row = None;
            while let Some(cell) = reader.next_formula()? {
                let (row, col) = cell.get_position();
                // Past the row cap the reading stops with too-large; no need to hold more.
                if u64::from(row - *first_row.get_or_insert(row)) > budget.skip + budget.max_rows + 1 {
                    break;
                }
                if !cell.get_value().is_empty() {
                    formula_at.insert((row, col), cell.get_value().clone());
                }
            }
            drop(reader);
            reader = book.worksheet_cells_reader(name)?;
        }
        while let Some((cell, style)) = reader.next_cell_with_style_id()? {
            let (row, col) = cell.get_position();
            let formula = formula_at.remove(&(row, col));
            let data = cell.get_value();
            if data.is_empty() && formula.is_none() {
                continue;
            }
            let currency = currencies.get(style).and_then(Option::as_deref);
            if !sheet.push(row, col, header, budget, |out| {
                write_cell(out, data, currency, formula.as_deref())
            })? {
                break;
            }
        }
        drop(reader);
        return Ok(Some(sheet.finish(header, budget)?));
    }
    let mut currency_at: HashMap<(u32, u32), usize> = HashMap::new();
    if currencies.iter().any(Option::is_some) {
        let mut first_row = None;
        while let Some((row, col, style)) = reader.next_style_id()? {
            // Past the row cap the reading stops with too-large; no need to hold more.
            if u64::from(row - *first_row.get_or_insert(row)) > budget.skip + budget.max_rows + 1 {
                break;
            }
            if currencies.get(style).is_some_and(Option::is_some) {
                currency_at.insert((row, col), style);
            }
        }
        drop(reader);
        reader = book.worksheet_cells_reader(name)?;
    }
    while let Some(cell) = reader.next_cell_with_formula()? {
        let (row, col) = cell.pos;
        let formula = cell.formula.as_deref().filter(|f| !f.is_empty());
        if formula.is_none() && cell.value.is_empty() {
            continue;
        }
        let currency = if currency_at.is_empty() {
            None
        } else {
            currency_at
                .get(&(row, col))
                .and_then(|&style| currencies.get(style))
                .and_then(Option::as_deref)
        };
        if !sheet.push(row, col, header, budget, |out| {
            write_cell(out, &cell.value, currency, formula)
        })? {
            break;
        }
    }
    drop(reader);
    Ok(Some(sheet.finish(header, budget)?))
}

/// Every chosen sheet of an xls, xlsb or ods workbook, through calamine's ranges.
fn read_ranges<RS, R>(
    path: &Path,
    book: &mut R,
    args: &ReadArgs,
    formulas: bool,
    budget: &mut Budget<'_>,
) -> Result<Vec<SheetJson>, ToolError>
where
    RS: std::io::Read + std::io::Seek,
    R: Reader<RS>,
    R::Error: std::fmt::Display,
{
    let names = chosen_sheets(path, book.sheets_metadata(), args.sheet.as_deref())?;
    let mut out = Vec::new();
    for name in names {
        if budget.done() {
            break;
        }
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
            if !sheet.push_value(row, col, &with_formula(data_json(data), formula), args.header, budget)? {
                break;
            }
        }
        out.push(sheet.finish(args.header, budget)?);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "perf_tests.rs"]
mod perf_tests;
