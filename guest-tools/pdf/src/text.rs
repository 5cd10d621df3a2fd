//! Text per page with lines kept apart.
//!
//! lopdf's own extraction concatenates every string a page shows. Here the
//! content stream is interpreted far enough to know where each string lands:
//! the text and line matrices (`Td`, `TD`, `T*`, `Tm`, `'`, `"`), the
//! current transformation (`cm`, `q`, `Q`), glyph advances from the fonts'
//! widths, and `TJ` adjustments. A string that starts on another baseline
//! begins a new line; one that starts after a gap on the same baseline gets
//! a space. Strings are decoded through the font's ToUnicode CMap when it
//! has one (lopdf's decoder), else its encoding. Form XObjects (`Do`) are
//! followed, a few levels deep.

use std::collections::{BTreeMap, HashSet};

use lopdf::content::Content;
use lopdf::{Dictionary, Document, Encoding, Object, ObjectId};

use crate::load::{MAX_STREAM_BYTES, number};
use crate::{PdfError, open};

/// How deep form XObjects are followed (a form may show another form).
const MAX_FORM_DEPTH: usize = 8;

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
    let ids = doc.get_pages();
    pages
        .iter()
        .map(|n| {
            let id = ids.get(n).ok_or_else(|| format!("there is no page {n}"))?;
            page_text(doc, *id)
        })
        .collect()
}

fn page_text(doc: &Document, page: ObjectId) -> Result<String, String> {
    let content = doc
        .get_page_content_with_limit(page, MAX_STREAM_BYTES)
        .map_err(|e| format!("its content cannot be read: {e}"))?;
    let fonts: Vec<(Vec<u8>, Dictionary)> = doc
        .get_page_fonts(page)
        .map(|f| f.into_iter().map(|(k, d)| (k, d.clone())).collect())
        .unwrap_or_default();
    let resources = page_resources(doc, page);
    let mut out = Extractor::default();
    let mut seen = HashSet::new();
    out.run(doc, &content, &fonts, resources.as_ref(), IDENTITY, 0, &mut seen)?;
    Ok(out.finish())
}

/// The page's own or inherited Resources dictionary.
fn page_resources(doc: &Document, page: ObjectId) -> Option<Dictionary> {
    let mut dict = doc.get_dictionary(page).ok()?;
    for _ in 0..64 {
        if let Ok(r) = dict.get(b"Resources") {
            return doc.dereference(r).ok()?.1.as_dict().ok().cloned();
        }
        let parent = dict.get(b"Parent").ok()?.as_reference().ok()?;
        dict = doc.get_dictionary(parent).ok()?;
    }
    None
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

/// How a font's codes decode and how wide each is.
struct FontInfo<'a> {
    encoding: Option<Encoding<'a>>,
    /// A simple font's ToUnicode CMap, tried before its encoding code by code.
    to_unicode: Option<Encoding<'a>>,
    two_byte: bool,
    widths: Widths,
}

enum Widths {
    Simple { first: u32, widths: Vec<f64>, missing: f64 },
    Cid { default: f64, widths: BTreeMap<u32, f64> },
}

impl Widths {
    fn of(&self, code: u32) -> f64 {
        match self {
            Widths::Simple { first, widths, missing } => code
                .checked_sub(*first)
                .and_then(|i| widths.get(i as usize))
                .copied()
                .filter(|w| *w > 0.0)
                .unwrap_or(*missing),
            Widths::Cid { default, widths } => widths.get(&code).copied().unwrap_or(*default),
        }
    }
}

fn deref<'a>(doc: &'a Document, o: &'a Object) -> &'a Object {
    doc.dereference(o).map(|(_, o)| o).unwrap_or(o)
}

fn font_info<'a>(doc: &'a Document, dict: &'a Dictionary) -> FontInfo<'a> {
    let two_byte = dict.get(b"Subtype").and_then(Object::as_name).ok() == Some(b"Type0");
    let encoding = dict.get_font_encoding_with_limit(doc, MAX_STREAM_BYTES).ok();
    let widths = if two_byte {
        cid_widths(doc, dict)
    } else {
        simple_widths(doc, dict)
    };
    FontInfo {
        encoding,
        to_unicode: None,
        two_byte,
        widths,
    }
}

fn simple_widths(doc: &Document, dict: &Dictionary) -> Widths {
    let first = dict
        .get(b"FirstChar")
        .ok()
        .and_then(|o| number(deref(doc, o)))
        .unwrap_or(0.0)
        .max(0.0) as u32;
    let widths: Vec<f64> = dict
        .get(b"Widths")
        .ok()
        .and_then(|o| deref(doc, o).as_array().ok())
        .map(|a| {
            a.iter()
                .take(65_536)
                .map(|w| number(deref(doc, w)).unwrap_or(0.0))
                .collect()
        })
        .unwrap_or_default();
    let missing = dict
        .get(b"FontDescriptor")
        .ok()
        .and_then(|o| deref(doc, o).as_dict().ok())
        .and_then(|d| d.get(b"MissingWidth").ok())
        .and_then(|o| number(deref(doc, o)))
        .filter(|w| *w > 0.0)
        .unwrap_or(500.0);
    Widths::Simple { first, widths, missing }
}

fn cid_widths(doc: &Document, dict: &Dictionary) -> Widths {
    let descendant = dict
        .get(b"DescendantFonts")
        .ok()
        .and_then(|o| deref(doc, o).as_array().ok())
        .and_then(|a| a.first())
        .and_then(|o| deref(doc, o).as_dict().ok());
    let default = descendant
        .and_then(|d| d.get(b"DW").ok())
        .and_then(|o| number(deref(doc, o)))
        .unwrap_or(1000.0);
    let mut widths = BTreeMap::new();
    let w = descendant
        .and_then(|d| d.get(b"W").ok())
        .and_then(|o| deref(doc, o).as_array().ok());
    if let Some(w) = w {
        let mut i = 0;
        while i < w.len() && widths.len() < 65_536 {
            let Some(first) = number(deref(doc, &w[i])) else { break };
            let first = first.max(0.0) as u32;
            match w.get(i + 1).map(|o| deref(doc, o)) {
                Some(Object::Array(list)) => {
                    for (k, v) in list.iter().take(65_536).enumerate() {
                        widths.insert(first + k as u32, number(deref(doc, v)).unwrap_or(default));
                    }
                    i += 2;
                }
                Some(last) => {
                    let (Some(last), Some(value)) = (number(last), w.get(i + 2).and_then(|o| number(deref(doc, o))))
                    else {
                        break;
                    };
                    let last = (last.max(0.0) as u32).min(first.saturating_add(65_536));
                    for code in first..=last {
                        widths.insert(code, value);
                    }
                    i += 3;
                }
                None => break,
            }
        }
    }
    Widths::Cid { default, widths }
}

/// The text state and the lines found so far.
#[derive(Default)]
struct Extractor {
    lines: Vec<String>,
    line: String,
    /// Where the last string ended (device space) and its baseline, and its size.
    last: Option<(f64, f64, f64)>,
}

struct TextState {
    tm: Matrix,
    tlm: Matrix,
    font: Option<Vec<u8>>,
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

impl Extractor {
    fn finish(mut self) -> String {
        self.end_line();
        self.lines.join("\n")
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        let trimmed = line.trim_end();
        if !trimmed.is_empty() {
            self.lines.push(trimmed.to_owned());
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        doc: &Document,
        content: &[u8],
        fonts: &[(Vec<u8>, Dictionary)],
        resources: Option<&Dictionary>,
        ctm0: Matrix,
        depth: usize,
        seen: &mut HashSet<ObjectId>,
    ) -> Result<(), String> {
        let content = Content::decode(content).map_err(|e| format!("its content stream cannot be parsed: {e}"))?;
        // A ToUnicode CMap says what a font's codes mean better than its
        // encoding's glyph names, so a simple font that has one is read
        // through it, falling back to its encoding for codes it leaves out.
        let unicode_only: Vec<Option<Dictionary>> = fonts
            .iter()
            .map(|(_, d)| {
                let simple = d.get(b"Subtype").and_then(Object::as_name).ok() != Some(b"Type0");
                (simple && d.has(b"ToUnicode") && d.has(b"Encoding")).then(|| {
                    let mut d = d.clone();
                    d.remove(b"Encoding");
                    d
                })
            })
            .collect();
        let infos: Vec<(&[u8], FontInfo<'_>)> = fonts
            .iter()
            .zip(&unicode_only)
            .map(|((k, d), u)| {
                let mut info = font_info(doc, d);
                info.to_unicode = u
                    .as_ref()
                    .and_then(|u| u.get_font_encoding_with_limit(doc, MAX_STREAM_BYTES).ok());
                (k.as_slice(), info)
            })
            .collect();
        let mut ctm = ctm0;
        let mut stack: Vec<Matrix> = Vec::new();
        let mut ts = TextState::default();
        for op in &content.operations {
            let nums: Vec<f64> = op.operands.iter().filter_map(number).collect();
            match op.operator.as_str() {
                "q" if stack.len() < 1024 => stack.push(ctm),
                "Q" => ctm = stack.pop().unwrap_or(ctm0),
                "cm" if nums.len() == 6 => {
                    ctm = mul(&[nums[0], nums[1], nums[2], nums[3], nums[4], nums[5]], &ctm);
                }
                "BT" => {
                    ts.tm = IDENTITY;
                    ts.tlm = IDENTITY;
                }
                "Tf" => {
                    ts.font = op.operands.first().and_then(|o| o.as_name().ok()).map(<[u8]>::to_vec);
                    ts.size = nums.last().copied().unwrap_or(0.0);
                }
                "TL" => ts.leading = nums.first().copied().unwrap_or(0.0),
                "Tc" => ts.char_spacing = nums.first().copied().unwrap_or(0.0),
                "Tw" => ts.word_spacing = nums.first().copied().unwrap_or(0.0),
                "Tz" => ts.scale = nums.first().copied().unwrap_or(100.0) / 100.0,
                "Ts" => ts.rise = nums.first().copied().unwrap_or(0.0),
                "Td" if nums.len() == 2 => move_line(&mut ts, nums[0], nums[1]),
                "TD" if nums.len() == 2 => {
                    ts.leading = -nums[1];
                    move_line(&mut ts, nums[0], nums[1]);
                }
                "Tm" if nums.len() == 6 => {
                    ts.tlm = [nums[0], nums[1], nums[2], nums[3], nums[4], nums[5]];
                    ts.tm = ts.tlm;
                }
                "T*" => next_line(&mut ts),
                "Tj" | "'" | "\"" => {
                    if op.operator == "'" {
                        next_line(&mut ts);
                    }
                    if op.operator == "\"" {
                        if nums.len() >= 2 {
                            ts.word_spacing = nums[0];
                            ts.char_spacing = nums[1];
                        }
                        next_line(&mut ts);
                    }
                    if let Some(Ok(bytes)) = op.operands.last().map(Object::as_str) {
                        self.show(&mut ts, &ctm, &infos, bytes);
                    }
                }
                "TJ" => {
                    let Some(Ok(items)) = op.operands.first().map(Object::as_array) else {
                        continue;
                    };
                    for item in items {
                        match item {
                            Object::String(bytes, _) => self.show(&mut ts, &ctm, &infos, bytes),
                            other => {
                                if let Some(n) = number(other) {
                                    let tx = -n / 1000.0 * ts.size * ts.scale;
                                    ts.tm = mul(&translate(tx, 0.0), &ts.tm);
                                }
                            }
                        }
                    }
                }
                "Do" if depth < MAX_FORM_DEPTH => {
                    let Some(Ok(name)) = op.operands.first().map(Object::as_name) else {
                        continue;
                    };
                    self.form(doc, name, resources, fonts, &ctm, depth, seen)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Follows a form XObject: its content, in its own matrix and resources.
    #[allow(clippy::too_many_arguments)]
    fn form(
        &mut self,
        doc: &Document,
        name: &[u8],
        resources: Option<&Dictionary>,
        parent_fonts: &[(Vec<u8>, Dictionary)],
        ctm: &Matrix,
        depth: usize,
        seen: &mut HashSet<ObjectId>,
    ) -> Result<(), String> {
        let Some(xobjects) = resources
            .and_then(|r| r.get(b"XObject").ok())
            .and_then(|o| deref(doc, o).as_dict().ok())
        else {
            return Ok(());
        };
        let Ok(Object::Reference(id)) = xobjects.get(name) else {
            return Ok(());
        };
        if !seen.insert(*id) {
            return Ok(());
        }
        let Ok(Object::Stream(stream)) = doc.get_object(*id) else {
            return Ok(());
        };
        if stream.dict.get(b"Subtype").and_then(Object::as_name).ok() != Some(b"Form") {
            return Ok(());
        }
        let Ok(content) = stream.get_plain_content() else {
            return Ok(());
        };
        if content.len() > MAX_STREAM_BYTES {
            return Ok(());
        }
        let matrix = stream
            .dict
            .get(b"Matrix")
            .ok()
            .and_then(|o| deref(doc, o).as_array().ok())
            .map(|a| a.iter().filter_map(|o| number(deref(doc, o))).collect::<Vec<_>>())
            .filter(|m| m.len() == 6)
            .map(|m| [m[0], m[1], m[2], m[3], m[4], m[5]])
            .unwrap_or(IDENTITY);
        let own = stream
            .dict
            .get(b"Resources")
            .ok()
            .and_then(|o| deref(doc, o).as_dict().ok())
            .cloned();
        let fonts: Vec<(Vec<u8>, Dictionary)> = match own
            .as_ref()
            .and_then(|r| r.get(b"Font").ok())
            .and_then(|o| deref(doc, o).as_dict().ok())
        {
            Some(f) => f
                .iter()
                .filter_map(|(k, v)| deref(doc, v).as_dict().ok().map(|d| (k.clone(), d.clone())))
                .collect(),
            None => parent_fonts.to_vec(),
        };
        let res = own.as_ref().or(resources);
        self.run(doc, &content, &fonts, res, mul(&matrix, ctm), depth + 1, seen)
    }

    fn show(&mut self, ts: &mut TextState, ctm: &Matrix, fonts: &[(&[u8], FontInfo<'_>)], bytes: &[u8]) {
        let font = ts
            .font
            .as_deref()
            .and_then(|name| fonts.iter().find(|(k, _)| *k == name))
            .map(|(_, f)| f);
        let text = match font.and_then(|f| f.encoding.as_ref()) {
            Some(enc) => match font.and_then(|f| f.to_unicode.as_ref()) {
                Some(cmap) => bytes
                    .iter()
                    .map(|b| {
                        let mapped = cmap.bytes_to_string(&[*b]).unwrap_or_default();
                        if mapped.is_empty() || mapped.contains('\u{fffd}') {
                            enc.bytes_to_string(&[*b]).unwrap_or_default()
                        } else {
                            mapped
                        }
                    })
                    .collect(),
                None => enc.bytes_to_string(bytes).unwrap_or_default(),
            },
            None if font.is_some_and(|f| f.two_byte) => String::new(),
            None => bytes.iter().map(|&b| char::from(b)).collect(),
        };
        let text: String = text
            .chars()
            .map(|c| if c == '\u{a0}' || c == '\t' { ' ' } else { c })
            .filter(|c| !c.is_control() && *c != '\u{fffd}' && *c != '\u{feff}')
            .collect();
        let m = mul(&mul(&translate(0.0, ts.rise), &ts.tm), ctm);
        let (x, y) = (m[4], m[5]);
        // The font size in device space, along the text's vertical axis.
        let size = (ts.size * (m[2] * m[2] + m[3] * m[3]).sqrt()).abs().max(1.0);
        if let Some((last_x, last_y, last_size)) = self.last {
            let size_ref = size.min(last_size);
            if (y - last_y).abs() > size_ref * 0.5 || x < last_x - size_ref * 4.0 {
                self.end_line();
            } else if x - last_x > size_ref * 0.15
                && !self.line.ends_with(' ')
                && !text.starts_with(' ')
                && !self.line.is_empty()
            {
                self.line.push(' ');
            }
        }
        self.line.push_str(&text);
        // Advance the text matrix by the string's width.
        let mut advance = 0.0;
        let codes: Vec<u32> = match font {
            Some(f) if f.two_byte => bytes
                .chunks(2)
                .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
                .collect(),
            _ => bytes.iter().map(|&b| u32::from(b)).collect(),
        };
        for code in &codes {
            let w = font.map_or(500.0, |f| f.widths.of(*code));
            let word = if *code == 32 && !font.is_some_and(|f| f.two_byte) {
                ts.word_spacing
            } else {
                0.0
            };
            advance += (w / 1000.0 * ts.size + ts.char_spacing + word) * ts.scale;
        }
        ts.tm = mul(&translate(advance, 0.0), &ts.tm);
        let end = mul(&mul(&translate(0.0, ts.rise), &ts.tm), ctm);
        self.last = Some((end[4], y, size));
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
