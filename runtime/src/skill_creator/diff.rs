//! The replay's output beside the original's, value by value: a
//! workbook's sheets cell by cell (values and formulas), a PDF's pages line
//! by line of their text, a text or CSV file line by line, any other file
//! by its bytes. A big file's diff keeps its first [`MAX_DIFFERENCES`]
//! differences and counts the rest.

use serde::Serialize;
use serde_json::{Value, json};

use super::workbook::{self, Sheet, column_name, text_of};
use crate::tools::{BundledTool, Toolbox};
use crate::workspace::Workspace;

/// Differences a file's diff shows at most; the rest are counted.
pub const MAX_DIFFERENCES: usize = 20;

/// What differs between a file the run delivered and the replay's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileDiff {
    pub path: String,
    /// The first differences, in words (`Expenses!D3: 18.4 in the run, 23.9 in the replay`).
    pub differences: Vec<String>,
    /// How many more there are.
    pub more: usize,
}

impl FileDiff {
    fn push(&mut self, difference: String) {
        if self.differences.len() < MAX_DIFFERENCES {
            self.differences.push(difference);
        } else {
            self.more += 1;
        }
    }

    /// No difference at all.
    pub fn is_empty(&self) -> bool {
        self.differences.is_empty()
    }

    /// How many differences in all.
    pub fn count(&self) -> usize {
        self.differences.len() + self.more
    }
}

/// `rel` as the run (in `original`) and the replay (in `replay`) delivered it.
pub(crate) fn diff(original: &Workspace, replay: &Workspace, tb: &Toolbox, rel: &str) -> FileDiff {
    let mut d = FileDiff {
        path: rel.to_owned(),
        ..FileDiff::default()
    };
    if !replay.root().join(rel).is_file() {
        d.push("the replay did not deliver it".into());
        return d;
    }
    let ext = std::path::Path::new(rel)
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "xlsx" | "xlsm" | "ods" | "xls" => match (workbook::read(original, tb, rel), workbook::read(replay, tb, rel)) {
            (Ok(a), Ok(b)) => workbooks(&a, &b, &mut d),
            (Err(e), _) | (_, Err(e)) => d.push(e),
        },
        "pdf" => match (pages(original, tb, rel), pages(replay, tb, rel)) {
            (Ok(a), Ok(b)) => {
                if a.len() != b.len() {
                    d.push(format!("{} pages in the run, {} in the replay", a.len(), b.len()));
                }
                for (n, (pa, pb)) in a.iter().zip(&b).enumerate() {
                    lines(pa, pb, &format!("page {}, ", n + 1), &mut d);
                }
            }
            (Err(e), _) | (_, Err(e)) => d.push(e),
        },
        _ => {
            let read = |ws: &Workspace| crate::workspace::read_beneath(ws.root(), std::path::Path::new(rel));
            match (read(original), read(replay)) {
                (Ok(a), Ok(b)) => match (String::from_utf8(a.clone()), String::from_utf8(b.clone())) {
                    (Ok(ta), Ok(tb)) if ["csv", "txt", "md", "json", "tsv"].contains(&ext.as_str()) => {
                        lines(&ta, &tb, "", &mut d);
                    }
                    _ if a != b => d.push(format!(
                        "the bytes differ ({} bytes in the run, {} in the replay)",
                        a.len(),
                        b.len()
                    )),
                    _ => {}
                },
                (Err(e), _) | (_, Err(e)) => d.push(format!("{rel}: {e}")),
            }
        }
    }
    d
}

/// A PDF's text, page by page, read by the pdf tool.
fn pages(ws: &Workspace, tb: &Toolbox, rel: &str) -> Result<Vec<String>, String> {
    let args = json!({"path": ws.root().join(rel), "max_chars": 2_000_000});
    let out = tb
        .read_only(ws, BundledTool::Pdf, "text", &args)
        .map_err(|e| format!("{rel}'s text could not be read: {e}"))?;
    Ok(out
        .json
        .get("pages")
        .and_then(Value::as_array)
        .map(|p| {
            p.iter()
                .map(|p| p.get("text").and_then(Value::as_str).unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default())
}

/// Text line by line: `line 3: "a" in the run, "b" in the replay`.
fn lines(a: &str, b: &str, at: &str, d: &mut FileDiff) {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    for i in 0..la.len().max(lb.len()) {
        let (x, y) = (la.get(i), lb.get(i));
        if x != y {
            let shown = |l: Option<&&str>| l.map_or("nothing".to_owned(), |l| format!("{l:?}"));
            d.push(format!(
                "{at}line {}: {} in the run, {} in the replay",
                i + 1,
                shown(x),
                shown(y)
            ));
        }
    }
}

/// Two workbooks sheet by sheet, then cell by cell.
fn workbooks(a: &[Sheet], b: &[Sheet], d: &mut FileDiff) {
    for s in a.iter().filter(|s| !b.iter().any(|t| t.name == s.name)) {
        d.push(format!("sheet {} is not in the replay", s.name));
    }
    for s in b.iter().filter(|s| !a.iter().any(|t| t.name == s.name)) {
        d.push(format!("sheet {} is only in the replay", s.name));
    }
    for sa in a {
        let Some(sb) = b.iter().find(|t| t.name == sa.name) else {
            continue;
        };
        if sa.header != sb.header {
            d.push(format!(
                "{}'s header: {:?} in the run, {:?} in the replay",
                sa.name, sa.header, sb.header
            ));
        }
        if sa.rows.len() != sb.rows.len() {
            d.push(format!(
                "{}: {} rows in the run, {} in the replay",
                sa.name,
                sa.rows.len(),
                sb.rows.len()
            ));
        }
        for i in 0..sa.rows.len().max(sb.rows.len()) {
            let (ra, rb) = (sa.rows.get(i), sb.rows.get(i));
            let width = ra.map_or(0, Vec::len).max(rb.map_or(0, Vec::len));
            for j in 0..width {
                let (ca, cb) = (ra.and_then(|r| r.get(j)), rb.and_then(|r| r.get(j)));
                let shown = |c: Option<&workbook::Cell>| match c {
                    None => "empty".to_owned(),
                    Some(c) if c.value == Value::Null && c.formula.is_none() => "empty".to_owned(),
                    Some(c) => match &c.formula {
                        Some(f) => format!("={f} ({})", text_of(&c.value)),
                        None => format!("{:?}", text_of(&c.value)),
                    },
                };
                let (x, y) = (shown(ca), shown(cb));
                if x != y {
                    d.push(format!(
                        "{}!{}{}: {x} in the run, {y} in the replay",
                        sa.name,
                        column_name(j),
                        sa.row_number(i)
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_big_diff_keeps_its_first_differences_and_counts_the_rest() {
        let a: String = (0..50).map(|i| format!("{i}\n")).collect();
        let b: String = (0..50).map(|i| format!("{}\n", i * 2)).collect();
        let mut d = FileDiff::default();
        lines(&a, &b, "", &mut d);
        assert_eq!(d.differences.len(), MAX_DIFFERENCES);
        assert_eq!(d.count(), 49);
        assert_eq!(d.differences[0], "line 2: \"1\" in the run, \"2\" in the replay");
    }
}
