//! A one-pass reader for the plain xlsx sheets most workbooks hold, some
//! three to four times cheaper per cell than calamine's streaming reader
//! (whose XML events cost some 5,000 instructions a cell): the sheet part
//! is inflated once and scanned as bytes, shared strings are read once, and
//! each cell comes out as calamine's reading would give it.
//!
//! It reads only what it knows gives the same result: plain `<row>`s of
//! `<c r s t>` cells with an optional attribute-less `<f>` and a `<v>`,
//! number, shared-string and boolean cells, shared strings of one plain
//! `<t>`. Anything else (inline or rich strings, shared or array formulas,
//! error or date-typed cells, entities it does not know, `_xHHHH_` escapes,
//! carriage returns, comments, prefixed names, ...) makes it give up; the
//! caller throws away what it gave and calamine reads the sheet.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Cursor, Read};

use calamine::{DataRef, ExcelDateTime, ExcelDateTimeType, Style};

/// How a number cell's style shows it: calamine's `CellFormat`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shown {
    Number,
    DateTime,
    Duration,
}

/// The workbook-wide parts the fast path needs.
pub(crate) struct Book {
    strings: Strings,
    /// Sheet name -> its part's path in the zip and inflated size.
    parts: HashMap<String, (String, u64)>,
}

/// One cell as read: where, its style, its formula and its value.
pub(crate) struct Cell<'a> {
    pub row: u32,
    pub col: u32,
    pub style: usize,
    pub formula: Option<Cow<'a, str>>,
    pub value: DataRef<'a>,
}

fn part(archive: &mut zip::ZipArchive<Cursor<&[u8]>>, name: &str, cap: u64) -> Option<Vec<u8>> {
    let entry = archive.by_name(name).ok()?;
    if entry.size() > cap {
        return None;
    }
    let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).ok()?);
    entry.take(cap + 1).read_to_end(&mut bytes).ok()?;
    (bytes.len() as u64 <= cap).then_some(bytes)
}

impl Book {
    /// The shared strings and sheet parts, when they are plain enough.
    pub(crate) fn open(bytes: &[u8], cap: u64) -> Option<Book> {
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
        let root = part(&mut archive, "_rels/.rels", cap)?;
        let root = std::str::from_utf8(&root).ok()?;
        if !root.contains("Target=\"xl/workbook.xml\"") && !root.contains("Target=\"/xl/workbook.xml\"") {
            return None;
        }
        let workbook = part(&mut archive, "xl/workbook.xml", cap)?;
        let rels = part(&mut archive, "xl/_rels/workbook.xml.rels", cap)?;
        let (workbook, rels) = (std::str::from_utf8(&workbook).ok()?, std::str::from_utf8(&rels).ok()?);
        let mut targets = HashMap::new();
        for tag in tags(rels, "Relationship") {
            let attrs = attributes(tag)?;
            let (id, target) = (get(&attrs, "Id")?, get(&attrs, "Target")?);
            if target.contains("..") || target.contains('&') {
                continue;
            }
            let path = match target.strip_prefix('/') {
                Some(absolute) => absolute.to_owned(),
                None => format!("xl/{target}"),
            };
            targets.insert(id.to_owned(), path);
        }
        let mut parts = HashMap::new();
        for tag in tags(workbook, "sheet") {
            let attrs = attributes(tag)?;
            let name = unescape(get(&attrs, "name")?)?;
            if let Some(path) = get(&attrs, "r:id").and_then(|id| targets.get(id))
                && let Ok(entry) = archive.by_name_raw(path.as_bytes())
            {
                parts.insert(name, (path.clone(), entry.size()));
            }
        }
        let strings = match archive.index_for_name(SHARED_STRINGS) {
            None => Strings::default(),
            Some(_) => shared_strings(simdutf8::basic::from_utf8(&part(&mut archive, SHARED_STRINGS, cap)?).ok()?)?,
        };
        Some(Book { strings, parts })
    }

    /// The inflated size of sheet `name`'s part, when the fast path knows it.
    pub(crate) fn part_size(&self, name: &str) -> Option<u64> {
        self.parts.get(name).map(|(_, size)| *size)
    }

    /// Every cell of sheet `name`, in the order of the file, to `each`
    /// (which says whether to go on); `None` when the sheet is not plain
    /// enough, maybe after some cells went to `each`: the caller throws
    /// those away and reads the sheet with calamine.
    pub(crate) fn cells<E>(
        &self,
        bytes: &[u8],
        name: &str,
        styles: &[Style],
        is_1904: bool,
        cap: u64,
        mut each: impl FnMut(Cell<'_>) -> Result<bool, E>,
    ) -> Option<Result<(), E>> {
        let (path, _) = self.parts.get(name)?;
        let formats = formats(styles)?;
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
        let xml = part(&mut archive, path, cap)?;
        let xml = simdutf8::basic::from_utf8(&xml).ok()?;
        let start = xml.find("<sheetData>")?;
        // calamine refuses a `<dimension>` without a plain `ref`.
        for tag in tags(&xml[..start], "dimension") {
            let attrs = attributes(tag)?;
            let range = get(&attrs, "ref")?;
            let (a, b) = range.split_once(':').unwrap_or((range, range));
            cell_ref(a)?;
            cell_ref(b)?;
        }
        let start = start + "<sheetData>".len();
        let end = start + xml[start..].find("</sheetData>")?;
        scan(&xml[start..end], &self.strings, &formats, is_1904, &mut each)
    }
}

/// The shared strings part, by the name [`Book::open`] reads it under.
const SHARED_STRINGS: &str = "xl/sharedStrings.xml";

/// A copy of the workbook in which calamine finds no shared strings part:
/// the part's name is changed (one byte, in its local and its central
/// header). When [`Book::open`] has read the strings, calamine opening the
/// workbook only for its sheet list, styles and epoch would parse them a
/// second time: some 10% of reading the bench's sheet of 100,000 distinct
/// names. `None` when there is no such part or its headers are not where
/// the zip says; a sheet the fast path gives up on needs calamine to open
/// the workbook itself.
pub(crate) fn without_shared_strings(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
    let entry = archive.by_name_raw(SHARED_STRINGS.as_bytes()).ok()?;
    let local = usize::try_from(entry.header_start()).ok()?;
    let central = usize::try_from(entry.central_header_start()).ok()?;
    drop(entry);
    let name = SHARED_STRINGS.as_bytes();
    // A local header is 30 bytes before its name, a central one 46.
    let at = [local + 30, central + 46];
    for &start in &at {
        if bytes.get(start..start + name.len())? != name {
            return None;
        }
    }
    let mut copy = bytes.to_vec();
    for start in at {
        copy[start + name.len() - 1] = b'~';
    }
    Some(copy)
}

/// The `<name ...>` start tags in `xml` (their text after the name).
fn tags<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}");
    xml.match_indices(open.as_str())
        .filter_map(|(i, _)| {
            let rest = &xml[i + open.len()..];
            if !rest.starts_with([' ', '\t', '\r', '\n', '/', '>']) {
                return None;
            }
            rest.find('>').map(|e| &rest[..e])
        })
        .collect()
}

/// A tag's attributes (raw values), one by one to `each`; `None` when
/// they are not plain or `each` says so.
fn each_attribute<'a>(tag: &'a str, mut each: impl FnMut(&'a str, &'a str) -> Option<()>) -> Option<()> {
    let bytes = tag.as_bytes();
    let end = bytes.len() - usize::from(bytes.last() == Some(&b'/'));
    let is_ws = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let mut i = 0;
    loop {
        while i < end && is_ws(bytes[i]) {
            i += 1;
        }
        if i == end {
            return Some(());
        }
        let key_start = i;
        while i < end && bytes[i] != b'=' && !is_ws(bytes[i]) {
            i += 1;
        }
        let key_end = i;
        while i < end && is_ws(bytes[i]) {
            i += 1;
        }
        if key_end == key_start || i == end || bytes[i] != b'=' {
            return None;
        }
        i += 1;
        while i < end && is_ws(bytes[i]) {
            i += 1;
        }
        let quote = *bytes.get(i).filter(|q| i < end && (**q == b'"' || **q == b'\''))?;
        let value_start = i + 1;
        let close = value_start + bytes.get(value_start..end)?.iter().position(|&b| b == quote)?;
        // Every bound sits at an ASCII byte: a char boundary.
        each(&tag[key_start..key_end], &tag[value_start..close])?;
        i = close + 1;
        if i < end && !is_ws(bytes[i]) {
            return None;
        }
    }
}

/// A tag's attributes, or `None` when they are not plain or one is given twice.
fn attributes(tag: &str) -> Option<Vec<(&str, &str)>> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    each_attribute(tag, |key, value| {
        if out.iter().any(|(k, _)| *k == key) {
            return None;
        }
        out.push((key, value));
        Some(())
    })?;
    Some(out)
}

fn get<'a>(attrs: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// The `r`, `s` and `t` attributes of a row or cell (each at most once),
/// or `None` when the tag is not plain or a value holds an entity.
fn cell_attributes(tag: &str) -> Option<[Option<&str>; 3]> {
    let mut found = [None; 3];
    each_attribute(tag, |key, value| {
        if value.bytes().any(|b| b == b'&') {
            return None;
        }
        let slot = match key {
            "r" => 0,
            "s" => 1,
            "t" => 2,
            _ => return Some(()),
        };
        if found[slot].replace(value).is_some() {
            return None;
        }
        Some(())
    })?;
    Some(found)
}

/// Where `byte` (ASCII) first is in `s`: a plain loop, quicker than a
/// `char` search over the few bytes a tag holds.
fn byte_at(s: &str, byte: u8) -> Option<usize> {
    s.bytes().position(|b| b == byte)
}

/// `s` after its leading XML white space.
fn skip_ws(s: &str) -> &str {
    let n = s
        .bytes()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .count();
    &s[n..]
}

/// Text with XML's five named entities resolved; `None` for any other `&`.
fn unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    unescape_into(&mut out, text)?;
    Some(out)
}

/// [`unescape`], at the end of `out`.
fn unescape_into(out: &mut String, text: &str) -> Option<()> {
    if !text.contains('&') {
        out.push_str(text);
        return Some(());
    }
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let (ch, len) = [
            ("&amp;", '&'),
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&quot;", '"'),
            ("&apos;", '\''),
        ]
        .iter()
        .find(|(e, _)| after.starts_with(e))
        .map(|(e, c)| (*c, e.len()))?;
        out.push(ch);
        rest = &after[len..];
    }
    out.push_str(rest);
    Some(())
}

/// The shared strings, all in one buffer: one allocation, not one per
/// string (100,000 of them in the bench's sheet).
#[derive(Default)]
struct Strings {
    text: String,
    /// Where each string ends in `text`; it starts where the one before ends.
    ends: Vec<usize>,
}

impl Strings {
    fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start..end)
    }
}

/// The shared strings, when each is one plain `<t>`.
fn shared_strings(xml: &str) -> Option<Strings> {
    let start = xml.find("<sst")?;
    let open_end = start + xml[start..].find('>')?;
    if xml[..open_end].ends_with('/') {
        return None;
    }
    let end = xml.rfind("</sst>")?;
    let mut rest = xml.get(open_end + 1..end)?;
    let mut strings = Strings {
        text: String::with_capacity(rest.len() / 2),
        ends: Vec::new(),
    };
    loop {
        rest = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        if rest.is_empty() {
            return Some(strings);
        }
        let (preserve, body) = if let Some(r) = rest.strip_prefix("<si><t>") {
            (false, r)
        } else if let Some(r) = rest.strip_prefix("<si><t xml:space=\"preserve\">") {
            (true, r)
        } else {
            return None;
        };
        let close = body.find("</t></si>")?;
        let text = &body[..close];
        if text.contains(['<', '\r']) || text.contains("_x") {
            return None;
        }
        // Trimmed before the entities are resolved: none of them is white space.
        let text = if preserve {
            text
        } else {
            text.trim_matches([' ', '\t', '\r', '\n'])
        };
        unescape_into(&mut strings.text, text)?;
        strings.ends.push(strings.text.len());
        rest = &body[close + "</t></si>".len()..];
    }
}

/// How each style shows a number, as calamine decides it; `None` when the
/// styles do not say which of its two rules calamine used.
fn formats(styles: &[Style]) -> Option<Vec<Shown>> {
    styles
        .iter()
        .map(|style| {
            let Some(format) = &style.number_format else {
                return Some(Shown::Number);
            };
            let id = format.format_id?;
            let custom = custom_format(&format.format_code);
            // A built-in id's code, or "General" for one with none, may also be
            // a custom format's: both readings must agree.
            let builtin_code = builtin_code(id).unwrap_or("General");
            if format.format_code == builtin_code && builtin_format(id) != custom {
                return None;
            }
            Some(custom)
        })
        .collect()
}

/// calamine's `detect_custom_number_format` (MIT, Johann Tuffe).
fn custom_format(format: &str) -> Shown {
    let mut escaped = false;
    let mut is_quote = false;
    let mut brackets = 0u8;
    let mut prev = ' ';
    let mut hms = false;
    let mut ap = false;
    for s in format.chars() {
        match (s, escaped, is_quote, ap, brackets) {
            (_, true, ..) => escaped = false,
            ('_' | '\\' | '*', ..) => escaped = true,
            ('"', _, true, _, _) => is_quote = false,
            (_, _, true, _, _) => (),
            ('"', _, _, _, _) => is_quote = true,
            (';', ..) => return Shown::Number,
            ('[', ..) => brackets += 1,
            (']', .., 1) if hms => return Shown::Duration,
            (']', ..) => brackets = brackets.saturating_sub(1),
            ('a' | 'A', _, _, false, 0) => ap = true,
            ('p' | 'm' | '/' | 'P' | 'M', _, _, true, 0) => return Shown::DateTime,
            ('d' | 'm' | 'h' | 'y' | 's' | 'D' | 'M' | 'H' | 'Y' | 'S', _, _, false, 0) => return Shown::DateTime,
            _ => {
                if !(hms && s.eq_ignore_ascii_case(&prev)) {
                    hms = prev == '[' && matches!(s, 'm' | 'h' | 's' | 'M' | 'H' | 'S');
                }
            }
        }
        prev = s;
    }
    Shown::Number
}

/// calamine's `builtin_format_by_id`.
fn builtin_format(id: u32) -> Shown {
    match id {
        14..=22 | 45 | 47 | 27..=36 | 50..=58 => Shown::DateTime,
        46 => Shown::Duration,
        _ => Shown::Number,
    }
}

/// calamine's `builtin_format_code_by_id` (ECMA-376 18.8.30).
fn builtin_code(id: u32) -> Option<&'static str> {
    Some(match id {
        0 => "General",
        1 => "0",
        2 => "0.00",
        3 => "#,##0",
        4 => "#,##0.00",
        9 => "0%",
        10 => "0.00%",
        11 => "0.00E+00",
        12 => "# ?/?",
        13 => "# ??/??",
        14 => "mm-dd-yy",
        15 => "d-mmm-yy",
        16 => "d-mmm",
        17 => "mmm-yy",
        18 => "h:mm AM/PM",
        19 => "h:mm:ss AM/PM",
        20 => "h:mm",
        21 => "h:mm:ss",
        22 => "m/d/yy h:mm",
        37 => "#,##0 ;(#,##0)",
        38 => "#,##0 ;[Red](#,##0)",
        39 => "#,##0.00;(#,##0.00)",
        40 => "#,##0.00;[Red](#,##0.00)",
        45 => "mm:ss",
        46 => "[h]:mm:ss",
        47 => "mmss.0",
        48 => "##0.0E+0",
        49 => "@",
        _ => return None,
    })
}

/// `A1` -> (0, 0); only upper-case letters and digits.
fn cell_ref(r: &str) -> Option<(u32, u32)> {
    let letters = r.bytes().take_while(u8::is_ascii_uppercase).count();
    if letters == 0 || letters > 3 {
        return None;
    }
    let col = r
        .bytes()
        .take(letters)
        .fold(0u32, |n, b| n * 26 + u32::from(b - b'A') + 1)
        - 1;
    Some((row_number(&r[letters..])?, col))
}

/// `12` -> 11.
fn row_number(digits: &str) -> Option<u32> {
    if digits.is_empty() || digits.len() > 7 {
        return None;
    }
    let mut n = 0u32;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(b - b'0');
    }
    n.checked_sub(1)
}

/// A number as Excel writes one: `-12`, `3.5`, `1E-3`.
fn number(text: &str) -> Option<f64> {
    let body = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || (mantissa.contains('.') && frac.is_empty()) {
        return None;
    }
    if let Some(e) = exponent {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        if e.is_empty() || e.len() > 3 || !digits(e) {
            return None;
        }
    }
    text.parse().ok()
}

/// The cells of `<sheetData>`'s content to `each`, or `None` when it is
/// not plain.
fn scan<E>(
    data: &str,
    strings: &Strings,
    formats: &[Shown],
    is_1904: bool,
    each: &mut impl FnMut(Cell<'_>) -> Result<bool, E>,
) -> Option<Result<(), E>> {
    let ws = [' ', '\t', '\r', '\n'];
    let mut rest = data;
    let text_in = |after: &'_ str, close: &str| -> Option<usize> {
        // The text cannot hold a `<`: its end is the first.
        let end = byte_at(after, b'<')?;
        after[end..].starts_with(close).then_some(end)
    };
    let mut row_index = 0u32;
    loop {
        rest = skip_ws(rest);
        if rest.is_empty() {
            return Some(Ok(()));
        }
        let body = rest.strip_prefix("<row")?;
        if !body.starts_with(ws) && !body.starts_with(['>', '/']) {
            return None;
        }
        let close = byte_at(body, b'>')?;
        let tag = &body[..close];
        let [r, ..] = cell_attributes(tag)?;
        if let Some(r) = r {
            row_index = row_number(r)?;
        }
        rest = &body[close + 1..];
        if tag.ends_with('/') {
            row_index += 1;
            continue;
        }
        let mut col_index = 0u32;
        loop {
            rest = skip_ws(rest);
            if let Some(after) = rest.strip_prefix("</row>") {
                rest = after;
                row_index += 1;
                break;
            }
            let body = rest.strip_prefix("<c")?;
            if !body.starts_with(ws) && !body.starts_with(['>', '/']) {
                return None;
            }
            let close = byte_at(body, b'>')?;
            let tag = &body[..close];
            let [r, s, typ] = cell_attributes(tag)?;
            let (row, col) = match r {
                Some(r) => cell_ref(r)?,
                None => (row_index, col_index),
            };
            col_index = col + 1;
            let style = match s {
                Some(s) => {
                    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    s.parse().ok()?
                }
                None => 0,
            };
            rest = &body[close + 1..];
            let (mut formula, mut text) = (None, None);
            if !tag.ends_with('/') {
                rest = skip_ws(rest);
                if let Some(after) = rest.strip_prefix("<f>") {
                    let end = text_in(after, "</f>")?;
                    let f = &after[..end];
                    if f.bytes().any(|b| b == b'\r') {
                        return None;
                    }
                    formula = Some(if f.bytes().any(|b| b == b'&') {
                        Cow::Owned(unescape(f)?)
                    } else {
                        Cow::Borrowed(f)
                    });
                    rest = skip_ws(&after[end + 4..]);
                }
                if let Some(after) = rest.strip_prefix("<v>") {
                    let end = text_in(after, "</v>")?;
                    let v = &after[..end];
                    if v.bytes().any(|b| b == b'&') {
                        return None;
                    }
                    text = Some(v);
                    rest = skip_ws(&after[end + 4..]);
                }
                rest = rest.strip_prefix("</c>")?;
            }
            // Error, date, inline and formula-string cells are left to calamine.
            if !matches!(typ, None | Some("n" | "s" | "b")) {
                return None;
            }
            let value = match (typ, text) {
                (_, None | Some("")) => DataRef::Empty,
                (None | Some("n"), Some(v)) => {
                    let n = number(v)?;
                    let shown = match s {
                        Some(_) => formats.get(style).copied(),
                        None => Some(Shown::Number),
                    };
                    match shown {
                        Some(Shown::DateTime) => {
                            DataRef::DateTime(ExcelDateTime::new(n, ExcelDateTimeType::DateTime, is_1904))
                        }
                        Some(Shown::Duration) => {
                            DataRef::DateTime(ExcelDateTime::new(n, ExcelDateTimeType::TimeDelta, is_1904))
                        }
                        _ => DataRef::Float(n),
                    }
                }
                (Some("s"), Some(v)) => {
                    if v.len() > 9 || !v.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    DataRef::SharedString(strings.get(v.parse::<usize>().ok()?)?)
                }
                (Some("b"), Some("1" | "true")) => DataRef::Bool(true),
                (Some("b"), Some("0" | "false")) => DataRef::Bool(false),
                _ => return None,
            };
            let cell = Cell {
                row,
                col,
                style,
                formula,
                value,
            };
            match each(cell) {
                Ok(true) => {}
                Ok(false) => return Some(Ok(())),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
