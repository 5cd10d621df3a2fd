//! `edit`: changes an existing presentation, as a proposed overwrite the
//! person sees before it is applied (and can undo). The edits apply in
//! order, all or nothing: text replaced in the slides and their speaker
//! notes, `{{name}}` placeholders filled, slides appended (laid out with
//! `write`'s own code on one of the deck's layouts), slides deleted.
//!
//! Only the parts an edit touches are rewritten (the slides and notes whose
//! text changes, `presentation.xml`, its relationships and
//! `[Content_Types].xml` when slides come or go); every other zip entry is
//! copied raw, byte for byte (`deskhand_ooxml::edit::rewrite`).
//!
//! Slides are found through `presentation.xml`'s `p:sldIdLst` and its
//! relationships, never by their file names. A deleted slide's part, its
//! relationships and its notes slide leave the package; the pictures,
//! charts and comments it pointed to stay in it, unreferenced (harmless,
//! and never wrong when another slide shares them). A slide another slide
//! links to (a hyperlink or an action) is not deleted: the link would
//! point nowhere. A deck may be left with no slides.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use deskhand_guest::document::{block_schema, validate_blocks};
use deskhand_guest::{Output, ToolError, path_error, proposal};
use deskhand_ooxml::edit::{self as core, Flavor};
use deskhand_ooxml::read::{self, Kind, Opened, resolve};
use deskhand_ooxml::{Image, rel};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::SlideArg;
use crate::markup::{self, Kind as TagKind};
use crate::slides::{self, Area, LoadImage, Parts, SlideSpec, TitleAs};

/// The most edits one call makes.
const MAX_EDITS: usize = 1_000;
/// The most slides one call appends.
const MAX_APPENDED: usize = 1_000;
/// The most slides an edited deck may have: as many as `text` reads.
const MAX_DECK_SLIDES: usize = 10_000;
/// The most the pictures of all appended slides may weigh together.
const MAX_NEW_MEDIA_BYTES: usize = 256 * 1024 * 1024;
/// Slide ids are at least this and below `MAX_SLIDE_ID` (ECMA-376 19.2.1.33).
const MIN_SLIDE_ID: u64 = 256;
const MAX_SLIDE_ID: u64 = 2_147_483_648;
const P_NS: &str = "http://schemas.openxmlformats.org/presentationml/2006/main";
const R_NS: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
const CONTENT_TYPES: &str = "[Content_Types].xml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditArgs {
    path: PathBuf,
    edits: Vec<Edit>,
}

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Edit {
    Replace {
        find: String,
        replace: String,
        #[serde(default = "yes")]
        match_case: bool,
    },
    Fill {
        values: BTreeMap<String, String>,
    },
    AppendSlides {
        slides: Vec<SlideArg>,
    },
    DeleteSlide {
        slide: usize,
    },
}

fn yes() -> bool {
    true
}

pub const SUMMARY: &str = "Change an existing .pptx presentation (proposed as an overwrite the person approves; \
     undoable). `edits` apply in order, all or nothing: replace text in the slides and speaker notes, fill \
     {{name}} placeholders, append slides (title and blocks, as in `write`, on the deck's own \"Title and \
     Content\" layout), delete a slide by its number. Every part not changed is kept byte for byte.";

pub fn schema() -> Value {
    json!({
        "type": "object", "required": ["path", "edits"], "additionalProperties": false,
        "properties": {
            "path": {"type": "string", "description": "the .pptx presentation to change (in a folder granted read-write, or output/)"},
            "edits": {"type": "array", "minItems": 1, "maxItems": MAX_EDITS, "description": "applied in order; slide numbers are as they are at that point", "items": {"oneOf": [
                {"type": "object", "required": ["op", "find", "replace"], "additionalProperties": false, "properties": {
                    "op": {"const": "replace"},
                    "find": {"type": "string", "minLength": 1, "description": "text in a slide or its notes (also across differently formatted runs)"},
                    "replace": {"type": "string"},
                    "match_case": {"type": "boolean", "default": true}}},
                {"type": "object", "required": ["op", "values"], "additionalProperties": false, "properties": {
                    "op": {"const": "fill"},
                    "values": {"type": "object", "additionalProperties": {"type": "string"},
                               "description": "a value for every {{name}} placeholder in the slides and notes, and only for those"}}},
                {"type": "object", "required": ["op", "slides"], "additionalProperties": false, "properties": {
                    "op": {"const": "append_slides"},
                    "slides": {"type": "array", "minItems": 1, "maxItems": MAX_APPENDED, "items": {
                        "type": "object", "additionalProperties": false,
                        "properties": {
                            "title": {"type": "string"},
                            "blocks": {"type": "array", "items": block_schema(),
                                       "description": "laid out top to bottom; what does not fit continues on a following slide"}}}}}},
                {"type": "object", "required": ["op", "slide"], "additionalProperties": false, "properties": {
                    "op": {"const": "delete_slide"},
                    "slide": {"type": "integer", "minimum": 1, "description": "its number in show order, from 1"}}}
            ]}}
        }
    })
}

/// A slide of the deck as the edit goes along.
#[derive(Debug, Clone)]
struct Slide {
    part: String,
    rid: String,
    id: u64,
    notes: Option<String>,
}

/// The package being edited: parts read once, then changed as text.
struct Work<'a> {
    path: PathBuf,
    pkg: Opened<'a>,
    names: BTreeSet<String>,
    /// Parts read or written so far, as they are now.
    text: BTreeMap<String, String>,
    /// Parts whose text changed (or that are new).
    dirty: BTreeSet<String>,
    /// New binary parts (pictures).
    binary: BTreeMap<String, Vec<u8>>,
    /// Parts of the original package left out.
    removed: BTreeSet<String>,
    /// Every name the package had or this edit gave, lowercased.
    taken: BTreeSet<String>,
    /// Where the search for a free name of each stem goes on.
    next: BTreeMap<String, usize>,
}

impl Work<'_> {
    fn get(&mut self, part: &str) -> Result<String, ToolError> {
        if let Some(t) = self.text.get(part) {
            return Ok(t.clone());
        }
        let t = self
            .pkg
            .part(part)?
            .ok_or_else(|| read::bad(&self.path, format!("is damaged: its part {part} is missing")))?;
        self.text.insert(part.to_owned(), t.clone());
        Ok(t)
    }

    fn set(&mut self, part: &str, xml: String) {
        if self.text.get(part) != Some(&xml) {
            self.text.insert(part.to_owned(), xml);
            self.dirty.insert(part.to_owned());
        }
    }

    /// Whether the package has `part` at this point of the edit.
    fn exists(&self, part: &str) -> bool {
        (self.names.contains(part) && !self.removed.contains(part))
            || self.text.contains_key(part)
            || self.binary.contains_key(part)
    }

    /// A part name `{stem}{n}.{ext}` no part has or had (names compare
    /// ignoring case), and claims it.
    fn free_name(&mut self, stem: &str, ext: &str) -> String {
        let from = self.next.get(stem).copied().unwrap_or(1);
        let (n, name) = (from..)
            .map(|n| (n, format!("{stem}{n}.{ext}")))
            .find(|(_, p)| !self.taken.contains(&p.to_lowercase()))
            .unwrap_or_default();
        self.next.insert(stem.to_owned(), n + 1);
        self.taken.insert(name.to_lowercase());
        name
    }

    /// Leaves `part` out of the result (a part this edit added just goes).
    fn remove(&mut self, part: &str) {
        self.dirty.remove(part);
        self.text.remove(part);
        self.binary.remove(part);
        if self.names.contains(part) {
            self.removed.insert(part.to_owned());
        }
    }

    fn damaged(&self, what: impl std::fmt::Display) -> ToolError {
        read::bad(&self.path, format!("is damaged: {what}"))
    }
}

/// The relationships part of `part`.
fn rels_name(part: &str) -> String {
    match part.rsplit_once('/') {
        Some((dir, file)) => format!("{dir}/_rels/{file}.rels"),
        None => format!("_rels/{part}.rels"),
    }
}

fn dir_of(part: &str) -> &str {
    part.rsplit_once('/').map_or("", |(d, _)| d)
}

/// `to` (a part name) as a target relative to the folder `from_dir`.
fn relative(from_dir: &str, to: &str) -> String {
    let from: Vec<&str> = from_dir.split('/').filter(|s| !s.is_empty()).collect();
    let to_parts: Vec<&str> = to.split('/').collect();
    let common = from.iter().zip(&to_parts).take_while(|(a, b)| a == b).count();
    let mut out: Vec<&str> = vec![".."; from.len() - common];
    out.extend(&to_parts[common..]);
    out.join("/")
}

/// The relationships of a `.rels` part's text: (id, type's last segment, resolved target, external).
fn parse_rels(xml: &str, dir: &str) -> Vec<(String, String, String, bool)> {
    markup::tags(xml)
        .filter(|t| t.kind != TagKind::Close && t.local() == "Relationship")
        .map(|t| {
            let external = t.attr("TargetMode").is_some_and(|m| m == "External");
            let target = t.attr("Target").unwrap_or_default();
            (
                t.attr("Id").unwrap_or_default(),
                t.attr("Type")
                    .unwrap_or_default()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                if external { target } else { resolve(dir, &target) },
                external,
            )
        })
        .collect()
}

pub fn edit(args: EditArgs) -> Result<Output, ToolError> {
    let path = args.path.as_path();
    let bytes = deskhand_guest::read_capped(path, read::MAX_FILE_BYTES, |size| {
        ToolError::TooLarge(path_error(
            path,
            format!(
                "is {size} bytes; the pptx tool edits files up to {} MiB",
                read::MAX_FILE_BYTES >> 20
            ),
        ))
    })?;
    let edited = apply(path, &bytes, &args.edits, &mut deskhand_ooxml::read_image)?;
    let change = core::stage_overwrite(path, &edited.bytes)?;
    Ok(proposal(&edited.summary, edited.text, vec![change]))
}

/// An edited package and what the edit did.
pub struct Edited {
    pub bytes: Vec<u8>,
    pub summary: Value,
    pub text: String,
}

/// Applies `edits` to the presentation `bytes` (the file at `path`);
/// `load` reads the pictures of appended slides.
pub fn apply(path: &Path, bytes: &[u8], edits: &[Edit], load: &mut LoadImage<'_>) -> Result<Edited, ToolError> {
    if edits.is_empty() || edits.len() > MAX_EDITS {
        return Err(ToolError::InvalidArgs(format!(
            "edits must hold 1 to {MAX_EDITS} changes"
        )));
    }
    let pkg = read::open(path, bytes, Kind::Pptx)?;
    let names = core::entry_names(path, bytes)?;
    let main = pkg.main.clone();
    let taken = names.iter().map(|n| n.to_lowercase()).collect();
    let mut w = Work {
        path: path.to_path_buf(),
        pkg,
        names,
        text: BTreeMap::new(),
        dirty: BTreeSet::new(),
        binary: BTreeMap::new(),
        removed: BTreeSet::new(),
        taken,
        next: BTreeMap::new(),
    };
    let mut deck = Deck::read(&mut w, &main)?;

    let mut done = Vec::new();
    for (i, e) in edits.iter().enumerate() {
        let at = format!("edits[{i}]");
        done.push(match e {
            Edit::Replace {
                find,
                replace,
                match_case,
            } => deck.replace(&mut w, &at, find, replace, *match_case)?,
            Edit::Fill { values } => deck.fill(&mut w, &at, values)?,
            Edit::AppendSlides { slides } => deck.append(&mut w, &at, slides, load)?,
            Edit::DeleteSlide { slide } => deck.delete(&mut w, &at, *slide)?,
        });
    }

    let mut changed: BTreeMap<String, Vec<u8>> = w
        .dirty
        .iter()
        .filter_map(|p| w.text.get(p).map(|t| (p.clone(), core::as_utf8(t))))
        .collect();
    changed.extend(std::mem::take(&mut w.binary));
    let rewritten: Vec<&String> = changed.keys().filter(|p| w.names.contains(*p)).collect();
    let added: Vec<&String> = changed.keys().filter(|p| !w.names.contains(*p)).collect();
    let result = core::rewrite(path, bytes, &changed, &w.removed)?;
    let count = deck.slides.len();
    let summary = json!({
        "proposed": "overwrite",
        "path": path.display().to_string(),
        "edits": done,
        "slide_count": count,
        "parts_rewritten": rewritten,
        "parts_added": added,
        "parts_removed": w.removed,
        "size": result.len(),
    });
    let said: Vec<&str> = done.iter().filter_map(|d| d["said"].as_str()).collect();
    let text = format!(
        "proposed to change {}: {}; now {count} slide{} (every other part unchanged)",
        path.display(),
        said.join(", "),
        if count == 1 { "" } else { "s" },
    );
    Ok(Edited {
        bytes: result,
        summary,
        text,
    })
}

/// The deck's structure as the edit goes along.
struct Deck {
    main: String,
    main_rels: String,
    slides: Vec<Slide>,
    /// The prefix (with colon) presentation.xml uses for PresentationML.
    p: String,
    size: (i64, i64),
    layout: Option<Layout>,
}

/// The layout appended slides use, and where their title and content go.
#[derive(Debug, Clone)]
struct Layout {
    part: String,
    name: String,
    title_ph: Option<String>,
    area: Area,
}

impl Deck {
    fn read(w: &mut Work<'_>, main: &str) -> Result<Deck, ToolError> {
        let xml = w.get(main)?;
        let main_rels = rels_name(main);
        let rels_xml = if w.names.contains(&main_rels) {
            w.get(&main_rels)?
        } else {
            return Err(w.damaged(format!("its part {main_rels} is missing")));
        };
        let rels = parse_rels(&rels_xml, dir_of(main));
        let p = markup::prefix_of(&xml, P_NS)
            .ok_or_else(|| w.damaged(format!("{main} is not a PresentationML presentation")))?;
        let list = format!("{p}sldIdLst");
        let entry = format!("{p}sldId");
        let size_tag = format!("{p}sldSz");
        let mut slides: Vec<Slide> = Vec::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut in_list = false;
        let mut size = (9_144_000, 6_858_000);
        for t in markup::tags(&xml) {
            if t.name == list {
                in_list = t.kind == TagKind::Open;
            } else if in_list && t.name == entry && t.kind != TagKind::Close {
                let rid = t.prefixed_attr("id").unwrap_or_default();
                let id: u64 = t.attr("id").and_then(|v| v.parse().ok()).unwrap_or(0);
                let Some((_, _, target, _)) = rels.iter().find(|(i, k, _, ext)| *i == rid && k == "slide" && !ext)
                else {
                    return Err(w.damaged(format!(
                        "slide {} is listed but its part is not ({rid})",
                        slides.len() + 1
                    )));
                };
                if let Some(k) = seen.insert(target.clone(), slides.len() + 1) {
                    return Err(w.damaged(format!(
                        "slides {k} and {} are one part ({target}); open it in PowerPoint and save it again",
                        slides.len() + 1
                    )));
                }
                slides.push(Slide {
                    part: target.clone(),
                    rid,
                    id,
                    notes: None,
                });
            } else if t.name == size_tag {
                let dim = |a: &str| t.attr(a).and_then(|v| v.parse::<i64>().ok()).filter(|v| *v > 0);
                if let (Some(cx), Some(cy)) = (dim("cx"), dim("cy")) {
                    size = (cx, cy);
                }
            }
        }
        for s in &mut slides {
            let rels_part = rels_name(&s.part);
            if w.names.contains(&rels_part) {
                let r = w.get(&rels_part)?;
                s.notes = parse_rels(&r, dir_of(&s.part))
                    .into_iter()
                    .find(|(_, k, _, ext)| k == "notesSlide" && !ext)
                    .map(|(_, _, t, _)| t)
                    .filter(|t| w.names.contains(t));
            }
        }
        Ok(Deck {
            main: main.to_owned(),
            main_rels,
            slides,
            p,
            size,
            layout: None,
        })
    }

    /// The slides' and notes' parts, with the slide number each belongs to.
    fn text_parts(&self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for (n, s) in self.slides.iter().enumerate() {
            out.push((n + 1, s.part.clone()));
            if let Some(notes) = &s.notes {
                out.push((n + 1, notes.clone()));
            }
        }
        out
    }

    fn replace(
        &mut self,
        w: &mut Work<'_>,
        at: &str,
        find: &str,
        replace: &str,
        match_case: bool,
    ) -> Result<Value, ToolError> {
        core::check_replace(at, find, replace)?;
        let pairs = vec![(find.to_owned(), replace.to_owned())];
        let mut total = 0;
        let mut on = BTreeSet::new();
        for (n, part) in self.text_parts() {
            let xml = w.get(&part)?;
            let (new, counts) = core::replace_in_part(&xml, Flavor::Drawing, &pairs, match_case)
                .map_err(|e| w.damaged(format!("{part} {e}")))?;
            if counts[0] > 0 {
                total += counts[0];
                on.insert(n);
                w.set(&part, new);
            }
        }
        if total == 0 {
            return Err(ToolError::InvalidArgs(format!(
                "{at}: {find:?} was not found in the text of the {} slide(s) or their speaker notes{}; nothing was \
                 changed (read the slides with the pptx tool's `text` to see their words)",
                self.slides.len(),
                if match_case {
                    " (matching case; set \"match_case\": false to ignore it)"
                } else {
                    ""
                }
            )));
        }
        let said = format!(
            "replaced {find:?} {}",
            if total == 1 {
                "once".to_owned()
            } else {
                format!("{total} times")
            }
        );
        Ok(json!({"op": "replace", "find": find, "replaced": total, "slides": on, "said": said}))
    }

    fn fill(&mut self, w: &mut Work<'_>, at: &str, values: &BTreeMap<String, String>) -> Result<Value, ToolError> {
        if values.is_empty() {
            return Err(ToolError::InvalidArgs(format!(
                "{at}: \"values\" is empty; give a value for each {{{{name}}}} placeholder"
            )));
        }
        let mut forms: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let parts = self.text_parts();
        for (_, part) in &parts {
            let xml = w.get(part)?;
            for (name, f) in core::placeholder_forms(&xml, Flavor::Drawing) {
                forms.entry(name).or_default().extend(f);
            }
        }
        let missing: Vec<&String> = forms.keys().filter(|k| !values.contains_key(*k)).collect();
        let unused: Vec<&String> = values.keys().filter(|k| !forms.contains_key(*k)).collect();
        if !missing.is_empty() || !unused.is_empty() {
            let mut problems = Vec::new();
            if !missing.is_empty() {
                problems.push(format!("no value for the placeholder(s) {missing:?}"));
            }
            if !unused.is_empty() {
                problems.push(format!(
                    "the value(s) {unused:?} match no {{{{name}}}} placeholder in the slides or notes"
                ));
            }
            let found: Vec<&String> = forms.keys().collect();
            return Err(ToolError::InvalidArgs(format!(
                "{at}: {}; the deck's placeholders are {found:?}. Nothing was changed",
                problems.join(", and ")
            )));
        }
        let pairs: Vec<(String, String)> = forms
            .iter()
            .flat_map(|(name, fs)| fs.iter().map(move |f| (f.clone(), values[name].clone())))
            .collect();
        let mut filled: BTreeMap<String, usize> = BTreeMap::new();
        for (_, part) in &parts {
            let xml = w.get(part)?;
            let (new, counts) = core::replace_in_part(&xml, Flavor::Drawing, &pairs, true)
                .map_err(|e| w.damaged(format!("{part} {e}")))?;
            for ((form, _), c) in pairs.iter().zip(counts) {
                if let Some((name, _)) = forms.iter().find(|(_, fs)| fs.contains(form)) {
                    *filled.entry(name.clone()).or_default() += c;
                }
            }
            w.set(part, new);
        }
        let said = format!("filled {} placeholder(s)", filled.len());
        Ok(json!({"op": "fill", "filled": filled, "said": said}))
    }

    fn delete(&mut self, w: &mut Work<'_>, at: &str, n: usize) -> Result<Value, ToolError> {
        let count = self.slides.len();
        if n == 0 || n > count {
            return Err(ToolError::InvalidArgs(format!(
                "{at}: there is no slide {n}; the presentation has {count} slide{} at this point",
                if count == 1 { "" } else { "s" }
            )));
        }
        let slide = self.slides.remove(n - 1);
        let title = if w.exists(&slide.part) {
            let xml = w.get(&slide.part)?;
            crate::read::slide_title(&xml).map_err(|e| w.damaged(format!("its part {} {e}", slide.part)))?
        } else {
            String::new()
        };
        // Another slide that links here would point nowhere.
        for (k, other) in self.slides.iter().enumerate() {
            let rels_part = rels_name(&other.part);
            if !w.exists(&rels_part) {
                continue;
            }
            let r = w.get(&rels_part)?;
            if parse_rels(&r, dir_of(&other.part))
                .iter()
                .any(|(_, _, t, ext)| !ext && *t == slide.part)
            {
                let shown = if k + 1 >= n { k + 2 } else { k + 1 };
                return Err(ToolError::InvalidArgs(format!(
                    "{at}: slide {n} cannot be deleted: slide {shown} links to it (a hyperlink or an action), and the \
                     link would point nowhere. Remove that link in PowerPoint first. Nothing was changed"
                )));
            }
        }
        let mut gone = vec![slide.part.clone(), rels_name(&slide.part)];
        if let Some(notes) = &slide.notes {
            gone.push(notes.clone());
            gone.push(rels_name(notes));
        }
        gone.retain(|p| w.exists(p));
        for p in &gone {
            w.remove(p);
        }
        let types = w.get(CONTENT_TYPES)?;
        let types = markup::remove_elements(&types, |t| {
            t.local() == "Override"
                && t.attr("PartName").is_some_and(|name| {
                    gone.iter()
                        .any(|g| name.trim_start_matches('/').eq_ignore_ascii_case(g))
                })
        })
        .map_err(|e| w.damaged(format!("{CONTENT_TYPES}: {e}")))?;
        w.set(CONTENT_TYPES, types);
        // The presentation: its list entry, sections' and custom shows' mentions, its relationship.
        let xml = w.get(&self.main)?;
        let id = slide.id.to_string();
        let rid = slide.rid.clone();
        let xml = markup::remove_elements(&xml, |t| {
            (t.local() == "sldId" && t.attr("id").as_deref() == Some(id.as_str()))
                || (t.local() == "sld" && t.prefixed_attr("id").as_deref() == Some(rid.as_str()))
        })
        .map_err(|e| w.damaged(format!("{}: {e}", self.main)))?;
        let list = format!("{}sldIdLst", self.p);
        let xml = if self.slides.is_empty() {
            // No slides: no list, as PowerPoint saves an empty deck.
            markup::remove_elements(&xml, |t| t.name == list).map_err(|e| w.damaged(format!("{}: {e}", self.main)))?
        } else {
            xml
        };
        w.set(&self.main.clone(), xml);
        let rels = w.get(&self.main_rels)?;
        let rels = markup::remove_elements(&rels, |t| {
            t.local() == "Relationship" && t.attr("Id").as_deref() == Some(slide.rid.as_str())
        })
        .map_err(|e| w.damaged(format!("{}: {e}", self.main_rels)))?;
        w.set(&self.main_rels.clone(), rels);
        let said = if title.is_empty() {
            format!("deleted slide {n}")
        } else {
            format!("deleted slide {n} ({title:?})")
        };
        Ok(json!({"op": "delete_slide", "slide": n, "title": title, "parts_removed": gone, "said": said}))
    }

    fn append(
        &mut self,
        w: &mut Work<'_>,
        at: &str,
        slides: &[SlideArg],
        load: &mut LoadImage<'_>,
    ) -> Result<Value, ToolError> {
        if slides.is_empty() || slides.len() > MAX_APPENDED {
            return Err(ToolError::InvalidArgs(format!(
                "{at}.slides: give 1 to {MAX_APPENDED} slides ({{\"title\": ..., \"blocks\": [...]}})"
            )));
        }
        let mut specs = Vec::with_capacity(slides.len());
        for (s, slide) in slides.iter().enumerate() {
            validate_blocks(&slide.blocks).map_err(|e| match e {
                ToolError::InvalidArgs(m) => ToolError::InvalidArgs(format!("{at}.slides[{s}].{m}")),
                other => other,
            })?;
            specs.push(SlideSpec {
                title: slide.title.clone(),
                blocks: slide.blocks.clone(),
            });
        }
        let layout = match &self.layout {
            Some(l) => l.clone(),
            None => {
                let l = self.choose_layout(w)?;
                self.layout = Some(l.clone());
                l
            }
        };
        let laid = slides::lay_out(&specs, layout.area, load).map_err(|e| match e {
            ToolError::InvalidArgs(m) if m.starts_with("slides[") => ToolError::InvalidArgs(format!("{at}.{m}")),
            other => other,
        })?;
        let (pages, mut images) = laid.into_parts();
        if self.slides.len() + pages.len() > MAX_DECK_SLIDES {
            return Err(ToolError::InvalidArgs(format!(
                "{at}: the deck would have {} slides; deskhand edits presentations of up to {MAX_DECK_SLIDES}",
                self.slides.len() + pages.len()
            )));
        }
        let media: usize = w.binary.values().map(Vec::len).sum::<usize>()
            + images.iter().flatten().map(|i| i.bytes.len()).sum::<usize>();
        if media > MAX_NEW_MEDIA_BYTES {
            return Err(ToolError::InvalidArgs(format!(
                "{at}: the pictures of the new slides add up to more than {} MiB; embed fewer or smaller ones",
                MAX_NEW_MEDIA_BYTES >> 20
            )));
        }
        let sh = self.size.1;
        let title_as = match &layout.title_ph {
            Some(ph) => TitleAs { ph, at: None },
            None => TitleAs {
                ph: "<p:ph type=\"title\"/>",
                at: Some((layout.area.left, sh / 25, layout.area.width, sh * 3 / 20)),
            },
        };
        let mut main_xml = w.get(&self.main)?;
        let mut rels_xml = w.get(&self.main_rels)?;
        let mut types = w.get(CONTENT_TYPES)?;
        let start_id = self
            .slides
            .iter()
            .map(|s| s.id + 1)
            .chain(self.all_ids(&main_xml))
            .max()
            .unwrap_or(MIN_SLIDE_ID)
            .max(MIN_SLIDE_ID);
        let first = self.slides.len() + 1;
        let mut added = Vec::new();
        // The relationships prefix presentation.xml binds, else one declared on the entry.
        let (r, declare_r) = match markup::prefix_of(&main_xml, R_NS) {
            Some(r) if !r.is_empty() => (r, String::new()),
            _ => ("r:".to_owned(), format!(" xmlns:r=\"{R_NS}\"")),
        };
        for (next_id, page) in (start_id..).zip(pages) {
            if next_id >= MAX_SLIDE_ID {
                return Err(ToolError::InvalidArgs(format!(
                    "{at}: the presentation's slide ids are used up; save it again in PowerPoint and retry"
                )));
            }
            let part = w.free_name("ppt/slides/slide", "xml");
            let mut sink = NewParts {
                w: &mut *w,
                types: &mut types,
            };
            let layout_target = relative(dir_of(&part), &layout.part);
            let (xml, rels) = slides::render(page, &mut images, &title_as, &layout_target, &mut sink);
            w.set(&part, xml);
            w.set(&rels_name(&part), rels.xml());
            types = core::add_content_type(&types, &part, slides::CT_SLIDE);
            types = with_default(&types, "rels", deskhand_ooxml::ct::RELS);
            let (new_rels, rid) = core::add_relationship(&rels_xml, rel::SLIDE, &relative(dir_of(&self.main), &part));
            rels_xml = new_rels;
            let entry = format!("<{p}sldId{declare_r} id=\"{next_id}\" {r}id=\"{rid}\"/>", p = self.p);
            main_xml = Self::add_to_last_section(&self.add_to_list(w, &main_xml, &entry)?, next_id);
            self.slides.push(Slide {
                part: part.clone(),
                rid,
                id: next_id,
                notes: None,
            });
            added.push(part);
        }
        w.set(&self.main.clone(), main_xml);
        w.set(&self.main_rels.clone(), rels_xml);
        w.set(CONTENT_TYPES, types);
        Ok(
            json!({"op": "append_slides", "slides_added": added.len(), "first": first,
                  "layout": layout.name, "parts_added": added,
                  "said": format!("added {} slide(s) from slide {first} on", added.len())}),
        )
    }

    /// Every `id` a slide list entry uses, sections' included.
    fn all_ids(&self, xml: &str) -> Vec<u64> {
        markup::tags(xml)
            .filter(|t| t.kind != TagKind::Close && t.local() == "sldId")
            .filter_map(|t| t.attr("id")?.parse::<u64>().ok().map(|v| v + 1))
            .collect()
    }

    /// presentation.xml with `entry` at the end of its slide list (made where
    /// the schema puts it when the deck has none).
    fn add_to_list(&self, w: &Work<'_>, xml: &str, entry: &str) -> Result<String, ToolError> {
        let p = &self.p;
        let list = format!("{p}sldIdLst");
        if let Some(out) = markup::append_child(xml, |t| t.name == list, entry) {
            return Ok(out);
        }
        // After the masters' lists (ECMA-376 19.2.1.26), before everything else.
        for before in ["handoutMasterIdLst", "notesMasterIdLst", "sldMasterIdLst"] {
            let name = format!("{p}{before}");
            if let Some(t) = markup::tags(xml).find(|t| t.name == name && t.kind != TagKind::Close)
                && let Some(end) = markup::element_end(xml, &t)
            {
                return Ok(format!("{}<{list}>{entry}</{list}>{}", &xml[..end], &xml[end..]));
            }
        }
        Err(w.damaged(format!("{} has no slide master list", self.main)))
    }

    /// presentation.xml with slide `id` at the end of its last section when
    /// it has sections (PowerPoint 2010's `p14:sectionLst`): a slide in no
    /// section would be missing from PowerPoint's section view.
    fn add_to_last_section(xml: &str, id: u64) -> String {
        let Some(section) = markup::tags(xml)
            .filter(|t| t.local() == "section" && t.kind != TagKind::Close)
            .last()
        else {
            return xml.to_owned();
        };
        let Some(end) = markup::element_end(xml, &section) else {
            return xml.to_owned();
        };
        let inner = &xml[section.start..end];
        let Some(list) = markup::tags(inner).find(|t| t.local() == "sldIdLst" && t.kind != TagKind::Close) else {
            return xml.to_owned();
        };
        let entry = format!(
            "<{}sldId id=\"{id}\"/>",
            list.name.strip_suffix("sldIdLst").unwrap_or("")
        );
        match markup::append_child(inner, |t| t.local() == "sldIdLst", &entry) {
            Some(new) => format!("{}{new}{}", &xml[..section.start], &xml[end..]),
            None => xml.to_owned(),
        }
    }

    /// The layout for new slides: "Title and Content" (`obj`), else Title
    /// Only, else Blank, else the first of the first master.
    fn choose_layout(&self, w: &mut Work<'_>) -> Result<Layout, ToolError> {
        let rels = parse_rels(&w.get(&self.main_rels)?, dir_of(&self.main));
        let main_xml = w.get(&self.main)?;
        // Masters in the order presentation.xml lists them.
        let master_ids: Vec<String> = markup::tags(&main_xml)
            .filter(|t| t.kind != TagKind::Close && t.local() == "sldMasterId")
            .filter_map(|t| t.prefixed_attr("id"))
            .collect();
        let mut candidates: Vec<(String, String, String)> = Vec::new(); // (part, type, name)
        for mid in master_ids {
            let Some((_, _, master, _)) = rels.iter().find(|(i, k, _, e)| *i == mid && k == "slideMaster" && !e) else {
                continue;
            };
            let master_rels_part = rels_name(master);
            if !w.exists(master) || !w.exists(&master_rels_part) {
                continue;
            }
            let mrels = parse_rels(&w.get(&master_rels_part)?, dir_of(master));
            let mxml = w.get(master)?;
            for lid in markup::tags(&mxml)
                .filter(|t| t.kind != TagKind::Close && t.local() == "sldLayoutId")
                .filter_map(|t| t.prefixed_attr("id"))
            {
                let Some((_, _, part, _)) = mrels.iter().find(|(i, k, _, e)| *i == lid && k == "slideLayout" && !e)
                else {
                    continue;
                };
                if !w.exists(part) {
                    continue;
                }
                let lxml = w.get(part)?;
                let root = markup::tags(&lxml).find(|t| t.local() == "sldLayout");
                let ty = root.and_then(|t| t.attr("type")).unwrap_or_else(|| "cust".into());
                let name = markup::tags(&lxml)
                    .find(|t| t.local() == "cSld" && t.kind != TagKind::Close)
                    .and_then(|t| t.attr("name"))
                    .unwrap_or_default();
                candidates.push((part.clone(), ty, name));
            }
        }
        let pick = ["obj", "titleOnly", "blank"]
            .iter()
            .find_map(|ty| candidates.iter().find(|(_, t, _)| t == ty))
            .or_else(|| candidates.first())
            .cloned();
        let Some((part, _, name)) = pick else {
            return Err(w.damaged("it has no slide layout to add slides on"));
        };
        let lxml = w.get(&part)?;
        let mut boxes = placeholder_boxes(&lxml);
        // What the layout does not place, its master does.
        let lrels = rels_name(&part);
        if w.exists(&lrels) {
            let master = parse_rels(&w.get(&lrels)?, dir_of(&part))
                .into_iter()
                .find(|(_, k, _, e)| k == "slideMaster" && !e)
                .map(|(_, _, t, _)| t);
            if let Some(m) = master.filter(|m| w.exists(m)) {
                let from_master = placeholder_boxes(&w.get(&m)?);
                for b in &mut boxes {
                    if b.xfrm.is_none() {
                        let kind = if b.is_title() { "title" } else { "body" };
                        b.xfrm = from_master.iter().find(|m| m.ty == kind).and_then(|m| m.xfrm);
                    }
                }
            }
        }
        let title = boxes.iter().find(|b| b.is_title());
        let body = boxes.iter().find(|b| b.is_body()).and_then(|b| b.xfrm);
        let (sw, sh) = self.size;
        let fallback = Area {
            left: sw / 20,
            top: sh * 22 / 100,
            width: sw * 9 / 10,
            bottom: sh - sh / 18,
        };
        let sane = |a: Area| a.width >= sw / 4 && a.bottom - a.top >= sh / 4 && a.bottom <= sh && a.left >= 0;
        let area = match (body, title.and_then(|t| t.xfrm)) {
            (Some((x, y, cx, cy)), _) => Area {
                left: x,
                top: y,
                width: cx,
                bottom: y + cy,
            },
            (None, Some((x, y, cx, cy))) => Area {
                left: x,
                top: y + cy + sh / 50,
                width: cx,
                bottom: sh - sh / 18,
            },
            (None, None) => fallback,
        };
        let area = if sane(area) { area } else { fallback };
        Ok(Layout {
            part,
            name,
            title_ph: title.map(|t| format!("<p:ph type=\"{}\"/>", t.ty)),
            area,
        })
    }
}

/// A placeholder of a layout or master: its type and where it sits.
#[derive(Debug, Default)]
struct PlaceholderBox {
    ty: String,
    idx: Option<String>,
    xfrm: Option<(i64, i64, i64, i64)>,
}

impl PlaceholderBox {
    fn is_title(&self) -> bool {
        matches!(self.ty.as_str(), "title" | "ctrTitle")
    }

    fn is_body(&self) -> bool {
        matches!(self.ty.as_str(), "body" | "obj") || (self.ty.is_empty() && self.idx.is_some())
    }
}

/// The placeholders of a layout or master's shapes, with their position when given.
fn placeholder_boxes(xml: &str) -> Vec<PlaceholderBox> {
    let mut out = Vec::new();
    let mut cur: Option<PlaceholderBox> = None;
    let mut is_ph = false;
    let mut in_xfrm = false;
    for t in markup::tags(xml) {
        match (t.local(), t.kind) {
            ("sp", TagKind::Open) => {
                cur = Some(PlaceholderBox::default());
                is_ph = false;
            }
            ("sp", TagKind::Close) => {
                if let Some(b) = cur.take()
                    && is_ph
                {
                    out.push(b);
                }
            }
            ("ph", TagKind::Open | TagKind::Empty) => {
                if let Some(b) = &mut cur {
                    is_ph = true;
                    b.ty = t.attr("type").unwrap_or_default();
                    b.idx = t.attr("idx");
                    if b.ty.is_empty() && b.idx.is_none() {
                        b.ty = "body".into();
                    }
                }
            }
            ("xfrm", TagKind::Open) => in_xfrm = true,
            ("xfrm", TagKind::Close) => in_xfrm = false,
            ("off" | "ext", TagKind::Open | TagKind::Empty) if in_xfrm => {
                if let Some(b) = &mut cur {
                    let (x, y, cx, cy) = b.xfrm.unwrap_or_default();
                    let v = |a: &str| t.attr(a).and_then(|v| v.parse::<i64>().ok());
                    b.xfrm = Some(if t.local() == "off" {
                        (v("x").unwrap_or(x), v("y").unwrap_or(y), cx, cy)
                    } else {
                        (x, y, v("cx").unwrap_or(cx), v("cy").unwrap_or(cy))
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// `[Content_Types].xml` with a `Default` content type for files ending in
/// `.ext`, unless it has one.
fn with_default(types: &str, ext: &str, content_type: &str) -> String {
    let has = markup::tags(types)
        .any(|t| t.local() == "Default" && t.attr("Extension").is_some_and(|e| e.eq_ignore_ascii_case(ext)));
    let entry = format!("<Default Extension=\"{ext}\" ContentType=\"{content_type}\"/>");
    if has {
        return types.to_owned();
    }
    markup::append_child(types, |t| t.local() == "Types", &entry).unwrap_or_else(|| types.to_owned())
}

/// New pictures and charts of appended slides: free names in the package,
/// their content types added.
struct NewParts<'w, 'a> {
    w: &'w mut Work<'a>,
    types: &'w mut String,
}

impl Parts for NewParts<'_, '_> {
    fn image(&mut self, image: Image) -> String {
        let ext = image.format.extension();
        let part = self.w.free_name("ppt/media/image", ext);
        *self.types = with_default(self.types, ext, image.format.content_type());
        self.w.binary.insert(part.clone(), image.bytes);
        relative("ppt/slides", &part)
    }

    fn chart(&mut self, xml: String) -> String {
        let part = self.w.free_name("ppt/charts/chart", "xml");
        *self.types = core::add_content_type(self.types, &part, deskhand_ooxml::ct::CHART);
        self.w.set(&part, xml);
        relative("ppt/slides", &part)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use std::io::Read;

    use super::*;
    use crate::read::Deck;

    fn corpus(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/corpus/docx-pptx")
            .join(name)
    }

    /// An error's message as the model reads it.
    fn message(e: ToolError) -> String {
        format!("{e:?}").replace("\\\"", "\"")
    }

    fn edits(v: Value) -> Vec<Edit> {
        serde_json::from_value(v).unwrap()
    }

    fn no_images(p: &str, _: &str) -> Result<Image, ToolError> {
        Err(ToolError::InvalidArgs(format!("no image {p}")))
    }

    fn run(bytes: &[u8], v: Value) -> Result<Edited, ToolError> {
        apply(Path::new("deck.pptx"), bytes, &edits(v), &mut no_images)
    }

    /// Every slide (title, text, notes) as the `text` reader sees it.
    fn slides_of(bytes: &[u8]) -> Vec<crate::read::Slide> {
        let mut d = Deck::open(Path::new("deck.pptx"), bytes).unwrap();
        (1..=d.slides.len()).map(|n| d.slide(n).unwrap()).collect()
    }

    /// Each entry's raw (compressed) bytes, CRC and method.
    fn raw_entries(bytes: &[u8]) -> BTreeMap<String, (u32, String, Vec<u8>)> {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut out = BTreeMap::new();
        for i in 0..z.len() {
            let mut e = z.by_index_raw(i).unwrap();
            let name = e.name().unwrap().to_string();
            let mut raw = Vec::new();
            e.read_to_end(&mut raw).unwrap();
            out.insert(name, (e.crc32(), format!("{:?}", e.compression()), raw));
        }
        out
    }

    fn part(bytes: &[u8], name: &str) -> String {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut s = String::new();
        z.by_name(name).unwrap().read_to_string(&mut s).unwrap();
        s
    }

    fn strings(v: &Value) -> BTreeSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    }

    /// Checks that the entries the summary does not name are byte for byte
    /// the original's, and that the ones it names were rewritten, added or left out.
    fn assert_untouched_kept(before: &[u8], edited: &Edited) {
        let (a, b) = (raw_entries(before), raw_entries(&edited.bytes));
        let rewritten = strings(&edited.summary["parts_rewritten"]);
        let added = strings(&edited.summary["parts_added"]);
        let removed = strings(&edited.summary["parts_removed"]);
        for (name, entry) in &a {
            if removed.contains(name) {
                assert!(!b.contains_key(name), "{name} was to be removed");
            } else if rewritten.contains(name) {
                assert!(b.contains_key(name), "{name} is missing");
            } else {
                assert_eq!(b.get(name), Some(entry), "{name} changed");
            }
        }
        for name in b.keys().filter(|n| !a.contains_key(*n)) {
            assert!(added.contains(name), "{name} appeared unannounced");
        }
        // Every part the package refers to is there, and well-formed.
        for name in b.keys().filter(|n| n.ends_with(".xml") || n.ends_with(".rels")) {
            let text = part(&edited.bytes, name);
            let mut x = read::Xml::new(&text);
            while x.next().unwrap_or_else(|e| panic!("{name} {e}")).is_some() {}
        }
    }

    /// A word of four letters or more in `text`, outside the reader's `[image: …]` marks.
    fn a_word(text: &str) -> Option<String> {
        let mut plain = String::new();
        let mut depth = 0;
        for c in text.chars() {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                c if depth == 0 => plain.push(c),
                _ => {}
            }
        }
        plain
            .split(|c: char| !c.is_alphabetic())
            .find(|w| w.chars().count() >= 4)
            .map(str::to_owned)
    }

    #[test]
    fn every_corpus_deck_takes_a_replacement_an_appended_slide_and_a_deletion() {
        let mut edited_count = 0;
        for entry in std::fs::read_dir(corpus("")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "pptx") {
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let before = std::fs::read(&path).unwrap();
            let old = slides_of(&before);
            let word = old
                .last()
                .and_then(|s| a_word(&format!("{} {} {}", s.title, s.text, s.notes)));
            let mut list = Vec::new();
            if let Some(w) = &word {
                list.push(json!({"op": "replace", "find": w, "replace": "Zebracorn"}));
            }
            list.push(
                json!({"op": "append_slides", "slides": [{"title": "Appended", "blocks": [
                {"type": "paragraph", "text": "A new slide & its <text>"},
                {"type": "list", "items": ["one", "two"]},
                {"type": "table", "header": ["Item", "N"], "rows": [["a", 1]]}]}]}),
            );
            if !old.is_empty() {
                list.push(json!({"op": "delete_slide", "slide": 1}));
            }
            let edited = run(&before, json!(list)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_untouched_kept(&before, &edited);
            let new = slides_of(&edited.bytes);
            let expected = if old.is_empty() { 1 } else { old.len() };
            assert_eq!(new.len(), expected, "{name}: {}", edited.summary);
            assert_eq!(edited.summary["slide_count"], expected, "{name}");
            let last = new.last().unwrap();
            assert_eq!(last.title, "Appended", "{name}");
            assert!(
                last.text.contains("A new slide & its <text>") && last.text.contains("| a | 1 |"),
                "{name}: {}",
                last.text
            );
            // The slides that stayed are the old ones from the second on.
            for (o, n) in old.iter().skip(1).zip(&new) {
                assert_eq!(
                    o.title.replace(word.as_deref().unwrap_or("\u{0}"), "Zebracorn"),
                    n.title,
                    "{name}"
                );
            }
            if old.len() > 1 && word.is_some() {
                let all: String = new
                    .iter()
                    .map(|s| format!("{} {} {}", s.title, s.text, s.notes))
                    .collect();
                assert!(all.contains("Zebracorn"), "{name}: {all}");
            }
            if word.is_some() {
                assert!(edited.summary["edits"][0]["replaced"].as_u64().unwrap() >= 1, "{name}");
            }
            edited_count += 1;
        }
        assert_eq!(edited_count, 8);
    }

    #[test]
    fn the_deck_s_title_and_content_layout_places_new_slides() {
        let before = std::fs::read(corpus("python-pptx-test.pptx")).unwrap();
        let e = run(
            &before,
            json!([{"op": "append_slides", "slides": [{"title": "T", "blocks": [
            {"type": "paragraph", "text": "body"}]}]}]),
        )
        .unwrap();
        assert_eq!(e.summary["edits"][0]["layout"], "Title and Content");
        let added = strings(&e.summary["parts_added"]);
        assert!(added.contains("ppt/slides/slide2.xml"), "{added:?}");
        let rels = part(&e.bytes, "ppt/slides/_rels/slide2.xml.rels");
        assert!(rels.contains("Target=\"../slideLayouts/slideLayout2.xml\""), "{rels}");
        let pres = part(&e.bytes, "ppt/presentation.xml");
        assert!(
            pres.contains("<p:sldId id=\"256\" r:id=\"rId2\"/><p:sldId id=\"257\""),
            "{pres}"
        );
        let types = part(&e.bytes, "[Content_Types].xml");
        assert!(types.contains("PartName=\"/ppt/slides/slide2.xml\""));
        // The title goes in the layout's placeholder; the text inside the 4:3 slide.
        let slide = part(&e.bytes, "ppt/slides/slide2.xml");
        assert!(slide.contains("<p:ph type=\"title\"/>"), "{slide}");
        for t in markup::tags(&slide).filter(|t| t.local() == "off") {
            let x: i64 = t.attr("x").unwrap().parse().unwrap();
            assert!((0..9_144_000).contains(&x), "{slide}");
        }
    }

    #[test]
    fn a_deck_without_a_title_layout_gets_a_title_box_and_pictures_and_charts_get_parts() {
        let before = std::fs::read(corpus("python-pptx-shp-groupshape.pptx")).unwrap();
        let png = include_bytes!("../../ooxml/tests/gradient-40x20.png").to_vec();
        let mut load = |_: &str, _: &str| Ok(deskhand_ooxml::parse_image(png.clone()).unwrap());
        let list = edits(
            json!([{"op": "append_slides", "slides": [{"title": "Pictures", "blocks": [
            {"type": "image", "path": "a.png"},
            {"type": "chart", "labels": ["a", "b"], "values": [1, 2]}]}]}]),
        );
        let e = apply(Path::new("deck.pptx"), &before, &list, &mut load).unwrap();
        assert_eq!(e.summary["edits"][0]["layout"], "Blank");
        assert_untouched_kept(&before, &e);
        let added = strings(&e.summary["parts_added"]);
        assert!(
            added
                .iter()
                .any(|p| p.starts_with("ppt/media/image") && p.ends_with(".png"))
                && added.iter().any(|p| p.starts_with("ppt/charts/chart")),
            "{added:?}"
        );
        let types = part(&e.bytes, "[Content_Types].xml");
        assert!(
            types.contains("Extension=\"png\"") && types.contains("drawingml.chart+xml"),
            "{types}"
        );
        let s = slides_of(&e.bytes);
        let last = s.last().unwrap();
        assert_eq!(last.title, "Pictures");
        assert!(
            last.text.contains("[image: a.png]") && last.text.contains("[chart]"),
            "{last:?}"
        );
        let slide = part(&e.bytes, "ppt/slides/slide2.xml");
        assert!(
            slide.contains("<p:ph type=\"title\"/></p:nvPr></p:nvSpPr><p:spPr><a:xfrm>"),
            "{slide}"
        );
    }

    #[test]
    fn deleting_every_slide_leaves_a_deck_with_none_and_appending_to_it_makes_a_list() {
        let before = std::fs::read(corpus("python-pptx-tbl-cell.pptx")).unwrap();
        let e = run(&before, json!([
            {"op": "delete_slide", "slide": 3}, {"op": "delete_slide", "slide": 1}, {"op": "delete_slide", "slide": 1}
        ]))
        .unwrap();
        assert!(slides_of(&e.bytes).is_empty());
        assert!(!part(&e.bytes, "ppt/presentation.xml").contains("sldIdLst"));
        let removed = strings(&e.summary["parts_removed"]);
        assert!(removed.contains("ppt/slides/slide1.xml") && removed.contains("ppt/slides/_rels/slide1.xml.rels"));
        assert!(!part(&e.bytes, "[Content_Types].xml").contains("/ppt/slides/"));
        let again = run(
            &e.bytes,
            json!([{"op": "append_slides", "slides": [{"title": "Back"}]}]),
        )
        .unwrap();
        let s = slides_of(&again.bytes);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].title, "Back");
        let pres = part(&again.bytes, "ppt/presentation.xml");
        let list = pres.find("<p:sldIdLst>").unwrap();
        assert!(pres.find("</p:sldMasterIdLst>").unwrap() < list && list < pres.find("<p:sldSz").unwrap());
    }

    #[test]
    fn a_notes_slide_goes_with_its_slide_and_replace_reaches_notes() {
        let before = std::fs::read(corpus("python-pptx-sld-notes.pptx")).unwrap();
        let e = run(
            &before,
            json!([{"op": "replace", "find": "notes", "replace": "Remarks", "match_case": false}]),
        )
        .unwrap();
        assert_eq!(slides_of(&e.bytes)[0].notes, "Remarks");
        let e = run(&before, json!([{"op": "delete_slide", "slide": 1}])).unwrap();
        let removed = strings(&e.summary["parts_removed"]);
        assert!(
            removed.iter().any(|p| p.starts_with("ppt/notesSlides/notesSlide")),
            "{removed:?}"
        );
        assert_untouched_kept(&before, &e);
    }

    #[test]
    fn placeholders_are_filled_and_missing_or_unused_values_are_named() {
        let spec = vec![SlideSpec {
            title: Some("For {{client}}".into()),
            blocks: vec![deskhand_guest::document::Block::Paragraph {
                text: "Due {{ date }}, {{client}}".into(),
            }],
        }];
        let (deck, _) = slides::build(None, None, &spec, &mut no_images).unwrap();
        let err = message(
            run(
                &deck,
                json!([{"op": "fill", "values": {"client": "Acme", "total": "3"}}]),
            )
            .err()
            .unwrap(),
        );
        assert!(
            err.contains("\"date\"") && err.contains("\"total\"") && err.contains("Nothing was changed"),
            "{err}"
        );
        let e = run(
            &deck,
            json!([{"op": "fill", "values": {"client": "Acme & Co", "date": "1 May"}}]),
        )
        .unwrap();
        let s = slides_of(&e.bytes);
        assert_eq!(s[0].title, "For Acme & Co");
        assert_eq!(s[0].text, "Due 1 May, Acme & Co");
        assert_eq!(e.summary["edits"][0]["filled"], json!({"client": 2, "date": 1}));
    }

    #[test]
    fn what_cannot_be_done_is_refused_by_name_and_nothing_is_made() {
        let before = std::fs::read(corpus("python-pptx-txt-text.pptx")).unwrap();
        let err = |v: Value| message(run(&before, v).err().unwrap());
        let e = err(json!([{"op": "replace", "find": "Nowhere to be seen", "replace": "x"}]));
        assert!(
            e.contains("\"Nowhere to be seen\" was not found") && e.contains("match_case"),
            "{e}"
        );
        let e = err(json!([{"op": "delete_slide", "slide": 1}, {"op": "delete_slide", "slide": 2}]));
        assert!(
            e.contains("edits[1]: there is no slide 2; the presentation has 1 slide"),
            "{e}"
        );
        let e = err(json!([{"op": "delete_slide", "slide": 3}]));
        assert!(
            e.contains("edits[0]: there is no slide 3; the presentation has 2 slides"),
            "{e}"
        );
        let e = err(
            json!([{"op": "append_slides", "slides": [{"blocks": [{"type": "heading", "text": "x", "level": 7}]}]}]),
        );
        assert!(e.contains("edits[0].slides[0].blocks[0]"), "{e}");
        let e = err(json!([]));
        assert!(e.contains("edits must hold"), "{e}");
        let docx = std::fs::read(corpus("mammoth-tables.docx")).unwrap();
        let e = format!(
            "{:?}",
            run(&docx, json!([{"op": "delete_slide", "slide": 1}])).err().unwrap()
        );
        assert!(e.contains("is a Word document"), "{e}");
    }

    /// The package `bytes` with the entries of `parts` replaced (or added).
    fn with_parts(bytes: &[u8], parts: &[(&str, &str)]) -> Vec<u8> {
        use std::io::Write;
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        for i in 0..z.len() {
            let e = z.by_index_raw(i).unwrap();
            let name = e.name().unwrap().to_string();
            if parts.iter().any(|(n, _)| *n == name) {
                continue;
            }
            out.raw_copy_file(e).unwrap();
        }
        for (name, text) in parts {
            out.start_file(*name, opts).unwrap();
            out.write_all(text.as_bytes()).unwrap();
        }
        out.finish().unwrap().into_inner()
    }

    #[test]
    fn a_linked_slide_a_damaged_list_and_a_broken_slide_are_refused_by_name() {
        let before = std::fs::read(corpus("python-pptx-txt-text.pptx")).unwrap();
        let link = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\
            <Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
            <Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/slideLayout\" Target=\"../slideLayouts/slideLayout1.xml\"/>\
            <Relationship Id=\"rId2\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/slide\" Target=\"slide1.xml\"/></Relationships>";
        let linked = with_parts(&before, &[("ppt/slides/_rels/slide2.xml.rels", link)]);
        let e = message(run(&linked, json!([{"op": "delete_slide", "slide": 1}])).err().unwrap());
        assert!(e.contains("slide 2 links to it"), "{e}");
        // Deleting the slide that links is fine.
        run(&linked, json!([{"op": "delete_slide", "slide": 2}])).unwrap();

        let pres = part(&before, "ppt/presentation.xml").replace("r:id=\"rId3\"", "r:id=\"rId99\"");
        let listed = with_parts(&before, &[("ppt/presentation.xml", &pres)]);
        let e = message(run(&listed, json!([{"op": "delete_slide", "slide": 1}])).err().unwrap());
        assert!(e.contains("slide 2 is listed but its part is not (rId99)"), "{e}");

        let pres = part(&before, "ppt/presentation.xml").replace("r:id=\"rId3\"", "r:id=\"rId2\"");
        let twice = with_parts(&before, &[("ppt/presentation.xml", &pres)]);
        let e = message(run(&twice, json!([{"op": "delete_slide", "slide": 1}])).err().unwrap());
        assert!(e.contains("slides 1 and 2 are one part (ppt/slides/slide1.xml)"), "{e}");

        let broken = with_parts(&before, &[("ppt/slides/slide2.xml", "<p:sld><a:p><a:t>Text</a:p>")]);
        let e = message(
            run(&broken, json!([{"op": "replace", "find": "Text", "replace": "x"}]))
                .err()
                .unwrap(),
        );
        assert!(e.contains("ppt/slides/slide2.xml"), "{e}");
    }

    #[test]
    fn sections_lose_a_deleted_slide_and_the_last_one_gains_the_new_ones() {
        let before = std::fs::read(corpus("python-pptx-test.pptx")).unwrap();
        let sections = "<p:extLst><p:ext uri=\"{521415D9-36F7-43E2-AB2F-B90AF26B5E84}\">\
            <p14:sectionLst xmlns:p14=\"http://schemas.microsoft.com/office/powerpoint/2010/main\">\
            <p14:section name=\"Intro\" id=\"{11111111-1111-1111-1111-111111111111}\"><p14:sldIdLst><p14:sldId id=\"256\"/></p14:sldIdLst></p14:section>\
            <p14:section name=\"More\" id=\"{22222222-2222-2222-2222-222222222222}\"><p14:sldIdLst/></p14:section>\
            </p14:sectionLst></p:ext></p:extLst></p:presentation>";
        let pres = part(&before, "ppt/presentation.xml").replace("</p:presentation>", sections);
        let deck = with_parts(&before, &[("ppt/presentation.xml", &pres)]);
        let e = run(
            &deck,
            json!([
                {"op": "append_slides", "slides": [{"title": "New"}]}, {"op": "delete_slide", "slide": 1}
            ]),
        )
        .unwrap();
        let pres = part(&e.bytes, "ppt/presentation.xml");
        assert!(
            pres.contains("<p14:sldIdLst></p14:sldIdLst></p14:section>")
                && pres.contains("name=\"More\" id=\"{22222222-2222-2222-2222-222222222222}\"><p14:sldIdLst><p14:sldId id=\"257\"/></p14:sldIdLst>"),
            "{pres}"
        );
        assert!(pres.contains("<p:sldIdLst><p:sldId id=\"257\""), "{pres}");
    }

    #[test]
    fn relative_targets_climb_out_of_the_folder() {
        assert_eq!(
            relative("ppt/slides", "ppt/slideLayouts/slideLayout2.xml"),
            "../slideLayouts/slideLayout2.xml"
        );
        assert_eq!(relative("ppt", "ppt/slides/slide3.xml"), "slides/slide3.xml");
    }
}
