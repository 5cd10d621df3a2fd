//! The package's parts: `word/document.xml` from the blocks, the fixed
//! styles, numbering (one bullet definition, one restarting numbered
//! definition per numbered list), settings, media and chart parts.

use deskhand_guest::ToolError;
use deskhand_guest::document::{Block, Document, cell_text};
use deskhand_ooxml::{EMU_PER_MM, Image, Package, Rels, XML_DECL, app_xml, core_xml, ct, esc, rel};

/// A4 with 25.4 mm (1 inch) margins, in twentieths of a point.
const PAGE_W: i64 = 11_906;
const PAGE_H: i64 = 16_838;
const MARGIN: i64 = 1_440;
const TEXT_W: i64 = PAGE_W - 2 * MARGIN;
/// EMUs per twip.
const EMU_PER_TWIP: i64 = 635;
/// The most image bytes one document embeds in all.
const MAX_TOTAL_IMAGE_BYTES: usize = 256 * 1024 * 1024;
/// A chart's size on the page.
const CHART_W_MM: i64 = 150;
const CHART_H_MM: i64 = 85;

const CT_DOCUMENT: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml";
pub(crate) const CT_STYLES: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml";
pub(crate) const CT_NUMBERING: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.numbering+xml";
const CT_SETTINGS: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.settings+xml";

#[derive(Default, Debug)]
pub struct Stats {
    pub tables: usize,
    pub images: usize,
    pub charts: usize,
}

/// Reads an image: (path, argument name) -> the image.
pub type LoadImage<'a> = dyn FnMut(&str, &str) -> Result<Image, ToolError> + 'a;

/// The whole .docx as bytes.
pub fn build(doc: &Document, load: &mut LoadImage<'_>) -> Result<(Vec<u8>, Stats), ToolError> {
    let mut pkg = Package::new();
    let mut doc_rels = Rels::new();
    doc_rels.add(rel::STYLES, "styles.xml");
    doc_rels.add(rel::NUMBERING, "numbering.xml");
    doc_rels.add(rel::SETTINGS, "settings.xml");
    let mut stats = Stats::default();
    let mut body = String::new();
    let mut numbered_lists = 0u32;
    let mut image_bytes = 0usize;
    // docPr ids must be unique in the document.
    let mut drawing_id = 0u32;

    if let Some(title) = &doc.title {
        body.push_str(&para("Title", None, &runs(title, "")));
    }
    for (i, block) in doc.blocks.iter().enumerate() {
        match block {
            Block::Heading { text, level } => {
                body.push_str(&para(&format!("Heading{level}"), None, &runs(text, "")));
            }
            Block::Paragraph { text } => body.push_str(&para("Normal", None, &runs(text, ""))),
            Block::List { items, numbered } => {
                let num_id = if *numbered {
                    numbered_lists += 1;
                    numbered_lists + 1
                } else {
                    1
                };
                let num_pr = format!("<w:numPr><w:ilvl w:val=\"0\"/><w:numId w:val=\"{num_id}\"/></w:numPr>");
                for item in items {
                    body.push_str(&para("ListParagraph", Some(&num_pr), &runs(item, "")));
                }
            }
            Block::Table { header, rows, caption } => {
                stats.tables += 1;
                body.push_str(&table(header, rows));
                if let Some(c) = caption {
                    body.push_str(&para("Caption", None, &runs(c, "")));
                }
            }
            Block::Image {
                path,
                caption,
                width_mm,
            } => {
                let img = load(path, &format!("blocks[{i}].path"))?;
                image_bytes += img.bytes.len();
                if image_bytes > MAX_TOTAL_IMAGE_BYTES {
                    return Err(ToolError::InvalidArgs(format!(
                        "blocks[{i}]: the images add up to more than {} MiB; embed fewer or smaller ones",
                        MAX_TOTAL_IMAGE_BYTES / (1024 * 1024)
                    )));
                }
                stats.images += 1;
                drawing_id += 1;
                let name = format!("image{}.{}", stats.images, img.format.extension());
                let rid = doc_rels.add(rel::IMAGE, &format!("media/{name}"));
                let max_h = (PAGE_H - 2 * MARGIN) * EMU_PER_TWIP * 9 / 10;
                let (cx, cy) = img.fit(*width_mm, TEXT_W * EMU_PER_TWIP, max_h);
                let descr = caption.clone().unwrap_or_else(|| deskhand_ooxml::file_name(path));
                let graphic = format!(
                    "<a:graphicData uri=\"http://schemas.openxmlformats.org/drawingml/2006/picture\"><pic:pic>\
                     <pic:nvPicPr><pic:cNvPr id=\"{drawing_id}\" name=\"{name}\" descr=\"{d}\"/><pic:cNvPicPr/></pic:nvPicPr>\
                     <pic:blipFill><a:blip r:embed=\"{rid}\"/><a:stretch><a:fillRect/></a:stretch></pic:blipFill>\
                     <pic:spPr><a:xfrm><a:off x=\"0\" y=\"0\"/><a:ext cx=\"{cx}\" cy=\"{cy}\"/></a:xfrm>\
                     <a:prstGeom prst=\"rect\"><a:avLst/></a:prstGeom></pic:spPr></pic:pic></a:graphicData>",
                    d = esc(&descr)
                );
                body.push_str(&inline(
                    drawing_id,
                    &format!("Picture {drawing_id}"),
                    &descr,
                    cx,
                    cy,
                    &graphic,
                ));
                if let Some(c) = caption {
                    body.push_str(&para("Caption", None, &runs(c, "")));
                }
                pkg.binary(
                    &format!("word/media/{name}"),
                    img.format.extension(),
                    img.format.content_type(),
                    img.bytes,
                );
            }
            Block::Chart { title, labels, values } => {
                stats.charts += 1;
                drawing_id += 1;
                let part = format!("charts/chart{}.xml", stats.charts);
                let rid = doc_rels.add(rel::CHART, &part);
                pkg.xml(
                    &format!("word/{part}"),
                    ct::CHART,
                    deskhand_ooxml::bar_chart_xml(title.as_deref(), labels, values),
                );
                let graphic = format!(
                    "<a:graphicData uri=\"http://schemas.openxmlformats.org/drawingml/2006/chart\">\
                     <c:chart r:id=\"{rid}\"/></a:graphicData>"
                );
                let descr = title.as_deref().unwrap_or("Bar chart");
                body.push_str(&inline(
                    drawing_id,
                    &format!("Chart {drawing_id}"),
                    descr,
                    CHART_W_MM * EMU_PER_MM,
                    CHART_H_MM * EMU_PER_MM,
                    &graphic,
                ));
            }
            Block::PageBreak => body.push_str("<w:p><w:r><w:br w:type=\"page\"/></w:r></w:p>"),
        }
    }

    // Word ends a body with a paragraph, never a table; LibreOffice loops on one that does.
    if body.ends_with("</w:tbl>") {
        body.push_str("<w:p/>");
    }
    let document = format!(
        "{XML_DECL}<w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\" \
         xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\" \
         xmlns:wp=\"http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing\" \
         xmlns:a=\"http://schemas.openxmlformats.org/drawingml/2006/main\" \
         xmlns:pic=\"http://schemas.openxmlformats.org/drawingml/2006/picture\" \
         xmlns:c=\"http://schemas.openxmlformats.org/drawingml/2006/chart\"><w:body>{body}\
         <w:sectPr><w:pgSz w:w=\"{PAGE_W}\" w:h=\"{PAGE_H}\"/><w:pgMar w:top=\"{MARGIN}\" w:right=\"{MARGIN}\" \
         w:bottom=\"{MARGIN}\" w:left=\"{MARGIN}\" w:header=\"708\" w:footer=\"708\" w:gutter=\"0\"/></w:sectPr>\
         </w:body></w:document>"
    );

    let mut root = Rels::new();
    root.add(rel::OFFICE_DOCUMENT, "word/document.xml");
    root.add(rel::CORE, "docProps/core.xml");
    root.add(rel::APP, "docProps/app.xml");
    pkg.rels("_rels/.rels", &root);
    pkg.xml("word/document.xml", CT_DOCUMENT, document);
    pkg.rels("word/_rels/document.xml.rels", &doc_rels);
    pkg.xml("word/styles.xml", CT_STYLES, STYLES.into());
    pkg.xml("word/numbering.xml", CT_NUMBERING, numbering(numbered_lists));
    pkg.xml("word/settings.xml", CT_SETTINGS, SETTINGS.into());
    pkg.xml(
        "docProps/core.xml",
        ct::CORE,
        core_xml(doc.title.as_deref(), doc.subject.as_deref(), doc.author.as_deref()),
    );
    pkg.xml("docProps/app.xml", ct::APP, app_xml(""));
    let bytes = pkg
        .finish()
        .map_err(|e| ToolError::InvalidArgs(format!("the document could not be packaged: {e}")))?;
    Ok((bytes, stats))
}

/// A paragraph in `style`, with extra paragraph properties.
pub(crate) fn para(style: &str, extra_ppr: Option<&str>, runs: &str) -> String {
    format!(
        "<w:p><w:pPr><w:pStyle w:val=\"{style}\"/>{}</w:pPr>{runs}</w:p>",
        extra_ppr.unwrap_or("")
    )
}

/// Text as runs with run properties `rpr`: a newline is a line break, a
/// tab a tab.
pub(crate) fn runs(text: &str, rpr: &str) -> String {
    let rpr = if rpr.is_empty() {
        String::new()
    } else {
        format!("<w:rPr>{rpr}</w:rPr>")
    };
    let mut out = format!("<w:r>{rpr}");
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push_str("<w:br/>");
        }
        for (j, piece) in line.trim_end_matches('\r').split('\t').enumerate() {
            if j > 0 {
                out.push_str("<w:tab/>");
            }
            if !piece.is_empty() {
                out.push_str(&format!("<w:t xml:space=\"preserve\">{}</w:t>", esc(piece)));
            }
        }
    }
    out.push_str("</w:r>");
    out
}

/// A drawing in its own centred paragraph.
fn inline(id: u32, name: &str, descr: &str, cx: i64, cy: i64, graphic_data: &str) -> String {
    format!(
        "<w:p><w:pPr><w:jc w:val=\"center\"/></w:pPr><w:r><w:drawing><wp:inline distT=\"0\" distB=\"0\" distL=\"0\" distR=\"0\">\
         <wp:extent cx=\"{cx}\" cy=\"{cy}\"/><wp:effectExtent l=\"0\" t=\"0\" r=\"0\" b=\"0\"/>\
         <wp:docPr id=\"{id}\" name=\"{}\" descr=\"{}\"/><wp:cNvGraphicFramePr>\
         <a:graphicFrameLocks noChangeAspect=\"1\"/></wp:cNvGraphicFramePr><a:graphic>{graphic_data}</a:graphic>\
         </wp:inline></w:drawing></w:r></w:p>",
        esc(name),
        esc(descr)
    )
}

/// A full-width table: bordered cells, the header row bold on a fill and
/// repeated on every page, numbers right-aligned.
pub(crate) fn table(header: &[String], rows: &[Vec<serde_json::Value>]) -> String {
    let cols = header.len().max(1) as i64;
    let col_w = TEXT_W / cols;
    let border = |side: &str| format!("<w:{side} w:val=\"single\" w:sz=\"4\" w:space=\"0\" w:color=\"8EA9DB\"/>");
    let mut x = format!(
        "<w:tbl><w:tblPr><w:tblStyle w:val=\"TableGrid\"/><w:tblW w:w=\"{}\" w:type=\"dxa\"/><w:tblBorders>{}{}{}{}{}{}</w:tblBorders>\
         <w:tblLayout w:type=\"fixed\"/><w:tblLook w:val=\"04A0\" w:firstRow=\"1\" w:lastRow=\"0\" w:firstColumn=\"0\" \
         w:lastColumn=\"0\" w:noHBand=\"0\" w:noVBand=\"1\"/></w:tblPr><w:tblGrid>",
        col_w * cols,
        border("top"),
        border("left"),
        border("bottom"),
        border("right"),
        border("insideH"),
        border("insideV")
    );
    for _ in 0..cols {
        x.push_str(&format!("<w:gridCol w:w=\"{col_w}\"/>"));
    }
    x.push_str("</w:tblGrid><w:tr><w:trPr><w:tblHeader/></w:trPr>");
    for h in header {
        x.push_str(&format!(
            "<w:tc><w:tcPr><w:tcW w:w=\"{col_w}\" w:type=\"dxa\"/><w:shd w:val=\"clear\" w:color=\"auto\" w:fill=\"D9E1F2\"/></w:tcPr>\
             <w:p><w:pPr><w:pStyle w:val=\"TableText\"/></w:pPr>{}</w:p></w:tc>",
            runs(h, "<w:b/>")
        ));
    }
    x.push_str("</w:tr>");
    for row in rows {
        x.push_str("<w:tr><w:trPr><w:cantSplit/></w:trPr>");
        for cell in row {
            let jc = if cell.is_number() {
                "<w:jc w:val=\"right\"/>"
            } else {
                ""
            };
            x.push_str(&format!(
                "<w:tc><w:tcPr><w:tcW w:w=\"{col_w}\" w:type=\"dxa\"/></w:tcPr>\
                 <w:p><w:pPr><w:pStyle w:val=\"TableText\"/>{jc}</w:pPr>{}</w:p></w:tc>",
                runs(&cell_text(cell), "")
            ));
        }
        x.push_str("</w:tr>");
    }
    x.push_str("</w:tbl>");
    x
}

/// Bullets share numId 1; numbered list n is numId n + 1, restarting at 1.
fn numbering(numbered_lists: u32) -> String {
    format!(
        "{XML_DECL}<w:numbering xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\">{}{}</w:numbering>",
        abstract_nums(0),
        nums(0, 1, numbered_lists)
    )
}

/// The two list definitions: bullets as `abstractNumId` `first`, decimal
/// numbers as `first + 1`.
pub(crate) fn abstract_nums(first: u32) -> String {
    let lvl = |fmt: &str, text: &str| {
        format!(
            "<w:multiLevelType w:val=\"singleLevel\"/><w:lvl w:ilvl=\"0\"><w:start w:val=\"1\"/><w:numFmt w:val=\"{fmt}\"/>\
             <w:lvlText w:val=\"{text}\"/><w:lvlJc w:val=\"left\"/><w:pPr><w:ind w:left=\"720\" w:hanging=\"360\"/></w:pPr></w:lvl>"
        )
    };
    format!(
        "<w:abstractNum w:abstractNumId=\"{first}\">{}</w:abstractNum><w:abstractNum w:abstractNumId=\"{}\">{}</w:abstractNum>",
        lvl("bullet", "•"),
        first + 1,
        lvl("decimal", "%1.")
    )
}

/// The lists themselves: bullets are numId `bullet_id` (on abstract
/// `first_abstract`), numbered list n is `bullet_id + n`, restarting at 1.
pub(crate) fn nums(first_abstract: u32, bullet_id: u32, numbered_lists: u32) -> String {
    let mut x = format!("<w:num w:numId=\"{bullet_id}\"><w:abstractNumId w:val=\"{first_abstract}\"/></w:num>");
    for n in 1..=numbered_lists {
        x.push_str(&format!(
            "<w:num w:numId=\"{}\"><w:abstractNumId w:val=\"{}\"/><w:lvlOverride w:ilvl=\"0\">\
             <w:startOverride w:val=\"1\"/></w:lvlOverride></w:num>",
            bullet_id + n,
            first_abstract + 1
        ));
    }
    x
}

const SETTINGS: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
<w:settings xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\">\
<w:defaultTabStop w:val=\"720\"/><w:characterSpacingControl w:val=\"doNotCompress\"/>\
<w:compat><w:compatSetting w:name=\"compatibilityMode\" w:uri=\"http://schemas.microsoft.com/office/word\" w:val=\"15\"/></w:compat>\
</w:settings>";

pub(crate) const STYLES: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
<w:styles xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\">\
<w:docDefaults><w:rPrDefault><w:rPr><w:rFonts w:ascii=\"Calibri\" w:hAnsi=\"Calibri\" w:eastAsia=\"SimSun\" w:cs=\"Arial\"/>\
<w:sz w:val=\"22\"/><w:szCs w:val=\"22\"/><w:lang w:val=\"en-US\" w:eastAsia=\"zh-CN\" w:bidi=\"ar-SA\"/></w:rPr></w:rPrDefault>\
<w:pPrDefault><w:pPr><w:spacing w:after=\"160\" w:line=\"264\" w:lineRule=\"auto\"/></w:pPr></w:pPrDefault></w:docDefaults>\
<w:style w:type=\"paragraph\" w:default=\"1\" w:styleId=\"Normal\"><w:name w:val=\"Normal\"/><w:qFormat/></w:style>\
<w:style w:type=\"paragraph\" w:styleId=\"Title\"><w:name w:val=\"Title\"/><w:basedOn w:val=\"Normal\"/><w:next w:val=\"Normal\"/><w:qFormat/>\
<w:pPr><w:spacing w:after=\"240\" w:line=\"240\" w:lineRule=\"auto\"/><w:contextualSpacing/></w:pPr>\
<w:rPr><w:color w:val=\"1F3864\"/><w:kern w:val=\"28\"/><w:sz w:val=\"52\"/><w:szCs w:val=\"52\"/></w:rPr></w:style>\
<w:style w:type=\"paragraph\" w:styleId=\"Heading1\"><w:name w:val=\"heading 1\"/><w:basedOn w:val=\"Normal\"/><w:next w:val=\"Normal\"/><w:uiPriority w:val=\"9\"/><w:qFormat/>\
<w:pPr><w:keepNext/><w:keepLines/><w:spacing w:before=\"360\" w:after=\"120\"/><w:outlineLvl w:val=\"0\"/></w:pPr>\
<w:rPr><w:b/><w:bCs/><w:color w:val=\"2F5496\"/><w:sz w:val=\"32\"/><w:szCs w:val=\"32\"/></w:rPr></w:style>\
<w:style w:type=\"paragraph\" w:styleId=\"Heading2\"><w:name w:val=\"heading 2\"/><w:basedOn w:val=\"Normal\"/><w:next w:val=\"Normal\"/><w:uiPriority w:val=\"9\"/><w:qFormat/>\
<w:pPr><w:keepNext/><w:keepLines/><w:spacing w:before=\"240\" w:after=\"80\"/><w:outlineLvl w:val=\"1\"/></w:pPr>\
<w:rPr><w:b/><w:bCs/><w:color w:val=\"2F5496\"/><w:sz w:val=\"26\"/><w:szCs w:val=\"26\"/></w:rPr></w:style>\
<w:style w:type=\"paragraph\" w:styleId=\"Heading3\"><w:name w:val=\"heading 3\"/><w:basedOn w:val=\"Normal\"/><w:next w:val=\"Normal\"/><w:uiPriority w:val=\"9\"/><w:qFormat/>\
<w:pPr><w:keepNext/><w:keepLines/><w:spacing w:before=\"200\" w:after=\"60\"/><w:outlineLvl w:val=\"2\"/></w:pPr>\
<w:rPr><w:b/><w:bCs/><w:color w:val=\"1F3763\"/><w:sz w:val=\"24\"/><w:szCs w:val=\"24\"/></w:rPr></w:style>\
<w:style w:type=\"paragraph\" w:styleId=\"ListParagraph\"><w:name w:val=\"List Paragraph\"/><w:basedOn w:val=\"Normal\"/><w:uiPriority w:val=\"34\"/><w:qFormat/>\
<w:pPr><w:spacing w:after=\"60\"/><w:ind w:left=\"720\"/><w:contextualSpacing/></w:pPr></w:style>\
<w:style w:type=\"paragraph\" w:styleId=\"Caption\"><w:name w:val=\"caption\"/><w:basedOn w:val=\"Normal\"/><w:next w:val=\"Normal\"/><w:qFormat/>\
<w:pPr><w:spacing w:before=\"60\" w:after=\"200\"/><w:jc w:val=\"center\"/></w:pPr><w:rPr><w:i/><w:iCs/><w:color w:val=\"44546A\"/><w:sz w:val=\"18\"/><w:szCs w:val=\"18\"/></w:rPr></w:style>\
<w:style w:type=\"paragraph\" w:styleId=\"TableText\"><w:name w:val=\"Table Text\"/><w:basedOn w:val=\"Normal\"/><w:qFormat/>\
<w:pPr><w:spacing w:before=\"40\" w:after=\"40\" w:line=\"240\" w:lineRule=\"auto\"/></w:pPr><w:rPr><w:sz w:val=\"20\"/><w:szCs w:val=\"20\"/></w:rPr></w:style>\
<w:style w:type=\"table\" w:default=\"1\" w:styleId=\"TableNormal\"><w:name w:val=\"Normal Table\"/><w:uiPriority w:val=\"99\"/><w:semiHidden/>\
<w:tblPr><w:tblInd w:w=\"0\" w:type=\"dxa\"/><w:tblCellMar><w:top w:w=\"0\" w:type=\"dxa\"/><w:left w:w=\"108\" w:type=\"dxa\"/>\
<w:bottom w:w=\"0\" w:type=\"dxa\"/><w:right w:w=\"108\" w:type=\"dxa\"/></w:tblCellMar></w:tblPr></w:style>\
<w:style w:type=\"table\" w:styleId=\"TableGrid\"><w:name w:val=\"Table Grid\"/><w:basedOn w:val=\"TableNormal\"/><w:uiPriority w:val=\"39\"/>\
<w:pPr><w:spacing w:after=\"0\" w:line=\"240\" w:lineRule=\"auto\"/></w:pPr><w:tblPr><w:tblBorders>\
<w:top w:val=\"single\" w:sz=\"4\" w:space=\"0\" w:color=\"auto\"/><w:left w:val=\"single\" w:sz=\"4\" w:space=\"0\" w:color=\"auto\"/>\
<w:bottom w:val=\"single\" w:sz=\"4\" w:space=\"0\" w:color=\"auto\"/><w:right w:val=\"single\" w:sz=\"4\" w:space=\"0\" w:color=\"auto\"/>\
<w:insideH w:val=\"single\" w:sz=\"4\" w:space=\"0\" w:color=\"auto\"/><w:insideV w:val=\"single\" w:sz=\"4\" w:space=\"0\" w:color=\"auto\"/>\
</w:tblBorders></w:tblPr></w:style>\
</w:styles>";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use serde_json::json;

    pub(crate) fn every_block() -> Document {
        serde_json::from_value(json!({"title": "Report & <more>", "author": "Zoë", "blocks": [
            {"type": "heading", "text": "Summary"},
            {"type": "heading", "text": "Sub", "level": 2},
            {"type": "heading", "text": "Subsub", "level": 3},
            {"type": "paragraph", "text": "Café Straße 100 ₫ 中文\nsecond line\twith tab"},
            {"type": "list", "items": ["one", "two"]},
            {"type": "list", "items": ["first", "second"], "numbered": true},
            {"type": "list", "items": ["again"], "numbered": true},
            {"type": "table", "header": ["Item", "Amount"], "rows": [["Food", 12.5], ["Travel", null]], "caption": "Costs"},
            {"type": "image", "path": "a.png", "caption": "A picture", "width_mm": 40},
            {"type": "chart", "title": "Spend", "labels": ["Food", "Travel"], "values": [12.5, 3]},
            {"type": "page_break"},
            {"type": "paragraph", "text": "after the break"}
        ]}))
        .unwrap()
    }

    fn parts(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        (0..zip.len())
            .map(|i| {
                let mut f = zip.by_index(i).unwrap();
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut f, &mut out).unwrap();
                (f.name().unwrap().into_owned(), out)
            })
            .collect()
    }

    #[test]
    fn every_part_is_well_formed_xml() {
        let png = include_bytes!("../../ooxml/tests/gradient-40x20.png").to_vec();
        let mut load = |_: &str, _: &str| Ok(deskhand_ooxml::parse_image(png.clone()).unwrap());
        let (bytes, stats) = build(&every_block(), &mut load).unwrap();
        assert_eq!((stats.tables, stats.images, stats.charts), (1, 1, 1));
        // DOCX_DUMP=file keeps the built package, to open it by hand.
        if let Ok(dump) = std::env::var("DOCX_DUMP") {
            std::fs::write(dump, &bytes).unwrap();
        }
        let parts = parts(&bytes);
        assert_eq!(parts[0].0, "[Content_Types].xml");
        for (name, data) in &parts {
            if !(name.ends_with(".xml") || name.ends_with(".rels")) {
                continue;
            }
            let text = std::str::from_utf8(data).unwrap();
            let mut reader = quick_xml::Reader::from_str(text);
            loop {
                match reader.read_event() {
                    Ok(quick_xml::events::Event::Eof) => break,
                    Ok(_) => {}
                    Err(e) => panic!("{name}: {e}"),
                }
            }
        }
        let document = &parts.iter().find(|(n, _)| n == "word/document.xml").unwrap().1;
        let document = String::from_utf8_lossy(document);
        assert!(document.contains("Café Straße 100 ₫ 中文") && document.contains("Report &amp; &lt;more&gt;"));
        assert!(
            document.contains("<w:numId w:val=\"3\"/>"),
            "the second numbered list restarts"
        );
        let names: Vec<&str> = parts.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"word/media/image1.png") && names.contains(&"word/charts/chart1.xml"));
    }

    #[test]
    fn a_missing_image_fails_the_whole_build() {
        let mut load = |p: &str, arg: &str| Err(ToolError::InvalidArgs(format!("{arg}: {p} missing")));
        let err = build(&every_block(), &mut load).unwrap_err();
        assert!(format!("{err:?}").contains("blocks[8].path"), "{err:?}");
    }
}
