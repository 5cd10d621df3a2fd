//! A tool's JSON result as a person reads it on a terminal, for any tool:
//! fields as `key: value` lines, arrays of records as aligned columns (one
//! line per item), text with line breaks as itself, and whatever else as
//! indented items. `--json` gives the exact value.

use serde_json::{Map, Value};

/// `value` as lines of text; empty when it holds nothing to show.
pub fn render(value: &Value) -> String {
    let mut lines = Vec::new();
    match value {
        Value::Object(map) => object(map, "", &mut lines),
        Value::Array(items) => array(items, "", &mut lines),
        Value::String(s) if is_text(s) => lines.push(text(s)),
        Value::Null => {}
        scalar => lines.push(cell(scalar)),
    }
    lines.join("\n")
}

/// A string shown as a block of its own (a file's text, say), not as a field.
fn is_text(s: &str) -> bool {
    s.contains('\n')
}

fn is_scalar(v: &Value) -> bool {
    match v {
        Value::String(s) => !is_text(s),
        Value::Array(_) | Value::Object(_) => false,
        _ => true,
    }
}

/// A tool's own summary line, made safe for the terminal like the rest.
pub fn summary(text: &str) -> String {
    self::text(text)
}

/// Text from a model, a tool or a file, safe for the terminal on one line:
/// line breaks too are shown escaped, so it cannot draw a line of its own
/// (a forged approval prompt, say).
pub fn line(s: &str) -> String {
    escape(s, &[])
}

/// Text from a model, a tool or a file, safe for the terminal, its line
/// breaks and tabs kept (an answer, a diff).
pub fn block(s: &str) -> String {
    escape(s, &['\n', '\t'])
}

/// One JSON value on one line, safe for the terminal and still JSON:
/// serde_json escapes C0 controls but sends DEL and C1 controls (U+009B
/// is CSI to many terminals) and bidirectional controls as they are.
pub fn json_line(v: &Value) -> String {
    v.to_string()
        .chars()
        .map(|c| {
            if hidden(c) {
                format!("\\u{:04x}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Control characters (an escape sequence, a carriage return that rewrites
/// the line) and bidirectional controls (which reorder what is shown).
fn hidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Control characters (a terminal escape in a file name, say) are shown
/// escaped, never sent to the terminal.
fn escape(s: &str, keep: &[char]) -> String {
    s.chars()
        .map(|c| {
            if hidden(c) && !keep.contains(&c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A field name on one line (a tool's keys are its own; escape them too).
fn key(k: &str) -> String {
    escape(k, &[])
}

/// Text as itself: line breaks and tabs kept.
fn text(s: &str) -> String {
    escape(s.trim_end_matches('\n'), &['\n', '\t'])
}

/// One value on one line.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => escape(s, &[]),
        other => escape(&other.to_string(), &[]),
    }
}

/// Fields first (`key: value`, aligned), then nested arrays and objects
/// under their key, then text blocks, each after a blank line.
fn object(map: &Map<String, Value>, indent: &str, lines: &mut Vec<String>) {
    let shown = map.iter().filter(|(_, v)| !v.is_null());
    let (scalars, rest): (Vec<_>, Vec<_>) = shown.partition(|(_, v)| is_scalar(v));
    let (texts, nested): (Vec<_>, Vec<_>) = rest.into_iter().partition(|(_, v)| v.is_string());
    let width = scalars.iter().map(|(k, _)| key(k).chars().count()).max().unwrap_or(0);
    for (k, v) in &scalars {
        lines.push(format!(
            "{indent}{:<width$} {}",
            format!("{}:", key(k)),
            cell(v),
            width = width + 1
        ));
    }
    let inner = format!("{indent}  ");
    for (k, v) in nested {
        match v {
            Value::Array(items) if items.is_empty() => lines.push(format!("{indent}{}: (none)", key(k))),
            Value::Object(m) if m.is_empty() => lines.push(format!("{indent}{}: (none)", key(k))),
            Value::Array(items) => {
                lines.push(format!("{indent}{}:", key(k)));
                array(items, &inner, lines);
            }
            Value::Object(m) => {
                lines.push(format!("{indent}{}:", key(k)));
                object(m, &inner, lines);
            }
            _ => {}
        }
    }
    // A lone text needs no title; several do, to tell them apart.
    let titled = texts.len() > 1;
    for (k, v) in texts {
        if let Value::String(s) = v {
            if !lines.is_empty() {
                lines.push(String::new());
            }
            if titled {
                lines.push(format!("{indent}{}:", key(k)));
            }
            lines.push(text(s));
        }
    }
}

/// Records (objects of fields) as a table; rows of values as columns;
/// plain values one per line; anything else item by item.
fn array(items: &[Value], indent: &str, lines: &mut Vec<String>) {
    let records = items
        .iter()
        .all(|v| matches!(v, Value::Object(m) if m.values().all(is_scalar)));
    let rows = items
        .iter()
        .all(|v| matches!(v, Value::Array(r) if r.iter().all(is_scalar)));
    if records {
        let mut keys: Vec<&str> = Vec::new();
        for item in items {
            if let Value::Object(m) = item {
                for k in m.keys() {
                    if !keys.contains(&k.as_str()) {
                        keys.push(k);
                    }
                }
            }
        }
        let mut table = vec![keys.iter().map(|k| key(k)).collect::<Vec<_>>()];
        table.extend(items.iter().map(|item| keys.iter().map(|k| cell(&item[*k])).collect()));
        columns(&table, indent, lines);
    } else if rows {
        let table: Vec<Vec<String>> = items
            .iter()
            .map(|r| r.as_array().map(|r| r.iter().map(cell).collect()).unwrap_or_default())
            .collect();
        columns(&table, indent, lines);
    } else if items.iter().all(is_scalar) {
        lines.extend(items.iter().map(|v| format!("{indent}{}", cell(v))));
    } else {
        for item in items {
            let mut sub = Vec::new();
            match item {
                Value::Object(m) => object(m, "", &mut sub),
                Value::Array(a) => array(a, "", &mut sub),
                Value::String(s) => sub.push(text(s)),
                other => sub.push(cell(other)),
            }
            for (i, line) in sub.iter().enumerate() {
                let mark = if i == 0 { "- " } else { "  " };
                lines.push(format!("{indent}{mark}{line}").trim_end().to_owned());
            }
        }
    }
}

/// Aligned columns; a column of numbers is aligned right.
fn columns(table: &[Vec<String>], indent: &str, lines: &mut Vec<String>) {
    let n = table.iter().map(Vec::len).max().unwrap_or(0);
    // Once per column, not per cell: a listing can have thousands of rows.
    let widths: Vec<usize> = (0..n)
        .map(|c| {
            table
                .iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let numeric: Vec<bool> = (0..n)
        .map(|c| {
            table
                .iter()
                .skip(1)
                .filter_map(|r| r.get(c))
                .all(|s| s.is_empty() || s.parse::<f64>().is_ok())
        })
        .collect();
    for row in table {
        let mut line = indent.to_owned();
        for c in 0..n {
            let value = row.get(c).map(String::as_str).unwrap_or("");
            let w = widths[c];
            if c > 0 {
                line.push_str("  ");
            }
            if numeric[c] {
                line.push_str(&format!("{value:>w$}"));
            } else if c + 1 < n {
                line.push_str(&format!("{value:<w$}"));
            } else {
                line.push_str(value);
            }
        }
        lines.push(line.trim_end().to_owned());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{Value, block, hidden, json_line, line, render};

    #[test]
    fn keys_and_headers_are_escaped_and_a_long_listing_renders() {
        let v = json!({"na\u{1b}[31mme": "x", "rows": [{"k\u{1b}": 1}]});
        let out = render(&v);
        assert!(!out.contains('\u{1b}'), "{out}");
        // 20,000 rows: column widths are worked out once per column (a
        // per-cell scan made this quadratic and took minutes).
        let entries: Vec<_> = (0..20_000)
            .map(|i| json!({"path": format!("f{i}"), "size": i}))
            .collect();
        let out = render(&json!({ "entries": entries }));
        assert_eq!(out.lines().count(), 20_002);
    }

    #[test]
    fn records_become_aligned_columns_with_a_header() {
        let out = render(&json!({"entries": [
            {"path": "projects/a.txt", "kind": "file", "size": 3},
            {"path": "projects/sub", "kind": "dir", "size": 4096},
        ], "truncated": false}));
        assert_eq!(
            out,
            "truncated: false\n\
             entries:\n  \
             kind  path            size\n  \
             file  projects/a.txt     3\n  \
             dir   projects/sub    4096"
        );
    }

    #[test]
    fn a_lone_text_comes_after_the_fields_as_itself() {
        let out = render(&json!({"text": "line one\n\tline two\n", "size": 19}));
        assert_eq!(out, "size: 19\n\nline one\n\tline two");
    }

    #[test]
    fn several_texts_are_titled_and_nested_values_are_items() {
        let out = render(&json!({"a": "x\ny", "b": "z\nw", "sheets": [{"name": "S", "rows": [[1, "t"]]}]}));
        assert_eq!(
            out,
            "sheets:\n  - name: S\n    rows:\n      1  t\n\na:\nx\ny\n\nb:\nz\nw"
        );
    }

    #[test]
    fn terminal_escapes_are_shown_not_sent() {
        let out = render(&json!({"path": "a\u{1b}[2Jb", "text": "x\u{7}\ny"}));
        assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");
        assert!(out.contains("a\\u{1b}[2Jb"), "{out:?}");
    }

    #[test]
    fn lines_blocks_and_json_lines_show_escapes_instead_of_sending_them() {
        let hostile = "a\u{1b}]52;c;cHduZWQ=\u{7}b\r\nApprove this step? [y/N] \u{9b}2J\u{202e}txt.exe";
        let one = line(hostile);
        assert!(!one.chars().any(hidden) && !one.contains('\n'), "{one:?}");
        assert!(one.contains("\\u{1b}]52;c;"), "{one:?}");
        let kept = block("x\ny\u{1b}[8m");
        assert_eq!(kept, "x\ny\\u{1b}[8m");
        let json = json_line(&json!({"t": hostile}));
        assert!(!json.chars().any(hidden), "{json:?}");
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["t"], hostile, "still the same JSON");
    }

    #[test]
    fn scalars_and_nothing() {
        assert_eq!(render(&json!(null)), "");
        assert_eq!(render(&json!("plain")), "plain");
        assert_eq!(render(&json!([1, 2])), "1\n2");
        assert_eq!(render(&json!({"list": []})), "list: (none)");
    }
}
