//! The fast path of `write` for plain workbooks: sheets of values and
//! classic formulas with a header, column widths and formats, totals, frozen
//! panes and an auto-filter, but no charts and no print set-up.
//!
//! rust_xlsxwriter keeps every cell in a map of maps, hashes each cell's
//! whole `Format`, and formats its XML through `write!`: about three quarters
//! of the time `write` spent on a 100,000 x 10 sheet. Here the cells go
//! straight from the spec into each sheet's XML and the shared strings, and
//! rust_xlsxwriter still writes every other part: it is handed a small
//! stand-in workbook (the same sheets, one cell per format in the order the
//! real cells first use them, so the style table and its indices are the
//! same, one string when there are strings, the same auto-filters), and its
//! parts are copied raw into the real file beside the two written here.
//!
//! The sheet XML is the one rust_xlsxwriter writes for the same spec, byte for
//! byte (same spans, autofit widths, number text, style and string indices):
//! the tests compare both paths part by part. Anything this path does not
//! write exactly the same way (an empty sheet, a string with control
//! characters or `_x` escapes, a formula naming a function outside
//! [`CLASSIC_FUNCTIONS`], any spec error) makes it give up, and the whole
//! workbook goes through rust_xlsxwriter as before, which also words the
//! errors.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{Cursor, Write};

use rust_xlsxwriter::{Color, ExcelDateTime, Format, FormatBorder, Workbook};
use zip::write::SimpleFileOptions;

use super::{Cell, DEFAULT_HEADER_FILL, Formats, SheetSpec, WriteArgs, parse_cell, parse_column, parse_fill};

/// Excel's widest autofit column and widest column, in pixels (rust_xlsxwriter's limits).
const MAX_AUTOFIT_PIXELS: u32 = 1790;
/// rust_xlsxwriter's default column: 64 pixels, 7 per digit, 5 of padding.
const DEFAULT_COL_PIXELS: u32 = 64;
const MAX_DIGIT_PIXELS: u32 = 7;
const CELL_PADDING: u32 = 5;
const MAX_STRING_BYTES: usize = 32_767;

/// Functions rust_xlsxwriter writes as they are (none of them gets an
/// `_xlfn.` prefix or makes a dynamic array): a formula that names any other
/// sends the workbook down the rust_xlsxwriter path.
const CLASSIC_FUNCTIONS: &[&str] = &[
    "ABS",
    "AND",
    "AVERAGE",
    "AVERAGEIF",
    "AVERAGEIFS",
    "CONCATENATE",
    "COUNT",
    "COUNTA",
    "COUNTIF",
    "COUNTIFS",
    "DATE",
    "DAY",
    "HLOOKUP",
    "IF",
    "IFERROR",
    "INDEX",
    "INT",
    "ISBLANK",
    "ISNUMBER",
    "LEFT",
    "LEN",
    "LOWER",
    "MATCH",
    "MAX",
    "MEDIAN",
    "MID",
    "MIN",
    "MOD",
    "MONTH",
    "NOT",
    "NOW",
    "OR",
    "PRODUCT",
    "RIGHT",
    "ROUND",
    "ROUNDDOWN",
    "ROUNDUP",
    "SUM",
    "SUMIF",
    "SUMIFS",
    "SUMPRODUCT",
    "TEXT",
    "TODAY",
    "TRIM",
    "UPPER",
    "VALUE",
    "VLOOKUP",
    "YEAR",
];

/// A cell style: the header's (by fill) or a number format, plain or bold.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Style {
    Header(u32),
    Number(String, bool),
}

/// The workbook-wide tables the sheets fill as they are written; the
/// strings are borrowed from the spec, which outlives them.
#[derive(Default)]
struct Tables<'a> {
    /// Styles in the order cells first use them; a cell's `s` is its index + 1.
    styles: Vec<Style>,
    style_index: HashMap<Style, u32>,
    /// Shared strings in the order cells first use them.
    strings: Vec<&'a str>,
    string_index: HashMap<&'a str, u32, BuildHasherDefault<FxHasher>>,
    string_count: u64,
}

impl<'a> Tables<'a> {
    fn style(&mut self, style: Style) -> u32 {
        match self.style_index.entry(style) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                self.styles.push(e.key().clone());
                *e.insert(self.styles.len() as u32)
            }
        }
    }

    fn number_style(&mut self, format: &str, bold: bool) -> u32 {
        // Found without allocating: the usual case, a format already seen.
        let key = Style::Number(format.to_owned(), bold);
        if let Some(&i) = self.style_index.get(&key) {
            return i;
        }
        self.style(key)
    }

    /// `s`'s index in the shared strings, added when it is new: one hash
    /// and no copy per cell (a sheet of 100,000 distinct names hashed
    /// each twice and copied each twice before).
    fn string(&mut self, s: &'a str) -> u32 {
        self.string_count += 1;
        let next = self.strings.len() as u32;
        match self.string_index.entry(s) {
            std::collections::hash_map::Entry::Occupied(e) => *e.get(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(next);
                self.strings.push(s);
                next
            }
        }
    }
}

/// The Firefox/rustc "Fx" hash: a multiply and a rotate per 8 bytes, much
/// cheaper than std's SipHash on short strings. It does not resist chosen
/// collisions; the strings are the caller's own spec, and a spec made to
/// collide only slows its own call, which the call's deadline bounds.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    /// The multiply mixes each word into the high bits only, and the table
    /// picks buckets by the low ones: rotated (as rustc-hash 2 does), names
    /// such as `item 12345` spread over the table. Unrotated, the bench's
    /// write was about 3% slower than with SipHash; rotated, 3% faster.
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}

/// One sheet row's cell as this path writes it.
enum Out<'a> {
    Number(f64, u32),
    /// A date's serial number and style: autofit counts it as 68 pixels.
    Date(f64, u32),
    Text(&'a str, u32),
    Bool(bool),
    /// Borrowed from the spec, or made here (a totals row's).
    Formula(Cow<'a, str>, u32),
}

/// The workbook as bytes, and each sheet's cell count; `None` when it is not plain.
pub(super) fn build(args: &WriteArgs) -> Option<(Vec<u8>, Vec<u64>)> {
    if args.sheets.iter().any(|s| !s.charts.is_empty() || s.print.is_some()) {
        return None;
    }
    let mut tables = Tables::default();
    let mut sheets = Vec::with_capacity(args.sheets.len());
    let mut counts = Vec::with_capacity(args.sheets.len());
    for (i, spec) in args.sheets.iter().enumerate() {
        let (xml, n) = sheet_xml(spec, i == 0, &mut tables)?;
        sheets.push(xml);
        counts.push(n);
    }
    // Big workbooks at deflate level 1, as rust_xlsxwriter's path saves them.
    // Level 2 was as fast natively and 27% smaller (9.4 -> 6.8 MB for the
    // bench's 100,000 x 10 sheet), but in the sandbox (no SIMD) it cost more.
    let level = (counts.iter().sum::<u64>() > 200_000).then_some(1);
    let skeleton = skeleton(args, &tables)?;
    let file = package(&skeleton, &sheets, &tables, level)?;
    Some((file, counts))
}

/// rust_xlsxwriter's workbook without the cells: its styles, workbook,
/// relationships, content types, theme and properties are the real file's.
fn skeleton(args: &WriteArgs, tables: &Tables) -> Option<Vec<u8>> {
    let mut workbook = Workbook::new();
    let mut formats = Formats::default();
    for (i, spec) in args.sheets.iter().enumerate() {
        let sheet = workbook.add_worksheet();
        sheet.set_name(&spec.name).ok()?;
        if i == 0 {
            for (row, style) in tables.styles.iter().enumerate() {
                let format = match style {
                    Style::Header(fill) => header_format(*fill),
                    Style::Number(f, bold) => formats.get(f, *bold).clone(),
                };
                sheet.write_number_with_format(row as u32, 0, 0.0, &format).ok()?;
            }
            if !tables.strings.is_empty() {
                sheet.write_string(0, 1, "s").ok()?;
            }
        }
        let has_header = !spec.header.is_empty();
        let width = sheet_width(spec);
        if spec.autofilter.unwrap_or(has_header) && width > 0 {
            let last = (u32::from(has_header) + spec.rows.len() as u32).saturating_sub(1);
            sheet.autofilter(0, 0, last, (width - 1) as u16).ok()?;
        }
    }
    workbook.save_to_buffer().ok()
}

fn header_format(fill: u32) -> Format {
    Format::new()
        .set_bold()
        .set_background_color(Color::RGB(fill))
        .set_border_bottom(FormatBorder::Thin)
}

fn sheet_width(spec: &SheetSpec) -> usize {
    spec.rows
        .iter()
        .map(Vec::len)
        .chain([spec.header.len()])
        .max()
        .unwrap_or(0)
}

/// The skeleton's entries, in its order, with its sheets and shared strings
/// replaced by the ones written here.
fn package(skeleton: &[u8], sheets: &[SheetXml], tables: &Tables, level: Option<i64>) -> Option<Vec<u8>> {
    let mut archive = zip::ZipArchive::new(Cursor::new(skeleton)).ok()?;
    let total: usize = sheets.iter().flatten().map(Vec::len).sum();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::with_capacity(total / 4)));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(level)
        .unix_permissions(0o600)
        .last_modified_time(zip::DateTime::default());
    let mut replaced = 0;
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).ok()?;
        let name = entry.name().ok()?.into_owned();
        let sheet = name
            .strip_prefix("xl/worksheets/sheet")
            .and_then(|rest| rest.strip_suffix(".xml"))
            .and_then(|n| n.parse::<usize>().ok());
        if let Some(n) = sheet {
            drop(entry);
            out.start_file(name, options).ok()?;
            for piece in sheets.get(n.checked_sub(1)?)? {
                out.write_all(piece).ok()?;
            }
            replaced += 1;
        } else if name == "xl/sharedStrings.xml" {
            drop(entry);
            out.start_file(name, options).ok()?;
            out.write_all(&shared_strings(tables)).ok()?;
        } else {
            out.raw_copy_file(entry).ok()?;
        }
    }
    (replaced == sheets.len()).then_some(())?;
    out.finish().ok().map(Cursor::into_inner)
}

fn shared_strings(tables: &Tables) -> Vec<u8> {
    let bytes: usize = tables.strings.iter().map(|s| s.len() + 16).sum();
    let mut x = Vec::with_capacity(bytes + 200);
    x.extend_from_slice(
        b"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<sst xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" count=\"",
    );
    push_u64(&mut x, tables.string_count);
    x.extend_from_slice(b"\" uniqueCount=\"");
    push_u64(&mut x, tables.strings.len() as u64);
    x.extend_from_slice(b"\">");
    for s in &tables.strings {
        let ws = |b: Option<&u8>| matches!(b, Some(b'\t' | b'\n' | b' '));
        if ws(s.as_bytes().first()) || ws(s.as_bytes().last()) {
            x.extend_from_slice(b"<si><t xml:space=\"preserve\">");
        } else {
            x.extend_from_slice(b"<si><t>");
        }
        push_escaped(&mut x, s);
        x.extend_from_slice(b"</t></si>");
    }
    x.extend_from_slice(b"</sst>");
    x
}

/// A sheet's XML in three pieces: what comes before its rows, the rows,
/// and what follows. Kept apart, the rows (38 MB for 100,000 x 10 cells)
/// go to deflate where they were written, not copied into one buffer first.
type SheetXml = [Vec<u8>; 3];

/// One sheet's XML and its cell count; `None` when it is not plain.
fn sheet_xml<'a>(spec: &'a SheetSpec, selected: bool, tables: &mut Tables<'a>) -> Option<(SheetXml, u64)> {
    let has_header = !spec.header.is_empty();
    let first_data_row = usize::from(has_header);
    let width = sheet_width(spec);
    let total_rows = spec.rows.len() + first_data_row + usize::from(spec.totals.is_some());
    if width == 0 || width > 16_384 || total_rows > 1_048_576 || spec.header.iter().any(|h| !plain_text(h)) {
        return None;
    }
    let column_format =
        |col: usize| -> Option<&str> { spec.columns.get(col)?.as_ref().and_then(|c| c.format.as_deref()) };
    let letters: Vec<Vec<u8>> = (0..width.max(16)).map(|c| column_name(c as u16).into_bytes()).collect();

    let mut autofit = vec![0u32; letters.len()];
    let mut last_format: Vec<Option<String>> = vec![None; width];
    let mut cells = 0u64;
    let (mut first_col, mut last_col) = (usize::MAX, 0usize);
    let mut last_row = 0usize;
    let mut first_row = usize::MAX;
    let mut data = Vec::with_capacity(spec.rows.len() * width * 40 + 1024);
    // Rows are written a block of 16 at a time: each row names its block's column span.
    let mut block: Vec<(usize, Vec<(usize, Out<'_>)>)> = Vec::new();

    let header_style = if has_header {
        let fill = match &spec.header_fill {
            Some(s) => parse_fill(s)?,
            None => DEFAULT_HEADER_FILL,
        };
        Some(tables.style(Style::Header(fill)))
    } else {
        None
    };

    let mut pending: Vec<(usize, Vec<(usize, Out<'_>)>)> = Vec::new();
    if let Some(style) = header_style {
        let row: Vec<(usize, Out<'_>)> = spec
            .header
            .iter()
            .enumerate()
            .map(|(c, h)| (c, Out::Text(h, style)))
            .collect();
        pending.push((0, row));
    }
    for (r, row) in pending.drain(..) {
        note_row(
            r,
            &row,
            &mut autofit,
            &mut first_row,
            &mut last_row,
            &mut first_col,
            &mut last_col,
        );
        cells += row.len() as u64;
        emit(r, row, &mut block, &letters, &mut data, tables);
    }

    for (i, row) in spec.rows.iter().enumerate() {
        let r = first_data_row + i;
        let mut out_row = Vec::with_capacity(row.len());
        for (col, value) in row.iter().enumerate() {
            let cell = parse_cell(value).ok()?;
            let out = match cell {
                Cell::Empty => continue,
                Cell::Text(s) => {
                    if !plain_text(s) {
                        return None;
                    }
                    Out::Text(s, 0)
                }
                Cell::Bool(b) => Out::Bool(b),
                Cell::Number(n, f) => match f.or(column_format(col)) {
                    None => Out::Number(n, 0),
                    Some(f) => {
                        note_format(&mut last_format[col], f);
                        Out::Number(n, tables.number_style(f, false))
                    }
                },
                Cell::Currency(n, code, f) => {
                    let f = match f.or(column_format(col)) {
                        Some(f) => f.to_owned(),
                        None => super::currency_format(code),
                    };
                    note_format(&mut last_format[col], &f);
                    Out::Number(n, tables.number_style(&f, false))
                }
                Cell::Date(d, f) => {
                    let f = f.or(column_format(col)).unwrap_or(if d.time.is_some() {
                        "yyyy-mm-dd hh:mm"
                    } else {
                        "yyyy-mm-dd"
                    });
                    let (h, m, s) = d.time.unwrap_or((0, 0, 0));
                    let serial = ExcelDateTime::from_ymd(d.year, d.month, d.day)
                        .and_then(|dt| dt.and_hms(u16::from(h), m, s))
                        .ok()?
                        .to_excel();
                    Out::Date(serial, tables.number_style(f, false))
                }
                Cell::Formula(text, f) => {
                    let text = plain_formula(text)?;
                    match f.or(column_format(col)) {
                        None => Out::Formula(Cow::Borrowed(text), 0),
                        Some(f) => {
                            note_format(&mut last_format[col], f);
                            Out::Formula(Cow::Borrowed(text), tables.number_style(f, false))
                        }
                    }
                }
            };
            out_row.push((col, out));
        }
        note_row(
            r,
            &out_row,
            &mut autofit,
            &mut first_row,
            &mut last_row,
            &mut first_col,
            &mut last_col,
        );
        cells += out_row.len() as u64;
        emit(r, out_row, &mut block, &letters, &mut data, tables);
        if cfg!(target_family = "wasm") && i % 50_000 == 49_999 {
            deskhand_guest::progress(i as u64 + 1, Some(spec.rows.len() as u64), "writing rows");
        }
    }
    let last_data_row = first_data_row + spec.rows.len();

    if let Some(totals) = &spec.totals {
        let r = last_data_row;
        let bold = tables.number_style("General", true);
        let mut total_cols = Vec::new();
        for letters in &totals.columns {
            total_cols.push(usize::from(parse_column(letters)?));
        }
        let mut label_col = 0usize;
        while total_cols.contains(&label_col) {
            label_col += 1;
        }
        if !plain_text(&totals.label) || label_col >= 16_384 {
            return None;
        }
        let mut row = vec![(label_col, Out::Text(&totals.label, bold))];
        // Totals formulas are made here.
        let mut formulas = Vec::new();
        for &col in &total_cols {
            let name = column_name(col as u16);
            let formula = if spec.rows.is_empty() {
                "0".to_owned()
            } else {
                format!(
                    "{}({name}{}:{name}{})",
                    totals.function.name(),
                    first_data_row + 1,
                    last_data_row
                )
            };
            let format = last_format
                .get(col)
                .cloned()
                .flatten()
                .or_else(|| column_format(col).map(str::to_owned))
                .unwrap_or_else(|| "General".to_owned());
            formulas.push((col, formula, tables.number_style(&format, true)));
        }
        // Sorted by column, as rust_xlsxwriter writes a row; a column listed twice is written once.
        let mut by_col: std::collections::BTreeMap<usize, (String, u32)> = std::collections::BTreeMap::new();
        for (col, formula, style) in formulas {
            by_col.insert(col, (formula, style));
        }
        let mut merged: std::collections::BTreeMap<usize, Out<'_>> = std::collections::BTreeMap::new();
        for (col, out) in row.drain(..) {
            merged.insert(col, out);
        }
        for (col, (f, s)) in by_col {
            merged.insert(col, Out::Formula(Cow::Owned(f), s));
        }
        let row: Vec<(usize, Out<'_>)> = merged.into_iter().collect();
        if row.iter().any(|(c, _)| *c >= letters.len()) {
            return None;
        }
        note_row(
            r,
            &row,
            &mut autofit,
            &mut first_row,
            &mut last_row,
            &mut first_col,
            &mut last_col,
        );
        // rust_xlsxwriter counts the label and each listed column.
        cells += total_cols.len() as u64 + 1;
        emit(r, row, &mut block, &letters, &mut data, tables);
        flush_block(&mut block, &letters, &mut data, tables);
    } else {
        flush_block(&mut block, &letters, &mut data, tables);
    }
    if first_row == usize::MAX {
        return None;
    }

    // Columns: autofit, then the widths asked for.
    let mut cols: Vec<(u32, bool)> = vec![(0, false); autofit.len().max(spec.columns.len())];
    let mut set = vec![false; cols.len()];
    for (c, &px) in autofit.iter().enumerate() {
        if px > 0 {
            cols[c] = (px.min(MAX_AUTOFIT_PIXELS), true);
            set[c] = true;
        }
    }
    for (c, spec_col) in spec.columns.iter().enumerate() {
        if let Some(width) = spec_col.as_ref().and_then(|c| c.width) {
            cols[c] = (width_to_pixels(width).min(MAX_AUTOFIT_PIXELS), false);
            set[c] = true;
        }
    }

    let mut x = Vec::with_capacity(2048);
    x.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"><dimension ref=\"");
    push_range(&mut x, first_row, first_col, last_row, last_col);
    x.extend_from_slice(b"\"/><sheetViews><sheetView ");
    if selected {
        x.extend_from_slice(b"tabSelected=\"1\" ");
    }
    x.extend_from_slice(b"workbookViewId=\"0\"");
    let (freeze_rows, freeze_cols) = match &spec.freeze {
        Some(f) => (f.rows as usize, usize::from(f.cols)),
        None => (usize::from(has_header), 0),
    };
    if freeze_rows >= 1_048_576 || freeze_cols >= 16_384 {
        return None;
    }
    if freeze_rows == 0 && freeze_cols == 0 {
        x.extend_from_slice(b"/>");
    } else {
        x.extend_from_slice(b"><pane ");
        if freeze_cols > 0 {
            x.extend_from_slice(b"xSplit=\"");
            push_u64(&mut x, freeze_cols as u64);
            x.extend_from_slice(b"\" ");
        }
        if freeze_rows > 0 {
            x.extend_from_slice(b"ySplit=\"");
            push_u64(&mut x, freeze_rows as u64);
            x.extend_from_slice(b"\" ");
        }
        x.extend_from_slice(b"topLeftCell=\"");
        push_cell(&mut x, freeze_rows, freeze_cols);
        let pane: &[u8] = if freeze_rows > 0 && freeze_cols > 0 {
            b"bottomRight"
        } else if freeze_cols > 0 {
            b"topRight"
        } else {
            b"bottomLeft"
        };
        x.extend_from_slice(b"\" activePane=\"");
        x.extend_from_slice(pane);
        x.extend_from_slice(b"\" state=\"frozen\"/>");
        if freeze_rows > 0 && freeze_cols > 0 {
            for (pane, r, c) in [(&b"topRight"[..], 0, freeze_cols), (&b"bottomLeft"[..], freeze_rows, 0)] {
                x.extend_from_slice(b"<selection pane=\"");
                x.extend_from_slice(pane);
                x.extend_from_slice(b"\" activeCell=\"");
                push_cell(&mut x, r, c);
                x.extend_from_slice(b"\" sqref=\"");
                push_cell(&mut x, r, c);
                x.extend_from_slice(b"\"/>");
            }
        }
        x.extend_from_slice(b"<selection pane=\"");
        x.extend_from_slice(pane);
        x.extend_from_slice(b"\"/></sheetView>");
    }
    x.extend_from_slice(b"</sheetViews><sheetFormatPr defaultRowHeight=\"15\"/>");
    if set.iter().any(|&s| s) {
        x.extend_from_slice(b"<cols>");
        let mut c = 0;
        while c < cols.len() {
            if !set[c] {
                c += 1;
                continue;
            }
            let mut end = c;
            while end + 1 < cols.len() && set[end + 1] && cols[end + 1] == cols[c] {
                end += 1;
            }
            let (px, fit) = cols[c];
            x.extend_from_slice(b"<col min=\"");
            push_u64(&mut x, c as u64 + 1);
            x.extend_from_slice(b"\" max=\"");
            push_u64(&mut x, end as u64 + 1);
            x.extend_from_slice(b"\" width=\"");
            let chars = f64::from(px * 256 / MAX_DIGIT_PIXELS) / 256.0;
            x.extend_from_slice(chars.to_string().as_bytes());
            x.extend_from_slice(b"\"");
            if fit {
                x.extend_from_slice(b" bestFit=\"1\"");
            }
            if px != DEFAULT_COL_PIXELS {
                x.extend_from_slice(b" customWidth=\"1\"");
            }
            x.extend_from_slice(b"/>");
            c = end + 1;
        }
        x.extend_from_slice(b"</cols>");
    }
    x.extend_from_slice(b"<sheetData>");
    let mut tail = Vec::with_capacity(256);
    tail.extend_from_slice(b"</sheetData>");
    if spec.autofilter.unwrap_or(has_header) {
        tail.extend_from_slice(b"<autoFilter ref=\"");
        push_range(&mut tail, 0, 0, last_data_row.saturating_sub(1), width - 1);
        tail.extend_from_slice(b"\"/>");
    }
    tail.extend_from_slice(b"<pageMargins left=\"0.7\" right=\"0.7\" top=\"0.75\" bottom=\"0.75\" header=\"0.3\" footer=\"0.3\"/></worksheet>");
    Some(([x, data, tail], cells))
}

/// Adds a row to its 16-row block, and writes the block when it is full.
fn emit<'a>(
    r: usize,
    row: Vec<(usize, Out<'a>)>,
    block: &mut Vec<(usize, Vec<(usize, Out<'a>)>)>,
    letters: &[Vec<u8>],
    data: &mut Vec<u8>,
    tables: &mut Tables<'a>,
) {
    if !row.is_empty() {
        block.push((r, row));
    }
    if (r + 1).is_multiple_of(16) {
        flush_block(block, letters, data, tables);
    }
}

fn note_format(last: &mut Option<String>, format: &str) {
    if last.as_deref() != Some(format) {
        *last = Some(format.to_owned());
    }
}

/// Grows the sheet's dimension and each column's autofit width by one row.
fn note_row(
    r: usize,
    row: &[(usize, Out<'_>)],
    autofit: &mut [u32],
    first_row: &mut usize,
    last_row: &mut usize,
    first_col: &mut usize,
    last_col: &mut usize,
) {
    let (Some((lo, _)), Some((hi, _))) = (row.first(), row.last()) else {
        return;
    };
    *first_row = (*first_row).min(r);
    *last_row = (*last_row).max(r);
    *first_col = (*first_col).min(*lo);
    *last_col = (*last_col).max(*hi);
    for (c, out) in row {
        let px = match out {
            Out::Text(s, _) => s.lines().map(pixel_width).max().unwrap_or(0),
            Out::Number(n, _) => 7 * display_len(*n),
            Out::Date(..) => 68,
            Out::Bool(true) => 31,
            Out::Bool(false) => 36,
            Out::Formula(..) => 0,
        };
        if px > 0
            && let Some(w) = autofit.get_mut(*c)
        {
            *w = (*w).max((px + 7).min(MAX_AUTOFIT_PIXELS));
        }
    }
}

/// The length of `n`'s `Display` text (rust_xlsxwriter's autofit measure),
/// from ryu's shortest text where it can: the same digits, with `.0` for
/// whole numbers and an exponent for very large and small ones.
fn display_len(n: f64) -> u32 {
    if let Some(len) = crate::number_text::whole_display_len(n) {
        return len;
    }
    let mut buffer = ryu::Buffer::new();
    let s = buffer.format_finite(n);
    if s.contains('e') {
        n.to_string().len() as u32
    } else if let Some(whole) = s.strip_suffix(".0") {
        whole.len() as u32
    } else {
        s.len() as u32
    }
}

/// rust_xlsxwriter's Calibri 11 character widths, in pixels.
fn pixel_width(s: &str) -> u32 {
    if s.chars().count() > 233 {
        return MAX_AUTOFIT_PIXELS;
    }
    let mut length = 0;
    for ch in s.chars() {
        length += match ch {
            ' ' | '\'' => 3,
            ',' | '.' | ':' | ';' | 'I' | '`' | 'i' | 'j' | 'l' => 4,
            '!' | '(' | ')' | '-' | 'J' | '[' | ']' | 'f' | 'r' | 't' | '{' | '}' => 5,
            '"' | '/' | 'L' | '\\' | 'c' | 's' | 'z' => 6,
            '#'
            | '$'
            | '*'
            | '+'
            | '0'..='9'
            | '<'
            | '='
            | '>'
            | '?'
            | 'E'
            | 'F'
            | 'S'
            | 'T'
            | 'Y'
            | 'Z'
            | '^'
            | '_'
            | 'a'
            | 'g'
            | 'k'
            | 'v'
            | 'x'
            | 'y'
            | '|'
            | '~' => 7,
            'B' | 'C' | 'K' | 'P' | 'R' | 'X' | 'b' | 'd' | 'e' | 'h' | 'n' | 'o' | 'p' | 'q' | 'u' => 8,
            'A' | 'D' | 'G' | 'H' | 'U' | 'V' => 9,
            '&' | 'N' | 'O' | 'Q' => 10,
            '%' | 'w' => 11,
            'M' | 'm' => 12,
            '@' | 'W' => 13,
            _ => 8,
        };
    }
    length.min(MAX_AUTOFIT_PIXELS)
}

/// A width in characters as rust_xlsxwriter stores it, in pixels.
fn width_to_pixels(width: f64) -> u32 {
    if width == 0.0 {
        0
    } else if width < 1.0 {
        (width * f64::from(MAX_DIGIT_PIXELS + CELL_PADDING)).round() as u32
    } else {
        (width * f64::from(MAX_DIGIT_PIXELS)).round() as u32 + CELL_PADDING
    }
}

/// Writes the rows of a 16-row block, each with the block's column span.
fn flush_block<'a>(
    block: &mut Vec<(usize, Vec<(usize, Out<'a>)>)>,
    letters: &[Vec<u8>],
    x: &mut Vec<u8>,
    tables: &mut Tables<'a>,
) {
    let (Some(lo), Some(hi)) = (
        block.iter().filter_map(|(_, r)| r.first().map(|c| c.0)).min(),
        block.iter().filter_map(|(_, r)| r.last().map(|c| c.0)).max(),
    ) else {
        block.clear();
        return;
    };
    let mut span = Vec::with_capacity(16);
    span.extend_from_slice(b" spans=\"");
    push_u64(&mut span, lo as u64 + 1);
    span.push(b':');
    push_u64(&mut span, hi as u64 + 1);
    span.extend_from_slice(b"\">");
    let mut ryu = ryu::Buffer::new();
    for (r, row) in block.drain(..) {
        let mut number = [0u8; 10];
        let row_text = u64_text(r as u64 + 1, &mut number);
        x.extend_from_slice(b"<row r=\"");
        x.extend_from_slice(row_text);
        x.push(b'"');
        x.extend_from_slice(&span);
        for (c, out) in row {
            x.extend_from_slice(b"<c r=\"");
            x.extend_from_slice(&letters[c]);
            x.extend_from_slice(row_text);
            x.push(b'"');
            let style = match out {
                Out::Number(_, s) | Out::Date(_, s) | Out::Text(_, s) | Out::Formula(_, s) => s,
                Out::Bool(_) => 0,
            };
            if style > 0 {
                x.extend_from_slice(b" s=\"");
                push_u64(x, u64::from(style));
                x.push(b'"');
            }
            match out {
                Out::Number(n, _) | Out::Date(n, _) => {
                    x.extend_from_slice(b"><v>");
                    if !crate::number_text::push_whole(x, n) {
                        x.extend_from_slice(ryu.format_finite(n).as_bytes());
                    }
                    x.extend_from_slice(b"</v></c>");
                }
                Out::Text(s, _) => {
                    let i = tables.string(s);
                    x.extend_from_slice(b" t=\"s\"><v>");
                    push_u64(x, u64::from(i));
                    x.extend_from_slice(b"</v></c>");
                }
                Out::Bool(b) => {
                    x.extend_from_slice(if b {
                        b" t=\"b\"><v>1</v></c>"
                    } else {
                        b" t=\"b\"><v>0</v></c>"
                    });
                }
                Out::Formula(f, _) => {
                    x.extend_from_slice(b"><f>");
                    push_escaped(x, &f);
                    x.extend_from_slice(b"</f><v>0</v></c>");
                }
            }
        }
        x.extend_from_slice(b"</row>");
    }
}

/// Text rust_xlsxwriter writes as it is, but for `&`, `<` and `>`: no
/// control characters, no `_xHHHH_`-like escapes, not a rich string, not
/// empty, and within Excel's length.
fn plain_text(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_STRING_BYTES
        && !s.contains("_x")
        && (!s.starts_with("<r>") || !s.ends_with("</r>"))
        && s.bytes().all(|b| b >= 0x20 || b == b'\t' || b == b'\n')
}

/// The formula as rust_xlsxwriter writes it (the leading `=` dropped), when
/// every function it names is a classic one.
fn plain_formula(formula: &str) -> Option<&str> {
    let f = formula.strip_prefix('=').unwrap_or(formula);
    if f.starts_with('{') || f.ends_with('}') || f.starts_with('=') || !plain_text(f) || f.contains("_xl") {
        return None;
    }
    let bytes = f.as_bytes();
    let mut in_string = false;
    let mut start = None;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'"' {
            in_string = !in_string;
            start = None;
            continue;
        }
        if in_string {
            continue;
        }
        let function_char = b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'.';
        match start {
            Some(s) if !function_char => {
                if b == b'(' && !CLASSIC_FUNCTIONS.contains(&&f[s..i]) {
                    return None;
                }
                start = None;
            }
            None if function_char => start = Some(i),
            _ => {}
        }
        // A lower-case function name reaches Excel as written; only upper case is classified.
        if b == b'(' && i > 0 && bytes[i - 1].is_ascii_lowercase() {
            return None;
        }
    }
    Some(f)
}

fn push_escaped(x: &mut Vec<u8>, s: &str) {
    let mut from = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            _ => continue,
        };
        x.extend_from_slice(&s.as_bytes()[from..i]);
        x.extend_from_slice(esc);
        from = i + 1;
    }
    x.extend_from_slice(&s.as_bytes()[from..]);
}

fn u64_text(mut n: u64, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    &buf[i..]
}

fn push_u64(x: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    x.extend_from_slice(&buf[i..]);
}

fn column_name(col: u16) -> String {
    super::column_letters(col)
}

fn push_cell(x: &mut Vec<u8>, row: usize, col: usize) {
    x.extend_from_slice(column_name(col as u16).as_bytes());
    push_u64(x, row as u64 + 1);
}

fn push_range(x: &mut Vec<u8>, r1: usize, c1: usize, r2: usize, c2: usize) {
    push_cell(x, r1, c1);
    if (r1, c1) != (r2, c2) {
        x.push(b':');
        push_cell(x, r2, c2);
    }
}

/// Reads the entry `name` of a zip, for the tests.
#[cfg(test)]
pub(super) fn entry(file: &[u8], name: &str) -> Option<Vec<u8>> {
    let mut archive = zip::ZipArchive::new(Cursor::new(file)).ok()?;
    let mut e = archive.by_name(name).ok()?;
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut e, &mut out).ok()?;
    Some(out)
}
