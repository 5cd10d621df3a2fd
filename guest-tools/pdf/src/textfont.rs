//! What a font's codes say, for reading text: how strings split into codes,
//! each code's text and its width.
//!
//! A code's text comes from, in order: the font's ToUnicode CMap; for a
//! simple font, its `/Differences` glyph names, then its base encoding
//! (named, or the embedded font program's own); for a composite font, a
//! predefined UCS-2/UTF-16 CMap, else the embedded TrueType or CFF font
//! (CID to glyph to its `cmap` or glyph names). Fonts are read once per
//! document and shared by every page that uses them.

use std::collections::{BTreeMap, HashMap};

use lopdf::{Dictionary, Document, Object};
use ttf_parser::{Face, GlyphId};

use crate::cmap::CMap;
use crate::glyphs::{BaseEncoding, unicode_of_name};
use crate::lexer::{Lexer, Operand};
use crate::load::{MAX_STREAM_BYTES, number};

pub(crate) struct TextFont {
    kind: Kind,
    to_unicode: Option<CMap>,
    widths: Widths,
    /// Glyph space to text space: 1/1000, or a Type 3 font's FontMatrix.
    scale: f64,
}

enum Kind {
    Simple(Box<[Option<String>; 256]>),
    Composite {
        /// An embedded encoding CMap (code lengths and CIDs); none is Identity.
        encoding: Option<CMap>,
        /// Codes are UTF-16 (`UniGB-UCS2-H` and its kin).
        unicode_codes: bool,
        /// Text by CID, read from the embedded font when there is no ToUnicode.
        by_cid: HashMap<u32, char>,
    },
}

/// One code of a shown string.
pub(crate) struct Glyph {
    pub text: String,
    /// Its advance in text space per unit of font size.
    pub width: f64,
    /// A single-byte code 32, to which word spacing applies.
    pub is_space: bool,
}

fn deref<'a>(doc: &'a Document, o: &'a Object) -> &'a Object {
    doc.dereference(o).map(|(_, o)| o).unwrap_or(o)
}

fn get<'a>(doc: &'a Document, dict: &'a Dictionary, key: &[u8]) -> Option<&'a Object> {
    dict.get(key).ok().map(|o| deref(doc, o))
}

fn stream_bytes(doc: &Document, dict: &Dictionary, key: &[u8]) -> Option<Vec<u8>> {
    let stream = get(doc, dict, key)?.as_stream().ok()?;
    stream
        .decompressed_content_with_limit(MAX_STREAM_BYTES)
        .ok()
        .or_else(|| {
            // An unfiltered stream has nothing to decompress.
            (!stream.dict.has(b"Filter")).then(|| stream.content.clone())
        })
}

impl TextFont {
    pub(crate) fn new(doc: &Document, dict: &Dictionary) -> TextFont {
        let subtype = get(doc, dict, b"Subtype").and_then(|o| o.as_name().ok());
        let to_unicode = stream_bytes(doc, dict, b"ToUnicode").map(|b| CMap::parse(&b));
        if subtype == Some(b"Type0") {
            return composite(doc, dict, to_unicode);
        }
        let scale = if subtype == Some(b"Type3") {
            get(doc, dict, b"FontMatrix")
                .and_then(|o| o.as_array().ok())
                .and_then(|a| a.first())
                .and_then(|o| number(deref(doc, o)))
                .filter(|s| s.is_finite() && *s != 0.0)
                .unwrap_or(0.001)
        } else {
            0.001
        };
        TextFont {
            kind: Kind::Simple(simple_codes(doc, dict)),
            to_unicode,
            widths: simple_widths(doc, dict),
            scale,
        }
    }

    /// Splits a shown string into codes and reads each.
    pub(crate) fn glyphs(&self, bytes: &[u8], out: &mut Vec<Glyph>) {
        out.clear();
        let mut rest = bytes;
        while !rest.is_empty() {
            let len = match &self.kind {
                Kind::Simple(_) => 1,
                // Without an embedded encoding CMap, codes take two bytes
                // (Identity-H and the predefined UCS-2 CMaps).
                Kind::Composite { encoding, .. } => match encoding {
                    Some(cmap) if cmap.has_codespace() => cmap.code_len(rest, 2),
                    _ => 2,
                },
            }
            .min(rest.len());
            let code = rest[..len].iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b));
            rest = &rest[len..];
            let text = self.text(code).unwrap_or_default();
            let cid = match &self.kind {
                Kind::Composite { encoding: Some(e), .. } => e.cid(code).unwrap_or(code),
                _ => code,
            };
            out.push(Glyph {
                text,
                width: self.widths.of(cid) * self.scale,
                is_space: len == 1 && code == 32,
            });
        }
    }

    fn text(&self, code: u32) -> Option<String> {
        if let Some(t) = self.to_unicode.as_ref().and_then(|m| m.text(code))
            && !t.is_empty()
            && !t.contains('\u{fffd}')
        {
            return Some(t);
        }
        match &self.kind {
            Kind::Simple(codes) => codes.get(code as usize)?.clone(),
            Kind::Composite {
                encoding,
                unicode_codes,
                by_cid,
            } => {
                if *unicode_codes {
                    return char::from_u32(code).map(String::from);
                }
                let cid = encoding.as_ref().and_then(|e| e.cid(code)).unwrap_or(code);
                by_cid.get(&cid).map(|c| c.to_string())
            }
        }
    }
}

fn composite(doc: &Document, dict: &Dictionary, to_unicode: Option<CMap>) -> TextFont {
    let descendant = get(doc, dict, b"DescendantFonts")
        .and_then(|o| o.as_array().ok())
        .and_then(|a| a.first())
        .and_then(|o| deref(doc, o).as_dict().ok());
    let (encoding, unicode_codes) = match get(doc, dict, b"Encoding") {
        Some(Object::Name(name)) => {
            let n = String::from_utf8_lossy(name);
            (
                None,
                n.starts_with("Uni") && (n.contains("UCS2") || n.contains("UTF16")),
            )
        }
        Some(Object::Stream(s)) => (
            s.decompressed_content_with_limit(MAX_STREAM_BYTES)
                .ok()
                .or_else(|| (!s.dict.has(b"Filter")).then(|| s.content.clone()))
                .map(|b| CMap::parse(&b)),
            false,
        ),
        _ => (None, false),
    };
    // Even with a ToUnicode map: subsetting tools write maps that leave out
    // codes the embedded font still knows.
    let by_cid = match (descendant, unicode_codes) {
        (Some(d), false) => text_by_cid(doc, d),
        _ => HashMap::new(),
    };
    TextFont {
        kind: Kind::Composite {
            encoding,
            unicode_codes,
            by_cid,
        },
        to_unicode,
        widths: descendant.map_or(
            Widths::Cid {
                default: 1000.0,
                widths: BTreeMap::new(),
            },
            |d| cid_widths(doc, d),
        ),
        scale: 0.001,
    }
}

/// Each glyph's text by the font program's own tables: a Unicode `cmap`
/// subtable, else its glyph names.
fn text_by_glyph(face: &Face<'_>) -> HashMap<u16, char> {
    let mut map = HashMap::new();
    if let Some(cmap) = face.tables().cmap {
        // Asked code point by code point over the planes text uses: a
        // subtable's own ranges may claim all 2^32 codes many times over.
        for sub in cmap.subtables.into_iter().filter(|s| s.is_unicode()) {
            for cp in 0..0x2_0000 {
                if let (Some(g), Some(c)) = (sub.glyph_index(cp), char::from_u32(cp)) {
                    map.entry(g.0).or_insert(c);
                }
            }
        }
    }
    for gid in 0..face.number_of_glyphs() {
        if map.contains_key(&gid) {
            continue;
        }
        if let Some(c) = face
            .glyph_name(GlyphId(gid))
            .and_then(|n| unicode_of_name(n.as_bytes()))
            .and_then(|s| s.chars().next())
        {
            map.insert(gid, c);
        }
    }
    map
}

/// A CID font without ToUnicode: CID to glyph (CIDToGIDMap, or the CFF's
/// charset), glyph to text (the embedded font's `cmap` or glyph names).
fn text_by_cid(doc: &Document, cid_font: &Dictionary) -> HashMap<u32, char> {
    let Some(descriptor) = get(doc, cid_font, b"FontDescriptor").and_then(|o| o.as_dict().ok()) else {
        return HashMap::new();
    };
    if let Some(data) =
        stream_bytes(doc, descriptor, b"FontFile2").or_else(|| stream_bytes(doc, descriptor, b"FontFile3"))
    {
        if let Ok(face) = Face::parse(&data, 0) {
            let by_glyph = text_by_glyph(&face);
            let cid_to_gid = stream_bytes(doc, cid_font, b"CIDToGIDMap");
            return match cid_to_gid {
                Some(map) => map
                    .chunks_exact(2)
                    .take(65_536)
                    .enumerate()
                    .filter_map(|(cid, g)| Some((cid as u32, *by_glyph.get(&u16::from_be_bytes([g[0], g[1]]))?)))
                    .collect(),
                None => by_glyph.into_iter().map(|(g, c)| (u32::from(g), c)).collect(),
            };
        }
        if let Some(cff) = ttf_parser::cff::Table::parse(&data) {
            let mut map = HashMap::new();
            for gid in 0..cff.number_of_glyphs() {
                let g = GlyphId(gid);
                let cid = cff.glyph_cid(g).map_or(u32::from(gid), u32::from);
                if let Some(c) = cff
                    .glyph_name(g)
                    .and_then(|n| unicode_of_name(n.as_bytes()))
                    .and_then(|s| s.chars().next())
                {
                    map.insert(cid, c);
                }
            }
            return map;
        }
    }
    HashMap::new()
}

/// A simple font's text for each of its 256 codes.
fn simple_codes(doc: &Document, dict: &Dictionary) -> Box<[Option<String>; 256]> {
    let encoding = get(doc, dict, b"Encoding");
    let named = match encoding {
        Some(Object::Name(n)) => BaseEncoding::from_name(n),
        Some(Object::Dictionary(d)) => get(doc, d, b"BaseEncoding")
            .and_then(|o| o.as_name().ok())
            .and_then(BaseEncoding::from_name),
        _ => None,
    };
    let mut codes: Box<[Option<String>; 256]> = Box::new(std::array::from_fn(|_| None));
    let builtin = if named.is_none() {
        builtin_codes(doc, dict)
    } else {
        None
    };
    match builtin {
        Some(b) => codes = b,
        None => {
            let table = named.unwrap_or(BaseEncoding::Standard).table();
            for (slot, c) in codes.iter_mut().zip(table) {
                *slot = c.map(String::from);
            }
        }
    }
    if let Some(Object::Dictionary(d)) = encoding
        && let Some(diffs) = get(doc, d, b"Differences").and_then(|o| o.as_array().ok())
    {
        let mut code = 0usize;
        for item in diffs {
            match deref(doc, item) {
                Object::Integer(n) => code = usize::try_from(*n).unwrap_or(256),
                Object::Name(name) => {
                    if let Some(slot) = codes.get_mut(code) {
                        *slot = unicode_of_name(name);
                    }
                    code = code.saturating_add(1);
                }
                _ => {}
            }
        }
    }
    codes
}

/// The encoding built into an embedded font program: a Type 1 font's
/// `/Encoding` array, a CFF font's encoding, a TrueType font's `cmap`.
fn builtin_codes(doc: &Document, dict: &Dictionary) -> Option<Box<[Option<String>; 256]>> {
    let descriptor = get(doc, dict, b"FontDescriptor")?.as_dict().ok()?;
    let mut codes: Box<[Option<String>; 256]> = Box::new(std::array::from_fn(|_| None));
    if let Some(data) = stream_bytes(doc, descriptor, b"FontFile") {
        // The clear-text part: `/Encoding StandardEncoding def` or `dup 65 /A put` lines.
        let clear = &data[..data.len().min(64 * 1024)];
        let mut lexer = Lexer::new(clear);
        let mut operands = Vec::new();
        let mut any = false;
        while let Some(op) = lexer.next_op(&mut operands) {
            match (op, operands.as_slice()) {
                (b"put", [.., Operand::Number(n), Operand::Name(name)]) if (0.0..256.0).contains(n) => {
                    codes[*n as usize] = unicode_of_name(name);
                    any = true;
                }
                (b"def", [.., Operand::Name(k)]) if k == b"Encoding" && !any => return None,
                (b"eexec", _) => break,
                _ => {}
            }
        }
        return any.then_some(codes);
    }
    let data = stream_bytes(doc, descriptor, b"FontFile3").or_else(|| stream_bytes(doc, descriptor, b"FontFile2"))?;
    if let Ok(face) = Face::parse(&data, 0) {
        // A symbolic TrueType font maps codes through a (3,0) subtable at
        // 0xF000 + code or a (1,0) subtable at the code.
        let by_glyph = text_by_glyph(&face);
        let cmap = face.tables().cmap?;
        let mut any = false;
        for (code, slot) in codes.iter_mut().enumerate() {
            let gid = cmap
                .subtables
                .into_iter()
                .find_map(|s| match (s.platform_id, s.encoding_id) {
                    (ttf_parser::PlatformId::Windows, 0) => s
                        .glyph_index(0xF000 + code as u32)
                        .or_else(|| s.glyph_index(code as u32)),
                    (ttf_parser::PlatformId::Macintosh, 0) => s.glyph_index(code as u32),
                    _ => None,
                });
            if let Some(c) = gid.and_then(|g| by_glyph.get(&g.0)) {
                *slot = Some(c.to_string());
                any = true;
            }
        }
        return any.then_some(codes);
    }
    let cff = ttf_parser::cff::Table::parse(&data)?;
    let mut any = false;
    for (code, slot) in codes.iter_mut().enumerate() {
        if let Some(text) = cff
            .glyph_index(code as u8)
            .filter(|g| g.0 != 0)
            .and_then(|g| cff.glyph_name(g))
            .and_then(|n| unicode_of_name(n.as_bytes()))
        {
            *slot = Some(text);
            any = true;
        }
    }
    any.then_some(codes)
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

fn simple_widths(doc: &Document, dict: &Dictionary) -> Widths {
    let first = get(doc, dict, b"FirstChar").and_then(number).unwrap_or(0.0).max(0.0) as u32;
    let widths: Vec<f64> = get(doc, dict, b"Widths")
        .and_then(|o| o.as_array().ok())
        .map(|a| {
            a.iter()
                .take(65_536)
                .map(|w| number(deref(doc, w)).unwrap_or(0.0))
                .collect()
        })
        .unwrap_or_default();
    let missing = get(doc, dict, b"FontDescriptor")
        .and_then(|o| o.as_dict().ok())
        .and_then(|d| get(doc, d, b"MissingWidth"))
        .and_then(number)
        .filter(|w| *w > 0.0)
        .unwrap_or(500.0);
    Widths::Simple { first, widths, missing }
}

fn cid_widths(doc: &Document, descendant: &Dictionary) -> Widths {
    let default = get(doc, descendant, b"DW").and_then(number).unwrap_or(1000.0);
    let mut widths = BTreeMap::new();
    if let Some(w) = get(doc, descendant, b"W").and_then(|o| o.as_array().ok()) {
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
