//! The package: parts gathered in memory, then one zip written in one go
//! and saved with the sdk's never-overwrite write, so a failure anywhere
//! leaves no file behind.

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use deskhand_guest::{ToolError, write_new};
use zip::CompressionMethod;
use zip::write::{SimpleFileOptions, ZipWriter};

use crate::{XML_DECL, ct, esc};

/// An OOXML package being built: its parts in the order they were added,
/// the content type of each, and the default content types by extension.
#[derive(Default)]
pub struct Package {
    parts: Vec<(String, Vec<u8>, bool)>,
    defaults: BTreeMap<String, String>,
    overrides: Vec<(String, String)>,
}

impl Package {
    pub fn new() -> Self {
        let mut p = Package::default();
        p.defaults.insert("rels".into(), ct::RELS.into());
        p.defaults.insert("xml".into(), ct::XML.into());
        p
    }

    /// Adds an XML part (a name such as `word/document.xml`, no leading
    /// slash) with its content type.
    pub fn xml(&mut self, name: &str, content_type: &str, xml: String) {
        self.overrides.push((name.into(), content_type.into()));
        self.parts.push((name.into(), xml.into_bytes(), true));
    }

    /// Adds a relationships part; its content type is the `rels` default.
    pub fn rels(&mut self, name: &str, rels: &Rels) {
        self.parts.push((name.into(), rels.xml().into_bytes(), true));
    }

    /// Adds a binary part (an image) whose content type comes from its
    /// extension; it is stored, not deflated, being compressed already.
    pub fn binary(&mut self, name: &str, extension: &str, content_type: &str, bytes: Vec<u8>) {
        self.defaults.insert(extension.into(), content_type.into());
        self.parts.push((name.into(), bytes, false));
    }

    fn content_types(&self) -> String {
        let mut x = String::from(XML_DECL);
        x.push_str("<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">");
        for (ext, ct) in &self.defaults {
            x.push_str(&format!(
                "<Default Extension=\"{}\" ContentType=\"{}\"/>",
                esc(ext),
                esc(ct)
            ));
        }
        for (name, ct) in &self.overrides {
            x.push_str(&format!(
                "<Override PartName=\"/{}\" ContentType=\"{}\"/>",
                esc(name),
                esc(ct)
            ));
        }
        x.push_str("</Types>");
        x
    }

    /// The whole package as zip bytes, `[Content_Types].xml` first.
    pub fn finish(self) -> Result<Vec<u8>, String> {
        let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
        let deflated = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .large_file(false);
        let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
        let types = self.content_types();
        let mut entries = vec![("[Content_Types].xml".to_owned(), types.into_bytes(), true)];
        entries.extend(self.parts);
        for (name, bytes, compress) in entries {
            let options = if compress { deflated } else { stored };
            let options = options.large_file(bytes.len() as u64 >= u64::from(u32::MAX));
            zip.start_file(name.as_str(), options)
                .map_err(|e| format!("zipping {name}: {e}"))?;
            zip.write_all(&bytes).map_err(|e| format!("zipping {name}: {e}"))?;
        }
        let cursor = zip.finish().map_err(|e| format!("finishing the zip: {e}"))?;
        Ok(cursor.into_inner())
    }
}

/// A part's relationships: `rId1`, `rId2`, … in the order added.
#[derive(Default)]
pub struct Rels {
    items: Vec<(String, String)>,
}

impl Rels {
    pub fn new() -> Self {
        Rels::default()
    }

    /// Adds a relationship to `target` (relative to the part's folder) and
    /// returns its id.
    pub fn add(&mut self, rel_type: &str, target: &str) -> String {
        self.items.push((rel_type.into(), target.into()));
        format!("rId{}", self.items.len())
    }

    pub fn xml(&self) -> String {
        let mut x = String::from(XML_DECL);
        x.push_str("<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">");
        for (i, (ty, target)) in self.items.iter().enumerate() {
            x.push_str(&format!(
                "<Relationship Id=\"rId{}\" Type=\"{}\" Target=\"{}\"/>",
                i + 1,
                esc(ty),
                esc(target)
            ));
        }
        x.push_str("</Relationships>");
        x
    }
}

/// `docProps/core.xml`: title, subject, author and the creation time.
pub fn core_xml(title: Option<&str>, subject: Option<&str>, author: Option<&str>) -> String {
    let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let mut x = String::from(XML_DECL);
    x.push_str(
        "<cp:coreProperties xmlns:cp=\"http://schemas.openxmlformats.org/package/2006/metadata/core-properties\" \
         xmlns:dc=\"http://purl.org/dc/elements/1.1/\" xmlns:dcterms=\"http://purl.org/dc/terms/\" \
         xmlns:dcmitype=\"http://purl.org/dc/dcmitype/\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">",
    );
    if let Some(t) = title {
        x.push_str(&format!("<dc:title>{}</dc:title>", esc(t)));
    }
    if let Some(s) = subject {
        x.push_str(&format!("<dc:subject>{}</dc:subject>", esc(s)));
    }
    if let Some(a) = author {
        x.push_str(&format!("<dc:creator>{}</dc:creator>", esc(a)));
    }
    x.push_str(&format!(
        "<dcterms:created xsi:type=\"dcterms:W3CDTF\">{now}</dcterms:created>\
         <dcterms:modified xsi:type=\"dcterms:W3CDTF\">{now}</dcterms:modified></cp:coreProperties>"
    ));
    x
}

/// `docProps/app.xml`: the application that wrote the file.
pub fn app_xml(extra: &str) -> String {
    format!(
        "{XML_DECL}<Properties xmlns=\"http://schemas.openxmlformats.org/officeDocument/2006/extended-properties\" \
         xmlns:vt=\"http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes\">\
         <Application>deskhand</Application>{extra}</Properties>"
    )
}

/// Checks that `path` ends in `.ext` (case-insensitively), then writes the
/// package there as a new file (never over one; `unique` picks a free name).
/// A folder the sandbox holds read-only is refused by [`write_new`], which
/// says where new files go and how to change a granted folder instead.
pub fn save(path: &Path, ext: &str, bytes: &[u8], unique: bool) -> Result<PathBuf, ToolError> {
    check_extension(path, ext)?;
    write_new(path, bytes, unique)
}

/// Checks that `path` ends in `.ext` (case-insensitively); writers call it
/// first, before reading any image.
pub fn check_extension(path: &Path, ext: &str) -> Result<(), ToolError> {
    let matches = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(ext));
    if matches {
        Ok(())
    } else {
        Err(ToolError::InvalidArgs(format!(
            "path {}: the file must end in .{ext}",
            path.display()
        )))
    }
}

/// The name of an image file without its folders, for alt text: the
/// document never carries the host's paths.
pub fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rels_number_in_order() {
        let mut r = Rels::new();
        assert_eq!(r.add(crate::rel::IMAGE, "media/a.png"), "rId1");
        assert_eq!(r.add(crate::rel::CHART, "charts/chart1.xml"), "rId2");
        assert!(r.xml().contains("Id=\"rId2\""));
    }

    #[test]
    fn core_properties_escape() {
        let x = core_xml(Some("A & B"), None, Some("Zoë"));
        assert!(x.contains("<dc:title>A &amp; B</dc:title>") && x.contains("<dc:creator>Zoë</dc:creator>"));
    }
}
