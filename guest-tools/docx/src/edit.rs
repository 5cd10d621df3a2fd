//! `edit`: changes an existing Word document in place, as a proposed
//! overwrite: text replaced in the body, headers, footers, footnotes and
//! endnotes (also where Word split it across runs), `{{name}}` placeholders
//! filled, blocks of the shared document model appended at the end of the
//! body in the document's own styles. Only the parts an edit changes are
//! rewritten; every other zip entry is copied raw (see
//! `deskhand_ooxml::edit`). The edits apply in order, all or nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use deskhand_guest::document::{Block, block_schema, validate_blocks};
use deskhand_guest::{Output, ToolError, proposal};
use deskhand_ooxml::edit::{
    Flavor, add_content_type, add_relationship, placeholder_forms, replace_in_part, rewrite, stage_overwrite,
};
use deskhand_ooxml::read::{self, Kind, Node, Ns, Opened, Xml};
use deskhand_ooxml::{XML_DECL, esc, rel};
use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::build::{self, CT_NUMBERING, CT_STYLES, STYLES, para, runs};

/// The most edits one call makes.
pub const MAX_EDITS: usize = 1_000;
/// The longest text to find, and the longest replacement or value.
use deskhand_ooxml::edit::{MAX_FIND_CHARS, MAX_REPLACE_CHARS};
/// The most placeholder values one fill gives.
pub const MAX_VALUES: usize = 1_000;

const W_NS: &str = "http://schemas.openxmlformats.org/wordprocessingml/2006/main";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditArgs {
    path: PathBuf,
    edits: Vec<Edit>,
}

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Edit {
    Replace {
        find: String,
        replace: String,
        #[serde(default = "yes")]
        match_case: bool,
    },
    Fill {
        values: BTreeMap<String, Value>,
    },
    Append {
        blocks: Vec<Block>,
    },
}

fn yes() -> bool {
    true
}

pub const SUMMARY: &str = "Change an existing .docx (or .docm) in place, proposed as an overwrite the person approves \
     (and can undo): replace text (also where Word split it across runs; formatting kept) in the body, headers, \
     footers, footnotes and endnotes; fill {{name}} placeholders; append headings, paragraphs, lists and tables at \
     the end in the document's own styles. Edits apply in order, all or nothing; everything else in the file is \
     kept byte for byte.";

pub fn schema() -> Value {
    json!({
        "type": "object", "required": ["path", "edits"], "additionalProperties": false,
        "properties": {
            "path": {"type": "string", "description": "the .docx or .docm document to change (in a folder granted read-write, or output/)"},
            "edits": {"type": "array", "minItems": 1, "maxItems": MAX_EDITS, "description": "applied in order, all or nothing", "items": {"oneOf": [
                {"type": "object", "required": ["op", "find", "replace"], "additionalProperties": false, "properties": {
                    "op": {"const": "replace"},
                    "find": {"type": "string", "minLength": 1, "maxLength": MAX_FIND_CHARS, "description": "text as it reads in the document; every occurrence is replaced; it must occur at least once"},
                    "replace": {"type": "string", "maxLength": MAX_REPLACE_CHARS, "description": "may be empty (deletes the text); a newline is a line break"},
                    "match_case": {"type": "boolean", "default": true}}},
                {"type": "object", "required": ["op", "values"], "additionalProperties": false, "properties": {
                    "op": {"const": "fill"},
                    "values": {"type": "object", "description": "{\"client\": \"Acme\"} fills every {{client}}; every placeholder needs a value and every value a placeholder",
                               "additionalProperties": {"type": ["string", "number", "boolean", "null"]}}}},
                {"type": "object", "required": ["op", "blocks"], "additionalProperties": false, "properties": {
                    "op": {"const": "append"},
                    "blocks": {"type": "array", "minItems": 1, "items": block_schema(),
                               "description": "added at the end of the body: heading, paragraph, list, table, page_break (images and charts: use write)"}}}
            ]}}
        }
    })
}

/// A value of a fill as the text that goes in: null is empty.
pub(crate) fn value_text(name: &str, v: &Value) -> Result<String, String> {
    let text = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(_) | Value::Object(_) => {
            return Err(format!(
                "the value of {name:?} is a list or an object; give text, a number or a boolean"
            ));
        }
    };
    if text.chars().count() > MAX_REPLACE_CHARS {
        return Err(format!(
            "the value of {name:?} is longer than {MAX_REPLACE_CHARS} characters"
        ));
    }
    Ok(text)
}

/// A Word package's parts with text: the main part first, then its
/// headers, footers, footnotes and endnotes, found through its relationships.
pub(crate) fn word_text_parts(pkg: &mut Opened) -> Result<Vec<String>, ToolError> {
    let main = pkg.main.clone();
    let mut parts = vec![main.clone()];
    for r in pkg.rels(&main)? {
        let wanted = matches!(r.kind.as_str(), "header" | "footer" | "footnotes" | "endnotes");
        if wanted && !r.external && !parts.contains(&r.target) && pkg.has_part(&r.target) {
            parts.push(r.target);
        }
    }
    Ok(parts)
}

/// Fills every `{{name}}` in `parts` from `values`; the placeholders with
/// no value and the values with no placeholder are errors, named.
/// Returns how many placeholders were filled.
pub(crate) fn fill_parts(
    path: &Path,
    parts: &mut BTreeMap<String, String>,
    flavor: Flavor,
    values: &BTreeMap<String, String>,
    what_values: &str,
) -> Result<usize, ToolError> {
    let mut forms: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for xml in parts.values() {
        for (name, f) in placeholder_forms(xml, flavor) {
            forms.entry(name).or_default().extend(f);
        }
    }
    if forms.is_empty() {
        return Err(ToolError::InvalidArgs(format!(
            "{} has no {{{{name}}}} placeholders to fill; use replace to change its text",
            path.display()
        )));
    }
    let missing: Vec<String> = forms
        .keys()
        .filter(|n| !values.contains_key(*n))
        .map(|n| format!("{{{{{n}}}}}"))
        .collect();
    if !missing.is_empty() {
        return Err(ToolError::InvalidArgs(format!(
            "{} has placeholders with no value in {what_values}: {}; give a value for each (an empty string leaves it blank)",
            path.display(),
            missing.join(", ")
        )));
    }
    let pairs: Vec<(String, String)> = forms
        .iter()
        .flat_map(|(name, fs)| fs.iter().map(move |f| (f.clone(), values[name].clone())))
        .collect();
    let mut filled = 0;
    for (name, xml) in parts.iter_mut() {
        let (new, counts) = replace_in_part(xml, flavor, &pairs, true).map_err(|e| read::bad_part(path, name, &e))?;
        filled += counts.iter().sum::<usize>();
        *xml = new;
    }
    Ok(filled)
}

pub fn edit(args: EditArgs) -> Result<Output, ToolError> {
    let path = args.path.as_path();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if ext != "docx" && ext != "docm" {
        return Err(ToolError::InvalidArgs(format!(
            "path {}: edit changes .docx and .docm documents",
            path.display()
        )));
    }
    // Arguments first: a bad one is reported before the file is read.
    check_edits(&args.edits)?;
    let bytes = crate::read::read_file(path)?;
    let applied = apply(path, &bytes, &args.edits)?;
    let change = stage_overwrite(path, &applied.bytes)?;
    let summary = json!({
        "proposed": "overwrite",
        "path": path.display().to_string(),
        "edits": applied.results,
        "parts_rewritten": applied.rewritten,
        "parts_added": applied.added,
        "size": applied.bytes.len(),
    });
    let text = format!(
        "proposed to overwrite {} with {} edit(s) ({} part(s) rewritten or added, the rest copied unchanged)",
        path.display(),
        args.edits.len(),
        applied.rewritten.len() + applied.added.len()
    );
    Ok(proposal(&summary, text, vec![change]))
}

/// Each edit's arguments, checked before any file is read.
fn check_edits(edits: &[Edit]) -> Result<(), ToolError> {
    if edits.is_empty() || edits.len() > MAX_EDITS {
        return Err(ToolError::InvalidArgs(format!(
            "edits must hold 1 to {MAX_EDITS} changes"
        )));
    }
    for (i, e) in edits.iter().enumerate() {
        let at = format!("edits[{i}]");
        match e {
            Edit::Replace { find, replace, .. } => {
                deskhand_ooxml::edit::check_replace(&at, find, replace)?;
            }
            Edit::Fill { values } => {
                if values.is_empty() || values.len() > MAX_VALUES {
                    return Err(ToolError::InvalidArgs(format!(
                        "{at}: values must give 1 to {MAX_VALUES} placeholders, as {{\"client\": \"Acme\"}}"
                    )));
                }
                for (k, v) in values {
                    value_text(k, v).map_err(|e| ToolError::InvalidArgs(format!("{at}: {e}")))?;
                }
            }
            Edit::Append { blocks } => {
                if blocks.is_empty() {
                    return Err(ToolError::InvalidArgs(format!("{at}: blocks is empty")));
                }
                validate_blocks(blocks).map_err(|e| match e {
                    ToolError::InvalidArgs(m) => ToolError::InvalidArgs(format!("{at}.{m}")),
                    other => other,
                })?;
                if let Some(b) = blocks
                    .iter()
                    .position(|b| matches!(b, Block::Image { .. } | Block::Chart { .. }))
                {
                    return Err(ToolError::InvalidArgs(format!(
                        "{at}.blocks[{b}]: edit appends headings, paragraphs, lists, tables and page breaks; \
                         images and charts are not added to an existing document (write a new one with them instead)"
                    )));
                }
            }
        }
    }

    Ok(())
}

/// What the edits made: the new package and what the summary reports.
pub(crate) struct Applied {
    pub bytes: Vec<u8>,
    pub results: Vec<Value>,
    pub rewritten: Vec<String>,
    pub added: Vec<String>,
}

/// The edits applied to the document in `bytes`, all or nothing.
fn apply(path: &Path, bytes: &[u8], edits: &[Edit]) -> Result<Applied, ToolError> {
    check_edits(edits)?;
    let mut pkg = read::open(path, bytes, Kind::Docx)?;
    let main = pkg.main.clone();
    let text_parts = word_text_parts(&mut pkg)?;
    let mut originals: BTreeMap<String, String> = BTreeMap::new();
    for name in &text_parts {
        if let Some(xml) = pkg.part(name)? {
            originals.insert(name.clone(), xml);
        }
    }
    if !originals.contains_key(&main) {
        return Err(read::bad(path, format!("is damaged: its main part {main} is missing")));
    }
    // Parts outside the text ones that append may change.
    let mut others: BTreeMap<String, String> = BTreeMap::new();
    let mut added: Vec<String> = Vec::new();
    let mut parts = originals.clone();
    let mut results = Vec::new();
    for (i, e) in edits.iter().enumerate() {
        let at = format!("edits[{i}]");
        match e {
            Edit::Replace {
                find,
                replace,
                match_case,
            } => {
                let pairs = [(find.clone(), replace.clone())];
                let mut total = 0;
                for (name, xml) in parts.iter_mut() {
                    let (new, counts) = replace_in_part(xml, Flavor::Word, &pairs, *match_case)
                        .map_err(|e| read::bad_part(path, name, &e))?;
                    total += counts[0];
                    *xml = new;
                }
                if total == 0 {
                    return Err(ToolError::InvalidArgs(format!(
                        "{at}: {find:?} is not in {} (its body, headers, footers, footnotes and endnotes{}); nothing \
                         was changed. Read the document with text and give the words exactly as they appear{}",
                        path.display(),
                        if i > 0 { ", after the edits before it" } else { "" },
                        if *match_case {
                            ", or pass \"match_case\": false"
                        } else {
                            ""
                        }
                    )));
                }
                results.push(json!({"op": "replace", "find": find, "replacements": total}));
            }
            Edit::Fill { values } => {
                let mut texts = BTreeMap::new();
                for (k, v) in values {
                    texts.insert(k.clone(), value_text(k, v).map_err(ToolError::InvalidArgs)?);
                }
                let present: BTreeSet<String> = parts
                    .values()
                    .flat_map(|xml| placeholder_forms(xml, Flavor::Word).into_keys())
                    .collect();
                let unused: Vec<&String> = texts.keys().filter(|k| !present.contains(*k)).collect();
                if !unused.is_empty() && !present.is_empty() {
                    return Err(ToolError::InvalidArgs(format!(
                        "{at}: values names {} that {} has no placeholder for; its placeholders are {}. Remove them \
                         or correct their spelling; nothing was changed",
                        quoted(unused.iter().map(|s| s.as_str())),
                        path.display(),
                        present
                            .iter()
                            .map(|n| format!("{{{{{n}}}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                let filled = fill_parts(path, &mut parts, Flavor::Word, &texts, &format!("{at}.values")).map_err(
                    |e| match e {
                        ToolError::InvalidArgs(m) => ToolError::InvalidArgs(format!("{at}: {m}; nothing was changed")),
                        other => other,
                    },
                )?;
                results.push(json!({"op": "fill", "placeholders_filled": filled}));
            }
            Edit::Append { blocks } => {
                let body = parts.get(&main).cloned().unwrap_or_default();
                let new = append(path, &mut pkg, &main, &body, blocks, &mut others, &mut added)?;
                parts.insert(main.clone(), new);
                results.push(json!({"op": "append", "blocks": blocks.len()}));
            }
        }
    }

    let mut changed: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (name, xml) in &parts {
        if originals.get(name) != Some(xml) {
            changed.insert(name.clone(), deskhand_ooxml::edit::as_utf8(xml));
        }
    }
    for (name, xml) in &others {
        changed.insert(name.clone(), deskhand_ooxml::edit::as_utf8(xml));
    }
    let rewritten: Vec<String> = changed.keys().filter(|n| !added.contains(n)).cloned().collect();
    let result = rewrite(path, bytes, &changed, &BTreeSet::new())?;
    if result.len() as u64 > read::MAX_FILE_BYTES {
        return Err(ToolError::TooLarge(deskhand_guest::path_error(
            path,
            format!(
                "would grow to {} bytes, past the {} MiB the docx tool reads; make fewer changes",
                result.len(),
                read::MAX_FILE_BYTES >> 20
            ),
        )));
    }
    Ok(Applied {
        bytes: result,
        results,
        rewritten,
        added,
    })
}

fn quoted<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
}

/// The styles of a document: ids, names (lowercase) and which paragraph
/// styles carry list numbering.
#[derive(Default)]
struct DocStyles {
    ids: BTreeSet<String>,
    by_name: BTreeMap<String, String>,
    numbered: BTreeSet<String>,
    default_para: Option<String>,
}

fn parse_styles(xml: &str) -> Result<DocStyles, String> {
    let mut out = DocStyles::default();
    let mut x = Xml::new(xml);
    let mut cur: Option<String> = None;
    while let Some(node) = x.next()? {
        match node {
            Node::Open(t) if t.is(Ns::W, "style") => {
                let id = t.attr("styleId").unwrap_or_default();
                if t.attr("type").as_deref() == Some("paragraph")
                    && t.attr("default").is_some_and(|d| d == "1" || d == "true")
                {
                    out.default_para = Some(id.clone());
                }
                out.ids.insert(id.clone());
                cur = Some(id);
            }
            Node::Open(t) if t.is(Ns::W, "name") => {
                if let (Some(id), Some(name)) = (&cur, t.attr("val")) {
                    out.by_name.entry(name.to_lowercase()).or_insert_with(|| id.clone());
                }
            }
            Node::Open(t) if t.is(Ns::W, "numId") => {
                if let Some(id) = &cur
                    && t.attr("val").is_some_and(|v| v != "0")
                {
                    out.numbered.insert(id.clone());
                }
            }
            Node::Close(Ns::W, name) if name == "style" => cur = None,
            _ => {}
        }
    }
    Ok(out)
}

/// Build's definition of style `id`, and the style it is based on.
fn our_style(id: &str) -> Option<(&'static str, Option<&'static str>)> {
    let key = format!("w:styleId=\"{id}\"");
    let at = STYLES.find(&key)?;
    let start = STYLES[..at].rfind("<w:style ")?;
    let end = at + STYLES[at..].find("</w:style>")? + "</w:style>".len();
    let def = &STYLES[start..end];
    let based = def.find("<w:basedOn w:val=\"").and_then(|b| {
        let rest = &def[b + "<w:basedOn w:val=\"".len()..];
        rest.find('"').map(|q| &rest[..q])
    });
    Some((def, based))
}

/// Build's name of style `id` (`heading 1` for `Heading1`).
fn our_style_name(def: &str) -> Option<&str> {
    let b = def.find("<w:name w:val=\"")? + "<w:name w:val=\"".len();
    def[b..].find('"').map(|q| &def[b..b + q])
}

/// Maps build's style ids to the document's, adding build's definitions
/// the document lacks.
struct StyleMap<'s> {
    doc: &'s DocStyles,
    map: BTreeMap<String, String>,
    additions: String,
}

impl StyleMap<'_> {
    fn id(&mut self, ours: &str) -> String {
        if let Some(id) = self.map.get(ours) {
            return id.clone();
        }
        if ours == "Normal"
            && !self.doc.ids.contains("Normal")
            && let Some(d) = &self.doc.default_para
        {
            self.map.insert(ours.to_owned(), d.clone());
            return d.clone();
        }
        let def = our_style(ours);
        let found = if self.doc.ids.contains(ours) {
            Some(ours.to_owned())
        } else {
            def.and_then(|(d, _)| our_style_name(d))
                .and_then(|n| self.doc.by_name.get(&n.to_lowercase()).cloned())
        };
        let id = match (found, def) {
            (Some(id), _) => id,
            (None, Some((d, based))) => {
                self.map.insert(ours.to_owned(), ours.to_owned());
                let mut d = d.to_owned();
                if let Some(b) = based {
                    let mapped = self.id(b);
                    d = d.replace(&format!("w:val=\"{b}\""), &format!("w:val=\"{}\"", esc(&mapped)));
                }
                if d.contains("<w:next w:val=\"Normal\"/>") {
                    let normal = self.id("Normal");
                    d = d.replace(
                        "<w:next w:val=\"Normal\"/>",
                        &format!("<w:next w:val=\"{}\"/>", esc(&normal)),
                    );
                }
                self.additions.push_str(&d);
                ours.to_owned()
            }
            (None, None) => ours.to_owned(),
        };
        self.map.insert(ours.to_owned(), id.clone());
        id
    }
}

/// Where the body ends: (the byte to insert new blocks at, whether the root
/// is `w:document` with `w:` bound to WordprocessingML). New blocks go
/// before the body's final section properties, or before its end tag.
fn body_insertion_point(xml: &str) -> Result<(usize, bool), String> {
    let mut reader = NsReader::from_str(xml);
    let mut depth = 0usize;
    let mut last_sect: Option<usize> = None;
    let mut w_prefix = false;
    loop {
        let at = reader.buffer_position() as usize;
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| format!("is not well-formed XML near byte {at} ({e})"))?;
        let ours = matches!(ns, ResolveResult::Bound(n) if n.0 == W_NS);
        match event {
            Event::Start(s) => {
                if depth == 0 {
                    w_prefix = ours && s.name().0 == "w:document";
                }
                if depth == 2 {
                    last_sect = (ours && s.local_name().into_inner() == "sectPr").then_some(at);
                }
                depth += 1;
            }
            Event::Empty(s) if depth == 2 => {
                last_sect = (ours && s.local_name().into_inner() == "sectPr").then_some(at);
            }
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                if depth == 1 && ours && e.local_name().into_inner() == "body" {
                    return Ok((last_sect.unwrap_or(at), w_prefix));
                }
            }
            Event::Eof => return Err("has no w:body element".to_owned()),
            _ => {}
        }
    }
}

/// The body with `blocks` appended before its final section properties;
/// styles and numbering added to the package where the document lacks them.
fn append(
    path: &Path,
    pkg: &mut Opened,
    main: &str,
    body: &str,
    blocks: &[Block],
    others: &mut BTreeMap<String, String>,
    added: &mut Vec<String>,
) -> Result<String, ToolError> {
    let (at, w_prefix) = body_insertion_point(body).map_err(|e| read::bad_part(path, main, &e))?;
    if !w_prefix {
        return Err(read::bad(
            path,
            format!(
                "cannot be appended to: its {main} does not use the usual w: prefix; open it in Word or LibreOffice, \
                 save it, and try again"
            ),
        ));
    }
    let dir = main.rsplit_once('/').map_or("", |(d, _)| d);
    let rels_name = Opened::rels_name(main);
    let rels = pkg.rels(main)?;
    let mut rels_xml = match others.get(&rels_name) {
        Some(x) => x.clone(),
        None => pkg.part(&rels_name)?.unwrap_or_else(|| {
            format!(
                "{XML_DECL}<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"></Relationships>"
            )
        }),
    };
    let mut types = match others.get("[Content_Types].xml") {
        Some(x) => x.clone(),
        None => pkg
            .part("[Content_Types].xml")?
            .ok_or_else(|| read::bad(path, "is damaged: its [Content_Types].xml is missing"))?,
    };
    let fresh_name = |pkg: &Opened, base: &str, others: &BTreeMap<String, String>| -> String {
        let join = |f: &str| {
            if dir.is_empty() {
                f.to_owned()
            } else {
                format!("{dir}/{f}")
            }
        };
        (0..)
            .map(|n| {
                if n == 0 {
                    join(&format!("{base}.xml"))
                } else {
                    join(&format!("{base}{n}.xml"))
                }
            })
            .find(|c| !pkg.has_part(c) && !others.contains_key(c))
            .unwrap_or_else(|| join(&format!("{base}-deskhand.xml")))
    };

    // Styles: the document's where it has them (by id, then by name), else build's.
    let styles_part = rels
        .iter()
        .find(|r| r.kind == "styles" && !r.external)
        .map(|r| r.target.clone())
        .or_else(|| added.iter().find(|a| a.ends_with("styles.xml")).cloned());
    let styles_xml = match &styles_part {
        Some(name) => match others.get(name) {
            Some(x) => Some(x.clone()),
            None => pkg.part(name)?,
        },
        None => None,
    };
    let doc_styles = match &styles_xml {
        Some(x) => parse_styles(x).map_err(|e| read::bad_part(path, styles_part.as_deref().unwrap_or(""), &e))?,
        None => DocStyles::default(),
    };
    let mut styles = StyleMap {
        doc: &doc_styles,
        map: BTreeMap::new(),
        additions: String::new(),
    };

    // Numbering: build's two list definitions after the document's own.
    let wants_lists = blocks.iter().any(|b| matches!(b, Block::List { .. }));
    let bullet_style = doc_styles
        .by_name
        .get("list bullet")
        .filter(|id| doc_styles.numbered.contains(*id))
        .cloned();
    let number_style = doc_styles.by_name.get("list number").cloned();
    let numbering_part = rels
        .iter()
        .find(|r| r.kind == "numbering" && !r.external)
        .map(|r| r.target.clone())
        .or_else(|| added.iter().find(|a| a.contains("numbering")).cloned());
    let numbering_xml = match &numbering_part {
        Some(name) => match others.get(name) {
            Some(x) => Some(x.clone()),
            None => pkg.part(name)?,
        },
        None => None,
    };
    let (mut max_abstract, mut max_num) = (None::<u32>, 0u32);
    if let Some(x) = &numbering_xml {
        let mut r = Xml::new(x);
        while let Some(node) = r
            .next()
            .map_err(|e| read::bad_part(path, numbering_part.as_deref().unwrap_or(""), &e))?
        {
            if let Node::Open(t) = node {
                if t.is(Ns::W, "abstractNum") {
                    let n = t.attr("abstractNumId").and_then(|v| v.parse().ok()).unwrap_or(0);
                    max_abstract = Some(max_abstract.map_or(n, |m: u32| m.max(n)));
                } else if t.is(Ns::W, "num") {
                    max_num = max_num.max(t.attr("numId").and_then(|v| v.parse().ok()).unwrap_or(0));
                }
            }
        }
    }
    let first_abstract = max_abstract.map_or(0, |m| m.saturating_add(1));
    let bullet_id = max_num.saturating_add(1);

    let mut xml = String::new();
    let mut numbered_lists = 0u32;
    for block in blocks {
        match block {
            Block::Heading { text, level } => {
                let id = styles.id(&format!("Heading{level}"));
                xml.push_str(&para(&esc(&id), None, &runs(text, "")));
            }
            Block::Paragraph { text } => {
                let id = styles.id("Normal");
                xml.push_str(&para(&esc(&id), None, &runs(text, "")));
            }
            Block::List { items, numbered } => {
                let (style, num_id) = if *numbered {
                    numbered_lists += 1;
                    let style = match &number_style {
                        Some(s) => s.clone(),
                        None => styles.id("ListParagraph"),
                    };
                    (style, Some(bullet_id + numbered_lists))
                } else if let Some(s) = &bullet_style {
                    (s.clone(), None)
                } else {
                    (styles.id("ListParagraph"), Some(bullet_id))
                };
                let num_pr =
                    num_id.map(|n| format!("<w:numPr><w:ilvl w:val=\"0\"/><w:numId w:val=\"{n}\"/></w:numPr>"));
                for item in items {
                    xml.push_str(&para(&esc(&style), num_pr.as_deref(), &runs(item, "")));
                }
            }
            Block::Table { header, rows, caption } => {
                let grid = styles.id("TableGrid");
                let text = styles.id("TableText");
                let t = build::table(header, rows)
                    .replace(
                        "<w:tblStyle w:val=\"TableGrid\"/>",
                        &format!("<w:tblStyle w:val=\"{}\"/>", esc(&grid)),
                    )
                    .replace(
                        "<w:pStyle w:val=\"TableText\"/>",
                        &format!("<w:pStyle w:val=\"{}\"/>", esc(&text)),
                    );
                xml.push_str(&t);
                if let Some(c) = caption {
                    let id = styles.id("Caption");
                    xml.push_str(&para(&esc(&id), None, &runs(c, "")));
                }
            }
            Block::PageBreak => xml.push_str("<w:p><w:r><w:br w:type=\"page\"/></w:r></w:p>"),
            Block::Image { .. } | Block::Chart { .. } => {}
        }
    }
    // Word ends a body with a paragraph, never a table; LibreOffice loops on one that does.
    if xml.ends_with("</w:tbl>") {
        xml.push_str("<w:p/>");
    }
    let uses_our_numbering = wants_lists && (numbered_lists > 0 || bullet_style.is_none());

    // The parts that change besides the body.
    let mut rels_changed = false;
    let mut types_changed = false;
    if !styles.additions.is_empty() || (styles_xml.is_none() && !styles.map.is_empty()) {
        match (&styles_part, &styles_xml) {
            (Some(name), Some(x)) => {
                let new = insert_before_end(x, "styles", &styles.additions)
                    .ok_or_else(|| read::bad_part(path, name, "has no </w:styles> end tag to add styles before"))?;
                others.insert(name.clone(), new);
            }
            _ => {
                let name = fresh_name(pkg, "styles", others);
                others.insert(name.clone(), STYLES.to_owned());
                let target = name.strip_prefix(&format!("{dir}/")).unwrap_or(&name).to_owned();
                rels_xml = add_relationship(&rels_xml, rel::STYLES, &target).0;
                types = add_content_type(&types, &name, CT_STYLES);
                rels_changed = true;
                types_changed = true;
                added.push(name);
            }
        }
    }
    if uses_our_numbering {
        let defs_abstract = build::abstract_nums(first_abstract);
        let defs_nums = build::nums(first_abstract, bullet_id, numbered_lists);
        match (&numbering_part, &numbering_xml) {
            (Some(name), Some(x)) => {
                let new = insert_numbering(x, &defs_abstract, &defs_nums)
                    .ok_or_else(|| read::bad_part(path, name, "has no </w:numbering> end tag to add lists before"))?;
                others.insert(name.clone(), new);
            }
            _ => {
                let name = fresh_name(pkg, "numbering", others);
                others.insert(
                    name.clone(),
                    format!("{XML_DECL}<w:numbering xmlns:w=\"{W_NS}\">{defs_abstract}{defs_nums}</w:numbering>"),
                );
                let target = name.strip_prefix(&format!("{dir}/")).unwrap_or(&name).to_owned();
                rels_xml = add_relationship(&rels_xml, rel::NUMBERING, &target).0;
                types = add_content_type(&types, &name, CT_NUMBERING);
                rels_changed = true;
                types_changed = true;
                added.push(name);
            }
        }
    }
    if rels_changed {
        if !pkg.has_part(&rels_name) && !added.contains(&rels_name) {
            added.push(rels_name.clone());
        }
        others.insert(rels_name, rels_xml);
    }
    if types_changed {
        others.insert("[Content_Types].xml".to_owned(), types);
    }
    Ok(format!("{}{xml}{}", &body[..at], &body[at..]))
}

/// `xml` with `entry` before the end tag of its root `w:<root>`.
fn insert_before_end(xml: &str, root: &str, entry: &str) -> Option<String> {
    let end = xml.rfind(&format!("</w:{root}>"))?;
    Some(format!("{}{entry}{}", &xml[..end], &xml[end..]))
}

/// A numbering part with the abstract definitions before its first `w:num`
/// (the schema's order) and the lists before its end (or its `numIdMacAtCleanup`).
fn insert_numbering(xml: &str, abstracts: &str, nums: &str) -> Option<String> {
    let end = xml.rfind("</w:numbering>")?;
    let nums_at = xml[..end].find("<w:numIdMacAtCleanup").unwrap_or(end);
    // Only before the lists' end: a `w:num` after it (or in a trailing
    // comment) must not put the cut past `nums_at`.
    let head = &xml[..nums_at];
    let first_num = [head.find("<w:num "), head.find("<w:num>")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(nums_at);
    Some(format!(
        "{}{abstracts}{}{nums}{}",
        &xml[..first_num],
        &xml[first_num..nums_at],
        &xml[nums_at..]
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use std::io::{Cursor, Read};

    use super::*;
    use crate::read::render;

    #[test]
    fn numbering_with_a_list_after_its_cleanup_marker_does_not_panic() {
        let xml =
            "<w:numbering><w:numIdMacAtCleanup w:val=\"1\"/><w:num w:numId=\"1\"/></w:numbering><!-- <w:num > -->";
        let out = insert_numbering(xml, "<A/>", "<N/>").unwrap();
        assert!(out.contains("<A/>") && out.contains("<N/>"), "{out}");
    }

    fn corpus_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/docx-pptx")
    }

    fn edits(v: Value) -> Vec<Edit> {
        serde_json::from_value(v).unwrap()
    }

    fn text_of(path: &Path, bytes: &[u8]) -> String {
        render(path, bytes, 0, crate::read::MAX_MAX_CHARS).unwrap().text
    }

    /// Every entry's name with its raw (compressed) bytes and checksum.
    fn raw_entries(bytes: &[u8]) -> BTreeMap<String, (u32, Vec<u8>)> {
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        (0..zip.len())
            .map(|i| {
                let mut e = zip.by_index_raw(i).unwrap();
                let mut raw = Vec::new();
                e.read_to_end(&mut raw).unwrap();
                (e.name().unwrap().into_owned(), (e.crc32(), raw))
            })
            .collect()
    }

    /// The first word of four letters or more in the main part's text runs.
    fn a_word(path: &Path, bytes: &[u8]) -> Option<String> {
        let mut pkg = read::open(path, bytes, Kind::Docx).unwrap();
        let main = pkg.main.clone();
        let xml = pkg.part(&main).unwrap().unwrap();
        let mut x = Xml::new(&xml);
        let mut in_t = false;
        while let Some(n) = x.next().unwrap() {
            match n {
                Node::Open(t) => in_t = t.is(Ns::W, "t"),
                Node::Close(..) => in_t = false,
                Node::Text(t) if in_t => {
                    if let Some(w) = t
                        .split(|c: char| !c.is_alphabetic())
                        .find(|w| w.chars().count() >= 4 && w.is_ascii())
                    {
                        return Some(w.to_owned());
                    }
                }
                Node::Text(_) => {}
            }
        }
        None
    }

    #[test]
    fn every_real_document_takes_an_append_and_a_replace_and_keeps_every_other_entry() {
        let mut seen = 0;
        for entry in std::fs::read_dir(corpus_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "docx") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let mut list = vec![json!({"op": "append", "blocks": [
                {"type": "heading", "text": "Added by deskhand", "level": 2},
                {"type": "paragraph", "text": "An appended paragraph & more"},
                {"type": "list", "items": ["first point", "second point"]},
                {"type": "list", "items": ["step one"], "numbered": true},
                {"type": "table", "header": ["Item", "Cost"], "rows": [["Tea", 2.5]], "caption": "Costs"}
            ]})];
            if name.contains("strict") {
                let err = apply(&path, &bytes, &edits(json!(list))).err().unwrap();
                assert!(format!("{err:?}").contains("Strict Open XML"), "{name}: {err:?}");
                continue;
            }
            let word = a_word(&path, &bytes).unwrap_or_else(|| panic!("{name}: no word"));
            list.insert(0, json!({"op": "replace", "find": word, "replace": "Qwertyuiop"}));
            let applied = apply(&path, &bytes, &edits(json!(list))).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            let (before, after) = (raw_entries(&bytes), raw_entries(&applied.bytes));
            for (entry, raw) in &before {
                if applied.rewritten.contains(entry) {
                    continue;
                }
                assert_eq!(after.get(entry), Some(raw), "{name}: {entry} changed");
            }
            for added in &applied.added {
                assert!(
                    after.contains_key(added) && !before.contains_key(added),
                    "{name}: {added}"
                );
            }
            // Kept under the target directory, to open by hand.
            let kept = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/guest-native/docx-edit-corpus");
            std::fs::create_dir_all(&kept).unwrap();
            std::fs::write(kept.join(&name), &applied.bytes).unwrap();
            let text = text_of(&path, &applied.bytes);
            assert!(text.contains("Qwertyuiop"), "{name}: {word} not replaced:\n{text}");
            for expected in [
                "## Added by deskhand\n",
                "An appended paragraph & more\n",
                "- first point\n",
                "1. step one\n",
                "| Tea | 2.5 |",
            ] {
                assert!(text.contains(expected), "{name}: no {expected:?} in\n{text}");
            }
            assert!(text.find("Qwertyuiop") < text.find("Added by deskhand"), "{name}");
            // Every part written is well-formed.
            let mut zip = zip::ZipArchive::new(Cursor::new(&applied.bytes[..])).unwrap();
            for part in applied.rewritten.iter().chain(&applied.added) {
                let mut s = String::new();
                zip.by_name(part).unwrap().read_to_string(&mut s).unwrap();
                let mut x = Xml::new(&s);
                while x.next().unwrap_or_else(|e| panic!("{name}: {part} {e}")).is_some() {}
            }
            seen += 1;
        }
        assert!(seen >= 12, "{seen} documents");
    }

    fn built(blocks: Value) -> (PathBuf, Vec<u8>) {
        let doc: deskhand_guest::document::Document = serde_json::from_value(json!({"blocks": blocks})).unwrap();
        let (bytes, _) = build::build(&doc, &mut |_: &str, _: &str| unreachable!()).unwrap();
        (PathBuf::from("in/letter.docx"), bytes)
    }

    #[test]
    fn fill_puts_values_into_split_placeholders_and_names_what_is_missing() {
        let (path, bytes) = built(json!([{"type": "paragraph", "text": "Dear {{client}}, re {{ matter }}"}]));
        // Split the placeholder across runs as Word does.
        let mut pkg = read::open(&path, &bytes, Kind::Docx).unwrap();
        let xml = pkg.part("word/document.xml").unwrap().unwrap();
        let split = xml.replace("{{client}}", "{{cli</w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>ent}}");
        let changed = BTreeMap::from([("word/document.xml".to_owned(), split.into_bytes())]);
        let bytes = rewrite(&path, &bytes, &changed, &BTreeSet::new()).unwrap();

        let ok = apply(
            &path,
            &bytes,
            &edits(json!([{"op": "fill", "values": {"client": "Acme & Co", "matter": 42}}])),
        )
        .unwrap();
        assert!(text_of(&path, &ok.bytes).contains("Dear Acme & Co, re 42"));
        assert_eq!(ok.results[0]["placeholders_filled"], 2);

        let missing = apply(
            &path,
            &bytes,
            &edits(json!([{"op": "fill", "values": {"client": "A"}}])),
        )
        .err()
        .unwrap();
        assert!(format!("{missing:?}").contains("{{matter}}"), "{missing:?}");
        let extra = apply(
            &path,
            &bytes,
            &edits(json!([{"op": "fill", "values": {"client": "A", "matter": "b", "date": "c"}}])),
        )
        .err()
        .unwrap();
        assert!(format!("{extra:?}").contains("\\\"date\\\""), "{extra:?}");
    }

    #[test]
    fn a_find_that_matches_nothing_is_named_and_nothing_changes() {
        let (path, bytes) = built(json!([{"type": "paragraph", "text": "Hello world"}]));
        let err = apply(
            &path,
            &bytes,
            &edits(json!([{"op": "replace", "find": "Hello", "replace": "Hi"}, {"op": "replace", "find": "Goodbye", "replace": "x"}])),
        )
        .err()
        .unwrap();
        let msg = format!("{err:?}").replace("\\\"", "\"");
        assert!(msg.contains("edits[1]") && msg.contains("\"Goodbye\""), "{msg}");
        let ok = apply(
            &path,
            &bytes,
            &edits(json!([{"op": "replace", "find": "WORLD", "replace": "there", "match_case": false}])),
        )
        .unwrap();
        assert!(text_of(&path, &ok.bytes).contains("Hello there"));
        assert_eq!(ok.rewritten, ["word/document.xml"]);
    }

    #[test]
    fn appending_lists_to_a_document_without_numbering_adds_the_part_its_rel_and_type() {
        let (path, bytes) = built(json!([{"type": "paragraph", "text": "Only text"}]));
        // Take out build's numbering, its relationship and its content type.
        let mut pkg = read::open(&path, &bytes, Kind::Docx).unwrap();
        let rels = pkg.part("word/_rels/document.xml.rels").unwrap().unwrap();
        let types = pkg.part("[Content_Types].xml").unwrap().unwrap();
        let rels = rels.replace("<Relationship Id=\"rId2\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/numbering\" Target=\"numbering.xml\"/>", "");
        let types = types.replace(
            &format!("<Override PartName=\"/word/numbering.xml\" ContentType=\"{CT_NUMBERING}\"/>"),
            "",
        );
        let changed = BTreeMap::from([
            ("word/_rels/document.xml.rels".to_owned(), rels.into_bytes()),
            ("[Content_Types].xml".to_owned(), types.into_bytes()),
        ]);
        let removed = BTreeSet::from(["word/numbering.xml".to_owned()]);
        let bytes = rewrite(&path, &bytes, &changed, &removed).unwrap();
        let ok = apply(
            &path,
            &bytes,
            &edits(json!([{"op": "append", "blocks": [{"type": "list", "items": ["a", "b"], "numbered": true}]}])),
        )
        .unwrap();
        assert_eq!(ok.added, ["word/numbering.xml"]);
        let text = text_of(&path, &ok.bytes);
        assert!(text.contains("1. a\n2. b\n"), "{text}");
        let mut pkg = read::open(&path, &ok.bytes, Kind::Docx).unwrap();
        assert!(
            pkg.part("[Content_Types].xml")
                .unwrap()
                .unwrap()
                .contains("/word/numbering.xml")
        );
    }

    /// LibreOffice looped on python-docx-test.docx with a table appended last.
    #[test]
    fn a_table_appended_last_is_followed_by_a_paragraph() {
        let (path, bytes) = built(json!([{"type": "paragraph", "text": "x"}]));
        let ok = apply(
            &path,
            &bytes,
            &edits(json!([{"op": "append", "blocks": [{"type": "table", "header": ["a"], "rows": [["b"]]}]}])),
        )
        .unwrap();
        let mut pkg = read::open(&path, &ok.bytes, Kind::Docx).unwrap();
        let xml = pkg.part("word/document.xml").unwrap().unwrap();
        assert!(xml.contains("</w:tbl><w:p/><w:sectPr>"), "{xml}");
    }

    #[test]
    fn images_are_refused_in_an_append() {
        let (path, bytes) = built(json!([{"type": "paragraph", "text": "x"}]));
        let err = apply(
            &path,
            &bytes,
            &edits(json!([{"op": "append", "blocks": [{"type": "image", "path": "a.png"}]}])),
        )
        .err()
        .unwrap();
        assert!(format!("{err:?}").contains("images and charts"), "{err:?}");
    }
}
