//! `text`: a Word document as Markdown-like text a model can quote and
//! summarise, read in parts by character offset like `pdf text` reads
//! pages. Structure is kept: headings as `#` (by the paragraph's outline
//! level or its Heading N / Title style), list items as `-` or `1.` indented
//! by level, tables as `| a | b |` rows, text boxes after their paragraph,
//! pictures and charts as `[image: alt]` and `[chart]`, footnotes and
//! endnotes as `[^1]` with their text at the end. Review marks use
//! CriticMarkup: `{++inserted++}`, `{--deleted--}`, `{==commented==}` and
//! `{>>author: comment<<}`.
//!
//! The document part is pull-parsed once, start to end (the package is
//! bounded before: see `deskhand_ooxml::read`); only the characters of the
//! part asked for are kept, the rest counted, so the result says the whole
//! text's length and where each heading starts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use deskhand_guest::{Output, ToolError, output, path_error};
use deskhand_ooxml::read::{self, Kind, Node, Ns, Opened, Tag, Window, Xml};
use serde::Deserialize;
use serde_json::{Value, json};

/// `text`'s cap on returned characters when the call names none, and the highest it may name (as `pdf text`).
pub const DEFAULT_MAX_CHARS: usize = 100_000;
pub const MAX_MAX_CHARS: usize = 2_000_000;
/// The most headings the outline lists.
const MAX_OUTLINE: usize = 1_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextArgs {
    path: PathBuf,
    #[serde(default)]
    offset: usize,
    max_chars: Option<usize>,
}

pub fn schema() -> Value {
    json!({"type": "object", "required": ["path"], "additionalProperties": false, "properties": {
        "path": {"type": "string", "description": "a .docx (or .docm, .dotx) file"},
        "offset": {"type": "integer", "minimum": 0, "default": 0,
                   "description": "the character to start at: 0, or the next_offset (or an outline heading's offset) a previous call gave"},
        "max_chars": {"type": "integer", "minimum": 1, "maximum": MAX_MAX_CHARS, "default": DEFAULT_MAX_CHARS}}})
}

pub const SUMMARY: &str = "The document's text as Markdown: headings (#), paragraphs, lists (- and 1.), tables as \
     | rows |, text boxes, [image: alt] and [chart], footnotes [^1] with their text at the end; tracked changes \
     and comments in CriticMarkup ({++inserted++}, {--deleted--}, {==commented text==}{>>author: comment<<}). \
     Long documents are cut at max_chars at a line's start: the result gives next_offset to read on and an \
     outline of the headings with their offsets.";

/// What one call read: the kept text and what the whole document holds.
#[derive(Debug, Default)]
pub struct Rendered {
    pub text: String,
    pub chars: usize,
    pub total_chars: usize,
    pub next_offset: Option<usize>,
    pub outline: Vec<Value>,
    pub counts: Counts,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Counts {
    pub paragraphs: usize,
    pub tables: usize,
    pub images: usize,
    pub comments: usize,
    pub insertions: usize,
    pub deletions: usize,
    pub notes: usize,
}

pub fn text(args: TextArgs) -> Result<Output, ToolError> {
    let max_chars = args.max_chars.unwrap_or(DEFAULT_MAX_CHARS);
    if !(1..=MAX_MAX_CHARS).contains(&max_chars) {
        return Err(ToolError::InvalidArgs(format!(
            "max_chars must be between 1 and {MAX_MAX_CHARS}"
        )));
    }
    let path = args.path.as_path();
    let bytes = read_file(path)?;
    let r = render(path, &bytes, args.offset, max_chars)?;
    if args.offset > r.total_chars {
        return Err(ToolError::InvalidArgs(format!(
            "offset {} is past the end of {} ({} characters)",
            args.offset,
            path.display(),
            r.total_chars
        )));
    }
    let mut notes = Vec::new();
    if let Some(next) = r.next_offset {
        notes.push(format!(
            "the text was cut at {} characters; {} of {} are left: pass \"offset\": {next} to read on, or an \
             outline heading's offset to jump there, or raise \"max_chars\" (up to {MAX_MAX_CHARS})",
            r.chars,
            r.total_chars - next,
            r.total_chars
        ));
    }
    if r.total_chars == 0 {
        notes.push("the document has no text (it may hold only pictures or scanned pages)".to_owned());
    }
    let mut j = json!({"path": path.display().to_string(), "format": "docx", "offset": args.offset,
        "chars": r.chars, "total_chars": r.total_chars, "text": r.text, "truncated": r.next_offset.is_some(),
        "counts": r.counts});
    if let Some(next) = r.next_offset {
        j["next_offset"] = json!(next);
    }
    if (r.next_offset.is_some() || args.offset > 0) && !r.outline.is_empty() {
        j["outline"] = json!(r.outline);
    }
    if !notes.is_empty() {
        j["notes"] = json!(notes);
    }
    let summary = format!(
        "read {} of {} characters of {}{}",
        r.chars,
        r.total_chars,
        path.display(),
        if r.next_offset.is_some() {
            " (cut; see notes)"
        } else {
            ""
        }
    );
    Ok(output(&j, summary))
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, ToolError> {
    deskhand_guest::read_capped(path, read::MAX_FILE_BYTES, |size| {
        ToolError::TooLarge(path_error(
            path,
            format!(
                "is {size} bytes; the docx tool reads files up to {} MiB",
                read::MAX_FILE_BYTES >> 20
            ),
        ))
    })
}

fn damaged(path: &Path, part: &str, e: String) -> ToolError {
    read::bad_part(path, part, &e)
}

/// Renders the document in `bytes`, keeping `max_chars` characters from `offset`.
pub fn render(path: &Path, bytes: &[u8], offset: usize, max_chars: usize) -> Result<Rendered, ToolError> {
    let mut pkg = read::open(path, bytes, Kind::Docx)?;
    let main = pkg.main.clone();
    let rels = pkg.rels(&main)?;
    let target = |pkg: &mut Opened, kind: &str| -> Result<Option<(String, String)>, ToolError> {
        match rels.iter().find(|r| r.kind == kind && !r.external) {
            Some(r) => Ok(pkg.part(&r.target)?.map(|x| (r.target.clone(), x))),
            None => Ok(None),
        }
    };
    let styles = match target(&mut pkg, "styles")? {
        Some((name, xml)) => parse_styles(&xml).map_err(|e| damaged(path, &name, e))?,
        None => HashMap::new(),
    };
    let numbering = match target(&mut pkg, "numbering")? {
        Some((name, xml)) => parse_numbering(&xml).map_err(|e| damaged(path, &name, e))?,
        None => Numbering::default(),
    };
    let comments = match target(&mut pkg, "comments")? {
        Some((name, xml)) => parse_notes(&xml, "comment").map_err(|e| damaged(path, &name, e))?,
        None => HashMap::new(),
    };
    let footnotes = match target(&mut pkg, "footnotes")? {
        Some((name, xml)) => parse_notes(&xml, "footnote").map_err(|e| damaged(path, &name, e))?,
        None => HashMap::new(),
    };
    let endnotes = match target(&mut pkg, "endnotes")? {
        Some((name, xml)) => parse_notes(&xml, "endnote").map_err(|e| damaged(path, &name, e))?,
        None => HashMap::new(),
    };
    let links: HashMap<String, String> = rels
        .iter()
        .filter(|r| r.kind == "hyperlink" && r.external)
        .map(|r| (r.id.clone(), r.target.clone()))
        .collect();
    let body = pkg
        .part(&main)?
        .ok_or_else(|| read::bad(path, format!("is damaged: its main part {main} is missing")))?;
    let mut walk = Walk {
        styles,
        numbering,
        comments,
        links,
        out: Window::new(offset, max_chars),
        ..Walk::default()
    };
    walk.body(&body).map_err(|e| damaged(path, &main, e))?;
    // Notes, in the order the text refers to them.
    let refs = std::mem::take(&mut walk.note_refs);
    if !refs.is_empty() {
        walk.block(Block::Para, "---\n");
    }
    for (end, id) in refs {
        let (mark, notes) = if end { ("e", &endnotes) } else { ("", &footnotes) };
        let body = notes.get(&id).map(|n| n.text.as_str()).unwrap_or("(missing)");
        walk.block(Block::Para, &format!("[^{mark}{id}]: {body}\n"));
        walk.counts.notes += 1;
    }
    Ok(Rendered {
        chars: walk.out.kept_chars(),
        total_chars: walk.out.pos,
        next_offset: walk.out.next,
        text: walk.out.kept,
        outline: walk.outline,
        counts: walk.counts,
    })
}

/// A paragraph style: what makes its paragraphs headings or list items.
#[derive(Debug, Default)]
struct Style {
    name: String,
    based_on: Option<String>,
    outline: Option<u8>,
    num_id: Option<String>,
    ilvl: Option<u8>,
}

fn parse_styles(xml: &str) -> Result<HashMap<String, Style>, String> {
    let mut out = HashMap::new();
    let mut x = Xml::new(xml);
    let mut cur: Option<(String, Style)> = None;
    while let Some(node) = x.next()? {
        match node {
            Node::Open(t) if t.ns == Ns::W => match t.local() {
                "style" => {
                    cur = (t.attr("type").as_deref() == Some("paragraph"))
                        .then(|| (t.attr("styleId").unwrap_or_default(), Style::default()));
                }
                "name" => set(&mut cur, |s| s.name = t.attr("val").unwrap_or_default()),
                "basedOn" => set(&mut cur, |s| s.based_on = t.attr("val")),
                "outlineLvl" => set(&mut cur, |s| s.outline = t.attr("val").and_then(|v| v.parse().ok())),
                "numId" => set(&mut cur, |s| s.num_id = t.attr("val")),
                "ilvl" => set(&mut cur, |s| s.ilvl = t.attr("val").and_then(|v| v.parse().ok())),
                _ => {}
            },
            Node::Close(Ns::W, name) if name == "style" => {
                if let Some((id, style)) = cur.take() {
                    out.insert(id, style);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn set(cur: &mut Option<(String, Style)>, f: impl FnOnce(&mut Style)) {
    if let Some((_, s)) = cur {
        f(s);
    }
}

/// A style's chain, itself first, at most 16 deep (a loop of `basedOn` ends there).
fn chain<'s>(styles: &'s HashMap<String, Style>, id: &str) -> impl Iterator<Item = &'s Style> {
    let mut next = styles.get(id);
    std::iter::from_fn(move || {
        let s = next?;
        next = s.based_on.as_deref().and_then(|b| styles.get(b));
        Some(s)
    })
    .take(16)
}

/// The Markdown heading level of a paragraph style: Title is 1, Heading N is N.
fn style_heading(styles: &HashMap<String, Style>, id: &str) -> Option<u8> {
    for s in chain(styles, id) {
        if let Some(l) = s.outline {
            return (l < 9).then_some(l + 1);
        }
        let name = s.name.to_ascii_lowercase();
        if name == "title" {
            return Some(1);
        }
        if let Some(n) = name.strip_prefix("heading ").and_then(|n| n.trim().parse::<u8>().ok()) {
            return Some(n.clamp(1, 9));
        }
    }
    None
}

#[derive(Debug, Default)]
struct Numbering {
    /// numId -> abstractNumId.
    nums: HashMap<String, String>,
    /// (abstractNumId, level) -> (format, start).
    levels: HashMap<(String, u8), (String, u32)>,
    /// (numId, level) -> start override.
    starts: HashMap<(String, u8), u32>,
}

fn parse_numbering(xml: &str) -> Result<Numbering, String> {
    let mut n = Numbering::default();
    let mut x = Xml::new(xml);
    let (mut abs, mut num, mut lvl): (Option<String>, Option<String>, Option<u8>) = (None, None, None);
    while let Some(node) = x.next()? {
        match node {
            Node::Open(t) if t.ns == Ns::W => {
                let val = || t.attr("val");
                match t.local() {
                    "abstractNum" => abs = t.attr("abstractNumId"),
                    "num" => num = t.attr("numId"),
                    "abstractNumId" => {
                        if let (Some(id), Some(a)) = (&num, val()) {
                            n.nums.insert(id.clone(), a);
                        }
                    }
                    "lvl" | "lvlOverride" => lvl = t.attr("ilvl").and_then(|v| v.parse().ok()),
                    "start" => {
                        if let (Some(a), Some(l), None) = (&abs, lvl, &num) {
                            let start = val().and_then(|v| v.parse().ok()).unwrap_or(1);
                            n.levels.entry((a.clone(), l)).or_insert((String::new(), 1)).1 = start;
                        }
                    }
                    "numFmt" => {
                        if let (Some(a), Some(l), None) = (&abs, lvl, &num) {
                            n.levels.entry((a.clone(), l)).or_insert((String::new(), 1)).0 = val().unwrap_or_default();
                        }
                    }
                    "startOverride" => {
                        if let (Some(id), Some(l)) = (&num, lvl) {
                            n.starts
                                .insert((id.clone(), l), val().and_then(|v| v.parse().ok()).unwrap_or(1));
                        }
                    }
                    _ => {}
                }
            }
            Node::Close(Ns::W, name) => match name.as_str() {
                "abstractNum" => abs = None,
                "num" => num = None,
                _ => {}
            },
            _ => {}
        }
    }
    Ok(n)
}

/// A comment, footnote or endnote: its author (comments) and its text, paragraphs joined by spaces.
#[derive(Debug, Default)]
struct Note {
    author: String,
    text: String,
}

/// The `element`s (`comment`, `footnote`, `endnote`) of a part by id;
/// separator notes are left out.
fn parse_notes(xml: &str, element: &str) -> Result<HashMap<String, Note>, String> {
    let mut out = HashMap::new();
    let mut x = Xml::new(xml);
    let mut cur: Option<(String, Note)> = None;
    let mut in_t = false;
    while let Some(node) = x.next()? {
        match node {
            Node::Open(t) if t.ns == Ns::W => match t.local() {
                l if l == element => {
                    let kind = t.attr("type").unwrap_or_default();
                    cur = (kind.is_empty() || kind == "normal").then(|| {
                        let author = t.attr("author").unwrap_or_default();
                        (
                            t.attr("id").unwrap_or_default(),
                            Note {
                                author,
                                text: String::new(),
                            },
                        )
                    });
                }
                "t" | "delText" => in_t = true,
                "tab" | "br" => {
                    if let Some((_, n)) = &mut cur {
                        n.text.push(' ');
                    }
                }
                _ => {}
            },
            Node::Open(t) if t.ns == Ns::M && t.local() == "t" => in_t = true,
            Node::Text(s) if in_t => {
                if let Some((_, n)) = &mut cur {
                    n.text.push_str(&s);
                }
            }
            Node::Close(ns, name) => match name.as_str() {
                "t" | "delText" if ns == Ns::W || ns == Ns::M => in_t = false,
                "p" if ns == Ns::W => {
                    if let Some((_, n)) = &mut cur
                        && !n.text.ends_with(' ')
                        && !n.text.is_empty()
                    {
                        n.text.push(' ');
                    }
                }
                l if l == element && ns == Ns::W => {
                    if let Some((id, mut n)) = cur.take() {
                        n.text = n.text.split_whitespace().collect::<Vec<_>>().join(" ");
                        out.insert(id, n);
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
    Ok(out)
}

/// What kind of block was written last, for the blank lines between blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Para,
    List,
    Table,
}

/// A review mark open in a paragraph's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Ins,
    Del,
}

#[derive(Debug, Default)]
struct Para {
    style: Option<String>,
    num_id: Option<String>,
    ilvl: Option<u8>,
    outline: Option<u8>,
    text: String,
    mark: Option<Mark>,
    /// Lines of text boxes and tables anchored in this paragraph, written after it.
    after: Vec<(Block, String)>,
    serial: usize,
}

#[derive(Debug, Default)]
struct Table {
    rows: Vec<Vec<String>>,
    row: Vec<String>,
    cell: Option<String>,
    span: usize,
}

enum Frame {
    Para(Para),
    Table(Table),
}

/// A picture or chart being read.
#[derive(Default)]
struct Drawing {
    alt: String,
    image: bool,
    chart: bool,
}

#[derive(Default)]
struct Walk {
    styles: HashMap<String, Style>,
    numbering: Numbering,
    comments: HashMap<String, Note>,
    links: HashMap<String, String>,
    out: Window,
    last: Option<Block>,
    outline: Vec<Value>,
    counts: Counts,
    stack: Vec<Frame>,
    /// Depth inside an element whose content is not text (field codes, the old properties of a tracked change).
    skip: usize,
    in_t: bool,
    in_ppr: usize,
    in_run: usize,
    ins: usize,
    del: usize,
    serial: usize,
    /// Open hyperlinks: the paragraph, where its text began, the target.
    links_open: Vec<(usize, usize, Option<String>)>,
    /// Open comment ranges: id -> (paragraph, text length after the opening mark).
    ranges: HashMap<String, (usize, usize)>,
    drawing: Option<Drawing>,
    counters: HashMap<String, [u32; 9]>,
    /// Footnote (false) and endnote (true) references, in order.
    note_refs: Vec<(bool, String)>,
}

impl Walk {
    fn para(&mut self) -> Option<&mut Para> {
        self.stack.iter_mut().rev().find_map(|f| match f {
            Frame::Para(p) => Some(p),
            Frame::Table(_) => None,
        })
    }

    /// Appends text to the innermost paragraph, opening or closing review marks as needed.
    fn push(&mut self, s: &str) {
        let want = if self.del > 0 {
            Some(Mark::Del)
        } else if self.ins > 0 {
            Some(Mark::Ins)
        } else {
            None
        };
        let mut opened = None;
        if let Some(p) = self.para() {
            if p.mark != want {
                close_mark(p);
                match want {
                    Some(Mark::Ins) => p.text.push_str("{++"),
                    Some(Mark::Del) => p.text.push_str("{--"),
                    None => {}
                }
                p.mark = want;
                opened = want;
            }
            p.text.push_str(s);
        }
        match opened {
            Some(Mark::Ins) => self.counts.insertions += 1,
            Some(Mark::Del) => self.counts.deletions += 1,
            None => {}
        }
    }

    fn body(&mut self, xml: &str) -> Result<(), String> {
        let mut x = Xml::new(xml);
        while let Some(node) = x.next()? {
            match node {
                Node::Open(t) => {
                    if self.skip > 0 || skipped(&t) {
                        self.skip += 1;
                        continue;
                    }
                    self.open(&t);
                }
                Node::Close(ns, name) => {
                    if self.skip > 0 {
                        self.skip -= 1;
                        continue;
                    }
                    self.close(ns, &name);
                }
                Node::Text(s) => {
                    if self.skip == 0 && self.in_t {
                        self.push(&s);
                    }
                }
            }
        }
        Ok(())
    }

    fn open(&mut self, t: &Tag) {
        match (t.ns, t.local()) {
            (Ns::W, "p") => {
                self.serial += 1;
                self.stack.push(Frame::Para(Para {
                    serial: self.serial,
                    ..Para::default()
                }));
            }
            (Ns::W, "pPr") => self.in_ppr += 1,
            (Ns::W, "pStyle") if self.in_ppr > 0 => {
                let v = t.attr("val");
                if let Some(p) = self.para() {
                    p.style = v;
                }
            }
            (Ns::W, "numId") if self.in_ppr > 0 => {
                let v = t.attr("val");
                if let Some(p) = self.para() {
                    p.num_id = v;
                }
            }
            (Ns::W, "ilvl") if self.in_ppr > 0 => {
                let v = t.attr("val").and_then(|v| v.parse().ok());
                if let Some(p) = self.para() {
                    p.ilvl = v;
                }
            }
            (Ns::W, "outlineLvl") if self.in_ppr > 0 => {
                let v = t.attr("val").and_then(|v| v.parse().ok());
                if let Some(p) = self.para() {
                    p.outline = v;
                }
            }
            (Ns::W, "r") => self.in_run += 1,
            (Ns::W, "t" | "delText") | (Ns::M, "t") => self.in_t = true,
            (Ns::W, "tab") if self.in_run > 0 => self.push("\t"),
            (Ns::W, "br" | "cr") if self.in_run > 0 => self.push("\n"),
            (Ns::W, "noBreakHyphen") if self.in_run > 0 => self.push("-"),
            (Ns::W, "ins" | "moveTo") => self.ins += 1,
            (Ns::W, "del" | "moveFrom") => self.del += 1,
            (Ns::W, "hyperlink") => {
                let target = t.attr("id").and_then(|id| self.links.get(&id).cloned());
                let serial = self.para().map_or(0, |p| p.serial);
                let len = self.para().map_or(0, |p| p.text.len());
                self.links_open.push((serial, len, target));
            }
            (Ns::W, "commentRangeStart") => {
                let id = t.attr("id").unwrap_or_default();
                self.push("");
                if let Some(p) = self.para() {
                    p.text.push_str("{==");
                    let at = (p.serial, p.text.len());
                    self.ranges.insert(id, at);
                }
            }
            (Ns::W, "commentRangeEnd") => {
                let id = t.attr("id").unwrap_or_default();
                let open = self.ranges.remove(&id);
                if let Some(p) = self.para() {
                    match open {
                        Some((serial, len)) if serial == p.serial && len == p.text.len() => {
                            p.text.truncate(len - 3);
                        }
                        Some(_) => p.text.push_str("==}"),
                        None => {}
                    }
                }
            }
            (Ns::W, "commentReference") => {
                let id = t.attr("id").unwrap_or_default();
                if let Some(c) = self.comments.get(&id) {
                    let who = if c.author.is_empty() {
                        String::new()
                    } else {
                        format!("{}: ", c.author)
                    };
                    let text = format!("{{>>{who}{}<<}}", c.text);
                    self.counts.comments += 1;
                    if let Some(p) = self.para() {
                        p.text.push_str(&text);
                    }
                }
            }
            (Ns::W, "footnoteReference") => self.note_ref(false, t),
            (Ns::W, "endnoteReference") => self.note_ref(true, t),
            (Ns::W, "drawing" | "pict" | "object") => self.drawing = Some(Drawing::default()),
            (Ns::Wp, "docPr") | (Ns::Other, "cNvPr") => {
                if let Some(d) = &mut self.drawing
                    && d.alt.is_empty()
                {
                    d.alt = t
                        .attr("descr")
                        .filter(|s| !s.is_empty())
                        .or_else(|| t.attr("title"))
                        .unwrap_or_default();
                }
            }
            (Ns::Other, "pic" | "imagedata") => {
                if let Some(d) = &mut self.drawing {
                    d.image = true;
                }
            }
            (Ns::Other, "chart") => {
                if let Some(d) = &mut self.drawing {
                    d.chart = true;
                }
            }
            (Ns::W, "tbl") => self.stack.push(Frame::Table(Table::default())),
            (Ns::W, "tc") => {
                if let Some(Frame::Table(tb)) = self.stack.last_mut() {
                    tb.cell = Some(String::new());
                    tb.span = 1;
                }
            }
            (Ns::W, "gridSpan") => {
                if let Some(Frame::Table(tb)) = self.stack.last_mut() {
                    tb.span = t.attr("val").and_then(|v| v.parse().ok()).unwrap_or(1).clamp(1, 64);
                }
            }
            _ => {}
        }
    }

    fn note_ref(&mut self, end: bool, t: &Tag) {
        let id = t.attr("id").unwrap_or_default();
        self.push(&format!("[^{}{id}]", if end { "e" } else { "" }));
        self.note_refs.push((end, id));
    }

    fn close(&mut self, ns: Ns, name: &str) {
        match (ns, name) {
            (Ns::W, "p") => {
                if let Some(Frame::Para(mut p)) = self.stack.pop() {
                    close_mark(&mut p);
                    self.finish_para(p);
                }
            }
            (Ns::W, "pPr") => self.in_ppr = self.in_ppr.saturating_sub(1),
            (Ns::W, "r") => self.in_run = self.in_run.saturating_sub(1),
            (Ns::W, "t" | "delText") | (Ns::M, "t") => self.in_t = false,
            (Ns::W, "ins" | "moveTo") => self.ins = self.ins.saturating_sub(1),
            (Ns::W, "del" | "moveFrom") => self.del = self.del.saturating_sub(1),
            (Ns::W, "hyperlink") => {
                let open = self.links_open.pop();
                if let (Some((serial, start, Some(url))), Some(p)) = (open, self.para())
                    && p.serial == serial
                    && start < p.text.len()
                    && p.text.is_char_boundary(start)
                {
                    let label = p.text.split_off(start);
                    if label.trim().is_empty() || label.contains('{') || label.trim() == url {
                        p.text.push_str(&label);
                    } else {
                        p.text.push_str(&format!("[{label}]({url})"));
                    }
                }
            }
            (Ns::W, "drawing" | "pict" | "object") => {
                if let Some(d) = self.drawing.take() {
                    let shown = if d.chart {
                        "[chart]".to_owned()
                    } else if d.image && d.alt.trim().is_empty() {
                        "[image]".to_owned()
                    } else if d.image {
                        format!("[image: {}]", one_line(&d.alt))
                    } else {
                        String::new()
                    };
                    if !shown.is_empty() {
                        self.counts.images += 1;
                        self.push(&shown);
                    }
                }
            }
            (Ns::W, "tc") => {
                if let Some(Frame::Table(tb)) = self.stack.last_mut()
                    && let Some(cell) = tb.cell.take()
                {
                    tb.row.push(cell);
                    for _ in 1..tb.span {
                        tb.row.push(String::new());
                    }
                }
            }
            (Ns::W, "tr") => {
                if let Some(Frame::Table(tb)) = self.stack.last_mut() {
                    let row = std::mem::take(&mut tb.row);
                    tb.rows.push(row);
                }
            }
            (Ns::W, "tbl") => {
                if let Some(Frame::Table(tb)) = self.stack.pop() {
                    self.finish_table(tb);
                }
            }
            _ => {}
        }
    }

    /// A finished paragraph: into the cell or paragraph holding it, or written out.
    fn finish_para(&mut self, p: Para) {
        let rendered = self.render_para(&p);
        match self.stack.last_mut() {
            Some(Frame::Table(tb)) => {
                let cell = tb.cell.get_or_insert_with(String::new);
                for (_, line) in rendered.into_iter().chain(p.after) {
                    let line = line.trim();
                    if !line.is_empty() {
                        if !cell.is_empty() {
                            cell.push_str(" / ");
                        }
                        cell.push_str(line);
                    }
                }
            }
            Some(Frame::Para(outer)) => {
                outer.after.extend(rendered);
                outer.after.extend(p.after);
            }
            None => {
                if let Some((kind, line)) = rendered {
                    self.counts.paragraphs += 1;
                    if let Some(level) = heading_level(&line)
                        && self.outline.len() < MAX_OUTLINE
                    {
                        let at = self.out.pos + usize::from(self.last.is_some());
                        let title = line.trim_start_matches('#').trim().to_owned();
                        self.outline.push(json!({"level": level, "text": title, "offset": at}));
                    }
                    self.block(kind, &format!("{line}\n"));
                }
                for (kind, line) in p.after {
                    self.block(kind, &format!("{line}\n"));
                }
            }
        }
    }

    /// Writes one block's line(s), with a blank line before it unless it continues a list or table.
    fn block(&mut self, kind: Block, text: &str) {
        if let Some(last) = self.last
            && !(last == kind && matches!(kind, Block::List | Block::Table))
        {
            self.out.line("\n");
        }
        for line in text.split_inclusive('\n') {
            self.out.line(line);
        }
        self.last = Some(kind);
    }

    fn finish_table(&mut self, tb: Table) {
        let rows: Vec<Vec<String>> = tb
            .rows
            .into_iter()
            .filter(|r| !r.is_empty())
            .map(|r| r.into_iter().map(|c| cell_text(&c)).collect())
            .collect();
        if rows.iter().flatten().all(String::is_empty) {
            return;
        }
        match self.stack.last_mut() {
            Some(Frame::Table(outer)) => {
                // A table in a cell: its rows inline, `;` between rows.
                let inline = rows.iter().map(|r| r.join(", ")).collect::<Vec<_>>().join("; ");
                let cell = outer.cell.get_or_insert_with(String::new);
                if !cell.is_empty() {
                    cell.push_str(" / ");
                }
                cell.push_str(&inline);
            }
            Some(Frame::Para(p)) => p
                .after
                .extend(table_lines(&rows).into_iter().map(|l| (Block::Table, l))),
            None => {
                self.counts.tables += 1;
                let mut text = String::new();
                for line in table_lines(&rows) {
                    text.push_str(&line);
                    text.push('\n');
                }
                self.block(Block::Table, &text);
                self.last = Some(Block::Para);
            }
        }
    }

    /// A paragraph as one Markdown block (heading, list item or plain), `None` when it holds no text.
    fn render_para(&mut self, p: &Para) -> Option<(Block, String)> {
        let text = p.text.trim();
        if text.is_empty() {
            return None;
        }
        let styles = &self.styles;
        let style = p.style.as_deref().unwrap_or("Normal");
        let heading = match p.outline {
            Some(l) if l < 9 => Some(l + 1),
            _ => style_heading(styles, style),
        };
        if let Some(level) = heading {
            let hashes = "#".repeat(usize::from(level.min(6)));
            return Some((Block::Para, format!("{hashes} {}", one_line(text))));
        }
        let num_id = p
            .num_id
            .clone()
            .or_else(|| chain(styles, style).find_map(|s| s.num_id.clone()))
            .filter(|n| n != "0");
        let Some(num_id) = num_id else {
            return Some((Block::Para, text.to_owned()));
        };
        let ilvl = p
            .ilvl
            .or_else(|| chain(styles, style).find_map(|s| s.ilvl))
            .unwrap_or(0)
            .min(8);
        let marker = self.marker(&num_id, ilvl);
        if marker.is_empty() {
            return Some((Block::Para, text.to_owned()));
        }
        let indent = "  ".repeat(usize::from(ilvl));
        let body = text.replace('\n', &format!("\n{indent}  "));
        Some((Block::List, format!("{indent}{marker} {body}")))
    }

    /// The list marker of the next item of list `num_id` at `ilvl`: `-`, `3.`, `c.`, `iv.`, or nothing for no numbering.
    fn marker(&mut self, num_id: &str, ilvl: u8) -> String {
        let n = &self.numbering;
        let abs = n.nums.get(num_id).cloned().unwrap_or_else(|| format!("num{num_id}"));
        let (fmt, start) = n
            .levels
            .get(&(abs.clone(), ilvl))
            .cloned()
            .unwrap_or(("bullet".into(), 1));
        let start = n.starts.get(&(num_id.to_owned(), ilvl)).copied().unwrap_or(start);
        if fmt == "bullet" {
            return "-".into();
        }
        if fmt == "none" {
            return String::new();
        }
        let counters = self.counters.entry(abs).or_insert([0; 9]);
        let l = usize::from(ilvl);
        counters[l] = if counters[l] == 0 {
            start.max(1)
        } else {
            counters[l] + 1
        };
        for c in counters.iter_mut().skip(l + 1) {
            *c = 0;
        }
        let v = counters[l];
        match fmt.as_str() {
            "lowerLetter" => format!("{}.", letters(v)),
            "upperLetter" => format!("{}.", letters(v).to_uppercase()),
            "lowerRoman" => format!("{}.", roman(v)),
            "upperRoman" => format!("{}.", roman(v).to_uppercase()),
            _ => format!("{v}."),
        }
    }
}

/// Elements whose content is not the document's text: field codes, the
/// old properties a tracked formatting change keeps, and the fallback copy
/// of markup-compatibility content (its choice is read instead).
fn skipped(t: &Tag) -> bool {
    match t.ns {
        Ns::W => {
            let l = t.local();
            matches!(
                l,
                "instrText" | "delInstrText" | "rPr" | "sectPr" | "tblPr" | "trPr" | "numberingChange"
            ) || l.ends_with("PrChange")
        }
        Ns::Mc => t.local() == "Fallback",
        _ => false,
    }
}

fn close_mark(p: &mut Para) {
    match p.mark.take() {
        Some(Mark::Ins) => p.text.push_str("++}"),
        Some(Mark::Del) => p.text.push_str("--}"),
        None => {}
    }
}

fn heading_level(line: &str) -> Option<usize> {
    let n = line.chars().take_while(|c| *c == '#').count();
    (n > 0 && line[n..].starts_with(' ')).then_some(n)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cell_text(s: &str) -> String {
    one_line(s).replace('|', "\\|")
}

fn table_lines(rows: &[Vec<String>]) -> Vec<String> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let line = |r: &[String]| {
        let mut cells: Vec<&str> = r.iter().map(String::as_str).collect();
        cells.resize(cols, "");
        format!("| {} |", cells.join(" | "))
    };
    let mut out = vec![line(&rows[0])];
    out.push(format!("|{}", " --- |".repeat(cols)));
    out.extend(rows[1..].iter().map(|r| line(r)));
    out
}

fn letters(mut n: u32) -> String {
    let mut s = Vec::new();
    while n > 0 {
        n -= 1;
        s.push(b'a' + (n % 26) as u8);
        n /= 26;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

fn roman(mut n: u32) -> String {
    const R: &[(u32, &str)] = &[
        (1000, "m"),
        (900, "cm"),
        (500, "d"),
        (400, "cd"),
        (100, "c"),
        (90, "xc"),
        (50, "l"),
        (40, "xl"),
        (10, "x"),
        (9, "ix"),
        (5, "v"),
        (4, "iv"),
        (1, "i"),
    ];
    let mut s = String::new();
    for (v, r) in R {
        while n >= *v {
            s.push_str(r);
            n -= v;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    fn corpus(name: &str) -> (PathBuf, Vec<u8>) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/corpus/docx-pptx")
            .join(name);
        let bytes = std::fs::read(&path).unwrap();
        (path, bytes)
    }

    fn whole(name: &str) -> Rendered {
        let (path, bytes) = corpus(name);
        render(&path, &bytes, 0, MAX_MAX_CHARS).unwrap()
    }

    /// A package with these parts, deflated.
    pub(crate) fn package(parts: &[(&str, &str)]) -> Vec<u8> {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, body) in parts {
            zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(body.as_bytes()).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    const RELS: &str = r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#;

    fn err(bytes: &[u8]) -> String {
        format!("{:?}", render(Path::new("in/x.docx"), bytes, 0, 1000).unwrap_err())
    }

    #[test]
    fn real_documents_keep_their_structure() {
        let r = whole("docx4j-sample-docx.docx");
        for expected in [
            "# Docx sample document\n",
            "\n# Tables\n\n| Cell text |  | Shaded grey |\n| --- | --- | --- |\n| Vertical merge |  | Shaded grey |\n",
            "- Level 1\n  - Level 2\n",
            "1. Level 1\n  a. Level 2\n    i. Level 3\n",
            "Here is some change tracking. {++An insertion++} Followed by{-- A deletion--}.",
            "[image: Escher: Liberation]",
            "This line contains a soft return\nand here it continues",
        ] {
            assert!(r.text.contains(expected), "{expected:?} in\n{}", r.text);
        }
        assert_eq!(
            (
                r.counts.tables,
                r.counts.images,
                r.counts.insertions,
                r.counts.deletions
            ),
            (1, 3, 1, 1)
        );
        assert_eq!(r.outline.len(), 7, "{:?}", r.outline);
        assert_eq!(
            r.outline[2],
            json!({"level": 1, "text": "Tables", "offset": r.text.find("# Tables").unwrap()})
        );

        let r = whole("mammoth-comments.docx");
        assert!(
            r.text.contains(
                "{==Ouch==}{>>Michael Williamson: A tachyon walks into a bar.<<}.{>>Michael Williamson: Fin.<<}"
            ),
            "{}",
            r.text
        );
        let r = whole("mammoth-footnotes.docx");
        assert!(
            r.text.starts_with("Ouch[^1].[^2]\n") && r.text.contains("[^1]: A tachyon walks into a bar.\n"),
            "{}",
            r.text
        );
        let r = whole("mammoth-endnotes.docx");
        assert!(r.text.contains("[^e3]: Fin."), "{}", r.text);
        let r = whole("mammoth-tables.docx");
        assert_eq!(
            r.text,
            "Above\n\n| Top left | Top right |\n| --- | --- |\n| Bottom left | Bottom right |\n\nBelow\n"
        );
        assert_eq!(whole("mammoth-simple-list.docx").text, "- Apple\n- Banana\n");
        assert_eq!(whole("mammoth-text-box.docx").text, "Datum plane\n");
        assert!(
            whole("python-docx-par-known-styles.docx")
                .text
                .contains("\n# Heading 1\n")
        );
    }

    #[test]
    fn parts_read_one_after_another_make_the_whole_text() {
        let (path, bytes) = corpus("docx4j-sample-docx.docx");
        let all = render(&path, &bytes, 0, MAX_MAX_CHARS).unwrap();
        let mut joined = String::new();
        let mut offset = 0;
        let mut calls = 0;
        loop {
            let part = render(&path, &bytes, offset, 300).unwrap();
            assert!(part.chars <= 300 && part.total_chars == all.total_chars);
            joined.push_str(&part.text);
            calls += 1;
            match part.next_offset {
                Some(next) => {
                    assert!(part.text.ends_with('\n'), "cut at a line's start: {:?}", part.text);
                    offset = next;
                }
                None => break,
            }
        }
        assert_eq!(joined, all.text);
        assert!(calls > 5, "{calls} parts");
    }

    #[test]
    fn files_that_are_not_word_documents_are_named() {
        let (path, strict) = corpus("mammoth-strict-format.docx");
        let e = format!("{:?}", render(&path, &strict, 0, 100).unwrap_err());
        assert!(e.contains("Strict Open XML") && e.contains("save it as"), "{e}");
        let (path, pptx) = corpus("python-pptx-test.pptx");
        let e = format!("{:?}", render(&path, &pptx, 0, 100).unwrap_err());
        assert!(
            e.contains("is a PowerPoint presentation") && e.contains("pptx tool"),
            "{e}"
        );
        assert!(err(b"").contains("is empty"));
        assert!(err(b"just some text").contains("not a zip package"));
        assert!(err(b"%PDF-1.7\n...").contains("is a PDF document"));
        let mut ole = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1".to_vec();
        ole.extend("EncryptedPackage".encode_utf16().flat_map(u16::to_le_bytes));
        assert!(err(&ole).contains("encrypted (password-protected)"));
        let mut doc = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1".to_vec();
        doc.extend("WordDocument".encode_utf16().flat_map(u16::to_le_bytes));
        assert!(err(&doc).contains("Word 97-2003 document (.doc)"));
        let (_, good) = corpus("mammoth-tables.docx");
        assert!(err(&good[..good.len() / 2]).contains("damaged or truncated"));
        let broken = package(&[
            ("_rels/.rels", RELS),
            ("word/document.xml", "<w:document xmlns:w=\"x\"><w:body><w:p></w:body>"),
        ]);
        let e = err(&broken);
        assert!(
            e.contains("is damaged: its part word/document.xml is not well-formed XML"),
            "{e}"
        );
        let missing = package(&[("_rels/.rels", RELS)]);
        assert!(err(&missing).contains("main part word/document.xml is missing"));
        let xlsx = package(&[("xl/workbook.xml", "<workbook/>"), ("[Content_Types].xml", "<Types/>")]);
        assert!(err(&xlsx).contains("is an Excel workbook"));
    }

    #[test]
    fn deep_nesting_and_loops_of_styles_end() {
        let styles = r#"<w:styles xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:style w:type="paragraph" w:styleId="A"><w:basedOn w:val="B"/></w:style><w:style w:type="paragraph" w:styleId="B"><w:basedOn w:val="A"/></w:style></w:styles>"#;
        let rels = r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>"#;
        let body = format!(
            r#"<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:pPr><w:pStyle w:val="A"/></w:pPr><w:r><w:t>looped &amp; fine</w:t></w:r></w:p>{}<w:p><w:r><w:t>x</w:t></w:r></w:p>{}</w:body></w:document>"#,
            "<w:tbl><w:tr><w:tc>".repeat(200),
            "</w:tc></w:tr></w:tbl>".repeat(200)
        );
        let bytes = package(&[
            ("_rels/.rels", RELS),
            ("word/_rels/document.xml.rels", rels),
            ("word/styles.xml", styles),
            ("word/document.xml", &body),
        ]);
        let r = render(Path::new("x.docx"), &bytes, 0, 1000).unwrap();
        assert!(r.text.starts_with("looped & fine\n\n| x |\n"), "{}", r.text);
    }
}
