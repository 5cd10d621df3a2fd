//! Laying blocks out on 16:9 slides, top to bottom below the title, and
//! writing the package.
//!
//! What does not fit continues on a following slide titled "… (continued)":
//! text moves on block by block (a list item by item, its numbering carried
//! on), a table row by row with its header row repeated, and an image or
//! chart that would be squeezed under a third of the content height moves to
//! the next slide whole (scaled down to fit when even an empty slide is too
//! small). A single paragraph too long for a whole slide is the one case
//! that shrinks: its box fills the content area and `normAutofit` with a
//! computed `fontScale` tells PowerPoint and LibreOffice to scale its text.
//! A `page_break` block starts a new slide.

use deskhand_guest::ToolError;
use deskhand_guest::document::{Block, cell_text};
use deskhand_ooxml::{EMU_PER_INCH, EMU_PER_PT, Image, Package, Rels, XML_DECL, app_xml, core_xml, ct, esc, rel};
use serde_json::Value;

use crate::fixed::{self, NS};

pub const SLIDE_W: i64 = 12_192_000;
pub const SLIDE_H: i64 = 6_858_000;
const GAP: i64 = 91_440;
const CHART_H: i64 = 4 * EMU_PER_INCH;
const MAX_SLIDES: usize = 2_000;
const MAX_TOTAL_IMAGE_BYTES: usize = 256 * 1024 * 1024;
const TABLE_PT: f64 = 14.0;
const CELL_MARGIN_V: i64 = 45_720;
const CELL_MARGIN_H: i64 = 91_440;
const BULLET_INDENT: i64 = 342_900;
/// Wider for numbers, so that "10." keeps its gap before the text.
const NUMBER_INDENT: i64 = 457_200;

/// Where blocks go on a slide: the content area below the title, in EMUs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    pub left: i64,
    pub top: i64,
    pub width: i64,
    pub bottom: i64,
}

impl Area {
    /// The area of the written presentation's 16:9 slides, below the title.
    pub const WIDESCREEN: Area = Area {
        left: 609_600,
        top: 1_508_760,
        width: SLIDE_W - 2 * 609_600,
        bottom: SLIDE_H - 381_000,
    };

    fn height(&self) -> i64 {
        self.bottom - self.top
    }

    /// Below this height an image or chart moves to a fresh slide instead.
    fn min_visual(&self) -> i64 {
        self.height() / 3
    }
}

/// One slide as the caller gives it.
pub struct SlideSpec {
    pub title: Option<String>,
    pub blocks: Vec<Block>,
}

/// Reads an image: (path, argument name) -> the image.
pub type LoadImage<'a> = dyn FnMut(&str, &str) -> Result<Image, ToolError> + 'a;

#[derive(Clone, Copy, PartialEq)]
enum Bullet {
    None,
    Char,
    Number(usize),
}

struct Para {
    text: String,
    pt: f64,
    bold: bool,
    italic: bool,
    color: Option<&'static str>,
    bullet: Bullet,
    align_center: bool,
}

enum Content {
    Text {
        paras: Vec<Para>,
        font_scale: Option<u32>,
    },
    Table {
        header: Vec<String>,
        rows: Vec<Vec<Value>>,
        heights: Vec<i64>,
    },
    Picture {
        image: usize,
        descr: String,
    },
    Chart {
        title: Option<String>,
        labels: Vec<String>,
        values: Vec<f64>,
    },
}

struct Placed {
    x: i64,
    y: i64,
    w: i64,
    h: i64,
    content: Content,
}

/// One slide of laid-out content.
pub struct Page {
    title: Option<String>,
    shapes: Vec<Placed>,
    y: i64,
    bottom: i64,
}

impl Page {
    fn new(title: Option<String>, area: Area) -> Self {
        Page {
            title,
            shapes: Vec::new(),
            y: area.top,
            bottom: area.bottom,
        }
    }
    fn room(&self) -> i64 {
        self.bottom - self.y
    }
    fn place(&mut self, x: i64, w: i64, h: i64, content: Content) {
        self.shapes.push(Placed {
            x,
            y: self.y,
            w,
            h,
            content,
        });
        self.y += h + GAP;
    }
}

/// True for characters about as wide as they are tall (CJK, full-width forms).
fn is_wide(c: char) -> bool {
    matches!(c as u32, 0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x20000..=0x3FFFD)
}

/// An estimate of the height `text` needs at `pt` in a box `width` wide.
fn text_height(text: &str, pt: f64, width: i64) -> i64 {
    let width_pt = (width as f64 / EMU_PER_PT as f64).max(1.0);
    let lines: f64 = text
        .split('\n')
        .map(|line| {
            let w: f64 = line.chars().map(|c| if is_wide(c) { 1.0 } else { 0.55 }).sum::<f64>() * pt;
            (w / width_pt).ceil().max(1.0)
        })
        .sum();
    (lines * pt * 1.2 * EMU_PER_PT as f64) as i64
}

fn para_height(p: &Para, width: i64) -> i64 {
    let w = match p.bullet {
        Bullet::None => width,
        Bullet::Char => width - BULLET_INDENT,
        Bullet::Number(_) => width - NUMBER_INDENT,
    };
    text_height(&p.text, p.pt, w) + (6 * EMU_PER_PT)
}

fn heading_para(text: &str, level: u8) -> Para {
    let pt = match level {
        1 => 28.0,
        2 => 24.0,
        _ => 20.0,
    };
    Para {
        text: text.into(),
        pt,
        bold: true,
        italic: false,
        color: Some("1F3864"),
        bullet: Bullet::None,
        align_center: false,
    }
}

fn body_para(text: &str, bullet: Bullet) -> Para {
    Para {
        text: text.into(),
        pt: 18.0,
        bold: false,
        italic: false,
        color: None,
        bullet,
        align_center: false,
    }
}

fn caption_para(text: &str) -> Para {
    Para {
        text: text.into(),
        pt: 12.0,
        bold: false,
        italic: true,
        color: Some("44546A"),
        bullet: Bullet::None,
        align_center: true,
    }
}

/// Numbered paragraphs in one box form one autonumber sequence: every one
/// carries the first one's start (PowerPoint and LibreOffice count on from it).
fn one_sequence(mut paras: Vec<Para>) -> Vec<Para> {
    let start = paras.iter().find_map(|p| match p.bullet {
        Bullet::Number(k) => Some(k),
        _ => None,
    });
    if let Some(start) = start {
        for p in &mut paras {
            if let Bullet::Number(_) = p.bullet {
                p.bullet = Bullet::Number(start);
            }
        }
    }
    paras
}

/// Blocks laid out on slides: the pages, and the images they show (taken
/// by [`render`] as it writes each picture).
pub struct Layout {
    pages: Vec<Page>,
    images: Vec<Option<Image>>,
    image_bytes: usize,
    area: Area,
}

impl Layout {
    fn page(&mut self) -> &mut Page {
        // A layout always holds the page it is filling.
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    fn next_page(&mut self, title: &Option<String>) -> Result<(), ToolError> {
        if self.pages.len() >= MAX_SLIDES {
            return Err(ToolError::InvalidArgs(format!(
                "the content needs more than {MAX_SLIDES} slides; split it into several presentations"
            )));
        }
        let t = title.as_ref().map(|t| format!("{t} (continued)"));
        self.pages.push(Page::new(t, self.area));
        Ok(())
    }

    /// Paragraphs that belong together (one block) as text boxes, moving
    /// on to a following slide between paragraphs when they do not fit.
    fn text(&mut self, title: &Option<String>, paras: Vec<Para>) -> Result<(), ToolError> {
        let Area { left, width, .. } = self.area;
        let mut group: Vec<Para> = Vec::new();
        let mut group_h = 0;
        for p in paras {
            let h = para_height(&p, width);
            if group_h + h > self.page().room() {
                if !group.is_empty() {
                    let g = one_sequence(std::mem::take(&mut group));
                    self.page().place(
                        left,
                        width,
                        group_h,
                        Content::Text {
                            paras: g,
                            font_scale: None,
                        },
                    );
                    group_h = 0;
                }
                if !self.page().shapes.is_empty() {
                    self.next_page(title)?;
                }
            }
            if h > self.page().room() {
                // Alone on a slide and still too tall: shrink its text.
                let area_h = self.area.height();
                let scale = ((area_h as f64 / h as f64) * 100.0).floor().clamp(25.0, 100.0) as u32;
                self.page().place(
                    left,
                    width,
                    area_h,
                    Content::Text {
                        paras: vec![p],
                        font_scale: Some(scale * 1000),
                    },
                );
                continue;
            }
            group_h += h;
            group.push(p);
        }
        if !group.is_empty() {
            let g = one_sequence(group);
            self.page().place(
                left,
                width,
                group_h,
                Content::Text {
                    paras: g,
                    font_scale: None,
                },
            );
        }
        Ok(())
    }

    fn table(
        &mut self,
        title: &Option<String>,
        header: &[String],
        rows: &[Vec<Value>],
        caption: &Option<String>,
    ) -> Result<(), ToolError> {
        let Area { left, width, .. } = self.area;
        let col_w = width / header.len().max(1) as i64;
        let row_h = |cells: &mut dyn Iterator<Item = String>| -> i64 {
            cells
                .map(|c| text_height(&c, TABLE_PT, col_w - 2 * CELL_MARGIN_H))
                .max()
                .unwrap_or(0)
                + 2 * CELL_MARGIN_V
        };
        let header_h = row_h(&mut header.iter().cloned());
        let heights: Vec<i64> = rows.iter().map(|r| row_h(&mut r.iter().map(cell_text))).collect();
        let mut start = 0;
        loop {
            let first = heights.get(start).copied().unwrap_or(0);
            if header_h + first > self.page().room() && !self.page().shapes.is_empty() {
                self.next_page(title)?;
            }
            let mut end = start;
            let mut h = header_h;
            let room = self.page().room();
            while end < rows.len() && (end == start || h + heights[end] <= room) {
                h += heights[end];
                end += 1;
            }
            let mut piece_heights = vec![header_h];
            piece_heights.extend_from_slice(&heights[start..end]);
            self.page().place(
                left,
                col_w * header.len() as i64,
                h,
                Content::Table {
                    header: header.to_vec(),
                    rows: rows[start..end].to_vec(),
                    heights: piece_heights,
                },
            );
            start = end;
            if start >= rows.len() {
                break;
            }
            self.next_page(title)?;
        }
        if let Some(c) = caption {
            self.text(title, vec![caption_para(c)])?;
        }
        Ok(())
    }

    /// Room for a picture or chart of natural height `want` (plus a caption
    /// of `caption_h`): on this slide if it keeps a third of the content
    /// height, else on the next. Returns the height it gets.
    fn visual_room(&mut self, title: &Option<String>, want: i64, caption_h: i64) -> Result<i64, ToolError> {
        let fits = |room: i64| (room - caption_h).min(want);
        if fits(self.page().room()) < self.area.min_visual().min(want) && !self.page().shapes.is_empty() {
            self.next_page(title)?;
        }
        Ok(fits(self.page().room()).max(EMU_PER_INCH / 2))
    }
}

/// Lays out `slides` and builds the whole .pptx.
pub fn build(
    title: Option<&str>,
    author: Option<&str>,
    slides: &[SlideSpec],
    load: &mut LoadImage<'_>,
) -> Result<(Vec<u8>, usize), ToolError> {
    let layout = lay_out(slides, Area::WIDESCREEN, load)?;
    package(title, author, layout)
}

/// Lays `slides` out on pages whose content goes in `area`: what `write`
/// and `edit`'s appended slides share.
pub fn lay_out(slides: &[SlideSpec], area: Area, load: &mut LoadImage<'_>) -> Result<Layout, ToolError> {
    let mut layout = Layout {
        pages: Vec::new(),
        images: Vec::new(),
        image_bytes: 0,
        area,
    };
    let Area { left, width, .. } = area;
    for (s, slide) in slides.iter().enumerate() {
        layout.pages.push(Page::new(slide.title.clone(), area));
        let t = &slide.title;
        for (i, block) in slide.blocks.iter().enumerate() {
            let arg = format!("slides[{s}].blocks[{i}]");
            match block {
                Block::Heading { text, level } => layout.text(t, vec![heading_para(text, *level)])?,
                Block::Paragraph { text } => layout.text(t, vec![body_para(text, Bullet::None)])?,
                Block::List { items, numbered } => {
                    let paras = items
                        .iter()
                        .enumerate()
                        .map(|(n, item)| body_para(item, if *numbered { Bullet::Number(n + 1) } else { Bullet::Char }))
                        .collect();
                    layout.text(t, paras)?;
                }
                Block::Table { header, rows, caption } => layout.table(t, header, rows, caption)?,
                Block::Image {
                    path,
                    caption,
                    width_mm,
                } => {
                    let img = load(path, &format!("{arg}.path"))?;
                    layout.image_bytes += img.bytes.len();
                    if layout.image_bytes > MAX_TOTAL_IMAGE_BYTES {
                        return Err(ToolError::InvalidArgs(format!(
                            "{arg}: the images add up to more than {} MiB; embed fewer or smaller ones",
                            MAX_TOTAL_IMAGE_BYTES / (1024 * 1024)
                        )));
                    }
                    let caption_h = caption
                        .as_ref()
                        .map(|c| para_height(&caption_para(c), width) + GAP)
                        .unwrap_or(0);
                    let (_, natural_h) = img.fit(*width_mm, width, area.height() - caption_h);
                    let room = layout.visual_room(t, natural_h, caption_h)?;
                    let (w, h) = img.fit(*width_mm, width, room);
                    layout.images.push(Some(img));
                    let image = layout.images.len() - 1;
                    layout.page().place(
                        left + (width - w) / 2,
                        w,
                        h,
                        Content::Picture {
                            image,
                            descr: caption.clone().unwrap_or_else(|| deskhand_ooxml::file_name(path)),
                        },
                    );
                    if let Some(c) = caption {
                        layout.text(t, vec![caption_para(c)])?;
                    }
                }
                Block::Chart {
                    title: ct,
                    labels,
                    values,
                } => {
                    let h = layout.visual_room(t, CHART_H.min(area.height()), 0)?;
                    let w = (width * 3 / 4).min(h * 16 / 9).max(width / 3);
                    layout.page().place(
                        left + (width - w) / 2,
                        w,
                        h,
                        Content::Chart {
                            title: ct.clone(),
                            labels: labels.clone(),
                            values: values.clone(),
                        },
                    );
                }
                Block::PageBreak => layout.next_page(t)?,
            }
        }
    }
    Ok(layout)
}

/// Where a rendered slide's pictures and charts go: the package names
/// their parts (and their content types) and gives back the target
/// relative to the slide's folder (`../media/image1.png`).
pub trait Parts {
    fn image(&mut self, image: Image) -> String;
    fn chart(&mut self, xml: String) -> String;
}

/// How a page's title is shown: in a title placeholder (its `p:ph`
/// element), where the layout puts it or, for a layout without one, at
/// `at` (x, y, width, height).
pub struct TitleAs<'a> {
    pub ph: &'a str,
    pub at: Option<(i64, i64, i64, i64)>,
}

/// One laid-out page as a slide part: its XML and its relationships (the
/// layout `layout_target` first, then its pictures and charts).
pub fn render(
    page: Page,
    images: &mut [Option<Image>],
    title_as: &TitleAs<'_>,
    layout_target: &str,
    parts: &mut dyn Parts,
) -> (String, Rels) {
    let mut rels = Rels::new();
    rels.add(rel::SLIDE_LAYOUT, layout_target);
    let mut shapes = String::new();
    if let Some(t) = &page.title {
        let title = placeholder_text(2, "Title 1", title_as.ph, t);
        shapes.push_str(&match title_as.at {
            Some((x, y, w, h)) => title.replacen(
                "<p:spPr/>",
                &format!(
                    "<p:spPr><a:xfrm><a:off x=\"{x}\" y=\"{y}\"/><a:ext cx=\"{w}\" cy=\"{h}\"/></a:xfrm></p:spPr>"
                ),
                1,
            ),
            None => title,
        });
    }
    for (k, placed) in page.shapes.into_iter().enumerate() {
        let id = k as u32 + 3;
        let xfrm = format!(
            "<a:off x=\"{}\" y=\"{}\"/><a:ext cx=\"{}\" cy=\"{}\"/>",
            placed.x, placed.y, placed.w, placed.h
        );
        match placed.content {
            Content::Text { paras, font_scale } => shapes.push_str(&text_box(id, &xfrm, &paras, font_scale)),
            Content::Table { header, rows, heights } => {
                shapes.push_str(&table_frame(id, &xfrm, placed.w, &header, &rows, &heights))
            }
            Content::Picture { image, descr } => {
                let Some(img) = images.get_mut(image).and_then(Option::take) else {
                    continue;
                };
                let rid = rels.add(rel::IMAGE, &parts.image(img));
                shapes.push_str(&format!(
                    "<p:pic><p:nvPicPr><p:cNvPr id=\"{id}\" name=\"Picture {id}\" descr=\"{}\"/><p:cNvPicPr>\
                     <a:picLocks noChangeAspect=\"1\"/></p:cNvPicPr><p:nvPr/></p:nvPicPr><p:blipFill>\
                     <a:blip r:embed=\"{rid}\"/><a:stretch><a:fillRect/></a:stretch></p:blipFill><p:spPr>\
                     <a:xfrm>{xfrm}</a:xfrm><a:prstGeom prst=\"rect\"><a:avLst/></a:prstGeom></p:spPr></p:pic>",
                    esc(&descr)
                ));
            }
            Content::Chart { title, labels, values } => {
                let target = parts.chart(deskhand_ooxml::bar_chart_xml(title.as_deref(), &labels, &values));
                let rid = rels.add(rel::CHART, &target);
                shapes.push_str(&format!(
                    "<p:graphicFrame><p:nvGraphicFramePr><p:cNvPr id=\"{id}\" name=\"Chart {id}\"/><p:cNvGraphicFramePr/>\
                     <p:nvPr/></p:nvGraphicFramePr><p:xfrm>{xfrm}</p:xfrm><a:graphic>\
                     <a:graphicData uri=\"http://schemas.openxmlformats.org/drawingml/2006/chart\">\
                     <c:chart xmlns:c=\"http://schemas.openxmlformats.org/drawingml/2006/chart\" r:id=\"{rid}\"/>\
                     </a:graphicData></a:graphic></p:graphicFrame>"
                ));
            }
        }
    }
    (slide_xml(&shapes), rels)
}

impl Layout {
    /// Takes the pages and the images their pictures show, for [`render`].
    pub fn into_parts(self) -> (Vec<Page>, Vec<Option<Image>>) {
        (self.pages, self.images)
    }
}

/// A fresh package's media and chart parts: `image1.png`, `chart1.xml`, … in order.
struct Fresh<'a> {
    pkg: &'a mut Package,
    media: usize,
    charts: usize,
}

impl Parts for Fresh<'_> {
    fn image(&mut self, img: Image) -> String {
        self.media += 1;
        let name = format!("image{}.{}", self.media, img.format.extension());
        self.pkg.binary(
            &format!("ppt/media/{name}"),
            img.format.extension(),
            img.format.content_type(),
            img.bytes,
        );
        format!("../media/{name}")
    }

    fn chart(&mut self, xml: String) -> String {
        self.charts += 1;
        self.pkg
            .xml(&format!("ppt/charts/chart{}.xml", self.charts), ct::CHART, xml);
        format!("../charts/chart{}.xml", self.charts)
    }
}

pub const CT_SLIDE: &str = "application/vnd.openxmlformats-officedocument.presentationml.slide+xml";

fn package(title: Option<&str>, author: Option<&str>, layout: Layout) -> Result<(Vec<u8>, usize), ToolError> {
    const CT_PRES: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml";
    const CT_LAYOUT: &str = "application/vnd.openxmlformats-officedocument.presentationml.slideLayout+xml";
    const CT_MASTER: &str = "application/vnd.openxmlformats-officedocument.presentationml.slideMaster+xml";
    const CT_PRES_PROPS: &str = "application/vnd.openxmlformats-officedocument.presentationml.presProps+xml";
    const CT_VIEW_PROPS: &str = "application/vnd.openxmlformats-officedocument.presentationml.viewProps+xml";
    const CT_TABLE_STYLES: &str = "application/vnd.openxmlformats-officedocument.presentationml.tableStyles+xml";

    let mut pkg = Package::new();
    let mut pres_rels = Rels::new();
    pres_rels.add(rel::SLIDE_MASTER, "slideMasters/slideMaster1.xml");
    let mut slide_ids = String::new();
    let mut n = 0usize;
    let mut add_slide = |pkg: &mut Package, xml: String, rels: Rels, pres_rels: &mut Rels| {
        n += 1;
        let rid = pres_rels.add(rel::SLIDE, &format!("slides/slide{n}.xml"));
        slide_ids.push_str(&format!("<p:sldId id=\"{}\" r:id=\"{rid}\"/>", 255 + n));
        pkg.xml(&format!("ppt/slides/slide{n}.xml"), CT_SLIDE, xml);
        pkg.rels(&format!("ppt/slides/_rels/slide{n}.xml.rels"), &rels);
    };

    if let Some(t) = title {
        let mut rels = Rels::new();
        rels.add(rel::SLIDE_LAYOUT, "../slideLayouts/slideLayout1.xml");
        let sub = author
            .map(|a| placeholder_text(3, "Subtitle 2", "<p:ph type=\"subTitle\" idx=\"1\"/>", a))
            .unwrap_or_default();
        let xml = slide_xml(&format!(
            "{}{sub}",
            placeholder_text(2, "Title 1", "<p:ph type=\"ctrTitle\"/>", t)
        ));
        add_slide(&mut pkg, xml, rels, &mut pres_rels);
    }
    let (pages, mut images) = layout.into_parts();
    let mut media = 0;
    let mut charts = 0;
    for page in pages {
        let mut fresh = Fresh {
            pkg: &mut pkg,
            media,
            charts,
        };
        let (xml, rels) = render(
            page,
            &mut images,
            &TitleAs {
                ph: "<p:ph type=\"title\"/>",
                at: None,
            },
            "../slideLayouts/slideLayout2.xml",
            &mut fresh,
        );
        (media, charts) = (fresh.media, fresh.charts);
        add_slide(&mut pkg, xml, rels, &mut pres_rels);
    }
    let slides = n;
    pres_rels.add(rel::THEME, "theme/theme1.xml");
    pres_rels.add(rel::PRES_PROPS, "presProps.xml");
    pres_rels.add(rel::VIEW_PROPS, "viewProps.xml");
    pres_rels.add(rel::TABLE_STYLES, "tableStyles.xml");
    let presentation = format!(
        "{XML_DECL}<p:presentation {NS} saveSubsetFonts=\"1\"><p:sldMasterIdLst><p:sldMasterId id=\"2147483648\" r:id=\"rId1\"/>\
         </p:sldMasterIdLst><p:sldIdLst>{slide_ids}</p:sldIdLst><p:sldSz cx=\"{SLIDE_W}\" cy=\"{SLIDE_H}\"/>\
         <p:notesSz cx=\"6858000\" cy=\"9144000\"/></p:presentation>"
    );

    let mut root = Rels::new();
    root.add(rel::OFFICE_DOCUMENT, "ppt/presentation.xml");
    root.add(rel::CORE, "docProps/core.xml");
    root.add(rel::APP, "docProps/app.xml");
    pkg.rels("_rels/.rels", &root);
    pkg.xml("ppt/presentation.xml", CT_PRES, presentation);
    pkg.rels("ppt/_rels/presentation.xml.rels", &pres_rels);
    let mut master_rels = Rels::new();
    master_rels.add(rel::SLIDE_LAYOUT, "../slideLayouts/slideLayout1.xml");
    master_rels.add(rel::SLIDE_LAYOUT, "../slideLayouts/slideLayout2.xml");
    master_rels.add(rel::THEME, "../theme/theme1.xml");
    pkg.xml("ppt/slideMasters/slideMaster1.xml", CT_MASTER, fixed::master());
    pkg.rels("ppt/slideMasters/_rels/slideMaster1.xml.rels", &master_rels);
    let mut layout_rels = Rels::new();
    layout_rels.add(rel::SLIDE_MASTER, "../slideMasters/slideMaster1.xml");
    pkg.xml("ppt/slideLayouts/slideLayout1.xml", CT_LAYOUT, fixed::layout_title());
    pkg.rels("ppt/slideLayouts/_rels/slideLayout1.xml.rels", &layout_rels);
    pkg.xml("ppt/slideLayouts/slideLayout2.xml", CT_LAYOUT, fixed::layout_content());
    pkg.rels("ppt/slideLayouts/_rels/slideLayout2.xml.rels", &layout_rels);
    pkg.xml("ppt/theme/theme1.xml", ct::THEME, fixed::theme());
    pkg.xml("ppt/presProps.xml", CT_PRES_PROPS, fixed::pres_props());
    pkg.xml("ppt/viewProps.xml", CT_VIEW_PROPS, fixed::view_props());
    pkg.xml("ppt/tableStyles.xml", CT_TABLE_STYLES, fixed::table_styles());
    pkg.xml("docProps/core.xml", ct::CORE, core_xml(title, None, author));
    pkg.xml(
        "docProps/app.xml",
        ct::APP,
        app_xml(&format!(
            "<PresentationFormat>Widescreen</PresentationFormat><Slides>{slides}</Slides>"
        )),
    );
    let bytes = pkg
        .finish()
        .map_err(|e| ToolError::InvalidArgs(format!("the presentation could not be packaged: {e}")))?;
    Ok((bytes, slides))
}

fn slide_xml(shapes: &str) -> String {
    format!(
        "{XML_DECL}<p:sld {NS}><p:cSld><p:spTree>{}{shapes}</p:spTree></p:cSld>\
         <p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr></p:sld>",
        fixed::GROUP
    )
}

/// A placeholder shape holding `text` (a title or subtitle).
fn placeholder_text(id: u32, name: &str, ph: &str, text: &str) -> String {
    format!(
        "<p:sp><p:nvSpPr><p:cNvPr id=\"{id}\" name=\"{name}\"/><p:cNvSpPr><a:spLocks noGrp=\"1\"/></p:cNvSpPr>\
         <p:nvPr>{ph}</p:nvPr></p:nvSpPr><p:spPr/><p:txBody><a:bodyPr><a:normAutofit/></a:bodyPr><a:lstStyle/>\
         <a:p>{}</a:p></p:txBody></p:sp>",
        runs(text, "lang=\"en-US\" dirty=\"0\"", "")
    )
}

/// Text as runs with attributes `attrs` and child properties `props`; a
/// newline is a line break.
fn runs(text: &str, attrs: &str, props: &str) -> String {
    let mut out = String::new();
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push_str(&format!("<a:br><a:rPr {attrs}/></a:br>"));
        }
        let line = line.trim_end_matches('\r');
        if !line.is_empty() {
            out.push_str(&format!(
                "<a:r><a:rPr {attrs}>{props}</a:rPr><a:t>{}</a:t></a:r>",
                esc(line)
            ));
        }
    }
    out
}

fn text_box(id: u32, xfrm: &str, paras: &[Para], font_scale: Option<u32>) -> String {
    let fit = match font_scale {
        Some(s) => format!("<a:normAutofit fontScale=\"{s}\" lnSpcReduction=\"10000\"/>"),
        None => "<a:normAutofit/>".into(),
    };
    let mut x = format!(
        "<p:sp><p:nvSpPr><p:cNvPr id=\"{id}\" name=\"Text {id}\"/><p:cNvSpPr txBox=\"1\"/><p:nvPr/></p:nvSpPr>\
         <p:spPr><a:xfrm>{xfrm}</a:xfrm><a:prstGeom prst=\"rect\"><a:avLst/></a:prstGeom><a:noFill/></p:spPr>\
         <p:txBody><a:bodyPr wrap=\"square\" lIns=\"0\" tIns=\"0\" rIns=\"0\" bIns=\"0\" rtlCol=\"0\">{fit}</a:bodyPr><a:lstStyle/>"
    );
    for p in paras {
        let (mar, bu) = match p.bullet {
            Bullet::None => ("marL=\"0\" indent=\"0\"".to_owned(), "<a:buNone/>".to_owned()),
            Bullet::Char => (
                format!("marL=\"{BULLET_INDENT}\" indent=\"-{BULLET_INDENT}\""),
                "<a:buFont typeface=\"Arial\"/><a:buChar char=\"•\"/>".to_owned(),
            ),
            Bullet::Number(k) => (
                format!("marL=\"{NUMBER_INDENT}\" indent=\"-{NUMBER_INDENT}\""),
                format!("<a:buFont typeface=\"+mj-lt\"/><a:buAutoNum type=\"arabicPeriod\" startAt=\"{k}\"/>"),
            ),
        };
        let algn = if p.align_center { "ctr" } else { "l" };
        let sz = (p.pt * 100.0) as u32;
        let mut attrs = format!("lang=\"en-US\" sz=\"{sz}\"");
        if p.bold {
            attrs.push_str(" b=\"1\"");
        }
        if p.italic {
            attrs.push_str(" i=\"1\"");
        }
        attrs.push_str(" dirty=\"0\"");
        let props = p
            .color
            .map(|c| format!("<a:solidFill><a:srgbClr val=\"{c}\"/></a:solidFill>"))
            .unwrap_or_default();
        x.push_str(&format!(
            "<a:p><a:pPr {mar} algn=\"{algn}\"><a:spcAft><a:spcPts val=\"600\"/></a:spcAft>{bu}</a:pPr>{}\
             <a:endParaRPr lang=\"en-US\" sz=\"{sz}\" dirty=\"0\"/></a:p>",
            runs(&p.text, &attrs, &props)
        ));
    }
    x.push_str("</p:txBody></p:sp>");
    x
}

fn table_frame(id: u32, xfrm: &str, width: i64, header: &[String], rows: &[Vec<Value>], heights: &[i64]) -> String {
    let cols = header.len().max(1) as i64;
    let col_w = width / cols;
    let line =
        |side: &str| format!("<a:{side} w=\"12700\"><a:solidFill><a:srgbClr val=\"8EA9DB\"/></a:solidFill></a:{side}>");
    let borders = format!("{}{}{}{}", line("lnL"), line("lnR"), line("lnT"), line("lnB"));
    let cell = |text: &str, header: bool, right: bool| {
        let (attrs, props, fill) = if header {
            (
                format!(
                    "lang=\"en-US\" sz=\"{}\" b=\"1\" dirty=\"0\"",
                    (TABLE_PT * 100.0) as u32
                ),
                "<a:solidFill><a:srgbClr val=\"FFFFFF\"/></a:solidFill>",
                "4472C4",
            )
        } else {
            (
                format!("lang=\"en-US\" sz=\"{}\" dirty=\"0\"", (TABLE_PT * 100.0) as u32),
                "",
                "FFFFFF",
            )
        };
        let algn = if right { "r" } else { "l" };
        format!(
            "<a:tc><a:txBody><a:bodyPr/><a:lstStyle/><a:p><a:pPr algn=\"{algn}\"/>{}</a:p></a:txBody>\
             <a:tcPr marL=\"{CELL_MARGIN_H}\" marR=\"{CELL_MARGIN_H}\" marT=\"{CELL_MARGIN_V}\" marB=\"{CELL_MARGIN_V}\">\
             {borders}<a:solidFill><a:srgbClr val=\"{fill}\"/></a:solidFill></a:tcPr></a:tc>",
            runs(text, &attrs, props)
        )
    };
    let mut x = format!(
        "<p:graphicFrame><p:nvGraphicFramePr><p:cNvPr id=\"{id}\" name=\"Table {id}\"/><p:cNvGraphicFramePr>\
         <a:graphicFrameLocks noGrp=\"1\"/></p:cNvGraphicFramePr><p:nvPr/></p:nvGraphicFramePr><p:xfrm>{xfrm}</p:xfrm>\
         <a:graphic><a:graphicData uri=\"http://schemas.openxmlformats.org/drawingml/2006/table\"><a:tbl>\
         <a:tblPr firstRow=\"1\" bandRow=\"1\"/><a:tblGrid>"
    );
    for _ in 0..cols {
        x.push_str(&format!("<a:gridCol w=\"{col_w}\"/>"));
    }
    x.push_str("</a:tblGrid>");
    let h = |i: usize| heights.get(i).copied().unwrap_or(370_840);
    x.push_str(&format!("<a:tr h=\"{}\">", h(0)));
    for t in header {
        x.push_str(&cell(t, true, false));
    }
    x.push_str("</a:tr>");
    for (r, row) in rows.iter().enumerate() {
        x.push_str(&format!("<a:tr h=\"{}\">", h(r + 1)));
        for c in row {
            x.push_str(&cell(&cell_text(c), false, c.is_number()));
        }
        x.push_str("</a:tr>");
    }
    x.push_str("</a:tbl></a:graphicData></a:graphic></p:graphicFrame>");
    x
}
