//! CSV into typed rows. The encoding (UTF-8 with or without a BOM, UTF-16
//! with a BOM, else Windows-1252), the delimiter and the decimal separator
//! are detected; a column's `a/b/YYYY` dates are read in the one order all
//! its values allow, or left as text (with a note) when they allow both.

use std::borrow::Cow;
use std::path::Path;

use deskhand_guest::{ToolError, path_error};
use serde_json::{Value, json};

use crate::budget::{Budget, Cut, json_len, row_len};
use crate::csv_scan::{CsvScan, Event};
use crate::typed::{self, DateOrder, DateShape};

pub struct CsvOptions {
    pub delimiter: Option<u8>,
    pub decimal: Option<char>,
    pub date_order: Option<DateOrder>,
    pub header: bool,
}

/// One CSV file read: its typed rows and how it was read.
pub struct CsvSheet {
    pub header: Option<Vec<String>>,
    pub rows: Vec<Vec<Value>>,
    pub encoding: &'static str,
    pub delimiter: char,
    pub decimal: char,
    pub notes: Vec<String>,
}

/// The text of a CSV file and the name of the encoding it was read in.
fn decode(path: &Path, bytes: &[u8]) -> Result<(String, &'static str), ToolError> {
    let (text, encoding) = if bytes.starts_with(b"\xEF\xBB\xBF") {
        (
            encoding_rs::UTF_8.decode_with_bom_removal(bytes).0.into_owned(),
            "utf-8 (with BOM)",
        )
    } else if bytes.starts_with(b"\xFF\xFE") {
        (
            encoding_rs::UTF_16LE.decode_with_bom_removal(bytes).0.into_owned(),
            "utf-16le",
        )
    } else if bytes.starts_with(b"\xFE\xFF") {
        (
            encoding_rs::UTF_16BE.decode_with_bom_removal(bytes).0.into_owned(),
            "utf-16be",
        )
    } else {
        match std::str::from_utf8(bytes) {
            Ok(text) => (text.to_owned(), "utf-8"),
            // Windows-1252 is Latin-1 plus printable characters in 0x80-0x9F
            // (€, curly quotes), and every byte sequence decodes.
            Err(_) => (
                encoding_rs::WINDOWS_1252
                    .decode_without_bom_handling(bytes)
                    .0
                    .into_owned(),
                "windows-1252",
            ),
        }
    };
    if text.contains('\0') {
        return Err(ToolError::BadContent(path_error(
            path,
            "is not CSV text: it holds NUL bytes (a binary file, or UTF-16 without a byte-order mark)",
        )));
    }
    Ok((text, encoding))
}

fn count_delimiters(line: &str, delimiter: u8) -> usize {
    let mut scan = CsvScan::new(delimiter);
    line.bytes().filter(|b| scan.step(*b) == Event::FieldEnd).count()
}

/// The delimiter that splits the first lines most consistently (the same
/// count, more than zero, on the most lines); a comma when none does.
fn sniff_delimiter(text: &str) -> u8 {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).take(50).collect();
    let mut best = (b',', 0usize, 0usize);
    for delimiter in [b',', b';', b'\t', b'|'] {
        let counts: Vec<usize> = lines.iter().map(|l| count_delimiters(l, delimiter)).collect();
        let mut mode = (0usize, 0usize);
        for &c in counts.iter().filter(|c| **c > 0) {
            let agree = counts.iter().filter(|x| **x == c).count();
            if (agree, c) > mode {
                mode = (agree, c);
            }
        }
        if mode.0 > 0 && mode > (best.1, best.2) {
            best = (delimiter, mode.0, mode.1);
        }
    }
    best.0
}

/// The most columns read from a line: Excel's and LibreOffice's limit
/// (XFD). Both load a wider file cut there, with a warning; so does this.
const MAX_COLUMNS: usize = 16_384;
/// The most notes about date columns one result carries.
const MAX_DATE_NOTES: usize = 20;

/// Reads the file's rows, as many as `budget` takes: the rows before its
/// `start_row` are passed over, and reading stops once the rows read make
/// more JSON than the call returns (with some room: numbers can come out
/// shorter than they were written).
pub fn read(
    path: &Path,
    bytes: &[u8],
    opts: &CsvOptions,
    name: &str,
    budget: &mut Budget<'_>,
) -> Result<CsvSheet, ToolError> {
    let (text, encoding) = decode(path, bytes)?;
    let mut body = text.as_str();
    // Excel's own hint on the first line: `sep=;`.
    let mut hinted = None;
    if let Some(first) = body.lines().next()
        && let Some(sep) = first.trim().strip_prefix("sep=")
        && sep.len() == 1
    {
        hinted = sep.bytes().next();
        body = &body[first.len()..];
    }
    let delimiter = opts.delimiter.or(hinted).unwrap_or_else(|| sniff_delimiter(body));
    let mut notes = Vec::new();
    let (body, wide) = cut_wide_records(body, delimiter, MAX_COLUMNS);
    if let Some(wide) = wide {
        notes.push(format!(
            "{} line{} more than {} fields (up to {}); only the first {} columns were read, as Excel and \
             LibreOffice do",
            crate::count(wide.lines),
            if wide.lines == 1 { " has" } else { "s have" },
            crate::count(MAX_COLUMNS as u64),
            crate::count(wide.widest),
            crate::count(MAX_COLUMNS as u64),
        ));
    }

    let raw_cap = budget.bytes_left() + budget.bytes_left() / 2;
    let (mut raw, mut cut) = (0u64, None);
    let mut header: Option<Vec<String>> = None;
    let mut records: Vec<Vec<String>> = Vec::new();
    let mut passed = 0u64;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(body.as_bytes());
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| ToolError::BadContent(path_error(path, format!("is not valid CSV: {e}"))))?;
        let fields = || record.iter().map(str::to_owned).collect::<Vec<_>>();
        if i == 0 && opts.header {
            header = Some(fields());
            continue;
        }
        if passed < budget.skip {
            passed += 1;
            continue;
        }
        if budget.rows + records.len() as u64 == budget.max_rows {
            if !budget.paged {
                return Err(budget.too_many_rows(name));
            }
            cut = Some(Cut::Rows);
            break;
        }
        // What the fields cost as JSON, near enough: `null` for an empty one.
        raw += record.iter().map(|f| f.len().max(4) as u64 + 1).sum::<u64>() + 1;
        if raw > raw_cap {
            cut = Some(Cut::Bytes);
            break;
        }
        records.push(fields());
        if records.len().is_multiple_of(50_000) {
            deskhand_guest::progress(records.len() as u64, None, "reading CSV rows");
        }
    }

    let decimal = opts.decimal.unwrap_or_else(|| {
        let (mut dots, mut commas) = (0usize, 0usize);
        for field in records.iter().flatten() {
            match typed::decimal_evidence(field) {
                Some('.') => dots += 1,
                Some(',') => commas += 1,
                _ => {}
            }
        }
        match dots.cmp(&commas) {
            std::cmp::Ordering::Greater => '.',
            std::cmp::Ordering::Less => ',',
            // A semicolon CSV is what spreadsheets write where the comma is the decimal separator.
            std::cmp::Ordering::Equal if delimiter == b';' => ',',
            std::cmp::Ordering::Equal => '.',
        }
    });

    let width = records.iter().map(Vec::len).max().unwrap_or(0);
    let mut date_notes = Vec::new();
    let orders: Vec<Option<DateOrder>> = (0..width)
        .map(|col| {
            let name = header
                .as_ref()
                .and_then(|h| h.get(col))
                .map(|n| format!("column {} ({n})", col + 1))
                .unwrap_or_else(|| format!("column {}", col + 1));
            column_date_order(&records, col, opts.date_order, &name, &mut date_notes)
        })
        .collect();
    if date_notes.len() > MAX_DATE_NOTES {
        let more = date_notes.len() - MAX_DATE_NOTES;
        date_notes.truncate(MAX_DATE_NOTES);
        date_notes.push(format!("and {more} more columns like these"));
    }
    notes.extend(date_notes);

    let mut rows: Vec<Vec<Value>> = records
        .iter()
        .map(|record| {
            record
                .iter()
                .enumerate()
                .map(|(col, field)| typed_field(field, decimal, orders.get(col).copied().flatten()))
                .collect()
        })
        .collect();
    drop(records);
    let sizes: Vec<u64> = rows
        .iter()
        .map(|row| row_len(row.len(), row.iter().map(json_len).sum()))
        .collect();
    let skeleton = json_len(&json!({"name": name, "header": header, "rows": []}));
    let kept = budget.fit(name, skeleton, &sizes, cut)?;
    rows.truncate(kept);
    Ok(CsvSheet {
        header,
        rows,
        encoding,
        delimiter: char::from(delimiter),
        decimal,
        notes,
    })
}

/// Lines cut at [`MAX_COLUMNS`]: how many, and the most fields one had.
struct Wide {
    lines: u64,
    widest: u64,
}

/// `text` with each record (a line, or more where a quoted field holds a
/// line break) cut after its `max`th field, so that a line of ten million
/// commas costs a scan, not ten million fields. Records and fields are
/// found as the csv crate finds them, so that no stray quote hides a wide
/// line from the cut.
fn cut_wide_records(text: &str, delimiter: u8, max: usize) -> (Cow<'_, str>, Option<Wide>) {
    // Each cut record's `max`th delimiter and the line break that ends it.
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let mut scan = CsvScan::new(delimiter);
    let (mut fields, mut widest) = (1usize, 0usize);
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match scan.step(b) {
            Event::FieldEnd => {
                fields += 1;
                if fields == max + 1 {
                    cuts.push((i, bytes.len()));
                }
            }
            Event::RecordEnd => {
                if fields > max
                    && let Some(cut) = cuts.last_mut()
                {
                    cut.1 = i;
                }
                widest = widest.max(fields);
                fields = 1;
            }
            Event::None => {}
        }
    }
    if scan.in_record() {
        widest = widest.max(fields);
    }
    if cuts.is_empty() {
        return (Cow::Borrowed(text), None);
    }
    let mut out = String::with_capacity(text.len().min(16 << 20));
    let mut from = 0;
    for &(at, end) in &cuts {
        out.push_str(&text[from..at]);
        from = end;
    }
    out.push_str(&text[from..]);
    let wide = Wide {
        lines: cuts.len() as u64,
        widest: widest as u64,
    };
    (Cow::Owned(out), Some(wide))
}

/// The order `a/b/YYYY` dates in column `col` are read in: the one asked
/// for, else the only one every value allows (a 13 or more in first place
/// means day first). `None` leaves them as text, with a note saying why.
fn column_date_order(
    records: &[Vec<String>],
    col: usize,
    asked: Option<DateOrder>,
    name: &str,
    notes: &mut Vec<String>,
) -> Option<DateOrder> {
    if asked.is_some() {
        return asked;
    }
    let (mut slashed, mut day_first, mut month_first) = (false, false, false);
    for field in records.iter().filter_map(|r| r.get(col)) {
        if let Some(DateShape::Slashed {
            first_is_month,
            second_is_month,
        }) = typed::date_shape(field)
        {
            slashed = true;
            day_first |= !first_is_month;
            month_first |= !second_is_month;
        }
    }
    match (slashed, day_first, month_first) {
        (false, ..) => None,
        (true, true, false) => Some(DateOrder::DayFirst),
        (true, false, true) => Some(DateOrder::MonthFirst),
        (true, true, true) => {
            notes.push(format!(
                "{name}: some dates are day first and others month first; they were kept as text"
            ));
            None
        }
        (true, false, false) => {
            notes.push(format!(
                "{name}: dates such as 01/02/2024 could be day or month first; they were kept as text \
                 (pass date_order \"dmy\" or \"mdy\")"
            ));
            None
        }
    }
}

fn typed_field(field: &str, decimal: char, order: Option<DateOrder>) -> Value {
    let trimmed = field.trim();
    if trimmed.is_empty() {
        return Value::Null;
    }
    if trimmed.eq_ignore_ascii_case("true") {
        return json!(true);
    }
    if trimmed.eq_ignore_ascii_case("false") {
        return json!(false);
    }
    if let Some(date) = typed::parse_local_date(trimmed, order) {
        return date.json();
    }
    if let Some((value, currency)) = typed::parse_number(trimmed, decimal) {
        return typed::number_json(value, currency);
    }
    json!(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields of each record the csv crate reads from `text`.
    fn widths(text: &str) -> Vec<usize> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes())
            .byte_records()
            .map(|r| r.unwrap().len())
            .collect()
    }

    #[test]
    fn a_stray_quote_before_a_wide_line_does_not_hide_it_from_the_cut() {
        // A quote mid-field is an ordinary byte to the csv crate: this is
        // one record of 100,001 fields, not one quoted field.
        let text = format!("x\"{}", ",".repeat(100_000));
        let (cut, wide) = cut_wide_records(&text, b',', 16);
        let wide = wide.expect("the line is cut");
        assert_eq!((wide.lines, wide.widest), (1, 100_001));
        assert_eq!(widths(&cut), [16]);

        // `5" screen` does not turn the lines after it into one quoted field.
        let text = format!("item,size\nTV 5\" screen,40\n{}\nlast,1\n", ",".repeat(1000));
        let (cut, wide) = cut_wide_records(&text, b',', 16);
        let wide = wide.expect("the wide line is cut");
        assert_eq!((wide.lines, wide.widest), (1, 1001));
        assert_eq!(widths(&cut), [2, 2, 16, 2]);

        // Quoted fields, escaped quotes and line breaks inside them still hold.
        let text = "\"a,\"\"b\"\",\nc\",d,e,f\r\n1,2\n";
        let (cut, wide) = cut_wide_records(text, b',', 2);
        assert_eq!(wide.map(|w| (w.lines, w.widest)), Some((1, 4)));
        assert_eq!(widths(&cut), [2, 2]);
        assert!(cut.starts_with("\"a,\"\"b\"\",\nc\",d\r\n"), "{cut:?}");
    }
}
