//! The `pptx` tool: reads a presentation's text slide by slide (`text`, in
//! [`read`]: titles, bullets, tables, comments, speaker notes) and writes a
//! PowerPoint presentation under output/ from the
//! shared document model (`deskhand_guest::document`): a title slide when a
//! title is given, then one slide per entry with its title in the title
//! placeholder and its blocks laid out top to bottom below it: headings and
//! paragraphs as text boxes, lists as real paragraph bullets or autonumbers,
//! tables as `a:tbl` graphic frames with a filled header row, images as
//! pictures at their aspect ratio, bar charts as native chart parts. What
//! does not fit continues on a following slide (see [`slides`]).
//!
//! The package (presentation, slide master, two layouts, theme) is built
//! whole in memory, then saved with the sdk's never-overwrite write: a bad
//! block or image leaves no file behind.
//!
//! `edit` (in [`edit`]) changes an existing presentation as a proposed
//! overwrite: text replaced or `{{name}}` placeholders filled in the slides
//! and notes, slides appended (laid out by the same [`slides`] code, on the
//! deck's own layout) or deleted, every untouched part kept byte for byte.

mod edit;
mod fixed;
mod markup;
mod read;
mod slides;

use std::path::PathBuf;

use deskhand_guest::document::{Block, block_schema, validate_blocks};
use deskhand_guest::{Description, Guest, Output, ToolError, operation, output, parse_args};
use serde::Deserialize;
use serde_json::{Value, json};

/// The most slides one call may describe.
const MAX_SLIDE_SPECS: usize = 1_000;

struct Pptx;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteArgs {
    path: PathBuf,
    #[serde(default)]
    unique: bool,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    author: Option<String>,
    slides: Vec<SlideArg>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SlideArg {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub blocks: Vec<Block>,
}

fn schema() -> Value {
    json!({
        "type": "object", "required": ["path", "slides"], "additionalProperties": false,
        "properties": {
            "path": {"type": "string", "description": "a new .pptx file under the workspace's output/ folder"},
            "unique": {"type": "boolean", "default": false,
                       "description": "pick a free name (name-1.pptx, ...) instead of failing when the file exists"},
            "title": {"type": "string", "description": "the presentation's title: a title slide first, and its title property"},
            "author": {"type": "string", "description": "shown under the title on the title slide, and the author property"},
            "slides": {"type": "array", "minItems": 1, "items": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "title": {"type": "string"},
                    "blocks": {"type": "array", "items": block_schema(),
                               "description": "laid out top to bottom; what does not fit continues on a following slide"}
                }
            }}
        }
    })
}

impl Guest for Pptx {
    fn describe() -> Description {
        Description {
            name: "pptx".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Reads PowerPoint (.pptx) presentations slide by slide (titles, text, tables, comments, \
                      speaker notes), writes new ones under output/ (a title slide, then slides of headings, \
                      paragraphs, bullets, tables, images and bar charts), and edits existing ones (replace text, \
                      fill placeholders, append and delete slides) as a proposal the person approves."
                .into(),
            operations: vec![
                operation("text", read::SUMMARY, read::schema(), &["path"], &[]),
                operation(
                    "write",
                    "Create a new .pptx presentation under output/: a title slide when `title` is given, then one \
                 slide per entry of `slides` (its title, then blocks: heading, paragraph, list, table, image from a \
                 PNG/JPEG path in a granted folder or output/, chart, page_break). Content that does not fit \
                 continues on a following slide. Never overwrites a file.",
                    schema(),
                    &["slides[].blocks[].path"],
                    &["path"],
                ),
                operation(
                    "edit",
                    edit::SUMMARY,
                    edit::schema(),
                    &["path", "edits[].slides[].blocks[].path"],
                    &[],
                ),
            ],
        }
    }

    fn run(op: String, args: String) -> Result<Output, ToolError> {
        match op.as_str() {
            "text" => read::text(parse_args(&args)?),
            "edit" => edit::edit(parse_args(&args)?),
            "write" => write(parse_args(&args)?),
            _ => Err(ToolError::UnknownOperation(op)),
        }
    }
}

deskhand_guest::export!(Pptx with_types_in deskhand_guest::bindings);

fn write(args: WriteArgs) -> Result<Output, ToolError> {
    deskhand_ooxml::check_extension(&args.path, "pptx")?;
    if args.slides.is_empty() {
        return Err(ToolError::InvalidArgs(
            "slides: the list is empty; give at least one slide ({\"title\": ..., \"blocks\": [...]})".into(),
        ));
    }
    if args.slides.len() > MAX_SLIDE_SPECS {
        return Err(ToolError::InvalidArgs(format!(
            "slides: {} slides; at most {MAX_SLIDE_SPECS} fit in one presentation",
            args.slides.len()
        )));
    }
    let mut specs = Vec::with_capacity(args.slides.len());
    for (s, slide) in args.slides.into_iter().enumerate() {
        validate_blocks(&slide.blocks).map_err(|e| match e {
            ToolError::InvalidArgs(m) => ToolError::InvalidArgs(format!("slides[{s}].{m}")),
            other => other,
        })?;
        specs.push(slides::SlideSpec {
            title: slide.title,
            blocks: slide.blocks,
        });
    }
    let (bytes, count) = slides::build(
        args.title.as_deref(),
        args.author.as_deref(),
        &specs,
        &mut deskhand_ooxml::read_image,
    )?;
    let written = deskhand_ooxml::save(&args.path, "pptx", &bytes, args.unique)?;
    let size = bytes.len();
    let text = format!(
        "wrote {} ({count} slides from {} given; {size} bytes)",
        written.display(),
        specs.len()
    );
    Ok(output(
        &json!({"path": written.display().to_string(), "size": size, "slides": count}),
        text,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    fn every_block() -> Vec<slides::SlideSpec> {
        let blocks: Vec<Block> = serde_json::from_value(json!([
            {"type": "heading", "text": "Summary"},
            {"type": "paragraph", "text": "Café Straße 100 ₫ 中文 & <tags>"},
            {"type": "list", "items": ["one", "two"]},
            {"type": "list", "items": ["first", "second"], "numbered": true},
            {"type": "table", "header": ["Item", "Amount"], "rows": [["Food", 12.5], ["Travel", null]], "caption": "Costs"},
            {"type": "image", "path": "a.png", "caption": "A picture"},
            {"type": "chart", "title": "Spend", "labels": ["Food", "Travel"], "values": [12.5, 3]},
            {"type": "page_break"},
            {"type": "heading", "text": "After", "level": 3}
        ]))
        .unwrap();
        let long: Vec<Vec<Value>> = (0..60).map(|i| vec![json!(format!("row {i}")), json!(i)]).collect();
        vec![
            slides::SlideSpec {
                title: Some("Everything".into()),
                blocks,
            },
            slides::SlideSpec {
                title: Some("Long".into()),
                blocks: vec![Block::Table {
                    header: vec!["Name".into(), "N".into()],
                    rows: long,
                    caption: None,
                }],
            },
        ]
    }

    #[test]
    fn every_part_is_well_formed_and_long_content_continues() {
        let png = include_bytes!("../../ooxml/tests/gradient-40x20.png").to_vec();
        let mut load = |_: &str, _: &str| Ok(deskhand_ooxml::parse_image(png.clone()).unwrap());
        let (bytes, count) = slides::build(Some("Deck"), Some("Zoë"), &every_block(), &mut load).unwrap();
        // PPTX_DUMP=file keeps the built package, to open it by hand.
        if let Ok(dump) = std::env::var("PPTX_DUMP") {
            std::fs::write(dump, &bytes).unwrap();
        }
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
        let mut slides_seen = 0;
        let mut all = String::new();
        for i in 0..zip.len() {
            let mut f = zip.by_index(i).unwrap();
            let name = f.name().unwrap().into_owned();
            if !(name.ends_with(".xml") || name.ends_with(".rels")) {
                continue;
            }
            let mut text = String::new();
            std::io::Read::read_to_string(&mut f, &mut text).unwrap();
            let mut reader = quick_xml::Reader::from_str(&text);
            loop {
                match reader.read_event() {
                    Ok(quick_xml::events::Event::Eof) => break,
                    Ok(_) => {}
                    Err(e) => panic!("{name}: {e}"),
                }
            }
            if name.starts_with("ppt/slides/slide") {
                slides_seen += 1;
                all.push_str(&text);
            }
        }
        assert_eq!(slides_seen, count);
        // Title slide, the content (split at the page break and wherever it
        // overflows), and the 60-row table over several slides.
        assert!(count >= 5, "{count} slides");
        assert!(all.contains("Café Straße 100 ₫ 中文 &amp; &lt;tags&gt;"));
        assert!(all.contains("Long (continued)") && all.contains("row 59"));
        assert!(all.contains("<a:buChar char=\"•\"/>") && all.contains("buAutoNum"));
    }

    #[test]
    fn overflowing_text_continues_and_one_huge_paragraph_shrinks() {
        let items: Vec<String> = (1..=30).map(|i| format!("Item {i}")).collect();
        let huge = "word ".repeat(3000);
        let spec = vec![slides::SlideSpec {
            title: Some("Lists".into()),
            blocks: vec![Block::List { items, numbered: true }, Block::Paragraph { text: huge }],
        }];
        let mut load = |p: &str, _: &str| Err(ToolError::InvalidArgs(format!("no image {p}")));
        let (bytes, count) = slides::build(None, None, &spec, &mut load).unwrap();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
        let mut texts = Vec::new();
        for n in 1..=count {
            let mut f = zip.by_name(&format!("ppt/slides/slide{n}.xml")).unwrap();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut f, &mut text).unwrap();
            texts.push(text);
        }
        assert!(count >= 3, "30 items and a huge paragraph on {count} slides");
        assert!(texts[0].contains("Item 1<") && !texts[0].contains("Item 30<"));
        // The list's numbering carries on where the previous slide stopped.
        let second = &texts[1];
        let first_item = second.find("Item ").unwrap();
        let n: usize = second[first_item + 5..].split('<').next().unwrap().parse().unwrap();
        assert!(
            second.contains(&format!("startAt=\"{n}\"")),
            "slide 2 starts at item {n}"
        );
        assert!(texts.iter().all(|t| t.contains("Lists (continued)") || t == &texts[0]));
        let last = texts.last().unwrap();
        assert!(last.contains("normAutofit fontScale=\""), "the huge paragraph shrinks");
    }

    #[test]
    fn empty_slides_and_bad_blocks_are_refused() {
        let args: WriteArgs = serde_json::from_value(json!({"path": "output/x.pptx", "slides": []})).unwrap();
        let err = format!("{:?}", write(args).unwrap_err());
        assert!(err.contains("slides") && err.contains("empty"), "{err}");
        let args: WriteArgs = serde_json::from_value(json!({"path": "output/x.pptx", "slides": [
            {"title": "a"}, {"blocks": [{"type": "heading", "text": "x", "level": 9}]}]}))
        .unwrap();
        let err = format!("{:?}", write(args).unwrap_err());
        assert!(err.contains("slides[1].blocks[0]"), "{err}");
    }
}
