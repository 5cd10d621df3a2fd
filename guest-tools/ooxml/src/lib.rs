//! The Office Open XML plumbing the `docx` and `pptx` writers share: a
//! package built whole in memory ([`Package`]: parts, `[Content_Types].xml`,
//! deflate-compressed zip), relationships ([`Rels`]), core and app
//! properties, XML escaping ([`esc`]), PNG and JPEG files read and measured
//! from their headers ([`read_image`]) and a native DrawingML bar chart part
//! ([`bar_chart_xml`]) that Word, PowerPoint and LibreOffice render from its
//! cached values.
//!
//! [`read`] opens existing packages for the docx and pptx `text` operations:
//! bounded, sniffed by content, with a namespace-aware pull parser.
//! [`edit`] changes text in their parts and writes the package again with
//! every untouched entry copied raw, staged as an overwrite proposal.
//!
//! Both writers hand-write their XML: the formats' few parts they need are
//! small, and a hand-written part is easy to check against the schema.

mod chart;
pub mod edit;
mod image;
mod package;
pub mod read;

pub use chart::bar_chart_xml;
pub use image::{Image, ImageFormat, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, parse_image, read_image};
pub use package::{Package, Rels, app_xml, check_extension, core_xml, file_name, save};

/// Relationship types (`Type` attributes of a `.rels` part).
pub mod rel {
    pub const OFFICE_DOCUMENT: &str =
        "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument";
    pub const CORE: &str = "http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties";
    pub const APP: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/extended-properties";
    pub const IMAGE: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/image";
    pub const CHART: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/chart";
    pub const STYLES: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles";
    pub const NUMBERING: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/numbering";
    pub const SETTINGS: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/settings";
    pub const THEME: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/theme";
    pub const SLIDE: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/slide";
    pub const SLIDE_LAYOUT: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/slideLayout";
    pub const SLIDE_MASTER: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/slideMaster";
    pub const PRES_PROPS: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/presProps";
    pub const VIEW_PROPS: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/viewProps";
    pub const TABLE_STYLES: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/tableStyles";
}

/// Content types of the parts both writers use.
pub mod ct {
    pub const RELS: &str = "application/vnd.openxmlformats-package.relationships+xml";
    pub const XML: &str = "application/xml";
    pub const CORE: &str = "application/vnd.openxmlformats-package.core-properties+xml";
    pub const APP: &str = "application/vnd.openxmlformats-officedocument.extended-properties+xml";
    pub const CHART: &str = "application/vnd.openxmlformats-officedocument.drawingml.chart+xml";
    pub const THEME: &str = "application/vnd.openxmlformats-officedocument.theme+xml";
}

/// The XML declaration every part starts with.
pub const XML_DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n";

/// EMUs (the unit of DrawingML lengths) per millimetre, inch and point.
pub const EMU_PER_MM: i64 = 36_000;
pub const EMU_PER_INCH: i64 = 914_400;
pub const EMU_PER_PT: i64 = 12_700;

/// Escapes `text` for element content and attribute values, and drops the
/// characters XML 1.0 cannot hold (control characters other than tab,
/// newline and carriage return; U+FFFE and U+FFFF), which would make the
/// part unreadable.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// A number as XML writes it: integers without a fraction, others as Rust
/// prints them (shortest round-trip form, `.` as decimal separator).
pub fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_text_and_drops_what_xml_cannot_hold() {
        assert_eq!(esc("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;");
        assert_eq!(esc("Café Straße 100 ₫ 中文"), "Café Straße 100 ₫ 中文");
        assert_eq!(esc("bell\u{7} tab\t nl\n \u{FFFE}"), "bell tab\t nl\n ");
    }

    #[test]
    fn numbers_print_plainly() {
        assert_eq!(num(12.0), "12");
        assert_eq!(num(-3.25), "-3.25");
        assert_eq!(num(0.1), "0.1");
    }
}
