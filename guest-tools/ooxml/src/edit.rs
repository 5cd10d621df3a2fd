//! Editing an existing package in place, for the docx and pptx `edit` and
//! `fill` operations: text replaced inside the paragraphs of one XML part
//! ([`replace_in_part`]), `{{name}}` placeholders found ([`placeholders`]),
//! the package written again with only the changed parts rewritten and
//! every other zip entry copied raw, byte for byte ([`rewrite`]), and the
//! result staged as an overwrite proposal ([`stage_overwrite`]).
//!
//! A part is edited as text, not through a document model: only the
//! content of the `t` elements a replacement touches changes (and their
//! start tag gains `xml:space="preserve"` where the new text needs it), so
//! everything the editor does not understand survives untouched.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Write};
use std::ops::Range;
use std::path::Path;

use deskhand_guest::{Change, SCRATCH, StagedFile, ToolError, io_error};
use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

use crate::esc;
use crate::read::bad;

const W_NS: &str = "http://schemas.openxmlformats.org/wordprocessingml/2006/main";
const A_NS: &str = "http://schemas.openxmlformats.org/drawingml/2006/main";

/// The longest placeholder name [`placeholders`] reports.
pub const MAX_PLACEHOLDER_CHARS: usize = 100;

/// Which paragraph vocabulary a part uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// WordprocessingML: `w:p` / `w:r` / `w:t`.
    Word,
    /// DrawingML (slides, notes, shapes): `a:p` / `a:r` / `a:t`.
    Drawing,
}

impl Flavor {
    fn ns(self) -> &'static str {
        match self {
            Flavor::Word => W_NS,
            Flavor::Drawing => A_NS,
        }
    }

    /// Elements inside a paragraph that stand between two pieces of text
    /// (a tab, a line break, a picture): no match runs across them.
    fn is_barrier(self, local: &str) -> bool {
        match self {
            Flavor::Word => matches!(
                local,
                "tab"
                    | "br"
                    | "cr"
                    | "ptab"
                    | "drawing"
                    | "sym"
                    | "object"
                    | "pict"
                    | "footnoteReference"
                    | "endnoteReference"
                    | "noBreakHyphen"
            ),
            Flavor::Drawing => matches!(local, "br" | "fld"),
        }
    }
}

/// One `t` element with text: where its content lies in the part.
struct Segment {
    /// The start tag, for `xml:space`.
    open_tag: Range<usize>,
    /// Its content (between the start and the end tag), raw.
    content: Range<usize>,
    /// The tag's qualified name (`w:t`), to write breaks with its prefix.
    qname: String,
    preserve: bool,
    text: String,
}

/// A paragraph's text as characters, each from a segment (its index) or a barrier.
#[derive(Default)]
struct Paragraph {
    chars: Vec<(char, Option<usize>)>,
}

/// The part's paragraphs and their text segments.
struct Scan {
    segments: Vec<Segment>,
    paragraphs: Vec<Paragraph>,
}

fn local_of(qname: &str) -> &str {
    qname.rsplit_once(':').map_or(qname, |(_, l)| l)
}

fn scan(xml: &str, flavor: Flavor) -> Result<Scan, String> {
    let mut reader = NsReader::from_str(xml);
    reader.config_mut().expand_empty_elements = false;
    let ns = flavor.ns();
    let mut segments: Vec<Segment> = Vec::new();
    let mut paragraphs: Vec<Paragraph> = Vec::new();
    // Open elements: (in the flavor's namespace, local name).
    let mut stack: Vec<(bool, String)> = Vec::new();
    // Paragraphs open now, innermost last (a text box's paragraphs sit inside a run).
    let mut open_paras: Vec<usize> = Vec::new();
    // The `t` element being read: (its segment, its depth in `stack`).
    let mut in_t: Option<(usize, usize)> = None;
    loop {
        let at = reader.buffer_position() as usize;
        let (resolved, event) = reader
            .read_resolved_event()
            .map_err(|e| format!("is not well-formed XML near byte {at} ({e})"))?;
        let ours = matches!(resolved, ResolveResult::Bound(n) if n.0 == ns);
        let end = reader.buffer_position() as usize;
        match event {
            Event::Start(start) => {
                let qname = start.name().0.to_owned();
                let local = local_of(&qname).to_owned();
                if ours && local == "p" {
                    paragraphs.push(Paragraph::default());
                    open_paras.push(paragraphs.len() - 1);
                } else if ours && local == "t" && in_t.is_none() {
                    let parent_is_run = stack.last().is_some_and(|(o, l)| *o && l == "r");
                    if parent_is_run && !open_paras.is_empty() {
                        segments.push(Segment {
                            open_tag: at..end,
                            content: end..end,
                            preserve: has_preserve(&start),
                            qname: qname.clone(),
                            text: String::new(),
                        });
                        in_t = Some((segments.len() - 1, stack.len()));
                    }
                } else if ours && flavor.is_barrier(&local) {
                    barrier(&mut paragraphs, &open_paras);
                }
                stack.push((ours, local));
            }
            Event::Empty(start) => {
                let qname = start.name().0;
                if ours && flavor.is_barrier(local_of(qname)) {
                    barrier(&mut paragraphs, &open_paras);
                }
            }
            Event::End(_) => {
                let Some((was_ours, local)) = stack.pop() else {
                    return Err(format!(
                        "is not well-formed XML near byte {at} (an end tag closes nothing)"
                    ));
                };
                if let Some((seg, depth)) = in_t
                    && depth == stack.len()
                {
                    in_t = None;
                    segments[seg].content.end = at;
                    if let Some(&p) = open_paras.last() {
                        let s = &segments[seg];
                        paragraphs[p].chars.extend(s.text.chars().map(|c| (c, Some(seg))));
                    }
                }
                if was_ours && local == "p" {
                    open_paras.pop();
                }
            }
            Event::Text(t) => {
                if let Some((seg, _)) = in_t {
                    segments[seg].text.push_str(&t.into_inner());
                }
            }
            Event::CData(t) => {
                if let Some((seg, _)) = in_t {
                    segments[seg].text.push_str(&t.into_inner());
                }
            }
            Event::GeneralRef(r) => {
                if let Some((seg, _)) = in_t {
                    let text = crate::read::entity_text(&r).ok_or_else(|| {
                        format!("uses an unknown entity &{}; near byte {at}", &*r.clone().into_inner())
                    })?;
                    segments[seg].text.push_str(&text);
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err("is not well-formed XML: it ends before its elements close".to_owned());
    }
    Ok(Scan { segments, paragraphs })
}

fn barrier(paragraphs: &mut [Paragraph], open_paras: &[usize]) {
    if let Some(&p) = open_paras.last() {
        paragraphs[p].chars.push(('\u{FFFF}', None));
    }
}

fn has_preserve(start: &BytesStart<'_>) -> bool {
    start.attributes().flatten().any(|a| a.key.0 == "xml:space")
}

/// A character compared ignoring case (simple lowercase mapping).
fn fold(c: char) -> char {
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// Matches in one paragraph: (first char, end char, pair index), leftmost
/// first, not overlapping; at one position the first pair given wins.
fn find_matches(chars: &[(char, Option<usize>)], finds: &[Vec<char>], match_case: bool) -> Vec<(usize, usize, usize)> {
    let key = |c: char| if match_case { c } else { fold(c) };
    // The pairs by their first character, in the order given: a fill with
    // many values tries only those that can start at a position.
    let mut by_first: BTreeMap<char, Vec<usize>> = BTreeMap::new();
    for (k, f) in finds.iter().enumerate() {
        if let Some(&c) = f.first() {
            by_first.entry(key(c)).or_default().push(k);
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (c, seg) = chars[i];
        let candidates = if seg.is_some() { by_first.get(&key(c)) } else { None };
        let hit = candidates.into_iter().flatten().find_map(|&k| {
            let f = &finds[k];
            let window = chars.get(i..i + f.len())?;
            let equal = window
                .iter()
                .zip(f)
                .all(|((c, seg), p)| seg.is_some() && key(*c) == key(*p));
            equal.then_some((k, f.len()))
        });
        match hit {
            Some((k, len)) => {
                out.push((i, i + len, k));
                i += len;
            }
            None => i += 1,
        }
    }
    out
}

/// Text as the content of a `t` element: escaped; in Word a tab and a line
/// break become `w:tab` and `w:br` between `w:t` elements, in DrawingML a
/// line break becomes a space (a slide's breaks sit between runs).
fn content_xml(text: &str, qname: &str, flavor: Flavor) -> String {
    match flavor {
        Flavor::Drawing => esc(&text.replace(['\r', '\n'], " ")),
        Flavor::Word => {
            let prefix = qname.strip_suffix('t').unwrap_or("w:");
            let mut out = String::new();
            for ch in text.split_inclusive(['\n', '\t']) {
                let (body, sep) = match ch.chars().last() {
                    Some(c @ ('\n' | '\t')) => (&ch[..ch.len() - 1], Some(c)),
                    _ => (ch, None),
                };
                out.push_str(&esc(body.trim_end_matches('\r')));
                if let Some(sep) = sep {
                    let el = if sep == '\n' { "br" } else { "tab" };
                    out.push_str(&format!("</{qname}><{prefix}{el}/><{qname} xml:space=\"preserve\">"));
                }
            }
            out
        }
    }
}

fn needs_preserve(text: &str) -> bool {
    text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace)
        || text.contains("  ")
        || text.contains(['\t', '\n'])
}

/// Replaces every occurrence of each `find` with its replacement in the
/// text of each paragraph of one XML part.
///
/// Matches run across run boundaries (Word splits `{{client}}` into several
/// runs). Where a match lies inside one run, that run keeps its formatting;
/// where it spans runs, the replacement goes into the first run it touches
/// and the matched text is removed from the others (empty runs may stay).
/// Paragraphs with no match are copied byte for byte (the output is the
/// input except the touched `t` elements). Deleted tracked text
/// (`w:delText`) and field codes (`w:instrText`) are not matched; nor is
/// text across a tab, a line break or a picture. Sets
/// `xml:space="preserve"` where the new text needs it; escapes.
///
/// Returns the new part and the number of replacements per pair.
pub fn replace_in_part(
    xml: &str,
    flavor: Flavor,
    pairs: &[(String, String)],
    match_case: bool,
) -> Result<(String, Vec<usize>), String> {
    if let Some((find, _)) = pairs.iter().find(|(f, _)| f.is_empty()) {
        return Err(format!("the text to find {find:?} is empty; give the text to replace"));
    }
    let finds: Vec<Vec<char>> = pairs.iter().map(|(f, _)| f.chars().collect()).collect();
    let scan = scan(xml, flavor)?;
    let mut counts = vec![0usize; pairs.len()];
    // New text per touched segment.
    let mut new_text: BTreeMap<usize, String> = BTreeMap::new();
    for para in &scan.paragraphs {
        let matches = find_matches(&para.chars, &finds, match_case);
        if matches.is_empty() {
            continue;
        }
        let mut texts: BTreeMap<usize, String> = BTreeMap::new();
        for &(_, seg) in &para.chars {
            if let Some(s) = seg {
                texts.entry(s).or_default();
            }
        }
        let mut m = matches.iter().peekable();
        for (i, &(c, seg)) in para.chars.iter().enumerate() {
            while m.peek().is_some_and(|&&(_, end, _)| end <= i) {
                m.next();
            }
            let Some(seg) = seg else { continue };
            match m.peek() {
                Some(&&(start, _, k)) if start == i => {
                    counts[k] += 1;
                    texts.entry(seg).or_default().push_str(&pairs[k].1);
                }
                Some(&&(start, _, _)) if start < i => {}
                _ => texts.entry(seg).or_default().push(c),
            }
        }
        for (seg, text) in texts {
            if text != scan.segments[seg].text {
                new_text.insert(seg, text);
            }
        }
    }
    if new_text.is_empty() {
        return Ok((xml.to_owned(), counts));
    }
    let mut out = String::with_capacity(xml.len() + 64);
    let mut pos = 0;
    for (seg, text) in new_text {
        let s = &scan.segments[seg];
        // DrawingML's `a:t` keeps its spaces as they are and declares no
        // `xml:space`; PowerPoint and python-pptx never write one there.
        if matches!(flavor, Flavor::Word) && !s.preserve && needs_preserve(&text) {
            // Before the start tag's `>`.
            let gt = s.open_tag.end - 1;
            out.push_str(&xml[pos..gt]);
            out.push_str(" xml:space=\"preserve\"");
            pos = gt;
        }
        out.push_str(&xml[pos..s.content.start]);
        out.push_str(&content_xml(&text, &s.qname, flavor));
        pos = s.content.end;
    }
    out.push_str(&xml[pos..]);
    Ok((out, counts))
}

/// The `{{name}}` placeholders in a part, also when split across runs:
/// their names (the text between the braces, trimmed), and for each the
/// forms it is written in (`{{client}}`, `{{ client }}`), to replace them.
/// A malformed part has none.
pub fn placeholder_forms(xml: &str, flavor: Flavor) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let Ok(scan) = scan(xml, flavor) else {
        return out;
    };
    for para in &scan.paragraphs {
        let chars: Vec<char> = para
            .chars
            .iter()
            .map(|&(c, seg)| if seg.is_some() { c } else { '\u{FFFF}' })
            .collect();
        let mut i = 0;
        while i + 1 < chars.len() {
            if chars[i] != '{' || chars[i + 1] != '{' {
                i += 1;
                continue;
            }
            // The innermost `{{`: `{{{x}}` holds `{{x}}`.
            let mut open = i;
            while chars.get(open + 2) == Some(&'{') {
                open += 1;
            }
            let inner_start = open + 2;
            let close = chars[inner_start..]
                .iter()
                .position(|&c| matches!(c, '}' | '{' | '\u{FFFF}'))
                .map(|p| p + inner_start);
            match close {
                Some(c) if chars[c] == '}' && chars.get(c + 1) == Some(&'}') => {
                    let inner: String = chars[inner_start..c].iter().collect();
                    let name = inner.trim();
                    if !name.is_empty() && name.chars().count() <= MAX_PLACEHOLDER_CHARS {
                        out.entry(name.to_owned())
                            .or_default()
                            .insert(format!("{{{{{inner}}}}}"));
                    }
                    i = c + 2;
                }
                _ => i = inner_start,
            }
        }
    }
    out
}

/// The `{{name}}` placeholders in a part (names trimmed), also when split across runs.
pub fn placeholders(xml: &str, flavor: Flavor) -> BTreeSet<String> {
    placeholder_forms(xml, flavor).into_keys().collect()
}

/// The package again with `changed` parts replaced, parts in `changed`
/// that it lacks added at the end, and `removed` parts left out; every
/// other entry copied raw, byte for byte (compressed data, dates, flags).
pub fn rewrite(
    path: &Path,
    bytes: &[u8],
    changed: &BTreeMap<String, Vec<u8>>,
    removed: &BTreeSet<String>,
) -> Result<Vec<u8>, ToolError> {
    let zip_err = |e: zip::result::ZipError| bad(path, format!("could not be rewritten: {e}"));
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| {
        bad(
            path,
            format!("is damaged or truncated: its zip directory cannot be read ({e})"),
        )
    })?;
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::with_capacity(bytes.len() + 4096)));
    let mut written: BTreeSet<String> = BTreeSet::new();
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(zip_err)?;
        let name = entry.name().map_err(zip_err)?.into_owned();
        if removed.contains(&name) || !written.insert(name.clone()) {
            continue;
        }
        match changed.get(&name) {
            Some(content) => {
                drop(entry);
                write_entry(&mut out, &name, content).map_err(|e| bad(path, format!("could not be rewritten: {e}")))?;
            }
            None => out.raw_copy_file(entry).map_err(zip_err)?,
        }
    }
    for (name, content) in changed {
        if !written.contains(name) {
            write_entry(&mut out, name, content).map_err(|e| bad(path, format!("could not be rewritten: {e}")))?;
        }
    }
    Ok(out.finish().map_err(zip_err)?.into_inner())
}

fn write_entry(out: &mut zip::ZipWriter<Cursor<Vec<u8>>>, name: &str, content: &[u8]) -> Result<(), String> {
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(6))
        .large_file(content.len() as u64 >= u64::from(u32::MAX));
    out.start_file(name, options).map_err(|e| e.to_string())?;
    out.write_all(content).map_err(|e| e.to_string())
}

/// Writes the edited package to the call's scratch folder and returns the
/// overwrite proposal's change: the host shows it to the person and applies
/// it as an undoable changeset.
pub fn stage_overwrite(path: &Path, bytes: &[u8]) -> Result<Change, ToolError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "document".into());
    let mut n = 1;
    let (staged, mut file) = loop {
        let staged = if n == 1 {
            Path::new(SCRATCH).join(format!("edit-{name}"))
        } else {
            Path::new(SCRATCH).join(format!("edit-{n}-{name}"))
        };
        match std::fs::File::create_new(&staged) {
            Ok(f) => break (staged, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
            Err(e) => return Err(io_error(&staged, &e)),
        }
    };
    file.write_all(bytes).map_err(|e| io_error(&staged, &e))?;
    Ok(Change::Overwrite(StagedFile {
        path: path.display().to_string(),
        staged: staged.display().to_string(),
    }))
}

/// `[Content_Types].xml` with an `Override` for `part` (no leading slash),
/// unless it has one already.
pub fn add_content_type(types: &str, part: &str, content_type: &str) -> String {
    let name = format!("/{part}");
    let has = types.match_indices("PartName=\"").any(|(at, m)| {
        let rest = &types[at + m.len()..];
        rest.split('"').next().is_some_and(|v| v.eq_ignore_ascii_case(&name))
    });
    if has {
        return types.to_owned();
    }
    let entry = format!(
        "<Override PartName=\"{}\" ContentType=\"{}\"/>",
        esc(&name),
        esc(content_type)
    );
    insert_before_close(types, "Types", &entry)
}

/// A `.rels` part with a new relationship of type `rel_type` to `target`,
/// and the new id (`rIdN`, N one past the highest number in use).
pub fn add_relationship(rels: &str, rel_type: &str, target: &str) -> (String, String) {
    let mut n = 0u64;
    for (at, m) in rels.match_indices("Id=\"rId") {
        let digits: String = rels[at + m.len()..].chars().take_while(char::is_ascii_digit).collect();
        n = n.max(digits.parse().unwrap_or(0));
    }
    let id = format!("rId{}", n + 1);
    let entry = format!(
        "<Relationship Id=\"{id}\" Type=\"{}\" Target=\"{}\"/>",
        esc(rel_type),
        esc(target)
    );
    (insert_before_close(rels, "Relationships", &entry), id)
}

/// `xml` with `entry` inserted before the end tag of root element `root`
/// (any prefix); a self-closed root is opened.
fn insert_before_close(xml: &str, root: &str, entry: &str) -> String {
    // What may follow the root: whitespace, comments, processing instructions.
    let mut trimmed = xml.trim_end();
    loop {
        let cut = if trimmed.ends_with("-->") {
            trimmed.rfind("<!--")
        } else if trimmed.ends_with("?>") {
            trimmed.rfind("<?")
        } else {
            None
        };
        match cut {
            Some(at) => trimmed = trimmed[..at].trim_end(),
            None => break,
        }
    }
    if let Some(at) = trimmed.rfind("</")
        && local_of(trimmed[at + 2..].trim_end_matches('>').trim()) == root
    {
        return format!("{}{entry}{}", &xml[..at], &xml[at..]);
    }
    if let Some(at) = trimmed.rfind("/>") {
        let open = trimmed[..at].rfind('<').unwrap_or(0);
        let qname: String = trimmed[open + 1..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '/' && *c != '>')
            .collect();
        if local_of(&qname) == root {
            return format!("{}>{entry}</{qname}>{}", &xml[..at], &xml[at + 2..]);
        }
    }
    format!("{xml}{entry}")
}

/// The names of a package's zip entries, for an edit that adds parts to
/// choose names no entry has.
pub fn entry_names(path: &Path, bytes: &[u8]) -> Result<BTreeSet<String>, ToolError> {
    let archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| {
        bad(
            path,
            format!("is damaged or truncated: its zip directory cannot be read ({e})"),
        )
    })?;
    archive
        .file_names()
        .map(|n| {
            n.map(|s| s.to_string())
                .map_err(|e| bad(path, format!("is damaged: a zip entry's name cannot be read ({e})")))
        })
        .collect()
}

/// The longest text a `replace` edit looks for, and the longest it puts in.
pub const MAX_FIND_CHARS: usize = 10_000;
pub const MAX_REPLACE_CHARS: usize = 1_000_000;

/// Checks a `replace` edit's texts (the edit at `at`, e.g. `edits[2]`)
/// before anything is read, for every tool that edits text.
pub fn check_replace(at: &str, find: &str, replace: &str) -> Result<(), ToolError> {
    if find.is_empty() || find.chars().count() > MAX_FIND_CHARS {
        return Err(ToolError::InvalidArgs(format!(
            "{at}: find must have 1 to {MAX_FIND_CHARS} characters; give the text to replace"
        )));
    }
    if replace.chars().count() > MAX_REPLACE_CHARS {
        return Err(ToolError::InvalidArgs(format!(
            "{at}: replace is longer than {MAX_REPLACE_CHARS} characters"
        )));
    }
    Ok(())
}

/// A part as UTF-8 bytes: parts are read as text (UTF-8 or UTF-16) and
/// written back as UTF-8, so a declaration saying UTF-16 is corrected.
pub fn as_utf8(xml: &str) -> Vec<u8> {
    if xml.starts_with("<?xml")
        && let Some(end) = xml.find("?>")
    {
        let decl = &xml[..end];
        for enc in ["UTF-16", "utf-16", "UTF16", "utf16"] {
            if decl.contains(enc) {
                return format!("{}{}", decl.replacen(enc, "UTF-8", 1), &xml[end..]).into_bytes();
            }
        }
    }
    xml.as_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    const W: &str = "xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"";

    fn doc(body: &str) -> String {
        format!("<?xml version=\"1.0\"?><w:document {W}><w:body>{body}</w:body></w:document>")
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
    }

    #[test]
    fn a_placeholder_split_across_runs_is_found_and_filled_into_the_first_run() {
        let xml = doc(
            "<w:p><w:r><w:t>Dear {{</w:t></w:r><w:proofErr w:type=\"spellStart\"/><w:r><w:rPr><w:b/></w:rPr><w:t>cli</w:t></w:r>\
             <w:r><w:t>ent}}, hi</w:t></w:r></w:p>",
        );
        assert_eq!(placeholders(&xml, Flavor::Word), BTreeSet::from(["client".to_owned()]));
        let (out, counts) = replace_in_part(&xml, Flavor::Word, &pairs(&[("{{client}}", "Acme")]), true).unwrap();
        assert_eq!(counts, [1]);
        assert!(
            out.contains("<w:t>Dear Acme</w:t></w:r><w:proofErr w:type=\"spellStart\"/><w:r><w:rPr><w:b/></w:rPr><w:t></w:t></w:r><w:r><w:t>, hi</w:t>"),
            "{out}"
        );
    }

    #[test]
    fn a_match_inside_one_run_keeps_its_formatting() {
        let xml = doc("<w:p><w:r><w:rPr><w:i/></w:rPr><w:t>the old word</w:t></w:r></w:p>");
        let (out, counts) = replace_in_part(&xml, Flavor::Word, &pairs(&[("old", "new")]), true).unwrap();
        assert_eq!(counts, [1]);
        assert_eq!(out, xml.replace("the old word", "the new word"));
    }

    #[test]
    fn a_cross_run_match_goes_into_the_first_run_it_touches() {
        let xml = doc(
            "<w:p><w:r><w:t>ab</w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>cd</w:t></w:r><w:r><w:t>ef</w:t></w:r></w:p>",
        );
        let (out, _) = replace_in_part(&xml, Flavor::Word, &pairs(&[("bcde", "X")]), true).unwrap();
        assert!(
            out.contains("<w:t>aX</w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t></w:t></w:r><w:r><w:t>f</w:t>"),
            "{out}"
        );
    }

    #[test]
    fn paragraphs_without_a_match_stay_byte_for_byte() {
        let untouched =
            "<w:p w14:paraId=\"1\" xmlns:w14=\"x\"><w:r><w:t xml:space='preserve'> keep &amp; this  </w:t></w:r></w:p>";
        let xml = doc(&format!(
            "{untouched}<w:p><w:r><w:t>change me</w:t></w:r></w:p>{untouched}"
        ));
        let (out, _) = replace_in_part(&xml, Flavor::Word, &pairs(&[("change", "changed")]), true).unwrap();
        assert_eq!(out, xml.replace("change me", "changed me"));
        let (same, counts) = replace_in_part(&xml, Flavor::Word, &pairs(&[("absent", "x")]), true).unwrap();
        assert_eq!((same, counts), (xml, vec![0]));
    }

    #[test]
    fn replacements_are_escaped_and_matches_see_unescaped_text() {
        let xml = doc("<w:p><w:r><w:t>A &amp; B &lt;C&gt;</w:t></w:r></w:p>");
        let (out, counts) = replace_in_part(&xml, Flavor::Word, &pairs(&[("& B <C>", "& \"D\" <E>")]), true).unwrap();
        assert_eq!(counts, [1]);
        assert!(out.contains("<w:t>A &amp; &quot;D&quot; &lt;E&gt;</w:t>"), "{out}");
    }

    #[test]
    fn xml_space_is_set_when_the_new_text_needs_it() {
        let xml = doc("<w:p><w:r><w:t>x</w:t></w:r><w:r><w:t>y</w:t></w:r></w:p>");
        let (out, _) = replace_in_part(&xml, Flavor::Word, &pairs(&[("x", "x "), ("y", "a\tb\nc")]), true).unwrap();
        assert!(out.contains("<w:t xml:space=\"preserve\">x </w:t>"), "{out}");
        assert!(
            out.contains("<w:t xml:space=\"preserve\">a</w:t><w:tab/><w:t xml:space=\"preserve\">b</w:t><w:br/><w:t xml:space=\"preserve\">c</w:t>"),
            "{out}"
        );
    }

    #[test]
    fn deleted_text_field_codes_and_breaks_are_not_matched() {
        let xml = doc(
            "<w:p><w:del><w:r><w:delText>secret</w:delText></w:r></w:del><w:r><w:instrText> secret </w:instrText></w:r>\
             <w:r><w:t>sec</w:t><w:tab/><w:t>ret</w:t></w:r></w:p>",
        );
        let (out, counts) = replace_in_part(&xml, Flavor::Word, &pairs(&[("secret", "x")]), true).unwrap();
        assert_eq!((out, counts), (xml, vec![0]));
    }

    #[test]
    fn case_can_be_ignored_and_each_pair_counts_once_per_match() {
        let xml = doc("<w:p><w:r><w:t>Acme ACME acme</w:t></w:r></w:p>");
        let (out, counts) = replace_in_part(&xml, Flavor::Word, &pairs(&[("acme", "Zed")]), false).unwrap();
        assert_eq!(counts, [3]);
        assert!(out.contains("<w:t>Zed Zed Zed</w:t>"));
        let (_, counts) = replace_in_part(&xml, Flavor::Word, &pairs(&[("acme", "Zed")]), true).unwrap();
        assert_eq!(counts, [1]);
        // A replacement is not matched again by a later pair.
        let (out, counts) =
            replace_in_part(&xml, Flavor::Word, &pairs(&[("Acme", "acme"), ("acme", "b")]), true).unwrap();
        assert_eq!((counts, out.contains("<w:t>acme ACME b</w:t>")), (vec![1, 1], true));
    }

    #[test]
    fn drawing_text_in_slides_is_replaced() {
        let xml = "<p:sld xmlns:p=\"http://schemas.openxmlformats.org/presentationml/2006/main\" \
                   xmlns:a=\"http://schemas.openxmlformats.org/drawingml/2006/main\"><p:txBody><a:p><a:r><a:rPr lang=\"en\"/>\
                   <a:t>Hello {{na</a:t></a:r><a:r><a:rPr b=\"1\"/><a:t>me}}</a:t></a:r></a:p></p:txBody></p:sld>";
        assert_eq!(placeholders(xml, Flavor::Drawing), BTreeSet::from(["name".to_owned()]));
        assert!(placeholders(xml, Flavor::Word).is_empty());
        let (out, counts) = replace_in_part(xml, Flavor::Drawing, &pairs(&[("{{name}}", "Zoë")]), true).unwrap();
        assert_eq!(counts, [1]);
        assert!(
            out.contains("<a:t>Hello Zoë</a:t></a:r><a:r><a:rPr b=\"1\"/><a:t></a:t>"),
            "{out}"
        );
    }

    #[test]
    fn placeholder_forms_keep_how_they_are_written() {
        let xml = doc("<w:p><w:r><w:t>{{ a }} {{b}} {{}} {{{c}}} {{d</w:t><w:br/><w:t>}}</w:t></w:r></w:p>");
        let forms = placeholder_forms(&xml, Flavor::Word);
        assert_eq!(forms.keys().cloned().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert!(forms["a"].contains("{{ a }}"));
    }

    #[test]
    fn a_long_paragraph_and_many_pairs_stay_fast() {
        let text = "{{v1}} lorem ipsum ".repeat(20_000);
        let xml = doc(&format!("<w:p><w:r><w:t>{text}</w:t></w:r></w:p>"));
        let many: Vec<(String, String)> = (0..1000).map(|i| (format!("{{{{v{i}}}}}"), format!("x{i}"))).collect();
        let started = std::time::Instant::now();
        let (_, counts) = replace_in_part(&xml, Flavor::Word, &many, false).unwrap();
        assert_eq!(counts[1], 20_000);
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    }

    #[test]
    fn malformed_xml_and_empty_finds_are_errors() {
        assert!(replace_in_part("<w:p><w:r>", Flavor::Word, &pairs(&[("a", "b")]), true).is_err());
        assert!(replace_in_part(&doc(""), Flavor::Word, &pairs(&[("", "b")]), true).is_err());
    }

    #[test]
    fn content_types_and_relationships_grow() {
        let types = "<Types xmlns=\"x\"><Default Extension=\"xml\" ContentType=\"application/xml\"/></Types>";
        let t = add_content_type(types, "word/numbering.xml", "ct/n");
        assert!(t.ends_with("<Override PartName=\"/word/numbering.xml\" ContentType=\"ct/n\"/></Types>"));
        assert_eq!(add_content_type(&t, "word/numbering.xml", "ct/n"), t);
        let (r, id) = add_relationship(
            "<Relationships xmlns=\"x\"><Relationship Id=\"rId7\" Type=\"t\" Target=\"a\"/></Relationships>",
            "n",
            "numbering.xml",
        );
        assert_eq!(id, "rId8");
        assert!(r.contains("<Relationship Id=\"rId8\" Type=\"n\" Target=\"numbering.xml\"/></Relationships>"));
        let (r, id) = add_relationship("<Relationships xmlns=\"x\"/>", "n", "a.xml");
        assert_eq!(
            (r.as_str(), id.as_str()),
            (
                "<Relationships xmlns=\"x\"><Relationship Id=\"rId1\" Type=\"n\" Target=\"a.xml\"/></Relationships>",
                "rId1"
            )
        );
    }

    #[test]
    fn a_rewrite_copies_untouched_entries_raw() {
        let mut pkg = crate::Package::new();
        pkg.xml("a.xml", "ct/a", "<a/>".into());
        pkg.xml("b.xml", "ct/b", "<b/>".into());
        let bytes = pkg.finish().unwrap();
        let changed = BTreeMap::from([
            ("a.xml".to_owned(), b"<a>new</a>".to_vec()),
            ("c.xml".to_owned(), b"<c/>".to_vec()),
        ]);
        let removed = BTreeSet::from(["[Content_Types].xml".to_owned()]);
        let out = rewrite(Path::new("x.docx"), &bytes, &changed, &removed).unwrap();
        let mut before = zip::ZipArchive::new(Cursor::new(&bytes[..])).unwrap();
        let mut after = zip::ZipArchive::new(Cursor::new(&out[..])).unwrap();
        let names: Vec<String> = after.file_names().map(|n| n.unwrap().into_owned()).collect();
        assert_eq!(names, ["a.xml", "b.xml", "c.xml"]);
        let raw = |z: &mut zip::ZipArchive<Cursor<&[u8]>>, n: &str| {
            let mut e = z.by_name(n).unwrap();
            let (crc, size) = (e.crc32(), e.compressed_size());
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            (crc, size, v)
        };
        assert_eq!(raw(&mut before, "b.xml"), raw(&mut after, "b.xml"));
        assert_eq!(raw(&mut after, "a.xml").2, b"<a>new</a>");
    }
}
