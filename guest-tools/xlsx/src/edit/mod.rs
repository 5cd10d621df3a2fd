//! `edit`: changes an existing xlsx/xlsm workbook in place, as a proposed
//! overwrite. Only the parts the edit touches are rewritten (the worksheets
//! it changes, and `workbook.xml`, its rels and `[Content_Types].xml` where
//! sheets are added or renamed or a recalculation is asked for); every other
//! zip entry (charts, pivots, pictures, VBA, custom XML, shared strings,
//! styles) is copied raw, byte for byte. A spreadsheet library that loads
//! the whole workbook into its model loses what it does not model, so none
//! is used here.

mod formula;
mod sheet;
mod xml;

use std::collections::{BTreeMap, HashSet};
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use deskhand_guest::{Change, Output, SCRATCH, StagedFile, ToolError, io_error, path_error, proposal};
use serde::Deserialize;
use serde_json::{Value, json};
use zip::write::SimpleFileOptions;

use self::formula::{RowOp, parse_cell};
use self::sheet::{NewCell, Plan, Problem, Transform};
use self::xml::{attr, escape_attr, set_attr, unescape};
use crate::read::{bad, read_file};

/// The most a workbook's parts may decompress to.
const MAX_UNZIPPED_BYTES: u64 = 512 * 1024 * 1024;
/// The most edits one call makes.
const MAX_EDITS: usize = 10_000;

const WORKSHEET_TYPE: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet";
const WORKSHEET_CONTENT: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditArgs {
    path: PathBuf,
    edits: Vec<Edit>,
}

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Edit {
    Set {
        sheet: String,
        cell: String,
        value: Value,
    },
    InsertRows {
        sheet: String,
        row: u32,
        #[serde(default = "one")]
        count: u32,
    },
    DeleteRows {
        sheet: String,
        row: u32,
        #[serde(default = "one")]
        count: u32,
    },
    AddSheet {
        name: String,
    },
    RenameSheet {
        sheet: String,
        name: String,
    },
}

fn one() -> u32 {
    1
}

pub fn schema() -> Value {
    let sheet = json!({"type": "string", "description": "the sheet's name (as it is at this point of the edit list)"});
    json!({
        "type": "object", "required": ["path", "edits"], "additionalProperties": false,
        "properties": {
            "path": {"type": "string", "description": "the .xlsx or .xlsm workbook to change (in a folder granted read-write, or output/)"},
            "edits": {"type": "array", "minItems": 1, "maxItems": MAX_EDITS, "description": "applied in order", "items": {"oneOf": [
                {"type": "object", "required": ["op", "sheet", "cell", "value"], "additionalProperties": false, "properties": {
                    "op": {"const": "set"}, "sheet": sheet, "cell": {"type": "string", "description": "A1-style, e.g. B7"},
                    "value": {"description": "null (clears), a number, text, a boolean, {\"formula\": \"SUM(B2:B9)\"} or {\"date\": \"YYYY-MM-DD[THH:MM[:SS]]\"} (a date serial: the cell keeps its format)",
                              "oneOf": [{"type": "null"}, {"type": "number"}, {"type": "string"}, {"type": "boolean"},
                                        {"type": "object", "required": ["formula"], "additionalProperties": false, "properties": {"formula": {"type": "string"}}},
                                        {"type": "object", "required": ["date"], "additionalProperties": false, "properties": {"date": {"type": "string"}}}]}}},
                {"type": "object", "required": ["op", "sheet", "row"], "additionalProperties": false, "properties": {
                    "op": {"const": "insert_rows"}, "sheet": sheet, "row": {"type": "integer", "minimum": 1, "description": "the new rows go here; this row and those below move down"},
                    "count": {"type": "integer", "minimum": 1, "default": 1}}},
                {"type": "object", "required": ["op", "sheet", "row"], "additionalProperties": false, "properties": {
                    "op": {"const": "delete_rows"}, "sheet": sheet, "row": {"type": "integer", "minimum": 1, "description": "the first row deleted"},
                    "count": {"type": "integer", "minimum": 1, "default": 1}}},
                {"type": "object", "required": ["op", "name"], "additionalProperties": false, "properties": {
                    "op": {"const": "add_sheet"}, "name": {"type": "string", "maxLength": 31}}},
                {"type": "object", "required": ["op", "sheet", "name"], "additionalProperties": false, "properties": {
                    "op": {"const": "rename_sheet"}, "sheet": sheet, "name": {"type": "string", "maxLength": 31}}}
            ]}}
        }
    })
}

/// One sheet of the workbook as the edit goes along.
struct Sheet {
    name: String,
    /// Its part (`xl/worksheets/sheet1.xml`); `None` for a chartsheet or a dialog sheet.
    part: Option<String>,
    added: bool,
    sets: BTreeMap<(u32, u32), NewCell>,
}

/// A part's text from the archive.
fn text(archive: &mut zip::ZipArchive<Cursor<&[u8]>>, name: &str, path: &Path) -> Result<Option<String>, ToolError> {
    let Ok(mut entry) = archive.by_name(name) else {
        return Ok(None);
    };
    let mut s = String::new();
    entry
        .read_to_string(&mut s)
        .map_err(|e| bad(path, format!("its part {name} cannot be read as UTF-8 XML ({e})")))?;
    Ok(Some(s))
}

/// Checks what the file is before anything is parsed: an OOXML workbook
/// (xlsx, xlsm), not an OLE file (encrypted, or .xls), a Word or PowerPoint
/// file, an xlsb, an ODS, or a strict-OOXML workbook.
fn open_package<'a>(path: &Path, bytes: &'a [u8]) -> Result<zip::ZipArchive<Cursor<&'a [u8]>>, ToolError> {
    if bytes.starts_with(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1") {
        let marker: Vec<u8> = "EncryptedPackage".encode_utf16().flat_map(u16::to_le_bytes).collect();
        if bytes.windows(marker.len()).any(|w| w == marker.as_slice()) {
            return Err(bad(
                path,
                "is encrypted (password-protected); deskhand cannot change it. Save a copy without a password and edit that",
            ));
        }
        return Err(bad(
            path,
            "is an Excel 97-2003 (.xls) workbook; edit changes .xlsx and .xlsm files (save it as .xlsx first)",
        ));
    }
    if !bytes.starts_with(b"PK\x03\x04") && !bytes.starts_with(b"PK\x05\x06") {
        return Err(bad(path, "is not an .xlsx workbook: it is not a zip package"));
    }
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
                "would inflate to {} bytes (the cap is {MAX_UNZIPPED_BYTES})",
                crate::count(total)
            ),
        )));
    }
    if archive.file_names().any(|n| n.is_ok_and(|n| n.contains('\\'))) {
        return Err(bad(
            path,
            "is a damaged package: its part names use backslashes (xl\\workbook.xml), which OOXML does not allow; \
             open it in a spreadsheet app, save it, and edit that",
        ));
    }
    let has = |a: &zip::ZipArchive<Cursor<&[u8]>>, n: &str| a.index_for_name(n).is_some();
    if has(&archive, "word/document.xml") {
        return Err(bad(
            path,
            "is a Word document (docx), not a workbook; the xlsx tool edits .xlsx and .xlsm files",
        ));
    }
    if has(&archive, "ppt/presentation.xml") {
        return Err(bad(
            path,
            "is a PowerPoint presentation (pptx), not a workbook; the xlsx tool edits .xlsx and .xlsm files",
        ));
    }
    if has(&archive, "xl/workbook.bin") {
        return Err(bad(
            path,
            "is a binary workbook (.xlsb); edit changes .xlsx and .xlsm files",
        ));
    }
    if has(&archive, "mimetype") {
        return Err(bad(
            path,
            "is an OpenDocument file (.ods); edit changes .xlsx and .xlsm files",
        ));
    }
    Ok(archive)
}

/// The workbook part's name, from the package relationships.
fn workbook_part(archive: &mut zip::ZipArchive<Cursor<&[u8]>>, path: &Path) -> Result<String, ToolError> {
    let rels = text(archive, "_rels/.rels", path)?
        .ok_or_else(|| bad(path, "is not an OOXML package: it has no _rels/.rels"))?;
    if rels.contains("http://purl.oclc.org/ooxml/officeDocument/relationships/officeDocument") {
        return Err(bad(
            path,
            "is a Strict Open XML workbook; deskhand edits Transitional xlsx only. Save it as \"Excel Workbook (.xlsx)\" and edit that",
        ));
    }
    for tag in elements(&rels, "Relationship") {
        if attr(tag, "Type").is_some_and(|t| t.ends_with("/officeDocument/2006/relationships/officeDocument")) {
            let target = attr(tag, "Target").unwrap_or_default();
            return Ok(target.trim_start_matches('/').to_owned());
        }
    }
    Err(bad(path, "is not a workbook: its package names no main document"))
}

/// The raw start tags of the elements with local name `local`.
fn elements<'a>(xml: &'a str, local: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    xml.match_indices('<').filter_map(move |(at, _)| {
        let rest = &xml[at + 1..];
        let name_end = rest.find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')?;
        let name = &rest[..name_end];
        let l = name.rsplit(':').next()?;
        (l == local && !name.starts_with('/')).then(|| xml[at..].find('>').map(|e| &xml[at..=at + e]))?
    })
}

/// `base`'s folder joined with a relative target (`worksheets/sheet1.xml`).
fn resolve(base: &str, target: &str) -> String {
    if let Some(abs) = target.strip_prefix('/') {
        return abs.to_owned();
    }
    let mut parts: Vec<&str> = base.split('/').collect();
    parts.pop();
    for seg in target.split('/') {
        match seg {
            ".." => {
                parts.pop();
            }
            "." | "" => {}
            s => parts.push(s),
        }
    }
    parts.join("/")
}

fn rels_of(part: &str) -> String {
    match part.rsplit_once('/') {
        Some((dir, file)) => format!("{dir}/_rels/{file}.rels"),
        None => format!("_rels/{part}.rels"),
    }
}

fn check_sheet_name(name: &str, sheets: &[Sheet], except: Option<usize>) -> Result<(), ToolError> {
    let problem = if name.is_empty() || name.chars().count() > 31 {
        Some("must have 1 to 31 characters")
    } else if name.contains(['[', ']', ':', '*', '?', '/', '\\']) {
        Some("cannot contain [ ] : * ? / \\")
    } else if name.starts_with('\'') || name.ends_with('\'') {
        Some("cannot begin or end with an apostrophe")
    } else if name.eq_ignore_ascii_case("History") {
        Some("is reserved by Excel")
    } else if sheets
        .iter()
        .enumerate()
        .any(|(i, s)| Some(i) != except && s.name.to_lowercase() == name.to_lowercase())
    {
        Some("is already the name of a sheet (names are compared ignoring case)")
    } else {
        None
    };
    match problem {
        Some(p) => Err(ToolError::InvalidArgs(format!("sheet name {name:?} {p}"))),
        None => Ok(()),
    }
}

/// Days since 1899-12-30 (or 1904-01-01) and the fraction of the day.
fn date_serial(iso: &str, date1904: bool) -> Option<f64> {
    let dt = crate::typed::parse_iso(iso)?;
    let epoch = if date1904 {
        jiff::civil::date(1904, 1, 1)
    } else {
        jiff::civil::date(1899, 12, 30)
    };
    let days = epoch.until(dt.date()).ok()?.get_days();
    let mut serial = f64::from(days);
    if !date1904 && serial < 61.0 {
        // Excel counts a 29 February 1900 that never was; dates before it are one less.
        serial -= 1.0;
        if serial < 1.0 {
            return None;
        }
    }
    if let Some((h, m, s)) = dt.time {
        serial += (f64::from(h) * 3600.0 + f64::from(m) * 60.0 + f64::from(s)) / 86_400.0;
    }
    Some(serial)
}

fn new_cell(value: &Value, date1904: bool, at: &str) -> Result<NewCell, ToolError> {
    Ok(match value {
        Value::Null => NewCell::Empty,
        Value::Bool(b) => NewCell::Bool(*b),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.is_finite() => NewCell::Number(f),
            _ => {
                return Err(ToolError::InvalidArgs(format!(
                    "{at}: {n} is not a number a spreadsheet holds"
                )));
            }
        },
        Value::String(s) => NewCell::Text(s.clone()),
        Value::Object(o) => match (o.get("formula"), o.get("date"), o.len()) {
            (Some(Value::String(f)), None, 1) => {
                let f = f.trim().strip_prefix('=').unwrap_or(f.trim());
                if f.is_empty() {
                    return Err(ToolError::InvalidArgs(format!("{at}: the formula is empty")));
                }
                NewCell::Formula(f.to_owned())
            }
            (None, Some(Value::String(d)), 1) => NewCell::Number(date_serial(d, date1904).ok_or_else(|| {
                ToolError::InvalidArgs(format!(
                    "{at}: {d:?} is not a date (YYYY-MM-DD[THH:MM[:SS]], from 1900-01-01)"
                ))
            })?),
            _ => {
                return Err(ToolError::InvalidArgs(format!(
                    "{at}: a value is null, a number, text, a boolean, {{\"formula\": ...}} or {{\"date\": ...}}"
                )));
            }
        },
        Value::Array(_) => return Err(ToolError::InvalidArgs(format!("{at}: a value cannot be a list"))),
    })
}

fn problem(path: &Path, part: &str, p: Problem) -> ToolError {
    match p {
        Problem::Malformed(m) => bad(path, format!("{part}: {m}")),
        Problem::Refused(m) => bad(path, format!("cannot be edited as asked: {m}. Nothing was changed")),
    }
}

/// Whether `xml` mentions sheet `name` as a formula would (`name!`, `'name'!`).
fn mentions(xml: &str, name: &str) -> bool {
    let lower = xml.to_lowercase();
    let n = name.to_lowercase();
    let quoted = formula::quote_sheets(&[name.to_owned()]).to_lowercase();
    [
        format!("{n}!"),
        format!("{quoted}!"),
        format!("{}!", quoted.replace('\'', "&apos;")),
    ]
    .iter()
    .any(|p| lower.contains(p.as_str()))
        || lower.contains(&format!("{n}:")) && lower.contains('!')
}

pub fn edit(args: EditArgs) -> Result<Output, ToolError> {
    let path = args.path.as_path();
    if args.edits.is_empty() || args.edits.len() > MAX_EDITS {
        return Err(ToolError::InvalidArgs(format!(
            "edits must hold 1 to {MAX_EDITS} changes"
        )));
    }
    let bytes = read_file(path)?;
    let mut archive = open_package(path, &bytes)?;
    let wb_part = workbook_part(&mut archive, path)?;
    let workbook = text(&mut archive, &wb_part, path)?
        .ok_or_else(|| bad(path, format!("is damaged: its workbook part {wb_part} is missing")))?;
    if workbook.contains("http://purl.oclc.org/ooxml/spreadsheetml/main") {
        return Err(bad(
            path,
            "is a Strict Open XML workbook; deskhand edits Transitional xlsx only. Save it as \"Excel Workbook (.xlsx)\" and edit that",
        ));
    }
    let wb_rels_part = rels_of(&wb_part);
    let wb_rels = text(&mut archive, &wb_rels_part, path)?
        .ok_or_else(|| bad(path, format!("is damaged: {wb_rels_part} is missing")))?;
    let content_types = text(&mut archive, "[Content_Types].xml", path)?
        .ok_or_else(|| bad(path, "is damaged: [Content_Types].xml is missing"))?;
    let date1904 = elements(&workbook, "workbookPr")
        .next()
        .and_then(|t| attr(t, "date1904"))
        .is_some_and(|v| v == "1" || v == "true");

    let targets: Vec<(String, String, String)> = elements(&wb_rels, "Relationship")
        .filter_map(|t| Some((attr(t, "Id")?, attr(t, "Type").unwrap_or_default(), attr(t, "Target")?)))
        .collect();
    let mut sheets = Vec::new();
    for tag in elements(&workbook, "sheet") {
        let name = attr(tag, "name").ok_or_else(|| bad(path, "is damaged: a sheet has no name"))?;
        let rid = attr(tag, "r:id").or_else(|| {
            // Another prefix for the relationships namespace.
            tag.split_whitespace().find(|a| a.contains(":id=")).and_then(|a| {
                a.split_once('=')
                    .map(|(_, v)| unescape(v.trim_matches(['"', '\'', '/', '>'])))
            })
        });
        let rel = rid.and_then(|id| targets.iter().find(|(i, _, _)| *i == id));
        let part = rel
            .filter(|(_, ty, _)| ty.ends_with("/worksheet"))
            .map(|(_, _, target)| resolve(&wb_part, target));
        sheets.push(Sheet {
            name,
            part,
            added: false,
            sets: BTreeMap::new(),
        });
    }
    if sheets.is_empty() {
        return Err(bad(path, "is damaged: its workbook lists no sheets"));
    }

    // The edits, in order: sheets resolved by their name at that point.
    let mut transforms: Vec<(Transform, String, usize)> = Vec::new();
    let mut set_queue: Vec<(usize, usize, String, u32, u32, NewCell)> = Vec::new();
    let find = |sheets: &[Sheet], name: &str| -> Result<usize, ToolError> {
        sheets
            .iter()
            .position(|s| s.name == name)
            .or_else(|| sheets.iter().position(|s| s.name.eq_ignore_ascii_case(name)))
            .ok_or_else(|| {
                let names: Vec<&str> = sheets.iter().map(|s| s.name.as_str()).collect();
                ToolError::InvalidArgs(format!("no sheet {name:?}; the sheets are {names:?}"))
            })
    };
    for (i, e) in args.edits.iter().enumerate() {
        let at = format!("edit {}", i + 1);
        match e {
            Edit::Set { sheet, cell, value } => {
                let s = find(&sheets, sheet)?;
                if sheets[s].part.is_none() && !sheets[s].added {
                    return Err(ToolError::InvalidArgs(format!(
                        "{at}: {sheet:?} is a chart sheet, not a worksheet"
                    )));
                }
                let (row, col) = parse_cell(&cell.replace('$', ""))
                    .ok_or_else(|| ToolError::InvalidArgs(format!("{at}: {cell:?} is not a cell reference like B7")))?;
                set_queue.push((i, s, sheets[s].name.clone(), row, col, new_cell(value, date1904, &at)?));
            }
            Edit::InsertRows { sheet, row, count } | Edit::DeleteRows { sheet, row, count } => {
                let s = find(&sheets, sheet)?;
                if sheets[s].part.is_none() && !sheets[s].added {
                    return Err(ToolError::InvalidArgs(format!(
                        "{at}: {sheet:?} is a chart sheet, not a worksheet"
                    )));
                }
                let in_range =
                    *row >= 1 && *count >= 1 && u64::from(*row) + u64::from(*count) <= u64::from(formula::MAX_ROW) + 1;
                if !in_range {
                    return Err(ToolError::InvalidArgs(format!(
                        "{at}: rows {row} to {row}+{count} are outside the sheet"
                    )));
                }
                let op = if matches!(e, Edit::InsertRows { .. }) {
                    RowOp::Insert {
                        at: *row,
                        count: *count,
                    }
                } else {
                    RowOp::Delete {
                        at: *row,
                        count: *count,
                    }
                };
                let name = sheets[s].name.clone();
                transforms.push((
                    Transform::Shift {
                        sheet: name.clone(),
                        op,
                    },
                    name,
                    i,
                ));
            }
            Edit::AddSheet { name } => {
                check_sheet_name(name, &sheets, None)?;
                sheets.push(Sheet {
                    name: name.clone(),
                    part: None,
                    added: true,
                    sets: BTreeMap::new(),
                });
            }
            Edit::RenameSheet { sheet, name } => {
                let s = find(&sheets, sheet)?;
                check_sheet_name(name, &sheets, Some(s))?;
                let old = std::mem::replace(&mut sheets[s].name, name.clone());
                transforms.push((Transform::Rename { old, new: name.clone() }, String::new(), i));
            }
        }
    }
    // Each set's cell and formula go through the edits that come after it.
    for (i, s, home, row, col, value) in set_queue {
        let mut pos = Some(row);
        let mut value = value;
        let mut home = home;
        for (t, _, _) in transforms.iter().filter(|(_, _, j)| *j > i) {
            if let Transform::Shift { sheet, op } = t
                && sheet.eq_ignore_ascii_case(&home)
            {
                pos = pos.and_then(|r| op.map(r));
            }
            if let NewCell::Formula(f) = &value {
                value = NewCell::Formula(t.apply(f, &home));
            }
            if let Transform::Rename { old, new } = t
                && old.eq_ignore_ascii_case(&home)
            {
                home = new.clone();
            }
        }
        if let Some(r) = pos {
            sheets[s].sets.insert((r, col), value);
        }
    }

    // Parts that hold references and would not follow: refuse rather than break them.
    let moved: Vec<(&str, u32)> = transforms
        .iter()
        .filter_map(|(t, _, _)| match t {
            Transform::Shift { sheet, op } => Some((sheet.as_str(), op.first())),
            Transform::Rename { .. } => None,
        })
        .collect();
    let renamed_from: Vec<&str> = transforms
        .iter()
        .filter_map(|(t, _, _)| match t {
            Transform::Rename { old, .. } => Some(old.as_str()),
            Transform::Shift { .. } => None,
        })
        .collect();
    let names: Vec<String> = (0..archive.len())
        .map(|i| {
            let entry = archive
                .by_index_raw(i)
                .map_err(|e| bad(path, format!("is damaged: zip entry {i} ({e})")))?;
            Ok(entry
                .name()
                .map_err(|e| bad(path, format!("is damaged: zip entry {i} ({e})")))?
                .into_owned())
        })
        .collect::<Result<_, ToolError>>()?;
    for name in &names {
        let dependent = name.starts_with("xl/charts/chart")
            || name.starts_with("xl/pivotCache/")
            || name.starts_with("xl/chartsheets/");
        if !dependent || !name.ends_with(".xml") || (moved.is_empty() && renamed_from.is_empty()) {
            continue;
        }
        let Some(xml) = text(&mut archive, name, path)? else {
            continue;
        };
        for (sheet, from) in &moved {
            let hit = elements(&xml, "worksheetSource")
                .any(|t| attr(t, "sheet").is_some_and(|s| s.eq_ignore_ascii_case(sheet)))
                || formula_texts(&xml, "f").any(|f| formula::reaches(&f, sheet, false, *from));
            if hit {
                return Err(bad(
                    path,
                    format!(
                        "cannot be edited as asked: {name} (a chart or pivot table) refers to rows of sheet {sheet:?} that would move; deskhand does not rewrite charts and pivot tables. Nothing was changed"
                    ),
                ));
            }
        }
        for old in &renamed_from {
            if mentions(&xml, old)
                || elements(&xml, "worksheetSource")
                    .any(|t| attr(t, "sheet").is_some_and(|s| s.eq_ignore_ascii_case(old)))
            {
                return Err(bad(
                    path,
                    format!(
                        "cannot be edited as asked: {name} (a chart or pivot table) refers to sheet {old:?} by name; deskhand does not rewrite charts and pivot tables. Nothing was changed"
                    ),
                ));
            }
        }
    }

    // New sheets get parts, rels and content types.
    let mut taken: HashSet<String> = names.iter().map(|n| n.to_lowercase()).collect();
    let mut rel_ids: HashSet<String> = targets.iter().map(|(i, _, _)| i.clone()).collect();
    let mut added_parts = Vec::new();
    for s in sheets.iter_mut().filter(|s| s.added) {
        let dir = resolve(&wb_part, "worksheets/x");
        let dir = dir.trim_end_matches("/x");
        let part = (1..)
            .map(|n| format!("{dir}/sheet{n}.xml"))
            .find(|p| !taken.contains(&p.to_lowercase()))
            .unwrap_or_default();
        taken.insert(part.to_lowercase());
        let rid = (1..)
            .map(|n| format!("rId{n}"))
            .find(|r| !rel_ids.contains(r))
            .unwrap_or_default();
        rel_ids.insert(rid.clone());
        let target = part
            .strip_prefix(&format!("{}/", wb_part.rsplit_once('/').map_or("", |(d, _)| d)))
            .unwrap_or(&part)
            .to_owned();
        added_parts.push((s.name.clone(), part.clone(), rid, target));
        s.part = Some(part);
    }

    let new_formulas = sheets.iter().any(|s| s.added && !s.sets.is_empty());
    let mut rewritten: Vec<String> = Vec::new();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::with_capacity(bytes.len() + 4096)));
    let zip_err = |e: zip::result::ZipError| bad(path, format!("rewriting it failed: {e}"));
    let all_transforms: Vec<(Transform, String)> = transforms.iter().map(|(t, h, _)| (t.clone(), h.clone())).collect();
    let mut calc_chain: Option<String> = None;
    for (_, ty, target) in &targets {
        if ty.ends_with("/calcChain") {
            calc_chain = Some(resolve(&wb_part, target));
        }
    }
    let mut dropped_calc_chain = false;
    let mut any_sheet_changed = false;
    // Worksheets first (their outcome decides the workbook-level parts).
    let mut new_sheet_xml: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (index, s) in sheets.iter().enumerate() {
        let Some(part) = &s.part else { continue };
        let original = if s.added {
            Some(EMPTY_SHEET.to_owned())
        } else {
            text(&mut archive, part, path)?
        };
        let Some(original) = original else {
            return Err(bad(
                path,
                format!("is damaged: the part {part} of sheet {:?} is missing", s.name),
            ));
        };
        // The sheet's name at each transform, for its unqualified references.
        let homes = homes_of(&sheets, index, &transforms);
        let own_ops: Vec<RowOp> = transforms
            .iter()
            .zip(&homes)
            .filter_map(|((t, _, _), home)| match t {
                Transform::Shift { sheet, op } if sheet.eq_ignore_ascii_case(home) => Some(*op),
                _ => None,
            })
            .collect();
        let relevant = !s.sets.is_empty()
            || !own_ops.is_empty()
            || transforms.iter().any(|(t, _, _)| match t {
                Transform::Shift { sheet, .. } => mentions(&original, sheet),
                Transform::Rename { old, .. } => mentions(&original, old),
            });
        if !relevant && !s.added {
            continue;
        }
        let per_sheet: Vec<(Transform, String)> = all_transforms
            .iter()
            .zip(homes)
            .map(|((t, _), home)| (t.clone(), home))
            .collect();
        let plan = Plan {
            transforms: &per_sheet,
            row_ops: own_ops,
            sets: s.sets.clone(),
            sheet: &s.name,
        };
        let new = sheet::rewrite(&original, &plan).map_err(|p| problem(path, part, p))?;
        if new != original || s.added {
            new_sheet_xml.insert(part.clone(), new.into_bytes());
            if !s.added {
                any_sheet_changed = true;
                rewritten.push(part.clone());
            }
        }
    }
    let recalc = any_sheet_changed || new_formulas;
    let drop_chain = recalc && calc_chain.as_ref().is_some_and(|c| names.contains(c));

    // workbook.xml: renamed and added sheets, defined names, full recalculation on load.
    let new_workbook = rewrite_workbook(&workbook, &sheets, &added_parts, &all_transforms, recalc, path)?;
    let new_rels = rewrite_rels(
        &wb_rels,
        &added_parts,
        drop_chain.then_some(()).and(calc_chain.as_deref()),
        &wb_part,
    );
    let new_types = rewrite_content_types(
        &content_types,
        &added_parts,
        drop_chain.then_some(()).and(calc_chain.as_deref()),
    );

    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(zip_err)?;
        let name = entry.name().map_err(zip_err)?.into_owned();
        drop(entry);
        let replacement: Option<Vec<u8>> = if Some(&name) == calc_chain.as_ref() && drop_chain {
            dropped_calc_chain = true;
            continue;
        } else if name == wb_part {
            (new_workbook != workbook).then(|| new_workbook.clone().into_bytes())
        } else if name == wb_rels_part {
            (new_rels != wb_rels).then(|| new_rels.clone().into_bytes())
        } else if name == "[Content_Types].xml" {
            (new_types != content_types).then(|| new_types.clone().into_bytes())
        } else {
            new_sheet_xml.remove(&name)
        };
        match replacement {
            None => {
                let entry = archive.by_index_raw(i).map_err(zip_err)?;
                out.raw_copy_file(entry).map_err(zip_err)?;
            }
            Some(content) => {
                if [wb_part.as_str(), wb_rels_part.as_str(), "[Content_Types].xml"].contains(&name.as_str()) {
                    rewritten.push(name.clone());
                }
                write_entry(&mut out, &name, &content).map_err(|e| bad(path, format!("rewriting it failed: {e}")))?;
            }
        }
    }
    for (part, content) in &new_sheet_xml {
        write_entry(&mut out, part, content).map_err(|e| bad(path, format!("rewriting it failed: {e}")))?;
    }
    let result = out.finish().map_err(zip_err)?.into_inner();

    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "workbook.xlsx".into());
    let staged = Path::new(SCRATCH).join(format!("edit-{stem}"));
    let mut file = std::fs::File::create_new(&staged).map_err(|e| io_error(&staged, &e))?;
    file.write_all(&result).map_err(|e| io_error(&staged, &e))?;
    drop(file);

    let sets: usize = sheets.iter().map(|s| s.sets.len()).sum();
    let summary = json!({
        "proposed": "overwrite",
        "path": path.display().to_string(),
        "edits": args.edits.len(),
        "cells_set": sets,
        "parts_rewritten": rewritten,
        "parts_added": added_parts.iter().map(|(_, p, _, _)| p.clone()).collect::<Vec<_>>(),
        "calc_chain_dropped": dropped_calc_chain,
        "recalculate_on_open": recalc,
        "size": result.len(),
    });
    let text = format!(
        "proposed to overwrite {} with {} edit(s) ({} part(s) rewritten, the rest copied unchanged)",
        path.display(),
        args.edits.len(),
        rewritten.len() + added_parts.len()
    );
    let change = Change::Overwrite(StagedFile {
        path: path.display().to_string(),
        staged: staged.display().to_string(),
    });
    Ok(proposal(&summary, text, vec![change]))
}

const EMPTY_SHEET: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"><dimension ref=\"A1\"/><sheetData/><pageMargins left=\"0.7\" right=\"0.7\" top=\"0.75\" bottom=\"0.75\" header=\"0.3\" footer=\"0.3\"/></worksheet>";

fn write_entry(out: &mut zip::ZipWriter<Cursor<Vec<u8>>>, name: &str, content: &[u8]) -> Result<(), String> {
    // Big sheets at deflate level 1: level 6 takes several times longer for little gain.
    let level = if content.len() > 4 * 1024 * 1024 { 1 } else { 6 };
    let options = SimpleFileOptions::default().compression_level(Some(level));
    out.start_file(name, options).map_err(|e| e.to_string())?;
    out.write_all(content).map_err(|e| e.to_string())
}

/// Sheet `index`'s name at each transform.
fn homes_of(sheets: &[Sheet], index: usize, transforms: &[(Transform, String, usize)]) -> Vec<String> {
    let mut name = sheets[index].name.clone();
    let mut homes = vec![String::new(); transforms.len()];
    for (k, (t, _, _)) in transforms.iter().enumerate().rev() {
        if let Transform::Rename { old, new } = t
            && new.eq_ignore_ascii_case(&name)
        {
            name = old.clone();
        }
        homes[k] = name.clone();
    }
    homes
}

/// The texts of elements with local name `local` (e.g. a chart's `<c:f>`).
fn formula_texts<'a>(xml: &'a str, local: &'a str) -> impl Iterator<Item = String> + 'a {
    elements(xml, local).filter_map(move |tag| {
        let start = xml.find(tag)? + tag.len();
        let end = start + xml[start..].find("</")?;
        Some(unescape(&xml[start..end]))
    })
}

fn rewrite_workbook(
    workbook: &str,
    sheets: &[Sheet],
    added: &[(String, String, String, String)],
    transforms: &[(Transform, String)],
    recalc: bool,
    path: &Path,
) -> Result<String, ToolError> {
    let mut out = workbook.to_owned();
    // Renames: each `<sheet>` in order gets its final name.
    let mut search = 0;
    let mut i = 0;
    loop {
        let next = elements(&out[search..], "sheet").next().map(str::to_owned);
        let Some(tag) = next else { break };
        let at = search + out[search..].find(&tag).unwrap_or(0);
        if let Some(s) = sheets.get(i).filter(|s| !s.added)
            && attr(&tag, "name").as_deref() != Some(s.name.as_str())
        {
            let new = set_attr(&tag, "name", Some(&s.name));
            out.replace_range(at..at + tag.len(), &new);
            search = at + new.len();
        } else {
            search = at + tag.len();
        }
        i += 1;
    }
    // Defined names follow renames and moved rows.
    if !transforms.is_empty() {
        let mut result = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(tag) = elements(rest, "definedName").next() {
            let at = rest.find(tag).unwrap_or(0);
            let body_start = at + tag.len();
            if tag.ends_with("/>") {
                result.push_str(&rest[..body_start]);
                rest = &rest[body_start..];
                continue;
            }
            let Some(len) = rest[body_start..].find("</") else {
                break;
            };
            let text = unescape(&rest[body_start..body_start + len]);
            let mut new = text.clone();
            for (t, _) in transforms {
                new = t.apply(&new, "\u{0}");
            }
            result.push_str(&rest[..body_start]);
            result.push_str(&self::xml::escape(&new));
            rest = &rest[body_start + len..];
        }
        result.push_str(rest);
        out = result;
    }
    if !added.is_empty() {
        let close = out
            .rfind("sheets>")
            .and_then(|i| out[..i].rfind("</"))
            .ok_or_else(|| bad(path, "is damaged: its workbook part has no </sheets>"))?;
        let prefix = xml::tag_prefix(&out[close + 1..]).trim_start_matches('/').to_owned();
        let rid_attr = elements(&out, "sheet")
            .next()
            .and_then(|t| {
                t.split_whitespace()
                    .find(|a| a.contains(":id="))
                    .and_then(|a| a.split_once('='))
                    .map(|(k, _)| k.to_owned())
            })
            .unwrap_or_else(|| "r:id".to_owned());
        let mut max_id: u32 = elements(&out, "sheet")
            .filter_map(|t| attr(t, "sheetId")?.parse().ok())
            .max()
            .unwrap_or(0);
        let mut tags = String::new();
        for (name, _, rid, _) in added {
            max_id += 1;
            tags.push_str(&format!(
                "<{prefix}sheet name=\"{}\" sheetId=\"{max_id}\" {rid_attr}=\"{rid}\"/>",
                escape_attr(name)
            ));
        }
        out.insert_str(close, &tags);
    }
    if recalc {
        let calc_pr = elements(&out, "calcPr").next().map(str::to_owned);
        if let Some(tag) = calc_pr {
            let new = set_attr(&tag, "fullCalcOnLoad", Some("1"));
            out = out.replacen(&tag, &new, 1);
        } else {
            // calcPr comes after definedNames and before the elements listed here.
            let later = [
                "oleSize",
                "customWorkbookViews",
                "pivotCaches",
                "smartTagPr",
                "smartTagTypes",
                "webPublishing",
                "fileRecoveryPr",
                "webPublishObjects",
                "extLst",
            ];
            let root_prefix = elements(&out, "workbook")
                .next()
                .map(|t| xml::tag_prefix(t).to_owned())
                .unwrap_or_default();
            let at = later
                .iter()
                .filter_map(|l| elements(&out, l).next().and_then(|t| out.find(t)))
                .min()
                .or_else(|| out.rfind("</").filter(|_| out.trim_end().ends_with("workbook>")))
                .ok_or_else(|| bad(path, "is damaged: its workbook part does not close"))?;
            out.insert_str(at, &format!("<{root_prefix}calcPr fullCalcOnLoad=\"1\"/>"));
        }
    }
    Ok(out)
}

fn rewrite_rels(rels: &str, added: &[(String, String, String, String)], drop: Option<&str>, wb_part: &str) -> String {
    let mut out = rels.to_owned();
    if let Some(chain) = drop {
        let tags: Vec<String> = elements(rels, "Relationship")
            .filter(|t| {
                attr(t, "Type").is_some_and(|ty| ty.ends_with("/calcChain"))
                    && attr(t, "Target").is_some_and(|tg| resolve(wb_part, &tg) == chain)
            })
            .map(str::to_owned)
            .collect();
        for t in tags {
            out = out.replacen(&t, "", 1);
        }
    }
    if !added.is_empty()
        && let Some(close) = out.rfind("</")
    {
        let tags: String = added
            .iter()
            .map(|(_, _, rid, target)| {
                format!(
                    "<Relationship Id=\"{rid}\" Type=\"{WORKSHEET_TYPE}\" Target=\"{}\"/>",
                    escape_attr(target)
                )
            })
            .collect();
        out.insert_str(close, &tags);
    }
    out
}

fn rewrite_content_types(types: &str, added: &[(String, String, String, String)], drop: Option<&str>) -> String {
    let mut out = types.to_owned();
    if let Some(chain) = drop {
        let part = format!("/{chain}");
        let tags: Vec<String> = elements(types, "Override")
            .filter(|t| attr(t, "PartName").is_some_and(|p| p.eq_ignore_ascii_case(&part)))
            .map(str::to_owned)
            .collect();
        for t in tags {
            out = out.replacen(&t, "", 1);
        }
    }
    if !added.is_empty()
        && let Some(close) = out.rfind("</")
    {
        let tags: String = added
            .iter()
            .map(|(_, part, _, _)| {
                format!(
                    "<Override PartName=\"/{}\" ContentType=\"{WORKSHEET_CONTENT}\"/>",
                    escape_attr(part)
                )
            })
            .collect();
        out.insert_str(close, &tags);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::date_serial;

    #[test]
    fn date_serials_count_excels_phantom_leap_day() {
        assert_eq!(date_serial("1900-01-01", false), Some(1.0));
        assert_eq!(date_serial("1900-02-28", false), Some(59.0));
        assert_eq!(date_serial("1900-03-01", false), Some(61.0));
        assert_eq!(date_serial("2024-02-29T12:00:00", false), Some(45_351.5));
        assert_eq!(date_serial("1904-01-02", true), Some(1.0));
        assert_eq!(date_serial("1899-12-31", false), None);
    }
}
