//! One worksheet part rewritten in a single pass: cells set, rows moved,
//! formula references shifted or re-pointed, shared formulas kept where
//! they still read right and expanded into plain formulas where they do
//! not. Everything the edit does not touch is copied from the input as it
//! was, byte for byte.

use std::collections::{BTreeMap, HashMap};

use quick_xml::Reader;
use quick_xml::events::Event;
use quick_xml::name::QName;

use super::formula::{self, RowOp, cell_name, parse_cell, translate};
use super::xml::{attr, escape, set_attr, tag_prefix};

/// A cell's new content.
#[derive(Debug, Clone, PartialEq)]
pub enum NewCell {
    Empty,
    Number(f64),
    Text(String),
    Bool(bool),
    /// Without the leading `=`.
    Formula(String),
}

/// A change every formula of the workbook goes through, in edit order.
#[derive(Debug, Clone)]
pub enum Transform {
    /// Rows moved in sheet `sheet`.
    Shift {
        sheet: String,
        op: RowOp,
    },
    Rename {
        old: String,
        new: String,
    },
}

impl Transform {
    /// `formula` after this change, for a formula living in sheet `home`.
    pub fn apply(&self, formula: &str, home: &str) -> String {
        match self {
            Transform::Shift { sheet, op } => {
                formula::shift_rows(formula, sheet, sheet.eq_ignore_ascii_case(home), *op)
            }
            Transform::Rename { old, new } => formula::rename_sheet(formula, old, new),
        }
    }
}

/// What to do to one worksheet. `home` is the sheet's name at each point of
/// the edit: transforms are applied in order, each seeing the name then.
pub struct Plan<'a> {
    pub transforms: &'a [(Transform, String)],
    pub row_ops: Vec<RowOp>,
    /// By final position (row, column), from 1.
    pub sets: BTreeMap<(u32, u32), NewCell>,
    pub sheet: &'a str,
}

/// Why a sheet could not be rewritten.
#[derive(Debug)]
pub enum Problem {
    /// The file is not what it claims to be.
    Malformed(String),
    /// The edit would need what deskhand does not do safely; nothing is changed.
    Refused(String),
}

impl Plan<'_> {
    fn transform(&self, formula: &str) -> String {
        let mut f = formula.to_owned();
        for (t, home) in self.transforms {
            f = t.apply(&f, home);
        }
        f
    }

    fn map_row(&self, r: u32) -> Option<u32> {
        self.row_ops.iter().try_fold(r, |r, op| op.map(r))
    }

    fn map_span(&self, r1: u32, r2: u32) -> Option<(u32, u32)> {
        self.row_ops.iter().try_fold((r1, r2), |(a, b), op| op.map_span(a, b))
    }

    fn first_moved(&self) -> Option<u32> {
        self.row_ops.iter().map(|op| op.first()).min()
    }
}

/// A cell's `<f>` element: where it starts and ends in the input, its start
/// tag, and where its text lies (none for `<f .../>`).
type FormulaSpan<'x> = (usize, usize, &'x str, Option<(usize, usize)>);

/// A shared formula group: its master's position and text (original), and
/// whether its cells are written out as plain formulas.
struct Group {
    row: u32,
    col: u32,
    formula: String,
    expand: bool,
}

struct Rewriter<'x, 'p> {
    xml: &'x str,
    plan: &'p Plan<'p>,
    out: String,
    copied: usize,
    prefix: String,
    groups: HashMap<String, Group>,
    /// Set cells not yet written (by final position).
    pending: BTreeMap<(u32, u32), NewCell>,
    arrays: Vec<(u32, u32, u32, u32)>,
}

pub fn rewrite(xml: &str, plan: &Plan<'_>) -> Result<String, Problem> {
    // quick-xml skips a byte-order mark without counting it in its positions.
    if let Some(body) = xml.strip_prefix('\u{FEFF}') {
        return Ok(format!("\u{FEFF}{}", rewrite(body, plan)?));
    }
    let mut w = Rewriter {
        xml,
        plan,
        out: String::with_capacity(xml.len() + 1024),
        copied: 0,
        prefix: String::new(),
        groups: HashMap::new(),
        pending: plan.sets.clone(),
        arrays: Vec::new(),
    };
    w.run()?;
    w.out.push_str(&xml[w.copied..]);
    Ok(w.out)
}

fn malformed(e: impl std::fmt::Display) -> Problem {
    Problem::Malformed(format!("its sheet XML cannot be read ({e})"))
}

impl Rewriter<'_, '_> {
    /// Replaces the input `start..end` with `text`.
    fn replace(&mut self, start: usize, end: usize, text: &str) {
        self.out.push_str(&self.xml[self.copied..start]);
        self.out.push_str(text);
        self.copied = end;
    }

    fn run(&mut self) -> Result<(), Problem> {
        let xml = self.xml;
        let mut reader = Reader::from_str(xml);
        let mut in_data = false;
        let mut after_data = false;
        let mut last_row = 0u32;
        loop {
            let start = reader.buffer_position() as usize;
            let event = reader.read_event().map_err(malformed)?;
            let end = reader.buffer_position() as usize;
            let tag = &xml[start..end];
            match &event {
                Event::Eof => break,
                Event::Start(e) | Event::Empty(e) => {
                    let empty = matches!(event, Event::Empty(_));
                    let local = e.local_name();
                    match local.as_ref() {
                        "dimension" if !in_data => self.dimension(start, end, tag),
                        "sheetData" => {
                            self.prefix = tag_prefix(tag).to_owned();
                            if empty {
                                let rows = self.new_rows(u32::MAX);
                                if !rows.is_empty() {
                                    let open = format!("{}>", tag[..tag.len() - 2].trim_end());
                                    let text = format!("{open}{rows}</{}sheetData>", self.prefix);
                                    self.replace(start, end, &text);
                                }
                                after_data = true;
                            } else {
                                in_data = true;
                            }
                        }
                        "row" if in_data => {
                            let r = match attr(tag, "r") {
                                Some(r) => r.parse().map_err(|_| malformed(format!("row number {r:?}")))?,
                                None => last_row + 1,
                            };
                            last_row = r;
                            self.row(&mut reader, start, end, tag, r, empty)?;
                        }
                        "f" | "formula" | "formula1" | "formula2" if !empty => {
                            // Conditional formats and validations (cells' formulas are handled in `row`).
                            self.formula_text(&mut reader, end, e.name().as_ref())?;
                        }
                        name if after_data && !self.plan.row_ops.is_empty() => self.check_after_data(name, tag)?,
                        _ => {}
                    }
                }
                Event::End(e) if e.local_name().as_ref() == "sheetData" => {
                    in_data = false;
                    after_data = true;
                    let rows = self.new_rows(u32::MAX);
                    if !rows.is_empty() {
                        self.replace(start, start, &rows);
                    }
                }
                _ => {}
            }
        }
        if !self.pending.is_empty() {
            return Err(Problem::Malformed("its worksheet has no sheetData element".into()));
        }
        Ok(())
    }

    fn dimension(&mut self, start: usize, end: usize, tag: &str) {
        if self.plan.row_ops.is_empty() && self.plan.sets.is_empty() {
            return;
        }
        let Some(r) = attr(tag, "ref") else { return };
        let (a, b) = r.split_once(':').unwrap_or((&r, &r));
        let (Some((r1, c1)), Some((r2, c2))) = (parse_cell(a), parse_cell(b)) else {
            return;
        };
        let mut bounds = self.plan.map_span(r1, r2).map(|(r1, r2)| (r1, c1, r2, c2));
        for (&(r, c), v) in &self.plan.sets {
            if *v != NewCell::Empty {
                bounds = Some(match bounds {
                    None => (r, c, r, c),
                    Some((r1, c1, r2, c2)) => (r1.min(r), c1.min(c), r2.max(r), c2.max(c)),
                });
            }
        }
        let text = match bounds {
            None => "A1".to_owned(),
            Some((r1, c1, r2, c2)) if (r1, c1) == (r2, c2) => cell_name(r1, c1),
            Some((r1, c1, r2, c2)) => format!("{}:{}", cell_name(r1, c1), cell_name(r2, c2)),
        };
        let new = set_attr(tag, "ref", Some(&text));
        self.replace(start, end, &new);
    }

    /// New rows for set cells in rows before `before` (final numbers) that the file does not have.
    fn new_rows(&mut self, before: u32) -> String {
        let mut text = String::new();
        let rows: Vec<u32> = self
            .pending
            .keys()
            .map(|&(r, _)| r)
            .take_while(|&r| r < before)
            .collect();
        let mut rows = rows;
        rows.dedup();
        for r in rows {
            let cells = self.new_cells(r, u32::MAX);
            if !cells.is_empty() {
                text.push_str(&format!("<{p}row r=\"{r}\">{cells}</{p}row>", p = self.prefix));
            }
        }
        text
    }

    /// The set cells of row `row` before column `before` not yet written.
    fn new_cells(&mut self, row: u32, before: u32) -> String {
        let keys: Vec<(u32, u32)> = self.pending.range((row, 0)..(row, before)).map(|(k, _)| *k).collect();
        let mut text = String::new();
        for k in keys {
            if let Some(v) = self.pending.remove(&k) {
                text.push_str(&cell_xml(&self.prefix, k.0, k.1, None, &v));
            }
        }
        text
    }

    fn row(
        &mut self,
        reader: &mut Reader<&[u8]>,
        start: usize,
        end: usize,
        tag: &str,
        r: u32,
        empty: bool,
    ) -> Result<(), Problem> {
        let plan = self.plan;
        let Some(fr) = plan.map_row(r) else {
            // A deleted row: skip it and everything in it.
            let stop = if empty {
                end
            } else {
                reader.read_to_end(QName(tag_name(tag))).map_err(malformed)?;
                reader.buffer_position() as usize
            };
            self.replace(start, stop, "");
            return Ok(());
        };
        let rows_before = self.new_rows(fr);
        let has_sets = self.pending.range((fr, 0)..(fr, u32::MAX)).next().is_some();
        let mut new_tag = if fr != r || attr(tag, "r").is_none() {
            set_attr(tag, "r", Some(&fr.to_string()))
        } else {
            tag.to_owned()
        };
        if has_sets {
            new_tag = set_attr(&new_tag, "spans", None);
        }
        if empty {
            let body = if has_sets {
                let open = format!("{}>", new_tag[..new_tag.len() - 2].trim_end());
                let cells = self.new_cells(fr, u32::MAX);
                format!("{open}{cells}</{}row>", self.prefix)
            } else {
                new_tag
            };
            if !rows_before.is_empty() || body != tag {
                self.replace(start, end, &format!("{rows_before}{body}"));
            }
            return Ok(());
        }
        if !rows_before.is_empty() || new_tag != tag {
            self.replace(start, end, &format!("{rows_before}{new_tag}"));
        }
        let busy = has_sets
            || !plan.transforms.is_empty()
            || !plan.row_ops.is_empty()
            || self.groups.values().any(|g| g.expand);
        if !busy {
            reader.read_to_end(QName(tag_name(tag))).map_err(malformed)?;
            return Ok(());
        }
        let xml = self.xml;
        let mut last_col = 0u32;
        loop {
            let start = reader.buffer_position() as usize;
            let event = reader.read_event().map_err(malformed)?;
            let end = reader.buffer_position() as usize;
            match &event {
                Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "c" => {
                    let ctag = &xml[start..end];
                    let col = match attr(ctag, "r") {
                        Some(cr) => parse_cell(&cr)
                            .map(|(_, c)| c)
                            .ok_or_else(|| malformed(format!("cell reference {cr:?}")))?,
                        None => last_col + 1,
                    };
                    last_col = col;
                    let before = self.new_cells(fr, col);
                    if !before.is_empty() {
                        self.replace(start, start, &before);
                    }
                    self.cell(reader, start, end, ctag, (r, fr, col), matches!(event, Event::Empty(_)))?;
                }
                Event::End(e) if e.local_name().as_ref() == "row" => {
                    let cells = self.new_cells(fr, u32::MAX);
                    if !cells.is_empty() {
                        self.replace(start, start, &cells);
                    }
                    return Ok(());
                }
                Event::Eof => return Err(malformed("a row is not closed")),
                _ => {}
            }
        }
    }

    /// One existing cell at original row `r`, final row `fr`, column `col`.
    fn cell(
        &mut self,
        reader: &mut Reader<&[u8]>,
        start: usize,
        end: usize,
        ctag: &str,
        (r, fr, col): (u32, u32, u32),
        empty: bool,
    ) -> Result<(), Problem> {
        let xml = self.xml;
        // The cell's `<f>`: its tag and text span.
        let mut f: Option<FormulaSpan<'_>> = None;
        let mut stop = end;
        if !empty {
            loop {
                let s = reader.buffer_position() as usize;
                let event = reader.read_event().map_err(malformed)?;
                let e_end = reader.buffer_position() as usize;
                match &event {
                    Event::Empty(e) if e.local_name().as_ref() == "f" => f = Some((s, e_end, &xml[s..e_end], None)),
                    Event::Start(e) if e.local_name().as_ref() == "f" => {
                        let q = e.name().as_ref().to_owned();
                        let text_start = e_end;
                        reader.read_to_end(QName(&q)).map_err(malformed)?;
                        let f_end = reader.buffer_position() as usize;
                        let text_end = xml[..f_end].rfind("</").unwrap_or(text_start);
                        f = Some((s, f_end, &xml[s..e_end], Some((text_start, text_end))));
                    }
                    Event::End(e) if e.local_name().as_ref() == "c" => {
                        stop = e_end;
                        break;
                    }
                    Event::Eof => return Err(malformed("a cell is not closed")),
                    _ => {}
                }
            }
        }
        let formula_text = f
            .and_then(|(_, _, _, t)| t)
            .map(|(a, b)| super::xml::unescape(&xml[a..b]));
        let f_kind = f.and_then(|(_, _, tag, _)| attr(tag, "t"));
        let si = f.and_then(|(_, _, tag, _)| attr(tag, "si"));
        let f_ref = f.and_then(|(_, _, tag, _)| attr(tag, "ref"));

        if let Some(value) = self.pending.remove(&(fr, col)) {
            if matches!(f_kind.as_deref(), Some("array" | "dataTable")) {
                return Err(Problem::Refused(format!(
                    "cell {} holds an array formula (or a data table) over {}; change it in a spreadsheet app",
                    cell_name(fr, col),
                    f_ref.unwrap_or_default()
                )));
            }
            if let (Some("shared"), Some(si), Some(text), Some(_)) = (f_kind.as_deref(), &si, &formula_text, &f_ref) {
                // Overwriting the master of a shared formula: its other cells get plain formulas.
                self.groups.insert(
                    si.clone(),
                    Group {
                        row: r,
                        col,
                        formula: text.clone(),
                        expand: true,
                    },
                );
            }
            let style = attr(ctag, "s");
            let text = cell_xml(tag_prefix(ctag), fr, col, style.as_deref(), &value);
            self.replace(start, stop, &text);
            return Ok(());
        }
        self.check_arrays()?;

        let moved = fr != r || attr(ctag, "r").is_none();
        let new_ctag = if moved {
            set_attr(ctag, "r", Some(&cell_name(fr, col)))
        } else {
            ctag.to_owned()
        };
        let Some((f_start, f_end, ftag, _)) = f else {
            if moved {
                self.replace(start, end, &new_ctag);
            }
            return Ok(());
        };
        let new_f: Option<String> = match (f_kind.as_deref(), formula_text.as_deref()) {
            (Some("shared"), Some(text)) if f_ref.is_some() => {
                let si = si.clone().unwrap_or_default();
                let (keep, ref_text) = self.shared_master(r, col, text, f_ref.as_deref().unwrap_or_default())?;
                self.groups.insert(
                    si,
                    Group {
                        row: r,
                        col,
                        formula: text.to_owned(),
                        expand: !keep,
                    },
                );
                let new_text = self.plan.transform(text);
                if keep {
                    let tag = set_attr(ftag, "ref", Some(&ref_text));
                    (new_text != text || tag != ftag)
                        .then(|| format!("{tag}{}</{}f>", escape(&new_text), tag_prefix(ftag)))
                } else {
                    Some(format!("<{p}f>{}</{p}f>", escape(&new_text), p = tag_prefix(ftag)))
                }
            }
            (Some("shared"), _) => {
                let si = si.clone().unwrap_or_default();
                match self.groups.get(&si) {
                    Some(g) if g.expand => {
                        let moved_formula = translate(
                            &g.formula,
                            i64::from(r) - i64::from(g.row),
                            i64::from(col) - i64::from(g.col),
                        );
                        Some(format!(
                            "<{p}f>{}</{p}f>",
                            escape(&self.plan.transform(&moved_formula)),
                            p = tag_prefix(ftag)
                        ))
                    }
                    Some(_) => None,
                    None if self.plan.transforms.is_empty() => None,
                    None => {
                        return Err(malformed(format!(
                            "the shared formula of cell {} comes before its first cell",
                            cell_name(r, col)
                        )));
                    }
                }
            }
            (kind, Some(text)) => {
                let new_text = self.plan.transform(text);
                let mut tag = ftag.to_owned();
                if let (Some("array" | "dataTable"), Some(range)) = (kind, f_ref.as_deref()) {
                    let mapped = self.map_range(range).ok_or_else(|| {
                        Problem::Refused(format!(
                            "the array formula over {range} would be cut by the rows inserted or deleted; change it in a spreadsheet app"
                        ))
                    })?;
                    if let Some((r1, c1, r2, c2)) = range_bounds(&mapped) {
                        self.arrays.push((r1, c1, r2, c2));
                    }
                    tag = set_attr(&tag, "ref", Some(&mapped));
                }
                (new_text != text || tag != ftag).then(|| format!("{tag}{}</{}f>", escape(&new_text), tag_prefix(ftag)))
            }
            (_, None) => None,
        };
        match new_f {
            Some(new_f) => {
                self.replace(start, end, &new_ctag);
                self.replace(f_start, f_end, &new_f);
            }
            None if moved => self.replace(start, end, &new_ctag),
            None => {}
        }
        Ok(())
    }

    /// Whether a shared formula group keeps reading right as one group after
    /// the edit, and its new range.
    fn shared_master(&self, r: u32, col: u32, text: &str, range: &str) -> Result<(bool, String), Problem> {
        let Some((_, _, r2, c2)) = range_bounds(range) else {
            return Ok((false, range.to_owned()));
        };
        let (dr, dc) = (i64::from(r2) - i64::from(r), i64::from(c2) - i64::from(col));
        let uniform = match (self.plan.map_row(r), self.plan.map_row(r2)) {
            (Some(a), Some(b)) => i64::from(b) - i64::from(a) == dr,
            _ => false,
        };
        let transformed = self.plan.transform(text);
        let keep = uniform && translate(&transformed, dr, dc) == self.plan.transform(&translate(text, dr, dc));
        let mapped = self.map_range(range).unwrap_or_else(|| range.to_owned());
        Ok((keep, mapped))
    }

    fn map_range(&self, range: &str) -> Option<String> {
        let (r1, c1, r2, c2) = range_bounds(range)?;
        let (n1, n2) = self.plan.map_span(r1, r2)?;
        if n2 - n1 != r2 - r1 {
            return None;
        }
        Some(if (r1, c1) == (r2, c2) {
            cell_name(n1, c1)
        } else {
            format!("{}:{}", cell_name(n1, c1), cell_name(n2, c2))
        })
    }

    /// Refuses a set cell inside an array formula's range (other than its first cell).
    fn check_arrays(&self) -> Result<(), Problem> {
        for &(r1, c1, r2, c2) in &self.arrays {
            for (&(r, c), _) in self.pending.range((r1, c1)..=(r2, c2)) {
                if (c1..=c2).contains(&c) && (r1..=r2).contains(&r) {
                    return Err(Problem::Refused(format!(
                        "cell {} is part of an array formula over {}; change it in a spreadsheet app",
                        cell_name(r, c),
                        format_args!("{}:{}", cell_name(r1, c1), cell_name(r2, c2))
                    )));
                }
            }
        }
        Ok(())
    }

    /// The text of a formula element outside cells (conditional formats,
    /// data validations), transformed.
    fn formula_text(&mut self, reader: &mut Reader<&[u8]>, text_start: usize, name: &str) -> Result<(), Problem> {
        let name = name.to_owned();
        reader.read_to_end(QName(&name)).map_err(malformed)?;
        if self.plan.transforms.is_empty() {
            return Ok(());
        }
        let f_end = reader.buffer_position() as usize;
        let text_end = self.xml[..f_end].rfind("</").unwrap_or(text_start);
        let text = super::xml::unescape(&self.xml[text_start..text_end]);
        let new = self.plan.transform(&text);
        if new != text {
            let escaped = escape(&new);
            self.replace(text_start, text_end, &escaped);
        }
        Ok(())
    }

    /// What lies after the cells and would not follow rows that move.
    fn check_after_data(&self, name: &str, tag: &str) -> Result<(), Problem> {
        let Some(first) = self.plan.first_moved() else {
            return Ok(());
        };
        let reaches = |refs: Option<String>| {
            refs.is_some_and(|refs| {
                refs.split_whitespace()
                    .filter_map(range_bounds)
                    .any(|(_, _, r2, _)| r2 >= first)
            })
        };
        let what = match name {
            "mergeCell" if reaches(attr(tag, "ref")) => "merged cells",
            "conditionalFormatting" if reaches(attr(tag, "sqref")) => "conditional formatting",
            "dataValidation" if reaches(attr(tag, "sqref")) => "data validation",
            "hyperlink" if reaches(attr(tag, "ref")) => "hyperlinks",
            "autoFilter" if reaches(attr(tag, "ref")) => "an auto-filter",
            "tablePart" => "a table",
            "drawing" => "drawings (charts or pictures anchored to rows)",
            "legacyDrawing" => "comments",
            "sqref" => "extended conditional formatting or validation",
            _ => return Ok(()),
        };
        Err(Problem::Refused(format!(
            "sheet {:?} has {what} at or below row {first}, which deskhand does not move with the rows; \
             insert or delete these rows in a spreadsheet app",
            self.plan.sheet
        )))
    }
}

fn tag_name(tag: &str) -> &str {
    let end = tag[1..]
        .find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
        .map_or(tag.len(), |i| i + 1);
    &tag[1..end]
}

/// `B2:D9` (or `B2`) -> (2, 2, 9, 4).
pub fn range_bounds(range: &str) -> Option<(u32, u32, u32, u32)> {
    let (a, b) = range.split_once(':').unwrap_or((range, range));
    let (r1, c1) = parse_cell(a.trim_start_matches('$').replace('$', "").as_str())?;
    let (r2, c2) = parse_cell(b.replace('$', "").as_str())?;
    Some((r1.min(r2), c1.min(c2), r1.max(r2), c1.max(c2)))
}

/// A cell element with a new value; `style` kept from the cell it replaces.
pub fn cell_xml(prefix: &str, row: u32, col: u32, style: Option<&str>, value: &NewCell) -> String {
    let r = cell_name(row, col);
    let s = style
        .map(|s| format!(" s=\"{}\"", super::xml::escape_attr(s)))
        .unwrap_or_default();
    let p = prefix;
    match value {
        NewCell::Empty if style.is_none() => String::new(),
        NewCell::Empty => format!("<{p}c r=\"{r}\"{s}/>"),
        NewCell::Number(n) => format!("<{p}c r=\"{r}\"{s}><{p}v>{n}</{p}v></{p}c>"),
        NewCell::Bool(b) => format!("<{p}c r=\"{r}\"{s} t=\"b\"><{p}v>{}</{p}v></{p}c>", u8::from(*b)),
        NewCell::Text(t) => format!(
            "<{p}c r=\"{r}\"{s} t=\"inlineStr\"><{p}is><{p}t xml:space=\"preserve\">{}</{p}t></{p}is></{p}c>",
            escape(t)
        ),
        NewCell::Formula(f) => format!("<{p}c r=\"{r}\"{s}><{p}f>{}</{p}f></{p}c>", escape(f)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan<'a>(transforms: &'a [(Transform, String)], sets: &[((u32, u32), NewCell)]) -> Plan<'a> {
        Plan {
            transforms,
            row_ops: transforms
                .iter()
                .filter_map(|(t, _)| match t {
                    Transform::Shift { op, .. } => Some(*op),
                    Transform::Rename { .. } => None,
                })
                .collect(),
            sets: sets.iter().cloned().collect(),
            sheet: "S",
        }
    }

    const SHEET: &str = r#"<worksheet><dimension ref="A1:C3"/><sheetData><row r="1" spans="1:3"><c r="A1" s="4"><v>1</v></c><c r="C1" t="s"><v>0</v></c></row><row r="2"><c r="A2"><f t="shared" ref="A2:A3" si="0">A1*2</f><v>2</v></c></row><row r="3"><c r="A3"><f t="shared" si="0"/><v>4</v></c></row></sheetData></worksheet>"#;

    #[test]
    fn a_set_keeps_the_style_and_everything_else() {
        let p = plan(
            &[],
            &[((1, 1), NewCell::Number(5.0)), ((1, 2), NewCell::Text("a<b".into()))],
        );
        let out = rewrite(SHEET, &p).unwrap();
        assert!(out.contains(r#"<row r="1"><c r="A1" s="4"><v>5</v></c><c r="B1" t="inlineStr"><is><t xml:space="preserve">a&lt;b</t></is></c><c r="C1" t="s">"#), "{out}");
        assert!(out.ends_with(&SHEET[SHEET.find("<row r=\"2\"").unwrap()..]), "{out}");
    }

    #[test]
    fn overwriting_a_shared_master_expands_the_group() {
        let p = plan(&[], &[((2, 1), NewCell::Formula("7".into()))]);
        let out = rewrite(SHEET, &p).unwrap();
        assert!(out.contains(r#"<c r="A2"><f>7</f></c>"#), "{out}");
        assert!(out.contains(r#"<c r="A3"><f>A2*2</f><v>4</v></c>"#), "{out}");
    }

    #[test]
    fn new_rows_and_cells_go_in_order() {
        let p = plan(&[], &[((5, 2), NewCell::Bool(true)), ((2, 3), NewCell::Number(1.5))]);
        let out = rewrite(SHEET, &p).unwrap();
        assert!(out.contains(r#"<v>2</v></c><c r="C2"><v>1.5</v></c></row>"#), "{out}");
        assert!(
            out.contains(r#"</row><row r="5"><c r="B5" t="b"><v>1</v></c></row></sheetData>"#),
            "{out}"
        );
        assert!(out.contains(r#"<dimension ref="A1:C5"/>"#), "{out}");
    }

    #[test]
    fn inserted_rows_move_cells_and_references() {
        let shift = |at| {
            [(
                Transform::Shift {
                    sheet: "S".into(),
                    op: RowOp::Insert { at, count: 1 },
                },
                "S".to_owned(),
            )]
        };
        // Above everything: the shared group moves as one.
        let t = shift(1);
        let out = rewrite(SHEET, &plan(&t, &[])).unwrap();
        assert!(out.contains(r#"<dimension ref="A2:C4"/>"#), "{out}");
        assert!(
            out.contains(r#"<row r="3"><c r="A3"><f t="shared" ref="A3:A4" si="0">A2*2</f>"#),
            "{out}"
        );
        assert!(out.contains(r#"<row r="4"><c r="A4"><f t="shared" si="0"/>"#), "{out}");
        // Between a formula and the cell it reads: the group becomes plain formulas.
        let t = shift(2);
        let out = rewrite(SHEET, &plan(&t, &[])).unwrap();
        assert!(out.contains(r#"<row r="3"><c r="A3"><f>A1*2</f>"#), "{out}");
        assert!(out.contains(r#"<row r="4"><c r="A4"><f>A3*2</f>"#), "{out}");
        // Inside the group.
        let t = shift(3);
        let out = rewrite(SHEET, &plan(&t, &[])).unwrap();
        assert!(out.contains(r#"<row r="2"><c r="A2"><f>A1*2</f>"#), "{out}");
        assert!(out.contains(r#"<row r="4"><c r="A4"><f>A2*2</f>"#), "{out}");
    }

    #[test]
    fn a_byte_order_mark_is_kept_and_does_not_shift_positions() {
        let with_bom = format!("\u{FEFF}{SHEET}");
        let p = plan(&[], &[((1, 1), NewCell::Number(5.0))]);
        let out = rewrite(&with_bom, &p).unwrap();
        assert_eq!(out, format!("\u{FEFF}{}", rewrite(SHEET, &p).unwrap()));
    }

    #[test]
    fn deleted_rows_disappear() {
        let t = [(
            Transform::Shift {
                sheet: "S".into(),
                op: RowOp::Delete { at: 1, count: 1 },
            },
            "S".to_owned(),
        )];
        let out = rewrite(SHEET, &plan(&t, &[])).unwrap();
        assert!(
            out.contains(r#"<sheetData><row r="1"><c r="A1"><f>#REF!*2</f>"#),
            "{out}"
        );
        assert!(out.contains(r#"<row r="2"><c r="A2"><f>A1*2</f>"#), "{out}");
    }
}
