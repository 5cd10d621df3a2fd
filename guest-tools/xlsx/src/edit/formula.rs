//! Cell references inside formula text: found by a small tokenizer that
//! skips string literals, structured references and function names, then
//! moved (a shared formula translated to another cell), shifted (rows
//! inserted or deleted in the sheet they point into) or re-pointed (a sheet
//! renamed). Everything that is not a reference is copied as it is.

/// The last row and column a worksheet has.
pub const MAX_ROW: u32 = 1_048_576;
pub const MAX_COL: u32 = 16_384;

/// One end of a reference: a cell (`$B7`), a whole row (`7` in `7:9`) or a
/// whole column (`B` in `B:D`). Rows and columns count from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    pub col: Option<(u32, bool)>,
    pub row: Option<(u32, bool)>,
}

impl End {
    fn text(self) -> String {
        let mut s = String::new();
        if let Some((c, abs)) = self.col {
            if abs {
                s.push('$');
            }
            s.push_str(&col_name(c));
        }
        if let Some((r, abs)) = self.row {
            if abs {
                s.push('$');
            }
            s.push_str(&r.to_string());
        }
        s
    }
}

/// A reference's target sheet as written before its `!`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// No sheet named: the sheet the formula lives in.
    Here,
    /// One sheet, or the two ends of a 3D reference (`Jan:Mar!A1`).
    Sheets(Vec<String>),
    /// A sheet of another workbook (`[1]Sheet1!A1`): never ours to change.
    External(&'a str),
}

/// How a reference should be rewritten: its new sheet prefix (without the
/// `!`) and ends, or `None` for `#REF!`.
pub struct Rewrite {
    pub sheets: Option<Vec<String>>,
    pub ends: Option<(End, Option<End>)>,
}

/// What [`rewrite`] calls on each reference: its target and ends; it returns
/// the reference's new form, or `None` to leave it as it is.
pub type OnReference<'f> = dyn FnMut(&Target<'_>, End, Option<End>) -> Option<Rewrite> + 'f;

/// `A` -> 1, `XFD` -> 16384.
pub fn col_number(letters: &str) -> Option<u32> {
    if letters.is_empty() || letters.len() > 3 {
        return None;
    }
    let mut n = 0u32;
    for b in letters.bytes() {
        let b = b.to_ascii_uppercase();
        if !b.is_ascii_uppercase() {
            return None;
        }
        n = n * 26 + u32::from(b - b'A') + 1;
    }
    (n <= MAX_COL).then_some(n)
}

pub fn col_name(mut n: u32) -> String {
    let mut out = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        out.push(b'A' + rem as u8);
        n = (n - 1) / 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// `B12` -> (12, 2): row and column from 1.
pub fn parse_cell(s: &str) -> Option<(u32, u32)> {
    let end = parse_end(s)?;
    Some((end.row?.0, end.col?.0))
}

pub fn cell_name(row: u32, col: u32) -> String {
    format!("{}{row}", col_name(col))
}

/// One end: `$A$1`, `A1`, `$3` / `3` (a row), `$C` / `C` (a column).
fn parse_end(s: &str) -> Option<End> {
    let b = s.as_bytes();
    let mut i = 0;
    let col_abs = b.first() == Some(&b'$');
    if col_abs {
        i += 1;
    }
    let letters_start = i;
    while i < b.len() && b[i].is_ascii_alphabetic() {
        i += 1;
    }
    let letters = &s[letters_start..i];
    let row_abs = b.get(i) == Some(&b'$');
    if row_abs {
        i += 1;
    }
    let digits = &s[i..];
    if !digits.bytes().all(|d| d.is_ascii_digit()) || (letters.is_empty() && digits.is_empty()) {
        return None;
    }
    let col = if letters.is_empty() {
        None
    } else {
        Some((col_number(letters)?, col_abs))
    };
    let row = if digits.is_empty() {
        if row_abs {
            return None;
        }
        None
    } else {
        let r: u32 = digits.parse().ok()?;
        if r == 0 || r > MAX_ROW || digits.starts_with('0') {
            return None;
        }
        Some((r, if letters.is_empty() { col_abs } else { row_abs }))
    };
    if letters.is_empty() && row_abs {
        return None;
    }
    Some(End { col, row })
}

fn token_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '$' | '\\')
}

/// Calls `f` on every reference in `formula` (its target sheet and ends) and
/// puts in what `f` returns (`None`: the reference unchanged).
pub fn rewrite(formula: &str, f: &mut OnReference<'_>) -> String {
    let s = formula;
    let mut out = String::with_capacity(s.len() + 8);
    let mut i = 0;
    while i < s.len() {
        let c = s[i..].chars().next().unwrap_or(' ');
        match c {
            '"' => {
                let end = string_end(s, i);
                out.push_str(&s[i..end]);
                i = end;
            }
            '[' => {
                // `[1]Sheet!A1` (another workbook), or a structured reference.
                let close = bracket_end(s, i);
                let inner = &s[i..close];
                let after = &s[close..];
                let external = inner.len() > 2 && inner[1..inner.len() - 1].bytes().all(|b| b.is_ascii_digit());
                if external && let Some((prefix_len, _)) = sheet_prefix(after) {
                    let (len, text) = reference_at(s, close + prefix_len, &Target::External(inner), f);
                    out.push_str(&s[i..close + prefix_len]);
                    out.push_str(&text);
                    i = close + prefix_len + len;
                } else {
                    out.push_str(inner);
                    i = close;
                }
            }
            '\'' => match sheet_prefix(&s[i..]) {
                Some((prefix_len, sheets)) => {
                    let target = Target::Sheets(sheets);
                    let (len, text) = reference_at(s, i + prefix_len, &target, f);
                    match rewritten_prefix(&text) {
                        Some(p) => out.push_str(&p),
                        None => out.push_str(&s[i..i + prefix_len]),
                    }
                    out.push_str(strip_prefix_marker(&text));
                    i += prefix_len + len;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            },
            c if token_char(c) => {
                let prev_ok = i == 0 || !s[..i].chars().next_back().is_some_and(token_char);
                if !prev_ok {
                    out.push(c);
                    i += c.len_utf8();
                    continue;
                }
                if let Some((prefix_len, sheets)) = sheet_prefix(&s[i..]) {
                    let target = Target::Sheets(sheets);
                    let (len, text) = reference_at(s, i + prefix_len, &target, f);
                    match rewritten_prefix(&text) {
                        Some(p) => out.push_str(&p),
                        None => out.push_str(&s[i..i + prefix_len]),
                    }
                    out.push_str(strip_prefix_marker(&text));
                    i += prefix_len + len;
                    continue;
                }
                let (len, text) = reference_at(s, i, &Target::Here, f);
                if len > 0 {
                    out.push_str(strip_prefix_marker(&text));
                    i += len;
                } else {
                    let tok_end = token_end(s, i);
                    out.push_str(&s[i..tok_end]);
                    i = tok_end;
                }
            }
            _ => {
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

/// A rewritten reference may carry a new sheet prefix before a `\u{0}`.
fn rewritten_prefix(text: &str) -> Option<String> {
    text.split_once('\u{0}').map(|(p, _)| format!("{p}!"))
}

fn strip_prefix_marker(text: &str) -> &str {
    text.split_once('\u{0}').map_or(text, |(_, rest)| rest)
}

fn token_end(s: &str, from: usize) -> usize {
    s[from..]
        .char_indices()
        .find(|&(_, c)| !token_char(c))
        .map_or(s.len(), |(at, _)| from + at)
}

fn string_end(s: &str, from: usize) -> usize {
    let b = s.as_bytes();
    let mut i = from + 1;
    while i < b.len() {
        if b[i] == b'"' {
            if b.get(i + 1) == Some(&b'"') {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    s.len()
}

fn bracket_end(s: &str, from: usize) -> usize {
    let b = s.as_bytes();
    let mut depth = 0;
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'[' => depth += 1,
            b']' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            b'\'' => i += 1,
            _ => {}
        }
        i += 1;
    }
    s.len()
}

/// A sheet prefix at the start of `s` (`Sheet1!`, `'My sheet'!`,
/// `Jan:Mar!`): its length with the `!`, and the sheet names.
fn sheet_prefix(s: &str) -> Option<(usize, Vec<String>)> {
    if let Some(rest) = s.strip_prefix('\'') {
        let b = rest.as_bytes();
        let mut i = 0;
        let mut name = String::new();
        while i < b.len() {
            if b[i] == b'\'' {
                if b.get(i + 1) == Some(&b'\'') {
                    name.push('\'');
                    i += 2;
                    continue;
                }
                break;
            }
            let c = rest[i..].chars().next()?;
            name.push(c);
            i += c.len_utf8();
        }
        if b.get(i + 1) != Some(&b'!') {
            return None;
        }
        let names = name.split(':').map(str::to_owned).collect();
        return Some((i + 3, names));
    }
    let first = token_end(s, 0);
    if first == 0 {
        return None;
    }
    let mut end = first;
    if s[end..].starts_with(':') {
        let second = token_end(s, end + 1);
        if second > end + 1 && s[second..].starts_with('!') {
            end = second;
        }
    }
    if !s[end..].starts_with('!') {
        return None;
    }
    let names = s[..end].split(':').map(str::to_owned).collect();
    Some((end + 1, names))
}

/// The reference starting at `at` (a cell, `A1:B2`, `3:5`, `B:D`), if any:
/// its length and its text after `f` (a new sheet prefix, if any, before a
/// `\u{0}`). A length of 0: no reference there.
fn reference_at(s: &str, at: usize, target: &Target<'_>, f: &mut OnReference<'_>) -> (usize, String) {
    let first_end = token_end(s, at);
    let first = &s[at..first_end];
    let next = s[first_end..].chars().next();
    if next == Some('(') {
        return (0, String::new());
    }
    let Some(a) = parse_end(first) else {
        // `#REF!` and the like after a sheet prefix are left alone.
        return (0, String::new());
    };
    let mut len = first_end - at;
    let mut b = None;
    if next == Some(':') {
        let second_end = token_end(s, first_end + 1);
        if let Some(e) = parse_end(&s[first_end + 1..second_end])
            && e.col.is_some() == a.col.is_some()
            && e.row.is_some() == a.row.is_some()
            && !s[second_end..].starts_with('(')
        {
            b = Some(e);
            len = second_end - at;
        }
    }
    // A lone row number or column letters is not a reference.
    if b.is_none() && (a.col.is_none() || a.row.is_none()) {
        return (0, String::new());
    }
    let original = &s[at..at + len];
    match f(target, a, b) {
        None => (len, original.to_owned()),
        Some(Rewrite { sheets, ends }) => {
            let body = match ends {
                None => "#REF!".to_owned(),
                Some((a, None)) => a.text(),
                Some((a, Some(b))) => format!("{}:{}", a.text(), b.text()),
            };
            match sheets {
                Some(names) => (len, format!("{}\u{0}{body}", quote_sheets(&names))),
                None => (len, body),
            }
        }
    }
}

/// A sheet prefix as a formula writes it (without the `!`).
pub fn quote_sheets(names: &[String]) -> String {
    let joined = names.join(":");
    let plain = names.iter().all(|n| {
        !n.is_empty()
            && n.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.')
            && !n.starts_with(|c: char| c.is_ascii_digit() || c == '.')
            && parse_cell(n).is_none()
            && !n.eq_ignore_ascii_case("TRUE")
            && !n.eq_ignore_ascii_case("FALSE")
            && !looks_r1c1(n)
    });
    if plain {
        joined
    } else {
        format!("'{}'", joined.replace('\'', "''"))
    }
}

fn looks_r1c1(n: &str) -> bool {
    let u = n.to_ascii_uppercase();
    let rest = u
        .trim_start_matches('R')
        .trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest
        .trim_start_matches('C')
        .trim_start_matches(|c: char| c.is_ascii_digit());
    rest.is_empty()
}

/// The formula as it reads in a cell `dr` rows and `dc` columns away: the
/// relative parts of every reference move, the `$` parts stay. A reference
/// moved off the sheet becomes `#REF!`.
pub fn translate(formula: &str, dr: i64, dc: i64) -> String {
    if dr == 0 && dc == 0 {
        return formula.to_owned();
    }
    let mv = |v: Option<(u32, bool)>, d: i64, max: u32| -> Result<Option<(u32, bool)>, ()> {
        match v {
            Some((n, false)) => {
                let m = i64::from(n) + d;
                if m < 1 || m > i64::from(max) {
                    Err(())
                } else {
                    Ok(Some((m as u32, false)))
                }
            }
            other => Ok(other),
        }
    };
    rewrite(formula, &mut |_, a, b| {
        let one = |e: End| -> Result<End, ()> {
            Ok(End {
                col: mv(e.col, dc, MAX_COL)?,
                row: mv(e.row, dr, MAX_ROW)?,
            })
        };
        let ends = match (one(a), b.map(one)) {
            (Ok(a), None) => Some((a, None)),
            (Ok(a), Some(Ok(b))) => Some((a, Some(b))),
            _ => None,
        };
        Some(Rewrite { sheets: None, ends })
    })
}

/// Rows inserted (`count` new rows before row `at`) or deleted (rows
/// `at..at+count`) in one sheet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOp {
    Insert { at: u32, count: u32 },
    Delete { at: u32, count: u32 },
}

impl RowOp {
    /// Where row `r` goes, or `None` if it is deleted.
    pub fn map(self, r: u32) -> Option<u32> {
        match self {
            RowOp::Insert { at, count } if r >= at => Some(r + count),
            RowOp::Delete { at, count } if r >= at + count => Some(r - count),
            RowOp::Delete { at, .. } if r >= at => None,
            _ => Some(r),
        }
    }

    /// A span of rows after the change, `None` when all of it is deleted.
    pub fn map_span(self, r1: u32, r2: u32) -> Option<(u32, u32)> {
        match self {
            RowOp::Insert { .. } => Some((self.map(r1)?, self.map(r2)?)),
            RowOp::Delete { at, count } => {
                let last = at + count - 1;
                let n1 = if r1 < at {
                    r1
                } else if r1 <= last {
                    at
                } else {
                    r1 - count
                };
                let n2 = if r2 < at {
                    r2
                } else if r2 <= last {
                    at.checked_sub(1)?
                } else {
                    r2 - count
                };
                (n1 <= n2).then_some((n1, n2))
            }
        }
    }

    /// The first row whose position changes.
    pub fn first(self) -> u32 {
        match self {
            RowOp::Insert { at, .. } | RowOp::Delete { at, .. } => at,
        }
    }
}

/// The formula after `op` in the sheet `sheet`; `here` says whether the
/// formula lives in that sheet (its unqualified references point there).
pub fn shift_rows(formula: &str, sheet: &str, here: bool, op: RowOp) -> String {
    rewrite(formula, &mut |target, a, b| {
        let ours = match target {
            Target::Here => here,
            Target::Sheets(names) => names.len() == 1 && names[0].eq_ignore_ascii_case(sheet),
            Target::External(_) => false,
        };
        if !ours || a.row.is_none() {
            return None;
        }
        let with_row = |e: End, r: u32| End {
            row: e.row.map(|(_, abs)| (r, abs)),
            ..e
        };
        let ends = match b {
            None => {
                let (r, _) = a.row?;
                op.map(r).map(|n| (with_row(a, n), None))
            }
            Some(b) => {
                let (r1, r2) = (a.row?.0, b.row?.0);
                let (lo, hi) = (r1.min(r2), r1.max(r2));
                op.map_span(lo, hi).map(|(n1, n2)| {
                    let (x, y) = if r1 <= r2 { (n1, n2) } else { (n2, n1) };
                    (with_row(a, x), Some(with_row(b, y)))
                })
            }
        };
        let unchanged = ends.is_some_and(|(x, y)| x == a && y == b);
        (!unchanged).then_some(Rewrite { sheets: None, ends })
    })
}

/// The formula with references to sheet `old` pointing at `new`.
pub fn rename_sheet(formula: &str, old: &str, new: &str) -> String {
    rewrite(formula, &mut |target, a, b| {
        let Target::Sheets(names) = target else { return None };
        if !names.iter().any(|n| n.eq_ignore_ascii_case(old)) {
            return None;
        }
        let renamed = names
            .iter()
            .map(|n| {
                if n.eq_ignore_ascii_case(old) {
                    new.to_owned()
                } else {
                    n.clone()
                }
            })
            .collect();
        Some(Rewrite {
            sheets: Some(renamed),
            ends: Some((a, b)),
        })
    })
}

/// Whether any reference in `formula` points into sheet `sheet` (from
/// another sheet: `here` false) at row `from` or below.
pub fn reaches(formula: &str, sheet: &str, here: bool, from: u32) -> bool {
    let mut hit = false;
    rewrite(formula, &mut |target, a, b| {
        let ours = match target {
            Target::Here => here,
            Target::Sheets(names) => names.iter().any(|n| n.eq_ignore_ascii_case(sheet)),
            Target::External(_) => false,
        };
        let max = a.row.map(|r| r.0).max(b.and_then(|b| b.row.map(|r| r.0)));
        if ours && max.is_some_and(|m| m >= from) {
            hit = true;
        }
        None
    });
    hit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translation_moves_relative_parts_only() {
        assert_eq!(translate("SUM(E2:I2)", 3, 0), "SUM(E5:I5)");
        assert_eq!(translate("$A$1+B$2*$C3+D4", 2, 1), "$A$1+C$2*$C5+E6");
        assert_eq!(translate("Data!A1&\"A1\"&LOG10(B2)", 1, 0), "Data!A2&\"A1\"&LOG10(B3)");
        assert_eq!(translate("'My sheet'!B2:B9", 1, 1), "'My sheet'!C3:C10");
        assert_eq!(translate("A1", -1, 0), "#REF!");
        assert_eq!(translate("SUM(A:A)+SUM(2:3)", 1, 1), "SUM(B:B)+SUM(3:4)");
        assert_eq!(
            translate("Table1[[#This Row],[A1]]+1.5E3", 1, 0),
            "Table1[[#This Row],[A1]]+1.5E3"
        );
    }

    #[test]
    fn rows_shift_in_the_sheet_they_point_into() {
        let ins = RowOp::Insert { at: 5, count: 2 };
        assert_eq!(shift_rows("SUM(B2:B10)+B4+$B$5", "S", true, ins), "SUM(B2:B12)+B4+$B$7");
        assert_eq!(
            shift_rows("Other!B9+S!B9+'S'!A5", "S", false, ins),
            "Other!B9+S!B11+'S'!A7"
        );
        assert_eq!(shift_rows("[1]S!B9", "S", false, ins), "[1]S!B9");
        let del = RowOp::Delete { at: 5, count: 2 };
        assert_eq!(shift_rows("SUM(B2:B10)+B5+B7", "S", true, del), "SUM(B2:B8)+#REF!+B5");
        assert_eq!(shift_rows("SUM(B5:B6)", "S", true, del), "SUM(#REF!)");
        assert_eq!(shift_rows("SUM(B5:B9)", "S", true, del), "SUM(B5:B7)");
    }

    #[test]
    fn renamed_sheets_are_requoted() {
        assert_eq!(
            rename_sheet("Old!A1+'old'!B2:C3+Oldish!A1", "Old", "New name"),
            "'New name'!A1+'New name'!B2:C3+Oldish!A1"
        );
        assert_eq!(rename_sheet("'It''s'!A1", "It's", "Plain"), "Plain!A1");
        assert_eq!(rename_sheet("SUM(Jan:Mar!A1)", "Mar", "March"), "SUM(Jan:March!A1)");
        assert_eq!(
            rename_sheet("Mar!A1", "Mar", "Q1"),
            "'Q1'!A1",
            "a name that reads as a cell is quoted"
        );
    }

    #[test]
    fn reaching_a_row() {
        assert!(reaches("SUM(Data!A1:A10)", "Data", false, 10));
        assert!(!reaches("SUM(Data!A1:A10)", "Data", false, 11));
        assert!(!reaches("SUM(A1:A10)", "Data", false, 1));
        assert!(!reaches("SUM(Data!A:A)", "Data", false, 1));
    }
}
