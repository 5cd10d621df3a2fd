//! Reading an existing package, for the docx and pptx `text` operations:
//! what the file is (from its content, whatever its extension), bounded
//! before anything is parsed (file size, number of parts, the bytes the
//! parts inflate to), relationships resolved to part names, parts read as
//! text under a cap, and a namespace-aware pull parser over a part's XML.
//!
//! Refused with a message naming the problem and what to do: an encrypted
//! (password-protected) file, a Strict Open XML package, a damaged zip, an
//! OLE Word or PowerPoint 97-2003 file, and any other format (another
//! OOXML kind, OpenDocument, PDF, images) named as what it is.

use std::borrow::Cow;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use deskhand_guest::{ToolError, path_error};
use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

/// The largest file `text` reads.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// The most the parts read may inflate to, together: past this a small file is a zip bomb.
pub const MAX_INFLATED_BYTES: u64 = 512 * 1024 * 1024;
/// The largest one XML part may inflate to.
pub const MAX_PART_BYTES: u64 = 256 * 1024 * 1024;
/// The most zip entries a package may have.
pub const MAX_PARTS: usize = 50_000;

/// What kind of document a reader expects (and what a package turns out to be).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Docx,
    Pptx,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Docx => "a Word document (.docx)",
            Kind::Pptx => "a PowerPoint presentation (.pptx)",
        }
    }

    fn ext(self) -> &'static str {
        match self {
            Kind::Docx => "docx",
            Kind::Pptx => "pptx",
        }
    }

    fn reader(self) -> &'static str {
        match self {
            Kind::Docx => "the docx tool's `text` reads it",
            Kind::Pptx => "the pptx tool's `text` reads it",
        }
    }
}

/// The contract's error for a file whose content cannot be read.
pub fn bad(path: &Path, message: impl Into<String>) -> ToolError {
    ToolError::BadContent(path_error(path, message))
}

/// A part that does not parse: `problem` says where (from [`Xml::next`]).
pub fn bad_part(path: &Path, part: &str, problem: &str) -> ToolError {
    bad(
        path,
        format!("is damaged: its part {part} {problem}; try a fresh copy of the file, or open it and save it again"),
    )
}

/// One relationship of a part: its id, its type (the last segment of the
/// type URI, e.g. `slide`, `notesSlide`, `hyperlink`), and its target, a
/// part name (no leading slash) or, when external, the target as written.
#[derive(Debug, Clone)]
pub struct Rel {
    pub id: String,
    pub kind: String,
    pub target: String,
    pub external: bool,
}

/// An opened package: the zip, bounded, and the main part's name.
pub struct Opened<'a> {
    path: PathBuf,
    archive: zip::ZipArchive<Cursor<&'a [u8]>>,
    /// The bytes the parts read so far inflated to.
    inflated: u64,
    /// `word/document.xml` or `ppt/presentation.xml`, from the package relationships.
    pub main: String,
}

const OLE_MAGIC: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";

/// Opens `bytes` (the file at `path`) as a package of `expected` kind, or
/// says what the file is instead.
pub fn open<'a>(path: &Path, bytes: &'a [u8], expected: Kind) -> Result<Opened<'a>, ToolError> {
    if bytes.is_empty() {
        return Err(bad(path, "is empty (0 bytes)"));
    }
    if bytes.starts_with(OLE_MAGIC) {
        return Err(bad(path, ole_kind(bytes, expected)));
    }
    if !bytes.starts_with(b"PK\x03\x04") && !bytes.starts_with(b"PK\x05\x06") {
        return Err(bad(path, not_a_package(bytes, expected)));
    }
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| {
        bad(
            path,
            format!(
                "is damaged or truncated: its zip directory cannot be read ({e}); try a fresh copy of the file, or \
                 open it in {} and save it again",
                app(expected)
            ),
        )
    })?;
    if archive.len() > MAX_PARTS {
        return Err(ToolError::TooLarge(path_error(
            path,
            format!(
                "has {} zip entries; deskhand reads packages of up to {MAX_PARTS}",
                archive.len()
            ),
        )));
    }
    let mut declared = 0u64;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| bad(path, format!("is damaged: zip entry {i} cannot be read ({e})")))?;
        declared = declared.saturating_add(entry.size());
    }
    if declared > MAX_INFLATED_BYTES {
        return Err(ToolError::TooLarge(path_error(
            path,
            format!(
                "would inflate to {declared} bytes (the cap is {MAX_INFLATED_BYTES}); it is too large or a zip bomb"
            ),
        )));
    }
    let mut opened = Opened {
        path: path.to_path_buf(),
        archive,
        inflated: 0,
        main: String::new(),
    };
    let what = opened.kind(expected)?;
    if what != Some(expected) {
        let found = match what {
            Some(kind) => format!("is {}, not {}; {}", kind.noun(), expected.noun(), kind.reader()),
            None => opened.other_kind(expected),
        };
        return Err(bad(path, found));
    }
    Ok(opened)
}

fn app(kind: Kind) -> &'static str {
    match kind {
        Kind::Docx => "Word or LibreOffice Writer",
        Kind::Pptx => "PowerPoint or LibreOffice Impress",
    }
}

/// An OLE compound file: encrypted OOXML (any kind), or a 97-2003 binary file.
fn ole_kind(bytes: &[u8], expected: Kind) -> String {
    let has_stream = |name: &str| {
        let marker: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
        bytes.windows(marker.len()).any(|w| w == marker.as_slice())
    };
    if has_stream("EncryptedPackage") {
        return "is encrypted (password-protected); deskhand cannot read it. Save a copy without a password \
                and read that"
            .to_owned();
    }
    let save_as = format!(
        "save it as .{} (File > Save As in {}) and read that",
        expected.ext(),
        app(expected)
    );
    if has_stream("WordDocument") {
        format!("is a Word 97-2003 document (.doc), not .docx; {save_as}")
    } else if has_stream("PowerPoint Document") {
        format!("is a PowerPoint 97-2003 presentation (.ppt), not .pptx; {save_as}")
    } else if has_stream("Workbook") || has_stream("Book") {
        "is an Excel 97-2003 workbook (.xls); the xlsx tool's `read` reads it".to_owned()
    } else {
        format!("is an OLE compound file, not {}", expected.noun())
    }
}

/// What a file that is not a zip is, from its first bytes.
fn not_a_package(bytes: &[u8], expected: Kind) -> String {
    let head = &bytes[..bytes.len().min(1024)];
    if head.windows(5).any(|w| w == b"%PDF-") {
        return "is a PDF document; the pdf tool's `text` reads it".to_owned();
    }
    const MAGIC: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "a PNG image"),
        (b"\xFF\xD8\xFF", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (b"{\\rtf", "an RTF (rich text) document"),
        (b"\x1F\x8B", "a gzip archive"),
        (b"7z\xBC\xAF\x27\x1C", "a 7-Zip archive"),
        (b"Rar!\x1A\x07", "a RAR archive"),
        (b"%!PS", "a PostScript document"),
        (
            b"<?xml",
            "an XML file (a flat XML document is not read; save it as a .docx or .pptx package)",
        ),
    ];
    if let Some((_, what)) = MAGIC.iter().find(|(magic, _)| bytes.starts_with(magic)) {
        return format!("is {what}, not {}", expected.noun());
    }
    format!(
        "is not {}: it is not a zip package (perhaps plain text, or another format renamed)",
        expected.noun()
    )
}

impl<'a> Opened<'a> {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the package has an entry named `name` (compared ignoring
    /// case, as OOXML part names are), to pick a free name for a new part.
    pub fn has_part(&self, name: &str) -> bool {
        self.archive
            .file_names()
            .any(|n| n.is_ok_and(|n| n.eq_ignore_ascii_case(name)))
    }

    /// The name of the relationships part of part `name`.
    pub fn rels_name(name: &str) -> String {
        match name.rsplit_once('/') {
            Some((dir, file)) => format!("{dir}/_rels/{file}.rels"),
            None => format!("_rels/{name}.rels"),
        }
    }

    /// The package's kind from its relationships and parts; `None` when it
    /// is not a docx or pptx. Refuses Strict Open XML and backslashed part names.
    fn kind(&mut self, expected: Kind) -> Result<Option<Kind>, ToolError> {
        if self.archive.file_names().any(|n| n.is_ok_and(|n| n.contains('\\'))) {
            return Err(bad(
                &self.path,
                format!(
                    "is a damaged package: its part names use backslashes, which OOXML does not allow; open it in \
                     {} and save it again",
                    app(expected)
                ),
            ));
        }
        let Some(rels) = self.part("_rels/.rels")? else {
            return Ok(None);
        };
        if rels.contains("http://purl.oclc.org/ooxml/officeDocument/relationships/officeDocument") {
            return Err(bad(
                &self.path,
                format!(
                    "is saved as Strict Open XML, which deskhand does not read; save it as \"{}\" (the usual \
                     .{} format) and read that",
                    match expected {
                        Kind::Docx => "Word Document",
                        Kind::Pptx => "PowerPoint Presentation",
                    },
                    expected.ext()
                ),
            ));
        }
        let main = parse_rels(&self.path, "", &rels)?
            .into_iter()
            .find(|r| r.kind == "officeDocument" && !r.external)
            .map(|r| r.target);
        let Some(main) = main else {
            return Ok(None);
        };
        let kind = if main.starts_with("word/") || main.ends_with("document.xml") {
            Some(Kind::Docx)
        } else if main.starts_with("ppt/") || main.ends_with("presentation.xml") {
            Some(Kind::Pptx)
        } else {
            None
        };
        if kind.is_some() && self.archive.index_for_name(&main).is_none() {
            return Err(bad(
                &self.path,
                format!(
                    "is damaged: its main part {main} is missing; try a fresh copy, or open it in {} and save it again",
                    app(expected)
                ),
            ));
        }
        self.main = main;
        Ok(kind)
    }

    /// What a zip that is not a docx or pptx is.
    fn other_kind(&mut self, expected: Kind) -> String {
        let mut mimetype = String::new();
        if let Ok(entry) = self.archive.by_name("mimetype") {
            let _ = entry.take(128).read_to_string(&mut mimetype);
        }
        let has = |a: &zip::ZipArchive<Cursor<&[u8]>>, n: &str| a.index_for_name(n).is_some();
        let what = if has(&self.archive, "xl/workbook.xml") || has(&self.archive, "xl/workbook.bin") {
            "an Excel workbook; the xlsx tool's `read` reads it".to_owned()
        } else if mimetype.starts_with("application/vnd.oasis.opendocument.text") {
            "an OpenDocument text (.odt); save it as .docx and read that".to_owned()
        } else if mimetype.starts_with("application/vnd.oasis.opendocument.presentation") {
            "an OpenDocument presentation (.odp); save it as .pptx and read that".to_owned()
        } else if mimetype.starts_with("application/vnd.oasis.opendocument.spreadsheet") {
            "an OpenDocument spreadsheet (.ods); the xlsx tool's `read` reads it".to_owned()
        } else if has(&self.archive, "_rels/.rels") {
            format!("an Office package but not {}", expected.noun())
        } else {
            format!("a zip archive, not {}", expected.noun())
        };
        format!("is {what}")
    }

    /// A part's text, or `None` when the package has no such part. Damaged
    /// entries, parts over [`MAX_PART_BYTES`] and a package inflating past
    /// [`MAX_INFLATED_BYTES`] in all are errors.
    pub fn part(&mut self, name: &str) -> Result<Option<String>, ToolError> {
        let Some(index) = self.archive.index_for_name(name) else {
            return Ok(None);
        };
        let left = MAX_INFLATED_BYTES.saturating_sub(self.inflated);
        let cap = MAX_PART_BYTES.min(left);
        let entry = self
            .archive
            .by_index(index)
            .map_err(|e| bad(&self.path, format!("is damaged: its part {name} cannot be read ({e})")))?;
        if entry.encrypted() {
            return Err(bad(
                &self.path,
                "is an encrypted zip; deskhand cannot read it. Save a copy without a password and read that",
            ));
        }
        // An honest size past the cap is refused before inflating; a lying
        // one stops at the cap. One allocation either way: a doubling
        // vector would need about twice the cap at once.
        if entry.size() > cap {
            return Err(part_too_large(&self.path, name, cap));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(entry.size() + 1).unwrap_or(0));
        entry.take(cap + 1).read_to_end(&mut bytes).map_err(|e| {
            bad(
                &self.path,
                format!("is damaged: its part {name} cannot be inflated ({e})"),
            )
        })?;
        if bytes.len() as u64 > cap {
            return Err(part_too_large(&self.path, name, cap));
        }
        self.inflated += bytes.len() as u64;
        decode(bytes).map(Some).map_err(|e| {
            bad(
                &self.path,
                format!("is damaged: its part {name} is not UTF-8 or UTF-16 text ({e})"),
            )
        })
    }

    /// The relationships of part `name` (from `<dir>/_rels/<file>.rels`), empty when it has none.
    pub fn rels(&mut self, name: &str) -> Result<Vec<Rel>, ToolError> {
        let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
        let rels_name = Self::rels_name(name);
        match self.part(&rels_name)? {
            Some(xml) => parse_rels(&self.path, dir, &xml),
            None => Ok(Vec::new()),
        }
    }
}

fn part_too_large(path: &Path, name: &str, cap: u64) -> ToolError {
    ToolError::TooLarge(path_error(
        path,
        format!(
            "is too large to read: its part {name} inflates past {} MiB (the cap is {} MiB for one part, {} MiB \
             in all); it may be a zip bomb",
            cap >> 20,
            MAX_PART_BYTES >> 20,
            MAX_INFLATED_BYTES >> 20
        ),
    ))
}

/// A part's bytes as text: UTF-8 (with or without a byte-order mark) or UTF-16 with one.
fn decode(bytes: Vec<u8>) -> Result<String, String> {
    let utf16 = |b: &[u8], le: bool| {
        let units = b.chunks_exact(2).map(|c| {
            if le {
                u16::from_le_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], c[1]])
            }
        });
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|e| e.to_string())
    };
    match bytes.as_slice() {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, true),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, false),
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8(rest.to_vec()).map_err(|e| e.to_string()),
        _ => String::from_utf8(bytes).map_err(|e| e.to_string()),
    }
}

/// Relationships in a `.rels` part, targets resolved against `dir` (the
/// folder of the part they belong to).
fn parse_rels(path: &Path, dir: &str, xml: &str) -> Result<Vec<Rel>, ToolError> {
    let mut out = Vec::new();
    let mut x = Xml::new(xml);
    while let Some(node) = x
        .next()
        .map_err(|e| bad(path, format!("is damaged: a relationships part {e}")))?
    {
        if let Node::Open(tag) = node
            && tag.local() == "Relationship"
        {
            let external = tag.attr("TargetMode").is_some_and(|m| m == "External");
            let target = tag.attr("Target").unwrap_or_default();
            let kind = tag.attr("Type").unwrap_or_default();
            out.push(Rel {
                id: tag.attr("Id").unwrap_or_default(),
                kind: kind.rsplit('/').next().unwrap_or_default().to_owned(),
                target: if external { target } else { resolve(dir, &target) },
                external,
            });
        }
    }
    Ok(out)
}

/// The text an entity or character reference stands for (`&amp;`, `&#233;`);
/// `None` for a name XML does not define (a DTD's own entities are not read).
pub(crate) fn entity_text(r: &quick_xml::events::BytesRef<'_>) -> Option<String> {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        return Some(c.to_string());
    }
    let text = match &*r.clone().into_inner() {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        _ => return None,
    };
    Some(text.into())
}

/// A relationship target as a part name: relative to `dir` unless it
/// starts with `/`, `.` and `..` segments folded, percent-escapes left as they are.
pub fn resolve(dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        dir.split('/').filter(|s| !s.is_empty()).collect()
    };
    for seg in target.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// The namespaces the readers tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ns {
    /// WordprocessingML (`w:`).
    W,
    /// DrawingML (`a:`).
    A,
    /// PresentationML (`p:`).
    P,
    /// Markup compatibility (`mc:`).
    Mc,
    /// Office math (`m:`).
    M,
    /// DrawingML in Word (`wp:`).
    Wp,
    /// Anything else.
    Other,
}

fn ns_of(uri: &str) -> Ns {
    match uri {
        "http://schemas.openxmlformats.org/wordprocessingml/2006/main" => Ns::W,
        "http://schemas.openxmlformats.org/drawingml/2006/main" => Ns::A,
        "http://schemas.openxmlformats.org/presentationml/2006/main" => Ns::P,
        "http://schemas.openxmlformats.org/markup-compatibility/2006" => Ns::Mc,
        "http://schemas.openxmlformats.org/officeDocument/2006/math" => Ns::M,
        "http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" => Ns::Wp,
        _ => Ns::Other,
    }
}

/// One step of a pull parse: an element opens (an empty element opens and
/// then closes), closes, or text.
pub enum Node<'i> {
    Open(Tag<'i>),
    Close(Ns, String),
    Text(Cow<'i, str>),
}

/// An opening tag: its namespace and the tag, for its name and attributes.
pub struct Tag<'i> {
    pub ns: Ns,
    start: BytesStart<'i>,
}

impl Tag<'_> {
    pub fn local(&self) -> &str {
        let name = self.start.name();
        let raw: &str = name.0;
        raw.rsplit_once(':').map_or(raw, |(_, l)| l)
    }

    pub fn is(&self, ns: Ns, local: &str) -> bool {
        self.ns == ns && self.local() == local
    }

    /// The value of a prefixed attribute whose local name is `local` (`r:id`, not `id`), unescaped.
    pub fn prefixed_attr(&self, local: &str) -> Option<String> {
        self.start.attributes().flatten().find_map(|a| {
            let key: &str = a.key.0;
            match key.rsplit_once(':') {
                Some((_, name)) if name == local => Some(
                    a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map(Cow::into_owned)
                        .unwrap_or_else(|_| a.value.into_owned()),
                ),
                _ => None,
            }
        })
    }

    /// The value of the attribute whose local name is `local` (any prefix), unescaped.
    pub fn attr(&self, local: &str) -> Option<String> {
        self.start.attributes().flatten().find_map(|a| {
            let key: &str = a.key.0;
            let name = key.rsplit_once(':').map_or(key, |(_, l)| l);
            if name == local {
                Some(
                    a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map(Cow::into_owned)
                        .unwrap_or_else(|_| a.value.into_owned()),
                )
            } else {
                None
            }
        })
    }
}

/// A namespace-aware pull parser over one part: empty elements come as an
/// open then a close, entity and character references as text.
pub struct Xml<'i> {
    reader: NsReader<&'i [u8]>,
}

impl<'i> Xml<'i> {
    pub fn new(xml: &'i str) -> Self {
        let mut reader = NsReader::from_str(xml);
        reader.config_mut().expand_empty_elements = true;
        Xml { reader }
    }

    /// The next node, `None` at the end; a malformed part is an error
    /// naming where it breaks (callers add the part's name).
    #[expect(clippy::should_implement_trait, reason = "fallible, unlike Iterator::next")]
    pub fn next(&mut self) -> Result<Option<Node<'i>>, String> {
        loop {
            let at = self.reader.buffer_position();
            let (ns, event) = self
                .reader
                .read_resolved_event()
                .map_err(|e| format!("is not well-formed XML near byte {at} ({e})"))?;
            let ns = match ns {
                ResolveResult::Bound(n) => ns_of(n.0),
                _ => Ns::Other,
            };
            return Ok(Some(match event {
                Event::Start(start) => Node::Open(Tag { ns, start }),
                Event::End(end) => {
                    let name = end.name();
                    let raw: &str = name.0;
                    Node::Close(ns, raw.rsplit_once(':').map_or(raw, |(_, l)| l).to_owned())
                }
                Event::Text(t) => Node::Text(t.into_inner()),
                Event::CData(t) => Node::Text(t.into_inner()),
                Event::GeneralRef(r) => {
                    let text = entity_text(&r).unwrap_or_default();
                    Node::Text(Cow::Owned(text))
                }
                Event::Eof => return Ok(None),
                Event::Empty(_) | Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => continue,
            }));
        }
    }
}

/// Reads `spec` ("1-3", "2", "4-", "1,3,5-7") as 1-based numbers up to
/// `total`, in the order given, each once.
pub fn parse_ranges(spec: &str, total: usize, what: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    let mut seen = vec![false; total + 1];
    for piece in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |s: &str| -> Result<usize, String> {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("{what}s {spec:?}: {s:?} is not a {what} number (give e.g. \"1-3,5\")"))
        };
        let (from, to) = match piece.split_once('-') {
            Some((a, b)) => (num(a)?, if b.trim().is_empty() { total } else { num(b)? }),
            None => {
                let n = num(piece)?;
                (n, n)
            }
        };
        if from == 0 || from > total || to > total || from > to {
            return Err(format!(
                "{what}s {spec:?}: {piece:?} is outside 1-{total} (there are {total} {what}s)"
            ));
        }
        for (n, seen) in seen.iter_mut().enumerate().take(to + 1).skip(from) {
            if !*seen {
                *seen = true;
                out.push(n);
            }
        }
    }
    if out.is_empty() {
        return Err(format!("{what}s {spec:?} names no {what}"));
    }
    Ok(out)
}

/// The part of a rendered text one call returns: the characters from
/// `offset`, at most `max`, cut at a line's start where it can be (a
/// first line longer than `max` is cut inside). Lines after the cut are
/// counted, not kept, so `pos` ends as the whole text's length.
#[derive(Debug, Default)]
pub struct Window {
    offset: usize,
    max: usize,
    /// Characters seen so far.
    pub pos: usize,
    pub kept: String,
    kept_chars: usize,
    /// Where the next part starts, once the window is full.
    pub next: Option<usize>,
}

impl Window {
    pub fn new(offset: usize, max: usize) -> Self {
        Window {
            offset,
            max,
            ..Window::default()
        }
    }

    pub fn kept_chars(&self) -> usize {
        self.kept_chars
    }

    /// Adds one line (with its `\n`).
    pub fn line(&mut self, line: &str) {
        let n = line.chars().count();
        let p = self.pos;
        self.pos += n;
        if self.next.is_some() || p + n <= self.offset {
            return;
        }
        let skip = self.offset.saturating_sub(p);
        let rest = n - skip;
        let room = self.max - self.kept_chars;
        let from = line.char_indices().nth(skip).map_or(line.len(), |(i, _)| i);
        if rest <= room {
            self.kept.push_str(&line[from..]);
            self.kept_chars += rest;
        } else if self.kept_chars == 0 {
            let to = line[from..]
                .char_indices()
                .nth(room)
                .map_or(line.len(), |(i, _)| from + i);
            self.kept.push_str(&line[from..to]);
            self.kept_chars += room;
            self.next = Some(p + skip + room);
        } else {
            self.next = Some(p + skip);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn a_window_keeps_whole_lines_from_its_offset() {
        let mut w = Window::new(0, 10);
        for l in ["abc\n", "defg\n", "hijk\n", "lm\n"] {
            w.line(l);
        }
        assert_eq!((w.kept.as_str(), w.next, w.pos), ("abc\ndefg\n", Some(9), 17));
        let mut w = Window::new(9, 10);
        for l in ["abc\n", "defg\n", "hijk\n", "lm\n"] {
            w.line(l);
        }
        assert_eq!((w.kept.as_str(), w.next), ("hijk\nlm\n", None));
        let mut w = Window::new(2, 3);
        w.line("αβγδεζ\n");
        assert_eq!((w.kept.as_str(), w.next), ("γδε", Some(5)));
    }

    #[test]
    fn targets_resolve_against_the_source_folder() {
        assert_eq!(
            resolve("ppt/slides", "../notesSlides/notesSlide1.xml"),
            "ppt/notesSlides/notesSlide1.xml"
        );
        assert_eq!(resolve("word", "media/a.png"), "word/media/a.png");
        assert_eq!(resolve("word", "/customXml/item1.xml"), "customXml/item1.xml");
        assert_eq!(resolve("", "word/document.xml"), "word/document.xml");
    }

    #[test]
    fn ranges_read_like_the_pdf_tool_s() {
        assert_eq!(parse_ranges("1-3,5", 6, "slide").unwrap(), vec![1, 2, 3, 5]);
        assert_eq!(parse_ranges("4-", 6, "slide").unwrap(), vec![4, 5, 6]);
        assert!(parse_ranges("7", 6, "slide").unwrap_err().contains("outside 1-6"));
        assert!(parse_ranges("x", 6, "slide").is_err());
    }

    #[test]
    fn the_parser_resolves_namespaces_and_references() {
        let xml = r#"<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:t a="1&amp;2">x &lt; y &#x4E2D;</w:t><w:br/></w:document>"#;
        let mut x = Xml::new(xml);
        let mut text = String::new();
        let mut opened = Vec::new();
        while let Some(n) = x.next().unwrap() {
            match n {
                Node::Open(t) => {
                    assert_eq!(t.ns, Ns::W);
                    if t.local() == "t" {
                        assert_eq!(t.attr("a").unwrap(), "1&2");
                    }
                    opened.push(t.local().to_owned());
                }
                Node::Text(t) => text.push_str(&t),
                Node::Close(..) => {}
            }
        }
        assert_eq!(text, "x < y 中");
        assert_eq!(opened, ["document", "t", "br"]);
        assert!(Xml::new("<a><b></a>").next().is_ok());
        let mut broken = Xml::new("<a><b></a>");
        let mut err = None;
        loop {
            match broken.next() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        assert!(err.is_some());
    }
}
