//! Opening PDF bytes (size cap, header check, password) and `info`.

use lopdf::{Document, LoadOptions, Object};
use serde::Serialize;

use crate::{PdfError, decrypt, from_lopdf};

/// The largest PDF the tool opens: 256 MiB.
pub const MAX_PDF_BYTES: u64 = 256 * 1024 * 1024;
/// The most any one stream may decompress to while loading or extracting text.
pub(crate) const MAX_STREAM_BYTES: usize = 256 * 1024 * 1024;

/// Loads PDF bytes, decrypting with `password` (an empty user password is
/// tried on its own). An encrypted file that needs a password and got none is
/// [`PdfError::Encrypted`]; one whose password does not fit is
/// [`PdfError::WrongPassword`].
pub fn open(bytes: &[u8], password: Option<&str>) -> Result<Document, PdfError> {
    if bytes.len() as u64 > MAX_PDF_BYTES {
        return Err(PdfError::TooLarge {
            size: bytes.len() as u64,
            limit: MAX_PDF_BYTES,
        });
    }
    // lopdf looks for the header anywhere; a PDF has it in its first kilobyte.
    let head = &bytes[..bytes.len().min(1024)];
    if !head.windows(5).any(|w| w == b"%PDF-") {
        return Err(PdfError::NotPdf);
    }
    let options = LoadOptions {
        password: password.map(str::to_owned),
        max_decompressed_size: Some(MAX_STREAM_BYTES),
        ..LoadOptions::default()
    };
    let doc = match Document::load_mem_with_options(bytes, options) {
        // lopdf removes /Encrypt once it has decrypted.
        Ok(doc) if !doc.trailer.has(b"Encrypt") => doc,
        // lopdf stops at encryption poppler opens (no /ID, crypt filters in
        // clear with a user password, odd lengths): read it as poppler does.
        // That also says whether a password is missing or wrong.
        Ok(locked) => decrypt::open(bytes, password, Some(&locked))?,
        Err(lopdf::Error::InvalidPassword | lopdf::Error::Decryption(_)) => decrypt::open(bytes, password, None)?,
        Err(e) => return Err(from_lopdf(e)),
    };
    if doc.get_pages().is_empty() {
        return Err(PdfError::Malformed("no page could be found in it".into()));
    }
    Ok(doc)
}

/// What `info` reports about a PDF.
#[derive(Debug, Clone, Serialize)]
pub struct PdfInfo {
    pub pages: u32,
    pub version: String,
    pub encrypted: bool,
    pub title: Option<String>,
    pub author: Option<String>,
    pub subject: Option<String>,
    pub keywords: Option<String>,
    pub creator: Option<String>,
    pub producer: Option<String>,
    pub creation_date: Option<String>,
    pub modification_date: Option<String>,
    /// Each page's size in points (1/72 inch), width by height, after its rotation.
    pub page_sizes: Vec<[f64; 2]>,
}

/// Page count, version, metadata, encryption and page sizes of an opened document.
pub fn info(doc: &Document) -> PdfInfo {
    let meta = doc
        .trailer
        .get(b"Info")
        .ok()
        .and_then(|o| doc.dereference(o).ok())
        .and_then(|(_, o)| o.as_dict().ok());
    let field = |key: &[u8]| -> Option<String> {
        let value = meta?.get(key).ok()?;
        let (_, value) = doc.dereference(value).ok()?;
        let text = text_string(value)?;
        let text = text.trim_matches(char::from(0)).trim().to_owned();
        (!text.is_empty()).then_some(text)
    };
    let pages = doc.get_pages();
    let page_sizes = pages.values().map(|id| page_size(doc, *id)).collect();
    PdfInfo {
        pages: u32::try_from(pages.len()).unwrap_or(u32::MAX),
        version: doc.version.clone(),
        encrypted: doc.was_encrypted() || doc.trailer.has(b"Encrypt"),
        title: field(b"Title"),
        author: field(b"Author"),
        subject: field(b"Subject"),
        keywords: field(b"Keywords"),
        creator: field(b"Creator"),
        producer: field(b"Producer"),
        creation_date: field(b"CreationDate").map(|d| pdf_date(&d)),
        modification_date: field(b"ModDate").map(|d| pdf_date(&d)),
        page_sizes,
    }
}

/// A PDF text string (PDFDocEncoding, or UTF-16 with a byte-order mark).
pub(crate) fn text_string(value: &Object) -> Option<String> {
    let bytes = value.as_str().ok()?;
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        let units: Vec<u16> = rest.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
        return Some(String::from_utf16_lossy(&units));
    }
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return Some(String::from_utf8_lossy(rest).into_owned());
    }
    // PDFDocEncoding matches Latin-1 for the printable range that matters here.
    Some(bytes.iter().map(|&b| char::from(b)).collect())
}

/// `D:20240131120000+01'00'` as `2024-01-31T12:00:00+01:00`; anything else as it is.
fn pdf_date(raw: &str) -> String {
    let s = raw.strip_prefix("D:").unwrap_or(raw);
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    if digits.len() < 4 {
        return raw.to_owned();
    }
    let part = |from: usize, len: usize, default: &str| digits.get(from..from + len).unwrap_or(default).to_owned();
    let mut out = format!(
        "{}-{}-{}T{}:{}:{}",
        part(0, 4, "0000"),
        part(4, 2, "01"),
        part(6, 2, "01"),
        part(8, 2, "00"),
        part(10, 2, "00"),
        part(12, 2, "00")
    );
    let tz = &s[digits.len().min(s.len())..];
    if tz.starts_with('Z') {
        out.push('Z');
    } else if let Some(sign) = tz.chars().next().filter(|c| *c == '+' || *c == '-') {
        let rest: String = tz[1..].chars().filter(char::is_ascii_digit).collect();
        if rest.len() >= 4 {
            out.push_str(&format!("{sign}{}:{}", &rest[..2], &rest[2..4]));
        } else if rest.len() >= 2 {
            out.push_str(&format!("{sign}{}:00", &rest[..2]));
        }
    }
    out
}

/// A page's size from its (possibly inherited) MediaBox, swapped for a quarter-turn rotation.
pub(crate) fn page_size(doc: &Document, page: lopdf::ObjectId) -> [f64; 2] {
    let a4 = [595.28, 841.89];
    let Some(bbox) = inherited(doc, page, b"MediaBox") else {
        return a4;
    };
    let Ok(items) = bbox.as_array() else { return a4 };
    let nums: Vec<f64> = items
        .iter()
        .filter_map(|o| doc.dereference(o).ok().and_then(|(_, o)| number(o)))
        .collect();
    if nums.len() != 4 {
        return a4;
    }
    let (w, h) = ((nums[2] - nums[0]).abs(), (nums[3] - nums[1]).abs());
    let rotate = inherited(doc, page, b"Rotate").and_then(number).unwrap_or(0.0) as i64;
    let (w, h) = if rotate.rem_euclid(180) == 90 { (h, w) } else { (w, h) };
    [(w * 100.0).round() / 100.0, (h * 100.0).round() / 100.0]
}

/// A page attribute, looked up the page tree (at most 64 levels).
fn inherited<'a>(doc: &'a Document, page: lopdf::ObjectId, key: &[u8]) -> Option<&'a Object> {
    let mut dict = doc.get_dictionary(page).ok()?;
    for _ in 0..64 {
        if let Ok(v) = dict.get(key) {
            return doc.dereference(v).ok().map(|(_, o)| o);
        }
        let parent = dict.get(b"Parent").ok()?.as_reference().ok()?;
        dict = doc.get_dictionary(parent).ok()?;
    }
    None
}

pub(crate) fn number(o: &Object) -> Option<f64> {
    match o {
        Object::Integer(i) => Some(*i as f64),
        Object::Real(r) => Some(f64::from(*r)),
        _ => None,
    }
}
