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

use zip::write::SimpleFileOptions;

/// How far into a worksheet part its `<dimension>` is looked for: it comes
/// right after the small `<sheetPr>`.
const DIMENSION_WITHIN: u64 = 64 * 1024;

/// The mended workbook and what was mended, or `None` when it needs nothing.
pub(crate) fn repair(bytes: &[u8]) -> Option<(Vec<u8>, Vec<String>)> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
    let mut mended: Vec<(String, Vec<u8>)> = Vec::new();
    let mut notes = Vec::new();

    let mut workbook = Vec::new();
    archive
        .by_name("xl/workbook.xml")
        .ok()?
        .read_to_end(&mut workbook)
        .ok()?;
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
        archive
            .by_name(&name)
            .ok()?
            .take(DIMENSION_WITHIN)
            .read_to_end(&mut head)
            .ok()?;
        let Some((_, _, bad)) = bad_dimension(&head) else {
            continue;
        };
        let mut part = Vec::new();
        archive.by_name(&name).ok()?.read_to_end(&mut part).ok()?;
        let (start, end, _) = bad_dimension(&part)?;
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
        return None;
    }

    let mut out = zip::ZipWriter::new(Cursor::new(Vec::with_capacity(bytes.len())));
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
    Some((out.finish().ok()?.into_inner(), notes))
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

/// The start tags (`<` to `>`) of the elements whose local name is `name`.
fn elements<'a>(xml: &'a [u8], name: &'a [u8]) -> impl Iterator<Item = (usize, usize)> + 'a {
    xml.iter()
        .enumerate()
        .filter(|(_, b)| **b == b'<')
        .filter_map(move |(i, _)| {
            let rest = &xml[i + 1..];
            let len = rest
                .iter()
                .position(|b| b.is_ascii_whitespace() || matches!(b, b'/' | b'>'))
                .unwrap_or(rest.len());
            let tag = &rest[..len];
            let local = tag.rsplit(|b| *b == b':').next().unwrap_or(tag);
            if local != name {
                return None;
            }
            let end = rest.iter().position(|b| *b == b'>')?;
            Some((i, i + 1 + end + 1))
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
    use super::*;

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
