//! Fonts for report PDFs: which files, which font draws each character, and
//! how a font goes into the PDF (a TrueType subset embedded as a
//! CIDFontType2 with Identity-H encoding, a width array and a ToUnicode CMap,
//! so viewers draw it and `pdftotext` reads the text back).

use std::collections::BTreeMap;
use std::path::Path;

use lopdf::{Dictionary, Document, Object, Stream};
use subsetter::GlyphRemapper;
use ttf_parser::{Face, GlyphId};

use crate::PdfError;

/// Where the host shows the pdf tool the folder of its Latin fonts, read-only.
pub const FONTS_LATIN: &str = "/fonts/latin";
/// Where the host shows the pdf tool the folder of its CJK fallback font, read-only.
pub const FONTS_CJK: &str = "/fonts/cjk";

/// The files looked for in the Latin folder (regular, then bold) and the
/// CJK folder, in order of preference. The host's list of known font
/// folders names the same files.
pub const LATIN_REGULAR_FILES: &[&str] = &[
    "DejaVuSans.ttf",
    "LiberationSans-Regular.ttf",
    "NotoSans-Regular.ttf",
    "FreeSans.ttf",
];
pub const LATIN_BOLD_FILES: &[&str] = &[
    "DejaVuSans-Bold.ttf",
    "LiberationSans-Bold.ttf",
    "NotoSans-Bold.ttf",
    "FreeSansBold.ttf",
];
pub const CJK_FILES: &[&str] = &[
    "DroidSansFallbackFull.ttf",
    "DroidSansFallback.ttf",
    "wqy-microhei.ttc",
    "wqy-zenhei.ttc",
];

/// The font files a report may use: a regular Latin font (required), its
/// bold (optional; headings fall back to regular) and a CJK fallback
/// (optional; characters the Latin font lacks come from it).
#[derive(Clone)]
pub struct Fonts {
    pub(crate) regular: FontFile,
    pub(crate) bold: Option<FontFile>,
    pub(crate) cjk: Option<FontFile>,
}

impl std::fmt::Debug for Fonts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fonts")
            .field("regular", &self.regular.name)
            .field("bold", &self.bold.as_ref().map(|b| &b.name))
            .field("cjk", &self.cjk.as_ref().map(|c| &c.name))
            .finish()
    }
}

#[derive(Clone)]
pub(crate) struct FontFile {
    pub(crate) name: String,
    pub(crate) data: Vec<u8>,
}

impl FontFile {
    fn new(name: &str, data: Vec<u8>) -> Result<Self, PdfError> {
        let face = Face::parse(&data, 0).map_err(|e| PdfError::Fonts(format!("font {name} cannot be read: {e}")))?;
        if face.tables().glyf.is_none() {
            return Err(PdfError::Fonts(format!(
                "font {name} has no TrueType outlines (glyf table); use a .ttf font"
            )));
        }
        Ok(FontFile {
            name: name.to_owned(),
            data,
        })
    }
}

impl Fonts {
    /// Fonts from file contents; `name`s are only for messages.
    pub fn new(
        regular: (&str, Vec<u8>),
        bold: Option<(&str, Vec<u8>)>,
        cjk: Option<(&str, Vec<u8>)>,
    ) -> Result<Self, PdfError> {
        Ok(Fonts {
            regular: FontFile::new(regular.0, regular.1)?,
            bold: bold.map(|(n, d)| FontFile::new(n, d)).transpose()?,
            cjk: cjk.map(|(n, d)| FontFile::new(n, d)).transpose()?,
        })
    }

    /// Fonts from the known file names ([`LATIN_REGULAR_FILES`], [`LATIN_BOLD_FILES`],
    /// [`CJK_FILES`]) in a Latin folder and an optional CJK folder.
    pub fn from_dirs(latin: &Path, cjk: Option<&Path>) -> Result<Self, PdfError> {
        let find = |dir: &Path, names: &[&str]| -> Option<(String, Vec<u8>)> {
            names.iter().find_map(|n| {
                let path = dir.join(n);
                std::fs::read(&path).ok().map(|d| (path.display().to_string(), d))
            })
        };
        let Some(regular) = find(latin, LATIN_REGULAR_FILES) else {
            return Err(PdfError::Fonts(format!(
                "no font for report PDFs was found (looked for {} in {}); install fonts-dejavu-core \
                 (scripts/setup does) and run again",
                LATIN_REGULAR_FILES.join(", "),
                latin.display()
            )));
        };
        let bold = find(latin, LATIN_BOLD_FILES);
        let cjk = cjk.and_then(|dir| find(dir, CJK_FILES));
        // The bytes move in: the CJK font alone is several megabytes.
        let (bold_name, bold_data) = bold.unzip();
        let (cjk_name, cjk_data) = cjk.unzip();
        Fonts::new(
            (&regular.0, regular.1),
            bold_name.as_deref().zip(bold_data),
            cjk_name.as_deref().zip(cjk_data),
        )
    }
}

/// One font as a report uses it: its parsed face, the glyphs used so far
/// (renumbered for the subset) and what each stands for.
pub(crate) struct Embedded<'f> {
    face: Face<'f>,
    data: &'f [u8],
    remap: GlyphRemapper,
    /// New glyph id -> (width in 1/1000 em, the text it stands for).
    glyphs: BTreeMap<u16, (f64, String)>,
    units_per_em: f64,
    tag: &'static str,
}

impl<'f> Embedded<'f> {
    pub(crate) fn new(file: &'f FontFile, tag: &'static str) -> Result<Self, PdfError> {
        let face = Face::parse(&file.data, 0)
            .map_err(|e| PdfError::Fonts(format!("font {} cannot be read: {e}", file.name)))?;
        let units_per_em = f64::from(face.units_per_em().max(1));
        Ok(Embedded {
            face,
            data: &file.data,
            remap: GlyphRemapper::new(),
            glyphs: BTreeMap::new(),
            units_per_em,
            tag,
        })
    }

    /// The font's glyph for `c`, if it has one.
    pub(crate) fn glyph(&self, c: char) -> Option<GlyphId> {
        self.face.glyph_index(c).filter(|g| g.0 != 0)
    }

    /// Marks `gid` (standing for `c`) as used; returns its new id and its
    /// advance per point of font size.
    pub(crate) fn use_glyph(&mut self, gid: GlyphId, c: char) -> (u16, f64) {
        let new = self.remap.remap(gid.0);
        let advance = f64::from(self.face.glyph_hor_advance(gid).unwrap_or(0)) / self.units_per_em;
        self.glyphs
            .entry(new)
            .or_insert_with(|| ((advance * 1000.0 * 1000.0).round() / 1000.0, c.to_string()));
        (new, self.glyphs.get(&new).map_or(advance, |g| g.0 / 1000.0))
    }

    pub(crate) fn is_used(&self) -> bool {
        !self.glyphs.is_empty()
    }

    /// Adds the font's objects to `doc` and returns the Type0 font's reference.
    pub(crate) fn embed(&self, doc: &mut Document) -> Result<lopdf::ObjectId, PdfError> {
        let subset = subsetter::subset(self.data, 0, &self.remap)
            .map_err(|e| PdfError::Fonts(format!("the font could not be subset for embedding: {e}")))?;
        let ps_name: String = self
            .face
            .names()
            .into_iter()
            .filter(|n| n.name_id == ttf_parser::name_id::POST_SCRIPT_NAME)
            .find_map(|n| n.to_string())
            .unwrap_or_else(|| "Font".into())
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let base = format!("{}+{}", self.tag, if ps_name.is_empty() { "Font" } else { &ps_name });
        let scale = |v: f64| (v * 1000.0 / self.units_per_em).round() as i64;
        let bbox = self.face.global_bounding_box();
        let ascent = scale(f64::from(self.face.ascender()));
        let descent = scale(f64::from(self.face.descender()));
        let cap = scale(f64::from(self.face.capital_height().unwrap_or(self.face.ascender())));

        let mut file = Stream::new(
            Dictionary::from_iter(vec![("Length1", Object::Integer(subset.len() as i64))]),
            subset,
        );
        let _ = file.compress();
        let file_id = doc.add_object(file);
        let descriptor = doc.add_object(Dictionary::from_iter(vec![
            ("Type", Object::Name(b"FontDescriptor".to_vec())),
            ("FontName", Object::Name(base.clone().into_bytes())),
            ("Flags", Object::Integer(4)),
            (
                "FontBBox",
                Object::Array(vec![
                    scale(f64::from(bbox.x_min)).into(),
                    scale(f64::from(bbox.y_min)).into(),
                    scale(f64::from(bbox.x_max)).into(),
                    scale(f64::from(bbox.y_max)).into(),
                ]),
            ),
            ("ItalicAngle", Object::Integer(0)),
            ("Ascent", Object::Integer(ascent)),
            ("Descent", Object::Integer(descent)),
            ("CapHeight", Object::Integer(cap)),
            ("StemV", Object::Integer(80)),
            ("FontFile2", Object::Reference(file_id)),
        ]));
        let mut widths = Vec::new();
        for (gid, (w, _)) in &self.glyphs {
            widths.push(Object::Integer(i64::from(*gid)));
            widths.push(Object::Array(vec![Object::Real(*w as f32)]));
        }
        let cid_font = doc.add_object(Dictionary::from_iter(vec![
            ("Type", Object::Name(b"Font".to_vec())),
            ("Subtype", Object::Name(b"CIDFontType2".to_vec())),
            ("BaseFont", Object::Name(base.clone().into_bytes())),
            (
                "CIDSystemInfo",
                Object::Dictionary(Dictionary::from_iter(vec![
                    ("Registry", Object::string_literal("Adobe")),
                    ("Ordering", Object::string_literal("Identity")),
                    ("Supplement", Object::Integer(0)),
                ])),
            ),
            ("FontDescriptor", Object::Reference(descriptor)),
            ("DW", Object::Integer(0)),
            ("W", Object::Array(widths)),
            ("CIDToGIDMap", Object::Name(b"Identity".to_vec())),
        ]));
        let mut cmap = Stream::new(Dictionary::new(), self.to_unicode().into_bytes());
        let _ = cmap.compress();
        let cmap_id = doc.add_object(cmap);
        Ok(doc.add_object(Dictionary::from_iter(vec![
            ("Type", Object::Name(b"Font".to_vec())),
            ("Subtype", Object::Name(b"Type0".to_vec())),
            ("BaseFont", Object::Name(base.into_bytes())),
            ("Encoding", Object::Name(b"Identity-H".to_vec())),
            ("DescendantFonts", Object::Array(vec![Object::Reference(cid_font)])),
            ("ToUnicode", Object::Reference(cmap_id)),
        ])))
    }

    /// The ToUnicode CMap: each used glyph id to the text it stands for.
    fn to_unicode(&self) -> String {
        let mut out = String::from(
            "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
             /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
             /CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
             1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
        );
        let entries: Vec<_> = self.glyphs.iter().filter(|(g, _)| **g != 0).collect();
        for chunk in entries.chunks(100) {
            out.push_str(&format!("{} beginbfchar\n", chunk.len()));
            for (gid, (_, text)) in chunk {
                let hex: String = text.encode_utf16().map(|u| format!("{u:04X}")).collect();
                out.push_str(&format!("<{gid:04X}> <{hex}>\n"));
            }
            out.push_str("endbfchar\n");
        }
        out.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
        out
    }
}
