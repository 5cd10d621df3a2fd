//! `text`: a presentation's text slide by slide, like `pdf text` reads
//! pages: each slide's title, its other text as Markdown (body placeholders
//! and bulleted paragraphs as `-` or `1.` items indented by level, tables
//! as `| a | b |` rows, `[image: alt]`, `[chart]`, comments as
//! `{>>author: text<<}`), and its speaker notes. Hidden slides say so.
//!
//! The package is bounded before anything is parsed (see
//! `deskhand_ooxml::read`); slides are read in order until `max_chars`, so
//! a long deck is not read past what is returned.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use deskhand_guest::{Output, ToolError, output, path_error};
use deskhand_ooxml::read::{self, Kind, Node, Ns, Opened, Rel, Xml, parse_ranges};
use serde::Deserialize;
use serde_json::{Value, json};

/// As `pdf text`: the default and the highest `max_chars`.
pub const DEFAULT_MAX_CHARS: usize = 100_000;
pub const MAX_MAX_CHARS: usize = 2_000_000;
/// The most slides a presentation may list.
const MAX_SLIDES: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextArgs {
    path: PathBuf,
    slides: Option<String>,
    max_chars: Option<usize>,
}

pub fn schema() -> Value {
    json!({"type": "object", "required": ["path"], "additionalProperties": false, "properties": {
        "path": {"type": "string", "description": "a .pptx (or .pptm, .potx) file"},
        "slides": {"type": "string", "description": "which slides, e.g. \"1-3\", \"2\", \"4-\", \"1,3,5-7\"; default all"},
        "max_chars": {"type": "integer", "minimum": 1, "maximum": MAX_MAX_CHARS, "default": DEFAULT_MAX_CHARS}}})
}

pub const SUMMARY: &str = "The text of each slide: its title, its other text as Markdown (bullets - and 1., \
     tables as | rows |, [image: alt], [chart], comments as {>>author: text<<}) and its speaker notes; hidden \
     slides are marked. Long results are cut at max_chars, saying which slides to ask for next.";

/// One slide as read.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Slide {
    pub title: String,
    pub text: String,
    pub notes: String,
    pub hidden: bool,
}

pub fn text(args: TextArgs) -> Result<Output, ToolError> {
    let max_chars = args.max_chars.unwrap_or(DEFAULT_MAX_CHARS);
    if !(1..=MAX_MAX_CHARS).contains(&max_chars) {
        return Err(ToolError::InvalidArgs(format!(
            "max_chars must be between 1 and {MAX_MAX_CHARS}"
        )));
    }
    let path = args.path.as_path();
    let bytes = deskhand_guest::read_capped(path, read::MAX_FILE_BYTES, |size| {
        ToolError::TooLarge(path_error(
            path,
            format!(
                "is {size} bytes; the pptx tool reads files up to {} MiB",
                read::MAX_FILE_BYTES >> 20
            ),
        ))
    })?;
    let mut deck = Deck::open(path, &bytes)?;
    let total = deck.slides.len();
    let chosen = match args.slides.as_deref() {
        None => (1..=total).collect(),
        Some(_) if total == 0 => Vec::new(),
        Some(spec) => parse_ranges(spec, total, "slide")
            .map_err(|e| ToolError::InvalidArgs(format!("{}: {e}", path.display())))?,
    };
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let mut used = 0usize;
    let mut cut_at = None;
    for (i, n) in chosen.iter().enumerate() {
        let s = deck.slide(*n)?;
        let size = s.title.chars().count() + s.text.chars().count() + s.notes.chars().count();
        let mut j = json!({"slide": n, "title": s.title, "text": s.text});
        if !s.notes.is_empty() {
            j["notes"] = json!(s.notes);
        }
        if s.hidden {
            j["hidden"] = json!(true);
        }
        if used + size > max_chars {
            // Keep what fits, title first, then text, then notes.
            let mut room = max_chars - used;
            for key in ["title", "text", "notes"] {
                let v = j.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
                let keep: String = v.chars().take(room).collect();
                room -= keep.chars().count();
                if j.get(key).is_some() {
                    j[key] = json!(keep);
                }
            }
            j["truncated"] = json!(true);
            used = max_chars;
            out.push(j);
            cut_at = Some((*n, chosen.len() - i - 1));
            break;
        }
        used += size;
        out.push(j);
    }
    if let Some((slide, unread)) = cut_at {
        notes.push(format!(
            "the text was cut at {max_chars} characters, in slide {slide}{}; ask for fewer slides with \"slides\" \
             (e.g. \"{slide}-\") or raise \"max_chars\" (up to {MAX_MAX_CHARS})",
            if unread > 0 {
                format!(", and {unread} more slide(s) were not read")
            } else {
                String::new()
            }
        ));
    }
    if total == 0 {
        notes.push("the presentation has no slides".to_owned());
    } else if used == 0 {
        notes.push("no text was found: the slides may hold only pictures".to_owned());
    }
    let truncated = cut_at.is_some();
    let mut j = json!({"path": path.display().to_string(), "format": "pptx", "slide_count": total,
                       "slides": out, "truncated": truncated});
    if !notes.is_empty() {
        j["notes"] = json!(notes);
    }
    let summary = format!(
        "read {used} character{} from {} slide{} of {}{}",
        if used == 1 { "" } else { "s" },
        chosen.len(),
        if chosen.len() == 1 { "" } else { "s" },
        path.display(),
        if truncated { " (cut; see notes)" } else { "" }
    );
    Ok(output(&j, summary))
}

/// An opened presentation: its slide parts in order, and comment authors.
pub struct Deck<'a> {
    pkg: Opened<'a>,
    pub slides: Vec<String>,
    authors: HashMap<String, String>,
}

impl<'a> Deck<'a> {
    pub fn open(path: &Path, bytes: &'a [u8]) -> Result<Deck<'a>, ToolError> {
        let mut pkg = read::open(path, bytes, Kind::Pptx)?;
        let main = pkg.main.clone();
        let rels = pkg.rels(&main)?;
        let xml = pkg
            .part(&main)?
            .ok_or_else(|| read::bad(path, format!("is damaged: its main part {main} is missing")))?;
        let mut slides = Vec::new();
        let mut x = Xml::new(&xml);
        while let Some(node) = x.next().map_err(|e| read::bad_part(path, &main, &e))? {
            if let Node::Open(t) = node
                && t.is(Ns::P, "sldId")
                && let Some(rid) = t.prefixed_attr("id")
            {
                if slides.len() >= MAX_SLIDES {
                    return Err(ToolError::TooLarge(path_error(
                        path,
                        format!(
                            "lists more than {MAX_SLIDES} slides; deskhand reads presentations of up to {MAX_SLIDES}"
                        ),
                    )));
                }
                match rels.iter().find(|r| r.id == rid && r.kind == "slide") {
                    Some(r) => slides.push(r.target.clone()),
                    None => {
                        return Err(read::bad(
                            path,
                            format!(
                                "is damaged: slide {} is listed but its part is not ({rid})",
                                slides.len() + 1
                            ),
                        ));
                    }
                }
            }
        }
        let mut authors = HashMap::new();
        for r in rels
            .iter()
            .filter(|r| matches!(r.kind.as_str(), "commentAuthors" | "authors") && !r.external)
        {
            if let Some(xml) = pkg.part(&r.target)? {
                let mut x = Xml::new(&xml);
                while let Some(node) = x.next().map_err(|e| read::bad_part(path, &r.target, &e))? {
                    if let Node::Open(t) = node
                        && matches!(t.local(), "cmAuthor" | "author")
                        && let (Some(id), Some(name)) = (t.attr("id"), t.attr("name"))
                    {
                        authors.insert(id, name);
                    }
                }
            }
        }
        Ok(Deck { pkg, slides, authors })
    }

    /// Slide `n` (from 1): title, text, notes, comments.
    pub fn slide(&mut self, n: usize) -> Result<Slide, ToolError> {
        let part = self.slides[n - 1].clone();
        let path = self.pkg.path().to_path_buf();
        let xml = self
            .pkg
            .part(&part)?
            .ok_or_else(|| read::bad(&path, format!("is damaged: slide {n}'s part {part} is missing")))?;
        let shapes = parse_shapes(&xml, true).map_err(|e| read::bad_part(&path, &part, &e))?;
        let mut slide = Slide {
            hidden: shapes.hidden,
            ..Slide::default()
        };
        slide.title = title_of(&shapes.shapes);
        let mut blocks = Vec::new();
        for s in shapes.shapes {
            match s.ph.as_deref() {
                Some("title" | "ctrTitle" | "dt" | "ftr" | "sldNum" | "sldImg" | "hdr") => {}
                _ if !s.lines.is_empty() => blocks.push(s.lines.join("\n")),
                _ => {}
            }
        }
        let rels = self.pkg.rels(&part)?;
        for r in rels.iter().filter(|r| r.kind == "comments" && !r.external) {
            if let Some(xml) = self.pkg.part(&r.target)? {
                for (author, text) in parse_comments(&xml).map_err(|e| read::bad_part(&path, &r.target, &e))? {
                    let who = self.authors.get(&author).map(|a| format!("{a}: ")).unwrap_or_default();
                    blocks.push(format!("{{>>{who}{text}<<}}"));
                }
            }
        }
        slide.text = blocks.join("\n\n");
        if let Some(notes) = notes_part(&rels)
            && let Some(xml) = self.pkg.part(&notes)?
        {
            let shapes = parse_shapes(&xml, false).map_err(|e| read::bad_part(&path, &notes, &e))?;
            slide.notes = shapes
                .shapes
                .into_iter()
                .filter(|s| s.ph.as_deref() == Some("body"))
                .map(|s| s.lines.join("\n"))
                .filter(|t| !t.trim().is_empty())
                .collect::<Vec<_>>()
                .join("\n\n");
        }
        Ok(slide)
    }
}

/// A slide's title: its title placeholders' text, on one line.
fn title_of(shapes: &[Shape]) -> String {
    shapes
        .iter()
        .filter(|s| matches!(s.ph.as_deref(), Some("title" | "ctrTitle")))
        .map(|s| one_line(&s.lines.join(" ")))
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The title of the slide whose part is `xml` (empty when it has none);
/// a malformed part says where it breaks.
pub fn slide_title(xml: &str) -> Result<String, String> {
    Ok(title_of(&parse_shapes(xml, true)?.shapes))
}

fn notes_part(rels: &[Rel]) -> Option<String> {
    rels.iter()
        .find(|r| r.kind == "notesSlide" && !r.external)
        .map(|r| r.target.clone())
}

/// A shape's text as lines, and which placeholder it fills.
#[derive(Debug, Default)]
struct Shape {
    ph: Option<String>,
    lines: Vec<String>,
}

#[derive(Debug, Default)]
struct Shapes {
    shapes: Vec<Shape>,
    hidden: bool,
}

/// A paragraph being read: its level, its bullet, its text.
#[derive(Debug, Default)]
struct Para {
    lvl: usize,
    bullet: Option<Bullet>,
    text: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Bullet {
    None,
    Char,
    Number,
}

#[derive(Debug, Default)]
struct Frame {
    ph: Option<String>,
    is_ph: bool,
    lines: Vec<String>,
    /// Item numbers by level, for `1.` bullets.
    numbers: [u32; 9],
}

#[derive(Debug, Default)]
struct Table {
    rows: Vec<Vec<String>>,
    row: Vec<String>,
    cell: Option<String>,
}

/// Every top-level and grouped shape of a slide (or notes slide) in
/// document order, pictures and charts as one line each.
fn parse_shapes(xml: &str, bulleted: bool) -> Result<Shapes, String> {
    let mut out = Shapes::default();
    let mut x = Xml::new(xml);
    let mut frames: Vec<Frame> = Vec::new();
    let mut para: Option<Para> = None;
    let mut tables: Vec<Table> = Vec::new();
    let mut in_t = false;
    let mut fallback = 0usize;
    let mut alt = String::new();
    while let Some(node) = x.next()? {
        if fallback > 0 {
            match node {
                Node::Open(_) => fallback += 1,
                Node::Close(..) => fallback -= 1,
                Node::Text(_) => {}
            }
            continue;
        }
        match node {
            Node::Open(t) => match (t.ns, t.local()) {
                (Ns::Mc, "Fallback") => fallback = 1,
                (Ns::P, "sld") => out.hidden = t.attr("show").is_some_and(|v| v == "0" || v == "false"),
                (Ns::P, "sp" | "graphicFrame" | "pic" | "cxnSp") => {
                    frames.push(Frame::default());
                    alt.clear();
                }
                (Ns::P, "ph") => {
                    if let Some(f) = frames.last_mut() {
                        f.is_ph = true;
                        f.ph = Some(t.attr("type").unwrap_or_else(|| "body".into()));
                    }
                }
                (Ns::P, "cNvPr") => {
                    alt = t
                        .attr("descr")
                        .filter(|s| !s.is_empty())
                        .or_else(|| t.attr("title"))
                        .unwrap_or_default()
                }
                (Ns::Other, "chart") => {
                    if let Some(f) = frames.last_mut() {
                        f.lines.push("[chart]".into());
                    }
                }
                (Ns::A, "p") => para = Some(Para::default()),
                (Ns::A, "pPr") => {
                    if let Some(p) = &mut para {
                        p.lvl = t.attr("lvl").and_then(|v| v.parse().ok()).unwrap_or(0).min(8);
                    }
                }
                (Ns::A, "buNone") => set_bullet(&mut para, Bullet::None),
                (Ns::A, "buChar" | "buBlip") => set_bullet(&mut para, Bullet::Char),
                (Ns::A, "buAutoNum") => set_bullet(&mut para, Bullet::Number),
                (Ns::A, "t") => in_t = true,
                (Ns::A, "br") => {
                    if let Some(p) = &mut para {
                        p.text.push('\n');
                    }
                }
                (Ns::A, "tbl") => tables.push(Table::default()),
                (Ns::A, "tc") => {
                    if let Some(tb) = tables.last_mut() {
                        tb.cell = Some(String::new());
                    }
                }
                _ => {}
            },
            Node::Text(s) => {
                if in_t && let Some(p) = &mut para {
                    p.text.push_str(&s);
                }
            }
            Node::Close(ns, name) => match (ns, name.as_str()) {
                (Ns::A, "t") => in_t = false,
                (Ns::A, "p") => {
                    let Some(p) = para.take() else { continue };
                    let text = p.text.trim();
                    if text.is_empty() {
                        continue;
                    }
                    if let Some(tb) = tables.last_mut() {
                        let cell = tb.cell.get_or_insert_with(String::new);
                        if !cell.is_empty() {
                            cell.push_str(" / ");
                        }
                        cell.push_str(&one_line(text));
                    } else if let Some(f) = frames.last_mut() {
                        let line = paragraph_line(f, &p, text, bulleted);
                        f.lines.push(line);
                    }
                }
                (Ns::A, "tc") => {
                    if let Some(tb) = tables.last_mut()
                        && let Some(c) = tb.cell.take()
                    {
                        tb.row.push(c.replace('|', "\\|"));
                    }
                }
                (Ns::A, "tr") => {
                    if let Some(tb) = tables.last_mut() {
                        let row = std::mem::take(&mut tb.row);
                        tb.rows.push(row);
                    }
                }
                (Ns::A, "tbl") => {
                    if let Some(tb) = tables.pop()
                        && let Some(f) = frames.last_mut()
                        && !tb.rows.iter().flatten().all(String::is_empty)
                    {
                        f.lines.extend(table_lines(&tb.rows));
                    }
                }
                (Ns::P, "pic") => {
                    if let Some(f) = frames.last_mut() {
                        f.lines.push(if alt.trim().is_empty() {
                            "[image]".into()
                        } else {
                            format!("[image: {}]", one_line(&alt))
                        });
                    }
                    close_frame(&mut frames, &mut out);
                }
                (Ns::P, "sp" | "graphicFrame" | "cxnSp") => close_frame(&mut frames, &mut out),
                _ => {}
            },
        }
    }
    Ok(out)
}

fn close_frame(frames: &mut Vec<Frame>, out: &mut Shapes) {
    if let Some(f) = frames.pop() {
        out.shapes.push(Shape {
            ph: f.ph,
            lines: f.lines,
        });
    }
}

fn set_bullet(para: &mut Option<Para>, b: Bullet) {
    if let Some(p) = para {
        p.bullet = Some(b);
    }
}

/// A paragraph as a line: body placeholders' paragraphs are bulleted unless
/// they say otherwise; other shapes' only when they ask for a bullet.
fn paragraph_line(f: &mut Frame, p: &Para, text: &str, bulleted: bool) -> String {
    let body = bulleted && f.is_ph && matches!(f.ph.as_deref(), Some("body" | "obj"));
    let bullet = match p.bullet {
        Some(b) => b,
        None if body => Bullet::Char,
        None => Bullet::None,
    };
    let indent = "  ".repeat(p.lvl);
    let marker = match bullet {
        Bullet::None => return text.to_owned(),
        Bullet::Char => "-".to_owned(),
        Bullet::Number => {
            f.numbers[p.lvl] += 1;
            for n in f.numbers.iter_mut().skip(p.lvl + 1) {
                *n = 0;
            }
            format!("{}.", f.numbers[p.lvl])
        }
    };
    let text = text.replace('\n', &format!("\n{indent}  "));
    format!("{indent}{marker} {text}")
}

/// A slide's comments: (author id, text), legacy (`p:cm`/`p:text`) and modern (`cm`/`a:t`) alike.
fn parse_comments(xml: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut x = Xml::new(xml);
    let mut cur: Option<(String, String)> = None;
    let mut in_text = false;
    while let Some(node) = x.next()? {
        match node {
            Node::Open(t) => match t.local() {
                "cm" => cur = Some((t.attr("authorId").unwrap_or_default(), String::new())),
                "text" | "t" => in_text = true,
                _ => {}
            },
            Node::Text(s) if in_text => {
                if let Some((_, text)) = &mut cur {
                    text.push_str(&s);
                }
            }
            Node::Close(_, name) => match name.as_str() {
                "text" | "t" => in_text = false,
                "p" => {
                    if let Some((_, text)) = &mut cur {
                        text.push(' ');
                    }
                }
                "cm" => {
                    if let Some((author, text)) = cur.take() {
                        out.push((author, one_line(&text)));
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
    Ok(out)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn table_lines(rows: &[Vec<String>]) -> Vec<String> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let line = |r: &[String]| {
        let mut cells: Vec<&str> = r.iter().map(String::as_str).collect();
        cells.resize(cols, "");
        format!("| {} |", cells.join(" | "))
    };
    let mut out = Vec::with_capacity(rows.len() + 1);
    if let Some((first, rest)) = rows.split_first() {
        out.push(line(first));
        out.push(format!("|{}", " --- |".repeat(cols)));
        out.extend(rest.iter().map(|r| line(r)));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    fn deck(name: &str) -> Vec<Slide> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/corpus/docx-pptx")
            .join(name);
        let bytes = std::fs::read(&path).unwrap();
        let mut d = Deck::open(&path, &bytes).unwrap();
        (1..=d.slides.len()).map(|n| d.slide(n).unwrap()).collect()
    }

    fn corpus(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/corpus/docx-pptx")
            .join(name)
    }

    fn call(args: Value) -> Result<Value, ToolError> {
        let out = text(serde_json::from_value(args).unwrap())?;
        Ok(serde_json::from_str(&out.json).unwrap())
    }

    #[test]
    fn slides_keep_titles_bullets_tables_pictures_and_notes() {
        let s = deck("python-pptx-shp-shapes.pptx");
        assert_eq!(s[0].title, "shapes[0]");
        assert_eq!(
            s[0].text,
            "- shapes[1]\n- Picture is shapes[2]\n\n[image: python-powered.png]\n\n| shapes[3] |  |\n| --- | --- |\n|  |  |\n\n[chart]"
        );
        assert_eq!(s[1].text, "[image: sonic.gif]");
        let s = deck("python-pptx-sld-notes.pptx");
        assert_eq!((s[0].notes.as_str(), s[1].notes.as_str()), ("Notes", ""));
        let s = deck("python-pptx-test.pptx");
        assert_eq!(
            (s[0].title.as_str(), s[0].text.as_str()),
            ("Presentation Title Text", "Subtitle Text")
        );
        let s = deck("python-pptx-test_slides.pptx");
        assert!(s[0].text.contains("Group test text") && s[0].text.contains("| Cell text 1 | Cell text 2 |"));
        let s = deck("python-pptx-tbl-cell.pptx");
        assert!(
            s[2].text
                .starts_with("| a | b | c |\n| --- | --- | --- |\n| d | e | f |"),
            "{}",
            s[2].text
        );
        assert!(deck("python-pptx-no-slides.pptx").is_empty());
    }

    #[test]
    fn a_long_result_is_cut_and_says_which_slides_to_ask_for() {
        let path = corpus("python-pptx-tbl-cell.pptx");
        let all = call(json!({"path": path})).unwrap();
        assert_eq!(all["slide_count"], 3);
        assert_eq!(all["truncated"], false);
        let part = call(json!({"path": path, "max_chars": 150})).unwrap();
        assert_eq!(part["truncated"], true);
        let slides = part["slides"].as_array().unwrap();
        assert_eq!(slides.len(), 1);
        assert_eq!(slides[0]["truncated"], true);
        let note = part["notes"][0].as_str().unwrap();
        assert!(
            note.contains("in slide 1, and 2 more slide(s) were not read") && note.contains("\"1-\""),
            "{note}"
        );
        let third = call(json!({"path": path, "slides": "3"})).unwrap();
        assert_eq!(third["slides"][0]["slide"], 3);
        let bad = call(json!({"path": path, "slides": "4"})).unwrap_err();
        assert!(format!("{bad:?}").contains("outside 1-3"), "{bad:?}");
    }

    #[test]
    fn files_that_are_not_presentations_are_named() {
        let e = format!(
            "{:?}",
            call(json!({"path": corpus("mammoth-tables.docx")})).unwrap_err()
        );
        assert!(
            e.contains("is a Word document (.docx), not a PowerPoint presentation") && e.contains("docx tool"),
            "{e}"
        );
        let bytes = std::fs::read(corpus("python-pptx-test.pptx")).unwrap();
        let e = format!(
            "{:?}",
            Deck::open(Path::new("x.pptx"), &bytes[..bytes.len() - 100])
                .err()
                .unwrap()
        );
        assert!(e.contains("damaged or truncated"), "{e}");
    }
}
