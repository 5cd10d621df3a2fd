//! `report`: a [`Document`] laid out on A4 pages: a title, headings,
//! word-wrapped paragraphs, bullet and numbered lists, tables whose header
//! row repeats after a page break, PNG/JPEG images, bar charts drawn as
//! vector graphics, page breaks and "Page n of m" footers. Text is drawn
//! with embedded font subsets, each character from the first font that has
//! it (the Latin font, then the CJK fallback).

use std::collections::BTreeMap;

use deskhand_guest::document::{Block, Document, cell_text};
use lopdf::{Dictionary, Object, Stream};
use serde_json::Value;

use crate::PdfError;
use crate::fonts::{Embedded, Fonts};
use crate::image::add_image;

const PAGE_W: f64 = 595.28;
const PAGE_H: f64 = 841.89;
const MARGIN: f64 = 56.0;
const TOP: f64 = PAGE_H - MARGIN;
/// The lowest baseline content may use; the footer sits below it.
const BOTTOM: f64 = MARGIN + 10.0;
const WIDTH: f64 = PAGE_W - 2.0 * MARGIN;

const BODY: f64 = 11.0;
const SMALL: f64 = 9.0;
const TABLE: f64 = 10.0;
const LEADING: f64 = 1.3;

/// Which fonts a run of text may use: regular or bold.
#[derive(Clone, Copy, PartialEq)]
enum Weight {
    Regular,
    Bold,
}

/// One shaped character: which font, its glyph in the subset, its advance per point.
#[derive(Clone, Copy)]
struct Glyph {
    font: usize,
    gid: u16,
    advance: f64,
    space: bool,
    /// A character after which a line may break without a space (CJK).
    breakable: bool,
}

/// Renders `doc` as PDF bytes. `image` returns the bytes of an image
/// block's `path` (the caller decides where paths point and what may be read).
pub fn render_report<F>(doc: &Document, fonts: &Fonts, mut image: F) -> Result<Vec<u8>, PdfError>
where
    F: FnMut(&str) -> Result<Vec<u8>, PdfError>,
{
    let mut faces = vec![Embedded::new(&fonts.regular, "DHREGU")?];
    let bold = match &fonts.bold {
        Some(b) => {
            faces.push(Embedded::new(b, "DHBOLD")?);
            Some(faces.len() - 1)
        }
        None => None,
    };
    let cjk = match &fonts.cjk {
        Some(c) => {
            faces.push(Embedded::new(c, "DHCJKF")?);
            Some(faces.len() - 1)
        }
        None => None,
    };
    let mut pdf = lopdf::Document::with_version("1.7");
    let mut w = Layout {
        faces,
        regular_chain: std::iter::once(0).chain(cjk).collect(),
        bold_chain: bold.into_iter().chain(std::iter::once(0)).chain(cjk).collect(),
        pages: Vec::new(),
        y: TOP,
        images: Vec::new(),
    };
    w.new_page();
    if let Some(title) = doc.title.as_deref().filter(|t| !t.trim().is_empty()) {
        w.text_block(title, 20.0, Weight::Bold, 0.0, (0.1, 0.1, 0.1))?;
        w.y -= 10.0;
    }
    for block in &doc.blocks {
        match block {
            Block::Heading { text, level } => {
                let size = match level {
                    1 => 16.0,
                    2 => 13.5,
                    _ => 12.0,
                };
                w.y -= size * 0.6;
                // Keep a heading with at least two lines of what follows.
                w.ensure(size * LEADING + 2.0 * BODY * LEADING);
                w.text_block(text, size, Weight::Bold, 0.0, (0.12, 0.23, 0.40))?;
                w.y -= 3.0;
            }
            Block::Paragraph { text } => {
                w.text_block(text, BODY, Weight::Regular, 0.0, (0.0, 0.0, 0.0))?;
                w.y -= BODY * 0.6;
            }
            Block::List { items, numbered } => {
                for (i, item) in items.iter().enumerate() {
                    let marker = if *numbered { format!("{}.", i + 1) } else { "•".into() };
                    w.list_item(&marker, item)?;
                }
                w.y -= BODY * 0.5;
            }
            Block::Table { header, rows, caption } => {
                w.table(header, rows)?;
                if let Some(c) = caption {
                    w.y -= 2.0;
                    w.text_block(c, SMALL, Weight::Regular, 0.0, (0.3, 0.3, 0.3))?;
                }
                w.y -= BODY * 0.8;
            }
            Block::Image {
                path,
                caption,
                width_mm,
            } => {
                let bytes = image(path)?;
                let placed = add_image(&mut pdf, path, &bytes)?;
                w.image(placed, *width_mm)?;
                if let Some(c) = caption {
                    w.y -= 2.0;
                    w.text_block(c, SMALL, Weight::Regular, 0.0, (0.3, 0.3, 0.3))?;
                }
                w.y -= BODY * 0.8;
            }
            Block::Chart { title, labels, values } => {
                w.chart(title.as_deref(), labels, values)?;
                w.y -= BODY * 0.8;
            }
            Block::PageBreak => w.new_page(),
        }
    }
    w.footers()?;
    w.finish(&mut pdf, doc)
}

struct Page {
    content: String,
    images: Vec<lopdf::ObjectId>,
}

struct Layout<'f> {
    faces: Vec<Embedded<'f>>,
    regular_chain: Vec<usize>,
    bold_chain: Vec<usize>,
    pages: Vec<Page>,
    /// The top of the space left on the current page.
    y: f64,
    images: Vec<lopdf::ObjectId>,
}

fn is_cjk(c: char) -> bool {
    matches!(u32::from(c),
        0x1100..=0x11FF | 0x2E80..=0x9FFF | 0xA960..=0xA97F | 0xAC00..=0xD7FF
        | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFFEF | 0x20000..=0x3FFFF)
}

/// A PDF number: at most three decimals, no exponent.
fn n(v: f64) -> String {
    let s = format!("{:.3}", v);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_owned() }
}

impl<'f> Layout<'f> {
    fn page(&mut self) -> &mut Page {
        if self.pages.is_empty() {
            self.pages.push(Page {
                content: String::new(),
                images: Vec::new(),
            });
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    fn new_page(&mut self) {
        self.pages.push(Page {
            content: String::new(),
            images: Vec::new(),
        });
        self.y = TOP;
    }

    /// Starts a new page unless `height` more fits on this one.
    fn ensure(&mut self, height: f64) {
        if self.y - height < BOTTOM && self.y < TOP {
            self.new_page();
        }
    }

    /// Each character of `text` as a glyph of the first font in the chain that has it.
    fn shape(&mut self, text: &str, weight: Weight) -> Result<Vec<Glyph>, PdfError> {
        let chain = match weight {
            Weight::Regular => self.regular_chain.clone(),
            Weight::Bold => self.bold_chain.clone(),
        };
        let mut out = Vec::with_capacity(text.len());
        for c in text.chars() {
            let c = match c {
                '\t' | '\u{a0}' => ' ',
                c if c.is_control() => continue,
                c => c,
            };
            let found = chain.iter().find_map(|&k| self.faces[k].glyph(c).map(|g| (k, g)));
            let Some((font, gid)) = found else {
                // Zero-width and format characters may be left out silently.
                if matches!(u32::from(c), 0x200B..=0x200F | 0xFE00..=0xFE0F | 0xFEFF) {
                    continue;
                }
                return Err(PdfError::MissingGlyph {
                    ch: c,
                    code: u32::from(c),
                });
            };
            let (gid, advance) = self.faces[font].use_glyph(gid, c);
            out.push(Glyph {
                font,
                gid,
                advance,
                space: c == ' ',
                breakable: is_cjk(c),
            });
        }
        Ok(out)
    }

    fn width(glyphs: &[Glyph], size: f64) -> f64 {
        glyphs.iter().map(|g| g.advance * size).sum()
    }

    /// Breaks shaped text into lines no wider than `max` (at spaces, and
    /// around CJK characters; a word wider than a line is cut).
    fn wrap(glyphs: &[Glyph], size: f64, max: f64) -> Vec<Vec<Glyph>> {
        // Words: runs ending after a space or a CJK character.
        let mut words: Vec<&[Glyph]> = Vec::new();
        let mut start = 0;
        for i in 0..glyphs.len() {
            let next_breakable = glyphs.get(i + 1).is_some_and(|g| g.breakable);
            let end_here = (glyphs[i].space && !glyphs.get(i + 1).is_some_and(|g| g.space))
                || glyphs[i].breakable
                || next_breakable;
            if end_here {
                words.push(&glyphs[start..=i]);
                start = i + 1;
            }
        }
        if start < glyphs.len() {
            words.push(&glyphs[start..]);
        }
        let trimmed = |w: &[Glyph]| -> f64 {
            let end = w.iter().rposition(|g| !g.space).map_or(0, |p| p + 1);
            Self::width(&w[..end], size)
        };
        let mut lines: Vec<Vec<Glyph>> = Vec::new();
        let mut line: Vec<Glyph> = Vec::new();
        let mut line_w = 0.0;
        for word in words {
            if !line.is_empty() && line_w + trimmed(word) > max {
                lines.push(std::mem::take(&mut line));
                line_w = 0.0;
            }
            if line.is_empty() && trimmed(word) > max {
                // Cut a word too wide for any line.
                for g in word {
                    if !line.is_empty() && line_w + g.advance * size > max {
                        lines.push(std::mem::take(&mut line));
                        line_w = 0.0;
                    }
                    line.push(*g);
                    line_w += g.advance * size;
                }
                continue;
            }
            line.extend_from_slice(word);
            line_w += Self::width(word, size);
        }
        if !line.is_empty() || lines.is_empty() {
            lines.push(line);
        }
        for l in &mut lines {
            while l.last().is_some_and(|g| g.space) {
                l.pop();
            }
            while l.first().is_some_and(|g| g.space) {
                l.remove(0);
            }
        }
        lines
    }

    /// Content-stream operators that draw `glyphs` with the baseline at (`x`, `y`).
    fn draw(&self, glyphs: &[Glyph], x: f64, y: f64, size: f64, rgb: (f64, f64, f64)) -> String {
        if glyphs.is_empty() {
            return String::new();
        }
        let mut s = format!("BT {} {} {} rg {} {} Td", n(rgb.0), n(rgb.1), n(rgb.2), n(x), n(y));
        let mut font = usize::MAX;
        let mut hex = String::new();
        let flush = |s: &mut String, hex: &mut String| {
            if !hex.is_empty() {
                s.push_str(&format!(" <{hex}> Tj"));
                hex.clear();
            }
        };
        for g in glyphs {
            if g.font != font {
                flush(&mut s, &mut hex);
                font = g.font;
                s.push_str(&format!(" /F{} {} Tf", g.font, n(size)));
            }
            hex.push_str(&format!("{:04X}", g.gid));
        }
        flush(&mut s, &mut hex);
        s.push_str(" ET\n");
        s
    }

    /// A wrapped block of text at the left margin plus `indent`.
    fn text_block(
        &mut self,
        text: &str,
        size: f64,
        weight: Weight,
        indent: f64,
        rgb: (f64, f64, f64),
    ) -> Result<(), PdfError> {
        for para in text.split('\n') {
            let glyphs = self.shape(para, weight)?;
            for line in Self::wrap(&glyphs, size, WIDTH - indent) {
                self.ensure(size * LEADING);
                self.y -= size * LEADING;
                let ops = self.draw(&line, MARGIN + indent, self.y + size * 0.25, size, rgb);
                self.page().content.push_str(&ops);
            }
        }
        Ok(())
    }

    fn list_item(&mut self, marker: &str, text: &str) -> Result<(), PdfError> {
        let indent = 20.0;
        let marker = self.shape(marker, Weight::Regular)?;
        let glyphs = self.shape(text, Weight::Regular)?;
        for (i, line) in Self::wrap(&glyphs, BODY, WIDTH - indent).into_iter().enumerate() {
            self.ensure(BODY * LEADING);
            self.y -= BODY * LEADING;
            let base = self.y + BODY * 0.25;
            if i == 0 {
                let mw = Self::width(&marker, BODY);
                let ops = self.draw(&marker, MARGIN + indent - 6.0 - mw, base, BODY, (0.0, 0.0, 0.0));
                self.page().content.push_str(&ops);
            }
            let ops = self.draw(&line, MARGIN + indent, base, BODY, (0.0, 0.0, 0.0));
            self.page().content.push_str(&ops);
        }
        Ok(())
    }

    fn table(&mut self, header: &[String], rows: &[Vec<Value>]) -> Result<(), PdfError> {
        let pad = 4.0;
        let cols = header.len().max(1);
        let head: Vec<Vec<Glyph>> = header
            .iter()
            .map(|h| self.shape(h, Weight::Bold))
            .collect::<Result<_, _>>()?;
        let mut body: Vec<Vec<(Vec<Glyph>, bool)>> = Vec::with_capacity(rows.len());
        for row in rows {
            let mut cells = Vec::with_capacity(cols);
            for cell in row {
                cells.push((self.shape(&cell_text(cell), Weight::Regular)?, cell.is_number()));
            }
            body.push(cells);
        }
        // Column widths: each column's widest content; when they do not all fit,
        // only the widest columns give way (to one common cap), so short columns
        // such as dates and amounts are never wrapped to make room for a long one.
        let mut natural = vec![0.0f64; cols];
        for (c, h) in head.iter().enumerate() {
            natural[c] = natural[c].max(Self::width(h, TABLE));
        }
        for row in &body {
            for (c, (g, _)) in row.iter().enumerate().take(cols) {
                natural[c] = natural[c].max(Self::width(g, TABLE));
            }
        }
        let min = WIDTH / cols as f64 / 3.0;
        let natural: Vec<f64> = natural.iter().map(|w| (w + 2.0 * pad).max(min)).collect();
        let widths = fit_columns(&natural, WIDTH);
        let line_h = TABLE * LEADING;
        // A row never taller than a page: longer cells are cut.
        let max_lines = (((TOP - BOTTOM) / line_h) as usize).saturating_sub(4).max(1);

        let mut head_lines: Vec<Vec<Vec<Glyph>>> = Vec::with_capacity(cols);
        for (g, w) in head.iter().zip(&widths) {
            let lines = Self::wrap(g, TABLE, w - 2.0 * pad);
            head_lines.push(self.clip(lines, max_lines)?);
        }
        let head_h = head_lines.iter().map(Vec::len).max().unwrap_or(1) as f64 * line_h + 2.0 * pad;
        self.ensure(head_h + line_h + 2.0 * pad);
        self.table_row(&head_lines, &vec![false; cols], &widths, head_h, true);
        for row in &body {
            let mut lines: Vec<Vec<Vec<Glyph>>> = Vec::with_capacity(cols);
            for ((g, _), w) in row.iter().zip(&widths) {
                let wrapped = Self::wrap(g, TABLE, w - 2.0 * pad);
                lines.push(self.clip(wrapped, max_lines)?);
            }
            let right: Vec<bool> = row.iter().map(|(_, num)| *num).collect();
            let h = lines.iter().map(Vec::len).max().unwrap_or(1).max(1) as f64 * line_h + 2.0 * pad;
            if self.y - h < BOTTOM {
                self.new_page();
                self.table_row(&head_lines, &vec![false; cols], &widths, head_h, true);
            }
            self.table_row(&lines, &right, &widths, h, false);
        }
        Ok(())
    }

    /// At most `max` lines; a cut cell ends in an ellipsis.
    fn clip(&mut self, mut lines: Vec<Vec<Glyph>>, max: usize) -> Result<Vec<Vec<Glyph>>, PdfError> {
        if lines.len() > max {
            lines.truncate(max);
            let ellipsis = self.shape("…", Weight::Regular)?;
            if let Some(last) = lines.last_mut() {
                last.extend(ellipsis);
            }
        }
        Ok(lines)
    }

    fn table_row(&mut self, cells: &[Vec<Vec<Glyph>>], right: &[bool], widths: &[f64], h: f64, header: bool) {
        let pad = 4.0;
        let top = self.y;
        let mut ops = String::new();
        if header {
            ops.push_str(&format!(
                "q 0.85 0.89 0.95 rg {} {} {} {} re f Q\n",
                n(MARGIN),
                n(top - h),
                n(WIDTH),
                n(h)
            ));
        }
        let mut x = MARGIN;
        for (c, lines) in cells.iter().enumerate() {
            let w = widths.get(c).copied().unwrap_or(0.0);
            for (i, line) in lines.iter().enumerate() {
                let base = top - pad - (i as f64 + 1.0) * TABLE * LEADING + TABLE * 0.3;
                let lx = if right.get(c).copied().unwrap_or(false) {
                    x + w - pad - Self::width(line, TABLE)
                } else {
                    x + pad
                };
                ops.push_str(&self.draw(line, lx, base, TABLE, (0.0, 0.0, 0.0)));
            }
            x += w;
        }
        // Grid: the row's box and its column rules.
        ops.push_str(&format!(
            "q 0.6 0.6 0.6 RG 0.5 w {} {} {} {} re S",
            n(MARGIN),
            n(top - h),
            n(WIDTH),
            n(h)
        ));
        let mut x = MARGIN;
        for w in &widths[..widths.len().saturating_sub(1)] {
            x += w;
            ops.push_str(&format!(" {} {} m {} {} l S", n(x), n(top), n(x), n(top - h)));
        }
        ops.push_str(" Q\n");
        self.page().content.push_str(&ops);
        self.y -= h;
    }

    fn image(&mut self, placed: crate::image::Placed, width_mm: Option<f32>) -> Result<(), PdfError> {
        let (pw, ph) = (f64::from(placed.width), f64::from(placed.height));
        // 96 pixels per inch unless a width is asked for; never wider than the text.
        let mut w = width_mm.map_or(pw * 0.75, |mm| f64::from(mm) * 72.0 / 25.4).min(WIDTH);
        let mut h = w * ph / pw;
        let max_h = TOP - BOTTOM - 30.0;
        if h > max_h {
            w *= max_h / h;
            h = max_h;
        }
        self.ensure(h + 4.0);
        self.y -= h + 4.0;
        let index = self.images.len();
        self.images.push(placed.id);
        let ops = format!(
            "q {} 0 0 {} {} {} cm /Im{index} Do Q\n",
            n(w),
            n(h),
            n(MARGIN),
            n(self.y)
        );
        let page = self.page();
        page.images.push(placed.id);
        page.content.push_str(&ops);
        Ok(())
    }

    /// A vertical bar chart: bars from a zero line, each value above (or
    /// below) its bar, each label under the plot.
    fn chart(&mut self, title: Option<&str>, labels: &[String], values: &[f64]) -> Result<(), PdfError> {
        let plot_h = 170.0;
        let label_h = SMALL * LEADING * 2.0 + 4.0;
        let title_h = if title.is_some() { 12.0 * LEADING + 4.0 } else { 0.0 };
        self.ensure(title_h + plot_h + label_h + 3.0 * SMALL * LEADING);
        if let Some(t) = title {
            self.text_block(t, 12.0, Weight::Bold, 0.0, (0.1, 0.1, 0.1))?;
            self.y -= 4.0;
        }
        // Room above and below the bars for the value labels.
        let top = self.y - SMALL * LEADING;
        let bottom = top - plot_h;
        let max = values.iter().copied().fold(0.0f64, f64::max);
        let min = values.iter().copied().fold(0.0f64, f64::min);
        let span = if max - min > 0.0 { max - min } else { 1.0 };
        let zero = bottom + (0.0 - min) / span * plot_h;
        let slot = WIDTH / labels.len().max(1) as f64;
        let bar = slot * 0.6;
        // Negative values print under their bars: the labels move down to make room.
        let below = if min < 0.0 { SMALL * LEADING } else { 0.0 };
        let mut ops = String::new();
        ops.push_str("q 0.27 0.51 0.71 rg\n");
        for (i, v) in values.iter().enumerate() {
            let x = MARGIN + slot * i as f64 + (slot - bar) / 2.0;
            let y = bottom + (v - min) / span * plot_h;
            let (y0, y1) = if y >= zero { (zero, y) } else { (y, zero) };
            ops.push_str(&format!(
                "{} {} {} {} re f\n",
                n(x),
                n(y0),
                n(bar),
                n((y1 - y0).max(0.5))
            ));
        }
        ops.push_str(&format!(
            "0.3 0.3 0.3 RG 0.8 w {} {} m {} {} l S Q\n",
            n(MARGIN),
            n(zero),
            n(MARGIN + WIDTH),
            n(zero)
        ));
        for (i, (label, v)) in labels.iter().zip(values).enumerate() {
            let cx = MARGIN + slot * i as f64 + slot / 2.0;
            let y = bottom + (v - min) / span * plot_h;
            let value = self.shape(&format_value(*v), Weight::Regular)?;
            let vw = Self::width(&value, SMALL);
            let vy = if *v >= 0.0 { y + 3.0 } else { y - SMALL - 1.0 };
            ops.push_str(&self.draw(&value, cx - vw / 2.0, vy, SMALL, (0.1, 0.1, 0.1)));
            let glyphs = self.shape(label, Weight::Regular)?;
            for (k, line) in Self::wrap(&glyphs, SMALL, slot - 4.0).into_iter().take(2).enumerate() {
                let lw = Self::width(&line, SMALL);
                let ly = bottom - below - SMALL * LEADING * (k as f64 + 1.0) - 2.0;
                ops.push_str(&self.draw(&line, cx - lw / 2.0, ly, SMALL, (0.2, 0.2, 0.2)));
            }
        }
        self.page().content.push_str(&ops);
        self.y = bottom - below - label_h - SMALL;
        Ok(())
    }

    fn footers(&mut self) -> Result<(), PdfError> {
        let total = self.pages.len();
        for i in 0..total {
            let text = format!("Page {} of {}", i + 1, total);
            let glyphs = self.shape(&text, Weight::Regular)?;
            let w = Self::width(&glyphs, SMALL);
            let ops = self.draw(&glyphs, (PAGE_W - w) / 2.0, MARGIN / 2.0, SMALL, (0.4, 0.4, 0.4));
            self.pages[i].content.push_str(&ops);
        }
        Ok(())
    }

    fn finish(self, pdf: &mut lopdf::Document, doc: &Document) -> Result<Vec<u8>, PdfError> {
        let mut fonts = Dictionary::new();
        for (k, face) in self.faces.iter().enumerate() {
            if face.is_used() {
                fonts.set(format!("F{k}"), face.embed(pdf)?);
            }
        }
        let pages_id = pdf.new_object_id();
        let mut kids = Vec::new();
        for page in self.pages {
            let mut xobjects = Dictionary::new();
            for id in &page.images {
                if let Some(index) = self.images.iter().position(|i| i == id) {
                    xobjects.set(format!("Im{index}"), *id);
                }
            }
            let mut resources = Dictionary::from_iter(vec![("Font", Object::Dictionary(fonts.clone()))]);
            if !xobjects.is_empty() {
                resources.set("XObject", xobjects);
            }
            let mut content = Stream::new(Dictionary::new(), page.content.into_bytes());
            let _ = content.compress();
            let content_id = pdf.add_object(content);
            kids.push(Object::Reference(pdf.add_object(Dictionary::from_iter(vec![
                ("Type", Object::Name(b"Page".to_vec())),
                ("Parent", Object::Reference(pages_id)),
                (
                    "MediaBox",
                    Object::Array(vec![
                        0.into(),
                        0.into(),
                        Object::Real(PAGE_W as f32),
                        Object::Real(PAGE_H as f32),
                    ]),
                ),
                ("Resources", Object::Dictionary(resources)),
                ("Contents", Object::Reference(content_id)),
            ]))));
        }
        let count = kids.len() as i64;
        pdf.objects.insert(
            pages_id,
            Object::Dictionary(Dictionary::from_iter(vec![
                ("Type", Object::Name(b"Pages".to_vec())),
                ("Kids", Object::Array(kids)),
                ("Count", Object::Integer(count)),
            ])),
        );
        let catalog = pdf.add_object(Dictionary::from_iter(vec![
            ("Type", Object::Name(b"Catalog".to_vec())),
            ("Pages", Object::Reference(pages_id)),
        ]));
        let mut info: BTreeMap<&str, Object> = BTreeMap::new();
        for (key, value) in [
            ("Title", &doc.title),
            ("Author", &doc.author),
            ("Subject", &doc.subject),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                info.insert(key, text_string(v));
            }
        }
        info.insert("Producer", Object::string_literal("deskhand pdf tool (lopdf)"));
        info.insert("Creator", Object::string_literal("deskhand"));
        let now = pdf_now();
        info.insert("CreationDate", Object::string_literal(now.clone()));
        info.insert("ModDate", Object::string_literal(now));
        let info_id = pdf.add_object(Dictionary::from_iter(info));
        pdf.trailer.set("Root", catalog);
        pdf.trailer.set("Info", info_id);
        let mut bytes = Vec::new();
        pdf.save_to(&mut bytes).map_err(|e| PdfError::Write(e.to_string()))?;
        Ok(bytes)
    }
}

/// A chart value as people read it: whole numbers without decimals, others with two.
fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A PDF text string: plain when ASCII, else UTF-16BE with a byte-order mark.
fn text_string(s: &str) -> Object {
    if s.is_ascii() {
        Object::string_literal(s)
    } else {
        let mut bytes = vec![0xFE, 0xFF];
        for u in s.encode_utf16() {
            bytes.extend_from_slice(&u.to_be_bytes());
        }
        Object::String(bytes, lopdf::StringFormat::Hexadecimal)
    }
}

/// Now as a PDF date, `D:YYYYMMDDHHmmSSZ`.
fn pdf_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "D:{y:04}{m:02}{d:02}{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Column widths for `natural` widths in `total`: all of them, scaled up,
/// when they fit; otherwise every column wider than a common cap is cut to
/// it, the cap chosen so that the widths fill `total` exactly.
fn fit_columns(natural: &[f64], total: f64) -> Vec<f64> {
    let sum: f64 = natural.iter().sum();
    if sum <= total || natural.is_empty() {
        let scale = if sum > 0.0 { total / sum } else { 1.0 };
        return natural.iter().map(|w| w * scale).collect();
    }
    let mut sorted = natural.to_vec();
    sorted.sort_by(f64::total_cmp);
    let (mut below, mut cap) = (0.0, total / natural.len() as f64);
    for (i, w) in sorted.iter().enumerate() {
        let rest = (sorted.len() - i) as f64;
        let even = (total - below) / rest;
        if *w >= even {
            cap = even;
            break;
        }
        below += w;
    }
    natural.iter().map(|w| w.min(cap)).collect()
}

#[cfg(test)]
mod column_tests {
    use super::fit_columns;

    #[test]
    fn short_columns_keep_their_width_and_long_ones_give_way() {
        let w = fit_columns(&[50.0, 100.0, 400.0, 300.0], 500.0);
        assert_eq!(&w[..2], &[50.0, 100.0]);
        assert!((w[2] - 175.0).abs() < 1e-9 && (w[3] - 175.0).abs() < 1e-9, "{w:?}");
        let w = fit_columns(&[100.0, 100.0], 400.0);
        assert_eq!(w, [200.0, 200.0]);
    }
}
