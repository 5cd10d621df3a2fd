//! Glyph names to text, and the standard single-byte encodings.
//!
//! A simple font's `/Differences` name glyphs (`/eacute`, `/uni20AC`,
//! `/f_i`, `/a.sc`), and so do an embedded font's own encoding and a
//! TrueType font's `post` table. The Adobe Glyph List and the standard
//! encodings' tables are in lopdf, which keeps them private; its public
//! encoding resolution, given a one-entry font dictionary, is the way in.

use std::collections::HashMap;
use std::sync::OnceLock;

use lopdf::{Dictionary, Document, Object};

/// The standard encodings a font may name (PDF 32000 Annex D).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum BaseEncoding {
    Standard,
    WinAnsi,
    MacRoman,
    MacExpert,
    PdfDoc,
}

impl BaseEncoding {
    pub(crate) fn from_name(name: &[u8]) -> Option<Self> {
        Some(match name {
            b"StandardEncoding" => BaseEncoding::Standard,
            b"WinAnsiEncoding" => BaseEncoding::WinAnsi,
            b"MacRomanEncoding" => BaseEncoding::MacRoman,
            b"MacExpertEncoding" => BaseEncoding::MacExpert,
            b"PDFDocEncoding" => BaseEncoding::PdfDoc,
            _ => return None,
        })
    }

    fn name(self) -> &'static [u8] {
        match self {
            BaseEncoding::Standard => b"StandardEncoding",
            BaseEncoding::WinAnsi => b"WinAnsiEncoding",
            BaseEncoding::MacRoman => b"MacRomanEncoding",
            BaseEncoding::MacExpert => b"MacExpertEncoding",
            BaseEncoding::PdfDoc => b"PDFDocEncoding",
        }
    }

    /// The character each of the 256 codes stands for.
    pub(crate) fn table(self) -> &'static [Option<char>; 256] {
        static TABLES: OnceLock<HashMap<BaseEncoding, [Option<char>; 256]>> = OnceLock::new();
        let tables = TABLES.get_or_init(|| {
            [
                BaseEncoding::Standard,
                BaseEncoding::WinAnsi,
                BaseEncoding::MacRoman,
                BaseEncoding::MacExpert,
                BaseEncoding::PdfDoc,
            ]
            .into_iter()
            .map(|e| (e, e.build()))
            .collect()
        });
        &tables[&self]
    }

    fn build(self) -> [Option<char>; 256] {
        let doc = Document::new();
        let font = font_with_encoding(Object::Name(self.name().to_vec()));
        let mut table = [None; 256];
        if let Ok(enc) = font.get_font_encoding(&doc) {
            for (code, slot) in table.iter_mut().enumerate() {
                *slot = enc.bytes_to_string(&[code as u8]).ok().and_then(|s| s.chars().next());
            }
        }
        table
    }
}

fn font_with_encoding(encoding: Object) -> Dictionary {
    let mut font = Dictionary::new();
    font.set("Type", Object::Name(b"Font".to_vec()));
    font.set("Encoding", encoding);
    font
}

/// The Adobe Glyph List's character for a name, by lopdf's copy of it.
fn agl(name: &[u8]) -> Option<char> {
    let mut differences = Dictionary::new();
    differences.set(
        "Differences",
        Object::Array(vec![Object::Integer(65), Object::Name(name.to_vec())]),
    );
    let font = font_with_encoding(Object::Dictionary(differences));
    let doc = Document::new();
    let enc = font.get_font_encoding(&doc).ok()?;
    let text = enc.bytes_to_string(b"A").ok()?;
    // An unknown name makes lopdf fall back to StandardEncoding, where 65 is `A`.
    let c = text.chars().next()?;
    (c != 'A' || name == b"A").then_some(c)
}

/// The text a glyph name stands for: the Adobe Glyph List, then `uniXXXX…`,
/// `uXXXX[XX]`, ligatures written `f_f_i` and variants written `a.sc`.
pub(crate) fn unicode_of_name(name: &[u8]) -> Option<String> {
    let name = std::str::from_utf8(name).ok()?;
    // `a.sc`, `one.oldstyle`: the part before the first period.
    let base = match name.find('.') {
        Some(0) => return None,
        Some(i) => &name[..i],
        None => name,
    };
    if base.contains('_') {
        let parts: Option<String> = base.split('_').map(component).collect();
        return parts.filter(|s| !s.is_empty());
    }
    component(base)
}

fn component(name: &str) -> Option<String> {
    if let Some(c) = agl(name.as_bytes()) {
        return Some(c.to_string());
    }
    if let Some(hex) = name.strip_prefix("uni")
        && hex.len() >= 4
        && hex.len() % 4 == 0
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        let units: Vec<u16> = hex
            .as_bytes()
            .chunks(4)
            .filter_map(|c| u16::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok())
            .collect();
        return String::from_utf16(&units).ok();
    }
    if let Some(hex) = name.strip_prefix('u')
        && (4..=6).contains(&hex.len())
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return u32::from_str_radix(hex, 16)
            .ok()
            .and_then(char::from_u32)
            .map(String::from);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyph_names_become_text() {
        let text = |n: &str| unicode_of_name(n.as_bytes());
        assert_eq!(text("eacute").as_deref(), Some("é"));
        assert_eq!(text("A").as_deref(), Some("A"));
        assert_eq!(text("Euro").as_deref(), Some("€"));
        assert_eq!(text("uni20AC").as_deref(), Some("€"));
        assert_eq!(text("uni00660069").as_deref(), Some("fi"));
        assert_eq!(text("u1F600").as_deref(), Some("😀"));
        assert_eq!(text("f_f_i").as_deref(), Some("ffi"));
        assert_eq!(text("a.sc").as_deref(), Some("a"));
        assert_eq!(text("g123"), None);
        assert_eq!(text("notaglyphname"), None);
        assert_eq!(BaseEncoding::WinAnsi.table()[0x80], Some('€'));
        assert_eq!(BaseEncoding::MacRoman.table()[0x8e], Some('é'));
        assert_eq!(BaseEncoding::Standard.table()[0x27], Some('’'));
    }
}
