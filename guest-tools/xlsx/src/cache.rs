//! `cache_values`: stores in a workbook this tool wrote the values a real
//! spreadsheet engine computed for its formulas, for viewers that show the
//! stored values without recalculating (file previews, phone apps, the plan
//! UI). The host recalculates a copy with LibreOffice and hands both files
//! over; this copies each formula cell's computed value into the original,
//! leaving its formulas, formats and charts as they were, and keeps the
//! flag that makes Excel and LibreOffice recalculate on opening.
//!
//! After `edit`, the host also hands over a `baseline`: the workbook as it
//! was before the edit, recalculated by the same engine. Then only the
//! formula cells whose computed value the edit changed get a new stored
//! value; every other cell keeps the value its own spreadsheet app stored
//! (the engine may not know a function the app does), and a sheet with no
//! such cell is copied byte for byte.
//!
//! Sheets are found through the workbook's relationships; the original is
//! replaced as a whole, through a temporary file and a rename, so a reader
//! sees the old file or the new one, never half of either.

use std::collections::HashMap;
use std::fs;
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use calamine::{Data, Range, Reader, Xlsx};
use deskhand_guest::{Output, ToolError, io_error, output, path_error};
use serde::Deserialize;
use serde_json::json;
use zip::write::SimpleFileOptions;

use crate::read::{bad, read_file};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheArgs {
    /// The workbook to fill in (under output/).
    path: PathBuf,
    /// The same workbook, recalculated and saved by a spreadsheet engine.
    computed: PathBuf,
    /// The workbook before an edit, recalculated by the same engine: only
    /// cells whose computed value differs from it are stored.
    #[serde(default)]
    baseline: Option<PathBuf>,
}

pub fn cache_values(args: CacheArgs) -> Result<Output, ToolError> {
    let original = read_file(&args.path)?;
    let computed = read_file(&args.computed)?;
    let mut engine: Xlsx<_> = Xlsx::new(Cursor::new(computed)).map_err(|e| {
        bad(
            &args.computed,
            format!("cannot be read as a recalculated workbook: {e}"),
        )
    })?;
    let ours: Xlsx<_> = Xlsx::new(Cursor::new(original.as_slice()))
        .map_err(|e| bad(&args.path, format!("cannot be read as a workbook: {e}")))?;
    let mut archive = zip::ZipArchive::new(Cursor::new(original.as_slice()))
        .map_err(|e| bad(&args.path, format!("its zip directory cannot be read ({e})")))?;
    let sheet_parts = sheet_parts(&mut archive).ok_or_else(|| {
        bad(
            &args.path,
            "its workbook part does not say which file holds which sheet",
        )
    })?;
    let mut baseline = match &args.baseline {
        Some(path) => {
            let bytes = read_file(path)?;
            Some(
                Xlsx::new(Cursor::new(bytes))
                    .map_err(|e| bad(path, format!("cannot be read as a recalculated workbook: {e}")))?,
            )
        }
        None => None,
    };
    let mut parts = HashMap::new();
    for name in ours.sheet_names() {
        let part = sheet_parts.get(&name).ok_or_else(|| {
            bad(
                &args.path,
                format!("its sheet {name:?} has no part in the workbook's relationships"),
            )
        })?;
        let range = engine.worksheet_range(&name).map_err(|e| {
            bad(
                &args.computed,
                format!(
                    "has no readable sheet {name:?} ({e}); it is not a recalculated copy of {}",
                    args.path.display()
                ),
            )
        })?;
        // A sheet the baseline lacks: every formula cell counts as changed.
        let before = baseline.as_mut().and_then(|b| b.worksheet_range(&name).ok());
        parts.insert(part.clone(), (range, before));
    }

    // Patched first, so that a sheet nothing changed in is copied raw.
    let mut patched = HashMap::new();
    let mut filled = 0usize;
    for (name, (range, before)) in &parts {
        let mut entry = archive
            .by_name(name)
            .map_err(|e| bad(&args.path, format!("names a sheet part it lacks ({e})")))?;
        let mut xml = String::new();
        entry
            .read_to_string(&mut xml)
            .map_err(|e| bad(&args.path, format!("{name} is not UTF-8 XML ({e})")))?;
        let (xml, n) = patch_sheet(&xml, range, before.as_ref());
        if n > 0 {
            filled += n;
            patched.insert(name.clone(), xml);
        }
    }
    if filled == 0 {
        return Ok(output(
            &json!({"path": args.path.display().to_string(), "formulas": 0}),
            format!("no computed value in {} needed storing", args.path.display()),
        ));
    }

    let mut out = zip::ZipWriter::new(Cursor::new(Vec::with_capacity(original.len())));
    let zip_err = |e: zip::result::ZipError| bad(&args.path, format!("rewriting it failed: {e}"));
    for i in 0..archive.len() {
        let entry = archive.by_index(i).map_err(zip_err)?;
        let name = entry.name().map_err(zip_err)?.into_owned();
        let Some(xml) = patched.get(&name) else {
            out.raw_copy_file(entry).map_err(zip_err)?;
            continue;
        };
        drop(entry);
        out.start_file(name, SimpleFileOptions::default()).map_err(zip_err)?;
        out.write_all(xml.as_bytes()).map_err(|e| io_error(&args.path, &e))?;
    }
    let bytes = out.finish().map_err(zip_err)?.into_inner();
    replace(&args.path, &bytes)?;
    Ok(output(
        &json!({"path": args.path.display().to_string(), "formulas": filled}),
        format!(
            "stored the computed values of {filled} formula(s) in {}",
            args.path.display()
        ),
    ))
}

/// Which part holds each sheet: `xl/workbook.xml`'s `<sheet name r:id>`
/// through `xl/_rels/workbook.xml.rels`, as a spreadsheet reads it (tabs
/// reordered in Excel keep their file names).
fn sheet_parts(archive: &mut zip::ZipArchive<Cursor<&[u8]>>) -> Option<HashMap<String, String>> {
    let mut text = |name: &str| -> Option<String> {
        let mut s = String::new();
        archive.by_name(name).ok()?.read_to_string(&mut s).ok()?;
        Some(s)
    };
    let workbook = text("xl/workbook.xml")?;
    let rels = text("xl/_rels/workbook.xml.rels")?;
    let targets: HashMap<&str, &str> = elements(&rels, "<Relationship ")
        .filter_map(|tag| Some((attribute(tag, "Id")?, attribute(tag, "Target")?)))
        .collect();
    let mut out = HashMap::new();
    for tag in elements(&workbook, "<sheet ") {
        let name = unescape(attribute(tag, "name")?);
        let target = targets.get(attribute(tag, "r:id")?)?;
        let part = match target.strip_prefix('/') {
            Some(absolute) => absolute.to_owned(),
            None => format!("xl/{target}"),
        };
        out.insert(name, part);
    }
    Some(out)
}

/// The opening tags that start with `start` (e.g. `<sheet `), up to their `>`.
fn elements<'a>(xml: &'a str, start: &'a str) -> impl Iterator<Item = &'a str> {
    xml.match_indices(start)
        .filter_map(move |(at, _)| xml[at..].find('>').map(|end| &xml[at..=at + end]))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
fn replace(path: &Path, bytes: &[u8]) -> Result<(), ToolError> {
    let name = path
        .file_name()
        .ok_or_else(|| ToolError::InvalidArgs(format!("{} does not name a file", path.display())))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = path.with_file_name(format!(".{}.deskhand-tmp-cache-{nanos}", name.to_string_lossy()));
    let result = (|| {
        let mut file = fs::File::create_new(&tmp).map_err(|e| io_error(&tmp, &e))?;
        file.write_all(bytes).map_err(|e| io_error(&tmp, &e))?;
        file.sync_all().map_err(|e| io_error(&tmp, &e))?;
        fs::rename(&tmp, path).map_err(|e| io_error(path, &e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| match e {
        ToolError::Denied(_) => {
            ToolError::Denied(path_error(path, "is outside output/, the only folder this may change"))
        }
        other => other,
    })
}

/// Puts each formula cell's computed value in its `<v>` (with `before`, only
/// where it differs from the value computed before the edit); returns the
/// new XML and how many cells got a value.
fn patch_sheet(xml: &str, range: &Range<Data>, before: Option<&Range<Data>>) -> (String, usize) {
    let mut out = String::with_capacity(xml.len() + xml.len() / 8);
    let mut filled = 0;
    let mut rest = xml;
    while let Some(start) = rest.find("<c ") {
        out.push_str(&rest[..start]);
        let cell = &rest[start..];
        let Some(tag_end) = cell.find('>') else { break };
        let (open_tag, after_tag) = (&cell[..=tag_end], &cell[tag_end + 1..]);
        if open_tag.ends_with("/>") {
            out.push_str(open_tag);
            rest = after_tag;
            continue;
        }
        let Some(close) = after_tag.find("</c>") else { break };
        let inner = &after_tag[..close];
        rest = &after_tag[close + 4..];
        let position = attribute(open_tag, "r").and_then(cell_position);
        let value = position.and_then(|pos| range.get_value(pos));
        let unchanged = before.is_some_and(|b| position.and_then(|pos| b.get_value(pos)) == value);
        let value = if unchanged { None } else { value };
        match (formula_part(inner), value.and_then(value_xml)) {
            (Some(formula), Some((kind, v))) => {
                out.push_str(&set_type(open_tag, kind));
                out.push_str(formula);
                out.push_str("<v>");
                out.push_str(&v);
                out.push_str("</v></c>");
                filled += 1;
            }
            _ => {
                out.push_str(open_tag);
                out.push_str(inner);
                out.push_str("</c>");
            }
        }
    }
    out.push_str(rest);
    (out, filled)
}

/// The `<f>…</f>` (or `<f …/>`) of a cell's content, if it has one.
fn formula_part(inner: &str) -> Option<&str> {
    let start = inner.find("<f")?;
    let f = &inner[start..];
    let tag_end = f.find('>')?;
    if f[..=tag_end].ends_with("/>") {
        return Some(&f[..=tag_end]);
    }
    let end = f.find("</f>")?;
    Some(&f[..end + 4])
}

fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let at = tag.find(&key)? + key.len();
    let len = tag[at..].find('"')?;
    Some(&tag[at..at + len])
}

/// `B12` -> (11, 1), zero-based (row, column) as calamine counts.
fn cell_position(r: &str) -> Option<(u32, u32)> {
    let split = r.find(|c: char| c.is_ascii_digit())?;
    let (letters, digits) = r.split_at(split);
    let mut col = 0u32;
    for b in letters.bytes() {
        if !b.is_ascii_uppercase() {
            return None;
        }
        col = col.checked_mul(26)?.checked_add(u32::from(b - b'A') + 1)?;
    }
    let row: u32 = digits.parse().ok()?;
    Some((row.checked_sub(1)?, col.checked_sub(1)?))
}

/// The cell type attribute (`None`: a number) and the `<v>` text of a value.
fn value_xml(value: &Data) -> Option<(Option<&'static str>, String)> {
    Some(match value {
        Data::Empty => return None,
        Data::Int(i) => (None, i.to_string()),
        Data::Float(f) => (None, f.to_string()),
        Data::DateTime(dt) => (None, dt.as_f64().to_string()),
        Data::Bool(b) => (Some("b"), if *b { "1" } else { "0" }.to_owned()),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => (Some("str"), escape(s)),
        Data::Error(e) => (Some("e"), escape(&e.to_string())),
    })
}

/// The opening tag with its `t` attribute replaced by `kind` (or removed).
fn set_type(open_tag: &str, kind: Option<&str>) -> String {
    let mut tag = open_tag.to_owned();
    if let Some(at) = tag.find(" t=\"")
        && let Some(len) = tag[at + 4..].find('"')
    {
        tag.replace_range(at..at + 4 + len + 1, "");
    }
    if let Some(kind) = kind {
        tag.insert_str(2, &format!(" t=\"{kind}\""));
    }
    tag
}

/// XML text: `&`, `<`, `>` escaped, and the characters XML 1.0 cannot hold dropped.
fn escape(s: &str) -> String {
    s.chars()
        .filter(|&c| matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}'))
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_get_the_computed_values_and_nothing_else_changes() {
        let xml = r#"<sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1"><f>A2*2</f><v>0</v></c></row><row r="2"><c r="A2" s="2"><f>IF(A3&gt;1,"big","small")</f><v>0</v></c><c r="B2"/><c r="C2"><f>1/0</f><v>0</v></c></row></sheetData>"#;
        let mut range = Range::new((0, 0), (1, 2));
        range.set_value((0, 1), Data::Float(4.5));
        range.set_value((1, 0), Data::String("big & <small>".into()));
        range.set_value((1, 2), Data::Error(calamine::CellErrorType::Div0));
        let (patched, n) = patch_sheet(xml, &range, None);
        assert_eq!(n, 3);
        assert!(patched.contains(r#"<c r="A1" t="s"><v>0</v></c>"#), "{patched}");
        assert!(patched.contains(r#"<c r="B1"><f>A2*2</f><v>4.5</v></c>"#), "{patched}");
        assert!(
            patched.contains(
                r#"<c t="str" r="A2" s="2"><f>IF(A3&gt;1,"big","small")</f><v>big &amp; &lt;small&gt;</v></c>"#
            ),
            "{patched}"
        );
        assert!(patched.contains(r#"<c r="B2"/>"#));
        assert!(
            patched.contains(r#"<c t="e" r="C2"><f>1/0</f><v>#DIV/0!</v></c>"#),
            "{patched}"
        );
    }

    #[test]
    fn with_a_baseline_only_the_values_the_edit_changed_are_stored() {
        let xml = r#"<row r="1"><c r="A1"><f>NEWFN(1)</f><v>7</v></c><c r="B1"><f>C1*2</f><v>2</v></c><c r="C1"><v>5</v></c></row>"#;
        // The engine cannot compute A1 (an error both times) and B1 follows C1's new value.
        let mut before = Range::new((0, 0), (0, 2));
        before.set_value((0, 0), Data::Error(calamine::CellErrorType::Name));
        before.set_value((0, 1), Data::Float(2.0));
        let mut after = before.clone();
        after.set_value((0, 1), Data::Float(10.0));
        let (patched, n) = patch_sheet(xml, &after, Some(&before));
        assert_eq!(n, 1);
        assert!(
            patched.contains(r#"<c r="A1"><f>NEWFN(1)</f><v>7</v></c>"#),
            "{patched}"
        );
        assert!(patched.contains(r#"<c r="B1"><f>C1*2</f><v>10</v></c>"#), "{patched}");
        let (same, n) = patch_sheet(xml, &before, Some(&before));
        assert_eq!((same.as_str(), n), (xml, 0), "nothing changed, nothing rewritten");
    }

    #[test]
    fn cell_references_read_as_positions() {
        assert_eq!(cell_position("A1"), Some((0, 0)));
        assert_eq!(cell_position("AB12"), Some((11, 27)));
        assert_eq!(cell_position("12"), None);
        assert_eq!(cell_position("a1"), None);
    }
}
