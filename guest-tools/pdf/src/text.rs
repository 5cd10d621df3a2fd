//! Text per page with lines kept apart.
//!
//! lopdf's own extraction concatenates every string a page shows. Here the
//! content stream is interpreted far enough to know where each glyph lands:
//! the text and line matrices (`Td`, `TD`, `T*`, `Tm`, `'`, `"`), the
//! current transformation (`cm`, `q`, `Q`), glyph advances from the fonts'
//! widths, character and word spacing, and `TJ` adjustments. A glyph that
//! starts on another baseline begins a new line; one that starts after a gap
//! of a tenth of the font size on the same baseline (poppler's rule) gets a
//! space. What each code says is the font's business (`textfont.rs`). Form
//! XObjects (`Do`) are followed, and after the page its annotations'
//! appearances, or a form field's value when it has none to show.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use lopdf::{Dictionary, Document, Object, ObjectId, Stream};

use crate::lexer::{Lexer, Operand};
use crate::load::{MAX_STREAM_BYTES, number, text_string};
use crate::textfont::{Glyph, TextFont};
use crate::{PdfError, open};

/// How deep form XObjects are followed (a form may show another form).
const MAX_FORM_DEPTH: usize = 8;
/// The most operators read for one page, forms included: a form shown a
/// hundred times by a form shown a hundred times must not run for hours.
const MAX_OPS_PER_PAGE: usize = 5_000_000;

/// The text of every page of a PDF, one `String` per page, lines separated by `\n`.
/// A page whose content cannot be read fails the whole call, naming the page.
pub fn page_texts(bytes: &[u8], password: Option<&str>) -> Result<Vec<String>, PdfError> {
    let doc = open(bytes, password)?;
    let total = u32::try_from(doc.get_pages().len()).unwrap_or(u32::MAX);
    let pages: Vec<u32> = (1..=total).collect();
    page_texts_of(&doc, &pages)
        .into_iter()
        .zip(&pages)
        .map(|(r, n)| r.map_err(|e| PdfError::Malformed(format!("page {n}: {e}"))))
        .collect()
}

/// The text of the given pages (1-based) of an opened document, each page's
/// own result: one unreadable page does not hide the others.
pub fn page_texts_of(doc: &Document, pages: &[u32]) -> Vec<Result<String, String>> {
    let mut reader = PageTexts::new(doc);
    pages.iter().map(|n| reader.page(*n)).collect()
}

/// Reads the pages of one document one at a time, for a caller that may stop
/// early: the page tree is walked and each font read once, however many
/// pages are asked for (page by page through [`page_texts_of`], a
/// 10,000-page file walked its tree 10,000 times).
pub struct PageTexts<'a> {
    ids: BTreeMap<u32, ObjectId>,
    reader: Reader<'a>,
}

impl<'a> PageTexts<'a> {
    pub fn new(doc: &'a Document) -> Self {
        PageTexts {
            ids: doc.get_pages(),
            reader: Reader::new(doc),
        }
    }

    /// The text of page `n` (1-based), lines separated by `\n`, or why it cannot be read.
    pub fn page(&mut self, n: u32) -> Result<String, String> {
        let id = self.ids.get(&n).ok_or_else(|| format!("there is no page {n}"))?;
        self.reader.page(*id)
    }
}

fn deref<'a>(doc: &'a Document, o: &'a Object) -> &'a Object {
    doc.dereference(o).map(|(_, o)| o).unwrap_or(o)
}

fn get<'a>(doc: &'a Document, dict: &'a Dictionary, key: &[u8]) -> Option<&'a Object> {
    dict.get(key).ok().map(|o| deref(doc, o))
}

/// A page attribute, looked up the page tree (at most 64 levels).
fn inherited<'a>(doc: &'a Document, page: ObjectId, key: &[u8]) -> Option<&'a Object> {
    let mut dict = doc.get_dictionary(page).ok()?;
    for _ in 0..64 {
        if let Some(v) = get(doc, dict, key) {
            return Some(v);
        }
        dict = get(doc, dict, b"Parent")?.as_dict().ok()?;
    }
    None
}

fn matrix_of(doc: &Document, o: Option<&Object>) -> Option<Matrix> {
    let m: Vec<f64> = o?
        .as_array()
        .ok()?
        .iter()
        .filter_map(|o| number(deref(doc, o)))
        .collect();
    (m.len() == 6).then(|| [m[0], m[1], m[2], m[3], m[4], m[5]])
}

/// Reads pages of one document, reading each font once.
struct Reader<'a> {
    doc: &'a Document,
    fonts: HashMap<ObjectId, Rc<TextFont>>,
    inline_fonts: HashMap<usize, Rc<TextFont>>,
    /// The AcroForm asks viewers to draw fields from their values.
    need_appearances: bool,
    glyphs: Vec<Glyph>,
}

impl<'a> Reader<'a> {
    fn new(doc: &'a Document) -> Self {
        let need_appearances = doc
            .catalog()
            .ok()
            .and_then(|c| get(doc, c, b"AcroForm"))
            .and_then(|a| a.as_dict().ok())
            .and_then(|a| get(doc, a, b"NeedAppearances"))
            .and_then(|o| o.as_bool().ok())
            .unwrap_or(false);
        Reader {
            doc,
            fonts: HashMap::new(),
            inline_fonts: HashMap::new(),
            need_appearances,
            glyphs: Vec::new(),
        }
    }

    fn page(&mut self, page: ObjectId) -> Result<String, String> {
        let content = self
            .doc
            .get_page_content_with_limit(page, MAX_STREAM_BYTES)
            .map_err(|e| format!("its content cannot be read: {e}"))?;
        let resources = inherited(self.doc, page, b"Resources").and_then(|r| r.as_dict().ok());
        let mut out = Extractor::default();
        let mut run = Run {
            forms: Vec::new(),
            budget: MAX_OPS_PER_PAGE,
        };
        self.run(&mut out, &mut run, &content, resources, IDENTITY, TextState::default());
        self.annotations(&mut out, &mut run, page);
        Ok(out.finish())
    }

    /// The font a resource dictionary names, read once per document.
    fn font(&mut self, resources: Option<&Dictionary>, name: &[u8]) -> Option<Rc<TextFont>> {
        let doc = self.doc;
        let fonts = get(doc, resources?, b"Font")?.as_dict().ok()?;
        match fonts.get(name).ok()? {
            Object::Reference(id) => {
                if let Some(f) = self.fonts.get(id) {
                    return Some(f.clone());
                }
                let dict = doc.get_dictionary(*id).ok()?;
                let font = Rc::new(TextFont::new(doc, dict));
                self.fonts.insert(*id, font.clone());
                Some(font)
            }
            // A font written inline has no id; the dictionary's address in
            // the (unchanging) document names it as well.
            Object::Dictionary(d) => {
                let key = std::ptr::from_ref(d) as usize;
                if let Some(f) = self.inline_fonts.get(&key) {
                    return Some(f.clone());
                }
                let font = Rc::new(TextFont::new(doc, d));
                self.inline_fonts.insert(key, font.clone());
                Some(font)
            }
            _ => None,
        }
    }

    fn run(
        &mut self,
        out: &mut Extractor,
        run: &mut Run,
        content: &[u8],
        resources: Option<&Dictionary>,
        ctm0: Matrix,
        mut ts: TextState,
    ) {
        let mut ctm = ctm0;
        let mut stack: Vec<Matrix> = Vec::new();
        let mut lexer = Lexer::new(content);
        let mut operands = Vec::new();
        while let Some(op) = lexer.next_op(&mut operands) {
            if run.budget == 0 {
                return;
            }
            run.budget -= 1;
            let nums: Vec<f64> = operands.iter().filter_map(Operand::number).collect();
            match op {
                b"q" if stack.len() < 1024 => stack.push(ctm),
                b"Q" => ctm = stack.pop().unwrap_or(ctm0),
                b"cm" if nums.len() == 6 => {
                    ctm = mul(&[nums[0], nums[1], nums[2], nums[3], nums[4], nums[5]], &ctm);
                }
                b"BT" => {
                    ts.tm = IDENTITY;
                    ts.tlm = IDENTITY;
                }
                b"Tf" => {
                    ts.font = match operands.first() {
                        Some(Operand::Name(name)) => self.font(resources, name),
                        _ => None,
                    };
                    ts.size = nums.last().copied().unwrap_or(0.0);
                }
                b"TL" => ts.leading = nums.first().copied().unwrap_or(0.0),
                b"Tc" => ts.char_spacing = nums.first().copied().unwrap_or(0.0),
                b"Tw" => ts.word_spacing = nums.first().copied().unwrap_or(0.0),
                b"Tz" => ts.scale = nums.first().copied().unwrap_or(100.0) / 100.0,
                b"Ts" => ts.rise = nums.first().copied().unwrap_or(0.0),
                b"Td" if nums.len() == 2 => move_line(&mut ts, nums[0], nums[1]),
                b"TD" if nums.len() == 2 => {
                    ts.leading = -nums[1];
                    move_line(&mut ts, nums[0], nums[1]);
                }
                b"Tm" if nums.len() == 6 => {
                    ts.tlm = [nums[0], nums[1], nums[2], nums[3], nums[4], nums[5]];
                    ts.tm = ts.tlm;
                }
                b"T*" => next_line(&mut ts),
                b"Tj" | b"'" | b"\"" => {
                    if op == b"'" {
                        next_line(&mut ts);
                    }
                    if op == b"\"" {
                        if nums.len() >= 2 {
                            ts.word_spacing = nums[0];
                            ts.char_spacing = nums[1];
                        }
                        next_line(&mut ts);
                    }
                    if let Some(Operand::String(bytes)) = operands.last() {
                        self.show(out, &mut ts, &ctm, bytes);
                    }
                }
                b"TJ" => {
                    let Some(Operand::Array(items)) = operands.first() else {
                        continue;
                    };
                    for item in items {
                        match item {
                            Operand::String(bytes) => self.show(out, &mut ts, &ctm, bytes),
                            Operand::Number(n) => {
                                let tx = -n / 1000.0 * ts.size * ts.scale;
                                ts.tm = mul(&translate(tx, 0.0), &ts.tm);
                            }
                            _ => {}
                        }
                    }
                }
                b"Do" => {
                    let Some(Operand::Name(name)) = operands.first() else {
                        continue;
                    };
                    let doc = self.doc;
                    let Some(Object::Reference(id)) = resources
                        .and_then(|r| get(doc, r, b"XObject"))
                        .and_then(|o| o.as_dict().ok())
                        .and_then(|x| x.get(name).ok())
                    else {
                        continue;
                    };
                    let Ok(Object::Stream(stream)) = doc.get_object(*id) else {
                        continue;
                    };
                    if stream.dict.get(b"Subtype").and_then(Object::as_name).ok() != Some(b"Form") {
                        continue;
                    }
                    let matrix = matrix_of(doc, get(doc, &stream.dict, b"Matrix")).unwrap_or(IDENTITY);
                    self.form(out, run, *id, stream, resources, mul(&matrix, &ctm), &ts);
                }
                _ => {}
            }
        }
    }

    /// Follows a form XObject: its content, in its own resources (or its
    /// parent's), unless it is already being shown (a loop) or too deep.
    #[expect(
        clippy::too_many_arguments,
        reason = "the interpreter's state, passed down one level"
    )]
    fn form(
        &mut self,
        out: &mut Extractor,
        run: &mut Run,
        id: ObjectId,
        stream: &Stream,
        resources: Option<&Dictionary>,
        ctm: Matrix,
        ts: &TextState,
    ) {
        if run.forms.len() >= MAX_FORM_DEPTH || run.forms.contains(&id) {
            return;
        }
        let Ok(content) = stream.decompressed_content_with_limit(MAX_STREAM_BYTES).or_else(|e| {
            if stream.dict.has(b"Filter") {
                Err(e)
            } else {
                Ok(stream.content.clone())
            }
        }) else {
            return;
        };
        let own = get(self.doc, &stream.dict, b"Resources").and_then(|o| o.as_dict().ok());
        run.forms.push(id);
        self.run(out, run, &content, own.or(resources), ctm, ts.clone());
        run.forms.pop();
    }

    /// Annotations' appearances, as a viewer draws them over the page; a
    /// form field whose appearance is missing (or which the form asks to be
    /// redrawn) shows its value.
    fn annotations(&mut self, out: &mut Extractor, run: &mut Run, page: ObjectId) {
        let doc = self.doc;
        let Some(annots) = doc
            .get_dictionary(page)
            .ok()
            .and_then(|p| get(doc, p, b"Annots"))
            .and_then(|a| a.as_array().ok())
        else {
            return;
        };
        for annot in annots.iter().take(10_000) {
            let Ok(dict) = deref(doc, annot).as_dict() else {
                continue;
            };
            let flags = get(doc, dict, b"F").and_then(|o| o.as_i64().ok()).unwrap_or(0);
            if flags & 2 != 0 || get(doc, dict, b"Subtype").and_then(|o| o.as_name().ok()) == Some(b"Popup") {
                continue;
            }
            let appearance = appearance(doc, dict);
            let value = field_value(doc, dict);
            if let Some(value) = value.filter(|_| appearance.is_none() || self.need_appearances) {
                out.add_lines(&value);
                continue;
            }
            let Some((id, stream)) = appearance else { continue };
            let Some(rect) = get(doc, dict, b"Rect").and_then(|r| rect_of(doc, r)) else {
                continue;
            };
            let matrix = matrix_of(doc, get(doc, &stream.dict, b"Matrix")).unwrap_or(IDENTITY);
            let bbox = get(doc, &stream.dict, b"BBox")
                .and_then(|r| rect_of(doc, r))
                .unwrap_or(rect);
            self.form(
                out,
                run,
                id,
                stream,
                None,
                mul(&matrix, &fit(&matrix, bbox, rect)),
                &TextState::default(),
            );
        }
    }

    fn show(&mut self, out: &mut Extractor, ts: &mut TextState, ctm: &Matrix, bytes: &[u8]) {
        let mut glyphs = std::mem::take(&mut self.glyphs);
        match &ts.font {
            Some(font) => font.glyphs(bytes, &mut glyphs),
            // No font: bytes as Latin-1, half an em each.
            None => {
                glyphs.clear();
                glyphs.extend(bytes.iter().map(|&b| Glyph {
                    text: char::from(b).to_string(),
                    width: 0.5,
                    is_space: b == b' ',
                }));
            }
        }
        for glyph in &glyphs {
            let start = mul(&mul(&translate(0.0, ts.rise), &ts.tm), ctm);
            // The glyph ends at its width; character and word spacing are
            // gaps after it, as poppler counts them.
            let width = glyph.width * ts.size * ts.scale;
            let end = mul(&mul(&translate(width, ts.rise), &ts.tm), ctm);
            let word = if glyph.is_space { ts.word_spacing } else { 0.0 };
            let advance = width + (ts.char_spacing + word) * ts.scale;
            ts.tm = mul(&translate(advance, 0.0), &ts.tm);
            out.glyph(&glyph.text, &start, &end, ts.size);
        }
        self.glyphs = glyphs;
    }
}

/// What one page's reading is allowed and where it is.
struct Run {
    /// The form XObjects being shown, outermost first.
    forms: Vec<ObjectId>,
    /// Operators left to read.
    budget: usize,
}

/// An annotation's normal appearance (the one for its state, if it has several).
fn appearance<'a>(doc: &'a Document, annot: &'a Dictionary) -> Option<(ObjectId, &'a Stream)> {
    let normal = get(doc, annot, b"AP")?.as_dict().ok()?.get(b"N").ok()?;
    let normal = match deref(doc, normal) {
        Object::Dictionary(states) => states.get(get(doc, annot, b"AS")?.as_name().ok()?).ok()?,
        _ => normal,
    };
    let id = normal.as_reference().ok()?;
    Some((id, doc.get_object(id).ok()?.as_stream().ok()?))
}

/// A text or choice field's value, looked up its parents.
fn field_value(doc: &Document, annot: &Dictionary) -> Option<String> {
    let field = |key: &[u8]| {
        let mut dict = annot;
        for _ in 0..32 {
            if let Some(v) = get(doc, dict, key) {
                return Some(v);
            }
            dict = get(doc, dict, b"Parent")?.as_dict().ok()?;
        }
        None
    };
    if !matches!(field(b"FT")?.as_name().ok()?, b"Tx" | b"Ch") {
        return None;
    }
    let flags = field(b"Ff").and_then(|o| o.as_i64().ok()).unwrap_or(0);
    let is_list = field(b"FT")?.as_name().ok()? == b"Ch" && flags & (1 << 17) == 0;
    if let (true, Some(Object::Array(options))) = (is_list, field(b"Opt")) {
        // A list box shows all its options.
        let shown: Vec<String> = options
            .iter()
            .filter_map(|o| match deref(doc, o) {
                Object::Array(pair) => pair.last().and_then(|o| text_string(deref(doc, o))),
                o => text_string(o),
            })
            .collect();
        return (!shown.is_empty()).then(|| shown.join("\n"));
    }
    let text = match field(b"V")? {
        Object::Array(items) => items
            .iter()
            .filter_map(|o| text_string(deref(doc, o)))
            .collect::<Vec<_>>()
            .join("\n"),
        v => text_string(v)?,
    };
    (!text.trim().is_empty()).then_some(text)
}

fn rect_of(doc: &Document, o: &Object) -> Option<[f64; 4]> {
    let n: Vec<f64> = o
        .as_array()
        .ok()?
        .iter()
        .filter_map(|o| number(deref(doc, o)))
        .collect();
    (n.len() == 4).then(|| [n[0].min(n[2]), n[1].min(n[3]), n[0].max(n[2]), n[1].max(n[3])])
}

/// The matrix that puts an appearance's box, transformed by its own
/// matrix, onto the annotation's rectangle (PDF 32000 12.5.5).
fn fit(matrix: &Matrix, bbox: [f64; 4], rect: [f64; 4]) -> Matrix {
    let corners = [
        (bbox[0], bbox[1]),
        (bbox[2], bbox[1]),
        (bbox[0], bbox[3]),
        (bbox[2], bbox[3]),
    ]
    .map(|(x, y)| {
        (
            x * matrix[0] + y * matrix[2] + matrix[4],
            x * matrix[1] + y * matrix[3] + matrix[5],
        )
    });
    let (x0, x1) = corners
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), c| (a.min(c.0), b.max(c.0)));
    let (y0, y1) = corners
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), c| (a.min(c.1), b.max(c.1)));
    let sx = if x1 > x0 { (rect[2] - rect[0]) / (x1 - x0) } else { 1.0 };
    let sy = if y1 > y0 { (rect[3] - rect[1]) / (y1 - y0) } else { 1.0 };
    [sx, 0.0, 0.0, sy, rect[0] - x0 * sx, rect[1] - y0 * sy]
}

type Matrix = [f64; 6];
const IDENTITY: Matrix = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];

/// `a × b` in PDF's row-vector convention.
fn mul(a: &Matrix, b: &Matrix) -> Matrix {
    [
        a[0] * b[0] + a[1] * b[2],
        a[0] * b[1] + a[1] * b[3],
        a[2] * b[0] + a[3] * b[2],
        a[2] * b[1] + a[3] * b[3],
        a[4] * b[0] + a[5] * b[2] + b[4],
        a[4] * b[1] + a[5] * b[3] + b[5],
    ]
}

fn translate(tx: f64, ty: f64) -> Matrix {
    [1.0, 0.0, 0.0, 1.0, tx, ty]
}

#[derive(Clone)]
struct TextState {
    tm: Matrix,
    tlm: Matrix,
    font: Option<Rc<TextFont>>,
    size: f64,
    leading: f64,
    char_spacing: f64,
    word_spacing: f64,
    scale: f64,
    rise: f64,
}

impl Default for TextState {
    fn default() -> Self {
        TextState {
            tm: IDENTITY,
            tlm: IDENTITY,
            font: None,
            size: 0.0,
            leading: 0.0,
            char_spacing: 0.0,
            word_spacing: 0.0,
            scale: 1.0,
            rise: 0.0,
        }
    }
}

fn next_line(ts: &mut TextState) {
    let leading = ts.leading;
    move_line(ts, 0.0, -leading);
}

fn move_line(ts: &mut TextState, tx: f64, ty: f64) {
    ts.tlm = mul(&translate(tx, ty), &ts.tlm);
    ts.tm = ts.tlm;
}

/// The lines found so far, the glyphs of the current one and where the last ended.
#[derive(Default)]
struct Extractor {
    lines: Vec<String>,
    line: Vec<Piece>,
    last: Option<Last>,
}

/// A glyph's text on the current line and the gap before it, in font sizes.
struct Piece {
    text: String,
    gap: f64,
}

struct Last {
    /// Where the last glyph ended, along and across its writing direction.
    along: f64,
    across: f64,
    /// The writing direction (a unit vector in device space).
    dir: (f64, f64),
    size: f64,
}

/// A gap wider than this share of the font size separates words (poppler's rule)…
const WORD_GAP: f64 = 0.1;
/// …unless every gap on the line is wider, by less than this: letter-spaced text.
const LETTER_SPACING: f64 = 0.3;

impl Extractor {
    fn finish(mut self) -> String {
        self.end_line();
        self.lines.join("\n")
    }

    /// The gap from which a line's glyphs are apart as words. Letter-spaced
    /// text (OCR layers set letter by letter, headings in capitals) has
    /// every glyph apart by more than the usual tenth of the font size; there
    /// the words are apart by clearly more than the letters, or by spaces.
    fn word_gap(&self) -> f64 {
        let gaps: Vec<f64> = self
            .line
            .windows(2)
            .filter(|w| w[0].text != " " && w[1].text != " ")
            .map(|w| w[1].gap)
            .collect();
        let min = gaps.iter().copied().fold(f64::MAX, f64::min);
        let max = gaps.iter().copied().fold(f64::MIN, f64::max);
        if gaps.len() < 3 || min <= WORD_GAP || min >= LETTER_SPACING {
            WORD_GAP
        } else if max - min < WORD_GAP {
            f64::MAX
        } else {
            (min + max) / 2.0
        }
    }

    fn end_line(&mut self) {
        let threshold = self.word_gap();
        let mut line = String::new();
        for piece in std::mem::take(&mut self.line) {
            if piece.gap > threshold && !line.is_empty() && !line.ends_with(' ') && !piece.text.starts_with(' ') {
                line.push(' ');
            }
            line.push_str(&piece.text);
        }
        let trimmed = line.trim_end();
        if !trimmed.is_empty() {
            self.lines.push(logical_order(trimmed));
        }
    }

    /// Text that has no place on the page (a field's value): lines of its own.
    fn add_lines(&mut self, text: &str) {
        self.end_line();
        for line in text.lines() {
            self.line.push(Piece {
                text: line.to_owned(),
                gap: 0.0,
            });
            self.end_line();
        }
        self.last = None;
    }

    /// A glyph's text, from `start` to `end` (text-space origin mapped to
    /// device space), at font size `size` in text space.
    fn glyph(&mut self, text: &str, start: &Matrix, end: &Matrix, size: f64) {
        let (dx, dy) = (end[4] - start[4], end[5] - start[5]);
        let length = (dx * dx + dy * dy).sqrt();
        let dir = match &self.last {
            _ if length > 1e-9 => (dx / length, dy / length),
            Some(last) => last.dir,
            None => {
                let l = (start[0] * start[0] + start[1] * start[1]).sqrt().max(1e-9);
                (start[0] / l, start[1] / l)
            }
        };
        // The font size in device space, along the text's vertical axis.
        let size = (size * (start[2] * start[2] + start[3] * start[3]).sqrt())
            .abs()
            .max(1.0);
        let project = |x: f64, y: f64, d: (f64, f64)| (x * d.0 + y * d.1, -x * d.1 + y * d.0);
        let text: String = text
            .chars()
            .map(|c| if c == '\u{a0}' || c == '\t' { ' ' } else { c })
            .filter(|c| !c.is_control() && *c != '\u{fffd}' && *c != '\u{feff}')
            .collect();
        let mut gap = 0.0;
        if let Some(last) = &self.last {
            let (along, across) = project(start[4], start[5], last.dir);
            let size_ref = size.min(last.size);
            let turned = dir.0 * last.dir.0 + dir.1 * last.dir.1 < 0.9;
            if turned || (across - last.across).abs() > size_ref * 0.5 || along < last.along - size_ref * 4.0 {
                self.end_line();
            } else if along < last.along - size_ref * 1.5 {
                // Well back on the same line: another word drawn over this one's end.
                gap = f64::MAX;
            } else {
                gap = (along - last.along) / size_ref;
            }
        }
        let space = text.trim().is_empty();
        let after_space = self.line.last().is_none_or(|p| p.text == " ");
        if !(text.is_empty() || space && after_space) {
            // Spaces only separate; leading and repeated ones are dropped.
            let text = if space { " ".to_owned() } else { text };
            self.line.push(Piece { text, gap });
        }
        let (along, _) = project(end[4], end[5], dir);
        let (_, across) = project(start[4], start[5], dir);
        self.last = Some(Last {
            along,
            across,
            dir,
            size,
        });
    }
}

fn is_rtl(c: char) -> bool {
    matches!(c as u32, 0x0590..=0x08FF | 0xFB1D..=0xFDFF | 0xFE70..=0xFEFF)
}

/// Right-to-left script is drawn left to right in visual order; runs of it
/// are turned back into reading order, as poppler gives them.
fn logical_order(line: &str) -> String {
    if !line.chars().any(is_rtl) {
        return line.to_owned();
    }
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < chars.len() {
        if !is_rtl(chars[i]) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // A run: RTL characters and the spaces and marks between them.
        let mut j = i;
        let mut end = i;
        while j < chars.len() && (is_rtl(chars[j]) || chars[j] == ' ' || !chars[j].is_alphanumeric()) {
            if is_rtl(chars[j]) {
                end = j + 1;
            }
            j += 1;
        }
        out.extend(chars[i..end].iter().rev());
        i = end;
    }
    out
}
