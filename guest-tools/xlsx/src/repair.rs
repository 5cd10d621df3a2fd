//! Two flaws that LibreOffice and Excel pass over but calamine refuses,
//! mended in a copy of the workbook before calamine sees it:
//! - a sheet whose `state` is not one of `visible`, `hidden`, `veryHidden`
//!   (`state="show"`, written by some generators), read as visible, as
//!   LibreOffice does;
//! - a sheet whose `<dimension ref>` is not a cell range (`A1:A`, `1:5`),
//!   a hint calamine's cell reader does not need: the element is dropped.
//!
//! Only the parts that hold a flaw are rewritten; the others are copied
//! as they are, compressed bytes and all.

use std::io::{Cursor, Read, Write};
use std::path::Path;

use deskhand_guest::{ToolError, path_error};
use zip::write::SimpleFileOptions;

use crate::read::MAX_WORKBOOK_PART_BYTES;

/// How far into a worksheet part its `<dimension>` is looked for: it comes
/// right after the small `<sheetPr>`.
const DIMENSION_WITHIN: u64 = 64 * 1024;

/// The most the parts mended in one workbook may hold together: each is
/// read whole and kept, beside the file and the rebuilt copy, while the
/// copy is read.
const MAX_MENDED_BYTES: u64 = 256 * 1024 * 1024;

/// A mended copy of a workbook, and notes saying what was mended.
pub(crate) type Mended = (Vec<u8>, Vec<String>);

/// The mended workbook and what was mended, or `None` when it needs nothing
/// (or its zip cannot be read again). A part to mend larger than the tool
/// keeps in memory is refused by name.
pub(crate) fn repair(path: &Path, bytes: &[u8]) -> Result<Option<Mended>, ToolError> {
    repair_within(path, bytes, MAX_MENDED_BYTES)
}

fn repair_within(path: &Path, bytes: &[u8], limit: u64) -> Result<Option<Mended>, ToolError> {
    let Ok(mut archive) = zip::ZipArchive::new(Cursor::new(bytes)) else {
        return Ok(None);
    };
    let mut mended: Vec<(String, Vec<u8>)> = Vec::new();
    let mut notes = Vec::new();
    let mut left = limit;
    // A part read whole, counted against `left`; `None` when it cannot be read.
    let mut read_part = |archive: &mut zip::ZipArchive<Cursor<&[u8]>>, name: &str, cap: u64| {
        let Ok(entry) = archive.by_name(name) else {
            return Ok(None);
        };
        let cap = cap.min(left);
        let mut part = Vec::new();
        if entry.take(cap.saturating_add(1)).read_to_end(&mut part).is_err() {
            return Ok(None);
        }
        if part.len() as u64 > cap {
            return Err(too_large(path, name, cap));
        }
        left -= part.len() as u64;
        Ok(Some(part))
    };

    let Some(workbook) = read_part(&mut archive, "xl/workbook.xml", MAX_WORKBOOK_PART_BYTES)? else {
        return Ok(None);
    };
    let (workbook, states) = mend_states(&workbook);
    if !states.is_empty() {
        notes.push(format!(
            "the workbook marks sheets with visibility {}, which is not a valid value; they were read as visible, \
             as LibreOffice shows them",
            states.join(", ")
        ));
        mended.push(("xl/workbook.xml".to_owned(), workbook));
    }

    let sheets: Vec<String> = archive
        .file_names()
        .filter_map(Result::ok)
        .filter(|n| n.starts_with("xl/worksheets/") && n.ends_with(".xml"))
        .map(|n| n.into_owned())
        .collect();
    let mut dimensions = Vec::new();
    for name in sheets {
        let mut head = Vec::new();
        let Ok(entry) = archive.by_name(&name) else {
            return Ok(None);
        };
        if entry.take(DIMENSION_WITHIN).read_to_end(&mut head).is_err() {
            return Ok(None);
        }
        let Some((_, _, bad)) = bad_dimension(&head) else {
            continue;
        };
        let Some(mut part) = read_part(&mut archive, &name, u64::MAX)? else {
            return Ok(None);
        };
        let Some((start, end, _)) = bad_dimension(&part) else {
            return Ok(None);
        };
        part.drain(start..end);
        dimensions.push(bad);
        mended.push((name, part));
    }
    if !dimensions.is_empty() {
        notes.push(format!(
            "the workbook gives sheets a used range that is not a cell range ({}); it was ignored",
            dimensions.join(", ")
        ));
    }
    if mended.is_empty() {
        return Ok(None);
    }
    Ok(rebuild(&mut archive, bytes.len(), &mended).map(|out| (out, notes)))
}

/// The workbook with the `mended` parts in place of its own.
fn rebuild(archive: &mut zip::ZipArchive<Cursor<&[u8]>>, size: usize, mended: &[(String, Vec<u8>)]) -> Option<Vec<u8>> {
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::with_capacity(size)));
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).ok()?;
        let entry_name = entry.name().ok()?.into_owned();
        match mended.iter().find(|(name, _)| *name == entry_name) {
            Some((name, content)) => {
                let name = name.clone();
                drop(entry);
                out.start_file(name, SimpleFileOptions::default()).ok()?;
                out.write_all(content).ok()?;
            }
            None => out.raw_copy_file(entry).ok()?,
        }
    }
    Some(out.finish().ok()?.into_inner())
}

fn too_large(path: &Path, part: &str, cap: u64) -> ToolError {
    ToolError::TooLarge(path_error(
        path,
        format!(
            "has flaws that must be mended before it can be read, and its part {part} is too large to mend in \
             memory (more than {} bytes); open it in LibreOffice or Excel, save it again and read the saved copy",
            crate::count(cap)
        ),
    ))
}

/// The workbook part with each `<sheet state>` that is not valid made
/// `visible`, and the invalid values seen.
fn mend_states(xml: &[u8]) -> (Vec<u8>, Vec<String>) {
    let mut out = Vec::with_capacity(xml.len());
    let mut seen = Vec::new();
    let mut from = 0;
    for (start, end) in elements(xml, b"sheet") {
        let tag = &xml[start..end];
        let Some((v0, v1)) = attribute(tag, b"state") else {
            continue;
        };
        let value = &tag[v0..v1];
        if matches!(value, b"visible" | b"hidden" | b"veryHidden") {
            continue;
        }
        let value = format!("{:?}", String::from_utf8_lossy(value));
        if !seen.contains(&value) {
            seen.push(value);
        }
        out.extend_from_slice(&xml[from..start + v0]);
        out.extend_from_slice(b"visible");
        from = start + v1;
    }
    out.extend_from_slice(&xml[from..]);
    (out, seen)
}

/// The span of a `<dimension>` element whose `ref` is not a cell or a
/// range of cells, and that `ref`.
fn bad_dimension(xml: &[u8]) -> Option<(usize, usize, String)> {
    let (start, end) = elements(xml, b"dimension").next()?;
    let tag = &xml[start..end];
    let (v0, v1) = attribute(tag, b"ref")?;
    let value = &tag[v0..v1];
    let parts: Vec<&[u8]> = value.split(|b| *b == b':').collect();
    if parts.len() <= 2 && parts.iter().all(|p| is_cell(p)) {
        return None;
    }
    // `<dimension ...></dimension>` as well as `<dimension .../>`.
    let mut end = end;
    let close = xml[end..].iter().position(|b| *b == b'>').map(|i| end + i + 1);
    if !tag.ends_with(b"/>")
        && let Some(close) = close
        && xml[end..close].starts_with(b"</")
    {
        end = close;
    }
    Some((start, end, format!("{:?}", String::from_utf8_lossy(value))))
}

/// `A1`, `$XFD$1048576`: letters, then digits, both present.
fn is_cell(cell: &[u8]) -> bool {
    let cell: Vec<u8> = cell.iter().copied().filter(|b| *b != b'$').collect();
    let letters = cell.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    let digits = &cell[letters..];
    (1..=3).contains(&letters) && !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) && digits[0] != b'0'
}

/// The name of the tag whose `<` is just before `rest`: up to the first byte
/// that cannot be part of an XML name. Stopping there, at a `<` above all,
/// keeps a scan of every tag in a part linear: a run of a million `<` (in
/// a comment of an otherwise valid part) is a million empty names, not a
/// million scans to the end of the run.
pub(crate) fn tag_name(rest: &[u8]) -> &[u8] {
    let len = rest
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':') || *b >= 0x80))
        .unwrap_or(rest.len());
    &rest[..len]
}

/// Whether the tag whose `<` is just before `rest` has the local name
/// `name` (any namespace prefix).
pub(crate) fn is_element(rest: &[u8], name: &[u8]) -> bool {
    let tag = tag_name(rest);
    tag.rsplit(|b| *b == b':').next().unwrap_or(tag) == name
}

/// The start tags (`<` to `>`) of the elements whose local name is `name`.
fn elements<'a>(xml: &'a [u8], name: &'a [u8]) -> impl Iterator<Item = (usize, usize)> + 'a {
    xml.iter()
        .enumerate()
        .filter(|(_, b)| **b == b'<')
        .filter_map(move |(i, _)| {
            let rest = &xml[i + 1..];
            if !is_element(rest, name) {
                return None;
            }
            // A start tag holds no `<`: a run of `<sheet` without a `>` is
            // not scanned to its end once for each.
            let end = rest.iter().position(|b| matches!(b, b'<' | b'>'))?;
            (rest[end] == b'>').then_some((i, i + 1 + end + 1))
        })
}

/// Where the value of attribute `name` (no prefix) is in a start tag.
fn attribute(tag: &[u8], name: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while let Some(at) = tag[i..]
        .windows(name.len() + 1)
        .position(|w| w[..name.len()] == *name && w[name.len()] == b'=')
    {
        let at = i + at;
        let after = at + name.len() + 1;
        let preceded = at > 0 && tag[at - 1].is_ascii_whitespace();
        let quote = tag.get(after).copied();
        if preceded && matches!(quote, Some(b'"' | b'\'')) {
            let v0 = after + 1;
            let len = tag[v0..].iter().position(|b| Some(*b) == quote)?;
            return Some((v0, v0 + len));
        }
        i = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// A workbook with the parts `repair` reads: its workbook part and one
    /// worksheet.
    fn book(workbook: &str, sheet: &str) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, content) in [("xl/workbook.xml", workbook), ("xl/worksheets/sheet1.xml", sheet)] {
            zip.start_file(name, SimpleFileOptions::default()).unwrap();
            zip.write_all(content.as_bytes()).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn a_part_too_large_to_mend_is_refused_by_name() {
        let workbook = r#"<workbook><sheets><sheet name="a" state="show" r:id="rId1"/></sheets></workbook>"#;
        let sheet = format!(
            r#"<worksheet><dimension ref="1:5"/><sheetData>{}</sheetData></worksheet>"#,
            " ".repeat(4000)
        );
        let path = Path::new("in/book.xlsx");
        let (_, notes) = repair_within(path, &book(workbook, &sheet), 8000).unwrap().unwrap();
        assert_eq!(notes.len(), 2, "{notes:?}");
        // The sheet fits alone, not with the workbook part; nor does that one alone.
        for (limit, part) in [(4000, "xl/worksheets/sheet1.xml"), (50, "xl/workbook.xml")] {
            let err = repair_within(path, &book(workbook, &sheet), limit).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, ToolError::TooLarge(_)) && msg.contains("in/book.xlsx") && msg.contains(part),
                "{msg}"
            );
        }
    }

    #[test]
    fn runs_of_open_brackets_are_scanned_once() {
        let started = Instant::now();
        let run = format!(
            "<workbook><!--{}{}--><sheet state=\"show\"/></workbook>",
            "<".repeat(1 << 20),
            "<sheet".repeat(200_000)
        );
        let (out, seen) = mend_states(run.as_bytes());
        assert_eq!(seen, ["\"show\""]);
        assert!(out.ends_with(br#"<sheet state="visible"/></workbook>"#));
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    }

    #[test]
    fn invalid_sheet_states_become_visible_and_valid_ones_stay() {
        let xml = br#"<workbook><sheets><sheet name="a" state="show" r:id="rId1"/><x:sheet name="b" state='hidden' r:id="rId2"/><sheet name="state=x" r:id="rId3"/></sheets></workbook>"#;
        let (out, seen) = mend_states(xml);
        assert_eq!(seen, ["\"show\""]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"<workbook><sheets><sheet name="a" state="visible" r:id="rId1"/><x:sheet name="b" state='hidden' r:id="rId2"/><sheet name="state=x" r:id="rId3"/></sheets></workbook>"#
        );
    }

    #[test]
    fn a_dimension_that_is_not_a_cell_range_is_found_and_a_good_one_is_not() {
        for good in ["A1", "A1:C3", "$A$1:$XFD$1048576"] {
            let xml = format!(r#"<worksheet><dimension ref="{good}"/><sheetData/></worksheet>"#);
            assert_eq!(bad_dimension(xml.as_bytes()), None, "{good}");
        }
        for bad in ["A1:A", "1:5", "A:C", "", "A1:B2:C3", "A0"] {
            let xml = format!(r#"<worksheet><dimension ref="{bad}"></dimension><sheetData/></worksheet>"#);
            let (start, end, _) = bad_dimension(xml.as_bytes()).unwrap_or_else(|| panic!("{bad}"));
            assert_eq!(&xml[start..end], format!(r#"<dimension ref="{bad}"></dimension>"#));
        }
    }
}
