//! A delivered workbook's cells as the evals and the replay's diff read
//! them: values and formulas, through the xlsx tool's read-only path; its
//! totals (a `SUM` over the column above it); whether a sheet has one row
//! per file of an input folder; and a copy recalculated by LibreOffice, so
//! a total is checked by the value a spreadsheet engine computes from its
//! formula, never the value the file claims.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::tools::{BundledTool, Toolbox};
use crate::workspace::Workspace;

/// Rows read from one sheet at most, for checks and diffs.
const MAX_ROWS: u64 = 100_000;

/// One cell: its value (as the xlsx tool reads it) and its formula.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cell {
    pub value: Value,
    pub formula: Option<String>,
}

/// One sheet's header and data rows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sheet {
    pub name: String,
    /// The sheet row number of the header (1 for a sheet starting at A1).
    pub header_row: usize,
    pub header: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// A total found in a workbook: `SUM` over the cells above it in its column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Total {
    pub sheet: String,
    /// Its column's letters (`D`).
    pub column: String,
    /// The text in the first cell of its row (`Total`), how it is found again.
    pub label: String,
}

/// `0` -> `A`, `26` -> `AA`.
pub(crate) fn column_name(col: usize) -> String {
    let mut n = col + 1;
    let mut name = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        name.push(char::from(b'A' + rem as u8));
        n = (n - 1) / 26;
    }
    name.iter().rev().collect()
}

/// `A` -> `0`, `AA` -> `26`.
pub(crate) fn column_index(letters: &str) -> Option<usize> {
    if letters.is_empty() || letters.len() > 3 || !letters.chars().all(|c| c.is_ascii_uppercase()) {
        return None;
    }
    let n = letters.bytes().fold(0usize, |n, b| n * 26 + usize::from(b - b'A' + 1));
    Some(n - 1)
}

/// Reads every sheet of the workbook `rel` (under the workspace, read-only)
/// with its formulas.
pub(crate) fn read(ws: &Workspace, tb: &Toolbox, rel: &str) -> Result<Vec<Sheet>, String> {
    let path = ws.root().join(rel);
    let args = json!({"path": path, "formulas": true, "max_rows": MAX_ROWS});
    let out = tb
        .read_only(ws, BundledTool::Xlsx, "read", &args)
        .map_err(|e| format!("{rel} could not be read: {e}"))?;
    let sheets = out
        .json
        .get("sheets")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{rel} has no sheets"))?;
    Ok(sheets.iter().map(sheet).collect())
}

fn sheet(s: &Value) -> Sheet {
    let header_row = s
        .get("range")
        .and_then(Value::as_str)
        .and_then(|r| {
            r.trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .split(':')
                .next()
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(1);
    let header = s
        .get("header")
        .and_then(Value::as_array)
        .map(|h| h.iter().map(text_of).collect())
        .unwrap_or_default();
    let rows = s
        .get("rows")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    r.as_array()
                        .map(|cells| cells.iter().map(cell).collect())
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    Sheet {
        name: s.get("name").and_then(Value::as_str).unwrap_or_default().to_owned(),
        header_row,
        header,
        rows,
    }
}

fn cell(v: &Value) -> Cell {
    match v.get("formula").and_then(Value::as_str) {
        Some(f) => Cell {
            value: v.get("value").cloned().unwrap_or(Value::Null),
            formula: Some(f.trim_start_matches('=').to_owned()),
        },
        None => Cell {
            value: v.clone(),
            formula: None,
        },
    }
}

/// A cell's value as text: a number, a string, `{"amount", "currency"}`, a date.
pub(crate) fn text_of(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Object(map) => match (map.get("amount"), map.get("currency")) {
            (Some(a), Some(c)) => format!("{} {}", text_of(a), text_of(c)),
            (Some(a), None) => text_of(a),
            _ => map
                .get("value")
                .or_else(|| map.values().next())
                .map(text_of)
                .unwrap_or_default(),
        },
        other => other.to_string(),
    }
}

/// A cell's value as a number, where it is one (an amount counts).
pub(crate) fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Object(map) => map.get("amount").or_else(|| map.get("value")).and_then(number),
        _ => None,
    }
}

/// `SUM(D2:D6)` (or `SUM($D$2:$D$6)`): the column and the first and last rows.
fn sum_range(formula: &str) -> Option<(String, usize, usize)> {
    let inner = formula
        .trim()
        .strip_prefix("SUM(")
        .or_else(|| formula.trim().strip_prefix("sum("))?
        .strip_suffix(')')?;
    let (a, b) = inner.split_once(':')?;
    let cell = |c: &str| -> Option<(String, usize)> {
        let c = c.replace('$', "");
        let letters: String = c.chars().take_while(char::is_ascii_alphabetic).collect();
        let row = c[letters.len()..].parse().ok()?;
        (!letters.is_empty()).then(|| (letters.to_uppercase(), row))
    };
    let ((ca, ra), (cb, rb)) = (cell(a)?, cell(b)?);
    (ca == cb && ra <= rb).then_some((ca, ra, rb))
}

impl Sheet {
    /// The sheet row number of data row `i`.
    pub(crate) fn row_number(&self, i: usize) -> usize {
        self.header_row + 1 + i
    }

    /// The totals of this sheet: (data row, column) of each cell whose
    /// formula sums the cells above it in its own column.
    pub(crate) fn total_cells(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (i, row) in self.rows.iter().enumerate() {
            for (j, c) in row.iter().enumerate() {
                if let Some((col, _, last)) = c.formula.as_deref().and_then(sum_range)
                    && col == column_name(j)
                    && last < self.row_number(i)
                {
                    out.push((i, j));
                }
            }
        }
        out
    }

    /// The totals, named as the evals keep them.
    pub(crate) fn totals(&self) -> Vec<Total> {
        self.total_cells()
            .into_iter()
            .map(|(i, j)| Total {
                sheet: self.name.clone(),
                column: column_name(j),
                label: self.rows[i].first().map(|c| text_of(&c.value)).unwrap_or_default(),
            })
            .collect()
    }

    /// The data rows: not empty, not a row of totals.
    pub(crate) fn data_rows(&self) -> Vec<usize> {
        let totals: Vec<usize> = self.total_cells().into_iter().map(|(i, _)| i).collect();
        (0..self.rows.len())
            .filter(|i| !totals.contains(i))
            .filter(|i| {
                self.rows[*i]
                    .iter()
                    .any(|c| c.value != Value::Null || c.formula.is_some())
            })
            .collect()
    }

    /// Whether this sheet has one data row per file in `files` (names),
    /// each named in a row: then its row count follows the inputs.
    pub(crate) fn one_row_per(&self, files: &[String]) -> bool {
        let rows = self.data_rows();
        !files.is_empty()
            && rows.len() == files.len()
            && files.iter().all(|f| {
                rows.iter()
                    .any(|i| self.rows[*i].iter().any(|c| text_of(&c.value).contains(f.as_str())))
            })
    }

    /// Checks `total` on this sheet as LibreOffice recalculated it: the
    /// cell is a `SUM` formula whose value equals what the data rows above
    /// it add up to. `delivered` is the sheet as delivered, whose formula
    /// is the one shown (LibreOffice may write it its own way).
    pub(crate) fn check_total(&self, file: &str, total: &Total, delivered: Option<&Sheet>) -> Result<(), String> {
        let Some(j) = column_index(&total.column) else {
            return Err(format!("{file}: {} is not a column", total.column));
        };
        let label_of = |i: usize| self.rows[i].first().map(|c| text_of(&c.value)).unwrap_or_default();
        let at = self
            .rows
            .iter()
            .enumerate()
            .rev()
            .find(|(i, r)| label_of(*i) == total.label && r.get(j).is_some_and(|c| c.value != Value::Null))
            .map(|(i, _)| i);
        let Some(i) = at else {
            return Err(format!(
                "{file}: {} has no total in column {} (no row labelled {:?} with a value there)",
                self.name, total.column, total.label
            ));
        };
        let cell = &self.rows[i][j];
        let at_cell = format!("{}!{}{}", self.name, total.column, self.row_number(i));
        let as_delivered = delivered
            .and_then(|d| d.rows.get(i))
            .and_then(|r| r.get(j))
            .and_then(|c| c.formula.as_ref());
        let Some(formula) = as_delivered.or(cell.formula.as_ref()) else {
            return Err(format!(
                "{file}: the total in {at_cell} is a typed number ({}), not a formula: the spreadsheet cannot \
                 recompute it when a row changes",
                text_of(&cell.value)
            ));
        };
        let Some(value) = number(&cell.value) else {
            return Err(format!(
                "{file}: the total in {at_cell} (={formula}) has no number once LibreOffice recalculates it ({})",
                text_of(&cell.value)
            ));
        };
        let rows: Vec<usize> = self.data_rows().into_iter().filter(|r| *r < i).collect();
        let sum: f64 = rows
            .iter()
            .filter_map(|r| self.rows[*r].get(j))
            .filter_map(|c| number(&c.value))
            .sum();
        if (value - sum).abs() > 0.005_f64.max(sum.abs() * 1e-9) {
            return Err(format!(
                "{file}: the total in {at_cell} (={formula}) is {} once LibreOffice recalculates it, but the {} \
                 rows above it add up to {}: the formula leaves rows out or counts others",
                round(value),
                rows.len(),
                round(sum)
            ));
        }
        Ok(())
    }
}

fn round(v: f64) -> String {
    let s = format!("{v:.2}");
    s.strip_suffix(".00").map_or(s.clone(), str::to_owned)
}

/// The files in `dir` and its sub-folders (not hidden ones), by name.
pub(crate) fn files_in(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => out.push(name),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// The workbook `rel` of `ws` as LibreOffice recalculates it: a copy (read
/// beneath the workspace, so no link leads elsewhere) recalculated in the
/// shell sandbox, then read.
pub(crate) fn recalculated(ws: &Workspace, tb: &Toolbox, rel: &str) -> Result<Vec<Sheet>, String> {
    let found;
    let office = match tb.office() {
        Some(o) => o,
        None => {
            found = crate::office::LibreOffice::find_for_cache(None).ok_or_else(|| {
                format!(
                    "{rel}'s totals cannot be recalculated: LibreOffice is not installed (scripts/setup installs it)"
                )
            })?;
            &found
        }
    };
    let bytes = crate::workspace::read_beneath(ws.root(), Path::new(rel)).map_err(|e| format!("{rel}: {e}"))?;
    let scratch = tempfile::tempdir().map_err(|e| format!("no scratch folder: {e}"))?;
    let source_dir = scratch.path().join("in");
    std::fs::create_dir_all(&source_dir).map_err(|e| e.to_string())?;
    let name = Path::new(rel)
        .file_name()
        .map_or_else(|| "workbook.xlsx".into(), |n| n.to_owned());
    let source = source_dir.join(&name);
    std::fs::write(&source, bytes).map_err(|e| e.to_string())?;
    let (copy_ws, _) = Workspace::init(&scratch.path().join("ws")).map_err(|e| e.to_string())?;
    let copy = office
        .recalculated_copy(&source, &copy_ws.output_dir())
        .map_err(|e| format!("{rel} could not be recalculated by LibreOffice: {e}"))?;
    let copy_rel = copy
        .strip_prefix(copy_ws.root())
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|_| format!("{rel}: LibreOffice wrote its copy elsewhere"))?;
    read(&copy_ws, tb, &copy_rel)
}
